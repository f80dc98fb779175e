//! From PostgreSQL: every replication slot's retained WAL and confirmed flush
//! position (`pg_replication_slots` is cluster-wide, so one connection sees
//! the slots of every database), and the sagas: orders per status and the ones
//! that Outflow still drives (not settled) after the stuck threshold.

use std::collections::BTreeMap;

use anyhow::Context;
use chrono::{DateTime, Utc};
use sqlx::{
    postgres::{PgConnectOptions, PgPoolOptions},
    ConnectOptions, PgConnection, PgPool, Row,
};

use crate::model::{Sagas, Slot, Slots, StuckSaga, Trend};

/// The order statuses, and which of them end the part of a saga that Outflow
/// drives within its deadlines: a CONFIRMED order is paid and with the
/// carrier, whose delivery takes as long as it takes (its own count shows it),
/// so it is neither in flight nor stuck.
pub const STATUSES: [&str; 5] = ["PENDING", "CONFIRMED", "CANCELLED", "COMPLETED", "DELIVERY_FAILED"];
pub const SETTLED: [&str; 4] = ["CONFIRMED", "CANCELLED", "COMPLETED", "DELIVERY_FAILED"];

pub struct PostgresSource {
    pool: PgPool,
    options: PgConnectOptions,
    database: String,
    stuck_after_secs: u64,
    stuck_limit: i64,
    /// Jaeger's UI, where a stuck saga's trace is shown (`OUTFLOW_JAEGER_URL`).
    trace_ui: Option<String>,
}

impl PostgresSource {
    pub fn new(options: PgConnectOptions, database: &str, stuck_after_secs: u64, stuck_limit: i64) -> Self {
        // Lazy: the monitor starts (and reports the error) while PostgreSQL is down.
        let pool = PgPoolOptions::new().max_connections(2).acquire_timeout(std::time::Duration::from_secs(3)).connect_lazy_with(options.clone());
        PostgresSource { pool, options, database: database.to_owned(), stuck_after_secs, stuck_limit, trace_ui: None }
    }

    /// Links each stuck saga to its trace in the Jaeger UI at `url`.
    pub fn with_trace_ui(mut self, url: Option<String>) -> Self {
        self.trace_ui = url.filter(|u| !u.is_empty()).map(|u| u.trim_end_matches('/').to_owned());
        self
    }

    /// A pool that cannot connect only says it timed out; one direct
    /// connection attempt says why (refused, authentication, no database).
    async fn why(&self, error: sqlx::Error) -> anyhow::Error {
        if matches!(error, sqlx::Error::PoolTimedOut) {
            if let Ok(Err(cause)) = tokio::time::timeout(std::time::Duration::from_secs(2), self.options.connect()).await {
                return anyhow::Error::new(cause).context(format!("connecting to PostgreSQL {}:{}", self.options.get_host(), self.options.get_port()));
            }
        }
        anyhow::Error::new(error)
    }

    pub async fn slots(&self) -> anyhow::Result<Slots> {
        let current: String = match sqlx::query_scalar("select pg_current_wal_lsn()::text").fetch_one(&self.pool).await {
            Ok(current) => current,
            Err(e) => return Err(self.why(e).await.context(format!("PostgreSQL ({} database)", self.database))),
        };
        let rows = sqlx::query(
            "select slot_name::text, database::text, slot_type, plugin::text, active, wal_status,
                    confirmed_flush_lsn::text,
                    pg_wal_lsn_diff(pg_current_wal_lsn(), restart_lsn)::bigint as retained,
                    pg_wal_lsn_diff(pg_current_wal_lsn(), confirmed_flush_lsn)::bigint as lag
             from pg_replication_slots order by slot_name",
        )
        .fetch_all(&self.pool)
        .await
        .context("reading pg_replication_slots")?;
        let slots = rows
            .iter()
            .map(|row| {
                Ok(Slot {
                    slot_name: row.try_get("slot_name")?,
                    database: row.try_get("database")?,
                    slot_type: row.try_get("slot_type")?,
                    plugin: row.try_get("plugin")?,
                    active: row.try_get("active")?,
                    wal_status: row.try_get("wal_status")?,
                    confirmed_flush_lsn: row.try_get("confirmed_flush_lsn")?,
                    retained_wal_bytes: row.try_get("retained")?,
                    lag_bytes: row.try_get("lag")?,
                    trend: Trend::default(),
                })
            })
            .collect::<Result<Vec<_>, sqlx::Error>>()
            .context("reading a replication slot's row")?;
        Ok(Slots { current_wal_lsn: current, slots })
    }

    /// Counts and stuck sagas from one consistent snapshot of the table.
    pub async fn sagas(&self) -> anyhow::Result<Sagas> {
        let context = || format!("reading the sagas (table orders in the {} database)", self.database);
        let mut tx = match self.pool.begin().await {
            Ok(tx) => tx,
            Err(e) => return Err(self.why(e).await.context(context())),
        };
        // The three reads below see the same rows, so the counts, the in-flight
        // figures and the stuck list add up while orders keep moving.
        sqlx::query("set transaction isolation level repeatable read, read only").execute(&mut *tx).await.with_context(context)?;
        let counts = counts(&mut tx).await.with_context(context)?;
        let settled: Vec<String> = SETTLED.iter().map(|s| s.to_string()).collect();
        let (in_flight, oldest, stuck_count) = self.in_flight(&mut tx, &settled).await.with_context(context)?;
        let stuck = self.stuck(&mut tx, &settled).await.with_context(context)?;
        tx.commit().await.with_context(context)?;
        Ok(Sagas {
            total: counts.values().sum(),
            counts,
            in_flight,
            oldest_in_flight_secs: oldest,
            stuck_after_secs: self.stuck_after_secs,
            stuck_count,
            stuck,
            finished_per_min: None,
        })
    }

    /// The sagas not ended yet: how many, the age of the oldest, how many are stuck.
    async fn in_flight(&self, db: &mut PgConnection, settled: &[String]) -> sqlx::Result<(i64, Option<f64>, i64)> {
        sqlx::query_as(
            "select count(*),
                    extract(epoch from now() - min(created_at))::float8,
                    count(*) filter (where created_at < now() - make_interval(secs => $2))
             from orders where status <> all($1)",
        )
        .bind(settled)
        .bind(self.stuck_after_secs as f64)
        .fetch_one(db)
        .await
    }

    /// The stuck sagas, oldest first, at most `stuck_limit` of them.
    async fn stuck(&self, db: &mut PgConnection, settled: &[String]) -> sqlx::Result<Vec<StuckSaga>> {
        sqlx::query(
            "select id::text, customer_id, status, total_minor, currency, created_at, updated_at,
                    extract(epoch from now() - created_at)::float8 as age,
                    nullif(split_part(traceparent, '-', 2), '') as trace_id
             from orders
             where status <> all($1) and created_at < now() - make_interval(secs => $2)
             order by created_at limit $3",
        )
        .bind(settled)
        .bind(self.stuck_after_secs as f64)
        .bind(self.stuck_limit)
        .fetch_all(db)
        .await?
        .iter()
        .map(|row| {
            Ok(StuckSaga {
                order_id: row.try_get("id")?,
                customer_id: row.try_get("customer_id")?,
                status: row.try_get("status")?,
                total_minor: row.try_get("total_minor")?,
                currency: row.try_get("currency")?,
                created_at: row.try_get::<DateTime<Utc>, _>("created_at")?,
                updated_at: row.try_get::<DateTime<Utc>, _>("updated_at")?,
                age_secs: row.try_get("age")?,
                trace_url: row.try_get::<Option<String>, _>("trace_id")?.and_then(|id| Some(format!("{}/trace/{id}", self.trace_ui.as_ref()?))),
            })
        })
        .collect()
    }
}

/// Orders per status; a status no order has counts 0 instead of going missing.
async fn counts(db: &mut PgConnection) -> sqlx::Result<BTreeMap<String, i64>> {
    let mut counts: BTreeMap<String, i64> = STATUSES.iter().map(|s| (s.to_string(), 0)).collect();
    let rows: Vec<(String, i64)> = sqlx::query_as("select status, count(*) from orders group by status").fetch_all(db).await?;
    counts.extend(rows);
    Ok(counts)
}
