//! The carrier signs each callback with lowercase hex HMAC-SHA256, keyed with
//! the shared key, over `timestamp + "." + body`. The body is signed as the
//! bytes sent, not as parsed JSON: a receiver verifies before it parses, and
//! no two JSON encoders need agree on spacing or key order. The timestamp is
//! signed with it so that an old callback cannot be replayed with a new one.

use hmac::{Hmac, Mac};
use sha2::Sha256;

pub const TIMESTAMP_HEADER: &str = "x-carrier-timestamp";
pub const SIGNATURE_HEADER: &str = "x-carrier-signature";

type HmacSha256 = Hmac<Sha256>;

fn mac(key: &str, timestamp: &str, body: &[u8]) -> HmacSha256 {
    let mut mac = HmacSha256::new_from_slice(key.as_bytes()).expect("HMAC takes a key of any length");
    mac.update(timestamp.as_bytes());
    mac.update(b".");
    mac.update(body);
    mac
}

pub fn sign(key: &str, timestamp: &str, body: &[u8]) -> String {
    hex::encode(mac(key, timestamp, body).finalize().into_bytes())
}

/// Compares in constant time, so the time taken tells an attacker nothing
/// about how much of a forged signature was right. Upper-case hex is the same
/// signature.
pub fn verify(key: &str, timestamp: &str, body: &[u8], signature: &str) -> bool {
    let Ok(given) = hex::decode(signature.trim()) else { return false };
    mac(key, timestamp, body).verify_slice(&given).is_ok()
}

/// Whether a callback's timestamp (decimal unix seconds) is within
/// `tolerance_secs` of `now_unix_secs` either way: a receiver refuses a stale
/// one, as it may be a replay of a callback captured earlier, and tolerates a
/// little clock skew into the future.
pub fn fresh(timestamp: &str, now_unix_secs: i64, tolerance_secs: i64) -> bool {
    let (Ok(sent), Ok(tolerance)) = (timestamp.parse::<i64>(), u64::try_from(tolerance_secs)) else { return false };
    now_unix_secs.abs_diff(sent) <= tolerance
}

#[cfg(test)]
mod tests {
    use super::*;

    const BODY: &[u8] = br#"{"shipment_id":"s-1","order_id":"o-1","status":"delivered"}"#;

    #[test]
    fn a_signature_verifies_and_any_change_breaks_it() {
        let signature = sign("key", "1700000000", BODY);
        assert_eq!(signature.len(), 64);
        assert_eq!(signature, signature.to_lowercase());
        assert!(verify("key", "1700000000", BODY, &signature));
        assert!(verify("key", "1700000000", BODY, &signature.to_uppercase()));
        assert!(!verify("other", "1700000000", BODY, &signature), "another key");
        assert!(!verify("key", "1700000001", BODY, &signature), "another timestamp");
        assert!(!verify("key", "1700000000", &BODY[1..], &signature), "another body");
        let mut flipped = signature.clone().into_bytes();
        flipped[10] = if flipped[10] == b'0' { b'1' } else { b'0' };
        assert!(!verify("key", "1700000000", BODY, &String::from_utf8(flipped).unwrap()), "another signature");
        assert!(!verify("key", "1700000000", BODY, &signature[..62]), "a truncated signature");
        assert!(!verify("key", "1700000000", BODY, ""));
        assert!(!verify("key", "1700000000", BODY, "not hex"));
    }

    /// The timestamp and the body are kept apart by the dot: moving a digit
    /// from one to the other is another message.
    #[test]
    fn the_timestamp_and_the_body_cannot_trade_bytes() {
        assert_ne!(sign("key", "17", b"0.{}"), sign("key", "170", b"{}"));
        assert_eq!(sign("key", "17", b"{}"), sign("key", "17", b"{}"));
    }

    #[test]
    fn freshness_is_within_the_tolerance_either_way() {
        let now = 1_700_000_000;
        assert!(fresh("1700000000", now, 300));
        assert!(fresh("1699999700", now, 300), "exactly the tolerance old");
        assert!(!fresh("1699999699", now, 300), "one second too old");
        assert!(fresh("1700000300", now, 300), "exactly the tolerance ahead");
        assert!(!fresh("1700000301", now, 300), "one second too far ahead");
        assert!(fresh("1700000000", now, 0));
        assert!(!fresh("1700000000", now, -1), "a negative tolerance accepts nothing");
        for unparsable in ["", "soon", "1700000000.5", " 1700000000", "99999999999999999999"] {
            assert!(!fresh(unparsable, now, 300), "{unparsable:?}");
        }
        assert!(!fresh(&i64::MIN.to_string(), i64::MAX, i64::MAX), "no overflow");
    }
}
