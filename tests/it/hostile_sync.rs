//! The sync against an API that misbehaves: sessions dated in the future, a server clock
//! that disagrees with ours, cursors that loop. The API here is a small programmable one on
//! wiremock: it filters by `updated_after`, pages with an offset cursor and sends its own
//! clock as `Date`.

use crate::common;

use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use common::{S, Scraped, TestExporter, scrape, start_exporter};
use serde_json::{Value, json};
use wiremock::{MockServer, Request, Respond, ResponseTemplate};

/// How the fake API answers beyond the plain listing.
#[derive(Clone, Copy, PartialEq)]
enum Fault {
    None,
    /// Every page of an incremental listing says more follow, with the same cursor.
    RepeatedCursor,
    /// Every page of an incremental listing says more follow, without a cursor.
    NullCursor,
    /// Every page of any listing has 200 new sessions and a new cursor, forever.
    EndlessCursors,
}

struct World {
    items: Vec<Value>,
    /// The server's clock (Unix seconds); sent as `Date`.
    clock: i64,
    send_date: bool,
    fault: Fault,
    page_size: usize,
    served: u64,
}

#[derive(Clone)]
struct Api(Arc<Mutex<World>>);

fn ts(v: &Value) -> f64 {
    v.as_f64().unwrap_or(0.0)
}

impl Respond for Api {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        let mut w = self.0.lock().unwrap();
        w.served += 1;
        let param = |k: &str| {
            request
                .url
                .query_pairs()
                .find(|(key, _)| key == k)
                .map(|(_, v)| v.to_string())
        };
        let bound = |k: &str| param(k).map(|v| v.parse::<f64>().unwrap());
        let updated_after = bound("updated_after");
        let (created_after, created_before) = (bound("created_after"), bound("created_before"));
        let offset: usize =
            param("after").map_or(0, |a| a.trim_start_matches('c').parse().unwrap());
        let matching: Vec<&Value> = w
            .items
            .iter()
            .filter(|i| updated_after.is_none_or(|b| ts(&i["updated_at"]) >= b))
            .filter(|i| created_after.is_none_or(|b| ts(&i["created_at"]) >= b))
            .filter(|i| created_before.is_none_or(|b| ts(&i["created_at"]) <= b))
            .collect();
        let (items, more, cursor): (Vec<Value>, bool, Option<String>) = match w.fault {
            Fault::EndlessCursors => {
                let items = (0..200)
                    .map(|k| S::new((w.served * 1000 + k) as u32).json())
                    .collect();
                (items, true, Some(format!("c{}", offset + 1)))
            }
            fault if updated_after.is_some() && fault != Fault::None => {
                let items: Vec<Value> = matching
                    .iter()
                    .take(w.page_size)
                    .map(|v| (*v).clone())
                    .collect();
                let cursor = (fault == Fault::RepeatedCursor).then(|| "c1".to_string());
                (items, true, cursor)
            }
            _ => {
                let page: Vec<Value> = matching
                    .iter()
                    .skip(offset)
                    .take(w.page_size)
                    .map(|v| (*v).clone())
                    .collect();
                let more = offset + page.len() < matching.len();
                (
                    page,
                    more,
                    more.then(|| format!("c{}", offset + w.page_size)),
                )
            }
        };
        let body = json!({"items": items, "end_cursor": cursor, "has_next_page": more});
        let mut response = ResponseTemplate::new(200).set_body_json(body);
        if w.send_date {
            let at = UNIX_EPOCH + Duration::from_secs(w.clock as u64);
            response = response.insert_header("Date", httpdate::fmt_http_date(at).as_str());
        }
        response
    }
}

fn wall_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

async fn api(items: Vec<Value>, clock: i64, send_date: bool) -> (MockServer, Api) {
    let server = MockServer::start().await;
    let api = Api(Arc::new(Mutex::new(World {
        items,
        clock,
        send_date,
        fault: Fault::None,
        page_size: 200,
        served: 0,
    })));
    common::sessions_of("org-a")
        .respond_with(api.clone())
        .mount(&server)
        .await;
    (server, api)
}

impl Api {
    fn with<T>(&self, f: impl FnOnce(&mut World) -> T) -> T {
        f(&mut self.0.lock().unwrap())
    }

    /// Changes session `n` now (server time): a new status, one more ACU.
    fn touch(&self, n: usize, status: &str) {
        self.with(|w| {
            let now = w.clock;
            let item = &mut w.items[n];
            item["status"] = json!(status);
            item["updated_at"] = json!(now);
            item["acus_consumed"] = json!(ts(&item["acus_consumed"]) + 1.0);
        });
    }

    /// Adds a session created and updated now (server time).
    fn create(&self, n: u32) {
        self.with(|w| {
            let mut s = S::new(n);
            s.created = w.clock;
            s.updated = w.clock;
            w.items.push(s.json());
        });
    }
}

fn sessions(at: i64, n: u32) -> Vec<Value> {
    (1..=n)
        .map(|i| {
            let mut s = S::new(i);
            s.created = at - 3600 + i64::from(i);
            s.updated = at - 3600 + i64::from(i);
            s.json()
        })
        .collect()
}

/// Sessions in `status`, as scraped.
fn in_status(s: &Scraped, status: &str) -> Option<f64> {
    s.metrics.get("devin_sessions", &[("status", status)])
}

fn error_of(exp: &TestExporter) -> Option<String> {
    exp.exporter.orgs()[0].state().health.last_error.clone()
}

#[tokio::test]
async fn one_session_dated_in_the_future_does_not_blind_the_org() {
    let base = 1_750_000_000;
    for bad in [json!(base * 1000), json!(1e308), json!(base + 86_400)] {
        let (_server, api) = api(sessions(base, 20), base, true).await;
        let exp = start_exporter(&_server.uri(), &["org-a"], &[]).await;
        let first = scrape(&exp.url, None).await;
        assert_eq!(first.metrics.sum("devin_sessions", &[]), 20.0);
        // One session comes back with an absurd `updated_at`.
        api.with(|w| {
            w.clock += 10;
            w.items[0]["updated_at"] = bad.clone();
            w.items[0]["status"] = json!("exit");
        });
        let s = scrape(&exp.url, None).await;
        assert_eq!(in_status(&s, "exit"), Some(1.0), "{bad}");
        // Every later change is still seen, scrape after scrape.
        for round in 1..=3 {
            api.with(|w| w.clock += 10);
            for n in 1..=round * 5 {
                api.touch(n, "error");
            }
            let s = scrape(&exp.url, None).await;
            assert_eq!(s.metrics.up("org-a"), Some(1.0));
            assert_eq!(
                in_status(&s, "error"),
                Some((round * 5) as f64),
                "bad updated_at {bad}: round {round}"
            );
            // The odd session still counts.
            assert_eq!(s.metrics.sum("devin_sessions", &[]), 20.0);
        }
    }
}

#[tokio::test]
async fn an_org_that_starts_empty_sees_new_sessions_with_the_api_clock_behind() {
    // The API's `Date` is its own clock, 300 s behind ours.
    {
        let behind = wall_now() - 300;
        let (server, api) = api(Vec::new(), behind, true).await;
        let exp = start_exporter(&server.uri(), &["org-a"], &[]).await;
        let first = scrape(&exp.url, None).await;
        assert_eq!(
            first
                .metrics
                .get("devin_initial_sync_complete", &[("org_id", "org-a")]),
            Some(1.0)
        );
        for round in 1..=6u32 {
            api.with(|w| w.clock += 5);
            for k in 0..round {
                api.create(round * 10 + k);
            }
            let s = scrape(&exp.url, None).await;
            let want = (1..=round).sum::<u32>() as f64;
            assert_eq!(s.metrics.sum("devin_sessions", &[]), want, "round {round}");
        }
    }
}

/// An API whose `Date` runs an hour ahead of its sessions' own timestamps (a proxy in
/// front of it, say), holding no sessions yet; sessions are dated from `base`.
async fn clock_ahead_api(base: i64) -> (MockServer, Api) {
    api(Vec::new(), base + 3600, true).await
}

/// A session created and last updated at `at` on the sessions' own clock.
fn session_at(n: u32, at: i64) -> Value {
    let mut s = S::new(n);
    (s.created, s.updated) = (at, at);
    s.json()
}

#[tokio::test]
async fn an_org_that_starts_empty_sees_its_first_sessions_with_the_api_clock_ahead() {
    let base = 1_750_000_000;
    let (server, api) = clock_ahead_api(base).await;
    let exp = start_exporter(&server.uri(), &["org-a"], &[("DEVIN_LOOKBACK", "1d")]).await;
    let first = scrape(&exp.url, None).await;
    let org = [("org_id", "org-a")];
    assert_eq!(
        first.metrics.get("devin_initial_sync_complete", &org),
        Some(1.0)
    );
    assert_eq!(first.metrics.sum("devin_sessions", &[]), 0.0);
    // The first session, dated before `Date`.
    api.with(|w| {
        w.clock += 10;
        w.items.push(session_at(1, base + 10));
    });
    let s = scrape(&exp.url, None).await;
    assert_eq!(s.metrics.sum("devin_sessions", &[]), 1.0);
    // Listed in full within the lookback, as the first listing was.
    let requests = server.received_requests().await.unwrap();
    let params: Vec<String> = requests[1]
        .url
        .query_pairs()
        .map(|(k, _)| k.into())
        .collect();
    assert_eq!(params, ["first", "created_after"]);
    // Its next change, also before `Date`, is seen too: the watermark comes from the
    // sessions seen, not from `Date`.
    api.with(|w| {
        w.clock += 10;
        w.items[0]["status"] = json!("exit");
        w.items[0]["updated_at"] = json!(base + 20);
    });
    let s = scrape(&exp.url, None).await;
    assert_eq!(in_status(&s, "exit"), Some(1.0));
}

#[tokio::test]
async fn an_org_that_lost_all_its_sessions_sees_new_ones_with_the_api_clock_ahead() {
    let base = 1_750_000_000;
    let (server, api) = clock_ahead_api(base).await;
    api.with(|w| w.items.push(session_at(1, base)));
    let exp = start_exporter(
        &server.uri(),
        &["org-a"],
        &[("DEVIN_FULL_RESYNC_INTERVAL", "1h")],
    )
    .await;
    let first = scrape(&exp.url, None).await;
    assert_eq!(first.metrics.sum("devin_sessions", &[]), 1.0);
    // The session is deleted; the hourly re-listing finds the org empty.
    api.with(|w| {
        w.clock += 3600;
        w.items.clear();
    });
    common::skip_time(Duration::from_secs(3600)).await;
    let emptied = scrape(&exp.url, None).await;
    assert_eq!(emptied.metrics.sum("devin_sessions", &[]), 0.0);
    // A new session, dated before `Date`.
    api.with(|w| {
        w.clock += 10;
        w.items.push(session_at(2, base + 3610));
    });
    let s = scrape(&exp.url, None).await;
    assert_eq!(s.metrics.sum("devin_sessions", &[]), 1.0);
}

#[tokio::test]
async fn a_future_session_in_the_first_listing_does_not_blind_it_either() {
    let base = wall_now();
    let mut items = sessions(base, 5);
    items[0]["updated_at"] = json!(base * 1000);
    let (server, api) = api(items, base, true).await;
    let exp = start_exporter(&server.uri(), &["org-a"], &[]).await;
    scrape(&exp.url, None).await;
    api.with(|w| w.clock += 30);
    api.touch(3, "error");
    let s = scrape(&exp.url, None).await;
    assert_eq!(in_status(&s, "error"), Some(1.0));
}

async fn synced(fault: Fault, extra: &[(&str, &str)]) -> (MockServer, Api, TestExporter) {
    let base = 1_750_000_000;
    let (server, api) = api(sessions(base, 30), base, true).await;
    api.with(|w| w.page_size = 10);
    let mut vars = vec![("DEVIN_PAGE_SIZE", "10")];
    vars.extend_from_slice(extra);
    let exp = start_exporter(&server.uri(), &["org-a"], &vars).await;
    let first = scrape(&exp.url, None).await;
    assert_eq!(
        first.metrics.sum("devin_sessions", &[]),
        30.0,
        "{:?}",
        error_of(&exp)
    );
    assert_eq!(first.metrics.up("org-a"), Some(1.0));
    // Changes the incremental listing will see, on a page that then loops.
    api.with(|w| {
        w.clock += 10;
        w.fault = fault;
    });
    for n in 0..3 {
        api.touch(n, "error");
    }
    (server, api, exp)
}

#[tokio::test]
async fn a_repeated_cursor_is_an_error_and_merges_nothing() {
    let (_server, api, exp) = synced(Fault::RepeatedCursor, &[]).await;
    let before = api.with(|w| w.served);
    let s = scrape(&exp.url, Some("10")).await;
    assert_eq!(s.metrics.up("org-a"), Some(0.0));
    // Nothing of the looping pass was applied.
    assert_eq!(in_status(&s, "error"), None);
    assert_eq!(s.metrics.sum("devin_sessions", &[]), 30.0);
    // Caught at the first repeat, not at the deadline.
    assert_eq!(api.with(|w| w.served) - before, 2);
    let error = error_of(&exp).unwrap();
    assert!(
        error.contains("end_cursor") && error.contains("repeated"),
        "{error}"
    );
    let landing = exp.text("/").await;
    assert!(
        landing.contains("repeated"),
        "landing page shows the reason"
    );
    // Once the API behaves, the org recovers and the changes arrive.
    api.with(|w| w.fault = Fault::None);
    let s = scrape(&exp.url, None).await;
    assert_eq!(s.metrics.up("org-a"), Some(1.0));
    assert_eq!(in_status(&s, "error"), Some(3.0));
}

#[tokio::test]
async fn more_pages_without_a_cursor_is_an_error() {
    let (_server, _api, exp) = synced(Fault::NullCursor, &[]).await;
    let s = scrape(&exp.url, Some("10")).await;
    assert_eq!(s.metrics.up("org-a"), Some(0.0));
    assert_eq!(in_status(&s, "error"), None);
    let error = error_of(&exp).unwrap();
    assert!(error.contains("end_cursor is null"), "{error}");
}

#[tokio::test]
async fn a_first_listing_that_loops_fails_and_shows_nothing() {
    let base = 1_750_000_000;
    let (server, api) = api(sessions(base, 30), base, true).await;
    api.with(|w| {
        w.page_size = 10;
        w.fault = Fault::EndlessCursors;
    });
    let exp = start_exporter(
        &server.uri(),
        &["org-a"],
        &[
            ("DEVIN_PAGE_SIZE", "10"),
            ("DEVIN_MAX_SESSIONS_PER_ORG", "1000"),
        ],
    )
    .await;
    let s = scrape(&exp.url, Some("20")).await;
    assert_eq!(s.metrics.up("org-a"), Some(0.0));
    assert_eq!(
        s.metrics
            .get("devin_initial_sync_complete", &[("org_id", "org-a")]),
        Some(0.0)
    );
    assert_eq!(s.metrics.count("devin_sessions", &[]), 0);
    let error = error_of(&exp).unwrap();
    assert!(error.contains("DEVIN_MAX_SESSIONS_PER_ORG"), "{error}");
    // 200 new sessions a page: failed after the sixth page, not at the deadline.
    assert!(api.with(|w| w.served) <= 16, "{}", api.with(|w| w.served));
    assert_eq!(exp.exporter.orgs()[0].state().store.len(), 0);
}

#[tokio::test]
async fn an_endless_incremental_listing_fails_the_org_past_the_cap() {
    let (_server, api, exp) = synced(
        Fault::EndlessCursors,
        &[("DEVIN_MAX_SESSIONS_PER_ORG", "1000")],
    )
    .await;
    let before = api.with(|w| w.served);
    let s = scrape(&exp.url, Some("20")).await;
    assert_eq!(s.metrics.up("org-a"), Some(0.0));
    assert!(api.with(|w| w.served) - before <= 6);
    assert_eq!(s.metrics.sum("devin_sessions", &[]), 30.0, "nothing merged");
}
