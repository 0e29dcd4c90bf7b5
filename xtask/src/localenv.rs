//! The environment that points the AWS SDK and the app at the local emulators.

use std::ffi::OsString;
use std::fs::OpenOptions;
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use crate::stack::Ports;

pub const DEV_PORTS: Ports = Ports {
    dynamodb: 8000,
    moto: 5000,
};
/// Apart from `DEV_PORTS`, so that `cargo xtask test` can run while `cargo xtask dev` serves.
const TEST_PORTS: Ports = Ports {
    dynamodb: 8001,
    moto: 5001,
};
/// Moves the test emulators by this many ports, so that two checkouts can test at once.
pub const TEST_PORT_OFFSET_VAR: &str = "XTASK_TEST_PORT_OFFSET";

/// `TEST_PORTS`, moved by `XTASK_TEST_PORT_OFFSET` when it is set.
pub fn test_ports() -> Ports {
    let offset = std::env::var(TEST_PORT_OFFSET_VAR)
        .ok()
        .and_then(|value| value.parse::<u16>().ok())
        .unwrap_or(0);
    Ports {
        dynamodb: TEST_PORTS.dynamodb + offset,
        moto: TEST_PORTS.moto + offset,
    }
}
pub const DEV_TABLE: &str = "kuri-users";
pub const DEV_BUCKET: &str = "kuri-diagnostic-reports";
pub const API_ADDR: &str = "127.0.0.1:3000";

/// Which command the environment is for.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    /// `dev` and `admin`: one long-lived table and bucket.
    Dev,
    /// `test`: every test creates its own table, so none is named here.
    Test,
}

pub struct LocalEnv {
    /// Always set: anything else could send a request to real AWS or read real keys.
    forced: Vec<(&'static str, String)>,
    /// Set unless the caller already did.
    defaults: Vec<(&'static str, String)>,
    removed: Vec<OsString>,
}

impl LocalEnv {
    pub fn new(purpose: Purpose, ports: Ports, secrets_file: &Path) -> Self {
        let moto = format!("http://127.0.0.1:{}", ports.moto);
        let mut forced = vec![
            ("AWS_ENDPOINT_URL", moto.clone()),
            (
                "AWS_ENDPOINT_URL_DYNAMODB",
                format!("http://127.0.0.1:{}", ports.dynamodb),
            ),
            ("AWS_ACCESS_KEY_ID", "test".into()),
            ("AWS_SECRET_ACCESS_KEY", "test".into()),
            ("AWS_REGION", "us-east-1".into()),
            ("SECRETS_FILE", secrets_file.display().to_string()),
            ("S3_FORCE_PATH_STYLE", "true".into()),
            ("MOTO_URL", moto),
        ];
        if purpose == Purpose::Dev {
            forced.push(("TABLE_NAME", DEV_TABLE.into()));
            forced.push(("REPORTS_BUCKET", DEV_BUCKET.into()));
        }
        let defaults = vec![
            ("MAIL_FROM", "no-reply@kuri.example".into()),
            ("LINK_BASE_URL", format!("http://{API_ADDR}")),
            ("JWT_ISSUER", "https://users.kuri.example".into()),
            ("JWT_AUDIENCE", "kuri-apps".into()),
            // The web app's origin in development (API.md "Passkeys").
            ("WEBAUTHN_RP_ID", "localhost".into()),
            ("WEBAUTHN_ORIGINS", "http://localhost:3000".into()),
            ("RUST_LOG", "info".into()),
        ];
        // A service-specific endpoint would win over AWS_ENDPOINT_URL; SECRETS_ID would win over
        // SECRETS_FILE; a session token or profile would not belong to the test keys.
        let removed = std::env::vars_os()
            .map(|(name, _)| name)
            .filter(|name| {
                let name = name.to_string_lossy();
                (name.starts_with("AWS_ENDPOINT_URL_") && name != "AWS_ENDPOINT_URL_DYNAMODB")
                    || [
                        "AWS_IGNORE_CONFIGURED_ENDPOINT_URLS",
                        "AWS_SESSION_TOKEN",
                        "AWS_PROFILE",
                        "AWS_DEFAULT_PROFILE",
                        "SECRETS_ID",
                    ]
                    .contains(&name.as_ref())
            })
            .collect();
        Self {
            forced,
            defaults,
            removed,
        }
    }

    /// The variables to set, given the current process environment.
    fn assignments(&self) -> impl Iterator<Item = &(&'static str, String)> {
        self.forced.iter().chain(
            self.defaults
                .iter()
                .filter(|(name, _)| std::env::var_os(name).is_none()),
        )
    }

    /// Changes this process's environment.
    ///
    /// # Safety
    /// No other thread may exist yet (see `std::env::set_var`).
    pub unsafe fn apply_to_process(&self) {
        for name in &self.removed {
            // SAFETY: the caller guarantees we are single-threaded.
            unsafe { std::env::remove_var(name) };
        }
        let assignments: Vec<_> = self.assignments().cloned().collect();
        for (name, value) in assignments {
            // SAFETY: as above.
            unsafe { std::env::set_var(name, value) };
        }
    }

    pub fn apply_to_command(&self, command: &mut tokio::process::Command) {
        for name in &self.removed {
            command.env_remove(name);
        }
        for (name, value) in self.assignments() {
            command.env(name, value);
        }
    }
}

/// Writes fresh keys to `path` unless it exists (owner-only permissions); to an existing file,
/// adds the keys it was written without.
pub fn ensure_secrets_file(path: &Path) -> io::Result<()> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)?;
    }
    match OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
    {
        Ok(mut file) => file.write_all(shared::secrets::generate_secrets_json().as_bytes()),
        Err(error) if error.kind() == io::ErrorKind::AlreadyExists => complete_secrets_file(path),
        Err(error) => Err(error),
    }
}

fn complete_secrets_file(path: &Path) -> io::Result<()> {
    let json = std::fs::read_to_string(path)?;
    let completed = shared::secrets::complete_secrets_json(&json).map_err(|error| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("{}: {error}", path.display()),
        )
    })?;
    match completed {
        // Rewriting in place keeps the file's owner-only permissions.
        Some(completed) => std::fs::write(path, completed),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    fn scratch_file() -> std::path::PathBuf {
        std::env::temp_dir()
            .join(format!("kuri-secrets-{}", uuid::Uuid::new_v4().simple()))
            .join("secrets.json")
    }

    #[test]
    fn a_missing_secrets_file_is_created_owner_only_and_parses() {
        let path = scratch_file();
        ensure_secrets_file(&path).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        shared::secrets::parse(&std::fs::read_to_string(&path).unwrap()).unwrap();
        std::fs::remove_dir_all(path.parent().unwrap()).unwrap();
    }

    #[test]
    fn an_existing_file_without_a_totp_key_gets_one_and_keeps_its_other_keys() {
        let path = scratch_file();
        ensure_secrets_file(&path).unwrap();
        let mut document: serde_json::Map<String, serde_json::Value> =
            serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        document.remove("totpKey").unwrap();
        std::fs::write(&path, serde_json::to_string(&document).unwrap()).unwrap();

        ensure_secrets_file(&path).unwrap();

        let completed: serde_json::Map<String, serde_json::Value> =
            serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        assert_eq!(completed["hmacKey"], document["hmacKey"]);
        assert_eq!(completed["jwtPrivateKeyPem"], document["jwtPrivateKeyPem"]);
        shared::secrets::parse(&std::fs::read_to_string(&path).unwrap()).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        std::fs::remove_dir_all(path.parent().unwrap()).unwrap();
    }

    #[test]
    fn a_complete_file_is_left_unchanged() {
        let path = scratch_file();
        ensure_secrets_file(&path).unwrap();
        let before = std::fs::read_to_string(&path).unwrap();
        ensure_secrets_file(&path).unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), before);
        std::fs::remove_dir_all(path.parent().unwrap()).unwrap();
    }
}
