//! One topic read from its start to the end it had when the read began:
//! the high watermark of every partition, taken at the start, so "nothing
//! more" is known from the broker, never from waiting for silence. Records
//! stream through one at a time; a partition that reached its end is paused.

use std::time::Duration;

use anyhow::{bail, Context};
use rdkafka::{
    consumer::{Consumer, StreamConsumer},
    message::{BorrowedMessage, OwnedMessage},
    ClientConfig, Message, Offset, TopicPartitionList,
};
use tokio::time::Instant;

/// How long one broker request may take.
pub const TIMEOUT: Duration = Duration::from_secs(10);
/// How long to wait for a record before asking the consumer where it is
/// (a partition can end in records that are never delivered, e.g. control
/// records).
const IDLE: Duration = Duration::from_millis(500);

pub struct TopicReader {
    consumer: StreamConsumer,
    topic: String,
    partitions: Vec<i32>,
    next: Vec<i64>,
    end: Vec<i64>,
    until: Instant,
    deadline: Duration,
    brokers: String,
    pub records_read: u64,
}

impl TopicReader {
    /// None when the broker does not know the topic (nothing was ever written to it).
    pub fn open(config: &ClientConfig, topic: &str, deadline: Duration) -> anyhow::Result<Option<Self>> {
        let brokers = config.get("bootstrap.servers").unwrap_or_default().to_owned();
        let consumer: StreamConsumer = config
            .clone()
            .set("group.id", format!("outflow-invariants-{}", uuid::Uuid::new_v4()))
            .set("enable.auto.commit", "false")
            .set("enable.auto.offset.store", "false")
            .create()
            .with_context(|| format!("creating a Kafka consumer for {brokers}"))?;
        let metadata = consumer.fetch_metadata(Some(topic), TIMEOUT).with_context(|| format!("Kafka on {brokers}: metadata of {topic}"))?;
        let Some(found) = metadata.topics().iter().find(|t| t.name() == topic && t.error().is_none()) else {
            return Ok(None);
        };
        let partitions: Vec<i32> = found.partitions().iter().map(|p| p.id()).collect();
        let mut list = TopicPartitionList::new();
        let (mut next, mut end) = (Vec::new(), Vec::new());
        for &partition in &partitions {
            let (low, high) =
                consumer.fetch_watermarks(topic, partition, TIMEOUT).with_context(|| format!("Kafka on {brokers}: watermarks of {topic}/{partition}"))?;
            list.add_partition_offset(topic, partition, Offset::Offset(low))?;
            next.push(low);
            end.push(high);
        }
        consumer.assign(&list).with_context(|| format!("Kafka on {brokers}: assigning {topic}"))?;
        let reader =
            TopicReader { consumer, topic: topic.to_owned(), partitions, next, end, until: Instant::now() + deadline, deadline, brokers, records_read: 0 };
        for i in 0..reader.partitions.len() {
            reader.pause_if_done(i)?;
        }
        Ok(Some(reader))
    }

    /// The next record up to the end that `keep` accepts; None at the end.
    pub async fn next(&mut self, keep: impl Fn(&BorrowedMessage<'_>) -> bool) -> anyhow::Result<Option<OwnedMessage>> {
        loop {
            if self.done() {
                return Ok(None);
            }
            let idle = match tokio::time::timeout(IDLE, self.consumer.recv()).await {
                Ok(Ok(message)) => {
                    let Some(i) = self.partitions.iter().position(|&p| p == message.partition()) else {
                        continue;
                    };
                    if message.offset() >= self.end[i] {
                        continue;
                    }
                    self.next[i] = message.offset() + 1;
                    self.records_read += 1;
                    let kept = keep(&message).then(|| message.detach());
                    self.pause_if_done(i)?;
                    if kept.is_some() {
                        return Ok(kept);
                    }
                    false
                }
                Ok(Err(e)) => bail!("Kafka on {}: reading {}: {e}", self.brokers, self.topic),
                Err(_) => true,
            };
            if idle {
                self.advance_to_positions()?;
            }
            if Instant::now() > self.until {
                bail!("Kafka on {}: {} not read to its end {:?} within {:?}: at {:?}", self.brokers, self.topic, self.end, self.deadline, self.next);
            }
        }
    }

    fn done(&self) -> bool {
        self.next.iter().zip(&self.end).all(|(next, end)| next >= end)
    }

    fn pause_if_done(&self, i: usize) -> anyhow::Result<()> {
        if self.next[i] >= self.end[i] {
            let mut list = TopicPartitionList::new();
            list.add_partition(&self.topic, self.partitions[i]);
            self.consumer.pause(&list).with_context(|| format!("pausing {}/{}", self.topic, self.partitions[i]))?;
        }
        Ok(())
    }

    /// Takes the consumer's fetch position as read up to, for offsets that
    /// hold no deliverable record.
    fn advance_to_positions(&mut self) -> anyhow::Result<()> {
        let positions = self.consumer.position().with_context(|| format!("position in {}", self.topic))?;
        for element in positions.elements_for_topic(&self.topic) {
            let (Some(i), Offset::Offset(at)) = (self.partitions.iter().position(|&p| p == element.partition()), element.offset()) else {
                continue;
            };
            if at > self.next[i] {
                self.next[i] = at.min(self.end[i]);
                self.pause_if_done(i)?;
            }
        }
        Ok(())
    }
}

/// Every topic the broker knows.
pub fn topic_names(config: &ClientConfig) -> anyhow::Result<Vec<String>> {
    let brokers = config.get("bootstrap.servers").unwrap_or_default().to_owned();
    let consumer: rdkafka::consumer::BaseConsumer = config.create().with_context(|| format!("creating a Kafka client for {brokers}"))?;
    let metadata = consumer.fetch_metadata(None, TIMEOUT).with_context(|| format!("Kafka on {brokers}: the list of topics"))?;
    Ok(metadata.topics().iter().filter(|t| t.error().is_none()).map(|t| t.name().to_owned()).collect())
}

/// A record's header as text.
pub fn header(message: &impl Message, name: &str) -> Option<String> {
    use rdkafka::message::Headers;
    let headers = message.headers()?;
    headers.iter().find(|h| h.key == name).and_then(|h| h.value).map(|v| String::from_utf8_lossy(v).into_owned())
}
