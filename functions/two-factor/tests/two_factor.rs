//! Two-factor auth by SMS against DynamoDB Local, with texts read back from moto.

use std::sync::Arc;

use serde_json::{Value, json};
use shared::App;
use shared::domain::ids::UserId;
use shared::security::jwt::Scope;
use shared::store::dynamo::{Item, key};
use shared::testkit;
use shared::testkit::accounts;
use shared::testkit::accounts::{Account, PASSWORD};
use shared::testkit::{TestResponse, request};
use time::Duration;
use tokio::task::JoinSet;

const CODE_NOT_VALID: &str =
    "Code is not valid. Please use the resend code button to request a new one.";
const PROVIDER_ERROR: &str = "Error returned from two factor authentication provider";

async fn two_factor(app: &App, req: lambda_http::Request) -> TestResponse {
    TestResponse::from(two_factor::handle(app, req).await)
}

async fn sessions(app: &App, req: lambda_http::Request) -> TestResponse {
    TestResponse::from(sessions::handle(app, req).await)
}

async fn users(app: &App, req: lambda_http::Request) -> TestResponse {
    TestResponse::from(users::handle(app, req).await)
}

async fn register(app: &App) -> Account {
    accounts::register(app, "2fa").await
}

/// A fresh San Francisco number (area code 415, on the SMS allow-list), so texts from other
/// tests sharing moto never mix in: (the `mobileNumber` as a person types it, the E.164 form).
fn unique_number() -> (String, String) {
    let digits = format!("415{:07}", UserId::new().as_uuid().as_u128() % 10_000_000);
    let typed = format!("{}-{}-{}", &digits[..3], &digits[3..6], &digits[6..]);
    (typed, format!("+1{digits}"))
}

/// The codes texted to `phone`, oldest first; every text is exactly the code sentence.
async fn codes_texted_to(phone: &str) -> Vec<String> {
    testkit::sms_to(phone)
        .await
        .into_iter()
        .map(|message| {
            let code = message
                .strip_prefix("Your verification code is ")
                .unwrap_or_else(|| panic!("unexpected text {message:?}"));
            assert!(
                code.len() == 6 && code.bytes().all(|b| b.is_ascii_digit()),
                "{message:?}"
            );
            code.to_owned()
        })
        .collect()
}

async fn last_code(phone: &str) -> String {
    codes_texted_to(phone)
        .await
        .pop()
        .expect("a code was texted")
}

fn wrong(code: &str) -> String {
    format!("{:06}", (code.parse::<u32>().unwrap() + 1) % 1_000_000)
}

async fn enrol(app: &App, account: &Account, typed_number: &str) -> TestResponse {
    two_factor(
        app,
        request(
            "POST",
            &format!("/users/{}/pending-two-factor-auth", account.uuid),
        )
        .bearer(&account.token)
        // The password is needed only to replace a verified number, and accepted always.
        .json(json!({
            "mobileNumber": typed_number,
            "mobileCountryCode": 1,
            "currentPassword": PASSWORD
        }))
        .build(),
    )
    .await
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

async fn resend(app: &App, token: &str, query: &str) -> TestResponse {
    two_factor(
        app,
        request("GET", &format!("/users/two-factor-auth/code{query}"))
            .bearer(token)
            .build(),
    )
    .await
}

async fn remove_own(app: &App, token: &str, body: Value) -> TestResponse {
    two_factor(
        app,
        request("DELETE", "/users/two-factor-auth")
            .bearer(token)
            .json(body)
            .build(),
    )
    .await
}

async fn admin_remove(app: &App, token: &str, uuid: &str) -> TestResponse {
    two_factor(
        app,
        request("DELETE", &format!("/users/{uuid}/two-factor-auth"))
            .bearer(token)
            .build(),
    )
    .await
}

async fn login(app: &App, email: &str) -> TestResponse {
    sessions(app, accounts::login_request(email, PASSWORD)).await
}

async fn get_user(app: &App, token: &str, uuid: &str) -> TestResponse {
    users(app, accounts::get_user_request(token, uuid)).await
}

async fn two_factor_view(app: &App, account: &Account) -> Value {
    let response = get_user(app, &account.token, &account.uuid).await;
    assert_eq!(response.status, 200, "{}", response.text);
    response.body["data"]["twoFactorAuth"].clone()
}

/// Enrols a fresh number and activates it; returns its E.164 form.
async fn enable(app: &App, account: &Account) -> String {
    let (typed, e164) = unique_number();
    assert_eq!(enrol(app, account, &typed).await.status, 201);
    let response = verify(app, &account.token, &last_code(&e164).await).await;
    assert_eq!(response.status, 201, "{}", response.text);
    e164
}

/// Logs in a user with 2FA enabled: the `2fa`-scope token.
async fn two_factor_login(app: &App, account: &Account) -> String {
    let response = login(app, &account.email).await;
    assert_eq!(response.status, 201, "{}", response.text);
    assert_eq!(response.body["data"]["twoFactorRequired"], true);
    response.body["data"]["token"].as_str().unwrap().to_owned()
}

/// One of the user's items (`CODE`, `SMSLIMIT`), read straight from the table.
async fn stored_item(app: &App, uuid: &str, sk: &str) -> Option<Item> {
    let store = testkit::dynamo_store(app).await;
    let output = store
        .client
        .get_item()
        .table_name(&store.table)
        .set_key(Some(key(format!("USER#{uuid}"), sk)))
        .consistent_read(true)
        .send()
        .await
        .unwrap();
    output.item
}

async fn stored_attempts(app: &App, uuid: &str) -> u32 {
    let code = stored_item(app, uuid, "CODE").await.expect("a stored code");
    code["attempts"].as_n().unwrap().parse().unwrap()
}

#[tokio::test]
async fn enrolment_texts_a_code_and_verifying_it_activates_2fa() {
    let app = testkit::app().await;
    let account = register(&app).await;
    let (typed, e164) = unique_number();

    let response = enrol(&app, &account, &typed).await;
    assert_eq!(response.status, 201, "{}", response.text);
    let view = &response.body["data"]["twoFactorAuth"];
    assert_eq!(view["enabled"], false);
    assert_eq!(view["pending"], true);
    assert_eq!(view["mobileNumberLast4"], &e164[e164.len() - 4..]);
    let codes = codes_texted_to(&e164).await;
    assert_eq!(codes.len(), 1);

    let response = verify(&app, &account.token, &codes[0]).await;
    assert_eq!(response.status, 201, "{}", response.text);
    let view = &response.body["data"]["user"]["twoFactorAuth"];
    assert_eq!(
        (view["enabled"].clone(), view["pending"].clone()),
        (json!(true), json!(false))
    );
    // Enabling 2FA ends no session: the same token still reads the user.
    let stored = two_factor_view(&app, &account).await;
    assert_eq!(stored["enabled"], true);
    assert_eq!(stored["mobileNumberLast4"], &e164[e164.len() - 4..]);
    // The code was single-use.
    verify(&app, &account.token, &codes[0])
        .await
        .assert_error(400, CODE_NOT_VALID);
}

#[tokio::test]
async fn the_code_is_stored_only_as_an_hmac() {
    let app = testkit::app().await;
    let account = register(&app).await;
    let (typed, e164) = unique_number();
    enrol(&app, &account, &typed).await;
    let code = last_code(&e164).await;
    let stored = stored_item(&app, &account.uuid, "CODE").await.unwrap();
    let text = format!("{stored:?}");
    assert!(!text.contains(&code), "the code appears in {text}");
    assert_eq!(stored["hmac"].as_s().unwrap().len(), 64);
}

#[tokio::test]
async fn login_with_2fa_needs_the_texted_code() {
    let app = testkit::app().await;
    let account = register(&app).await;
    let phone = enable(&app, &account).await;

    let response = login(&app, &account.email).await;
    assert_eq!(response.status, 201, "{}", response.text);
    let data = &response.body["data"];
    assert_eq!(data["twoFactorRequired"], true);
    let mut keys: Vec<&str> = data
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    keys.sort();
    assert_eq!(
        keys,
        ["methods", "sessionUUID", "token", "twoFactorRequired"],
        "{data}"
    );
    assert!(data["sessionUUID"].is_string());
    let token = data["token"].as_str().unwrap();
    let claims = app.jwt.verify(token, app.clock.now()).unwrap();
    assert_eq!(claims.scope, Scope::TwoFactor);
    assert_eq!(codes_texted_to(&phone).await.len(), 2);
    let code = last_code(&phone).await;

    verify(&app, token, &wrong(&code))
        .await
        .assert_error(400, CODE_NOT_VALID);
    let response = verify(&app, token, &code).await;
    assert_eq!(response.status, 201, "{}", response.text);
    let data = &response.body["data"];
    assert_eq!(data["twoFactorRequired"], false);
    assert_eq!(data["expiresIn"], 900);
    assert_eq!(data["user"]["uuid"], account.uuid.as_str());
    assert!(data["refreshToken"].as_str().unwrap().len() >= 43);
    let full = data["token"].as_str().unwrap();
    assert_eq!(
        app.jwt.verify(full, app.clock.now()).unwrap().scope,
        Scope::Full
    );
    assert_eq!(get_user(&app, full, &account.uuid).await.status, 200);
    // The 2fa token is spent once its login is complete.
    verify(&app, token, &code)
        .await
        .assert_error(401, "Invalid token");
}

#[tokio::test]
async fn a_2fa_token_opens_only_verify_resend_and_removing_ones_own_2fa() {
    let app = testkit::app().await;
    let account = register(&app).await;
    enable(&app, &account).await;
    let token = two_factor_login(&app, &account).await;

    get_user(&app, &token, &account.uuid)
        .await
        .assert_error(401, "Invalid token");
    let halfway = Account {
        token: token.clone(),
        ..account.clone()
    };
    let (typed, _) = unique_number();
    enrol(&app, &halfway, &typed)
        .await
        .assert_error(401, "Invalid token");
    admin_remove(&app, &token, &account.uuid)
        .await
        .assert_error(401, "Invalid token");

    app.clock.advance(Duration::seconds(31));
    let response = resend(&app, &token, "").await;
    assert_eq!(response.status, 204, "{}", response.text);
}

#[tokio::test]
async fn five_wrong_codes_burn_the_code_until_a_new_one_is_sent() {
    let app = testkit::app().await;
    let account = register(&app).await;
    let phone = enable(&app, &account).await;
    let token = two_factor_login(&app, &account).await;
    let code = last_code(&phone).await;

    for _ in 0..5 {
        verify(&app, &token, &wrong(&code))
            .await
            .assert_error(400, CODE_NOT_VALID);
    }
    verify(&app, &token, &code)
        .await
        .assert_error(400, CODE_NOT_VALID);

    app.clock.advance(Duration::seconds(31));
    assert_eq!(resend(&app, &token, "").await.status, 204);
    let fresh = last_code(&phone).await;
    let response = verify(&app, &token, &fresh).await;
    assert_eq!(response.status, 201, "{}", response.text);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn fifty_concurrent_wrong_guesses_get_at_most_five_checks() {
    let app = testkit::app().await;
    let account = register(&app).await;
    let phone = enable(&app, &account).await;
    let token = two_factor_login(&app, &account).await;
    let code = last_code(&phone).await;
    let right: u32 = code.parse().unwrap();

    let mut guesses = JoinSet::new();
    for offset in 1..=50 {
        let (app, token) = (app.clone(), token.clone());
        let guess = format!("{:06}", (right + offset) % 1_000_000);
        guesses.spawn(async move { verify(&app, &token, &guess).await });
    }
    for response in guesses.join_all().await {
        response.assert_error(400, CODE_NOT_VALID);
    }
    assert_eq!(stored_attempts(&app, &account.uuid).await, 5);
    verify(&app, &token, &code)
        .await
        .assert_error(400, CODE_NOT_VALID);
    assert_eq!(stored_attempts(&app, &account.uuid).await, 5);
}

#[tokio::test]
async fn codes_expire_after_ten_minutes() {
    let app = testkit::app().await;
    let account = register(&app).await;
    let (typed, e164) = unique_number();
    enrol(&app, &account, &typed).await;
    app.clock.advance(Duration::minutes(10));
    // The access token (15 min) outlives the code.
    verify(&app, &account.token, &last_code(&e164).await)
        .await
        .assert_error(400, CODE_NOT_VALID);
}

#[tokio::test]
async fn resends_are_limited_to_one_per_30_seconds_and_five_per_hour() {
    let app = testkit::app().await;
    let mut account = register(&app).await;
    let (typed, e164) = unique_number();
    enrol(&app, &account, &typed).await;

    // The enrolment text is the first of the window.
    let response = resend(&app, &account.token, "").await;
    response.assert_error(429, "Too many requests. Try again later.");
    let retry_after: i64 = response.header("retry-after").unwrap().parse().unwrap();
    assert!((1..=30).contains(&retry_after), "{retry_after}");

    for query in [
        format!("?phoneNumber={e164}"),
        format!("?phoneNumber=%2B{}", &e164[1..]),
        String::new(),
        String::new(),
    ] {
        app.clock.advance(Duration::seconds(31));
        let response = resend(&app, &account.token, &query).await;
        assert_eq!(response.status, 204, "{query}: {}", response.text);
    }
    assert_eq!(codes_texted_to(&e164).await.len(), 5);

    app.clock.advance(Duration::seconds(31));
    let response = resend(&app, &account.token, "").await;
    response.assert_error(429, "Too many requests. Try again later.");
    let retry_after: i64 = response.header("retry-after").unwrap().parse().unwrap();
    // Until the enrolment text, sent 5 × 31 s (and a moment) ago, leaves the hour.
    assert!(
        (3600 - 5 * 31 - 5..=3600 - 5 * 31).contains(&retry_after),
        "{retry_after}"
    );

    // Enrolment obeys the same limits.
    enrol(&app, &account, &typed)
        .await
        .assert_error(429, "Too many requests. Try again later.");
    assert_eq!(codes_texted_to(&e164).await.len(), 5);

    // Access tokens last 15 minutes: log in again after the hour.
    app.clock.advance(Duration::minutes(61));
    let response = login(&app, &account.email).await;
    account.token = response.body["data"]["token"].as_str().unwrap().to_owned();
    let response = resend(&app, &account.token, "").await;
    assert_eq!(response.status, 204, "{}", response.text);
}

#[tokio::test]
async fn resend_goes_only_to_the_accounts_numbers() {
    let app = testkit::app().await;
    let account = register(&app).await;
    let response = resend(&app, &account.token, "").await;
    response.assert_error(400, "Validation failed.");
    assert!(response.body["error"]["fields"]["phoneNumber"].is_array());

    let verified = enable(&app, &account).await;
    let (typed, pending) = unique_number();
    app.clock.advance(Duration::seconds(31));
    assert_eq!(enrol(&app, &account, &typed).await.status, 201);
    let (_, stranger) = unique_number();
    app.clock.advance(Duration::seconds(31));
    let response = resend(&app, &account.token, &format!("?phoneNumber={stranger}")).await;
    response.assert_error(400, "Validation failed.");
    assert!(response.body["error"]["fields"]["phoneNumber"].is_array());
    let response = resend(&app, &account.token, "?phoneNumber=not-a-number").await;
    response.assert_error(400, "Validation failed.");
    assert!(codes_texted_to(&stranger).await.is_empty());

    // Verified and pending both exist: the verified number wins when none is given.
    assert_eq!(resend(&app, &account.token, "").await.status, 204);
    assert_eq!(codes_texted_to(&verified).await.len(), 2);
    app.clock.advance(Duration::seconds(31));
    let query = format!("?phoneNumber={pending}");
    assert_eq!(resend(&app, &account.token, &query).await.status, 204);
    assert_eq!(codes_texted_to(&pending).await.len(), 2);
}

#[tokio::test]
async fn pending_2fa_is_removed_without_a_code() {
    let app = testkit::app().await;
    let account = register(&app).await;
    let (typed, _) = unique_number();
    enrol(&app, &account, &typed).await;

    let response = remove_own(&app, &account.token, json!({})).await;
    assert_eq!(response.status, 204, "{}", response.text);
    let view = two_factor_view(&app, &account).await;
    assert_eq!(
        view,
        json!({
            "enabled": false,
            "mobileNumberLast4": null,
            "pending": false,
            "totp": false,
            "recoveryCodesLeft": 0
        })
    );
}

#[tokio::test]
async fn verified_2fa_is_removed_only_with_a_valid_code() {
    let app = testkit::app().await;
    let account = register(&app).await;
    let phone = enable(&app, &account).await;

    remove_own(&app, &account.token, json!({}))
        .await
        .assert_error(400, CODE_NOT_VALID);
    remove_own(&app, &account.token, json!({"code": "123456"}))
        .await
        .assert_error(400, CODE_NOT_VALID);
    assert_eq!(two_factor_view(&app, &account).await["enabled"], true);

    app.clock.advance(Duration::seconds(31));
    assert_eq!(resend(&app, &account.token, "").await.status, 204);
    let code = last_code(&phone).await;
    let body = json!({"code": code, "sessionUUID": "ignored"});
    let response = remove_own(&app, &account.token, body).await;
    assert_eq!(response.status, 204, "{}", response.text);
    assert_eq!(two_factor_view(&app, &account).await["enabled"], false);
    // Removing 2FA ends no session, and login no longer asks for a code.
    assert_eq!(
        login(&app, &account.email).await.body["data"]["twoFactorRequired"],
        false
    );
}

#[tokio::test]
async fn a_2fa_token_removes_2fa_with_the_login_code() {
    let app = testkit::app().await;
    let account = register(&app).await;
    let phone = enable(&app, &account).await;
    let token = two_factor_login(&app, &account).await;
    let code = last_code(&phone).await;
    let response = remove_own(&app, &token, json!({"code": code})).await;
    assert_eq!(response.status, 204, "{}", response.text);
    assert_eq!(two_factor_view(&app, &account).await["enabled"], false);
}

#[tokio::test]
async fn a_csr_admin_removes_another_users_2fa() {
    let app = testkit::app().await;
    let account = register(&app).await;
    let admin_token = accounts::admin(&app).await.token;
    enable(&app, &account).await;

    let response = admin_remove(&app, &admin_token, &account.uuid).await;
    assert_eq!(response.status, 204, "{}", response.text);
    assert_eq!(two_factor_view(&app, &account).await["enabled"], false);
    assert_eq!(
        login(&app, &account.email).await.body["data"]["twoFactorRequired"],
        false
    );
    // Nothing left to remove is still a success.
    assert_eq!(
        admin_remove(&app, &admin_token, &account.uuid).await.status,
        204
    );
}

#[tokio::test]
async fn only_a_csr_admin_may_remove_2fa_by_uuid() {
    let app = testkit::app().await;
    let account = register(&app).await;
    let other = register(&app).await;
    enable(&app, &account).await;
    let forbidden = "You do not have permission to disable two factor auth for another user.";
    admin_remove(&app, &other.token, &account.uuid)
        .await
        .assert_error(403, forbidden);
    admin_remove(&app, &account.token, &account.uuid)
        .await
        .assert_error(403, forbidden);
    admin_remove(&app, &other.token, "not-a-uuid")
        .await
        .assert_error(403, forbidden);
    assert_eq!(two_factor_view(&app, &account).await["enabled"], true);
    admin_remove(&app, "not-a-token", &account.uuid)
        .await
        .assert_error(401, "Invalid token");
}

#[tokio::test]
async fn admin_removal_of_an_unknown_or_deleted_user_is_404() {
    let app = testkit::app().await;
    let token = accounts::admin(&app).await.token;
    admin_remove(&app, &token, &UserId::new().to_string())
        .await
        .assert_error(404, "User UUID not found.");
    let gone = register(&app).await;
    shared::service::users::soft_delete(&app, gone.user_id(), &Default::default())
        .await
        .unwrap();
    admin_remove(&app, &token, &gone.uuid)
        .await
        .assert_error(404, "User UUID not found.");
    admin_remove(&app, &token, "{not-a-uuid}")
        .await
        .assert_error(400, "Invalid user UUID.");
}

#[tokio::test]
async fn enrolment_is_for_oneself_with_a_valid_number() {
    let app = testkit::app().await;
    let account = register(&app).await;
    let other = register(&app).await;
    let (typed, _) = unique_number();
    let someone_else = Account {
        uuid: other.uuid.clone(),
        ..account.clone()
    };
    enrol(&app, &someone_else, &typed)
        .await
        .assert_error(403, "No Access.");

    let response = two_factor(
        &app,
        request(
            "POST",
            &format!("/users/{}/pending-two-factor-auth", account.uuid),
        )
        .bearer(&account.token)
        .json(json!({"mobileNumber": "415-555-01234", "mobileCountryCode": 0}))
        .build(),
    )
    .await;
    response.assert_error(400, "Validation failed.");
    let fields = &response.body["error"]["fields"];
    assert!(fields["mobileNumber"].is_array() && fields["mobileCountryCode"].is_array());

    let response = two_factor(
        &app,
        request(
            "POST",
            &format!("/users/{}/pending-two-factor-auth", account.uuid),
        )
        .bearer(&account.token)
        .json(json!({"mobileNumber": typed, "mobileCountryCode": "1"}))
        .build(),
    )
    .await;
    response.assert_error(400, "Validation failed.");
    assert!(response.body["error"]["fields"]["mobileCountryCode"].is_array());

    let response = two_factor(
        &app,
        request("POST", "/users/not-a-uuid/pending-two-factor-auth")
            .bearer(&account.token)
            .json(json!({"mobileNumber": typed, "mobileCountryCode": 1}))
            .build(),
    )
    .await;
    response.assert_error(400, "Invalid user UUID.");
    assert_eq!(two_factor_view(&app, &account).await["pending"], false);
}

/// A provider that cannot be reached: the real SNS adapter aimed at a closed port.
async fn unreachable_provider() -> Arc<shared::notify::sns::SnsCodeSender> {
    let aws = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
    // An explicit endpoint on the service config beats AWS_ENDPOINT_URL.
    let config = aws_sdk_sns::config::Builder::from(&aws).endpoint_url("http://127.0.0.1:9");
    Arc::new(shared::notify::sns::SnsCodeSender::new(config))
}

#[tokio::test]
async fn a_provider_failure_is_the_seed_400_and_writes_nothing() {
    let mut app = testkit::app().await;
    let account = register(&app).await;
    let phone = enable(&app, &account).await;
    let before = get_user(&app, &account.token, &account.uuid).await.body;
    app.sms = unreachable_provider().await;

    let (typed, _) = unique_number();
    app.clock.advance(Duration::seconds(31));
    enrol(&app, &account, &typed)
        .await
        .assert_error(400, PROVIDER_ERROR);
    login(&app, &account.email)
        .await
        .assert_error(400, PROVIDER_ERROR);
    app.clock.advance(Duration::seconds(31));
    resend(&app, &account.token, "")
        .await
        .assert_error(400, PROVIDER_ERROR);

    assert_eq!(
        get_user(&app, &account.token, &account.uuid).await.body,
        before
    );
    // Failed texts do not count toward the limits: only the enrolment text does.
    let log = stored_item(&app, &account.uuid, "SMSLIMIT").await.unwrap();
    assert_eq!(log["sentAt"].as_l().unwrap().len(), 1);
    assert_eq!(codes_texted_to(&phone).await.len(), 1);
}

#[tokio::test]
async fn the_two_factor_events_reach_their_routes() {
    let app = testkit::app().await;
    let account = register(&app).await;
    let response = two_factor(
        &app,
        testkit::event("two-factor-pending", &account.token, &account.uuid),
    )
    .await;
    assert_eq!(response.status, 201, "{}", response.text);
    app.clock.advance(Duration::seconds(31));
    let response = two_factor(
        &app,
        testkit::event("two-factor-resend", &account.token, &account.uuid),
    )
    .await;
    assert_eq!(response.status, 204, "{}", response.text);
    let response = two_factor(
        &app,
        testkit::event("two-factor-remove-own", &account.token, &account.uuid),
    )
    .await;
    assert_eq!(response.status, 204, "{}", response.text);
    let response = two_factor(
        &app,
        testkit::event("two-factor-admin-remove", &account.token, &account.uuid),
    )
    .await;
    response.assert_error(
        403,
        "You do not have permission to disable two factor auth for another user.",
    );
}

async fn sms_log_len(app: &App, uuid: &str) -> usize {
    stored_item(app, uuid, "SMSLIMIT")
        .await
        .map_or(0, |log| log["sentAt"].as_l().unwrap().len())
}

#[tokio::test]
async fn enrolment_obeys_the_sms_limits_and_a_refused_one_texts_and_stores_nothing() {
    let app = testkit::app().await;
    let account = register(&app).await;
    let (typed, e164) = unique_number();
    assert_eq!(enrol(&app, &account, &typed).await.status, 201);
    let code = stored_item(&app, &account.uuid, "CODE").await.unwrap();

    // A second number inside 30 s: refused before anything is texted or stored.
    let (other_typed, other) = unique_number();
    let response = enrol(&app, &account, &other_typed).await;
    response.assert_error(429, "Too many requests. Try again later.");
    let retry_after: i64 = response.header("retry-after").unwrap().parse().unwrap();
    assert!((1..=30).contains(&retry_after), "{retry_after}");
    assert!(codes_texted_to(&other).await.is_empty());
    assert_eq!(codes_texted_to(&e164).await.len(), 1);
    assert_eq!(
        stored_item(&app, &account.uuid, "CODE").await.unwrap(),
        code
    );
    assert_eq!(sms_log_len(&app, &account.uuid).await, 1);
    let view = two_factor_view(&app, &account).await;
    assert_eq!(view["mobileNumberLast4"], &e164[e164.len() - 4..]);

    // Five texts an hour, enrolments among them.
    for _ in 0..4 {
        app.clock.advance(Duration::seconds(31));
        assert_eq!(enrol(&app, &account, &other_typed).await.status, 201);
    }
    app.clock.advance(Duration::seconds(31));
    let response = enrol(&app, &account, &typed).await;
    response.assert_error(429, "Too many requests. Try again later.");
    let retry_after: i64 = response.header("retry-after").unwrap().parse().unwrap();
    assert!(retry_after > 30, "{retry_after}");
    assert_eq!(codes_texted_to(&other).await.len(), 4);
    assert_eq!(sms_log_len(&app, &account.uuid).await, 5);
}

#[tokio::test]
async fn a_2fa_login_inside_30_seconds_of_a_live_code_texts_nothing_and_that_code_works() {
    let app = testkit::app().await;
    let account = register(&app).await;
    let phone = enable(&app, &account).await;
    let first = two_factor_login(&app, &account).await;
    assert_eq!(codes_texted_to(&phone).await.len(), 2);
    let code = last_code(&phone).await;

    app.clock.advance(Duration::seconds(10));
    let response = login(&app, &account.email).await;
    assert_eq!(response.status, 201, "{}", response.text);
    let data = &response.body["data"];
    assert_eq!(data["twoFactorRequired"], true);
    assert!(data["token"].is_string() && data["sessionUUID"].is_string());
    assert_eq!(codes_texted_to(&phone).await.len(), 2);
    assert_eq!(sms_log_len(&app, &account.uuid).await, 2);

    // The live code completes the second login; the first one's token was not used.
    let second = data["token"].as_str().unwrap();
    let response = verify(&app, second, &code).await;
    assert_eq!(response.status, 201, "{}", response.text);
    assert_ne!(first, second);
}

#[tokio::test]
async fn past_five_texts_an_hour_a_2fa_login_texts_nothing_but_answers_the_same() {
    let app = testkit::app().await;
    let account = register(&app).await;
    let phone = enable(&app, &account).await;
    for _ in 0..4 {
        app.clock.advance(Duration::seconds(31));
        two_factor_login(&app, &account).await;
    }
    assert_eq!(codes_texted_to(&phone).await.len(), 5);

    app.clock.advance(Duration::seconds(31));
    let response = login(&app, &account.email).await;
    assert_eq!(response.status, 201, "{}", response.text);
    let data = &response.body["data"];
    assert_eq!(data["twoFactorRequired"], true);
    let mut keys: Vec<&str> = data
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    keys.sort();
    assert_eq!(
        keys,
        ["methods", "sessionUUID", "token", "twoFactorRequired"]
    );
    assert_eq!(data["methods"], json!(["sms"]));
    assert_eq!(codes_texted_to(&phone).await.len(), 5);
    assert_eq!(sms_log_len(&app, &account.uuid).await, 5);
}

#[tokio::test]
async fn numbers_off_the_allow_list_are_a_field_error_and_texted_nothing() {
    let app = testkit::app().await;
    let account = register(&app).await;
    let suffix = &unique_number().1[5..];
    // Jamaica (+1 876) is a NANP area code of another country; +44 is off the allow-list.
    for (typed, country, e164) in [
        (
            format!("876-{}-{}", &suffix[..3], &suffix[3..]),
            1,
            format!("+1876{suffix}"),
        ),
        (
            format!("415-{}-{}", &suffix[..3], &suffix[3..]),
            44,
            format!("+44415{suffix}"),
        ),
    ] {
        let response = two_factor(
            &app,
            request(
                "POST",
                &format!("/users/{}/pending-two-factor-auth", account.uuid),
            )
            .bearer(&account.token)
            .json(json!({"mobileNumber": typed, "mobileCountryCode": country}))
            .build(),
        )
        .await;
        response.assert_error(400, "Validation failed.");
        let fields = response.body["error"]["fields"].as_object().unwrap();
        assert_eq!(fields.keys().collect::<Vec<_>>(), ["mobileCountryCode"]);
        assert!(codes_texted_to(&e164).await.is_empty());
    }
    assert_eq!(two_factor_view(&app, &account).await["pending"], false);
    assert!(stored_item(&app, &account.uuid, "SMSLIMIT").await.is_none());
    assert!(stored_item(&app, &account.uuid, "CODE").await.is_none());
}

#[tokio::test]
async fn past_the_daily_sms_cap_texts_are_refused_as_the_provider_error() {
    let app = testkit::app_with(|config| config.sms_daily_cap = 2).await;
    let mut accounts_and_numbers = Vec::new();
    for _ in 0..3 {
        accounts_and_numbers.push((register(&app).await, unique_number()));
    }
    for (account, (typed, _)) in &accounts_and_numbers[..2] {
        assert_eq!(enrol(&app, account, typed).await.status, 201);
    }
    let (third, (typed, e164)) = &accounts_and_numbers[2];
    enrol(&app, third, typed)
        .await
        .assert_error(400, PROVIDER_ERROR);
    assert!(codes_texted_to(e164).await.is_empty());
    assert_eq!(two_factor_view(&app, third).await["pending"], false);
    assert_eq!(sms_log_len(&app, &third.uuid).await, 0);

    // One counter item per UTC day, at the cap.
    let store = testkit::dynamo_store(&app).await;
    let day = app.clock.now().date().to_string();
    let counter = store
        .client
        .get_item()
        .table_name(&store.table)
        .set_key(Some(key(format!("SMSDAY#{day}"), "COUNT")))
        .consistent_read(true)
        .send()
        .await
        .unwrap()
        .item
        .expect("the day's counter");
    assert_eq!(counter["sent"].as_n().unwrap(), "2");
}
