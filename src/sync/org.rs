//! One org's sync: the session store, the listing in progress, the watermark, and the health
//! of its last collection.

use std::collections::VecDeque;
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use futures::StreamExt;
use futures::stream::FuturesUnordered;
use tokio::time::Instant;

use super::listing::{Listing, ListingKind, PageSummary};
use super::schedule::RunSlot;
use super::store::SessionStore;
use crate::api::{ApiClient, ApiError, Organization, Session, SessionPage};
use crate::metrics::ApiStats;

/// Knobs of the sync, from the configuration.
#[derive(Debug, Clone)]
pub struct SyncSettings {
    /// `first` of every request.
    pub page_size: u32,
    /// Incremental listings start this long before the watermark.
    pub overlap: Duration,
    /// How often the org is listed in full again.
    pub full_resync_interval: Duration,
    /// Keep only sessions created within this window.
    pub lookback: Option<Duration>,
    /// Windows of one listing fetched at once.
    pub window_concurrency: usize,
    /// Org collections allowed to run at once, across the process.
    pub collection_limit: usize,
    /// Shortest budget of a collection, however little time the scrape that asked for it has.
    pub collection_floor: Duration,
}

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
    listing: Option<Listing>,
    /// Newest `updated_at` known to be fully synced (server time).
    watermark: Option<i64>,
    last_full_listing_at: Option<i64>,
    generation: u32,
}

impl OrgState {
    /// Windows left in the listing in progress, if any (for the landing page).
    pub fn listing_progress(&self) -> Option<(ListingKind, u64, usize)> {
        self.listing
            .as_ref()
            .map(|l| (l.kind, l.pages, l.remaining_windows()))
    }
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
    info: Mutex<Option<Organization>>,
    pub(super) run: Mutex<RunSlot>,
    panic_next: std::sync::atomic::AtomicBool,
}

fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

fn summarize(page: &SessionPage<'_>) -> PageSummary {
    let created_range = page.items.iter().fold(None, |acc: Option<(i64, i64)>, s| {
        Some(acc.map_or((s.created_at, s.created_at), |(lo, hi)| {
            (lo.min(s.created_at), hi.max(s.created_at))
        }))
    });
    PageSummary {
        items: page.items.len(),
        has_next_page: page.has_next_page,
        end_cursor: page.end_cursor.clone(),
        total: page.total,
        created_range,
    }
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
            info: Mutex::new(None),
            run: Mutex::new(RunSlot::default()),
            panic_next: std::sync::atomic::AtomicBool::new(false),
        }
    }

    /// Name and limits from discovery, if the org was discovered.
    pub fn info(&self) -> Option<Organization> {
        self.info.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Records what discovery said of the org.
    pub fn set_info(&self, info: Organization) {
        *self.info.lock().unwrap_or_else(|e| e.into_inner()) = Some(info);
    }

    /// Records a collection that ended without finishing (it panicked): the org is down.
    pub(super) fn record_abort(&self, reason: &str) {
        tracing::error!(org_id = %self.id, reason, "collection of org failed");
        let mut st = self.state();
        st.health.up = Some(false);
        st.health.last_error = Some(reason.to_string());
    }

    /// Marks an org none of whose collections has finished yet as down, so that it shows up
    /// as such rather than not at all; its first finished collection replaces this.
    pub fn note_not_collected_yet(&self) {
        let mut st = self.state();
        if st.health.up.is_none() {
            st.health.up = Some(false);
            st.health.last_error = Some("first collection not finished yet".to_string());
        }
    }

    /// Makes the org's next collection panic. A fault-injection seam: tests use it to prove
    /// that a collection that dies, however it dies, leaves the org down and collectable.
    #[doc(hidden)]
    pub fn panic_next_collection(&self) {
        self.panic_next
            .store(true, std::sync::atomic::Ordering::Relaxed);
    }

    /// The org's state. Held only for short, non-async sections.
    pub fn state(&self) -> MutexGuard<'_, OrgState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Brings the org's state up to date within `deadline` and records how that went.
    pub async fn collect(&self, client: &ApiClient, settings: &SyncSettings, deadline: Instant) {
        if self
            .panic_next
            .swap(false, std::sync::atomic::Ordering::Relaxed)
        {
            panic!("injected fault in the collection of {}", self.id);
        }
        let started = Instant::now();
        let started_wall = SystemTime::now();
        // Every wait inside honours the deadline itself (and says which one ran out); this is
        // only a backstop, a little later, for anything that would not.
        let backstop = deadline + Duration::from_millis(200);
        let result =
            match tokio::time::timeout_at(backstop, self.sync(client, settings, deadline)).await {
                Ok(r) => r,
                Err(_) => Err(ApiError::Deadline),
            };
        let mut st = self.state();
        st.health.last_attempt = Some(started_wall);
        st.health.last_duration = Some(started.elapsed());
        match result {
            Ok(()) => {
                st.health.up = Some(true);
                st.health.last_success = Some(SystemTime::now());
                st.health.last_error = None;
            }
            Err(e) => {
                tracing::warn!(org_id = %self.id, error = %e, "collection of org failed");
                st.health.up = Some(false);
                st.health.last_error = Some(e.to_string());
            }
        }
    }

    async fn sync(
        &self,
        client: &ApiClient,
        settings: &SyncSettings,
        deadline: Instant,
    ) -> Result<(), ApiError> {
        let now = unix_now();
        let cutoff = settings.lookback.map(|l| now - l.as_secs() as i64);
        if !self.state().initial_complete {
            self.start_listing(ListingKind::Initial, cutoff, now);
            if self
                .drive_listing(client, settings, deadline, cutoff)
                .await?
            {
                self.finish_initial();
            }
            return Ok(());
        }
        self.incremental(client, settings, deadline, cutoff).await?;
        let resync_due = {
            let st = self.state();
            st.listing.is_some()
                || st
                    .last_full_listing_at
                    .is_none_or(|t| now - t >= settings.full_resync_interval.as_secs() as i64)
        };
        if resync_due {
            self.start_listing(ListingKind::Resync, cutoff, now);
            match self.drive_listing(client, settings, deadline, cutoff).await {
                Ok(true) => self.finish_resync(),
                Ok(false) => {}
                // The data is current (the incremental pass succeeded); a re-listing that
                // ran out of time simply goes on at the next collection.
                Err(ApiError::Deadline) => {
                    tracing::debug!(org_id = %self.id, "full re-listing continues next collection")
                }
                Err(e) => return Err(e),
            }
        }
        if let Some(cutoff) = cutoff {
            let dropped = self.state().store.drop_created_before(cutoff);
            if dropped > 0 {
                tracing::debug!(org_id = %self.id, dropped, "sessions left the lookback window");
            }
        }
        Ok(())
    }

    fn start_listing(&self, kind: ListingKind, cutoff: Option<i64>, now: i64) {
        let mut st = self.state();
        if st.listing.is_none() {
            st.generation += 1;
            let generation = st.generation;
            st.listing = Some(Listing::new(kind, generation, cutoff, now));
            tracing::info!(org_id = %self.id, ?kind, "full listing started");
        }
    }

    fn finish_initial(&self) {
        let mut st = self.state();
        let Some(listing) = st.listing.take() else {
            return;
        };
        // Sessions changed while a (possibly multi-scrape) listing ran may have been listed
        // before the change: start incremental listings no later than the listing's start.
        let watermark = st
            .store
            .newest_update()
            .map_or(listing.started_at, |n| n.min(listing.started_at));
        st.watermark = Some(watermark);
        st.last_full_listing_at = Some(listing.started_at);
        st.initial_complete = true;
        st.store.start_counters();
        st.store.shrink_to_fit();
        tracing::info!(org_id = %self.id, sessions = st.store.len(), pages = listing.pages, "first listing complete");
    }

    fn finish_resync(&self) {
        let mut st = self.state();
        let Some(listing) = st.listing.take() else {
            return;
        };
        let dropped = st.store.drop_unseen(listing.generation);
        st.last_full_listing_at = Some(listing.started_at);
        tracing::info!(org_id = %self.id, dropped, pages = listing.pages, "full re-listing complete");
    }

    /// Applies listed sessions, skipping those older than the lookback window.
    fn apply(&self, items: &[Session<'_>], cutoff: Option<i64>) -> Option<i64> {
        let mut st = self.state();
        let generation = st.generation;
        let count_transitions = st.initial_complete;
        let mut newest = None;
        for item in items {
            if cutoff.is_some_and(|c| item.created_at < c) {
                continue;
            }
            st.store.upsert(item, generation, count_transitions);
            newest = newest.max(Some(item.updated_at));
        }
        newest
    }

    /// Lists the windows of the listing in progress until it completes (`Ok(true)`) or the
    /// deadline comes after some progress (`Ok(false)`; the next collection resumes it).
    async fn drive_listing(
        &self,
        client: &ApiClient,
        settings: &SyncSettings,
        deadline: Instant,
        cutoff: Option<i64>,
    ) -> Result<bool, ApiError> {
        let mut queue: VecDeque<_> = match &self.state().listing {
            Some(l) => l.pending().into(),
            None => return Ok(true),
        };
        let mut inflight = FuturesUnordered::new();
        let mut pages = 0u64;
        loop {
            while inflight.len() < settings.window_concurrency.max(1) {
                let Some((id, window)) = queue.pop_front() else {
                    break;
                };
                let query = window.query(settings.page_size);
                inflight.push(async move {
                    let result = client
                        .list_sessions(&self.id, &query, deadline, &self.api_stats)
                        .await;
                    (id, result)
                });
            }
            let Some((id, result)) = inflight.next().await else {
                break;
            };
            let body = match result {
                Ok(body) => body,
                // Pages applied so far are kept; the listing resumes at the next collection.
                Err(ApiError::Deadline) if pages > 0 => return Ok(false),
                Err(e) => return Err(e),
            };
            let page = body.parse()?;
            self.apply(&page.items, cutoff);
            pages += 1;
            let summary = summarize(&page);
            let mut st = self.state();
            if let Some(listing) = st.listing.as_mut() {
                queue.extend(listing.advance(id, &summary, settings.page_size, unix_now()));
            }
        }
        Ok(self.state().listing.as_ref().is_none_or(Listing::is_done))
    }

    /// Lists the sessions updated since the watermark (minus the overlap), all pages.
    async fn incremental(
        &self,
        client: &ApiClient,
        settings: &SyncSettings,
        deadline: Instant,
        cutoff: Option<i64>,
    ) -> Result<(), ApiError> {
        let watermark = self.state().watermark.unwrap_or(0);
        let mut query = crate::api::ListQuery {
            first: settings.page_size,
            updated_after: Some(watermark - settings.overlap.as_secs() as i64),
            ..Default::default()
        };
        let mut newest = None;
        loop {
            let body = client
                .list_sessions(&self.id, &query, deadline, &self.api_stats)
                .await?;
            let page = body.parse()?;
            // Watermark from every item, also those outside the lookback window.
            newest = newest.max(page.items.iter().map(|s| s.updated_at).max());
            self.apply(&page.items, cutoff);
            match page.end_cursor {
                Some(cursor) if page.has_next_page => query.after = Some(cursor),
                _ => break,
            }
        }
        // Only a complete pass may move the watermark: an interrupted one is redone.
        if let Some(newest) = newest {
            let mut st = self.state();
            st.watermark = Some(st.watermark.map_or(newest, |w| w.max(newest)));
        }
        Ok(())
    }
}
