//! API request counts by status code and request latency, per org.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Duration;

use prometheus::{Histogram, HistogramOpts};

use super::RequestObserver;
use crate::lock::Locked;

/// Latency buckets in seconds: API round trips run from tens of milliseconds to the timeout.
const LATENCY_BUCKETS: &[f64] = &[0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0];

/// Request statistics of one org, kept for the life of the process.
pub struct ApiStats {
    requests: Mutex<BTreeMap<String, u64>>,
    latency: Histogram,
}

impl ApiStats {
    /// Empty statistics for `org_id`.
    pub fn new(org_id: &str) -> Self {
        let opts = HistogramOpts::new(
            "devin_api_request_duration_seconds",
            "Latency of Devin API requests, retries counted one by one.",
        )
        .const_label("org_id", org_id)
        .buckets(LATENCY_BUCKETS.to_vec());
        ApiStats {
            requests: Mutex::new(BTreeMap::new()),
            // Options are static and valid: construction cannot fail.
            latency: Histogram::with_opts(opts).expect("valid histogram options"),
        }
    }

    /// Requests so far by status code (`error` for transport failures).
    pub fn requests(&self) -> Vec<(String, u64)> {
        let map = self.requests.locked();
        map.iter().map(|(k, v)| (k.clone(), *v)).collect()
    }

    /// Mean latency of the requests so far; zero before the first.
    pub fn mean_latency(&self) -> Duration {
        let n = self.latency.get_sample_count();
        let mean = self.latency.get_sample_sum() / n.max(1) as f64;
        Duration::try_from_secs_f64(mean).unwrap_or(Duration::ZERO)
    }

    /// The latency histogram (a collector that can join any registry).
    pub fn latency(&self) -> &Histogram {
        &self.latency
    }
}

impl RequestObserver for ApiStats {
    fn observe(&self, code: &str, elapsed: Duration) {
        *self.requests.locked().entry(code.to_string()).or_default() += 1;
        self.latency.observe(elapsed.as_secs_f64());
    }
}
