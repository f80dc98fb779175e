//! Webhook secrets and the signature of a delivery (Standard Webhooks).

use base64::Engine;
use rand::RngCore;

pub const ID_HEADER: &str = "webhook-id";
pub const TIMESTAMP_HEADER: &str = "webhook-timestamp";
pub const SIGNATURE_HEADER: &str = "webhook-signature";

/// A new secret: 32 random bytes, `whsec_` and base64, the form Standard
/// Webhooks libraries take.
pub fn new_secret() -> String {
    let mut key = [0_u8; 32];
    rand::rng().fill_bytes(&mut key);
    format!("whsec_{}", base64::engine::general_purpose::STANDARD.encode(key))
}

/// The headers that sign `body`, sent as event `id` at `timestamp` (unix seconds).
pub fn headers(secret: &str, id: &str, timestamp: i64, body: &[u8]) -> anyhow::Result<[(&'static str, String); 3]> {
    let webhook = standardwebhooks::Webhook::new(secret).map_err(|e| anyhow::anyhow!("the webhook's secret: {e}"))?;
    let signature = webhook.sign(id, timestamp, body).map_err(|e| anyhow::anyhow!("signing the delivery: {e}"))?;
    Ok([(ID_HEADER, id.to_owned()), (TIMESTAMP_HEADER, timestamp.to_string()), (SIGNATURE_HEADER, signature)])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header_map(headers: &[(&'static str, String)]) -> http::HeaderMap {
        headers.iter().map(|(name, value)| (http::HeaderName::from_static(name), value.parse().unwrap())).collect()
    }

    #[test]
    fn a_delivery_verifies_with_its_secret_only_and_not_once_changed() {
        let (secret, other) = (new_secret(), new_secret());
        assert_ne!(secret, other);
        let body = br#"{"type":"order_confirmed"}"#;
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64;
        let signed = header_map(&headers(&secret, "event-1", now, body).unwrap());
        let verifier = standardwebhooks::Webhook::new(&secret).unwrap();
        verifier.verify(body, &signed).expect("the signature verifies");
        assert!(standardwebhooks::Webhook::new(&other).unwrap().verify(body, &signed).is_err(), "another secret");
        assert!(verifier.verify(br#"{"type":"order_cancelled"}"#, &signed).is_err(), "another body");
        let replayed = header_map(&headers(&secret, "event-1", now - 3600, body).unwrap());
        assert!(verifier.verify(body, &replayed).is_err(), "an hour-old timestamp is refused as a replay");
    }
}
