use std::sync::Mutex;
use std::time::{Duration, Instant};

use tokio::sync::Notify;

/// Adaptive concurrency (AIMD): the limit grows by about one per window of successes and
/// halves on overload (429, timeout), at most once per `cooldown`, between 1 and `max`.
#[derive(Debug)]
pub struct AdaptiveConcurrency {
    state: Mutex<State>,
    notify: Notify,
    max: usize,
    cooldown: Duration,
}

#[derive(Debug)]
struct State {
    limit: f64,
    in_flight: usize,
    last_decrease: Option<Instant>,
}

/// A slot taken from [`AdaptiveConcurrency`]; released on drop.
#[derive(Debug)]
pub struct Permit<'a> {
    owner: &'a AdaptiveConcurrency,
}

impl Drop for Permit<'_> {
    fn drop(&mut self) {
        let mut s = self.owner.lock();
        s.in_flight -= 1;
        drop(s);
        self.owner.notify.notify_one();
    }
}

impl AdaptiveConcurrency {
    /// Starts at `max` (the configured concurrency) and adapts below it.
    pub fn new(max: usize, cooldown: Duration) -> Self {
        AdaptiveConcurrency {
            state: Mutex::new(State {
                limit: max as f64,
                in_flight: 0,
                last_decrease: None,
            }),
            notify: Notify::new(),
            max: max.max(1),
            cooldown,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Waits for a slot under the current limit.
    pub async fn acquire(&self) -> Permit<'_> {
        loop {
            let notified = self.notify.notified();
            {
                let mut s = self.lock();
                if s.in_flight < (s.limit.floor() as usize).max(1) {
                    s.in_flight += 1;
                    return Permit { owner: self };
                }
            }
            notified.await;
        }
    }

    /// A request succeeded: additive increase.
    pub fn on_success(&self) {
        let mut s = self.lock();
        s.limit = (s.limit + 1.0 / s.limit.max(1.0)).min(self.max as f64);
        drop(s);
        self.notify.notify_one();
    }

    /// The destination is overloaded: multiplicative decrease.
    pub fn on_overload(&self) {
        let mut s = self.lock();
        let now = Instant::now();
        if s.last_decrease
            .is_some_and(|t| now.duration_since(t) < self.cooldown)
        {
            return;
        }
        s.limit = (s.limit / 2.0).max(1.0);
        s.last_decrease = Some(now);
    }

    /// The current limit.
    pub fn limit(&self) -> usize {
        self.lock().limit.floor() as usize
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn halves_on_overload_and_climbs_back() {
        let c = AdaptiveConcurrency::new(8, Duration::ZERO);
        c.on_overload();
        assert_eq!(c.limit(), 4);
        c.on_overload();
        assert_eq!(c.limit(), 2);
        for _ in 0..100 {
            c.on_success();
        }
        assert_eq!(c.limit(), 8);
    }

    #[tokio::test]
    async fn never_exceeds_the_limit() {
        let c = AdaptiveConcurrency::new(2, Duration::ZERO);
        let a = c.acquire().await;
        let _b = c.acquire().await;
        let third = tokio::time::timeout(Duration::from_millis(50), c.acquire()).await;
        assert!(third.is_err(), "a third permit must wait");
        drop(a);
        let third = tokio::time::timeout(Duration::from_millis(500), c.acquire()).await;
        assert!(third.is_ok());
    }
}
