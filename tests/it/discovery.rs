//! Org discovery, `/probe` and the HTTP service-discovery endpoint, against a mocked API.

use crate::common;

use common::{S, mount_page, scrape, start_exporter};
use serde_json::json;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

async fn mount_orgs(api: &MockServer) {
    Mock::given(method("GET"))
        .and(path("/v3/enterprise/organizations"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "items": [
                {"org_id": "org-a", "name": "Platform", "created_at": 1, "updated_at": 1,
                 "max_session_acu_limit": 50.0, "max_cycle_acu_limit": 10000.0},
                {"org_id": "org-b", "name": "Data", "created_at": 1, "updated_at": 1,
                 "max_session_acu_limit": null, "max_cycle_acu_limit": null},
                {"org_id": "org-sandbox", "name": "Sandbox", "created_at": 1, "updated_at": 1}
            ],
            "end_cursor": null, "has_next_page": false
        })))
        .mount(api)
        .await;
    for (org, n) in [
        ("org-a", 2u32),
        ("org-b", 3),
        ("org-sandbox", 1),
        ("org-static", 4),
    ] {
        mount_page(api, org, &(0..n).map(S::new).collect::<Vec<_>>()).await;
    }
}

const DISCOVER: &[(&str, &str)] = &[
    ("DEVIN_DISCOVER_ORGS", "true"),
    ("DEVIN_EXCLUDE_ORG_IDS", "org-sandbox"),
];

#[tokio::test]
async fn discovered_orgs_are_collected_with_names_and_limits() {
    let api = MockServer::start().await;
    mount_orgs(&api).await;
    let exp = start_exporter(&api.uri(), &["org-static"], DISCOVER).await;
    let s = scrape(&exp.url, None).await;
    let m = &s.metrics;
    for (org, n) in [("org-static", 4.0), ("org-a", 2.0), ("org-b", 3.0)] {
        assert_eq!(m.up(org), Some(1.0), "{org}");
        assert_eq!(m.sum("devin_sessions", &[("org_id", org)]), n, "{org}");
    }
    assert_eq!(
        m.count("devin_up", &[("org_id", "org-sandbox")]),
        0,
        "excluded"
    );
    assert_eq!(
        m.get(
            "devin_org_info",
            &[("org_id", "org-a"), ("name", "Platform")]
        ),
        Some(1.0)
    );
    assert_eq!(
        m.get("devin_org_max_cycle_acu_limit", &[("org_id", "org-a")]),
        Some(10000.0)
    );
    assert_eq!(
        m.get("devin_org_max_session_acu_limit", &[("org_id", "org-a")]),
        Some(50.0)
    );
    assert_eq!(
        m.count("devin_org_max_cycle_acu_limit", &[("org_id", "org-b")]),
        0,
        "null limit absent"
    );
    assert_eq!(m.get("devin_discovery_up", &[]), Some(1.0));
    assert_eq!(m.get("devin_discovered_orgs", &[]), Some(3.0));
    // Discovery requests carry no org_id.
    assert!(
        s.body
            .contains("devin_api_requests_total{org_id=\"\",code=\"200\"} 1"),
        "{}",
        s.body
    );
}

#[tokio::test]
async fn probe_collects_exactly_one_org() {
    let api = MockServer::start().await;
    mount_orgs(&api).await;
    let exp = start_exporter(&api.uri(), &["org-static", "org-a"], &[]).await;
    let client = reqwest::Client::new();
    let probe = |query: &str| {
        let req = client.get(format!("{}/probe{query}", exp.url)).send();
        async { req.await.unwrap() }
    };
    let body = probe("?org_id=org-a").await;
    assert_eq!(
        body.headers()["content-type"],
        "text/plain; version=0.0.4; charset=utf-8"
    );
    let m = common::Metrics::parse(&body.text().await.unwrap());
    assert_eq!(m.up("org-a"), Some(1.0));
    assert_eq!(m.sum("devin_sessions", &[]), 2.0);
    assert_eq!(m.count("devin_up", &[]), 1, "only the probed org");
    // Only org-a was asked for.
    let requests = api.received_requests().await.unwrap();
    assert!(
        requests.iter().all(|r| r.url.path().contains("/org-a/")),
        "{requests:?}"
    );
    // Probing again keeps the org's state: an incremental request, not a new full listing.
    probe("?org_id=org-a").await;
    let last = api.received_requests().await.unwrap().pop().unwrap();
    assert!(last.url.query().unwrap().contains("updated_after="));

    assert_eq!(probe("").await.status(), 400);
    assert_eq!(probe("?org_id=org-zzz").await.status(), 404);
}

#[tokio::test]
async fn service_discovery_lists_orgs_as_targets() {
    let api = MockServer::start().await;
    mount_orgs(&api).await;
    let exp = start_exporter(&api.uri(), &["org-static"], DISCOVER).await;
    let sd: serde_json::Value = serde_json::from_str(&exp.text("/sd").await).unwrap();
    assert_eq!(
        sd,
        json!([
            {"targets": ["org-static"], "labels": {"__meta_devin_org_id": "org-static"}},
            {"targets": ["org-a"], "labels": {"__meta_devin_org_id": "org-a", "__meta_devin_org_name": "Platform"}},
            {"targets": ["org-b"], "labels": {"__meta_devin_org_id": "org-b", "__meta_devin_org_name": "Data"}},
        ])
    );
}

/// Requests that reached the discovery endpoint.
async fn discovery_requests(api: &MockServer) -> usize {
    api.received_requests()
        .await
        .unwrap()
        .iter()
        .filter(|r| r.url.path() == "/v3/enterprise/organizations")
        .count()
}

/// `n` probes of orgs nobody knows, `concurrency` at a time; all must be 404.
async fn probe_unknown(base: &str, n: usize, concurrency: usize) {
    use futures::stream::{self, StreamExt};
    let client = reqwest::Client::new();
    let statuses: Vec<u16> = stream::iter(0..n)
        .map(|i| {
            let client = client.clone();
            async move {
                client
                    .get(format!("{base}/probe?org_id=org-unknown-{i}"))
                    .send()
                    .await
                    .unwrap()
                    .status()
                    .as_u16()
            }
        })
        .buffer_unordered(concurrency)
        .collect()
        .await;
    assert!(statuses.iter().all(|s| *s == 404), "{statuses:?}");
}

#[tokio::test]
async fn a_forbidden_discovery_keeps_the_configured_orgs_and_is_not_retried_for_every_probe() {
    let api = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/v3/enterprise/organizations"))
        .respond_with(
            ResponseTemplate::new(403)
                .set_body_json(json!({"detail": "Missing ManageOrganizations"})),
        )
        .mount(&api)
        .await;
    mount_orgs(&api).await;
    let exp = start_exporter(&api.uri(), &["org-static"], DISCOVER).await;
    let s = scrape(&exp.url, None).await;
    assert_eq!(s.metrics.get("devin_discovery_up", &[]), Some(0.0));
    assert_eq!(s.metrics.up("org-static"), Some(1.0));
    assert_eq!(s.metrics.count("devin_up", &[]), 1);
    // 500 unauthenticated probes of unknown orgs: answered from the known list, no request.
    probe_unknown(&exp.url, 500, 20).await;
    assert_eq!(discovery_requests(&api).await, 1);
    // The configured org is still served.
    let s = scrape(&exp.url, None).await;
    assert_eq!(s.metrics.up("org-static"), Some(1.0));
    assert_eq!(discovery_requests(&api).await, 1);
}

#[tokio::test]
async fn an_unavailable_discovery_runs_once_and_probes_do_not_wait_for_it() {
    let api = MockServer::start().await;
    // The first discovery succeeds; every later one is slow and fails.
    Mock::given(method("GET"))
        .and(path("/v3/enterprise/organizations"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "items": [{"org_id": "org-a", "name": "Platform"}],
            "end_cursor": null, "has_next_page": false
        })))
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&api)
        .await;
    Mock::given(method("GET"))
        .and(path("/v3/enterprise/organizations"))
        .respond_with(ResponseTemplate::new(503).set_delay(std::time::Duration::from_millis(500)))
        .with_priority(2)
        .mount(&api)
        .await;
    mount_orgs(&api).await;
    let exp = start_exporter(
        &api.uri(),
        &["org-static"],
        &[
            ("DEVIN_DISCOVER_ORGS", "true"),
            ("DEVIN_DISCOVERY_INTERVAL", "60s"),
        ],
    )
    .await;
    let s = scrape(&exp.url, None).await;
    assert_eq!(s.metrics.up("org-a"), Some(1.0));
    assert_eq!(discovery_requests(&api).await, 1);
    // The interval passes on the runtime's clock; the next probe starts a refresh, which
    // hangs on the failing API.
    common::skip_time(std::time::Duration::from_secs(60)).await;
    let first = tokio::spawn({
        let base = exp.url.clone();
        async move { probe_unknown(&base, 1, 1).await }
    });
    while discovery_requests(&api).await < 2 {
        tokio::task::yield_now().await;
    }
    // Meanwhile 30 probes answer from the known list, without joining the refresh.
    probe_unknown(&exp.url, 30, 30).await;
    let discovery = exp.exporter.discovery().unwrap();
    assert_eq!(
        discovery.status().await.up,
        Some(true),
        "the refresh was still running when every other probe had its answer"
    );
    first.await.unwrap();
    let status = discovery.status().await;
    assert_eq!(status.up, Some(false));
    // After the failure, a backoff: more probes make no request.
    let after_refresh = discovery_requests(&api).await;
    probe_unknown(&exp.url, 30, 30).await;
    assert_eq!(discovery_requests(&api).await, after_refresh);
    // One refresh ran (with its own retries), not one per probe.
    assert!(after_refresh <= 1 + 5, "{after_refresh} discovery requests");
    // The org found before is still collected.
    let s = scrape(&exp.url, None).await;
    assert_eq!(s.metrics.up("org-a"), Some(1.0));
}
