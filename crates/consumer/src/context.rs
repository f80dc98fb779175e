//! What the group coordinator does to this consumer: rebalances, which end
//! or begin the ownership of partitions (see `runtime::rebalance`), and
//! offset commits (failures loudly). librdkafka calls these on the thread
//! that polls, the runtime's own poll thread.

use std::{
    sync::{Mutex, MutexGuard, PoisonError},
    time::{Duration, Instant},
};

use rdkafka::{
    consumer::{BaseConsumer, ConsumerContext, Rebalance},
    error::KafkaResult,
    ClientContext, TopicPartitionList,
};
use tracing::{info, warn};

use crate::runtime::{
    partition::{Key, Spawner},
    rebalance::{self, Assignment},
};

/// How long a revoke waits for the handler attempts in flight. Heartbeats go
/// on meanwhile (librdkafka sends them from its own thread), but every other
/// member stands still until this one rejoins (eager protocol), for up to the
/// rebalance timeout (`max.poll.interval.ms`, 5 min): a stuck handler must
/// delay the group by seconds, below the session timeout (10 s), not minutes.
pub(crate) const REVOKE_WAIT: Duration = Duration::from_secs(8);

pub(crate) type Kafka = BaseConsumer<RuntimeContext>;

pub(crate) struct RuntimeContext {
    group: String,
    assignment: Mutex<Assignment>,
    /// Since when the consumer has been out of the group: from its start or
    /// a revoke until the next assignment (which may be empty).
    outside: Mutex<Option<Instant>>,
}

impl RuntimeContext {
    pub(crate) fn new(group: String, spawner: Spawner) -> Self {
        RuntimeContext { group, assignment: Mutex::new(Assignment::new(spawner)), outside: Mutex::new(Some(Instant::now())) }
    }

    /// How long the consumer has been waiting to be (re)assigned, if it is.
    pub(crate) fn outside_for(&self) -> Option<Duration> {
        self.outside.lock().unwrap_or_else(PoisonError::into_inner).map(|since| since.elapsed())
    }

    fn set_outside(&self, outside: bool) {
        *self.outside.lock().unwrap_or_else(PoisonError::into_inner) = outside.then(Instant::now);
    }

    pub(crate) fn group(&self) -> &str {
        &self.group
    }

    /// Only the poll thread takes it, and never across a call that can run a
    /// callback (a poll), so it is never contended nor taken twice.
    pub(crate) fn assignment(&self) -> MutexGuard<'_, Assignment> {
        self.assignment.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn count(&self, kind: &'static str) {
        metrics::counter!("consumer_rebalances_total", "group" => self.group.clone(), "kind" => kind).increment(1);
    }
}

impl ClientContext for RuntimeContext {}

impl ConsumerContext for RuntimeContext {
    fn pre_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        match rebalance {
            Rebalance::Revoke(list) => {
                info!(group = %self.group, partitions = %describe(list), "partitions revoked");
                self.count("revoke");
                self.set_outside(true);
                let revoked = self.assignment().take(keys(list));
                rebalance::revoke(consumer, revoked, REVOKE_WAIT);
            }
            Rebalance::Assign(list) => {
                info!(group = %self.group, partitions = %describe(list), "partitions assigned")
            }
            Rebalance::Error(e) => {
                // rdkafka unassigns everything after a rebalance error.
                warn!(group = %self.group, error = %e, "rebalance error; giving up every partition");
                self.set_outside(true);
                let revoked = self.assignment().take_all();
                rebalance::revoke(consumer, revoked, REVOKE_WAIT);
            }
        }
    }

    fn post_rebalance(&self, _: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Assign(list) = rebalance {
            self.count("assign");
            self.set_outside(false);
            let mut assignment = self.assignment();
            keys(list).for_each(|key| assignment.add(key));
        }
    }

    fn commit_callback(&self, result: KafkaResult<()>, offsets: &TopicPartitionList) {
        match result {
            Ok(()) => {
                tracing::debug!(group = %self.group, offsets = %describe(offsets), "offsets committed")
            }
            Err(e) => warn!(group = %self.group, error = %e, "offset commit failed"),
        }
    }
}

fn keys(list: &TopicPartitionList) -> impl Iterator<Item = Key> + '_ {
    list.elements().into_iter().map(|e| (e.topic().to_owned(), e.partition()))
}

fn describe(list: &TopicPartitionList) -> String {
    list.elements().iter().map(|e| format!("{}[{}]@{:?}", e.topic(), e.partition(), e.offset())).collect::<Vec<_>>().join(",")
}
