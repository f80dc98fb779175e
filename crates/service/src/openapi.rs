//! Pieces every service's OpenAPI document shares.

use utoipa::{
    openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme},
    Modify,
};

/// Declares the `bearer` (JWT) security scheme that the write endpoints name.
pub struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme("bearer", SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).bearer_format("JWT").build()));
    }
}

/// Keeps a checked-in OpenAPI file equal to the generated document; with
/// `UPDATE_OPENAPI=1` it rewrites the file instead.
pub fn check_in(document: &utoipa::openapi::OpenApi, path: &str) {
    let generated = document.to_pretty_json().expect("an OpenAPI document serializes") + "\n";
    if std::env::var("UPDATE_OPENAPI").is_ok_and(|v| v == "1") {
        std::fs::write(path, &generated).expect("writing the OpenAPI file");
        return;
    }
    let checked_in = std::fs::read_to_string(path).unwrap_or_default();
    assert!(checked_in == generated, "{path} is stale: run `UPDATE_OPENAPI=1 cargo test` and commit it");
}
