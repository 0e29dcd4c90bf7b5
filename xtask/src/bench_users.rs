//! `cargo xtask bench --users N`: loads N users into a DynamoDB Local of its own (batch writes
//! of the items every write stores, and their counters), then runs the admin listing and count
//! per order and filter through `shared::service::user_listing` on the DynamoDB store, and
//! prints, for each, the items read (`ScannedCount`, plus counter items), the read capacity
//! DynamoDB Local reports (`ConsumedCapacity`), the requests and the latency. Also written to
//! `target/bench/users-<N>.json`.

use std::process::ExitCode;
use std::sync::Arc;
use std::time::Instant;

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::{PutRequest, WriteRequest};
use serde_json::json;
use shared::app::Core;
use shared::domain::ids::UserId;
use shared::domain::user::{Status, User};
use shared::service::paging::{Page, Start};
use shared::service::user_listing::{self, Column, Order, UserFilters, UserQuery};
use shared::store::dynamo::{DynamoStore, Item, Reads, claim_item, counter_items, user_item};
use time::{Duration, OffsetDateTime};

use crate::localenv::{LocalEnv, Purpose};
use crate::stack::{Ports, Stack};
use crate::{Result, block_on, root};

/// The cold-start bench's ports (8002/5002) moved by 30, so both benches can run at once.
const PORTS: Ports = Ports {
    dynamodb: 8032,
    moto: 5032,
};
const TABLE: &str = "kuri-users-bench-listing";
const LIMIT: usize = 20;
/// The page a deep cursor page is reached at, following cursors from the first.
const DEEP_PAGE: u64 = 50;

const FIRST_NAMES: [&str; 12] = [
    "Ada",
    "Adam",
    "Adalbert",
    "Adaline",
    "Grace",
    "Alan",
    "Barbara",
    "Edsger",
    "Frances",
    "Katherine",
    "Linus",
    "Margaret",
];
const LAST_NAMES: [&str; 10] = [
    "Lovelace", "Hopper", "Turing", "Liskov", "Dijkstra", "Allen", "Johnson", "Torvalds",
    "Hamilton", "Knuth",
];

pub struct Args {
    users: usize,
}

impl Args {
    /// `--users N` (N ≥ 1).
    pub fn parse(args: &[String]) -> Result<Self> {
        match args {
            [flag, n] if flag == "--users" => n
                .parse()
                .ok()
                .filter(|&n: &usize| n > 0)
                .map(|users| Args { users })
                .ok_or_else(|| "bench: --users needs a whole number above 0".into()),
            _ => Err("bench: --users N takes no other argument".into()),
        }
    }
}

pub fn run(args: Args) -> Result<ExitCode> {
    let root = root();
    let secrets = root.join(".localaws/bench-secrets.json");
    crate::localenv::ensure_secrets_file(&secrets)?;
    let env = LocalEnv::new(Purpose::Test, PORTS, &secrets);
    // SAFETY: no runtime, hence no other thread, exists yet.
    unsafe {
        env.apply_to_process();
        std::env::set_var("TABLE_NAME", TABLE);
        std::env::set_var("RUST_LOG", "warn");
    }
    block_on(async move {
        let stack = Stack::start(&root, PORTS).await?;
        let result = bench(args.users).await;
        stack.stop().await;
        result.map(|()| ExitCode::SUCCESS)
    })?
}

/// The `i`-th user: names and statuses spread independently of creation order.
fn person(i: usize, start: OffsetDateTime) -> User {
    let mix = (i as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 17;
    let at = shared::domain::clock::Clock::truncate(start + Duration::milliseconds(i as i64 * 10));
    User {
        id: UserId::new(),
        email: format!("user{i:07}@example{}.com", mix % 50),
        email_verified: true,
        first_name: Some(FIRST_NAMES[(mix % 12) as usize].into()),
        last_name: Some(LAST_NAMES[(mix / 12 % 10) as usize].into()),
        full_name: None,
        status: if (mix / 120).is_multiple_of(10) {
            Status::Inactive
        } else {
            Status::Active
        },
        roles: Vec::new(),
        marketing_opt_in: false,
        tos_agreed_at: Some(at),
        password_hash: "$argon2id$v=19$m=19456,t=2,p=1$bench$bench".into(),
        version: 1,
        session_epoch: 0,
        mobile: None,
        pending_mobile: None,
        factors: Default::default(),
        created_at: at,
        updated_at: at,
    }
}

/// Writes `items` with `BatchWriteItem`s of 25, 16 at a time, resending what is unprocessed.
async fn batch_write(client: &Client, items: Vec<Item>) -> Result<()> {
    let mut tasks = tokio::task::JoinSet::new();
    let mut chunks = items
        .chunks(25)
        .map(<[Item]>::to_vec)
        .collect::<Vec<_>>()
        .into_iter();
    loop {
        while tasks.len() < 16 {
            let Some(chunk) = chunks.next() else { break };
            let client = client.clone();
            tasks.spawn(async move {
                let mut requests: Vec<WriteRequest> = chunk
                    .into_iter()
                    .map(|item| {
                        let put = PutRequest::builder().set_item(Some(item)).build()?;
                        Ok(WriteRequest::builder().put_request(put).build())
                    })
                    .collect::<std::result::Result<_, aws_sdk_dynamodb::error::BuildError>>()?;
                while !requests.is_empty() {
                    let output = client
                        .batch_write_item()
                        .request_items(TABLE, requests)
                        .send()
                        .await?;
                    requests = output
                        .unprocessed_items
                        .and_then(|mut tables| tables.remove(TABLE))
                        .unwrap_or_default();
                }
                Ok::<(), crate::Error>(())
            });
        }
        match tasks.join_next().await {
            Some(done) => done??,
            None => return Ok(()),
        }
    }
}

/// One measured request.
struct Measured {
    name: String,
    reads: Reads,
    millis: f64,
    rows: usize,
    total: u64,
}

async fn bench(n: usize) -> Result<()> {
    let template = std::fs::read_to_string(root().join("template.yaml"))?;
    let aws = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
    let client = Client::new(&aws);
    shared::localstack::create_table(&client, &template, TABLE).await?;
    let (mut core, _) = Core::from_env().await?;
    let store = Arc::new(DynamoStore::new(client.clone(), TABLE));
    core.users = store.clone();

    let started = Instant::now();
    let start = OffsetDateTime::now_utc() - Duration::days(400);
    let people: Vec<User> = (0..n).map(|i| person(i, start)).collect();
    let mut items = people
        .iter()
        .map(user_item)
        .collect::<std::result::Result<Vec<_>, _>>()?;
    items.extend(people.iter().filter_map(claim_item));
    items.extend(counter_items(&people));
    batch_write(&client, items).await?;
    println!(
        "loaded {n} users in {:.1} s",
        started.elapsed().as_secs_f64()
    );

    let mut results = Vec::new();
    let orders = [
        ("createdAt", true),
        ("createdAt", false),
        ("email", true),
        ("firstName", true),
        ("lastName", false),
        ("status", true),
        ("status", false),
    ];
    for (column, ascending) in orders {
        let order = Order {
            column: Column::parse(column).expect("a known column"),
            ascending,
        };
        let name = format!("order={column}:{}", if ascending { "asc" } else { "desc" });
        let query = |start| UserQuery {
            filters: UserFilters::default(),
            order,
            limit: LIMIT,
            start,
        };
        results.push(
            measure(
                &core,
                &store,
                &format!("{name} first page"),
                query(Start::Page(1)),
            )
            .await?,
        );
        // Follow cursors to the deep page, then measure it.
        let mut page = user_listing::list_users(&core, &query(Start::Page(1))).await?;
        for _ in 2..DEEP_PAGE {
            let cursor = page.next_cursor.clone().ok_or("the listing ended early")?;
            page = user_listing::list_users(&core, &query(Start::Cursor(cursor))).await?;
        }
        let cursor = page.next_cursor.clone().ok_or("the listing ended early")?;
        results.push(
            measure(
                &core,
                &store,
                &format!("{name} cursor page {DEEP_PAGE}"),
                query(Start::Cursor(cursor)),
            )
            .await?,
        );
        results.push(
            measure(
                &core,
                &store,
                &format!("{name} page={DEEP_PAGE} (keys-only skip)"),
                query(Start::Page(DEEP_PAGE)),
            )
            .await?,
        );
    }

    let someone = &people[n / 2];
    let filters: Vec<(String, UserFilters, Order)> = vec![
        (
            "filter[status]=inactive".into(),
            UserFilters {
                status: Some(Status::Inactive),
                ..Default::default()
            },
            Order::default(),
        ),
        (
            "filter[status]=inactive, order=email:asc".into(),
            UserFilters {
                status: Some(Status::Inactive),
                ..Default::default()
            },
            Order {
                column: Column::Email,
                ascending: true,
            },
        ),
        (
            "filter[uuid]".into(),
            UserFilters {
                uuid: Some(someone.id),
                ..Default::default()
            },
            Order::default(),
        ),
        (
            "filter[email] (exact)".into(),
            UserFilters {
                email: Some(someone.email.to_uppercase()),
                ..Default::default()
            },
            Order::default(),
        ),
        (
            "filter[firstName]=Grace".into(),
            name_filter(Some("Grace"), None),
            Order::default(),
        ),
        (
            "filter[firstName]=Grace, order=createdAt:desc".into(),
            name_filter(Some("Grace"), None),
            Order {
                column: Column::CreatedAt,
                ascending: false,
            },
        ),
        (
            "filter[lastName]=Knuth, order=lastName:asc".into(),
            name_filter(None, Some("Knuth")),
            Order {
                column: Column::LastName,
                ascending: true,
            },
        ),
        (
            "filter[firstName]=ada* (prefix), order=firstName:asc".into(),
            name_filter(Some("ada*"), None),
            Order {
                column: Column::FirstName,
                ascending: true,
            },
        ),
        (
            "filter[lastName]=lov* (prefix), order=lastName:desc".into(),
            name_filter(None, Some("lov*")),
            Order {
                column: Column::LastName,
                ascending: false,
            },
        ),
        (
            format!(
                "filter[email]={}* (prefix), order=email:asc",
                &someone.email[..8]
            ),
            UserFilters {
                email: Some(format!("{}*", &someone.email[..8])),
                ..Default::default()
            },
            Order {
                column: Column::Email,
                ascending: true,
            },
        ),
        (
            "filter[firstName]=ada* (prefix), createdAt order: reads every match".into(),
            name_filter(Some("ada*"), None),
            Order::default(),
        ),
        (
            "filter[firstName]=Grace, order=lastName:asc: reads every match".into(),
            name_filter(Some("Grace"), None),
            Order {
                column: Column::LastName,
                ascending: true,
            },
        ),
    ];
    for (name, filters, order) in filters {
        let query = UserQuery {
            filters,
            order,
            limit: LIMIT,
            start: Start::Page(1),
        };
        results.push(measure(&core, &store, &name, query).await?);
    }

    let counts: Vec<(&str, UserFilters)> = vec![
        ("count", UserFilters::default()),
        (
            "count filter[status]=active",
            UserFilters {
                status: Some(Status::Active),
                ..Default::default()
            },
        ),
        (
            "count filter[firstName]=Grace",
            name_filter(Some("Grace"), None),
        ),
        (
            "count filter[firstName]=ada* (prefix): reads every match",
            name_filter(Some("ada*"), None),
        ),
    ];
    for (name, filters) in counts {
        store.reads.take();
        let started = Instant::now();
        let total = user_listing::count_users(&core, &filters).await?;
        results.push(Measured {
            name: name.to_owned(),
            millis: started.elapsed().as_secs_f64() * 1000.0,
            reads: store.reads.take(),
            rows: 0,
            total,
        });
    }

    println!("\n{n} users, limit {LIMIT}\n");
    println!("| request | items read | read capacity | requests | ms | rows | total |");
    println!("|---|---:|---:|---:|---:|---:|---:|");
    for m in &results {
        println!(
            "| {} | {} | {:.1} | {} | {:.1} | {} | {} |",
            m.name, m.reads.items, m.reads.capacity, m.reads.requests, m.millis, m.rows, m.total
        );
    }
    let report = json!({
        "users": n,
        "limit": LIMIT,
        "results": results.iter().map(|m| json!({
            "request": m.name,
            "itemsRead": m.reads.items,
            "readCapacity": m.reads.capacity,
            "requests": m.reads.requests,
            "millis": m.millis,
            "rows": m.rows,
            "total": m.total,
        })).collect::<Vec<_>>(),
    });
    let dir = root().join("target/bench");
    std::fs::create_dir_all(&dir)?;
    std::fs::write(
        dir.join(format!("users-{n}.json")),
        serde_json::to_string_pretty(&report)?,
    )?;
    Ok(())
}

fn name_filter(first: Option<&str>, last: Option<&str>) -> UserFilters {
    UserFilters {
        first_name: first.map(str::to_owned),
        last_name: last.map(str::to_owned),
        ..Default::default()
    }
}

/// Runs `query` once, metered.
async fn measure(
    core: &Core,
    store: &DynamoStore,
    name: &str,
    query: UserQuery,
) -> Result<Measured> {
    store.reads.take();
    let started = Instant::now();
    let page: Page<User> = user_listing::list_users(core, &query).await?;
    Ok(Measured {
        name: name.to_owned(),
        millis: started.elapsed().as_secs_f64() * 1000.0,
        reads: store.reads.take(),
        rows: page.items.len(),
        total: page.total,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn users_is_a_whole_number_above_zero() {
        assert_eq!(
            Args::parse(&["--users".into(), "10".into()]).unwrap().users,
            10
        );
        assert!(Args::parse(&["--users".into(), "0".into()]).is_err());
        assert!(Args::parse(&["--users".into()]).is_err());
    }
}
