//! The passkey storage contract against the DynamoDB adapter on DynamoDB Local.

use std::sync::Arc;

#[tokio::test]
async fn dynamodb_store_meets_the_passkey_contract() {
    let app = shared::testkit::app().await;
    let store = shared::testkit::dynamo_store(&app).await;
    shared::store::contract::passkeys::run_all(Arc::as_ref(&store)).await;
}
