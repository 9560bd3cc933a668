//! End to end through the public HTTP API (issue 11): a load client with `senders` concurrent
//! tasks sends `POST /api/v1/calls` (each records a `call.started` event) to the API server as
//! `casebridge serve` builds it, with the `webhooks` worker running; one webhook points at the
//! counting receiver, and each delivery is matched to its request by `webhook-id` (the event id,
//! whose stored payload names the call the request created).
//!
//! In the same run, the ceilings it is read against:
//! - **HTTP ceiling**: the same load client (same senders, same JSON body size) against the
//!   receiver directly: what this machine's loopback HTTP does with nothing else in the way.
//! - **fsync ceiling**: one-row write transactions committed one after another on this
//!   database (an `audit_log` row each): what one durable commit costs here.
//!
//! Closed loop by default (each sender sends its next request when the previous one is
//! answered); `--rate R` sends open loop at R requests/s in all, whatever the answers, and
//! measures event → delivery latency under that offered load.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use casebridge_domain::ids::EventId;
use casebridge_testkit::TestBackend;
use reqwest::Method;
use serde_json::{json, Value};
use tokio::sync::Mutex;

use crate::harness::{self, progress, Bench, WorkerOpts};
use crate::receiver::{CountingReceiver, Kind};
use crate::report::{m, percentile, Measure};
use crate::server::ApiServer;

#[derive(Debug, Clone, Copy)]
pub struct Params {
    pub events: usize,
    pub senders: usize,
    /// Open loop at this many requests per second in all; `None`: closed loop.
    pub rate: Option<f64>,
    pub limit: Duration,
    /// The store's group-commit mode; `None`: the backend's default.
    pub group_commit: Option<casebridge_store::GroupCommit>,
}

impl Params {
    pub fn json(&self) -> Value {
        json!({"events": self.events, "senders": self.senders, "rate": self.rate,
               "group_commit": self.group_commit.map(|m| format!("{m:?}"))})
    }
}

fn call_body(i: usize) -> Value {
    json!({"direction": "outbound", "from_number": "+15550001000",
           "to_number": format!("+1555{:07}", i % 10_000_000)})
}

/// Requests per second of `senders` tasks sending `n` requests in all to `url`, closed loop.
async fn http_ceiling(
    http: &reqwest::Client,
    url: &str,
    n: usize,
    senders: usize,
) -> anyhow::Result<f64> {
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let start = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..senders {
        let (http, url, next) = (http.clone(), url.to_owned(), next.clone());
        tasks.push(tokio::spawn(async move {
            loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                if i >= n {
                    return anyhow::Ok(());
                }
                let r = http
                    .post(&url)
                    .header("webhook-id", format!("{i}"))
                    .json(&call_body(i))
                    .send()
                    .await?;
                anyhow::ensure!(r.status().is_success(), "receiver answered {}", r.status());
            }
        }));
    }
    for t in tasks {
        t.await??;
    }
    Ok(n as f64 / start.elapsed().as_secs_f64())
}

/// Durable one-row commits per second, one after another.
async fn fsync_ceiling(
    bench: &Bench,
    company: casebridge_domain::ids::CompanyId,
    n: usize,
) -> anyhow::Result<f64> {
    let start = Instant::now();
    for i in 0..n {
        let mut tx = bench.store.begin().await?;
        casebridge_store::audit::record(
            &mut tx,
            company,
            "bench",
            "fsync",
            &i.to_string(),
            bench.now(),
        )
        .await?;
        tx.commit().await?;
    }
    Ok(n as f64 / start.elapsed().as_secs_f64())
}

pub async fn run(
    backend: TestBackend,
    p: Params,
    opts: WorkerOpts,
) -> anyhow::Result<Vec<Measure>> {
    let mut bench = Bench::new(backend).await?;
    if let Some(mode) = p.group_commit {
        bench.store = bench.store.with_group_commit(mode);
    }
    let rx = CountingReceiver::start(true)?;
    let server = ApiServer::start(&bench).await?;
    // Ceilings first, on the quiet server: loopback HTTP to the receiver, then commits.
    // A second receiver that keeps nothing, so the ceiling's requests are not counted as
    // deliveries.
    let plain = CountingReceiver::start(false)?;
    let (own_before, _) = harness::cpu_s();
    let http_rps = http_ceiling(&server.http, &plain.url(Kind::Ok, 0), p.events, p.senders).await?;
    // The load client and a receiver alone: what each request costs the bench itself.
    let bench_cpu_ms = (harness::cpu_s().0 - own_before) * 1e3 / p.events as f64;
    drop(plain);
    let commits_per_s = fsync_ceiling(&bench, server.company, 1000.min(p.events)).await?;
    progress(&format!(
        "ceilings: HTTP {http_rps:.0} requests/s ({} senders), {commits_per_s:.0} commits/s",
        p.senders
    ));
    bench.webhook(server.company, &rx.url(Kind::Ok, 0)).await?;
    let worker = bench.start_worker(opts)?;

    // call id → when its request was sent.
    let sent: Arc<Mutex<HashMap<String, Instant>>> = Arc::new(Mutex::new(HashMap::new()));
    let server = Arc::new(server);
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let cpu_before = harness::cpu_s();
    let group_before = bench.store.group_stats();
    let wall = Instant::now();
    let start = Instant::now();
    let send_one = {
        let (server, sent) = (server.clone(), sent.clone());
        move |i: usize| {
            let (server, sent) = (server.clone(), sent.clone());
            async move {
                let at = Instant::now();
                let body = server
                    .ok(Method::POST, "/api/v1/calls", Some(call_body(i)))
                    .await?;
                let id = body["id"].as_str().context("a call id")?.to_owned();
                sent.lock().await.insert(id, at);
                anyhow::Ok(())
            }
        }
    };
    let mut tasks = Vec::new();
    match p.rate {
        None => {
            for _ in 0..p.senders {
                let (next, send_one) = (next.clone(), send_one.clone());
                tasks.push(tokio::spawn(async move {
                    loop {
                        let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        if i >= p.events {
                            return anyhow::Ok(());
                        }
                        send_one(i).await?;
                    }
                }));
            }
        }
        Some(rate) => {
            let gap = Duration::from_secs_f64(1.0 / rate);
            for i in 0..p.events {
                tokio::time::sleep_until((start + gap * i as u32).into()).await;
                tasks.push(tokio::spawn(send_one(i)));
            }
        }
    }
    for t in tasks {
        t.await??;
    }
    let accepted_s = start.elapsed().as_secs_f64();
    let waited = rx.wait_distinct(Kind::Ok, p.events, p.limit).await;
    if let Err(e) = &waited {
        progress(&format!("{e}"));
    }
    let cpu_after = harness::cpu_s();
    let group = bench.store.group_stats();
    let wall_us = wall.elapsed().as_micros() as f64;
    tokio::time::sleep(Duration::from_millis(300)).await;
    worker.stop().await;

    // Match each delivery to its request: webhook-id → event → its payload names the call.
    let arrivals = rx.arrivals();
    let mut first: HashMap<u128, Instant> = HashMap::new();
    for a in arrivals
        .iter()
        .filter(|a| a.kind == Kind::Ok && a.endpoint == 0)
    {
        first.entry(a.event).or_insert(a.at);
    }
    let sent = sent.lock().await.clone();
    let mut latencies = Vec::with_capacity(first.len());
    let mut unmatched = 0usize;
    {
        let mut conn = bench.store.conn().await?;
        for (event, at) in &first {
            let id = EventId::from_uuid(uuid::Uuid::from_u128(*event));
            let payload = casebridge_store::events::payload(&mut conn, server.company, id).await?;
            match sent
                .iter()
                .find(|(call, _)| payload.contains(call.as_str()))
            {
                Some((_, t)) => latencies.push(at.duration_since(*t).as_secs_f64() * 1e3),
                None => unmatched += 1,
            }
        }
    }
    latencies.sort_by(f64::total_cmp);
    let delivered = first.len();
    let duplicates = arrivals.iter().filter(|a| a.endpoint == 0).count() - delivered;
    let missing = p.events.saturating_sub(delivered);
    let last = first.values().max().copied().unwrap_or(start);
    let e2e_s = last.duration_since(start).as_secs_f64();
    let events_per_s = delivered as f64 / e2e_s;
    let accepted_per_s = p.events as f64 / accepted_s;
    // CPU per delivered event, service + database: this process's CPU (server, worker, load
    // client, receiver) less what the client and receiver cost per request in the HTTP ceiling
    // run, plus the PostgreSQL server's (0 on SQLite, which runs in this process).
    let own_ms = (cpu_after.0 - cpu_before.0) * 1e3 / delivered.max(1) as f64;
    let db_ms = (cpu_after.1 - cpu_before.1) * 1e3 / delivered.max(1) as f64;
    let cpu_per_event_ms = (own_ms - bench_cpu_ms).max(0.0) + db_ms;
    // How the group committer spent the run (`Batched` mode only; zeros in `PerUnit`).
    let batches = (group.batches - group_before.batches) as f64;
    let units_per_batch = (group.units - group_before.units) as f64 / batches.max(1.0);
    let committer_busy = ((group.run_us - group_before.run_us)
        + (group.commit_us - group_before.commit_us)) as f64
        / wall_us.max(1.0);
    let units_per_event = (group.units - group_before.units) as f64 / delivered.max(1) as f64;
    let counts = bench.job_counts().await?;
    let left: i64 = counts.iter().map(|(_, n)| n).sum();
    if let Ok(s) = Arc::try_unwrap(server) {
        s.stop().await;
    }
    bench.close().await;
    progress(&format!(
        "{delivered}/{} delivered in {e2e_s:.2} s ({events_per_s:.0} events/s; requests \
         answered at {accepted_per_s:.0}/s), {duplicates} duplicate(s), {missing} missing, \
         {unmatched} unmatched, jobs left: {counts:?}",
        p.events
    ));
    Ok(vec![
        m("events_per_s", "events/s", events_per_s),
        m("accepted_per_s", "requests/s", accepted_per_s),
        m("latency_p50", "ms", percentile(&latencies, 50.0)),
        m("latency_p99", "ms", percentile(&latencies, 99.0)),
        m("ceiling_http", "requests/s", http_rps),
        m("ceiling_commits", "commits/s", commits_per_s),
        m("ratio_to_http", "x", events_per_s / http_rps),
        m("ratio_to_commits", "x", events_per_s / commits_per_s),
        m("cpu_per_event", "ms", cpu_per_event_ms),
        m("cpu_db_per_event", "ms", db_ms),
        m("cpu_bench_per_request", "ms", bench_cpu_ms),
        m("group_units_per_event", "units", units_per_event),
        m("group_units_per_batch", "units", units_per_batch),
        m("committer_busy", "fraction", committer_busy),
        m("missing", "events", missing as f64),
        m("duplicates", "deliveries", duplicates as f64),
        m("unmatched", "deliveries", unmatched as f64),
        m("jobs_left", "jobs", left as f64),
    ])
}
