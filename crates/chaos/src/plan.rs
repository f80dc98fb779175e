//! The schedule of a run: which component, what fault, how long, and the
//! pause before it. A pure function of the configuration, so that the same
//! seed replays the same schedule.

use std::time::Duration;

use rand::{rngs::StdRng, seq::SliceRandom, Rng, SeedableRng};
use serde::Serialize;

use crate::component::Component;

#[derive(Clone, Debug)]
pub struct Config {
    pub orders: usize,
    /// Orders placed per second; None spreads the orders over the faults' estimated duration.
    pub rate: Option<f64>,
    pub faults: usize,
    pub seed: u64,
    /// Components that get at least one fault before the rest are drawn.
    pub required: Vec<Component>,
    /// Components the rest of the faults are drawn from.
    pub pool: Vec<Component>,
    /// Frozen for this long at least and at most.
    pub freeze: (Duration, Duration),
    /// The pause before each fault, at least and at most.
    pub gap: (Duration, Duration),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    Kill,
    /// PostgreSQL only: `pg_ctl stop -m immediate` (no checkpoint, like a power cut for the server).
    ImmediateShutdown,
    Freeze {
        ms: u64,
    },
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Fault {
    pub component: Component,
    pub action: Action,
    /// The pause before this fault.
    pub after_ms: u64,
}

#[derive(Clone, Debug)]
pub struct Plan {
    pub faults: Vec<Fault>,
}

impl Plan {
    pub fn new(config: &Config) -> Self {
        let mut rng = StdRng::seed_from_u64(config.seed);
        let mut components: Vec<Component> = config.required.clone();
        while components.len() < config.faults {
            components.push(config.pool[rng.random_range(0..config.pool.len())]);
        }
        components.shuffle(&mut rng);
        let faults = components
            .into_iter()
            .map(|component| Fault { component, action: action(&mut rng, component, config), after_ms: millis(&mut rng, config.gap) })
            .collect();
        Plan { faults }
    }

    /// About how long the faults take: the pauses, the freezes, and ~10 s
    /// for each kill to come back. A load spread over this many seconds has
    /// orders in flight at every fault.
    pub fn estimated(&self) -> Duration {
        let ms: u64 = self.faults.iter().map(|f| f.after_ms + if let Action::Freeze { ms } = f.action { ms } else { 10_000 }).sum();
        Duration::from_millis(ms)
    }
}

fn action(rng: &mut StdRng, component: Component, config: &Config) -> Action {
    match rng.random_range(0..if component == Component::Postgres { 3 } else { 2 }) {
        0 => Action::Kill,
        1 => Action::Freeze { ms: millis(rng, config.freeze) },
        _ => Action::ImmediateShutdown,
    }
}

fn millis(rng: &mut StdRng, (low, high): (Duration, Duration)) -> u64 {
    let (low, high) = (low.as_millis() as u64, high.as_millis() as u64);
    rng.random_range(low..=high.max(low))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(seed: u64) -> Config {
        Config {
            orders: 10,
            rate: None,
            faults: 12,
            seed,
            required: vec![Component::Postgres, Component::Kafka, Component::Connect, Component::InventoryConsumer],
            pool: Component::ALL.to_vec(),
            freeze: (Duration::from_secs(5), Duration::from_secs(30)),
            gap: (Duration::from_secs(2), Duration::from_secs(6)),
        }
    }

    #[test]
    fn the_same_seed_gives_the_same_schedule_and_another_seed_another() {
        assert_eq!(Plan::new(&config(7)).faults, Plan::new(&config(7)).faults);
        assert_ne!(Plan::new(&config(7)).faults, Plan::new(&config(8)).faults);
    }

    #[test]
    fn every_required_component_is_hit_and_bounds_hold() {
        for seed in 0..50 {
            let plan = Plan::new(&config(seed));
            assert_eq!(plan.faults.len(), 12);
            for required in config(seed).required {
                assert!(plan.faults.iter().any(|f| f.component == required), "seed {seed}: {required:?} never hit");
            }
            for fault in &plan.faults {
                assert!((2000..=6000).contains(&fault.after_ms));
                match fault.action {
                    Action::Freeze { ms } => assert!((5000..=30_000).contains(&ms)),
                    Action::ImmediateShutdown => assert_eq!(fault.component, Component::Postgres),
                    Action::Kill => {}
                }
            }
        }
    }
}
