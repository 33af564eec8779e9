//! When to retry an API request and how long to wait first.

use std::time::{Duration, SystemTime};

use rand::RngExt;

/// Attempts per request, the first included.
pub const MAX_ATTEMPTS: u32 = 5;

/// Whether a response status is worth retrying: rate limiting and server-side failures.
pub fn is_retryable_status(code: u16) -> bool {
    code == 429 || code == 408 || (500..=599).contains(&code)
}

/// Parses a `Retry-After` header: delay in seconds or an HTTP date.
pub fn parse_retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let value = value.trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    if let Ok(secs) = value.parse::<f64>() {
        if secs.is_finite() && secs >= 0.0 {
            return Some(Duration::from_secs_f64(secs));
        }
    }
    let when = httpdate::parse_http_date(value).ok()?;
    Some(when.duration_since(now).unwrap_or(Duration::ZERO))
}

/// Exponential backoff with full jitter: a random wait in [base/2, base * 2^attempt], capped.
pub fn backoff(attempt: u32) -> Duration {
    let base = Duration::from_millis(200);
    let cap = Duration::from_secs(10);
    let max = base.saturating_mul(1 << attempt.min(10)).min(cap);
    let min = base / 2;
    let millis = rand::rng().random_range(min.as_millis() as u64..=max.as_millis() as u64);
    Duration::from_millis(millis)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_forms() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        assert_eq!(parse_retry_after("3", now), Some(Duration::from_secs(3)));
        assert_eq!(
            parse_retry_after(" 0.5 ", now),
            Some(Duration::from_millis(500))
        );
        let date = httpdate::fmt_http_date(now + Duration::from_secs(7));
        assert_eq!(parse_retry_after(&date, now), Some(Duration::from_secs(7)));
        let past = httpdate::fmt_http_date(now - Duration::from_secs(7));
        assert_eq!(parse_retry_after(&past, now), Some(Duration::ZERO));
        assert_eq!(parse_retry_after("soon", now), None);
    }

    #[test]
    fn backoff_grows_and_is_capped() {
        for attempt in 0..20 {
            let d = backoff(attempt);
            assert!(d >= Duration::from_millis(100), "{d:?}");
            assert!(d <= Duration::from_secs(10), "{d:?}");
        }
    }

    #[test]
    fn retryable() {
        assert!(is_retryable_status(429));
        assert!(is_retryable_status(503));
        for code in [400, 401, 403, 404, 422] {
            assert!(!is_retryable_status(code));
        }
    }
}
