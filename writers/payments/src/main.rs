use outflow_payments::{settings::Settings, startup};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    outflow_service::app::run("payments", async { startup::build(Settings::load()?).await }).await
}
