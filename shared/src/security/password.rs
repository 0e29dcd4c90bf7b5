//! Passwords: a secret newtype built only by parsing, and Argon2id hashing with configurable
//! parameters.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use argon2::password_hash::phc::{Output, ParamsString, Salt};
use argon2::{Algorithm, Argon2, Block, Params, PasswordHash, Version};
use secrecy::{ExposeSecret, SecretString};

/// A candidate password: 6–256 characters. Never logged (its `Debug` is redacted).
#[derive(Clone, Debug)]
pub struct Password(SecretString);

pub const MIN_LEN: usize = 6;
pub const MAX_LEN: usize = 256;
/// The field error of a new password on the common-password list (API.md).
pub const TOO_COMMON: &str = "This password is too common.";

impl Password {
    pub fn parse(input: &str) -> Result<Self, String> {
        let length = input.chars().count();
        if length < MIN_LEN {
            Err(format!("Must be at least {MIN_LEN} characters."))
        } else if length > MAX_LEN {
            Err(format!("Must be at most {MAX_LEN} characters."))
        } else {
            Ok(Self(SecretString::from(input)))
        }
    }

    /// A password being set (registration, change, reset): [`Password::parse`]'s length rule,
    /// and not among the most common passwords, whatever its case.
    pub fn parse_new(input: &str) -> Result<Self, String> {
        let password = Self::parse(input)?;
        if super::common_passwords::is_common(input) {
            return Err(TOO_COMMON.to_owned());
        }
        Ok(password)
    }

    fn expose(&self) -> &str {
        self.0.expose_secret()
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HashParams {
    pub memory_kib: u32,
    pub iterations: u32,
    pub parallelism: u32,
}

impl Default for HashParams {
    /// OWASP's Argon2id recommendation: m = 19 MiB, t = 2, p = 1.
    fn default() -> Self {
        Self {
            memory_kib: 19 * 1024,
            iterations: 2,
            parallelism: 1,
        }
    }
}

/// Hashes and verifies passwords. Work runs on the blocking pool so it never stalls the runtime.
///
/// Argon2's working memory (19 MiB at the defaults) is allocated once and reused: allocating
/// it per hash left glibc holding freed blocks per thread, and a login process grew to
/// ~240 MiB (`cargo xtask bench`), near a 256 MB function's limit. One buffer also means one
/// hash at a time per process, which is what a Lambda instance does anyway.
#[derive(Clone)]
pub struct PasswordHasherService {
    params: Params,
    memory: Arc<Mutex<Vec<Block>>>,
    /// Argon2 computations done, for tests that prove how many attempts reached the hash.
    runs: Arc<AtomicU64>,
}

impl PasswordHasherService {
    pub fn new(params: HashParams) -> Result<Self, String> {
        let params = Params::new(
            params.memory_kib,
            params.iterations,
            params.parallelism,
            None,
        )
        .map_err(|error| format!("invalid Argon2 parameters: {error}"))?;
        Ok(Self {
            params,
            memory: Arc::default(),
            runs: Arc::default(),
        })
    }

    pub async fn hash(&self, password: &Password) -> Result<String, String> {
        let (params, memory) = (self.params.clone(), self.memory.clone());
        let password = password.clone();
        self.runs.fetch_add(1, Ordering::Relaxed);
        tokio::task::spawn_blocking(move || hash_with(&params, &memory, &password))
            .await
            .map_err(|error| error.to_string())?
    }

    /// Verifies against `hash`. Without one (an unknown user) the candidate is hashed with the
    /// configured parameters instead, the same Argon2 work as a check against a stored hash,
    /// and the answer is `false`. So there is no dummy hash to build: no login pays for one.
    pub async fn verify(&self, password: &Password, hash: Option<&str>) -> bool {
        let Some(hash) = hash.map(str::to_owned) else {
            let _ = self.hash(password).await;
            return false;
        };
        let memory = self.memory.clone();
        let password = password.clone();
        self.runs.fetch_add(1, Ordering::Relaxed);
        tokio::task::spawn_blocking(move || {
            verify_with(&memory, password.expose().as_bytes(), &hash)
        })
        .await
        .unwrap_or(false)
    }

    /// How many Argon2 computations (hashes and checks) this service has started.
    pub fn runs(&self) -> u64 {
        self.runs.load(Ordering::Relaxed)
    }
}

const SALT_BYTES: usize = 16;

fn hash_with(
    params: &Params,
    memory: &Mutex<Vec<Block>>,
    password: &Password,
) -> Result<String, String> {
    let salt = crate::security::crypto::random_bytes::<SALT_BYTES>();
    let mut output = [0u8; Params::DEFAULT_OUTPUT_LEN];
    let failed = |error: &dyn std::fmt::Display| format!("hashing failed: {error}");
    compute(
        params,
        Version::V0x13,
        memory,
        password.expose().as_bytes(),
        &salt,
        &mut output,
    )
    .map_err(|e| failed(&e))?;
    let hash = PasswordHash {
        algorithm: argon2::ARGON2ID_IDENT,
        version: Some(Version::V0x13.into()),
        params: ParamsString::try_from(params).map_err(|e| failed(&e))?,
        salt: Some(Salt::new(&salt).map_err(|e| failed(&e))?),
        hash: Some(Output::new(&output).map_err(|e| failed(&e))?),
    };
    Ok(hash.to_string())
}

/// Recomputes a stored PHC-format Argon2id hash (with its own parameters) and compares in
/// constant time.
fn verify_with(memory: &Mutex<Vec<Block>>, password: &[u8], stored: &str) -> bool {
    let Ok(hash) = PasswordHash::new(stored) else {
        return false;
    };
    let version = hash.version.map_or(Ok(Version::V0x13), Version::try_from);
    let (Ok(params), Ok(version), Some(salt), Some(expected)) =
        (Params::try_from(&hash), version, hash.salt, hash.hash)
    else {
        return false;
    };
    if hash.algorithm != argon2::ARGON2ID_IDENT {
        return false;
    }
    let mut output = vec![0u8; expected.len()];
    compute(
        &params,
        version,
        memory,
        password,
        salt.as_ref(),
        &mut output,
    )
    .is_ok()
        && crate::security::crypto::constant_time_eq(&output, expected.as_bytes())
}

fn compute(
    params: &Params,
    version: Version,
    memory: &Mutex<Vec<Block>>,
    password: &[u8],
    salt: &[u8],
    output: &mut [u8],
) -> Result<(), argon2::Error> {
    let mut blocks = memory.lock().unwrap_or_else(PoisonError::into_inner);
    let needed = params.block_count();
    if blocks.len() < needed {
        blocks.resize(needed, Block::default());
    }
    Argon2::new(Algorithm::Argon2id, version, params.clone()).hash_password_into_with_memory(
        password,
        salt,
        output,
        &mut blocks[..needed],
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fast() -> PasswordHasherService {
        PasswordHasherService::new(HashParams {
            memory_kib: 64,
            iterations: 1,
            parallelism: 1,
        })
        .unwrap()
    }

    #[test]
    fn length_limits_follow_the_contract() {
        assert!(Password::parse("12345").is_err());
        assert!(Password::parse("123456").is_ok());
        assert!(Password::parse(&"x".repeat(256)).is_ok());
        assert!(Password::parse(&"x".repeat(257)).is_err());
    }

    #[test]
    fn a_new_password_is_refused_when_common_in_any_case_and_the_length_rule_comes_first() {
        assert_eq!(Password::parse_new("Password1").unwrap_err(), TOO_COMMON);
        assert_eq!(Password::parse_new("QWERTY").unwrap_err(), TOO_COMMON);
        assert!(
            Password::parse_new("12345")
                .unwrap_err()
                .contains("at least 6")
        );
        assert!(Password::parse_new("correct horse battery").is_ok());
        assert!(
            Password::parse("password1").is_ok(),
            "a login may try anything"
        );
    }

    #[test]
    fn debug_output_never_shows_the_password() {
        let password = Password::parse("hunter22").unwrap();
        assert!(!format!("{password:?}").contains("hunter22"));
    }

    #[tokio::test]
    async fn hashes_are_standard_phc_strings_both_ways() {
        use argon2::{PasswordHasher as _, PasswordVerifier as _};
        let hasher = fast();
        let password = Password::parse("correct horse").unwrap();
        let standard = Argon2::new(Algorithm::Argon2id, Version::V0x13, hasher.params.clone());
        let ours = hasher.hash(&password).await.unwrap();
        assert!(
            standard
                .verify_password(b"correct horse", ours.as_str())
                .is_ok()
        );
        let theirs = standard
            .hash_password(b"correct horse")
            .unwrap()
            .to_string();
        assert!(hasher.verify(&password, Some(&theirs)).await);
        let other_params = Argon2::new(
            Algorithm::Argon2id,
            Version::V0x13,
            Params::new(128, 2, 1, None).unwrap(),
        )
        .hash_password(b"correct horse")
        .unwrap()
        .to_string();
        assert!(hasher.verify(&password, Some(&other_params)).await);
        assert!(!hasher.verify(&password, Some("$argon2id$garbage")).await);
    }

    #[tokio::test]
    async fn a_hash_verifies_only_its_password() {
        let hasher = fast();
        let password = Password::parse("correct horse").unwrap();
        let hash = hasher.hash(&password).await.unwrap();
        assert!(hash.starts_with("$argon2id$"));
        assert!(hasher.verify(&password, Some(&hash)).await);
        let other = Password::parse("wrong horse").unwrap();
        assert!(!hasher.verify(&other, Some(&hash)).await);
        assert!(!hasher.verify(&password, None).await);
    }

    #[tokio::test]
    async fn an_unknown_user_costs_one_argon2_run_from_the_first_login_on() {
        let hasher = fast();
        let password = Password::parse("correct horse").unwrap();
        assert!(!hasher.verify(&password, None).await);
        assert_eq!(hasher.runs(), 1, "no dummy hash built on the first login");
        assert!(!hasher.verify(&password, None).await);
        assert_eq!(hasher.runs(), 2);
        let hash = hasher.hash(&password).await.unwrap();
        assert!(hasher.verify(&password, Some(&hash)).await);
        assert_eq!(hasher.runs(), 4);
    }
}
