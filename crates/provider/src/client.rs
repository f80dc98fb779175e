//! The payment provider's API, as the payments side calls it: open a
//! transaction for an order (idempotent on the order id), ask for its status,
//! cancel it and refund it. Authenticated with HTTP Basic, the server key as
//! user name. Every call is bounded by the client's timeout: callers never
//! hold a database lock across one.

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
    pub transaction_id: String,
    pub token: String,
    pub redirect_url: String,
}

/// The provider's own word on a transaction (its status endpoint), which a
/// notification must agree with before money is taken as captured.
#[derive(Debug, Deserialize)]
pub struct TransactionStatus {
    pub status_code: String,
    pub transaction_id: String,
    pub order_id: String,
    pub gross_amount: String,
    pub transaction_status: String,
    #[serde(default)]
    pub fraud_status: Option<String>,
}

impl ProviderClient {
    pub fn new(base_url: &str, server_key: SecretString) -> Self {
        let http = reqwest::Client::builder()
            .connect_timeout(std::time::Duration::from_secs(2))
            .timeout(std::time::Duration::from_secs(10))
            .build()
            .expect("a reqwest client");
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

    /// None when the provider knows no transaction for the order.
    pub async fn status(&self, order_id: &str) -> anyhow::Result<Option<TransactionStatus>> {
        let response = self.http.get(format!("{}/v2/{order_id}/status", self.base_url)).basic_auth(self.server_key.expose_secret(), Some("")).send().await?;
        if response.status() == reqwest::StatusCode::NOT_FOUND {
            return Ok(None);
        }
        Ok(Some(response.error_for_status()?.json().await?))
    }

    /// Cancels a transaction not yet paid, so that a given-up payment is never
    /// taken; a transaction already settled cannot be cancelled (the late
    /// capture is then refunded when its notification comes).
    pub async fn cancel(&self, order_id: &str) -> anyhow::Result<()> {
        self.http
            .post(format!("{}/v2/{order_id}/cancel", self.base_url))
            .basic_auth(self.server_key.expose_secret(), Some(""))
            .send()
            .await?
            .error_for_status()?;
        Ok(())
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
