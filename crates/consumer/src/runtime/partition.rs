//! One assigned partition, as the poll thread holds it: its lanes, the
//! records delivered but not handed to a lane yet (the overflow), whether it
//! is paused, and what was stored. A partition lives from its assignment to
//! its revoke; a partition assigned again gets a new one, with new lanes and
//! nothing queued, and starts from the committed offset.

use std::{
    collections::VecDeque,
    hash::{Hash, Hasher},
    sync::Arc,
    time::Instant,
};

use rdkafka::message::{Message, OwnedMessage};
use tokio::{runtime::Handle, sync::mpsc, task::JoinHandle};
use tracing::debug;

use super::{
    flow::{self, Flow, Load},
    lane::{self, Control, Shared},
    process::Worker,
};

pub(crate) type Key = (String, i32);

/// What a new partition needs to start its lanes.
pub(crate) struct Spawner {
    pub worker: Arc<Worker>,
    pub lanes: usize,
    /// The runtime the lanes run on; the poll thread is not one of its threads.
    pub runtime: Handle,
}

pub(crate) struct Partition {
    pub key: Key,
    lanes: Vec<mpsc::UnboundedSender<OwnedMessage>>,
    tasks: Vec<JoinHandle<()>>,
    shared: Arc<Shared>,
    /// Records the consumer delivered while the lanes had no room. librdkafka
    /// resumes a paused partition after the last record it delivered, so these
    /// exist nowhere else: they are handed on, never dropped, while ours.
    overflow: VecDeque<OwnedMessage>,
    received: Option<i64>,
    stored: Option<i64>,
    pub paused: bool,
}

impl Partition {
    pub(crate) fn start(key: Key, spawner: &Spawner) -> Self {
        let shared = Arc::new(Shared::new(spawner.lanes));
        let mut lanes = Vec::with_capacity(spawner.lanes);
        let mut tasks = Vec::with_capacity(spawner.lanes);
        for _ in 0..spawner.lanes {
            let (tx, rx) = mpsc::unbounded_channel();
            // Made here, not in the task: a lane aborted before its first poll
            // must still count itself out.
            let control = Control::new(shared.clone());
            tasks.push(spawner.runtime.spawn(lane::run(spawner.worker.clone(), control, rx)));
            lanes.push(tx);
        }
        Partition { key, lanes, tasks, shared, overflow: VecDeque::new(), received: None, stored: None, paused: false }
    }

    /// Takes a record the consumer delivered and hands on what fits.
    pub(crate) fn accept(&mut self, message: OwnedMessage) {
        // A new fetch version (a resume of a partition that was not paused, a
        // seek) restarts librdkafka's fetcher from its last start position, so
        // records already delivered can come again: they were taken already.
        if self.received.is_some_and(|received| message.offset() <= received) {
            debug!(topic = %self.key.0, partition = self.key.1, offset = message.offset(), "record delivered twice; dropped");
            return;
        }
        self.received = Some(message.offset());
        self.overflow.push_back(message);
        self.release();
    }

    /// Hands waiting records to their lanes while the partition has room; the
    /// channels are unbounded because this is what bounds them.
    fn release(&mut self) {
        let mut state = self.shared.lock();
        while flow::has_room(state.in_flight.pending()) {
            let Some(message) = self.overflow.pop_front() else {
                break;
            };
            state.in_flight.dispatch(message.offset());
            let lane = lane_of(message.key(), self.lanes.len());
            // A closed lane is a dead one, which the tick reports; the record
            // stays unfinished, so nothing past it is stored.
            let _ = self.lanes[lane].send(message);
        }
    }

    /// Whether to pause or resume fetching, after handing on what fits.
    pub(crate) fn flow(&mut self) -> Flow {
        self.release();
        let state = self.shared.lock();
        let load = Load { pending: state.in_flight.pending(), overflow: self.overflow.len(), retrying: state.retrying > 0 };
        flow::decide(load, self.paused)
    }

    /// The offset to store now, when it moved since the last one; `position`
    /// is the consumer's (see [`flow::store_point`]).
    pub(crate) fn storable(&mut self, position: Option<i64>) -> Option<i64> {
        let point = {
            let state = self.shared.lock();
            let idle = state.in_flight.pending() == 0 && self.overflow.is_empty();
            flow::store_point(state.in_flight.commit_point(), idle, position)?
        };
        if self.stored.is_some_and(|stored| point <= stored) {
            return None;
        }
        self.stored = Some(point);
        Some(point)
    }

    /// The last offset stored, for the commit that ends the partition here.
    pub(crate) fn stored(&self) -> Option<i64> {
        self.stored
    }

    /// Stops taking records; the attempts that run go on to their end.
    pub(crate) fn revoke(&self) {
        self.shared.revoke();
    }

    pub(crate) fn wait_idle(&self, deadline: Instant) -> bool {
        self.shared.wait_idle(deadline)
    }

    /// Cancels what still runs after the revoke deadline: a database
    /// transaction dropped unfinished rolls back, and the record is
    /// redelivered to the new owner.
    pub(crate) fn abort(&self) {
        self.tasks.iter().for_each(JoinHandle::abort);
    }

    /// A lane that ended while the partition is still ours panicked: its
    /// records would never finish.
    pub(crate) fn lane_died(&self) -> bool {
        !self.shared.is_revoked() && self.tasks.iter().any(JoinHandle::is_finished)
    }
}

/// Records with the same key go to the same lane, so one aggregate's events
/// run one after the other.
fn lane_of(key: Option<&[u8]>, lanes: usize) -> usize {
    key.map_or(0, |key| {
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        key.hash(&mut hasher);
        (hasher.finish() % lanes as u64) as usize
    })
}
