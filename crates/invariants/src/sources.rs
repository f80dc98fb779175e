//! Where the checker reads: the four service databases, Kafka with its
//! schema registry, and the views database. Settings come from the same
//! `OUTFLOW_*` variables as the scripts and the end-to-end tests, with
//! `infra/dev.env` behind them outside production.

use std::{collections::HashMap, fmt, time::Duration};

use anyhow::Context;
use mongodb::bson::doc;
use rdkafka::ClientConfig;
use schema_registry_converter::async_impl::schema_registry::SrSettings;
use sqlx::{postgres::PgPoolOptions, PgPool};

/// Connection settings. `Debug` leaves the passwords out.
#[derive(Clone)]
pub struct Settings {
    pub pg_host: String,
    pub pg_port: u16,
    pub pg_user: String,
    pub pg_password: String,
    pub kafka_brokers: String,
    /// `OUTFLOW_KAFKA_USER`/`_PASSWORD`: a reader of every outflow topic and group.
    pub kafka_user: Option<String>,
    pub kafka_password: Option<String>,
    pub registry_url: String,
    pub registry_user: Option<String>,
    pub registry_password: Option<String>,
    pub mongo_url: String,
    pub mongo_user: String,
    pub mongo_password: String,
    pub views_database: String,
}

impl Settings {
    /// `OUTFLOW_PG_HOST`/`_PORT`/`_USER`/`_PASSWORD`, `OUTFLOW_KAFKA_BROKERS`
    /// (or `OUTFLOW_KAFKA_PORT`), `OUTFLOW_REGISTRY_URL` (or `_PORT`, and
    /// `_USER`/`_PASSWORD`), `OUTFLOW_MONGO_URL` (or `_PORT`, and `_USER`/`_PASSWORD`), `OUTFLOW_VIEWS_DATABASE`.
    pub fn from_env() -> Self {
        let defaults = dev_defaults();
        let var = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty()).or_else(|| defaults.get(name).cloned());
        let or = |name: &str, default: String| var(name).unwrap_or(default);
        let port = |name: &str, default: u16| var(name).and_then(|v| v.parse().ok()).unwrap_or(default);
        Settings {
            pg_host: or("OUTFLOW_PG_HOST", "127.0.0.1".into()),
            pg_port: port("OUTFLOW_PG_PORT", 55432),
            pg_user: or("OUTFLOW_PG_USER", "outflow".into()),
            pg_password: or("OUTFLOW_PG_PASSWORD", String::new()),
            kafka_brokers: or("OUTFLOW_KAFKA_BROKERS", format!("127.0.0.1:{}", port("OUTFLOW_KAFKA_PORT", 59092))),
            kafka_user: var("OUTFLOW_KAFKA_USER"),
            kafka_password: var("OUTFLOW_KAFKA_PASSWORD"),
            registry_url: or("OUTFLOW_REGISTRY_URL", format!("http://127.0.0.1:{}", port("OUTFLOW_REGISTRY_PORT", 58081))),
            registry_user: var("OUTFLOW_REGISTRY_USER"),
            registry_password: var("OUTFLOW_REGISTRY_PASSWORD"),
            mongo_url: or("OUTFLOW_MONGO_URL", format!("mongodb://127.0.0.1:{}/", port("OUTFLOW_MONGO_PORT", 57017))),
            mongo_user: or("OUTFLOW_MONGO_USER", String::new()),
            mongo_password: or("OUTFLOW_MONGO_PASSWORD", String::new()),
            views_database: or("OUTFLOW_VIEWS_DATABASE", "outflow".into()),
        }
    }

    pub fn database_url(&self, database: &str) -> String {
        format!("postgres://{}:{}@{}:{}/{database}", self.pg_user, self.pg_password, self.pg_host, self.pg_port)
    }
}

impl fmt::Debug for Settings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Settings")
            .field("postgres", &format!("{}@{}:{}", self.pg_user, self.pg_host, self.pg_port))
            .field("kafka_brokers", &self.kafka_brokers)
            .field("registry_url", &self.registry_url)
            .field("mongo_url", &self.mongo_url)
            .field("views_database", &self.views_database)
            .finish_non_exhaustive()
    }
}

/// `infra/dev.env`, the file the scripts read; never read with `OUTFLOW_ENV=production`.
fn dev_defaults() -> HashMap<String, String> {
    if std::env::var("OUTFLOW_ENV").as_deref() == Ok("production") {
        return HashMap::new();
    }
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../infra/dev.env");
    // Read, not loaded into the environment: the real environment stays first.
    dotenvy::from_path_iter(path).map(|entries| entries.filter_map(Result::ok).collect()).unwrap_or_default()
}

/// Open connections to every source. Cheap to share: the pools and the
/// views database handle are clones of one client each.
#[derive(Clone)]
pub struct Sources {
    pub orders: PgPool,
    pub inventory: PgPool,
    pub payments: PgPool,
    pub shipping: PgPool,
    pub views: mongodb::Database,
    pub settings: Settings,
}

impl Sources {
    pub async fn from_env() -> anyhow::Result<Self> {
        Self::connect(Settings::from_env()).await
    }

    /// Connects to each database and pings the views database, so that an
    /// unreachable source is named now rather than in the middle of a check.
    pub async fn connect(settings: Settings) -> anyhow::Result<Self> {
        let pool = |database: &'static str| {
            let url = settings.database_url(database);
            let at = format!("PostgreSQL database {database} on {}:{} (as {})", settings.pg_host, settings.pg_port, settings.pg_user);
            async move {
                PgPoolOptions::new()
                    .max_connections(2)
                    .acquire_timeout(Duration::from_secs(10))
                    .connect(&url)
                    .await
                    .with_context(|| format!("{at} is not reachable"))
            }
        };
        let (orders, inventory, payments, shipping) = tokio::try_join!(pool("orders"), pool("inventory"), pool("payments"), pool("shipping"))?;
        // An unreachable server is named within 10 s, as for the databases, not the driver's 30 s.
        let client = outflow_service::settings::mongo_client(&settings.mongo_url, &settings.mongo_user, &settings.mongo_password.clone().into()).await?;
        let views = client.database(&settings.views_database);
        views.run_command(doc! { "ping": 1 }).await.with_context(|| format!("MongoDB on {} is not reachable", settings.mongo_url))?;
        Ok(Sources { orders, inventory, payments, shipping, views, settings })
    }

    pub(crate) fn kafka(&self) -> ClientConfig {
        let login = outflow_service::settings::KafkaLogin {
            kafka_user: self.settings.kafka_user.clone(),
            kafka_password: self.settings.kafka_password.clone().map(Into::into),
        };
        let mut config = login.client_config(&self.settings.kafka_brokers);
        config.set("client.id", "outflow-invariants");
        config
    }

    /// A GET of the registry with the checker's credentials.
    pub(crate) fn registry_request(&self, url: &str) -> reqwest::RequestBuilder {
        let request = reqwest::Client::new().get(url);
        match &self.settings.registry_user {
            Some(user) => request.basic_auth(user, self.settings.registry_password.as_deref()),
            None => request,
        }
    }

    pub(crate) fn registry(&self) -> anyhow::Result<SrSettings> {
        let url = self.settings.registry_url.clone();
        let Some(user) = &self.settings.registry_user else {
            return Ok(SrSettings::new(url));
        };
        SrSettings::new_builder(url)
            .set_basic_authorization(user, self.settings.registry_password.as_deref())
            .build()
            .map_err(|e| anyhow::anyhow!("schema registry settings: {}", e.error))
    }
}
