//! A lane: one task that handles, one after another, the records of one
//! partition whose keys hash to it. What a partition's lanes share with the
//! poll thread is [`Shared`]: the unfinished offsets, how many lanes are
//! retrying, how many are still alive, and the revoke signal.

use std::{
    sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError},
    time::{Duration, Instant},
};

use rdkafka::message::{Message, OwnedMessage};
use tokio::sync::{mpsc, watch};

use super::{flow::InFlight, process, process::Worker};

pub(crate) struct Shared {
    state: Mutex<State>,
    /// Signalled when a lane ends, for a revoke waiting on the poll thread
    /// (a std thread: it cannot await).
    idle: Condvar,
    revoked: watch::Sender<bool>,
}

#[derive(Default)]
pub(crate) struct State {
    pub in_flight: InFlight,
    /// Lanes between a record's first transient failure and its end.
    pub retrying: usize,
    live: usize,
}

impl Shared {
    pub(crate) fn new(lanes: usize) -> Self {
        Shared { state: Mutex::new(State { live: lanes, ..State::default() }), idle: Condvar::new(), revoked: watch::Sender::new(false) }
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, State> {
        // A panic never happens while the lock is held (no handler runs under
        // it), so a poisoned state is still consistent.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Stops the lanes from taking records and interrupts their retries; an
    /// attempt already running goes on to its end.
    pub(crate) fn revoke(&self) {
        self.revoked.send_replace(true);
    }

    pub(crate) fn is_revoked(&self) -> bool {
        *self.revoked.borrow()
    }

    /// Waits until every lane ended; false when `deadline` came first.
    pub(crate) fn wait_idle(&self, deadline: Instant) -> bool {
        let mut state = self.lock();
        while state.live > 0 {
            let now = Instant::now();
            if now >= deadline {
                return false;
            }
            state = self.idle.wait_timeout(state, deadline - now).unwrap_or_else(PoisonError::into_inner).0;
        }
        true
    }
}

/// A lane's side of [`Shared`]. Dropping it (the lane ended, was aborted or
/// panicked) counts the lane out, so a revoke never waits for a dead lane.
pub(crate) struct Control {
    shared: Arc<Shared>,
    revoked: watch::Receiver<bool>,
    retrying: bool,
}

impl Control {
    pub(crate) fn new(shared: Arc<Shared>) -> Self {
        let revoked = shared.revoked.subscribe();
        Control { shared, revoked, retrying: false }
    }

    pub(crate) fn revoked(&self) -> bool {
        *self.revoked.borrow()
    }

    /// Sleeps before a retry; false when the partition was revoked (or the
    /// consumer is stopping) meanwhile: the record is then left unstored for
    /// whoever reads the partition next.
    pub(crate) async fn retry_after(&mut self, delay: Duration) -> bool {
        if !self.retrying {
            self.retrying = true;
            self.shared.lock().retrying += 1;
        }
        let revoked = &mut self.revoked;
        tokio::select! {
            _ = tokio::time::sleep(delay) => {}
            _ = revoked.changed() => {}
        }
        !self.revoked()
    }

    fn settle(&mut self) {
        if std::mem::take(&mut self.retrying) {
            self.shared.lock().retrying -= 1;
        }
    }

    async fn next(&mut self, queue: &mut mpsc::UnboundedReceiver<OwnedMessage>) -> Option<OwnedMessage> {
        if self.revoked() {
            return None;
        }
        tokio::select! {
            biased;
            _ = self.revoked.changed() => None,
            message = queue.recv() => message,
        }
    }

    fn finish(&self, offset: i64) {
        self.shared.lock().in_flight.finish(offset);
    }
}

impl Drop for Control {
    fn drop(&mut self) {
        self.settle();
        self.shared.lock().live -= 1;
        self.shared.idle.notify_all();
    }
}

/// Handles the lane's records in order until the partition is revoked (what
/// is still queued is dropped with the channel, unstored) or its queue closes.
pub(crate) async fn run(worker: Arc<Worker>, mut control: Control, mut queue: mpsc::UnboundedReceiver<OwnedMessage>) {
    while let Some(message) = control.next(&mut queue).await {
        let done = process::handle(&worker, &message, &mut control).await;
        control.settle();
        if !done {
            return;
        }
        control.finish(message.offset());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_revoke_interrupts_a_retry_and_counts_the_lane_out() {
        let shared = Arc::new(Shared::new(1));
        let mut control = Control::new(shared.clone());
        let retry = tokio::spawn(async move { control.retry_after(Duration::from_secs(3600)).await });
        while shared.lock().retrying == 0 {
            tokio::task::yield_now().await;
        }
        shared.revoke();
        assert!(!retry.await.unwrap(), "a revoked partition is not retried");
        assert!(shared.wait_idle(Instant::now() + Duration::from_secs(5)), "the lane counted itself out");
        assert_eq!(shared.lock().retrying, 0);
    }

    #[test]
    fn the_wait_for_a_running_lane_is_bounded() {
        let shared = Arc::new(Shared::new(1));
        let _running = Control::new(shared.clone());
        let started = Instant::now();
        assert!(!shared.wait_idle(started + Duration::from_millis(50)));
        assert!(started.elapsed() >= Duration::from_millis(50));
    }
}
