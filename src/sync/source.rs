//! Which listing the sessions come from: the enterprise stream or each org's own, as
//! `DEVIN_SESSION_SOURCE` says; with `auto`, whether the token may read the stream, asked
//! with one `GET /v3/enterprise/sessions?first=1` at start, at every discovery refresh and
//! every [`PROBE_INTERVAL`] without discovery.

use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

use crate::api::{ApiClient, ApiError, ApiStats, ListQuery};
use crate::config::SessionSource;
use crate::lock::Locked;

/// How often `auto` asks again without discovery.
pub const PROBE_INTERVAL: Duration = Duration::from_secs(600);

/// The listing in use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// `GET /v3/enterprise/sessions`: one stream for every org.
    Enterprise,
    /// `GET /v3/organizations/{org_id}/sessions`, per org.
    Orgs,
}

impl Source {
    /// The `source` label of `devin_exporter_session_source`.
    pub fn label(self) -> &'static str {
        match self {
            Source::Enterprise => "enterprise",
            Source::Orgs => "orgs",
        }
    }
}

#[derive(Debug, Default)]
struct Choice {
    current: Option<(Source, String)>,
    asked: Option<Instant>,
}

/// The choice of source and why it was made.
#[derive(Debug)]
pub struct SourceChoice {
    setting: SessionSource,
    choice: Mutex<Choice>,
}

impl SourceChoice {
    /// A choice as `setting` says; `auto` decides at the first [`SourceChoice::decide`].
    pub fn new(setting: SessionSource) -> Self {
        let fixed = match setting {
            SessionSource::Enterprise => Some((
                Source::Enterprise,
                "DEVIN_SESSION_SOURCE=enterprise".to_string(),
            )),
            SessionSource::Orgs => Some((Source::Orgs, "DEVIN_SESSION_SOURCE=orgs".to_string())),
            SessionSource::Auto => None,
        };
        SourceChoice {
            setting,
            choice: Mutex::new(Choice {
                current: fixed,
                asked: None,
            }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Choice> {
        self.choice.locked()
    }

    /// The source in use and why, once decided.
    pub fn current(&self) -> Option<(Source, String)> {
        self.lock().current.clone()
    }

    /// The source to collect from now. With `auto`, asks the API when never asked, when
    /// `refreshed` (discovery just refreshed) or [`PROBE_INTERVAL`] after the last time;
    /// an answer that is neither 200 nor 403/404 (a timeout, a 5xx) keeps the last choice,
    /// or the orgs' listings before any, and asks again at the next scrape.
    pub async fn decide(
        &self,
        client: &ApiClient,
        stats: &ApiStats,
        deadline: Instant,
        refreshed: bool,
    ) -> Source {
        let due = {
            let c = self.lock();
            if self.setting != SessionSource::Auto {
                return c.current.as_ref().map_or(Source::Orgs, |(s, _)| *s);
            }
            refreshed || c.asked.is_none_or(|t| t.elapsed() >= PROBE_INTERVAL)
        };
        if due {
            let query = ListQuery {
                first: 1,
                ..Default::default()
            };
            let answer = client
                .list_enterprise_sessions(&query, deadline, stats)
                .await;
            let decided = match answer {
                Ok(_) => Some((
                    Source::Enterprise,
                    "the token may read the enterprise session stream".to_string(),
                )),
                Err(ApiError::Status {
                    code: code @ (403 | 404),
                    ..
                }) => Some((
                    Source::Orgs,
                    format!(
                        "the enterprise session stream answered HTTP {code}: grant the token ViewAccountSessions on the enterprise to use it"
                    ),
                )),
                Err(e) => {
                    tracing::debug!(error = %e, "could not ask for the enterprise session stream");
                    None
                }
            };
            let mut c = self.lock();
            if let Some((source, why)) = decided {
                c.asked = Some(Instant::now());
                if c.current.as_ref().map(|(s, _)| *s) != Some(source) {
                    tracing::info!(source = source.label(), reason = %why, "session source");
                }
                c.current = Some((source, why));
            }
        }
        self.lock()
            .current
            .as_ref()
            .map_or(Source::Orgs, |(s, _)| *s)
    }
}
