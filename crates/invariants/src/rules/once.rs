//! `once`: no two events of one aggregate at one version; per order at most
//! one event of each saga step; each event id at most once in each inbox.

use std::collections::BTreeMap;

use uuid::Uuid;

use crate::{
    report::{Invariant, Offence},
    snapshot::{EventLog, InboxDuplicate, Recorded},
};

pub const NAME: &str = "once";

/// Saga steps that happen at most once per aggregate; the kinds of one step
/// exclude each other (a reservation is made or rejected, then released or
/// committed; an order ends once).
const AT_MOST_ONCE: &[&[&str]] = &[
    &["OrderPlaced"],
    &["OrderConfirmed"],
    &["OrderCancelled"],
    &["OrderConfirmed", "OrderCancelled"],
    &["OrderCompleted", "OrderDeliveryFailed", "OrderCancelled"],
    &["StockReserved", "StockRejected"],
    &["StockReleased", "StockCommitted"],
    &["StockReturned"],
    &["ShipmentRequested"],
    &["ShipmentDelivered", "ShipmentFailed"],
    &["PaymentRequested"],
    &["PaymentCaptured"],
    &["PaymentRefunded"],
    &["ProductCreated"],
];

pub fn check(events: &EventLog, inbox: &[InboxDuplicate]) -> Invariant {
    let mut broken = events.undecodable.clone();
    let mut aggregates: Vec<(&String, &Vec<Recorded>)> = events.by_aggregate.iter().collect();
    aggregates.sort_by_key(|(id, _)| *id);
    for (aggregate, recorded) in aggregates {
        for reason in version_clashes(recorded).into_iter().chain(repeated_steps(recorded)) {
            broken.push(Offence::new(aggregate, reason));
        }
    }
    for duplicate in inbox {
        broken.push(Offence::new(duplicate.event_id, format!("{} rows in the {} inbox (processed_events)", duplicate.rows, duplicate.database)));
    }
    let records = usize::try_from(events.records_read).unwrap_or(usize::MAX);
    Invariant::new(NAME, &[("aggregates", events.by_aggregate.len()), ("records", records)], broken)
}

/// The state machine each event type versions: one order id keys the order,
/// its reservation, its payment and its shipment, each with its own version.
pub fn family(kind: &str) -> &'static str {
    match kind {
        "OrderPlaced" | "OrderConfirmed" | "OrderCancelled" | "OrderCompleted" | "OrderDeliveryFailed" => "order",
        "StockReserved" | "StockRejected" | "StockReleased" | "StockCommitted" | "StockReturned" => "reservation",
        "ShipmentRequested" | "ShipmentDelivered" | "ShipmentFailed" => "shipment",
        "ProductCreated" | "StockAdjusted" => "product",
        _ => "payment",
    }
}

/// Distinct events that claim the same version of the same state machine.
pub fn version_clashes(recorded: &[Recorded]) -> Vec<String> {
    let mut by_version: BTreeMap<(&str, i64), Vec<&Recorded>> = BTreeMap::new();
    for event in recorded {
        by_version.entry((family(event.kind), event.version)).or_default().push(event);
    }
    by_version
        .into_iter()
        .filter(|(_, events)| distinct_ids(events) > 1)
        .map(|((family, version), events)| format!("{family} version {version} has {} events: {}", events.len(), named(&events)))
        .collect()
}

/// Saga steps that happened more than once.
pub fn repeated_steps(recorded: &[Recorded]) -> Vec<String> {
    AT_MOST_ONCE
        .iter()
        .filter_map(|kinds| {
            let events: Vec<&Recorded> = recorded.iter().filter(|e| kinds.contains(&e.kind)).collect();
            (distinct_ids(&events) > 1).then(|| format!("{} events of {}: {}", events.len(), kinds.join("|"), named(&events)))
        })
        .collect()
}

fn distinct_ids(events: &[&Recorded]) -> usize {
    let mut ids: Vec<Uuid> = events.iter().map(|e| e.event_id).collect();
    ids.sort_unstable();
    ids.dedup();
    ids.len()
}

fn named(events: &[&Recorded]) -> String {
    events.iter().map(|e| format!("{} {}", e.kind, e.event_id)).collect::<Vec<_>>().join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rules::fixtures::{event, id};

    fn saga() -> EventLog {
        let mut events = EventLog::default();
        let order = id(1).to_string();
        for (kind, n, version) in [
            ("OrderPlaced", 1, 1),
            ("StockReserved", 2, 1),
            ("PaymentRequested", 3, 1),
            ("PaymentCaptured", 4, 2),
            ("OrderConfirmed", 5, 2),
            ("StockCommitted", 6, 2),
        ] {
            events.add(&order, event(kind, n, version, 0));
        }
        events.add(&order, event("OrderConfirmed", 5, 2, 0));
        events
    }

    #[test]
    fn holds_for_one_saga_even_with_a_record_delivered_twice() {
        let result = check(&saga(), &[]);
        assert!(result.held, "{result}");
    }

    #[test]
    fn a_second_event_at_one_version_or_of_one_step_breaks_it() {
        let mut events = saga();
        events.add(&id(1).to_string(), event("StockRejected", 7, 3, 0));
        events.add(&id(1).to_string(), event("PaymentFailed", 8, 2, 0));
        let result = check(&events, &[InboxDuplicate { database: "payments", event_id: id(9), rows: 2 }]);
        let reasons: Vec<&str> = result.broken.iter().map(|o| o.reason.as_str()).collect();
        assert!(reasons[0].starts_with("payment version 2 has 2 events"), "{reasons:?}");
        assert!(reasons[1].starts_with("2 events of StockReserved|StockRejected"), "{reasons:?}");
        assert_eq!(result.broken[2].id, id(9).to_string());
        assert_eq!(reasons.len(), 3);
    }
}
