//! An adaptive limit on concurrent detector calls (additive increase, multiplicative
//! decrease, as TCP and AWS's own adaptive retry mode do): halved on every throttle, grown by
//! about one call per "limit" successes. A saturated Rekognition makes the stage call less, so
//! messages wait in the handler (kept invisible by the heartbeat) instead of burning receives
//! on the way to the dead-letter queue.
use std::sync::Mutex;

use tokio::sync::Notify;

/// The limit and the calls in flight.
#[derive(Debug)]
pub struct AdaptiveLimit {
    state: Mutex<State>,
    changed: Notify,
    max: f64,
}

#[derive(Debug)]
struct State {
    limit: f64,
    in_use: usize,
}

/// One call's place under the limit; released on drop.
#[derive(Debug)]
pub struct Slot<'a>(&'a AdaptiveLimit);

impl Drop for Slot<'_> {
    fn drop(&mut self) {
        self.0.state.lock().unwrap().in_use -= 1;
        self.0.changed.notify_waiters();
    }
}

impl AdaptiveLimit {
    /// Starts at `max` concurrent calls, never above it and never below one.
    pub fn new(max: usize) -> Self {
        let max = max.max(1) as f64;
        Self {
            state: Mutex::new(State {
                limit: max,
                in_use: 0,
            }),
            changed: Notify::new(),
            max,
        }
    }

    /// Waits for a place under the current limit.
    pub async fn acquire(&self) -> Slot<'_> {
        loop {
            let notified = self.changed.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            {
                let mut state = self.state.lock().unwrap();
                if (state.in_use as f64) < state.limit.floor() {
                    state.in_use += 1;
                    return Slot(self);
                }
            }
            notified.await;
        }
    }

    /// The detector throttled: halve the limit.
    pub fn on_throttle(&self) {
        let mut state = self.state.lock().unwrap();
        state.limit = (state.limit / 2.0).max(1.0);
    }

    /// A call succeeded: grow the limit by 1/limit.
    pub fn on_success(&self) {
        {
            let mut state = self.state.lock().unwrap();
            state.limit = (state.limit + 1.0 / state.limit).min(self.max);
        }
        self.changed.notify_waiters();
    }

    /// The current limit.
    pub fn limit(&self) -> f64 {
        self.state.lock().unwrap().limit
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn throttles_halve_and_successes_grow_back_slowly() {
        let limit = AdaptiveLimit::new(8);
        limit.on_throttle();
        limit.on_throttle();
        assert_eq!(limit.limit(), 2.0);
        for _ in 0..10 {
            limit.on_throttle();
        }
        assert_eq!(limit.limit(), 1.0, "never below one");
        for _ in 0..3 {
            limit.on_success();
        }
        assert!(
            limit.limit() > 2.0 && limit.limit() < 3.0,
            "{}",
            limit.limit()
        );
        for _ in 0..1000 {
            limit.on_success();
        }
        assert_eq!(limit.limit(), 8.0, "never above the maximum");
    }

    #[tokio::test]
    async fn calls_wait_while_the_limit_is_reached() {
        let limit = AdaptiveLimit::new(2);
        limit.on_throttle();
        let first = limit.acquire().await;
        let second =
            tokio::time::timeout(std::time::Duration::from_millis(50), limit.acquire()).await;
        assert!(second.is_err(), "a second call waits under a limit of one");
        drop(first);
        let _again = tokio::time::timeout(std::time::Duration::from_millis(50), limit.acquire())
            .await
            .expect("the place is free again");
    }
}
