//! Waiting for a quiet, caught-up pipeline: every consumer group of the
//! saga has committed every record of its topics, and a second look a
//! second later finds no new records anywhere.

use std::{collections::BTreeMap, time::Duration};

use anyhow::Context;
use rdkafka::{
    consumer::{BaseConsumer, Consumer},
    Offset, TopicPartitionList,
};

use crate::{read::kafka::TIMEOUT, Sources};

/// The saga's consumer groups and the topics each reads.
pub const GROUPS: [(&str, &[&str]); 6] = [
    ("outflow-inventory", &["outflow.order.events"]),
    ("outflow-payments", &["outflow.inventory.events", "outflow.order.events"]),
    ("outflow-orders", &["outflow.inventory.events", "outflow.payment.events", "outflow.shipment.events"]),
    ("outflow-shipping", &["outflow.order.events"]),
    ("outflow-views", &["outflow.order.events", "outflow.inventory.events", "outflow.payment.events", "outflow.shipment.events"]),
    ("outflow-notifications", &["outflow.order.events", "outflow.payment.events", "outflow.shipment.events"]),
];

/// The groups did not catch up in time (as opposed to the broker not answering).
#[derive(Debug)]
pub struct NotCaughtUp(pub String);

impl std::fmt::Display for NotCaughtUp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for NotCaughtUp {}

/// One look at the broker: each group's lag by topic, and every partition's high watermark.
#[derive(Debug, PartialEq, Eq)]
pub struct Look {
    pub lag: BTreeMap<&'static str, BTreeMap<String, i64>>,
    pub highs: BTreeMap<(String, i32), i64>,
}

impl Look {
    pub fn caught_up(&self) -> bool {
        self.lag.values().flat_map(BTreeMap::values).all(|&lag| lag == 0)
    }

    /// The groups still behind, e.g. `outflow-views 12 (outflow.order.events 12)`.
    pub fn behind(&self) -> String {
        let groups: Vec<String> = self
            .lag
            .iter()
            .filter(|(_, topics)| topics.values().any(|&l| l > 0))
            .map(|(group, topics)| {
                let parts: Vec<String> = topics.iter().filter(|(_, l)| **l > 0).map(|(t, l)| format!("{t} {l}")).collect();
                format!("{group} {} ({})", topics.values().sum::<i64>(), parts.join(", "))
            })
            .collect();
        groups.join("; ")
    }
}

/// Returns once every group in [`GROUPS`] has zero lag (high watermark
/// minus committed offset over every partition the broker lists) in two
/// looks a second apart that saw the same high watermarks; a [`NotCaughtUp`]
/// error names the groups still behind when `deadline` passes.
pub async fn wait_caught_up(sources: &Sources, deadline: Duration) -> anyhow::Result<()> {
    let until = tokio::time::Instant::now() + deadline;
    let mut last: Option<Look> = None;
    loop {
        let look = look(sources).await?;
        if look.caught_up() && last.as_ref().is_some_and(|l| l.caught_up() && l.highs == look.highs) {
            return Ok(());
        }
        if tokio::time::Instant::now() > until {
            let why = if look.caught_up() { "records kept arriving".to_owned() } else { format!("lag: {}", look.behind()) };
            return Err(NotCaughtUp(format!("the consumer groups did not catch up within {deadline:?}: {why}")).into());
        }
        let pause = if look.caught_up() { Duration::from_secs(1) } else { Duration::from_millis(500) };
        last = Some(look);
        tokio::time::sleep(pause).await;
    }
}

/// One look at every group's lag (blocking broker calls, off the runtime).
pub async fn look(sources: &Sources) -> anyhow::Result<Look> {
    let config = sources.kafka();
    let brokers = sources.settings.kafka_brokers.clone();
    tokio::task::spawn_blocking(move || look_blocking(&config).with_context(|| format!("Kafka on {brokers}: consumer lag"))).await?
}

fn look_blocking(config: &rdkafka::ClientConfig) -> anyhow::Result<Look> {
    let cluster: BaseConsumer = config.create()?;
    let mut highs = BTreeMap::new();
    let mut lows = BTreeMap::new();
    let metadata = cluster.fetch_metadata(None, TIMEOUT)?;
    let event_topics: Vec<&str> = GROUPS.iter().flat_map(|(_, topics)| topics.iter().copied()).collect();
    for topic in metadata.topics().iter().filter(|t| event_topics.contains(&t.name()) && t.error().is_none()) {
        for partition in topic.partitions() {
            let (low, high) = cluster.fetch_watermarks(topic.name(), partition.id(), TIMEOUT)?;
            lows.insert((topic.name().to_owned(), partition.id()), low);
            highs.insert((topic.name().to_owned(), partition.id()), high);
        }
    }
    let mut lag = BTreeMap::new();
    for (group, topics) in GROUPS {
        // An offset reader with the group's id that never subscribes: an
        // OffsetFetch, which does not join (and so never disturbs) the group.
        let reader: BaseConsumer = config.clone().set("group.id", group).set("enable.auto.commit", "false").create()?;
        let mut request = TopicPartitionList::new();
        for (topic, partition) in highs.keys().filter(|(t, _)| topics.contains(&t.as_str())) {
            request.add_partition(topic, *partition);
        }
        let committed = reader.committed_offsets(request, TIMEOUT).with_context(|| format!("committed offsets of {group}"))?;
        let mut by_topic: BTreeMap<String, i64> = topics.iter().map(|t| ((*t).to_owned(), 0)).collect();
        for element in committed.elements() {
            let key = (element.topic().to_owned(), element.partition());
            // Nothing committed yet: the group starts at the earliest record.
            let at = match element.offset() {
                Offset::Offset(n) => n,
                _ => lows[&key],
            };
            *by_topic.entry(key.0.clone()).or_default() += (highs[&key] - at).max(0);
        }
        lag.insert(group, by_topic);
    }
    Ok(Look { lag, highs })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn look(views_lag: i64) -> Look {
        let lag = BTreeMap::from([("outflow-views", BTreeMap::from([("outflow.order.events".to_owned(), views_lag)])), ("outflow-orders", BTreeMap::new())]);
        Look { lag, highs: BTreeMap::new() }
    }

    #[test]
    fn a_look_is_caught_up_only_with_no_lag_and_names_the_groups_behind() {
        assert!(look(0).caught_up());
        let behind = look(12);
        assert!(!behind.caught_up());
        assert_eq!(behind.behind(), "outflow-views 12 (outflow.order.events 12)");
    }
}
