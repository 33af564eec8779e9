//! Prometheus metrics: per-org API request statistics and the text rendered for each scrape.

mod api_stats;
mod render;
mod spend;
mod text;

pub use api_stats::ApiStats;
pub use render::{CONTENT_TYPE, Renderer, Scope};

/// Version of this build.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
/// Source revision of this build (`unknown` when built outside a git checkout).
pub const REVISION: &str = env!("DEVIN_EXPORTER_REVISION");
