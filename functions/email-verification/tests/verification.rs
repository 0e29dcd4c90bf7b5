//! Email verification against DynamoDB Local and moto's SES: the mailed link is read back
//! from what moto recorded as sent and opened as is.

use serde_json::json;
use shared::App;
use shared::domain::user::Status;
use shared::testkit;
use shared::testkit::accounts;
use shared::testkit::accounts::Account;
use shared::testkit::{TestResponse, request};
use time::Duration;

async fn call(app: &App, req: lambda_http::Request) -> TestResponse {
    TestResponse::from(email_verification::handle(app, req).await)
}

async fn call_users(app: &App, req: lambda_http::Request) -> TestResponse {
    TestResponse::from(users::handle(app, req).await)
}

/// A plus sign and mixed case, so the link's encoding and the case rules are exercised.
fn unique_email() -> String {
    format!("Verify+{}@Example.com", uuid::Uuid::new_v4().simple())
}

/// A user registered (and so logged in) at a [`unique_email`].
async fn register(app: &App) -> Account {
    accounts::register_email(app, &unique_email()).await
}

async fn start(app: &App, access_token: &str) -> TestResponse {
    call(
        app,
        request("POST", "/users/verify-email")
            .bearer(access_token)
            .build(),
    )
    .await
}

/// Asks for a verification mail and returns the path and query of its link.
async fn mailed_link(app: &App, account: &Account) -> String {
    let started = start(app, &account.token).await;
    assert_eq!(started.status, 201, "{}", started.text);
    let mails = testkit::emails_to(&account.email).await;
    let body = mails.last().expect("a mail was sent")["body"]
        .as_str()
        .unwrap()
        .to_owned();
    link_in(app, &body)
}

fn link_in(app: &App, body: &str) -> String {
    let base = &app.config.link_base_url;
    let (_, after) = body.split_once(base.as_str()).expect("the mail has a link");
    after
        .split(|c: char| c == '"' || c == '<' || c.is_whitespace())
        .next()
        .unwrap()
        .to_owned()
}

fn token_of(link: &str) -> &str {
    link.split_once("?token=").unwrap().1
}

async fn open(app: &App, path_and_query: &str) -> TestResponse {
    call(app, request("GET", path_and_query).build()).await
}

#[tokio::test]
async fn the_mailed_link_verifies_the_email_once() {
    let app = testkit::app().await;
    let registration = register(&app).await;
    let email = registration.email.clone();
    assert_eq!(registration.body["user"]["emailVerified"], false);

    let started = start(&app, &registration.token).await;
    assert_eq!(started.status, 201, "{}", started.text);
    assert_eq!(started.body, json!({"data": {}}));
    let mails = testkit::emails_to(&email).await;
    assert_eq!(mails.len(), 1);
    assert_eq!(mails[0]["subject"], "Confirm your email address for Kuri");
    assert_eq!(mails[0]["source"], app.config.mail_from);
    let link = link_in(&app, mails[0]["body"].as_str().unwrap());
    let encoded = email.replace('+', "%2B");
    assert!(
        link.starts_with(&format!("/users/verify-email/{encoded}?token=")),
        "{link}"
    );
    assert_eq!(token_of(&link).len(), 43);

    let verified = open(&app, &link).await;
    assert_eq!(verified.status, 200, "{}", verified.text);
    assert_eq!(verified.body["data"]["emailVerified"], true);
    assert_eq!(verified.body["data"]["email"], email);
    assert_eq!(verified.body["data"]["uuid"], registration.uuid.as_str());
    assert!(verified.body["data"].get("passwordHash").is_none());

    let read = call_users(
        &app,
        accounts::get_user_request(&registration.token, &registration.uuid),
    )
    .await;
    assert_eq!(read.body["data"]["emailVerified"], true, "{}", read.text);

    open(&app, &link)
        .await
        .assert_error(400, "The token is expired.");
}

#[tokio::test]
async fn verifying_a_user_the_migration_has_not_reached_counts_them_once() {
    let app = testkit::app().await;
    let registration = register(&app).await;
    testkit::unmigrate(&app, &registration.uuid).await;
    assert_eq!(testkit::counted_users(&app).await, 0);

    let link = mailed_link(&app, &registration).await;
    let opened = open(&app, &link).await;
    assert_eq!(opened.status, 200, "{}", opened.text);
    assert_eq!(opened.body["data"]["emailVerified"], true);
    assert_eq!(testkit::counted_users(&app).await, 1);
}

#[tokio::test]
async fn the_path_email_must_match_the_token_ignoring_case() {
    let app = testkit::app().await;
    let registration = register(&app).await;
    let email = registration.email.clone();
    let link = mailed_link(&app, &registration).await;
    let token = token_of(&link).to_owned();

    let other = unique_email();
    open(
        &app,
        &format!(
            "/users/verify-email/{}?token={token}",
            other.replace('+', "%2B")
        ),
    )
    .await
    .assert_error(400, "The token is expired.");

    let shouting = email.to_uppercase().replace('+', "%2B");
    let verified = open(
        &app,
        &format!("/users/verify-email/{shouting}?token={token}"),
    )
    .await;
    assert_eq!(verified.status, 200, "{}", verified.text);
    assert_eq!(verified.body["data"]["emailVerified"], true);
}

#[tokio::test]
async fn an_expired_link_is_refused() {
    let app = testkit::app().await;
    let registration = register(&app).await;
    let link = mailed_link(&app, &registration).await;
    app.clock
        .advance(Duration::hours(24) + Duration::minutes(1));
    open(&app, &link)
        .await
        .assert_error(400, "The token is expired.");
}

#[tokio::test]
async fn unknown_or_missing_tokens_are_refused() {
    let app = testkit::app().await;
    let email = register(&app).await.email;
    let path = format!("/users/verify-email/{}", email.replace('+', "%2B"));
    let made_up = shared::security::crypto::random_token();
    for link in [
        format!("{path}?token={made_up}"),
        format!("{path}?token="),
        path.clone(),
    ] {
        open(&app, &link)
            .await
            .assert_error(400, "The token is expired.");
    }
}

#[tokio::test]
async fn a_link_for_an_address_the_user_left_is_refused() {
    let app = testkit::app().await;
    let registration = register(&app).await;
    let link = mailed_link(&app, &registration).await;
    let new_email = unique_email();
    shared::service::users::update(&app, registration.user_id(), None, |user| {
        user.email = new_email.clone();
        user.email_verified = false;
        Ok(())
    })
    .await
    .unwrap();
    open(&app, &link)
        .await
        .assert_error(400, "The token is expired.");
}

#[tokio::test]
async fn a_link_opened_after_deactivation_is_refused_and_the_user_cannot_ask_again() {
    let app = testkit::app().await;
    let registration = register(&app).await;
    let link = mailed_link(&app, &registration).await;
    shared::service::users::update(&app, registration.user_id(), None, |user| {
        user.status = Status::Inactive;
        shared::service::users::revoke_all_sessions(user);
        Ok(())
    })
    .await
    .unwrap();

    open(&app, &link)
        .await
        .assert_error(400, "Cannot verify email for inactive user.");
    start(&app, &registration.token)
        .await
        .assert_error(401, "Invalid token");
}

#[tokio::test]
async fn asking_for_a_mail_needs_a_valid_access_token() {
    let app = testkit::app().await;
    call(&app, request("POST", "/users/verify-email").build())
        .await
        .assert_error(401, "Invalid token");
    start(&app, "not.a.jwt")
        .await
        .assert_error(401, "Invalid token");
}

#[tokio::test]
async fn of_twenty_concurrent_opens_of_one_link_exactly_one_succeeds() {
    let app = testkit::app().await;
    let registration = register(&app).await;
    let link = mailed_link(&app, &registration).await;

    let mut attempts = tokio::task::JoinSet::new();
    for _ in 0..20 {
        let (app, link) = (app.clone(), link.clone());
        attempts.spawn(async move { open(&app, &link).await });
    }
    let results = attempts.join_all().await;
    assert_eq!(
        results.iter().filter(|r| r.status == 200).count(),
        1,
        "{results:?}"
    );
    for response in results.iter().filter(|r| r.status != 200) {
        response.assert_error(400, "The token is expired.");
    }
}

#[tokio::test]
async fn the_service_used_by_an_email_change_mails_the_current_address() {
    let app = testkit::app().await;
    let registration = register(&app).await;
    let new_email = unique_email();
    let user = shared::service::users::update(&app, registration.user_id(), None, |user| {
        user.email = new_email.clone();
        Ok(())
    })
    .await
    .unwrap();

    shared::service::verification::send_verification_email(&app, &*app.mailer, &user)
        .await
        .unwrap();
    let mails = testkit::emails_to(&new_email).await;
    assert_eq!(mails.len(), 1);
    let link = link_in(&app, mails[0]["body"].as_str().unwrap());
    let verified = open(&app, &link).await;
    assert_eq!(verified.status, 200, "{}", verified.text);
    assert_eq!(verified.body["data"]["email"], new_email);
    assert_eq!(verified.body["data"]["emailVerified"], true);
}

#[tokio::test]
async fn api_gateway_events_reach_the_routes() {
    let app = testkit::app().await;
    let uuid = "00000000-0000-4000-8000-000000000000";
    let verify =
        email_verification::handle(&app, testkit::event("email-verification-verify", "", uuid))
            .await;
    TestResponse::from(verify).assert_error(400, "The token is expired.");
    let start = email_verification::handle(
        &app,
        testkit::event("email-verification-start", "not-a-token", uuid),
    )
    .await;
    TestResponse::from(start).assert_error(401, "Invalid token");
}

/// The verification mails moto recorded as sent to `address` (not the security notices).
async fn verification_mails_to(address: &str) -> usize {
    testkit::emails_to(address)
        .await
        .iter()
        .filter(|mail| mail["subject"] == "Confirm your email address for Kuri")
        .count()
}

#[tokio::test]
async fn three_verification_mails_an_hour_per_user_counting_email_changes() {
    let app = testkit::app().await;
    let account = register(&app).await;
    assert_eq!(start(&app, &account.token).await.status, 201);
    let new_email = unique_email();
    let changed = call_users(
        &app,
        request("PATCH", &format!("/users/{}", account.uuid))
            .bearer(&account.token)
            .json(json!({"email": new_email, "currentPassword": accounts::PASSWORD}))
            .build(),
    )
    .await;
    assert_eq!(changed.status, 200, "{}", changed.text);
    assert_eq!(start(&app, &account.token).await.status, 201);
    assert_eq!(verification_mails_to(&account.email).await, 1);
    assert_eq!(verification_mails_to(&new_email).await, 2);

    // Over the cap: the same answer, nothing sent.
    let capped = start(&app, &account.token).await;
    assert_eq!(capped.status, 201, "{}", capped.text);
    assert_eq!(capped.body, json!({"data": {}}));
    assert_eq!(verification_mails_to(&new_email).await, 2);

    // An hour after the first, one more goes (the access token expired meanwhile).
    app.clock.advance(Duration::hours(1));
    let again = accounts::login(&app, &new_email, accounts::PASSWORD)
        .await
        .unwrap();
    assert_eq!(start(&app, &again.token).await.status, 201);
    assert_eq!(verification_mails_to(&new_email).await, 3);
}

#[tokio::test]
async fn three_verification_mails_an_hour_per_address_whoever_asks() {
    let app = testkit::app().await;
    let first = register(&app).await;
    for _ in 0..3 {
        assert_eq!(start(&app, &first.token).await.status, 201);
    }
    assert_eq!(verification_mails_to(&first.email).await, 3);
    // The address is freed and registered again: its cap still holds.
    shared::service::users::soft_delete(&app, first.user_id(), &Default::default())
        .await
        .unwrap();
    let second = accounts::register_email(&app, &first.email).await;
    let capped = start(&app, &second.token).await;
    assert_eq!(capped.status, 201, "{}", capped.text);
    assert_eq!(verification_mails_to(&first.email).await, 3);
}

#[tokio::test]
async fn redeeming_the_link_records_email_verified_once_by_the_user() {
    let app = testkit::app().await;
    let account = register(&app).await;
    let link = mailed_link(&app, &account).await;
    assert_eq!(open(&app, &link).await.status, 200);
    assert_eq!(open(&app, &link).await.status, 400, "the token is used up");

    let listed = call_users(
        &app,
        request("GET", &format!("/users/{}/security-events", account.uuid))
            .bearer(&account.token)
            .build(),
    )
    .await;
    assert_eq!(listed.status, 200, "{}", listed.text);
    let events = listed.body["data"].as_array().unwrap();
    let kinds: Vec<&str> = events.iter().map(|e| e["type"].as_str().unwrap()).collect();
    assert_eq!(kinds, ["email.verified", "user.registered"]);
    assert_eq!(
        events[0]["actor"],
        json!({"uuid": account.uuid, "admin": false})
    );
    assert_eq!(events[0]["sessionUUID"], serde_json::Value::Null);
    let text = serde_json::to_string(events).unwrap();
    assert!(!text.contains(token_of(&link)), "no token in an event");
}
