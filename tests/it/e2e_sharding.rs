//! Prometheus-native sharding end to end: two exporter replicas discover ten simulated orgs,
//! one real Prometheus finds them through /sd and spreads them over the replicas by hashmod
//! through /probe. Every org is collected by exactly one replica, with the simulator's totals.

use crate::common;

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use common::procs::{
    blocking_get, require_tool, run, sample_value, simulator, start_exporter_process,
    start_prometheus_with,
};

/// Orgs a replica has collected, from its landing page: the rows with a probe link (the
/// page has other tables, billing's among them).
fn collected_orgs(landing: &str) -> BTreeSet<String> {
    landing
        .split("<tr><td>")
        .skip(1)
        .filter(|row| row.contains("/probe?org_id="))
        .filter(|row| !row.contains("not collected yet"))
        .filter_map(|row| row.split("</td>").next().map(String::from))
        .collect()
}

#[test]
#[cfg_attr(
    not(has_prometheus),
    ignore = "needs prometheus: apt-get install prometheus"
)]
fn two_replicas_share_ten_orgs_by_hashmod() {
    if !require_tool("prometheus") {
        return;
    }
    let sim = simulator("--orgs 10 --sessions-per-org 300 --seed 3 --speed 20");
    assert_eq!(sim.orgs.len(), 10);
    let replica = || {
        start_exporter_process(&[
            ("DEVIN_API_URL", &sim.url),
            ("DEVIN_API_TOKEN", &sim.token),
            ("DEVIN_DISCOVER_ORGS", "true"),
            ("DEVIN_SESSION_SOURCE", "orgs"),
            ("DEVIN_MAX_REQUESTS_PER_SECOND", "200"),
        ])
    };
    let (mut a, url_a) = replica();
    let (mut b, url_b) = replica();
    let host_a = url_a.trim_start_matches("http://");
    let host_b = url_b.trim_start_matches("http://");
    let jobs = format!(
        r#"  - job_name: devin
    metrics_path: /probe
    http_sd_configs:
      - url: {url_a}/sd
        refresh_interval: 2s
    relabel_configs:
      - source_labels: [__address__]
        target_label: __param_org_id
      - source_labels: [__param_org_id]
        target_label: instance
      - source_labels: [__param_org_id]
        modulus: 2
        target_label: __tmp_shard
        action: hashmod
      - source_labels: [__tmp_shard]
        regex: "0"
        target_label: __address__
        replacement: {host_a}
      - source_labels: [__tmp_shard]
        regex: "1"
        target_label: __address__
        replacement: {host_b}
      - source_labels: [__tmp_shard]
        target_label: replica
"#
    );
    let prom = start_prometheus_with(&jobs, &[]);
    let timeout = Duration::from_secs(60);

    let up = prom.wait_for("devin_up", timeout, |r| {
        r.len() == 10 && r.iter().all(|s| sample_value(s) == 1.0)
    });
    let mut by_replica: BTreeMap<&str, BTreeSet<String>> = BTreeMap::new();
    for s in &up {
        let [replica, org] = ["replica", "org_id"].map(|l| s["metric"][l].as_str().unwrap());
        by_replica.entry(replica).or_default().insert(org.into());
    }
    assert_eq!(by_replica.len(), 2, "{by_replica:?}");
    // Each org has exactly one series per metric: one replica scrapes it.
    let counts = prom.query("count by (org_id) (devin_up)");
    assert_eq!(counts.len(), 10);
    assert!(counts.iter().all(|s| sample_value(s) == 1.0), "{counts:?}");

    // Each replica collected exactly its own shard, no more.
    let landing_a = collected_orgs(&blocking_get(&url_a));
    let landing_b = collected_orgs(&blocking_get(&url_b));
    assert_eq!(landing_a, by_replica["0"], "replica 0");
    assert_eq!(landing_b, by_replica["1"], "replica 1");
    assert!(landing_a.is_disjoint(&landing_b));
    assert_eq!(landing_a.len() + landing_b.len(), 10);

    // Totals per org equal the simulator's once its clock stops.
    for org in prom.wait_for_sim_totals(&sim, timeout, |_| 1e-3) {
        let id = org["org_id"].as_str().unwrap();
        // Names joined from discovery.
        let info = prom.query(&format!(r#"devin_org_info{{org_id="{id}"}}"#));
        assert_eq!(info.len(), 1);
        assert_eq!(info[0]["metric"]["name"], org["name"]);
    }
    a.assert_running();
    b.assert_running();
}

#[test]
#[cfg_attr(
    not(has_promtool),
    ignore = "needs promtool: apt-get install prometheus"
)]
fn sharding_examples_are_valid_prometheus_configs() {
    if !require_tool("promtool") {
        return;
    }
    for file in [
        "examples/prometheus/multi-target.yml",
        "examples/prometheus/sharded.yml",
    ] {
        let out = run(std::process::Command::new("promtool").args(["check", "config", file]));
        assert!(out.ok(), "{file}: {}", out.all());
    }
}
