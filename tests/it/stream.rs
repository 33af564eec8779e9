//! The enterprise session stream against the simulator: one world read through the stream
//! and through the orgs' own listings gives the same session families (churn, deletions,
//! undocumented states, an org that starts empty), at one request per warm scrape; a token without the permission falls back to the orgs' listings.
#![cfg(feature = "simulator")]

use crate::common;

use std::collections::BTreeSet;
use std::time::Duration;

use common::{frozen_simulator as frozen, scrape, serve_simulator as simulator, start_exporter};
use devin_exporter::simulator::{SimConfig, Simulator};
use devin_exporter::sync::source::PROBE_INTERVAL;

/// `devin_exporter_session_source`.
const SOURCE: &str = "devin_exporter_session_source";
/// `devin_exporter_stream_sessions_dropped_total`.
const DROPPED: &str = "devin_exporter_stream_sessions_dropped_total";

/// Families that depend on how (and how fast) an org was collected, not on its sessions.
const NOT_SESSION_STATE: [&str; 7] = [
    "devin_scrape_duration_seconds",
    "devin_last_successful_scrape_timestamp_seconds",
    "devin_api_request",
    "devin_exporter_",
    "devin_discover",
    "devin_billing",
    "devin_org_",
];

/// Every sample line of the session families of the body (per org: gauges, counters,
/// histograms, spend breakdowns, top active sessions, `devin_up`, initial sync, malformed).
fn session_lines(body: &str) -> BTreeSet<String> {
    body.lines()
        .filter(|l| l.starts_with("devin_"))
        .filter(|l| !NOT_SESSION_STATE.iter().any(|p| l.starts_with(p)))
        .map(str::to_string)
        .collect()
}

fn assert_same_lines(round: &str, orgs: &str, stream: &str) {
    let (a, b) = (session_lines(orgs), session_lines(stream));
    let only_orgs: Vec<_> = a.difference(&b).take(10).collect();
    let only_stream: Vec<_> = b.difference(&a).take(10).collect();
    assert!(
        only_orgs.is_empty() && only_stream.is_empty(),
        "{round}: per-org only {only_orgs:#?}\nstream only {only_stream:#?}"
    );
    assert!(a.len() > 100, "{round}: {} lines only", a.len());
}

#[tokio::test]
async fn the_stream_and_the_org_listings_give_identical_session_families() {
    let (sim, url) = simulator(frozen(3, 400)).await;
    let orgs = sim.org_ids();
    let ids: Vec<&str> = orgs.iter().map(String::as_str).collect();
    // The third org starts empty.
    assert_eq!(sim.delete(&orgs[2], 400), 400);
    let common = [
        ("DEVIN_ATTRIBUTION", "user,playbook,tag"),
        ("DEVIN_FULL_RESYNC_INTERVAL", "1h"),
    ];
    let with = |source| {
        let mut v = common.to_vec();
        v.push(("DEVIN_SESSION_SOURCE", source));
        v
    };
    let per_org = start_exporter(&url, &ids, &with("orgs")).await;
    let stream = start_exporter(&url, &ids, &with("enterprise")).await;
    let a = scrape(&per_org.url, None).await;
    let before = sim.request_count();
    let b = scrape(&stream.url, None).await;
    // 800 sessions, 200 a page: 4 pages, and the windows' partly filled last pages.
    let cold = sim.request_count() - before;
    assert!(
        (4..=6).contains(&cold),
        "cold stream listing: {cold} requests"
    );
    assert_same_lines("first listing", &a.body, &b.body);
    for round in 0..5u64 {
        sim.advance(Duration::from_secs(60));
        for org in &orgs {
            sim.touch(org, 20);
            sim.create(org, 3 + round as usize);
        }
        sim.transition(&orgs[0], 2, "error", None).unwrap();
        sim.transition(&orgs[1], 1, "suspended", Some("out_of_credits"))
            .unwrap();
        // States the API does not document (yet), in an org that started empty too.
        let undocumented = [
            (&orgs[round as usize % 2], "hibernating", Some("napping")),
            (&orgs[2], "running", Some("napping")),
        ];
        for (org, status, detail) in undocumented {
            let moved = sim.transition_undocumented(org, 1, status, detail).unwrap();
            assert_eq!(moved.len(), 1, "round {round}: {org} has no live session");
        }
        if round == 2 {
            // Deletions, seen at the hourly re-listing of either source.
            sim.delete(&orgs[0], 7);
            sim.delete(&orgs[2], 1);
            common::skip_time(Duration::from_secs(3601)).await;
        }
        let a = scrape(&per_org.url, None).await;
        let before = sim.request_count();
        let b = scrape(&stream.url, None).await;
        let requests = sim.request_count() - before;
        if round != 2 {
            // A warm scrape of every org: one request.
            assert_eq!(requests, 1, "round {round}");
        }
        assert_same_lines(&format!("round {round}"), &a.body, &b.body);
        // The undocumented values reach the families (and so the comparison) as they came.
        let entered = format!(
            "devin_sessions_entered_status_total{{org_id=\"{}\",status=\"running\",status_detail=\"napping\"}}",
            orgs[2]
        );
        for text in ["status=\"hibernating\",status_detail=\"napping\"", &entered] {
            assert!(
                b.body.contains(text),
                "round {round}: no {text} in the stream's scrape"
            );
        }
        assert!(
            b.body
                .contains(&format!("devin_up{{org_id=\"{}\"}} 1", orgs[2]))
        );
    }
}

/// The enterprise-scope requests `sim` served (the stream's, and `auto`'s questions).
fn enterprise_requests(sim: &Simulator, orgs: &[String]) -> u64 {
    let per_org: u64 = orgs.iter().map(|o| sim.org_request_count(o)).sum();
    sim.request_count() - per_org
}

/// Two orgs whose token may not read the stream, and an exporter of both with `source`.
async fn without_the_stream(source: &str) -> (Simulator, Vec<String>, common::TestExporter) {
    let forbidden = SimConfig {
        forbid_enterprise_sessions: true,
        ..frozen(2, 50)
    };
    let (sim, url) = simulator(forbidden).await;
    let orgs = sim.org_ids();
    let ids: Vec<&str> = orgs.iter().map(String::as_str).collect();
    let exp = start_exporter(&url, &ids, &[("DEVIN_SESSION_SOURCE", source)]).await;
    (sim, orgs, exp)
}

#[tokio::test]
async fn without_the_permission_auto_names_it_once_and_lists_each_org() {
    let (logs, _guard) = common::capture_logs();
    let (sim, orgs, exp) = without_the_stream("auto").await;
    let ids: Vec<&str> = orgs.iter().map(String::as_str).collect();
    for scrape_no in 0..4 {
        if scrape_no == 3 {
            // `auto` asks again after its interval: the answer is the same, and so no line.
            common::skip_time(PROBE_INTERVAL + Duration::from_secs(1)).await;
        }
        let s = scrape(&exp.url, None).await;
        for org in &ids {
            assert_eq!(s.metrics.up(org), Some(1.0), "scrape {scrape_no}: {org}");
        }
        let source = |label| s.metrics.get(SOURCE, &[("source", label)]);
        assert_eq!(source("orgs"), Some(1.0), "scrape {scrape_no}");
        assert_eq!(source("enterprise"), None, "scrape {scrape_no}");
        assert_eq!(
            s.metrics.get(DROPPED, &[]),
            None,
            "the stream is not in use"
        );
    }
    // Asked at the start and once after the interval, not at every scrape.
    assert_eq!(enterprise_requests(&sim, &orgs), 2);
    let text = logs.text();
    let named: Vec<&str> = text
        .lines()
        .filter(|l| l.contains("ViewAccountSessions"))
        .collect();
    assert_eq!(named.len(), 1, "{named:#?}");
    for part in ["session source", "orgs", "HTTP 403", "grant the token"] {
        assert!(named[0].contains(part), "no {part:?} in {}", named[0]);
    }
}

#[tokio::test]
async fn without_the_permission_the_enterprise_source_takes_every_org_down_and_says_why() {
    let (sim, orgs, exp) = without_the_stream("enterprise").await;
    let ids: Vec<&str> = orgs.iter().map(String::as_str).collect();
    for _ in 0..2 {
        let s = scrape(&exp.url, None).await;
        for org in &ids {
            assert_eq!(s.metrics.up(org), Some(0.0), "{org}");
        }
        assert_eq!(
            s.metrics.get(SOURCE, &[("source", "enterprise")]),
            Some(1.0)
        );
        assert_eq!(s.metrics.get(SOURCE, &[("source", "orgs")]), None);
    }
    // No silent fall back: the orgs' own listings are not read.
    for org in &orgs {
        assert_eq!(sim.org_request_count(org), 0, "{org}");
    }
    let html = exp.text("/").await;
    for org in &ids {
        let row = html
            .lines()
            .find(|l| l.starts_with(&format!("<tr><td>{org}</td>")))
            .unwrap_or_else(|| panic!("no row of {org} in:\n{html}"));
        for part in [
            "HTTP 403: Missing permission ViewAccountSessions for the enterprise",
            "the token lacks ViewAccountSessions on the enterprise: grant it, or set DEVIN_SESSION_SOURCE=auto",
        ] {
            assert!(row.contains(part), "no {part:?} in {row}");
        }
    }
}

#[tokio::test]
async fn with_the_permission_auto_reads_the_stream_at_one_request_per_warm_scrape() {
    let (sim, url) = simulator(frozen(3, 100)).await;
    let orgs = sim.org_ids();
    let ids: Vec<&str> = orgs.iter().map(String::as_str).collect();
    let exp = start_exporter(&url, &ids, &[("DEVIN_SESSION_SOURCE", "auto")]).await;
    let s = scrape(&exp.url, None).await;
    for org in &ids {
        assert_eq!(s.metrics.up(org), Some(1.0), "{org}");
    }
    assert_eq!(
        s.metrics.get(SOURCE, &[("source", "enterprise")]),
        Some(1.0)
    );
    assert_eq!(s.metrics.get(SOURCE, &[("source", "orgs")]), None);
    assert_eq!(s.metrics.get(DROPPED, &[]), Some(0.0));
    for round in 0..3 {
        sim.advance(Duration::from_secs(60));
        for org in &orgs {
            sim.touch(org, 5);
        }
        let before = sim.request_count();
        let s = scrape(&exp.url, None).await;
        assert_eq!(sim.request_count() - before, 1, "round {round}");
        assert_eq!(s.metrics.sum("devin_up", &[]), orgs.len() as f64);
    }
    // Every request went to the stream.
    for org in &orgs {
        assert_eq!(sim.org_request_count(org), 0, "{org}");
    }
}
