//! The dev server: plays API Gateway (HTTP API, payload 2.0) in front of the function crates,
//! called in-process. Requests become the same `lambda_http::Request` a deployed function gets,
//! by way of the JSON event API Gateway would send.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use base64::Engine;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::{Bytes, Incoming};
use hyper::header::{CONTENT_LENGTH, COOKIE, HeaderValue};
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::{Map, Value, json};
use shared::{ApiError, App};
use tokio::net::TcpListener;

use crate::router::{Matched, Router};

/// API Gateway refuses larger request bodies before any function runs.
const MAX_BODY_BYTES: usize = 10 * 1024 * 1024;

type HyperResponse = Response<Full<Bytes>>;

/// Serves until the listener fails; each connection and request runs on its own task.
pub async fn serve(listener: TcpListener, app: App, router: Router) -> std::io::Result<()> {
    let router = Arc::new(router);
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            // Out of descriptors and the like: this connection is lost, the server is not.
            Err(error) => {
                tracing::warn!(%error, "accept failed");
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                continue;
            }
        };
        let local_port = listener.local_addr()?.port();
        let app = app.clone();
        let router = router.clone();
        tokio::spawn(async move {
            let service = service_fn(move |request| {
                let app = app.clone();
                let router = router.clone();
                async move {
                    Ok::<_, Infallible>(respond(app, &router, peer, local_port, request).await)
                }
            });
            if let Err(error) = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await
            {
                tracing::debug!(%error, "connection ended with an error");
            }
        });
    }
}

async fn respond(
    app: App,
    router: &Router,
    peer: SocketAddr,
    local_port: u16,
    request: Request<Incoming>,
) -> HyperResponse {
    let started = Instant::now();
    let request_id = uuid::Uuid::new_v4().to_string();
    let method = request.method().clone();
    let path = request.uri().path().to_owned();
    let (function, response) =
        match dispatch(app, router, peer, local_port, &request_id, request).await {
            Ok((function, response)) => (function, response),
            Err(response) => ("api gateway", response),
        };
    tracing::info!(
        "{method} {path} -> {} ({function}, {} ms)",
        response.status().as_u16(),
        started.elapsed().as_millis()
    );
    let mut response = response;
    if let Ok(value) = HeaderValue::from_str(&request_id) {
        response.headers_mut().insert("apigw-requestid", value);
    }
    response
}

/// Returns the answering function's name and its response, or a response API Gateway itself
/// would give.
async fn dispatch(
    app: App,
    router: &Router,
    peer: SocketAddr,
    local_port: u16,
    request_id: &str,
    request: Request<Incoming>,
) -> Result<(&'static str, HyperResponse), HyperResponse> {
    let (parts, body) = request.into_parts();
    let declared_too_large = parts
        .headers
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.parse::<u64>().ok())
        .is_some_and(|length| length > MAX_BODY_BYTES as u64);
    if declared_too_large {
        return Err(too_large());
    }
    let body = match Limited::new(body, MAX_BODY_BYTES).collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(error) if error.is::<http_body_util::LengthLimitError>() => return Err(too_large()),
        Err(error) => {
            tracing::debug!(%error, "request body could not be read");
            return Err(gateway_error(StatusCode::BAD_REQUEST, "Bad Request"));
        }
    };

    if let Some(spec) = openapi_spec(&parts.method, parts.uri.path()) {
        return Ok(("openapi.yaml", spec));
    }
    let Some(matched) = router.resolve(&parts.method, parts.uri.path()) else {
        return Err(gateway_error(StatusCode::NOT_FOUND, "Not Found"));
    };
    let event = event(&parts, &body, &matched, peer, local_port, request_id);
    let lambda_request = lambda_http::request::from_str(&event.to_string()).map_err(|error| {
        tracing::error!(%error, "could not build the Lambda request");
        gateway_error(StatusCode::INTERNAL_SERVER_ERROR, "Internal Server Error")
    })?;

    let function = matched.function;
    // A panicking function is a failed invoke: API Gateway answers 500 with its own body.
    let response = tokio::spawn(async move { function.call(&app, lambda_request).await })
        .await
        .map_err(|error| {
            tracing::error!(%error, function = function.binary(), "function failed");
            gateway_error(StatusCode::INTERNAL_SERVER_ERROR, "Internal Server Error")
        })?;
    Ok((function.binary(), to_hyper(response)))
}

/// The payload format 2.0 event API Gateway would send for this request.
fn event(
    parts: &hyper::http::request::Parts,
    body: &Bytes,
    matched: &Matched,
    peer: SocketAddr,
    local_port: u16,
    request_id: &str,
) -> Value {
    let mut headers = Map::new();
    let mut cookies = Vec::new();
    for name in parts.headers.keys() {
        let values: Vec<String> = parts
            .headers
            .get_all(name)
            .iter()
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
            .collect();
        if name == COOKIE {
            cookies.extend(
                values
                    .iter()
                    .flat_map(|v| v.split(';'))
                    .map(str::trim)
                    .filter(|c| !c.is_empty())
                    .map(str::to_owned),
            );
        } else {
            headers.insert(name.as_str().to_owned(), values.join(",").into());
        }
    }
    let forwarded_for = match headers.get("x-forwarded-for").and_then(Value::as_str) {
        Some(earlier) => format!("{earlier}, {}", peer.ip()),
        None => peer.ip().to_string(),
    };
    headers.insert("x-forwarded-for".into(), forwarded_for.into());
    headers.insert("x-forwarded-proto".into(), "http".into());
    headers.insert("x-forwarded-port".into(), local_port.to_string().into());

    let path = parts.uri.path();
    let host = headers
        .get("host")
        .and_then(Value::as_str)
        .unwrap_or("127.0.0.1")
        .to_owned();
    let user_agent = headers.get("user-agent").cloned().unwrap_or(Value::Null);
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();

    let mut event = json!({
        "version": "2.0",
        "routeKey": matched.route_key,
        "rawPath": path,
        "rawQueryString": parts.uri.query().unwrap_or(""),
        "headers": headers,
        "requestContext": {
            "accountId": "000000000000",
            "apiId": "local",
            "domainName": host,
            "domainPrefix": host.split('.').next().unwrap_or("local"),
            "http": {
                "method": parts.method.as_str(),
                "path": path,
                "protocol": format!("{:?}", parts.version),
                "sourceIp": peer.ip().to_string(),
                "userAgent": user_agent,
            },
            "requestId": request_id,
            "routeKey": matched.route_key,
            "stage": "$default",
            "timeEpoch": i64::try_from(now.as_millis()).unwrap_or(i64::MAX),
        },
        "isBase64Encoded": false,
    });
    if !cookies.is_empty() {
        event["cookies"] = json!(cookies);
    }
    if !matched.path_parameters.is_empty() {
        let parameters: Map<String, Value> = matched
            .path_parameters
            .iter()
            .map(|(name, value)| (name.clone(), value.clone().into()))
            .collect();
        event["pathParameters"] = parameters.into();
    }
    if !body.is_empty() {
        match std::str::from_utf8(body) {
            Ok(text) => event["body"] = text.into(),
            Err(_) => {
                event["body"] = base64::engine::general_purpose::STANDARD
                    .encode(body)
                    .into();
                event["isBase64Encoded"] = true.into();
            }
        }
    }
    event
}

/// `GET /openapi.yaml`: the API's description, read on every request so edits show at once.
/// Only the dev server has this route; the deployed API does not.
fn openapi_spec(method: &Method, path: &str) -> Option<HyperResponse> {
    if method != Method::GET || path != "/openapi.yaml" {
        return None;
    }
    let path = crate::root().join("openapi.yaml");
    Some(match std::fs::read(&path) {
        Ok(spec) => {
            let mut response = Response::new(Full::new(Bytes::from(spec)));
            response.headers_mut().insert(
                hyper::header::CONTENT_TYPE,
                HeaderValue::from_static("application/yaml"),
            );
            response
        }
        Err(error) => {
            tracing::error!(%error, path = %path.display(), "cannot read the OpenAPI description");
            gateway_error(StatusCode::INTERNAL_SERVER_ERROR, "Internal Server Error")
        }
    })
}

fn to_hyper(response: lambda_http::Response<lambda_http::Body>) -> HyperResponse {
    let (parts, body) = response.into_parts();
    Response::from_parts(parts, Full::new(Bytes::copy_from_slice(body.as_ref())))
}

fn too_large() -> HyperResponse {
    to_hyper(shared::http::error_response(ApiError::PayloadTooLarge))
}

/// A response API Gateway itself gives, in its own format (not the API's).
fn gateway_error(status: StatusCode, message: &str) -> HyperResponse {
    let mut response = Response::new(Full::new(Bytes::from(
        json!({ "message": message }).to_string(),
    )));
    *response.status_mut() = status;
    response.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;
    use lambda_http::RequestExt;

    fn lambda_request(
        method: &str,
        uri: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> lambda_http::Request {
        let mut builder = Request::builder().method(method).uri(uri);
        for (name, value) in headers {
            builder = builder.header(*name, *value);
        }
        let (parts, ()) = builder.body(()).unwrap().into_parts();
        let router =
            Router::new(&shared::localstack::routes(include_str!("../../template.yaml")).unwrap())
                .unwrap();
        let matched = router.resolve(&parts.method, parts.uri.path()).unwrap();
        let event = event(
            &parts,
            &Bytes::copy_from_slice(body),
            &matched,
            "127.0.0.1:50000".parse().unwrap(),
            3000,
            "req-1",
        );
        lambda_http::request::from_str(&event.to_string()).unwrap()
    }

    #[test]
    fn the_openapi_description_is_served_as_yaml_on_get_only() {
        let response = openapi_spec(&Method::GET, "/openapi.yaml").expect("served");

        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(
            response.headers()[hyper::header::CONTENT_TYPE],
            "application/yaml"
        );
        assert!(openapi_spec(&Method::POST, "/openapi.yaml").is_none());
        assert!(openapi_spec(&Method::GET, "/openapi.yml").is_none());
    }

    #[test]
    fn method_path_query_headers_and_json_body_reach_the_function() {
        let request = lambda_request(
            "PATCH",
            "/users/0b0a8f8e-5c5e-4c59-9f0e-3f1f1c2d3e4f?x=1&y=a%20b",
            &[
                ("host", "127.0.0.1:3000"),
                ("content-type", "application/json"),
                ("authorization", "Bearer abc"),
            ],
            br#"{"firstName":"Ada"}"#,
        );

        assert_eq!(request.method(), "PATCH");
        assert_eq!(
            request.uri().path(),
            "/users/0b0a8f8e-5c5e-4c59-9f0e-3f1f1c2d3e4f"
        );
        assert_eq!(request.uri().query(), Some("x=1&y=a%20b"));
        assert_eq!(request.headers()["authorization"], "Bearer abc");
        assert_eq!(request.headers()["content-type"], "application/json");
        assert_eq!(
            request.body(),
            &lambda_http::Body::Text(r#"{"firstName":"Ada"}"#.into())
        );
        assert_eq!(request.query_string_parameters().first("y"), Some("a b"));
        assert_eq!(
            request.path_parameters().first("uuid"),
            Some("0b0a8f8e-5c5e-4c59-9f0e-3f1f1c2d3e4f")
        );
    }

    #[test]
    fn no_body_is_an_empty_body_and_binary_stays_binary() {
        let empty = lambda_request("GET", "/users", &[], b"");
        let binary = lambda_request("POST", "/users", &[], &[0xff, 0x00, 0xfe]);

        assert_eq!(empty.body(), &lambda_http::Body::Empty);
        assert_eq!(
            binary.body(),
            &lambda_http::Body::Binary(vec![0xff, 0x00, 0xfe])
        );
    }

    #[test]
    fn cookies_and_repeated_headers_arrive_as_api_gateway_joins_them() {
        let request = lambda_request(
            "GET",
            "/users",
            &[
                ("cookie", "a=1; b=2"),
                ("accept", "text/plain"),
                ("accept", "application/json"),
            ],
            b"",
        );

        assert_eq!(request.headers()["cookie"], "a=1; b=2");
        assert_eq!(request.headers()["accept"], "text/plain,application/json");
    }
}
