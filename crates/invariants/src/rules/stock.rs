//! `stock`: a reservation's status follows its order's (RESERVED only while
//! pending, COMMITTED only when confirmed or completed, RETURNED only when
//! the delivery failed, REJECTED or RELEASED only when cancelled); every
//! ended order (but one rejected for stock) has one; and per SKU,
//! `reserved` is what RESERVED reservations hold and `on_hand` is the
//! initial stock plus restocks minus what was sold and kept (COMMITTED: a
//! RETURNED reservation's goods came back).

use std::collections::HashSet;

use uuid::Uuid;

use crate::{
    report::{Invariant, Offence},
    snapshot::{EventLog, OrderRow, ProductRow, ReservationRow, Snapshot},
    Options,
};

pub const NAME: &str = "stock";

pub fn check(snapshot: &Snapshot, options: &Options) -> Invariant {
    let mut broken = Vec::new();
    for order in &snapshot.orders {
        let reservation = snapshot.reservations.get(&order.id);
        for reason in reservation_mismatch(order, reservation, options) {
            broken.push(Offence::new(order.id, reason));
        }
    }
    let known: HashSet<Uuid> = snapshot.orders.iter().map(|o| o.id).collect();
    let mut orphans: Vec<&ReservationRow> = snapshot.reservations.values().filter(|r| !known.contains(&r.order_id)).collect();
    orphans.sort_by_key(|r| r.order_id);
    for reservation in orphans {
        broken.push(Offence::new(reservation.order_id, format!("a {} reservation for an order the orders table does not have", reservation.status)));
    }
    for product in &snapshot.products {
        for reason in product_mismatch(product, &snapshot.events) {
            broken.push(Offence::new(&product.sku, reason));
        }
    }
    for sku in &snapshot.missing_skus {
        broken.push(Offence::new(sku, "not in the products table"));
    }
    Invariant::new(NAME, &[("orders", snapshot.orders.len()), ("skus", snapshot.products.len())], broken)
}

/// What is wrong between an order and its reservation (None: there is none).
pub fn reservation_mismatch(order: &OrderRow, reservation: Option<&ReservationRow>, options: &Options) -> Vec<String> {
    let Some(reservation) = reservation else {
        let rejected_for_stock = order.status == "CANCELLED" && order.cancel_reason.as_deref() == Some("out_of_stock");
        let paid = matches!(order.status.as_str(), "CONFIRMED" | "COMPLETED" | "DELIVERY_FAILED");
        let ended_without = paid || (super::overdue(order.age_ms, options) && !rejected_for_stock);
        return if ended_without { vec![format!("{} and no reservation", order.status)] } else { vec![] };
    };
    let mut wrong = Vec::new();
    let fits = matches!(
        (order.status.as_str(), reservation.status.as_str()),
        ("PENDING", "RESERVED") | ("CONFIRMED" | "COMPLETED", "COMMITTED") | ("DELIVERY_FAILED", "RETURNED") | ("CANCELLED", "REJECTED" | "RELEASED")
    );
    if !fits {
        wrong.push(format!("reservation {} for a {} order", reservation.status, order.status));
    }
    // What a reservation holds or held is the order's items. A rejected one
    // moved no stock, whatever lines it keeps; a release without lines is the
    // tombstone of an order cancelled before its reservation was made.
    let tombstone = reservation.status == "RELEASED" && reservation.lines.is_empty();
    if reservation.status != "REJECTED" && !tombstone && reservation.lines != order.items {
        wrong.push(format!("{} reservation lines {} are not the order's items {}", reservation.status, lines(&reservation.lines), lines(&order.items)));
    }
    wrong
}

/// What is wrong with one product's stock, against its events and reservations.
pub fn product_mismatch(product: &ProductRow, events: &EventLog) -> Vec<String> {
    let events = events.of(&product.sku);
    let created: Vec<i64> = events.iter().filter(|e| e.kind == "ProductCreated").map(|e| e.amount).collect();
    let restocked: i64 = events.iter().filter(|e| e.kind == "StockAdjusted").map(|e| e.amount).sum();
    let mut wrong = Vec::new();
    match created.as_slice() {
        [initial] => {
            let expected = initial + restocked - product.sold;
            if product.on_hand != expected {
                wrong.push(format!("on_hand {}, but created with {initial} + restocked {restocked} - sold {} = {expected}", product.on_hand, product.sold));
            }
        }
        [] => wrong.push("no ProductCreated on outflow.inventory.events".into()),
        many => wrong.push(format!("{} ProductCreated events", many.len())),
    }
    if product.reserved != product.held {
        wrong.push(format!("reserved {}, but RESERVED reservations hold {}", product.reserved, product.held));
    }
    if product.reserved < 0 || product.on_hand < product.reserved {
        wrong.push(format!("on_hand {} and reserved {}: not on_hand >= reserved >= 0", product.on_hand, product.reserved));
    }
    wrong
}

fn lines(lines: &[crate::snapshot::Line]) -> String {
    let shown: Vec<String> = lines.iter().map(|l| format!("{}×{}", l.quantity, l.sku)).collect();
    format!("[{}]", shown.join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rules::fixtures::{event, line, order, reservation};

    fn product(on_hand: i64, reserved: i64, held: i64, sold: i64) -> ProductRow {
        ProductRow { sku: "MUG".into(), on_hand, reserved, held, sold }
    }

    fn created_and_restocked() -> EventLog {
        let mut events = EventLog::default();
        events.add("MUG", event("ProductCreated", 1, 1, 10));
        events.add("MUG", event("StockAdjusted", 2, 4, 5));
        events.add("MUG", event("StockAdjusted", 2, 4, 5));
        events
    }

    #[test]
    fn holds_when_each_reservation_follows_its_order() {
        let options = Options::default();
        let pending = order(1, "PENDING");
        assert!(reservation_mismatch(&pending, Some(&reservation(1, "RESERVED", vec![line("MUG", 2)])), &options).is_empty());
        assert!(reservation_mismatch(&pending, None, &options).is_empty(), "a young order may not be reserved yet");
        let cancelled = OrderRow { age_ms: 600_000, cancel_reason: Some("out_of_stock".into()), ..order(2, "CANCELLED") };
        assert!(reservation_mismatch(&cancelled, None, &options).is_empty());
        assert!(reservation_mismatch(&cancelled, Some(&reservation(2, "REJECTED", vec![])), &options).is_empty());
        assert!(reservation_mismatch(&cancelled, Some(&reservation(2, "RELEASED", vec![])), &options).is_empty(), "a tombstone");
        assert!(reservation_mismatch(&order(3, "COMPLETED"), Some(&reservation(3, "COMMITTED", vec![line("MUG", 2)])), &options).is_empty());
        assert!(reservation_mismatch(&order(4, "DELIVERY_FAILED"), Some(&reservation(4, "RETURNED", vec![line("MUG", 2)])), &options).is_empty());
        let kept = reservation_mismatch(&order(5, "DELIVERY_FAILED"), Some(&reservation(5, "COMMITTED", vec![line("MUG", 2)])), &options);
        assert_eq!(kept, ["reservation COMMITTED for a DELIVERY_FAILED order"]);
    }

    #[test]
    fn stock_held_for_an_ended_order_or_a_missing_reservation_breaks_it() {
        let options = Options::default();
        let cancelled = order(1, "CANCELLED");
        let held = reservation_mismatch(&cancelled, Some(&reservation(1, "RESERVED", vec![line("MUG", 2)])), &options);
        assert_eq!(held, ["reservation RESERVED for a CANCELLED order"]);
        assert_eq!(reservation_mismatch(&order(2, "CONFIRMED"), None, &options), ["CONFIRMED and no reservation"]);
        let old = OrderRow { age_ms: 600_000, cancel_reason: Some("payment_failed".into()), ..order(3, "CANCELLED") };
        assert_eq!(reservation_mismatch(&old, None, &options).len(), 1);
        let wrong_lines = reservation_mismatch(&order(4, "CONFIRMED"), Some(&reservation(4, "COMMITTED", vec![line("MUG", 3)])), &options);
        assert!(wrong_lines[0].contains("are not the order's items [2×MUG]"), "{wrong_lines:?}");
    }

    #[test]
    fn holds_when_stock_adds_up_from_its_events_and_reservations() {
        assert!(product_mismatch(&product(12, 2, 2, 3), &created_and_restocked()).is_empty());
    }

    #[test]
    fn stock_that_does_not_add_up_breaks_it() {
        let events = created_and_restocked();
        assert!(product_mismatch(&product(13, 2, 2, 3), &events)[0].contains("= 12"));
        assert!(product_mismatch(&product(12, 3, 2, 3), &events)[0].starts_with("reserved 3, but"));
        assert_eq!(product_mismatch(&product(10, 0, 0, 0), &EventLog::default()), ["no ProductCreated on outflow.inventory.events"]);
        let oversold = ProductRow { sku: "MUG".into(), on_hand: 1, reserved: 2, held: 2, sold: 14 };
        assert!(product_mismatch(&oversold, &events).iter().any(|r| r.contains("not on_hand >= reserved")));
    }
}
