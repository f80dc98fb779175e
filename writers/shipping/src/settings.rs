use outflow_service::settings::ServiceSettings;
use secrecy::SecretString;
use serde::Deserialize;

#[derive(Clone, Debug, Deserialize)]
pub struct Settings {
    #[serde(flatten)]
    pub service: ServiceSettings,
    /// Shared with the carrier; signs its callbacks (`OUTFLOW_CARRIER_KEY`).
    pub carrier_key: SecretString,
    /// The carrier's API, asked before a callback is believed.
    pub carrier_url: String,
}

const DEFAULTS: &str = r#"
registry_url = "http://127.0.0.1:58081"
jwt_secret = ""
carrier_key = ""
carrier_url = "http://127.0.0.1:7198"
[http]
host = "127.0.0.1"
port = 7104
[database]
url = ""
max_connections = 10
"#;

impl Settings {
    pub fn load() -> anyhow::Result<Self> {
        let settings: Settings = outflow_service::settings::load(DEFAULTS)?;
        settings.service.require_secrets()?;
        outflow_service::settings::require_secret(&settings.carrier_key, "OUTFLOW_CARRIER_KEY")?;
        Ok(settings)
    }
}
