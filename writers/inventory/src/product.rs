//! What a valid product is, and a product as the API shows it.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sqlx::{postgres::PgRow, Row};
use utoipa::ToSchema;

pub const MAX_STOCK: i64 = 1_000_000;
pub const MAX_PRICE_MINOR: i64 = 1_000_000_000_000;

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewProduct {
    #[schema(pattern = "^[A-Za-z0-9._-]{1,64}$", min_length = 1, max_length = 64)]
    pub sku: String,
    /// Up to 200 characters, not only spaces, and no NUL (PostgreSQL text cannot hold one).
    #[schema(pattern = "^[^\\u0000]*[^ \t\r\n\\u0000][^\\u0000]*$", min_length = 1, max_length = 200)]
    pub name: String,
    /// The unit price in the currency's minor unit (cents).
    #[schema(minimum = 0, maximum = 1_000_000_000_000_i64)]
    #[serde(deserialize_with = "outflow_service::error::json_integer")]
    pub price_minor: i64,
    /// An ISO 4217 code.
    #[schema(pattern = "^[A-Z]{3}$", min_length = 3, max_length = 3)]
    pub currency: String,
    #[schema(minimum = 0, maximum = 1_000_000)]
    #[serde(deserialize_with = "outflow_service::error::json_integer")]
    pub stock: i64,
}

#[derive(Debug, PartialEq, thiserror::Error)]
pub enum InvalidProduct {
    #[error("a SKU is 1 to 64 of A-Z, a-z, 0-9, '.', '_' and '-'")]
    Sku,
    #[error("a name is 1 to 200 characters, not only spaces, without NUL")]
    Name,
    #[error("price_minor must be between 0 and {MAX_PRICE_MINOR}")]
    Price,
    #[error("currency is an ISO 4217 code such as EUR")]
    Currency,
    #[error("stock and quantities must be between {min} and {MAX_STOCK}")]
    Quantity { min: i64 },
}

pub use outflow_events::sku::is_valid as valid_sku;

impl NewProduct {
    pub fn validate(&self) -> Result<(), InvalidProduct> {
        if !valid_sku(&self.sku) {
            return Err(InvalidProduct::Sku);
        }
        // The OpenAPI pattern says the same: some character that is not a space, tab or line break.
        let blank = self.name.chars().all(|c| matches!(c, ' ' | '\t' | '\r' | '\n'));
        if blank || self.name.contains('\0') || self.name.chars().count() > 200 {
            return Err(InvalidProduct::Name);
        }
        if !(0..=MAX_PRICE_MINOR).contains(&self.price_minor) {
            return Err(InvalidProduct::Price);
        }
        if self.currency.len() != 3 || !self.currency.bytes().all(|b| b.is_ascii_uppercase()) {
            return Err(InvalidProduct::Currency);
        }
        validate_quantity(self.stock, 0)
    }
}

pub fn validate_quantity(quantity: i64, min: i64) -> Result<(), InvalidProduct> {
    if (min..=MAX_STOCK).contains(&quantity) {
        Ok(())
    } else {
        Err(InvalidProduct::Quantity { min })
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Product {
    pub sku: String,
    pub name: String,
    pub price_minor: i64,
    pub currency: String,
    pub on_hand: i32,
    pub reserved: i32,
    pub available: i32,
    pub version: i64,
    pub updated_at: DateTime<Utc>,
}

pub const PRODUCT_COLUMNS: &str = "sku, name, price_minor, currency, on_hand, reserved, version, updated_at";

impl From<PgRow> for Product {
    fn from(row: PgRow) -> Self {
        let (on_hand, reserved): (i32, i32) = (row.get("on_hand"), row.get("reserved"));
        Product {
            sku: row.get("sku"),
            name: row.get("name"),
            price_minor: row.get("price_minor"),
            currency: row.get("currency"),
            on_hand,
            reserved,
            available: on_hand - reserved,
            version: row.get("version"),
            updated_at: row.get("updated_at"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn product() -> NewProduct {
        NewProduct { sku: "MUG-1".into(), name: "Mug".into(), price_minor: 250, currency: "EUR".into(), stock: 5 }
    }

    /// A change that spoils one field, and the reason it must be refused with.
    type Spoiled = (fn(&mut NewProduct), InvalidProduct);

    #[test]
    fn each_invalid_field_has_its_reason() {
        assert_eq!(product().validate(), Ok(()));
        let cases: [Spoiled; 9] = [
            (|p| p.sku = "".into(), InvalidProduct::Sku),
            (|p| p.sku = "has space".into(), InvalidProduct::Sku),
            (|p| p.name = " ".into(), InvalidProduct::Name),
            (|p| p.name = "Mu\0g".into(), InvalidProduct::Name),
            (|p| p.name = " \t".into(), InvalidProduct::Name),
            (|p| p.price_minor = -1, InvalidProduct::Price),
            (|p| p.currency = "eur".into(), InvalidProduct::Currency),
            (|p| p.stock = -1, InvalidProduct::Quantity { min: 0 }),
            (|p| p.stock = MAX_STOCK + 1, InvalidProduct::Quantity { min: 0 }),
        ];
        for (spoil, expected) in cases {
            let mut p = product();
            spoil(&mut p);
            assert_eq!(p.validate(), Err(expected));
        }
    }
}
