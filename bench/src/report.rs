//! The result table (each figure next to its ceiling or goal), the JSON file
//! and the latency chart (SVG).

use std::path::Path;

use plotters::prelude::*;
use serde::Serialize;

#[derive(Clone, Debug, Serialize)]
pub struct Row {
    pub section: &'static str,
    pub what: String,
    pub value: f64,
    pub unit: &'static str,
    /// The ceiling it is compared with, in the same unit.
    pub ceiling: Option<f64>,
    pub ratio: Option<f64>,
    pub goal: String,
    pub met: Option<bool>,
}

impl Row {
    pub fn info(section: &'static str, what: impl Into<String>, value: f64, unit: &'static str) -> Row {
        Row { section, what: what.into(), value, unit, ceiling: None, ratio: None, goal: String::new(), met: None }
    }

    /// `value / ceiling`, met when the ratio reaches `goal`.
    pub fn against(section: &'static str, what: impl Into<String>, value: f64, unit: &'static str, ceiling: f64, goal: f64) -> Row {
        let ratio = value / ceiling;
        Row { section, what: what.into(), value, unit, ceiling: Some(ceiling), ratio: Some(ratio), goal: format!("ratio >= {goal}"), met: Some(ratio >= goal) }
    }

    /// A figure with a goal of its own, judged by the caller.
    pub fn judged(section: &'static str, what: impl Into<String>, value: f64, unit: &'static str, goal: &str, met: bool) -> Row {
        Row { goal: goal.to_owned(), met: Some(met), ..Row::info(section, what, value, unit) }
    }

    /// A latency with an upper bound.
    pub fn at_most(section: &'static str, what: impl Into<String>, value: f64, bound: f64) -> Row {
        Row { section, what: what.into(), value, unit: "ms", ceiling: None, ratio: None, goal: format!("<= {bound} ms"), met: Some(value <= bound) }
    }
}

pub fn print(rows: &[Row]) {
    println!("\n{:<4} {:<52} {:>12} {:<6} {:>12} {:>7}  {:<14} ", "", "figure", "value", "", "ceiling", "ratio", "goal");
    let mut section = "";
    for r in rows {
        if r.section != section {
            section = r.section;
            println!("{}", "-".repeat(118));
        }
        let ceiling = r.ceiling.map_or(String::new(), |c| format!("{c:.1}"));
        let ratio = r.ratio.map_or(String::new(), |c| format!("{c:.2}"));
        let met = match r.met {
            Some(true) => "met",
            Some(false) => "MISSED",
            None => "",
        };
        println!("{:<4} {:<52} {:>12.1} {:<6} {:>12} {:>7}  {:<14} {}", r.section, r.what, r.value, r.unit, ceiling, ratio, r.goal, met);
    }
}

/// Two panels: POST → view CONFIRMED per second (p50, p99) and each
/// replication slot's lag over the saga runs.
pub fn chart(path: &Path, latency: &[(f64, f64, f64)], slots: &[(String, Vec<(f64, i64)>)]) -> anyhow::Result<()> {
    let root = SVGBackend::new(path, (1000, 700)).into_drawing_area();
    root.fill(&WHITE)?;
    let (top, bottom) = root.split_vertically(380);
    let max_t = latency.last().map_or(1.0, |l| l.0 + 1.0);
    let max_ms = latency.iter().map(|l| l.2).fold(10.0, f64::max) * 1.1;
    let mut chart = ChartBuilder::on(&top)
        .caption("POST /v1/orders → order view CONFIRMED, per second of the half-rate run", ("sans-serif", 18))
        .margin(12)
        .x_label_area_size(36)
        .y_label_area_size(56)
        .build_cartesian_2d(0.0..max_t, 0.0..max_ms)?;
    chart.configure_mesh().x_desc("second").y_desc("ms").draw()?;
    chart
        .draw_series(LineSeries::new(latency.iter().map(|l| (l.0, l.1)), &BLUE))?
        .label("p50")
        .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], BLUE));
    chart
        .draw_series(LineSeries::new(latency.iter().map(|l| (l.0, l.2)), &RED))?
        .label("p99")
        .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], RED));
    chart.configure_series_labels().border_style(BLACK).background_style(WHITE.mix(0.8)).draw()?;

    let max_t = slots.iter().flat_map(|s| s.1.last()).map(|p| p.0).fold(1.0, f64::max);
    let max_kib = slots.iter().flat_map(|s| s.1.iter()).map(|p| p.1 as f64 / 1024.0).fold(1.0, f64::max) * 1.1;
    let mut chart = ChartBuilder::on(&bottom)
        .caption("replication slot lag (WAL not yet confirmed by Debezium)", ("sans-serif", 18))
        .margin(12)
        .x_label_area_size(36)
        .y_label_area_size(56)
        .build_cartesian_2d(0.0..max_t, 0.0..max_kib)?;
    chart.configure_mesh().x_desc("second").y_desc("KiB").draw()?;
    for (i, (slot, series)) in slots.iter().enumerate() {
        let color = Palette99::pick(i).to_rgba();
        chart
            .draw_series(LineSeries::new(series.iter().map(|p| (p.0, p.1 as f64 / 1024.0)), color))?
            .label(slot.as_str())
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], color));
    }
    chart.configure_series_labels().border_style(BLACK).background_style(WHITE.mix(0.8)).draw()?;
    root.present()?;
    Ok(())
}
