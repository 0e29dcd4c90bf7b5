//! HTTP plumbing shared by every route group: strict JSON bodies, path segments, query strings
//! and the success/error envelopes of API.md.

use std::collections::BTreeMap;

use lambda_http::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use lambda_http::{Body, Request};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value, json};

use crate::ApiError;

pub mod views;

pub type Response = lambda_http::Response<Body>;

/// Bodies above this are refused with 413 before parsing.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

pub fn json_response(status: StatusCode, body: &Value) -> Response {
    let mut response = Response::new(Body::Text(body.to_string()));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

/// `{"data": …}` with the given status.
pub fn data(status: StatusCode, data: impl Serialize) -> Response {
    json_response(status, &json!({ "data": data }))
}

pub fn ok(body: impl Serialize) -> Response {
    data(StatusCode::OK, body)
}

pub fn created(body: impl Serialize) -> Response {
    data(StatusCode::CREATED, body)
}

/// The response with `version` as its `ETag` (optimistic concurrency of `PATCH`).
pub fn with_etag(mut response: Response, version: u64) -> Response {
    if let Ok(value) = HeaderValue::from_str(&format!("\"{version}\"")) {
        response.headers_mut().insert(header::ETAG, value);
    }
    response
}

pub fn no_content() -> Response {
    let mut response = Response::new(Body::Empty);
    *response.status_mut() = StatusCode::NO_CONTENT;
    response
}

/// A list body: `{"data": [...], "meta": {...}}`.
pub fn list(items: impl Serialize, meta: impl Serialize) -> Response {
    json_response(StatusCode::OK, &json!({ "data": items, "meta": meta }))
}

pub fn error_response(error: ApiError) -> Response {
    error.into_response()
}

/// Turns a handler's result into the response, logging server errors once.
pub fn respond(result: Result<Response, ApiError>) -> Response {
    result.unwrap_or_else(ApiError::into_response)
}

/// Serves one request of `function` through its router, inside the request's span, and
/// writes the one access line of the request (route, status, milliseconds).
pub async fn serve<F>(
    function: &'static str,
    req: Request,
    route: impl FnOnce(Request, Route) -> F,
) -> Response
where
    F: Future<Output = Result<Response, ApiError>>,
{
    let span = crate::telemetry::request_span(function, &req);
    let origin = origin(&req);
    let served = async move {
        let started = std::time::Instant::now();
        let path = Route::of(&req);
        let mut response = respond(route(req, path).await);
        // API.md: no answer may be cached, tokens and presigned URLs least of all. A route
        // with a policy of its own (the JWKS) keeps it.
        response
            .headers_mut()
            .entry(header::CACHE_CONTROL)
            .or_insert(HeaderValue::from_static("no-store"));
        tracing::info!(
            status = response.status().as_u16(),
            ms = started.elapsed().as_secs_f64() * 1000.0,
            "access"
        );
        response
    };
    let served = crate::domain::security_event::ORIGIN.scope(origin, served);
    crate::telemetry::FUNCTION
        .scope(function, tracing::Instrument::instrument(served, span))
        .await
}

/// Where the request came from, as API Gateway saw it, for the security events it causes.
fn origin(req: &Request) -> crate::domain::security_event::Origin {
    use lambda_http::RequestExt;
    use lambda_http::request::RequestContext;
    let ip = match req.request_context_ref() {
        Some(RequestContext::ApiGatewayV2(context)) => context.http.source_ip.clone(),
        _ => None,
    };
    crate::domain::security_event::Origin::new(ip.as_deref(), header(req.headers(), "user-agent"))
}

/// The request path split into percent-decoded segments, without empty ones.
pub fn segments(req: &Request) -> Vec<String> {
    req.uri()
        .path()
        .split('/')
        .filter(|segment| !segment.is_empty())
        .map(|segment| {
            percent_encoding::percent_decode_str(segment)
                .decode_utf8_lossy()
                .into_owned()
        })
        .collect()
}

/// A request's method and percent-decoded path segments, for matching with slice patterns in
/// each group's router.
pub struct Route {
    pub method: Method,
    segments: Vec<String>,
}

impl Route {
    pub fn of(req: &Request) -> Self {
        Self {
            method: req.method().clone(),
            segments: segments(req),
        }
    }

    pub fn segments(&self) -> Vec<&str> {
        self.segments.iter().map(String::as_str).collect()
    }
}

/// Query parameters, percent-decoded. A `+` stays a plus (phone numbers and emails carry it);
/// a repeated key keeps its last value.
pub fn query(req: &Request) -> BTreeMap<String, String> {
    let decode = |part: &str| {
        percent_encoding::percent_decode_str(part)
            .decode_utf8_lossy()
            .into_owned()
    };
    req.uri()
        .query()
        .unwrap_or_default()
        .split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| match pair.split_once('=') {
            Some((key, value)) => (decode(key), decode(value)),
            None => (decode(pair), String::new()),
        })
        .collect()
}

pub fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|value| value.to_str().ok())
}

fn body_bytes(req: &Request) -> &[u8] {
    match req.body() {
        Body::Empty => &[],
        Body::Text(text) => text.as_bytes(),
        Body::Binary(bytes) => bytes,
        _ => &[],
    }
}

fn is_json(content_type: &str) -> bool {
    let media_type = content_type.split(';').next().unwrap_or_default().trim();
    media_type.eq_ignore_ascii_case("application/json")
}

/// Reads the body as one JSON object and deserializes it into `T`, whose fields should all be
/// optional and which should `deny_unknown_fields`: the handler decides what is required so it
/// can answer with the seed's messages.
pub fn json_body<T: DeserializeOwned>(req: &Request) -> Result<T, ApiError> {
    from_object(json_object(req)?)
}

/// The body as one JSON object, for a route whose rules look at its keys before its values.
pub fn json_object(req: &Request) -> Result<Map<String, Value>, ApiError> {
    let bytes = body_bytes(req);
    if bytes.len() > MAX_BODY_BYTES {
        return Err(ApiError::PayloadTooLarge);
    }
    let content_type = header(req.headers(), header::CONTENT_TYPE.as_str());
    let value = match content_type {
        None if bytes.is_empty() => Value::Object(Default::default()),
        None => return Err(ApiError::UnsupportedMediaType),
        Some(content_type) if !is_json(content_type) => {
            return Err(ApiError::UnsupportedMediaType);
        }
        Some(_) => serde_json::from_slice::<Value>(bytes)
            .map_err(|_| ApiError::BadRequest("Request body must be valid JSON.".into()))?,
    };
    match value {
        Value::Object(object) => Ok(object),
        _ => Err(ApiError::BadRequest(
            "Request body must be a JSON object.".into(),
        )),
    }
}

/// Deserializes a body object into `T`; a field of the wrong type or out of range is a field
/// error under its own name, an unknown field one under its name.
pub fn from_object<T: DeserializeOwned>(object: Map<String, Value>) -> Result<T, ApiError> {
    serde_path_to_error::deserialize(Value::Object(object)).map_err(|error| {
        let inner = error.inner().to_string();
        if let Some(rest) = inner.strip_prefix("unknown field `") {
            let name = rest.split('`').next().unwrap_or_default();
            return ApiError::field(name, "Unknown field.");
        }
        let field = error.path().to_string();
        let message = inner
            .split_once(", expected")
            .map(|(_, expected)| format!("Must be{expected}."))
            .unwrap_or(inner);
        ApiError::field(&field, message)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(content_type: Option<&str>, body: &str) -> Request {
        let mut builder = lambda_http::http::Request::builder()
            .method("POST")
            .uri("/users");
        if let Some(content_type) = content_type {
            builder = builder.header("content-type", content_type);
        }
        let body = if body.is_empty() {
            Body::Empty
        } else {
            Body::Text(body.to_owned())
        };
        builder.body(body).unwrap()
    }

    #[derive(serde::Deserialize, Debug)]
    #[serde(deny_unknown_fields, rename_all = "camelCase")]
    struct Sample {
        first_name: Option<String>,
        #[allow(dead_code)]
        marketing_opt_in: Option<bool>,
    }

    fn status_of(result: Result<Sample, ApiError>) -> u16 {
        result.unwrap_err().status().as_u16()
    }

    #[test]
    fn no_body_and_no_content_type_reads_as_empty_object() {
        let sample: Sample = json_body(&request(None, "")).unwrap();
        assert!(sample.first_name.is_none());
    }

    #[test]
    fn charset_parameter_is_still_json() {
        let sample: Sample = json_body(&request(
            Some("application/json; charset=utf-8"),
            r#"{"firstName":"Ada"}"#,
        ))
        .unwrap();
        assert_eq!(sample.first_name.as_deref(), Some("Ada"));
    }

    #[test]
    fn non_objects_and_bad_json_are_400() {
        for body in ["", "[]", "null", "1", "\"x\"", "{", "not json"] {
            let result = json_body::<Sample>(&request(Some("application/json"), body));
            assert_eq!(status_of(result), 400, "body {body:?}");
        }
    }

    #[test]
    fn other_content_types_are_415() {
        assert_eq!(
            status_of(json_body(&request(Some("text/plain"), "{}"))),
            415
        );
        assert_eq!(status_of(json_body(&request(None, "{}"))), 415);
    }

    #[test]
    fn oversized_bodies_are_413() {
        let body = format!(r#"{{"firstName":"{}"}}"#, "a".repeat(MAX_BODY_BYTES));
        assert_eq!(
            status_of(json_body(&request(Some("application/json"), &body))),
            413
        );
    }

    #[test]
    fn unknown_fields_and_wrong_types_are_field_errors() {
        let unknown = json_body::<Sample>(&request(Some("application/json"), r#"{"roles":[]}"#));
        match unknown {
            Err(ApiError::Validation(fields)) => assert!(fields.contains_key("roles")),
            other => panic!("unexpected {other:?}"),
        }
        let wrong = json_body::<Sample>(&request(
            Some("application/json"),
            r#"{"marketingOptIn":"yes"}"#,
        ));
        match wrong {
            Err(ApiError::Validation(fields)) => assert!(fields.contains_key("marketingOptIn")),
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn query_keeps_plus_signs_and_decodes_brackets() {
        let req = lambda_http::http::Request::builder()
            .uri("/users?filter%5Bemail%5D=a+b@x.io&page=2")
            .body(Body::Empty)
            .unwrap();
        let query = query(&req);
        assert_eq!(query["filter[email]"], "a+b@x.io");
        assert_eq!(query["page"], "2");
    }
}
