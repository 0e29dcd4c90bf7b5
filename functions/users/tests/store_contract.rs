//! The storage contract suite against the DynamoDB adapter on DynamoDB Local.

use std::sync::Arc;

#[tokio::test]
async fn dynamodb_store_meets_the_contract() {
    let app = shared::testkit::app().await;
    let store = shared::testkit::dynamo_store(&app).await;
    shared::store::contract::users::run_all(Arc::as_ref(&store)).await;
}

#[tokio::test]
async fn dynamodb_store_meets_the_session_contract() {
    let app = shared::testkit::app().await;
    let store = shared::testkit::dynamo_store(&app).await;
    shared::store::contract::sessions::run_all(Arc::as_ref(&store)).await;
}

#[tokio::test]
async fn dynamodb_store_meets_the_lockout_contract() {
    let app = shared::testkit::app().await;
    let store = shared::testkit::dynamo_store(&app).await;
    shared::store::contract::lockouts::run_all(Arc::as_ref(&store)).await;
}

#[tokio::test]
async fn dynamodb_store_meets_the_security_event_contract() {
    let app = shared::testkit::app().await;
    let store = shared::testkit::dynamo_store(&app).await;
    shared::store::contract::events::run_all(Arc::as_ref(&store)).await;
}
