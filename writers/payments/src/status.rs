//! What a provider status means for a payment. The provider signs only
//! `order_id + status_code + gross_amount`, so `transaction_status` and
//! `fraud_status` are trusted only as far as they agree with the signed
//! `status_code`: a signed "pending" (201) sent with "settlement" is refused.

/// What a notification asks of the payment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Transition {
    Capture,
    Fail,
    /// Pending, under fraud review, or a refund we asked for: nothing to do.
    None,
}

/// Why a status is refused.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum StatusError {
    #[error("unknown transaction_status {0}")]
    Unknown(String),
    #[error("status_code {code} does not go with transaction_status {status} (fraud_status {fraud})")]
    Mismatch { code: String, status: String, fraud: String },
}

const KNOWN: [&str; 9] = ["capture", "settlement", "pending", "deny", "cancel", "expire", "failure", "refund", "partial_refund"];

/// 200: settlement, or capture with fraud_status accept (and refunds we made);
/// 201: pending, or capture held for fraud review (challenge);
/// 202: deny, cancel, expire, failure. Anything else is refused.
pub fn transition(status_code: &str, transaction_status: &str, fraud_status: Option<&str>) -> Result<Transition, StatusError> {
    if !KNOWN.contains(&transaction_status) {
        return Err(StatusError::Unknown(transaction_status.to_owned()));
    }
    let fraud = fraud_status.unwrap_or("");
    let decided = match (status_code, transaction_status) {
        ("200", "settlement") => Some(Transition::Capture),
        ("200", "capture") if fraud == "accept" => Some(Transition::Capture),
        ("200", "refund" | "partial_refund") => Some(Transition::None),
        ("201", "pending") => Some(Transition::None),
        ("201", "capture") if fraud == "challenge" => Some(Transition::None),
        ("202", "deny" | "cancel" | "expire" | "failure") => Some(Transition::Fail),
        _ => None,
    };
    decided.ok_or_else(|| StatusError::Mismatch { code: status_code.to_owned(), status: transaction_status.to_owned(), fraud: fraud.to_owned() })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_200_settlement_or_an_accepted_capture_captures() {
        assert_eq!(transition("200", "settlement", None), Ok(Transition::Capture));
        assert_eq!(transition("200", "capture", Some("accept")), Ok(Transition::Capture));
        assert!(matches!(transition("200", "capture", None), Err(StatusError::Mismatch { .. })));
        assert!(matches!(transition("200", "capture", Some("challenge")), Err(StatusError::Mismatch { .. })));
        assert_eq!(transition("201", "capture", Some("challenge")), Ok(Transition::None));
    }

    #[test]
    fn a_signed_pending_code_cannot_carry_a_settlement() {
        assert!(matches!(transition("201", "settlement", None), Err(StatusError::Mismatch { .. })));
        assert!(matches!(transition("202", "settlement", None), Err(StatusError::Mismatch { .. })));
        assert!(matches!(transition("201", "deny", None), Err(StatusError::Mismatch { .. })));
        assert!(matches!(transition("200", "pending", None), Err(StatusError::Mismatch { .. })));
        assert_eq!(transition("201", "pending", None), Ok(Transition::None));
    }

    #[test]
    fn failures_come_with_202_only() {
        for status in ["deny", "cancel", "expire", "failure"] {
            assert_eq!(transition("202", status, None), Ok(Transition::Fail), "{status}");
            assert!(transition("200", status, None).is_err(), "{status}");
        }
    }

    #[test]
    fn unknown_statuses_and_codes_are_refused() {
        assert_eq!(transition("200", "paid", None), Err(StatusError::Unknown("paid".into())));
        assert!(matches!(transition("500", "settlement", None), Err(StatusError::Mismatch { .. })));
        assert!(matches!(transition("", "settlement", None), Err(StatusError::Mismatch { .. })));
    }
}
