//! One view consumer per views database, enforced: a lease document that a
//! second process cannot take while the first renews it.
//!
//! Two folding processes are not safe on FerretDB v1: a conditional replace
//! (`{_id, _rev}`) is not atomic there. Two concurrent replaces at the same
//! revision both succeeded for 251 of 300 documents (tests/tests/views.rs
//! shows it), so the in-process lock of [`crate::fold::write`] is the only
//! thing that serializes writes to a document. An insert of an existing `_id`
//! does fail atomically, so the lease is taken by inserting it; an expired
//! lease (its holder was killed) is deleted and taken again. A process that
//! finds the lease held and renewed for longer than its time to live refuses to
//! start, saying why.

use std::time::Duration;

use anyhow::{bail, Context};
use mongodb::{
    bson::{doc, DateTime, Document},
    error::{ErrorKind, WriteFailure},
    Collection, Database,
};

const LEASE: &str = "views-consumer";

/// A lease held by this process; renewed by [`Lease::keep`].
pub struct Lease {
    leases: Collection<Document>,
    holder: String,
    ttl: Duration,
}

impl Lease {
    /// Takes the lease, waiting out one time to live for a holder that died
    /// without releasing it; fails when another process keeps renewing it.
    pub async fn acquire(db: &Database, ttl: Duration) -> anyhow::Result<Self> {
        let leases = db.collection::<Document>("consumer_leases");
        let holder = format!("{}:{}:{}", hostname(), std::process::id(), uuid::Uuid::new_v4().simple());
        let until = tokio::time::Instant::now() + ttl + ttl / 2;
        loop {
            let now = DateTime::now();
            let lease = doc! { "_id": LEASE, "holder": &holder, "expires_at": expiry(now, ttl) };
            match leases.insert_one(lease).await {
                Ok(_) => return Ok(Lease { leases, holder, ttl }),
                Err(e) if duplicate(&e) => {}
                Err(e) => return Err(e).context("taking the views-consumer lease"),
            }
            let current = leases.find_one(doc! { "_id": LEASE }).await?.unwrap_or_default();
            let expired = current.get_datetime("expires_at").is_ok_and(|at| *at < now);
            if expired {
                leases.delete_one(doc! { "_id": LEASE, "holder": current.get_str("holder").unwrap_or_default() }).await?;
                continue;
            }
            if tokio::time::Instant::now() > until {
                bail!(
                    "another views consumer ({}) is folding into this views database and renews its lease; run one views consumer per views database (FerretDB v1 cannot serialize two: see README, The saga)",
                    current.get_str("holder").unwrap_or("unknown holder")
                );
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    }

    /// Renews the lease every third of its time to live; returns (an error)
    /// only when the lease was lost, so that the caller stops folding.
    pub async fn keep(&self) -> anyhow::Error {
        loop {
            tokio::time::sleep(self.ttl / 3).await;
            match self.renew().await {
                Ok(true) => {}
                Ok(false) => return anyhow::anyhow!("the views-consumer lease was taken by another process; stopping"),
                Err(e) => tracing::warn!(error = format!("{e:#}"), "renewing the views-consumer lease failed; trying again"),
            }
        }
    }

    async fn renew(&self) -> anyhow::Result<bool> {
        let renewed =
            self.leases.update_one(doc! { "_id": LEASE, "holder": &self.holder }, doc! { "$set": { "expires_at": expiry(DateTime::now(), self.ttl) } }).await?;
        Ok(renewed.matched_count == 1)
    }

    /// Gives the lease up at a graceful stop, so a restart need not wait.
    pub async fn release(&self) {
        if let Err(e) = self.leases.delete_one(doc! { "_id": LEASE, "holder": &self.holder }).await {
            tracing::warn!(error = %e, "releasing the views-consumer lease failed; it expires by itself");
        }
    }
}

fn expiry(now: DateTime, ttl: Duration) -> DateTime {
    DateTime::from_millis(now.timestamp_millis() + ttl.as_millis() as i64)
}

fn duplicate(error: &mongodb::error::Error) -> bool {
    matches!(error.kind.as_ref(), ErrorKind::Write(WriteFailure::WriteError(w)) if w.code == 11000)
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname").map(|h| h.trim().to_owned()).unwrap_or_else(|_| "localhost".into())
}
