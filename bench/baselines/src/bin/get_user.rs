//! Baseline: a minimal `GET /users/{uuid}`. INIT builds the DynamoDB client and opens its
//! connection (one `GetItem`), as the functions do; each request verifies the EdDSA bearer
//! token and reads the caller's profile with one `GetItem`. No sessions, roles or views: the
//! least a get-user can do on this table.
//!
//! Environment: `TABLE_NAME`, `JWT_ISSUER`, `JWT_AUDIENCE`, and `JWT_PUBLIC_KEY_X` (the
//! base64url Ed25519 public key, the `x` of the function's JWKS entry).

use std::collections::HashMap;

use aws_sdk_dynamodb::types::AttributeValue;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use lambda_http::{Body, Error, Request, Response, service_fn};
use serde::Deserialize;
use serde_json::{Map, Value, json};

struct Context {
    client: aws_sdk_dynamodb::Client,
    table: String,
    key: DecodingKey,
    validation: Validation,
}

#[derive(Deserialize)]
struct Claims {
    sub: String,
}

fn env(name: &str) -> Result<String, Error> {
    std::env::var(name).map_err(|_| format!("{name} is not set").into())
}

fn key(pk: String, sk: &str) -> HashMap<String, AttributeValue> {
    HashMap::from([
        ("pk".to_owned(), AttributeValue::S(pk)),
        ("sk".to_owned(), AttributeValue::S(sk.to_owned())),
    ])
}

fn reply(status: u16, body: Value) -> Result<Response<Body>, Error> {
    Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .body(Body::from(body.to_string()))
        .map_err(Error::from)
}

async fn get_user(context: &Context, request: Request) -> Result<Response<Body>, Error> {
    let token = request
        .headers()
        .get("authorization")
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.strip_prefix("Bearer "));
    let claims = token.and_then(|token| {
        jsonwebtoken::decode::<Claims>(token, &context.key, &context.validation)
            .ok()
            .map(|data| data.claims)
    });
    let Some(claims) = claims else {
        return reply(401, json!({ "error": { "message": "Invalid token" } }));
    };
    let item = context
        .client
        .get_item()
        .table_name(&context.table)
        .set_key(Some(key(format!("USER#{}", claims.sub), "PROFILE")))
        .send()
        .await?
        .item;
    let Some(item) = item else {
        return reply(
            404,
            json!({ "error": { "message": "This user does not exist." } }),
        );
    };
    let user: Map<String, Value> = ["email", "firstName", "lastName", "status"]
        .into_iter()
        .filter_map(|name| Some((name.to_owned(), item.get(name)?.as_s().ok()?.clone().into())))
        .collect();
    reply(200, json!({ "data": { "uuid": claims.sub, "user": user } }))
}

#[tokio::main]
async fn main() -> Result<(), Error> {
    let aws = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
    let client = aws_sdk_dynamodb::Client::new(&aws);
    let table = env("TABLE_NAME")?;
    // Opens the connection (TLS included) during INIT, as the functions' warm_up does.
    let _ = client
        .get_item()
        .table_name(&table)
        .set_key(Some(key("WARMUP".to_owned(), "WARMUP")))
        .send()
        .await;
    let mut validation = Validation::new(Algorithm::EdDSA);
    validation.set_issuer(&[env("JWT_ISSUER")?]);
    validation.set_audience(&[env("JWT_AUDIENCE")?]);
    let context: &'static Context = Box::leak(Box::new(Context {
        client,
        table,
        key: DecodingKey::from_ed_components(&env("JWT_PUBLIC_KEY_X")?)?,
        validation,
    }));
    lambda_http::run(service_fn(move |request| get_user(context, request))).await
}
