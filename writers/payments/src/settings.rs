use outflow_service::settings::ServiceSettings;
use secrecy::SecretString;
use serde::Deserialize;

#[derive(Clone, Debug, Deserialize)]
pub struct Settings {
    #[serde(flatten)]
    pub service: ServiceSettings,
    /// Shared with the payment provider; signs its notifications.
    pub provider_server_key: SecretString,
    /// The provider's API, for refunds of payments captured too late.
    pub provider_url: String,
}

const DEFAULTS: &str = r#"
registry_url = "http://127.0.0.1:58081"
jwt_secret = ""
provider_server_key = ""
provider_url = "http://127.0.0.1:7199"
[http]
host = "127.0.0.1"
port = 7103
[database]
url = ""
max_connections = 20
"#;

impl Settings {
    pub fn load() -> anyhow::Result<Self> {
        let settings: Settings = outflow_service::settings::load(DEFAULTS)?;
        settings.service.require_secrets()?;
        outflow_service::settings::require_secret(&settings.provider_server_key, "OUTFLOW_PROVIDER_SERVER_KEY")?;
        Ok(settings)
    }

    pub fn defaults_with(service: ServiceSettings, provider_server_key: SecretString, provider_url: &str) -> Self {
        Settings { service, provider_server_key, provider_url: provider_url.to_owned() }
    }
}
