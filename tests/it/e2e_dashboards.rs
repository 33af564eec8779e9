//! Every PromQL expression of every dashboard (panels and variables), and every alert and
//! recording rule, evaluated by a real Prometheus that scrapes the exporter running on the
//! simulator: each must parse, and each panel whose state the simulator produces must
//! return data.

use crate::common;
use crate::common::dashboards;

use std::path::Path;
use std::time::Duration;

use common::procs::{
    require_tool, sample_value, start_exporter_process, start_prometheus, start_simulator,
};

#[test]
fn every_dashboard_query_runs_and_returns_data() {
    if !require_tool("prometheus") {
        return;
    }
    // A fast simulated clock so that sessions move between states while Prometheus watches.
    let sim = start_simulator(&[
        "--orgs",
        "3",
        "--sessions-per-org",
        "1500",
        "--speed",
        "120",
        "--seed",
        "21",
    ]);
    // Every spend breakdown on, as the demo runs, so that the Spend row has data.
    let orgs = sim.orgs.join(",");
    let (mut exporter, url) = start_exporter_process(&[
        ("DEVIN_API_URL", &sim.url),
        ("DEVIN_API_TOKEN", &sim.token),
        ("DEVIN_ORG_IDS", &orgs),
        ("DEVIN_MAX_REQUESTS_PER_SECOND", "200"),
        ("DEVIN_ATTRIBUTION", "user,playbook,tag"),
    ]);
    let rules = [
        Path::new("dashboards/prometheus/alerts.yml"),
        Path::new("dashboards/prometheus/recording.yml"),
    ];
    let prom = start_prometheus(&[url.trim_start_matches("http://").to_string()], &rules);
    let timeout = Duration::from_secs(90);

    prom.wait_for("devin_up", timeout, |r| r.len() == sim.orgs.len());
    // A rate-limited request, so that the 429 panels have something to show.
    sim.admin_json(
        "/sim/faults",
        r#"{"org_id": null, "kind": {"rate_limit": {"retry_after_seconds": 1}}, "count": 1}"#,
    );
    // A session suspended for a reason that blocks its org, and one in error, for the
    // annotations that mark them.
    for query in [
        "status=suspended&status_detail=out_of_credits",
        "status=error",
    ] {
        let changed = sim.admin(&format!("/sim/transition?org_id={}&{query}", sim.orgs[0]));
        assert_eq!(changed["changed"], 1, "{query}: {changed}");
    }
    prom.wait_for(
        r#"devin_sessions_entered_status_total{status="suspended", status_detail="out_of_credits"} > 0"#,
        timeout,
        |r| !r.is_empty(),
    );
    // Sessions seen entering error and suspended (after the first listing), and enough
    // samples for rate() and increase().
    prom.wait_for(
        r#"sum(devin_sessions_entered_status_total{status=~"error|suspended"})"#,
        timeout,
        |r| r.first().is_some_and(|v| sample_value(v) >= 2.0),
    );
    // Sessions seen ending, for the Lifecycle row's histograms.
    prom.wait_for(
        "sum(devin_ended_session_duration_seconds_count)",
        timeout,
        |r| r.first().is_some_and(|v| sample_value(v) >= 2.0),
    );
    prom.wait_for(r#"devin_api_requests_total{code="429"}"#, timeout, |r| {
        !r.is_empty()
    });
    prom.wait_for(r#"count_over_time(devin_up[5m])"#, timeout, |r| {
        r.iter().all(|v| sample_value(v) >= 15.0)
    });

    let mut checked = 0;
    let mut empty = Vec::new();
    for entry in std::fs::read_dir("dashboards/grafana").unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|e| e != "json") {
            continue;
        }
        let queries = dashboards::dashboard_queries(&path);
        assert!(!queries.is_empty(), "{} has queries", path.display());
        for (title, expr) in queries {
            let body = prom
                .query_raw(&expr)
                .unwrap_or_else(|e| panic!("{title}: {expr}: {e}"));
            let v: serde_json::Value = serde_json::from_str(&body).unwrap();
            assert_eq!(v["status"], "success", "{title}: {expr}");
            let has_data = match &v["data"]["result"] {
                serde_json::Value::Array(a) => !a.is_empty(),
                serde_json::Value::Null => false,
                _ => true, // scalar results
            };
            if !has_data {
                empty.push(format!("{} / {title}: {expr}", path.display()));
            }
            checked += 1;
        }
    }
    assert!(
        empty.is_empty(),
        "queries without data:\n{}",
        empty.join("\n")
    );
    assert!(checked >= 30, "{checked} queries checked");

    // Every rule loaded and evaluates without error.
    let rules = common::procs::blocking_get(&format!("{}/api/v1/rules", prom.url));
    let rules: serde_json::Value = serde_json::from_str(&rules).unwrap();
    let mut evaluated = 0;
    for group in rules["data"]["groups"].as_array().unwrap() {
        for rule in group["rules"].as_array().unwrap() {
            assert_eq!(
                rule["health"], "ok",
                "{}: {}",
                rule["name"], rule["lastError"]
            );
            evaluated += 1;
        }
    }
    assert!(evaluated >= 10, "{evaluated} rules");
    exporter.assert_running();
}
