//! Incremental sync against a mocked API: the watermark and its overlap, the full re-listing
//! that drops deleted sessions, monotonic counters, and a first listing that resumes.

use crate::common;

use std::time::Duration;

use common::{S, Scraped, TestExporter, page_reply, scrape, sessions_of, start_exporter};
use wiremock::matchers::query_param;
use wiremock::{MockBuilder, MockServer, Request, ResponseTemplate};

fn has(param: &'static str) -> impl Fn(&Request) -> bool + Send + Sync {
    move |r: &Request| r.url.query_pairs().any(|(k, _)| k == param)
}

fn lacks(param: &'static str) -> impl Fn(&Request) -> bool + Send + Sync {
    move |r: &Request| !r.url.query_pairs().any(|(k, _)| k == param)
}

/// Org-a's full listings (without `updated_after`).
fn full() -> MockBuilder {
    sessions_of("org-a").and(lacks("updated_after"))
}

/// Incremental listings of org-a that find no change.
async fn no_changes(api: &MockServer) {
    sessions_of("org-a")
        .and(has("updated_after"))
        .respond_with(page_reply(&[], None, None))
        .mount(api)
        .await;
}

/// An org whose first full listing has `first`, whose later full listings answer with
/// `later`, and whose incremental listings see no change; its exporter re-lists every hour.
/// Returns after the first scrape, with the clock moved on so that the next one re-lists.
async fn relisting(first: &[S], later: ResponseTemplate) -> (MockServer, TestExporter, Scraped) {
    let api = MockServer::start().await;
    full()
        .respond_with(page_reply(first, None, Some(first.len() as u64)))
        .up_to_n_times(1)
        .mount(&api)
        .await;
    full().respond_with(later).mount(&api).await;
    no_changes(&api).await;
    let exp = start_exporter(
        &api.uri(),
        &["org-a"],
        &[("DEVIN_FULL_RESYNC_INTERVAL", "1h")],
    )
    .await;
    let scraped = scrape(&exp.url, None).await;
    common::skip_time(Duration::from_secs(3600)).await;
    (api, exp, scraped)
}

#[tokio::test]
async fn change_in_the_watermark_second_is_not_missed() {
    let api = MockServer::start().await;
    let mut a = S::new(1);
    a.updated = 1_700_000_100;
    let b = S::new(2);
    full()
        .respond_with(page_reply(&[a.clone(), b], None, Some(2)))
        .expect(1)
        .mount(&api)
        .await;
    // a changes again within the same second as the watermark; with the narrowest overlap and
    // an API whose bound is exclusive, the incremental request must still cover that second.
    let mut a2 = a.clone();
    a2.status = "exit";
    a2.detail = None;
    a2.acus = 3.0;
    sessions_of("org-a")
        .and(query_param("updated_after", "1700000099"))
        .respond_with(page_reply(&[a2], None, None))
        .expect(1..)
        .mount(&api)
        .await;
    let exp = start_exporter(&api.uri(), &["org-a"], &[("DEVIN_SYNC_OVERLAP", "1s")]).await;
    let by_status = |s: &Scraped, status| s.metrics.get("devin_sessions", &[("status", status)]);
    let first = scrape(&exp.url, None).await;
    assert_eq!(by_status(&first, "running"), Some(2.0));
    let second = scrape(&exp.url, None).await;
    let m = &second.metrics;
    assert_eq!(m.up("org-a"), Some(1.0));
    assert_eq!(by_status(&second, "running"), Some(1.0));
    assert_eq!(by_status(&second, "exit"), Some(1.0));
    // a went from 1 to 3 ACUs after the first listing.
    assert_eq!(m.get("devin_acus_consumed_total", &[]), Some(2.0));
    let exit = [("status", "exit"), ("status_detail", "none")];
    assert_eq!(
        m.get("devin_sessions_entered_status_total", &exit),
        Some(1.0)
    );
    // Steady state: one request per scrape.
    let before = api.received_requests().await.unwrap().len();
    scrape(&exp.url, None).await;
    assert_eq!(api.received_requests().await.unwrap().len(), before + 1);
    api.verify().await;
}

#[tokio::test]
async fn full_resync_drops_deleted_sessions_and_counters_never_decrease() {
    let all: Vec<S> = (1..=3).map(S::new).collect();
    // Later full listings no longer have session 3, and show session 1 grown by 1.5 ACUs
    // (a change the incremental listings, which see nothing, missed).
    let mut later = all[..2].to_vec();
    later[0].acus = 2.5;
    later[0].updated += 10;
    let (_api, exp, first) = relisting(&all, page_reply(&later, None, Some(2))).await;
    assert_eq!(first.metrics.sum("devin_sessions", &[]), 3.0);
    let second = scrape(&exp.url, None).await;
    assert_eq!(second.metrics.sum("devin_sessions", &[]), 2.0);
    assert_eq!(second.metrics.sum("devin_sessions_acus_consumed", &[]), 3.5);
    // The deleted session takes nothing back; the growth the re-listing found counts.
    assert_eq!(second.metrics.sum("devin_acus_consumed_total", &[]), 1.5);
    assert_eq!(second.metrics.sum("devin_sessions_created_total", &[]), 0.0);
}

#[tokio::test]
async fn interrupted_first_listing_resumes_without_double_counting() {
    let api = MockServer::start().await;
    let all: Vec<S> = (1..=5).map(S::new).collect();
    full()
        .and(lacks("after"))
        .respond_with(page_reply(&all[..2], Some("c1"), Some(5)))
        .expect(1) // never fetched again: the listing resumes at its cursor
        .mount(&api)
        .await;
    // The second page is slower than the first scrape's budget, once.
    sessions_of("org-a")
        .and(query_param("after", "c1"))
        .respond_with(page_reply(&all[2..4], Some("c2"), None).set_delay(Duration::from_secs(5)))
        .up_to_n_times(1)
        .mount(&api)
        .await;
    sessions_of("org-a")
        .and(query_param("after", "c1"))
        .respond_with(page_reply(&all[2..4], Some("c2"), None))
        .mount(&api)
        .await;
    sessions_of("org-a")
        .and(query_param("after", "c2"))
        .respond_with(page_reply(&all[4..], None, None))
        .mount(&api)
        .await;
    no_changes(&api).await;
    // A collection's own budget (DEVIN_SCRAPE_TIMEOUT) ends before the slow page does.
    let exp = start_exporter(
        &api.uri(),
        &["org-a"],
        &[("DEVIN_PAGE_SIZE", "2"), ("DEVIN_SCRAPE_TIMEOUT", "1s")],
    )
    .await;
    let first = scrape(&exp.url, Some("2")).await;
    let complete = |s: &Scraped| {
        let org = [("org_id", "org-a")];
        s.metrics.get("devin_initial_sync_complete", &org)
    };
    assert_eq!(complete(&first), Some(0.0));
    assert_eq!(
        first.metrics.count("devin_sessions", &[]),
        0,
        "no half-counted gauges"
    );
    assert_eq!(first.metrics.count("devin_sessions_created_total", &[]), 0);
    assert_eq!(
        first.metrics.up("org-a"),
        Some(1.0),
        "progress is not failure"
    );

    let second = scrape(&exp.url, None).await;
    assert_eq!(complete(&second), Some(1.0));
    assert_eq!(second.metrics.sum("devin_sessions", &[]), 5.0);
    // Counters start at zero once the listing completes, however many scrapes it took.
    // One series per documented origin (the listed sessions' slack among them).
    assert_eq!(
        second.metrics.count("devin_sessions_created_total", &[]),
        11
    );
    assert_eq!(second.metrics.sum("devin_sessions_created_total", &[]), 0.0);
    assert_eq!(second.metrics.sum("devin_acus_consumed_total", &[]), 0.0);
    api.verify().await;
}

#[tokio::test]
async fn a_slow_full_relisting_neither_fails_the_org_nor_delays_the_scrape() {
    let all: Vec<S> = (1..=3).map(S::new).collect();
    // Every later full listing is slower than the scrape's budget.
    let slow = page_reply(&all[..2], None, Some(2)).set_delay(Duration::from_secs(5));
    let (_api, exp, _) = relisting(&all, slow).await;
    let client = reqwest::Client::new();
    let started = std::time::Instant::now();
    let s = common::scrape_with(&client, &exp.url, Some("2")).await;
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(s.metrics.up("org-a"), Some(1.0), "data is current");
    assert_eq!(
        s.metrics.sum("devin_sessions", &[]),
        3.0,
        "nothing dropped on a half re-listing"
    );
}

fn updated_after(r: &Request) -> Option<i64> {
    r.url
        .query_pairs()
        .find(|(k, _)| k == "updated_after")
        .and_then(|(_, v)| v.parse().ok())
}

#[tokio::test]
async fn cheap_passes_start_a_second_back_and_a_deep_recheck_catches_late_indexing() {
    let api = MockServer::start().await;
    let base = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
        - 100;
    let (mut a, mut b) = (S::new(1), S::new(2));
    (a.updated, b.updated) = (base + 1, base + 2);
    full()
        .respond_with(page_reply(&[a, b], None, Some(2)))
        .expect(1)
        .mount(&api)
        .await;
    // A session updated before the watermark but indexed late: only a deep re-check, the
    // whole overlap back, asks far enough back to find it.
    let mut late = S::new(3);
    late.updated = base;
    sessions_of("org-a")
        .and(move |r: &Request| updated_after(r).is_some_and(|v| v <= base))
        .respond_with(page_reply(&[late], None, None))
        .expect(1)
        .mount(&api)
        .await;
    // Cheap passes: from a second before the watermark (first base + 2, then the server's
    // time of the last pass that found nothing).
    sessions_of("org-a")
        .and(move |r: &Request| updated_after(r).is_some_and(|v| v > base))
        .respond_with(page_reply(&[], None, None))
        .expect(2)
        .mount(&api)
        .await;
    let exp = start_exporter(
        &api.uri(),
        &["org-a"],
        &[
            ("DEVIN_SYNC_OVERLAP", "300s"),
            ("DEVIN_DEEP_RECHECK_INTERVAL", "60s"),
        ],
    )
    .await;
    let first = scrape(&exp.url, None).await;
    assert_eq!(first.metrics.sum("devin_sessions", &[]), 2.0);
    let cheap = scrape(&exp.url, None).await;
    assert_eq!(cheap.metrics.sum("devin_sessions", &[]), 2.0);
    let asked = updated_after(api.received_requests().await.unwrap().last().unwrap());
    assert_eq!(asked, Some(base + 1), "a second before the watermark");
    common::skip_time(Duration::from_secs(60)).await;
    let deep = scrape(&exp.url, None).await;
    assert_eq!(deep.metrics.sum("devin_sessions", &[]), 3.0);
    // And back to cheap passes until the next interval.
    let again = scrape(&exp.url, None).await;
    assert_eq!(again.metrics.up("org-a"), Some(1.0));
    api.verify().await;
}
