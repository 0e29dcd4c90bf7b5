//! A minimal Lambda Runtime API (version 2018-06-01) on 127.0.0.1, enough to run a function
//! binary built on `lambda_runtime` the way Lambda does: the function long-polls
//! `GET /runtime/invocation/next` for an event and posts its answer to
//! `/runtime/invocation/{id}/response` (or `/error`); a failed start posts to
//! `/runtime/init/error`. See <https://docs.aws.amazon.com/lambda/latest/dg/runtimes-api.html>.
//!
//! One server serves one function process. It records when the function polled, which is how
//! the benchmark sees the end of INIT.

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use http_body_util::{BodyExt, Full, Limited};
use hyper::body::{Bytes, Incoming};
use hyper::header::{CONTENT_TYPE, HeaderValue};
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::sync::{Mutex, mpsc, oneshot, watch};
use tokio::task::{JoinHandle, JoinSet};

/// Lambda's limit on a synchronous response.
const MAX_RESPONSE_BYTES: usize = 6 * 1024 * 1024;
/// The function timeout in `template.yaml`, for the deadline header.
const TIMEOUT_MS: u128 = 10_000;
const PREFIX: &str = "/2018-06-01/runtime/";

/// A call the runtime makes, parsed from its method and path.
#[derive(Debug, PartialEq, Eq)]
pub enum Call {
    Next,
    Response(String),
    Error(String),
    InitError,
}

impl Call {
    pub fn parse(method: &Method, path: &str) -> Option<Call> {
        let rest = path.strip_prefix(PREFIX)?;
        match (method, rest) {
            (&Method::GET, "invocation/next") => Some(Call::Next),
            (&Method::POST, "init/error") => Some(Call::InitError),
            (&Method::POST, _) => {
                let rest = rest.strip_prefix("invocation/")?;
                let (id, action) = rest.split_once('/')?;
                if id.is_empty() || id == "next" {
                    return None;
                }
                match action {
                    "response" => Some(Call::Response(id.to_owned())),
                    "error" => Some(Call::Error(id.to_owned())),
                    _ => None,
                }
            }
            _ => None,
        }
    }
}

/// How the function answered one invocation, and when its answer had fully arrived.
#[derive(Debug)]
pub struct Outcome {
    pub failed: bool,
    pub body: Bytes,
    pub at: Instant,
}

/// An invocation handed to the queue; resolves with the function's answer.
pub struct Pending {
    pub submitted: Instant,
    reply: oneshot::Receiver<Outcome>,
}

impl Pending {
    /// The answer, or `None` if the server stopped first.
    pub async fn outcome(self) -> Option<Outcome> {
        self.reply.await.ok()
    }
}

struct Queued {
    request_id: String,
    event: Bytes,
    reply: oneshot::Sender<Outcome>,
}

#[derive(Clone, Copy, Default)]
struct Polls {
    count: u64,
    first: Option<Instant>,
}

struct Shared {
    function_arn: String,
    queue: Mutex<mpsc::UnboundedReceiver<Queued>>,
    in_flight: std::sync::Mutex<HashMap<String, oneshot::Sender<Outcome>>>,
    polls: watch::Sender<Polls>,
    init_error: watch::Sender<Option<String>>,
    /// Run once, when the function first asks for an event (the end of its INIT).
    on_first_poll: std::sync::Mutex<Option<FirstPollHook>>,
}

type FirstPollHook = Box<dyn FnOnce() + Send>;

pub struct RuntimeApi {
    address: SocketAddr,
    shared: Arc<Shared>,
    queue: mpsc::UnboundedSender<Queued>,
    server: JoinHandle<()>,
}

impl RuntimeApi {
    /// Listens on a free loopback port.
    pub async fn start(function_name: &str) -> std::io::Result<Self> {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await?;
        let address = listener.local_addr()?;
        let (queue, receiver) = mpsc::unbounded_channel();
        let shared = Arc::new(Shared {
            function_arn: format!("arn:aws:lambda:us-east-1:000000000000:function:{function_name}"),
            queue: Mutex::new(receiver),
            in_flight: Default::default(),
            polls: watch::Sender::new(Polls::default()),
            init_error: watch::Sender::new(None),
            on_first_poll: std::sync::Mutex::new(None),
        });
        let server = tokio::spawn(serve(listener, shared.clone()));
        Ok(Self {
            address,
            shared,
            queue,
            server,
        })
    }

    /// The value of `AWS_LAMBDA_RUNTIME_API`.
    pub fn address(&self) -> SocketAddr {
        self.address
    }

    /// Queues an event; the function gets it with its next poll.
    pub fn submit(&self, event: Bytes) -> Pending {
        let (reply, receiver) = oneshot::channel();
        let submitted = Instant::now();
        // The receiver lives in `shared`, as long as `self`.
        let _ = self.queue.send(Queued {
            request_id: uuid::Uuid::new_v4().to_string(),
            event,
            reply,
        });
        Pending {
            submitted,
            reply: receiver,
        }
    }

    /// Runs `hook` when the function first asks for an event, before it gets one: how the
    /// benchmark moves a process into its CPU share once INIT is over.
    pub fn on_first_poll(&self, hook: impl FnOnce() + Send + 'static) {
        *self
            .shared
            .on_first_poll
            .lock()
            .unwrap_or_else(|e| e.into_inner()) = Some(Box::new(hook));
    }

    /// When the function first asked for an event: the end of its INIT.
    pub fn first_poll(&self) -> Option<Instant> {
        self.shared.polls.borrow().first
    }

    /// Waits until the function has asked for an event `count` times in all.
    pub async fn polled(&self, count: u64) {
        let mut polls = self.shared.polls.subscribe();
        // The sender lives in `shared`, so this cannot fail while `self` exists.
        let _ = polls.wait_for(|p| p.count >= count).await;
    }

    /// Resolves with the body of the function's first `/init/error`.
    pub async fn init_error(&self) -> String {
        let mut errors = self.shared.init_error.subscribe();
        let error = match errors.wait_for(Option::is_some).await {
            Ok(error) => (*error).clone(),
            Err(_) => None,
        };
        match error {
            Some(error) => error,
            // The sender lives in `shared`, so this is never reached while `self` exists.
            None => std::future::pending().await,
        }
    }
}

impl Drop for RuntimeApi {
    fn drop(&mut self) {
        // Also drops every connection task (they live in the server task's JoinSet).
        self.server.abort();
    }
}

async fn serve(listener: TcpListener, shared: Arc<Shared>) {
    let mut connections = JoinSet::new();
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
            continue;
        };
        while connections.try_join_next().is_some() {}
        let _ = stream.set_nodelay(true);
        let shared = shared.clone();
        connections.spawn(async move {
            let service = service_fn(move |request| {
                let shared = shared.clone();
                async move { Ok::<_, Infallible>(handle(&shared, request).await) }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

async fn handle(shared: &Shared, request: Request<Incoming>) -> Response<Full<Bytes>> {
    let Some(call) = Call::parse(request.method(), request.uri().path()) else {
        return error(
            StatusCode::NOT_FOUND,
            "UnknownRoute",
            "no such Runtime API call",
        );
    };
    match call {
        Call::Next => next(shared).await,
        Call::Response(id) => answer(shared, &id, false, request.into_body()).await,
        Call::Error(id) => answer(shared, &id, true, request.into_body()).await,
        Call::InitError => {
            let body = match read(request.into_body()).await {
                Ok(body) => body,
                Err(response) => return response,
            };
            shared
                .init_error
                .send_replace(Some(String::from_utf8_lossy(&body).into_owned()));
            accepted()
        }
    }
}

/// Blocks until an event is queued, as Lambda does between invocations.
async fn next(shared: &Shared) -> Response<Full<Bytes>> {
    let polled = Instant::now();
    shared.polls.send_modify(|p| {
        p.count += 1;
        p.first.get_or_insert(polled);
    });
    let hook = shared
        .on_first_poll
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .take();
    if let Some(hook) = hook {
        hook();
    }
    let Some(queued) = shared.queue.lock().await.recv().await else {
        return error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "Shutdown",
            "no more events",
        );
    };
    shared
        .in_flight
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .insert(queued.request_id.clone(), queued.reply);
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    let trace_id = format!(
        "Root=1-{:08x}-{};Parent={};Sampled=0",
        now.as_secs(),
        &uuid::Uuid::new_v4().simple().to_string()[..24],
        &uuid::Uuid::new_v4().simple().to_string()[..16],
    );
    let mut response = Response::new(Full::new(queued.event));
    let headers = response.headers_mut();
    let pairs = [
        ("lambda-runtime-aws-request-id", queued.request_id),
        (
            "lambda-runtime-deadline-ms",
            (now.as_millis() + TIMEOUT_MS).to_string(),
        ),
        (
            "lambda-runtime-invoked-function-arn",
            shared.function_arn.clone(),
        ),
        ("lambda-runtime-trace-id", trace_id),
    ];
    for (name, value) in pairs {
        if let Ok(value) = HeaderValue::from_str(&value) {
            headers.insert(name, value);
        }
    }
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}

async fn answer(shared: &Shared, id: &str, failed: bool, body: Incoming) -> Response<Full<Bytes>> {
    let body = match read(body).await {
        Ok(body) => body,
        Err(response) => return response,
    };
    let at = Instant::now();
    let reply = shared
        .in_flight
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .remove(id);
    match reply {
        Some(reply) => {
            let _ = reply.send(Outcome { failed, body, at });
            accepted()
        }
        None => error(
            StatusCode::BAD_REQUEST,
            "InvalidRequestID",
            "no invocation in flight has this id",
        ),
    }
}

async fn read(body: Incoming) -> Result<Bytes, Response<Full<Bytes>>> {
    match Limited::new(body, MAX_RESPONSE_BYTES).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(cause) if cause.is::<http_body_util::LengthLimitError>() => Err(error(
            StatusCode::PAYLOAD_TOO_LARGE,
            "RequestEntityTooLarge",
            "the response is larger than 6 MB",
        )),
        Err(_) => Err(error(
            StatusCode::BAD_REQUEST,
            "InvalidRequest",
            "the body could not be read",
        )),
    }
}

fn accepted() -> Response<Full<Bytes>> {
    json(StatusCode::ACCEPTED, r#"{"status":"OK"}"#.to_owned())
}

fn error(status: StatusCode, kind: &str, message: &str) -> Response<Full<Bytes>> {
    json(
        status,
        serde_json::json!({ "errorType": kind, "errorMessage": message }).to_string(),
    )
}

fn json(status: StatusCode, body: String) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_four_runtime_calls_are_recognised() {
        assert_eq!(
            Call::parse(&Method::GET, "/2018-06-01/runtime/invocation/next"),
            Some(Call::Next)
        );
        assert_eq!(
            Call::parse(&Method::POST, "/2018-06-01/runtime/invocation/a-1/response"),
            Some(Call::Response("a-1".into()))
        );
        assert_eq!(
            Call::parse(&Method::POST, "/2018-06-01/runtime/invocation/a-1/error"),
            Some(Call::Error("a-1".into()))
        );
        assert_eq!(
            Call::parse(&Method::POST, "/2018-06-01/runtime/init/error"),
            Some(Call::InitError)
        );
    }

    #[test]
    fn wrong_methods_versions_and_paths_are_not_calls() {
        for (method, path) in [
            (Method::POST, "/2018-06-01/runtime/invocation/next"),
            (Method::GET, "/2018-06-01/runtime/invocation/a-1/response"),
            (Method::GET, "/2018-06-01/runtime/init/error"),
            (Method::GET, "/2020-01-01/runtime/invocation/next"),
            (Method::POST, "/2018-06-01/runtime/invocation//response"),
            (Method::POST, "/2018-06-01/runtime/invocation/a-1/other"),
            (Method::POST, "/2018-06-01/runtime/invocation/a-1"),
            (
                Method::POST,
                "/2018-06-01/runtime/invocation/a-1/response/x",
            ),
            (Method::GET, "/"),
        ] {
            assert_eq!(Call::parse(&method, path), None, "{method} {path}");
        }
    }

    #[tokio::test]
    async fn an_event_goes_out_on_next_and_its_answer_comes_back() {
        let api = RuntimeApi::start("test-function").await.unwrap();
        let pending = api.submit(Bytes::from_static(br#"{"hello":1}"#));
        let client = reqwest::Client::builder().no_proxy().build().unwrap();
        let base = format!("http://{}/2018-06-01/runtime", api.address());

        let next = client
            .get(format!("{base}/invocation/next"))
            .send()
            .await
            .unwrap();
        assert_eq!(next.status(), 200);
        let id = next.headers()["lambda-runtime-aws-request-id"]
            .to_str()
            .unwrap()
            .to_owned();
        for header in [
            "lambda-runtime-deadline-ms",
            "lambda-runtime-invoked-function-arn",
            "lambda-runtime-trace-id",
        ] {
            assert!(next.headers().contains_key(header), "{header}");
        }
        assert_eq!(next.text().await.unwrap(), r#"{"hello":1}"#);
        assert!(api.first_poll().is_some());

        let posted = client
            .post(format!("{base}/invocation/{id}/response"))
            .body("answer")
            .send()
            .await
            .unwrap();
        assert_eq!(posted.status(), 202);
        let outcome = pending.outcome().await.unwrap();
        assert!(!outcome.failed);
        assert_eq!(&outcome.body[..], b"answer");

        let again = client
            .post(format!("{base}/invocation/{id}/response"))
            .body("answer")
            .send()
            .await
            .unwrap();
        assert_eq!(again.status(), 400);
    }

    #[tokio::test]
    async fn an_init_error_is_reported() {
        let api = RuntimeApi::start("test-function").await.unwrap();
        let client = reqwest::Client::builder().no_proxy().build().unwrap();
        let posted = client
            .post(format!(
                "http://{}/2018-06-01/runtime/init/error",
                api.address()
            ))
            .body(r#"{"errorMessage":"boom"}"#)
            .send()
            .await
            .unwrap();
        assert_eq!(posted.status(), 202);
        assert_eq!(api.init_error().await, r#"{"errorMessage":"boom"}"#);
    }
}
