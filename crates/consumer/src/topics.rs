//! Creates the topics a consumer reads and dead-letters to, when they do not
//! exist yet (the broker does not auto-create topics). Event topics get the
//! same settings Connect's topic creation gives them: 3 partitions, kept
//! forever, and the brokers' default replication factor (replication factor -1:
//! one replica on a single node, three in the cluster topology).

use std::time::Duration;

use rdkafka::{
    admin::{AdminClient, AdminOptions, NewTopic, TopicReplication},
    client::DefaultClientContext,
    types::RDKafkaErrorCode,
    ClientConfig,
};

pub async fn ensure(client: ClientConfig, event_topics: &[String], dead_letter_topics: &[String]) -> anyhow::Result<()> {
    let admin: AdminClient<DefaultClientContext> = client.create()?;
    let forever = [("retention.ms", "-1"), ("cleanup.policy", "delete")];
    let mut wanted: Vec<NewTopic<'_>> = Vec::new();
    for topic in event_topics {
        wanted.push(forever.iter().fold(NewTopic::new(topic, 3, TopicReplication::Fixed(-1)), |t, (k, v)| t.set(k, v)));
    }
    for topic in dead_letter_topics {
        wanted.push(forever.iter().fold(NewTopic::new(topic, 1, TopicReplication::Fixed(-1)), |t, (k, v)| t.set(k, v)));
    }
    let options = AdminOptions::new().operation_timeout(Some(Duration::from_secs(10)));
    for result in admin.create_topics(&wanted, &options).await? {
        match result {
            Ok(_) | Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((topic, code)) => anyhow::bail!("creating topic {topic}: {code}"),
        }
    }
    Ok(())
}
