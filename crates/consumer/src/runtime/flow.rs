//! The pure bookkeeping of one partition: which offsets are still unfinished
//! (so the stored offset never passes one of them) and when to pause or
//! resume fetching it. No I/O here, so both are tested without a broker.

use std::collections::BTreeSet;

/// A partition is paused once this many of its records wait or run.
pub(crate) const HIGH_WATER: usize = 512;
/// ... and resumed once no more than this many do: the gap keeps a busy
/// partition from flapping between pause and resume on every record.
pub(crate) const LOW_WATER: usize = 128;

/// The records handed to a partition's lanes and not finished yet.
#[derive(Debug, Default)]
pub(crate) struct InFlight {
    unfinished: BTreeSet<i64>,
    /// The first offset handed out: the position the partition started from,
    /// which is already committed (or the reset position), so never stored.
    first: Option<i64>,
    /// One past the highest offset handed out.
    next: Option<i64>,
}

impl InFlight {
    pub(crate) fn dispatch(&mut self, offset: i64) {
        self.first.get_or_insert(offset);
        self.unfinished.insert(offset);
        self.next = Some(self.next.map_or(offset + 1, |next| next.max(offset + 1)));
    }

    pub(crate) fn finish(&mut self, offset: i64) {
        self.unfinished.remove(&offset);
    }

    pub(crate) fn pending(&self) -> usize {
        self.unfinished.len()
    }

    /// The offset to commit (the next record to read after a restart): the
    /// lowest unfinished one, since lanes finish out of order, or one past
    /// everything when all finished. None while it would not move past the
    /// start.
    pub(crate) fn commit_point(&self) -> Option<i64> {
        let point = self.unfinished.first().copied().or(self.next)?;
        (point > self.first?).then_some(point)
    }
}

/// The offset to store: the commit point, or the consumer's position once
/// nothing of the partition waits or runs. A transactional producer (Connect
/// with exactly-once source support) ends every transaction with a commit
/// marker that takes an offset but is never delivered, so one past the last
/// record would leave the partition one short of its end for good (a lag of 1
/// that never drains). librdkafka moves the position past the markers it has
/// read; below it, an idle partition has nothing left to handle.
pub(crate) fn store_point(commit_point: Option<i64>, idle: bool, position: Option<i64>) -> Option<i64> {
    if idle {
        commit_point.max(position)
    } else {
        commit_point
    }
}

/// What a partition holds, as the pause decision sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Load {
    /// Handed to lanes and not finished.
    pub pending: usize,
    /// Delivered by the consumer and not handed to a lane yet.
    pub overflow: usize,
    /// A lane is retrying a transient failure: fetching more only fills memory.
    pub retrying: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Flow {
    Pause,
    Resume,
    Keep,
}

/// Whether to pause or resume fetching a partition, given its load and
/// whether it is paused now.
pub(crate) fn decide(load: Load, paused: bool) -> Flow {
    let congested = load.retrying || load.overflow > 0 || load.pending >= HIGH_WATER;
    let drained = !load.retrying && load.overflow == 0 && load.pending <= LOW_WATER;
    match (paused, congested, drained) {
        (false, true, _) => Flow::Pause,
        (true, _, true) => Flow::Resume,
        _ => Flow::Keep,
    }
}

/// Whether one more record may go to the lanes now.
pub(crate) fn has_room(pending: usize) -> bool {
    pending < HIGH_WATER
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nothing_is_stored_before_a_record_finished() {
        let mut in_flight = InFlight::default();
        assert_eq!(in_flight.commit_point(), None);
        in_flight.dispatch(40);
        in_flight.dispatch(41);
        assert_eq!(in_flight.commit_point(), None, "the start is already committed");
    }

    #[test]
    fn the_commit_point_stops_at_the_lowest_unfinished_record() {
        let mut in_flight = InFlight::default();
        for offset in 10..15 {
            in_flight.dispatch(offset);
        }
        // Lanes finish out of order: 10 and 12 done, 11 still running.
        in_flight.finish(12);
        in_flight.finish(10);
        assert_eq!(in_flight.commit_point(), Some(11), "never past the unfinished 11");
        in_flight.finish(11);
        assert_eq!(in_flight.commit_point(), Some(13));
        in_flight.finish(13);
        in_flight.finish(14);
        assert_eq!(in_flight.commit_point(), Some(15), "all done: one past the highest");
        assert_eq!(in_flight.pending(), 0);
    }

    #[test]
    fn a_record_dropped_on_revoke_holds_the_commit_point_forever() {
        let mut in_flight = InFlight::default();
        for offset in 0..4 {
            in_flight.dispatch(offset);
        }
        in_flight.finish(0);
        in_flight.finish(2);
        in_flight.finish(3);
        // 1 was queued when the partition was revoked: it never finishes here.
        assert_eq!(in_flight.commit_point(), Some(1));
        assert_eq!(in_flight.pending(), 1);
    }

    #[test]
    fn gaps_in_offsets_do_not_hold_the_commit_point() {
        // Transaction markers and compaction leave holes between offsets.
        let mut in_flight = InFlight::default();
        in_flight.dispatch(5);
        in_flight.dispatch(9);
        in_flight.finish(5);
        assert_eq!(in_flight.commit_point(), Some(9));
        in_flight.finish(9);
        assert_eq!(in_flight.commit_point(), Some(10));
    }

    #[test]
    fn an_idle_partition_is_stored_at_its_position_past_a_transaction_marker() {
        let mut in_flight = InFlight::default();
        in_flight.dispatch(10);
        in_flight.dispatch(11);
        in_flight.finish(10);
        assert_eq!(store_point(in_flight.commit_point(), false, Some(13)), Some(11), "never past an unfinished record");
        in_flight.finish(11);
        // 12 is the marker of the transaction that held 10 and 11.
        assert_eq!(store_point(in_flight.commit_point(), true, Some(13)), Some(13));
        assert_eq!(store_point(in_flight.commit_point(), true, None), Some(12), "no position known yet");
        assert_eq!(store_point(None, true, Some(7)), Some(7), "a start on a marker moves past it");
    }

    fn load(pending: usize, overflow: usize, retrying: bool) -> Load {
        Load { pending, overflow, retrying }
    }

    #[test]
    fn a_full_partition_is_paused_and_resumed_below_the_low_mark() {
        assert_eq!(decide(load(HIGH_WATER - 1, 0, false), false), Flow::Keep);
        assert_eq!(decide(load(HIGH_WATER, 0, false), false), Flow::Pause);
        assert_eq!(decide(load(HIGH_WATER, 0, false), true), Flow::Keep);
        assert_eq!(decide(load(LOW_WATER + 1, 0, false), true), Flow::Keep, "hysteresis: not yet");
        assert_eq!(decide(load(LOW_WATER, 0, false), true), Flow::Resume);
        assert_eq!(decide(load(0, 0, false), false), Flow::Keep);
    }

    #[test]
    fn records_waiting_beyond_the_lanes_keep_the_partition_paused() {
        assert_eq!(decide(load(10, 3, false), false), Flow::Pause);
        assert_eq!(decide(load(0, 1, false), true), Flow::Keep);
    }

    #[test]
    fn a_partition_in_retries_is_paused_until_the_retries_end() {
        assert_eq!(decide(load(1, 0, true), false), Flow::Pause);
        assert_eq!(decide(load(0, 0, true), true), Flow::Keep);
        assert_eq!(decide(load(1, 0, false), true), Flow::Resume);
    }

    #[test]
    fn lanes_take_records_up_to_the_high_mark() {
        assert!(has_room(0));
        assert!(has_room(HIGH_WATER - 1));
        assert!(!has_room(HIGH_WATER));
    }
}
