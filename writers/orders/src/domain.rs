//! The rules of an order that need no database: its statuses and what a valid
//! placement request is.

use std::collections::HashSet;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use utoipa::ToSchema;

use crate::settings::OrderLimits;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum OrderStatus {
    Pending,
    /// Paid; handed to shipping, which ends it COMPLETED or DELIVERY_FAILED.
    Confirmed,
    Cancelled,
    Completed,
    /// The carrier could not deliver: refunded and restocked, terminal.
    DeliveryFailed,
}

impl OrderStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            OrderStatus::Pending => "PENDING",
            OrderStatus::Confirmed => "CONFIRMED",
            OrderStatus::Cancelled => "CANCELLED",
            OrderStatus::Completed => "COMPLETED",
            OrderStatus::DeliveryFailed => "DELIVERY_FAILED",
        }
    }

    pub fn parse(value: &str) -> Option<Self> {
        match value {
            "PENDING" => Some(OrderStatus::Pending),
            "CONFIRMED" => Some(OrderStatus::Confirmed),
            "CANCELLED" => Some(OrderStatus::Cancelled),
            "COMPLETED" => Some(OrderStatus::Completed),
            "DELIVERY_FAILED" => Some(OrderStatus::DeliveryFailed),
            _ => None,
        }
    }
}

/// One requested line: quantities arrive as i64 so that a negative or huge
/// number is refused with a clear message instead of a parse error.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RequestedLine {
    /// A product's SKU; one line per SKU in an order.
    #[schema(pattern = "^[A-Za-z0-9._-]{1,64}$", min_length = 1, max_length = 64)]
    pub sku: String,
    /// At most `orders.max_quantity` (1,000 by default).
    #[schema(minimum = 1, maximum = 1000)]
    #[serde(deserialize_with = "outflow_service::error::json_integer")]
    pub quantity: i64,
}

/// Why a placement request is refused before any row is read.
#[derive(Debug, PartialEq, thiserror::Error)]
pub enum InvalidOrder {
    #[error("an order needs at least one item")]
    Empty,
    #[error("an order has at most {0} lines")]
    TooManyLines(usize),
    #[error("quantity of {sku} must be between 1 and {max}")]
    Quantity { sku: String, max: i64 },
    #[error("{0} appears more than once; send one line per SKU")]
    DuplicateSku(String),
    #[error("a SKU is 1 to 64 ASCII letters, digits, dots, underscores or hyphens")]
    BadSku,
}

impl InvalidOrder {
    pub fn code(&self) -> &'static str {
        match self {
            InvalidOrder::Empty => "empty_order",
            InvalidOrder::TooManyLines(_) => "too_many_lines",
            InvalidOrder::Quantity { .. } => "invalid_quantity",
            InvalidOrder::DuplicateSku(_) => "duplicate_sku",
            InvalidOrder::BadSku => "invalid_sku",
        }
    }
}

pub fn validate(lines: &[RequestedLine], limits: OrderLimits) -> Result<(), InvalidOrder> {
    if lines.is_empty() {
        return Err(InvalidOrder::Empty);
    }
    if lines.len() > limits.max_lines {
        return Err(InvalidOrder::TooManyLines(limits.max_lines));
    }
    let mut seen = HashSet::new();
    for line in lines {
        if !outflow_events::sku::is_valid(&line.sku) {
            return Err(InvalidOrder::BadSku);
        }
        if !(1..=limits.max_quantity).contains(&line.quantity) {
            return Err(InvalidOrder::Quantity { sku: line.sku.clone(), max: limits.max_quantity });
        }
        if !seen.insert(line.sku.as_str()) {
            return Err(InvalidOrder::DuplicateSku(line.sku.clone()));
        }
    }
    Ok(())
}

/// What "the same body" means for an idempotency key: the same lines in the same order.
pub fn request_hash(lines: &[RequestedLine]) -> String {
    let mut hasher = Sha256::new();
    for line in lines {
        hasher.update(line.sku.as_bytes());
        hasher.update([0]);
        hasher.update(line.quantity.to_be_bytes());
    }
    hasher.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: OrderLimits = OrderLimits { max_lines: 3, max_quantity: 10 };

    fn line(sku: &str, quantity: i64) -> RequestedLine {
        RequestedLine { sku: sku.into(), quantity }
    }

    #[test]
    fn each_invalid_placement_has_its_reason() {
        let cases = [
            (vec![], InvalidOrder::Empty),
            (vec![line("a", 1), line("b", 1), line("c", 1), line("d", 1)], InvalidOrder::TooManyLines(3)),
            (vec![line("a", 0)], InvalidOrder::Quantity { sku: "a".into(), max: 10 }),
            (vec![line("a", -2)], InvalidOrder::Quantity { sku: "a".into(), max: 10 }),
            (vec![line("a", 11)], InvalidOrder::Quantity { sku: "a".into(), max: 10 }),
            (vec![line("a", 1), line("a", 2)], InvalidOrder::DuplicateSku("a".into())),
            (vec![line("", 1)], InvalidOrder::BadSku),
        ];
        for (lines, expected) in cases {
            assert_eq!(validate(&lines, LIMITS), Err(expected));
        }
        assert_eq!(validate(&[line("a", 10), line("b", 1)], LIMITS), Ok(()));
    }

    #[test]
    fn the_request_hash_tells_bodies_apart() {
        let one = request_hash(&[line("a", 1), line("b", 2)]);
        assert_eq!(one, request_hash(&[line("a", 1), line("b", 2)]));
        assert_ne!(one, request_hash(&[line("a", 1), line("b", 3)]));
        assert_ne!(one, request_hash(&[line("b", 2), line("a", 1)]));
    }
}
