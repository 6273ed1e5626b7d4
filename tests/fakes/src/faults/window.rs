//! Request-count windows: the sliding ("rolling") kind HubSpot, Salesforce and Meta describe,
//! and the fixed kind Braze implies by announcing a reset instant (`X-RateLimit-Reset`).

use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// How a [`RateLimit`] counts requests over time.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WindowKind {
    /// At most `requests` in any span of `window` ending now (a rolling window).
    Sliding,
    /// At most `requests` per consecutive `window`, the count resetting at each boundary.
    Fixed,
}

/// A request budget: `requests` per `window`, counted as `kind` says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RateLimit {
    /// Requests admitted per window.
    pub requests: u32,
    /// Length of the window.
    pub window: Duration,
    /// Sliding or fixed counting.
    pub kind: WindowKind,
}

impl RateLimit {
    /// A rolling window of `requests` per `window`.
    pub fn sliding(requests: u32, window: Duration) -> Self {
        Self {
            requests,
            window,
            kind: WindowKind::Sliding,
        }
    }

    /// A fixed window of `requests` per `window`, resetting at each boundary.
    pub fn fixed(requests: u32, window: Duration) -> Self {
        Self {
            requests,
            window,
            kind: WindowKind::Fixed,
        }
    }
}

/// What a window looks like at one instant, for the vendors' rate-limit headers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RateInfo {
    /// Requests admitted per window.
    pub limit: u32,
    /// Requests still admitted before the window throttles.
    pub remaining: u32,
    /// Length of the window.
    pub window: Duration,
    /// Time until a slot frees (sliding) or the window resets (fixed).
    pub reset_in: Duration,
}

impl RateInfo {
    /// Whole seconds to wait before a retry can succeed, at least 1.
    pub fn retry_after_secs(&self) -> u64 {
        let ms = self.reset_in.as_millis() as u64;
        ms.div_ceil(1000).max(1)
    }

    /// The reset instant as UTC epoch seconds (Braze's `X-RateLimit-Reset`).
    pub fn reset_epoch_secs(&self) -> u64 {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        (now + self.reset_in).as_secs() + u64::from(self.reset_in.subsec_nanos() > 0)
    }
}

/// Counting state of one [`RateLimit`].
#[derive(Debug)]
pub(crate) struct Window {
    limit: RateLimit,
    hits: VecDeque<Instant>,
    fixed_start: Instant,
    fixed_count: u32,
}

impl Window {
    pub(crate) fn new(limit: RateLimit) -> Self {
        Self {
            limit,
            hits: VecDeque::new(),
            fixed_start: Instant::now(),
            fixed_count: 0,
        }
    }

    fn roll(&mut self, now: Instant) {
        match self.limit.kind {
            WindowKind::Sliding => {
                while let Some(first) = self.hits.front() {
                    if now.duration_since(*first) >= self.limit.window {
                        self.hits.pop_front();
                    } else {
                        break;
                    }
                }
            }
            WindowKind::Fixed => {
                let window = self.limit.window.max(Duration::from_millis(1));
                let elapsed = now.duration_since(self.fixed_start);
                if elapsed >= window {
                    let periods = elapsed.as_nanos() / window.as_nanos();
                    self.fixed_start += window * periods as u32;
                    self.fixed_count = 0;
                }
            }
        }
    }

    fn used(&self) -> u32 {
        match self.limit.kind {
            WindowKind::Sliding => self.hits.len() as u32,
            WindowKind::Fixed => self.fixed_count,
        }
    }

    /// The window's state at `now`, without counting a request.
    pub(crate) fn info(&mut self, now: Instant) -> RateInfo {
        self.roll(now);
        let reset_at = match self.limit.kind {
            WindowKind::Sliding => self
                .hits
                .front()
                .map_or(now + self.limit.window, |first| *first + self.limit.window),
            WindowKind::Fixed => self.fixed_start + self.limit.window,
        };
        RateInfo {
            limit: self.limit.requests,
            remaining: self.limit.requests.saturating_sub(self.used()),
            window: self.limit.window,
            reset_in: reset_at.saturating_duration_since(now),
        }
    }

    /// Whether one more request fits at `now`; `Err` carries the state to report.
    pub(crate) fn check(&mut self, now: Instant) -> Result<(), RateInfo> {
        let info = self.info(now);
        if info.remaining == 0 {
            Err(info)
        } else {
            Ok(())
        }
    }

    /// Counts one admitted request at `now`.
    pub(crate) fn record(&mut self, now: Instant) {
        self.roll(now);
        match self.limit.kind {
            WindowKind::Sliding => self.hits.push_back(now),
            WindowKind::Fixed => self.fixed_count += 1,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sliding_window_frees_slots_as_old_hits_age_out() {
        let mut w = Window::new(RateLimit::sliding(2, Duration::from_secs(10)));
        let t0 = Instant::now();
        w.record(t0);
        w.record(t0 + Duration::from_secs(4));
        let refused = w.check(t0 + Duration::from_secs(5)).unwrap_err();
        assert_eq!(refused.remaining, 0);
        assert_eq!(refused.retry_after_secs(), 5);
        assert!(w.check(t0 + Duration::from_secs(10)).is_ok());
    }

    #[test]
    fn fixed_window_resets_at_the_boundary() {
        let mut w = Window::new(RateLimit::fixed(1, Duration::from_secs(3)));
        let t0 = w.fixed_start;
        w.record(t0);
        assert!(w.check(t0 + Duration::from_secs(2)).is_err());
        assert!(w.check(t0 + Duration::from_secs(3)).is_ok());
        assert_eq!(
            w.info(t0 + Duration::from_secs(4)).reset_in,
            Duration::from_secs(2)
        );
    }
}
