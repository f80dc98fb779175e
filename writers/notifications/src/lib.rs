//! # Layout
//!
//! The notifications writer (port 7105): the `notifications` database's
//! webhooks, and the admin's view of their deliveries.
//!
//! - `POST /v1/webhooks` `{url, shop_wide}`: a customer registers a webhook for
//!   their own notifications; an admin, with `shop_wide`, one for every
//!   customer's. The answer holds the signing secret, shown this once;
//! - `GET /v1/webhooks`: the caller's webhooks (an admin's: the shop-wide ones too);
//! - `DELETE /v1/webhooks/{id}`: its owner or an admin; its deliveries go with it;
//! - `GET /v1/webhooks/dead-letters` (admin): deliveries parked after their
//!   last attempt, newest first;
//! - `POST /v1/webhooks/{id}/deliveries/{event_id}/replay` (admin): a parked
//!   delivery is due again, with a fresh count of attempts.
//!
//! The notifications consumer writes the deliveries and its dispatcher sends
//! them (`consumers/notifications`); `outflow-webhooks` holds the rules on
//! URLs and the signature both share.

pub mod openapi;
mod routes;

use anyhow::Context;
use axum::{
    routing::{get, post},
    Json, Router,
};
use outflow_service::{
    app::Application,
    auth::{HasJwtKeys, JwtKeys},
    edge::{self, RateLimit},
    settings::ServiceSettings,
};
use serde::Deserialize;
use sqlx::PgPool;

pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

#[derive(Clone, Debug, Deserialize)]
pub struct Settings {
    #[serde(flatten)]
    pub service: ServiceSettings,
    #[serde(default)]
    pub webhooks: Rules,
}

/// `[webhooks]`: what a registration may ask for.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Rules {
    /// Lets a webhook point at this machine or a private network, over http:
    /// development only (a production start refuses it).
    pub allow_private_networks: bool,
    /// Webhooks one customer (or the shop, for shop-wide ones) may have.
    pub max_per_owner: i64,
}

impl Default for Rules {
    fn default() -> Self {
        Rules { allow_private_networks: false, max_per_owner: 10 }
    }
}

const DEFAULTS: &str = r#"
registry_url = "http://127.0.0.1:58081"
jwt_secret = ""
[http]
host = "127.0.0.1"
port = 7105
[database]
url = ""
max_connections = 5
"#;

impl Settings {
    pub fn load() -> anyhow::Result<Self> {
        let settings: Settings = outflow_service::settings::load(DEFAULTS)?;
        settings.service.require_secrets()?;
        use outflow_service::environment::{refuse_private_networks, Environment};
        refuse_private_networks(Environment::current()?, settings.webhooks.allow_private_networks, "webhooks.allow_private_networks")?;
        Ok(settings)
    }
}

#[derive(Clone)]
pub struct AppState {
    pub pool: PgPool,
    pub jwt: JwtKeys,
    pub rules: Rules,
}

impl HasJwtKeys for AppState {
    fn jwt_keys(&self) -> &JwtKeys {
        &self.jwt
    }
}

/// The writer, migrated and bound, ready to run. It emits no events: a
/// webhook is the customer's setting, not a step of the saga.
pub async fn build(settings: Settings) -> anyhow::Result<Application> {
    let pool = settings.service.database.pool()?;
    MIGRATOR.run(&pool).await.context("running the migrations")?;
    let jwt = JwtKeys::from_settings(&settings.service.jwt_secret, &settings.service.jwt).await.context("the JWT keys")?;
    let routes = Router::new()
        .route("/v1/webhooks", post(routes::register).get(routes::list))
        .route("/v1/webhooks/dead-letters", get(routes::dead_letters))
        .route("/v1/webhooks/{id}", axum::routing::delete(routes::delete))
        .route("/v1/webhooks/{id}/deliveries/{event_id}/replay", post(routes::replay));
    let routes = edge::limit_customers(routes, jwt.clone(), RateLimit::per_customer(&settings.service.http.limits));
    let document = <openapi::ApiDoc as utoipa::OpenApi>::openapi();
    let state = AppState { pool: pool.clone(), jwt, rules: settings.webhooks };
    let api = routes.route("/openapi.json", get(move || std::future::ready(Json(document.clone())))).with_state(state);
    Application::bind(&settings.service, api, pool, "notifications").await
}
