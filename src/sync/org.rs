//! One org's sync: the session store, the listing in progress, the watermark, and the health
//! of its last collection.

use std::collections::{HashSet, VecDeque};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use futures::StreamExt;
use futures::stream::FuturesUnordered;
use tokio::time::Instant;

use super::listing::{Listing, ListingKind, PageSummary, Window, streams_worth_opening};
use super::malformed::Malformed;
use super::schedule::RunSlot;
use super::store::{SessionStore, Transitions};
use crate::api::client::{PageBody, server_time_at};
use crate::api::{ApiClient, ApiError, ApiStats, Organization, SessionPage};
use crate::config::SyncSettings;
use crate::lock::Locked;

/// Windows of one listing fetched at once, at most (fewer when the request budget leaves
/// no room for them: see [`streams_worth_opening`]).
const WINDOW_CONCURRENCY: usize = 8;

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
    /// Malformed sessions and fields the org's pages held.
    pub malformed: Malformed,
    listing: Option<Listing>,
    /// When the listing in progress started and what it has seen.
    listing_clock: Option<PassClock>,
    /// Newest `updated_at` known to be fully synced (server time); `None` lists from the start.
    watermark: Option<i64>,
    last_full_listing_at: Option<Instant>,
    last_deep_recheck: Option<Instant>,
    generation: u32,
}

/// Counts the org collections running now.
pub type Collecting<'a> = dyn Fn() -> usize + Sync + 'a;

/// Pages an incremental pass holds back: they are applied only once the pass
/// ends well (a cursor loop merges nothing); a longer pass (after an outage) applies as it
/// goes, so that memory stays bounded.
const HELD_PAGES: usize = 64;

/// What a pass (an incremental listing, or a full listing over several collections) needs
/// to set the watermark: when it started in server time, and the newest update it saw.
#[derive(Debug, Clone, Copy)]
struct PassClock {
    started: Instant,
    /// The local wall clock at the start: stands in for the server's only when the API
    /// sends no `Date` header at all.
    started_wall: i64,
    /// What the first answer told, if it had a `Date`: the server's time it was sent, the
    /// server's time at the pass's start (rounded towards the past) and its newest update.
    first: Option<FirstAnswer>,
    answered: bool,
    newest: Option<i64>,
}

#[derive(Debug, Clone, Copy)]
struct FirstAnswer {
    date: i64,
    start: i64,
    newest: Option<i64>,
}

impl PassClock {
    fn new() -> Self {
        PassClock {
            started: Instant::now(),
            started_wall: unix_now(),
            first: None,
            answered: false,
            newest: None,
        }
    }

    /// Notes an answer: its `Date` and the newest `updated_at` on it.
    fn observe(&mut self, server_time: Option<i64>, newest: Option<i64>) {
        if !std::mem::replace(&mut self.answered, true) {
            self.first = server_time.map(|date| FirstAnswer {
                date,
                start: server_time_at(date, Instant::now(), self.started),
                newest,
            });
        }
        self.newest = self.newest.max(newest);
    }

    /// The watermark the pass supports: the newest update it saw, but no later than the
    /// moment the first page was read (a change made after that may have been listed
    /// before it changed), and so never later than the server's clock: a session dated in
    /// the future (milliseconds, a wrong clock) cannot move the watermark past changes
    /// still to come. That moment is at least the server's time at the pass's start, and
    /// at least the newest update on the first page (when not itself in the future).
    /// With nothing seen: the server's time at the start, or no lower bound.
    fn watermark(&self) -> Option<i64> {
        self.seen().or(self.first.map(|f| f.start))
    }

    /// The watermark from the updates the pass saw alone, `None` when it saw none.
    fn seen(&self) -> Option<i64> {
        let bound = match self.first {
            Some(f) => f.start.max(f.newest.map_or(f.start, |n| n.min(f.date))),
            None => self.started_wall,
        };
        self.newest.map(|n| n.min(bound))
    }
}

impl OrgState {
    /// Windows left in the listing in progress, if any (for the landing page).
    pub fn listing_progress(&self) -> Option<(ListingKind, u64, usize)> {
        self.listing
            .as_ref()
            .map(|l| (l.kind, l.pages, l.remaining_windows()))
    }

    /// Share of the first listing done, when the API sent a `total` (for the landing page).
    pub fn initial_listing_progress(&self) -> Option<f64> {
        let listing = self.listing.as_ref()?;
        if listing.kind != ListingKind::Initial {
            return None;
        }
        listing.progress(self.store.len() as u64)
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
    #[cfg(feature = "fault-injection")]
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
        items: page.listed(),
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
        // Every wait inside honours the deadline itself (and says which one ran out); this is
        // only a backstop, a little later, for anything that would not.
        let backstop = deadline + Duration::from_millis(200);
        let result = match tokio::time::timeout_at(
            backstop,
            self.sync(client, settings, deadline, collecting),
        )
        .await
        {
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
        collecting: &Collecting<'_>,
    ) -> Result<(), ApiError> {
        // The lookback is compared with the API's `created_at`: server time. Only before
        // the API has ever sent a `Date` does the local clock stand in.
        let now = client.server_now().unwrap_or_else(unix_now);
        let cutoff = settings
            .lookback
            .map(|l| now.saturating_sub(i64::try_from(l.as_secs()).unwrap_or(i64::MAX)));
        if !self.state().initial_complete {
            self.state().store.set_spend_settings(settings.spend);
            self.start_listing(ListingKind::Initial, cutoff);
            if self
                .drive_listing(client, settings, deadline, cutoff, collecting)
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
                    .is_none_or(|t| t.elapsed() >= settings.full_resync_interval)
        };
        if resync_due {
            self.start_listing(ListingKind::Resync, cutoff);
            match self
                .drive_listing(client, settings, deadline, cutoff, collecting)
                .await
            {
                Ok(true) => self.finish_resync(),
                Ok(false) => {}
                // The data is current (the incremental pass succeeded); a re-listing that
                // ran out of time, or met a rate-limit pause, simply goes on at the next
                // collection.
                Err(ApiError::Deadline | ApiError::RateLimited { .. }) => {
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

    fn start_listing(&self, kind: ListingKind, cutoff: Option<i64>) {
        let mut st = self.state();
        if st.listing.is_none() {
            st.generation = st.generation.wrapping_add(1);
            let generation = st.generation;
            st.listing = Some(Listing::new(kind, generation, cutoff));
            st.listing_clock = Some(PassClock::new());
            tracing::info!(org_id = %self.id, ?kind, "full listing started");
        }
    }

    fn finish_initial(&self) {
        let mut st = self.state();
        let Some(listing) = st.listing.take() else {
            return;
        };
        let clock = st.listing_clock.take().unwrap_or_else(PassClock::new);
        // Sessions changed while a (possibly multi-scrape) listing ran may have been listed
        // before the change: the watermark is no later than the listing's start.
        st.watermark = clock.watermark();
        st.last_full_listing_at = Some(clock.started);
        st.last_deep_recheck = Some(clock.started);
        st.initial_complete = true;
        st.store.start_counters();
        st.store.start_spend_counters();
        st.store.shrink_to_fit();
        tracing::info!(org_id = %self.id, sessions = st.store.len(), pages = listing.pages, "first listing complete");
    }

    fn finish_resync(&self) {
        let mut st = self.state();
        let Some(listing) = st.listing.take() else {
            return;
        };
        let dropped = st.store.drop_unseen(listing.generation);
        let clock = st.listing_clock.take().unwrap_or_else(PassClock::new);
        // What this listing saw replaces the watermark, whatever moved it before.
        st.watermark = clock.watermark();
        st.last_full_listing_at = Some(clock.started);
        st.last_deep_recheck = Some(clock.started);
        tracing::info!(org_id = %self.id, dropped, pages = listing.pages, "full re-listing complete");
    }

    /// Applies a page's sessions, skipping those older than the lookback window, and counts
    /// what was malformed on it. Fails when the org holds more sessions than allowed.
    fn apply(
        &self,
        page: &SessionPage<'_>,
        cutoff: Option<i64>,
        max_sessions: u64,
    ) -> Result<(), ApiError> {
        let mut st = self.state();
        st.malformed.record(&self.id, page);
        let generation = st.generation;
        let transitions = if st.initial_complete {
            Transitions::Counted
        } else {
            Transitions::Ignored
        };
        for item in &page.items {
            if cutoff.is_some_and(|c| item.created_at < c) {
                continue;
            }
            st.store.upsert(item, generation, transitions);
        }
        if st.store.len() as u64 > max_sessions {
            return Err(too_many(max_sessions));
        }
        Ok(())
    }

    /// Drops the listing in progress after the API broke its contract: nothing more of it
    /// is applied, and a first listing starts over.
    fn abandon_listing(&self, error: ApiError) -> ApiError {
        let mut st = self.state();
        if st
            .listing
            .take()
            .is_some_and(|l| l.kind == ListingKind::Initial)
        {
            st.store = SessionStore::default();
        }
        st.listing_clock = None;
        error
    }

    /// Lists the windows of the listing in progress until it completes (`Ok(true)`) or the
    /// deadline comes after some progress (`Ok(false)`; the next collection resumes it).
    async fn drive_listing(
        &self,
        client: &ApiClient,
        settings: &SyncSettings,
        deadline: Instant,
        cutoff: Option<i64>,
        collecting: &Collecting<'_>,
    ) -> Result<bool, ApiError> {
        let mut queue: VecDeque<_> = match &self.state().listing {
            Some(l) => l.pending().into(),
            None => return Ok(true),
        };
        let mut inflight = FuturesUnordered::new();
        let mut pages = 0u64;
        loop {
            while inflight.len() < WINDOW_CONCURRENCY {
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
            pages += 1;
            let summary = summarize(&page);
            let now = client.server_now().unwrap_or_else(unix_now);
            // Round trips measured on the org's own requests (this page's included).
            let streams = streams_worth_opening(
                settings.max_requests_per_second,
                settings.max_concurrent_requests,
                self.api_stats.mean_latency(),
                collecting(),
                WINDOW_CONCURRENCY,
            );
            let advanced = {
                let mut st = self.state();
                if let Some(clock) = st.listing_clock.as_mut() {
                    clock.observe(
                        body.server_time(),
                        page.items.iter().map(|s| s.updated_at).max(),
                    );
                }
                match st.listing.as_mut() {
                    Some(listing) => listing
                        .advance(id, &summary, settings.page_size, now, streams)
                        .map_err(|e| ApiError::Protocol(e.to_string()))
                        .and_then(|next| {
                            if listing.items > settings.max_sessions_per_org {
                                Err(too_many(settings.max_sessions_per_org))
                            } else {
                                Ok(next)
                            }
                        }),
                    None => Ok(Vec::new()),
                }
            };
            // A page that breaks the contract is not applied, and nor is the rest.
            let next = advanced.map_err(|e| self.abandon_listing(e))?;
            self.apply(&page, cutoff, settings.max_sessions_per_org)
                .map_err(|e| self.abandon_listing(e))?;
            queue.extend(next);
        }
        Ok(self.state().listing.as_ref().is_none_or(Listing::is_done))
    }

    /// Lists the sessions updated since a second before the watermark, all pages; every
    /// `deep_recheck_interval`, since the full overlap before it instead (late indexing).
    /// An org holding no sessions is listed in full instead (within the lookback): that
    /// costs the same one request, and needs no watermark, which with nothing seen could
    /// only come from `Date` and so be ahead of the sessions' own clock.
    async fn incremental(
        &self,
        client: &ApiClient,
        settings: &SyncSettings,
        deadline: Instant,
        cutoff: Option<i64>,
    ) -> Result<(), ApiError> {
        let (watermark, deep, empty) = {
            let st = self.state();
            let deep = st
                .last_deep_recheck
                .is_none_or(|t| t.elapsed() >= settings.deep_recheck_interval);
            (st.watermark, deep, st.store.is_empty())
        };
        // One second back covers both bound semantics: a strict `updated_after` still
        // returns a session changed again within the watermark's second.
        let back = if deep {
            i64::try_from(settings.sync_overlap.as_secs())
                .unwrap_or(i64::MAX)
                .max(1)
        } else {
            1
        };
        let mut query = if empty {
            let all = Window {
                lo: cutoff,
                hi: None,
                cursor: None,
                depth: 0,
            };
            all.query(settings.page_size)
        } else {
            crate::api::ListQuery {
                first: settings.page_size,
                updated_after: watermark.map(|w| w.saturating_sub(back)),
                ..Default::default()
            }
        };
        let mut pass = PassClock::new();
        let mut cursors = HashSet::new();
        let mut items = 0u64;
        // Pages held until the pass ends; `None` once the pass is too long to hold.
        let mut held: Option<Vec<PageBody>> = Some(Vec::new());
        loop {
            let body = client
                .list_sessions(&self.id, &query, deadline, &self.api_stats)
                .await?;
            let next = {
                let page = body.parse()?;
                // Watermark from every item, also those outside the lookback window.
                pass.observe(
                    body.server_time(),
                    page.items.iter().map(|s| s.updated_at).max(),
                );
                items = items.saturating_add(page.listed() as u64);
                if items > settings.max_sessions_per_org {
                    return Err(too_many(settings.max_sessions_per_org));
                }
                next_cursor(&page, &mut cursors)?
            };
            match held.as_mut() {
                Some(pages) if pages.len() < HELD_PAGES => pages.push(body),
                Some(_) => {
                    for page in held.take().into_iter().flatten().chain([body]) {
                        self.apply(&page.parse()?, cutoff, settings.max_sessions_per_org)?;
                    }
                }
                None => self.apply(&body.parse()?, cutoff, settings.max_sessions_per_org)?,
            }
            match next {
                Some(cursor) => query.after = Some(cursor),
                None => break,
            }
        }
        for page in held.into_iter().flatten() {
            self.apply(&page.parse()?, cutoff, settings.max_sessions_per_org)?;
        }
        // Only a complete pass may move the watermark: an interrupted one is redone.
        let mut st = self.state();
        if empty {
            // A full listing: what it saw replaces the watermark, as a re-listing's does.
            st.watermark = pass.seen();
        } else if let Some(seen) = pass.watermark() {
            let mut watermark = st.watermark.map_or(seen, |w| w.max(seen));
            // Nor may it stay beyond the server's clock (should that clock be set back).
            if let Some(now) = client.server_now() {
                watermark = watermark.min(now);
            }
            st.watermark = Some(watermark);
        }
        if deep || empty {
            st.last_deep_recheck = Some(pass.started);
        }
        Ok(())
    }
}

/// The cursor of the page after `page`, if any. A page that promises more without a cursor,
/// or a cursor this pass has been sent before, is an API error: following it would loop.
fn next_cursor(
    page: &SessionPage<'_>,
    seen: &mut HashSet<String>,
) -> Result<Option<String>, ApiError> {
    if !page.has_next_page {
        return Ok(None);
    }
    let Some(cursor) = page.end_cursor.clone() else {
        return Err(ApiError::Protocol(
            "has_next_page is true but end_cursor is null".into(),
        ));
    };
    if !seen.insert(cursor.clone()) {
        return Err(ApiError::Protocol(format!(
            "end_cursor {cursor:?} repeated: the API's pagination loops"
        )));
    }
    Ok(Some(cursor))
}

fn too_many(max: u64) -> ApiError {
    ApiError::Protocol(format!(
        "more than {max} sessions (DEVIN_MAX_SESSIONS_PER_ORG)"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::model::MAX_UNIX;

    #[test]
    fn pass_watermark_never_passes_the_first_pages_moment() {
        // One page: its newest update.
        let mut p = PassClock::new();
        p.observe(Some(1_000), Some(990));
        assert_eq!(p.watermark(), Some(990));
        // A session dated in the future: held at the server's clock.
        let mut p = PassClock::new();
        p.observe(Some(1_000), Some(MAX_UNIX));
        assert_eq!(p.watermark(), Some(1_000));
        // Later pages cannot lift it past the first page's moment.
        let mut p = PassClock::new();
        p.observe(Some(1_000), Some(990));
        p.observe(Some(1_005), Some(1_004));
        assert!(p.watermark().is_some_and(|w| (999..=1_000).contains(&w)));
        // Nothing seen: the server's time at the start (rounded towards the past).
        let mut p = PassClock::new();
        p.observe(Some(1_000), None);
        assert!(p.watermark().is_some_and(|w| (999..=1_000).contains(&w)));
        // ... which a pass that goes by what it saw does not take.
        assert_eq!(p.seen(), None);
        // No `Date` and nothing seen: no lower bound.
        let mut p = PassClock::new();
        p.observe(None, None);
        assert_eq!(p.watermark(), None);
    }
}
