//! Load test of the multi-target pattern: 200 orgs probed through /probe, loopback only,
//! bounded in count and time. The exporter runs as its own process (default settings, orgs
//! from discovery) so that its RSS is its own. Run with `cargo bench --bench probe_load`.
//!
//! Each round probes every org once, spread evenly over a 10-second interval the way
//! Prometheus spreads targets over its scrape interval; the first round is the cold one.

mod support;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use support::{Exposition, Sim, ms, percentile};

const ORGS: usize = 200;
const ROUNDS: usize = 4;
const INTERVAL: Duration = Duration::from_secs(10);

struct Exporter {
    url: String,
    child: Child,
}

impl Drop for Exporter {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_exporter(sim: &Sim) -> Exporter {
    let mut child = Command::new(env!("CARGO_BIN_EXE_devin-exporter"))
        .env_clear()
        .env("DEVIN_API_URL", &sim.url)
        .env("DEVIN_API_TOKEN", "cog_bench")
        .env("DEVIN_DISCOVER_ORGS", "true")
        .env("DEVIN_LISTEN_ADDRESS", "127.0.0.1:0")
        .env("DEVIN_LOG_FORMAT", "json")
        .env("RUST_LOG", "warn,devin_exporter::http=info")
        .stderr(Stdio::piped())
        .spawn()
        .expect("exporter starts");
    let stderr = child.stderr.take().unwrap();
    let mut lines = BufReader::new(stderr).lines();
    let addr = loop {
        let line = lines.next().expect("exporter log").unwrap();
        let v: serde_json::Value = serde_json::from_str(&line).unwrap_or_default();
        if v["message"] == "listening" {
            break v["addr"].as_str().unwrap().to_string();
        }
    };
    // Keep draining the log so the exporter never blocks on a full pipe.
    std::thread::spawn(move || for _ in lines {});
    Exporter {
        url: format!("http://{addr}"),
        child,
    }
}

fn rss_mib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
        })
        .unwrap_or(0)
        >> 10
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let sim = Sim::start(&[
            "--speed", "0", "--seed", "9", "--orgs", "200", "--sessions-per-org", "200", "--latency", "50ms",
            "--token", "cog_bench",
        ]);
        assert_eq!(sim.orgs.len(), ORGS);
        let exporter = start_exporter(&sim);
        let pid = exporter.child.id();
        let client = reqwest::Client::new();
        println!("scenario: orgs={ORGS} sessions_per_org=200 latency=50ms, probes spread over {INTERVAL:?}, default settings (20 requests/s)");
        for round in 0..ROUNDS {
            let started = Instant::now();
            let tasks: Vec<_> = sim
                .orgs
                .iter()
                .enumerate()
                .map(|(i, org)| {
                    let url = format!("{}/probe?org_id={org}", exporter.url);
                    let client = client.clone();
                    let at = started + INTERVAL * i as u32 / ORGS as u32;
                    tokio::spawn(async move {
                        tokio::time::sleep_until(at.into()).await;
                        let (took, body) = support::timed_get(&client, &url, "10").await;
                        let up = Exposition::parse(&body).values("devin_up") == [1.0];
                        if !up {
                            eprintln!("probe without devin_up 1: {}", &body[..body.len().min(300)]);
                        }
                        (took, up)
                    })
                })
                .collect();
            let mut latencies = Vec::new();
            let mut ok = 0;
            for t in tasks {
                let (d, up) = t.await.unwrap();
                latencies.push(d);
                ok += usize::from(up);
            }
            println!(
                "round {round} ({}): probes={} up={ok} p50={:.1}ms p99={:.1}ms max={:.1}ms exporter_rss={}MiB",
                if round == 0 { "cold" } else { "warm" },
                latencies.len(),
                ms(percentile(&latencies, 50.0)),
                ms(percentile(&latencies, 99.0)),
                ms(*latencies.iter().max().unwrap()),
                rss_mib(pid)
            );
            // The next interval: a minute of simulated life.
            client.post(format!("{}/sim/advance?seconds=60", sim.url)).send().await.unwrap();
            let rest = INTERVAL.saturating_sub(started.elapsed());
            tokio::time::sleep(rest.min(Duration::from_secs(2))).await;
        }
    });
}
