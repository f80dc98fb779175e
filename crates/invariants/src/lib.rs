//! # Layout
//!
//! The one checker of the saga's guarantees (DESIGN.md, "Guarantees";
//! `docs/invariants.md` states each rule), shared by the end-to-end tests,
//! the chaos test and `scripts/check-invariants`:
//!
//! - [`Sources`] (`sources`): the connections, from the `OUTFLOW_*` variables;
//! - [`wait_caught_up`] (`lag`): until every saga consumer group has no lag;
//! - `read`: the tables, the event and dead-letter topics and the views,
//!   scoped, into a [`Snapshot`] of plain rows;
//! - [`rules`]: one pure function per invariant over a snapshot, unit-tested;
//! - [`Report`] (`report`): held or broken, with the offending ids;
//! - `src/bin/outflow-check-invariants.rs`: the command.
//!
//! In a test, after its sagas ended:
//!
//! ```no_run
//! # async fn example(order: uuid::Uuid, sku: String) -> anyhow::Result<()> {
//! use outflow_invariants::{check_until_held, Options, Scope, Sources};
//! let sources = Sources::from_env().await?;
//! let scope = Scope::Only { orders: vec![order], skus: vec![sku] };
//! let report = check_until_held(&sources, &scope, &Options::from_env(), std::time::Duration::from_secs(30)).await?;
//! report.ensure_held()?;
//! # Ok(()) }
//! ```

mod lag;
mod read;
mod report;
pub mod rules;
pub mod snapshot;
mod sources;

use std::time::{Duration, Instant};

pub use lag::{look, wait_caught_up, Look, NotCaughtUp, GROUPS};
pub use report::{Invariant, Offence, Report};
pub use snapshot::Snapshot;
pub use sources::{Settings, Sources};

/// Which orders and SKUs a check looks at. Tests share one stack, so each
/// checks only what it made; `All` is for a quiet stack (chaos runs, users).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Scope {
    All,
    /// The orders are checked with their payments, reservations, events and
    /// views; each SKU whole (every reservation of it, in scope or not).
    Only {
        orders: Vec<uuid::Uuid>,
        skus: Vec<String>,
    },
}

impl Scope {
    /// A scope from order ids as text (what the REST API hands back) and SKUs.
    pub fn parse<O: AsRef<str>, S: AsRef<str>>(orders: &[O], skus: &[S]) -> anyhow::Result<Self> {
        let mut ids = orders
            .iter()
            .map(|o| uuid::Uuid::parse_str(o.as_ref()).map_err(|_| anyhow::anyhow!("order id {:?} is not a UUID", o.as_ref())))
            .collect::<anyhow::Result<Vec<_>>>()?;
        ids.sort_unstable();
        ids.dedup();
        let mut skus: Vec<String> = skus.iter().map(|s| s.as_ref().to_owned()).collect();
        skus.sort_unstable();
        skus.dedup();
        Ok(Scope::Only { orders: ids, skus })
    }

    fn describe(&self) -> String {
        match self {
            Scope::All => "all".into(),
            Scope::Only { orders, skus } => format!("{} orders, {} skus", orders.len(), skus.len()),
        }
    }
}

#[derive(Clone, Debug)]
pub struct Options {
    /// How long a payment may stay PENDING (`OUTFLOW_PAYMENT_DEADLINE_MS`).
    pub payment_deadline: Duration,
    /// How long after the deadline a saga may still be finishing.
    pub grace: Duration,
    /// How long reading one topic to its end may take.
    pub read_deadline: Duration,
}

impl Default for Options {
    fn default() -> Self {
        Options { payment_deadline: Duration::from_millis(20_000), grace: Duration::from_secs(30), read_deadline: Duration::from_secs(300) }
    }
}

impl Options {
    /// The defaults, with the payment deadline the stack runs with.
    pub fn from_env() -> Self {
        let deadline = std::env::var("OUTFLOW_PAYMENT_DEADLINE_MS").ok().and_then(|v| v.parse().ok());
        Options { payment_deadline: deadline.map_or(Options::default().payment_deadline, Duration::from_millis), ..Options::default() }
    }
}

/// Reads the scope from every source and decides every invariant. An error
/// means a source could not be read (its message names it), not a broken rule.
pub async fn check(sources: &Sources, scope: &Scope, options: &Options) -> anyhow::Result<Report> {
    let started = Instant::now();
    let snapshot = read::snapshot(sources, scope, options).await?;
    Ok(Report {
        scope: scope.describe(),
        invariants: rules::all(&snapshot, options),
        orders_checked: snapshot.orders.len(),
        skus_checked: snapshot.products.len(),
        records_read: snapshot.events.records_read,
        dead_letters_read: snapshot.dead_letters_read,
        kafka_duplicates: snapshot.events.redelivered,
        took_ms: u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
    })
}

/// Checks every second until every invariant holds or `deadline` passes, and
/// returns the last report: the views trail the tables by a moment.
pub async fn check_until_held(sources: &Sources, scope: &Scope, options: &Options, deadline: Duration) -> anyhow::Result<Report> {
    let until = tokio::time::Instant::now() + deadline;
    loop {
        let report = check(sources, scope, options).await?;
        if report.held() || tokio::time::Instant::now() + Duration::from_secs(1) > until {
            return Ok(report);
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_parsed_scope_has_each_id_once_and_refuses_a_bad_one() {
        let id = uuid::Uuid::from_u128(1).to_string();
        assert_eq!(Scope::parse(&[&id, &id], &["MUG"]).unwrap(), Scope::Only { orders: vec![uuid::Uuid::from_u128(1)], skus: vec!["MUG".into()] });
        assert!(Scope::parse(&["nope"], &[] as &[&str]).is_err());
    }
}
