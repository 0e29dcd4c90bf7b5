//! The one typed configuration, read from the environment once at cold start.

use std::env;
use std::path::PathBuf;

use crate::security::password::HashParams;

/// Where the signing and HMAC keys come from.
#[derive(Clone, Debug)]
pub enum SecretsSource {
    /// A local JSON file (the dev stack and tests).
    File(PathBuf),
    /// An AWS Secrets Manager secret id or ARN.
    SecretsManager(String),
}

#[derive(Clone, Debug)]
pub struct Config {
    pub table_name: String,
    pub secrets: SecretsSource,
    pub jwt_issuer: String,
    pub jwt_audience: String,
    pub hash_params: HashParams,
    pub min_build_ios: Option<u32>,
    pub min_build_android: Option<u32>,
    pub mail_from: String,
    pub link_base_url: String,
    pub reports_bucket: String,
    pub s3_force_path_style: bool,
    /// The WebAuthn relying party id (a domain the origins share).
    pub webauthn_rp_id: String,
    /// The origins passkey ceremonies may come from: web origins and the apps'
    /// `android:apk-key-hash:` ones.
    pub webauthn_origins: Vec<String>,
    /// E.164 prefixes texts may go to (`SMS_ALLOWED_PREFIXES`, comma-separated)…
    pub sms_allowed_prefixes: Vec<String>,
    /// …less these (`SMS_BLOCKED_PREFIXES`): API.md "Two-factor auth".
    pub sms_blocked_prefixes: Vec<String>,
    /// Texts the whole service sends per UTC day at most (`SMS_DAILY_CAP`).
    pub sms_daily_cap: u32,
}

/// The NANP area codes of countries other than the US and Canada, where SMS toll fraud
/// concentrates (API.md "Two-factor auth").
pub const DEFAULT_SMS_BLOCKED_PREFIXES: &str = "+1242,+1246,+1264,+1268,+1284,+1345,+1441,+1473,+1649,+1658,+1664,+1721,+1758,+1767,+1784,+1809,+1829,+1849,+1868,+1869,+1876";
pub const DEFAULT_SMS_ALLOWED_PREFIXES: &str = "+1";
pub const DEFAULT_SMS_DAILY_CAP: u32 = 10_000;

impl Config {
    /// Whether texts may go to `e164`: under an allowed prefix and under no blocked one.
    pub fn sms_allowed(&self, e164: &str) -> bool {
        let under = |prefixes: &[String]| prefixes.iter().any(|p| e164.starts_with(p.as_str()));
        under(&self.sms_allowed_prefixes) && !under(&self.sms_blocked_prefixes)
    }
}

/// A comma-separated list of E.164 prefixes (`+` and 1 to 15 digits each).
fn prefixes(name: &str, value: &str) -> Result<Vec<String>, ConfigError> {
    value
        .split(',')
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .map(|prefix| {
            let digits = prefix.strip_prefix('+').unwrap_or_default();
            let valid =
                (1..=15).contains(&digits.len()) && digits.bytes().all(|b| b.is_ascii_digit());
            if valid {
                Ok(prefix.to_owned())
            } else {
                Err(ConfigError(format!(
                    "{name} must be E.164 prefixes such as +1 separated by commas, got {prefix:?}"
                )))
            }
        })
        .collect()
}

#[derive(Debug, thiserror::Error)]
#[error("configuration: {0}")]
pub struct ConfigError(String);

impl Config {
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|name| env::var(name).ok())
    }

    /// Reads from any name → value lookup (tests pass a map).
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let get = |name: &str| lookup(name).filter(|value| !value.trim().is_empty());
        let required =
            |name: &str| get(name).ok_or_else(|| ConfigError(format!("{name} must be set")));
        let number = |name: &str, default: u32| -> Result<u32, ConfigError> {
            get(name).map_or(Ok(default), |value| {
                value.trim().parse().map_err(|_| {
                    ConfigError(format!("{name} must be a whole number, got {value:?}"))
                })
            })
        };
        let optional_number = |name: &str| -> Result<Option<u32>, ConfigError> {
            get(name)
                .map(|value| {
                    value.trim().parse().map_err(|_| {
                        ConfigError(format!("{name} must be a whole number, got {value:?}"))
                    })
                })
                .transpose()
        };
        let secrets = match (get("SECRETS_ID"), get("SECRETS_FILE")) {
            (Some(id), _) => SecretsSource::SecretsManager(id),
            (None, Some(path)) => SecretsSource::File(PathBuf::from(path)),
            (None, None) => {
                return Err(ConfigError(
                    "SECRETS_ID (AWS) or SECRETS_FILE (local) must be set".into(),
                ));
            }
        };
        let defaults = HashParams::default();
        Ok(Self {
            table_name: required("TABLE_NAME")?,
            secrets,
            jwt_issuer: get("JWT_ISSUER").unwrap_or_else(|| "https://users.kuri.example".into()),
            jwt_audience: get("JWT_AUDIENCE").unwrap_or_else(|| "kuri-apps".into()),
            hash_params: HashParams {
                memory_kib: number("ARGON2_MEMORY_KIB", defaults.memory_kib)?,
                iterations: number("ARGON2_ITERATIONS", defaults.iterations)?,
                parallelism: number("ARGON2_PARALLELISM", defaults.parallelism)?,
            },
            min_build_ios: optional_number("MIN_BUILD_IOS")?,
            min_build_android: optional_number("MIN_BUILD_ANDROID")?,
            mail_from: get("MAIL_FROM").unwrap_or_else(|| "no-reply@kuri.example".into()),
            link_base_url: get("LINK_BASE_URL")
                .unwrap_or_else(|| "http://127.0.0.1:3000".into())
                .trim_end_matches('/')
                .to_owned(),
            reports_bucket: get("REPORTS_BUCKET")
                .unwrap_or_else(|| "kuri-diagnostic-reports".into()),
            s3_force_path_style: get("S3_FORCE_PATH_STYLE").is_some_and(|v| v == "true"),
            webauthn_rp_id: get("WEBAUTHN_RP_ID")
                .map_or_else(|| "localhost".to_owned(), |id| id.trim().to_owned()),
            webauthn_origins: origins(get("WEBAUTHN_ORIGINS"))?,
            sms_allowed_prefixes: prefixes(
                "SMS_ALLOWED_PREFIXES",
                &get("SMS_ALLOWED_PREFIXES").unwrap_or_else(|| DEFAULT_SMS_ALLOWED_PREFIXES.into()),
            )?,
            sms_blocked_prefixes: prefixes(
                "SMS_BLOCKED_PREFIXES",
                &get("SMS_BLOCKED_PREFIXES").unwrap_or_else(|| DEFAULT_SMS_BLOCKED_PREFIXES.into()),
            )?,
            sms_daily_cap: number("SMS_DAILY_CAP", DEFAULT_SMS_DAILY_CAP)?,
        })
    }
}

/// `WEBAUTHN_ORIGINS`: comma-separated, each `scheme:rest` (default the dev web app's).
fn origins(value: Option<String>) -> Result<Vec<String>, ConfigError> {
    let Some(value) = value else {
        return Ok(vec!["http://localhost:3000".to_owned()]);
    };
    value
        .split(',')
        .map(str::trim)
        .filter(|origin| !origin.is_empty())
        .map(|origin| match origin.split_once(':') {
            Some((scheme, rest)) if !scheme.is_empty() && !rest.is_empty() => Ok(origin.to_owned()),
            _ => Err(ConfigError(format!(
                "WEBAUTHN_ORIGINS must list origins like https://app.example, got {origin:?}"
            ))),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn config(pairs: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Config::from_lookup(|name| map.get(name).cloned())
    }

    #[test]
    fn missing_table_name_is_named_in_the_error() {
        let error = config(&[("SECRETS_FILE", "/tmp/s.json")]).unwrap_err();
        assert!(error.to_string().contains("TABLE_NAME"));
    }

    #[test]
    fn bad_numbers_are_named_in_the_error() {
        let error = config(&[
            ("TABLE_NAME", "t"),
            ("SECRETS_FILE", "/tmp/s.json"),
            ("ARGON2_MEMORY_KIB", "lots"),
        ])
        .unwrap_err();
        assert!(error.to_string().contains("ARGON2_MEMORY_KIB"));
    }

    #[test]
    fn defaults_follow_owasp_and_no_minimum_build() {
        let config = config(&[("TABLE_NAME", "t"), ("SECRETS_ID", "arn:secret")]).unwrap();
        assert_eq!(config.hash_params, HashParams::default());
        assert_eq!(config.min_build_ios, None);
        assert!(matches!(config.secrets, SecretsSource::SecretsManager(_)));
        assert_eq!(config.webauthn_rp_id, "localhost");
        assert_eq!(config.webauthn_origins, vec!["http://localhost:3000"]);
    }

    #[test]
    fn webauthn_origins_are_a_list_and_a_bad_one_is_named() {
        let listed = config(&[
            ("TABLE_NAME", "t"),
            ("SECRETS_ID", "s"),
            (
                "WEBAUTHN_ORIGINS",
                "https://app.kuri.example, android:apk-key-hash:abc",
            ),
        ])
        .unwrap();
        assert_eq!(
            listed.webauthn_origins,
            vec!["https://app.kuri.example", "android:apk-key-hash:abc"]
        );
        let error = config(&[
            ("TABLE_NAME", "t"),
            ("SECRETS_ID", "s"),
            ("WEBAUTHN_ORIGINS", "app.kuri.example"),
        ])
        .unwrap_err();
        assert!(error.to_string().contains("WEBAUTHN_ORIGINS"));
    }

    #[test]
    fn sms_defaults_allow_north_america_but_not_the_caribbean_area_codes() {
        let config = config(&[("TABLE_NAME", "t"), ("SECRETS_ID", "arn:secret")]).unwrap();
        assert_eq!(config.sms_daily_cap, 10_000);
        assert!(config.sms_allowed("+14155550123"));
        assert!(config.sms_allowed("+16135550123"));
        for blocked in ["+12425550123", "+18765550123", "+18095550123"] {
            assert!(!config.sms_allowed(blocked), "{blocked}");
        }
        assert!(!config.sms_allowed("+447700900123"));
        assert_eq!(config.sms_blocked_prefixes.len(), 21);
    }

    #[test]
    fn sms_prefixes_are_configurable_and_checked() {
        let uk = config(&[
            ("TABLE_NAME", "t"),
            ("SECRETS_ID", "arn:secret"),
            ("SMS_ALLOWED_PREFIXES", "+1, +44"),
            ("SMS_BLOCKED_PREFIXES", "+4470"),
            ("SMS_DAILY_CAP", "3"),
        ])
        .unwrap();
        assert!(uk.sms_allowed("+447900900123"));
        assert!(!uk.sms_allowed("+447000900123"));
        assert_eq!(uk.sms_daily_cap, 3);
        let error = config(&[
            ("TABLE_NAME", "t"),
            ("SECRETS_ID", "arn:secret"),
            ("SMS_BLOCKED_PREFIXES", "1242"),
        ])
        .unwrap_err();
        assert!(error.to_string().contains("SMS_BLOCKED_PREFIXES"));
    }
}
