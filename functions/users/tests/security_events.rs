//! `GET /users/{uuid}/security-events` against DynamoDB Local: what the users routes record,
//! who may read it, and its paging.

mod common;

use common::call;
use serde_json::{Value, json};
use shared::testkit;
use shared::testkit::accounts::{PASSWORD, admin, register};
use shared::testkit::{TestResponse, request};

fn list(id: &str, token: &str, query: &str) -> lambda_http::Request {
    request("GET", &format!("/users/{id}/security-events{query}"))
        .bearer(token)
        .build()
}

async fn events(app: &shared::App, id: &str, token: &str) -> Vec<Value> {
    let listed = call(app, list(id, token, "")).await;
    assert_eq!(listed.status, 200, "{}", listed.text);
    listed.body["data"].as_array().unwrap().clone()
}

fn types(events: &[Value]) -> Vec<&str> {
    events.iter().map(|e| e["type"].as_str().unwrap()).collect()
}

#[tokio::test]
async fn registration_records_user_registered_by_the_user_themself() {
    let app = testkit::app().await;
    let user = register(&app, "events-new").await;

    let listed = call(&app, list(&user.uuid, &user.token, "")).await;
    assert_eq!(listed.status, 200, "{}", listed.text);
    assert_eq!(listed.header("cache-control"), Some("no-store"));
    let data = listed.body["data"].as_array().unwrap();
    assert_eq!(types(data), ["user.registered"]);
    let event = &data[0];
    let keys: Vec<&str> = event
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(
        keys,
        [
            "actor",
            "createdAt",
            "ipAddress",
            "sessionUUID",
            "type",
            "userAgent",
            "uuid"
        ],
    );
    assert_eq!(event["actor"], json!({"uuid": user.uuid, "admin": false}));
    assert_eq!(
        listed.body["meta"],
        json!({"page": 1, "limit": 20, "total": 1, "nextCursor": null})
    );
}

#[tokio::test]
async fn profile_changes_record_their_events_with_the_caller_as_actor() {
    let app = testkit::app().await;
    let admin = admin(&app).await;
    let user = register(&app, "events-change").await;

    // The user changes their password (which ends their other sessions) from a known app.
    let req = request("PATCH", &format!("/users/{}", user.uuid))
        .bearer(&user.token)
        .header("user-agent", "KuriApp/4.2 (Android 15)")
        .json(json!({"password": "a new horse battery", "currentPassword": PASSWORD}))
        .build();
    assert_eq!(call(&app, req).await.status, 200);
    // A csrAdmin deactivates them and changes their roles.
    let req = request("PATCH", &format!("/users/{}", user.uuid))
        .bearer(&admin.token)
        .json(json!({"status": "inactive"}))
        .build();
    assert_eq!(call(&app, req).await.status, 200);
    let req = request("PUT", &format!("/users/{}/roles", user.uuid))
        .bearer(&admin.token)
        .json(json!({"roles": ["betaTester"]}))
        .build();
    assert_eq!(call(&app, req).await.status, 200);

    let listed = events(&app, &user.uuid, &admin.token).await;
    assert_eq!(
        types(&listed),
        [
            "roles.changed",
            "sessions.ended",
            "status.changed",
            "sessions.ended",
            "password.changed",
            "user.registered",
        ],
        "newest first, one of each per action"
    );
    let by_admin = json!({"uuid": admin.uuid, "admin": true});
    let by_user = json!({"uuid": user.uuid, "admin": false});
    for event in &listed[..3] {
        assert_eq!(event["actor"], by_admin);
        assert_eq!(event["sessionUUID"], json!(admin.session));
    }
    for event in &listed[3..5] {
        assert_eq!(event["actor"], by_user);
        assert_eq!(event["sessionUUID"], json!(user.session));
        assert_eq!(event["userAgent"], "KuriApp/4.2 (Android 15)");
    }
    let text = serde_json::to_string(&listed).unwrap();
    assert!(!text.contains("new horse"), "no secret in an event");
    assert!(!text.contains("argon2"), "no hash in an event");
}

#[tokio::test]
async fn deletion_records_user_deleted_alone_and_the_list_is_then_not_found() {
    let app = testkit::app().await;
    let admin = admin(&app).await;
    let user = register(&app, "events-gone").await;
    let req = request("DELETE", &format!("/users/{}", user.uuid))
        .bearer(&user.token)
        .json(json!({"password": PASSWORD}))
        .build();
    assert_eq!(call(&app, req).await.status, 200);

    call(&app, list(&user.uuid, &admin.token, ""))
        .await
        .assert_error(404, "This user does not exist.");
    let id = shared::domain::ids::UserId::parse(&user.uuid).unwrap();
    let now = app.clock.now();
    let stored = app
        .events
        .list_events(id, shared::domain::ListStart::Skip(0), 10, now)
        .await
        .unwrap();
    let kinds: Vec<&str> = stored.iter().map(|e| e.kind.as_str()).collect();
    assert_eq!(kinds, ["user.deleted", "user.registered"]);
}

#[tokio::test]
async fn only_the_owner_or_a_csr_admin_reads_the_events() {
    let app = testkit::app().await;
    let admin = admin(&app).await;
    let user = register(&app, "events-owner").await;
    let other = register(&app, "events-other").await;

    call(&app, list(&user.uuid, &other.token, ""))
        .await
        .assert_error(403, "No Access.");
    let req = request("GET", &format!("/users/{}/security-events", user.uuid)).build();
    call(&app, req).await.assert_error(401, "Invalid token");
    call(&app, list(&user.uuid, "garbage", ""))
        .await
        .assert_error(401, "Invalid token");
    call(&app, list("not-a-uuid", &admin.token, ""))
        .await
        .assert_error(400, "Invalid user UUID.");
    let unknown = uuid::Uuid::new_v4().to_string();
    call(&app, list(&unknown, &admin.token, ""))
        .await
        .assert_error(404, "This user does not exist.");
    assert_eq!(events(&app, &user.uuid, &admin.token).await.len(), 1);
}

#[tokio::test]
async fn events_page_by_page_and_by_cursor_with_the_list_rules() {
    let app = testkit::app().await;
    let user = register(&app, "events-pages").await;
    // Name changes are no security event.
    for i in 0..3 {
        let req = request("PATCH", &format!("/users/{}", user.uuid))
            .bearer(&user.token)
            .json(json!({"firstName": format!("Name {i}")}))
            .build();
        assert_eq!(call(&app, req).await.status, 200);
    }
    assert_eq!(events(&app, &user.uuid, &user.token).await.len(), 1);
    // Five email changes: five events plus the registration.
    for i in 0..5 {
        let req = request("PATCH", &format!("/users/{}", user.uuid))
            .bearer(&user.token)
            .json(json!({
                "email": testkit::accounts::unique_email(&format!("moved{i}")),
                "currentPassword": PASSWORD,
            }))
            .build();
        let changed = call(&app, req).await;
        assert_eq!(changed.status, 200, "{}", changed.text);
    }
    let all = events(&app, &user.uuid, &user.token).await;
    assert_eq!(all.len(), 6);

    let page2 = call(&app, list(&user.uuid, &user.token, "?page=2&limit=4")).await;
    assert_eq!(page2.status, 200);
    assert_eq!(page2.body["data"].as_array().unwrap()[..], all[4..]);
    assert_eq!(page2.body["meta"]["total"], 6);
    assert_eq!(page2.body["meta"]["nextCursor"], Value::Null);

    let mut seen = Vec::new();
    let mut query = "?limit=4".to_owned();
    loop {
        let page: TestResponse = call(&app, list(&user.uuid, &user.token, &query)).await;
        assert_eq!(page.status, 200, "{}", page.text);
        seen.extend(page.body["data"].as_array().unwrap().iter().cloned());
        match page.body["meta"]["nextCursor"].as_str() {
            Some(cursor) => query = format!("?limit=4&cursor={cursor}"),
            None => break,
        }
    }
    assert_eq!(seen, all, "following cursors visits every event once");

    call(&app, list(&user.uuid, &user.token, "?page=0"))
        .await
        .assert_error(400, "Page is invalid.");
    call(&app, list(&user.uuid, &user.token, "?cursor=forged.abc"))
        .await
        .assert_error(400, "Page is invalid.");
    for bad in [
        "?limit=0",
        "?order=createdAt:asc",
        "?filter[type]=login.failed",
    ] {
        let refused = call(&app, list(&user.uuid, &user.token, bad)).await;
        assert_eq!(refused.status, 400, "{bad}: {}", refused.text);
        assert!(refused.body["error"]["fields"].is_object(), "{bad}");
    }
}

#[tokio::test]
async fn an_api_gateway_event_records_its_source_ip_and_user_agent() {
    let app = testkit::app().await;
    let admin = admin(&app).await;
    let user = register(&app, "events-gateway").await;
    let changed = call(
        &app,
        testkit::event("users-put-roles", &admin.token, &user.uuid),
    )
    .await;
    assert_eq!(changed.status, 200, "{}", changed.text);

    let listed = call(
        &app,
        testkit::event("users-security-events", &user.token, &user.uuid),
    )
    .await;
    assert_eq!(listed.status, 200, "{}", listed.text);
    let newest = &listed.body["data"][0];
    assert_eq!(newest["type"], "roles.changed");
    assert_eq!(newest["ipAddress"], "203.0.113.7");
    assert!(
        newest["userAgent"]
            .as_str()
            .unwrap()
            .starts_with("Kuri/4.2.0"),
        "{newest}"
    );
}
