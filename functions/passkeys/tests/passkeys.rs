//! Passkeys through the `passkeys` handler, against DynamoDB Local and moto, with a software
//! authenticator playing the phone: registration, discoverable login, and each way a
//! ceremony must fail with nothing written.

mod authenticator;

use authenticator::{Algorithm, Authenticator, ORIGIN};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Value, json};
use shared::App;
use shared::domain::user::Status;
use shared::service::users;
use shared::testkit::accounts::{self, Account, PASSWORD};
use shared::testkit::iam::take_requests;
use shared::testkit::{self, TestResponse, request};

async fn call(app: &App, req: lambda_http::Request) -> TestResponse {
    TestResponse::from(passkeys::handle(app, req).await)
}

async fn registration_options(app: &App, account: &Account) -> TestResponse {
    call(
        app,
        request(
            "POST",
            &format!("/users/{}/passkeys/registration-options", account.uuid),
        )
        .bearer(&account.token)
        .json(json!({ "currentPassword": PASSWORD }))
        .build(),
    )
    .await
}

async fn finish_registration(app: &App, account: &Account, body: Value) -> TestResponse {
    call(
        app,
        request("POST", &format!("/users/{}/passkeys", account.uuid))
            .bearer(&account.token)
            .json(body)
            .build(),
    )
    .await
}

/// Options, then the authenticator's answer: the 201 (or the refusal) of the second step.
async fn register(app: &App, account: &Account, authenticator: &mut Authenticator) -> TestResponse {
    let options = registration_options(app, account).await;
    assert_eq!(options.status, 200, "{}", options.text);
    let credential = authenticator.register(&options.body["data"]["publicKey"]);
    finish_registration(
        app,
        account,
        json!({ "ceremonyUUID": options.body["data"]["ceremonyUUID"], "credential": credential }),
    )
    .await
}

async fn login_options(app: &App) -> Value {
    let options = call(
        app,
        request("POST", "/users/sessions/passkey-options")
            .json(json!({}))
            .build(),
    )
    .await;
    assert_eq!(options.status, 200, "{}", options.text);
    options.body["data"].clone()
}

async fn finish_login(app: &App, ceremony: &Value, credential: Value) -> TestResponse {
    call(
        app,
        request("POST", "/users/sessions/passkey")
            .json(json!({ "ceremonyUUID": ceremony, "credential": credential }))
            .build(),
    )
    .await
}

async fn login(app: &App, authenticator: &mut Authenticator) -> TestResponse {
    let options = login_options(app).await;
    let credential = authenticator.login(&options["publicKey"]);
    finish_login(app, &options["ceremonyUUID"], credential).await
}

async fn list(app: &App, token: &str, uuid: &str) -> TestResponse {
    call(
        app,
        request("GET", &format!("/users/{uuid}/passkeys"))
            .bearer(token)
            .build(),
    )
    .await
}

async fn passkeys_of(app: &App, account: &Account) -> Vec<Value> {
    let listed = list(app, &account.token, &account.uuid).await;
    assert_eq!(listed.status, 200, "{}", listed.text);
    listed.body["data"].as_array().cloned().unwrap_or_default()
}

fn algorithms(options: &Value) -> Vec<i64> {
    options["pubKeyCredParams"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["alg"].as_i64().unwrap())
        .collect()
}

#[tokio::test]
async fn a_passkey_registers_and_then_logs_in_without_a_password() {
    let app = testkit::app().await;
    let account = accounts::register(&app, "passkey").await;
    let mut phone = Authenticator::new(Algorithm::Es256);

    let options = registration_options(&app, &account).await;
    let public_key = &options.body["data"]["publicKey"];
    assert_eq!(public_key["attestation"], "none");
    assert_eq!(public_key["rp"]["id"], "localhost");
    assert_eq!(
        public_key["authenticatorSelection"]["userVerification"],
        "required"
    );
    assert_eq!(
        public_key["authenticatorSelection"]["residentKey"],
        "required"
    );
    let algs = algorithms(public_key);
    assert!(
        algs.contains(&-7) && algs.contains(&-257) && algs.contains(&-8),
        "{algs:?}"
    );
    assert_eq!(options.header("cache-control"), Some("no-store"));

    let credential = phone.register(public_key);
    let registered = finish_registration(
        &app,
        &account,
        json!({
            "ceremonyUUID": options.body["data"]["ceremonyUUID"],
            "credential": credential,
            "name": "Ada's phone",
        }),
    )
    .await;
    assert_eq!(registered.status, 201, "{}", registered.text);
    let passkey = &registered.body["data"];
    let mut keys: Vec<&str> = passkey
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    keys.sort();
    assert_eq!(
        keys,
        ["backedUp", "createdAt", "lastUsedAt", "name", "uuid"]
    );
    assert_eq!(
        (
            &passkey["name"],
            &passkey["backedUp"],
            &passkey["lastUsedAt"]
        ),
        (&json!("Ada's phone"), &json!(true), &Value::Null)
    );
    let notices = testkit::emails_to(&account.email).await;
    assert!(
        notices
            .iter()
            .any(|mail| mail["subject"] == "A passkey was added to your Kuri account"),
        "{notices:?}"
    );

    let options = login_options(&app).await;
    let request_options = &options["publicKey"];
    assert_eq!(request_options["userVerification"], "required");
    assert!(
        request_options["allowCredentials"]
            .as_array()
            .is_none_or(Vec::is_empty),
        "discoverable login names no credential: {request_options}"
    );
    let logged_in =
        finish_login(&app, &options["ceremonyUUID"], phone.login(request_options)).await;
    assert_eq!(logged_in.status, 201, "{}", logged_in.text);
    let body = &logged_in.body["data"];
    assert_eq!(body["twoFactorRequired"], false);
    assert_eq!(body["user"]["uuid"], account.uuid.as_str());
    assert!(body["refreshToken"].is_string() && body["expiresIn"] == 900);
    assert_ne!(body["sessionUUID"], account.session.as_str());

    let token = body["token"].as_str().unwrap();
    let listed = list(&app, token, &account.uuid).await;
    assert_eq!(
        listed.status, 200,
        "the new session's token works: {}",
        listed.text
    );
    assert!(listed.body["data"][0]["lastUsedAt"].is_string());
}

#[tokio::test]
async fn ed25519_and_rs256_passkeys_register_and_log_in() {
    let app = testkit::app().await;
    let account = accounts::register(&app, "algs").await;
    for algorithm in [Algorithm::Ed25519, Algorithm::Rs256] {
        let mut key = Authenticator::new(algorithm);
        let registered = register(&app, &account, &mut key).await;
        assert_eq!(registered.status, 201, "{}", registered.text);
        let logged_in = login(&app, &mut key).await;
        assert_eq!(logged_in.status, 201, "{}", logged_in.text);
        assert_eq!(
            logged_in.body["data"]["user"]["uuid"],
            account.uuid.as_str()
        );
    }
    assert_eq!(passkeys_of(&app, &account).await.len(), 2);
}

#[tokio::test]
async fn a_replayed_ceremony_is_refused_and_writes_nothing() {
    let app = testkit::app().await;
    let account = accounts::register(&app, "replay").await;
    let mut phone = Authenticator::new(Algorithm::Es256);
    let options = registration_options(&app, &account).await;
    let body = json!({
        "ceremonyUUID": options.body["data"]["ceremonyUUID"],
        "credential": phone.register(&options.body["data"]["publicKey"]),
    });
    assert_eq!(
        finish_registration(&app, &account, body.clone())
            .await
            .status,
        201
    );
    let mut other = Authenticator::new(Algorithm::Es256);
    let replayed = json!({
        "ceremonyUUID": options.body["data"]["ceremonyUUID"],
        "credential": other.register(&options.body["data"]["publicKey"]),
    });
    finish_registration(&app, &account, replayed)
        .await
        .assert_error(400, "Passkey could not be verified.");
    assert_eq!(passkeys_of(&app, &account).await.len(), 1);

    let options = login_options(&app).await;
    let assertion = phone.login(&options["publicKey"]);
    let first = finish_login(&app, &options["ceremonyUUID"], assertion.clone()).await;
    assert_eq!(first.status, 201, "{}", first.text);
    finish_login(&app, &options["ceremonyUUID"], assertion)
        .await
        .assert_error(401, "Passkey could not be verified.");
}

#[tokio::test]
async fn a_wrong_origin_or_rp_id_is_refused_at_registration_and_login() {
    let app = testkit::app().await;
    let account = accounts::register(&app, "origin").await;
    for (origin, rp_id) in [
        ("https://evil.example", "localhost"),
        (ORIGIN, "evil.example"),
    ] {
        let mut key = Authenticator::new(Algorithm::Es256);
        key.origin = origin.to_owned();
        key.rp_id = rp_id.to_owned();
        register(&app, &account, &mut key)
            .await
            .assert_error(400, "Passkey could not be verified.");
    }
    assert!(passkeys_of(&app, &account).await.is_empty());

    let mut phone = Authenticator::new(Algorithm::Es256);
    assert_eq!(register(&app, &account, &mut phone).await.status, 201);
    for (origin, rp_id) in [
        ("https://evil.example", "localhost"),
        (ORIGIN, "evil.example"),
    ] {
        phone.origin = origin.to_owned();
        phone.rp_id = rp_id.to_owned();
        login(&app, &mut phone)
            .await
            .assert_error(401, "Passkey could not be verified.");
    }
    assert_eq!(
        passkeys_of(&app, &account).await[0]["lastUsedAt"],
        Value::Null
    );
}

#[tokio::test]
async fn a_tampered_signature_or_missing_user_verification_is_refused() {
    let app = testkit::app().await;
    let account = accounts::register(&app, "tamper").await;
    let mut unverified = Authenticator::new(Algorithm::Es256);
    unverified.user_verified = false;
    register(&app, &account, &mut unverified)
        .await
        .assert_error(400, "Passkey could not be verified.");
    assert!(passkeys_of(&app, &account).await.is_empty());

    let mut phone = Authenticator::new(Algorithm::Es256);
    assert_eq!(register(&app, &account, &mut phone).await.status, 201);
    phone.tamper_signature = true;
    login(&app, &mut phone)
        .await
        .assert_error(401, "Passkey could not be verified.");
    phone.tamper_signature = false;
    phone.user_verified = false;
    login(&app, &mut phone)
        .await
        .assert_error(401, "Passkey could not be verified.");
    assert_eq!(
        passkeys_of(&app, &account).await[0]["lastUsedAt"],
        Value::Null
    );
}

#[tokio::test]
async fn a_counter_going_backwards_or_a_changed_backup_eligibility_is_refused() {
    let app = testkit::app().await;
    let account = accounts::register(&app, "counter").await;
    let mut key = Authenticator::new(Algorithm::Es256);
    key.counter = 5;
    key.backup_eligible = false;
    key.backed_up = false;
    assert_eq!(register(&app, &account, &mut key).await.status, 201);
    assert_eq!(login(&app, &mut key).await.status, 201);
    let used = passkeys_of(&app, &account).await[0]["lastUsedAt"].clone();

    key.counter = 2;
    login(&app, &mut key)
        .await
        .assert_error(401, "Passkey could not be verified.");
    key.counter = 100;
    key.backup_eligible = true;
    login(&app, &mut key)
        .await
        .assert_error(401, "Passkey could not be verified.");
    assert_eq!(passkeys_of(&app, &account).await[0]["lastUsedAt"], used);

    key.backup_eligible = false;
    assert_eq!(
        login(&app, &mut key).await.status,
        201,
        "a higher counter is fine"
    );
}

#[tokio::test]
async fn one_credential_cannot_be_registered_twice() {
    let app = testkit::app().await;
    let owner = accounts::register(&app, "owner").await;
    let thief = accounts::register(&app, "thief").await;
    let mut phone = Authenticator::new(Algorithm::Es256);
    assert_eq!(register(&app, &owner, &mut phone).await.status, 201);

    register(&app, &thief, &mut phone)
        .await
        .assert_error(409, "This passkey is already registered.");
    register(&app, &owner, &mut phone)
        .await
        .assert_error(409, "This passkey is already registered.");
    assert!(passkeys_of(&app, &thief).await.is_empty());
    assert_eq!(passkeys_of(&app, &owner).await.len(), 1);
}

#[tokio::test]
async fn a_passkey_login_of_a_two_factor_user_needs_no_second_factor() {
    let app = testkit::app().await;
    let account = accounts::register(&app, "twofactor").await;
    let mut phone = Authenticator::new(Algorithm::Es256);
    assert_eq!(register(&app, &account, &mut phone).await.status, 201);
    users::update(&app, account.user_id(), None, |user| {
        user.mobile = Some("+15555550123".into());
        Ok(())
    })
    .await
    .unwrap();

    let logged_in = login(&app, &mut phone).await;
    assert_eq!(logged_in.status, 201, "{}", logged_in.text);
    assert_eq!(logged_in.body["data"]["twoFactorRequired"], false);
    assert!(logged_in.body["data"]["refreshToken"].is_string());
    assert!(testkit::sms_to("+15555550123").await.is_empty());
}

#[tokio::test]
async fn a_passkey_login_neither_minds_nor_resets_the_login_lockout() {
    let app = testkit::app().await;
    let account = accounts::register(&app, "lockout").await;
    let mut phone = Authenticator::new(Algorithm::Es256);
    assert_eq!(register(&app, &account, &mut phone).await.status, 201);
    for _ in 0..5 {
        let _ = accounts::login(&app, &account.email, "wrong password").await;
    }
    assert!(matches!(
        accounts::login(&app, &account.email, PASSWORD).await,
        Err(shared::ApiError::TooManyRequests { .. })
    ));

    assert_eq!(login(&app, &mut phone).await.status, 201);
    assert!(matches!(
        accounts::login(&app, &account.email, PASSWORD).await,
        Err(shared::ApiError::TooManyRequests { .. })
    ));
}

#[tokio::test]
async fn an_inactive_or_deleted_users_passkey_cannot_log_in() {
    let app = testkit::app().await;
    let account = accounts::register(&app, "inactive").await;
    let mut phone = Authenticator::new(Algorithm::Es256);
    assert_eq!(register(&app, &account, &mut phone).await.status, 201);

    users::update(&app, account.user_id(), None, |user| {
        user.status = Status::Inactive;
        Ok(())
    })
    .await
    .unwrap();
    login(&app, &mut phone)
        .await
        .assert_error(401, "Passkey could not be verified.");

    users::soft_delete(&app, account.user_id(), &Default::default())
        .await
        .unwrap();
    login(&app, &mut phone)
        .await
        .assert_error(401, "Passkey could not be verified.");
    // Deleting the user removed the passkey and its claim: the credential is free again.
    let next = accounts::register(&app, "next-owner").await;
    assert_eq!(register(&app, &next, &mut phone).await.status, 201);
}

#[tokio::test]
async fn registering_needs_the_current_password_and_a_wrong_one_counts_as_a_failed_login() {
    let app = testkit::app().await;
    let account = accounts::register(&app, "password").await;
    let path = format!("/users/{}/passkeys/registration-options", account.uuid);
    let missing = call(
        &app,
        request("POST", &path)
            .bearer(&account.token)
            .json(json!({}))
            .build(),
    )
    .await;
    assert_eq!(missing.status, 400, "{}", missing.text);
    assert!(missing.body["error"]["fields"]["currentPassword"].is_array());

    for _ in 0..5 {
        call(
            &app,
            request("POST", &path)
                .bearer(&account.token)
                .json(json!({ "currentPassword": "not my password" }))
                .build(),
        )
        .await
        .assert_error(401, "Password is incorrect.");
    }
    assert!(matches!(
        accounts::login(&app, &account.email, PASSWORD).await,
        Err(shared::ApiError::TooManyRequests { .. })
    ));
}

#[tokio::test]
async fn registration_is_for_oneself_and_capped_at_ten_passkeys() {
    let app = testkit::app().await;
    let account = accounts::register(&app, "cap").await;
    let admin = accounts::admin(&app).await;
    call(
        &app,
        request(
            "POST",
            &format!("/users/{}/passkeys/registration-options", account.uuid),
        )
        .bearer(&admin.token)
        .json(json!({ "currentPassword": PASSWORD }))
        .build(),
    )
    .await
    .assert_error(403, "No Access.");

    for _ in 0..10 {
        let mut key = Authenticator::new(Algorithm::Es256);
        assert_eq!(register(&app, &account, &mut key).await.status, 201);
    }
    registration_options(&app, &account)
        .await
        .assert_error(409, "Too many passkeys.");
    assert_eq!(passkeys_of(&app, &account).await.len(), 10);
}

/// Issue 14's budget: a route that reads the caller costs the authenticating read alone, so
/// one's own list is that read and the query of the passkeys; a csrAdmin's look at someone
/// else's reads that user too (to answer 404 for an unknown or deleted one).
#[tokio::test]
async fn listing_ones_own_passkeys_reads_the_caller_only_once() {
    let app = testkit::app().await;
    let account = accounts::register(&app, "budget").await;
    let admin = accounts::admin(&app).await;
    let mut key = Authenticator::new(Algorithm::Es256);
    assert_eq!(register(&app, &account, &mut key).await.status, 201);

    take_requests();
    let own = list(&app, &account.token, &account.uuid).await;
    assert_eq!(own.status, 200, "{}", own.text);
    assert_eq!(own.body["data"].as_array().map(Vec::len), Some(1));
    assert_eq!(take_requests(), ["DynamoDB:BatchGetItem", "DynamoDB:Query"]);

    let by_admin = list(&app, &admin.token, &account.uuid).await;
    assert_eq!(by_admin.status, 200, "{}", by_admin.text);
    assert_eq!(by_admin.body["data"], own.body["data"]);
    assert_eq!(
        take_requests(),
        [
            "DynamoDB:BatchGetItem",
            "DynamoDB:GetItem",
            "DynamoDB:Query"
        ]
    );
}

#[tokio::test]
async fn an_expired_ceremony_is_refused() {
    let app = testkit::app().await;
    let account = accounts::register(&app, "expired").await;
    let mut phone = Authenticator::new(Algorithm::Es256);
    let options = registration_options(&app, &account).await;
    let credential = phone.register(&options.body["data"]["publicKey"]);
    app.clock
        .advance(time::Duration::minutes(5) + time::Duration::seconds(1));
    finish_registration(
        &app,
        &account,
        json!({ "ceremonyUUID": options.body["data"]["ceremonyUUID"], "credential": credential }),
    )
    .await
    .assert_error(400, "Passkey could not be verified.");
    assert!(passkeys_of(&app, &account).await.is_empty());
}

#[tokio::test]
async fn bad_answers_are_field_errors_or_refusals() {
    let app = testkit::app().await;
    let account = accounts::register(&app, "bad").await;
    let missing = finish_registration(&app, &account, json!({})).await;
    assert_eq!(missing.status, 400, "{}", missing.text);
    let fields = &missing.body["error"]["fields"];
    assert!(fields["ceremonyUUID"].is_array() && fields["credential"].is_array());

    let options = registration_options(&app, &account).await;
    let ceremony = &options.body["data"]["ceremonyUUID"];
    let long_name = finish_registration(
        &app,
        &account,
        json!({ "ceremonyUUID": ceremony, "credential": {}, "name": "x".repeat(65) }),
    )
    .await;
    assert!(
        long_name.body["error"]["fields"]["name"].is_array(),
        "{}",
        long_name.text
    );
    finish_registration(
        &app,
        &account,
        json!({ "ceremonyUUID": ceremony, "credential": { "id": "garbage" } }),
    )
    .await
    .assert_error(400, "Passkey could not be verified.");
    finish_login(
        &app,
        &json!(uuid::Uuid::new_v4()),
        json!({ "id": "garbage" }),
    )
    .await
    .assert_error(401, "Passkey could not be verified.");
}

#[tokio::test]
async fn the_list_shows_no_key_material_and_admins_may_list_and_remove() {
    let app = testkit::app().await;
    let account = accounts::register(&app, "list").await;
    let stranger = accounts::register(&app, "stranger").await;
    let admin = accounts::admin(&app).await;
    let mut first = Authenticator::new(Algorithm::Es256);
    let mut second = Authenticator::new(Algorithm::Ed25519);
    assert_eq!(register(&app, &account, &mut first).await.status, 201);
    let newest = register(&app, &account, &mut second).await;

    let listed = list(&app, &account.token, &account.uuid).await;
    assert_eq!(listed.status, 200, "{}", listed.text);
    let items = listed.body["data"].as_array().unwrap();
    assert_eq!(items.len(), 2);
    assert_eq!(
        items[0]["uuid"], newest.body["data"]["uuid"],
        "newest first"
    );
    for key in [&first, &second] {
        for secret in [key.credential_id.clone(), key.public_key_bytes()] {
            assert!(!listed.text.contains(&URL_SAFE_NO_PAD.encode(&secret)));
        }
    }
    for item in items {
        assert_eq!(item.as_object().unwrap().len(), 5, "{item}");
    }

    list(&app, &stranger.token, &account.uuid)
        .await
        .assert_error(403, "No Access.");
    assert_eq!(list(&app, &admin.token, &account.uuid).await.status, 200);
    list(&app, &admin.token, &uuid::Uuid::new_v4().to_string())
        .await
        .assert_error(404, "This user does not exist.");

    let remove = |token: &str, passkey: &str| {
        request(
            "DELETE",
            &format!("/users/{}/passkeys/{passkey}", account.uuid),
        )
        .bearer(token)
        .build()
    };
    let uuid = items[0]["uuid"].as_str().unwrap().to_owned();
    call(&app, remove(&stranger.token, &uuid))
        .await
        .assert_error(403, "No Access.");
    call(
        &app,
        remove(&account.token, &uuid::Uuid::new_v4().to_string()),
    )
    .await
    .assert_error(404, "Passkey not found.");
    assert_eq!(call(&app, remove(&admin.token, &uuid)).await.status, 204);
    call(&app, remove(&account.token, &uuid))
        .await
        .assert_error(404, "Passkey not found.");
    login(&app, &mut second)
        .await
        .assert_error(401, "Passkey could not be verified.");
    assert_eq!(passkeys_of(&app, &account).await.len(), 1);
}

#[tokio::test]
async fn a_passkey_login_records_login_succeeded_by_the_user_with_its_session() {
    use shared::domain::ListStart;
    use shared::domain::security_event::{Actor, EventType};

    let app = testkit::app().await;
    let account = accounts::register(&app, "passkey-event").await;
    let mut phone = Authenticator::new(Algorithm::Es256);
    assert_eq!(register(&app, &account, &mut phone).await.status, 201);

    let logged_in = login(&app, &mut phone).await;
    assert_eq!(logged_in.status, 201, "{}", logged_in.text);

    let events = app
        .events
        .list_events(account.user_id(), ListStart::Skip(0), 10, app.clock.now())
        .await
        .unwrap();
    let kinds: Vec<EventType> = events.iter().map(|e| e.kind).collect();
    assert_eq!(
        kinds,
        [
            EventType::LoginSucceeded,
            EventType::PasskeyAdded,
            EventType::UserRegistered
        ]
    );
    let actor = Actor {
        id: account.user_id(),
        admin: false,
    };
    assert_eq!(events[0].actor, Some(actor));
    assert_eq!(
        events[0].session_id.map(|s| s.to_string()),
        logged_in.body["data"]["sessionUUID"]
            .as_str()
            .map(str::to_owned)
    );
}
