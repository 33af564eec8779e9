//! The enterprise session stream (`GET /v3/enterprise/sessions`): one listing of every org's
//! sessions, followed like one org's (see [`follow`]), each item applied to the store of the
//! org it names. One watermark for the whole stream: a warm pass costs one request while
//! fewer than a page of sessions changed, however many orgs there are.
//!
//! Which orgs it feeds is the shared org map's business: the configured and discovered orgs,
//! or, when neither is set, every org the stream shows (at most [`MAX_STREAM_ORGS`]). Items
//! of any other org are dropped on arrival and counted. An org joins when a full listing of
//! the stream begins with it in the map (it is complete when that listing is); one added
//! later waits for the next full listing, which starts at once.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, RwLock};
use std::time::SystemTime;

use indexmap::IndexMap;
use tokio::time::Instant;

use super::follow::{self, Collecting, Endpoint, Follow, Sink};
use super::listing::ListingKind;
use super::org::Org;
use super::schedule::RunSlot;
use super::store::SessionStore;
use crate::api::explain::Scope;
use crate::api::{ApiClient, ApiError, ApiStats, SessionPage, usable_org_id};
use crate::config::SyncSettings;
use crate::lock::{Locked, RwLocked};

/// The orgs collected now, by id, configured ones first; shared by the exporter and the
/// stream (which adds the orgs it shows when told to collect every one).
pub type OrgMap = Arc<RwLock<IndexMap<String, Arc<Org>>>>;

/// Most orgs the stream adds by itself (when every org it shows is collected): the org ids
/// come from the network, and each org costs memory even with few sessions.
pub const MAX_STREAM_ORGS: usize = 20_000;

/// The enterprise stream and where its listing stands.
pub struct Stream {
    /// Counts the stream's requests (with the other enterprise-scope requests).
    pub api_stats: Arc<ApiStats>,
    orgs: OrgMap,
    /// Every org the stream shows is collected (neither org ids nor discovery configured).
    admit_all: bool,
    follow: Mutex<Follow>,
    listed: AtomicBool,
    dropped: AtomicU64,
    pub(super) run: Mutex<RunSlot>,
}

fn read(orgs: &OrgMap) -> std::sync::RwLockReadGuard<'_, IndexMap<String, Arc<Org>>> {
    orgs.read_locked()
}

impl Stream {
    /// A stream feeding the orgs of `orgs`; with `admit_all`, also every org it shows.
    pub fn new(orgs: OrgMap, admit_all: bool, api_stats: Arc<ApiStats>) -> Self {
        Stream {
            api_stats,
            orgs,
            admit_all,
            follow: Mutex::new(Follow::default()),
            listed: AtomicBool::new(false),
            dropped: AtomicU64::new(0),
            run: Mutex::new(RunSlot::default()),
        }
    }

    /// Whether the stream's first full listing is complete.
    pub fn listed(&self) -> bool {
        self.listed.load(Ordering::Relaxed)
    }

    /// Session items dropped on arrival: of an org not collected, or naming no usable org.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    fn orgs(&self) -> Vec<Arc<Org>> {
        read(&self.orgs).values().cloned().collect()
    }

    /// Brings every org the stream feeds up to date within `deadline`, and records how that
    /// went in each of them (`devin_up` and friends).
    pub async fn collect(
        &self,
        client: &ApiClient,
        settings: &SyncSettings,
        deadline: Instant,
        collecting: &Collecting<'_>,
    ) {
        let started = Instant::now();
        let started_wall = SystemTime::now();
        let sync = follow::sync(self, client, settings, deadline, collecting);
        let result = follow::sync_by(deadline, sync).await;
        if let Err(e) = &result {
            tracing::warn!(error = %e, "collection of the enterprise session stream failed");
        }
        for org in self.orgs() {
            org.record(&result, Scope::EnterpriseSessions, started, started_wall);
        }
    }

    /// Records a collection that ended without finishing (it panicked): every org it feeds
    /// is down.
    pub(super) fn record_abort(&self, reason: &str) {
        for org in self.orgs() {
            org.record_abort(reason);
        }
    }

    /// The org an item names, adding it when every org is collected; `None` drops the item.
    fn route(&self, org_id: Option<&str>, generation: Option<u32>) -> Option<Arc<Org>> {
        let id = org_id.filter(|id| usable_org_id(id))?;
        if let Some(org) = read(&self.orgs).get(id) {
            return Some(Arc::clone(org));
        }
        if !self.admit_all {
            return None;
        }
        let mut orgs = self.orgs.write_locked();
        if orgs.len() >= MAX_STREAM_ORGS && !orgs.contains_key(id) {
            return None;
        }
        let org = orgs.entry(id.to_string()).or_insert_with(|| {
            let org = Arc::new(Org::new(id));
            tracing::info!(org_id = id, "org found in the enterprise session stream");
            let mut st = org.state();
            // During a full listing the org completes with it; otherwise the stream has
            // shown every session it ever listed, so this org had none before: it is
            // complete from its first page on.
            st.stream_generation = generation;
            drop(st);
            org
        });
        Some(Arc::clone(org))
    }
}

impl Sink for Stream {
    fn name(&self) -> &str {
        "enterprise"
    }

    fn endpoint(&self) -> Endpoint<'_> {
        Endpoint::Enterprise
    }

    fn stats(&self) -> &ApiStats {
        &self.api_stats
    }

    fn follow(&self) -> MutexGuard<'_, Follow> {
        self.follow.locked()
    }

    fn listed(&self) -> bool {
        self.listed.load(Ordering::Relaxed)
    }

    fn is_empty(&self) -> bool {
        self.orgs().iter().all(|o| o.state().store.is_empty())
    }

    fn most_listed(&self, settings: &SyncSettings) -> u64 {
        let orgs = read(&self.orgs).len().max(1) as u64;
        settings.max_sessions_per_org.saturating_mul(orgs)
    }

    fn apply(
        &self,
        page: &SessionPage<'_>,
        generation: u32,
        cutoff: Option<i64>,
        settings: &SyncSettings,
    ) -> Result<(), ApiError> {
        let listing = self.follow().listing().map(|_| generation);
        let mut dropped = 0u64;
        let mut newcomers = Vec::new();
        for skipped in &page.skipped {
            match self.route(skipped.org_id.as_deref(), listing) {
                Some(org) => org.state().malformed.record_skipped(&org.id, skipped),
                None => dropped += 1,
            }
        }
        for item in &page.items {
            let Some(org) = self.route(item.org_id.as_deref(), listing) else {
                dropped += 1;
                continue;
            };
            let mut st = org.state();
            if st.store.is_empty() {
                st.store.set_spend_settings(settings.spend);
            }
            st.seen_in_stream = true;
            Org::apply_session(&mut st, &org.id, item, generation, cutoff);
            if st.store.len() as u64 > settings.max_sessions_per_org {
                return Err(follow::too_many(settings.max_sessions_per_org));
            }
            if self.admit_all && !st.initial_complete && st.stream_generation.is_none() {
                drop(st);
                newcomers.push(org);
            }
        }
        for org in newcomers {
            let mut st = org.state();
            if !st.initial_complete && st.stream_generation.is_none() && self.listed() {
                Org::complete_first_listing(&mut st);
            }
        }
        if dropped > 0 {
            self.dropped.fetch_add(dropped, Ordering::Relaxed);
        }
        Ok(())
    }

    fn listing_started(&self, generation: u32) {
        for org in self.orgs() {
            org.state().stream_generation = Some(generation);
        }
    }

    fn listing_complete(&self, kind: ListingKind, generation: u32, pages: u64) {
        let (mut completed, mut dropped) = (0usize, 0usize);
        for org in self.orgs() {
            let mut st = org.state();
            if st.stream_generation != Some(generation) {
                continue;
            }
            if st.initial_complete {
                dropped += st.store.drop_unseen(generation);
            } else {
                Org::complete_first_listing(&mut st);
                completed += 1;
            }
        }
        self.listed.store(true, Ordering::Relaxed);
        tracing::info!(
            ?kind,
            pages,
            orgs_completed = completed,
            dropped,
            "full listing of the enterprise session stream complete"
        );
    }

    fn discard(&self) {
        let generation = self.follow().generation();
        for org in self.orgs() {
            let mut st = org.state();
            if st.stream_generation == Some(generation) && !st.initial_complete {
                st.store = SessionStore::default();
            }
        }
    }

    fn drop_created_before(&self, cutoff: i64) {
        for org in self.orgs() {
            org.state().store.drop_created_before(cutoff);
        }
    }

    fn wants_listing(&self) -> bool {
        self.orgs().iter().any(|o| {
            let st = o.state();
            !st.initial_complete && st.stream_generation.is_none()
        })
    }
}
