//! `cargo xtask fuzz [--seconds N] [TARGET...]`: the fuzz targets of `fuzz/` (body parsing,
//! JWT verification) for N seconds each. With a nightly toolchain and cargo-fuzz, libFuzzer
//! runs them with coverage feedback; otherwise the same targets run as a stable random loop
//! (`fuzz/src/bin/stable-fuzz.rs`). Not part of `cargo xtask test`: it is open-ended.

use std::ffi::OsString;
use std::process::ExitCode;

use crate::process::{Signals, command};
use crate::{Result, block_on, root};

pub const TARGETS: [&str; 2] = ["json_body", "jwt_verify"];

pub struct Args {
    seconds: u64,
    targets: Vec<String>,
}

impl Args {
    pub fn parse(args: &[String]) -> Result<Self> {
        let mut seconds = 60;
        let mut targets = Vec::new();
        let mut args = args.iter();
        while let Some(arg) = args.next() {
            match arg.as_str() {
                "--seconds" => {
                    seconds = args
                        .next()
                        .and_then(|n| n.parse().ok())
                        .ok_or("--seconds needs a whole number")?;
                }
                target if TARGETS.contains(&target) => targets.push(target.to_owned()),
                other => {
                    return Err(format!(
                        "unknown fuzz argument {other:?} (targets: {})",
                        TARGETS.join(", ")
                    )
                    .into());
                }
            }
        }
        if targets.is_empty() {
            targets = TARGETS.iter().map(|t| (*t).to_owned()).collect();
        }
        Ok(Self { seconds, targets })
    }
}

pub fn run(args: Args) -> Result<ExitCode> {
    let root = root();
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| OsString::from("cargo"));
    block_on(async move {
        let mut signals = Signals::new()?;
        let nightly =
            succeeds(command("rustup").args(["run", "nightly", "rustc", "--version"])).await;
        let cargo_fuzz = succeeds(command("cargo-fuzz").arg("--version")).await;
        if nightly && cargo_fuzz {
            for target in &args.targets {
                let mut step = command("rustup");
                step.args([
                    "run",
                    "nightly",
                    "cargo",
                    "fuzz",
                    "run",
                    "--features",
                    "libfuzzer",
                ])
                .arg(target)
                .arg("--")
                .arg(format!("-max_total_time={}", args.seconds))
                .current_dir(&root);
                if let Some(code) = crate::check::run_step(&mut step, &mut signals).await? {
                    return Ok(ExitCode::from(code));
                }
            }
            return Ok(ExitCode::SUCCESS);
        }
        let missing = match (nightly, cargo_fuzz) {
            (false, false) => "a nightly toolchain and cargo-fuzz",
            (false, true) => "a nightly toolchain",
            _ => "cargo-fuzz",
        };
        println!(
            "xtask: cargo fuzz needs {missing} (`rustup toolchain install nightly`, \
             `cargo install cargo-fuzz`); running the same targets as a stable random loop \
             instead, without coverage feedback"
        );
        let mut step = command(&cargo);
        // The dev profile, as the repository's: the build shares its cache with everything else.
        step.args([
            "run",
            "--manifest-path",
            "fuzz/Cargo.toml",
            "--bin",
            "stable-fuzz",
            "--",
        ])
        .arg("--seconds")
        .arg(args.seconds.to_string())
        .args(&args.targets)
        .current_dir(&root);
        Ok(
            match crate::check::run_step(&mut step, &mut signals).await? {
                Some(code) => ExitCode::from(code),
                None => ExitCode::SUCCESS,
            },
        )
    })?
}

async fn succeeds(command: &mut tokio::process::Command) -> bool {
    command
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .await
        .is_ok_and(|status| status.success())
}
