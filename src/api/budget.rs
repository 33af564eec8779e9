//! The client-side request budget shared by every request made with one token: a rate limit,
//! a cap on requests in flight, and a pause that a 429 imposes on everybody.

use std::num::NonZeroU32;
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

use crate::lock::Locked;
use governor::clock::Clock;
use governor::middleware::NoOpMiddleware;
use governor::nanos::Nanos;
use governor::state::{InMemoryState, NotKeyed};
use governor::{Quota, RateLimiter};
use tokio::sync::{Semaphore, SemaphorePermit};
use tokio::time::Instant;

/// The runtime's clock, as the rate limiter reads it: time since the budget was made. Waits
/// then follow the same clock as every deadline, also when a test pauses and advances it.
#[derive(Debug, Clone, Copy)]
struct RuntimeClock {
    origin: Instant,
}

impl Clock for RuntimeClock {
    type Instant = Nanos;

    fn now(&self) -> Nanos {
        Nanos::from(self.origin.elapsed())
    }
}

type Limiter = RateLimiter<NotKeyed, InMemoryState, RuntimeClock, NoOpMiddleware<Nanos>>;

/// Rate limit, concurrency cap and rate-limit pause for one token.
pub struct RequestBudget {
    limiter: Limiter,
    clock: RuntimeClock,
    in_flight: Semaphore,
    paused_until: Mutex<Option<Pause>>,
    /// Requests wait for the rate limiter one at a time, in arrival order: the limiter alone
    /// lets a newcomer take the token a longer waiter was sleeping for, which starves some
    /// collections while the budget is saturated.
    turn: tokio::sync::Mutex<()>,
}

/// A rate-limit pause: when it ends, on the runtime's clock and on the wall clock (for the
/// log and the landing page).
#[derive(Debug, Clone, Copy)]
struct Pause {
    until: Instant,
    wall: SystemTime,
}

/// `HH:MM:SS UTC` of a wall-clock time.
pub fn clock_utc(t: SystemTime) -> String {
    let secs = t
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let day = secs % 86_400;
    format!("{:02}:{:02}:{:02} UTC", day / 3600, day / 60 % 60, day % 60)
}

impl RequestBudget {
    /// A budget of `per_second` requests (bursts up to one second's worth) and at most
    /// `max_in_flight` concurrent requests.
    pub fn new(per_second: f64, max_in_flight: usize) -> Self {
        let period = Duration::from_secs_f64(1.0 / per_second.max(1e-3));
        let burst = NonZeroU32::new(per_second.ceil().clamp(1.0, 10_000.0) as u32)
            .unwrap_or(NonZeroU32::MIN);
        let quota = Quota::with_period(period)
            .unwrap_or_else(|| Quota::per_second(NonZeroU32::MAX))
            .allow_burst(burst);
        let clock = RuntimeClock {
            origin: Instant::now(),
        };
        RequestBudget {
            limiter: RateLimiter::direct_with_clock(quota, clock),
            clock,
            in_flight: Semaphore::new(max_in_flight.max(1)),
            paused_until: Mutex::new(None),
            turn: tokio::sync::Mutex::new(()),
        }
    }

    /// Waits for the right to send one request. Returns `None` when that would take past
    /// `deadline`: a request that cannot finish in time is not worth starting.
    pub async fn acquire(&self, deadline: Instant) -> Option<SemaphorePermit<'_>> {
        let paused = *self.paused_until.locked();
        if let Some(pause) = paused {
            if pause.until >= deadline {
                return None;
            }
            tokio::time::sleep_until(pause.until).await;
        }
        let permit = tokio::time::timeout_at(deadline, self.in_flight.acquire())
            .await
            .ok()?
            .ok()?;
        let turn = tokio::time::timeout_at(deadline, self.turn.lock())
            .await
            .ok()?;
        tokio::time::timeout_at(deadline, self.limiter_ready())
            .await
            .ok()?;
        drop(turn);
        Some(permit)
    }

    /// Waits, on the runtime's clock, until the rate limiter lets one request through.
    async fn limiter_ready(&self) {
        while let Err(not_until) = self.limiter.check() {
            tokio::time::sleep(not_until.wait_time_from(self.clock.now())).await;
        }
    }

    /// Holds back every request of this token for `wait` (after a 429). Returns when the pause
    /// in force ends (wall clock), or `None` if `wait` does not fit the clock at all. A pause
    /// that starts (rather than extends one already running) is logged once.
    pub fn pause_for(&self, wait: Duration) -> Option<SystemTime> {
        let now = Instant::now();
        let until = now.checked_add(wait)?;
        let wall = SystemTime::now().checked_add(wait)?;
        let mut paused = self.paused_until.locked();
        match *paused {
            Some(p) if p.until >= until => return Some(p.wall),
            Some(p) if p.until > now => {}
            _ => tracing::warn!(
                wait_ms = u64::try_from(wait.as_millis()).unwrap_or(u64::MAX),
                "rate limited until {}: the API answered 429; every request of the token waits",
                clock_utc(wall)
            ),
        }
        *paused = Some(Pause { until, wall });
        Some(wall)
    }

    /// When the pause in force ends (wall clock), if it lasts until `deadline` or beyond.
    pub fn paused_past(&self, deadline: Instant) -> Option<SystemTime> {
        let paused = *self.paused_until.locked();
        paused.filter(|p| p.until >= deadline).map(|p| p.wall)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn pause_past_deadline_refuses() {
        let budget = RequestBudget::new(100.0, 4);
        let wall = budget.pause_for(Duration::from_secs(60)).unwrap();
        let deadline = Instant::now() + Duration::from_millis(50);
        assert!(budget.acquire(deadline).await.is_none());
        assert_eq!(budget.paused_past(deadline), Some(wall));
        // A shorter pause does not cut the one in force.
        assert_eq!(budget.pause_for(Duration::from_secs(1)), Some(wall));
    }

    #[tokio::test(start_paused = true)]
    async fn a_pause_ends_on_the_runtime_clock() {
        let budget = RequestBudget::new(100.0, 4);
        budget.pause_for(Duration::from_secs(1)).unwrap();
        let start = Instant::now();
        assert!(
            budget
                .acquire(start + Duration::from_secs(5))
                .await
                .is_some()
        );
        assert_eq!(start.elapsed(), Duration::from_secs(1));
    }

    #[tokio::test(start_paused = true)]
    async fn a_pause_that_does_not_fit_the_clock_is_refused() {
        let budget = RequestBudget::new(100.0, 4);
        assert_eq!(budget.pause_for(Duration::MAX), None);
        assert_eq!(
            budget.paused_past(Instant::now() + Duration::from_millis(1)),
            None
        );
    }

    #[test]
    fn clock_format() {
        let t = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000 + 7);
        assert_eq!(clock_utc(t), "22:13:27 UTC");
    }

    #[tokio::test(start_paused = true)]
    async fn rate_limit_spaces_requests() {
        // 20/s with a burst of 20: the first 20 go at once, the 21st..30th one period (50 ms)
        // apart, on the runtime's clock.
        let budget = RequestBudget::new(20.0, 64);
        let deadline = Instant::now() + Duration::from_secs(10);
        let start = Instant::now();
        for _ in 0..30 {
            drop(budget.acquire(deadline).await.expect("within deadline"));
        }
        let elapsed = start.elapsed();
        assert_eq!(elapsed, Duration::from_millis(500));
    }

    #[tokio::test(start_paused = true)]
    async fn concurrency_cap_holds() {
        let budget = RequestBudget::new(1000.0, 2);
        let deadline = Instant::now() + Duration::from_millis(100);
        let a = budget.acquire(deadline).await;
        let b = budget.acquire(deadline).await;
        assert!(a.is_some() && b.is_some());
        assert!(budget.acquire(deadline).await.is_none());
        drop(a);
        assert!(
            budget
                .acquire(Instant::now() + Duration::from_millis(100))
                .await
                .is_some()
        );
    }
}
