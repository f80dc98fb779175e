//! Bearer JWTs: `sub` = customer id, `role` = `customer` or `admin`, and the
//! issuer, audience, `exp` and `iat` required and checked, with a maximum
//! lifetime (`exp - iat`). HS256 with the service's secret (the development
//! tokens of `scripts/token`), and, when `jwt.jwks_url` names an identity
//! provider's key set (Keycloak, ...), RS256 and ES256 tokens signed by one of
//! its keys (`kid`). Every other algorithm, `alg=none` included, is refused.

use std::{
    collections::HashMap,
    sync::{Arc, RwLock},
    time::Duration,
};

use anyhow::Context;
use axum::{
    extract::FromRequestParts,
    http::{request::Parts, HeaderMap},
};
use jsonwebtoken::{jwk::JwkSet, Algorithm, DecodingKey, EncodingKey, Header, Validation};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};

use crate::error::ApiError;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Customer,
    Admin,
}

/// What a verified token says (`iss` and `aud` are checked by the validation;
/// an identity provider may send `aud` as a list).
#[derive(Debug, Serialize, Deserialize)]
pub struct Claims {
    pub sub: String,
    pub role: Role,
    pub exp: i64,
    pub iat: i64,
}

#[derive(Serialize)]
struct MintedClaims<'a> {
    iss: &'a str,
    aud: &'a str,
    #[serde(flatten)]
    claims: Claims,
}

/// `[jwt]` (`OUTFLOW_JWT__ISSUER`, `__AUDIENCE`, `__MAX_LIFETIME_SECS`, `__JWKS_URL`).
#[derive(Clone, Debug, Deserialize)]
#[serde(default)]
pub struct JwtSettings {
    pub issuer: String,
    pub audience: String,
    /// A token whose `exp - iat` is longer is refused.
    pub max_lifetime_secs: i64,
    /// An identity provider's JSON Web Key Set; its keys verify RS256/ES256 tokens.
    pub jwks_url: Option<String>,
    /// How often the key set is fetched again (key rotation).
    pub jwks_refresh_secs: u64,
}

impl Default for JwtSettings {
    fn default() -> Self {
        JwtSettings { issuer: "outflow-dev".into(), audience: "outflow".into(), max_lifetime_secs: 24 * 3600, jwks_url: None, jwks_refresh_secs: 300 }
    }
}

/// The verification keys, held in the router state; cheap to clone.
#[derive(Clone)]
pub struct JwtKeys {
    encoding: EncodingKey,
    secret: DecodingKey,
    /// `kid` → (key, algorithm), from the identity provider's key set.
    provider: Arc<RwLock<HashMap<String, (DecodingKey, Algorithm)>>>,
    settings: Arc<JwtSettings>,
}

impl JwtKeys {
    /// HS256 with `secret` and the default issuer and audience (development
    /// tokens, tests).
    pub fn new(secret: &SecretString) -> Self {
        Self::hs256(secret, JwtSettings::default())
    }

    fn hs256(secret: &SecretString, settings: JwtSettings) -> Self {
        let bytes = secret.expose_secret().as_bytes();
        JwtKeys { encoding: EncodingKey::from_secret(bytes), secret: DecodingKey::from_secret(bytes), provider: Arc::default(), settings: Arc::new(settings) }
    }

    /// The service's keys: HS256 with `secret`, and the identity provider's key
    /// set when `settings.jwks_url` names one (fetched now, so that a wrong URL
    /// stops the start, then again every `jwks_refresh_secs`).
    pub async fn from_settings(secret: &SecretString, settings: &JwtSettings) -> anyhow::Result<Self> {
        let keys = Self::hs256(secret, settings.clone());
        if let Some(url) = settings.jwks_url.clone() {
            let http = reqwest::Client::builder().timeout(Duration::from_secs(10)).build()?;
            *keys.provider.write().expect("not poisoned") = fetch_key_set(&http, &url).await?;
            let (provider, every) = (Arc::downgrade(&keys.provider), Duration::from_secs(settings.jwks_refresh_secs.max(10)));
            tokio::spawn(async move {
                loop {
                    tokio::time::sleep(every).await;
                    let Some(provider) = provider.upgrade() else { return };
                    match fetch_key_set(&http, &url).await {
                        Ok(fetched) => *provider.write().expect("not poisoned") = fetched,
                        Err(e) => tracing::warn!(error = format!("{e:#}"), "the identity provider's key set could not be fetched again; keeping the last one"),
                    }
                }
            });
        }
        Ok(keys)
    }

    /// A signed HS256 token valid for `ttl_seconds` (development tokens, tests).
    pub fn mint(&self, sub: &str, role: Role, ttl_seconds: i64) -> String {
        let now = chrono::Utc::now().timestamp();
        let claims = MintedClaims {
            iss: &self.settings.issuer,
            aud: &self.settings.audience,
            claims: Claims { sub: sub.to_owned(), role, exp: now + ttl_seconds, iat: now },
        };
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.encoding).expect("HS256 signing cannot fail")
    }

    pub fn verify(&self, token: &str) -> Result<Claims, ApiError> {
        self.verified(token).map_err(|e| {
            tracing::debug!(error = %e, "rejected token");
            ApiError::unauthorized("invalid_token", "the bearer token is invalid or expired")
        })
    }

    fn verified(&self, token: &str) -> anyhow::Result<Claims> {
        let header = jsonwebtoken::decode_header(token)?;
        let provider = self.provider.read().expect("not poisoned");
        let key = match header.alg {
            Algorithm::HS256 => &self.secret,
            Algorithm::RS256 | Algorithm::ES256 => {
                let kid = header.kid.as_deref().context("a provider token without kid")?;
                let (key, alg) = provider.get(kid).with_context(|| format!("no key {kid} in the provider's key set"))?;
                anyhow::ensure!(*alg == header.alg, "key {kid} is for {alg:?}, not {:?}", header.alg);
                key
            }
            other => anyhow::bail!("algorithm {other:?} is not accepted"),
        };
        let mut validation = Validation::new(header.alg);
        validation.leeway = 5;
        validation.set_issuer(&[&self.settings.issuer]);
        validation.set_audience(&[&self.settings.audience]);
        validation.set_required_spec_claims(&["exp", "sub", "iss", "aud"]);
        let claims = jsonwebtoken::decode::<Claims>(token, key, &validation)?.claims;
        anyhow::ensure!(claims.exp - claims.iat <= self.settings.max_lifetime_secs, "a token that lives longer than {} s", self.settings.max_lifetime_secs);
        anyhow::ensure!(claims.iat <= chrono::Utc::now().timestamp() + 5, "a token issued in the future");
        Ok(claims)
    }
}

/// The RS256 and ES256 keys of a JSON Web Key Set, by `kid`.
async fn fetch_key_set(http: &reqwest::Client, url: &str) -> anyhow::Result<HashMap<String, (DecodingKey, Algorithm)>> {
    let set: JwkSet = http.get(url).send().await?.error_for_status()?.json().await.with_context(|| format!("the key set at {url}"))?;
    let mut keys = HashMap::new();
    for jwk in &set.keys {
        let (Some(kid), Some(alg)) = (jwk.common.key_id.clone(), jwk.common.key_algorithm.and_then(|a| Algorithm::try_from(a).ok())) else { continue };
        if matches!(alg, Algorithm::RS256 | Algorithm::ES256) {
            keys.insert(kid, (DecodingKey::from_jwk(jwk)?, alg));
        }
    }
    anyhow::ensure!(!keys.is_empty(), "the key set at {url} holds no RS256 or ES256 key with a kid");
    Ok(keys)
}

/// The token of an `Authorization: Bearer <token>` header.
pub fn bearer_token(headers: &HeaderMap) -> Option<&str> {
    headers.get(axum::http::header::AUTHORIZATION)?.to_str().ok()?.strip_prefix("Bearer ").map(str::trim)
}

/// Who calls: the verified claims of the request's bearer token.
#[derive(Clone, Debug)]
pub struct Caller {
    pub id: String,
    pub role: Role,
}

impl Caller {
    pub fn require(&self, role: Role) -> Result<(), ApiError> {
        if self.role == role {
            return Ok(());
        }
        Err(ApiError::forbidden(match role {
            Role::Admin => "this endpoint needs the admin role",
            Role::Customer => "this endpoint is for customers",
        }))
    }

    /// Owners see their own resources; admins see everyone's.
    pub fn may_see(&self, owner_id: &str) -> bool {
        self.role == Role::Admin || self.id == owner_id
    }

    /// The caller the request's bearer token names, with the token's expiry
    /// (seconds since the epoch). `other` is a token sent another way, for a
    /// client that cannot send headers (a browser's EventSource), taken only
    /// when there is no Authorization header; `missing` tells the client how
    /// to send one.
    pub fn from_token(keys: &JwtKeys, headers: &HeaderMap, other: Option<&str>, missing: &str) -> Result<(Caller, i64), ApiError> {
        let token = match (headers.get(axum::http::header::AUTHORIZATION), other) {
            (None, Some(token)) => token,
            (None, None) => return Err(ApiError::unauthorized("missing_token", missing)),
            (Some(_), _) => bearer_token(headers).ok_or_else(|| ApiError::unauthorized("invalid_token", "the Authorization header is not a bearer token"))?,
        };
        let claims = keys.verify(token)?;
        Ok((Caller { id: claims.sub, role: claims.role }, claims.exp))
    }
}

/// Lets handlers take a [`Caller`] argument; the state must give out [`JwtKeys`].
pub trait HasJwtKeys {
    fn jwt_keys(&self) -> &JwtKeys;
}

impl<S: HasJwtKeys + Send + Sync> FromRequestParts<S> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        // Verified already by the rate limit in front of a write route (edge).
        if let Some(caller) = parts.extensions.get::<Caller>() {
            return Ok(caller.clone());
        }
        Ok(Caller::from_token(state.jwt_keys(), &parts.headers, None, "send Authorization: Bearer <token>")?.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys() -> JwtKeys {
        JwtKeys::new(&SecretString::from("test-secret"))
    }

    #[test]
    fn the_header_comes_first_and_another_token_only_without_one() {
        let (token, other) = (keys().mint("c-1", Role::Customer, 60), keys().mint("c-2", Role::Customer, 60));
        let mut headers = HeaderMap::new();
        let caller = |headers: &HeaderMap, other: Option<&str>| Caller::from_token(&keys(), headers, other, "how").map(|(c, _)| c.id).map_err(|e| e.code);
        assert_eq!(caller(&headers, None), Err("missing_token"));
        assert_eq!(caller(&headers, Some(&other)), Ok("c-2".to_owned()));
        headers.insert(axum::http::header::AUTHORIZATION, format!("Bearer {token}").parse().unwrap());
        assert_eq!(caller(&headers, Some(&other)), Ok("c-1".to_owned()));
        headers.insert(axum::http::header::AUTHORIZATION, format!("Basic {token}").parse().unwrap());
        assert_eq!(caller(&headers, Some(&other)), Err("invalid_token"), "a header that is not a bearer token is refused, not passed over");
        assert_eq!(caller(&HeaderMap::new(), Some("not-a-token")), Err("invalid_token"));
    }

    #[test]
    fn a_minted_token_verifies() {
        let claims = keys().verify(&keys().mint("c-1", Role::Customer, 60)).unwrap();
        assert_eq!((claims.sub.as_str(), claims.role), ("c-1", Role::Customer));
    }

    #[test]
    fn expired_foreign_and_unsigned_tokens_are_refused() {
        let expired = keys().mint("c-1", Role::Admin, -60);
        let foreign = JwtKeys::new(&SecretString::from("other")).mint("c-1", Role::Admin, 60);
        // alg=none: header {"alg":"none","typ":"JWT"}, no signature.
        let payload = keys().mint("c-1", Role::Admin, 60).split('.').nth(1).unwrap().to_owned();
        let unsigned = format!("eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0.{payload}.");
        for token in [expired, foreign, unsigned, "garbage".to_owned()] {
            assert!(keys().verify(&token).is_err(), "{token}");
        }
    }

    fn keys_with(settings: JwtSettings) -> JwtKeys {
        JwtKeys::hs256(&SecretString::from("test-secret"), settings)
    }

    #[test]
    fn tokens_of_another_issuer_or_audience_or_living_too_long_are_refused() {
        let other_issuer = keys_with(JwtSettings { issuer: "someone-else".into(), ..JwtSettings::default() }).mint("c-1", Role::Customer, 60);
        let other_audience = keys_with(JwtSettings { audience: "another-api".into(), ..JwtSettings::default() }).mint("c-1", Role::Customer, 60);
        let too_long = keys().mint("c-1", Role::Customer, 2 * 24 * 3600);
        for token in [other_issuer, other_audience, too_long] {
            assert!(keys().verify(&token).is_err(), "{token}");
        }
    }

    /// An identity provider's ES256 token, verified against its key set served
    /// over HTTP as a JWKS URL; a token naming a key the set lacks is refused.
    #[tokio::test]
    async fn provider_tokens_verify_against_its_key_set() {
        // A P-256 key as PKCS#8 DER, which the signing key takes.
        let der = std::process::Command::new("sh")
            .args(["-c", "openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 | openssl pkcs8 -topk8 -nocrypt -outform DER"])
            .output()
            .expect("openssl makes a key")
            .stdout;
        let signing = EncodingKey::from_ec_der(&der);
        let mut jwk = jsonwebtoken::jwk::Jwk::from_encoding_key(&signing, Algorithm::ES256).unwrap();
        jwk.common.key_id = Some("k1".into());
        let body = serde_json::to_string(&JwkSet { keys: vec![jwk] }).unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/jwks.json", listener.local_addr().unwrap());
        let app = axum::Router::new().route("/jwks.json", axum::routing::get(move || std::future::ready(body.clone())));
        tokio::spawn(async move { axum::serve(listener, app).await });
        let settings = JwtSettings { jwks_url: Some(url), ..JwtSettings::default() };
        let keys = JwtKeys::from_settings(&SecretString::from("s"), &settings).await.unwrap();

        let now = chrono::Utc::now().timestamp();
        let claims =
            || MintedClaims { iss: "outflow-dev", aud: "outflow", claims: Claims { sub: "kc-user".into(), role: Role::Customer, exp: now + 60, iat: now } };
        let mut header = Header::new(Algorithm::ES256);
        header.kid = Some("k1".into());
        assert_eq!(keys.verify(&jsonwebtoken::encode(&header, &claims(), &signing).unwrap()).unwrap().sub, "kc-user");
        header.kid = Some("k2".into());
        assert!(keys.verify(&jsonwebtoken::encode(&header, &claims(), &signing).unwrap()).is_err());
    }
}
