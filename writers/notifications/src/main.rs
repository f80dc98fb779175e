use outflow_notifications::{build, Settings};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    outflow_service::app::run("notifications", async { build(Settings::load()?).await }).await
}
