//! Nothing trusts a caller for being local (DESIGN.md, Trust), tried door by
//! door on the running stack: PostgreSQL's service roles, the MongoDB API's
//! login, the writers' rate limit and their defence against slow sockets, and
//! the production mode's refusals.

use std::time::Duration;

use anyhow::{Context, Result};
use mongodb::bson::doc;
use outflow_service::auth::Role;
use outflow_stack_tests::{service::TestService, Stack};
use secrecy::SecretString;
use serde_json::{json, Value};
use sqlx::postgres::PgConnectOptions;
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
};

fn dev(name: &str) -> String {
    std::env::var(name).ok().or_else(|| dev_env().remove(name)).unwrap_or_else(|| panic!("{name} is set neither in the environment nor in infra/dev.env"))
}

fn dev_env() -> std::collections::HashMap<String, String> {
    dotenvy::from_path_iter(concat!(env!("CARGO_MANIFEST_DIR"), "/../infra/dev.env")).expect("infra/dev.env").filter_map(Result::ok).collect()
}

async fn connect_as(stack: &Stack, role: &str, password: &str, database: &str) -> Result<sqlx::PgConnection, sqlx::Error> {
    use sqlx::Connection;
    let options = PgConnectOptions::new().host("127.0.0.1").port(stack.pg_port).username(role).password(password).database(database);
    sqlx::PgConnection::connect_with(&options).await
}

#[tokio::test]
#[ignore = "needs the stack: scripts/up (scripts/test runs it)"]
async fn each_service_role_reaches_its_own_tables_only() -> Result<()> {
    let stack = Stack::from_env();
    let admin = stack.admin_pool().await?;
    let powerful: Vec<String> = sqlx::query_scalar(
        "select rolname::text from pg_roles where rolname like 'outflow\\_%' and (rolsuper or rolcreatedb or rolcreaterole or rolbypassrls)",
    )
    .fetch_all(&admin)
    .await?;
    assert!(powerful.is_empty(), "service roles with more than they need: {powerful:?}");

    // Another service's database refuses the connection outright.
    for (role, secret, foreign) in [
        ("outflow_orders", "OUTFLOW_PG_ORDERS_PASSWORD", "payments"),
        ("outflow_payments_consumer", "OUTFLOW_PG_PAYMENTS_CONSUMER_PASSWORD", "inventory"),
        ("outflow_inventory", "OUTFLOW_PG_INVENTORY_PASSWORD", "views"),
        ("outflow_monitor", "OUTFLOW_PG_MONITOR_PASSWORD", "payments"),
        ("outflow_notifications_consumer", "OUTFLOW_PG_NOTIFICATIONS_CONSUMER_PASSWORD", "orders"),
        ("outflow_orders", "OUTFLOW_PG_ORDERS_PASSWORD", "notifications"),
        ("outflow_debezium", "OUTFLOW_PG_DEBEZIUM_PASSWORD", "notifications"),
    ] {
        let refused = connect_as(&stack, role, &dev(secret), foreign).await.err().with_context(|| format!("{role} connected to {foreign}"))?;
        assert!(refused.to_string().contains("permission denied"), "{role} on {foreign}: {refused}");
    }

    // In its own database: the consumer writes but cannot change the schema;
    // the monitor only reads; Debezium reads the outbox and nothing else.
    let mut consumer = connect_as(&stack, "outflow_orders_consumer", &dev("OUTFLOW_PG_ORDERS_CONSUMER_PASSWORD"), "orders").await?;
    sqlx::query("select count(*) from orders").execute(&mut consumer).await?;
    assert_denied(sqlx::query("drop table processed_events").execute(&mut consumer).await, "the consumer drops a table");
    let mut monitor = connect_as(&stack, "outflow_monitor", &dev("OUTFLOW_PG_MONITOR_PASSWORD"), "orders").await?;
    sqlx::query("select count(*) from orders").execute(&mut monitor).await?;
    assert_denied(sqlx::query("delete from orders where false").execute(&mut monitor).await, "the monitor deletes");
    let mut debezium = connect_as(&stack, "outflow_debezium", &dev("OUTFLOW_PG_DEBEZIUM_PASSWORD"), "orders").await?;
    sqlx::query("select count(*) from outbox").execute(&mut debezium).await?;
    assert_denied(sqlx::query("select count(*) from orders").execute(&mut debezium).await, "Debezium reads the orders");
    assert_denied(sqlx::query("insert into outbox (id) values (gen_random_uuid())").execute(&mut debezium).await, "Debezium writes the outbox");
    Ok(())
}

fn assert_denied<T: std::fmt::Debug>(result: Result<T, sqlx::Error>, what: &str) {
    match result {
        Err(e) if e.to_string().contains("permission denied") || e.to_string().contains("must be owner") => {}
        other => panic!("{what}: expected a permission error, got {other:?}"),
    }
}

#[tokio::test]
#[ignore = "needs the stack: scripts/up (scripts/test runs it)"]
async fn the_mongo_api_refuses_anonymous_clients_and_wrong_passwords() -> Result<()> {
    let stack = Stack::from_env();
    let ping = |client: mongodb::Client| async move { client.database("outflow").run_command(doc! { "listCollections": 1 }).await };
    let anonymous = mongodb::Client::with_uri_str(&stack.mongo_url).await?;
    assert!(ping(anonymous).await.is_err(), "an anonymous client listed the views' collections");
    let wrong = outflow_service::settings::mongo_client(&stack.mongo_url, &stack.mongo_user, &SecretString::from("not-the-password")).await?;
    assert!(ping(wrong).await.is_err(), "a wrong password listed the views' collections");
    ping(stack.mongo().await?).await.context("the views' own login")?;
    Ok(())
}

async fn orders_writer(adjust: impl FnOnce(&mut outflow_service::settings::ServiceSettings)) -> TestService {
    let catalog = "insert into catalog (sku, name, price_minor, currency, version) values ('SKU-1', 'Mug', 250, 'EUR', 1)";
    TestService::spawn_with("trust", catalog, adjust, |s| outflow_orders::startup::build(outflow_orders::settings::Settings::defaults_with(s))).await
}

#[tokio::test]
#[ignore = "needs the stack: scripts/up (scripts/test runs it)"]
async fn a_customers_burst_gets_429s_with_retry_after_and_writes_nothing_more() -> Result<()> {
    let app = orders_writer(|s| {
        s.http.limits.customer_per_second = 1;
        s.http.limits.customer_burst = 3;
    })
    .await;
    let (greedy, other) = (app.token("greedy", Role::Customer), app.token("other", Role::Customer));
    let place = |token: String, key: String| {
        let request = app.http.post(app.url("/v1/orders")).bearer_auth(token).header("idempotency-key", key);
        async move { request.json(&json!({"items": [{"sku": "SKU-1", "quantity": 1}]})).send().await }
    };
    let mut accepted = 0;
    let mut refused = Vec::new();
    for i in 0..10 {
        let response = place(greedy.clone(), format!("burst-{i}")).await?;
        match response.status().as_u16() {
            202 => accepted += 1,
            429 => refused.push(response),
            other => panic!("POST /v1/orders in a burst: {other}"),
        }
    }
    // The bucket holds 3 and refills one a second: 3 at once, perhaps one more.
    assert!((3..=4).contains(&accepted), "{accepted} of 10 accepted");
    let first = refused.remove(0);
    let wait: u64 = first.headers().get("retry-after").context("a 429 without Retry-After")?.to_str()?.parse()?;
    assert!((1..=2).contains(&wait), "Retry-After: {wait}");
    let body: Value = first.json().await?;
    assert_eq!(body["error"]["code"], "rate_limited", "{body}");
    assert_eq!(app.count("orders").await, accepted, "a refused request wrote an order");
    assert_eq!(place(other, "another-customer".into()).await?.status(), 202, "another customer has a bucket of its own");
    app.cleanup().await;
    Ok(())
}

#[tokio::test]
#[ignore = "needs the stack: scripts/up (scripts/test runs it)"]
async fn slow_sockets_are_closed_while_healthz_answers_and_the_connection_cap_holds() -> Result<()> {
    let app = orders_writer(|s| {
        s.http.limits.header_read_timeout_ms = 1000;
        s.http.limits.max_connections = 6;
    })
    .await;
    let address = app.address.trim_start_matches("http://").to_owned();
    // Four clients send half a request line and then nothing.
    let mut slow = Vec::new();
    for _ in 0..4 {
        let mut socket = TcpStream::connect(&address).await?;
        socket.write_all(b"POST /v1/orders HTTP/1.1\r\nHost: x\r\n").await?;
        slow.push(socket);
    }
    let healthz = reqwest::Client::builder().pool_max_idle_per_host(0).build()?;
    let answered = healthz.get(app.url("/healthz")).send().await?.status();
    assert_eq!(answered, 200, "/healthz beside the slow sockets");
    // Each slow socket is closed by the server once the header deadline passed.
    for socket in &mut slow {
        let mut buffer = [0u8; 512];
        let read = tokio::time::timeout(Duration::from_secs(5), socket.read(&mut buffer)).await.context("a slow socket still open after 5 s")?;
        assert!(matches!(read, Ok(0) | Err(_)) || String::from_utf8_lossy(&buffer).contains("408"), "the slow socket got {read:?}");
    }
    // The cap: six idle connections hold every slot, a seventh is closed at once.
    let mut held = Vec::new();
    for _ in 0..6 {
        held.push(TcpStream::connect(&address).await?);
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    let mut seventh = TcpStream::connect(&address).await?;
    let mut buffer = [0u8; 16];
    let read = tokio::time::timeout(Duration::from_millis(500), seventh.read(&mut buffer)).await.context("the seventh connection was kept open")?;
    assert!(matches!(read, Ok(0) | Err(_)), "the seventh connection got {read:?}");
    drop(held);
    app.cleanup().await;
    Ok(())
}

/// A release binary built by `scripts/up`, started with `environment` only.
async fn start_refused(binary: &str, environment: &[(&str, String)]) -> Result<String> {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../target/release/").to_owned() + binary;
    let mut command = tokio::process::Command::new(&path);
    command.env_clear().envs(environment.iter().map(|(k, v)| (*k, v.as_str()))).env("OUTFLOW_HTTP__PORT", "0");
    let output = tokio::time::timeout(Duration::from_secs(20), command.output()).await.context("still running after 20 s")?.with_context(|| path.clone())?;
    assert!(!output.status.success(), "{binary} started with {environment:?}");
    Ok(String::from_utf8_lossy(&output.stderr).into_owned() + &String::from_utf8_lossy(&output.stdout))
}

#[tokio::test]
#[ignore = "needs the release binaries of scripts/up (scripts/test runs it)"]
async fn production_mode_refuses_development_secrets_sandboxes_and_unknown_modes() -> Result<()> {
    let stack = Stack::from_env();
    let url = |password: &str| format!("postgres://outflow_orders:{password}@127.0.0.1:{}/orders", stack.pg_port);
    let orders =
        |mode: &str, secret: String, url: String| vec![("OUTFLOW_ENV", mode.to_owned()), ("OUTFLOW_JWT_SECRET", secret), ("OUTFLOW_DATABASE__URL", url)];
    let (real_secret, real_url) = ("a-real-secret-from-the-vault".to_owned(), url("a-real-password"));
    let log = start_refused("outflow-orders", &orders("production", stack.jwt_secret.clone(), real_url.clone())).await?;
    assert!(log.contains("OUTFLOW_JWT_SECRET") && log.contains("development"), "{log}");
    let log = start_refused("outflow-orders", &orders("production", real_secret.clone(), url(&dev("OUTFLOW_PG_ORDERS_PASSWORD")))).await?;
    assert!(log.contains("OUTFLOW_PG_ORDERS_PASSWORD"), "the database URL's development password: {log}");
    let log = start_refused("outflow-orders", &orders("prod", real_secret, real_url)).await?;
    assert!(log.contains("OUTFLOW_ENV must be development or production"), "{log}");
    let payments = vec![
        ("OUTFLOW_ENV", "production".to_owned()),
        ("OUTFLOW_JWT_SECRET", "a-real-secret-from-the-vault".into()),
        ("OUTFLOW_PROVIDER_SERVER_KEY", "a-real-provider-key".into()),
        ("OUTFLOW_PROVIDER_URL", "http://127.0.0.1:7199".into()),
        ("OUTFLOW_DATABASE__URL", format!("postgres://outflow_payments:real@127.0.0.1:{}/payments", stack.pg_port)),
    ];
    let log = start_refused("outflow-payments", &payments).await?;
    assert!(log.contains("provider_url"), "{log}");
    let log = start_refused("outflow-provider-sandbox", &[("OUTFLOW_ENV", "production".into())]).await?;
    assert!(log.contains("refuses to run with OUTFLOW_ENV=production"), "{log}");
    // Customers' webhooks into this machine or a private network: development only.
    let notifications = vec![
        ("OUTFLOW_ENV", "production".to_owned()),
        ("OUTFLOW_JWT_SECRET", "a-real-secret-from-the-vault".into()),
        ("OUTFLOW_WEBHOOKS__ALLOW_PRIVATE_NETWORKS", "true".into()),
        ("OUTFLOW_DATABASE__URL", format!("postgres://outflow_notifications:real@127.0.0.1:{}/notifications", stack.pg_port)),
    ];
    let log = start_refused("outflow-notifications", &notifications).await?;
    assert!(log.contains("allow_private_networks"), "{log}");
    Ok(())
}

#[tokio::test]
#[ignore = "needs the stack: scripts/up (scripts/test runs it)"]
async fn the_registry_needs_a_login_and_only_writers_may_register() -> Result<()> {
    let stack = Stack::from_env();
    let http = reqwest::Client::new();
    let subjects = format!("{}/subjects", stack.registry_url);
    assert_eq!(http.get(&subjects).send().await?.status(), 401, "an anonymous read of the subjects");
    let reader = ("outflow-reader", dev("OUTFLOW_REGISTRY_READER_PASSWORD"));
    let writer = ("outflow-writer", dev("OUTFLOW_REGISTRY_WRITER_PASSWORD"));
    assert_eq!(http.get(&subjects).basic_auth(reader.0, Some(&reader.1)).send().await?.status(), 200, "the readers' login reads");
    let subject = format!("test-trust-{}-value", uuid::Uuid::new_v4().simple());
    let register = |login: &(&str, String)| {
        http.post(format!("{subjects}/{subject}/versions"))
            .basic_auth(login.0, Some(&login.1))
            .header("content-type", "application/vnd.schemaregistry.v1+json")
            .json(&json!({"schema": "\"string\""}))
            .send()
    };
    assert_eq!(register(&reader).await?.status(), 403, "the readers' login registered a schema");
    assert_eq!(register(&writer).await?.status(), 200, "the writers' login registers");
    for path in [format!("{subjects}/{subject}"), format!("{subjects}/{subject}?permanent=true")] {
        http.delete(path).basic_auth(&stack.registry_user, Some(&stack.registry_password)).send().await?;
    }
    Ok(())
}

#[tokio::test]
#[ignore = "needs the stack: scripts/up (scripts/test runs it)"]
async fn connects_rest_api_refuses_callers_without_its_login() -> Result<()> {
    let stack = Stack::from_env();
    let http = reqwest::Client::new();
    for path in ["/", "/connectors", "/connector-plugins"] {
        let anonymous = http.get(format!("{}{path}", stack.connect_url)).send().await?.status();
        assert_eq!(anonymous, 401, "GET {path} without a login");
        let wrong = http.get(format!("{}{path}", stack.connect_url)).basic_auth(&stack.connect_user, Some("not-the-password")).send().await?.status();
        assert_eq!(wrong, 401, "GET {path} with a wrong password");
    }
    // Creating a connector is what must not happen: its heartbeat query would run SQL.
    let created = http.put(format!("{}/connectors/intruder/config", stack.connect_url)).json(&json!({"connector.class": "x"})).send().await?.status();
    assert_eq!(created, 401, "an anonymous connector");
    assert_eq!(stack.connect_request(reqwest::Method::GET, "/connectors").send().await?.status(), 200, "the login lists the connectors");
    Ok(())
}

/// Sends one record to `topic` as `config`'s principal; the broker's answer.
async fn produce(mut config: rdkafka::ClientConfig, topic: &str) -> Result<(), rdkafka::error::KafkaError> {
    use rdkafka::producer::{FutureProducer, FutureRecord};
    let producer: FutureProducer = config.set("message.timeout.ms", "5000").set("acks", "all").create()?;
    producer.send(FutureRecord::to(topic).key("forged").payload("forged"), Duration::from_secs(5)).await.map(|_| ()).map_err(|(e, _)| e)
}

#[tokio::test]
#[ignore = "needs the stack: scripts/up (scripts/test runs it)"]
async fn kafka_refuses_strangers_and_a_consumer_producing_to_an_event_topic() -> Result<()> {
    let stack = Stack::from_env();
    let mut anonymous = rdkafka::ClientConfig::new();
    anonymous.set("bootstrap.servers", &stack.kafka_brokers);
    assert!(produce(anonymous, "outflow.payment.events").await.is_err(), "an anonymous client produced a PaymentCaptured");
    let wrong = outflow_service::settings::KafkaLogin::new("outflow-orders", "not-the-password").client_config(&stack.kafka_brokers);
    assert!(produce(wrong, "outflow.payment.events").await.is_err(), "a wrong password produced");
    // The orders consumer's own login reads payment events; it may not forge one.
    let orders = outflow_service::settings::KafkaLogin::new("outflow-orders", dev("OUTFLOW_KAFKA_ORDERS_PASSWORD"));
    let refused =
        produce(orders.client_config(&stack.kafka_brokers), "outflow.payment.events").await.err().context("the orders consumer produced to an event topic")?;
    assert!(refused.to_string().to_lowercase().contains("authoriz"), "{refused}");
    Ok(())
}
