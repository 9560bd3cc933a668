//! Inbound Law Ruler webhooks through the real HTTP server: C client tasks each POST their share
//! of N distinct lead webhooks (JSON, the twelve fields Law Ruler sends) to the company's
//! `/hooks/lawruler/<token>`, one at a time (a closed loop). A webhook answered 2xx has been
//! applied in its transaction, so the accepted rate is the durable ingest rate.
//!
//! With `--updates P`, P % of the webhooks re-send a lead the same client task already sent,
//! with another status (an update of the case, not a no-op repeat).
//!
//! With `--rate R`, the webhooks are sent in an open loop instead: webhook i is due at
//! start + i/R and is sent then, whatever is still unanswered, and its latency is counted from
//! that instant (so a server that falls behind is charged for the wait).
//!
//! The store's group-commit counters over the clocked phase give the commits per second, the
//! webhooks per commit and (in the `Batched` mode) where the committer's time went: running the
//! units, or beginning and committing.

use std::collections::HashMap;
use std::time::Instant;

use anyhow::bail;
use casebridge_domain::page::PageRequest;
use casebridge_domain::records::CaseFilter;
use casebridge_store::{cases, GroupCommit};
use casebridge_testkit::TestBackend;
use serde_json::{json, Value};

use crate::harness::{progress, Bench};
use crate::report::{m, percentile, Measure};
use crate::server::ApiServer;

#[derive(Debug, Clone, Copy)]
pub struct Params {
    pub webhooks: usize,
    /// Concurrent client tasks.
    pub clients: usize,
    /// Percent of webhooks that update a lead sent earlier (0–100).
    pub updates_pct: u32,
    /// Send two webhooks (both statuses) before the clock starts, so the case type link and the
    /// status mappings exist, as they do once an integration has received its first webhook.
    pub warmup: bool,
    /// Open loop at this many webhooks per second (None: closed loop over `clients` tasks).
    pub rate: Option<f64>,
    /// The store's group-commit mode (None: the backend's default).
    pub group_commit: Option<GroupCommit>,
}

impl Params {
    pub fn json(&self) -> Value {
        json!({
            "webhooks": self.webhooks,
            "clients": self.clients,
            "updates_pct": self.updates_pct,
            "warmup": self.warmup,
            "rate": self.rate,
            "group_commit": self.group_commit.map(|m| format!("{m:?}")),
            "body": "json, 12 fields",
        })
    }
}

/// The two statuses webhooks carry: new leads arrive in the first, updates flip between them.
const STATUSES: [(&str, &str); 2] = [("7", "Intake"), ("8", "Qualified – Intake Completed")];

fn body(lead: u64, status: usize) -> Vec<u8> {
    let (status_id, status_name) = STATUSES[status];
    serde_json::to_vec(&json!({
        "Lead ID": lead.to_string(),
        "Case Type ID": "12",
        "Case Type": "Auto Accident",
        "Status ID": status_id,
        "Status": status_name,
        "Full Name": format!("Lead{lead} Bench"),
        "Created Date": "2026-11-01",
        "Primary Contact ID": format!("PC-{lead}"),
        "First Name": format!("Lead{lead}"),
        "Last Name": "Bench",
        "Email": format!("lead{lead}@example.com"),
        "Cell Phone": format!("+1 555 {:03} {:04}", lead / 10_000 % 1000, lead % 10_000),
    }))
    .expect("serializable")
}

struct Item {
    lead: u64,
    update: bool,
    status: usize,
    body: Vec<u8>,
}

/// Each client task's webhooks, in sending order. Lead ids are 100000 + i. An update re-sends a
/// lead created earlier by the same task (so it was answered before), round-robin over them,
/// with the other status than the lead's last one.
fn plan(p: &Params) -> Vec<Vec<Item>> {
    let mut tasks: Vec<Vec<Item>> = (0..p.clients).map(|_| Vec::new()).collect();
    let mut created: Vec<Vec<u64>> = vec![Vec::new(); p.clients];
    let mut next_update = vec![0usize; p.clients];
    let mut last_status: HashMap<u64, usize> = HashMap::new();
    for i in 0..p.webhooks {
        let t = i % p.clients;
        // A fixed, well-spread choice of which positions are updates.
        let is_update = p.updates_pct > 0
            && !created[t].is_empty()
            && (i as u64).wrapping_mul(2_654_435_761) % 100 < u64::from(p.updates_pct);
        let item = if is_update {
            let lead = created[t][next_update[t] % created[t].len()];
            next_update[t] += 1;
            let status = 1 - last_status[&lead];
            last_status.insert(lead, status);
            Item {
                lead,
                update: true,
                status,
                body: body(lead, status),
            }
        } else {
            let lead = 100_000 + i as u64;
            created[t].push(lead);
            last_status.insert(lead, 0);
            Item {
                lead,
                update: false,
                status: 0,
                body: body(lead, 0),
            }
        };
        tasks[t].push(item);
    }
    tasks
}

/// One answered webhook.
struct Sent {
    lead: u64,
    update: bool,
    status: usize,
    http: u16,
    /// `applied`, `duplicate`, …; empty when the body was not the expected JSON.
    outcome: String,
    case_created: Option<bool>,
    case_id: Option<String>,
    text: String,
    started: Instant,
    done: Instant,
}

async fn post(http: &reqwest::Client, url: &str, it: Item, started: Instant) -> Sent {
    let resp = http
        .post(url)
        .header("content-type", "application/json")
        .body(it.body)
        .send()
        .await;
    let (http_status, text) = match resp {
        Ok(r) => {
            let s = r.status().as_u16();
            (s, r.text().await.unwrap_or_default())
        }
        Err(e) => (0, format!("request failed: {e}")),
    };
    let done = Instant::now();
    let v: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
    Sent {
        lead: it.lead,
        update: it.update,
        status: it.status,
        http: http_status,
        outcome: v["status"].as_str().unwrap_or_default().to_owned(),
        case_created: v["case_created"].as_bool(),
        case_id: v["case_id"].as_str().map(str::to_owned),
        text,
        started,
        done,
    }
}

async fn client_task(http: reqwest::Client, url: String, items: Vec<Item>) -> Vec<Sent> {
    let mut out = Vec::with_capacity(items.len());
    for it in items {
        out.push(post(&http, &url, it, Instant::now()).await);
    }
    out
}

/// Open loop: each webhook sent at its due time, its latency counted from then.
async fn open_loop(
    http: reqwest::Client,
    url: String,
    items: Vec<Item>,
    rate: f64,
    start: Instant,
) -> anyhow::Result<Vec<Sent>> {
    let mut handles = Vec::with_capacity(items.len());
    for (i, it) in items.into_iter().enumerate() {
        let due = start + std::time::Duration::from_secs_f64(i as f64 / rate);
        tokio::time::sleep_until(due.into()).await;
        let (http, url) = (http.clone(), url.clone());
        handles.push(tokio::spawn(
            async move { post(&http, &url, it, due).await },
        ));
    }
    let mut out = Vec::with_capacity(handles.len());
    for h in handles {
        out.push(h.await?);
    }
    Ok(out)
}

pub async fn run(backend: TestBackend, p: Params) -> anyhow::Result<Vec<Measure>> {
    let mut bench = Bench::new(backend).await?;
    if let Some(mode) = p.group_commit {
        bench.store = bench.store.with_group_commit(mode);
    }
    let app = ApiServer::start(&bench).await?;
    let hook = app.lawruler_connected_offline(&bench).await?;
    let url = app.url(&hook);

    if p.warmup {
        for status in [0, 1] {
            let r = app
                .http
                .post(&url)
                .header("content-type", "application/json")
                .body(body(1, status))
                .send()
                .await?;
            let code = r.status();
            let text = r.text().await.unwrap_or_default();
            if !code.is_success() {
                bail!("warm-up webhook: {code} {text}");
            }
        }
    }

    if p.rate.is_some() && p.updates_pct > 0 {
        bail!("--rate sends every webhook without waiting for earlier answers: no --updates");
    }
    let tasks = plan(&Params {
        clients: if p.rate.is_some() { 1 } else { p.clients },
        ..p
    });
    let updates = tasks.iter().flatten().filter(|i| i.update).count();
    progress(&format!(
        "sending {} webhooks ({updates} updates) {} to {}/<token>",
        p.webhooks,
        match p.rate {
            Some(r) => format!("at {r}/s (open loop)"),
            None => format!("from {} client tasks", p.clients),
        },
        hook.rsplit_once('/').map_or("", |(dir, _)| dir)
    ));
    let group_before = bench.store.group_stats();
    let start = Instant::now();
    let mut sent: Vec<Sent> = Vec::with_capacity(p.webhooks);
    match p.rate {
        Some(rate) => {
            let items = tasks.into_iter().flatten().collect();
            sent = open_loop(app.http.clone(), url.clone(), items, rate, start).await?;
        }
        None => {
            let handles: Vec<_> = tasks
                .into_iter()
                .map(|items| tokio::spawn(client_task(app.http.clone(), url.clone(), items)))
                .collect();
            for h in handles {
                sent.extend(h.await?);
            }
        }
    }
    let group = bench.store.group_stats();
    let commits = (group.batches - group_before.batches) as f64;
    let grouped = (group.units - group_before.units) as f64;
    let run_ms = (group.run_us - group_before.run_us) as f64 / 1e3;
    let commit_ms = (group.commit_us - group_before.commit_us) as f64 / 1e3;

    // Every answer, classified.
    let mut by_status: HashMap<u16, usize> = HashMap::new();
    for s in &sent {
        *by_status.entry(s.http).or_default() += 1;
    }
    let ok: Vec<&Sent> = sent
        .iter()
        .filter(|s| (200..300).contains(&s.http))
        .collect();
    let failed: Vec<&Sent> = sent
        .iter()
        .filter(|s| !(200..300).contains(&s.http))
        .collect();
    let unexpected: Vec<&Sent> = ok
        .iter()
        .copied()
        .filter(|s| s.outcome != "applied" || s.case_created != Some(!s.update))
        .collect();

    let end = sent.iter().map(|s| s.done).max().unwrap_or(start);
    let elapsed = end.duration_since(start).as_secs_f64();
    let mut lat: Vec<f64> = sent
        .iter()
        .map(|s| s.done.duration_since(s.started).as_secs_f64() * 1e3)
        .collect();
    lat.sort_by(f64::total_cmp);
    // The rate between the 10th and the 90th percent of answers: no ramp-up, no tail.
    let mut done: Vec<Instant> = ok.iter().map(|s| s.done).collect();
    done.sort();
    let steady = if done.len() >= 20 {
        let a = done[done.len() / 10];
        let b = done[done.len() * 9 / 10];
        (done.len() * 9 / 10 - done.len() / 10) as f64 / b.duration_since(a).as_secs_f64()
    } else {
        f64::NAN
    };

    // Read back what was stored: every lead's case, with the status of its last webhook.
    let mut last_status: HashMap<u64, usize> = HashMap::new();
    let mut case_of: HashMap<u64, String> = HashMap::new();
    for s in &ok {
        if s.outcome == "applied" {
            last_status.insert(s.lead, s.status);
            if let Some(c) = &s.case_id {
                case_of.entry(s.lead).or_insert_with(|| c.clone());
            }
        }
    }
    let mut stored: HashMap<String, String> = HashMap::new(); // lead -> lawruler_status
    let mut conn = bench.store.conn().await?;
    let mut page = PageRequest {
        after: None,
        limit: 1000,
    };
    loop {
        let found = cases::list(&mut conn, app.company, &CaseFilter::default(), &page).await?;
        for c in &found.items {
            if let Some(r) = c.external_refs.iter().find(|r| r.provider == "lawruler") {
                let status = c
                    .custom_fields
                    .get("lawruler_status")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_owned();
                stored.insert(r.external_id.clone(), status);
            }
        }
        match found.next_after {
            Some(a) => page.after = Some(a),
            None => break,
        }
    }
    drop(conn);
    let lost = last_status
        .iter()
        .filter(|(lead, st)| {
            stored.get(&lead.to_string()).map(String::as_str) != Some(STATUSES[**st].1)
        })
        .count();
    let distinct_cases = case_of
        .values()
        .collect::<std::collections::HashSet<_>>()
        .len();

    app.stop().await;
    bench.close().await;

    progress(&format!(
        "{} of {} answered 2xx in {elapsed:.2} s; HTTP statuses {by_status:?}; \
         {} unexpected outcomes; {} cases stored for {} leads, {lost} not as last sent",
        ok.len(),
        sent.len(),
        unexpected.len(),
        stored.len(),
        last_status.len(),
    ));
    for s in failed.iter().chain(unexpected.iter()).take(5) {
        progress(&format!(
            "lead {} ({}): HTTP {} {}",
            s.lead,
            if s.update { "update" } else { "new" },
            s.http,
            s.text.chars().take(300).collect::<String>()
        ));
    }
    if !failed.is_empty() {
        bail!(
            "{} of {} webhooks were not answered 2xx ({by_status:?})",
            failed.len(),
            sent.len()
        );
    }
    if !unexpected.is_empty() || lost > 0 || distinct_cases != case_of.len() {
        bail!(
            "{} unexpected outcomes, {lost} leads not stored as last sent, {} cases for {} leads",
            unexpected.len(),
            distinct_cases,
            case_of.len()
        );
    }

    Ok(vec![
        m("webhooks_per_s", "webhooks/s", ok.len() as f64 / elapsed),
        m("steady_webhooks_per_s", "webhooks/s", steady),
        m("latency_p50", "ms", percentile(&lat, 50.0)),
        m("latency_p90", "ms", percentile(&lat, 90.0)),
        m("latency_p99", "ms", percentile(&lat, 99.0)),
        m("latency_max", "ms", percentile(&lat, 100.0)),
        m("elapsed", "s", elapsed),
        m("accepted", "webhooks", ok.len() as f64),
        m(
            "updates",
            "webhooks",
            sent.iter().filter(|s| s.update).count() as f64,
        ),
        m("non_2xx", "webhooks", failed.len() as f64),
        m("group_commits_per_s", "commits/s", commits / elapsed),
        m(
            "units_per_group_commit",
            "units",
            if commits > 0.0 {
                grouped / commits
            } else {
                0.0
            },
        ),
        // Batched mode only: where the committer's time went, per commit.
        m(
            "group_run_ms_per_commit",
            "ms",
            if commits > 0.0 { run_ms / commits } else { 0.0 },
        ),
        m(
            "group_begin_commit_ms_per_commit",
            "ms",
            if commits > 0.0 {
                commit_ms / commits
            } else {
                0.0
            },
        ),
        m(
            "committer_busy_pct",
            "%",
            (run_ms + commit_ms) / 1e3 / elapsed * 100.0,
        ),
    ])
}
