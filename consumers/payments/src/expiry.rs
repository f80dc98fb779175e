//! The saga's timeout. A payment still PENDING past its deadline fails with
//! reason `expired` (`PaymentFailed`), and the orders side cancels the order
//! like after any failed payment. Each expiry is its own transaction, taken
//! with `for update skip locked`, so several consumers may sweep at once.
//! The same sweep finishes refunds left owed (`REFUNDING`) for a while: their
//! first caller crashed, or the provider was down.

use std::time::Duration;

use outflow_events::payment::PaymentFailed;
use outflow_outbox::{new_event_id, now_millis, Outbox, TraceContext};
use outflow_payments::{provider::ProviderClient, refund};
use sqlx::PgPool;
use tokio::sync::watch;
use uuid::Uuid;

/// How long a refund may stay owed before the sweep takes it over from its
/// first caller, which normally finishes it within a provider call.
const REFUND_OWED_FOR: Duration = Duration::from_secs(5);

/// Expires overdue payments and finishes owed refunds every `interval` until
/// `stop` turns true.
pub async fn sweep(
    pool: PgPool,
    outbox: std::sync::Arc<Outbox>,
    provider: ProviderClient,
    deadline: Duration,
    interval: Duration,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        match expire_overdue(&pool, &outbox, deadline).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(expired = n, "payments expired"),
            Err(e) => tracing::warn!(error = format!("{e:#}"), "expiry sweep failed; trying again"),
        }
        match refund::finish_stuck(&pool, &outbox, &provider, REFUND_OWED_FOR).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(refunded = n, "owed refunds finished"),
            Err(e) => tracing::warn!(error = format!("{e:#}"), "finishing owed refunds failed; trying again"),
        }
        tokio::select! {
            _ = tokio::time::sleep(interval) => {}
            _ = stop.changed() => return,
        }
    }
}

/// Expires every payment pending for longer than `deadline`; returns how many.
pub async fn expire_overdue(pool: &PgPool, outbox: &Outbox, deadline: Duration) -> anyhow::Result<usize> {
    let mut expired = 0;
    loop {
        let mut tx = pool.begin().await?;
        let overdue: Option<(Uuid, i64)> = sqlx::query_as(
            "select order_id, version from payments where status = 'PENDING' and created_at < now() - make_interval(secs => $1)
             order by created_at limit 1 for update skip locked",
        )
        .bind(deadline.as_secs_f64())
        .fetch_optional(&mut *tx)
        .await?;
        let Some((order_id, version)) = overdue else { return Ok(expired) };
        sqlx::query("update payments set status = 'FAILED', failure_reason = 'expired', version = $2, updated_at = now() where order_id = $1")
            .bind(order_id)
            .bind(version + 1)
            .execute(&mut *tx)
            .await?;
        let id = order_id.to_string();
        let failed = PaymentFailed {
            event_id: new_event_id(),
            aggregate_id: id.clone(),
            aggregate_version: version + 1,
            occurred_at: now_millis(),
            order_id: id,
            transaction_id: None,
            reason: "expired".into(),
        };
        outbox.append(&mut tx, &failed, &TraceContext::new_root()).await?;
        tx.commit().await?;
        expired += 1;
    }
}
