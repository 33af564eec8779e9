//! The `/metrics` body, built fresh for every scrape from the orgs' state: a label set that no
//! longer has sessions simply is not there. Every family of our own is written as text
//! directly (see [`text`]); only the process collector's few series go through the
//! prometheus crate's encoder.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::UNIX_EPOCH;

use prometheus::core::{Collector, Metric};
use prometheus::{Encoder, TextEncoder};

use super::spend::SpendFamilies;
use super::text::{self, Bound, Family};
use crate::api::ApiStats;
use crate::discovery::DiscoveryStatus;
use crate::sync::{Org, SessionStore};
use crate::{DataSource, REVISION, VERSION};

/// Content type of the text exposition format; Prometheus 3 refuses a scrape without it.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

fn seconds(t: std::time::SystemTime) -> f64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

/// What one response shows.
#[derive(Default)]
pub struct Scope<'a> {
    /// The orgs to show.
    pub orgs: &'a [Arc<Org>],
    /// Process metrics (on `/metrics`, not on `/probe`).
    pub process: Option<&'a dyn Collector>,
    /// Org discovery status and its request statistics, when discovery is on.
    pub discovery: Option<(DiscoveryStatus, &'a ApiStats)>,
}

fn push_requests(requests: &mut Family, latency: &mut Family, org_id: &str, stats: &ApiStats) {
    for (code, n) in stats.requests() {
        requests.count(&[("org_id", org_id), ("code", &code)], n);
    }
    let m = stats.latency().metric();
    let h = m.get_histogram();
    latency.histogram_series(
        &[("org_id", org_id)],
        h.get_bucket()
            .iter()
            .map(|b| (Bound::Float(b.upper_bound()), b.cumulative_count())),
        Bound::Float(h.get_sample_sum()),
        h.get_sample_count(),
    );
}

/// Renders scopes; remembers the last body's size to allocate the next one in one go.
#[derive(Default)]
pub struct Renderer {
    last_len: AtomicUsize,
    source: DataSource,
}

impl Renderer {
    /// A renderer whose bodies say whether the data is simulated (demo mode).
    pub fn new(source: DataSource) -> Self {
        Renderer {
            source,
            ..Renderer::default()
        }
    }

    /// Renders the metrics of a scope (plus build info) as text.
    pub fn render(&self, scope: &Scope<'_>) -> prometheus::Result<String> {
        let hint = self.last_len.load(Ordering::Relaxed);
        let body = render_sized(scope, hint + hint / 8, self.source)?;
        self.last_len.store(body.len(), Ordering::Relaxed);
        Ok(body)
    }

    /// Renders a one-org scope (`/probe`): too small to use or change the size hint.
    pub fn render_probe(&self, scope: &Scope<'_>) -> prometheus::Result<String> {
        render_sized(scope, 0, self.source)
    }
}

/// `devin_sessions` and `devin_sessions_acus_consumed`, written as text (see [`text`]) while
/// each org is locked once: the first family straight into the body, the second into a
/// buffer appended after it.
struct SessionFamilies {
    acus: Vec<u8>,
    /// The label set of the series being written.
    labels: Vec<u8>,
    series: usize,
}

impl SessionFamilies {
    const SESSIONS: &str = "devin_sessions";
    const ACUS: &str = "devin_sessions_acus_consumed";

    fn new(acus_capacity: usize) -> Self {
        SessionFamilies {
            acus: Vec::with_capacity(acus_capacity),
            labels: Vec::with_capacity(256),
            series: 0,
        }
    }

    /// Writes an org's series of both families.
    fn push_org(&mut self, out: &mut Vec<u8>, org_id: &str, store: &SessionStore) {
        for (key, totals) in store.groups() {
            if self.series == 0 {
                // Headers only above a first series: a family must not be empty.
                text::header(
                    out,
                    Self::SESSIONS,
                    "Sessions in this state now, archived ones included.",
                    "gauge",
                );
                text::header(
                    &mut self.acus,
                    Self::ACUS,
                    "Sum of acus_consumed of the sessions in this state.",
                    "gauge",
                );
            }
            self.series += 1;
            let labels = [
                ("org_id", org_id),
                ("status", store.label(key.status)),
                ("status_detail", store.label(key.status_detail)),
                ("origin", store.label(key.origin)),
                ("category", store.label(key.category)),
            ];
            // Both families share the label set: escape it once.
            self.labels.clear();
            text::label_set(&mut self.labels, &labels);
            out.extend_from_slice(Self::SESSIONS.as_bytes());
            out.extend_from_slice(&self.labels);
            text::count(out, totals.sessions);
            self.acus.extend_from_slice(Self::ACUS.as_bytes());
            self.acus.extend_from_slice(&self.labels);
            text::millionths(&mut self.acus, totals.acus_micros);
        }
    }
}

fn render_sized(
    scope: &Scope<'_>,
    capacity: usize,
    source: DataSource,
) -> prometheus::Result<String> {
    // The session families are most of a large body, split about evenly between the two.
    let mut out = Vec::with_capacity(capacity.max(64 * 1024));
    let mut session_families = SessionFamilies::new(capacity / 2);
    let mut acus_total = Family::counter(
        "devin_acus_consumed_total",
        "ACUs consumed by the org's sessions since this process finished its first listing of the org.",
    );
    let mut created = Family::counter(
        "devin_sessions_created_total",
        "Sessions created since this process finished its first listing of the org, by origin.",
    );
    let mut entered = Family::counter(
        "devin_sessions_entered_status_total",
        "Sessions seen moving into a status and status detail after the org's first listing.",
    );
    let mut prs = Family::gauge(
        "devin_session_pull_requests",
        "Pull requests opened by the org's sessions, by state.",
    );
    let mut archived = Family::gauge("devin_sessions_archived", "Archived sessions.");
    let mut oldest = Family::gauge(
        "devin_sessions_oldest_update_timestamp_seconds",
        "Oldest updated_at among sessions in this state that are not exited, errored or suspended.",
    );
    let mut up = Family::gauge("devin_up", "1 if the last collection of the org succeeded.");
    let mut initial = Family::gauge(
        "devin_initial_sync_complete",
        "1 once the org's first full listing is complete; its session metrics appear only then.",
    );
    let mut duration = Family::gauge(
        "devin_scrape_duration_seconds",
        "How long the last collection of the org took.",
    );
    let mut last_success = Family::gauge(
        "devin_last_successful_scrape_timestamp_seconds",
        "Unix time of the org's last successful collection.",
    );
    let mut requests = Family::counter(
        "devin_api_requests_total",
        "Devin API requests by HTTP status code (error: no response).",
    );
    let mut latency = Family::histogram(
        "devin_api_request_duration_seconds",
        "Latency of Devin API requests, retries counted one by one.",
    );
    let mut malformed_sessions = Family::counter(
        "devin_malformed_sessions_total",
        "Session items of the org's pages skipped as malformed (no usable session_id, status or timestamp), counted each time one is listed.",
    );
    let mut malformed_fields = Family::counter(
        "devin_malformed_session_fields_total",
        "Session fields of the wrong type read as null, 0 or empty, by field, counted each time one is listed.",
    );
    let mut spend = SpendFamilies::default();
    let mut build = Family::gauge(
        "devin_exporter_build_info",
        "Build identity of the exporter; always 1.",
    );
    build.count(&[("version", VERSION), ("revision", REVISION)], 1);
    // Simulated data must not pass for real: say so in the body itself.
    let mut demo_mode = Family::gauge(
        "devin_exporter_demo_mode",
        "1 when the exporter serves simulated data (demo mode); absent otherwise.",
    );
    if source == DataSource::Simulated {
        demo_mode.count(&[], 1);
    }

    let mut org_info = Family::gauge(
        "devin_org_info",
        "Name of a discovered org (value 1); join on org_id with group_left.",
    );
    let mut cycle_limit = Family::gauge(
        "devin_org_max_cycle_acu_limit",
        "Most ACUs the org may use per billing cycle (absent when unlimited).",
    );
    let mut session_limit = Family::gauge(
        "devin_org_max_session_acu_limit",
        "Most ACUs one session of the org may use (absent when unlimited).",
    );
    let mut discovery_up = Family::gauge(
        "devin_discovery_up",
        "1 if the last org discovery succeeded.",
    );
    let mut discovered = Family::gauge(
        "devin_discovered_orgs",
        "Orgs the last successful discovery found, before exclusions.",
    );
    if let Some((status, stats)) = &scope.discovery {
        if let Some(ok) = status.up {
            discovery_up.count(&[], u64::from(ok));
        }
        discovered.count(&[], status.found as u64);
        push_requests(&mut requests, &mut latency, "", stats);
    }

    for org in scope.orgs {
        let id = org.id.as_str();
        let org_label = [("org_id", id)];
        push_requests(&mut requests, &mut latency, id, &org.api_stats);
        if let Some(info) = org.info() {
            org_info.count(
                &[("org_id", id), ("name", info.name.as_deref().unwrap_or(""))],
                1,
            );
            if let Some(limit) = info.max_cycle_acu_limit {
                cycle_limit.value(&org_label, limit);
            }
            if let Some(limit) = info.max_session_acu_limit {
                session_limit.value(&org_label, limit);
            }
        }

        let st = org.state();
        if let Some(ok) = st.health.up {
            up.count(&org_label, u64::from(ok));
        }
        if let Some(d) = st.health.last_duration {
            duration.value(&org_label, d.as_secs_f64());
        }
        if let Some(t) = st.health.last_success {
            last_success.value(&org_label, seconds(t));
        }
        initial.count(&org_label, u64::from(st.initial_complete));
        malformed_sessions.count(&org_label, st.malformed.sessions());
        for (field, n) in st.malformed.fields() {
            malformed_fields.count(&[("org_id", id), ("field", field.name())], n);
        }
        if !st.initial_complete {
            continue; // Never half-counted gauges.
        }
        let store = &st.store;
        session_families.push_org(&mut out, id, store);
        let counters = store.counters();
        acus_total.millionths(&org_label, counters.acus_micros);
        for (origin, n) in &counters.created {
            created.count(&[("org_id", id), ("origin", store.label(*origin))], *n);
        }
        for ((status, detail), n) in &counters.entered_status {
            entered.count(
                &[
                    ("org_id", id),
                    ("status", store.label(*status)),
                    ("status_detail", store.label(*detail)),
                ],
                *n,
            );
        }
        for (state, n) in store.pull_requests() {
            prs.count(&[("org_id", id), ("pr_state", store.label(state))], n);
        }
        archived.count(&org_label, store.archived());
        spend.push_org(id, store);
        for ((status, detail), t) in store.oldest_updates() {
            oldest.value(
                &[
                    ("org_id", id),
                    ("status", store.label(status)),
                    ("status_detail", store.label(detail)),
                ],
                t as f64,
            );
        }
    }

    out.extend_from_slice(&session_families.acus);
    drop(session_families);
    for family in [
        acus_total,
        created,
        entered,
        prs,
        archived,
        oldest,
        up,
        initial,
        duration,
        last_success,
        requests,
        malformed_sessions,
        malformed_fields,
        org_info,
        cycle_limit,
        session_limit,
        discovery_up,
        discovered,
        build,
        demo_mode,
    ] {
        family.write_to(&mut out);
    }
    spend.write_to(&mut out);
    latency.write_to(&mut out);
    if let Some(p) = scope.process {
        let mut families = p.collect();
        // A family without series would be a HELP/TYPE pair with nothing under it.
        families.retain(|f| !f.get_metric().is_empty());
        TextEncoder::new().encode(&families, &mut out)?;
    }
    String::from_utf8(out).map_err(|e| prometheus::Error::Msg(e.to_string()))
}
