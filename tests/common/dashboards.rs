//! Grafana dashboards as test input: every panel (the panels nested in collapsed rows
//! included), every PromQL expression of the panels, query variables and annotations with the
//! template variables replaced by concrete values, and the metric names and label matchers
//! an expression uses.
//!
//! `dashboard_queries(path)` gives `(panel title, expression)` pairs ready to be sent to a
//! Prometheus; `dashboard_queries_with` sets some variables (e.g. one `org_id`) instead of
//! their defaults.
//!
//! Only serde_json and std: the PromQL reading is a small tokenizer that knows strings,
//! label matchers, durations, grouping clauses and function calls, enough for the
//! expressions dashboards and rules use, not a PromQL parser.
#![allow(dead_code)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

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
    for (func, keeps_all) in [
        ("label_values", false),
        ("query_result", true),
        ("label_names", false),
        ("metrics", false),
    ] {
        let Some(rest) = query.strip_prefix(func) else {
            continue;
        };
        let Some(inner) = rest.trim_start().strip_prefix('(') else {
            continue;
        };
        let inner = inner.trim_end().strip_suffix(')')?.trim();
        if func == "label_names" || func == "metrics" {
            return None;
        }
        if keeps_all {
            return Some(inner.to_string());
        }
        // label_values(expr, label): the expression ends at the last top-level comma.
        return last_top_level_comma(inner).map(|i| inner[..i].trim().to_string());
    }
    if query.is_empty() {
        None
    } else {
        Some(query.to_string())
    }
}

fn last_top_level_comma(text: &str) -> Option<usize> {
    let mut depth = 0i32;
    let mut quote: Option<char> = None;
    let mut escaped = false;
    let mut found = None;
    for (i, c) in text.char_indices() {
        if let Some(q) = quote {
            if escaped {
                escaped = false;
            } else if c == '\\' {
                escaped = true;
            } else if c == q {
                quote = None;
            }
            continue;
        }
        match c {
            '"' | '\'' | '`' => quote = Some(c),
            '(' | '{' | '[' => depth += 1,
            ')' | '}' | ']' => depth -= 1,
            ',' if depth == 0 => found = Some(i),
            _ => {}
        }
    }
    found
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

/// Concrete values for every variable of the dashboard: Grafana's built-ins
/// ([`BUILTIN_VALUES`]), `prometheus` for a data source variable, and for a query or custom
/// variable its `allValue`, else `.*` when it is multi-value or has an All option (every
/// dashboard matcher of such a variable is a regex), else its current value.
pub fn default_values(dashboard: &Value) -> BTreeMap<String, String> {
    let mut values: BTreeMap<String, String> = BUILTIN_VALUES
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
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
    fn word_len(s: &str) -> usize {
        s.find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(s.len())
    }
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(i) = rest.find(['$', '[']) {
        out.push_str(&rest[..i]);
        rest = &rest[i..];
        // (name, length of the whole reference)
        let reference = if let Some(body) = rest.strip_prefix("${") {
            body.find('}').map(|end| {
                let inner = &body[..end];
                (inner.split(':').next().unwrap_or(""), end + 3)
            })
        } else if let Some(body) = rest.strip_prefix("[[") {
            body.find("]]").map(|end| {
                let inner = &body[..end];
                (inner.split(':').next().unwrap_or(""), end + 4)
            })
        } else if let Some(body) = rest.strip_prefix('$') {
            let n = word_len(body);
            (n > 0).then(|| (&body[..n], n + 1))
        } else {
            None
        };
        match reference.and_then(|(name, len)| values.get(name).map(|v| (v, len))) {
            Some((value, len)) => {
                out.push_str(value);
                rest = &rest[len..];
            }
            None => {
                let c = rest.chars().next().unwrap();
                out.push(c);
                rest = &rest[c.len_utf8()..];
            }
        }
    }
    out.push_str(rest);
    out
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
    for (name, value) in overrides {
        values.insert(name.to_string(), value.to_string());
    }
    raw_queries(&dashboard)
        .into_iter()
        .map(|(title, expr)| (title, substitute(&expr, &values)))
        .collect()
}

/// One vector selector of an expression: its metric name (`None` for `{__name__=...}`
/// style selectors) and the label names its matchers use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Selector {
    pub metric: Option<String>,
    pub labels: Vec<String>,
}

const KEYWORDS: &[&str] = &[
    "and", "or", "unless", "offset", "bool", "atan2", "inf", "nan",
];
const AGGREGATIONS: &[&str] = &[
    "sum",
    "min",
    "max",
    "avg",
    "group",
    "stddev",
    "stdvar",
    "count",
    "count_values",
    "bottomk",
    "topk",
    "quantile",
    "limitk",
    "limit_ratio",
];
const GROUPING: &[&str] = &[
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
];

/// The vector selectors of a PromQL expression, in order.
pub fn selectors(expr: &str) -> Vec<Selector> {
    let chars: Vec<char> = expr.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    let skip_ws = |mut j: usize| {
        while j < chars.len() && chars[j].is_whitespace() {
            j += 1;
        }
        j
    };
    while i < chars.len() {
        let c = chars[i];
        if c == '"' || c == '\'' || c == '`' {
            i = skip_string(&chars, i);
        } else if c == '#' {
            while i < chars.len() && chars[i] != '\n' {
                i += 1;
            }
        } else if c == '[' {
            i = skip_balanced(&chars, i, '[', ']');
        } else if c == '{' {
            let (labels, end) = matcher_labels(&chars, i);
            out.push(Selector {
                metric: None,
                labels,
            });
            i = end;
        } else if c.is_ascii_digit()
            || (c == '.' && chars.get(i + 1).is_some_and(|d| d.is_ascii_digit()))
        {
            // A number or a duration: 0.5, 1e6, 5m, 1h30m.
            while i < chars.len() && (chars[i].is_ascii_alphanumeric() || chars[i] == '.') {
                i += 1;
            }
        } else if c.is_ascii_alphabetic() || c == '_' || c == ':' {
            let start = i;
            while i < chars.len()
                && (chars[i].is_ascii_alphanumeric() || chars[i] == '_' || chars[i] == ':')
            {
                i += 1;
            }
            let word: String = chars[start..i].iter().collect();
            let next = skip_ws(i);
            let lower = word.to_ascii_lowercase();
            if GROUPING.contains(&lower.as_str()) {
                if chars.get(next) == Some(&'(') {
                    i = skip_balanced(&chars, next, '(', ')');
                }
            } else if KEYWORDS.contains(&lower.as_str()) || AGGREGATIONS.contains(&word.as_str()) {
                // operator, literal, or aggregation (`sum by (x) (...)`: its clause and
                // arguments are read as they come)
            } else if chars.get(next) == Some(&'(') {
                // function or aggregation: its arguments are read as they come
            } else {
                let mut labels = Vec::new();
                if chars.get(next) == Some(&'{') {
                    let (found, end) = matcher_labels(&chars, next);
                    labels = found;
                    i = end;
                }
                out.push(Selector {
                    metric: Some(word),
                    labels,
                });
            }
        } else {
            i += 1;
        }
    }
    out
}

/// The metric names an expression reads.
pub fn metric_names(expr: &str) -> BTreeSet<String> {
    selectors(expr)
        .into_iter()
        .filter_map(|s| s.metric)
        .collect()
}

fn skip_string(chars: &[char], start: usize) -> usize {
    let quote = chars[start];
    let mut i = start + 1;
    while i < chars.len() {
        if chars[i] == '\\' && quote != '`' {
            i += 2;
            continue;
        }
        if chars[i] == quote {
            return i + 1;
        }
        i += 1;
    }
    i
}

fn skip_balanced(chars: &[char], start: usize, open: char, close: char) -> usize {
    let mut depth = 0;
    let mut i = start;
    while i < chars.len() {
        let c = chars[i];
        if c == '"' || c == '\'' || c == '`' {
            i = skip_string(chars, i);
            continue;
        }
        if c == open {
            depth += 1;
        } else if c == close {
            depth -= 1;
            if depth == 0 {
                return i + 1;
            }
        }
        i += 1;
    }
    i
}

/// The label names of the matchers in `{...}` starting at `start`, and the index after it.
fn matcher_labels(chars: &[char], start: usize) -> (Vec<String>, usize) {
    let end = skip_balanced(chars, start, '{', '}');
    let mut labels = Vec::new();
    let mut i = start + 1;
    while i < end.saturating_sub(1) {
        let c = chars[i];
        if c == '"' || c == '\'' || c == '`' {
            i = skip_string(chars, i);
        } else if c.is_ascii_alphabetic() || c == '_' {
            let s = i;
            while i < chars.len() && (chars[i].is_ascii_alphanumeric() || chars[i] == '_') {
                i += 1;
            }
            labels.push(chars[s..i].iter().collect());
        } else {
            i += 1;
        }
    }
    (labels, end)
}
