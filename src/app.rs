//! Wiring: from a validated configuration to a running server.

use std::sync::Arc;

use axum::Router;

use crate::DataSource;
use crate::api::ApiClient;
use crate::api::budget::RequestBudget;
use crate::api::redact::redact_url;
use crate::api::token::TokenProvider;
use crate::config::{Config, TokenSource};
use crate::discovery::Discovery;
use crate::exporter::Exporter;
use crate::http::auth::BasicAuth;
use crate::http::web_config::WebConfig;
use crate::http::{self, AppState};
use crate::sync::SyncSettings;
use crate::sync::spend::SpendSettings;

/// Windows of one org's listing fetched at once.
const WINDOW_CONCURRENCY: usize = 8;

/// Builds the exporter and its router. `token` overrides the configured token source (demo
/// mode supplies the simulator's). Errors are one line naming the variable at fault.
pub fn build(
    config: &Config,
    token: Option<TokenSource>,
    data: DataSource,
    web: &WebConfig,
) -> Result<(Arc<Exporter>, Router), String> {
    let source = token
        .or_else(|| config.token.clone())
        .ok_or_else(|| "DEVIN_API_TOKEN is not set".to_string())?;
    let token = Arc::new(TokenProvider::new(&source)?);
    let budget = Arc::new(RequestBudget::new(
        config.max_requests_per_second,
        config.max_concurrent_requests,
    ));
    let client = ApiClient::new(
        &config.api_url,
        token,
        budget,
        config.max_response_bytes,
        config.request_timeout,
    )?
    .with_max_retry_after(config.max_retry_after);
    let settings = SyncSettings {
        page_size: config.page_size,
        overlap: config.sync_overlap,
        deep_recheck_interval: config.deep_recheck_interval,
        max_sessions: config.max_sessions_per_org,
        full_resync_interval: config.full_resync_interval,
        lookback: config.lookback,
        window_concurrency: WINDOW_CONCURRENCY,
        // Each collection has at least one request in flight while it runs: more would only
        // wait for the request budget.
        collection_limit: config.max_concurrent_requests,
        collection_floor: config.scrape_timeout,
        spend: SpendSettings {
            attribution: config.attribution,
            max_values: config.attribution_max_values,
            top_active: config.top_active_sessions,
        },
    };
    let discovery = config
        .discover_orgs
        .then(|| Discovery::new(config.discovery_interval, config.page_size));
    let exporter = Arc::new(Exporter::new(
        &config.org_ids,
        &config.exclude_org_ids,
        client,
        settings,
        discovery,
    ));
    let state = AppState::for_config(Arc::clone(&exporter), config, data);
    let auth =
        (!web.basic_auth_users.is_empty()).then(|| BasicAuth::new(web.basic_auth_users.clone()));
    let mut router = http::router(state, auth);
    if let Some(limit) = &web.rate_limit {
        router = limit.apply(router);
    }
    let router = web.http_server_config.apply(router);
    Ok((exporter, router))
}

/// Runs the server until SIGTERM/SIGINT.
pub async fn run(
    config: &Config,
    token: Option<TokenSource>,
    data: DataSource,
) -> Result<(), String> {
    let web = match &config.web_config_file {
        Some(path) => WebConfig::load(path)?,
        None => WebConfig::default(),
    };
    let (_, router) = build(config, token, data, &web)?;
    let listener = std::net::TcpListener::bind(config.listen_address).map_err(|e| {
        format!(
            "DEVIN_LISTEN_ADDRESS={}: cannot bind ({e})",
            config.listen_address
        )
    })?;
    tracing::info!(
        orgs = config.org_ids.len(),
        discover_orgs = config.discover_orgs,
        api = %redact_url(&config.api_url),
        page_size = config.page_size,
        max_requests_per_second = config.max_requests_per_second,
        "devin-exporter {} starting",
        crate::VERSION
    );
    http::serve_with(
        listener,
        router,
        web.tls_server_config.as_ref(),
        web.http_server_config.http2,
    )
    .await
    .map_err(|e| format!("server error: {e}"))
}
