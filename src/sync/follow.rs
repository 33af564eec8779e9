//! Following a listing of sessions over time, whatever it lists (one org's sessions, or the
//! enterprise's stream of every org's): the windowed, resumable first listing, incremental
//! passes from a server-time watermark, the deep re-check and the periodic full re-listing
//! that drops deleted sessions. What the pages are applied to is the [`Sink`]'s business.

use std::collections::{HashSet, VecDeque};
use std::sync::MutexGuard;
use std::time::{SystemTime, UNIX_EPOCH};

use futures::StreamExt;
use futures::stream::FuturesUnordered;
use tokio::time::Instant;

use super::listing::{Listing, ListingKind, PageSummary, Window, streams_worth_opening};
use crate::api::client::{PageBody, server_time_at};
use crate::api::{ApiClient, ApiError, ApiStats, ListQuery, SessionPage};
use crate::config::SyncSettings;

/// Windows of one listing fetched at once, at most (fewer when the request budget leaves
/// no room for them: see [`streams_worth_opening`]).
const WINDOW_CONCURRENCY: usize = 8;

/// Counts the collections running now.
pub type Collecting<'a> = dyn Fn() -> usize + Sync + 'a;

/// Which listing a sink follows.
#[derive(Debug, Clone, Copy)]
pub enum Endpoint<'a> {
    /// `GET /v3/organizations/{org_id}/sessions`.
    Org(&'a str),
    /// `GET /v3/enterprise/sessions`.
    Enterprise,
}

/// Where the pages of a followed listing go, and what it tells about them.
pub trait Sink: Sync {
    /// Names it in log lines (`org_id`, or `enterprise`).
    fn name(&self) -> &str;
    /// The listing it follows.
    fn endpoint(&self) -> Endpoint<'_>;
    /// Counts its requests.
    fn stats(&self) -> &ApiStats;
    /// Where the listing stands.
    fn follow(&self) -> MutexGuard<'_, Follow>;
    /// Whether its first full listing is complete.
    fn listed(&self) -> bool;
    /// Whether it holds no session at all.
    fn is_empty(&self) -> bool;
    /// Most items one pass or listing may return before it fails.
    fn most_listed(&self, settings: &SyncSettings) -> u64;
    /// Applies a page: every session created at or after `cutoff` is stamped `generation`.
    fn apply(
        &self,
        page: &SessionPage<'_>,
        generation: u32,
        cutoff: Option<i64>,
        settings: &SyncSettings,
    ) -> Result<(), ApiError>;
    /// A full listing of `generation` begins (not when one resumes).
    fn listing_started(&self, _generation: u32) {}
    /// A full listing of `kind` and `generation` completed: a first one makes the metrics
    /// appear, a re-listing drops what it did not see.
    fn listing_complete(&self, kind: ListingKind, generation: u32, pages: u64);
    /// A first listing was abandoned: forget what it applied.
    fn discard(&self);
    /// Drops the sessions created before `cutoff` (the lookback window).
    fn drop_created_before(&self, cutoff: i64);
    /// Whether a full re-listing is due now whatever its interval says (an org waits for one).
    fn wants_listing(&self) -> bool {
        false
    }
}

/// Where one followed listing stands: the full listing in progress, the watermark, when the
/// last full listing and deep re-check ran.
#[derive(Debug, Default)]
pub struct Follow {
    listing: Option<Listing>,
    /// When the listing in progress started and what it has seen.
    listing_clock: Option<PassClock>,
    /// Newest `updated_at` known to be fully synced (server time); `None` lists from the start.
    watermark: Option<i64>,
    last_full_listing_at: Option<Instant>,
    last_deep_recheck: Option<Instant>,
    generation: u32,
}

impl Follow {
    /// The full listing in progress, if any.
    pub fn listing(&self) -> Option<&Listing> {
        self.listing.as_ref()
    }

    /// Generation stamped on the sessions by the full listing in progress (or the last one).
    pub fn generation(&self) -> u32 {
        self.generation
    }
}

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

/// [`sync`] with a backstop: every wait inside honours the deadline itself (and says which
/// one ran out); this only ends, a little later, anything that would not.
pub async fn sync_by<F: Future<Output = Result<(), ApiError>>>(
    deadline: Instant,
    sync: F,
) -> Result<(), ApiError> {
    let backstop = deadline + std::time::Duration::from_millis(200);
    tokio::time::timeout_at(backstop, sync)
        .await
        .unwrap_or(Err(ApiError::Deadline))
}

/// Brings `sink` up to date within `deadline`: its first listing (resumed where the last
/// collection left it), else an incremental pass and, when due, a full re-listing.
/// `collecting` counts the collections running at the time (this one included), which
/// share the request budget.
pub async fn sync<S: Sink>(
    sink: &S,
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
    if !sink.listed() {
        start_listing(sink, ListingKind::Initial, cutoff);
        if drive_listing(sink, client, settings, deadline, cutoff, collecting).await? {
            finish_listing(sink);
        }
        return Ok(());
    }
    incremental(sink, client, settings, deadline, cutoff).await?;
    let resync_due = {
        let f = sink.follow();
        f.listing.is_some()
            || f.last_full_listing_at
                .is_none_or(|t| t.elapsed() >= settings.full_resync_interval)
    } || sink.wants_listing();
    if resync_due {
        start_listing(sink, ListingKind::Resync, cutoff);
        match drive_listing(sink, client, settings, deadline, cutoff, collecting).await {
            Ok(true) => finish_listing(sink),
            Ok(false) => {}
            // The data is current (the incremental pass succeeded); a re-listing that
            // ran out of time, or met a rate-limit pause, simply goes on at the next
            // collection.
            Err(ApiError::Deadline | ApiError::RateLimited { .. }) => {
                tracing::debug!(
                    source = sink.name(),
                    "full re-listing continues next collection"
                )
            }
            Err(e) => return Err(e),
        }
    }
    if let Some(cutoff) = cutoff {
        sink.drop_created_before(cutoff);
    }
    Ok(())
}

fn start_listing<S: Sink>(sink: &S, kind: ListingKind, cutoff: Option<i64>) {
    let mut f = sink.follow();
    if f.listing.is_none() {
        f.generation = f.generation.wrapping_add(1);
        let generation = f.generation;
        f.listing = Some(Listing::new(kind, generation, cutoff));
        f.listing_clock = Some(PassClock::new());
        drop(f);
        sink.listing_started(generation);
        tracing::info!(source = sink.name(), ?kind, "full listing started");
    }
}

/// A full listing completed: its clock sets the watermark, and the sink learns of it.
fn finish_listing<S: Sink>(sink: &S) {
    let listing = {
        let mut f = sink.follow();
        let Some(listing) = f.listing.take() else {
            return;
        };
        let clock = f.listing_clock.take().unwrap_or_else(PassClock::new);
        // Sessions changed while a (possibly multi-scrape) listing ran may have been listed
        // before the change: the watermark is no later than the listing's start. What it saw
        // replaces the watermark, whatever moved it before.
        f.watermark = clock.watermark();
        f.last_full_listing_at = Some(clock.started);
        f.last_deep_recheck = Some(clock.started);
        listing
    };
    sink.listing_complete(listing.kind, listing.generation, listing.pages);
}

/// Applies a page stamped with the current generation.
fn apply<S: Sink>(
    sink: &S,
    page: &SessionPage<'_>,
    cutoff: Option<i64>,
    settings: &SyncSettings,
) -> Result<(), ApiError> {
    let generation = sink.follow().generation;
    sink.apply(page, generation, cutoff, settings)
}

/// Drops the listing in progress after the API broke its contract: nothing more of it
/// is applied, and a first listing starts over.
fn abandon_listing<S: Sink>(sink: &S, error: ApiError) -> ApiError {
    let initial = {
        let mut f = sink.follow();
        f.listing_clock = None;
        f.listing
            .take()
            .is_some_and(|l| l.kind == ListingKind::Initial)
    };
    if initial {
        sink.discard();
    }
    error
}

async fn fetch<S: Sink>(
    sink: &S,
    client: &ApiClient,
    query: &ListQuery,
    deadline: Instant,
) -> Result<PageBody, ApiError> {
    match sink.endpoint() {
        Endpoint::Org(id) => {
            client
                .list_sessions(id, query, deadline, sink.stats())
                .await
        }
        Endpoint::Enterprise => {
            client
                .list_enterprise_sessions(query, deadline, sink.stats())
                .await
        }
    }
}

/// Lists the windows of the listing in progress until it completes (`Ok(true)`) or the
/// deadline comes after some progress (`Ok(false)`; the next collection resumes it).
async fn drive_listing<S: Sink>(
    sink: &S,
    client: &ApiClient,
    settings: &SyncSettings,
    deadline: Instant,
    cutoff: Option<i64>,
    collecting: &Collecting<'_>,
) -> Result<bool, ApiError> {
    let mut queue: VecDeque<_> = match &sink.follow().listing {
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
                let result = fetch(sink, client, &query, deadline).await;
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
            sink.stats().mean_latency(),
            collecting(),
            WINDOW_CONCURRENCY,
        );
        let most = sink.most_listed(settings);
        let advanced = {
            let mut st = sink.follow();
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
                        if listing.items > most {
                            Err(too_many(most))
                        } else {
                            Ok(next)
                        }
                    }),
                None => Ok(Vec::new()),
            }
        };
        // A page that breaks the contract is not applied, and nor is the rest.
        let next = advanced.map_err(|e| abandon_listing(sink, e))?;
        apply(sink, &page, cutoff, settings).map_err(|e| abandon_listing(sink, e))?;
        queue.extend(next);
    }
    Ok(sink.follow().listing.as_ref().is_none_or(Listing::is_done))
}

/// Lists the sessions updated since a second before the watermark, all pages; every
/// `deep_recheck_interval`, since the full overlap before it instead (late indexing).
/// An org holding no sessions is listed in full instead (within the lookback): that
/// costs the same one request, and needs no watermark, which with nothing seen could
/// only come from `Date` and so be ahead of the sessions' own clock.
async fn incremental<S: Sink>(
    sink: &S,
    client: &ApiClient,
    settings: &SyncSettings,
    deadline: Instant,
    cutoff: Option<i64>,
) -> Result<(), ApiError> {
    let empty = sink.is_empty();
    let (watermark, deep) = {
        let st = sink.follow();
        let deep = st
            .last_deep_recheck
            .is_none_or(|t| t.elapsed() >= settings.deep_recheck_interval);
        (st.watermark, deep)
    };
    let most = sink.most_listed(settings);
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
        ListQuery {
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
        let body = fetch(sink, client, &query, deadline).await?;
        let next = {
            let page = body.parse()?;
            // Watermark from every item, also those outside the lookback window.
            pass.observe(
                body.server_time(),
                page.items.iter().map(|s| s.updated_at).max(),
            );
            items = items.saturating_add(page.listed() as u64);
            if items > most {
                return Err(too_many(most));
            }
            next_cursor(&page, &mut cursors)?
        };
        match held.as_mut() {
            Some(pages) if pages.len() < HELD_PAGES => pages.push(body),
            Some(_) => {
                for page in held.take().into_iter().flatten().chain([body]) {
                    apply(sink, &page.parse()?, cutoff, settings)?;
                }
            }
            None => apply(sink, &body.parse()?, cutoff, settings)?,
        }
        match next {
            Some(cursor) => query.after = Some(cursor),
            None => break,
        }
    }
    for page in held.into_iter().flatten() {
        apply(sink, &page.parse()?, cutoff, settings)?;
    }
    // Only a complete pass may move the watermark: an interrupted one is redone.
    let mut st = sink.follow();
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

pub(super) fn too_many(max: u64) -> ApiError {
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
