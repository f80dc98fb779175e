//! What a check found: each invariant held or broken, with the offending ids.

use std::{collections::BTreeMap, fmt};

use serde::Serialize;

/// How many offences of one invariant the one-line form lists; the JSON and
/// [`Report::ensure_held`] carry all of them.
const LISTED: usize = 20;

#[derive(Clone, Debug, Serialize)]
pub struct Report {
    /// `all`, or how many orders and SKUs a scoped check named.
    pub scope: String,
    pub invariants: Vec<Invariant>,
    /// Orders of the scope found in the orders table.
    pub orders_checked: usize,
    /// Products of the scope found in the inventory table.
    pub skus_checked: usize,
    /// Records read from the event topics (all of them, in or out of scope).
    pub records_read: u64,
    /// Records read from the dead-letter topics.
    pub dead_letters_read: u64,
    /// Events of the scope that are on the event topics more than once (same
    /// event id): harmless to the consumers (their inboxes), counted for the
    /// cost of Connect's at-least-once delivery.
    pub kafka_duplicates: u64,
    pub took_ms: u64,
}

#[derive(Clone, Debug, Serialize)]
pub struct Invariant {
    pub name: &'static str,
    pub held: bool,
    /// What the rule looked at, e.g. `{"orders": 412, "skus": 12}`.
    pub checked: BTreeMap<&'static str, usize>,
    pub broken: Vec<Offence>,
}

/// One id that breaks an invariant, and why.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Offence {
    /// An order id, a SKU, an event id or a dead letter's key.
    pub id: String,
    pub reason: String,
}

impl Offence {
    pub fn new(id: impl fmt::Display, reason: impl Into<String>) -> Self {
        Offence { id: id.to_string(), reason: reason.into() }
    }
}

impl Invariant {
    pub fn new(name: &'static str, checked: &[(&'static str, usize)], broken: Vec<Offence>) -> Self {
        Invariant { name, held: broken.is_empty(), checked: checked.iter().copied().collect(), broken }
    }
}

impl Report {
    pub fn held(&self) -> bool {
        self.invariants.iter().all(|i| i.held)
    }

    /// The invariant of that name, for tests that assert on one rule.
    pub fn invariant(&self, name: &str) -> Option<&Invariant> {
        self.invariants.iter().find(|i| i.name == name)
    }

    /// Ok when every invariant holds; otherwise an error that lists every
    /// offence (uncapped, unlike the one-line form), so a failing test says it all.
    pub fn ensure_held(&self) -> anyhow::Result<()> {
        if self.held() {
            return Ok(());
        }
        let mut text = String::from("invariants broken:");
        for invariant in self.invariants.iter().filter(|i| !i.held) {
            for offence in &invariant.broken {
                text.push_str(&format!("\n  {}: {}: {}", invariant.name, offence.id, offence.reason));
            }
        }
        anyhow::bail!(text)
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, invariant) in self.invariants.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{invariant}")?;
        }
        Ok(())
    }
}

impl fmt::Display for Invariant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.held {
            let counts: Vec<String> = self.checked.iter().map(|(what, n)| format!("{n} {what}")).collect();
            return write!(f, "✓ {} ({})", self.name, counts.join(", "));
        }
        let listed: Vec<String> = self.broken.iter().take(LISTED).map(|o| format!("{}: {}", o.id, o.reason)).collect();
        write!(f, "✗ {}: {}", self.name, listed.join("; "))?;
        if self.broken.len() > LISTED {
            write!(f, "; and {} more", self.broken.len() - LISTED)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(invariants: Vec<Invariant>) -> Report {
        Report { scope: "all".into(), invariants, orders_checked: 0, skus_checked: 0, records_read: 0, dead_letters_read: 0, kafka_duplicates: 0, took_ms: 0 }
    }

    #[test]
    fn a_held_invariant_shows_its_counts_and_a_broken_one_its_offences() {
        let held = Invariant::new("money", &[("orders", 412)], vec![]);
        let broken = Invariant::new("stock", &[("skus", 2)], vec![Offence::new("SKU-1", "reserved 3, but RESERVED reservations hold 2")]);
        let report = report(vec![held, broken]);
        assert_eq!(report.to_string(), "✓ money (412 orders)\n✗ stock: SKU-1: reserved 3, but RESERVED reservations hold 2");
        assert!(!report.held());
        let error = report.ensure_held().unwrap_err().to_string();
        assert!(error.contains("stock: SKU-1: reserved 3"), "{error}");
    }

    #[test]
    fn the_one_line_form_lists_twenty_offences_and_counts_the_rest() {
        let broken = (0..23).map(|i| Offence::new(i, "late")).collect();
        let line = Invariant::new("terminal", &[("orders", 23)], broken).to_string();
        assert!(line.ends_with("19: late; and 3 more"), "{line}");
        assert!(report(vec![]).ensure_held().is_ok());
    }
}
