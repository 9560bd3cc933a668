//! `casebridge-bench`: load generators for outbound webhook delivery (issue 3, "Benchmark") and
//! for the CRM integrations (SPEC §10: Law Ruler inbound webhook ingest and outbound operations,
//! SmartAdvocate outbound operations).
//!
//! Every scenario runs the project's own pieces — a migrated database from
//! `casebridge_testkit::TestDb`, events recorded with the webhook outbox, the real `webhooks`
//! queue worker signing and posting over HTTP to a local counting receiver; for Law Ruler, the
//! real API server in-process, the `crm` worker and the Law Ruler or SmartAdvocate simulator —
//! repeats the
//! measurement, prints medians with min and max, and appends a JSON line to
//! `bench/results.jsonl`. See `bench/README.md` for what each scenario measures and the latest
//! numbers.

use std::path::PathBuf;
use std::time::Duration;

use casebridge_testkit::TestBackend;
use clap::{Parser, Subcommand, ValueEnum};

mod backlog;
mod claim;
mod e2e;
mod export;
mod files;
mod harness;
mod isolation;
mod latency;
mod lawruler_ingest;
mod lawruler_outbound;
mod receiver;
mod report;
mod server;
mod smartadvocate_outbound;
mod throughput;

use harness::{progress, WorkerOpts};

#[derive(Parser)]
#[command(
    name = "casebridge-bench",
    about = "Benchmarks: webhook delivery (throughput, latency, isolation, backlog memory), \
             Law Ruler (inbound ingest, outbound operations), SmartAdvocate (outbound operations) \
             and exports (memory while streaming)"
)]
struct Cli {
    #[command(subcommand)]
    scenario: Scenario,
    /// Database backend: a fresh SQLite file (in $TMPDIR) or a fresh PostgreSQL database on the
    /// server named by CASEBRIDGE_TEST_POSTGRES_URL (default postgres://postgres@127.0.0.1:5432/test).
    #[arg(long, global = true, value_enum, default_value_t = Backend::Sqlite)]
    backend: Backend,
    /// Runs of the scenario; the median is reported, with min and max.
    #[arg(long, global = true, default_value_t = 3)]
    repeat: usize,
    /// Jobs the worker runs at once (WorkerConfig::concurrency; default 16). In lawruler-ingest,
    /// which runs no worker: concurrent client tasks posting webhooks (default 8).
    #[arg(long, global = true)]
    concurrency: Option<usize>,
    /// How long an idle worker sleeps before claiming again, in ms.
    #[arg(long, global = true, default_value_t = 50)]
    poll_ms: u64,
    /// The bound on deliveries in flight of each webhook a scenario creates (a webhook's
    /// `max_in_flight`); default: the product's default.
    #[arg(long, global = true)]
    max_in_flight: Option<u32>,
    /// Where the JSON line goes.
    #[arg(long, global = true, default_value = concat!(env!("CARGO_MANIFEST_DIR"), "/results.jsonl"))]
    results: PathBuf,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Backend {
    Sqlite,
    Postgres,
}

#[derive(Subcommand)]
enum Scenario {
    /// Deliveries per second from pre-loaded events to 1 or 100 endpoints.
    Throughput {
        #[arg(long, default_value_t = 1)]
        endpoints: usize,
        /// Events to pre-load (default: 2000 for one endpoint, 200 for more).
        #[arg(long)]
        events: Option<usize>,
        /// Events recorded per transaction while pre-loading.
        #[arg(long, default_value_t = 500)]
        batch: usize,
        /// Give up waiting for the deliveries after this many seconds.
        #[arg(long, default_value_t = 600)]
        limit_s: u64,
    },
    /// End to end through the HTTP API: `senders` clients POST /api/v1/calls to the API server,
    /// one webhook to a local receiver, each delivery matched to its request by webhook-id;
    /// with the HTTP ceiling (the same client against the receiver) and the fsync ceiling
    /// (one-row commits) measured in the same run.
    E2e {
        #[arg(long, default_value_t = 5000)]
        events: usize,
        #[arg(long, default_value_t = 16)]
        senders: usize,
        /// Open loop at this many requests/s in all (default: closed loop).
        #[arg(long)]
        rate: Option<f64>,
        #[arg(long, default_value_t = 600)]
        limit_s: u64,
        /// The store's group-commit mode, `batched` or `per-unit` (default: the backend's).
        #[arg(long)]
        group_commit: Option<String>,
    },
    /// Event-to-first-attempt latency at a steady event rate.
    Latency {
        #[arg(long, default_value_t = 1000)]
        events: usize,
        /// Events per second, one per transaction.
        #[arg(long, default_value_t = 50.0)]
        rate: f64,
    },
    /// A healthy endpoint's latency with and without another tenant's hanging endpoint.
    Isolation {
        /// Events for the hanging endpoint, recorded at once.
        #[arg(long, default_value_t = 200)]
        burst: usize,
        /// Events per second for the healthy endpoint.
        #[arg(long, default_value_t = 20.0)]
        rate: f64,
        /// Seconds of healthy traffic per phase.
        #[arg(long, default_value_t = 20)]
        duration_s: u64,
    },
    /// Process memory while a large backlog of deliveries is pending.
    Backlog {
        #[arg(long, default_value_t = 100_000)]
        pending: usize,
        /// Endpoints the backlog is spread over (all answer 503, Retry-After: 3600).
        #[arg(long, default_value_t = 1)]
        endpoints: usize,
        /// Seconds to sample while the worker makes first attempts (stops early when all are made).
        #[arg(long, default_value_t = 60)]
        duration_s: u64,
        /// Events written per transaction while loading.
        #[arg(long, default_value_t = 1000)]
        batch: usize,
        #[arg(long, value_enum, default_value_t = backlog::Via::Direct)]
        via: backlog::Via,
    },
    /// The cost of one claim with 1,000 / 100,000 / 1,000,000 jobs pending that cannot run (not
    /// due, behind a concurrency key at its limit, behind an ordering key).
    Claim {
        /// Backlog sizes, filled in turn in one database.
        #[arg(long, value_delimiter = ',', default_value = "1000,100000,1000000")]
        sizes: Vec<usize>,
        /// Timed claims at each size.
        #[arg(long, default_value_t = 50)]
        claims: usize,
    },
    /// An export of N clients through `GET /api/v1/exports/clients`: rows per second and how
    /// much this process's memory grows while it streams.
    Export {
        #[arg(long, default_value_t = 1_000_000)]
        rows: usize,
        /// JSON instead of CSV.
        #[arg(long)]
        json: bool,
    },
    /// A recording of N MiB uploaded with a streamed body and downloaded again through the real
    /// HTTP server: MiB per second and how much this process's memory grows meanwhile.
    Files {
        #[arg(long, default_value_t = 200)]
        mib: u64,
    },
    /// Inbound Law Ruler webhooks per second through the real HTTP server (durable: a 2xx
    /// answer means applied and committed), with request latency. `--concurrency` is the
    /// number of client tasks.
    LawrulerIngest {
        #[arg(long, default_value_t = 2000)]
        webhooks: usize,
        /// Percent of the webhooks that update a lead sent earlier (another status).
        #[arg(long, default_value_t = 0)]
        updates: u32,
        /// Start cold: no warm-up webhooks, so the first concurrent webhooks race to create the
        /// case type link and status mappings.
        #[arg(long)]
        no_warmup: bool,
        /// Open loop: send at this many webhooks per second, each at its due time, latency
        /// counted from it (instead of `--concurrency` client tasks in a closed loop).
        #[arg(long)]
        rate: Option<f64>,
        /// The store's group-commit mode, `batched` or `per-unit` (default: the backend's).
        #[arg(long)]
        group_commit: Option<String>,
    },
    /// Outbound Law Ruler operations (notes from outbound SMS) per second against the Law
    /// Ruler simulator, no rate limit.
    LawrulerOutbound {
        #[arg(long, default_value_t = 2000)]
        ops: usize,
        /// Leads (linked cases) the operations are spread over.
        #[arg(long, default_value_t = 50)]
        leads: usize,
        /// Client tasks posting the messages in the load phase.
        #[arg(long, default_value_t = 8)]
        load_clients: usize,
        /// Give up waiting for the notes after this many seconds.
        #[arg(long, default_value_t = 600)]
        limit_s: u64,
    },
    /// Outbound SmartAdvocate operations (notes from outbound SMS; each a case lookup and a note
    /// insert) per second against the SmartAdvocate simulator, no rate limit.
    SmartadvocateOutbound {
        #[arg(long, default_value_t = 2000)]
        ops: usize,
        /// Cases (linked by case number) the operations are spread over.
        #[arg(long, default_value_t = 50)]
        cases: usize,
        /// Client tasks posting the messages in the load phase.
        #[arg(long, default_value_t = 8)]
        load_clients: usize,
        /// Give up waiting for the notes after this many seconds.
        #[arg(long, default_value_t = 600)]
        limit_s: u64,
    },
}

/// Runs one repeat and adds the load average seen when it started.
async fn with_load(
    run: impl std::future::Future<Output = anyhow::Result<Vec<report::Measure>>>,
) -> anyhow::Result<Vec<report::Measure>> {
    let load = harness::loadavg();
    let mut measures = run.await?;
    measures.push(report::m("loadavg_1m_at_start", "load", load));
    Ok(measures)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    // Logs are off unless asked for: the worker logs every failed attempt, which would cost
    // time in the scenarios that fail on purpose (isolation, backlog).
    if let Ok(filter) = std::env::var("CASEBRIDGE_BENCH_LOG") {
        tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
            .with_writer(std::io::stderr)
            .init();
    }
    let backend = match cli.backend {
        Backend::Sqlite => TestBackend::Sqlite,
        Backend::Postgres => TestBackend::Postgres,
    };
    let backend_name = format!("{:?}", cli.backend).to_lowercase();
    let opts = WorkerOpts {
        concurrency: cli.concurrency.unwrap_or(16),
        poll_interval: Duration::from_millis(cli.poll_ms),
    };
    if let Some(n) = cli.max_in_flight {
        harness::set_max_in_flight(n);
    }
    let mut worker_params = serde_json::json!({
        "worker_concurrency": opts.concurrency,
        "max_in_flight": harness::max_in_flight(),
        "poll_ms": cli.poll_ms,
        "cores": std::thread::available_parallelism().map_or(0, |n| n.get()),
    });
    let repeat = cli.repeat.max(1);

    let (name, mut params, runs) = match cli.scenario {
        Scenario::Throughput {
            endpoints,
            events,
            batch,
            limit_s,
        } => {
            let p = throughput::Params {
                endpoints,
                events: events.unwrap_or(if endpoints == 1 { 2000 } else { 200 }),
                batch,
                limit: Duration::from_secs(limit_s),
            };
            let mut runs = Vec::new();
            for i in 0..repeat {
                progress(&format!(
                    "throughput run {}/{repeat} on {backend_name}",
                    i + 1
                ));
                runs.push(with_load(throughput::run(backend, p, opts)).await?);
            }
            ("throughput", p.json(), runs)
        }
        Scenario::E2e {
            events,
            senders,
            rate,
            limit_s,
            group_commit,
        } => {
            let p = e2e::Params {
                events,
                senders,
                rate,
                limit: Duration::from_secs(limit_s),
                group_commit: group_commit_mode(group_commit.as_deref())?,
            };
            let mut runs = Vec::new();
            for i in 0..repeat {
                progress(&format!("e2e run {}/{repeat} on {backend_name}", i + 1));
                runs.push(with_load(e2e::run(backend, p, opts)).await?);
            }
            ("e2e", p.json(), runs)
        }
        Scenario::Latency { events, rate } => {
            let p = latency::Params { events, rate };
            let mut runs = Vec::new();
            for i in 0..repeat {
                progress(&format!("latency run {}/{repeat} on {backend_name}", i + 1));
                runs.push(with_load(latency::run(backend, p, opts)).await?);
            }
            ("latency", p.json(), runs)
        }
        Scenario::Isolation {
            burst,
            rate,
            duration_s,
        } => {
            let p = isolation::Params {
                burst,
                rate,
                duration: Duration::from_secs(duration_s),
            };
            let mut runs = Vec::new();
            for i in 0..repeat {
                progress(&format!(
                    "isolation run {}/{repeat} on {backend_name}",
                    i + 1
                ));
                runs.push(with_load(isolation::run(backend, p, opts)).await?);
            }
            ("isolation", p.json(), runs)
        }
        Scenario::Backlog {
            pending,
            endpoints,
            duration_s,
            batch,
            via,
        } => {
            let p = backlog::Params {
                pending,
                endpoints: endpoints.max(1),
                duration: Duration::from_secs(duration_s),
                batch,
                via,
            };
            let mut runs = Vec::new();
            for i in 0..repeat {
                progress(&format!("backlog run {}/{repeat} on {backend_name}", i + 1));
                runs.push(with_load(backlog::run(backend, p, opts)).await?);
            }
            ("backlog", p.json(), runs)
        }
        Scenario::Claim { sizes, claims } => {
            let p = claim::Params { sizes, claims };
            // No worker runs in this scenario.
            worker_params = serde_json::json!({
                "cores": std::thread::available_parallelism().map_or(0, |n| n.get()),
            });
            let mut runs = Vec::new();
            for i in 0..repeat {
                progress(&format!("claim run {}/{repeat} on {backend_name}", i + 1));
                runs.push(with_load(claim::run(backend, p.clone())).await?);
            }
            ("claim", p.json(), runs)
        }
        Scenario::Export { rows, json } => {
            let p = export::Params { rows, json };
            // No worker runs in this scenario.
            worker_params = serde_json::json!({
                "cores": std::thread::available_parallelism().map_or(0, |n| n.get()),
            });
            let mut runs = Vec::new();
            for i in 0..repeat {
                progress(&format!("export run {}/{repeat} on {backend_name}", i + 1));
                runs.push(with_load(export::run(backend, p)).await?);
            }
            ("export", p.json(), runs)
        }
        Scenario::Files { mib } => {
            let p = files::Params { mib };
            // No worker runs in this scenario.
            worker_params = serde_json::json!({
                "cores": std::thread::available_parallelism().map_or(0, |n| n.get()),
            });
            let mut runs = Vec::new();
            for i in 0..repeat {
                progress(&format!("files run {}/{repeat} on {backend_name}", i + 1));
                runs.push(with_load(files::run(backend, p)).await?);
            }
            ("files", p.json(), runs)
        }
        Scenario::LawrulerIngest {
            webhooks,
            updates,
            no_warmup,
            rate,
            group_commit,
        } => {
            let group_commit = group_commit_mode(group_commit.as_deref())?;
            let p = lawruler_ingest::Params {
                webhooks,
                clients: cli.concurrency.unwrap_or(8).max(1),
                updates_pct: updates.min(100),
                warmup: !no_warmup,
                rate: rate.filter(|r| *r > 0.0),
                group_commit,
            };
            // No worker runs in this scenario.
            worker_params = serde_json::json!({
                "cores": std::thread::available_parallelism().map_or(0, |n| n.get()),
            });
            let mut runs = Vec::new();
            for i in 0..repeat {
                progress(&format!(
                    "lawruler-ingest run {}/{repeat} on {backend_name}",
                    i + 1
                ));
                runs.push(with_load(lawruler_ingest::run(backend, p)).await?);
            }
            ("lawruler-ingest", p.json(), runs)
        }
        Scenario::LawrulerOutbound {
            ops,
            leads,
            load_clients,
            limit_s,
        } => {
            let p = lawruler_outbound::Params {
                ops,
                leads: leads.max(1),
                load_clients,
                limit: Duration::from_secs(limit_s),
            };
            let mut runs = Vec::new();
            for i in 0..repeat {
                progress(&format!(
                    "lawruler-outbound run {}/{repeat} on {backend_name}",
                    i + 1
                ));
                runs.push(with_load(lawruler_outbound::run(backend, p, opts)).await?);
            }
            ("lawruler-outbound", p.json(), runs)
        }
        Scenario::SmartadvocateOutbound {
            ops,
            cases,
            load_clients,
            limit_s,
        } => {
            let p = smartadvocate_outbound::Params {
                ops,
                cases: cases.max(1),
                load_clients,
                limit: Duration::from_secs(limit_s),
            };
            let mut runs = Vec::new();
            for i in 0..repeat {
                progress(&format!(
                    "smartadvocate-outbound run {}/{repeat} on {backend_name}",
                    i + 1
                ));
                runs.push(with_load(smartadvocate_outbound::run(backend, p, opts)).await?);
            }
            ("smartadvocate-outbound", p.json(), runs)
        }
    };
    if let (Some(p), Some(w)) = (params.as_object_mut(), worker_params.as_object()) {
        p.extend(w.clone());
    }
    report::finish(&cli.results, name, &backend_name, params, &runs)
}

/// `--group-commit`: `batched` or `per-unit`; none keeps the backend's default.
fn group_commit_mode(arg: Option<&str>) -> anyhow::Result<Option<casebridge_store::GroupCommit>> {
    Ok(match arg {
        None => None,
        Some("batched") => Some(casebridge_store::GroupCommit::Batched),
        Some("per-unit") => Some(casebridge_store::GroupCommit::PerUnit),
        Some(other) => anyhow::bail!("--group-commit {other}: batched or per-unit"),
    })
}
