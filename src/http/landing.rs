//! The landing page: what is wrong, in words. Per org its state (the last error with what to
//! do about it, or how far the first listing is), the age of its data, its sessions by status
//! and a link to its `/probe`; the build and the settings that matter. Plain HTML without
//! JavaScript, readable in a terminal browser; every text is escaped.

use std::collections::HashMap;
use std::fmt::Write;
use std::time::{Duration, SystemTime};

use super::AppState;
use crate::DataSource;
use crate::api::budget::clock_utc;
use crate::api::explain::{self, Scope};
use crate::api::redact::redact_url;
use crate::config::SessionSource;
use crate::exporter::Snapshot;
use crate::sync::OrgState;
use crate::sync::listing::ListingKind;
use crate::sync::source::Source;
use crate::{REVISION, VERSION};

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#39;")
}

/// Percent-encodes a query value (org ids come from the API when discovered).
fn query_value(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// A duration for people: `42s`, `3m 5s`, `2h 10m`, `3d 4h`.
fn span(d: Duration) -> String {
    let s = d.as_secs();
    match s {
        0..60 => format!("{s}s"),
        60..3600 => format!("{}m {}s", s / 60, s % 60),
        3600..86_400 => format!("{}h {}m", s / 3600, s % 3600 / 60),
        _ => format!("{}d {}h", s / 86_400, s % 86_400 / 3600),
    }
}

fn age(t: Option<SystemTime>) -> String {
    match t {
        // A clock that stepped back shows as fresh rather than failing.
        Some(t) => format!("{} ago", span(t.elapsed().unwrap_or_default())),
        None => "never".to_string(),
    }
}

/// An error with what to do about it, when its status says.
fn explained(error: &str, scope: Scope) -> String {
    match explain::status_of(error).and_then(|code| explain::advice(code, scope)) {
        Some(advice) => format!("{error} — {advice}"),
        None => error.to_string(),
    }
}

/// The org's state in words.
fn state_in_words(st: &OrgState) -> String {
    let listing = match st.listing {
        Some((ListingKind::Initial, pages, done)) => Some(match done {
            Some(done) => format!("first listing {:.0}% done", done * 100.0),
            None => format!("first listing: {pages} pages so far"),
        }),
        Some((ListingKind::Resync, pages, _)) => {
            Some(format!("full re-listing: {pages} pages so far"))
        }
        None => None,
    };
    let health = match (st.health.up, &st.health.last_error) {
        (None, _) => None,
        (Some(true), _) => Some("ok".to_string()),
        (Some(false), Some(e)) => Some(explained(
            e,
            st.health.error_scope.unwrap_or(Scope::OrgSessions),
        )),
        (Some(false), None) => Some("last collection failed".to_string()),
    };
    match (st.health.up, health, listing) {
        // Collections run on scrapes only: until Prometheus (or a person) fetches /metrics,
        // the page would say this forever without saying why.
        (_, None, None) => {
            "not collected yet: collection starts with the first scrape of /metrics or /probe"
                .to_string()
        }
        // A collection that went well while a listing goes on: the listing is the news.
        (Some(true), _, Some(l)) | (_, None, Some(l)) => l,
        (_, Some(h), None) => h,
        (_, Some(h), Some(l)) => format!("{h}; {l}"),
    }
}

/// What the org's pages held that was malformed, if anything:
/// `2 malformed sessions skipped, 3 fields read as null (user_id 2, tags 1)`.
fn malformed_in_words(st: &OrgState) -> Option<String> {
    let plural = |n: u64, one: &str, many: &str| format!("{n} {}", if n == 1 { one } else { many });
    let sessions = st.malformed.sessions();
    let fields: Vec<_> = st.malformed.fields().collect();
    let mut words = Vec::new();
    if sessions > 0 {
        words.push(plural(
            sessions,
            "malformed session skipped",
            "malformed sessions skipped",
        ));
    }
    if !fields.is_empty() {
        let total = fields.iter().map(|(_, n)| n).sum();
        let each: Vec<String> = fields
            .iter()
            .map(|(f, n)| format!("{} {n}", f.name()))
            .collect();
        words.push(format!(
            "{} ({})",
            plural(total, "field read as null", "fields read as null"),
            each.join(", ")
        ));
    }
    (!words.is_empty()).then(|| words.join(", "))
}

/// Sessions per status, most first: `running 12, exit 1800`.
fn by_status(st: &OrgState) -> String {
    if !st.initial_complete {
        return format!("{} listed so far", st.store.len());
    }
    let mut counts: HashMap<&str, u64> = HashMap::new();
    for (key, totals) in st.store.groups() {
        *counts.entry(st.store.label(key.status)).or_default() += totals.sessions;
    }
    let mut counts: Vec<(&str, u64)> = counts.into_iter().collect();
    counts.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
    if counts.is_empty() {
        return "none".to_string();
    }
    counts
        .iter()
        .map(|(status, n)| format!("{status} {n}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Where the sessions come from and why: the `Session source:` line of the page.
fn source_in_words(
    setting: SessionSource,
    source: &Option<(Source, String)>,
    dropped: u64,
) -> String {
    match source {
        None if setting == SessionSource::Auto => {
            "not decided yet: the first scrape asks whether the token may read the enterprise session stream".to_string()
        }
        None => "not decided yet".to_string(),
        Some((Source::Enterprise, why)) => {
            let dropped = match dropped {
                0 => String::new(),
                1 => "; 1 session item dropped (no usable org_id, or an org not collected)"
                    .to_string(),
                n => format!(
                    "; {n} session items dropped (no usable org_id, or an org not collected)"
                ),
            };
            format!("the enterprise session stream, one request per scrape for every org: {why}{dropped}")
        }
        Some((Source::Orgs, why)) => format!("each org's own listing: {why}"),
    }
}

fn session_source_setting(setting: SessionSource) -> &'static str {
    match setting {
        SessionSource::Auto => "auto",
        SessionSource::Enterprise => "enterprise",
        SessionSource::Orgs => "orgs",
    }
}

fn settings(state: &AppState) -> String {
    let mut rows: Vec<(&str, String)> = vec![("API", redact_url(&state.api_url))];
    let c = &state.config;
    rows.push((
        "request budget",
        format!(
            "{} requests/s, {} in flight",
            c.api.max_requests_per_second, c.api.max_concurrent_requests
        ),
    ));
    rows.push((
        "session source",
        session_source_setting(c.session_source).to_string(),
    ));
    rows.push(("page size", c.sync.page_size.to_string()));
    rows.push(("incremental overlap", span(c.sync.sync_overlap)));
    rows.push(("scrape timeout without header", span(c.scrape_timeout)));
    rows.push(("full re-listing every", span(c.sync.full_resync_interval)));
    rows.push((
        "lookback",
        c.sync.lookback.map_or("all sessions".to_string(), span),
    ));
    rows.push((
        "org discovery",
        if c.discovery.discover_orgs {
            format!("on, every {}", span(c.discovery.discovery_interval))
        } else {
            "off".to_string()
        },
    ));
    rows.iter()
        .map(|(k, v)| format!("<tr><th>{}</th><td>{}</td></tr>\n", escape(k), escape(v)))
        .collect()
}

/// The billing sources, one row each: ok, off for a missing permission, or the failure.
fn billing_rows(view: &crate::billing::BillingView) -> String {
    let mut rows = String::new();
    for (source, _, text) in view.verdicts() {
        let last = view.health(source).and_then(|h| h.last_success);
        let _ = writeln!(
            rows,
            "<tr><td>{}</td><td>{}</td><td>{}</td></tr>",
            escape(source.name()),
            escape(&text),
            escape(&age(last)),
        );
    }
    format!(
        "<h2>Billing</h2>\n<table>\n<tr><th>Source</th><th>State</th><th>Data age</th></tr>\n{rows}</table>\n"
    )
}

/// Renders the page.
pub fn page(state: &AppState, snapshot: &Snapshot<'_>) -> String {
    let mut rows = String::new();
    for org in &snapshot.orgs {
        let name = org.info().and_then(|i| i.name);
        let st = org.state();
        let _ = writeln!(
            rows,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td><a href=\"/probe?org_id={}\">probe</a></td></tr>",
            escape(&org.id),
            escape(name.as_deref().unwrap_or("")),
            escape(&match malformed_in_words(&st) {
                Some(m) => format!("{}; {m}", state_in_words(&st)),
                None => state_in_words(&st),
            }),
            escape(&age(st.health.last_success)),
            escape(&by_status(&st)),
            escape(&query_value(&org.id)),
        );
    }
    let demo = if state.source == DataSource::Simulated {
        "<p><strong>DEMO MODE:</strong> these numbers come from the built-in simulated Devin API, \
         not from Devin. Set DEVIN_API_TOKEN and DEVIN_ORG_IDS to collect real sessions.</p>\n"
    } else {
        ""
    };
    // Collections waiting out a pause have not finished, so no org row says it yet.
    let paused = match snapshot.rate_limited_until {
        Some(until) => format!(
            "<p><strong>Rate limited:</strong> the API answered 429; every request of the token waits: rate limited until {}.</p>\n",
            escape(&clock_utc(until))
        ),
        None => String::new(),
    };
    let discovery = match &snapshot.discovery {
        None => String::new(),
        Some((d, _)) => {
            let words = match (d.up, &d.last_error) {
                (None, _) => "not run yet".to_string(),
                (Some(true), _) => format!("ok, {} orgs found", d.found),
                (Some(false), Some(e)) => explained(e, Scope::Discovery),
                (Some(false), None) => "failed".to_string(),
            };
            format!(
                "<p>Org discovery: {} (last success {})</p>\n",
                escape(&words),
                escape(&age(d.last_success))
            )
        }
    };
    let source = format!(
        "<p>Session source: {}</p>\n",
        escape(&source_in_words(
            state.config.session_source,
            &snapshot.source,
            snapshot.stream_dropped
        ))
    );
    let billing = match &snapshot.billing {
        None => String::new(),
        Some((view, _)) => billing_rows(view),
    };
    format!(
        r#"<!doctype html>
<html><head><meta charset="utf-8"><title>Devin Exporter</title>
<style>body{{font-family:sans-serif;margin:2em}}table{{border-collapse:collapse}}td,th{{border:1px solid #ccc;padding:4px 8px;text-align:left;vertical-align:top}}</style>
</head><body>
<h1>Devin Exporter</h1>
{demo}{paused}<p>Version {version} (revision {revision})</p>
<p><a href="/metrics">Metrics</a> | <a href="/sd">Service discovery</a> | <a href="/healthz">Health</a> | <a href="/readyz">Readiness</a></p>
<h2>Organizations</h2>
{source}{discovery}<table>
<tr><th>Org</th><th>Name</th><th>State</th><th>Data age</th><th>Sessions by status</th><th>Probe</th></tr>
{rows}</table>
{billing}<h2>Settings</h2>
<table>
{settings}</table>
</body></html>
"#,
        version = escape(VERSION),
        revision = escape(REVISION),
        settings = settings(state),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_for_people() {
        assert_eq!(span(Duration::from_secs(42)), "42s");
        assert_eq!(span(Duration::from_secs(185)), "3m 5s");
        assert_eq!(span(Duration::from_secs(7800)), "2h 10m");
        assert_eq!(query_value("org-a b&c"), "org-a%20b%26c");
        assert_eq!(escape("<a href='x'>&"), "&lt;a href=&#39;x&#39;&gt;&amp;");
        assert!(
            explained("HTTP 403: Forbidden", Scope::OrgSessions)
                .starts_with("HTTP 403: Forbidden — the token lacks ViewOrgSessions")
        );
        assert_eq!(
            explained("rate limited until 14:05:00 UTC", Scope::OrgSessions),
            "rate limited until 14:05:00 UTC"
        );
    }
}
