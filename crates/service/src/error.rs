//! Every client error is `{"error": {"code": "...", "message": "..."}}` with a
//! 4xx status; server errors log their cause chain and show the client only a
//! generic message.

use axum::{
    extract::{rejection::JsonRejection, FromRequest, FromRequestParts, Query, Request},
    http::request::Parts,
    http::StatusCode,
    response::{IntoResponse, Response},
    Json,
};
use serde::de::DeserializeOwned;
use serde_json::json;

#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    /// Sent as `Retry-After` (whole seconds, rounded up) with a 429 or 503.
    pub retry_after: Option<std::time::Duration>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        ApiError { status, code, message: message.into(), retry_after: None }
    }
    pub fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, message)
    }
    pub fn unauthorized(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, code, message)
    }
    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, "forbidden", message)
    }
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", message)
    }
    pub fn conflict(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, code, message)
    }
    pub fn unprocessable(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNPROCESSABLE_ENTITY, code, message)
    }
    pub fn too_many_requests(message: impl Into<String>, retry_after: std::time::Duration) -> Self {
        ApiError { retry_after: Some(retry_after), ..Self::new(StatusCode::TOO_MANY_REQUESTS, "rate_limited", message) }
    }
    /// An unexpected failure: the cause chain goes to the log, not to the client.
    pub fn internal(error: anyhow::Error) -> Self {
        tracing::error!(error = format!("{error:#}"), "request failed");
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", "the request failed; it has been logged")
    }
}

impl From<sqlx::Error> for ApiError {
    fn from(error: sqlx::Error) -> Self {
        Self::internal(anyhow::Error::new(error).context("database"))
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = json!({ "error": { "code": self.code, "message": self.message } });
        let mut response = (self.status, Json(body)).into_response();
        if let Some(wait) = self.retry_after {
            let seconds = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
            response.headers_mut().insert(axum::http::header::RETRY_AFTER, seconds.max(1).into());
        }
        response
    }
}

/// `Json<T>` whose rejections are [`ApiError`]s: malformed JSON is 400, a body
/// that does not fit `T` (unknown or missing fields, wrong types) is 422, a body
/// over the limit is 413.
pub struct ApiJson<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        match Json::<T>::from_request(request, state).await {
            Ok(Json(value)) => Ok(ApiJson(value)),
            Err(rejection) => Err(json_rejection(rejection)),
        }
    }
}

/// `Query<T>` whose rejection is an [`ApiError`]: a query string that does not
/// parse into `T` is a 400 with the error body, like every other refusal.
pub struct ApiQuery<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for ApiQuery<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match Query::<T>::from_request_parts(parts, state).await {
            Ok(Query(value)) => Ok(ApiQuery(value)),
            Err(rejection) => Err(ApiError::bad_request("invalid_query", rejection.body_text())),
        }
    }
}

fn json_rejection(rejection: JsonRejection) -> ApiError {
    match rejection {
        JsonRejection::JsonDataError(e) => ApiError::unprocessable("invalid_body", e.body_text()),
        JsonRejection::JsonSyntaxError(e) => ApiError::bad_request("malformed_json", e.body_text()),
        JsonRejection::MissingJsonContentType(_) => ApiError::bad_request("unsupported_media_type", "send the body as application/json"),
        other if other.status() == StatusCode::PAYLOAD_TOO_LARGE => {
            ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, "body_too_large", "the body is larger than 64 KiB")
        }
        other => ApiError::bad_request("invalid_body", other.body_text()),
    }
}

/// An integer field of a JSON body as JSON Schema defines one: `5` and `5.0`
/// alike (a client's JSON library may write either); `5.5`, or a number out of
/// i64's range, is refused. Use with `#[serde(deserialize_with = ...)]`.
pub fn json_integer<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<i64, D::Error> {
    use serde::{
        de::{Error, Unexpected},
        Deserialize,
    };
    match serde_json::Number::deserialize(deserializer)? {
        n if n.is_i64() => Ok(n.as_i64().expect("checked")),
        n => match n.as_f64() {
            // 2^63 itself is out of range; every float below it converts exactly.
            Some(f) if f.fract() == 0.0 && (-9.223_372_036_854_776e18..9.223_372_036_854_776e18).contains(&f) => Ok(f as i64),
            Some(f) => Err(D::Error::invalid_value(Unexpected::Float(f), &"an integer")),
            None => Err(D::Error::invalid_value(Unexpected::Other(&n.to_string()), &"an integer")),
        },
    }
}

#[cfg(test)]
mod tests {
    #[derive(serde::Deserialize)]
    struct Line {
        #[serde(deserialize_with = "super::json_integer")]
        quantity: i64,
    }

    fn quantity(json: &str) -> Option<i64> {
        serde_json::from_str::<Line>(&format!(r#"{{"quantity": {json}}}"#)).ok().map(|l| l.quantity)
    }

    #[test]
    fn an_integer_may_be_written_with_a_zero_fraction_and_nothing_else() {
        assert_eq!(quantity("5"), Some(5));
        assert_eq!(quantity("5.0"), Some(5));
        assert_eq!(quantity("-3"), Some(-3));
        assert_eq!(quantity("1e3"), Some(1000));
        assert_eq!(quantity("5.5"), None);
        assert_eq!(quantity("9223372036854775808"), None);
        assert_eq!(quantity("1e19"), None);
        assert_eq!(quantity("\"5\""), None);
    }
}
