//! The HTTP server: `/metrics`, `/probe`, `/sd`, the landing page, health and readiness.

pub(crate) mod auth;
pub mod compress;
mod landing;
pub mod tls;
pub mod web_config;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use axum_server::accept::NoDelayAcceptor;
use prometheus::process_collector::ProcessCollector;
use tokio::time::Instant;
use tower_http::compression::CompressionLayer;

use serde::Deserialize;

use crate::DataSource;
use crate::exporter::Exporter;
use crate::metrics::{CONTENT_TYPE, Renderer, Scope};

/// Header in which Prometheus sends its scrape timeout.
pub const SCRAPE_TIMEOUT_HEADER: &str = "x-prometheus-scrape-timeout-seconds";

/// What the handlers share.
pub struct AppState {
    /// The exporter.
    pub exporter: Arc<Exporter>,
    /// Collection budget when a scrape sends no timeout header.
    pub default_timeout: Duration,
    /// Shown on the landing page.
    pub api_url: String,
    /// Simulated in demo mode (the landing page says so).
    pub source: DataSource,
    /// The configuration, for the settings the landing page shows.
    pub config: crate::config::Config,
    process: ProcessCollector,
    renderer: Renderer,
}

impl AppState {
    /// Shared state for the handlers of a server run with `config`.
    pub fn for_config(
        exporter: Arc<Exporter>,
        config: &crate::config::Config,
        source: DataSource,
    ) -> Arc<Self> {
        Arc::new(AppState {
            exporter,
            default_timeout: config.scrape_timeout,
            api_url: crate::api::redact::redact_url(&config.api.api_url),
            source,
            config: config.clone(),
            process: ProcessCollector::for_self(),
            renderer: Renderer::new(source),
        })
    }
}

/// The collection budget of a scrape: Prometheus' timeout less a margin for rendering and
/// the network, else the configured default.
pub fn scrape_budget(headers: &HeaderMap, default: Duration) -> Duration {
    // However long a client is willing to wait, one collection gets at most this long.
    let longest = Duration::from_secs(600);
    // Clamped while still a float: `Duration::from_secs_f64` panics on values such as 1e20.
    let from_header = headers
        .get(SCRAPE_TIMEOUT_HEADER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<f64>().ok())
        .filter(|s| s.is_finite() && *s > 0.0)
        .map(|s| Duration::from_secs_f64(s.min(longest.as_secs_f64())));
    match from_header {
        Some(timeout) => {
            let margin = (timeout / 10).clamp(Duration::from_millis(250), Duration::from_secs(2));
            timeout
                .saturating_sub(margin)
                .max(Duration::from_millis(100))
        }
        None => default,
    }
}

/// The metrics body with its content type, gzipped when the client accepts it.
fn exposition(result: prometheus::Result<String>, request: &HeaderMap) -> Response {
    match result {
        Ok(body) if compress::accepts_gzip(request) => (
            [
                (header::CONTENT_TYPE, CONTENT_TYPE),
                (header::CONTENT_ENCODING, "gzip"),
                (header::VARY, "accept-encoding"),
            ],
            compress::gzip(body.as_bytes()),
        )
            .into_response(),
        Ok(body) => (
            [
                (header::CONTENT_TYPE, CONTENT_TYPE),
                (header::VARY, "accept-encoding"),
            ],
            body,
        )
            .into_response(),
        Err(e) => {
            tracing::error!(error = %e, "rendering metrics failed");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("rendering metrics failed: {e}\n"),
            )
                .into_response()
        }
    }
}

async fn metrics(State(state): State<Arc<AppState>>, headers: HeaderMap) -> Response {
    let deadline = Instant::now() + scrape_budget(&headers, state.default_timeout);
    state.exporter.collect(deadline).await;
    let snapshot = state.exporter.snapshot().await;
    let scope = Scope {
        orgs: &snapshot.orgs,
        process: Some(&state.process),
        discovery: snapshot.discovery,
        billing: snapshot.billing,
        session_source: snapshot
            .source
            .as_ref()
            .map(|(s, _)| (*s, snapshot.stream_dropped, &*snapshot.enterprise_stats)),
    };
    exposition(state.renderer.render(&scope), &headers)
}

/// Query of `/probe`.
#[derive(Debug, Deserialize)]
struct ProbeQuery {
    org_id: Option<String>,
}

/// Collects and shows exactly one org: Prometheus' multi-target pattern.
async fn probe(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    Query(q): Query<ProbeQuery>,
) -> Response {
    let Some(org_id) = q.org_id.filter(|o| !o.is_empty()) else {
        return (StatusCode::BAD_REQUEST, "missing org_id parameter\n").into_response();
    };
    let deadline = Instant::now() + scrape_budget(&headers, state.default_timeout);
    match state.exporter.probe(&org_id, deadline).await {
        Some(org) => exposition(
            state.renderer.render_probe(&Scope {
                orgs: &[org],
                ..Scope::default()
            }),
            &headers,
        ),
        None => (
            StatusCode::NOT_FOUND,
            format!("unknown org_id {org_id:?}: not configured in DEVIN_ORG_IDS nor discovered\n"),
        )
            .into_response(),
    }
}

/// Prometheus HTTP service discovery: one target group per org, for `/probe` with
/// `hashmod` sharding across replicas.
async fn service_discovery(State(state): State<Arc<AppState>>) -> Json<serde_json::Value> {
    let deadline = Instant::now() + state.default_timeout;
    let groups: Vec<serde_json::Value> = state
        .exporter
        .targets(deadline)
        .await
        .into_iter()
        .map(|(id, info)| {
            let mut labels = serde_json::Map::new();
            labels.insert("__meta_devin_org_id".into(), id.clone().into());
            if let Some(name) = info.and_then(|i| i.name) {
                labels.insert("__meta_devin_org_name".into(), name.into());
            }
            serde_json::json!({"targets": [id], "labels": labels})
        })
        .collect();
    Json(serde_json::Value::Array(groups))
}

async fn landing(State(state): State<Arc<AppState>>) -> Html<String> {
    Html(landing::page(&state, &state.exporter.snapshot().await))
}

async fn healthz() -> &'static str {
    "ok\n"
}

async fn readyz() -> &'static str {
    "ready\n"
}

/// The server's connection timeouts; 10 s each by default.
#[derive(Debug, Clone, Copy)]
pub struct ServerTimeouts {
    /// Longest a client may take to send a request's headers.
    pub header_read: Duration,
    /// Longest a new connection may stay silent before its first request.
    pub first_request: Duration,
    /// Longest a TLS handshake may take.
    pub tls_handshake: Duration,
    /// Time given to requests in flight at shutdown.
    pub shutdown_grace: Duration,
}

impl Default for ServerTimeouts {
    fn default() -> Self {
        let ten = Duration::from_secs(10);
        ServerTimeouts {
            header_read: ten,
            first_request: ten,
            tls_handshake: ten,
            shutdown_grace: ten,
        }
    }
}

/// The router with every endpoint, behind basic auth when users are configured.
pub fn router(state: Arc<AppState>, auth: Option<Arc<auth::BasicAuth>>) -> Router {
    let router = Router::new()
        .route("/", get(landing))
        .route("/metrics", get(metrics))
        .route("/probe", get(probe))
        .route("/sd", get(service_discovery))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .layer(CompressionLayer::new())
        .with_state(state);
    match auth {
        Some(auth) => router.layer(axum::middleware::from_fn_with_state(auth, auth::require)),
        None => router,
    }
}

/// Serves `router` on `listener` (HTTPS when `tls` is set) until SIGTERM or SIGINT, then
/// gives requests in flight a grace period.
pub async fn serve(
    listener: std::net::TcpListener,
    router: Router,
    tls: Option<&tls::TlsServerConfig>,
) -> std::io::Result<()> {
    serve_with(listener, router, tls, true).await
}

/// [`serve`], with HTTP/2 offered only when `http2` (`http_server_config.http2`).
pub async fn serve_with(
    listener: std::net::TcpListener,
    router: Router,
    tls: Option<&tls::TlsServerConfig>,
    http2: bool,
) -> std::io::Result<()> {
    serve_with_timeouts(listener, router, tls, http2, ServerTimeouts::default()).await
}

/// [`serve_with`], with the given connection timeouts.
pub async fn serve_with_timeouts(
    listener: std::net::TcpListener,
    router: Router,
    tls: Option<&tls::TlsServerConfig>,
    http2: bool,
    timeouts: ServerTimeouts,
) -> std::io::Result<()> {
    // Built before anything is bound to the signal, so that a bad file fails start-up.
    let rustls = match tls {
        Some(tls) => Some(tls::server_config(tls, http2).map_err(std::io::Error::other)?),
        None => None,
    };
    listener.set_nonblocking(true)?;
    let addr: SocketAddr = listener.local_addr()?;
    let handle = axum_server::Handle::new();
    let on_signal = handle.clone();
    tokio::spawn(async move {
        crate::shutdown_signal().await;
        on_signal.graceful_shutdown(Some(timeouts.shutdown_grace));
    });
    let service = router.into_make_service();
    // Without TCP_NODELAY a response's last partial segment can wait for the client's
    // delayed ACK (40 ms on Linux) on a kept-alive connection.
    let mut server = axum_server::from_tcp(listener)?
        .acceptor(NoDelayAcceptor::new())
        .handle(handle)
        .first_request_timeout(timeouts.first_request);
    if !http2 {
        server = server.http1_only();
    }
    server
        .http_builder()
        .http1()
        .header_read_timeout(timeouts.header_read);
    tracing::info!(%addr, tls = tls.is_some(), http2, "listening");
    match rustls {
        Some(config) => {
            let config = axum_server::tls_rustls::RustlsConfig::from_config(config);
            let acceptor = axum_server::tls_rustls::RustlsAcceptor::new(config)
                .handshake_timeout(timeouts.tls_handshake)
                .acceptor(NoDelayAcceptor::new());
            server.acceptor(acceptor).serve(service).await
        }
        None => server.serve(service).await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn budget_from_header_leaves_a_margin() {
        let mut h = HeaderMap::new();
        let default = Duration::from_secs(25);
        assert_eq!(scrape_budget(&h, default), default);
        h.insert(SCRAPE_TIMEOUT_HEADER, "10".parse().unwrap());
        assert_eq!(scrape_budget(&h, default), Duration::from_secs(9));
        h.insert(SCRAPE_TIMEOUT_HEADER, "1.5".parse().unwrap());
        assert_eq!(scrape_budget(&h, default), Duration::from_millis(1250));
        h.insert(SCRAPE_TIMEOUT_HEADER, "120".parse().unwrap());
        assert_eq!(scrape_budget(&h, default), Duration::from_secs(118));
        h.insert(SCRAPE_TIMEOUT_HEADER, "86400".parse().unwrap());
        assert_eq!(scrape_budget(&h, default), Duration::from_secs(598));
        h.insert(SCRAPE_TIMEOUT_HEADER, "nonsense".parse().unwrap());
        assert_eq!(scrape_budget(&h, default), default);
    }
}
