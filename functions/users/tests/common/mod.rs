//! Helpers of this group's integration tests: calls to the handler and reads of the stored
//! user. Accounts come from `shared::testkit::accounts`.

#![allow(dead_code)]

use lambda_http::Request;
use shared::App;
use shared::testkit::TestResponse;

pub async fn call(app: &App, req: Request) -> TestResponse {
    TestResponse::from(users::handle(app, req).await)
}

/// `GET /users/{id}` with `token`.
pub async fn get_user(app: &App, token: &str, id: &str) -> TestResponse {
    call(app, shared::testkit::accounts::get_user_request(token, id)).await
}

/// The stored user, deleted ones included.
pub async fn stored(app: &App, id: &str) -> Option<shared::domain::user::User> {
    let id = shared::domain::ids::UserId::parse(id).unwrap();
    app.users.get_user(id).await.unwrap()
}
