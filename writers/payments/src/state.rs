//! What the payments writer's handlers receive: the service base and the provider.

use outflow_provider::ProviderClient;
use secrecy::SecretString;

pub type AppState = outflow_service::app::WriterState<Provider>;

#[derive(Clone)]
pub struct Provider {
    /// Checks notification signatures.
    pub server_key: SecretString,
    /// Asks the provider itself before a notification changes anything.
    pub client: ProviderClient,
}
