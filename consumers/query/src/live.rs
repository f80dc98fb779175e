//! Live streams of the views (Server-Sent Events).
//!
//! The views' store (FerretDB v1 on PostgreSQL) has no change streams, so the
//! [`Hub`] watches the documents somebody streams: every `poll` it reads each
//! of them once by `_id`, however many streams follow it, and hands a document
//! whose revision (`_rev`, one more per write of the view consumer) moved to
//! that document's streams. No stream reads the database on its own, and
//! nothing is read while nobody streams.
//!
//! What a stream sends is computed from the document alone, so a reconnect
//! with `Last-Event-ID` resumes exactly where the client stopped:
//! - an order's stream sends the order view's timeline, one message per
//!   event the view folded, numbered from 1 (the view's version: how many
//!   events it holds); a client that last saw `n` is sent `n + 1` onwards;
//! - a product's availability stream sends the availability at the product's
//!   version, whenever that version is newer than the last one sent. It is a
//!   stream of states: a version overtaken before it could be sent is not
//!   sent on its own, the newer figures stand for it.
//!
//! A stream's queue holds at most `buffer` documents: a client that does not
//! keep up is dropped (it reconnects with its `Last-Event-ID` and loses
//! nothing), so that one slow reader cannot make the service buffer without
//! bound.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::Duration,
};

use futures::{StreamExt, TryStreamExt};
use mongodb::{
    bson::{doc, Bson, Document},
    Database,
};
use outflow_service::views::{revision, REVISION};
use serde::Deserialize;
use tokio::sync::{mpsc, OwnedSemaphorePermit, Semaphore};

pub const ORDERS: &str = "order_views";
pub const PRODUCTS: &str = "product_availability";

/// `[live]` in the query service's settings.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LiveSettings {
    /// How often the watched documents' revisions are read.
    pub poll_ms: u64,
    /// Documents queued per stream before its client counts as too slow.
    pub buffer: usize,
    /// Streams open at once in this process; one more is refused with 503.
    pub max_streams: usize,
    /// Streams one client holds at once (a customer, or an address for the
    /// streams anyone may open); one more is refused with 429, so that one
    /// client cannot take every stream.
    pub per_client: usize,
    /// The longest a stream stays open (a customer's also ends when the
    /// token does); the client reconnects with its `Last-Event-ID`.
    pub max_lifetime_secs: u64,
}

impl Default for LiveSettings {
    fn default() -> Self {
        LiveSettings { poll_ms: 100, buffer: 32, max_streams: 1_000, per_client: 20, max_lifetime_secs: 600 }
    }
}

type Key = (&'static str, String);

/// One watched document: the revision last handed out and who streams it.
#[derive(Default)]
struct Watch {
    revision: Option<i64>,
    streams: Vec<mpsc::Sender<Arc<Document>>>,
}

impl Watch {
    /// Hands `document` to every stream that has room; a full queue drops
    /// its stream (the client is too slow), a closed one is gone already.
    /// How many were dropped for being slow.
    fn hand_out(&mut self, document: &Arc<Document>) -> usize {
        let before = self.streams.len();
        let mut slow = 0;
        self.streams.retain(|stream| match stream.try_send(document.clone()) {
            Ok(()) => true,
            Err(mpsc::error::TrySendError::Full(_)) => {
                slow += 1;
                false
            }
            Err(mpsc::error::TrySendError::Closed(_)) => false,
        });
        debug_assert!(self.streams.len() + slow <= before);
        slow
    }
}

/// The documents being streamed, and the task that watches them.
pub struct Hub {
    db: Database,
    settings: LiveSettings,
    watched: Mutex<HashMap<Key, Watch>>,
    slots: Arc<Semaphore>,
    clients: Arc<Mutex<HashMap<String, usize>>>,
}

/// A stream's place among the open ones and its client's, and its queue.
pub struct Subscription {
    pub documents: mpsc::Receiver<Arc<Document>>,
    _slot: OwnedSemaphorePermit,
    client: String,
    clients: Arc<Mutex<HashMap<String, usize>>>,
}

impl Drop for Subscription {
    fn drop(&mut self) {
        metrics::gauge!("query_live_streams").decrement(1.0);
        let mut clients = self.clients.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(held) = clients.get_mut(&self.client) {
            *held -= 1;
            if *held == 0 {
                clients.remove(&self.client);
            }
        }
    }
}

/// Why a stream could not start.
#[derive(Debug, PartialEq)]
pub enum Refused {
    /// `max_streams` are open, or the service is stopping.
    Full,
    /// This client holds `per_client` streams already.
    ClientFull,
}

impl Hub {
    pub fn new(db: Database, settings: LiveSettings) -> Arc<Self> {
        let slots = Arc::new(Semaphore::new(settings.max_streams));
        Arc::new(Hub { db, settings, watched: Mutex::default(), slots, clients: Arc::default() })
    }

    pub fn settings(&self) -> &LiveSettings {
        &self.settings
    }

    /// A queue of the new versions of document `id` of `collection`, for
    /// `client`'s stream.
    pub fn subscribe(&self, collection: &'static str, id: &str, client: String) -> Result<Subscription, Refused> {
        let slot = self.slots.clone().try_acquire_owned().map_err(|_| Refused::Full)?;
        {
            let mut clients = self.clients.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
            let held = clients.entry(client.clone()).or_default();
            if *held >= self.settings.per_client {
                return Err(Refused::ClientFull);
            }
            *held += 1;
        }
        metrics::gauge!("query_live_streams").increment(1.0);
        let (sender, documents) = mpsc::channel(self.settings.buffer.max(1));
        let subscription = Subscription { documents, _slot: slot, client, clients: self.clients.clone() };
        let mut watched = self.watched();
        // Checked under the lock [`Hub::close`] takes: a stream that starts
        // as the service stops would otherwise outlive the hub.
        if self.slots.is_closed() {
            return Err(Refused::Full);
        }
        watched.entry((collection, id.to_owned())).or_default().streams.push(sender);
        Ok(subscription)
    }

    /// Ends every stream (the service is stopping): their queues close, so
    /// the connections finish and the graceful shutdown is not held open.
    pub fn close(&self) {
        let mut watched = self.watched();
        self.slots.close();
        watched.clear();
    }

    fn watched(&self) -> std::sync::MutexGuard<'_, HashMap<Key, Watch>> {
        self.watched.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Watches until [`Hub::close`]; a failed read is logged and tried again
    /// at the next poll (the streams stay open meanwhile).
    pub async fn run(self: Arc<Self>) {
        let mut ticks = tokio::time::interval(Duration::from_millis(self.settings.poll_ms.max(10)));
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        while !self.slots.is_closed() {
            ticks.tick().await;
            for collection in [ORDERS, PRODUCTS] {
                if let Err(e) = self.poll(collection).await {
                    tracing::warn!(error = %e, collection, "reading the streamed views failed; trying again");
                }
            }
        }
    }

    async fn poll(&self, collection: &'static str) -> anyhow::Result<()> {
        let ids: Vec<String> = {
            let mut watched = self.watched();
            // Streams whose client left; a document nobody streams any more.
            watched.retain(|_, watch| {
                watch.streams.retain(|s| !s.is_closed());
                !watch.streams.is_empty()
            });
            watched.keys().filter(|(c, _)| *c == collection).map(|(_, id)| id.clone()).collect()
        };
        metrics::gauge!("query_live_documents", "collection" => collection).set(ids.len() as f64);
        if ids.is_empty() {
            return Ok(());
        }
        // One lookup by `_id` per document: FerretDB v1 answers those from
        // the index, but reads the whole collection for an `$in` (seconds
        // on a shop's order views).
        let documents = self.db.collection::<Document>(collection);
        let found: Vec<Option<Document>> = futures::stream::iter(ids)
            .map(|id| {
                let documents = documents.clone();
                async move { documents.find_one(doc! { "_id": id }).await }
            })
            .buffer_unordered(LOOKUPS_IN_FLIGHT)
            .try_collect()
            .await?;
        let mut watched = self.watched();
        for document in found.into_iter().flatten() {
            let (Ok(id), rev) = (document.get_str("_id").map(str::to_owned), revision(&document)) else { continue };
            let Some(watch) = watched.get_mut(&(collection, id.clone())) else { continue };
            // Any other revision: one that went back (views rebuilt, or a late
            // write undone) is handed out too, and the stream's own version
            // filter decides what is new.
            if watch.revision == Some(rev) {
                continue;
            }
            watch.revision = Some(rev);
            let slow = watch.hand_out(&Arc::new(document));
            if slow > 0 {
                metrics::counter!("query_live_dropped_total", "collection" => collection).increment(slow as u64);
                tracing::info!(collection, %id, streams = slow, "dropped streams that did not keep up");
            }
        }
        Ok(())
    }
}

/// How many of a poll's lookups run at once.
const LOOKUPS_IN_FLIGHT: usize = 16;

/// One message of a stream: its id (the view's version) and its JSON data.
#[derive(Debug, PartialEq)]
pub struct Message {
    pub id: i64,
    pub data: serde_json::Value,
}

/// The order view's events after the `sent` first ones, each with the view
/// as it is now (without its timeline, which the stream itself is).
pub fn order_messages(view: &Document, sent: i64) -> Vec<Message> {
    let Ok(timeline) = view.get_array("timeline") else { return Vec::new() };
    let mut order = view.clone();
    order.remove("timeline");
    order.remove(REVISION);
    let id = order.remove("_id").unwrap_or(Bson::Null);
    order.insert("order_id", id);
    let order = Bson::Document(order).into_relaxed_extjson();
    timeline
        .iter()
        .enumerate()
        .map(|(i, entry)| (i as i64 + 1, entry))
        .filter(|(position, _)| *position > sent)
        .map(|(position, entry)| {
            let data = serde_json::json!({ "version": position, "event": entry.clone().into_relaxed_extjson(), "order": order });
            Message { id: position, data }
        })
        .collect()
}

/// The product's availability, when its version is newer than `sent`.
pub fn availability_message(view: &Document, sent: i64) -> Option<Message> {
    let version = match view.get("version")? {
        Bson::Int32(v) => i64::from(*v),
        Bson::Int64(v) => *v,
        _ => return None,
    };
    if version <= sent {
        return None;
    }
    let mut availability = view.clone();
    availability.remove(REVISION);
    let sku = availability.remove("_id").unwrap_or(Bson::Null);
    availability.insert("sku", sku);
    Some(Message { id: version, data: Bson::Document(availability).into_relaxed_extjson() })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn view(events: &[&str]) -> Document {
        let timeline: Vec<Document> = events.iter().map(|t| doc! { "event_id": format!("id-{t}"), "type": *t }).collect();
        doc! { "_id": "o-1", "_rev": 3, "customer_id": "c", "status": "CONFIRMED", "timeline": timeline }
    }

    #[test]
    fn an_order_stream_resumes_after_the_last_event_it_sent_without_gap_or_repeat() {
        let three = view(&["OrderPlaced", "StockReserved", "OrderConfirmed"]);
        let all = order_messages(&three, 0);
        assert_eq!(all.iter().map(|m| m.id).collect::<Vec<_>>(), [1, 2, 3]);
        assert_eq!(all[2].data["event"]["type"], "OrderConfirmed");
        assert_eq!(all[0].data["order"]["order_id"], "o-1");
        assert!(all[0].data["order"].get("timeline").is_none() && all[0].data["order"].get("_rev").is_none());

        let resumed = order_messages(&three, 2);
        assert_eq!(resumed.iter().map(|m| m.id).collect::<Vec<_>>(), [3]);
        assert!(order_messages(&three, 3).is_empty());
        // A view that holds fewer events than the client saw (rebuilt) sends nothing until it grows past them.
        assert!(order_messages(&view(&["OrderPlaced"]), 3).is_empty());
    }

    #[test]
    fn an_availability_stream_sends_only_newer_versions() {
        let product = doc! { "_id": "SKU-1", "_rev": 9, "on_hand": 5, "reserved": 2, "available": 3, "version": 7_i64 };
        let message = availability_message(&product, 6).expect("a newer version");
        assert_eq!(message.id, 7);
        assert_eq!(message.data, serde_json::json!({ "sku": "SKU-1", "on_hand": 5, "reserved": 2, "available": 3, "version": 7 }));
        assert_eq!(availability_message(&product, 7), None);
        assert_eq!(availability_message(&doc! { "_id": "SKU-2" }, 0), None);
    }

    /// A hub on a MongoDB client that never connects: subscribing reads nothing.
    async fn hub(settings: LiveSettings) -> Arc<Hub> {
        let options = mongodb::options::ClientOptions::parse("mongodb://127.0.0.1:9/").await.unwrap();
        Hub::new(mongodb::Client::with_options(options).unwrap().database("unused"), settings)
    }

    #[tokio::test]
    async fn a_client_holds_its_share_of_the_streams_and_none_start_once_the_hub_closes() {
        let hub = hub(LiveSettings { max_streams: 3, per_client: 2, ..LiveSettings::default() }).await;
        let first = hub.subscribe(ORDERS, "o-1", "a".into()).unwrap();
        let _second = hub.subscribe(PRODUCTS, "SKU-1", "a".into()).unwrap();
        assert_eq!(hub.subscribe(ORDERS, "o-2", "a".into()).err(), Some(Refused::ClientFull));
        let _other = hub.subscribe(ORDERS, "o-1", "b".into()).unwrap();
        assert_eq!(hub.subscribe(ORDERS, "o-3", "c".into()).err(), Some(Refused::Full), "max_streams in all");
        drop(first);
        let again = hub.subscribe(ORDERS, "o-2", "a".into()).expect("a closed stream gives its places back");
        hub.close();
        drop(again);
        assert_eq!(hub.subscribe(ORDERS, "o-4", "d".into()).err(), Some(Refused::Full), "closed");
        assert!(hub.watched().is_empty(), "closing forgets every stream, so they end");
    }

    #[tokio::test]
    async fn a_stream_that_does_not_keep_up_is_dropped_and_the_others_keep_theirs() {
        let mut watch = Watch::default();
        let (fast, mut fast_queue) = mpsc::channel(2);
        let (slow, slow_queue) = mpsc::channel(2);
        let (gone, gone_queue) = mpsc::channel(2);
        watch.streams = vec![fast, slow, gone];
        drop(gone_queue);
        let document = Arc::new(doc! { "_id": "SKU-1" });
        assert_eq!(watch.hand_out(&document), 0);
        assert_eq!(watch.streams.len(), 2, "a closed stream is forgotten");
        fast_queue.recv().await.expect("the fast stream's document");
        assert_eq!(watch.hand_out(&document), 0);
        fast_queue.recv().await.expect("the fast stream's document");
        assert_eq!(watch.hand_out(&document), 1, "the slow stream's queue was full");
        assert_eq!(watch.streams.len(), 1);
        assert!(fast_queue.recv().await.is_some());
        // The dropped stream's queue is closed: its client sees the end of the stream.
        let mut slow_queue = slow_queue;
        while slow_queue.recv().await.is_some() {}
    }
}
