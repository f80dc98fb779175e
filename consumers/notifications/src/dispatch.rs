//! The dispatcher: POSTs each due delivery to its webhook until the receiver
//! accepts it, retrying with capped exponential backoff, and parks it (DEAD)
//! after the last attempt.
//!
//! A dispatcher takes due deliveries with `FOR UPDATE SKIP LOCKED` and moves
//! their `next_attempt_at` forward by a lease in the same statement, so that
//! any number of notifications consumers share the work and no two send one
//! delivery at the same time. Each outcome is written after the POST. One that
//! is never written (the process died mid-POST) is due again when the lease
//! runs out. So a receiver may, rarely, see a delivery twice, and it drops the
//! repeat by its `webhook-id` (the event's id), as Standard Webhooks says.
//! Deliveries of one webhook are not ordered (a retried one comes after later
//! ones); each carries its event's time.

use std::{sync::Arc, time::Duration};

use backon::BackoffBuilder;
use serde::Deserialize;
use sqlx::{postgres::PgListener, PgPool};
use uuid::Uuid;

/// The channel the consumer and the writer's replay NOTIFY when a delivery is due.
pub const CHANNEL: &str = "webhook_deliveries";

/// `[dispatch]` in the notifications consumer's settings.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DispatchSettings {
    /// How long a receiver may take to answer one POST.
    pub timeout_ms: u64,
    /// Attempts before a delivery is parked as a dead letter.
    pub max_attempts: i32,
    /// The wait after the first failure; it doubles after each (plus up to as
    /// much again at random, so that retries after an outage spread out)...
    pub first_retry_ms: u64,
    /// ...up to this.
    pub max_retry_ms: u64,
    /// Deliveries in flight at once per dispatcher: a receiver that is slow
    /// to answer holds one place, not the others' turn.
    pub batch: i64,
    /// Of those, at most this many to one webhook: a receiver that answers
    /// slowly, or not at all, with many deliveries due would otherwise take
    /// every place, and every other receiver would wait for its timeouts.
    pub per_webhook: i64,
    /// Lets webhooks reach this machine and private networks (development).
    pub allow_private_networks: bool,
}

impl Default for DispatchSettings {
    fn default() -> Self {
        DispatchSettings {
            timeout_ms: 10_000,
            max_attempts: 12,
            first_retry_ms: 5_000,
            max_retry_ms: 3_600_000,
            batch: 32,
            per_webhook: 4,
            allow_private_networks: false,
        }
    }
}

impl DispatchSettings {
    /// Refuses settings the dispatcher cannot work with.
    pub fn check(&self) -> anyhow::Result<()> {
        anyhow::ensure!((1..=1_000).contains(&self.batch), "dispatch.batch is 1 to 1000, not {}", self.batch);
        anyhow::ensure!((1..=self.batch).contains(&self.per_webhook), "dispatch.per_webhook is 1 to dispatch.batch ({}), not {}", self.batch, self.per_webhook);
        anyhow::ensure!((100..=300_000).contains(&self.timeout_ms), "dispatch.timeout_ms is 100 to 300000, not {}", self.timeout_ms);
        anyhow::ensure!(self.max_attempts >= 1, "dispatch.max_attempts is at least 1, not {}", self.max_attempts);
        anyhow::ensure!(self.first_retry_ms <= self.max_retry_ms, "dispatch.first_retry_ms is at most dispatch.max_retry_ms");
        Ok(())
    }

    /// How long a taken delivery is left alone: longer than its POST can take.
    fn lease(&self) -> Duration {
        Duration::from_millis(self.timeout_ms) * 3 + Duration::from_secs(5)
    }

    /// The wait before attempt `attempts + 1`, after `attempts` failed.
    pub fn retry_after(&self, attempts: i32) -> Duration {
        let mut backoff = backon::ExponentialBuilder::default()
            .with_min_delay(Duration::from_millis(self.first_retry_ms))
            .with_max_delay(Duration::from_millis(self.max_retry_ms))
            .with_factor(2.0)
            .with_jitter()
            .without_max_times()
            .build();
        let step = usize::try_from(attempts.max(1) - 1).unwrap_or(0);
        backoff.nth(step).unwrap_or(Duration::from_millis(self.max_retry_ms))
    }
}

/// A delivery taken to be sent.
#[derive(sqlx::FromRow)]
struct Due {
    webhook_id: Uuid,
    event_id: String,
    body: String,
    attempts: i32,
    url: String,
    secret: String,
    /// The end of this dispatcher's lease: its outcome is written only while
    /// the row still holds it (a dispatcher that took the delivery over
    /// after the lease ran out has moved it on).
    leased_until: chrono::DateTime<chrono::Utc>,
}

pub struct Dispatcher {
    pool: PgPool,
    http: reqwest::Client,
    settings: DispatchSettings,
}

impl Dispatcher {
    pub fn new(pool: PgPool, settings: DispatchSettings) -> anyhow::Result<Self> {
        let http = outflow_webhooks::target::client(settings.allow_private_networks, Duration::from_millis(settings.timeout_ms))?;
        Ok(Dispatcher { pool, http, settings })
    }

    /// Sends due deliveries until the process stops: at once when one is
    /// written (NOTIFY), at least every second for the retries that come
    /// due, and again as soon as a place frees up (up to `batch` in flight).
    pub async fn run(self: Arc<Self>) {
        tokio::spawn(count_dead(self.pool.clone()));
        let mut listener = None;
        let mut in_flight = tokio::task::JoinSet::new();
        loop {
            if listener.is_none() {
                listener = listen(&self.pool).await;
            }
            let free = self.settings.batch - in_flight.len() as i64;
            match self.take_due(free).await {
                Ok(due) => {
                    for delivery in due {
                        let dispatcher = self.clone();
                        in_flight.spawn(async move { dispatcher.send(delivery).await });
                    }
                }
                Err(e) => tracing::warn!(error = %format!("{e:#}"), "taking due webhook deliveries failed; trying again"),
            }
            tokio::select! {
                Some(_) = in_flight.join_next(), if !in_flight.is_empty() => {}
                lost = wake(&mut listener) => if lost { listener = None; },
            }
        }
    }

    /// Takes up to `free` due deliveries (none when nothing is free), oldest
    /// first, but from each webhook only as many as leave it at most
    /// `per_webhook` being sent. Two dispatchers that claim at the same
    /// moment each count what was sent before: together they may send up to
    /// twice as many to one webhook for a while.
    async fn take_due(&self, free: i64) -> sqlx::Result<Vec<Due>> {
        if free <= 0 {
            return Ok(Vec::new());
        }
        sqlx::query_as(
            "with due as (
                 select d.webhook_id, d.event_id, d.next_attempt_at from webhooks w
                 cross join lateral (
                     select webhook_id, event_id, next_attempt_at from deliveries
                     where webhook_id = w.id and status = 'PENDING' and next_attempt_at <= now()
                     order by next_attempt_at
                     limit greatest($3 - (select count(*) from deliveries s where s.webhook_id = w.id and s.sending_until > now()), 0)
                 ) d
                 order by d.next_attempt_at limit $1
             ), taken as (
                 select webhook_id, event_id from deliveries
                 where (webhook_id, event_id) in (select webhook_id, event_id from due)
                   and status = 'PENDING' and next_attempt_at <= now()
                 for update skip locked
             )
             update deliveries d set next_attempt_at = now() + make_interval(secs => $2), sending_until = now() + make_interval(secs => $2)
             from taken, webhooks w
             where d.webhook_id = taken.webhook_id and d.event_id = taken.event_id and w.id = d.webhook_id
             returning d.webhook_id, d.event_id, d.body, d.attempts, w.url, w.secret, d.next_attempt_at as leased_until",
        )
        .bind(free)
        .bind(self.settings.lease().as_secs_f64())
        .bind(self.settings.per_webhook)
        .fetch_all(&self.pool)
        .await
    }

    async fn send(&self, delivery: Due) {
        let started = std::time::Instant::now();
        let outcome = self.post(&delivery).await;
        metrics::histogram!("webhook_delivery_seconds").record(started.elapsed().as_secs_f64());
        let attempts = delivery.attempts + 1;
        let recorded = match &outcome {
            Ok(()) => self.delivered(&delivery, attempts).await,
            Err(error) => self.failed(&delivery, attempts, error).await,
        };
        if let Err(e) = recorded {
            // Due again when its lease runs out.
            tracing::warn!(error = %e, event_id = delivery.event_id, "recording a webhook delivery's outcome failed");
        }
    }

    /// One POST: the body as stored, signed now.
    async fn post(&self, delivery: &Due) -> Result<(), String> {
        outflow_webhooks::target::check(&delivery.url, self.settings.allow_private_networks)?;
        let now = chrono::Utc::now().timestamp();
        let signed = outflow_webhooks::signing::headers(&delivery.secret, &delivery.event_id, now, delivery.body.as_bytes()).map_err(|e| format!("{e:#}"))?;
        let mut request = self.http.post(&delivery.url).header("content-type", "application/json").body(delivery.body.clone());
        for (name, value) in signed {
            request = request.header(name, value);
        }
        match request.send().await {
            Ok(response) if response.status().is_success() => Ok(()),
            Ok(response) => Err(format!("the receiver answered {}", response.status())),
            Err(e) if e.is_timeout() => Err(format!("no answer within {} ms", self.settings.timeout_ms)),
            Err(e) => Err(format!("could not reach the receiver: {}", error_chain(&e))),
        }
    }

    async fn delivered(&self, delivery: &Due, attempts: i32) -> sqlx::Result<()> {
        metrics::counter!("webhook_deliveries_total", "outcome" => "delivered").increment(1);
        sqlx::query(
            "update deliveries set status = 'DELIVERED', attempts = $3, delivered_at = now(), last_error = null, sending_until = null
             where webhook_id = $1 and event_id = $2 and status = 'PENDING' and next_attempt_at = $4",
        )
        .bind(delivery.webhook_id)
        .bind(&delivery.event_id)
        .bind(attempts)
        .bind(delivery.leased_until)
        .execute(&self.pool)
        .await
        .map(drop)
    }

    async fn failed(&self, delivery: &Due, attempts: i32, error: &str) -> sqlx::Result<()> {
        let dead = attempts >= self.settings.max_attempts;
        metrics::counter!("webhook_deliveries_total", "outcome" => if dead { "dead" } else { "failed" }).increment(1);
        if dead {
            tracing::warn!(event_id = delivery.event_id, webhook = %delivery.webhook_id, attempts, error, "webhook delivery parked as a dead letter");
        }
        let retry_after = self.settings.retry_after(attempts);
        sqlx::query(
            "update deliveries set attempts = $3, last_error = $4, sending_until = null,
                status = case when $5 then 'DEAD' else 'PENDING' end,
                next_attempt_at = now() + make_interval(secs => $6)
             where webhook_id = $1 and event_id = $2 and status = 'PENDING' and next_attempt_at = $7",
        )
        .bind(delivery.webhook_id)
        .bind(&delivery.event_id)
        .bind(attempts)
        .bind(error)
        .bind(dead)
        .bind(retry_after.as_secs_f64())
        .bind(delivery.leased_until)
        .execute(&self.pool)
        .await
        .map(drop)
    }
}

/// Keeps `webhook_deliveries_dead` at the number of parked deliveries, for
/// the alert: a replay takes one off, which a counter of attempts cannot say.
async fn count_dead(pool: PgPool) {
    let mut every = tokio::time::interval(Duration::from_secs(15));
    loop {
        every.tick().await;
        match sqlx::query_scalar::<_, i64>("select count(*) from deliveries where status = 'DEAD'").fetch_one(&pool).await {
            Ok(dead) => metrics::gauge!("webhook_deliveries_dead").set(dead as f64),
            Err(e) => tracing::warn!(error = %e, "counting the dead webhook deliveries failed"),
        }
    }
}

/// Waits for a NOTIFY, or a second; true when the listener was lost.
async fn wake(listener: &mut Option<PgListener>) -> bool {
    match listener.as_mut() {
        Some(open) => match tokio::time::timeout(Duration::from_secs(1), open.recv()).await {
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "LISTEN {CHANNEL} lost; listening again");
                true
            }
            _ => false,
        },
        None => {
            tokio::time::sleep(Duration::from_secs(1)).await;
            false
        }
    }
}

async fn listen(pool: &PgPool) -> Option<PgListener> {
    let mut listener = PgListener::connect_with(pool).await.inspect_err(|e| tracing::warn!(error = %e, "LISTEN failed; polling")).ok()?;
    listener.listen(CHANNEL).await.inspect_err(|e| tracing::warn!(error = %e, "LISTEN failed; polling")).ok()?;
    Some(listener)
}

fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retries_wait_longer_each_time_up_to_the_cap() {
        let settings = DispatchSettings { first_retry_ms: 1_000, max_retry_ms: 10_000, ..DispatchSettings::default() };
        for attempts in 1..=20 {
            let wait = settings.retry_after(attempts);
            // Jitter adds up to one more of the step's delay.
            let step = Duration::from_millis((1_000_u64 << (attempts - 1).min(10)).min(10_000));
            assert!(wait >= step && wait <= step * 2, "after {attempts} failures: {wait:?} (step {step:?})");
        }
    }

    #[test]
    fn a_webhook_gets_at_least_one_place_and_at_most_the_batch() {
        assert!(DispatchSettings::default().check().is_ok());
        for per_webhook in [0, 33] {
            let settings = DispatchSettings { per_webhook, ..DispatchSettings::default() };
            assert!(settings.check().is_err(), "per_webhook {per_webhook} of a batch of 32");
        }
        assert!(DispatchSettings { per_webhook: 32, ..DispatchSettings::default() }.check().is_ok());
    }
}
