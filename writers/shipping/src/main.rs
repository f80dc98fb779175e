use outflow_shipping::{settings::Settings, startup};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    outflow_service::app::run("shipping", async { startup::build(Settings::load()?).await }).await
}
