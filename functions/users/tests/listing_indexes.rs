//! The sharded listing indexes and counters on DynamoDB Local: prefix searches, counts kept by
//! every write (status changes, renames, deletes), and pages that read as many items whatever
//! the number of users.

mod common;

use common::call;
use serde_json::Value;
use shared::App;
use shared::domain::ids::UserId;
use shared::domain::user::{INDEX_SHARDS, Status, User, index_shard};
use shared::service::paging::Start;
use shared::service::user_listing::{self, Column, Order, UserFilters, UserQuery};
use shared::service::users;
use shared::testkit;
use shared::testkit::accounts::{Account, admin};
use shared::testkit::request;
use time::{Duration, OffsetDateTime};

const FIRST_NAMES: [&str; 4] = ["Ada", "adam", "Grace", "ADALINE"];

/// A user created `i` seconds after `start`, with a uuid of shard `i % 4` (so every shard of
/// both statuses fills evenly): every fifth inactive, first names cycling through
/// [`FIRST_NAMES`], last name `L<i>`, email `<tag>-<i>@example.com`.
fn person(tag: &str, i: usize, start: OffsetDateTime) -> User {
    let id = loop {
        let id = UserId::new();
        if index_shard(id) == (i as u32 / 5) % INDEX_SHARDS {
            break id;
        }
    };
    let at = shared::domain::clock::Clock::truncate(start + Duration::seconds(i as i64));
    User {
        id,
        email: format!("{tag}-{i:03}@example.com"),
        email_verified: false,
        first_name: Some(FIRST_NAMES[i % 4].into()),
        last_name: Some(format!("L{i:03}")),
        full_name: None,
        status: if i % 5 == 4 {
            Status::Inactive
        } else {
            Status::Active
        },
        roles: Vec::new(),
        marketing_opt_in: false,
        tos_agreed_at: Some(at),
        password_hash: "$argon2id$fake".into(),
        version: 1,
        session_epoch: 0,
        mobile: None,
        pending_mobile: None,
        factors: Default::default(),
        created_at: at,
        updated_at: at,
    }
}

async fn populate(app: &App, tag: &str, from: usize, to: usize) -> Vec<User> {
    let start = OffsetDateTime::now_utc() - Duration::days(1);
    let mut made = Vec::new();
    for i in from..to {
        let user = person(tag, i, start);
        app.users.create_user(&user).await.unwrap();
        made.push(user);
    }
    made
}

async fn get(app: &App, admin: &Account, path: &str) -> Value {
    let response = call(app, request("GET", path).bearer(&admin.token).build()).await;
    assert_eq!(response.status, 200, "{path}: {}", response.text);
    response.body
}

fn emails(body: &Value) -> Vec<String> {
    body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["email"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn prefix_searches_ignore_case_need_three_characters_and_agree_with_counts() {
    let app = testkit::app().await;
    let admin = admin(&app).await;
    let people = populate(&app, "pfx", 0, 20).await;
    let count = |query: &str| {
        let (app, admin, query) = (app.clone(), admin.clone(), query.to_owned());
        async move {
            get(&app, &admin, &format!("/users/count{query}")).await["data"]["count"]
                .as_u64()
                .unwrap()
        }
    };

    // "Ada", "adam" and "ADALINE" start with "ada"; "Grace" does not. 15 of 20 qualify.
    let adas = get(
        &app,
        &admin,
        "/users?filter[firstName]=aDa*&order=firstName:asc&limit=100",
    )
    .await;
    assert_eq!(adas["meta"]["total"], 15);
    assert_eq!(count("?filter[firstName]=aDa*").await, 15);
    let names: Vec<String> = adas["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["firstName"].as_str().unwrap().to_lowercase())
        .collect();
    let mut sorted = names.clone();
    sorted.sort();
    assert_eq!(names, sorted);
    assert!(names.iter().all(|n| n.starts_with("ada")));

    // In creation order too, and with a status.
    let by_creation = get(&app, &admin, "/users?filter[firstName]=ADA*&limit=100").await;
    let expected: Vec<String> = people
        .iter()
        .filter(|u| {
            u.first_name
                .as_deref()
                .unwrap()
                .to_lowercase()
                .starts_with("ada")
        })
        .map(|u| u.email.clone())
        .collect();
    assert_eq!(emails(&by_creation), expected);
    assert_eq!(
        count("?filter[firstName]=ada*&filter[status]=inactive").await,
        3
    );
    // Prefix of one column, exact of another.
    assert_eq!(
        count("?filter[firstName]=ada*&filter[lastName]=L001").await,
        1
    );
    assert_eq!(
        count("?filter[firstName]=ada*&filter[lastName]=L002").await,
        0
    );

    assert_eq!(count("?filter[email]=PFX-01*").await, 10);
    let page = get(
        &app,
        &admin,
        "/users?filter[email]=pfx-01*&order=email:desc&limit=3",
    )
    .await;
    assert_eq!(
        emails(&page),
        [
            "pfx-019@example.com",
            "pfx-018@example.com",
            "pfx-017@example.com"
        ]
    );
    let cursor = page["meta"]["nextCursor"].as_str().unwrap();
    let next = get(
        &app,
        &admin,
        &format!("/users?filter[email]=pfx-01*&order=email:desc&limit=3&cursor={cursor}"),
    )
    .await;
    assert_eq!(
        emails(&next),
        [
            "pfx-016@example.com",
            "pfx-015@example.com",
            "pfx-014@example.com"
        ]
    );
    assert_eq!(count("?filter[lastName]=l00*").await, 10);

    // A `*` elsewhere is literal: nobody is called that.
    assert_eq!(count("?filter[firstName]=A*a").await, 0);
    for query in [
        "?filter[firstName]=ad*",
        "?filter[lastName]=*",
        "?filter[email]=pf*",
    ] {
        let response = call(
            &app,
            request("GET", &format!("/users{query}"))
                .bearer(&admin.token)
                .build(),
        )
        .await;
        response.assert_error(400, "Validation failed.");
        let name = query[1..].split('=').next().unwrap();
        assert!(response.body["error"]["fields"][name].is_array(), "{query}");
    }
}

#[tokio::test]
async fn counts_follow_status_changes_renames_and_deletes() {
    let app = testkit::app().await;
    let admin = admin(&app).await;
    let people = populate(&app, "moves", 0, 10).await;
    let count = |query: &str| {
        let (app, admin, query) = (app.clone(), admin.clone(), query.to_owned());
        async move {
            get(&app, &admin, &format!("/users/count{query}")).await["data"]["count"]
                .as_u64()
                .unwrap()
        }
    };
    // The admin, 8 active and 2 inactive.
    assert_eq!(count("").await, 11);
    assert_eq!(count("?filter[status]=inactive").await, 2);
    assert_eq!(count("?filter[firstName]=Grace").await, 2);

    users::update(&app, people[2].id, None, |u| {
        u.status = Status::Inactive;
        u.first_name = Some("Ada".into());
        Ok(())
    })
    .await
    .unwrap();
    assert_eq!(count("").await, 11);
    assert_eq!(count("?filter[status]=inactive").await, 3);
    assert_eq!(count("?filter[firstName]=Grace").await, 1);
    assert_eq!(
        count("?filter[firstName]=Ada&filter[status]=inactive").await,
        2
    );
    let listed = get(
        &app,
        &admin,
        "/users?filter[firstName]=Ada&filter[status]=inactive",
    )
    .await;
    assert_eq!(
        emails(&listed),
        [people[2].email.clone(), people[4].email.clone()]
    );

    users::update(&app, people[0].id, None, |u| {
        u.email = "Renamed-Moves@example.com".into();
        Ok(())
    })
    .await
    .unwrap();
    let renamed = get(
        &app,
        &admin,
        "/users?filter[email]=renamed-mo*&order=email:asc",
    )
    .await;
    assert_eq!(emails(&renamed), ["Renamed-Moves@example.com"]);
    assert_eq!(count("?filter[email]=moves-000*").await, 0);

    users::soft_delete(&app, people[2].id, &Default::default())
        .await
        .unwrap();
    assert_eq!(count("").await, 10);
    assert_eq!(count("?filter[status]=inactive").await, 2);
    assert_eq!(count("?filter[firstName]=Ada").await, 3);
    assert_eq!(count("?filter[lastName]=L002").await, 0);
    assert_eq!(count("?filter[lastName]=l00*").await, 9);
    for order in ["createdAt", "email", "firstName", "lastName", "status"] {
        let everyone = get(&app, &admin, &format!("/users?order={order}:asc&limit=100")).await;
        assert_eq!(everyone["meta"]["total"], 10, "{order}");
        assert_eq!(everyone["data"].as_array().unwrap().len(), 10, "{order}");
        assert!(!emails(&everyone).contains(&people[2].email), "{order}");
    }
}

/// The items a page reads, through a DynamoDB store of its own whose meter is read.
async fn items_read(
    app: &App,
    store: &shared::store::dynamo::DynamoStore,
    query: &UserQuery,
) -> u64 {
    store.reads.take();
    user_listing::list_users(app, query).await.unwrap();
    store.reads.take().items
}

#[tokio::test]
async fn a_page_reads_at_most_limit_plus_one_per_shard_whatever_the_population() {
    let mut app = testkit::app().await;
    let store = testkit::dynamo_store(&app).await;
    app.core.users = store.clone();
    let limit = 2;
    // Every shard's bound plus the counter shards.
    let bound = (2 * INDEX_SHARDS as u64) * (limit as u64 + 1) + 16;
    let orders: Vec<Order> = [
        Column::CreatedAt,
        Column::Email,
        Column::FirstName,
        Column::LastName,
        Column::Status,
    ]
    .into_iter()
    .flat_map(|column| [true, false].map(|ascending| Order { column, ascending }))
    .collect();
    let filters = [
        UserFilters::default(),
        UserFilters {
            status: Some(Status::Inactive),
            ..Default::default()
        },
        UserFilters {
            first_name: Some("Grace".into()),
            ..Default::default()
        },
        UserFilters {
            first_name: Some("ada*".into()),
            ..Default::default()
        },
        UserFilters {
            email: Some("reads-0*".into()),
            ..Default::default()
        },
    ];
    for (from, to) in [(0, 80), (80, 240)] {
        populate(&app, "reads", from, to).await;
        for order in &orders {
            for filter in &filters {
                // Orders the filter's index keeps, or creation order within an exact name.
                let kept = match (&filter.first_name, &filter.email) {
                    (Some(name), _) if name.ends_with('*') => order.column == Column::FirstName,
                    (Some(_), _) => matches!(
                        order.column,
                        Column::FirstName | Column::CreatedAt | Column::Status
                    ),
                    (_, Some(_)) => order.column == Column::Email,
                    _ => true,
                };
                if !kept {
                    continue;
                }
                let query = |start| UserQuery {
                    filters: filter.clone(),
                    order: *order,
                    limit,
                    start,
                };
                let first = user_listing::list_users(&app, &query(Start::Page(1)))
                    .await
                    .unwrap();
                let deep = Start::Cursor(first.next_cursor.clone().unwrap());
                // A prefix's `total` is the one read that grows with its matches (a `Select
                // COUNT` per shard: no counter keeps prefixes); the page itself does not.
                let prefix = [&filter.email, &filter.first_name, &filter.last_name]
                    .into_iter()
                    .any(|f| f.as_deref().is_some_and(|f| f.ends_with('*')));
                let count_reads = if prefix {
                    store.reads.take();
                    user_listing::count_users(&app, filter).await.unwrap();
                    store.reads.take().items
                } else {
                    0
                };
                let first_reads =
                    items_read(&app, &store, &query(Start::Page(1))).await - count_reads;
                let deep_reads = items_read(&app, &store, &query(deep)).await - count_reads;
                assert!(
                    first_reads <= bound && deep_reads <= bound,
                    "{order:?} {filter:?}: {first_reads}, {deep_reads} items read"
                );
            }
        }
        let counted = items_read(
            &app,
            &store,
            &UserQuery {
                filters: UserFilters::default(),
                order: Order::default(),
                limit,
                start: Start::Page(1),
            },
        )
        .await;
        assert!(counted <= bound);
        store.reads.take();
        let total = user_listing::count_users(&app, &UserFilters::default())
            .await
            .unwrap();
        assert_eq!(total, to as u64);
        assert!(
            store.reads.take().items <= 16,
            "a count reads the counter shards only"
        );
    }
    // The same bound held at 80 and at 240 users (three times as many): what a page reads
    // depends on `limit` and the shards, not on the population. (Not equal item for item: the
    // uuids, and so the shards, are random, and a shard nearly read out reads less.)
}
