//! The operator interface: `serve`, `worker`, `migrate`, `company create`, `user create`,
//! `import lawruler`.

use std::io::Read;
use std::path::PathBuf;

use anyhow::{bail, Context};
use casebridge_config::Config;
use casebridge_crypto::{generate_api_key, hash_password};
use casebridge_domain::company::NewCompany;
use casebridge_domain::ids::CompanyId;
use casebridge_store::{api_keys, companies, users, StoreError};
use clap::{Parser, Subcommand};
use secrecy::ExposeSecret;
use tokio_util::sync::CancellationToken;

use crate::{cancel_on_signal, init_tracing, open_store, Runtime};

#[derive(Debug, Parser)]
#[command(
    name = "casebridge",
    version,
    about = "Integration hub for legal intake"
)]
pub struct Cli {
    /// A TOML configuration file (or set CASEBRIDGE_CONFIG). Environment variables
    /// (CASEBRIDGE_*) override it.
    #[arg(long, global = true, env = "CASEBRIDGE_CONFIG", hide_env = true)]
    pub config: Option<PathBuf>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the HTTP API and the background workers.
    Serve,
    /// Run only the background workers.
    Worker,
    /// Apply database migrations and exit.
    Migrate,
    /// Manage companies (tenants).
    #[command(subcommand)]
    Company(CompanyCommand),
    /// Manage the users who sign in to the admin UI at /ui.
    #[command(subcommand)]
    User(UserCommand),
    /// Import existing records from a CRM export.
    #[command(subcommand)]
    Import(ImportCommand),
    /// Export cases, clients, the sync log or the webhook delivery log for reports, as CSV or
    /// JSON (the columns are listed in README, "Exports"), with a progress bar on stderr.
    Export {
        /// What to export: `cases`, `clients`, `sync-log` or `deliveries`.
        kind: String,
        /// The company's id (as `company create` printed it).
        #[arg(long)]
        company: String,
        /// `csv` or `json`.
        #[arg(long, default_value = "csv")]
        format: String,
        /// Only rows created at or after this time (RFC 3339).
        #[arg(long)]
        since: Option<String>,
        /// Only rows created before this time (RFC 3339).
        #[arg(long)]
        until: Option<String>,
        /// `sync-log` only: the log of one CRM (`lawruler`, `smartadvocate`).
        #[arg(long)]
        provider: Option<String>,
        /// `deliveries` only: the deliveries of one webhook (its id).
        #[arg(long)]
        webhook: Option<String>,
        /// The file to write (written under a temporary name and renamed once complete);
        /// default: standard output.
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Manage file bytes (documents, recordings) in the object store.
    #[command(subcommand)]
    Files(FilesCommand),
    /// Run a simulator of an external service, or a local webhook receiver, for trying
    /// casebridge without a live tenant.
    Sim {
        #[command(subcommand)]
        service: SimService,
    },
}

#[derive(Debug, Subcommand)]
pub enum FilesCommand {
    /// Move files still stored in the database (written before the object store) to the
    /// configured object store, one at a time, with a progress bar. Safe to stop and run again:
    /// it goes on where it stopped.
    Migrate,
    /// Delete objects of uploads whose database row never committed (a crash or failure in the
    /// middle of an upload). `casebridge serve` does this every 15 minutes.
    Sweep {
        /// Only uploads started at least this many seconds ago (default one hour, so uploads in
        /// progress are left alone).
        #[arg(long, default_value_t = 3600)]
        older_than_secs: u64,
    },
}

#[derive(Debug, Subcommand)]
pub enum SimService {
    /// Law Ruler (lead, campaign and modelled Advanced API). Demo credentials: username `demo`,
    /// password `demo-password`, client secret `demo-secret`, key `demo-key`; the Client Root is
    /// `http://127.0.0.1:<port>`.
    Lawruler {
        /// Port on 127.0.0.1.
        #[arg(long, default_value_t = 8081)]
        port: u16,
    },
    /// SmartAdvocate's CaseSyncAPI (authenticate, CaseInfo with `%` wildcards and second
    /// statuses, notes by case number and by case id (`GET /case/{id}/notes`), case contacts
    /// (`GET /case/{id}/contacts`), `POST /case/CreateCase` answering the case created in the
    /// last 3 days with the same email or phone instead of a new one, contact lookup, documents
    /// by date (`POST /case/documents/byDatePaged`)
    /// and their content (`GET /case/document/{id}/content`, raw bytes), and the modelled case
    /// types, status types, statuses, UDFs, status and UDF writes, and "changed since" searches
    /// of cases, notes and contacts for pulls), with a request log, faults and document seeding
    /// (`POST /_sim/documents`) under `/_sim/`. Demo user `demo`, password `Demo-Password`
    /// (case-sensitive); the base URL is `http://127.0.0.1:<port>` (with or without
    /// `/CaseSyncAPI`).
    Smartadvocate {
        #[arg(long, default_value_t = 8083)]
        port: u16,
        /// How long issued tokens live (SmartAdvocate's are 2 hours); a few seconds shows
        /// casebridge refreshing them.
        #[arg(long, default_value_t = 7200)]
        token_ttl_secs: u64,
    },
    /// A Cal.com API v2 compatible scheduling service. Demo API key `cal_sim_demo_key`; event
    /// types 1001 (30 min, weekdays 09:00-17:00 New York) and 1002 (60 min, weekdays 10:00-16:00
    /// Chicago).
    Scheduling {
        /// Port on 127.0.0.1.
        #[arg(long, default_value_t = 8082)]
        port: u16,
    },
    /// A firm's server receiving casebridge's webhooks: verifies each signature (Standard
    /// Webhooks), prints one JSON line per delivery and answers 204, or 401 when the signature
    /// does not verify. Prints its signing secret at start; give it to casebridge as the
    /// webhook's `secret`. `GET /_sim/received` lists what arrived.
    Receiver {
        /// Port on 127.0.0.1.
        #[arg(long, default_value_t = 9000)]
        port: u16,
        /// The `whsec_…` secret to verify with; generated when not given.
        #[arg(long)]
        secret: Option<String>,
    },
}

#[derive(Debug, Subcommand)]
pub enum CompanyCommand {
    /// Create a company and its first API key; prints {"company_id","api_key"} as JSON.
    Create {
        /// The company's name.
        #[arg(long)]
        name: String,
        /// IANA time zone, e.g. America/New_York. Default UTC.
        #[arg(long)]
        timezone: Option<String>,
    },
    /// Create another API key for an existing company (e.g. after the last one was revoked);
    /// prints {"company_id","api_key"} as JSON.
    AddKey {
        /// The company's id (as `company create` printed it).
        #[arg(long)]
        company: String,
        /// A name for the key, to tell keys apart when listing or revoking them.
        #[arg(long, default_value = "operator key")]
        name: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum ImportCommand {
    /// Import Law Ruler leads from a CSV file (header row with Lead ID, Case Type ID, Case Type,
    /// Status ID, Status, Full Name, Created Date, Primary Contact ID, First Name, Last Name;
    /// optional Email, Cell Phone, …), or with --from-api from the connected Law Ruler account.
    /// Rows are applied here, with a progress bar, exactly as the API's import does; importing
    /// the same records again changes nothing.
    Lawruler {
        /// The company's id (as `company create` printed it).
        #[arg(long)]
        company: String,
        /// The CSV file (UTF-8, header row first).
        #[arg(
            long,
            required_unless_present = "from_api",
            conflicts_with = "from_api"
        )]
        file: Option<PathBuf>,
        /// Pull the leads from the Law Ruler API (the company must be connected).
        #[arg(long)]
        from_api: bool,
        /// With --from-api: only leads changed at or after this time (RFC 3339).
        #[arg(long, requires = "from_api")]
        since: Option<String>,
    },
}

#[derive(Debug, Subcommand)]
pub enum UserCommand {
    /// Create an admin-UI user; the password is prompted for, or read from stdin.
    Create {
        /// The company's id (as `company create` printed it).
        #[arg(long)]
        company: String,
        /// The user's email address, used to sign in.
        #[arg(long)]
        email: String,
        /// Read the password from standard input instead of prompting.
        #[arg(long)]
        password_stdin: bool,
    },
}

const MIN_PASSWORD: usize = 12;

pub async fn run(cli: Cli) -> anyhow::Result<()> {
    if let Command::Sim { service } = &cli.command {
        return run_sim(service).await;
    }
    let config = Config::load(cli.config.as_deref())?;
    init_tracing(&config);
    match cli.command {
        Command::Sim { .. } => unreachable!("handled above"),
        Command::Serve => {
            let runtime = Runtime::start(config).await?;
            let listener = tokio::net::TcpListener::bind(runtime.config.listen)
                .await
                .with_context(|| format!("cannot listen on {}", runtime.config.listen))?;
            let shutdown = CancellationToken::new();
            cancel_on_signal(shutdown.clone());
            runtime.serve(listener, true, shutdown).await
        }
        Command::Worker => {
            let runtime = Runtime::start(config).await?;
            let shutdown = CancellationToken::new();
            cancel_on_signal(shutdown.clone());
            runtime.work(shutdown).await
        }
        Command::Migrate => {
            // The key is not needed to migrate, but a malformed one would only surface at the
            // next start; refuse it now, before anything changes.
            crate::keyring(&config)?;
            let store = open_store(&config).await?;
            store.close().await;
            println!("migrations applied ({})", store.backend().name());
            Ok(())
        }
        Command::Company(CompanyCommand::Create { name, timezone }) => {
            let new = NewCompany::parse(&name, timezone.as_deref())?;
            let store = open_store(&config).await?;
            let key = generate_api_key();
            let now = jiff::Timestamp::now();
            let mut tx = store.begin().await?;
            let company = companies::create(&mut tx, &new, now).await?;
            api_keys::create(
                &mut tx,
                company.id,
                "initial key",
                &key.prefix,
                &key.hash,
                now,
            )
            .await?;
            tx.commit().await?;
            store.close().await;
            println!(
                "{}",
                serde_json::json!({
                    "company_id": company.id.to_string(),
                    "api_key": key.secret.expose_secret(),
                })
            );
            Ok(())
        }
        Command::Company(CompanyCommand::AddKey { company, name }) => {
            let company = parse_company(&company)?;
            let name = casebridge_domain::records::Name::parse("--name", &name)?;
            let store = open_store(&config).await?;
            let key = generate_api_key();
            let mut tx = store.begin().await?;
            require_company(&mut tx, company).await?;
            api_keys::create(
                &mut tx,
                company,
                name.as_str(),
                &key.prefix,
                &key.hash,
                jiff::Timestamp::now(),
            )
            .await?;
            tx.commit().await?;
            store.close().await;
            println!(
                "{}",
                serde_json::json!({
                    "company_id": company.to_string(),
                    "api_key": key.secret.expose_secret(),
                })
            );
            Ok(())
        }
        Command::Import(ImportCommand::Lawruler {
            company,
            file,
            from_api,
            since,
        }) => {
            let company = parse_company(&company)?;
            if from_api {
                let since = since
                    .map(|s| {
                        s.parse::<jiff::Timestamp>()
                            .with_context(|| format!("--since: `{s}` is not an RFC 3339 time"))
                    })
                    .transpose()?;
                let rt = Runtime::start(config).await?;
                let result = import_lawruler_api(&rt, company, since).await;
                rt.store.close().await;
                return result;
            }
            let file = file.expect("clap requires --file without --from-api");
            let store = open_store(&config).await?;
            let result = import_lawruler(&store, company, &file).await;
            store.close().await;
            result
        }
        Command::Export {
            kind,
            company,
            format,
            since,
            until,
            provider,
            webhook,
            out,
        } => {
            let company = parse_company(&company)?;
            let req = export_request(&kind, &format, since, until, provider, webhook)?;
            let rt = Runtime::start(config).await?;
            let result = export(&rt, company, req, out.as_deref()).await;
            rt.store.close().await;
            result
        }
        Command::Files(FilesCommand::Migrate) => {
            let rt = Runtime::start(config).await?;
            let result = migrate_files(&rt).await;
            rt.store.close().await;
            result
        }
        Command::Files(FilesCommand::Sweep { older_than_secs }) => {
            let rt = Runtime::start(config).await?;
            let app = casebridge_api::App::new(rt.app_parts(None));
            let result =
                casebridge_app::files::sweep(&app, std::time::Duration::from_secs(older_than_secs))
                    .await
                    .map_err(explain);
            rt.store.close().await;
            let swept = result?;
            println!(
                "{}",
                serde_json::json!({"deleted": swept.deleted, "failed": swept.failed})
            );
            if swept.failed > 0 {
                bail!(
                    "{} orphan objects could not be deleted (see the log); run it again",
                    swept.failed
                );
            }
            Ok(())
        }
        Command::User(UserCommand::Create {
            company,
            email,
            password_stdin,
        }) => {
            let company = parse_company(&company)?;
            let email = email.trim().to_owned();
            if !email.contains('@') || email.contains(char::is_whitespace) {
                bail!("--email: `{email}` is not an email address");
            }
            let password = read_password(password_stdin)?;
            if password.chars().count() < MIN_PASSWORD {
                bail!("the password must be at least {MIN_PASSWORD} characters");
            }
            let hash = hash_password(&password)?;
            let store = open_store(&config).await?;
            let mut tx = store.begin().await?;
            require_company(&mut tx, company).await?;
            let user =
                users::create(&mut tx, company, &email, &hash, jiff::Timestamp::now()).await?;
            tx.commit().await?;
            store.close().await;
            println!(
                "{}",
                serde_json::json!({"user_id": user.id.to_string(), "email": user.email})
            );
            Ok(())
        }
    }
}

/// Simulators need no configuration or database; they log to stderr and run until Ctrl-C.
async fn run_sim(service: &SimService) -> anyhow::Result<()> {
    let _ = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .try_init();
    let (name, port) = match service {
        SimService::Lawruler { port } => ("Law Ruler simulator", *port),
        SimService::Scheduling { port } => ("scheduling simulator", *port),
        SimService::Smartadvocate { port, .. } => ("SmartAdvocate simulator", *port),
        SimService::Receiver { port, .. } => ("webhook receiver", *port),
    };
    // Checked before binding, so a bad secret does not leave a port half-used.
    let receiver = match service {
        SimService::Receiver { secret, .. } => Some(match secret {
            Some(s) => casebridge_sim::receiver::Receiver::new(s).context("--secret")?,
            None => casebridge_sim::receiver::Receiver::generate(),
        }),
        _ => None,
    };
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
        .await
        .with_context(|| format!("cannot listen on 127.0.0.1:{port}"))?;
    eprintln!("{name} on http://{}", listener.local_addr()?);
    if let Some(r) = &receiver {
        eprintln!("signing secret: {}", r.secret());
    }
    let serve = async {
        match service {
            SimService::Receiver { .. } => {
                let r = receiver.expect("built above").echo();
                casebridge_sim::receiver::serve(listener, r).await
            }
            SimService::Lawruler { .. } => {
                casebridge_sim::lawruler::serve(
                    listener,
                    casebridge_sim::lawruler::LawRulerSim::new(),
                )
                .await
            }
            SimService::Smartadvocate { token_ttl_secs, .. } => {
                let sim = casebridge_sim::smartadvocate::SmartAdvocateSim::builder()
                    .token_ttl(std::time::Duration::from_secs(*token_ttl_secs))
                    .build();
                eprintln!("{}", sim.describe());
                casebridge_sim::smartadvocate::serve(listener, sim).await
            }
            SimService::Scheduling { .. } => {
                casebridge_sim::scheduling::serve(
                    listener,
                    casebridge_sim::scheduling::SchedulingSim::demo(),
                )
                .await
            }
        }
    };
    tokio::select! {
        r = serve => r.map_err(Into::into),
        _ = tokio::signal::ctrl_c() => Ok(()),
    }
}

fn parse_company(raw: &str) -> anyhow::Result<CompanyId> {
    raw.parse()
        .map_err(|_| anyhow::anyhow!("--company: `{raw}` is not a company id"))
}

async fn require_company(
    conn: &mut casebridge_store::Conn,
    company: CompanyId,
) -> anyhow::Result<()> {
    match companies::get(conn, company).await {
        Err(StoreError::NotFound) => bail!("--company: no company with id {company}"),
        other => other.map(|_| ()).map_err(Into::into),
    }
}

/// Stores and enqueues the import as the API does, then applies it in this process while
/// showing its progress (read back from the import's row, as the API shows it).
async fn import_lawruler(
    store: &casebridge_store::Store,
    company: CompanyId,
    file: &std::path::Path,
) -> anyhow::Result<()> {
    use casebridge_crm::lawruler::import;
    use casebridge_domain::clock::{Clock, SystemClock};

    let text = std::fs::read_to_string(file)
        .with_context(|| format!("--file: cannot read {} as UTF-8 text", file.display()))?;
    let total = import::check(&text).map_err(|e| anyhow::anyhow!("--file: {e}"))?;
    let clock: std::sync::Arc<dyn Clock> = std::sync::Arc::new(SystemClock);
    let name = file.file_name().map(|n| n.to_string_lossy().into_owned());
    let mut tx = store.begin().await?;
    require_company(&mut tx, company).await?;
    let created =
        import::enqueue(&mut tx, company, name.as_deref(), &text, total, clock.now()).await?;
    tx.commit().await?;
    apply_with_progress(store, clock, company, created.id, total).await
}

/// Fetches the leads from the connected Law Ruler account into an import (as the API's
/// `{"source": "lawruler_api"}` does), then applies them with a progress bar.
async fn import_lawruler_api(
    rt: &Runtime,
    company: CompanyId,
    since: Option<jiff::Timestamp>,
) -> anyhow::Result<()> {
    use casebridge_crm::lawruler::import;
    use casebridge_store::imports::ImportStatus;

    let clock = rt.clock.clone();
    let mut tx = rt.store.begin().await?;
    require_company(&mut tx, company).await?;
    let created = import::enqueue_from_api(&mut tx, company, since, clock.now())
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    tx.commit().await?;
    let spinner = indicatif::ProgressBar::new_spinner();
    spinner.set_message("fetching leads from Law Ruler…");
    spinner.enable_steady_tick(std::time::Duration::from_millis(120));
    let fetched = import::fetch(
        &rt.store,
        clock.as_ref(),
        &rt.lawruler_clients(),
        company,
        created.id,
    )
    .await;
    spinner.finish_and_clear();
    let fetched = fetched.map_err(|e| {
        anyhow::anyhow!(
            "fetching from Law Ruler failed: {e}; a worker retries it, or run the command again"
        )
    })?;
    if let (ImportStatus::Failed, Some(why)) = (fetched.status, &fetched.failure) {
        bail!("the import failed: {why}");
    }
    let total = fetched.total_rows;
    apply_with_progress(&rt.store, clock, company, created.id, total).await
}

/// Applies an import in this process while showing its progress (read back from the import's
/// row, as the API shows it), then prints the outcome and the first failed rows.
async fn apply_with_progress(
    store: &casebridge_store::Store,
    clock: std::sync::Arc<dyn casebridge_domain::clock::Clock>,
    company: CompanyId,
    id: uuid::Uuid,
    total: u64,
) -> anyhow::Result<()> {
    use casebridge_crm::lawruler::import;
    use casebridge_store::imports::{self, ImportStatus};

    let bar = indicatif::ProgressBar::new(total);
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "{bar:40} {pos}/{len} rows ({percent}%) {elapsed_precise} {msg}",
        )
        .expect("static template"),
    );
    // The job stays queued too: a worker that picks it up meanwhile shares the work safely
    // (progress only moves forward), and one that comes later finds the import done.
    let run = tokio::spawn({
        let store = store.clone();
        let clock = clock.clone();
        async move {
            import::run(
                &store,
                clock.as_ref(),
                company,
                id,
                import::BATCH_ROWS,
                None,
            )
            .await
        }
    });
    let show = |i: &imports::Import| {
        bar.set_position(i.counts.processed);
        bar.set_message(format!(
            "{} created, {} updated, {} unchanged, {} failed",
            i.counts.created, i.counts.updated, i.counts.unchanged, i.counts.failed
        ));
    };
    while !run.is_finished() {
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        let mut conn = store.conn().await?;
        show(&imports::get(&mut conn, company, id).await?);
    }
    run.await
        .context("the import task failed")?
        .context("the import stopped; run the command again, or let a worker finish it")?;
    let mut conn = store.conn().await?;
    let done = imports::get(&mut conn, company, id).await?;
    show(&done);
    bar.finish();
    println!("import {id}: {}", done.status.as_str());
    println!(
        "{} rows: {} created, {} updated, {} unchanged, {} failed",
        done.total_rows,
        done.counts.created,
        done.counts.updated,
        done.counts.unchanged,
        done.counts.failed
    );
    for e in done.errors.iter().take(20) {
        println!("  row {}: {}", e.row, e.message);
    }
    if done.counts.failed > 20 {
        println!(
            "  … {} more; see GET /api/v1/integrations/lawruler/import/{id} (row numbers count data rows, not the header)",
            done.counts.failed - 20
        );
    }
    match (done.status, &done.failure) {
        (ImportStatus::Failed, Some(why)) => bail!("the import failed: {why}"),
        _ => Ok(()),
    }
}

/// Reads `casebridge export`'s arguments into a request, naming the argument that is wrong.
fn export_request(
    kind: &str,
    format: &str,
    since: Option<String>,
    until: Option<String>,
    provider: Option<String>,
    webhook: Option<String>,
) -> anyhow::Result<casebridge_app::exports::ExportRequest> {
    use casebridge_app::exports::{ExportFormat, ExportKind, ExportRequest};
    let kind = ExportKind::parse(kind).with_context(|| {
        format!("`{kind}` is not an export; choose cases, clients, sync-log or deliveries")
    })?;
    let format = ExportFormat::parse(format)
        .with_context(|| format!("--format: `{format}` is not csv or json"))?;
    let time = |name: &str, v: Option<String>| {
        v.map(|s| {
            s.parse::<jiff::Timestamp>()
                .with_context(|| format!("--{name}: `{s}` is not an RFC 3339 time"))
        })
        .transpose()
    };
    let provider = provider
        .map(|p| {
            casebridge_domain::integrations::Provider::parse(&p)
                .with_context(|| format!("--provider: `{p}` is not lawruler or smartadvocate"))
        })
        .transpose()?;
    let webhook_id = webhook
        .map(|w| {
            w.parse()
                .map_err(|_| anyhow::anyhow!("--webhook: `{w}` is not a webhook id"))
        })
        .transpose()?;
    Ok(ExportRequest {
        kind,
        format,
        since: time("since", since)?,
        until: time("until", until)?,
        provider,
        webhook_id,
    })
}

/// Writes an export to `out` (under a temporary name, renamed once complete, so a failed
/// export never leaves a file that looks whole) or to stdout, with a progress bar on stderr.
async fn export(
    rt: &Runtime,
    company: CompanyId,
    req: casebridge_app::exports::ExportRequest,
    out: Option<&std::path::Path>,
) -> anyhow::Result<()> {
    use casebridge_app::exports;
    use std::io::Write;

    require_company(&mut *rt.store.conn().await?, company).await?;
    let app = casebridge_api::App::new(rt.app_parts(None));
    let total = exports::count(&app, company, &req).await.map_err(explain)?;
    let mut export = exports::start(&app, company, req).await.map_err(explain)?;
    let bar = indicatif::ProgressBar::new(total);
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "{bar:40} {pos}/{len} rows ({percent}%) {elapsed_precise} {per_sec}",
        )
        .expect("static template"),
    );
    let partial = out.map(|p| {
        let mut name = p.as_os_str().to_owned();
        name.push(".partial");
        std::path::PathBuf::from(name)
    });
    let mut sink: Box<dyn Write> = match &partial {
        Some(p) => Box::new(std::io::BufWriter::new(
            std::fs::File::create(p).with_context(|| format!("creating {}", p.display()))?,
        )),
        None => Box::new(std::io::BufWriter::new(std::io::stdout().lock())),
    };
    let written = async {
        while let Some(chunk) = export.next_chunk().await.map_err(explain)? {
            sink.write_all(chunk.as_bytes())
                .context("writing the export")?;
            bar.set_position(export.rows());
        }
        sink.flush().context("writing the export")?;
        anyhow::Ok(())
    }
    .await;
    drop(sink);
    if let Err(e) = written {
        if let Some(p) = &partial {
            let _ = std::fs::remove_file(p);
        }
        return Err(e);
    }
    if let (Some(p), Some(out)) = (&partial, out) {
        std::fs::rename(p, out).with_context(|| format!("renaming to {}", out.display()))?;
    }
    bar.finish();
    eprintln!("{} rows exported", export.rows());
    Ok(())
}

/// Moves inline files to the object store with a progress bar on stderr.
async fn migrate_files(rt: &Runtime) -> anyhow::Result<()> {
    let app = casebridge_api::App::new(rt.app_parts(None));
    eprintln!("moving files from the database to {}", rt.files.describe());
    let bar = indicatif::ProgressBar::new(0);
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "{bar:40} {pos}/{len} files ({percent}%) {elapsed_precise} {msg}",
        )
        .expect("static template"),
    );
    let moved = casebridge_app::files::migrate_inline(&app, |m| {
        bar.set_length(m.total);
        bar.set_position(m.moved);
        bar.set_message(format!("{} MiB", m.bytes / (1024 * 1024)));
    })
    .await
    .map_err(explain)?;
    bar.finish();
    println!(
        "{}",
        serde_json::json!({"moved": moved.moved, "bytes": moved.bytes})
    );
    Ok(())
}

/// A service error as a command-line message.
fn explain(e: casebridge_app::AppError) -> anyhow::Error {
    anyhow::anyhow!("{e}")
}

fn read_password(from_stdin: bool) -> anyhow::Result<String> {
    if from_stdin {
        let mut s = String::new();
        std::io::stdin()
            .read_to_string(&mut s)
            .context("reading the password from stdin")?;
        return Ok(s.trim_end_matches(['\r', '\n']).to_owned());
    }
    let first = rpassword::prompt_password("Password: ")
        .context("cannot prompt for a password here; use --password-stdin")?;
    let again = rpassword::prompt_password("Repeat password: ")?;
    if first != again {
        bail!("the passwords do not match");
    }
    Ok(first)
}
