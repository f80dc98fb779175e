//! `dead_letters`: the `.dlq` topics hold nothing but deliberate poison
//! (keys starting `poison-`); a scoped check looks only at its own keys.
//! The reader has already left out poison and other scopes' keys.

use crate::{
    report::{Invariant, Offence},
    snapshot::DeadLetter,
};

pub const NAME: &str = "dead_letters";

pub fn check(letters: &[DeadLetter], read: u64) -> Invariant {
    let broken = letters
        .iter()
        .map(|letter| {
            let id = letter.key.clone().unwrap_or_else(|| format!("{}/{}@{}", letter.topic, letter.partition, letter.offset));
            let reason = format!(
                "in {} (partition {}, offset {}) from {}: {}: {}",
                letter.topic, letter.partition, letter.offset, letter.group, letter.kind, letter.reason
            );
            Offence::new(id, reason)
        })
        .collect();
    Invariant::new(NAME, &[("dead letters", usize::try_from(read).unwrap_or(usize::MAX))], broken)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn holds_with_nothing_but_poison_read() {
        assert!(check(&[], 4).held);
    }

    #[test]
    fn a_dead_lettered_event_breaks_it_under_its_key() {
        let letter = DeadLetter {
            topic: "outflow.payment.events.dlq".into(),
            partition: 0,
            offset: 7,
            key: Some("0190-order".into()),
            group: "outflow-orders".into(),
            kind: "rejected".into(),
            reason: "no such order".into(),
        };
        let result = check(&[letter], 5);
        assert_eq!(
            result.broken,
            [Offence::new("0190-order", "in outflow.payment.events.dlq (partition 0, offset 7) from outflow-orders: rejected: no such order")]
        );
    }
}
