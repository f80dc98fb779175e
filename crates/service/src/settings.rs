//! Settings in layers: the service's defaults, then an optional TOML file named
//! by `OUTFLOW_CONFIG`, then `OUTFLOW_*` environment variables (`__` separates
//! nested keys, e.g. `OUTFLOW_DATABASE__URL`). Secrets are [`SecretString`]s.

use anyhow::Context;
use secrecy::SecretString;
use serde::de::DeserializeOwned;

use crate::environment::Environment;

/// Loads `T` from `defaults` (TOML text), then the optional file, then the
/// environment; refuses an unknown `OUTFLOW_ENV`, and in production any
/// development secret or local payment provider ([`crate::environment`]).
pub fn load<T: DeserializeOwned>(defaults: &str) -> anyhow::Result<T> {
    let environment = Environment::current()?;
    let mut builder = config::Config::builder().add_source(config::File::from_str(defaults, config::FileFormat::Toml));
    if let Ok(path) = std::env::var("OUTFLOW_CONFIG") {
        builder = builder.add_source(config::File::with_name(&path));
    }
    let merged = builder
        .add_source(config::Environment::with_prefix("OUTFLOW").prefix_separator("_").separator("__").try_parsing(true))
        .build()
        .context("reading settings")?;
    let tree: serde_json::Value = merged.clone().try_deserialize().context("reading settings")?;
    crate::environment::check_settings(environment, &crate::environment::strings(&tree))?;
    merged.try_deserialize().context("settings do not fit their types (see the service's defaults)")
}

/// The JWT secret and the database password come from the environment
/// (`infra/dev.env` in development); a production start refuses defaults.
pub fn require_secret(value: &SecretString, name: &str) -> anyhow::Result<()> {
    use secrecy::ExposeSecret;
    if value.expose_secret().is_empty() {
        anyhow::bail!("{name} is empty: set it in the environment");
    }
    Ok(())
}

/// The settings every HTTP service shares.
#[derive(Clone, Debug, serde::Deserialize)]
pub struct ServiceSettings {
    pub http: HttpSettings,
    pub database: DatabaseSettings,
    pub registry_url: String,
    /// The registry's login (`OUTFLOW_REGISTRY_USER`, `OUTFLOW_REGISTRY_PASSWORD`).
    #[serde(default)]
    pub registry_user: Option<String>,
    #[serde(default)]
    pub registry_password: Option<SecretString>,
    pub jwt_secret: SecretString,
    #[serde(default)]
    pub jwt: crate::auth::JwtSettings,
}

impl ServiceSettings {
    pub fn registry(&self) -> outflow_outbox::Registry {
        outflow_outbox::Registry::new(&self.registry_url, self.registry_user.clone(), self.registry_password.clone())
    }

    /// Refuses to start without the secrets every write service needs.
    pub fn require_secrets(&self) -> anyhow::Result<()> {
        require_secret(&self.jwt_secret, "OUTFLOW_JWT_SECRET")?;
        require_secret(&self.database.url, "OUTFLOW_DATABASE__URL")
    }
}

#[derive(Clone, Debug, serde::Deserialize)]
pub struct HttpSettings {
    pub host: String,
    /// 0 picks a free port (tests).
    pub port: u16,
    #[serde(default)]
    pub limits: crate::edge::EdgeLimits,
}

#[derive(Clone, Debug, serde::Deserialize)]
pub struct DatabaseSettings {
    /// `postgres://user:password@host:port/database`; comes from the environment.
    pub url: SecretString,
    #[serde(default = "default_max_connections")]
    pub max_connections: u32,
    /// Every statement, lock wait and idle transaction of the service is bounded,
    /// so a stuck lock or a hung peer turns into a retried error instead of a
    /// saga step (and its Kafka partition) waiting for ever.
    #[serde(default = "default_statement_timeout_ms")]
    pub statement_timeout_ms: u64,
    #[serde(default = "default_lock_timeout_ms")]
    pub lock_timeout_ms: u64,
    #[serde(default = "default_idle_in_transaction_timeout_ms")]
    pub idle_in_transaction_timeout_ms: u64,
}

fn default_max_connections() -> u32 {
    10
}

fn default_statement_timeout_ms() -> u64 {
    10_000
}

fn default_lock_timeout_ms() -> u64 {
    5_000
}

fn default_idle_in_transaction_timeout_ms() -> u64 {
    30_000
}

impl DatabaseSettings {
    /// A database at `url` with the default timeouts (tests, the bench).
    pub fn new(url: SecretString, max_connections: u32) -> Self {
        DatabaseSettings {
            url,
            max_connections,
            statement_timeout_ms: default_statement_timeout_ms(),
            lock_timeout_ms: default_lock_timeout_ms(),
            idle_in_transaction_timeout_ms: default_idle_in_transaction_timeout_ms(),
        }
    }

    /// A pool that connects lazily, so a service starts (and reports not ready)
    /// while its database is still coming up.
    pub fn pool(&self) -> anyhow::Result<sqlx::PgPool> {
        Ok(sqlx::postgres::PgPoolOptions::new()
            .max_connections(self.max_connections)
            .acquire_timeout(std::time::Duration::from_secs(5))
            .connect_lazy_with(self.connect_options()?))
    }

    /// The URL's options plus the session timeouts, sent at connection start.
    pub fn connect_options(&self) -> anyhow::Result<sqlx::postgres::PgConnectOptions> {
        use secrecy::ExposeSecret;
        let options: sqlx::postgres::PgConnectOptions = self.url.expose_secret().parse().context("OUTFLOW_DATABASE__URL is not a PostgreSQL URL")?;
        Ok(options.options([
            ("statement_timeout", format!("{}ms", self.statement_timeout_ms)),
            ("lock_timeout", format!("{}ms", self.lock_timeout_ms)),
            ("idle_in_transaction_session_timeout", format!("{}ms", self.idle_in_transaction_timeout_ms)),
        ]))
    }
}

/// Where the read views live: the MongoDB API server and the database
/// (`OUTFLOW_MONGO_URL`, `OUTFLOW_VIEWS_DATABASE`), shared by the view and
/// notification consumers and the query service. Flattened into a service's
/// settings; [`ViewsDatabase::DEFAULTS`] go into its defaults.
#[cfg(feature = "mongo")]
#[derive(Clone, Debug, serde::Deserialize)]
pub struct ViewsDatabase {
    pub mongo_url: String,
    pub views_database: String,
    /// The MongoDB API's login (`OUTFLOW_MONGO_USER`, `OUTFLOW_MONGO_PASSWORD`):
    /// FerretDB hands it to PostgreSQL, which checks it.
    pub mongo_user: String,
    pub mongo_password: SecretString,
}

#[cfg(feature = "mongo")]
impl ViewsDatabase {
    /// Top-level TOML keys, to come before any table of the defaults.
    pub const DEFAULTS: &str = "mongo_url = \"mongodb://127.0.0.1:57017/\"\nviews_database = \"outflow\"\nmongo_user = \"\"\nmongo_password = \"\"\n";

    /// The client connects lazily: a service starts while the server is down.
    pub async fn database(&self) -> anyhow::Result<mongodb::Database> {
        let client = mongo_client(&self.mongo_url, &self.mongo_user, &self.mongo_password).await?;
        Ok(client.database(&self.views_database))
    }
}

/// A client of the MongoDB API server at `url`, logged in as `user`
/// (FerretDB v1 takes SASL PLAIN and checks the password with PostgreSQL), with
/// connection and server selection bounded so that a server that is down or
/// frozen fails fast and the caller retries; single operations are bounded by
/// their callers.
#[cfg(feature = "mongo")]
pub async fn mongo_client(url: &str, user: &str, password: &SecretString) -> anyhow::Result<mongodb::Client> {
    use anyhow::Context;
    use secrecy::ExposeSecret;
    anyhow::ensure!(!user.is_empty(), "OUTFLOW_MONGO_USER is empty: the MongoDB API refuses anonymous clients");
    require_secret(password, "OUTFLOW_MONGO_PASSWORD")?;
    let mut options = mongodb::options::ClientOptions::parse(url).await.with_context(|| format!("MongoDB URL {url}"))?;
    let bound = std::time::Duration::from_secs(10);
    options.connect_timeout = Some(bound);
    options.server_selection_timeout = Some(bound);
    // FerretDB v1 takes PLAIN only; a URL may name another mechanism (a real
    // MongoDB: `?authMechanism=SCRAM-SHA-256&authSource=admin`).
    let mut credential = options.credential.take().unwrap_or_default();
    credential.username = Some(user.to_owned());
    credential.password = Some(password.expose_secret().to_owned());
    credential.mechanism.get_or_insert(mongodb::options::AuthMechanism::Plain);
    options.credential = Some(credential);
    Ok(mongodb::Client::with_options(options)?)
}

/// A Kafka client's login (`OUTFLOW_KAFKA_USER`, `OUTFLOW_KAFKA_PASSWORD`):
/// SASL/SCRAM-SHA-512 over the broker's client listener. Flattened into a
/// service's settings.
#[cfg(feature = "kafka")]
#[derive(Clone, Debug, Default, serde::Deserialize)]
pub struct KafkaLogin {
    #[serde(default)]
    pub kafka_user: Option<String>,
    #[serde(default)]
    pub kafka_password: Option<SecretString>,
}

#[cfg(feature = "kafka")]
impl KafkaLogin {
    pub fn new(user: impl Into<String>, password: impl Into<String>) -> Self {
        KafkaLogin { kafka_user: Some(user.into()), kafka_password: Some(SecretString::from(password.into())) }
    }

    /// A client of `brokers` logged in (when a user is set; a broker without
    /// authentication takes a client without one).
    pub fn client_config(&self, brokers: &str) -> rdkafka::ClientConfig {
        use secrecy::ExposeSecret;
        let mut config = rdkafka::ClientConfig::new();
        config.set("bootstrap.servers", brokers);
        if let Some(user) = self.kafka_user.as_deref().filter(|u| !u.is_empty()) {
            config
                .set("security.protocol", "SASL_PLAINTEXT")
                .set("sasl.mechanisms", "SCRAM-SHA-512")
                .set("sasl.username", user)
                .set("sasl.password", self.kafka_password.as_ref().map(|p| p.expose_secret()).unwrap_or_default());
        }
        config
    }
}
