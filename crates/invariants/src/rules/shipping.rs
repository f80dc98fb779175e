//! `shipping`: an order and its shipment agree. Only a confirmed order has a
//! shipment; a delivered shipment's order is COMPLETED, a failed one's is
//! DELIVERY_FAILED; an order CONFIRMED has no shipment yet (the shipping
//! consumer has not handled its OrderConfirmed) or one still under way.

use std::collections::{HashMap, HashSet};

use uuid::Uuid;

use crate::{
    report::{Invariant, Offence},
    snapshot::{OrderRow, ShipmentRow},
};

pub const NAME: &str = "shipping";

pub fn check(orders: &[OrderRow], shipments: &HashMap<Uuid, ShipmentRow>) -> Invariant {
    let mut broken = Vec::new();
    for order in orders {
        if let Some(reason) = mismatch(&order.status, shipments.get(&order.id).map(|s| s.status.as_str())) {
            broken.push(Offence::new(order.id, reason));
        }
    }
    let known: HashSet<Uuid> = orders.iter().map(|o| o.id).collect();
    let mut orphans: Vec<&ShipmentRow> = shipments.values().filter(|s| !known.contains(&s.order_id)).collect();
    orphans.sort_by_key(|s| s.order_id);
    for shipment in orphans {
        broken.push(Offence::new(shipment.order_id, format!("a {} shipment for an order the orders table does not have", shipment.status)));
    }
    Invariant::new(NAME, &[("orders", orders.len()), ("shipments", shipments.len())], broken)
}

/// What is wrong between an order in `order_status` and its shipment in
/// `shipment_status` (None: there is none), once every consumer caught up.
pub fn mismatch(order_status: &str, shipment_status: Option<&str>) -> Option<String> {
    let fits = matches!(
        (order_status, shipment_status),
        ("PENDING" | "CANCELLED", None)
            | ("CONFIRMED", None | Some("REQUESTED" | "IN_TRANSIT"))
            | ("COMPLETED", Some("DELIVERED"))
            | ("DELIVERY_FAILED", Some("FAILED"))
    );
    (!fits).then(|| format!("{order_status}, but its shipment is {}", shipment_status.unwrap_or("missing")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rules::fixtures::{id, order, shipment};

    #[test]
    fn holds_when_each_order_and_its_shipment_agree() {
        let orders = [order(1, "CONFIRMED"), order(2, "COMPLETED"), order(3, "DELIVERY_FAILED"), order(4, "CANCELLED"), order(5, "CONFIRMED")];
        let shipments = HashMap::from([(id(1), shipment(1, "IN_TRANSIT")), (id(2), shipment(2, "DELIVERED")), (id(3), shipment(3, "FAILED"))]);
        let result = check(&orders, &shipments);
        assert!(result.held, "{result}");
    }

    #[test]
    fn an_end_the_order_did_not_follow_and_a_stray_shipment_break_it() {
        assert_eq!(mismatch("CONFIRMED", Some("FAILED")).as_deref(), Some("CONFIRMED, but its shipment is FAILED"));
        assert!(mismatch("COMPLETED", None).is_some());
        assert!(mismatch("DELIVERY_FAILED", Some("DELIVERED")).is_some());
        assert!(mismatch("CANCELLED", Some("IN_TRANSIT")).is_some(), "a cancelled order was shipped");
        let result = check(&[], &HashMap::from([(id(7), shipment(7, "REQUESTED"))]));
        assert_eq!(result.broken[0].id, id(7).to_string());
    }
}
