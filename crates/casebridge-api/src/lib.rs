//! casebridge's HTTP surface: `/api/v1` (authenticated by company API keys), health, metrics
//! and the OpenAPI document generated from the handlers.
//!
//! Handlers are thin: extract the company, parse the body into domain types, call one service
//! of `casebridge-app` (which runs the transaction), map the result to a response type.
//! Handlers never touch the store, a CRM module or the network.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{DefaultBodyLimit, MatchedPath, Request, State};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use metrics_exporter_prometheus::PrometheusHandle;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::trace::TraceLayer;
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;

pub mod dto;
pub mod error;
pub mod extract;
mod openapi;
mod routes;
mod scrape;

pub use casebridge_app::{App, AppParts};
pub use error::ApiError;

/// What every handler can reach: the service layer and the metrics registry. Nothing else:
/// handlers call services, never the store or a CRM module.
#[derive(Clone)]
pub struct AppState {
    pub app: App,
    pub metrics: PrometheusHandle,
}

impl AppState {
    pub fn new(parts: AppParts, metrics: PrometheusHandle) -> Self {
        Self {
            app: App::new(parts),
            metrics,
        }
    }
}

#[derive(Debug, Clone)]
pub struct HttpOptions {
    pub body_limit_bytes: usize,
}

impl Default for HttpOptions {
    fn default() -> Self {
        Self {
            body_limit_bytes: 1024 * 1024,
        }
    }
}

/// The process-wide Prometheus recorder (installed once; later calls share it).
pub fn metrics_handle() -> PrometheusHandle {
    static HANDLE: std::sync::OnceLock<PrometheusHandle> = std::sync::OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let recorder = metrics_exporter_prometheus::PrometheusBuilder::new()
                .set_buckets(&[
                    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 15.0,
                ])
                .expect("static buckets")
                // A count of units, not seconds (casebridge_store::group).
                .set_buckets_for_metric(
                    metrics_exporter_prometheus::Matcher::Full(
                        "casebridge_db_group_commit_units".into(),
                    ),
                    &[1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0],
                )
                .expect("static buckets")
                .build_recorder();
            let handle = recorder.handle();
            // Another recorder may already be installed (tests); ours still renders its own.
            let _ = metrics::set_global_recorder(recorder);
            handle
        })
        .clone()
}

/// The routes and the OpenAPI document built from the same handler annotations.
pub fn router_and_spec() -> (Router<AppState>, utoipa::openapi::OpenApi) {
    let (router, mut spec) = OpenApiRouter::with_openapi(openapi::ApiDoc::openapi())
        .nest("/api/v1", routes::api())
        .merge(routes::hooks())
        .split_for_parts();
    openapi::document_errors(&mut spec);
    (router, spec)
}

/// The longest path and query string served (8 KiB); a longer one answers 414 in the error
/// envelope. (Past 64 KiB the HTTP parser refuses the request line itself, with a bare 414.)
pub const MAX_URI_BYTES: usize = 8 * 1024;

/// The whole application as one axum router.
pub fn app(state: AppState, options: &HttpOptions) -> Router {
    let (api, spec) = router_and_spec();
    let spec = Arc::new(spec);
    let routes = api
        .route(
            "/api/v1/openapi.json",
            get(move || {
                let spec = spec.clone();
                async move { axum::Json(spec.as_ref().clone()) }
            }),
        )
        .merge(routes::ops())
        .with_state(state.clone())
        .merge(casebridge_ui::router(state.app, routes::event_examples));
    layered(routes, options)
}

/// Wraps routes in what every request passes through: the error envelope for unknown routes and
/// methods, the URI and body limits, metrics, tracing, and panic catching. Every error any of
/// these layers gives is an [`ApiError`], so it answers in the one error envelope.
pub fn layered(routes: Router, options: &HttpOptions) -> Router {
    routes
        .fallback(|| async { ApiError::NotFound("no such route".into()) })
        .method_not_allowed_fallback(|| async { ApiError::MethodNotAllowed })
        .layer(middleware::from_fn(record_http_metrics))
        .layer(DefaultBodyLimit::max(options.body_limit_bytes))
        .layer(TraceLayer::new_for_http().make_span_with(|req: &Request| {
            let route = req
                .extensions()
                .get::<MatchedPath>()
                .map(|p| p.as_str().to_owned())
                .unwrap_or_default();
            tracing::info_span!("http", method = %req.method(), route = %route,
                    company.id = tracing::field::Empty)
        }))
        .layer(middleware::from_fn(limit_uri))
        .layer(CatchPanicLayer::custom(|_| {
            ApiError::Internal("handler panicked".into()).into_response()
        }))
}

async fn limit_uri(req: Request, next: Next) -> Response {
    let len = req.uri().path_and_query().map_or(0, |p| p.as_str().len());
    if len > MAX_URI_BYTES {
        return ApiError::UriTooLong(format!(
            "the URL is {len} bytes long; the limit is {MAX_URI_BYTES}"
        ))
        .into_response();
    }
    next.run(req).await
}

async fn record_http_metrics(req: Request, next: Next) -> Response {
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_else(|| "unmatched".to_owned());
    let method = req.method().to_string();
    let started = std::time::Instant::now();
    let resp = next.run(req).await;
    let labels = [
        ("method", method),
        ("route", route),
        ("status", resp.status().as_u16().to_string()),
    ];
    metrics::counter!("casebridge_http_requests_total", &labels).increment(1);
    metrics::histogram!("casebridge_http_request_duration_seconds", &labels)
        .record(started.elapsed().as_secs_f64());
    resp
}

/// Serves until `shutdown` is cancelled, then stops accepting and lets in-flight requests finish
/// (up to `grace`).
pub async fn serve(
    listener: TcpListener,
    state: AppState,
    options: HttpOptions,
    shutdown: CancellationToken,
    grace: Duration,
) -> std::io::Result<()> {
    let app = app(state, &options);
    let stopping = shutdown.clone();
    let server = axum::serve(listener, app).with_graceful_shutdown(async move {
        stopping.cancelled().await;
    });
    tokio::select! {
        r = server => r,
        _ = async { shutdown.cancelled().await; tokio::time::sleep(grace).await } => {
            tracing::warn!("in-flight requests did not finish within the grace period");
            Ok(())
        }
    }
}

async fn ready(State(state): State<AppState>) -> Result<axum::Json<dto::HealthOut>, ApiError> {
    state.app.ready().await?;
    Ok(axum::Json(dto::HealthOut { status: "ready" }))
}

#[cfg(test)]
mod tests {
    use axum::body::Body;
    use tower::ServiceExt;

    use super::*;

    async fn envelope(router: Router, req: axum::http::Request<Body>) -> (u16, serde_json::Value) {
        let resp = router.oneshot(req).await.expect("infallible");
        let status = resp.status().as_u16();
        let bytes = axum::body::to_bytes(resp.into_body(), usize::MAX)
            .await
            .expect("body");
        (status, serde_json::from_slice(&bytes).expect("a JSON body"))
    }

    /// A handler that panics answers 500 in the error envelope, and the process carries on.
    #[tokio::test]
    async fn a_panic_answers_500_in_the_envelope() {
        async fn boom() -> &'static str {
            panic!("boom")
        }
        let router = layered(
            Router::new().route("/boom", get(boom)),
            &HttpOptions::default(),
        );
        let req = axum::http::Request::get("/boom")
            .body(Body::empty())
            .unwrap();
        let (status, body) = envelope(router.clone(), req).await;
        assert_eq!(status, 500);
        assert_eq!(body["error"]["code"], "internal_error");
        assert_eq!(body["error"]["message"], "something went wrong on our side");
        assert_eq!(body["error"]["details"], serde_json::json!([]));
        let req = axum::http::Request::get("/boom")
            .body(Body::empty())
            .unwrap();
        assert_eq!(envelope(router, req).await.0, 500, "still serving");
    }
}
