//! Integration-test helpers: an `App` on its own fresh table in DynamoDB Local (created from
//! `template.yaml`, like the deployed one), requests and responses that are easy to assert on,
//! API Gateway events from `events/`, and what moto recorded as sent.
//!
//! The emulators and their endpoints come from `cargo xtask test`.

pub mod accounts;

use std::sync::Arc;

use lambda_http::http::{HeaderMap, Method};
use lambda_http::{Body, Request};
use serde_json::Value;

use crate::app::Core;

pub mod iam;
use crate::config::Config;
use crate::domain::clock::Clock;
use crate::store::dynamo::DynamoStore;
use crate::{App, http};

const TEMPLATE: &str = include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/../template.yaml"));
const EVENTS_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../events");

fn require_env(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| {
        panic!("{name} is not set: run integration tests through `cargo xtask test`, which starts DynamoDB Local and moto")
    })
}

/// The moto endpoint (S3, SNS, SES and its `/moto-api`).
pub fn moto_url() -> String {
    require_env("MOTO_URL")
}

/// A fresh app on its own table, with fast password hashing and fresh keys.
pub async fn app() -> App {
    app_with(|_| {}).await
}

/// Like [`app`], letting the test adjust the configuration first.
pub async fn app_with(adjust: impl FnOnce(&mut Config)) -> App {
    app_on(&Endpoints::default(), adjust).await
}

/// Endpoints a fault test moves a client to (a DynamoDB Local of its own, a throttling proxy,
/// a port where nothing listens); `None` keeps the emulator of `cargo xtask test`.
#[derive(Clone, Debug, Default)]
pub struct Endpoints {
    pub dynamodb: Option<String>,
    pub sns: Option<String>,
    pub ses: Option<String>,
}

/// Like [`app_with`], with the clients of the functions on `endpoints`. The table is created
/// (and the sender verified) through the same endpoints, so they must answer at the start.
pub async fn app_on(endpoints: &Endpoints, adjust: impl FnOnce(&mut Config)) -> App {
    require_env("AWS_ENDPOINT_URL_DYNAMODB");
    let table = format!("test-{}", uuid::Uuid::new_v4().simple());
    let mut config = Config::from_lookup(|name| match name {
        "TABLE_NAME" => Some(table.clone()),
        "SECRETS_FILE" => Some("unused-by-tests".into()),
        "REPORTS_BUCKET" => Some("test-diagnostic-reports".into()),
        "MAIL_FROM" => Some("no-reply@kuri.example".into()),
        "S3_FORCE_PATH_STYLE" => Some("true".into()),
        _ => None,
    })
    .expect("test config is valid");
    config.hash_params = crate::security::password::HashParams {
        memory_kib: 256,
        iterations: 1,
        parallelism: 1,
    };
    adjust(&mut config);
    let aws = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
    let mut dynamodb = aws_sdk_dynamodb::config::Builder::from(&aws).interceptor(iam::Recorder);
    if let Some(url) = &endpoints.dynamodb {
        dynamodb = dynamodb.endpoint_url(url);
    }
    let dynamodb = aws_sdk_dynamodb::Client::from_conf(dynamodb.build());
    crate::localstack::create_table(&dynamodb, TEMPLATE, &config.table_name)
        .await
        .expect("creating the test table in DynamoDB Local");
    let s3 = aws_sdk_s3::Client::from_conf(
        aws_sdk_s3::config::Builder::from(&aws)
            .force_path_style(true)
            .interceptor(iam::Recorder)
            .build(),
    );
    crate::localstack::create_bucket(&s3, &config.reports_bucket)
        .await
        .expect("creating the test bucket in moto");
    let ses = aws_sdk_ses::Client::from_conf(
        aws_sdk_ses::config::Builder::from(&aws)
            .interceptor(iam::Recorder)
            .build(),
    );
    crate::localstack::verify_sender(&ses, &config.mail_from)
        .await
        .expect("verifying the sender in moto");
    let ses = match &endpoints.ses {
        Some(url) => aws_sdk_ses::Client::from_conf(
            aws_sdk_ses::config::Builder::from(&aws)
                .endpoint_url(url)
                .interceptor(iam::Recorder)
                .build(),
        ),
        None => ses,
    };
    let mailer = crate::notify::ses::SesMailer::new(ses, config.mail_from.clone());
    let secrets = crate::secrets::parse(&crate::secrets::generate_secrets_json())
        .expect("generated secrets parse");
    let store = DynamoStore::new(dynamodb, config.table_name.clone());
    let report_storage = crate::store::s3::S3ReportStorage::new(s3, config.reports_bucket.clone());
    let core = Core::from_parts(config, Arc::new(store), &secrets, Clock::system())
        .expect("test app builds");
    App {
        core,
        mailer: Arc::new(mailer),
        sms: Arc::new(crate::notify::sns::SnsCodeSender::new({
            let sns = aws_sdk_sns::config::Builder::from(&aws).interceptor(iam::Recorder);
            match &endpoints.sns {
                Some(url) => sns.endpoint_url(url),
                None => sns,
            }
        })),
        report_storage: Arc::new(report_storage),
    }
}

/// `app` after its secret changed to `secrets_json` (a key rotation) and its functions started
/// again: the same table, bucket and notifiers, the keys of the new document.
pub fn with_secrets(app: &App, secrets_json: &str) -> App {
    let secrets = crate::secrets::parse(secrets_json).expect("the secrets document parses");
    let jwt = crate::security::jwt::JwtKeys::from_secrets(
        &secrets,
        &app.config.jwt_issuer,
        &app.config.jwt_audience,
    )
    .expect("the keys are valid");
    let mut rotated = app.clone();
    rotated.core.jwt = Arc::new(jwt);
    rotated.core.hmac_key = secrets.hmac_key.into();
    rotated.core.totp_box = Arc::new(crate::security::secretbox::SecretBox::new(
        &secrets.totp_key,
    ));
    rotated
}

/// `app` as a deployed function runs it: its keys read from the secrets file at `path`, and
/// read from it again when they are stale or a token names a key it does not hold.
pub async fn reading_secrets_from(app: &App, path: &std::path::Path) -> App {
    let json = std::fs::read_to_string(path).expect("the secrets file is readable");
    let mut warm = with_secrets(app, &json);
    let aws = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
    warm.core = warm
        .core
        .reloading_keys_from(crate::config::SecretsSource::File(path.into()), aws);
    warm
}

/// A request as API Gateway would hand it to a function.
pub struct TestRequest {
    builder: lambda_http::http::request::Builder,
    body: Body,
}

pub fn request(method: &str, path_and_query: &str) -> TestRequest {
    TestRequest {
        builder: lambda_http::http::Request::builder()
            .method(Method::from_bytes(method.as_bytes()).expect("valid method"))
            .uri(path_and_query),
        body: Body::Empty,
    }
}

impl TestRequest {
    pub fn json(mut self, body: Value) -> Self {
        self.builder = self.builder.header("content-type", "application/json");
        self.body = Body::Text(body.to_string());
        self
    }

    pub fn bearer(mut self, token: &str) -> Self {
        self.builder = self
            .builder
            .header("authorization", format!("Bearer {token}"));
        self
    }

    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.builder = self.builder.header(name, value);
        self
    }

    /// A body exactly as given, with no content type unless set with `header`.
    pub fn raw_body(mut self, body: &str) -> Self {
        self.body = Body::Text(body.to_owned());
        self
    }

    pub fn build(self) -> Request {
        self.builder.body(self.body).expect("valid test request")
    }
}

/// A response with its body parsed, for assertions.
#[derive(Debug)]
pub struct TestResponse {
    pub status: u16,
    pub headers: HeaderMap,
    pub text: String,
    pub body: Value,
}

impl TestResponse {
    pub fn header(&self, name: &str) -> Option<&str> {
        http::header(&self.headers, name)
    }

    /// The `error.message` of an error body.
    pub fn message(&self) -> &str {
        self.body["error"]["message"].as_str().unwrap_or_default()
    }

    /// Asserts the status and the error message together, with the body in the panic message.
    pub fn assert_error(&self, status: u16, message: &str) {
        assert_eq!(
            (self.status, self.message()),
            (status, message),
            "body: {}",
            self.text
        );
    }
}

impl From<http::Response> for TestResponse {
    fn from(response: http::Response) -> Self {
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let text = match response.into_body() {
            Body::Text(text) => text,
            Body::Binary(bytes) => String::from_utf8_lossy(&bytes).into_owned(),
            _ => String::new(),
        };
        let body = serde_json::from_str(&text).unwrap_or(Value::Null);
        Self {
            status,
            headers,
            text,
            body,
        }
    }
}

/// An event of `events/` parsed as the Lambda runtime would, with `PLACEHOLDER` in the
/// bearer token and the placeholder uuid replaced.
pub fn event(name: &str, token: &str, uuid: &str) -> Request {
    let path = format!("{EVENTS_DIR}/{name}.json");
    let json = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let json = json
        .replace("Bearer PLACEHOLDER", &format!("Bearer {token}"))
        .replace("00000000-0000-4000-8000-000000000000", uuid);
    lambda_http::request::from_str(&json).unwrap_or_else(|e| panic!("{path} does not parse: {e}"))
}

/// Every event file name (without `.json`).
pub fn event_names() -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(EVENTS_DIR)
        .expect("events/ exists")
        .filter_map(|entry| {
            let name = entry.ok()?.file_name().into_string().ok()?;
            name.strip_suffix(".json").map(str::to_owned)
        })
        .collect();
    names.sort();
    names
}

/// Everything moto recorded (sent SMS and email among it).
pub async fn moto_data() -> Value {
    reqwest::get(format!("{}/moto-api/data.json", moto_url()))
        .await
        .expect("moto answers")
        .json()
        .await
        .expect("moto data is JSON")
}

/// The routes of `template.yaml`.
pub fn template_routes() -> Vec<crate::localstack::Route> {
    crate::localstack::routes(TEMPLATE).expect("template.yaml parses")
}

/// A DynamoDB adapter on the app's own table, for tests of the adapter itself.
pub async fn dynamo_store(app: &App) -> Arc<DynamoStore> {
    let aws = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
    Arc::new(DynamoStore::new(
        aws_sdk_dynamodb::Client::new(&aws),
        app.config.table_name.clone(),
    ))
}

/// Turns the stored user `uuid` back into an item written before the user counters (not
/// counted, no `counted` marker), as a table that `cargo xtask migrate` has not reached yet
/// holds; the user count drops by one. For tests of a first save of such a user.
pub async fn unmigrate(app: &App, uuid: &str) {
    let id = crate::domain::ids::UserId::parse(uuid).expect("a user uuid");
    let user = app
        .users
        .get_user(id)
        .await
        .unwrap()
        .expect("the user exists");
    crate::store::dynamo::unmigrate(dynamo_store(app).await.as_ref(), &user)
        .await
        .unwrap();
}

/// The live users the counters count, as `GET /users/count` answers with no filter.
pub async fn counted_users(app: &App) -> u64 {
    crate::service::user_listing::count_users(app, &Default::default())
        .await
        .unwrap()
}

/// The emails moto recorded as sent to `address` through SES, oldest first. Each is moto's
/// record: `subject`, `body` (the HTML part when there is one), `source`, `destinations`.
pub async fn emails_to(address: &str) -> Vec<Value> {
    fn collect(value: &Value, address: &str, found: &mut Vec<Value>) {
        match value {
            Value::Object(fields) if fields.contains_key("subject") => {
                let to = &value["destinations"]["ToAddresses"];
                if to
                    .as_array()
                    .is_some_and(|to| to.iter().any(|a| a == address))
                {
                    found.push(value.clone());
                }
            }
            Value::Object(fields) => fields.values().for_each(|v| collect(v, address, found)),
            Value::Array(items) => items.iter().for_each(|v| collect(v, address, found)),
            _ => {}
        }
    }
    let mut found = Vec::new();
    collect(&moto_data().await["ses"], address, &mut found);
    found
}

/// The texts moto recorded as sent to `phone` through SNS, oldest first.
pub async fn sms_to(phone: &str) -> Vec<String> {
    fn collect(value: &Value, phone: &str, found: &mut Vec<String>) {
        match value {
            Value::Object(fields) if fields.contains_key("phone_number") => {
                found.extend(
                    (value["phone_number"] == phone)
                        .then(|| value["message"].as_str().map(str::to_owned))
                        .flatten(),
                );
            }
            Value::Object(fields) => fields.values().for_each(|v| collect(v, phone, found)),
            Value::Array(items) => items.iter().for_each(|v| collect(v, phone, found)),
            _ => {}
        }
    }
    let mut found = Vec::new();
    collect(&moto_data().await["sns"], phone, &mut found);
    found
}
