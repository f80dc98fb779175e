//! Commit-to-view latency: the view consumer's histogram
//! `view_commit_to_view_seconds`, scraped from its Prometheus endpoint.
//! Percentiles come from the cumulative buckets, interpolated linearly inside
//! the bucket that holds the rank (as Prometheus' `histogram_quantile` does);
//! the recent ones from the difference between now and a scrape one window ago.

use std::{
    collections::{BTreeMap, VecDeque},
    time::{Duration, Instant},
};

use anyhow::Context;
use prometheus_parse::{Scrape, Value};

use crate::model::{Latency, Quantiles};

pub const METRIC: &str = "view_commit_to_view_seconds";

/// A cumulative histogram: (upper bound, observations at or below it), by bound.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Histogram {
    pub buckets: Vec<(f64, f64)>,
    pub count: f64,
    pub sum: f64,
}

impl Histogram {
    /// The histogram `name` in Prometheus text; empty when absent (nothing observed yet).
    /// Series with other labels are added up bucket by bucket.
    pub fn parse(text: &str, name: &str) -> Histogram {
        // Only the line iterator can fail, and the lines of a string cannot.
        let Ok(scrape) = Scrape::parse(text.lines().map(|line| Ok(line.to_owned()))) else { return Histogram::default() };
        let mut buckets: BTreeMap<u64, (f64, f64)> = BTreeMap::new();
        let (mut count, mut sum) = (0.0, 0.0);
        for sample in scrape.samples {
            // The parser gathers a histogram's buckets under its own name; its
            // `_count` and `_sum` stay separate series.
            match (sample.metric.strip_prefix(name), sample.value) {
                (Some(""), Value::Histogram(counts)) => {
                    for bucket in counts {
                        // f64 bounds as sortable keys (all bounds are positive).
                        buckets.entry(bucket.less_than.to_bits()).or_insert((bucket.less_than, 0.0)).1 += bucket.count;
                    }
                }
                (Some("_count"), Value::Counter(value) | Value::Gauge(value) | Value::Untyped(value)) => count += value,
                (Some("_sum"), Value::Counter(value) | Value::Gauge(value) | Value::Untyped(value)) => sum += value,
                _ => {}
            }
        }
        Histogram { buckets: buckets.into_values().collect(), count, sum }
    }

    /// What was observed after `earlier`; the whole of `self` when the counter
    /// went backwards (the view consumer restarted in between).
    pub fn since(&self, earlier: &Histogram) -> Histogram {
        if earlier.count > self.count || earlier.buckets.len() != self.buckets.len() {
            return self.clone();
        }
        let buckets = self.buckets.iter().zip(&earlier.buckets).map(|(now, then)| (now.0, (now.1 - then.1).max(0.0))).collect();
        Histogram { buckets, count: self.count - earlier.count, sum: (self.sum - earlier.sum).max(0.0) }
    }

    /// The q-quantile (0..=1), None without observations. A rank in the `+Inf`
    /// bucket answers the largest finite bound, as Prometheus does.
    pub fn quantile(&self, q: f64) -> Option<f64> {
        if self.count <= 0.0 || self.buckets.is_empty() {
            return None;
        }
        let rank = q.clamp(0.0, 1.0) * self.count;
        let (mut lower, mut below) = (0.0, 0.0);
        for &(bound, cumulative) in &self.buckets {
            if cumulative >= rank {
                if bound.is_infinite() {
                    return Some(lower);
                }
                let inside = cumulative - below;
                if inside <= 0.0 {
                    return Some(bound);
                }
                return Some(lower + (bound - lower) * (rank - below) / inside);
            }
            lower = bound;
            below = cumulative;
        }
        Some(lower)
    }

    pub fn quantiles(&self, window_secs: Option<f64>) -> Quantiles {
        Quantiles {
            window_secs,
            count: self.count as u64,
            mean: (self.count > 0.0).then(|| self.sum / self.count),
            p50: self.quantile(0.5),
            p90: self.quantile(0.9),
            p99: self.quantile(0.99),
        }
    }
}

pub struct LatencySource {
    url: String,
    http: reqwest::Client,
    window: Duration,
    /// Scrapes of the last window, oldest first; the first is the baseline.
    scrapes: VecDeque<(Instant, Histogram)>,
}

impl LatencySource {
    pub fn new(url: &str, window: Duration, timeout: Duration) -> anyhow::Result<Self> {
        let http = reqwest::Client::builder().timeout(timeout).build()?;
        Ok(LatencySource { url: url.to_owned(), http, window, scrapes: VecDeque::new() })
    }

    pub async fn sample(&mut self) -> anyhow::Result<Latency> {
        let response = self.http.get(&self.url).send().await.with_context(|| format!("the view consumer does not answer at {}", self.url))?;
        let status = response.status();
        if !status.is_success() {
            anyhow::bail!("GET {}: {status}", self.url);
        }
        let text = response.text().await.context("reading the view consumer's metrics")?;
        let now = Instant::now();
        let histogram = Histogram::parse(&text, METRIC);
        self.scrapes.push_back((now, histogram.clone()));
        // Keep as baseline the newest scrape that is at least one window old.
        while self.scrapes.len() > 2 && now.duration_since(self.scrapes[1].0) >= self.window {
            self.scrapes.pop_front();
        }
        let recent = match self.scrapes.front() {
            Some((then, baseline)) if self.scrapes.len() > 1 => histogram.since(baseline).quantiles(Some(now.duration_since(*then).as_secs_f64())),
            _ => Quantiles::default(),
        };
        let max_bucket_secs = histogram.buckets.iter().map(|b| b.0).rev().find(|b| b.is_finite());
        Ok(Latency { metric: METRIC, source: self.url.clone(), max_bucket_secs, since_start: histogram.quantiles(None), recent })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = "# TYPE view_commit_to_view_seconds histogram
view_commit_to_view_seconds_bucket{le=\"0.1\"} 10
view_commit_to_view_seconds_bucket{le=\"0.5\"} 90
view_commit_to_view_seconds_bucket{le=\"1\"} 100
view_commit_to_view_seconds_bucket{le=\"+Inf\"} 100
view_commit_to_view_seconds_sum 30
view_commit_to_view_seconds_count 100
http_requests_total{route=\"/\"} 3
";

    #[test]
    fn parses_the_buckets_in_order() {
        let h = Histogram::parse(TEXT, METRIC);
        assert_eq!(h.buckets, vec![(0.1, 10.0), (0.5, 90.0), (1.0, 100.0), (f64::INFINITY, 100.0)]);
        assert_eq!((h.count, h.sum), (100.0, 30.0));
    }

    #[test]
    fn adds_up_the_series_of_other_labels_bucket_by_bucket() {
        let text = "# TYPE view_commit_to_view_seconds histogram
view_commit_to_view_seconds_bucket{lane=\"a\",le=\"0.5\"} 1
view_commit_to_view_seconds_bucket{lane=\"a\",le=\"+Inf\"} 2
view_commit_to_view_seconds_bucket{lane=\"b\",le=\"0.5\"} 3
view_commit_to_view_seconds_bucket{lane=\"b\",le=\"+Inf\"} 3
view_commit_to_view_seconds_sum{lane=\"a\"} 1.5
view_commit_to_view_seconds_sum{lane=\"b\"} 0.5
view_commit_to_view_seconds_count{lane=\"a\"} 2
view_commit_to_view_seconds_count{lane=\"b\"} 3
";
        let h = Histogram::parse(text, METRIC);
        assert_eq!(h.buckets, vec![(0.5, 4.0), (f64::INFINITY, 5.0)]);
        assert_eq!((h.count, h.sum), (5.0, 2.0));
    }

    #[test]
    fn interpolates_inside_the_bucket_that_holds_the_rank() {
        let h = Histogram::parse(TEXT, METRIC);
        assert!((h.quantile(0.05).unwrap() - 0.05).abs() < 1e-9, "half of the first bucket");
        assert!((h.quantile(0.5).unwrap() - 0.3).abs() < 1e-9, "half-way through 0.1..0.5");
        assert!((h.quantile(0.95).unwrap() - 0.75).abs() < 1e-9);
    }

    #[test]
    fn a_rank_in_the_infinite_bucket_answers_the_largest_finite_bound() {
        let h = Histogram { buckets: vec![(1.0, 1.0), (f64::INFINITY, 10.0)], count: 10.0, sum: 50.0 };
        assert_eq!(h.quantile(0.99), Some(1.0));
    }

    #[test]
    fn no_observations_no_quantiles() {
        let h = Histogram::parse("", METRIC);
        assert_eq!(h.quantile(0.5), None);
        assert_eq!(h.quantiles(None).count, 0);
    }

    #[test]
    fn the_difference_of_two_scrapes_holds_only_the_new_observations() {
        let before = Histogram { buckets: vec![(0.1, 10.0), (1.0, 10.0), (f64::INFINITY, 10.0)], count: 10.0, sum: 0.5 };
        let after = Histogram { buckets: vec![(0.1, 10.0), (1.0, 20.0), (f64::INFINITY, 20.0)], count: 20.0, sum: 6.0 };
        let recent = after.since(&before);
        assert_eq!(recent.buckets, vec![(0.1, 0.0), (1.0, 10.0), (f64::INFINITY, 10.0)]);
        assert!(recent.quantile(0.5).unwrap() > 0.1, "only the slow new ones count");
        // A restart (counter went backwards): everything now is new.
        assert_eq!(before.since(&after), before);
    }
}
