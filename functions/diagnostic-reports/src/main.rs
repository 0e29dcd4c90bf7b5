#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    shared::app::run::<shared::app::ReportsApp, _, _>(diagnostic_reports::handle).await
}
