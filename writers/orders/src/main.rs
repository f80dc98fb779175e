use outflow_orders::{settings::Settings, startup};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    outflow_http::telemetry::init("orders");
    let app = startup::build(Settings::load()?).await?;
    tracing::info!(port = app.port(), "orders writer listening");
    app.run_until_stopped(outflow_http::ops::shutdown_signal()).await
}
