use outflow_orders::{settings::Settings, startup::Application};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    outflow_http::telemetry::init("orders");
    let settings = Settings::load()?;
    let app = Application::build(settings).await?;
    tracing::info!(port = app.port(), "orders writer listening");
    app.run_until_stopped(outflow_http::ops::shutdown_signal()).await
}
