//! The router: every route, the fallback 404, and the edge middleware that gives each request a
//! `req_…` id, a tracing span, the error envelope body, the `request-id` header and metrics.

use std::time::Instant;

use axum::extract::{DefaultBodyLimit, MatchedPath, Request, State};
use axum::http::{header, HeaderValue};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::Router;
use managed_agents_core::ids::RequestId;
use managed_agents_core::time::Timestamp;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::timeout::TimeoutBody;
use tracing::Instrument;

use crate::error::{Envelope, Error};
use crate::routes;
use crate::state::AppState;

/// The whole HTTP API over `state`.
pub fn app(state: AppState) -> Router {
    let router = Router::new()
        .merge(routes::ops::router())
        .merge(crate::console::router())
        .merge(routes::v1())
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(crate::BODY_LIMIT));
    let router = match state.limits.settings().body_read_timeout {
        Some(timeout) => router.layer(middleware::from_fn(move |request: Request, next: Next| {
            body_timeout(timeout, request, next)
        })),
        None => router,
    };
    router
        .layer(CatchPanicLayer::custom(panicked))
        .layer(middleware::from_fn_with_state(state.clone(), edge))
        .with_state(state)
}

/// A request body that goes `timeout` without a byte fails to read, which the body reader
/// answers 408 `timeout_error` ([`crate::body`]): a client cannot hold a request open by
/// sending its body slowly.
async fn body_timeout(timeout: std::time::Duration, request: Request, next: Next) -> Response {
    let request = request.map(|body| axum::body::Body::new(TimeoutBody::new(timeout, body)));
    next.run(request).await
}

async fn not_found(request: Request) -> Error {
    Error::NotFound(format!(
        "no route for {} {}",
        request.method(),
        request.uri().path()
    ))
}

async fn method_not_allowed(request: Request) -> Error {
    Error::MethodNotAllowed(format!(
        "method {} is not allowed on {}",
        request.method(),
        request.uri().path()
    ))
}

fn panicked(payload: Box<dyn std::any::Any + Send + 'static>) -> Response {
    let detail = payload
        .downcast_ref::<String>()
        .map(String::as_str)
        .or_else(|| payload.downcast_ref::<&str>().copied())
        .unwrap_or("non-string panic payload");
    Error::Internal(format!("handler panicked: {detail}")).into_response()
}

async fn edge(State(state): State<AppState>, mut request: Request, next: Next) -> Response {
    // The request's id, also in its extensions for handlers.
    let request_id = RequestId::generate(Timestamp::now());
    request.extensions_mut().insert(request_id.clone());
    let method = request.method().clone();
    // The route *template* (a closed set), never the path: metrics and logs must not grow with
    // what clients send.
    let matched = request.extensions().get::<MatchedPath>().cloned();
    let route = matched
        .as_ref()
        .map_or(crate::metrics::UNMATCHED, MatchedPath::as_str);
    // Also the request's OpenTelemetry span (`crate::telemetry`): named by the route template,
    // with the HTTP semantic conventions' attributes.
    let span = tracing::info_span!(
        "request",
        otel.name = %format_args!("{} {route}", crate::metrics::method_label(&method)),
        otel.kind = "server",
        request_id = %request_id,
        method = crate::metrics::method_label(&method),
        path = %request.uri().path(),
        http.route = route,
        http.response.status_code = tracing::field::Empty,
        workspace = tracing::field::Empty,
        session_id = tracing::field::Empty,
    );
    let started = Instant::now();
    let mut response = next.run(request).instrument(span.clone()).await;
    if let Some(envelope) = response.extensions_mut().remove::<Envelope>() {
        let body = envelope.body(request_id.as_str()).to_string();
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        headers.remove(header::CONTENT_LENGTH);
        *response.body_mut() = axum::body::Body::from(body);
    }
    if let Ok(value) = HeaderValue::from_str(request_id.as_str()) {
        response.headers_mut().insert("request-id", value);
    }
    let elapsed = started.elapsed();
    let status = response.status().as_u16();
    if status == 408 {
        state.metrics.body_read_timed_out();
    }
    state.metrics.request(
        &method,
        matched.as_ref().map(MatchedPath::as_str),
        status,
        elapsed,
    );
    span.record("http.response.status_code", i64::from(status));
    span.in_scope(|| {
        tracing::info!(
            status,
            latency_ms = elapsed.as_secs_f64() * 1000.0,
            route = %route,
            "request finished"
        )
    });
    response
}
