//! Accounts for integration tests, made through the services the routes use: a registered
//! user (logged in, as `POST /users` leaves them), a csrAdmin, and another login of an account.
//!
//! Tests of `POST /users` itself go through its handler; these are for arranging. The
//! requests at the end are for the handlers, which this crate cannot call.

use lambda_http::Request;
use serde_json::{Value, json};

use crate::ApiError;
use crate::app::Core;
use crate::domain::email::Email;
use crate::domain::ids::UserId;
use crate::domain::user::User;
use crate::http::views;
use crate::security::password::Password;
use crate::service::sessions::{self, LoginOutcome, Tokens};
use crate::service::users::{self, NewUser};
use crate::testkit::request;

/// The password of every account made here (the one the recorded events in `events/` carry).
pub const PASSWORD: &str = "correct horse battery";

/// A user with one full session.
#[derive(Clone, Debug)]
pub struct Account {
    pub uuid: String,
    pub email: String,
    pub password: String,
    /// The access token of the session.
    pub token: String,
    pub refresh_token: String,
    /// The session's uuid (`sessionUUID`).
    pub session: String,
    /// The `data` of the answer that opened the session: the registration body for
    /// [`register`], the login body for [`login`] and [`admin`].
    pub body: Value,
}

impl Account {
    pub fn user_id(&self) -> UserId {
        UserId::parse(&self.uuid).expect("an account's uuid parses")
    }

    fn new(user: &User, password: &str, tokens: &Tokens, body: Value) -> Self {
        Self {
            uuid: user.id.to_string(),
            email: user.email.clone(),
            password: password.to_owned(),
            token: tokens.token.clone(),
            refresh_token: tokens.refresh_token.clone(),
            session: tokens.session_uuid.to_string(),
            body,
        }
    }
}

/// `<prefix>-<random>@example.com`, an address no other test uses.
pub fn unique_email(prefix: &str) -> String {
    format!("{prefix}-{}@example.com", uuid::Uuid::new_v4().simple())
}

/// A new user at a [`unique_email`] with [`PASSWORD`], registered and so logged in.
pub async fn register(core: &Core, prefix: &str) -> Account {
    register_email(core, &unique_email(prefix)).await
}

/// A new user at `email` with [`PASSWORD`], registered and so logged in.
pub async fn register_email(core: &Core, email: &str) -> Account {
    let new = NewUser {
        email: Email::parse(email).expect("a valid test email"),
        password: Password::parse(PASSWORD).expect("a valid test password"),
        first_name: None,
        last_name: None,
        full_name: None,
        marketing_opt_in: false,
    };
    let user = users::register(core, new).await.expect("registration");
    let tokens = sessions::open(core, &user).await.expect("a session opens");
    let body = views::registration(&tokens, &user);
    Account::new(&user, PASSWORD, &tokens, body)
}

/// A new csrAdmin with [`PASSWORD`], logged in after the promotion (so the token carries the
/// role), as `cargo xtask admin` makes them.
pub async fn admin(core: &Core) -> Account {
    let email = unique_email("admin");
    users::create_or_promote_admin(core, &email, PASSWORD)
        .await
        .expect("the admin is created");
    login(core, &email, PASSWORD)
        .await
        .expect("the admin logs in")
}

/// Another session of an account without 2FA, as a login opens it. Refusals are the
/// service's errors (`BadCredentials`, `TooManyRequests`).
pub async fn login(core: &Core, email: &str, password: &str) -> Result<Account, ApiError> {
    match sessions::login(
        core,
        Some(email.to_owned()),
        Some(password.to_owned()),
        None,
    )
    .await?
    {
        LoginOutcome::Complete { tokens, user } => {
            let body = views::login(&tokens, &user);
            Ok(Account::new(&user, password, &tokens, body))
        }
        LoginOutcome::TwoFactorRequired { .. } => {
            panic!("{email} has 2FA: log in through the sessions handler")
        }
    }
}

/// `POST /users/sessions` with `email` and `password`, for the sessions handler.
pub fn login_request(email: &str, password: &str) -> Request {
    request("POST", "/users/sessions")
        .json(json!({"email": email, "password": password}))
        .build()
}

/// `GET /users/{uuid}` with `token`, for the users handler.
pub fn get_user_request(token: &str, uuid: &str) -> Request {
    request("GET", &format!("/users/{uuid}"))
        .bearer(token)
        .build()
}
