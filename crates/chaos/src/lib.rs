//! # Layout
//!
//! Faults under load (`scripts/chaos`): a steady stream of orders while, every
//! few seconds, one component of the running stack is SIGKILLed (PostgreSQL
//! also by an immediate shutdown) or frozen with SIGSTOP for 5 to 30 s, then
//! brought back; afterwards every order must end and every invariant of the
//! saga hold.
//!
//! - [`plan`]: the schedule of faults, a pure function of the seed;
//! - [`component`]: every component, how to find its processes, bring it back
//!   and ask whether it is healthy (the scripts' own functions);
//! - [`fault`]: one fault injected and recovered from, timed;
//! - [`load`]: the orders, tolerant of the faults (retried with their
//!   idempotency key), with their intended endings;
//! - [`completion`]: after the run: how long after each fault orders were
//!   confirmed again;
//! - [`recovery`]: after the run: everything healthy, connectors running,
//!   slots caught up, every order ended, every group caught up;
//! - [`report`]: what a run found, printed and as JSON;
//! - [`run`]: the whole run.
//!
//! And failover on the cluster topology (`scripts/failover`):
//!
//! - [`cluster`]: which Kafka node leads the most event partitions, whether
//!   every replica is in sync, which Connect worker runs which task;
//! - [`failover`]: one scenario (a node killed or frozen under load) with its
//!   own orders, recovery and check.

pub mod cluster;
pub mod completion;
pub mod component;
pub mod failover;
pub mod fault;
pub mod load;
pub mod plan;
pub mod recovery;
pub mod report;
pub mod run;

pub use plan::{Config, Fault, Plan};
pub use report::{ChaosReport, FailedRun};
pub use run::run;
