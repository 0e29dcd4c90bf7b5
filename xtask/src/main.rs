//! Developer tasks for this repository: `cargo xtask dev | admin | keys | test | bench |
//! migrate | package | schemathesis | fuzz` (see README.md).
//!
//! Unix only: emulators are managed with POSIX signals.

mod admin;
#[cfg(test)]
mod authz_matrix_test;
mod bench;
mod bench_users;
mod check;
mod dev;
#[cfg(test)]
mod events_test;
#[cfg(test)]
mod faults_test;
mod fuzz;
mod iam;
mod keys;
#[cfg(test)]
mod lifecycle_events_test;
mod lint;
mod localenv;
mod migrate;
#[cfg(test)]
mod openapi_test;
mod package;
mod process;
mod router;
mod runtime_api;
mod schemathesis;
mod serve;
mod stack;
mod tls_proxy;

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

type Error = Box<dyn std::error::Error + Send + Sync>;
type Result<T, E = Error> = std::result::Result<T, E>;

const USAGE: &str = "\
usage:
  cargo xtask dev
      Install (first time) and start DynamoDB Local and moto, then serve the API on
      http://127.0.0.1:3000 until Ctrl-C or SIGTERM.
  cargo xtask admin --email EMAIL --password PASSWORD
      Create a csrAdmin, or promote an existing user, in the running dev stack (or in the
      table named by TABLE_NAME when it is set, using the caller's AWS environment).
  cargo xtask keys [--secret-id NAME] [--rotate]
      Print the `aws secretsmanager create-secret` command that stores fresh keys (Ed25519
      signing key, HMAC key, TOTP key) in the secret NAME (default kuri-users/keys); with
      --rotate, read the current secret on stdin and print the `put-secret-value` command with a
      new signing key, the current one kept as the previous. Pipe it into `sh` (README, Deploy).
  cargo xtask test [NEXTEST ARGS...]
      cargo fmt --check, clippy -D warnings, cargo deny check, cfn-lint and sam validate --lint
      on template.yaml, and cargo nextest run --workspace, against emulators of its own on ports
      8001/5001 (so it can run beside `dev`; XTASK_TEST_PORT_OFFSET=N moves them by N, so that
      two checkouts can test at once). With NEXTEST ARGS and XTASK_QUICK=1, only the tests run.
  cargo xtask bench [--runs N] [--warm N] [--load N] [--sizes MB,...] [--zips]
      Build the functions and two baselines (hello-world, minimal get-user) in release, run
      them behind a local Lambda Runtime API in the Lambda model (CPU share of each memory
      size through a cgroup v1 quota after INIT, DynamoDB over TLS) against emulators of their
      own on ports 8002/5002: cold starts (N per binary and size, default 20), warm
      invocations (N per route and size, default 20), memory sizing with cost, load through
      the dev server at concurrency 1 and 8 (N requests, default 200). Each function's arm64
      zip: with --zips, the sam build of `package` (shared with it; a second release build);
      without, the zips of the last `cargo xtask package` if it ran. Writes bench/RESULTS.md
      and target/bench/report.json.
  cargo xtask bench --users N
      Load N users into a DynamoDB Local of its own (port 8032, batch writes), then print the
      items read, read capacity, requests and latency of GET /users per order and filter (first
      page, a deep cursor page, a page offset), of counts and of prefix searches; also written
      to target/bench/users-N.json.
  cargo xtask migrate [--page-size N]
      Backfill the sharded listing indexes' attributes and the user counters on user items
      written before them, in the dev stack's table (or in TABLE_NAME with the caller's AWS
      environment). Idempotent; resumes from .localaws/migrate-TABLE.json after an interruption.
  cargo xtask package
      sam build (rust-cargolambda: cargo-lambda and Zig cross-compile arm64, installed on first
      use into .localaws/package-venv), each function's zip size, then each built bootstrap
      (under qemu-aarch64 off arm64) answering its events/ through a local Lambda Runtime API
      against emulators of its own on ports 8003/5003. Slow; not part of `test`.
  cargo xtask schemathesis
      Schemathesis against the API (as `dev` serves it, on a free port) over emulators on ports
      8001/5001 (moved as for test), with a user's and a csrAdmin's token: no 5xx, answers as openapi.yaml says,
      none slow. The last step of `cargo xtask test`.
  cargo xtask fuzz [--seconds N] [json_body|jwt_verify...]
      The fuzz targets of fuzz/ (JSON body parsing, JWT verification) for N seconds each
      (default 60): with cargo-fuzz on a nightly toolchain, else as a stable random loop of the
      same targets. Not part of `cargo xtask test`.
";

fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    let command = args.next();
    let rest: Vec<String> = args.collect();
    let result = match command.as_deref() {
        Some("dev") if rest.is_empty() => dev::run(),
        Some("admin") => admin::Args::parse(&rest).and_then(admin::run),
        Some("test") => check::run(rest),
        Some("bench") if rest.first().is_some_and(|a| a == "--users") => {
            bench_users::Args::parse(&rest).and_then(bench_users::run)
        }
        Some("bench") => bench::Args::parse(&rest).and_then(bench::run),
        Some("migrate") => migrate::Args::parse(&rest).and_then(migrate::run),
        Some("keys") => keys::Args::parse(&rest).and_then(keys::run),
        Some("schemathesis") if rest.is_empty() => schemathesis::run(),
        Some("package") => package::run(&rest),
        Some("fuzz") => fuzz::Args::parse(&rest).and_then(fuzz::run),
        Some("help" | "-h" | "--help") => {
            print!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        _ => {
            eprint!("{USAGE}");
            return ExitCode::from(2);
        }
    };
    result.unwrap_or_else(|error| {
        eprintln!("xtask: {error}");
        ExitCode::FAILURE
    })
}

/// The repository root, wherever `cargo xtask` is started from.
fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask lives one level below the repository root")
        .to_path_buf()
}

/// Runs `future` on a fresh runtime. Call only after the process environment is final:
/// `std::env::set_var` is sound only while no other thread runs.
fn block_on<T>(future: impl Future<Output = T>) -> Result<T> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let output = runtime.block_on(future);
    // Don't wait for detached work such as in-flight connections of the dev server.
    runtime.shutdown_timeout(Duration::from_secs(2));
    Ok(output)
}
