//! The cost of one claim against a growing backlog of jobs that cannot run (issue 11): the queue
//! is filled to each size in turn (1,000, 100,000, 1,000,000 by default) and, at each size, one
//! claim of one job is timed many times.
//!
//! The backlog is the three kinds of jobs a claim must not scan, a third each:
//! - not due: no key, `run_at` a day ahead;
//! - behind a concurrency key at its limit: two "endpoints", limit 4 each (as webhook
//!   deliveries), so all but 8 wait for a slot;
//! - behind an ordering key: 100 "leads", one job at the head of each, the rest behind it.
//!
//! So about 108 jobs are runnable at any size. Each timed claim takes one of them and the job is
//! then completed (timed too), which hands its key to the next job, so the runnable set stays the
//! same. Jobs are enqueued with `jobs::enqueue` in transactions of 5,000 (PostgreSQL: 4 loaders
//! at once, on disjoint keys). Before timing, claims run until every new job with a concurrency
//! key has been gated (`scheduled` → `blocked`/`pending`), so the timed claims see the steady
//! state; that settling is timed too (`settle_s`).

use std::time::{Duration, Instant};

use casebridge_domain::jobs::NewJob;
use casebridge_store::{jobs, Store};
use casebridge_testkit::TestBackend;
use serde_json::{json, Value};

use crate::harness::{progress, Bench};
use crate::report::{m, Measure};

const QUEUE: &str = "bench";
const BATCH: usize = 5_000;

#[derive(Debug, Clone)]
pub struct Params {
    pub sizes: Vec<usize>,
    /// Timed claims per size.
    pub claims: usize,
}

impl Params {
    pub fn json(&self) -> Value {
        json!({ "sizes": self.sizes, "claims_per_size": self.claims, "load_batch": BATCH })
    }
}

fn job(i: usize, loader: usize, now: jiff::Timestamp) -> NewJob {
    let payload = json!({ "i": i });
    match i % 3 {
        0 => NewJob::new(QUEUE, "later", payload).run_at(
            now.checked_add(jiff::SignedDuration::from_hours(24))
                .expect("in range"),
        ),
        1 => NewJob::new(QUEUE, "deliver", payload).concurrency(format!("endpoint-{}", i % 2), 4),
        _ => NewJob::new(QUEUE, "ordered", payload)
            .ordering_key(format!("lead-{loader}-{}", (i / 3) % 25)),
    }
}

/// Enqueues jobs `from..to`, split over `loaders` concurrent tasks.
async fn fill(store: &Store, from: usize, to: usize, loaders: usize) -> anyhow::Result<()> {
    let mut tasks = Vec::new();
    for loader in 0..loaders {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            let mine: Vec<usize> = (from..to).filter(|i| i % loaders == loader).collect();
            for chunk in mine.chunks(BATCH) {
                let now = jiff::Timestamp::now();
                let mut tx = store.begin().await?;
                for &i in chunk {
                    jobs::enqueue(&mut tx, &job(i, loader, now), now).await?;
                }
                tx.commit().await?;
            }
            anyhow::Ok(())
        }));
    }
    for t in tasks {
        t.await??;
    }
    Ok(())
}

async fn scheduled(store: &Store) -> anyhow::Result<i64> {
    let mut conn = store.conn().await?;
    Ok(jobs::counts(&mut conn)
        .await?
        .into_iter()
        .filter(|(q, s, _)| q == QUEUE && s == "scheduled")
        .map(|(_, _, n)| n)
        .sum())
}

fn name(prefix: &str, size: usize) -> &'static str {
    Box::leak(format!("{prefix}_{size}").into_boxed_str())
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

pub async fn run(backend: TestBackend, p: Params) -> anyhow::Result<Vec<Measure>> {
    let bench = Bench::new(backend).await?;
    let store = bench.store.clone();
    let loaders = match backend {
        TestBackend::Sqlite => 1,
        TestBackend::Postgres => 4,
    };
    let lease = Duration::from_secs(60);
    let mut out = Vec::new();
    let mut loaded = 0;
    let mut claim_at = Vec::new();
    for &size in &p.sizes {
        let t = Instant::now();
        fill(&store, loaded, size, loaders).await?;
        let load_s = t.elapsed().as_secs_f64();
        let load_rate = (size - loaded) as f64 / load_s;
        progress(&format!(
            "{size} jobs enqueued (+{} in {load_s:.1} s, {load_rate:.0}/s)",
            size - loaded
        ));
        out.push(m(name("enqueue_per_s", size), "jobs/s", load_rate));
        loaded = size;

        // Gate the new keyed jobs (PostgreSQL): each claim gates up to 200 due `scheduled` jobs.
        let t = Instant::now();
        let mut rounds = 0;
        while scheduled(&store).await? > 0 {
            for _ in 0..100 {
                for job in jobs::claim(&store, QUEUE, 1, lease, bench.now()).await? {
                    jobs::release(&store, &job, bench.now()).await?;
                }
                rounds += 1;
            }
        }
        let settle_s = t.elapsed().as_secs_f64();
        progress(&format!("gated in {settle_s:.1} s ({rounds} claims)"));

        let mut claims = Vec::with_capacity(p.claims);
        let mut completes = Vec::with_capacity(p.claims);
        for _ in 0..p.claims {
            let t = Instant::now();
            let got = jobs::claim(&store, QUEUE, 1, lease, bench.now()).await?;
            claims.push(t.elapsed().as_secs_f64() * 1e3);
            anyhow::ensure!(got.len() == 1, "a claim found nothing with {size} pending");
            let t = Instant::now();
            jobs::complete(&store, &got[0]).await?;
            completes.push(t.elapsed().as_secs_f64() * 1e3);
        }
        let claim_ms = median(claims);
        let complete_ms = median(completes);
        progress(&format!(
            "{size} pending: claim {claim_ms:.3} ms, complete {complete_ms:.3} ms (medians of {})",
            p.claims
        ));
        claim_at.push(claim_ms);
        out.push(m(name("claim_ms", size), "ms", claim_ms));
        out.push(m(name("complete_ms", size), "ms", complete_ms));
        out.push(m(name("settle_s", size), "s", settle_s));
    }
    if claim_at.len() >= 2 {
        out.push(m(
            "ratio_largest_to_smallest",
            "x",
            claim_at[claim_at.len() - 1] / claim_at[0],
        ));
    }
    bench.close().await;
    Ok(out)
}
