//! Who and what burns the ACUs: sessions and ACUs per user, playbook and tag, histograms of the
//! sessions seen ending, and the active sessions with the most ACUs. Kept up to date on every
//! change of the store, like its other aggregates, so that a scrape never walks the sessions.

use std::collections::{BTreeSet, HashMap};

use indexmap::IndexSet;

use super::intern::{NONE, OVERFLOW, Sym, cut, label_value};
use super::key::SessionKey;
use crate::api::Session;
pub use crate::config::SpendSettings;

/// Distinct tag combinations kept per org; later ones count as the single tag `overflow`.
const MAX_TAG_SETS: usize = 20_000;
/// Tags of one session counted; the rest fold into `overflow`.
const MAX_TAGS_PER_SESSION: usize = 32;
/// Longest session url kept; a longer one (a broken upstream) is cut.
const MAX_URL_LEN: usize = 512;
/// Where the web app shows a session; a url of exactly this form is not stored.
const SESSION_URL_PREFIX: &str = "https://app.devin.ai/sessions/";

/// Upper bounds of `devin_ended_session_duration_seconds`: 1 minute to 1 day.
pub const DURATION_BOUNDS_SECONDS: [u64; 10] = [
    60, 300, 600, 1800, 3600, 7200, 14_400, 28_800, 43_200, 86_400,
];
/// Upper bounds of `devin_ended_session_acus`, in millionths: 0.1 to 200 ACUs.
pub const ACU_BOUNDS_MICROS: [u64; 10] = [
    100_000,
    500_000,
    1_000_000,
    2_000_000,
    5_000_000,
    10_000_000,
    20_000_000,
    50_000_000,
    100_000_000,
    200_000_000,
];

/// A session's breakdown values: user, playbook, tag set (symbols of [`Spend`], not of the
/// store's interner). Six bytes per session whatever the number of tags.
pub type Attrs = [Sym; 3];

/// The three breakdowns, in the order of [`Attrs`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dimension {
    /// `user_id`, else `service_user_id`.
    User,
    /// `playbook_id`.
    Playbook,
    /// Each tag.
    Tag,
}

impl Dimension {
    /// All three, in the order of [`Attrs`].
    pub const ALL: [Dimension; 3] = [Dimension::User, Dimension::Playbook, Dimension::Tag];
}

/// Label values of one breakdown: `none`, `overflow`, then at most `max` others, first come
/// first kept. A value past the cap folds into `overflow` for good (values are never
/// forgotten), so that no counter series ever moves and counters stay monotonic.
#[derive(Debug)]
struct Values {
    set: IndexSet<Box<str>>,
    max: usize,
}

impl Values {
    fn new(max: usize) -> Self {
        let mut set = IndexSet::new();
        set.insert(NONE.into());
        set.insert(OVERFLOW.into());
        Values { set, max }
    }

    fn intern(&mut self, value: Option<&str>) -> Sym {
        let Some(v) = label_value(value) else {
            return 0;
        };
        if let Some(i) = self.set.get_index_of(v.as_ref()) {
            return i as Sym;
        }
        if self.set.len() >= self.max + 2 || self.set.len() > Sym::MAX as usize {
            return 1;
        }
        self.set.insert_full(v.into()).0 as Sym
    }

    fn resolve(&self, sym: Sym) -> &str {
        self.set.get_index(sym as usize).map_or(NONE, |v| v)
    }
}

/// Aggregates of one breakdown.
#[derive(Debug, Default)]
struct Breakdown {
    /// Sessions per (value, status).
    sessions: HashMap<(Sym, Sym), u64>,
    /// Sessions and ACU sum (millionths) per value; the count says when the series goes.
    acus: HashMap<Sym, (u64, u64)>,
    /// ACUs consumed (millionths) since the org's first listing completed, per value.
    consumed: HashMap<Sym, u64>,
}

impl Breakdown {
    fn add(&mut self, value: Sym, status: Sym, acus: u64) {
        *self.sessions.entry((value, status)).or_default() += 1;
        let a = self.acus.entry(value).or_default();
        a.0 += 1;
        a.1 = a.1.saturating_add(acus);
    }

    fn remove(&mut self, value: Sym, status: Sym, acus: u64) {
        if let Some(n) = self.sessions.get_mut(&(value, status)) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                self.sessions.remove(&(value, status));
            }
        }
        if let Some(a) = self.acus.get_mut(&value) {
            a.0 = a.0.saturating_sub(1);
            a.1 = a.1.saturating_sub(acus);
            if a.0 == 0 {
                self.acus.remove(&value);
            }
        }
    }
}

/// A histogram with fixed integer bounds (observations in the same unit).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Histogram {
    bounds: &'static [u64],
    /// Observations per bucket (not cumulative); the last counts those above every bound.
    counts: Vec<u64>,
    /// Sum of observations.
    pub sum: u64,
}

impl Histogram {
    fn new(bounds: &'static [u64]) -> Self {
        Histogram {
            bounds,
            counts: vec![0; bounds.len() + 1],
            sum: 0,
        }
    }

    fn observe(&mut self, v: u64) {
        let i = self.bounds.partition_point(|b| *b < v);
        self.counts[i] += 1;
        self.sum = self.sum.saturating_add(v);
    }

    /// Observations in all.
    pub fn count(&self) -> u64 {
        self.counts.iter().sum()
    }

    /// (upper bound, observations at or below it), bound by bound, without `+Inf`.
    pub fn cumulative(&self) -> impl Iterator<Item = (u64, u64)> + '_ {
        self.bounds
            .iter()
            .zip(self.counts.iter().scan(0, |acc, n| {
                *acc += n;
                Some(*acc)
            }))
            .map(|(b, n)| (*b, n))
    }
}

/// Histograms of the sessions seen ending with one (origin, status).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ended {
    /// `updated_at - created_at`, seconds.
    pub duration: Histogram,
    /// ACUs consumed, millionths.
    pub acus: Histogram,
}

/// Active sessions ordered by ACUs, for the top N. Packed ids (nearly all) are kept apart
/// from text ones so that an entry takes 24 bytes, not 32. Urls are kept only when they
/// differ from the usual `https://app.devin.ai/sessions/<hex>` of a packed id (checked on
/// write, never assumed), and only while the session is active.
#[derive(Debug, Default)]
struct Active {
    packed: BTreeSet<(u64, [u8; 16])>,
    text: BTreeSet<(u64, Box<str>)>,
    urls: HashMap<SessionKey, Box<str>>,
}

impl Active {
    fn insert(&mut self, acus: u64, key: &SessionKey) {
        match key {
            SessionKey::Packed(b) => self.packed.insert((acus, *b)),
            SessionKey::Text(t) => self.text.insert((acus, t.clone())),
        };
    }

    fn remove(&mut self, acus: u64, key: &SessionKey) {
        match key {
            SessionKey::Packed(b) => self.packed.remove(&(acus, *b)),
            SessionKey::Text(t) => self.text.remove(&(acus, t.clone())),
        };
    }

    /// The `n` entries with the most ACUs, most first; ties go to the greater key.
    fn top(&self, n: usize) -> Vec<(u64, SessionKey)> {
        let packed = self.packed.iter().rev().take(n);
        let text = self.text.iter().rev().take(n);
        let mut top: Vec<(u64, SessionKey)> = packed
            .map(|(a, b)| (*a, SessionKey::Packed(*b)))
            .chain(text.map(|(a, t)| (*a, SessionKey::Text(t.clone()))))
            .collect();
        top.sort_unstable_by(|x, y| y.cmp(x));
        top.truncate(n);
        top
    }
}

/// Whether `url` is the usual url of a packed id (checked without allocating: it runs on
/// every change of an active session).
fn is_usual_url(key: &SessionKey, url: &str) -> bool {
    let (SessionKey::Packed(bytes), Some(hex)) = (key, url.strip_prefix(SESSION_URL_PREFIX)) else {
        return false;
    };
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    hex.len() == 32
        && bytes
            .iter()
            .zip(hex.as_bytes().chunks_exact(2))
            .all(|(b, pair)| {
                pair[0] == DIGITS[(b >> 4) as usize] && pair[1] == DIGITS[(b & 15) as usize]
            })
}

/// The usual url of a session id, if the key is a packed `devin-<hex>` id.
fn usual_url(key: &SessionKey) -> Option<String> {
    match key {
        SessionKey::Packed(_) => Some(format!(
            "{SESSION_URL_PREFIX}{}",
            &key.id()["devin-".len()..]
        )),
        SessionKey::Text(_) => None,
    }
}

/// The spend aggregates of one org.
#[derive(Debug)]
pub struct Spend {
    settings: SpendSettings,
    values: [Values; 3],
    tag_sets: IndexSet<Box<[Sym]>>,
    breakdowns: [Breakdown; 3],
    ended: HashMap<(Sym, Sym), Ended>,
    active: Active,
}

impl Default for Spend {
    fn default() -> Self {
        Spend::new(SpendSettings::NONE)
    }
}

impl Spend {
    /// Empty aggregates under `settings`.
    pub fn new(settings: SpendSettings) -> Self {
        let mut tag_sets = IndexSet::new();
        tag_sets.insert(Box::from([]));
        tag_sets.insert(Box::from([1 as Sym]));
        Spend {
            settings,
            values: std::array::from_fn(|_| Values::new(settings.attribution_max_values)),
            tag_sets,
            breakdowns: Default::default(),
            ended: HashMap::new(),
            active: Active::default(),
        }
    }

    /// The settings in force.
    pub fn settings(&self) -> SpendSettings {
        self.settings
    }

    fn enabled(&self) -> [bool; 3] {
        let a = self.settings.attribution;
        [a.user, a.playbook, a.tag]
    }

    /// The breakdown values of a listed session (all `none` for breakdowns that are off).
    pub fn attrs(&mut self, s: &Session<'_>) -> Attrs {
        let [user, playbook, tag] = self.enabled();
        let mut attrs = [0; 3];
        if user {
            // An empty id is no id: fall back as for null.
            let who = [&s.user_id, &s.service_user_id]
                .into_iter()
                .find_map(|v| v.as_deref().filter(|v| !v.is_empty()));
            attrs[0] = self.values[0].intern(who);
        }
        if playbook {
            attrs[1] = self.values[1].intern(s.playbook_id.as_deref());
        }
        if tag && !s.tags.is_empty() {
            let mut set: Vec<Sym> = s
                .tags
                .iter()
                .filter(|t| !t.is_empty())
                .enumerate()
                .map(|(i, t)| {
                    if i < MAX_TAGS_PER_SESSION {
                        self.values[2].intern(Some(t))
                    } else {
                        1
                    }
                })
                .collect();
            set.sort_unstable();
            set.dedup();
            attrs[2] = match self.tag_sets.get_index_of(set.as_slice()) {
                Some(i) => i as Sym,
                None if self.tag_sets.len() < MAX_TAG_SETS => {
                    self.tag_sets.insert_full(set.into_boxed_slice()).0 as Sym
                }
                None => 1,
            };
        }
        attrs
    }

    /// Calls `f` with each breakdown that is on and the session's value(s) in it.
    fn each_value(&mut self, attrs: &Attrs, mut f: impl FnMut(&mut Breakdown, Sym)) {
        let on = self.enabled();
        for (d, b) in self.breakdowns.iter_mut().enumerate().take(2) {
            if on[d] {
                f(b, attrs[d]);
            }
        }
        if on[2] {
            let set = self
                .tag_sets
                .get_index(attrs[2] as usize)
                .map_or(&[][..], |s| s);
            if set.is_empty() {
                f(&mut self.breakdowns[2], 0);
            }
            for tag in set {
                f(&mut self.breakdowns[2], *tag);
            }
        }
    }

    /// A session enters the aggregates. `url` matters only for an active session.
    pub fn add(
        &mut self,
        key: &SessionKey,
        attrs: &Attrs,
        status: Sym,
        acus: u64,
        active: bool,
        url: Option<&str>,
    ) {
        self.each_value(attrs, |b, v| b.add(v, status, acus));
        if active && self.settings.top_active_sessions > 0 {
            self.active.insert(acus, key);
            let url = cut(url.unwrap_or(""), MAX_URL_LEN);
            if is_usual_url(key, url) {
                self.active.urls.remove(key);
            } else {
                self.active.urls.insert(key.clone(), url.into());
            }
        }
    }

    /// A session leaves the aggregates (as it was added).
    pub fn remove(
        &mut self,
        key: &SessionKey,
        attrs: &Attrs,
        status: Sym,
        acus: u64,
        active: bool,
    ) {
        self.each_value(attrs, |b, v| b.remove(v, status, acus));
        if active && self.settings.top_active_sessions > 0 {
            self.active.remove(acus, key);
            self.active.urls.remove(key);
        }
    }

    /// ACUs newly consumed by a session (0 still makes its values' counters appear).
    pub fn consumed(&mut self, attrs: &Attrs, micros: u64) {
        self.each_value(attrs, |b, v| {
            let c = b.consumed.entry(v).or_default();
            *c = c.saturating_add(micros);
        });
    }

    /// A session seen ending, with its duration (seconds) and ACUs (millionths) then.
    pub fn ended(&mut self, origin: Sym, status: Sym, duration: u64, acus: u64) {
        let e = self.ended.entry((origin, status)).or_insert_with(|| Ended {
            duration: Histogram::new(&DURATION_BOUNDS_SECONDS),
            acus: Histogram::new(&ACU_BOUNDS_MICROS),
        });
        e.duration.observe(duration);
        e.acus.observe(acus);
    }

    /// Starts the counters from zero, each value present with its series at 0 (see
    /// `SessionStore::start_counters`).
    pub fn start_counters(&mut self) {
        for b in &mut self.breakdowns {
            b.consumed = b.acus.keys().map(|v| (*v, 0)).collect();
        }
    }

    /// The breakdowns that are on.
    pub fn dimensions(&self) -> impl Iterator<Item = Dimension> + '_ {
        let on = self.enabled();
        Dimension::ALL.into_iter().filter(move |d| on[*d as usize])
    }

    /// The label value of a symbol of breakdown `d`.
    pub fn label(&self, d: Dimension, sym: Sym) -> &str {
        self.values[d as usize].resolve(sym)
    }

    /// Sessions per (value, status symbol of the store) of breakdown `d`.
    pub fn sessions(&self, d: Dimension) -> impl Iterator<Item = ((Sym, Sym), u64)> + '_ {
        self.breakdowns[d as usize]
            .sessions
            .iter()
            .map(|(k, n)| (*k, *n))
    }

    /// ACU sum (millionths) per value of breakdown `d`.
    pub fn acus(&self, d: Dimension) -> impl Iterator<Item = (Sym, u64)> + '_ {
        self.breakdowns[d as usize]
            .acus
            .iter()
            .map(|(v, (_, micros))| (*v, *micros))
    }

    /// ACUs consumed (millionths) per value of breakdown `d` since the counters started.
    pub fn consumed_totals(&self, d: Dimension) -> impl Iterator<Item = (Sym, u64)> + '_ {
        self.breakdowns[d as usize]
            .consumed
            .iter()
            .map(|(v, n)| (*v, *n))
    }

    /// Histograms of the sessions seen ending, per (origin, status) symbols of the store.
    pub fn ended_sessions(&self) -> impl Iterator<Item = ((Sym, Sym), &Ended)> + '_ {
        self.ended.iter().map(|(k, e)| (*k, e))
    }

    /// The active sessions with the most ACUs, most first: (session id, url, ACUs in
    /// millionths). Ties go to the greater key, so the choice is stable.
    pub fn top_active(&self) -> impl Iterator<Item = (String, String, u64)> + '_ {
        self.active
            .top(self.settings.top_active_sessions)
            .into_iter()
            .map(|(acus, key)| {
                let url = match self.active.urls.get(&key) {
                    Some(u) => u.to_string(),
                    None => usual_url(&key).unwrap_or_default(),
                };
                (key.id(), url, acus)
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(n: u8) -> SessionKey {
        SessionKey::new(&format!("devin-{}", format!("{n:02x}").repeat(16)))
    }

    #[test]
    fn values_cap_into_overflow_for_good() {
        let mut v = Values::new(2);
        let a = v.intern(Some("a"));
        let b = v.intern(Some("b"));
        assert_eq!((v.resolve(a), v.resolve(b)), ("a", "b"));
        let c = v.intern(Some("c"));
        assert_eq!(v.resolve(c), OVERFLOW);
        let none = v.intern(None);
        assert_eq!(v.resolve(none), NONE);
        assert_eq!(v.intern(Some("a")), a);
        assert_eq!(v.intern(Some("c")), c);
    }

    #[test]
    fn histogram_buckets_are_cumulative_and_inclusive() {
        let mut h = Histogram::new(&DURATION_BOUNDS_SECONDS);
        for v in [0, 60, 61, 100_000] {
            h.observe(v);
        }
        let c: Vec<_> = h.cumulative().collect();
        assert_eq!(c[0], (60, 2));
        assert_eq!(c[1], (300, 3));
        assert_eq!(c.last(), Some(&(86_400, 3)));
        assert_eq!((h.count(), h.sum), (4, 100_121));
    }

    #[test]
    fn top_active_keeps_urls_only_when_unusual() {
        let mut s = Spend::new(SpendSettings {
            top_active_sessions: 2,
            ..SpendSettings::NONE
        });
        let (k1, k2, k3) = (key(1), key(2), key(3));
        let usual = usual_url(&k1).unwrap();
        assert_eq!(
            usual,
            "https://app.devin.ai/sessions/01010101010101010101010101010101"
        );
        assert!(is_usual_url(&k1, &usual));
        for other in [
            "https://app.devin.ai/sessions/0101010101010101010101010101010",
            "https://app.devin.ai/sessions/01010101010101010101010101010102",
            "https://app.devin.ai/sessions/0101010101010101010101010101010A",
            "http://app.devin.ai/sessions/01010101010101010101010101010101",
        ] {
            assert!(!is_usual_url(&k1, other), "{other}");
        }
        assert!(!is_usual_url(&SessionKey::new("other-1"), "x"));
        s.add(&k1, &[0; 3], 0, 5, true, Some(&usual));
        s.add(&k2, &[0; 3], 0, 9, true, Some("https://elsewhere/x"));
        s.add(&k3, &[0; 3], 0, 7, true, None);
        assert_eq!(s.active.urls.len(), 2);
        // A text id ranks among the packed ones, and leaves as it came.
        let text = SessionKey::new("session-42");
        s.add(&text, &[0; 3], 0, 8, true, Some("https://x/42"));
        let top: Vec<_> = s.top_active().map(|(id, _, a)| (id, a)).collect();
        assert_eq!(top, [(k2.id(), 9), ("session-42".to_string(), 8)]);
        s.remove(&text, &[0; 3], 0, 8, true);
        let top: Vec<_> = s.top_active().map(|(_, u, a)| (u, a)).collect();
        assert_eq!(
            top,
            [("https://elsewhere/x".to_string(), 9), (String::new(), 7)]
        );
        s.remove(&k2, &[0; 3], 0, 9, true);
        let top: Vec<_> = s.top_active().collect();
        assert_eq!(top[1], (k1.id(), usual, 5));
        assert_eq!(s.active.urls.len(), 1);
    }
}
