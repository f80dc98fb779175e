use outflow_http::auth::Role;
use outflow_payments::{settings::Settings, signature, startup};
use outflow_stack_tests::service::{assert_error, bad_tokens, TestService};
use secrecy::SecretString;
use serde_json::{json, Value};

const ORDER: &str = "0190b9a2-7c3e-7000-8000-000000000001";

async fn spawn_app() -> TestService {
    let arrange = format!(
        "insert into payments (order_id, customer_id, status, amount_minor, currency, provider_token, redirect_url, version)
         values ('{ORDER}', 'alice', 'PENDING', 12345, 'EUR', 'tok', 'http://127.0.0.1:7199/pay/tok', 1)"
    );
    TestService::spawn("payments", &arrange, |service| {
        let key = SecretString::from(outflow_stack_tests::Stack::from_env().provider_server_key);
        startup::build(Settings::defaults_with(service, key, "http://127.0.0.1:7199"))
    })
    .await
}

fn notification(app: &TestService, transaction_id: &str, status: &str, gross_amount: &str) -> Value {
    let status_code = if status == "settlement" { "200" } else { "202" };
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

#[tokio::test]
#[ignore = "needs the stack: scripts/up (scripts/test runs it)"]
async fn a_signed_settlement_captures_once_and_a_replay_changes_nothing() {
    let app = spawn_app().await;
    let body = notification(&app, "trx-1", "settlement", "123.45");
    let first: Value = notify(&app, &body).await.json().await.unwrap();
    assert_eq!((first["result"].as_str(), first["payment_status"].as_str()), (Some("applied"), Some("CAPTURED")));
    let changes = app.probe.changes().await.unwrap().len();

    let replay = notify(&app, &body).await;
    assert_eq!(replay.status().as_u16(), 200);
    assert_eq!(replay.json::<Value>().await.unwrap()["result"], "duplicate");
    assert_eq!(app.probe.changes().await.unwrap().len(), changes, "a replayed notification writes nothing");
    // A later denial of the same payment does not undo the capture.
    let late: Value = notify(&app, &notification(&app, "trx-2", "deny", "123.45")).await.json().await.unwrap();
    assert_eq!(late["result"], "ignored");

    assert_eq!(payment(&app).await, ("CAPTURED".into(), None, 2));
    assert_eq!(app.probe.outbox_event_types().await.unwrap(), vec!["PaymentCaptured"]);
    app.cleanup().await;
}

#[tokio::test]
#[ignore = "needs the stack: scripts/up (scripts/test runs it)"]
async fn a_signed_denial_fails_the_payment_with_its_reason() {
    let app = spawn_app().await;
    let pending: Value = notify(&app, &notification(&app, "trx-1", "pending", "123.45")).await.json().await.unwrap();
    assert_eq!(pending["result"], "recorded");
    let denied: Value = notify(&app, &notification(&app, "trx-1", "deny", "123.45")).await.json().await.unwrap();
    assert_eq!((denied["result"].as_str(), denied["payment_status"].as_str()), (Some("applied"), Some("FAILED")));
    assert_eq!(payment(&app).await, ("FAILED".into(), Some("deny".into()), 2));
    assert_eq!(app.probe.outbox_event_types().await.unwrap(), vec!["PaymentFailed"]);
    app.cleanup().await;
}

#[tokio::test]
#[ignore = "needs the stack: scripts/up (scripts/test runs it)"]
async fn forged_mismatched_and_malformed_notifications_are_refused_and_write_nothing() {
    let app = spawn_app().await;
    let good = notification(&app, "trx-1", "settlement", "123.45");

    let mut forged = good.clone();
    forged["signature_key"] = json!(signature::sign(ORDER, "200", "123.45", "guessed-key"));
    assert_error(notify(&app, &forged).await, 401, "invalid_signature").await;
    let mut tampered = good.clone();
    tampered["gross_amount"] = json!("1.00");
    assert_error(notify(&app, &tampered).await, 401, "invalid_signature").await;
    let mut unsigned = good.clone();
    unsigned["signature_key"] = json!("");
    assert_error(notify(&app, &unsigned).await, 401, "invalid_signature").await;

    assert_error(notify(&app, &notification(&app, "trx-1", "settlement", "1.00")).await, 422, "amount_mismatch").await;
    assert_error(notify(&app, &notification(&app, "trx-1", "refund_maybe", "123.45")).await, 422, "unknown_transaction_status").await;
    let mut other_order = good.clone();
    let other = "0190b9a2-7c3e-7000-8000-0000000000ff";
    other_order["order_id"] = json!(other);
    other_order["signature_key"] = json!(signature::sign(other, "200", "123.45", &app.stack.provider_server_key));
    assert_error(notify(&app, &other_order).await, 404, "not_found").await;
    let mut missing = good.clone();
    missing.as_object_mut().unwrap().remove("transaction_id");
    assert_error(notify(&app, &missing).await, 422, "invalid_body").await;
    let malformed = app.http.post(app.url("/v1/payments/notifications")).header("content-type", "application/json").body("{").send().await.unwrap();
    assert_error(malformed, 400, "malformed_json").await;
    let huge = app.http.post(app.url("/v1/payments/notifications")).header("content-type", "application/json").body(format!("{{\"pad\":\"{}\"}}", "x".repeat(65 * 1024))).send().await.unwrap();
    assert_error(huge, 413, "body_too_large").await;

    assert_eq!(app.probe.changes().await.unwrap(), Vec::<String>::new(), "a refused notification writes nothing");
    assert_eq!(payment(&app).await, ("PENDING".into(), None, 1));
    app.cleanup().await;
}

#[tokio::test]
#[ignore = "needs the stack: scripts/up (scripts/test runs it)"]
async fn a_payment_is_shown_to_its_owner_and_admins_only() {
    let app = spawn_app().await;
    let get = |token: String, order: &str| app.http.get(app.url(&format!("/v1/payments/{order}"))).bearer_auth(token).send();
    let mine: Value = get(app.token("alice", Role::Customer), ORDER).await.unwrap().json().await.unwrap();
    assert_eq!((mine["status"].as_str(), mine["amount_minor"].as_i64()), (Some("PENDING"), Some(12345)));
    assert_eq!(get(app.token("root", Role::Admin), ORDER).await.unwrap().status().as_u16(), 200);
    assert_error(get(app.token("mallory", Role::Customer), ORDER).await.unwrap(), 403, "forbidden").await;
    assert_error(get(app.token("alice", Role::Customer), "0190b9a2-7c3e-7000-8000-0000000000ff").await.unwrap(), 404, "not_found").await;
    for bad in bad_tokens(&app.jwt, "alice") {
        assert_error(get(bad, ORDER).await.unwrap(), 401, "invalid_token").await;
    }
    app.cleanup().await;
}
