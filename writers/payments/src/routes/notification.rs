//! `POST /v1/payments/notifications`: the provider's webhook. Authenticated by
//! its signature, not a JWT. Each (transaction, status) is applied once: a
//! replayed notification answers 200 and changes nothing. Fields the provider
//! adds beyond ours are ignored, as providers add fields over time.

use axum::{extract::State, Json};
use outflow_events::payment::{PaymentCaptured, PaymentFailed, PaymentRefunded};
use outflow_http::error::{ApiError, ApiJson};
use outflow_outbox::{new_event_id, now_millis, TraceContext};
use secrecy::ExposeSecret;
use serde::{Deserialize, Serialize};
use sqlx::{PgConnection, Row};
use tracing::{instrument, warn};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::{signature, startup::AppState};

#[derive(Debug, Deserialize, ToSchema)]
pub struct Notification {
    pub order_id: String,
    pub transaction_id: String,
    pub transaction_status: String,
    pub status_code: String,
    pub gross_amount: String,
    pub signature_key: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct NotificationOutcome {
    /// `applied`, `duplicate`, `recorded` (no change of state), `refunded`
    /// (captured after the payment was given up) or `ignored`.
    pub result: &'static str,
    pub payment_status: String,
}

/// What a provider status means for the payment.
#[derive(Clone, Copy)]
enum Transition {
    Capture,
    Fail,
    None,
}

fn transition(transaction_status: &str) -> Option<Transition> {
    match transaction_status {
        "settlement" | "capture" => Some(Transition::Capture),
        "deny" | "cancel" | "expire" | "failure" => Some(Transition::Fail),
        "pending" => Some(Transition::None),
        _ => None,
    }
}

#[utoipa::path(
    post, path = "/v1/payments/notifications", request_body = Notification,
    responses(
        (status = 200, body = NotificationOutcome),
        (status = 401, description = "The signature does not match"),
        (status = 404, description = "No payment for this order"),
        (status = 422, description = "Unknown status, or an amount that is not the payment's"),
    )
)]
#[instrument(skip_all, fields(order_id = %body.order_id, transaction_id = %body.transaction_id, status = %body.transaction_status), err(Debug))]
pub async fn notification(State(state): State<AppState>, ApiJson(body): ApiJson<Notification>) -> Result<Json<NotificationOutcome>, ApiError> {
    let key = state.provider_server_key.expose_secret();
    if !signature::verify(&body.order_id, &body.status_code, &body.gross_amount, key, &body.signature_key) {
        warn!("notification with a wrong signature");
        return Err(ApiError::unauthorized("invalid_signature", "the signature_key does not match"));
    }
    let transition = transition(&body.transaction_status)
        .ok_or_else(|| ApiError::unprocessable("unknown_transaction_status", format!("unknown transaction_status {}", body.transaction_status)))?;
    let order_id = Uuid::parse_str(&body.order_id).map_err(|_| ApiError::not_found(format!("no payment for order {}", body.order_id)))?;

    let mut tx = state.base.pool.begin().await?;
    let payment = sqlx::query("select status, amount_minor, version from payments where order_id = $1 for update")
        .bind(order_id)
        .fetch_optional(&mut *tx)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no payment for order {order_id}")))?;
    let status: String = payment.get("status");
    if signature::gross_amount(payment.get("amount_minor")) != body.gross_amount {
        return Err(ApiError::unprocessable("amount_mismatch", "gross_amount is not the payment's amount"));
    }
    let first_time = sqlx::query(
        "insert into provider_notifications (transaction_id, transaction_status, order_id) values ($1, $2, $3) on conflict do nothing",
    )
    .bind(&body.transaction_id)
    .bind(&body.transaction_status)
    .bind(order_id)
    .execute(&mut *tx)
    .await?
    .rows_affected()
        == 1;
    if !first_time {
        return Ok(Json(NotificationOutcome { result: "duplicate", payment_status: status }));
    }
    let outcome = match (transition, status.as_str()) {
        (Transition::None, _) => NotificationOutcome { result: "recorded", payment_status: status },
        (_, "PENDING") => {
            let version: i64 = payment.get::<i64, _>("version") + 1;
            apply(&state, &mut tx, &body, order_id, version, matches!(transition, Transition::Capture)).await?
        }
        // Money taken after the payment was given up (expired, or its order
        // cancelled): give it back at once, so no customer pays for a cancelled order.
        (Transition::Capture, "FAILED") => {
            state.provider.refund(&body.order_id).await.map_err(|e| ApiError::new(axum::http::StatusCode::SERVICE_UNAVAILABLE, "refund_failed", format!("refunding the late capture failed; retry: {e}")))?;
            let version: i64 = payment.get::<i64, _>("version") + 1;
            refund_late_capture(&state, &mut tx, &body, order_id, version, payment.get("amount_minor")).await?
        }
        // A late word on a payment that is already settled one way or the other:
        // kept in provider_notifications, the payment stays as it is.
        _ => {
            warn!(payment_status = %status, "notification for a payment that is no longer pending");
            NotificationOutcome { result: "ignored", payment_status: status }
        }
    };
    tx.commit().await?;
    Ok(Json(outcome))
}

async fn apply(
    state: &AppState,
    tx: &mut PgConnection,
    body: &Notification,
    order_id: Uuid,
    version: i64,
    captured: bool,
) -> Result<NotificationOutcome, ApiError> {
    let (status, reason) = if captured { ("CAPTURED", None) } else { ("FAILED", Some(body.transaction_status.as_str())) };
    sqlx::query("update payments set status = $2, transaction_id = $3, failure_reason = $4, version = $5, updated_at = now() where order_id = $1")
        .bind(order_id)
        .bind(status)
        .bind(&body.transaction_id)
        .bind(reason)
        .bind(version)
        .execute(&mut *tx)
        .await?;
    let trace = TraceContext::new_root();
    let (event_id, occurred_at, aggregate_id) = (new_event_id(), now_millis(), order_id.to_string());
    let appended = if captured {
        let amount_minor: i64 = sqlx::query_scalar("select amount_minor from payments where order_id = $1").bind(order_id).fetch_one(&mut *tx).await?;
        let event = PaymentCaptured { event_id, aggregate_id: aggregate_id.clone(), aggregate_version: version, occurred_at, order_id: aggregate_id, transaction_id: body.transaction_id.clone(), amount_minor };
        state.base.outbox.append(tx, &event, &trace).await
    } else {
        let event = PaymentFailed { event_id, aggregate_id: aggregate_id.clone(), aggregate_version: version, occurred_at, order_id: aggregate_id, transaction_id: Some(body.transaction_id.clone()), reason: body.transaction_status.clone() };
        state.base.outbox.append(tx, &event, &trace).await
    };
    appended.map_err(|e| ApiError::internal(e.into()))?;
    Ok(NotificationOutcome { result: "applied", payment_status: status.to_owned() })
}

async fn refund_late_capture(state: &AppState, tx: &mut PgConnection, body: &Notification, order_id: Uuid, version: i64, amount_minor: i64) -> Result<NotificationOutcome, ApiError> {
    sqlx::query("update payments set status = 'REFUNDED', transaction_id = $2, failure_reason = 'late_capture', version = $3, updated_at = now() where order_id = $1")
        .bind(order_id)
        .bind(&body.transaction_id)
        .bind(version)
        .execute(&mut *tx)
        .await?;
    let id = order_id.to_string();
    let event = PaymentRefunded { event_id: new_event_id(), aggregate_id: id.clone(), aggregate_version: version, occurred_at: now_millis(), order_id: id, amount_minor, reason: "late_capture".into() };
    state.base.outbox.append(tx, &event, &TraceContext::new_root()).await.map_err(|e| ApiError::internal(e.into()))?;
    Ok(NotificationOutcome { result: "refunded", payment_status: "REFUNDED".into() })
}
