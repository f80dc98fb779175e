//! Where the schema registry is and who asks it: a login with the registry's
//! role for the caller (writers and saga consumers register schemas, the
//! other consumers only read them). The password is a [`SecretString`], so
//! neither it nor a URL holding it reaches a log.

use std::time::Duration;

use schema_registry_converter::async_impl::schema_registry::SrSettings;
use secrecy::{ExposeSecret, SecretString};

#[derive(Clone, Debug)]
pub struct Registry {
    pub url: String,
    /// HTTP basic authentication; none for a registry that asks for none.
    pub user: Option<String>,
    pub password: Option<SecretString>,
}

impl Registry {
    pub fn new(url: impl Into<String>, user: Option<String>, password: Option<SecretString>) -> Self {
        Registry { url: url.into(), user: user.filter(|u| !u.is_empty()), password }
    }

    /// The encoder's and decoder's settings, each call bounded: a registry that
    /// hangs must fail the step (which is retried), not hold its transaction open.
    pub fn settings(&self) -> SrSettings {
        let mut builder = SrSettings::new_builder(self.url.clone());
        builder.set_timeout(Duration::from_secs(5));
        if let Some(user) = &self.user {
            builder.set_basic_authorization(user, self.password.as_ref().map(|p| p.expose_secret()));
        }
        builder.build().expect("a reqwest client with a timeout builds")
    }

    /// A GET of the registry with this login.
    pub fn get(&self, http: &reqwest::Client, url: &str) -> reqwest::RequestBuilder {
        let request = http.get(url).timeout(Duration::from_secs(5));
        match &self.user {
            Some(user) => request.basic_auth(user, self.password.as_ref().map(|p| p.expose_secret())),
            None => request,
        }
    }
}
