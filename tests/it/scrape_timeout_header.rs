//! `X-Prometheus-Scrape-Timeout-Seconds` comes from any client: whatever it says, the budget
//! is a sane duration and the scrape gets a normal answer.

use crate::common;

use std::time::Duration;

use axum::http::HeaderMap;
use common::{one_session_api, scrape, start_exporter};
use devin_exporter::http::{SCRAPE_TIMEOUT_HEADER, scrape_budget};
use proptest::prelude::*;

const DEFAULT: Duration = Duration::from_secs(25);

/// Header values at the edges: huge, infinite, not a number, negative, zero, tiny.
const EDGES: &str =
    "1e20 1e308 1.8e308 inf -inf infinity NaN -1 -0 0 1e-300 5e-324 18446744073709551615";

fn budget(value: &str) -> Duration {
    let mut h = HeaderMap::new();
    h.insert(SCRAPE_TIMEOUT_HEADER, value.parse().unwrap());
    scrape_budget(&h, DEFAULT)
}

/// Header values that are numbers Rust parses, in every range that matters.
fn numeric() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<f64>().prop_map(|f| f.to_string()),
        any::<f64>().prop_map(|f| format!("{f:e}")),
        any::<u64>().prop_map(|n| n.to_string()),
        any::<i64>().prop_map(|n| n.to_string()),
        (0.0..2000.0f64).prop_map(|f| format!("{f}")),
        prop::sample::select(EDGES.split(' ').chain([" 10 "]).collect::<Vec<_>>())
            .prop_map(String::from),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(5000))]

    #[test]
    fn any_number_gives_a_bounded_budget(value in numeric()) {
        let b = budget(&value);
        let parsed = value.trim().parse::<f64>().ok().filter(|t| t.is_finite() && *t > 0.0);
        match parsed {
            None => prop_assert_eq!(b, DEFAULT),
            Some(t) => {
                prop_assert!(b >= Duration::from_millis(100), "{value}: {b:?}");
                prop_assert!(b <= Duration::from_secs(600), "{value}: {b:?}");
                // The budget leaves the client a margin whenever the timeout allows one.
                if t >= 0.35 {
                    prop_assert!(b.as_secs_f64() <= t - 0.25 + 1e-9, "{value}: {b:?}");
                }
            }
        }
    }

    #[test]
    fn any_text_gives_a_budget(value in "[ -~]{0,40}") {
        let b = budget(&value);
        prop_assert!(b >= Duration::from_millis(100) && b <= Duration::from_secs(600));
    }

    #[test]
    fn a_longer_timeout_never_gives_a_shorter_budget(a in 0.001..1e6f64, b in 0.001..1e6f64) {
        let (lo, hi) = if a <= b { (a, b) } else { (b, a) };
        prop_assert!(budget(&lo.to_string()) <= budget(&hi.to_string()));
    }
}

#[tokio::test]
async fn hostile_timeout_headers_get_a_normal_answer() {
    let api = one_session_api().await;
    let exp = start_exporter(&api.uri(), &["org-a"], &[]).await;
    for value in EDGES.split(' ') {
        let s = scrape(&exp.url, Some(value)).await;
        assert_eq!(s.status, 200, "{value}");
        assert_eq!(s.metrics.up("org-a"), Some(1.0), "{value}");
    }
}
