//! Every known session of one org in compact form, with the aggregates the metrics need kept
//! up to date on every change, so that a scrape renders without walking the sessions.

use std::collections::{BTreeMap, HashMap};

use indexmap::IndexMap;

use super::intern::{Interner, Label, OVERFLOW_SYM, Sym, cut};
use super::key::{GroupKey, MAX_SESSION_ID_LEN, SessionKey};
use super::spend::{Attrs, Spend, SpendSettings};
use crate::api::Session;
use crate::api::enums;

/// ACUs are summed as integer millionths so that adding and removing never drifts.
const MICROS: f64 = 1_000_000.0;

/// Most ACUs one session is taken to have. More is a broken upstream (`1e308`): clamped
/// before any arithmetic, so that sums neither wrap nor drown every other session.
pub const MAX_SESSION_ACUS: f64 = 1e9;

/// Longest a session is taken to have run (30 days): `updated_at - created_at` beyond it is
/// a clock gone wrong (a session dated in the year 9999), which must not add millennia to
/// `devin_ended_session_duration_seconds_sum`.
pub const MAX_SESSION_DURATION_SECONDS: i64 = 30 * 86_400;

/// Label combinations (series of `devin_sessions` and `devin_sessions_acus_consumed`) with an
/// undocumented value kept per org. The interner bounds each label's undocumented values, not
/// their combinations: a session whose combination comes past this is counted with its
/// undocumented labels reading `overflow` (its documented ones stay), so the sums, and every
/// sum by a documented label, stay exact. Combinations of documented values never fold.
pub const MAX_UNDOCUMENTED_GROUPS: usize = 2000;

/// One session, without strings.
#[derive(Debug, Clone, PartialEq)]
struct Record {
    created_at: i64,
    updated_at: i64,
    acus_micros: u64,
    pr_states: Box<[Sym]>,
    labels: GroupKey,
    /// Listing generation that last saw this session (for the full resync).
    seen_gen: u32,
    archived: bool,
    /// Counted with its undocumented labels folded into `overflow` (see
    /// [`MAX_UNDOCUMENTED_GROUPS`]).
    folded: bool,
    /// User, playbook and tag set, for the spend breakdowns.
    attrs: Attrs,
}

impl Record {
    /// The group whose totals include this session.
    fn group(&self, interner: &Interner) -> GroupKey {
        if self.folded {
            fold(interner, &self.labels)
        } else {
            self.labels
        }
    }
}

/// `key` with each undocumented value read as `overflow`.
fn fold(interner: &Interner, key: &GroupKey) -> GroupKey {
    let keep = |label, sym| {
        if interner.is_documented(label, sym) {
            sym
        } else {
            OVERFLOW_SYM
        }
    };
    GroupKey {
        status: keep(Label::Status, key.status),
        status_detail: keep(Label::StatusDetail, key.status_detail),
        origin: keep(Label::Origin, key.origin),
        category: keep(Label::Category, key.category),
    }
}

/// Count and ACU sum of the sessions sharing one label set.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct GroupTotals {
    /// Sessions in the group.
    pub sessions: u64,
    /// Sum of their ACUs, in millionths.
    pub acus_micros: u64,
}

/// What the metrics read: kept in step with the records.
#[derive(Debug, Default)]
struct Aggregates {
    groups: HashMap<GroupKey, GroupTotals>,
    /// Groups with an undocumented label value that is not `overflow`.
    undocumented_groups: usize,
    pr_states: HashMap<Sym, u64>,
    archived: u64,
    /// For sessions still in play: `updated_at` values per (status, status_detail).
    waiting: HashMap<(Sym, Sym), BTreeMap<i64, u32>>,
}

/// Monotonic totals of what this process saw happen: they only grow while it runs, whatever
/// happens to sessions (deleted or aged-out sessions take nothing back).
#[derive(Debug, Default, Clone)]
pub struct Counters {
    /// ACUs consumed, in millionths.
    pub acus_micros: u64,
    /// Sessions first seen, by origin.
    pub created: HashMap<Sym, u64>,
    /// Sessions seen moving into a (status, status_detail), by that pair.
    pub entered_status: HashMap<(Sym, Sym), u64>,
}

/// Whether an upsert counts what it sees happen (a session entering a status, one ending).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transitions {
    /// Counted: the org's first listing is complete, changes happen while this process
    /// watches.
    Counted,
    /// Not counted: during an org's first listing, whose sessions did not "enter" their
    /// status while this process watched.
    Ignored,
}

/// How an upsert changed the store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Upsert {
    /// A session not known before.
    Inserted,
    /// A known session whose fields changed.
    Updated,
    /// Nothing changed (or the incoming copy was older than the stored one).
    Unchanged,
}

/// The sessions of one org.
#[derive(Debug)]
pub struct SessionStore {
    records: IndexMap<SessionKey, Record>,
    interner: Interner,
    aggregates: Aggregates,
    counters: Counters,
    /// Statuses whose sessions are over or parked; the rest count as waiting/in play.
    settled: [Sym; 3],
    /// Spend breakdowns, ended-session histograms, top active sessions.
    spend: Spend,
}

impl Default for SessionStore {
    fn default() -> Self {
        let mut interner = Interner::default();
        let settled =
            ["exit", "error", "suspended"].map(|s| interner.intern(Label::Status, Some(s)));
        SessionStore {
            records: IndexMap::new(),
            interner,
            aggregates: Aggregates::default(),
            counters: Counters::default(),
            settled,
            spend: Spend::default(),
        }
    }
}

/// ACUs in millionths, clamped to [`MAX_SESSION_ACUS`]; not-a-number, infinite or negative
/// values count as 0.
fn micros(acus: f64) -> u64 {
    if acus.is_finite() && acus > 0.0 {
        (acus.min(MAX_SESSION_ACUS) * MICROS).round() as u64
    } else {
        0
    }
}

/// Whether an `acus_consumed` value is outside what a session can report.
fn bad_acus(acus: f64) -> bool {
    !(acus.is_finite() && (0.0..=MAX_SESSION_ACUS).contains(&acus))
}

impl Aggregates {
    /// Whether a session with `labels` must be counted folded: its own group does not exist,
    /// would hold an undocumented value, and there are as many such groups as allowed.
    fn must_fold(&self, interner: &Interner, labels: &GroupKey) -> bool {
        self.undocumented_groups >= MAX_UNDOCUMENTED_GROUPS
            && !self.groups.contains_key(labels)
            && fold(interner, labels) != *labels
    }

    fn add(&mut self, r: &Record, interner: &Interner, settled: &[Sym; 3]) {
        let key = r.group(interner);
        let g = self.groups.entry(key).or_default();
        if g.sessions == 0 && fold(interner, &key) != key {
            self.undocumented_groups += 1;
        }
        g.sessions += 1;
        g.acus_micros = g.acus_micros.saturating_add(r.acus_micros);
        for s in r.pr_states.iter() {
            *self.pr_states.entry(*s).or_default() += 1;
        }
        self.archived += u64::from(r.archived);
        if !settled.contains(&r.labels.status) {
            let times = self.waiting.entry(r.labels.status_pair()).or_default();
            *times.entry(r.updated_at).or_default() += 1;
        }
    }

    fn remove(&mut self, r: &Record, interner: &Interner, settled: &[Sym; 3]) {
        let key = r.group(interner);
        if let Some(g) = self.groups.get_mut(&key) {
            g.sessions = g.sessions.saturating_sub(1);
            g.acus_micros = g.acus_micros.saturating_sub(r.acus_micros);
            if g.sessions == 0 {
                self.groups.remove(&key);
                if fold(interner, &key) != key {
                    self.undocumented_groups -= 1;
                }
            }
        }
        for s in r.pr_states.iter() {
            if let Some(n) = self.pr_states.get_mut(s) {
                *n -= 1;
                if *n == 0 {
                    self.pr_states.remove(s);
                }
            }
        }
        self.archived -= u64::from(r.archived);
        if !settled.contains(&r.labels.status) {
            let key = r.labels.status_pair();
            if let Some(times) = self.waiting.get_mut(&key) {
                if let Some(n) = times.get_mut(&r.updated_at) {
                    *n -= 1;
                    if *n == 0 {
                        times.remove(&r.updated_at);
                    }
                }
                if times.is_empty() {
                    self.waiting.remove(&key);
                }
            }
        }
    }
}

/// Logs a session whose `acus_consumed` is not-a-number, infinite, negative or beyond
/// [`MAX_SESSION_ACUS`] (once per change of the session, not per scrape).
fn warn_bad_acus(s: &Session<'_>) {
    if bad_acus(s.acus_consumed) {
        tracing::warn!(
            session_id = %cut(&s.session_id, MAX_SESSION_ID_LEN),
            acus_consumed = s.acus_consumed,
            "session reports an impossible acus_consumed; counted with {} ACUs",
            micros(s.acus_consumed) as f64 / MICROS
        );
    }
}

impl SessionStore {
    /// Number of sessions held.
    pub fn len(&self) -> usize {
        self.records.len()
    }

    /// True when no session is held.
    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }

    /// Adds or updates one session as listed by the API. `generation` marks it seen by the current
    /// listing; `transitions` says whether its changes count (see [`Transitions`]).
    pub fn upsert(&mut self, s: &Session<'_>, generation: u32, transitions: Transitions) -> Upsert {
        let count_transitions = transitions == Transitions::Counted;
        let key = SessionKey::new(&s.session_id);
        let interner = &mut self.interner;
        let labels = GroupKey {
            status: interner.intern(Label::Status, Some(&s.status)),
            status_detail: interner.intern(Label::StatusDetail, s.status_detail.as_deref()),
            origin: interner.intern(Label::Origin, s.origin.as_deref()),
            category: interner.intern(Label::Category, s.category.as_deref()),
        };
        let pr_states: Box<[Sym]> = s
            .pull_requests
            .iter()
            .map(|p| interner.intern(Label::PrState, p.pr_state.as_deref()))
            .collect();
        let attrs = self.spend.attrs(s);
        let url = s.url.as_deref();
        let mut incoming = Record {
            created_at: s.created_at,
            updated_at: s.updated_at,
            acus_micros: micros(s.acus_consumed),
            pr_states,
            labels,
            seen_gen: generation,
            archived: s.is_archived.unwrap_or(false),
            folded: false,
            attrs,
        };
        match self.records.get_mut(&key) {
            Some(stored) => {
                // Overlapping windows and retries can deliver an older copy late: keep the newer.
                if incoming.updated_at < stored.updated_at {
                    stored.seen_gen = stored.seen_gen.max(generation);
                    return Upsert::Unchanged;
                }
                let mut compare = stored.clone();
                compare.seen_gen = generation;
                compare.folded = false;
                if compare == incoming {
                    stored.seen_gen = generation;
                    return Upsert::Unchanged;
                }
                warn_bad_acus(s);
                self.aggregates
                    .remove(stored, &self.interner, &self.settled);
                incoming.folded = self.aggregates.must_fold(&self.interner, &incoming.labels);
                self.aggregates
                    .add(&incoming, &self.interner, &self.settled);
                spend_change(
                    &mut self.spend,
                    &self.settled,
                    &key,
                    Some(stored),
                    &incoming,
                    url,
                    count_transitions,
                );
                self.counters.acus_micros = self
                    .counters
                    .acus_micros
                    .saturating_add(incoming.acus_micros.saturating_sub(stored.acus_micros));
                // A new detail within a status counts too: a suspension's reason can change.
                let entered = incoming.labels.status_pair();
                if count_transitions && entered != stored.labels.status_pair() {
                    *self.counters.entered_status.entry(entered).or_default() += 1;
                }
                *stored = incoming;
                Upsert::Updated
            }
            None => {
                warn_bad_acus(s);
                incoming.folded = self.aggregates.must_fold(&self.interner, &incoming.labels);
                self.aggregates
                    .add(&incoming, &self.interner, &self.settled);
                spend_change(
                    &mut self.spend,
                    &self.settled,
                    &key,
                    None,
                    &incoming,
                    url,
                    count_transitions,
                );
                self.counters.acus_micros = self
                    .counters
                    .acus_micros
                    .saturating_add(incoming.acus_micros);
                *self
                    .counters
                    .created
                    .entry(incoming.labels.origin)
                    .or_default() += 1;
                if count_transitions {
                    let entered = incoming.labels.status_pair();
                    *self.counters.entered_status.entry(entered).or_default() += 1;
                }
                self.records.insert(key, incoming);
                Upsert::Inserted
            }
        }
    }

    /// Drops the sessions for which `keep` is false, keeping aggregates (not counters) in step.
    fn retain(&mut self, mut keep: impl FnMut(&Record) -> bool) -> usize {
        let before = self.records.len();
        let aggregates = &mut self.aggregates;
        let interner = &self.interner;
        let settled = &self.settled;
        let spend = &mut self.spend;
        self.records.retain(|key, r| {
            let k = keep(r);
            if !k {
                aggregates.remove(r, interner, settled);
                let active = !settled.contains(&r.labels.status);
                spend.remove(key, &r.attrs, r.labels.status, r.acus_micros, active);
            }
            k
        });
        before - self.records.len()
    }

    /// Drops the sessions that the listing of generation `generation` did not see. Returns how many.
    pub fn drop_unseen(&mut self, generation: u32) -> usize {
        self.retain(|r| r.seen_gen == generation)
    }

    /// Drops the sessions created before `cutoff` (the lookback window). Returns how many.
    pub fn drop_created_before(&mut self, cutoff: i64) -> usize {
        if self.oldest_created_at().is_none_or(|t| t >= cutoff) {
            return 0;
        }
        self.retain(|r| r.created_at >= cutoff)
    }

    fn oldest_created_at(&self) -> Option<i64> {
        self.records.values().map(|r| r.created_at).min()
    }

    /// Newest `updated_at` of any session held.
    pub fn newest_update(&self) -> Option<i64> {
        self.records.values().map(|r| r.updated_at).max()
    }

    /// Releases spare capacity after a big listing.
    pub fn shrink_to_fit(&mut self) {
        self.records.shrink_to_fit();
    }

    /// The label value of a symbol.
    pub fn label(&self, sym: Sym) -> &str {
        self.interner.resolve(sym)
    }

    /// Session count and ACU sum per (status, status_detail, origin, category).
    pub fn groups(&self) -> impl Iterator<Item = (&GroupKey, &GroupTotals)> {
        self.aggregates.groups.iter()
    }

    /// Pull requests per state.
    pub fn pull_requests(&self) -> impl Iterator<Item = (Sym, u64)> + '_ {
        self.aggregates.pr_states.iter().map(|(s, n)| (*s, *n))
    }

    /// Archived sessions.
    pub fn archived(&self) -> u64 {
        self.aggregates.archived
    }

    /// Oldest `updated_at` per (status, status_detail) among sessions not exited, errored or
    /// suspended.
    pub fn oldest_updates(&self) -> impl Iterator<Item = ((Sym, Sym), i64)> + '_ {
        self.aggregates
            .waiting
            .iter()
            .filter_map(|(k, times)| times.keys().next().map(|t| (*k, *t)))
    }

    /// The monotonic counters.
    pub fn counters(&self) -> &Counters {
        &self.counters
    }

    /// Starts the counters from zero once the first listing is complete: they count what
    /// happens while this process watches. (Starting from the listed totals would make a
    /// restart after deletions look like a counter reset followed by a jump of the whole
    /// total, which `rate()` reads as a burst.) Every documented origin and (status,
    /// status_detail), and every one present, gets its series at 0, so that `increase()`
    /// sees the first event (a series born at 1 has no earlier sample to increase from).
    pub fn start_counters(&mut self) {
        let mut counters = Counters::default();
        let interner = &mut self.interner;
        for origin in enums::ORIGINS {
            counters
                .created
                .insert(interner.intern(Label::Origin, Some(origin)), 0);
        }
        for (status, details) in enums::STATUS_DETAILS {
            let status = interner.intern(Label::Status, Some(status));
            for detail in *details {
                let pair = (status, interner.intern(Label::StatusDetail, *detail));
                counters.entered_status.insert(pair, 0);
            }
        }
        for key in self.aggregates.groups.keys() {
            counters.created.insert(key.origin, 0);
            counters.entered_status.insert(key.status_pair(), 0);
        }
        self.counters = counters;
    }

    /// Applies the spend settings; only an empty store takes them (the aggregates of sessions
    /// already held were kept under the old ones).
    pub fn set_spend_settings(&mut self, settings: SpendSettings) {
        if self.spend.settings() != settings && self.records.is_empty() {
            self.spend = Spend::new(settings);
        }
    }

    /// The spend breakdowns, ended-session histograms and top active sessions.
    pub fn spend(&self) -> &Spend {
        &self.spend
    }

    /// Starts the spend counters from zero, as [`SessionStore::start_counters`] does the others.
    pub fn start_spend_counters(&mut self) {
        self.spend.start_counters();
    }
}

/// Keeps the spend aggregates in step with one session's change (`old` is `None` for a new
/// session): breakdowns, counters, ended-session histograms, top active sessions.
fn spend_change(
    spend: &mut Spend,
    settled: &[Sym; 3],
    key: &SessionKey,
    old: Option<&Record>,
    new: &Record,
    url: Option<&str>,
    count_transitions: bool,
) {
    let active = |r: &Record| !settled.contains(&r.labels.status);
    if let Some(old) = old {
        spend.remove(
            key,
            &old.attrs,
            old.labels.status,
            old.acus_micros,
            active(old),
        );
    }
    spend.add(
        key,
        &new.attrs,
        new.labels.status,
        new.acus_micros,
        active(new),
        url,
    );
    // Same rule as the org's ACU counter: growth only, credited to the current values.
    let grown = new
        .acus_micros
        .saturating_sub(old.map_or(0, |o| o.acus_micros));
    spend.consumed(&new.attrs, grown);
    // settled[..2] is exit and error: a session seen moving into one of them has ended.
    let ends = settled[..2].contains(&new.labels.status)
        && old.is_none_or(|o| o.labels.status != new.labels.status);
    if count_transitions && ends {
        // API timestamps compared only with each other; a clock oddity counts as 0, and a
        // session dated centuries ahead as the longest a session is taken to run.
        let duration = new
            .updated_at
            .saturating_sub(new.created_at)
            .clamp(0, MAX_SESSION_DURATION_SECONDS) as u64;
        spend.ended(
            new.labels.origin,
            new.labels.status,
            duration,
            new.acus_micros,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::SessionPage;
    use Transitions::{Counted, Ignored};
    use std::collections::BTreeSet;

    fn page(json: &str) -> SessionPage<'_> {
        SessionPage::from_str(json).unwrap()
    }

    fn item(id: &str, status: &str, detail: &str, acus: f64, updated: i64) -> String {
        format!(
            r#"{{"session_id":"{id}","url":"u","status":"{status}","status_detail":{detail},
            "origin":"slack","category":null,"tags":[],"org_id":"o","created_at":100,
            "updated_at":{updated},"acus_consumed":{acus},"pull_requests":[{{"pr_url":"p","pr_state":"open"}}]}}"#
        )
    }

    fn upsert(
        store: &mut SessionStore,
        json: &str,
        generation: u32,
        transitions: Transitions,
    ) -> Upsert {
        let body = format!(r#"{{"items":[{json}]}}"#);
        let p = page(&body);
        store.upsert(&p.items[0], generation, transitions)
    }

    /// Upserts as the first listing's generation.
    fn put(store: &mut SessionStore, json: &str, transitions: Transitions) -> Upsert {
        upsert(store, json, 1, transitions)
    }

    fn totals(sessions: u64, acus_micros: u64) -> Option<GroupTotals> {
        Some(GroupTotals {
            sessions,
            acus_micros,
        })
    }

    fn group(store: &SessionStore, status: &str) -> Option<GroupTotals> {
        store
            .groups()
            .find(|(k, _)| store.label(k.status) == status)
            .map(|(_, g)| *g)
    }

    #[test]
    fn upsert_keeps_aggregates_and_counters_in_step() {
        let mut s = SessionStore::default();
        assert_eq!(
            put(
                &mut s,
                &item("a", "running", r#""working""#, 1.25, 10),
                Ignored
            ),
            Upsert::Inserted
        );
        assert_eq!(
            put(
                &mut s,
                &item("b", "running", r#""working""#, 2.0, 10),
                Ignored
            ),
            Upsert::Inserted
        );
        assert_eq!(group(&s, "running"), totals(2, 3_250_000));
        assert_eq!(s.counters().acus_micros, 3_250_000);

        // Same copy again: nothing changes (a resumed listing re-fetches pages).
        assert_eq!(
            put(
                &mut s,
                &item("a", "running", r#""working""#, 1.25, 10),
                Counted
            ),
            Upsert::Unchanged
        );
        // a moves to error and burns more ACUs.
        assert_eq!(
            put(&mut s, &item("a", "error", "null", 3.0, 20), Counted),
            Upsert::Updated
        );
        assert_eq!(group(&s, "running"), totals(1, 2_000_000));
        assert_eq!(group(&s, "error"), totals(1, 3_000_000));
        assert_eq!(s.counters().acus_micros, 5_000_000);
        let error = s.interner.lookup("error").unwrap();
        let none = s.interner.lookup("none").unwrap();
        assert_eq!(s.counters().entered_status.get(&(error, none)), Some(&1));
        // An older copy arriving late is ignored.
        assert_eq!(
            put(
                &mut s,
                &item("a", "running", r#""working""#, 1.25, 10),
                Counted
            ),
            Upsert::Unchanged
        );
        assert_eq!(group(&s, "error").unwrap().sessions, 1);
        // ACUs reported lower (a correction) never make the counter go down.
        put(&mut s, &item("a", "error", "null", 0.5, 30), Counted);
        assert_eq!(s.counters().acus_micros, 5_000_000);
        let pr = s.pull_requests().map(|(_, n)| n).sum::<u64>();
        assert_eq!(pr, 2);
    }

    #[test]
    fn drop_unseen_and_empty_groups_vanish() {
        let mut s = SessionStore::default();
        put(
            &mut s,
            &item("a", "running", r#""waiting_for_user""#, 1.0, 10),
            Ignored,
        );
        put(&mut s, &item("b", "exit", "null", 1.0, 10), Ignored);
        upsert(&mut s, &item("b", "exit", "null", 1.0, 10), 2, Counted);
        assert_eq!(s.oldest_updates().count(), 1);
        assert_eq!(s.drop_unseen(2), 1);
        assert_eq!(s.len(), 1);
        assert!(group(&s, "running").is_none());
        assert_eq!(s.oldest_updates().count(), 0);
        assert_eq!(s.pull_requests().map(|(_, n)| n).sum::<u64>(), 1);
        // Counters remember the dropped session.
        assert_eq!(s.counters().acus_micros, 2_000_000);
        assert_eq!(s.counters().created.values().sum::<u64>(), 2);
    }

    /// A session with the four labels given (`None` for null), as JSON.
    fn labelled(
        id: &str,
        status: &str,
        detail: Option<&str>,
        origin: &str,
        category: &str,
    ) -> String {
        let q = |v: Option<&str>| v.map_or("null".to_string(), |v| format!(r#""{v}""#));
        item(id, status, &q(detail), 1.0, 10)
            .replace(
                r#""origin":"slack""#,
                &format!(r#""origin":{}"#, q(Some(origin))),
            )
            .replace(
                r#""category":null"#,
                &format!(r#""category":{}"#, q(Some(category))),
            )
    }

    /// Sessions per status label, as exposed.
    fn by_status(s: &SessionStore) -> BTreeMap<String, u64> {
        let mut out = BTreeMap::new();
        for (k, g) in s.groups() {
            *out.entry(s.label(k.status).to_string()).or_default() += g.sessions;
        }
        out
    }

    #[test]
    fn documented_values_never_fold_and_undocumented_combinations_are_bounded() {
        let mut s = SessionStore::default();
        let mut n = 0;
        // Undocumented details, origins and categories first: 4,096 combinations, 16 more
        // details than a label admits, all under the documented status `running`.
        for d in 0..16 + 4 {
            for o in 0..16 {
                for c in 0..16 {
                    let json = labelled(
                        &format!("u{n}"),
                        "running",
                        Some(&format!("d{d}")),
                        &format!("o{o}"),
                        &format!("c{c}"),
                    );
                    upsert(&mut s, &json, 1, Ignored);
                    n += 1;
                }
            }
        }
        let undocumented = s.groups().count();
        // The cap plus the folded groups (running, overflow-or-documented ...): here one.
        assert_eq!(undocumented, MAX_UNDOCUMENTED_GROUPS + 1);
        assert_eq!(by_status(&s).get("running"), Some(&(n as u64)));
        assert!(s.groups().all(|(k, _)| s.label(k.status) == "running"));
        // Then every documented combination: each keeps its own group.
        let mut documented = 0;
        for (status, details) in enums::STATUS_DETAILS {
            for detail in *details {
                for origin in enums::ORIGINS {
                    for category in enums::CATEGORIES {
                        let json =
                            labelled(&format!("k{documented}"), status, *detail, origin, category);
                        upsert(&mut s, &json, 1, Ignored);
                        documented += 1;
                    }
                }
            }
        }
        assert_eq!(s.groups().count(), undocumented + documented);
        let sessions: u64 = s.groups().map(|(_, g)| g.sessions).sum();
        assert_eq!(sessions, (n + documented) as u64);
        for (status, details) in enums::STATUS_DETAILS {
            let per_status = details.len() * enums::ORIGINS.len() * enums::CATEGORIES.len();
            let extra = if *status == "running" { n } else { 0 };
            assert_eq!(
                by_status(&s).get(*status),
                Some(&((per_status + extra) as u64)),
                "{status}"
            );
        }
        // A full re-listing that sees none of them empties every group, and the cap's room
        // comes back.
        assert_eq!(s.drop_unseen(2), n + documented);
        assert_eq!(s.groups().count(), 0);
        assert_eq!(s.aggregates.undocumented_groups, 0);
    }

    #[test]
    fn absurd_acus_neither_wrap_nor_go_negative() {
        let mut s = SessionStore::default();
        for (i, acus) in ["1e308", "1e308", "-3", "2"].iter().enumerate() {
            let json = item(&format!("s{i}"), "running", "null", 0.0, 10).replace(
                r#""acus_consumed":0"#,
                &format!(r#""acus_consumed":{acus}"#),
            );
            upsert(&mut s, &json, 1, Ignored);
        }
        let g = group(&s, "running").unwrap();
        assert_eq!(g.sessions, 4);
        assert_eq!(g.acus_micros, 2 * 1_000_000_000_000_000 + 2_000_000);
        assert_eq!(s.counters().acus_micros, g.acus_micros);
    }

    #[test]
    fn an_ending_dated_millennia_ahead_counts_the_longest_duration() {
        let mut s = SessionStore::default();
        put(
            &mut s,
            &item("a", "running", r#""working""#, 1.0, 100),
            Ignored,
        );
        s.start_counters();
        let far = crate::api::model::MAX_UNIX;
        put(&mut s, &item("a", "exit", "null", 1.0, far), Counted);
        let (_, ended) = s.spend().ended_sessions().next().unwrap();
        assert_eq!(ended.duration.count(), 1);
        assert_eq!(ended.duration.sum, MAX_SESSION_DURATION_SECONDS as u64);
    }

    #[test]
    fn oldest_update_per_waiting_state() {
        let mut s = SessionStore::default();
        for (id, status, detail, updated) in [
            ("a", "running", r#""waiting_for_user""#, 50),
            ("b", "running", r#""waiting_for_user""#, 40),
            ("c", "suspended", r#""inactivity""#, 10),
        ] {
            put(&mut s, &item(id, status, detail, 0.0, updated), Ignored);
        }
        let oldest: Vec<_> = s
            .oldest_updates()
            .map(|((st, d), t)| (s.label(st).to_string(), s.label(d).to_string(), t))
            .collect();
        assert_eq!(
            oldest,
            vec![("running".into(), "waiting_for_user".into(), 40)]
        );
        put(
            &mut s,
            &item("b", "running", r#""working""#, 0.0, 60),
            Counted,
        );
        let oldest: BTreeMap<_, _> = s
            .oldest_updates()
            .map(|((_, d), t)| (s.label(d).to_string(), t))
            .collect();
        assert_eq!(oldest.get("waiting_for_user"), Some(&50));
        assert_eq!(oldest.get("working"), Some(&60));
    }
    /// (status, status_detail) -> count, as label values.
    fn entered(s: &SessionStore) -> BTreeMap<(String, String), u64> {
        s.counters()
            .entered_status
            .iter()
            .map(|((st, d), n)| ((s.label(*st).into(), s.label(*d).into()), *n))
            .collect()
    }

    #[test]
    fn counters_start_at_zero_for_every_documented_value_and_count_detail_changes() {
        let mut s = SessionStore::default();
        for (id, status, detail) in [
            ("a", "running", r#""working""#),
            ("b", "blocked", r#""by_cosmic_rays""#),
        ] {
            put(&mut s, &item(id, status, detail, 0.0, 10), Ignored);
        }
        s.start_counters();
        let zero = entered(&s);
        let documented: usize = enums::STATUS_DETAILS.iter().map(|(_, d)| d.len()).sum();
        // Every documented pair, plus the undocumented one present at the first listing.
        assert_eq!(zero.len(), documented + 1);
        assert!(zero.values().all(|n| *n == 0));
        for pair in [
            ("error", "none"),
            ("exit", "none"),
            ("suspended", "out_of_credits"),
            ("suspended", "payment_declined"),
            ("running", "waiting_for_approval"),
            ("blocked", "by_cosmic_rays"),
        ] {
            assert_eq!(
                zero.get(&(pair.0.into(), pair.1.into())),
                Some(&0),
                "{pair:?}"
            );
        }
        let origins: BTreeSet<&str> = s.counters().created.keys().map(|o| s.label(*o)).collect();
        assert_eq!(origins, enums::ORIGINS.iter().copied().collect());

        // A session suspended for inactivity whose reason becomes out_of_credits entered
        // (suspended, out_of_credits); rewriting the same copy counts nothing.
        put(
            &mut s,
            &item("a", "suspended", r#""inactivity""#, 0.0, 20),
            Counted,
        );
        put(
            &mut s,
            &item("a", "suspended", r#""out_of_credits""#, 0.0, 30),
            Counted,
        );
        put(
            &mut s,
            &item("a", "suspended", r#""out_of_credits""#, 0.0, 30),
            Counted,
        );
        // A value no one documented gets its series when first seen.
        put(&mut s, &item("c", "scheduled", "null", 0.0, 30), Counted);
        let after = entered(&s);
        let get = |st: &str, d: &str| after.get(&(st.into(), d.into())).copied();
        assert_eq!(get("suspended", "inactivity"), Some(1));
        assert_eq!(get("suspended", "out_of_credits"), Some(1));
        assert_eq!(get("scheduled", "none"), Some(1));
        assert_eq!(after.values().sum::<u64>(), 3);
        assert_eq!(s.counters().created.values().sum::<u64>(), 1);
    }
}
