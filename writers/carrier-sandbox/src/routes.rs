//! The sandbox's HTTP endpoints (listed in the crate's documentation).

use axum::{
    extract::{rejection::JsonRejection, Path, State},
    http::{HeaderMap, StatusCode},
    Json,
};
use base64::Engine;
use outflow_carrier::{Shipment, ShipmentStatus};
use serde::Deserialize;
use serde_json::json;

use crate::{journal, Behaviour, Outcome, Parcel, RequestShipment, Sandbox};

type Refused = (StatusCode, Json<serde_json::Value>);

/// The JSON error every refused request answers: `{"error": {"code", "message"}}`.
fn refusal(status: StatusCode, code: &str, message: &str) -> Refused {
    (status, Json(json!({"error": {"code": code, "message": message}})))
}

impl Sandbox {
    fn authorize(&self, headers: &HeaderMap) -> Result<(), Refused> {
        let expected = base64::engine::general_purpose::STANDARD.encode(format!("{}:", self.config.key));
        if headers.get("authorization").and_then(|h| h.to_str().ok()) == Some(format!("Basic {expected}").as_str()) {
            return Ok(());
        }
        Err(refusal(StatusCode::UNAUTHORIZED, "unauthorized", "Basic auth with the carrier key as user name"))
    }

    async fn parcel(&self, order_id: &str) -> Result<Parcel, Refused> {
        let parcels = self.parcels.lock().await;
        parcels.get(order_id).cloned().ok_or_else(|| refusal(StatusCode::NOT_FOUND, "not_found", "no shipment for this order"))
    }
}

/// The body is taken as a `Result` so that a caller without the key learns
/// nothing, not even what the body should have been.
pub(crate) async fn request_shipment(
    State(sandbox): State<Sandbox>,
    headers: HeaderMap,
    body: Result<Json<RequestShipment>, JsonRejection>,
) -> Result<(StatusCode, Json<Shipment>), Refused> {
    sandbox.authorize(&headers)?;
    let Json(body) = body.map_err(|e| refusal(e.status(), "invalid_body", &e.body_text()))?;
    let mut parcels = sandbox.parcels.lock().await;
    if let Some(existing) = parcels.get(&body.order_id) {
        return Ok((StatusCode::OK, Json(existing.shipment.clone())));
    }
    let shipment = Shipment { shipment_id: uuid::Uuid::new_v4().to_string(), order_id: body.order_id.clone(), status: ShipmentStatus::InTransit, reason: None };
    let parcel = Parcel { shipment: shipment.clone(), customer_id: body.customer_id, notified: false };
    sandbox.keep(&parcel);
    parcels.insert(body.order_id.clone(), parcel);
    drop(parcels);
    tokio::spawn(sandbox.clone().decide_later(body.order_id));
    Ok((StatusCode::CREATED, Json(shipment)))
}

pub(crate) async fn get_shipment(State(sandbox): State<Sandbox>, headers: HeaderMap, Path(order_id): Path<String>) -> Result<Json<Shipment>, Refused> {
    sandbox.authorize(&headers)?;
    Ok(Json(sandbox.parcel(&order_id).await?.shipment))
}

pub(crate) async fn get_parcel(State(sandbox): State<Sandbox>, Path(order_id): Path<String>) -> Result<Json<Parcel>, Refused> {
    Ok(Json(sandbox.parcel(&order_id).await?))
}

#[derive(Deserialize)]
pub(crate) struct ForceOutcome {
    outcome: Outcome,
}

pub(crate) async fn force_outcome(State(sandbox): State<Sandbox>, Path(order_id): Path<String>, Json(body): Json<ForceOutcome>) -> StatusCode {
    {
        let mut forced = sandbox.forced.lock().await;
        sandbox.write(&journal::Entry::Forced { order_id: order_id.clone(), outcome: body.outcome });
        forced.insert(order_id.clone(), body.outcome);
    }
    // A shipment held back with `never` has no decision waiting for it any
    // more: this one decides it. One whose delay is still running is decided
    // by whichever comes first, and the other finds it decided.
    let in_transit = sandbox.parcels.lock().await.get(&order_id).is_some_and(|p| p.shipment.status == ShipmentStatus::InTransit);
    if in_transit && body.outcome != Outcome::Never {
        tokio::spawn(sandbox.decide_later(order_id));
    }
    StatusCode::NO_CONTENT
}

/// The callback of a decided shipment once more, now: the shipping writer
/// must take a duplicate for what it is.
pub(crate) async fn send_callback_again(State(sandbox): State<Sandbox>, Path(order_id): Path<String>) -> Result<StatusCode, Refused> {
    let parcel = sandbox.parcel(&order_id).await?;
    if parcel.shipment.status == ShipmentStatus::InTransit {
        return Err(refusal(StatusCode::CONFLICT, "in_transit", "the shipment is not decided yet: there is no callback to send"));
    }
    tokio::spawn(sandbox.notify(parcel));
    Ok(StatusCode::ACCEPTED)
}

pub(crate) async fn get_behaviour(State(sandbox): State<Sandbox>) -> Json<Behaviour> {
    Json(sandbox.behaviour())
}

pub(crate) async fn set_behaviour(State(sandbox): State<Sandbox>, Json(body): Json<Behaviour>) -> Result<Json<Behaviour>, Refused> {
    if !(0.0..=1.0).contains(&body.failure_rate) {
        return Err(refusal(StatusCode::UNPROCESSABLE_ENTITY, "invalid_failure_rate", "failure_rate must be between 0.0 and 1.0"));
    }
    *sandbox.behaviour.write().expect("behaviour lock") = body;
    tracing::info!(delivery_delay_ms = body.delivery_delay_ms, failure_rate = body.failure_rate, "behaviour changed");
    Ok(Json(body))
}
