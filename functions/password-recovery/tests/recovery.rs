//! Password recovery against DynamoDB Local and moto's SES: the mailed link's token is read
//! back from what moto recorded as sent.

use serde_json::{Value, json};
use shared::App;
use shared::domain::user::Status;
use shared::testkit;
use shared::testkit::accounts;
use shared::testkit::accounts::{Account, PASSWORD};
use shared::testkit::{TestResponse, request};
use time::Duration;

const NEW_PASSWORD: &str = "battery staple";

async fn call(app: &App, req: lambda_http::Request) -> TestResponse {
    TestResponse::from(password_recovery::handle(app, req).await)
}

async fn call_users(app: &App, req: lambda_http::Request) -> TestResponse {
    TestResponse::from(users::handle(app, req).await)
}

async fn call_sessions(app: &App, req: lambda_http::Request) -> TestResponse {
    TestResponse::from(sessions::handle(app, req).await)
}

async fn login(app: &App, email: &str, password: &str) -> TestResponse {
    call_sessions(app, accounts::login_request(email, password)).await
}

async fn refresh(app: &App, login: &Account) -> TestResponse {
    call_sessions(
        app,
        request("PUT", &format!("/users/sessions/{}/refresh", login.session))
            .json(json!({"refreshToken": login.refresh_token}))
            .build(),
    )
    .await
}

async fn get_self(app: &App, login: &Account) -> TestResponse {
    call_users(app, accounts::get_user_request(&login.token, &login.uuid)).await
}

async fn start(app: &App, email: &str) -> TestResponse {
    call(
        app,
        request("POST", "/users/recover-password")
            .json(json!({ "email": email }))
            .build(),
    )
    .await
}

async fn check(app: &App, token: &str) -> TestResponse {
    call(
        app,
        request("GET", &format!("/users/recover-password/verify/{token}")).build(),
    )
    .await
}

async fn reset(app: &App, body: Value) -> TestResponse {
    call(
        app,
        request("POST", "/users/recover-password/reset-password")
            .json(body)
            .build(),
    )
    .await
}

/// The token of the link in the latest recovery mail moto recorded for `email` (security
/// notices carry none).
async fn mailed_token(email: &str) -> String {
    let mails = testkit::emails_to(email).await;
    let body = mails
        .iter()
        .rev()
        .find(|mail| mail["subject"] == "Reset your Kuri password")
        .expect("a recovery mail was sent")["body"]
        .as_str()
        .expect("the mail has a body")
        .to_owned();
    token_in(&body)
}

fn token_in(body: &str) -> String {
    let (_, after) = body
        .split_once("?token=")
        .expect("the mail has a link with a token");
    after
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_')
        .collect()
}

#[tokio::test]
async fn the_mailed_token_resets_the_password_and_ends_every_session() {
    let app = testkit::app().await;
    let registration = accounts::register(&app, "recover").await;
    let email = registration.email.clone();
    let second_login = accounts::login(&app, &email, PASSWORD).await.unwrap();

    let started = start(&app, &email.to_uppercase()).await;
    assert_eq!(started.status, 201, "{}", started.text);
    assert_eq!(started.body, json!({"data": {}}));

    let mails = testkit::emails_to(&email).await;
    assert_eq!(mails.len(), 1);
    assert_eq!(mails[0]["subject"], "Reset your Kuri password");
    assert_eq!(mails[0]["source"], app.config.mail_from);
    let body = mails[0]["body"].as_str().unwrap();
    let link = format!("{}/reset-password?token=", app.config.link_base_url);
    assert!(body.contains(&link), "{body}");
    let token = token_in(body);
    assert_eq!(token.len(), 43);

    let checked = check(&app, &token).await;
    assert_eq!(checked.status, 200, "{}", checked.text);
    assert_eq!(checked.body["data"]["valid"], true);
    let expires_at =
        shared::domain::clock::parse(checked.body["data"]["expiresAt"].as_str().unwrap())
            .expect("expiresAt is RFC 3339");
    let lifetime = expires_at - app.clock.now();
    assert!(lifetime > Duration::minutes(59) && lifetime <= Duration::hours(1));
    assert_eq!(
        check(&app, &token).await.status,
        200,
        "checking does not use the token up"
    );

    let done = reset(&app, json!({"token": token, "password": NEW_PASSWORD})).await;
    assert_eq!(done.status, 201, "{}", done.text);
    assert_eq!(done.body, json!({"data": {}}));

    login(&app, &email, PASSWORD)
        .await
        .assert_error(401, "Bad email and password combination.");
    assert_eq!(login(&app, &email, NEW_PASSWORD).await.status, 201);
    for old in [&registration, &second_login] {
        refresh(&app, old)
            .await
            .assert_error(404, "User sessionUUID not found.  JWT cannot be refreshed.");
        get_self(&app, old).await.assert_error(401, "Invalid token");
    }
}

#[tokio::test]
async fn a_used_token_is_refused_by_check_and_reset() {
    let app = testkit::app().await;
    let email = accounts::register(&app, "recover").await.email;
    start(&app, &email).await;
    let token = mailed_token(&email).await;
    let first = reset(&app, json!({"token": token, "password": NEW_PASSWORD})).await;
    assert_eq!(first.status, 201, "{}", first.text);

    check(&app, &token)
        .await
        .assert_error(400, "Token must be valid string");
    reset(&app, json!({"token": token, "password": "another one"}))
        .await
        .assert_error(400, "Token is invalid or expired.");
    assert_eq!(login(&app, &email, NEW_PASSWORD).await.status, 201);
}

#[tokio::test]
async fn an_expired_token_is_refused_by_check_and_reset() {
    let app = testkit::app().await;
    let email = accounts::register(&app, "recover").await.email;
    start(&app, &email).await;
    let token = mailed_token(&email).await;
    app.clock.advance(Duration::minutes(61));

    check(&app, &token)
        .await
        .assert_error(400, "Token must be valid string");
    reset(&app, json!({"token": token, "password": NEW_PASSWORD}))
        .await
        .assert_error(400, "Token is invalid or expired.");
    assert_eq!(login(&app, &email, PASSWORD).await.status, 201);
}

#[tokio::test]
async fn unknown_and_made_up_tokens_are_refused() {
    let app = testkit::app().await;
    let made_up = shared::security::crypto::random_token();
    check(&app, &made_up)
        .await
        .assert_error(400, "Token must be valid string");
    check(&app, &"x".repeat(500))
        .await
        .assert_error(400, "Token must be valid string");
    reset(&app, json!({"token": made_up, "password": NEW_PASSWORD}))
        .await
        .assert_error(400, "Token is invalid or expired.");
}

#[tokio::test]
async fn of_twenty_concurrent_resets_with_one_token_exactly_one_succeeds() {
    let app = testkit::app().await;
    let email = accounts::register(&app, "recover").await.email;
    start(&app, &email).await;
    let token = mailed_token(&email).await;

    let mut attempts = tokio::task::JoinSet::new();
    for i in 0..20 {
        let (app, token) = (app.clone(), token.clone());
        attempts.spawn(async move {
            let body = json!({"token": token, "password": format!("new password {i}")});
            (i, reset(&app, body).await)
        });
    }
    let results = attempts.join_all().await;
    let winners: Vec<usize> = results
        .iter()
        .filter(|(_, r)| r.status == 201)
        .map(|(i, _)| *i)
        .collect();
    assert_eq!(winners.len(), 1, "{results:?}");
    for (_, response) in results.iter().filter(|(_, r)| r.status != 201) {
        response.assert_error(400, "Token is invalid or expired.");
    }
    let password = format!("new password {}", winners[0]);
    assert_eq!(login(&app, &email, &password).await.status, 201);
}

#[tokio::test]
async fn unknown_emails_get_201_and_no_mail() {
    let app = testkit::app().await;
    let email = accounts::unique_email("recover");
    let response = start(&app, &email).await;
    assert_eq!(response.status, 201, "{}", response.text);
    assert_eq!(response.body, json!({"data": {}}));
    assert!(testkit::emails_to(&email).await.is_empty());
}

#[tokio::test]
async fn inactive_users_get_201_and_no_mail() {
    let app = testkit::app().await;
    let account = accounts::register(&app, "recover").await;
    let email = account.email.clone();
    shared::service::users::update(&app, account.user_id(), None, |user| {
        user.status = Status::Inactive;
        shared::service::users::revoke_all_sessions(user);
        Ok(())
    })
    .await
    .unwrap();
    assert_eq!(start(&app, &email).await.status, 201);
    assert!(testkit::emails_to(&email).await.is_empty());
}

#[tokio::test]
async fn at_most_three_mails_go_to_an_address_per_hour() {
    let app = testkit::app().await;
    let email = accounts::register(&app, "recover").await.email;
    for _ in 0..5 {
        assert_eq!(start(&app, &email).await.status, 201);
    }
    assert_eq!(testkit::emails_to(&email).await.len(), 3);

    app.clock.advance(Duration::minutes(61));
    assert_eq!(start(&app, &email).await.status, 201);
    assert_eq!(testkit::emails_to(&email).await.len(), 4);
}

#[tokio::test]
async fn a_reset_ends_the_other_recovery_links_of_the_user() {
    let app = testkit::app().await;
    let email = accounts::register(&app, "recover").await.email;
    start(&app, &email).await;
    let older = mailed_token(&email).await;
    start(&app, &email).await;
    let newer = mailed_token(&email).await;
    assert_ne!(older, newer);

    let done = reset(&app, json!({"token": newer, "password": NEW_PASSWORD})).await;
    assert_eq!(done.status, 201, "{}", done.text);
    check(&app, &older)
        .await
        .assert_error(400, "Token must be valid string");
    reset(&app, json!({"token": older, "password": "another one"}))
        .await
        .assert_error(400, "Token is invalid or expired.");
}

#[tokio::test]
async fn a_reset_of_a_user_the_migration_has_not_reached_counts_them_once() {
    let app = testkit::app().await;
    let account = accounts::register(&app, "recover").await;
    testkit::unmigrate(&app, &account.uuid).await;
    assert_eq!(testkit::counted_users(&app).await, 0);

    start(&app, &account.email).await;
    let token = mailed_token(&account.email).await;
    let done = reset(&app, json!({"token": token, "password": NEW_PASSWORD})).await;
    assert_eq!(done.status, 201, "{}", done.text);
    assert_eq!(testkit::counted_users(&app).await, 1);
    // Counted now: a second reset moves no counter.
    start(&app, &account.email).await;
    let token = mailed_token(&account.email).await;
    let done = reset(&app, json!({"token": token, "password": PASSWORD})).await;
    assert_eq!(done.status, 201, "{}", done.text);
    assert_eq!(testkit::counted_users(&app).await, 1);
    assert_eq!(login(&app, &account.email, PASSWORD).await.status, 201);
}

#[tokio::test]
async fn a_reset_clears_the_login_lockout() {
    let app = testkit::app().await;
    let email = accounts::register(&app, "recover").await.email;
    for _ in 0..5 {
        login(&app, &email, "wrong password").await;
    }
    assert_eq!(login(&app, &email, PASSWORD).await.status, 429);

    start(&app, &email).await;
    let token = mailed_token(&email).await;
    let done = reset(&app, json!({"token": token, "password": NEW_PASSWORD})).await;
    assert_eq!(done.status, 201, "{}", done.text);
    assert_eq!(login(&app, &email, NEW_PASSWORD).await.status, 201);
}

#[tokio::test]
async fn a_missing_or_malformed_email_is_refused() {
    let app = testkit::app().await;
    for body in [
        json!({}),
        json!({"email": ""}),
        json!({"email": "not-an-email"}),
    ] {
        call(
            &app,
            request("POST", "/users/recover-password")
                .json(body)
                .build(),
        )
        .await
        .assert_error(400, "Valid email address is required.");
    }
    let unknown_field = call(
        &app,
        request("POST", "/users/recover-password")
            .json(json!({"email": accounts::unique_email("recover"), "admin": true}))
            .build(),
    )
    .await;
    assert_eq!(unknown_field.status, 400);
    assert!(unknown_field.body["error"]["fields"]["admin"].is_array());
}

#[tokio::test]
async fn a_reset_needs_a_token_and_a_valid_password() {
    let app = testkit::app().await;
    let email = accounts::register(&app, "recover").await.email;
    start(&app, &email).await;
    let token = mailed_token(&email).await;

    for body in [
        json!({"password": NEW_PASSWORD}),
        json!({"token": "", "password": NEW_PASSWORD}),
    ] {
        reset(&app, body)
            .await
            .assert_error(400, "Token is required.");
    }
    reset(&app, json!({"token": token}))
        .await
        .assert_error(400, "Password is required.");
    for password in ["short".to_owned(), "x".repeat(257)] {
        let response = reset(&app, json!({"token": token, "password": password})).await;
        assert_eq!(response.status, 400, "{}", response.text);
        assert!(
            response.body["error"]["fields"]["password"].is_array(),
            "{}",
            response.text
        );
    }
    assert_eq!(
        check(&app, &token).await.status,
        200,
        "refused resets leave the token usable"
    );
}

#[tokio::test]
async fn api_gateway_events_reach_the_routes() {
    let app = testkit::app().await;
    let check = password_recovery::handle(
        &app,
        testkit::event(
            "password-recovery-verify",
            "",
            "00000000-0000-4000-8000-000000000000",
        ),
    )
    .await;
    TestResponse::from(check).assert_error(400, "Token must be valid string");
    let reset = password_recovery::handle(
        &app,
        testkit::event(
            "password-recovery-reset",
            "",
            "00000000-0000-4000-8000-000000000000",
        ),
    )
    .await;
    TestResponse::from(reset).assert_error(400, "Token is invalid or expired.");
    let start = password_recovery::handle(
        &app,
        testkit::event(
            "password-recovery-start",
            "",
            "00000000-0000-4000-8000-000000000000",
        ),
    )
    .await;
    assert_eq!(TestResponse::from(start).status, 201);
}

#[tokio::test]
async fn an_email_over_254_bytes_is_refused_before_any_lookup() {
    let app = testkit::app().await;
    // 3,000 bytes: past DynamoDB's 2,048-byte partition key, so a lookup would be a 500.
    for local in [255, 3000] {
        let long = format!("{}@example.com", "a".repeat(local));
        start(&app, &long)
            .await
            .assert_error(400, "Valid email address is required.");
    }
}

/// The user's events, newest first, as a csrAdmin lists them.
async fn events_of(app: &App, uuid: &str) -> Vec<Value> {
    let admin = accounts::admin(app).await;
    let listed = call_users(
        app,
        request("GET", &format!("/users/{uuid}/security-events"))
            .bearer(&admin.token)
            .build(),
    )
    .await;
    assert_eq!(listed.status, 200, "{}", listed.text);
    listed.body["data"].as_array().unwrap().clone()
}

#[tokio::test]
async fn a_reset_records_password_reset_and_sessions_ended_and_mails_a_notice() {
    let app = testkit::app().await;
    let account = accounts::register(&app, "reset-events").await;
    assert_eq!(start(&app, &account.email).await.status, 201);
    let token = mailed_token(&account.email).await;

    let done = reset(&app, json!({"token": token, "password": NEW_PASSWORD})).await;
    assert_eq!(done.status, 201, "{}", done.text);
    assert_eq!(
        reset(&app, json!({"token": token, "password": NEW_PASSWORD}))
            .await
            .status,
        400
    );

    let events = events_of(&app, &account.uuid).await;
    let kinds: Vec<&str> = events.iter().map(|e| e["type"].as_str().unwrap()).collect();
    assert_eq!(
        kinds,
        ["sessions.ended", "password.reset", "user.registered"],
        "once each, and no password.changed"
    );
    for event in &events[..2] {
        assert_eq!(
            event["actor"],
            json!({"uuid": account.uuid, "admin": false})
        );
        assert_eq!(event["sessionUUID"], Value::Null);
    }
    let text = serde_json::to_string(&events).unwrap();
    assert!(!text.contains(&token) && !text.contains(NEW_PASSWORD));

    let mails = testkit::emails_to(&account.email).await;
    let subjects: Vec<&str> = mails
        .iter()
        .map(|m| m["subject"].as_str().unwrap())
        .collect();
    assert_eq!(
        subjects,
        [
            "Reset your Kuri password",
            "The password of your Kuri account was reset"
        ]
    );
    let notice = mails[1]["body"].as_str().unwrap();
    assert!(
        !notice.contains("token=") && !notice.contains("href"),
        "{notice}"
    );
}

#[tokio::test]
async fn a_common_new_password_is_refused_and_the_token_still_works() {
    let app = testkit::app().await;
    let account = accounts::register(&app, "reset-common").await;
    assert_eq!(start(&app, &account.email).await.status, 201);
    let token = mailed_token(&account.email).await;

    let refused = reset(&app, json!({"token": token, "password": "ILOVEYOU"})).await;
    assert_eq!(refused.status, 400, "{}", refused.text);
    assert_eq!(
        refused.body["error"]["fields"]["password"],
        json!(["This password is too common."])
    );
    assert_eq!(check(&app, &token).await.status, 200, "nothing was used up");
    assert_eq!(login(&app, &account.email, PASSWORD).await.status, 201);
    let done = reset(&app, json!({"token": token, "password": NEW_PASSWORD})).await;
    assert_eq!(done.status, 201, "{}", done.text);
}
