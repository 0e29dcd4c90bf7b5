use lambda_http::{Error, run, service_fn};

#[tokio::main]
async fn main() -> Result<(), Error> {
    shared::telemetry::init();
    let app = shared::app::SmsApp::from_env().await?;
    run(service_fn(|req| {
        let app = app.clone();
        async move { Ok::<_, Error>(two_factor::handle(&app, req).await) }
    }))
    .await
}
