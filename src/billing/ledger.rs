//! Billed ACUs of one scope (the enterprise, or one org): the current cycle as last read, and
//! counters of what was billed while the process watches.
//!
//! A consumption response lists the days of the current cycle; its first day is the cycle's
//! start. The cycle-to-date figure of a product is the sum of its days, in integer millionths
//! of an ACU so that sums and differences are exact. The counters grow at each read by what
//! the cycle-to-date figures grew since the previous read:
//! - same cycle start: new total - old total per product, never below 0 (a correction
//!   downwards never decreases a counter; the next growth counts from the corrected figure);
//!   a new billing day (08:00 UTC) changes nothing, as the days are summed;
//! - a later cycle start: what the old cycle billed after the previous read can no longer be
//!   seen (a call without `time_after` covers the new cycle only), so the counter grows by the
//!   new cycle's total alone: the last read-to-boundary growth of the old cycle is lost;
//! - an earlier cycle start (a stale answer) or no days at all: shown as read, but the
//!   counters neither grow nor take it as their base, so that going back to the real cycle
//!   does not count it twice.
//!
//! Counters are born at 0 at the first read, for every product then present and the three
//! documented ones, so that `rate()` sees the first growth; a product first seen later starts
//! at its growth since it appeared.

use std::collections::BTreeMap;

use crate::api::billing::{DailyConsumption, Num};
use crate::api::model::clamp_unix;
use crate::sync::intern::{NONE, OVERFLOW, label_value};

/// ACUs are kept in millionths.
const MICROS: f64 = 1_000_000.0;

/// Most ACUs one product may bill in one day. The largest enterprise bills millions of ACUs in
/// a cycle; more than 1e12 (a million times that) in a day is a broken upstream (`1e308`),
/// clamped before any arithmetic so that a cycle's sum (at most ~1e18 millionths a product
/// and day, summed saturating) never wraps.
pub const MAX_DAY_ACUS: f64 = 1e12;

/// Distinct product labels per scope; later products are summed under `overflow`.
pub const MAX_PRODUCTS: usize = 32;

/// Most days taken from one response: a cycle has about 31; more is a broken upstream.
pub const MAX_DAYS: usize = 400;

/// The products the API documents, always exposed (at 0 when a cycle has none of them).
pub const DOCUMENTED_PRODUCTS: [&str; 3] = ["devin", "cascade", "terminal"];

/// What a response held that could not be taken at face value; logged once per read.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Oddities {
    /// Negative ACU figures, read as 0.
    pub negative: usize,
    /// ACU figures that were not numbers (`"NaN"`, a string), ignored.
    pub not_numbers: usize,
    /// ACU figures above [`MAX_DAY_ACUS`], clamped to it.
    pub clamped: usize,
    /// Days dated after the server's now, ignored.
    pub future_days: usize,
    /// Days without a usable date, list items that are not days, days past [`MAX_DAYS`].
    pub refused_days: usize,
}

impl Oddities {
    /// Whether anything was odd.
    pub fn any(&self) -> bool {
        *self != Oddities::default()
    }
}

/// One read of a cycle: its start (the first day's date; `None` without days) and the ACUs per
/// product label (cut and marker-escaped, not yet capped), in millionths.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Cycle {
    /// Start of the cycle, Unix seconds.
    pub start: Option<i64>,
    /// Millionths of an ACU per product.
    pub acus: BTreeMap<String, u64>,
}

/// ACUs in millionths, clamped; `None` for a figure to ignore.
fn micros(n: Num, odd: &mut Oddities) -> Option<u64> {
    match n {
        Num::Absent => None,
        Num::Wrong => {
            odd.not_numbers += 1;
            None
        }
        Num::Value(v) if !v.is_finite() => {
            odd.not_numbers += 1;
            None
        }
        Num::Value(v) if v < 0.0 => {
            odd.negative += 1;
            Some(0)
        }
        Num::Value(v) if v > MAX_DAY_ACUS => {
            odd.clamped += 1;
            Some((MAX_DAY_ACUS * MICROS) as u64)
        }
        Num::Value(v) => Some((v * MICROS).round() as u64),
    }
}

/// The cycle a consumption response describes. Days dated after `server_now` (the API's own
/// clock; unknown when `None`) are ignored: a day in the future cannot have been billed yet.
pub fn read_cycle(body: &DailyConsumption, server_now: Option<i64>) -> (Cycle, Oddities) {
    let mut odd = Oddities {
        refused_days: body.consumption_by_date.refused,
        ..Oddities::default()
    };
    let mut cycle = Cycle::default();
    for (i, day) in body.consumption_by_date.items.iter().enumerate() {
        if i >= MAX_DAYS {
            odd.refused_days += 1;
            continue;
        }
        let date = match day.date {
            Num::Value(v) if v.is_finite() => clamp_unix(v),
            _ => {
                odd.refused_days += 1;
                continue;
            }
        };
        if server_now.is_some_and(|now| date > now) {
            odd.future_days += 1;
            continue;
        }
        cycle.start = Some(cycle.start.map_or(date, |s| s.min(date)));
        for (product, n) in day.acus_by_product.iter().flatten() {
            let Some(m) = micros(*n, &mut odd) else {
                continue;
            };
            let label = label_value(Some(product)).map_or(NONE.to_string(), |l| l.into_owned());
            let sum = cycle.acus.entry(label).or_default();
            *sum = sum.saturating_add(m);
        }
    }
    (cycle, odd)
}

/// The cycle and counters of one scope.
#[derive(Debug, Default, Clone)]
pub struct Ledger {
    /// The cycle as last read, products capped: what the gauges show. `None` before a read.
    pub shown: Option<Cycle>,
    /// The cycle the counters last grew to.
    base: Option<Cycle>,
    /// Millionths billed per product label since the first read. Its keys are the labels
    /// admitted so far (at most [`MAX_PRODUCTS`], then `overflow`).
    pub billed: BTreeMap<String, u64>,
}

impl Ledger {
    /// `acus` with products past the cap summed under `overflow`. A label, once admitted,
    /// stays (its counter lives on), so the cap never moves a product between series.
    fn admit(&mut self, acus: BTreeMap<String, u64>) -> BTreeMap<String, u64> {
        let mut out: BTreeMap<String, u64> = BTreeMap::new();
        for (label, m) in acus {
            let label = if self.billed.contains_key(&label) || self.billed.len() < MAX_PRODUCTS {
                self.billed.entry(label.clone()).or_insert(0);
                label
            } else {
                self.billed.entry(OVERFLOW.to_string()).or_insert(0);
                OVERFLOW.to_string()
            };
            let sum = out.entry(label).or_default();
            *sum = sum.saturating_add(m);
        }
        out
    }

    /// Takes a new read of the cycle (see the module's text for how the counters grow).
    pub fn apply(&mut self, read: Cycle) {
        let first = self.shown.is_none();
        if first {
            for p in DOCUMENTED_PRODUCTS {
                self.billed.entry(p.to_string()).or_insert(0);
            }
        }
        let read = Cycle {
            start: read.start,
            acus: self.admit(read.acus),
        };
        self.shown = Some(read.clone());
        let Some(start) = read.start else {
            return;
        };
        let growth = match self.base.as_ref().and_then(|b| b.start.map(|s| (b, s))) {
            // Born at 0: nothing was seen billed yet.
            _ if first => BTreeMap::new(),
            Some((_, old)) if start < old => return,
            Some((base, old)) if start == old => read
                .acus
                .iter()
                .map(|(p, m)| {
                    let before = base.acus.get(p).copied().unwrap_or(0);
                    (p.clone(), m.saturating_sub(before))
                })
                .collect(),
            // A new cycle, or a first cycle after reads without days.
            _ => read.acus.clone(),
        };
        for (p, m) in growth {
            let counter = self.billed.entry(p).or_default();
            *counter = counter.saturating_add(m);
        }
        self.base = Some(read);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::billing::ConsumptionDay;

    fn day(date: f64, products: &[(&str, Num)]) -> ConsumptionDay {
        ConsumptionDay {
            date: Num::Value(date),
            acus_by_product: Some(products.iter().map(|(p, n)| (p.to_string(), *n)).collect()),
            ..ConsumptionDay::default()
        }
    }

    fn body(days: Vec<ConsumptionDay>) -> DailyConsumption {
        let mut b = DailyConsumption::default();
        b.consumption_by_date.items = days;
        b
    }

    fn cycle(start: i64, acus: &[(&str, u64)]) -> Cycle {
        Cycle {
            start: Some(start),
            acus: acus.iter().map(|(p, m)| (p.to_string(), *m)).collect(),
        }
    }

    const DAY: i64 = 86_400;
    const C1: i64 = 1_700_000_000;

    #[test]
    fn days_are_summed_exactly_and_hostile_figures_refused_or_clamped() {
        let b = body(vec![
            day(
                C1 as f64,
                &[("devin", Num::Value(0.1)), ("cascade", Num::Value(-3.0))],
            ),
            day(
                (C1 + DAY) as f64,
                &[
                    ("devin", Num::Value(0.2)),
                    ("cascade", Num::Wrong),
                    ("review", Num::Value(1e308)),
                    ("", Num::Value(1.0)),
                ],
            ),
            // Dated after the server's now: not billed yet.
            day((C1 + 3 * DAY) as f64, &[("devin", Num::Value(99.0))]),
        ]);
        let (c, odd) = read_cycle(&b, Some(C1 + 2 * DAY));
        assert_eq!(c.start, Some(C1));
        assert_eq!(c.acus["devin"], 300_000, "0.1 + 0.2 in millionths, exactly");
        assert_eq!(c.acus["cascade"], 0);
        assert_eq!(c.acus["review"], 1_000_000_000_000_000_000);
        assert_eq!(c.acus["none"], 1_000_000);
        assert_eq!(
            odd,
            Oddities {
                negative: 1,
                not_numbers: 1,
                clamped: 1,
                future_days: 1,
                refused_days: 0
            }
        );
        // Without the server's clock, no day can be told to be in the future.
        assert_eq!(read_cycle(&b, None).0.acus["devin"], 99_300_000);
    }

    #[test]
    fn counters_grow_by_what_was_billed_between_reads() {
        let mut l = Ledger::default();
        l.apply(cycle(C1, &[("devin", 5_000_000), ("review", 1)]));
        let born: Vec<_> = l.billed.iter().map(|(p, m)| (p.as_str(), *m)).collect();
        assert_eq!(
            born,
            [("cascade", 0), ("devin", 0), ("review", 0), ("terminal", 0)]
        );
        // Same cycle, a new day at 08:00 UTC: the days are summed, growth is the difference.
        l.apply(cycle(
            C1,
            &[("devin", 7_500_000), ("review", 1), ("cascade", 2)],
        ));
        assert_eq!(
            (l.billed["devin"], l.billed["cascade"], l.billed["review"]),
            (2_500_000, 2, 0)
        );
        // A correction downwards never decreases a counter; growth counts from it.
        l.apply(cycle(C1, &[("devin", 7_000_000)]));
        l.apply(cycle(C1, &[("devin", 7_200_000)]));
        assert_eq!(l.billed["devin"], 2_700_000);
        // A new cycle: its total is added (the old cycle's last growth is not visible).
        l.apply(cycle(C1 + 30 * DAY, &[("devin", 400_000)]));
        assert_eq!(l.billed["devin"], 3_100_000);
        // A stale answer from the previous cycle is shown, not counted, and not a base.
        l.apply(cycle(C1, &[("devin", 9_000_000)]));
        assert_eq!(l.shown.as_ref().unwrap().acus["devin"], 9_000_000);
        l.apply(cycle(C1 + 30 * DAY, &[("devin", 500_000)]));
        assert_eq!(l.billed["devin"], 3_200_000);
        // No days at all: nothing counted, the base stays.
        l.apply(Cycle::default());
        l.apply(cycle(C1 + 30 * DAY, &[("devin", 600_000)]));
        assert_eq!(l.billed["devin"], 3_300_000);
    }

    #[test]
    fn products_past_the_cap_fold_into_overflow_and_stay_put() {
        let mut l = Ledger::default();
        let many: Vec<(String, u64)> = (0..40).map(|i| (format!("p{i:02}"), 1)).collect();
        let read = |extra: u64| Cycle {
            start: Some(C1),
            acus: many.iter().map(|(p, m)| (p.clone(), m + extra)).collect(),
        };
        l.apply(read(0));
        assert_eq!(l.billed.len(), MAX_PRODUCTS + 1);
        let shown = &l.shown.as_ref().unwrap().acus;
        // 3 documented + 29 named products admitted, the 11 others summed.
        assert_eq!(shown[OVERFLOW], 11);
        l.apply(read(1));
        assert_eq!((l.billed["p00"], l.billed[OVERFLOW]), (1, 11));
    }
}
