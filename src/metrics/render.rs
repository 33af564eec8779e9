//! The `/metrics` body, built fresh for every scrape from the orgs' state: a label set that no
//! longer has sessions simply is not there. The two session families, one series per label
//! combination of each org, are written as text directly; the other families are assembled
//! as the prometheus crate's protobuf model (no registry lookups per series) and written by
//! its text encoder.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::UNIX_EPOCH;

use prometheus::core::Collector;
use prometheus::proto::{Counter, Gauge, LabelPair, Metric, MetricFamily, MetricType};
use prometheus::{Encoder, TextEncoder};

use super::spend::SpendFamilies;
use super::text;
use crate::api::ApiStats;
use crate::discovery::DiscoveryStatus;
use crate::sync::{Org, SessionStore};
use crate::{DataSource, REVISION, VERSION};

/// Content type of the text exposition format; Prometheus 3 refuses a scrape without it.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// One metric family under construction.
struct Family(MetricFamily);

impl Family {
    fn new(name: &str, help: &str, kind: MetricType) -> Self {
        let mut mf = MetricFamily::default();
        mf.set_name(name.to_string());
        mf.set_help(help.to_string());
        mf.set_field_type(kind);
        Family(mf)
    }

    fn gauge(name: &str, help: &str) -> Self {
        Family::new(name, help, MetricType::GAUGE)
    }

    fn counter(name: &str, help: &str) -> Self {
        Family::new(name, help, MetricType::COUNTER)
    }

    fn push(&mut self, labels: &[(&str, &str)], value: f64) {
        let mut m = Metric::from_label(label_pairs(labels));
        if self.0.get_field_type() == MetricType::COUNTER {
            let mut c = Counter::default();
            c.set_value(value);
            m.set_counter(c);
        } else {
            let mut g = Gauge::default();
            g.set_value(value);
            m.set_gauge(g);
        }
        self.0.mut_metric().push(m);
    }
}

/// Label pairs of one series.
pub(super) fn label_pairs(labels: &[(&str, &str)]) -> Vec<LabelPair> {
    labels
        .iter()
        .map(|(k, v)| {
            let mut p = LabelPair::default();
            p.set_name((*k).to_string());
            p.set_value((*v).to_string());
            p
        })
        .collect()
}

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

fn push_requests(
    family: &mut Family,
    latency: &mut Option<MetricFamily>,
    org_id: &str,
    stats: &ApiStats,
) {
    for (code, n) in stats.requests() {
        family.push(&[("org_id", org_id), ("code", &code)], n as f64);
    }
    for mut mf in stats.latency().collect() {
        match latency.as_mut() {
            Some(all) => all.mut_metric().extend(mf.take_metric()),
            None => *latency = Some(mf),
        }
    }
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
    series: usize,
}

impl SessionFamilies {
    const SESSIONS: &str = "devin_sessions";
    const ACUS: &str = "devin_sessions_acus_consumed";

    fn new(acus_capacity: usize) -> Self {
        SessionFamilies {
            acus: Vec::with_capacity(acus_capacity),
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
            text::series(out, Self::SESSIONS, &labels);
            text::count(out, totals.sessions);
            text::series(&mut self.acus, Self::ACUS, &labels);
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
    let mut latency: Option<MetricFamily> = None;
    let mut spend = SpendFamilies::default();
    let mut build = Family::gauge(
        "devin_exporter_build_info",
        "Build identity of the exporter; always 1.",
    );
    build.push(&[("version", VERSION), ("revision", REVISION)], 1.0);
    // Simulated data must not pass for real: say so in the body itself.
    let mut demo_mode = Family::gauge(
        "devin_exporter_demo_mode",
        "1 when the exporter serves simulated data (demo mode); absent otherwise.",
    );
    if source == DataSource::Simulated {
        demo_mode.push(&[], 1.0);
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
            discovery_up.push(&[], if ok { 1.0 } else { 0.0 });
        }
        discovered.push(&[], status.found as f64);
        push_requests(&mut requests, &mut latency, "", stats);
    }

    for org in scope.orgs {
        let id = org.id.as_str();
        let org_label = [("org_id", id)];
        push_requests(&mut requests, &mut latency, id, &org.api_stats);
        if let Some(info) = org.info() {
            org_info.push(
                &[("org_id", id), ("name", info.name.as_deref().unwrap_or(""))],
                1.0,
            );
            if let Some(limit) = info.max_cycle_acu_limit {
                cycle_limit.push(&org_label, limit);
            }
            if let Some(limit) = info.max_session_acu_limit {
                session_limit.push(&org_label, limit);
            }
        }

        let st = org.state();
        if let Some(ok) = st.health.up {
            up.push(&org_label, if ok { 1.0 } else { 0.0 });
        }
        if let Some(d) = st.health.last_duration {
            duration.push(&org_label, d.as_secs_f64());
        }
        if let Some(t) = st.health.last_success {
            last_success.push(&org_label, seconds(t));
        }
        initial.push(&org_label, if st.initial_complete { 1.0 } else { 0.0 });
        if !st.initial_complete {
            continue; // Never half-counted gauges.
        }
        let store = &st.store;
        session_families.push_org(&mut out, id, store);
        let counters = store.counters();
        acus_total.push(&org_label, counters.acus_micros as f64 / 1e6);
        for (origin, n) in &counters.created {
            created.push(
                &[("org_id", id), ("origin", store.label(*origin))],
                *n as f64,
            );
        }
        for ((status, detail), n) in &counters.entered_status {
            entered.push(
                &[
                    ("org_id", id),
                    ("status", store.label(*status)),
                    ("status_detail", store.label(*detail)),
                ],
                *n as f64,
            );
        }
        for (state, n) in store.pull_requests() {
            prs.push(
                &[("org_id", id), ("pr_state", store.label(state))],
                n as f64,
            );
        }
        archived.push(&org_label, store.archived() as f64);
        spend.push_org(id, store);
        for ((status, detail), t) in store.oldest_updates() {
            oldest.push(
                &[
                    ("org_id", id),
                    ("status", store.label(status)),
                    ("status_detail", store.label(detail)),
                ],
                t as f64,
            );
        }
    }

    let mut families: Vec<MetricFamily> = [
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
        org_info,
        cycle_limit,
        session_limit,
        discovery_up,
        discovered,
        build,
        demo_mode,
    ]
    .into_iter()
    .map(|f| f.0)
    .chain(spend.into_families())
    .chain(latency)
    .collect();
    if let Some(p) = scope.process {
        families.extend(p.collect());
    }
    // A family without series would be a HELP/TYPE pair with nothing under it.
    families.retain(|f| !f.get_metric().is_empty());
    out.extend_from_slice(&session_families.acus);
    drop(session_families);
    TextEncoder::new().encode(&families, &mut out)?;
    String::from_utf8(out).map_err(|e| prometheus::Error::Msg(e.to_string()))
}
