//! Poison messages: a malformed record on each event topic goes to
//! `<topic>.dlq` with its reason, source topic, partition and offset, and the
//! consumers keep going: the next good event on that topic is still handled.

mod shop;

use std::time::Duration;

use outflow_stack_tests::{consume, header_map, Stack};
use rdkafka::{
    producer::{FutureProducer, FutureRecord},
    Message,
};

async fn produce(stack: &Stack, topic: &str, key: &str, payload: &[u8]) -> (i32, i64) {
    let producer: FutureProducer = stack.kafka_config().create().unwrap();
    let delivery = producer.send(FutureRecord::to(topic).key(key).payload(payload), Duration::from_secs(10)).await.map_err(|(e, _)| e).unwrap();
    (delivery.partition, delivery.offset)
}

#[tokio::test]
#[ignore = "needs the stack: scripts/up (scripts/test runs it)"]
async fn a_malformed_record_is_dead_lettered_with_its_reason_and_the_next_event_is_handled() {
    let stack = Stack::from_env();
    let shop = shop::Shop::new().await;
    let mut unknown_schema = vec![0u8, 0x7f, 0xff, 0xff, 0xfe];
    unknown_schema.extend_from_slice(b"body");
    // (topic, a group that reads it)
    let cases = [("outflow.order.events", "outflow-inventory"), ("outflow.inventory.events", "outflow-orders"), ("outflow.payment.events", "outflow-orders")];
    let mut poisoned = Vec::new();
    for (topic, group) in cases {
        let key = format!("poison-{}", uuid::Uuid::new_v4());
        let bad_magic = produce(&stack, topic, &key, b"{\"not\": \"avro\"}").await;
        let unknown = produce(&stack, topic, &key, &unknown_schema).await;
        poisoned.push((topic, group, key, bad_magic, unknown));
    }

    // Good events on every topic after the poison: a product (inventory topic),
    // an order that is paid (order and payment topics).
    let sku = shop.product(1).await;
    let order = shop.place("after-poison", &[(&sku, 1)]).await;
    shop.force(&order, "settle").await;
    shop.wait_order(&order, "CONFIRMED").await;

    for (topic, group, key, bad_magic, unknown) in poisoned {
        let dlq = format!("{topic}.dlq");
        let letters = consume(&stack, &dlq, 2, Duration::from_secs(30), |m| {
            m.key() == Some(key.as_bytes()) && header_map(m).get("dlq.consumer.group").map(String::as_str) == Some(group)
        })
        .await
        .unwrap();
        assert_eq!(letters.len(), 2, "{dlq}: both poison records of {group}");
        let kinds: Vec<(String, String, String, String)> = letters
            .iter()
            .map(|m| {
                let h = header_map(m);
                (h["dlq.kind"].clone(), h["dlq.source.topic"].clone(), h["dlq.source.partition"].clone(), h["dlq.source.offset"].clone())
            })
            .collect();
        assert!(kinds.contains(&("bad_magic_byte".into(), topic.into(), bad_magic.0.to_string(), bad_magic.1.to_string())), "{kinds:?}");
        assert!(kinds.contains(&("unknown_schema_id".into(), topic.into(), unknown.0.to_string(), unknown.1.to_string())), "{kinds:?}");
        assert!(letters.iter().all(|m| !header_map(m)["dlq.reason"].is_empty()));
    }
}
