//! Writes whose outcome is unknown. A write that timed out or failed on the
//! way is not cancelled at the server: a frozen FerretDB keeps the request and
//! runs it once it runs again, possibly after this process wrote the same
//! document again on top of it. FerretDB v1's replace is a read and a write
//! with nothing between them to stop a concurrent one (tests/tests/views.rs),
//! so such a late request can put an older document back: a chaos run lost a
//! PaymentCaptured from an order view that way after a 21 s FerretDB freeze.
//!
//! A document whose write went unanswered is therefore watched for a while
//! ([`WATCH`] after the server last failed to answer a look at it): when it is
//! found at a lower revision than this process last wrote, the newer document
//! is written back over it, and a fold that meets the lower revision writes
//! over it too ([`rolled_back`]); `view_rollbacks_total` counts both. A
//! document evicted from the cache meanwhile cannot be compared, and so not
//! restored, this way; `scripts/rebuild-views` can.

use std::{
    collections::HashMap,
    sync::{LazyLock, Mutex, OnceLock},
    time::{Duration, Instant},
};

use mongodb::{
    bson::{doc, Document},
    Collection,
};
use tracing::{info, warn};

use super::{at_revision, document_lock, revision_of, Key, DOCUMENTS, REVISION, WRITE_TIMEOUT};

/// How long a late request is waited for once the server answers again.
const WATCH: Duration = Duration::from_secs(60);
const EVERY: Duration = Duration::from_secs(1);

/// Each watched document, with its collection and since when it is watched.
type Watched = HashMap<Key, (Collection<Document>, Instant)>;

static IN_DOUBT: LazyLock<Mutex<Watched>> = LazyLock::new(Default::default);

fn in_doubt() -> std::sync::MutexGuard<'static, Watched> {
    IN_DOUBT.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Watches `key` from now on (a write of it went unanswered).
pub(super) fn unanswered(collection: &Collection<Document>, key: &Key) {
    in_doubt().insert(key.clone(), (collection.clone(), Instant::now()));
    static WATCHER: OnceLock<()> = OnceLock::new();
    WATCHER.get_or_init(|| {
        tokio::spawn(watch());
    });
}

/// The revision a watched document was found at, when it is lower than
/// `newest` (what this process last wrote): a late write put it back.
pub(super) async fn rolled_back(collection: &Collection<Document>, key: &Key, newest: i64) -> mongodb::error::Result<Option<i64>> {
    if !in_doubt().contains_key(key) {
        return Ok(None);
    }
    let found = collection.find_one(doc! { "_id": &key.1 }).await?;
    let revision = found.as_ref().map(revision_of).filter(|&found| found < newest);
    if revision.is_some() {
        warn!(document = %format!("{} {}", key.0, key.1), newest, found = ?revision, "a late write put an older document back; writing the newer one over it");
        metrics::counter!("view_rollbacks_total").increment(1);
    }
    Ok(revision)
}

async fn watch() {
    loop {
        tokio::time::sleep(EVERY).await;
        let watched: Vec<(Key, Collection<Document>, Instant)> = in_doubt().iter().map(|(k, (c, since))| (k.clone(), c.clone(), *since)).collect();
        for (key, collection, since) in watched {
            let looked = tokio::time::timeout(WRITE_TIMEOUT, restore(&collection, &key)).await;
            let mut in_doubt = in_doubt();
            match looked {
                Ok(Ok(())) if since.elapsed() > WATCH => {
                    // Unless it went unanswered again meanwhile.
                    if in_doubt.get(&key).is_some_and(|(_, s)| *s == since) {
                        in_doubt.remove(&key);
                    }
                }
                Ok(Ok(())) => {}
                // The server still does not answer: a late request can still come.
                Ok(Err(_)) | Err(_) => {
                    in_doubt.insert(key, (collection, Instant::now()));
                }
            }
        }
    }
}

/// Writes the cached document back over an older one found in its place.
async fn restore(collection: &Collection<Document>, key: &Key) -> mongodb::error::Result<()> {
    let _one_writer = document_lock(key).lock().await;
    let Some(found) = collection.find_one(doc! { "_id": &key.1 }).await? else { return Ok(()) };
    let found_revision = revision_of(&found);
    let Some(mut newest) = DOCUMENTS.get(key) else {
        return Ok(());
    };
    let newest_revision = revision_of(&newest);
    if found_revision >= newest_revision {
        return Ok(());
    }
    newest.insert(REVISION, newest_revision + 1);
    if collection.replace_one(at_revision(&key.1, found_revision), &newest).await?.matched_count == 1 {
        info!(document = %format!("{} {}", key.0, key.1), found_revision, restored = newest_revision + 1, "restored a document a late write had put back");
        metrics::counter!("view_rollbacks_total").increment(1);
        DOCUMENTS.insert(key.clone(), newest);
    }
    Ok(())
}
