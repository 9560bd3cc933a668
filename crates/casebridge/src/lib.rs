//! Wiring: turns a [`Config`] into a running casebridge (API and workers), and the operator
//! commands. No business logic lives here.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use casebridge_api::{AppParts, AppState, HttpOptions};
use casebridge_config::{Config, LogFormat};
use casebridge_crm::connector::{self as crm, Connectors, JobSettings};
use casebridge_crm::lawruler::client::LawRulerPaths;
use casebridge_crm::lawruler::connection::Clients;
use casebridge_crm::smartadvocate::{self, SmartAdvocatePaths};
use casebridge_crypto::{load_or_generate_master_key, Keyring, MasterKey};
use casebridge_domain::clock::{Clock, SystemClock};
use casebridge_files::{Files, StoreSettings};
use casebridge_queue::{Registry, Worker, WorkerConfig};
use casebridge_store::{Store, StoreOptions};
use casebridge_webhooks::delivery::{WebhookRuntime, ATTEMPT_TIMEOUT};
use casebridge_webhooks::outbox as webhook_outbox;
use casebridge_webhooks::policy::UrlPolicy;
use secrecy::ExposeSecret;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

pub mod cli;

/// Sets up logging once: JSON lines in production (or whenever stderr is not a terminal),
/// human-readable when asked or on a terminal.
pub fn init_tracing(config: &Config) {
    use std::io::IsTerminal;
    let filter = tracing_subscriber::EnvFilter::try_new(&config.log_filter)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let json = match config.log_format {
        LogFormat::Json => true,
        LogFormat::Pretty => false,
        LogFormat::Auto => !std::io::stderr().is_terminal(),
    };
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = if json {
        builder.json().flatten_event(true).try_init()
    } else {
        builder.try_init()
    };
}

/// Opens the database named by the configuration and applies migrations.
/// The object store the configuration names (default: `{data_dir}/files`).
pub fn open_files(config: &Config) -> anyhow::Result<Files> {
    let settings = StoreSettings {
        url: config.object_store_url.clone(),
        region: config.object_store_region.clone(),
        endpoint: config.object_store_endpoint.clone(),
        access_key_id: config.object_store_access_key_id.clone(),
        secret_access_key: config.object_store_secret_access_key.clone(),
    };
    let files = Files::open(&settings, &config.data_dir)
        .context("CASEBRIDGE_OBJECT_STORE_URL (object_store_url)")?;
    tracing::debug!(store = files.describe(), "object store");
    Ok(files)
}

pub async fn open_store(config: &Config) -> anyhow::Result<Store> {
    let url = config.effective_database_url();
    let store = Store::connect(
        &url,
        StoreOptions {
            max_connections: config.db_max_connections,
            ..StoreOptions::default()
        },
    )
    .await
    .with_context(|| {
        format!(
            "cannot open the database {}",
            config.effective_database_url_redacted()
        )
    })?;
    store.migrate().await.context("applying migrations")?;
    Ok(store)
}

/// The keyring for secrets at rest: the configured master key (plus older keys for rotation),
/// or a key generated once into the data directory.
pub fn keyring(config: &Config) -> anyhow::Result<Keyring> {
    let older = config
        .old_master_keys
        .iter()
        .map(|k| MasterKey::from_base64(k.expose_secret()))
        .collect::<Result<Vec<_>, _>>()
        .context("CASEBRIDGE_OLD_MASTER_KEYS")?;
    let primary = match &config.master_key {
        Some(k) => MasterKey::from_base64(k.expose_secret()).context("CASEBRIDGE_MASTER_KEY")?,
        None => {
            let path = config.master_key_path();
            let (key, generated) = load_or_generate_master_key(&path)
                .with_context(|| format!("master key file {}", path.display()))?;
            if generated {
                tracing::warn!(path = %path.display(), key.id = %key.key_id(),
                    "no CASEBRIDGE_MASTER_KEY set: generated a master key into the data \
                     directory. Back it up; secrets stored with it cannot be read without it.");
            }
            key
        }
    };
    Ok(Keyring::new(primary, older))
}

/// How long one call to Law Ruler may take (an upload of a long recording included).
const LAWRULER_TIMEOUT: Duration = Duration::from_secs(60);

/// The Law Ruler endpoint paths: defaults, with `[lawruler_paths]` corrections. An unknown name
/// is an error naming the setting, not a silently ignored typo.
pub fn lawruler_paths(config: &Config) -> anyhow::Result<LawRulerPaths> {
    serde_json::to_value(&config.lawruler_paths)
        .and_then(serde_json::from_value)
        .context("CASEBRIDGE_LAWRULER_PATHS (lawruler_paths)")
}

/// How long one call to SmartAdvocate may take (public clients use 30 s for reads).
const SMARTADVOCATE_TIMEOUT: Duration = Duration::from_secs(30);

/// The SmartAdvocate endpoint paths: defaults, with `[smartadvocate_paths]` corrections. An
/// unknown name is an error naming the setting.
pub fn smartadvocate_paths(config: &Config) -> anyhow::Result<SmartAdvocatePaths> {
    serde_json::to_value(&config.smartadvocate_paths)
        .and_then(serde_json::from_value)
        .context("CASEBRIDGE_SMARTADVOCATE_PATHS (smartadvocate_paths)")
}

/// Everything a running process shares.
#[derive(Clone)]
pub struct Runtime {
    pub config: Config,
    pub store: Store,
    pub keyring: Keyring,
    pub clock: Arc<dyn Clock>,
    /// The Law Ruler endpoint paths: the defaults with the configured corrections.
    pub lawruler_paths: LawRulerPaths,
    /// The SmartAdvocate endpoint paths: the defaults with the configured corrections.
    pub smartadvocate_paths: SmartAdvocatePaths,
    /// The object store holding file bytes (documents, recordings).
    pub files: Files,
}

impl Runtime {
    pub async fn start(config: Config) -> anyhow::Result<Self> {
        let keyring = keyring(&config)?;
        let lawruler_paths = lawruler_paths(&config)?;
        let smartadvocate_paths = smartadvocate_paths(&config)?;
        let files = open_files(&config)?;
        let store = open_store(&config).await?;
        Ok(Self {
            config,
            store,
            keyring,
            clock: Arc::new(SystemClock),
            lawruler_paths,
            smartadvocate_paths,
            files,
        })
    }

    /// Which outbound destinations are allowed (W2; `CASEBRIDGE_ALLOW_*`).
    pub fn url_policy(&self) -> UrlPolicy {
        UrlPolicy {
            allow_http: self.config.allow_http,
            allowed_private: self.config.allow_private_networks.clone(),
        }
    }

    /// Law Ruler clients over the SSRF-safe HTTP client, cached per company.
    pub fn lawruler_clients(&self) -> Clients {
        let policy = Arc::new(self.url_policy());
        Clients::new(
            casebridge_webhooks::policy::safe_client(policy.clone(), LAWRULER_TIMEOUT),
            policy,
            self.lawruler_paths.clone(),
            self.keyring.clone(),
        )
    }

    /// SmartAdvocate clients over the SSRF-safe HTTP client, cached per company.
    pub fn smartadvocate_clients(&self) -> smartadvocate::connection::Clients {
        let policy = Arc::new(self.url_policy());
        smartadvocate::connection::Clients::new(
            casebridge_webhooks::policy::safe_client(policy.clone(), SMARTADVOCATE_TIMEOUT),
            policy,
            self.smartadvocate_paths.clone(),
            self.keyring.clone(),
        )
    }

    /// The handlers of the `crm` queue: every CRM connector's (imports, pulls, outbound
    /// operations).
    pub fn crm_registry(&self) -> Registry {
        queue_registry(self.queue_parts(), crm::QUEUE)
    }

    fn queue_parts(&self) -> QueueParts<'_> {
        QueueParts {
            store: &self.store,
            keyring: &self.keyring,
            clock: &self.clock,
            url_policy: self.url_policy(),
            attempt_timeout: ATTEMPT_TIMEOUT,
            lawruler: self.lawruler_clients(),
            smartadvocate: self.smartadvocate_clients(),
            lawruler_requests_per_minute: self.config.lawruler_requests_per_minute,
            smartadvocate_requests_per_minute: self.config.smartadvocate_requests_per_minute,
            files: &self.files,
        }
    }

    /// The worker pools of this build, one per queue, each with its handlers. A job whose kind
    /// has no handler is dead-lettered with a clear error, never dropped.
    pub fn workers(&self) -> Vec<Worker> {
        queue_registries(self.queue_parts())
            .into_iter()
            .map(|(queue, registry)| {
                Worker::new(
                    self.store.clone(),
                    self.clock.clone(),
                    registry,
                    WorkerConfig {
                        concurrency: self.config.worker_concurrency,
                        lease: Duration::from_secs(self.config.job_lease_secs),
                        shutdown_grace: self.grace(),
                        ..WorkerConfig::new(queue)
                    },
                )
            })
            .collect()
    }

    /// The base of the inbound webhook URLs shown to admins: `CASEBRIDGE_PUBLIC_URL`, or the
    /// address the server listens on. A loopback base is logged as a warning (the setup view
    /// shows it too): a CRM cannot reach it.
    fn public_url(&self, bound: std::net::SocketAddr) -> String {
        let url = self.config.public_url_or(bound);
        if let Some(warning) = casebridge_domain::integrations::unreachable_base_url(&url) {
            tracing::warn!(public_url = %url, "{warning}");
        }
        url
    }

    fn grace(&self) -> Duration {
        Duration::from_secs(self.config.shutdown_grace_secs)
    }

    /// What the services run on; `public_url` is the base of the webhook URLs they show.
    pub fn app_parts(&self, public_url: Option<String>) -> AppParts {
        AppParts {
            store: self.store.clone(),
            clock: self.clock.clone(),
            keyring: self.keyring.clone(),
            url_policy: Arc::new(self.url_policy()),
            outbound: casebridge_webhooks::policy::safe_client(
                Arc::new(self.url_policy()),
                Duration::from_secs(20),
            ),
            public_url,
            scheduling_url: self.config.scheduling_url.clone(),
            lawruler: self.lawruler_clients(),
            smartadvocate: self.smartadvocate_clients(),
            files: self.files.clone(),
        }
    }

    /// Serves the API on `listener` and runs the workers (unless `with_workers` is false) until
    /// `shutdown`; then drains both within the grace period.
    pub async fn serve(
        &self,
        listener: TcpListener,
        with_workers: bool,
        shutdown: CancellationToken,
    ) -> anyhow::Result<()> {
        let worker_tasks = if with_workers {
            self.spawn_workers(&shutdown)
        } else {
            Vec::new()
        };
        let public_url = self.public_url(listener.local_addr()?);
        let state = AppState::new(
            self.app_parts(Some(public_url)),
            casebridge_api::metrics_handle(),
        );
        let options = HttpOptions {
            body_limit_bytes: self.config.body_limit_bytes,
        };
        tracing::info!(listen = %listener.local_addr()?, database = self.store.backend().name(),
            "casebridge serving");
        casebridge_api::serve(listener, state, options, shutdown.clone(), self.grace()).await?;
        for t in worker_tasks {
            let _ = t.await;
        }
        self.store.close().await;
        tracing::info!("casebridge stopped");
        Ok(())
    }

    /// Starts the worker pools, the log pruning, the pull schedule and the sweep of orphan
    /// uploads; they stop when `shutdown` is cancelled.
    fn spawn_workers(&self, shutdown: &CancellationToken) -> Vec<tokio::task::JoinHandle<()>> {
        let mut tasks: Vec<_> = self
            .workers()
            .into_iter()
            .map(|w| tokio::spawn(w.run(shutdown.clone())))
            .collect();
        tasks.push(tokio::spawn(casebridge_webhooks::retention::prune_loop(
            self.store.clone(),
            self.clock.clone(),
            Duration::from_secs(u64::from(self.config.webhook_log_retention_days) * 86_400),
            Duration::from_secs(3600),
            shutdown.clone(),
        )));
        tasks.push(tokio::spawn(casebridge_crm::lawruler::pull::schedule_loop(
            self.store.clone(),
            self.clock.clone(),
            Duration::from_secs(self.config.lawruler_pull_interval_secs),
            shutdown.clone(),
        )));
        // Objects of uploads whose row never committed (a crash mid-upload), every 15 minutes.
        tasks.push(tokio::spawn(casebridge_app::files::sweep_loop(
            casebridge_app::App::new(self.app_parts(None)),
            Duration::from_secs(15 * 60),
            shutdown.clone(),
        )));
        tasks.push(tokio::spawn(
            casebridge_crm::smartadvocate::pull::SCHEDULE.run_loop(
                self.store.clone(),
                self.clock.clone(),
                Duration::from_secs(self.config.smartadvocate_pull_interval_secs),
                shutdown.clone(),
            ),
        ));
        tasks
    }

    /// Runs only the workers until `shutdown`.
    pub async fn work(&self, shutdown: CancellationToken) -> anyhow::Result<()> {
        let tasks = self.spawn_workers(&shutdown);
        shutdown.cancelled().await;
        for t in tasks {
            let _ = t.await;
        }
        self.store.close().await;
        Ok(())
    }
}

/// What the queues' handlers are built from.
pub struct QueueParts<'a> {
    pub store: &'a Store,
    pub keyring: &'a Keyring,
    pub clock: &'a Arc<dyn Clock>,
    pub url_policy: UrlPolicy,
    /// How long one webhook delivery attempt may take.
    pub attempt_timeout: Duration,
    pub lawruler: Clients,
    pub smartadvocate: smartadvocate::connection::Clients,
    /// The per-connection Law Ruler request limit (0: none).
    pub lawruler_requests_per_minute: u32,
    /// The per-connection SmartAdvocate request limit (0: none).
    pub smartadvocate_requests_per_minute: u32,
    /// The object store (the Law Ruler uploads read files from it).
    pub files: &'a Files,
}

/// Every queue of this build with its handlers: the `webhooks` queue's deliveries and the `crm`
/// queue's connector jobs. [`Runtime::workers`] and the testkit's workers are both built from
/// this one list, so tests run the handlers the binary runs.
pub fn queue_registries(parts: QueueParts<'_>) -> Vec<(&'static str, Registry)> {
    let webhooks = WebhookRuntime::new(
        parts.store.clone(),
        parts.keyring.clone(),
        parts.clock.clone(),
        parts.url_policy,
        parts.attempt_timeout,
    );
    vec![
        (webhook_outbox::QUEUE, webhooks.registry()),
        (
            crm::QUEUE,
            Connectors::new(parts.lawruler, parts.smartadvocate).register_jobs(
                Registry::new(),
                parts.store,
                parts.files,
                parts.clock,
                JobSettings {
                    requests_per_minute: parts.lawruler_requests_per_minute,
                    smartadvocate_requests_per_minute: parts.smartadvocate_requests_per_minute,
                },
            ),
        ),
    ]
}

/// The handlers of one queue, from [`queue_registries`].
///
/// # Panics
/// When this build has no such queue (a wiring mistake, not an input error).
pub fn queue_registry(parts: QueueParts<'_>, queue: &str) -> Registry {
    queue_registries(parts)
        .into_iter()
        .find_map(|(q, registry)| (q == queue).then_some(registry))
        .unwrap_or_else(|| panic!("this build registers no `{queue}` queue"))
}

/// Cancels `token` on Ctrl-C or SIGTERM.
pub fn cancel_on_signal(token: CancellationToken) {
    tokio::spawn(async move {
        let ctrl_c = tokio::signal::ctrl_c();
        #[cfg(unix)]
        let term = async {
            let mut s = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
                .expect("SIGTERM handler");
            s.recv().await;
        };
        #[cfg(not(unix))]
        let term = std::future::pending::<()>();
        tokio::select! {
            _ = ctrl_c => {}
            _ = term => {}
        }
        tracing::info!("shutdown requested");
        token.cancel();
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(toml: &str) -> Config {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("casebridge.toml");
        std::fs::write(&path, toml).unwrap();
        Config::load(Some(&path)).unwrap()
    }

    #[test]
    fn smartadvocate_paths_take_corrections_and_refuse_unknown_names() {
        let paths = smartadvocate_paths(&config(
            "[smartadvocate_paths]\nudfs = \"/case/udf/{case_type_id}\"\n",
        ))
        .unwrap();
        assert_eq!(paths.udfs, "/case/udf/{case_type_id}");
        assert_eq!(paths.case_info, SmartAdvocatePaths::default().case_info);
        let err =
            smartadvocate_paths(&config("[smartadvocate_paths]\nudf = \"/x\"\n")).unwrap_err();
        assert!(
            format!("{err:#}").contains("CASEBRIDGE_SMARTADVOCATE_PATHS"),
            "{err:#}"
        );
    }
}
