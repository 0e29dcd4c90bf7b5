//! Everything a handler needs, built once per cold start and shared by every invoke.

use std::sync::Arc;

use lambda_http::Request;

use crate::clock::Clock;
use crate::config::Config;
use crate::mail::{Mailer, MemoryMailer, SesMailer};
use crate::password::{HashParams, PasswordHasherService};
use crate::secrets::Secrets;
use crate::session::{Session, Stage};
use crate::sms::{CodeSender, MemoryCodeSender, SnsCodeSender};
use crate::storage::{MemoryReportStorage, ReportStorage, S3ReportStorage};
use crate::store::codes::CodeStore;
use crate::store::dynamo::DynamoStore;
use crate::store::memory::MemoryStore;
use crate::store::{LockoutStore, ReportStore, SessionStore, TokenStore, UserStore};
use crate::token::{Claims, JwtKeys, Scope};
use crate::user::User;
use crate::{ApiError, http};

#[derive(Clone)]
pub struct App {
    pub config: Arc<Config>,
    pub users: Arc<dyn UserStore>,
    pub sessions: Arc<dyn SessionStore>,
    pub lockouts: Arc<dyn LockoutStore>,
    pub tokens: Arc<dyn TokenStore>,
    pub mailer: Arc<dyn Mailer>,
    pub reports: Arc<dyn ReportStore>,
    pub report_storage: Arc<dyn ReportStorage>,
    pub codes: Arc<dyn CodeStore>,
    pub sms: Arc<dyn CodeSender>,
    pub hasher: PasswordHasherService,
    pub jwt: Arc<JwtKeys>,
    pub hmac_key: Arc<[u8]>,
    pub clock: Clock,
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

impl App {
    /// Cold start: configuration, AWS clients, keys, and one request to open the DynamoDB
    /// connection.
    pub async fn from_env() -> Result<Self, StartupError> {
        let config = Config::from_env().map_err(|e| StartupError(e.to_string()))?;
        let aws = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
        let secrets = crate::secrets::load(&config.secrets, &aws)
            .await
            .map_err(StartupError)?;
        let store = DynamoStore::new(aws_sdk_dynamodb::Client::new(&aws), &config.table_name);
        store.warm_up().await;
        let mailer = SesMailer::new(aws_sdk_ses::Client::new(&aws), config.mail_from.clone());
        let s3 = aws_sdk_s3::config::Builder::from(&aws)
            .force_path_style(config.s3_force_path_style)
            .build();
        let report_storage = S3ReportStorage::new(
            aws_sdk_s3::Client::from_conf(s3),
            config.reports_bucket.clone(),
        );
        Self::from_parts(
            config,
            Arc::new(store),
            Arc::new(mailer),
            Arc::new(report_storage),
            Arc::new(SnsCodeSender::new(aws_sdk_sns::config::Builder::from(&aws))),
            &secrets,
            Clock::system(),
        )
    }

    /// An app on the given store; tests use it with DynamoDB Local or memory.
    pub fn from_parts<S>(
        config: Config,
        store: Arc<S>,
        mailer: Arc<dyn Mailer>,
        report_storage: Arc<dyn ReportStorage>,
        sms: Arc<dyn CodeSender>,
        secrets: &Secrets,
        clock: Clock,
    ) -> Result<Self, StartupError>
    where
        S: UserStore + SessionStore + LockoutStore + TokenStore + ReportStore + CodeStore + 'static,
    {
        let jwt = JwtKeys::new(
            &secrets.jwt_private_key_der,
            &config.jwt_issuer,
            &config.jwt_audience,
        )
        .map_err(StartupError)?;
        let hasher = PasswordHasherService::new(config.hash_params).map_err(StartupError)?;
        Ok(Self {
            config: Arc::new(config),
            users: store.clone(),
            sessions: store.clone(),
            lockouts: store.clone(),
            tokens: store.clone(),
            codes: store.clone(),
            reports: store,
            mailer,
            report_storage,
            sms,
            hasher,
            jwt: Arc::new(jwt),
            hmac_key: secrets.hmac_key.clone().into(),
            clock,
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
        Self::from_parts(
            config,
            Arc::new(MemoryStore::new()),
            Arc::new(MemoryMailer::new()),
            Arc::new(MemoryReportStorage),
            Arc::new(MemoryCodeSender::new()),
            &secrets,
            Clock::system(),
        )
        .expect("in-memory app builds")
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
        let claims = self.jwt.verify(token, now).ok_or(ApiError::InvalidToken)?;
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
            && (claims.scope == Scope::TwoFactor || session.stage == Stage::Full);
        if !valid {
            return Err(ApiError::InvalidToken);
        }
        Ok(Principal {
            user,
            session,
            claims,
        })
    }
}
