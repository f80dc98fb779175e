//! The inbox (`processed_events`): a consumer claims an event id in the same
//! transaction as the event's effect; a second delivery finds the claim and
//! changes nothing.

use sqlx::PgConnection;
use uuid::Uuid;

/// True the first time `event_id` is claimed in this database.
pub async fn claim(tx: &mut PgConnection, event_id: Uuid, event_type: &str) -> Result<bool, sqlx::Error> {
    let inserted = sqlx::query("insert into processed_events (event_id, event_type) values ($1, $2) on conflict do nothing")
        .bind(event_id)
        .bind(event_type)
        .execute(&mut *tx)
        .await?;
    Ok(inserted.rows_affected() == 1)
}

/// Whether `event_id` was claimed already: a step that must do work before
/// its claiming transaction (a provider call) asks first.
pub async fn seen(conn: &mut PgConnection, event_id: Uuid) -> Result<bool, sqlx::Error> {
    sqlx::query_scalar("select exists (select 1 from processed_events where event_id = $1)").bind(event_id).fetch_one(&mut *conn).await
}
