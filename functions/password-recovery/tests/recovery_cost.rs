//! `POST /users/recover-password` costs the same whether or not an active account has the
//! address: the same AWS requests in the same order (and so about the same time), against
//! DynamoDB Local and moto.

use std::time::Instant;

use serde_json::json;
use shared::App;
use shared::domain::user::Status;
use shared::service::recovery::DECOY_RECIPIENT;
use shared::testkit;
use shared::testkit::iam::take_operations;
use shared::testkit::{TestResponse, accounts, request};

async fn start(app: &App, email: &str) -> TestResponse {
    TestResponse::from(
        password_recovery::handle(
            app,
            request("POST", "/users/recover-password")
                .json(json!({ "email": email }))
                .build(),
        )
        .await,
    )
}

/// The AWS requests one recovery start makes.
async fn operations_of_start(app: &App, email: &str) -> Vec<String> {
    take_operations();
    let response = start(app, email).await;
    assert_eq!(response.status, 201, "{}", response.text);
    take_operations()
}

#[tokio::test]
async fn an_unknown_or_inactive_address_costs_the_same_requests_as_an_active_account() {
    let app = testkit::app().await;
    let active = accounts::register(&app, "active").await;
    let inactive = accounts::register(&app, "inactive").await;
    shared::service::users::update(&app, inactive.user_id(), None, |user| {
        user.status = Status::Inactive;
        Ok(())
    })
    .await
    .unwrap();
    let unknown = accounts::unique_email("unknown");

    let for_active = operations_of_start(&app, &active.email).await;
    let for_unknown = operations_of_start(&app, &unknown).await;
    let for_inactive = operations_of_start(&app, &inactive.email).await;

    assert!(
        for_active.iter().any(|op| op == "ses:SendEmail"),
        "{for_active:?}"
    );
    assert_eq!(for_unknown, for_active);
    assert_eq!(for_inactive, for_active);
    assert_eq!(testkit::emails_to(&active.email).await.len(), 1);
    assert!(testkit::emails_to(&unknown).await.is_empty());
    assert!(testkit::emails_to(&inactive.email).await.is_empty());
    let decoys = testkit::emails_to(DECOY_RECIPIENT).await;
    assert!(
        decoys.len() >= 2,
        "the decoys went to the mailbox simulator"
    );
}

#[tokio::test]
async fn over_the_cap_both_kinds_of_address_cost_the_same() {
    let app = testkit::app().await;
    let active = accounts::register(&app, "active").await;
    let unknown = accounts::unique_email("unknown");
    for _ in 0..3 {
        operations_of_start(&app, &active.email).await;
        operations_of_start(&app, &unknown).await;
    }
    let for_active = operations_of_start(&app, &active.email).await;
    let for_unknown = operations_of_start(&app, &unknown).await;
    assert!(!for_active.iter().any(|op| op == "ses:SendEmail"));
    assert_eq!(for_unknown, for_active);
    assert_eq!(testkit::emails_to(&active.email).await.len(), 3);
}

/// A measurement, not a check (timings never gate a test): the medians of 50 starts for an
/// active account and 50 for unknown addresses, each under the mail cap. Run with
/// `XTASK_QUICK=1 cargo xtask test -p password-recovery recovery_timing -- --ignored
/// --nocapture`.
#[tokio::test]
#[ignore = "a measurement: run it with --ignored"]
async fn recovery_timing_medians() {
    let app = testkit::app().await;
    let mut active = Vec::new();
    let mut unknown = Vec::new();
    for round in 0..50 {
        // A fresh account per round keeps every start under the 3-per-hour cap.
        let account = accounts::register(&app, "timed").await;
        let stranger = accounts::unique_email("stranger");
        let pair = [(&account.email, &mut active), (&stranger, &mut unknown)];
        let pair = if round % 2 == 0 {
            pair
        } else {
            let [a, b] = pair;
            [b, a]
        };
        for (email, samples) in pair {
            let started = Instant::now();
            assert_eq!(start(&app, email).await.status, 201);
            samples.push(started.elapsed().as_secs_f64() * 1000.0);
        }
    }
    let median = |samples: &mut Vec<f64>| {
        samples.sort_by(f64::total_cmp);
        (samples[24] + samples[25]) / 2.0
    };
    println!(
        "recovery start medians over 50 each: active account {:.2} ms, unknown address {:.2} ms",
        median(&mut active),
        median(&mut unknown)
    );
}
