//! Login, refresh, logout and JWKS against DynamoDB Local.

use serde_json::{Value, json};
use shared::App;
use shared::testkit;
use shared::testkit::accounts;
use shared::testkit::accounts::PASSWORD;
use shared::testkit::{TestResponse, request};
use time::Duration;

async fn call_users(app: &App, req: lambda_http::Request) -> TestResponse {
    TestResponse::from(users::handle(app, req).await)
}

async fn call(app: &App, req: lambda_http::Request) -> TestResponse {
    TestResponse::from(sessions::handle(app, req).await)
}

async fn login(app: &App, email: &str, password: &str) -> TestResponse {
    call(app, accounts::login_request(email, password)).await
}

async fn get_self(app: &App, login: &Value) -> TestResponse {
    let uuid = login["user"]["uuid"].as_str().unwrap();
    let token = login["token"].as_str().unwrap();
    call_users(app, accounts::get_user_request(token, uuid)).await
}

async fn refresh(app: &App, session: &str, refresh_token: &str) -> TestResponse {
    call(
        app,
        request("PUT", &format!("/users/sessions/{session}/refresh"))
            .json(json!({"refreshToken": refresh_token}))
            .build(),
    )
    .await
}

#[tokio::test]
async fn login_returns_the_full_login_body() {
    let app = testkit::app().await;
    let email = accounts::register(&app, "user").await.email;
    let response = login(&app, &email.to_uppercase(), PASSWORD).await;
    assert_eq!(response.status, 201, "{}", response.text);
    let data = &response.body["data"];
    assert_eq!(data["expiresIn"], 900);
    assert_eq!(data["twoFactorRequired"], false);
    assert_eq!(data["user"]["email"], email);
    assert!(data["refreshToken"].as_str().unwrap().len() >= 43);
    assert!(data["sessionUUID"].is_string());
    assert_eq!(get_self(&app, data).await.status, 200);
}

#[tokio::test]
async fn login_with_wrong_password_is_rejected_like_unknown_email() {
    let app = testkit::app().await;
    let email = accounts::register(&app, "user").await.email;
    let wrong_password = login(&app, &email, "wrong horse").await;
    let unknown_email = login(&app, &accounts::unique_email("user"), PASSWORD).await;
    wrong_password.assert_error(401, "Bad email and password combination.");
    assert_eq!(unknown_email.status, wrong_password.status);
    assert_eq!(unknown_email.text, wrong_password.text);
    assert_eq!(unknown_email.headers.len(), wrong_password.headers.len());
}

#[tokio::test]
async fn login_requires_email_and_password() {
    let app = testkit::app().await;
    login(&app, "", "whatever1")
        .await
        .assert_error(400, "Email address is required.");
    call(
        &app,
        request("POST", "/users/sessions")
            .json(json!({"email": "a@example.com"}))
            .build(),
    )
    .await
    .assert_error(400, "Password is required.");
}

#[tokio::test]
async fn sixth_failed_login_within_fifteen_minutes_is_locked_out() {
    let app = testkit::app().await;
    let email = accounts::register(&app, "user").await.email;
    for _ in 0..5 {
        login(&app, &email, "wrong horse")
            .await
            .assert_error(401, "Bad email and password combination.");
    }
    let locked = login(&app, &email, PASSWORD).await;
    assert_eq!(locked.status, 429, "{}", locked.text);
    let retry_after: i64 = locked.header("retry-after").unwrap().parse().unwrap();
    assert!((1..=30).contains(&retry_after), "retry-after {retry_after}");
    assert!(locked.body["error"]["message"].is_string());

    app.clock.advance(Duration::seconds(31));
    let after_lock = login(&app, &email, PASSWORD).await;
    assert_eq!(after_lock.status, 201, "{}", after_lock.text);
}

#[tokio::test]
async fn fifty_concurrent_wrong_passwords_reach_the_hash_at_most_five_times() {
    let app = testkit::app().await;
    let email = accounts::register(&app, "user").await.email;
    let before = app.hasher.runs();

    let mut attempts = tokio::task::JoinSet::new();
    for _ in 0..50 {
        let (app, email) = (app.clone(), email.clone());
        attempts.spawn(async move { login(&app, &email, "wrong horse").await });
    }
    let answers = attempts.join_all().await;

    let hashed = app.hasher.runs() - before;
    assert!(
        (1..=5).contains(&hashed),
        "{hashed} attempts reached Argon2"
    );
    let refused: Vec<&TestResponse> = answers.iter().filter(|a| a.status == 429).collect();
    let rejected = answers.iter().filter(|a| a.status == 401).count();
    assert_eq!(rejected as u64, hashed, "each hashed attempt is a 401");
    assert_eq!(refused.len() + rejected, 50);
    for answer in refused {
        let retry_after: i64 = answer.header("retry-after").unwrap().parse().unwrap();
        assert!((1..=30).contains(&retry_after), "retry-after {retry_after}");
    }
    // The email is locked: even the right password waits.
    assert_eq!(login(&app, &email, PASSWORD).await.status, 429);
}

#[tokio::test]
async fn failures_after_a_lock_double_it() {
    let app = testkit::app().await;
    let email = accounts::unique_email("user");
    for _ in 0..5 {
        login(&app, &email, "wrong horse").await;
    }
    assert_eq!(login(&app, &email, "wrong horse").await.status, 429);
    app.clock.advance(Duration::seconds(31));
    login(&app, &email, "wrong horse")
        .await
        .assert_error(401, "Bad email and password combination.");
    let relocked = login(&app, &email, "wrong horse").await;
    assert_eq!(relocked.status, 429);
    let retry_after: i64 = relocked.header("retry-after").unwrap().parse().unwrap();
    assert!(
        retry_after > 30 && retry_after <= 60,
        "retry-after {retry_after}"
    );
}

#[tokio::test]
async fn refresh_rotates_the_token_and_keeps_the_old_one_for_thirty_seconds() {
    let app = testkit::app().await;
    let registered = accounts::register(&app, "user").await;
    let session = registered.session.as_str();
    let first = registered.refresh_token.as_str();

    let rotated = refresh(&app, session, first).await;
    assert_eq!(rotated.status, 200, "{}", rotated.text);
    let second = rotated.body["data"]["refreshToken"].as_str().unwrap();
    assert_ne!(first, second);
    assert_eq!(rotated.body["data"]["sessionUUID"], session);
    assert_eq!(rotated.body["data"]["expiresIn"], 900);

    // Inside the grace window the old token gets the token its rotation gave, not another.
    let within_grace = refresh(&app, session, first).await;
    assert_eq!(within_grace.status, 200, "{}", within_grace.text);
    assert_eq!(within_grace.body["data"]["refreshToken"], second);
}

#[tokio::test]
async fn concurrent_refreshes_with_one_token_both_keep_working_after_the_grace_window() {
    let app = testkit::app().await;
    let registered = accounts::register(&app, "user").await;
    let session = registered.session.as_str();
    let token = registered.refresh_token.as_str();

    let (a, b) = tokio::join!(refresh(&app, session, token), refresh(&app, session, token));
    assert_eq!((a.status, b.status), (200, 200), "{} / {}", a.text, b.text);

    app.clock.advance(Duration::seconds(31));
    for result in [&a, &b] {
        let next = result.body["data"]["refreshToken"].as_str().unwrap();
        let again = refresh(&app, session, next).await;
        assert_eq!(again.status, 200, "{}", again.text);
    }
    let access = a.body["data"]["token"].as_str().unwrap();
    let uuid = registered.uuid.as_str();
    let still_live = call_users(&app, accounts::get_user_request(access, uuid)).await;
    assert_eq!(still_live.status, 200, "{}", still_live.text);
}

#[tokio::test]
async fn a_refresh_token_chain_stays_unguessable_and_unstored() {
    let app = testkit::app().await;
    let registered = accounts::register(&app, "user").await;
    let session = registered.session.as_str();
    let rotated = refresh(&app, session, registered.refresh_token.as_str()).await;
    let next = rotated.body["data"]["refreshToken"].as_str().unwrap();
    let store = testkit::dynamo_store(&app).await;
    let item = store
        .client
        .get_item()
        .table_name(&store.table)
        .set_key(Some(shared::store::dynamo::key(
            format!("SESSION#{session}"),
            "SESSION",
        )))
        .consistent_read(true)
        .send()
        .await
        .unwrap()
        .item
        .unwrap();
    let text = format!("{item:?}");
    assert!(!text.contains(next), "the refresh token is stored: {text}");
    assert!(!text.contains(registered.refresh_token.as_str()));
}

#[tokio::test]
async fn reused_refresh_token_after_the_grace_window_revokes_the_session() {
    let app = testkit::app().await;
    let registered = accounts::register(&app, "user").await;
    let session = registered.session.as_str();
    let first = registered.refresh_token.as_str();
    let rotated = refresh(&app, session, first).await;
    let second = rotated.body["data"]["refreshToken"]
        .as_str()
        .unwrap()
        .to_owned();

    app.clock.advance(Duration::seconds(31));
    refresh(&app, session, first)
        .await
        .assert_error(401, "Invalid token");

    refresh(&app, session, &second)
        .await
        .assert_error(404, "User sessionUUID not found.  JWT cannot be refreshed.");
    let access = rotated.body["data"]["token"].as_str().unwrap();
    let uuid = registered.uuid.as_str();
    call_users(&app, accounts::get_user_request(access, uuid))
        .await
        .assert_error(401, "Invalid token");
}

#[tokio::test]
async fn a_made_up_refresh_token_is_refused_without_ending_the_session() {
    let app = testkit::app().await;
    let registered = accounts::register(&app, "user").await;
    let session = registered.session.as_str();
    refresh(&app, session, "not-the-token")
        .await
        .assert_error(401, "Invalid token");
    let real = refresh(&app, session, registered.refresh_token.as_str()).await;
    assert_eq!(real.status, 200);
}

#[tokio::test]
async fn refresh_of_unknown_session_is_404() {
    let app = testkit::app().await;
    refresh(&app, &uuid::Uuid::new_v4().to_string(), "whatever")
        .await
        .assert_error(404, "User sessionUUID not found.  JWT cannot be refreshed.");
}

#[tokio::test]
async fn refresh_of_a_malformed_session_uuid_is_400() {
    let app = testkit::app().await;
    refresh(&app, "not-a-uuid", "whatever")
        .await
        .assert_error(400, "Invalid UUID.");
}

#[tokio::test]
async fn refresh_validates_the_body_before_using_the_token() {
    let app = testkit::app().await;
    let registered = accounts::register(&app, "user").await;
    let session = registered.session.as_str();
    let token = registered.refresh_token.as_str();
    for (body, field) in [
        (json!({}), "refreshToken"),
        (
            json!({"refreshToken": token, "platform": "windows"}),
            "platform",
        ),
        (
            json!({"refreshToken": token, "appVersion": "one"}),
            "appVersion",
        ),
        (
            json!({"refreshToken": token, "buildNumber": 0}),
            "buildNumber",
        ),
        (
            json!({"refreshToken": token, "buildNumber": "7"}),
            "buildNumber",
        ),
    ] {
        let response = call(
            &app,
            request("PUT", &format!("/users/sessions/{session}/refresh"))
                .json(body.clone())
                .build(),
        )
        .await;
        assert_eq!(response.status, 400, "{body}: {}", response.text);
        assert!(
            response.body["error"]["fields"][field].is_array(),
            "{body}: {}",
            response.text
        );
    }
    assert_eq!(refresh(&app, session, token).await.status, 200);
}

#[tokio::test]
async fn old_builds_are_told_to_update() {
    let app = testkit::app_with(|config| config.min_build_ios = Some(100)).await;
    let registered = accounts::register(&app, "user").await;
    let session = registered.session.as_str();
    let token = registered.refresh_token.as_str();
    let old = call(
        &app,
        request("PUT", &format!("/users/sessions/{session}/refresh"))
            .json(json!({"refreshToken": token, "platform": "ios", "buildNumber": 99, "appVersion": "1.2.3"}))
            .build(),
    )
    .await;
    old.assert_error(426, "Please update the app.");
    let current = call(
        &app,
        request("PUT", &format!("/users/sessions/{session}/refresh"))
            .json(json!({"refreshToken": token, "platform": "ios", "buildNumber": 100}))
            .build(),
    )
    .await;
    assert_eq!(current.status, 200, "{}", current.text);
}

#[tokio::test]
async fn logout_ends_the_session() {
    let app = testkit::app().await;
    let registered = accounts::register(&app, "user").await;
    let session = registered.session.as_str();
    let token = registered.token.as_str();
    let response = call(
        &app,
        request("DELETE", &format!("/users/sessions/{session}"))
            .bearer(token)
            .build(),
    )
    .await;
    assert_eq!(response.status, 204, "{}", response.text);
    assert!(response.text.is_empty());
    get_self(&app, &registered.body)
        .await
        .assert_error(401, "Invalid token");
    refresh(&app, session, registered.refresh_token.as_str())
        .await
        .assert_error(404, "User sessionUUID not found.  JWT cannot be refreshed.");
}

#[tokio::test]
async fn logout_of_someone_elses_session_reveals_nothing_and_keeps_it() {
    let app = testkit::app().await;
    let alice = accounts::register(&app, "user").await;
    let mallory = accounts::register(&app, "user").await;
    let alice_session = alice.session.as_str();
    for target in [
        alice_session.to_owned(),
        uuid::Uuid::new_v4().to_string(),
        "nope".into(),
    ] {
        call(
            &app,
            request("DELETE", &format!("/users/sessions/{target}"))
                .bearer(mallory.token.as_str())
                .build(),
        )
        .await
        .assert_error(400, "Session Id does not exist.");
    }
    assert_eq!(get_self(&app, &alice.body).await.status, 200);
}

#[tokio::test]
async fn an_admin_may_end_anyones_session() {
    let app = testkit::app().await;
    let alice = accounts::register(&app, "user").await;
    let admin = accounts::admin(&app).await;
    let alice_session = alice.session.as_str();
    let response = call(
        &app,
        request("DELETE", &format!("/users/sessions/{alice_session}"))
            .bearer(&admin.token)
            .build(),
    )
    .await;
    assert_eq!(response.status, 204, "{}", response.text);
    assert_eq!(get_self(&app, &alice.body).await.status, 401);
}

#[tokio::test]
async fn jwks_publishes_the_key_that_signs_access_tokens() {
    let app = testkit::app().await;
    let response = call(&app, request("GET", "/.well-known/jwks.json").build()).await;
    assert_eq!(response.status, 200);
    let key = &response.body["keys"][0];
    assert_eq!(key["kty"], "OKP");
    assert_eq!(key["crv"], "Ed25519");
    assert_eq!(key["alg"], "EdDSA");
    assert!(response.body.get("data").is_none());

    let registered = accounts::register(&app, "user").await;
    let token = registered.token.as_str();
    let header = jsonwebtoken::decode_header(token).unwrap();
    assert_eq!(header.kid.as_deref(), key["kid"].as_str());
    let decoding =
        jsonwebtoken::DecodingKey::from_ed_components(key["x"].as_str().unwrap()).unwrap();
    let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::EdDSA);
    validation.set_audience(&[app.config.jwt_audience.as_str()]);
    validation.set_issuer(&[app.config.jwt_issuer.as_str()]);
    let claims = jsonwebtoken::decode::<Value>(token, &decoding, &validation)
        .unwrap()
        .claims;
    for claim in [
        "iss", "aud", "sub", "sid", "roles", "iat", "exp", "jti", "scope",
    ] {
        assert!(claims.get(claim).is_some(), "missing {claim}");
    }
    assert_eq!(claims["scope"], "full");
    assert_eq!(claims["roles"], json!([]));
}

/// The app before and after `cargo xtask keys --rotate` on its secret: the same table, the
/// signing key replaced, the old one kept as the previous.
fn rotated_apps(app: &App) -> (App, App) {
    let original = shared::secrets::generate_secrets_json();
    let rotated = shared::secrets::rotate_signing_key_json(&original).unwrap();
    (
        testkit::with_secrets(app, &original),
        testkit::with_secrets(app, &rotated),
    )
}

fn kid(token: &str) -> String {
    jsonwebtoken::decode_header(token).unwrap().kid.unwrap()
}

#[tokio::test]
async fn a_token_signed_before_a_key_rotation_still_authenticates_after_it() {
    let (before, after) = rotated_apps(&testkit::app().await);
    let old = accounts::register(&before, "user").await;
    let response = call_users(&after, accounts::get_user_request(&old.token, &old.uuid)).await;
    assert_eq!(response.status, 200, "{}", response.text);

    let new = login(&after, &old.email, PASSWORD).await;
    assert_eq!(new.status, 201, "{}", new.text);
    let new_token = new.body["data"]["token"].as_str().unwrap();
    assert_ne!(kid(new_token), kid(&old.token));
    assert_eq!(get_self(&after, &new.body["data"]).await.status, 200);
}

#[tokio::test]
async fn the_jwks_serves_the_current_and_the_previous_key_after_a_rotation() {
    let (before, after) = rotated_apps(&testkit::app().await);
    let old = accounts::register(&before, "user").await;
    let new = accounts::login(&after, &old.email, PASSWORD).await.unwrap();
    let response = call(&after, request("GET", "/.well-known/jwks.json").build()).await;
    assert_eq!(response.status, 200, "{}", response.text);
    let keys = response.body["keys"].as_array().unwrap();
    let kids: Vec<&str> = keys.iter().map(|k| k["kid"].as_str().unwrap()).collect();
    assert_eq!(kids, [kid(&new.token), kid(&old.token)]);
    for key in keys {
        assert_eq!((&key["kty"], &key["alg"]), (&json!("OKP"), &json!("EdDSA")));
    }
    // Each listed key verifies the tokens of its kid.
    for (key, token) in keys.iter().zip([&new.token, &old.token]) {
        let decoding =
            jsonwebtoken::DecodingKey::from_ed_components(key["x"].as_str().unwrap()).unwrap();
        let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::EdDSA);
        validation.set_audience(&[after.config.jwt_audience.as_str()]);
        assert!(jsonwebtoken::decode::<Value>(token, &decoding, &validation).is_ok());
    }
}

#[tokio::test]
async fn a_token_whose_kid_names_neither_key_is_an_invalid_token() {
    let app = testkit::app().await;
    let (_, after) = rotated_apps(&app);
    // A live session in the same table, signed by a key the secret does not hold.
    let foreign = testkit::with_secrets(&app, &shared::secrets::generate_secrets_json());
    let account = accounts::register(&foreign, "user").await;
    call_users(
        &after,
        accounts::get_user_request(&account.token, &account.uuid),
    )
    .await
    .assert_error(401, "Invalid token");
    let logout = call(
        &after,
        request("DELETE", &format!("/users/sessions/{}", account.session))
            .header("authorization", &format!("Bearer {}", account.token))
            .build(),
    )
    .await;
    logout.assert_error(401, "Invalid token");
}

#[tokio::test]
async fn expired_access_tokens_are_refused() {
    let app = testkit::app().await;
    let registered = accounts::register(&app, "user").await;
    app.clock.advance(Duration::seconds(901));
    get_self(&app, &registered.body)
        .await
        .assert_error(401, "Invalid token");
}

#[tokio::test]
async fn sessions_idle_for_thirty_days_cannot_refresh() {
    let app = testkit::app().await;
    let registered = accounts::register(&app, "user").await;
    app.clock.advance(Duration::days(30) + Duration::seconds(1));
    refresh(
        &app,
        registered.session.as_str(),
        registered.refresh_token.as_str(),
    )
    .await
    .assert_error(404, "User sessionUUID not found.  JWT cannot be refreshed.");
}

#[tokio::test]
async fn an_email_over_254_bytes_is_refused_like_a_wrong_password_before_any_lookup() {
    let app = testkit::app().await;
    // 3,000 bytes: past DynamoDB's 2,048-byte partition key, so a lookup would be a 500.
    for local in [255, 3000] {
        let long = format!("{}@example.com", "a".repeat(local));
        login(&app, &long, PASSWORD)
            .await
            .assert_error(401, "Bad email and password combination.");
    }
    // The required fields keep their own 400s.
    let long = format!("{}@example.com", "a".repeat(3000));
    call(
        &app,
        request("POST", "/users/sessions")
            .json(json!({"email": long}))
            .build(),
    )
    .await
    .assert_error(400, "Password is required.");
}

#[tokio::test]
async fn answers_with_tokens_and_to_bearer_requests_are_never_cached() {
    let app = testkit::app().await;
    let account = accounts::register(&app, "no-store").await;
    let logged_in = login(&app, &account.email, PASSWORD).await;
    let data = logged_in.body["data"].clone();
    let refreshed = refresh(
        &app,
        data["sessionUUID"].as_str().unwrap(),
        data["refreshToken"].as_str().unwrap(),
    )
    .await;
    let read = get_self(&app, &data).await;
    let refused = call_users(
        &app,
        accounts::get_user_request("not-a-token", &account.uuid),
    )
    .await;
    let wrong = login(&app, &account.email, "wrong horse").await;
    for (what, response, status) in [
        ("login (tokens)", &logged_in, 201),
        ("refresh (tokens)", &refreshed, 200),
        ("bearer read", &read, 200),
        ("bearer refusal", &refused, 401),
        ("failed login", &wrong, 401),
    ] {
        assert_eq!(response.status, status, "{what}: {}", response.text);
        assert_eq!(response.header("cache-control"), Some("no-store"), "{what}");
    }
}

/// A secrets file of its own, for one test's "deployed" environment.
fn secrets_file(json: &str) -> std::path::PathBuf {
    let path = std::env::temp_dir().join(format!("kuri-secrets-{}.json", uuid::Uuid::new_v4()));
    std::fs::write(&path, json).unwrap();
    path
}

fn login_kid(response: &TestResponse) -> String {
    assert_eq!(response.status, 201, "{}", response.text);
    kid(response.body["data"]["token"].as_str().unwrap())
}

#[tokio::test]
async fn a_warm_environment_verifies_a_rotated_key_without_a_cold_start() {
    let app = testkit::app().await;
    let original = shared::secrets::generate_secrets_json();
    let path = secrets_file(&original);
    let warm = testkit::reading_secrets_from(&app, &path).await;
    let account = accounts::register(&warm, "user").await;
    let old_kid = kid(&account.token);

    // The rotation: the secret changes, and environments started since sign with the new key.
    let rotated = shared::secrets::rotate_signing_key_json(&original).unwrap();
    std::fs::write(&path, &rotated).unwrap();
    let fresh = testkit::with_secrets(&app, &rotated);
    let new = login(&fresh, &account.email, PASSWORD).await;
    let new_kid = login_kid(&new);
    assert_ne!(new_kid, old_kid);

    // The warm environment meets the unknown kid, reads the secret again and takes the token,
    // then signs under the new key itself; the token of before the rotation still works.
    assert_eq!(get_self(&warm, &new.body["data"]).await.status, 200);
    assert_eq!(
        login_kid(&login(&warm, &account.email, PASSWORD).await),
        new_kid
    );
    let old = call_users(
        &warm,
        accounts::get_user_request(&account.token, &account.uuid),
    )
    .await;
    assert_eq!(old.status, 200, "{}", old.text);
    std::fs::remove_file(path).unwrap();
}

#[tokio::test]
async fn a_warm_environment_signs_with_the_rotated_key_once_its_keys_are_ten_minutes_old() {
    let app = testkit::app().await;
    let original = shared::secrets::generate_secrets_json();
    let path = secrets_file(&original);
    let warm = testkit::reading_secrets_from(&app, &path).await;
    let account = accounts::register(&warm, "user").await;
    let old_kid = kid(&account.token);
    let rotated = shared::secrets::rotate_signing_key_json(&original).unwrap();
    std::fs::write(&path, &rotated).unwrap();

    // Not yet due: the keys read at the start stay.
    warm.refresh_keys_if_stale().await;
    assert_eq!(
        login_kid(&login(&warm, &account.email, PASSWORD).await),
        old_kid
    );
    warm.clock.advance(shared::secrets::MAX_AGE);
    warm.refresh_keys_if_stale().await;
    let rotated_kid = login_kid(&login(&warm, &account.email, PASSWORD).await);
    assert_ne!(rotated_kid, old_kid);
    assert_eq!(
        rotated_kid,
        testkit::with_secrets(&app, &rotated).jwt.current_kid()
    );
    std::fs::remove_file(path).unwrap();
}

#[tokio::test]
async fn made_up_kids_make_a_warm_environment_read_its_secret_at_most_once_per_thirty_seconds() {
    let app = testkit::app().await;
    let original = shared::secrets::generate_secrets_json();
    let path = secrets_file(&original);
    let warm = testkit::reading_secrets_from(&app, &path).await;
    let account = accounts::register(&warm, "user").await;

    // A token under a key no secret holds reads the secret once (and stays refused).
    let foreign = testkit::with_secrets(&app, &shared::secrets::generate_secrets_json());
    let forged = login(&foreign, &account.email, PASSWORD).await;
    assert_eq!(get_self(&warm, &forged.body["data"]).await.status, 401);

    // A real rotation inside the next 30 s is not read on an unknown kid…
    let rotated = shared::secrets::rotate_signing_key_json(&original).unwrap();
    std::fs::write(&path, &rotated).unwrap();
    let fresh = testkit::with_secrets(&app, &rotated);
    let new = login(&fresh, &account.email, PASSWORD).await;
    assert_eq!(login_kid(&new), fresh.jwt.current_kid());
    assert_eq!(get_self(&warm, &new.body["data"]).await.status, 401);
    // …and is once they have passed.
    warm.clock.advance(shared::secrets::UNKNOWN_KID_INTERVAL);
    assert_eq!(get_self(&warm, &new.body["data"]).await.status, 200);
    std::fs::remove_file(path).unwrap();
}
