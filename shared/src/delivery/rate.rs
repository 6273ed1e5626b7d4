//! The token bucket behind a destination's `rate_per_second`.

use std::num::NonZeroU32;
use std::time::Duration;

use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};

/// A limiter allowing `rate` requests per second with bursts of `burst`; none for no rate (or
/// a rate that is not a positive number).
pub fn rate_limiter(rate: Option<f64>, burst: u32) -> Option<DefaultDirectRateLimiter> {
    let rate = rate.filter(|r| r.is_finite() && *r > 0.0)?;
    let period = Duration::from_secs_f64(1.0 / rate.max(0.001));
    let burst = NonZeroU32::new(burst.max(1)).unwrap_or(NonZeroU32::MIN);
    // A positive finite rate always gives a positive period; the fallback is unreachable.
    let quota = Quota::with_period(period).unwrap_or_else(|| Quota::per_second(NonZeroU32::MIN));
    Some(RateLimiter::direct(quota.allow_burst(burst)))
}

#[cfg(test)]
mod tests {
    use super::rate_limiter;

    #[test]
    fn no_limiter_without_a_positive_rate() {
        assert!(rate_limiter(None, 1).is_none());
        assert!(rate_limiter(Some(0.0), 1).is_none());
        assert!(rate_limiter(Some(f64::NAN), 1).is_none());
        let l = rate_limiter(Some(10.0), 2).expect("a limiter");
        assert!(
            l.check().is_ok() && l.check().is_ok(),
            "the burst passes at once"
        );
        assert!(l.check().is_err(), "then the rate applies");
    }
}
