use outflow_service::settings::ServiceSettings;
use serde::Deserialize;

#[derive(Clone, Debug, Deserialize)]
pub struct Settings {
    #[serde(flatten)]
    pub service: ServiceSettings,
    pub orders: OrderLimits,
}

/// Bounds on one order; a request beyond them is refused with 422.
#[derive(Clone, Copy, Debug, Deserialize)]
pub struct OrderLimits {
    pub max_lines: usize,
    pub max_quantity: i64,
}

const DEFAULTS: &str = r#"
registry_url = "http://127.0.0.1:58081"
jwt_secret = ""
[http]
host = "127.0.0.1"
port = 7101
[database]
url = ""
max_connections = 20
[orders]
max_lines = 100
max_quantity = 1000
"#;

impl Settings {
    pub fn load() -> anyhow::Result<Self> {
        let settings: Settings = outflow_service::settings::load(DEFAULTS)?;
        settings.service.require_secrets()?;
        Ok(settings)
    }

    pub fn defaults_with(service: ServiceSettings) -> Self {
        let mut settings: Settings = outflow_service::settings::load(DEFAULTS).expect("built-in defaults parse");
        settings.service = service;
        settings
    }
}
