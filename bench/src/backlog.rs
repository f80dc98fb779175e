//! Whether every consumer group keeps up with the sustained saga: each
//! group's backlog sampled every few seconds, its largest in the first and
//! the last third of the run (bounded means the last is no larger), and that
//! largest late backlog in seconds of the group's own work (its records per
//! second over the run).

use std::{
    collections::BTreeMap,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use outflow_stack_tests::Stack;
use serde::Serialize;

use crate::saga::{self, GroupBacklog};

const EVERY: Duration = Duration::from_secs(5);

/// Each sample: seconds since the start, and every group then.
type Samples = Arc<Mutex<Vec<(f64, Vec<GroupBacklog>)>>>;

pub struct BacklogSampler {
    samples: Samples,
    task: tokio::task::JoinHandle<()>,
}

impl BacklogSampler {
    pub fn start(stack: &Stack) -> BacklogSampler {
        let samples: Samples = Arc::default();
        let task = {
            let (samples, stack) = (samples.clone(), stack.clone());
            tokio::spawn(async move {
                let started = Instant::now();
                loop {
                    let stack = stack.clone();
                    if let Ok(Ok(groups)) = tokio::task::spawn_blocking(move || saga::groups(&stack)).await {
                        samples.lock().unwrap().push((started.elapsed().as_secs_f64(), groups));
                    }
                    tokio::time::sleep(EVERY).await;
                }
            })
        };
        BacklogSampler { samples, task }
    }

    pub fn finish(self) -> Vec<GroupKeptUp> {
        self.task.abort();
        let samples = self.samples.lock().unwrap();
        let mut series: BTreeMap<String, Vec<(f64, i64, i64)>> = BTreeMap::new();
        for (t, groups) in samples.iter() {
            for g in groups {
                series.entry(g.group.clone()).or_default().push((*t, g.lag, g.written));
            }
        }
        series.into_iter().map(|(group, series)| GroupKeptUp::of(group, &series)).collect()
    }
}

/// One group over the sustained run.
#[derive(Clone, Debug, Serialize)]
pub struct GroupKeptUp {
    pub group: String,
    pub samples: usize,
    pub max_first_third: i64,
    pub max_last_third: i64,
    /// Records written to its topics per second over the run.
    pub records_per_second: f64,
    /// The largest late backlog in seconds of that rate.
    pub last_third_seconds_of_work: f64,
}

impl GroupKeptUp {
    /// From samples of (seconds since start, backlog, records written).
    pub fn of(group: String, series: &[(f64, i64, i64)]) -> GroupKeptUp {
        let end = series.last().map_or(0.0, |s| s.0);
        let largest = |keep: &dyn Fn(f64) -> bool| series.iter().filter(|s| keep(s.0)).map(|s| s.1).max().unwrap_or(0);
        let max_first_third = largest(&|t| t <= end / 3.0);
        let max_last_third = largest(&|t| t >= end * 2.0 / 3.0);
        let records_per_second = match (series.first(), series.last()) {
            (Some(first), Some(last)) if last.0 > first.0 => (last.2 - first.2) as f64 / (last.0 - first.0),
            _ => 0.0,
        };
        let last_third_seconds_of_work = if records_per_second > 0.0 { max_last_third as f64 / records_per_second } else { 0.0 };
        GroupKeptUp { group, samples: series.len(), max_first_third, max_last_third, records_per_second, last_third_seconds_of_work }
    }

    /// Bounded: the late backlog no larger than the early one.
    pub fn bounded(&self) -> bool {
        self.max_last_third <= self.max_first_third
    }

    /// The late backlog under `seconds` of the group's work. A group kept up
    /// when it is bounded and shallow; each is a row of its own, judged by the
    /// goal it prints.
    pub fn shallow(&self, seconds: f64) -> bool {
        self.last_third_seconds_of_work < seconds
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_growing_backlog_did_not_keep_up_and_a_steady_one_did() {
        let steady: Vec<(f64, i64, i64)> = (0..60).map(|i| (i as f64 * 5.0, 100 + (i % 3) * 10, i * 500)).collect();
        let kept = GroupKeptUp::of("g".into(), &steady);
        assert_eq!((kept.max_first_third, kept.max_last_third), (120, 120));
        assert!((kept.records_per_second - 100.0).abs() < 1e-9);
        assert!(kept.bounded() && kept.shallow(5.0), "{kept:?}");

        let growing: Vec<(f64, i64, i64)> = (0..60).map(|i| (i as f64 * 5.0, i * 20, i * 500)).collect();
        assert!(!GroupKeptUp::of("g".into(), &growing).bounded());

        // Bounded but over 5 s of work: 1,000 behind at 100 records/s.
        let deep: Vec<(f64, i64, i64)> = (0..60).map(|i| (i as f64 * 5.0, 1_000, i * 500)).collect();
        let deep = GroupKeptUp::of("g".into(), &deep);
        assert!(deep.bounded() && !deep.shallow(5.0));

        // Shallow but growing: 0 early, 40 late at 100 records/s.
        let small: Vec<(f64, i64, i64)> = (0..60).map(|i| (i as f64 * 5.0, if i < 40 { 0 } else { 40 }, i * 500)).collect();
        let small = GroupKeptUp::of("g".into(), &small);
        assert!(!small.bounded() && small.shallow(5.0));
    }
}
