//! The spend families of a scrape: breakdowns by user, playbook and tag, histograms of the
//! sessions seen ending, and the top active sessions. Read from aggregates the store keeps
//! on write; nothing here walks the sessions.

use super::families::{
    ENDED_ACUS, ENDED_DURATION, FamilyDef, PLAYBOOK_ACUS, PLAYBOOK_CONSUMED, PLAYBOOK_SESSIONS,
    TAG_ACUS, TAG_CONSUMED, TAG_SESSIONS, TOP_ACTIVE, USER_ACUS, USER_CONSUMED, USER_SESSIONS,
};
use super::text::{Bound, Family};
use crate::sync::SessionStore;
use crate::sync::spend::{Dimension, Ended, Histogram};

/// The buckets, sum and count of a histogram kept in whole units, each written as `unit`
/// reads it: seconds as they are, or millionths of an ACU as ACUs, exactly.
fn histogram(family: &mut Family, values: &[&str], h: &Histogram, unit: fn(u64) -> Bound) {
    family.histogram_series(
        values,
        h.cumulative().map(|(b, n)| (unit(b), n)),
        unit(h.sum),
        h.count(),
    );
}

/// Whole seconds.
fn seconds(v: u64) -> Bound {
    Bound::Float(v as f64)
}

/// Families per breakdown: sessions, ACUs (gauge), ACUs consumed (counter).
struct BreakdownFamilies {
    dimension: Dimension,
    sessions: Family,
    acus: Family,
    consumed: Family,
}

/// The spend families under construction.
pub struct SpendFamilies {
    breakdowns: Vec<BreakdownFamilies>,
    duration: Family,
    ended_acus: Family,
    top: Family,
}

/// The families of a breakdown: sessions, ACUs (gauge), ACUs consumed (counter).
fn breakdown_families(d: Dimension) -> [&'static FamilyDef; 3] {
    match d {
        Dimension::User => [&USER_SESSIONS, &USER_ACUS, &USER_CONSUMED],
        Dimension::Playbook => [&PLAYBOOK_SESSIONS, &PLAYBOOK_ACUS, &PLAYBOOK_CONSUMED],
        Dimension::Tag => [&TAG_SESSIONS, &TAG_ACUS, &TAG_CONSUMED],
    }
}

impl Default for SpendFamilies {
    fn default() -> Self {
        let breakdowns = Dimension::ALL
            .into_iter()
            .map(|dimension| {
                let [sessions, acus, consumed] = breakdown_families(dimension);
                BreakdownFamilies {
                    dimension,
                    sessions: Family::new(sessions),
                    acus: Family::new(acus),
                    consumed: Family::new(consumed),
                }
            })
            .collect();
        SpendFamilies {
            breakdowns,
            duration: Family::new(&ENDED_DURATION),
            ended_acus: Family::new(&ENDED_ACUS),
            top: Family::new(&TOP_ACTIVE),
        }
    }
}

impl SpendFamilies {
    /// Adds the series of one org whose first listing is complete.
    pub fn push_org(&mut self, org_id: &str, store: &SessionStore) {
        let spend = store.spend();
        for d in spend.dimensions() {
            let Some(f) = self.breakdowns.iter_mut().find(|f| f.dimension == d) else {
                continue;
            };
            for ((value, status), n) in spend.sessions(d) {
                let values = [org_id, spend.label(d, value), store.label(status)];
                f.sessions.count(&values, n);
            }
            for (value, micros) in spend.acus(d) {
                f.acus.millionths(&[org_id, spend.label(d, value)], micros);
            }
            for (value, micros) in spend.consumed_totals(d) {
                f.consumed
                    .millionths(&[org_id, spend.label(d, value)], micros);
            }
        }
        for ((origin, status), Ended { duration, acus }) in spend.ended_sessions() {
            let values = [org_id, store.label(origin), store.label(status)];
            histogram(&mut self.duration, &values, duration, seconds);
            histogram(&mut self.ended_acus, &values, acus, Bound::Millionths);
        }
        for (session_id, url, micros) in spend.top_active() {
            self.top.millionths(&[org_id, &session_id, &url], micros);
        }
    }

    /// Appends the families that have series to the body.
    pub fn write_to(&self, out: &mut Vec<u8>) {
        for b in &self.breakdowns {
            for family in [&b.sessions, &b.acus, &b.consumed] {
                family.write_to(out);
            }
        }
        for family in [&self.duration, &self.ended_acus, &self.top] {
            family.write_to(out);
        }
    }
}
