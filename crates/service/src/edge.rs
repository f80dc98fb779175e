//! The HTTP edge against abusive or broken clients: token buckets per
//! customer (the verified JWT subject, on write requests) and per client
//! address (the provider webhook, the query service), answered with 429, a
//! `Retry-After` and the JSON error body before any handler runs; and, in
//! [`crate::ops::serve`], a cap on open connections and a deadline for a
//! request's headers, so that slow sockets cannot hold the server.

use std::{
    net::{IpAddr, SocketAddr},
    num::NonZeroU32,
    sync::Arc,
    time::Duration,
};

use axum::{
    extract::{ConnectInfo, Request, State},
    http::Method,
    middleware::{self, Next},
    response::{IntoResponse, Response},
    Router,
};
use governor::{clock::Clock, DefaultKeyedRateLimiter, Quota};
use serde::Deserialize;

use crate::{
    auth::{bearer_token, Caller, JwtKeys},
    error::ApiError,
};

/// `[http.limits]` of every service (`OUTFLOW_HTTP__LIMITS__*`).
#[derive(Clone, Debug, Deserialize)]
#[serde(default)]
pub struct EdgeLimits {
    /// Write requests per second of one customer (JWT subject), and the burst.
    pub customer_per_second: u32,
    pub customer_burst: u32,
    /// Requests per second of one client address where there is no customer
    /// (the provider webhook, the query service), and the burst.
    pub client_per_second: u32,
    pub client_burst: u32,
    /// Open connections at most; one more is closed at once.
    pub max_connections: usize,
    /// A request's headers must arrive within this long, or the connection is closed.
    pub header_read_timeout_ms: u64,
}

impl Default for EdgeLimits {
    fn default() -> Self {
        EdgeLimits {
            customer_per_second: 50,
            customer_burst: 100,
            client_per_second: 500,
            client_burst: 1000,
            max_connections: 1024,
            header_read_timeout_ms: 5000,
        }
    }
}

/// One token bucket per key (customer or address).
#[derive(Clone)]
pub struct RateLimit {
    limiter: Arc<DefaultKeyedRateLimiter<String>>,
}

impl RateLimit {
    pub fn new(per_second: u32, burst: u32) -> Self {
        let quota = Quota::per_second(NonZeroU32::new(per_second).unwrap_or(NonZeroU32::MIN))
            .allow_burst(NonZeroU32::new(burst.max(per_second)).unwrap_or(NonZeroU32::MIN));
        let limiter = Arc::new(DefaultKeyedRateLimiter::keyed(quota));
        // Buckets that refilled are forgotten, so that a stream of new keys
        // cannot grow the map without bound.
        let weak = Arc::downgrade(&limiter);
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(async move {
                while let Some(limiter) = weak.upgrade() {
                    limiter.retain_recent();
                    drop(limiter);
                    tokio::time::sleep(Duration::from_secs(30)).await;
                }
            });
        }
        RateLimit { limiter }
    }

    pub fn per_customer(limits: &EdgeLimits) -> Self {
        Self::new(limits.customer_per_second, limits.customer_burst)
    }

    pub fn per_client(limits: &EdgeLimits) -> Self {
        Self::new(limits.client_per_second, limits.client_burst)
    }

    /// Takes one token of `key`'s bucket, or answers 429 with the wait.
    pub fn check(&self, key: &str, whose: &'static str) -> Result<(), ApiError> {
        self.limiter.check_key(&key.to_owned()).map_err(|not_until| {
            let wait = not_until.wait_time_from(governor::clock::DefaultClock::default().now());
            metrics::counter!("http_rate_limited_total", "key" => whose).increment(1);
            ApiError::too_many_requests(format!("too many requests from this {whose}; retry after the Retry-After header's seconds"), wait)
        })
    }
}

/// Write requests (every method but GET and HEAD) with a valid bearer token
/// count against their customer's bucket, and carry the verified [`Caller`]
/// on to the handler, which then does not verify the token again. A request
/// without a valid token passes on, to be refused with 401 by its handler.
pub fn limit_customers<S: Clone + Send + Sync + 'static>(router: Router<S>, keys: JwtKeys, limit: RateLimit) -> Router<S> {
    router.route_layer(middleware::from_fn_with_state((keys, limit), customer_gate))
}

async fn customer_gate(State((keys, limit)): State<(JwtKeys, RateLimit)>, mut request: Request, next: Next) -> Response {
    if !matches!(*request.method(), Method::GET | Method::HEAD) {
        if let Some(claims) = bearer_token(request.headers()).and_then(|token| keys.verify(token).ok()) {
            if let Err(refused) = limit.check(&claims.sub, "customer") {
                return refused.into_response();
            }
            request.extensions_mut().insert(Caller { id: claims.sub, role: claims.role });
        }
    }
    next.run(request).await
}

/// Every request counts against its client address's bucket (the address
/// comes from [`crate::ops::serve`]; a router served otherwise is not limited).
pub fn limit_clients<S: Clone + Send + Sync + 'static>(router: Router<S>, limit: RateLimit) -> Router<S> {
    router.route_layer(middleware::from_fn_with_state(limit, client_gate))
}

async fn client_gate(State(limit): State<RateLimit>, request: Request, next: Next) -> Response {
    if let Some(ConnectInfo(peer)) = request.extensions().get::<ConnectInfo<SocketAddr>>() {
        if let Err(refused) = limit.check(&client_key(peer.ip()), "client address") {
            return refused.into_response();
        }
    }
    next.run(request).await
}

/// Whose requests count together: an IPv4 address, or an IPv6 /64 (an IPv6
/// client usually holds a whole /64).
pub fn client_key(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => v4.to_string(),
            None => {
                let s = v6.segments();
                format!("{:x}:{:x}:{:x}:{:x}::/64", s[0], s[1], s[2], s[3])
            }
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_burst_past_the_bucket_is_refused_with_the_wait() {
        let limit = RateLimit::new(1, 3);
        for _ in 0..3 {
            assert!(limit.check("c-1", "customer").is_ok());
        }
        let refused = limit.check("c-1", "customer").unwrap_err();
        assert_eq!(refused.status, axum::http::StatusCode::TOO_MANY_REQUESTS);
        assert!(refused.retry_after.is_some_and(|wait| wait > Duration::ZERO && wait <= Duration::from_secs(1)), "{refused:?}");
        assert!(limit.check("c-2", "customer").is_ok(), "another customer has a bucket of its own");
    }

    #[test]
    fn an_ipv6_client_is_counted_by_its_64() {
        let a: IpAddr = "2001:db8:1:2::10".parse().unwrap();
        let b: IpAddr = "2001:db8:1:2:ffff::1".parse().unwrap();
        assert_eq!(client_key(a), client_key(b));
        assert_eq!(client_key("::ffff:10.0.0.1".parse().unwrap()), "10.0.0.1");
    }
}
