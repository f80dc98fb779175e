//! What the sandbox writes to its journal (`outflow-sandbox-journal`): a
//! real provider does not forget a transaction because one of its processes
//! died. A forgotten capture could never be refunded (the refund would find
//! nothing) and a forgotten pending payment would never settle. The last line
//! of an order wins.

use std::collections::HashMap;

use outflow_sandbox_journal::Fold;
use serde::{Deserialize, Serialize};

use crate::{Outcome, Transaction};

pub type Journal = outflow_sandbox_journal::Journal<Recovered>;

#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Entry {
    Transaction(Transaction),
    Forced { order_id: String, outcome: Outcome },
}

/// What a journal held when it was opened.
#[derive(Debug, Default)]
pub struct Recovered {
    pub transactions: HashMap<String, Transaction>,
    pub forced: HashMap<String, Outcome>,
}

impl Fold for Recovered {
    type Entry = Entry;

    fn apply(&mut self, entry: Entry) {
        match entry {
            Entry::Transaction(t) => {
                self.transactions.insert(t.order_id.clone(), t);
            }
            Entry::Forced { order_id, outcome } => {
                self.forced.insert(order_id, outcome);
            }
        }
    }

    fn entries(&self) -> Vec<Entry> {
        let transactions = self.transactions.values().map(|t| Entry::Transaction(t.clone()));
        let forced = self.forced.iter().map(|(order_id, outcome)| Entry::Forced { order_id: order_id.clone(), outcome: *outcome });
        transactions.chain(forced).collect()
    }
}

#[cfg(test)]
mod tests {
    use std::{fs, path::PathBuf};

    use super::*;
    use crate::Status;

    fn transaction(order_id: &str, status: Status) -> Transaction {
        Transaction {
            transaction_id: format!("t-{order_id}"),
            order_id: order_id.into(),
            gross_amount: "9.90".into(),
            token: "token".into(),
            redirect_url: "http://127.0.0.1/pay/token".into(),
            outcome: None,
            transaction_status: status,
            notified: false,
            refunded: false,
        }
    }

    fn scratch(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("outflow-provider-sandbox-journal-{}-{name}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        dir.join("journal.jsonl")
    }

    #[test]
    fn the_last_line_of_an_order_wins_and_survives_a_reopen() {
        let path = scratch("reopen");
        let (journal, recovered) = Journal::open(&path).unwrap();
        assert!(recovered.transactions.is_empty());
        journal.append(&Entry::Transaction(transaction("a", Status::Pending))).unwrap();
        journal.append(&Entry::Transaction(transaction("b", Status::Pending))).unwrap();
        journal.append(&Entry::Transaction(transaction("a", Status::Settlement))).unwrap();
        journal.append(&Entry::Forced { order_id: "b".into(), outcome: Outcome::Deny }).unwrap();
        drop(journal);
        let (_, recovered) = Journal::open(&path).unwrap();
        assert_eq!(recovered.transactions["a"].transaction_status, Status::Settlement);
        assert_eq!(recovered.transactions["b"].transaction_status, Status::Pending);
        assert_eq!(recovered.forced["b"], Outcome::Deny);
        assert_eq!(fs::read_to_string(&path).unwrap().lines().count(), 3, "compacted to one line per order and forced outcome");
    }

    /// Journals written before the journal was shared by both sandboxes still open.
    #[test]
    fn a_journal_line_keeps_its_shape() {
        let line = r#"{"kind":"transaction","transaction_id":"t","order_id":"a","gross_amount":"9.90","token":"k","redirect_url":"u","outcome":"settle","transaction_status":"settlement","notified":true,"refunded":false}"#;
        let mut recovered = Recovered::default();
        recovered.apply(serde_json::from_str(line).unwrap());
        recovered.apply(serde_json::from_str(r#"{"kind":"forced","order_id":"b","outcome":"never"}"#).unwrap());
        assert_eq!(recovered.transactions["a"].outcome, Some(Outcome::Settle));
        assert_eq!(recovered.forced["b"], Outcome::Never);
    }
}
