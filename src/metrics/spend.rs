//! The spend families of a scrape: breakdowns by user, playbook and tag, histograms of the
//! sessions seen ending, and the top active sessions. Read from aggregates the store keeps
//! on write; nothing here walks the sessions.

use super::text::{Bound, Family};
use crate::sync::SessionStore;
use crate::sync::spend::{Dimension, Ended, Histogram};

/// The buckets, sum and count of a histogram kept in whole units, each written as `unit`
/// reads it: seconds as they are, or millionths of an ACU as ACUs, exactly.
fn histogram(family: &mut Family, labels: &[(&str, &str)], h: &Histogram, unit: fn(u64) -> Bound) {
    family.histogram_series(
        labels,
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

impl Default for SpendFamilies {
    fn default() -> Self {
        let breakdowns = Dimension::ALL
            .into_iter()
            .map(|dimension| {
                let (prefix, label) = dimension.names();
                BreakdownFamilies {
                    dimension,
                    sessions: Family::gauge(
                        format!("devin_{prefix}_sessions"),
                        format!("Sessions in this state now, by {label} (at most DEVIN_ATTRIBUTION_MAX_VALUES values, then overflow)."),
                    ),
                    acus: Family::gauge(
                        format!("devin_{prefix}_acus_consumed"),
                        format!("Sum of acus_consumed of the sessions held now, by {label}."),
                    ),
                    consumed: Family::counter(
                        format!("devin_{prefix}_acus_consumed_total"),
                        format!("ACUs consumed since this process finished its first listing of the org, by {label}."),
                    ),
                }
            })
            .collect();
        SpendFamilies {
            breakdowns,
            duration: Family::histogram(
                "devin_ended_session_duration_seconds",
                "updated_at - created_at of the sessions seen moving into exit or error after the org's first listing.",
            ),
            ended_acus: Family::histogram(
                "devin_ended_session_acus",
                "acus_consumed of the sessions seen moving into exit or error after the org's first listing.",
            ),
            top: Family::gauge(
                "devin_active_session_acus_consumed",
                "ACUs of the DEVIN_TOP_ACTIVE_SESSIONS sessions not in exit, error or suspended with the most ACUs.",
            ),
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
            let label = d.names().1;
            for ((value, status), n) in spend.sessions(d) {
                f.sessions.count(
                    &[
                        ("org_id", org_id),
                        (label, spend.label(d, value)),
                        ("status", store.label(status)),
                    ],
                    n,
                );
            }
            for (value, micros) in spend.acus(d) {
                f.acus.millionths(
                    &[("org_id", org_id), (label, spend.label(d, value))],
                    micros,
                );
            }
            for (value, micros) in spend.consumed_totals(d) {
                f.consumed.millionths(
                    &[("org_id", org_id), (label, spend.label(d, value))],
                    micros,
                );
            }
        }
        for ((origin, status), Ended { duration, acus }) in spend.ended_sessions() {
            let labels = [
                ("org_id", org_id),
                ("origin", store.label(origin)),
                ("status", store.label(status)),
            ];
            histogram(&mut self.duration, &labels, duration, seconds);
            histogram(&mut self.ended_acus, &labels, acus, Bound::Millionths);
        }
        for (session_id, url, micros) in spend.top_active() {
            self.top.millionths(
                &[
                    ("org_id", org_id),
                    ("session_id", &session_id),
                    ("url", &url),
                ],
                micros,
            );
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
