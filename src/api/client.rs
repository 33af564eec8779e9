//! Requests to the Devin API with the request budget, retries and a body size cap.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use reqwest::{StatusCode, Url};
use tokio::sync::SemaphorePermit;
use tokio::time::Instant;

use super::budget::{RequestBudget, clock_utc};
use super::model::{SessionPage, error_detail};
use super::redact::redact;
use super::retry::{
    DEFAULT_MAX_RETRY_AFTER, MAX_ATTEMPTS, backoff, is_retryable_status, parse_retry_after,
};
use super::token::TokenProvider;
use crate::config::Secret;
use crate::lock::Locked;

/// Why a request (after its retries) failed. Never carries the token: every text from the
/// network is scrubbed ([`redact`]) before it goes in.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ApiError {
    /// The API answered with an error status.
    #[error("HTTP {code}{}", detail.as_deref().map(|d| format!(": {d}")).unwrap_or_default())]
    Status {
        /// HTTP status code.
        code: u16,
        /// The API's `detail` (or `title`) text.
        detail: Option<String>,
    },
    /// Connection, TLS or protocol failure.
    #[error("transport error: {0}")]
    Transport(String),
    /// The scrape deadline came before an answer.
    #[error("deadline reached before the API answered")]
    Deadline,
    /// The API's `Retry-After` holds every request of the token back past the deadline.
    #[error("rate limited until {}", clock_utc(*until))]
    RateLimited {
        /// When the pause ends.
        until: SystemTime,
    },
    /// The response body exceeded the configured cap.
    #[error("response body larger than {limit} bytes")]
    TooLarge {
        /// The cap, in bytes.
        limit: usize,
    },
    /// The body was not the expected JSON.
    #[error("malformed response: {0}")]
    Decode(String),
    /// The answers broke the API's contract (a cursor loop, too many sessions).
    #[error("API protocol error: {0}")]
    Protocol(String),
}

/// Records the outcome of each API request (for `devin_api_requests_total` and the latency
/// histogram). `code` is the HTTP status or `error` for transport failures.
pub trait RequestObserver: Send + Sync {
    /// Called once per HTTP request, retries included.
    fn observe(&self, code: &str, elapsed: Duration);
}

/// How long a call may take in all.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Deadline {
    /// Everything ends by then, the waits for the request budget and retries included (a
    /// scrape's deadline); each request is also cut at `DEVIN_REQUEST_TIMEOUT`.
    At(Instant),
    /// No limit of the caller's: a request waits for the budget as long as it takes, and
    /// from when the budget lets it go it has `DEVIN_REQUEST_TIMEOUT` for its answer and any
    /// wait before its retry (`check`, which has no scrape to finish in time).
    PerRequest,
}

impl From<Instant> for Deadline {
    fn from(at: Instant) -> Self {
        Deadline::At(at)
    }
}

/// Filters and paging of one list request.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ListQuery {
    /// Page size (1..=200).
    pub first: u32,
    /// Cursor from the previous page.
    pub after: Option<String>,
    /// Sessions created after this Unix time.
    pub created_after: Option<i64>,
    /// Sessions created before this Unix time.
    pub created_before: Option<i64>,
    /// Sessions updated after this Unix time.
    pub updated_after: Option<i64>,
}

/// A page body that has been received in full; parse it with [`PageBody::parse`].
pub struct PageBody {
    body: Bytes,
    server_time: Option<i64>,
    /// The token when the body arrived, to scrub it from parse errors.
    token: Secret,
}

impl PageBody {
    /// A body as if received with the given `Date` (benchmarks and tests build their own).
    pub fn new(body: Bytes, server_time: Option<i64>) -> Self {
        PageBody {
            body,
            server_time,
            token: Secret::new(""),
        }
    }

    /// The server's clock when it answered (its `Date` header, Unix seconds), if it sent one.
    pub fn server_time(&self) -> Option<i64> {
        self.server_time
    }

    /// Parses a sessions page; strings borrow from the body.
    pub fn parse(&self) -> Result<SessionPage<'_>, ApiError> {
        SessionPage::from_slice(&self.body).map_err(|e| self.decode_error(e))
    }

    /// Parses the body as any page type.
    pub fn parse_as<'a, T: serde::Deserialize<'a>>(&'a self) -> Result<T, ApiError> {
        // serde's messages quote the offending value, which came from the network.
        serde_json::from_slice(&self.body).map_err(|e| self.decode_error(e))
    }

    fn decode_error(&self, e: serde_json::Error) -> ApiError {
        ApiError::Decode(redact(&e.to_string(), self.token.expose()))
    }
}

/// Client of the Devin API for one token.
pub struct ApiClient {
    http: reqwest::Client,
    base: Url,
    token: Arc<TokenProvider>,
    budget: Arc<RequestBudget>,
    max_body: usize,
    request_timeout: Duration,
    max_retry_after: Duration,
    /// The server's clock from its last `Date` header, and when that answer arrived.
    server_clock: std::sync::Mutex<Option<(i64, Instant)>>,
}

/// What one attempt came to.
enum Attempt {
    Done(Bytes, Option<i64>),
    Retry {
        error: ApiError,
        wait: Option<Duration>,
    },
    Fail(ApiError),
}

/// Why an [`ApiClient`] cannot be built.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The base URL does not parse (shown without its credentials).
    #[error("DEVIN_API_URL={url}: {source}")]
    Url {
        /// The URL, its `user:password@` redacted.
        url: String,
        /// What the parser said.
        source: <Url as std::str::FromStr>::Err,
    },
    /// The HTTP client (its TLS roots, say) cannot be set up.
    #[error("HTTP client: {0}")]
    Http(#[source] reqwest::Error),
}

impl ApiClient {
    /// A client for `base_url` (e.g. `https://api.devin.ai`).
    pub fn new(
        base_url: &str,
        token: Arc<TokenProvider>,
        budget: Arc<RequestBudget>,
        max_body: usize,
        request_timeout: Duration,
    ) -> Result<Self, ClientError> {
        let base = Url::parse(base_url).map_err(|source| ClientError::Url {
            url: super::redact::redact_url(base_url),
            source,
        })?;
        let http = reqwest::Client::builder()
            .user_agent(concat!("devin-exporter/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(Duration::from_secs(10))
            .pool_idle_timeout(Duration::from_secs(90))
            .build()
            .map_err(ClientError::Http)?;
        Ok(ApiClient {
            http,
            base,
            token,
            budget,
            max_body,
            request_timeout,
            max_retry_after: DEFAULT_MAX_RETRY_AFTER,
            server_clock: std::sync::Mutex::new(None),
        })
    }

    /// Caps how long a `Retry-After` may hold requests back (`DEVIN_MAX_RETRY_AFTER`).
    pub fn with_max_retry_after(mut self, max: Duration) -> Self {
        self.max_retry_after = max;
        self
    }

    /// `text` from the network, scrubbed of the token and anything like it.
    fn scrub(&self, text: &str) -> String {
        redact(text, self.token.current().expose())
    }

    /// When the rate-limit pause in force ends (wall clock), if one is in force.
    pub fn rate_limited_until(&self) -> Option<SystemTime> {
        self.budget.paused_past(Instant::now())
    }

    /// The server's clock now: its last `Date` header plus the local monotonic time elapsed
    /// since; `None` until the API has sent one. The local wall clock never enters it.
    pub fn server_now(&self) -> Option<i64> {
        let clock = *self.server_clock.locked();
        clock.map(|(date, at)| server_time_at(date, at, Instant::now()))
    }

    fn url(&self, segments: &[&str], q: &ListQuery) -> Url {
        let mut url = self.path_url(segments);
        {
            let mut pairs = url.query_pairs_mut();
            pairs.append_pair("first", &q.first.to_string());
            if let Some(after) = &q.after {
                pairs.append_pair("after", after);
            }
            for (key, value) in [
                ("created_after", q.created_after),
                ("created_before", q.created_before),
                ("updated_after", q.updated_after),
            ] {
                if let Some(v) = value {
                    pairs.append_pair(key, &v.to_string());
                }
            }
        }
        url
    }

    /// Fetches one page of an org's sessions (`GET /v3/organizations/{org_id}/sessions`).
    pub async fn list_sessions(
        &self,
        org_id: &str,
        query: &ListQuery,
        deadline: impl Into<Deadline>,
        observer: &dyn RequestObserver,
    ) -> Result<PageBody, ApiError> {
        let url = self.url(&["v3", "organizations", org_id, "sessions"], query);
        self.get(&url, deadline.into(), observer).await
    }

    /// Fetches one page of the sessions of every org of the enterprise
    /// (`GET /v3/enterprise/sessions`, enterprise `ViewAccountSessions`); each item names
    /// its `org_id`.
    pub async fn list_enterprise_sessions(
        &self,
        query: &ListQuery,
        deadline: impl Into<Deadline>,
        observer: &dyn RequestObserver,
    ) -> Result<PageBody, ApiError> {
        let url = self.url(&["v3", "enterprise", "sessions"], query);
        self.get(&url, deadline.into(), observer).await
    }

    /// Fetches one page of the enterprise's organizations (`GET /v3/enterprise/organizations`).
    pub async fn list_organizations(
        &self,
        query: &ListQuery,
        deadline: impl Into<Deadline>,
        observer: &dyn RequestObserver,
    ) -> Result<PageBody, ApiError> {
        let url = self.url(&["v3", "enterprise", "organizations"], query);
        self.get(&url, deadline.into(), observer).await
    }

    /// Who the token is (`GET /v3/self`); parse the body as [`super::model::Principal`].
    pub async fn whoami(
        &self,
        deadline: impl Into<Deadline>,
        observer: &dyn RequestObserver,
    ) -> Result<PageBody, ApiError> {
        self.get(&self.path_url(&["v3", "self"]), deadline.into(), observer)
            .await
    }

    /// `segments` under the base URL, without a query.
    fn path_url(&self, segments: &[&str]) -> Url {
        let mut url = self.base.clone();
        if let Ok(mut path) = url.path_segments_mut() {
            path.pop_if_empty().extend(segments);
        }
        url
    }

    /// The enterprise's ACUs per day of the current billing cycle
    /// (`GET /v3/enterprise/consumption/daily`); parse as [`super::billing::DailyConsumption`].
    pub async fn enterprise_consumption(
        &self,
        deadline: impl Into<Deadline>,
        observer: &dyn RequestObserver,
    ) -> Result<PageBody, ApiError> {
        let url = self.path_url(&["v3", "enterprise", "consumption", "daily"]);
        self.get(&url, deadline.into(), observer).await
    }

    /// One org's ACUs per day of the current billing cycle
    /// (`GET /v3/organizations/{org_id}/consumption/daily`).
    pub async fn org_consumption(
        &self,
        org_id: &str,
        deadline: impl Into<Deadline>,
        observer: &dyn RequestObserver,
    ) -> Result<PageBody, ApiError> {
        let url = self.path_url(&["v3", "organizations", org_id, "consumption", "daily"]);
        self.get(&url, deadline.into(), observer).await
    }

    /// One page of the cycle ACU limits (`GET /v3/enterprise/consumption/acu-limits/devin`);
    /// parse as [`super::billing::AcuLimitPage`].
    pub async fn acu_limits(
        &self,
        query: &ListQuery,
        deadline: impl Into<Deadline>,
        observer: &dyn RequestObserver,
    ) -> Result<PageBody, ApiError> {
        let url = self.url(
            &["v3", "enterprise", "consumption", "acu-limits", "devin"],
            query,
        );
        self.get(&url, deadline.into(), observer).await
    }

    /// Sessions waiting to start (`GET /v3/enterprise/queue`); parse as
    /// [`super::billing::Queue`].
    pub async fn queue(
        &self,
        deadline: impl Into<Deadline>,
        observer: &dyn RequestObserver,
    ) -> Result<PageBody, ApiError> {
        let url = self.path_url(&["v3", "enterprise", "queue"]);
        self.get(&url, deadline.into(), observer).await
    }

    /// GETs `url`, retrying 429, 5xx and transport errors within `deadline`. 401, 403, 404
    /// and 422 fail at once. The request timeout starts when the budget lets a request go:
    /// a queue of requests on the token must not time them out before they are sent.
    async fn get(
        &self,
        url: &Url,
        deadline: Deadline,
        observer: &dyn RequestObserver,
    ) -> Result<PageBody, ApiError> {
        let mut attempt = 0;
        loop {
            let (permit, by) = self.admit(deadline).await?;
            let outcome = self.attempt(url, by, observer).await;
            drop(permit);
            let (error, wait) = match outcome {
                Attempt::Done(body, server_time) => {
                    if let Some(date) = server_time {
                        *self.server_clock.locked() = Some((date, Instant::now()));
                    }
                    return Ok(PageBody {
                        body,
                        server_time,
                        token: self.token.current(),
                    });
                }
                Attempt::Fail(e) => return Err(e),
                Attempt::Retry { error, wait } => (error, wait),
            };
            attempt += 1;
            if attempt >= MAX_ATTEMPTS {
                return Err(error);
            }
            let wait = match wait {
                // The API said how long (already capped): everybody using this token holds
                // back that long.
                Some(w) => {
                    let until = self.budget.pause_for(w);
                    if Instant::now().checked_add(w).is_none_or(|t| t >= by) {
                        return Err(until.map_or(error, |until| ApiError::RateLimited { until }));
                    }
                    w
                }
                None => backoff(attempt - 1),
            };
            if Instant::now().checked_add(wait).is_none_or(|t| t >= by) {
                return Err(error);
            }
            tracing::debug!(url = %url.path(), %error, wait_ms = wait.as_millis() as u64, "retrying API request");
            tokio::time::sleep(wait).await;
        }
    }

    /// Waits for the budget to let one request go; returns its permit and the deadline of
    /// that request and the wait before its retry.
    async fn admit(&self, deadline: Deadline) -> Result<(SemaphorePermit<'_>, Instant), ApiError> {
        let admit_by = match deadline {
            Deadline::At(at) => at,
            Deadline::PerRequest => {
                // A 429's pause is the API's answer, not a queue: one that outlasts the
                // request timeout is reported, as under a scrape deadline.
                let horizon = Instant::now() + self.request_timeout;
                if let Some(until) = self.budget.paused_past(horizon) {
                    return Err(ApiError::RateLimited { until });
                }
                far_future()
            }
        };
        let Some(permit) = self.budget.acquire(admit_by).await else {
            return Err(match self.budget.paused_past(admit_by) {
                Some(until) => ApiError::RateLimited { until },
                None => ApiError::Deadline,
            });
        };
        let deadline = match deadline {
            Deadline::At(at) => at,
            Deadline::PerRequest => Instant::now() + self.request_timeout,
        };
        Ok((permit, deadline))
    }

    async fn attempt(
        &self,
        url: &Url,
        deadline: Instant,
        observer: &dyn RequestObserver,
    ) -> Attempt {
        let started = Instant::now();
        let timeout = self
            .request_timeout
            .min(deadline.saturating_duration_since(started));
        let request = self
            .http
            .get(url.clone())
            .bearer_auth(self.token.current().expose())
            .header(reqwest::header::ACCEPT, "application/json")
            .timeout(timeout);
        let response = match request.send().await {
            Ok(r) => r,
            Err(e) => {
                observer.observe("error", started.elapsed());
                let error = if e.is_timeout() {
                    ApiError::Deadline
                } else {
                    ApiError::Transport(self.scrub(&describe(&e)))
                };
                return Attempt::Retry { error, wait: None };
            }
        };
        let status = response.status();
        let server_time = response
            .headers()
            .get(reqwest::header::DATE)
            .and_then(|v| v.to_str().ok())
            .and_then(parse_date);
        let retry_after = response
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| parse_retry_after(v, SystemTime::now(), self.max_retry_after));
        let body = read_capped(response, self.max_body).await;
        observer.observe(status.as_str(), started.elapsed());
        let body = match body {
            Ok(b) => b,
            Err(ApiError::TooLarge { limit }) => {
                return Attempt::Fail(ApiError::TooLarge { limit });
            }
            Err(ApiError::Transport(text)) => {
                let error = ApiError::Transport(self.scrub(&text));
                return Attempt::Retry { error, wait: None };
            }
            Err(error) => return Attempt::Retry { error, wait: None },
        };
        if status == StatusCode::OK {
            return Attempt::Done(body, server_time);
        }
        let error = ApiError::Status {
            code: status.as_u16(),
            // Scrubbed before the detail is cut to length, so no part of a secret survives,
            // and after it is parsed, for a secret written with JSON escapes.
            detail: error_detail(self.scrub(&String::from_utf8_lossy(&body)).as_bytes())
                .map(|d| self.scrub(&d)),
        };
        if is_retryable_status(status.as_u16()) {
            let wait = if status == StatusCode::TOO_MANY_REQUESTS {
                retry_after
            } else {
                None
            };
            Attempt::Retry { error, wait }
        } else {
            Attempt::Fail(error)
        }
    }
}

/// An instant no wait reaches: about thirty years from now.
fn far_future() -> Instant {
    let now = Instant::now();
    now.checked_add(Duration::from_secs(30 * 365 * 86_400))
        .unwrap_or(now)
}

/// Server time at local instant `at`, given that it was `date` at local instant `seen`.
pub fn server_time_at(date: i64, seen: Instant, at: Instant) -> i64 {
    // Rounded down either way: an estimate of "now" errs towards the past, where it can
    // only cost a re-read, never a missed change.
    let secs = |d: Duration, up: bool| {
        let s = d
            .as_secs()
            .saturating_add(u64::from(up && d.subsec_nanos() > 0));
        i64::try_from(s).unwrap_or(i64::MAX)
    };
    if at >= seen {
        date.saturating_add(secs(at - seen, false))
    } else {
        date.saturating_sub(secs(seen - at, true))
    }
}

/// An HTTP `Date` as Unix seconds, clamped like every timestamp from the API.
fn parse_date(value: &str) -> Option<i64> {
    let t = httpdate::parse_http_date(value.trim()).ok()?;
    let secs = t.duration_since(std::time::UNIX_EPOCH).ok()?.as_secs();
    Some(super::model::clamp_unix(secs as f64))
}

/// Reads a body, refusing to hold more than `limit` bytes of it.
async fn read_capped(mut response: reqwest::Response, limit: usize) -> Result<Bytes, ApiError> {
    if response.content_length().is_some_and(|n| n > limit as u64) {
        return Err(ApiError::TooLarge { limit });
    }
    let mut body = Vec::with_capacity(response.content_length().unwrap_or(0) as usize);
    loop {
        match response.chunk().await {
            Ok(Some(chunk)) => {
                if body.len() + chunk.len() > limit {
                    return Err(ApiError::TooLarge { limit });
                }
                body.extend_from_slice(&chunk);
            }
            Ok(None) => return Ok(Bytes::from(body)),
            Err(e) if e.is_timeout() => return Err(ApiError::Deadline),
            Err(e) => return Err(ApiError::Transport(describe(&e))),
        }
    }
}

/// A transport error's description with its causes (the URL in it holds no secret).
fn describe(e: &reqwest::Error) -> String {
    let mut text = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}
