//! The provider signs each notification with hex SHA-512 of
//! `order_id + status_code + gross_amount + server_key`.

use sha2::{Digest, Sha512};
use subtle::ConstantTimeEq;

pub fn sign(order_id: &str, status_code: &str, gross_amount: &str, server_key: &str) -> String {
    let mut hasher = Sha512::new();
    for part in [order_id, status_code, gross_amount, server_key] {
        hasher.update(part.as_bytes());
    }
    hex::encode(hasher.finalize())
}

/// Compares in constant time, so the time taken tells an attacker nothing
/// about how much of a forged signature was right.
pub fn verify(order_id: &str, status_code: &str, gross_amount: &str, server_key: &str, signature: &str) -> bool {
    let expected = sign(order_id, status_code, gross_amount, server_key);
    let given = signature.trim().to_ascii_lowercase();
    expected.as_bytes().ct_eq(given.as_bytes()).into()
}

/// Minor units as the provider writes amounts: 12345 → "123.45".
pub fn gross_amount(amount_minor: i64) -> String {
    format!("{}.{:02}", amount_minor / 100, amount_minor % 100)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_signature_verifies_and_any_change_breaks_it() {
        let signature = sign("order-1", "200", "123.45", "key");
        assert_eq!(signature.len(), 128);
        assert!(verify("order-1", "200", "123.45", "key", &signature));
        assert!(verify("order-1", "200", "123.45", "key", &signature.to_uppercase()));
        assert!(!verify("order-1", "200", "123.46", "key", &signature));
        assert!(!verify("order-1", "201", "123.45", "key", &signature));
        assert!(!verify("order-1", "200", "123.45", "other", &signature));
        assert!(!verify("order-1", "200", "123.45", "key", ""));
    }

    #[test]
    fn amounts_are_written_with_two_decimals() {
        assert_eq!(gross_amount(12345), "123.45");
        assert_eq!(gross_amount(5), "0.05");
        assert_eq!(gross_amount(100), "1.00");
    }
}
