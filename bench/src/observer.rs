//! Watches the three event topics from their current ends, as one more
//! consumer would, and times every event hop by hop:
//!
//! - commit → Debezium: the Kafka record's timestamp (set by the Outbox Event
//!   Router from the change event's processing time) minus the event's
//!   `occurred_at` (taken inside the committing transaction);
//! - commit → consumable: when this observer received it, minus `occurred_at`.
//!
//! It also wakes whoever waits for an order's saga to end (`StockCommitted`,
//! the saga's last transaction before shipping, or `OrderCancelled`), and
//! counts the shipments that ended (`OrderCompleted`, `OrderDeliveryFailed`).

use std::{
    collections::HashMap,
    sync::{
        atomic::{AtomicBool, AtomicU64, Ordering},
        Arc, Mutex,
    },
    time::Duration,
};

use anyhow::Context;
use outflow_consumer::decode::Decoder;
use outflow_events::DomainEvent;
use outflow_stack_tests::Stack;
use rdkafka::{
    consumer::{Consumer, StreamConsumer},
    Message, Offset, TopicPartitionList,
};
use tokio::sync::oneshot;

/// One event seen on Kafka.
#[derive(Clone, Debug)]
pub struct Hop {
    pub event_type: &'static str,
    /// Commit → the Kafka record's timestamp, in ms.
    pub to_debezium_ms: f64,
    /// Commit → received by a consumer, in ms.
    pub to_consumer_ms: f64,
}

#[derive(Debug)]
pub enum End {
    Completed,
    /// With the order's cancellation reason.
    Cancelled(String),
}

enum Waiter {
    Waiting(oneshot::Sender<End>),
    Ended(End),
}

#[derive(Default)]
struct Shared {
    waiters: Mutex<HashMap<String, Waiter>>,
    hops: Mutex<Vec<Hop>>,
    recording: AtomicBool,
    delivered: AtomicU64,
    delivery_failed: AtomicU64,
}

#[derive(Clone)]
pub struct Observer {
    shared: Arc<Shared>,
    task: Arc<tokio::task::JoinHandle<()>>,
}

impl Observer {
    /// Assigns every partition of the event topics at its current high watermark.
    pub async fn start(stack: &Stack) -> anyhow::Result<Observer> {
        let consumer: StreamConsumer = stack
            .kafka_config()
            .set("group.id", format!("outflow-bench-observer-{}", uuid::Uuid::new_v4().simple()))
            .set("enable.auto.commit", "false")
            .set("fetch.wait.max.ms", "100")
            .create()
            .context("creating the observer's consumer")?;
        let mut assignment = TopicPartitionList::new();
        for aggregate in outflow_events::AggregateType::ALL {
            let topic = aggregate.topic();
            let metadata = consumer.fetch_metadata(Some(&topic), Duration::from_secs(10))?;
            let partitions = metadata.topics().first().map_or(0, |t| t.partitions().len());
            anyhow::ensure!(partitions > 0, "topic {topic} has no partitions: are the connectors registered?");
            for partition in 0..partitions as i32 {
                let (_, high) = consumer.fetch_watermarks(&topic, partition, Duration::from_secs(10))?;
                assignment.add_partition_offset(&topic, partition, Offset::Offset(high))?;
            }
        }
        consumer.assign(&assignment)?;
        let shared = Arc::new(Shared::default());
        let decoder = Decoder::new(&stack.registry());
        let task = tokio::spawn(watch(consumer, decoder, shared.clone()));
        Ok(Observer { shared, task: Arc::new(task) })
    }

    /// Waits until the order's saga has ended, at most `deadline`.
    pub async fn ended(&self, order_id: &str, deadline: Duration) -> anyhow::Result<End> {
        let receiver = {
            let mut waiters = self.shared.waiters.lock().unwrap();
            if let Some(Waiter::Ended(_)) = waiters.get(order_id) {
                let Some(Waiter::Ended(end)) = waiters.remove(order_id) else { unreachable!() };
                return Ok(end);
            }
            let (sender, receiver) = oneshot::channel();
            waiters.insert(order_id.to_owned(), Waiter::Waiting(sender));
            receiver
        };
        match tokio::time::timeout(deadline, receiver).await {
            Ok(Ok(end)) => Ok(end),
            _ => {
                self.shared.waiters.lock().unwrap().remove(order_id);
                anyhow::bail!("order {order_id}: no end of its saga on Kafka within {deadline:?}")
            }
        }
    }

    /// Records hops from now on (and forgets earlier ones).
    pub fn record(&self, on: bool) {
        if on {
            self.shared.hops.lock().unwrap().clear();
        }
        self.shared.recording.store(on, Ordering::Relaxed);
    }

    pub fn hops(&self) -> Vec<Hop> {
        self.shared.hops.lock().unwrap().clone()
    }

    /// Orders delivered and orders whose delivery failed, seen since the start.
    pub fn deliveries(&self) -> (u64, u64) {
        (self.shared.delivered.load(Ordering::Relaxed), self.shared.delivery_failed.load(Ordering::Relaxed))
    }

    pub fn stop(&self) {
        self.task.abort();
    }
}

/// Times every event it can decode, and wakes whoever waits for its order's end.
async fn watch(consumer: StreamConsumer, decoder: Decoder, shared: Arc<Shared>) {
    loop {
        let Ok(message) = consumer.recv().await else { continue };
        let received = chrono::Utc::now().timestamp_millis();
        let message = message.detach();
        let Ok(delivery) = decoder.decode(&message).await else { continue };
        if shared.recording.load(Ordering::Relaxed) {
            let (occurred, stamped) = (delivery.event.occurred_at(), message.timestamp().to_millis().unwrap_or(received));
            shared.hops.lock().unwrap().push(Hop {
                event_type: delivery.event.name(),
                to_debezium_ms: (stamped - occurred) as f64,
                to_consumer_ms: (received - occurred) as f64,
            });
        }
        let end = match &delivery.event {
            DomainEvent::StockCommitted(e) => Some((e.order_id.clone(), End::Completed)),
            DomainEvent::OrderCancelled(e) => Some((e.aggregate_id.clone(), End::Cancelled(e.reason.clone()))),
            DomainEvent::OrderCompleted(_) => {
                shared.delivered.fetch_add(1, Ordering::Relaxed);
                None
            }
            DomainEvent::OrderDeliveryFailed(_) => {
                shared.delivery_failed.fetch_add(1, Ordering::Relaxed);
                None
            }
            _ => None,
        };
        if let Some((order_id, end)) = end {
            shared.ended(order_id, end);
        }
    }
}

impl Shared {
    /// Hands the end to its waiter, or keeps it for one that asks later.
    fn ended(&self, order_id: String, end: End) {
        let mut waiters = self.waiters.lock().unwrap();
        match waiters.remove(&order_id) {
            Some(Waiter::Waiting(sender)) => {
                let _ = sender.send(end);
            }
            _ => {
                waiters.insert(order_id, Waiter::Ended(end));
            }
        }
    }
}
