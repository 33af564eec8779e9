//! The `/metrics` body, built fresh for every scrape from the orgs' state: a label set that no
//! longer has sessions simply is not there.

use std::time::UNIX_EPOCH;

use prometheus::core::Collector;
use prometheus::{CounterVec, Encoder, GaugeVec, Opts, Registry, TextEncoder};

use super::{REVISION, VERSION};
use crate::sync::Org;

/// Content type of the text exposition format; Prometheus 3 refuses a scrape without it.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

const SESSION_LABELS: &[&str] = &["org_id", "status", "status_detail", "origin", "category"];

fn gauge(
    registry: &Registry,
    name: &str,
    help: &str,
    labels: &[&str],
) -> prometheus::Result<GaugeVec> {
    let g = GaugeVec::new(Opts::new(name, help), labels)?;
    registry.register(Box::new(g.clone()))?;
    Ok(g)
}

fn counter(
    registry: &Registry,
    name: &str,
    help: &str,
    labels: &[&str],
) -> prometheus::Result<CounterVec> {
    let c = CounterVec::new(Opts::new(name, help), labels)?;
    registry.register(Box::new(c.clone()))?;
    Ok(c)
}

fn seconds(t: std::time::SystemTime) -> f64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

/// Renders the metrics of `orgs` (plus build and process metrics) in the text format.
pub fn render(
    orgs: &[std::sync::Arc<Org>],
    process: Option<&dyn Collector>,
) -> prometheus::Result<String> {
    let r = Registry::new();
    let sessions = gauge(
        &r,
        "devin_sessions",
        "Sessions in this state now, archived ones included.",
        SESSION_LABELS,
    )?;
    let session_acus = gauge(
        &r,
        "devin_sessions_acus_consumed",
        "Sum of acus_consumed of the sessions in this state.",
        SESSION_LABELS,
    )?;
    let acus_total = counter(
        &r,
        "devin_acus_consumed_total",
        "ACUs consumed by the org's sessions since the exporter started watching; never decreases.",
        &["org_id"],
    )?;
    let created = counter(
        &r,
        "devin_sessions_created_total",
        "Sessions created, by origin; never decreases.",
        &["org_id", "origin"],
    )?;
    let entered = counter(
        &r,
        "devin_sessions_entered_status_total",
        "Sessions seen moving into a status after the org's first listing.",
        &["org_id", "status"],
    )?;
    let prs = gauge(
        &r,
        "devin_session_pull_requests",
        "Pull requests opened by the org's sessions, by state.",
        &["org_id", "pr_state"],
    )?;
    let archived = gauge(
        &r,
        "devin_sessions_archived",
        "Archived sessions.",
        &["org_id"],
    )?;
    let oldest = gauge(
        &r,
        "devin_sessions_oldest_update_timestamp_seconds",
        "Oldest updated_at among sessions in this state that are not exited, errored or suspended.",
        &["org_id", "status", "status_detail"],
    )?;
    let up = gauge(
        &r,
        "devin_up",
        "1 if the last collection of the org succeeded.",
        &["org_id"],
    )?;
    let initial = gauge(
        &r,
        "devin_initial_sync_complete",
        "1 once the org's first full listing is complete; its session metrics appear only then.",
        &["org_id"],
    )?;
    let duration = gauge(
        &r,
        "devin_scrape_duration_seconds",
        "How long the last collection of the org took.",
        &["org_id"],
    )?;
    let last_success = gauge(
        &r,
        "devin_last_successful_scrape_timestamp_seconds",
        "Unix time of the org's last successful collection.",
        &["org_id"],
    )?;
    let requests = counter(
        &r,
        "devin_api_requests_total",
        "Devin API requests by HTTP status code (error: no response).",
        &["org_id", "code"],
    )?;
    let build = gauge(
        &r,
        "devin_exporter_build_info",
        "Build identity of the exporter; always 1.",
        &["version", "revision"],
    )?;
    build.with_label_values(&[VERSION, REVISION]).set(1.0);

    for org in orgs {
        let id = org.id.as_str();
        for (code, n) in org.api_stats.requests() {
            requests.with_label_values(&[id, &code]).inc_by(n as f64);
        }
        r.register(Box::new(org.api_stats.latency().clone()))?;

        let st = org.state();
        if let Some(ok) = st.health.up {
            up.with_label_values(&[id]).set(if ok { 1.0 } else { 0.0 });
        }
        if let Some(d) = st.health.last_duration {
            duration.with_label_values(&[id]).set(d.as_secs_f64());
        }
        if let Some(t) = st.health.last_success {
            last_success.with_label_values(&[id]).set(seconds(t));
        }
        initial
            .with_label_values(&[id])
            .set(if st.initial_complete { 1.0 } else { 0.0 });
        if !st.initial_complete {
            continue; // Never half-counted gauges.
        }
        let store = &st.store;
        for (key, totals) in store.groups() {
            let labels = [
                id,
                store.label(key[0]),
                store.label(key[1]),
                store.label(key[2]),
                store.label(key[3]),
            ];
            sessions
                .with_label_values(&labels)
                .set(totals.sessions as f64);
            session_acus
                .with_label_values(&labels)
                .set(totals.acus_micros as f64 / 1e6);
        }
        let counters = store.counters();
        acus_total
            .with_label_values(&[id])
            .inc_by(counters.acus_micros as f64 / 1e6);
        for (origin, n) in &counters.created {
            created
                .with_label_values(&[id, store.label(*origin)])
                .inc_by(*n as f64);
        }
        for (status, n) in &counters.entered_status {
            entered
                .with_label_values(&[id, store.label(*status)])
                .inc_by(*n as f64);
        }
        for (state, n) in store.pull_requests() {
            prs.with_label_values(&[id, store.label(state)])
                .set(n as f64);
        }
        archived
            .with_label_values(&[id])
            .set(store.archived() as f64);
        for ((status, detail), t) in store.oldest_updates() {
            oldest
                .with_label_values(&[id, store.label(status), store.label(detail)])
                .set(t as f64);
        }
    }

    let mut families = r.gather();
    if let Some(p) = process {
        families.extend(p.collect());
    }
    let mut out = Vec::with_capacity(64 * 1024);
    TextEncoder::new().encode(&families, &mut out)?;
    String::from_utf8(out).map_err(|e| prometheus::Error::Msg(e.to_string()))
}
