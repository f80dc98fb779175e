//! Bearer JWTs, HS256 only (so `alg=none` and every other algorithm is refused),
//! with `sub` = customer id, `role` = `customer` or `admin`, and a required `exp`.

use axum::{extract::FromRequestParts, http::request::Parts};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};

use crate::error::ApiError;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Customer,
    Admin,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct Claims {
    pub sub: String,
    pub role: Role,
    pub exp: i64,
    pub iat: i64,
}

/// The keys of one HS256 secret; held in the router state.
#[derive(Clone)]
pub struct JwtKeys {
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
}

impl JwtKeys {
    pub fn new(secret: &SecretString) -> Self {
        let bytes = secret.expose_secret().as_bytes();
        let mut validation = Validation::new(Algorithm::HS256);
        validation.leeway = 5;
        validation.set_required_spec_claims(&["exp", "sub"]);
        JwtKeys { encoding: EncodingKey::from_secret(bytes), decoding: DecodingKey::from_secret(bytes), validation }
    }

    /// A signed token valid for `ttl_seconds` (development tokens, tests).
    pub fn mint(&self, sub: &str, role: Role, ttl_seconds: i64) -> String {
        let now = chrono::Utc::now().timestamp();
        let claims = Claims { sub: sub.to_owned(), role, exp: now + ttl_seconds, iat: now };
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.encoding).expect("HS256 signing cannot fail")
    }

    pub fn verify(&self, token: &str) -> Result<Claims, ApiError> {
        jsonwebtoken::decode::<Claims>(token, &self.decoding, &self.validation).map(|data| data.claims).map_err(|e| {
            tracing::debug!(error = %e, "rejected token");
            ApiError::unauthorized("invalid_token", "the bearer token is invalid or expired")
        })
    }
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
}

/// Lets handlers take a [`Caller`] argument; the state must give out [`JwtKeys`].
pub trait HasJwtKeys {
    fn jwt_keys(&self) -> &JwtKeys;
}

impl<S: HasJwtKeys + Send + Sync> FromRequestParts<S> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let header = parts
            .headers
            .get(axum::http::header::AUTHORIZATION)
            .ok_or_else(|| ApiError::unauthorized("missing_token", "send Authorization: Bearer <token>"))?;
        let token = header
            .to_str()
            .ok()
            .and_then(|h| h.strip_prefix("Bearer "))
            .ok_or_else(|| ApiError::unauthorized("invalid_token", "the Authorization header is not a bearer token"))?;
        let claims = state.jwt_keys().verify(token.trim())?;
        Ok(Caller { id: claims.sub, role: claims.role })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys() -> JwtKeys {
        JwtKeys::new(&SecretString::from("test-secret"))
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
}
