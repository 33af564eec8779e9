//! A hostile or broken API: absurd `Retry-After` values and a rate limit that would stop
//! every org for a day.

use crate::common;

use common::{S, page_reply, scrape, sessions_of, sessions_path, start_exporter};
use serde_json::json;
use wiremock::{MockServer, ResponseTemplate};

/// 429 with `retry_after` for the first `times` requests of `org`, then its sessions.
async fn mount_rate_limited(api: &MockServer, org: &str, retry_after: &str, times: u64) {
    sessions_of(org)
        .respond_with(
            ResponseTemplate::new(429)
                .insert_header("Retry-After", retry_after)
                .set_body_json(json!({"detail": "Too many requests"})),
        )
        .up_to_n_times(times)
        .with_priority(1)
        .mount(api)
        .await;
    mount_sessions(api, org, &[S::new(1), S::new(2)]).await;
}

async fn mount_sessions(api: &MockServer, org: &str, sessions: &[S]) {
    sessions_of(org)
        .respond_with(page_reply(sessions, None, Some(sessions.len() as u64)))
        .with_priority(5)
        .mount(api)
        .await;
}

async fn requests_to(api: &MockServer, org: &str) -> usize {
    let want = sessions_path(org);
    api.received_requests()
        .await
        .unwrap()
        .iter()
        .filter(|r| r.url.path() == want)
        .count()
}

#[tokio::test]
async fn a_huge_retry_after_is_clamped_and_the_org_keeps_being_collected() {
    for huge in ["18446744073709551615", "1e20", "1e308"] {
        let api = MockServer::start().await;
        mount_rate_limited(&api, "org-a", huge, 1).await;
        let exp = start_exporter(
            &api.uri(),
            &["org-a"],
            &[("DEVIN_MAX_RETRY_AFTER", "300ms")],
        )
        .await;
        // The 429 holds back for the cap, not for ~585 billion years (nor panics), and the
        // retry within the same scrape succeeds.
        let s = scrape(&exp.url, Some("10")).await;
        assert_eq!(s.metrics.up("org-a"), Some(1.0), "Retry-After: {huge}");
        assert_eq!(s.metrics.sum("devin_sessions", &[("org_id", "org-a")]), 2.0);
        // Not frozen: the next scrape collects again.
        let before = requests_to(&api, "org-a").await;
        let s = scrape(&exp.url, Some("10")).await;
        assert_eq!(s.metrics.up("org-a"), Some(1.0));
        assert!(
            requests_to(&api, "org-a").await > before,
            "Retry-After: {huge}"
        );
    }
}

#[tokio::test]
async fn an_unparseable_retry_after_falls_back_to_the_backoff() {
    let api = MockServer::start().await;
    mount_rate_limited(&api, "org-a", "-5", 1).await;
    let exp = start_exporter(&api.uri(), &["org-a"], &[]).await;
    let s = scrape(&exp.url, Some("10")).await;
    assert_eq!(s.metrics.up("org-a"), Some(1.0));
    assert_eq!(requests_to(&api, "org-a").await, 2);
}

/// `HH:MM:SS UTC` right after `prefix` in `text`, if there is one.
fn clock_after<'a>(text: &'a str, prefix: &str) -> Option<&'a str> {
    let at = text.find(prefix)? + prefix.len();
    let clock = text.get(at..at + 12)?;
    let b = clock.as_bytes();
    let digits = [0, 1, 3, 4, 6, 7].iter().all(|i| b[*i].is_ascii_digit());
    (digits && b[2] == b':' && b[5] == b':' && clock.ends_with(" UTC")).then_some(clock)
}

// A current-thread runtime: the server and the collections run on this thread, so the
// thread's own log subscriber sees all of their log lines.
#[tokio::test(flavor = "current_thread")]
async fn one_orgs_long_rate_limit_pauses_the_token_only_up_to_the_cap() {
    let (logs, _guard) = common::capture_logs();

    let api = MockServer::start().await;
    // org-a says: come back tomorrow. Every request for it does.
    mount_rate_limited(&api, "org-a", "86400", u64::MAX).await;
    mount_sessions(&api, "org-b", &[S::new(1)]).await;
    let exp = start_exporter(
        &api.uri(),
        &["org-a", "org-b"],
        &[("DEVIN_MAX_RETRY_AFTER", "3s")],
    )
    .await;
    // The pause (3 s) outlasts this scrape (0.75 s): org-a cannot be collected. (Its
    // collection goes on in the background and waits the pause out.)
    let s = scrape(&exp.url, Some("1")).await;
    assert_eq!(s.metrics.up("org-a"), Some(0.0));
    let landing = exp.text("/").await;
    assert!(
        clock_after(&landing, "rate limited until ").is_some(),
        "{landing}"
    );
    // More scrapes while the pause lasts add no request and no second "rate limited" line.
    let requests = api.received_requests().await.unwrap().len();
    for _ in 0..3 {
        let s = scrape(&exp.url, Some("0.3")).await;
        assert_eq!(s.metrics.up("org-a"), Some(0.0));
    }
    assert_eq!(api.received_requests().await.unwrap().len(), requests);
    let text = logs.text();
    let pauses: Vec<&str> = text
        .lines()
        .filter(|l| l.contains("the API answered 429"))
        .collect();
    assert_eq!(pauses.len(), 1, "{text}");
    assert!(
        clock_after(pauses[0], "rate limited until ").is_some(),
        "{text}"
    );

    // The pause ends within the cap, not in a day: once the runtime's clock has moved on by
    // the cap, org-b, which never saw a 429, is collected again.
    common::skip_time(std::time::Duration::from_millis(3100)).await;
    let probe = format!("{}/probe?org_id=org-b", exp.url);
    let m = common::get_metrics(&reqwest::Client::new(), &probe, Some("1"))
        .await
        .metrics;
    assert_eq!(m.up("org-b"), Some(1.0));
    assert_eq!(m.sum("devin_sessions", &[("org_id", "org-b")]), 1.0);
}
