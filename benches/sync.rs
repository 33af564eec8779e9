//! Sync and rendering benchmark. Run with `cargo bench --bench sync`; prints the figures the
//! README's Performance section quotes. Sections:
//!   state   bytes of state per session at 100,000 and 1,000,000 sessions, without and with
//!           the three spend breakdowns (DEVIN_ATTRIBUTION=user,playbook,tag)
//!   render  time to render /metrics for 5 orgs x 20,000 sessions, likewise
//!   series  memory and CPU per exposed series for 500 orgs, gzip included
//! Pass section names as arguments to run only those.

mod support;

use std::sync::Arc;
use std::time::Instant;

use devin_exporter::api::SessionPage;
use devin_exporter::config::Attribution;
use devin_exporter::metrics::{Renderer, Scope};
use devin_exporter::sync::spend::SpendSettings;
use devin_exporter::sync::{Org, SessionStore, Transitions};
use support::{CountingAlloc, Exposition, live_bytes, ms, percentile, synthetic_page};

#[global_allocator]
static ALLOC: CountingAlloc = CountingAlloc;

fn fill(store: &mut SessionStore, sessions: u64) {
    let mut start = 0;
    while start < sessions {
        let n = 200.min(sessions - start);
        let body = synthetic_page(start, n);
        let page = SessionPage::from_str(&body).expect("synthetic page parses");
        for s in &page.items {
            store.upsert(s, 1, Transitions::Ignored);
        }
        start += n;
    }
}

/// Store settings: defaults (top 5 active sessions), with or without every breakdown.
fn settings(attribution: bool) -> SpendSettings {
    SpendSettings {
        attribution: if attribution {
            Attribution::ALL
        } else {
            Attribution::default()
        },
        attribution_max_values: 500,
        top_active_sessions: 5,
    }
}

fn state(sizes: &[u64], attribution: bool) {
    println!("## state size (attribution={attribution})");
    for &n in sizes {
        let before = live_bytes();
        let mut store = SessionStore::default();
        store.set_spend_settings(settings(attribution));
        let started = Instant::now();
        fill(&mut store, n);
        let load = started.elapsed();
        store.shrink_to_fit();
        let bytes = live_bytes() - before;
        println!(
            "state: attribution={attribution} sessions={n} bytes={bytes} bytes_per_session={:.1} load={:.0}ms ({:.0} sessions/s applied, JSON parse included)",
            bytes as f64 / n as f64,
            load.as_secs_f64() * 1e3,
            n as f64 / load.as_secs_f64()
        );
        assert_eq!(store.len() as u64, n);
    }
    println!("peak_rss_bytes={}", support::peak_rss_bytes());
}

fn render_bench(attribution: bool) {
    println!("## render /metrics (attribution={attribution})");
    let orgs: Vec<Arc<Org>> = (0..5)
        .map(|i| {
            let org = Arc::new(Org::new(format!("org-bench-{i}")));
            {
                let mut st = org.state();
                st.store.set_spend_settings(settings(attribution));
                fill(&mut st.store, 20_000);
                st.store.start_spend_counters();
                st.initial_complete = true;
            }
            org
        })
        .collect();
    let scope = Scope {
        orgs: &orgs,
        ..Scope::default()
    };
    // The first render builds every series; later ones update values (what /metrics does).
    let renderer = Renderer::default();
    let started = Instant::now();
    let body = renderer.render(&scope).expect("renders");
    let first = started.elapsed();
    let series = Exposition::parse(&body).series();
    let mut samples = Vec::new();
    for _ in 0..200 {
        let started = Instant::now();
        let body = renderer.render(&scope).expect("renders");
        samples.push(started.elapsed());
        std::hint::black_box(body);
    }
    println!(
        "render: attribution={attribution} orgs=5 sessions=100000 series={series} bytes={} first={:.2}ms then p50={:.2}ms p99={:.2}ms",
        body.len(),
        ms(first),
        ms(percentile(&samples, 50.0)),
        ms(percentile(&samples, 99.0))
    );
}

/// 500 orgs of 150 sessions each: about 290 session series per org, as at fleet scale.
fn series_bench() {
    println!("## series: bytes and render CPU per exposed series");
    let before = live_bytes();
    let orgs: Vec<Arc<Org>> = (0..500)
        .map(|i| {
            let org = Arc::new(Org::new(format!("org-fleet-{i:04}")));
            {
                let mut st = org.state();
                let body = synthetic_page(i * 150, 150);
                let page = SessionPage::from_str(&body).expect("synthetic page parses");
                for s in &page.items {
                    st.store.upsert(s, 1, Transitions::Ignored);
                }
                st.initial_complete = true;
            }
            org
        })
        .collect();
    let state_bytes = live_bytes() - before;
    let scope = Scope {
        orgs: &orgs,
        ..Scope::default()
    };
    let renderer = Renderer::default();
    let before_render = live_bytes();
    let rss_before_render = support::rss_bytes();
    let body = renderer.render(&scope).expect("renders");
    drop(body);
    // What the renderer keeps between scrapes, per exposed series.
    let kept = live_bytes().saturating_sub(before_render);
    let rounds = 30;
    let cpu = support::cpu_time();
    let mut bytes = 0;
    for _ in 0..rounds {
        let body = renderer.render(&scope).expect("renders");
        bytes = body.len();
        std::hint::black_box(body);
    }
    let render_cpu = support::cpu_time() - cpu;
    let cpu = support::cpu_time();
    let mut gz_bytes = 0;
    for _ in 0..rounds {
        let body = renderer.render(&scope).expect("renders");
        let gz = devin_exporter::http::compress::gzip(body.as_bytes());
        gz_bytes = gz.len();
        std::hint::black_box(gz);
    }
    let gzip_cpu = support::cpu_time() - cpu;
    // What rendering adds to the process: its buffers, and what the allocator keeps of them.
    let render_rss = support::rss_bytes().saturating_sub(rss_before_render);
    // Counted only now: the parser's own allocations must not count as rendering's.
    let series = Exposition::parse(&renderer.render(&scope).expect("renders")).series();
    let per_series = |d: std::time::Duration| d.as_secs_f64() * 1e6 / (rounds * series) as f64;
    println!(
        "series: orgs=500 series={series} body={bytes} gzip={gz_bytes} state_bytes={state_bytes} kept_by_renderer={kept} kept_per_series={:.1}B render_cpu_per_series={:.3}us with_gzip={:.3}us rss={:.1}MiB rss_added_by_rendering_per_series={:.0}B",
        kept as f64 / series as f64,
        per_series(render_cpu),
        per_series(gzip_cpu),
        support::rss_bytes() as f64 / (1 << 20) as f64,
        render_rss as f64 / series as f64,
    );
}

fn main() {
    // `cargo bench` passes --bench; anything else names sections.
    let wanted: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    let run = |name: &str| wanted.is_empty() || wanted.iter().any(|w| w == name);
    for attribution in [false, true] {
        if run("state") {
            state(&[100_000, 1_000_000], attribution);
        }
        if run("render") {
            render_bench(attribution);
        }
    }
    if run("series") {
        series_bench();
    }
}
