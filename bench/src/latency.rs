//! Event-to-first-attempt latency: events recorded one per transaction at a steady rate while the
//! worker runs; latency is the receiver's arrival instant minus the instant taken just before the
//! recording transaction began (one process, one monotonic clock).

use std::collections::HashMap;
use std::time::{Duration, Instant};

use casebridge_domain::ids::{CompanyId, EventId};
use casebridge_testkit::TestBackend;
use serde_json::{json, Value};

use crate::harness::{progress, Bench, WorkerOpts};
use crate::receiver::{CountingReceiver, Kind};
use crate::report::{m, percentile, Measure};

#[derive(Debug, Clone, Copy)]
pub struct Params {
    pub events: usize,
    pub rate: f64,
}

impl Params {
    pub fn json(&self) -> Value {
        json!({ "events": self.events, "rate_per_s": self.rate, "endpoints": 1 })
    }
}

/// Latencies (ms, sorted) of `recorded` events at endpoint `/ok/0`, plus how many never arrived.
pub fn latencies(rx: &CountingReceiver, recorded: &[(EventId, Instant)]) -> (Vec<f64>, usize) {
    let mut first: HashMap<u128, Instant> = HashMap::new();
    for a in rx.arrivals().iter().filter(|a| a.kind == Kind::Ok) {
        first.entry(a.event).or_insert(a.at);
    }
    let mut lat = Vec::with_capacity(recorded.len());
    let mut missing = 0;
    for (id, before) in recorded {
        match first.get(&id.as_uuid().as_u128()) {
            Some(at) => lat.push(at.duration_since(*before).as_secs_f64() * 1e3),
            None => missing += 1,
        }
    }
    lat.sort_by(f64::total_cmp);
    (lat, missing)
}

/// Records the paced stream for `company` and waits for its deliveries at `/ok/0`.
pub async fn paced_stream(
    bench: &Bench,
    rx: &CountingReceiver,
    company: CompanyId,
    events: usize,
    rate: f64,
) -> anyhow::Result<(Vec<(EventId, Instant)>, f64)> {
    let recorded = bench.record_paced(company, events, rate).await?;
    let span = recorded
        .last()
        .map(|l| l.1.duration_since(recorded[0].1).as_secs_f64())
        .unwrap_or(0.0);
    let achieved = if span > 0.0 {
        (events - 1) as f64 / span
    } else {
        f64::NAN
    };
    if let Err(e) = rx
        .wait_distinct(Kind::Ok, events, Duration::from_secs(60))
        .await
    {
        progress(&format!("{e}"));
    }
    Ok((recorded, achieved))
}

pub async fn run(
    backend: TestBackend,
    p: Params,
    opts: WorkerOpts,
) -> anyhow::Result<Vec<Measure>> {
    let bench = Bench::new(backend).await?;
    let rx = CountingReceiver::start(true)?;
    let company = bench.company("Bench latency").await?;
    bench.webhook(company, &rx.url(Kind::Ok, 0)).await?;
    let worker = bench.start_worker(opts)?;
    progress(&format!(
        "recording {} events at {}/s, one per transaction",
        p.events, p.rate
    ));
    let (recorded, achieved) = paced_stream(&bench, &rx, company, p.events, p.rate).await?;
    tokio::time::sleep(Duration::from_millis(300)).await;
    worker.stop().await;
    let (lat, missing) = latencies(&rx, &recorded);
    let duplicates = rx.total() - rx.distinct(Kind::Ok);
    bench.close().await;
    progress(&format!(
        "p50 {:.1} ms, p99 {:.1} ms, {missing} missing",
        percentile(&lat, 50.0),
        percentile(&lat, 99.0)
    ));
    Ok(vec![
        m("p50", "ms", percentile(&lat, 50.0)),
        m("p90", "ms", percentile(&lat, 90.0)),
        m("p99", "ms", percentile(&lat, 99.0)),
        m("max", "ms", percentile(&lat, 100.0)),
        m("achieved_rate", "events/s", achieved),
        m("missing", "events", missing as f64),
        m("duplicates", "deliveries", duplicates as f64),
    ])
}
