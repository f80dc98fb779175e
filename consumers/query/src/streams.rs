//! The live endpoints: an order's view and a product's availability as
//! Server-Sent Events ([`crate::live`] says what each message is), and the
//! page that shows an order live in a browser.

use std::{convert::Infallible, net::SocketAddr, sync::Arc, time::Duration};

use axum::{
    extract::{ConnectInfo, Path, State},
    http::{header, HeaderMap, HeaderValue, StatusCode},
    response::{
        sse::{Event, KeepAlive, Sse},
        IntoResponse, Response,
    },
};
use futures::{stream, Stream, StreamExt};
use mongodb::bson::Document;
use outflow_service::{
    auth::Caller,
    error::{ApiError, ApiQuery},
};
use serde::Deserialize;
use tokio::time::Instant;

use crate::{
    live::{self, Message, Refused, Subscription},
    AppState,
};

/// Browsers' EventSource cannot send an Authorization header, so the order
/// stream also takes the token as `access_token` (RFC 6750, 2.3). Request
/// logs and spans name the route, never the query string.
#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct StreamQuery {
    /// The bearer token, for clients that cannot send headers.
    access_token: Option<String>,
}

/// How soon a client reconnects after a stream ended (the SSE `retry` field).
const RECONNECT: Duration = Duration::from_secs(2);
/// A comment line this often keeps proxies from closing an idle stream.
const KEEP_ALIVE: Duration = Duration::from_secs(15);

#[utoipa::path(
    get, path = "/v1/orders/{id}/events",
    params(("id" = uuid::Uuid, Path, description = "Order id"), StreamQuery,
        ("Last-Event-ID" = Option<u64>, Header, nullable = false, description = "The last message's id: the stream resumes after it")),
    responses(
        (status = 200, content_type = "text/event-stream",
         description = "`event: order`, `id:` the view's version (its events so far, from 1), `data:` {version, event, order}"),
        (status = 400, description = "A Last-Event-ID that is not a version, or a query parameter this endpoint does not take"),
        (status = 403, description = "Another customer's order"),
        (status = 404, description = "No view of this order (yet)"),
        (status = 429, description = "This customer holds as many streams as one may (live.per_client)"),
        (status = 503, description = "Too many streams open; retry later"),
    ),
    security(("bearer" = []))
)]
pub async fn order_events(
    State(state): State<AppState>,
    headers: HeaderMap,
    ApiQuery(query): ApiQuery<StreamQuery>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let (caller, expires) = stream_caller(&state, &headers, query.access_token.as_deref())?;
    let sent = last_event_id(&headers)?;
    // Subscribed before the view is read: a change in between is in both,
    // and the version filters the repeat out.
    let subscription = subscribe(&state, live::ORDERS, &id, format!("customer {}", caller.id))?;
    let view = crate::order_view(&state.db, &id).await?;
    if !caller.may_see(view.get_str("customer_id").unwrap_or_default()) {
        return Err(ApiError::forbidden("this order belongs to another customer"));
    }
    let token_left = Duration::from_secs(u64::try_from(expires - chrono::Utc::now().timestamp()).unwrap_or(0));
    let lifetime = token_left.min(Duration::from_secs(state.live.settings().max_lifetime_secs));
    Ok(respond(messages("order", view, subscription, sent, lifetime, live::order_messages)))
}

#[utoipa::path(
    get, path = "/v1/products/{sku}/availability/events",
    params(("sku" = String, Path, pattern = "^[A-Za-z0-9._-]{1,64}$"),
        ("Last-Event-ID" = Option<u64>, Header, nullable = false, description = "The last message's id: only newer versions are sent")),
    responses(
        (status = 200, content_type = "text/event-stream",
         description = "`event: availability`, `id:` the product's version, `data:` {sku, on_hand, reserved, available, version}"),
        (status = 400, description = "A Last-Event-ID that is not a version"),
        (status = 404, description = "No view of this product (yet)"),
        (status = 429, description = "This address holds as many streams as one may (live.per_client)"),
        (status = 503, description = "Too many streams open; retry later"),
    )
)]
pub async fn availability_events(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Path(sku): Path<String>,
) -> Result<Response, ApiError> {
    let sent = last_event_id(&headers)?;
    let subscription = subscribe(&state, live::PRODUCTS, &sku, format!("address {}", outflow_service::edge::client_key(peer.ip())))?;
    let view = crate::availability_view(&state.db, &sku).await?;
    let lifetime = Duration::from_secs(state.live.settings().max_lifetime_secs);
    Ok(respond(messages("availability", view, subscription, sent, lifetime, |view, sent| live::availability_message(view, sent).into_iter().collect())))
}

/// The caller of a stream, from the Authorization header or `access_token`,
/// and when its token expires.
fn stream_caller(state: &AppState, headers: &HeaderMap, query_token: Option<&str>) -> Result<(Caller, i64), ApiError> {
    Caller::from_token(&state.jwt, headers, query_token, "send Authorization: Bearer <token>, or access_token=<token>")
}

/// The version after which the stream starts: the `Last-Event-ID` a
/// reconnecting client sends, or 0 (from the beginning).
fn last_event_id(headers: &HeaderMap) -> Result<i64, ApiError> {
    let Some(value) = headers.get("last-event-id") else { return Ok(0) };
    let text = value.to_str().unwrap_or_default().trim();
    // EventSource sends an empty Last-Event-ID when no message had an id.
    if text.is_empty() {
        return Ok(0);
    }
    match text.parse::<i64>() {
        Ok(version) if version >= 0 => Ok(version),
        _ => Err(ApiError::bad_request("invalid_last_event_id", format!("Last-Event-ID is a version (a whole number from 0), not {}", text.escape_debug()))),
    }
}

fn subscribe(state: &AppState, collection: &'static str, id: &str, client: String) -> Result<Subscription, ApiError> {
    state.live.subscribe(collection, id, client).map_err(|refused| match refused {
        Refused::Full => ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "too_many_streams", "this query service holds as many streams as it may; retry later"),
        Refused::ClientFull => ApiError::too_many_requests(
            format!("at most {} streams per client at once; close one first", state.live.settings().per_client),
            Duration::from_secs(5),
        ),
    })
}

/// The stream of `name` events: what `render` makes of the first view, then
/// of every newer one, each after the last id sent, until `lifetime` is over
/// or the hub drops the stream.
fn messages(
    name: &'static str,
    first: Document,
    subscription: Subscription,
    sent: i64,
    lifetime: Duration,
    render: impl Fn(&Document, i64) -> Vec<Message> + Send + Sync + 'static,
) -> impl Stream<Item = Result<Event, Infallible>> + Send {
    let deadline = Instant::now() + lifetime;
    let state = (Some(Arc::new(first)), subscription, sent);
    let render = Arc::new(render);
    let updates = stream::unfold(state, move |(first, mut subscription, sent)| {
        let render = render.clone();
        async move {
            let view = match first {
                Some(view) => view,
                None => tokio::time::timeout_at(deadline, subscription.documents.recv()).await.ok().flatten()?,
            };
            let messages = render(&view, sent);
            let sent = messages.last().map_or(sent, |m| m.id);
            metrics::counter!("query_live_messages_total", "stream" => name).increment(messages.len() as u64);
            let events = messages.into_iter().map(move |m| Ok(Event::default().event(name).id(m.id.to_string()).data(m.data.to_string())));
            Some((stream::iter(events), (None, subscription, sent)))
        }
    });
    stream::once(async { Ok(Event::default().retry(RECONNECT)) }).chain(updates.flatten())
}

fn respond(events: impl Stream<Item = Result<Event, Infallible>> + Send + 'static) -> Response {
    let mut response = Sse::new(events).keep_alive(KeepAlive::new().interval(KEEP_ALIVE)).into_response();
    // A buffering proxy (nginx) would hold the messages back.
    response.headers_mut().insert("x-accel-buffering", HeaderValue::from_static("no"));
    response
}

const PAGE: &str = include_str!("live/order.html");
const SCRIPT: &str = include_str!("live/order.js");

/// The order page: it reads the order id from its path and the token from
/// its fragment (which the browser never sends), and follows the order's
/// stream with EventSource.
pub async fn order_page(Path(_id): Path<String>) -> Response {
    static_file(PAGE, "text/html; charset=utf-8")
}

pub async fn order_script() -> Response {
    static_file(SCRIPT, "text/javascript; charset=utf-8")
}

fn static_file(body: &'static str, content_type: &'static str) -> Response {
    let headers = [
        (header::CONTENT_TYPE, content_type),
        (header::CONTENT_SECURITY_POLICY, "default-src 'self'; style-src 'self' 'unsafe-inline'; frame-ancestors 'none'"),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::REFERRER_POLICY, "no-referrer"),
    ];
    (headers, body).into_response()
}
