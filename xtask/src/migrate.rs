//! `cargo xtask migrate`: brings user items written before the sharded listing indexes and
//! counters up to date (docs/data-model.md, "Listing users").
//!
//! Each user item without `counted` gets its index attributes (`gsi1pk`/`gsi2pk` as
//! `USERS#<status>#<shard>`, `gsi1sk`, `gsi2sk`, `firstNameSk`, `lastNameSk`) and `counted`, and
//! its counters are raised, in ONE transaction conditioned on the item being still unmigrated at
//! the version read: so a user is counted once however often the migration runs (idempotent),
//! and a user saved meanwhile by the new code (which counts it itself) is left alone. The scan
//! position is saved after every page, so an interrupted run resumes where it stopped.

use std::path::Path;
#[cfg(test)]
use std::path::PathBuf;
use std::process::ExitCode;

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::types::AttributeValue;
use shared::store::dynamo::{Item, migration_update};

use crate::localenv::{DEV_PORTS, LocalEnv, Purpose};
use crate::{Result, block_on, root};

pub struct Args {
    page_size: i32,
}

impl Args {
    pub fn parse(args: &[String]) -> Result<Self> {
        let mut parsed = Args { page_size: 500 };
        let mut args = args.iter();
        while let Some(flag) = args.next() {
            match flag.as_str() {
                "--page-size" => {
                    parsed.page_size = args
                        .next()
                        .and_then(|v| v.parse().ok())
                        .filter(|n| (1..=1000).contains(n))
                        .ok_or("migrate: --page-size needs a whole number from 1 to 1000")?;
                }
                other => return Err(format!("migrate: unknown argument {other:?}").into()),
            }
        }
        Ok(parsed)
    }
}

/// What a run did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Migrated {
    /// Items brought up to date (and counted).
    pub users: u64,
    /// Items found migrated by someone else between the scan and the write.
    pub skipped: u64,
    /// Scan pages read.
    pub pages: u64,
}

pub fn run(args: Args) -> Result<ExitCode> {
    // TABLE_NAME set by the caller means a deployed table: keep their AWS environment as is.
    let local = std::env::var_os("TABLE_NAME").is_none();
    if local {
        let env = LocalEnv::new(
            Purpose::Dev,
            DEV_PORTS,
            &root().join(".localaws/secrets.json"),
        );
        // SAFETY: no runtime, hence no other thread, exists yet.
        unsafe { env.apply_to_process() };
    }
    let table = std::env::var("TABLE_NAME")?;
    let checkpoint = root().join(format!(".localaws/migrate-{table}.json"));
    block_on(async move {
        let aws = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
        let client = Client::new(&aws);
        let done = migrate(&client, &table, &checkpoint, args.page_size, None).await?;
        println!(
            "migrated {} users ({} already done meanwhile) in {} scan pages of {table}",
            done.users, done.skipped, done.pages
        );
        Ok(ExitCode::SUCCESS)
    })?
}

/// Migrates every unmigrated user item of `table`, resuming from `checkpoint` when it holds a
/// scan position; stops after `max_pages` pages when given (the checkpoint then says where).
pub async fn migrate(
    client: &Client,
    table: &str,
    checkpoint: &Path,
    page_size: i32,
    max_pages: Option<u64>,
) -> Result<Migrated> {
    let mut start = read_checkpoint(checkpoint)?;
    let mut done = Migrated::default();
    loop {
        if max_pages.is_some_and(|max| done.pages >= max) {
            return Ok(done);
        }
        let page = client
            .scan()
            .table_name(table)
            .filter_expression(
                "sk = :profile AND begins_with(pk, :user) AND attribute_not_exists(counted)",
            )
            .expression_attribute_values(":profile", AttributeValue::S("PROFILE".into()))
            .expression_attribute_values(":user", AttributeValue::S("USER#".into()))
            .consistent_read(true)
            .limit(page_size)
            .set_exclusive_start_key(start)
            .send()
            .await?;
        done.pages += 1;
        for item in page.items.unwrap_or_default() {
            if migrate_one(client, table, item).await? {
                done.users += 1;
            } else {
                done.skipped += 1;
            }
        }
        match page.last_evaluated_key {
            Some(key) if !key.is_empty() => {
                write_checkpoint(checkpoint, &key)?;
                start = Some(key);
            }
            _ => {
                if checkpoint.exists() {
                    std::fs::remove_file(checkpoint)?;
                }
                return Ok(done);
            }
        }
    }
}

/// Migrates one item; `false` when it turned out migrated already. A version moved by an old
/// writer is read again and retried.
async fn migrate_one(client: &Client, table: &str, mut item: Item) -> Result<bool> {
    for _ in 0..10 {
        let items = migration_update(table, item.clone())?;
        match client
            .transact_write_items()
            .set_transact_items(Some(items))
            .send()
            .await
        {
            Ok(_) => return Ok(true),
            Err(error) => {
                let cancelled = matches!(
                    error.as_service_error(),
                    Some(TransactWriteItemsError::TransactionCanceledException(_))
                );
                if !cancelled {
                    return Err(error.into());
                }
                // A failed condition or a conflict: read the item again and decide.
                let key: Item = ["pk", "sk"]
                    .into_iter()
                    .filter_map(|name| Some((name.to_owned(), item.get(name)?.clone())))
                    .collect();
                let fresh = client
                    .get_item()
                    .table_name(table)
                    .set_key(Some(key))
                    .consistent_read(true)
                    .send()
                    .await?
                    .item;
                match fresh {
                    Some(fresh) if !fresh.contains_key("counted") => item = fresh,
                    _ => return Ok(false),
                }
            }
        }
    }
    Err("migrate: an item kept changing under the migration; run it again".into())
}

fn read_checkpoint(path: &Path) -> Result<Option<Item>> {
    if !path.exists() {
        return Ok(None);
    }
    let saved: serde_json::Map<String, serde_json::Value> =
        serde_json::from_str(&std::fs::read_to_string(path)?)?;
    let mut key = Item::new();
    for (name, value) in saved {
        let text = value
            .as_str()
            .ok_or_else(|| format!("{}: {name} is not a string", path.display()))?;
        key.insert(name, AttributeValue::S(text.to_owned()));
    }
    Ok(Some(key))
}

/// The scan position (the table's string keys `pk`, `sk`) as JSON.
fn write_checkpoint(path: &Path, key: &Item) -> Result<()> {
    let mut saved = serde_json::Map::new();
    for (name, value) in key {
        if let AttributeValue::S(text) = value {
            saved.insert(name.clone(), serde_json::Value::String(text.clone()));
        }
    }
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::write(path, serde_json::Value::Object(saved).to_string())?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use shared::domain::ids::UserId;
    use shared::domain::user::{Status, User, user_sort_key};
    use shared::service::paging::Start;
    use shared::service::user_listing::{self, Order, UserFilters, UserQuery};
    use shared::store::dynamo::user_item;
    use time::{Duration, OffsetDateTime};

    /// A checkpoint file of its own for a table.
    fn checkpoint_for(table: &str) -> PathBuf {
        root().join(format!("target/migrate-{table}.json"))
    }

    fn person(i: usize, status: Status) -> User {
        let at = OffsetDateTime::now_utc() - Duration::days(1) + Duration::seconds(i as i64);
        let at = shared::domain::clock::Clock::truncate(at);
        User {
            id: UserId::new(),
            email: format!("old-{i:02}@example.com"),
            email_verified: false,
            first_name: Some(["Ada", "Grace"][i % 2].into()),
            last_name: Some(format!("L{i:02}")),
            full_name: None,
            status,
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

    /// The item as the code before the sharded indexes wrote it.
    fn old_item(user: &User) -> Item {
        let mut item = user_item(user).unwrap();
        for name in ["counted", "firstNameSk", "lastNameSk", "gsi2pk", "gsi2sk"] {
            item.remove(name);
        }
        if user.status == Status::Deleted {
            item.remove("gsi1pk");
            item.remove("gsi1sk");
        } else {
            let sort = AttributeValue::S(user_sort_key(user));
            item.insert(
                "gsi1pk".into(),
                AttributeValue::S(format!("USERSTATUS#{}", user.status.as_str())),
            );
            item.insert("gsi1sk".into(), sort.clone());
            item.insert("gsi2pk".into(), AttributeValue::S("USERS".into()));
            item.insert("gsi2sk".into(), sort);
        }
        item
    }

    async fn listed(app: &shared::App, filters: UserFilters) -> (u64, usize) {
        let page = user_listing::list_users(
            app,
            &UserQuery {
                filters: filters.clone(),
                order: Order::default(),
                limit: 100,
                start: Start::Page(1),
            },
        )
        .await
        .unwrap();
        let count = user_listing::count_users(app, &filters).await.unwrap();
        assert_eq!(page.total, count);
        (count, page.items.len())
    }

    #[tokio::test]
    async fn old_items_are_indexed_and_counted_once_resuming_and_rerunning() {
        let app = shared::testkit::app().await;
        let table = app.config.table_name.clone();
        let aws = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
        let client = Client::new(&aws);
        let statuses = [
            Status::Active,
            Status::Active,
            Status::Inactive,
            Status::Deleted,
        ];
        let people: Vec<User> = (0..12).map(|i| person(i, statuses[i % 4])).collect();
        for user in &people {
            client
                .put_item()
                .table_name(&table)
                .set_item(Some(old_item(user)))
                .send()
                .await
                .unwrap();
        }
        assert_eq!(listed(&app, UserFilters::default()).await, (0, 0));

        // An interrupted run resumes from its checkpoint.
        let checkpoint = checkpoint_for(&table);
        let first = migrate(&client, &table, &checkpoint, 5, Some(1))
            .await
            .unwrap();
        assert_eq!(first.pages, 1);
        assert!(checkpoint.exists());
        let rest = migrate(&client, &table, &checkpoint, 5, None)
            .await
            .unwrap();
        assert!(!checkpoint.exists());
        assert_eq!(first.users + rest.users, 12);

        // A user saved by the new code before its migration is counted once, by the save.
        let live = UserFilters::default();
        assert_eq!(listed(&app, live.clone()).await, (9, 9));
        let inactive = UserFilters {
            status: Some(Status::Inactive),
            ..Default::default()
        };
        assert_eq!(listed(&app, inactive).await, (3, 3));
        let adas = UserFilters {
            first_name: Some("Ada".into()),
            ..Default::default()
        };
        assert_eq!(listed(&app, adas.clone()).await.0, 6);
        let prefix = UserFilters {
            email: Some("OLD-0*".into()),
            ..Default::default()
        };
        // old-00 … old-09 minus the deleted old-03 and old-07.
        assert_eq!(listed(&app, prefix).await, (8, 8));

        // Running again changes nothing.
        let again = migrate(&client, &table, &checkpoint, 5, None)
            .await
            .unwrap();
        assert_eq!((again.users, again.skipped), (0, 0));
        assert_eq!(listed(&app, live).await, (9, 9));
        assert_eq!(listed(&app, adas).await.0, 6);
    }

    #[tokio::test]
    async fn a_user_saved_before_its_migration_is_counted_by_the_save_alone() {
        let app = shared::testkit::app().await;
        let table = app.config.table_name.clone();
        let aws = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
        let client = Client::new(&aws);
        let user = person(1, Status::Active);
        client
            .put_item()
            .table_name(&table)
            .set_item(Some(old_item(&user)))
            .send()
            .await
            .unwrap();
        let mut inactive = user.clone();
        inactive.status = Status::Inactive;
        inactive.version += 1;
        app.users.save_user(&inactive, &user, None).await.unwrap();
        let checkpoint = checkpoint_for(&table);
        let run = migrate(&client, &table, &checkpoint, 100, None)
            .await
            .unwrap();
        assert_eq!(run.users, 0);
        assert_eq!(listed(&app, UserFilters::default()).await, (1, 1));
        let active = UserFilters {
            status: Some(Status::Active),
            ..Default::default()
        };
        assert_eq!(listed(&app, active).await, (0, 0));
    }

    #[tokio::test]
    async fn a_code_save_before_the_migration_counts_the_user_once() {
        use shared::domain::code::CodeChange;
        let app = shared::testkit::app().await;
        let table = app.config.table_name.clone();
        let aws = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
        let client = Client::new(&aws);
        let user = person(2, Status::Active);
        client
            .put_item()
            .table_name(&table)
            .set_item(Some(old_item(&user)))
            .send()
            .await
            .unwrap();
        // A 2FA save (no status or name change) of the unmigrated item counts it, once.
        let mut saved = user.clone();
        saved.version += 1;
        app.codes
            .save_user_with_code(&saved, &user, CodeChange::Delete, &[])
            .await
            .unwrap();
        assert_eq!(listed(&app, UserFilters::default()).await, (1, 1));
        // The next save finds it counted and moves nothing; a stale one is still refused.
        let mut again = saved.clone();
        again.version += 1;
        app.codes
            .save_user_with_code(&again, &saved, CodeChange::Delete, &[])
            .await
            .unwrap();
        assert!(
            app.codes
                .save_user_with_code(&again, &saved, CodeChange::Delete, &[])
                .await
                .is_err()
        );
        let run = migrate(&client, &table, &checkpoint_for(&table), 100, None)
            .await
            .unwrap();
        assert_eq!(run.users, 0);
        assert_eq!(listed(&app, UserFilters::default()).await, (1, 1));
    }
}
