//! What the shipping writer's handlers receive: the service base and the carrier.

use outflow_carrier::CarrierClient;
use secrecy::SecretString;

pub type AppState = outflow_service::app::WriterState<Carrier>;

#[derive(Clone)]
pub struct Carrier {
    /// Checks callback signatures.
    pub key: SecretString,
    /// Asks the carrier itself before a callback changes anything.
    pub client: CarrierClient,
}
