//! How long a poller waits between receives, and when handled messages are deleted: the two
//! ways a consumer trades a little latency for fewer SQS requests.
//!
//! SQS bills a receive whether it brings one message or ten. A long poll returns as soon as
//! one message is there, so at a modest rate each receive brings one. Waiting before the next
//! receive lets more gather, but only pays when messages arrive fast enough to gather within
//! the wait: below that it is latency for nothing. So the wait follows the arrival rate.
//! Deletes cost no latency at all (a handled message stays invisible until its delete), so
//! they are gathered into full DeleteMessageBatch requests across receives.
use std::time::Duration;

use tokio::{sync::mpsc, time::Instant};

/// Messages per second arriving at one poller: an exponentially weighted mean of what each
/// receive brought over the time since the previous one returned.
#[derive(Debug, Clone, Default)]
pub struct ArrivalRate {
    per_second: f64,
    last: Option<Instant>,
}

/// Weight of the newest receive in the mean: a few receives follow a change of rate.
const WEIGHT: f64 = 0.3;

impl ArrivalRate {
    /// Records that a receive returning at `now` brought `received` messages.
    pub fn observe(&mut self, received: usize, now: Instant) {
        if let Some(last) = self.last {
            let seconds = now.duration_since(last).as_secs_f64().max(1e-3);
            let sample = received as f64 / seconds;
            self.per_second = (1.0 - WEIGHT) * self.per_second + WEIGHT * sample;
        }
        self.last = Some(now);
    }

    /// The rate, messages per second.
    pub fn per_second(&self) -> f64 {
        self.per_second
    }

    /// How long after a receive that brought `received` of at most `max` messages the next
    /// one should start: not before `max` are expected to have arrived, never later than
    /// `window` after the receive, and at once unless at least one more message is expected
    /// within `window`. `elapsed` has passed since the receive already (the batch's handling).
    pub fn gather_wait(
        &self,
        received: usize,
        max: usize,
        window: Duration,
        elapsed: Duration,
    ) -> Duration {
        if received >= max || self.per_second * window.as_secs_f64() < 1.0 {
            return Duration::ZERO;
        }
        let fill = Duration::from_secs_f64(max as f64 / self.per_second);
        fill.min(window).saturating_sub(elapsed)
    }
}

/// Receipt handles of handled messages, waiting to be deleted in batches of ten.
pub(crate) type DeleteSender = mpsc::UnboundedSender<String>;

/// DeleteMessageBatch requests in flight at once. One stalled request (the SDK waits up to a
/// minute) must not hold every later receipt behind it past the visibility timeout, which
/// would redeliver them all; a few stalled at once still leave the queue deleting.
pub const MAX_CONCURRENT_DELETES: usize = 4;

/// Gathers the handles sent on `handles` into batches of up to ten, each sent through
/// `delete` when full or `delay` after its first handle arrived, and the rest once every
/// sender is gone. Up to [`MAX_CONCURRENT_DELETES`] batches are in flight at once; returns
/// when every one has finished.
pub(crate) async fn delete_in_batches<F, Fut>(
    mut handles: mpsc::UnboundedReceiver<String>,
    delay: Duration,
    delete: F,
) where
    F: Fn(Vec<String>) -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let permits = std::sync::Arc::new(tokio::sync::Semaphore::new(MAX_CONCURRENT_DELETES));
    let mut in_flight = tokio::task::JoinSet::new();
    while let Some(first) = handles.recv().await {
        let mut batch = vec![first];
        let due = Instant::now() + delay;
        while batch.len() < 10 {
            tokio::select! {
                handle = handles.recv() => match handle {
                    Some(handle) => batch.push(handle),
                    None => break,
                },
                _ = tokio::time::sleep_until(due) => break,
            }
        }
        let permit = permits
            .clone()
            .acquire_owned()
            .await
            .expect("the semaphore is never closed");
        let request = delete(batch);
        in_flight.spawn(async move {
            request.await;
            drop(permit);
        });
        while in_flight.try_join_next().is_some() {}
    }
    while in_flight.join_next().await.is_some() {}
}

#[cfg(test)]
mod tests {
    use super::*;

    const WINDOW: Duration = Duration::from_millis(100);

    fn rate_after(every: Duration, receives: usize) -> ArrivalRate {
        let mut rate = ArrivalRate::default();
        let start = Instant::now();
        for i in 0..=receives {
            rate.observe(1, start + every * i as u32);
        }
        rate
    }

    #[tokio::test(start_paused = true)]
    async fn a_slow_trickle_is_received_at_once() {
        let rate = rate_after(Duration::from_millis(500), 20);
        assert!(
            (rate.per_second() - 2.0).abs() < 0.1,
            "{}",
            rate.per_second()
        );
        assert_eq!(
            rate.gather_wait(1, 10, WINDOW, Duration::ZERO),
            Duration::ZERO
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_fast_stream_waits_until_a_batch_is_expected_but_never_past_the_window() {
        // 200 messages/s: ten arrive in 50 ms.
        let rate = rate_after(Duration::from_millis(5), 40);
        let wait = rate.gather_wait(1, 10, WINDOW, Duration::ZERO);
        assert!(
            wait > Duration::from_millis(45) && wait < Duration::from_millis(55),
            "{wait:?}"
        );
        // The batch's handling already took 30 ms of it.
        let rest = rate.gather_wait(1, 10, WINDOW, Duration::from_millis(30));
        assert!(rest < Duration::from_millis(25), "{rest:?}");
        assert_eq!(
            rate.gather_wait(10, 10, WINDOW, Duration::ZERO),
            Duration::ZERO
        );
        // 20/s: two arrive within the window, ten would take 500 ms: wait the window only.
        let rate = rate_after(Duration::from_millis(50), 40);
        assert_eq!(rate.gather_wait(1, 10, WINDOW, Duration::ZERO), WINDOW);
    }

    #[tokio::test(start_paused = true)]
    async fn deletes_go_in_full_batches_or_after_the_delay_and_none_is_lost() {
        let (send, receive) = mpsc::unbounded_channel();
        let sent = std::sync::Arc::new(std::sync::Mutex::new(Vec::<Vec<String>>::new()));
        let record = sent.clone();
        let task = tokio::spawn(delete_in_batches(
            receive,
            Duration::from_secs(1),
            move |batch| {
                record.lock().unwrap().push(batch);
                async {}
            },
        ));
        for i in 0..23 {
            send.send(format!("r{i}")).unwrap();
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
        let sizes = |s: &Vec<Vec<String>>| s.iter().map(Vec::len).collect::<Vec<_>>();
        assert_eq!(
            sizes(&sent.lock().unwrap()),
            [10, 10],
            "full batches go at once"
        );
        tokio::time::sleep(Duration::from_secs(1)).await;
        assert_eq!(
            sizes(&sent.lock().unwrap()),
            [10, 10, 3],
            "the rest after the delay"
        );
        send.send("last".into()).unwrap();
        drop(send);
        task.await.unwrap();
        assert_eq!(
            sizes(&sent.lock().unwrap()),
            [10, 10, 3, 1],
            "flushed when the senders are gone"
        );
    }

    /// The first DeleteMessageBatch stalls for the SDK's full minute: the batches after it
    /// are deleted meanwhile, not held behind it past the visibility timeout.
    #[tokio::test(start_paused = true)]
    async fn a_stalled_delete_holds_no_other_batch_behind_it() {
        let (send, receive) = mpsc::unbounded_channel();
        let sent = std::sync::Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
        let record = sent.clone();
        let task = tokio::spawn(delete_in_batches(
            receive,
            Duration::from_secs(1),
            move |batch| {
                let record = record.clone();
                async move {
                    if batch[0] == "r0" {
                        tokio::time::sleep(Duration::from_secs(60)).await;
                    }
                    record.lock().unwrap().extend(batch);
                }
            },
        ));
        for i in 0..30 {
            send.send(format!("r{i}")).unwrap();
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
        assert_eq!(
            sent.lock().unwrap().len(),
            20,
            "the two batches after the stalled one are deleted"
        );
        drop(send);
        task.await.unwrap();
        assert_eq!(
            sent.lock().unwrap().len(),
            30,
            "the stalled one too, in the end"
        );
    }

    /// However many stall, at most MAX_CONCURRENT_DELETES requests are in flight.
    #[tokio::test(start_paused = true)]
    async fn deletes_in_flight_are_bounded() {
        let (send, receive) = mpsc::unbounded_channel();
        let now = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let peak = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let (n, p) = (now.clone(), peak.clone());
        let task = tokio::spawn(delete_in_batches(
            receive,
            Duration::from_secs(1),
            move |_| {
                let (n, p) = (n.clone(), p.clone());
                async move {
                    use std::sync::atomic::Ordering::SeqCst;
                    p.fetch_max(n.fetch_add(1, SeqCst) + 1, SeqCst);
                    tokio::time::sleep(Duration::from_secs(60)).await;
                    n.fetch_sub(1, SeqCst);
                }
            },
        ));
        for i in 0..100 {
            send.send(format!("r{i}")).unwrap();
        }
        drop(send);
        task.await.unwrap();
        assert_eq!(
            peak.load(std::sync::atomic::Ordering::SeqCst),
            MAX_CONCURRENT_DELETES
        );
    }
}
