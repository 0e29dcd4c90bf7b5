//! `cargo xtask test`: fmt, clippy, the supply-chain and template checks (`lint`) and the whole
//! test suite, against emulators of its own.

use std::ffi::OsString;
use std::process::ExitCode;

use crate::localenv::{LocalEnv, Purpose, test_ports};
use crate::process::{Signals, Stop, command, exit_code, terminate};
use crate::stack::Stack;
use crate::{Result, block_on, root};

/// When set, a filtered run (`cargo xtask test ARGS`) skips fmt, clippy and the lints.
const QUICK_VAR: &str = "XTASK_QUICK";

pub fn run(nextest_args: Vec<String>) -> Result<ExitCode> {
    let root = root();
    let secrets = root.join(".localaws/test-secrets.json");
    crate::localenv::ensure_secrets_file(&secrets)?;
    let env = LocalEnv::new(Purpose::Test, test_ports(), &secrets);
    block_on(async move {
        let mut signals = Signals::new()?;
        // Installing and starting the emulators overlaps with fmt and clippy.
        let stack_root = root.clone();
        let mut stack = tokio::spawn(async move {
            let started = Stack::start(&stack_root, test_ports()).await;
            // Said at once, not only after fmt and clippy are done.
            if let Err(error) = &started {
                eprintln!("xtask: the emulators for the tests did not start: {error}");
            }
            started
        });

        // A whole run ends with Schemathesis: installing it now overlaps with fmt and clippy,
        // and a registry that cannot be reached fails the run before the tests, not after.
        let schemathesis_root = root.clone();
        let whole_run = nextest_args.is_empty();
        let mut schemathesis = tokio::spawn(async move {
            if whole_run {
                crate::schemathesis::install(&schemathesis_root).await?;
            }
            Ok::<_, crate::Error>(())
        });

        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| OsString::from("cargo"));
        // For a quick filtered run while working; CI and a plain `cargo xtask test` never set it.
        let quick = !nextest_args.is_empty() && std::env::var_os(QUICK_VAR).is_some();
        let lint_steps: [&[&str]; 2] = [
            &["fmt", "--all", "--check"],
            &[
                "clippy",
                "--workspace",
                "--all-targets",
                "--",
                "-D",
                "warnings",
            ],
        ];
        for args in lint_steps.into_iter().filter(|_| !quick) {
            let mut step = command(&cargo);
            step.args(args).current_dir(&root);
            if let Some(code) = run_step(&mut step, &mut signals).await? {
                stack.abort();
                let _ = stack.await;
                return Ok(ExitCode::from(code));
            }
        }
        if quick {
            println!("xtask: {QUICK_VAR} is set: fmt, clippy and the lints are skipped");
        } else if let Some(code) = crate::lint::run(&root, &mut signals).await? {
            stack.abort();
            let _ = stack.await;
            return Ok(ExitCode::from(code));
        }

        let stack = tokio::select! {
            started = &mut stack => started?
                .map_err(|_| "no emulators, so no tests were run (the reason is above)")?,
            stop = signals.recv() => {
                stack.abort();
                let _ = stack.await;
                return Ok(ExitCode::from(stop.exit_code()));
            }
        };
        let installed = tokio::select! {
            installed = &mut schemathesis => installed
                .map_err(|e| format!("the Schemathesis install did not finish: {e}"))?,
            stop = signals.recv() => {
                schemathesis.abort();
                stack.stop().await;
                return Ok(ExitCode::from(stop.exit_code()));
            }
        };
        if let Err(error) = installed {
            stack.stop().await;
            return Err(
                format!("Schemathesis, which the run ends with, did not install: {error}").into(),
            );
        }
        // Every AWS request of a function in the tests is recorded for the local IAM check.
        let iam_record = root.join(".localaws/iam-actions.txt");
        std::fs::write(&iam_record, "")?;
        let mut step = command(&cargo);
        // The benchmark's baselines have no tests; only `cargo xtask bench` builds them.
        step.args([
            "nextest",
            "run",
            "--workspace",
            "--exclude",
            "bench-baselines",
        ])
        .args(&nextest_args)
        .env(crate::iam::RECORD_FILE_ENV, &iam_record)
        .current_dir(&root);
        env.apply_to_command(&mut step);
        let outcome = run_step(&mut step, &mut signals).await;
        let outcome =
            crate::schemathesis::after_tests(outcome, &nextest_args, &cargo, &root, &mut signals)
                .await;
        stack.stop().await;
        if let Some(code) = outcome? {
            return Ok(ExitCode::from(code));
        }
        // A filtered run sees only part of what the functions do.
        if nextest_args.is_empty() {
            let template = std::fs::read_to_string(root.join("template.yaml"))?;
            crate::iam::check(&template, &iam_record)?;
        }
        Ok(ExitCode::SUCCESS)
    })?
}

/// Runs one step to completion; `Some(code)` when it failed or a signal stopped it.
pub(crate) async fn run_step(
    step: &mut tokio::process::Command,
    signals: &mut Signals,
) -> Result<Option<u8>> {
    let description = step
        .as_std()
        .get_args()
        .map(|a| a.to_string_lossy().into_owned())
        .collect::<Vec<_>>()
        .join(" ");
    println!("xtask: cargo {description}");
    let mut child = step
        .spawn()
        .map_err(|e| format!("cannot run cargo {description}: {e}"))?;
    let stopped: Stop = tokio::select! {
        status = child.wait() => {
            let status = status?;
            if status.success() {
                return Ok(None);
            }
            eprintln!("xtask: cargo {description} failed ({status})");
            return Ok(Some(exit_code(status)));
        }
        stop = signals.recv() => stop,
    };
    eprintln!("xtask: {}: stopping", stopped.name());
    terminate(&mut child).await;
    Ok(Some(stopped.exit_code()))
}
