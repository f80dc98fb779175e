use outflow_orders::{settings::Settings, startup};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    outflow_service::app::run("orders", async { startup::build(Settings::load()?).await }).await
}
