//! Account security on the users routes, against DynamoDB Local and moto: re-authentication
//! for moving one's own email, the security notices mailed through SES, and the refusal of
//! common passwords.

mod common;

use common::{call, stored};
use serde_json::{Value, json};
use shared::testkit;
use shared::testkit::accounts::{Account, PASSWORD, admin, login, register, unique_email};
use shared::testkit::{TestResponse, request};

const EMAIL_NOTICE: &str = "The email address of your Kuri account was changed";
const PASSWORD_NOTICE: &str = "The password of your Kuri account was changed";
const VERIFICATION: &str = "Confirm your email address for Kuri";

fn patch(id: &str, token: &str, body: Value) -> lambda_http::Request {
    request("PATCH", &format!("/users/{id}"))
        .bearer(token)
        .json(body)
        .build()
}

/// The user's events, newest first, as the user reads them.
async fn events(app: &shared::App, account: &Account) -> Vec<Value> {
    let listed = call(
        app,
        request("GET", &format!("/users/{}/security-events", account.uuid))
            .bearer(&account.token)
            .build(),
    )
    .await;
    assert_eq!(listed.status, 200, "{}", listed.text);
    listed.body["data"].as_array().unwrap().clone()
}

fn types(events: &[Value]) -> Vec<&str> {
    events.iter().map(|e| e["type"].as_str().unwrap()).collect()
}

/// The subjects of the mails moto recorded as sent to `address`, oldest first.
async fn subjects_to(address: &str) -> Vec<String> {
    testkit::emails_to(address)
        .await
        .iter()
        .map(|mail| mail["subject"].as_str().unwrap().to_owned())
        .collect()
}

fn field_errors(response: &TestResponse, field: &str) -> Vec<String> {
    assert_eq!(response.status, 400, "{}", response.text);
    serde_json::from_value(response.body["error"]["fields"][field].clone())
        .unwrap_or_else(|_| panic!("no field error under {field}: {}", response.text))
}

#[tokio::test]
async fn moving_ones_own_email_needs_the_current_password() {
    let app = testkit::app().await;
    let user = register(&app, "moving").await;
    let new_email = unique_email("moved");

    let missing = call(
        &app,
        patch(&user.uuid, &user.token, json!({"email": new_email})),
    )
    .await;
    assert_eq!(field_errors(&missing, "currentPassword"), ["Is required."]);
    let wrong = call(
        &app,
        patch(
            &user.uuid,
            &user.token,
            json!({"email": new_email, "currentPassword": "not my password"}),
        ),
    )
    .await;
    wrong.assert_error(401, "Password is incorrect.");
    assert_eq!(stored(&app, &user.uuid).await.unwrap().email, user.email);
    assert!(subjects_to(&new_email).await.is_empty());
    assert!(subjects_to(&user.email).await.is_empty());

    // The wrong one counted as a failed login of the email, by the user from their session.
    let listed = events(&app, &user).await;
    assert_eq!(types(&listed), ["login.failed", "user.registered"]);
    assert_eq!(
        listed[0]["actor"],
        json!({"uuid": user.uuid, "admin": false})
    );
    assert_eq!(listed[0]["sessionUUID"], user.session.as_str());

    // Sending one's own address again (in any case) moves nothing and needs no password.
    let same = call(
        &app,
        patch(
            &user.uuid,
            &user.token,
            json!({"email": user.email.to_uppercase()}),
        ),
    )
    .await;
    assert_eq!(same.status, 200, "{}", same.text);
}

#[tokio::test]
async fn a_proper_email_change_mails_a_notice_to_the_old_address_and_a_link_to_the_new() {
    let app = testkit::app().await;
    let user = register(&app, "notice").await;
    let new_email = unique_email("notice-new");

    let moved = call(
        &app,
        patch(
            &user.uuid,
            &user.token,
            json!({"email": new_email, "currentPassword": PASSWORD}),
        ),
    )
    .await;
    assert_eq!(moved.status, 200, "{}", moved.text);

    assert_eq!(subjects_to(&user.email).await, [EMAIL_NOTICE]);
    assert_eq!(subjects_to(&new_email).await, [VERIFICATION]);
    let notice = &testkit::emails_to(&user.email).await[0];
    let body = notice["body"].as_str().unwrap();
    assert!(body.contains(&user.email), "{body}");
    assert!(
        !body.contains("token=") && !body.contains("href") && !body.contains(&new_email),
        "no link, no token, not the new address: {body}"
    );
    let listed = events(&app, &user).await;
    assert_eq!(types(&listed), ["email.changed", "user.registered"]);
    assert_eq!(
        listed[0]["actor"],
        json!({"uuid": user.uuid, "admin": false})
    );
}

#[tokio::test]
async fn a_csr_admin_moves_another_users_email_without_a_password() {
    let app = testkit::app().await;
    let admin = admin(&app).await;
    let user = register(&app, "admin-moved").await;
    let new_email = unique_email("admin-moved-new");

    let moved = call(
        &app,
        patch(&user.uuid, &admin.token, json!({"email": new_email})),
    )
    .await;
    assert_eq!(moved.status, 200, "{}", moved.text);
    assert_eq!(moved.body["data"]["email"], new_email.as_str());

    assert_eq!(subjects_to(&user.email).await, [EMAIL_NOTICE]);
    assert_eq!(subjects_to(&new_email).await, [VERIFICATION]);
    assert!(
        subjects_to(&admin.email).await.is_empty(),
        "the notice goes to the user's old address, not the admin's"
    );
    let listed = events(&app, &user).await;
    assert_eq!(types(&listed), ["email.changed", "user.registered"]);
    assert_eq!(
        listed[0]["actor"],
        json!({"uuid": admin.uuid, "admin": true})
    );
    assert_eq!(listed[0]["sessionUUID"], admin.session.as_str());
}

#[tokio::test]
async fn a_password_change_mails_a_notice_without_a_link() {
    let app = testkit::app().await;
    let user = register(&app, "pw-notice").await;

    let changed = call(
        &app,
        patch(
            &user.uuid,
            &user.token,
            json!({"password": "a brand new horse", "currentPassword": PASSWORD}),
        ),
    )
    .await;
    assert_eq!(changed.status, 200, "{}", changed.text);

    assert_eq!(subjects_to(&user.email).await, [PASSWORD_NOTICE]);
    let body = testkit::emails_to(&user.email).await[0]["body"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(!body.contains("token=") && !body.contains("href"), "{body}");
    assert!(
        !body.contains("a brand new horse"),
        "no password in a notice"
    );
    let listed = events(&app, &user).await;
    assert_eq!(
        types(&listed),
        ["sessions.ended", "password.changed", "user.registered"]
    );
}

#[tokio::test]
async fn a_common_password_is_refused_at_registration_in_any_case() {
    let app = testkit::app().await;
    for common in ["password1", "Password1", "QWERTY", "DrAgOn"] {
        let email = unique_email("common");
        let refused = call(
            &app,
            request("POST", "/users")
                .json(json!({"email": email, "password": common}))
                .build(),
        )
        .await;
        assert_eq!(
            field_errors(&refused, "password"),
            ["This password is too common."],
            "{common}"
        );
        assert!(
            login(&app, &email, common).await.is_err(),
            "nobody registered"
        );
    }
    // The length rule stays.
    let short = call(
        &app,
        request("POST", "/users")
            .json(json!({"email": unique_email("short"), "password": "abc"}))
            .build(),
    )
    .await;
    assert_eq!(
        field_errors(&short, "password"),
        ["Must be at least 6 characters."]
    );
    let fine = call(
        &app,
        request("POST", "/users")
            .json(json!({"email": unique_email("fine"), "password": "password1 but longer"}))
            .build(),
    )
    .await;
    assert_eq!(fine.status, 200, "{}", fine.text);
}

#[tokio::test]
async fn a_common_new_password_is_refused_on_change_and_nothing_changes() {
    let app = testkit::app().await;
    let user = register(&app, "common-change").await;
    let before = stored(&app, &user.uuid).await.unwrap();

    let refused = call(
        &app,
        patch(
            &user.uuid,
            &user.token,
            json!({"password": "LetMeIn", "currentPassword": PASSWORD}),
        ),
    )
    .await;
    assert_eq!(
        field_errors(&refused, "password"),
        ["This password is too common."]
    );
    assert_eq!(stored(&app, &user.uuid).await.unwrap(), before);
    assert!(subjects_to(&user.email).await.is_empty());
    assert!(login(&app, &user.email, PASSWORD).await.is_ok());
}
