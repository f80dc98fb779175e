//! The sandbox's HTTP endpoints (listed in the crate's documentation).

use axum::{
    extract::{Path, State},
    http::{HeaderMap, StatusCode},
    Json,
};
use serde::Deserialize;
use serde_json::json;

use crate::{journal, Behaviour, CreateTransaction, Outcome, Sandbox, Status, Transaction};

pub(crate) async fn create_transaction(
    State(sandbox): State<Sandbox>,
    headers: HeaderMap,
    Json(body): Json<CreateTransaction>,
) -> Result<(StatusCode, Json<Transaction>), (StatusCode, Json<serde_json::Value>)> {
    if !sandbox.authorized(&headers) {
        return Err((StatusCode::UNAUTHORIZED, Json(json!({"error": {"code": "unauthorized", "message": "Basic auth with the server key"}}))));
    }
    let mut transactions = sandbox.transactions.lock().await;
    if let Some(existing) = transactions.get(&body.order_id) {
        return Ok((StatusCode::OK, Json(existing.clone())));
    }
    let token = uuid::Uuid::new_v4().simple().to_string();
    let transaction = Transaction {
        transaction_id: uuid::Uuid::new_v4().to_string(),
        order_id: body.order_id.clone(),
        gross_amount: body.gross_amount,
        redirect_url: format!("http://127.0.0.1:{}/pay/{token}", sandbox.config.port),
        token,
        outcome: None,
        transaction_status: Status::Pending,
        notified: false,
        refunded: false,
    };
    sandbox.keep(&transaction);
    transactions.insert(body.order_id.clone(), transaction.clone());
    drop(transactions);
    tokio::spawn(sandbox.clone().settle_later(body.order_id));
    Ok((StatusCode::CREATED, Json(transaction)))
}

pub(crate) async fn get_transaction(State(sandbox): State<Sandbox>, Path(order_id): Path<String>) -> Result<Json<Transaction>, StatusCode> {
    sandbox.transactions.lock().await.get(&order_id).cloned().map(Json).ok_or(StatusCode::NOT_FOUND)
}

/// Refunds are idempotent: refunding twice is refunding once.
pub(crate) async fn refund_transaction(
    State(sandbox): State<Sandbox>,
    headers: HeaderMap,
    Path(order_id): Path<String>,
) -> Result<Json<Transaction>, StatusCode> {
    change_transaction(&sandbox, &headers, &order_id, |transaction| {
        if !matches!(transaction.transaction_status, Status::Settlement | Status::Refund) {
            return Err(StatusCode::PRECONDITION_FAILED); // nothing was paid
        }
        transaction.refunded = true;
        transaction.transaction_status = Status::Refund;
        Ok(())
    })
    .await
}

/// A merchant's change of one of its transactions, journaled before it is answered.
async fn change_transaction(
    sandbox: &Sandbox,
    headers: &HeaderMap,
    order_id: &str,
    change: impl FnOnce(&mut Transaction) -> Result<(), StatusCode>,
) -> Result<Json<Transaction>, StatusCode> {
    if !sandbox.authorized(headers) {
        return Err(StatusCode::UNAUTHORIZED);
    }
    let mut transactions = sandbox.transactions.lock().await;
    let transaction = transactions.get_mut(order_id).ok_or(StatusCode::NOT_FOUND)?;
    change(transaction)?;
    sandbox.keep(transaction);
    Ok(Json(transaction.clone()))
}

pub(crate) async fn transaction_status(
    State(sandbox): State<Sandbox>,
    headers: HeaderMap,
    Path(order_id): Path<String>,
) -> Result<Json<serde_json::Value>, StatusCode> {
    if !sandbox.authorized(&headers) {
        return Err(StatusCode::UNAUTHORIZED);
    }
    let transactions = sandbox.transactions.lock().await;
    let t = transactions.get(&order_id).ok_or(StatusCode::NOT_FOUND)?;
    Ok(Json(json!({
        "status_code": t.status_code(),
        "transaction_id": t.transaction_id,
        "order_id": t.order_id,
        "gross_amount": t.gross_amount,
        "transaction_status": t.transaction_status,
        "fraud_status": "accept",
    })))
}

/// Cancels a transaction not yet paid; one already settled cannot be (412).
pub(crate) async fn cancel_transaction(
    State(sandbox): State<Sandbox>,
    headers: HeaderMap,
    Path(order_id): Path<String>,
) -> Result<Json<Transaction>, StatusCode> {
    change_transaction(&sandbox, &headers, &order_id, |transaction| match transaction.transaction_status {
        Status::Pending | Status::Cancel => {
            transaction.transaction_status = Status::Cancel;
            Ok(())
        }
        _ => Err(StatusCode::PRECONDITION_FAILED),
    })
    .await
}

/// The customer pays now, whatever the merchant did meanwhile.
pub(crate) async fn settle_now(State(sandbox): State<Sandbox>, Path(order_id): Path<String>) -> Result<StatusCode, StatusCode> {
    decide_now(sandbox, order_id, Outcome::Settle).await
}

/// The provider denies now (even after the merchant gave the payment up).
pub(crate) async fn deny_now(State(sandbox): State<Sandbox>, Path(order_id): Path<String>) -> Result<StatusCode, StatusCode> {
    decide_now(sandbox, order_id, Outcome::Deny).await
}

async fn decide_now(sandbox: Sandbox, order_id: String, outcome: Outcome) -> Result<StatusCode, StatusCode> {
    let transaction = {
        let mut transactions = sandbox.transactions.lock().await;
        let t = transactions.get_mut(&order_id).ok_or(StatusCode::NOT_FOUND)?;
        t.outcome = Some(outcome);
        t.transaction_status = if outcome == Outcome::Settle { Status::Settlement } else { Status::Deny };
        t.notified = false;
        sandbox.keep(t);
        t.clone()
    };
    tokio::spawn(async move { sandbox.notify(transaction).await });
    Ok(StatusCode::ACCEPTED)
}

#[derive(Deserialize)]
pub(crate) struct ForceOutcome {
    outcome: Outcome,
}

pub(crate) async fn force_outcome(State(sandbox): State<Sandbox>, Path(order_id): Path<String>, Json(body): Json<ForceOutcome>) -> StatusCode {
    let mut forced = sandbox.forced.lock().await;
    sandbox.write(&journal::Entry::Forced { order_id: order_id.clone(), outcome: body.outcome });
    forced.insert(order_id, body.outcome);
    StatusCode::NO_CONTENT
}

pub(crate) async fn get_behaviour(State(sandbox): State<Sandbox>) -> Json<Behaviour> {
    Json(sandbox.behaviour())
}

pub(crate) async fn set_behaviour(
    State(sandbox): State<Sandbox>,
    Json(body): Json<Behaviour>,
) -> Result<Json<Behaviour>, (StatusCode, Json<serde_json::Value>)> {
    if !(0.0..=1.0).contains(&body.failure_rate) {
        return Err((
            StatusCode::UNPROCESSABLE_ENTITY,
            Json(json!({"error": {"code": "invalid_failure_rate", "message": "failure_rate must be between 0.0 and 1.0"}})),
        ));
    }
    *sandbox.behaviour.write().expect("behaviour lock") = body;
    tracing::info!(settle_delay_ms = body.settle_delay_ms, failure_rate = body.failure_rate, "behaviour changed");
    Ok(Json(body))
}
