//! A full listing of an org split into `created_at` windows that are fetched concurrently and
//! can be resumed: each window remembers the cursor of its last page applied.
//!
//! Nothing here depends on the order of items or on `total`: both only steer how windows
//! are split. Windows overlap by a second at their edges so that inclusive and exclusive
//! API bounds both leave no gap; a session listed twice is simply applied twice.
//!
//! Every window costs a partly filled last page and every split re-reads its parent's first
//! page, so windows are few and large: about one per stream of requests worth opening (see
//! [`streams_worth_opening`]), and a window splits again only when it holds more than twice
//! its share. With one stream worth opening nothing splits: the listing follows one cursor
//! and costs exactly the data's pages.

use std::collections::{BTreeMap, HashSet};
use std::time::Duration;

use crate::api::ListQuery;

const DAY: i64 = 86_400;
/// Pages one window is expected to hold before it is worth splitting.
const PAGES_PER_WINDOW: u64 = 8;
/// Most children one split makes.
const MAX_SPLIT: u64 = 16;
/// How deep windows are split; bounds the requests spent on planning.
const MAX_DEPTH: u8 = 3;
/// Exponential windows back from now when the lower bound is unknown: 1, 2, 4, ... 1024 days.
const EXPONENTIAL_STEPS: u32 = 11;

/// A `created_at` range [lo, hi) and where its listing stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Window {
    /// Lower bound (inclusive), or unbounded.
    pub lo: Option<i64>,
    /// Upper bound (exclusive), or unbounded.
    pub hi: Option<i64>,
    /// Cursor of the next page; `None` before the first page.
    pub cursor: Option<String>,
    /// How many splits led here.
    pub depth: u8,
}

impl Window {
    /// The request for this window's next page.
    pub fn query(&self, first: u32) -> ListQuery {
        ListQuery {
            first,
            after: self.cursor.clone(),
            // One second of overlap on the lower edge: with exclusive bounds `created_after`
            // would otherwise skip sessions created exactly at `lo`.
            created_after: self.lo.map(|lo| lo - 1),
            created_before: self.hi,
            updated_after: None,
        }
    }
}

/// What a page told about its window.
#[derive(Debug, Clone, Default)]
pub struct PageSummary {
    /// Items on the page.
    pub items: usize,
    /// Whether more pages follow.
    pub has_next_page: bool,
    /// Cursor of the next page.
    pub end_cursor: Option<String>,
    /// `total` if the API sent one.
    pub total: Option<u64>,
    /// Oldest and newest `created_at` on the page.
    pub created_range: Option<(i64, i64)>,
}

/// The API broke its pagination contract; the listing cannot go on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CursorError {
    /// `has_next_page: true` without a cursor to reach that page.
    #[error("has_next_page is true but end_cursor is null")]
    Missing,
    /// A window was sent a cursor it had been sent before: following it would loop.
    #[error("end_cursor {0:?} repeated: the API's pagination loops")]
    Repeated(String),
}

/// Why a listing runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ListingKind {
    /// The org's first listing: its metrics appear when it completes.
    Initial,
    /// A periodic full re-listing that drops sessions which no longer exist.
    Resync,
}

/// A full listing in progress.
#[derive(Debug, Clone)]
pub struct Listing {
    /// Why it runs.
    pub kind: ListingKind,
    /// Generation stamped on every session it sees.
    pub generation: u32,
    /// Pages applied so far.
    pub pages: u64,
    /// Sessions the whole listing covers, from `total` of its first page when sent.
    expected: Option<u64>,
    /// Items on those pages.
    pub items: u64,
    windows: BTreeMap<u32, Window>,
    next_id: u32,
    /// Cursors each window has been sent, to tell a loop from progress.
    cursors: HashSet<(u32, String)>,
    /// A window's fair share of pages, once the first page told how many there are.
    share: Option<u64>,
    /// Pages of the whole listing, if the first page told.
    total_pages: Option<u64>,
}

impl Listing {
    /// A listing of everything created at or after `lo` (everything when `None`).
    pub fn new(kind: ListingKind, generation: u32, lo: Option<i64>) -> Self {
        let mut windows = BTreeMap::new();
        windows.insert(
            0,
            Window {
                lo,
                hi: None,
                cursor: None,
                depth: 0,
            },
        );
        Listing {
            kind,
            generation,
            pages: 0,
            expected: None,
            items: 0,
            windows,
            next_id: 1,
            cursors: HashSet::new(),
            share: None,
            total_pages: None,
        }
    }

    /// True when every window has been listed to its end.
    pub fn is_done(&self) -> bool {
        self.windows.is_empty()
    }

    /// Windows still to list, with their ids.
    pub fn pending(&self) -> Vec<(u32, Window)> {
        self.windows
            .iter()
            .map(|(id, w)| (*id, w.clone()))
            .collect()
    }

    /// Records a page of window `id` and returns the windows to fetch next because of it:
    /// the same window with its new cursor, its children after a split, or nothing. `now` is
    /// the server's time; `streams` how many streams of requests are worth opening now. A
    /// cursor that is missing or that loops is an error.
    pub fn advance(
        &mut self,
        id: u32,
        page: &PageSummary,
        page_size: u32,
        now: i64,
        streams: u64,
    ) -> Result<Vec<(u32, Window)>, CursorError> {
        let Some(mut window) = self.windows.remove(&id) else {
            return Ok(Vec::new());
        };
        self.pages += 1;
        if id == 0 && window.cursor.is_none() {
            self.expected = page.total;
        }
        self.items += page.items as u64;
        if !page.has_next_page {
            return Ok(Vec::new());
        }
        let cursor = page.end_cursor.clone().ok_or(CursorError::Missing)?;
        if window.cursor.as_ref() == Some(&cursor) || !self.cursors.insert((id, cursor.clone())) {
            return Err(CursorError::Repeated(cursor));
        }
        if window.depth == 0 {
            // The first page of the whole listing: how many pages a window should hold.
            self.total_pages =
                estimate(&window, page).map(|n| n.div_ceil(u64::from(page_size.max(1))));
            self.share = self.total_pages.map(|p| p.div_ceil(streams.max(1)));
        }
        let share = self.share.unwrap_or(0).max(PAGES_PER_WINDOW);
        // With one stream nothing would run beside a child: following the cursor costs
        // exactly the pages there are, and a split only adds requests.
        if streams > 1 && window.cursor.is_none() && window.depth < MAX_DEPTH {
            let plan = Plan {
                page_size,
                now,
                share,
                total_pages: self.total_pages,
            };
            if let Some(children) = split(&window, page, &plan) {
                return Ok(children
                    .into_iter()
                    .map(|child| {
                        let id = self.next_id;
                        self.next_id += 1;
                        self.windows.insert(id, child.clone());
                        (id, child)
                    })
                    .collect());
            }
        }
        window.cursor = Some(cursor);
        self.windows.insert(id, window.clone());
        Ok(vec![(id, window)])
    }
}

impl Listing {
    /// Share of the listing done, 0.0..=0.99, when `listed` sessions of it have been applied
    /// and the API said how many there are; `None` without a `total`. Never 100% before
    /// the last window ends: `total` is a hint and sessions keep arriving.
    pub fn progress(&self, listed: u64) -> Option<f64> {
        let expected = self.expected.filter(|e| *e > 0)?;
        Some((listed as f64 / expected as f64).clamp(0.0, 0.99))
    }
}

/// Streams of requests worth opening at once for one org's listing: as many as keep its
/// part of the token's budget busy for one `round_trip`. The budget allows `per_second`
/// requests, `in_flight` at once, shared by the `collecting` orgs; beyond that a stream only
/// waits for the budget, yet its window still costs a partly filled page. At least 1, at
/// most `most` (the windows fetched at once).
pub fn streams_worth_opening(
    per_second: f64,
    in_flight: usize,
    round_trip: Duration,
    collecting: usize,
    most: usize,
) -> u64 {
    let busy = (per_second.max(0.0) * round_trip.as_secs_f64()).min(in_flight as f64);
    let per_org = busy / collecting.max(1) as f64;
    // Rounded up: a stream too few leaves budget unused for the whole listing, one too many
    // costs a page or two; the slack keeps an exact fit (20/s x 50 ms) at one. The cast
    // saturates (NaN is 0), so the clamp bounds any input.
    ((per_org - 1e-6).ceil() as u64).clamp(1, (most as u64).max(1))
}

/// Estimated sessions in a window from its first page.
fn estimate(window: &Window, page: &PageSummary) -> Option<u64> {
    if let Some(total) = page.total {
        return Some(total);
    }
    let (lo, hi) = (window.lo?, window.hi?);
    let (oldest, _) = page.created_range?;
    // If items come newest first, the page covers [oldest, hi): extrapolate its density.
    let covered = (hi - oldest).max(1) as f64;
    Some((page.items as f64 * (hi - lo) as f64 / covered).ceil() as u64)
}

/// What a split goes by.
struct Plan {
    page_size: u32,
    /// The server's time.
    now: i64,
    /// Pages a window should hold (at least [`PAGES_PER_WINDOW`]).
    share: u64,
    /// Pages of the whole listing, if known: at most what an open-ended window holds.
    total_pages: Option<u64>,
}

/// Children to list instead of `window`, or `None` when following its cursor is as good.
fn split(window: &Window, page: &PageSummary, plan: &Plan) -> Option<Vec<Window>> {
    let Plan {
        page_size,
        now,
        share,
        ..
    } = *plan;
    let estimate = estimate(window, page);
    let pages = estimate.map(|n| n.div_ceil(u64::from(page_size.max(1))));
    // A window up to twice its share is cheaper to follow than to split: a split re-reads
    // the first page and adds a partly filled last page per child. The whole listing is
    // its streams' shares, so it splits once it holds more than one, unless it is small.
    let follow_up_to = if window.depth == 0 {
        share.max(2 * PAGES_PER_WINDOW)
    } else {
        2 * share
    };
    if pages.is_some_and(|p| p <= follow_up_to) {
        return None;
    }
    let depth = window.depth + 1;
    let child = |lo, hi| Window {
        lo,
        hi,
        cursor: None,
        depth,
    };
    let mut children = Vec::new();
    // An open top: sessions created from now on (and any clock skew) get a window of their own.
    let hi = match window.hi {
        Some(hi) => hi,
        None => {
            let newest = page.created_range.map_or(now, |(_, newest)| newest);
            let anchor = now.max(newest) + 1;
            children.push(child(Some(anchor), None));
            anchor
        }
    };
    match window.lo {
        // No lower bound, but a count and the page's time span: windows of one share each at
        // the page's density, back from `hi`, then an open bottom for whatever is older.
        None if pages.or(plan.total_pages).is_some()
            && page.created_range.is_some_and(|(a, b)| b > a) =>
        {
            let (oldest, newest) = page.created_range.unwrap_or_default();
            let density = page.items.max(1) as f64 / (newest - oldest) as f64;
            let span = (share as f64 * f64::from(page_size) / density).ceil();
            let span = (span.min(100.0 * 365.0 * DAY as f64) as i64).max(1);
            let parts = pages
                .or(plan.total_pages)
                .unwrap_or(0)
                .div_ceil(share)
                .clamp(2, MAX_SPLIT) as i64;
            let mut upper = hi;
            for _ in 0..parts {
                let lower = upper.saturating_sub(span);
                children.push(child(Some(lower), Some(upper)));
                upper = lower;
            }
            children.push(child(None, Some(upper)));
        }
        // No lower bound: windows doubling in span back from `hi`; recent time is usually
        // busiest, and sessions cannot be older than the product.
        None => {
            let mut upper = hi;
            for step in 0..EXPONENTIAL_STEPS {
                let lower = hi - DAY * (1 << step);
                children.push(child(Some(lower), Some(upper)));
                upper = lower;
            }
            children.push(child(None, Some(upper)));
        }
        Some(lo) => {
            let span = hi - lo;
            let parts = pages
                .map_or(8, |p| p.div_ceil(share))
                .clamp(2, MAX_SPLIT)
                .min(span.max(0) as u64);
            if parts < 2 {
                return if children.is_empty() {
                    None
                } else {
                    children.push(child(Some(lo), Some(hi)));
                    Some(children)
                };
            }
            let parts = parts as i64;
            for i in 0..parts {
                let a = lo + span * i / parts;
                let b = lo + span * (i + 1) / parts;
                children.push(child(Some(a), Some(b)));
            }
        }
    }
    Some(children)
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_800_000_000;
    /// Streams worth opening when the budget leaves room: the windows fetched at once.
    const MANY: u64 = 8;

    fn plan(share: u64) -> Plan {
        Plan {
            page_size: 200,
            now: NOW,
            share,
            total_pages: None,
        }
    }

    fn full_page(total: Option<u64>, range: Option<(i64, i64)>) -> PageSummary {
        PageSummary {
            items: 200,
            has_next_page: true,
            end_cursor: Some("c1".into()),
            total,
            created_range: range,
        }
    }

    /// Every instant must be covered by some window (no gaps) for any split.
    fn assert_covers(windows: &[Window], lo: Option<i64>) {
        let mut sorted: Vec<_> = windows.to_vec();
        sorted.sort_by_key(|w| w.lo.unwrap_or(i64::MIN));
        assert_eq!(sorted.first().unwrap().lo, lo);
        assert_eq!(sorted.last().unwrap().hi, None);
        for pair in sorted.windows(2) {
            assert_eq!(pair[0].hi, pair[1].lo, "gap or overlap between {pair:?}");
        }
    }

    #[test]
    fn small_org_is_one_request() {
        let mut l = Listing::new(ListingKind::Initial, 1, None);
        let page = PageSummary {
            items: 12,
            ..Default::default()
        };
        assert!(l.advance(0, &page, 200, NOW, MANY).unwrap().is_empty());
        assert!(l.is_done());
        assert_eq!(l.pages, 1);
    }

    #[test]
    fn root_splits_into_exponential_windows_covering_all_time() {
        let mut l = Listing::new(ListingKind::Initial, 1, None);
        let next = l
            .advance(
                0,
                &full_page(None, Some((NOW - 100, NOW - 5))),
                200,
                NOW,
                MANY,
            )
            .unwrap();
        let windows: Vec<_> = next.iter().map(|(_, w)| w.clone()).collect();
        assert_eq!(windows.len(), 1 + EXPONENTIAL_STEPS as usize + 1);
        assert_covers(&windows, None);
        assert!(windows.iter().all(|w| w.cursor.is_none() && w.depth == 1));
        assert_eq!(l.pending().len(), windows.len());
    }

    #[test]
    fn lookback_root_splits_evenly_by_total() {
        let lo = NOW - 30 * DAY;
        let mut l = Listing::new(ListingKind::Initial, 1, Some(lo));
        // 4,000 sessions = 20 pages = 3 windows of up to 8 pages, plus the open top.
        let next = l
            .advance(0, &full_page(Some(4000), None), 200, NOW, MANY)
            .unwrap();
        let windows: Vec<_> = next.into_iter().map(|(_, w)| w).collect();
        assert_eq!(windows.len(), 4);
        assert_covers(&windows, Some(lo));
    }

    #[test]
    fn small_window_follows_its_cursor() {
        let mut l = Listing::new(ListingKind::Initial, 1, Some(NOW - DAY));
        let next = l
            .advance(0, &full_page(Some(1500), None), 200, NOW, MANY)
            .unwrap();
        assert_eq!(next.len(), 1);
        assert_eq!(next[0].1.cursor.as_deref(), Some("c1"));
        // The next page of it is not split again.
        let mut second = full_page(None, None);
        second.end_cursor = Some("c2".into());
        let next = l.advance(next[0].0, &second, 200, NOW, MANY).unwrap();
        assert_eq!(next[0].1.cursor.as_deref(), Some("c2"));
        let last = PageSummary {
            items: 100,
            ..Default::default()
        };
        assert!(
            l.advance(next[0].0, &last, 200, NOW, MANY)
                .unwrap()
                .is_empty()
        );
        assert!(l.is_done());
    }

    #[test]
    fn splitting_stops_at_max_depth_and_one_second_windows() {
        let w = Window {
            lo: Some(10),
            hi: Some(11),
            cursor: None,
            depth: 1,
        };
        assert!(split(&w, &full_page(Some(10_000), None), &plan(8)).is_none());
        let mut l = Listing::new(ListingKind::Initial, 1, Some(0));
        let mut frontier = l
            .advance(0, &full_page(Some(1_000_000), None), 200, NOW, MANY)
            .unwrap();
        for _ in 0..5 {
            let (id, w) = frontier.pop().unwrap();
            frontier = l
                .advance(id, &full_page(Some(1_000_000), None), 200, NOW, MANY)
                .unwrap();
            if w.depth >= MAX_DEPTH {
                assert_eq!(frontier.len(), 1, "no split below the max depth");
                break;
            }
        }
    }

    #[test]
    fn query_overlaps_lower_edge_by_one_second() {
        let w = Window {
            lo: Some(100),
            hi: Some(200),
            cursor: Some("x".into()),
            depth: 1,
        };
        let q = w.query(50);
        assert_eq!((q.created_after, q.created_before), (Some(99), Some(200)));
        assert_eq!(q.after.as_deref(), Some("x"));
        assert_eq!(q.first, 50);
    }

    #[test]
    fn progress_from_the_first_pages_total() {
        let mut l = Listing::new(ListingKind::Initial, 1, None);
        assert_eq!(l.progress(0), None, "no total yet");
        l.advance(
            0,
            &full_page(Some(1000), Some((NOW - 100, NOW - 5))),
            200,
            NOW,
            MANY,
        )
        .unwrap();
        assert_eq!(l.progress(630), Some(0.63));
        assert_eq!(l.progress(5000), Some(0.99), "total is only a hint");
        let mut l = Listing::new(ListingKind::Initial, 1, None);
        l.advance(0, &full_page(None, None), 200, NOW, MANY)
            .unwrap();
        assert_eq!(l.progress(10), None);
    }

    #[test]
    fn density_estimate_from_newest_first_pages() {
        let w = Window {
            lo: Some(0),
            hi: Some(10_000),
            cursor: None,
            depth: 1,
        };
        // 200 items covering the newest 500 s of a 10,000 s window: ~4,000 sessions.
        let page = full_page(None, Some((9_500, 9_999)));
        assert_eq!(estimate(&w, &page), Some(4000));
        // 20 pages, more than twice a share of 8: three windows of at most 8 pages.
        let children = split(&w, &page, &plan(8)).unwrap();
        assert_eq!(children.len(), 3);
        // Up to twice its share, a window is followed, not split.
        assert!(split(&w, &page, &plan(10)).is_none());
    }

    #[test]
    fn missing_or_repeated_cursors_are_errors() {
        let mut l = Listing::new(ListingKind::Initial, 1, Some(NOW - DAY));
        let mut page = full_page(Some(300), None);
        page.end_cursor = None;
        assert_eq!(
            l.advance(0, &page, 200, NOW, MANY),
            Err(CursorError::Missing)
        );

        let mut l = Listing::new(ListingKind::Initial, 1, Some(NOW - DAY));
        let next = l
            .advance(0, &full_page(Some(1000), None), 200, NOW, MANY)
            .unwrap();
        // The same cursor again, or one the window was sent before (a loop of two).
        assert!(matches!(
            l.advance(next[0].0, &full_page(None, None), 200, NOW, MANY),
            Err(CursorError::Repeated(c)) if c == "c1"
        ));
        let mut l = Listing::new(ListingKind::Initial, 1, Some(NOW - DAY));
        let mut id = l
            .advance(0, &full_page(Some(1000), None), 200, NOW, MANY)
            .unwrap()[0]
            .0;
        let mut c2 = full_page(None, None);
        c2.end_cursor = Some("c2".into());
        id = l.advance(id, &c2, 200, NOW, MANY).unwrap()[0].0;
        assert!(
            l.advance(id, &full_page(None, None), 200, NOW, MANY)
                .is_err()
        );
    }

    /// A listing run to its end against a synthetic API of `n` sessions created at
    /// `created[i]`, with `streams` worth opening, returning the requests it took and whether
    /// every session was listed.
    fn run(
        created: &[i64],
        newest_first: bool,
        exclusive: bool,
        with_total: bool,
        streams: u64,
    ) -> (u64, bool) {
        let page_size = 200u32;
        let mut sorted: Vec<(i64, usize)> = created.iter().copied().zip(0..).collect();
        sorted.sort();
        if newest_first {
            sorted.reverse();
        } else {
            // A fixed shuffle: no order at all.
            sorted.sort_by_key(|&(_, i)| (i * 7919) % created.len());
        }
        let mut seen = vec![false; created.len()];
        let mut l = Listing::new(ListingKind::Initial, 1, None);
        let mut queue: Vec<(u32, Window)> = l.pending();
        let mut requests = 0u64;
        while let Some((id, w)) = queue.pop() {
            requests += 1;
            assert!(requests < 100_000, "listing does not end");
            let q = w.query(page_size);
            let lower = |c: i64| {
                q.created_after
                    .is_none_or(|b| if exclusive { c > b } else { c >= b })
            };
            let upper = |c: i64| {
                q.created_before
                    .is_none_or(|b| if exclusive { c < b } else { c <= b })
            };
            // Newest first, a window is one run of the list: found by binary search.
            let filtered: Vec<(i64, usize)>;
            let matching: &[(i64, usize)] = if newest_first {
                let start = sorted.partition_point(|(c, _)| !upper(*c));
                let end = sorted.partition_point(|(c, _)| !upper(*c) || lower(*c));
                &sorted[start..end]
            } else {
                filtered = sorted
                    .iter()
                    .copied()
                    .filter(|(c, _)| lower(*c) && upper(*c))
                    .collect();
                &filtered
            };
            let offset: usize = q.after.as_deref().map_or(0, |a| a.parse().unwrap());
            let items = &matching
                [offset.min(matching.len())..(offset + page_size as usize).min(matching.len())];
            for &(_, i) in items {
                seen[i] = true;
            }
            let more = offset + items.len() < matching.len();
            let range = items.iter().fold(None, |acc: Option<(i64, i64)>, &(c, _)| {
                Some(acc.map_or((c, c), |(a, b)| (a.min(c), b.max(c))))
            });
            let summary = PageSummary {
                items: items.len(),
                has_next_page: more,
                end_cursor: more.then(|| (offset + items.len()).to_string()),
                total: (with_total && q.created_after.is_none() && q.created_before.is_none())
                    .then_some(matching.len() as u64),
                created_range: range,
            };
            queue.extend(l.advance(id, &summary, page_size, NOW, streams).unwrap());
        }
        assert!(l.is_done());
        (requests, seen.iter().all(|s| *s))
    }

    #[test]
    fn cold_listing_costs_at_most_a_tenth_over_the_data_pages_and_misses_nothing() {
        // Sessions spread over 30 days up to now, evenly or busier towards now (as the
        // simulator makes them), and a few years old ones. Windows are sized from the
        // density of the newest page, so a skewed spread of only 100 pages costs more
        // (measured: 104 requests even, 116 skewed, 5,042 at a million skewed).
        for (n, busier_now, most) in [
            (20_000usize, false, 1.1),
            (20_000, true, 1.2),
            (1_000_000, true, 1.1),
        ] {
            let created: Vec<i64> = (0..n)
                .map(|i| {
                    let u = i as f64 / n as f64;
                    let u = if busier_now { u * u } else { u };
                    NOW - (u * (30 * DAY) as f64) as i64
                })
                .chain([NOW - 900 * DAY, NOW - 2000 * DAY])
                .collect();
            let pages = created.len().div_ceil(200) as f64;
            for exclusive in [false, true] {
                let (requests, complete) = run(&created, true, exclusive, true, MANY);
                assert!(
                    complete,
                    "n={n} exclusive={exclusive}: a session was missed"
                );
                assert!(
                    requests as f64 <= most * pages,
                    "n={n} busier_now={busier_now} exclusive={exclusive}: {requests} requests for {pages} pages"
                );
            }
        }
    }

    #[test]
    fn any_order_and_no_total_still_list_everything() {
        let created: Vec<i64> = (0..5000).map(|i| NOW - (i * 37 % 4000) * 600).collect();
        for (newest_first, total) in [(false, true), (false, false), (true, false)] {
            for exclusive in [false, true] {
                let (_, complete) = run(&created, newest_first, exclusive, total, MANY);
                assert!(complete, "newest_first={newest_first} total={total}");
            }
        }
    }

    /// Sessions spread over 30 days up to now, busier towards now (as the simulator makes
    /// them), and two a few years old.
    fn busier_now(n: usize) -> Vec<i64> {
        (0..n)
            .map(|i| {
                let u = i as f64 / n as f64;
                NOW - (u * u * (30 * DAY) as f64) as i64
            })
            .chain([NOW - 900 * DAY, NOW - 2000 * DAY])
            .collect()
    }

    #[test]
    fn with_one_stream_a_listing_never_splits_and_costs_the_data_pages() {
        for n in [0usize, 150, 20_000, 99_998] {
            let created = busier_now(n);
            // The last page may be partly filled; an empty org is one request.
            let pages = created.len().div_ceil(200).max(1) as u64;
            for (newest_first, total) in [(true, true), (true, false), (false, true)] {
                for exclusive in [false, true] {
                    let (requests, complete) = run(&created, newest_first, exclusive, total, 1);
                    assert!(complete, "n={n}: a session was missed");
                    assert_eq!(requests, pages, "n={n} total={total}");
                }
            }
        }
        // Not even a window without a lower bound, nor one of a lookback.
        let mut l = Listing::new(ListingKind::Initial, 1, None);
        let next = l
            .advance(0, &full_page(None, Some((NOW - 100, NOW - 5))), 200, NOW, 1)
            .unwrap();
        assert_eq!((next.len(), next[0].1.cursor.as_deref()), (1, Some("c1")));
        let mut l = Listing::new(ListingKind::Resync, 1, Some(NOW - 30 * DAY));
        let next = l
            .advance(0, &full_page(Some(1_000_000), None), 200, NOW, 1)
            .unwrap();
        assert_eq!(next.len(), 1);
    }

    #[test]
    fn more_streams_make_more_windows() {
        let lo = NOW - 30 * DAY;
        // 40,000 sessions = 200 pages: a window per stream, plus the open top.
        for (streams, windows) in [(2, 3), (4, 5), (MANY, 9)] {
            let mut l = Listing::new(ListingKind::Initial, 1, Some(lo));
            let next = l
                .advance(0, &full_page(Some(40_000), None), 200, NOW, streams)
                .unwrap();
            let next: Vec<_> = next.into_iter().map(|(_, w)| w).collect();
            assert_eq!(next.len(), windows, "{streams} streams");
            assert_covers(&next, Some(lo));
        }
        // And every session is still listed, at a tenth over the data's pages at most.
        let created = busier_now(20_000);
        let pages = created.len().div_ceil(200) as f64;
        for streams in [2, 3, 5] {
            for exclusive in [false, true] {
                let (requests, complete) = run(&created, true, exclusive, true, streams);
                assert!(complete, "streams={streams}: a session was missed");
                assert!(requests as f64 <= 1.2 * pages, "{streams}: {requests}");
            }
        }
    }

    #[test]
    fn streams_worth_opening_follow_the_budget_the_round_trip_and_the_orgs() {
        let ms = Duration::from_millis;
        // The default budget, 20 requests/s at 50-100 ms a round trip: one stream uses it
        // all, whether one org or five collect.
        assert_eq!(streams_worth_opening(20.0, 16, ms(50), 1, 8), 1);
        assert_eq!(streams_worth_opening(20.0, 16, ms(100), 5, 8), 1);
        // A slower API leaves room for a second stream.
        assert_eq!(streams_worth_opening(20.0, 16, ms(60), 1, 8), 2);
        // A raised budget: as many as fill it, up to the windows fetched at once.
        assert_eq!(streams_worth_opening(500.0, 64, ms(70), 5, 8), 7);
        assert_eq!(streams_worth_opening(500.0, 64, ms(70), 1, 8), 8);
        // Requests in flight cap it as well.
        assert_eq!(streams_worth_opening(500.0, 4, ms(1000), 1, 8), 4);
        // Nothing measured yet, or nonsense: one.
        assert_eq!(streams_worth_opening(500.0, 64, Duration::ZERO, 5, 8), 1);
        assert_eq!(streams_worth_opening(f64::NAN, 64, ms(50), 0, 8), 1);
        assert_eq!(streams_worth_opening(f64::INFINITY, 0, ms(50), 0, 0), 1);
        assert_eq!(
            streams_worth_opening(f64::INFINITY, usize::MAX, Duration::MAX, 1, 8),
            8
        );
    }
}
