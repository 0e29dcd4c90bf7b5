#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    shared::app::run::<shared::app::TwoFactorApp, _, _>(two_factor::handle).await
}
