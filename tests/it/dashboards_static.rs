//! Static checks of the monitoring artefacts under `dashboards/` and `examples/compose/`:
//! the Grafana dashboards (structure, units, descriptions, data source, and every PromQL
//! expression against the exporter's metric contract), the Prometheus rules (contract,
//! severities, runbook annotations, a unit test per alert), `promtool check rules` /
//! `promtool test rules`, and every dashboard expression evaluated by promtool on synthetic
//! series. The promtool tests print a notice and pass when promtool is not installed,
//! unless `DEVIN_E2E_REQUIRED=1`, where they fail.

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
    all_panels, dashboard_files, dashboard_queries, default_values, files_with_extension,
    grouping_labels, load, metric_names, non_empty_str, parse, raw_queries, read, root, selectors,
    substitute, variable_expr, variables,
};
use devin_exporter::metrics::families;

/// Labels every series has from its scrape target.
const TARGET_LABELS: &[&str] = &["job", "instance", "__name__"];

const DATASOURCE_UID: &str = "${datasource}";

fn rules_dir() -> PathBuf {
    root().join("dashboards/prometheus")
}

fn yaml<T: DeserializeOwned>(path: &Path) -> T {
    serde_yaml_ng::from_str(&read(path)).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
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

/// The rules of `recording.yml` or `alerts.yml`, asserting that no two have the same name.
fn rules(file: &str) -> Vec<Rule> {
    let doc: Value = yaml(&rules_dir().join(file));
    let mut rules: Vec<Rule> = Vec::new();
    for group in doc["groups"].as_array().expect("groups") {
        rules.extend(serde_json::from_value::<Vec<Rule>>(group["rules"].clone()).unwrap());
    }
    let mut names = BTreeSet::new();
    for rule in &rules {
        assert!(names.insert(&rule.name), "{file}: duplicate {}", rule.name);
    }
    rules
}

/// The names of the alerts.
fn alert_names() -> BTreeSet<String> {
    rules("alerts.yml").into_iter().map(|a| a.name).collect()
}

// Known metrics: the contract, process_*, and the recording rules.

struct Known {
    labels: BTreeMap<String, BTreeSet<String>>,
}

impl Known {
    /// The exporter's series from its family table (target labels `job` and `instance`
    /// come on top), and Prometheus' own per-target `up`.
    fn contract() -> Known {
        let mut labels: BTreeMap<String, BTreeSet<String>> = families::ALL
            .iter()
            .flat_map(|def| families::series_names(def))
            .map(|(name, l)| (name, l.into_iter().map(String::from).collect()))
            .collect();
        labels.insert("up".to_string(), BTreeSet::new());
        Known { labels }
    }

    /// The contract plus the recording rules, each rule's labels from its `by (...)` or,
    /// without one, from the metric it reads. Panics on a rule reading an unknown metric.
    fn with_recording_rules() -> Known {
        let mut known = Known::contract();
        for rule in rules("recording.yml") {
            let (name, problems) = (&rule.name, known.check_expr(&rule.expr));
            assert!(problems.is_empty(), "recording rule {name}: {problems:?}");
            let expr = rule.parsed();
            let read = |metric: &String| known.labels_of(metric).unwrap();
            let labels = grouping_labels(&expr)
                .unwrap_or_else(|| metric_names(&expr).iter().flat_map(read).collect());
            known.labels.insert(rule.name, labels);
        }
        known
    }

    fn labels_of(&self, metric: &str) -> Option<BTreeSet<String>> {
        // process_* come from the client library, without labels.
        let process = metric.starts_with("process_").then(BTreeSet::new);
        self.labels.get(metric).cloned().or(process)
    }

    /// Problems of an expression: variables left unsubstituted, PromQL that does not parse,
    /// unknown metrics, label matchers on labels the metric does not have.
    fn check_expr(&self, expr: &str) -> Vec<String> {
        let mut problems = Vec::new();
        if let Some(rest) = expr.find('$').map(|i| &expr[i..]) {
            problems.push(format!("unsubstituted variable at {rest:?}"));
        }
        let expr = match parse(expr) {
            Ok(expr) => expr,
            Err(e) => return [problems, vec![format!("does not parse: {e}")]].concat(),
        };
        for selector in selectors(&expr) {
            let Some(metric) = selector.metric else {
                continue;
            };
            let Some(labels) = self.labels_of(&metric) else {
                problems.push(format!("unknown metric {metric}"));
                continue;
            };
            let known = |l: &&String| labels.contains(*l) || TARGET_LABELS.contains(&l.as_str());
            let unknown = selector.labels.iter().filter(|l| !known(l));
            problems.extend(unknown.map(|label| format!("{metric} has no label {label}")));
        }
        problems
    }
}

// The dashboard checker.

fn is_our_datasource(value: &Value) -> bool {
    match value {
        Value::String(s) => s == DATASOURCE_UID || s == "$datasource",
        Value::Object(_) => {
            let prometheus = value["type"].as_str().is_none_or(|t| t == "prometheus");
            value["uid"] == DATASOURCE_UID && prometheus
        }
        _ => false,
    }
}

/// Every `datasource` anywhere in the JSON that is not the `${datasource}` variable.
fn hard_coded_datasources(value: &Value, path: &str, out: &mut Vec<String>) {
    if let Some(v) = value.get("datasource").filter(|v| !is_our_datasource(v)) {
        out.push(format!("{path}.datasource is {v}, not {DATASOURCE_UID}"));
    }
    for (k, v) in value.as_object().into_iter().flatten() {
        hard_coded_datasources(v, &format!("{path}.{k}"), out);
    }
    for (i, v) in value.as_array().into_iter().flatten().enumerate() {
        hard_coded_datasources(v, &format!("{path}[{i}]"), out);
    }
}

/// Every problem of a dashboard; `stem` is its file name without `.json`.
fn check_dashboard(stem: &str, dashboard: &Value, known: &Known) -> Vec<String> {
    let mut problems = Vec::new();
    // Records the problem unless the condition holds.
    macro_rules! check {
        ($ok:expr, $($problem:tt)+) => {
            if !$ok {
                problems.push(format!($($problem)+));
            }
        };
    }
    let (uid, schema) = (&dashboard["uid"], &dashboard["schemaVersion"]);
    check!(uid == stem, "uid {uid} is not the file name {stem}");
    let titled = non_empty_str(&dashboard["title"]).is_some();
    check!(titled, "dashboard has no title");
    let recent = schema.as_u64().unwrap_or(0) >= 39;
    check!(recent, "schemaVersion {schema} < 39");

    // Template variables.
    let vars = variables(dashboard);
    let var = |name: &str| vars.iter().find(|v| v["name"] == name).copied();
    let ds = var("datasource");
    let ds = ds.is_some_and(|v| v["type"] == "datasource" && v["query"] == "prometheus");
    check!(ds, "no datasource variable for prometheus");
    let org_query = "label_values(devin_up, org_id)";
    let org = var("org_id").is_some_and(|v| {
        v["type"] == "query"
            && dashboards::variable_query(v).map(str::trim) == Some(org_query)
            && v["multi"] == true
            && v["includeAll"] == true
    });
    check!(org, "no org_id variable: {org_query}, multi, includeAll");

    // Panels.
    let mut ids = BTreeSet::new();
    for panel in all_panels(dashboard) {
        let title = panel["title"].as_str().unwrap_or("");
        let name = format!("panel {} {title:?}", panel["id"]);
        match panel["id"].as_u64() {
            Some(id) => check!(ids.insert(id), "{name}: duplicate id {id}"),
            None => check!(false, "{name}: no numeric id"),
        }
        check!(!title.trim().is_empty(), "{name}: no title");
        let described = non_empty_str(&panel["description"]).is_some();
        check!(described, "{name}: no description");
        let grid = &panel["gridPos"];
        let fits = match (grid["x"].as_u64(), grid["w"].as_u64()) {
            (Some(x), Some(w)) => x + w <= 24 && w > 0 && grid["h"].is_u64() && grid["y"].is_u64(),
            _ => false,
        };
        check!(fits, "{name}: gridPos {grid} outside the 24 columns");
        if panel["type"] == "row" {
            continue;
        }
        let unit = non_empty_str(&panel["fieldConfig"]["defaults"]["unit"]);
        check!(unit.is_some(), "{name}: no unit in fieldConfig.defaults");
        let ours = is_our_datasource(&panel["datasource"]);
        check!(ours, "{name}: datasource is not {DATASOURCE_UID}");
        let targets = panel["targets"].as_array().cloned().unwrap_or_default();
        check!(!targets.is_empty(), "{name}: no targets");
        let mut ref_ids = BTreeSet::new();
        for target in &targets {
            let ds = is_our_datasource(&target["datasource"]);
            check!(ds, "{name}: a target's datasource is not {DATASOURCE_UID}");
            let has_expr = non_empty_str(&target["expr"]).is_some();
            check!(has_expr, "{name}: a target has no expr");
            let ref_id = &target["refId"];
            let unique = ref_ids.insert(ref_id.to_string());
            check!(unique, "{name}: duplicate refId {ref_id}");
        }
    }

    hard_coded_datasources(dashboard, "$", &mut problems);

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

#[test]
fn every_dashboard_passes_the_static_checks() {
    let known = Known::with_recording_rules();
    for path in dashboard_files() {
        let stem = path.file_stem().unwrap().to_string_lossy();
        let problems = check_dashboard(&stem, &load(&path), &known);
        let report = problems.join("\n  ");
        assert!(problems.is_empty(), "{}:\n  {report}", path.display());
    }
}

/// The titles of the dashboard's rows, in order.
fn row_titles(dashboard: &Value) -> Vec<&str> {
    let panels = all_panels(dashboard).into_iter();
    let rows = panels.filter(|p| p["type"] == "row");
    rows.map(|row| row["title"].as_str().unwrap()).collect()
}

const OVERVIEW: &str = "dashboards/grafana/devin-overview.json";

#[test]
fn the_overview_keeps_its_uid_rows_and_filters() {
    let dashboard = load(&root().join(OVERVIEW));
    assert_eq!(dashboard["uid"], "devin-overview");
    let rows = row_titles(&dashboard);
    let expected = "Health,Sessions,ACUs,Activity,Exporter & API,Spend,Lifecycle,Billing";
    let expected = expected.split(',');
    assert_eq!(rows, expected.collect::<Vec<_>>());
    let vars = variables(&dashboard);
    let names: Vec<&str> = vars.iter().map(|v| v["name"].as_str().unwrap()).collect();
    for name in ["datasource", "org_id", "origin", "category"] {
        assert!(names.contains(&name), "variable {name} missing: {names:?}");
    }
    // Every panel honours the org filter: each selector of a per-org metric matches
    // org_id against the variable.
    let mut values = default_values(&dashboard);
    values.insert("org_id".into(), "ORG_FILTER".into());
    let known = Known::with_recording_rules();
    let filter = r#"org_id=~"ORG_FILTER""#.to_string();
    let queries = raw_queries(&dashboard).into_iter();
    for (title, expr) in queries.filter(|(title, _)| !title.starts_with("variable ")) {
        for selector in selectors(&parse(&substitute(&expr, &values)).unwrap()) {
            let metric = selector.metric.unwrap_or_default();
            let labels = known.labels_of(&metric);
            let per_org = labels.is_some_and(|l| l.contains("org_id"));
            let filtered = !per_org || selector.matchers.contains(&filter);
            assert!(filtered, "{title}: {metric} without {filter} in {expr}");
        }
    }
    // A family without org_id (the exporter process, the enterprise's billing) cannot
    // follow the org filter: its selectors follow the job filter, or the panel's
    // description tells the reader that the Org filter does not apply.
    values.insert("job".into(), "JOB_FILTER".into());
    let job = r#"job=~"JOB_FILTER""#.to_string();
    for panel in all_panels(&dashboard) {
        let title = &panel["title"];
        let description = panel["description"].as_str().unwrap_or("");
        let says = description.contains(ORG_FILTER_DOES_NOT_APPLY);
        let exprs = panel["targets"].as_array().into_iter().flatten();
        for expr in exprs.filter_map(|t| t["expr"].as_str()) {
            for selector in selectors(&parse(&substitute(expr, &values)).unwrap()) {
                let metric = selector.metric.unwrap_or_default();
                let labels = known.labels_of(&metric);
                let per_org = labels.is_some_and(|l| l.contains("org_id"));
                let explained = per_org || says || selector.matchers.contains(&job);
                let why = format!("neither {job} nor {ORG_FILTER_DOES_NOT_APPLY:?}");
                assert!(explained, "{title}: {metric} with {why} in {expr}");
            }
        }
    }
}

/// What the description of a panel reading enterprise-wide families says.
const ORG_FILTER_DOES_NOT_APPLY: &str = "Enterprise-wide: the Org filter does not apply.";

#[test]
fn the_checker_catches_a_bad_dashboard() {
    // One of each mistake the checker must catch.
    let ds = json!({"type": "prometheus", "uid": DATASOURCE_UID});
    let bad = json!({
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
    });
    let problems = check_dashboard("devin-bad", &bad, &Known::with_recording_rules());
    let text = problems.join("\n");
    let expected = r#"uid "something-else" is not the file name devin-bad
schemaVersion 27 < 39
no datasource variable
no org_id variable
panel 2 "Nested without unit": no unit
duplicate id 2
panel 2 "": no title
panel 2 "": no description
gridPos
panel 2 "": datasource is not ${datasource}
a target's datasource is not ${datasource}
a target has no expr
duplicate refId
$.templating.list[0].datasource
"abc123"
unknown metric devin_sessions_total
devin_up has no label status
unsubstituted variable at "$org"#;
    for expected in expected.lines() {
        assert!(text.contains(expected), "missing {expected:?} in:\n{text}");
    }
    // And a good dashboard has none of them (see every_dashboard_passes_the_static_checks).
    assert!(problems.len() >= 18, "{text}");
}

#[test]
fn dashboard_queries_cover_nested_panels_and_variables_and_substitute_everything() {
    let path = root().join(OVERVIEW);
    let dashboard = load(&path);
    let queries = dashboard_queries(&path, &[]);
    let targets = all_panels(&dashboard)
        .into_iter()
        .filter_map(|p| p["targets"].as_array());
    let targets: usize = targets.map(Vec::len).sum();
    let vars = variables(&dashboard);
    let query_variables = vars.iter().filter(|v| v["type"] == "query").count();
    let annotations = dashboard["annotations"]["list"].as_array().unwrap();
    let annotations = annotations.iter().filter(|a| a["expr"].is_string()).count();
    assert!(annotations >= 2, "the blocked-org and error annotations");
    assert_eq!(queries.len(), targets + query_variables + annotations);

    let has = |title: &str, expr: &str| queries.contains(&(title.to_string(), expr.to_string()));
    let any = |part: &str| queries.iter().any(|(_, e)| e.contains(part));
    // A panel of the collapsed "Exporter & API" row is there.
    let latency = queries.iter().filter(|(t, _)| t == "API request latency");
    assert_eq!(latency.count(), 3, "{queries:?}");
    // Query variables come without label_values(...).
    assert!(has("variable org_id", "devin_up"));
    assert!(has("variable origin", "devin_sessions{org_id=~\".*\"}"));
    for (title, expr) in &queries {
        let substituted = !expr.contains('$') && !expr.contains("label_values");
        assert!(substituted, "{title}: {expr}");
    }
    // Built-ins get concrete values.
    assert!(any("[5m]") && any("[1h]"));

    let one_org = dashboard_queries(&path, &[("org_id", "org-a")]);
    assert!(one_org.iter().any(|(_, e)| e.contains("org_id=~\"org-a\"")));
}

#[test]
fn substitution_handles_every_variable_syntax() {
    let values = dashboards::values(&[
        ("org_id", "org-a|org-b"),
        ("org", "WRONG"),
        ("__rate_interval", "5m"),
        ("__range", "1h"),
        ("__range_s", "3600"),
    ]);
    let all = r#"rate(x{a=~"$org_id",b=~"${org_id}",c=~"${org_id:regex}",d=~"[[org_id]]"}[$__rate_interval]) / $__range_s"#;
    assert_eq!(
        substitute(all, &values),
        r#"rate(x{a=~"org-a|org-b",b=~"org-a|org-b",c=~"org-a|org-b",d=~"org-a|org-b"}[5m]) / 3600"#
    );
    // The longest name wins ($__range_s is not $__range followed by "_s"); unknown names
    // and a PromQL regex anchor stay as written.
    assert_eq!(substitute("$__range $__range_s", &values), "1h 3600");
    let unknown = r#"x{a=~"$unknown", b=~"v$"}"#;
    assert_eq!(substitute(unknown, &values), unknown);
}

#[test]
fn variable_queries_lose_their_label_values_wrapper() {
    let nested = r#"devin_sessions{org_id=~"$org_id", status!="a,b"}"#;
    let nested_query = format!("label_values({nested}, origin)");
    for (query, expr) in [
        ("label_values(devin_up, org_id)", Some("devin_up")),
        (nested_query.as_str(), Some(nested)),
        ("label_values(org_id)", None),
        ("label_names()", None),
        ("metrics(devin_.*)", None),
        ("query_result(topk(3, devin_up))", Some("topk(3, devin_up)")),
        ("metrics_total", Some("metrics_total")),
    ] {
        assert_eq!(variable_expr(query).as_deref(), expr, "{query}");
    }
}

#[test]
fn selectors_read_metric_names_and_matcher_labels() {
    let expr = r#"histogram_quantile(0.99, sum by (le, org_id) (rate(devin_api_request_duration_seconds_bucket{org_id=~"a|b", code!="by (x)"}[5m] offset 1h)))
        / on (org_id) group_left (name) devin_org_nickname
        and ignoring(x) org_id:devin_acus_consumed:rate5m > bool 1e3 unless time() - process_start_time_seconds < inf"#;
    // Each selector as `metric{labels}`.
    let found: Vec<String> = selectors(&parse(expr).unwrap())
        .into_iter()
        .map(|s| format!("{}{{{}}}", s.metric.unwrap(), s.labels.join(",")))
        .collect();
    assert_eq!(
        found,
        [
            "devin_api_request_duration_seconds_bucket{org_id,code}",
            "devin_org_nickname{}",
            "org_id:devin_acus_consumed:rate5m{}",
            "process_start_time_seconds{}",
        ]
    );
    let known = Known::with_recording_rules();
    assert_eq!(
        known.check_expr(expr),
        [
            "devin_api_request_duration_seconds_bucket has no label code",
            "unknown metric devin_org_nickname"
        ]
    );
    let problems = known.check_expr(r#"devin_sessions{pr_state="open"}"#);
    assert_eq!(problems, ["devin_sessions has no label pr_state"]);
}

// Rules.

#[test]
fn recording_rules_follow_the_naming_convention_and_read_the_contract() {
    let rules = rules("recording.yml");
    assert!(rules.len() >= 5, "{rules:?}");
    let contract = Known::contract();
    for (i, rule) in rules.iter().enumerate() {
        let name = &rule.name;
        let parts: Vec<&str> = name.split(':').collect();
        assert_eq!(parts.len(), 3, "{name}: not level:metric:operations");
        assert!(parts.iter().all(|p| !p.is_empty()), "{name}");
        let named = parts[1].starts_with("devin_");
        assert!(named, "{name}: the metric part names the source metric");
        assert!(!rule.expr.is_empty(), "{name}: no expr");
        // A rule reads the contract or a rule recorded above it.
        let expr = rule.parsed();
        for metric in metric_names(&expr) {
            let above = rules[..=i].iter().any(|r| r.name == metric);
            let readable = contract.labels_of(&metric).is_some() || above;
            assert!(readable, "{name}: reads {metric}");
        }
        // The level names the labels kept.
        if let Some(labels) = grouping_labels(&expr) {
            let mut level = parts[0].to_string();
            for label in labels.iter().filter(|l| *l != "le") {
                let named = level.contains(label.as_str());
                assert!(named, "{name}: level lacks {label}");
                level = level.replacen(label.as_str(), "", 1);
            }
            let rest_empty = level.chars().all(|c| c == '_');
            assert!(rest_empty, "{name}: level names labels not kept");
        }
    }
}

#[test]
fn alerts_read_the_contract_and_carry_severity_and_runbook_annotations() {
    let alerts = rules("alerts.yml");
    assert!(alerts.len() >= 9, "{alerts:?}");
    let contract = Known::contract();
    for alert in &alerts {
        let (name, expr) = (&alert.name, &alert.expr);
        assert!(name.starts_with("Devin"), "{name}");
        let problems = contract.check_expr(expr);
        assert!(problems.is_empty(), "{name}: {problems:?}");
        let severity = alert.label("severity");
        let known_severity = ["critical", "warning", "info"].contains(&severity);
        assert!(known_severity, "{name}: severity {severity:?}");
        let summary = alert.annotation("summary");
        assert!(summary.len() >= 20, "{name}: summary {summary:?}");
        // Plain enough to adapt: a few lines, no look-back comparisons.
        let plain = expr.lines().count() <= 5 && !expr.contains("offset");
        assert!(plain, "{name}: expr too involved:\n{expr}");
        let long = alert.annotation("description").len() >= 150;
        assert!(long, "{name}: description too short to say what to do");
    }
    // The severities used, and the alerts the org's blocking reasons depend on.
    let severities: BTreeSet<&str> = alerts.iter().map(|a| a.label("severity")).collect();
    assert_eq!(severities, BTreeSet::from(["critical", "warning", "info"]));
    let suspension = "DevinSessionsSuspendedForCreditsOrLimits";
    let credits = alerts.iter().find(|a| a.name == suspension);
    let credits = credits.expect("the suspension alert");
    let reasons = "out_of_credits out_of_quota usage_limit_exceeded org_usage_limit_exceeded \
                   payment_declined";
    for reason in reasons.split_whitespace() {
        assert!(credits.expr.contains(reason), "{reason}");
    }
    assert_eq!(credits.label("severity"), "critical");
}

/// Where the alerts' `runbook_url`s point until the user replaces it (docs/runbook.md says how).
const RUNBOOK_BASE: &str = "https://runbooks.example.com/devin-exporter/";

/// The sections of a runbook: `## Heading` and the text below it.
fn runbook_sections(text: &str) -> BTreeMap<String, String> {
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
    let runbook = read(&root().join("docs/runbook.md"));
    let sections = runbook_sections(&runbook);
    let contract = Known::contract();
    for alert in &rules("alerts.yml") {
        let name = &alert.name;
        let url = format!("{RUNBOOK_BASE}runbook.md#{}", name.to_lowercase());
        assert_eq!(alert.annotation("runbook_url"), url, "{name}: runbook_url");
        let section = sections
            .get(name)
            .unwrap_or_else(|| panic!("docs/runbook.md has no section ## {name}"));
        for part in ["**What it means.**", "**Confirm.**", "**What to do.**"] {
            assert!(section.contains(part), "{name}: no {part}");
        }
        let confirm = promql_blocks(section);
        assert_eq!(confirm.len(), 1, "{name}: one query to confirm");
        let problems = contract.check_expr(&confirm[0]);
        assert!(problems.is_empty(), "{name}: {problems:?}");
    }
    // No section for an alert that does not exist.
    let names = alert_names();
    for heading in sections.keys().filter(|h| h.starts_with("Devin")) {
        let known = names.contains(heading);
        assert!(known, "runbook section for unknown {heading}");
    }
    // The runbook says how to replace the base.
    assert!(runbook.contains(&format!("s#{RUNBOOK_BASE}#")));
}

#[test]
#[cfg_attr(
    not(has_promtool),
    ignore = "needs promtool: apt-get install prometheus"
)]
fn promtool_parses_every_runbook_query() {
    if !require_tool("promtool") {
        return;
    }
    // The confirming queries, as recording rules named after their alerts.
    let sections = runbook_sections(&read(&root().join("docs/runbook.md")));
    let queries: Vec<Value> = sections
        .iter()
        .flat_map(|(name, section)| {
            let rule = move |q| json!({"record": format!("runbook_{name}"), "expr": q});
            promql_blocks(section).into_iter().map(rule)
        })
        .collect();
    assert!(!queries.is_empty(), "docs/runbook.md has queries");
    let rules = json!({"groups": [{"name": "runbook", "rules": queries}]});
    let (ok, text) = promtool_on(&["check", "rules"], &rules);
    assert!(ok, "a runbook query does not parse:\n{text}\n{queries:?}");
}

/// The promtool rule unit tests, `dashboards/prometheus/tests/*.yml`.
fn rule_test_files() -> Vec<PathBuf> {
    files_with_extension("dashboards/prometheus/tests", "yml")
}

#[test]
fn every_alert_has_a_firing_and_a_quiet_unit_test() {
    // Each alert test case: the alert, and whether it expects alerts.
    let mut cases = Vec::new();
    for file in rule_test_files() {
        let file: Value = yaml(&file);
        for test in file["tests"].as_array().expect("tests") {
            for case in test["alert_rule_test"].as_array().into_iter().flatten() {
                let alert = case["alertname"].as_str().expect("alertname").to_string();
                let fires = case["exp_alerts"].as_array().is_some_and(|a| !a.is_empty());
                cases.push((alert, fires));
            }
        }
    }
    let names = alert_names();
    // Each alert with a firing (true) and a quiet (false) case.
    let both = |n: &String| [(n.clone(), true), (n.clone(), false)];
    let wanted = names.iter().flat_map(both);
    let missing: Vec<_> = wanted.filter(|case| !cases.contains(case)).collect();
    assert!(missing.is_empty(), "alerts without unit tests: {missing:?}");
    // Tests name only existing alerts.
    for (name, _) in &cases {
        assert!(names.contains(name), "a test names unknown alert {name}");
    }
}

// promtool.

/// Runs promtool; (success, stdout and stderr).
fn promtool(args: &[&str], files: &[PathBuf]) -> (bool, String) {
    let out = Command::new("promtool").args(args).args(files).output();
    let out = out.expect("run promtool");
    let text = String::from_utf8_lossy(&out.stdout) + String::from_utf8_lossy(&out.stderr);
    (out.status.success(), text.into_owned())
}

/// Runs promtool on a scratch file holding `text`: YAML, or JSON, which is YAML too.
fn promtool_on(args: &[&str], text: impl std::fmt::Display) -> (bool, String) {
    let scratch = TempDir::new().unwrap();
    let file = scratch.path().join("file.yml");
    std::fs::write(&file, text.to_string()).unwrap();
    promtool(args, &[file])
}

/// A promtool unit test (1m steps) expecting each of `exprs` to return series at 2h:
/// `count(q) > bool 0` is 1 when q has series, nothing when not.
fn expect_data(rule_files: &[PathBuf], input_series: &[Value], exprs: &[&str]) -> Value {
    let has_data = |expr: &&str| {
        let expr = format!("count({expr}) > bool 0");
        json!({"expr": expr, "eval_time": "2h", "exp_samples": [{"labels": "{}", "value": 1}]})
    };
    let expr_tests: Vec<Value> = exprs.iter().map(has_data).collect();
    let test =
        json!({"interval": "1m", "input_series": input_series, "promql_expr_test": expr_tests});
    json!({"rule_files": rule_files, "evaluation_interval": "1m", "tests": [test]})
}

#[test]
#[cfg_attr(
    not(has_promtool),
    ignore = "needs promtool: apt-get install prometheus"
)]
fn promtool_accepts_the_rules_and_their_unit_tests_and_fails_broken_ones() {
    if !require_tool("promtool") {
        return;
    }
    let broken = json!({"alert": "Broken", "expr": "sum by (org_id (devin_up)"});
    let broken = json!({"groups": [{"name": "broken", "rules": [broken]}]});
    // A wrong expectation: DevinExporterDown for a target up.
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
    let rule_files = ["alerts.yml", "recording.yml"].map(|f| rules_dir().join(f));
    let cases = [
        ("check", rule_files.to_vec(), broken),
        ("test", rule_test_files(), wrong),
    ];
    for (command, files, bad) in cases {
        let (ok, text) = promtool(&[command, "rules"], &files);
        let passed = ok && text.contains("SUCCESS");
        assert!(passed, "promtool {command} rules:\n{text}");
        let (ok, text) = promtool_on(&[command, "rules"], &bad);
        let caught = !ok && text.contains("FAILED");
        assert!(caught, "promtool {command} rules passed {bad}:\n{text}");
    }
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
devin_org_max_cycle_acu_limit{org_id="org-a"} 1000x150
devin_billing_cycle_acus{product="devin"} 500+1x150
devin_billing_cycle_acus{product="cascade"} 20+0.1x150
devin_org_billing_cycle_acus{org_id="org-a", product="devin"} 500+1x150
devin_billing_cycle_start_timestamp_seconds 0x150
devin_billed_acus_total{product="devin"} 0+1x150
devin_org_billed_acus_total{org_id="org-a", product="devin"} 0+1x150
devin_queue_sessions 3x150
devin_queue_pressure{status="normal"} 1x150
devin_queue_pressure{status="elevated"} 0x150
devin_queue_pressure{status="high"} 0x150
devin_billing_up{source="enterprise_consumption"} 1x150
devin_billing_last_success_timestamp_seconds{source="enterprise_consumption"} 0+60x150
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
#[cfg_attr(
    not(has_promtool),
    ignore = "needs promtool: apt-get install prometheus"
)]
fn every_dashboard_query_parses_and_returns_data_on_synthetic_metrics() {
    if !require_tool("promtool") {
        return;
    }
    let recording = [rules_dir().join("recording.yml")];
    for path in dashboard_files() {
        let queries = dashboard_queries(&path, &[]);
        let exprs: Vec<&str> = queries.iter().map(|(_, e)| e.as_str()).collect();
        let test = expect_data(&recording, &synthetic_series(), &exprs);
        let (ok, text) = promtool_on(&["test", "rules"], &test);
        let listing: Vec<String> = queries.iter().map(|(t, e)| format!("{t}: {e}")).collect();
        let (path, listing) = (path.display(), listing.join("\n"));
        let why = "a query does not parse or returns nothing";
        assert!(ok, "{path}: {why}:\n{text}\nqueries:\n{listing}");
    }
    // And the check notices a query reading a series that does not exist.
    let series = [json!({"series": r#"devin_up{org_id="org-a"}"#, "values": "1x150"})];
    let test = expect_data(&[], &series, &[r#"devin_up{org_id="org-b"}"#]);
    let (ok, text) = promtool_on(&["test", "rules"], &test);
    assert!(!ok, "promtool passed a query without data:\n{text}");
}

// Provisioning, the Compose example and the README.

fn compose_dir() -> PathBuf {
    root().join("examples/compose")
}

/// Bind mounts `(source, target)` of every Compose service, sources relative to the Compose
/// file.
fn compose_mounts(compose: &Value) -> Vec<(String, String)> {
    let services = compose["services"].as_object().expect("services");
    services
        .values()
        .flat_map(|s| s["volumes"].as_array().into_iter().flatten())
        .map(|v| v.as_str().expect("volumes in the short syntax"))
        .filter(|v| v.starts_with("./") || v.starts_with("../"))
        .map(|v| {
            let mut parts = v.split(':').map(String::from);
            (parts.next().unwrap(), parts.next().unwrap_or_default())
        })
        .collect()
}

fn mount_target(compose: &Value, source: &str) -> String {
    compose_mounts(compose)
        .into_iter()
        .find(|(s, _)| s == source)
        .map(|(_, t)| t)
        .unwrap_or_else(|| panic!("{source} not mounted"))
}

#[test]
fn compose_example_mounts_what_exists_where_the_configs_expect_it() {
    let dir = compose_dir();
    let compose: Value = yaml(&dir.join("docker-compose.yml"));
    let mounts = compose_mounts(&compose);
    assert!(mounts.len() >= 5, "{mounts:?}");
    for (source, target) in &mounts {
        assert!(dir.join(source).exists(), "mount source {source} missing");
        assert!(target.starts_with('/'), "{source}: target {target:?}");
    }
    let target_of = |source: &str| mount_target(&compose, source);
    let service = |name: &str| {
        let service = &compose["services"][name];
        assert!(service.is_object(), "no service {name}");
        service
    };
    // Grafana reads the dashboards where the provider looks for them.
    let grafana = root().join("dashboards/grafana/provisioning");
    let provider: Value = yaml(&grafana.join("dashboards/devin.yaml"));
    let options = &provider["providers"][0]["options"];
    let provider_path = options["path"].as_str().unwrap();
    assert_eq!(target_of("../../dashboards/grafana"), provider_path);
    // And the home dashboard is one of them.
    let home = &service("grafana")["environment"]["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"];
    assert_eq!(home, &format!("{provider_path}/devin-overview.json"));
    for folder in ["datasources", "dashboards"] {
        let target = target_of(&format!("../../dashboards/grafana/provisioning/{folder}"));
        assert_eq!(target, format!("/etc/grafana/provisioning/{folder}"));
    }
    // The data source points at the Compose Prometheus service.
    let datasources: Value = yaml(&grafana.join("datasources/prometheus.yaml"));
    let datasources = datasources["datasources"].as_array().unwrap();
    let url = "http://prometheus:9090";
    assert!(datasources.iter().any(|d| d["url"] == url));
    service("prometheus");
    // The exporter: demo mode from the repository's Dockerfile on 10164, scraped there.
    let exporter = service("exporter");
    let build = json!({"context": "../..", "dockerfile": "Dockerfile"});
    assert_eq!(exporter["build"], build, "the exporter is built");
    assert_eq!(exporter["command"], json!(["--demo"]));
    let ports = exporter["ports"].as_array().unwrap();
    let published = |p: &Value| p.as_str().is_some_and(|p| p.ends_with("10164:10164"));
    assert!(ports.iter().any(published), "{ports:?}");
    let prometheus: Value = yaml(&dir.join("prometheus.yml"));
    let jobs = prometheus["scrape_configs"].as_array().unwrap();
    let job = jobs.iter().find(|j| j["job_name"] == "devin");
    let job = job.expect("job devin");
    let static_configs = job["static_configs"].as_array().unwrap();
    let targets = json!(["exporter:10164"]);
    assert!(static_configs.iter().any(|s| s["targets"] == targets));
    // Prometheus loads the rules from where they are mounted.
    let rules_target = target_of("../../dashboards/prometheus");
    let rule_files = prometheus["rule_files"].as_array().unwrap();
    for rules in ["alerts.yml", "recording.yml"] {
        let file = format!("{rules_target}/{rules}");
        let loaded = rule_files.contains(&json!(file));
        assert!(loaded, "prometheus.yml does not load {file}");
    }
}

#[test]
#[cfg_attr(
    not(has_promtool),
    ignore = "needs promtool: apt-get install prometheus"
)]
fn promtool_accepts_the_compose_prometheus_config() {
    if !require_tool("promtool") {
        return;
    }
    // The rule files are at their container path there: point at the repository's.
    let compose = yaml(&compose_dir().join("docker-compose.yml"));
    let rules_target = mount_target(&compose, "../../dashboards/prometheus");
    let config = read(&compose_dir().join("prometheus.yml")).replace(
        &format!("{rules_target}/"),
        &format!("{}/", rules_dir().to_string_lossy()),
    );
    let (ok, text) = promtool_on(&["check", "config"], &config);
    assert!(ok, "promtool check config:\n{text}");
    assert!(text.contains("2 rule files found"), "{text}");
}

#[test]
fn readme_describes_every_row_and_alert_and_the_test_command() {
    let readme = read(&root().join("dashboards/README.md"));
    let mut wanted = vec!["promtool test rules dashboards/prometheus/tests/*.yml".to_string()];
    for dashboard in dashboard_files().iter().map(|path| load(path)) {
        let rows = row_titles(&dashboard);
        wanted.extend(rows.iter().map(|row| format!("**{row}**")));
    }
    wanted.extend(alert_names().iter().map(|name| format!("`{name}`")));
    for text in wanted {
        assert!(readme.contains(&text), "README lacks {text}");
    }
}
