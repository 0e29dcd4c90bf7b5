//! `cargo xtask dev`: emulators, table, bucket and sender, then the API on 127.0.0.1:3000.

use std::io::IsTerminal;
use std::path::Path;
use std::process::ExitCode;

use shared::App;
use tokio::net::TcpListener;

use crate::localenv::{API_ADDR, DEV_BUCKET, DEV_PORTS, DEV_TABLE, LocalEnv, Purpose};
use crate::process::Signals;
use crate::router::Router;
use crate::stack::Stack;
use crate::{Result, block_on, root};

pub fn run() -> Result<ExitCode> {
    let root = root();
    let secrets = root.join(".localaws/secrets.json");
    crate::localenv::ensure_secrets_file(&secrets)?;
    // SAFETY: no runtime, hence no other thread, exists yet.
    unsafe { LocalEnv::new(Purpose::Dev, DEV_PORTS, &secrets).apply_to_process() };
    block_on(serve(&root))?
}

async fn serve(root: &Path) -> Result<ExitCode> {
    init_tracing();
    let mut signals = Signals::new()?;
    let template = std::fs::read_to_string(root.join("template.yaml"))?;
    let router = Router::new(&shared::localstack::routes(&template)?)?;
    if std::net::TcpStream::connect(API_ADDR).is_ok() {
        return Err(
            format!("{API_ADDR} is already in use: is another `cargo xtask dev` running?").into(),
        );
    }

    let setup = async {
        let stack = Stack::start(root, DEV_PORTS).await?;
        let app = provision(&template, DEV_TABLE, DEV_BUCKET).await?;
        Ok::<_, crate::Error>((stack, app))
    };
    // Dropping `setup` on a signal drops any emulator already started, which stops it.
    let (mut stack, app) = tokio::select! {
        ready = setup => ready?,
        stop = signals.recv() => {
            println!("xtask: {} received before the API was up; stopped", stop.name());
            return Ok(ExitCode::SUCCESS);
        }
    };

    let listener = match TcpListener::bind(API_ADDR).await {
        Ok(listener) => listener,
        Err(error) => {
            stack.stop().await;
            return Err(format!("cannot listen on {API_ADDR}: {error}").into());
        }
    };
    print_banner(&stack);

    let outcome = tokio::select! {
        served = crate::serve::serve(listener, app, router) => {
            Err(format!("the API server stopped: {served:?}").into())
        }
        exited = stack.exited() => Err(exited.into()),
        stop = signals.recv() => {
            println!("xtask: {}: stopping the API and the emulators", stop.name());
            Ok(ExitCode::SUCCESS)
        }
    };
    stack.stop().await;
    outcome
}

/// The table, bucket and SES sender the app expects, then the app itself, built like a cold
/// start (so `TABLE_NAME` and `REPORTS_BUCKET` must name `table` and `bucket`).
pub(crate) async fn provision(template: &str, table: &str, bucket: &str) -> Result<App> {
    let aws = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
    let dynamodb = aws_sdk_dynamodb::Client::new(&aws);
    let s3 = aws_sdk_s3::Client::from_conf(
        aws_sdk_s3::config::Builder::from(&aws)
            .force_path_style(true)
            .build(),
    );
    let ses = aws_sdk_ses::Client::new(&aws);
    let mail_from = std::env::var("MAIL_FROM")?;
    shared::localstack::create_table(&dynamodb, template, table).await?;
    shared::localstack::create_bucket(&s3, bucket).await?;
    shared::localstack::verify_sender(&ses, &mail_from).await?;
    Ok(App::from_env().await?)
}

fn print_banner(stack: &Stack) {
    let logs: Vec<String> = stack
        .logs()
        .iter()
        .map(|log| log.display().to_string())
        .collect();
    let logs = if logs.is_empty() {
        "(emulators reused, not started here)".to_owned()
    } else {
        logs.join(", ")
    };
    println!(
        "
xtask: serving the API on http://{API_ADDR}
  API       http://{API_ADDR}   (try: curl http://{API_ADDR}/.well-known/jwks.json)
  OpenAPI   http://{API_ADDR}/openapi.yaml
  moto      http://127.0.0.1:{moto}   (sent mail and SMS: http://127.0.0.1:{moto}/moto-api/data.json)
  DynamoDB  http://127.0.0.1:{ddb}   (table {DEV_TABLE}, in memory: gone when stopped)
  logs      {logs}
  admin     cargo xtask admin --email admin@kuri.example --password 'choose-a-password'
Ctrl-C or SIGTERM stops everything.
",
        moto = DEV_PORTS.moto,
        ddb = DEV_PORTS.dynamodb,
    );
}

/// Human-readable request and app logs on stderr, filtered by `RUST_LOG`.
fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr)
        .try_init();
}
