//! Outbound Law Ruler operations per second against the Law Ruler simulator, with no rate limit.
//!
//! Setup (not timed): the simulator with L leads, the company connected to it through the API
//! (`PUT /api/v1/integrations/lawruler/connection`, which verifies the credentials against the
//! simulator), L platform cases linked to the leads, then "Enable Integration", "Send" and "Send
//! messages" turned on. Load (timed separately): N outbound SMS recorded through
//! `POST /api/v1/messages`, spread round-robin over the cases; each becomes one note operation
//! in the CRM outbox, committed with the message. Then the `crm` worker starts; the clock runs
//! until the simulator has stored all N notes. Each note body is unique (`op <i>`), so missing
//! notes, duplicates and per-lead order can be checked.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use casebridge_crm::lawruler::outbound::{CONNECTION_CONCURRENCY, QUEUE};
use casebridge_domain::crm_ops::OpState;
use casebridge_sim::lawruler::{LawRulerSim, NewLead};
use casebridge_store::crm_ops;
use casebridge_testkit::TestBackend;
use jiff::Timestamp;
use reqwest::Method;
use serde_json::{json, Value};

use crate::harness::{progress, Bench, WorkerOpts};
use crate::report::{m, Measure};
use crate::server::{start_crm_worker, ApiServer};

#[derive(Debug, Clone, Copy)]
pub struct Params {
    pub ops: usize,
    pub leads: usize,
    /// Client tasks posting the messages in the load phase (each owns a share of the leads, so
    /// a lead's messages are recorded in order).
    pub load_clients: usize,
    pub limit: Duration,
}

impl Params {
    pub fn json(&self) -> Value {
        json!({
            "ops": self.ops,
            "leads": self.leads,
            "load_clients": self.load_clients,
            "op": "note (outbound SMS)",
            "connection_concurrency": CONNECTION_CONCURRENCY,
            "requests_per_minute": 0,
        })
    }
}

pub async fn run(
    backend: TestBackend,
    p: Params,
    opts: WorkerOpts,
) -> anyhow::Result<Vec<Measure>> {
    let lr = LawRulerSim::new().start().await;
    let sim = lr.sim.clone();
    // The seed has leads 10001 and 10002; add the rest.
    while sim.leads().len() < p.leads {
        let n = sim.leads().len();
        sim.create_lead(NewLead::new("Bench", &format!("Lead{n}"), "12"))
            .map_err(|e| anyhow::anyhow!("creating a simulator lead: {e}"))?;
    }
    let leads: Vec<String> = sim
        .leads()
        .into_iter()
        .take(p.leads)
        .map(|l| l.lead_id)
        .collect();

    let bench = Bench::new(backend).await?;
    let app = ApiServer::start(&bench).await?;
    app.ok(
        Method::PUT,
        "/api/v1/integrations/lawruler/connection",
        Some(
            json!({"username": "demo", "password": "demo-password", "client_root": lr.base_url,
                    "client_secret": "demo-secret", "key": "demo-key"}),
        ),
    )
    .await?;
    let case_type = app
        .ok(
            Method::POST,
            "/api/v1/case-types",
            Some(json!({"name": "Auto"})),
        )
        .await?["id"]
        .as_str()
        .context("case type id")?
        .to_owned();
    let mut cases = Vec::with_capacity(leads.len());
    for lead in &leads {
        let body = app
            .ok(
                Method::POST,
                "/api/v1/cases",
                Some(
                    json!({"name": format!("Lead {lead}"), "case_type_id": case_type,
                            "external_refs": [{"provider": "lawruler", "external_id": lead}]}),
                ),
            )
            .await?;
        cases.push(body["id"].as_str().context("case id")?.to_owned());
    }
    app.ok(
        Method::PUT,
        "/api/v1/integrations/lawruler/settings",
        Some(json!({"enable_integration": true, "send": true, "send_messages": true})),
    )
    .await?;
    sim.clear_requests();

    // Load: op i goes to lead i % L; task t posts the ops of the leads it owns, in order.
    let app = std::sync::Arc::new(app);
    let load = Instant::now();
    let clients = p.load_clients.clamp(1, p.leads.max(1));
    let mut handles = Vec::new();
    for t in 0..clients {
        let app = app.clone();
        let cases = cases.clone();
        let (ops, leads_n) = (p.ops, p.leads);
        handles.push(tokio::spawn(async move {
            for i in (0..ops).filter(|i| (i % leads_n) % clients == t) {
                let r = app
                    .call(
                        Method::POST,
                        "/api/v1/messages",
                        Some(json!({"case_id": cases[i % leads_n], "channel": "sms",
                                    "direction": "outbound", "from": "+15550001000",
                                    "to": "+15550102000", "body": format!("op {i}")})),
                    )
                    .await?;
                if r.status.as_u16() != 201 {
                    bail!("POST /api/v1/messages (op {i}): {} {}", r.status, r.text);
                }
            }
            Ok::<_, anyhow::Error>(())
        }));
    }
    for h in handles {
        h.await??;
    }
    let load_s = load.elapsed().as_secs_f64();
    progress(&format!(
        "recorded {} messages over {} leads in {load_s:.1} s ({:.0}/s); starting the crm worker",
        p.ops,
        p.leads,
        p.ops as f64 / load_s
    ));

    let start_ts = Timestamp::now();
    let worker = start_crm_worker(&bench, opts, 0);
    let count = || -> usize { leads.iter().map(|l| sim.notes(l).len()).sum() };
    let mut last_print = Instant::now();
    while count() < p.ops && worker.started.elapsed() < p.limit {
        tokio::time::sleep(Duration::from_millis(50)).await;
        if last_print.elapsed() >= Duration::from_secs(5) {
            progress(&format!("{}/{} notes in Law Ruler", count(), p.ops));
            last_print = Instant::now();
        }
    }
    if count() < p.ops {
        progress(&format!("gave up after {:?}", p.limit));
    }
    // Let the last operations record their outcome (and any duplicate land).
    let drain = Instant::now();
    while drain.elapsed() < Duration::from_secs(10)
        && bench
            .job_counts_in(QUEUE)
            .await?
            .iter()
            .map(|(_, n)| n)
            .sum::<i64>()
            > 0
    {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    worker.stop().await;

    // What Law Ruler received.
    let mut seen: HashSet<usize> = HashSet::new();
    let (mut duplicates, mut misrouted, mut out_of_order, mut foreign) = (0, 0, 0, 0);
    let mut first_at: Option<Timestamp> = None;
    let mut last_at: Option<Timestamp> = None;
    let mut arrivals: Vec<Timestamp> = Vec::with_capacity(p.ops);
    for (k, lead) in leads.iter().enumerate() {
        let mut prev: Option<usize> = None;
        for note in sim.notes(lead) {
            first_at = Some(first_at.map_or(note.updated_at, |t| t.min(note.updated_at)));
            last_at = Some(last_at.map_or(note.updated_at, |t| t.max(note.updated_at)));
            arrivals.push(note.updated_at);
            let Some(i) = note
                .body
                .strip_prefix("op ")
                .and_then(|n| n.trim().parse::<usize>().ok())
            else {
                foreign += 1;
                continue;
            };
            if !seen.insert(i) {
                duplicates += 1;
                continue;
            }
            if i % p.leads != k {
                misrouted += 1;
            }
            if prev.is_some_and(|pv| pv > i) {
                out_of_order += 1;
            }
            prev = Some(i);
        }
    }
    let delivered = seen.len();
    let missing = p.ops - delivered.min(p.ops);
    let requests = sim.requests();
    let token_requests = requests.iter().filter(|r| r.path.contains("token")).count();
    let non_2xx = requests
        .iter()
        .filter(|r| !(200..300).contains(&r.status))
        .count();
    let since =
        |t: Option<Timestamp>| t.map_or(f64::NAN, |t| t.duration_since(start_ts).as_secs_f64());
    let elapsed = since(last_at);
    // The rate while the backlog was large (first quarter of the notes) and small (last
    // quarter): the claim's cost grows with the number of pending jobs.
    arrivals.sort();
    let (first_quarter, last_quarter) = if arrivals.len() >= 8 {
        let q = arrivals.len() / 4;
        let n = arrivals.len();
        (
            q as f64 / since(Some(arrivals[q - 1])),
            q as f64
                / arrivals[n - 1]
                    .duration_since(arrivals[n - 1 - q])
                    .as_secs_f64(),
        )
    } else {
        (f64::NAN, f64::NAN)
    };
    let mut conn = bench.store.conn().await?;
    let states = crm_ops::counts(&mut conn, app.company, "lawruler").await?;
    drop(conn);
    let done = states
        .iter()
        .find(|(s, _)| *s == OpState::Done)
        .map_or(0, |(_, n)| *n);
    let jobs_left: i64 = bench
        .job_counts_in(QUEUE)
        .await?
        .iter()
        .map(|(_, n)| n)
        .sum();
    if let Ok(app) = std::sync::Arc::try_unwrap(app) {
        app.stop().await;
    }
    bench.close().await;
    drop(lr);

    progress(&format!(
        "{delivered}/{} notes in {elapsed:.2} s; {duplicates} duplicate(s), {missing} missing, \
         {out_of_order} out of order, {misrouted} on the wrong lead, {foreign} foreign; \
         {} requests to Law Ruler ({token_requests} for tokens, {non_2xx} not 2xx); \
         operations by state {states:?}; {jobs_left} crm jobs left",
        p.ops,
        requests.len(),
    ));
    Ok(vec![
        m("ops_per_s", "ops/s", delivered as f64 / elapsed),
        m("ops_per_s_first_quarter", "ops/s", first_quarter),
        m("ops_per_s_last_quarter", "ops/s", last_quarter),
        m("elapsed", "s", elapsed),
        m("first_op", "ms", since(first_at) * 1e3),
        m("load_messages_per_s", "messages/s", p.ops as f64 / load_s),
        m("missing", "ops", missing as f64),
        m("duplicates", "ops", duplicates as f64),
        m("out_of_order", "ops", out_of_order as f64),
        m("misrouted", "ops", misrouted as f64),
        m("ops_done", "ops", done as f64),
        m("jobs_left", "jobs", jobs_left as f64),
        m("lawruler_requests", "requests", requests.len() as f64),
        m("token_requests", "requests", token_requests as f64),
        m("lawruler_non_2xx", "requests", non_2xx as f64),
    ])
}
