//! What every write service is made of: a migrated database pool, the outbox
//! with its schemas registered, the JWT keys ([`ServiceBase`]); and the bound,
//! layered HTTP server that runs until told to stop ([`Application`]).

use std::{future::Future, sync::Arc};

use anyhow::Context;
use axum::Router;
use outflow_outbox::Outbox;
use sqlx::{migrate::Migrator, PgPool};
use tokio::net::TcpListener;

use crate::{auth::JwtKeys, ops, settings::ServiceSettings};

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
        let outbox = Outbox::new(&settings.registry_url);
        outbox.register_all().await.context("registering the event schemas with the registry")?;
        Ok(ServiceBase { pool, outbox: Arc::new(outbox), jwt: JwtKeys::new(&settings.jwt_secret) })
    }
}

pub struct Application {
    port: u16,
    listener: TcpListener,
    router: Router,
}

impl Application {
    /// Binds the port (0 picks a free one) and adds the ops routes and common layers.
    pub async fn bind(settings: &ServiceSettings, api: Router, pool: PgPool, service: &'static str) -> anyhow::Result<Self> {
        let address = format!("{}:{}", settings.http.host, settings.http.port);
        let listener = TcpListener::bind(&address).await.with_context(|| format!("binding {address}"))?;
        let port = listener.local_addr()?.port();
        let router = ops::with_common_layers(api.merge(ops::routes(pool)), service);
        Ok(Application { port, listener, router })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub async fn run_until_stopped(self, shutdown: impl Future<Output = ()> + Send + 'static) -> anyhow::Result<()> {
        ops::serve(self.listener, self.router, shutdown).await.context("serving HTTP")
    }
}
