//! A queue in memory, with visibility, redelivery and a dead-letter queue.
use std::{
    collections::{HashMap, VecDeque},
    sync::Mutex,
    time::Duration,
};

use crate::{
    ports::{DeadLetter, Queue, ReceivedMessage},
    PortError, PortErrorKind,
};

#[derive(Debug, Clone)]
struct Stored {
    id: usize,
    body: String,
    receive_count: u32,
    attributes: HashMap<String, String>,
}

/// A queue with visibility: received messages are in flight until deleted or released.
#[derive(Debug, Default)]
pub struct FakeQueue {
    state: Mutex<QueueState>,
}

#[derive(Debug, Default)]
struct QueueState {
    next_id: usize,
    visible: VecDeque<Stored>,
    in_flight: HashMap<String, Stored>,
    delayed: Vec<(Stored, Duration)>,
    dead_letters: Vec<(String, DeadLetter)>,
    requeued: usize,
    receipts: usize,
    extensions: Vec<(usize, Duration)>,
    failing_deletes: usize,
    failing_dead_letters: usize,
    failing_receives: usize,
    long_polls: bool,
    receive_calls: usize,
    delete_calls: usize,
}

impl FakeQueue {
    /// An empty queue.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sends a message.
    pub fn send(&self, body: impl Into<String>) {
        let mut s = self.state.lock().unwrap();
        let id = s.next_id;
        s.next_id += 1;
        s.visible.push_back(Stored {
            id,
            body: body.into(),
            receive_count: 0,
            attributes: HashMap::new(),
        });
    }

    /// The next `n` entries of delete batches fail (as SQS reports per-entry failures).
    pub fn fail_deletes(&self, n: usize) {
        self.state.lock().unwrap().failing_deletes = n;
    }

    /// The next `n` receives fail as a missing `sqs:ReceiveMessage` grant does.
    pub fn fail_receives(&self, n: usize) {
        self.state.lock().unwrap().failing_receives = n;
    }

    /// The next `n` dead-letter sends fail.
    pub fn fail_dead_letters(&self, n: usize) {
        self.state.lock().unwrap().failing_dead_letters = n;
    }

    /// Makes every message in flight visible again (their visibility timeout ending).
    pub fn expire_in_flight(&self) {
        let mut s = self.state.lock().unwrap();
        let in_flight: Vec<_> = s.in_flight.drain().map(|(_, m)| m).collect();
        s.visible.extend(in_flight);
    }

    /// Messages waiting to be received.
    pub fn visible(&self) -> usize {
        self.state.lock().unwrap().visible.len()
    }

    /// Messages received and neither deleted nor released.
    pub fn in_flight(&self) -> usize {
        self.state.lock().unwrap().in_flight.len()
    }

    /// Delays set on messages released for retry, in order.
    pub fn retry_delays(&self) -> Vec<Duration> {
        self.state
            .lock()
            .unwrap()
            .delayed
            .iter()
            .map(|(_, d)| *d)
            .collect()
    }

    /// Makes every message released for retry visible again (time passing).
    pub fn expire_delays(&self) {
        let mut s = self.state.lock().unwrap();
        let delayed: Vec<_> = s.delayed.drain(..).collect();
        s.visible.extend(delayed.into_iter().map(|(m, _)| m));
    }

    /// A queue whose receives wait (in tokio time, 1 ms steps) up to their wait time for a
    /// message, as SQS long polls do; by default they answer at once.
    pub fn long_polling(self) -> Self {
        self.state.lock().unwrap().long_polls = true;
        self
    }

    /// `(receive, delete)` requests made so far: what SQS would bill.
    pub fn requests(&self) -> (usize, usize) {
        let s = self.state.lock().unwrap();
        (s.receive_calls, s.delete_calls)
    }

    /// Heartbeats so far: how many messages each extended, and to what timeout.
    pub fn extensions(&self) -> Vec<(usize, Duration)> {
        self.state.lock().unwrap().extensions.clone()
    }

    /// How many messages were sent again as new ones ([`Queue::requeue`]).
    pub fn requeued(&self) -> usize {
        self.state.lock().unwrap().requeued
    }

    /// Bodies and reasons of dead-lettered messages.
    pub fn dead_letters(&self) -> Vec<(String, DeadLetter)> {
        self.state.lock().unwrap().dead_letters.clone()
    }
}

impl Queue for FakeQueue {
    async fn receive(&self, max: u32, wait: Duration) -> Result<Vec<ReceivedMessage>, PortError> {
        let until = tokio::time::Instant::now() + wait;
        loop {
            let waiting = {
                let s = self.state.lock().unwrap();
                s.long_polls && s.visible.is_empty() && tokio::time::Instant::now() < until
            };
            if !waiting {
                break;
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        let mut s = self.state.lock().unwrap();
        s.receive_calls += 1;
        if s.failing_receives > 0 {
            s.failing_receives -= 1;
            return Err(PortError::new(
                PortErrorKind::Fatal,
                "sqs:ReceiveMessage",
                "AccessDenied: not authorized to perform sqs:ReceiveMessage",
            ));
        }
        let mut out = Vec::new();
        while out.len() < max as usize {
            let Some(mut m) = s.visible.pop_front() else {
                break;
            };
            m.receive_count += 1;
            s.receipts += 1;
            let receipt = format!("r{}-{}", m.id, s.receipts);
            out.push(ReceivedMessage {
                message_id: format!("m{}", m.id),
                receipt_handle: receipt.clone(),
                body: m.body.clone(),
                receive_count: m.receive_count,
                attributes: m.attributes.clone(),
            });
            s.in_flight.insert(receipt, m);
        }
        Ok(out)
    }

    async fn delete_batch(&self, receipt_handles: Vec<String>) -> Result<Vec<String>, PortError> {
        let mut s = self.state.lock().unwrap();
        s.delete_calls += 1;
        let mut failed = Vec::new();
        for handle in receipt_handles {
            if s.failing_deletes > 0 {
                s.failing_deletes -= 1;
                failed.push(handle);
            } else if s.in_flight.remove(&handle).is_none() {
                failed.push(handle);
            }
        }
        Ok(failed)
    }

    async fn change_visibility(
        &self,
        receipt_handle: &str,
        timeout: Duration,
    ) -> Result<(), PortError> {
        let mut s = self.state.lock().unwrap();
        let m = s.in_flight.remove(receipt_handle).ok_or_else(|| {
            PortError::new(
                PortErrorKind::Fatal,
                "ChangeMessageVisibility",
                "receipt handle is invalid",
            )
        })?;
        if timeout.is_zero() {
            s.visible.push_back(m);
        } else {
            s.delayed.push((m, timeout));
        }
        Ok(())
    }

    async fn extend_visibility(
        &self,
        receipt_handles: Vec<String>,
        timeout: Duration,
    ) -> Result<Vec<String>, PortError> {
        let mut s = self.state.lock().unwrap();
        s.extensions.push((receipt_handles.len(), timeout));
        let mut failed = Vec::new();
        for handle in receipt_handles {
            match s.in_flight.remove(&handle) {
                // Visibility zero hands the message back at once.
                Some(m) if timeout.is_zero() => s.visible.push_back(m),
                Some(m) => {
                    s.in_flight.insert(handle, m);
                }
                None => failed.push(handle),
            }
        }
        Ok(failed)
    }

    async fn requeue(&self, message: &ReceivedMessage, delay: Duration) -> Result<(), PortError> {
        let mut s = self.state.lock().unwrap();
        let id = s.next_id;
        s.next_id += 1;
        let stored = Stored {
            id,
            body: message.body.clone(),
            receive_count: 0,
            attributes: message.attributes.clone(),
        };
        s.requeued += 1;
        if delay.is_zero() {
            s.visible.push_back(stored);
        } else {
            s.delayed.push((stored, delay));
        }
        Ok(())
    }

    async fn dead_letter(
        &self,
        message: &ReceivedMessage,
        why: &DeadLetter,
    ) -> Result<(), PortError> {
        let mut s = self.state.lock().unwrap();
        if s.failing_dead_letters > 0 {
            s.failing_dead_letters -= 1;
            return Err(PortError::new(
                PortErrorKind::Retryable,
                "fake:SendMessage",
                "injected dead-letter failure",
            ));
        }
        s.dead_letters.push((message.body.clone(), why.clone()));
        Ok(())
    }
}
