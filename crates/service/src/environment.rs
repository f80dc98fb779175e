//! `OUTFLOW_ENV`: `development` (the default) or `production`; any other
//! value is refused, so that a typo such as `prod` cannot quietly run on the
//! committed development secrets. In production every setting is checked
//! before a service starts: none may hold a development secret of
//! `infra/dev.env`, and no payment provider may be on a loopback address (the
//! sandbox is a development tool and refuses production itself).

use anyhow::{bail, Result};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Environment {
    Development,
    Production,
}

/// The committed development defaults, compiled in so that a production
/// binary recognises them wherever they come from (environment, file).
const DEV_ENV: &str = include_str!("../../../infra/dev.env");

impl Environment {
    pub fn parse(value: Option<&str>) -> Result<Self> {
        match value {
            None | Some("") | Some("development") => Ok(Environment::Development),
            Some("production") => Ok(Environment::Production),
            Some(other) => bail!("OUTFLOW_ENV must be development or production, not {other:?}"),
        }
    }

    /// The process's own `OUTFLOW_ENV`.
    pub fn current() -> Result<Self> {
        Self::parse(std::env::var("OUTFLOW_ENV").ok().as_deref())
    }
}

/// Refuses a flag that lets customers' webhooks reach this machine or a
/// private network, in production. Checked on the typed settings as well as
/// in [`check_settings`], since a flag may be written `1`, `yes` or `on`.
pub fn refuse_private_networks(environment: Environment, allowed: bool, setting: &str) -> Result<()> {
    if environment == Environment::Production && allowed {
        bail!("OUTFLOW_ENV=production: setting {setting} lets customers' webhooks reach this machine and private networks (development only)");
    }
    Ok(())
}

/// The secret values of `infra/dev.env` (every value but the login names).
fn development_secrets() -> impl Iterator<Item = (&'static str, &'static str)> {
    DEV_ENV
        .lines()
        .filter(|line| !line.trim_start().starts_with('#'))
        .filter_map(|line| line.split_once('='))
        .filter(|(key, value)| !key.ends_with("_USER") && !value.is_empty())
}

/// Refuses, in production, settings that hold a development secret or point
/// the payment provider or the carrier at a loopback address (their sandboxes). `settings` is every string
/// setting as (key, value), keys dotted as in the TOML (`database.url`).
pub fn check_settings(environment: Environment, settings: &[(String, String)]) -> Result<()> {
    if environment == Environment::Development {
        return Ok(());
    }
    for (key, value) in settings {
        if let Some((name, _)) = development_secrets().find(|(_, secret)| value.contains(secret)) {
            bail!("OUTFLOW_ENV=production: setting {key} holds the development value of {name} (infra/dev.env); set a real secret");
        }
        if key.ends_with("provider_url") && is_loopback_url(value) {
            bail!("OUTFLOW_ENV=production: setting {key} points the payment provider at {value}, a local address (the development sandbox); set the real provider's URL");
        }
        if key.ends_with("carrier_url") && is_loopback_url(value) {
            bail!("OUTFLOW_ENV=production: setting {key} points the carrier at {value}, a local address (the development sandbox); set the real carrier's URL");
        }
        if key.ends_with("allow_private_networks") && value == "true" {
            bail!("OUTFLOW_ENV=production: setting {key} lets customers' webhooks reach this machine and private networks (development only)");
        }
    }
    Ok(())
}

fn is_loopback_url(url: &str) -> bool {
    let host = url.split_once("://").map_or(url, |(_, rest)| rest).split(['/', '?']).next().unwrap_or_default();
    let host = host.rsplit_once('@').map_or(host, |(_, host)| host);
    let host = match host.strip_prefix('[') {
        Some(bracketed) => bracketed.split(']').next().unwrap_or_default(),
        None => host.rsplit_once(':').map_or(host, |(host, _)| host),
    };
    host.eq_ignore_ascii_case("localhost") || host.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback() || ip.is_unspecified())
}

/// Every string and flag in a settings tree, as (dotted key, value).
pub fn strings(value: &serde_json::Value) -> Vec<(String, String)> {
    fn walk(prefix: &str, value: &serde_json::Value, out: &mut Vec<(String, String)>) {
        match value {
            serde_json::Value::String(s) => out.push((prefix.to_owned(), s.clone())),
            serde_json::Value::Bool(b) => out.push((prefix.to_owned(), b.to_string())),
            serde_json::Value::Object(map) => {
                for (key, value) in map {
                    let key = if prefix.is_empty() { key.clone() } else { format!("{prefix}.{key}") };
                    walk(&key, value, out);
                }
            }
            serde_json::Value::Array(items) => items.iter().for_each(|item| walk(prefix, item, out)),
            _ => {}
        }
    }
    let mut out = Vec::new();
    walk("", value, &mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn setting(key: &str, value: &str) -> Vec<(String, String)> {
        vec![(key.to_owned(), value.to_owned())]
    }

    #[test]
    fn only_the_two_environments_are_known() {
        assert_eq!(Environment::parse(None).unwrap(), Environment::Development);
        assert_eq!(Environment::parse(Some("production")).unwrap(), Environment::Production);
        for typo in ["prod", "Production", "staging", "dev"] {
            assert!(Environment::parse(Some(typo)).is_err(), "{typo}");
        }
    }

    #[test]
    fn production_refuses_development_secrets_wherever_they_sit() {
        let url = "postgres://outflow_orders:outflow-dev-orders-password@db:5432/orders";
        assert!(check_settings(Environment::Production, &setting("database.url", url)).is_err());
        assert!(check_settings(Environment::Production, &setting("jwt_secret", "outflow-dev-jwt-secret-change-me-in-production")).is_err());
        assert!(check_settings(Environment::Development, &setting("database.url", url)).is_ok());
        let real = "postgres://outflow_orders:Zq81-real-secret@db:5432/orders";
        assert!(check_settings(Environment::Production, &setting("database.url", real)).is_ok());
    }

    #[test]
    fn production_refuses_a_local_payment_provider() {
        for url in ["http://127.0.0.1:7199", "http://localhost:7199/", "http://[::1]:7199", "http://0.0.0.0:80"] {
            assert!(check_settings(Environment::Production, &setting("provider_url", url)).is_err(), "{url}");
        }
        assert!(check_settings(Environment::Production, &setting("provider_url", "https://api.provider.example/")).is_ok());
    }

    #[test]
    fn production_refuses_a_local_carrier() {
        for url in ["http://127.0.0.1:7198", "http://localhost:7198/"] {
            assert!(check_settings(Environment::Production, &setting("carrier_url", url)).is_err(), "{url}");
        }
        assert!(check_settings(Environment::Production, &setting("carrier_url", "https://api.carrier.example/")).is_ok());
    }

    #[test]
    fn production_refuses_webhooks_into_private_networks() {
        for key in ["webhooks.allow_private_networks", "dispatch.allow_private_networks"] {
            assert!(check_settings(Environment::Production, &setting(key, "true")).is_err(), "{key}");
            assert!(check_settings(Environment::Production, &setting(key, "false")).is_ok(), "{key}");
            assert!(check_settings(Environment::Development, &setting(key, "true")).is_ok(), "{key}");
        }
    }

    #[test]
    fn every_string_and_flag_is_found_with_its_key() {
        let tree = serde_json::json!({"database": {"url": "u"}, "ports": [1], "names": ["a"], "webhooks": {"allow_private_networks": true}});
        let mut found = strings(&tree);
        found.sort();
        let expected = [("database.url", "u"), ("names", "a"), ("webhooks.allow_private_networks", "true")];
        assert_eq!(found, expected.map(|(k, v)| (k.to_owned(), v.to_owned())));
    }
}
