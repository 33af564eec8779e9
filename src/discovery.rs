//! Org discovery: the enterprise's organizations, listed through
//! `GET /v3/enterprise/organizations` and refreshed periodically.

use std::time::{Duration, SystemTime};

use tokio::sync::Mutex;
use tokio::time::Instant;

use crate::api::{ApiClient, ApiError, ListQuery, Organization, OrganizationPage};
use crate::metrics::ApiStats;

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
    status: DiscoveryStatus,
}

/// Periodic listing of the enterprise's orgs.
pub struct Discovery {
    interval: Duration,
    page_size: u32,
    /// Requests of the discovery (the `org_id` label is empty: they belong to no org).
    pub api_stats: ApiStats,
    state: Mutex<State>,
}

impl Discovery {
    /// Discovery refreshed every `interval`.
    pub fn new(interval: Duration, page_size: u32) -> Self {
        Discovery {
            interval,
            page_size,
            api_stats: ApiStats::new(""),
            state: Mutex::new(State {
                refreshed_at: None,
                status: DiscoveryStatus::default(),
            }),
        }
    }

    /// How the last refresh went.
    pub async fn status(&self) -> DiscoveryStatus {
        self.state.lock().await.status.clone()
    }

    /// Lists the orgs again if the last refresh is older than the interval (or failed);
    /// returns the new list, or `None` when no refresh was due or it failed (the caller keeps
    /// the orgs it has). Concurrent callers wait for one refresh.
    pub async fn refresh_if_due(
        &self,
        client: &ApiClient,
        deadline: Instant,
    ) -> Option<Vec<Organization>> {
        let mut state = self.state.lock().await;
        let due = state.status.up != Some(true)
            || state
                .refreshed_at
                .is_none_or(|t| t.elapsed() >= self.interval);
        if !due {
            return None;
        }
        state.refreshed_at = Some(Instant::now());
        match self.list_all(client, deadline).await {
            Ok(orgs) => {
                tracing::info!(orgs = orgs.len(), "org discovery refreshed");
                state.status = DiscoveryStatus {
                    up: Some(true),
                    last_success: Some(SystemTime::now()),
                    last_error: None,
                    found: orgs.len(),
                };
                Some(orgs)
            }
            Err(e) => {
                tracing::warn!(error = %e, "org discovery failed; keeping the orgs known so far");
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
        loop {
            let body = client
                .list_organizations(&query, deadline, &self.api_stats)
                .await?;
            let page: OrganizationPage = body.parse_as()?;
            orgs.extend(page.items);
            match page.end_cursor {
                Some(cursor) if page.has_next_page => query.after = Some(cursor),
                _ => return Ok(orgs),
            }
        }
    }
}
