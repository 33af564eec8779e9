//! The enterprise session stream against the simulator: one world read through the stream
//! and through the orgs' own listings gives the same session families (churn, deletions,
//! undocumented states, an org that starts empty), at one request per warm scrape; a token without the permission falls back to the orgs' listings.
#![cfg(feature = "simulator")]

use crate::common;

use std::collections::BTreeSet;
use std::time::Duration;

use common::{frozen_simulator as frozen, scrape, serve_simulator as simulator, start_exporter};

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
