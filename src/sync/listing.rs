//! A full listing of an org split into `created_at` windows that are fetched concurrently and
//! can be resumed: each window remembers the cursor of its last page applied.
//!
//! Nothing here depends on the order of items or on `total`: both only steer how windows
//! are split. Windows overlap by a second at their edges so that inclusive and exclusive
//! API bounds both leave no gap; a session listed twice is simply applied twice.

use std::collections::BTreeMap;

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
    /// Local Unix time when it started.
    pub started_at: i64,
    /// Pages applied so far.
    pub pages: u64,
    /// Sessions the whole listing covers, from `total` of its first page when sent.
    expected: Option<u64>,
    windows: BTreeMap<u32, Window>,
    next_id: u32,
}

impl Listing {
    /// A listing of everything created at or after `lo` (everything when `None`).
    pub fn new(kind: ListingKind, generation: u32, lo: Option<i64>, now: i64) -> Self {
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
            started_at: now,
            pages: 0,
            expected: None,
            windows,
            next_id: 1,
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

    /// Number of windows still to list.
    pub fn remaining_windows(&self) -> usize {
        self.windows.len()
    }

    /// Records a page of window `id` and returns the windows to fetch next because of it:
    /// the same window with its new cursor, its children after a split, or nothing.
    pub fn advance(
        &mut self,
        id: u32,
        page: &PageSummary,
        page_size: u32,
        now: i64,
    ) -> Vec<(u32, Window)> {
        let Some(mut window) = self.windows.remove(&id) else {
            return Vec::new();
        };
        self.pages += 1;
        if id == 0 && window.cursor.is_none() {
            self.expected = page.total;
        }
        if !page.has_next_page {
            return Vec::new();
        }
        if window.cursor.is_none() && window.depth < MAX_DEPTH {
            if let Some(children) = split(&window, page, page_size, now) {
                return children
                    .into_iter()
                    .map(|child| {
                        let id = self.next_id;
                        self.next_id += 1;
                        self.windows.insert(id, child.clone());
                        (id, child)
                    })
                    .collect();
            }
        }
        match &page.end_cursor {
            Some(cursor) => {
                window.cursor = Some(cursor.clone());
                self.windows.insert(id, window.clone());
                vec![(id, window)]
            }
            // More pages but no cursor to reach them: nothing more can be listed here.
            None => {
                tracing::warn!("API reported more pages without an end_cursor; window ends early");
                Vec::new()
            }
        }
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

/// Children to list instead of `window`, or `None` when following its cursor is as good.
fn split(window: &Window, page: &PageSummary, page_size: u32, now: i64) -> Option<Vec<Window>> {
    let estimate = estimate(window, page);
    let pages = estimate.map(|n| n.div_ceil(u64::from(page_size)));
    if pages.is_some_and(|p| p <= PAGES_PER_WINDOW) {
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
                .map_or(8, |p| p.div_ceil(PAGES_PER_WINDOW))
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
        let mut l = Listing::new(ListingKind::Initial, 1, None, NOW);
        let page = PageSummary {
            items: 12,
            ..Default::default()
        };
        assert!(l.advance(0, &page, 200, NOW).is_empty());
        assert!(l.is_done());
        assert_eq!(l.pages, 1);
    }

    #[test]
    fn root_splits_into_exponential_windows_covering_all_time() {
        let mut l = Listing::new(ListingKind::Initial, 1, None, NOW);
        let next = l.advance(0, &full_page(None, Some((NOW - 100, NOW - 5))), 200, NOW);
        let windows: Vec<_> = next.iter().map(|(_, w)| w.clone()).collect();
        assert_eq!(windows.len(), 1 + EXPONENTIAL_STEPS as usize + 1);
        assert_covers(&windows, None);
        assert!(windows.iter().all(|w| w.cursor.is_none() && w.depth == 1));
        assert_eq!(l.remaining_windows(), windows.len());
    }

    #[test]
    fn lookback_root_splits_evenly_by_total() {
        let lo = NOW - 30 * DAY;
        let mut l = Listing::new(ListingKind::Initial, 1, Some(lo), NOW);
        // 4,000 sessions = 20 pages = 3 windows of up to 8 pages, plus the open top.
        let next = l.advance(0, &full_page(Some(4000), None), 200, NOW);
        let windows: Vec<_> = next.into_iter().map(|(_, w)| w).collect();
        assert_eq!(windows.len(), 4);
        assert_covers(&windows, Some(lo));
    }

    #[test]
    fn small_window_follows_its_cursor() {
        let mut l = Listing::new(ListingKind::Initial, 1, Some(NOW - DAY), NOW);
        let next = l.advance(0, &full_page(Some(1500), None), 200, NOW);
        assert_eq!(next.len(), 1);
        assert_eq!(next[0].1.cursor.as_deref(), Some("c1"));
        // The next page of it is not split again.
        let next = l.advance(next[0].0, &full_page(None, None), 200, NOW);
        assert_eq!(next[0].1.cursor.as_deref(), Some("c1"));
        let last = PageSummary {
            items: 100,
            ..Default::default()
        };
        assert!(l.advance(next[0].0, &last, 200, NOW).is_empty());
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
        assert!(split(&w, &full_page(Some(10_000), None), 200, NOW).is_none());
        let mut l = Listing::new(ListingKind::Initial, 1, Some(0), NOW);
        let mut frontier = l.advance(0, &full_page(Some(1_000_000), None), 200, NOW);
        for _ in 0..5 {
            let (id, w) = frontier.pop().unwrap();
            frontier = l.advance(id, &full_page(Some(1_000_000), None), 200, NOW);
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
        let mut l = Listing::new(ListingKind::Initial, 1, None, NOW);
        assert_eq!(l.progress(0), None, "no total yet");
        l.advance(
            0,
            &full_page(Some(1000), Some((NOW - 100, NOW - 5))),
            200,
            NOW,
        );
        assert_eq!(l.progress(630), Some(0.63));
        assert_eq!(l.progress(5000), Some(0.99), "total is only a hint");
        let mut l = Listing::new(ListingKind::Initial, 1, None, NOW);
        l.advance(0, &full_page(None, None), 200, NOW);
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
        // 200 items covering the newest 1,000 s of a 10,000 s window: ~2,000 sessions.
        let page = full_page(None, Some((9_000, 9_999)));
        assert_eq!(estimate(&w, &page), Some(2000));
        let children = split(&w, &page, 200, NOW).unwrap();
        assert_eq!(children.len(), 2);
    }
}
