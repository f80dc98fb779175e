//! `terminal`: once the payment deadline and a grace have passed since an
//! order was placed, it is CONFIRMED or CANCELLED.

use uuid::Uuid;

use crate::{
    report::{Invariant, Offence},
    snapshot::OrderRow,
    Options,
};

pub const NAME: &str = "terminal";

pub fn check(orders: &[OrderRow], missing: &[Uuid], options: &Options) -> Invariant {
    let mut broken: Vec<Offence> = missing.iter().map(|id| Offence::new(id, "not in the orders table")).collect();
    let mut overdue = 0;
    for order in orders.iter().filter(|o| super::overdue(o.age_ms, options)) {
        overdue += 1;
        if !matches!(order.status.as_str(), "CONFIRMED" | "CANCELLED") {
            let reason = format!(
                "{} {} s after it was placed (payment deadline {} s + grace {} s)",
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
    use crate::rules::fixtures::{id, order};

    fn aged(n: u128, status: &str, age_ms: i64) -> OrderRow {
        OrderRow { age_ms, ..order(n, status) }
    }

    #[test]
    fn holds_when_every_overdue_order_ended_and_young_ones_may_be_pending() {
        let orders = [aged(1, "CONFIRMED", 60_000), aged(2, "CANCELLED", 90_000), aged(3, "PENDING", 10_000)];
        let result = check(&orders, &[], &Options::default());
        assert!(result.held, "{result}");
        assert_eq!(result.checked["overdue"], 2);
    }

    #[test]
    fn an_overdue_pending_order_and_an_unknown_order_break_it() {
        let result = check(&[aged(1, "PENDING", 51_000)], &[id(9)], &Options::default());
        assert!(!result.held);
        assert_eq!(result.broken[0].id, id(9).to_string());
        assert_eq!(result.broken[1].id, id(1).to_string());
        assert!(result.broken[1].reason.starts_with("PENDING 51 s after"), "{}", result.broken[1].reason);
    }
}
