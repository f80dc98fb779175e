//! The sandbox against the real payments writer: a transaction it opens ends in
//! a signed notification that the writer accepts and applies; and a sandbox
//! restarted on its journal still knows, settles and refunds what it opened.

use std::{
    sync::{Arc, Mutex},
    time::Duration,
};

use outflow_payments::{settings::Settings, startup};
use outflow_provider_sandbox::{Sandbox, SandboxConfig};
use outflow_stack_tests::{service::TestService, Stack};
use reqwest::StatusCode;
use secrecy::SecretString;
use serde_json::{json, Value};

const SETTLED: &str = "0190b9a2-7c3e-7000-8000-000000000011";
const DENIED: &str = "0190b9a2-7c3e-7000-8000-000000000012";

#[tokio::test]
#[ignore = "needs the stack: scripts/up (scripts/test runs it)"]
async fn opened_transactions_settle_or_deny_through_the_signed_webhook() {
    let arrange = [SETTLED, DENIED]
        .map(|id| format!("insert into payments (order_id, customer_id, status, amount_minor, currency, provider_token, redirect_url, version) values ('{id}', 'alice', 'PENDING', 990, 'EUR', '-', '-', 1);"))
        .join("\n");
    // The writer asks this sandbox for each transaction's status, and the
    // sandbox notifies this writer: the sandbox's port is taken first.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let sandbox_url = format!("http://{}", listener.local_addr().unwrap());
    let payments = TestService::spawn("sandbox", &arrange, |service| {
        startup::build(Settings::defaults_with(service, SecretString::from(Stack::from_env().provider_server_key), &sandbox_url))
    })
    .await;
    let config = SandboxConfig {
        port: listener.local_addr().unwrap().port(),
        notify_url: payments.url("/v1/payments/notifications"),
        server_key: payments.stack.provider_server_key.clone(),
        settle_delay_ms: 50,
        failure_rate: 0.0,
        journal: None,
    };
    tokio::spawn(async move { axum::serve(listener, Sandbox::new(config).router()).await });
    let http = reqwest::Client::new();
    let key = payments.stack.provider_server_key.clone();

    let unauthorized = http.post(format!("{sandbox_url}/v1/transactions")).json(&json!({"order_id": SETTLED, "gross_amount": "9.90"})).send().await.unwrap();
    assert_eq!(unauthorized.status().as_u16(), 401);
    http.put(format!("{sandbox_url}/sandbox/orders/{DENIED}/outcome")).json(&json!({"outcome": "deny"})).send().await.unwrap();
    for order in [SETTLED, DENIED] {
        let open =
            || http.post(format!("{sandbox_url}/v1/transactions")).basic_auth(&key, Some("")).json(&json!({"order_id": order, "gross_amount": "9.90"})).send();
        let first: Value = open().await.unwrap().json().await.unwrap();
        let again: Value = open().await.unwrap().json().await.unwrap();
        assert_eq!(first["token"], again["token"], "idempotent on the order id");
        assert_eq!(first["transaction_id"], again["transaction_id"]);
        assert!(first["redirect_url"].as_str().unwrap().contains(first["token"].as_str().unwrap()));
        // What the payments consumer stores once the provider opened the transaction.
        sqlx::query("update payments set provider_transaction_id = $2 where order_id = $1::uuid")
            .bind(order)
            .bind(first["transaction_id"].as_str().unwrap())
            .execute(&payments.pool)
            .await
            .unwrap();
    }

    let until = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let statuses: Vec<(String, String)> =
            sqlx::query_as("select order_id::text, status from payments order by order_id").fetch_all(&payments.pool).await.unwrap();
        if statuses == vec![(SETTLED.to_owned(), "CAPTURED".to_owned()), (DENIED.to_owned(), "FAILED".to_owned())] {
            break;
        }
        assert!(tokio::time::Instant::now() < until, "payments did not settle: {statuses:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let mut types = payments.probe.outbox_event_types().await.unwrap();
    types.sort();
    assert_eq!(types, vec!["PaymentCaptured", "PaymentFailed"]);
    payments.cleanup().await;
}

/// What a restarted sandbox must not forget: a settled transaction (it can
/// still be refunded) and a pending one (it still settles and notifies).
#[tokio::test]
async fn a_sandbox_restarted_on_its_journal_keeps_its_transactions() {
    const PENDING: &str = "0190b9a2-7c3e-7000-8000-000000000021";
    const PAID: &str = "0190b9a2-7c3e-7000-8000-000000000022";
    let notified = Arc::new(Mutex::new(Vec::<Value>::new()));
    let receiver = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let notify_url = format!("http://{}/notify", receiver.local_addr().unwrap());
    let sink = notified.clone();
    let app = axum::Router::new().route(
        "/notify",
        axum::routing::post(move |axum::Json(body): axum::Json<Value>| async move {
            sink.lock().unwrap().push(body);
            StatusCode::OK
        }),
    );
    tokio::spawn(async move { axum::serve(receiver, app).await });
    let journal = std::env::temp_dir().join(format!("outflow-sandbox-restart-{}", std::process::id())).join("journal.jsonl");
    let _ = std::fs::remove_file(&journal);
    let key = "SB-Mid-server-restart-test".to_owned();
    let config = |settle_delay_ms| SandboxConfig {
        port: 0,
        notify_url: notify_url.clone(),
        server_key: key.clone(),
        settle_delay_ms,
        failure_rate: 0.0,
        journal: Some(journal.clone()),
    };
    let http = reqwest::Client::new();

    // The first sandbox's customers take an hour to pay; one pays at once.
    let (first_url, first) = serve(Sandbox::open(config(3_600_000)).unwrap()).await;
    for order in [PENDING, PAID] {
        let opened = http
            .post(format!("{first_url}/v1/transactions"))
            .basic_auth(&key, Some(""))
            .json(&json!({"order_id": order, "gross_amount": "9.90"}))
            .send()
            .await
            .unwrap();
        assert_eq!(opened.status(), StatusCode::CREATED);
    }
    assert_eq!(http.post(format!("{first_url}/sandbox/orders/{PAID}/settle")).send().await.unwrap().status(), StatusCode::ACCEPTED);
    wait_for(&notified, PAID, "settlement").await;
    // Stopped only once it has written down that the merchant accepted it.
    let until = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let paid: Value = http.get(format!("{first_url}/v1/transactions/{PAID}")).send().await.unwrap().json().await.unwrap();
        if paid["notified"] == true {
            break;
        }
        assert!(tokio::time::Instant::now() < until, "the accepted notification was never recorded: {paid}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let before: Value = http.get(format!("{first_url}/v1/transactions/{PENDING}")).send().await.unwrap().json().await.unwrap();
    first.abort();

    // The second, on the same journal, settles at once what is still pending.
    let (second_url, _second) = serve(Sandbox::open(config(0)).unwrap()).await;
    let status = |order: &'static str| http.get(format!("{second_url}/v2/{order}/status")).basic_auth(&key, Some("")).send();
    let paid: Value = status(PAID).await.unwrap().json().await.unwrap();
    assert_eq!(paid["transaction_status"], "settlement");
    let refunded = http.post(format!("{second_url}/v1/transactions/{PAID}/refund")).basic_auth(&key, Some("")).send().await.unwrap();
    assert_eq!(refunded.status(), StatusCode::OK, "a capture made before the restart can be refunded after it");
    wait_for(&notified, PENDING, "settlement").await;
    let after: Value = http.get(format!("{second_url}/v1/transactions/{PENDING}")).send().await.unwrap().json().await.unwrap();
    assert_eq!(after["transaction_id"], before["transaction_id"], "the same transaction, not a new one");
    let paid_notifications = notified.lock().unwrap().iter().filter(|n| n["order_id"] == PAID).count();
    assert_eq!(paid_notifications, 1, "an accepted notification is not sent again after a restart");
}

async fn serve(sandbox: Sandbox) -> (String, tokio::task::JoinHandle<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    (url, tokio::spawn(async move { axum::serve(listener, sandbox.router()).await.unwrap() }))
}

async fn wait_for(notified: &Mutex<Vec<Value>>, order: &str, status: &str) {
    let until = tokio::time::Instant::now() + Duration::from_secs(10);
    while !notified.lock().unwrap().iter().any(|n| n["order_id"] == order && n["transaction_status"] == status) {
        assert!(tokio::time::Instant::now() < until, "no {status} notification for {order}: {:?}", notified.lock().unwrap());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
