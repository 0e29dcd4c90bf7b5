//! The composition root. [`Core`] is what every route group shares (configuration, the stores
//! on the one DynamoDB table, keys, the clock); each function adds only the notifier or file
//! store its routes use ([`MailApp`], [`SmsApp`], [`ReportsApp`]), so its binary builds and
//! links no other AWS client. [`App`] holds all of them, for the dev server and the tests.
//!
//! Route groups take their context through the traits [`Context`], [`MailContext`],
//! [`SmsContext`] and [`ReportContext`]; services take `&Core` and the port they need.

use std::ops::Deref;
use std::sync::Arc;

use lambda_http::Request;

use crate::config::{Config, SecretsSource};
use crate::domain::clock::Clock;
use crate::domain::code::CodeStore;
use crate::domain::email_token::TokenStore;
use crate::domain::lockout::LockoutStore;
use crate::domain::mail::Mailer;
use crate::domain::passkey::PasskeyStore;
use crate::domain::report::{ReportStorage, ReportStore};
use crate::domain::security_event::{Cause, SecurityEventStore};
use crate::domain::session::{Session, SessionStore, Stage};
use crate::domain::sms::CodeSender;
use crate::domain::user::{User, UserStore};
use crate::notify::memory::{MemoryCodeSender, MemoryMailer};
use crate::secrets::{ReloadCause, Secrets};
use crate::security::jwt::{Claims, JwtKeys, Scope};
use crate::security::password::{HashParams, PasswordHasherService};
use crate::security::secretbox::SecretBox;
use crate::store::dynamo::DynamoStore;
use crate::store::memory::{MemoryReportStorage, MemoryStore};
use crate::{ApiError, http};

/// What every route group uses, built once per cold start and shared by every invoke.
#[derive(Clone)]
pub struct Core {
    pub config: Arc<Config>,
    pub users: Arc<dyn UserStore>,
    pub sessions: Arc<dyn SessionStore>,
    pub lockouts: Arc<dyn LockoutStore>,
    pub tokens: Arc<dyn TokenStore>,
    pub codes: Arc<dyn CodeStore>,
    pub reports: Arc<dyn ReportStore>,
    pub events: Arc<dyn SecurityEventStore>,
    pub passkeys: Arc<dyn PasskeyStore>,
    pub hasher: PasswordHasherService,
    pub jwt: Arc<JwtKeys>,
    pub hmac_key: Arc<[u8]>,
    /// Seals authenticator-app secrets (the secret store's TOTP key).
    pub totp_box: Arc<SecretBox>,
    pub clock: Clock,
    /// Where a warm environment reads its secret again (a key rotation without a cold start);
    /// `None` keeps the keys it was built with (the dev server, most tests).
    pub key_reload: Option<Arc<crate::secrets::Reload>>,
}

#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct StartupError(String);

/// Which access tokens a route takes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    /// Only a full login.
    Full,
    /// A full login or a token waiting for its 2FA code.
    FullOrTwoFactor,
}

/// The authenticated caller.
#[derive(Clone, Debug)]
pub struct Principal {
    pub user: User,
    pub session: Session,
    pub claims: Claims,
}

impl Principal {
    /// The caller as the cause of a change, for its security events.
    pub fn cause(&self) -> Cause {
        Cause::by(self.user.id, self.user.is_admin(), self.session.id)
    }
}

impl Core {
    /// Cold start: configuration, the AWS configuration, keys, the DynamoDB client and one
    /// request to open its connection. The AWS configuration is returned for the function's
    /// other clients.
    pub async fn from_env() -> Result<(Self, aws_config::SdkConfig), StartupError> {
        let config = Config::from_env().map_err(|e| StartupError(e.to_string()))?;
        let aws = crate::aws::load().await;
        let secrets = crate::secrets::load(&config.secrets, &aws)
            .await
            .map_err(StartupError)?;
        let store = DynamoStore::new(aws_sdk_dynamodb::Client::new(&aws), &config.table_name);
        store.warm_up().await;
        let source = config.secrets.clone();
        let core = Self::from_parts(config, Arc::new(store), &secrets, Clock::system())?;
        let core = core.reloading_keys_from(source, aws.clone());
        Ok((core, aws))
    }

    /// A core on the given store; tests use it with DynamoDB Local or memory.
    pub fn from_parts<S>(
        config: Config,
        store: Arc<S>,
        secrets: &Secrets,
        clock: Clock,
    ) -> Result<Self, StartupError>
    where
        S: UserStore
            + SessionStore
            + LockoutStore
            + TokenStore
            + ReportStore
            + CodeStore
            + SecurityEventStore
            + PasskeyStore
            + 'static,
    {
        let jwt = JwtKeys::from_secrets(secrets, &config.jwt_issuer, &config.jwt_audience)
            .map_err(StartupError)?;
        let hasher = PasswordHasherService::new(config.hash_params).map_err(StartupError)?;
        Ok(Self {
            config: Arc::new(config),
            users: store.clone(),
            sessions: store.clone(),
            lockouts: store.clone(),
            tokens: store.clone(),
            codes: store.clone(),
            reports: store.clone(),
            events: store.clone(),
            passkeys: store,
            hasher,
            jwt: Arc::new(jwt),
            hmac_key: secrets.hmac_key.clone().into(),
            totp_box: Arc::new(SecretBox::new(&secrets.totp_key)),
            clock,
            key_reload: None,
        })
    }

    /// This core, reading its signing keys again from `source` when they are older than
    /// [`crate::secrets::MAX_AGE`] or a token names a key it does not hold.
    pub fn reloading_keys_from(
        mut self,
        source: SecretsSource,
        aws: aws_config::SdkConfig,
    ) -> Self {
        let reload = crate::secrets::Reload::new(source, aws, self.clock.now());
        self.key_reload = Some(Arc::new(reload));
        self
    }

    /// Reads the secret again if the keys in use are older than [`crate::secrets::MAX_AGE`]:
    /// after a rotation, a warm environment signs with the new key within that time. Called
    /// before each invoke; costs nothing until the keys are that old.
    pub async fn refresh_keys_if_stale(&self) {
        self.reload_keys(ReloadCause::Age).await;
    }

    /// Whether the keys changed: read again for `cause` when it is due, and swapped in.
    async fn reload_keys(&self, cause: ReloadCause) -> bool {
        let Some(reload) = &self.key_reload else {
            return false;
        };
        let Some(secrets) = reload.reload(cause, self.clock.now()).await else {
            return false;
        };
        match JwtKeys::from_secrets(&secrets, &self.config.jwt_issuer, &self.config.jwt_audience) {
            Ok(keys) => {
                self.jwt.replace_with(keys);
                true
            }
            Err(error) => {
                tracing::warn!(%error, "the secrets read again hold no valid key; the keys in use stay");
                false
            }
        }
    }

    /// Checks the bearer token and loads its user and session in one read.
    /// Every failure is the same 401 "Invalid token".
    pub async fn authenticate(&self, req: &Request, access: Access) -> Result<Principal, ApiError> {
        let token = http::header(req.headers(), "authorization")
            .and_then(|value| {
                let (scheme, token) = value.trim().split_once(' ')?;
                scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
            })
            .ok_or(ApiError::InvalidToken)?;
        let now = self.clock.now();
        let mut claims = self.jwt.verify(token, now);
        // A token signed under a key this environment has not read yet: a rotation happened
        // since it started. Read the secret again (at most once per 30 s) and retry.
        if claims.is_none()
            && self.jwt.names_unknown_kid(token)
            && self.reload_keys(ReloadCause::UnknownKid).await
        {
            claims = self.jwt.verify(token, now);
        }
        let claims = claims.ok_or(ApiError::InvalidToken)?;
        if claims.scope == Scope::TwoFactor && access == Access::Full {
            return Err(ApiError::InvalidToken);
        }
        let (user, session) = self
            .sessions
            .get_user_and_session(claims.sub, claims.sid)
            .await?;
        let (Some(user), Some(session)) = (user, session) else {
            return Err(ApiError::InvalidToken);
        };
        let valid = user.is_active()
            && session.user_id == user.id
            && session.is_live(user.session_epoch, now)
            // A `2fa` token lives only while its session waits for the code: once the session
            // is full, the token is spent.
            && match claims.scope {
                Scope::Full => session.stage == Stage::Full,
                Scope::TwoFactor => session.stage == Stage::TwoFactor,
            };
        if !valid {
            return Err(ApiError::InvalidToken);
        }
        crate::telemetry::record_user(user.id);
        Ok(Principal {
            user,
            session,
            claims,
        })
    }
}

/// A function's context built at cold start from the environment.
pub trait FromEnv: Sized {
    fn from_env() -> impl Future<Output = Result<Self, StartupError>> + Send;
}

/// A function's `main`: logs, its context from the environment (kept for the life of the
/// process), then the Lambda runtime handing each event to `handle`, with the signing keys
/// read again first when they are older than [`crate::secrets::MAX_AGE`].
pub async fn run<A, F, Fut>(handle: F) -> Result<(), lambda_http::Error>
where
    A: FromEnv + Context + 'static,
    F: Fn(&'static A, Request) -> Fut,
    Fut: Future<Output = http::Response> + Send,
{
    crate::telemetry::init();
    let app: &'static A = Box::leak(Box::new(A::from_env().await?));
    lambda_http::run(lambda_http::service_fn(move |req| {
        let refresh = app.core().refresh_keys_if_stale();
        let response = handle(app, req);
        async move {
            refresh.await;
            Ok::<_, lambda_http::Error>(response.await)
        }
    }))
    .await
}

/// A route group's context: at least the [`Core`].
pub trait Context: Send + Sync {
    fn core(&self) -> &Core;
}

/// A route group that sends mail.
pub trait MailContext: Context {
    fn mailer(&self) -> &dyn Mailer;
}

/// A route group that texts codes.
pub trait SmsContext: Context {
    fn sms(&self) -> &dyn CodeSender;
}

/// A route group that presigns report files.
pub trait ReportContext: Context {
    fn report_storage(&self) -> &dyn ReportStorage;
}

impl Context for Core {
    fn core(&self) -> &Core {
        self
    }
}

/// The core and a mailer: `users`, `password-recovery`, `email-verification`.
#[derive(Clone)]
pub struct MailApp {
    pub core: Core,
    pub mailer: Arc<dyn Mailer>,
}

/// The core and a code sender: `sessions`, `two-factor`.
#[derive(Clone)]
pub struct SmsApp {
    pub core: Core,
    pub sms: Arc<dyn CodeSender>,
}

/// The core, a code sender and a mailer: `two-factor`, which texts codes and mails the
/// security notice after a second factor is removed.
#[derive(Clone)]
pub struct TwoFactorApp {
    pub core: Core,
    pub sms: Arc<dyn CodeSender>,
    pub mailer: Arc<dyn Mailer>,
}

/// The core and the report files: `diagnostic-reports`.
#[derive(Clone)]
pub struct ReportsApp {
    pub core: Core,
    pub report_storage: Arc<dyn ReportStorage>,
}

#[cfg(feature = "ses")]
impl FromEnv for MailApp {
    async fn from_env() -> Result<Self, StartupError> {
        let (core, aws) = Core::from_env().await?;
        let mailer = ses_mailer(&core.config, &aws);
        Ok(Self {
            core,
            mailer: Arc::new(mailer),
        })
    }
}

#[cfg(feature = "ses")]
fn ses_mailer(config: &Config, aws: &aws_config::SdkConfig) -> crate::notify::ses::SesMailer {
    crate::notify::ses::SesMailer::new(aws_sdk_ses::Client::new(aws), config.mail_from.clone())
}

#[cfg(all(feature = "ses", feature = "sns"))]
impl FromEnv for TwoFactorApp {
    async fn from_env() -> Result<Self, StartupError> {
        let (core, aws) = Core::from_env().await?;
        let sms = crate::notify::sns::SnsCodeSender::new(aws_sdk_sns::config::Builder::from(&aws));
        Ok(Self {
            mailer: Arc::new(ses_mailer(&core.config, &aws)),
            sms: Arc::new(sms),
            core,
        })
    }
}

#[cfg(feature = "sns")]
impl FromEnv for SmsApp {
    async fn from_env() -> Result<Self, StartupError> {
        let (core, aws) = Core::from_env().await?;
        let sms = crate::notify::sns::SnsCodeSender::new(aws_sdk_sns::config::Builder::from(&aws));
        Ok(Self {
            core,
            sms: Arc::new(sms),
        })
    }
}

#[cfg(feature = "s3")]
impl FromEnv for ReportsApp {
    async fn from_env() -> Result<Self, StartupError> {
        let (core, aws) = Core::from_env().await?;
        Ok(Self {
            report_storage: Arc::new(s3_report_storage(&core.config, &aws)),
            core,
        })
    }
}

#[cfg(feature = "s3")]
fn s3_report_storage(
    config: &Config,
    aws: &aws_config::SdkConfig,
) -> crate::store::s3::S3ReportStorage {
    let s3 = aws_sdk_s3::config::Builder::from(aws)
        .force_path_style(config.s3_force_path_style)
        .build();
    crate::store::s3::S3ReportStorage::new(
        aws_sdk_s3::Client::from_conf(s3),
        config.reports_bucket.clone(),
    )
}

impl Context for MailApp {
    fn core(&self) -> &Core {
        &self.core
    }
}

impl MailContext for MailApp {
    fn mailer(&self) -> &dyn Mailer {
        &*self.mailer
    }
}

impl Context for SmsApp {
    fn core(&self) -> &Core {
        &self.core
    }
}

impl SmsContext for SmsApp {
    fn sms(&self) -> &dyn CodeSender {
        &*self.sms
    }
}

impl Context for TwoFactorApp {
    fn core(&self) -> &Core {
        &self.core
    }
}

impl SmsContext for TwoFactorApp {
    fn sms(&self) -> &dyn CodeSender {
        &*self.sms
    }
}

impl MailContext for TwoFactorApp {
    fn mailer(&self) -> &dyn Mailer {
        &*self.mailer
    }
}

impl Context for ReportsApp {
    fn core(&self) -> &Core {
        &self.core
    }
}

impl ReportContext for ReportsApp {
    fn report_storage(&self) -> &dyn ReportStorage {
        &*self.report_storage
    }
}

/// Every adapter at once: the dev server, which serves every route group in one process, and
/// the tests. Reads through to its [`Core`].
#[derive(Clone)]
pub struct App {
    pub core: Core,
    pub mailer: Arc<dyn Mailer>,
    pub sms: Arc<dyn CodeSender>,
    pub report_storage: Arc<dyn ReportStorage>,
}

impl Deref for App {
    type Target = Core;

    fn deref(&self) -> &Core {
        &self.core
    }
}

impl App {
    /// Every client, from the environment (the dev server and `xtask admin`).
    #[cfg(all(feature = "ses", feature = "sns", feature = "s3"))]
    pub async fn from_env() -> Result<Self, StartupError> {
        let (core, aws) = Core::from_env().await?;
        Ok(Self {
            mailer: Arc::new(ses_mailer(&core.config, &aws)),
            sms: Arc::new(crate::notify::sns::SnsCodeSender::new(
                aws_sdk_sns::config::Builder::from(&aws),
            )),
            report_storage: Arc::new(s3_report_storage(&core.config, &aws)),
            core,
        })
    }

    /// A self-contained app on the in-memory store with fast hashing, for unit tests.
    pub fn in_memory() -> Self {
        let secrets = crate::secrets::parse(&crate::secrets::generate_secrets_json())
            .expect("generated secrets parse");
        let mut config = Config::from_lookup(|name| match name {
            "TABLE_NAME" => Some("memory".into()),
            "SECRETS_FILE" => Some("unused".into()),
            _ => None,
        })
        .expect("static config is valid");
        config.hash_params = HashParams {
            memory_kib: 64,
            iterations: 1,
            parallelism: 1,
        };
        let core = Core::from_parts(
            config,
            Arc::new(MemoryStore::new()),
            &secrets,
            Clock::system(),
        )
        .expect("in-memory core builds");
        Self {
            core,
            mailer: Arc::new(MemoryMailer::new()),
            sms: Arc::new(MemoryCodeSender::new()),
            report_storage: Arc::new(MemoryReportStorage),
        }
    }
}

impl Context for App {
    fn core(&self) -> &Core {
        &self.core
    }
}

impl MailContext for App {
    fn mailer(&self) -> &dyn Mailer {
        &*self.mailer
    }
}

impl SmsContext for App {
    fn sms(&self) -> &dyn CodeSender {
        &*self.sms
    }
}

impl ReportContext for App {
    fn report_storage(&self) -> &dyn ReportStorage {
        &*self.report_storage
    }
}
