use outflow_payments::{settings::Settings, startup};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    outflow_http::telemetry::init("payments");
    let app = startup::build(Settings::load()?).await?;
    tracing::info!(port = app.port(), "payments writer listening");
    app.run_until_stopped(outflow_http::ops::shutdown_signal()).await
}
