//! `terminal`: once the payment deadline and a grace have passed since an
//! order was placed, it has ended (COMPLETED, CANCELLED or DELIVERY_FAILED),
//! or it is CONFIRMED with its shipment under way (REQUESTED or IN_TRANSIT:
//! how long a carrier takes is the carrier's business).

use std::collections::HashMap;

use uuid::Uuid;

use crate::{
    report::{Invariant, Offence},
    snapshot::{OrderRow, ShipmentRow},
    Options,
};

/// The statuses an order ends in.
pub const ENDED: [&str; 3] = ["COMPLETED", "CANCELLED", "DELIVERY_FAILED"];

pub const NAME: &str = "terminal";

pub fn check(orders: &[OrderRow], shipments: &HashMap<Uuid, ShipmentRow>, missing: &[Uuid], options: &Options) -> Invariant {
    let mut broken: Vec<Offence> = missing.iter().map(|id| Offence::new(id, "not in the orders table")).collect();
    let mut overdue = 0;
    for order in orders.iter().filter(|o| super::overdue(o.age_ms, options)) {
        overdue += 1;
        let shipping = order.status == "CONFIRMED" && shipments.get(&order.id).is_some_and(|s| matches!(s.status.as_str(), "REQUESTED" | "IN_TRANSIT"));
        if !ENDED.contains(&order.status.as_str()) && !shipping {
            let shipment = if order.status == "CONFIRMED" { " with no shipment under way" } else { "" };
            let reason = format!(
                "{}{shipment} {} s after it was placed (payment deadline {} s + grace {} s)",
                order.status,
                order.age_ms / 1000,
                options.payment_deadline.as_secs(),
                options.grace.as_secs()
            );
            broken.push(Offence::new(order.id, reason));
        }
    }
    Invariant::new(NAME, &[("orders", orders.len()), ("overdue", overdue)], broken)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rules::fixtures::{id, order, shipment};

    fn aged(n: u128, status: &str, age_ms: i64) -> OrderRow {
        OrderRow { age_ms, ..order(n, status) }
    }

    #[test]
    fn holds_when_every_overdue_order_ended_and_young_ones_may_be_pending() {
        let orders = [
            aged(1, "CONFIRMED", 60_000),
            aged(2, "CANCELLED", 90_000),
            aged(3, "PENDING", 10_000),
            aged(4, "COMPLETED", 60_000),
            aged(5, "DELIVERY_FAILED", 60_000),
        ];
        let shipments = HashMap::from([(id(1), shipment(1, "IN_TRANSIT"))]);
        let result = check(&orders, &shipments, &[], &Options::default());
        assert!(result.held, "{result}");
        assert_eq!(result.checked["overdue"], 4);
    }

    #[test]
    fn an_overdue_pending_order_and_an_unknown_order_break_it() {
        let result = check(&[aged(1, "PENDING", 51_000)], &HashMap::new(), &[id(9)], &Options::default());
        assert!(!result.held);
        assert_eq!(result.broken[0].id, id(9).to_string());
        assert_eq!(result.broken[1].id, id(1).to_string());
        assert!(result.broken[1].reason.starts_with("PENDING 51 s after"), "{}", result.broken[1].reason);
    }

    #[test]
    fn an_overdue_confirmed_order_needs_its_shipment_under_way() {
        let shipments = HashMap::from([(id(2), shipment(2, "DELIVERED"))]);
        let result = check(&[aged(1, "CONFIRMED", 60_000), aged(2, "CONFIRMED", 60_000)], &shipments, &[], &Options::default());
        let reasons: Vec<&str> = result.broken.iter().map(|o| o.reason.as_str()).collect();
        assert_eq!(reasons.len(), 2, "{result}");
        assert!(reasons.iter().all(|r| r.starts_with("CONFIRMED with no shipment under way")), "{reasons:?}");
    }
}
