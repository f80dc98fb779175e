//! The write path: `POST /v1/orders` through the orders writer (built from the
//! same code as the service, on port 0) against its ceiling, the same
//! transaction issued directly over SQL (idempotency lookup, catalog read,
//! order, lines, outbox insert and delete) with an Avro payload encoded once.
//! Both run on a fresh database at the same concurrency, in alternating rounds.

use std::{path::PathBuf, sync::Arc};

use anyhow::Context;
use outflow_orders::{settings::Settings, startup};
use outflow_service::{
    auth::{JwtKeys, Role},
    settings::{DatabaseSettings, HttpSettings, ServiceSettings},
};
use outflow_stack_tests::Stack;
use secrecy::SecretString;
use serde_json::json;
use sqlx::postgres::PgPoolOptions;
use uuid::Uuid;

use crate::{
    http1::Connection,
    measure::{closed_loop, median, print_table, Measurement},
    wrk,
};

#[derive(clap::Args)]
pub struct Args {
    #[arg(long, default_value_t = 16)]
    concurrency: usize,
    #[arg(long, default_value_t = 15)]
    seconds: u64,
    /// Rounds of (ceiling, writer, writer driven by wrk); the medians are compared.
    #[arg(long, default_value_t = 2)]
    rounds: usize,
    #[arg(long, default_value = "bench/results")]
    results: PathBuf,
}

const SKUS: [&str; 4] = ["BENCH-1", "BENCH-2", "BENCH-3", "BENCH-4"];

pub async fn run(args: Args) -> anyhow::Result<()> {
    let result = compare(&Stack::from_env(), args.concurrency, args.seconds, args.rounds).await?;
    print_table(&result.rounds);
    println!(
        "\nwrite path: {:.1}/s against the SQL ceiling {:.1}/s = {:.2} (goal >= 0.80), wrk {:.1}/s, concurrency {}",
        result.writer_per_second, result.ceiling_per_second, result.ratio, result.wrk_per_second, args.concurrency
    );
    std::fs::create_dir_all(&args.results)?;
    let file = args.results.join(format!("write-path-{}.json", chrono::Utc::now().format("%Y%m%dT%H%M%SZ")));
    std::fs::write(&file, serde_json::to_string_pretty(&result)?)?;
    println!("results: {}", file.display());
    Ok(())
}

#[derive(Debug, serde::Serialize)]
pub struct WritePath {
    pub concurrency: usize,
    pub rounds: Vec<Measurement>,
    pub ceiling_per_second: f64,
    pub writer_per_second: f64,
    pub ratio: f64,
    /// The same endpoint driven by wrk, a load generator outside this process.
    pub wrk_per_second: f64,
}

/// Alternating rounds of (SQL ceiling, writer, writer driven by wrk); the
/// medians are compared.
pub async fn compare(stack: &Stack, concurrency: usize, seconds: u64, rounds: usize) -> anyhow::Result<WritePath> {
    let (database, pool) = stack.fresh_database("bench_write").await?;
    startup::MIGRATOR.run(&pool).await?;
    for (i, sku) in SKUS.iter().enumerate() {
        sqlx::query("insert into catalog (sku, name, price_minor, currency, version) values ($1, $1, $2, 'EUR', 1)")
            .bind(sku)
            .bind(100 * (i as i64 + 1))
            .execute(&pool)
            .await?;
    }
    let settings = ServiceSettings {
        http: HttpSettings { host: "127.0.0.1".into(), port: 0, limits: Default::default() },
        database: DatabaseSettings::new(SecretString::from(stack.database_url(&database)), 20),
        registry_url: stack.registry_url.clone(),
        registry_user: Some(stack.registry_user.clone()),
        registry_password: Some(stack.registry_password.clone().into()),
        jwt_secret: SecretString::from(stack.jwt_secret.clone()),
        jwt: Default::default(),
    };
    let jwt = JwtKeys::new(&settings.jwt_secret);
    let app = startup::build(Settings::defaults_with(settings)).await.context("building the orders writer")?;
    let address = format!("127.0.0.1:{}", app.port());
    let server = tokio::spawn(app.run_until_stopped(std::future::pending()));
    let sql_pool = PgPoolOptions::new().max_connections(20).connect(&stack.database_url(&database)).await?;
    let payload = Arc::new(sample_payload(stack).await?);

    let mut rows: Vec<Measurement> = Vec::new();
    for round in 1..=rounds {
        let (pool, payload) = (sql_pool.clone(), payload.clone());
        rows.push(
            closed_loop(&format!("order SQL ceiling ({round})"), concurrency, seconds, move |n| {
                let (pool, payload) = (pool.clone(), payload.clone());
                async move { sql_transaction(&pool, n, &payload).await }
            })
            .await,
        );
        // Many customers, as in a shop: each has a rate limit of its own.
        let token = Arc::new(customer_tokens(&jwt, "bench"));
        let connections: Arc<Vec<Connection>> = Arc::new((0..concurrency).map(|_| Connection::new(&address)).collect());
        rows.push(
            closed_loop(&format!("POST /v1/orders ({round})"), concurrency, seconds, move |n| {
                let (connections, token) = (connections.clone(), token.clone());
                async move { post_order(&connections[(n / 1_000_000_000) as usize], &token[(n % token.len() as u64) as usize], n).await }
            })
            .await,
        );
        rows.push(wrk::post_orders(&format!("POST /v1/orders, wrk ({round})"), &address, &customer_tokens(&jwt, "bench-wrk"), concurrency, seconds).await?);
    }
    let arm = |skip: usize| {
        let mut values: Vec<f64> = rows.iter().skip(skip).step_by(3).map(|r| r.per_second).collect();
        median(&mut values)
    };
    let (ceiling, writer, external) = (arm(0), arm(1), arm(2));
    server.abort();
    sql_pool.close().await;
    pool.close().await;
    stack.drop_database(&database).await?;
    Ok(WritePath { concurrency, rounds: rows, ceiling_per_second: ceiling, writer_per_second: writer, ratio: writer / ceiling, wrk_per_second: external })
}

fn lines(n: u64) -> (Vec<&'static str>, Vec<i32>) {
    let count = 1 + (n % 3) as usize;
    (SKUS[..count].to_vec(), (1..=count as i32).collect())
}

async fn post_order(connection: &Connection, authorization: &str, n: u64) -> anyhow::Result<()> {
    let (skus, quantities) = lines(n);
    let items: Vec<_> = skus.iter().zip(&quantities).map(|(sku, q)| json!({"sku": sku, "quantity": q})).collect();
    let request = hyper::Request::post("/v1/orders")
        .header("host", "127.0.0.1")
        .header("authorization", authorization)
        .header("content-type", "application/json")
        .header("idempotency-key", format!("bench-{n}-{}", Uuid::new_v4()))
        .body(http_body_util::Full::new(bytes::Bytes::from(serde_json::to_vec(&json!({"items": items}))?)))?;
    let (status, body) = connection.send(request).await?;
    anyhow::ensure!(status == 202, "status {status}: {}", String::from_utf8_lossy(&body));
    Ok(())
}

/// The writer's transaction, statement for statement, with a pre-encoded payload.
async fn sql_transaction(pool: &sqlx::PgPool, n: u64, payload: &[u8]) -> anyhow::Result<()> {
    let (skus, quantities) = lines(n);
    let key = format!("bench-{n}-{}", Uuid::new_v4());
    let mut tx = pool.begin().await?;
    let order_id = insert_order(&mut tx, "bench-sql", &key, &skus, &quantities).await?;
    let event_id = Uuid::now_v7();
    sqlx::query("insert into outbox (id, aggregatetype, aggregateid, type, payload, traceparent) values ($1, 'order', $2, 'OrderPlaced', $3, $4)")
        .bind(event_id)
        .bind(order_id.to_string())
        .bind(payload)
        .bind("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
        .execute(&mut *tx)
        .await?;
    sqlx::query("delete from outbox where id = $1").bind(event_id).execute(&mut *tx).await?;
    tx.commit().await?;
    Ok(())
}

/// A representative OrderPlaced, Confluent-framed through the registry once.
async fn sample_payload(stack: &Stack) -> anyhow::Result<Vec<u8>> {
    use outflow_events::{
        order::{OrderLine, OrderPlaced},
        Event,
    };
    use schema_registry_converter::{
        async_impl::avro::AvroEncoder,
        schema_registry_common::{SchemaType, SubjectNameStrategy, SuppliedSchema},
    };
    let event = OrderPlaced {
        event_id: Uuid::now_v7().to_string(),
        aggregate_id: Uuid::now_v7().to_string(),
        aggregate_version: 1,
        occurred_at: outflow_outbox::now_millis(),
        customer_id: "bench-sql".into(),
        lines: vec![
            OrderLine { sku: SKUS[0].into(), quantity: 1, unit_price_minor: 100 },
            OrderLine { sku: SKUS[1].into(), quantity: 2, unit_price_minor: 200 },
        ],
        total_minor: 500,
        currency: "EUR".into(),
    };
    let strategy = SubjectNameStrategy::TopicRecordNameStrategyWithSchema(
        OrderPlaced::AGGREGATE_TYPE.topic(),
        SuppliedSchema::new(Some(OrderPlaced::full_name()), SchemaType::Avro, OrderPlaced::SCHEMA.to_owned()),
    );
    Ok(AvroEncoder::new(stack.registry().settings()).encode_struct(&event, &strategy).await?)
}

/// The orders writer's placement statements before its outbox event, as the
/// writer's own strings: idempotency lookup, catalog prices, the order and
/// its lines. Returns the order's id.
async fn insert_order(tx: &mut sqlx::PgConnection, customer: &str, key: &str, skus: &[&str], quantities: &[i32]) -> anyhow::Result<Uuid> {
    use outflow_orders::routes::place_order::{CATALOG_PRICES, FIND_BY_KEY, INSERT_ITEMS, INSERT_ORDER};
    sqlx::query(FIND_BY_KEY).bind(customer).bind(key).fetch_optional(&mut *tx).await?;
    let prices: Vec<(String, i64, String)> = sqlx::query_as(CATALOG_PRICES).bind(skus).fetch_all(&mut *tx).await?;
    let unit_prices: Vec<i64> = skus.iter().map(|s| prices.iter().find(|p| p.0 == *s).map_or(0, |p| p.1)).collect();
    let currency = prices.first().map_or("EUR", |p| p.2.as_str());
    let order_id = Uuid::now_v7();
    let total: i64 = unit_prices.iter().zip(quantities).map(|(p, q)| p * i64::from(*q)).sum();
    // The writer binds a SHA-256 of the body in hex and a traceparent: strings of the same lengths.
    let trace = outflow_outbox::TraceContext::new_root().to_header();
    sqlx::query(INSERT_ORDER).bind(order_id).bind(customer).bind(total).bind(currency).bind(key).bind("0".repeat(64)).bind(trace).execute(&mut *tx).await?;
    let line_nos: Vec<i32> = (1..=skus.len() as i32).collect();
    sqlx::query(INSERT_ITEMS).bind(order_id).bind(&line_nos).bind(skus).bind(quantities).bind(&unit_prices).execute(&mut *tx).await?;
    Ok(order_id)
}

/// Bearer headers of 1,000 customers named `<prefix>-<i>`.
pub fn customer_tokens(keys: &JwtKeys, prefix: &str) -> Vec<String> {
    (0..1000).map(|i| format!("Bearer {}", keys.mint(&format!("{prefix}-{i}"), Role::Customer, 24 * 3600))).collect()
}
