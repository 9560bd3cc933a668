//! Outbound SmartAdvocate operations per second against the SmartAdvocate simulator, with no
//! rate limit.
//!
//! Setup (not timed): the simulator with C cases (numbers `91xxxxx`), the company connected to
//! it through the API (`PUT /api/v1/integrations/smartadvocate/connection`, which authenticates
//! and probes the permissions against the simulator), C platform cases linked to them by case
//! number, then "Enable Integration", "Send mapping to SmartAdvocate" and "Send messages" turned
//! on. Load (timed separately): N outbound SMS recorded through `POST /api/v1/messages`, spread
//! round-robin over the cases; each becomes one note operation in the CRM outbox, committed with
//! the message. Then the `crm` worker starts; the clock runs until the simulator has logged N
//! accepted note inserts. Each sending is two requests, as the sender makes them: the case looked
//! up by number (`CaseInfo`), then the note inserted. Each note text is unique (`op <i>`), so the
//! request log shows missing notes, duplicates and per-case order.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use casebridge_crm::connector::QUEUE;
use casebridge_crm::outbox::CONNECTION_CONCURRENCY;
use casebridge_domain::crm_ops::OpState;
use casebridge_sim::smartadvocate::{
    Operation, SimCase, SimSecondStatus, SmartAdvocateSim, DEMO_PASSWORD, DEMO_USERNAME,
};
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
    pub cases: usize,
    /// Client tasks posting the messages in the load phase (each owns a share of the cases, so
    /// a case's messages are recorded in order).
    pub load_clients: usize,
    pub limit: Duration,
}

impl Params {
    pub fn json(&self) -> Value {
        json!({
            "ops": self.ops,
            "cases": self.cases,
            "load_clients": self.load_clients,
            "op": "note (outbound SMS)",
            "requests_per_op": 2,
            "connection_concurrency": CONNECTION_CONCURRENCY,
            "requests_per_minute": 0,
        })
    }
}

/// A simulator case of type 1, its primary plaintiff the seeded contact 7001.
fn sim_case(k: usize) -> SimCase {
    let at = Timestamp::now();
    SimCase {
        case_id: 200_000 + k as u64,
        case_number: format!("91{k:05}"),
        case_type_id: 1,
        status_id: 1,
        status_from: at,
        second_statuses: vec![SimSecondStatus {
            status_type_id: 10,
            status_id: 101,
            from: at,
        }],
        plaintiff_contact_id: 7001,
        udf_values: Default::default(),
        notes: Vec::new(),
        created: at,
        modified: at,
    }
}

pub async fn run(
    backend: TestBackend,
    p: Params,
    opts: WorkerOpts,
) -> anyhow::Result<Vec<Measure>> {
    let sa = SmartAdvocateSim::new().start().await;
    let sim = sa.sim.clone();
    let sim_cases: Vec<SimCase> = (0..p.cases).map(sim_case).collect();
    for c in &sim_cases {
        sim.add_case(c.clone());
    }
    // The case id (in request paths) → its index.
    let index: HashMap<String, usize> = sim_cases
        .iter()
        .enumerate()
        .map(|(k, c)| (c.case_id.to_string(), k))
        .collect();

    let bench = Bench::new(backend).await?;
    let app = ApiServer::start(&bench).await?;
    app.ok(
        Method::PUT,
        "/api/v1/integrations/smartadvocate/connection",
        Some(
            json!({"base_url": sa.base_url, "username": DEMO_USERNAME, "password": DEMO_PASSWORD}),
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
    let mut cases = Vec::with_capacity(sim_cases.len());
    for c in &sim_cases {
        let body = app
            .ok(
                Method::POST,
                "/api/v1/cases",
                Some(
                    json!({"name": format!("Case {}", c.case_number), "case_type_id": case_type,
                            "external_refs": [{"provider": "smartadvocate",
                                               "external_id": c.case_number}]}),
                ),
            )
            .await?;
        cases.push(body["id"].as_str().context("case id")?.to_owned());
    }
    app.ok(
        Method::PUT,
        "/api/v1/integrations/smartadvocate/settings",
        Some(json!({"enable_integration": true, "send": true, "send_messages": true})),
    )
    .await?;
    sim.clear_requests();

    // Load: op i goes to case i % C; task t posts the ops of the cases it owns, in order.
    let app = std::sync::Arc::new(app);
    let load = Instant::now();
    let clients = p.load_clients.clamp(1, p.cases.max(1));
    let mut handles = Vec::new();
    for t in 0..clients {
        let app = app.clone();
        let cases = cases.clone();
        let (ops, cases_n) = (p.ops, p.cases);
        handles.push(tokio::spawn(async move {
            for i in (0..ops).filter(|i| (i % cases_n) % clients == t) {
                let r = app
                    .call(
                        Method::POST,
                        "/api/v1/messages",
                        Some(json!({"case_id": cases[i % cases_n], "channel": "sms",
                                    "direction": "outbound", "from": "+15550001000",
                                    "to": "+15551230001", "body": format!("op {i}")})),
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
        "recorded {} messages over {} cases in {load_s:.1} s ({:.0}/s); starting the crm worker",
        p.ops,
        p.cases,
        p.ops as f64 / load_s
    ));

    let start_ts = Timestamp::now();
    let worker = start_crm_worker(&bench, opts, 0);
    let accepted = || -> Vec<_> {
        sim.requests_of(Operation::InsertNote)
            .into_iter()
            .filter(|r| (200..300).contains(&r.status))
            .collect()
    };
    let mut last_print = Instant::now();
    while accepted().len() < p.ops && worker.started.elapsed() < p.limit {
        tokio::time::sleep(Duration::from_millis(50)).await;
        if last_print.elapsed() >= Duration::from_secs(5) {
            progress(&format!(
                "{}/{} notes in SmartAdvocate",
                accepted().len(),
                p.ops
            ));
            last_print = Instant::now();
        }
    }
    if accepted().len() < p.ops {
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

    // What SmartAdvocate received, in arrival order (the log's `seq`).
    let mut inserts = accepted();
    inserts.sort_by_key(|r| r.seq);
    let mut seen: HashSet<usize> = HashSet::new();
    let mut prev: HashMap<usize, usize> = HashMap::new();
    let (mut duplicates, mut misrouted, mut out_of_order, mut foreign) = (0, 0, 0, 0);
    let mut arrivals: Vec<Timestamp> = Vec::with_capacity(p.ops);
    for r in &inserts {
        arrivals.push(r.at);
        let case = r
            .path
            .split('/')
            .nth(2)
            .and_then(|id| index.get(id))
            .copied();
        let op = r
            .json
            .as_ref()
            .and_then(|j| j["noteText"].as_str())
            .and_then(|t| t.strip_prefix("op "))
            .and_then(|n| n.trim().parse::<usize>().ok());
        let (Some(k), Some(i)) = (case, op) else {
            foreign += 1;
            continue;
        };
        if !seen.insert(i) {
            duplicates += 1;
            continue;
        }
        if i % p.cases != k {
            misrouted += 1;
        }
        if prev.get(&k).is_some_and(|&pv| pv > i) {
            out_of_order += 1;
        }
        prev.insert(k, i);
    }
    // The notes the simulator holds agree with the log.
    let held: usize = sim
        .cases()
        .iter()
        .filter(|c| index.contains_key(&c.case_id.to_string()))
        .map(|c| c.notes.len())
        .sum();
    let delivered = seen.len();
    let missing = p.ops - delivered.min(p.ops);
    let requests = sim.requests();
    let token_requests = requests
        .iter()
        .filter(|r| r.operation == Some(Operation::Authenticate))
        .count();
    let lookups = requests
        .iter()
        .filter(|r| r.operation == Some(Operation::CaseInfo))
        .count();
    let non_2xx = requests
        .iter()
        .filter(|r| !(200..300).contains(&r.status))
        .count();
    let since = |t: Timestamp| t.duration_since(start_ts).as_secs_f64();
    let first_at = arrivals.iter().min().copied();
    let elapsed = arrivals.iter().max().map_or(f64::NAN, |t| since(*t));
    // The rate while the backlog was large (first quarter of the notes) and small (last
    // quarter).
    arrivals.sort();
    let (first_quarter, last_quarter) = if arrivals.len() >= 8 {
        let q = arrivals.len() / 4;
        let n = arrivals.len();
        (
            q as f64 / since(arrivals[q - 1]),
            q as f64
                / arrivals[n - 1]
                    .duration_since(arrivals[n - 1 - q])
                    .as_secs_f64(),
        )
    } else {
        (f64::NAN, f64::NAN)
    };
    let mut conn = bench.store.conn().await?;
    let states = crm_ops::counts(&mut conn, app.company, "smartadvocate").await?;
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
    drop(sa);

    progress(&format!(
        "{delivered}/{} notes in {elapsed:.2} s; {duplicates} duplicate(s), {missing} missing, \
         {out_of_order} out of order, {misrouted} on the wrong case, {foreign} foreign, {held} \
         held by the simulator; {} requests to SmartAdvocate ({lookups} case lookups, \
         {token_requests} for tokens, {non_2xx} not 2xx); operations by state {states:?}; \
         {jobs_left} crm jobs left",
        p.ops,
        requests.len(),
    ));
    Ok(vec![
        m("ops_per_s", "ops/s", delivered as f64 / elapsed),
        m("ops_per_s_first_quarter", "ops/s", first_quarter),
        m("ops_per_s_last_quarter", "ops/s", last_quarter),
        m("elapsed", "s", elapsed),
        m("first_op", "ms", first_at.map_or(f64::NAN, since) * 1e3),
        m("load_messages_per_s", "messages/s", p.ops as f64 / load_s),
        m("missing", "ops", missing as f64),
        m("duplicates", "ops", duplicates as f64),
        m("out_of_order", "ops", out_of_order as f64),
        m("misrouted", "ops", misrouted as f64),
        m("notes_held", "notes", held as f64),
        m("ops_done", "ops", done as f64),
        m("jobs_left", "jobs", jobs_left as f64),
        m("smartadvocate_requests", "requests", requests.len() as f64),
        m("case_lookups", "requests", lookups as f64),
        m("token_requests", "requests", token_requests as f64),
        m("smartadvocate_non_2xx", "requests", non_2xx as f64),
    ])
}
