//! Notifications delivered to customers' webhooks, end to end: a receiver
//! served here fails, times out and recovers; every customer-visible event
//! reaches it once per event id, signed (checked with the Standard Webhooks
//! reference library); a delivery that keeps failing is parked and an admin
//! lists and replays it. Needs the stack (scripts/up), whose development
//! settings retry within seconds (2 s timeout, 5 attempts, 0.5 s doubling to 4 s).

mod shop;

use std::{
    collections::VecDeque,
    net::SocketAddr,
    sync::{Arc, Mutex},
    time::Duration,
};

use axum::{body::Bytes, extract::State, http::HeaderMap, http::StatusCode, routing::post, Router};
use serde_json::{json, Value};
use shop::Shop;

const NOTIFICATIONS: &str = "http://127.0.0.1:7105";
const WAIT: Duration = Duration::from_secs(90);

/// What the receiver does with the next POST.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Answer {
    Accept,
    Fail,
    /// Answers only after the dispatcher's 2 s timeout.
    Hang,
    /// Fails after 1.5 s: within the timeout, so the dispatcher is waiting
    /// for exactly as long as the receiver holds the request.
    Slow,
}

#[derive(Default)]
struct Inbox {
    /// Answers for the next POSTs, then `otherwise`.
    script: VecDeque<Answer>,
    otherwise: Option<Answer>,
    secret: Option<String>,
    /// Every POST: its webhook-id and how it was answered.
    attempts: Vec<(String, Answer)>,
    /// The accepted ones whose signature verified: (webhook-id, body).
    accepted: Vec<(String, Value)>,
    /// POSTs being answered now, and the most there ever were at once.
    open: usize,
    most_open: usize,
}

struct Receiver {
    address: SocketAddr,
    inbox: Arc<Mutex<Inbox>>,
}

impl Receiver {
    async fn start(script: &[Answer], otherwise: Answer) -> Receiver {
        let inbox = Arc::new(Mutex::new(Inbox { script: script.iter().copied().collect(), otherwise: Some(otherwise), ..Inbox::default() }));
        let app = Router::new().route("/hook", post(receive)).with_state(inbox.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Receiver { address, inbox }
    }

    fn url(&self) -> String {
        format!("http://{}/hook", self.address)
    }

    fn set(&self, secret: &str, otherwise: Answer) {
        let mut inbox = self.inbox.lock().unwrap();
        inbox.secret = Some(secret.to_owned());
        inbox.otherwise = Some(otherwise);
    }

    fn accepted(&self) -> Vec<(String, Value)> {
        self.inbox.lock().unwrap().accepted.clone()
    }

    fn attempts(&self) -> Vec<(String, Answer)> {
        self.inbox.lock().unwrap().attempts.clone()
    }

    /// The accepted deliveries, once `done` says they are what the test awaits.
    async fn until(&self, what: &str, done: impl Fn(&[(String, Value)]) -> bool) -> Vec<(String, Value)> {
        let until = tokio::time::Instant::now() + WAIT;
        loop {
            let accepted = self.accepted();
            if done(&accepted) {
                return accepted;
            }
            assert!(
                tokio::time::Instant::now() < until,
                "the receiver did not get {what} within {WAIT:?}; it got {accepted:?}, attempts {:?}",
                self.attempts()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

async fn receive(State(inbox): State<Arc<Mutex<Inbox>>>, headers: HeaderMap, body: Bytes) -> StatusCode {
    let id = headers.get("webhook-id").and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
    let (answer, secret) = {
        let mut inbox = inbox.lock().unwrap();
        let answer = inbox.script.pop_front().or(inbox.otherwise).unwrap_or(Answer::Fail);
        inbox.attempts.push((id.clone(), answer));
        (answer, inbox.secret.clone())
    };
    match answer {
        Answer::Fail => return StatusCode::INTERNAL_SERVER_ERROR,
        Answer::Slow => {
            {
                let mut inbox = inbox.lock().unwrap();
                inbox.open += 1;
                inbox.most_open = inbox.most_open.max(inbox.open);
            }
            tokio::time::sleep(Duration::from_millis(1500)).await;
            inbox.lock().unwrap().open -= 1;
            return StatusCode::SERVICE_UNAVAILABLE;
        }
        Answer::Hang => {
            tokio::time::sleep(Duration::from_secs(5)).await;
            return StatusCode::OK;
        }
        Answer::Accept => {}
    }
    let Some(secret) = secret else { return StatusCode::SERVICE_UNAVAILABLE };
    // The receiver's side of the contract, by the specification's own library:
    // the signature and a recent timestamp (an old one would be a replay).
    if standardwebhooks::Webhook::new(&secret).unwrap().verify(&body, &headers).is_err() {
        return StatusCode::UNAUTHORIZED;
    }
    let parsed: Value = serde_json::from_slice(&body).unwrap();
    inbox.lock().unwrap().accepted.push((id, parsed));
    StatusCode::NO_CONTENT
}

/// Registers a webhook with `token`: (its id, its secret).
async fn register(shop: &Shop, token: &str, body: Value) -> (String, String) {
    let response = shop.http.post(format!("{NOTIFICATIONS}/v1/webhooks")).bearer_auth(token).json(&body).send().await.unwrap();
    assert_eq!(response.status().as_u16(), 201);
    let webhook: Value = response.json().await.unwrap();
    (webhook["id"].as_str().unwrap().to_owned(), webhook["secret"].as_str().unwrap().to_owned())
}

async fn delete(shop: &Shop, token: &str, id: &str) {
    let response = shop.http.delete(format!("{NOTIFICATIONS}/v1/webhooks/{id}")).bearer_auth(token).send().await.unwrap();
    assert_eq!(response.status().as_u16(), 204);
}

fn kinds_of(accepted: &[(String, Value)], order: &str) -> Vec<String> {
    let mut kinds: Vec<String> =
        accepted.iter().filter(|(_, body)| body["data"]["order_id"] == order).map(|(_, body)| body["type"].as_str().unwrap().to_owned()).collect();
    kinds.sort();
    kinds
}

const DELIVERED_ORDER: [&str; 4] = ["order_confirmed", "order_delivered", "order_placed", "order_shipped"];

/// The deliveries of `order`'s notifications to `webhook` as (status,
/// attempts), once all `count` are DELIVERED (the receiver has them a moment
/// before the dispatcher notes it; a repeat would come before that).
async fn delivered(shop: &Shop, webhook: &str, order: &str, count: usize) -> Vec<(String, i32)> {
    let pool = sqlx::postgres::PgPoolOptions::new().max_connections(1).connect_lazy(&shop.stack.database_url("notifications")).unwrap();
    let until = tokio::time::Instant::now() + WAIT;
    loop {
        let rows: Vec<(String, i32)> = sqlx::query_as("select status, attempts from deliveries where webhook_id = $1::uuid and order_id = $2")
            .bind(webhook)
            .bind(order)
            .fetch_all(&pool)
            .await
            .unwrap();
        if rows.len() == count && rows.iter().all(|(status, _)| status == "DELIVERED") {
            return rows;
        }
        assert!(tokio::time::Instant::now() < until, "{count} deliveries of {order} to {webhook} not DELIVERED within {WAIT:?}: {rows:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Asserts that no delivery reached the receiver twice.
fn once_each(accepted: &[(String, Value)]) {
    let mut ids: Vec<&String> = accepted.iter().map(|(id, _)| id).collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), accepted.len(), "a notification came twice: {accepted:?}");
}

#[tokio::test]
#[ignore = "needs the stack (scripts/up)"]
async fn every_notification_reaches_its_webhooks_once_through_failures_and_timeouts() {
    let shop = Shop::new().await;
    let customer = format!("hooked-{}", uuid::Uuid::new_v4().simple());
    let receiver = Receiver::start(&[Answer::Fail, Answer::Hang, Answer::Fail, Answer::Hang], Answer::Accept).await;
    let (webhook, secret) = register(&shop, &shop.customer(&customer), json!({"url": receiver.url()})).await;
    receiver.set(&secret, Answer::Accept);
    let shop_wide_receiver = Receiver::start(&[], Answer::Accept).await;
    let (shop_wide, shop_wide_secret) = register(&shop, &shop.admin(), json!({"url": shop_wide_receiver.url(), "shop_wide": true})).await;
    shop_wide_receiver.set(&shop_wide_secret, Answer::Accept);

    let sku = shop.product(5).await;
    let order = shop.place(&customer, &[(&sku, 1)]).await;
    shop.ship(&order, "deliver").await;
    shop.wait_order(&order, "COMPLETED").await;

    receiver.until("the order's four notifications", |a| kinds_of(a, &order).len() >= 4).await;
    let attempts = delivered(&shop, &webhook, &order, 4).await;
    let accepted = receiver.accepted();
    once_each(&accepted);
    assert_eq!(kinds_of(&accepted, &order), DELIVERED_ORDER);
    for (id, body) in &accepted {
        assert_eq!((&body["data"]["event_id"], &body["data"]["customer_id"]), (&json!(id), &json!(customer)), "{body}");
    }
    // Two failures and two timeouts, each counted and retried.
    assert_eq!(attempts.iter().map(|(_, n)| n).sum::<i32>(), 4 + 4, "{attempts:?}");
    assert_eq!(receiver.attempts().len(), 8, "{:?}", receiver.attempts());
    // The shop-wide webhook gets the same notifications, signed with its own secret.
    shop_wide_receiver.until("the order's notifications, shop-wide", |a| kinds_of(a, &order).len() >= 4).await;
    delivered(&shop, &shop_wide, &order, 4).await;
    let everyone = shop_wide_receiver.accepted();
    once_each(&everyone);
    assert_eq!(kinds_of(&everyone, &order), DELIVERED_ORDER);

    delete(&shop, &shop.customer(&customer), &webhook).await;
    delete(&shop, &shop.admin(), &shop_wide).await;
}

#[tokio::test]
#[ignore = "needs the stack (scripts/up)"]
async fn a_delivery_that_keeps_failing_is_parked_and_an_admin_replays_it_once() {
    let shop = Shop::new().await;
    let customer = format!("hooked-{}", uuid::Uuid::new_v4().simple());
    let receiver = Receiver::start(&[], Answer::Fail).await;
    let (webhook, secret) = register(&shop, &shop.customer(&customer), json!({"url": receiver.url()})).await;
    receiver.set(&secret, Answer::Fail);
    let sku = shop.product(5).await;
    let order = shop.place(&customer, &[(&sku, 1)]).await;
    shop.wait_shipment(&order, "IN_TRANSIT").await;

    let parked = until_parked(&shop, &webhook, 3).await;
    for letter in &parked {
        assert_eq!(letter["attempts"], 5, "{letter}");
        assert!(letter["last_error"].as_str().unwrap().contains("500"), "{letter}");
        assert_eq!(letter["order_id"], order.as_str());
    }
    let listed = shop.http.get(format!("{NOTIFICATIONS}/v1/webhooks/dead-letters")).bearer_auth(shop.customer(&customer)).send().await.unwrap();
    assert_eq!(listed.status().as_u16(), 403, "dead letters are the admin's");
    assert!(receiver.accepted().is_empty());

    receiver.set(&secret, Answer::Accept);
    for letter in &parked {
        let event = letter["event_id"].as_str().unwrap();
        let url = format!("{NOTIFICATIONS}/v1/webhooks/{webhook}/deliveries/{event}/replay");
        let replayed = shop.http.post(&url).bearer_auth(shop.admin()).send().await.unwrap();
        assert_eq!(replayed.status().as_u16(), 202);
    }
    receiver.until("the replayed notifications", |a| a.len() >= 3).await;
    let attempts = delivered(&shop, &webhook, &order, 3).await;
    assert!(attempts.iter().all(|(_, n)| *n == 1), "each replay went out once and was accepted: {attempts:?}");
    let accepted = receiver.accepted();
    once_each(&accepted);
    assert_eq!(kinds_of(&accepted, &order), ["order_confirmed", "order_placed", "order_shipped"]);
    let event = parked[0]["event_id"].as_str().unwrap();
    let again = shop.http.post(format!("{NOTIFICATIONS}/v1/webhooks/{webhook}/deliveries/{event}/replay")).bearer_auth(shop.admin()).send().await.unwrap();
    assert_eq!(again.status().as_u16(), 409, "a delivered notification is not replayed");
    delete(&shop, &shop.customer(&customer), &webhook).await;
}

/// This webhook's dead letters, once there are `count`.
async fn until_parked(shop: &Shop, webhook: &str, count: usize) -> Vec<Value> {
    let until = tokio::time::Instant::now() + WAIT;
    loop {
        let page: Value = shop
            .http
            .get(format!("{NOTIFICATIONS}/v1/webhooks/dead-letters?per_page=500"))
            .bearer_auth(shop.admin())
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let ours: Vec<Value> = page["dead_letters"].as_array().unwrap().iter().filter(|l| l["webhook_id"] == webhook).cloned().collect();
        if ours.len() >= count {
            return ours;
        }
        assert!(tokio::time::Instant::now() < until, "{count} dead letters of {webhook} not listed within {WAIT:?}: {page}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test]
#[ignore = "needs the stack (scripts/up)"]
async fn a_registration_that_cannot_be_kept_is_refused_and_changes_nothing() {
    let shop = Shop::new().await;
    let customer = format!("hooked-{}", uuid::Uuid::new_v4().simple());
    let token = shop.customer(&customer);
    let url = format!("{NOTIFICATIONS}/v1/webhooks");
    let refusals = [
        (shop.http.post(&url).json(&json!({"url": "https://hooks.example.com/"})), 401, "missing_token"),
        (shop.http.post(&url).bearer_auth(&token).json(&json!({"url": "https://hooks.example.com/", "shop_wide": true})), 403, "forbidden"),
        (shop.http.post(&url).bearer_auth(&token).json(&json!({"url": "ftp://hooks.example.com/"})), 422, "invalid_url"),
        (shop.http.post(&url).bearer_auth(&token).json(&json!({"url": "https://user:secret@hooks.example.com/"})), 422, "invalid_url"),
        (shop.http.post(&url).bearer_auth(&token).json(&json!({"url": "https://hooks.example.com/", "events": ["all"]})), 422, "invalid_body"),
        (shop.http.post(&url).bearer_auth(&token).body("{").header("content-type", "application/json"), 400, "malformed_json"),
    ];
    for (request, status, code) in refusals {
        let response = request.send().await.unwrap();
        assert_eq!(response.status().as_u16(), status);
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["error"]["code"], code, "{body}");
    }
    let listed: Value = shop.http.get(&url).bearer_auth(&token).send().await.unwrap().json().await.unwrap();
    assert_eq!(listed, json!({"webhooks": []}), "a refused registration wrote nothing");

    // Another customer's webhook is neither listed nor deletable.
    let other = shop.customer(&format!("someone-else-{}", uuid::Uuid::new_v4().simple()));
    let (theirs, _) = register(&shop, &other, json!({"url": "https://hooks.example.com/theirs"})).await;
    let refused = shop.http.delete(format!("{url}/{theirs}")).bearer_auth(&token).send().await.unwrap();
    assert_eq!(refused.status().as_u16(), 404);
    let listed: Value = shop.http.get(&url).bearer_auth(&token).send().await.unwrap().json().await.unwrap();
    assert_eq!(listed, json!({"webhooks": []}));
    let listed: Value = shop.http.get(&url).bearer_auth(&other).send().await.unwrap().json().await.unwrap();
    assert_eq!(listed["webhooks"].as_array().map(Vec::len), Some(1), "{listed}");
    assert_eq!(listed["webhooks"][0]["id"], theirs.as_str());
    assert!(listed["webhooks"][0].get("secret").is_none(), "the secret is shown at registration only");
    delete(&shop, &other, &theirs).await;
}

/// `dispatch.per_webhook` as `scripts/services.sh` leaves it (the default),
/// with the stack's one notifications consumer.
const PER_WEBHOOK: usize = 4;

/// A receiver that holds every POST for 1.5 s, with many deliveries due,
/// gets at most `per_webhook` of them at once; another customer's webhook
/// is served meanwhile.
#[tokio::test]
#[ignore = "needs the stack (scripts/up)"]
async fn a_slow_receiver_holds_only_its_share_of_the_dispatcher() {
    let shop = Shop::new().await;
    let (slow_customer, customer) = (format!("slow-{}", uuid::Uuid::new_v4().simple()), format!("hooked-{}", uuid::Uuid::new_v4().simple()));
    let slow = Receiver::start(&[], Answer::Slow).await;
    let (slow_webhook, _) = register(&shop, &shop.customer(&slow_customer), json!({"url": slow.url()})).await;
    let receiver = Receiver::start(&[], Answer::Accept).await;
    let (webhook, secret) = register(&shop, &shop.customer(&customer), json!({"url": receiver.url()})).await;
    receiver.set(&secret, Answer::Accept);

    // Six orders make 18 notifications (placed, confirmed, shipped) due at
    // the slow receiver; the dispatcher has 32 places.
    let sku = shop.product(10).await;
    for _ in 0..6 {
        shop.place(&slow_customer, &[(&sku, 1)]).await;
    }
    let order = shop.place(&customer, &[(&sku, 1)]).await;
    receiver.until("the other customer's three notifications", |a| kinds_of(a, &order).len() >= 3).await;
    let until = tokio::time::Instant::now() + WAIT;
    while slow.attempts().len() < 18 {
        assert!(tokio::time::Instant::now() < until, "the slow receiver got {} POSTs within {WAIT:?}", slow.attempts().len());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let most = slow.inbox.lock().unwrap().most_open;
    assert!(most <= PER_WEBHOOK, "the slow receiver had {most} POSTs open at once; a webhook gets at most {PER_WEBHOOK}");
    assert!(most >= 2, "the slow receiver never had more than {most} POST open: the test did not load it");
    delete(&shop, &shop.customer(&slow_customer), &slow_webhook).await;
    delete(&shop, &shop.customer(&customer), &webhook).await;
}
