//! The incremental sync against the simulator: after any changes, a warm exporter exposes
//! exactly what a fresh full listing would, and steady state costs one request per org.
#![cfg(feature = "simulator")]

use crate::common;

use std::collections::BTreeMap;
use std::time::Duration;

use common::{Metrics, scrape, start_exporter};
use common::{frozen_simulator as frozen, serve_simulator as simulator};
use devin_exporter::simulator::{SimConfig, Simulator};

/// The session-derived series (gauges), keyed by name and labels.
fn session_state(m: &Metrics) -> BTreeMap<String, f64> {
    let names = [
        "devin_sessions",
        "devin_sessions_acus_consumed",
        "devin_session_pull_requests",
        "devin_sessions_archived",
        "devin_sessions_oldest_update_timestamp_seconds",
    ];
    let mut out = BTreeMap::new();
    for name in names {
        for (labels, v) in m.find(name, &[]) {
            // ACU sums: compare at the precision the API gives (millionths).
            out.insert(format!("{name}{labels:?}"), (v * 1e6).round() / 1e6);
        }
    }
    out
}

fn assert_same(warm: &BTreeMap<String, f64>, fresh: &BTreeMap<String, f64>) {
    common::assert_same_map("warm vs fresh", warm, fresh);
}

fn totals_match(sim: &Simulator, m: &Metrics) {
    for t in sim.totals() {
        let org = [("org_id", t.org_id.as_str())];
        let id = &t.org_id;
        assert_eq!(m.sum("devin_sessions", &org), t.sessions as f64, "{id}");
        let acus = m.sum("devin_sessions_acus_consumed", &org);
        assert!((acus - t.acus_consumed).abs() < 1e-3, "{id}");
        let archived = m.get("devin_sessions_archived", &org);
        assert_eq!(archived, Some(t.archived as f64), "{id}");
    }
}

#[tokio::test]
async fn warm_state_equals_a_fresh_listing_after_changes() {
    let (sim, url) = simulator(frozen(2, 3000)).await;
    let orgs = sim.org_ids();
    let ids: Vec<&str> = orgs.iter().map(String::as_str).collect();
    let warm = start_exporter(&url, &ids, &[("DEVIN_FULL_RESYNC_INTERVAL", "1h")]).await;
    let first = scrape(&warm.url, None).await;
    totals_match(&sim, &first.metrics);
    let mut last_created = first.metrics.sum("devin_sessions_created_total", &[]);
    let mut last_acus = first.metrics.sum("devin_acus_consumed_total", &[]);

    for round in 0..6 {
        // A minute of simulated life, plus explicit changes, between scrapes.
        sim.advance(Duration::from_secs(60));
        for org in &orgs {
            sim.touch(org, 150);
            sim.create(org, 10 + round);
        }
        let s = scrape(&warm.url, None).await;
        totals_match(&sim, &s.metrics);
        let fresh = start_exporter(&url, &ids, &[]).await;
        let f = scrape(&fresh.url, None).await;
        assert_same(&session_state(&s.metrics), &session_state(&f.metrics));
        // Counters only grow.
        let created = s.metrics.sum("devin_sessions_created_total", &[]);
        let acus = s.metrics.sum("devin_acus_consumed_total", &[]);
        assert!(
            created >= last_created + 2.0 * (10 + round) as f64,
            "{created} after {last_created}"
        );
        assert!(acus >= last_acus);
        (last_created, last_acus) = (created, acus);
    }
}

#[tokio::test]
async fn deleted_sessions_leave_at_the_full_resync() {
    let (sim, url) = simulator(frozen(1, 2000)).await;
    let org = sim.org_ids()[0].clone();
    // The re-listing is due one interval after the first listing started; the runtime's
    // clock is moved on rather than waited for.
    let interval = Duration::from_secs(3600);
    let warm = start_exporter(&url, &[&org], &[("DEVIN_FULL_RESYNC_INTERVAL", "1h")]).await;
    let started = tokio::time::Instant::now();
    let before = scrape(&warm.url, None).await;
    assert_eq!(before.metrics.sum("devin_sessions", &[]), 2000.0);
    sim.delete(&org, 25);
    let stale = scrape(&warm.url, None).await;
    assert!(
        started.elapsed() < interval,
        "two scrapes took {:?}, longer than the re-listing interval",
        started.elapsed()
    );
    assert_eq!(
        stale.metrics.sum("devin_sessions", &[]),
        2000.0,
        "deletes are invisible to incremental listing"
    );
    common::skip_time(interval).await;
    let after = scrape(&warm.url, None).await;
    totals_match(&sim, &after.metrics);
    assert_eq!(after.metrics.sum("devin_sessions", &[]), 1975.0);
    let fresh = start_exporter(&url, &[&org], &[]).await;
    assert_same(
        &session_state(&after.metrics),
        &session_state(&scrape(&fresh.url, None).await.metrics),
    );
    // Deleted sessions take nothing back from the counters.
    for counter in ["devin_sessions_created_total", "devin_acus_consumed_total"] {
        let (now, then) = (
            after.metrics.sum(counter, &[]),
            stale.metrics.sum(counter, &[]),
        );
        assert!(now >= then, "{counter}: {then} -> {now}");
    }
}

#[tokio::test]
async fn steady_state_costs_one_request_per_org() {
    let (sim, url) = simulator(frozen(3, 2500)).await;
    let orgs = sim.org_ids();
    let ids: Vec<&str> = orgs.iter().map(String::as_str).collect();
    let exp = start_exporter(&url, &ids, &[]).await;
    scrape(&exp.url, None).await;
    for _ in 0..3 {
        sim.advance(Duration::from_secs(30));
        for org in &orgs {
            sim.touch(org, 50);
        }
        let before: Vec<u64> = orgs.iter().map(|o| sim.org_request_count(o)).collect();
        let s = scrape(&exp.url, None).await;
        totals_match(&sim, &s.metrics);
        for (org, b) in orgs.iter().zip(before) {
            assert_eq!(sim.org_request_count(org) - b, 1, "{org}");
        }
    }
}

#[tokio::test]
async fn one_request_per_scrape_whatever_the_churn_before() {
    let (sim, url) = simulator(frozen(2, 5000)).await;
    let orgs = sim.org_ids();
    let ids: Vec<&str> = orgs.iter().map(String::as_str).collect();
    // Default overlap (2 minutes): only the deep re-check, every 5 minutes, reads it all.
    let exp = start_exporter(&url, &ids, &[]).await;
    scrape(&exp.url, None).await;
    // A burst of churn: thousands of changes within the overlap.
    for _ in 0..3 {
        sim.advance(Duration::from_secs(2));
        for org in &orgs {
            sim.touch(org, 1000);
        }
        scrape(&exp.url, None).await;
    }
    // Then changes every 2 s, fewer than a page between scrapes (with the second before
    // the watermark that is re-read): one request per org, exact every time. (The first
    // of these re-reads the burst's last second.)
    for round in 0..10 {
        sim.advance(Duration::from_secs(2));
        for org in &orgs {
            sim.touch(org, 90);
            sim.create(org, 5);
        }
        let before: Vec<u64> = orgs.iter().map(|o| sim.org_request_count(o)).collect();
        let s = scrape(&exp.url, None).await;
        totals_match(&sim, &s.metrics);
        for (org, b) in orgs.iter().zip(before) {
            if round > 0 {
                assert_eq!(sim.org_request_count(org) - b, 1, "{org} round {round}");
            }
        }
    }
    let fresh = start_exporter(&url, &ids, &[]).await;
    assert_same(
        &session_state(&scrape(&exp.url, None).await.metrics),
        &session_state(&scrape(&fresh.url, None).await.metrics),
    );
}

#[tokio::test]
async fn big_first_listing_is_windowed_exact_and_frugal() {
    for exclusive in [false, true] {
        let (sim, url) = simulator(SimConfig {
            exclusive_time_bounds: exclusive,
            ..frozen(1, 20_000)
        })
        .await;
        let org = sim.org_ids()[0].clone();
        let exp = start_exporter(&url, &[&org], &[]).await;
        let s = scrape(&exp.url, Some("60")).await;
        assert_eq!(s.metrics.get("devin_initial_sync_complete", &[]), Some(1.0));
        totals_match(&sim, &s.metrics);
        let requests = sim.org_request_count(&org);
        // 100 pages of data, busier towards now; each window ends in a partly filled page.
        assert!(
            requests <= 120,
            "{requests} requests for 100 pages (exclusive={exclusive})"
        );
    }
}

#[tokio::test]
async fn a_first_listing_without_room_for_a_second_stream_costs_the_data_pages() {
    let (sim, url) = simulator(frozen(1, 2000)).await;
    let org = sim.org_ids()[0].clone();
    // One request in flight at a time: windows could only take turns, each costing a
    // partly filled page, so the listing follows one cursor.
    let vars = [
        ("DEVIN_MAX_CONCURRENT_REQUESTS", "1"),
        ("DEVIN_PAGE_SIZE", "20"),
    ];
    let exp = start_exporter(&url, &[&org], &vars).await;
    let s = scrape(&exp.url, Some("60")).await;
    assert_eq!(s.metrics.get("devin_initial_sync_complete", &[]), Some(1.0));
    totals_match(&sim, &s.metrics);
    assert_eq!(sim.org_request_count(&org), 2000 / 20);
}

#[tokio::test]
async fn lookback_keeps_only_recent_sessions() {
    let (sim, url) = simulator(frozen(1, 3000)).await;
    let org = sim.org_ids()[0].clone();
    let exp = start_exporter(&url, &[&org], &[("DEVIN_LOOKBACK", "7d")]).await;
    let s = scrape(&exp.url, None).await;
    let cutoff = sim.now() - 7 * 86_400;
    let expected = {
        // Count from the API itself: sessions created within the window.
        assert_eq!(common::list_all(&url, &org, "").await.len(), 3000);
        let recent = format!("&created_after={}", cutoff - 1);
        let listed = common::list_all(&url, &org, &recent).await;
        let created = |i: &&serde_json::Value| i["created_at"].as_i64().unwrap() >= cutoff;
        listed.iter().filter(created).count() as u64
    };
    let got = s.metrics.sum("devin_sessions", &[]);
    assert!(expected > 0 && expected < 3000);
    assert_eq!(got, expected as f64);
}
