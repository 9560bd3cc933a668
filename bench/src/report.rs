//! Statistics over repeats, the printed table, and the line appended to `bench/results.jsonl`.

use std::io::Write;
use std::path::Path;
use std::process::Command;

use serde_json::{json, Map, Value};

/// One measured quantity of one run.
#[derive(Debug, Clone)]
pub struct Measure {
    pub name: &'static str,
    pub unit: &'static str,
    pub value: f64,
}

pub fn m(name: &'static str, unit: &'static str, value: f64) -> Measure {
    Measure { name, unit, value }
}

/// Nearest-rank percentile of `sorted` (ascending), `p` in 0..=100.
pub fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

fn median(values: &[f64]) -> f64 {
    let mut v: Vec<f64> = values.iter().copied().filter(|x| !x.is_nan()).collect();
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

struct Row {
    name: &'static str,
    unit: &'static str,
    values: Vec<f64>,
}

/// Collects every run's measures by name, in first-seen order.
fn rows(runs: &[Vec<Measure>]) -> Vec<Row> {
    let mut out: Vec<Row> = Vec::new();
    for run in runs {
        for ms in run {
            match out.iter_mut().find(|r| r.name == ms.name) {
                Some(r) => r.values.push(ms.value),
                None => out.push(Row {
                    name: ms.name,
                    unit: ms.unit,
                    values: vec![ms.value],
                }),
            }
        }
    }
    out
}

fn fmt(v: f64) -> String {
    if v.is_nan() {
        "-".into()
    } else if v.abs() >= 100.0 || v.fract() == 0.0 {
        format!("{v:.0}")
    } else if v.abs() >= 10.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    }
}

fn round(v: f64) -> Value {
    if v.is_nan() {
        Value::Null
    } else {
        json!((v * 1000.0).round() / 1000.0)
    }
}

/// Prints the table of medians (with min and max) and appends the JSON line.
pub fn finish(
    results: &Path,
    scenario: &str,
    backend: &str,
    params: Value,
    runs: &[Vec<Measure>],
) -> anyhow::Result<()> {
    let rows = rows(runs);
    println!();
    println!("{scenario} on {backend}  {params}");
    println!("{} run(s); median of runs, min and max", runs.len());
    let w = rows.iter().map(|r| r.name.len()).max().unwrap_or(6).max(6);
    println!(
        "  {:<w$}  {:>10}  {:>10}  {:>10}  unit",
        "metric", "median", "min", "max"
    );
    for r in &rows {
        let min = r.values.iter().copied().fold(f64::NAN, f64::min);
        let max = r.values.iter().copied().fold(f64::NAN, f64::max);
        println!(
            "  {:<w$}  {:>10}  {:>10}  {:>10}  {}",
            r.name,
            fmt(median(&r.values)),
            fmt(min),
            fmt(max),
            r.unit
        );
    }

    let (commit, dirty) = git_state();
    let mut medians = Map::new();
    let mut mins = Map::new();
    let mut maxs = Map::new();
    let mut units = Map::new();
    for r in &rows {
        medians.insert(r.name.into(), round(median(&r.values)));
        mins.insert(
            r.name.into(),
            round(r.values.iter().copied().fold(f64::NAN, f64::min)),
        );
        maxs.insert(
            r.name.into(),
            round(r.values.iter().copied().fold(f64::NAN, f64::max)),
        );
        units.insert(r.name.into(), json!(r.unit));
    }
    let per_run: Vec<Value> = runs
        .iter()
        .map(|run| {
            Value::Object(
                run.iter()
                    .map(|ms| (ms.name.to_owned(), round(ms.value)))
                    .collect(),
            )
        })
        .collect();
    let line = json!({
        "date": jiff::Timestamp::now().to_string(),
        "commit": commit,
        "crates_dirty": dirty,
        "scenario": scenario,
        "backend": backend,
        "params": params,
        "repeats": runs.len(),
        "median": medians,
        "min": mins,
        "max": maxs,
        "units": units,
        "runs": per_run,
    });
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(results)?;
    writeln!(f, "{line}")?;
    println!("appended to {}", results.display());
    Ok(())
}

/// The checked-out commit, and whether `crates/` has uncommitted changes (the numbers then
/// measure the working tree, not the commit alone). A binary built from a clean export of a
/// commit (`git archive`), outside any repository, is told its commit with
/// `CASEBRIDGE_BENCH_COMMIT`.
fn git_state() -> (String, bool) {
    if let Ok(commit) = std::env::var("CASEBRIDGE_BENCH_COMMIT") {
        return (commit, false);
    }
    let dir = env!("CARGO_MANIFEST_DIR");
    let commit = Command::new("git")
        .args(["-C", dir, "rev-parse", "--short=12", "HEAD"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_else(|| "unknown".into());
    let dirty = Command::new("git")
        .args(["-C", dir, "status", "--porcelain", "--", "../crates"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .is_some_and(|o| !o.stdout.is_empty());
    (commit, dirty)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles_and_median() {
        let v: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(percentile(&v, 50.0), 50.0);
        assert_eq!(percentile(&v, 99.0), 99.0);
        assert_eq!(percentile(&v, 100.0), 100.0);
        assert_eq!(percentile(&[7.0], 90.0), 7.0);
        assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&[4.0, 1.0, 2.0, 3.0]), 2.5);
    }
}
