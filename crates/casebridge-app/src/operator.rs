//! What the operator's `/metrics` reads from the database at each scrape: queue depth and the
//! age of the oldest due job, CRM operations by state, connected integrations and their
//! configuration errors, and the connection pool. Counters and durations of events (requests,
//! jobs, webhook attempts, CRM calls) are recorded where they happen, through the `metrics`
//! crate; these are levels, read fresh so they are exact for this database.
//!
//! Every known queue, state and CRM is reported, with 0 when empty: an alert on a series that
//! vanishes when it is empty would never fire, and one that appears late has no history.

use casebridge_domain::crm_ops::OpState;
use casebridge_domain::integrations::Provider;
use casebridge_store::{crm_ops, integrations, jobs, PoolStats};
use jiff::Unit;

use crate::{App, Result};

/// The statuses a job can have in the store.
pub const JOB_STATES: [&str; 6] = [
    "pending",
    "running",
    "waiting",
    "scheduled",
    "blocked",
    "dead",
];

/// The queues casebridge runs.
const QUEUES: [&str; 2] = [
    casebridge_webhooks::outbox::QUEUE,
    casebridge_crm::connector::QUEUE,
];

const PROVIDERS: [Provider; 2] = [Provider::LawRuler, Provider::SmartAdvocate];

/// One queue in one state.
#[derive(Debug, Clone, PartialEq)]
pub struct QueueLevel {
    pub queue: String,
    pub state: &'static str,
    pub jobs: u64,
    /// Seconds since the oldest due job became due; `None` for `running` and `dead`, whose
    /// times say nothing about waiting; 0 when no job is due.
    pub oldest_due_seconds: Option<f64>,
}

/// One CRM's integrations.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CrmLevel {
    pub provider: Provider,
    /// Operations per state, in [`OpState::ALL`] order.
    pub operations: Vec<(OpState, u64)>,
    pub connected: u64,
    pub config_errors: u64,
}

/// The levels at one moment.
#[derive(Debug, Clone)]
pub struct Levels {
    pub queues: Vec<QueueLevel>,
    pub crms: Vec<CrmLevel>,
    pub pool: PoolStats,
}

/// Reads the levels (three aggregate queries on one pooled connection).
pub async fn levels(app: &App) -> Result<Levels> {
    let at = app.now();
    let mut conn = app.store().conn().await?;
    let depth = jobs::depth(&mut conn, at).await?;
    let ops = crm_ops::totals(&mut conn).await?;
    let health = integrations::health_totals(&mut conn).await?;
    drop(conn);

    let mut names: Vec<String> = QUEUES.iter().map(|q| (*q).to_owned()).collect();
    for d in &depth {
        if !names.contains(&d.queue) {
            names.push(d.queue.clone());
        }
    }
    let mut queues = Vec::new();
    for queue in names {
        for state in JOB_STATES {
            let row = depth.iter().find(|d| d.queue == queue && d.status == state);
            let oldest_due_seconds = (state != "running" && state != "dead").then(|| {
                row.and_then(|d| d.oldest_due)
                    .and_then(|t| (at - t).total(Unit::Second).ok())
                    .unwrap_or(0.0)
                    .max(0.0)
            });
            queues.push(QueueLevel {
                queue: queue.clone(),
                state,
                jobs: row.map_or(0, |d| d.jobs),
                oldest_due_seconds,
            });
        }
    }
    let crms = PROVIDERS
        .iter()
        .map(|&provider| {
            let operations = OpState::ALL
                .iter()
                .map(|&s| {
                    let n = ops
                        .iter()
                        .find(|(p, st, _)| p == provider.as_str() && *st == s)
                        .map_or(0, |(_, _, n)| *n);
                    (s, n)
                })
                .collect();
            let (connected, config_errors) = health
                .iter()
                .find(|(p, _, _)| p == provider.as_str())
                .map_or((0, 0), |(_, n, e)| (*n, *e));
            CrmLevel {
                provider,
                operations,
                connected,
                config_errors,
            }
        })
        .collect();
    Ok(Levels {
        queues,
        crms,
        pool: app.store().pool_stats(),
    })
}
