//! Org discovery: the enterprise's organizations, listed through
//! `GET /v3/enterprise/organizations` and refreshed periodically.

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, SystemTime};

use tokio::sync::Mutex;
use tokio::time::Instant;

use crate::api::{
    ApiClient, ApiError, ApiStats, ListQuery, MAX_ORG_ID_BYTES, Organization, OrganizationPage,
    usable_org_id,
};
use crate::config::DiscoverySettings;
use crate::sync::intern::{MAX_LABEL_VALUE_LEN, cut};

/// What the last discovery found and how it went.
#[derive(Debug, Clone, Default)]
pub struct DiscoveryStatus {
    /// Whether the last refresh succeeded; `None` before the first.
    pub up: Option<bool>,
    /// When a refresh last succeeded.
    pub last_success: Option<SystemTime>,
    /// Why the last refresh failed.
    pub last_error: Option<String>,
    /// Orgs found by the last successful refresh (before exclusions).
    pub found: usize,
}

struct State {
    refreshed_at: Option<Instant>,
    /// Failed refreshes in a row.
    failures: u32,
    /// After a failure, no refresh before this.
    retry_at: Option<Instant>,
    status: DiscoveryStatus,
}

/// First wait after a failed refresh; it doubles with each failure in a row, up to the
/// discovery interval. A failing discovery must not turn every `/probe` of an unknown org
/// (unauthenticated, from anyone) into API requests.
const FIRST_RETRY: Duration = Duration::from_secs(10);

/// How long to wait after `failures` failed refreshes in a row.
fn retry_delay(failures: u32, interval: Duration) -> Duration {
    let doubled = FIRST_RETRY.saturating_mul(1u32 << failures.saturating_sub(1).min(16));
    doubled.min(interval.max(FIRST_RETRY))
}

/// Periodic listing of the enterprise's orgs.
pub struct Discovery {
    interval: Duration,
    page_size: u32,
    /// Requests of the discovery (the `org_id` label is empty: they belong to no org); billing
    /// shares them.
    pub api_stats: Arc<ApiStats>,
    state: Mutex<State>,
    /// Whether a refresh has finished (either way) at least once.
    settled: AtomicBool,
}

impl Discovery {
    /// Discovery refreshed every `discovery_interval`.
    pub fn new(settings: &DiscoverySettings) -> Self {
        Discovery {
            interval: settings.discovery_interval,
            page_size: settings.page_size,
            api_stats: Arc::new(ApiStats::new("")),
            state: Mutex::new(State {
                refreshed_at: None,
                failures: 0,
                retry_at: None,
                status: DiscoveryStatus::default(),
            }),
            settled: AtomicBool::new(false),
        }
    }

    /// Whether a refresh has finished at least once: from then on there is a list to answer
    /// from while another refresh runs.
    pub fn settled(&self) -> bool {
        self.settled.load(Ordering::Relaxed)
    }

    /// How the last refresh went.
    pub async fn status(&self) -> DiscoveryStatus {
        self.state.lock().await.status.clone()
    }

    /// Lists the orgs again if the last refresh is older than the interval, or failed and its
    /// backoff is over; returns the new list, or `None` when no refresh was due or it failed
    /// (the caller keeps the orgs it has). Callers run one refresh at a time (the exporter
    /// holds its lock); the state is not locked while the API is asked, so the status can be
    /// read meanwhile.
    pub async fn refresh_if_due(
        &self,
        client: &ApiClient,
        deadline: Instant,
    ) -> Option<Vec<Organization>> {
        {
            let mut state = self.state.lock().await;
            let now = Instant::now();
            let due = match state.status.up {
                None => true,
                Some(true) => state
                    .refreshed_at
                    .is_none_or(|t| now.saturating_duration_since(t) >= self.interval),
                Some(false) => state.retry_at.is_none_or(|t| now >= t),
            };
            if !due {
                return None;
            }
            state.refreshed_at = Some(now);
        }
        let result = self.list_all(client, deadline).await;
        let mut state = self.state.lock().await;
        self.settled.store(true, Ordering::Relaxed);
        match result {
            Ok(orgs) => {
                tracing::info!(orgs = orgs.len(), "org discovery refreshed");
                state.failures = 0;
                state.retry_at = None;
                state.status = DiscoveryStatus {
                    up: Some(true),
                    last_success: Some(SystemTime::now()),
                    last_error: None,
                    found: orgs.len(),
                };
                Some(orgs)
            }
            Err(e) => {
                state.failures = state.failures.saturating_add(1);
                let wait = retry_delay(state.failures, self.interval);
                state.retry_at = Instant::now().checked_add(wait);
                tracing::warn!(
                    error = %e,
                    retry_in_s = wait.as_secs(),
                    "org discovery failed; keeping the orgs known so far"
                );
                state.status.up = Some(false);
                state.status.last_error = Some(e.to_string());
                None
            }
        }
    }

    async fn list_all(
        &self,
        client: &ApiClient,
        deadline: Instant,
    ) -> Result<Vec<Organization>, ApiError> {
        let mut query = ListQuery {
            first: self.page_size,
            ..Default::default()
        };
        let mut orgs = Vec::new();
        let mut cursors = HashSet::new();
        loop {
            let body = client
                .list_organizations(&query, deadline, &*self.api_stats)
                .await?;
            let page: OrganizationPage = body.parse_as()?;
            orgs.extend(page.items.into_iter().filter_map(usable));
            if orgs.len() > MAX_DISCOVERED_ORGS {
                return Err(ApiError::Protocol(format!(
                    "the org listing has more than {MAX_DISCOVERED_ORGS} orgs"
                )));
            }
            match page.end_cursor {
                Some(cursor) if page.has_next_page => {
                    if !cursors.insert(cursor.clone()) {
                        return Err(ApiError::Protocol(format!(
                            "end_cursor {:?} repeated: the org listing loops",
                            cut(&cursor, 64)
                        )));
                    }
                    query.after = Some(cursor)
                }
                _ => return Ok(orgs),
            }
        }
    }
}

/// Most orgs one discovery accepts: an org listing that pages on past this is broken.
const MAX_DISCOVERED_ORGS: usize = 100_000;
/// A listed org as the exporter keeps it: an empty or absurdly long id is skipped (with a
/// log line), and the name is cut like every label value from the network.
fn usable(mut org: Organization) -> Option<Organization> {
    if !usable_org_id(&org.org_id) {
        tracing::warn!(
            org_id = %cut(&org.org_id, 64),
            len = org.org_id.len(),
            "org listing returned an org id that is empty or longer than {MAX_ORG_ID_BYTES} bytes; skipped"
        );
        return None;
    }
    org.name = org.name.map(|n| cut(&n, MAX_LABEL_VALUE_LEN).to_string());
    Some(org)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_delay_grows_up_to_the_interval() {
        let interval = Duration::from_secs(600);
        let delays: Vec<u64> = (1..=8)
            .map(|n| retry_delay(n, interval).as_secs())
            .collect();
        assert_eq!(delays, [10, 20, 40, 80, 160, 320, 600, 600]);
        assert_eq!(retry_delay(u32::MAX, interval), interval);
        // A discovery interval shorter than the first delay does not shorten it.
        assert_eq!(
            retry_delay(1, Duration::from_secs(1)),
            Duration::from_secs(10)
        );
    }
}
