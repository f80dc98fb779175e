//! One order is one trace: an order placed with a W3C `traceparent` is found
//! in Jaeger (which scripts/up starts) as one trace holding the spans of every
//! service that touched it, each step a descendant of the step that caused it:
//! the orders writer's request, the inventory consumer's reservation, the
//! payments consumer's payment, the provider's webhook at the payments writer,
//! the orders consumer's confirmation, and the views and notifications.

mod shop;

use std::{
    collections::HashMap,
    time::{Duration, Instant},
};

use anyhow::{ensure, Context, Result};
use serde_json::{json, Value};

/// A span of the trace as Jaeger's query API gives it.
#[derive(Debug)]
struct Span {
    service: String,
    operation: String,
    parent: Option<String>,
    start_us: u64,
}

struct Trace {
    spans: HashMap<String, Span>,
}

impl Trace {
    async fn fetch(http: &reqwest::Client, jaeger: &str, trace_id: &str) -> Result<Option<Trace>> {
        let response = http.get(format!("{jaeger}/api/traces/{trace_id}")).send().await.with_context(|| format!("Jaeger does not answer at {jaeger}"))?;
        if response.status() == reqwest::StatusCode::NOT_FOUND {
            return Ok(None);
        }
        let body: Value = response.error_for_status()?.json().await?;
        let trace = &body["data"][0];
        let services: HashMap<&str, &str> =
            trace["processes"].as_object().context("processes")?.iter().map(|(id, p)| (id.as_str(), p["serviceName"].as_str().unwrap_or("?"))).collect();
        let mut spans = HashMap::new();
        for span in trace["spans"].as_array().context("spans")? {
            let parent = span["references"].as_array().into_iter().flatten().find(|r| r["refType"] == "CHILD_OF").and_then(|r| r["spanID"].as_str());
            spans.insert(
                span["spanID"].as_str().context("spanID")?.to_owned(),
                Span {
                    service: services.get(span["processID"].as_str().unwrap_or("")).copied().unwrap_or("?").to_owned(),
                    operation: span["operationName"].as_str().unwrap_or("?").to_owned(),
                    parent: parent.map(str::to_owned),
                    start_us: span["startTime"].as_u64().unwrap_or(0),
                },
            );
        }
        Ok(Some(Trace { spans }))
    }

    /// The id of the first span of `service` whose operation contains `operation`.
    fn find(&self, service: &str, operation: &str) -> Option<&str> {
        self.spans.iter().find(|(_, s)| s.service == service && s.operation.contains(operation)).map(|(id, _)| id.as_str())
    }

    /// Whether `ancestor` is `span` or one of its ancestors within the trace.
    fn descends_from(&self, span: &str, ancestor: &str) -> bool {
        let mut at = Some(span);
        while let Some(id) = at {
            if id == ancestor {
                return true;
            }
            at = self.spans.get(id).and_then(|s| s.parent.as_deref());
        }
        false
    }

    fn describe(&self) -> String {
        let mut lines: Vec<_> = self.spans.values().map(|s| (s.start_us, format!("{} | {}", s.service, s.operation))).collect();
        lines.sort();
        lines.into_iter().map(|(_, l)| l).collect::<Vec<_>>().join("\n")
    }
}

/// The saga's steps in causal order: (service, span operation).
const STEPS: [(&str, &str); 8] = [
    ("outflow-orders", "POST /v1/orders"),
    ("outflow-inventory-consumer", "OrderPlaced"),
    ("outflow-payments-consumer", "StockReserved"),
    ("outflow-payments", "payment notification"),
    ("outflow-orders-consumer", "PaymentCaptured"),
    ("outflow-shipping-consumer", "OrderConfirmed"),
    ("outflow-shipping", "shipment callback"),
    ("outflow-orders-consumer", "ShipmentDelivered"),
];

/// Spans that hang off a step without causing the next one.
const BRANCHES: [(&str, &str); 3] =
    [("outflow-views-consumer", "OrderConfirmed"), ("outflow-notifications-consumer", "OrderConfirmed"), ("outflow-inventory-consumer", "OrderConfirmed")];

#[tokio::test]
#[ignore = "needs the stack"]
async fn one_order_is_one_trace_across_every_service_in_causal_order() -> Result<()> {
    let jaeger = std::env::var("OUTFLOW_JAEGER_URL").unwrap_or_else(|_| "http://127.0.0.1:56686".to_owned());
    let shop = shop::Shop::new().await;
    let sku = shop.product(5).await;
    let trace_id = uuid::Uuid::new_v4().simple().to_string();
    let response = shop
        .http
        .post(format!("{}/v1/orders", shop::ORDERS))
        .bearer_auth(shop.customer("trace-customer"))
        .header("Idempotency-Key", uuid::Uuid::new_v4().to_string())
        .header("traceparent", format!("00-{trace_id}-00f067aa0ba902b7-01"))
        .json(&json!({"items": [{"sku": sku, "quantity": 1}]}))
        .send()
        .await?;
    ensure!(response.status().as_u16() == 202, "placing the order: {}", response.status());
    let order = response.json::<Value>().await?["order_id"].as_str().context("order_id")?.to_owned();
    shop.ship(&order, "deliver").await;
    shop.wait_order(&order, "COMPLETED").await;

    // Spans leave each process in batches: wait until every step's span is in.
    let http = reqwest::Client::new();
    let until = Instant::now() + Duration::from_secs(60);
    let trace = loop {
        let trace = Trace::fetch(&http, &jaeger, &trace_id).await?;
        if let Some(trace) = trace.filter(|t| STEPS.iter().chain(&BRANCHES).all(|(service, op)| t.find(service, op).is_some())) {
            break trace;
        }
        ensure!(
            Instant::now() < until,
            "trace {trace_id} of order {order} is incomplete after 60 s: {:?}",
            Trace::fetch(&http, &jaeger, &trace_id).await?.map(|t| t.describe())
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    };

    let step_spans: Vec<&str> = STEPS.iter().map(|(service, op)| trace.find(service, op).expect("found above")).collect();
    for pair in step_spans.windows(2) {
        let (cause, effect) = (pair[0], pair[1]);
        ensure!(
            trace.descends_from(effect, cause),
            "{:?} does not descend from {:?} in trace {trace_id}:\n{}",
            trace.spans[effect],
            trace.spans[cause],
            trace.describe()
        );
    }
    // The branches hang off the step that confirmed the order (PaymentCaptured handled), not the last step.
    let confirmation = STEPS.iter().position(|step| *step == ("outflow-orders-consumer", "PaymentCaptured")).expect("a step of STEPS");
    let confirmed_by = step_spans[confirmation];
    for (service, op) in BRANCHES {
        let span = trace.find(service, op).expect("found above");
        ensure!(trace.descends_from(span, confirmed_by), "{service} {op} does not descend from the confirmation:\n{}", trace.describe());
    }
    // A child never starts before its parent (clocks of one machine).
    for span in trace.spans.values() {
        if let Some(parent) = span.parent.as_deref().and_then(|p| trace.spans.get(p)) {
            ensure!(parent.start_us <= span.start_us, "{span:?} starts before its parent {parent:?}");
        }
    }
    Ok(())
}
