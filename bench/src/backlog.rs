//! Memory with a large backlog: 100k deliveries pending for endpoints that answer 503 with
//! `Retry-After: 3600`, so each delivery is attempted once and then waits an hour. While the
//! worker makes those first attempts, this process's RSS is sampled every second. The queue lives
//! in the database, so memory should not grow with the backlog.

use std::time::{Duration, Instant};

use casebridge_domain::events::Trigger;
use casebridge_store::{events, jobs, webhooks};
use casebridge_testkit::TestBackend;
use casebridge_webhooks::delivery::enqueue_delivery;
use casebridge_webhooks::outbox::QUEUE;
use clap::ValueEnum;
use serde_json::{json, Value};

use crate::harness::{event, progress, rss_mib, Bench, WorkerOpts};
use crate::receiver::{CountingReceiver, Kind};
use crate::report::{m, Measure};

/// How the pending deliveries are made.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Via {
    /// Events with their deliveries and delivery jobs written one by one
    /// (`events::insert`, `webhooks::create_delivery`, `enqueue_delivery`): the backlog is
    /// 100k deliver jobs.
    Direct,
    /// Events recorded with `record_event`, which fans each out in its transaction: the same
    /// 100k deliver jobs, written as the platform writes them (the option's name is historical:
    /// it used to leave 100k dispatch jobs).
    Dispatch,
}

#[derive(Debug, Clone, Copy)]
pub struct Params {
    pub pending: usize,
    pub endpoints: usize,
    pub duration: Duration,
    pub batch: usize,
    pub via: Via,
}

impl Params {
    pub fn json(&self) -> Value {
        json!({
            "pending": self.pending,
            "endpoints": self.endpoints,
            "window_s": self.duration.as_secs(),
            "load_batch": self.batch,
            "via": format!("{:?}", self.via).to_lowercase(),
        })
    }
}

pub async fn run(
    backend: TestBackend,
    p: Params,
    opts: WorkerOpts,
) -> anyhow::Result<Vec<Measure>> {
    let bench = Bench::new(backend).await?;
    let rx = CountingReceiver::start(false)?;
    let company = bench.company("Bench backlog").await?;
    let mut hooks = Vec::new();
    for i in 0..p.endpoints {
        hooks.push(bench.webhook(company, &rx.url(Kind::Busy, i)).await?);
    }
    let events_n = p.pending.div_ceil(p.endpoints);
    let pending = events_n * p.endpoints;
    let rss_before_load = rss_mib();

    let load = Instant::now();
    match p.via {
        Via::Dispatch => {
            bench.record_batched(company, events_n, p.batch).await?;
        }
        Via::Direct => {
            let mut done = 0;
            let mut last_print = Instant::now();
            while done < events_n {
                let take = p.batch.min(events_n - done);
                let mut tx = bench.store.begin().await?;
                let mut rows = Vec::with_capacity(hooks.len());
                for hook in &hooks {
                    rows.push(webhooks::get(&mut tx, company, *hook).await?);
                }
                for i in 0..take {
                    let now = bench.now();
                    let e = events::insert(&mut tx, company, &event(done + i), now).await?;
                    for hook in &rows {
                        if let Some(d) =
                            webhooks::create_delivery(&mut tx, company, hook.id, e.id, now).await?
                        {
                            enqueue_delivery(&mut tx, hook, d, Trigger::Scheduled, now).await?;
                        }
                    }
                }
                tx.commit().await?;
                done += take;
                if last_print.elapsed() >= Duration::from_secs(3) {
                    progress(&format!(
                        "{}/{pending} deliveries pending ({:.0}/s), RSS {:.1} MiB",
                        done * p.endpoints,
                        (done * p.endpoints) as f64 / load.elapsed().as_secs_f64(),
                        rss_mib()
                    ));
                    last_print = Instant::now();
                }
            }
        }
    }
    let load_s = load.elapsed().as_secs_f64();
    progress(&format!("loaded {pending} pending in {load_s:.1} s"));

    // One claim of one job against the full backlog, timed, then given back untouched: the cost
    // every worker claim pays at this depth.
    let mut claim_ms = Vec::new();
    for _ in 0..3 {
        let t = Instant::now();
        let got = jobs::claim(&bench.store, QUEUE, 1, Duration::from_secs(60), bench.now()).await?;
        claim_ms.push(t.elapsed().as_secs_f64() * 1e3);
        for job in &got {
            jobs::release(&bench.store, job, bench.now()).await?;
        }
    }
    claim_ms.sort_by(f64::total_cmp);

    let rss_start = rss_mib();
    let worker = bench.start_worker(opts)?;
    let mut peak = rss_start;
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.tick().await;
    let end = loop {
        tick.tick().await;
        let rss = rss_mib();
        peak = peak.max(rss);
        let elapsed = worker.started.elapsed();
        let attempts = rx.total();
        if elapsed.as_secs() % 5 == 0 {
            progress(&format!(
                "{:>3} s: {attempts} first attempts ({:.0}/s), RSS {rss:.1} MiB",
                elapsed.as_secs(),
                attempts as f64 / elapsed.as_secs_f64()
            ));
        }
        if attempts >= pending || elapsed >= p.duration {
            break rss;
        }
    };
    let elapsed = worker.started.elapsed().as_secs_f64();
    let attempts = rx.total();
    worker.stop().await;
    let counts = bench.job_counts().await?;
    bench.close().await;
    progress(&format!("jobs by status at the end: {counts:?}"));

    Ok(vec![
        m("load_per_s", "deliveries/s", pending as f64 / load_s),
        m("claim_one", "ms", claim_ms[1]),
        m("attempts_per_s", "attempts/s", attempts as f64 / elapsed),
        m("attempts", "attempts", attempts as f64),
        m("window", "s", elapsed),
        m("rss_before_load", "MiB", rss_before_load),
        m("rss_start", "MiB", rss_start),
        m("rss_peak", "MiB", peak),
        m("rss_end", "MiB", end),
        m("rss_growth", "MiB", peak - rss_start),
    ])
}
