use std::sync::Arc;

use outflow_consumer::service::{self, ServiceSettings};
use outflow_service::settings::ViewsDatabase;
use outflow_views_consumer::{lease, topics, Views, GROUP};
use serde::Deserialize;

#[derive(Deserialize)]
struct Settings {
    #[serde(flatten)]
    service: ServiceSettings,
    #[serde(flatten)]
    views: ViewsDatabase,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    outflow_service::telemetry::init("views-consumer");
    let defaults = service::defaults(7124, &format!("lanes = {}\n{}", outflow_views_consumer::LANES, ViewsDatabase::DEFAULTS));
    let settings: Settings = outflow_service::settings::load(&defaults)?;
    let views = Arc::new(Views { db: settings.views.database().await? });
    // scripts/rebuild-views: empty the views, then the consumer replays the topics into them.
    if std::env::args().any(|a| a == "--drop-views") {
        views.drop_all().await?;
        tracing::info!(database = %settings.views.views_database, "views dropped");
        return Ok(());
    }
    views.prepare().await?;
    let lease = lease::Lease::acquire(&views.db, LEASE_TTL).await?;
    // A lost lease stops the consumer as a signal would: in-flight events
    // finish and their offsets are committed.
    let lost = std::sync::Mutex::new(None);
    let stop = async {
        tokio::select! {
            _ = outflow_service::ops::shutdown_signal() => {}
            e = lease.keep() => { *lost.lock().expect("lease error slot") = Some(e); }
        }
    };
    let result = service::serve("views-consumer", &settings.service, GROUP, topics(), outflow_consumer::handler(views), stop).await;
    lease.release().await;
    match lost.into_inner().expect("lease error slot") {
        Some(e) => Err(e),
        None => result,
    }
}

/// How long a killed view consumer's lease keeps a new one waiting.
const LEASE_TTL: std::time::Duration = std::time::Duration::from_secs(10);
