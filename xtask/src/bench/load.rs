//! Warm load through the dev server (`cargo xtask dev`'s API Gateway, the functions called
//! in-process) with a load generator on loopback: each route at concurrency 1 and 8, every
//! worker with an account of its own (a refresh rotates its session's tokens).

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use shared::App;
use tokio::net::TcpListener;

use super::{BENCH_PASSWORD, account, millis};
use crate::Result;
use crate::router::Router;
use crate::tls_proxy::TlsProxy;

pub(super) const CONCURRENCIES: [usize; 2] = [1, 8];
/// Logins hash with Argon2id: fewer of them.
const MAX_LOGINS: usize = 100;

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(super) enum Route {
    GetSelf,
    Refresh,
    ListUsers,
    Login,
}

pub(super) const ROUTES: [Route; 4] = [
    Route::GetSelf,
    Route::Refresh,
    Route::ListUsers,
    Route::Login,
];

impl Route {
    pub(super) fn label(self) -> &'static str {
        match self {
            Route::GetSelf => "get self",
            Route::Refresh => "refresh",
            Route::ListUsers => "list users",
            Route::Login => "login",
        }
    }

    pub(super) fn key(self) -> &'static str {
        match self {
            Route::GetSelf => "GET /users/{uuid}",
            Route::Refresh => "PUT /users/sessions/{uuid}/refresh",
            Route::ListUsers => "GET /users",
            Route::Login => "POST /users/sessions",
        }
    }
}

pub(super) struct LoadRun {
    pub(super) route: Route,
    pub(super) concurrency: usize,
    /// Per request, in ms.
    pub(super) latencies: Vec<f64>,
    pub(super) wall: Duration,
    /// At concurrency 1: per request, its time less what DynamoDB took of it (ms).
    pub(super) handler: Vec<f64>,
    /// At concurrency 1: DynamoDB requests per request, on average.
    pub(super) dynamodb_requests: Option<f64>,
}

impl LoadRun {
    pub(super) fn per_second(&self) -> f64 {
        self.latencies.len() as f64 / self.wall.as_secs_f64()
    }
}

/// One worker's account: its user, and its session's newest tokens.
struct Worker {
    uuid: String,
    email: String,
    session: String,
    token: String,
    refresh_token: String,
}

pub(super) async fn run(
    root: &std::path::Path,
    app: &App,
    proxy: Option<&TlsProxy>,
    requests: usize,
) -> Result<Vec<LoadRun>> {
    let template = std::fs::read_to_string(root.join("template.yaml"))?;
    let router = Router::new(&shared::localstack::routes(&template)?)?;
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let base = format!("http://{}", listener.local_addr()?);
    let server = tokio::spawn(crate::serve::serve(listener, app.clone(), router));

    let workers = CONCURRENCIES.iter().copied().max().unwrap_or(1);
    let mut accounts = Vec::new();
    for _ in 0..workers {
        let (user, tokens) = account(app, "bench-load").await?;
        accounts.push(Worker {
            uuid: user.id.to_string(),
            email: user.email,
            session: tokens.session_uuid.to_string(),
            token: tokens.token,
            refresh_token: tokens.refresh_token,
        });
    }
    let admin_email = format!("bench-admin-{}@kuri.example", uuid::Uuid::new_v4().simple());
    shared::service::users::create_or_promote_admin(app, &admin_email, BENCH_PASSWORD)
        .await
        .map_err(|e| format!("cannot create the benchmark admin: {e}"))?;
    let admin_token = match shared::service::sessions::login(
        app,
        Some(admin_email),
        Some(BENCH_PASSWORD.to_owned()),
        None,
    )
    .await
    .map_err(|e| format!("the benchmark admin cannot log in: {e}"))?
    {
        shared::service::sessions::LoginOutcome::Complete { tokens, .. } => tokens.token,
        shared::service::sessions::LoginOutcome::TwoFactorRequired { .. } => {
            return Err("the benchmark admin has 2FA".into());
        }
    };
    let client = reqwest::Client::builder()
        .no_proxy()
        .pool_max_idle_per_host(workers * 2)
        .build()?;
    let shared = Arc::new(Shared {
        client,
        base,
        admin_token,
    });

    let mut runs = Vec::new();
    let outcome: Result<()> = async {
        for route in ROUTES {
            for concurrency in CONCURRENCIES {
                let count = if route == Route::Login {
                    requests.min(MAX_LOGINS)
                } else {
                    requests
                };
                println!(
                    "xtask: dev server: {} at concurrency {concurrency}: {count} requests",
                    route.label()
                );
                let (run, back) =
                    measure(&shared, route, concurrency, count, accounts, proxy).await?;
                accounts = back;
                runs.push(run);
            }
        }
        Ok(())
    }
    .await;
    server.abort();
    outcome.map(|()| runs)
}

struct Shared {
    client: reqwest::Client,
    base: String,
    admin_token: String,
}

async fn measure(
    shared: &Arc<Shared>,
    route: Route,
    concurrency: usize,
    count: usize,
    mut accounts: Vec<Worker>,
    proxy: Option<&TlsProxy>,
) -> Result<(LoadRun, Vec<Worker>)> {
    // One request first, unmeasured, so that connections are open.
    let first = accounts.first_mut().ok_or("no accounts")?;
    once(shared, route, first).await?;
    let mut latencies = Vec::with_capacity(count);
    let mut handler = Vec::new();
    let mut requests_to_dynamodb = 0;
    let started = Instant::now();
    if concurrency == 1 {
        let worker = &mut accounts[0];
        for _ in 0..count {
            let before = proxy.map(TlsProxy::forwarded).unwrap_or_default();
            let took = once(shared, route, worker).await?;
            let dynamodb = proxy.map(TlsProxy::forwarded).unwrap_or_default() - before;
            latencies.push(millis(took));
            if proxy.is_some() {
                handler.push(millis(took.saturating_sub(dynamodb.busy)));
                requests_to_dynamodb += dynamodb.requests;
            }
        }
    } else {
        let mut tasks = tokio::task::JoinSet::new();
        let used: Vec<Worker> = accounts.drain(..concurrency.min(accounts.len())).collect();
        let per_worker = count.div_ceil(used.len());
        for mut worker in used {
            let shared = shared.clone();
            tasks.spawn(async move {
                let mut took = Vec::with_capacity(per_worker);
                for _ in 0..per_worker {
                    took.push(millis(once(&shared, route, &mut worker).await?));
                }
                Ok::<_, crate::Error>((took, worker))
            });
        }
        while let Some(joined) = tasks.join_next().await {
            let (took, worker) = joined??;
            latencies.extend(took);
            accounts.push(worker);
        }
    }
    let wall = started.elapsed();
    let dynamodb_requests =
        (concurrency == 1 && proxy.is_some()).then(|| requests_to_dynamodb as f64 / count as f64);
    Ok((
        LoadRun {
            route,
            concurrency,
            latencies,
            wall,
            handler,
            dynamodb_requests,
        },
        accounts,
    ))
}

/// One request of `route` as `worker`; its time, request sent to answer read.
async fn once(shared: &Shared, route: Route, worker: &mut Worker) -> Result<Duration> {
    let client = &shared.client;
    let base = &shared.base;
    let request = match route {
        Route::GetSelf => client
            .get(format!("{base}/users/{}", worker.uuid))
            .bearer_auth(&worker.token),
        Route::Refresh => client
            .put(format!("{base}/users/sessions/{}/refresh", worker.session))
            .json(&json!({
                "refreshToken": worker.refresh_token,
                "buildNumber": 420,
                "platform": "ios",
            })),
        Route::ListUsers => client
            .get(format!("{base}/users?limit=20"))
            .bearer_auth(&shared.admin_token),
        Route::Login => client
            .post(format!("{base}/users/sessions"))
            .json(&json!({ "email": worker.email, "password": BENCH_PASSWORD })),
    };
    let started = Instant::now();
    let response = request.send().await?;
    let status = response.status();
    let body = response.bytes().await?;
    let took = started.elapsed();
    if !status.is_success() {
        return Err(format!(
            "dev server: {} answered {status}: {}",
            route.label(),
            String::from_utf8_lossy(&body)
        )
        .into());
    }
    if route == Route::Refresh {
        let body: Value = serde_json::from_slice(&body)?;
        let data = &body["data"];
        if let (Some(token), Some(refresh)) =
            (data["token"].as_str(), data["refreshToken"].as_str())
        {
            worker.token = token.to_owned();
            worker.refresh_token = refresh.to_owned();
        }
    }
    Ok(took)
}
