//! Deliveries per second: N events pre-loaded for E endpoints, then the worker started; the clock
//! runs from the worker's start until the receiver holds every (event, endpoint) pair.

use std::collections::HashMap;
use std::time::Duration;

use casebridge_testkit::TestBackend;
use serde_json::{json, Value};

use crate::harness::{progress, Bench, WorkerOpts};
use crate::receiver::{CountingReceiver, Kind};
use crate::report::{m, Measure};

#[derive(Debug, Clone, Copy)]
pub struct Params {
    pub endpoints: usize,
    pub events: usize,
    /// Events recorded per transaction in the load phase.
    pub batch: usize,
    /// Give up waiting for the deliveries after this long.
    pub limit: Duration,
}

impl Params {
    pub fn json(&self) -> Value {
        json!({
            "endpoints": self.endpoints,
            "events": self.events,
            "deliveries": self.events * self.endpoints,
            "load_batch": self.batch,
        })
    }
}

pub async fn run(
    backend: TestBackend,
    p: Params,
    opts: WorkerOpts,
) -> anyhow::Result<Vec<Measure>> {
    let bench = Bench::new(backend).await?;
    let rx = CountingReceiver::start(true)?;
    let company = bench.company("Bench throughput").await?;
    for i in 0..p.endpoints {
        bench.webhook(company, &rx.url(Kind::Ok, i)).await?;
    }

    let load = std::time::Instant::now();
    let ids = bench.record_batched(company, p.events, p.batch).await?;
    let load_s = load.elapsed().as_secs_f64();
    let expected = p.events * p.endpoints;
    progress(&format!(
        "loaded {} events in {load_s:.1} s; starting the worker for {expected} deliveries",
        p.events
    ));

    let worker = bench.start_worker(opts)?;
    let waited = rx.wait_distinct(Kind::Ok, expected, p.limit).await;
    if let Err(e) = &waited {
        progress(&format!("{e}"));
    }
    // Let the last attempts record their outcome (and in-flight duplicates, if any, land)
    // before stopping the worker and counting.
    let drain = std::time::Instant::now();
    while drain.elapsed() < Duration::from_secs(10)
        && bench
            .job_counts()
            .await?
            .iter()
            .map(|(_, n)| n)
            .sum::<i64>()
            > 0
    {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let started = worker.started;
    worker.stop().await;

    let arrivals = rx.arrivals();
    let mut first: HashMap<(u32, u128), std::time::Instant> = HashMap::new();
    for a in arrivals.iter().filter(|a| a.kind == Kind::Ok) {
        first.entry((a.endpoint, a.event)).or_insert(a.at);
    }
    let missing = (0..p.endpoints as u32)
        .flat_map(|e| ids.iter().map(move |id| (e, id.as_uuid().as_u128())))
        .filter(|k| !first.contains_key(k))
        .count();
    let delivered = expected - missing;
    let duplicates = arrivals.len() - first.len();
    let last = first.values().max().copied().unwrap_or(started);
    let first_at = first.values().min().copied().unwrap_or(started);
    let elapsed = last.duration_since(started).as_secs_f64();
    let counts = bench.job_counts().await?;
    let left: i64 = counts.iter().map(|(_, n)| n).sum();
    bench.close().await;

    progress(&format!(
        "{delivered}/{expected} delivered in {elapsed:.2} s, {duplicates} duplicate(s), \
         {missing} missing, jobs left by status: {counts:?}"
    ));
    Ok(vec![
        m(
            "deliveries_per_s",
            "deliveries/s",
            delivered as f64 / elapsed,
        ),
        m("elapsed", "s", elapsed),
        m(
            "first_delivery",
            "ms",
            first_at.duration_since(started).as_secs_f64() * 1e3,
        ),
        m("load_events_per_s", "events/s", p.events as f64 / load_s),
        m("missing", "deliveries", missing as f64),
        m("duplicates", "deliveries", duplicates as f64),
        m("jobs_left", "jobs", left as f64),
    ])
}
