//! End to end with real processes: the simulator, the exporter binary, and a real Prometheus
//! scraping it every second. Skips (with a notice) without `prometheus` on PATH unless
//! `DEVIN_E2E_REQUIRED=1`.

use crate::common;

use std::process::Command;
use std::time::Duration;

use common::procs::{
    blocking_get, require_tool, run_with_input, sample_value, simulator, start_prometheus,
};

#[test]
#[cfg_attr(
    not(has_prometheus),
    ignore = "needs prometheus: apt-get install prometheus"
)]
fn prometheus_scrapes_the_exporter_and_totals_match_the_simulator() {
    if !require_tool("prometheus") {
        return;
    }
    // A busy simulated world (30 simulated seconds per second) so sessions change between scrapes.
    let sim = simulator("--orgs 3 --sessions-per-org 1500 --speed 30 --seed 11");
    let (mut exporter, url) = sim.start_exporter();
    let prom = start_prometheus(&[url.trim_start_matches("http://").to_string()], &[]);
    let timeout = Duration::from_secs(60);

    // Several scrapes, all successful.
    prom.wait_for(r#"count_over_time(up{job="devin"}[5m])"#, timeout, |r| {
        r.first().is_some_and(|v| sample_value(v) >= 4.0)
    });
    let up = prom.query(r#"up{job="devin"}"#);
    assert_eq!(up.len(), 1);
    assert_eq!(sample_value(&up[0]), 1.0, "scrape accepted: {up:?}");
    let devin_up = prom.wait_for("devin_up", timeout, |r| r.len() == sim.orgs.len());
    for series in &devin_up {
        assert_eq!(sample_value(series), 1.0, "{series}");
    }

    // Freeze the simulated world; the next scrapes catch up with it; then every org's totals
    // in Prometheus equal the simulator's own.
    let totals = prom.wait_for_sim_totals(&sim, timeout, |acus| 1e-3 + acus * 1e-9);
    for org in &totals {
        assert!(org["sessions"].as_f64().unwrap() >= 1500.0);
    }
    exporter.assert_running();
}

#[test]
#[cfg_attr(
    not(has_promtool),
    ignore = "needs promtool: apt-get install prometheus"
)]
fn promtool_accepts_a_live_metrics_body() {
    if !require_tool("promtool") {
        return;
    }
    let sim = simulator("--orgs 2 --sessions-per-org 800 --seed 5");
    let (_exporter, url) = sim.start_exporter();
    let body = blocking_get(&format!("{url}/metrics"));
    assert!(body.contains("devin_sessions{"), "session metrics present");
    let out = run_with_input(Command::new("promtool").args(["check", "metrics"]), &body);
    let printed = out.all();
    assert!(out.ok(), "promtool failed: {printed}");
    assert_eq!(printed.trim(), "");
}
