//! The session gauges of each org, kept between scrapes as ready-made series: a render
//! updates their values, adds new label sets and drops vanished ones, instead of building
//! (and allocating) every series again. The body stays fresh per scrape.

use std::collections::HashMap;

use prometheus::proto::{Gauge, Metric};

use super::render::label_pairs;
use crate::sync::SessionStore;
use crate::sync::store::GroupKey;

fn gauge(value: f64) -> Gauge {
    let mut g = Gauge::default();
    g.set_value(value);
    g
}

fn series(labels: &[(&str, &str)], value: f64) -> Metric {
    let mut m = Metric::from_label(label_pairs(labels));
    m.set_gauge(gauge(value));
    m
}

/// `devin_sessions` and `devin_sessions_acus_consumed` series of one org.
#[derive(Default)]
pub struct SeriesCache {
    keys: Vec<GroupKey>,
    index: HashMap<GroupKey, usize>,
    /// `devin_sessions` series, in the order of `keys`.
    pub sessions: Vec<Metric>,
    /// `devin_sessions_acus_consumed` series, in the order of `keys`.
    pub acus: Vec<Metric>,
}

impl SeriesCache {
    /// Brings the series in line with the store's groups.
    pub fn update(&mut self, org_id: &str, store: &SessionStore) {
        let mut seen = vec![false; self.keys.len()];
        for (key, totals) in store.groups() {
            let count = totals.sessions as f64;
            let acus = totals.acus_micros as f64 / 1e6;
            match self.index.get(key) {
                Some(&i) => {
                    self.sessions[i].set_gauge(gauge(count));
                    self.acus[i].set_gauge(gauge(acus));
                    seen[i] = true;
                }
                None => {
                    let labels = [
                        ("org_id", org_id),
                        ("status", store.label(key[0])),
                        ("status_detail", store.label(key[1])),
                        ("origin", store.label(key[2])),
                        ("category", store.label(key[3])),
                    ];
                    self.index.insert(*key, self.keys.len());
                    self.keys.push(*key);
                    self.sessions.push(series(&labels, count));
                    self.acus.push(series(&labels, acus));
                    seen.push(true);
                }
            }
        }
        // Drop label sets that have no sessions any more (from the back, so that indices of
        // the elements still to visit do not move).
        for i in (0..self.keys.len()).rev() {
            if seen[i] {
                continue;
            }
            let gone = self.keys.swap_remove(i);
            self.sessions.swap_remove(i);
            self.acus.swap_remove(i);
            self.index.remove(&gone);
            if i < self.keys.len() {
                self.index.insert(self.keys[i], i);
            }
        }
    }
}
