//! What the schema registry says of a schema id, read from its HTTP status.
//! The registry client's errors carry only text, so a failed decode is
//! classified by asking the registry for the id itself: a 404 is a record
//! that can never decode, a 5xx or no answer is an outage to wait out.

use std::time::Duration;

#[derive(Debug, PartialEq, Eq)]
pub enum SchemaLookup {
    Known,
    Unknown,
    Unavailable(String),
}

impl SchemaLookup {
    /// `request` is `GET <registry>/schemas/ids/<id>` with the caller's credentials.
    pub async fn of(request: reqwest::RequestBuilder) -> Self {
        match request.timeout(Duration::from_secs(5)).send().await {
            Ok(response) if response.status().is_success() => SchemaLookup::Known,
            Ok(response) if response.status() == reqwest::StatusCode::NOT_FOUND => SchemaLookup::Unknown,
            Ok(response) => SchemaLookup::Unavailable(format!("the registry answered {}", response.status())),
            Err(e) => SchemaLookup::Unavailable(format!("the registry did not answer: {e}")),
        }
    }

    pub fn url(registry_url: &str, id: u32) -> String {
        format!("{}/schemas/ids/{id}", registry_url.trim_end_matches('/'))
    }
}
