//! The invariants as plain functions over a [`Snapshot`]: no I/O, so each
//! rule is tested here with a held and a broken example. `docs/invariants.md`
//! states each one; the order of [`all`] is the order of the report.

pub mod dead_letters;
pub mod money;
pub mod once;
pub mod shipping;
pub mod stock;
pub mod terminal;
pub mod views;

use crate::{report::Invariant, snapshot::Snapshot, Options};

pub fn all(snapshot: &Snapshot, options: &Options) -> Vec<Invariant> {
    vec![
        terminal::check(&snapshot.orders, &snapshot.shipments, &snapshot.missing_orders, options),
        shipping::check(&snapshot.orders, &snapshot.shipments),
        money::check(&snapshot.orders, &snapshot.payments, &snapshot.events),
        stock::check(snapshot, options),
        once::check(&snapshot.events, &snapshot.inbox_duplicates),
        views::check(snapshot),
        dead_letters::check(&snapshot.dead_letters, snapshot.dead_letters_read),
    ]
}

/// Past the payment deadline and the grace after it: the saga must have ended.
pub(crate) fn overdue(age_ms: i64, options: &Options) -> bool {
    let limit = options.payment_deadline + options.grace;
    age_ms > i64::try_from(limit.as_millis()).unwrap_or(i64::MAX)
}

#[cfg(test)]
pub(crate) mod fixtures {
    use uuid::Uuid;

    use crate::snapshot::{Line, OrderRow, PaymentRow, Recorded, ReservationRow, ShipmentRow};

    pub fn id(n: u128) -> Uuid {
        Uuid::from_u128(n)
    }

    pub fn line(sku: &str, quantity: i64) -> Line {
        Line { sku: sku.into(), quantity }
    }

    pub fn order(n: u128, status: &str) -> OrderRow {
        OrderRow { id: id(n), status: status.into(), cancel_reason: None, total_minor: 2500, version: 2, age_ms: 1_000, items: vec![line("MUG", 2)] }
    }

    pub fn payment(n: u128, status: &str) -> PaymentRow {
        PaymentRow { order_id: id(n), status: status.into(), amount_minor: 2500, transaction_id: Some(format!("tx-{n}")), captured_at_provider: true }
    }

    pub fn reservation(n: u128, status: &str, lines: Vec<Line>) -> ReservationRow {
        ReservationRow { order_id: id(n), status: status.into(), lines }
    }

    pub fn shipment(n: u128, status: &str) -> ShipmentRow {
        ShipmentRow { order_id: id(n), status: status.into() }
    }

    pub fn event(kind: &'static str, event: u128, version: i64, amount: i64) -> Recorded {
        Recorded { kind, event_id: id(event), version, amount }
    }
}
