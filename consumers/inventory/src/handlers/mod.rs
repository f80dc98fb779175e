//! One file per event type.

pub mod order_cancelled;
pub mod order_confirmed;
pub mod order_delivery_failed;
pub mod order_placed;

use outflow_events::inventory::{CommittedLine, ReleasedLine, ReservedLine, ReturnedLine};
use sqlx::{PgConnection, Row};
use uuid::Uuid;

/// A product's stock after a change, as the events report it.
pub struct StockAfter {
    pub sku: String,
    pub quantity: i32,
    pub on_hand: i32,
    pub reserved: i32,
    pub version: i64,
}

macro_rules! into_line {
    ($line:ident) => {
        impl From<&StockAfter> for $line {
            fn from(s: &StockAfter) -> Self {
                $line { sku: s.sku.clone(), quantity: s.quantity, on_hand: s.on_hand, reserved: s.reserved, product_version: s.version }
            }
        }
    };
}
into_line!(ReservedLine);
into_line!(ReleasedLine);
into_line!(CommittedLine);
into_line!(ReturnedLine);

/// Applies `(on_hand delta, reserved delta) * quantity` to every line of a
/// reservation, bumping each product's version; returns the stock after.
///
/// The products are locked in SKU order first, as the reservation does: an
/// `update ... from` takes its row locks in whatever order the join yields,
/// and two transactions over the same SKUs then deadlock (PostgreSQL breaks
/// the tie after `deadlock_timeout`, a second of stalled saga).
pub async fn move_stock(tx: &mut PgConnection, order_id: Uuid, on_hand_sign: i32, reserved_sign: i32) -> Result<Vec<StockAfter>, sqlx::Error> {
    sqlx::query("select p.sku from products p join reservation_lines l on l.sku = p.sku where l.order_id = $1 order by p.sku for update of p")
        .bind(order_id)
        .execute(&mut *tx)
        .await?;
    let rows = sqlx::query(
        "update products p set on_hand = p.on_hand + $2 * l.quantity, reserved = p.reserved + $3 * l.quantity,
                version = p.version + 1, updated_at = now()
         from reservation_lines l where l.order_id = $1 and l.sku = p.sku
         returning p.sku, l.quantity, p.on_hand, p.reserved, p.version",
    )
    .bind(order_id)
    .bind(on_hand_sign)
    .bind(reserved_sign)
    .fetch_all(&mut *tx)
    .await?;
    let mut stock: Vec<StockAfter> =
        rows.into_iter().map(|r| StockAfter { sku: r.get(0), quantity: r.get(1), on_hand: r.get(2), reserved: r.get(3), version: r.get(4) }).collect();
    stock.sort_by(|a, b| a.sku.cmp(&b.sku));
    Ok(stock)
}

/// How a reservation closes: from which status to which, and how each line's
/// quantity moves the product's `on_hand` and `reserved` (-1, 0 or +1).
pub struct Closing {
    pub from: &'static str,
    pub to: &'static str,
    pub on_hand_sign: i32,
    pub reserved_sign: i32,
}

/// The order was cancelled: the held stock is given back.
pub const RELEASE: Closing = Closing { from: "RESERVED", to: "RELEASED", on_hand_sign: 0, reserved_sign: -1 };
/// The order was confirmed: the held stock is sold.
pub const COMMIT: Closing = Closing { from: "RESERVED", to: "COMMITTED", on_hand_sign: -1, reserved_sign: -1 };
/// The order's delivery failed: the sold goods come back on hand.
pub const RETURN: Closing = Closing { from: "COMMITTED", to: "RETURNED", on_hand_sign: 1, reserved_sign: 0 };

/// Locks a reservation and moves it as `closing` says; None when it is not in `closing.from`.
pub async fn close_reservation(tx: &mut PgConnection, order_id: Uuid, closing: &Closing) -> Result<Option<i64>, sqlx::Error> {
    let status: Option<(String, i64)> =
        sqlx::query_as("select status, version from reservations where order_id = $1 for update").bind(order_id).fetch_optional(&mut *tx).await?;
    match status {
        Some((status, version)) if status == closing.from => {
            sqlx::query("update reservations set status = $2, version = $3, updated_at = now() where order_id = $1")
                .bind(order_id)
                .bind(closing.to)
                .bind(version + 1)
                .execute(&mut *tx)
                .await?;
            Ok(Some(version + 1))
        }
        _ => Ok(None),
    }
}

/// An order cancelled before its OrderPlaced was handled here (only a
/// redelivery across a rebalance can show them in that order): a reservation
/// RELEASED with no lines, so that the late OrderPlaced reserves nothing.
/// False when a reservation appeared meanwhile (an OrderPlaced committed by
/// another instance while this one looked): it is then closed like any other.
async fn given_up_before_reserved(tx: &mut PgConnection, order_id: Uuid, customer_id: &str) -> Result<bool, sqlx::Error> {
    let inserted = sqlx::query("insert into reservations (order_id, customer_id, status, version) values ($1, $2, 'RELEASED', 1) on conflict do nothing")
        .bind(order_id)
        .bind(customer_id)
        .execute(&mut *tx)
        .await?;
    Ok(inserted.rows_affected() == 1)
}

/// Closes a reservation as `closing` says (RESERVED to RELEASED or COMMITTED,
/// COMMITTED to RETURNED) in one transaction: claim the event, move the stock,
/// append the event that `build` makes from the reservation's new version and
/// the stock after. A reservation in any other status is left alone
/// (rejected, already closed); an order never reserved is recorded as closed
/// when `tombstone_for` names its customer (see [`given_up_before_reserved`]).
pub async fn close<E: outflow_events::Event>(
    steps: &crate::Steps,
    delivery: &outflow_consumer::Delivery,
    order: &str,
    closing: &Closing,
    tombstone_for: Option<&str>,
    build: impl FnOnce(i64, &[StockAfter]) -> E,
) -> Result<outflow_consumer::Outcome, outflow_consumer::HandlerError> {
    use outflow_consumer::{db, HandlerError, Outcome};
    let order_id = Uuid::parse_str(order).map_err(|_| HandlerError::Rejected(format!("order id {order} is not a UUID")))?;
    let mut tx = steps.pool.begin().await.map_err(db)?;
    if !outflow_outbox::inbox::claim(&mut tx, delivery.event_id, delivery.event.name()).await.map_err(db)? {
        return Ok(Outcome::Duplicate);
    }
    let mut closed = close_reservation(&mut tx, order_id, closing).await.map_err(db)?;
    if let (None, Some(customer_id)) = (closed, tombstone_for) {
        if !given_up_before_reserved(&mut tx, order_id, customer_id).await.map_err(db)? {
            closed = close_reservation(&mut tx, order_id, closing).await.map_err(db)?;
        }
    }
    let Some(version) = closed else {
        tx.commit().await.map_err(db)?;
        return Ok(Outcome::Skipped);
    };
    let stock = move_stock(&mut tx, order_id, closing.on_hand_sign, closing.reserved_sign).await.map_err(db)?;
    let event = build(version, &stock);
    let trace = outflow_outbox::TraceContext::child_of(delivery.traceparent.as_deref());
    steps.outbox.append(&mut tx, &event, &trace).await.map_err(|e| HandlerError::Transient(e.into()))?;
    tx.commit().await.map_err(db)?;
    Ok(Outcome::Applied)
}
