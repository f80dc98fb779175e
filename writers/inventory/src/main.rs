use outflow_inventory::{settings::Settings, startup};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    outflow_service::app::run("inventory", async { startup::build(Settings::load()?).await }).await
}
