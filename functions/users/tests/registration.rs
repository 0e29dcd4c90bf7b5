//! Registration against DynamoDB Local: uniqueness under concurrency and what a new account gets.

use serde_json::json;
use shared::testkit;
use shared::testkit::{TestResponse, request};

fn unique_email() -> String {
    testkit::accounts::unique_email("reg")
}

#[tokio::test]
async fn fifty_concurrent_registrations_of_one_email_yield_exactly_one_account() {
    let app = testkit::app().await;
    let email = unique_email();
    let attempts = (0..50).map(|i| {
        let app = app.clone();
        // Vary the case: uniqueness ignores it.
        let email = if i % 2 == 0 {
            email.clone()
        } else {
            email.to_uppercase()
        };
        tokio::spawn(async move {
            let req = request("POST", "/users")
                .json(json!({"email": email, "password": "correct horse"}))
                .build();
            TestResponse::from(users::handle(&app, req).await)
        })
    });
    let mut created = 0;
    for attempt in attempts {
        let response = attempt.await.unwrap();
        match response.status {
            200 => created += 1,
            _ => response.assert_error(409, "Email is already in use."),
        }
    }
    assert_eq!(created, 1);
    let count = app
        .users
        .count_users(shared::domain::user::UserPartition::Live)
        .await
        .unwrap();
    assert_eq!(count, 1);
}

#[tokio::test]
async fn registration_logs_the_user_in_with_defaults() {
    let app = testkit::app().await;
    let email = unique_email();
    let response = TestResponse::from(
        users::handle(
            &app,
            request("POST", "/users")
                .json(json!({
                    "email": email,
                    "password": "correct horse",
                    "firstName": "Zoë",
                    "lastName": "O'Brien",
                    "tosAgreedToAt": "2020-01-01T00:00:00Z"
                }))
                .build(),
        )
        .await,
    );
    assert_eq!(response.status, 200, "{}", response.text);
    let data = &response.body["data"];
    for key in ["user", "token", "refreshToken", "sessionUUID", "expiresIn"] {
        assert!(!data[key].is_null(), "missing {key}");
    }
    let user = &data["user"];
    let mut keys: Vec<&str> = user
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    keys.sort();
    assert_eq!(
        keys,
        [
            "createdAt",
            "email",
            "emailVerified",
            "firstName",
            "fullName",
            "lastName",
            "marketingOptIn",
            "roles",
            "status",
            "tosAgreedAt",
            "twoFactorAuth",
            "updatedAt",
            "uuid"
        ]
    );
    assert_eq!(user["emailVerified"], false);
    assert_eq!(user["marketingOptIn"], false);
    assert_eq!(user["roles"], json!([]));
    assert_eq!(user["status"], "active");
    assert_eq!(user["fullName"], serde_json::Value::Null);
    assert_eq!(
        user["twoFactorAuth"],
        json!({
            "enabled": false,
            "mobileNumberLast4": null,
            "pending": false,
            "totp": false,
            "recoveryCodesLeft": 0
        })
    );
    assert_ne!(user["tosAgreedAt"], "2020-01-01T00:00:00Z");
    assert!(!response.text.contains("argon2"));
}

#[tokio::test]
async fn registration_errors_use_the_seed_messages() {
    let app = testkit::app().await;
    let cases = [
        (
            json!({"password": "correct horse"}),
            400,
            "Email is required.",
        ),
        (
            json!({"email": unique_email()}),
            400,
            "Password is required.",
        ),
    ];
    for (body, status, message) in cases {
        let req = request("POST", "/users").json(body).build();
        TestResponse::from(users::handle(&app, req).await).assert_error(status, message);
    }
    for (body, field) in [
        (
            json!({"email": "not-an-email", "password": "correct horse"}),
            "email",
        ),
        (
            json!({"email": unique_email(), "password": "short"}),
            "password",
        ),
        (
            json!({"email": unique_email(), "password": "correct horse", "firstName": "<b>"}),
            "firstName",
        ),
        (
            json!({"email": unique_email(), "password": "correct horse", "roles": ["csrAdmin"]}),
            "roles",
        ),
        (
            json!({"email": unique_email(), "password": "correct horse", "twoFactorAuth": {}}),
            "twoFactorAuth",
        ),
        (
            json!({"email": unique_email(), "password": "correct horse", "status": "inactive"}),
            "status",
        ),
        (
            json!({"email": unique_email(), "password": "correct horse", "marketingOptIn": "yes"}),
            "marketingOptIn",
        ),
    ] {
        let req = request("POST", "/users").json(body.clone()).build();
        let response = TestResponse::from(users::handle(&app, req).await);
        assert_eq!(response.status, 400, "{body}: {}", response.text);
        assert!(
            response.body["error"]["fields"][field].is_array(),
            "{body}: {}",
            response.text
        );
    }
    let count = app
        .users
        .count_users(shared::domain::user::UserPartition::Live)
        .await
        .unwrap();
    assert_eq!(count, 0, "refused registrations wrote nothing");
}

#[tokio::test]
async fn malformed_requests_get_an_error_body_and_write_nothing() {
    let app = testkit::app().await;
    let big = format!(
        r#"{{"email":"{}","password":"correct horse","firstName":"{}"}}"#,
        unique_email(),
        "a".repeat(100 * 1024)
    );
    let cases: Vec<(Option<&str>, String, u16)> = vec![
        (Some("application/json"), "{not json".into(), 400),
        (Some("application/json"), "[]".into(), 400),
        (Some("application/json"), "null".into(), 400),
        (Some("application/json"), "42".into(), 400),
        (Some("application/json"), "\"text\"".into(), 400),
        (Some("application/json"), String::new(), 400),
        (Some("application/json"), big, 413),
        (
            Some("text/plain"),
            format!(
                r#"{{"email":"{}","password":"correct horse"}}"#,
                unique_email()
            ),
            415,
        ),
        (
            None,
            format!(
                r#"{{"email":"{}","password":"correct horse"}}"#,
                unique_email()
            ),
            415,
        ),
    ];
    for (content_type, body, status) in cases {
        let mut req = request("POST", "/users").raw_body(&body);
        if let Some(content_type) = content_type {
            req = req.header("content-type", content_type);
        }
        let response = TestResponse::from(users::handle(&app, req.build()).await);
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
    let count = app
        .users
        .count_users(shared::domain::user::UserPartition::Live)
        .await
        .unwrap();
    assert_eq!(count, 0);
}
