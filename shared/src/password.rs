//! Passwords: a secret newtype built only by parsing, and Argon2id hashing with configurable
//! parameters.

use argon2::{Algorithm, Argon2, Params, PasswordHasher, PasswordVerifier, Version};
use secrecy::{ExposeSecret, SecretString};

/// A candidate password: 6–256 characters. Never logged (its `Debug` is redacted).
#[derive(Clone, Debug)]
pub struct Password(SecretString);

pub const MIN_LEN: usize = 6;
pub const MAX_LEN: usize = 256;

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
#[derive(Clone)]
pub struct PasswordHasherService {
    params: Params,
    /// A real hash of a random password, verified against when the user is unknown so that
    /// both answers take the same time. Made on first use: only logins need it, and cold
    /// starts of the other functions should not pay for it.
    dummy_hash: std::sync::Arc<tokio::sync::OnceCell<String>>,
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
            dummy_hash: Default::default(),
        })
    }

    pub async fn hash(&self, password: &Password) -> Result<String, String> {
        let params = self.params.clone();
        let password = password.clone();
        tokio::task::spawn_blocking(move || hash_with(&params, &password))
            .await
            .map_err(|error| error.to_string())?
    }

    /// Verifies against `hash`, or against the dummy hash when there is none; `false` then.
    pub async fn verify(&self, password: &Password, hash: Option<&str>) -> bool {
        let known = hash.is_some();
        let hash = match hash {
            Some(hash) => hash.to_owned(),
            None => match self.dummy_hash().await {
                Some(dummy) => dummy,
                None => return false,
            },
        };
        let params = self.params.clone();
        let password = password.clone();
        let matches = tokio::task::spawn_blocking(move || {
            argon2(&params)
                .verify_password(password.expose().as_bytes(), hash.as_str())
                .is_ok()
        })
        .await
        .unwrap_or(false);
        known && matches
    }
}

impl PasswordHasherService {
    async fn dummy_hash(&self) -> Option<String> {
        self.dummy_hash
            .get_or_try_init(|| async {
                let dummy =
                    Password::parse(&crate::crypto::random_token()).expect("token is long enough");
                self.hash(&dummy).await
            })
            .await
            .ok()
            .cloned()
    }
}

fn argon2(params: &Params) -> Argon2<'static> {
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params.clone())
}

fn hash_with(params: &Params, password: &Password) -> Result<String, String> {
    argon2(params)
        .hash_password(password.expose().as_bytes())
        .map(|hash| hash.to_string())
        .map_err(|error| format!("hashing failed: {error}"))
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
    fn debug_output_never_shows_the_password() {
        let password = Password::parse("hunter22").unwrap();
        assert!(!format!("{password:?}").contains("hunter22"));
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
}
