//! Static checks of the monitoring artefacts under `dashboards/` and `examples/compose/`:
//! the Grafana dashboards (structure, units, descriptions, data source, and every PromQL
//! expression against the exporter's metric contract), the Prometheus rules (contract,
//! severities, runbook annotations, a unit test per alert), and `promtool check rules` /
//! `promtool test rules`, plus every dashboard expression evaluated by promtool on
//! synthetic series.
//!
//! The promtool tests print a notice and pass when promtool is not installed
//! (`apt-get install prometheus`), unless `DEVIN_E2E_REQUIRED=1`, where they fail.

#[path = "common/dashboards.rs"]
mod dashboards;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::{Value, json};

use dashboards::{
    all_panels, dashboard_queries, default_values, load, metric_names, raw_queries, selectors,
    substitute, variable_expr, variables,
};

/// The exporter's metrics and their labels (target labels `job` and `instance` come on top).
const CONTRACT: &[(&str, &[&str])] = &[
    (
        "devin_sessions",
        &["org_id", "status", "status_detail", "origin", "category"],
    ),
    (
        "devin_sessions_acus_consumed",
        &["org_id", "status", "status_detail", "origin", "category"],
    ),
    ("devin_acus_consumed_total", &["org_id"]),
    ("devin_sessions_created_total", &["org_id", "origin"]),
    (
        "devin_sessions_entered_status_total",
        &["org_id", "status", "status_detail"],
    ),
    ("devin_session_pull_requests", &["org_id", "pr_state"]),
    ("devin_sessions_archived", &["org_id"]),
    (
        "devin_sessions_oldest_update_timestamp_seconds",
        &["org_id", "status", "status_detail"],
    ),
    ("devin_up", &["org_id"]),
    ("devin_initial_sync_complete", &["org_id"]),
    ("devin_scrape_duration_seconds", &["org_id"]),
    (
        "devin_last_successful_scrape_timestamp_seconds",
        &["org_id"],
    ),
    ("devin_api_requests_total", &["org_id", "code"]),
    (
        "devin_api_request_duration_seconds_bucket",
        &["org_id", "le"],
    ),
    ("devin_api_request_duration_seconds_sum", &["org_id"]),
    ("devin_api_request_duration_seconds_count", &["org_id"]),
    ("devin_exporter_build_info", &["version", "revision"]),
    ("devin_user_sessions", &["org_id", "user_id", "status"]),
    ("devin_user_acus_consumed", &["org_id", "user_id"]),
    ("devin_user_acus_consumed_total", &["org_id", "user_id"]),
    (
        "devin_playbook_sessions",
        &["org_id", "playbook_id", "status"],
    ),
    ("devin_playbook_acus_consumed", &["org_id", "playbook_id"]),
    (
        "devin_playbook_acus_consumed_total",
        &["org_id", "playbook_id"],
    ),
    ("devin_tag_sessions", &["org_id", "tag", "status"]),
    ("devin_tag_acus_consumed", &["org_id", "tag"]),
    ("devin_tag_acus_consumed_total", &["org_id", "tag"]),
    (
        "devin_ended_session_duration_seconds_bucket",
        &["org_id", "origin", "status", "le"],
    ),
    (
        "devin_ended_session_duration_seconds_sum",
        &["org_id", "origin", "status"],
    ),
    (
        "devin_ended_session_duration_seconds_count",
        &["org_id", "origin", "status"],
    ),
    (
        "devin_ended_session_acus_bucket",
        &["org_id", "origin", "status", "le"],
    ),
    (
        "devin_ended_session_acus_sum",
        &["org_id", "origin", "status"],
    ),
    (
        "devin_ended_session_acus_count",
        &["org_id", "origin", "status"],
    ),
    (
        "devin_active_session_acus_consumed",
        &["org_id", "session_id", "url"],
    ),
    // Prometheus' own per-target metric.
    ("up", &[]),
];

/// Labels every series has from its scrape target.
const TARGET_LABELS: &[&str] = &["job", "instance", "__name__"];

const DATASOURCE_UID: &str = "${datasource}";

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn files_with_extension(dir: &Path, ext: &str) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_file() && p.extension().and_then(|e| e.to_str()) == Some(ext))
        .collect();
    files.sort();
    files
}

fn dashboard_files() -> Vec<PathBuf> {
    let files = files_with_extension(&root().join("dashboards/grafana"), "json");
    assert!(!files.is_empty(), "no dashboards/grafana/*.json");
    files
}

fn rules_dir() -> PathBuf {
    root().join("dashboards/prometheus")
}

fn rule_test_files() -> Vec<PathBuf> {
    let files = files_with_extension(&rules_dir().join("tests"), "yml");
    assert!(!files.is_empty(), "no dashboards/prometheus/tests/*.yml");
    files
}

// ---------------------------------------------------------------------------------------
// Rule files, read as text (no YAML parser here): the entries that start with
// `- record:` or `- alert:`, each with the lines indented below it.

#[derive(Debug)]
struct RuleEntry {
    name: String,
    expr: String,
    block: String,
}

fn rule_entries(text: &str, key: &str) -> Vec<RuleEntry> {
    let marker = format!("- {key}:");
    let lines: Vec<&str> = text.lines().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        let line = lines[i];
        let trimmed = line.trim_start();
        if !trimmed.starts_with(&marker) {
            i += 1;
            continue;
        }
        let indent = line.len() - trimmed.len();
        let name = unquote(trimmed[marker.len()..].trim());
        let mut block = vec![line];
        i += 1;
        while i < lines.len() {
            let l = lines[i];
            let t = l.trim_start();
            if !t.is_empty() && !t.starts_with('#') && l.len() - t.len() <= indent {
                break;
            }
            block.push(l);
            i += 1;
        }
        let expr = yaml_value(&block, "expr").unwrap_or_default();
        out.push(RuleEntry {
            name,
            expr,
            block: block.join("\n"),
        });
    }
    out
}

/// The value of `key:` within the block: inline, or a `|` / `>` block scalar.
fn yaml_value(block: &[&str], key: &str) -> Option<String> {
    let prefix = format!("{key}:");
    for (n, line) in block.iter().enumerate() {
        let trimmed = line.trim_start();
        let keyed = trimmed.strip_prefix("- ").unwrap_or(trimmed);
        let Some(rest) = keyed.strip_prefix(&prefix) else {
            continue;
        };
        let rest = rest.trim();
        if rest.starts_with('|') || rest.starts_with('>') {
            let indent = line.len() - trimmed.len();
            let body: Vec<&str> = block[n + 1..]
                .iter()
                .take_while(|l| l.trim().is_empty() || l.len() - l.trim_start().len() > indent)
                .map(|l| l.trim())
                .collect();
            return Some(
                body.join(if rest.starts_with('|') { "\n" } else { " " })
                    .trim()
                    .to_string(),
            );
        }
        return Some(unquote(rest));
    }
    None
}

fn unquote(s: &str) -> String {
    let s = s.trim();
    if s.len() >= 2
        && (s.starts_with('"') && s.ends_with('"') || s.starts_with('\'') && s.ends_with('\''))
    {
        s[1..s.len() - 1].to_string()
    } else {
        s.to_string()
    }
}

fn recording_rules() -> Vec<RuleEntry> {
    rule_entries(&read(&rules_dir().join("recording.yml")), "record")
}

fn alert_rules() -> Vec<RuleEntry> {
    rule_entries(&read(&rules_dir().join("alerts.yml")), "alert")
}

// ---------------------------------------------------------------------------------------
// Known metrics: the contract, process_*, and the recording rules.

struct Known {
    labels: BTreeMap<String, BTreeSet<String>>,
}

impl Known {
    fn contract() -> Known {
        let labels = CONTRACT
            .iter()
            .map(|(m, ls)| (m.to_string(), ls.iter().map(|l| l.to_string()).collect()))
            .collect();
        Known { labels }
    }

    /// The contract plus the recording rules, each rule's labels from its `by (...)` or,
    /// without one, from the metric it reads. Panics on a rule reading an unknown metric.
    fn with_recording_rules() -> Known {
        let mut known = Known::contract();
        for rule in recording_rules() {
            let problems = known.check_expr(&rule.expr);
            assert!(
                problems.is_empty(),
                "recording rule {}: {problems:?}",
                rule.name
            );
            let labels: BTreeSet<String> = match grouping_labels(&rule.expr) {
                Some(labels) => labels,
                None => metric_names(&rule.expr)
                    .iter()
                    .flat_map(|m| known.labels_of(m).unwrap())
                    .collect(),
            };
            known.labels.insert(rule.name.clone(), labels);
        }
        known
    }

    fn labels_of(&self, metric: &str) -> Option<BTreeSet<String>> {
        if metric.starts_with("process_") {
            return Some(BTreeSet::new());
        }
        self.labels.get(metric).cloned()
    }

    /// Problems of an expression: unknown metrics, label matchers on labels the metric
    /// does not have, variables left unsubstituted.
    fn check_expr(&self, expr: &str) -> Vec<String> {
        let mut problems = Vec::new();
        if let Some(i) = expr.find('$') {
            problems.push(format!("unsubstituted variable at {:?}", &expr[i..]));
        }
        for selector in selectors(expr) {
            let Some(metric) = selector.metric else {
                continue;
            };
            let Some(labels) = self.labels_of(&metric) else {
                problems.push(format!("unknown metric {metric}"));
                continue;
            };
            for label in &selector.labels {
                if !labels.contains(label) && !TARGET_LABELS.contains(&label.as_str()) {
                    problems.push(format!("{metric} has no label {label}"));
                }
            }
        }
        problems
    }
}

/// The labels of the first `by (...)` of an expression.
fn grouping_labels(expr: &str) -> Option<BTreeSet<String>> {
    let start = expr.find("by (")? + 4;
    let end = start + expr[start..].find(')')?;
    Some(
        expr[start..end]
            .split(',')
            .map(|l| l.trim().to_string())
            .filter(|l| !l.is_empty())
            .collect(),
    )
}

// ---------------------------------------------------------------------------------------
// The dashboard checker.

fn is_our_datasource(value: &Value) -> bool {
    match value {
        Value::String(s) => s == DATASOURCE_UID || s == "$datasource",
        Value::Object(o) => {
            o.get("uid").and_then(Value::as_str) == Some(DATASOURCE_UID)
                && o.get("type")
                    .and_then(Value::as_str)
                    .is_none_or(|t| t == "prometheus")
        }
        _ => false,
    }
}

/// Every `datasource` anywhere in the JSON that is not the `${datasource}` variable.
fn hard_coded_datasources(value: &Value, path: &str, out: &mut Vec<String>) {
    match value {
        Value::Object(o) => {
            for (k, v) in o {
                let here = format!("{path}.{k}");
                if k == "datasource" && !is_our_datasource(v) {
                    out.push(format!("{here} is {v}, not {DATASOURCE_UID}"));
                }
                hard_coded_datasources(v, &here, out);
            }
        }
        Value::Array(a) => {
            for (i, v) in a.iter().enumerate() {
                hard_coded_datasources(v, &format!("{path}[{i}]"), out);
            }
        }
        _ => {}
    }
}

fn non_empty_str(value: &Value) -> Option<&str> {
    value.as_str().filter(|s| !s.trim().is_empty())
}

/// Every problem of a dashboard; `stem` is its file name without `.json`.
fn check_dashboard(stem: &str, dashboard: &Value, known: &Known) -> Vec<String> {
    let mut problems = Vec::new();
    if dashboard["uid"].as_str() != Some(stem) {
        problems.push(format!(
            "uid {} is not the file name {stem}",
            dashboard["uid"]
        ));
    }
    if non_empty_str(&dashboard["title"]).is_none() {
        problems.push("dashboard has no title".into());
    }
    if dashboard["schemaVersion"].as_u64().unwrap_or(0) < 39 {
        problems.push(format!("schemaVersion {} < 39", dashboard["schemaVersion"]));
    }

    // Template variables.
    let vars = variables(dashboard);
    let var = |name: &str| vars.iter().find(|v| v["name"] == name).copied();
    match var("datasource") {
        Some(v) if v["type"] == "datasource" && v["query"] == "prometheus" => {}
        _ => problems.push("no datasource variable of type datasource, query prometheus".into()),
    }
    match var("org_id") {
        Some(v)
            if v["type"] == "query"
                && dashboards::variable_query(v).map(str::trim)
                    == Some("label_values(devin_up, org_id)")
                && v["multi"] == true
                && v["includeAll"] == true => {}
        _ => problems.push(
            "no org_id variable: query label_values(devin_up, org_id), multi, includeAll".into(),
        ),
    }

    // Panels.
    let mut ids = BTreeSet::new();
    for panel in all_panels(dashboard) {
        let title = panel["title"].as_str().unwrap_or("");
        let name = format!("panel {} {title:?}", panel["id"]);
        match panel["id"].as_u64() {
            Some(id) if !ids.insert(id) => problems.push(format!("{name}: duplicate id {id}")),
            Some(_) => {}
            None => problems.push(format!("{name}: no numeric id")),
        }
        if title.trim().is_empty() {
            problems.push(format!("{name}: no title"));
        }
        if non_empty_str(&panel["description"]).is_none() {
            problems.push(format!("{name}: no description"));
        }
        let grid = &panel["gridPos"];
        let (x, w) = (grid["x"].as_u64(), grid["w"].as_u64());
        match (x, w, grid["h"].as_u64(), grid["y"].as_u64()) {
            (Some(x), Some(w), Some(_), Some(_)) if x + w <= 24 && w > 0 => {}
            _ => problems.push(format!("{name}: gridPos {grid} outside the 24 columns")),
        }
        if panel["type"] == "row" {
            continue;
        }
        if non_empty_str(&panel["fieldConfig"]["defaults"]["unit"]).is_none() {
            problems.push(format!("{name}: no unit in fieldConfig.defaults.unit"));
        }
        if !is_our_datasource(&panel["datasource"]) {
            problems.push(format!("{name}: datasource is not {DATASOURCE_UID}"));
        }
        let targets = panel["targets"].as_array().cloned().unwrap_or_default();
        if targets.is_empty() {
            problems.push(format!("{name}: no targets"));
        }
        let mut ref_ids = BTreeSet::new();
        for target in &targets {
            if !is_our_datasource(&target["datasource"]) {
                problems.push(format!(
                    "{name}: a target's datasource is not {DATASOURCE_UID}"
                ));
            }
            if non_empty_str(&target["expr"]).is_none() {
                problems.push(format!("{name}: a target has no expr"));
            }
            if !ref_ids.insert(target["refId"].to_string()) {
                problems.push(format!("{name}: duplicate refId {}", target["refId"]));
            }
        }
    }

    let mut hard_coded = Vec::new();
    hard_coded_datasources(dashboard, "$", &mut hard_coded);
    problems.extend(hard_coded);

    // Expressions.
    let values = default_values(dashboard);
    for (title, expr) in raw_queries(dashboard) {
        let expr = substitute(&expr, &values);
        for problem in known.check_expr(&expr) {
            problems.push(format!("{title:?}: {problem} in {expr}"));
        }
    }
    problems
}

fn stem(path: &Path) -> String {
    path.file_stem().unwrap().to_string_lossy().into_owned()
}

#[test]
fn every_dashboard_passes_the_static_checks() {
    let known = Known::with_recording_rules();
    for path in dashboard_files() {
        let dashboard = load(&path);
        let problems = check_dashboard(&stem(&path), &dashboard, &known);
        assert!(
            problems.is_empty(),
            "{}:\n  {}",
            path.display(),
            problems.join("\n  ")
        );
    }
}

#[test]
fn the_overview_keeps_its_uid_rows_and_filters() {
    let dashboard = load(&root().join("dashboards/grafana/devin-overview.json"));
    assert_eq!(dashboard["uid"], "devin-overview");
    let rows: Vec<&str> = all_panels(&dashboard)
        .into_iter()
        .filter(|p| p["type"] == "row")
        .map(|p| p["title"].as_str().unwrap())
        .collect();
    assert_eq!(
        rows,
        [
            "Health",
            "Sessions",
            "ACUs",
            "Activity",
            "Exporter & API",
            "Spend",
            "Lifecycle"
        ]
    );
    let names: Vec<&str> = variables(&dashboard)
        .iter()
        .map(|v| v["name"].as_str().unwrap())
        .collect();
    for name in ["datasource", "org_id", "origin", "category"] {
        assert!(names.contains(&name), "variable {name} missing: {names:?}");
    }
    // Every panel honours the org filter.
    for (title, expr) in raw_queries(&dashboard) {
        if title.starts_with("variable ") || expr.contains("job=~\"$job\"") {
            continue;
        }
        assert!(expr.contains("org_id=~\"$org_id\""), "{title}: {expr}");
    }
}

/// A dashboard with one of each mistake the checker must catch.
fn bad_dashboard() -> Value {
    let ds = json!({"type": "prometheus", "uid": DATASOURCE_UID});
    json!({
        "uid": "something-else",
        "title": "Bad",
        "schemaVersion": 27,
        "templating": {"list": [
            {"name": "org_id", "type": "query", "datasource": {"type": "prometheus", "uid": "P1809F7CD0C75ACF3"},
             "query": "label_values(devin_up, org_id)", "multi": false, "includeAll": true}
        ]},
        "panels": [
            {"type": "row", "id": 1, "title": "Row", "description": "r", "gridPos": {"x": 0, "y": 0, "w": 24, "h": 1},
             "collapsed": true, "panels": [
                {"type": "stat", "id": 2, "title": "Nested without unit", "description": "d",
                 "gridPos": {"x": 0, "y": 1, "w": 6, "h": 4}, "datasource": ds,
                 "fieldConfig": {"defaults": {}},
                 "targets": [{"refId": "A", "datasource": ds, "expr": "devin_sessions_total{org_id=~\"$org_id\"}"}]}
            ]},
            {"type": "timeseries", "id": 2, "title": "", "gridPos": {"x": 20, "y": 5, "w": 8, "h": 4},
             "datasource": {"type": "prometheus", "uid": "abc123"},
             "fieldConfig": {"defaults": {"unit": "short"}},
             "targets": [
                {"refId": "A", "datasource": "Prometheus", "expr": "sum by (status) (devin_up{status=\"error\", org_id=~\"$org\"})"},
                {"refId": "A", "datasource": ds, "expr": ""}
             ]}
        ]
    })
}

#[test]
fn the_checker_catches_a_bad_dashboard() {
    let known = Known::with_recording_rules();
    let problems = check_dashboard("devin-bad", &bad_dashboard(), &known);
    let text = problems.join("\n");
    for expected in [
        "uid \"something-else\" is not the file name devin-bad",
        "schemaVersion 27 < 39",
        "no datasource variable",
        "no org_id variable",
        "panel 2 \"Nested without unit\": no unit",
        "duplicate id 2",
        "panel 2 \"\": no title",
        "panel 2 \"\": no description",
        "gridPos",
        "panel 2 \"\": datasource is not ${datasource}",
        "a target's datasource is not ${datasource}",
        "a target has no expr",
        "duplicate refId",
        "$.templating.list[0].datasource",
        "\"abc123\"",
        "unknown metric devin_sessions_total",
        "devin_up has no label status",
        "unsubstituted variable at \"$org",
    ] {
        assert!(text.contains(expected), "missing {expected:?} in:\n{text}");
    }
    // And a good dashboard has none of them (see every_dashboard_passes_the_static_checks).
    assert!(problems.len() >= 18, "{text}");
}

#[test]
fn dashboard_queries_cover_nested_panels_and_variables_and_substitute_everything() {
    let path = root().join("dashboards/grafana/devin-overview.json");
    let dashboard = load(&path);
    let queries = dashboard_queries(&path);
    let targets: usize = all_panels(&dashboard)
        .iter()
        .map(|p| p["targets"].as_array().map_or(0, Vec::len))
        .sum();
    let query_variables = variables(&dashboard)
        .iter()
        .filter(|v| v["type"] == "query")
        .count();
    let annotations = dashboard["annotations"]["list"]
        .as_array()
        .map_or(0, |l| l.iter().filter(|a| a["expr"].is_string()).count());
    assert!(annotations >= 2, "the blocked-org and error annotations");
    assert_eq!(queries.len(), targets + query_variables + annotations);

    // A panel of the collapsed "Exporter & API" row is there.
    let latency: Vec<&String> = queries
        .iter()
        .filter(|(t, _)| t == "API request latency")
        .map(|(_, e)| e)
        .collect();
    assert_eq!(latency.len(), 3, "{queries:?}");
    // Query variables come without label_values(...).
    assert!(queries.contains(&("variable org_id".to_string(), "devin_up".to_string())));
    assert!(queries.contains(&(
        "variable origin".to_string(),
        "devin_sessions{org_id=~\".*\"}".to_string()
    )));
    for (title, expr) in &queries {
        assert!(!expr.contains('$'), "{title}: {expr}");
        assert!(!expr.contains("label_values"), "{title}: {expr}");
    }
    // Built-ins get concrete values.
    assert!(queries.iter().any(|(_, e)| e.contains("[5m]")));
    assert!(queries.iter().any(|(_, e)| e.contains("[1h]")));

    let one_org = dashboards::dashboard_queries_with(&path, &[("org_id", "org-a")]);
    assert!(one_org.iter().any(|(_, e)| e.contains("org_id=~\"org-a\"")));
}

#[test]
fn substitution_handles_every_variable_syntax() {
    let values: BTreeMap<String, String> = [
        ("org_id", "org-a|org-b"),
        ("org", "WRONG"),
        ("__rate_interval", "5m"),
        ("__range", "1h"),
        ("__range_s", "3600"),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    assert_eq!(
        substitute(
            r#"rate(x{a=~"$org_id",b=~"${org_id}",c=~"${org_id:regex}",d=~"[[org_id]]"}[$__rate_interval]) / $__range_s"#,
            &values
        ),
        r#"rate(x{a=~"org-a|org-b",b=~"org-a|org-b",c=~"org-a|org-b",d=~"org-a|org-b"}[5m]) / 3600"#
    );
    // The longest name wins ($__range_s is not $__range followed by "_s"); unknown names
    // and a PromQL regex anchor stay as written.
    assert_eq!(substitute("$__range $__range_s", &values), "1h 3600");
    assert_eq!(
        substitute(r#"x{a=~"$unknown", b=~"v$"}"#, &values),
        r#"x{a=~"$unknown", b=~"v$"}"#
    );
}

#[test]
fn variable_queries_lose_their_label_values_wrapper() {
    assert_eq!(
        variable_expr("label_values(devin_up, org_id)").as_deref(),
        Some("devin_up")
    );
    assert_eq!(
        variable_expr(r#"label_values(devin_sessions{org_id=~"$org_id", status!="a,b"}, origin)"#)
            .as_deref(),
        Some(r#"devin_sessions{org_id=~"$org_id", status!="a,b"}"#)
    );
    assert_eq!(variable_expr("label_values(org_id)"), None);
    assert_eq!(variable_expr("label_names()"), None);
    assert_eq!(variable_expr("metrics(devin_.*)"), None);
    assert_eq!(
        variable_expr("query_result(topk(3, devin_up))").as_deref(),
        Some("topk(3, devin_up)")
    );
    assert_eq!(
        variable_expr("metrics_total").as_deref(),
        Some("metrics_total")
    );
}

#[test]
fn selectors_read_metric_names_and_matcher_labels() {
    let expr = r#"histogram_quantile(0.99, sum by (le, org_id) (rate(devin_api_request_duration_seconds_bucket{org_id=~"a|b", code!="by (x)"}[5m] offset 1h)))
        / on (org_id) group_left (name) devin_org_info
        and ignoring(x) org_id:devin_acus_consumed:rate5m > bool 1e3 unless time() - process_start_time_seconds < inf"#;
    let found: Vec<(Option<String>, Vec<String>)> = selectors(expr)
        .into_iter()
        .map(|s| (s.metric, s.labels))
        .collect();
    assert_eq!(
        found,
        vec![
            (
                Some("devin_api_request_duration_seconds_bucket".to_string()),
                vec!["org_id".to_string(), "code".to_string()]
            ),
            (Some("devin_org_info".to_string()), vec![]),
            (
                Some("org_id:devin_acus_consumed:rate5m".to_string()),
                vec![]
            ),
            (Some("process_start_time_seconds".to_string()), vec![]),
        ]
    );
    let known = Known::with_recording_rules();
    assert_eq!(
        known.check_expr(expr),
        [
            "devin_api_request_duration_seconds_bucket has no label code",
            "unknown metric devin_org_info"
        ]
    );
    assert_eq!(
        known.check_expr(r#"devin_sessions{pr_state="open"}"#),
        ["devin_sessions has no label pr_state"]
    );
}

// ---------------------------------------------------------------------------------------
// Rules.

#[test]
fn recording_rules_follow_the_naming_convention_and_read_the_contract() {
    let rules = recording_rules();
    assert!(rules.len() >= 5, "{rules:?}");
    let contract = Known::contract();
    let mut seen = BTreeSet::new();
    for rule in &rules {
        assert!(
            seen.insert(rule.name.clone()),
            "duplicate record {}",
            rule.name
        );
        let parts: Vec<&str> = rule.name.split(':').collect();
        assert_eq!(parts.len(), 3, "{}: not level:metric:operations", rule.name);
        assert!(parts.iter().all(|p| !p.is_empty()), "{}", rule.name);
        assert!(
            parts[1].starts_with("devin_"),
            "{}: the metric part names the source metric",
            rule.name
        );
        assert!(!rule.expr.is_empty(), "{}: no expr", rule.name);
        // A rule reads the contract or a rule recorded above it.
        for metric in metric_names(&rule.expr) {
            assert!(
                contract.labels_of(&metric).is_some() || seen.contains(&metric),
                "{}: reads {metric}",
                rule.name
            );
        }
        // The level names the labels kept.
        if let Some(labels) = grouping_labels(&rule.expr) {
            let level: Vec<&str> = labels
                .iter()
                .map(String::as_str)
                .filter(|l| *l != "le")
                .collect();
            let mut sorted_level = parts[0].to_string();
            for label in &level {
                assert!(
                    sorted_level.contains(label),
                    "{}: level lacks {label}",
                    rule.name
                );
                sorted_level = sorted_level.replacen(label, "", 1);
            }
            assert!(
                sorted_level.chars().all(|c| c == '_'),
                "{}: level names labels not kept",
                rule.name
            );
        }
    }
}

#[test]
fn alerts_read_the_contract_and_carry_severity_and_runbook_annotations() {
    let alerts = alert_rules();
    assert!(alerts.len() >= 9, "{alerts:?}");
    let contract = Known::contract();
    let mut names = BTreeSet::new();
    for alert in &alerts {
        assert!(
            names.insert(alert.name.clone()),
            "duplicate alert {}",
            alert.name
        );
        assert!(alert.name.starts_with("Devin"), "{}", alert.name);
        assert!(
            contract.check_expr(&alert.expr).is_empty(),
            "{}: {:?}",
            alert.name,
            contract.check_expr(&alert.expr)
        );
        let block: Vec<&str> = alert.block.lines().collect();
        let severity = yaml_value(&block, "severity").unwrap_or_default();
        assert!(
            ["critical", "warning", "info"].contains(&severity.as_str()),
            "{}: severity {severity:?}",
            alert.name
        );
        let summary = yaml_value(&block, "summary").unwrap_or_default();
        let description = yaml_value(&block, "description").unwrap_or_default();
        assert!(summary.len() >= 20, "{}: summary {summary:?}", alert.name);
        // Plain enough to adapt: a few lines, no look-back comparisons.
        assert!(
            alert.expr.lines().count() <= 5 && !alert.expr.contains("offset"),
            "{}: expr too involved:\n{}",
            alert.name,
            alert.expr
        );
        assert!(
            description.len() >= 150,
            "{}: description too short to say what to do",
            alert.name
        );
    }
    // The severities used, and the alerts the org's blocking reasons depend on.
    let severities: BTreeSet<String> = alerts
        .iter()
        .map(|a| yaml_value(&a.block.lines().collect::<Vec<_>>(), "severity").unwrap())
        .collect();
    assert_eq!(
        severities,
        BTreeSet::from(["critical".into(), "warning".into(), "info".into()])
    );
    let credits = alerts
        .iter()
        .find(|a| a.name == "DevinSessionsSuspendedForCreditsOrLimits")
        .expect("the suspension alert");
    for reason in [
        "out_of_credits",
        "out_of_quota",
        "usage_limit_exceeded",
        "org_usage_limit_exceeded",
        "payment_declined",
    ] {
        assert!(credits.expr.contains(reason), "{reason}");
    }
    assert!(credits.block.contains("severity: critical"));
}

/// Where the alerts' `runbook_url`s point until the user replaces it (docs/runbook.md says how).
const RUNBOOK_BASE: &str = "https://runbooks.example.com/devin-exporter/";

/// The sections of docs/runbook.md: `## Heading` and the text below it.
fn runbook_sections() -> BTreeMap<String, String> {
    let text = read(&root().join("docs/runbook.md"));
    let mut sections = BTreeMap::new();
    let mut current: Option<(String, String)> = None;
    for line in text.lines() {
        if let Some(heading) = line.strip_prefix("## ") {
            if let Some((h, body)) = current.take() {
                sections.insert(h, body);
            }
            current = Some((heading.trim().to_string(), String::new()));
        } else if let Some((_, body)) = current.as_mut() {
            body.push_str(line);
            body.push('\n');
        }
    }
    if let Some((h, body)) = current {
        sections.insert(h, body);
    }
    sections
}

/// The ```promql blocks of a text.
fn promql_blocks(text: &str) -> Vec<String> {
    text.split("```promql\n")
        .skip(1)
        .filter_map(|rest| rest.split_once("```").map(|(q, _)| q.trim().to_string()))
        .collect()
}

#[test]
fn every_alert_links_its_runbook_section_which_says_what_how_and_what_to_do() {
    let sections = runbook_sections();
    let contract = Known::contract();
    let mut queries = Vec::new();
    for alert in alert_rules() {
        let block: Vec<&str> = alert.block.lines().collect();
        let url = yaml_value(&block, "runbook_url").unwrap_or_default();
        let anchor = alert.name.to_lowercase();
        assert_eq!(
            url,
            format!("{RUNBOOK_BASE}runbook.md#{anchor}"),
            "{}: runbook_url",
            alert.name
        );
        let section = sections
            .get(&alert.name)
            .unwrap_or_else(|| panic!("docs/runbook.md has no section ## {}", alert.name));
        for part in ["**What it means.**", "**Confirm.**", "**What to do.**"] {
            assert!(section.contains(part), "{}: no {part}", alert.name);
        }
        let confirm = promql_blocks(section);
        assert_eq!(confirm.len(), 1, "{}: one query to confirm", alert.name);
        let problems = contract.check_expr(&confirm[0]);
        assert!(problems.is_empty(), "{}: {problems:?}", alert.name);
        queries.push((alert.name.clone(), confirm[0].clone()));
    }
    // No section for an alert that does not exist.
    let names: BTreeSet<String> = alert_rules().into_iter().map(|a| a.name).collect();
    for heading in sections.keys().filter(|h| h.starts_with("Devin")) {
        assert!(
            names.contains(heading),
            "runbook section for unknown {heading}"
        );
    }
    // The runbook says how to replace the base.
    assert!(read(&root().join("docs/runbook.md")).contains(&format!("s#{RUNBOOK_BASE}#")));
    // Every query parses: promtool checks them as recording rules.
    if !have_promtool() {
        return;
    }
    let mut rules = String::from("groups:\n  - name: runbook\n    rules:\n");
    for (i, (_, query)) in queries.iter().enumerate() {
        rules += &format!(
            "      - record: runbook_query_{i}\n        expr: {}\n",
            yaml_str(query)
        );
    }
    let scratch = Scratch::new("runbook");
    let file = scratch.write("runbook_rules.yml", &rules);
    let (ok, text) = promtool(&["check", "rules"], &[file]);
    assert!(ok, "a runbook query does not parse:\n{text}\n{queries:?}");
}

/// For each `alertname:` line of the unit tests: whether the case expects alerts.
fn alert_test_cases() -> Vec<(String, bool)> {
    let mut cases = Vec::new();
    for file in rule_test_files() {
        let text = read(&file);
        let lines: Vec<&str> = text.lines().map(str::trim).collect();
        for (i, line) in lines.iter().enumerate() {
            let Some(name) = line.strip_prefix("alertname:") else {
                continue;
            };
            let next = lines[i + 1..]
                .iter()
                .find(|l| !l.is_empty() && !l.starts_with('#'))
                .copied()
                .unwrap_or("");
            let fires = match next {
                "exp_alerts: []" => false,
                "exp_alerts:" => true,
                other => panic!("{}: alertname {name} followed by {other:?}", file.display()),
            };
            cases.push((name.trim().to_string(), fires));
        }
    }
    cases
}

#[test]
fn every_alert_has_a_firing_and_a_quiet_unit_test() {
    let cases = alert_test_cases();
    let mut missing = Vec::new();
    for alert in alert_rules() {
        for fires in [true, false] {
            if !cases.iter().any(|(n, f)| *n == alert.name && *f == fires) {
                missing.push(format!(
                    "{} {}",
                    alert.name,
                    if fires { "firing" } else { "quiet" }
                ));
            }
        }
    }
    assert!(
        missing.is_empty(),
        "alerts without unit test cases: {missing:?}"
    );
    // Tests name only existing alerts.
    let names: BTreeSet<String> = alert_rules().into_iter().map(|a| a.name).collect();
    for (name, _) in &cases {
        assert!(names.contains(name), "a test names unknown alert {name}");
    }
}

// ---------------------------------------------------------------------------------------
// promtool.

fn have_promtool() -> bool {
    let ok = Command::new("promtool")
        .arg("--version")
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    if ok {
        return true;
    }
    if std::env::var("DEVIN_E2E_REQUIRED").as_deref() == Ok("1") {
        panic!("promtool is required (DEVIN_E2E_REQUIRED=1) but not installed");
    }
    eprintln!(
        "SKIPPED: promtool is not installed (apt-get install prometheus); set DEVIN_E2E_REQUIRED=1 to fail instead"
    );
    false
}

/// Runs promtool; (success, stdout and stderr).
fn promtool(args: &[&str], files: &[PathBuf]) -> (bool, String) {
    let out = Command::new("promtool")
        .args(args)
        .args(files)
        .output()
        .expect("run promtool");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

/// A scratch directory, removed when dropped.
struct Scratch(PathBuf);

impl Scratch {
    fn new(name: &str) -> Scratch {
        let dir =
            std::env::temp_dir().join(format!("devin-dashboards-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Scratch(dir)
    }

    fn write(&self, name: &str, text: &str) -> PathBuf {
        let path = self.0.join(name);
        std::fs::write(&path, text).unwrap();
        path
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A YAML double-quoted scalar (JSON strings are valid YAML).
fn yaml_str(s: &str) -> String {
    serde_json::to_string(s).unwrap()
}

#[test]
fn promtool_accepts_the_rule_files_and_rejects_a_broken_one() {
    if !have_promtool() {
        return;
    }
    let files = [
        rules_dir().join("alerts.yml"),
        rules_dir().join("recording.yml"),
    ];
    let (ok, text) = promtool(&["check", "rules"], &files);
    assert!(ok, "promtool check rules:\n{text}");
    assert!(text.contains("SUCCESS"), "{text}");

    let scratch = Scratch::new("check");
    let broken = scratch.write(
        "broken.yml",
        "groups:\n  - name: broken\n    rules:\n      - alert: Broken\n        expr: sum by (org_id (devin_up)\n",
    );
    let (ok, text) = promtool(&["check", "rules"], &[broken]);
    assert!(!ok, "promtool accepted a broken rule:\n{text}");
}

#[test]
fn promtool_rule_unit_tests_pass_and_a_wrong_expectation_fails() {
    if !have_promtool() {
        return;
    }
    let (ok, text) = promtool(&["test", "rules"], &rule_test_files());
    assert!(ok, "promtool test rules:\n{text}");

    // The same machinery catches a wrong expectation: DevinExporterDown for a target up.
    let scratch = Scratch::new("wrong");
    let alerts = rules_dir().join("alerts.yml");
    let wrong = scratch.write(
        "wrong_test.yml",
        &format!(
            "rule_files:\n  - {}\nevaluation_interval: 1m\ntests:\n  - interval: 1m\n    input_series:\n      - series: 'up{{job=\"devin\", instance=\"x:10164\"}}'\n        values: '1x20'\n    alert_rule_test:\n      - eval_time: 10m\n        alertname: DevinExporterDown\n        exp_alerts:\n          - exp_labels:\n              severity: critical\n              job: devin\n              instance: x:10164\n",
            yaml_str(&alerts.to_string_lossy())
        ),
    );
    let (ok, text) = promtool(&["test", "rules"], &[wrong]);
    assert!(!ok, "promtool passed a wrong expectation:\n{text}");
    assert!(text.contains("FAILED"), "{text}");
}

/// Synthetic series for every metric of the contract, one org, two hours at 1m: what a
/// healthy exporter shows, with every label value the dashboard selects on.
const SYNTHETIC_SERIES: &[(&str, &str)] = &[
    (r#"up{job="devin", instance="exporter:10164"}"#, "1x150"),
    (
        r#"devin_user_acus_consumed_total{job="devin", instance="exporter:10164", org_id="org-a", user_id="user-1"}"#,
        "0+0.5x150",
    ),
    (
        r#"devin_user_sessions{job="devin", instance="exporter:10164", org_id="org-a", user_id="user-1", status="error"}"#,
        "1x150",
    ),
    (
        r#"devin_playbook_acus_consumed_total{job="devin", instance="exporter:10164", org_id="org-a", playbook_id="none"}"#,
        "0+0.5x150",
    ),
    (
        r#"devin_tag_acus_consumed_total{job="devin", instance="exporter:10164", org_id="org-a", tag="team-a"}"#,
        "0+0.5x150",
    ),
    (
        r#"devin_ended_session_duration_seconds_bucket{job="devin", instance="exporter:10164", org_id="org-a", origin="webapp", status="exit", le="600"}"#,
        "0+1x150",
    ),
    (
        r#"devin_ended_session_duration_seconds_bucket{job="devin", instance="exporter:10164", org_id="org-a", origin="webapp", status="exit", le="+Inf"}"#,
        "0+2x150",
    ),
    (
        r#"devin_ended_session_acus_bucket{job="devin", instance="exporter:10164", org_id="org-a", origin="webapp", status="exit", le="1"}"#,
        "0+1x150",
    ),
    (
        r#"devin_ended_session_acus_bucket{job="devin", instance="exporter:10164", org_id="org-a", origin="webapp", status="exit", le="+Inf"}"#,
        "0+2x150",
    ),
    (
        r#"devin_active_session_acus_consumed{job="devin", instance="exporter:10164", org_id="org-a", session_id="devin-0123456789abcdef0123456789abcdef", url="https://app.devin.ai/sessions/0123456789abcdef0123456789abcdef"}"#,
        "0+0.5x150",
    ),
    (
        r#"process_resident_memory_bytes{job="devin", instance="exporter:10164"}"#,
        "30000000x150",
    ),
    (
        r#"devin_exporter_build_info{job="devin", instance="exporter:10164", version="0.1.0", revision="abc"}"#,
        "1x150",
    ),
    (
        r#"devin_up{job="devin", instance="exporter:10164", org_id="org-a"}"#,
        "1x150",
    ),
    (
        r#"devin_initial_sync_complete{job="devin", instance="exporter:10164", org_id="org-a"}"#,
        "1x150",
    ),
    (
        r#"devin_last_successful_scrape_timestamp_seconds{job="devin", instance="exporter:10164", org_id="org-a"}"#,
        "0+60x150",
    ),
    (
        r#"devin_scrape_duration_seconds{job="devin", instance="exporter:10164", org_id="org-a"}"#,
        "1.5x150",
    ),
    (
        r#"devin_sessions{job="devin", instance="exporter:10164", org_id="org-a", status="running", status_detail="working", origin="webapp", category="bug_fixing"}"#,
        "3x150",
    ),
    (
        r#"devin_sessions{job="devin", instance="exporter:10164", org_id="org-a", status="running", status_detail="waiting_for_user", origin="slack", category="feature_development"}"#,
        "2x150",
    ),
    (
        r#"devin_sessions{job="devin", instance="exporter:10164", org_id="org-a", status="error", status_detail="none", origin="api", category="none"}"#,
        "1x150",
    ),
    (
        r#"devin_sessions{job="devin", instance="exporter:10164", org_id="org-a", status="suspended", status_detail="out_of_credits", origin="webapp", category="bug_fixing"}"#,
        "1x150",
    ),
    (
        r#"devin_sessions{job="devin", instance="exporter:10164", org_id="org-a", status="exit", status_detail="none", origin="webapp", category="bug_fixing"}"#,
        "0+1x150",
    ),
    (
        r#"devin_sessions_acus_consumed{job="devin", instance="exporter:10164", org_id="org-a", status="running", status_detail="working", origin="webapp", category="bug_fixing"}"#,
        "0+0.5x150",
    ),
    (
        r#"devin_sessions_acus_consumed{job="devin", instance="exporter:10164", org_id="org-a", status="running", status_detail="waiting_for_user", origin="slack", category="feature_development"}"#,
        "0+0.25x150",
    ),
    (
        r#"devin_acus_consumed_total{job="devin", instance="exporter:10164", org_id="org-a"}"#,
        "0+0.75x150",
    ),
    (
        r#"devin_sessions_created_total{job="devin", instance="exporter:10164", org_id="org-a", origin="webapp"}"#,
        "0+1x150",
    ),
    (
        r#"devin_sessions_entered_status_total{job="devin", instance="exporter:10164", org_id="org-a", status="error", status_detail="none"}"#,
        "0+1x150",
    ),
    (
        r#"devin_sessions_entered_status_total{job="devin", instance="exporter:10164", org_id="org-a", status="suspended", status_detail="out_of_credits"}"#,
        "0+1x150",
    ),
    (
        r#"devin_session_pull_requests{job="devin", instance="exporter:10164", org_id="org-a", pr_state="merged"}"#,
        "4x150",
    ),
    (
        r#"devin_session_pull_requests{job="devin", instance="exporter:10164", org_id="org-a", pr_state="closed"}"#,
        "1x150",
    ),
    (
        r#"devin_session_pull_requests{job="devin", instance="exporter:10164", org_id="org-a", pr_state="open"}"#,
        "2x150",
    ),
    (
        r#"devin_sessions_archived{job="devin", instance="exporter:10164", org_id="org-a"}"#,
        "5x150",
    ),
    (
        r#"devin_sessions_oldest_update_timestamp_seconds{job="devin", instance="exporter:10164", org_id="org-a", status="running", status_detail="waiting_for_user"}"#,
        "0x150",
    ),
    (
        r#"devin_api_requests_total{job="devin", instance="exporter:10164", org_id="org-a", code="200"}"#,
        "0+60x150",
    ),
    (
        r#"devin_api_requests_total{job="devin", instance="exporter:10164", org_id="org-a", code="429"}"#,
        "0+1x150",
    ),
    (
        r#"devin_api_request_duration_seconds_bucket{job="devin", instance="exporter:10164", org_id="org-a", le="0.1"}"#,
        "0+40x150",
    ),
    (
        r#"devin_api_request_duration_seconds_bucket{job="devin", instance="exporter:10164", org_id="org-a", le="1"}"#,
        "0+60x150",
    ),
    (
        r#"devin_api_request_duration_seconds_bucket{job="devin", instance="exporter:10164", org_id="org-a", le="+Inf"}"#,
        "0+61x150",
    ),
    (
        r#"devin_api_request_duration_seconds_sum{job="devin", instance="exporter:10164", org_id="org-a"}"#,
        "0+9x150",
    ),
    (
        r#"devin_api_request_duration_seconds_count{job="devin", instance="exporter:10164", org_id="org-a"}"#,
        "0+61x150",
    ),
];

#[test]
fn every_dashboard_query_parses_and_returns_data_on_synthetic_metrics() {
    if !have_promtool() {
        return;
    }
    let scratch = Scratch::new("synthetic");
    let recording = rules_dir().join("recording.yml");
    for path in dashboard_files() {
        let queries = dashboard_queries(&path);
        let mut test = format!(
            "rule_files:\n  - {}\nevaluation_interval: 1m\ntests:\n  - interval: 1m\n    input_series:\n",
            yaml_str(&recording.to_string_lossy())
        );
        for (series, values) in SYNTHETIC_SERIES {
            test += &format!(
                "      - series: {}\n        values: {}\n",
                yaml_str(series),
                yaml_str(values)
            );
        }
        test += "    promql_expr_test:\n";
        // Each query answers: `count(q) > bool 0` is 1 when q has series, nothing when not.
        for (_, expr) in &queries {
            test += &format!(
                "      - expr: {}\n        eval_time: 2h\n        exp_samples:\n          - labels: '{{}}'\n            value: 1\n",
                yaml_str(&format!("count({expr}) > bool 0"))
            );
        }
        let file = scratch.write(&format!("{}_test.yml", stem(&path)), &test);
        let (ok, text) = promtool(&["test", "rules"], &[file]);
        let listing: Vec<String> = queries.iter().map(|(t, e)| format!("{t}: {e}")).collect();
        assert!(
            ok,
            "{}: a query does not parse or returns nothing:\n{text}\nqueries:\n{}",
            path.display(),
            listing.join("\n")
        );
    }
}

#[test]
fn promtool_rejects_a_dashboard_query_that_returns_nothing() {
    if !have_promtool() {
        return;
    }
    // The check above would notice a query reading a series that does not exist.
    let scratch = Scratch::new("empty");
    let file = scratch.write(
        "empty_test.yml",
        "evaluation_interval: 1m\ntests:\n  - interval: 1m\n    input_series:\n      - series: 'devin_up{org_id=\"org-a\"}'\n        values: '1x10'\n    promql_expr_test:\n      - expr: 'count(devin_up{org_id=\"org-b\"}) > bool 0'\n        eval_time: 5m\n        exp_samples:\n          - labels: '{}'\n            value: 1\n",
    );
    let (ok, text) = promtool(&["test", "rules"], &[file]);
    assert!(!ok, "{text}");
}

// ---------------------------------------------------------------------------------------
// Provisioning, the Compose example and the README.

/// Volume mounts `source:target[:mode]` of a Compose file, read as text.
fn compose_mounts(text: &str) -> Vec<(String, String)> {
    text.lines()
        .map(str::trim)
        .filter_map(|l| l.strip_prefix("- "))
        .filter(|l| l.starts_with("./") || l.starts_with("../"))
        .map(|l| {
            let mut parts = l.split(':');
            (
                parts.next().unwrap().to_string(),
                parts.next().unwrap_or("").to_string(),
            )
        })
        .collect()
}

#[test]
fn compose_example_mounts_what_exists_where_the_configs_expect_it() {
    let dir = root().join("examples/compose");
    let compose = read(&dir.join("docker-compose.yml"));
    let mounts = compose_mounts(&compose);
    assert!(mounts.len() >= 5, "{mounts:?}");
    for (source, target) in &mounts {
        assert!(dir.join(source).exists(), "mount source {source} missing");
        assert!(target.starts_with('/'), "{source}: target {target:?}");
    }
    let target_of = |source: &str| {
        mounts
            .iter()
            .find(|(s, _)| s == source)
            .map(|(_, t)| t.clone())
            .unwrap_or_else(|| panic!("{source} not mounted"))
    };
    // Grafana reads the dashboards where the provider looks for them.
    let provider = read(&root().join("dashboards/grafana/provisioning/dashboards/devin.yaml"));
    let provider_path = yaml_value(&provider.lines().collect::<Vec<_>>(), "path").unwrap();
    assert_eq!(target_of("../../dashboards/grafana"), provider_path);
    // And the home dashboard is one of them.
    assert!(compose.contains(&format!("{provider_path}/devin-overview.json")));
    assert_eq!(
        target_of("../../dashboards/grafana/provisioning/datasources"),
        "/etc/grafana/provisioning/datasources"
    );
    assert_eq!(
        target_of("../../dashboards/grafana/provisioning/dashboards"),
        "/etc/grafana/provisioning/dashboards"
    );
    // The data source points at the Compose Prometheus service.
    let datasource =
        read(&root().join("dashboards/grafana/provisioning/datasources/prometheus.yaml"));
    assert!(datasource.contains("url: http://prometheus:9090"));
    assert!(compose.contains("\n  prometheus:\n"));
    // The exporter: demo mode from the repository's Dockerfile on 10164, scraped there.
    assert!(compose.contains("context: ../..") && compose.contains("dockerfile: Dockerfile"));
    assert!(compose.contains(r#"command: ["--demo"]"#));
    assert!(compose.contains("10164:10164"));
    let prometheus = read(&dir.join("prometheus.yml"));
    assert!(prometheus.contains("job_name: devin"));
    assert!(prometheus.contains("exporter:10164"));
    // Prometheus loads the rules from where they are mounted.
    let rules_target = target_of("../../dashboards/prometheus");
    for rules in ["alerts.yml", "recording.yml"] {
        assert!(
            prometheus.contains(&format!("{rules_target}/{rules}")),
            "prometheus.yml does not load {rules_target}/{rules}"
        );
    }
}

#[test]
fn promtool_accepts_the_compose_prometheus_config() {
    if !have_promtool() {
        return;
    }
    // The rule files are at their container path there: point at the repository's.
    let compose = read(&root().join("examples/compose/docker-compose.yml"));
    let rules_target = compose_mounts(&compose)
        .into_iter()
        .find(|(s, _)| s == "../../dashboards/prometheus")
        .unwrap()
        .1;
    let config = read(&root().join("examples/compose/prometheus.yml")).replace(
        &format!("{rules_target}/"),
        &format!("{}/", rules_dir().to_string_lossy()),
    );
    let scratch = Scratch::new("compose");
    let file = scratch.write("prometheus.yml", &config);
    let (ok, text) = promtool(&["check", "config"], &[file]);
    assert!(ok, "promtool check config:\n{text}");
    assert!(text.contains("2 rule files found"), "{text}");
}

#[test]
fn readme_describes_every_row_and_alert_and_the_test_command() {
    let readme = read(&root().join("dashboards/README.md"));
    for path in dashboard_files() {
        for panel in all_panels(&load(&path)) {
            if panel["type"] == "row" {
                let title = panel["title"].as_str().unwrap();
                assert!(
                    readme.contains(&format!("**{title}**")),
                    "README lacks row {title}"
                );
            }
        }
    }
    for alert in alert_rules() {
        assert!(
            readme.contains(&format!("`{}`", alert.name)),
            "README lacks {}",
            alert.name
        );
    }
    assert!(readme.contains("promtool test rules dashboards/prometheus/tests/*.yml"));
}
