//! `POST /v1/payments/notifications`: the provider's webhook. Authenticated by
//! its signature, not a JWT; and since the provider signs only order id,
//! status code and amount, everything else is checked: the status must agree
//! with the signed status code, the transaction must be the one the provider
//! opened for the order, and before a payment changes state the provider itself
//! is asked for the transaction's status. Each (transaction, status) is applied
//! once: a replay answers 200 and changes nothing. Fields the provider adds
//! beyond ours are ignored, as providers add fields over time.
//!
//! The checks before the provider is asked are [`screen`], the change after it
//! [`apply_once`]: the bench's saga ceiling runs both without the call.

use axum::{extract::State, http::StatusCode, Json};
use outflow_events::payment::{PaymentCaptured, PaymentFailed};
use outflow_outbox::{new_event_id, now_millis, TraceContext};
use outflow_provider::signature;
use outflow_service::error::{ApiError, ApiJson};
use secrecy::ExposeSecret;
use serde::{Deserialize, Serialize};
use sqlx::PgConnection;
use tracing::{instrument, warn, Instrument};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::{
    refund,
    state::AppState,
    status::{transition, StatusError, Transition},
};

#[derive(Debug, Deserialize, ToSchema)]
pub struct Notification {
    pub order_id: String,
    pub transaction_id: String,
    pub transaction_status: String,
    pub status_code: String,
    pub gross_amount: String,
    pub signature_key: String,
    /// `accept` or `challenge` with a card capture.
    #[serde(default)]
    pub fraud_status: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct NotificationOutcome {
    /// `applied`, `duplicate`, `no_change` (pending or under review: nothing
    /// recorded), `refunded`
    /// (captured after the payment was given up), `refund_pending` (the same,
    /// the provider's refund to be retried) or `ignored`.
    pub result: &'static str,
    pub payment_status: String,
}

/// The payment as the notification finds it.
struct Payment {
    status: String,
    amount_minor: i64,
    version: i64,
    /// The order's trace, which the webhook's change continues.
    traceparent: Option<String>,
}

#[utoipa::path(
    post, path = "/v1/payments/notifications", request_body = Notification,
    responses(
        (status = 200, body = NotificationOutcome),
        (status = 401, description = "The signature does not match"),
        (status = 404, description = "No payment for this order"),
        (status = 409, description = "The payment is not open at the provider yet, or the provider reports another status"),
        (status = 422, description = "Unknown status, a status that does not go with the signed status code, another transaction, or an amount that is not the payment's"),
        (status = 503, description = "The provider could not be asked; retry"),
    )
)]
#[instrument(skip_all, fields(order_id = %body.order_id, transaction_id = %body.transaction_id, status = %body.transaction_status), err(Debug))]
pub async fn notification(State(state): State<AppState>, ApiJson(body): ApiJson<Notification>) -> Result<Json<NotificationOutcome>, ApiError> {
    match screen(&state, &body).await? {
        Screened::Answered(outcome) => Ok(Json(outcome)),
        Screened::ToApply { order_id, wanted } => {
            confirm_with_provider(&state, &body, wanted).await?;
            apply_once(&state, &body, order_id, wanted).await
        }
    }
}

/// What the webhook makes of a notification before it asks the provider.
pub enum Screened {
    /// Answered without asking: nothing to change, or a replay.
    Answered(NotificationOutcome),
    /// A change, to apply once the provider confirms it.
    ToApply { order_id: Uuid, wanted: Transition },
}

/// Everything the webhook checks before it asks the provider: the signature,
/// the status against the signed code, the payment's amount and transaction,
/// and whether this (transaction, status) was applied already. `pub`, with
/// [`apply_once`], so that the bench's saga ceiling runs the webhook's own
/// statements around the provider call it leaves out.
pub async fn screen(state: &AppState, body: &Notification) -> Result<Screened, ApiError> {
    let key = state.own.server_key.expose_secret();
    if !signature::verify(&body.order_id, &body.status_code, &body.gross_amount, key, &body.signature_key) {
        warn!("notification with a wrong signature");
        return Err(ApiError::unauthorized("invalid_signature", "the signature_key does not match"));
    }
    let wanted = transition(&body.status_code, &body.transaction_status, body.fraud_status.as_deref()).map_err(|e| match e {
        StatusError::Unknown(_) => ApiError::unprocessable("unknown_transaction_status", e.to_string()),
        StatusError::Mismatch { .. } => ApiError::unprocessable("status_mismatch", e.to_string()),
    })?;
    let order_id = Uuid::parse_str(&body.order_id).map_err(|_| ApiError::not_found(format!("no payment for order {}", body.order_id)))?;
    let status = check_against_payment(state, body, order_id, wanted).await?;
    if wanted == Transition::None {
        // Pending, under fraud review, or our own refund: nothing changes and
        // nothing is recorded, so a later decision of the provider on the same
        // transaction is never taken for a replay of this one.
        return Ok(Screened::Answered(NotificationOutcome { result: "no_change", payment_status: status }));
    }
    if already_recorded(state, body, order_id).await? {
        let status = finish_owed_refund(state, order_id).await?;
        return Ok(Screened::Answered(NotificationOutcome { result: "duplicate", payment_status: status }));
    }
    Ok(Screened::ToApply { order_id, wanted })
}

/// The amount must be the payment's and the transaction the one the provider
/// opened for it (a signed body replayed under a new transaction id is refused).
/// A payment whose opened transaction is not stored yet (the consumer that
/// opened it crashed before storing it, or is about to store it) can only be
/// changed on the provider's word: its status check then vouches for the id.
/// Returns the payment's status as it was read.
async fn check_against_payment(state: &AppState, body: &Notification, order_id: Uuid, wanted: Transition) -> Result<String, ApiError> {
    let row: Option<(i64, Option<String>, String)> = sqlx::query_as("select amount_minor, provider_transaction_id, status from payments where order_id = $1")
        .bind(order_id)
        .fetch_optional(&state.base.pool)
        .await?;
    let (amount_minor, opened, status) = row.ok_or_else(|| ApiError::not_found(format!("no payment for order {order_id}")))?;
    if signature::gross_amount(amount_minor) != body.gross_amount {
        return Err(ApiError::unprocessable("amount_mismatch", "gross_amount is not the payment's amount"));
    }
    match opened {
        Some(opened) if opened != body.transaction_id => {
            warn!(expected = %opened, "notification for a transaction the provider did not open for this order");
            Err(ApiError::unprocessable("unknown_transaction", "transaction_id is not the transaction opened for this order"))
        }
        None if wanted == Transition::None => Err(ApiError::conflict("payment_not_open", "the payment is being opened at the provider; retry")),
        _ => Ok(status),
    }
}

async fn already_recorded(state: &AppState, body: &Notification, order_id: Uuid) -> Result<bool, ApiError> {
    Ok(sqlx::query_scalar("select exists (select 1 from provider_notifications where transaction_id = $1 and transaction_status = $2 and order_id = $3)")
        .bind(&body.transaction_id)
        .bind(&body.transaction_status)
        .bind(order_id)
        .fetch_one(&state.base.pool)
        .await?)
}

/// Acts only on what the provider itself reports for the transaction: a
/// notification whose status, transaction or amount the provider does not
/// confirm changes nothing.
async fn confirm_with_provider(state: &AppState, body: &Notification, wanted: Transition) -> Result<(), ApiError> {
    let reported = state
        .own
        .client
        .status(&body.order_id)
        .await
        .map_err(|e| ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "provider_unavailable", format!("the provider's status could not be read; retry: {e:#}")))?
        .ok_or_else(|| ApiError::conflict("provider_disagrees", "the provider knows no transaction for this order"))?;
    let agrees = reported.order_id == body.order_id
        && reported.transaction_id == body.transaction_id
        && reported.gross_amount == body.gross_amount
        && transition(&reported.status_code, &reported.transaction_status, reported.fraud_status.as_deref()).ok() == Some(wanted);
    if !agrees {
        warn!(provider_status = %reported.transaction_status, provider_code = %reported.status_code, "the provider does not confirm the notification");
        return Err(ApiError::conflict(
            "provider_disagrees",
            format!("the provider reports {} ({}) for this transaction", reported.transaction_status, reported.status_code),
        ));
    }
    Ok(())
}

/// Records the notification (a capture or a failure the provider confirmed)
/// and applies it under the payment's row lock; a late capture is recorded as
/// a refund owed, committed, then refunded.
pub async fn apply_once(state: &AppState, body: &Notification, order_id: Uuid, wanted: Transition) -> Result<Json<NotificationOutcome>, ApiError> {
    let mut tx = state.base.pool.begin().await?;
    // Stored here when the provider vouched for it (see check_against_payment).
    sqlx::query("update payments set provider_transaction_id = $2 where order_id = $1 and provider_transaction_id is null")
        .bind(order_id)
        .bind(&body.transaction_id)
        .execute(&mut *tx)
        .await?;
    let payment: Payment = sqlx::query_as::<_, (String, i64, i64, Option<String>)>(
        "select status, amount_minor, version, traceparent from payments where order_id = $1 for update",
    )
    .bind(order_id)
    .fetch_one(&mut *tx)
    .await
    .map(|(status, amount_minor, version, traceparent)| Payment { status, amount_minor, version, traceparent })?;
    let first_time =
        sqlx::query("insert into provider_notifications (transaction_id, transaction_status, order_id) values ($1, $2, $3) on conflict do nothing")
            .bind(&body.transaction_id)
            .bind(&body.transaction_status)
            .bind(order_id)
            .execute(&mut *tx)
            .await?
            .rows_affected()
            == 1;
    if !first_time {
        return Ok(Json(NotificationOutcome { result: "duplicate", payment_status: payment.status }));
    }
    let outcome = match (wanted, payment.status.as_str()) {
        (Transition::None, _) => NotificationOutcome { result: "no_change", payment_status: payment.status },
        (_, "PENDING") => {
            let span = outflow_service::telemetry::continuing("payment notification", payment.traceparent.as_deref());
            apply(state, &mut tx, body, order_id, &payment, wanted == Transition::Capture).instrument(span).await?
        }
        // Money taken after the payment was given up (expired, or its order
        // cancelled): it is owed back; recorded now, refunded after the commit.
        (Transition::Capture, "FAILED") => {
            sqlx::query(
                "update payments set status = 'REFUNDING', transaction_id = $2, failure_reason = 'late_capture', updated_at = now() where order_id = $1",
            )
            .bind(order_id)
            .bind(&body.transaction_id)
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
            let status = finish_owed_refund(state, order_id).await?;
            let result = if status == "REFUNDED" { "refunded" } else { "refund_pending" };
            return Ok(Json(NotificationOutcome { result, payment_status: status }));
        }
        // A late word on a payment that is already settled one way or the other:
        // kept in provider_notifications, the payment stays as it is.
        _ => {
            warn!(payment_status = %payment.status, "notification for a payment that is no longer pending");
            NotificationOutcome { result: "ignored", payment_status: payment.status }
        }
    };
    tx.commit().await?;
    Ok(Json(outcome))
}

/// Finishes a refund that is owed (status `REFUNDING`); the payment's status
/// after. A provider that fails now leaves it owed: the payments consumer's
/// sweep and the provider's own retries of the notification finish it.
async fn finish_owed_refund(state: &AppState, order_id: Uuid) -> Result<String, ApiError> {
    let status: String = sqlx::query_scalar("select status from payments where order_id = $1").bind(order_id).fetch_one(&state.base.pool).await?;
    if status != "REFUNDING" {
        return Ok(status);
    }
    match refund::finish(&state.base.pool, &state.base.outbox, &state.own.client, order_id, &TraceContext::new_root()).await {
        Ok(_) => Ok(sqlx::query_scalar("select status from payments where order_id = $1").bind(order_id).fetch_one(&state.base.pool).await?),
        Err(refund::RefundError::Provider(e)) => {
            warn!(error = format!("{e:#}"), "refund of a late capture failed; it stays owed and is retried");
            Ok(status)
        }
        Err(e) => Err(ApiError::internal(e.into())),
    }
}

async fn apply(
    state: &AppState,
    tx: &mut PgConnection,
    body: &Notification,
    order_id: Uuid,
    payment: &Payment,
    captured: bool,
) -> Result<NotificationOutcome, ApiError> {
    let version = payment.version + 1;
    let (status, reason) = if captured { ("CAPTURED", None) } else { ("FAILED", Some(body.transaction_status.as_str())) };
    sqlx::query("update payments set status = $2, transaction_id = $3, failure_reason = $4, version = $5, updated_at = now() where order_id = $1")
        .bind(order_id)
        .bind(status)
        .bind(&body.transaction_id)
        .bind(reason)
        .bind(version)
        .execute(&mut *tx)
        .await?;
    let trace = TraceContext::child_of(payment.traceparent.as_deref());
    let (event_id, occurred_at, aggregate_id) = (new_event_id(), now_millis(), order_id.to_string());
    let appended = if captured {
        let event = PaymentCaptured {
            event_id,
            aggregate_id: aggregate_id.clone(),
            aggregate_version: version,
            occurred_at,
            order_id: aggregate_id,
            transaction_id: body.transaction_id.clone(),
            amount_minor: payment.amount_minor,
        };
        state.base.outbox.append(tx, &event, &trace).await
    } else {
        let event = PaymentFailed {
            event_id,
            aggregate_id: aggregate_id.clone(),
            aggregate_version: version,
            occurred_at,
            order_id: aggregate_id,
            transaction_id: Some(body.transaction_id.clone()),
            reason: body.transaction_status.clone(),
        };
        state.base.outbox.append(tx, &event, &trace).await
    };
    appended.map_err(|e| ApiError::internal(e.into()))?;
    Ok(NotificationOutcome { result: "applied", payment_status: status.to_owned() })
}
