//! The exporter's limits: response body cap, per-request timeout, concurrent collections and
//! the server's connection timeouts.

use crate::common;

use std::io::Read;
use std::time::{Duration, Instant};

use common::{
    S, TestExporter, page_reply, scrape, sessions_of, start_exporter, start_exporter_with_timeouts,
};
use devin_exporter::http::ServerTimeouts;
use wiremock::matchers::method;
use wiremock::{Mock, MockServer};

/// An exporter of org-a against `api` with one `setting`.
async fn org_a(api: &MockServer, setting: (&str, &str)) -> TestExporter {
    start_exporter(&api.uri(), &["org-a"], &[setting]).await
}

#[tokio::test]
async fn oversized_response_fails_the_org_without_reading_it_all() {
    let api = MockServer::start().await;
    let big: Vec<S> = (0..50).map(S::new).collect();
    Mock::given(method("GET"))
        .respond_with(page_reply(&big, None, Some(50)))
        .mount(&api)
        .await;
    let exp = org_a(&api, ("DEVIN_MAX_RESPONSE_BYTES", "4096")).await;
    let s = scrape(&exp.url, None).await;
    assert_eq!(s.metrics.up("org-a"), Some(0.0));
    let landing = exp.text("/").await;
    assert!(
        landing.contains("response body larger than 4096 bytes"),
        "{landing}"
    );
    // Not retried: a body too large once is too large again.
    assert_eq!(api.received_requests().await.unwrap().len(), 1);
}

#[tokio::test]
async fn every_request_has_a_timeout() {
    let api = MockServer::start().await;
    Mock::given(method("GET"))
        .respond_with(page_reply(&[S::new(1)], None, None).set_delay(Duration::from_secs(30)))
        .mount(&api)
        .await;
    let exp = org_a(&api, ("DEVIN_REQUEST_TIMEOUT", "300ms")).await;
    let started = Instant::now();
    let s = scrape(&exp.url, Some("20")).await;
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(s.metrics.up("org-a"), Some(0.0));
    // Timed-out requests are retried (transient), each cut at the request timeout.
    let attempts = api.received_requests().await.unwrap().len();
    assert!(attempts >= 2, "{attempts} attempts");
    assert_eq!(
        s.metrics
            .get("devin_api_requests_total", &[("code", "error")]),
        Some(attempts as f64)
    );
}

#[tokio::test]
async fn concurrent_collections_are_capped() {
    let api = MockServer::start().await;
    for org in ["org-a", "org-b", "org-c"] {
        sessions_of(org)
            .respond_with(
                page_reply(&[S::new(1)], None, Some(1)).set_delay(Duration::from_millis(300)),
            )
            .mount(&api)
            .await;
    }
    let exp = start_exporter(
        &api.uri(),
        &["org-a", "org-b", "org-c"],
        &[("DEVIN_MAX_CONCURRENT_REQUESTS", "1")],
    )
    .await;
    let started = Instant::now();
    let s = scrape(&exp.url, None).await;
    // One at a time: three 300 ms collections take at least 900 ms.
    assert!(
        started.elapsed() >= Duration::from_millis(900),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(s.metrics.sum("devin_up", &[]), 3.0);
}

#[tokio::test]
async fn silent_connections_are_closed() {
    let api = MockServer::start().await;
    let short = Duration::from_millis(300);
    let timeouts = ServerTimeouts {
        first_request: short,
        header_read: short,
        ..ServerTimeouts::default()
    };
    let exp = start_exporter_with_timeouts(&api.uri(), &["org-a"], &[], timeouts).await;
    let addr = exp.url.trim_start_matches("http://").to_string();
    let result = tokio::task::spawn_blocking(move || {
        let mut conn = std::net::TcpStream::connect(addr).unwrap();
        conn.set_read_timeout(Some(Duration::from_secs(30)))
            .unwrap();
        let started = Instant::now();
        let mut buf = [0u8; 64];
        // A client that connects and sends nothing is dropped by the server.
        let n = conn.read(&mut buf).unwrap_or(0);
        (n, started.elapsed())
    })
    .await
    .unwrap();
    assert_eq!(result.0, 0, "server closed the connection");
    // Closed by the configured timeout: not before it, and well before the 10 s default.
    assert!(
        (short..Duration::from_secs(10)).contains(&result.1),
        "closed after {:?}",
        result.1
    );
}
