#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    shared::app::run::<shared::app::SmsApp, _, _>(two_factor::handle).await
}
