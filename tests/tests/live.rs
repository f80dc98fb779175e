//! The query service's live streams, read by clients nobody here wrote:
//! Python's httpx with httpx-sse (`tests/sse/follow.py`; scripts/test installs
//! them and sets `OUTFLOW_SSE_PYTHON`), and headless Chromium's EventSource on
//! the order page the query service serves, driven over the DevTools protocol.
//! Needs the stack (scripts/up).

mod shop;

use std::{process::Stdio, time::Duration};

use anyhow::{bail, Context, Result};
use futures::{SinkExt, StreamExt};
use serde_json::{json, Value};
use shop::{Shop, INVENTORY, QUERY};
use tokio::{
    io::{AsyncBufReadExt, BufReader, Lines},
    process::{Child, ChildStdout, Command},
};

/// How long one line of a stream, or a page's state, may take.
const WAIT: Duration = Duration::from_secs(60);

/// One run of the httpx-sse client, read line by line.
struct Follower {
    _child: Child,
    lines: Lines<BufReader<ChildStdout>>,
    url: String,
}

impl Follower {
    fn start(url: &str, token: Option<&str>, last_event_id: Option<i64>) -> Self {
        let python = std::env::var("OUTFLOW_SSE_PYTHON").unwrap_or_else(|_| "python3".to_owned());
        let mut command = Command::new(python);
        command.arg(concat!(env!("CARGO_MANIFEST_DIR"), "/sse/follow.py")).arg(url);
        if let Some(token) = token {
            command.args(["--token", token]);
        }
        if let Some(id) = last_event_id {
            command.args(["--last-event-id", &id.to_string()]);
        }
        let mut child = command.stdout(Stdio::piped()).kill_on_drop(true).spawn().expect("the SSE client starts (OUTFLOW_SSE_PYTHON)");
        let lines = BufReader::new(child.stdout.take().expect("piped")).lines();
        Follower { _child: child, lines, url: url.to_owned() }
    }

    async fn line(&mut self) -> Value {
        let line = tokio::time::timeout(WAIT, self.lines.next_line()).await;
        let line = line.unwrap_or_else(|_| panic!("no line from the stream {} within {WAIT:?}", self.url));
        let line = line.expect("reading the client").unwrap_or_else(|| panic!("the client of {} ended", self.url));
        serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line}"))
    }

    /// The stream's head: it must be a 200 event stream.
    async fn opened(mut self) -> Self {
        let head = self.line().await;
        assert_eq!(head["status"], 200, "{}: {head}", self.url);
        assert!(head["content_type"].as_str().unwrap_or_default().starts_with("text/event-stream"), "{head}");
        self
    }

    /// The `name` events, up to and including the one with id `last`.
    async fn until_id(&mut self, name: &str, last: i64) -> Vec<Value> {
        let mut events = Vec::new();
        loop {
            let line = self.line().await;
            assert!(line.get("end").is_none(), "{} ended before event {last}: {events:?}", self.url);
            if line["event"] != name {
                continue;
            }
            let id: i64 = line["id"].as_str().and_then(|id| id.parse().ok()).unwrap_or_else(|| panic!("an event without a numeric id: {line}"));
            events.push(line);
            if id >= last {
                return events;
            }
        }
    }
}

fn ids(events: &[Value]) -> Vec<i64> {
    events.iter().map(|e| e["id"].as_str().unwrap().parse().unwrap()).collect()
}

/// An order held in transit at the carrier, once the query service shows it.
async fn order_in_transit(shop: &Shop, customer: &str) -> (String, String) {
    let sku = shop.product(5).await;
    let order = shop.place(customer, &[(&sku, 1)]).await;
    shop.wait_shipment(&order, "IN_TRANSIT").await;
    (order, sku)
}

/// The order's view once delivery has ended it, and its timeline's length.
async fn completed_view(shop: &Shop, order: &str) -> (Value, i64) {
    let url = format!("{QUERY}/v1/orders/{order}");
    let view = shop.until_json(&url, &shop.admin(), |v| v["status"] == "COMPLETED" && v["shipment"]["status"] == "DELIVERED").await;
    let length = view["timeline"].as_array().map_or(0, Vec::len) as i64;
    (view, length)
}

#[tokio::test]
#[ignore = "needs the stack (scripts/up) and httpx-sse (scripts/test)"]
async fn an_order_stream_sends_every_event_once_live_and_resumes_after_its_last_event_id() {
    let shop = Shop::new().await;
    let customer = format!("live-{}", uuid::Uuid::new_v4().simple());
    let (order, _) = order_in_transit(&shop, &customer).await;
    let token = shop.customer(&customer);
    let url = format!("{QUERY}/v1/orders/{order}/events");
    let in_transit = shop.until_json(&format!("{QUERY}/v1/orders/{order}"), &token, |v| v["shipment"]["status"] == "IN_TRANSIT").await;
    let so_far = in_transit["timeline"].as_array().map_or(0, Vec::len) as i64;

    let mut live = Follower::start(&url, Some(&token), None).opened().await;
    let mut events = live.until_id("order", so_far).await;
    // Delivered while the stream is open: the rest arrives live.
    shop.ship(&order, "deliver").await;
    let (view, length) = completed_view(&shop, &order).await;
    events.extend(live.until_id("order", length).await);

    assert_eq!(ids(&events), (1..=length).collect::<Vec<_>>(), "every event of the view once, numbered by the view's version");
    let sent: Vec<&Value> = events.iter().map(|e| &e["data"]["event"]["event_id"]).collect();
    let timeline: Vec<&Value> = view["timeline"].as_array().unwrap().iter().map(|e| &e["event_id"]).collect();
    assert_eq!(sent, timeline, "the stream's events are the view's timeline, in its order");
    let last = &events.last().unwrap()["data"];
    assert_eq!((&last["order"]["order_id"], &last["order"]["status"]), (&json!(order), &json!("COMPLETED")));
    let types: Vec<&str> = events.iter().filter_map(|e| e["data"]["event"]["type"].as_str()).collect();
    for expected in ["OrderPlaced", "OrderConfirmed", "ShipmentRequested", "ShipmentDelivered", "OrderCompleted"] {
        assert!(types.contains(&expected), "{expected} missing from {types:?}");
    }

    // A reconnect after the third-to-last event gets exactly the last two.
    let mut resumed = Follower::start(&url, Some(&token), Some(length - 2)).opened().await;
    let rest = resumed.until_id("order", length).await;
    assert_eq!(ids(&rest), [length - 1, length]);
    assert_eq!(
        rest.iter().map(|e| &e["data"]["event"]).collect::<Vec<_>>(),
        events[events.len() - 2..].iter().map(|e| &e["data"]["event"]).collect::<Vec<_>>()
    );
}

#[tokio::test]
#[ignore = "needs the stack (scripts/up)"]
async fn an_order_stream_is_for_its_customer_and_admins_only() {
    let shop = Shop::new().await;
    let customer = format!("live-{}", uuid::Uuid::new_v4().simple());
    let (order, _) = order_in_transit(&shop, &customer).await;
    let url = format!("{QUERY}/v1/orders/{order}/events");
    shop.until_json(&format!("{QUERY}/v1/orders/{order}"), &shop.admin(), |v| v["customer_id"] == customer.as_str()).await;

    let refusals = [
        (shop.http.get(&url), 401, "missing_token"),
        (shop.http.get(&url).bearer_auth(shop.customer("someone-else")), 403, "forbidden"),
        (shop.http.get(format!("{url}?access_token=not-a-token")), 401, "invalid_token"),
        (shop.http.get(&url).bearer_auth(shop.customer(&customer)).header("Last-Event-ID", "-1"), 400, "invalid_last_event_id"),
        (shop.http.get(format!("{QUERY}/v1/orders/{}/events", uuid::Uuid::new_v4())).bearer_auth(shop.admin()), 404, "not_found"),
    ];
    for (request, status, code) in refusals {
        let response = request.send().await.unwrap();
        assert_eq!(response.status().as_u16(), status);
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["error"]["code"], code, "{body}");
    }
    // What EventSource does: the token in the query string.
    for token in [shop.customer(&customer), shop.admin()] {
        let response = shop.http.get(format!("{url}?access_token={token}")).send().await.unwrap();
        assert_eq!(response.status().as_u16(), 200);
        assert!(response.headers()["content-type"].to_str().unwrap().starts_with("text/event-stream"));
    }
}

#[tokio::test]
#[ignore = "needs the stack (scripts/up) and httpx-sse (scripts/test)"]
async fn an_availability_stream_sends_each_newer_version_and_resumes_after_its_last_event_id() {
    let shop = Shop::new().await;
    let sku = shop.product(5).await;
    let url = format!("{QUERY}/v1/products/{sku}/availability/events");
    let first = shop.until_json(&format!("{QUERY}/v1/products/{sku}/availability"), &shop.admin(), |v| v["on_hand"] == 5).await;
    let version = first["version"].as_i64().expect("a version");

    let mut live = Follower::start(&url, None, None).opened().await;
    assert_eq!(ids(&live.until_id("availability", version).await), [version], "the current availability first");
    let restocked = restock(&shop, &sku, 2).await;
    let events = live.until_id("availability", restocked).await;
    assert_eq!(ids(&events), [restocked]);
    assert_eq!(events[0]["data"], json!({"sku": sku, "on_hand": 7, "reserved": 0, "available": 7, "version": restocked}));

    // Back after the last version it saw: only what came after.
    let mut resumed = Follower::start(&url, None, Some(restocked)).opened().await;
    let again = restock(&shop, &sku, 3).await;
    let events = resumed.until_id("availability", again).await;
    assert_eq!(ids(&events), [again]);
    assert_eq!(events[0]["data"]["on_hand"], 10);
}

/// Restocks `sku` by `quantity`; the product's new version.
async fn restock(shop: &Shop, sku: &str, quantity: i64) -> i64 {
    let response =
        shop.http.post(format!("{INVENTORY}/v1/products/{sku}/restock")).bearer_auth(shop.admin()).json(&json!({"quantity": quantity})).send().await.unwrap();
    assert_eq!(response.status().as_u16(), 200);
    response.json::<Value>().await.unwrap()["version"].as_i64().expect("the product's version")
}

#[tokio::test]
#[ignore = "needs the stack (scripts/up) and Chromium"]
async fn the_order_page_follows_the_order_live_in_headless_chromium() -> Result<()> {
    let shop = Shop::new().await;
    let customer = format!("live-{}", uuid::Uuid::new_v4().simple());
    let (order, _) = order_in_transit(&shop, &customer).await;
    shop.until_json(&format!("{QUERY}/v1/orders/{order}"), &shop.admin(), |v| v["shipment"]["status"] == "IN_TRANSIT").await;
    let page = format!("{QUERY}/live/orders/{order}#access_token={}", shop.customer(&customer));
    let mut browser = Browser::open(&page).await?;

    let shown =
        browser.until(|page| page["status"] == "CONFIRMED" && page["types"].as_array().is_some_and(|t| t.contains(&json!("ShipmentRequested")))).await?;
    assert_eq!(shown["connection"], "open", "{shown}");
    shop.ship(&order, "deliver").await;
    let (_, length) = completed_view(&shop, &order).await;
    let shown = browser.until(|page| page["versions"].as_array().is_some_and(|v| v.len() as i64 >= length)).await?;
    assert_eq!(shown["versions"], json!((1..=length).collect::<Vec<_>>()), "{shown}");
    assert_eq!(shown["status"], "COMPLETED", "{shown}");
    Ok(())
}

/// Headless Chromium on one page, driven over the DevTools protocol.
struct Browser {
    _child: Child,
    socket: tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>,
    calls: u64,
    _profile: TempDir,
}

/// What the order page shows, read in the page.
const SHOWN: &str = "JSON.stringify({
    status: document.getElementById('status').dataset.status || null,
    connection: document.getElementById('connection').dataset.state || null,
    versions: [...document.querySelectorAll('#events li')].map((li) => Number(li.dataset.version)),
    types: [...document.querySelectorAll('#events li')].map((li) => li.dataset.type),
})";

impl Browser {
    async fn open(url: &str) -> Result<Self> {
        let profile = TempDir(std::env::temp_dir().join(format!("outflow-live-chromium-{}", uuid::Uuid::new_v4().simple())));
        let mut child = Command::new(outflow_stack_tests::chromium()?)
            .args(["--headless=new", "--no-sandbox", "--disable-gpu", "--no-first-run", "--remote-debugging-port=0"])
            .arg(format!("--user-data-dir={}", profile.0.display()))
            .arg("about:blank")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .context("starting chromium")?;
        let mut stderr = BufReader::new(child.stderr.take().context("piped")?).lines();
        let endpoint = tokio::time::timeout(WAIT, async {
            while let Some(line) = stderr.next_line().await? {
                if let Some(url) = line.strip_prefix("DevTools listening on ") {
                    return Ok(url.trim().to_owned());
                }
            }
            bail!("chromium ended before it listened for DevTools")
        })
        .await
        .context("chromium did not listen for DevTools")??;
        // Chromium keeps writing to stderr: keep reading it so that it never blocks.
        tokio::spawn(async move { while let Ok(Some(_)) = stderr.next_line().await {} });
        let address = endpoint.trim_start_matches("ws://").split('/').next().context("the DevTools address")?.to_owned();
        let targets: Value = reqwest::get(format!("http://{address}/json/list")).await?.json().await?;
        let page = targets.as_array().into_iter().flatten().find(|t| t["type"] == "page").context("no page in chromium")?;
        let (socket, _) = tokio_tungstenite::connect_async(page["webSocketDebuggerUrl"].as_str().context("the page's DevTools URL")?).await?;
        let mut browser = Browser { _child: child, socket, calls: 0, _profile: profile };
        browser.call("Page.navigate", json!({ "url": url })).await?;
        Ok(browser)
    }

    /// Calls a DevTools method and returns its result.
    async fn call(&mut self, method: &str, params: Value) -> Result<Value> {
        use tokio_tungstenite::tungstenite::Message;
        self.calls += 1;
        let id = self.calls;
        self.socket.send(Message::text(json!({ "id": id, "method": method, "params": params }).to_string())).await?;
        while let Some(message) = self.socket.next().await {
            let Message::Text(text) = message? else { continue };
            let answer: Value = serde_json::from_str(&text)?;
            if answer["id"] == id {
                if let Some(error) = answer.get("error") {
                    bail!("{method}: {error}");
                }
                return Ok(answer["result"].clone());
            }
        }
        bail!("chromium closed the DevTools connection")
    }

    /// What the page shows, once `done` says it is what the test waits for.
    async fn until(&mut self, done: impl Fn(&Value) -> bool) -> Result<Value> {
        let until = tokio::time::Instant::now() + WAIT;
        loop {
            let result = self.call("Runtime.evaluate", json!({ "expression": SHOWN, "returnByValue": true })).await?;
            let shown: Value = serde_json::from_str(result["result"]["value"].as_str().unwrap_or("null"))?;
            if done(&shown) {
                return Ok(shown);
            }
            if tokio::time::Instant::now() > until {
                bail!("the page did not show what was awaited within {WAIT:?}; it shows {shown}");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

/// A directory removed when the test ends.
struct TempDir(std::path::PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
