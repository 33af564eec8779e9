//! The landing page says what is wrong: per org its state in words with what to do, its
//! data age, sessions by status and a link to its probe; a banner in demo mode; the build and
//! the settings, without credentials.

use crate::common;

use std::time::Duration;

use common::{S, page_reply, scrape, sessions_of, start_exporter};
use wiremock::matchers::{method, path, query_param_is_missing};
use wiremock::{Mock, MockServer, ResponseTemplate};

async fn get(url: &str) -> String {
    let r = reqwest::get(url).await.unwrap();
    assert_eq!(r.status(), 200);
    assert!(
        r.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    r.text().await.unwrap()
}

/// The table row of `org`.
fn row<'a>(html: &'a str, org: &str) -> &'a str {
    html.lines()
        .find(|l| l.starts_with(&format!("<tr><td>{org}")))
        .unwrap_or_else(|| panic!("no row for {org} in:\n{html}"))
}

#[tokio::test]
async fn a_forbidden_org_says_what_to_do() {
    let api = MockServer::start().await;
    let mut exited = S::new(2);
    exited.status = "exit";
    exited.detail = None;
    sessions_of("org-ok")
        .respond_with(page_reply(&[S::new(1), exited, S::new(3)], None, Some(3)))
        .mount(&api)
        .await;
    sessions_of("org-locked")
        .respond_with(ResponseTemplate::new(403).set_body_json(serde_json::json!({
            "title": "Forbidden", "status": 403,
            "detail": "Missing permission ViewOrgSessions <script>alert(1)</script>"
        })))
        .mount(&api)
        .await;
    // Credentials in the URL must not reach the page.
    let with_credentials = api.uri().replace("http://", "http://alice:hunter2@");
    let exp = start_exporter(
        &with_credentials,
        &["org-ok", "org-locked"],
        &[("DEVIN_SYNC_OVERLAP", "3m")],
    )
    .await;
    let before = get(&format!("{}/", exp.url)).await;
    for want in ["not collected yet", "never"] {
        assert!(row(&before, "org-ok").contains(want), "{want}: {before}");
    }

    scrape(&exp.url, None).await;
    let html = get(&format!("{}/", exp.url)).await;
    let locked = row(&html, "org-locked");
    for want in [
        "HTTP 403: Missing permission ViewOrgSessions",
        "the token lacks ViewOrgSessions on this org",
        "<a href=\"/probe?org_id=org-locked\">",
    ] {
        assert!(locked.contains(want), "{want}: {locked}");
    }
    assert!(
        locked.contains("&lt;script&gt;") && !html.contains("<script"),
        "API text is escaped: {locked}"
    );
    let ok = row(&html, "org-ok");
    assert!(ok.contains("<td>ok</td>"), "{ok}");
    assert!(ok.contains("running 2, exit 1"), "sessions by status: {ok}");
    assert!(ok.contains("s ago"), "data age: {ok}");
    assert!(ok.contains("<a href=\"/probe?org_id=org-ok\">"), "{ok}");

    assert!(html.contains(&format!("Version {}", env!("CARGO_PKG_VERSION"))));
    for want in [
        "1000 requests/s, 16 in flight",
        "<th>incremental overlap</th><td>3m 0s</td>",
        "<th>scrape timeout without header</th><td>25s</td>",
    ] {
        assert!(html.contains(want), "{want}: {html}");
    }
    let host = api.uri().replace("http://", "");
    assert!(
        html.contains(&format!("<td>http://&lt;redacted&gt;@{host}</td>")),
        "API URL: {html}"
    );
    for secret in ["hunter2", "alice", "cog_test_token"] {
        assert!(!html.contains(secret), "{secret} on the page");
    }
    assert!(!html.contains("DEMO MODE") && !html.contains("<script"));
}

#[tokio::test]
async fn first_listing_progress_from_the_total() {
    let api = MockServer::start().await;
    let items: Vec<S> = (1..=63).map(S::new).collect();
    Mock::given(method("GET"))
        .and(query_param_is_missing("after"))
        .respond_with(page_reply(&items, Some("c1"), Some(100)))
        .with_priority(1)
        .mount(&api)
        .await;
    // The next page does not come before the scrape's deadline.
    Mock::given(method("GET"))
        .respond_with(page_reply(&[], None, None).set_delay(Duration::from_secs(20)))
        .mount(&api)
        .await;
    let exp = start_exporter(&api.uri(), &["org-big"], &[]).await;
    scrape(&exp.url, Some("1")).await;
    let html = get(&format!("{}/", exp.url)).await;
    let big = row(&html, "org-big");
    assert!(big.contains("first listing 63% done"), "{big}");
    assert!(big.contains("63 listed so far"), "{big}");
}

#[tokio::test]
async fn demo_mode_has_a_banner() {
    let api = MockServer::start().await;
    Mock::given(method("GET"))
        .respond_with(page_reply(&[], None, Some(0)))
        .mount(&api)
        .await;
    let config = devin_exporter::config::from_vars(
        [
            ("DEVIN_API_TOKEN", "cog_test_token"),
            ("DEVIN_ORG_IDS", "org-sim"),
            ("DEVIN_API_URL", api.uri().as_str()),
        ]
        .map(|(k, v)| (k.to_string(), v.to_string())),
    )
    .unwrap();
    let web = devin_exporter::http::web_config::WebConfig::default();
    let (_, router) =
        devin_exporter::app::build(&config, None, devin_exporter::DataSource::Simulated, &web)
            .unwrap();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let server = tokio::spawn(devin_exporter::http::serve(listener, router, None));
    let html = get(&format!("{url}/")).await;
    server.abort();
    assert!(
        html.contains(
            "DEMO MODE:</strong> these numbers come from the built-in simulated Devin API"
        ),
        "{html}"
    );
}

#[tokio::test]
async fn discovery_without_manage_organizations_says_so() {
    let api = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/v3/enterprise/organizations"))
        .respond_with(ResponseTemplate::new(403).set_body_json(serde_json::json!({
            "title": "Forbidden", "status": 403, "detail": "Missing permission ManageOrganizations"
        })))
        .mount(&api)
        .await;
    Mock::given(method("GET"))
        .respond_with(page_reply(&[S::new(1)], None, Some(1)))
        .mount(&api)
        .await;
    let exp = start_exporter(&api.uri(), &["org-a"], &[("DEVIN_DISCOVER_ORGS", "true")]).await;
    scrape(&exp.url, None).await;
    let html = get(&format!("{}/", exp.url)).await;
    let line = html
        .lines()
        .find(|l| l.starts_with("<p>Org discovery:"))
        .unwrap_or_else(|| panic!("no discovery line in:\n{html}"));
    assert!(
        line.contains("HTTP 403: Missing permission ManageOrganizations")
            && line.contains("the token lacks ManageOrganizations on the enterprise"),
        "{line}"
    );
    assert!(
        html.contains("<th>org discovery</th><td>on, every 10m 0s</td>"),
        "{html}"
    );
    assert!(row(&html, "org-a").contains("<td>ok</td>"), "{html}");
}
