//! What a run found: the orders by how they ended, every fault with its
//! timing, what had to be brought back by hand, the slots, and the checker's
//! report; printed as a table and written as JSON.

use std::{collections::BTreeMap, fmt};

use outflow_invariants::Report;
use serde::Serialize;

use crate::{
    fault::Injected,
    plan::Action,
    recovery::{Intervention, Slot},
};

#[derive(Clone, Debug, Serialize)]
pub struct ChaosReport {
    pub seed: u64,
    pub orders: usize,
    /// `CONFIRMED`, `CANCELLED (out_of_stock)`, ... from the orders table.
    pub outcomes: BTreeMap<String, i64>,
    pub faults: Vec<Injected>,
    /// The run's median place → confirm time, beside each fault's
    /// `confirms_again_ms`.
    pub confirm_median_ms: Option<u64>,
    /// Requests of the load that failed during a fault and were sent again.
    pub requests_retried: usize,
    pub interventions: Vec<Intervention>,
    pub slots_held: bool,
    pub slots: Vec<Slot>,
    pub invariants: Report,
    pub took_s: u64,
}

impl ChaosReport {
    pub fn held(&self) -> bool {
        self.invariants.held() && self.slots_held
    }

    /// (kills, freezes) per component.
    fn per_component(&self) -> BTreeMap<&'static str, (usize, usize)> {
        let mut counts = BTreeMap::new();
        for fault in &self.faults {
            let entry = counts.entry(fault.component.name()).or_insert((0, 0));
            match fault.action {
                Action::Freeze { .. } => entry.1 += 1,
                Action::Kill | Action::ImmediateShutdown => entry.0 += 1,
            }
        }
        counts
    }
}

impl fmt::Display for ChaosReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "chaos: seed {}, {} orders, {} faults, {} s", self.seed, self.orders, self.faults.len(), self.took_s)?;
        writeln!(f, "orders by outcome:")?;
        for (outcome, n) in &self.outcomes {
            writeln!(f, "  {outcome:<32} {n}")?;
        }
        writeln!(f, "faults per component (kills, freezes):")?;
        for (component, (kills, freezes)) in self.per_component() {
            writeln!(f, "  {component:<24} {kills} {freezes}")?;
        }
        writeln!(f, "each fault (at, down for, healthy again after, orders confirmed again after):")?;
        for i in &self.faults {
            let again = i.confirms_again_ms.map_or("none".into(), |ms| format!("{:.1} s", secs(ms)));
            writeln!(f, "{}  {again:>8}", fault_columns(i))?;
        }
        if let Some(ms) = self.confirm_median_ms {
            writeln!(f, "the run's median place → confirm time, for comparison: {:.1} s", secs(ms))?;
        }
        writeln!(f, "requests retried through faults: {}", self.requests_retried)?;
        writeln!(f, "events on Kafka more than once: {}", self.invariants.kafka_duplicates)?;
        for i in &self.interventions {
            writeln!(f, "did not recover by itself: {}: {}", i.what, i.why)?;
        }
        for s in &self.slots {
            writeln!(f, "slot {}: active {}, wal {:?}, lag {:?} bytes", s.name, s.active, s.wal_status, s.lag_bytes)?;
        }
        writeln!(f, "{}", self.invariants)?;
        write!(f, "{}", if self.held() { "every invariant held" } else { "BROKEN" })
    }
}

/// A run that could not finish (exit status 2): the step that failed, why,
/// and what it had done until then, so that its faults can still be read.
#[derive(Clone, Debug, Serialize)]
pub struct FailedRun {
    pub seed: u64,
    /// The step that failed: the faults, the load, a recovery step, the check.
    pub stage: String,
    pub error: String,
    pub orders_placed: usize,
    pub faults: Vec<Injected>,
    pub interventions: Vec<Intervention>,
    pub took_s: u64,
}

impl fmt::Display for FailedRun {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "chaos: seed {}, FAILED after {} s during {}: {}", self.seed, self.took_s, self.stage, self.error)?;
        writeln!(f, "orders placed: {}", self.orders_placed)?;
        writeln!(f, "faults injected before it (at, component, action, down for, healthy again after):")?;
        for i in &self.faults {
            writeln!(f, "{}", fault_columns(i))?;
        }
        for i in &self.interventions {
            writeln!(f, "did not recover by itself: {}: {}", i.what, i.why)?;
        }
        Ok(())
    }
}

/// A fault's columns: at, component, action, down for, healthy again after.
fn fault_columns(i: &Injected) -> String {
    format!("  {:>7.1} s  {:<24} {:<22} {:>6.1} s  {:>6.1} s", secs(i.at_ms), i.component.name(), action(i.action), secs(i.down_ms), secs(i.recovered_ms))
}

fn action(action: Action) -> String {
    match action {
        Action::Kill => "SIGKILL".into(),
        Action::ImmediateShutdown => "immediate shutdown".into(),
        Action::Freeze { ms } => format!("SIGSTOP {:.1} s", secs(ms)),
    }
}

fn secs(ms: u64) -> f64 {
    ms as f64 / 1000.0
}
