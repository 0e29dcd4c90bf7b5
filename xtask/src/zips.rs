//! The deployable zip of each function for `provided.al2023` arm64, built the way `sam build`
//! builds it (`cargo lambda build --release --arm64`, cargo-lambda and Zig from PyPI in
//! `.localaws/lambda-venv`), one function per build so that each links only what its own
//! `shared` features bring, into a target directory of its own (`target/lambda-arm64`).

use std::path::{Path, PathBuf};

use crate::Result;
use crate::process::command;
use crate::stack::{InstallLock, pip_install};

/// The versions `cargo xtask package` uses.
const TOOLS_PIP: &[&str] = &["cargo-lambda==1.9.2", "ziglang==0.14.1"];
const INSTALLED_MARKER: &str = "xtask-tools.txt";
pub const FUNCTIONS: [&str; 7] = [
    "users",
    "sessions",
    "two-factor",
    "password-recovery",
    "email-verification",
    "diagnostic-reports",
    "passkeys",
];

pub struct Zip {
    pub function: &'static str,
    pub bytes: u64,
}

pub async fn build(root: &Path) -> Result<Vec<Zip>> {
    let bin = install(&root.join(".localaws")).await?;
    crate::package::add_rust_target().await?;
    let path = std::env::var_os("PATH").unwrap_or_default();
    let mut paths = vec![bin.clone()];
    paths.extend(std::env::split_paths(&path));
    let path = std::env::join_paths(paths)?;
    let lambda_dir = root.join("target/lambda-zips");
    let target_dir = root.join("target/lambda-arm64");
    let mut zips = Vec::new();
    for function in FUNCTIONS {
        println!(
            "xtask: cargo lambda build --release --arm64 -p {function} (the first time a \
             release cross-build: many minutes)"
        );
        let status = command(bin.join("cargo-lambda"))
            .args(["lambda", "build", "--release", "--arm64"])
            .args(["--output-format", "zip", "--lambda-dir"])
            .arg(&lambda_dir)
            .args(["-p", function])
            .current_dir(root)
            // As an environment variable: cargo-lambda 1.9 also hands `--target-dir` to
            // `cargo metadata`, which refuses it.
            .env("CARGO_TARGET_DIR", &target_dir)
            .env("PATH", &path)
            .status()
            .await
            .map_err(|e| format!("cannot run cargo lambda: {e}"))?;
        if !status.success() {
            return Err(format!("cargo lambda build -p {function} failed ({status})").into());
        }
        let zip = lambda_dir.join(function).join("bootstrap.zip");
        let bytes = std::fs::metadata(&zip)
            .map_err(|e| format!("{}: {e}", zip.display()))?
            .len();
        zips.push(Zip { function, bytes });
    }
    Ok(zips)
}

/// Installs the tools unless the pinned versions are there; returns the venv's `bin`.
async fn install(local: &Path) -> Result<PathBuf> {
    std::fs::create_dir_all(local)?;
    let _lock = InstallLock::acquire(&local.join("install-lambda.lock")).await?;
    let venv = local.join("lambda-venv");
    let marker = venv.join(INSTALLED_MARKER);
    let wanted = TOOLS_PIP.join("\n");
    if std::fs::read_to_string(&marker).is_ok_and(|installed| installed == wanted) {
        return Ok(venv.join("bin"));
    }
    println!("xtask: installing cargo-lambda and Zig in a Python venv (once)");
    pip_install(&venv, TOOLS_PIP, &local.join("install-lambda-pip.log")).await?;
    std::fs::write(&marker, wanted)?;
    Ok(venv.join("bin"))
}
