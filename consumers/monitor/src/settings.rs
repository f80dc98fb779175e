//! The monitor's settings, in the same layers as every Outflow service
//! (defaults below, `OUTFLOW_CONFIG` file, `OUTFLOW_*` environment). The
//! addresses are the ones `scripts/lib.sh` exports (`OUTFLOW_KAFKA_BROKERS`,
//! `OUTFLOW_CONNECT_URL` and `OUTFLOW_CONNECT_URLS`, `OUTFLOW_PG_PORT`, `OUTFLOW_PG_USER`,
//! `OUTFLOW_PG_PASSWORD`); the sampling knobs are `OUTFLOW_MONITOR__*`.

use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

#[derive(Clone, Debug, Deserialize)]
pub struct Settings {
    pub http: outflow_service::settings::HttpSettings,
    /// The page's data (`/api/*`) is for admins: a bearer token with the admin
    /// role, verified like the writers' (`OUTFLOW_JWT_SECRET`, `[jwt]`).
    pub jwt_secret: SecretString,
    #[serde(default)]
    pub jwt: outflow_service::auth::JwtSettings,
    pub kafka_brokers: String,
    /// The monitor's Kafka login (principal outflow-monitor: describes only).
    #[serde(flatten)]
    pub kafka_login: outflow_service::settings::KafkaLogin,
    pub connect_url: String,
    /// Every Connect worker's REST address, comma-separated
    /// (`OUTFLOW_CONNECT_URLS`); empty: `connect_url` alone.
    #[serde(default)]
    pub connect_urls: String,
    /// Jaeger's UI (`OUTFLOW_JAEGER_URL`): each stuck saga links to its trace there.
    #[serde(default)]
    pub jaeger_url: Option<String>,
    /// Kafka Connect's REST login (`OUTFLOW_CONNECT_USER`, `OUTFLOW_CONNECT_PASSWORD`).
    pub connect_user: String,
    pub connect_password: SecretString,
    pub pg_host: String,
    pub pg_port: u16,
    pub pg_user: String,
    pub pg_password: SecretString,
    /// The database whose `orders` table holds the sagas; replication slots are
    /// cluster-wide and read over the same connection.
    pub orders_database: String,
    /// The view consumer's Prometheus endpoint (histogram `view_commit_to_view_seconds`).
    pub views_metrics_url: String,
    pub monitor: MonitorSettings,
}

#[derive(Clone, Debug, Deserialize)]
pub struct MonitorSettings {
    /// One sample of every source this often.
    pub interval_ms: u64,
    /// How much history the trends and charts keep.
    pub history_secs: u64,
    /// Trends compare the latest sample with the one this long ago.
    pub trend_secs: u64,
    /// A saga that is not terminal after this long is stuck.
    pub stuck_after_secs: u64,
    /// At most this many stuck sagas are listed (all are counted).
    pub stuck_limit: i64,
    /// Recent commit-to-view percentiles cover this window.
    pub latency_window_secs: u64,
    /// Consumer groups whose name starts with this are watched.
    pub group_prefix: String,
    /// Each source gets this long per sample before it counts as failed.
    pub source_timeout_ms: u64,
}

pub const DEFAULTS: &str = r#"
kafka_brokers = "127.0.0.1:59092"
connect_url = "http://127.0.0.1:58083"
connect_user = ""
connect_password = ""
pg_host = "127.0.0.1"
pg_port = 55432
pg_user = ""
pg_password = ""
jwt_secret = ""
orders_database = "orders"
views_metrics_url = "http://127.0.0.1:7124/metrics"

[http]
host = "127.0.0.1"
port = 7190

[monitor]
interval_ms = 2000
history_secs = 900
trend_secs = 60
stuck_after_secs = 60
stuck_limit = 50
latency_window_secs = 60
group_prefix = "outflow-"
source_timeout_ms = 5000
"#;

impl Settings {
    pub fn load() -> anyhow::Result<Self> {
        let settings: Settings = outflow_service::settings::load(DEFAULTS)?;
        if settings.pg_user.is_empty() {
            anyhow::bail!("OUTFLOW_PG_USER is empty: set it in the environment");
        }
        outflow_service::settings::require_secret(&settings.pg_password, "OUTFLOW_PG_PASSWORD")?;
        outflow_service::settings::require_secret(&settings.jwt_secret, "OUTFLOW_JWT_SECRET")?;
        outflow_service::settings::require_secret(&settings.connect_password, "OUTFLOW_CONNECT_PASSWORD")?;
        if settings.monitor.interval_ms == 0 {
            anyhow::bail!("OUTFLOW_MONITOR__INTERVAL_MS must be positive");
        }
        Ok(settings)
    }

    /// The Connect workers the monitor asks and shows.
    pub fn connect_workers(&self) -> &str {
        if self.connect_urls.trim().is_empty() {
            &self.connect_url
        } else {
            &self.connect_urls
        }
    }

    /// Connection options for one database (no URL: a password needs no escaping).
    pub fn connect_options(&self, database: &str) -> sqlx::postgres::PgConnectOptions {
        sqlx::postgres::PgConnectOptions::new()
            .host(&self.pg_host)
            .port(self.pg_port)
            .username(&self.pg_user)
            .password(self.pg_password.expose_secret())
            .database(database)
            .application_name("outflow-monitor")
    }
}

impl MonitorSettings {
    pub fn interval(&self) -> Duration {
        Duration::from_millis(self.interval_ms)
    }

    pub fn source_timeout(&self) -> Duration {
        Duration::from_millis(self.source_timeout_ms)
    }

    /// How many samples the history holds.
    pub fn history_len(&self) -> usize {
        ((self.history_secs * 1000) / self.interval_ms).max(2) as usize
    }
}
