//! The real HTTP API server in-process, built the way `casebridge serve` builds it
//! (`casebridge::Runtime::serve`) and the way `casebridge_testkit::TestApp` does, but over the
//! benchmark's [`Bench`] database: the production pool size (16 connections on both backends)
//! and the system clock. A company with an API key, a reqwest client, and the `crm` queue worker
//! (Law Ruler's and SmartAdvocate's outbound operations) as `casebridge serve` registers it.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use casebridge_api::{AppParts, AppState, HttpOptions};
use casebridge_crm::lawruler::client::LawRulerPaths;
use casebridge_crm::lawruler::connection::{self, Clients, StoredCredentials};
use casebridge_crm::lawruler::outbound;
use casebridge_crm::smartadvocate::outbound as sa_outbound;
use casebridge_crypto::generate_api_key;
use casebridge_domain::clock::Clock;
use casebridge_domain::company::NewCompany;
use casebridge_domain::ids::CompanyId;
use casebridge_queue::{Worker, WorkerConfig};
use casebridge_store::{api_keys, companies, integrations};
use casebridge_webhooks::policy::{safe_client, UrlPolicy};
use reqwest::Method;
use secrecy::ExposeSecret;
use serde_json::{json, Value};
use tokio_util::sync::CancellationToken;

use crate::harness::{Bench, RunningWorker, WorkerOpts};

/// `casebridge serve`'s timeout for Law Ruler requests (`LAWRULER_TIMEOUT`) is 20 s, as is
/// TestApp's.
const LAWRULER_TIMEOUT: Duration = Duration::from_secs(20);

/// Plain http and loopback allowed, so the simulator on 127.0.0.1 can be reached.
fn url_policy() -> UrlPolicy {
    UrlPolicy {
        allow_http: true,
        allowed_private: vec![
            "127.0.0.0/8".parse().expect("cidr"),
            "::1/128".parse().expect("cidr"),
        ],
    }
}

/// Law Ruler clients as the server builds them (default paths, SSRF-safe client).
fn lawruler_clients(bench: &Bench) -> Clients {
    let policy = Arc::new(url_policy());
    Clients::new(
        safe_client(policy.clone(), LAWRULER_TIMEOUT),
        policy,
        LawRulerPaths::default(),
        bench.keyring.clone(),
    )
}

/// The API server on `127.0.0.1:0` and one company with its API key.
pub struct ApiServer {
    pub base: String,
    pub company: CompanyId,
    pub api_key: String,
    /// Keeps up to 64 idle connections per host, so C client tasks reuse theirs.
    pub http: reqwest::Client,
    shutdown: CancellationToken,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
}

/// A response's status and body (JSON, or `Null`).
pub struct Reply {
    pub status: reqwest::StatusCode,
    pub body: Value,
    pub text: String,
}

impl ApiServer {
    pub async fn start(bench: &Bench) -> anyhow::Result<Self> {
        let policy = url_policy();
        let state = AppState::new(
            AppParts {
                store: bench.store.clone(),
                clock: bench.clock.clone(),
                keyring: bench.keyring.clone(),
                url_policy: Arc::new(policy.clone()),
                outbound: safe_client(Arc::new(policy), Duration::from_secs(20)),
                public_url: None,
                scheduling_url: "http://127.0.0.1:9".into(),
                lawruler: lawruler_clients(bench),
                smartadvocate: smartadvocate_clients(bench),
                files: bench.files.clone(),
            },
            casebridge_api::metrics_handle(),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let base = format!("http://{}", listener.local_addr()?);
        let shutdown = CancellationToken::new();
        let task = tokio::spawn(casebridge_api::serve(
            listener,
            state,
            HttpOptions::default(),
            shutdown.clone(),
            Duration::from_secs(5),
        ));

        let key = generate_api_key();
        let now = bench.now();
        let mut tx = bench.store.begin().await?;
        let company = companies::create(&mut tx, &NewCompany::parse("Bench firm", None)?, now)
            .await?
            .id;
        api_keys::create(&mut tx, company, "bench", &key.prefix, &key.hash, now).await?;
        tx.commit().await?;
        Ok(Self {
            base,
            company,
            api_key: key.secret.expose_secret().to_owned(),
            http: reqwest::Client::builder()
                .no_proxy()
                .pool_max_idle_per_host(64)
                .build()?,
            shutdown,
            task,
        })
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    /// A request with the company's key; `body` as JSON.
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> anyhow::Result<Reply> {
        let mut req = self
            .http
            .request(method, self.url(path))
            .bearer_auth(&self.api_key);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req
            .send()
            .await
            .with_context(|| format!("request {path}"))?;
        let status = resp.status();
        let text = resp.text().await.unwrap_or_default();
        let body = serde_json::from_str(&text).unwrap_or(Value::Null);
        Ok(Reply { status, body, text })
    }

    /// `call` that insists on a 2xx and returns the body.
    pub async fn ok(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> anyhow::Result<Value> {
        let r = self.call(method.clone(), path, body).await?;
        if !r.status.is_success() {
            bail!("{method} {path}: {} {}", r.status, r.text);
        }
        Ok(r.body)
    }

    /// Marks Law Ruler connected without a Law Ruler to verify against and turns receiving on,
    /// as `TestApp::lawruler_connected_offline` does: the credentials are sealed as the connect
    /// endpoint seals them. Returns the inbound webhook's path, `/hooks/lawruler/<token>`.
    pub async fn lawruler_connected_offline(&self, bench: &Bench) -> anyhow::Result<String> {
        let view = self
            .ok(Method::GET, "/api/v1/integrations/lawruler", None)
            .await?;
        let sealed = connection::seal(
            &bench.keyring,
            self.company,
            &StoredCredentials {
                username: "u".into(),
                password: "p".into(),
                client_root: "http://127.0.0.1:9".into(),
                client_secret: "s".into(),
                key: "k".into(),
            },
        );
        let mut conn = bench.store.conn().await?;
        integrations::set_credentials(
            &mut conn,
            self.company,
            "lawruler",
            Some(&sealed),
            bench.now(),
        )
        .await?;
        drop(conn);
        self.ok(
            Method::PUT,
            "/api/v1/integrations/lawruler/settings",
            Some(json!({"enable_integration": true, "receive": true})),
        )
        .await?;
        let url = view["webhook_url"]
            .as_str()
            .context("webhook_url in the integration view")?;
        url.split_once("/hooks/")
            .map(|(_, rest)| format!("/hooks/{rest}"))
            .context("a hook URL")
    }

    pub async fn stop(self) {
        self.shutdown.cancel();
        let _ = tokio::time::timeout(Duration::from_secs(10), self.task).await;
    }
}

/// SmartAdvocate clients as the server builds them (default paths, SSRF-safe client).
fn smartadvocate_clients(bench: &Bench) -> casebridge_crm::smartadvocate::connection::Clients {
    let policy = Arc::new(url_policy());
    casebridge_crm::smartadvocate::connection::Clients::new(
        safe_client(policy.clone(), LAWRULER_TIMEOUT),
        policy,
        casebridge_crm::smartadvocate::SmartAdvocatePaths::default(),
        bench.keyring.clone(),
    )
}

/// Starts the `crm` queue worker with Law Ruler's imports and outbound operations and
/// SmartAdvocate's outbound operations, as `casebridge serve` registers them, with
/// `requests_per_minute` as each CRM's per-connection limit (0: none).
pub fn start_crm_worker(
    bench: &Bench,
    opts: WorkerOpts,
    requests_per_minute: u32,
) -> RunningWorker {
    let clock: Arc<dyn Clock> = bench.clock.clone();
    let registry = casebridge_crm::lawruler::import::registry(bench.store.clone(), clock.clone());
    let registry = outbound::register(
        registry,
        outbound::OpHandler::new(
            bench.store.clone(),
            bench.files.clone(),
            clock.clone(),
            lawruler_clients(bench),
            requests_per_minute,
        ),
    );
    let registry = sa_outbound::register(
        registry,
        sa_outbound::OpHandler::new(
            bench.store.clone(),
            clock.clone(),
            smartadvocate_clients(bench),
            requests_per_minute,
        ),
    );
    let worker = Worker::new(
        bench.store.clone(),
        clock,
        registry,
        WorkerConfig {
            concurrency: opts.concurrency,
            poll_interval: opts.poll_interval,
            shutdown_grace: Duration::from_secs(1),
            ..WorkerConfig::new(outbound::QUEUE)
        },
    );
    let cancel = CancellationToken::new();
    let started = Instant::now();
    let handle = tokio::spawn(worker.run(cancel.clone()));
    RunningWorker::new(cancel, handle, started)
}
