//! The exporter: the set of orgs (configured and discovered), the API client, and the
//! collections that scrapes and probes trigger.

use std::collections::HashSet;
use std::sync::{Arc, RwLock};
use std::time::SystemTime;

use indexmap::IndexMap;
use tokio::time::Instant;

use crate::api::{ApiClient, ApiStats, Organization};
use crate::billing::{Billing, BillingView};
use crate::discovery::{Discovery, DiscoveryStatus};
use crate::lock::RwLocked;
use crate::sync::schedule::Scheduler;
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
}

/// Orgs, client and discovery.
pub struct Exporter {
    configured: Vec<String>,
    exclude: HashSet<String>,
    orgs: RwLock<IndexMap<String, Arc<Org>>>,
    client: Arc<ApiClient>,
    scheduler: Scheduler,
    discovery: Option<Discovery>,
    refreshing: tokio::sync::Mutex<()>,
    billing: Option<Arc<Billing>>,
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
        let orgs = org_ids
            .iter()
            .filter(|id| !exclude.contains(*id))
            .map(|id| (id.clone(), Arc::new(Org::new(id.clone()))))
            .collect();
        let client = Arc::new(client);
        Exporter {
            configured: org_ids.to_vec(),
            exclude,
            orgs: RwLock::new(orgs),
            scheduler: Scheduler::new(Arc::clone(&client), Arc::new(settings)),
            client,
            discovery,
            refreshing: tokio::sync::Mutex::new(()),
            billing: None,
        }
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
        }
    }

    /// The org discovery, if enabled.
    pub fn discovery(&self) -> Option<&Discovery> {
        self.discovery.as_ref()
    }

    /// Refreshes the discovered orgs if due. Orgs that disappear from the enterprise are
    /// dropped with their state; configured ones always stay.
    pub async fn refresh_orgs(&self, deadline: Instant) {
        let Some(discovery) = &self.discovery else {
            return;
        };
        // Held until the new org set is in place: a caller that finds the refresh done must
        // also find its result applied. One refresh at a time: while one runs, callers answer
        // from the orgs known so far, except before the first refresh has finished (the first
        // scrapes then wait for it, within their deadline, to include the discovered orgs).
        let _refreshing = match self.refreshing.try_lock() {
            Ok(guard) => guard,
            Err(_) if discovery.settled() => return,
            Err(_) => match tokio::time::timeout_at(deadline, self.refreshing.lock()).await {
                Ok(guard) => guard,
                Err(_) => return,
            },
        };
        let Some(found) = discovery.refresh_if_due(&self.client, deadline).await else {
            return;
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
    }

    /// Asks for a collection of every org and waits for them until `deadline`. Collections
    /// run in their own tasks, which concurrent scrapes share (an HA pair of Prometheus
    /// servers does not double the API load) and which go on past the deadline with their own
    /// budget (see [`Scheduler`]); the orgs keep the result of their last finished one.
    pub async fn collect(&self, deadline: Instant) {
        self.refresh_orgs_until(deadline).await;
        // In the background: billing never delays a scrape.
        if let Some(billing) = &self.billing {
            billing.refresh_if_due(&self.client, self.org_ids());
        }
        let orgs = self.orgs();
        futures::future::join_all(orgs.iter().map(|org| self.scheduler.collect(org, deadline)))
            .await;
        for org in &orgs {
            org.note_not_collected_yet();
        }
    }

    /// Refreshes the discovered orgs, waiting for a refresh another scrape started only
    /// until `deadline`.
    async fn refresh_orgs_until(&self, deadline: Instant) {
        let _ = tokio::time::timeout_at(deadline, self.refresh_orgs(deadline)).await;
    }

    /// Collects one org (the multi-target `/probe` pattern); `None` if it is not one of the
    /// configured or discovered orgs.
    pub async fn probe(&self, org_id: &str, deadline: Instant) -> Option<Arc<Org>> {
        self.refresh_orgs_until(deadline).await;
        let org = self.orgs.read_locked().get(org_id).cloned()?;
        self.scheduler.collect(&org, deadline).await;
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
