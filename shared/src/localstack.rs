//! The local stand-ins for what `template.yaml` deploys: the routes of each function, the table
//! (DynamoDB Local), the reports bucket and the SES sender (moto).
//!
//! Everything is read from the template itself, so the dev server and the tests cannot drift from
//! what is deployed. Nothing here starts or stops processes: `xtask` does that, and tests call these
//! functions to give each test its own table.

use std::time::Duration;

use aws_sdk_dynamodb::error::{DisplayErrorContext, ProvideErrorMetadata};
use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, GlobalSecondaryIndex, KeySchemaElement, KeyType, Projection,
    ProjectionType, ScalarAttributeType, StreamSpecification, StreamViewType,
    TimeToLiveSpecification, TimeToLiveStatus,
};
use serde::Deserialize;
use serde_yaml::Value;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("template.yaml: {0}")]
    Template(String),
    #[error("{operation} failed: {message}")]
    Aws {
        operation: &'static str,
        message: String,
    },
}

impl Error {
    /// A failed call: the service's code and message when it answered, else the whole chain
    /// (e.g. the connection that was refused).
    fn aws(operation: &'static str, error: impl ProvideErrorMetadata + std::error::Error) -> Self {
        let message = match (error.code(), error.message()) {
            (Some(code), Some(message)) => format!("{code}: {message}"),
            _ => DisplayErrorContext(&error).to_string(),
        };
        Self::Aws { operation, message }
    }

    fn other(operation: &'static str, error: impl std::error::Error) -> Self {
        Self::Aws {
            operation,
            message: DisplayErrorContext(error).to_string(),
        }
    }
}

/// One `HttpApi` event of a function: `path` is in API Gateway syntax (`/users/{uuid}`,
/// `/{proxy+}`) or `$default`; `method` is upper case, `ANY` for every method.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Route {
    /// The cargo binary (= crate) serving the route, from `Metadata.BuildProperties.Binary`.
    pub binary: String,
    pub method: String,
    pub path: String,
}

/// Every `AWS::Serverless::Function` as (logical id, cargo binary, resource), in template
/// order; the binary is its `Metadata.BuildProperties.Binary`.
fn functions(template: &str) -> Result<Vec<(String, String, Value)>, Error> {
    let mut functions = Vec::new();
    for (name, resource) in resources(template)? {
        if resource.get("Type").and_then(Value::as_str) != Some("AWS::Serverless::Function") {
            continue;
        }
        let name = name.as_str().unwrap_or("?").to_owned();
        let binary = resource
            .get("Metadata")
            .and_then(|m| m.get("BuildProperties"))
            .and_then(|b| b.get("Binary"))
            .and_then(Value::as_str)
            .ok_or_else(|| {
                Error::Template(format!("{name} has no Metadata.BuildProperties.Binary"))
            })?
            .to_owned();
        functions.push((name, binary, resource));
    }
    Ok(functions)
}

/// Every `AWS::Serverless::Function` as (logical id, cargo binary), in template order: what
/// `sam build` builds, in `<build dir>/<logical id>/bootstrap`.
pub fn function_binaries(template: &str) -> Result<Vec<(String, String)>, Error> {
    Ok(functions(template)?
        .into_iter()
        .map(|(name, binary, _)| (name, binary))
        .collect())
}

/// Every `HttpApi` route of every `AWS::Serverless::Function`, in template order.
pub fn routes(template: &str) -> Result<Vec<Route>, Error> {
    let mut routes = Vec::new();
    for (name, binary, resource) in functions(template)? {
        let Some(events) = resource
            .get("Properties")
            .and_then(|p| p.get("Events"))
            .and_then(Value::as_mapping)
        else {
            continue;
        };
        for (event_name, event) in events {
            if event.get("Type").and_then(Value::as_str) != Some("HttpApi") {
                continue;
            }
            let event_name = event_name.as_str().unwrap_or("?");
            let properties = event.get("Properties");
            let text = |key: &str| properties.and_then(|p| p.get(key)).and_then(Value::as_str);
            // An HttpApi event without Path and Method is SAM's spelling of `$default`.
            let path = text("Path").unwrap_or("$default");
            let method = text("Method").unwrap_or("ANY").to_ascii_uppercase();
            if path != "$default" && !path.starts_with('/') {
                return Err(Error::Template(format!(
                    "{name}.{event_name}: path {path:?} must start with / or be $default"
                )));
            }
            routes.push(Route {
                binary: binary.to_owned(),
                method,
                path: path.to_owned(),
            });
        }
    }
    Ok(routes)
}

/// The IAM actions each function's policy statements allow, by cargo binary (the local IAM
/// check holds them against the actions the tests saw each function use). A DynamoDB action
/// allowed on an index reads `dynamodb:Query index/<name>`, as the recorder writes a request
/// to that index; on the table itself it is the bare action. Any other DynamoDB resource
/// (`index/*`, another table) is kept as written, so that it matches no request.
pub fn allowed_actions(
    template: &str,
) -> Result<std::collections::BTreeMap<String, std::collections::BTreeSet<String>>, Error> {
    let mut allowed = std::collections::BTreeMap::new();
    for (name, binary, resource) in functions(template)? {
        let actions: &mut std::collections::BTreeSet<String> =
            allowed.entry(binary.to_owned()).or_default();
        let policies = resource
            .get("Properties")
            .and_then(|p| p.get("Policies"))
            .and_then(Value::as_sequence)
            .into_iter()
            .flatten();
        let statements = policies
            .filter_map(|policy| policy.get("Statement").and_then(Value::as_sequence))
            .flatten()
            .filter(|statement| statement.get("Effect").and_then(Value::as_str) == Some("Allow"));
        for statement in statements {
            let listed: Vec<&str> = match statement.get("Action") {
                Some(Value::String(action)) => vec![action.as_str()],
                Some(Value::Sequence(list)) => list.iter().filter_map(Value::as_str).collect(),
                _ => {
                    return Err(Error::Template(format!(
                        "{name}: a statement without Action"
                    )));
                }
            };
            let resources: Vec<&Value> = match statement.get("Resource") {
                Some(Value::Sequence(list)) => list.iter().collect(),
                Some(one) => vec![one],
                None => Vec::new(),
            };
            for action in listed {
                if !action.starts_with("dynamodb:") {
                    actions.insert(action.to_owned());
                    continue;
                }
                for resource in &resources {
                    actions.insert(match table_resource(resource) {
                        Some("") => action.to_owned(),
                        Some(suffix) => format!("{action} {suffix}"),
                        None => format!("{action} {}", describe(resource)),
                    });
                }
            }
        }
    }
    Ok(allowed)
}

/// `""` for the table's own ARN (`!GetAtt Table.Arn`), `index/<name>` for one of its indexes
/// (`!Sub "${Table.Arn}/index/<name>"`), `None` for anything else.
fn table_resource(resource: &Value) -> Option<&str> {
    let Value::Tagged(tagged) = resource else {
        return None;
    };
    let text = tagged.value.as_str()?;
    match tagged.tag.to_string().trim_start_matches('!') {
        "GetAtt" if text == "Table.Arn" => Some(""),
        "Sub" => text.strip_prefix("${Table.Arn}/"),
        _ => None,
    }
}

fn describe(resource: &Value) -> String {
    serde_yaml::to_string(resource)
        .unwrap_or_default()
        .trim()
        .replace('\n', " ")
}

/// Creates `table_name` with the keys, indexes, billing mode and TTL of the template's
/// `AWS::DynamoDB::Table`. Succeeds when the table already exists.
pub async fn create_table(
    client: &aws_sdk_dynamodb::Client,
    template: &str,
    table_name: &str,
) -> Result<(), Error> {
    use aws_sdk_dynamodb::client::Waiters;

    let spec = table_spec(template)?;
    let created = client
        .create_table()
        .table_name(table_name)
        .billing_mode(BillingMode::from(spec.billing_mode.as_str()))
        .set_attribute_definitions(Some(spec.attribute_definitions()?))
        .set_key_schema(Some(key_schema(&spec.key_schema)?))
        .set_global_secondary_indexes(spec.global_secondary_indexes()?)
        .set_stream_specification(spec.stream_specification()?)
        .send()
        .await;
    match created {
        Ok(_) => {}
        Err(error)
            if error
                .as_service_error()
                .is_some_and(|e| e.is_resource_in_use_exception()) => {}
        Err(error) => return Err(Error::aws("CreateTable", error)),
    }
    client
        .wait_until_table_exists()
        .table_name(table_name)
        .wait(Duration::from_secs(60))
        .await
        .map_err(|e| Error::other("DescribeTable", e))?;

    let Some(ttl) = spec.time_to_live_specification.filter(|t| t.enabled) else {
        return Ok(());
    };
    let current = client
        .describe_time_to_live()
        .table_name(table_name)
        .send()
        .await
        .map_err(|e| Error::aws("DescribeTimeToLive", e))?;
    let already = current.time_to_live_description().is_some_and(|d| {
        d.attribute_name() == Some(ttl.attribute_name.as_str())
            && matches!(
                d.time_to_live_status(),
                Some(TimeToLiveStatus::Enabled | TimeToLiveStatus::Enabling)
            )
    });
    if !already {
        let specification = TimeToLiveSpecification::builder()
            .attribute_name(&ttl.attribute_name)
            .enabled(true)
            .build()
            .map_err(|e| Error::other("UpdateTimeToLive", e))?;
        client
            .update_time_to_live()
            .table_name(table_name)
            .time_to_live_specification(specification)
            .send()
            .await
            .map_err(|e| Error::aws("UpdateTimeToLive", e))?;
    }
    Ok(())
}

/// Creates the bucket; succeeds when it already exists.
pub async fn create_bucket(client: &aws_sdk_s3::Client, name: &str) -> Result<(), Error> {
    use aws_sdk_s3::types::{BucketLocationConstraint, CreateBucketConfiguration};

    let mut request = client.create_bucket().bucket(name);
    // us-east-1 is the one region where a location constraint is refused.
    if let Some(region) = client
        .config()
        .region()
        .map(|r| r.as_ref())
        .filter(|r| *r != "us-east-1")
    {
        request = request.create_bucket_configuration(
            CreateBucketConfiguration::builder()
                .location_constraint(BucketLocationConstraint::from(region))
                .build(),
        );
    }
    match request.send().await {
        Ok(_) => Ok(()),
        Err(error)
            if error.as_service_error().is_some_and(|e| {
                e.is_bucket_already_owned_by_you() || e.is_bucket_already_exists()
            }) =>
        {
            Ok(())
        }
        Err(error) => Err(Error::aws("CreateBucket", error)),
    }
}

/// Asks SES to verify a sender address (moto marks it verified at once).
pub async fn verify_sender(client: &aws_sdk_ses::Client, email: &str) -> Result<(), Error> {
    client
        .verify_email_identity()
        .email_address(email)
        .send()
        .await
        .map(|_| ())
        .map_err(|e| Error::aws("VerifyEmailIdentity", e))
}

fn resources(template: &str) -> Result<serde_yaml::Mapping, Error> {
    let document: Value =
        serde_yaml::from_str(template).map_err(|e| Error::Template(e.to_string()))?;
    document
        .get("Resources")
        .and_then(Value::as_mapping)
        .cloned()
        .ok_or_else(|| Error::Template("no Resources".into()))
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct TableSpec {
    billing_mode: String,
    attribute_definitions: Vec<AttributeSpec>,
    key_schema: Vec<KeySpec>,
    #[serde(default)]
    global_secondary_indexes: Vec<IndexSpec>,
    time_to_live_specification: Option<TtlSpec>,
    stream_specification: Option<StreamSpec>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct StreamSpec {
    stream_view_type: String,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct AttributeSpec {
    attribute_name: String,
    attribute_type: String,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct KeySpec {
    attribute_name: String,
    key_type: String,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct IndexSpec {
    index_name: String,
    key_schema: Vec<KeySpec>,
    projection: ProjectionSpec,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ProjectionSpec {
    projection_type: String,
    #[serde(default)]
    non_key_attributes: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct TtlSpec {
    attribute_name: String,
    enabled: bool,
}

/// The `Table` resource, or else the template's only `AWS::DynamoDB::Table`.
fn table_spec(template: &str) -> Result<TableSpec, Error> {
    let resources = resources(template)?;
    let is_table = |resource: &Value| {
        resource.get("Type").and_then(Value::as_str) == Some("AWS::DynamoDB::Table")
    };
    let table = match resources.get("Table").filter(|r| is_table(r)) {
        Some(table) => table,
        None => {
            let mut tables = resources.values().filter(|r| is_table(r));
            match (tables.next(), tables.next()) {
                (Some(table), None) => table,
                _ => {
                    return Err(Error::Template(
                        "expected a resource `Table` of type AWS::DynamoDB::Table".into(),
                    ));
                }
            }
        }
    };
    let properties = table
        .get("Properties")
        .cloned()
        .ok_or_else(|| Error::Template("Table has no Properties".into()))?;
    let spec: TableSpec = serde_yaml::from_value(properties)
        .map_err(|e| Error::Template(format!("Table.Properties: {e}")))?;
    if spec.billing_mode != "PAY_PER_REQUEST" {
        return Err(Error::Template(format!(
            "Table.BillingMode {:?}: only PAY_PER_REQUEST is supported locally",
            spec.billing_mode
        )));
    }
    Ok(spec)
}

impl TableSpec {
    /// The table's stream, as the deployed one has it (the lifecycle-event pipe reads it).
    fn stream_specification(&self) -> Result<Option<StreamSpecification>, Error> {
        self.stream_specification
            .as_ref()
            .map(|stream| {
                StreamSpecification::builder()
                    .stream_enabled(true)
                    .stream_view_type(StreamViewType::from(stream.stream_view_type.as_str()))
                    .build()
                    .map_err(|e| Error::Template(format!("StreamSpecification: {e}")))
            })
            .transpose()
    }

    fn attribute_definitions(&self) -> Result<Vec<AttributeDefinition>, Error> {
        self.attribute_definitions
            .iter()
            .map(|a| {
                AttributeDefinition::builder()
                    .attribute_name(&a.attribute_name)
                    .attribute_type(ScalarAttributeType::from(a.attribute_type.as_str()))
                    .build()
                    .map_err(|e| Error::Template(format!("AttributeDefinitions: {e}")))
            })
            .collect()
    }

    fn global_secondary_indexes(&self) -> Result<Option<Vec<GlobalSecondaryIndex>>, Error> {
        if self.global_secondary_indexes.is_empty() {
            return Ok(None);
        }
        self.global_secondary_indexes
            .iter()
            .map(|index| {
                let non_key = &index.projection.non_key_attributes;
                let projection = Projection::builder()
                    .projection_type(ProjectionType::from(
                        index.projection.projection_type.as_str(),
                    ))
                    .set_non_key_attributes((!non_key.is_empty()).then(|| non_key.clone()))
                    .build();
                GlobalSecondaryIndex::builder()
                    .index_name(&index.index_name)
                    .set_key_schema(Some(key_schema(&index.key_schema)?))
                    .projection(projection)
                    .build()
                    .map_err(|e| Error::Template(format!("{}: {e}", index.index_name)))
            })
            .collect::<Result<Vec<_>, _>>()
            .map(Some)
    }
}

fn key_schema(keys: &[KeySpec]) -> Result<Vec<KeySchemaElement>, Error> {
    keys.iter()
        .map(|k| {
            KeySchemaElement::builder()
                .attribute_name(&k.attribute_name)
                .key_type(KeyType::from(k.key_type.as_str()))
                .build()
                .map_err(|e| Error::Template(format!("KeySchema: {e}")))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEMPLATE: &str = include_str!("../../template.yaml");

    fn route(binary: &str, method: &str, path: &str) -> Route {
        Route {
            binary: binary.into(),
            method: method.into(),
            path: path.into(),
        }
    }

    #[test]
    fn routes_of_the_real_template_name_their_binary_method_and_path() {
        let routes = routes(TEMPLATE).unwrap();

        for expected in [
            route("users", "POST", "/users"),
            route("users", "PUT", "/users/{uuid}/roles"),
            route("sessions", "PUT", "/users/sessions/{sessionUUID}/refresh"),
            route("sessions", "GET", "/.well-known/jwks.json"),
            route("two-factor", "GET", "/users/two-factor-auth/code"),
            route(
                "password-recovery",
                "GET",
                "/users/recover-password/verify/{token}",
            ),
            route("email-verification", "GET", "/users/verify-email/{email}"),
            route(
                "diagnostic-reports",
                "GET",
                "/users/{userUUID}/diagnostic-reports",
            ),
        ] {
            assert!(routes.contains(&expected), "missing {expected:?}");
        }
    }

    #[test]
    fn the_real_template_has_exactly_one_catch_all_and_it_is_served_by_users() {
        let routes = routes(TEMPLATE).unwrap();

        let catch_alls: Vec<_> = routes
            .iter()
            .filter(|r| r.path == "$default" || r.path.ends_with("+}"))
            .collect();

        assert_eq!(catch_alls.len(), 1, "{catch_alls:?}");
        assert_eq!(catch_alls[0].binary, "users");
        assert_eq!(catch_alls[0].method, "ANY");
    }

    #[test]
    fn no_two_routes_of_the_real_template_share_method_and_path() {
        let routes = routes(TEMPLATE).unwrap();

        let mut keys: Vec<_> = routes.iter().map(|r| (&r.method, &r.path)).collect();
        keys.sort();
        let before = keys.len();
        keys.dedup();

        assert_eq!(keys.len(), before);
    }

    #[test]
    fn table_of_the_real_template_has_the_data_model_keys_indexes_and_ttl() {
        let spec = table_spec(TEMPLATE).unwrap();

        let keys: Vec<_> = spec
            .key_schema
            .iter()
            .map(|k| (k.attribute_name.as_str(), k.key_type.as_str()))
            .collect();
        assert_eq!(keys, [("pk", "HASH"), ("sk", "RANGE")]);
        let indexes: Vec<_> = spec
            .global_secondary_indexes
            .iter()
            .map(|i| i.index_name.as_str())
            .collect();
        assert_eq!(
            indexes,
            [
                "gsi1",
                "gsi2",
                "usersByFirstName",
                "usersByLastName",
                "userSessions"
            ]
        );
        assert_eq!(spec.attribute_definitions().unwrap().len(), 10);
        assert_eq!(spec.global_secondary_indexes().unwrap().unwrap().len(), 5);
        let ttl = spec.time_to_live_specification.unwrap();
        assert_eq!(ttl.attribute_name, "ttl");
        assert!(ttl.enabled);
    }

    #[test]
    fn a_function_without_a_binary_is_named_in_the_error() {
        let template = "
Resources:
  OrphanFunction:
    Type: AWS::Serverless::Function
    Properties:
      Events:
        Get: {Type: HttpApi, Properties: {Path: /x, Method: GET}}
";
        let error = routes(template).unwrap_err();

        assert!(error.to_string().contains("OrphanFunction"), "{error}");
    }

    #[test]
    fn an_http_api_event_without_path_is_the_default_route() {
        let template = "
Resources:
  F:
    Type: AWS::Serverless::Function
    Metadata: {BuildProperties: {Binary: f}}
    Properties:
      Events:
        Fallback: {Type: HttpApi}
        Get: {Type: HttpApi, Properties: {Path: /x, Method: get, ApiId: !Ref Api}}
";
        let routes = routes(template).unwrap();

        assert_eq!(
            routes,
            [route("f", "ANY", "$default"), route("f", "GET", "/x")]
        );
    }

    #[test]
    fn provisioned_billing_is_refused_rather_than_silently_changed() {
        let template = "
Resources:
  Table:
    Type: AWS::DynamoDB::Table
    Properties:
      BillingMode: PROVISIONED
      AttributeDefinitions: [{AttributeName: pk, AttributeType: S}]
      KeySchema: [{AttributeName: pk, KeyType: HASH}]
";
        let error = table_spec(template).unwrap_err();

        assert!(error.to_string().contains("PAY_PER_REQUEST"), "{error}");
    }
}
