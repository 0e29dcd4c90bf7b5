//! Properties of the refresh body (`appVersion`, `buildNumber`, `platform`, `deviceToken`),
//! through the handler on the in-memory app: each field is refused exactly when the seed's
//! pattern says, under its own name, before the token is used; no body gets a 5xx.

use proptest::prelude::*;
use serde_json::{Map, Value, json};
use shared::App;
use shared::testkit::{TestResponse, request};

fn config() -> ProptestConfig {
    ProptestConfig {
        cases: 256,
        ..ProptestConfig::default()
    }
}

fn refresh(body: Value) -> TestResponse {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    let app = App::in_memory();
    let session = uuid::Uuid::new_v4();
    let req = request("PUT", &format!("/users/sessions/{session}/refresh"))
        .json(body)
        .build();
    runtime.block_on(sessions::handle(&app, req)).into()
}

fn is_app_version(input: &str) -> bool {
    let parts: Vec<&str> = input.split('.').collect();
    parts.len() == 3
        && parts
            .iter()
            .all(|part| (1..=9).contains(&part.len()) && part.bytes().all(|b| b.is_ascii_digit()))
}

fn field_names(response: &TestResponse) -> Vec<String> {
    response.body["error"]["fields"]
        .as_object()
        .map(|fields| fields.keys().cloned().collect())
        .unwrap_or_default()
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn an_app_version_is_accepted_iff_three_groups_of_1_to_9_digits(
        version in prop_oneof![
            "[0-9]{1,10}\\.[0-9]{1,10}\\.[0-9]{1,10}",
            "[0-9.]{0,12}",
            "[0-9]{1,3}\\.[0-9]{1,3}\\.[0-9]{1,3}[-+a-z0-9.]{0,4}",
            any::<String>(),
        ]
    ) {
        let response = refresh(json!({"refreshToken": "some-token", "appVersion": version}));

        if is_app_version(&version) {
            // Valid: the token is used, and this session does not exist.
            prop_assert_eq!(response.status, 404, "{:?}: {}", version, response.text);
        } else {
            prop_assert_eq!(response.status, 400, "{:?}: {}", version, response.text);
            prop_assert_eq!(field_names(&response), vec!["appVersion".to_owned()]);
        }
    }

    #[test]
    fn build_number_platform_and_device_token_are_refused_under_their_names(
        build in prop_oneof![any::<i64>(), -2i64..3],
        platform in prop_oneof![Just("ios".to_owned()), Just("android".to_owned()), "[a-zA-Z]{0,8}"],
        device in prop_oneof![".{1,20}".prop_map(|s: String| s), Just(String::new()), ".{4090,4100}"],
    ) {
        let response = refresh(json!({
            "refreshToken": "some-token",
            "buildNumber": build,
            "platform": platform,
            "deviceToken": device,
        }));

        let mut expected = Vec::new();
        if build < 1 {
            expected.push("buildNumber".to_owned());
        }
        // "1 to 4096 characters", as the message and openapi.yaml's maxLength say.
        if device.is_empty() || device.chars().count() > 4096 {
            expected.push("deviceToken".to_owned());
        }
        if platform != "ios" && platform != "android" {
            expected.push("platform".to_owned());
        }
        expected.sort();
        if expected.is_empty() {
            prop_assert_eq!(response.status, 404, "{}", response.text);
        } else {
            prop_assert_eq!(response.status, 400, "{}", response.text);
            prop_assert_eq!(field_names(&response), expected);
        }
    }

    #[test]
    fn no_refresh_body_gets_a_server_error(
        body in prop::collection::btree_map(
            prop_oneof![
                Just("refreshToken".to_owned()), Just("appVersion".to_owned()),
                Just("buildNumber".to_owned()), Just("platform".to_owned()),
                Just("deviceToken".to_owned()), "[a-zA-Z]{1,8}",
            ],
            prop_oneof![
                Just(Value::Null), any::<bool>().prop_map(Value::from),
                any::<i64>().prop_map(Value::from), any::<String>().prop_map(Value::from),
                Just(json!([])), Just(json!({})),
            ],
            0..6,
        )
    ) {
        let body: Map<String, Value> = body.into_iter().collect();

        let response = refresh(Value::Object(body.clone()));

        prop_assert!([400, 404].contains(&response.status), "{:?}: {}", body, response.text);
    }
}
