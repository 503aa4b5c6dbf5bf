//! OpenTelemetry HTTP spans (semantic conventions for HTTP): a `server` span per request a
//! service's receiver answers, continuing the caller's `traceparent` when it sends one; a
//! `client` span per call a service makes (the ERP, Magento), its context in the request's
//! headers so the other side can continue the trace. URLs are recorded without query,
//! fragment or credentials: a search query can hold a customer's email.

use axum::extract::{MatchedPath, Request};
use axum::middleware::Next;
use axum::response::Response;
use opentelemetry::trace::Status;
use tracing::Instrument;
use tracing_opentelemetry::OpenTelemetrySpanExt;

use crate::trace;

/// Middleware (`Router::route_layer(axum::middleware::from_fn(http_trace::server))`): one
/// server span per request, named `METHOD route`.
pub async fn server(request: Request, next: Next) -> Response {
    let route = request.extensions().get::<MatchedPath>().map_or_else(
        || request.uri().path().to_owned(),
        |p| p.as_str().to_owned(),
    );
    let method = request.method().as_str().to_owned();
    let span = tracing::info_span!(
        "http request",
        otel.name = %format_args!("{method} {route}"),
        otel.kind = "server",
        http.request.method = %method,
        http.route = %route,
        url.scheme = "http",
        http.response.status_code = tracing::field::Empty,
        error.type = tracing::field::Empty,
    );
    let parent = trace::extract(|name| request.headers().get(name).map(|v| v.as_bytes()));
    if trace::trace_id(&parent).is_some() {
        let _ = span.set_parent(parent);
    }
    let response = next.run(request).instrument(span.clone()).await;
    let status = response.status();
    span.record("http.response.status_code", i64::from(status.as_u16()));
    if status.is_server_error() {
        span.record("error.type", status.as_str());
        span.set_status(Status::error(status.as_str().to_owned()));
    }
    response
}

/// Sends `request` inside a client span (`operation` names what the call is for, e.g.
/// `create_sales_order`, as `bridge.operation`); a 4xx or 5xx answer or a failed exchange
/// marks it failed with `error.type`.
pub async fn send(
    request: reqwest::RequestBuilder,
    operation: &str,
) -> reqwest::Result<reqwest::Response> {
    let (client, request) = request.build_split();
    let mut request = request?;
    let url = request.url();
    let mut shown = url.clone();
    shown.set_query(None);
    shown.set_fragment(None);
    let _ = shown.set_username("");
    let _ = shown.set_password(None);
    let method = request.method().as_str().to_owned();
    let span = tracing::info_span!(
        "http call",
        otel.name = %method,
        otel.kind = "client",
        http.request.method = %method,
        server.address = url.host_str().unwrap_or_default(),
        server.port = url.port_or_known_default().unwrap_or_default(),
        url.full = %shown,
        bridge.operation = operation,
        http.response.status_code = tracing::field::Empty,
        error.type = tracing::field::Empty,
    );
    let context = trace::outgoing(&span, &opentelemetry::Context::current());
    let headers = request.headers_mut();
    trace::inject(&context, |name, value| {
        if let Ok(value) = reqwest::header::HeaderValue::from_str(&value) {
            headers.insert(name, value);
        }
    });
    let result = client.execute(request).instrument(span.clone()).await;
    match &result {
        Ok(response) => {
            let status = response.status();
            span.record("http.response.status_code", i64::from(status.as_u16()));
            if status.is_client_error() || status.is_server_error() {
                span.record("error.type", status.as_str());
                span.set_status(Status::error(status.as_str().to_owned()));
            }
        }
        Err(e) => {
            let kind = if e.is_timeout() {
                "timeout"
            } else if e.is_connect() {
                "connect"
            } else {
                "request"
            };
            span.record("error.type", kind);
            span.set_status(Status::error(kind));
        }
    }
    result
}
