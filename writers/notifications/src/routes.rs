//! The writer's handlers.

use axum::{
    extract::{Path, State},
    http::StatusCode,
    Json,
};
use chrono::{DateTime, Utc};
use outflow_service::{
    auth::{Caller, Role},
    error::{ApiError, ApiJson, ApiQuery},
};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use crate::AppState;

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Registration {
    /// Where the notifications are POSTed: https, no credentials, a public host.
    #[schema(max_length = 2048)]
    pub url: String,
    /// Every customer's notifications (admin only); otherwise the caller's own.
    #[serde(default)]
    pub shop_wide: bool,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Webhook {
    pub id: Uuid,
    pub url: String,
    pub shop_wide: bool,
    pub created_at: DateTime<Utc>,
    /// The Standard Webhooks secret (`whsec_...`) that signs each delivery:
    /// in the registration's answer only, never again.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub secret: Option<String>,
}

#[utoipa::path(
    post, path = "/v1/webhooks", request_body = Registration,
    responses(
        (status = 201, body = Webhook),
        (status = 401, description = "No valid bearer token"),
        (status = 403, description = "A shop-wide webhook, asked for by a customer"),
        (status = 409, description = "As many webhooks as one owner may have (too_many_webhooks)"),
        (status = 422, description = "A URL that cannot be a webhook's (invalid_url)"),
    ),
    security(("bearer" = []))
)]
pub async fn register(State(state): State<AppState>, caller: Caller, ApiJson(body): ApiJson<Registration>) -> Result<(StatusCode, Json<Webhook>), ApiError> {
    if body.shop_wide {
        caller.require(Role::Admin)?;
    }
    outflow_webhooks::target::check(&body.url, state.rules.allow_private_networks).map_err(|reason| ApiError::unprocessable("invalid_url", reason))?;
    let owner = (!body.shop_wide).then(|| caller.id.clone());
    let mut tx = state.pool.begin().await?;
    // One registration per owner at a time, so that two cannot both pass the count.
    sqlx::query("select pg_advisory_xact_lock(hashtext(coalesce($1, '*shop-wide*')))").bind(&owner).execute(&mut *tx).await?;
    let held: i64 = sqlx::query_scalar("select count(*) from webhooks where owner is not distinct from $1").bind(&owner).fetch_one(&mut *tx).await?;
    if held >= state.rules.max_per_owner {
        return Err(ApiError::conflict("too_many_webhooks", format!("at most {} webhooks per owner; delete one first", state.rules.max_per_owner)));
    }
    let (id, secret) = (Uuid::now_v7(), outflow_webhooks::signing::new_secret());
    let created_at: DateTime<Utc> =
        sqlx::query_scalar("insert into webhooks (id, owner, shop_wide, url, secret, created_by) values ($1, $2, $3, $4, $5, $6) returning created_at")
            .bind(id)
            .bind(&owner)
            .bind(body.shop_wide)
            .bind(&body.url)
            .bind(&secret)
            .bind(&caller.id)
            .fetch_one(&mut *tx)
            .await?;
    tx.commit().await?;
    tracing::info!(%id, shop_wide = body.shop_wide, "webhook registered");
    Ok((StatusCode::CREATED, Json(Webhook { id, url: body.url, shop_wide: body.shop_wide, created_at, secret: Some(secret) })))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Webhooks {
    pub webhooks: Vec<Webhook>,
}

#[utoipa::path(
    get, path = "/v1/webhooks",
    responses((status = 200, body = Webhooks), (status = 401, description = "No valid bearer token")),
    security(("bearer" = []))
)]
pub async fn list(State(state): State<AppState>, caller: Caller) -> Result<Json<Webhooks>, ApiError> {
    let rows: Vec<(Uuid, String, bool, DateTime<Utc>)> =
        sqlx::query_as("select id, url, shop_wide, created_at from webhooks where owner = $1 or ($2 and shop_wide) order by created_at, id")
            .bind(&caller.id)
            .bind(caller.role == Role::Admin)
            .fetch_all(&state.pool)
            .await?;
    let webhooks = rows.into_iter().map(|(id, url, shop_wide, created_at)| Webhook { id, url, shop_wide, created_at, secret: None }).collect();
    Ok(Json(Webhooks { webhooks }))
}

#[utoipa::path(
    delete, path = "/v1/webhooks/{id}", params(("id" = Uuid, Path)),
    responses(
        (status = 204, description = "Deleted, with its deliveries"),
        (status = 401, description = "No valid bearer token"),
        (status = 404, description = "No such webhook of the caller's"),
    ),
    security(("bearer" = []))
)]
pub async fn delete(State(state): State<AppState>, caller: Caller, Path(id): Path<String>) -> Result<StatusCode, ApiError> {
    let not_found = || ApiError::not_found(format!("no webhook {}", id.escape_debug()));
    let webhook = Uuid::parse_str(&id).map_err(|_| not_found())?;
    let deleted = sqlx::query("delete from webhooks where id = $1 and (owner = $2 or $3)")
        .bind(webhook)
        .bind(&caller.id)
        .bind(caller.role == Role::Admin)
        .execute(&state.pool)
        .await?
        .rows_affected();
    if deleted == 0 {
        return Err(not_found());
    }
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct Page {
    /// 1 for the newest (the default).
    #[param(minimum = 1, maximum = 100_000)]
    page: Option<i64>,
    /// 50 by default.
    #[param(minimum = 1, maximum = 500)]
    per_page: Option<i64>,
}

#[derive(Debug, Serialize, ToSchema, sqlx::FromRow)]
pub struct DeadLetter {
    pub webhook_id: Uuid,
    pub url: String,
    /// The event's id: also the delivery's `webhook-id` header.
    pub event_id: String,
    pub kind: String,
    pub order_id: String,
    pub attempts: i32,
    /// What the last attempt met: the receiver's status, or why no answer came.
    pub last_error: Option<String>,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct DeadLetters {
    pub page: i64,
    pub per_page: i64,
    pub total: i64,
    pub dead_letters: Vec<DeadLetter>,
}

#[utoipa::path(
    get, path = "/v1/webhooks/dead-letters", params(Page),
    responses(
        (status = 200, body = DeadLetters),
        (status = 400, description = "A query parameter that is not a number, or one this endpoint does not take"),
        (status = 401, description = "No valid bearer token"),
        (status = 403, description = "Not an admin"),
        (status = 422, description = "page or per_page out of range"),
    ),
    security(("bearer" = []))
)]
pub async fn dead_letters(State(state): State<AppState>, caller: Caller, ApiQuery(page): ApiQuery<Page>) -> Result<Json<DeadLetters>, ApiError> {
    caller.require(Role::Admin)?;
    let (number, per_page) = (page.page.unwrap_or(1), page.per_page.unwrap_or(50));
    if !(1..=100_000).contains(&number) || !(1..=500).contains(&per_page) {
        return Err(ApiError::unprocessable("invalid_page", "page is 1 to 100000, per_page 1 to 500"));
    }
    let total: i64 = sqlx::query_scalar("select count(*) from deliveries where status = 'DEAD'").fetch_one(&state.pool).await?;
    let dead_letters = sqlx::query_as(
        "select d.webhook_id, w.url, d.event_id, d.kind, d.order_id, d.attempts, d.last_error, d.created_at
         from deliveries d join webhooks w on w.id = d.webhook_id
         where d.status = 'DEAD' order by d.created_at desc, d.event_id limit $1 offset $2",
    )
    .bind(per_page)
    .bind((number - 1) * per_page)
    .fetch_all(&state.pool)
    .await?;
    Ok(Json(DeadLetters { page: number, per_page, total, dead_letters }))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Replayed {
    /// PENDING: due now, with its attempts counted from 0 again.
    pub status: String,
}

#[utoipa::path(
    post, path = "/v1/webhooks/{id}/deliveries/{event_id}/replay",
    params(("id" = Uuid, Path), ("event_id" = String, Path, max_length = 100)),
    responses(
        (status = 202, body = Replayed),
        (status = 401, description = "No valid bearer token"),
        (status = 403, description = "Not an admin"),
        (status = 404, description = "No such delivery"),
        (status = 409, description = "The delivery is not parked (not_dead): still being tried, or delivered"),
    ),
    security(("bearer" = []))
)]
pub async fn replay(
    State(state): State<AppState>,
    caller: Caller,
    Path((id, event_id)): Path<(String, String)>,
) -> Result<(StatusCode, Json<Replayed>), ApiError> {
    caller.require(Role::Admin)?;
    let not_found = || ApiError::not_found(format!("no delivery of event {} to webhook {}", event_id.escape_debug(), id.escape_debug()));
    let webhook = Uuid::parse_str(&id).map_err(|_| not_found())?;
    let mut tx = state.pool.begin().await?;
    let status: Option<String> = sqlx::query_scalar("select status from deliveries where webhook_id = $1 and event_id = $2 for update")
        .bind(webhook)
        .bind(&event_id)
        .fetch_optional(&mut *tx)
        .await?;
    match status.as_deref() {
        None => return Err(not_found()),
        Some("DEAD") => {}
        Some(other) => return Err(ApiError::conflict("not_dead", format!("the delivery is {other}, not parked"))),
    }
    sqlx::query("update deliveries set status = 'PENDING', attempts = 0, next_attempt_at = now(), last_error = null, sending_until = null where webhook_id = $1 and event_id = $2")
        .bind(webhook)
        .bind(&event_id)
        .execute(&mut *tx)
        .await?;
    // Wakes the dispatchers (LISTEN webhook_deliveries) at the commit.
    sqlx::query("select pg_notify('webhook_deliveries', '')").execute(&mut *tx).await?;
    tx.commit().await?;
    tracing::info!(%webhook, event_id, replayed_by = caller.id, "dead letter replayed");
    Ok((StatusCode::ACCEPTED, Json(Replayed { status: "PENDING".into() })))
}
