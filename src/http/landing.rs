//! The landing page: version, orgs with their last collection, and a link to /metrics.

use std::fmt::Write;
use std::time::SystemTime;

use super::AppState;
use crate::metrics::{REVISION, VERSION};

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn ago(t: Option<SystemTime>) -> String {
    match t.and_then(|t| t.elapsed().ok()) {
        Some(d) => format!("{}s ago", d.as_secs()),
        None => "never".to_string(),
    }
}

/// Renders the page.
pub fn page(state: &AppState) -> String {
    let mut rows = String::new();
    for org in state.exporter.orgs() {
        let st = org.state();
        let result = match (st.health.up, &st.health.last_error) {
            (None, _) => "not collected yet".to_string(),
            (Some(true), _) => "ok".to_string(),
            (Some(false), Some(e)) => format!("failed: {e}"),
            (Some(false), None) => "failed".to_string(),
        };
        let sync = match st.listing_progress() {
            Some((kind, pages, windows)) => {
                format!("{kind:?} listing: {pages} pages, {windows} windows left")
            }
            None if st.initial_complete => "in sync".to_string(),
            None => "waiting".to_string(),
        };
        let _ = write!(
            rows,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            escape(&org.id),
            escape(&result),
            ago(st.health.last_attempt),
            ago(st.health.last_success),
            st.store.len(),
            escape(&sync),
        );
    }
    let demo = if state.demo {
        "<p><strong>Demo mode:</strong> collecting from the built-in simulated Devin API.</p>"
    } else {
        ""
    };
    format!(
        r#"<!doctype html>
<html><head><meta charset="utf-8"><title>Devin Exporter</title>
<style>body{{font-family:sans-serif;margin:2em}}table{{border-collapse:collapse}}td,th{{border:1px solid #ccc;padding:4px 8px;text-align:left}}</style>
</head><body>
<h1>Devin Exporter</h1>
<p>Version {VERSION} (revision {REVISION}) &middot; API {api}</p>
{demo}
<p><a href="/metrics">Metrics</a> &middot; <a href="/healthz">Health</a> &middot; <a href="/readyz">Readiness</a></p>
<table><tr><th>Org</th><th>Last collection</th><th>Attempted</th><th>Last success</th><th>Sessions</th><th>Sync</th></tr>
{rows}</table>
</body></html>
"#,
        api = escape(&state.api_url),
    )
}
