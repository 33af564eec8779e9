//! Fleet benchmark: many orgs at the default request budget (20 requests/s, 16 in flight),
//! scraped the way a Prometheus with a 10 s interval and a 10 s timeout scrapes. The README's
//! Performance section quotes its output. Run every section with `cargo bench --bench fleet`
//! (about 20 minutes), or name the ones to run:
//!
//!   orgs       500 orgs x 200 sessions, each org's own listing (`DEVIN_SESSION_SOURCE=orgs`)
//!   stream     the enterprise stream (`DEVIN_SESSION_SOURCE=enterprise`): 500 x 200, then
//!              5,000 orgs x 20 sessions; then 5,000 x 20 with billing off, at the simulator's
//!              rate of change and at a tenth of it per org (the 500 orgs' rate in all)
//!   auto       500 x 200 with the default `DEVIN_SESSION_SOURCE=auto`: which source it picks
//!   cold       the first listing of the 100,000 sessions of 500 x 200 (and of 5,000 x 20)
//!              in one long scrape: requests per page of data, time against pages / budget
//!   orgs-5000  5,000 x 20 with each org's own listing (not run by default: its first
//!              round alone is 5,000 requests, over 4 minutes)
//!
//! Every scenario runs the simulator as its own process (clock running, 50 ms added to every
//! API response) and the exporter in-process with default settings but for the variables it
//! prints. Billing is on by default and reads each org's consumption, one request per org
//! every 5 minutes, through the same budget: the billing-off runs show the session source
//! alone. Each scrape prints the orgs up, the age of the oldest org's data, how long the
//! scrape took and the API requests so far; a summary follows over the warm scrapes (those
//! after every org's first listing had completed), then the time to render every org.

mod support;

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use devin_exporter::metrics::{Renderer, Scope};
use support::{Exposition, InProcess, Sim, ms, percentile};

const INTERVAL: Duration = Duration::from_secs(10);
const LATENCY_MS: u64 = 50;
const PAGE: usize = 200;
/// The default request budget, requests per second.
const BUDGET: f64 = 20.0;

fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

fn start_sim(orgs: usize, sessions: usize, extra: &[&str]) -> Sim {
    let mut args = vec![
        "--seed".to_string(),
        "5".to_string(),
        "--orgs".to_string(),
        orgs.to_string(),
        "--sessions-per-org".to_string(),
        sessions.to_string(),
        "--latency".to_string(),
        format!("{LATENCY_MS}ms"),
        "--token".to_string(),
        "cog_bench".to_string(),
    ];
    args.extend(extra.iter().map(|a| a.to_string()));
    Sim::start(&args.iter().map(String::as_str).collect::<Vec<_>>())
}

/// A scenario: its size, the simulator's extra flags and the exporter's variables.
struct Spec<'a> {
    label: &'a str,
    orgs: usize,
    sessions: usize,
    sim: &'a [&'a str],
    vars: &'a [(&'a str, &'a str)],
}

fn describe(spec: &Spec<'_>) -> String {
    let vars = if spec.vars.is_empty() {
        "default settings".to_string()
    } else {
        spec.vars
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join(" ")
    };
    format!(
        "orgs={} sessions_per_org={} latency={LATENCY_MS}ms simulator {} budget=20 requests/s, 16 in flight; {vars}",
        spec.orgs,
        spec.sessions,
        if spec.sim.is_empty() {
            "defaults (30 new sessions per org per hour)".to_string()
        } else {
            spec.sim.join(" ")
        },
    )
}

/// What one scrape showed.
struct Seen {
    up: usize,
    complete: usize,
    oldest_age: f64,
    requests: f64,
    source: String,
}

fn read(body: &str, orgs: usize) -> Seen {
    let exposition = Exposition::parse(body);
    let up = exposition
        .values("devin_up")
        .iter()
        .filter(|v| **v == 1.0)
        .count();
    let complete = exposition
        .values("devin_initial_sync_complete")
        .iter()
        .filter(|v| **v == 1.0)
        .count();
    let last = exposition.values("devin_last_successful_scrape_timestamp_seconds");
    let oldest = last.iter().cloned().fold(f64::INFINITY, f64::min);
    let oldest_age = if last.len() < orgs {
        f64::NAN
    } else {
        unix_now() - oldest
    };
    let source = exposition
        .labels_where("devin_exporter_session_source", "source", 1.0)
        .pop()
        .unwrap_or_else(|| "undecided".to_string());
    Seen {
        up,
        complete,
        oldest_age,
        requests: exposition.sum("devin_api_requests_total"),
        source,
    }
}

fn median(v: &[f64]) -> f64 {
    let mut v = v.to_vec();
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied().unwrap_or(f64::NAN)
}

/// Scrapes `/metrics` every 10 s with a 10 s timeout, `scrapes` times, and prints what each
/// showed and a summary of the warm ones.
async fn scenario(spec: &Spec<'_>, scrapes: usize) {
    let (label, orgs) = (spec.label, spec.orgs);
    let sim = start_sim(orgs, spec.sessions, spec.sim);
    let exp = support::start_exporter(&sim, spec.vars).await;
    println!(
        "scenario[{label}]: {}; scrape every {}s with a 10s timeout",
        describe(spec),
        INTERVAL.as_secs(),
    );
    let client = reqwest::Client::new();
    let started = Instant::now();
    let mut ticks = tokio::time::interval(INTERVAL);
    let (mut took_warm, mut requests_warm, mut ages_warm) = (Vec::new(), Vec::new(), Vec::new());
    let (mut warm_all_up, mut collected_at, mut last_requests) = (true, None, 0.0);
    let mut was_complete = false;
    let mut source = String::new();
    for n in 1..=scrapes {
        ticks.tick().await;
        let (took, body) = support::timed_get(&client, &exp.url, "10").await;
        let seen = read(&body, orgs);
        println!(
            "scrape {n:2} at {:5.1}s: source={} up={}/{orgs} first_listing_complete={} \
             oldest_data_age={:.1}s scrape_duration={:.0}ms api_requests_so_far={}",
            started.elapsed().as_secs_f64(),
            seen.source,
            seen.up,
            seen.complete,
            seen.oldest_age,
            ms(took),
            seen.requests
        );
        if was_complete {
            took_warm.push(took);
            requests_warm.push(seen.requests - last_requests);
            ages_warm.push(seen.oldest_age);
            warm_all_up &= seen.up == orgs;
        }
        if seen.complete == orgs && collected_at.is_none() {
            collected_at = Some((n, started.elapsed()));
        }
        was_complete = seen.complete == orgs;
        last_requests = seen.requests;
        source = seen.source;
    }
    let worst = |v: &[f64]| v.iter().cloned().fold(f64::NAN, f64::max);
    let p50 = percentile(&took_warm, 50.0);
    println!(
        "summary[{label}]: source={source} every org listed by scrape {} ({:.0}s); {} warm scrapes, \
         all up on each={warm_all_up}; requests per warm scrape median={} mean={:.2} max={} \
         (target 3); scrape p50={:.0}ms ({:.2} round trips) p99={:.0}ms (target under 1000); \
         oldest data age median={:.1}s max={:.1}s (target {})",
        collected_at.map_or("-".to_string(), |(n, _)| n.to_string()),
        collected_at.map_or(f64::NAN, |(_, t)| t.as_secs_f64()),
        took_warm.len(),
        median(&requests_warm),
        requests_warm.iter().sum::<f64>() / requests_warm.len().max(1) as f64,
        worst(&requests_warm),
        ms(p50),
        ms(p50) / LATENCY_MS as f64,
        ms(percentile(&took_warm, 99.0)),
        median(&ages_warm),
        worst(&ages_warm),
        INTERVAL.as_secs(),
    );
    if let Some(down) = exp
        .exporter
        .orgs()
        .iter()
        .find(|o| o.state().health.up != Some(true))
    {
        println!(
            "down[{label}]: e.g. {}: {:?}",
            down.id,
            down.state().health.last_error
        );
    }
    render_figures(label, &exp);
    exp.server.abort();
}

/// The rendering part of a scrape: the org families of every org, as a scrape renders them.
fn render_figures(label: &str, exp: &InProcess) {
    let orgs = exp.exporter.orgs();
    let scope = Scope {
        orgs: &orgs,
        ..Scope::default()
    };
    let renderer = Renderer::default();
    let body = renderer.render(&scope).unwrap();
    let mut samples = Vec::new();
    for _ in 0..20 {
        let started = Instant::now();
        std::hint::black_box(renderer.render(&scope).unwrap());
        samples.push(started.elapsed());
    }
    println!(
        "render[{label}]: orgs={} series={} bytes={} p50={:.1}ms p99={:.1}ms",
        orgs.len(),
        Exposition::parse(&body).series(),
        body.len(),
        ms(percentile(&samples, 50.0)),
        ms(percentile(&samples, 99.0)),
    );
}

/// The first listing of every org in one scrape with a long timeout: how long until every
/// org's first listing completed, and its requests per page of data.
async fn cold(spec: &Spec<'_>) {
    let (label, orgs) = (spec.label, spec.orgs);
    let sim = start_sim(orgs, spec.sessions, spec.sim);
    let exp = support::start_exporter(&sim, spec.vars).await;
    println!("cold[{label}]: {}", describe(spec));
    let client = reqwest::Client::new();
    let started = Instant::now();
    let mut scrapes = 0;
    let body = loop {
        let (_, body) = support::timed_get(&client, &exp.url, "120").await;
        scrapes += 1;
        if read(&body, orgs).complete == orgs {
            break body;
        }
    };
    let took = started.elapsed();
    let exposition = Exposition::parse(&body);
    let requests = exposition.sum("devin_api_requests_total");
    let listed = exposition.sum("devin_sessions") as usize;
    let pages = listed.div_ceil(PAGE);
    let floor = pages as f64 / BUDGET;
    println!(
        "cold[{label}]: sessions={listed} pages_of_data={pages} requests={requests} \
         requests_per_page={:.3} (target 1.1) time={:.1}s scrapes={scrapes} pages/budget={floor:.1}s \
         ratio={:.3} (target 1.1)",
        requests / pages as f64,
        took.as_secs_f64(),
        took.as_secs_f64() / floor,
    );
    exp.server.abort();
}

fn main() {
    // `cargo bench` passes --bench; other arguments pick sections (see the top).
    let wanted: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    let run = |name: &str| wanted.is_empty() || wanted.iter().any(|w| w == name);
    let named = |name: &str| wanted.iter().any(|w| w == name);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    const ORGS: &[(&str, &str)] = &[("DEVIN_SESSION_SOURCE", "orgs")];
    const STREAM: &[(&str, &str)] = &[("DEVIN_SESSION_SOURCE", "enterprise")];
    // Billing reads each org's consumption (one request per org every 5 minutes) through the
    // same request budget: these leave it out, to show the session source alone.
    const ORGS_ONLY: &[(&str, &str)] =
        &[("DEVIN_SESSION_SOURCE", "orgs"), ("DEVIN_BILLING", "off")];
    const STREAM_ONLY: &[(&str, &str)] = &[
        ("DEVIN_SESSION_SOURCE", "enterprise"),
        ("DEVIN_BILLING", "off"),
    ];
    // 5,000 orgs changing as much in all as 500 orgs at the simulator's default rate.
    const SAME_RATE: &[&str] = &["--arrivals-per-hour", "3"];
    let spec = |label, orgs, sessions, sim, vars| Spec {
        label,
        orgs,
        sessions,
        sim,
        vars,
    };
    println!(
        "cpus={}",
        std::thread::available_parallelism().map_or(1, |n| n.get())
    );
    rt.block_on(async {
        if run("orgs") {
            scenario(&spec("orgs 500x200", 500, 200, &[], ORGS), 15).await;
        }
        if run("stream") {
            scenario(&spec("stream 500x200", 500, 200, &[], STREAM), 15).await;
            scenario(&spec("stream 5000x20", 5_000, 20, &[], STREAM), 15).await;
            scenario(
                &spec("stream 5000x20 billing off", 5_000, 20, &[], STREAM_ONLY),
                15,
            )
            .await;
            let same = spec(
                "stream 5000x20 billing off, 3 new per org per hour",
                5_000,
                20,
                SAME_RATE,
                STREAM_ONLY,
            );
            scenario(&same, 15).await;
        }
        if run("auto") {
            scenario(&spec("auto 500x200", 500, 200, &[], &[]), 8).await;
        }
        if run("cold") {
            cold(&spec("stream 500x200", 500, 200, &[], STREAM)).await;
            cold(&spec(
                "stream 500x200 billing off",
                500,
                200,
                &[],
                STREAM_ONLY,
            ))
            .await;
            cold(&spec(
                "stream 5000x20 billing off",
                5_000,
                20,
                &[],
                STREAM_ONLY,
            ))
            .await;
            cold(&spec("orgs 500x200 billing off", 500, 200, &[], ORGS_ONLY)).await;
        }
        if named("orgs-5000") {
            scenario(&spec("orgs 5000x20", 5_000, 20, &[], ORGS), 30).await;
        }
    });
}
