//! Collection against a mocked Devin API: pagination, retries, failures of single orgs,
//! deadlines, forward compatibility and the shared collection of concurrent scrapes.

use crate::common;

use std::time::{Duration, Instant};

use common::{S, mount_page, page_reply, scrape, sessions_of, start_exporter};
use wiremock::matchers::{header, query_param, query_param_is_missing};
use wiremock::{MockServer, ResponseTemplate};

#[tokio::test]
async fn pagination_follows_the_cursor_and_counts_every_session() {
    let api = MockServer::start().await;
    let all: Vec<S> = (0..5).map(S::new).collect();
    sessions_of("org-a")
        .and(query_param("first", "2"))
        .and(query_param_is_missing("after"))
        .and(header("authorization", "Bearer cog_test_token"))
        .respond_with(page_reply(&all[0..2], Some("c1"), Some(5)))
        .expect(1)
        .mount(&api)
        .await;
    sessions_of("org-a")
        .and(query_param("after", "c1"))
        .respond_with(page_reply(&all[2..4], Some("c2"), None))
        .expect(1)
        .mount(&api)
        .await;
    sessions_of("org-a")
        .and(query_param("after", "c2"))
        .respond_with(page_reply(&all[4..5], None, None))
        .expect(1)
        .mount(&api)
        .await;

    let exp = start_exporter(&api.uri(), &["org-a"], &[("DEVIN_PAGE_SIZE", "2")]).await;
    let s = scrape(&exp.url, None).await;
    let (m, org) = (&s.metrics, [("org_id", "org-a")]);
    assert_eq!(m.up("org-a"), Some(1.0));
    assert_eq!(m.get("devin_initial_sync_complete", &org), Some(1.0));
    assert_eq!(m.sum("devin_sessions", &org), 5.0);
    assert_eq!(m.sum("devin_sessions_acus_consumed", &org), 5.0);
    let ok = [("org_id", "org-a"), ("code", "200")];
    assert_eq!(m.get("devin_api_requests_total", &ok), Some(3.0));
    api.verify().await;
}

#[tokio::test]
async fn rate_limited_request_waits_for_retry_after_then_succeeds() {
    let api = MockServer::start().await;
    sessions_of("org-a")
        .respond_with(
            ResponseTemplate::new(429)
                .insert_header("Retry-After", "1")
                .set_body_json(serde_json::json!({"title": "Too Many Requests", "status": 429, "detail": "slow down"})),
        )
        .up_to_n_times(1)
        .mount(&api)
        .await;
    mount_page(&api, "org-a", &[S::new(1), S::new(2)]).await;

    let exp = start_exporter(&api.uri(), &["org-a"], &[]).await;
    let started = Instant::now();
    let s = scrape(&exp.url, None).await;
    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "Retry-After honoured"
    );
    assert_eq!(s.metrics.up("org-a"), Some(1.0));
    assert_eq!(s.metrics.sum("devin_sessions", &[]), 2.0);
    let codes = |c| {
        s.metrics.get(
            "devin_api_requests_total",
            &[("org_id", "org-a"), ("code", c)],
        )
    };
    assert_eq!((codes("429"), codes("200")), (Some(1.0), Some(1.0)));
}

#[tokio::test]
async fn server_error_is_retried() {
    let api = MockServer::start().await;
    sessions_of("org-a")
        .respond_with(ResponseTemplate::new(503))
        .up_to_n_times(2)
        .mount(&api)
        .await;
    mount_page(&api, "org-a", &[S::new(1)]).await;
    let exp = start_exporter(&api.uri(), &["org-a"], &[]).await;
    let s = scrape(&exp.url, None).await;
    assert_eq!(s.metrics.up("org-a"), Some(1.0));
    assert_eq!(
        s.metrics.get(
            "devin_api_requests_total",
            &[("org_id", "org-a"), ("code", "503")]
        ),
        Some(2.0)
    );
    assert_eq!(s.metrics.sum("devin_sessions", &[]), 1.0);
}

#[tokio::test]
async fn a_failing_org_never_hides_the_others() {
    let api = MockServer::start().await;
    sessions_of("org-unauthorized")
        .respond_with(ResponseTemplate::new(401).set_body_json(
            serde_json::json!({"title": "Unauthorized", "status": 401, "detail": "Invalid token"}),
        ))
        .expect(1) // not retried
        .mount(&api)
        .await;
    sessions_of("org-forbidden")
        .respond_with(
            ResponseTemplate::new(403)
                .set_body_json(serde_json::json!({"detail": "Missing ViewOrgSessions"})),
        )
        .expect(1)
        .mount(&api)
        .await;
    let mut good = vec![S::new(1), S::new(2), S::new(3)];
    good[0].acus = 2.5;
    good[1].status = "exit";
    good[1].detail = None;
    good[1].acus = 0.25;
    mount_page(&api, "org-good", &good).await;

    let exp = start_exporter(
        &api.uri(),
        &["org-unauthorized", "org-forbidden", "org-good"],
        &[],
    )
    .await;
    let s = scrape(&exp.url, None).await;
    let up = |o| s.metrics.up(o);
    assert_eq!(
        (up("org-unauthorized"), up("org-forbidden"), up("org-good")),
        (Some(0.0), Some(0.0), Some(1.0))
    );
    let m = &s.metrics;
    for (status, detail, n, acus) in [
        ("running", "working", 2.0, 3.5),
        ("exit", "none", 1.0, 0.25),
    ] {
        let l = [
            ("org_id", "org-good"),
            ("status", status),
            ("status_detail", detail),
        ];
        assert_eq!(m.get("devin_sessions", &l), Some(n), "{status}");
        assert_eq!(
            m.get("devin_sessions_acus_consumed", &l),
            Some(acus),
            "{status}"
        );
    }
    // Counters start at zero when the first listing completes: they count what happens next.
    let good_org = [("org_id", "org-good")];
    assert_eq!(m.get("devin_acus_consumed_total", &good_org), Some(0.0));
    // Failing orgs expose no session gauges, only their health.
    assert_eq!(
        m.count("devin_sessions", &[("org_id", "org-unauthorized")]),
        0
    );
    let forbidden = [("org_id", "org-forbidden"), ("code", "403")];
    assert_eq!(m.get("devin_api_requests_total", &forbidden), Some(1.0));
    // The landing page tells why, without the token.
    let landing = exp.text("/").await;
    assert!(landing.contains("HTTP 401: Invalid token"), "{landing}");
    assert!(
        landing.contains("HTTP 403: Missing ViewOrgSessions"),
        "{landing}"
    );
    assert!(!landing.contains("cog_test_token"));
    api.verify().await;
}

#[tokio::test]
async fn malformed_json_fails_only_that_org_and_last_values_stay() {
    let api = MockServer::start().await;
    // First collection fine, then the API starts sending garbage.
    sessions_of("org-a")
        .respond_with(page_reply(&[S::new(1), S::new(2)], None, Some(2)))
        .up_to_n_times(1)
        .mount(&api)
        .await;
    sessions_of("org-a")
        .respond_with(ResponseTemplate::new(200).set_body_string("{\"items\": [ {\"session_id\": "))
        .mount(&api)
        .await;
    mount_page(&api, "org-b", &[S::new(7)]).await;

    let exp = start_exporter(&api.uri(), &["org-a", "org-b"], &[]).await;
    let first = scrape(&exp.url, None).await;
    assert_eq!(first.metrics.up("org-a"), Some(1.0));
    let second = scrape(&exp.url, None).await;
    assert_eq!(second.metrics.up("org-a"), Some(0.0));
    assert_eq!(second.metrics.up("org-b"), Some(1.0));
    // Last known values of the failing org are still exposed.
    assert_eq!(
        second.metrics.sum("devin_sessions", &[("org_id", "org-a")]),
        2.0
    );
    assert_eq!(
        second.metrics.get(
            "devin_last_successful_scrape_timestamp_seconds",
            &[("org_id", "org-a")]
        ),
        first.metrics.get(
            "devin_last_successful_scrape_timestamp_seconds",
            &[("org_id", "org-a")]
        )
    );
}

#[tokio::test]
async fn slow_api_does_not_make_the_scrape_late() {
    let api = MockServer::start().await;
    sessions_of("org-slow")
        .respond_with(page_reply(&[S::new(1)], None, None).set_delay(Duration::from_secs(10)))
        .mount(&api)
        .await;
    mount_page(&api, "org-fast", &[S::new(2)]).await;
    let exp = start_exporter(&api.uri(), &["org-slow", "org-fast"], &[]).await;
    let client = reqwest::Client::new();
    let started = Instant::now();
    let s = common::scrape_with(&client, &exp.url, Some("2")).await;
    let took = started.elapsed();
    assert!(took < Duration::from_secs(2), "scrape took {took:?}");
    assert_eq!(s.metrics.up("org-slow"), Some(0.0));
    assert_eq!(s.metrics.up("org-fast"), Some(1.0));
    assert_eq!(
        s.metrics.sum("devin_sessions", &[("org_id", "org-fast")]),
        1.0
    );
}

#[tokio::test]
async fn unknown_enum_values_and_nulls_become_label_values() {
    let api = MockServer::start().await;
    let mut a = S::new(1);
    a.status = "hibernating";
    a.detail = Some("dreaming");
    a.origin = Some("carrier_pigeon");
    a.category = None;
    a.prs = vec![Some("draft"), None, Some("merged")];
    let mut b = S::new(2);
    b.detail = None;
    b.origin = None;
    b.archived = None;
    mount_page(&api, "org-a", &[a, b]).await;
    let exp = start_exporter(&api.uri(), &["org-a"], &[]).await;
    let s = scrape(&exp.url, None).await;
    assert_eq!(
        s.metrics.get(
            "devin_sessions",
            &[
                ("status", "hibernating"),
                ("status_detail", "dreaming"),
                ("origin", "carrier_pigeon"),
                ("category", "none")
            ]
        ),
        Some(1.0)
    );
    assert_eq!(
        s.metrics.get(
            "devin_sessions",
            &[
                ("status", "running"),
                ("status_detail", "none"),
                ("origin", "none")
            ]
        ),
        Some(1.0)
    );
    for state in ["draft", "none", "merged"] {
        assert_eq!(
            s.metrics
                .get("devin_session_pull_requests", &[("pr_state", state)]),
            Some(1.0),
            "{state}"
        );
    }
    assert_eq!(
        s.metrics.get(
            "devin_sessions_created_total",
            &[("origin", "carrier_pigeon")]
        ),
        Some(0.0),
        "the new origin has its counter series"
    );
}

#[tokio::test]
async fn concurrent_scrapes_share_one_collection() {
    let api = MockServer::start().await;
    for org in ["org-a", "org-b"] {
        sessions_of(org)
            .respond_with(
                page_reply(&[S::new(1)], None, Some(1)).set_delay(Duration::from_millis(500)),
            )
            .mount(&api)
            .await;
    }
    let exp = start_exporter(&api.uri(), &["org-a", "org-b"], &[]).await;
    let scrapes = (0..5).map(|_| scrape(&exp.url, None));
    let results = futures::future::join_all(scrapes).await;
    for s in &results {
        assert_eq!(s.metrics.sum("devin_sessions", &[]), 2.0);
    }
    // Five scrapes, two orgs, one collection: two requests.
    assert_eq!(api.received_requests().await.unwrap().len(), 2);
}

#[tokio::test]
async fn metrics_body_is_complete_and_exact() {
    let api = MockServer::start().await;
    let mut sessions: Vec<S> = (0..6).map(S::new).collect();
    sessions[0].acus = 1.5;
    sessions[1].status = "suspended";
    sessions[1].detail = Some("out_of_credits");
    sessions[1].acus = 4.0;
    sessions[2].status = "running";
    sessions[2].detail = Some("waiting_for_user");
    sessions[2].updated = 1_700_000_500;
    sessions[3].status = "exit";
    sessions[3].detail = None;
    sessions[3].origin = Some("api");
    sessions[3].archived = Some(true);
    sessions[3].prs = vec![Some("merged"), Some("open")];
    sessions[4].prs = vec![Some("merged")];
    sessions[5].status = "error";
    sessions[5].detail = None;
    sessions[5].category = None;
    sessions[5].acus = 0.125;
    mount_page(&api, "org-a", &sessions).await;
    let exp = start_exporter(&api.uri(), &["org-a"], &[]).await;
    let s = scrape(&exp.url, None).await;
    assert_eq!(s.status, 200);
    assert_eq!(s.content_type, "text/plain; version=0.0.4; charset=utf-8");

    let m = &s.metrics;
    let fix = "bug_fixing";
    let expect = [
        ("running", "working", "slack", fix, 2.0, 2.5),
        ("suspended", "out_of_credits", "slack", fix, 1.0, 4.0),
        ("running", "waiting_for_user", "slack", fix, 1.0, 1.0),
        ("exit", "none", "api", fix, 1.0, 1.0),
        ("error", "none", "slack", "none", 1.0, 0.125),
    ];
    assert_eq!(m.count("devin_sessions", &[]), expect.len());
    for (status, detail, origin, category, count, acus) in expect {
        let l = [
            ("org_id", "org-a"),
            ("status", status),
            ("status_detail", detail),
            ("origin", origin),
            ("category", category),
        ];
        assert_eq!(m.get("devin_sessions", &l), Some(count), "{l:?}");
        let consumed = m.get("devin_sessions_acus_consumed", &l);
        assert_eq!(consumed, Some(acus), "{l:?}");
    }
    let org = [("org_id", "org-a")];
    // Counters start at zero, with a series for every origin and status present.
    assert_eq!(m.get("devin_acus_consumed_total", &org), Some(0.0));
    for origin in ["slack", "api"] {
        let created = m.get("devin_sessions_created_total", &[("origin", origin)]);
        assert_eq!(created, Some(0.0), "{origin}");
    }
    for (state, n) in [("merged", 2.0), ("open", 1.0)] {
        let prs = m.get("devin_session_pull_requests", &[("pr_state", state)]);
        assert_eq!(prs, Some(n), "{state}");
    }
    assert_eq!(m.get("devin_sessions_archived", &org), Some(1.0));
    let oldest = "devin_sessions_oldest_update_timestamp_seconds";
    for (detail, at) in [
        ("working", 1_700_000_000.0),
        ("waiting_for_user", 1_700_000_500.0),
    ] {
        let labels = [("status", "running"), ("status_detail", detail)];
        assert_eq!(m.get(oldest, &labels), Some(at), "{detail}");
    }
    assert_eq!(m.count(oldest, &[]), 2);
    assert_eq!(m.up("org-a"), Some(1.0));
    assert!(m.get("devin_scrape_duration_seconds", &org).unwrap() > 0.0);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    let last = m
        .get("devin_last_successful_scrape_timestamp_seconds", &org)
        .unwrap();
    assert!((now - last).abs() < 30.0);
    assert_eq!(
        m.get("devin_api_requests_total", &[("code", "200")]),
        Some(1.0)
    );
    assert_eq!(
        m.count(
            "devin_exporter_build_info",
            &[("version", env!("CARGO_PKG_VERSION"))]
        ),
        1
    );
    assert!(
        s.body
            .contains("devin_api_request_duration_seconds_bucket{org_id=\"org-a\",le=\"0.025\"}")
    );
    assert!(
        s.body.contains("\nprocess_resident_memory_bytes "),
        "process metrics present"
    );
    // Every metric family has HELP and TYPE.
    for family in s.body.lines().filter(|l| l.starts_with("# TYPE ")) {
        let name = family.split_whitespace().nth(2).unwrap();
        assert!(
            s.body.contains(&format!("# HELP {name} ")),
            "{name} has no HELP"
        );
    }
    // No session entered a status during the first listing, and every documented
    // (status, status_detail) has its series at 0 so that the first one is seen.
    let documented: usize = devin_exporter::api::enums::STATUS_DETAILS
        .iter()
        .map(|(_, details)| details.len())
        .sum();
    assert_eq!(documented, 19);
    assert_eq!(
        m.count("devin_sessions_entered_status_total", &[]),
        documented
    );
    assert_eq!(m.sum("devin_sessions_entered_status_total", &[]), 0.0);
    for (status, detail) in [
        ("error", "none"),
        ("suspended", "out_of_credits"),
        ("suspended", "payment_declined"),
        ("running", "waiting_for_approval"),
        ("new", "none"),
    ] {
        assert_eq!(
            m.get(
                "devin_sessions_entered_status_total",
                &[("status", status), ("status_detail", detail)]
            ),
            Some(0.0),
            "{status}/{detail}"
        );
    }
    assert_eq!(m.count("devin_sessions_created_total", &[]), 11);
}

#[tokio::test]
async fn gzip_when_asked_and_other_endpoints() {
    use std::io::Read;
    let api = MockServer::start().await;
    mount_page(&api, "org-a", &[S::new(1)]).await;
    let exp = start_exporter(&api.uri(), &["org-a"], &[]).await;
    let client = reqwest::Client::new();
    let resp = client
        .get(format!("{}/metrics", exp.url))
        .header("Accept-Encoding", "gzip")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.headers()["content-encoding"], "gzip");
    assert_eq!(
        resp.headers()["content-type"],
        "text/plain; version=0.0.4; charset=utf-8"
    );
    let bytes = resp.bytes().await.unwrap();
    let mut text = String::new();
    flate2::read::GzDecoder::new(&bytes[..])
        .read_to_string(&mut text)
        .unwrap();
    assert!(text.contains("devin_up{org_id=\"org-a\"} 1"));

    for (p, want) in [("/healthz", "ok"), ("/readyz", "ready")] {
        let r = client.get(format!("{}{p}", exp.url)).send().await.unwrap();
        assert_eq!(r.status(), 200);
        assert_eq!(r.text().await.unwrap().trim(), want);
    }
    let landing = client.get(&exp.url).send().await.unwrap();
    assert!(
        landing.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    let html = landing.text().await.unwrap();
    assert!(html.contains("org-a") && html.contains("href=\"/metrics\""));
    assert!(html.contains(env!("CARGO_PKG_VERSION")));
    let missing = client
        .get(format!("{}/nope", exp.url))
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), 404);
}
