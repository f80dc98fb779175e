//! `POST /v1/orders`: order PENDING + its lines + `OrderPlaced`, one transaction
//! ([`place`], which the bench's saga ceiling runs too). The `Idempotency-Key`
//! header makes a retry return the same order.

use axum::{
    extract::State,
    http::{HeaderMap, StatusCode},
    Json,
};
use outflow_events::order::{OrderLine, OrderPlaced};
use outflow_outbox::{new_event_id, now_millis, Outbox, TraceContext};
use outflow_service::{
    auth::{Caller, Role},
    error::{ApiError, ApiJson},
};
use serde::Deserialize;
use sqlx::{PgConnection, PgPool, Row};
use tracing::{field::Empty, instrument, Span};
use utoipa::ToSchema;
use uuid::Uuid;

use super::OrderAccepted;
use crate::{
    domain::{self, InvalidOrder, OrderStatus, RequestedLine},
    state::AppState,
};

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PlaceOrder {
    /// At most `orders.max_lines` lines (100 by default), each SKU once.
    #[schema(min_items = 1, max_items = 100)]
    pub items: Vec<RequestedLine>,
}

/// The `Idempotency-Key` header: the same key and body return the same order.
#[derive(utoipa::IntoParams)]
#[into_params(parameter_in = Header)]
#[allow(dead_code)]
struct IdempotencyKey {
    /// 1 to 128 visible ASCII characters, chosen by the client per order.
    #[param(rename = "Idempotency-Key", pattern = "^[!-~]{1,128}$", min_length = 1, max_length = 128)]
    idempotency_key: String,
}

#[derive(Debug, thiserror::Error)]
pub enum PlaceOrderError {
    #[error("send an Idempotency-Key header of 1 to 128 visible ASCII characters")]
    MissingIdempotencyKey,
    #[error(transparent)]
    Invalid(#[from] InvalidOrder),
    #[error("unknown SKU: {0}")]
    UnknownSku(String),
    #[error("all lines of one order must be in one currency")]
    MixedCurrencies,
    #[error("this Idempotency-Key was used with another body")]
    KeyReused,
    #[error("{}", .0.message)]
    Refused(ApiError),
    #[error(transparent)]
    Unexpected(#[from] anyhow::Error),
}

impl From<ApiError> for PlaceOrderError {
    fn from(error: ApiError) -> Self {
        PlaceOrderError::Refused(error)
    }
}

impl From<PlaceOrderError> for ApiError {
    fn from(error: PlaceOrderError) -> Self {
        let message = error.to_string();
        match error {
            PlaceOrderError::MissingIdempotencyKey => ApiError::bad_request("idempotency_key_required", message),
            PlaceOrderError::Invalid(invalid) => ApiError::unprocessable(invalid.code(), message),
            PlaceOrderError::UnknownSku(_) => ApiError::unprocessable("unknown_sku", message),
            PlaceOrderError::MixedCurrencies => ApiError::unprocessable("mixed_currencies", message),
            PlaceOrderError::KeyReused => ApiError::conflict("idempotency_key_reused", message),
            PlaceOrderError::Refused(e) => e,
            PlaceOrderError::Unexpected(e) => ApiError::internal(e),
        }
    }
}

impl axum::response::IntoResponse for PlaceOrderError {
    fn into_response(self) -> axum::response::Response {
        ApiError::from(self).into_response()
    }
}

impl From<sqlx::Error> for PlaceOrderError {
    fn from(error: sqlx::Error) -> Self {
        PlaceOrderError::Unexpected(anyhow::Error::new(error).context("database"))
    }
}

#[utoipa::path(
    post, path = "/v1/orders", request_body = PlaceOrder,
    params(IdempotencyKey),
    responses(
        (status = 202, body = OrderAccepted, description = "Accepted; the saga runs on"),
        (status = 400, description = "Malformed JSON, or no valid Idempotency-Key"),
        (status = 403, description = "Not a customer's token"),
        (status = 409, description = "Idempotency-Key reused with another body"),
        (status = 413, description = "Body over 64 KiB"),
        (status = 422, description = "Invalid items, a SKU twice, an unknown SKU, or lines in several currencies"),
    ),
    security(("bearer" = []))
)]
#[instrument(skip_all, fields(customer_id = %caller.id, order_id = Empty), err(Debug))]
pub async fn place_order(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    ApiJson(body): ApiJson<PlaceOrder>,
) -> Result<(StatusCode, Json<OrderAccepted>), PlaceOrderError> {
    caller.require(Role::Customer)?;
    let key = idempotency_key(&headers).ok_or(PlaceOrderError::MissingIdempotencyKey)?;
    domain::validate(&body.items, state.own)?;
    let trace = TraceContext::child_of(headers.get("traceparent").and_then(|v| v.to_str().ok()));
    let accepted = match place(&state.base.pool, &state.base.outbox, &caller.id, key, &body.items, &trace).await? {
        Placement::Existing(existing) => existing,
        Placement::Placed { order_id, .. } => {
            metrics::counter!("orders_placed_total").increment(1);
            OrderAccepted { order_id, status: OrderStatus::Pending }
        }
    };
    Ok((StatusCode::ACCEPTED, Json(accepted)))
}

/// What a placement did.
pub enum Placement {
    /// A new order, committed with its `OrderPlaced`.
    Placed { order_id: Uuid, event: OrderPlaced },
    /// The order an earlier request with the same key and body placed.
    Existing(OrderAccepted),
}

/// The placement's transaction, for validated lines: the order of an earlier
/// request with this key, or a new order priced from the catalog replica with
/// its lines and `OrderPlaced`, committed together. `pub` so that the bench's
/// saga ceiling runs this very transaction.
pub async fn place(
    pool: &PgPool,
    outbox: &Outbox,
    customer_id: &str,
    key: &str,
    items: &[RequestedLine],
    trace: &TraceContext,
) -> Result<Placement, PlaceOrderError> {
    let hash = domain::request_hash(items);
    let mut tx = pool.begin().await?;
    if let Some(existing) = find_by_key(&mut tx, customer_id, key, &hash).await? {
        return Ok(Placement::Existing(existing));
    }
    let PricedLines { lines, currency, total_minor } = price_lines(&mut tx, items).await?;
    let order_id = Uuid::now_v7();
    Span::current().record("order_id", tracing::field::display(order_id));
    let inserted = sqlx::query(INSERT_ORDER)
        .bind(order_id)
        .bind(customer_id)
        .bind(total_minor)
        .bind(&currency)
        .bind(key)
        .bind(&hash)
        .bind(trace.to_header())
        .execute(&mut *tx)
        .await?;
    if inserted.rows_affected() == 0 {
        // A concurrent request with the same key won the race: answer as it did.
        tx.rollback().await?;
        let mut conn = pool.acquire().await?;
        let existing = find_by_key(&mut conn, customer_id, key, &hash).await?;
        return existing.map(Placement::Existing).ok_or_else(|| anyhow::anyhow!("the order of this key vanished").into());
    }
    insert_items(&mut tx, order_id, &lines).await?;
    let event = OrderPlaced {
        event_id: new_event_id(),
        aggregate_id: order_id.to_string(),
        aggregate_version: 1,
        occurred_at: now_millis(),
        customer_id: customer_id.to_owned(),
        lines,
        total_minor,
        currency,
    };
    outbox.append(&mut tx, &event, trace).await.map_err(|e| PlaceOrderError::Unexpected(e.into()))?;
    tx.commit().await?;
    Ok(Placement::Placed { order_id, event })
}

// The placement's statements, `pub` so that the bench's SQL ceiling of the
// order transaction issues exactly these.

/// (customer id, key) → the order's id, status and request hash.
pub const FIND_BY_KEY: &str = "select id, status, request_hash from orders where customer_id = $1 and idempotency_key = $2";
/// (skus) → each one's price and currency.
pub const CATALOG_PRICES: &str = "select sku, price_minor, currency from catalog where sku = any($1)";
/// (id, customer id, total, currency, key, request hash, traceparent); no row when the key was taken meanwhile.
pub const INSERT_ORDER: &str = "insert into orders (id, customer_id, status, total_minor, currency, version, idempotency_key, request_hash, traceparent)
     values ($1, $2, 'PENDING', $3, $4, 1, $5, $6, $7)
     on conflict (customer_id, idempotency_key) do nothing";
/// (order id, line numbers, skus, quantities, unit prices).
pub const INSERT_ITEMS: &str = "insert into order_items (order_id, line_no, sku, quantity, unit_price_minor)
     select $1, * from unnest($2::int[], $3::text[], $4::int[], $5::bigint[])";

fn idempotency_key(headers: &HeaderMap) -> Option<&str> {
    let key = headers.get("idempotency-key")?.to_str().ok()?.trim();
    let valid = (1..=128).contains(&key.len()) && key.bytes().all(|b| b.is_ascii_graphic());
    valid.then_some(key)
}

/// The order an earlier request with this key placed, if the body is the same.
async fn find_by_key(conn: &mut PgConnection, customer_id: &str, key: &str, hash: &str) -> Result<Option<OrderAccepted>, PlaceOrderError> {
    let row = sqlx::query(FIND_BY_KEY).bind(customer_id).bind(key).fetch_optional(&mut *conn).await?;
    let Some(row) = row else { return Ok(None) };
    if row.get::<String, _>("request_hash") != hash {
        return Err(PlaceOrderError::KeyReused);
    }
    let status: String = row.get("status");
    let status = OrderStatus::parse(&status).ok_or_else(|| anyhow::anyhow!("unknown status {status}"))?;
    Ok(Some(OrderAccepted { order_id: row.get("id"), status }))
}

struct PricedLines {
    lines: Vec<OrderLine>,
    currency: String,
    total_minor: i64,
}

/// Prices every line from the catalog replica; an unknown SKU refuses the order.
async fn price_lines(conn: &mut PgConnection, items: &[RequestedLine]) -> Result<PricedLines, PlaceOrderError> {
    let skus: Vec<&str> = items.iter().map(|i| i.sku.as_str()).collect();
    let rows = sqlx::query(CATALOG_PRICES).bind(&skus).fetch_all(&mut *conn).await?;
    let mut lines = Vec::with_capacity(items.len());
    let mut currency: Option<String> = None;
    for item in items {
        let row = rows.iter().find(|r| r.get::<&str, _>("sku") == item.sku).ok_or_else(|| PlaceOrderError::UnknownSku(item.sku.clone()))?;
        let line_currency: String = row.get("currency");
        if currency.get_or_insert_with(|| line_currency.clone()) != &line_currency {
            return Err(PlaceOrderError::MixedCurrencies);
        }
        lines.push(OrderLine {
            sku: item.sku.clone(),
            quantity: i32::try_from(item.quantity).map_err(|_| anyhow::anyhow!("quantity passed validation"))?,
            unit_price_minor: row.get("price_minor"),
        });
    }
    let total_minor = lines.iter().map(|l| l.unit_price_minor * i64::from(l.quantity)).sum();
    Ok(PricedLines { lines, currency: currency.unwrap_or_default(), total_minor })
}

async fn insert_items(conn: &mut PgConnection, order_id: Uuid, lines: &[OrderLine]) -> Result<(), PlaceOrderError> {
    let line_nos: Vec<i32> = (1..=lines.len() as i32).collect();
    let skus: Vec<&str> = lines.iter().map(|l| l.sku.as_str()).collect();
    let quantities: Vec<i32> = lines.iter().map(|l| l.quantity).collect();
    let prices: Vec<i64> = lines.iter().map(|l| l.unit_price_minor).collect();
    sqlx::query(INSERT_ITEMS).bind(order_id).bind(&line_nos).bind(&skus).bind(&quantities).bind(&prices).execute(&mut *conn).await?;
    Ok(())
}
