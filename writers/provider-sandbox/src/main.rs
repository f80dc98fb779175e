use clap::Parser;
use outflow_provider_sandbox::{Sandbox, SandboxConfig};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    outflow_service::telemetry::init("provider-sandbox");
    let config = SandboxConfig::parse();
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", config.port)).await?;
    tracing::info!(port = config.port, "payment provider sandbox listening");
    axum::serve(listener, Sandbox::open(config)?.router()).with_graceful_shutdown(outflow_service::ops::shutdown_signal()).await?;
    Ok(())
}
