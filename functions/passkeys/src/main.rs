#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    shared::app::run::<shared::app::MailApp, _, _>(passkeys::handle).await
}
