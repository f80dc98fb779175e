use outflow_http::auth::JwtKeys;
use outflow_query::AppState;
use secrecy::SecretString;
use serde::Deserialize;

#[derive(Deserialize)]
struct Settings {
    http: outflow_http::settings::HttpSettings,
    mongo_url: String,
    views_database: String,
    jwt_secret: SecretString,
}

const DEFAULTS: &str = "mongo_url = \"mongodb://127.0.0.1:57017/\"\nviews_database = \"outflow\"\njwt_secret = \"\"\n[http]\nhost = \"127.0.0.1\"\nport = 7110\n";

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    outflow_http::telemetry::init("query");
    let settings: Settings = outflow_http::settings::load(DEFAULTS)?;
    outflow_http::settings::require_secret(&settings.jwt_secret, "OUTFLOW_JWT_SECRET")?;
    let db = mongodb::Client::with_uri_str(&settings.mongo_url).await?.database(&settings.views_database);
    let listener = tokio::net::TcpListener::bind((settings.http.host.as_str(), settings.http.port)).await?;
    tracing::info!(port = settings.http.port, "query service listening");
    outflow_query::serve(listener, AppState { db, jwt: JwtKeys::new(&settings.jwt_secret) }, outflow_http::ops::shutdown_signal()).await
}
