//! JSON logs through `tracing`, filtered by `RUST_LOG` (default `info`).

pub fn init() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .json()
        .with_env_filter(filter)
        .with_current_span(true)
        .with_span_list(false)
        .without_time()
        .with_target(false)
        .try_init();
}

/// The span of one request: its id, the function and route that serve it (the route
/// template, never the path, which can hold a token), and the caller once authenticated.
pub fn request_span(function: &'static str, req: &lambda_http::Request) -> tracing::Span {
    use lambda_http::RequestExt;
    use lambda_http::request::RequestContext;
    let (request_id, route) = match req.request_context_ref() {
        Some(RequestContext::ApiGatewayV2(context)) => {
            (context.request_id.clone(), context.route_key.clone())
        }
        _ => (None, None),
    };
    let request_id = req
        .lambda_context_ref()
        .map(|context| context.request_id.clone())
        .filter(|id| !id.is_empty())
        .or(request_id);
    tracing::info_span!(
        "request",
        function,
        request_id = request_id.as_deref().unwrap_or(""),
        route = route.as_deref().unwrap_or(""),
        user = tracing::field::Empty,
    )
}

/// Adds the authenticated caller to the current request's span.
pub fn record_user(id: crate::domain::ids::UserId) {
    tracing::Span::current().record("user", tracing::field::display(id));
}

tokio::task_local! {
    /// The function serving the current request: lets test instrumentation attribute each AWS
    /// call to the function that made it.
    pub static FUNCTION: &'static str;
}
