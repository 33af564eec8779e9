//! The client-side request budget shared by every request made with one token: a rate limit,
//! a cap on requests in flight, and a pause that a 429 imposes on everybody.

use std::num::NonZeroU32;
use std::sync::Mutex;
use std::time::Duration;

use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use tokio::sync::{Semaphore, SemaphorePermit};
use tokio::time::Instant;

/// Rate limit, concurrency cap and rate-limit pause for one token.
pub struct RequestBudget {
    limiter: DefaultDirectRateLimiter,
    in_flight: Semaphore,
    paused_until: Mutex<Option<Instant>>,
    /// Requests wait for the rate limiter one at a time, in arrival order: the limiter alone
    /// lets a newcomer take the token a longer waiter was sleeping for, which starves some
    /// collections while the budget is saturated.
    turn: tokio::sync::Mutex<()>,
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
        RequestBudget {
            limiter: RateLimiter::direct(quota),
            in_flight: Semaphore::new(max_in_flight.max(1)),
            paused_until: Mutex::new(None),
            turn: tokio::sync::Mutex::new(()),
        }
    }

    /// Waits for the right to send one request. Returns `None` when that would take past
    /// `deadline`: a request that cannot finish in time is not worth starting.
    pub async fn acquire(&self, deadline: Instant) -> Option<SemaphorePermit<'_>> {
        let paused = *self.paused_until.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(until) = paused {
            if until >= deadline {
                return None;
            }
            tokio::time::sleep_until(until).await;
        }
        let permit = tokio::time::timeout_at(deadline, self.in_flight.acquire())
            .await
            .ok()?
            .ok()?;
        let turn = tokio::time::timeout_at(deadline, self.turn.lock())
            .await
            .ok()?;
        tokio::time::timeout_at(deadline, self.limiter.until_ready())
            .await
            .ok()?;
        drop(turn);
        Some(permit)
    }

    /// Holds back every request of this token for `wait` (after a 429).
    pub fn pause_for(&self, wait: Duration) {
        let until = Instant::now() + wait;
        let mut paused = self.paused_until.lock().unwrap_or_else(|e| e.into_inner());
        if paused.is_none_or(|p| p < until) {
            *paused = Some(until);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn pause_past_deadline_refuses() {
        let budget = RequestBudget::new(100.0, 4);
        budget.pause_for(Duration::from_secs(60));
        let deadline = Instant::now() + Duration::from_millis(50);
        assert!(budget.acquire(deadline).await.is_none());
    }

    #[tokio::test]
    async fn rate_limit_spaces_requests() {
        // 20/s with a burst of 20: the 21st..40th requests need about another second.
        let budget = RequestBudget::new(20.0, 64);
        let deadline = Instant::now() + Duration::from_secs(10);
        let start = std::time::Instant::now();
        for _ in 0..30 {
            drop(budget.acquire(deadline).await.expect("within deadline"));
        }
        let elapsed = start.elapsed();
        assert!(elapsed >= Duration::from_millis(400), "{elapsed:?}");
    }

    #[tokio::test]
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
