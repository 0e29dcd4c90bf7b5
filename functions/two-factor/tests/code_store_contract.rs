//! The `CodeStore` contract suite against the DynamoDB adapter on DynamoDB Local.

#[tokio::test(flavor = "multi_thread")]
async fn dynamodb_store_meets_the_code_contract() {
    let app = shared::testkit::app().await;
    let store = shared::testkit::dynamo_store(&app).await;
    shared::store::contract::codes::run_all(store).await;
}
