//! Properties of the listing's query parameters (`order`, `filter[…]`, `page`, `limit`), through
//! the handler on the in-memory app: each is accepted exactly when API.md's pattern says, a
//! refusal names the parameter, and no query string whatsoever gets a 5xx.

use proptest::prelude::*;
use shared::App;
use shared::testkit::accounts;
use shared::testkit::{TestResponse, request};

const COLUMNS: [&str; 5] = ["createdAt", "email", "firstName", "lastName", "status"];
const FILTERS: [&str; 5] = ["email", "uuid", "firstName", "lastName", "status"];

fn config() -> ProptestConfig {
    ProptestConfig {
        cases: 256,
        ..ProptestConfig::default()
    }
}

/// Every byte but unreserved ASCII percent-encoded, so any text survives the query string.
fn encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// An in-memory app and a csrAdmin's token, made once per test.
struct Listing {
    runtime: tokio::runtime::Runtime,
    app: App,
    token: String,
}

impl Listing {
    fn new() -> Self {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a runtime");
        let app = App::in_memory();
        let token = runtime.block_on(accounts::admin(&app)).token;
        Self {
            runtime,
            app,
            token,
        }
    }

    fn get(&self, query: &[(&str, &str)]) -> TestResponse {
        let query: Vec<String> = query
            .iter()
            .map(|(key, value)| format!("{}={}", encode(key), encode(value)))
            .collect();
        let req = request("GET", &format!("/users?{}", query.join("&")))
            .bearer(&self.token)
            .build();
        self.runtime.block_on(users::handle(&self.app, req)).into()
    }
}

fn field_names(response: &TestResponse) -> Vec<String> {
    response.body["error"]["fields"]
        .as_object()
        .map(|fields| fields.keys().cloned().collect())
        .unwrap_or_default()
}

fn order_input() -> impl Strategy<Value = String> {
    prop_oneof![
        (
            prop::sample::select(COLUMNS.to_vec()),
            prop::sample::select(vec!["asc", "desc", "ASC", "up", ""]),
            any::<bool>(),
        )
            .prop_map(|(column, direction, colon)| if colon {
                format!("{column}:{direction}")
            } else {
                column.to_owned()
            }),
        "[a-zA-Z:]{0,16}",
        any::<String>(),
    ]
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn an_order_is_accepted_iff_a_known_column_with_asc_or_desc(order in order_input()) {
        let listing = Listing::new();
        let (column, direction) = order.split_once(':').unwrap_or((&order, "asc"));
        let valid = COLUMNS.contains(&column) && ["asc", "desc"].contains(&direction);

        let response = listing.get(&[("order", &order)]);

        if valid {
            prop_assert_eq!(response.status, 200, "{:?}: {}", order, response.text);
        } else {
            prop_assert_eq!(response.status, 400, "{:?}: {}", order, response.text);
            prop_assert_eq!(field_names(&response), vec!["order".to_owned()]);
        }
    }

    #[test]
    fn a_filter_is_accepted_iff_its_name_is_known_and_its_value_fits(
        name in prop_oneof![prop::sample::select(FILTERS.to_vec()).prop_map(str::to_owned), "[a-zA-Z]{1,10}"],
        value in prop_oneof![
            Just("active".to_owned()),
            Just("inactive".to_owned()),
            Just("deleted".to_owned()),
            Just("4f8e2a4c-1b7d-4c1e-9a3b-0c5d6e7f8a9b".to_owned()),
            "[a-zA-Z0-9@.]{0,12}",
        ],
    ) {
        let listing = Listing::new();
        let valid = !value.is_empty() && match name.as_str() {
            "email" | "firstName" | "lastName" => true,
            "uuid" => shared::domain::ids::UserId::parse(&value).is_some(),
            "status" => value == "active" || value == "inactive",
            _ => false,
        };
        let key = format!("filter[{name}]");

        let response = listing.get(&[(&key, &value)]);

        if valid {
            prop_assert_eq!(response.status, 200, "{}={:?}: {}", key, value, response.text);
        } else {
            prop_assert_eq!(response.status, 400, "{}={:?}: {}", key, value, response.text);
            prop_assert_eq!(field_names(&response), vec![key]);
        }
    }

    #[test]
    fn no_query_string_gets_a_server_error(
        pairs in prop::collection::vec(
            (prop_oneof![
                Just("page".to_owned()), Just("limit".to_owned()), Just("order".to_owned()),
                Just("cursor".to_owned()), Just("filter[email]".to_owned()),
                Just("filter[status]".to_owned()), "filter\\[.{0,6}\\]", any::<String>(),
            ], any::<String>()),
            0..5,
        ),
    ) {
        let listing = Listing::new();
        let pairs: Vec<(&str, &str)> = pairs.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();

        let response = listing.get(&pairs);

        prop_assert!([200, 400].contains(&response.status), "{:?}: {}", pairs, response.text);
        if response.status == 400 {
            prop_assert!(response.body["error"]["code"].is_string(), "{}", response.text);
        }
    }
}
