//! Pieces every service's OpenAPI document shares.

use utoipa::{
    openapi::{
        header::HeaderBuilder,
        path::{HttpMethod, Operation},
        security::{HttpAuthScheme, HttpBuilder, SecurityScheme},
        ContentBuilder, ObjectBuilder, Ref, RefOr, Response, ResponseBuilder, Schema, Type,
    },
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

/// Every `pattern` the document gives a field or parameter called `name`:
/// for tests that hold a pattern spelled out in attributes to its one source.
pub fn patterns_of(document: &utoipa::openapi::OpenApi, name: &str) -> Vec<String> {
    fn walk(value: &serde_json::Value, name: &str, found: &mut Vec<String>) {
        match value {
            serde_json::Value::Object(object) => {
                let property = object.get("properties").and_then(|p| p.get(name)).and_then(|p| p.get("pattern"));
                let parameter =
                    (object.get("name").and_then(|n| n.as_str()) == Some(name)).then(|| object.get("schema").and_then(|s| s.get("pattern"))).flatten();
                found.extend(property.into_iter().chain(parameter).filter_map(|p| p.as_str()).map(str::to_owned));
                object.values().for_each(|v| walk(v, name, found));
            }
            serde_json::Value::Array(items) => items.iter().for_each(|v| walk(v, name, found)),
            _ => {}
        }
    }
    let mut found = Vec::new();
    walk(&serde_json::to_value(document).expect("an OpenAPI document serializes"), name, &mut found);
    found
}

/// The error body every 4xx and 5xx carries, the responses every operation can
/// give besides its own, and `Retry-After` on a 429: added to each operation
/// of the document, so that no service has to repeat them (and none forgets).
pub struct ErrorResponses {
    /// Whether reads are rate limited too (the query service and the webhook
    /// limit every request per client; the writers limit only writes, per customer).
    pub limited_reads: bool,
}

impl Modify for ErrorResponses {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        openapi.components.get_or_insert_with(Default::default).schemas.insert("Error".into(), RefOr::T(error_schema()));
        for item in openapi.paths.paths.values_mut() {
            for (method, operation) in [
                (HttpMethod::Get, item.get.as_mut()),
                (HttpMethod::Post, item.post.as_mut()),
                (HttpMethod::Put, item.put.as_mut()),
                (HttpMethod::Delete, item.delete.as_mut()),
            ] {
                if let Some(operation) = operation {
                    add_responses(operation, method == HttpMethod::Get, self.limited_reads);
                }
            }
        }
    }
}

fn add_responses(operation: &mut Operation, read: bool, limited_reads: bool) {
    let has_body = operation.request_body.is_some();
    let secured = operation.security.as_ref().is_some_and(|s| !s.is_empty());
    let responses = &mut operation.responses.responses;
    let mut add = |status: &str, description: &str| {
        responses.entry(status.to_owned()).or_insert_with(|| RefOr::T(ResponseBuilder::new().description(description).build()));
    };
    if has_body {
        add("400", "Malformed JSON, or a body that is not application/json");
        add("413", "The body is larger than 64 KiB");
        add("422", "The body does not fit the schema (a missing, unknown or mistyped field)");
    }
    if secured {
        add("401", "No valid bearer token");
    }
    if !read || limited_reads {
        add("429", "Too many requests: wait the Retry-After header's seconds");
    }
    add("503", "No answer within 30 s, or a dependency is unavailable; retry");
    for (status, response) in responses.iter_mut() {
        if let RefOr::T(response) = response {
            if !status.starts_with('2') {
                describe_error(status, response);
            }
        }
    }
}

/// Gives an error response the error body, and a 429 its Retry-After header.
fn describe_error(status: &str, response: &mut Response) {
    if response.content.is_empty() {
        response.content.insert("application/json".into(), ContentBuilder::new().schema(Some(Ref::from_schema_name("Error"))).build());
    }
    if status == "429" {
        let seconds = ObjectBuilder::new().schema_type(Type::Integer).minimum(Some(1));
        response.headers.insert("Retry-After".into(), HeaderBuilder::new().schema(seconds).description(Some("Seconds to wait")).build());
    }
}

fn error_schema() -> Schema {
    let text = || ObjectBuilder::new().schema_type(Type::String);
    let detail = ObjectBuilder::new()
        .property("code", text().description(Some("A stable, machine-readable code, e.g. unknown_sku")))
        .property("message", text().description(Some("What went wrong, for people")))
        .required("code")
        .required("message");
    Schema::Object(ObjectBuilder::new().property("error", detail).required("error").build())
}

/// [`ErrorResponses`] of the writers: writes rate limited per customer.
pub const WRITER_ERRORS: ErrorResponses = ErrorResponses { limited_reads: false };
/// [`ErrorResponses`] of the read side: every request rate limited per client.
pub const READER_ERRORS: ErrorResponses = ErrorResponses { limited_reads: true };
