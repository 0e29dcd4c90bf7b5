//! `cargo xtask package`: the artefacts `sam deploy` would upload, built and then run.
//!
//! 1. `sam build` with each function's `BuildMethod: rust-cargolambda` (cargo-lambda and Zig
//!    cross-compile for arm64, `provided.al2023`), the SAM CLI, cargo-lambda and Zig installed
//!    from PyPI into `.localaws/package-venv` on first use.
//! 2. The size of each function's zip: its `bootstrap` deflated into a zip, as `sam deploy`
//!    packs it for Lambda.
//! 3. Each built `bootstrap` started as Lambda starts it (the bench's local Runtime API, an
//!    otherwise empty environment) once per event of its `events/` files, against emulators of
//!    its own: every event must get an API Gateway answer below 500. On a machine that is not
//!    arm64 the binary runs under qemu-user with an arm64 glibc (Debian's `qemu-user-static`,
//!    `libc6-arm64-cross` and `libgcc-s1-arm64-cross`), so the figures of that step are the
//!    emulator's, not Lambda's.
//!
//! Slow (a release cross-build of seven binaries), so not part of `cargo xtask test`.

use std::collections::HashMap;
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use serde_json::json;

use crate::bench::{BUCKET, Bench, TABLE, UNSET_VARS};
use crate::localenv::{LocalEnv, Purpose};
use crate::process::{Signals, command};
use crate::stack::{Ports, Stack, tool_venv};
use crate::{Result, block_on, root};

/// Apart from dev (8000/5000), test (8001/5001 and up) and bench (8002/5002).
const PACKAGE_PORTS: Ports = Ports {
    dynamodb: 8003,
    moto: 5003,
};
/// The SAM CLI matches the one `cargo xtask test` lints with; Zig 0.14 is the newest that
/// cargo-zigbuild (inside cargo-lambda 1.9) is known to link glibc targets with.
const TOOLS_PIP: &[&str] = &[
    "aws-sam-cli==1.170.0",
    "cargo-lambda==1.9.2",
    "ziglang==0.14.1",
];
const TARGET: &str = "aarch64-unknown-linux-gnu";
/// ELF `e_machine` of AArch64.
const EM_AARCH64: u16 = 183;
/// Events that end the seeded session or user: sent after every other one.
const DESTRUCTIVE_EVENTS: [&str; 2] = ["sessions-logout", "users-delete"];

pub fn run(args: &[String]) -> Result<ExitCode> {
    if !args.is_empty() {
        return Err("package takes no arguments".into());
    }
    let root = root();
    let secrets = root.join(".localaws/package-secrets.json");
    crate::localenv::ensure_secrets_file(&secrets)?;
    let env = LocalEnv::new(Purpose::Test, PACKAGE_PORTS, &secrets);
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
        tokio::select! {
            done = package(&root) => done.map(|()| ExitCode::SUCCESS),
            stop = signals.recv() => {
                eprintln!("xtask: {}: stopping", stop.name());
                Ok(ExitCode::from(stop.exit_code()))
            }
        }
    })?
}

struct Answered {
    event: String,
    status: u16,
    init_ms: f64,
    first_answer_ms: f64,
    peak_rss_kib: Option<u64>,
}

/// What `sam build` made for each function, and how long it took.
pub(crate) struct Build {
    pub functions: Vec<Built>,
    pub seconds: f64,
}

pub(crate) struct Built {
    pub function: String,
    pub bootstrap: PathBuf,
    pub bootstrap_bytes: u64,
    pub zip_bytes: u64,
}

/// Steps 1 and 2: `sam build` (installing its tools on first use) and each function's zip.
/// The bench's zip sizes come from here too, so one cross-build serves both commands.
pub(crate) async fn build(root: &Path) -> Result<Build> {
    let bin = tool_venv(
        &root.join(".localaws"),
        "package",
        TOOLS_PIP,
        "the SAM CLI, cargo-lambda and Zig",
    )
    .await?;
    add_rust_target().await?;
    let out = target_dir(root).join("package");
    let build_dir = out.join("sam");

    let started = Instant::now();
    sam_build(root, &bin, &build_dir, &out.join("cargo")).await?;
    let seconds = started.elapsed().as_secs_f64();

    let template = std::fs::read_to_string(root.join("template.yaml"))?;
    let mut functions = Vec::new();
    for (logical_id, function) in shared::localstack::function_binaries(&template)? {
        let bootstrap = build_dir.join(&logical_id).join("bootstrap");
        let machine = elf_machine(&bootstrap)?;
        if machine != EM_AARCH64 {
            return Err(format!(
                "{}: built for ELF machine {machine}, not AArch64 ({EM_AARCH64})",
                bootstrap.display()
            )
            .into());
        }
        let zip = out.join("zips").join(format!("{function}.zip"));
        zip_bootstrap(&bootstrap, &zip).await?;
        functions.push(Built {
            bootstrap_bytes: std::fs::metadata(&bootstrap)?.len(),
            zip_bytes: std::fs::metadata(&zip)?.len(),
            function,
            bootstrap,
        });
    }
    Ok(Build { functions, seconds })
}

async fn package(root: &Path) -> Result<()> {
    let Build {
        functions: built,
        seconds: build_secs,
    } = build(root).await?;
    let out = target_dir(root).join("package");
    print_sizes(&built, build_secs);

    let runner = Runner::find()?;
    println!("xtask: running each bootstrap {}", runner.describe());
    let wrappers = out.join("run");
    std::fs::create_dir_all(&wrappers)?;
    let mut binaries = HashMap::new();
    for b in &built {
        binaries.insert(
            b.function.clone(),
            runner.wrapper(&b.bootstrap, &wrappers.join(&b.function))?,
        );
    }
    let logs = out.join("logs");
    let _ = std::fs::remove_dir_all(&logs);
    std::fs::create_dir_all(&logs)?;

    println!(
        "xtask: starting DynamoDB Local on port {} and moto on port {}",
        PACKAGE_PORTS.dynamodb, PACKAGE_PORTS.moto
    );
    let stack = Stack::start(root, PACKAGE_PORTS).await?;
    let answered = answer_events(root, &binaries, &logs).await;
    stack.stop().await;
    let answered = answered?;

    print_answers(&answered);
    let report = json!({
        "builtAt": crate::bench::utc_now(),
        "target": TARGET,
        "runner": runner.describe(),
        "samBuildSeconds": round1(build_secs),
        "functions": built.iter().map(|b| json!({
            "function": b.function,
            "bootstrapBytes": b.bootstrap_bytes,
            "zipBytes": b.zip_bytes,
        })).collect::<Vec<_>>(),
        "events": answered.iter().map(|a| json!({
            "event": a.event,
            "status": a.status,
            "initMs": round1(a.init_ms),
            "firstAnswerMs": round1(a.first_answer_ms),
            "peakRssKib": a.peak_rss_kib,
        })).collect::<Vec<_>>(),
    });
    let path = report_path(root);
    std::fs::write(&path, serde_json::to_string_pretty(&report)? + "\n")?;
    println!(
        "xtask: every built bootstrap answered its events; wrote {} (function logs: {})",
        path.display(),
        logs.display()
    );
    Ok(())
}

/// The standard library for arm64, through rustup (a no-op when it is there).
pub(crate) async fn add_rust_target() -> Result<()> {
    let installed = command("rustup")
        .args(["target", "list", "--installed"])
        .output()
        .await;
    match installed {
        Ok(output)
            if String::from_utf8_lossy(&output.stdout)
                .lines()
                .any(|l| l == TARGET) =>
        {
            Ok(())
        }
        Ok(_) => {
            println!("xtask: rustup target add {TARGET}");
            let status = command("rustup")
                .args(["target", "add", TARGET])
                .status()
                .await?;
            if status.success() {
                Ok(())
            } else {
                Err(format!("rustup target add {TARGET} failed ({status})").into())
            }
        }
        // Without rustup the toolchain must bring the target itself; cargo says if not.
        Err(_) => Ok(()),
    }
}

/// Where `cargo xtask package` writes its figures (the bench reads the zips there).
pub(crate) fn report_path(root: &Path) -> PathBuf {
    target_dir(root).join("package/report.json")
}

fn target_dir(root: &Path) -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("target"))
}

/// `cargo_target` is a target directory of its own: the cross-build shares nothing with the
/// host's, and holding the workspace's build lock for many minutes would stall every other
/// cargo command meanwhile.
async fn sam_build(root: &Path, bin: &Path, build_dir: &Path, cargo_target: &Path) -> Result<()> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    let mut paths = vec![bin.to_path_buf()];
    paths.extend(std::env::split_paths(&path));
    println!(
        "xtask: sam build --build-dir {} (the first time a release cross-build: many minutes)",
        build_dir.display()
    );
    // The venv's bin first: sam finds cargo-lambda there, and cargo-lambda finds Zig through
    // the venv's python (`python3 -m ziglang`).
    let status = command(bin.join("sam"))
        .args(["build", "--template", "template.yaml", "--build-dir"])
        .arg(build_dir)
        .current_dir(root)
        .env("PATH", std::env::join_paths(paths)?)
        .env("SAM_CLI_TELEMETRY", "0")
        .env("CARGO_TARGET_DIR", cargo_target)
        .status()
        .await
        .map_err(|e| format!("cannot run sam build: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("sam build failed ({status})").into())
    }
}

fn elf_machine(path: &Path) -> Result<u16> {
    let bytes = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
    match bytes.get(..20) {
        Some(header) if header.starts_with(b"\x7fELF") => {
            Ok(u16::from_le_bytes([header[18], header[19]]))
        }
        _ => Err(format!("{} is not an ELF executable", path.display()).into()),
    }
}

/// `bootstrap` deflated into `zip` with its executable bit, as `sam deploy` zips a function
/// (with Python's zipfile, which the SAM CLI itself uses).
async fn zip_bootstrap(bootstrap: &Path, zip: &Path) -> Result<()> {
    std::fs::create_dir_all(zip.parent().ok_or("zip path without a folder")?)?;
    let script = "import sys, zipfile\n\
        with zipfile.ZipFile(sys.argv[2], 'w', zipfile.ZIP_DEFLATED, compresslevel=9) as z:\n\
        \x20   z.write(sys.argv[1], 'bootstrap')\n";
    let status = command("python3")
        .args(["-c", script])
        .arg(bootstrap)
        .arg(zip)
        .status()
        .await
        .map_err(|e| format!("cannot run python3: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("zipping {} failed ({status})", bootstrap.display()).into())
    }
}

/// Where Debian's `libc6-arm64-cross` puts the arm64 glibc (and `libgcc-s1-arm64-cross` its
/// libgcc_s) that the dynamically linked binaries load.
const ARM64_SYSROOT: &str = "/usr/aarch64-linux-gnu";
const QEMU_PACKAGES: &str = "qemu-user-static libc6-arm64-cross libgcc-s1-arm64-cross";

/// How an arm64 binary runs here: natively on arm64, else under qemu-user with an arm64 glibc.
enum Runner {
    Native,
    Qemu { qemu: PathBuf, sysroot: PathBuf },
}

impl Runner {
    fn find() -> Result<Self> {
        if std::env::consts::ARCH == "aarch64" {
            return Ok(Runner::Native);
        }
        let path = std::env::var_os("PATH").unwrap_or_default();
        let qemu = std::env::split_paths(&path)
            .flat_map(|dir| [dir.join("qemu-aarch64-static"), dir.join("qemu-aarch64")])
            .find(|candidate| candidate.is_file());
        let sysroot = PathBuf::from(ARM64_SYSROOT);
        match qemu {
            Some(qemu) if sysroot.join("lib/ld-linux-aarch64.so.1").is_file() => {
                Ok(Runner::Qemu { qemu, sysroot })
            }
            _ => Err(format!(
                "this machine is not arm64, and running the arm64 bootstraps needs qemu-aarch64 \
                 and an arm64 glibc in {ARM64_SYSROOT}: `apt-get install {QEMU_PACKAGES}`"
            )
            .into()),
        }
    }

    fn describe(&self) -> String {
        match self {
            Runner::Native => "natively (arm64)".into(),
            Runner::Qemu { qemu, sysroot } => format!(
                "under {} -L {} (user-mode emulation of arm64 on {}: timings are the emulator's)",
                qemu.display(),
                sysroot.display(),
                std::env::consts::ARCH
            ),
        }
    }

    /// An executable that starts `bootstrap` with its environment: the bench starts it.
    fn wrapper(&self, bootstrap: &Path, at: &Path) -> Result<PathBuf> {
        let Runner::Qemu { qemu, sysroot } = self else {
            return Ok(bootstrap.to_path_buf());
        };
        let quote =
            |path: &Path| format!("'{}'", path.display().to_string().replace('\'', r"'\''"));
        let mut file = std::fs::File::create(at)?;
        writeln!(
            file,
            "#!/bin/sh\nexec {} -L {} {}",
            quote(qemu),
            quote(sysroot),
            quote(bootstrap)
        )?;
        std::fs::set_permissions(at, std::fs::Permissions::from_mode(0o755))?;
        Ok(at.to_path_buf())
    }
}

/// Each event of `events/` to a fresh process of its function (the file's prefix), the ones
/// that end the session or the user last.
async fn answer_events(
    root: &Path,
    binaries: &HashMap<String, PathBuf>,
    logs: &Path,
) -> Result<Vec<Answered>> {
    let seed = crate::bench::provision(root).await?;
    let mut bench = Bench::new(root, binaries, logs, seed);
    let mut functions: Vec<&String> = binaries.keys().collect();
    // Longest first, so that a name that starts with another's is matched as itself.
    functions.sort_by_key(|f| std::cmp::Reverse(f.len()));
    let mut answered = Vec::new();
    for event in ordered_events(&root.join("events"))? {
        let function = functions
            .iter()
            .find(|f| event.starts_with(&format!("{f}-")))
            .ok_or_else(|| format!("events/{event}.json belongs to no function"))?;
        let run = bench
            .cold_start(function, event.clone().leak())
            .await
            .map_err(|e| format!("events/{event}.json: {e}"))?;
        println!(
            "xtask: {event}: {} (INIT {:.0} ms, answered {:.0} ms after start)",
            run.status,
            millis(run.init),
            millis(run.first_answer)
        );
        answered.push(Answered {
            event,
            status: run.status,
            init_ms: millis(run.init),
            first_answer_ms: millis(run.first_answer),
            peak_rss_kib: run.peak_rss_kib,
        });
    }
    for function in binaries.keys() {
        if !answered
            .iter()
            .any(|a| a.event.starts_with(&format!("{function}-")))
        {
            return Err(format!("{function} has no event in events/").into());
        }
    }
    Ok(answered)
}

fn ordered_events(dir: &Path) -> Result<Vec<String>> {
    let mut names: Vec<String> = std::fs::read_dir(dir)?
        .filter_map(|entry| {
            let name = entry.ok()?.file_name().into_string().ok()?;
            Some(name.strip_suffix(".json")?.to_owned())
        })
        .collect();
    names.sort_by_key(|name| {
        (
            DESTRUCTIVE_EVENTS.iter().position(|d| d == name),
            name.clone(),
        )
    });
    Ok(names)
}

fn print_sizes(built: &[Built], build_secs: f64) {
    println!("\nsam build: {build_secs:.0} s\n");
    println!(
        "{:<20} {:>12} {:>12} {:>9}",
        "function", "bootstrap", "zip", "zip MiB"
    );
    for b in built {
        println!(
            "{:<20} {:>12} {:>12} {:>9.2}",
            b.function,
            b.bootstrap_bytes,
            b.zip_bytes,
            b.zip_bytes as f64 / (1024.0 * 1024.0)
        );
    }
    println!();
}

fn print_answers(answered: &[Answered]) {
    println!(
        "\n{:<28} {:>6} {:>9} {:>13} {:>9}",
        "event", "status", "INIT ms", "answered ms", "peak MiB"
    );
    for a in answered {
        println!(
            "{:<28} {:>6} {:>9.0} {:>13.0} {:>9}",
            a.event,
            a.status,
            a.init_ms,
            a.first_answer_ms,
            a.peak_rss_kib
                .map_or("-".into(), |kib| format!("{:.1}", kib as f64 / 1024.0))
        );
    }
    println!();
}

fn millis(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1000.0
}

fn round1(value: f64) -> f64 {
    (value * 10.0).round() / 10.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_that_end_the_session_or_the_user_come_last() {
        let events = ordered_events(&crate::root().join("events")).unwrap();
        let n = events.len();
        assert_eq!(events[n - 2..], ["sessions-logout", "users-delete"]);
        assert!(events.contains(&"users-get".to_owned()));
        let rest = &events[..n - 2];
        assert!(rest.windows(2).all(|w| w[0] < w[1]));
    }

    #[test]
    fn the_elf_machine_of_this_test_binary_is_the_host_s() {
        let exe = std::env::current_exe().unwrap();
        let machine = elf_machine(&exe).unwrap();
        let expected = match std::env::consts::ARCH {
            "x86_64" => 62,
            "aarch64" => EM_AARCH64,
            _ => return,
        };
        assert_eq!(machine, expected);
        assert!(elf_machine(&crate::root().join("template.yaml")).is_err());
    }
}
