//! The exporter: the set of orgs (configured and discovered), the API client, and the
//! collections that scrapes and probes trigger.

use std::collections::HashSet;
use std::sync::{Arc, Mutex, RwLock};
use std::time::SystemTime;

use indexmap::IndexMap;
use tokio::time::Instant;

use crate::api::ListQuery;
use crate::api::{ApiClient, ApiStats, Organization};
use crate::billing::{Billing, BillingView};
use crate::config::SessionSource;
use crate::discovery::{Discovery, DiscoveryStatus};
use crate::lock::{Locked, RwLocked};
use crate::sync::schedule::Scheduler;
use crate::sync::source::{PROBE_INTERVAL, Source, SourceChoice};
use crate::sync::stream::{OrgMap, Stream};
use crate::sync::{Org, SyncSettings};

/// What a response shows of the exporter at one moment.
pub struct Snapshot<'a> {
    /// The orgs collected now, configured ones first.
    pub orgs: Vec<Arc<Org>>,
    /// Org discovery status and its request statistics, when discovery is on.
    pub discovery: Option<(DiscoveryStatus, &'a ApiStats)>,
    /// When the API's rate-limit pause on the token ends, if one is in force: collections
    /// wait for it.
    pub rate_limited_until: Option<SystemTime>,
    /// Billing and capacity, and the statistics of their requests, when billing is on.
    pub billing: Option<(BillingView, &'a ApiStats)>,
    /// The session source in use and why, once decided.
    pub source: Option<(Source, String)>,
    /// Session items the enterprise stream dropped on arrival (of orgs not collected).
    pub stream_dropped: u64,
    /// The enterprise-scope request statistics (the stream's, discovery's, billing's).
    pub enterprise_stats: Arc<ApiStats>,
}

/// Orgs, client and discovery.
pub struct Exporter {
    configured: Vec<String>,
    exclude: HashSet<String>,
    orgs: OrgMap,
    client: Arc<ApiClient>,
    scheduler: Scheduler,
    discovery: Option<Discovery>,
    refreshing: tokio::sync::Mutex<()>,
    billing: Option<Arc<Billing>>,
    source: SourceChoice,
    stream: Arc<Stream>,
    /// When the configured orgs the stream never showed were last checked one by one.
    checked: Mutex<Option<Instant>>,
}

impl Exporter {
    /// An exporter for the configured `org_ids`, plus discovered ones if `discovery` is set.
    pub fn new(
        org_ids: &[String],
        exclude: &[String],
        client: ApiClient,
        settings: SyncSettings,
        discovery: Option<Discovery>,
    ) -> Self {
        let exclude: HashSet<String> = exclude.iter().cloned().collect();
        let orgs: IndexMap<String, Arc<Org>> = org_ids
            .iter()
            .filter(|id| !exclude.contains(*id))
            .map(|id| (id.clone(), Arc::new(Org::new(id.clone()))))
            .collect();
        let client = Arc::new(client);
        // Neither org ids nor discovery: the stream collects every org it shows.
        let admit_all = org_ids.is_empty() && discovery.is_none();
        let enterprise_stats = discovery
            .as_ref()
            .map_or_else(|| Arc::new(ApiStats::new("")), |d| Arc::clone(&d.api_stats));
        let orgs: OrgMap = Arc::new(RwLock::new(orgs));
        Exporter {
            configured: org_ids.to_vec(),
            exclude,
            stream: Arc::new(Stream::new(Arc::clone(&orgs), admit_all, enterprise_stats)),
            orgs,
            scheduler: Scheduler::new(Arc::clone(&client), Arc::new(settings)),
            client,
            discovery,
            refreshing: tokio::sync::Mutex::new(()),
            billing: None,
            source: SourceChoice::new(SessionSource::Orgs),
            checked: Mutex::new(None),
        }
    }

    /// Lists the sessions from `source` (`DEVIN_SESSION_SOURCE`).
    pub fn with_session_source(mut self, source: SessionSource) -> Self {
        self.source = SourceChoice::new(source);
        self
    }

    /// The enterprise-scope request statistics (discovery's, billing's and the stream's).
    pub fn enterprise_stats(&self) -> Arc<ApiStats> {
        Arc::clone(&self.stream.api_stats)
    }

    /// Reads billing and capacity too.
    pub fn with_billing(mut self, billing: Billing) -> Self {
        self.billing = Some(Arc::new(billing));
        self
    }

    /// The billing sources, when billing is on.
    pub fn billing(&self) -> Option<&Billing> {
        self.billing.as_deref()
    }

    /// The ids of the orgs collected now.
    fn org_ids(&self) -> Vec<String> {
        self.orgs.read_locked().keys().cloned().collect()
    }

    /// The orgs collected now, configured ones first.
    pub fn orgs(&self) -> Vec<Arc<Org>> {
        self.orgs.read_locked().values().cloned().collect()
    }

    /// The orgs, the discovery's state and any rate-limit pause, as a response shows them.
    pub async fn snapshot(&self) -> Snapshot<'_> {
        let orgs = self.orgs();
        let discovery = match &self.discovery {
            Some(d) => Some((d.status().await, &*d.api_stats)),
            None => None,
        };
        let billing = self.billing.as_ref().map(|b| {
            let ids: Vec<String> = orgs.iter().map(|o| o.id.clone()).collect();
            (b.view(&ids), b.stats())
        });
        Snapshot {
            orgs,
            discovery,
            rate_limited_until: self.client.rate_limited_until(),
            billing,
            source: self.source.current(),
            stream_dropped: self.stream.dropped(),
            enterprise_stats: Arc::clone(&self.stream.api_stats),
        }
    }

    /// The org discovery, if enabled.
    pub fn discovery(&self) -> Option<&Discovery> {
        self.discovery.as_ref()
    }

    /// Refreshes the discovered orgs if due. Orgs that disappear from the enterprise are
    /// dropped with their state; configured ones always stay.
    pub async fn refresh_orgs(&self, deadline: Instant) -> bool {
        let Some(discovery) = &self.discovery else {
            return false;
        };
        // Held until the new org set is in place: a caller that finds the refresh done must
        // also find its result applied. One refresh at a time: while one runs, callers answer
        // from the orgs known so far, except before the first refresh has finished (the first
        // scrapes then wait for it, within their deadline, to include the discovered orgs).
        let _refreshing = match self.refreshing.try_lock() {
            Ok(guard) => guard,
            Err(_) if discovery.settled() => return false,
            Err(_) => match tokio::time::timeout_at(deadline, self.refreshing.lock()).await {
                Ok(guard) => guard,
                Err(_) => return false,
            },
        };
        let Some(found) = discovery.refresh_if_due(&self.client, deadline).await else {
            return false;
        };
        let mut orgs = self.orgs.write_locked();
        let mut next: IndexMap<String, Arc<Org>> = IndexMap::new();
        let wanted = self
            .configured
            .iter()
            .map(|id| (id.clone(), None))
            .chain(found.into_iter().map(|o| (o.org_id.clone(), Some(o))));
        for (id, info) in wanted {
            if self.exclude.contains(&id) {
                continue;
            }
            // A configured org that discovery lists too keeps its place and gets its info.
            let org = next.entry(id).or_insert_with_key(|id| {
                orgs.get(id)
                    .cloned()
                    .unwrap_or_else(|| Arc::new(Org::new(id.clone())))
            });
            if let Some(info) = info {
                org.set_info(info);
            }
        }
        *orgs = next;
        true
    }

    /// Asks for a collection of every org and waits for them until `deadline`. Collections
    /// run in their own tasks, which concurrent scrapes share (an HA pair of Prometheus
    /// servers does not double the API load) and which go on past the deadline with their own
    /// budget (see [`Scheduler`]); the orgs keep the result of their last finished one.
    pub async fn collect(&self, deadline: Instant) {
        let source = self.refresh_orgs_until(deadline).await;
        // In the background: billing never delays a scrape.
        if let Some(billing) = &self.billing {
            billing.refresh_if_due(&self.client, self.org_ids());
        }
        let orgs = self.orgs();
        self.collect_from(source, &orgs, deadline).await;
        for org in &self.orgs() {
            org.note_not_collected_yet();
        }
    }

    /// Collects `orgs` from `source` until `deadline`: each org's own collection, or the
    /// stream's, which every org shares (and then the check of configured orgs it never
    /// showed).
    async fn collect_from(&self, source: Source, orgs: &[Arc<Org>], deadline: Instant) {
        match source {
            Source::Enterprise => {
                self.scheduler.collect(&self.stream, deadline).await;
                self.check_unseen_orgs(deadline).await;
            }
            Source::Orgs => {
                let collections = orgs.iter().map(|org| self.scheduler.collect(org, deadline));
                futures::future::join_all(collections).await;
            }
        }
    }

    /// Refreshes the discovered orgs, waiting for a refresh another scrape started only
    /// until `deadline`, and decides the session source (asked again after a refresh).
    async fn refresh_orgs_until(&self, deadline: Instant) -> Source {
        let refreshed = tokio::time::timeout_at(deadline, self.refresh_orgs(deadline))
            .await
            .unwrap_or(false);
        if refreshed {
            *self.checked.locked() = None;
        }
        self.source
            .decide(&self.client, &self.stream.api_stats, deadline, refreshed)
            .await
    }

    /// The stream cannot tell an empty org from a mistyped or forbidden one: a configured
    /// org that discovery does not list and the stream has never shown is read with one
    /// page of its own listing (`first=1`) once the stream is listed, and again after each
    /// discovery refresh (every [`PROBE_INTERVAL`] without discovery). A failure keeps it
    /// down with the reason.
    async fn check_unseen_orgs(&self, deadline: Instant) {
        {
            let mut checked = self.checked.locked();
            if checked.is_some_and(|t| t.elapsed() < PROBE_INTERVAL) || !self.stream.listed() {
                return;
            }
            *checked = Some(Instant::now());
        }
        let unseen: Vec<Arc<Org>> = self
            .orgs()
            .into_iter()
            .filter(|o| {
                self.configured.contains(&o.id) && o.info().is_none() && !o.seen_in_stream()
            })
            .collect();
        let query = ListQuery {
            first: 1,
            ..Default::default()
        };
        let checks = unseen.iter().map(|org| async {
            let answer = self
                .client
                .list_sessions(&org.id, &query, deadline, &org.api_stats)
                .await;
            org.set_check_result(answer.err());
        });
        futures::future::join_all(checks).await;
    }

    /// Collects one org (the multi-target `/probe` pattern); `None` if it is not one of the
    /// configured or discovered orgs.
    pub async fn probe(&self, org_id: &str, deadline: Instant) -> Option<Arc<Org>> {
        let source = self.refresh_orgs_until(deadline).await;
        let org = self.orgs.read_locked().get(org_id).cloned()?;
        // With the stream, a probe joins the stream's collection.
        self.collect_from(source, std::slice::from_ref(&org), deadline)
            .await;
        org.note_not_collected_yet();
        Some(org)
    }

    /// The orgs as scrape targets (for HTTP service discovery), with their names if known.
    pub async fn targets(&self, deadline: Instant) -> Vec<(String, Option<Organization>)> {
        self.refresh_orgs(deadline).await;
        self.orgs()
            .into_iter()
            .map(|o| (o.id.clone(), o.info()))
            .collect()
    }
}
