//! The payment provider's API, as the payments side calls it: open a
//! transaction for an order (idempotent on the order id) and refund one.
//! Authenticated with HTTP Basic, the server key as user name.

use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use serde_json::json;

#[derive(Clone)]
pub struct ProviderClient {
    base_url: String,
    server_key: SecretString,
    http: reqwest::Client,
}

#[derive(Debug, Deserialize)]
pub struct OpenedTransaction {
    pub token: String,
    pub redirect_url: String,
}

impl ProviderClient {
    pub fn new(base_url: &str, server_key: SecretString) -> Self {
        let http = reqwest::Client::builder().timeout(std::time::Duration::from_secs(10)).build().expect("a reqwest client");
        ProviderClient { base_url: base_url.trim_end_matches('/').to_owned(), server_key, http }
    }

    pub async fn open_transaction(&self, order_id: &str, amount_minor: i64) -> anyhow::Result<OpenedTransaction> {
        let response = self
            .http
            .post(format!("{}/v1/transactions", self.base_url))
            .basic_auth(self.server_key.expose_secret(), Some(""))
            .json(&json!({"order_id": order_id, "gross_amount": crate::signature::gross_amount(amount_minor)}))
            .send()
            .await?
            .error_for_status()?;
        Ok(response.json().await?)
    }

    pub async fn refund(&self, order_id: &str) -> anyhow::Result<()> {
        self.http
            .post(format!("{}/v1/transactions/{order_id}/refund", self.base_url))
            .basic_auth(self.server_key.expose_secret(), Some(""))
            .send()
            .await?
            .error_for_status()?;
        Ok(())
    }
}
