//! Who and what burns the ACUs, against the simulator: the user, playbook and tag breakdowns
//! equal what a full listing of the API says (and what a fresh exporter says) after changes,
//! their counters never go down (also when values fold into `overflow`), the ended-session
//! histograms observe each ending once, and the runaway gauge shows the true top sessions.
#![cfg(feature = "simulator")]

use crate::common;

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use common::{Metrics, scrape, start_exporter};
use devin_exporter::api::SessionPage;
use devin_exporter::config::Attribution;
use devin_exporter::simulator::Simulator;
use devin_exporter::sync::spend::{Dimension, SpendSettings};
use devin_exporter::sync::{SessionStore, Transitions};
use serde_json::Value;

const ALL: (&str, &str) = ("DEVIN_ATTRIBUTION", "user,playbook,tag");

async fn simulator(orgs: usize, sessions: usize) -> (Simulator, String) {
    common::serve_simulator(common::frozen_simulator(orgs, sessions)).await
}

async fn list_all(url: &str, org: &str) -> Vec<Value> {
    common::list_all(url, org, "").await
}

fn micros(acus: f64) -> i64 {
    (acus * 1e6).round() as i64
}

fn text(v: &Value) -> Option<String> {
    v.as_str().map(String::from)
}

/// The breakdown values of a listed session, per dimension.
fn values(s: &Value, dimension: &str) -> Vec<String> {
    match dimension {
        "user" => vec![
            text(&s["user_id"])
                .or_else(|| text(&s["service_user_id"]))
                .unwrap_or_else(|| "none".into()),
        ],
        "playbook" => vec![text(&s["playbook_id"]).unwrap_or_else(|| "none".into())],
        _ => {
            let tags: BTreeSet<String> = s["tags"]
                .as_array()
                .unwrap()
                .iter()
                .filter_map(text)
                .collect();
            if tags.is_empty() {
                vec!["none".into()]
            } else {
                tags.into_iter().collect()
            }
        }
    }
}

const DIMENSIONS: [(&str, &str); 3] = [
    ("user", "user_id"),
    ("playbook", "playbook_id"),
    ("tag", "tag"),
];

/// The spend gauges the listing implies, keyed like [`exposed`]: sessions as counts, ACUs in
/// millionths.
fn expected(org: &str, items: &[Value], top: usize) -> BTreeMap<String, i64> {
    let mut out = BTreeMap::new();
    for (dimension, label) in DIMENSIONS {
        for s in items {
            for v in values(s, dimension) {
                let status = s["status"].as_str().unwrap();
                *out.entry(format!(
                    "devin_{dimension}_sessions {org} {label}={v} status={status}"
                ))
                .or_default() += 1;
                *out.entry(format!("devin_{dimension}_acus_consumed {org} {label}={v}"))
                    .or_default() += micros(s["acus_consumed"].as_f64().unwrap());
            }
        }
    }
    let mut active: Vec<(i64, String, String)> = items
        .iter()
        .filter(|s| !matches!(s["status"].as_str(), Some("exit" | "error" | "suspended")))
        .map(|s| {
            (
                micros(s["acus_consumed"].as_f64().unwrap()),
                text(&s["session_id"]).unwrap(),
                text(&s["url"]).unwrap(),
            )
        })
        .collect();
    // Most ACUs first; ties to the greater id, as the exporter breaks them.
    active.sort_by(|a, b| b.cmp(a));
    for (acus, id, url) in active.into_iter().take(top) {
        out.insert(
            format!("devin_active_session_acus_consumed {org} session_id={id} url={url}"),
            acus,
        );
    }
    out
}

/// The spend gauges a scrape shows for `org`, keyed like [`expected`].
fn exposed(m: &Metrics, org: &str) -> BTreeMap<String, i64> {
    let mut out = BTreeMap::new();
    let org_label = [("org_id", org)];
    for (dimension, label) in DIMENSIONS {
        for (labels, v) in m.find(&format!("devin_{dimension}_sessions"), &org_label) {
            out.insert(
                format!(
                    "devin_{dimension}_sessions {org} {label}={} status={}",
                    labels[label], labels["status"]
                ),
                v as i64,
            );
        }
        for (labels, v) in m.find(&format!("devin_{dimension}_acus_consumed"), &org_label) {
            out.insert(
                format!(
                    "devin_{dimension}_acus_consumed {org} {label}={}",
                    labels[label]
                ),
                micros(v),
            );
        }
    }
    for (labels, v) in m.find("devin_active_session_acus_consumed", &org_label) {
        out.insert(
            format!(
                "devin_active_session_acus_consumed {org} session_id={} url={}",
                labels["session_id"], labels["url"]
            ),
            micros(v),
        );
    }
    out
}

/// Every counter series of the families, keyed by name and labels.
fn counters(m: &Metrics) -> BTreeMap<String, f64> {
    let mut out = BTreeMap::new();
    for (dimension, _) in DIMENSIONS {
        let name = format!("devin_{dimension}_acus_consumed_total");
        for (labels, v) in m.find(&name, &[]) {
            out.insert(format!("{name}{labels:?}"), v);
        }
    }
    out
}

/// The values `label` takes in the series of `name`.
fn label_values(m: &Metrics, name: &str, label: &str) -> BTreeSet<String> {
    m.find(name, &[])
        .into_iter()
        .map(|(l, _)| l[label].clone())
        .collect()
}

fn assert_monotonic(before: &BTreeMap<String, f64>, after: &BTreeMap<String, f64>) {
    for (k, v) in before {
        let now = after.get(k).unwrap_or_else(|| panic!("{k} vanished"));
        assert!(now >= v, "{k} went from {v} to {now}");
    }
}

#[tokio::test]
async fn breakdowns_and_top_sessions_equal_the_api_after_changes() {
    let (sim, url) = simulator(2, 2000).await;
    let orgs = sim.org_ids();
    let ids: Vec<&str> = orgs.iter().map(String::as_str).collect();
    let warm = start_exporter(&url, &ids, &[ALL, ("DEVIN_FULL_RESYNC_INTERVAL", "1h")]).await;
    let mut last = counters(&scrape(&warm.url, None).await.metrics);
    for round in 0..3 {
        sim.advance(Duration::from_secs(300));
        for org in &orgs {
            sim.touch(org, 150);
            sim.create(org, 10 + round);
        }
        let s = scrape(&warm.url, None).await;
        let fresh = start_exporter(&url, &ids, &[ALL]).await;
        let f = scrape(&fresh.url, None).await;
        for org in &orgs {
            let items = list_all(&url, org).await;
            let want = expected(org, &items, 5);
            common::assert_same_map(
                &format!("round {round} warm"),
                &exposed(&s.metrics, org),
                &want,
            );
            common::assert_same_map(
                &format!("round {round} fresh"),
                &exposed(&f.metrics, org),
                &want,
            );
            assert_eq!(
                s.metrics
                    .count("devin_active_session_acus_consumed", &[("org_id", org)]),
                5
            );
            // user and playbook split the org's totals exactly.
            let org_label = [("org_id", org.as_str())];
            for dimension in ["user", "playbook"] {
                assert_eq!(
                    s.metrics
                        .sum(&format!("devin_{dimension}_sessions"), &org_label),
                    s.metrics.sum("devin_sessions", &org_label)
                );
            }
            // What the counters split is the org's ACU counter.
            let total = s
                .metrics
                .get("devin_acus_consumed_total", &org_label)
                .unwrap();
            for dimension in ["user", "playbook"] {
                let split = s.metrics.sum(
                    &format!("devin_{dimension}_acus_consumed_total"),
                    &org_label,
                );
                assert!(
                    (split - total).abs() < 1e-3,
                    "{dimension}: {split} != {total}"
                );
            }
            assert!(total > 0.0, "sessions consumed ACUs in round {round}");
        }
        let now = counters(&s.metrics);
        assert_monotonic(&last, &now);
        last = now;
    }
    // The simulator gives every breakdown several values.
    let s = scrape(&warm.url, None).await;
    for (dimension, label) in DIMENSIONS {
        let name = format!("devin_{dimension}_acus_consumed");
        let values = label_values(&s.metrics, &name, label);
        assert!(values.len() >= 5, "{dimension}: {values:?}");
        assert!(!values.contains("overflow"), "{dimension}: {values:?}");
    }
}

#[tokio::test]
async fn counters_stay_monotonic_across_folds_into_overflow() {
    let (sim, url) = simulator(1, 2000).await;
    let org = sim.org_ids()[0].clone();
    let exp = start_exporter(&url, &[&org], &[ALL, ("DEVIN_ATTRIBUTION_MAX_VALUES", "4")]).await;
    let first = scrape(&exp.url, None).await;
    let mut last = counters(&first.metrics);
    let org_label = [("org_id", org.as_str())];
    for round in 0..5 {
        sim.advance(Duration::from_secs(600));
        sim.touch(&org, 200);
        sim.create(&org, 40);
        let s = scrape(&exp.url, None).await;
        let now = counters(&s.metrics);
        assert_monotonic(&last, &now);
        last = now;
        for (dimension, label) in DIMENSIONS {
            let name = format!("devin_{dimension}_acus_consumed_total");
            let values = label_values(&s.metrics, &name, label);
            // At most 4 values besides none and overflow.
            let named = values
                .iter()
                .filter(|v| *v != "none" && *v != "overflow")
                .count();
            assert!(named <= 4, "{dimension}: {values:?}");
            if dimension != "playbook" {
                assert!(
                    values.contains("overflow"),
                    "round {round} {dimension}: {values:?}"
                );
            }
        }
        // Folding never loses a session or an ACU: the gauges still split the org exactly.
        let items = list_all(&url, &org).await;
        let acus: f64 = items
            .iter()
            .map(|s| s["acus_consumed"].as_f64().unwrap())
            .sum();
        assert_eq!(
            s.metrics.sum("devin_user_sessions", &org_label),
            items.len() as f64
        );
        assert!((s.metrics.sum("devin_user_acus_consumed", &org_label) - acus).abs() < 1e-3);
        let total = s
            .metrics
            .get("devin_acus_consumed_total", &org_label)
            .unwrap();
        let split = s.metrics.sum("devin_user_acus_consumed_total", &org_label);
        assert!((split - total).abs() < 1e-3, "{split} != {total}");
    }
    assert!(
        last.values().any(|v| *v > 0.0),
        "some counter grew: {last:?}"
    );
}

#[tokio::test]
async fn histograms_observe_each_ending_once() {
    let (sim, url) = simulator(1, 1500).await;
    let org = sim.org_ids()[0].clone();
    let exp = start_exporter(&url, &[&org], &[]).await;
    let ended = |items: &[Value]| -> BTreeMap<String, (String, String, i64, i64)> {
        items
            .iter()
            .filter(|s| matches!(s["status"].as_str(), Some("exit" | "error")))
            .map(|s| {
                (
                    text(&s["session_id"]).unwrap(),
                    (
                        text(&s["origin"]).unwrap(),
                        text(&s["status"]).unwrap(),
                        s["updated_at"].as_i64().unwrap() - s["created_at"].as_i64().unwrap(),
                        micros(s["acus_consumed"].as_f64().unwrap()),
                    ),
                )
            })
            .collect()
    };
    let s = scrape(&exp.url, None).await;
    // Sessions already over at the first listing did not end while we watched.
    assert_eq!(
        s.metrics
            .count("devin_ended_session_duration_seconds_count", &[]),
        0
    );
    let mut seen = ended(&list_all(&url, &org).await);
    // Expected (count, duration sum, ACU sum) per (origin, status).
    let mut want: BTreeMap<(String, String), (f64, f64, i64)> = BTreeMap::new();
    for _ in 0..4 {
        sim.advance(Duration::from_secs(900));
        sim.create(&org, 30);
        let now = ended(&list_all(&url, &org).await);
        for (id, (origin, status, duration, acus)) in &now {
            if !seen.contains_key(id) {
                let w = want.entry((origin.clone(), status.clone())).or_default();
                w.0 += 1.0;
                w.1 += *duration as f64;
                w.2 += acus;
            }
        }
        seen = now;
        // Scraped twice: the second scrape sees no new ending and must not count again.
        scrape(&exp.url, None).await;
        let s = scrape(&exp.url, None).await;
        let mut got: BTreeMap<(String, String), (f64, f64, i64)> = BTreeMap::new();
        let m = &s.metrics;
        for (labels, n) in m.find("devin_ended_session_duration_seconds_count", &[]) {
            let key = (labels["origin"].clone(), labels["status"].clone());
            let l = [("origin", key.0.as_str()), ("status", key.1.as_str())];
            let duration = m.get("devin_ended_session_duration_seconds_sum", &l);
            let acus = m.get("devin_ended_session_acus_sum", &l).unwrap();
            let acus_count = m.get("devin_ended_session_acus_count", &l);
            assert_eq!(acus_count, Some(n), "{l:?}");
            got.insert(key, (n, duration.unwrap(), micros(acus)));
        }
        assert_eq!(got, want);
    }
    let endings: f64 = want.values().map(|w| w.0).sum();
    assert!(endings >= 10.0, "{endings} endings seen: {want:?}");
}

/// A page of sessions as the API lists them (id n, status, ACUs, user, tags).
fn page(items: &[(u32, &str, f64, &str, &[&str])]) -> String {
    let items: Vec<String> = items
        .iter()
        .map(|(n, status, acus, user, tags)| {
            serde_json::json!({
                "session_id": format!("devin-{n:032x}"), "url": format!("https://app.devin.ai/sessions/{n:032x}"),
                "status": status, "created_at": 100, "updated_at": 200 + *n as i64,
                "acus_consumed": acus, "user_id": user, "tags": tags, "pull_requests": [],
            })
            .to_string()
        })
        .collect();
    format!(r#"{{"items":[{}]}}"#, items.join(","))
}

fn apply(store: &mut SessionStore, body: &str, generation: u32) {
    let page = SessionPage::from_str(body).unwrap();
    for s in &page.items {
        store.upsert(s, generation, Transitions::Counted);
    }
}

#[test]
fn sessions_dropped_by_a_full_relisting_leave_the_breakdowns_and_the_top() {
    let mut store = SessionStore::default();
    store.set_spend_settings(SpendSettings {
        attribution: Attribution::ALL,
        attribution_max_values: 500,
        top_active_sessions: 2,
    });
    apply(
        &mut store,
        &page(&[
            (1, "running", 3.0, "ann", &["a", "b"]),
            (2, "running", 9.0, "bob", &[]),
            (3, "exit", 20.0, "ann", &["b"]),
            (4, "running", 1.0, "ann", &["a"]),
        ]),
        1,
    );
    store.start_spend_counters();
    let spend = store.spend();
    let tag_acus = |store: &SessionStore| -> BTreeMap<String, u64> {
        let spend = store.spend();
        spend
            .acus(Dimension::Tag)
            .map(|(v, a)| (spend.label(Dimension::Tag, v).to_string(), a))
            .collect()
    };
    assert_eq!(
        tag_acus(&store),
        BTreeMap::from([
            ("a".into(), 4_000_000),
            ("b".into(), 23_000_000),
            ("none".into(), 9_000_000)
        ])
    );
    let top: Vec<u64> = spend.top_active().map(|(_, _, a)| a).collect();
    assert_eq!(top, [9_000_000, 3_000_000]);
    // The re-listing (generation 2) no longer sees sessions 2 and 3; session 1 grew.
    apply(
        &mut store,
        &page(&[
            (1, "running", 5.0, "ann", &["a", "b"]),
            (4, "running", 1.0, "ann", &["a"]),
        ]),
        2,
    );
    assert_eq!(store.drop_unseen(2), 2);
    assert_eq!(
        tag_acus(&store),
        BTreeMap::from([("a".into(), 6_000_000), ("b".into(), 5_000_000)])
    );
    let spend = store.spend();
    let top: Vec<(String, u64)> = spend.top_active().map(|(id, _, a)| (id, a)).collect();
    assert_eq!(
        top,
        [
            (format!("devin-{:032x}", 1), 5_000_000),
            (format!("devin-{:032x}", 4), 1_000_000)
        ]
    );
    let users: BTreeMap<String, u64> = spend
        .sessions(Dimension::User)
        .map(|((v, _), n)| (spend.label(Dimension::User, v).to_string(), n))
        .collect();
    assert_eq!(users, BTreeMap::from([("ann".into(), 2)]));
    // Counters keep what the dropped sessions consumed: only session 1's growth since start.
    let consumed: BTreeMap<String, u64> = spend
        .consumed_totals(Dimension::User)
        .map(|(v, n)| (spend.label(Dimension::User, v).to_string(), n))
        .collect();
    assert_eq!(
        consumed,
        BTreeMap::from([("ann".into(), 2_000_000), ("bob".into(), 0)])
    );
}

#[test]
fn the_demo_shows_every_breakdown_and_the_top_sessions() {
    // Demo mode, against the built-in simulator.
    let (mut exporter, url) = common::procs::start_exporter_process_with_args(&[], &["--demo"]);
    let mut m = Metrics::parse("");
    for _ in 0..5 {
        m = Metrics::parse(&common::procs::blocking_get(&format!("{url}/metrics")));
        if m.count("devin_initial_sync_complete", &[]) > 0
            && m.find("devin_initial_sync_complete", &[])
                .iter()
                .all(|(_, v)| *v == 1.0)
        {
            break;
        }
    }
    for (dimension, _) in DIMENSIONS {
        for family in ["sessions", "acus_consumed", "acus_consumed_total"] {
            let name = format!("devin_{dimension}_{family}");
            assert!(m.count(&name, &[]) > 0, "{name} in the demo");
        }
    }
    let orgs = m.count("devin_up", &[]);
    assert_eq!(
        m.count("devin_active_session_acus_consumed", &[]),
        5 * orgs,
        "5 top sessions per org"
    );
    exporter.assert_running();
}
