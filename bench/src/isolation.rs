//! Isolation: a healthy endpoint's latency while another tenant's endpoint hangs.
//!
//! Each repeat runs two phases on fresh databases. Baseline: company B's healthy endpoint gets
//! events at a steady rate. With the hang: the same, plus company A's endpoint, which sleeps
//! 20 s on every request (the attempt times out at 15 s), receiving a burst of events recorded in
//! one transaction just before B's stream starts. Reported: B's event-to-first-attempt latency in
//! both phases and their ratio.

use std::time::Duration;

use casebridge_testkit::TestBackend;
use serde_json::{json, Value};

use crate::harness::{progress, Bench, WorkerOpts};
use crate::latency::{latencies, paced_stream};
use crate::receiver::{CountingReceiver, Kind};
use crate::report::{m, percentile, Measure};

#[derive(Debug, Clone, Copy)]
pub struct Params {
    pub burst: usize,
    pub rate: f64,
    pub duration: Duration,
}

impl Params {
    fn healthy_events(&self) -> usize {
        ((self.rate * self.duration.as_secs_f64()).round() as usize).max(1)
    }

    pub fn json(&self) -> Value {
        json!({
            "hanging_burst": self.burst,
            "healthy_rate_per_s": self.rate,
            "healthy_events": self.healthy_events(),
            "hang_s": crate::receiver::HANG.as_secs(),
        })
    }
}

struct Phase {
    p50: f64,
    p99: f64,
    missing: usize,
    hang_attempts: usize,
}

async fn phase(
    backend: TestBackend,
    p: Params,
    opts: WorkerOpts,
    with_hang: bool,
) -> anyhow::Result<Phase> {
    let bench = Bench::new(backend).await?;
    let rx = CountingReceiver::start(true)?;
    let healthy = bench.company("Bench healthy tenant").await?;
    bench.webhook(healthy, &rx.url(Kind::Ok, 0)).await?;
    let hanging = bench.company("Bench hanging tenant").await?;
    if with_hang {
        bench.webhook(hanging, &rx.url(Kind::Hang, 0)).await?;
    }
    let worker = bench.start_worker(opts)?;
    if with_hang {
        bench.record_batched(hanging, p.burst, p.burst).await?;
    }
    progress(&format!(
        "{}: {} healthy events at {}/s",
        if with_hang { "with hang" } else { "baseline" },
        p.healthy_events(),
        p.rate
    ));
    let (recorded, _) = paced_stream(&bench, &rx, healthy, p.healthy_events(), p.rate).await?;
    worker.stop().await;
    let (lat, missing) = latencies(&rx, &recorded);
    let hang_attempts = rx
        .arrivals()
        .iter()
        .filter(|a| a.kind == Kind::Hang)
        .count();
    bench.close().await;
    progress(&format!(
        "healthy p50 {:.1} ms, p99 {:.1} ms; {hang_attempts} attempt(s) reached the hanging endpoint",
        percentile(&lat, 50.0),
        percentile(&lat, 99.0)
    ));
    Ok(Phase {
        p50: percentile(&lat, 50.0),
        p99: percentile(&lat, 99.0),
        missing,
        hang_attempts,
    })
}

pub async fn run(
    backend: TestBackend,
    p: Params,
    opts: WorkerOpts,
) -> anyhow::Result<Vec<Measure>> {
    let base = phase(backend, p, opts, false).await?;
    let hang = phase(backend, p, opts, true).await?;
    // Give the receiver's hanging requests time to be dropped before the next repeat.
    tokio::time::sleep(Duration::from_millis(200)).await;
    Ok(vec![
        m("baseline_p50", "ms", base.p50),
        m("baseline_p99", "ms", base.p99),
        m("with_hang_p50", "ms", hang.p50),
        m("with_hang_p99", "ms", hang.p99),
        m("ratio_p50", "x", hang.p50 / base.p50),
        m("ratio_p99", "x", hang.p99 / base.p99),
        m("hang_attempts", "requests", hang.hang_attempts as f64),
        m(
            "healthy_missing",
            "events",
            (base.missing + hang.missing) as f64,
        ),
    ])
}
