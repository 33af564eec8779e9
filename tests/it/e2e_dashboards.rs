//! Every PromQL expression of every dashboard (panels and variables), and every alert and
//! recording rule, evaluated by a real Prometheus that scrapes the exporter running on the
//! simulator: each must parse, and each panel whose state the simulator produces must
//! return data.

use crate::common;
use crate::common::dashboards;

use std::path::Path;
use std::time::Duration;

use serde_json::Value;

use common::procs::{
    blocking_get, require_tool, sample_value, simulator, start_exporter_process, start_prometheus,
};

/// A wait condition: the first sample is at least `min`.
fn first_at_least(min: f64) -> impl Fn(&[Value]) -> bool {
    move |r| r.first().is_some_and(|v| sample_value(v) >= min)
}

#[test]
#[cfg_attr(
    not(has_prometheus),
    ignore = "needs prometheus: apt-get install prometheus"
)]
fn every_dashboard_query_runs_and_returns_data() {
    if !require_tool("prometheus") {
        return;
    }
    // A fast simulated clock so that sessions move between states while Prometheus watches.
    let sim = simulator("--orgs 3 --sessions-per-org 1500 --speed 120 --seed 21");
    // Every spend breakdown on, as the demo runs, so that the Spend row has data.
    let orgs = sim.orgs.join(",");
    let (mut exporter, url) = start_exporter_process(&[
        ("DEVIN_API_URL", &sim.url),
        ("DEVIN_API_TOKEN", &sim.token),
        ("DEVIN_ORG_IDS", &orgs),
        ("DEVIN_MAX_REQUESTS_PER_SECOND", "200"),
        ("DEVIN_ATTRIBUTION", "user,playbook,tag"),
    ]);
    let rules = ["alerts.yml", "recording.yml"].map(|f| format!("dashboards/prometheus/{f}"));
    let rules = rules.each_ref().map(Path::new);
    let prom = start_prometheus(&[url.trim_start_matches("http://").to_string()], &rules);
    let timeout = Duration::from_secs(90);

    prom.wait_for("devin_up", timeout, |r| r.len() == sim.orgs.len());
    // Billing is on by default (auto): every source read once, for the Billing row.
    prom.wait_for("devin_billing_up == 1", timeout, |r| r.len() == 4);
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
    let not_empty = |r: &[Value]| !r.is_empty();
    let blocked = r#"devin_sessions_entered_status_total{status="suspended", status_detail="out_of_credits"} > 0"#;
    prom.wait_for(blocked, timeout, not_empty);
    // Sessions seen entering error and suspended (after the first listing), and enough
    // samples for rate() and increase().
    let entered = r#"sum(devin_sessions_entered_status_total{status=~"error|suspended"})"#;
    prom.wait_for(entered, timeout, first_at_least(2.0));
    // Sessions seen ending, for the Lifecycle row's histograms.
    let ended = "sum(devin_ended_session_duration_seconds_count)";
    prom.wait_for(ended, timeout, first_at_least(2.0));
    let rate_limited = r#"devin_api_requests_total{code="429"}"#;
    prom.wait_for(rate_limited, timeout, not_empty);
    prom.wait_for("count_over_time(devin_up[5m])", timeout, |r| {
        r.iter().all(|v| sample_value(v) >= 15.0)
    });

    let mut checked = 0;
    let mut empty = Vec::new();
    for path in dashboards::dashboard_files() {
        let queries = dashboards::dashboard_queries(&path, &[]);
        assert!(!queries.is_empty(), "{} has queries", path.display());
        for (title, expr) in queries {
            let body = prom
                .query_raw(&expr)
                .unwrap_or_else(|e| panic!("{title}: {expr}: {e}"));
            let v: Value = serde_json::from_str(&body).unwrap();
            assert_eq!(v["status"], "success", "{title}: {expr}");
            // A scalar result is data too.
            let result = &v["data"]["result"];
            if result.is_null() || result.as_array().is_some_and(Vec::is_empty) {
                empty.push(format!("{} / {title}: {expr}", path.display()));
            }
            checked += 1;
        }
    }
    let report = empty.join("\n");
    assert!(empty.is_empty(), "queries without data:\n{report}");
    assert!(checked >= 30, "{checked} queries checked");

    // Every rule loaded and evaluates without error.
    let rules: Value =
        serde_json::from_str(&blocking_get(&format!("{}/api/v1/rules", prom.url))).unwrap();
    let rules = rules["data"]["groups"].as_array().unwrap().iter();
    let rules: Vec<&Value> = rules.flat_map(|g| g["rules"].as_array().unwrap()).collect();
    for rule in &rules {
        let (name, error) = (&rule["name"], &rule["lastError"]);
        assert_eq!(rule["health"], "ok", "{name}: {error}");
    }
    assert!(rules.len() >= 10, "{} rules", rules.len());
    exporter.assert_running();
}
