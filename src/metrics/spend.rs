//! The spend families of a scrape: breakdowns by user, playbook and tag, histograms of the
//! sessions seen ending, and the top active sessions. Read from aggregates the store keeps
//! on write; nothing here walks the sessions.

use prometheus::proto::{Bucket, Counter, Gauge, Histogram, Metric, MetricFamily, MetricType};

use super::render::label_pairs;
use crate::sync::SessionStore;
use crate::sync::spend::{Dimension, Ended};

fn family(name: &str, help: &str, kind: MetricType) -> MetricFamily {
    let mut mf = MetricFamily::default();
    mf.set_name(name.to_string());
    mf.set_help(help.to_string());
    mf.set_field_type(kind);
    mf
}

fn gauge(labels: &[(&str, &str)], value: f64) -> Metric {
    let mut m = Metric::from_label(label_pairs(labels));
    let mut g = Gauge::default();
    g.set_value(value);
    m.set_gauge(g);
    m
}

fn counter(labels: &[(&str, &str)], value: f64) -> Metric {
    let mut m = Metric::from_label(label_pairs(labels));
    let mut c = Counter::default();
    c.set_value(value);
    m.set_counter(c);
    m
}

fn histogram(labels: &[(&str, &str)], h: &crate::sync::spend::Histogram, scale: f64) -> Metric {
    let mut p = Histogram::default();
    p.set_sample_count(h.count());
    p.set_sample_sum(h.sum as f64 / scale);
    p.set_bucket(
        h.cumulative()
            .map(|(bound, n)| {
                let mut b = Bucket::default();
                b.set_upper_bound(bound as f64 / scale);
                b.set_cumulative_count(n);
                b
            })
            .collect(),
    );
    let mut m = Metric::from_label(label_pairs(labels));
    m.set_histogram(p);
    m
}

/// Families per breakdown: sessions, ACUs (gauge), ACUs consumed (counter).
struct BreakdownFamilies {
    dimension: Dimension,
    sessions: MetricFamily,
    acus: MetricFamily,
    consumed: MetricFamily,
}

/// The spend families under construction.
pub struct SpendFamilies {
    breakdowns: Vec<BreakdownFamilies>,
    duration: MetricFamily,
    ended_acus: MetricFamily,
    top: MetricFamily,
}

impl Default for SpendFamilies {
    fn default() -> Self {
        let breakdowns = Dimension::ALL
            .into_iter()
            .map(|dimension| {
                let (prefix, label) = dimension.names();
                BreakdownFamilies {
                    dimension,
                    sessions: family(
                        &format!("devin_{prefix}_sessions"),
                        &format!("Sessions in this state now, by {label} (at most DEVIN_ATTRIBUTION_MAX_VALUES values, then overflow)."),
                        MetricType::GAUGE,
                    ),
                    acus: family(
                        &format!("devin_{prefix}_acus_consumed"),
                        &format!("Sum of acus_consumed of the sessions held now, by {label}."),
                        MetricType::GAUGE,
                    ),
                    consumed: family(
                        &format!("devin_{prefix}_acus_consumed_total"),
                        &format!("ACUs consumed since this process finished its first listing of the org, by {label}."),
                        MetricType::COUNTER,
                    ),
                }
            })
            .collect();
        SpendFamilies {
            breakdowns,
            duration: family(
                "devin_ended_session_duration_seconds",
                "updated_at - created_at of the sessions seen moving into exit or error after the org's first listing.",
                MetricType::HISTOGRAM,
            ),
            ended_acus: family(
                "devin_ended_session_acus",
                "acus_consumed of the sessions seen moving into exit or error after the org's first listing.",
                MetricType::HISTOGRAM,
            ),
            top: family(
                "devin_active_session_acus_consumed",
                "ACUs of the DEVIN_TOP_ACTIVE_SESSIONS sessions not in exit, error or suspended with the most ACUs.",
                MetricType::GAUGE,
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
                f.sessions.mut_metric().push(gauge(
                    &[
                        ("org_id", org_id),
                        (label, spend.label(d, value)),
                        ("status", store.label(status)),
                    ],
                    n as f64,
                ));
            }
            for (value, micros) in spend.acus(d) {
                f.acus.mut_metric().push(gauge(
                    &[("org_id", org_id), (label, spend.label(d, value))],
                    micros as f64 / 1e6,
                ));
            }
            for (value, micros) in spend.consumed_totals(d) {
                f.consumed.mut_metric().push(counter(
                    &[("org_id", org_id), (label, spend.label(d, value))],
                    micros as f64 / 1e6,
                ));
            }
        }
        for ((origin, status), Ended { duration, acus }) in spend.ended_sessions() {
            let labels = [
                ("org_id", org_id),
                ("origin", store.label(origin)),
                ("status", store.label(status)),
            ];
            self.duration
                .mut_metric()
                .push(histogram(&labels, duration, 1.0));
            self.ended_acus
                .mut_metric()
                .push(histogram(&labels, acus, 1e6));
        }
        for (session_id, url, micros) in spend.top_active() {
            self.top.mut_metric().push(gauge(
                &[
                    ("org_id", org_id),
                    ("session_id", &session_id),
                    ("url", &url),
                ],
                micros as f64 / 1e6,
            ));
        }
    }

    /// The families, empty ones included (the caller drops those).
    pub fn into_families(self) -> impl Iterator<Item = MetricFamily> {
        self.breakdowns
            .into_iter()
            .flat_map(|b| [b.sessions, b.acus, b.consumed])
            .chain([self.duration, self.ended_acus, self.top])
    }
}
