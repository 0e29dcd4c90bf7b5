//! `cargo xtask bench`: what Lambda users pay for, measured on the release binaries run the
//! way Lambda runs them (a Runtime API that hands out events), side by side with two baselines
//! built in the same run (`bench/baselines`: a hello-world `lambda_http` binary and a minimal
//! get-user).
//!
//! The Lambda model: INIT with burst CPU; from the first `GET /invocation/next` on, the
//! process is in a cgroup v1 `cpu` quota of `100000 × MB / 1769` µs per 100 ms (Lambda's CPU
//! share of a memory size); DynamoDB over TLS (a terminator on loopback in front of DynamoDB
//! Local, its throwaway CA trusted through `SSL_CERT_FILE`, which the functions add to the AWS
//! roots they trust, `shared::aws`). Then warm load through the dev server (`cargo xtask dev`'s
//! API Gateway) at concurrency 1 and 8, and the arm64 zip of each function.
//!
//! Figures, ratios and which targets hold: nothing here fails on a number. The tables go to
//! `bench/RESULTS.md` (with the machine, date and load), the figures to
//! `target/bench/report.json`.

use std::collections::HashMap;
use std::ffi::OsString;
use std::fs::OpenOptions;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{ExitCode, Stdio};
use std::sync::{Arc, Mutex};
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
use crate::tls_proxy::{Forwarded, TlsProxy};
use crate::{Result, block_on, root};

mod load;
mod report;

use load::LoadRun;
pub(crate) use report::utc_now;
use report::{Machine, Report, Zip, Zips};

/// Apart from `dev` (8000/5000) and `test` (8001/5001), so that all three can run at once.
pub const BENCH_PORTS: Ports = Ports {
    dynamodb: 8002,
    moto: 5002,
};
pub(crate) const TABLE: &str = "kuri-bench";
pub(crate) const BUCKET: &str = "kuri-bench-reports";
/// The memory sizes measured (MB); Lambda gives one full vCPU at 1,769 MB.
const SIZES: [u32; 5] = [128, 256, 512, 1024, 1769];
const FULL_CPU_MB: u32 = 1769;
/// `MemorySize` in `template.yaml` before this benchmark chose one per function.
const DEFAULT_MEMORY_MB: u32 = 256;
/// Lambda's arm64 price in us-east-1 (USD): per GB-second (1 ms granularity, INIT included
/// since August 2025) and per request.
const PRICE_PER_GB_SECOND: f64 = 0.000_013_333_4;
const PRICE_PER_REQUEST: f64 = 0.000_000_2;
/// Longer than the functions' 10 s timeout: a stuck function is an error, not a figure.
const INVOKE_TIMEOUT: Duration = Duration::from_secs(30);
const MIB: f64 = 1024.0 * 1024.0;

/// A binary the benchmark starts: a baseline or a function.
#[derive(Clone, Copy)]
struct Subject {
    name: &'static str,
    /// The cargo package and binary.
    package: &'static str,
    binary: &'static str,
    /// The event its cold starts are measured with: a route that reads but does not change
    /// what later runs see, so every start does the same work.
    cold_event: &'static str,
    baseline: bool,
}

const fn function(name: &'static str, cold_event: &'static str) -> Subject {
    Subject {
        name,
        package: name,
        binary: name,
        cold_event,
        baseline: false,
    }
}

const HELLO: &str = "hello";
const GET_USER: &str = "get-user";
const SUBJECTS: [Subject; 9] = [
    Subject {
        name: HELLO,
        package: "bench-baselines",
        binary: "baseline-hello",
        cold_event: "users-get",
        baseline: true,
    },
    Subject {
        name: GET_USER,
        package: "bench-baselines",
        binary: "baseline-get-user",
        cold_event: "users-get",
        baseline: true,
    },
    function("users", "users-get"),
    function("sessions", "sessions-refresh"),
    function("two-factor", "two-factor-resend"),
    function("password-recovery", "password-recovery-start"),
    function("email-verification", "email-verification-verify"),
    function("diagnostic-reports", "diagnostic-reports-list"),
    function("passkeys", "passkeys-list"),
];

/// A warm route measured at every size.
#[derive(Clone, Copy)]
struct WarmRoute {
    label: &'static str,
    subject: &'static str,
    event: &'static str,
    /// Hashes a password with Argon2id (a login, a registration, a reset).
    hashing: bool,
    /// The route its function's memory size is chosen by.
    sizing: bool,
}

const fn warm(
    label: &'static str,
    subject: &'static str,
    event: &'static str,
    hashing: bool,
    sizing: bool,
) -> WarmRoute {
    WarmRoute {
        label,
        subject,
        event,
        hashing,
        sizing,
    }
}

const WARM_ROUTES: [WarmRoute; 12] = [
    warm("hello", HELLO, "users-get", false, false),
    warm("minimal get-user", GET_USER, "users-get", false, false),
    warm("get self", "users", "users-get", false, false),
    warm("register", "users", "users-create", true, true),
    warm("refresh", "sessions", "sessions-refresh", false, false),
    warm("login", "sessions", "sessions-login", true, true),
    warm("2fa resend", "two-factor", "two-factor-resend", false, true),
    warm(
        "recovery start",
        "password-recovery",
        "password-recovery-start",
        false,
        false,
    ),
    warm(
        "reset",
        "password-recovery",
        "password-recovery-reset",
        true,
        true,
    ),
    warm(
        "verify email",
        "email-verification",
        "email-verification-verify",
        false,
        true,
    ),
    warm(
        "list reports",
        "diagnostic-reports",
        "diagnostic-reports-list",
        false,
        true,
    ),
    warm("list passkeys", "passkeys", "passkeys-list", false, true),
];

/// The app's own variables, passed on to the functions (whose environment is otherwise empty,
/// as on Lambda).
const APP_VARS: [&str; 17] = [
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
    "WEBAUTHN_RP_ID",
    "WEBAUTHN_ORIGINS",
    "SSL_CERT_FILE",
    "JWT_PUBLIC_KEY_X",
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
const BENCH_PASSWORD: &str = "bench correct horse battery";

pub struct Args {
    runs: usize,
    warm: usize,
    load: usize,
    zips: bool,
    sizes: Vec<u32>,
}

impl Args {
    pub fn parse(args: &[String]) -> Result<Self> {
        let mut parsed = Args {
            runs: 20,
            warm: 20,
            load: 200,
            zips: false,
            sizes: SIZES.to_vec(),
        };
        let mut args = args.iter();
        while let Some(flag) = args.next() {
            let slot = match flag.as_str() {
                "--runs" => &mut parsed.runs,
                "--warm" => &mut parsed.warm,
                "--load" => &mut parsed.load,
                "--zips" => {
                    parsed.zips = true;
                    continue;
                }
                "--sizes" => {
                    let sizes: Option<Vec<u32>> = args.next().map(|list| {
                        list.split(',')
                            .filter_map(|size| size.trim().parse().ok())
                            .filter(|size| (128..=10240).contains(size))
                            .collect()
                    });
                    parsed.sizes = sizes
                        .filter(|sizes| !sizes.is_empty())
                        .ok_or("bench: --sizes needs sizes in MB, e.g. 128,1769")?;
                    continue;
                }
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

/// How DynamoDB is reached: over the TLS terminator, or (without `openssl`) plain HTTP.
struct Transport {
    proxy_listener: Option<std::net::TcpListener>,
    certificates: Option<crate::tls_proxy::Certificates>,
    note: String,
}

/// The throwaway CA (which the functions trust through `SSL_CERT_FILE`) and the port
/// of the terminator, made before the runtime so that the environment can name them.
fn transport(out_dir: &Path) -> Transport {
    let made = crate::tls_proxy::make_certificates(&out_dir.join("tls")).and_then(|certs| {
        let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
        Ok((certs, listener))
    });
    match made {
        Ok((certificates, listener)) => {
            let port = listener.local_addr().map_or(0, |a| a.port());
            // SAFETY: no runtime, hence no other thread, exists yet.
            unsafe {
                std::env::set_var("SSL_CERT_FILE", &certificates.ca);
                std::env::set_var(
                    "AWS_ENDPOINT_URL_DYNAMODB",
                    format!("https://localhost:{port}"),
                );
            }
            Transport {
                proxy_listener: Some(listener),
                certificates: Some(certificates),
                note: format!(
                    "DynamoDB over TLS: a terminator on 127.0.0.1:{port} in front of DynamoDB \
                     Local, its throwaway CA in SSL_CERT_FILE (the functions add it to the AWS \
                     roots they trust; the minimal get-user, on the SDK's defaults, adds it to \
                     the system's store, which it loads as on Lambda)"
                ),
            }
        }
        Err(error) => Transport {
            proxy_listener: None,
            certificates: None,
            note: format!(
                "DynamoDB over PLAIN HTTP (no TLS terminator: {error}); DynamoDB times are not \
                 measured"
            ),
        },
    }
}

pub fn run(args: Args) -> Result<ExitCode> {
    let root = root();
    let secrets = root.join(".localaws/bench-secrets.json");
    crate::localenv::ensure_secrets_file(&secrets)?;
    let env = LocalEnv::new(Purpose::Test, BENCH_PORTS, &secrets);
    let out_dir = root.join("target/bench");
    std::fs::create_dir_all(&out_dir)?;
    // SAFETY: no runtime, hence no other thread, exists yet.
    unsafe {
        env.apply_to_process();
        std::env::set_var("TABLE_NAME", TABLE);
        std::env::set_var("REPORTS_BUCKET", BUCKET);
        std::env::set_var("RUST_LOG", "warn");
        for name in UNSET_VARS {
            std::env::remove_var(name);
        }
    }
    let transport = transport(&out_dir);
    block_on(async move {
        let mut signals = Signals::new()?;
        // Dropping `bench` on a signal kills the functions and stops the emulators.
        tokio::select! {
            done = bench(&root, &out_dir, &args, transport) => done.map(|()| ExitCode::SUCCESS),
            stop = signals.recv() => {
                eprintln!("xtask: {}: stopping the functions and the emulators", stop.name());
                Ok(ExitCode::from(stop.exit_code()))
            }
        }
    })?
}

async fn bench(root: &Path, out_dir: &Path, args: &Args, transport: Transport) -> Result<()> {
    let started = Instant::now();
    let load_before = report::load_average();
    // The emulators are installed and started while cargo builds: on a fresh clone that is
    // a download of each beside minutes of compiling.
    println!(
        "xtask: starting DynamoDB Local on port {} and moto on port {} beside the build",
        BENCH_PORTS.dynamodb, BENCH_PORTS.moto
    );
    let (binaries, stack) = tokio::join!(build(root), Stack::start(root, BENCH_PORTS));
    let stack = stack?;
    let binaries = match binaries {
        Ok(binaries) => binaries,
        Err(error) => {
            stack.stop().await;
            return Err(error);
        }
    };
    let built = started.elapsed();
    let logs = out_dir.join("logs");
    let _ = std::fs::remove_dir_all(&logs);
    std::fs::create_dir_all(&logs)?;
    let proxy = match (transport.proxy_listener, &transport.certificates) {
        (Some(listener), Some(certificates)) => Some(Arc::new(TlsProxy::start(
            listener,
            certificates,
            SocketAddr::from(([127, 0, 0, 1], BENCH_PORTS.dynamodb)),
        )?)),
        _ => None,
    };
    let cpu = CpuShares::detect();
    let measured = measure(root, args, &binaries, &logs, proxy.clone(), &cpu).await;
    drop(proxy);
    stack.stop().await;
    cpu.remove();
    let measured = measured?;

    let zips = if args.zips {
        match crate::package::build(root).await {
            Ok(build) => Zips::Built(
                build
                    .functions
                    .into_iter()
                    .map(|built| Zip {
                        function: built.function,
                        bytes: built.zip_bytes,
                    })
                    .collect(),
            ),
            Err(error) => {
                eprintln!("xtask: the arm64 zips were not built: {error}");
                Zips::Failed(error.to_string())
            }
        }
    } else {
        earlier_zips(root)
    };

    let template = std::fs::read_to_string(root.join("template.yaml"))?;
    let report = Report {
        machine: Machine::describe(),
        date: report::utc_now(),
        load_before,
        load_after: report::load_average(),
        args_line: format!(
            "--runs {} --warm {} --load {} --sizes {}{}",
            args.runs,
            args.warm,
            args.load,
            args.sizes
                .iter()
                .map(u32::to_string)
                .collect::<Vec<_>>()
                .join(","),
            if args.zips { " --zips" } else { "" }
        ),
        transport: transport.note,
        cpu: cpu.note(),
        configured: configured_sizes(&template),
        build_secs: built.as_secs_f64(),
        total_secs: started.elapsed().as_secs_f64(),
        measured,
        zips,
    };
    let markdown = report.markdown();
    print!("{markdown}");
    let json_path = out_dir.join("report.json");
    std::fs::write(
        &json_path,
        serde_json::to_string_pretty(&report.json())? + "\n",
    )?;
    let results = root.join("bench/RESULTS.md");
    std::fs::write(&results, &markdown)?;
    println!(
        "\nxtask: wrote {} and {} (function logs: {})",
        results.display(),
        json_path.display(),
        logs.display()
    );
    Ok(())
}

/// Builds every subject with the workspace release profile in one `cargo build`, so that the
/// dependencies they share are compiled once. Built together, cargo unifies `shared`'s
/// features, but a function still links only what its `main` reaches (its `App` type builds
/// only its own clients): measured on x86_64, `sessions` built alone is 0.5 % smaller (12.46
/// against 12.52 MB). The zips, from `sam build`, are each function built on its own.
/// Their executables by binary name.
async fn build(root: &Path) -> Result<HashMap<String, PathBuf>> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| OsString::from("cargo"));
    let mut packages: Vec<&str> = SUBJECTS.iter().map(|s| s.package).collect();
    packages.dedup();
    println!(
        "xtask: cargo build --release of {} (minutes when not built yet)",
        packages.join(", ")
    );
    let mut args = vec![
        "build",
        "--release",
        "--message-format=json-render-diagnostics",
    ];
    for package in &packages {
        args.extend(["-p", package]);
    }
    let output = command(&cargo)
        .args(args)
        .current_dir(root)
        .stderr(Stdio::inherit())
        .output()
        .await
        .map_err(|e| format!("cannot run cargo build: {e}"))?;
    if !output.status.success() {
        return Err("cargo build --release of the benchmark's subjects failed".into());
    }
    let executables = self::executables(&String::from_utf8_lossy(&output.stdout));
    for subject in SUBJECTS {
        if !executables.contains_key(subject.binary) {
            return Err(format!("cargo build reported no executable {}", subject.binary).into());
        }
    }
    Ok(executables)
}

/// The zips of the last `cargo xtask package`, when its report is there.
fn earlier_zips(root: &Path) -> Zips {
    let path = crate::package::report_path(root);
    let report = std::fs::read_to_string(&path)
        .ok()
        .and_then(|text| serde_json::from_str::<Value>(&text).ok());
    report.map_or(Zips::Skipped, |report| package_zips(&report))
}

/// The zips in a report of `cargo xtask package`, dated by its `builtAt`.
fn package_zips(report: &Value) -> Zips {
    let zips: Vec<Zip> = report["functions"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|f| {
            Some(Zip {
                function: f["function"].as_str()?.to_owned(),
                bytes: f["zipBytes"].as_u64()?,
            })
        })
        .collect();
    if zips.is_empty() {
        return Zips::Skipped;
    }
    let when = report["builtAt"].as_str().unwrap_or("an unknown time");
    Zips::Earlier(
        zips,
        format!("the report of `cargo xtask package` of {when}"),
    )
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

/// Each function's `MemorySize` in `template.yaml` (its own, else the `Globals` one).
fn configured_sizes(template: &str) -> HashMap<&'static str, u32> {
    let lines: Vec<&str> = template.lines().collect();
    let memory = |line: &str| -> Option<u32> {
        line.trim().strip_prefix("MemorySize:")?.trim().parse().ok()
    };
    let global = lines
        .iter()
        .skip_while(|line| !line.starts_with("Globals:"))
        .skip(1)
        .take_while(|line| line.is_empty() || line.starts_with(' '))
        .find_map(|line| memory(line))
        .unwrap_or(DEFAULT_MEMORY_MB);
    SUBJECTS
        .iter()
        .filter(|s| !s.baseline)
        .map(|subject| {
            let resource = format!("  {}:", resource_name(subject.name));
            let own = lines
                .iter()
                .skip_while(|line| **line != resource)
                .skip(1)
                .take_while(|line| line.is_empty() || line.starts_with("   "))
                .find_map(|line| memory(line));
            (subject.name, own.unwrap_or(global))
        })
        .collect()
}

/// `password-recovery` → `PasswordRecoveryFunction`.
fn resource_name(function: &str) -> String {
    let mut name: String = function
        .split('-')
        .map(|word| {
            let mut chars = word.chars();
            chars
                .next()
                .map(|first| first.to_ascii_uppercase().to_string() + chars.as_str())
                .unwrap_or_default()
        })
        .collect();
    name.push_str("Function");
    name
}

/// Lambda's CPU share of a memory size, as cgroup v1 `cpu` quotas, one group per size.
struct CpuShares {
    /// `/sys/fs/cgroup/cpu/kuri-bench-<pid>`, when cgroup v1 `cpu` is there and writable.
    root: Option<PathBuf>,
    why_not: String,
}

impl CpuShares {
    fn detect() -> Self {
        let base = Path::new("/sys/fs/cgroup/cpu");
        if !base.join("cpu.cfs_quota_us").exists() {
            return Self {
                root: None,
                why_not: "no cgroup v1 cpu controller at /sys/fs/cgroup/cpu".into(),
            };
        }
        let root = base.join(format!("kuri-bench-{}", std::process::id()));
        match std::fs::create_dir_all(&root) {
            Ok(()) => Self {
                root: Some(root),
                why_not: String::new(),
            },
            Err(error) => Self {
                root: None,
                why_not: format!("cannot create {}: {error}", root.display()),
            },
        }
    }

    fn note(&self) -> String {
        match &self.root {
            Some(root) => format!(
                "CPU: INIT unthrottled (burst); from its first GET /invocation/next each \
                 process is in a cgroup v1 cpu quota of 100000 × MB / 1769 µs per 100 ms \
                 ({}/mb<size>)",
                root.display()
            ),
            None => format!(
                "CPU: UNTHROTTLED at every size ({}): the sizes differ only in price",
                self.why_not
            ),
        }
    }

    /// The group of a memory size (made on first use), or `None` without cgroups.
    fn group(&self, mb: u32) -> Option<PathBuf> {
        let group = self.root.as_ref()?.join(format!("mb{mb}"));
        if !group.exists() {
            let quota = 100_000 * u64::from(mb) / u64::from(FULL_CPU_MB);
            let made = std::fs::create_dir_all(&group)
                .and_then(|()| std::fs::write(group.join("cpu.cfs_period_us"), "100000"))
                .and_then(|()| std::fs::write(group.join("cpu.cfs_quota_us"), quota.to_string()));
            if let Err(error) = made {
                eprintln!("xtask: cannot set up {}: {error}", group.display());
                return None;
            }
        }
        Some(group)
    }

    fn remove(&self) {
        let Some(root) = &self.root else { return };
        if let Ok(entries) = std::fs::read_dir(root) {
            for entry in entries.flatten() {
                if entry.path().is_dir() {
                    let _ = std::fs::remove_dir(entry.path());
                }
            }
        }
        let _ = std::fs::remove_dir(root);
    }
}

/// Moves process `pid` (all its threads) into `group`.
fn join_group(group: &Path, pid: u32) {
    if let Err(error) = std::fs::write(group.join("cgroup.procs"), pid.to_string()) {
        eprintln!("xtask: cannot move {pid} into {}: {error}", group.display());
    }
}

/// Everything measured against the emulators.
struct Measured {
    cold: Vec<ColdSeries>,
    warm: Vec<WarmSeries>,
    load: Vec<LoadRun>,
    cores: usize,
}

async fn measure(
    root: &Path,
    args: &Args,
    binaries: &HashMap<String, PathBuf>,
    logs: &Path,
    proxy: Option<Arc<TlsProxy>>,
    cpu: &CpuShares,
) -> Result<Measured> {
    let (app, seed) = provision_app(root).await?;
    let extras = Extras::provision(&app).await?;
    let jwt_x = app.jwt.jwks()["keys"][0]["x"]
        .as_str()
        .ok_or("the JWKS has no key")?
        .to_owned();
    let mut bench = Bench::new(root, binaries, logs, seed);
    bench.app_env.push(("JWT_PUBLIC_KEY_X", jwt_x));
    bench.proxy = proxy.clone();
    bench.extras = Some(extras);
    bench.app = Some(app.clone());

    let mut cold = Vec::new();
    for subject in SUBJECTS {
        for &mb in &args.sizes {
            println!(
                "xtask: cold starts of {} ({}) at {mb} MB: 1 unmeasured + {}",
                subject.name, subject.cold_event, args.runs
            );
            let group = cpu.group(mb);
            let mut runs = Vec::new();
            for run in 0..=args.runs {
                let measured = bench
                    .cold_start_in(subject.binary, subject.cold_event, mb, group.clone())
                    .await?;
                // The first start warms the page cache and DynamoDB Local's JIT.
                if run > 0 {
                    runs.push(measured);
                }
            }
            cold.push(ColdSeries {
                subject: subject.name,
                mb,
                route: bench.route_key(subject.cold_event)?,
                runs,
            });
        }
    }

    let mut warm = Vec::new();
    for route in WARM_ROUTES {
        let subject = SUBJECTS
            .iter()
            .find(|s| s.name == route.subject)
            .ok_or("a warm route of no subject")?;
        for &mb in &args.sizes {
            println!(
                "xtask: warm {} on {} at {mb} MB: {} invocations",
                route.label, subject.name, args.warm
            );
            warm.push(
                bench
                    .warm(route, subject.binary, mb, cpu.group(mb), args.warm)
                    .await?,
            );
        }
    }

    println!("xtask: warm load through the dev server");
    let load = load::run(root, &app, proxy.as_deref(), args.load).await?;
    Ok(Measured {
        cold,
        warm,
        load,
        cores: std::thread::available_parallelism().map_or(1, |n| n.get()),
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
    Ok(provision_app(root).await?.1)
}

async fn provision_app(root: &Path) -> Result<(App, Seed)> {
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
    let (user, tokens) = account(&app, "bench").await?;
    let seed = Seed {
        user_id: user.id.to_string(),
        email: user.email.clone(),
        password: BENCH_PASSWORD.to_owned(),
        token: tokens.token,
        session_id: tokens.session_uuid.to_string(),
        refresh_token: tokens.refresh_token,
    };
    Ok((app, seed))
}

/// A new user with [`BENCH_PASSWORD`] and one session.
async fn account(
    app: &App,
    prefix: &str,
) -> Result<(
    shared::domain::user::User,
    shared::service::sessions::Tokens,
)> {
    let email = format!("{prefix}-{}@kuri.example", uuid::Uuid::new_v4().simple());
    let user = shared::service::users::register(
        app,
        shared::service::users::NewUser {
            email: Email::parse(&email)?,
            password: Password::parse(BENCH_PASSWORD)?,
            first_name: Some("Ada".into()),
            last_name: Some("Lovelace".into()),
            full_name: None,
            marketing_opt_in: false,
        },
    )
    .await
    .map_err(|e| format!("cannot register a benchmark user: {e}"))?;
    let tokens = shared::service::sessions::open(app, &user)
        .await
        .map_err(|e| format!("cannot open a benchmark session: {e}"))?;
    Ok((user, tokens))
}

/// Users of their own for the routes that would disturb the seeded one: logins (each opens
/// a session) and resets (each ends every session).
struct Extras {
    login_email: String,
    reset_user: shared::domain::ids::UserId,
}

impl Extras {
    async fn provision(app: &App) -> Result<Self> {
        let (login, _) = account(app, "bench-login").await?;
        let (reset, _) = account(app, "bench-reset").await?;
        Ok(Self {
            login_email: login.email,
            reset_user: reset.id,
        })
    }
}

/// A recovery token for `user`, stored as `POST /users/recover-password` would (its mail
/// skipped): what a reset event carries.
async fn recovery_token(app: &App, user: shared::domain::ids::UserId) -> Result<String> {
    use shared::domain::email_token::{EmailToken, TokenKind};
    use shared::security::crypto;
    let user = app
        .users
        .get_user(user)
        .await?
        .ok_or("the reset user is gone")?;
    let token = crypto::random_token();
    app.tokens
        .put_token(&EmailToken {
            kind: TokenKind::Recovery,
            hash: crypto::sha256_hex(&token),
            user_id: user.id,
            email_key: user.email_key(),
            session_epoch: user.session_epoch,
            expires_at: app.clock.now() + Duration::from_secs(1800),
        })
        .await?;
    Ok(token)
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
    proxy: Option<Arc<TlsProxy>>,
    extras: Option<Extras>,
    app: Option<App>,
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

struct ColdSeries {
    subject: &'static str,
    mb: u32,
    route: String,
    runs: Vec<ColdRun>,
}

/// One warm invocation: event handed out to answer received, and what DynamoDB took of it.
struct WarmSample {
    latency: Duration,
    dynamodb: Forwarded,
}

struct WarmSeries {
    route: WarmRoute,
    mb: u32,
    route_key: String,
    status: u16,
    samples: Vec<WarmSample>,
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
            proxy: None,
            extras: None,
            app: None,
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
    /// the body a login, a refresh, a registration, a recovery or a reset needs.
    async fn event(&mut self, event: &'static str) -> Result<Bytes> {
        let uuid = if event == "sessions-refresh" {
            self.seed.session_id.clone()
        } else {
            self.seed.user_id.clone()
        };
        let token = self.seed.token.clone();
        let mut value: Value = serde_json::from_str(&fill(self.template(event)?, &token, &uuid))?;
        let unique_email = || format!("bench-{}@kuri.example", uuid::Uuid::new_v4().simple());
        match event {
            "sessions-refresh" => {
                set_body_field(&mut value, "refreshToken", &self.seed.refresh_token)?;
            }
            "sessions-login" => {
                let email = match &self.extras {
                    Some(extras) => extras.login_email.clone(),
                    None => self.seed.email.clone(),
                };
                value["body"] = json!({ "email": email, "password": self.seed.password })
                    .to_string()
                    .into();
            }
            "users-create" => {
                set_body_field(&mut value, "email", &unique_email())?;
                set_body_field(&mut value, "password", BENCH_PASSWORD)?;
            }
            "password-recovery-start" => {
                set_body_field(&mut value, "email", &unique_email())?;
            }
            "password-recovery-reset" => {
                if let (Some(app), Some(extras)) = (&self.app, &self.extras) {
                    let token = recovery_token(app, extras.reset_user).await?;
                    set_body_field(&mut value, "token", &token)?;
                }
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

    fn spawn(&self, binary: &str, mb: u32, api: &RuntimeApi) -> Result<(Child, PathBuf)> {
        let log = self.logs.join(format!("{binary}.log"));
        let file = OpenOptions::new().create(true).append(true).open(&log)?;
        let mut step = command(&self.binaries[binary]);
        step.env_clear()
            .envs(self.app_env.iter().map(|(k, v)| (k, v)))
            .envs(lambda_env(binary, mb, &api.address().to_string()))
            .stdout(file.try_clone()?)
            .stderr(file);
        let child = step
            .spawn()
            .map_err(|e| format!("cannot start {binary}: {e}"))?;
        Ok((child, log))
    }

    /// Spawns `binary`; it joins `group` (its CPU share) when it first asks for an event.
    fn spawn_in(
        &self,
        binary: &str,
        mb: u32,
        api: &RuntimeApi,
        group: Option<PathBuf>,
    ) -> Result<(Child, PathBuf)> {
        let pid: Arc<Mutex<Option<u32>>> = Arc::default();
        if let Some(group) = group {
            let pid = pid.clone();
            api.on_first_poll(
                move || match *pid.lock().unwrap_or_else(|e| e.into_inner()) {
                    Some(pid) => join_group(&group, pid),
                    None => eprintln!("xtask: a process polled before its pid was known"),
                },
            );
        }
        let (child, log) = self.spawn(binary, mb, api)?;
        *pid.lock().unwrap_or_else(|e| e.into_inner()) = child.id();
        Ok((child, log))
    }

    /// A fresh process with an event already waiting, as for an on-demand cold start.
    pub(crate) async fn cold_start(
        &mut self,
        function: &str,
        event: &'static str,
    ) -> Result<ColdRun> {
        self.cold_start_in(function, event, DEFAULT_MEMORY_MB, None)
            .await
    }

    async fn cold_start_in(
        &mut self,
        binary: &str,
        event: &'static str,
        mb: u32,
        group: Option<PathBuf>,
    ) -> Result<ColdRun> {
        let api = RuntimeApi::start(binary).await?;
        let pending = api.submit(self.event(event).await?);
        let started = Instant::now();
        let (mut child, log) = self.spawn_in(binary, mb, &api, group)?;
        let what = format!("{binary} cold start");
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
        route: WarmRoute,
        binary: &str,
        mb: u32,
        group: Option<PathBuf>,
        count: usize,
    ) -> Result<WarmSeries> {
        let api = RuntimeApi::start(binary).await?;
        let (mut child, log) = self.spawn_in(binary, mb, &api, group)?;
        let what = format!("warm {} at {mb} MB", route.label);
        let measured = self
            .invocations(&what, &api, &mut child, &log, route.event, count)
            .await;
        let peak_rss_kib = child.id().and_then(peak_rss_kib);
        terminate(&mut child).await;
        let (status, samples) = measured?;
        Ok(WarmSeries {
            route,
            mb,
            route_key: self.route_key(route.event)?,
            status,
            samples,
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
    ) -> Result<(u16, Vec<WarmSample>)> {
        let mut samples = Vec::with_capacity(count);
        let mut status = 0;
        for invocation in 0..=count {
            guarded(what, api, child, log, api.polled(invocation as u64 + 1)).await?;
            let body = self.event(event).await?;
            let before = self.forwarded();
            let pending = api.submit(body);
            let submitted = pending.submitted;
            let outcome = guarded(what, api, child, log, pending.outcome())
                .await?
                .ok_or_else(|| format!("{what}: no answer"))?;
            let dynamodb = self.forwarded() - before;
            let reply = self.observe(what, &outcome)?;
            if reply.status >= 500 || (invocation > 0 && reply.status != status) {
                return Err(format!("{what}: {} {}", reply.status, reply.body).into());
            }
            status = reply.status;
            // The first invocation of a fresh process is a cold one.
            if invocation > 0 {
                samples.push(WarmSample {
                    latency: outcome.at - submitted,
                    dynamodb,
                });
            }
        }
        Ok((status, samples))
    }

    fn forwarded(&self) -> Forwarded {
        self.proxy
            .as_ref()
            .map(|proxy| proxy.forwarded())
            .unwrap_or_default()
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
fn lambda_env(function: &str, mb: u32, runtime_api: &str) -> Vec<(&'static str, String)> {
    let name = format!("kuri-users-{function}");
    vec![
        ("AWS_LAMBDA_RUNTIME_API", runtime_api.to_owned()),
        ("AWS_LAMBDA_FUNCTION_NAME", name.clone()),
        ("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", mb.to_string()),
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

#[cfg(test)]
mod tests {
    use super::*;

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
        let events = SUBJECTS
            .iter()
            .map(|s| s.cold_event)
            .chain(WARM_ROUTES.iter().map(|r| r.event));
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
    fn every_function_has_one_sizing_route_and_every_route_a_subject() {
        for subject in SUBJECTS.iter().filter(|s| !s.baseline) {
            let sizing = WARM_ROUTES
                .iter()
                .filter(|r| r.subject == subject.name && r.sizing)
                .count();
            assert_eq!(sizing, 1, "{}", subject.name);
        }
        for route in WARM_ROUTES {
            assert!(
                SUBJECTS.iter().any(|s| s.name == route.subject),
                "{}",
                route.label
            );
        }
    }

    #[test]
    fn memory_sizes_come_from_the_function_or_the_globals() {
        let template = "Globals:\n  Function:\n    MemorySize: 256\n\nResources:\n  \
                        UsersFunction:\n    Type: AWS::Serverless::Function\n    Properties:\n      \
                        MemorySize: 1769\n  SessionsFunction:\n    Properties:\n      Timeout: 3\n";
        let sizes = configured_sizes(template);
        assert_eq!(sizes["users"], 1769);
        assert_eq!(sizes["sessions"], 256);
        assert_eq!(
            resource_name("password-recovery"),
            "PasswordRecoveryFunction"
        );
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
    fn zips_come_from_a_package_report_with_its_date() {
        let report = json!({
            "builtAt": "2026-12-03 06:00 UTC",
            "functions": [
                {"function": "users", "bootstrapBytes": 12, "zipBytes": 5},
                {"function": "sessions", "zipBytes": 4},
                {"function": "broken"},
            ],
        });
        let Zips::Earlier(zips, when) = package_zips(&report) else {
            panic!("the report's zips");
        };
        let zips: Vec<(&str, u64)> = zips
            .iter()
            .map(|z| (z.function.as_str(), z.bytes))
            .collect();
        assert_eq!(zips, [("users", 5), ("sessions", 4)]);
        assert!(when.contains("2026-12-03 06:00 UTC"), "{when}");
        assert!(matches!(
            package_zips(&json!({"functions": []})),
            Zips::Skipped
        ));
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
        assert_eq!((defaults.runs, defaults.warm, defaults.load), (20, 20, 200));
        assert!(!defaults.zips);
        assert_eq!(defaults.sizes, SIZES);
        let given = Args::parse(&[
            "--warm".into(),
            "50".into(),
            "--runs".into(),
            "3".into(),
            "--sizes".into(),
            "128,1769".into(),
            "--zips".into(),
        ])
        .unwrap();
        assert_eq!((given.runs, given.warm), (3, 50));
        assert_eq!(given.sizes, [128, 1769]);
        assert!(given.zips);
        assert!(Args::parse(&["--runs".into(), "0".into()]).is_err());
        assert!(Args::parse(&["--warm".into()]).is_err());
        assert!(Args::parse(&["--sizes".into(), "64".into()]).is_err());
        assert!(Args::parse(&["--fast".into()]).is_err());
    }
}
