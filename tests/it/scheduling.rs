//! How collections are scheduled against scrapes: a collection that dies leaves its org down
//! and collectable, a scrape answers by its own deadline whatever collection it joins, a
//! client asking for tiny timeouts cannot keep orgs down, and no org starves.

use crate::common;

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use common::{Metrics, S, page_reply, scrape, sessions_of, start_exporter};
use wiremock::MockServer;

async fn mount_org(api: &MockServer, org: &str, delay: Duration) {
    sessions_of(org)
        .respond_with(page_reply(&[S::new(1), S::new(2)], None, Some(2)).set_delay(delay))
        .mount(api)
        .await;
}

#[tokio::test]
async fn a_collection_that_panics_leaves_the_org_down_and_the_next_scrape_recovers() {
    let api = MockServer::start().await;
    for org in ["org-a", "org-b"] {
        mount_org(&api, org, Duration::ZERO).await;
    }
    let exp = start_exporter(&api.uri(), &["org-a", "org-b"], &[]).await;
    let up = |s: &common::Scraped, org| s.metrics.up(org);
    let first = scrape(&exp.url, None).await;
    assert_eq!(
        (up(&first, "org-a"), up(&first, "org-b")),
        (Some(1.0), Some(1.0))
    );

    let org_a = exp
        .exporter
        .orgs()
        .into_iter()
        .find(|o| o.id == "org-a")
        .unwrap();
    org_a.panic_next_collection();
    let crashed = scrape(&exp.url, None).await;
    assert_eq!(crashed.status, 200);
    assert_eq!(
        (up(&crashed, "org-a"), up(&crashed, "org-b")),
        (Some(0.0), Some(1.0)),
        "the org whose collection died is down, the other is not"
    );
    assert_eq!(
        crashed
            .metrics
            .sum("devin_sessions", &[("org_id", "org-a")]),
        2.0
    );
    let landing = exp.text("/").await;
    assert!(
        landing.contains("internal error during collection"),
        "{landing}"
    );

    let recovered = scrape(&exp.url, None).await;
    assert_eq!(up(&recovered, "org-a"), Some(1.0), "collected again");
    let requests = |org: &str| {
        recovered.metrics.get(
            "devin_api_requests_total",
            &[("org_id", org), ("code", "200")],
        )
    };
    assert_eq!(
        (requests("org-a"), requests("org-b")),
        (Some(2.0), Some(3.0))
    );
}

#[tokio::test]
async fn a_scrape_joining_a_longer_collection_answers_by_its_own_deadline() {
    let api = MockServer::start().await;
    mount_org(&api, "org-a", Duration::from_secs(4)).await;
    let exp = start_exporter(&api.uri(), &["org-a"], &[]).await;
    let url = exp.url.clone();
    let long = tokio::spawn(async move { scrape(&url, Some("60")).await });
    // The long scrape's collection has asked the API.
    while api.received_requests().await.unwrap().is_empty() {
        tokio::task::yield_now().await;
    }

    let (took, short) = timed_scrape(&reqwest::Client::new(), &exp.url, "1").await;
    assert!(took < Duration::from_secs(1), "1 s scrape took {took:?}");
    assert_eq!(
        short.up("org-a"),
        Some(0.0),
        "no collection of the org has finished yet"
    );

    let long = long.await.unwrap();
    assert_eq!(long.metrics.up("org-a"), Some(1.0));
    assert_eq!(long.metrics.sum("devin_sessions", &[]), 2.0);
    // Both scrapes shared one collection.
    assert_eq!(api.received_requests().await.unwrap().len(), 1);
}

#[tokio::test]
async fn a_client_looping_tiny_timeouts_does_not_keep_orgs_down() {
    let api = MockServer::start().await;
    for org in ["org-a", "org-b"] {
        mount_org(&api, org, Duration::from_millis(400)).await;
    }
    let exp = start_exporter(&api.uri(), &["org-a", "org-b"], &[]).await;
    let mut all_up_in_a_row = 0;
    let client = reqwest::Client::new();
    for _ in 0..40 {
        let (took, s) = timed_scrape(&client, &exp.url, "0.001").await;
        assert!(took < Duration::from_secs(1), "scrape took {took:?}");
        if s.sum("devin_up", &[]) == 2.0 {
            all_up_in_a_row += 1;
            if all_up_in_a_row == 5 {
                return;
            }
        } else {
            all_up_in_a_row = 0;
        }
    }
    panic!("orgs never stayed up under 0.001 s scrapes");
}

/// Scrapes with a client made beforehand, so that only the exporter's time is measured.
async fn timed_scrape(client: &reqwest::Client, base: &str, timeout: &str) -> (Duration, Metrics) {
    let started = Instant::now();
    let body = client
        .get(format!("{base}/metrics"))
        .header("X-Prometheus-Scrape-Timeout-Seconds", timeout)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    (started.elapsed(), Metrics::parse(&body))
}

fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

/// 30 orgs, a budget of 10 requests/s and a scrape every second with a 1 s timeout: one
/// scrape can refresh only a third of the orgs, three can refresh them all.
#[tokio::test]
async fn no_org_starves_when_the_budget_covers_each_org_within_a_few_intervals() {
    const ORGS: usize = 30;
    const SCRAPES: usize = 10;
    let api = MockServer::start().await;
    let orgs: Vec<String> = (0..ORGS).map(|i| format!("org-{i:02}")).collect();
    for org in &orgs {
        mount_org(&api, org, Duration::from_millis(20)).await;
    }
    let ids: Vec<&str> = orgs.iter().map(String::as_str).collect();
    let exp = start_exporter(&api.uri(), &ids, &[("DEVIN_MAX_REQUESTS_PER_SECOND", "10")]).await;
    let mut interval = tokio::time::interval(Duration::from_secs(1));
    let mut last = None;
    let mut took = Vec::new();
    let client = reqwest::Client::new();
    for _ in 0..SCRAPES {
        interval.tick().await;
        let (t, metrics) = timed_scrape(&client, &exp.url, "1").await;
        took.push(t);
        last = Some(metrics);
    }
    assert!(
        took.iter().all(|t| *t < Duration::from_secs(1)),
        "1 s scrapes took {took:?}"
    );
    let last = last.unwrap();
    let now = unix_now();
    let landing = exp.text("/").await;
    for org in &ids {
        let labels = [("org_id", *org)];
        assert_eq!(last.get("devin_up", &labels), Some(1.0), "{org}: {landing}");
        let refreshed = last
            .get("devin_last_successful_scrape_timestamp_seconds", &labels)
            .unwrap_or(0.0);
        let age = now - refreshed;
        assert!(age <= 5.0, "{org}: data {age:.1} s old");
    }
}
