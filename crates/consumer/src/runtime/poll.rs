//! The poll thread: a std thread of its own that polls the consumer, hands
//! each record to its partition, stores the offsets the lanes finished, and
//! pauses or resumes partitions by their load. It never waits for a handler,
//! except inside a revoke (bounded), so `max.poll.interval.ms` is never at
//! risk whatever the handlers do; and the rebalance callback, which runs on
//! it, can block without starving the runtime's workers the lanes run on.

use std::{
    sync::atomic::{AtomicBool, Ordering},
    time::{Duration, Instant},
};

use rdkafka::{
    consumer::Consumer,
    message::{Message, OwnedMessage},
    Offset, TopicPartitionList,
};
use tracing::{debug, info, warn};

use super::{flow::Flow, partition::Partition, rebalance};
use crate::context::Kafka;

/// How long one poll waits for a record: also how late a stop is noticed.
const POLL_WAIT: Duration = Duration::from_millis(50);
/// How often finished offsets are stored and pauses reconsidered; the
/// auto-commit (every second) then commits what was stored.
const TICK: Duration = Duration::from_millis(50);
/// How long a shutdown waits for the attempts in flight (no group waits on it).
const SHUTDOWN_WAIT: Duration = Duration::from_secs(30);
/// How long a consumer may stay out of its group before its client is taken
/// for stuck. A rejoin takes seconds; in a chaos run (a broker frozen past the
/// session timeout, then killed while the consumer rejoined) librdkafka kept
/// its group requests queued for a coordinator connection that never came
/// up, for good, while every other consumer rejoined: a fresh client joins.
/// After a 15 s freeze every group also stood out for 60 s, an OffsetCommit
/// to the frozen broker holding the coordinator's queue until
/// `socket.timeout.ms`. During a longer broker outage a fresh client every
/// half minute costs nothing.
const REJOIN_LIMIT: Duration = Duration::from_secs(30);

/// Why the poll thread ended.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Ended {
    Stopped,
    /// Out of the group for this long: the caller starts a fresh client.
    Stuck(Duration),
}

/// Polls until `stop`, then gives every partition up as a revoke would
/// (in-flight events finish, offsets committed) and leaves the group.
pub(crate) fn run(consumer: Kafka, stop: &AtomicBool) -> anyhow::Result<Ended> {
    let outcome = poll_until(&consumer, stop);
    info!(group = %consumer.context().group(), "stopping: finishing in-flight events");
    let partitions = consumer.context().assignment().take_all();
    rebalance::revoke(&consumer, partitions, SHUTDOWN_WAIT);
    if matches!(outcome, Ok(Ended::Stuck(_))) {
        // Closing a client whose coordinator requests hang waits for them to
        // time out (a minute): the fresh one need not wait for that.
        std::thread::spawn(move || drop(consumer));
        return outcome;
    }
    // Closes the consumer: it leaves the group at once instead of after the
    // session timeout (its last revoke finds nothing left to do).
    drop(consumer);
    outcome
}

fn poll_until(consumer: &Kafka, stop: &AtomicBool) -> anyhow::Result<Ended> {
    let mut last_tick = Instant::now();
    while !stop.load(Ordering::Relaxed) {
        match consumer.poll(POLL_WAIT) {
            Some(Ok(message)) => route(consumer, message.detach()),
            Some(Err(e)) => {
                warn!(group = %consumer.context().group(), error = %e, "consumer error")
            }
            None => {}
        }
        if last_tick.elapsed() >= TICK {
            last_tick = Instant::now();
            tick(consumer)?;
            if let Some(outside) = consumer.context().outside_for().filter(|outside| *outside > REJOIN_LIMIT) {
                return Ok(Ended::Stuck(outside));
            }
        }
    }
    Ok(Ended::Stopped)
}

fn route(consumer: &Kafka, message: OwnedMessage) {
    let key = (message.topic().to_owned(), message.partition());
    let mut assignment = consumer.context().assignment();
    match assignment.get_mut(&key) {
        Some(partition) => {
            partition.accept(message);
            regulate(consumer, partition);
        }
        None => {
            debug!(topic = %key.0, partition = key.1, offset = message.offset(), "record of a partition no longer ours; dropped")
        }
    }
}

fn tick(consumer: &Kafka) -> anyhow::Result<()> {
    let context = consumer.context();
    let mut offsets = TopicPartitionList::new();
    let mut paused = 0usize;
    // Local to librdkafka (no broker round trip); see flow::store_point.
    let positions = consumer.position().ok();
    let mut assignment = context.assignment();
    for partition in assignment.partitions_mut() {
        let (topic, number) = (&partition.key.0, partition.key.1);
        anyhow::ensure!(!partition.lane_died(), "a lane of {topic}[{number}] ended while the partition was ours (a handler panicked?)");
        let position = positions.as_ref().and_then(|list| list.find_partition(topic, number)).and_then(|p| match p.offset() {
            Offset::Offset(at) => Some(at),
            _ => None,
        });
        if let Some(point) = partition.storable(position) {
            offsets.add_partition_offset(&partition.key.0, partition.key.1, Offset::Offset(point))?;
        }
        regulate(consumer, partition);
        paused += usize::from(partition.paused);
    }
    drop(assignment);
    // Only assigned partitions are stored (librdkafka refuses others): a
    // revoke happens inside a poll, never between the loop above and here.
    if offsets.count() > 0 {
        if let Err(e) = consumer.store_offsets(&offsets) {
            warn!(error = %e, "offsets not stored");
        }
    }
    metrics::gauge!("consumer_paused_partitions", "group" => context.group().to_owned()).set(paused as f64);
    Ok(())
}

/// Pauses a partition whose lanes are full or retrying, resumes one that
/// drained; the others keep being fetched either way.
fn regulate(consumer: &Kafka, partition: &mut Partition) {
    let flow = partition.flow();
    if flow == Flow::Keep {
        return;
    }
    let mut list = TopicPartitionList::new();
    list.add_partition(&partition.key.0, partition.key.1);
    let result = if flow == Flow::Pause { consumer.pause(&list) } else { consumer.resume(&list) };
    match result {
        Ok(()) => {
            partition.paused = flow == Flow::Pause;
            debug!(topic = %partition.key.0, partition = partition.key.1, paused = partition.paused, "partition flow changed");
        }
        Err(e) => {
            warn!(topic = %partition.key.0, partition = partition.key.1, error = %e, "pausing or resuming failed")
        }
    }
}
