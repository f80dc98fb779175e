//! One file per reaction.

pub mod catalog;
pub mod order_failed;
pub mod payment_captured;

use outflow_consumer::{db, HandlerError};
use sqlx::PgConnection;
use uuid::Uuid;

/// Locks a PENDING order and gives its customer and next version; None when
/// the order is missing or no longer pending.
pub async fn lock_pending(tx: &mut PgConnection, order_id: Uuid) -> Result<Option<(String, i64)>, HandlerError> {
    let row: Option<(String, String, i64)> = sqlx::query_as("select customer_id, status, version from orders where id = $1 for update")
        .bind(order_id)
        .fetch_optional(&mut *tx)
        .await
        .map_err(db)?;
    Ok(row.filter(|(_, status, _)| status == "PENDING").map(|(customer, _, version)| (customer, version + 1)))
}

pub fn order_id(id: &str) -> Result<Uuid, HandlerError> {
    Uuid::parse_str(id).map_err(|_| HandlerError::Rejected(format!("order id {id} is not a UUID")))
}
