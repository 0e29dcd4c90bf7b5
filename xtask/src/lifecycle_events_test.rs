//! The lifecycle events of `template.yaml`'s `LifecyclePipe`, played against DynamoDB Local:
//! a user registers, verifies their email, is deactivated and deleted through the HTTP
//! routes; the table's stream is read as the pipe reads it, the pipe's own filter pattern and
//! input template (taken from the template, not copied) are applied, and exactly the four
//! lifecycle events come out, once each, in order, with nothing else of the table.

use aws_sdk_dynamodbstreams::types::{AttributeValue as StreamValue, ShardIteratorType};
use serde_json::{Map, Value, json};
use shared::App;
use shared::testkit::accounts::{self, PASSWORD};
use shared::testkit::{self, TestRequest, TestResponse, request};

use crate::router::Router;

const TEMPLATE: &str = include_str!("../../template.yaml");

/// The pipe's properties, from the template.
fn pipe() -> serde_yaml::Value {
    let template: serde_yaml::Value = serde_yaml::from_str(TEMPLATE).unwrap();
    template["Resources"]["LifecyclePipe"]["Properties"].clone()
}

fn filter_patterns() -> Vec<Value> {
    pipe()["SourceParameters"]["FilterCriteria"]["Filters"]
        .as_sequence()
        .expect("the pipe filters")
        .iter()
        .map(|filter| serde_json::from_str(filter["Pattern"].as_str().unwrap()).unwrap())
        .collect()
}

/// EventBridge's pattern rules as far as the pipe's pattern uses them: an object matches
/// field by field (every field of the pattern must be present), an array lists the values
/// allowed (a string equal, or `{"prefix": p}`).
fn matches(pattern: &Value, event: &Value) -> bool {
    match pattern {
        Value::Object(fields) => fields
            .iter()
            .all(|(name, sub)| event.get(name).is_some_and(|inner| matches(sub, inner))),
        Value::Array(allowed) => allowed.iter().any(|allowed| match allowed {
            Value::String(_) => allowed == event,
            Value::Object(rule) => match (rule.get("prefix"), event) {
                (Some(Value::String(prefix)), Value::String(value)) => value.starts_with(prefix),
                _ => panic!("a pattern rule this check does not know: {rule:?}"),
            },
            other => panic!("a pattern value this check does not know: {other:?}"),
        }),
        other => panic!("a pattern node this check does not know: {other:?}"),
    }
}

/// The value at a Pipes JSON path (`$.a.b.c`: dot notation, all the pipe uses).
fn at_path<'a>(event: &'a Value, path: &str) -> Option<&'a Value> {
    let steps = path.strip_prefix("$.").expect("a $. path");
    steps
        .split('.')
        .try_fold(event, |value, step| value.get(step))
}

/// The pipe's input template with each `<$.path>` replaced by the event's value there.
fn render(template: &str, event: &Value) -> Value {
    let mut rendered = String::new();
    let mut rest = template;
    while let Some(start) = rest.find("<$.") {
        let end = start + rest[start..].find('>').expect("a closed placeholder");
        let value = at_path(event, &rest[start + 1..end])
            .and_then(Value::as_str)
            .unwrap_or_else(|| panic!("{} is not a string in {event}", &rest[start + 1..end]));
        rendered.push_str(&rest[..start]);
        rendered.push_str(value);
        rest = &rest[end + 1..];
    }
    rendered.push_str(rest);
    serde_json::from_str(&rendered).expect("the input template renders to JSON")
}

/// A stream record in the JSON form a pipe filters and transforms.
fn record_json(event_name: &str, image: &std::collections::HashMap<String, StreamValue>) -> Value {
    let image: Map<String, Value> = image
        .iter()
        .map(|(name, value)| (name.clone(), attribute_json(value)))
        .collect();
    json!({"eventName": event_name, "dynamodb": {"NewImage": image}})
}

fn attribute_json(value: &StreamValue) -> Value {
    match value {
        StreamValue::S(s) => json!({"S": s}),
        StreamValue::N(n) => json!({"N": n}),
        StreamValue::Bool(b) => json!({"BOOL": b}),
        StreamValue::Null(_) => json!({"NULL": true}),
        StreamValue::M(map) => {
            let map: Map<String, Value> = map
                .iter()
                .map(|(name, value)| (name.clone(), attribute_json(value)))
                .collect();
            json!({"M": map})
        }
        StreamValue::L(list) => json!({"L": list.iter().map(attribute_json).collect::<Vec<_>>()}),
        StreamValue::Ss(set) => json!({"SS": set}),
        StreamValue::Ns(set) => json!({"NS": set}),
        other => json!({"other": format!("{other:?}")}),
    }
}

/// Every record of the table's stream so far, as the pipe receives them.
async fn stream_records(app: &App) -> Vec<Value> {
    let aws = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
    let endpoint = std::env::var("AWS_ENDPOINT_URL_DYNAMODB").expect("the test stack's DynamoDB");
    let dynamodb = aws_sdk_dynamodb::Client::new(&aws);
    let stream_arn = dynamodb
        .describe_table()
        .table_name(&app.config.table_name)
        .send()
        .await
        .unwrap()
        .table
        .and_then(|table| table.latest_stream_arn)
        .expect("the table has the template's stream");
    let streams = aws_sdk_dynamodbstreams::Client::from_conf(
        aws_sdk_dynamodbstreams::config::Builder::from(&aws)
            .endpoint_url(endpoint)
            .build(),
    );
    let shards = streams
        .describe_stream()
        .stream_arn(&stream_arn)
        .send()
        .await
        .unwrap()
        .stream_description
        .map(|description| description.shards.unwrap_or_default())
        .unwrap_or_default();
    let mut records = Vec::new();
    for shard in shards {
        let mut iterator = streams
            .get_shard_iterator()
            .stream_arn(&stream_arn)
            .shard_id(shard.shard_id.unwrap())
            .shard_iterator_type(ShardIteratorType::TrimHorizon)
            .send()
            .await
            .unwrap()
            .shard_iterator;
        while let Some(current) = iterator {
            let page = streams
                .get_records()
                .shard_iterator(current)
                .send()
                .await
                .unwrap();
            let batch = page.records.unwrap_or_default();
            if batch.is_empty() {
                break;
            }
            for record in batch {
                let name = record.event_name.map(|n| n.as_str().to_owned());
                let image = record.dynamodb.and_then(|d| d.new_image);
                if let (Some(name), Some(image)) = (name, image) {
                    records.push(record_json(&name, &image));
                }
            }
            iterator = page.next_shard_iterator;
        }
    }
    records
}

async fn send(app: &App, router: &Router, request: TestRequest) -> TestResponse {
    let request = request.build();
    let matched = router
        .resolve(request.method(), request.uri().path())
        .expect("template.yaml has a $default route");
    matched.function.call(app, request).await.into()
}

#[tokio::test]
async fn the_pipe_publishes_the_four_lifecycle_events_once_each_and_nothing_else() {
    let app = testkit::app().await;
    let router = Router::new(&testkit::template_routes()).expect("template routes");
    let admin = accounts::admin(&app).await;
    let user = accounts::register(&app, "lifecycle").await;

    // Verify the email through the mailed link.
    let started = send(
        &app,
        &router,
        request("POST", "/users/verify-email").bearer(&user.token),
    )
    .await;
    assert_eq!(started.status, 201, "{}", started.text);
    let mail = testkit::emails_to(&user.email).await;
    let body = mail.last().expect("a verification mail")["body"]
        .as_str()
        .unwrap()
        .to_owned();
    let link = body
        .split_once(app.config.link_base_url.as_str())
        .expect("a link")
        .1
        .split(|c: char| c == '"' || c == '<' || c.is_whitespace())
        .next()
        .unwrap()
        .to_owned();
    let verified = send(&app, &router, request("GET", &link)).await;
    assert_eq!(verified.status, 200, "{}", verified.text);

    // Things that are not lifecycle events: a login, a logout, a profile change.
    let session = accounts::login(&app, &user.email, PASSWORD).await.unwrap();
    let changed = send(
        &app,
        &router,
        request("PATCH", &format!("/users/{}", user.uuid))
            .bearer(&session.token)
            .json(json!({"firstName": "Grace"})),
    )
    .await;
    assert_eq!(changed.status, 200, "{}", changed.text);

    // A csrAdmin deactivates, then deletes the user.
    let deactivated = send(
        &app,
        &router,
        request("PATCH", &format!("/users/{}", user.uuid))
            .bearer(&admin.token)
            .json(json!({"status": "inactive"})),
    )
    .await;
    assert_eq!(deactivated.status, 200, "{}", deactivated.text);
    let deleted = send(
        &app,
        &router,
        request("DELETE", &format!("/users/{}", user.uuid))
            .bearer(&admin.token)
            .json(json!({"password": PASSWORD})),
    )
    .await;
    assert_eq!(deleted.status, 200, "{}", deleted.text);

    let records = stream_records(&app).await;
    let patterns = filter_patterns();
    let properties = pipe();
    let input_template = properties["TargetParameters"]["InputTemplate"]
        .as_str()
        .unwrap();
    let bus = &properties["TargetParameters"]["EventBridgeEventBusParameters"];
    let passed: Vec<&Value> = records
        .iter()
        .filter(|record| patterns.iter().any(|pattern| matches(pattern, record)))
        .collect();

    // The user's events, in the order they happened.
    let published: Vec<Value> = passed
        .iter()
        .map(|record| render(input_template, record))
        .filter(|detail| detail["userUUID"] == user.uuid.as_str())
        .collect();
    let types: Vec<&str> = published
        .iter()
        .map(|detail| detail["type"].as_str().unwrap())
        .collect();
    assert_eq!(
        types,
        [
            "user.registered",
            "email.verified",
            "status.changed",
            "user.deleted"
        ],
        "{published:#?}"
    );
    for (detail, record) in published.iter().zip(passed.iter().filter(|record| {
        at_path(record, "$.dynamodb.NewImage.userId.S") == Some(&json!(user.uuid))
    })) {
        assert_eq!(
            detail.as_object().unwrap().keys().collect::<Vec<_>>(),
            ["eventUUID", "occurredAt", "type", "userUUID"],
            "the detail holds exactly these (no IP address or User-Agent)"
        );
        let detail_type = at_path(record, bus["DetailType"].as_str().unwrap());
        assert_eq!(detail_type, Some(&detail["type"]));
        let time = at_path(record, bus["Time"].as_str().unwrap()).and_then(Value::as_str);
        assert!(
            time.and_then(shared::domain::clock::parse).is_some(),
            "{time:?}"
        );
        assert_eq!(bus["Source"], "kuri.users");
    }

    // The stream held far more (the user item, sessions, the token, other events): none of it
    // passed.
    let other_events: Vec<&str> = records
        .iter()
        .filter_map(|record| at_path(record, "$.dynamodb.NewImage.type.S")?.as_str())
        .filter(|kind| !types.contains(kind))
        .collect();
    assert!(
        !other_events.is_empty(),
        "the run recorded other security events too"
    );
    assert!(records.len() > passed.len() + other_events.len());
    for record in &passed {
        let kind = at_path(record, "$.dynamodb.NewImage.type.S").unwrap();
        assert!(
            types.contains(&kind.as_str().unwrap()),
            "{kind} passed the filter"
        );
        assert_eq!(record["eventName"], "INSERT");
    }
    // An update of an event item (there is none today) or a removal would not pass either.
    let mut modified = passed[0].clone();
    modified["eventName"] = json!("MODIFY");
    assert!(!patterns.iter().any(|pattern| matches(pattern, &modified)));
}
