//! How long the saga stood still after each fault: from the fault until the
//! first order placed since then was confirmed. A fault the pipeline rides
//! through shows about the normal place → confirm time (printed beside it);
//! one that stops a step shows the outage plus that. Read from the orders
//! table after the run, on the database's clock (this machine's).

use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::Result;
use sqlx::PgPool;
use uuid::Uuid;

use crate::fault::Injected;

/// Fills in each fault's `confirms_again_ms`; answers the run's median
/// place → confirm time in ms.
pub async fn confirms_again(orders: &PgPool, ids: &[Uuid], run_started: SystemTime, faults: &mut [Injected]) -> Result<Option<u64>> {
    let start_s = run_started.duration_since(UNIX_EPOCH)?.as_secs_f64();
    for fault in faults.iter_mut() {
        let at = start_s + fault.at_ms as f64 / 1000.0;
        let first: Option<f64> = sqlx::query_scalar(
            "select extract(epoch from min(confirmed_at))::float8 from orders
             where id = any($1) and confirmed_at is not null and created_at >= to_timestamp($2)",
        )
        .bind(ids)
        .bind(at)
        .fetch_one(orders)
        .await?;
        fault.confirms_again_ms = first.map(|t| ((t - at) * 1000.0).max(0.0) as u64);
    }
    let median: Option<f64> = sqlx::query_scalar(
        "select percentile_cont(0.5) within group (order by extract(epoch from confirmed_at - created_at)::float8) * 1000
         from orders where id = any($1) and confirmed_at is not null",
    )
    .bind(ids)
    .fetch_one(orders)
    .await?;
    Ok(median.map(|ms| ms as u64))
}
