//! A `2fa`-scope token is spent once its session is complete: it no longer opens resend or
//! removing one's own 2FA. Against DynamoDB Local.

use serde_json::json;
use shared::App;
use shared::domain::session::{Session, Stage};
use shared::service::sessions;
use shared::testkit;
use shared::testkit::accounts;
use shared::testkit::{TestResponse, request};

async fn two_factor(app: &App, req: lambda_http::Request) -> TestResponse {
    TestResponse::from(two_factor::handle(app, req).await)
}

#[tokio::test]
async fn a_2fa_token_is_refused_by_resend_and_remove_once_its_session_is_full() {
    let app = testkit::app().await;
    let account = accounts::register(&app, "spent").await;
    let user = app
        .users
        .get_user(account.user_id())
        .await
        .unwrap()
        .unwrap();
    let waiting = Session::new(
        user.id,
        user.session_epoch,
        Stage::TwoFactor,
        app.clock.now(),
    );
    app.sessions.create_session(&waiting).await.unwrap();
    let token = sessions::two_factor_token(&app, &user, &waiting);
    let remove = || {
        request("DELETE", "/users/two-factor-auth")
            .bearer(&token)
            .json(json!({}))
            .build()
    };
    let resend = || {
        request("GET", "/users/two-factor-auth/code")
            .bearer(&token)
            .build()
    };
    // While the session waits, the token opens the route (no number here: not a 401).
    assert_ne!(two_factor(&app, resend()).await.status, 401);

    let full = sessions::complete_two_factor(&app, &user, &waiting)
        .await
        .unwrap();

    two_factor(&app, resend())
        .await
        .assert_error(401, "Invalid token");
    two_factor(&app, remove())
        .await
        .assert_error(401, "Invalid token");
    let with_full = two_factor(
        &app,
        request("GET", "/users/two-factor-auth/code")
            .bearer(&full.token)
            .build(),
    )
    .await;
    assert_ne!(with_full.status, 401, "{}", with_full.text);
}
