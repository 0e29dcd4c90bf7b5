//! `openapi.yaml` describes exactly the routes of `template.yaml`: an operation for every route
//! (method and path, the `$default` catch-all aside) and a route for every operation.

use std::collections::BTreeSet;

use serde_yaml::Value;

const TEMPLATE: &str = include_str!("../../template.yaml");
const OPENAPI: &str = include_str!("../../openapi.yaml");

/// The keys of an OpenAPI Path Item that are operations.
const METHODS: [&str; 8] = [
    "get", "put", "post", "delete", "options", "head", "patch", "trace",
];

fn template_routes() -> BTreeSet<String> {
    shared::localstack::routes(TEMPLATE)
        .expect("template.yaml parses")
        .into_iter()
        .filter(|route| route.path != "$default")
        .map(|route| format!("{} {}", route.method, route.path))
        .collect()
}

fn openapi_operations(spec: &str) -> BTreeSet<String> {
    let spec: Value = serde_yaml::from_str(spec).expect("openapi.yaml is YAML");
    let paths = spec["paths"].as_mapping().expect("openapi.yaml has paths");
    let mut operations = BTreeSet::new();
    for (path, item) in paths {
        let path = path.as_str().expect("a path is a string");
        let item = item.as_mapping().expect("a path item is a mapping");
        for key in item.keys().filter_map(Value::as_str) {
            if METHODS.contains(&key) {
                operations.insert(format!("{} {path}", key.to_uppercase()));
            }
        }
    }
    operations
}

#[test]
fn openapi_has_an_operation_for_every_template_route_and_no_other() {
    let routes = template_routes();
    let operations = openapi_operations(OPENAPI);

    let undocumented: Vec<&String> = routes.difference(&operations).collect();
    let unrouted: Vec<&String> = operations.difference(&routes).collect();
    assert!(
        undocumented.is_empty() && unrouted.is_empty(),
        "template.yaml and openapi.yaml disagree.\n  routes with no operation in openapi.yaml: \
         {undocumented:?}\n  operations with no route in template.yaml: {unrouted:?}"
    );
}

#[test]
fn operations_are_read_per_method_and_path_item_fields_are_not_operations() {
    let spec = "
openapi: 3.1.0
paths:
  /users/{uuid}:
    summary: not an operation
    parameters: []
    get: {}
    patch: {}
  /.well-known/jwks.json:
    get: {}
";

    let operations = openapi_operations(spec);

    assert_eq!(
        operations,
        BTreeSet::from([
            "GET /.well-known/jwks.json".to_owned(),
            "GET /users/{uuid}".to_owned(),
            "PATCH /users/{uuid}".to_owned(),
        ])
    );
}
