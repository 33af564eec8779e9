//! Collection benchmark against the simulator (run as its own process, so CPU and memory
//! figures are the exporter's alone). Run with `cargo bench --bench collect`; the README's
//! Performance section quotes its output.
//!
//! Scenario: 5 orgs x 20,000 sessions, 50 ms added to every API response.
//!   cold       first collection of all orgs (default request budget and a raised one)
//!   warm       60 simulated seconds and 1% of sessions changed between scrapes
//!   warm-small 60 simulated seconds and 25 sessions per org changed between scrapes
//!   churn      changes every 2 simulated seconds, a scrape every 15: 20 sessions per org
//!              changed per 2 s, after a burst of 2,000 per org
//!   naive      the list-everything strategy, same data, same client, in the same run
//!   million    a second simulator with 5 orgs x 200,000 sessions: cold requests per page
//!              of data and exporter RSS per session

mod support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use devin_exporter::api::budget::RequestBudget;
use devin_exporter::api::token::TokenProvider;
use devin_exporter::api::{ApiClient, ListQuery, RequestObserver};
use devin_exporter::config::{Secret, TokenSource};
use devin_exporter::metrics::{Renderer, Scope};
use devin_exporter::sync::{SessionStore, Transitions};
use support::{
    Exposition, InProcess, Sim, cpu_time, ms, peak_rss_bytes, percentile, rss_bytes, start_exporter,
};

const ORGS: usize = 5;
const SESSIONS: usize = 20_000;
const LATENCY_MS: u64 = 50;
const WARM_SCRAPES: usize = 40;

fn start_sim() -> Sim {
    let orgs = ORGS.to_string();
    let sessions = SESSIONS.to_string();
    let latency = format!("{LATENCY_MS}ms");
    Sim::start(&[
        "--speed",
        "0",
        "--seed",
        "1",
        "--orgs",
        &orgs,
        "--sessions-per-org",
        &sessions,
        "--latency",
        &latency,
        "--token",
        "cog_bench",
    ])
}

/// POSTs to an admin route of the simulator and returns its JSON answer.
fn post(url: &str) -> serde_json::Value {
    let rt = tokio::runtime::Handle::current();
    tokio::task::block_in_place(|| {
        rt.block_on(async {
            let r = reqwest::Client::new()
                .post(url)
                .send()
                .await
                .expect("admin call");
            assert!(r.status().is_success(), "{url}: {}", r.status());
            let body = r.bytes().await.expect("admin answer");
            serde_json::from_slice(&body).expect("admin answer is JSON")
        })
    })
}

/// What happens between two churn scrapes: 7 steps of 2 simulated seconds, each changing
/// `per_step` sessions per org, then one more second. Returns the simulated time then.
fn churn_between_scrapes(sim: &Sim, per_step: usize) -> i64 {
    for _ in 0..7 {
        post(&format!("{}/sim/advance?seconds=2", sim.url));
        for org in &sim.orgs {
            post(&format!("{}/sim/touch?org_id={org}&n={per_step}", sim.url));
        }
    }
    let now = post(&format!("{}/sim/advance?seconds=1", sim.url));
    now["now"].as_i64().expect("simulated time")
}

async fn scrape(url: &str) -> (Duration, String) {
    support::timed_get(&reqwest::Client::new(), url, "120").await
}

fn api_requests(body: &str) -> f64 {
    Exposition::parse(body).sum("devin_api_requests_total")
}

/// The longest collection of the scrape, as the exporter measured it
/// (`devin_scrape_duration_seconds`): the part of a scrape's latency spent collecting.
fn longest_collection(body: &str) -> Duration {
    let secs = Exposition::parse(body)
        .values("devin_scrape_duration_seconds")
        .into_iter()
        .fold(0.0, f64::max);
    Duration::from_secs_f64(secs)
}

fn all_complete(body: &str) -> bool {
    let complete = Exposition::parse(body).values("devin_initial_sync_complete");
    complete.iter().all(|v| *v == 1.0)
}

async fn cold(sim: &Sim, label: &str, extra: &[(&str, &str)]) -> InProcess {
    let exp = start_exporter(sim, extra).await;
    let started = Instant::now();
    let mut scrapes = 0;
    let body = loop {
        let (_, body) = scrape(&exp.url).await;
        scrapes += 1;
        if all_complete(&body) {
            break body;
        }
    };
    let (requests, pages) = (api_requests(&body), ORGS * SESSIONS / 200);
    println!(
        "cold[{label}]: sessions={} time={:.2}s scrapes={scrapes} requests={requests} (pages of data: {pages}) requests_per_page={:.3}",
        ORGS * SESSIONS,
        started.elapsed().as_secs_f64(),
        requests / pages as f64,
    );
    exp
}

async fn warm(sim: &Sim, exp: &InProcess, label: &str, per_org: usize) -> Duration {
    let mut latencies = Vec::new();
    let mut requests = Vec::new();
    let mut cpu = Duration::ZERO;
    // Let earlier scenarios' changes leave the incremental window first.
    for _ in 0..2 {
        post(&format!("{}/sim/advance?seconds=180", sim.url));
        scrape(&exp.url).await;
    }
    let (_, body) = scrape(&exp.url).await;
    let mut last = api_requests(&body);
    for _ in 0..WARM_SCRAPES {
        post(&format!("{}/sim/advance?seconds=60", sim.url));
        for org in &sim.orgs {
            post(&format!("{}/sim/touch?org_id={org}&n={per_org}", sim.url));
        }
        let cpu_before = cpu_time();
        let (took, body) = scrape(&exp.url).await;
        cpu += cpu_time() - cpu_before;
        latencies.push(took);
        let now = api_requests(&body);
        requests.push(now - last);
        last = now;
    }
    let per_scrape = requests.iter().sum::<f64>() / requests.len() as f64;
    let p50 = percentile(&latencies, 50.0);
    println!(
        "warm[{label}]: changed_per_scrape={} p50={:.1}ms p99={:.1}ms requests_per_scrape={per_scrape:.2} ({:.2} per org, max {}) cpu_per_scrape={:.2}ms p50_in_round_trips={:.2}",
        per_org * ORGS,
        ms(p50),
        ms(percentile(&latencies, 99.0)),
        per_scrape / ORGS as f64,
        requests.iter().cloned().fold(0.0, f64::max),
        ms(cpu) / WARM_SCRAPES as f64,
        ms(p50) / LATENCY_MS as f64,
    );
    p50
}

/// Changes every 2 simulated seconds, a scrape every 15, after a burst of churn: requests
/// per warm scrape and latency.
async fn churn(sim: &Sim, exp: &InProcess, per_step: usize) -> Duration {
    // A burst: thousands of changes within the overlap, which cheap passes need not re-read.
    for org in &sim.orgs {
        post(&format!("{}/sim/touch?org_id={org}&n=2000", sim.url));
    }
    post(&format!("{}/sim/advance?seconds=2", sim.url));
    scrape(&exp.url).await;
    let (_, body) = scrape(&exp.url).await;
    let mut last = api_requests(&body);
    let (mut latencies, mut requests, mut collecting) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..WARM_SCRAPES {
        churn_between_scrapes(sim, per_step);
        let (took, body) = scrape(&exp.url).await;
        latencies.push(took);
        collecting.push(longest_collection(&body));
        let now = api_requests(&body);
        requests.push(now - last);
        last = now;
    }
    let per_scrape = requests.iter().sum::<f64>() / requests.len() as f64;
    let p50 = percentile(&latencies, 50.0);
    println!(
        "churn: longest collection per scrape p50={:.1}ms (the rest of the scrape is hand-off, render and HTTP)",
        ms(percentile(&collecting, 50.0))
    );
    println!(
        "warm[changes every 2s, {} per org per scrape, after a burst of 2000 per org]: requests_per_scrape={per_scrape:.2} ({:.2} per org, max {}) p50={:.1}ms p99={:.1}ms p50_in_round_trips={:.2}",
        per_step * 7,
        per_scrape / ORGS as f64,
        requests.iter().cloned().fold(0.0, f64::max),
        ms(p50),
        ms(percentile(&latencies, 99.0)),
        ms(p50) / LATENCY_MS as f64,
    );
    p50
}

/// The floor under a churn scrape: the same passes (each org's sessions changed since a
/// second before the last pass) fetched straight from the simulator, every org at once on one
/// kept-alive client, without the exporter. On one machine the simulator builds its pages on
/// the same CPUs as the exporter, so this is more than the 50 ms of added latency.
async fn bare_api(sim: &Sim, per_step: usize) -> Duration {
    let client = reqwest::Client::new();
    let mut watermark = post(&format!("{}/sim/advance?seconds=0", sim.url))["now"]
        .as_i64()
        .expect("simulated time");
    let mut rounds = Vec::new();
    for _ in 0..WARM_SCRAPES {
        let now = churn_between_scrapes(sim, per_step);
        let started = Instant::now();
        let fetches = sim.orgs.iter().map(|org| {
            let url = format!(
                "{}/v3/organizations/{org}/sessions?first=200&updated_after={}",
                sim.url,
                watermark - 1
            );
            let request = client.get(url).bearer_auth("cog_bench");
            async move { request.send().await.unwrap().bytes().await.unwrap().len() }
        });
        futures::future::join_all(fetches).await;
        rounds.push(started.elapsed());
        watermark = now - 1;
    }
    let p50 = percentile(&rounds, 50.0);
    println!(
        "churn[floor: the same passes fetched directly, all orgs at once]: p50={:.1}ms ({:.2} round trips)",
        ms(p50),
        ms(p50) / LATENCY_MS as f64
    );
    p50
}

/// A million sessions (5 orgs x 200,000), cold: requests per page of data, RSS per session.
async fn million() {
    const PER_ORG: usize = 200_000;
    let sim = Sim::start(&[
        "--speed",
        "0",
        "--seed",
        "2",
        "--orgs",
        &ORGS.to_string(),
        "--sessions-per-org",
        &PER_ORG.to_string(),
        "--latency",
        &format!("{LATENCY_MS}ms"),
        "--token",
        "cog_bench",
    ]);
    let rss_before = rss_bytes();
    let exp = start_exporter(
        &sim,
        &[
            ("DEVIN_MAX_REQUESTS_PER_SECOND", "500"),
            ("DEVIN_MAX_CONCURRENT_REQUESTS", "64"),
        ],
    )
    .await;
    let started = Instant::now();
    let body = loop {
        let (_, body) = scrape(&exp.url).await;
        if all_complete(&body) {
            break body;
        }
    };
    let sessions = ORGS * PER_ORG;
    let pages = sessions.div_ceil(200);
    let requests = api_requests(&body);
    let rss = rss_bytes().saturating_sub(rss_before);
    println!(
        "cold[1,000,000 sessions, 500 requests/s, 64 in flight]: time={:.1}s requests={requests} pages_of_data={pages} requests_per_page={:.3} rss_growth={}MiB ({:.0} bytes per session, whole process: parse buffers and allocator slack included)",
        started.elapsed().as_secs_f64(),
        requests / pages as f64,
        rss >> 20,
        rss as f64 / sessions as f64,
    );
    exp.server.abort();
}

struct NoStats;
impl RequestObserver for NoStats {
    fn observe(&self, _: &str, _: Duration) {}
}

/// The plain strategy: every scrape lists every session of every org, page by page.
async fn naive(sim: &Sim) -> Duration {
    let token =
        Arc::new(TokenProvider::new(&TokenSource::Value(Secret::new("cog_bench"))).unwrap());
    let client = Arc::new(
        ApiClient::new(
            &sim.url,
            token,
            Arc::new(RequestBudget::new(10_000.0, 64)),
            64 << 20,
            Duration::from_secs(30),
        )
        .unwrap(),
    );
    let mut latencies = Vec::new();
    let mut requests = 0u64;
    for _ in 0..3 {
        let started = Instant::now();
        let tasks: Vec<_> = sim
            .orgs
            .iter()
            .map(|org| {
                let (client, org) = (Arc::clone(&client), org.clone());
                tokio::spawn(async move {
                    let mut store = SessionStore::default();
                    let mut q = ListQuery {
                        first: 200,
                        ..Default::default()
                    };
                    let mut n = 0u64;
                    loop {
                        let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
                        let body = client
                            .list_sessions(&org, &q, deadline, &NoStats)
                            .await
                            .unwrap();
                        n += 1;
                        let page = body.parse().unwrap();
                        for s in &page.items {
                            store.upsert(s, 1, Transitions::Ignored);
                        }
                        match page.end_cursor {
                            Some(c) if page.has_next_page => q.after = Some(c),
                            _ => break,
                        }
                    }
                    (n, store.len())
                })
            })
            .collect();
        for t in tasks {
            let (n, len) = t.await.unwrap();
            assert!(len >= SESSIONS, "{len}");
            requests += n;
        }
        latencies.push(started.elapsed());
    }
    let p50 = percentile(&latencies, 50.0);
    println!(
        "naive[list everything]: p50={:.1}ms requests_per_scrape={}",
        ms(p50),
        requests / latencies.len() as u64
    );
    p50
}

fn render_figures(exp: &InProcess) {
    let orgs = exp.exporter.orgs();
    let scope = Scope {
        orgs: &orgs,
        ..Scope::default()
    };
    let renderer = Renderer::default();
    let started = Instant::now();
    let body = renderer.render(&scope).unwrap();
    let first = started.elapsed();
    let mut samples = Vec::new();
    for _ in 0..200 {
        let started = Instant::now();
        std::hint::black_box(renderer.render(&scope).unwrap());
        samples.push(started.elapsed());
    }
    println!(
        "render[simulated orgs]: series={} bytes={} first={:.2}ms then p50={:.2}ms p99={:.2}ms",
        Exposition::parse(&body).series(),
        body.len(),
        ms(first),
        ms(percentile(&samples, 50.0)),
        ms(percentile(&samples, 99.0))
    );
}

fn main() {
    // `cargo bench` passes --bench; other arguments pick sections:
    // cold, cold-default, warm, churn, render, naive, million (all by default).
    let wanted: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    let run = |name: &str| wanted.is_empty() || wanted.iter().any(|w| w == name);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let sim = start_sim();
        println!(
            "scenario: orgs={ORGS} sessions_per_org={SESSIONS} latency={LATENCY_MS}ms cpus={}",
            std::thread::available_parallelism().map_or(1, |n| n.get())
        );
        let raised = cold(
            &sim,
            "DEVIN_MAX_REQUESTS_PER_SECOND=500, DEVIN_MAX_CONCURRENT_REQUESTS=64",
            &[
                ("DEVIN_MAX_REQUESTS_PER_SECOND", "500"),
                ("DEVIN_MAX_CONCURRENT_REQUESTS", "64"),
            ],
        )
        .await;
        println!("rss_after_cold={}MiB", rss_bytes() >> 20);
        if run("cold-default") {
            let default = cold(&sim, "defaults: 20 requests/s, 16 in flight", &[]).await;
            default.server.abort();
        }
        let mut warm_p50 = None;
        if run("warm") {
            warm_p50 = Some(warm(&sim, &raised, "1% changed", SESSIONS / 100).await);
            warm(&sim, &raised, "25 per org changed", 25).await;
        }
        if run("churn") {
            let scrape_p50 = churn(&sim, &raised, 20).await;
            let floor = bare_api(&sim, 20).await;
            println!(
                "churn: the exporter adds {:.1}ms to the API's own time at p50 ({:.2} round trips)",
                ms(scrape_p50.saturating_sub(floor)),
                ms(scrape_p50.saturating_sub(floor)) / LATENCY_MS as f64
            );
        }
        if run("render") {
            render_figures(&raised);
        }
        if run("naive") {
            let naive_p50 = naive(&sim).await;
            if let Some(w) = warm_p50 {
                println!(
                    "ratio: naive p50 / incremental warm p50 (1% changed) = {:.1}x",
                    naive_p50.as_secs_f64() / w.as_secs_f64()
                );
            }
        }
        println!("peak_rss={}MiB", peak_rss_bytes() >> 20);
        raised.server.abort();
        if run("million") {
            million().await;
        }
    });
}
