//! Hostile data from the API: absurd ACU values and an explosion of label combinations.

use crate::common;

use common::{S, mount_page, scrape, start_exporter};
use wiremock::MockServer;

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
async fn label_combinations_are_capped_per_org_and_sums_stay_exact() {
    let api = MockServer::start().await;
    // 100 origins x 100 categories: 200 distinct values, 10,000 distinct combinations.
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
    for family in ["devin_sessions", "devin_sessions_acus_consumed"] {
        let series = m.count(family, &[("org_id", "org-a")]);
        assert!(series <= 2001, "{family}: {series} series");
    }
    assert_eq!(m.sum("devin_sessions", &[("org_id", "org-a")]), 10_000.0);
    assert_eq!(
        m.sum("devin_sessions_acus_consumed", &[("org_id", "org-a")]),
        2_500.0
    );
    let overflow = [
        ("org_id", "org-a"),
        ("status", "overflow"),
        ("status_detail", "overflow"),
        ("origin", "overflow"),
        ("category", "overflow"),
    ];
    assert_eq!(m.get("devin_sessions", &overflow), Some(8_000.0));
    // The other org is untouched.
    assert_eq!(m.count("devin_sessions", &[("org_id", "org-b")]), 1);
}
