//! The landing page says what is wrong: per org its state in words with what to do, its
//! data age, sessions by status and a link to its probe; a banner in demo mode; the build and
//! the settings, without credentials.

use crate::common;

use std::time::Duration;

use common::procs::start_exporter_process_with_args;
use common::{S, page, scrape, start_exporter};
use serde_json::{Value, json};
use wiremock::matchers::{method, path, query_param_is_missing};
use wiremock::{Mock, MockServer, ResponseTemplate};

/// The landing page of the exporter at `base`, asserting that it is served as HTML.
async fn landing(base: &str) -> String {
    let r = reqwest::get(format!("{base}/")).await.unwrap();
    assert_eq!(r.status(), 200);
    let content_type = r.headers()["content-type"].to_str().unwrap();
    assert!(content_type.starts_with("text/html"), "{content_type}");
    r.text().await.unwrap()
}

/// Asserts that `text` contains each of `parts`.
fn assert_contains(text: &str, parts: &[&str]) {
    for part in parts {
        assert!(text.contains(part), "no {part:?} in:\n{text}");
    }
}

/// Answers every GET (of `at` only, if given) with `status` and `body`.
async fn answer(api: &MockServer, at: Option<&str>, status: u16, body: Value) {
    let mut mock = Mock::given(method("GET"));
    if let Some(at) = at {
        mock = mock.and(path(at));
    }
    let response = ResponseTemplate::new(status).set_body_json(body);
    mock.respond_with(response).mount(api).await;
}

/// The API's 403 answer.
fn forbidden(detail: &str) -> Value {
    json!({"title": "Forbidden", "status": 403, "detail": detail})
}

/// The line of the page that starts with `start`, e.g. `<tr><td>org-a` for its row.
fn line<'a>(html: &'a str, start: &str) -> &'a str {
    html.lines()
        .find(|l| l.starts_with(start))
        .unwrap_or_else(|| panic!("no line {start:?} in:\n{html}"))
}

#[tokio::test]
async fn a_forbidden_org_says_what_to_do() {
    let api = MockServer::start().await;
    let mut exited = S::new(2);
    exited.status = "exit";
    exited.detail = None;
    let sessions = page(&[S::new(1), exited, S::new(3)], None, Some(3));
    let sessions_of = |org: &str| format!("/v3/organizations/{org}/sessions");
    answer(&api, Some(&sessions_of("org-ok")), 200, sessions).await;
    let locked = forbidden("Missing permission ViewOrgSessions <script>alert(1)</script>");
    answer(&api, Some(&sessions_of("org-locked")), 403, locked).await;
    // Credentials in the URL must not reach the page.
    let with_credentials = api.uri().replace("http://", "http://alice:hunter2@");
    let orgs = ["org-ok", "org-locked"];
    let exp = start_exporter(&with_credentials, &orgs, &[("DEVIN_SYNC_OVERLAP", "3m")]).await;
    let before = landing(&exp.url).await;
    let ok_before = line(&before, "<tr><td>org-ok");
    let waiting = "not collected yet: collection starts with the first scrape of /metrics";
    assert_contains(ok_before, &[waiting, "never"]);

    scrape(&exp.url, None).await;
    let html = landing(&exp.url).await;
    let locked = line(&html, "<tr><td>org-locked");
    assert_contains(
        locked,
        &[
            "HTTP 403: Missing permission ViewOrgSessions",
            "the token lacks ViewOrgSessions on this org",
            "&lt;script&gt;",
            "<a href=\"/probe?org_id=org-locked\">",
        ],
    );
    assert_contains(
        line(&html, "<tr><td>org-ok"),
        &[
            "<td>ok</td>",
            "running 2, exit 1",
            "s ago",
            "<a href=\"/probe?org_id=org-ok\">",
        ],
    );
    let version = format!("Version {}", env!("CARGO_PKG_VERSION"));
    let host = api.uri().replace("http://", "");
    let api_url = format!("<td>http://&lt;redacted&gt;@{host}</td>");
    assert_contains(
        &html,
        &[
            &version,
            "1000 requests/s, 16 in flight",
            "<th>incremental overlap</th><td>3m 0s</td>",
            "<th>scrape timeout without header</th><td>25s</td>",
            &api_url,
        ],
    );
    for absent in ["hunter2", "alice", "cog_test_token", "DEMO MODE", "<script"] {
        assert!(!html.contains(absent), "{absent} on the page");
    }
}

#[tokio::test]
async fn first_listing_progress_from_the_total() {
    let api = MockServer::start().await;
    let items: Vec<S> = (1..=63).map(S::new).collect();
    Mock::given(method("GET"))
        .and(query_param_is_missing("after"))
        .respond_with(ResponseTemplate::new(200).set_body_json(page(&items, Some("c1"), Some(100))))
        .with_priority(1)
        .mount(&api)
        .await;
    // The next page does not come before the scrape's deadline.
    let slow = ResponseTemplate::new(200).set_body_json(page(&[], None, None));
    let slow = slow.set_delay(Duration::from_secs(20));
    let any_get = Mock::given(method("GET"));
    any_get.respond_with(slow).mount(&api).await;
    let exp = start_exporter(&api.uri(), &["org-big"], &[]).await;
    scrape(&exp.url, Some("1")).await;
    let html = landing(&exp.url).await;
    let big = line(&html, "<tr><td>org-big");
    assert_contains(big, &["first listing 63% done", "63 listed so far"]);
}

/// The exporter binary run with `--demo`, as users run it.
#[tokio::test]
async fn demo_mode_has_a_banner() {
    let (_demo, url) = start_exporter_process_with_args(&[], &["--demo"]);
    let banner = "DEMO MODE:</strong> these numbers come from the built-in simulated Devin API";
    assert_contains(&landing(&url).await, &[banner]);
}

#[tokio::test]
async fn discovery_without_manage_organizations_says_so() {
    let api = MockServer::start().await;
    let forbidden = forbidden("Missing permission ManageOrganizations");
    answer(&api, Some("/v3/enterprise/organizations"), 403, forbidden).await;
    answer(&api, None, 200, page(&[S::new(1)], None, Some(1))).await;
    let exp = start_exporter(&api.uri(), &["org-a"], &[("DEVIN_DISCOVER_ORGS", "true")]).await;
    scrape(&exp.url, None).await;
    let html = landing(&exp.url).await;
    assert_contains(
        line(&html, "<p>Org discovery:"),
        &[
            "HTTP 403: Missing permission ManageOrganizations",
            "the token lacks ManageOrganizations on the enterprise",
        ],
    );
    assert_contains(&html, &["<th>org discovery</th><td>on, every 10m 0s</td>"]);
    assert_contains(line(&html, "<tr><td>org-a"), &["<td>ok</td>"]);
}

#[tokio::test]
async fn malformed_sessions_and_fields_are_counted_on_the_row() {
    let api = MockServer::start().await;
    let mut sessions = page(&[S::new(1), S::new(2), S::new(3)], None, Some(3));
    sessions["items"][0]["user_id"] = json!(42);
    sessions["items"][1]["status"] = json!(null);
    answer(&api, None, 200, sessions).await;
    let exp = start_exporter(&api.uri(), &["org-a"], &[]).await;
    scrape(&exp.url, None).await;
    let row = landing(&exp.url).await;
    let words = "<td>ok; 1 malformed session skipped, 1 field read as null (user_id 1)</td>";
    assert_contains(line(&row, "<tr><td>org-a"), &[words, "running 2"]);
}

/// The `Session source:` line of the page.
fn source_line(html: &str) -> &str {
    line(html, "<p>Session source:")
}

#[tokio::test]
async fn the_session_source_and_why_without_the_stream_permission() {
    let api = MockServer::start().await;
    let locked = forbidden("Missing permission ViewAccountSessions");
    answer(&api, Some("/v3/enterprise/sessions"), 403, locked).await;
    answer(&api, None, 200, page(&[S::new(1)], None, Some(1))).await;
    let exp = start_exporter(&api.uri(), &["org-a"], &[("DEVIN_SESSION_SOURCE", "auto")]).await;
    let before = landing(&exp.url).await;
    assert_contains(
        source_line(&before),
        &[
            "not decided yet: the first scrape asks whether the token may read the enterprise session stream",
        ],
    );
    assert_contains(&before, &["<th>session source</th><td>auto</td>"]);
    scrape(&exp.url, None).await;
    let html = landing(&exp.url).await;
    assert_contains(
        source_line(&html),
        &[
            "each org&#39;s own listing: the enterprise session stream answered HTTP 403: grant the token ViewAccountSessions on the enterprise to use it",
        ],
    );
    assert_contains(line(&html, "<tr><td>org-a"), &["<td>ok</td>"]);
    // Set to the orgs' listings: no question asked, the setting is the reason.
    let exp = start_exporter(&api.uri(), &["org-a"], &[("DEVIN_SESSION_SOURCE", "orgs")]).await;
    scrape(&exp.url, None).await;
    let html = landing(&exp.url).await;
    assert_contains(
        source_line(&html),
        &["each org&#39;s own listing: DEVIN_SESSION_SOURCE=orgs"],
    );
}

#[tokio::test]
async fn the_session_source_and_what_the_stream_dropped() {
    let api = MockServer::start().await;
    // S's items name org-test; one more names an org not collected.
    let mut sessions = page(&[S::new(1), S::new(2), S::new(3)], None, Some(3));
    sessions["items"][2]["org_id"] = json!("org-elsewhere");
    answer(&api, None, 200, sessions).await;
    let exp = start_exporter(
        &api.uri(),
        &["org-test"],
        &[("DEVIN_SESSION_SOURCE", "auto")],
    )
    .await;
    scrape(&exp.url, None).await;
    let html = landing(&exp.url).await;
    assert_contains(
        source_line(&html),
        &[
            "the enterprise session stream, one request per scrape for every org: the token may read the enterprise session stream",
            "; 1 session item dropped (no usable org_id, or an org not collected)",
        ],
    );
    assert_contains(
        line(&html, "<tr><td>org-test"),
        &["<td>ok</td>", "running 2"],
    );
}
