//! The saga's timeout. A payment still PENDING past its deadline fails with
//! reason `expired` (`PaymentFailed`), and the orders side cancels the order
//! like after any failed payment. The provider is asked first, since its
//! notification may have been lost: a transaction still payable is cancelled
//! there before the payment expires (so it cannot be paid after), and one the
//! customer did pay is refunded (the payment expires with a refund owed, like
//! a capture that arrives after the deadline). A provider that cannot be asked
//! leaves the payment for the next sweep. Each expiry is its own transaction,
//! taken with `for update skip locked`, so several consumers may sweep at once.
//! The same sweep finishes refunds left owed (`REFUNDING`) for a while: their
//! first caller crashed, or the provider was down.

use std::time::Duration;

use tracing::Instrument;

use outflow_outbox::{Outbox, TraceContext};
use outflow_payments::{
    events, refund,
    status::{transition, Transition},
};
use outflow_provider::ProviderClient;
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
        match expire_overdue(&pool, &outbox, &provider, deadline).await {
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

/// What the provider says of an overdue payment's transaction.
enum Verdict {
    /// Never opened, cancelled now, denied or expired there: nothing was paid.
    Unpaid,
    /// The customer paid: the money goes back.
    Paid { transaction_id: String, transaction_status: String },
}

/// Expires every payment pending for longer than `deadline` that the provider
/// could be asked about; returns how many.
pub async fn expire_overdue(pool: &PgPool, outbox: &Outbox, provider: &ProviderClient, deadline: Duration) -> anyhow::Result<usize> {
    let overdue: Vec<Uuid> = sqlx::query_scalar(
        "select order_id from payments where status = 'PENDING' and created_at < now() - make_interval(secs => $1) order by created_at limit 100",
    )
    .bind(deadline.as_secs_f64())
    .fetch_all(pool)
    .await?;
    let mut expired = 0;
    for order_id in overdue {
        let Some(verdict) = ask_provider(provider, order_id).await else { continue };
        let paid = matches!(verdict, Verdict::Paid { .. });
        if expire(pool, outbox, order_id, verdict).await? {
            expired += 1;
            if paid {
                if let Err(e) = refund::finish(pool, outbox, provider, order_id, &TraceContext::new_root()).await {
                    tracing::warn!(%order_id, error = format!("{e:#}"), "refunding a payment made after its deadline failed; it stays owed");
                }
            }
        }
    }
    Ok(expired)
}

/// None when the provider cannot be asked, or would not cancel a transaction
/// still open (the customer may be paying this very moment): next sweep.
async fn ask_provider(provider: &ProviderClient, order_id: Uuid) -> Option<Verdict> {
    let id = order_id.to_string();
    let reported = match provider.status(&id).await {
        Ok(None) => return Some(Verdict::Unpaid),
        Ok(Some(reported)) => reported,
        Err(e) => {
            tracing::warn!(%order_id, error = format!("{e:#}"), "the provider cannot be asked about an overdue payment; it expires later");
            return None;
        }
    };
    match transition(&reported.status_code, &reported.transaction_status, reported.fraud_status.as_deref()) {
        Ok(Transition::Capture) => Some(Verdict::Paid { transaction_id: reported.transaction_id, transaction_status: reported.transaction_status }),
        Ok(Transition::Fail) => Some(Verdict::Unpaid),
        _ if reported.transaction_status.contains("refund") => Some(Verdict::Unpaid),
        _ => match provider.cancel(&id).await {
            Ok(()) => Some(Verdict::Unpaid),
            Err(e) => {
                tracing::warn!(%order_id, error = format!("{e:#}"), "the provider did not cancel an overdue transaction; asking again later");
                None
            }
        },
    }
}

/// One payment expired, if it is still PENDING and nobody holds it: FAILED,
/// or, when the customer paid, a refund owed with the provider's word on the
/// capture recorded as its notification would have been.
async fn expire(pool: &PgPool, outbox: &Outbox, order_id: Uuid, verdict: Verdict) -> anyhow::Result<bool> {
    let mut tx = pool.begin().await?;
    let payment: Option<(i64, Option<String>)> =
        sqlx::query_as("select version, traceparent from payments where order_id = $1 and status = 'PENDING' for update skip locked")
            .bind(order_id)
            .fetch_optional(&mut *tx)
            .await?;
    let Some((version, traceparent)) = payment else { return Ok(false) };
    // The expiry is a step of the order's saga: its span joins the order's trace.
    let span = outflow_service::telemetry::continuing("payment expired", traceparent.as_deref());
    async move {
        match &verdict {
            Verdict::Unpaid => {
                sqlx::query("update payments set status = 'FAILED', failure_reason = 'expired', version = $2, updated_at = now() where order_id = $1")
                    .bind(order_id)
                    .bind(version + 1)
                    .execute(&mut *tx)
                    .await?;
            }
            Verdict::Paid { transaction_id, transaction_status } => {
                sqlx::query("insert into provider_notifications (transaction_id, transaction_status, order_id) values ($1, $2, $3) on conflict do nothing")
                    .bind(transaction_id)
                    .bind(transaction_status)
                    .bind(order_id)
                    .execute(&mut *tx)
                    .await?;
                sqlx::query("update payments set status = 'REFUNDING', transaction_id = $3, failure_reason = 'late_capture', version = $2, updated_at = now() where order_id = $1")
                    .bind(order_id)
                    .bind(version + 1)
                    .bind(transaction_id)
                    .execute(&mut *tx)
                    .await?;
            }
        }
        let failed = events::given_up(order_id, version + 1, "expired");
        outbox.append(&mut tx, &failed, &TraceContext::child_of(traceparent.as_deref())).await?;
        tx.commit().await?;
        Ok(true)
    }
    .instrument(span)
    .await
}
