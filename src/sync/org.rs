//! One org's sync: the session store, the listing in progress, the watermark, and the health
//! of its last collection.

use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, SystemTime};

use tokio::time::Instant;

use super::follow::{self, Endpoint, Follow, Sink};
use super::listing::ListingKind;
use super::malformed::Malformed;
use super::schedule::RunSlot;
use super::store::{SessionStore, Transitions};
use crate::api::explain::Scope;
use crate::api::{ApiClient, ApiError, ApiStats, Organization, SessionPage};
use crate::config::SyncSettings;
use crate::lock::Locked;

pub use super::follow::Collecting;

/// Outcome of the org's collections, for `devin_up` and friends.
#[derive(Debug, Clone, Default)]
pub struct Health {
    /// Whether the last collection succeeded; `None` before the first.
    pub up: Option<bool>,
    /// How long the last collection took.
    pub last_duration: Option<Duration>,
    /// When the last collection started.
    pub last_attempt: Option<SystemTime>,
    /// When a collection last succeeded.
    pub last_success: Option<SystemTime>,
    /// Why the last collection failed.
    pub last_error: Option<String>,
    /// Which request `last_error` came from: what to do about it depends on it (the
    /// enterprise stream needs another permission than the org's own listing).
    pub error_scope: Option<Scope>,
}

/// Everything known about one org, behind the org's lock.
#[derive(Debug, Default)]
pub struct OrgState {
    /// The org's sessions.
    pub store: SessionStore,
    /// True once the first full listing has completed; metrics of the org appear from then on.
    pub initial_complete: bool,
    /// Health of the collections.
    pub health: Health,
    /// Malformed sessions and fields the org's pages held.
    pub malformed: Malformed,
    /// The org's first listing or re-listing in progress, for the landing page: its kind,
    /// pages so far and the share done (when the API sent a `total`).
    pub listing: Option<(ListingKind, u64, Option<f64>)>,
    /// Fed by the enterprise stream: the generation of the stream's full listing that
    /// covers the org (it began while the org was collected), `None` until one does.
    pub(super) stream_generation: Option<u32>,
    /// Whether the enterprise stream has listed a session of the org.
    pub(super) seen_in_stream: bool,
    /// Why the org's own one-page check failed (a configured org the stream never showed).
    pub(super) check_error: Option<String>,
}

/// One configured or discovered organization.
pub struct Org {
    /// The org id.
    pub id: String,
    /// Unique per `Org` value in this process (an org dropped and found again gets a new one).
    pub instance: u64,
    /// API request counts and latencies of this org.
    pub api_stats: ApiStats,
    state: Mutex<OrgState>,
    follow: Mutex<Follow>,
    info: Mutex<Option<Organization>>,
    pub(super) run: Mutex<RunSlot>,
    #[cfg(feature = "fault-injection")]
    panic_next: std::sync::atomic::AtomicBool,
}

impl Org {
    /// An org with no state yet.
    pub fn new(id: impl Into<String>) -> Self {
        let id = id.into();
        static INSTANCES: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        Org {
            instance: INSTANCES.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
            api_stats: ApiStats::new(&id),
            id,
            state: Mutex::new(OrgState::default()),
            follow: Mutex::new(Follow::default()),
            info: Mutex::new(None),
            run: Mutex::new(RunSlot::default()),
            #[cfg(feature = "fault-injection")]
            panic_next: std::sync::atomic::AtomicBool::new(false),
        }
    }

    /// Name and limits from discovery, if the org was discovered.
    pub fn info(&self) -> Option<Organization> {
        self.info.locked().clone()
    }

    /// Records what discovery said of the org.
    pub fn set_info(&self, info: Organization) {
        *self.info.locked() = Some(info);
    }

    /// Records a collection that ended without finishing (it panicked): the org is down.
    pub(super) fn record_abort(&self, reason: &str) {
        tracing::error!(org_id = %self.id, reason, "collection of org failed");
        let mut st = self.state();
        st.health.up = Some(false);
        st.health.last_error = Some(reason.to_string());
        st.health.error_scope = None;
    }

    /// Marks an org none of whose collections has finished yet as down, so that it shows up
    /// as such rather than not at all; its first finished collection replaces this.
    pub fn note_not_collected_yet(&self) {
        let mut st = self.state();
        if st.health.up.is_none() {
            st.health.up = Some(false);
            st.health.last_error = Some("first collection not finished yet".to_string());
            st.health.error_scope = None;
        }
    }

    /// Makes the org's next collection panic. A fault-injection seam, compiled only for the
    /// tests: they use it to prove that a collection that dies, however it dies, leaves the
    /// org down and collectable.
    #[cfg(feature = "fault-injection")]
    pub fn panic_next_collection(&self) {
        self.panic_next
            .store(true, std::sync::atomic::Ordering::Relaxed);
    }

    /// The org's state. Held only for short, non-async sections.
    pub fn state(&self) -> MutexGuard<'_, OrgState> {
        self.state.locked()
    }

    /// Brings the org's state up to date within `deadline` and records how that went.
    /// `collecting` counts the org collections running at the time it is called (this one
    /// included), which share the request budget.
    pub async fn collect(
        &self,
        client: &ApiClient,
        settings: &SyncSettings,
        deadline: Instant,
        collecting: &Collecting<'_>,
    ) {
        #[cfg(feature = "fault-injection")]
        if self
            .panic_next
            .swap(false, std::sync::atomic::Ordering::Relaxed)
        {
            panic!("injected fault in the collection of {}", self.id);
        }
        let started = Instant::now();
        let started_wall = SystemTime::now();
        let sync = self.sync(client, settings, deadline, collecting);
        let result = follow::sync_by(deadline, sync).await;
        self.record(&result, Scope::OrgSessions, started, started_wall);
    }

    /// Whether the enterprise stream has listed a session of the org.
    pub fn seen_in_stream(&self) -> bool {
        self.state().seen_in_stream
    }

    /// Records the result of the org's own one-page check: an error keeps the org down
    /// with it until a check succeeds.
    pub fn set_check_result(&self, error: Option<ApiError>) {
        let mut st = self.state();
        match error {
            Some(e) => {
                tracing::warn!(org_id = %self.id, error = %e, "org not readable: the enterprise stream never showed it and its own listing fails");
                let e = e.to_string();
                st.health.up = Some(false);
                st.health.last_error = Some(e.clone());
                st.health.error_scope = Some(Scope::OrgSessions);
                st.check_error = Some(e);
            }
            None => st.check_error = None,
        }
    }

    /// Records how a collection that fed the org went (from the listing of `scope`):
    /// `devin_up` and friends, and what the landing page says. An org whose own check
    /// failed stays down with its reason.
    pub(super) fn record(
        &self,
        result: &Result<(), ApiError>,
        scope: Scope,
        started: Instant,
        started_wall: SystemTime,
    ) {
        let listing = self.listing_state();
        let mut st = self.state();
        st.listing = listing;
        st.health.last_attempt = Some(started_wall);
        st.health.last_duration = Some(started.elapsed());
        let error = match (result, &st.check_error) {
            (Err(e), _) => Some((e.to_string(), scope)),
            (Ok(()), Some(check)) => Some((check.clone(), Scope::OrgSessions)),
            (Ok(()), None) => None,
        };
        match error {
            None => {
                st.health.up = Some(true);
                st.health.last_success = Some(SystemTime::now());
                st.health.last_error = None;
                st.health.error_scope = None;
            }
            Some((e, scope)) => {
                tracing::warn!(org_id = %self.id, error = %e, "collection of org failed");
                st.health.up = Some(false);
                st.health.last_error = Some(e);
                st.health.error_scope = Some(scope);
            }
        }
    }

    /// The org's own listing in progress, as [`OrgState::listing`] shows it.
    fn listing_state(&self) -> Option<(ListingKind, u64, Option<f64>)> {
        let sessions = self.state().store.len() as u64;
        let f = self.follow();
        let l = f.listing()?;
        let done = (l.kind == ListingKind::Initial)
            .then(|| l.progress(sessions))
            .flatten();
        Some((l.kind, l.pages, done))
    }

    async fn sync(
        &self,
        client: &ApiClient,
        settings: &SyncSettings,
        deadline: Instant,
        collecting: &Collecting<'_>,
    ) -> Result<(), ApiError> {
        if !self.state().initial_complete {
            self.state().store.set_spend_settings(settings.spend);
        }
        follow::sync(self, client, settings, deadline, collecting).await
    }

    fn follow(&self) -> MutexGuard<'_, Follow> {
        self.follow.locked()
    }

    /// Applies one session of a page (the org's own, or the enterprise stream's): created
    /// before `cutoff` it is skipped; its malformed fields are counted either way.
    pub(super) fn apply_session(
        st: &mut OrgState,
        org_id: &str,
        item: &crate::api::Session<'_>,
        generation: u32,
        cutoff: Option<i64>,
    ) {
        st.malformed.record_session(org_id, item);
        if cutoff.is_some_and(|c| item.created_at < c) {
            return;
        }
        let transitions = if st.initial_complete {
            Transitions::Counted
        } else {
            Transitions::Ignored
        };
        st.store.upsert(item, generation, transitions);
    }

    /// Makes the org's session metrics appear: its first listing is complete, and the
    /// counters start at zero.
    pub(super) fn complete_first_listing(st: &mut OrgState) {
        st.initial_complete = true;
        st.store.start_counters();
        st.store.start_spend_counters();
        st.store.shrink_to_fit();
    }
}

impl Sink for Org {
    fn name(&self) -> &str {
        &self.id
    }

    fn endpoint(&self) -> Endpoint<'_> {
        Endpoint::Org(&self.id)
    }

    fn stats(&self) -> &ApiStats {
        &self.api_stats
    }

    fn follow(&self) -> MutexGuard<'_, Follow> {
        Org::follow(self)
    }

    fn listed(&self) -> bool {
        self.state().initial_complete
    }

    fn is_empty(&self) -> bool {
        self.state().store.is_empty()
    }

    fn most_listed(&self, settings: &SyncSettings) -> u64 {
        settings.max_sessions_per_org
    }

    fn apply(
        &self,
        page: &SessionPage<'_>,
        generation: u32,
        cutoff: Option<i64>,
        settings: &SyncSettings,
    ) -> Result<(), ApiError> {
        let mut st = self.state();
        for skipped in &page.skipped {
            st.malformed.record_skipped(&self.id, skipped);
        }
        for item in &page.items {
            Org::apply_session(&mut st, &self.id, item, generation, cutoff);
        }
        if st.store.len() as u64 > settings.max_sessions_per_org {
            return Err(follow::too_many(settings.max_sessions_per_org));
        }
        drop(st);
        // The landing page shows a first listing's progress page by page.
        let listing = self.listing_state();
        self.state().listing = listing;
        Ok(())
    }

    fn listing_complete(&self, kind: ListingKind, generation: u32, pages: u64) {
        let mut st = self.state();
        match kind {
            // A first listing left over from before the enterprise stream completed the org
            // ends as a re-listing.
            ListingKind::Initial if !st.initial_complete => {
                Org::complete_first_listing(&mut st);
                tracing::info!(org_id = %self.id, sessions = st.store.len(), pages, "first listing complete");
            }
            _ => {
                let dropped = st.store.drop_unseen(generation);
                tracing::info!(org_id = %self.id, dropped, pages, "full re-listing complete");
            }
        }
    }

    fn discard(&self) {
        self.state().store = SessionStore::default();
    }

    fn drop_created_before(&self, cutoff: i64) {
        let dropped = self.state().store.drop_created_before(cutoff);
        if dropped > 0 {
            tracing::debug!(org_id = %self.id, dropped, "sessions left the lookback window");
        }
    }
}
