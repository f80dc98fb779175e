#[tokio::main]
async fn main() -> anyhow::Result<()> {
    outflow_service::telemetry::init("monitor");
    let settings = outflow_monitor::settings::Settings::load()?;
    outflow_monitor::run(settings, outflow_service::ops::shutdown_signal()).await
}
