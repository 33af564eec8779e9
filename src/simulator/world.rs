//! The simulated orgs: their sessions kept in (created_at, id) order, new arrivals, and
//! listing with the API's filters and cursors.

use std::collections::BTreeMap;

use rand::RngExt;
use serde::Serialize;

use super::model::{SimSession, mix, rng};

/// Ground truth of one org at the current simulated time.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct OrgTotals {
    /// Org id.
    pub org_id: String,
    /// Org name.
    pub name: String,
    /// Sessions, archived included.
    pub sessions: u64,
    /// Sum of `acus_consumed`.
    pub acus_consumed: f64,
    /// Archived sessions.
    pub archived: u64,
    /// Sessions per status.
    pub by_status: BTreeMap<String, u64>,
    /// Sessions per status and status detail (`none` for null).
    pub by_status_detail: BTreeMap<String, BTreeMap<String, u64>>,
    /// Pull requests per state (`none` for null).
    pub pull_requests: BTreeMap<String, u64>,
}

/// One simulated org.
#[derive(Debug)]
pub struct SimOrg {
    /// Index (seeds its randomness).
    pub index: u64,
    /// `org-...` id.
    pub id: String,
    /// Display name.
    pub name: String,
    /// Per-cycle ACU limit, if any.
    pub max_cycle_acu_limit: Option<f64>,
    /// Per-session ACU limit, if any.
    pub max_session_acu_limit: Option<f64>,
    /// Sessions ordered by (created_at, id).
    pub sessions: Vec<SimSession>,
    /// ACUs billed (millionths) per billing day (its start, 08:00 UTC): every growth of a
    /// session's ACUs, on the day it happened; deleting a session unbills nothing.
    pub billed: BTreeMap<i64, u64>,
    next_serial: u64,
    next_arrival: i64,
}

/// Filters of a list request.
#[derive(Debug, Default, Clone)]
pub struct Filters {
    /// `created_after`.
    pub created_after: Option<i64>,
    /// `created_before`.
    pub created_before: Option<i64>,
    /// `updated_after`.
    pub updated_after: Option<i64>,
    /// `updated_before`.
    pub updated_before: Option<i64>,
    /// `is_archived`.
    pub is_archived: Option<bool>,
    /// `origins`.
    pub origins: Option<Vec<String>>,
    /// `category`.
    pub category: Option<String>,
    /// `session_ids`.
    pub session_ids: Option<Vec<String>>,
    /// Strict (`>`/`<`) rather than inclusive time bounds.
    pub exclusive: bool,
}

impl Filters {
    fn lower(&self, bound: Option<i64>, v: i64) -> bool {
        bound.is_none_or(|b| if self.exclusive { v > b } else { v >= b })
    }

    fn upper(&self, bound: Option<i64>, v: i64) -> bool {
        bound.is_none_or(|b| if self.exclusive { v < b } else { v <= b })
    }

    fn matches(&self, s: &SimSession) -> bool {
        self.lower(self.created_after, s.created_at)
            && self.upper(self.created_before, s.created_at)
            && self.lower(self.updated_after, s.updated_at)
            && self.upper(self.updated_before, s.updated_at)
            && self.is_archived.is_none_or(|a| a == s.archived)
            && self
                .origins
                .as_ref()
                .is_none_or(|o| o.iter().any(|x| x == s.origin))
            && self
                .category
                .as_ref()
                .is_none_or(|c| Some(c.as_str()) == s.category)
            && self
                .session_ids
                .as_ref()
                .is_none_or(|ids| ids.contains(&s.id))
    }

    /// Whether any time filter is set (the real API omits `total` then, we assume).
    pub fn has_time_filter(&self) -> bool {
        self.created_after.is_some()
            || self.created_before.is_some()
            || self.updated_after.is_some()
            || self.updated_before.is_some()
    }
}

/// Adds `micros` billed at `at` to its billing day.
fn bill(billed: &mut BTreeMap<i64, u64>, at: i64, micros: u64) {
    if micros > 0 {
        *billed.entry(super::billing::day_start(at)).or_default() += micros;
    }
}

const NAMES: &[&str] = &[
    "Platform", "Payments", "Data", "Mobile", "Growth", "Infra", "Search", "Security",
];

impl SimOrg {
    /// An org with `sessions` spread over `history` seconds before `start`.
    pub fn new(
        seed: u64,
        index: u64,
        sessions: usize,
        history: i64,
        arrivals_per_hour: f64,
        start: i64,
    ) -> Self {
        let mut r = rng(mix(seed, 10_000 + index));
        let id = format!("org-{:012x}", mix(seed, index) & 0xffff_ffff_ffff);
        let name = format!("{} {}", NAMES[index as usize % NAMES.len()], index + 1);
        let mut created: Vec<i64> = (0..sessions)
            .map(|_| {
                // Busier towards now: more mass near the end of the history.
                let u: f64 = r.random_range(0.0..1.0);
                start - (history as f64 * u * u) as i64 - 1
            })
            .collect();
        created.sort_unstable();
        let mut org = SimOrg {
            index,
            id,
            name,
            max_cycle_acu_limit: (index % 3 != 2).then_some(50_000.0 * (index + 1) as f64),
            max_session_acu_limit: (index % 2 == 0).then_some(100.0),
            sessions: Vec::with_capacity(sessions),
            billed: BTreeMap::new(),
            next_serial: 0,
            next_arrival: start,
        };
        for at in created {
            let mut s = org.spawn(seed, at);
            s.advance_billed(seed, index, start, &mut |t, m| bill(&mut org.billed, t, m));
            org.insert(s);
        }
        org.next_arrival = start + org.arrival_gap(seed, arrivals_per_hour);
        org
    }

    fn spawn(&mut self, seed: u64, at: i64) -> SimSession {
        let s = SimSession::new(seed, self.index, self.next_serial, at);
        self.next_serial += 1;
        s
    }

    fn insert(&mut self, s: SimSession) {
        let key = (s.created_at, s.id.as_str());
        let pos = self
            .sessions
            .partition_point(|x| (x.created_at, x.id.as_str()) <= key);
        self.sessions.insert(pos, s);
    }

    fn arrival_gap(&self, seed: u64, per_hour: f64) -> i64 {
        if per_hour <= 0.0 {
            return i64::MAX / 2;
        }
        let mut r = rng(mix(mix(seed, 20_000 + self.index), self.next_serial));
        let u: f64 = r.random_range(f64::EPSILON..1.0);
        ((-u.ln() * 3600.0 / per_hour).ceil() as i64).max(1)
    }

    /// Brings the org to simulated time `now`: arrivals, then every session's events.
    pub fn advance(&mut self, seed: u64, arrivals_per_hour: f64, now: i64) {
        while self.next_arrival <= now {
            let at = self.next_arrival;
            let s = self.spawn(seed, at);
            self.insert(s);
            self.next_arrival = at + self.arrival_gap(seed, arrivals_per_hour);
        }
        let (index, billed) = (self.index, &mut self.billed);
        for s in self.sessions.iter_mut().filter(|s| s.is_live()) {
            s.advance_billed(seed, index, now, &mut |t, m| bill(billed, t, m));
        }
    }

    /// Creates `n` sessions at `now`.
    pub fn create(&mut self, seed: u64, n: usize, now: i64) -> usize {
        for _ in 0..n {
            let s = self.spawn(seed, now);
            self.insert(s);
        }
        n
    }

    /// Changes `n` sessions (picked deterministically) at `now`.
    pub fn touch(&mut self, seed: u64, n: usize, now: i64, round: u64) -> usize {
        let len = self.sessions.len();
        if len == 0 {
            return 0;
        }
        let n = n.min(len);
        let mut r = rng(mix(mix(seed, 30_000 + self.index), round));
        let mut picked = std::collections::HashSet::new();
        while picked.len() < n {
            picked.insert(r.random_range(0..len));
        }
        let index = self.index;
        for i in picked {
            let s = &mut self.sessions[i];
            let before = s.acu_micros();
            s.touch(seed, index, now);
            let grown = s.acu_micros().saturating_sub(before);
            bill(&mut self.billed, now, grown);
        }
        n
    }

    /// Moves the `n` newest live sessions not already there into `status`/`detail` at `now`;
    /// returns their ids.
    pub fn transition(
        &mut self,
        n: usize,
        status: &'static str,
        detail: Option<&'static str>,
        now: i64,
    ) -> Vec<String> {
        let mut moved = Vec::new();
        for s in self.sessions.iter_mut().rev() {
            if moved.len() >= n {
                break;
            }
            if s.next_event == i64::MAX || (s.status, s.detail) == (status, detail) {
                continue;
            }
            s.force(status, detail, now);
            moved.push(s.id.clone());
        }
        moved
    }

    /// Deletes `n` sessions (picked deterministically).
    pub fn delete(&mut self, seed: u64, n: usize, round: u64) -> usize {
        let mut r = rng(mix(mix(seed, 40_000 + self.index), round));
        let mut deleted = 0;
        while deleted < n && !self.sessions.is_empty() {
            let i = r.random_range(0..self.sessions.len());
            self.sessions.remove(i);
            deleted += 1;
        }
        deleted
    }

    /// Up to `first` sessions matching `filters`, newest first, strictly after the cursor
    /// position `after` = (created_at, id); plus whether more follow and the total if asked.
    pub fn list(
        &self,
        filters: &Filters,
        after: Option<(i64, &str)>,
        first: usize,
    ) -> (Vec<&SimSession>, bool) {
        let end = match after {
            Some((c, id)) => self
                .sessions
                .partition_point(|x| (x.created_at, x.id.as_str()) < (c, id)),
            None => self.sessions.len(),
        };
        let mut matching = self.sessions[..end]
            .iter()
            .rev()
            .filter(|s| filters.matches(s));
        let page: Vec<&SimSession> = matching.by_ref().take(first).collect();
        let more = matching.next().is_some();
        (page, more)
    }

    /// Sessions matching `filters`.
    pub fn count(&self, filters: &Filters) -> usize {
        self.sessions.iter().filter(|s| filters.matches(s)).count()
    }

    /// Ground truth now.
    pub fn totals(&self) -> OrgTotals {
        let mut t = OrgTotals {
            org_id: self.id.clone(),
            name: self.name.clone(),
            sessions: self.sessions.len() as u64,
            acus_consumed: 0.0,
            archived: 0,
            by_status: BTreeMap::new(),
            by_status_detail: BTreeMap::new(),
            pull_requests: BTreeMap::new(),
        };
        for s in &self.sessions {
            t.acus_consumed += s.acus;
            t.archived += u64::from(s.archived);
            *t.by_status.entry(s.status.to_string()).or_default() += 1;
            *t.by_status_detail
                .entry(s.status.to_string())
                .or_default()
                .entry(s.detail.unwrap_or("none").to_string())
                .or_default() += 1;
            for pr in &s.prs {
                *t.pull_requests.entry(pr.to_string()).or_default() += 1;
            }
        }
        t
    }
}
