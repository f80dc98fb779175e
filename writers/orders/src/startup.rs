use std::{future::Future, sync::Arc};

use anyhow::Context;
use axum::{routing::{get, post}, Router};
use outflow_http::{auth::{HasJwtKeys, JwtKeys}, ops};
use outflow_outbox::Outbox;
use sqlx::PgPool;
use tokio::net::TcpListener;

use crate::{routes, settings::{OrderLimits, Settings}};

pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

#[derive(Clone)]
pub struct AppState {
    pub pool: PgPool,
    pub outbox: Arc<Outbox>,
    pub jwt: JwtKeys,
    pub limits: OrderLimits,
}

impl HasJwtKeys for AppState {
    fn jwt_keys(&self) -> &JwtKeys {
        &self.jwt
    }
}

pub struct Application {
    port: u16,
    listener: TcpListener,
    router: Router,
    pub pool: PgPool,
}

impl Application {
    /// Migrates the database, registers the event schemas and binds the port.
    pub async fn build(settings: Settings) -> anyhow::Result<Self> {
        let pool = settings.service.database.pool()?;
        MIGRATOR.run(&pool).await.context("running the orders migrations")?;
        let outbox = Outbox::new(&settings.service.registry_url);
        outbox.register_all().await.context("registering the event schemas")?;
        let state = AppState {
            pool: pool.clone(),
            outbox: Arc::new(outbox),
            jwt: JwtKeys::new(&settings.service.jwt_secret),
            limits: settings.orders,
        };
        let address = format!("{}:{}", settings.service.http.host, settings.service.http.port);
        let listener = TcpListener::bind(&address).await.with_context(|| format!("binding {address}"))?;
        let port = listener.local_addr()?.port();
        Ok(Application { port, listener, router: router(state), pool })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub async fn run_until_stopped(self, shutdown: impl Future<Output = ()> + Send + 'static) -> anyhow::Result<()> {
        ops::serve(self.listener, self.router, shutdown).await.context("serving HTTP")
    }
}

fn router(state: AppState) -> Router {
    let api = Router::new()
        .route("/v1/orders", post(routes::place_order::place_order))
        .route("/v1/orders/{id}", get(routes::get_order::get_order))
        .route("/v1/orders/{id}/cancel", post(routes::cancel_order::cancel_order))
        .route("/openapi.json", get(crate::openapi::serve))
        .with_state(state.clone());
    ops::with_common_layers(api.merge(ops::routes(state.pool)), "orders")
}
