//! `POST /v1/shipments/callbacks`: the carrier's callback. Authenticated by
//! its signature (HMAC-SHA256 over the timestamp and the exact body, in
//! headers), not a JWT; a timestamp outside the freshness window is refused,
//! so a captured callback cannot be replayed later. Before a shipment changes
//! state the carrier itself is asked: a callback it does not confirm changes
//! nothing. Each shipment ends once: a repeated callback answers 200 and
//! changes nothing.

use axum::{body::Bytes, extract::State, http::HeaderMap, http::StatusCode, Json};
use outflow_carrier::{signature, Callback, ShipmentStatus};
use outflow_events::shipment::{ShipmentDelivered, ShipmentFailed};
use outflow_outbox::{new_event_id, now_millis, TraceContext};
use outflow_service::error::ApiError;
use secrecy::ExposeSecret;
use serde::Serialize;
use sqlx::PgConnection;
use tracing::{instrument, warn, Instrument};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::state::AppState;

/// How far a callback's timestamp may be from our clock.
pub const FRESH_WITHIN_SECS: i64 = 300;

/// The callback's body as the carrier sends it (`outflow_carrier::Callback`),
/// described for the OpenAPI document; the handler reads the raw bytes, since
/// the signature is over them.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct CallbackBody {
    shipment_id: String,
    #[schema(format = "uuid")]
    order_id: String,
    /// `in_transit`, `delivered` or `failed`.
    status: String,
    /// Why a shipment failed, in the carrier's words.
    reason: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct CallbackOutcome {
    /// `applied`, `duplicate`, `no_change` (still in transit) or `ignored`
    /// (the shipment had already ended the other way).
    pub result: &'static str,
    pub shipment_status: String,
}

#[utoipa::path(
    post, path = "/v1/shipments/callbacks",
    request_body(content = CallbackBody, content_type = "application/json", description = "Signed in the `x-carrier-timestamp` (unix seconds) and `x-carrier-signature` (hex HMAC-SHA256 over timestamp + \".\" + body) headers"),
    responses(
        (status = 200, body = CallbackOutcome),
        (status = 400, description = "The body is not a callback"),
        (status = 401, description = "The signature does not match, or the timestamp is missing or stale"),
        (status = 404, description = "No shipment for this order"),
        (status = 409, description = "The shipment is not open at the carrier yet, or the carrier reports another status"),
        (status = 422, description = "Another shipment than the one the carrier took for this order"),
        (status = 503, description = "The carrier could not be asked; retry"),
    )
)]
#[instrument(skip_all, err(Debug))]
pub async fn callback(State(state): State<AppState>, headers: HeaderMap, body: Bytes) -> Result<Json<CallbackOutcome>, ApiError> {
    authenticate(&state, &headers, &body)?;
    let callback: Callback =
        serde_json::from_slice(&body).map_err(|e| ApiError::bad_request("invalid_callback", format!("the body is not a carrier callback: {e}")))?;
    tracing::Span::current().record("order_id", callback.order_id.as_str());
    let order_id = Uuid::parse_str(&callback.order_id).map_err(|_| ApiError::not_found(format!("no shipment for order {}", callback.order_id)))?;
    let status = check_against_shipment(&state, &callback, order_id).await?;
    if callback.status == ShipmentStatus::InTransit {
        return Ok(Json(CallbackOutcome { result: "no_change", shipment_status: status }));
    }
    confirm_with_carrier(&state, &callback).await?;
    apply_once(&state, &callback, order_id).await.map(Json)
}

fn authenticate(state: &AppState, headers: &HeaderMap, body: &[u8]) -> Result<(), ApiError> {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or_default();
    let (timestamp, given) = (header(signature::TIMESTAMP_HEADER), header(signature::SIGNATURE_HEADER));
    if !signature::fresh(timestamp, chrono::Utc::now().timestamp(), FRESH_WITHIN_SECS) {
        warn!("carrier callback with a missing or stale timestamp");
        return Err(ApiError::unauthorized("stale_timestamp", format!("{} must be the unix time within {FRESH_WITHIN_SECS} s", signature::TIMESTAMP_HEADER)));
    }
    if !signature::verify(state.own.key.expose_secret(), timestamp, body, given) {
        warn!("carrier callback with a wrong signature");
        return Err(ApiError::unauthorized("invalid_signature", format!("{} does not match", signature::SIGNATURE_HEADER)));
    }
    Ok(())
}

/// The shipment must exist, be open at the carrier, and be the one the
/// carrier took for the order; returns its status as read.
async fn check_against_shipment(state: &AppState, callback: &Callback, order_id: Uuid) -> Result<String, ApiError> {
    let row: Option<(String, Option<String>)> =
        sqlx::query_as("select status, shipment_id from shipments where order_id = $1").bind(order_id).fetch_optional(&state.base.pool).await?;
    let (status, shipment_id) = row.ok_or_else(|| ApiError::not_found(format!("no shipment for order {order_id}")))?;
    match shipment_id {
        // The consumer asked the carrier and has not stored its answer yet: the carrier retries.
        None => Err(ApiError::conflict("shipment_not_open", "the shipment is being handed to the carrier; retry")),
        Some(known) if known != callback.shipment_id => {
            warn!(expected = %known, given = %callback.shipment_id, "callback for a shipment the carrier did not take for this order");
            Err(ApiError::unprocessable("unknown_shipment", "shipment_id is not the shipment the carrier took for this order"))
        }
        Some(_) => Ok(status),
    }
}

async fn confirm_with_carrier(state: &AppState, callback: &Callback) -> Result<(), ApiError> {
    let reported = state
        .own
        .client
        .status(&callback.order_id)
        .await
        .map_err(|e| ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "carrier_unavailable", format!("the carrier's status could not be read; retry: {e:#}")))?
        .ok_or_else(|| ApiError::conflict("carrier_disagrees", "the carrier knows no shipment for this order"))?;
    if reported.shipment_id != callback.shipment_id || reported.status != callback.status {
        warn!(carrier_status = ?reported.status, "the carrier does not confirm the callback");
        return Err(ApiError::conflict("carrier_disagrees", format!("the carrier reports {:?} for this shipment", reported.status)));
    }
    Ok(())
}

/// Ends an IN_TRANSIT shipment as the callback says, with its event, under
/// the row lock; the change continues the order's trace.
async fn apply_once(state: &AppState, callback: &Callback, order_id: Uuid) -> Result<CallbackOutcome, ApiError> {
    let wanted = if callback.status == ShipmentStatus::Delivered { "DELIVERED" } else { "FAILED" };
    let mut tx = state.base.pool.begin().await?;
    let (status, version, traceparent): (String, i64, Option<String>) =
        sqlx::query_as("select status, version, traceparent from shipments where order_id = $1 for update").bind(order_id).fetch_one(&mut *tx).await?;
    if status == wanted {
        return Ok(CallbackOutcome { result: "duplicate", shipment_status: status });
    }
    if status != "IN_TRANSIT" {
        warn!(shipment_status = %status, "callback for a shipment that has ended the other way");
        return Ok(CallbackOutcome { result: "ignored", shipment_status: status });
    }
    let span = outflow_service::telemetry::continuing("shipment callback", traceparent.as_deref());
    end_shipment(state, &mut tx, callback, order_id, version + 1, traceparent.as_deref()).instrument(span).await?;
    tx.commit().await?;
    Ok(CallbackOutcome { result: "applied", shipment_status: wanted.to_owned() })
}

/// Runs in the span that continues the order's trace: the event's trace
/// context is taken here, inside it (`TraceContext::child_of` prefers the
/// current span over the stored `traceparent`, and outside this span the
/// current one is the carrier's request, a trace of its own).
async fn end_shipment(
    state: &AppState,
    tx: &mut PgConnection,
    callback: &Callback,
    order_id: Uuid,
    version: i64,
    traceparent: Option<&str>,
) -> Result<(), ApiError> {
    let trace = &TraceContext::child_of(traceparent);
    let reason = (callback.status != ShipmentStatus::Delivered).then(|| callback.reason.clone().unwrap_or_else(|| "delivery_failed".into()));
    let status = if reason.is_none() { "DELIVERED" } else { "FAILED" };
    sqlx::query("update shipments set status = $2, failure_reason = $3, version = $4, updated_at = now() where order_id = $1")
        .bind(order_id)
        .bind(status)
        .bind(&reason)
        .bind(version)
        .execute(&mut *tx)
        .await?;
    let (event_id, occurred_at, id, shipment_id) = (new_event_id(), now_millis(), order_id.to_string(), callback.shipment_id.clone());
    let appended = match reason {
        None => {
            let event = ShipmentDelivered { event_id, aggregate_id: id.clone(), aggregate_version: version, occurred_at, order_id: id, shipment_id };
            state.base.outbox.append(tx, &event, trace).await
        }
        Some(reason) => {
            let event = ShipmentFailed { event_id, aggregate_id: id.clone(), aggregate_version: version, occurred_at, order_id: id, shipment_id, reason };
            state.base.outbox.append(tx, &event, trace).await
        }
    };
    appended.map_err(|e| ApiError::internal(e.into()))
}
