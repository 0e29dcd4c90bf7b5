//! `GET /users` and `GET /users/count` against DynamoDB Local: paging, cursors, filters,
//! orders and their errors.

mod common;

use common::call;
use serde_json::{Value, json};
use shared::App;
use shared::domain::email::Email;
use shared::domain::ids::UserId;
use shared::domain::user::{Status, User};
use shared::security::password::Password;
use shared::service::users;
use shared::service::users::NewUser;
use shared::testkit;
use shared::testkit::accounts;
use shared::testkit::accounts::{Account, admin};
use shared::testkit::{TestResponse, request};

const FIRST_NAMES: [&str; 3] = ["Ada", "Grace", "alan"];

/// 24 users besides the admin (who is listed too, first): `list-NN-…` emails, first names
/// cycling through [`FIRST_NAMES`], last names `LNN`, every fourth one inactive.
async fn population() -> (App, Account, Vec<User>) {
    let app = testkit::app().await;
    let admin = admin(&app).await;
    let mut people = Vec::new();
    for i in 0..24 {
        let user = users::register(
            &app,
            NewUser {
                email: Email::parse(&accounts::unique_email(&format!("list-{i:02}"))).unwrap(),
                password: Password::parse(accounts::PASSWORD).unwrap(),
                first_name: Some(FIRST_NAMES[i % 3].to_owned()),
                last_name: Some(format!("L{i:02}")),
                full_name: None,
                marketing_opt_in: false,
            },
        )
        .await
        .unwrap();
        let user = if i % 4 == 3 {
            users::update(&app, user.id, None, |u| {
                u.status = Status::Inactive;
                Ok(())
            })
            .await
            .unwrap()
        } else {
            user
        };
        people.push(user);
    }
    (app, admin, people)
}

async fn list(app: &App, admin: &Account, query: &str) -> TestResponse {
    call(
        app,
        request("GET", &format!("/users{query}"))
            .bearer(&admin.token)
            .build(),
    )
    .await
}

fn uuids(response: &TestResponse) -> Vec<String> {
    response.body["data"]
        .as_array()
        .unwrap_or_else(|| panic!("no data: {}", response.text))
        .iter()
        .map(|u| u["uuid"].as_str().unwrap().to_owned())
        .collect()
}

fn field(response: &TestResponse, name: &str) -> Value {
    response.body["error"]["fields"][name].clone()
}

#[tokio::test]
async fn pages_and_cursors_walk_every_user_in_creation_order() {
    let (app, admin, people) = population().await;
    let mut everyone = vec![admin.uuid.clone()];
    everyone.extend(people.iter().map(|u| u.id.to_string()));

    let first = list(&app, &admin, "?limit=10").await;
    assert_eq!(first.status, 200, "{}", first.text);
    assert_eq!(uuids(&first), everyone[..10]);
    assert_eq!(first.body["meta"]["page"], 1);
    assert_eq!(first.body["meta"]["limit"], 10);
    assert_eq!(first.body["meta"]["total"], 25);
    assert!(first.body["meta"]["nextCursor"].is_string());
    assert_eq!(first.body["data"][1]["email"], people[0].email.as_str());
    assert!(first.body["data"][1].get("passwordHash").is_none());

    let last = list(&app, &admin, "?limit=10&page=3").await;
    assert_eq!(uuids(&last), everyone[20..]);
    assert_eq!(last.body["meta"]["nextCursor"], Value::Null);
    assert_eq!(last.body["meta"]["total"], 25);

    let beyond = list(&app, &admin, "?limit=10&page=4").await;
    assert_eq!(
        (beyond.status, beyond.body["data"].clone()),
        (200, json!([]))
    );
    assert_eq!(beyond.body["meta"]["nextCursor"], Value::Null);

    let mut walked = Vec::new();
    let mut query = "?limit=7".to_owned();
    let mut pages = 0;
    loop {
        let page = list(&app, &admin, &query).await;
        assert_eq!(page.status, 200, "{}", page.text);
        pages += 1;
        assert_eq!(page.body["meta"]["page"], pages);
        walked.extend(uuids(&page));
        match page.body["meta"]["nextCursor"].as_str() {
            Some(cursor) => query = format!("?limit=7&cursor={cursor}"),
            None => break,
        }
    }
    assert_eq!((walked, pages), (everyone.clone(), 4));

    let newest_first = list(&app, &admin, "?order=createdAt:desc&limit=100").await;
    let mut reversed = everyone.clone();
    reversed.reverse();
    assert_eq!(uuids(&newest_first), reversed);
}

#[tokio::test]
async fn filters_match_exactly_orders_sort_and_count_agrees() {
    let (app, admin, people) = population().await;
    let count = |query: String| {
        let (app, token) = (app.clone(), admin.token.clone());
        async move {
            let response = call(
                &app,
                request("GET", &format!("/users/count{query}"))
                    .bearer(&token)
                    .build(),
            )
            .await;
            assert_eq!(response.status, 200, "{}", response.text);
            response.body["data"]["count"].as_u64().unwrap()
        }
    };

    let inactive = list(&app, &admin, "?filter[status]=inactive").await;
    assert_eq!(inactive.body["meta"]["total"], 6);
    assert!(
        inactive.body["data"]
            .as_array()
            .unwrap()
            .iter()
            .all(|u| u["status"] == "inactive")
    );
    assert_eq!(count("?filter[status]=inactive".into()).await, 6);
    assert_eq!(count("?filter[status]=active".into()).await, 19);
    assert_eq!(count(String::new()).await, 25);

    let shouted = people[5].email.to_uppercase();
    let by_email = list(&app, &admin, &format!("?filter[email]={shouted}")).await;
    assert_eq!(uuids(&by_email), [people[5].id.to_string()]);
    assert_eq!(count(format!("?filter[email]={shouted}")).await, 1);

    let by_uuid = list(&app, &admin, &format!("?filter[uuid]={}", people[7].id)).await;
    assert_eq!(uuids(&by_uuid), [people[7].id.to_string()]);
    let inactive_by_uuid = format!("?filter[uuid]={}&filter[status]=active", people[7].id);
    assert_eq!(
        list(&app, &admin, &inactive_by_uuid).await.body["data"],
        json!([])
    );

    let nobody = list(&app, &admin, &format!("?filter[uuid]={}", UserId::new())).await;
    assert_eq!(
        (nobody.status, nobody.body["data"].clone()),
        (200, json!([]))
    );
    assert_eq!(nobody.body["meta"]["total"], 0);

    // Exact match: "alan" is not "Alan", and "Ad" is no prefix search.
    assert_eq!(count("?filter[firstName]=Alan".into()).await, 0);
    assert_eq!(count("?filter[firstName]=Ad".into()).await, 0);
    let adas = list(
        &app,
        &admin,
        "?filter[firstName]=Ada&order=lastName:desc&limit=3",
    )
    .await;
    assert_eq!(adas.body["meta"]["total"], 8);
    let last_names: Vec<&str> = adas.body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["lastName"].as_str().unwrap())
        .collect();
    assert_eq!(last_names, ["L21", "L18", "L15"]);
    let rest = list(
        &app,
        &admin,
        &format!(
            "?filter[firstName]=Ada&order=lastName:desc&limit=3&cursor={}",
            adas.body["meta"]["nextCursor"].as_str().unwrap()
        ),
    )
    .await;
    let last_names: Vec<&str> = rest.body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["lastName"].as_str().unwrap())
        .collect();
    assert_eq!(last_names, ["L12", "L09", "L06"]);
    assert_eq!(
        count("?filter[firstName]=Ada&filter[lastName]=L04".into()).await,
        0
    );
    assert_eq!(
        count("?filter[firstName]=Ada&filter[lastName]=L06".into()).await,
        1
    );

    let by_email = list(&app, &admin, "?order=email:asc&limit=100").await;
    let emails: Vec<String> = by_email.body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["email"].as_str().unwrap().to_lowercase())
        .collect();
    let mut sorted = emails.clone();
    sorted.sort();
    assert_eq!(emails, sorted);

    let by_status = list(&app, &admin, "?order=status:desc&limit=6").await;
    assert!(
        by_status.body["data"]
            .as_array()
            .unwrap()
            .iter()
            .all(|u| u["status"] == "inactive")
    );
    assert!(by_status.body["meta"]["nextCursor"].is_string());
}

#[tokio::test]
async fn deleted_users_never_appear_in_lists_or_counts() {
    let (app, admin, people) = population().await;
    users::soft_delete(&app, people[0].id, &Default::default())
        .await
        .unwrap();
    let everyone = list(&app, &admin, "?limit=100").await;
    assert_eq!(everyone.body["meta"]["total"], 24);
    assert!(!uuids(&everyone).contains(&people[0].id.to_string()));
    let by_email = list(&app, &admin, &format!("?filter[email]={}", people[0].email)).await;
    assert_eq!(by_email.body["data"], json!([]));
    let by_uuid = list(&app, &admin, &format!("?filter[uuid]={}", people[0].id)).await;
    assert_eq!(by_uuid.body["data"], json!([]));
    let by_name = list(&app, &admin, "?filter[lastName]=L00").await;
    assert_eq!(by_name.body["meta"]["total"], 0);
}

#[tokio::test]
async fn a_cursor_is_valid_only_for_its_own_order_filters_and_limit() {
    let (app, admin, _) = population().await;
    let first = list(&app, &admin, "?limit=5&filter[status]=active").await;
    let cursor = first.body["meta"]["nextCursor"]
        .as_str()
        .unwrap()
        .to_owned();
    let same = list(
        &app,
        &admin,
        &format!("?limit=5&filter[status]=active&cursor={cursor}"),
    )
    .await;
    assert_eq!(
        (same.status, same.body["meta"]["page"].clone()),
        (200, json!(2))
    );
    for query in [
        format!("?limit=6&filter[status]=active&cursor={cursor}"),
        format!("?limit=5&cursor={cursor}"),
        format!("?limit=5&filter[status]=inactive&cursor={cursor}"),
        format!("?limit=5&filter[status]=active&order=createdAt:desc&cursor={cursor}"),
        format!("?limit=5&filter[status]=active&cursor={cursor}x"),
        "?limit=5&filter[status]=active&cursor=not-a-cursor".to_owned(),
        "?cursor=".to_owned(),
    ] {
        list(&app, &admin, &query)
            .await
            .assert_error(400, "Page is invalid.");
    }
}

#[tokio::test]
async fn listing_errors_use_the_seed_messages_and_name_the_bad_parameter() {
    let app = testkit::app().await;
    let admin = admin(&app).await;
    let user = accounts::register(&app, "plain").await;

    call(&app, request("GET", "/users").build())
        .await
        .assert_error(401, "Invalid token");
    call(&app, request("GET", "/users").bearer("not.a.jwt").build())
        .await
        .assert_error(401, "Invalid token");
    call(&app, request("GET", "/users").bearer(&user.token).build())
        .await
        .assert_error(403, "No Access.");
    call(&app, request("GET", "/users/count").build())
        .await
        .assert_error(401, "Invalid token");
    call(
        &app,
        request("GET", "/users/count").bearer(&user.token).build(),
    )
    .await
    .assert_error(403, "No Access.");

    for page in ["0", "-1", "two", "1.5", ""] {
        list(&app, &admin, &format!("?page={page}"))
            .await
            .assert_error(400, "Page is invalid.");
    }
    for (query, name) in [
        ("?limit=0", "limit"),
        ("?limit=101", "limit"),
        ("?limit=ten", "limit"),
        ("?order=password:asc", "order"),
        ("?order=email:sideways", "order"),
        ("?filter[foo]=bar", "filter[foo]"),
        ("?filter[status]=deleted", "filter[status]"),
        ("?filter[uuid]=not-a-uuid", "filter[uuid]"),
    ] {
        let response = list(&app, &admin, query).await;
        assert_eq!(response.status, 400, "{query}: {}", response.text);
        assert!(
            field(&response, name).is_array(),
            "{query}: {}",
            response.text
        );
        let count = call(
            &app,
            request("GET", &format!("/users/count{query}"))
                .bearer(&admin.token)
                .build(),
        )
        .await;
        let counted = count.status == 200;
        // Count takes the list's filters; page, limit and order mean nothing to it.
        assert_eq!(
            counted,
            !name.starts_with("filter"),
            "{query}: {}",
            count.text
        );
    }
}

#[tokio::test]
async fn the_recorded_api_gateway_events_route_to_the_listing() {
    let app = testkit::app().await;
    let admin = admin(&app).await;
    let response = TestResponse::from(
        ::users::handle(
            &app,
            testkit::event("users-list", &admin.token, &admin.uuid),
        )
        .await,
    );
    assert_eq!(response.status, 200, "{}", response.text);
    assert_eq!(response.body["meta"]["limit"], 10);
    assert_eq!(uuids(&response), [admin.uuid.as_str()]);
    let response = TestResponse::from(
        ::users::handle(
            &app,
            testkit::event("users-count", &admin.token, &admin.uuid),
        )
        .await,
    );
    assert_eq!(response.status, 200, "{}", response.text);
    assert_eq!(response.body["data"], json!({"count": 1}));
}

#[tokio::test]
async fn an_email_filter_over_254_bytes_is_a_field_error_before_any_lookup() {
    let app = testkit::app().await;
    let admin = admin(&app).await;
    // Far past DynamoDB's 2,048-byte partition key: a lookup would fail with a 500.
    for local in [255, 3000] {
        let long = format!("{}@example.com", "a".repeat(local));
        let response = list(&app, &admin, &format!("?filter[email]={long}")).await;
        response.assert_error(400, "Validation failed.");
        assert!(response.body["error"]["fields"]["filter[email]"].is_array());
    }
}
