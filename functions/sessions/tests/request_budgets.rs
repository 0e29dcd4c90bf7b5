//! DynamoDB request budgets per route, counted (not timed) by the test app's SDK interceptor
//! against DynamoDB Local: each round trip is latency a Lambda user pays on every request.
//! Issue 14's budgets: authenticating costs 1 request, a login at most 3, a refresh at most 2,
//! a registration 1 transaction plus its email check and its session; a route that reads the
//! caller costs the authenticating read alone. Where a route costs more, its test says why.

use serde_json::json;
use shared::App;
use shared::testkit;
use shared::testkit::accounts;
use shared::testkit::accounts::PASSWORD;
use shared::testkit::iam::take_requests;
use shared::testkit::{TestResponse, request};

async fn sessions_call(app: &App, req: lambda_http::Request) -> TestResponse {
    TestResponse::from(sessions::handle(app, req).await)
}

async fn users_call(app: &App, req: lambda_http::Request) -> TestResponse {
    TestResponse::from(users::handle(app, req).await)
}

/// The DynamoDB requests one call makes (and its status), with everything made before it
/// (the arrangement) left out.
async fn dynamodb_requests<F>(call: F) -> (u16, Vec<String>)
where
    F: Future<Output = TestResponse>,
{
    take_requests();
    let response = call.await;
    let requests = take_requests();
    assert!(
        requests.iter().all(|r| r.starts_with("DynamoDB:")),
        "only DynamoDB is asked: {requests:?}"
    );
    (response.status, requests)
}

#[tokio::test]
async fn get_self_costs_the_authenticating_read_alone() {
    let app = testkit::app().await;
    let account = accounts::register(&app, "budget").await;
    let (status, requests) = dynamodb_requests(users_call(
        &app,
        accounts::get_user_request(&account.token, &account.uuid),
    ))
    .await;
    assert_eq!(status, 200);
    assert_eq!(requests, ["DynamoDB:BatchGetItem"]);
}

#[tokio::test]
async fn another_users_profile_costs_one_more_read() {
    let app = testkit::app().await;
    let admin = accounts::admin(&app).await;
    let user = accounts::register(&app, "budget").await;
    let (status, requests) = dynamodb_requests(users_call(
        &app,
        accounts::get_user_request(&admin.token, &user.uuid),
    ))
    .await;
    assert_eq!(status, 200);
    assert_eq!(requests, ["DynamoDB:BatchGetItem", "DynamoDB:GetItem"]);
}

/// A login: the email's claim and lockout (one `BatchGetItem`), the user, the attempt reserved
/// before the hash (the lockout must hold against parallel guesses, so it is a write before
/// the password is checked), the session with the lockout cleared (one transaction), and the
/// query of the user's sessions for the 100-session cap: 5, against issue 14's 3, which would
/// need the user copied into the claim and the cap kept on the user item.
#[tokio::test]
async fn a_login_is_a_batch_read_a_read_two_transactions_and_the_cap_query() {
    let app = testkit::app().await;
    let account = accounts::register(&app, "budget").await;
    let (status, requests) = dynamodb_requests(sessions_call(
        &app,
        accounts::login_request(&account.email, PASSWORD),
    ))
    .await;
    assert_eq!(status, 201);
    assert_eq!(
        requests,
        [
            "DynamoDB:BatchGetItem",
            "DynamoDB:GetItem",
            "DynamoDB:TransactWriteItems",
            "DynamoDB:TransactWriteItems",
            "DynamoDB:Query",
        ]
    );
}

#[tokio::test]
async fn a_refused_login_is_its_reads_and_its_reservation() {
    let app = testkit::app().await;
    let account = accounts::register(&app, "budget").await;
    let expected = [
        "DynamoDB:BatchGetItem",
        "DynamoDB:GetItem",
        "DynamoDB:TransactWriteItems",
    ];
    let (status, wrong_password) = dynamodb_requests(sessions_call(
        &app,
        accounts::login_request(&account.email, "wrong horse battery"),
    ))
    .await;
    assert_eq!(status, 401);
    assert_eq!(wrong_password, expected);
    let (status, unknown_email) = dynamodb_requests(sessions_call(
        &app,
        accounts::login_request(&accounts::unique_email("nobody"), PASSWORD),
    ))
    .await;
    assert_eq!(status, 401);
    assert_eq!(unknown_email, expected);
}

/// A refresh reads the session, then its user (the session names the user; the user's status,
/// epoch and roles decide the refresh and the new token), then writes the rotated session: 3,
/// against issue 14's 2, which would need the user's state checked in the write instead.
#[tokio::test]
async fn a_refresh_reads_the_session_and_its_user_then_writes() {
    let app = testkit::app().await;
    let account = accounts::register(&app, "budget").await;
    let (status, requests) = dynamodb_requests(sessions_call(
        &app,
        request(
            "PUT",
            &format!("/users/sessions/{}/refresh", account.session),
        )
        .json(json!({ "refreshToken": account.refresh_token }))
        .build(),
    ))
    .await;
    assert_eq!(status, 200);
    assert_eq!(
        requests,
        ["DynamoDB:GetItem", "DynamoDB:GetItem", "DynamoDB:PutItem"]
    );
}

#[tokio::test]
async fn a_registration_is_one_transaction_and_what_it_needs() {
    let app = testkit::app().await;
    let (status, requests) = dynamodb_requests(users_call(
        &app,
        request("POST", "/users")
            .json(json!({
                "email": accounts::unique_email("budget"),
                "password": PASSWORD,
            }))
            .build(),
    ))
    .await;
    assert_eq!(status, 200);
    let transactions = requests
        .iter()
        .filter(|r| *r == "DynamoDB:TransactWriteItems")
        .count();
    assert_eq!(transactions, 1, "{requests:?}");
}
