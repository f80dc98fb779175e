//! The carrier's API, as the shipping side calls it: request a shipment for
//! an order (idempotent on the order id, so a consumer that redelivers the
//! same event asks again without shipping twice) and ask for its status.
//! Authenticated with HTTP Basic, the key as user name. Every call is bounded
//! by the client's timeout: callers never hold a database lock across one.

use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use serde_json::json;

#[derive(Clone)]
pub struct CarrierClient {
    base_url: String,
    key: SecretString,
    http: reqwest::Client,
}

/// The carrier's word on a shipment, which a callback must agree with before
/// it is believed.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Shipment {
    pub shipment_id: String,
    pub order_id: String,
    pub status: ShipmentStatus,
    #[serde(default)]
    pub reason: Option<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ShipmentStatus {
    InTransit,
    Delivered,
    Failed,
}

/// The body the carrier POSTs to the shipping writer once a shipment is
/// decided, signed as sent (see [`crate::signature`]).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Callback {
    pub shipment_id: String,
    pub order_id: String,
    pub status: ShipmentStatus,
    #[serde(default)]
    pub reason: Option<String>,
}

impl CarrierClient {
    pub fn new(base_url: &str, key: SecretString) -> Self {
        let http = reqwest::Client::builder()
            .connect_timeout(std::time::Duration::from_secs(2))
            .timeout(std::time::Duration::from_secs(10))
            .build()
            .expect("a reqwest client");
        CarrierClient { base_url: base_url.trim_end_matches('/').to_owned(), key, http }
    }

    /// The shipment of the order, the one already requested if there is one.
    pub async fn request_shipment(&self, order_id: &str, customer_id: &str) -> anyhow::Result<Shipment> {
        let response = self
            .http
            .post(format!("{}/v1/shipments", self.base_url))
            .basic_auth(self.key.expose_secret(), Some(""))
            .json(&json!({"order_id": order_id, "customer_id": customer_id}))
            .send()
            .await?
            .error_for_status()?;
        Ok(response.json().await?)
    }

    /// None when the carrier knows no shipment for the order.
    pub async fn status(&self, order_id: &str) -> anyhow::Result<Option<Shipment>> {
        let response = self.http.get(format!("{}/v1/shipments/{order_id}", self.base_url)).basic_auth(self.key.expose_secret(), Some("")).send().await?;
        if response.status() == reqwest::StatusCode::NOT_FOUND {
            return Ok(None);
        }
        Ok(Some(response.error_for_status()?.json().await?))
    }
}

#[cfg(test)]
mod tests {
    use serde_json::{from_value, to_value};

    use super::*;

    /// The wire shape both ends of a callback rely on.
    #[test]
    fn statuses_are_snake_case_and_a_reason_may_be_left_out() {
        assert_eq!(to_value(ShipmentStatus::InTransit).unwrap(), json!("in_transit"));
        assert_eq!(to_value(ShipmentStatus::Delivered).unwrap(), json!("delivered"));
        assert_eq!(to_value(ShipmentStatus::Failed).unwrap(), json!("failed"));
        let callback: Callback = from_value(json!({"shipment_id": "s-1", "order_id": "o-1", "status": "delivered"})).unwrap();
        assert_eq!((callback.status, callback.reason), (ShipmentStatus::Delivered, None));
        let shipment: Shipment = from_value(json!({"shipment_id": "s-1", "order_id": "o-1", "status": "failed", "reason": "recipient_unreachable"})).unwrap();
        assert_eq!(shipment.reason.as_deref(), Some("recipient_unreachable"));
        assert!(from_value::<Callback>(json!({"shipment_id": "s-1", "order_id": "o-1", "status": "lost"})).is_err());
    }
}
