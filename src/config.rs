//! Configuration from the environment (`DEVIN_*` variables), validated up front.
//!
//! One table, [`SETTINGS`], names every variable with its type, default and meaning. The
//! same table declares [`RawConfig`], which envy deserialises into typed fields (a default
//! is parsed exactly like a given value), prints `--help`'s configuration text ([`help`]),
//! and a test holds the README's configuration table to it. A bad value stops start-up
//! with one line naming the variable, its value and what is wrong.

use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use serde::de::{self, Deserialize, DeserializeOwned};

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

/// What credentials are replaced with when text is shown.
pub const REDACTED: &str = "<redacted>";

/// `text` with the userinfo (`user:password`) of every `scheme://userinfo@host` in it
/// replaced by [`REDACTED`].
pub fn redact_userinfo(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut copied = 0;
    let mut from = 0;
    while let Some(found) = text[from..].find("://") {
        let start = from + found + 3;
        let authority_len = text.as_bytes()[start..]
            .iter()
            .take_while(|b| {
                !b.is_ascii_whitespace()
                    && !matches!(b, b'/' | b'?' | b'#' | b'"' | b'\'' | b')' | b'>')
            })
            .count();
        let authority = &text[start..start + authority_len];
        if let Some(at) = authority.rfind('@') {
            out.push_str(&text[copied..start]);
            out.push_str(REDACTED);
            copied = start + at;
        }
        from = start + authority_len;
    }
    out.push_str(&text[copied..]);
    out
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
/// Whether the billing sources are read (`DEVIN_BILLING`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum BillingMode {
    /// Read them; a source the token may not read (403) is switched off, with one log line.
    #[default]
    Auto,
    /// Read them; a 403 is a failure like any other (`devin_billing_up 0`).
    On,
    /// Never read them.
    Off,
}

/// Where the sessions are listed from (`DEVIN_SESSION_SOURCE`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum SessionSource {
    /// The enterprise stream when the token may read it (`GET /v3/enterprise/sessions?first=1`
    /// answers 200), else each org's listing; asked again at every discovery refresh.
    #[default]
    Auto,
    /// The enterprise stream only: without permission every org is down.
    Enterprise,
    /// Each org's own listing.
    Orgs,
}

/// The validated configuration of a running exporter: a few settings of the whole process,
/// and one section per subsystem, handed to it as it is. Every field is named after its
/// variable (`sync_overlap` is `DEVIN_SYNC_OVERLAP`) from the table to its user, and takes
/// its default only from the table; a setting two subsystems read is in both sections.
#[derive(Clone, Debug)]
pub struct Config {
    /// Where the token comes from; `None` only in demo mode, where the simulator supplies one.
    pub token: Option<TokenSource>,
    /// Organizations to collect, in configuration order, without duplicates.
    pub org_ids: Vec<String>,
    /// Orgs never collected, even when configured or discovered.
    pub exclude_org_ids: Vec<String>,
    /// Address the HTTP server binds.
    pub listen_address: SocketAddr,
    /// Collection budget when a scrape carries no timeout header.
    pub scrape_timeout: Duration,
    /// Log format.
    pub log_format: LogFormat,
    /// Web config file (TLS, basic auth), if any.
    pub web_config_file: Option<PathBuf>,
    /// Where the sessions are listed from.
    pub session_source: SessionSource,
    /// The API client and its request budget.
    pub api: ApiSettings,
    /// How each org's sessions are kept current.
    pub sync: SyncSettings,
    /// Org discovery.
    pub discovery: DiscoverySettings,
    /// Billing and capacity.
    pub billing: BillingSettings,
}

/// The API client and the token's request budget.
#[derive(Clone, Debug)]
pub struct ApiSettings {
    /// API base URL, without a trailing slash.
    pub api_url: String,
    /// Client-side request budget for the token.
    pub max_requests_per_second: f64,
    /// API requests in flight at once, across all orgs.
    pub max_concurrent_requests: usize,
    /// Largest API response body accepted, in bytes.
    pub max_response_bytes: usize,
    /// Timeout of one API request on the wire (also capped by the scrape deadline).
    pub request_timeout: Duration,
    /// Longest an API `Retry-After` may hold the token's requests back.
    pub max_retry_after: Duration,
}

/// How each org's sessions are listed and kept current.
#[derive(Clone, Debug, PartialEq)]
pub struct SyncSettings {
    /// `first` of every request.
    pub page_size: u32,
    /// Shortest budget of a collection, however little time the scrape that asked for it has.
    pub scrape_timeout: Duration,
    /// Deep re-checks start this long before the watermark (late indexing, clock skew).
    pub sync_overlap: Duration,
    /// How often an incremental listing is a deep re-check; the others start a second
    /// before the watermark.
    pub deep_recheck_interval: Duration,
    /// Most sessions one org may have, or one pass may list, before the org fails.
    pub max_sessions_per_org: u64,
    /// How often the org is listed in full again.
    pub full_resync_interval: Duration,
    /// Keep only sessions created within this window.
    pub lookback: Option<Duration>,
    /// The token's request budget per second, which the orgs collecting at once share.
    pub max_requests_per_second: f64,
    /// The token's requests in flight at once, and so the org collections run at once (each
    /// has at least one request in flight: more would only wait for the budget).
    pub max_concurrent_requests: usize,
    /// Spend breakdowns and top active sessions.
    pub spend: SpendSettings,
}

/// Who and what burns the ACUs: the breakdowns and the top active sessions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SpendSettings {
    /// Breakdowns kept.
    pub attribution: Attribution,
    /// Values per breakdown and org before the rest fold into `overflow`.
    pub attribution_max_values: usize,
    /// Active sessions with the most ACUs shown per org (0: none).
    pub top_active_sessions: usize,
}

impl SpendSettings {
    /// Nothing broken down and no top sessions: a store's state before its org's settings
    /// are applied.
    pub const NONE: SpendSettings = SpendSettings {
        attribution: Attribution {
            user: false,
            playbook: false,
            tag: false,
        },
        attribution_max_values: 0,
        top_active_sessions: 0,
    };
}

/// Org discovery.
#[derive(Clone, Debug)]
pub struct DiscoverySettings {
    /// List the enterprise's orgs (`GET /v3/enterprise/organizations`) and collect them too.
    pub discover_orgs: bool,
    /// How often the org list is refreshed.
    pub discovery_interval: Duration,
    /// `first` of every request.
    pub page_size: u32,
}

/// Billing and capacity.
#[derive(Clone, Debug)]
pub struct BillingSettings {
    /// Whether billing and capacity are read.
    pub billing: BillingMode,
    /// How old a billing source may get before a scrape refreshes it.
    pub billing_interval: Duration,
    /// `first` of every request (the limits are paged).
    pub page_size: u32,
    /// The token's request budget per second, of which billing takes a share.
    pub max_requests_per_second: f64,
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

/// One `DEVIN_*` variable: its name, the type it is read into, its default and its meaning.
#[derive(Clone, Copy, Debug)]
pub struct Setting {
    /// The variable, e.g. `DEVIN_PAGE_SIZE`.
    pub name: &'static str,
    /// The Rust type its value is deserialised into (bounds included, e.g. `Bounded<1, 200>`).
    pub ty: &'static str,
    /// What applies when it is not set.
    pub default: Fallback,
    /// What it means, as the README's table shows it.
    pub help: &'static str,
}

/// What applies when a variable is not set.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fallback {
    /// This value, read exactly as if it had been given.
    Value(&'static str),
    /// No value (only an `Option` field takes one); the text says what that means.
    Unset(&'static str),
}

impl Fallback {
    /// As the README's table shows it: a value in backticks, else the text.
    pub fn markdown(&self) -> String {
        match self {
            Fallback::Value(v) => format!("`{v}`"),
            Fallback::Unset(text) => text.to_string(),
        }
    }
}

/// True when `field` is `name` in lower case (as envy hands the variables over).
const fn same_name(field: &str, name: &str) -> bool {
    let (field, name) = (field.as_bytes(), name.as_bytes());
    if field.len() != name.len() {
        return false;
    }
    let mut i = 0;
    while i < field.len() {
        if field[i] != name[i].to_ascii_lowercase() {
            return false;
        }
        i += 1;
    }
    true
}

/// Declares [`RawConfig`] (one typed field per variable, deserialised by envy) and
/// [`SETTINGS`] (the same variables as a table) from one list.
macro_rules! settings {
    ($($field:ident $name:ident: $ty:ty = $default:expr, $help:literal;)*) => {
        /// The variables, typed: each field is the variable named in [`SETTINGS`], or its
        /// default parsed the same way.
        #[derive(Debug)]
        struct RawConfig {
            $($field: $ty,)*
        }

        $(const _: () = assert!(
            same_name(stringify!($field), stringify!($name)),
            "a field is named after its variable"
        );)*

        /// Every variable the server reads, in the order `--help` and the README list them.
        pub const SETTINGS: &[Setting] = &[$(Setting {
            name: concat!("DEVIN_", stringify!($name)),
            ty: stringify!($ty),
            default: $default,
            help: $help,
        },)*];

        // Written out rather than derived so that a bad value is reported with the variable
        // it came from: the derived impl's errors do not say which field failed.
        impl<'de> Deserialize<'de> for RawConfig {
            fn deserialize<D: de::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                struct Fields;
                impl<'de> de::Visitor<'de> for Fields {
                    type Value = RawConfig;

                    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                        f.write_str("DEVIN_ variables")
                    }

                    fn visit_map<A: de::MapAccess<'de>>(
                        self,
                        mut map: A,
                    ) -> Result<RawConfig, A::Error> {
                        $(let mut $field: Option<$ty> = None;)*
                        while let Some(key) = map.next_key::<String>()? {
                            match key.as_str() {
                                $(stringify!($field) => {
                                    $field = Some(map.next_value().map_err(|e| {
                                        named(stringify!($name), e)
                                    })?);
                                })*
                                _ => {
                                    map.next_value::<de::IgnoredAny>()?;
                                }
                            }
                        }
                        Ok(RawConfig {
                            $($field: match $field {
                                Some(value) => value,
                                None => fallback($default)
                                    .map_err(|e: A::Error| named(stringify!($name), e))?,
                            },)*
                        })
                    }
                }
                deserializer.deserialize_map(Fields)
            }
        }
    };
}

settings! {
    api_token API_TOKEN: Option<String> = Fallback::Unset("required, unless `DEVIN_API_TOKEN_FILE`"),
        "service-user token (`cog_...`)";
    api_token_file API_TOKEN_FILE: Option<PathBuf> = Fallback::Unset("unset"),
        "file holding the token (Kubernetes/Docker secrets); whitespace trimmed; re-read when it changes";
    org_ids ORG_IDS: Option<OrgIds> = Fallback::Unset("required, unless `DEVIN_DISCOVER_ORGS=true`"),
        "comma-separated org ids, spaces tolerated";
    api_url API_URL: ApiUrl = Fallback::Value("https://api.devin.ai"),
        "API base URL";
    listen_address LISTEN_ADDRESS: Listen = Fallback::Value("0.0.0.0:10164"),
        "address the HTTP server binds";
    page_size PAGE_SIZE: Bounded<1, 200> = Fallback::Value("200"),
        "`first` per request, 1..=200";
    scrape_timeout SCRAPE_TIMEOUT: Interval = Fallback::Value("25s"),
        "how long a scrape without an `X-Prometheus-Scrape-Timeout-Seconds` header waits, and the shortest budget of any org's collection, however little time a scrape gives (`30s`, `2m`)";
    log_format LOG_FORMAT: LogFormat = Fallback::Value("text"),
        "`text` or `json`; levels via `RUST_LOG` (e.g. `RUST_LOG=debug`)";
    sync_overlap SYNC_OVERLAP: Interval = Fallback::Value("2m"),
        "deep re-checks ask for `updated_after = watermark - overlap` (late indexing); other incremental listings start one second before the watermark";
    deep_recheck_interval DEEP_RECHECK_INTERVAL: Interval = Fallback::Value("5m"),
        "how often an org's incremental listing is a deep re-check over the whole overlap";
    max_sessions_per_org MAX_SESSIONS_PER_ORG: Bounded<1, 1_000_000_000> = Fallback::Value("5000000"),
        "an org with more sessions, or a listing that returns more, fails its collection (bounds memory against an API that pages forever)";
    full_resync_interval FULL_RESYNC_INTERVAL: Interval = Fallback::Value("1h"),
        "how often each org is listed in full again, dropping sessions that no longer exist";
    lookback LOOKBACK: Option<Interval> = Fallback::Unset("all sessions"),
        "keep only sessions created within this window (`30d`)";
    attribution ATTRIBUTION: Option<Attribution> = Fallback::Unset("none"),
        "spend breakdowns, a comma list of `user`, `playbook`, `tag` (the demo turns all three on)";
    attribution_max_values ATTRIBUTION_MAX_VALUES: Bounded<1, 10_000> = Fallback::Value("500"),
        "values kept per breakdown and org, 1..=10000; later values count as `overflow`";
    top_active_sessions TOP_ACTIVE_SESSIONS: Bounded<0, 100> = Fallback::Value("5"),
        "active sessions per org with the most ACUs in `devin_active_session_acus_consumed`, 0..=100 (0: none)";
    max_requests_per_second MAX_REQUESTS_PER_SECOND: Rate = Fallback::Value("20"),
        "client-side request budget of the token (bursts of one second's worth)";
    max_concurrent_requests MAX_CONCURRENT_REQUESTS: Bounded<1, 256> = Fallback::Value("16"),
        "API requests in flight at once, and org collections running at once (each has at least one request in flight)";
    request_timeout REQUEST_TIMEOUT: Interval = Fallback::Value("30s"),
        "timeout of one API request (also cut at the scrape deadline)";
    max_retry_after MAX_RETRY_AFTER: RetryCap = Fallback::Value("60s"),
        "longest a 429's `Retry-After` holds the token's requests back (larger values, `1e20` included, are cut to this), at most `24h`";
    max_response_bytes MAX_RESPONSE_BYTES: Bounded<1024, { 1 << 30 }> = Fallback::Value("33554432"),
        "largest API response body accepted, in bytes (32 MiB)";
    discover_orgs DISCOVER_ORGS: Flag = Fallback::Value("false"),
        "list the enterprise's orgs (`GET /v3/enterprise/organizations`, needs `ManageOrganizations`) and collect them too";
    discovery_interval DISCOVERY_INTERVAL: Interval = Fallback::Value("10m"),
        "how often discovery refreshes";
    exclude_org_ids EXCLUDE_ORG_IDS: Option<OrgIds> = Fallback::Unset("none"),
        "orgs never collected, even when configured or discovered";
    web_config_file WEB_CONFIG_FILE: Option<PathBuf> = Fallback::Unset("unset"),
        "TLS and basic auth (the web config format of Prometheus' exporters)";
    billing BILLING: BillingMode = Fallback::Value("auto"),
        "billed ACUs, cycle limits and the queue: `auto` (a source the token may not read is switched off, logged once), `on` (that is a failure, `devin_billing_up 0`) or `off`";
    billing_interval BILLING_INTERVAL: Interval = Fallback::Value("5m"),
        "a scrape that finds a billing source older than this refreshes it in the background";
    session_source SESSION_SOURCE: SessionSource = Fallback::Value("auto"),
        "where sessions are listed from: `enterprise` (one stream of every org's sessions, `GET /v3/enterprise/sessions`, needs `ViewAccountSessions` on the enterprise; without `DEVIN_ORG_IDS` and discovery it collects every org the stream shows), `orgs` (each org's own listing) or `auto` (the stream when the token may read it, else the orgs' listings; asked at start and at every discovery refresh, or every 10 minutes)";
}

/// Variables read by the `healthcheck` command line rather than by the server.
pub const HEALTHCHECK_SETTINGS: &[Setting] = &[
    Setting {
        name: "DEVIN_HEALTHCHECK_CLIENT_CERT",
        ty: "Option<PathBuf>",
        default: Fallback::Unset("unset"),
        help: "client certificate (PEM) that `devin-exporter healthcheck` presents under mutual TLS",
    },
    Setting {
        name: "DEVIN_HEALTHCHECK_CLIENT_KEY",
        ty: "Option<PathBuf>",
        default: Fallback::Unset("unset"),
        help: "its private key (PEM)",
    },
];

/// Every `DEVIN_*` variable: the server's, then the healthcheck's.
pub fn all_settings() -> impl Iterator<Item = &'static Setting> {
    SETTINGS.iter().chain(HEALTHCHECK_SETTINGS)
}

/// Width `--help` wraps its configuration text to.
const HELP_WIDTH: usize = 100;

/// The configuration part of `--help`, from [`SETTINGS`] and [`HEALTHCHECK_SETTINGS`].
pub fn help() -> String {
    let indent = all_settings().map(|s| s.name.len()).max().unwrap_or(0) + 4;
    let mut out = String::from("Configuration (environment):\n");
    for s in all_settings() {
        // The default stays on one line with its bracket.
        let default = match s.default {
            Fallback::Value(v) => Some(format!("[default: {v}]")),
            Fallback::Unset("unset") => None,
            Fallback::Unset(what) => Some(format!("[{what}]")),
        };
        out.push_str(&format!("  {:<width$}", s.name, width = indent - 2));
        let mut column = indent;
        let words = s.help.split(' ').map(str::to_string).chain(default);
        for (i, word) in words.enumerate() {
            let len = word.chars().count();
            if i > 0 && column + 1 + len > HELP_WIDTH {
                out.push('\n');
                out.push_str(&" ".repeat(indent));
                column = indent;
            } else if i > 0 {
                out.push(' ');
                column += 1;
            }
            out.push_str(&word);
            column += len;
        }
        out.push('\n');
    }
    out.push_str(
        "Without any DEVIN_ variable (or with --demo), it runs in demo mode against a built-in\n\
         simulated API; a variable set but empty is an error.",
    );
    out
}

/// `error` (whose text is `value: why`) as the error of variable `DEVIN_{name}`.
fn named<E: de::Error>(name: &str, error: impl fmt::Display) -> E {
    E::custom(format_args!("DEVIN_{name}={error}"))
}

/// A variable's default: its value read as if given, or nothing.
fn fallback<T: DeserializeOwned, E: de::Error>(default: Fallback) -> Result<T, E> {
    match default {
        Fallback::Value(v) => T::deserialize(de::value::StrDeserializer::<E>::new(v)),
        Fallback::Unset(_) => T::deserialize(de::value::UnitDeserializer::<E>::new()),
    }
}

/// A variable's type, read from its text.
trait FromVar: Sized {
    /// The value of `text`, or why it is not one.
    fn from_var(text: &str) -> Result<Self, String>;

    /// `text` as an error may show it.
    fn shown(text: &str) -> String {
        text.to_string()
    }
}

/// Deserialises each type from the variable's text, with errors reading `value: why`.
macro_rules! deserialize_from_var {
    ($($ty:ty),*) => {$(
        impl<'de> Deserialize<'de> for $ty {
            fn deserialize<D: de::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                let text = String::deserialize(deserializer)?;
                <$ty as FromVar>::from_var(&text).map_err(|why| {
                    de::Error::custom(format_args!("{}: {why}", <$ty as FromVar>::shown(&text)))
                })
            }
        }
    )*};
}

/// A duration greater than zero, such as `30s`.
#[derive(Clone, Copy, Debug)]
struct Interval(Duration);

impl FromVar for Interval {
    fn from_var(text: &str) -> Result<Self, String> {
        let d = humantime::parse_duration(text.trim())
            .map_err(|_| "expected a duration such as 30s, 2m or 1h".to_string())?;
        if d.is_zero() {
            return Err("must be greater than zero".into());
        }
        Ok(Interval(d))
    }
}

/// The longest a `Retry-After` may hold requests back: an [`Interval`] of at most a day.
#[derive(Clone, Copy, Debug)]
struct RetryCap(Duration);

impl FromVar for RetryCap {
    fn from_var(text: &str) -> Result<Self, String> {
        let Interval(d) = Interval::from_var(text)?;
        if d > Duration::from_secs(86_400) {
            return Err("must be at most 24h".into());
        }
        Ok(RetryCap(d))
    }
}

/// A whole number from `MIN` to `MAX`.
#[derive(Clone, Copy, Debug)]
struct Bounded<const MIN: u64, const MAX: u64>(u64);

impl<const MIN: u64, const MAX: u64> FromVar for Bounded<MIN, MAX> {
    fn from_var(text: &str) -> Result<Self, String> {
        let n: u64 = text
            .trim()
            .parse()
            .map_err(|_| "expected a whole number".to_string())?;
        if !(MIN..=MAX).contains(&n) {
            return Err(format!("must be between {MIN} and {MAX}"));
        }
        Ok(Bounded(n))
    }
}

impl<'de, const MIN: u64, const MAX: u64> Deserialize<'de> for Bounded<MIN, MAX> {
    fn deserialize<D: de::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        Self::from_var(&text).map_err(|why| de::Error::custom(format_args!("{text}: {why}")))
    }
}

/// Requests per second: greater than 0, at most 10000.
#[derive(Clone, Copy, Debug)]
struct Rate(f64);

impl FromVar for Rate {
    fn from_var(text: &str) -> Result<Self, String> {
        match text.trim().parse::<f64>() {
            Ok(n) if n.is_finite() && n > 0.0 && n <= 10_000.0 => Ok(Rate(n)),
            _ => Err("must be a number greater than 0 and at most 10000".into()),
        }
    }
}

/// `true` or `false` (also `1`/`0`, `yes`/`no`).
#[derive(Clone, Copy, Debug)]
struct Flag(bool);

impl FromVar for Flag {
    fn from_var(text: &str) -> Result<Self, String> {
        match text.trim().to_ascii_lowercase().as_str() {
            "true" | "1" | "yes" => Ok(Flag(true)),
            "false" | "0" | "no" => Ok(Flag(false)),
            _ => Err("must be true or false".into()),
        }
    }
}

/// A comma-separated list of org ids: trimmed, deduplicated, order kept.
#[derive(Clone, Debug, Default)]
struct OrgIds(Vec<String>);

impl FromVar for OrgIds {
    fn from_var(text: &str) -> Result<Self, String> {
        let mut ids: Vec<String> = Vec::new();
        for id in text.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            if id
                .chars()
                .any(|c| c.is_whitespace() || c == '/' || c == '?' || c == '#')
            {
                return Err(format!("invalid org id {id:?}"));
            }
            if !ids.iter().any(|o| o == id) {
                ids.push(id.to_string());
            }
        }
        if ids.is_empty() {
            return Err("no org id given".into());
        }
        Ok(OrgIds(ids))
    }
}

/// An http or https URL, kept without a trailing slash.
#[derive(Clone, Debug)]
struct ApiUrl(String);

impl FromVar for ApiUrl {
    fn from_var(text: &str) -> Result<Self, String> {
        let parsed = reqwest::Url::parse(text.trim())
            .map_err(|e| format!("not a URL ({})", redact_userinfo(&e.to_string())))?;
        if !matches!(parsed.scheme(), "http" | "https") || parsed.host().is_none() {
            return Err("must be an http or https URL".into());
        }
        Ok(ApiUrl(text.trim().trim_end_matches('/').to_string()))
    }

    /// Without its `user:password@`: a start-up error must not print credentials.
    fn shown(text: &str) -> String {
        redact_userinfo(text)
    }
}

/// The address the server binds, `host:port`.
#[derive(Clone, Copy, Debug)]
struct Listen(SocketAddr);

impl FromVar for Listen {
    fn from_var(text: &str) -> Result<Self, String> {
        text.trim()
            .parse()
            .map(Listen)
            .map_err(|_| format!("expected host:port, e.g. 0.0.0.0:{DEFAULT_PORT}"))
    }
}

impl FromVar for LogFormat {
    fn from_var(text: &str) -> Result<Self, String> {
        match text.trim() {
            "text" => Ok(LogFormat::Text),
            "json" => Ok(LogFormat::Json),
            _ => Err("must be text or json".into()),
        }
    }
}

impl FromVar for SessionSource {
    fn from_var(text: &str) -> Result<Self, String> {
        match text.trim().to_ascii_lowercase().as_str() {
            "auto" => Ok(SessionSource::Auto),
            "enterprise" => Ok(SessionSource::Enterprise),
            "orgs" => Ok(SessionSource::Orgs),
            _ => Err("must be auto, enterprise or orgs".into()),
        }
    }
}

impl FromVar for BillingMode {
    fn from_var(text: &str) -> Result<Self, String> {
        match text.trim().to_ascii_lowercase().as_str() {
            "auto" => Ok(BillingMode::Auto),
            "on" => Ok(BillingMode::On),
            "off" => Ok(BillingMode::Off),
            _ => Err("must be auto, on or off".into()),
        }
    }
}

/// `DEVIN_ATTRIBUTION`: a comma list of user, playbook, tag.
impl FromVar for Attribution {
    fn from_var(text: &str) -> Result<Self, String> {
        let mut a = Attribution::default();
        for item in text.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            match item.to_ascii_lowercase().as_str() {
                "user" => a.user = true,
                "playbook" => a.playbook = true,
                "tag" => a.tag = true,
                _ => {
                    return Err(format!(
                        "unknown breakdown {item:?}: use user, playbook, tag"
                    ));
                }
            }
        }
        Ok(a)
    }
}

deserialize_from_var!(
    Interval,
    RetryCap,
    Rate,
    Flag,
    OrgIds,
    ApiUrl,
    Listen,
    LogFormat,
    Attribution,
    BillingMode,
    SessionSource
);

/// Reads and validates the configuration from the process environment.
pub fn from_env() -> Result<Config, ConfigError> {
    from_vars(std::env::vars())
}

/// What `devin-exporter healthcheck` reads: where the server listens and whether it serves
/// TLS (read as the server reads them, defaults from [`SETTINGS`]), and the client
/// certificate it presents ([`HEALTHCHECK_SETTINGS`]). The rest of the server's
/// configuration does not matter to it.
#[derive(Clone, Debug)]
pub struct HealthcheckConfig {
    /// `DEVIN_LISTEN_ADDRESS`: the port to ask.
    pub listen_address: SocketAddr,
    /// `DEVIN_WEB_CONFIG_FILE`: whether to ask over https.
    pub web_config_file: Option<PathBuf>,
    /// `DEVIN_HEALTHCHECK_CLIENT_CERT`.
    pub healthcheck_client_cert: Option<PathBuf>,
    /// `DEVIN_HEALTHCHECK_CLIENT_KEY`.
    pub healthcheck_client_key: Option<PathBuf>,
}

/// Reads [`HealthcheckConfig`] from the environment: a bad or empty value is one line naming
/// its variable, as for the server.
pub fn healthcheck_from_env() -> Result<HealthcheckConfig, ConfigError> {
    healthcheck_from_vars(std::env::vars())
}

/// [`healthcheck_from_env`] from the given variables.
pub fn healthcheck_from_vars<I>(vars: I) -> Result<HealthcheckConfig, ConfigError>
where
    I: IntoIterator<Item = (String, String)>,
{
    let vars: Vec<(String, String)> = vars.into_iter().collect();
    let value = |name: &str| -> Result<Option<&str>, ConfigError> {
        let given = vars
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str());
        match given {
            Some(v) if v.trim().is_empty() => Err(ConfigError(format!(
                "{name} is set but empty: give a value or unset it"
            ))),
            other => Ok(other),
        }
    };
    let setting = |name: &str| {
        all_settings()
            .find(|s| s.name == name)
            .unwrap_or_else(|| unreachable!("{name} is in the settings table"))
    };
    let listen = setting("DEVIN_LISTEN_ADDRESS");
    let Listen(listen_address) = match value(listen.name)? {
        Some(v) => {
            Listen::from_var(v).map_err(|why| ConfigError(format!("{}={v}: {why}", listen.name)))?
        }
        None => fallback(listen.default)
            .map_err(|e: de::value::Error| ConfigError(format!("{}: {e}", listen.name)))?,
    };
    let path = |name: &str| -> Result<Option<PathBuf>, ConfigError> {
        Ok(value(setting(name).name)?.map(|v| PathBuf::from(v.trim())))
    };
    Ok(HealthcheckConfig {
        listen_address,
        web_config_file: path("DEVIN_WEB_CONFIG_FILE")?,
        healthcheck_client_cert: path("DEVIN_HEALTHCHECK_CLIENT_CERT")?,
        healthcheck_client_key: path("DEVIN_HEALTHCHECK_CLIENT_KEY")?,
    })
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
    let vars: Vec<(String, String)> = vars.into_iter().collect();
    // As envy reads them: after the prefix, in any case.
    let value = |setting: &Setting| {
        let field = &setting.name["DEVIN_".len()..];
        vars.iter()
            .find(|(name, _)| {
                name.strip_prefix("DEVIN_")
                    .is_some_and(|n| n.eq_ignore_ascii_case(field))
            })
            .map(|(_, value)| value)
    };
    // An empty variable (an empty Kubernetes secret, a template that rendered nothing) is a
    // mistake to report, not a default to take.
    if let Some(empty) = SETTINGS
        .iter()
        .find(|s| value(s).is_some_and(|v| v.trim().is_empty()))
    {
        return Err(ConfigError(format!(
            "{} is set but empty: give a value or unset it",
            empty.name
        )));
    }
    let nothing_given = SETTINGS.iter().all(|s| value(s).is_none());
    let raw: RawConfig = envy::prefixed("DEVIN_")
        .from_iter(vars)
        .map_err(|e| ConfigError(e.to_string()))?;
    raw.validate(demo || nothing_given)
}

/// Why a token file cannot serve, if it cannot (named before anything else is missing: it
/// is what the operator meant to give).
fn token_file_problem(path: &std::path::Path) -> Option<ConfigError> {
    std::fs::File::open(path).err().map(|e| {
        ConfigError(format!(
            "DEVIN_API_TOKEN_FILE={}: cannot read ({e})",
            path.display()
        ))
    })
}

impl<const MIN: u64, const MAX: u64> Bounded<MIN, MAX> {
    /// The number as the type of its field, which holds every value from `MIN` to `MAX`.
    fn get<T: TryFrom<u64>>(self) -> T {
        T::try_from(self.0).unwrap_or_else(|_| unreachable!("{} is out of range", self.0))
    }
}

impl RawConfig {
    /// With `demo`, a missing token and org list mean demo mode rather than an error.
    fn validate(self, demo: bool) -> Result<Config, ConfigError> {
        let token = match (self.api_token, self.api_token_file) {
            (Some(_), Some(_)) => {
                return Err(ConfigError(
                    "DEVIN_API_TOKEN and DEVIN_API_TOKEN_FILE are both set: set only one".into(),
                ));
            }
            (Some(t), None) => Some(TokenSource::Value(Secret::new(t.trim()))),
            (None, Some(path)) => Some(TokenSource::File(path)),
            (None, None) => None,
        };
        let org_ids = self.org_ids.unwrap_or_default().0;
        let Flag(discover_orgs) = self.discover_orgs;
        // The enterprise stream can collect every org it shows.
        let wants_orgs = !org_ids.is_empty()
            || discover_orgs
            || self.session_source == SessionSource::Enterprise;
        match (&token, wants_orgs) {
            (Some(_), false) if demo => {}
            (Some(source), false) => {
                let file_problem = match source {
                    TokenSource::File(path) => token_file_problem(path),
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
        let page_size = self.page_size.get();
        let scrape_timeout = self.scrape_timeout.0;
        let Rate(max_requests_per_second) = self.max_requests_per_second;
        let max_concurrent_requests = self.max_concurrent_requests.get();
        Ok(Config {
            token,
            org_ids,
            exclude_org_ids: self.exclude_org_ids.unwrap_or_default().0,
            listen_address: self.listen_address.0,
            scrape_timeout,
            log_format: self.log_format,
            web_config_file: self.web_config_file,
            api: ApiSettings {
                api_url: self.api_url.0,
                max_requests_per_second,
                max_concurrent_requests,
                max_response_bytes: self.max_response_bytes.get(),
                request_timeout: self.request_timeout.0,
                max_retry_after: self.max_retry_after.0,
            },
            sync: SyncSettings {
                page_size,
                scrape_timeout,
                sync_overlap: self.sync_overlap.0,
                deep_recheck_interval: self.deep_recheck_interval.0,
                max_sessions_per_org: self.max_sessions_per_org.get(),
                full_resync_interval: self.full_resync_interval.0,
                lookback: self.lookback.map(|Interval(d)| d),
                max_requests_per_second,
                max_concurrent_requests,
                spend: SpendSettings {
                    attribution: self.attribution.unwrap_or_default(),
                    attribution_max_values: self.attribution_max_values.get(),
                    top_active_sessions: self.top_active_sessions.get(),
                },
            },
            discovery: DiscoverySettings {
                discover_orgs,
                discovery_interval: self.discovery_interval.0,
                page_size,
            },
            billing: BillingSettings {
                billing: self.billing,
                billing_interval: self.billing_interval.0,
                page_size,
                max_requests_per_second,
            },
            session_source: self.session_source,
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
        assert_eq!(c.api.api_url, "https://api.devin.ai");
        assert_eq!(c.listen_address.to_string(), "0.0.0.0:10164");
        assert_eq!(c.sync.page_size, 200);
        assert_eq!(c.scrape_timeout, Duration::from_secs(25));
        assert_eq!(c.sync.sync_overlap, Duration::from_secs(120));
        assert_eq!(c.sync.full_resync_interval, Duration::from_secs(3600));
        assert_eq!(c.sync.lookback, None);
        assert_eq!(c.sync.deep_recheck_interval, Duration::from_secs(300));
        assert_eq!(c.sync.max_sessions_per_org, 5_000_000);
        assert_eq!(c.log_format, LogFormat::Text);
        assert_eq!(c.api.max_retry_after, Duration::from_secs(60));
        assert_eq!(c.billing.billing, BillingMode::Auto);
        assert_eq!(c.billing.billing_interval, Duration::from_secs(300));
        assert!(!c.is_demo());
    }

    #[test]
    fn billing_mode_and_interval() {
        let c = with(&[("DEVIN_BILLING", " OFF "), ("DEVIN_BILLING_INTERVAL", "1m")]).unwrap();
        assert_eq!(
            (c.billing.billing, c.billing.billing_interval),
            (BillingMode::Off, Duration::from_secs(60))
        );
        assert_eq!(
            with(&[("DEVIN_BILLING", "on")]).unwrap().billing.billing,
            BillingMode::On
        );
        assert_eq!(
            with(&[("DEVIN_BILLING", "sometimes")]).unwrap_err().0,
            "DEVIN_BILLING=sometimes: must be auto, on or off"
        );
    }

    #[test]
    fn defaults_are_the_tables() {
        let defaults = format!("{:?}", with(&[]).unwrap());
        for s in SETTINGS {
            if let Fallback::Value(v) = s.default {
                let given = with(&[(s.name, v)]).unwrap_or_else(|e| panic!("{}: {e}", s.name));
                assert_eq!(format!("{given:?}"), defaults, "{}={v}", s.name);
            }
        }
        assert_eq!(
            with(&[]).unwrap().listen_address.port(),
            DEFAULT_PORT,
            "DEVIN_LISTEN_ADDRESS's default port"
        );
    }

    #[test]
    fn help_lists_every_variable_with_its_default() {
        let help = help();
        for s in all_settings() {
            assert!(help.contains(&format!("  {} ", s.name)), "{}", s.name);
        }
        assert!(help.contains("[default: 25s]"), "{help}");
        assert!(
            help.lines().all(|l| l.chars().count() <= HELP_WIDTH),
            "{help}"
        );
    }

    #[test]
    fn credentials_in_a_bad_api_url_are_not_shown() {
        for (url, why) in [
            (
                "https://user:hunter2@api.example:port",
                "not a URL (invalid port number)",
            ),
            (
                "ftp://user:hunter2@api.example",
                "must be an http or https URL",
            ),
        ] {
            let err = with(&[("DEVIN_API_URL", url)]).unwrap_err().to_string();
            assert!(!err.contains("hunter2") && !err.contains("user:"), "{err}");
            assert!(err.starts_with("DEVIN_API_URL="), "{err}");
            assert!(err.contains("<redacted>@api.example"), "{err}");
            assert!(err.ends_with(why), "{err}");
        }
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
        assert!(c.discovery.discover_orgs);
        assert!(c.org_ids.is_empty());
        assert_eq!(c.exclude_org_ids, vec!["org-sandbox", "org-test"]);
        assert_eq!(c.discovery.discovery_interval, Duration::from_secs(600));
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
        assert_eq!(c.sync.lookback, Some(Duration::from_secs(30 * 86400)));
        assert_eq!(c.api.api_url, "http://127.0.0.1:8080");
    }

    #[test]
    fn attribution_and_top_sessions() {
        let c = with(&[]).unwrap();
        assert!(c.sync.spend.attribution.is_off());
        assert_eq!(
            (
                c.sync.spend.attribution_max_values,
                c.sync.spend.top_active_sessions
            ),
            (500, 5)
        );
        let c = with(&[
            ("DEVIN_ATTRIBUTION", " tag, user ,TAG"),
            ("DEVIN_ATTRIBUTION_MAX_VALUES", "20"),
            ("DEVIN_TOP_ACTIVE_SESSIONS", "0"),
        ])
        .unwrap();
        assert_eq!(
            c.sync.spend.attribution,
            Attribution {
                user: true,
                playbook: false,
                tag: true
            }
        );
        assert_eq!(
            (
                c.sync.spend.attribution_max_values,
                c.sync.spend.top_active_sessions
            ),
            (20, 0)
        );
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
