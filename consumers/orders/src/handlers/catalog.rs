//! ProductCreated / StockAdjusted → the catalog replica (sku, name, price),
//! upserted only by a newer product version, so a redelivered or older event
//! never moves a price back.

use outflow_consumer::{db, HandlerError, Outcome};

use crate::Steps;

pub async fn upsert(steps: &Steps, sku: &str, name: &str, price_minor: i64, currency: &str, version: i64) -> Result<Outcome, HandlerError> {
    let changed = sqlx::query(
        "insert into catalog (sku, name, price_minor, currency, version) values ($1, $2, $3, $4, $5)
         on conflict (sku) do update set name = excluded.name, price_minor = excluded.price_minor,
             currency = excluded.currency, version = excluded.version
         where catalog.version < excluded.version",
    )
    .bind(sku)
    .bind(name)
    .bind(price_minor)
    .bind(currency)
    .bind(version)
    .execute(&steps.pool)
    .await
    .map_err(db)?;
    Ok(if changed.rows_affected() == 1 { Outcome::Applied } else { Outcome::Duplicate })
}
