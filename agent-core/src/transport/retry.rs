//! When and how long to wait before re-sending. Pure functions; the client's loop only applies
//! them.
//!
//! Invariants:
//! - a request whose [`ReplaySafety`] is [`ReplaySafety::UnsentOnly`] is re-sent only after a
//!   failure that [`TransportError::request_may_have_reached_server`] says never reached it;
//! - 4xx (but 429) are never retried ([`TransportError::is_retryable`]);
//! - no sleep exceeds `max_delay_ms`, not even one asked for by `Retry-After`.

use std::time::{Duration, SystemTime};

use rand::Rng;

use super::endpoint::ReplaySafety;
use super::error::TransportError;
use super::options::RetryPolicy;

/// Capped full-jitter backoff before the retry number `retry` (0 for the first retry):
/// uniformly random in `[0, min(max_delay, base_delay · 2^retry)]`, in whole milliseconds.
///
/// Full jitter spreads the agents of a fleet that all lost the server at the same time
/// (AWS Architecture Blog, "Exponential Backoff And Jitter").
pub fn backoff_delay<R: Rng + ?Sized>(policy: &RetryPolicy, retry: u32, rng: &mut R) -> Duration {
    let exp = 1u64.checked_shl(retry).unwrap_or(u64::MAX);
    let ceiling = policy
        .base_delay_ms
        .saturating_mul(exp)
        .min(policy.max_delay_ms);
    Duration::from_millis(rng.random_range(0..=ceiling))
}

/// The sleep before retry number `retry`: the server's `Retry-After` if it sent one (capped at
/// `max_delay`), else [`backoff_delay`].
pub fn retry_delay<R: Rng + ?Sized>(
    policy: &RetryPolicy,
    retry: u32,
    retry_after: Option<Duration>,
    rng: &mut R,
) -> Duration {
    match retry_after {
        Some(d) => d.min(policy.max_delay()),
        None => backoff_delay(policy, retry, rng),
    }
}

/// Whether a request of this replay safety may be re-sent after `err` (attempt budget aside).
pub fn should_retry(safety: ReplaySafety, err: &TransportError) -> bool {
    err.is_retryable()
        && match safety {
            ReplaySafety::Safe => true,
            ReplaySafety::UnsentOnly => !err.request_may_have_reached_server(),
        }
}

/// Parses a `Retry-After` value: delay-seconds, or an HTTP-date (IMF-fixdate, RFC 850 or
/// asctime, RFC 9110 §5.6.7) relative to `now` (a date in the past means "now").
/// `None` if unparsable.
pub fn parse_retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let v = value.trim();
    if !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit()) {
        // Absurdly long digit strings saturate instead of failing.
        return Some(Duration::from_secs(v.parse::<u64>().unwrap_or(u64::MAX)));
    }
    // httpdate (hyper's own parser) also refuses a weekday that does not match the date.
    let at = httpdate::parse_http_date(v).ok()?;
    Some(at.duration_since(now).unwrap_or(Duration::ZERO))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transport::endpoint::{Endpoint, Method};
    use rand::SeedableRng;
    use rand::rngs::StdRng;
    use std::time::UNIX_EPOCH;

    fn policy(base: u64, max: u64) -> RetryPolicy {
        RetryPolicy {
            max_attempts: 10,
            base_delay_ms: base,
            max_delay_ms: max,
        }
    }

    /// An RNG that always returns the top (or bottom) of the range, to pin the ceiling.
    struct Extreme(bool);
    impl rand::RngCore for Extreme {
        fn next_u32(&mut self) -> u32 {
            if self.0 { u32::MAX } else { 0 }
        }
        fn next_u64(&mut self) -> u64 {
            if self.0 { u64::MAX } else { 0 }
        }
        fn fill_bytes(&mut self, dst: &mut [u8]) {
            dst.fill(if self.0 { 0xff } else { 0 });
        }
    }

    #[test]
    fn ceiling_doubles_then_caps() {
        let p = policy(500, 30_000);
        let ceilings: Vec<u64> = (0..8)
            .map(|n| backoff_delay(&p, n, &mut Extreme(true)).as_millis() as u64)
            .collect();
        assert_eq!(
            ceilings,
            [500, 1000, 2000, 4000, 8000, 16_000, 30_000, 30_000]
        );
        assert_eq!(backoff_delay(&p, 3, &mut Extreme(false)), Duration::ZERO);
    }

    #[test]
    fn huge_attempt_numbers_do_not_overflow() {
        let p = policy(u64::MAX / 2, 30_000);
        assert_eq!(
            backoff_delay(&p, 200, &mut Extreme(true)),
            Duration::from_millis(30_000)
        );
    }

    #[test]
    fn jitter_stays_within_bounds_and_varies() {
        let p = policy(100, 1000);
        let mut rng = StdRng::seed_from_u64(7);
        let samples: Vec<Duration> = (0..200).map(|_| backoff_delay(&p, 2, &mut rng)).collect();
        assert!(samples.iter().all(|d| *d <= Duration::from_millis(400)));
        let distinct: std::collections::HashSet<_> = samples.iter().collect();
        assert!(distinct.len() > 50, "full jitter spreads delays");
    }

    #[test]
    fn retry_after_wins_but_is_capped() {
        let p = policy(500, 30_000);
        let mut rng = Extreme(true);
        assert_eq!(
            retry_delay(&p, 0, Some(Duration::from_secs(2)), &mut rng),
            Duration::from_secs(2)
        );
        assert_eq!(
            retry_delay(&p, 0, Some(Duration::from_secs(3600)), &mut rng),
            Duration::from_secs(30)
        );
        assert_eq!(
            retry_delay(&p, 1, None, &mut rng),
            Duration::from_millis(1000)
        );
    }

    #[test]
    fn retry_after_forms() {
        let now = UNIX_EPOCH + Duration::from_secs(784_111_777); // Sun, 06 Nov 1994 08:49:37 GMT
        assert_eq!(
            parse_retry_after("120", now),
            Some(Duration::from_secs(120))
        );
        assert_eq!(parse_retry_after(" 0 ", now), Some(Duration::ZERO));
        for date in [
            "Sun, 06 Nov 1994 08:50:07 GMT",
            "Sunday, 06-Nov-94 08:50:07 GMT",
            "Sun Nov  6 08:50:07 1994",
        ] {
            assert_eq!(
                parse_retry_after(date, now),
                Some(Duration::from_secs(30)),
                "{date}"
            );
        }
        assert_eq!(
            parse_retry_after("Sat, 05 Nov 1994 08:49:37 GMT", now),
            Some(Duration::ZERO),
            "past dates mean now"
        );
        for bad in [
            "",
            "soon",
            "-5",
            "1.5",
            "Sun, 06 Nov 1994 25:00:00 GMT",
            "Sun, 06 Foo 1994 08:00:00 GMT",
            "Mon, 06 Nov 1994 08:50:07 GMT",
        ] {
            assert_eq!(parse_retry_after(bad, now), None, "{bad:?}");
        }
    }

    fn err(status: Option<u16>, connect: bool) -> TransportError {
        match status {
            Some(status) => TransportError::Server {
                endpoint: Endpoint::Agents,
                method: Method::Post,
                url: "u".into(),
                status,
                message: "m".into(),
                body_excerpt: String::new(),
                retry_after: None,
            },
            None if connect => TransportError::ClientBuild { detail: "x".into() },
            None => TransportError::Redirect {
                method: Method::Post,
                url: "u".into(),
                status: 301,
                location: "l".into(),
            },
        }
    }

    #[test]
    fn unsafe_requests_are_not_resent_after_reaching_the_server() {
        let e500 = err(Some(500), false);
        assert!(should_retry(ReplaySafety::Safe, &e500));
        assert!(!should_retry(ReplaySafety::UnsentOnly, &e500));
        let e429 = err(Some(429), false);
        assert!(should_retry(ReplaySafety::Safe, &e429));
        assert!(!should_retry(ReplaySafety::UnsentOnly, &e429));
        for s in [400, 404] {
            assert!(!should_retry(ReplaySafety::Safe, &err(Some(s), false)));
        }
        assert!(
            !should_retry(ReplaySafety::Safe, &err(None, false)),
            "redirect"
        );
        assert!(
            !should_retry(ReplaySafety::Safe, &err(None, true)),
            "config"
        );
    }
}
