//! The sandbox against the real payments writer: a transaction it opens ends in
//! a signed notification that the writer accepts and applies.

use std::time::Duration;

use outflow_payments::{settings::Settings, startup};
use outflow_provider_sandbox::{Sandbox, SandboxConfig};
use outflow_stack_tests::{service::TestService, Stack};
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
