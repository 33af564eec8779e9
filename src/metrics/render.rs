//! The `/metrics` body, built fresh for every scrape from the orgs' state: a label set that no
//! longer has sessions simply is not there. Every family of our own is written as text
//! directly (see [`text`]); only the process collector's few series go through the
//! prometheus crate's encoder.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use prometheus::core::Collector;
use prometheus::{Encoder, TextEncoder};

use super::discovery::DiscoveryFamilies;
use super::health::HealthFamilies;
use super::requests::RequestFamilies;
use super::sessions::SessionFamilies;
use super::spend::SpendFamilies;
use crate::DataSource;
use crate::api::ApiStats;
use crate::billing::BillingView;
use crate::discovery::DiscoveryStatus;
use crate::sync::Org;
use crate::sync::source::Source;

/// Content type of the text exposition format; Prometheus 3 refuses a scrape without it.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// What one response shows.
#[derive(Default)]
pub struct Scope<'a> {
    /// The orgs to show.
    pub orgs: &'a [Arc<Org>],
    /// Process metrics (on `/metrics`, not on `/probe`).
    pub process: Option<&'a dyn Collector>,
    /// Org discovery status and its request statistics, when discovery is on.
    pub discovery: Option<(DiscoveryStatus, &'a ApiStats)>,
    /// Billing and capacity, and the statistics of their requests, when billing is on.
    pub billing: Option<(BillingView, &'a ApiStats)>,
    /// The session source in use (once decided), the items the enterprise stream dropped,
    /// and the enterprise-scope request statistics the stream's requests count in.
    pub session_source: Option<(Source, u64, &'a ApiStats)>,
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

/// The body: each concern's writer takes every org's series in one pass over the orgs (each
/// org locked once), then appends its families.
fn render_sized(
    scope: &Scope<'_>,
    capacity: usize,
    source: DataSource,
) -> prometheus::Result<String> {
    // The session families are most of a large body, split about evenly between the two.
    let mut out = Vec::with_capacity(capacity.max(64 * 1024));
    let mut sessions = SessionFamilies::new(capacity / 2);
    let mut health = HealthFamilies::default();
    let mut requests = RequestFamilies::default();
    let mut discovery = DiscoveryFamilies::default();
    let mut spend = SpendFamilies::default();
    if let Some((status, stats)) = &scope.discovery {
        discovery.push_status(status);
        requests.push("", stats);
    }
    // Billing's requests share discovery's statistics when discovery is on.
    if let (None, Some((_, stats))) = (&scope.discovery, &scope.billing) {
        requests.push("", stats);
    }
    // ... and so do the stream's.
    if let (None, None, Some((_, _, stats))) =
        (&scope.discovery, &scope.billing, &scope.session_source)
    {
        requests.push("", stats);
    }
    // The orgs' cycle limits: acu_limits' once read (an org it does not list is unlimited),
    // else discovery's, never both.
    let billed_limits = scope.billing.as_ref().and_then(|(b, _)| b.limits.as_ref());
    for org in scope.orgs {
        let id = org.id.as_str();
        requests.push(id, &org.api_stats);
        let info = org.info();
        let cycle_limit = match billed_limits {
            Some(limits) => limits.orgs.get(id).copied(),
            None => info.as_ref().and_then(|i| i.max_cycle_acu_limit),
        };
        discovery.push_org(id, info.as_ref(), cycle_limit);
        let st = org.state();
        health.push_org(id, &st);
        // Never half-counted gauges: session metrics only once the first listing is done.
        if st.initial_complete {
            sessions.push_org(&mut out, id, &st.store);
            spend.push_org(id, &st.store);
        }
    }
    sessions.write_to(&mut out);
    drop(sessions);
    health.write_to(&mut out);
    requests.write_counts(&mut out);
    discovery.write_to(&mut out);
    super::build::write_to(&mut out, source);
    if let Some((session_source, dropped, _)) = scope.session_source {
        super::source::write_to(&mut out, session_source, dropped);
    }
    spend.write_to(&mut out);
    if let Some((view, _)) = &scope.billing {
        super::billing::write_to(&mut out, view);
    }
    requests.write_latency(&mut out);
    if let Some(p) = scope.process {
        let mut families = p.collect();
        // A family without series would be a HELP/TYPE pair with nothing under it.
        families.retain(|f| !f.get_metric().is_empty());
        TextEncoder::new().encode(&families, &mut out)?;
    }
    String::from_utf8(out).map_err(|e| prometheus::Error::Msg(e.to_string()))
}
