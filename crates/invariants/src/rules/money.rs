//! `money`: an order is CONFIRMED or COMPLETED exactly when its payment is
//! CAPTURED; an order that ends unpaid keeps no money (CANCELLED: no
//! payment, FAILED or REFUNDED; DELIVERY_FAILED: REFUNDED); nothing is
//! refunded that was not captured; what was asked and captured is the
//! order's total.

use std::collections::{HashMap, HashSet};

use uuid::Uuid;

use crate::{
    report::{Invariant, Offence},
    snapshot::{EventLog, OrderRow, PaymentRow},
};

pub const NAME: &str = "money";

pub fn check(orders: &[OrderRow], payments: &HashMap<Uuid, PaymentRow>, events: &EventLog) -> Invariant {
    let mut broken = Vec::new();
    for order in orders {
        let payment = payments.get(&order.id);
        if let Some(reason) = status_mismatch(&order.status, payment.map(|p| p.status.as_str())) {
            broken.push(Offence::new(order.id, reason));
        }
        if let Some(p) = payment.filter(|p| p.amount_minor != order.total_minor) {
            broken.push(Offence::new(order.id, format!("payment amount {} is not the order's total {}", p.amount_minor, order.total_minor)));
        }
        for event in events.of(&order.id.to_string()).iter().filter(|e| e.kind == "PaymentCaptured" && e.amount != order.total_minor) {
            broken
                .push(Offence::new(order.id, format!("PaymentCaptured {} took {}, the order's total is {}", event.event_id, event.amount, order.total_minor)));
        }
    }
    let known: HashSet<Uuid> = orders.iter().map(|o| o.id).collect();
    let mut others: Vec<&PaymentRow> = payments.values().collect();
    others.sort_by_key(|p| p.order_id);
    for payment in others {
        if !known.contains(&payment.order_id) {
            broken.push(Offence::new(payment.order_id, format!("a {} payment for an order the orders table does not have", payment.status)));
        }
        if let Some(reason) = refund_without_capture(payment) {
            broken.push(Offence::new(payment.order_id, reason));
        }
    }
    Invariant::new(NAME, &[("orders", orders.len()), ("payments", payments.len())], broken)
}

/// What is wrong with an order in `order_status` whose payment is in
/// `payment_status` (None: no payment), once every consumer caught up.
pub fn status_mismatch(order_status: &str, payment_status: Option<&str>) -> Option<String> {
    let shown = payment_status.unwrap_or("missing");
    match (order_status, payment_status) {
        ("CONFIRMED" | "COMPLETED", Some("CAPTURED")) => None,
        ("CONFIRMED" | "COMPLETED", _) => Some(format!("{order_status}, but its payment is {shown}")),
        ("DELIVERY_FAILED", Some("REFUNDED")) => None,
        ("DELIVERY_FAILED", Some("REFUNDING")) => Some("DELIVERY_FAILED, and its refund is not confirmed by the provider (REFUNDING)".into()),
        ("DELIVERY_FAILED", _) => Some(format!("DELIVERY_FAILED, but its payment is {shown}, not REFUNDED")),
        ("CANCELLED", None | Some("FAILED" | "REFUNDED")) => None,
        ("CANCELLED", Some("CAPTURED")) => Some("CANCELLED, but its payment is CAPTURED and not refunded".into()),
        ("CANCELLED", Some("REFUNDING")) => Some("CANCELLED, and its refund is not confirmed by the provider (REFUNDING)".into()),
        ("CANCELLED", Some(other)) => Some(format!("CANCELLED, but its payment is still {other}")),
        (_, Some(status @ ("CAPTURED" | "REFUNDING" | "REFUNDED"))) => Some(format!("{order_status}, but its payment is {status}")),
        _ => None,
    }
}

/// A refund (done or under way) needs money that was taken: a provider
/// transaction and its `settlement` or `capture` notification.
pub fn refund_without_capture(payment: &PaymentRow) -> Option<String> {
    if !matches!(payment.status.as_str(), "REFUNDED" | "REFUNDING") {
        return None;
    }
    match (&payment.transaction_id, payment.captured_at_provider) {
        (Some(_), true) => None,
        (None, _) => Some(format!("{} without a provider transaction", payment.status)),
        (Some(tx), false) => Some(format!("{} but the provider never reported a capture (transaction {tx})", payment.status)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rules::fixtures::{event, id, order, payment};

    fn payments(rows: Vec<PaymentRow>) -> HashMap<Uuid, PaymentRow> {
        rows.into_iter().map(|p| (p.order_id, p)).collect()
    }

    #[test]
    fn holds_for_paid_confirmed_and_unpaid_or_refunded_cancelled_orders() {
        let orders = [order(1, "CONFIRMED"), order(2, "CANCELLED"), order(3, "CANCELLED"), order(4, "CANCELLED"), order(5, "PENDING")];
        let rows = payments(vec![payment(1, "CAPTURED"), payment(2, "FAILED"), payment(3, "REFUNDED"), payment(5, "PENDING")]);
        let mut events = EventLog::default();
        events.add(&id(1).to_string(), event("PaymentCaptured", 10, 2, 2500));
        let result = check(&orders, &rows, &events);
        assert!(result.held, "{result}");
    }

    #[test]
    fn kept_money_unpaid_confirmation_and_wrong_amounts_break_it() {
        let orders = [order(1, "CONFIRMED"), order(2, "CANCELLED"), order(3, "CANCELLED"), order(4, "CONFIRMED")];
        let short = PaymentRow { amount_minor: 100, ..payment(4, "CAPTURED") };
        let rows = payments(vec![payment(1, "PENDING"), payment(2, "CAPTURED"), payment(3, "REFUNDING"), short, payment(7, "FAILED")]);
        let result = check(&orders, &rows, &EventLog::default());
        let ids: Vec<String> = result.broken.iter().map(|o| o.id.clone()).collect();
        assert_eq!(ids, [1, 2, 3, 4, 7].map(|n| id(n).to_string()), "{result}");
        assert!(result.broken[2].reason.contains("REFUNDING"));
    }

    #[test]
    fn a_refund_needs_a_capture_at_the_provider() {
        assert_eq!(refund_without_capture(&payment(1, "REFUNDED")), None);
        let never_captured = PaymentRow { captured_at_provider: false, ..payment(1, "REFUNDED") };
        assert!(refund_without_capture(&never_captured).unwrap().contains("never reported a capture"));
        let no_transaction = PaymentRow { transaction_id: None, ..payment(1, "REFUNDING") };
        assert!(refund_without_capture(&no_transaction).is_some());
    }

    #[test]
    fn a_pending_order_with_money_taken_is_broken_but_one_without_is_not() {
        assert_eq!(status_mismatch("PENDING", Some("PENDING")), None);
        assert_eq!(status_mismatch("PENDING", None), None);
        assert!(status_mismatch("PENDING", Some("CAPTURED")).is_some());
        assert!(status_mismatch("CANCELLED", Some("PENDING")).is_some());
    }

    #[test]
    fn a_completed_order_keeps_its_money_and_a_failed_delivery_gives_it_back() {
        assert_eq!(status_mismatch("COMPLETED", Some("CAPTURED")), None);
        assert!(status_mismatch("COMPLETED", Some("REFUNDED")).is_some());
        assert_eq!(status_mismatch("DELIVERY_FAILED", Some("REFUNDED")), None);
        assert!(status_mismatch("DELIVERY_FAILED", Some("CAPTURED")).unwrap().contains("not REFUNDED"));
        assert!(status_mismatch("DELIVERY_FAILED", Some("REFUNDING")).unwrap().contains("not confirmed"));
    }
}
