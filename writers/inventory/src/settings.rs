use outflow_service::settings::ServiceSettings;
use serde::Deserialize;

#[derive(Clone, Debug, Deserialize)]
pub struct Settings {
    #[serde(flatten)]
    pub service: ServiceSettings,
}

const DEFAULTS: &str = r#"
registry_url = "http://127.0.0.1:58081"
jwt_secret = ""
[http]
host = "127.0.0.1"
port = 7102
[database]
url = ""
max_connections = 20
"#;

impl Settings {
    pub fn load() -> anyhow::Result<Self> {
        let settings: Settings = outflow_service::settings::load(DEFAULTS)?;
        settings.service.require_secrets()?;
        Ok(settings)
    }

    pub fn defaults_with(service: ServiceSettings) -> Self {
        Settings { service }
    }
}
