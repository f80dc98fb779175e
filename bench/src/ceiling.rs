//! The saga's SQL ceiling: every transaction of one order's saga, issued
//! directly against PostgreSQL with no HTTP, Debezium or Kafka between them,
//! on fresh copies of the three databases (the services' own migrations).
//!
//! Every step is the services' own code, so the ceiling cannot drift from
//! what it bounds: the orders writer's placement, inventory's reservation,
//! the payments consumer's two transactions around its provider call, the
//! payments webhook's checks and capture around its status check with the
//! provider, orders' confirmation and inventory's commit. The two provider
//! calls are left out (HTTP to another service, not the database work the
//! ceiling bounds). Every event is encoded through the registry (ids cached)
//! and appended to the outbox by the services' code; the events passed from
//! one step to the next are built here, as Kafka would deliver them.

use std::sync::Arc;

use anyhow::Context;
use outflow_consumer::{Delivery, Outcome};
use outflow_events::{
    inventory::{ReservedLine, StockReserved},
    order::{OrderConfirmed, OrderPlaced},
    payment::PaymentCaptured,
    DomainEvent,
};
use outflow_orders::{
    domain::RequestedLine,
    routes::place_order::{self, Placement},
};
use outflow_outbox::{new_event_id, now_millis, Outbox, TraceContext};
use outflow_payments::{
    routes::notification::{self, Notification, Screened},
    state::{AppState, Provider},
};
use outflow_payments_consumer::handlers::stock_reserved::{self, Recorded};
use outflow_provider::{signature, OpenedTransaction, ProviderClient};
use outflow_service::{app::ServiceBase, auth::JwtKeys};
use outflow_stack_tests::Stack;
use secrecy::{ExposeSecret, SecretString};
use sqlx::{postgres::PgPoolOptions, PgPool};
use uuid::Uuid;

use crate::measure::{closed_loop, Measurement};

/// Where the steps' provider clients point. Nothing listens on the discard
/// port: a provider call that the ceiling did not mean to make fails and
/// counts as an error instead of passing unnoticed.
const NO_PROVIDER: &str = "http://127.0.0.1:9";

const CUSTOMER: &str = "bench-ceiling";

/// As many products as the stack run uses (`saga::PRODUCTS`), chosen alike.
fn sku(i: usize) -> String {
    format!("CEIL-{i:02}")
}

/// The provider's transaction of an order, as the opening step stores it and
/// the settlement names it.
fn transaction_id(order_id: &str) -> String {
    format!("tx-{order_id}")
}

pub struct SagaCeiling {
    stack: Stack,
    databases: Vec<String>,
    /// The orders writer's pool and outbox.
    orders: PgPool,
    orders_outbox: Outbox,
    inventory: outflow_inventory_consumer::Steps,
    orders_steps: outflow_orders_consumer::Steps,
    payments: outflow_payments_consumer::Steps,
    /// What the payments writer's webhook receives.
    webhook: AppState,
}

impl SagaCeiling {
    pub async fn prepare(stack: &Stack, connections: u32) -> anyhow::Result<SagaCeiling> {
        let (databases, [orders, inventory, payments]) = fresh_databases(stack, connections).await?;
        stock_products(&orders, &inventory).await?;
        let registry = stack.registry();
        let outbox = || Outbox::registered(&registry);
        let server_key = SecretString::from(stack.provider_server_key.clone());
        let webhook = AppState {
            base: ServiceBase { pool: payments.clone(), outbox: Arc::new(outbox().await?), jwt: JwtKeys::new(&SecretString::from(stack.jwt_secret.clone())) },
            own: Provider { client: ProviderClient::new(NO_PROVIDER, server_key.clone()), server_key: server_key.clone() },
        };
        Ok(SagaCeiling {
            stack: stack.clone(),
            databases,
            orders_outbox: outbox().await?,
            inventory: outflow_inventory_consumer::Steps { pool: inventory, outbox: outbox().await? },
            orders_steps: outflow_orders_consumer::Steps { pool: orders.clone(), outbox: outbox().await? },
            payments: outflow_payments_consumer::Steps { pool: payments, outbox: outbox().await?, provider: ProviderClient::new(NO_PROVIDER, server_key) },
            orders,
            webhook,
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
        self.payments.pool.close().await;
        self.inventory.pool.close().await;
        for database in &self.databases {
            self.stack.drop_database(database).await?;
        }
        Ok(())
    }

    async fn saga(&self, n: u64) -> anyhow::Result<()> {
        use outflow_inventory_consumer::handlers::{order_confirmed::commit_stock, order_placed::reserve_stock};
        use outflow_orders_consumer::handlers::payment_captured::confirm_order;
        let placed = self.place(n).await?;
        let outcome = reserve_stock(&self.inventory, &delivery(DomainEvent::OrderPlaced(placed.clone())), &placed).await.context("reserving the stock")?;
        applied("reserving the stock", outcome)?;
        self.request_payment(&reserved(&placed)).await?;
        let captured = self.capture(&placed.aggregate_id, placed.total_minor).await?;
        let outcome =
            confirm_order(&self.orders_steps, &delivery(DomainEvent::PaymentCaptured(captured.clone())), &captured).await.context("confirming the order")?;
        applied("confirming the order", outcome)?;
        let confirmed = OrderConfirmed {
            event_id: new_event_id(),
            aggregate_id: placed.aggregate_id.clone(),
            aggregate_version: 2,
            occurred_at: now_millis(),
            customer_id: placed.customer_id.clone(),
        };
        let outcome =
            commit_stock(&self.inventory, &delivery(DomainEvent::OrderConfirmed(confirmed.clone())), &confirmed).await.context("committing the stock")?;
        applied("committing the stock", outcome)
    }

    /// The orders writer's placement of order `n`'s lines.
    async fn place(&self, n: u64) -> anyhow::Result<OrderPlaced> {
        let items: Vec<RequestedLine> =
            crate::saga::lines(n).into_iter().map(|(i, quantity)| RequestedLine { sku: sku(i), quantity: quantity.into() }).collect();
        let key = format!("ceiling-{n}-{}", Uuid::new_v4().simple());
        let placement =
            place_order::place(&self.orders, &self.orders_outbox, CUSTOMER, &key, &items, &TraceContext::new_root()).await.context("placing the order")?;
        match placement {
            Placement::Placed { event, .. } => Ok(event),
            Placement::Existing(existing) => anyhow::bail!("key {key} had placed order {} already", existing.order_id),
        }
    }

    /// The payments consumer's step on StockReserved: its two transactions,
    /// with the provider's answer made up where it would open the transaction.
    async fn request_payment(&self, reserved: &StockReserved) -> anyhow::Result<()> {
        let delivery = delivery(DomainEvent::StockReserved(reserved.clone()));
        let order_id = Uuid::parse_str(&reserved.order_id)?;
        let recorded = stock_reserved::record(&self.payments, &delivery, reserved, order_id).await.context("recording the payment")?;
        anyhow::ensure!(matches!(recorded, Recorded::Pending), "the payment of order {order_id} was not left to be opened");
        let opened =
            OpenedTransaction { transaction_id: transaction_id(&reserved.order_id), token: "token".into(), redirect_url: format!("{NO_PROVIDER}/pay") };
        let outcome = stock_reserved::store_opened(&self.payments, &delivery, reserved, order_id, opened).await.context("storing the opened payment")?;
        applied("storing the opened payment", outcome)
    }

    /// The payments writer's webhook on a signed settlement, without asking
    /// the provider for its status; returns the `PaymentCaptured` it appended,
    /// as the orders consumer receives it.
    async fn capture(&self, order_id: &str, amount_minor: i64) -> anyhow::Result<PaymentCaptured> {
        let body = self.settlement(order_id, amount_minor);
        let rejected = |e: outflow_service::error::ApiError| anyhow::anyhow!("the webhook answered {} {}: {}", e.status, e.code, e.message);
        let Screened::ToApply { order_id: id, wanted } = notification::screen(&self.webhook, &body).await.map_err(rejected)? else {
            anyhow::bail!("the webhook took the first settlement of order {order_id} for one it had applied already");
        };
        let outcome = notification::apply_once(&self.webhook, &body, id, wanted).await.map_err(rejected)?;
        anyhow::ensure!(outcome.0.result == "applied", "the webhook did not apply the settlement of {order_id}: {}", outcome.0.result);
        Ok(PaymentCaptured {
            event_id: new_event_id(),
            aggregate_id: order_id.to_owned(),
            // Recorded at version 1, captured at 2.
            aggregate_version: 2,
            occurred_at: now_millis(),
            order_id: order_id.to_owned(),
            transaction_id: body.transaction_id,
            amount_minor,
        })
    }

    /// The notification the provider sends when the payment settles, signed
    /// with the server key the webhook checks.
    fn settlement(&self, order_id: &str, amount_minor: i64) -> Notification {
        let gross_amount = signature::gross_amount(amount_minor);
        let signature_key = signature::sign(order_id, "200", &gross_amount, self.webhook.own.server_key.expose_secret());
        Notification {
            order_id: order_id.to_owned(),
            transaction_id: transaction_id(order_id),
            transaction_status: "settlement".into(),
            status_code: "200".into(),
            gross_amount,
            signature_key,
            fraud_status: None,
        }
    }
}

/// The three databases, fresh and migrated by their writers' migrations,
/// each with a pool of `connections`: (their names, [orders, inventory, payments]).
async fn fresh_databases(stack: &Stack, connections: u32) -> anyhow::Result<(Vec<String>, [PgPool; 3])> {
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
    let pools: [PgPool; 3] = pools.try_into().map_err(|_| anyhow::anyhow!("three databases, three pools"))?;
    Ok((databases, pools))
}

/// The products in the orders side's catalog replica and in inventory, with
/// stock for any run.
async fn stock_products(orders: &PgPool, inventory: &PgPool) -> anyhow::Result<()> {
    for i in 0..crate::saga::PRODUCTS {
        let sku = sku(i);
        sqlx::query("insert into catalog (sku, name, price_minor, currency, version) values ($1, $1, $2, 'EUR', 1)")
            .bind(&sku)
            .bind(100 * (i as i64 + 1))
            .execute(orders)
            .await?;
        sqlx::query("insert into products (sku, name, price_minor, currency, on_hand, reserved, version) values ($1, $1, $2, 'EUR', 1000000000, 0, 1)")
            .bind(&sku)
            .bind(100 * (i as i64 + 1))
            .execute(inventory)
            .await?;
    }
    Ok(())
}

/// StockReserved as the payments consumer receives it: its step reads the
/// order, customer, amount and currency, not the stock of the lines.
fn reserved(placed: &OrderPlaced) -> StockReserved {
    StockReserved {
        event_id: new_event_id(),
        aggregate_id: placed.aggregate_id.clone(),
        aggregate_version: 1,
        occurred_at: now_millis(),
        order_id: placed.aggregate_id.clone(),
        customer_id: placed.customer_id.clone(),
        total_minor: placed.total_minor,
        currency: placed.currency.clone(),
        lines: placed.lines.iter().map(|l| ReservedLine { sku: l.sku.clone(), quantity: l.quantity, on_hand: 0, reserved: 0, product_version: 0 }).collect(),
    }
}

/// A step that did less than its full work would make the ceiling bound a
/// shorter saga than the stack runs.
fn applied(step: &str, outcome: Outcome) -> anyhow::Result<()> {
    anyhow::ensure!(outcome == Outcome::Applied, "{step}: {outcome:?} instead of applied");
    Ok(())
}

fn delivery(event: DomainEvent) -> Delivery {
    let event_id = Uuid::parse_str(event.event_id()).expect("event ids are UUIDs");
    Delivery { event, event_id, traceparent: None, topic: "bench".into(), partition: 0, offset: 0 }
}
