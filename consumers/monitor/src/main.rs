#[tokio::main]
async fn main() -> anyhow::Result<()> {
    outflow_http::telemetry::init("monitor");
    let settings = outflow_monitor::settings::Settings::load()?;
    outflow_monitor::run(settings, outflow_http::ops::shutdown_signal()).await
}
