#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    shared::app::run::<shared::app::SmsApp, _, _>(sessions::handle).await
}
