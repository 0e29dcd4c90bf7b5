//! Every route of `template.yaml` has an API Gateway event in `events/`, and each event, as the
//! Lambda runtime parses it, reaches the function the template gives it and is handled there
//! (no route miss, no server error). Runs against DynamoDB Local and moto.

use std::collections::BTreeSet;

use shared::testkit;

use crate::router::Router;

fn route_key(event: &str) -> String {
    let path = format!("{}/../events/{event}.json", env!("CARGO_MANIFEST_DIR"));
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).expect("event file")).expect("JSON");
    json["routeKey"].as_str().expect("routeKey").to_owned()
}

#[test]
fn every_template_route_has_exactly_one_event() {
    let routes: BTreeSet<String> = testkit::template_routes()
        .into_iter()
        .filter(|route| route.path != "$default")
        .map(|route| format!("{} {}", route.method, route.path))
        .collect();
    let events: Vec<String> = testkit::event_names()
        .iter()
        .map(|e| route_key(e))
        .collect();
    let unique: BTreeSet<String> = events.iter().cloned().collect();
    assert_eq!(
        unique.len(),
        events.len(),
        "two events share a route: {events:?}"
    );
    assert_eq!(unique, routes);
}

#[tokio::test]
async fn every_event_is_handled_by_the_function_the_template_routes_it_to() {
    let app = testkit::app().await;
    let admin_email = format!("events-{}@example.com", uuid::Uuid::new_v4().simple());
    let admin = shared::service::users::create_or_promote_admin(&app, &admin_email, "events-pass")
        .await
        .expect("admin");
    let tokens = shared::service::sessions::open(&app, &admin)
        .await
        .expect("session");
    let router = Router::new(&testkit::template_routes()).expect("template routes compile");

    for event in testkit::event_names() {
        let request = testkit::event(&event, &tokens.token, &admin.id.to_string());
        let matched = router
            .resolve(request.method(), request.uri().path())
            .unwrap_or_else(|| panic!("{event}: no route"));
        assert_eq!(matched.route_key, route_key(&event), "{event}");
        assert!(
            event.starts_with(matched.function.binary()),
            "{event} reached {}",
            matched.function.binary()
        );
        let response = testkit::TestResponse::from(matched.function.call(&app, request).await);
        assert!(response.status < 500, "{event}: {}", response.text);
        assert_ne!(
            response.body["error"]["code"], "not_found",
            "{event} missed its route: {}",
            response.text
        );
    }
}
