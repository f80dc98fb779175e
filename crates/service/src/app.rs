//! The one skeleton of a write service: settings → pool with migrations →
//! outbox with its schemas registered ([`ServiceBase`]) → the writer's routes
//! with `/openapi.json`, the ops routes and the common layers → served with
//! graceful shutdown ([`Application`]). A writer is its routes, its
//! migrations, its OpenAPI document ([`Writer`]) and [`run`] in its `main`.

use std::{future::Future, sync::Arc};

use anyhow::Context;
use axum::{routing::get, Json, Router};
use outflow_outbox::Outbox;
use sqlx::{migrate::Migrator, PgPool};
use tokio::net::TcpListener;

use crate::{
    auth::{HasJwtKeys, JwtKeys},
    edge::{self, EdgeLimits, RateLimit},
    ops,
    settings::ServiceSettings,
};

/// What a write service declares about itself.
pub struct Writer {
    /// The service label of logs and metrics (`orders`, `inventory`, ...).
    pub name: &'static str,
    pub migrator: &'static Migrator,
    pub openapi: fn() -> utoipa::openapi::OpenApi,
}

/// What a writer's handlers receive: the shared base, and the writer's own part.
#[derive(Clone)]
pub struct WriterState<T> {
    pub base: ServiceBase,
    pub own: T,
}

impl<T> HasJwtKeys for WriterState<T> {
    fn jwt_keys(&self) -> &JwtKeys {
        &self.base.jwt
    }
}

impl Writer {
    /// Migrated, registered and bound, ready to run.
    pub async fn build<T: Clone + Send + Sync + 'static>(
        &self,
        settings: &ServiceSettings,
        own: T,
        routes: Router<WriterState<T>>,
    ) -> anyhow::Result<Application> {
        let base = ServiceBase::build(settings, self.migrator).await?;
        let pool = base.pool.clone();
        let document = (self.openapi)();
        let routes = edge::limit_customers(routes, base.jwt.clone(), RateLimit::per_customer(&settings.http.limits));
        let api = routes.route("/openapi.json", get(move || std::future::ready(Json(document.clone())))).with_state(WriterState { base, own });
        Application::bind(settings, api, pool, self.name).await
    }
}

/// A service's `main`: telemetry first (so that loading the settings can log),
/// then the application, served until SIGTERM or Ctrl-C.
pub async fn run(name: &'static str, application: impl Future<Output = anyhow::Result<Application>>) -> anyhow::Result<()> {
    crate::telemetry::init(name);
    let application = application.await?;
    tracing::info!(port = application.port(), "{name} listening");
    let served = application.run_until_stopped(ops::shutdown_signal()).await;
    crate::telemetry::flush().await;
    served
}

#[derive(Clone)]
pub struct ServiceBase {
    pub pool: PgPool,
    pub outbox: Arc<Outbox>,
    pub jwt: JwtKeys,
}

impl ServiceBase {
    /// Migrates the service's database and registers every event schema, so a
    /// service whose tables or schemas are wrong fails at start, not at the first request.
    pub async fn build(settings: &ServiceSettings, migrator: &Migrator) -> anyhow::Result<Self> {
        let pool = settings.database.pool()?;
        migrator.run(&pool).await.context("running the migrations")?;
        let outbox = Outbox::new(&settings.registry());
        outbox.register_all().await.context("registering the event schemas with the registry")?;
        let jwt = JwtKeys::from_settings(&settings.jwt_secret, &settings.jwt).await.context("the JWT keys")?;
        Ok(ServiceBase { pool, outbox: Arc::new(outbox), jwt })
    }
}

pub struct Application {
    port: u16,
    listener: TcpListener,
    router: Router,
    limits: EdgeLimits,
}

impl Application {
    /// Binds the port (0 picks a free one) and adds the ops routes and common layers.
    pub async fn bind(settings: &ServiceSettings, api: Router, pool: PgPool, service: &'static str) -> anyhow::Result<Self> {
        let address = format!("{}:{}", settings.http.host, settings.http.port);
        let listener = TcpListener::bind(&address).await.with_context(|| format!("binding {address}"))?;
        let port = listener.local_addr()?.port();
        let router = ops::with_common_layers(api.merge(ops::routes(pool)), service);
        Ok(Application { port, listener, router, limits: settings.http.limits.clone() })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub async fn run_until_stopped(self, shutdown: impl Future<Output = ()> + Send + 'static) -> anyhow::Result<()> {
        ops::serve(self.listener, self.router, &self.limits, shutdown).await.context("serving HTTP")
    }
}
