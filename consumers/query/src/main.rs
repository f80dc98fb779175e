use outflow_query::AppState;
use outflow_service::{auth::JwtKeys, settings::ViewsDatabase};
use secrecy::SecretString;
use serde::Deserialize;

#[derive(Deserialize)]
struct Settings {
    http: outflow_service::settings::HttpSettings,
    #[serde(flatten)]
    views: ViewsDatabase,
    jwt_secret: SecretString,
    #[serde(default)]
    jwt: outflow_service::auth::JwtSettings,
    #[serde(default)]
    live: outflow_query::live::LiveSettings,
}

const DEFAULTS: &str = "jwt_secret = \"\"\n[http]\nhost = \"127.0.0.1\"\nport = 7110\n";

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    outflow_service::telemetry::init("query");
    let settings: Settings = outflow_service::settings::load(&format!("{}{DEFAULTS}", ViewsDatabase::DEFAULTS))?;
    outflow_service::settings::require_secret(&settings.jwt_secret, "OUTFLOW_JWT_SECRET")?;
    let db = settings.views.database().await?;
    let listener = tokio::net::TcpListener::bind((settings.http.host.as_str(), settings.http.port)).await?;
    tracing::info!(port = settings.http.port, "query service listening");
    let jwt = JwtKeys::from_settings(&settings.jwt_secret, &settings.jwt).await?;
    let live = outflow_query::live::Hub::new(db.clone(), settings.live);
    tokio::spawn(live.clone().run());
    // Open streams would hold the graceful shutdown for their whole lifetime:
    // they end when the signal comes, and their clients reconnect elsewhere.
    let hub = live.clone();
    let shutdown = async move {
        outflow_service::ops::shutdown_signal().await;
        hub.close();
    };
    outflow_query::serve(listener, AppState { db, jwt, live }, &settings.http.limits, shutdown).await
}
