//! (d) commit → SSE message: the query service's order streams, followed for a
//! sample of the half-rate run's orders, as a customer's page would.
//!
//! Each sampled order's stream is opened as soon as the view shows the order
//! and read until the order's confirmation. Every message that came live (the
//! view folded its event after the stream was open; the ones the stream sent
//! first, from the view as it was, are not timed) counts the time from the
//! event's commit (`event.at`, the outbox row's time) to its arrival here.

use std::{
    sync::{Arc, Mutex},
    time::Duration,
};

use eventsource_stream::Eventsource;
use futures::StreamExt;
use tokio::task::JoinHandle;

use crate::measure::{Latencies, Percentiles};

const QUERY_URL: &str = "http://127.0.0.1:7110";
/// How long a sampled order's view may take to show the order, and its stream
/// to show the confirmation.
const FOLLOW_FOR: Duration = Duration::from_secs(60);

/// The streams being followed and what they measured.
#[derive(Clone, Default)]
pub struct LiveSampler {
    latencies: Arc<Mutex<Latencies>>,
    failures: Arc<Mutex<Vec<String>>>,
    tasks: Arc<Mutex<Vec<JoinHandle<()>>>>,
    http: reqwest::Client,
}

impl LiveSampler {
    /// Follows `order_id`'s stream with `authorization` (the `Bearer` header
    /// of the customer who placed it), in the background.
    pub fn follow(&self, order_id: String, authorization: String) {
        let sampler = self.clone();
        let task = tokio::spawn(async move {
            let outcome = tokio::time::timeout(FOLLOW_FOR, sampler.read(&order_id, &authorization)).await;
            let failure = match outcome {
                Ok(Ok(())) => return,
                Ok(Err(e)) => format!("order {order_id}: {e:#}"),
                Err(_) => format!("order {order_id}: no OrderConfirmed on its stream within {FOLLOW_FOR:?}"),
            };
            sampler.failures.lock().unwrap().push(failure);
        });
        self.tasks.lock().unwrap().push(task);
    }

    async fn read(&self, order_id: &str, authorization: &str) -> anyhow::Result<()> {
        let url = format!("{QUERY_URL}/v1/orders/{order_id}/events");
        let (response, opened_ms) = loop {
            let opened_ms = chrono::Utc::now().timestamp_millis();
            let response = self.http.get(&url).header("authorization", authorization).send().await?;
            // 404 until the view consumer has folded the order in.
            if response.status() != reqwest::StatusCode::NOT_FOUND {
                break (response.error_for_status()?, opened_ms);
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        let mut events = response.bytes_stream().eventsource();
        while let Some(event) = events.next().await {
            let event = event?;
            if event.event != "order" {
                continue;
            }
            let received_ms = chrono::Utc::now().timestamp_millis();
            let data: serde_json::Value = serde_json::from_str(&event.data)?;
            let folded_ms = extjson_ms(&data["event"]["viewed_at"]);
            if folded_ms.is_some_and(|folded| folded >= opened_ms) {
                if let Some(committed_ms) = extjson_ms(&data["event"]["at"]) {
                    self.latencies.lock().unwrap().record_ms((received_ms - committed_ms) as f64);
                }
            }
            if data["event"]["type"] == "OrderConfirmed" {
                return Ok(());
            }
        }
        anyhow::bail!("the stream ended before OrderConfirmed")
    }

    /// Waits for every stream to end; the latencies and how many failed.
    pub async fn finish(&self) -> (Percentiles, Vec<String>) {
        let tasks: Vec<_> = std::mem::take(&mut *self.tasks.lock().unwrap());
        for task in tasks {
            let _ = task.await;
        }
        let failures = std::mem::take(&mut *self.failures.lock().unwrap());
        (Percentiles::of(&self.latencies.lock().unwrap()), failures)
    }
}

/// A date as the query service writes it (relaxed extended JSON:
/// `{"$date": "2026-...Z"}` or `{"$date": {"$numberLong": "..."}}`), in ms.
fn extjson_ms(value: &serde_json::Value) -> Option<i64> {
    match &value["$date"] {
        serde_json::Value::String(text) => chrono::DateTime::parse_from_rfc3339(text).ok().map(|t| t.timestamp_millis()),
        other => other["$numberLong"].as_str()?.parse().ok(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_forms_of_an_extended_json_date_are_read() {
        assert_eq!(extjson_ms(&serde_json::json!({"$date": "1970-01-01T00:00:01.5Z"})), Some(1500));
        assert_eq!(extjson_ms(&serde_json::json!({"$date": {"$numberLong": "-5"}})), Some(-5));
        assert_eq!(extjson_ms(&serde_json::json!("1970-01-01")), None);
    }
}
