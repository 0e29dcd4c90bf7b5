//! Faults against the local stack: a DynamoDB Local of the test's own stopped under load and
//! started again, SNS and SES unreachable, and throttling injected by a proxy in front of
//! DynamoDB Local. Each answer must be one the contract allows, and nothing half-written may
//! stay behind. Run through `cargo xtask test` (it needs Java and the emulators it installs).

use std::collections::{BTreeSet, HashMap};
use std::convert::Infallible;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use aws_sdk_dynamodb::types::AttributeValue;
use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use serde_json::json;
use shared::App;
use shared::testkit::accounts::{self, PASSWORD};
use shared::testkit::{self, Endpoints, TestRequest, TestResponse};
use tokio::net::TcpListener;

use crate::router::Router;
use crate::stack::Stack;

type Item = HashMap<String, AttributeValue>;

/// A port nothing listens on (it was free a moment ago).
fn free_port() -> u16 {
    std::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .and_then(|listener| listener.local_addr())
        .expect("a free port")
        .port()
}

async fn send(app: &App, request: TestRequest) -> TestResponse {
    let router = Router::new(&testkit::template_routes()).expect("template routes");
    let request = request.build();
    let matched = router
        .resolve(request.method(), request.uri().path())
        .expect("a route");
    matched.function.call(app, request).await.into()
}

fn register_request(email: &str) -> TestRequest {
    testkit::request("POST", "/users").json(json!({"email": email, "password": PASSWORD}))
}

fn assert_unavailable(response: &TestResponse, what: &str) {
    assert_eq!(
        (response.status, response.body["error"]["code"].as_str()),
        (503, Some("service_unavailable")),
        "{what}: {}",
        response.text
    );
    let retry_after: u64 = response
        .header("retry-after")
        .and_then(|value| value.parse().ok())
        .unwrap_or_else(|| panic!("{what}: a 503 without Retry-After"));
    assert!(retry_after >= 1, "{what}: Retry-After {retry_after}");
}

/// Every item of the table, read by a test-only `Scan`.
async fn all_items(endpoint: Option<&str>, table: &str) -> Vec<Item> {
    let aws = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
    let mut config = aws_sdk_dynamodb::config::Builder::from(&aws);
    if let Some(url) = endpoint {
        config = config.endpoint_url(url);
    }
    let client = aws_sdk_dynamodb::Client::from_conf(config.build());
    let mut items = Vec::new();
    let mut start = None;
    loop {
        let page = client
            .scan()
            .table_name(table)
            .consistent_read(true)
            .set_exclusive_start_key(start)
            .send()
            .await
            .expect("the table can be scanned");
        items.extend(page.items.unwrap_or_default());
        match page.last_evaluated_key {
            Some(key) if !key.is_empty() => start = Some(key),
            _ => return items,
        }
    }
}

fn text<'a>(item: &'a Item, name: &str) -> Option<&'a str> {
    item.get(name)
        .and_then(|value| value.as_s().ok())
        .map(String::as_str)
}

/// The table holds no half-written aggregate: every email claim belongs to a live user with
/// that email, every live user holds its claim, and every session, code and token belongs to
/// a stored user.
fn assert_whole(items: &[Item]) {
    let key = |item: &Item| {
        (
            text(item, "pk").unwrap_or_default().to_owned(),
            text(item, "sk").unwrap_or_default().to_owned(),
        )
    };
    let users: HashMap<String, &Item> = items
        .iter()
        .filter(|item| text(item, "sk") == Some("PROFILE"))
        .map(|item| (text(item, "uuid").unwrap_or_default().to_owned(), item))
        .collect();
    let claims: BTreeSet<(String, String)> = items
        .iter()
        .filter(|item| text(item, "sk") == Some("EMAIL"))
        .map(|item| {
            let email = text(item, "pk").unwrap_or_default();
            (
                email.trim_start_matches("EMAIL#").to_owned(),
                text(item, "userId").unwrap_or_default().to_owned(),
            )
        })
        .collect();
    for (email, user_id) in &claims {
        let user = users
            .get(user_id)
            .unwrap_or_else(|| panic!("the claim of {email} points at no user {user_id}"));
        assert_eq!(text(user, "emailLower"), Some(email.as_str()));
    }
    for (id, user) in &users {
        if text(user, "status") != Some("deleted") {
            let email = text(user, "emailLower").unwrap_or_default().to_owned();
            assert!(
                claims.contains(&(email.clone(), id.clone())),
                "user {id} without the claim of {email}"
            );
        }
    }
    for item in items {
        let (pk, sk) = key(item);
        let owner = match sk.as_str() {
            "SESSION" | "TOKEN" | "CODE" => text(item, "userId"),
            _ => continue,
        };
        let owner = owner.unwrap_or_else(|| panic!("{pk}/{sk} names no user"));
        assert!(
            users.contains_key(owner),
            "{pk}/{sk} of a missing user {owner}"
        );
    }
}

/// Waits until `goal` holds; fails the test when the load makes no progress for two minutes.
async fn wait_for(goal: impl Fn() -> bool) {
    let started = std::time::Instant::now();
    while !goal() {
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "the load made no progress"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn dynamodb_stopped_under_load_gives_only_503_and_answers_again_once_it_is_back() {
    let root = crate::root();
    let port = free_port();
    let db_dir = root
        .join(".localaws")
        .join(format!("fault-dynamodb-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&db_dir).expect("a directory for the tables");
    let endpoint = format!("http://127.0.0.1:{port}");
    let dynamodb = Stack::start_dynamodb(&root, port, &db_dir)
        .await
        .expect("a DynamoDB Local of the test's own");
    let endpoints = Endpoints {
        dynamodb: Some(endpoint.clone()),
        ..Endpoints::default()
    };
    let app = Arc::new(testkit::app_on(&endpoints, |_| {}).await);

    // Load: workers register and log in new users until told to stop.
    let answers = Arc::new(std::sync::Mutex::new(
        Vec::<(String, String, TestResponse)>::new(),
    ));
    let successes = Arc::new(AtomicUsize::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let mut workers = Vec::new();
    for _ in 0..4 {
        let (app, answers, successes, stop) = (
            app.clone(),
            answers.clone(),
            successes.clone(),
            stop.clone(),
        );
        workers.push(tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                let email = accounts::unique_email("fault");
                let registered = send(&app, register_request(&email)).await;
                let ok = registered.status == 200;
                answers
                    .lock()
                    .unwrap()
                    .push((email.clone(), "register".into(), registered));
                if ok {
                    let login = testkit::request("POST", "/users/sessions")
                        .json(json!({"email": email, "password": PASSWORD}));
                    let login = send(&app, login).await;
                    if login.status == 201 {
                        successes.fetch_add(1, Ordering::Relaxed);
                    }
                    answers.lock().unwrap().push((email, "login".into(), login));
                }
            }
        }));
    }
    let answered = || answers.lock().unwrap().len();
    wait_for(|| successes.load(Ordering::Relaxed) >= 8).await;

    dynamodb.stop().await;
    let before_outage = answered();
    wait_for(|| answered() >= before_outage + 8).await;
    let outage_answers: Vec<u16> = answers.lock().unwrap()[before_outage..]
        .iter()
        .map(|(_, _, response)| response.status)
        .collect();

    let dynamodb = Stack::start_dynamodb(&root, port, &db_dir)
        .await
        .expect("the same DynamoDB Local starts again");
    let back = successes.load(Ordering::Relaxed);
    wait_for(|| successes.load(Ordering::Relaxed) >= back + 5).await;
    stop.store(true, Ordering::Relaxed);
    for worker in workers {
        worker.await.expect("a worker does not panic");
    }

    let answers = std::mem::take(&mut *answers.lock().unwrap());
    for (email, step, response) in &answers {
        match (step.as_str(), response.status) {
            ("register", 200) | ("login", 201) => {}
            (_, 503) => assert_unavailable(response, &format!("{step} of {email}")),
            (_, status) => panic!("{step} of {email}: {status} {}", response.text),
        }
    }
    assert!(
        outage_answers.contains(&503),
        "the outage was seen: {outage_answers:?}"
    );
    // Every user whose registration succeeded is whole; one that got the 503 is whole or absent.
    let items = all_items(Some(&endpoint), &app.config.table_name).await;
    assert_whole(&items);
    for (email, step, response) in &answers {
        if step == "register" && response.status == 200 {
            let user = app
                .users
                .find_user_by_email(&email.to_lowercase())
                .await
                .expect("the store answers");
            assert!(user.is_some(), "{email} registered but is not stored");
        }
    }
    dynamodb.stop().await;
    let _ = std::fs::remove_dir_all(&db_dir);
}

#[tokio::test]
async fn unreachable_sns_and_ses_give_the_providers_400_and_the_usual_201_leaving_nothing() {
    let dead = format!("http://127.0.0.1:{}", free_port());
    let endpoints = Endpoints {
        sns: Some(dead.clone()),
        ses: Some(dead),
        ..Endpoints::default()
    };
    let app = testkit::app_on(&endpoints, |_| {}).await;
    let owner = accounts::register(&app, "unreachable").await;
    let user_id = owner.user_id();
    let before = all_items(None, &app.config.table_name).await;

    let enrol = testkit::request(
        "POST",
        &format!("/users/{}/pending-two-factor-auth", owner.uuid),
    )
    .bearer(&owner.token)
    .json(json!({"mobileNumber": "4155550142", "mobileCountryCode": 1}));
    send(&app, enrol).await.assert_error(
        400,
        "Error returned from two factor authentication provider",
    );

    let recover =
        testkit::request("POST", "/users/recover-password").json(json!({"email": owner.email}));
    let recovered = send(&app, recover).await;
    assert_eq!(recovered.status, 201, "{}", recovered.text);

    // A 2FA login whose code cannot be texted ends the waiting session it opened.
    shared::service::users::update(&app, user_id, None, |user| {
        user.mobile = Some("+14155550143".into());
        Ok(())
    })
    .await
    .expect("a verified number");
    let login = send(
        &app,
        testkit::request("POST", "/users/sessions")
            .json(json!({"email": owner.email, "password": PASSWORD})),
    )
    .await;
    login.assert_error(
        400,
        "Error returned from two factor authentication provider",
    );

    let after = all_items(None, &app.config.table_name).await;
    let of_user = |items: &[Item]| -> BTreeSet<String> {
        items
            .iter()
            .filter(|item| {
                text(item, "userId") == Some(user_id.to_string().as_str())
                    || text(item, "pk") == Some(format!("USER#{user_id}").as_str())
            })
            .filter(|item| text(item, "sk") != Some("PROFILE"))
            // The arrangement's own change (the verified number set above) is recorded.
            .filter(|item| text(item, "type") != Some("two_factor.enabled"))
            .filter(|item| {
                // The SMS send log forgets a failed text; an empty one is nothing.
                text(item, "sk") != Some("SMSLIMIT")
                    || item
                        .get("sentAt")
                        .and_then(|v| v.as_l().ok())
                        .is_some_and(|l| !l.is_empty())
            })
            .map(|item| {
                format!(
                    "{}/{}",
                    text(item, "pk").unwrap_or_default(),
                    text(item, "sk").unwrap_or_default()
                )
            })
            .collect()
    };
    assert_eq!(
        of_user(&after),
        of_user(&before),
        "a failed text or mail left items behind"
    );
    let stored = app
        .users
        .get_user(user_id)
        .await
        .expect("the store answers")
        .expect("the user");
    assert_eq!(
        stored.pending_mobile, None,
        "no pending number without its text"
    );
    assert!(testkit::emails_to(&owner.email).await.is_empty());
}

/// A proxy in front of DynamoDB Local that answers the next `throttle` requests (or all, while
/// `always`) with DynamoDB's throttling error instead of passing them on.
struct ThrottlingProxy {
    url: String,
    throttle: Arc<AtomicUsize>,
    always: Arc<AtomicBool>,
    throttled: Arc<AtomicUsize>,
}

impl ThrottlingProxy {
    async fn start(upstream: String) -> Self {
        let listener = TcpListener::bind(SocketAddr::from((Ipv4Addr::LOCALHOST, 0)))
            .await
            .expect("a port for the proxy");
        let url = format!("http://{}", listener.local_addr().expect("bound"));
        let proxy = Self {
            url,
            throttle: Arc::default(),
            always: Arc::default(),
            throttled: Arc::default(),
        };
        let (throttle, always, throttled) = (
            proxy.throttle.clone(),
            proxy.always.clone(),
            proxy.throttled.clone(),
        );
        let client = reqwest::Client::builder()
            .no_proxy()
            .build()
            .expect("a client");
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                let (throttle, always, throttled, client, upstream) = (
                    throttle.clone(),
                    always.clone(),
                    throttled.clone(),
                    client.clone(),
                    upstream.clone(),
                );
                let service = service_fn(move |request: hyper::Request<Incoming>| {
                    let (throttle, always, throttled, client, upstream) = (
                        throttle.clone(),
                        always.clone(),
                        throttled.clone(),
                        client.clone(),
                        upstream.clone(),
                    );
                    async move {
                        let take_one = throttle
                            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
                            .is_ok();
                        if take_one || always.load(Ordering::SeqCst) {
                            throttled.fetch_add(1, Ordering::SeqCst);
                            return Ok::<_, Infallible>(throttling_answer());
                        }
                        Ok(forward(&client, &upstream, request).await)
                    }
                });
                tokio::spawn(async move {
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        proxy
    }
}

fn throttling_answer() -> hyper::Response<Full<Bytes>> {
    hyper::Response::builder()
        .status(400)
        .header("content-type", "application/x-amz-json-1.0")
        .header("x-amzn-requestid", "throttled-by-test")
        .body(Full::new(Bytes::from_static(
            br#"{"__type":"com.amazonaws.dynamodb.v20120810#ProvisionedThroughputExceededException","message":"The level of configured provisioned throughput for the table was exceeded."}"#,
        )))
        .expect("a response")
}

async fn forward(
    client: &reqwest::Client,
    upstream: &str,
    request: hyper::Request<Incoming>,
) -> hyper::Response<Full<Bytes>> {
    let (parts, body) = request.into_parts();
    let body = body
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    let mut upstream_request = client.post(format!("{upstream}{}", parts.uri.path()));
    for (name, value) in &parts.headers {
        if name != hyper::header::HOST && name != hyper::header::CONTENT_LENGTH {
            upstream_request = upstream_request.header(name.as_str(), value.as_bytes());
        }
    }
    match upstream_request.body(body).send().await {
        Ok(answer) => {
            let mut response = hyper::Response::builder().status(answer.status().as_u16());
            for (name, value) in answer.headers() {
                if name != reqwest::header::CONTENT_LENGTH
                    && name != reqwest::header::TRANSFER_ENCODING
                {
                    response = response.header(name.as_str(), value.as_bytes());
                }
            }
            let bytes = answer.bytes().await.unwrap_or_default();
            response.body(Full::new(bytes)).expect("a response")
        }
        Err(_) => hyper::Response::builder()
            .status(502)
            .body(Full::new(Bytes::new()))
            .expect("a response"),
    }
}

#[tokio::test]
async fn throttling_is_retried_with_backoff_then_answered_503_writing_nothing() {
    let upstream = std::env::var("AWS_ENDPOINT_URL_DYNAMODB")
        .expect("run through `cargo xtask test`, which starts DynamoDB Local");
    let proxy = ThrottlingProxy::start(upstream).await;
    let endpoints = Endpoints {
        dynamodb: Some(proxy.url.clone()),
        ..Endpoints::default()
    };
    let app = testkit::app_on(&endpoints, |_| {}).await;

    // Two throttled attempts: the SDK's third succeeds, and so does the request.
    proxy.throttle.store(2, Ordering::SeqCst);
    let email = accounts::unique_email("throttled-once");
    let registered = send(&app, register_request(&email)).await;
    assert_eq!(registered.status, 200, "{}", registered.text);
    assert_eq!(proxy.throttled.load(Ordering::SeqCst), 2);

    // Throttled every time: three attempts (the SDK's standard retry), then 503.
    proxy.throttled.store(0, Ordering::SeqCst);
    proxy.always.store(true, Ordering::SeqCst);
    let email = accounts::unique_email("throttled-always");
    let refused = send(&app, register_request(&email)).await;
    assert_unavailable(&refused, "a registration throttled on every attempt");
    assert_eq!(proxy.throttled.load(Ordering::SeqCst), 3);
    let login = send(
        &app,
        testkit::request("POST", "/users/sessions")
            .json(json!({"email": email, "password": PASSWORD})),
    )
    .await;
    assert_unavailable(&login, "a login throttled on every attempt");

    proxy.always.store(false, Ordering::SeqCst);
    let stored = app
        .users
        .find_user_by_email(&email.to_lowercase())
        .await
        .expect("the store answers once the throttling stops");
    assert!(stored.is_none(), "a refused registration wrote the user");
    assert_whole(&all_items(None, &app.config.table_name).await);
}
