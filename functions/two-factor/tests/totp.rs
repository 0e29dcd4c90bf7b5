//! The authenticator app and recovery codes against DynamoDB Local, through the handlers, with
//! the app's codes computed here from the returned secret on the clock the test moves; texts
//! and mails read back from moto.

use serde_json::{Value, json};
use shared::App;
use shared::domain::ListStart;
use shared::domain::code::{FactorGuard, MAX_CONSECUTIVE_FAILURES};
use shared::domain::email::Email;
use shared::domain::ids::UserId;
use shared::domain::security_event::EventType;
use shared::security::password::Password;
use shared::security::totp::TotpSecret;
use shared::store::dynamo::key;
use shared::testkit;
use shared::testkit::accounts::{self, Account, PASSWORD};
use shared::testkit::{TestResponse, request};
use time::Duration;
use tokio::task::JoinSet;

const CODE_NOT_VALID: &str =
    "Code is not valid. Please use the resend code button to request a new one.";
const STEP: Duration = Duration::seconds(30);

async fn two_factor(app: &App, req: lambda_http::Request) -> TestResponse {
    TestResponse::from(two_factor::handle(app, req).await)
}

async fn sessions(app: &App, req: lambda_http::Request) -> TestResponse {
    TestResponse::from(sessions::handle(app, req).await)
}

async fn users(app: &App, req: lambda_http::Request) -> TestResponse {
    TestResponse::from(users::handle(app, req).await)
}

async fn post(app: &App, token: &str, path: &str, body: Value) -> TestResponse {
    two_factor(app, request("POST", path).bearer(token).json(body).build()).await
}

async fn delete(app: &App, token: &str, path: &str, body: Option<Value>) -> TestResponse {
    let req = request("DELETE", path).bearer(token);
    let req = match body {
        Some(body) => req.json(body),
        None => req,
    };
    two_factor(app, req.build()).await
}

/// `POST /users/{uuid}/totp` with the right password: the secret.
async fn enrol(app: &App, account: &Account) -> TotpSecret {
    let response = post(
        app,
        &account.token,
        &format!("/users/{}/totp", account.uuid),
        json!({"currentPassword": PASSWORD}),
    )
    .await;
    assert_eq!(response.status, 201, "{}", response.text);
    let secret = response.body["data"]["secret"].as_str().unwrap();
    TotpSecret::from_base32(secret).expect("160 bits of base32")
}

/// The code the user's app shows now.
fn code_now(app: &App, secret: &TotpSecret) -> String {
    secret.code_at(app.clock.now().unix_timestamp() as u64)
}

/// A six-digit code other than `code`.
fn wrong(code: &str) -> String {
    format!("{:06}", (code.parse::<u32>().unwrap() + 1) % 1_000_000)
}

async fn activate(app: &App, account: &Account, code: &str) -> TestResponse {
    post(
        app,
        &account.token,
        &format!("/users/{}/totp/verify", account.uuid),
        json!({"code": code}),
    )
    .await
}

/// A fresh account with an active app; the clock is one step past the activation's.
async fn with_app(app: &App) -> (Account, TotpSecret) {
    let account = accounts::register(app, "totp").await;
    let secret = enrol(app, &account).await;
    let response = activate(app, &account, &code_now(app, &secret)).await;
    assert_eq!(response.status, 200, "{}", response.text);
    app.clock.advance(STEP);
    (account, secret)
}

async fn generate_codes(app: &App, account: &Account) -> Vec<String> {
    let response = post(
        app,
        &account.token,
        &format!("/users/{}/recovery-codes", account.uuid),
        json!({"currentPassword": PASSWORD}),
    )
    .await;
    assert_eq!(response.status, 201, "{}", response.text);
    response.body["data"]["codes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|code| code.as_str().unwrap().to_owned())
        .collect()
}

/// A password login of a user with 2FA: the login body's `data`.
async fn two_factor_login(app: &App, account: &Account) -> Value {
    let response = sessions(app, accounts::login_request(&account.email, PASSWORD)).await;
    assert_eq!(response.status, 201, "{}", response.text);
    assert_eq!(response.body["data"]["twoFactorRequired"], true);
    response.body["data"].clone()
}

async fn login_token(app: &App, account: &Account) -> String {
    two_factor_login(app, account).await["token"]
        .as_str()
        .unwrap()
        .to_owned()
}

async fn verify(app: &App, token: &str, code: &str) -> TestResponse {
    sessions(
        app,
        request("POST", "/users/sessions/verify")
            .bearer(token)
            .json(json!({"code": code}))
            .build(),
    )
    .await
}

async fn view(app: &App, account: &Account) -> Value {
    let response = users(
        app,
        accounts::get_user_request(&account.token, &account.uuid),
    )
    .await;
    assert_eq!(response.status, 200, "{}", response.text);
    response.body["data"]["twoFactorAuth"].clone()
}

/// The user's event types, oldest first, with whether a csrAdmin caused each.
async fn events(app: &App, account: &Account) -> Vec<(EventType, Option<bool>)> {
    let mut listed = app
        .events
        .list_events(account.user_id(), ListStart::Skip(0), 100, app.clock.now())
        .await
        .unwrap();
    listed.reverse();
    listed
        .into_iter()
        .map(|event| (event.kind, event.actor.map(|actor| actor.admin)))
        .collect()
}

fn count(events: &[(EventType, Option<bool>)], kind: EventType) -> usize {
    events.iter().filter(|(k, _)| *k == kind).count()
}

/// A fresh number on the SMS allow-list, enrolled and verified through the routes.
async fn enable_number(app: &App, account: &Account) -> String {
    let digits = format!("415{:07}", UserId::new().as_uuid().as_u128() % 10_000_000);
    let e164 = format!("+1{digits}");
    let response = post(
        app,
        &account.token,
        &format!("/users/{}/pending-two-factor-auth", account.uuid),
        json!({"mobileNumber": digits, "mobileCountryCode": 1, "currentPassword": PASSWORD}),
    )
    .await;
    assert_eq!(response.status, 201, "{}", response.text);
    let code = last_text(&e164).await.expect("a code was texted");
    let response = verify(app, &account.token, &code).await;
    assert_eq!(response.status, 201, "{}", response.text);
    e164
}

async fn last_text(phone: &str) -> Option<String> {
    testkit::sms_to(phone)
        .await
        .pop()
        .map(|message| message["Your verification code is ".len()..].to_owned())
}

async fn stored_item(app: &App, uuid: &str, sk: &str) -> Option<shared::store::dynamo::Item> {
    let store = testkit::dynamo_store(app).await;
    store
        .client
        .get_item()
        .table_name(&store.table)
        .set_key(Some(key(format!("USER#{uuid}"), sk)))
        .consistent_read(true)
        .send()
        .await
        .unwrap()
        .item
}

#[tokio::test]
async fn an_app_enrolled_with_the_password_is_activated_by_its_code_and_completes_a_login() {
    let app = testkit::app().await;
    let account = accounts::register(&app, "totp").await;

    let response = post(
        &app,
        &account.token,
        &format!("/users/{}/totp", account.uuid),
        json!({"currentPassword": PASSWORD}),
    )
    .await;
    assert_eq!(response.status, 201, "{}", response.text);
    assert_eq!(response.header("cache-control"), Some("no-store"));
    let secret = response.body["data"]["secret"].as_str().unwrap().to_owned();
    assert_eq!(secret.len(), 32);
    let uri = response.body["data"]["otpauthUri"].as_str().unwrap();
    let label = account.email.replace('@', "%40").replace('+', "%2B");
    assert!(
        uri.starts_with(&format!("otpauth://totp/Kuri:{label}?")),
        "{uri}"
    );
    assert!(uri.contains(&format!("secret={secret}")) && uri.contains("issuer=Kuri"));
    // Stored only sealed, and a pending app is not shown.
    let profile = stored_item(&app, &account.uuid, "PROFILE").await.unwrap();
    assert!(profile.contains_key("pendingTotpSecret"));
    assert!(!format!("{profile:?}").contains(&secret));
    assert_eq!(view(&app, &account).await["totp"], false);

    let secret = TotpSecret::from_base32(&secret).unwrap();
    let response = activate(&app, &account, &code_now(&app, &secret)).await;
    assert_eq!(response.status, 200, "{}", response.text);
    let shown = &response.body["data"]["twoFactorAuth"];
    assert_eq!(
        *shown,
        json!({
            "enabled": true,
            "mobileNumberLast4": null,
            "pending": false,
            "totp": true,
            "recoveryCodesLeft": 0
        })
    );

    app.clock.advance(STEP);
    let login = two_factor_login(&app, &account).await;
    assert_eq!(login["methods"], json!(["totp"]));
    assert!(login.get("refreshToken").is_none());
    let token = login["token"].as_str().unwrap();
    let response = verify(&app, token, &code_now(&app, &secret)).await;
    assert_eq!(response.status, 201, "{}", response.text);
    assert_eq!(response.body["data"]["twoFactorRequired"], false);
    assert!(response.body["data"]["refreshToken"].is_string());

    let events = events(&app, &account).await;
    assert_eq!(count(&events, EventType::TotpEnabled), 1);
    assert_eq!(count(&events, EventType::TwoFactorEnabled), 1);
    assert!(events.contains(&(EventType::TotpEnabled, Some(false))));
}

#[tokio::test]
async fn a_new_enrolment_replaces_a_pending_one() {
    let app = testkit::app().await;
    let account = accounts::register(&app, "totp").await;
    let first = enrol(&app, &account).await;
    let second = enrol(&app, &account).await;
    let code = code_now(&app, &first);
    if code != code_now(&app, &second) {
        activate(&app, &account, &code)
            .await
            .assert_error(400, CODE_NOT_VALID);
    }
    app.clock.advance(STEP);
    let response = activate(&app, &account, &code_now(&app, &second)).await;
    assert_eq!(response.status, 200, "{}", response.text);
    let again = post(
        &app,
        &account.token,
        &format!("/users/{}/totp", account.uuid),
        json!({"currentPassword": PASSWORD}),
    )
    .await;
    again.assert_error(409, "Authenticator app is already enabled.");
    app.clock.advance(STEP);
    activate(&app, &account, &code_now(&app, &second))
        .await
        .assert_error(409, "Authenticator app is already enabled.");
}

#[tokio::test]
async fn a_replayed_time_step_is_refused_on_every_route() {
    let app = testkit::app().await;
    let account = accounts::register(&app, "totp").await;
    let secret = enrol(&app, &account).await;
    let code = code_now(&app, &secret);
    assert_eq!(activate(&app, &account, &code).await.status, 200);

    // The activation's step, within the drift window: refused at login and at removal.
    let token = login_token(&app, &account).await;
    verify(&app, &token, &code)
        .await
        .assert_error(400, CODE_NOT_VALID);
    let path = format!("/users/{}/totp", account.uuid);
    delete(&app, &account.token, &path, Some(json!({"code": code})))
        .await
        .assert_error(400, CODE_NOT_VALID);

    app.clock.advance(STEP);
    let next = code_now(&app, &secret);
    assert_eq!(verify(&app, &token, &next).await.status, 201);
    let token = login_token(&app, &account).await;
    verify(&app, &token, &next)
        .await
        .assert_error(400, CODE_NOT_VALID);
}

#[tokio::test]
async fn one_code_used_by_racing_logins_completes_only_one() {
    let app = testkit::app().await;
    let (account, secret) = with_app(&app).await;
    let mut tokens = Vec::new();
    for _ in 0..6 {
        tokens.push(login_token(&app, &account).await);
    }
    let code = code_now(&app, &secret);
    let mut racing = JoinSet::new();
    for token in tokens {
        let (app, code) = (app.clone(), code.clone());
        racing.spawn(async move { verify(&app, &token, &code).await.status });
    }
    let mut statuses = racing.join_all().await;
    statuses.sort();
    assert_eq!(statuses, [201, 400, 400, 400, 400, 400]);
}

#[tokio::test]
async fn after_five_wrong_codes_even_the_right_one_is_refused_until_the_window_passes() {
    let app = testkit::app().await;
    let (account, secret) = with_app(&app).await;
    let token = login_token(&app, &account).await;
    let right = code_now(&app, &secret);
    for _ in 0..5 {
        verify(&app, &token, &wrong(&right))
            .await
            .assert_error(400, CODE_NOT_VALID);
    }
    verify(&app, &token, &wrong(&right))
        .await
        .assert_error(400, CODE_NOT_VALID);
    verify(&app, &token, &right)
        .await
        .assert_error(400, CODE_NOT_VALID);
    // Wrong codes at `totp/verify` and removal count in the same window.
    let path = format!("/users/{}/totp", account.uuid);
    delete(&app, &account.token, &path, Some(json!({"code": right})))
        .await
        .assert_error(400, CODE_NOT_VALID);

    app.clock.advance(Duration::minutes(15));
    let token = login_token(&app, &account).await;
    let response = verify(&app, &token, &code_now(&app, &secret)).await;
    assert_eq!(response.status, 201, "{}", response.text);
}

#[tokio::test]
async fn wrong_codes_at_activation_count_in_the_window() {
    let app = testkit::app().await;
    let account = accounts::register(&app, "totp").await;
    let secret = enrol(&app, &account).await;
    let right = code_now(&app, &secret);
    for _ in 0..5 {
        activate(&app, &account, &wrong(&right))
            .await
            .assert_error(400, CODE_NOT_VALID);
    }
    activate(&app, &account, &right)
        .await
        .assert_error(400, CODE_NOT_VALID);
    activate(&app, &account, "")
        .await
        .assert_error(400, "Code is required.");
}

#[tokio::test]
async fn a_hundred_consecutive_wrong_codes_refuse_every_code_until_a_password_reset() {
    let app = testkit::app().await;
    let (account, secret) = with_app(&app).await;
    let phone = enable_number(&app, &account).await;
    // 99 wrong codes already (sending them would only repeat the window test).
    let mut guard = app
        .codes
        .get_factor_guard(account.user_id())
        .await
        .unwrap()
        .unwrap_or_else(|| FactorGuard::new(account.user_id()));
    let version = guard.version;
    guard.consecutive_failures = MAX_CONSECUTIVE_FAILURES - 1;
    guard.version += 1;
    app.codes
        .put_factor_guard(&guard, Some(version).filter(|v| *v > 0))
        .await
        .unwrap();

    app.clock.advance(STEP);
    let token = login_token(&app, &account).await;
    let right = code_now(&app, &secret);
    verify(&app, &token, &wrong(&right))
        .await
        .assert_error(400, CODE_NOT_VALID);
    verify(&app, &token, &right)
        .await
        .assert_error(400, CODE_NOT_VALID);
    app.clock.advance(Duration::seconds(31));
    let resent = two_factor(
        &app,
        request("GET", "/users/two-factor-auth/code")
            .bearer(&token)
            .build(),
    )
    .await;
    assert_eq!(resent.status, 204, "{}", resent.text);
    let texted = last_text(&phone).await.unwrap();
    verify(&app, &token, &texted)
        .await
        .assert_error(400, CODE_NOT_VALID);
    // Past the window too: only a reset (or a csrAdmin) lifts it.
    app.clock.advance(Duration::minutes(16));
    let token = login_token(&app, &account).await;
    verify(&app, &token, &code_now(&app, &secret))
        .await
        .assert_error(400, CODE_NOT_VALID);

    let email = Email::parse(&account.email).unwrap();
    shared::service::recovery::start(&app, &*app.mailer, &email)
        .await
        .unwrap();
    let mails = testkit::emails_to(&account.email).await;
    let body = mails.last().unwrap()["body"].as_str().unwrap();
    let reset_token: String = body
        .split_once("?token=")
        .unwrap()
        .1
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_')
        .collect();
    shared::service::recovery::reset(
        &app,
        &*app.mailer,
        &reset_token,
        &Password::parse(PASSWORD).unwrap(),
    )
    .await
    .unwrap();
    app.clock.advance(STEP);
    let token = login_token(&app, &account).await;
    let response = verify(&app, &token, &code_now(&app, &secret)).await;
    assert_eq!(response.status, 201, "{}", response.text);
}

#[tokio::test]
async fn a_recovery_code_logs_in_once_and_ends_the_live_text() {
    let app = testkit::app().await;
    let (account, _secret) = with_app(&app).await;
    let phone = enable_number(&app, &account).await;
    let codes = generate_codes(&app, &account).await;
    assert_eq!(codes.len(), 10);
    assert!(
        codes
            .iter()
            .all(|code| code.len() == 11 && &code[5..6] == "-")
    );
    let profile = stored_item(&app, &account.uuid, "PROFILE").await.unwrap();
    assert!(!format!("{profile:?}").contains(&codes[0][..5]));
    assert_eq!(view(&app, &account).await["recoveryCodesLeft"], 10);

    // An app is active, so the login texts nothing.
    let texts_before = testkit::sms_to(&phone).await.len();
    app.clock.advance(Duration::seconds(31));
    let login = two_factor_login(&app, &account).await;
    assert_eq!(login["methods"], json!(["totp", "sms", "recoveryCode"]));
    assert_eq!(testkit::sms_to(&phone).await.len(), texts_before);
    // A text asked for by the app is ended by the recovery code.
    let token = login["token"].as_str().unwrap();
    let resent = two_factor(
        &app,
        request("GET", "/users/two-factor-auth/code")
            .bearer(token)
            .build(),
    )
    .await;
    assert_eq!(resent.status, 204, "{}", resent.text);
    assert!(stored_item(&app, &account.uuid, "CODE").await.is_some());

    let typed = codes[3].replace('-', "").to_uppercase();
    let response = verify(&app, token, &typed).await;
    assert_eq!(response.status, 201, "{}", response.text);
    let user = &response.body["data"]["user"];
    assert_eq!(user["twoFactorAuth"]["recoveryCodesLeft"], 9);
    assert!(stored_item(&app, &account.uuid, "CODE").await.is_none());

    let token = login_token(&app, &account).await;
    verify(&app, &token, &codes[3])
        .await
        .assert_error(400, CODE_NOT_VALID);
    assert_eq!(view(&app, &account).await["recoveryCodesLeft"], 9);

    let events = events(&app, &account).await;
    assert_eq!(count(&events, EventType::RecoveryCodesGenerated), 1);
    assert_eq!(count(&events, EventType::RecoveryCodeUsed), 1);
    // The number came second: 2FA was enabled once, by the app.
    assert_eq!(count(&events, EventType::TwoFactorEnabled), 1);
}

#[tokio::test]
async fn a_new_set_of_recovery_codes_replaces_the_old_one() {
    let app = testkit::app().await;
    let (account, _secret) = with_app(&app).await;
    let old = generate_codes(&app, &account).await;
    let new = generate_codes(&app, &account).await;
    let token = login_token(&app, &account).await;
    verify(&app, &token, &old[0])
        .await
        .assert_error(400, CODE_NOT_VALID);
    assert_eq!(verify(&app, &token, &new[0]).await.status, 201);
}

#[tokio::test]
async fn removing_the_last_factor_takes_a_code_deletes_the_codes_and_mails_the_notice() {
    let app = testkit::app().await;
    let (account, secret) = with_app(&app).await;
    generate_codes(&app, &account).await;
    let path = format!("/users/{}/totp", account.uuid);

    delete(&app, &account.token, &path, None)
        .await
        .assert_error(400, "Code is required.");
    let code = code_now(&app, &secret);
    delete(
        &app,
        &account.token,
        &path,
        Some(json!({"code": wrong(&code)})),
    )
    .await
    .assert_error(400, CODE_NOT_VALID);
    let response = delete(&app, &account.token, &path, Some(json!({"code": code}))).await;
    assert_eq!(response.status, 204, "{}", response.text);

    assert_eq!(
        view(&app, &account).await,
        json!({
            "enabled": false,
            "mobileNumberLast4": null,
            "pending": false,
            "totp": false,
            "recoveryCodesLeft": 0
        })
    );
    delete(&app, &account.token, &path, Some(json!({"code": code})))
        .await
        .assert_error(404, "Authenticator app is not enabled.");
    let mails = testkit::emails_to(&account.email).await;
    assert_eq!(mails.len(), 1);
    let mail = &mails[0];
    assert_eq!(
        mail["subject"],
        "A second factor was removed from your Kuri account"
    );
    let body = mail["body"].as_str().unwrap();
    assert!(body.contains("the authenticator app") && !body.contains("http"));

    let events = events(&app, &account).await;
    for kind in [
        EventType::TotpEnabled,
        EventType::TwoFactorEnabled,
        EventType::RecoveryCodesGenerated,
        EventType::TotpDisabled,
        EventType::TwoFactorDisabled,
    ] {
        assert_eq!(count(&events, kind), 1, "{kind:?} in {events:?}");
    }
    assert!(events.contains(&(EventType::TotpDisabled, Some(false))));
}

#[tokio::test]
async fn the_app_is_removed_with_a_texted_code_keeping_the_number_and_the_codes() {
    let app = testkit::app().await;
    let (account, _secret) = with_app(&app).await;
    let phone = enable_number(&app, &account).await;
    generate_codes(&app, &account).await;
    app.clock.advance(Duration::seconds(31));
    let resent = two_factor(
        &app,
        request("GET", "/users/two-factor-auth/code")
            .bearer(&account.token)
            .build(),
    )
    .await;
    assert_eq!(resent.status, 204, "{}", resent.text);
    let texted = last_text(&phone).await.unwrap();
    let path = format!("/users/{}/totp", account.uuid);
    let response = delete(&app, &account.token, &path, Some(json!({"code": texted}))).await;
    assert_eq!(response.status, 204, "{}", response.text);
    let shown = view(&app, &account).await;
    assert_eq!(
        (
            &shown["enabled"],
            &shown["totp"],
            &shown["recoveryCodesLeft"]
        ),
        (&json!(true), &json!(false), &json!(10))
    );
    let events = events(&app, &account).await;
    assert_eq!(count(&events, EventType::TotpDisabled), 1);
    assert_eq!(count(&events, EventType::TwoFactorDisabled), 0);
}

#[tokio::test]
async fn removing_ones_number_takes_an_app_code_and_leaves_the_app() {
    let app = testkit::app().await;
    let (account, secret) = with_app(&app).await;
    enable_number(&app, &account).await;
    let response = delete(
        &app,
        &account.token,
        "/users/two-factor-auth",
        Some(json!({"code": code_now(&app, &secret)})),
    )
    .await;
    assert_eq!(response.status, 204, "{}", response.text);
    let shown = view(&app, &account).await;
    assert_eq!(
        (
            &shown["enabled"],
            &shown["totp"],
            &shown["mobileNumberLast4"]
        ),
        (&json!(true), &json!(true), &Value::Null)
    );
    let mails = testkit::emails_to(&account.email).await;
    assert_eq!(mails.len(), 1);
    assert!(
        mails[0]["body"]
            .as_str()
            .unwrap()
            .contains("the phone number")
    );
}

#[tokio::test]
async fn a_csr_admin_removal_removes_the_number_the_app_and_the_codes() {
    let app = testkit::app().await;
    let (account, _secret) = with_app(&app).await;
    enable_number(&app, &account).await;
    generate_codes(&app, &account).await;
    let admin = accounts::admin(&app).await;

    let response = delete(
        &app,
        &admin.token,
        &format!("/users/{}/two-factor-auth", account.uuid),
        None,
    )
    .await;
    assert_eq!(response.status, 204, "{}", response.text);
    assert_eq!(
        view(&app, &account).await,
        json!({
            "enabled": false,
            "mobileNumberLast4": null,
            "pending": false,
            "totp": false,
            "recoveryCodesLeft": 0
        })
    );
    let events = events(&app, &account).await;
    assert_eq!(count(&events, EventType::TwoFactorDisabled), 1);
    assert!(events.contains(&(EventType::TwoFactorDisabled, Some(true))));
    assert!(events.contains(&(EventType::TotpDisabled, Some(true))));
    let mails = testkit::emails_to(&account.email).await;
    let body = mails.last().unwrap()["body"].as_str().unwrap();
    assert!(body.contains("the phone number and the authenticator app"));
    let login = sessions(&app, accounts::login_request(&account.email, PASSWORD)).await;
    assert_eq!(login.body["data"]["twoFactorRequired"], false);
}

#[tokio::test]
async fn a_csr_admin_removes_another_users_app_without_a_code() {
    let app = testkit::app().await;
    let (account, _secret) = with_app(&app).await;
    let admin = accounts::admin(&app).await;
    let path = format!("/users/{}/totp", account.uuid);
    let response = delete(&app, &admin.token, &path, None).await;
    assert_eq!(response.status, 204, "{}", response.text);
    assert_eq!(view(&app, &account).await["totp"], false);
    let events = events(&app, &account).await;
    assert!(events.contains(&(EventType::TotpDisabled, Some(true))));

    let unknown = format!("/users/{}/totp", UserId::new());
    delete(&app, &admin.token, &unknown, None)
        .await
        .assert_error(404, "This user does not exist.");
}

#[tokio::test]
async fn the_routes_keep_the_sections_common_rules() {
    let app = testkit::app().await;
    let owner = accounts::register(&app, "totp").await;
    let other = accounts::register(&app, "totp-other").await;
    let admin = accounts::admin(&app).await;
    let uuid = &owner.uuid;
    let routes = [
        (
            "POST",
            format!("/users/{uuid}/totp"),
            json!({"currentPassword": PASSWORD}),
        ),
        (
            "POST",
            format!("/users/{uuid}/totp/verify"),
            json!({"code": "123456"}),
        ),
        (
            "DELETE",
            format!("/users/{uuid}/totp"),
            json!({"code": "123456"}),
        ),
        (
            "POST",
            format!("/users/{uuid}/recovery-codes"),
            json!({"currentPassword": PASSWORD}),
        ),
    ];
    for (method, path, body) in &routes {
        let send = |token: &str| {
            request(method, path)
                .bearer(token)
                .json(body.clone())
                .build()
        };
        two_factor(&app, send(&other.token))
            .await
            .assert_error(403, "No Access.");
        if *method == "POST" {
            two_factor(&app, send(&admin.token))
                .await
                .assert_error(403, "No Access.");
        }
    }

    for path in ["totp", "recovery-codes"] {
        let path = format!("/users/{uuid}/{path}");
        let missing = post(&app, &owner.token, &path, json!({})).await;
        assert_eq!(missing.status, 400, "{}", missing.text);
        assert!(missing.body["error"]["fields"]["currentPassword"].is_array());
        post(
            &app,
            &owner.token,
            &path,
            json!({"currentPassword": "not it at all"}),
        )
        .await
        .assert_error(401, "Password is incorrect.");
    }
    post(
        &app,
        &owner.token,
        &format!("/users/{uuid}/recovery-codes"),
        json!({"currentPassword": PASSWORD}),
    )
    .await
    .assert_error(400, "Two-factor authentication is not enabled.");
    activate(&app, &owner, "123456")
        .await
        .assert_error(404, "Authenticator app is not pending.");
    delete(
        &app,
        &owner.token,
        &format!("/users/{uuid}/totp"),
        Some(json!({"code": "123456"})),
    )
    .await
    .assert_error(404, "Authenticator app is not enabled.");

    // Wrong passwords count as failed logins: the fifth locks the email.
    for _ in 0..5 {
        post(
            &app,
            &owner.token,
            &format!("/users/{uuid}/totp"),
            json!({"currentPassword": "not it at all"}),
        )
        .await;
    }
    let locked = sessions(&app, accounts::login_request(&owner.email, PASSWORD)).await;
    assert_eq!(locked.status, 429, "{}", locked.text);

    // A token waiting for its second factor opens none of them.
    let (with_factor, _) = with_app(&app).await;
    let token = login_token(&app, &with_factor).await;
    for (method, path, body) in &routes {
        let path = path.replace(uuid, &with_factor.uuid);
        let response = two_factor(
            &app,
            request(method, &path)
                .bearer(&token)
                .json(body.clone())
                .build(),
        )
        .await;
        response.assert_error(401, "Invalid token");
    }
}

#[tokio::test]
async fn replacing_a_verified_number_needs_the_current_password() {
    let app = testkit::app().await;
    let account = accounts::register(&app, "totp").await;
    enable_number(&app, &account).await;
    app.clock.advance(Duration::seconds(31));
    let path = format!("/users/{}/pending-two-factor-auth", account.uuid);
    let number = json!({"mobileNumber": "4155550188", "mobileCountryCode": 1});
    let missing = post(&app, &account.token, &path, number.clone()).await;
    assert_eq!(missing.status, 400, "{}", missing.text);
    assert!(missing.body["error"]["fields"]["currentPassword"].is_array());
    let mut wrong = number.clone();
    wrong["currentPassword"] = json!("not it at all");
    post(&app, &account.token, &path, wrong)
        .await
        .assert_error(401, "Password is incorrect.");
    let mut right = number;
    right["currentPassword"] = json!(PASSWORD);
    let response = post(&app, &account.token, &path, right).await;
    assert_eq!(response.status, 201, "{}", response.text);
}

#[tokio::test]
async fn every_new_event_file_reaches_its_route() {
    let app = testkit::app().await;
    let (account, _secret) = with_app(&app).await;
    for (event, status) in [
        // The events carry the test accounts' password.
        ("two-factor-totp-enrol", 409),
        ("two-factor-totp-verify", 409),
        ("two-factor-totp-remove", 400),
        ("two-factor-recovery-codes", 201),
    ] {
        let response = two_factor(&app, testkit::event(event, &account.token, &account.uuid)).await;
        assert_eq!(response.status, status, "{event}: {}", response.text);
    }
}
