//! The simulated sessions and how they live: a seeded, deterministic lifecycle driven by a
//! simulated clock. Every random draw comes from an RNG seeded by (seed, session, step), so
//! the world at a simulated time does not depend on how often anyone looked at it.

use rand::rngs::ChaCha8Rng;
use rand::{RngExt, SeedableRng};

/// Mixes numbers into one seed (splitmix64's finalizer).
pub fn mix(a: u64, b: u64) -> u64 {
    let mut z = a ^ b.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// A deterministic RNG for one decision. ChaCha8 is a specified algorithm, so one seed gives
/// the same world on every platform and after an upgrade of `rand`.
pub fn rng(key: u64) -> ChaCha8Rng {
    ChaCha8Rng::seed_from_u64(key)
}

/// Picks from weighted choices.
pub fn weighted<T: Copy>(r: &mut ChaCha8Rng, choices: &[(T, u32)]) -> T {
    let total: u32 = choices.iter().map(|(_, w)| w).sum();
    let mut pick = r.random_range(0..total);
    for (value, w) in choices {
        if pick < *w {
            return *value;
        }
        pick -= w;
    }
    choices[0].0
}

const ORIGINS: &[(&str, u32)] = &[
    ("webapp", 30),
    ("slack", 25),
    ("api", 12),
    ("linear", 8),
    ("jira", 6),
    ("automation", 6),
    ("cli", 5),
    ("teams", 3),
    ("desktop", 2),
    ("code_scan", 2),
    ("other", 1),
];

const CATEGORIES: &[(&str, u32)] = &[
    ("bug_fixing", 20),
    ("feature_development", 20),
    ("refactoring_and_optimization", 8),
    ("unit_test_generation", 8),
    ("code_review", 6),
    ("documentation_and_content", 6),
    ("ci_cd_and_devops", 5),
    ("migrations_and_upgrades", 5),
    ("research_and_exploration", 5),
    ("data_and_automation", 4),
    ("code_quality_and_security", 3),
    ("security", 3),
    ("code_review_and_analysis", 2),
    ("other", 5),
];

const SUSPEND_REASONS: &[(&str, u32)] = &[
    ("inactivity", 40),
    ("user_request", 15),
    ("usage_limit_exceeded", 8),
    ("out_of_credits", 6),
    ("error", 4),
    ("out_of_quota", 3),
    ("org_usage_limit_exceeded", 3),
    ("no_quota_allocation", 2),
    ("payment_declined", 2),
    ("total_session_limit_exceeded", 2),
];

/// Service users behind api and automation sessions.
const SERVICE_USERS: &[(&str, u32)] = &[
    ("service-user-ci", 50),
    ("service-user-nightly", 30),
    ("service-user-triage", 20),
];

/// Playbooks, and sessions run without one.
const PLAYBOOKS: &[(Option<&str>, u32)] = &[
    (None, 55),
    (Some("playbook-fix-flaky-test"), 12),
    (Some("playbook-dependency-upgrade"), 10),
    (Some("playbook-triage-bug"), 8),
    (Some("playbook-write-unit-tests"), 7),
    (Some("playbook-security-fix"), 5),
    (Some("playbook-migrate-framework"), 3),
];

/// Tags; a session carries up to two of them.
const TAGS: &[(&str, u32)] = &[
    ("team-payments", 20),
    ("team-search", 18),
    ("team-platform", 15),
    ("frontend", 12),
    ("backend", 12),
    ("urgent", 8),
    ("customer-escalation", 5),
    ("experiment", 10),
];

/// One simulated session.
#[derive(Debug, Clone)]
pub struct SimSession {
    /// Serial within its org (seeds its randomness).
    pub serial: u64,
    /// `devin-<32 hex>`.
    pub id: String,
    /// Creation time.
    pub created_at: i64,
    /// Last change.
    pub updated_at: i64,
    /// Lifecycle status.
    pub status: &'static str,
    /// Status detail.
    pub detail: Option<&'static str>,
    /// Origin.
    pub origin: &'static str,
    /// Category once classified.
    pub category: Option<&'static str>,
    /// ACUs so far.
    pub acus: f64,
    /// States of its pull requests.
    pub prs: Vec<&'static str>,
    /// Archived flag.
    pub archived: bool,
    /// User who started it.
    pub user: u32,
    /// Service user who started it (api and automation sessions), instead of a user.
    pub service_user: Option<&'static str>,
    /// Playbook it runs.
    pub playbook: Option<&'static str>,
    /// Its tags.
    pub tags: Vec<&'static str>,
    /// When its category will be assigned (if ever).
    category_at: Option<i64>,
    category_pick: &'static str,
    /// Time of its next lifecycle event; `i64::MAX` when none.
    pub next_event: i64,
    step: u64,
    suspensions: u32,
}

impl SimSession {
    /// A new session created at `at`.
    pub fn new(seed: u64, org: u64, serial: u64, at: i64) -> Self {
        let key = mix(mix(seed, org), serial);
        let mut r = rng(key);
        let id = format!("devin-{:016x}{:016x}", mix(key, 1), mix(key, 2));
        let classify = r.random_bool(0.92);
        let origin = weighted(&mut r, ORIGINS);
        // Who and what from a draw of their own, so that the lifecycle draws stay as they were.
        let mut who = rng(mix(key, 3));
        let service_user =
            matches!(origin, "api" | "automation").then(|| weighted(&mut who, SERVICE_USERS));
        let playbook = weighted(&mut who, PLAYBOOKS);
        let mut tags = Vec::new();
        if origin == "automation" {
            tags.push("scheduled");
        }
        for _ in 0..weighted(&mut who, &[(0, 40), (1, 40), (2, 20)]) {
            let tag = weighted(&mut who, TAGS);
            if !tags.contains(&tag) {
                tags.push(tag);
            }
        }
        SimSession {
            serial,
            id,
            created_at: at,
            updated_at: at,
            status: "new",
            detail: None,
            origin,
            category: None,
            acus: 0.0,
            prs: Vec::new(),
            archived: false,
            user: r.random_range(1..60),
            service_user,
            playbook,
            tags,
            category_at: classify.then(|| at + r.random_range(120..900)),
            category_pick: weighted(&mut r, CATEGORIES),
            next_event: at + r.random_range(5..30),
            step: 0,
            suspensions: 0,
        }
    }

    /// Whether the session can still change by itself.
    pub fn is_live(&self) -> bool {
        self.next_event != i64::MAX || self.category_at.is_some()
    }

    /// Applies every event due up to `now`.
    #[cfg(test)]
    pub fn advance(&mut self, seed: u64, org: u64, now: i64) {
        self.advance_billed(seed, org, now, &mut |_, _| {});
    }

    /// [`Self::advance`], telling `bill` each ACU growth (in millionths) and when it happened:
    /// what the org's consumption is made of.
    pub fn advance_billed(
        &mut self,
        seed: u64,
        org: u64,
        now: i64,
        bill: &mut impl FnMut(i64, u64),
    ) {
        loop {
            let category_due = self.category_at.filter(|t| *t <= now);
            let event_due = (self.next_event <= now).then_some(self.next_event);
            match (category_due, event_due) {
                (Some(c), e) if e.is_none_or(|e| c <= e) => {
                    self.category = Some(self.category_pick);
                    self.category_at = None;
                    self.updated_at = self.updated_at.max(c);
                }
                (_, Some(at)) => {
                    let before = self.acu_micros();
                    self.step_at(seed, org, at);
                    bill(at, self.acu_micros().saturating_sub(before));
                }
                _ => return,
            }
        }
    }

    /// ACUs so far in millionths (they are kept rounded to thousandths: exact).
    pub fn acu_micros(&self) -> u64 {
        (self.acus * 1_000_000.0).round() as u64
    }

    fn draw(&mut self, seed: u64, org: u64) -> ChaCha8Rng {
        self.step += 1;
        rng(mix(mix(mix(seed, org), self.serial), 1000 + self.step))
    }

    /// One lifecycle event at `at`.
    fn step_at(&mut self, seed: u64, org: u64, at: i64) {
        let mut r = self.draw(seed, org);
        // ACUs accrue while working, for the time since the last change.
        if self.status == "running" && self.detail == Some("working") {
            let hours = (at - self.updated_at).max(0) as f64 / 3600.0;
            self.acus += hours * 4.0 * r.random_range(0.5..1.5);
            self.acus = (self.acus * 1000.0).round() / 1000.0;
        }
        self.updated_at = at;
        let (status, detail, wait): (&'static str, Option<&'static str>, Option<(i64, i64)>) =
            match (self.status, self.detail) {
                ("new", _) => ("claimed", None, Some((10, 60))),
                ("claimed", _) | ("resuming", _) => ("running", Some("working"), Some((60, 600))),
                ("running", Some("working")) => {
                    if self.prs.len() < 3 && r.random_bool(0.12) {
                        self.prs.push("open");
                    }
                    match weighted(
                        &mut r,
                        &[
                            ("work", 40),
                            ("user", 18),
                            ("approval", 7),
                            ("finish", 14),
                            ("exit", 10),
                            ("error", 4),
                            ("suspend", 7),
                        ],
                    ) {
                        "work" => ("running", Some("working"), Some((60, 600))),
                        "user" => ("running", Some("waiting_for_user"), Some((120, 3600))),
                        "approval" => ("running", Some("waiting_for_approval"), Some((60, 1200))),
                        "finish" => ("running", Some("finished"), Some((30, 600))),
                        "exit" => ("exit", None, None),
                        "error" => ("error", None, None),
                        _ => (
                            "suspended",
                            Some(weighted(&mut r, SUSPEND_REASONS)),
                            Some((600, 7200)),
                        ),
                    }
                }
                ("running", Some("waiting_for_user")) => {
                    match weighted(&mut r, &[("work", 60), ("idle", 30), ("exit", 10)]) {
                        "work" => ("running", Some("working"), Some((60, 600))),
                        "idle" => ("suspended", Some("inactivity"), Some((600, 7200))),
                        _ => ("exit", None, None),
                    }
                }
                ("running", Some("waiting_for_approval")) => {
                    if r.random_bool(0.8) {
                        ("running", Some("working"), Some((60, 600)))
                    } else {
                        ("suspended", Some("user_request"), Some((600, 7200)))
                    }
                }
                ("running", _) => ("exit", None, None),
                ("suspended", _) => {
                    self.suspensions += 1;
                    if self.suspensions <= 2 && r.random_bool(0.3) {
                        ("resuming", None, Some((10, 60)))
                    } else {
                        (self.status, self.detail, None)
                    }
                }
                // Settled: open pull requests get merged or closed, old sessions archived.
                _ => {
                    if let Some(pr) = self.prs.iter_mut().find(|p| **p == "open") {
                        *pr = if r.random_bool(0.7) {
                            "merged"
                        } else {
                            "closed"
                        };
                    } else if !self.archived {
                        self.archived = true;
                    }
                    (self.status, self.detail, None)
                }
            };
        self.status = status;
        self.detail = detail;
        self.next_event = match wait {
            Some((lo, hi)) => at + r.random_range(lo..hi),
            None => {
                // After settling: PRs resolve and sessions are archived, maybe, later on.
                let settled = matches!(self.status, "exit" | "error" | "suspended");
                let pending_pr = self.prs.contains(&"open");
                if settled && pending_pr {
                    at + r.random_range(1800..172_800)
                } else if settled && !self.archived && r.random_bool(0.25) {
                    at + r.random_range(86_400..604_800)
                } else {
                    i64::MAX
                }
            }
        };
    }

    /// Puts the session into `status`/`detail` at `now` (the `transition` admin action); it
    /// stays there, so that a test knows what the API shows.
    pub fn force(&mut self, status: &'static str, detail: Option<&'static str>, now: i64) {
        self.status = status;
        self.detail = detail;
        self.updated_at = self.updated_at.max(now);
        self.next_event = i64::MAX;
    }

    /// A change forced from outside (the `touch` admin action): something visible changes.
    pub fn touch(&mut self, seed: u64, org: u64, now: i64) {
        let mut r = self.draw(seed, org);
        if self.next_event != i64::MAX && self.next_event > now {
            self.step_at(seed, org, now);
        } else {
            self.acus = ((self.acus + r.random_range(0.1..2.0)) * 1000.0).round() / 1000.0;
        }
        self.updated_at = now;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lifecycle_is_deterministic_and_settles() {
        let run = || {
            let mut s = SimSession::new(7, 0, 42, 1_000);
            s.advance(7, 0, 1_000 + 30 * 86_400);
            (s.status, s.detail, s.acus, s.updated_at, s.prs.clone())
        };
        assert_eq!(run(), run());
        // Advancing in many small steps lands in the same place as one big step.
        let mut a = SimSession::new(7, 0, 43, 1_000);
        let mut b = a.clone();
        a.advance(7, 0, 500_000);
        for t in (1_000..=500_000).step_by(977) {
            b.advance(7, 0, t);
        }
        b.advance(7, 0, 500_000);
        assert_eq!(
            (a.status, a.detail, a.acus, a.updated_at),
            (b.status, b.detail, b.acus, b.updated_at)
        );
    }

    #[test]
    fn many_sessions_reach_every_kind_of_state() {
        let mut statuses = std::collections::BTreeSet::new();
        for serial in 0..2000 {
            let mut s = SimSession::new(1, 0, serial, 0);
            s.advance(1, 0, 5 * 86_400);
            statuses.insert((s.status, s.detail.unwrap_or("none")));
        }
        for want in [
            ("exit", "none"),
            ("error", "none"),
            ("suspended", "inactivity"),
            ("suspended", "out_of_credits"),
        ] {
            assert!(statuses.contains(&want), "{want:?} in {statuses:?}");
        }
    }
}
