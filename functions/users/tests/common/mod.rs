//! Helpers shared by this group's integration tests: accounts made through `POST /users`, a
//! csrAdmin, and calls to the handler.

#![allow(dead_code)]

use lambda_http::Request;
use serde_json::json;
use shared::App;
use shared::domain::user::Role;
use shared::service::sessions;
use shared::service::sessions::LoginOutcome;
use shared::testkit::{TestResponse, request};

pub const PASSWORD: &str = "correct horse battery";

pub struct Account {
    pub id: String,
    pub email: String,
    pub token: String,
}

pub fn unique_email(prefix: &str) -> String {
    format!("{prefix}-{}@example.com", uuid::Uuid::new_v4().simple())
}

pub async fn call(app: &App, req: Request) -> TestResponse {
    TestResponse::from(users::handle(app, req).await)
}

/// A new user registered (and so logged in) through `POST /users` with [`PASSWORD`].
pub async fn register(app: &App, prefix: &str) -> Account {
    let email = unique_email(prefix);
    let response = call(
        app,
        request("POST", "/users")
            .json(json!({"email": email, "password": PASSWORD}))
            .build(),
    )
    .await;
    assert_eq!(response.status, 200, "{}", response.text);
    let data = &response.body["data"];
    Account {
        id: data["user"]["uuid"].as_str().unwrap().to_owned(),
        email,
        token: data["token"].as_str().unwrap().to_owned(),
    }
}

/// A registered user given the csrAdmin role.
pub async fn admin(app: &App) -> Account {
    let account = register(app, "admin").await;
    let id = shared::domain::ids::UserId::parse(&account.id).unwrap();
    shared::service::users::update(app, id, None, |user| {
        user.set_roles([Role::CsrAdmin]);
        Ok(())
    })
    .await
    .unwrap();
    account
}

/// A second session of the account, as a login opens it.
pub async fn login(app: &App, email: &str, password: &str) -> Result<String, shared::ApiError> {
    match sessions::login(app, Some(email.to_owned()), Some(password.to_owned())).await? {
        LoginOutcome::Complete { tokens, .. } => Ok(tokens.token),
        LoginOutcome::TwoFactorRequired { .. } => panic!("these accounts have no 2FA"),
    }
}

/// `GET /users/{id}` with `token`.
pub async fn get_user(app: &App, token: &str, id: &str) -> TestResponse {
    call(
        app,
        request("GET", &format!("/users/{id}"))
            .bearer(token)
            .build(),
    )
    .await
}

/// The stored user, deleted ones included.
pub async fn stored(app: &App, id: &str) -> Option<shared::domain::user::User> {
    let id = shared::domain::ids::UserId::parse(id).unwrap();
    app.users.get_user(id).await.unwrap()
}
