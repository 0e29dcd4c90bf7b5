//! `DELETE /users/{uuid}`, `PUT /users/{uuid}/roles` and unknown routes against DynamoDB Local.

mod common;

use common::{call, get_user, stored};
use serde_json::{Value, json};
use shared::domain::ids::UserId;
use shared::domain::user::Status;
use shared::testkit;
use shared::testkit::accounts::{PASSWORD, admin, login, register};
use shared::testkit::{TestResponse, request};

fn delete(id: &str, token: &str, body: Value) -> lambda_http::Request {
    request("DELETE", &format!("/users/{id}"))
        .bearer(token)
        .json(body)
        .build()
}

fn put_roles(id: &str, token: &str, body: Value) -> lambda_http::Request {
    request("PUT", &format!("/users/{id}/roles"))
        .bearer(token)
        .json(body)
        .build()
}

#[tokio::test]
async fn delete_refusals_use_the_seed_messages() {
    let app = testkit::app().await;
    let admin = admin(&app).await;
    let user = register(&app, "keeper").await;
    let other = register(&app, "victim").await;

    let req = request("DELETE", "/users/not-a-uuid")
        .json(json!({"password": PASSWORD}))
        .build();
    call(&app, req)
        .await
        .assert_error(400, "Invalid user UUID.");
    let req = request("DELETE", &format!("/users/{}", user.uuid))
        .json(json!({"password": PASSWORD}))
        .build();
    call(&app, req).await.assert_error(401, "Invalid token");
    call(
        &app,
        delete(&other.uuid, &user.token, json!({"password": PASSWORD})),
    )
    .await
    .assert_error(403, "No Access.");
    for body in [
        json!({}),
        json!({"password": ""}),
        json!({"password": null}),
    ] {
        call(&app, delete(&user.uuid, &user.token, body))
            .await
            .assert_error(400, "Password is required.");
    }
    call(
        &app,
        delete(
            &user.uuid,
            &user.token,
            json!({"password": "not my password"}),
        ),
    )
    .await
    .assert_error(401, "Password is incorrect.");
    // An admin confirms with their own password, not the user's.
    call(
        &app,
        delete(
            &other.uuid,
            &admin.token,
            json!({"password": "wrong password"}),
        ),
    )
    .await
    .assert_error(401, "Password is incorrect.");
    call(
        &app,
        delete(
            &UserId::new().to_string(),
            &admin.token,
            json!({"password": PASSWORD}),
        ),
    )
    .await
    .assert_error(404, "This user does not exist.");
    let response = call(
        &app,
        delete(
            &user.uuid,
            &user.token,
            json!({"password": PASSWORD, "reason": "x"}),
        ),
    )
    .await;
    assert!(
        response.body["error"]["fields"]["reason"].is_array(),
        "{}",
        response.text
    );

    for account in [&user, &other] {
        assert_eq!(
            stored(&app, &account.uuid).await.unwrap().status,
            Status::Active
        );
    }
}

#[tokio::test]
async fn soft_delete_hides_the_user_ends_sessions_and_frees_the_email() {
    let app = testkit::app().await;
    let admin = admin(&app).await;
    let user = register(&app, "leaver").await;
    let second_session = login(&app, &user.email, PASSWORD).await.unwrap().token;
    shared::service::users::update(&app, user.user_id(), None, |u| {
        u.mobile = Some("+15555550123".into());
        Ok(())
    })
    .await
    .unwrap();

    let response = call(
        &app,
        delete(&user.uuid, &user.token, json!({"password": PASSWORD})),
    )
    .await;
    assert_eq!(response.status, 200, "{}", response.text);
    assert_eq!(
        response.body["data"],
        json!({"uuid": user.uuid, "deleted": true})
    );

    for token in [&user.token, &second_session] {
        get_user(&app, token, &user.uuid)
            .await
            .assert_error(401, "Invalid token");
    }
    get_user(&app, &admin.token, &user.uuid)
        .await
        .assert_error(404, "This user does not exist.");
    call(
        &app,
        request("PATCH", &format!("/users/{}", user.uuid))
            .bearer(&admin.token)
            .json(json!({}))
            .build(),
    )
    .await
    .assert_error(404, "This user does not exist.");
    call(
        &app,
        delete(&user.uuid, &admin.token, json!({"password": PASSWORD})),
    )
    .await
    .assert_error(404, "This user does not exist.");
    let record = stored(&app, &user.uuid).await.unwrap();
    assert_eq!((record.status, record.mobile), (Status::Deleted, None));

    let again = call(
        &app,
        request("POST", "/users")
            .json(json!({"email": user.email, "password": PASSWORD}))
            .build(),
    )
    .await;
    assert_eq!(again.status, 200, "the email is free again: {}", again.text);
    assert_ne!(again.body["data"]["user"]["uuid"], user.uuid.as_str());
}

#[tokio::test]
async fn an_admin_deletes_another_user_with_their_own_password() {
    let app = testkit::app().await;
    let admin = admin(&app).await;
    let user = register(&app, "removed").await;
    let response = call(
        &app,
        delete(&user.uuid, &admin.token, json!({"password": PASSWORD})),
    )
    .await;
    assert_eq!(response.status, 200, "{}", response.text);
    get_user(&app, &user.token, &user.uuid)
        .await
        .assert_error(401, "Invalid token");
    assert_eq!(
        get_user(&app, &admin.token, &admin.uuid).await.status,
        200,
        "the admin's session lives on"
    );
}

#[tokio::test]
async fn role_refusals_use_the_seed_messages_in_the_documented_order() {
    let app = testkit::app().await;
    let admin = admin(&app).await;
    let user = register(&app, "roled").await;

    let req = request("PUT", "/users/not-a-uuid/roles")
        .json(json!({"roles": []}))
        .build();
    call(&app, req).await.assert_error(400, "Invalid user UUID");
    let req = request("PUT", &format!("/users/{}/roles", user.uuid))
        .json(json!({"roles": []}))
        .build();
    call(&app, req).await.assert_error(401, "Invalid token");
    // Not even on their own uuid.
    for id in [&user.uuid, &admin.uuid] {
        call(
            &app,
            put_roles(id, &user.token, json!({"roles": ["csrAdmin"]})),
        )
        .await
        .assert_error(403, "You do not have access to update another user");
    }
    for body in [
        json!({}),
        json!({"roles": "csrAdmin"}),
        json!({"roles": [1]}),
        json!({"roles": null}),
    ] {
        let response = call(&app, put_roles(&user.uuid, &admin.token, body.clone())).await;
        assert_eq!(response.status, 400, "{body}: {}", response.text);
        assert!(
            response.body["error"]["fields"]["roles"].is_array(),
            "{body}: {}",
            response.text
        );
    }
    call(
        &app,
        put_roles(
            &UserId::new().to_string(),
            &admin.token,
            json!({"roles": ["superuser"]}),
        ),
    )
    .await
    .assert_error(404, "This user does not exist");
    call(
        &app,
        put_roles(
            &user.uuid,
            &admin.token,
            json!({"roles": ["betaTester", "superuser"]}),
        ),
    )
    .await
    .assert_error(404, "This role does not exist.");
    assert_eq!(
        stored(&app, &user.uuid).await.unwrap().version,
        1,
        "no refusal wrote anything"
    );
}

#[tokio::test]
async fn an_admin_replaces_a_users_roles() {
    let app = testkit::app().await;
    let admin = admin(&app).await;
    let user = register(&app, "promoted").await;
    for (roles, expected) in [
        (json!(["betaTester"]), json!(["betaTester"])),
        (
            json!(["betaTester", "csrAdmin", "betaTester"]),
            json!(["csrAdmin", "betaTester"]),
        ),
        (json!([]), json!([])),
    ] {
        let response = call(
            &app,
            put_roles(&user.uuid, &admin.token, json!({"roles": roles})),
        )
        .await;
        assert_eq!(response.status, 200, "{}", response.text);
        assert_eq!(response.body["data"]["roles"], expected);
        assert_eq!(
            get_user(&app, &admin.token, &user.uuid).await.body["data"]["roles"],
            expected
        );
    }
    let response = TestResponse::from(
        users::handle(
            &app,
            testkit::event("users-put-roles", &admin.token, &user.uuid),
        )
        .await,
    );
    assert_eq!(response.status, 200, "{}", response.text);
    assert_eq!(response.body["data"]["roles"], json!(["betaTester"]));
}

#[tokio::test]
async fn the_recorded_api_gateway_event_deletes_the_user() {
    let app = testkit::app().await;
    let user = register(&app, "event-delete").await;
    let response = TestResponse::from(
        users::handle(
            &app,
            testkit::event("users-delete", &user.token, &user.uuid),
        )
        .await,
    );
    assert_eq!(response.status, 200, "{}", response.text);
    assert_eq!(
        stored(&app, &user.uuid).await.unwrap().status,
        Status::Deleted
    );
}

#[tokio::test]
async fn unknown_routes_and_methods_are_404_not_found() {
    let app = testkit::app().await;
    let user = register(&app, "lost").await;
    let own = format!("/users/{}", user.uuid);
    for (method, path) in [
        ("GET", "/nowhere".to_owned()),
        ("GET", "/".to_owned()),
        ("PUT", "/users".to_owned()),
        ("POST", "/users/count".to_owned()),
        ("PUT", own.clone()),
        ("POST", own.clone()),
        ("GET", format!("{own}/roles")),
        ("GET", format!("{own}/unknown/deeper")),
    ] {
        let response = call(&app, request(method, &path).bearer(&user.token).build()).await;
        response.assert_error(404, "Not Found");
        assert_eq!(response.body["error"]["code"], "not_found");
    }
}

#[tokio::test]
async fn a_wrong_password_when_deleting_counts_as_a_failed_login_of_that_email() {
    let app = testkit::app().await;
    let user = register(&app, "delete-guess").await;
    for n in 0..5 {
        call(
            &app,
            delete(
                &user.uuid,
                &user.token,
                json!({"password": format!("guess {n}")}),
            ),
        )
        .await
        .assert_error(401, "Password is incorrect.");
    }
    assert!(matches!(
        login(&app, &user.email, PASSWORD).await,
        Err(shared::ApiError::TooManyRequests { .. })
    ));
    call(
        &app,
        delete(&user.uuid, &user.token, json!({"password": PASSWORD})),
    )
    .await
    .assert_error(429, "Too many requests. Try again later.");
    assert_eq!(
        stored(&app, &user.uuid).await.unwrap().status,
        Status::Active
    );
}
