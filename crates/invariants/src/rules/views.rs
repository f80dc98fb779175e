//! `views`: each order's `order_views` document (and `customer_orders`
//! summary) shows the tables' order status and version, payment status,
//! reservation status and shipment status; each product's `product_availability` shows its stock.

use crate::{
    report::{Invariant, Offence},
    snapshot::{OrderRow, OrderView, PaymentRow, ProductRow, ProductView, ReservationRow, ShipmentRow, Snapshot},
};

pub const NAME: &str = "views";

pub fn check(snapshot: &Snapshot) -> Invariant {
    let mut broken = Vec::new();
    for order in &snapshot.orders {
        let id = order.id.to_string();
        let tables = Tables {
            order,
            payment: snapshot.payments.get(&order.id),
            reservation: snapshot.reservations.get(&order.id),
            shipment: snapshot.shipments.get(&order.id),
        };
        let summary = snapshot.order_summaries.get(&id).map(String::as_str);
        for reason in order_mismatch(&tables, snapshot.order_views.get(&id), summary) {
            broken.push(Offence::new(order.id, reason));
        }
    }
    for product in &snapshot.products {
        for reason in product_mismatch(product, snapshot.product_views.get(&product.sku)) {
            broken.push(Offence::new(&product.sku, reason));
        }
    }
    Invariant::new(NAME, &[("orders", snapshot.orders.len()), ("skus", snapshot.products.len())], broken)
}

/// What the tables say about one order.
pub struct Tables<'a> {
    pub order: &'a OrderRow,
    pub payment: Option<&'a PaymentRow>,
    pub reservation: Option<&'a ReservationRow>,
    pub shipment: Option<&'a ShipmentRow>,
}

/// What the order's view and summary (`customer_orders` status) show that the tables do not say.
pub fn order_mismatch(tables: &Tables<'_>, view: Option<&OrderView>, summary: Option<&str>) -> Vec<String> {
    let Tables { order, payment, reservation, shipment } = *tables;
    let mut wrong = Vec::new();
    match summary {
        None => wrong.push("no customer_orders document".into()),
        Some(status) if status != order.status => wrong.push(format!("customer_orders status {status}, the orders table {}", order.status)),
        Some(_) => {}
    }
    let Some(view) = view else {
        wrong.insert(0, "no order_views document".into());
        return wrong;
    };
    if view.status.as_deref() != Some(order.status.as_str()) {
        wrong.push(format!("order_views status {}, the orders table {}", shown(&view.status), order.status));
    }
    if view.order_version != Some(order.version) {
        let version = view.order_version.map_or("none".into(), |v| v.to_string());
        wrong.push(format!("order_views version {version}, orders.version {}", order.version));
    }
    let table = payment.map(|p| p.status.as_str());
    if !payment_shown(table, view.payment_status.as_deref()) {
        wrong.push(format!("order_views payment {}, the payments table {}", shown(&view.payment_status), table.unwrap_or("none")));
    }
    if !reservation_shown(reservation, view.reservation_status.as_deref()) {
        let table = reservation.map_or("none", |r| r.status.as_str());
        wrong.push(format!("order_views reservation {}, the reservations table {table}", shown(&view.reservation_status)));
    }
    // A REQUESTED shipment has no event yet (ShipmentRequested comes once the carrier took it).
    let table = shipment.map(|s| s.status.as_str()).filter(|s| *s != "REQUESTED");
    if view.shipment_status.as_deref() != table {
        wrong.push(format!("order_views shipment {}, the shipments table {}", shown(&view.shipment_status), table.unwrap_or("none")));
    }
    wrong
}

/// No event tells a refund under way (REFUNDING) from a capture or a
/// finished refund, so the view may show either.
fn payment_shown(table: Option<&str>, view: Option<&str>) -> bool {
    match table {
        Some("REFUNDING") => matches!(view, Some("CAPTURED" | "REFUNDED")),
        _ => table == view,
    }
}

/// A tombstone (RELEASED with no lines: the order was cancelled before its
/// reservation was made) has no event of its own, so the view may not show it.
fn reservation_shown(table: Option<&ReservationRow>, view: Option<&str>) -> bool {
    match table {
        Some(r) if r.status == "RELEASED" && r.lines.is_empty() => {
            matches!(view, None | Some("RELEASED"))
        }
        Some(r) => view == Some(r.status.as_str()),
        None => view.is_none(),
    }
}

pub fn product_mismatch(product: &ProductRow, view: Option<&ProductView>) -> Vec<String> {
    let Some(view) = view else {
        return vec!["no product_availability document".into()];
    };
    let fields = [
        ("on_hand", view.on_hand, product.on_hand),
        ("reserved", view.reserved, product.reserved),
        ("available", view.available, product.on_hand - product.reserved),
    ];
    fields
        .into_iter()
        .filter(|(_, seen, table)| *seen != Some(*table))
        .map(|(field, seen, table)| format!("product_availability {field} {}, the products table {table}", seen.map_or("none".into(), |v| v.to_string())))
        .collect()
}

fn shown(value: &Option<String>) -> &str {
    value.as_deref().unwrap_or("none")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rules::fixtures::{line, order, payment, reservation, shipment};

    fn view(status: &str, version: i64, payment: Option<&str>, reservation: Option<&str>) -> OrderView {
        OrderView {
            status: Some(status.into()),
            order_version: Some(version),
            payment_status: payment.map(Into::into),
            reservation_status: reservation.map(Into::into),
            shipment_status: None,
        }
    }

    fn stock() -> ProductRow {
        ProductRow { sku: "MUG".into(), on_hand: 5, reserved: 2, held: 2, sold: 0 }
    }

    #[test]
    fn holds_when_the_view_shows_what_the_tables_say() {
        let (confirmed, paid, sold) = (order(1, "CONFIRMED"), payment(1, "CAPTURED"), reservation(1, "COMMITTED", vec![line("MUG", 2)]));
        let tables = Tables { order: &confirmed, payment: Some(&paid), reservation: Some(&sold), shipment: Some(&shipment(1, "REQUESTED")) };
        let seen = view("CONFIRMED", 2, Some("CAPTURED"), Some("COMMITTED"));
        assert!(order_mismatch(&tables, Some(&seen), Some("CONFIRMED")).is_empty(), "a shipment not yet taken by the carrier has no event");
        let in_transit = shipment(1, "IN_TRANSIT");
        let tables = Tables { shipment: Some(&in_transit), ..tables };
        let seen = OrderView { shipment_status: Some("IN_TRANSIT".into()), ..seen };
        assert!(order_mismatch(&tables, Some(&seen), Some("CONFIRMED")).is_empty());
        let (cancelled, tombstone) = (order(2, "CANCELLED"), reservation(2, "RELEASED", vec![]));
        let tables = Tables { order: &cancelled, payment: None, reservation: Some(&tombstone), shipment: None };
        assert!(order_mismatch(&tables, Some(&view("CANCELLED", 2, None, None)), Some("CANCELLED")).is_empty());
        let shown = ProductView { on_hand: Some(5), reserved: Some(2), available: Some(3) };
        assert!(product_mismatch(&stock(), Some(&shown)).is_empty());
    }

    #[test]
    fn a_view_behind_the_tables_breaks_it() {
        let (confirmed, paid, sold) = (order(1, "CONFIRMED"), payment(1, "CAPTURED"), reservation(1, "COMMITTED", vec![line("MUG", 2)]));
        let delivered = shipment(1, "DELIVERED");
        let tables = Tables { order: &confirmed, payment: Some(&paid), reservation: Some(&sold), shipment: Some(&delivered) };
        let behind = view("PENDING", 1, Some("PENDING"), None);
        let wrong = order_mismatch(&tables, Some(&behind), Some("PENDING"));
        assert_eq!(wrong.len(), 6, "{wrong:?}");
        assert_eq!(order_mismatch(&tables, None, None), ["no order_views document", "no customer_orders document"]);
        let stale = product_mismatch(&stock(), Some(&ProductView { on_hand: Some(5), reserved: Some(1), available: Some(4) }));
        assert_eq!(stale, ["product_availability reserved 1, the products table 2", "product_availability available 4, the products table 3"]);
    }
}
