//! A simulated Devin API: the list-sessions endpoint (and `/v3/self`,
//! `/v3/enterprise/organizations`, billing and capacity: see [`billing`]) served the way the API reference describes it, over
//! sessions that live and change on a seeded, deterministic, simulated clock. It backs the
//! demo mode, the end-to-end tests and the benchmarks, and runs on its own with
//! `devin-exporter simulate`. Admin routes under `/sim/` control it; it is a development
//! tool meant for loopback.

mod admin;
mod api;
pub mod billing;
pub mod cli;
mod model;
mod world;

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::serve::ListenerExt;
use serde::Deserialize;

use crate::lock::Locked;
pub use world::OrgTotals;
use world::SimOrg;

/// How the simulated world is made.
#[derive(Debug, Clone)]
pub struct SimConfig {
    /// Seed of every random choice.
    pub seed: u64,
    /// Number of orgs.
    pub orgs: usize,
    /// Sessions each org has at the start.
    pub sessions_per_org: usize,
    /// How far back those sessions were created.
    pub history: Duration,
    /// New sessions per org per simulated hour.
    pub arrivals_per_hour: f64,
    /// Simulated seconds per real second; 0 freezes the clock.
    pub speed: f64,
    /// Added to every API response.
    pub latency: Duration,
    /// Accepted bearer tokens.
    pub tokens: Vec<String>,
    /// Strict (`>`, `<`) rather than inclusive time filters.
    pub exclusive_time_bounds: bool,
    /// Simulated Unix time at the start; the real time when `None`.
    pub start_time: Option<i64>,
    /// Org ids that say they are made up (`org-demo-1`, ...), for the exporter's demo mode.
    pub demo_org_ids: bool,
    /// Org ids whose sessions the token may not list: always 403.
    pub forbidden_orgs: Vec<String>,
    /// Billing sources the token may not read (403): `enterprise_consumption`,
    /// `org_consumption` (every org), `acu_limits`, `queue`.
    pub forbidden_billing: Vec<String>,
    /// Org ids whose consumption the token may not read: always 403.
    pub forbidden_consumption_orgs: Vec<String>,
    /// The token lacks enterprise `ViewAccountSessions`: the enterprise session stream is 403.
    pub forbid_enterprise_sessions: bool,
}

impl Default for SimConfig {
    fn default() -> Self {
        SimConfig {
            seed: 42,
            orgs: 3,
            sessions_per_org: 2000,
            history: Duration::from_secs(30 * 86_400),
            arrivals_per_hour: 30.0,
            speed: 1.0,
            latency: Duration::ZERO,
            tokens: vec!["cog_sim_5d2e8a41c7f9".to_string()],
            exclusive_time_bounds: false,
            start_time: None,
            demo_org_ids: false,
            forbidden_orgs: Vec::new(),
            forbidden_billing: Vec::new(),
            forbidden_consumption_orgs: Vec::new(),
            forbid_enterprise_sessions: false,
        }
    }
}

/// What a fault does to a response.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FaultKind {
    /// 429 with a `Retry-After` in seconds, or as an HTTP date when `http_date`.
    RateLimit {
        /// Seconds to wait; no header when `None`.
        retry_after_seconds: Option<u64>,
        /// Send the header as an HTTP date.
        #[serde(default)]
        http_date: bool,
    },
    /// This HTTP status with a problem body.
    Status(u16),
    /// Extra delay before an otherwise normal answer.
    Slow(#[serde(with = "humantime_serde_compat")] Duration),
    /// A body that is not JSON.
    MalformedJson,
}

mod humantime_serde_compat {
    //! `Slow` takes "250ms", "2s", ... in JSON.
    use std::time::Duration;

    use serde::Deserialize;

    pub fn deserialize<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let s = String::deserialize(d)?;
        humantime::parse_duration(&s).map_err(serde::de::Error::custom)
    }
}

/// A fault applied to the next `count` API requests (of one org, or of any).
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Fault {
    /// Only requests for this org; any when `None`.
    #[serde(default)]
    pub org_id: Option<String>,
    /// What happens.
    pub kind: FaultKind,
    /// How many requests it hits.
    #[serde(default = "one")]
    pub count: u32,
}

fn one() -> u32 {
    1
}

/// The simulated clock: real time scaled by `speed`, pausable, advanceable.
#[derive(Debug)]
struct Clock {
    base_sim: f64,
    base_real: Instant,
    speed: f64,
    paused: bool,
}

impl Clock {
    fn now(&self) -> i64 {
        if self.paused {
            return self.base_sim as i64;
        }
        (self.base_sim + self.base_real.elapsed().as_secs_f64() * self.speed) as i64
    }

    fn rebase(&mut self) {
        let now = if self.paused {
            self.base_sim
        } else {
            self.base_sim + self.base_real.elapsed().as_secs_f64() * self.speed
        };
        self.base_sim = now;
        self.base_real = Instant::now();
    }
}

struct World {
    orgs: Vec<SimOrg>,
    clock: Clock,
    faults: VecDeque<Fault>,
    rounds: u64,
}

struct Inner {
    config: SimConfig,
    world: Mutex<World>,
    requests: AtomicU64,
    org_requests: Mutex<HashMap<String, u64>>,
}

/// A simulated Devin API; cheap to clone.
#[derive(Clone)]
pub struct Simulator {
    inner: Arc<Inner>,
}

impl Simulator {
    /// Builds the world: every org with its history of sessions up to the start time.
    pub fn new(config: SimConfig) -> Self {
        let start = config.start_time.unwrap_or_else(|| {
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_secs() as i64)
        });
        let history = config.history.as_secs() as i64;
        let orgs = (0..config.orgs as u64)
            .map(|i| {
                let mut org = SimOrg::new(
                    config.seed,
                    i,
                    config.sessions_per_org,
                    history,
                    config.arrivals_per_hour,
                    start,
                );
                if config.demo_org_ids {
                    org.id = format!("org-demo-{}", i + 1);
                }
                org
            })
            .collect();
        let world = World {
            orgs,
            clock: Clock {
                base_sim: start as f64,
                base_real: Instant::now(),
                speed: config.speed,
                paused: config.speed == 0.0,
            },
            faults: VecDeque::new(),
            rounds: 0,
        };
        Simulator {
            inner: Arc::new(Inner {
                config,
                world: Mutex::new(world),
                requests: AtomicU64::new(0),
                org_requests: Mutex::new(HashMap::new()),
            }),
        }
    }

    /// The world brought up to the current simulated time.
    fn world(&self) -> MutexGuard<'_, World> {
        let mut w = self.inner.world.locked();
        let now = w.clock.now();
        let (seed, rate) = (self.inner.config.seed, self.inner.config.arrivals_per_hour);
        for org in &mut w.orgs {
            org.advance(seed, rate, now);
        }
        w
    }

    /// The org ids.
    pub fn org_ids(&self) -> Vec<String> {
        self.world().orgs.iter().map(|o| o.id.clone()).collect()
    }

    /// The first accepted token.
    pub fn token(&self) -> String {
        self.inner
            .config
            .tokens
            .first()
            .cloned()
            .unwrap_or_default()
    }

    /// The Devin API routes and the `/sim/` admin routes.
    pub fn router(&self) -> axum::Router {
        api::routes(self.clone()).merge(admin::routes(self.clone()))
    }

    /// Binds `addr` (port 0 picks one) and serves in a background task.
    pub async fn spawn(&self, addr: SocketAddr) -> std::io::Result<SocketAddr> {
        let listener = tokio::net::TcpListener::bind(addr).await?;
        let bound = listener.local_addr()?;
        // As a real API server does: no Nagle delay on the last segment of a response.
        let listener = listener.tap_io(|tcp| {
            let _ = tcp.set_nodelay(true);
        });
        let router = self.router();
        tokio::spawn(async move {
            if let Err(e) = axum::serve(listener, router).await {
                tracing::error!(error = %e, "simulator server failed");
            }
        });
        Ok(bound)
    }

    /// Simulated Unix time now.
    pub fn now(&self) -> i64 {
        self.world().clock.now()
    }

    /// Freezes the simulated clock.
    pub fn pause(&self) {
        let mut w = self.world();
        w.clock.rebase();
        w.clock.paused = true;
    }

    /// Lets the simulated clock run again.
    pub fn resume(&self) {
        let mut w = self.world();
        w.clock.rebase();
        w.clock.paused = false;
    }

    /// Moves the simulated clock forward.
    pub fn advance(&self, by: Duration) {
        {
            let mut w = self.inner.world.locked();
            w.clock.rebase();
            w.clock.base_sim += by.as_secs_f64();
        }
        drop(self.world());
    }

    /// Exact ground truth per org at the current simulated time.
    pub fn totals(&self) -> Vec<OrgTotals> {
        self.world().orgs.iter().map(SimOrg::totals).collect()
    }

    fn with_org<T>(
        &self,
        org_id: &str,
        f: impl FnOnce(&mut SimOrg, u64, i64, u64) -> T,
    ) -> Option<T> {
        let mut w = self.world();
        w.rounds += 1;
        let (now, round) = (w.clock.now(), w.rounds);
        let seed = self.inner.config.seed;
        w.orgs
            .iter_mut()
            .find(|o| o.id == org_id)
            .map(|o| f(o, seed, now, round))
    }

    /// Changes `n` existing sessions now; returns how many.
    pub fn touch(&self, org_id: &str, n: usize) -> usize {
        self.with_org(org_id, |o, seed, now, round| o.touch(seed, n, now, round))
            .unwrap_or(0)
    }

    /// Creates `n` sessions now; returns how many.
    pub fn create(&self, org_id: &str, n: usize) -> usize {
        self.with_org(org_id, |o, seed, now, _| o.create(seed, n, now))
            .unwrap_or(0)
    }

    /// Moves `n` live sessions of an org into a documented `status` and `detail` now;
    /// returns their ids, or why not.
    pub fn transition(
        &self,
        org_id: &str,
        n: usize,
        status: &str,
        detail: Option<&str>,
    ) -> Result<Vec<String>, String> {
        let (status, details) = crate::api::enums::STATUS_DETAILS
            .iter()
            .find(|(s, _)| *s == status)
            .ok_or_else(|| format!("status {status:?} is not documented"))?;
        let detail = *details
            .iter()
            .find(|d| **d == detail)
            .ok_or_else(|| format!("status_detail {detail:?} is not documented for {status}"))?;
        self.with_org(org_id, |o, _, now, _| o.transition(n, status, detail, now))
            .ok_or_else(|| format!("unknown org {org_id}"))
    }

    /// Moves `n` live sessions of an org into a `status` and `detail` the API does not
    /// document (yet): what a newer API sends without notice, and what the exporter must
    /// carry through as it comes. Returns their ids, or why not; a documented pair is
    /// [`Simulator::transition`]'s.
    pub fn transition_undocumented(
        &self,
        org_id: &str,
        n: usize,
        status: &'static str,
        detail: Option<&'static str>,
    ) -> Result<Vec<String>, String> {
        let documented = crate::api::enums::STATUS_DETAILS
            .iter()
            .any(|(s, details)| *s == status && details.contains(&detail));
        if documented {
            return Err(format!(
                "status {status:?} with status_detail {detail:?} is documented: use transition"
            ));
        }
        self.with_org(org_id, |o, _, now, _| o.transition(n, status, detail, now))
            .ok_or_else(|| format!("unknown org {org_id}"))
    }

    /// Hard-deletes `n` sessions; returns how many.
    pub fn delete(&self, org_id: &str, n: usize) -> usize {
        self.with_org(org_id, |o, seed, _, round| o.delete(seed, n, round))
            .unwrap_or(0)
    }

    /// Queues a fault.
    pub fn inject(&self, fault: Fault) {
        self.world().faults.push_back(fault);
    }

    /// API requests served, all orgs.
    pub fn request_count(&self) -> u64 {
        self.inner.requests.load(Ordering::Relaxed)
    }

    /// API requests served for one org.
    pub fn org_request_count(&self, org_id: &str) -> u64 {
        self.inner
            .org_requests
            .locked()
            .get(org_id)
            .copied()
            .unwrap_or(0)
    }

    fn count_request(&self, org_id: Option<&str>) {
        self.inner.requests.fetch_add(1, Ordering::Relaxed);
        if let Some(org) = org_id {
            *self
                .inner
                .org_requests
                .locked()
                .entry(org.to_string())
                .or_default() += 1;
        }
    }

    /// Takes the next fault that applies to a request for `org_id`.
    fn take_fault(&self, org_id: Option<&str>) -> Option<FaultKind> {
        let mut w = self.inner.world.locked();
        let pos = w
            .faults
            .iter()
            .position(|f| f.org_id.is_none() || f.org_id.as_deref() == org_id)?;
        let fault = &mut w.faults[pos];
        let kind = fault.kind.clone();
        fault.count = fault.count.saturating_sub(1);
        if fault.count == 0 {
            w.faults.remove(pos);
        }
        Some(kind)
    }
}
