//! One file per endpoint.

pub mod cancel_order;
pub mod get_order;
pub mod place_order;

use serde::Serialize;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::domain::OrderStatus;

/// What order placement and cancellation answer.
#[derive(Debug, Serialize, ToSchema)]
pub struct OrderAccepted {
    pub order_id: Uuid,
    pub status: OrderStatus,
}
