//! Consumer lag, dead letters and the cluster's health, from the brokers: the
//! metadata (brokers, each partition's leader, replicas and in-sync replicas),
//! the group list (with each member's subscription), the groups' committed
//! offsets, and the partitions' watermarks. Blocking librdkafka calls; the
//! sampler runs them off the runtime.
//!
//! Committed offsets are read by a `BaseConsumer` carrying the group's id that
//! never subscribes: an OffsetFetch request, which does not join the group.

use outflow_service::settings::KafkaLogin;
use std::{
    collections::{BTreeSet, HashMap},
    time::Duration,
};

use anyhow::Context;
use rdkafka::{
    consumer::{BaseConsumer, Consumer},
    groups::GroupInfo,
    Offset, TopicPartitionList,
};

use crate::model::{Broker, Cluster, DeadLetterTopic, DeadLetters, GroupLag, LagReport, PartitionLag, PartitionReplicas, Trend};

/// What one sample of the brokers answers.
pub struct KafkaSample {
    pub lag: LagReport,
    pub dead_letters: DeadLetters,
    pub cluster: Cluster,
}

pub struct KafkaSource {
    brokers: String,
    login: KafkaLogin,
    group_prefix: String,
    timeout: Duration,
    cluster: BaseConsumer,
    /// One offset reader per watched group, kept between samples.
    readers: HashMap<String, BaseConsumer>,
}

impl KafkaSource {
    pub fn new(brokers: &str, login: KafkaLogin, group_prefix: &str, timeout: Duration) -> anyhow::Result<Self> {
        let cluster = client(brokers, &login, None).context("creating the Kafka client")?;
        Ok(KafkaSource { brokers: brokers.to_owned(), login, group_prefix: group_prefix.to_owned(), timeout, cluster, readers: HashMap::new() })
    }

    /// The lag of every watched group, the records in every `.dlq` topic and
    /// the cluster's health. Trends are left empty: the sampler fills them
    /// from the history.
    pub fn sample(&mut self) -> anyhow::Result<KafkaSample> {
        let sampled = self.sample_once();
        if sampled.is_err() {
            // A client that lost the broker (killed, or frozen past its
            // timeouts) did not find it again after it came back: in a chaos
            // run the monitor reported Kafka unreachable for good. The next
            // sample starts with fresh clients.
            if let Ok(cluster) = client(&self.brokers, &self.login, None) {
                self.cluster = cluster;
            }
            self.readers.clear();
        }
        sampled
    }

    fn sample_once(&mut self) -> anyhow::Result<KafkaSample> {
        let metadata = self.cluster.fetch_metadata(None, self.timeout).context("fetching the cluster's metadata")?;
        let cluster = cluster(&metadata, self.brokers.split(',').filter(|b| !b.trim().is_empty()).count());
        // Every topic with its partition ids; one the broker reports an error for is left out.
        let partitions: HashMap<String, Vec<i32>> =
            metadata.topics().iter().filter(|t| t.error().is_none()).map(|t| (t.name().to_owned(), t.partitions().iter().map(|p| p.id()).collect())).collect();
        let mut watermarks = Watermarks { consumer: &self.cluster, timeout: self.timeout, known: HashMap::new() };

        let list = self.cluster.fetch_group_list(None, self.timeout).context("listing the consumer groups")?;
        let mut groups = Vec::new();
        // Consumer groups only: Kafka Connect's worker group (`outflow-connect`,
        // protocol type `connect`) commits no offsets.
        let watched = list.groups().iter().filter(|g| g.name().starts_with(&self.group_prefix) && matches!(g.protocol_type(), "consumer" | ""));
        for info in watched {
            if !self.readers.contains_key(info.name()) {
                let reader = client(&self.brokers, &self.login, Some(info.name())).context("creating an offset reader")?;
                self.readers.insert(info.name().to_owned(), reader);
            }
            groups.push(group_lag(info, &self.readers[info.name()], &partitions, &mut watermarks, self.timeout)?);
        }
        groups.sort_by(|a, b| a.group.cmp(&b.group));
        let names: Vec<String> = groups.iter().map(|g| g.group.clone()).collect();
        self.readers.retain(|name, _| names.contains(name));

        let dead_letters = dead_letters(&partitions, &mut watermarks)?;
        Ok(KafkaSample { lag: LagReport { total: groups.iter().map(|g| g.total).sum(), groups }, dead_letters, cluster })
    }
}

/// The brokers that are up, what each leads and holds, and every partition
/// that is under-replicated or offline.
fn cluster(metadata: &rdkafka::metadata::Metadata, expected_brokers: usize) -> Cluster {
    let mut brokers: Vec<Broker> =
        metadata.brokers().iter().map(|b| Broker { id: b.id(), address: format!("{}:{}", b.host(), b.port()), leader_of: 0, replica_of: 0 }).collect();
    brokers.sort_by_key(|b| b.id);
    let (mut under_replicated, mut offline) = (Vec::new(), Vec::new());
    for topic in metadata.topics().iter().filter(|t| t.error().is_none()) {
        for p in topic.partitions() {
            for broker in brokers.iter_mut() {
                broker.leader_of += usize::from(p.leader() == broker.id);
                broker.replica_of += usize::from(p.replicas().contains(&broker.id));
            }
            let row = || PartitionReplicas {
                topic: topic.name().to_owned(),
                partition: p.id(),
                leader: p.leader(),
                replicas: p.replicas().to_vec(),
                isr: p.isr().to_vec(),
            };
            if p.leader() < 0 {
                offline.push(row());
            }
            if p.isr().len() < p.replicas().len() {
                under_replicated.push(row());
            }
        }
    }
    Cluster { expected_brokers, brokers, under_replicated, offline }
}

/// One group's lag on every partition it reads.
fn group_lag(
    info: &GroupInfo,
    reader: &BaseConsumer,
    partitions: &HashMap<String, Vec<i32>>,
    watermarks: &mut Watermarks<'_>,
    timeout: Duration,
) -> anyhow::Result<GroupLag> {
    let subscribed: BTreeSet<String> = info.members().iter().filter_map(|m| m.metadata()).filter_map(subscribed_topics).flatten().collect();
    // Every topic a member subscribes to, plus any other on which the
    // group has committed (an empty group has no members to ask).
    let mut request = TopicPartitionList::new();
    for (topic, ids) in partitions.iter().filter(|(t, _)| !t.starts_with("__")) {
        for id in ids {
            request.add_partition(topic, *id);
        }
    }
    let committed = reader.committed_offsets(request, timeout).with_context(|| format!("reading the committed offsets of {}", info.name()))?;
    let rows = partition_lags(&committed, &subscribed, watermarks)?;
    let topics: BTreeSet<String> = rows.iter().map(|r| r.topic.clone()).chain(subscribed).collect();
    Ok(GroupLag {
        group: info.name().to_owned(),
        state: info.state().to_owned(),
        members: info.members().len(),
        topics: topics.into_iter().collect(),
        total: rows.iter().map(|r| r.lag).sum(),
        trend: Trend::default(),
        partitions: rows,
    })
}

/// The lag on each partition with a committed offset or in the subscription,
/// in topic and partition order.
fn partition_lags(committed: &TopicPartitionList, subscribed: &BTreeSet<String>, watermarks: &mut Watermarks<'_>) -> anyhow::Result<Vec<PartitionLag>> {
    let mut rows = Vec::new();
    for element in committed.elements() {
        let offset = match element.offset() {
            Offset::Offset(n) => Some(n),
            _ => None,
        };
        if offset.is_none() && !subscribed.contains(element.topic()) {
            continue;
        }
        let (low, high) = watermarks.get(element.topic(), element.partition())?;
        // Nothing committed yet: the group starts at the earliest record.
        let lag = offset.map_or(high - low, |c| (high - c).max(0));
        rows.push(PartitionLag {
            topic: element.topic().to_owned(),
            partition: element.partition(),
            low,
            high,
            committed: offset,
            lag,
            trend: Trend::default(),
        });
    }
    rows.sort_by(|a, b| (&a.topic, a.partition).cmp(&(&b.topic, b.partition)));
    Ok(rows)
}

/// The records in every `.dlq` topic: what its partitions still hold.
fn dead_letters(partitions: &HashMap<String, Vec<i32>>, watermarks: &mut Watermarks<'_>) -> anyhow::Result<DeadLetters> {
    let mut topics = Vec::new();
    let mut dead: Vec<(&String, &Vec<i32>)> = partitions.iter().filter(|(t, _)| t.ends_with(".dlq")).collect();
    dead.sort();
    for (topic, ids) in dead {
        let mut records = 0;
        for id in ids {
            let (low, high) = watermarks.get(topic, *id)?;
            records += high - low;
        }
        topics.push(DeadLetterTopic { topic: topic.clone(), partitions: ids.len(), records });
    }
    Ok(DeadLetters { total: topics.iter().map(|t| t.records).sum(), topics })
}

fn client(brokers: &str, login: &KafkaLogin, group: Option<&str>) -> rdkafka::error::KafkaResult<BaseConsumer> {
    let mut config = login.client_config(brokers);
    config.set("client.id", "outflow-monitor").set("enable.auto.commit", "false").set("enable.auto.offset.store", "false");
    if let Some(group) = group {
        config.set("group.id", group);
    }
    config.create()
}

/// Each partition's (low, high) watermarks, asked once per sample.
struct Watermarks<'a> {
    consumer: &'a BaseConsumer,
    timeout: Duration,
    known: HashMap<(String, i32), (i64, i64)>,
}

impl Watermarks<'_> {
    fn get(&mut self, topic: &str, partition: i32) -> anyhow::Result<(i64, i64)> {
        if let Some(known) = self.known.get(&(topic.to_owned(), partition)) {
            return Ok(*known);
        }
        let marks =
            self.consumer.fetch_watermarks(topic, partition, self.timeout).with_context(|| format!("fetching the watermarks of {topic}/{partition}"))?;
        self.known.insert((topic.to_owned(), partition), marks);
        Ok(marks)
    }
}

/// The topics in a member's subscription (Kafka's ConsumerProtocolSubscription:
/// version i16, then an array of i16-length strings); None when it is not one.
pub fn subscribed_topics(metadata: &[u8]) -> Option<Vec<String>> {
    let mut bytes = metadata;
    let mut take = |n: usize| -> Option<&[u8]> {
        let (head, tail) = (bytes.get(..n)?, bytes.get(n..)?);
        bytes = tail;
        Some(head)
    };
    let _version = i16::from_be_bytes(take(2)?.try_into().ok()?);
    let count = i32::from_be_bytes(take(4)?.try_into().ok()?);
    if !(0..=10_000).contains(&count) {
        return None;
    }
    let mut topics = Vec::with_capacity(count as usize);
    for _ in 0..count {
        let len = i16::from_be_bytes(take(2)?.try_into().ok()?);
        let name = std::str::from_utf8(take(usize::try_from(len).ok()?)?).ok()?;
        topics.push(name.to_owned());
    }
    Some(topics)
}

#[cfg(test)]
mod tests {
    use super::subscribed_topics;

    fn subscription(topics: &[&str]) -> Vec<u8> {
        let mut bytes = vec![0, 3];
        bytes.extend_from_slice(&(topics.len() as i32).to_be_bytes());
        for topic in topics {
            bytes.extend_from_slice(&(topic.len() as i16).to_be_bytes());
            bytes.extend_from_slice(topic.as_bytes());
        }
        bytes.extend_from_slice(&[0xff, 0xff, 0xff, 0xff]); // user data: null
        bytes
    }

    #[test]
    fn reads_the_topics_of_a_subscription() {
        let topics = subscribed_topics(&subscription(&["outflow.order.events", "outflow.payment.events"]));
        assert_eq!(topics.unwrap(), ["outflow.order.events", "outflow.payment.events"]);
    }

    #[test]
    fn refuses_what_is_not_a_subscription() {
        assert_eq!(subscribed_topics(&[0, 1, 0]), None);
        assert_eq!(subscribed_topics(&[0, 0, 0, 0, 0, 2, 0, 9, b'x']), None);
    }
}
