//! When to retry an API request and how long to wait first.

use std::time::{Duration, SystemTime};

use rand::RngExt;

/// Longest a `Retry-After` holds requests back unless `DEVIN_MAX_RETRY_AFTER` says otherwise.
pub const DEFAULT_MAX_RETRY_AFTER: Duration = Duration::from_secs(60);

/// Attempts per request, the first included.
pub const MAX_ATTEMPTS: u32 = 5;

/// Whether a response status is worth retrying: rate limiting and server-side failures.
pub fn is_retryable_status(code: u16) -> bool {
    code == 429 || code == 408 || (500..=599).contains(&code)
}

/// Parses a `Retry-After` header (delay in seconds or an HTTP date) and clamps it to `max`.
/// Nothing here can panic or wrap, whatever the header says; `None` (unparseable) means the
/// caller uses its own backoff.
pub fn parse_retry_after(value: &str, now: SystemTime, max: Duration) -> Option<Duration> {
    let value = value.trim();
    let wait = if value.bytes().all(|b| b.is_ascii_digit()) && !value.is_empty() {
        // Too many digits for a u64 is still a (huge) number of seconds: the cap.
        Some(value.parse::<u64>().map_or(max, Duration::from_secs))
    } else if let Ok(secs) = value.parse::<f64>() {
        if secs.is_nan() || secs < 0.0 {
            return None;
        }
        // Infinity and 1e20 do not fit a Duration; they are simply more than the cap.
        Some(Duration::try_from_secs_f64(secs).unwrap_or(max))
    } else {
        let when = httpdate::parse_http_date(value).ok()?;
        Some(when.duration_since(now).unwrap_or(Duration::ZERO))
    };
    wait.map(|w| w.min(max))
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

    const CAP: Duration = Duration::from_secs(60);

    #[test]
    fn retry_after_forms() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        assert_eq!(
            parse_retry_after("3", now, CAP),
            Some(Duration::from_secs(3))
        );
        assert_eq!(
            parse_retry_after(" 0.5 ", now, CAP),
            Some(Duration::from_millis(500))
        );
        let date = httpdate::fmt_http_date(now + Duration::from_secs(7));
        assert_eq!(
            parse_retry_after(&date, now, CAP),
            Some(Duration::from_secs(7))
        );
        let past = httpdate::fmt_http_date(now - Duration::from_secs(7));
        assert_eq!(parse_retry_after(&past, now, CAP), Some(Duration::ZERO));
        assert_eq!(parse_retry_after("soon", now, CAP), None);
    }

    #[test]
    fn huge_retry_after_is_clamped_without_panicking() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        for huge in [
            "86400",
            "18446744073709551615",
            "99999999999999999999999999999",
            "1e20",
            "1e308",
            "inf",
            "Infinity",
            "18446744073709551615.5",
        ] {
            assert_eq!(parse_retry_after(huge, now, CAP), Some(CAP), "{huge}");
        }
        let far = httpdate::fmt_http_date(now + Duration::from_secs(10 * 365 * 86400));
        assert_eq!(parse_retry_after(&far, now, CAP), Some(CAP));
        for junk in ["-1", "-0.5", "NaN", "", "+", "1e", "0x10", "3 seconds"] {
            assert_eq!(parse_retry_after(junk, now, CAP), None, "{junk:?}");
        }
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
