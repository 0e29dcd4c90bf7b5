//! `cargo xtask bench`: cold starts, warm latency and memory of the release binaries, run the
//! way Lambda runs them (a Runtime API that hands out events), against emulators of their own.
//!
//! Figures and ratios only: nothing here passes or fails on a number.

use std::collections::HashMap;
use std::ffi::OsString;
use std::fs::OpenOptions;
use std::path::{Path, PathBuf};
use std::process::{ExitCode, Stdio};
use std::time::{Duration, Instant};

use hyper::body::Bytes;
use serde_json::{Value, json};
use shared::App;
use shared::domain::email::Email;
use shared::security::password::Password;
use tokio::process::Child;

use crate::localenv::{LocalEnv, Purpose};
use crate::process::{Signals, command, terminate};
use crate::runtime_api::{Outcome, RuntimeApi};
use crate::stack::{Ports, Stack};
use crate::{Result, block_on, root};

/// Apart from `dev` (8000/5000) and `test` (8001/5001), so that all three can run at once.
pub const BENCH_PORTS: Ports = Ports {
    dynamodb: 8002,
    moto: 5002,
};
pub(crate) const TABLE: &str = "kuri-bench";
pub(crate) const BUCKET: &str = "kuri-bench-reports";
/// `MemorySize` of every function in `template.yaml`.
const FUNCTION_MEMORY_MIB: u32 = 256;
/// Longer than the functions' 10 s timeout: a stuck function is an error, not a figure.
const INVOKE_TIMEOUT: Duration = Duration::from_secs(30);
const MIB: f64 = 1024.0 * 1024.0;

/// The six functions, each with the event its cold starts are measured with: a route that
/// reads but does not change what later runs see, so every start does the same work.
const FUNCTIONS: [(&str, &str); 6] = [
    ("users", "users-get"),
    ("sessions", "sessions-refresh"),
    ("two-factor", "two-factor-resend"),
    ("password-recovery", "password-recovery-start"),
    ("email-verification", "email-verification-verify"),
    ("diagnostic-reports", "diagnostic-reports-list"),
];

/// The routes whose warm latency is measured: (name, function, event).
const WARM_ROUTES: [(&str, &str, &str); 4] = [
    ("get self", "users", "users-get"),
    ("jwks", "sessions", "sessions-jwks"),
    ("refresh", "sessions", "sessions-refresh"),
    ("login", "sessions", "sessions-login"),
];

/// The app's own variables, passed on to the functions (whose environment is otherwise empty,
/// as on Lambda).
const APP_VARS: [&str; 13] = [
    "AWS_ENDPOINT_URL",
    "AWS_ENDPOINT_URL_DYNAMODB",
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_REGION",
    "SECRETS_FILE",
    "S3_FORCE_PATH_STYLE",
    "TABLE_NAME",
    "REPORTS_BUCKET",
    "MAIL_FROM",
    "LINK_BASE_URL",
    "JWT_ISSUER",
    "JWT_AUDIENCE",
];
/// Variables that would change what is measured (cheaper hashing, refused refreshes).
pub(crate) const UNSET_VARS: [&str; 5] = [
    "ARGON2_MEMORY_KIB",
    "ARGON2_ITERATIONS",
    "ARGON2_PARALLELISM",
    "MIN_BUILD_IOS",
    "MIN_BUILD_ANDROID",
];

const PLACEHOLDER_BEARER: &str = "Bearer PLACEHOLDER";
const PLACEHOLDER_UUID: &str = "00000000-0000-4000-8000-000000000000";

pub struct Args {
    cold_starts: usize,
    warm_invocations: usize,
}

impl Args {
    pub fn parse(args: &[String]) -> Result<Self> {
        let mut parsed = Args {
            cold_starts: 5,
            warm_invocations: 200,
        };
        let mut args = args.iter();
        while let Some(flag) = args.next() {
            let slot = match flag.as_str() {
                "--cold" => &mut parsed.cold_starts,
                "--warm" => &mut parsed.warm_invocations,
                other => return Err(format!("bench: unknown argument {other:?}").into()),
            };
            *slot = args
                .next()
                .and_then(|value| value.parse().ok())
                .filter(|&n| n > 0)
                .ok_or_else(|| format!("bench: {flag} needs a whole number above 0"))?;
        }
        Ok(parsed)
    }
}

pub fn run(args: Args) -> Result<ExitCode> {
    let root = root();
    let secrets = root.join(".localaws/bench-secrets.json");
    crate::localenv::ensure_secrets_file(&secrets)?;
    let env = LocalEnv::new(Purpose::Test, BENCH_PORTS, &secrets);
    // SAFETY: no runtime, hence no other thread, exists yet.
    unsafe {
        env.apply_to_process();
        std::env::set_var("TABLE_NAME", TABLE);
        std::env::set_var("REPORTS_BUCKET", BUCKET);
        for name in UNSET_VARS {
            std::env::remove_var(name);
        }
    }
    block_on(async move {
        let mut signals = Signals::new()?;
        // Dropping `bench` on a signal kills the functions and stops the emulators.
        tokio::select! {
            done = bench(&root, &args) => done.map(|()| ExitCode::SUCCESS),
            stop = signals.recv() => {
                eprintln!("xtask: {}: stopping the functions and the emulators", stop.name());
                Ok(ExitCode::from(stop.exit_code()))
            }
        }
    })?
}

async fn bench(root: &Path, args: &Args) -> Result<()> {
    let binaries = build(root).await?;
    let out_dir = binaries["users"]
        .parent()
        .and_then(Path::parent)
        .ok_or("the release binaries are not in <target>/release")?
        .join("bench");
    let logs = out_dir.join("logs");
    let _ = std::fs::remove_dir_all(&logs);
    std::fs::create_dir_all(&logs)?;

    println!(
        "xtask: starting DynamoDB Local on port {} and moto on port {}",
        BENCH_PORTS.dynamodb, BENCH_PORTS.moto
    );
    let stack = Stack::start(root, BENCH_PORTS).await?;
    let measured = measure(root, args, &binaries, &logs).await;
    stack.stop().await;
    let report = measured?;

    print!("{}", report.text());
    let path = out_dir.join("report.json");
    std::fs::write(&path, serde_json::to_string_pretty(&report.json())? + "\n")?;
    println!(
        "\nxtask: wrote {} (function logs: {})",
        path.display(),
        logs.display()
    );
    Ok(())
}

/// Builds the six function binaries with the workspace release profile; their paths by name.
async fn build(root: &Path) -> Result<HashMap<String, PathBuf>> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| OsString::from("cargo"));
    let packages: Vec<&str> = FUNCTIONS
        .iter()
        .flat_map(|&(function, _)| ["-p", function])
        .collect();
    println!(
        "xtask: cargo build --release {} (minutes when not built yet)",
        packages.join(" ")
    );
    let status = command(&cargo)
        .args(["build", "--release"])
        .args(&packages)
        .current_dir(root)
        .status()
        .await
        .map_err(|e| format!("cannot run cargo build: {e}"))?;
    if !status.success() {
        return Err(format!("cargo build --release failed ({status})").into());
    }
    // Once more, now a no-op, for cargo to name the executables (its JSON messages replace
    // the progress shown above).
    let output = command(&cargo)
        .args(["build", "--release", "--quiet", "--message-format=json"])
        .args(&packages)
        .current_dir(root)
        .stderr(Stdio::inherit())
        .output()
        .await
        .map_err(|e| format!("cannot run cargo build: {e}"))?;
    if !output.status.success() {
        return Err(format!("cargo build --release failed ({})", output.status).into());
    }
    let executables = executables(&String::from_utf8_lossy(&output.stdout));
    for (function, _) in FUNCTIONS {
        if !executables.contains_key(function) {
            return Err(format!("cargo build reported no executable for {function}").into());
        }
    }
    Ok(executables)
}

/// Executable paths by binary name, from cargo's `--message-format=json` output.
fn executables(cargo_messages: &str) -> HashMap<String, PathBuf> {
    cargo_messages
        .lines()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .filter(|message| message["reason"] == "compiler-artifact")
        .filter_map(|message| {
            let name = message["target"]["name"].as_str()?;
            let path = message["executable"].as_str()?;
            Some((name.to_owned(), PathBuf::from(path)))
        })
        .collect()
}

/// The emulated resources, a user with a session, and every measurement.
async fn measure(
    root: &Path,
    args: &Args,
    binaries: &HashMap<String, PathBuf>,
    logs: &Path,
) -> Result<Report> {
    let seed = provision(root).await?;
    let mut bench = Bench::new(root, binaries, logs, seed);

    let mut cold = Vec::new();
    for (function, event) in FUNCTIONS {
        println!(
            "xtask: cold starts of {function} ({event}): 1 unmeasured + {}",
            args.cold_starts
        );
        let mut runs = Vec::new();
        for run in 0..=args.cold_starts {
            let measured = bench.cold_start(function, event).await?;
            // The first start warms the page cache and DynamoDB Local's JIT.
            if run > 0 {
                runs.push(measured);
            }
        }
        cold.push(ColdStarts {
            function,
            route: bench.route_key(event)?,
            runs,
        });
    }

    let mut warm = Vec::new();
    for (name, function, event) in WARM_ROUTES {
        println!(
            "xtask: warm {name} on {function} ({event}): {} invocations",
            args.warm_invocations
        );
        warm.push(
            bench
                .warm(name, function, event, args.warm_invocations)
                .await?,
        );
    }

    let sizes = FUNCTIONS
        .iter()
        .map(|&(function, _)| -> Result<(&'static str, u64)> {
            Ok((function, std::fs::metadata(&binaries[function])?.len()))
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(Report {
        machine: Machine::describe(),
        cold_starts: args.cold_starts,
        warm_invocations: args.warm_invocations,
        binaries: sizes,
        cold,
        warm,
    })
}

/// The user and session the events act as.
pub(crate) struct Seed {
    user_id: String,
    email: String,
    password: String,
    token: String,
    session_id: String,
    refresh_token: String,
}

/// The table, bucket and SES sender from `template.yaml`, as `dev` makes them, then one user
/// with one session, made in-process by the same code as the functions.
pub(crate) async fn provision(root: &Path) -> Result<Seed> {
    let template = std::fs::read_to_string(root.join("template.yaml"))?;
    let aws = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
    let dynamodb = aws_sdk_dynamodb::Client::new(&aws);
    let s3 = aws_sdk_s3::Client::from_conf(
        aws_sdk_s3::config::Builder::from(&aws)
            .force_path_style(true)
            .build(),
    );
    let ses = aws_sdk_ses::Client::new(&aws);
    shared::localstack::create_table(&dynamodb, &template, TABLE).await?;
    shared::localstack::create_bucket(&s3, BUCKET).await?;
    shared::localstack::verify_sender(&ses, &std::env::var("MAIL_FROM")?).await?;

    let app = App::from_env().await?;
    let email = format!("bench-{}@kuri.example", uuid::Uuid::new_v4().simple());
    let password = "bench correct horse battery".to_owned();
    let user = shared::service::users::register(
        &app,
        shared::service::users::NewUser {
            email: Email::parse(&email)?,
            password: Password::parse(&password)?,
            first_name: Some("Ada".into()),
            last_name: Some("Lovelace".into()),
            full_name: None,
            marketing_opt_in: false,
        },
    )
    .await
    .map_err(|e| format!("cannot register the benchmark user: {e}"))?;
    let tokens = shared::service::sessions::open(&app, &user)
        .await
        .map_err(|e| format!("cannot open the benchmark session: {e}"))?;
    Ok(Seed {
        user_id: user.id.to_string(),
        email,
        password,
        token: tokens.token,
        session_id: tokens.session_uuid.to_string(),
        refresh_token: tokens.refresh_token,
    })
}

pub(crate) struct Bench<'a> {
    events_dir: PathBuf,
    binaries: &'a HashMap<String, PathBuf>,
    logs: &'a Path,
    /// The app's variables, as this process has them.
    app_env: Vec<(&'static str, String)>,
    /// The newest access and refresh tokens of the seeded session (refreshes rotate them).
    seed: Seed,
    templates: HashMap<&'static str, String>,
}

/// One answer of a function, as API Gateway would read it.
struct Reply {
    status: u16,
    body: Value,
}

pub(crate) struct ColdRun {
    /// Spawn to the first `GET /invocation/next`.
    pub(crate) init: Duration,
    /// Spawn to the first answer.
    pub(crate) first_answer: Duration,
    pub(crate) status: u16,
    /// Peak resident memory after the first invocation.
    pub(crate) peak_rss_kib: Option<u64>,
}

struct ColdStarts {
    function: &'static str,
    route: String,
    runs: Vec<ColdRun>,
}

struct WarmRoute {
    name: &'static str,
    function: &'static str,
    route: String,
    status: u16,
    /// Event handed out to answer received, in ms.
    latency: Summary,
    peak_rss_kib: Option<u64>,
}

impl<'a> Bench<'a> {
    pub(crate) fn new(
        root: &Path,
        binaries: &'a HashMap<String, PathBuf>,
        logs: &'a Path,
        seed: Seed,
    ) -> Self {
        let app_env = APP_VARS
            .iter()
            .filter_map(|&name| Some((name, std::env::var(name).ok()?)))
            .collect();
        Self {
            events_dir: root.join("events"),
            binaries,
            logs,
            app_env,
            seed,
            templates: HashMap::new(),
        }
    }

    fn template(&mut self, event: &'static str) -> Result<&str> {
        if !self.templates.contains_key(event) {
            let path = self.events_dir.join(format!("{event}.json"));
            let text = std::fs::read_to_string(&path)
                .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
            self.templates.insert(event, text);
        }
        Ok(&self.templates[event])
    }

    fn route_key(&mut self, event: &'static str) -> Result<String> {
        let parsed: Value = serde_json::from_str(self.template(event)?)?;
        Ok(parsed["routeKey"].as_str().unwrap_or(event).to_owned())
    }

    /// The event file with the seeded user's token and uuid (the session's, for a refresh), and
    /// the body a login or a refresh needs.
    fn event(&mut self, event: &'static str) -> Result<Bytes> {
        let uuid = if event == "sessions-refresh" {
            self.seed.session_id.clone()
        } else {
            self.seed.user_id.clone()
        };
        let token = self.seed.token.clone();
        let mut value: Value = serde_json::from_str(&fill(self.template(event)?, &token, &uuid))?;
        match event {
            "sessions-refresh" => {
                set_body_field(&mut value, "refreshToken", &self.seed.refresh_token)?;
            }
            "sessions-login" => {
                value["body"] = json!({ "email": self.seed.email, "password": self.seed.password })
                    .to_string()
                    .into();
            }
            _ => {}
        }
        Ok(Bytes::from(serde_json::to_vec(&value)?))
    }

    /// Reads a function's answer; a refresh's new tokens become the ones the next events use.
    fn observe(&mut self, what: &str, outcome: &Outcome) -> Result<Reply> {
        let text = String::from_utf8_lossy(&outcome.body);
        if outcome.failed {
            return Err(format!("{what}: the function reported an error: {text}").into());
        }
        let reply = http_reply(&outcome.body)
            .map_err(|e| format!("{what}: not an API Gateway response ({e}): {text}"))?;
        let data = &reply.body["data"];
        if let (Some(token), Some(refresh)) =
            (data["token"].as_str(), data["refreshToken"].as_str())
            && data["sessionUUID"] == self.seed.session_id.as_str()
        {
            self.seed.token = token.to_owned();
            self.seed.refresh_token = refresh.to_owned();
        }
        Ok(reply)
    }

    fn spawn(&self, function: &str, api: &RuntimeApi) -> Result<(Child, PathBuf)> {
        let log = self.logs.join(format!("{function}.log"));
        let file = OpenOptions::new().create(true).append(true).open(&log)?;
        let mut step = command(&self.binaries[function]);
        step.env_clear()
            .envs(self.app_env.iter().map(|(k, v)| (k, v)))
            .envs(lambda_env(function, &api.address().to_string()))
            .stdout(file.try_clone()?)
            .stderr(file);
        let child = step
            .spawn()
            .map_err(|e| format!("cannot start {function}: {e}"))?;
        Ok((child, log))
    }

    /// A fresh process with an event already waiting, as for an on-demand cold start.
    pub(crate) async fn cold_start(
        &mut self,
        function: &str,
        event: &'static str,
    ) -> Result<ColdRun> {
        let api = RuntimeApi::start(function).await?;
        let pending = api.submit(self.event(event)?);
        let started = Instant::now();
        let (mut child, log) = self.spawn(function, &api)?;
        let what = format!("{function} cold start");
        let outcome = guarded(&what, &api, &mut child, &log, pending.outcome()).await;
        let peak_rss_kib = child.id().and_then(peak_rss_kib);
        terminate(&mut child).await;
        let outcome = outcome?.ok_or_else(|| format!("{what}: no answer"))?;
        let reply = self.observe(&what, &outcome)?;
        if reply.status >= 500 {
            return Err(format!("{what}: {} {}", reply.status, reply.body).into());
        }
        let polled = api
            .first_poll()
            .ok_or_else(|| format!("{what}: answered without asking for an event"))?;
        Ok(ColdRun {
            init: polled - started,
            first_answer: outcome.at - started,
            status: reply.status,
            peak_rss_kib,
        })
    }

    /// One process answering `count` invocations after its first (cold) one; each is handed
    /// out while the function already waits for it, as on a warm Lambda.
    async fn warm(
        &mut self,
        name: &'static str,
        function: &'static str,
        event: &'static str,
        count: usize,
    ) -> Result<WarmRoute> {
        let api = RuntimeApi::start(function).await?;
        let (mut child, log) = self.spawn(function, &api)?;
        let what = format!("warm {name}");
        let measured = self
            .invocations(&what, &api, &mut child, &log, event, count)
            .await;
        let peak_rss_kib = child.id().and_then(peak_rss_kib);
        terminate(&mut child).await;
        let (status, samples) = measured?;
        Ok(WarmRoute {
            name,
            function,
            route: self.route_key(event)?,
            status,
            latency: Summary::of(samples),
            peak_rss_kib,
        })
    }

    async fn invocations(
        &mut self,
        what: &str,
        api: &RuntimeApi,
        child: &mut Child,
        log: &Path,
        event: &'static str,
        count: usize,
    ) -> Result<(u16, Vec<f64>)> {
        let mut samples = Vec::with_capacity(count);
        let mut status = 0;
        for invocation in 0..=count {
            guarded(what, api, child, log, api.polled(invocation as u64 + 1)).await?;
            let pending = api.submit(self.event(event)?);
            let submitted = pending.submitted;
            let outcome = guarded(what, api, child, log, pending.outcome())
                .await?
                .ok_or_else(|| format!("{what}: no answer"))?;
            let reply = self.observe(what, &outcome)?;
            if !(200..300).contains(&reply.status) {
                return Err(format!("{what}: {} {}", reply.status, reply.body).into());
            }
            status = reply.status;
            // The first invocation of a fresh process is a cold one.
            if invocation > 0 {
                samples.push(millis(outcome.at - submitted));
            }
        }
        Ok((status, samples))
    }
}

/// Runs `future` unless the function exits, reports a failed start, or takes too long.
async fn guarded<T>(
    what: &str,
    api: &RuntimeApi,
    child: &mut Child,
    log: &Path,
    future: impl Future<Output = T>,
) -> Result<T> {
    tokio::select! {
        value = future => Ok(value),
        status = child.wait() => Err(format!(
            "{what}: the function exited ({}); {} ends with:\n{}",
            status.map_or_else(|e| e.to_string(), |s| s.to_string()),
            log.display(),
            tail(log),
        )
        .into()),
        error = api.init_error() => Err(format!("{what}: INIT failed: {error}").into()),
        () = tokio::time::sleep(INVOKE_TIMEOUT) => Err(format!(
            "{what}: nothing within {} s; {} ends with:\n{}",
            INVOKE_TIMEOUT.as_secs(),
            log.display(),
            tail(log),
        )
        .into()),
    }
}

/// What Lambda sets for a provided.al2023 function, as far as `lambda_runtime` reads it.
fn lambda_env(function: &str, runtime_api: &str) -> Vec<(&'static str, String)> {
    let name = format!("kuri-users-{function}");
    vec![
        ("AWS_LAMBDA_RUNTIME_API", runtime_api.to_owned()),
        ("AWS_LAMBDA_FUNCTION_NAME", name.clone()),
        (
            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE",
            FUNCTION_MEMORY_MIB.to_string(),
        ),
        ("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST".to_owned()),
        ("AWS_LAMBDA_INITIALIZATION_TYPE", "on-demand".to_owned()),
        ("AWS_LAMBDA_LOG_GROUP_NAME", format!("/aws/lambda/{name}")),
        (
            "AWS_LAMBDA_LOG_STREAM_NAME",
            format!("bench/[$LATEST]{}", uuid::Uuid::new_v4().simple()),
        ),
        ("RUST_LOG", "warn".to_owned()),
    ]
}

/// An event file with its placeholders replaced by a real bearer token and uuid.
fn fill(template: &str, token: &str, uuid: &str) -> String {
    template
        .replace(PLACEHOLDER_BEARER, &format!("Bearer {token}"))
        .replace(PLACEHOLDER_UUID, uuid)
}

/// Sets one field of an event's JSON body, keeping the others.
fn set_body_field(event: &mut Value, field: &str, value: &str) -> Result<()> {
    let mut body: Value =
        serde_json::from_str(event["body"].as_str().ok_or("the event has no body")?)?;
    body.as_object_mut()
        .ok_or("the event body is not a JSON object")?
        .insert(field.to_owned(), value.into());
    event["body"] = body.to_string().into();
    Ok(())
}

/// The status and JSON body of a payload-2.0 response (`{"statusCode", "body", ...}`).
fn http_reply(payload: &[u8]) -> Result<Reply> {
    let response: Value = serde_json::from_slice(payload)?;
    let status = response["statusCode"]
        .as_u64()
        .and_then(|s| u16::try_from(s).ok())
        .ok_or("no statusCode")?;
    let body = match response["body"].as_str() {
        Some(text) if !text.is_empty() => serde_json::from_str(text).unwrap_or(Value::Null),
        _ => Value::Null,
    };
    Ok(Reply { status, body })
}

/// `VmHWM` (peak resident set) of a live process, in KiB.
fn peak_rss_kib(pid: u32) -> Option<u64> {
    vm_hwm_kib(&std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?)
}

fn vm_hwm_kib(status: &str) -> Option<u64> {
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmHWM:"))?
        .trim()
        .strip_suffix("kB")?
        .trim()
        .parse()
        .ok()
}

fn tail(log: &Path) -> String {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    match lines[lines.len().saturating_sub(20)..].join("\n") {
        tail if tail.is_empty() => "(empty)".to_owned(),
        tail => tail,
    }
}

fn millis(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1000.0
}

/// Nearest-rank percentile (`p` in 0..=100) of ascending samples.
fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = (p / 100.0 * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

#[derive(Clone, Copy, Debug, PartialEq)]
struct Summary {
    min: f64,
    p50: f64,
    p90: f64,
    p99: f64,
    max: f64,
}

impl Summary {
    fn of(mut samples: Vec<f64>) -> Self {
        samples.sort_by(f64::total_cmp);
        Self {
            min: percentile(&samples, 0.0),
            p50: percentile(&samples, 50.0),
            p90: percentile(&samples, 90.0),
            p99: percentile(&samples, 99.0),
            max: percentile(&samples, 100.0),
        }
    }

    fn json(&self) -> Value {
        json!({
            "minMs": round3(self.min),
            "p50Ms": round3(self.p50),
            "p90Ms": round3(self.p90),
            "p99Ms": round3(self.p99),
            "maxMs": round3(self.max),
        })
    }
}

fn round3(value: f64) -> f64 {
    (value * 1000.0).round() / 1000.0
}

struct Machine {
    arch: &'static str,
    cpus: usize,
    cpu_model: String,
}

impl Machine {
    fn describe() -> Self {
        let cpu_model = std::fs::read_to_string("/proc/cpuinfo")
            .ok()
            .and_then(|info| {
                info.lines()
                    .find_map(|line| line.strip_prefix("model name")?.split_once(':'))
                    .map(|(_, model)| model.trim().to_owned())
            })
            .unwrap_or_else(|| "unknown CPU".to_owned());
        Self {
            arch: std::env::consts::ARCH,
            cpus: std::thread::available_parallelism().map_or(1, |n| n.get()),
            cpu_model,
        }
    }
}

struct Report {
    machine: Machine,
    cold_starts: usize,
    warm_invocations: usize,
    binaries: Vec<(&'static str, u64)>,
    cold: Vec<ColdStarts>,
    warm: Vec<WarmRoute>,
}

impl ColdStarts {
    fn init(&self) -> Summary {
        Summary::of(self.runs.iter().map(|r| millis(r.init)).collect())
    }

    fn first_answer(&self) -> Summary {
        Summary::of(self.runs.iter().map(|r| millis(r.first_answer)).collect())
    }

    fn peak_rss_kib(&self) -> Option<u64> {
        self.runs.iter().filter_map(|r| r.peak_rss_kib).max()
    }

    fn statuses(&self) -> String {
        let mut statuses: Vec<u16> = self.runs.iter().map(|r| r.status).collect();
        statuses.sort_unstable();
        statuses.dedup();
        statuses
            .iter()
            .map(u16::to_string)
            .collect::<Vec<_>>()
            .join("/")
    }
}

/// Peak RSS as MiB and as a share of the function's memory size.
fn rss(kib: Option<u64>) -> (Option<f64>, Option<f64>) {
    let mib = kib.map(|k| k as f64 / 1024.0);
    (mib, mib.map(|m| m / f64::from(FUNCTION_MEMORY_MIB)))
}

struct Ratios {
    init_over_get_self: Option<f64>,
    first_answer_over_get_self: Option<f64>,
    login_over_get_self: Option<f64>,
    peak_rss_over_memory: Option<f64>,
}

impl Report {
    fn warm_p50(&self, name: &str) -> Option<f64> {
        self.warm
            .iter()
            .find(|w| w.name == name)
            .map(|w| w.latency.p50)
    }

    fn ratios(&self) -> Ratios {
        let get_self = self.warm_p50("get self");
        let users = self.cold.iter().find(|c| c.function == "users");
        let over = |value: Option<f64>| Some(value? / get_self?);
        let peak = self
            .warm
            .iter()
            .filter_map(|w| w.peak_rss_kib)
            .chain(self.cold.iter().filter_map(ColdStarts::peak_rss_kib))
            .max();
        Ratios {
            init_over_get_self: over(users.map(|c| c.init().p50)),
            first_answer_over_get_self: over(users.map(|c| c.first_answer().p50)),
            login_over_get_self: over(self.warm_p50("login")),
            peak_rss_over_memory: rss(peak).1,
        }
    }

    fn header(&self) -> [String; 4] {
        let m = &self.machine;
        [
            "Figures from this machine, NOT from AWS Lambda:".to_owned(),
            "- DynamoDB Local (Java, in memory) and moto on loopback stand in for DynamoDB, S3, \
             SES and SNS: no network between function and database."
                .to_owned(),
            format!(
                "- This machine is {} with {} CPUs ({}), not Graviton (arm64, as deployed); Lambda \
                 gives a {FUNCTION_MEMORY_MIB} MB function about {:.2} vCPU (1 vCPU at 1,769 MB), \
                 so CPU-bound work such as Argon2id is slower there.",
                m.arch,
                m.cpus,
                m.cpu_model,
                f64::from(FUNCTION_MEMORY_MIB) / 1769.0
            ),
            "- Cold start here is process spawn to the first poll of the Runtime API (INIT) and \
             to the first answer; Lambda adds sandbox creation and code download before it."
                .to_owned(),
        ]
    }

    fn text(&self) -> String {
        use std::fmt::Write;
        let mut out = String::new();
        let _ = writeln!(out, "\n== cargo xtask bench ==");
        for line in self.header() {
            let _ = writeln!(out, "{line}");
        }

        let _ = writeln!(
            out,
            "\nRelease binaries (workspace release profile)\n  {:<20} {:>9}",
            "function", "size MiB"
        );
        for (function, bytes) in &self.binaries {
            let _ = writeln!(out, "  {function:<20} {:>9.2}", *bytes as f64 / MIB);
        }

        let _ = writeln!(
            out,
            "\nCold starts: {} fresh processes per function, after 1 unmeasured (ms)\n  \
             {:<19} {:<42} {:>6} {:>9} {:>9} {:>11} {:>11} {:>8}",
            self.cold_starts,
            "function",
            "first event",
            "status",
            "INIT min",
            "INIT med",
            "+invoke min",
            "+invoke med",
            "RSS MiB"
        );
        for cold in &self.cold {
            let (init, first) = (cold.init(), cold.first_answer());
            let _ = writeln!(
                out,
                "  {:<19} {:<42} {:>6} {:>9.1} {:>9.1} {:>11.1} {:>11.1} {:>8}",
                cold.function,
                cold.route,
                cold.statuses(),
                init.min,
                init.p50,
                first.min,
                first.p50,
                format_option(rss(cold.peak_rss_kib()).0, 1),
            );
        }

        let _ = writeln!(
            out,
            "\nWarm invocations: {} per route on one process, after its first (ms; event handed \
             out to answer received)\n  {:<9} {:<19} {:<42} {:>6} {:>7} {:>7} {:>7} {:>7} {:>9} {:>7}",
            self.warm_invocations,
            "route",
            "function",
            "event",
            "status",
            "p50",
            "p90",
            "p99",
            "max",
            "peak RSS",
            "/256MB",
        );
        for warm in &self.warm {
            let (mib, share) = rss(warm.peak_rss_kib);
            let _ = writeln!(
                out,
                "  {:<9} {:<19} {:<42} {:>6} {:>7.2} {:>7.2} {:>7.2} {:>7.2} {:>9} {:>7}",
                warm.name,
                warm.function,
                warm.route,
                warm.status,
                warm.latency.p50,
                warm.latency.p90,
                warm.latency.p99,
                warm.latency.max,
                format_option(mib, 1),
                format_option(share.map(|s| s * 100.0), 1) + "%",
            );
        }

        let ratios = self.ratios();
        let _ = writeln!(out, "\nRatios");
        let rows = [
            (
                "users cold start INIT (median) / warm get-self p50",
                ratios.init_over_get_self,
                "x",
            ),
            (
                "users INIT + first invoke (median) / warm get-self p50",
                ratios.first_answer_over_get_self,
                "x",
            ),
            (
                "login p50 / get-self p50 (the cost of Argon2id m=19 MiB, t=2, p=1)",
                ratios.login_over_get_self,
                "x",
            ),
            (
                "highest peak RSS / 256 MiB function memory",
                ratios.peak_rss_over_memory.map(|r| r * 100.0),
                "%",
            ),
        ];
        for (label, value, unit) in rows {
            let _ = writeln!(out, "  {label:<68} {:>8}{unit}", format_option(value, 1));
        }
        out
    }

    fn json(&self) -> Value {
        let ratios = self.ratios();
        json!({
            "note": self.header().join(" "),
            "machine": {
                "arch": self.machine.arch,
                "cpus": self.machine.cpus,
                "cpuModel": self.machine.cpu_model,
            },
            "functionMemoryMiB": FUNCTION_MEMORY_MIB,
            "binaries": self.binaries.iter().map(|(function, bytes)| json!({
                "function": function,
                "bytes": bytes,
                "mib": round3(*bytes as f64 / MIB),
            })).collect::<Vec<_>>(),
            "coldStarts": {
                "runsPerFunction": self.cold_starts,
                "unmeasuredFirstRuns": 1,
                "functions": self.cold.iter().map(|cold| json!({
                    "function": cold.function,
                    "event": cold.route,
                    "statuses": cold.runs.iter().map(|r| r.status).collect::<Vec<_>>(),
                    "initMs": cold.runs.iter().map(|r| round3(millis(r.init))).collect::<Vec<_>>(),
                    "initAndFirstInvokeMs": cold.runs.iter()
                        .map(|r| round3(millis(r.first_answer))).collect::<Vec<_>>(),
                    "init": cold.init().json(),
                    "initAndFirstInvoke": cold.first_answer().json(),
                    "peakRssMiB": rss(cold.peak_rss_kib()).0.map(round3),
                })).collect::<Vec<_>>(),
            },
            "warm": {
                "invocationsPerRoute": self.warm_invocations,
                "routes": self.warm.iter().map(|warm| json!({
                    "name": warm.name,
                    "function": warm.function,
                    "event": warm.route,
                    "status": warm.status,
                    "latency": warm.latency.json(),
                    "peakRssMiB": rss(warm.peak_rss_kib).0.map(round3),
                    "peakRssOfFunctionMemory": rss(warm.peak_rss_kib).1.map(round3),
                })).collect::<Vec<_>>(),
            },
            "ratios": {
                "usersInitOverWarmGetSelfP50": ratios.init_over_get_self.map(round3),
                "usersInitAndFirstInvokeOverWarmGetSelfP50":
                    ratios.first_answer_over_get_self.map(round3),
                "loginP50OverGetSelfP50": ratios.login_over_get_self.map(round3),
                "highestPeakRssOverFunctionMemory": ratios.peak_rss_over_memory.map(round3),
            },
        })
    }
}

fn format_option(value: Option<f64>, decimals: usize) -> String {
    value.map_or_else(|| "n/a".to_owned(), |v| format!("{v:.decimals$}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        let samples: Vec<f64> = (1..=200).map(f64::from).collect();
        assert_eq!(percentile(&samples, 50.0), 100.0);
        assert_eq!(percentile(&samples, 90.0), 180.0);
        assert_eq!(percentile(&samples, 99.0), 198.0);
        assert_eq!(percentile(&samples, 100.0), 200.0);
        assert_eq!(percentile(&samples, 0.0), 1.0);
        assert_eq!(percentile(&[7.0], 99.0), 7.0);
        assert!(percentile(&[], 50.0).is_nan());
    }

    #[test]
    fn the_median_of_five_runs_is_the_third_fastest_whatever_their_order() {
        let summary = Summary::of(vec![30.0, 10.0, 50.0, 20.0, 40.0]);
        assert_eq!(summary.min, 10.0);
        assert_eq!(summary.p50, 30.0);
        assert_eq!(summary.max, 50.0);
    }

    #[test]
    fn placeholders_become_the_token_and_uuid_everywhere() {
        let template = include_str!("../../events/users-get.json");
        let uuid = "5f0c6a53-3c8e-4f5e-9a43-2a8f0d1c7b11";
        let filled = fill(template, "abc.def.ghi", uuid);
        let event: Value = serde_json::from_str(&filled).unwrap();

        assert!(!filled.contains(PLACEHOLDER_UUID));
        assert!(!filled.contains("PLACEHOLDER"));
        assert_eq!(event["headers"]["authorization"], "Bearer abc.def.ghi");
        assert_eq!(event["rawPath"], format!("/users/{uuid}"));
        assert_eq!(event["pathParameters"]["uuid"], uuid);
        assert_eq!(
            event["requestContext"]["http"]["path"],
            format!("/users/{uuid}")
        );
        assert_eq!(event["requestContext"]["timeEpoch"], 1714565001123_i64);
    }

    #[test]
    fn a_body_field_is_replaced_and_the_others_kept() {
        let mut event: Value =
            serde_json::from_str(include_str!("../../events/sessions-refresh.json")).unwrap();
        set_body_field(&mut event, "refreshToken", "fresh").unwrap();
        let body: Value = serde_json::from_str(event["body"].as_str().unwrap()).unwrap();

        assert_eq!(body["refreshToken"], "fresh");
        assert_eq!(body["buildNumber"], 420);
        assert_eq!(body["platform"], "ios");
    }

    #[test]
    fn every_measured_event_parses_as_lambda_http_does() {
        let events = FUNCTIONS
            .iter()
            .map(|(_, event)| *event)
            .chain(WARM_ROUTES.iter().map(|(_, _, event)| *event));
        for event in events {
            let path = format!("{}/../events/{event}.json", env!("CARGO_MANIFEST_DIR"));
            let filled = fill(
                &std::fs::read_to_string(&path).unwrap(),
                "token",
                "5f0c6a53-3c8e-4f5e-9a43-2a8f0d1c7b11",
            );
            lambda_http::request::from_str(&filled).unwrap_or_else(|e| panic!("{event}: {e}"));
        }
    }

    #[test]
    fn a_payload_response_gives_its_status_and_json_body() {
        let reply = http_reply(
            br#"{"statusCode":201,"headers":{},"body":"{\"data\":{\"a\":1}}","isBase64Encoded":false}"#,
        )
        .unwrap();
        assert_eq!(reply.status, 201);
        assert_eq!(reply.body["data"]["a"], 1);

        let empty = http_reply(br#"{"statusCode":204,"headers":{}}"#).unwrap();
        assert_eq!(empty.status, 204);
        assert_eq!(empty.body, Value::Null);

        assert!(http_reply(br#"{"body":"x"}"#).is_err());
    }

    #[test]
    fn peak_resident_memory_is_read_from_proc_status() {
        let status =
            "Name:\tusers\nVmPeak:\t  120000 kB\nVmHWM:\t   14336 kB\nVmRSS:\t   12000 kB\n";
        assert_eq!(vm_hwm_kib(status), Some(14336));
        assert_eq!(vm_hwm_kib("Name:\tusers\n"), None);
        assert!(peak_rss_kib(std::process::id()).is_some_and(|kib| kib > 0));
    }

    #[test]
    fn executables_come_from_cargo_artifact_messages() {
        let messages = [
            r#"{"reason":"compiler-artifact","target":{"name":"shared","kind":["lib"]},"executable":null}"#,
            r#"{"reason":"compiler-artifact","target":{"name":"two-factor","kind":["bin"]},"executable":"/t/release/two-factor"}"#,
            r#"{"reason":"build-finished","success":true}"#,
            "not json",
        ]
        .join("\n");
        let found = executables(&messages);
        assert_eq!(found.len(), 1);
        assert_eq!(found["two-factor"], PathBuf::from("/t/release/two-factor"));
    }

    #[test]
    fn arguments_have_defaults_and_refuse_nonsense() {
        let defaults = Args::parse(&[]).unwrap();
        assert_eq!((defaults.cold_starts, defaults.warm_invocations), (5, 200));
        let given =
            Args::parse(&["--warm".into(), "50".into(), "--cold".into(), "3".into()]).unwrap();
        assert_eq!((given.cold_starts, given.warm_invocations), (3, 50));
        assert!(Args::parse(&["--cold".into(), "0".into()]).is_err());
        assert!(Args::parse(&["--warm".into()]).is_err());
        assert!(Args::parse(&["--fast".into()]).is_err());
    }
}
