//! What the sandbox writes to its journal (`outflow-sandbox-journal`): a real
//! carrier does not lose a parcel because one of its processes died. A
//! forgotten shipment would stay in transit at the shipping side forever, and
//! a callback lost with the process would never be sent. The last line of an
//! order wins.

use std::collections::HashMap;

use outflow_carrier::ShipmentStatus;
use outflow_sandbox_journal::Fold;
use serde::{Deserialize, Serialize};

use crate::{Outcome, Parcel};

pub type Journal = outflow_sandbox_journal::Journal<Recovered>;

#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Entry {
    Shipment(Parcel),
    Forced { order_id: String, outcome: Outcome },
}

/// What a journal held when it was opened.
#[derive(Debug, Default)]
pub struct Recovered {
    pub parcels: HashMap<String, Parcel>,
    pub forced: HashMap<String, Outcome>,
}

/// What a sandbox opened on a journal takes up again.
#[derive(Debug, Default)]
pub struct UnderWay {
    /// Orders whose shipment is in transit and not held back with `never`.
    pub deciding: Vec<String>,
    /// Decided shipments whose callback was not accepted yet.
    pub notifying: Vec<Parcel>,
}

impl Recovered {
    pub fn under_way(&self) -> UnderWay {
        let mut under_way = UnderWay::default();
        for (order_id, parcel) in &self.parcels {
            match parcel.shipment.status {
                ShipmentStatus::InTransit if self.forced.get(order_id) != Some(&Outcome::Never) => under_way.deciding.push(order_id.clone()),
                ShipmentStatus::Delivered | ShipmentStatus::Failed if !parcel.notified => under_way.notifying.push(parcel.clone()),
                _ => {}
            }
        }
        under_way
    }
}

impl Fold for Recovered {
    type Entry = Entry;

    fn apply(&mut self, entry: Entry) {
        match entry {
            Entry::Shipment(parcel) => {
                self.parcels.insert(parcel.shipment.order_id.clone(), parcel);
            }
            Entry::Forced { order_id, outcome } => {
                self.forced.insert(order_id, outcome);
            }
        }
    }

    fn entries(&self) -> Vec<Entry> {
        let shipments = self.parcels.values().cloned().map(Entry::Shipment);
        let forced = self.forced.iter().map(|(order_id, &outcome)| Entry::Forced { order_id: order_id.clone(), outcome });
        shipments.chain(forced).collect()
    }
}

#[cfg(test)]
mod tests {
    use std::fs;

    use outflow_carrier::Shipment;

    use super::*;

    fn parcel(order_id: &str, status: ShipmentStatus, notified: bool) -> Parcel {
        let shipment = Shipment { shipment_id: format!("s-{order_id}"), order_id: order_id.into(), status, reason: None };
        Parcel { shipment, customer_id: "alice".into(), notified }
    }

    #[test]
    fn shipments_and_forced_outcomes_fold_and_survive_a_reopen() {
        let dir = std::env::temp_dir().join(format!("outflow-carrier-sandbox-journal-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        let path = dir.join("journal.jsonl");
        let (journal, _) = Journal::open(&path).unwrap();
        journal.append(&Entry::Shipment(parcel("a", ShipmentStatus::InTransit, false))).unwrap();
        journal.append(&Entry::Forced { order_id: "a".into(), outcome: Outcome::Fail }).unwrap();
        journal.append(&Entry::Shipment(parcel("a", ShipmentStatus::Failed, false))).unwrap();
        journal.append(&Entry::Shipment(parcel("a", ShipmentStatus::Failed, true))).unwrap();
        journal.append(&Entry::Forced { order_id: "b".into(), outcome: Outcome::Never }).unwrap();
        drop(journal);
        let (_, recovered) = Journal::open(&path).unwrap();
        let a = &recovered.parcels["a"];
        assert_eq!((a.shipment.status, a.notified, a.shipment.shipment_id.as_str()), (ShipmentStatus::Failed, true, "s-a"));
        assert_eq!(recovered.forced, HashMap::from([("a".to_owned(), Outcome::Fail), ("b".to_owned(), Outcome::Never)]));
        assert_eq!(fs::read_to_string(&path).unwrap().lines().count(), 3, "one line per shipment and per forced outcome");
    }

    #[test]
    fn in_transit_shipments_are_decided_and_unaccepted_callbacks_sent_again() {
        let mut recovered = Recovered::default();
        for parcel in [
            parcel("moving", ShipmentStatus::InTransit, false),
            parcel("held", ShipmentStatus::InTransit, false),
            parcel("failed-forced", ShipmentStatus::InTransit, false),
            parcel("delivered", ShipmentStatus::Delivered, false),
            parcel("failed", ShipmentStatus::Failed, false),
            parcel("accepted", ShipmentStatus::Delivered, true),
        ] {
            recovered.apply(Entry::Shipment(parcel));
        }
        recovered.apply(Entry::Forced { order_id: "held".into(), outcome: Outcome::Never });
        recovered.apply(Entry::Forced { order_id: "failed-forced".into(), outcome: Outcome::Fail });
        let under_way = recovered.under_way();
        let mut deciding = under_way.deciding;
        deciding.sort();
        assert_eq!(deciding, ["failed-forced", "moving"]);
        let mut notifying: Vec<_> = under_way.notifying.iter().map(|p| p.shipment.order_id.as_str()).collect();
        notifying.sort();
        assert_eq!(notifying, ["delivered", "failed"]);
    }
}
