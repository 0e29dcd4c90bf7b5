//! `PATCH /users/{uuid}` and `GET /users/{uuid}` against DynamoDB Local: who may change what,
//! the seed's errors in their order, passwords, deactivation, email changes and ETags.

mod common;

use common::{call, get_user, stored};
use serde_json::{Value, json};
use shared::ApiError;
use shared::domain::ids::UserId;
use shared::testkit;
use shared::testkit::accounts::{PASSWORD, admin, login, register, unique_email};
use shared::testkit::{TestResponse, request};

fn patch(id: &str, token: &str, body: Value) -> lambda_http::Request {
    request("PATCH", &format!("/users/{id}"))
        .bearer(token)
        .json(body)
        .build()
}

#[tokio::test]
async fn patch_refusals_use_the_seed_messages_in_the_documented_order() {
    let app = testkit::app().await;
    let admin = admin(&app).await;
    let user = register(&app, "patched").await;
    let other = register(&app, "other").await;
    let missing = UserId::new().to_string();

    // A malformed uuid is answered before the token is looked at.
    for bad in [
        "not-a-uuid",
        "{4f8e2a4c-1b7d-4c1e-9a3b-0c5d6e7f8a9b}",
        "4f8e2a4c1b7d4c1e9a3b0c5d6e7f8a9b",
    ] {
        let req = request("PATCH", &format!("/users/{bad}"))
            .json(json!({}))
            .build();
        call(&app, req)
            .await
            .assert_error(400, "Invalid user UUID.");
    }
    let req = request("PATCH", &format!("/users/{}", user.uuid))
        .json(json!({}))
        .build();
    call(&app, req).await.assert_error(401, "Invalid token");
    for body in [
        json!({"firstName": "Mallory"}),
        json!({"password": "new password"}),
        json!({"roles": []}),
    ] {
        call(&app, patch(&other.uuid, &user.token, body))
            .await
            .assert_error(403, "You do not have access to update another user.");
    }
    call(&app, patch(&missing, &user.token, json!({})))
        .await
        .assert_error(403, "You do not have access to update another user.");
    call(
        &app,
        patch(&missing, &admin.token, json!({"firstName": "Nobody"})),
    )
    .await
    .assert_error(404, "This user does not exist.");
    for body in [
        json!({"password": "new password"}),
        json!({"password": "new password", "currentPassword": PASSWORD}),
        json!({"password": "x", "firstName": "<b>", "roles": ["csrAdmin"], "unknown": 1}),
    ] {
        call(&app, patch(&user.uuid, &admin.token, body))
            .await
            .assert_error(
                403,
                "Admin user does not have permission to update another user's password.",
            );
    }
    for body in [
        json!({"status": "inactive"}),
        json!({"admin": true}),
        json!({"admin": false}),
    ] {
        call(&app, patch(&user.uuid, &user.token, body))
            .await
            .assert_error(403, "You do not have access to update another user.");
    }
    for (body, field) in [
        (json!({"roles": ["csrAdmin"]}), "roles"),
        (
            json!({"twoFactorAuth": {"enabled": false}}),
            "twoFactorAuth",
        ),
        (json!({"firstName": "<script>"}), "firstName"),
        (json!({"lastName": ""}), "lastName"),
        (json!({"fullName": 42}), "fullName"),
        (json!({"email": "not-an-email"}), "email"),
        (
            json!({"password": "short", "currentPassword": PASSWORD}),
            "password",
        ),
        (json!({"marketingOptIn": "yes"}), "marketingOptIn"),
        (json!({"tosAgreed": "yes"}), "tosAgreed"),
        (json!({"sessionEpoch": 0}), "sessionEpoch"),
    ] {
        let response = call(&app, patch(&user.uuid, &user.token, body.clone())).await;
        assert_eq!(response.status, 400, "{body}: {}", response.text);
        assert!(
            response.body["error"]["fields"][field].is_array(),
            "{body}: {}",
            response.text
        );
    }
    let response = call(
        &app,
        patch(&user.uuid, &admin.token, json!({"status": "deleted"})),
    )
    .await;
    assert!(
        response.body["error"]["fields"]["status"].is_array(),
        "{}",
        response.text
    );
    call(
        &app,
        patch(
            &user.uuid,
            &user.token,
            json!({"password": "brand new password"}),
        ),
    )
    .await
    .assert_error(400, "Current password is required.");
    call(
        &app,
        patch(
            &user.uuid,
            &user.token,
            json!({"password": "brand new password", "currentPassword": "wrong password"}),
        ),
    )
    .await
    .assert_error(401, "Password is incorrect.");

    assert_eq!(
        stored(&app, &user.uuid).await.unwrap().version,
        1,
        "no refusal wrote anything"
    );
    assert_eq!(stored(&app, &other.uuid).await.unwrap().version, 1);
}

#[tokio::test]
async fn a_user_changes_their_own_profile_and_gets_the_new_etag() {
    let app = testkit::app().await;
    let user = register(&app, "self").await;
    let before = get_user(&app, &user.token, &user.uuid).await;
    assert_eq!(before.header("etag"), Some("\"1\""));

    let response = call(
        &app,
        patch(
            &user.uuid,
            &user.token,
            json!({
                "firstName": "Augusta Ada",
                "lastName": "King",
                "fullName": "Ada Lovelace",
                "marketingOptIn": true,
                "tosAgreed": true,
                "tosAgreedToAt": "2020-01-01T00:00:00Z"
            }),
        ),
    )
    .await;
    assert_eq!(response.status, 200, "{}", response.text);
    assert_eq!(response.header("etag"), Some("\"2\""));
    let data = &response.body["data"];
    assert_eq!(
        (
            &data["firstName"],
            &data["lastName"],
            &data["fullName"],
            &data["marketingOptIn"]
        ),
        (
            &json!("Augusta Ada"),
            &json!("King"),
            &json!("Ada Lovelace"),
            &json!(true)
        )
    );
    assert_ne!(data["tosAgreedAt"], before.body["data"]["tosAgreedAt"]);
    assert_ne!(data["updatedAt"], before.body["data"]["updatedAt"]);

    let cleared = call(
        &app,
        patch(&user.uuid, &user.token, json!({"fullName": null})),
    )
    .await;
    assert_eq!(cleared.body["data"]["fullName"], Value::Null);
    assert_eq!(cleared.body["data"]["firstName"], "Augusta Ada");
    assert_eq!(cleared.header("etag"), Some("\"3\""));
    let after = get_user(&app, &user.token, &user.uuid).await;
    assert_eq!(
        (after.header("etag"), &after.body["data"]),
        (Some("\"3\""), &cleared.body["data"])
    );
}

#[tokio::test]
async fn a_stale_if_match_is_412_and_changes_nothing() {
    let app = testkit::app().await;
    let user = register(&app, "etag").await;
    let first = call(
        &app,
        patch(&user.uuid, &user.token, json!({"firstName": "One"})),
    )
    .await;
    assert_eq!(first.header("etag"), Some("\"2\""));

    let stale = request("PATCH", &format!("/users/{}", user.uuid))
        .bearer(&user.token)
        .header("if-match", "\"1\"")
        .json(json!({"firstName": "Two"}))
        .build();
    let response = call(&app, stale).await;
    assert_eq!(response.status, 412, "{}", response.text);
    assert_eq!(response.message(), ApiError::VersionConflict.message());
    assert_eq!(
        stored(&app, &user.uuid)
            .await
            .unwrap()
            .first_name
            .as_deref(),
        Some("One")
    );

    for (if_match, name, etag) in [
        ("\"2\"", "Two", "\"3\""),
        ("3", "Three", "\"4\""),
        ("*", "Four", "\"5\""),
    ] {
        let req = request("PATCH", &format!("/users/{}", user.uuid))
            .bearer(&user.token)
            .header("if-match", if_match)
            .json(json!({"firstName": name}))
            .build();
        let response = call(&app, req).await;
        assert_eq!(response.status, 200, "{if_match}: {}", response.text);
        assert_eq!(response.header("etag"), Some(etag));
    }
}

#[tokio::test]
async fn changing_the_password_ends_every_other_session_but_the_callers() {
    let app = testkit::app().await;
    let user = register(&app, "password").await;
    let other_session = login(&app, &user.email, PASSWORD).await.unwrap().token;

    let response = call(
        &app,
        patch(
            &user.uuid,
            &user.token,
            json!({"password": "a brand new password", "currentPassword": PASSWORD}),
        ),
    )
    .await;
    assert_eq!(response.status, 200, "{}", response.text);

    assert_eq!(get_user(&app, &user.token, &user.uuid).await.status, 200);
    get_user(&app, &other_session, &user.uuid)
        .await
        .assert_error(401, "Invalid token");
    assert!(matches!(
        login(&app, &user.email, PASSWORD).await,
        Err(ApiError::BadCredentials)
    ));
    let fresh = login(&app, &user.email, "a brand new password")
        .await
        .unwrap()
        .token;
    assert_eq!(get_user(&app, &fresh, &user.uuid).await.status, 200);
}

#[tokio::test]
async fn an_admin_updates_another_user_and_deactivation_ends_their_sessions() {
    let app = testkit::app().await;
    let admin = admin(&app).await;
    let user = register(&app, "managed").await;

    let response = call(
        &app,
        patch(
            &user.uuid,
            &admin.token,
            json!({"firstName": "Renamed", "status": "inactive"}),
        ),
    )
    .await;
    assert_eq!(response.status, 200, "{}", response.text);
    assert_eq!(response.body["data"]["status"], "inactive");
    assert_eq!(response.body["data"]["firstName"], "Renamed");
    get_user(&app, &user.token, &user.uuid)
        .await
        .assert_error(401, "Invalid token");
    assert!(matches!(
        login(&app, &user.email, PASSWORD).await,
        Err(ApiError::BadCredentials)
    ));

    let response = call(
        &app,
        patch(
            &user.uuid,
            &admin.token,
            json!({"status": "active", "admin": true}),
        ),
    )
    .await;
    assert_eq!(response.status, 200, "{}", response.text);
    assert_eq!(response.body["data"]["roles"], json!(["csrAdmin"]));
    // Reactivation does not bring the old sessions back.
    get_user(&app, &user.token, &user.uuid)
        .await
        .assert_error(401, "Invalid token");
    let token = login(&app, &user.email, PASSWORD).await.unwrap().token;
    let listed = call(&app, request("GET", "/users").bearer(&token).build()).await;
    assert_eq!(
        listed.status, 200,
        "the new admin lists users: {}",
        listed.text
    );

    let response = call(
        &app,
        patch(&user.uuid, &admin.token, json!({"admin": false})),
    )
    .await;
    assert_eq!(response.body["data"]["roles"], json!([]));
    call(&app, request("GET", "/users").bearer(&token).build())
        .await
        .assert_error(403, "No Access.");
}

#[tokio::test]
async fn changing_the_email_unverifies_it_mails_a_link_and_frees_the_old_one() {
    let app = testkit::app().await;
    let user = register(&app, "mover").await;
    let other = register(&app, "taken").await;
    shared::service::users::update(&app, user.user_id(), None, |u| {
        u.email_verified = true;
        Ok(())
    })
    .await
    .unwrap();

    call(
        &app,
        patch(
            &user.uuid,
            &user.token,
            json!({"email": other.email.to_uppercase(), "currentPassword": PASSWORD}),
        ),
    )
    .await
    .assert_error(409, "Email is already in use.");

    let new_email = unique_email("moved");
    let response = call(
        &app,
        patch(
            &user.uuid,
            &user.token,
            json!({"email": new_email, "currentPassword": PASSWORD}),
        ),
    )
    .await;
    assert_eq!(response.status, 200, "{}", response.text);
    assert_eq!(response.body["data"]["email"], new_email.as_str());
    assert_eq!(response.body["data"]["emailVerified"], false);
    assert_eq!(testkit::emails_to(&new_email).await.len(), 1);

    let again = call(
        &app,
        request("POST", "/users")
            .json(json!({"email": user.email, "password": PASSWORD}))
            .build(),
    )
    .await;
    assert_eq!(again.status, 200, "the old address is free: {}", again.text);
    assert!(login(&app, &new_email, PASSWORD).await.is_ok());
}

#[tokio::test]
async fn a_user_reads_only_themselves_while_an_admin_reads_anyone() {
    let app = testkit::app().await;
    let admin = admin(&app).await;
    let user = register(&app, "reader").await;
    let other = register(&app, "read").await;
    get_user(&app, &user.token, &other.uuid)
        .await
        .assert_error(403, "No Access.");
    let response = get_user(&app, &admin.token, &other.uuid).await;
    assert_eq!(response.status, 200, "{}", response.text);
    assert_eq!(response.body["data"]["uuid"], other.uuid.as_str());
    assert_eq!(response.header("etag"), Some("\"1\""));
    get_user(&app, &admin.token, &UserId::new().to_string())
        .await
        .assert_error(404, "This user does not exist.");
}

#[tokio::test]
async fn malformed_patch_requests_get_an_error_body_and_write_nothing() {
    let app = testkit::app().await;
    let user = register(&app, "malformed").await;
    let big = format!(r#"{{"firstName":"{}"}}"#, "a".repeat(100 * 1024));
    let cases: Vec<(Option<&str>, String, u16)> = vec![
        (Some("application/json"), "{not json".into(), 400),
        (Some("application/json"), "[]".into(), 400),
        (Some("application/json"), "null".into(), 400),
        (Some("application/json"), String::new(), 400),
        (
            Some("application/json"),
            r#"{"firstName":"Ada","isAdmin":true}"#.into(),
            400,
        ),
        (Some("application/json"), big, 413),
        (Some("text/plain"), r#"{"firstName":"Ada"}"#.into(), 415),
        (None, r#"{"firstName":"Ada"}"#.into(), 415),
    ];
    for (content_type, body, status) in cases {
        let mut req = request("PATCH", &format!("/users/{}", user.uuid))
            .bearer(&user.token)
            .raw_body(&body);
        if let Some(content_type) = content_type {
            req = req.header("content-type", content_type);
        }
        let response = call(&app, req.build()).await;
        assert_eq!(
            response.status,
            status,
            "{content_type:?} {}",
            &body[..body.len().min(40)]
        );
        assert!(
            response.body["error"]["code"].is_string(),
            "{}",
            response.text
        );
        assert!(
            response.body["error"]["message"].is_string(),
            "{}",
            response.text
        );
    }
    let unknown = call(
        &app,
        patch(&user.uuid, &user.token, json!({"isAdmin": true})),
    )
    .await;
    assert!(
        unknown.body["error"]["fields"]["isAdmin"].is_array(),
        "{}",
        unknown.text
    );
    assert_eq!(stored(&app, &user.uuid).await.unwrap().version, 1);
}

#[tokio::test]
async fn the_recorded_api_gateway_event_patches_the_user() {
    let app = testkit::app().await;
    let user = register(&app, "event").await;
    let response = TestResponse::from(
        users::handle(&app, testkit::event("users-patch", &user.token, &user.uuid)).await,
    );
    assert_eq!(response.status, 200, "{}", response.text);
    assert_eq!(response.body["data"]["lastName"], "King");
    let response = TestResponse::from(
        users::handle(&app, testkit::event("users-get", &user.token, &user.uuid)).await,
    );
    assert_eq!(response.status, 200, "{}", response.text);
}

#[tokio::test]
async fn a_wrong_current_password_counts_as_a_failed_login_of_that_email() {
    let app = testkit::app().await;
    let user = register(&app, "guessed").await;
    let guess = |n: usize| {
        patch(
            &user.uuid,
            &user.token,
            json!({"password": "brand new password", "currentPassword": format!("guess {n}")}),
        )
    };
    for n in 0..5 {
        call(&app, guess(n))
            .await
            .assert_error(401, "Password is incorrect.");
    }
    // The email is locked now: for logins, and for further guesses through the token, even
    // the right password.
    assert!(matches!(
        login(&app, &user.email, PASSWORD).await,
        Err(ApiError::TooManyRequests { .. })
    ));
    let response = call(
        &app,
        patch(
            &user.uuid,
            &user.token,
            json!({"password": "brand new password", "currentPassword": PASSWORD}),
        ),
    )
    .await;
    response.assert_error(429, "Too many requests. Try again later.");
    assert!(response.header("retry-after").is_some());
    assert_eq!(stored(&app, &user.uuid).await.unwrap().version, 1);
}
