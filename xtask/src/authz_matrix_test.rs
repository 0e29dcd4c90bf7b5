//! The authorization matrix: every route of `template.yaml` × every kind of caller → the status
//! API.md gives, against DynamoDB Local and moto (run it through `cargo xtask test`).
//!
//! Each cell gets fresh accounts, so a cell that deletes, logs out or deactivates someone changes
//! no other cell. The request of a route is the same in every column (a well-formed one, aimed
//! at the target user "owner"), so a column differs from the next only by who asks.

use std::sync::Arc;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::json;
use shared::App;
use shared::domain::ids::SessionId;
use shared::domain::user::Status;
use shared::security::jwt::Scope;
use shared::service::sessions::{self, LoginOutcome};
use shared::service::users;
use shared::testkit::accounts::{self, Account, PASSWORD};
use shared::testkit::{self, TestRequest, TestResponse};

use crate::router::Router;

/// Who asks. The target of every route with a `{uuid}` is the owner's account (the caller's own
/// for the first eight columns, whose token belongs to the owner).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Caller {
    /// No `Authorization` header.
    NoToken,
    /// `Bearer garbage`.
    Garbage,
    /// The owner's claims under `{"alg":"none"}` and no signature.
    AlgNone,
    /// The owner's claims, signed by our key, expired a second ago.
    Expired,
    /// A `2fa`-scope token of the owner, whose login waits for the SMS code.
    TwoFactor,
    /// The owner's token after that session logged out.
    LoggedOut,
    /// The owner's token after the owner was deleted.
    Deleted,
    /// The owner's token after a csrAdmin deactivated the owner.
    Inactive,
    /// Another user's full token.
    Other,
    /// The owner's own full token.
    Owner,
    /// A csrAdmin's full token.
    Admin,
}

const CALLERS: [Caller; 11] = [
    Caller::NoToken,
    Caller::Garbage,
    Caller::AlgNone,
    Caller::Expired,
    Caller::TwoFactor,
    Caller::LoggedOut,
    Caller::Deleted,
    Caller::Inactive,
    Caller::Other,
    Caller::Owner,
    Caller::Admin,
];

/// The contract, one row per route, one column per [`Caller`] in the order of [`CALLERS`].
#[rustfmt::skip]
const MATRIX: &[(&str, [u16; 11])] = &[
    //                                                  none garb algN  exp  2fa  out  del inact other owner admin
    ("GET /users",                                     [401, 401, 401, 401, 401, 401, 401, 401, 403, 403, 200]),
    ("POST /users",                                    [200, 200, 200, 200, 200, 200, 200, 200, 200, 200, 200]),
    ("GET /users/count",                               [401, 401, 401, 401, 401, 401, 401, 401, 403, 403, 200]),
    ("GET /users/{uuid}",                              [401, 401, 401, 401, 401, 401, 401, 401, 403, 200, 200]),
    ("PATCH /users/{uuid}",                            [401, 401, 401, 401, 401, 401, 401, 401, 403, 200, 200]),
    ("DELETE /users/{uuid}",                           [401, 401, 401, 401, 401, 401, 401, 401, 403, 200, 200]),
    ("PUT /users/{uuid}/roles",                        [401, 401, 401, 401, 401, 401, 401, 401, 403, 403, 200]),
    ("GET /users/{uuid}/security-events",              [401, 401, 401, 401, 401, 401, 401, 401, 403, 200, 200]),
    // The body logs the owner in; a token beside it changes nothing.
    ("POST /users/sessions",                           [201, 201, 201, 201, 201, 201, 401, 401, 201, 201, 201]),
    // A wrong code: the 400 once the token is accepted.
    ("POST /users/sessions/verify",                    [401, 401, 401, 401, 400, 401, 401, 401, 400, 400, 400]),
    ("DELETE /users/sessions/{uuid}",                  [401, 401, 401, 401, 401, 401, 401, 401, 400, 204, 204]),
    // The refresh token of the owner's full session is the credential.
    ("PUT /users/sessions/{sessionUUID}/refresh",      [200, 200, 200, 200, 200, 404, 404, 404, 200, 200, 200]),
    ("GET /users/{uuid}/sessions",                     [401, 401, 401, 401, 401, 401, 401, 401, 403, 200, 200]),
    ("DELETE /users/{uuid}/sessions",                  [401, 401, 401, 401, 401, 401, 401, 401, 403, 204, 204]),
    ("GET /.well-known/jwks.json",                     [200, 200, 200, 200, 200, 200, 200, 200, 200, 200, 200]),
    ("POST /users/{uuid}/pending-two-factor-auth",     [401, 401, 401, 401, 401, 401, 401, 401, 403, 201, 403]),
    // Only the 2fa caller has a number on file; the others get the field error.
    ("GET /users/two-factor-auth/code",                [401, 401, 401, 401, 204, 401, 401, 401, 400, 400, 400]),
    // Acts on the caller; a wrong code matters only to the 2fa caller, whose 2FA is enabled.
    ("DELETE /users/two-factor-auth",                  [401, 401, 401, 401, 400, 401, 401, 401, 204, 204, 204]),
    ("DELETE /users/{uuid}/two-factor-auth",           [401, 401, 401, 401, 401, 401, 401, 401, 403, 403, 204]),
    // The authenticator app and recovery codes are for oneself only, a csrAdmin included,
    // but a csrAdmin may remove anyone's app (the owner has none: its 404).
    ("POST /users/{uuid}/totp",                        [401, 401, 401, 401, 401, 401, 401, 401, 403, 201, 403]),
    ("POST /users/{uuid}/totp/verify",                 [401, 401, 401, 401, 401, 401, 401, 401, 403, 404, 403]),
    ("DELETE /users/{uuid}/totp",                      [401, 401, 401, 401, 401, 401, 401, 401, 403, 404, 404]),
    // The owner has no second factor to back up.
    ("POST /users/{uuid}/recovery-codes",              [401, 401, 401, 401, 401, 401, 401, 401, 403, 400, 403]),
    ("POST /users/recover-password",                   [201, 201, 201, 201, 201, 201, 201, 201, 201, 201, 201]),
    // An unknown token.
    ("GET /users/recover-password/verify/{token}",     [400, 400, 400, 400, 400, 400, 400, 400, 400, 400, 400]),
    ("POST /users/recover-password/reset-password",    [400, 400, 400, 400, 400, 400, 400, 400, 400, 400, 400]),
    ("POST /users/verify-email",                       [401, 401, 401, 401, 401, 401, 401, 401, 201, 201, 201]),
    ("GET /users/verify-email/{email}",                [400, 400, 400, 400, 400, 400, 400, 400, 400, 400, 400]),
    ("POST /users/diagnostic-reports",                 [401, 401, 401, 401, 401, 401, 401, 401, 201, 201, 201]),
    ("GET /users/{userUUID}/diagnostic-reports",       [401, 401, 401, 401, 401, 401, 401, 401, 403, 200, 200]),
    // Registering a passkey is for oneself only, a csrAdmin included.
    ("POST /users/{uuid}/passkeys/registration-options", [401, 401, 401, 401, 401, 401, 401, 401, 403, 200, 403]),
    // An unknown ceremony: the registration's 400 once the caller may register.
    ("POST /users/{uuid}/passkeys",                    [401, 401, 401, 401, 401, 401, 401, 401, 403, 400, 403]),
    ("GET /users/{uuid}/passkeys",                     [401, 401, 401, 401, 401, 401, 401, 401, 403, 200, 200]),
    // An unknown passkey of a user the caller may see.
    ("DELETE /users/{uuid}/passkeys/{passkeyUUID}",    [401, 401, 401, 401, 401, 401, 401, 401, 403, 404, 404]),
    ("POST /users/sessions/passkey-options",           [200, 200, 200, 200, 200, 200, 200, 200, 200, 200, 200]),
    // An unknown ceremony, whatever the token.
    ("POST /users/sessions/passkey",                   [401, 401, 401, 401, 401, 401, 401, 401, 401, 401, 401]),
    // An unknown path, whatever the token.
    ("ANY $default",                                   [404, 404, 404, 404, 404, 404, 404, 404, 404, 404, 404]),
];

/// How many cells run at once (DynamoDB Local is one JVM on a shared machine).
const PARALLEL_CELLS: usize = 12;

/// The arranged world of one cell.
struct Cell {
    /// The target of the route: a registered user with one full session.
    owner: Account,
    /// The bearer token sent, if any.
    token: Option<String>,
}

/// The well-formed request of `route`, aimed at the cell's owner.
fn request_for(route: &str, cell: &Cell) -> TestRequest {
    let owner = &cell.owner;
    let uuid = &owner.uuid;
    let (method, path) = route.split_once(' ').expect("a route is METHOD PATH");
    let request = |path: String| testkit::request(method, &path);
    let request = match route {
        "GET /users" | "GET /users/count" | "POST /users/verify-email" => request(path.into()),
        "POST /users" => request(path.into()).json(json!({
            "email": accounts::unique_email("matrix-new"),
            "password": PASSWORD,
        })),
        "GET /users/{uuid}" | "DELETE /users/{uuid}/two-factor-auth" => {
            request(path.replace("{uuid}", uuid))
        }
        "PATCH /users/{uuid}" => {
            request(path.replace("{uuid}", uuid)).json(json!({"firstName": "Matrix"}))
        }
        // Re-authentication with the caller's password: every account here has the same one.
        "DELETE /users/{uuid}" => {
            request(path.replace("{uuid}", uuid)).json(json!({"password": PASSWORD}))
        }
        "PUT /users/{uuid}/roles" => {
            request(path.replace("{uuid}", uuid)).json(json!({"roles": ["betaTester"]}))
        }
        "POST /users/sessions" => request(path.into()).json(json!({
            "email": owner.email,
            "password": PASSWORD,
        })),
        "POST /users/sessions/verify" | "DELETE /users/two-factor-auth" => {
            request(path.into()).json(json!({"code": "000000"}))
        }
        "DELETE /users/sessions/{uuid}" => request(path.replace("{uuid}", &owner.session)),
        "PUT /users/sessions/{sessionUUID}/refresh" => {
            request(path.replace("{sessionUUID}", &owner.session))
                .json(json!({"refreshToken": owner.refresh_token}))
        }
        "GET /.well-known/jwks.json" | "GET /users/two-factor-auth/code" => request(path.into()),
        "POST /users/{uuid}/pending-two-factor-auth" => request(path.replace("{uuid}", uuid))
            .json(json!({"mobileNumber": "4155550123", "mobileCountryCode": 1})),
        "POST /users/recover-password" => request(path.into()).json(json!({"email": owner.email})),
        "GET /users/recover-password/verify/{token}" => {
            request(path.replace("{token}", &"A".repeat(43)))
        }
        "POST /users/recover-password/reset-password" => request(path.into()).json(json!({
            "token": "A".repeat(43),
            "password": "a brand new passphrase",
        })),
        "GET /users/verify-email/{email}" => request(format!(
            "/users/verify-email/{}?token={}",
            owner.email,
            "A".repeat(43)
        )),
        "POST /users/diagnostic-reports" => {
            request(path.into()).json(json!({"fileName": "robot.log", "contentType": "text/plain"}))
        }
        "GET /users/{userUUID}/diagnostic-reports" => request(path.replace("{userUUID}", uuid)),
        "GET /users/{uuid}/security-events"
        | "GET /users/{uuid}/passkeys"
        | "GET /users/{uuid}/sessions"
        | "DELETE /users/{uuid}/sessions" => request(path.replace("{uuid}", uuid)),
        "POST /users/{uuid}/totp" | "POST /users/{uuid}/recovery-codes" => {
            request(path.replace("{uuid}", uuid)).json(json!({"currentPassword": PASSWORD}))
        }
        "POST /users/{uuid}/totp/verify" | "DELETE /users/{uuid}/totp" => {
            request(path.replace("{uuid}", uuid)).json(json!({"code": "000000"}))
        }
        "POST /users/{uuid}/passkeys/registration-options" => {
            request(path.replace("{uuid}", uuid)).json(json!({"currentPassword": PASSWORD}))
        }
        "POST /users/{uuid}/passkeys" => request(path.replace("{uuid}", uuid)).json(json!({
            "ceremonyUUID": uuid::Uuid::new_v4(),
            "credential": {},
        })),
        "DELETE /users/{uuid}/passkeys/{passkeyUUID}" => request(
            path.replace("{uuid}", uuid)
                .replace("{passkeyUUID}", &uuid::Uuid::new_v4().to_string()),
        ),
        "POST /users/sessions/passkey-options" => request(path.into()).json(json!({})),
        "POST /users/sessions/passkey" => request(path.into()).json(json!({
            "ceremonyUUID": uuid::Uuid::new_v4(),
            "credential": {},
        })),
        "ANY $default" => testkit::request("GET", "/matrix/nowhere"),
        other => panic!("the matrix has a row for {other} but no request for it"),
    };
    match &cell.token {
        Some(token) => request.bearer(token),
        None => request,
    }
}

/// Fresh accounts for one cell, and the token its caller sends.
async fn arrange(app: &App, caller: Caller) -> Cell {
    let core = &app.core;
    let owner = accounts::register(core, "matrix-owner").await;
    let owner_id = owner.user_id();
    let token = match caller {
        Caller::NoToken => None,
        Caller::Garbage => Some("garbage".to_owned()),
        Caller::AlgNone => {
            let payload = owner.token.split('.').nth(1).expect("a JWT has a payload");
            let header = URL_SAFE_NO_PAD.encode(r#"{"alg":"none","typ":"JWT"}"#);
            Some(format!("{header}.{payload}."))
        }
        Caller::Expired => {
            let session = SessionId::parse(&owner.session).expect("a session uuid");
            let lifetime = shared::security::jwt::ACCESS_TOKEN_SECS.unsigned_abs() + 1;
            let issued = core.clock.now() - std::time::Duration::from_secs(lifetime);
            let (token, _) = core
                .jwt
                .issue(owner_id, session, Vec::new(), Scope::Full, issued);
            Some(token)
        }
        Caller::TwoFactor => {
            // A verified number, set directly: enrolment is not what this column is about.
            users::update(core, owner_id, None, |user| {
                user.mobile = Some(format!("+1415555{:04}", rand_digits()));
                Ok(())
            })
            .await
            .expect("the number is set");
            let outcome =
                sessions::login(core, Some(owner.email.clone()), Some(PASSWORD.into()), None)
                    .await
                    .expect("the owner logs in");
            let LoginOutcome::TwoFactorRequired { user, session } = outcome else {
                panic!("a user with a verified number gets the 2FA answer");
            };
            Some(sessions::two_factor_token(core, &user, &session))
        }
        Caller::LoggedOut => {
            let session = SessionId::parse(&owner.session).expect("a session uuid");
            assert!(
                core.sessions
                    .delete_session(session)
                    .await
                    .expect("the owner logs out"),
                "the owner's session existed"
            );
            Some(owner.token.clone())
        }
        Caller::Deleted => {
            users::soft_delete(core, owner_id, &Default::default())
                .await
                .expect("the owner is deleted");
            Some(owner.token.clone())
        }
        Caller::Inactive => {
            users::update(core, owner_id, None, |user| {
                user.status = Status::Inactive;
                users::revoke_all_sessions(user);
                Ok(())
            })
            .await
            .expect("the owner is deactivated");
            Some(owner.token.clone())
        }
        Caller::Other => Some(accounts::register(core, "matrix-other").await.token),
        Caller::Owner => Some(owner.token.clone()),
        Caller::Admin => Some(accounts::admin(core).await.token),
    };
    Cell { owner, token }
}

/// Four digits that differ between cells (numbers need not be unique, but it reads better).
fn rand_digits() -> u16 {
    (uuid::Uuid::new_v4().as_u128() % 10_000) as u16
}

/// Sends `request` through the function `template.yaml` routes it to, as API Gateway would.
async fn send(app: &App, router: &Router, request: TestRequest) -> TestResponse {
    let request = request.build();
    let matched = router
        .resolve(request.method(), request.uri().path())
        .expect("template.yaml has a $default route");
    matched.function.call(app, request).await.into()
}

fn template_route_keys() -> Vec<String> {
    testkit::template_routes()
        .into_iter()
        .map(|route| format!("{} {}", route.method, route.path))
        .collect()
}

#[test]
fn every_route_of_the_template_has_a_row_and_every_row_a_route() {
    let routes = template_route_keys();
    let rows: Vec<&str> = MATRIX.iter().map(|(route, _)| *route).collect();

    let without_row: Vec<&String> = routes
        .iter()
        .filter(|route| !rows.contains(&route.as_str()))
        .collect();
    let without_route: Vec<&&str> = rows
        .iter()
        .filter(|row| !routes.iter().any(|route| route == *row))
        .collect();
    assert!(
        without_row.is_empty() && without_route.is_empty(),
        "routes of template.yaml without a row in MATRIX: {without_row:?}; rows without a \
         route: {without_route:?}"
    );
    let mut unique = rows.clone();
    unique.sort_unstable();
    unique.dedup();
    assert_eq!(unique.len(), rows.len(), "a route has two rows");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_route_answers_every_caller_with_the_status_of_the_contract() {
    let app = Arc::new(testkit::app().await);
    let router = Arc::new(Router::new(&testkit::template_routes()).expect("template routes"));
    let permits = Arc::new(tokio::sync::Semaphore::new(PARALLEL_CELLS));
    let mut cells = tokio::task::JoinSet::new();
    for &(route, expected) in MATRIX {
        for (caller, expected) in CALLERS.into_iter().zip(expected) {
            let (app, router, permits) = (app.clone(), router.clone(), permits.clone());
            cells.spawn(async move {
                let _permit = permits.acquire_owned().await.expect("semaphore open");
                let cell = arrange(&app, caller).await;
                let response = send(&app, &router, request_for(route, &cell)).await;
                (route, caller, expected, response)
            });
        }
    }
    let mut mismatches = Vec::new();
    let mut cases = 0;
    while let Some(joined) = cells.join_next().await {
        let (route, caller, expected, response) = joined.expect("a cell does not panic");
        cases += 1;
        if response.status != expected {
            mismatches.push(format!(
                "{route} as {caller:?}: expected {expected}, got {} {}",
                response.status, response.text
            ));
        }
        // Every refusal has the error body of API.md.
        if response.status >= 400 && response.body["error"]["code"].as_str().is_none() {
            mismatches.push(format!(
                "{route} as {caller:?}: {} without the error body: {}",
                response.status, response.text
            ));
        }
    }
    mismatches.sort();
    assert_eq!(cases, MATRIX.len() * CALLERS.len());
    assert!(
        mismatches.is_empty(),
        "{} of {cases} cells disagree with the contract:\n{}",
        mismatches.len(),
        mismatches.join("\n")
    );
}
