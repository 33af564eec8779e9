//! Hostile data from the API: absurd ACU values and an explosion of label combinations.

use crate::common;

use common::{S, mount_page, scrape, sessions_of, start_exporter};
use serde_json::{Value, json};
use wiremock::{MockServer, ResponseTemplate};

#[tokio::test]
async fn absurd_acus_are_clamped_and_bad_ones_count_as_zero() {
    let api = MockServer::start().await;
    let mut sessions: Vec<S> = (0..4).map(S::new).collect();
    sessions[0].acus = 1e308;
    sessions[1].acus = -5.0;
    sessions[2].acus = 2.5;
    sessions[3].acus = 1.5;
    mount_page(&api, "org-a", &sessions).await;
    let exp = start_exporter(&api.uri(), &["org-a"], &[]).await;
    let s = scrape(&exp.url, None).await;
    let m = &s.metrics;
    assert_eq!(m.up("org-a"), Some(1.0));
    // Every session is counted; 1e308 is clamped to 1e9, -5 counts as 0.
    assert_eq!(m.sum("devin_sessions", &[("org_id", "org-a")]), 4.0);
    assert_eq!(
        m.sum("devin_sessions_acus_consumed", &[("org_id", "org-a")]),
        1e9 + 4.0
    );
}

#[tokio::test]
async fn undocumented_values_are_capped_per_label_and_sums_stay_exact() {
    let api = MockServer::start().await;
    // 100 undocumented origins x 100 undocumented categories: 10,000 combinations.
    let leak = |s: String| -> &'static str { Box::leak(s.into_boxed_str()) };
    let sessions: Vec<S> = (0..10_000u32)
        .map(|i| S {
            origin: Some(leak(format!("o{}", i % 100))),
            category: Some(leak(format!("c{}", i / 100))),
            acus: 0.25,
            ..S::new(i)
        })
        .collect();
    mount_page(&api, "org-a", &sessions).await;
    mount_page(&api, "org-b", &[S::new(1)]).await;
    let exp = start_exporter(&api.uri(), &["org-a", "org-b"], &[]).await;
    let s = scrape(&exp.url, None).await;
    let m = &s.metrics;
    assert_eq!(m.up("org-a"), Some(1.0));
    // Each label keeps 16 undocumented values, then `overflow`: 17 x 17 combinations.
    for family in ["devin_sessions", "devin_sessions_acus_consumed"] {
        let series = m.count(family, &[("org_id", "org-a")]);
        assert_eq!(series, 17 * 17, "{family}");
    }
    let org_a = [("org_id", "org-a")];
    assert_eq!(m.sum("devin_sessions", &org_a), 10_000.0);
    assert_eq!(m.sum("devin_sessions_acus_consumed", &org_a), 2_500.0);
    // The documented status and detail are never folded.
    let working = [
        ("org_id", "org-a"),
        ("status", "running"),
        ("status_detail", "working"),
    ];
    assert_eq!(m.sum("devin_sessions", &working), 10_000.0);
    let both = [
        ("org_id", "org-a"),
        ("origin", "overflow"),
        ("category", "overflow"),
    ];
    assert_eq!(m.get("devin_sessions", &both), Some(84.0 * 84.0));
    assert_eq!(
        m.get(
            "devin_sessions",
            &[("org_id", "org-a"), ("origin", "o7"), ("category", "c15")]
        ),
        Some(1.0)
    );
    // The other org is untouched.
    assert_eq!(m.count("devin_sessions", &[("org_id", "org-b")]), 1);
}

/// An org of 20,000 sessions spread over every documented status, detail, origin and
/// category: more combinations in use than the cap on undocumented ones, none folded.
#[cfg(feature = "simulator")]
#[tokio::test]
async fn a_big_org_over_documented_values_is_exact_by_status_and_detail() {
    use devin_exporter::api::enums::STATUS_DETAILS;
    use devin_exporter::simulator::SimConfig;
    use std::collections::BTreeMap;
    use std::time::Duration;

    // Created over the last two hours, so that many are still live and can be moved.
    let config = SimConfig {
        history: Duration::from_secs(2 * 3600),
        ..common::frozen_simulator(1, 20_000)
    };
    let (sim, url) = common::serve_simulator(config).await;
    let org = sim.org_ids()[0].clone();
    // Every documented (status, detail) pair is present.
    for (status, details) in STATUS_DETAILS {
        for detail in *details {
            let moved = sim.transition(&org, 600, status, *detail).unwrap();
            assert!(!moved.is_empty(), "{status} {detail:?}");
        }
    }
    let exp = start_exporter(&url, &[org.as_str()], &[]).await;
    let m = scrape(&exp.url, None).await.metrics;
    assert_eq!(m.up(&org), Some(1.0));
    assert_eq!(
        m.get("devin_initial_sync_complete", &[("org_id", org.as_str())]),
        Some(1.0)
    );
    let series = m.find("devin_sessions", &[("org_id", org.as_str())]);
    assert!(
        series.len() > 2000,
        "only {} combinations in use",
        series.len()
    );
    let mut exposed: BTreeMap<String, BTreeMap<String, u64>> = BTreeMap::new();
    for (labels, v) in &series {
        for label in ["status", "status_detail", "origin", "category"] {
            assert_ne!(labels[label], "overflow", "{labels:?}");
        }
        *exposed
            .entry(labels["status"].clone())
            .or_default()
            .entry(labels["status_detail"].clone())
            .or_default() += *v as u64;
    }
    let truth = &sim.totals()[0].by_status_detail;
    assert_eq!(&exposed, truth);
    let documented: usize = STATUS_DETAILS.iter().map(|(_, d)| d.len()).sum();
    assert_eq!(truth.values().map(BTreeMap::len).sum::<usize>(), documented);
}

/// Values from the network that spell the `none` and `overflow` markers keep series of their
/// own, empty ones read as absent, and a 1 MB session id or url is cut in every label.
#[tokio::test]
async fn network_values_never_merge_with_markers_nor_grow_without_bound() {
    let api = MockServer::start().await;
    let huge_id = format!("devin-{}", "f".repeat(1 << 20));
    let attrs = [
        // user_id, service_user_id, playbook_id, tags
        (
            json!("overflow"),
            json!(null),
            json!("none"),
            json!(["overflow", ""]),
        ),
        (json!(""), json!("svc-1"), json!(""), json!([])),
        (json!(null), json!(null), json!(null), json!(["none"])),
    ];
    let mut items: Vec<Value> = attrs
        .into_iter()
        .zip(0..)
        .map(|((user, service_user, playbook, tags), n)| {
            let mut v = S::new(n).json();
            v["user_id"] = user;
            v["service_user_id"] = service_user;
            v["playbook_id"] = playbook;
            v["tags"] = tags;
            v
        })
        .collect();
    let mut huge = S {
        acus: 50.0,
        ..S::new(9)
    }
    .json();
    huge["url"] = json!(format!("https://app.devin.ai/sessions/{huge_id}"));
    huge["session_id"] = json!(huge_id);
    huge["status_detail"] = json!("overflow");
    items.push(huge);
    let body = json!({"items": items, "end_cursor": null, "has_next_page": false});
    sessions_of("org-a")
        .respond_with(ResponseTemplate::new(200).set_body_json(body))
        .mount(&api)
        .await;
    let attribution = ("DEVIN_ATTRIBUTION", "user,playbook,tag");
    let exp = start_exporter(&api.uri(), &["org-a"], &[attribution]).await;
    let s = scrape(&exp.url, None).await;
    let m = &s.metrics;
    assert_eq!(m.up("org-a"), Some(1.0));
    let by = |family: &str, label: &str| -> Vec<(String, f64)> {
        let mut out: Vec<_> = m
            .find(family, &[("org_id", "org-a")])
            .into_iter()
            .map(|(l, v)| (l[label].clone(), v))
            .collect();
        out.sort_by(|a, b| a.0.cmp(&b.0));
        out
    };
    let pairs = |p: &[(&str, f64)]| -> Vec<(String, f64)> {
        p.iter().map(|(k, v)| (k.to_string(), *v)).collect()
    };
    assert_eq!(
        by("devin_user_acus_consumed", "user_id"),
        pairs(&[("none", 51.0), ("overflow_", 1.0), ("svc-1", 1.0)])
    );
    assert_eq!(
        by("devin_playbook_acus_consumed", "playbook_id"),
        pairs(&[("none", 52.0), ("none_", 1.0)])
    );
    assert_eq!(
        by("devin_tag_acus_consumed", "tag"),
        pairs(&[("none", 51.0), ("none_", 1.0), ("overflow_", 1.0)])
    );
    let detail = [("org_id", "org-a"), ("status_detail", "overflow_")];
    assert_eq!(m.sum("devin_sessions", &detail), 1.0);
    // The huge session is the top active one, under a cut id and url.
    let top = m.find("devin_active_session_acus_consumed", &[("org_id", "org-a")]);
    let (labels, acus) = top
        .iter()
        .find(|(l, _)| l["session_id"].starts_with("devin-fff"))
        .expect("the huge session is exposed");
    assert_eq!(*acus, 50.0);
    assert!(
        labels["session_id"].len() <= 128,
        "{}",
        labels["session_id"].len()
    );
    assert!(labels["url"].len() <= 512, "{}", labels["url"].len());
    assert!(s.body.len() < 64 * 1024, "{} bytes", s.body.len());
}
