//! The report storage contract against the DynamoDB adapter on DynamoDB Local.

use std::sync::Arc;

#[tokio::test]
async fn dynamodb_store_meets_the_report_contract() {
    let app = shared::testkit::app().await;
    let store = shared::testkit::dynamo_store(&app).await;
    shared::store::contract::reports::run_all(Arc::as_ref(&store)).await;
}
