//! Logs what the group coordinator does to this consumer: rebalances and
//! offset commits (failures loudly).

use rdkafka::{
    consumer::{ConsumerContext, Rebalance},
    error::KafkaResult,
    ClientContext, TopicPartitionList,
};
use tracing::{info, warn};

pub struct LoggingContext {
    pub group: String,
}

impl ClientContext for LoggingContext {}

impl ConsumerContext for LoggingContext {
    fn pre_rebalance(&self, _: &rdkafka::consumer::BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        match rebalance {
            Rebalance::Revoke(list) => info!(group = %self.group, partitions = %describe(list), "partitions revoked"),
            Rebalance::Assign(list) => info!(group = %self.group, partitions = %describe(list), "partitions assigned"),
            Rebalance::Error(e) => warn!(group = %self.group, error = %e, "rebalance error"),
        }
    }

    fn commit_callback(&self, result: KafkaResult<()>, offsets: &TopicPartitionList) {
        match result {
            Ok(()) => tracing::debug!(group = %self.group, offsets = %describe(offsets), "offsets committed"),
            Err(e) => warn!(group = %self.group, error = %e, "offset commit failed"),
        }
    }
}

fn describe(list: &TopicPartitionList) -> String {
    list.elements().iter().map(|e| format!("{}[{}]@{:?}", e.topic(), e.partition(), e.offset())).collect::<Vec<_>>().join(",")
}
