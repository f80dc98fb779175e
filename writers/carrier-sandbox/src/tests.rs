//! The sandbox in this process: what it answers, through its router without a
//! network, and the callbacks it sends, to a receiver on an ephemeral port
//! that stands in for the shipping writer.

use std::sync::{
    atomic::{AtomicUsize, Ordering},
    Arc,
};

use axum::{
    body::{Body, Bytes},
    http::{HeaderMap, Request, StatusCode},
};
use base64::Engine;
use outflow_carrier::CarrierClient;
use secrecy::SecretString;
use serde_json::Value;
use tokio::{sync::mpsc, time::Instant};
use tower::ServiceExt;

use super::*;

const KEY: &str = "carrier-test-key";
const AN_HOUR_MS: u64 = 3_600_000;
const PATIENCE: Duration = Duration::from_secs(10);

fn config(callback_url: &str, delivery_delay_ms: u64) -> SandboxConfig {
    SandboxConfig { port: 0, callback_url: callback_url.into(), key: KEY.into(), delivery_delay_ms, failure_rate: 0.0, journal: None }
}

/// One request through the router: the answer's status and JSON body (Null when empty).
async fn call(sandbox: &Sandbox, method: &str, uri: &str, key: Option<&str>, body: Option<Value>) -> (StatusCode, Value) {
    let mut request = Request::builder().method(method).uri(uri);
    if let Some(key) = key {
        request = request.header("authorization", format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(format!("{key}:"))));
    }
    let request = match body {
        Some(body) => request.header("content-type", "application/json").body(Body::from(body.to_string())),
        None => request.body(Body::empty()),
    };
    let response = sandbox.clone().router().oneshot(request.unwrap()).await.unwrap();
    let status = response.status();
    let bytes = axum::body::to_bytes(response.into_body(), usize::MAX).await.unwrap();
    (status, if bytes.is_empty() { Value::Null } else { serde_json::from_slice(&bytes).unwrap() })
}

fn order(order_id: &str) -> Option<Value> {
    Some(json!({"order_id": order_id, "customer_id": "alice"}))
}

#[tokio::test]
async fn shipments_need_the_key_and_are_idempotent_on_the_order() {
    let sandbox = Sandbox::new(config("http://127.0.0.1:9/nowhere", AN_HOUR_MS));
    for (key, body) in [(None, order("o-1")), (Some("wrong"), order("o-1")), (None, Some(json!({"nonsense": true})))] {
        let (status, refused) = call(&sandbox, "POST", "/v1/shipments", key, body).await;
        assert_eq!((status, &refused["error"]["code"]), (StatusCode::UNAUTHORIZED, &json!("unauthorized")), "{key:?}");
    }
    let (status, refused) = call(&sandbox, "POST", "/v1/shipments", Some(KEY), Some(json!({"order_id": "o-1"}))).await;
    assert_eq!((status, &refused["error"]["code"]), (StatusCode::UNPROCESSABLE_ENTITY, &json!("invalid_body")));

    let (status, first) = call(&sandbox, "POST", "/v1/shipments", Some(KEY), order("o-1")).await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!((&first["order_id"], &first["status"]), (&json!("o-1"), &json!("in_transit")));
    let (status, again) = call(&sandbox, "POST", "/v1/shipments", Some(KEY), order("o-1")).await;
    assert_eq!((status, &again), (StatusCode::OK, &first), "the same shipment, not a second one");

    assert_eq!(call(&sandbox, "GET", "/v1/shipments/o-1", Some(KEY), None).await, (StatusCode::OK, first));
    assert_eq!(call(&sandbox, "GET", "/v1/shipments/o-1", None, None).await.0, StatusCode::UNAUTHORIZED);
    let (status, unknown) = call(&sandbox, "GET", "/v1/shipments/o-2", Some(KEY), None).await;
    assert_eq!((status, &unknown["error"]["code"]), (StatusCode::NOT_FOUND, &json!("not_found")));
    let (status, parcel) = call(&sandbox, "GET", "/sandbox/shipments/o-1", None, None).await;
    assert_eq!((status, &parcel["customer_id"], &parcel["notified"]), (StatusCode::OK, &json!("alice"), &json!(false)));

    assert_eq!(call(&sandbox, "POST", "/sandbox/shipments/o-1/callback", None, None).await.0, StatusCode::CONFLICT, "nothing decided to call back");
    assert_eq!(call(&sandbox, "POST", "/sandbox/shipments/o-2/callback", None, None).await.0, StatusCode::NOT_FOUND);
    assert_eq!(call(&sandbox, "GET", "/healthz", None, None).await, (StatusCode::OK, json!({"status": "ok"})));
}

#[tokio::test]
async fn the_behaviour_changes_at_run_time_within_bounds() {
    let sandbox = Sandbox::new(SandboxConfig { failure_rate: 0.25, ..config("http://127.0.0.1:9/nowhere", 300) });
    assert_eq!(call(&sandbox, "GET", "/sandbox/behaviour", None, None).await.1, json!({"delivery_delay_ms": 300, "failure_rate": 0.25}));
    for (rate, expected) in [(json!(1.5), StatusCode::UNPROCESSABLE_ENTITY), (json!(-0.1), StatusCode::UNPROCESSABLE_ENTITY), (json!(1.0), StatusCode::OK)] {
        let (status, _) = call(&sandbox, "PUT", "/sandbox/behaviour", None, Some(json!({"delivery_delay_ms": 0, "failure_rate": rate}))).await;
        assert_eq!(status, expected, "failure rate {rate}");
    }
    let (status, refused) = call(&sandbox, "PUT", "/sandbox/behaviour", None, Some(json!({"delivery_delay_ms": 0, "failure_rate": 2}))).await;
    assert_eq!((status, &refused["error"]["code"]), (StatusCode::UNPROCESSABLE_ENTITY, &json!("invalid_failure_rate")));
    assert_eq!(call(&sandbox, "GET", "/sandbox/behaviour", None, None).await.1, json!({"delivery_delay_ms": 0, "failure_rate": 1.0}));
    assert!(probability("1.01").is_err() && probability("nan").is_err() && probability("0.5") == Ok(0.5), "the command line refuses what PUT refuses");
}

/// What the stand-in shipping writer saw of one callback attempt.
struct Attempt {
    timestamp: String,
    signature: String,
    content_type: String,
    body: Bytes,
}

impl Attempt {
    fn callback(&self) -> Callback {
        serde_json::from_slice(&self.body).unwrap()
    }
}

/// A callback endpoint that answers 503 to its first `refusals` attempts and
/// 200 after, reporting every attempt.
async fn receiver(refusals: usize) -> (String, mpsc::UnboundedReceiver<Attempt>) {
    let (report, attempts) = mpsc::unbounded_channel();
    let seen = Arc::new(AtomicUsize::new(0));
    let endpoint = move |headers: HeaderMap, body: Bytes| {
        let (report, seen) = (report.clone(), seen.clone());
        async move {
            let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
            let attempt = Attempt {
                timestamp: header(signature::TIMESTAMP_HEADER),
                signature: header(signature::SIGNATURE_HEADER),
                content_type: header("content-type"),
                body,
            };
            let _ = report.send(attempt);
            if seen.fetch_add(1, Ordering::SeqCst) < refusals {
                StatusCode::SERVICE_UNAVAILABLE
            } else {
                StatusCode::OK
            }
        }
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/callbacks", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, Router::new().route("/callbacks", post(endpoint))).await.unwrap() });
    (url, attempts)
}

async fn next(attempts: &mut mpsc::UnboundedReceiver<Attempt>) -> Attempt {
    tokio::time::timeout(PATIENCE, attempts.recv()).await.expect("a callback in time").expect("the receiver runs")
}

async fn serve(sandbox: &Sandbox) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let router = sandbox.clone().router();
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    url
}

async fn until_notified(sandbox: &Sandbox, order_id: &str) {
    let deadline = Instant::now() + PATIENCE;
    while !sandbox.parcels.lock().await.get(order_id).is_some_and(|p| p.notified) {
        assert!(Instant::now() < deadline, "the accepted callback of {order_id} was never recorded");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

fn unix_now() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs() as i64
}

#[tokio::test]
async fn a_callback_is_signed_over_its_bytes_and_retried_until_accepted() {
    let (callback_url, mut attempts) = receiver(2).await;
    let sandbox = Sandbox::new(config(&callback_url, 0));
    let carrier = CarrierClient::new(&serve(&sandbox).await, SecretString::from(KEY.to_owned()));
    assert!(carrier.status("o-1").await.unwrap().is_none(), "unknown before it is requested");
    let shipment = carrier.request_shipment("o-1", "alice").await.unwrap();
    assert_eq!(shipment.status, ShipmentStatus::InTransit);

    let tries = [next(&mut attempts).await, next(&mut attempts).await, next(&mut attempts).await];
    for attempt in &tries {
        assert!(signature::verify(KEY, &attempt.timestamp, &attempt.body, &attempt.signature), "signed: {}", attempt.signature);
        assert!(signature::fresh(&attempt.timestamp, unix_now(), 5), "stamped when sent: {}", attempt.timestamp);
        assert_eq!(attempt.content_type, "application/json");
        assert_eq!(attempt.body, tries[0].body, "the same callback each time");
    }
    let callback = tries[2].callback();
    assert_eq!(
        (callback.shipment_id, callback.order_id, callback.status, callback.reason),
        (shipment.shipment_id, "o-1".into(), ShipmentStatus::Delivered, None)
    );
    until_notified(&sandbox, "o-1").await;
    assert_eq!(carrier.status("o-1").await.unwrap().unwrap().status, ShipmentStatus::Delivered);
    assert_eq!(carrier.request_shipment("o-1", "alice").await.unwrap().status, ShipmentStatus::Delivered, "asked again: the decided shipment");
}

#[tokio::test]
async fn forced_outcomes_fail_a_shipment_or_hold_it_until_released() {
    let (callback_url, mut attempts) = receiver(0).await;
    let sandbox = Sandbox::new(config(&callback_url, 0));
    let carrier = CarrierClient::new(&serve(&sandbox).await, SecretString::from(KEY.to_owned()));
    for (order_id, outcome) in [("held", "never"), ("lost", "fail")] {
        let (status, _) = call(&sandbox, "PUT", &format!("/sandbox/shipments/{order_id}/outcome"), None, Some(json!({"outcome": outcome}))).await;
        assert_eq!(status, StatusCode::NO_CONTENT);
        carrier.request_shipment(order_id, "alice").await.unwrap();
    }
    let failed = next(&mut attempts).await.callback();
    assert_eq!((failed.order_id.as_str(), failed.status, failed.reason.as_deref()), ("lost", ShipmentStatus::Failed, Some(FAILURE_REASON)));
    assert_eq!(carrier.status("held").await.unwrap().unwrap().status, ShipmentStatus::InTransit);

    let (status, _) = call(&sandbox, "PUT", "/sandbox/shipments/held/outcome", None, Some(json!({"outcome": "deliver"}))).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let released = next(&mut attempts).await.callback();
    assert_eq!((released.order_id.as_str(), released.status), ("held", ShipmentStatus::Delivered));

    until_notified(&sandbox, "lost").await;
    assert_eq!(call(&sandbox, "POST", "/sandbox/shipments/lost/callback", None, None).await.0, StatusCode::ACCEPTED);
    let again = next(&mut attempts).await;
    assert!(signature::verify(KEY, &again.timestamp, &again.body, &again.signature));
    assert_eq!(again.callback().shipment_id, failed.shipment_id, "a duplicate of the decided shipment's callback");
}

#[tokio::test]
async fn a_sandbox_restarted_on_its_journal_decides_what_was_in_transit() {
    let (callback_url, mut attempts) = receiver(0).await;
    let dir = std::env::temp_dir().join(format!("outflow-carrier-sandbox-restart-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let journaled = |delivery_delay_ms| SandboxConfig { journal: Some(dir.join("journal.jsonl")), ..config(&callback_url, delivery_delay_ms) };

    // The first sandbox's parcels take an hour; it stops before any arrives.
    let first = Sandbox::open(journaled(AN_HOUR_MS)).unwrap();
    let (status, requested) = call(&first, "POST", "/v1/shipments", Some(KEY), order("o-1")).await;
    assert_eq!(status, StatusCode::CREATED);
    drop(first);

    let second = Sandbox::open(journaled(0)).unwrap();
    let delivered = next(&mut attempts).await.callback();
    assert_eq!((delivered.order_id.as_str(), delivered.status), ("o-1", ShipmentStatus::Delivered));
    assert_eq!(json!(delivered.shipment_id), requested["shipment_id"], "the same shipment, not a new one");
    assert_eq!(call(&second, "POST", "/v1/shipments", Some(KEY), order("o-1")).await.0, StatusCode::OK, "still known");
}
