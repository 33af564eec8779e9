//! Cycle ACU limits and the queue, from their wire types to what the exporter shows.

use std::collections::HashMap;

use crate::api::billing::{AcuLimit, Num, Queue};
use crate::api::usable_org_id;

/// Largest cycle limit taken at face value (as [`super::ledger::MAX_DAY_ACUS`]); more is
/// clamped to it.
pub const MAX_LIMIT_ACUS: f64 = 1e12;

/// Largest queue taken at face value; more is clamped to it.
pub const MAX_QUEUE: f64 = 1e9;

/// Most limits one listing accepts: a listing that pages on past this is broken.
pub const MAX_LIMITS: usize = 100_000;

/// The cycle limits of the enterprise and its orgs (an org without one is unlimited).
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Limits {
    /// The enterprise-scope limit, if any.
    pub enterprise: Option<f64>,
    /// Organization-scope limits by org id.
    pub orgs: HashMap<String, f64>,
}

/// A limit's value: null is no limit; negative, not a number: ignored (a limit of 0 would
/// read as an org at its limit and page someone); too large: clamped. `odd` counts the last
/// three.
fn limit_value(n: Num, odd: &mut usize) -> Option<f64> {
    match n {
        Num::Absent => None,
        Num::Value(v) if v.is_finite() && v >= 0.0 => {
            if v > MAX_LIMIT_ACUS {
                *odd += 1;
            }
            Some(v.min(MAX_LIMIT_ACUS))
        }
        _ => {
            *odd += 1;
            None
        }
    }
}

impl Limits {
    /// Takes the limits of one page; returns how many values were odd (refused or clamped).
    /// Where one org (or the enterprise) has several limits, the lowest holds: it is the one
    /// that stops work first. Scopes other than enterprise and organization (a user's) are
    /// not the exporter's.
    pub fn add(&mut self, items: &[AcuLimit]) -> usize {
        let mut odd = 0;
        for item in items {
            let Some(v) = limit_value(item.cycle_acu_limit, &mut odd) else {
                continue;
            };
            let slot = match (item.scope.as_deref(), item.org_id.as_deref()) {
                (Some("enterprise"), _) => &mut self.enterprise,
                (Some("organization"), Some(org)) if usable_org_id(org) => {
                    let lowest = self.orgs.get(org).map_or(v, |old| old.min(v));
                    self.orgs.insert(org.to_string(), lowest);
                    continue;
                }
                (Some("organization"), _) => {
                    odd += 1;
                    continue;
                }
                _ => continue,
            };
            *slot = Some(slot.map_or(v, |old: f64| old.min(v)));
        }
        odd
    }
}

/// Pressure on the queue, from the API's thresholds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pressure {
    /// At most 10 sessions waiting.
    Normal,
    /// 11 to 50.
    Elevated,
    /// More than 50.
    High,
}

impl Pressure {
    /// Every state, in the order the metric lists them.
    pub const ALL: [Pressure; 3] = [Pressure::Normal, Pressure::Elevated, Pressure::High];

    /// The label value.
    pub fn name(self) -> &'static str {
        match self {
            Pressure::Normal => "normal",
            Pressure::Elevated => "elevated",
            Pressure::High => "high",
        }
    }

    /// The state the API's thresholds give `size`.
    pub fn of_size(size: u64) -> Self {
        match size {
            0..=10 => Pressure::Normal,
            11..=50 => Pressure::Elevated,
            _ => Pressure::High,
        }
    }
}

/// The queue as the exporter shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueueState {
    /// Sessions waiting to start.
    pub size: u64,
    /// The API's status, or the thresholds' when it sent none the exporter knows.
    pub pressure: Pressure,
}

/// The queue from its wire type: `Err` when there is no usable size (the read fails); the
/// `bool` says a value was odd (a negative size read as 0, a huge one clamped, an unknown
/// status replaced by the thresholds').
pub fn read_queue(q: &Queue) -> Result<(QueueState, bool), String> {
    let (size, mut odd) = match q.queue_size {
        Num::Value(v) if v.is_finite() && v < 0.0 => (0, true),
        Num::Value(v) if v.is_finite() => (v.min(MAX_QUEUE) as u64, v > MAX_QUEUE),
        Num::Absent => return Err("queue_size missing".to_string()),
        _ => return Err("queue_size is not a number".to_string()),
    };
    let sent = q.status.as_ref().and_then(|s| s.as_str());
    let pressure = match Pressure::ALL.into_iter().find(|p| Some(p.name()) == sent) {
        Some(p) => p,
        None => {
            // Absent is fine; a status the exporter does not know is worth a log line.
            odd |= q.status.as_ref().is_some_and(|s| !s.is_null());
            Pressure::of_size(size)
        }
    };
    Ok((QueueState { size, pressure }, odd))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limit(v: Num, scope: &str, org: Option<&str>) -> AcuLimit {
        AcuLimit {
            cycle_acu_limit: v,
            scope: Some(scope.to_string()),
            org_id: org.map(String::from),
        }
    }

    #[test]
    fn limits_by_scope_hostile_values_refused_or_clamped() {
        let mut l = Limits::default();
        let odd = l.add(&[
            limit(Num::Value(500.0), "enterprise", None),
            limit(Num::Value(100.0), "organization", Some("org-a")),
            limit(Num::Value(80.0), "organization", Some("org-a")),
            limit(Num::Value(1e308), "organization", Some("org-b")),
            limit(Num::Value(-1.0), "organization", Some("org-c")),
            limit(Num::Wrong, "organization", Some("org-d")),
            limit(Num::Absent, "organization", Some("org-e")),
            limit(Num::Value(7.0), "user", None),
            limit(Num::Value(7.0), "organization", None),
        ]);
        assert_eq!(l.enterprise, Some(500.0));
        assert_eq!(l.orgs["org-a"], 80.0);
        assert_eq!(l.orgs["org-b"], MAX_LIMIT_ACUS);
        assert_eq!(l.orgs.len(), 2);
        assert_eq!(odd, 4);
    }

    #[test]
    fn queue_pressure_from_the_api_or_the_thresholds() {
        let q = |size: Num, status: Option<&str>| Queue {
            queue_size: size,
            status: status.map(|s| serde_json::Value::String(s.to_string())),
        };
        let read = |size, status| read_queue(&q(size, status));
        assert_eq!(
            read(Num::Value(12.0), Some("elevated")),
            Ok((
                QueueState {
                    size: 12,
                    pressure: Pressure::Elevated
                },
                false
            ))
        );
        assert_eq!(
            read(Num::Value(-4.0), Some("normal")),
            Ok((
                QueueState {
                    size: 0,
                    pressure: Pressure::Normal
                },
                true
            ))
        );
        assert_eq!(
            read(Num::Value(1e308), Some("critical")),
            Ok((
                QueueState {
                    size: 1_000_000_000,
                    pressure: Pressure::High
                },
                true
            ))
        );
        assert_eq!(
            read(Num::Value(50.0), None).unwrap().0.pressure,
            Pressure::Elevated
        );
        assert_eq!(Pressure::of_size(10), Pressure::Normal);
        assert_eq!(Pressure::of_size(51), Pressure::High);
        assert!(read(Num::Wrong, Some("high")).is_err());
        assert!(read(Num::Absent, Some("high")).is_err());
    }
}
