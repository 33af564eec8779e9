//! Wiring: from a validated configuration to a running server.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;

use crate::DataSource;
use crate::api::ApiClient;
use crate::api::budget::RequestBudget;
use crate::api::redact::redact_url;
use crate::api::token::TokenProvider;
use crate::billing::Billing;
use crate::config::{BillingMode, Config, ConfigError, TokenSource};
use crate::discovery::Discovery;
use crate::exporter::Exporter;
use crate::http::auth::BasicAuth;
use crate::http::web_config::{WebConfig, WebConfigError};
use crate::http::{self, AppState};

/// Why the exporter (or `check`) could not start, or why its server stopped: one line that
/// names the variable at fault where there is one.
#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    /// A bad variable, a token file that cannot be read included.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// A bad web config file (`DEVIN_WEB_CONFIG_FILE`), its TLS files included.
    #[error(transparent)]
    WebConfig(#[from] WebConfigError),
    /// The HTTP client for the API could not be built.
    #[error(transparent)]
    Client(#[from] crate::api::client::ClientError),
    /// The listen address cannot be bound (in use, not local, not permitted).
    #[error("DEVIN_LISTEN_ADDRESS={addr}: cannot bind ({source})")]
    Bind {
        /// `DEVIN_LISTEN_ADDRESS`.
        addr: SocketAddr,
        /// What the system said.
        source: std::io::Error,
    },
    /// The server failed while running.
    #[error("server error: {0}")]
    Serve(#[source] std::io::Error),
    /// Demo mode's simulator could not start.
    #[error("demo simulator: {0}")]
    Simulator(#[source] std::io::Error),
    /// `check` could not write its report.
    #[error("cannot write the report: {0}")]
    Report(#[source] std::io::Error),
}

impl StartupError {
    /// Exit code 2 for a configuration error (bad variables, a bad web config file), 1 for
    /// a failure at run time (an address in use, a server error).
    pub fn exit_code(&self) -> u8 {
        match self {
            StartupError::Config(_) | StartupError::WebConfig(_) => 2,
            _ => 1,
        }
    }
}

/// The API client the configuration describes: its URL, request budget and limits.
pub(crate) fn api_client(
    config: &Config,
    token: Arc<TokenProvider>,
) -> Result<ApiClient, StartupError> {
    let api = &config.api;
    let budget = Arc::new(RequestBudget::new(
        api.max_requests_per_second,
        api.max_concurrent_requests,
    ));
    Ok(ApiClient::new(
        &api.api_url,
        token,
        budget,
        api.max_response_bytes,
        api.request_timeout,
    )?
    .with_max_retry_after(api.max_retry_after))
}

/// Builds the exporter and its router. `token` overrides the configured token source (demo
/// mode supplies the simulator's).
pub fn build(
    config: &Config,
    token: Option<TokenSource>,
    data: DataSource,
    web: &WebConfig,
) -> Result<(Arc<Exporter>, Router), StartupError> {
    let source = token
        .or_else(|| config.token.clone())
        .ok_or_else(|| ConfigError("DEVIN_API_TOKEN is not set".to_string()))?;
    let token = Arc::new(TokenProvider::new(&source).map_err(ConfigError)?);
    let client = api_client(config, token)?;
    let discovery = config
        .discovery
        .discover_orgs
        .then(|| Discovery::new(&config.discovery));
    let mut exporter = Exporter::new(
        &config.org_ids,
        &config.exclude_org_ids,
        client,
        config.sync.clone(),
        discovery,
    )
    .with_session_source(config.session_source);
    // Billing's requests count with discovery's and the stream's: they belong to no org.
    let enterprise_stats = exporter.enterprise_stats();
    if config.billing.billing != BillingMode::Off {
        exporter = exporter.with_billing(Billing::new(&config.billing, enterprise_stats));
    }
    let exporter = Arc::new(exporter);
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
) -> Result<(), StartupError> {
    let web = match &config.web_config_file {
        Some(path) => WebConfig::load(path).map_err(StartupError::WebConfig)?,
        None => WebConfig::default(),
    };
    let (_, router) = build(config, token, data, &web)?;
    let listener = std::net::TcpListener::bind(config.listen_address).map_err(|source| {
        StartupError::Bind {
            addr: config.listen_address,
            source,
        }
    })?;
    tracing::info!(
        orgs = config.org_ids.len(),
        discover_orgs = config.discovery.discover_orgs,
        api = %redact_url(&config.api.api_url),
        page_size = config.sync.page_size,
        max_requests_per_second = config.api.max_requests_per_second,
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
    .map_err(StartupError::Serve)
}
