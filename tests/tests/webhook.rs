//! The payments writer's webhook against its own provider sandbox (in this
//! process, so that each test decides what the provider reports; the tests live
//! here because the sandbox crate already depends on the writer's signature
//! code, and the other way round would be a cycle): a notification is applied only
//! when its signature, its status code, its transaction and the provider's own
//! status agree; anything else gets a 4xx and writes nothing.

use std::time::Duration;

use outflow_payments::{settings::Settings, startup};
use outflow_provider::signature;
use outflow_provider_sandbox::{Sandbox, SandboxConfig};
use outflow_service::auth::Role;
use outflow_stack_tests::service::{assert_error, bad_tokens, TestService};
use secrecy::SecretString;
use serde_json::{json, Value};

const ORDER: &str = "0190b9a2-7c3e-7000-8000-000000000001";
const GROSS: &str = "123.45";

struct App {
    app: TestService,
    sandbox: String,
    /// The transaction the provider opened for ORDER.
    transaction: String,
}

/// The writer with a PENDING payment of ORDER, opened at a sandbox that never
/// decides on its own (the tests settle or deny through its controls).
async fn spawn_app(status: &str) -> App {
    spawn_app_notifying(status, true).await
}

/// [`spawn_app`] with a sandbox whose own notifications reach the writer, or
/// go nowhere (`notifies` false: the test sends the provider's words itself).
async fn spawn_app_notifying(status: &str, notifies: bool) -> App {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let sandbox = format!("http://{}", listener.local_addr().unwrap());
    let arrange = format!(
        "insert into payments (order_id, customer_id, status, amount_minor, currency, version) values ('{ORDER}', 'alice', '{status}', 12345, 'EUR', 1)"
    );
    let app = TestService::spawn("payments", &arrange, |service| {
        let key = SecretString::from(outflow_stack_tests::Stack::from_env().provider_server_key);
        startup::build(Settings::defaults_with(service, key, &sandbox))
    })
    .await;
    let config = SandboxConfig {
        port: listener.local_addr().unwrap().port(),
        notify_url: if notifies { app.url("/v1/payments/notifications") } else { "http://127.0.0.1:9/nowhere".into() },
        server_key: app.stack.provider_server_key.clone(),
        settle_delay_ms: 3_600_000,
        failure_rate: 0.0,
        journal: None,
    };
    tokio::spawn(async move { axum::serve(listener, Sandbox::new(config).router()).await });
    let opened: Value = app
        .http
        .post(format!("{sandbox}/v1/transactions"))
        .basic_auth(&app.stack.provider_server_key, Some(""))
        .json(&json!({"order_id": ORDER, "gross_amount": GROSS}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let transaction = opened["transaction_id"].as_str().unwrap().to_owned();
    // What the payments consumer stores once the provider opened the transaction.
    sqlx::query("update payments set provider_transaction_id = $1, provider_token = 'tok', redirect_url = 'http://127.0.0.1/pay/tok'")
        .bind(&transaction)
        .execute(&app.pool)
        .await
        .unwrap();
    App { app, sandbox, transaction }
}

fn signed(app: &TestService, transaction_id: &str, status_code: &str, status: &str, gross_amount: &str) -> Value {
    let signature_key = signature::sign(ORDER, status_code, gross_amount, &app.stack.provider_server_key);
    json!({
        "order_id": ORDER, "transaction_id": transaction_id, "transaction_status": status,
        "status_code": status_code, "gross_amount": gross_amount, "signature_key": signature_key,
        "payment_type": "bank_transfer"
    })
}

async fn notify(app: &TestService, body: &Value) -> reqwest::Response {
    app.http.post(app.url("/v1/payments/notifications")).json(body).send().await.unwrap()
}

async fn payment(app: &TestService) -> (String, Option<String>, i64) {
    sqlx::query_as("select status, failure_reason, version from payments").fetch_one(&app.pool).await.unwrap()
}

/// The provider decides (`settle` or `deny`) and sends its notification.
async fn provider_decides(test: &App, decision: &str) {
    let response = test.app.http.post(format!("{}/sandbox/orders/{ORDER}/{decision}", test.sandbox)).send().await.unwrap();
    assert_eq!(response.status().as_u16(), 202);
}

async fn wait_status(app: &TestService, status: &str) {
    let until = tokio::time::Instant::now() + Duration::from_secs(15);
    while payment(app).await.0 != status {
        assert!(tokio::time::Instant::now() < until, "payment not {status}: {:?}", payment(app).await);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
#[ignore = "needs the stack: scripts/up (scripts/test runs it)"]
async fn a_genuine_settlement_captures_once_and_a_replay_changes_nothing() {
    let test = spawn_app("PENDING").await;
    let (app, transaction) = (&test.app, test.transaction.as_str());
    provider_decides(&test, "settle").await;
    wait_status(app, "CAPTURED").await;
    let changes = app.probe.changes().await.unwrap().len();

    let replay = notify(app, &signed(app, transaction, "200", "settlement", GROSS)).await;
    assert_eq!(replay.status().as_u16(), 200);
    assert_eq!(replay.json::<Value>().await.unwrap()["result"], "duplicate");
    // A signed denial of the same transaction: the provider reports it settled.
    assert_error(notify(app, &signed(app, transaction, "202", "deny", GROSS)).await, 409, "provider_disagrees").await;
    assert_eq!(app.probe.changes().await.unwrap().len(), changes, "a replayed or contradicted notification writes nothing");

    assert_eq!(payment(app).await, ("CAPTURED".into(), None, 2));
    assert_eq!(app.probe.outbox_event_types().await.unwrap(), vec!["PaymentCaptured"]);
    test.app.cleanup().await;
}

#[tokio::test]
#[ignore = "needs the stack: scripts/up (scripts/test runs it)"]
async fn a_genuine_denial_fails_the_payment_with_its_reason() {
    let test = spawn_app("PENDING").await;
    let app = &test.app;
    let pending: Value = notify(app, &signed(app, &test.transaction, "201", "pending", GROSS)).await.json().await.unwrap();
    assert_eq!(pending["result"], "no_change");
    provider_decides(&test, "deny").await;
    wait_status(app, "FAILED").await;
    assert_eq!(payment(app).await, ("FAILED".into(), Some("deny".into()), 2));
    assert_eq!(app.probe.outbox_event_types().await.unwrap(), vec!["PaymentFailed"]);
    test.app.cleanup().await;
}

/// The forgery: the provider signed a "pending" (201), the body says
/// "settlement"; and settlements the provider itself does not report.
#[tokio::test]
#[ignore = "needs the stack: scripts/up (scripts/test runs it)"]
async fn a_settlement_that_the_signed_code_or_the_provider_does_not_confirm_captures_nothing() {
    let test = spawn_app("PENDING").await;
    let (app, transaction) = (&test.app, test.transaction.as_str());
    let arranged = app.probe.changes().await.unwrap();
    assert_error(notify(app, &signed(app, transaction, "201", "settlement", GROSS)).await, 422, "status_mismatch").await;
    assert_error(notify(app, &signed(app, transaction, "200", "capture", GROSS)).await, 422, "status_mismatch").await;
    assert_error(notify(app, &signed(app, transaction, "202", "settlement", GROSS)).await, 422, "status_mismatch").await;
    // Correctly signed and consistent, but the provider says the transaction is still pending.
    assert_error(notify(app, &signed(app, transaction, "200", "settlement", GROSS)).await, 409, "provider_disagrees").await;
    assert_error(notify(app, &signed(app, transaction, "202", "deny", GROSS)).await, 409, "provider_disagrees").await;
    // Replayed under a transaction id the provider never opened for this order.
    assert_error(notify(app, &signed(app, "trx-replayed", "200", "settlement", GROSS)).await, 422, "unknown_transaction").await;

    assert_eq!(app.probe.changes().await.unwrap(), arranged, "a refused notification writes nothing");
    assert_eq!(payment(app).await, ("PENDING".into(), None, 1));
    test.app.cleanup().await;
}

/// The consumer that opened the transaction may not have stored it yet (or
/// crashed before it could): a pending word is refused for a retry, a capture
/// is applied on the provider's word, which then pins the transaction.
#[tokio::test]
#[ignore = "needs the stack: scripts/up (scripts/test runs it)"]
async fn a_capture_before_the_transaction_is_stored_is_applied_on_the_providers_word() {
    let test = spawn_app("PENDING").await;
    let app = &test.app;
    sqlx::query("update payments set provider_transaction_id = null").execute(&app.pool).await.unwrap();
    let changes = app.probe.changes().await.unwrap().len();
    assert_error(notify(app, &signed(app, &test.transaction, "201", "pending", GROSS)).await, 409, "payment_not_open").await;
    assert_error(notify(app, &signed(app, &test.transaction, "200", "settlement", GROSS)).await, 409, "provider_disagrees").await;
    assert_eq!(app.probe.changes().await.unwrap().len(), changes, "nothing the provider did not vouch for is written");
    provider_decides(&test, "settle").await;
    wait_status(app, "CAPTURED").await;
    let stored: Option<String> = sqlx::query_scalar("select provider_transaction_id from payments").fetch_one(&app.pool).await.unwrap();
    assert_eq!(stored.as_deref(), Some(test.transaction.as_str()));
    assert_error(notify(app, &signed(app, "trx-other", "200", "settlement", GROSS)).await, 422, "unknown_transaction").await;
    test.app.cleanup().await;
}

/// A legitimate capture under fraud review (201) and then accepted (200), the
/// same transaction status twice: the review is not recorded, so the
/// acceptance is not taken for a replay of it.
#[tokio::test]
#[ignore = "needs the stack: scripts/up (scripts/test runs it)"]
async fn a_capture_under_review_then_accepted_is_applied() {
    let test = spawn_app_notifying("PENDING", false).await;
    let app = &test.app;
    let mut review = signed(app, &test.transaction, "201", "capture", GROSS);
    review["fraud_status"] = json!("challenge");
    let reviewed: Value = notify(app, &review).await.json().await.unwrap();
    assert_eq!(reviewed["result"], "no_change");
    provider_decides(&test, "settle").await;
    let mut accepted = signed(app, &test.transaction, "200", "capture", GROSS);
    accepted["fraud_status"] = json!("accept");
    let applied: Value = notify(app, &accepted).await.json().await.unwrap();
    assert_eq!((applied["result"].as_str(), applied["payment_status"].as_str()), (Some("applied"), Some("CAPTURED")));
    assert_eq!(app.probe.outbox_event_types().await.unwrap(), vec!["PaymentCaptured"]);
    test.app.cleanup().await;
}

/// A capture of a payment given up (expired or its order cancelled) is owed
/// back: recorded, refunded at the provider after the commit, then finished.
#[tokio::test]
#[ignore = "needs the stack: scripts/up (scripts/test runs it)"]
async fn a_capture_after_the_payment_was_given_up_is_refunded_at_the_provider() {
    let test = spawn_app("FAILED").await;
    let app = &test.app;
    provider_decides(&test, "settle").await;
    wait_status(app, "REFUNDED").await;
    assert_eq!(payment(app).await, ("REFUNDED".into(), Some("late_capture".into()), 2));
    assert_eq!(app.probe.outbox_event_types().await.unwrap(), vec!["PaymentRefunded"]);
    let at_provider: Value = app.http.get(format!("{}/v1/transactions/{ORDER}", test.sandbox)).send().await.unwrap().json().await.unwrap();
    assert_eq!((at_provider["refunded"].as_bool(), at_provider["transaction_status"].as_str()), (Some(true), Some("refund")));
    test.app.cleanup().await;
}

#[tokio::test]
#[ignore = "needs the stack: scripts/up (scripts/test runs it)"]
async fn forged_mismatched_and_malformed_notifications_are_refused_and_write_nothing() {
    let test = spawn_app("PENDING").await;
    let app = &test.app;
    let good = signed(app, &test.transaction, "200", "settlement", GROSS);
    let arranged = app.probe.changes().await.unwrap();

    let mut forged = good.clone();
    forged["signature_key"] = json!(signature::sign(ORDER, "200", GROSS, "guessed-key"));
    assert_error(notify(app, &forged).await, 401, "invalid_signature").await;
    let mut tampered = good.clone();
    tampered["gross_amount"] = json!("1.00");
    assert_error(notify(app, &tampered).await, 401, "invalid_signature").await;
    let mut recoded = good.clone();
    recoded["status_code"] = json!("201");
    assert_error(notify(app, &recoded).await, 401, "invalid_signature").await;
    let mut unsigned = good.clone();
    unsigned["signature_key"] = json!("");
    assert_error(notify(app, &unsigned).await, 401, "invalid_signature").await;

    assert_error(notify(app, &signed(app, &test.transaction, "200", "settlement", "1.00")).await, 422, "amount_mismatch").await;
    assert_error(notify(app, &signed(app, &test.transaction, "200", "refund_maybe", GROSS)).await, 422, "unknown_transaction_status").await;
    let mut other_order = good.clone();
    let other = "0190b9a2-7c3e-7000-8000-0000000000ff";
    other_order["order_id"] = json!(other);
    other_order["signature_key"] = json!(signature::sign(other, "200", GROSS, &app.stack.provider_server_key));
    assert_error(notify(app, &other_order).await, 404, "not_found").await;
    let mut missing = good.clone();
    missing.as_object_mut().unwrap().remove("transaction_id");
    assert_error(notify(app, &missing).await, 422, "invalid_body").await;
    let malformed = app.http.post(app.url("/v1/payments/notifications")).header("content-type", "application/json").body("{").send().await.unwrap();
    assert_error(malformed, 400, "malformed_json").await;
    let huge = app
        .http
        .post(app.url("/v1/payments/notifications"))
        .header("content-type", "application/json")
        .body(format!("{{\"pad\":\"{}\"}}", "x".repeat(65 * 1024)))
        .send()
        .await
        .unwrap();
    assert_error(huge, 413, "body_too_large").await;

    assert_eq!(app.probe.changes().await.unwrap(), arranged, "a refused notification writes nothing");
    assert_eq!(payment(app).await, ("PENDING".into(), None, 1));
    test.app.cleanup().await;
}

#[tokio::test]
#[ignore = "needs the stack: scripts/up (scripts/test runs it)"]
async fn a_payment_is_shown_to_its_owner_and_admins_only() {
    let test = spawn_app("PENDING").await;
    let app = &test.app;
    let get = |token: String, order: &str| app.http.get(app.url(&format!("/v1/payments/{order}"))).bearer_auth(token).send();
    let mine: Value = get(app.token("alice", Role::Customer), ORDER).await.unwrap().json().await.unwrap();
    assert_eq!((mine["status"].as_str(), mine["amount_minor"].as_i64()), (Some("PENDING"), Some(12345)));
    assert_eq!(get(app.token("root", Role::Admin), ORDER).await.unwrap().status().as_u16(), 200);
    assert_error(get(app.token("mallory", Role::Customer), ORDER).await.unwrap(), 403, "forbidden").await;
    assert_error(get(app.token("alice", Role::Customer), "0190b9a2-7c3e-7000-8000-0000000000ff").await.unwrap(), 404, "not_found").await;
    for bad in bad_tokens(&app.jwt, "alice") {
        assert_error(get(bad, ORDER).await.unwrap(), 401, "invalid_token").await;
    }
    test.app.cleanup().await;
}
