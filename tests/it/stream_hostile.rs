//! The enterprise session stream against a hostile or odd API (mocked): items naming no
//! usable org are dropped and counted, never stored, whatever their `org_id` holds; a
//! configured org the stream never shows is read once with its own listing, and an org id
//! the API does not know is down with the reason.

use crate::common;

use std::time::Duration;

use common::{S, page_reply, scrape, sessions_of, sessions_path, start_exporter};
use devin_exporter::sync::source::PROBE_INTERVAL;
use serde_json::{Value, json};
use wiremock::matchers::{method, path, query_param};
use wiremock::{Mock, MockServer, ResponseTemplate};

const STREAM: &str = "/v3/enterprise/sessions";
const DROPPED: &str = "devin_exporter_stream_sessions_dropped_total";

/// Session `n` as the stream lists it, naming `org` (`None`: no `org_id` key at all).
fn item(n: u32, org: Option<Value>) -> Value {
    let mut item = S::new(n).json();
    let fields = item.as_object_mut().unwrap();
    match org {
        Some(org) => fields.insert("org_id".into(), org),
        None => fields.remove("org_id"),
    };
    item
}

/// A 200 answer of the stream: `items` on one page.
fn stream_page(items: &[Value]) -> ResponseTemplate {
    ResponseTemplate::new(200).set_body_json(json!({
        "items": items,
        "end_cursor": null,
        "has_next_page": false,
        "total": items.len(),
    }))
}

/// Every GET of the stream answered with `reply`.
async fn mount_stream(api: &MockServer, reply: ResponseTemplate) {
    Mock::given(method("GET"))
        .and(path(STREAM))
        .respond_with(reply)
        .mount(api)
        .await;
}

/// GETs `api` received at `at`.
async fn requests_to(api: &MockServer, at: &str) -> usize {
    let received = api.received_requests().await.unwrap();
    received.iter().filter(|r| r.url.path() == at).count()
}

/// The stream's page: three sessions of org-a, two of org-b, and eight items naming no
/// collected org, or none at all.
fn hostile_page() -> (Vec<Value>, usize) {
    let huge = "o".repeat(1 << 20);
    let named = |id: &str| Some(Value::from(id));
    let mut items: Vec<Value> = (1..=3).map(|n| item(n, named("org-a"))).collect();
    items.extend((4..=5).map(|n| item(n, named("org-b"))));
    let hostile = [
        item(6, None),
        item(7, Some(json!(42))),
        item(8, Some(json!(["org-a"]))),
        item(9, Some(Value::Null)),
        item(10, named("")),
        item(11, Some(Value::from(huge.as_str()))),
        // Too long, however it starts.
        item(12, Some(Value::from(format!("org-a{}", "x".repeat(200))))),
        // Skipped (no status) and naming no org: dropped too.
        {
            let mut skipped = item(13, None);
            skipped["status"] = Value::Null;
            skipped
        },
    ];
    let dropped = hostile.len();
    items.extend(hostile);
    (items, dropped)
}

#[tokio::test]
async fn items_naming_no_collected_org_are_dropped_and_counted_and_the_orgs_stay_exact() {
    let api = MockServer::start().await;
    let (mut items, unusable) = hostile_page();
    items.push(item(14, Some(Value::from("org-other"))));
    let dropped = unusable + 1;
    mount_stream(&api, stream_page(&items)).await;
    let exp = start_exporter(
        &api.uri(),
        &["org-a", "org-b"],
        &[("DEVIN_SESSION_SOURCE", "enterprise")],
    )
    .await;
    for round in 1..=2u32 {
        let s = scrape(&exp.url, None).await;
        assert_eq!(s.status, 200);
        // Counted each time they arrive: the warm pass lists them again.
        let want = f64::from(round) * dropped as f64;
        assert_eq!(s.metrics.get(DROPPED, &[]), Some(want), "round {round}");
        for (org, sessions) in [("org-a", 3.0), ("org-b", 2.0)] {
            assert_eq!(s.metrics.up(org), Some(1.0), "{org}");
            let held = s.metrics.sum("devin_sessions", &[("org_id", org)]);
            assert_eq!(held, sessions, "round {round}: {org}");
        }
        assert_eq!(
            s.metrics.count("devin_up", &[]),
            2,
            "only the collected orgs"
        );
        assert_eq!(
            s.metrics.sum("devin_malformed_sessions_total", &[]),
            0.0,
            "the skipped item named no collected org"
        );
        assert!(s.body.len() < 1 << 20, "{} bytes", s.body.len());
    }
    // One request a scrape, and neither org's own listing: the stream showed both.
    assert_eq!(requests_to(&api, STREAM).await, 2);
    for org in ["org-a", "org-b"] {
        assert_eq!(requests_to(&api, &sessions_path(org)).await, 0, "{org}");
    }
    let landing = exp.text("/").await;
    assert!(landing.len() < 1 << 16, "{} bytes", landing.len());
}

/// Without org ids or discovery the stream collects every org it shows: the unusable ids
/// still become no org, and hold no memory.
#[tokio::test]
async fn collecting_every_org_the_stream_shows_admits_no_unusable_id() {
    let api = MockServer::start().await;
    let (mut items, dropped) = hostile_page();
    items.push(item(14, Some(Value::from("org-other"))));
    mount_stream(&api, stream_page(&items)).await;
    let exp = start_exporter(&api.uri(), &[], &[("DEVIN_SESSION_SOURCE", "enterprise")]).await;
    let s = scrape(&exp.url, None).await;
    assert_eq!(s.metrics.get(DROPPED, &[]), Some(dropped as f64));
    let ids: Vec<String> = exp.exporter.orgs().iter().map(|o| o.id.clone()).collect();
    assert_eq!(ids, ["org-a", "org-b", "org-other"]);
    for (org, sessions) in [("org-a", 3.0), ("org-b", 2.0), ("org-other", 1.0)] {
        assert_eq!(s.metrics.up(org), Some(1.0), "{org}");
        let held = s.metrics.sum("devin_sessions", &[("org_id", org)]);
        assert_eq!(held, sessions, "{org}");
    }
    assert!(s.body.len() < 1 << 20, "{} bytes", s.body.len());
}

#[tokio::test]
async fn a_configured_org_the_stream_never_shows_is_checked_with_its_own_listing() {
    let api = MockServer::start().await;
    let items: Vec<Value> = (1..=3)
        .map(|n| item(n, Some(Value::from("org-a"))))
        .collect();
    mount_stream(&api, stream_page(&items)).await;
    // A typo: the API knows no such org.
    let not_found = ResponseTemplate::new(404)
        .set_body_json(json!({"status": 404, "detail": "Organization org-typo not found"}));
    sessions_of("org-typo")
        .and(query_param("first", "1"))
        .respond_with(not_found)
        .up_to_n_times(2)
        .mount(&api)
        .await;
    // An org with no session yet: its own listing answers, empty.
    sessions_of("org-empty")
        .and(query_param("first", "1"))
        .respond_with(page_reply(&[], None, Some(0)))
        .mount(&api)
        .await;
    let orgs = ["org-a", "org-typo", "org-empty"];
    let exp = start_exporter(&api.uri(), &orgs, &[("DEVIN_SESSION_SOURCE", "enterprise")]).await;
    let typo_row = |html: &str| {
        html.lines()
            .find(|l| l.starts_with("<tr><td>org-typo</td>"))
            .map(str::to_string)
            .unwrap_or_else(|| panic!("no row of org-typo in:\n{html}"))
    };
    // Every scrape says so, the first too: it lists the stream, then checks the org the
    // stream never showed before it answers.
    for _ in 0..2 {
        let s = scrape(&exp.url, None).await;
        assert_eq!(s.metrics.up("org-a"), Some(1.0));
        assert_eq!(s.metrics.up("org-empty"), Some(1.0));
        assert_eq!(s.metrics.up("org-typo"), Some(0.0));
        let row = typo_row(&exp.text("/").await);
        for part in [
            "HTTP 404: Organization org-typo not found",
            "no such org id: check DEVIN_ORG_IDS",
        ] {
            assert!(row.contains(part), "no {part:?} in {row}");
        }
    }
    // One check each, not one a scrape; org-a, which the stream shows, needs none.
    let checks = |org: &str| {
        let (api, at) = (&api, sessions_path(org));
        async move { requests_to(api, &at).await }
    };
    assert_eq!(checks("org-typo").await, 1);
    assert_eq!(checks("org-empty").await, 1);
    assert_eq!(checks("org-a").await, 0);

    // Checked again after the interval: still unknown, still down.
    common::skip_time(PROBE_INTERVAL + Duration::from_secs(1)).await;
    scrape(&exp.url, None).await;
    let s = scrape(&exp.url, None).await;
    assert_eq!(checks("org-typo").await, 2);
    assert_eq!(s.metrics.up("org-typo"), Some(0.0));
    // Once the org exists (the 404s are used up) the next check clears it.
    sessions_of("org-typo")
        .respond_with(page_reply(&[], None, Some(0)))
        .mount(&api)
        .await;
    common::skip_time(PROBE_INTERVAL + Duration::from_secs(1)).await;
    scrape(&exp.url, None).await;
    let s = scrape(&exp.url, None).await;
    assert_eq!(checks("org-typo").await, 3);
    assert_eq!(s.metrics.up("org-typo"), Some(1.0));
}
