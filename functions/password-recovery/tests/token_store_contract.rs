//! The token storage contract suite against the DynamoDB adapter on DynamoDB Local.

#[tokio::test]
async fn dynamodb_store_meets_the_token_contract() {
    let app = shared::testkit::app().await;
    let store = shared::testkit::dynamo_store(&app).await;
    shared::store::contract::tokens::run_all(store).await;
}
