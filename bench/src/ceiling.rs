//! The saga's SQL ceiling: every transaction of one order's saga, issued
//! directly against PostgreSQL with no HTTP, Debezium or Kafka between them,
//! on fresh copies of the three databases (the services' own migrations).
//!
//! The steps that are plain functions of the consumers run as those very
//! functions (inventory's reservation and commit, orders' confirmation), the
//! others as the same statements as their services (the order placement, the
//! payment request without the provider call, the webhook's capture). Every
//! event is encoded through the registry (ids cached) and appended to the
//! outbox, as in the services.

use std::sync::Arc;

use outflow_consumer::Delivery;
use outflow_events::{
    inventory::{ReservedLine, StockReserved},
    order::{OrderConfirmed, OrderLine, OrderPlaced},
    payment::{PaymentCaptured, PaymentRequested},
    DomainEvent,
};
use outflow_outbox::{inbox, new_event_id, now_millis, Outbox, TraceContext};
use outflow_stack_tests::Stack;
use sqlx::{postgres::PgPoolOptions, PgPool};
use uuid::Uuid;

use crate::measure::{closed_loop, Measurement};

/// As many products as the stack run uses (`saga::PRODUCTS`), chosen alike.
fn sku(i: usize) -> String {
    format!("CEIL-{i:02}")
}

pub struct SagaCeiling {
    stack: Stack,
    databases: Vec<String>,
    orders: PgPool,
    inventory: Arc<outflow_inventory_consumer::Steps>,
    orders_steps: Arc<outflow_orders_consumer::Steps>,
    payments: PgPool,
    outbox: Arc<Outbox>,
}

impl SagaCeiling {
    pub async fn prepare(stack: &Stack, connections: u32) -> anyhow::Result<SagaCeiling> {
        let mut databases = Vec::new();
        let mut pools = Vec::new();
        for (name, migrator) in [
            ("orders", &outflow_orders::startup::MIGRATOR),
            ("inventory", &outflow_inventory::startup::MIGRATOR),
            ("payments", &outflow_payments::startup::MIGRATOR),
        ] {
            let (database, pool) = stack.fresh_database(&format!("bench_{name}")).await?;
            migrator.run(&pool).await?;
            pool.close().await;
            pools.push(PgPoolOptions::new().max_connections(connections).connect(&stack.database_url(&database)).await?);
            databases.push(database);
        }
        let (orders, inventory, payments) = (pools[0].clone(), pools[1].clone(), pools[2].clone());
        for i in 0..crate::saga::PRODUCTS {
            let sku = sku(i);
            sqlx::query("insert into catalog (sku, name, price_minor, currency, version) values ($1, $1, $2, 'EUR', 1)")
                .bind(&sku)
                .bind(100 * (i as i64 + 1))
                .execute(&orders)
                .await?;
            sqlx::query("insert into products (sku, name, price_minor, currency, on_hand, reserved, version) values ($1, $1, $2, 'EUR', 1000000000, 0, 1)")
                .bind(&sku)
                .bind(100 * (i as i64 + 1))
                .execute(&inventory)
                .await?;
        }
        let outbox = Arc::new(Outbox::new(&stack.registry_url));
        outbox.register_all().await?;
        Ok(SagaCeiling {
            stack: stack.clone(),
            databases,
            inventory: Arc::new(outflow_inventory_consumer::Steps { pool: inventory, outbox: Outbox::new(&stack.registry_url) }),
            orders_steps: Arc::new(outflow_orders_consumer::Steps { pool: orders.clone(), outbox: Outbox::new(&stack.registry_url) }),
            orders,
            payments,
            outbox,
        })
    }

    /// Whole sagas per second, `concurrency` at a time.
    pub async fn measure(self: &Arc<Self>, concurrency: usize, seconds: u64) -> Measurement {
        let this = self.clone();
        closed_loop("saga SQL ceiling", concurrency, seconds, move |n| {
            let this = this.clone();
            async move { this.saga(n).await }
        })
        .await
    }

    pub async fn cleanup(self) -> anyhow::Result<()> {
        self.orders.close().await;
        self.payments.close().await;
        self.inventory.pool.close().await;
        self.orders_steps.pool.close().await;
        for database in &self.databases {
            self.stack.drop_database(database).await?;
        }
        Ok(())
    }

    async fn saga(&self, n: u64) -> anyhow::Result<()> {
        let placed = self.place(n).await?;
        let order_id = placed.aggregate_id.clone();
        outflow_inventory_consumer::handlers::order_placed::reserve_stock(&self.inventory, &delivery(DomainEvent::OrderPlaced(placed.clone())), &placed)
            .await
            .map_err(|e| anyhow::anyhow!("reserve: {e:?}"))?;
        let reserved = StockReserved {
            event_id: new_event_id(),
            aggregate_id: order_id.clone(),
            aggregate_version: 1,
            occurred_at: now_millis(),
            order_id: order_id.clone(),
            customer_id: placed.customer_id.clone(),
            total_minor: placed.total_minor,
            currency: placed.currency.clone(),
            lines: placed
                .lines
                .iter()
                .map(|l| ReservedLine { sku: l.sku.clone(), quantity: l.quantity, on_hand: 0, reserved: 0, product_version: 0 })
                .collect(),
        };
        self.request_payment(&reserved).await?;
        let captured = self.capture(&order_id).await?;
        outflow_orders_consumer::handlers::payment_captured::confirm_order(
            &self.orders_steps,
            &delivery(DomainEvent::PaymentCaptured(captured.clone())),
            &captured,
        )
        .await
        .map_err(|e| anyhow::anyhow!("confirm: {e:?}"))?;
        let confirmed = OrderConfirmed {
            event_id: new_event_id(),
            aggregate_id: order_id.clone(),
            aggregate_version: 2,
            occurred_at: now_millis(),
            customer_id: placed.customer_id.clone(),
        };
        outflow_inventory_consumer::handlers::order_confirmed::commit_stock(
            &self.inventory,
            &delivery(DomainEvent::OrderConfirmed(confirmed.clone())),
            &confirmed,
        )
        .await
        .map_err(|e| anyhow::anyhow!("commit: {e:?}"))?;
        Ok(())
    }

    /// The orders writer's placement: idempotency lookup, catalog, order, lines, OrderPlaced.
    async fn place(&self, n: u64) -> anyhow::Result<OrderPlaced> {
        let lines = crate::saga::lines(n);
        let skus: Vec<String> = lines.iter().map(|(i, _)| sku(*i)).collect();
        let quantities: Vec<i32> = lines.iter().map(|(_, q)| *q).collect();
        let key = format!("ceiling-{n}-{}", Uuid::new_v4().simple());
        let mut tx = self.orders.begin().await?;
        let (order_id, total, unit_prices) = crate::write_path::insert_order(&mut tx, "bench-ceiling", &key, &skus, &quantities).await?;
        let placed = OrderPlaced {
            event_id: new_event_id(),
            aggregate_id: order_id.to_string(),
            aggregate_version: 1,
            occurred_at: now_millis(),
            customer_id: "bench-ceiling".into(),
            lines: skus
                .iter()
                .zip(&quantities)
                .zip(&unit_prices)
                .map(|((sku, q), p)| OrderLine { sku: sku.to_string(), quantity: *q, unit_price_minor: *p })
                .collect(),
            total_minor: total,
            currency: "EUR".into(),
        };
        self.outbox.append(&mut tx, &placed, &TraceContext::new_root()).await?;
        tx.commit().await?;
        Ok(placed)
    }

    /// The payments consumer's step on StockReserved, without the provider
    /// call: the payment recorded, then opened with its event.
    async fn request_payment(&self, event: &StockReserved) -> anyhow::Result<()> {
        let order_id = Uuid::parse_str(&event.order_id)?;
        let event_id = Uuid::parse_str(&event.event_id)?;
        let lock = "select pg_advisory_xact_lock(hashtextextended($1::text, 0))";
        let mut tx = self.payments.begin().await?;
        sqlx::query(lock).bind(order_id).execute(&mut *tx).await?;
        anyhow::ensure!(!inbox::seen(&mut tx, event_id).await?, "event seen twice");
        sqlx::query_scalar::<_, bool>("select exists (select 1 from given_up_orders where order_id = $1)").bind(order_id).fetch_one(&mut *tx).await?;
        sqlx::query("insert into payments (order_id, customer_id, status, amount_minor, currency, version) values ($1, $2, 'PENDING', $3, $4, 1) on conflict (order_id) do nothing")
            .bind(order_id)
            .bind(&event.customer_id)
            .bind(event.total_minor)
            .bind(&event.currency)
            .execute(&mut *tx)
            .await?;
        sqlx::query_scalar::<_, bool>("select status = 'PENDING' and provider_token is null from payments where order_id = $1")
            .bind(order_id)
            .fetch_one(&mut *tx)
            .await?;
        tx.commit().await?;
        let mut tx = self.payments.begin().await?;
        sqlx::query(lock).bind(order_id).execute(&mut *tx).await?;
        anyhow::ensure!(inbox::claim(&mut tx, event_id, "StockReserved").await?, "event claimed twice");
        sqlx::query("update payments set provider_transaction_id = $2 where order_id = $1 and provider_transaction_id is null")
            .bind(order_id)
            .bind(format!("tx-{order_id}"))
            .execute(&mut *tx)
            .await?;
        sqlx::query("update payments set provider_token = $2, redirect_url = $3, updated_at = now() where order_id = $1 and status = 'PENDING' and provider_token is null")
            .bind(order_id)
            .bind("token")
            .bind("http://127.0.0.1:7199/pay")
            .execute(&mut *tx)
            .await?;
        let requested = PaymentRequested {
            event_id: new_event_id(),
            aggregate_id: event.order_id.clone(),
            aggregate_version: 1,
            occurred_at: now_millis(),
            order_id: event.order_id.clone(),
            amount_minor: event.total_minor,
            currency: event.currency.clone(),
            provider_token: "token".into(),
            redirect_url: "http://127.0.0.1:7199/pay".into(),
        };
        self.outbox.append(&mut tx, &requested, &TraceContext::new_root()).await?;
        tx.commit().await?;
        Ok(())
    }

    /// The payments writer's webhook transaction for a settlement.
    async fn capture(&self, order: &str) -> anyhow::Result<PaymentCaptured> {
        let order_id = Uuid::parse_str(order)?;
        let transaction_id = format!("tx-{order}");
        // The webhook's reads before its transaction: the payment's amount and
        // transaction, and whether this notification was recorded already.
        sqlx::query_as::<_, (i64, Option<String>)>("select amount_minor, provider_transaction_id from payments where order_id = $1")
            .bind(order_id)
            .fetch_one(&self.payments)
            .await?;
        sqlx::query_scalar::<_, bool>(
            "select exists (select 1 from provider_notifications where transaction_id = $1 and transaction_status = 'settlement' and order_id = $2)",
        )
        .bind(&transaction_id)
        .bind(order_id)
        .fetch_one(&self.payments)
        .await?;
        let mut tx = self.payments.begin().await?;
        let (_status, version): (String, i64) =
            sqlx::query_as("select status, version from payments where order_id = $1 for update").bind(order_id).fetch_one(&mut *tx).await?;
        sqlx::query("insert into provider_notifications (transaction_id, transaction_status, order_id) values ($1, 'settlement', $2) on conflict do nothing")
            .bind(&transaction_id)
            .bind(order_id)
            .execute(&mut *tx)
            .await?;
        sqlx::query(
            "update payments set status = 'CAPTURED', transaction_id = $2, failure_reason = null, version = $3, updated_at = now() where order_id = $1",
        )
        .bind(order_id)
        .bind(&transaction_id)
        .bind(version + 1)
        .execute(&mut *tx)
        .await?;
        let amount_minor: i64 = sqlx::query_scalar("select amount_minor from payments where order_id = $1").bind(order_id).fetch_one(&mut *tx).await?;
        let captured = PaymentCaptured {
            event_id: new_event_id(),
            aggregate_id: order.to_owned(),
            aggregate_version: version + 1,
            occurred_at: now_millis(),
            order_id: order.to_owned(),
            transaction_id,
            amount_minor,
        };
        self.outbox.append(&mut tx, &captured, &TraceContext::new_root()).await?;
        tx.commit().await?;
        Ok(captured)
    }
}

fn delivery(event: DomainEvent) -> Delivery {
    let event_id = Uuid::parse_str(event.event_id()).expect("event ids are UUIDs");
    Delivery { event, event_id, traceparent: None, topic: "bench".into(), partition: 0, offset: 0 }
}
