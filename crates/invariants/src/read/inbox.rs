//! `processed_events` of the three service databases: the inboxes of the
//! orders, inventory and payments consumers.

use anyhow::Context;
use sqlx::PgPool;
use uuid::Uuid;

use crate::{snapshot::InboxDuplicate, Sources};

/// Event ids held more than once by an inbox. A unique index on
/// `processed_events (event_id)` makes that impossible, so where one exists
/// the table is not scanned; only a database without it pays for the count.
pub async fn duplicates_in_every_inbox(sources: &Sources, scoped: Option<&[Uuid]>) -> anyhow::Result<Vec<InboxDuplicate>> {
    let mut found = Vec::new();
    for (database, pool) in [("orders", &sources.orders), ("inventory", &sources.inventory), ("payments", &sources.payments), ("shipping", &sources.shipping)] {
        let rows = duplicates(pool, scoped).await.with_context(|| format!("PostgreSQL database {database}: the inbox"))?;
        found.extend(rows.into_iter().map(|(event_id, rows)| InboxDuplicate { database, event_id, rows }));
    }
    Ok(found)
}

async fn duplicates(pool: &PgPool, scoped: Option<&[Uuid]>) -> sqlx::Result<Vec<(Uuid, i64)>> {
    let unique: bool = sqlx::query_scalar(
        "select exists (select 1 from pg_index i join pg_attribute a on a.attrelid = i.indrelid and a.attnum = i.indkey[0]
                        where i.indrelid = 'processed_events'::regclass and i.indisunique and i.indnatts = 1 and a.attname = 'event_id')",
    )
    .fetch_one(pool)
    .await?;
    if unique {
        return Ok(Vec::new());
    }
    sqlx::query_as(
        "select event_id, count(*) from processed_events where $1::uuid[] is null or event_id = any($1)
         group by event_id having count(*) > 1 order by event_id",
    )
    .bind(scoped)
    .fetch_all(pool)
    .await
}
