//! Configuration from the environment (`DEVIN_*` variables), validated up front.
//!
//! Every variable is read as a string by envy and then parsed here, so that an error can
//! name the variable, its value and what is wrong in one line.

use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Port the exporter listens on by default. 9100-9999 (Prometheus' exporter range) is fully
/// allocated, so this sits just above it.
pub const DEFAULT_PORT: u16 = 10164;

/// A secret string (the API token) that never shows itself in `Debug` or `Display`.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret value.
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }

    /// The secret itself; call only where it is sent to the API.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("\"<redacted>\"")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

/// Where the API token comes from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TokenSource {
    /// `DEVIN_API_TOKEN`.
    Value(Secret),
    /// `DEVIN_API_TOKEN_FILE`: re-read when the file changes (secret rotation).
    File(PathBuf),
}

/// Log output format.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// Breakdowns of sessions and ACUs by who and what (`DEVIN_ATTRIBUTION`), each opt-in.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Attribution {
    /// By `user_id`, else `service_user_id`.
    pub user: bool,
    /// By `playbook_id`.
    pub playbook: bool,
    /// By each tag.
    pub tag: bool,
}

impl Attribution {
    /// All three breakdowns (the demo's choice).
    pub const ALL: Attribution = Attribution {
        user: true,
        playbook: true,
        tag: true,
    };

    /// True when no breakdown is on.
    pub fn is_off(&self) -> bool {
        *self == Attribution::default()
    }
}

/// The validated configuration of a running exporter.
#[derive(Clone, Debug)]
pub struct Config {
    /// Where the token comes from; `None` only in demo mode, where the simulator supplies one.
    pub token: Option<TokenSource>,
    /// Organizations to collect, in configuration order, without duplicates.
    pub org_ids: Vec<String>,
    /// API base URL, without a trailing slash.
    pub api_url: String,
    /// Address the HTTP server binds.
    pub listen_address: SocketAddr,
    /// `first` sent with every list request.
    pub page_size: u32,
    /// Collection budget when a scrape carries no timeout header.
    pub scrape_timeout: Duration,
    /// Log format.
    pub log_format: LogFormat,
    /// How far before the watermark incremental listings start.
    pub sync_overlap: Duration,
    /// How often every org is listed in full, to drop deleted sessions.
    pub full_resync_interval: Duration,
    /// Keep only sessions created within this window, if set.
    pub lookback: Option<Duration>,
    /// Client-side request budget for the token.
    pub max_requests_per_second: f64,
    /// API requests in flight at once, across all orgs.
    pub max_concurrent_requests: usize,
    /// Largest API response body accepted, in bytes.
    pub max_response_bytes: usize,
    /// Timeout of one API request (also capped by the scrape deadline).
    pub request_timeout: Duration,
    /// List the enterprise's orgs (`GET /v3/enterprise/organizations`) and collect them too.
    pub discover_orgs: bool,
    /// How often the org list is refreshed.
    pub discovery_interval: Duration,
    /// Orgs never collected, even when configured or discovered.
    pub exclude_org_ids: Vec<String>,
    /// Web config file (TLS, basic auth), if any.
    pub web_config_file: Option<PathBuf>,
    /// Longest an API `Retry-After` may hold the token's requests back.
    pub max_retry_after: Duration,
    /// Spend breakdowns exported.
    pub attribution: Attribution,
    /// Values kept per breakdown and org before the rest fold into `overflow`.
    pub attribution_max_values: usize,
    /// Active sessions with the most ACUs shown per org (0: none).
    pub top_active_sessions: usize,
    /// How often an incremental listing re-reads the whole `sync_overlap`.
    pub deep_recheck_interval: Duration,
    /// Most sessions one org may have before its collection fails.
    pub max_sessions_per_org: u64,
}

impl Config {
    /// True when no `DEVIN_*` variable was given (or `--demo`, see [`demo_from_env`]): the
    /// exporter runs against its simulator.
    pub fn is_demo(&self) -> bool {
        self.token.is_none()
    }
}

/// A configuration error: one line naming the variable and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ConfigError(pub String);

/// The variables as strings, straight from the environment.
#[derive(Debug, Default, Deserialize, Serialize)]
struct RawConfig {
    api_token: Option<String>,
    api_token_file: Option<String>,
    org_ids: Option<String>,
    api_url: Option<String>,
    listen_address: Option<String>,
    page_size: Option<String>,
    scrape_timeout: Option<String>,
    log_format: Option<String>,
    sync_overlap: Option<String>,
    full_resync_interval: Option<String>,
    lookback: Option<String>,
    max_requests_per_second: Option<String>,
    max_concurrent_requests: Option<String>,
    max_response_bytes: Option<String>,
    request_timeout: Option<String>,
    discover_orgs: Option<String>,
    discovery_interval: Option<String>,
    exclude_org_ids: Option<String>,
    web_config_file: Option<String>,
    max_retry_after: Option<String>,
    attribution: Option<String>,
    attribution_max_values: Option<String>,
    top_active_sessions: Option<String>,
    deep_recheck_interval: Option<String>,
    max_sessions_per_org: Option<String>,
}

/// Reads and validates the configuration from the process environment.
pub fn from_env() -> Result<Config, ConfigError> {
    from_vars(std::env::vars())
}

/// Reads and validates the configuration for `--demo`: the token and orgs may be missing
/// (the simulator supplies them); every other variable is checked as usual.
pub fn demo_from_env() -> Result<Config, ConfigError> {
    parse(std::env::vars(), true)
}

/// Reads and validates the configuration from the given variables (tests pass their own).
/// Without any `DEVIN_*` variable this is demo mode; otherwise the configuration must be
/// complete.
pub fn from_vars<I>(vars: I) -> Result<Config, ConfigError>
where
    I: IntoIterator<Item = (String, String)>,
{
    parse(vars, false)
}

fn parse<I>(vars: I, demo: bool) -> Result<Config, ConfigError>
where
    I: IntoIterator<Item = (String, String)>,
{
    let raw: RawConfig = envy::prefixed("DEVIN_")
        .from_iter(vars)
        .map_err(|e| ConfigError(format!("configuration: {e}")))?;
    // Every variable that was given, by name: an empty one (an empty Kubernetes secret, a
    // template that rendered nothing) is a mistake to report, not a default to take.
    let given = match serde_json::to_value(&raw) {
        Ok(serde_json::Value::Object(fields)) => fields,
        _ => serde_json::Map::new(),
    };
    for (field, value) in &given {
        if value.as_str().is_some_and(|v| v.trim().is_empty()) {
            return Err(ConfigError(format!(
                "DEVIN_{} is set but empty: give a value or unset it",
                field.to_ascii_uppercase()
            )));
        }
    }
    let nothing_given = given.values().all(serde_json::Value::is_null);
    raw.validate(demo || nothing_given)
}

fn invalid(var: &str, value: &str, why: impl fmt::Display) -> ConfigError {
    ConfigError(format!("DEVIN_{var}={value}: {why}"))
}

fn duration(var: &str, value: Option<&str>, default: Duration) -> Result<Duration, ConfigError> {
    match value {
        None => Ok(default),
        Some(v) => {
            let d = humantime::parse_duration(v.trim())
                .map_err(|_| invalid(var, v, "expected a duration such as 30s, 2m or 1h"))?;
            if d.is_zero() {
                return Err(invalid(var, v, "must be greater than zero"));
            }
            Ok(d)
        }
    }
}

fn integer<T>(var: &str, value: Option<&str>, default: T, min: T, max: T) -> Result<T, ConfigError>
where
    T: std::str::FromStr + PartialOrd + fmt::Display + Copy,
{
    match value {
        None => Ok(default),
        Some(v) => {
            let n: T = v
                .trim()
                .parse()
                .map_err(|_| invalid(var, v, "expected a whole number"))?;
            if n < min || n > max {
                return Err(invalid(var, v, format!("must be between {min} and {max}")));
            }
            Ok(n)
        }
    }
}

/// A comma-separated list of org ids: trimmed, deduplicated, order kept.
fn org_list(var: &str, value: Option<&str>) -> Result<Vec<String>, ConfigError> {
    let mut ids: Vec<String> = Vec::new();
    let Some(list) = value else { return Ok(ids) };
    for id in list.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        if id
            .chars()
            .any(|c| c.is_whitespace() || c == '/' || c == '?' || c == '#')
        {
            return Err(invalid(var, list, format!("invalid org id {id:?}")));
        }
        if !ids.iter().any(|o| o == id) {
            ids.push(id.to_string());
        }
    }
    if ids.is_empty() {
        return Err(invalid(var, list, "no org id given"));
    }
    Ok(ids)
}

/// Why a token file cannot serve, if it cannot (named before anything else is missing: it
/// is what the operator meant to give).
fn token_file_problem(path: &str) -> Option<ConfigError> {
    std::fs::File::open(path)
        .err()
        .map(|e| invalid("API_TOKEN_FILE", path, format!("cannot read ({e})")))
}

/// `DEVIN_ATTRIBUTION`: a comma list of user, playbook, tag.
fn attribution(value: Option<&str>) -> Result<Attribution, ConfigError> {
    let mut a = Attribution::default();
    let Some(list) = value else { return Ok(a) };
    for item in list.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        match item.to_ascii_lowercase().as_str() {
            "user" => a.user = true,
            "playbook" => a.playbook = true,
            "tag" => a.tag = true,
            _ => {
                return Err(invalid(
                    "ATTRIBUTION",
                    list,
                    format!("unknown breakdown {item:?}: use user, playbook, tag"),
                ));
            }
        }
    }
    Ok(a)
}

impl RawConfig {
    /// With `demo`, a missing token and org list mean demo mode rather than an error.
    fn validate(self, demo: bool) -> Result<Config, ConfigError> {
        let token = match (&self.api_token, &self.api_token_file) {
            (Some(_), Some(_)) => {
                return Err(ConfigError(
                    "DEVIN_API_TOKEN and DEVIN_API_TOKEN_FILE are both set: set only one".into(),
                ));
            }
            (Some(t), None) => Some(TokenSource::Value(Secret::new(t.trim()))),
            (None, Some(path)) => Some(TokenSource::File(PathBuf::from(path))),
            (None, None) => None,
        };

        let org_ids = org_list("ORG_IDS", self.org_ids.as_deref())?;
        let exclude_org_ids = org_list("EXCLUDE_ORG_IDS", self.exclude_org_ids.as_deref())?;
        let discover_orgs = match self.discover_orgs.as_deref() {
            None => false,
            Some(v) => match v.trim().to_ascii_lowercase().as_str() {
                "true" | "1" | "yes" => true,
                "false" | "0" | "no" => false,
                _ => return Err(invalid("DISCOVER_ORGS", v, "must be true or false")),
            },
        };
        let wants_orgs = !org_ids.is_empty() || discover_orgs;
        match (&token, wants_orgs) {
            (Some(_), false) if demo => {}
            (Some(source), false) => {
                let file_problem = match source {
                    TokenSource::File(path) => token_file_problem(&path.to_string_lossy()),
                    TokenSource::Value(_) => None,
                };
                return Err(file_problem.unwrap_or_else(|| ConfigError(
                    "DEVIN_ORG_IDS is not set: give the comma-separated org ids to collect, or DEVIN_DISCOVER_ORGS=true".into(),
                )));
            }
            (None, true) if demo => {}
            (None, true) => {
                return Err(ConfigError(
                    "DEVIN_API_TOKEN is not set: give the token or DEVIN_API_TOKEN_FILE".into(),
                ));
            }
            (None, false) if !demo => {
                return Err(ConfigError(
                    "DEVIN_API_TOKEN and DEVIN_ORG_IDS are not set: give the token (or DEVIN_API_TOKEN_FILE) and the org ids (or DEVIN_DISCOVER_ORGS=true); demo mode runs only without any DEVIN_ variable, or with --demo".into(),
                ));
            }
            _ => {}
        }

        let api_url = match &self.api_url {
            None => "https://api.devin.ai".to_string(),
            Some(u) => {
                let parsed = reqwest::Url::parse(u.trim())
                    .map_err(|e| invalid("API_URL", u, format!("not a URL ({e})")))?;
                if !matches!(parsed.scheme(), "http" | "https") || parsed.host().is_none() {
                    return Err(invalid("API_URL", u, "must be an http or https URL"));
                }
                u.trim().trim_end_matches('/').to_string()
            }
        };

        let listen_address = match &self.listen_address {
            None => SocketAddr::from(([0, 0, 0, 0], DEFAULT_PORT)),
            Some(a) => a.trim().parse().map_err(|_| {
                invalid(
                    "LISTEN_ADDRESS",
                    a,
                    "expected host:port, e.g. 0.0.0.0:10164",
                )
            })?,
        };

        let log_format = match self.log_format.as_deref().map(str::trim) {
            None | Some("text") => LogFormat::Text,
            Some("json") => LogFormat::Json,
            Some(other) => return Err(invalid("LOG_FORMAT", other, "must be text or json")),
        };

        let max_requests_per_second = match &self.max_requests_per_second {
            None => 20.0,
            Some(v) => match v.trim().parse::<f64>() {
                Ok(n) if n.is_finite() && n > 0.0 && n <= 10_000.0 => n,
                _ => {
                    return Err(invalid(
                        "MAX_REQUESTS_PER_SECOND",
                        v,
                        "must be a number greater than 0 and at most 10000",
                    ));
                }
            },
        };

        let max_retry_after = duration(
            "MAX_RETRY_AFTER",
            self.max_retry_after.as_deref(),
            Duration::from_secs(60),
        )?;
        if max_retry_after > Duration::from_secs(86_400) {
            let v = self.max_retry_after.as_deref().unwrap_or_default();
            return Err(invalid("MAX_RETRY_AFTER", v, "must be at most 24h"));
        }

        let lookback = match &self.lookback {
            None => None,
            Some(v) => Some(duration("LOOKBACK", Some(v), Duration::ZERO)?),
        };

        Ok(Config {
            token,
            org_ids,
            api_url,
            listen_address,
            page_size: integer("PAGE_SIZE", self.page_size.as_deref(), 200, 1, 200)?,
            scrape_timeout: duration(
                "SCRAPE_TIMEOUT",
                self.scrape_timeout.as_deref(),
                Duration::from_secs(25),
            )?,
            log_format,
            sync_overlap: duration(
                "SYNC_OVERLAP",
                self.sync_overlap.as_deref(),
                Duration::from_secs(120),
            )?,
            full_resync_interval: duration(
                "FULL_RESYNC_INTERVAL",
                self.full_resync_interval.as_deref(),
                Duration::from_secs(3600),
            )?,
            lookback,
            max_requests_per_second,
            max_concurrent_requests: integer(
                "MAX_CONCURRENT_REQUESTS",
                self.max_concurrent_requests.as_deref(),
                16,
                1,
                256,
            )?,
            max_response_bytes: integer(
                "MAX_RESPONSE_BYTES",
                self.max_response_bytes.as_deref(),
                32 << 20,
                1024,
                1 << 30,
            )?,
            request_timeout: duration(
                "REQUEST_TIMEOUT",
                self.request_timeout.as_deref(),
                Duration::from_secs(30),
            )?,
            discover_orgs,
            discovery_interval: duration(
                "DISCOVERY_INTERVAL",
                self.discovery_interval.as_deref(),
                Duration::from_secs(600),
            )?,
            exclude_org_ids,
            web_config_file: self.web_config_file.map(PathBuf::from),
            max_retry_after,
            attribution: attribution(self.attribution.as_deref())?,
            attribution_max_values: integer(
                "ATTRIBUTION_MAX_VALUES",
                self.attribution_max_values.as_deref(),
                500,
                1,
                10_000,
            )?,
            top_active_sessions: integer(
                "TOP_ACTIVE_SESSIONS",
                self.top_active_sessions.as_deref(),
                5,
                0,
                100,
            )?,
            deep_recheck_interval: duration(
                "DEEP_RECHECK_INTERVAL",
                self.deep_recheck_interval.as_deref(),
                Duration::from_secs(300),
            )?,
            max_sessions_per_org: integer(
                "MAX_SESSIONS_PER_ORG",
                self.max_sessions_per_org.as_deref(),
                5_000_000,
                1,
                1_000_000_000,
            )?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn base() -> Vec<(&'static str, &'static str)> {
        vec![
            ("DEVIN_API_TOKEN", "cog_secret"),
            ("DEVIN_ORG_IDS", "org-a"),
        ]
    }

    fn with(extra: &[(&'static str, &'static str)]) -> Result<Config, ConfigError> {
        let mut v = base();
        v.retain(|(k, _)| !extra.iter().any(|(e, _)| e == k));
        v.extend_from_slice(extra);
        from_vars(vars(&v))
    }

    #[test]
    fn defaults() {
        let c = with(&[]).unwrap();
        assert_eq!(c.org_ids, vec!["org-a"]);
        assert_eq!(c.api_url, "https://api.devin.ai");
        assert_eq!(c.listen_address.to_string(), "0.0.0.0:10164");
        assert_eq!(c.page_size, 200);
        assert_eq!(c.scrape_timeout, Duration::from_secs(25));
        assert_eq!(c.sync_overlap, Duration::from_secs(120));
        assert_eq!(c.full_resync_interval, Duration::from_secs(3600));
        assert_eq!(c.lookback, None);
        assert_eq!(c.deep_recheck_interval, Duration::from_secs(300));
        assert_eq!(c.max_sessions_per_org, 5_000_000);
        assert_eq!(c.log_format, LogFormat::Text);
        assert_eq!(c.max_retry_after, Duration::from_secs(60));
        assert!(!c.is_demo());
    }

    #[test]
    fn org_ids_trimmed_and_deduplicated() {
        let c = with(&[("DEVIN_ORG_IDS", " org-a , org_b,,org-a ")]).unwrap();
        assert_eq!(c.org_ids, vec!["org-a", "org_b"]);
    }

    #[test]
    fn errors_name_the_variable() {
        let cases: &[(&str, &str, &str)] = &[
            (
                "DEVIN_PAGE_SIZE",
                "500",
                "DEVIN_PAGE_SIZE=500: must be between 1 and 200",
            ),
            (
                "DEVIN_PAGE_SIZE",
                "ten",
                "DEVIN_PAGE_SIZE=ten: expected a whole number",
            ),
            (
                "DEVIN_SCRAPE_TIMEOUT",
                "soon",
                "DEVIN_SCRAPE_TIMEOUT=soon: expected a duration such as 30s, 2m or 1h",
            ),
            (
                "DEVIN_LOG_FORMAT",
                "xml",
                "DEVIN_LOG_FORMAT=xml: must be text or json",
            ),
            (
                "DEVIN_API_URL",
                "ftp://x",
                "DEVIN_API_URL=ftp://x: must be an http or https URL",
            ),
            (
                "DEVIN_LISTEN_ADDRESS",
                "localhost",
                "DEVIN_LISTEN_ADDRESS=localhost: expected host:port, e.g. 0.0.0.0:10164",
            ),
            (
                "DEVIN_SYNC_OVERLAP",
                "0s",
                "DEVIN_SYNC_OVERLAP=0s: must be greater than zero",
            ),
            (
                "DEVIN_MAX_RETRY_AFTER",
                "2d",
                "DEVIN_MAX_RETRY_AFTER=2d: must be at most 24h",
            ),
            (
                "DEVIN_DEEP_RECHECK_INTERVAL",
                "often",
                "DEVIN_DEEP_RECHECK_INTERVAL=often: expected a duration such as 30s, 2m or 1h",
            ),
            (
                "DEVIN_MAX_SESSIONS_PER_ORG",
                "0",
                "DEVIN_MAX_SESSIONS_PER_ORG=0: must be between 1 and 1000000000",
            ),
        ];
        for (var, value, want) in cases {
            let err = with(&[(var, value)]).unwrap_err();
            assert_eq!(err.to_string(), *want);
            assert!(!err.to_string().contains('\n'));
        }
    }

    #[test]
    fn missing_pieces() {
        let err = from_vars(vars(&[("DEVIN_API_TOKEN", "cog_x")])).unwrap_err();
        assert!(err.0.starts_with("DEVIN_ORG_IDS is not set"), "{err}");
        let err = from_vars(vars(&[("DEVIN_ORG_IDS", "org-a")])).unwrap_err();
        assert!(err.0.starts_with("DEVIN_API_TOKEN is not set"), "{err}");
        let err = with(&[("DEVIN_API_TOKEN_FILE", "/run/secrets/t")]).unwrap_err();
        assert!(err.0.contains("both set"), "{err}");
    }

    #[test]
    fn discovery_replaces_org_ids() {
        let c = from_vars(vars(&[
            ("DEVIN_API_TOKEN", "cog_x"),
            ("DEVIN_DISCOVER_ORGS", "true"),
            ("DEVIN_EXCLUDE_ORG_IDS", "org-sandbox, org-test"),
        ]))
        .unwrap();
        assert!(c.discover_orgs);
        assert!(c.org_ids.is_empty());
        assert_eq!(c.exclude_org_ids, vec!["org-sandbox", "org-test"]);
        assert_eq!(c.discovery_interval, Duration::from_secs(600));
        let err = with(&[("DEVIN_DISCOVER_ORGS", "maybe")]).unwrap_err();
        assert_eq!(err.0, "DEVIN_DISCOVER_ORGS=maybe: must be true or false");
        let err = from_vars(vars(&[("DEVIN_DISCOVER_ORGS", "true")])).unwrap_err();
        assert!(err.0.starts_with("DEVIN_API_TOKEN is not set"), "{err}");
    }

    #[test]
    fn demo_when_nothing_given() {
        let c = from_vars(vars(&[])).unwrap();
        assert!(c.is_demo());
        assert!(c.org_ids.is_empty());
        // Other programs' variables do not count.
        let c = from_vars(vars(&[("HOME", "/root"), ("DEVINX", "1")])).unwrap();
        assert!(c.is_demo());
    }

    #[test]
    fn any_variable_given_means_no_demo() {
        let err = from_vars(vars(&[("DEVIN_API_URL", "http://127.0.0.1:1")])).unwrap_err();
        assert!(
            err.0
                .starts_with("DEVIN_API_TOKEN and DEVIN_ORG_IDS are not set"),
            "{err}"
        );
        // With --demo, only the token and orgs may be missing.
        let c = parse(vars(&[("DEVIN_LISTEN_ADDRESS", "127.0.0.1:0")]), true).unwrap();
        assert!(c.is_demo());
        let err = parse(vars(&[("DEVIN_PAGE_SIZE", "0")]), true).unwrap_err();
        assert!(err.0.starts_with("DEVIN_PAGE_SIZE=0"), "{err}");
    }

    #[test]
    fn empty_variables_are_errors() {
        // An empty Kubernetes secret.
        let err = from_vars(vars(&[("DEVIN_API_TOKEN", ""), ("DEVIN_ORG_IDS", "")])).unwrap_err();
        assert_eq!(
            err.0,
            "DEVIN_API_TOKEN is set but empty: give a value or unset it"
        );
        let err = with(&[("DEVIN_LOOKBACK", "  ")]).unwrap_err();
        assert_eq!(
            err.0,
            "DEVIN_LOOKBACK is set but empty: give a value or unset it"
        );
    }

    #[test]
    fn a_missing_token_file_is_named_before_missing_orgs() {
        let err = from_vars(vars(&[(
            "DEVIN_API_TOKEN_FILE",
            "/nonexistent/devin-token",
        )]))
        .unwrap_err();
        assert!(
            err.0
                .starts_with("DEVIN_API_TOKEN_FILE=/nonexistent/devin-token: cannot read"),
            "{err}"
        );
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("token");
        std::fs::write(&file, "cog_x").unwrap();
        let err = from_vars(vars(&[("DEVIN_API_TOKEN_FILE", file.to_str().unwrap())])).unwrap_err();
        assert!(err.0.starts_with("DEVIN_ORG_IDS is not set"), "{err}");
    }

    #[test]
    fn token_never_printed() {
        let c = with(&[]).unwrap();
        let printed = format!("{c:?}");
        assert!(!printed.contains("cog_secret"), "{printed}");
        assert!(printed.contains("<redacted>"));
    }

    #[test]
    fn token_file_and_lookback() {
        let c = from_vars(vars(&[
            ("DEVIN_API_TOKEN_FILE", "/run/secrets/devin"),
            ("DEVIN_ORG_IDS", "org-a"),
            ("DEVIN_LOOKBACK", "30d"),
            ("DEVIN_API_URL", "http://127.0.0.1:8080/"),
        ]))
        .unwrap();
        assert_eq!(
            c.token,
            Some(TokenSource::File("/run/secrets/devin".into()))
        );
        assert_eq!(c.lookback, Some(Duration::from_secs(30 * 86400)));
        assert_eq!(c.api_url, "http://127.0.0.1:8080");
    }

    #[test]
    fn attribution_and_top_sessions() {
        let c = with(&[]).unwrap();
        assert!(c.attribution.is_off());
        assert_eq!((c.attribution_max_values, c.top_active_sessions), (500, 5));
        let c = with(&[
            ("DEVIN_ATTRIBUTION", " tag, user ,TAG"),
            ("DEVIN_ATTRIBUTION_MAX_VALUES", "20"),
            ("DEVIN_TOP_ACTIVE_SESSIONS", "0"),
        ])
        .unwrap();
        assert_eq!(
            c.attribution,
            Attribution {
                user: true,
                playbook: false,
                tag: true
            }
        );
        assert_eq!((c.attribution_max_values, c.top_active_sessions), (20, 0));
        let err = with(&[("DEVIN_ATTRIBUTION", "user,team")]).unwrap_err();
        assert_eq!(
            err.0,
            "DEVIN_ATTRIBUTION=user,team: unknown breakdown \"team\": use user, playbook, tag"
        );
        let err = with(&[("DEVIN_ATTRIBUTION_MAX_VALUES", "0")]).unwrap_err();
        assert!(
            err.0.starts_with("DEVIN_ATTRIBUTION_MAX_VALUES=0:"),
            "{err}"
        );
    }
}
