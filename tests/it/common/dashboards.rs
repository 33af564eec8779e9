//! Grafana dashboards as test input: every panel (the panels nested in collapsed rows
//! included), every PromQL expression of the panels, query variables and annotations with the
//! template variables replaced by concrete values, and the metric names and label matchers
//! an expression uses.
//!
//! `dashboard_queries(path)` gives `(panel title, expression)` pairs ready to be sent to a
//! Prometheus; `dashboard_queries_with` sets some variables (e.g. one `org_id`) instead of
//! their defaults.
//!
//! Expressions are read with `promql-parser`: the selectors and grouping labels come from
//! walking the parsed AST.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use promql_parser::label::MatchOp;
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

/// Reads and parses a dashboard JSON file.
pub fn load(path: &Path) -> Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: invalid JSON: {e}", path.display()))
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
    dashboard["templating"]["list"]
        .as_array()
        .map(|l| l.iter().collect())
        .unwrap_or_default()
}

/// The query text of a variable, stored as a string or (Grafana 10+) as `{"query": ...}`.
pub fn variable_query(variable: &Value) -> Option<&str> {
    match &variable["query"] {
        Value::String(s) => Some(s),
        Value::Object(o) => o.get("query").and_then(Value::as_str),
        _ => None,
    }
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
    let mut out = Vec::new();
    for panel in all_panels(dashboard) {
        let title = panel["title"].as_str().unwrap_or("").to_string();
        for target in panel["targets"].as_array().into_iter().flatten() {
            if let Some(expr) = target["expr"].as_str().filter(|e| !e.trim().is_empty()) {
                out.push((title.clone(), expr.to_string()));
            }
        }
    }
    for variable in variables(dashboard) {
        if variable["type"] != "query" {
            continue;
        }
        if let Some(expr) = variable_query(variable).and_then(variable_expr) {
            let name = variable["name"].as_str().unwrap_or("");
            out.push((format!("variable {name}"), expr));
        }
    }
    for annotation in dashboard["annotations"]["list"]
        .as_array()
        .into_iter()
        .flatten()
    {
        if let Some(expr) = annotation["expr"].as_str().filter(|e| !e.trim().is_empty()) {
            let name = annotation["name"].as_str().unwrap_or("");
            out.push((format!("annotation {name}"), expr.to_string()));
        }
    }
    out
}

/// A variable map from `(name, value)` pairs.
pub fn values(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
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
        let value = if variable["type"] == "datasource" {
            "prometheus".to_string()
        } else if let Some(all) = variable["allValue"].as_str().filter(|a| !a.is_empty()) {
            all.to_string()
        } else if variable["multi"] == true || variable["includeAll"] == true {
            ".*".to_string()
        } else if let Some(current) = variable["current"]["value"].as_str() {
            current.to_string()
        } else {
            ".*".to_string()
        };
        values.insert(name.to_string(), value);
    }
    values
}

/// Replaces Grafana variable references — `$name`, `${name}`, `${name:format}`,
/// `[[name]]`, `[[name:format]]` — by their values; unknown names stay as written.
pub fn substitute(text: &str, values: &BTreeMap<String, String>) -> String {
    let reference =
        Regex::new(r"\$\{(\w+)(?::[^}]*)?\}|\[\[(\w+)(?::[^\]]*)?\]\]|\$(\w+)").unwrap();
    reference
        .replace_all(text, |c: &Captures| {
            let name = c.iter().skip(1).flatten().next().unwrap().as_str();
            values
                .get(name)
                .cloned()
                .unwrap_or_else(|| c[0].to_string())
        })
        .into_owned()
}

/// Every PromQL expression of the dashboard at `path`, panels (nested ones included) and
/// query variables, as `(panel title or "variable NAME", expression)`, with the template
/// variables replaced by [`default_values`].
pub fn dashboard_queries(path: impl AsRef<Path>) -> Vec<(String, String)> {
    dashboard_queries_with(path, &[])
}

/// [`dashboard_queries`] with some variables set, e.g. `&[("org_id", "org-abc")]`.
pub fn dashboard_queries_with(
    path: impl AsRef<Path>,
    overrides: &[(&str, &str)],
) -> Vec<(String, String)> {
    let dashboard = load(path.as_ref());
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
        .map(|vs| Selector {
            matchers: vs.matchers.matchers.iter().map(|m| m.to_string()).collect(),
            metric: vs.name.clone().or_else(|| {
                vs.matchers
                    .matchers
                    .iter()
                    .find(|m| m.name == "__name__" && m.op == MatchOp::Equal)
                    .map(|m| m.value.clone())
            }),
            labels: vs
                .matchers
                .matchers
                .iter()
                .chain(vs.matchers.or_matchers.iter().flatten())
                .map(|m| m.name.clone())
                .filter(|name| name != "__name__")
                .collect(),
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
