//! Billing and capacity: billed ACUs by product (the enterprise's and each collected org's),
//! cycle ACU limits and the queue, read from four sources that change in minutes, not
//! seconds. A scrape that finds a source older than the interval starts one background
//! refresh ([`Billing::refresh_if_due`]) and renders what is there: billing never delays a
//! scrape, and the session metrics never depend on it.
//!
//! Each source needs its own permission. In `auto` mode a 403 switches the source (for
//! `org_consumption`, that org alone) off with one WARN line naming the permission; an off
//! source is asked again once an hour, quietly, so that a permission granted later is picked
//! up. Any other failure (and a 403 in `on` mode) keeps the last values with their age and
//! reports the source down with the reason.

pub mod capacity;
pub mod ledger;

use std::collections::{BTreeMap, HashSet};

use futures::StreamExt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime};

use tokio::time::Instant;

use crate::api::billing::{AcuLimitPage, DailyConsumption, Queue};
use crate::api::client::PageBody;
use crate::api::{ApiClient, ApiError, ApiStats, ListQuery};
use crate::config::{BillingMode, BillingSettings};
use crate::lock::Locked;
use crate::sync::intern::cut;
use capacity::{Limits, MAX_LIMITS, QueueState, read_queue};
use ledger::{Cycle, Ledger, Oddities, read_cycle};

/// A consumption answer (the enterprise's or an org's) read into its cycle, its days judged
/// by the server's clock.
fn consumption(
    client: &ApiClient,
    answer: Result<PageBody, ApiError>,
) -> Result<(Cycle, Oddities), ApiError> {
    let body = answer?;
    let parsed: DailyConsumption = body.parse_as()?;
    let server_now = body.server_time().or_else(|| client.server_now());
    Ok(read_cycle(&parsed, server_now))
}

/// How often a source switched off for a missing permission is asked again.
pub const OFF_RECHECK: Duration = Duration::from_secs(3600);

/// Where billing data comes from: the `source` label.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Source {
    /// `GET /v3/enterprise/consumption/daily`.
    EnterpriseConsumption,
    /// `GET /v3/organizations/{org_id}/consumption/daily`, one request per collected org.
    OrgConsumption,
    /// `GET /v3/enterprise/consumption/acu-limits/devin`.
    AcuLimits,
    /// `GET /v3/enterprise/queue`.
    Queue,
}

impl Source {
    /// Every source, in the order metrics and pages list them.
    pub const ALL: [Source; 4] = [
        Source::EnterpriseConsumption,
        Source::OrgConsumption,
        Source::AcuLimits,
        Source::Queue,
    ];

    /// The `source` label value.
    pub fn name(self) -> &'static str {
        match self {
            Source::EnterpriseConsumption => "enterprise_consumption",
            Source::OrgConsumption => "org_consumption",
            Source::AcuLimits => "acu_limits",
            Source::Queue => "queue",
        }
    }

    /// The permission a 403 says the token lacks, in words for the operator.
    pub fn permission(self) -> &'static str {
        match self {
            Source::EnterpriseConsumption | Source::AcuLimits => {
                "ViewAccountConsumption (or ManageBilling) on the enterprise"
            }
            Source::OrgConsumption => "ViewOrgConsumption (or ManageBilling) on the org",
            Source::Queue => "ViewAccountMetrics on the enterprise",
        }
    }
}

/// How a source (or one org's consumption) fares.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Health {
    /// Whether its last refresh succeeded; `None` before the first, and while off.
    pub up: Option<bool>,
    /// When a refresh last succeeded (this process's clock: the data's age).
    pub last_success: Option<SystemTime>,
    /// Why the last refresh failed.
    pub last_error: Option<String>,
    /// Switched off: the token lacks the permission (`auto` mode).
    pub off: bool,
}

/// A source's data and health.
#[derive(Debug, Default)]
struct Tracked<T> {
    health: Health,
    data: T,
    /// When a refresh last started.
    attempted: Option<Instant>,
}

impl<T> Tracked<T> {
    fn due(&self, now: Instant, interval: Duration) -> bool {
        let every = if self.health.off {
            OFF_RECHECK
        } else {
            interval
        };
        self.attempted
            .is_none_or(|t| now.saturating_duration_since(t) >= every)
    }
}

#[derive(Default)]
struct State {
    enterprise: Tracked<Ledger>,
    orgs: BTreeMap<String, Tracked<Ledger>>,
    limits: Tracked<Option<Limits>>,
    queue: Tracked<Option<QueueState>>,
}

/// One refresh of one source.
enum Job {
    Enterprise,
    Org(String),
    Limits,
    Queue,
}

/// What a scrape shows of billing: a copy taken under the lock.
#[derive(Debug, Clone, Default)]
pub struct BillingView {
    /// Each source's health (`org_consumption`'s summed over its orgs, see [`Self::orgs`]).
    pub sources: Vec<(Source, Health)>,
    /// The enterprise's cycle and counters; `None` while off or never read.
    pub enterprise: Option<Ledger>,
    /// Each collected org's cycle and counters (orgs switched off or never read left out).
    pub orgs: Vec<(String, Ledger)>,
    /// Orgs whose consumption the token may not read.
    pub off_orgs: Vec<String>,
    /// The cycle limits, once read (`None` while off or never read: discovery's then hold).
    pub limits: Option<Limits>,
    /// The queue, once read.
    pub queue: Option<QueueState>,
}

impl BillingView {
    /// The health of `source`, if it is shown.
    pub fn health(&self, source: Source) -> Option<&Health> {
        self.sources
            .iter()
            .find(|(s, _)| *s == source)
            .map(|(_, h)| h)
    }

    /// Start of the current billing cycle: the enterprise's, else the latest of the orgs'.
    pub fn cycle_start(&self) -> Option<i64> {
        let start = |l: &Ledger| l.shown.as_ref().and_then(|c| c.start);
        self.enterprise
            .as_ref()
            .and_then(start)
            .or_else(|| self.orgs.iter().filter_map(|(_, l)| start(l)).max())
    }
}

/// Resets the running flag when the refresh ends, panics included.
struct Running<'a>(&'a AtomicBool);

impl Drop for Running<'_> {
    fn drop(&mut self) {
        self.0.store(false, Ordering::Release);
    }
}

/// The share of the token's request budget billing takes at most: the rest is the session
/// collections'. At 5,000 orgs one refresh of every org's consumption then takes 5,000 / 5 s
/// at the default budget, longer than the interval: each org is refreshed as often as the
/// share allows.
const BUDGET_SHARE: f64 = 0.25;
/// Billing requests in flight at once.
const IN_FLIGHT: usize = 2;

/// The billing sources and their refreshes.
pub struct Billing {
    settings: BillingSettings,
    /// The share of the token's request budget billing paces itself to.
    budget_share: f64,
    /// Requests of the enterprise sources and of org consumption (no org_id label, as
    /// discovery's, whose statistics they share when discovery is on).
    stats: Arc<ApiStats>,
    running: AtomicBool,
    state: Mutex<State>,
}

impl Billing {
    /// Billing refreshed every `billing_interval` (its mode must not be `off`).
    pub fn new(settings: &BillingSettings, stats: Arc<ApiStats>) -> Self {
        Billing {
            settings: settings.clone(),
            budget_share: BUDGET_SHARE,
            stats,
            running: AtomicBool::new(false),
            state: Mutex::new(State::default()),
        }
    }

    /// Billing paced to the whole request budget: for `check`, where no collection waits.
    pub fn with_whole_budget(mut self) -> Self {
        self.budget_share = 1.0;
        self
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state.locked()
    }

    /// The request statistics of billing's requests.
    pub fn stats(&self) -> &ApiStats {
        &self.stats
    }

    /// Whether a refresh is running now.
    pub fn refreshing(&self) -> bool {
        self.running.load(Ordering::Acquire)
    }

    /// Starts a refresh in the background if a source is due and none runs; never waits.
    /// `orgs` are the orgs collected now: only theirs is read and shown.
    pub fn refresh_if_due(self: &Arc<Self>, client: &Arc<ApiClient>, orgs: Vec<String>) {
        let now = Instant::now();
        let due = {
            let st = self.state();
            let tracked_due = |t: &Tracked<Ledger>| t.due(now, self.settings.billing_interval);
            tracked_due(&st.enterprise)
                || st.limits.due(now, self.settings.billing_interval)
                || st.queue.due(now, self.settings.billing_interval)
                || orgs.iter().any(|o| st.orgs.get(o).is_none_or(tracked_due))
        };
        if !due || self.running.swap(true, Ordering::AcqRel) {
            return;
        }
        let (this, client) = (Arc::clone(self), Arc::clone(client));
        tokio::spawn(async move {
            let _running = Running(&this.running);
            this.refresh(&client, &orgs).await;
        });
    }

    /// Refreshes every due source, concurrently (the client's request budget paces them),
    /// within one interval.
    pub async fn refresh(&self, client: &ApiClient, orgs: &[String]) {
        let now = Instant::now();
        let jobs = {
            let mut st = self.state();
            let wanted: HashSet<&String> = orgs.iter().collect();
            st.orgs.retain(|id, _| wanted.contains(id));
            let mut jobs = Vec::new();
            let interval = self.settings.billing_interval;
            let mut take = |t: &mut Option<Instant>, due: bool, job: Job| {
                if due {
                    *t = Some(now);
                    jobs.push(job);
                }
            };
            let due = st.enterprise.due(now, interval);
            take(&mut st.enterprise.attempted, due, Job::Enterprise);
            let due = st.limits.due(now, interval);
            take(&mut st.limits.attempted, due, Job::Limits);
            let due = st.queue.due(now, interval);
            take(&mut st.queue.attempted, due, Job::Queue);
            for id in orgs {
                let t = st.orgs.entry(id.clone()).or_default();
                let due = t.due(now, interval);
                take(&mut t.attempted, due, Job::Org(id.clone()));
            }
            jobs
        };
        // Paced at billing's share of the token's budget, a few at a time, each with an
        // interval to finish from its start: thousands of orgs' consumption must never queue
        // ahead of the session collections a scrape waits for.
        let share = self.settings.max_requests_per_second * self.budget_share;
        let period =
            Duration::from_secs_f64(1.0 / share.max(1e-3)).min(self.settings.billing_interval);
        let interval = self.settings.billing_interval;
        let start = Instant::now();
        futures::stream::iter(jobs.into_iter().enumerate())
            .map(|(i, job)| async move {
                tokio::time::sleep_until(start + period.mul_f64(i as f64)).await;
                self.run(job, client, Instant::now() + interval).await;
            })
            .buffer_unordered(IN_FLIGHT)
            .collect::<()>()
            .await;
    }

    async fn run(&self, job: Job, client: &ApiClient, deadline: Instant) {
        let stats = &*self.stats;
        match job {
            Job::Enterprise => {
                let answer = client.enterprise_consumption(deadline, stats).await;
                let result = consumption(client, answer);
                let mut st = self.state();
                let t = &mut st.enterprise;
                if let Some((cycle, odd)) =
                    self.record(&mut t.health, Source::EnterpriseConsumption, None, result)
                {
                    log_oddities(Source::EnterpriseConsumption, None, &odd);
                    t.data.apply(cycle);
                }
            }
            Job::Org(id) => {
                let answer = client.org_consumption(&id, deadline, stats).await;
                let result = consumption(client, answer);
                let mut st = self.state();
                // Dropped meanwhile: the org is no longer collected.
                let Some(t) = st.orgs.get_mut(&id) else {
                    return;
                };
                if let Some((cycle, odd)) =
                    self.record(&mut t.health, Source::OrgConsumption, Some(&id), result)
                {
                    log_oddities(Source::OrgConsumption, Some(&id), &odd);
                    t.data.apply(cycle);
                }
            }
            Job::Limits => {
                let result = self.list_limits(client, deadline).await;
                let mut st = self.state();
                let t = &mut st.limits;
                if let Some((limits, odd)) =
                    self.record(&mut t.health, Source::AcuLimits, None, result)
                {
                    if odd > 0 {
                        tracing::warn!(
                            source = Source::AcuLimits.name(),
                            values = odd,
                            "cycle ACU limits: values negative, not numbers, above 1e12 ACUs or without an org id were ignored or clamped"
                        );
                    }
                    t.data = Some(limits);
                }
            }
            Job::Queue => {
                let read = async {
                    let body = client.queue(deadline, stats).await?;
                    let parsed: Queue = body.parse_as()?;
                    read_queue(&parsed).map_err(ApiError::Decode)
                };
                let result = read.await;
                let mut st = self.state();
                let t = &mut st.queue;
                if let Some((queue, odd)) = self.record(&mut t.health, Source::Queue, None, result)
                {
                    if odd {
                        tracing::warn!(
                            source = Source::Queue.name(),
                            queue_size = queue.size,
                            status = queue.pressure.name(),
                            "queue: a negative or huge queue_size, or an unknown status, was read as shown"
                        );
                    }
                    t.data = Some(queue);
                }
            }
        }
    }

    /// Every page of the cycle limits, bounded like discovery's listing.
    async fn list_limits(
        &self,
        client: &ApiClient,
        deadline: Instant,
    ) -> Result<(Limits, usize), ApiError> {
        let mut query = ListQuery {
            first: self.settings.page_size,
            ..ListQuery::default()
        };
        let (mut limits, mut odd, mut items, mut cursors) =
            (Limits::default(), 0, 0usize, HashSet::new());
        loop {
            let body = client.acu_limits(&query, deadline, &*self.stats).await?;
            let page: AcuLimitPage = body.parse_as()?;
            odd += page.items.refused + limits.add(&page.items.items);
            items += page.items.items.len() + page.items.refused;
            if items > MAX_LIMITS {
                return Err(ApiError::Protocol(format!(
                    "the ACU limit listing has more than {MAX_LIMITS} items"
                )));
            }
            match page.end_cursor {
                Some(cursor) if page.has_next_page => {
                    if !cursors.insert(cursor.clone()) {
                        return Err(ApiError::Protocol(format!(
                            "end_cursor {:?} repeated: the ACU limit listing loops",
                            cut(&cursor, 64)
                        )));
                    }
                    query.after = Some(cursor);
                }
                _ => return Ok((limits, odd)),
            }
        }
    }

    /// Notes a refresh's outcome in `health`; the value to apply on success.
    fn record<T>(
        &self,
        health: &mut Health,
        source: Source,
        org: Option<&str>,
        result: Result<T, ApiError>,
    ) -> Option<T> {
        let org_id = org.unwrap_or("");
        match result {
            Ok(value) => {
                if health.off {
                    tracing::info!(
                        source = source.name(),
                        org_id,
                        "billing source readable again"
                    );
                }
                *health = Health {
                    up: Some(true),
                    last_success: Some(SystemTime::now()),
                    last_error: None,
                    off: false,
                };
                Some(value)
            }
            Err(e @ ApiError::Status { code: 403, .. })
                if self.settings.billing != BillingMode::On =>
            {
                if !health.off {
                    tracing::warn!(
                        source = source.name(),
                        org_id,
                        error = %e,
                        "billing source switched off: the token lacks {}; grant it to the service user, or set DEVIN_BILLING=off",
                        source.permission()
                    );
                }
                health.off = true;
                health.up = None;
                health.last_error = Some(e.to_string());
                None
            }
            Err(e) => {
                tracing::warn!(source = source.name(), org_id, error = %e, "billing refresh failed; keeping the last values");
                health.up = Some(false);
                health.off = false;
                health.last_error = Some(e.to_string());
                None
            }
        }
    }

    /// What a scrape shows now, for the orgs collected now.
    pub fn view(&self, orgs: &[String]) -> BillingView {
        let st = self.state();
        let mut view = BillingView::default();
        let shown = |h: &Health| !h.off;
        view.sources
            .push((Source::EnterpriseConsumption, st.enterprise.health.clone()));
        if shown(&st.enterprise.health) && st.enterprise.data.shown.is_some() {
            view.enterprise = Some(st.enterprise.data.clone());
        }
        // Off when every org is; up only when every org read is.
        let mut org_health = Health {
            off: !orgs.is_empty(),
            ..Health::default()
        };
        for id in orgs {
            let Some(t) = st.orgs.get(id) else {
                org_health.off = false;
                continue;
            };
            if t.health.off {
                view.off_orgs.push(id.clone());
                continue;
            }
            org_health.off = false;
            org_health.up = match (org_health.up, t.health.up) {
                (Some(false), _) | (_, Some(false)) => Some(false),
                (a, b) => a.or(b),
            };
            if org_health.last_error.is_none() {
                org_health.last_error = t.health.last_error.clone();
            }
            // The stalest org's age is the source's.
            org_health.last_success = match (org_health.last_success, t.health.last_success) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
            if t.data.shown.is_some() {
                view.orgs.push((id.clone(), t.data.clone()));
            }
        }
        view.sources.push((Source::OrgConsumption, org_health));
        view.sources
            .push((Source::AcuLimits, st.limits.health.clone()));
        if shown(&st.limits.health) {
            view.limits = st.limits.data.clone();
        }
        view.sources.push((Source::Queue, st.queue.health.clone()));
        if shown(&st.queue.health) {
            view.queue = st.queue.data;
        }
        view
    }
}

/// One line for what a consumption response held that could not be taken at face value.
fn log_oddities(source: Source, org: Option<&str>, odd: &ledger::Oddities) {
    if odd.any() {
        tracing::warn!(
            source = source.name(),
            org_id = org.unwrap_or(""),
            negative_read_as_0 = odd.negative,
            not_numbers_ignored = odd.not_numbers,
            clamped_to_1e12 = odd.clamped,
            future_days_ignored = odd.future_days,
            days_refused = odd.refused_days,
            "consumption: some figures were not taken at face value"
        );
    }
}

/// A source's state, as `check` and the landing page put it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Its last refresh succeeded.
    Ok,
    /// Switched off: the token lacks the permission.
    Off,
    /// Its last refresh failed.
    Fail,
    /// Not read yet.
    Pending,
}

impl BillingView {
    /// Each source's state and what it means, in words for the operator.
    pub fn verdicts(&self) -> Vec<(Source, Verdict, String)> {
        self.sources
            .iter()
            .map(|(source, h)| {
                let off_text = |what: &str| {
                    format!(
                        "off{what}: the token lacks {}: grant it to the service user, or set DEVIN_BILLING=off",
                        source.permission()
                    )
                };
                let (verdict, mut text) = match (h.off, h.up, &h.last_error) {
                    (true, _, _) => (Verdict::Off, off_text("")),
                    (_, Some(true), _) => (Verdict::Ok, "ok".to_string()),
                    (_, Some(false), Some(e)) => (Verdict::Fail, e.clone()),
                    (_, Some(false), None) => (Verdict::Fail, "failed".to_string()),
                    (_, None, _) => (
                        Verdict::Pending,
                        "not read yet: the first scrape of /metrics reads it".to_string(),
                    ),
                };
                if *source == Source::OrgConsumption && !self.off_orgs.is_empty() && !h.off {
                    let orgs = self.off_orgs.join(", ");
                    text = format!("{text}; {}", off_text(&format!(" for {orgs}")));
                }
                (*source, verdict, text)
            })
            .collect()
    }
}
