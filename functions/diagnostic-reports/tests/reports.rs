//! Diagnostic reports against DynamoDB Local and moto's S3: presigned URLs work with a plain
//! HTTP client, listings are the owner's (or a csrAdmin's), and deleted users are not found.

use serde_json::{Value, json};
use shared::App;
use shared::testkit;
use shared::testkit::accounts;
use shared::testkit::accounts::Account;
use shared::testkit::{TestResponse, request};

async fn call(app: &App, req: lambda_http::Request) -> TestResponse {
    TestResponse::from(diagnostic_reports::handle(app, req).await)
}

async fn create(app: &App, token: &str, body: Value) -> TestResponse {
    call(
        app,
        request("POST", "/users/diagnostic-reports")
            .json(body)
            .bearer(token)
            .build(),
    )
    .await
}

async fn list(app: &App, token: &str, user: &str, query: &str) -> TestResponse {
    call(
        app,
        request("GET", &format!("/users/{user}/diagnostic-reports{query}"))
            .bearer(token)
            .build(),
    )
    .await
}

fn keys(value: &Value) -> Vec<&str> {
    let mut keys: Vec<&str> = value
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    keys.sort();
    keys
}

fn query_param<'a>(url: &'a str, name: &str) -> Option<&'a str> {
    url.split_once('?')?
        .1
        .split('&')
        .find_map(|pair| pair.strip_prefix(name)?.strip_prefix('='))
}

#[tokio::test]
async fn a_report_uploaded_to_its_presigned_url_downloads_with_the_same_bytes() {
    let app = testkit::app().await;
    let Account {
        uuid: user, token, ..
    } = accounts::register(&app, "user").await;

    let created = create(
        &app,
        &token,
        json!({
            "fileName": "robot-logs 2024-05-01.zip",
            "contentType": "application/zip",
            "description": "Robot stopped responding after the firmware update",
        }),
    )
    .await;
    assert_eq!(created.status, 201, "{}", created.text);
    let report = &created.body["data"];
    assert_eq!(
        keys(report),
        ["createdAt", "fileName", "upload", "userUUID", "uuid"]
    );
    assert_eq!(report["userUUID"], user.as_str());
    assert_eq!(report["fileName"], "robot-logs 2024-05-01.zip");
    let upload = &report["upload"];
    assert_eq!(keys(upload), ["expiresAt", "headers", "method", "url"]);
    assert_eq!(upload["method"], "PUT");
    assert_eq!(
        upload["headers"],
        json!({"Content-Type": "application/zip"})
    );
    let url = upload["url"].as_str().unwrap();
    let report_uuid = report["uuid"].as_str().unwrap();
    assert!(url.starts_with(&testkit::moto_url()), "{url}");
    assert!(
        url.contains(&format!(
            "/test-diagnostic-reports/diagnostic-reports/{user}/{report_uuid}?"
        )),
        "{url}"
    );
    assert_eq!(query_param(url, "X-Amz-Expires"), Some("900"));
    let signed = query_param(url, "X-Amz-SignedHeaders").unwrap();
    assert!(signed.split("%3B").any(|h| h == "content-type"), "{signed}");
    let created_at = shared::domain::clock::parse(report["createdAt"].as_str().unwrap()).unwrap();
    let expires_at = shared::domain::clock::parse(upload["expiresAt"].as_str().unwrap()).unwrap();
    assert_eq!(expires_at - created_at, time::Duration::minutes(15));

    let bytes: Vec<u8> = (0..=255u8).cycle().take(70_000).collect();
    let http = reqwest::Client::new();
    let put = http
        .put(url)
        .header("Content-Type", "application/zip")
        .body(bytes.clone())
        .send()
        .await
        .unwrap();
    assert!(put.status().is_success(), "PUT answered {}", put.status());

    let listed = list(&app, &token, &user, "?order=createdAt:desc").await;
    assert_eq!(listed.status, 200, "{}", listed.text);
    assert_eq!(
        listed.body["meta"],
        json!({"page": 1, "limit": 20, "total": 1, "nextCursor": null})
    );
    let item = &listed.body["data"][0];
    assert_eq!(
        keys(item),
        [
            "contentType",
            "createdAt",
            "description",
            "downloadUrl",
            "fileName",
            "userUUID",
            "uuid"
        ]
    );
    assert_eq!(item["uuid"], report_uuid);
    assert_eq!(item["createdAt"], report["createdAt"]);
    assert_eq!(item["contentType"], "application/zip");
    assert_eq!(
        item["description"],
        "Robot stopped responding after the firmware update"
    );

    let download = http
        .get(item["downloadUrl"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    assert!(
        download.status().is_success(),
        "GET answered {}",
        download.status()
    );
    assert_eq!(
        download.headers()["content-type"].to_str().unwrap(),
        "application/zip"
    );
    assert_eq!(
        download.headers()["content-disposition"].to_str().unwrap(),
        "attachment; filename=\"robot-logs 2024-05-01.zip\"; \
         filename*=UTF-8''robot-logs%202024-05-01.zip"
    );
    assert_eq!(download.bytes().await.unwrap().as_ref(), bytes.as_slice());
}

#[tokio::test]
async fn without_a_content_type_the_upload_needs_no_headers() {
    let app = testkit::app().await;
    let Account {
        uuid: user, token, ..
    } = accounts::register(&app, "user").await;
    let created = create(&app, &token, json!({})).await;
    assert_eq!(created.status, 201, "{}", created.text);
    let report = &created.body["data"];
    assert_eq!(report["fileName"], Value::Null);
    assert_eq!(report["upload"]["headers"], json!({}));

    let http = reqwest::Client::new();
    let put = http
        .put(report["upload"]["url"].as_str().unwrap())
        .body("plain bytes")
        .send()
        .await
        .unwrap();
    assert!(put.status().is_success(), "PUT answered {}", put.status());

    let listed = list(&app, &token, &user, "").await;
    let item = &listed.body["data"][0];
    assert_eq!(
        (
            &item["fileName"],
            &item["contentType"],
            &item["description"]
        ),
        (&Value::Null, &Value::Null, &Value::Null)
    );
    let body = http
        .get(item["downloadUrl"].as_str().unwrap())
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(body, "plain bytes");
}

#[tokio::test]
async fn another_user_gets_403_and_a_csr_admin_may_list() {
    let app = testkit::app().await;
    let Account {
        uuid: owner,
        token: owner_token,
        ..
    } = accounts::register(&app, "user").await;
    let other_token = accounts::register(&app, "user").await.token;
    assert_eq!(
        create(&app, &owner_token, json!({"fileName": "a.txt"}))
            .await
            .status,
        201
    );

    list(&app, &other_token, &owner, "")
        .await
        .assert_error(403, "No Access.");

    let listed = list(&app, &accounts::admin(&app).await.token, &owner, "").await;
    assert_eq!(listed.status, 200, "{}", listed.text);
    assert_eq!(listed.body["data"][0]["fileName"], "a.txt");
}

#[tokio::test]
async fn a_deleted_users_reports_are_no_longer_listed() {
    let app = testkit::app().await;
    let Account {
        uuid: owner,
        token: owner_token,
        ..
    } = accounts::register(&app, "user").await;
    assert_eq!(create(&app, &owner_token, json!({})).await.status, 201);
    let admin = accounts::admin(&app).await.token;
    assert_eq!(list(&app, &admin, &owner, "").await.status, 200);

    let id = shared::domain::ids::UserId::parse(&owner).unwrap();
    shared::service::users::update(&app, id, None, |u| {
        u.status = shared::domain::user::Status::Deleted;
        shared::service::users::revoke_all_sessions(u);
        Ok(())
    })
    .await
    .unwrap();

    list(&app, &admin, &owner, "")
        .await
        .assert_error(404, "This user does not exist.");
    list(&app, &owner_token, &owner, "")
        .await
        .assert_error(401, "Invalid token");
}

#[tokio::test]
async fn listing_pages_newest_first_by_default_and_follows_cursors() {
    let app = testkit::app().await;
    let Account {
        uuid: user, token, ..
    } = accounts::register(&app, "user").await;
    let mut created = Vec::new();
    for i in 0..5 {
        let response = create(&app, &token, json!({"fileName": format!("log-{i}.txt")})).await;
        created.push(response.body["data"]["uuid"].as_str().unwrap().to_owned());
        app.clock.advance(time::Duration::seconds(1));
    }
    let uuids = |response: &TestResponse| -> Vec<String> {
        response.body["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|item| item["uuid"].as_str().unwrap().to_owned())
            .collect()
    };

    let first = list(&app, &token, &user, "?limit=2").await;
    assert_eq!(uuids(&first), [created[4].clone(), created[3].clone()]);
    assert_eq!(first.body["meta"]["total"], 5);
    let cursor = first.body["meta"]["nextCursor"].as_str().unwrap();
    let second = list(&app, &token, &user, &format!("?limit=2&cursor={cursor}")).await;
    assert_eq!(second.status, 200, "{}", second.text);
    assert_eq!(uuids(&second), [created[2].clone(), created[1].clone()]);
    assert_eq!(second.body["meta"]["page"], 2);

    let last = list(&app, &token, &user, "?limit=2&page=3").await;
    assert_eq!(uuids(&last), [created[0].clone()]);
    assert_eq!(last.body["meta"]["nextCursor"], Value::Null);

    let oldest = list(&app, &token, &user, "?order=createdAt:asc&limit=3").await;
    assert_eq!(uuids(&oldest), created[..3]);
    let cursor = oldest.body["meta"]["nextCursor"].as_str().unwrap();
    let rest = list(
        &app,
        &token,
        &user,
        &format!("?order=createdAt:asc&limit=3&cursor={cursor}"),
    )
    .await;
    assert_eq!(uuids(&rest), created[3..]);

    let beyond = list(&app, &token, &user, "?page=4&limit=2").await;
    assert_eq!(beyond.status, 200);
    assert_eq!(beyond.body["data"], json!([]));
}

#[tokio::test]
async fn bad_paging_answers_like_the_user_listing() {
    let app = testkit::app().await;
    let Account {
        uuid: user, token, ..
    } = accounts::register(&app, "user").await;
    for query in [
        "?page=0",
        "?page=abc",
        "?cursor=garbage",
        "?page=1&cursor=abc",
    ] {
        list(&app, &token, &user, query)
            .await
            .assert_error(400, "Page is invalid.");
    }
    for (query, field) in [
        ("?limit=0", "limit"),
        ("?limit=101", "limit"),
        ("?order=email:asc", "order"),
        ("?order=createdAt:up", "order"),
    ] {
        let response = list(&app, &token, &user, query).await;
        assert_eq!(response.status, 400, "{query}: {}", response.text);
        assert!(
            response.body["error"]["fields"][field].is_array(),
            "{query}: {}",
            response.text
        );
    }
}

#[tokio::test]
async fn malformed_uuids_and_missing_tokens_are_refused() {
    let app = testkit::app().await;
    let token = accounts::register(&app, "user").await.token;
    for bad in [
        "not-a-uuid",
        "{4f8e2a4c-1b7d-4c1e-9a3b-0c5d6e7f8a9b}",
        "4f8e2a4c1b7d4c1e9a3b0c5d6e7f8a9b",
    ] {
        list(&app, &token, bad, "")
            .await
            .assert_error(400, "Invalid user UUID.");
    }
    create(&app, "nonsense", json!({}))
        .await
        .assert_error(401, "Invalid token");
    let anonymous = call(
        &app,
        request(
            "GET",
            &format!("/users/{}/diagnostic-reports", uuid::Uuid::new_v4()),
        )
        .build(),
    )
    .await;
    anonymous.assert_error(401, "Invalid token");
}

#[tokio::test]
async fn bad_create_fields_are_field_errors_under_their_names() {
    let app = testkit::app().await;
    let token = accounts::register(&app, "user").await.token;
    for (body, field) in [
        (json!({"contentType": "text/html"}), "contentType"),
        (
            json!({"contentType": "text/plain; charset=utf-8"}),
            "contentType",
        ),
        (json!({"fileName": "../etc/passwd"}), "fileName"),
        (json!({"fileName": "a\\b.txt"}), "fileName"),
        (json!({"fileName": "line\nbreak.txt"}), "fileName"),
        (json!({"fileName": "x".repeat(256)}), "fileName"),
        (json!({"fileName": 7}), "fileName"),
        (json!({"description": "x".repeat(2001)}), "description"),
        (json!({"userUUID": "someone-else"}), "userUUID"),
    ] {
        let response = create(&app, &token, body.clone()).await;
        assert_eq!(response.status, 400, "{body}: {}", response.text);
        assert!(
            response.body["error"]["fields"][field].is_array(),
            "{body}: {}",
            response.text
        );
    }
    for content_type in shared::domain::report::CONTENT_TYPES {
        let response = create(&app, &token, json!({"contentType": content_type})).await;
        assert_eq!(response.status, 201, "{content_type}: {}", response.text);
    }
}

#[tokio::test]
async fn the_api_gateway_events_reach_both_routes() {
    let app = testkit::app().await;
    let Account {
        uuid: user, token, ..
    } = accounts::register(&app, "user").await;
    let created = call(
        &app,
        testkit::event("diagnostic-reports-create", &token, &user),
    )
    .await;
    assert_eq!(created.status, 201, "{}", created.text);
    assert_eq!(
        created.body["data"]["fileName"],
        "robot-logs-2024-05-01.zip"
    );
    let listed = call(
        &app,
        testkit::event("diagnostic-reports-list", &token, &user),
    )
    .await;
    assert_eq!(listed.status, 200, "{}", listed.text);
    assert_eq!(listed.body["data"][0]["uuid"], created.body["data"]["uuid"]);
}

#[tokio::test]
async fn a_given_size_is_signed_into_the_upload_and_sent_as_its_content_length() {
    let app = testkit::app().await;
    let Account { token, .. } = accounts::register(&app, "sized").await;
    let bytes: Vec<u8> = (0..=255u8).cycle().take(4096).collect();
    let created = create(
        &app,
        &token,
        json!({"contentType": "application/gzip", "size": bytes.len()}),
    )
    .await;
    assert_eq!(created.status, 201, "{}", created.text);
    let upload = &created.body["data"]["upload"];
    assert_eq!(
        upload["headers"],
        json!({"Content-Type": "application/gzip", "Content-Length": "4096"})
    );
    let url = upload["url"].as_str().unwrap();
    // S3 recomputes the signature over the signed headers, so an upload of any other size
    // does not match it. (moto does not check signatures, so that refusal is S3's alone.)
    let signed = query_param(url, "X-Amz-SignedHeaders").unwrap();
    let signed: Vec<&str> = signed.split("%3B").collect();
    assert!(signed.contains(&"content-length"), "{signed:?}");
    assert!(signed.contains(&"content-type"), "{signed:?}");

    let put = reqwest::Client::new()
        .put(url)
        .header("Content-Type", "application/gzip")
        .body(bytes)
        .send()
        .await
        .unwrap();
    assert!(put.status().is_success(), "PUT answered {}", put.status());

    // Without a size nothing about the length is signed.
    let unsized_report = create(&app, &token, json!({})).await;
    let url = unsized_report.body["data"]["upload"]["url"]
        .as_str()
        .unwrap();
    let signed = query_param(url, "X-Amz-SignedHeaders").unwrap();
    assert!(!signed.contains("content-length"), "{signed}");
}

#[tokio::test]
async fn sizes_outside_one_byte_to_100_mib_are_field_errors_and_write_nothing() {
    let app = testkit::app().await;
    let Account {
        uuid: user, token, ..
    } = accounts::register(&app, "badsize").await;
    for size in [
        json!(0),
        json!(-5),
        json!(104_857_601),
        json!(1.5),
        json!("12"),
    ] {
        let response = create(&app, &token, json!({ "size": size })).await;
        response.assert_error(400, "Validation failed.");
        assert!(
            response.body["error"]["fields"]["size"].is_array(),
            "{size}: {}",
            response.text
        );
    }
    let biggest = create(&app, &token, json!({"size": 104_857_600})).await;
    assert_eq!(biggest.status, 201, "{}", biggest.text);
    let listed = list(&app, &token, &user, "").await;
    assert_eq!(listed.body["meta"]["total"], 1);
}

#[tokio::test]
async fn twenty_reports_a_day_then_429_with_retry_after_and_nothing_written() {
    let app = testkit::app().await;
    let account = accounts::register(&app, "quota").await;
    let (user, token) = (&account.uuid, &account.token);
    for i in 0..20 {
        let response = create(&app, token, json!({"fileName": format!("log-{i}.txt")})).await;
        assert_eq!(response.status, 201, "{i}: {}", response.text);
        app.clock.advance(time::Duration::seconds(30));
    }
    let refused = create(&app, token, json!({"fileName": "one-too-many.txt"})).await;
    refused.assert_error(429, "Too many diagnostic reports.");
    let retry_after: i64 = refused.header("retry-after").unwrap().parse().unwrap();
    // Until the first report, made 10 minutes ago, leaves the 24 hours.
    assert!(
        (24 * 3600 - 10 * 60 - 5..=24 * 3600 - 10 * 60).contains(&retry_after),
        "{retry_after}"
    );
    assert_eq!(refused.header("cache-control"), Some("no-store"));
    let listed = list(&app, token, user, "?limit=100").await;
    assert_eq!(listed.body["meta"]["total"], 20);

    // Another user has a quota of their own.
    let other = accounts::register(&app, "quota-other").await;
    assert_eq!(create(&app, &other.token, json!({})).await.status, 201);

    // A day after the first, one more fits (the access token expired meanwhile).
    app.clock
        .advance(time::Duration::hours(24) - time::Duration::minutes(10));
    let fresh = accounts::login(&app, &account.email, accounts::PASSWORD)
        .await
        .unwrap();
    assert_eq!(create(&app, &fresh.token, json!({})).await.status, 201);
    let refused_again = create(&app, &fresh.token, json!({})).await;
    assert_eq!(refused_again.status, 429, "{}", refused_again.text);
}

#[tokio::test]
async fn answers_with_presigned_urls_are_never_cached() {
    let app = testkit::app().await;
    let Account {
        uuid: user, token, ..
    } = accounts::register(&app, "no-store").await;
    let created = create(&app, &token, json!({})).await;
    let listed = list(&app, &token, &user, "").await;
    for (what, response, status) in [("create", &created, 201), ("list", &listed, 200)] {
        assert_eq!(response.status, status, "{what}: {}", response.text);
        assert_eq!(response.header("cache-control"), Some("no-store"), "{what}");
    }
}
