//! Every `<topic>.dlq` the broker has, read to its end; kept are the
//! records that are not deliberate poison and whose key is in scope.

use std::time::Duration;

use rdkafka::Message;

use super::{
    kafka::{header, topic_names, TopicReader},
    Keys,
};
use crate::{snapshot::DeadLetter, Sources};

/// The dead letters kept, and how many records the topics held.
pub async fn read(sources: &Sources, keys: &Keys, deadline: Duration) -> anyhow::Result<(Vec<DeadLetter>, u64)> {
    let config = sources.kafka();
    let mut topics: Vec<String> = topic_names(&config)?.into_iter().filter(|t| t.ends_with(".dlq")).collect();
    topics.sort();
    let (mut kept, mut read) = (Vec::new(), 0);
    for topic in topics {
        let Some(mut reader) = TopicReader::open(&config, &topic, deadline)? else {
            continue;
        };
        while let Some(message) = reader.next(|m| keys.keeps(m.key())).await? {
            let text = |name: &str| header(&message, name).unwrap_or_default();
            kept.push(DeadLetter {
                topic: topic.clone(),
                partition: message.partition(),
                offset: message.offset(),
                key: message.key().map(|k| String::from_utf8_lossy(k).into_owned()),
                group: text("dlq.consumer.group"),
                kind: text("dlq.kind"),
                reason: text("dlq.reason"),
            });
        }
        read += reader.records_read;
    }
    Ok((kept, read))
}
