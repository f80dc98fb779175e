//! The rows of the four service databases, scoped by order id and SKU
//! (`null` arrays mean everything). A product is read together with the sums
//! of every reservation of its SKU, in or out of scope, so a scoped check
//! still checks its SKUs whole.

use std::collections::{HashMap, HashSet};

use anyhow::Context;
use sqlx::{PgConnection, PgPool, Postgres, Transaction};
use uuid::Uuid;

use crate::{
    snapshot::{Line, OrderRow, PaymentRow, ProductRow, ReservationRow, ShipmentRow},
    Scope, Sources,
};

pub struct Tables {
    pub orders: Vec<OrderRow>,
    pub missing_orders: Vec<Uuid>,
    pub payments: HashMap<Uuid, PaymentRow>,
    pub reservations: HashMap<Uuid, ReservationRow>,
    pub shipments: HashMap<Uuid, ShipmentRow>,
    pub products: Vec<ProductRow>,
    pub missing_skus: Vec<String>,
}

pub async fn read(sources: &Sources, scope: &Scope) -> anyhow::Result<Tables> {
    let (ids, skus) = match scope {
        Scope::All => (None, None),
        Scope::Only { orders, skus } => (Some(orders.clone()), Some(skus.clone())),
    };
    let at = |database: &str| format!("PostgreSQL database {database} on {}:{}", sources.settings.pg_host, sources.settings.pg_port);
    let (orders, payments, shipments, (reservations, products)) = tokio::try_join!(
        async { order_rows(&sources.orders, ids.as_deref()).await.with_context(|| at("orders")) },
        async { payment_rows(&sources.payments, ids.as_deref()).await.with_context(|| at("payments")) },
        async { shipment_rows(&sources.shipping, ids.as_deref()).await.with_context(|| at("shipping")) },
        async { inventory_rows(&sources.inventory, ids.as_deref(), skus.as_deref()).await.with_context(|| at("inventory")) },
    )?;
    let found: HashSet<Uuid> = orders.iter().map(|o| o.id).collect();
    let missing_orders = ids.unwrap_or_default().into_iter().filter(|id| !found.contains(id)).collect();
    let found: HashSet<&str> = products.iter().map(|p| p.sku.as_str()).collect();
    let missing_skus = skus.unwrap_or_default().into_iter().filter(|sku| !found.contains(sku.as_str())).collect();
    Ok(Tables { orders, missing_orders, payments, reservations, shipments, products, missing_skus })
}

async fn snapshot(pool: &PgPool) -> sqlx::Result<Transaction<'static, Postgres>> {
    let mut tx = pool.begin().await?;
    sqlx::query("set transaction isolation level repeatable read, read only").execute(&mut *tx).await?;
    Ok(tx)
}

async fn order_rows(pool: &PgPool, ids: Option<&[Uuid]>) -> sqlx::Result<Vec<OrderRow>> {
    let mut tx = snapshot(pool).await?;
    let rows: Vec<(Uuid, String, Option<String>, i64, i64, i64)> = sqlx::query_as(
        "select id, status, cancel_reason, total_minor, version, (extract(epoch from now() - created_at) * 1000)::bigint
         from orders where $1::uuid[] is null or id = any($1) order by id",
    )
    .bind(ids)
    .fetch_all(&mut *tx)
    .await?;
    let items: Vec<(Uuid, String, i64)> = sqlx::query_as(
        "select order_id, sku, sum(quantity)::bigint from order_items
         where $1::uuid[] is null or order_id = any($1) group by order_id, sku order by order_id, sku",
    )
    .bind(ids)
    .fetch_all(&mut *tx)
    .await?;
    let mut lines = group_lines(items.into_iter().map(|(id, sku, quantity)| (id, Some((sku, quantity)))));
    Ok(rows
        .into_iter()
        .map(|(id, status, cancel_reason, total_minor, version, age_ms)| {
            let items = lines.remove(&id).unwrap_or_default();
            OrderRow { id, status, cancel_reason, total_minor, version, age_ms, items }
        })
        .collect())
}

async fn payment_rows(pool: &PgPool, ids: Option<&[Uuid]>) -> sqlx::Result<HashMap<Uuid, PaymentRow>> {
    let rows: Vec<(Uuid, String, i64, Option<String>, bool)> = sqlx::query_as(
        "select p.order_id, p.status, p.amount_minor, p.transaction_id,
                exists (select 1 from provider_notifications n
                        where n.order_id = p.order_id and n.transaction_status in ('settlement', 'capture'))
         from payments p where $1::uuid[] is null or p.order_id = any($1)",
    )
    .bind(ids)
    .fetch_all(pool)
    .await?;
    Ok(rows
        .into_iter()
        .map(|(order_id, status, amount_minor, transaction_id, captured_at_provider)| {
            (order_id, PaymentRow { order_id, status, amount_minor, transaction_id, captured_at_provider })
        })
        .collect())
}

async fn shipment_rows(pool: &PgPool, ids: Option<&[Uuid]>) -> sqlx::Result<HashMap<Uuid, ShipmentRow>> {
    let rows: Vec<(Uuid, String)> =
        sqlx::query_as("select order_id, status from shipments where $1::uuid[] is null or order_id = any($1)").bind(ids).fetch_all(pool).await?;
    Ok(rows.into_iter().map(|(order_id, status)| (order_id, ShipmentRow { order_id, status })).collect())
}

async fn inventory_rows(pool: &PgPool, ids: Option<&[Uuid]>, skus: Option<&[String]>) -> sqlx::Result<(HashMap<Uuid, ReservationRow>, Vec<ProductRow>)> {
    let mut tx = snapshot(pool).await?;
    let reservations = reservation_rows(&mut tx, ids).await?;
    let products = product_rows(&mut tx, skus).await?;
    Ok((reservations, products))
}

async fn reservation_rows(tx: &mut PgConnection, ids: Option<&[Uuid]>) -> sqlx::Result<HashMap<Uuid, ReservationRow>> {
    let rows: Vec<(Uuid, String, Option<String>, Option<i64>)> = sqlx::query_as(
        "select r.order_id, r.status, l.sku, l.quantity::bigint
         from reservations r left join reservation_lines l on l.order_id = r.order_id
         where $1::uuid[] is null or r.order_id = any($1) order by r.order_id, l.sku",
    )
    .bind(ids)
    .fetch_all(&mut *tx)
    .await?;
    let statuses: HashMap<Uuid, String> = rows.iter().map(|(id, status, _, _)| (*id, status.clone())).collect();
    let mut lines = group_lines(rows.into_iter().map(|(id, _, sku, quantity)| (id, sku.zip(quantity))));
    Ok(statuses
        .into_iter()
        .map(|(order_id, status)| {
            let lines = lines.remove(&order_id).unwrap_or_default();
            let reservation = ReservationRow { order_id, status, lines };
            (order_id, reservation)
        })
        .collect())
}

/// Each product with the sums of every reservation of its SKU, in or out of scope.
async fn product_rows(tx: &mut PgConnection, skus: Option<&[String]>) -> sqlx::Result<Vec<ProductRow>> {
    let products: Vec<(String, i64, i64, i64, i64)> = sqlx::query_as(
        "select p.sku, p.on_hand::bigint, p.reserved::bigint,
                coalesce(sum(l.quantity) filter (where r.status = 'RESERVED'), 0)::bigint,
                coalesce(sum(l.quantity) filter (where r.status = 'COMMITTED'), 0)::bigint
         from products p
         left join reservation_lines l on l.sku = p.sku
         left join reservations r on r.order_id = l.order_id
         where $1::text[] is null or p.sku = any($1)
         group by p.sku, p.on_hand, p.reserved order by p.sku",
    )
    .bind(skus)
    .fetch_all(&mut *tx)
    .await?;
    Ok(products.into_iter().map(|(sku, on_hand, reserved, held, sold)| ProductRow { sku, on_hand, reserved, held, sold }).collect())
}

/// Lines by order id, in the order given (None: a row without a line).
fn group_lines(rows: impl Iterator<Item = (Uuid, Option<(String, i64)>)>) -> HashMap<Uuid, Vec<Line>> {
    let mut lines: HashMap<Uuid, Vec<Line>> = HashMap::new();
    for (id, line) in rows {
        let entry = lines.entry(id).or_default();
        if let Some((sku, quantity)) = line {
            entry.push(Line { sku, quantity });
        }
    }
    lines
}
