//! `devin-exporter check`: reads the server's configuration and, without starting the
//! server, asks the API who the token is and reads one page of every org it would collect,
//! printing one line per org with what to do about a failure.

use std::io::Write;
use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;
use tokio::time::Instant;

use crate::api::explain::{self, Scope};
use crate::api::model::Principal;
use crate::api::redact::{redact, redact_url};
use crate::api::token::TokenProvider;
use crate::api::{ApiClient, ApiError, ApiStats, ListQuery, Organization, RequestObserver};
use crate::app::StartupError;
use crate::billing::{Billing, Verdict};
use crate::config::{BillingMode, Config, ConfigError};
use crate::http::web_config::WebConfig;

/// Longest text from the network put on one line.
const MAX_TEXT: usize = 300;

struct Quiet;

impl RequestObserver for Quiet {
    fn observe(&self, _code: &str, _elapsed: Duration) {}
}

/// One request's outcome, ready to print.
struct Outcome {
    ok: bool,
    status: String,
    latency: Duration,
    text: String,
}

/// The first page of the enterprise's organizations, with `total` when sent.
#[derive(Deserialize)]
struct OrgListing {
    items: Vec<Organization>,
    #[serde(default)]
    total: Option<u64>,
}

/// What the operator may see of text from the network: no token, no control characters,
/// one bounded line.
fn clean(text: &str, token: &str) -> String {
    let text: String = redact(text, token)
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(MAX_TEXT)
        .collect();
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// The failure line of `error`: status, the API's detail and what to do.
fn failure(error: &ApiError, scope: Scope, latency: Duration, token: &str) -> Outcome {
    let (status, text) = match error {
        ApiError::Status { code, detail } => {
            let advice = explain::advice(*code, scope).unwrap_or("unexpected answer");
            let text = match detail {
                Some(d) => format!("{}: {advice}", clean(d, token)),
                None => advice.to_string(),
            };
            (format!("HTTP {code}"), text)
        }
        ApiError::Transport(e) => (
            "no answer".to_string(),
            format!("{}: check DEVIN_API_URL and the network", clean(e, token)),
        ),
        ApiError::Deadline => (
            "no answer".to_string(),
            "no answer within DEVIN_REQUEST_TIMEOUT, or held back by a rate limit on the token: \
             check DEVIN_API_URL and the network, or retry later"
                .to_string(),
        ),
        // A 429 whose Retry-After outlasts the check's deadline.
        ApiError::RateLimited { .. } => (
            "HTTP 429".to_string(),
            format!(
                "{error}: {}",
                explain::advice(429, scope).unwrap_or("retry later")
            ),
        ),
        other => ("bad answer".to_string(), clean(&other.to_string(), token)),
    };
    Outcome {
        ok: false,
        status,
        latency,
        text,
    }
}

fn success(latency: Duration, text: String) -> Outcome {
    Outcome {
        ok: true,
        status: "HTTP 200".to_string(),
        latency,
        text,
    }
}

fn print(out: &mut dyn Write, label: &str, width: usize, o: &Outcome) -> std::io::Result<()> {
    writeln!(
        out,
        "{label:<width$}  {}  {:<9}  {:>5} ms  {}",
        if o.ok { "ok  " } else { "FAIL" },
        o.status,
        o.latency.as_millis(),
        o.text
    )
}

/// Runs the check, writing its report to `out`. `Ok(true)` when every org is readable,
/// `Ok(false)` when one is not, `Err` (one line naming the variable) on bad configuration
/// or when the report cannot be written.
pub async fn run(config: &Config, out: &mut dyn Write) -> Result<bool, StartupError> {
    let source = config.token.clone().ok_or_else(|| {
        ConfigError("DEVIN_API_TOKEN is not set: check needs a token".to_string())
    })?;
    let provider = Arc::new(TokenProvider::new(&source).map_err(ConfigError)?);
    let token = provider.current().expose().to_string();
    let client = crate::app::api_client(config, provider)?;
    let deadline = || Instant::now() + config.request_timeout;
    let io = StartupError::Report;

    // The server would refuse to start on a bad web config: say so now, not at deploy time.
    if let Some(path) = &config.web_config_file {
        let web = WebConfig::load(path).map_err(StartupError::WebConfig)?;
        let tls = match &web.tls_server_config {
            Some(t) => format!(
                "TLS (client certificates: {})",
                t.client_auth_type.as_deref().unwrap_or("NoClientCert")
            ),
            None => "no TLS".to_string(),
        };
        writeln!(
            out,
            "web config {}: {tls}, {} basic-auth users",
            path.display(),
            web.basic_auth_users.len()
        )
        .map_err(io)?;
    }
    writeln!(out, "API {}", redact_url(&config.api_url)).map_err(io)?;
    let started = Instant::now();
    let identity = match client.whoami(deadline(), &Quiet).await {
        Ok(body) => match body.parse_as::<Principal>() {
            Ok(p) => success(started.elapsed(), clean(&describe(&p), &token)),
            Err(e) => failure(&e, Scope::Identity, started.elapsed(), &token),
        },
        Err(e) => failure(&e, Scope::Identity, started.elapsed(), &token),
    };

    let mut orgs: Vec<String> = config.org_ids.clone();
    let mut discovery = None;
    if config.discover_orgs {
        let started = Instant::now();
        let query = ListQuery {
            first: config.page_size,
            ..ListQuery::default()
        };
        let outcome = match client.list_organizations(&query, deadline(), &Quiet).await {
            Ok(body) => match body.parse_as::<OrgListing>() {
                Ok(page) => {
                    for org in &page.items {
                        if !orgs.contains(&org.org_id) {
                            orgs.push(org.org_id.clone());
                        }
                    }
                    success(
                        started.elapsed(),
                        format!(
                            "{} orgs on the first page{}",
                            page.items.len(),
                            total(page.total)
                        ),
                    )
                }
                Err(e) => failure(&e, Scope::Discovery, started.elapsed(), &token),
            },
            Err(e) => failure(&e, Scope::Discovery, started.elapsed(), &token),
        };
        discovery = Some(outcome);
    }
    orgs.retain(|o| !config.exclude_org_ids.contains(o));

    let query = ListQuery {
        first: config.page_size,
        ..ListQuery::default()
    };
    let checks = orgs.iter().map(|org| {
        let (client, query, token) = (&client, &query, &token);
        async move {
            let started = Instant::now();
            match client.list_sessions(org, query, deadline(), &Quiet).await {
                Ok(body) => match body.parse() {
                    Ok(page) => success(
                        started.elapsed(),
                        format!(
                            "{} sessions on the first page{}",
                            page.items.len(),
                            total(page.total)
                        ),
                    ),
                    Err(e) => failure(&e, Scope::OrgSessions, started.elapsed(), token),
                },
                Err(e) => failure(&e, Scope::OrgSessions, started.elapsed(), token),
            }
        }
    });
    let results = futures::future::join_all(checks).await;

    let labels: Vec<String> = orgs.iter().map(|o| clean(o, &token)).collect();
    let width = labels
        .iter()
        .map(|l| l.chars().count())
        .chain([9])
        .max()
        .unwrap_or(9);
    print(out, "token", width, &identity).map_err(io)?;
    if let Some(d) = &discovery {
        print(out, "discovery", width, d).map_err(io)?;
    }
    for (label, result) in labels.iter().zip(&results) {
        print(out, label, width, result).map_err(io)?;
    }
    let billing_ok = billing_lines(config, &client, &orgs, &token, out).await?;
    let readable = results.iter().filter(|r| r.ok).count();
    let all = readable == results.len() && discovery.as_ref().is_none_or(|d| d.ok);
    writeln!(
        out,
        "{readable} of {} orgs readable{}",
        results.len(),
        if all {
            ""
        } else {
            ": fix the lines marked FAIL"
        }
    )
    .map_err(io)?;
    Ok(all && !results.is_empty() && billing_ok)
}

/// One line per billing source (none with `DEVIN_BILLING=off`), read as the server reads
/// them: ok, off (the permission to grant) or FAIL (the reason). In `auto` mode these lines
/// never fail the check: a missing billing permission is a fact to report, and the sessions
/// are collected either way. In `on` mode a line that is not ok fails it.
async fn billing_lines(
    config: &Config,
    client: &ApiClient,
    orgs: &[String],
    token: &str,
    out: &mut dyn Write,
) -> Result<bool, StartupError> {
    if config.billing == BillingMode::Off {
        return Ok(true);
    }
    let strict = config.billing == BillingMode::On;
    let billing = Billing::new(
        strict,
        config.request_timeout,
        config.page_size,
        Arc::new(ApiStats::new("")),
    );
    billing.refresh(client, orgs).await;
    let mut all_ok = true;
    for (source, verdict, text) in billing.view(orgs).verdicts() {
        let word = match verdict {
            Verdict::Ok => "ok  ",
            Verdict::Off => "off ",
            Verdict::Fail | Verdict::Pending => {
                all_ok = false;
                "FAIL"
            }
        };
        let text = if text == "ok" {
            String::new()
        } else {
            clean(&text, token)
        };
        let line = format!("{:<22}  {word}  {text}", source.name());
        writeln!(out, "{}", line.trim_end()).map_err(StartupError::Report)?;
    }
    Ok(!strict || all_ok)
}

fn total(total: Option<u64>) -> String {
    total.map(|t| format!(" (total {t})")).unwrap_or_default()
}

/// Who the token is, in words.
fn describe(p: &Principal) -> String {
    let kind = p
        .principal_type
        .as_deref()
        .unwrap_or("principal")
        .replace('_', " ");
    let id = p.service_user_id.as_deref().unwrap_or("(no id)");
    let name = p
        .name
        .as_deref()
        .map(|n| format!(" \"{n}\""))
        .unwrap_or_default();
    let scope = match &p.org_id {
        Some(org) => format!("of org {org}"),
        None => "of the enterprise".to_string(),
    };
    format!("{kind} {id}{name} {scope}")
}
