use clap::Parser;
use outflow_carrier_sandbox::{Sandbox, SandboxConfig};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    outflow_service::telemetry::init("carrier-sandbox");
    // The sandbox delivers parcels that nobody carried: never in production.
    if outflow_service::environment::Environment::current()? == outflow_service::environment::Environment::Production {
        anyhow::bail!("the carrier sandbox is a development tool and refuses to run with OUTFLOW_ENV=production");
    }
    let config = SandboxConfig::parse();
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", config.port)).await?;
    tracing::info!(port = config.port, "carrier sandbox listening");
    axum::serve(listener, Sandbox::open(config)?.router()).with_graceful_shutdown(outflow_service::ops::shutdown_signal()).await?;
    Ok(())
}
