//! Billing and capacity: billed ACUs by product, cycle limits and the queue, against the
//! simulator (figures, counters across a day and a cycle boundary, each 403 alone) and
//! wiremock (hostile values, failures).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::common;

use common::{
    Metrics, TestExporter, frozen_simulator, mount_page, scrape, serve_simulator, start_exporter,
};
use devin_exporter::simulator::billing::{CYCLE_DAYS, cycle_start};
use devin_exporter::simulator::{SimConfig, Simulator};
use serde_json::{Value, json};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

const DAY: i64 = 86_400;
/// The interval the tests run billing at.
const INTERVAL: Duration = Duration::from_secs(60);
const BILLING_ON: &[(&str, &str)] = &[("DEVIN_BILLING", "auto"), ("DEVIN_BILLING_INTERVAL", "60s")];

async fn refreshed(exp: &TestExporter) -> Metrics {
    common::scrape_after_billing(exp).await.metrics
}

/// A GET of the API at `path`, as JSON.
async fn api_json(base: &str, path: &str) -> Value {
    let resp = reqwest::Client::new()
        .get(format!("{base}{path}"))
        .bearer_auth("cog_test_token")
        .send()
        .await
        .unwrap();
    serde_json::from_str(&resp.text().await.unwrap()).unwrap()
}

/// The API's cycle-to-date figures per product, in millionths, and the cycle's start.
fn cycle_of(body: &Value) -> (i64, BTreeMap<String, u64>) {
    let days = body["consumption_by_date"].as_array().unwrap();
    let mut sums = BTreeMap::new();
    for day in days {
        for (p, v) in day["acus_by_product"].as_object().unwrap() {
            *sums.entry(p.clone()).or_default() += (v.as_f64().unwrap() * 1e6).round() as u64;
        }
    }
    (days[0]["date"].as_i64().unwrap(), sums)
}

/// The exposed series of `name` per product, in millionths.
fn by_product(m: &Metrics, name: &str, labels: &[(&str, &str)]) -> BTreeMap<String, u64> {
    m.find(name, labels)
        .into_iter()
        .map(|(l, v)| (l["product"].clone(), (v * 1e6).round() as u64))
        .collect()
}

/// `want` with the documented products at 0 where it has none (as the exporter shows them).
fn with_documented(mut want: BTreeMap<String, u64>) -> BTreeMap<String, u64> {
    for p in ["devin", "cascade", "terminal"] {
        want.entry(p.to_string()).or_insert(0);
    }
    want
}

/// A frozen simulator of 2 orgs whose clock starts `before` a cycle boundary.
async fn sim_before_boundary(
    before: i64,
    edit: impl FnOnce(&mut SimConfig),
) -> (Simulator, String, i64) {
    let boundary = cycle_start(1_700_000_000) + CYCLE_DAYS * DAY;
    let mut config = SimConfig {
        start_time: Some(boundary - before),
        ..frozen_simulator(2, 60)
    };
    edit(&mut config);
    let (sim, url) = serve_simulator(config).await;
    (sim, url, boundary)
}

/// Every billing figure the exporter shows equals the API's, at this moment.
async fn assert_figures(
    m: &Metrics,
    url: &str,
    orgs: &[String],
) -> BTreeMap<String, BTreeMap<String, u64>> {
    let mut api = BTreeMap::new();
    let (start, enterprise) = cycle_of(&api_json(url, "/v3/enterprise/consumption/daily").await);
    assert_eq!(
        by_product(m, "devin_billing_cycle_acus", &[]),
        with_documented(enterprise.clone())
    );
    assert_eq!(
        m.get("devin_billing_cycle_start_timestamp_seconds", &[]),
        Some(start as f64)
    );
    api.insert(String::new(), enterprise);
    for org in orgs {
        let body = api_json(url, &format!("/v3/organizations/{org}/consumption/daily")).await;
        let (_, sums) = cycle_of(&body);
        let shown = by_product(m, "devin_org_billing_cycle_acus", &[("org_id", org)]);
        assert_eq!(shown, with_documented(sums.clone()), "{org}");
        api.insert(org.clone(), sums);
    }
    let limits = api_json(url, "/v3/enterprise/consumption/acu-limits/devin?first=200").await;
    for item in limits["items"].as_array().unwrap() {
        let limit = item["cycle_acu_limit"].as_f64();
        match item["scope"].as_str() {
            Some("enterprise") => {
                assert_eq!(m.get("devin_enterprise_max_cycle_acu_limit", &[]), limit);
            }
            Some("organization") => {
                let org = item["org_id"].as_str().unwrap();
                assert_eq!(
                    m.get("devin_org_max_cycle_acu_limit", &[("org_id", org)]),
                    limit
                );
            }
            _ => {}
        }
    }
    let queue = api_json(url, "/v3/enterprise/queue").await;
    assert_eq!(
        m.get("devin_queue_sessions", &[]),
        queue["queue_size"].as_f64()
    );
    let status = queue["status"].as_str().unwrap();
    for s in ["normal", "elevated", "high"] {
        let want = if s == status { 1.0 } else { 0.0 };
        assert_eq!(
            m.get("devin_queue_pressure", &[("status", s)]),
            Some(want),
            "{s}"
        );
    }
    api
}

/// The counters' growth between two scrapes, per scope ("" the enterprise) and product.
fn billed(m: &Metrics) -> BTreeMap<(String, String), u64> {
    let mut out = BTreeMap::new();
    for (name, scope) in [
        ("devin_billed_acus_total", false),
        ("devin_org_billed_acus_total", true),
    ] {
        for (l, v) in m.find(name, &[]) {
            let org = if scope {
                l["org_id"].clone()
            } else {
                String::new()
            };
            out.insert((org, l["product"].clone()), (v * 1e6).round() as u64);
        }
    }
    out
}

#[tokio::test]
async fn figures_equal_the_api_and_counters_grow_by_what_was_billed_across_day_and_cycle() {
    // Two hours before a cycle boundary, which is also a billing day's end (08:00 UTC).
    let (sim, url, boundary) = sim_before_boundary(DAY + 2 * 3600, |_| {}).await;
    let orgs = sim.org_ids();
    let ids: Vec<&str> = orgs.iter().map(String::as_str).collect();
    let exp = start_exporter(&url, &ids, BILLING_ON).await;

    let m = refreshed(&exp).await;
    for source in [
        "enterprise_consumption",
        "org_consumption",
        "acu_limits",
        "queue",
    ] {
        assert_eq!(
            m.get("devin_billing_up", &[("source", source)]),
            Some(1.0),
            "{source}"
        );
        assert_eq!(
            m.count(
                "devin_billing_last_success_timestamp_seconds",
                &[("source", source)]
            ),
            1
        );
    }
    // The first step compares with these figures; the second crosses the cycle, where the
    // new cycle's figures are the growth.
    let first = assert_figures(&m, &url, &orgs).await;
    let counters = billed(&m);
    assert!(
        counters.values().all(|v| *v == 0),
        "born at 0: {counters:?}"
    );
    assert!(first[""]["devin"] > 0 && first[""]["cascade"] > 0);

    // Across a billing day's start at 08:00 UTC, same cycle: growth is the difference.
    for (step, crosses_cycle) in [(4 * 3600, false), (DAY, true)] {
        sim.advance(Duration::from_secs(step as u64));
        for org in &orgs {
            sim.touch(org, 20);
        }
        let before = billed(&scrape(&exp.url, None).await.metrics);
        common::skip_time(INTERVAL).await;
        let m = refreshed(&exp).await;
        let now = assert_figures(&m, &url, &orgs).await;
        let after = billed(&m);
        assert_eq!(sim.now() >= boundary, crosses_cycle);
        let mut grew = false;
        for ((scope, product), v) in &after {
            let new = now[scope].get(product).copied().unwrap_or(0);
            let old = first[scope].get(product).copied().unwrap_or(0);
            // Same cycle: what the cycle-to-date figure grew; a new cycle: its whole total.
            let want = if crosses_cycle { new } else { new - old };
            assert_eq!(
                v - before[&(scope.clone(), product.clone())],
                want,
                "{scope} {product}"
            );
            grew |= want > 0;
        }
        assert!(grew, "something was billed over the step");
    }
}

#[tokio::test]
async fn a_403_on_each_source_alone_leaves_everything_else_intact() {
    let sources = [
        "enterprise_consumption",
        "org_consumption",
        "acu_limits",
        "queue",
    ];
    for forbidden in sources {
        let (sim, url, _) = sim_before_boundary(5 * DAY, |c| {
            c.forbidden_billing = vec![forbidden.to_string()];
        })
        .await;
        let orgs = sim.org_ids();
        let ids: Vec<&str> = orgs.iter().map(String::as_str).collect();
        let exp = start_exporter(&url, &ids, BILLING_ON).await;
        let m = refreshed(&exp).await;
        for org in &orgs {
            assert_eq!(m.up(org), Some(1.0), "{forbidden}: sessions of {org}");
        }
        for source in sources {
            let up = m.get("devin_billing_up", &[("source", source)]);
            assert_eq!(
                up,
                (source != forbidden).then_some(1.0),
                "{forbidden}: {source}"
            );
        }
        let gone = match forbidden {
            "enterprise_consumption" => "devin_billing_cycle_acus",
            "org_consumption" => "devin_org_billing_cycle_acus",
            "acu_limits" => "devin_enterprise_max_cycle_acu_limit",
            _ => "devin_queue_sessions",
        };
        assert_eq!(m.count(gone, &[]), 0, "{forbidden}");
        let landing = exp.text("/").await;
        assert!(
            landing.contains("off: the token lacks"),
            "{forbidden}: {landing}"
        );
    }

    // One org's consumption forbidden: only that org's series go.
    // Same seed, same org ids.
    let first_org = Simulator::new(frozen_simulator(2, 0)).org_ids()[0].clone();
    let (sim, url, _) = sim_before_boundary(5 * DAY, |c| {
        c.forbidden_consumption_orgs = vec![first_org];
    })
    .await;
    let orgs = sim.org_ids();
    let ids: Vec<&str> = orgs.iter().map(String::as_str).collect();
    let exp = start_exporter(&url, &ids, BILLING_ON).await;
    let m = refreshed(&exp).await;
    assert_eq!(
        m.count("devin_org_billing_cycle_acus", &[("org_id", &orgs[0])]),
        0
    );
    assert_eq!(
        m.count("devin_org_billing_cycle_acus", &[("org_id", &orgs[1])]),
        3
    );
    assert_eq!(
        m.get("devin_billing_up", &[("source", "org_consumption")]),
        Some(1.0)
    );
}

/// A mocked API with one session in org-a and `body` as every consumption answer.
async fn consumption_api(body: Value) -> MockServer {
    let api = MockServer::start().await;
    mount_page(&api, "org-a", &[common::S::new(1)]).await;
    Mock::given(method("GET"))
        .and(path("/v3/enterprise/consumption/daily"))
        .respond_with(ResponseTemplate::new(200).set_body_json(body.clone()))
        .mount(&api)
        .await;
    Mock::given(method("GET"))
        .and(path("/v3/organizations/org-a/consumption/daily"))
        .respond_with(ResponseTemplate::new(200).set_body_json(body))
        .mount(&api)
        .await;
    api
}

#[tokio::test]
async fn hostile_values_are_clamped_or_refused_never_a_wrong_sum() {
    let today = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let day = today - (today - 8 * 3600).rem_euclid(DAY);
    let long = "p".repeat(300);
    let body = json!({"total_acus": "lots", "consumption_by_date": [
        {"date": day - DAY, "acus_by_product": {"devin": 1.25, "cascade": -4, "terminal": "NaN"}},
        {"date": day, "acus_by_product": {"devin": 0.5, "review": 1e308, long.clone(): 2}},
        {"date": day + 10 * DAY, "acus_by_product": {"devin": 1000}},
        {"date": "tomorrow", "acus_by_product": {"devin": 7}},
        "not a day"
    ]});
    let api = consumption_api(body).await;
    let exp = start_exporter(&api.uri(), &["org-a"], &[("DEVIN_BILLING", "on")]).await;
    let m = refreshed(&exp).await;
    assert_eq!(m.up("org-a"), Some(1.0));
    for (labels, name) in [
        (vec![], "devin_billing_cycle_acus"),
        (vec![("org_id", "org-a")], "devin_org_billing_cycle_acus"),
    ] {
        let shown = by_product(&m, name, &labels);
        let want: BTreeMap<String, u64> = [
            ("devin", 1_750_000),
            ("cascade", 0),
            ("terminal", 0),
            ("review", 1_000_000_000_000_000_000),
            (&long[..100], 2_000_000),
        ]
        .into_iter()
        .map(|(p, v)| (p.to_string(), v))
        .collect();
        assert_eq!(shown, want, "{name}");
    }
    assert_eq!(
        m.get("devin_billing_cycle_start_timestamp_seconds", &[]),
        Some((day - DAY) as f64)
    );
    // acu_limits and queue are not mocked: 404, a failure like any other.
    assert_eq!(m.get("devin_billing_up", &[("source", "queue")]), Some(0.0));
    assert_eq!(
        m.get("devin_billing_up", &[("source", "enterprise_consumption")]),
        Some(1.0)
    );
}

#[tokio::test]
async fn a_403_in_on_mode_and_any_other_failure_keep_the_last_values() {
    let api = consumption_api(json!({"consumption_by_date": [
        {"date": 1_700_000_000, "acus_by_product": {"devin": 3}}]}))
    .await;
    Mock::given(method("GET"))
        .and(path("/v3/enterprise/queue"))
        .respond_with(
            ResponseTemplate::new(403)
                .set_body_json(json!({"detail": "Missing permission ViewAccountMetrics"})),
        )
        .mount(&api)
        .await;
    let exp = start_exporter(
        &api.uri(),
        &["org-a"],
        &[("DEVIN_BILLING", "on"), ("DEVIN_BILLING_INTERVAL", "60s")],
    )
    .await;
    let m = refreshed(&exp).await;
    assert_eq!(
        m.get("devin_billing_up", &[("source", "queue")]),
        Some(0.0),
        "on: a 403 is a failure"
    );
    let success = m.get(
        "devin_billing_last_success_timestamp_seconds",
        &[("source", "enterprise_consumption")],
    );
    assert!(success.is_some());

    // The API fails from now on: the last figures stay, with their age, and up says 0.
    api.reset().await;
    mount_page(&api, "org-a", &[common::S::new(1)]).await;
    common::skip_time(INTERVAL).await;
    let m = refreshed(&exp).await;
    assert_eq!(m.up("org-a"), Some(1.0), "sessions never depend on billing");
    assert_eq!(
        m.get("devin_billing_up", &[("source", "enterprise_consumption")]),
        Some(0.0)
    );
    assert_eq!(
        m.get("devin_billing_cycle_acus", &[("product", "devin")]),
        Some(3.0)
    );
    assert_eq!(
        m.get(
            "devin_billing_last_success_timestamp_seconds",
            &[("source", "enterprise_consumption")]
        ),
        success
    );
    let landing = exp.text("/").await;
    assert!(landing.contains("HTTP 404"), "{landing}");
}

/// Answers every request it gets with `body`, noting when each came.
struct Stamped(Arc<Mutex<Vec<std::time::Instant>>>, Value);

impl wiremock::Respond for Stamped {
    fn respond(&self, _: &wiremock::Request) -> ResponseTemplate {
        self.0.lock().unwrap().push(std::time::Instant::now());
        ResponseTemplate::new(200).set_body_json(self.1.clone())
    }
}

/// Billing takes at most a quarter of the token's request budget, so thousands of orgs'
/// consumption never queue ahead of the session collections: 20 orgs' consumption at a
/// budget of 40 requests/s are spread over at least 19 x 100 ms.
#[tokio::test]
async fn billing_paces_itself_to_a_share_of_the_request_budget() {
    let api = MockServer::start().await;
    let orgs: Vec<String> = (0..20).map(|i| format!("org-{i}")).collect();
    for org in &orgs {
        mount_page(&api, org, &[common::S::new(1)]).await;
    }
    let arrivals = Arc::new(Mutex::new(Vec::new()));
    let day = json!({"total_acus": 1.0, "consumption_by_date": []});
    Mock::given(method("GET"))
        .and(wiremock::matchers::path_regex(
            r"^/v3/organizations/[^/]+/consumption/daily$",
        ))
        .respond_with(Stamped(Arc::clone(&arrivals), day))
        .mount(&api)
        .await;
    let ids: Vec<&str> = orgs.iter().map(String::as_str).collect();
    let extra = [
        ("DEVIN_BILLING", "auto"),
        ("DEVIN_SESSION_SOURCE", "orgs"),
        ("DEVIN_MAX_REQUESTS_PER_SECOND", "40"),
    ];
    let exp = start_exporter(&api.uri(), &ids, &extra).await;
    let m = common::scrape_after_billing(&exp).await.metrics;
    for org in &ids {
        assert_eq!(m.up(org), Some(1.0), "{org}");
    }
    let arrivals = arrivals.lock().unwrap().clone();
    assert_eq!(arrivals.len(), orgs.len());
    let spread = *arrivals.iter().max().unwrap() - *arrivals.iter().min().unwrap();
    // A lower bound only: a loaded machine can make it slower, never faster.
    assert!(spread >= Duration::from_millis(1700), "{spread:?}");
}
