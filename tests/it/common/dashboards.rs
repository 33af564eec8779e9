//! Grafana dashboards as test input: every panel (nested ones included), every PromQL
//! expression of panels, query variables and annotations with the template variables
//! replaced by concrete values, and, from the `promql-parser` AST, the metric names, label
//! matchers and grouping labels an expression uses.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use promql_parser::label::{MatchOp, Matcher};
use promql_parser::parser::{Expr, LabelModifier};
use regex::{Captures, Regex};
use serde_json::Value;

/// Values of Grafana's built-in variables in the expressions handed out: a 5 minute rate
/// window, a 1 minute step, and a one hour dashboard range.
pub const BUILTIN_VALUES: &[(&str, &str)] = &[
    ("__rate_interval", "5m"),
    ("__rate_interval_ms", "300000"),
    ("__interval", "1m"),
    ("__interval_ms", "60000"),
    ("__range", "1h"),
    ("__range_s", "3600"),
    ("__range_ms", "3600000"),
];

/// The repository root.
pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The files of `dir` (under the repository root) ending in `.ext`, sorted.
pub fn files_with_extension(dir: &str, ext: &str) -> Vec<PathBuf> {
    let dir = root().join(dir);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_file() && p.extension().and_then(|e| e.to_str()) == Some(ext))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no {}/*.{ext}", dir.display());
    files
}

/// The dashboards, `dashboards/grafana/*.json`.
pub fn dashboard_files() -> Vec<PathBuf> {
    files_with_extension("dashboards/grafana", "json")
}

/// Reads a text file.
pub fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Reads and parses a dashboard JSON file.
pub fn load(path: &Path) -> Value {
    serde_json::from_str(&read(path))
        .unwrap_or_else(|e| panic!("{}: invalid JSON: {e}", path.display()))
}

/// A string that is not blank.
pub fn non_empty_str(value: &Value) -> Option<&str> {
    value.as_str().filter(|s| !s.trim().is_empty())
}

/// Every panel of the dashboard in layout order: rows, then the panels nested in a row
/// (collapsed rows keep theirs in `panels`) right after it.
pub fn all_panels(dashboard: &Value) -> Vec<&Value> {
    fn walk<'a>(panels: &'a Value, out: &mut Vec<&'a Value>) {
        for panel in panels.as_array().into_iter().flatten() {
            out.push(panel);
            walk(&panel["panels"], out);
        }
    }
    let mut out = Vec::new();
    walk(&dashboard["panels"], &mut out);
    out
}

/// The template variables (`templating.list`).
pub fn variables(dashboard: &Value) -> Vec<&Value> {
    let list = dashboard["templating"]["list"].as_array();
    list.into_iter().flatten().collect()
}

/// The query text of a variable, stored as a string or (Grafana 10+) as `{"query": ...}`.
pub fn variable_query(variable: &Value) -> Option<&str> {
    let query = &variable["query"];
    query.as_str().or_else(|| query["query"].as_str())
}

/// The PromQL inside a Prometheus variable query: `label_values(expr, label)` and
/// `query_result(expr)` give `expr`; `label_values(label)`, `label_names()` and
/// `metrics(regex)` read no expression and give `None`; anything else is PromQL itself.
pub fn variable_expr(query: &str) -> Option<String> {
    let query = query.trim();
    let call = |func: &str| {
        let inner = query.strip_prefix(func)?.trim_start().strip_prefix('(')?;
        Some(inner.trim_end().strip_suffix(')')?.trim())
    };
    if call("label_names").or_else(|| call("metrics")).is_some() {
        return None;
    }
    if let Some(inner) = call("label_values") {
        // The label is a plain name, so the expression ends at the last comma.
        return inner
            .rsplit_once(',')
            .map(|(expr, _)| expr.trim().to_string());
    }
    let expr = call("query_result").unwrap_or(query);
    (!expr.is_empty()).then(|| expr.to_string())
}

/// Every expression of the dashboard as written: `(panel title, expr)` for each panel
/// target with a non-empty `expr`, then `("variable NAME", expr)` for each query variable
/// whose query reads an expression, then `("annotation NAME", expr)` for each annotation
/// query with an `expr`.
pub fn raw_queries(dashboard: &Value) -> Vec<(String, String)> {
    let expr = |v: &Value| non_empty_str(&v["expr"]).map(String::from);
    let name = |v: &Value| v["name"].as_str().unwrap_or("").to_string();
    let mut out = Vec::new();
    for panel in all_panels(dashboard) {
        let title = panel["title"].as_str().unwrap_or("");
        let targets = panel["targets"].as_array().into_iter().flatten();
        out.extend(targets.filter_map(expr).map(|e| (title.to_string(), e)));
    }
    for variable in variables(dashboard) {
        let expr = variable_query(variable).and_then(variable_expr);
        if let Some(expr) = expr.filter(|_| variable["type"] == "query") {
            out.push((format!("variable {}", name(variable)), expr));
        }
    }
    let annotations = dashboard["annotations"]["list"].as_array();
    for annotation in annotations.into_iter().flatten() {
        if let Some(expr) = expr(annotation) {
            out.push((format!("annotation {}", name(annotation)), expr));
        }
    }
    out
}

/// A variable map from `(name, value)` pairs.
pub fn values(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    let pairs = pairs.iter().map(|(k, v)| (k.to_string(), v.to_string()));
    pairs.collect()
}

/// Concrete values for every variable of the dashboard: Grafana's built-ins
/// ([`BUILTIN_VALUES`]), `prometheus` for a data source variable, and for a query or custom
/// variable its `allValue`, else `.*` when it is multi-value or has an All option (every
/// dashboard matcher of such a variable is a regex), else its current value.
pub fn default_values(dashboard: &Value) -> BTreeMap<String, String> {
    let mut values = self::values(BUILTIN_VALUES);
    for variable in variables(dashboard) {
        let Some(name) = variable["name"].as_str() else {
            continue;
        };
        let all = variable["allValue"].as_str().filter(|a| !a.is_empty());
        let value = if variable["type"] == "datasource" {
            "prometheus"
        } else if let Some(all) = all {
            all
        } else if variable["multi"] == true || variable["includeAll"] == true {
            ".*"
        } else {
            variable["current"]["value"].as_str().unwrap_or(".*")
        };
        values.insert(name.to_string(), value.to_string());
    }
    values
}

/// Replaces Grafana variable references — `$name`, `${name}`, `${name:format}`,
/// `[[name]]`, `[[name:format]]` — by their values; unknown names stay as written.
pub fn substitute(text: &str, values: &BTreeMap<String, String>) -> String {
    let reference =
        Regex::new(r"\$\{(\w+)(?::[^}]*)?\}|\[\[(\w+)(?::[^\]]*)?\]\]|\$(\w+)").unwrap();
    let value = |c: &Captures| {
        let name = c.iter().skip(1).flatten().next().unwrap().as_str();
        values.get(name).map_or(&c[0], String::as_str).to_string()
    };
    reference.replace_all(text, value).into_owned()
}

/// Every [`raw_queries`] expression of the dashboard at `path` with the template variables
/// replaced by [`default_values`], some of them overridden, e.g. `&[("org_id", "org-a")]`.
pub fn dashboard_queries(path: &Path, overrides: &[(&str, &str)]) -> Vec<(String, String)> {
    let dashboard = load(path);
    let mut values = default_values(&dashboard);
    values.extend(self::values(overrides));
    raw_queries(&dashboard)
        .into_iter()
        .map(|(title, expr)| (title, substitute(&expr, &values)))
        .collect()
}

/// One vector selector of an expression: its metric name (`None` for a selector without
/// one) and the label names its matchers use (`__name__` left out).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Selector {
    pub metric: Option<String>,
    pub labels: Vec<String>,
    /// The matchers as written, e.g. `org_id=~"a|b"`.
    pub matchers: Vec<String>,
}

/// Parses a PromQL expression.
pub fn parse(expr: &str) -> Result<Expr, String> {
    promql_parser::parser::parse(expr)
}

/// The AST nodes of an expression in pre-order, aggregation parameters included.
fn nodes(expr: &Expr) -> Vec<&Expr> {
    let children: Vec<&Expr> = match expr {
        Expr::Aggregate(a) => a.param.iter().chain([&a.expr]).map(|e| &**e).collect(),
        Expr::Unary(u) => vec![&u.expr],
        Expr::Binary(b) => vec![&b.lhs, &b.rhs],
        Expr::Paren(p) => vec![&p.expr],
        Expr::Subquery(s) => vec![&s.expr],
        Expr::Call(c) => c.args.args.iter().map(|e| &**e).collect(),
        _ => Vec::new(),
    };
    let mut out = vec![expr];
    out.extend(children.into_iter().flat_map(nodes));
    out
}

/// The vector selectors of a parsed expression, in order.
pub fn selectors(expr: &Expr) -> Vec<Selector> {
    nodes(expr)
        .into_iter()
        .filter_map(|node| match node {
            Expr::VectorSelector(vs) => Some(vs),
            Expr::MatrixSelector(ms) => Some(&ms.vs),
            _ => None,
        })
        .map(|vs| {
            let matchers = &vs.matchers.matchers;
            let or_matchers = vs.matchers.or_matchers.iter().flatten();
            let names = matchers.iter().chain(or_matchers).map(|m| m.name.clone());
            let is_name = |m: &&Matcher| m.name == "__name__" && m.op == MatchOp::Equal;
            let named = matchers.iter().find(is_name);
            Selector {
                metric: vs.name.clone().or_else(|| named.map(|m| m.value.clone())),
                labels: names.filter(|n| n != "__name__").collect(),
                matchers: matchers.iter().map(|m| m.to_string()).collect(),
            }
        })
        .collect()
}

/// The labels of the outermost aggregation's `by (...)`.
pub fn grouping_labels(expr: &Expr) -> Option<BTreeSet<String>> {
    nodes(expr).into_iter().find_map(|node| match node {
        Expr::Aggregate(a) => match &a.modifier {
            Some(LabelModifier::Include(labels)) => Some(labels.labels.iter().cloned().collect()),
            _ => None,
        },
        _ => None,
    })
}

/// The metric names a parsed expression reads.
pub fn metric_names(expr: &Expr) -> BTreeSet<String> {
    selectors(expr)
        .into_iter()
        .filter_map(|s| s.metric)
        .collect()
}
