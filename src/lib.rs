#![warn(missing_docs)]
//! devin-exporter: a Prometheus exporter for the sessions of Devin organizations.
//!
//! Layers, each importing only those before it: [`config`] reads the environment; [`api`]
//! talks to the Devin API; [`sync`] keeps each org's sessions current, `discovery` finds
//! an enterprise's orgs and [`billing`] reads billed ACUs, cycle limits and the queue; [`metrics`] renders them; [`exporter`] ties orgs to scrapes; [`http`]
//! serves them; [`app`] wires it all together. The simulated Devin API stands beside them
//! (feature `simulator`). The README's "Code layout" section draws the graph.

pub mod api;
pub mod app;
pub mod billing;
pub mod check;
pub mod config;
pub(crate) mod discovery;
pub mod exporter;
pub mod http;
pub(crate) mod lock;
pub mod logging;
pub mod metrics;
#[cfg(feature = "simulator")]
pub mod simulator;
pub mod sync;
pub mod watch;

/// Version of this build.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
/// Source revision of this build (`unknown` when built outside a git checkout).
pub const REVISION: &str = env!("DEVIN_EXPORTER_REVISION");

/// Where the sessions the exporter serves come from.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum DataSource {
    /// The Devin API.
    #[default]
    Api,
    /// The built-in simulated API (demo mode): the landing page and `/metrics` say so.
    Simulated,
}

/// Resolves on SIGTERM or SIGINT.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
    tracing::info!("shutting down");
}
