//! `cargo xtask schemathesis`: Schemathesis, property-based tests generated from
//! `openapi.yaml`, against the API served in-process the way `cargo xtask dev` serves it.
//!
//! The API listens on a free port of its own, over the test emulators (8001/5001) and a table
//! of its own, so it runs beside `cargo xtask dev` and `cargo xtask test`. Schemathesis is
//! installed into `.localaws/venv-schemathesis` on first use. Every operation is tried twice,
//! with a plain user's token and with a csrAdmin's; a run fails on a 5xx, on an answer the spec
//! does not describe (status, content type, headers, body) and on a slow or hanging answer.
//! It is bounded: a fixed number of cases per operation (`xtask/schemathesis.toml`), a timeout
//! per request and a [`BUDGET`] for the runs. Reports go to `target/schemathesis/`.
//!
//! `cargo xtask test` runs it last, on the emulators it started ([`after_tests`]).

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use shared::App;
use tokio::net::TcpListener;

use crate::localenv::{LocalEnv, Purpose, test_ports};
use crate::process::{Signals, command, terminate};
use crate::router::Router;
use crate::stack::{InstallLock, REUSE_VAR, Stack, pip_install};
use crate::{Result, block_on, root};

const SCHEMATHESIS_PIP: &str = "schemathesis==4.32.5";
/// Test cases per operation and phase: about 1,300 cases per run, under a minute on 2 cores.
const MAX_EXAMPLES: u32 = 25;
/// Both runs together may take this long; one still going then is killed and fails (a hang
/// the request timeout missed). They take about a minute on 2 cores.
const BUDGET: Duration = Duration::from_secs(180);
const CHECKS: &str = "not_a_server_error,status_code_conformance,content_type_conformance,\
                      response_headers_conformance,response_schema_conformance";
/// An answer slower than this fails the run.
const MAX_RESPONSE_SECS: &str = "5";
const CONFIG: &str = include_str!("../schemathesis.toml");
const BUCKET: &str = "schemathesis-diagnostic-reports";
const PASSWORD: &str = "schemathesis correct horse";

pub fn run() -> Result<ExitCode> {
    let root = root();
    let secrets = root.join(".localaws/test-secrets.json");
    crate::localenv::ensure_secrets_file(&secrets)?;
    let table = format!("schemathesis-{}", uuid::Uuid::new_v4().simple());
    // SAFETY: no runtime, hence no other thread, exists yet.
    unsafe {
        LocalEnv::new(Purpose::Test, test_ports(), &secrets).apply_to_process();
        std::env::set_var("TABLE_NAME", &table);
        std::env::set_var("REPORTS_BUCKET", BUCKET);
    }
    block_on(serve_and_test(&root, &table))?
}

/// The last step of `cargo xtask test` once the tests passed: `cargo xtask schemathesis` on
/// the emulators `test` started. Skipped when nextest arguments narrow the run.
pub async fn after_tests(
    tests: Result<Option<u8>>,
    nextest_args: &[String],
    cargo: &OsStr,
    root: &Path,
    signals: &mut Signals,
) -> Result<Option<u8>> {
    match tests {
        Ok(None) if nextest_args.is_empty() => {}
        Ok(None) => {
            println!(
                "xtask: schemathesis skipped, as nextest arguments were given \
                 (run it with `cargo xtask schemathesis`)"
            );
            return Ok(None);
        }
        failed => return failed,
    }
    let mut step = command(cargo);
    step.args(["xtask", "schemathesis"])
        .env(REUSE_VAR, "1")
        .current_dir(root);
    crate::check::run_step(&mut step, signals).await
}

async fn serve_and_test(root: &Path, table: &str) -> Result<ExitCode> {
    let mut signals = Signals::new()?;
    let out = root.join("target/schemathesis");
    std::fs::create_dir_all(&out)?;
    let api_log = out.join("api.log");
    init_tracing(&api_log)?;
    let template = std::fs::read_to_string(root.join("template.yaml"))?;
    let router = Router::new(&shared::localstack::routes(&template)?)?;

    let setup = async {
        let (stack, schemathesis) =
            tokio::try_join!(Stack::start(root, test_ports()), install(root))?;
        let app = crate::dev::provision(&template, table, BUCKET).await?;
        Ok::<_, crate::Error>((stack, schemathesis, app))
    };
    let (mut stack, schemathesis, app) = tokio::select! {
        ready = setup => ready?,
        stop = signals.recv() => return Ok(ExitCode::from(stop.exit_code())),
    };
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let base = format!("http://{}", listener.local_addr()?);
    let server = tokio::spawn(crate::serve::serve(listener, app.clone(), router));
    println!(
        "xtask: serving the API on {base} for Schemathesis (its log: {})",
        api_log.display()
    );

    let outcome = tokio::select! {
        outcome = test(&app, &base, &schemathesis, &out) => outcome,
        exited = stack.exited() => Err(exited.into()),
        stop = signals.recv() => {
            println!("xtask: {}: stopping Schemathesis, the API and the emulators", stop.name());
            Ok(ExitCode::from(stop.exit_code()))
        }
    };
    server.abort();
    stack.stop().await;
    outcome
}

/// Installs Schemathesis into its own venv (its dependencies are not moto's) unless this
/// version is there already.
pub(crate) async fn install(root: &Path) -> Result<PathBuf> {
    let local = root.join(".localaws");
    std::fs::create_dir_all(&local)?;
    let _lock = InstallLock::acquire(&local.join("install-schemathesis.lock")).await?;
    let venv = local.join("venv-schemathesis");
    let schemathesis = venv.join("bin/schemathesis");
    let marker = venv.join("xtask-installed");
    if std::fs::read_to_string(&marker).is_ok_and(|installed| installed == SCHEMATHESIS_PIP)
        && schemathesis.exists()
    {
        return Ok(schemathesis);
    }
    println!("xtask: installing {SCHEMATHESIS_PIP} in a Python venv (first run only, a minute)");
    pip_install(
        &venv,
        &[SCHEMATHESIS_PIP],
        &local.join("install-schemathesis.log"),
    )
    .await?;
    std::fs::write(&marker, SCHEMATHESIS_PIP)?;
    Ok(schemathesis)
}

/// Who a run's token belongs to, and what its parameters point at.
struct Caller {
    name: &'static str,
    token: String,
    self_uuid: String,
    /// The user in `{uuid}` and `{userUUID}` (most cases; the others are generated).
    target_user: String,
    /// Sessions of the caller's own for logout and refresh, apart from the token's.
    logout_session: String,
    refresh_session: String,
}

async fn test(app: &App, base: &str, schemathesis: &Path, out: &Path) -> Result<ExitCode> {
    let client = reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(30))
        .build()?;
    let email = |who: &str| {
        format!(
            "schemathesis-{who}-{}@kuri.example",
            uuid::Uuid::new_v4().simple()
        )
    };
    let (user_email, admin_email) = (email("user"), email("admin"));
    // The user registers like any app would; the admin is made by `cargo xtask admin`'s code.
    let registered = call(
        &client,
        base,
        "/users",
        json!({"email": user_email, "password": PASSWORD, "firstName": "Ada", "lastName": "Lovelace"}),
    )
    .await?;
    let user_uuid = text(&registered["user"]["uuid"])?;
    shared::service::users::create_or_promote_admin(app, &admin_email, PASSWORD)
        .await
        .map_err(|error| format!("cannot create the csrAdmin: {error:?}"))?;

    let mut callers = Vec::new();
    for (name, email) in [("user", &user_email), ("admin", &admin_email)] {
        let session = || {
            call(
                &client,
                base,
                "/users/sessions",
                json!({"email": email, "password": PASSWORD}),
            )
        };
        let login = session().await?;
        let (token, self_uuid) = (text(&login["token"])?, text(&login["user"]["uuid"])?);
        let logout_session = text(&session().await?["sessionUUID"])?;
        let refresh_session = text(&session().await?["sessionUUID"])?;
        callers.push(Caller {
            name,
            token,
            self_uuid,
            target_user: user_uuid.clone(),
            logout_session,
            refresh_session,
        });
    }

    // The user's run first: the admin's may deactivate the user.
    let deadline = tokio::time::Instant::now() + BUDGET;
    let mut failed = Vec::new();
    for caller in &callers {
        if !run_as(caller, base, schemathesis, out, deadline).await? {
            failed.push(caller.name);
        }
    }
    if failed.is_empty() {
        println!("xtask: Schemathesis passed, as user and as csrAdmin");
        Ok(ExitCode::SUCCESS)
    } else {
        eprintln!(
            "xtask: Schemathesis failed as {} (the API's log: {})",
            failed.join(" and as "),
            out.join("api.log").display()
        );
        Ok(ExitCode::FAILURE)
    }
}

/// One Schemathesis run with `caller`'s token; whether it passed.
async fn run_as(
    caller: &Caller,
    base: &str,
    schemathesis: &Path,
    out: &Path,
    deadline: tokio::time::Instant,
) -> Result<bool> {
    let config = out.join(format!("{}.toml", caller.name));
    std::fs::write(&config, fill_config(caller, MAX_EXAMPLES))?;
    let mut run = command(schemathesis);
    run.arg("--config-file")
        .arg(&config)
        .arg("run")
        .arg(format!("{base}/openapi.yaml"))
        .args(["--url", base, "--checks", CHECKS])
        .args(["--max-response-time", MAX_RESPONSE_SECS])
        .args(["--report", "junit", "--report-dir"])
        .arg(out.join(caller.name))
        .current_dir(out)
        .env("NO_PROXY", "127.0.0.1");
    println!(
        "xtask: schemathesis as {} ({MAX_EXAMPLES} cases per operation and phase)",
        caller.name
    );
    let started = Instant::now();
    let mut child = run
        .spawn()
        .map_err(|e| format!("cannot run {}: {e}", schemathesis.display()))?;
    let status = match tokio::time::timeout_at(deadline, child.wait()).await {
        Ok(status) => status?,
        Err(_) => {
            terminate(&mut child).await;
            eprintln!(
                "xtask: schemathesis as {} was still running when the {} s for both runs were \
                 up: stopped",
                caller.name,
                BUDGET.as_secs()
            );
            return Ok(false);
        }
    };
    println!(
        "xtask: schemathesis as {} {} in {} s",
        caller.name,
        if status.success() { "passed" } else { "failed" },
        started.elapsed().as_secs()
    );
    Ok(status.success())
}

/// `xtask/schemathesis.toml` with its `{{placeholders}}` filled in.
fn fill_config(caller: &Caller, max_examples: u32) -> String {
    [
        ("{{max_examples}}", max_examples.to_string()),
        ("{{token}}", caller.token.clone()),
        ("{{self_uuid}}", caller.self_uuid.clone()),
        ("{{user_uuid}}", caller.target_user.clone()),
        ("{{logout_session}}", caller.logout_session.clone()),
        ("{{refresh_session}}", caller.refresh_session.clone()),
    ]
    .iter()
    .fold(CONFIG.to_owned(), |config, (placeholder, value)| {
        config.replace(placeholder, value)
    })
}

/// POSTs `body` and returns the answer's `data`, which must be a success.
async fn call(client: &reqwest::Client, base: &str, path: &str, body: Value) -> Result<Value> {
    let response = client
        .post(format!("{base}{path}"))
        .json(&body)
        .send()
        .await?;
    let status = response.status();
    let answer: Value = response.json().await?;
    if !status.is_success() {
        return Err(format!("POST {path} answered {status}: {answer}").into());
    }
    Ok(answer["data"].clone())
}

fn text(value: &Value) -> Result<String> {
    Ok(value
        .as_str()
        .ok_or_else(|| format!("expected a string, got {value}"))?
        .to_owned())
}

/// The API's request and app logs go to a file: Schemathesis makes thousands of requests.
fn init_tracing(log: &Path) -> Result<()> {
    let file = std::fs::File::create(log)?;
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false)
        .with_ansi(false)
        .with_writer(std::sync::Mutex::new(file))
        .try_init();
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_placeholder_of_the_config_is_filled() {
        let caller = Caller {
            name: "user",
            token: "a.b.c".into(),
            self_uuid: "2f8e2a4c-1b7d-4c1e-9a3b-0c5d6e7f8a9b".into(),
            target_user: "4f8e2a4c-1b7d-4c1e-9a3b-0c5d6e7f8a9b".into(),
            logout_session: "0b0a8f8e-5c5e-4c59-9f0e-3f1f1c2d3e4f".into(),
            refresh_session: "1b0a8f8e-5c5e-4c59-9f0e-3f1f1c2d3e4f".into(),
        };

        let config = fill_config(&caller, 7);

        assert!(!config.contains("{{"), "{config}");
        assert!(config.contains("max-examples = 7"));
        assert!(config.contains("bearer = \"a.b.c\""));
    }
}
