//! `devin-exporter check`: reads the server's configuration and, without starting the
//! server, asks the API who the token is and reads one page of every org it would collect,
//! printing one line per org with what to do about a failure.

use std::io::Write;
use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;

use crate::api::explain::{self, Scope};
use crate::api::model::Principal;
use crate::api::redact::{redact, redact_url};
use crate::api::token::TokenProvider;
use crate::api::{
    ApiClient, ApiError, ApiStats, Deadline, ListQuery, Organization, RequestObserver,
};
use crate::app::StartupError;
use crate::billing::{Billing, Source, Verdict};
use crate::config::{BillingMode, BillingSettings, Config, ConfigError, SessionSource};
use crate::http::web_config::WebConfig;
use crate::lock::Locked;

/// Longest text from the network put on one line.
const MAX_TEXT: usize = 300;

/// The time one check's requests spent on the wire: the latency printed is the API's, not
/// the wait in the request budget's queue.
#[derive(Default)]
struct Wire(std::sync::Mutex<Duration>);

impl Wire {
    fn total(&self) -> Duration {
        *self.0.locked()
    }
}

impl RequestObserver for Wire {
    fn observe(&self, _code: &str, elapsed: Duration) {
        let mut total = self.0.locked();
        *total = total.saturating_add(elapsed);
    }
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
            "no answer within DEVIN_REQUEST_TIMEOUT: check DEVIN_API_URL and the network, \
             or retry later"
                .to_string(),
        ),
        // A 429 whose Retry-After outlasts DEVIN_REQUEST_TIMEOUT.
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
    print_as(out, label, width, if o.ok { "ok  " } else { "FAIL" }, o)
}

/// [`print`] with `word` (four characters) in the place of `ok` or `FAIL`.
fn print_as(
    out: &mut dyn Write,
    label: &str,
    width: usize,
    word: &str,
    o: &Outcome,
) -> std::io::Result<()> {
    writeln!(
        out,
        "{label:<width$}  {word}  {:<9}  {:>5} ms  {}",
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
    // No scrape to finish in time: every request waits its turn in the budget, however long
    // the queue of orgs, and then has DEVIN_REQUEST_TIMEOUT.
    let deadline = Deadline::PerRequest;
    let io = StartupError::Report;

    // The server would refuse to start on a bad web config: say so now, not at deploy time.
    if let Some(path) = &config.web_config_file {
        let web = WebConfig::load(path).map_err(StartupError::WebConfig)?;
        let tls = match &web.tls_server_config {
            Some(t) => format!(
                "TLS (client certificates: {})",
                t.client_auth_type.unwrap_or_default().name()
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
    writeln!(out, "API {}", redact_url(&config.api.api_url)).map_err(io)?;
    let wire = Wire::default();
    let identity = match client.whoami(deadline, &wire).await {
        Ok(body) => match body.parse_as::<Principal>().and_then(identified) {
            Ok(p) => success(wire.total(), clean(&describe(&p), &token)),
            Err(e) => failure(&e, Scope::Identity, wire.total(), &token),
        },
        Err(e) => failure(&e, Scope::Identity, wire.total(), &token),
    };

    let mut orgs: Vec<String> = config.org_ids.clone();
    let mut discovery = None;
    if config.discovery.discover_orgs {
        let wire = Wire::default();
        let query = ListQuery {
            first: config.discovery.page_size,
            ..ListQuery::default()
        };
        let outcome = match client.list_organizations(&query, deadline, &wire).await {
            Ok(body) => match body.parse_as::<OrgListing>() {
                Ok(page) => {
                    for org in &page.items {
                        if !orgs.contains(&org.org_id) {
                            orgs.push(org.org_id.clone());
                        }
                    }
                    success(
                        wire.total(),
                        format!(
                            "{} orgs on the first page{}",
                            page.items.len(),
                            total(page.total)
                        ),
                    )
                }
                Err(e) => failure(&e, Scope::Discovery, wire.total(), &token),
            },
            Err(e) => failure(&e, Scope::Discovery, wire.total(), &token),
        };
        discovery = Some(outcome);
    }
    orgs.retain(|o| !config.exclude_org_ids.contains(o));
    let sessions = session_source(config, &client, &token).await;

    let query = ListQuery {
        first: config.sync.page_size,
        ..ListQuery::default()
    };
    let checks = orgs.iter().map(|org| {
        let (client, query, token) = (&client, &query, &token);
        async move {
            let wire = Wire::default();
            match client.list_sessions(org, query, deadline, &wire).await {
                Ok(body) => match body.parse() {
                    Ok(page) => success(
                        wire.total(),
                        format!(
                            "{} sessions on the first page{}",
                            page.items.len(),
                            total(page.total)
                        ),
                    ),
                    Err(e) => failure(&e, Scope::OrgSessions, wire.total(), token),
                },
                Err(e) => failure(&e, Scope::OrgSessions, wire.total(), token),
            }
        }
    });
    let results = futures::future::join_all(checks).await;

    let labels: Vec<String> = orgs.iter().map(|o| clean(o, &token)).collect();
    // One column for every line's label: orgs, and the billing sources when they are read.
    let billing_labels = (config.billing.billing != BillingMode::Off)
        .then_some(Source::ALL.map(|s| s.name().len()))
        .into_iter()
        .flatten();
    let width = labels
        .iter()
        .map(|l| l.chars().count())
        .chain([9])
        .chain(billing_labels)
        .max()
        .unwrap_or(9);
    print(out, "token", width, &identity).map_err(io)?;
    if let Some(d) = &discovery {
        print(out, "discovery", width, d).map_err(io)?;
    }
    match &sessions {
        SourceLine::Set(text) => {
            writeln!(out, "{:<width$}  ok    {text}", "sessions").map_err(io)?
        }
        SourceLine::Asked(word, o) => print_as(out, "sessions", width, word, o).map_err(io)?,
    }
    for (label, result) in labels.iter().zip(&results) {
        print(out, label, width, result).map_err(io)?;
    }
    let billing_ok = billing_lines(config, &client, &orgs, &token, width, out).await?;
    let readable = results.iter().filter(|r| r.ok).count();
    // The token and discovery lines count as much as the orgs': a server started with a
    // token that fails them would not collect what the org lines promise.
    let source = match &sessions {
        SourceLine::Asked(_, o) => Some(o),
        SourceLine::Set(_) => None,
    };
    let failed: Vec<&str> = [
        ("the token", Some(&identity)),
        ("discovery", discovery.as_ref()),
        ("the session source", source),
    ]
    .into_iter()
    .filter(|(_, o)| o.is_some_and(|o| !o.ok))
    .map(|(name, _)| name)
    .collect();
    let all = readable == results.len() && failed.is_empty();
    let but = if failed.is_empty() {
        String::new()
    } else {
        format!(", but {} failed", failed.join(" and "))
    };
    writeln!(
        out,
        "{readable} of {} orgs readable{but}{}",
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

/// The `sessions` line: where the server would list the sessions from, and why.
enum SourceLine {
    /// No request needed (`DEVIN_SESSION_SOURCE=orgs`).
    Set(String),
    /// The enterprise stream asked, with the word in the place of `ok` or `FAIL`.
    Asked(&'static str, Outcome),
}

/// Asks the enterprise session stream for one session, as the server does with
/// `DEVIN_SESSION_SOURCE=auto`. With `auto` a refusal is no failure: the server lists each
/// org instead, and the line says which permission would save those requests (`off`).
/// With `enterprise` it is one: every org would be down.
async fn session_source(config: &Config, client: &ApiClient, token: &str) -> SourceLine {
    let setting = match config.session_source {
        SessionSource::Orgs => {
            return SourceLine::Set(
                "each org's own listing, one request per org per scrape (DEVIN_SESSION_SOURCE=orgs)"
                    .to_string(),
            );
        }
        SessionSource::Auto => "auto",
        SessionSource::Enterprise => "enterprise",
    };
    let wire = Wire::default();
    let query = ListQuery {
        first: 1,
        ..ListQuery::default()
    };
    let answer = client
        .list_enterprise_sessions(&query, Deadline::PerRequest, &wire)
        .await;
    let scope = Scope::EnterpriseSessions;
    let error = match answer {
        Ok(body) => match body.parse() {
            Ok(page) => {
                let text = format!(
                    "the enterprise session stream, one request per scrape for every org{} (DEVIN_SESSION_SOURCE={setting})",
                    page.total
                        .map(|t| format!(", {t} sessions in all"))
                        .unwrap_or_default()
                );
                return SourceLine::Asked("ok  ", success(wire.total(), text));
            }
            // The server would choose the stream (it answered) and fail on every page.
            Err(e) => return SourceLine::Asked("FAIL", failure(&e, scope, wire.total(), token)),
        },
        Err(e) => e,
    };
    let mut outcome = failure(&error, scope, wire.total(), token);
    if config.session_source == SessionSource::Enterprise {
        return SourceLine::Asked("FAIL", outcome);
    }
    outcome.ok = true;
    outcome.text = match &error {
        ApiError::Status { code: 403, .. } => "each org's own listing: the token lacks ViewAccountSessions on the enterprise: grant it for one request per scrape for the whole enterprise".to_string(),
        ApiError::Status { code: 404, .. } => {
            "each org's own listing: the API has no enterprise session stream".to_string()
        }
        _ => format!(
            "each org's own listing until the enterprise session stream answers: {}",
            outcome.text
        ),
    };
    SourceLine::Asked("off ", outcome)
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
    width: usize,
    out: &mut dyn Write,
) -> Result<bool, StartupError> {
    if config.billing.billing == BillingMode::Off {
        return Ok(true);
    }
    let strict = config.billing.billing == BillingMode::On;
    // One refresh, at once: its deadline (the interval) is the request timeout.
    let settings = BillingSettings {
        billing_interval: config.api.request_timeout,
        ..config.billing.clone()
    };
    let billing = Billing::new(&settings, Arc::new(ApiStats::new(""))).with_whole_budget();
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
        let line = format!("{:<width$}  {word}  {text}", source.name());
        writeln!(out, "{}", line.trim_end()).map_err(StartupError::Report)?;
    }
    Ok(!strict || all_ok)
}

/// `p` if it says who the token is: an answer without `principal_type` (`{}`, `[]`) is not
/// one, whatever serde's defaults make of it.
fn identified(p: Principal) -> Result<Principal, ApiError> {
    match p.principal_type.as_deref() {
        Some(t) if !t.trim().is_empty() => Ok(p),
        _ => Err(ApiError::Decode(
            "no principal_type: not who the token is".to_string(),
        )),
    }
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
