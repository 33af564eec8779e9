//! The API requests of each org and of discovery: counts by HTTP status and latency.

use prometheus::core::Metric;

use super::families::{API_REQUEST_DURATION, API_REQUESTS};
use super::text::{Bound, Family};
use crate::api::ApiStats;

/// The request families under construction.
pub(super) struct RequestFamilies {
    requests: Family,
    latency: Family,
}

impl Default for RequestFamilies {
    fn default() -> Self {
        RequestFamilies {
            requests: Family::new(&API_REQUESTS),
            latency: Family::new(&API_REQUEST_DURATION),
        }
    }
}

impl RequestFamilies {
    /// Adds the series of one org (`""` for discovery's requests, which belong to no org).
    pub(super) fn push(&mut self, org_id: &str, stats: &ApiStats) {
        for (code, n) in stats.requests() {
            self.requests.count(&[org_id, &code], n);
        }
        let m = stats.latency().metric();
        let h = m.get_histogram();
        self.latency.histogram_series(
            &[org_id],
            h.get_bucket()
                .iter()
                .map(|b| (Bound::Float(b.upper_bound()), b.cumulative_count())),
            Bound::Float(h.get_sample_sum()),
            h.get_sample_count(),
        );
    }

    /// Appends the request counts (the latency histogram comes last in the body).
    pub(super) fn write_counts(&self, out: &mut Vec<u8>) {
        self.requests.write_to(out);
    }

    /// Appends the latency histogram.
    pub(super) fn write_latency(&self, out: &mut Vec<u8>) {
        self.latency.write_to(out);
    }
}
