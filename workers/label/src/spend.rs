//! What the detector may spend: a budget of calls per hour or day
//! (`IMGFLOW_DETECTOR_BUDGET`), and a rate of calls per second across every replica
//! (`IMGFLOW_DETECTOR_RATE`), both counted in the index table so that any number of processes
//! share them.
//!
//! - **Budget**: a detector call first counts itself in the current window. When the window is
//!   full the message goes back to the queue as a new message delayed to the window's end (so
//!   the wait never counts toward the dead-letter queue), and the stage stops receiving until
//!   then: the rest of the backlog waits in the queue, untouched. A warning with the fixed
//!   code `detector_budget_spent` (which the stack's alarm counts) and the
//!   `imgflow_detector_budget_spent` gauge say so; work resumes by itself when the window turns.
//! - **Rate**: at most `rate` calls start in any one second, whichever replica makes them; a
//!   call finding its second full waits for the next (a few hundred milliseconds), in the
//!   handler. Together with the adaptive limit, which still answers any throttling.
use std::{
    future::Future,
    sync::{Arc, Mutex},
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use imgflow_runtime::{
    consumer::{Admission, HandleError},
    ports::{CallCounter, CallWindow},
};

/// At most `calls` detector calls per `per`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CallLimit {
    /// Calls per window.
    pub calls: u64,
    /// The window's length.
    pub per: Duration,
}

impl std::str::FromStr for CallLimit {
    type Err = String;

    /// `1000/h`, `20000/day`, `50/min`, `3/20s`; a plain number is per second (`5`).
    fn from_str(text: &str) -> Result<Self, String> {
        let bad = || {
            format!(
                "{text:?} is not a number of calls per window: 1000/h, 20000/day, 50/min, \
                 3/20s, or a plain number per second"
            )
        };
        let (calls, per) = text.trim().split_once('/').unwrap_or((text.trim(), "s"));
        let calls: u64 = calls.trim().parse().map_err(|_| bad())?;
        let per = per.trim();
        let digits = per.len() - per.trim_start_matches(|c: char| c.is_ascii_digit()).len();
        let count: u64 = if digits == 0 {
            1
        } else {
            per[..digits].parse().map_err(|_| bad())?
        };
        let unit = match &per[digits..] {
            "s" | "sec" | "second" => 1,
            "m" | "min" | "minute" => 60,
            "h" | "hour" => 3600,
            "d" | "day" => 86_400,
            _ => return Err(bad()),
        };
        let seconds = count * unit;
        if calls == 0 || seconds == 0 || seconds > 31 * 86_400 {
            return Err(bad());
        }
        Ok(Self {
            calls,
            per: Duration::from_secs(seconds),
        })
    }
}

impl CallLimit {
    /// The window holding `now`: windows are aligned to multiples of their length since the
    /// Unix epoch, so every replica agrees on them. The window, and when it ends.
    fn window(&self, scope: &str, now: SystemTime) -> (CallWindow, SystemTime) {
        let length = self.per.as_secs().max(1);
        let since_epoch = now.duration_since(UNIX_EPOCH).unwrap_or_default().as_secs();
        let start = since_epoch - since_epoch % length;
        let end = UNIX_EPOCH + Duration::from_secs(start + length);
        let started = chrono::DateTime::from_timestamp(start as i64, 0)
            .unwrap_or_default()
            .format("%Y-%m-%dT%H:%M:%SZ");
        let window = CallWindow {
            scope: scope.to_owned(),
            window: format!("{started}/{length}s"),
            limit: self.calls,
            // Kept a day past its end: long enough to read, short enough not to pile up.
            expires_at: (start + length + 86_400) as i64,
        };
        (window, end)
    }
}

/// What the label stage's detector calls may spend.
pub trait Spending: Send + Sync + 'static {
    /// Counts one detector call about to be made: the windows it was counted in (to give back
    /// should the call not be made), or why it must wait.
    fn take(&self) -> impl Future<Output = Result<Taken, HandleError>> + Send;

    /// Uncounts a call that was not made after all.
    fn give_back(&self, taken: Taken) -> impl Future<Output = ()> + Send;

    /// Whether the stage may receive: not while the budget is spent.
    fn admission(&self) -> Admission;
}

/// The windows a call was counted in.
#[derive(Debug, Default)]
pub struct Taken(Vec<CallWindow>);

/// How long a message waits when the counter could not be reached.
const COUNTER_RETRY: Duration = Duration::from_secs(30);

/// The longest a call waits in the handler for a second with room under the rate: past it the
/// message waits as a new one, so no lease (claim, content index) runs out meanwhile.
const RATE_WAIT: Duration = Duration::from_secs(30);

/// No budget and no rate: nothing counted.
#[derive(Debug, Clone, Copy, Default)]
pub struct Unlimited;

impl Spending for Unlimited {
    async fn take(&self) -> Result<Taken, HandleError> {
        Ok(Taken::default())
    }

    async fn give_back(&self, _: Taken) {}

    fn admission(&self) -> Admission {
        Admission::Open
    }
}

/// A budget and a rate counted in `counter`.
pub struct Spend<K> {
    counter: Arc<K>,
    detector: String,
    budget: Option<CallLimit>,
    rate: Option<CallLimit>,
    /// The end of the window whose budget is spent, while it lasts.
    spent_until: Mutex<Option<SystemTime>>,
}

impl<K: CallCounter> Spend<K> {
    /// Calls of `detector` limited by `budget` and `rate`, counted in `counter`.
    pub fn new(
        counter: Arc<K>,
        detector: &str,
        budget: Option<CallLimit>,
        rate: Option<CallLimit>,
    ) -> Self {
        Self {
            counter,
            detector: detector.to_owned(),
            budget,
            rate,
            spent_until: Mutex::new(None),
        }
    }

    fn spent_until(&self) -> Option<SystemTime> {
        let mut spent = self.spent_until.lock().unwrap();
        if spent.is_some_and(|until| until <= SystemTime::now()) {
            *spent = None;
            metrics::gauge!("imgflow_detector_budget_spent").set(0.0);
            tracing::info!("a new budget window: detector calls resume");
        }
        *spent
    }

    /// Counts a call. A counter that cannot be reached for now (throttled, unavailable) holds
    /// the call back, and the message waits as a new one; one that never will be (a missing
    /// grant, no table) is for a person: the dead-letter queue, replayed once fixed.
    async fn count(&self, window: &CallWindow) -> Result<Option<u64>, HandleError> {
        self.counter.take(window).await.map_err(|e| {
            if e.is_transient() {
                tracing::warn!(error = %e, "could not count a detector call against the budget or rate; the image waits");
                HandleError::requeue("call_count_failed", e, COUNTER_RETRY)
            } else {
                HandleError::from_port("call_count_failed", e)
            }
        })
    }

    async fn take_budget(&self, limit: CallLimit) -> Result<CallWindow, HandleError> {
        let (window, end) = limit.window(&format!("budget#{}", self.detector), SystemTime::now());
        if let Some(used) = self.count(&window).await? {
            metrics::gauge!("imgflow_detector_budget_remaining")
                .set(limit.calls.saturating_sub(used) as f64);
            return Ok(window);
        }
        let first = self.spent_until.lock().unwrap().replace(end).is_none();
        metrics::gauge!("imgflow_detector_budget_spent").set(1.0);
        metrics::gauge!("imgflow_detector_budget_remaining").set(0.0);
        let wait = end.duration_since(SystemTime::now()).unwrap_or_default();
        if first {
            tracing::warn!(
                error_code = "detector_budget_spent",
                budget = limit.calls,
                window = %window.window,
                resume_in = ?wait,
                "the detector budget is spent: no more calls until the window turns; \
                 messages wait in the queue"
            );
        }
        // Another class than the warning's code: the stack's metric counts spent windows, not
        // the messages waiting for them.
        Err(HandleError::requeue(
            "detector_budget_wait",
            format!(
                "the detector budget of {} calls per {:?} is spent; labelled once the window \
                 turns",
                limit.calls, limit.per
            ),
            wait + Duration::from_secs(1),
        ))
    }

    async fn take_rate(&self, limit: CallLimit) -> Result<CallWindow, HandleError> {
        let started = std::time::Instant::now();
        loop {
            if started.elapsed() > RATE_WAIT {
                return Err(HandleError::requeue(
                    "detector_rate_wait",
                    format!(
                        "waited {RATE_WAIT:?} for room under the detector rate of {} calls per \
                         {:?}; tried again shortly",
                        limit.calls, limit.per
                    ),
                    Duration::from_secs(1),
                ));
            }
            let now = SystemTime::now();
            let (window, end) = limit.window(&format!("rate#{}", self.detector), now);
            if self.count(&window).await?.is_some() {
                return Ok(window);
            }
            metrics::counter!("imgflow_detector_rate_waits_total").increment(1);
            let wait = end.duration_since(now).unwrap_or_default();
            // Spread over the next window rather than all at its first instant.
            let jitter = Duration::from_millis(rand_below(limit.per.as_millis() as u64 / 4 + 1));
            tokio::time::sleep(wait + jitter).await;
        }
    }
}

/// A number below `n`, from the clock's nanoseconds: spreading, not security.
fn rand_below(n: u64) -> u64 {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .subsec_nanos() as u64;
    nanos % n.max(1)
}

impl<K: CallCounter> Spending for Spend<K> {
    async fn take(&self) -> Result<Taken, HandleError> {
        let mut taken = Vec::new();
        if let Some(budget) = self.budget {
            taken.push(self.take_budget(budget).await?);
        }
        if let Some(rate) = self.rate {
            match self.take_rate(rate).await {
                Ok(window) => taken.push(window),
                Err(e) => {
                    self.give_back(Taken(taken)).await;
                    return Err(e);
                }
            }
        }
        Ok(Taken(taken))
    }

    async fn give_back(&self, taken: Taken) {
        for window in taken.0 {
            if let Err(e) = self.counter.give_back(&window).await {
                tracing::info!(error = %e, "could not uncount a detector call not made");
            }
        }
    }

    fn admission(&self) -> Admission {
        match self.spent_until() {
            Some(until) => Admission::Paused {
                for_: until
                    .duration_since(SystemTime::now())
                    .unwrap_or_default()
                    // Checked again at least every minute: a raised budget, a clock step.
                    .min(Duration::from_secs(60)),
                why: "the detector budget is spent until its window turns".into(),
            },
            None => Admission::Open,
        }
    }
}

impl<S: Spending> Spending for Option<S> {
    async fn take(&self) -> Result<Taken, HandleError> {
        match self {
            Some(spend) => spend.take().await,
            None => Ok(Taken::default()),
        }
    }

    async fn give_back(&self, taken: Taken) {
        if let Some(spend) = self {
            spend.give_back(taken).await;
        }
    }

    fn admission(&self) -> Admission {
        self.as_ref().map_or(Admission::Open, Spending::admission)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_read_as_people_write_them() {
        let limit = |t: &str| t.parse::<CallLimit>().unwrap();
        assert_eq!(limit("1000/h").per, Duration::from_secs(3600));
        assert_eq!(limit("20000/day").per, Duration::from_secs(86_400));
        assert_eq!(limit("50/min").calls, 50);
        assert_eq!(limit("3/20s").per, Duration::from_secs(20));
        assert_eq!(limit("5"), limit("5/s"));
        for bad in ["", "0/h", "ten/h", "5/fortnight", "5/0s", "5/400d"] {
            assert!(bad.parse::<CallLimit>().is_err(), "{bad}");
        }
    }

    #[test]
    fn windows_are_aligned_so_every_replica_counts_in_the_same_one() {
        let limit: CallLimit = "3/20s".parse().unwrap();
        let at = |s: u64| UNIX_EPOCH + Duration::from_secs(1_700_000_000 + s);
        let (a, end) = limit.window("budget#x", at(0));
        let (b, _) = limit.window("budget#x", at(19));
        let (c, _) = limit.window("budget#x", at(20));
        assert_eq!(a, b);
        assert_ne!(a.window, c.window);
        assert_eq!(end, at(20));
        assert_eq!(a.window, "2023-11-14T22:13:20Z/20s");
    }
}
