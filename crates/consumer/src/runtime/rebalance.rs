//! The partitions this instance owns, and what a revoke does to them.
//!
//! A revoke runs inside the rebalance callback, on the poll thread, before
//! librdkafka unassigns the partitions, and the group does not hand them to
//! another member before the callback returns (eager protocol: every member
//! must rejoin first). So the callback is where ownership really ends, and it
//! ends it completely: no record of the partition is taken any more, the
//! attempts that run finish (bounded by a deadline), the queued records are
//! dropped unstored, the offsets of what finished are stored and committed
//! synchronously, and only then does the callback return.

use std::{
    collections::HashMap,
    time::{Duration, Instant},
};

use rdkafka::{
    consumer::{CommitMode, Consumer},
    error::KafkaError,
    types::RDKafkaErrorCode,
    Offset, TopicPartitionList,
};
use tracing::{info, warn};

use super::partition::{Key, Partition, Spawner};
use crate::context::Kafka;

pub(crate) struct Assignment {
    partitions: HashMap<Key, Partition>,
    spawner: Spawner,
}

impl Assignment {
    pub(crate) fn new(spawner: Spawner) -> Self {
        Assignment { partitions: HashMap::new(), spawner }
    }

    /// Starts a partition that was assigned; one already held stays as it is
    /// (an incremental assignment lists only the new ones).
    pub(crate) fn add(&mut self, key: Key) {
        let spawner = &self.spawner;
        self.partitions.entry(key).or_insert_with_key(|key| Partition::start(key.clone(), spawner));
    }

    pub(crate) fn get_mut(&mut self, key: &Key) -> Option<&mut Partition> {
        self.partitions.get_mut(key)
    }

    pub(crate) fn partitions_mut(&mut self) -> impl Iterator<Item = &mut Partition> {
        self.partitions.values_mut()
    }

    /// Removes the partitions being revoked, so the poll thread hands them no
    /// more records: what it still receives for them is dropped, unstored.
    pub(crate) fn take(&mut self, keys: impl IntoIterator<Item = Key>) -> Vec<Partition> {
        keys.into_iter().filter_map(|key| self.partitions.remove(&key)).collect()
    }

    pub(crate) fn take_all(&mut self) -> Vec<Partition> {
        self.partitions.drain().map(|(_, partition)| partition).collect()
    }
}

/// Ends this instance's ownership of `partitions` (see the module doc); waits
/// at most `wait` for the attempts in flight.
pub(crate) fn revoke(consumer: &Kafka, mut partitions: Vec<Partition>, wait: Duration) {
    if partitions.is_empty() {
        return;
    }
    let started = Instant::now();
    partitions.iter().for_each(Partition::revoke);
    let deadline = started + wait;
    for partition in partitions.iter().filter(|partition| !partition.wait_idle(deadline)) {
        warn!(topic = %partition.key.0, partition = partition.key.1, waited_ms = wait.as_millis() as u64, "revoke: a handler attempt outlived the deadline; cancelling it (its record is redelivered to the new owner)");
        partition.abort();
    }
    commit_final(consumer, &mut partitions);
    resume_paused(consumer, &partitions);
    info!(partitions = partitions.len(), elapsed_ms = started.elapsed().as_millis() as u64, "revoke: in-flight events finished, offsets committed");
}

/// Stores and synchronously commits each partition's last finished offset,
/// also when it was stored earlier and not auto-committed yet.
fn commit_final(consumer: &Kafka, partitions: &mut [Partition]) {
    let mut offsets = TopicPartitionList::new();
    for partition in partitions.iter_mut() {
        // The position is left out here: records queued at the revoke are dropped, not handled.
        partition.storable(None);
        if let Some(point) = partition.stored() {
            // The list is built from valid offsets: adding one cannot fail.
            let _ = offsets.add_partition_offset(&partition.key.0, partition.key.1, Offset::Offset(point));
        }
    }
    if offsets.count() == 0 {
        return;
    }
    // A lost assignment (the session timed out: the broker was frozen or
    // gone) belongs to the group again: a commit with the stale generation
    // is refused, and issuing it from the rebalance callback left librdkafka
    // without a rejoin: in a chaos run the consumer held no partitions for
    // good after a 12 s broker freeze. The new owner redelivers what is
    // uncommitted, and the inboxes make that harmless.
    if consumer.assignment_lost() {
        warn!(partitions = offsets.count(), "revoke: the assignment was lost; its final offsets are left to the new owner");
        return;
    }
    if let Err(e) = consumer.store_offsets(&offsets) {
        warn!(error = %e, "revoke: storing the final offsets failed");
    }
    match consumer.commit(&offsets, CommitMode::Sync) {
        Ok(()) => {}
        Err(KafkaError::ConsumerCommit(RDKafkaErrorCode::NoOffset)) => {}
        // Typically the assignment was lost (session timeout): the group moved
        // on without us, and the new owner redelivers what we did not commit.
        Err(e) => {
            warn!(error = %e, lost = consumer.assignment_lost(), "revoke: committing the final offsets failed")
        }
    }
}

/// librdkafka keeps a partition's pause across an unassign; a partition
/// assigned again must fetch.
fn resume_paused(consumer: &Kafka, partitions: &[Partition]) {
    let mut paused = TopicPartitionList::new();
    for partition in partitions.iter().filter(|partition| partition.paused) {
        paused.add_partition(&partition.key.0, partition.key.1);
    }
    if paused.count() > 0 {
        if let Err(e) = consumer.resume(&paused) {
            warn!(error = %e, "revoke: resuming the paused partitions failed");
        }
    }
}
