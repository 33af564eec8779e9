//! The simulated Devin API over real HTTP: the documented contract (auth, 404, 422, cursors,
//! filters, optional `total`), determinism, the lifecycle over simulated time, and faults.
#![cfg(feature = "simulator")]

use std::collections::HashSet;
use std::time::{Duration, Instant};

use crate::common::serve_simulator as serve;
use devin_exporter::simulator::{Fault, FaultKind, SimConfig, Simulator};
use serde_json::Value;

const TOKEN: &str = "cog_sim_5d2e8a41c7f9";

fn frozen(orgs: usize, sessions: usize) -> SimConfig {
    SimConfig {
        orgs,
        sessions_per_org: sessions,
        speed: 0.0,
        start_time: Some(1_780_000_000),
        ..SimConfig::default()
    }
}

async fn get(url: &str, token: Option<&str>) -> (u16, reqwest::header::HeaderMap, Value) {
    let mut req = reqwest::Client::new().get(url);
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let text = resp.text().await.unwrap();
    (
        status,
        headers,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

fn sessions_url(base: &str, org: &str, query: &str) -> String {
    format!("{base}/v3/organizations/{org}/sessions?{query}")
}

/// The body of a listing of `org` with the simulator's token.
async fn list(base: &str, org: &str, query: &str) -> Value {
    get(&sessions_url(base, org, query), Some(TOKEN)).await.2
}

/// Walks every page; returns the ids in order.
async fn walk(base: &str, org: &str, query: &str, on_page: impl Fn(usize)) -> Vec<String> {
    let mut ids = Vec::new();
    let mut after: Option<String> = None;
    for page in 0.. {
        let q = match &after {
            Some(c) => format!("{query}&after={c}"),
            None => query.to_string(),
        };
        let (status, _, body) = get(&sessions_url(base, org, &q), Some(TOKEN)).await;
        assert_eq!(status, 200, "{body}");
        ids.extend(
            body["items"]
                .as_array()
                .unwrap()
                .iter()
                .map(|i| i["session_id"].as_str().unwrap().to_string()),
        );
        on_page(page);
        if !body["has_next_page"].as_bool().unwrap() {
            assert!(body["end_cursor"].is_null());
            break;
        }
        after = Some(body["end_cursor"].as_str().unwrap().to_string());
    }
    ids
}

#[tokio::test]
async fn pagination_lists_every_session_once() {
    let (sim, base) = serve(frozen(2, 1234)).await;
    let org = &sim.org_ids()[0];
    let ids = walk(&base, org, "first=100", |_| {}).await;
    let unique: HashSet<_> = ids.iter().collect();
    assert_eq!(unique.len(), ids.len(), "no duplicates");
    assert_eq!(ids.len() as u64, sim.totals()[0].sessions);
    assert!(
        ids.iter()
            .all(|id| id.starts_with("devin-") && id.len() == 38)
    );
    // First unfiltered page carries total; later pages do not.
    let first = list(&base, org, "first=10").await;
    assert_eq!(first["total"].as_u64(), Some(sim.totals()[0].sessions));
    let cursor = first["end_cursor"].as_str().unwrap();
    let second = list(&base, org, &format!("first=10&after={cursor}")).await;
    assert!(second["total"].is_null());
    let filtered = list(&base, org, "first=10&created_after=0").await;
    assert!(filtered["total"].is_null(), "no total with a time filter");
    // Every documented field is there.
    let item = &first["items"][0];
    let fields = "session_id url status status_detail tags org_id \
        created_at updated_at acus_consumed pull_requests origin category \
        subcategory is_archived title user_id service_user_id playbook_id \
        parent_session_id child_session_ids structured_output";
    for field in fields.split_whitespace() {
        assert!(item.get(field).is_some(), "{field} missing in {item}");
    }
    // Default page size is 100.
    let default = list(&base, org, "").await;
    assert_eq!(default["items"].as_array().unwrap().len(), 100);
}

#[tokio::test]
async fn cursors_stay_stable_when_sessions_are_created_between_pages() {
    let (sim, base) = serve(frozen(1, 500)).await;
    let org = sim.org_ids()[0].clone();
    let before: HashSet<String> = walk(&base, &org, "first=50", |_| {})
        .await
        .into_iter()
        .collect();
    let sim2 = sim.clone();
    let org2 = org.clone();
    let ids = walk(&base, &org, "first=50", move |page| {
        if page < 5 {
            sim2.create(&org2, 7);
        }
    })
    .await;
    let seen: HashSet<String> = ids.iter().cloned().collect();
    assert_eq!(seen.len(), ids.len(), "no duplicates");
    assert!(before.is_subset(&seen), "no pre-existing session skipped");
}

#[tokio::test]
async fn auth_unknown_org_and_validation_errors() {
    let (sim, base) = serve(frozen(1, 10)).await;
    let org = &sim.org_ids()[0];
    let (status, headers, body) = get(&sessions_url(&base, org, "first=5"), None).await;
    assert_eq!(status, 401);
    assert_eq!(headers["content-type"], "application/problem+json");
    assert_eq!(body["status"], 401);
    assert!(body["detail"].is_string() && body["title"].is_string());
    let (status, _, _) = get(&sessions_url(&base, org, "first=5"), Some("cog_wrong")).await;
    assert_eq!(status, 401);
    let (status, _, body) = get(&sessions_url(&base, "org-nope", "first=5"), Some(TOKEN)).await;
    assert_eq!(status, 404);
    assert!(body["detail"].as_str().unwrap().contains("org-nope"));
    for (first, kind) in [
        ("0", "greater_than_equal"),
        ("201", "less_than_equal"),
        ("abc", "int_parsing"),
    ] {
        let (status, _, body) = get(
            &sessions_url(&base, org, &format!("first={first}")),
            Some(TOKEN),
        )
        .await;
        assert_eq!(status, 422, "first={first}");
        assert_eq!(
            body["detail"][0]["loc"],
            serde_json::json!(["query", "first"])
        );
        assert_eq!(body["detail"][0]["type"], kind);
        assert!(body["detail"][0]["msg"].is_string());
    }
    let (status, _, _) = get(&sessions_url(&base, org, "after=%%%garbage"), Some(TOKEN)).await;
    assert_eq!(status, 422);
    let (status, _, body) = get(&format!("{base}/v3/self"), Some(TOKEN)).await;
    assert_eq!(status, 200);
    assert_eq!(body["principal_type"], "service_user");
    assert!(body["org_id"].is_null());
    // The /v3beta1 prefix some docs show works too.
    let (status, _, _) = get(
        &format!("{base}/v3beta1/organizations/{org}/sessions?first=1"),
        Some(TOKEN),
    )
    .await;
    assert_eq!(status, 200);
}

async fn time_filter_counts(base: &str, org: &str, at: i64) -> (usize, usize, usize, usize) {
    let count = |q: String| async move {
        walk(base, org, &format!("first=200&{q}"), |_| {})
            .await
            .len()
    };
    (
        count(format!("created_after={at}")).await,
        count(format!("created_before={at}")).await,
        count(format!("updated_after={at}")).await,
        count(format!("updated_before={at}")).await,
    )
}

#[tokio::test]
async fn time_filters_inclusive_by_default_strict_when_asked() {
    for exclusive in [false, true] {
        let (sim, base) = serve(SimConfig {
            exclusive_time_bounds: exclusive,
            ..frozen(1, 300)
        })
        .await;
        let org = sim.org_ids()[0].clone();
        // Two sessions created in the very same second, which is also their updated_at.
        sim.advance(Duration::from_secs(3600));
        sim.create(&org, 2);
        let at = sim.now();
        let total = sim.totals()[0].sessions as usize;
        let (after, before, upd_after, upd_before) = time_filter_counts(&base, &org, at).await;
        if exclusive {
            assert_eq!(after, 0);
            assert_eq!(before, total - 2);
            assert_eq!(upd_after, 0);
            assert_eq!(upd_before + 2, total);
        } else {
            assert_eq!(after, 2);
            assert_eq!(before, total);
            assert_eq!(upd_after, 2);
            assert_eq!(upd_before, total);
        }
    }
}

#[tokio::test]
async fn is_archived_and_list_filters() {
    let (sim, base) = serve(frozen(1, 800)).await;
    let org = sim.org_ids()[0].clone();
    let t = &sim.totals()[0];
    assert!(t.archived > 0);
    let archived = walk(&base, &org, "first=200&is_archived=true", |_| {})
        .await
        .len() as u64;
    let live = walk(&base, &org, "first=200&is_archived=false", |_| {})
        .await
        .len() as u64;
    assert_eq!((archived, archived + live), (t.archived, t.sessions));
    let repeated = walk(&base, &org, "first=200&origins=slack&origins=api", |_| {})
        .await
        .len();
    let comma = walk(&base, &org, "first=200&origins=slack,api", |_| {})
        .await
        .len();
    assert_eq!(repeated, comma);
    assert!(repeated > 0 && (repeated as u64) < t.sessions);
}

#[tokio::test]
async fn same_seed_same_world() {
    let (_a, base_a) = serve(frozen(2, 300)).await;
    let (sim_b, base_b) = serve(frozen(2, 300)).await;
    let org = &sim_b.org_ids()[1];
    let a = list(&base_a, org, "first=200").await;
    let b = list(&base_b, org, "first=200").await;
    assert_eq!(a, b);
    let (other, _) = serve(SimConfig {
        seed: 7,
        ..frozen(2, 300)
    })
    .await;
    assert_ne!(other.org_ids(), sim_b.org_ids());
}

#[tokio::test]
async fn sessions_live_on_the_simulated_clock() {
    let sim = Simulator::new(SimConfig {
        arrivals_per_hour: 60.0,
        ..frozen(1, 200)
    });
    let before = sim.totals()[0].clone();
    let seen_running = {
        let mut any = false;
        for _ in 0..12 {
            sim.advance(Duration::from_secs(600));
            any |= sim.totals()[0]
                .by_status
                .get("running")
                .is_some_and(|n| *n > 0);
        }
        any
    };
    let after = sim.totals()[0].clone();
    assert!(
        after.sessions >= before.sessions + 50,
        "{} -> {}",
        before.sessions,
        after.sessions
    );
    assert!(seen_running, "some sessions run");
    assert!(after.acus_consumed > before.acus_consumed, "ACUs grow");
    let statuses: Vec<&String> = after.by_status.keys().collect();
    for s in ["exit", "error", "suspended"] {
        assert!(after.by_status.contains_key(s), "{s} in {statuses:?}");
    }
    assert!(after.pull_requests.contains_key("merged") && after.pull_requests.contains_key("open"));
    // A frozen clock means a frozen world.
    assert_eq!(sim.totals(), sim.totals());
}

#[tokio::test]
async fn categories_arrive_minutes_after_creation() {
    let (sim, base) = serve(frozen(1, 10)).await;
    let org = sim.org_ids()[0].clone();
    sim.create(&org, 20);
    let at = sim.now();
    let fresh = list(&base, &org, &format!("first=200&created_after={at}")).await;
    assert!(
        fresh["items"]
            .as_array()
            .unwrap()
            .iter()
            .all(|i| i["category"].is_null())
    );
    sim.advance(Duration::from_secs(1800));
    let later = list(&base, &org, &format!("first=200&created_after={at}")).await;
    let classified = later["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|i| !i["category"].is_null())
        .count();
    assert!(classified >= 15, "{classified} of 20 classified");
}

fn fault(org_id: Option<&String>, kind: FaultKind, count: u32) -> Fault {
    let org_id = org_id.cloned();
    Fault {
        org_id,
        kind,
        count,
    }
}

#[tokio::test]
async fn injected_faults() {
    let (sim, base) = serve(frozen(2, 10)).await;
    let orgs = sim.org_ids();
    let url = sessions_url(&base, &orgs[0], "first=5");
    sim.inject(fault(
        Some(&orgs[0]),
        FaultKind::RateLimit {
            retry_after_seconds: Some(3),
            http_date: false,
        },
        1,
    ));
    let (status, headers, _) = get(&url, Some(TOKEN)).await;
    assert_eq!(
        (status, headers["retry-after"].to_str().unwrap()),
        (429, "3")
    );
    assert_eq!(
        get(&url, Some(TOKEN)).await.0,
        200,
        "one fault, one request"
    );

    sim.inject(fault(
        None,
        FaultKind::RateLimit {
            retry_after_seconds: Some(5),
            http_date: true,
        },
        1,
    ));
    let (_, headers, _) = get(&url, Some(TOKEN)).await;
    assert!(httpdate::parse_http_date(headers["retry-after"].to_str().unwrap()).is_ok());

    sim.inject(fault(Some(&orgs[1]), FaultKind::Status(503), 2));
    assert_eq!(
        get(&url, Some(TOKEN)).await.0,
        200,
        "fault is for the other org"
    );
    let other = sessions_url(&base, &orgs[1], "first=5");
    assert_eq!(get(&other, Some(TOKEN)).await.0, 503);
    assert_eq!(get(&other, Some(TOKEN)).await.0, 503);
    assert_eq!(get(&other, Some(TOKEN)).await.0, 200);

    sim.inject(fault(None, FaultKind::MalformedJson, 1));
    let (status, _, body) = get(&url, Some(TOKEN)).await;
    assert_eq!(status, 200);
    assert!(body.is_string(), "not JSON: {body}");

    sim.inject(fault(None, FaultKind::Slow(Duration::from_millis(400)), 1));
    let started = Instant::now();
    assert_eq!(get(&url, Some(TOKEN)).await.0, 200);
    assert!(started.elapsed() >= Duration::from_millis(400));
}

#[tokio::test]
async fn admin_routes_over_http() {
    let (sim, base) = serve(frozen(2, 100)).await;
    let org = sim.org_ids()[0].clone();
    let client = reqwest::Client::new();
    let post = |path: String| {
        let client = client.clone();
        async move {
            let r = client.post(path).send().await.unwrap();
            assert!(r.status().is_success());
            serde_json::from_str::<Value>(&r.text().await.unwrap()).unwrap()
        }
    };
    let (_, _, totals) = get(&format!("{base}/sim/totals"), None).await;
    assert_eq!(totals.as_array().unwrap().len(), 2);
    assert_eq!(totals[0]["sessions"], 100);
    assert_eq!(
        post(format!("{base}/sim/create?org_id={org}&n=5")).await["changed"],
        5
    );
    assert_eq!(
        post(format!("{base}/sim/delete?org_id={org}&n=2")).await["changed"],
        2
    );
    assert_eq!(sim.totals()[0].sessions, 103);
    let t0 = sim.now();
    post(format!("{base}/sim/advance?seconds=90")).await;
    assert_eq!(sim.now(), t0 + 90);
    let touched = post(format!("{base}/sim/touch?org_id={org}&n=10")).await;
    assert_eq!(touched["changed"], 10);
    let changed = list(&base, &org, &format!("first=200&updated_after={}", t0 + 90)).await;
    assert!(changed["items"].as_array().unwrap().len() >= 10);
    let fault = client
        .post(format!("{base}/sim/faults"))
        .json_body(r#"{"org_id": null, "kind": {"status": 500}, "count": 1}"#)
        .await;
    assert!(fault.status().is_success());
    assert_eq!(
        get(&sessions_url(&base, &org, "first=1"), Some(TOKEN))
            .await
            .0,
        500
    );
    post(format!("{base}/sim/resume")).await;
    post(format!("{base}/sim/pause")).await;
    let (_, _, counts) = get(&format!("{base}/sim/requests"), None).await;
    assert!(counts["total"].as_u64().unwrap() >= 2);
    assert!(counts["per_org"][&org].as_u64().unwrap() >= 2);
}

#[tokio::test]
async fn transition_moves_live_sessions_into_a_documented_state_and_keeps_them_there() {
    let (sim, base) = serve(frozen(2, 50)).await;
    let org = sim.org_ids()[0].clone();
    let client = reqwest::Client::new();
    let post = |query: String| {
        let client = client.clone();
        let url = format!("{base}/sim/transition?{query}");
        async move {
            let r = client.post(url).send().await.unwrap();
            let status = r.status().as_u16();
            (
                status,
                serde_json::from_str::<Value>(&r.text().await.unwrap()).unwrap(),
            )
        }
    };
    sim.create(&org, 3);
    sim.advance(Duration::from_secs(5));
    let t = sim.now();
    let (status, error) = post(format!("org_id={org}&status=error")).await;
    assert_eq!(status, 200, "{error}");
    assert_eq!(error["changed"], 1);
    let (status, suspended) = post(format!(
        "org_id={org}&status=suspended&status_detail=out_of_credits&n=2"
    ))
    .await;
    assert_eq!(status, 200, "{suspended}");
    assert_eq!(suspended["changed"], 2);
    // The API lists them in their new state, updated now, and they stay there.
    sim.advance(Duration::from_secs(3600));
    let page = list(&base, &org, &format!("first=200&updated_after={t}")).await;
    let state_of = |id: &Value| {
        let item = page["items"]
            .as_array()
            .unwrap()
            .iter()
            .find(|i| i["session_id"] == *id)
            .unwrap_or_else(|| panic!("{id} listed"));
        (item["status"].clone(), item["status_detail"].clone())
    };
    assert_eq!(
        state_of(&error["session_ids"][0]),
        (Value::from("error"), Value::Null)
    );
    for id in suspended["session_ids"].as_array().unwrap() {
        assert_eq!(
            state_of(id),
            (Value::from("suspended"), Value::from("out_of_credits"))
        );
    }
    // Only documented states, and only known orgs.
    for query in [
        format!("org_id={org}&status=hibernating"),
        format!("org_id={org}&status=suspended"),
        format!("org_id={org}&status=error&status_detail=out_of_credits"),
        "org_id=org-nope&status=error".to_string(),
    ] {
        assert_eq!(post(query.clone()).await.0, 422, "{query}");
    }
}

#[tokio::test]
async fn undocumented_states_are_served_as_they_are_and_only_undocumented_ones() {
    let (sim, base) = serve(frozen(1, 50)).await;
    let org = sim.org_ids()[0].clone();
    sim.create(&org, 4);
    sim.advance(Duration::from_secs(5));
    let t = sim.now();
    let hibernating = sim
        .transition_undocumented(&org, 2, "hibernating", Some("napping"))
        .unwrap();
    // A documented status with a detail documented for another one.
    let odd = sim
        .transition_undocumented(&org, 1, "running", Some("out_of_credits"))
        .unwrap();
    assert_eq!((hibernating.len(), odd.len()), (2, 1));
    sim.advance(Duration::from_secs(3600));
    let page = list(&base, &org, &format!("first=200&updated_after={t}")).await;
    let state_of = |id: &str| {
        let items = page["items"].as_array().unwrap();
        let item = items.iter().find(|i| i["session_id"] == id).unwrap();
        (item["status"].clone(), item["status_detail"].clone())
    };
    for id in &hibernating {
        assert_eq!(
            state_of(id),
            (Value::from("hibernating"), Value::from("napping"))
        );
    }
    assert_eq!(
        state_of(&odd[0]),
        (Value::from("running"), Value::from("out_of_credits"))
    );
    // A documented pair belongs to `transition`; an unknown org is refused.
    for (status, detail) in [("error", None), ("running", Some("working"))] {
        let refused = sim.transition_undocumented(&org, 1, status, detail);
        assert!(refused.is_err(), "{status} {detail:?}: {refused:?}");
    }
    assert!(
        sim.transition_undocumented("org-nope", 1, "hibernating", None)
            .is_err()
    );
}

/// POSTs a JSON body (reqwest here is built without its `json` feature).
trait JsonBody {
    async fn json_body(self, body: &str) -> reqwest::Response;
}

impl JsonBody for reqwest::RequestBuilder {
    async fn json_body(self, body: &str) -> reqwest::Response {
        self.header("content-type", "application/json")
            .body(body.to_string())
            .send()
            .await
            .unwrap()
    }
}
