//! Test support: an exporter served in-process, scraping, and reading metrics back.

pub mod dashboards;
pub mod procs;
pub mod readme;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use devin_exporter::config;
use devin_exporter::exporter::Exporter;
use devin_exporter::http::ServerTimeouts;
use devin_exporter::http::web_config::WebConfig;
use serde_json::{Value, json};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockBuilder, MockServer, ResponseTemplate};

/// An exporter serving on a free loopback port.
pub struct TestExporter {
    /// Base URL, e.g. `http://127.0.0.1:43123`.
    pub url: String,
    /// The exporter behind it.
    pub exporter: Arc<Exporter>,
    server: tokio::task::JoinHandle<()>,
}

impl TestExporter {
    /// The body of a GET of `path` (e.g. `/` for the landing page).
    pub async fn text(&self, path: &str) -> String {
        let resp = reqwest::get(format!("{}{path}", self.url)).await.unwrap();
        resp.text().await.unwrap()
    }
}

impl Drop for TestExporter {
    fn drop(&mut self) {
        self.server.abort();
    }
}

/// Starts an exporter for `orgs` against `api_url`; `extra` adds or overrides variables.
pub async fn start_exporter(api_url: &str, orgs: &[&str], extra: &[(&str, &str)]) -> TestExporter {
    start_exporter_with_timeouts(api_url, orgs, extra, ServerTimeouts::default()).await
}

/// [`start_exporter`] whose server has the given connection timeouts.
pub async fn start_exporter_with_timeouts(
    api_url: &str,
    orgs: &[&str],
    extra: &[(&str, &str)],
    timeouts: ServerTimeouts,
) -> TestExporter {
    let mut vars: BTreeMap<String, String> = [
        ("DEVIN_API_TOKEN", "cog_test_token"),
        ("DEVIN_API_URL", api_url),
        ("DEVIN_MAX_REQUESTS_PER_SECOND", "1000"),
        // The mocks answer sessions only; billing's tests turn it on, the stream's tests
        // choose the enterprise source.
        ("DEVIN_BILLING", "off"),
        ("DEVIN_SESSION_SOURCE", "orgs"),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    if !orgs.is_empty() {
        vars.insert("DEVIN_ORG_IDS".into(), orgs.join(","));
    }
    for (k, v) in extra {
        vars.insert(k.to_string(), v.to_string());
    }
    let config = config::from_vars(vars).expect("valid test config");
    let web = match &config.web_config_file {
        Some(path) => WebConfig::load(path).expect("valid web config"),
        None => WebConfig::default(),
    };
    let (exporter, router) =
        devin_exporter::app::build(&config, None, devin_exporter::DataSource::Api, &web)
            .expect("exporter builds");
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let scheme = if web.tls_server_config.is_some() {
        "https"
    } else {
        "http"
    };
    let url = format!("{scheme}://{}", listener.local_addr().unwrap());
    let server = tokio::spawn(async move {
        let tls = web.tls_server_config.as_ref();
        let http2 = web.http_server_config.http2;
        devin_exporter::http::serve_with_timeouts(listener, router, tls, http2, timeouts)
            .await
            .unwrap();
    });
    TestExporter {
        url,
        exporter,
        server,
    }
}

/// Moves the runtime's clock `by` ahead at once, as if that much time had passed, and lets it
/// run on from there: the exporter's intervals and deadlines read this clock, while sockets
/// (and the mock API's own runtime) go on in real time. Needs the current-thread runtime of
/// `#[tokio::test]`.
pub async fn skip_time(by: Duration) {
    tokio::time::pause();
    tokio::time::advance(by).await;
    tokio::time::resume();
}

/// Log lines written while a test runs, through a subscriber of the test's own thread.
#[derive(Clone, Default)]
pub struct Captured(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Captured {
    /// Everything logged so far.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

/// Captures the log lines (info and up) of this thread while the guard lives. The exporter's
/// tasks must run on this thread too: `#[tokio::test]`'s current-thread runtime.
pub fn capture_logs() -> (Captured, tracing::subscriber::DefaultGuard) {
    let logs = Captured::default();
    let writer = logs.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .with_max_level(tracing::Level::INFO)
        .finish();
    (logs, tracing::subscriber::set_default(subscriber))
}

/// Scrapes (starting a billing refresh if one is due), waits for the refresh to end, then
/// scrapes what it read.
pub async fn scrape_after_billing(exp: &TestExporter) -> Scraped {
    scrape(&exp.url, None).await;
    let billing = exp.exporter.billing().expect("billing is on");
    for _ in 0..2000 {
        if !billing.refreshing() {
            return scrape(&exp.url, None).await;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    panic!("the billing refresh does not end");
}

/// A scrape's response.
pub struct Scraped {
    /// HTTP status.
    pub status: reqwest::StatusCode,
    /// Content-Type header.
    pub content_type: String,
    /// The body.
    pub body: String,
    /// Parsed samples.
    pub metrics: Metrics,
}

/// GETs /metrics, optionally with Prometheus' scrape timeout header.
pub async fn scrape(base: &str, timeout_header: Option<&str>) -> Scraped {
    scrape_with(&reqwest::Client::new(), base, timeout_header).await
}

/// [`scrape`] with a client made beforehand: making one costs real time on a busy machine,
/// which tests that time the exporter leave out.
pub async fn scrape_with(
    client: &reqwest::Client,
    base: &str,
    timeout_header: Option<&str>,
) -> Scraped {
    get_metrics(client, &format!("{base}/metrics"), timeout_header).await
}

/// GETs `url`, a /metrics or /probe address, optionally with the scrape timeout header.
pub async fn get_metrics(
    client: &reqwest::Client,
    url: &str,
    timeout_header: Option<&str>,
) -> Scraped {
    let mut req = client.get(url).timeout(Duration::from_secs(60));
    if let Some(t) = timeout_header {
        req = req.header("X-Prometheus-Scrape-Timeout-Seconds", t);
    }
    let resp = req.send().await.expect("scrape answers");
    let status = resp.status();
    let content_type = resp
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default();
    let body = resp.text().await.unwrap();
    let metrics = Metrics::parse(&body);
    Scraped {
        status,
        content_type,
        body,
        metrics,
    }
}

/// Samples of a /metrics body.
#[derive(Debug, Clone)]
pub struct Metrics {
    /// Every sample (histograms flattened by the parser).
    pub samples: Vec<prometheus_parse::Sample>,
}

fn value(v: &prometheus_parse::Value) -> Option<f64> {
    use prometheus_parse::Value::*;
    match v {
        Counter(x) | Gauge(x) | Untyped(x) => Some(*x),
        _ => None,
    }
}

impl Metrics {
    /// Parses the text format.
    pub fn parse(body: &str) -> Self {
        let lines = body.lines().map(|l| Ok(l.to_string()));
        let scrape = prometheus_parse::Scrape::parse(lines).expect("valid exposition text");
        Metrics {
            samples: scrape.samples,
        }
    }

    /// Samples of `name` whose labels include all of `labels`.
    pub fn find(
        &self,
        name: &str,
        labels: &[(&str, &str)],
    ) -> Vec<(BTreeMap<String, String>, f64)> {
        self.samples
            .iter()
            .filter(|s| s.metric == name)
            .filter(|s| labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v)))
            .filter_map(|s| {
                let labels: BTreeMap<String, String> = s
                    .labels
                    .iter()
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect();
                value(&s.value).map(|v| (labels, v))
            })
            .collect()
    }

    /// The one sample of `name` with exactly-matching `labels` (among its labels).
    pub fn get(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        let found = self.find(name, labels);
        assert!(
            found.len() <= 1,
            "{name}{labels:?} matches {} series: {found:?}",
            found.len()
        );
        found.first().map(|(_, v)| *v)
    }

    /// Sum over the samples of `name` that include `labels`.
    pub fn sum(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        self.find(name, labels).iter().map(|(_, v)| v).sum()
    }

    /// `devin_up` of `org`.
    pub fn up(&self, org: &str) -> Option<f64> {
        self.get("devin_up", &[("org_id", org)])
    }

    /// Number of series of `name` that include `labels`.
    pub fn count(&self, name: &str, labels: &[(&str, &str)]) -> usize {
        self.find(name, labels).len()
    }
}

/// A session item as the API sends it.
#[derive(Clone, Debug)]
pub struct S {
    pub id: String,
    pub status: &'static str,
    pub detail: Option<&'static str>,
    pub origin: Option<&'static str>,
    pub category: Option<&'static str>,
    pub acus: f64,
    pub created: i64,
    pub updated: i64,
    pub prs: Vec<Option<&'static str>>,
    pub archived: Option<bool>,
}

impl S {
    /// A running/working session from slack, category bug_fixing.
    pub fn new(n: u32) -> Self {
        S {
            id: format!("devin-{n:032x}"),
            status: "running",
            detail: Some("working"),
            origin: Some("slack"),
            category: Some("bug_fixing"),
            acus: 1.0,
            created: 1_700_000_000 + i64::from(n),
            updated: 1_700_000_000 + i64::from(n),
            prs: vec![],
            archived: Some(false),
        }
    }

    /// The JSON item.
    pub fn json(&self) -> Value {
        json!({
            "session_id": self.id,
            "url": format!("https://app.devin.ai/sessions/{}", self.id),
            "status": self.status,
            "status_detail": self.detail,
            "origin": self.origin,
            "category": self.category,
            "tags": [],
            "org_id": "org-test",
            "created_at": self.created,
            "updated_at": self.updated,
            "acus_consumed": self.acus,
            "pull_requests": self.prs.iter().enumerate().map(|(i, s)| json!({"pr_url": format!("https://github.com/o/r/pull/{i}"), "pr_state": s})).collect::<Vec<_>>(),
            "is_archived": self.archived,
            "title": "t",
            "user_id": null,
        })
    }
}

/// A page body.
pub fn page(items: &[S], end_cursor: Option<&str>, total: Option<u64>) -> Value {
    json!({
        "items": items.iter().map(S::json).collect::<Vec<_>>(),
        "end_cursor": end_cursor,
        "has_next_page": end_cursor.is_some(),
        "total": total,
    })
}

/// The API path of `org`'s session listing.
pub fn sessions_path(org: &str) -> String {
    format!("/v3/organizations/{org}/sessions")
}

/// A mock of GETs of `org`'s session listing.
pub fn sessions_of(org: &str) -> MockBuilder {
    Mock::given(method("GET")).and(path(sessions_path(org)))
}

/// A 200 answer with [`page`] as its body.
pub fn page_reply(items: &[S], end_cursor: Option<&str>, total: Option<u64>) -> ResponseTemplate {
    ResponseTemplate::new(200).set_body_json(page(items, end_cursor, total))
}

/// Mounts `items` as the one page of `org`'s sessions.
pub async fn mount_page(api: &MockServer, org: &str, items: &[S]) {
    sessions_of(org)
        .respond_with(page_reply(items, None, Some(items.len() as u64)))
        .mount(api)
        .await;
}

/// A mock API that answers every GET with a page of one session.
pub async fn one_session_api() -> MockServer {
    let api = MockServer::start().await;
    Mock::given(method("GET"))
        .respond_with(page_reply(&[S::new(1)], None, Some(1)))
        .mount(&api)
        .await;
    api
}

/// An exporter of org-a against `api`, behind the web config file at `web`.
pub async fn start_with_web_config(api: &MockServer, web: &str) -> TestExporter {
    start_exporter(&api.uri(), &["org-a"], &[("DEVIN_WEB_CONFIG_FILE", web)]).await
}

/// The simulated API serving `config` on a free loopback port, and its base URL.
#[cfg(feature = "simulator")]
pub async fn serve_simulator(
    config: devin_exporter::simulator::SimConfig,
) -> (devin_exporter::simulator::Simulator, String) {
    let sim = devin_exporter::simulator::Simulator::new(config);
    let addr = sim.spawn(([127, 0, 0, 1], 0).into()).await.unwrap();
    (sim, format!("http://{addr}"))
}

/// A simulated API standing still, that takes the test exporters' token.
#[cfg(feature = "simulator")]
pub fn frozen_simulator(orgs: usize, sessions: usize) -> devin_exporter::simulator::SimConfig {
    devin_exporter::simulator::SimConfig {
        orgs,
        sessions_per_org: sessions,
        speed: 0.0,
        tokens: vec!["cog_test_token".to_string()],
        ..Default::default()
    }
}

/// Every session of `org` read straight from the API, with `query` added to each request.
pub async fn list_all(url: &str, org: &str, query: &str) -> Vec<Value> {
    let client = reqwest::Client::new();
    let mut items = Vec::new();
    let mut after: Option<String> = None;
    for _ in 0..1000 {
        let mut u = format!("{url}{}?first=200{query}", sessions_path(org));
        if let Some(a) = &after {
            u.push_str(&format!("&after={a}"));
        }
        let resp = client.get(u).bearer_auth("cog_test_token").send().await;
        let page: Value = serde_json::from_str(&resp.unwrap().text().await.unwrap()).unwrap();
        items.extend(page["items"].as_array().unwrap().iter().cloned());
        if !page["has_next_page"].as_bool().unwrap() {
            return items;
        }
        after = page["end_cursor"].as_str().map(String::from);
    }
    panic!("listing of {org} does not end");
}

/// Asserts that two keyed maps are equal, showing up to five differences each way.
pub fn assert_same_map<V: PartialEq + std::fmt::Debug>(
    what: &str,
    got: &BTreeMap<String, V>,
    want: &BTreeMap<String, V>,
) {
    let wrong: Vec<_> = got
        .iter()
        .filter(|(k, v)| want.get(*k) != Some(v))
        .take(5)
        .collect();
    let missing: Vec<_> = want
        .iter()
        .filter(|(k, v)| got.get(*k) != Some(v))
        .take(5)
        .collect();
    assert!(
        wrong.is_empty() && missing.is_empty(),
        "{what}: exposed but not so: {wrong:?}\nexpected: {missing:?}"
    );
}
