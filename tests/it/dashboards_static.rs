//! Static checks of the monitoring artefacts under `dashboards/` and `examples/compose/`:
//! the Grafana dashboards (structure, units, descriptions, data source, and every PromQL
//! expression against the exporter's metric contract), the Prometheus rules (contract,
//! severities, runbook annotations, a unit test per alert), and `promtool check rules` /
//! `promtool test rules`, plus every dashboard expression evaluated by promtool on
//! synthetic series.
//!
//! Rule files, unit tests, Compose and provisioning files are read with serde, PromQL with
//! `promql-parser`. The promtool tests print a notice and pass when promtool is not
//! installed, unless `DEVIN_E2E_REQUIRED=1`, where they fail.

use crate::common;
use crate::common::dashboards;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use tempfile::TempDir;

use common::procs::require_tool;
use dashboards::{
    all_panels, dashboard_queries, default_values, grouping_labels, load, metric_names, parse,
    raw_queries, selectors, substitute, variable_expr, variables,
};

/// The exporter's metrics, each followed by its labels (target labels `job` and `instance`
/// come on top), and Prometheus' own per-target `up`.
const CONTRACT: &str = "
devin_sessions org_id status status_detail origin category
devin_sessions_acus_consumed org_id status status_detail origin category
devin_acus_consumed_total org_id
devin_sessions_created_total org_id origin
devin_sessions_entered_status_total org_id status status_detail
devin_session_pull_requests org_id pr_state
devin_sessions_archived org_id
devin_sessions_oldest_update_timestamp_seconds org_id status status_detail
devin_up org_id
devin_initial_sync_complete org_id
devin_scrape_duration_seconds org_id
devin_last_successful_scrape_timestamp_seconds org_id
devin_api_requests_total org_id code
devin_api_request_duration_seconds_bucket org_id le
devin_api_request_duration_seconds_sum org_id
devin_api_request_duration_seconds_count org_id
devin_exporter_build_info version revision
devin_user_sessions org_id user_id status
devin_user_acus_consumed org_id user_id
devin_user_acus_consumed_total org_id user_id
devin_playbook_sessions org_id playbook_id status
devin_playbook_acus_consumed org_id playbook_id
devin_playbook_acus_consumed_total org_id playbook_id
devin_tag_sessions org_id tag status
devin_tag_acus_consumed org_id tag
devin_tag_acus_consumed_total org_id tag
devin_ended_session_duration_seconds_bucket org_id origin status le
devin_ended_session_duration_seconds_sum org_id origin status
devin_ended_session_duration_seconds_count org_id origin status
devin_ended_session_acus_bucket org_id origin status le
devin_ended_session_acus_sum org_id origin status
devin_ended_session_acus_count org_id origin status
devin_active_session_acus_consumed org_id session_id url
up
";

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

fn yaml<T: DeserializeOwned>(path: &Path) -> T {
    serde_yaml_ng::from_str(&read(path)).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// A Prometheus rule file.
#[derive(Deserialize)]
struct RuleFile {
    groups: Vec<RuleGroup>,
}

#[derive(Deserialize)]
struct RuleGroup {
    rules: Vec<Rule>,
}

/// A recording rule (its `record` is the name) or an alert (its `alert`).
#[derive(Debug, Deserialize)]
struct Rule {
    #[serde(alias = "record", alias = "alert")]
    name: String,
    expr: String,
    #[serde(default)]
    labels: BTreeMap<String, String>,
    #[serde(default)]
    annotations: BTreeMap<String, String>,
}

impl Rule {
    fn label(&self, key: &str) -> &str {
        self.labels.get(key).map_or("", String::as_str)
    }

    fn annotation(&self, key: &str) -> &str {
        self.annotations.get(key).map_or("", String::as_str)
    }

    fn parsed(&self) -> promql_parser::parser::Expr {
        parse(&self.expr).unwrap_or_else(|e| panic!("{}: {e}", self.name))
    }
}

fn rules(file: &str) -> Vec<Rule> {
    let file: RuleFile = yaml(&rules_dir().join(file));
    file.groups.into_iter().flat_map(|g| g.rules).collect()
}

fn recording_rules() -> Vec<Rule> {
    rules("recording.yml")
}

fn alert_rules() -> Vec<Rule> {
    rules("alerts.yml")
}

// ---------------------------------------------------------------------------------------
// Known metrics: the contract, process_*, and the recording rules.

struct Known {
    labels: BTreeMap<String, BTreeSet<String>>,
}

impl Known {
    fn contract() -> Known {
        let labels = CONTRACT
            .lines()
            .filter_map(|line| {
                let mut words = line.split_whitespace().map(String::from);
                Some((words.next()?, words.collect()))
            })
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
            let expr = rule.parsed();
            let labels: BTreeSet<String> = match grouping_labels(&expr) {
                Some(labels) => labels,
                None => metric_names(&expr)
                    .iter()
                    .flat_map(|m| known.labels_of(m).unwrap())
                    .collect(),
            };
            known.labels.insert(rule.name, labels);
        }
        known
    }

    fn labels_of(&self, metric: &str) -> Option<BTreeSet<String>> {
        if metric.starts_with("process_") {
            return Some(BTreeSet::new());
        }
        self.labels.get(metric).cloned()
    }

    /// Problems of an expression: variables left unsubstituted, PromQL that does not parse,
    /// unknown metrics, label matchers on labels the metric does not have.
    fn check_expr(&self, expr: &str) -> Vec<String> {
        let mut problems = Vec::new();
        if let Some(i) = expr.find('$') {
            problems.push(format!("unsubstituted variable at {:?}", &expr[i..]));
        }
        let expr = match parse(expr) {
            Ok(expr) => expr,
            Err(e) => {
                problems.push(format!("does not parse: {e}"));
                return problems;
            }
        };
        for selector in selectors(&expr) {
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
    // Every panel honours the org filter: each selector of a per-org metric matches
    // org_id against the variable.
    let mut values = default_values(&dashboard);
    values.insert("org_id".into(), "ORG_FILTER".into());
    let known = Known::with_recording_rules();
    for (title, expr) in raw_queries(&dashboard) {
        if title.starts_with("variable ") {
            continue;
        }
        let parsed = parse(&substitute(&expr, &values)).unwrap();
        for selector in selectors(&parsed) {
            let metric = selector.metric.unwrap_or_default();
            if known
                .labels_of(&metric)
                .is_some_and(|l| l.contains("org_id"))
            {
                assert!(
                    selector
                        .matchers
                        .contains(&r#"org_id=~"ORG_FILTER""#.to_string()),
                    "{title}: {metric} without org_id=~\"$org_id\" in {expr}"
                );
            }
        }
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
    let found: Vec<(Option<String>, Vec<String>)> = selectors(&parse(expr).unwrap())
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
        let expr = rule.parsed();
        for metric in metric_names(&expr) {
            assert!(
                contract.labels_of(&metric).is_some() || seen.contains(&metric),
                "{}: reads {metric}",
                rule.name
            );
        }
        // The level names the labels kept.
        if let Some(labels) = grouping_labels(&expr) {
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
        let severity = alert.label("severity");
        assert!(
            ["critical", "warning", "info"].contains(&severity),
            "{}: severity {severity:?}",
            alert.name
        );
        let (summary, description) = (alert.annotation("summary"), alert.annotation("description"));
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
    let severities: BTreeSet<&str> = alerts.iter().map(|a| a.label("severity")).collect();
    assert_eq!(severities, BTreeSet::from(["critical", "warning", "info"]));
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
    assert_eq!(credits.label("severity"), "critical");
}

/// Where the alerts' `runbook_url`s point until the user replaces it (docs/runbook.md says how).
const RUNBOOK_BASE: &str = "https://runbooks.example.com/devin-exporter/";

/// The sections of docs/runbook.md: `## Heading` and the text below it.
fn runbook_sections() -> BTreeMap<String, String> {
    let text = read(&root().join("docs/runbook.md"));
    text.split("\n## ")
        .skip(1)
        .map(|section| section.split_once('\n').unwrap_or((section, "")))
        .map(|(heading, body)| (heading.trim().to_string(), body.to_string()))
        .collect()
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
        let url = alert.annotation("runbook_url");
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
    if !require_tool("promtool") {
        return;
    }
    let rules: Vec<Value> = queries
        .iter()
        .enumerate()
        .map(|(i, (_, query))| json!({"record": format!("runbook_query_{i}"), "expr": query}))
        .collect();
    let scratch = TempDir::new().unwrap();
    let file = write_yaml(
        &scratch,
        "runbook_rules.yml",
        &json!({"groups": [{"name": "runbook", "rules": rules}]}),
    );
    let (ok, text) = promtool(&["check", "rules"], &[file]);
    assert!(ok, "a runbook query does not parse:\n{text}\n{queries:?}");
}

/// A promtool rule unit test file: its alert test cases.
#[derive(Deserialize)]
struct RuleTestFile {
    tests: Vec<RuleTest>,
}

#[derive(Deserialize)]
struct RuleTest {
    #[serde(default)]
    alert_rule_test: Vec<AlertTestCase>,
}

#[derive(Deserialize)]
struct AlertTestCase {
    alertname: String,
    #[serde(default)]
    exp_alerts: Vec<serde_yaml_ng::Value>,
}

/// For each alert test case of the unit tests: the alert, and whether it expects alerts.
fn alert_test_cases() -> Vec<(String, bool)> {
    rule_test_files()
        .iter()
        .flat_map(|file| yaml::<RuleTestFile>(file).tests)
        .flat_map(|test| test.alert_rule_test)
        .map(|case| (case.alertname, !case.exp_alerts.is_empty()))
        .collect()
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

/// Writes `value` as YAML into `dir`.
fn write_yaml(dir: &TempDir, name: &str, value: &Value) -> PathBuf {
    let path = dir.path().join(name);
    std::fs::write(&path, serde_yaml_ng::to_string(value).unwrap()).unwrap();
    path
}

#[test]
fn promtool_accepts_the_rule_files_and_rejects_a_broken_one() {
    if !require_tool("promtool") {
        return;
    }
    let files = [
        rules_dir().join("alerts.yml"),
        rules_dir().join("recording.yml"),
    ];
    let (ok, text) = promtool(&["check", "rules"], &files);
    assert!(ok, "promtool check rules:\n{text}");
    assert!(text.contains("SUCCESS"), "{text}");

    let scratch = TempDir::new().unwrap();
    let broken = json!({"groups": [{"name": "broken", "rules": [
        {"alert": "Broken", "expr": "sum by (org_id (devin_up)"}
    ]}]});
    let broken = write_yaml(&scratch, "broken.yml", &broken);
    let (ok, text) = promtool(&["check", "rules"], &[broken]);
    assert!(!ok, "promtool accepted a broken rule:\n{text}");
}

#[test]
fn promtool_rule_unit_tests_pass_and_a_wrong_expectation_fails() {
    if !require_tool("promtool") {
        return;
    }
    let (ok, text) = promtool(&["test", "rules"], &rule_test_files());
    assert!(ok, "promtool test rules:\n{text}");

    // The same machinery catches a wrong expectation: DevinExporterDown for a target up.
    let scratch = TempDir::new().unwrap();
    let wrong = json!({
        "rule_files": [rules_dir().join("alerts.yml")],
        "evaluation_interval": "1m",
        "tests": [{
            "interval": "1m",
            "input_series": [{"series": r#"up{job="devin", instance="x:10164"}"#, "values": "1x20"}],
            "alert_rule_test": [{
                "eval_time": "10m",
                "alertname": "DevinExporterDown",
                "exp_alerts": [{"exp_labels": {"severity": "critical", "job": "devin", "instance": "x:10164"}}]
            }]
        }]
    });
    let wrong = write_yaml(&scratch, "wrong_test.yml", &wrong);
    let (ok, text) = promtool(&["test", "rules"], &[wrong]);
    assert!(!ok, "promtool passed a wrong expectation:\n{text}");
    assert!(text.contains("FAILED"), "{text}");
}

/// Synthetic series for every metric of the contract, one org, two hours at 1m: what a
/// healthy exporter shows, with every label value the dashboard selects on. Each line is a
/// series (its target labels added) and its values in promtool's notation.
const SYNTHETIC_SERIES: &str = r#"
up 1x150
devin_user_acus_consumed_total{org_id="org-a", user_id="user-1"} 0+0.5x150
devin_user_sessions{org_id="org-a", user_id="user-1", status="error"} 1x150
devin_playbook_acus_consumed_total{org_id="org-a", playbook_id="none"} 0+0.5x150
devin_tag_acus_consumed_total{org_id="org-a", tag="team-a"} 0+0.5x150
devin_ended_session_duration_seconds_bucket{org_id="org-a", origin="webapp", status="exit", le="600"} 0+1x150
devin_ended_session_duration_seconds_bucket{org_id="org-a", origin="webapp", status="exit", le="+Inf"} 0+2x150
devin_ended_session_acus_bucket{org_id="org-a", origin="webapp", status="exit", le="1"} 0+1x150
devin_ended_session_acus_bucket{org_id="org-a", origin="webapp", status="exit", le="+Inf"} 0+2x150
devin_active_session_acus_consumed{org_id="org-a", session_id="devin-0123456789abcdef0123456789abcdef", url="https://app.devin.ai/sessions/0123456789abcdef0123456789abcdef"} 0+0.5x150
process_resident_memory_bytes 30000000x150
devin_exporter_build_info{version="0.1.0", revision="abc"} 1x150
devin_up{org_id="org-a"} 1x150
devin_initial_sync_complete{org_id="org-a"} 1x150
devin_last_successful_scrape_timestamp_seconds{org_id="org-a"} 0+60x150
devin_scrape_duration_seconds{org_id="org-a"} 1.5x150
devin_sessions{org_id="org-a", status="running", status_detail="working", origin="webapp", category="bug_fixing"} 3x150
devin_sessions{org_id="org-a", status="running", status_detail="waiting_for_user", origin="slack", category="feature_development"} 2x150
devin_sessions{org_id="org-a", status="error", status_detail="none", origin="api", category="none"} 1x150
devin_sessions{org_id="org-a", status="suspended", status_detail="out_of_credits", origin="webapp", category="bug_fixing"} 1x150
devin_sessions{org_id="org-a", status="exit", status_detail="none", origin="webapp", category="bug_fixing"} 0+1x150
devin_sessions_acus_consumed{org_id="org-a", status="running", status_detail="working", origin="webapp", category="bug_fixing"} 0+0.5x150
devin_sessions_acus_consumed{org_id="org-a", status="running", status_detail="waiting_for_user", origin="slack", category="feature_development"} 0+0.25x150
devin_acus_consumed_total{org_id="org-a"} 0+0.75x150
devin_sessions_created_total{org_id="org-a", origin="webapp"} 0+1x150
devin_sessions_entered_status_total{org_id="org-a", status="error", status_detail="none"} 0+1x150
devin_sessions_entered_status_total{org_id="org-a", status="suspended", status_detail="out_of_credits"} 0+1x150
devin_session_pull_requests{org_id="org-a", pr_state="merged"} 4x150
devin_session_pull_requests{org_id="org-a", pr_state="closed"} 1x150
devin_session_pull_requests{org_id="org-a", pr_state="open"} 2x150
devin_sessions_archived{org_id="org-a"} 5x150
devin_sessions_oldest_update_timestamp_seconds{org_id="org-a", status="running", status_detail="waiting_for_user"} 0x150
devin_api_requests_total{org_id="org-a", code="200"} 0+60x150
devin_api_requests_total{org_id="org-a", code="429"} 0+1x150
devin_api_request_duration_seconds_bucket{org_id="org-a", le="0.1"} 0+40x150
devin_api_request_duration_seconds_bucket{org_id="org-a", le="1"} 0+60x150
devin_api_request_duration_seconds_bucket{org_id="org-a", le="+Inf"} 0+61x150
devin_api_request_duration_seconds_sum{org_id="org-a"} 0+9x150
devin_api_request_duration_seconds_count{org_id="org-a"} 0+61x150
"#;

/// [`SYNTHETIC_SERIES`] as promtool `input_series`.
fn synthetic_series() -> Vec<Value> {
    const TARGET: &str = r#"job="devin", instance="exporter:10164""#;
    SYNTHETIC_SERIES
        .lines()
        .filter_map(|line| line.rsplit_once(' '))
        .map(|(series, values)| {
            let series = match series.split_once('{') {
                Some((name, labels)) => format!("{name}{{{TARGET}, {labels}"),
                None => format!("{series}{{{TARGET}}}"),
            };
            json!({"series": series, "values": values})
        })
        .collect()
}

#[test]
fn every_dashboard_query_parses_and_returns_data_on_synthetic_metrics() {
    if !require_tool("promtool") {
        return;
    }
    let scratch = TempDir::new().unwrap();
    let input_series = synthetic_series();
    for path in dashboard_files() {
        let queries = dashboard_queries(&path);
        // Each query answers: `count(q) > bool 0` is 1 when q has series, nothing when not.
        let expr_tests: Vec<Value> = queries
            .iter()
            .map(|(_, expr)| {
                json!({
                    "expr": format!("count({expr}) > bool 0"),
                    "eval_time": "2h",
                    "exp_samples": [{"labels": "{}", "value": 1}]
                })
            })
            .collect();
        let test = json!({
            "rule_files": [rules_dir().join("recording.yml")],
            "evaluation_interval": "1m",
            "tests": [{"interval": "1m", "input_series": input_series, "promql_expr_test": expr_tests}]
        });
        let file = write_yaml(&scratch, &format!("{}_test.yml", stem(&path)), &test);
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
    if !require_tool("promtool") {
        return;
    }
    // The check above would notice a query reading a series that does not exist.
    let scratch = TempDir::new().unwrap();
    let test = json!({
        "evaluation_interval": "1m",
        "tests": [{
            "interval": "1m",
            "input_series": [{"series": r#"devin_up{org_id="org-a"}"#, "values": "1x10"}],
            "promql_expr_test": [{
                "expr": r#"count(devin_up{org_id="org-b"}) > bool 0"#,
                "eval_time": "5m",
                "exp_samples": [{"labels": "{}", "value": 1}]
            }]
        }]
    });
    let file = write_yaml(&scratch, "empty_test.yml", &test);
    let (ok, text) = promtool(&["test", "rules"], &[file]);
    assert!(!ok, "{text}");
}

// ---------------------------------------------------------------------------------------
// Provisioning, the Compose example and the README.

#[derive(Deserialize)]
struct Compose {
    services: BTreeMap<String, ComposeService>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct ComposeService {
    build: Option<ComposeBuild>,
    command: Vec<String>,
    environment: BTreeMap<String, String>,
    ports: Vec<String>,
    volumes: Vec<String>,
}

#[derive(Deserialize)]
struct ComposeBuild {
    context: String,
    dockerfile: String,
}

#[derive(Deserialize)]
struct PrometheusConfig {
    rule_files: Vec<String>,
    scrape_configs: Vec<ScrapeConfig>,
}

#[derive(Deserialize)]
struct ScrapeConfig {
    job_name: String,
    static_configs: Vec<StaticConfig>,
}

#[derive(Deserialize)]
struct StaticConfig {
    targets: Vec<String>,
}

/// Grafana provisioning: dashboard providers or data sources.
#[derive(Deserialize)]
struct Provisioning {
    #[serde(default)]
    providers: Vec<Value>,
    #[serde(default)]
    datasources: Vec<Value>,
}

fn compose_dir() -> PathBuf {
    root().join("examples/compose")
}

fn compose() -> Compose {
    yaml(&compose_dir().join("docker-compose.yml"))
}

/// Bind mounts `(source, target)` of every service, sources relative to the Compose file.
fn compose_mounts(compose: &Compose) -> Vec<(String, String)> {
    compose
        .services
        .values()
        .flat_map(|s| &s.volumes)
        .filter(|v| v.starts_with("./") || v.starts_with("../"))
        .map(|v| {
            let mut parts = v.split(':');
            let source = parts.next().unwrap().to_string();
            (source, parts.next().unwrap_or("").to_string())
        })
        .collect()
}

fn mount_target(compose: &Compose, source: &str) -> String {
    compose_mounts(compose)
        .into_iter()
        .find(|(s, _)| s == source)
        .map(|(_, t)| t)
        .unwrap_or_else(|| panic!("{source} not mounted"))
}

#[test]
fn compose_example_mounts_what_exists_where_the_configs_expect_it() {
    let dir = compose_dir();
    let compose = compose();
    let mounts = compose_mounts(&compose);
    assert!(mounts.len() >= 5, "{:?}", mounts);
    for (source, target) in &mounts {
        assert!(dir.join(source).exists(), "mount source {source} missing");
        assert!(target.starts_with('/'), "{source}: target {target:?}");
    }
    let target_of = |source: &str| mount_target(&compose, source);
    let service = |name: &str| {
        compose
            .services
            .get(name)
            .unwrap_or_else(|| panic!("no service {name}"))
    };
    // Grafana reads the dashboards where the provider looks for them.
    let grafana = root().join("dashboards/grafana/provisioning");
    let provider: Provisioning = yaml(&grafana.join("dashboards/devin.yaml"));
    let provider_path = provider.providers[0]["options"]["path"].as_str().unwrap();
    assert_eq!(target_of("../../dashboards/grafana"), provider_path);
    // And the home dashboard is one of them.
    assert_eq!(
        service("grafana").environment["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"],
        format!("{provider_path}/devin-overview.json")
    );
    assert_eq!(
        target_of("../../dashboards/grafana/provisioning/datasources"),
        "/etc/grafana/provisioning/datasources"
    );
    assert_eq!(
        target_of("../../dashboards/grafana/provisioning/dashboards"),
        "/etc/grafana/provisioning/dashboards"
    );
    // The data source points at the Compose Prometheus service.
    let datasources: Provisioning = yaml(&grafana.join("datasources/prometheus.yaml"));
    assert!(
        datasources
            .datasources
            .iter()
            .any(|d| d["url"] == "http://prometheus:9090")
    );
    service("prometheus");
    // The exporter: demo mode from the repository's Dockerfile on 10164, scraped there.
    let exporter = service("exporter");
    let build = exporter.build.as_ref().expect("the exporter is built");
    assert_eq!(
        (build.context.as_str(), build.dockerfile.as_str()),
        ("../..", "Dockerfile")
    );
    assert_eq!(exporter.command, ["--demo"]);
    assert!(
        exporter.ports.iter().any(|p| p.ends_with("10164:10164")),
        "{:?}",
        exporter.ports
    );
    let prometheus: PrometheusConfig = yaml(&dir.join("prometheus.yml"));
    let job = prometheus
        .scrape_configs
        .iter()
        .find(|j| j.job_name == "devin")
        .expect("job devin");
    assert!(
        job.static_configs
            .iter()
            .any(|s| s.targets == ["exporter:10164"])
    );
    // Prometheus loads the rules from where they are mounted.
    let rules_target = target_of("../../dashboards/prometheus");
    for rules in ["alerts.yml", "recording.yml"] {
        assert!(
            prometheus
                .rule_files
                .contains(&format!("{rules_target}/{rules}")),
            "prometheus.yml does not load {rules_target}/{rules}"
        );
    }
}

#[test]
fn promtool_accepts_the_compose_prometheus_config() {
    if !require_tool("promtool") {
        return;
    }
    // The rule files are at their container path there: point at the repository's.
    let rules_target = mount_target(&compose(), "../../dashboards/prometheus");
    let config = read(&compose_dir().join("prometheus.yml")).replace(
        &format!("{rules_target}/"),
        &format!("{}/", rules_dir().to_string_lossy()),
    );
    let scratch = TempDir::new().unwrap();
    let file = scratch.path().join("prometheus.yml");
    std::fs::write(&file, config).unwrap();
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
