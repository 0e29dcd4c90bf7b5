//! A user's sessions: the list, signing out everywhere else and the per-user cap, against
//! DynamoDB Local.

use serde_json::{Value, json};
use shared::App;
use shared::domain::session::{Session, Stage};
use shared::domain::user::User;
use shared::service::sessions as session_service;
use shared::testkit;
use shared::testkit::accounts::{self, Account, PASSWORD};
use shared::testkit::{TestResponse, request};
use time::Duration;

const SESSION_GONE: &str = "User sessionUUID not found.  JWT cannot be refreshed.";

async fn call(app: &App, req: lambda_http::Request) -> TestResponse {
    TestResponse::from(sessions::handle(app, req).await)
}

async fn list(app: &App, token: &str, uuid: &str) -> TestResponse {
    call(
        app,
        request("GET", &format!("/users/{uuid}/sessions"))
            .bearer(token)
            .build(),
    )
    .await
}

async fn end_others(app: &App, token: &str, uuid: &str) -> TestResponse {
    call(
        app,
        request("DELETE", &format!("/users/{uuid}/sessions"))
            .bearer(token)
            .build(),
    )
    .await
}

async fn refresh(app: &App, account: &Account, body: Value) -> TestResponse {
    call(
        app,
        request(
            "PUT",
            &format!("/users/sessions/{}/refresh", account.session),
        )
        .header("user-agent", "Kuri/4.3.0 (Android 14)")
        .json(body)
        .build(),
    )
    .await
}

async fn get_user(app: &App, token: &str, uuid: &str) -> TestResponse {
    TestResponse::from(users::handle(app, accounts::get_user_request(token, uuid)).await)
}

/// A login through the handler, sending `user_agent`.
async fn login_as(app: &App, account: &Account, user_agent: &str) -> Account {
    let response = call(
        app,
        request("POST", "/users/sessions")
            .header("user-agent", user_agent)
            .json(json!({"email": account.email, "password": PASSWORD}))
            .build(),
    )
    .await;
    assert_eq!(response.status, 201, "{}", response.text);
    let data = &response.body["data"];
    Account {
        token: data["token"].as_str().unwrap().to_owned(),
        refresh_token: data["refreshToken"].as_str().unwrap().to_owned(),
        session: data["sessionUUID"].as_str().unwrap().to_owned(),
        body: data.clone(),
        ..account.clone()
    }
}

async fn stored_user(app: &App, account: &Account) -> User {
    app.users
        .get_user(account.user_id())
        .await
        .unwrap()
        .unwrap()
}

/// A session of the account still waiting for its 2FA code, and its `2fa`-scope token.
async fn waiting_for_code(app: &App, account: &Account) -> (Session, String) {
    let user = stored_user(app, account).await;
    let session = Session::new(
        user.id,
        user.session_epoch,
        Stage::TwoFactor,
        app.clock.now(),
    );
    app.sessions.create_session(&session).await.unwrap();
    let token = session_service::two_factor_token(app, &user, &session);
    (session, token)
}

/// `POST /users/sessions/verify` with a code nobody texted: 400 while the token's session
/// waits for its code, 401 once it ended.
async fn verify_code(app: &App, token: &str) -> TestResponse {
    call(
        app,
        request("POST", "/users/sessions/verify")
            .bearer(token)
            .json(json!({"code": "123456"}))
            .build(),
    )
    .await
}

fn ids(listed: &TestResponse) -> Vec<&str> {
    listed.body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|item| item["uuid"].as_str().unwrap())
        .collect()
}

#[tokio::test]
async fn the_list_shows_the_callers_session_as_current_and_never_a_token() {
    let app = testkit::app().await;
    let registered = accounts::register(&app, "user").await;
    app.clock.advance(Duration::seconds(5));
    let long_agent = format!("Kuri/4.2.0 {}", "x".repeat(300));
    let phone = login_as(&app, &registered, &long_agent).await;
    let (waiting, _) = waiting_for_code(&app, &registered).await;
    app.clock.advance(Duration::seconds(5));
    let refreshed = refresh(
        &app,
        &phone,
        json!({"refreshToken": phone.refresh_token, "platform": "android", "appVersion": "4.3.0", "buildNumber": 430}),
    )
    .await;
    assert_eq!(refreshed.status, 200, "{}", refreshed.text);
    let phone_token = refreshed.body["data"]["token"].as_str().unwrap();

    let listed = list(&app, phone_token, &registered.uuid).await;

    assert_eq!(listed.status, 200, "{}", listed.text);
    assert_eq!(listed.header("cache-control"), Some("no-store"));
    assert_eq!(
        ids(&listed),
        [phone.session.as_str(), registered.session.as_str()],
        "most recently used first, the session waiting for its code left out"
    );
    assert!(!listed.text.contains(&waiting.id.to_string()));
    assert_eq!(listed.body["meta"], json!({"total": 2}));
    let first = &listed.body["data"][0];
    let mut keys: Vec<&str> = first
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    keys.sort_unstable();
    assert_eq!(
        keys,
        [
            "appVersion",
            "buildNumber",
            "createdAt",
            "current",
            "lastUsedAt",
            "platform",
            "userAgent",
            "uuid"
        ]
    );
    assert_eq!(first["current"], true);
    assert_eq!(first["platform"], "android");
    assert_eq!(first["appVersion"], "4.3.0");
    assert_eq!(first["buildNumber"], 430);
    assert_eq!(first["userAgent"], "Kuri/4.3.0 (Android 14)");
    assert_ne!(first["createdAt"], first["lastUsedAt"]);
    let second = &listed.body["data"][1];
    assert_eq!(second["current"], false);
    assert_eq!(
        (second["platform"].clone(), second["userAgent"].clone()),
        (Value::Null, Value::Null)
    );
    for secret in [
        registered.token.as_str(),
        registered.refresh_token.as_str(),
        phone.refresh_token.as_str(),
        phone_token,
        refreshed.body["data"]["refreshToken"].as_str().unwrap(),
    ] {
        assert!(!listed.text.contains(secret), "a token is listed");
    }
    assert!(!listed.text.contains("Hash") && !listed.text.contains("hash"));

    let from_registration = list(&app, &registered.token, &registered.uuid).await;
    let current: Vec<&Value> = from_registration.body["data"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|item| item["current"] == true)
        .collect();
    assert_eq!(current.len(), 1);
    assert_eq!(current[0]["uuid"], registered.session.as_str());
}

#[tokio::test]
async fn the_login_user_agent_is_kept_to_256_characters() {
    let app = testkit::app().await;
    let registered = accounts::register(&app, "user").await;
    let agent = format!("Kuri/4.2.0 {}", "x".repeat(300));
    let phone = login_as(&app, &registered, &agent).await;
    let listed = list(&app, &phone.token, &registered.uuid).await;
    let item = listed.body["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|item| item["uuid"] == phone.session.as_str())
        .unwrap();
    let stored = item["userAgent"].as_str().unwrap();
    assert_eq!(stored.chars().count(), 256);
    assert!(agent.starts_with(stored));
}

#[tokio::test]
async fn another_users_sessions_are_403_and_an_unknown_user_is_404_for_an_admin() {
    let app = testkit::app().await;
    let alice = accounts::register(&app, "user").await;
    let mallory = accounts::register(&app, "user").await;
    let admin = accounts::admin(&app).await;
    let unknown = uuid::Uuid::new_v4().to_string();

    for target in [alice.uuid.as_str(), unknown.as_str()] {
        list(&app, &mallory.token, target)
            .await
            .assert_error(403, "No Access.");
        end_others(&app, &mallory.token, target)
            .await
            .assert_error(403, "No Access.");
    }
    assert_eq!(get_user(&app, &alice.token, &alice.uuid).await.status, 200);

    let by_admin = list(&app, &admin.token, &alice.uuid).await;
    assert_eq!(by_admin.status, 200, "{}", by_admin.text);
    assert_eq!(ids(&by_admin), [alice.session.as_str()]);
    assert_eq!(by_admin.body["data"][0]["current"], false);

    list(&app, &admin.token, &unknown)
        .await
        .assert_error(404, "This user does not exist.");
    end_others(&app, &admin.token, &unknown)
        .await
        .assert_error(404, "This user does not exist.");
    shared::service::users::soft_delete(&app, alice.user_id(), &Default::default())
        .await
        .unwrap();
    list(&app, &admin.token, &alice.uuid)
        .await
        .assert_error(404, "This user does not exist.");
    end_others(&app, &admin.token, &alice.uuid)
        .await
        .assert_error(404, "This user does not exist.");
    list(&app, &admin.token, "not-a-uuid")
        .await
        .assert_error(400, "Invalid user UUID.");
}

#[tokio::test]
async fn a_2fa_token_and_no_token_get_401() {
    let app = testkit::app().await;
    let registered = accounts::register(&app, "user").await;
    let (_, two_factor) = waiting_for_code(&app, &registered).await;
    assert_eq!(verify_code(&app, &two_factor).await.status, 400);
    list(&app, &two_factor, &registered.uuid)
        .await
        .assert_error(401, "Invalid token");
    end_others(&app, &two_factor, &registered.uuid)
        .await
        .assert_error(401, "Invalid token");
    call(
        &app,
        request("GET", &format!("/users/{}/sessions", registered.uuid)).build(),
    )
    .await
    .assert_error(401, "Invalid token");
    assert_eq!(
        get_user(&app, &registered.token, &registered.uuid)
            .await
            .status,
        200
    );
}

#[tokio::test]
async fn signing_out_everywhere_else_ends_the_other_sessions_and_keeps_the_callers() {
    let app = testkit::app().await;
    let laptop = accounts::register(&app, "user").await;
    let phone = login_as(&app, &laptop, "Kuri/4.2.0 (iOS 17)").await;
    let tablet = login_as(&app, &laptop, "Kuri/4.2.0 (iPadOS 17)").await;
    let (_, waiting_token) = waiting_for_code(&app, &laptop).await;
    assert_eq!(verify_code(&app, &waiting_token).await.status, 400);

    let response = end_others(&app, &phone.token, &laptop.uuid).await;

    assert_eq!(response.status, 204, "{}", response.text);
    assert!(response.text.is_empty());
    for other in [&laptop, &tablet] {
        get_user(&app, &other.token, &laptop.uuid)
            .await
            .assert_error(401, "Invalid token");
        refresh(&app, other, json!({"refreshToken": other.refresh_token}))
            .await
            .assert_error(404, SESSION_GONE);
    }
    verify_code(&app, &waiting_token)
        .await
        .assert_error(401, "Invalid token");
    assert_eq!(get_user(&app, &phone.token, &laptop.uuid).await.status, 200);
    let listed = list(&app, &phone.token, &laptop.uuid).await;
    assert_eq!(ids(&listed), [phone.session.as_str()]);
    let refreshed = refresh(&app, &phone, json!({"refreshToken": phone.refresh_token})).await;
    assert_eq!(refreshed.status, 200, "{}", refreshed.text);
    // The password still logs in.
    login_as(&app, &laptop, "Kuri/4.2.0 (macOS 14)").await;
}

#[tokio::test]
async fn an_admin_signing_out_another_user_ends_all_their_sessions() {
    let app = testkit::app().await;
    let alice = accounts::register(&app, "user").await;
    let phone = login_as(&app, &alice, "Kuri/4.2.0 (iOS 17)").await;
    let admin = accounts::admin(&app).await;

    let response = end_others(&app, &admin.token, &alice.uuid).await;

    assert_eq!(response.status, 204, "{}", response.text);
    for session in [&alice, &phone] {
        get_user(&app, &session.token, &alice.uuid)
            .await
            .assert_error(401, "Invalid token");
        refresh(
            &app,
            session,
            json!({"refreshToken": session.refresh_token}),
        )
        .await
        .assert_error(404, SESSION_GONE);
    }
    let listed = list(&app, &admin.token, &alice.uuid).await;
    assert_eq!(listed.body["data"], json!([]));
    // One `sessions.ended`, with the csrAdmin as its actor.
    let events = app
        .events
        .list_events(
            alice.user_id(),
            shared::domain::ListStart::Skip(0),
            10,
            app.clock.now(),
        )
        .await
        .unwrap();
    let ended: Vec<_> = events
        .iter()
        .filter(|event| event.kind.as_str() == "sessions.ended")
        .collect();
    assert_eq!(ended.len(), 1, "{events:?}");
    let actor = ended[0].actor.expect("an actor");
    assert_eq!(
        (actor.id.to_string(), actor.admin),
        (admin.uuid.clone(), true)
    );
    assert_eq!(get_user(&app, &admin.token, &admin.uuid).await.status, 200);
}

#[tokio::test]
async fn the_101st_login_ends_the_least_recently_used_session() {
    let app = testkit::app().await;
    let registered = accounts::register(&app, "user").await;
    let mut logins = Vec::new();
    for _ in 0..99 {
        app.clock.advance(Duration::seconds(1));
        logins.push(
            accounts::login(&app, &registered.email, PASSWORD)
                .await
                .unwrap(),
        );
    }
    // The registration session is the oldest but used again now, so the first login is the
    // least recently used.
    app.clock.advance(Duration::seconds(1));
    let refreshed = refresh(
        &app,
        &registered,
        json!({"refreshToken": registered.refresh_token}),
    )
    .await;
    assert_eq!(refreshed.status, 200, "{}", refreshed.text);
    let full = list(&app, &registered.token, &registered.uuid).await;
    assert_eq!(ids(&full).len(), 100);
    assert_eq!(ids(&full)[0], registered.session.as_str());

    app.clock.advance(Duration::seconds(1));
    let newest = accounts::login(&app, &registered.email, PASSWORD)
        .await
        .unwrap();

    let listed = list(&app, &newest.token, &registered.uuid).await;
    let listed = ids(&listed);
    assert_eq!(listed.len(), 100);
    assert_eq!(listed[0], newest.session.as_str());
    let lru = &logins[0];
    assert!(!listed.contains(&lru.session.as_str()));
    get_user(&app, &lru.token, &registered.uuid)
        .await
        .assert_error(401, "Invalid token");
    refresh(&app, lru, json!({"refreshToken": lru.refresh_token}))
        .await
        .assert_error(404, SESSION_GONE);
    assert!(listed.contains(&logins[1].session.as_str()));
    assert_eq!(
        get_user(&app, &registered.token, &registered.uuid)
            .await
            .status,
        200
    );
}
