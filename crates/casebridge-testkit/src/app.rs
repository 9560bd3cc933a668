use std::sync::Arc;
use std::time::Duration;

use casebridge_api::{AppParts, AppState, HttpOptions};
use casebridge_crm::connector as crm;
use casebridge_crm::lawruler::client::LawRulerPaths;
use casebridge_crm::lawruler::connection::Clients;
use casebridge_crypto::{generate_api_key, Keyring, MasterKey};
use casebridge_domain::clock::ManualClock;
use casebridge_domain::company::NewCompany;
use casebridge_domain::ids::CompanyId;
use casebridge_queue::{Worker, WorkerConfig};
use casebridge_store::{api_keys, companies};
use casebridge_webhooks::delivery::ATTEMPT_TIMEOUT;
use casebridge_webhooks::outbox::QUEUE;
use casebridge_webhooks::policy::UrlPolicy;
use reqwest::{Method, StatusCode};
use secrecy::ExposeSecret;
use serde_json::Value;
use tokio_util::sync::CancellationToken;

use crate::{TestBackend, TestDb};

/// Law Ruler clients as the server builds them, with the test URL policy.
fn lawruler_clients(keyring: &Keyring, policy: &UrlPolicy) -> Clients {
    let policy = Arc::new(policy.clone());
    Clients::new(
        casebridge_webhooks::policy::safe_client(policy.clone(), Duration::from_secs(20)),
        policy,
        LawRulerPaths::default(),
        keyring.clone(),
    )
}

/// SmartAdvocate clients as the server builds them, with the test URL policy.
fn smartadvocate_clients(
    keyring: &Keyring,
    policy: &UrlPolicy,
) -> casebridge_crm::smartadvocate::connection::Clients {
    let policy = Arc::new(policy.clone());
    casebridge_crm::smartadvocate::connection::Clients::new(
        casebridge_webhooks::policy::safe_client(policy.clone(), Duration::from_secs(20)),
        policy,
        casebridge_crm::smartadvocate::SmartAdvocatePaths::default(),
        keyring.clone(),
    )
}

/// How a [`TestApp`] is set up.
#[derive(Debug, Clone)]
pub struct TestOptions {
    pub http: HttpOptions,
    /// Default: plain http and loopback allowed, so local receivers can be used.
    pub url_policy: UrlPolicy,
    pub attempt_timeout: Duration,
    /// Base URL of the scheduling API (point it at a simulator).
    pub scheduling_url: String,
    pub public_url: Option<String>,
    /// Where file bytes go; `None`: a fresh local folder per test (see [`TestApp::files`]).
    pub object_store: Option<casebridge_files::StoreSettings>,
    /// How the store runs group commits; `None`: the backend's default
    /// (`casebridge_store::GroupCommit::default_for`).
    pub group_commit: Option<casebridge_store::GroupCommit>,
}

impl Default for TestOptions {
    fn default() -> Self {
        Self {
            http: HttpOptions::default(),
            url_policy: UrlPolicy {
                allow_http: true,
                allowed_private: vec![
                    "127.0.0.0/8".parse().expect("cidr"),
                    "::1/128".parse().expect("cidr"),
                ],
            },
            attempt_timeout: ATTEMPT_TIMEOUT,
            scheduling_url: "http://127.0.0.1:9".into(),
            public_url: Some("https://casebridge.example.test".into()),
            object_store: None,
            group_commit: None,
        }
    }
}

/// The real HTTP server on `127.0.0.1:0` over a fresh database, with one company and its key.
/// Its clock is a [`ManualClock`] (starting now) shared by the API and [`TestApp::webhook_worker`],
/// so retry schedules can be walked without waiting.
pub struct TestApp {
    pub db: TestDb,
    pub clock: ManualClock,
    pub keyring: Keyring,
    pub options: TestOptions,
    pub base: String,
    pub company_id: CompanyId,
    pub api_key: String,
    pub http: reqwest::Client,
    /// The service layer the server runs on, for tests that drive a use case without HTTP.
    pub services: casebridge_api::App,
    /// The object store the server keeps file bytes in.
    pub files: casebridge_files::Files,
    /// The test's data folder: the local object store (by default) and the upload spool.
    pub data_dir: std::path::PathBuf,
    _data_dir: Arc<tempfile::TempDir>,
    shutdown: CancellationToken,
}

/// A response: status, headers and the body parsed as JSON (`Value::Null` when empty or not JSON).
/// The calls that return one are `#[must_use]`: a test that sends a request checks the answer
/// (see [`Reply::expect`]).
#[derive(Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub headers: reqwest::header::HeaderMap,
    pub body: Value,
    pub text: String,
}

impl Reply {
    /// Asserts the status (showing the body when it differs) and returns the reply.
    #[track_caller]
    pub fn expect(self, status: StatusCode) -> Self {
        assert_eq!(self.status, status, "{}", self.text);
        self
    }
}

impl TestApp {
    pub async fn start(backend: TestBackend) -> Self {
        Self::start_with(backend, TestOptions::default()).await
    }

    pub async fn start_with(backend: TestBackend, options: TestOptions) -> Self {
        let mut db = TestDb::new(backend).await;
        if let Some(mode) = options.group_commit {
            db.store = db.store.with_group_commit(mode);
        }
        let clock = ManualClock::new(jiff::Timestamp::now());
        let keyring = Keyring::new(MasterKey::generate(), Vec::new());
        let data_dir = Arc::new(tempfile::tempdir().expect("a temporary data folder"));
        let files = casebridge_files::Files::open(
            &options.object_store.clone().unwrap_or_default(),
            data_dir.path(),
        )
        .expect("the test object store");
        let state = AppState::new(
            AppParts {
                store: db.store.clone(),
                clock: Arc::new(clock.clone()),
                keyring: keyring.clone(),
                url_policy: Arc::new(options.url_policy.clone()),
                outbound: casebridge_webhooks::policy::safe_client(
                    Arc::new(options.url_policy.clone()),
                    Duration::from_secs(20),
                ),
                public_url: options.public_url.clone(),
                scheduling_url: options.scheduling_url.clone(),
                lawruler: lawruler_clients(&keyring, &options.url_policy),
                smartadvocate: smartadvocate_clients(&keyring, &options.url_policy),
                files: files.clone(),
            },
            casebridge_api::metrics_handle(),
        );
        let services = state.app.clone();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind 127.0.0.1:0");
        let base = format!("http://{}", listener.local_addr().unwrap());
        let shutdown = CancellationToken::new();
        tokio::spawn(casebridge_api::serve(
            listener,
            state,
            options.http.clone(),
            shutdown.clone(),
            Duration::from_secs(5),
        ));
        let mut app = Self {
            db,
            clock,
            keyring,
            options,
            base,
            company_id: CompanyId::new(),
            api_key: String::new(),
            http: reqwest::Client::new(),
            services,
            files,
            data_dir: data_dir.path().to_owned(),
            _data_dir: data_dir,
            shutdown,
        };
        let (company_id, api_key) = app.new_company("Test Firm").await;
        app.company_id = company_id;
        app.api_key = api_key;
        app
    }

    /// A worker for the `webhooks` queue sharing the app's store, keyring, clock and URL policy.
    /// Call `drain()` on it for deterministic tests, or spawn `run()`.
    pub fn webhook_worker(&self, concurrency: usize) -> Worker {
        self.worker(QUEUE, concurrency, 0)
    }

    /// A worker for the `crm` queue (imports, pulls and outbound Law Ruler operations) sharing the
    /// app's store, keyring, clock and URL policy. `requests_per_minute` is the per-connection
    /// Law Ruler limit (0: none).
    pub fn crm_worker(&self, requests_per_minute: u32) -> Worker {
        self.worker(crm::QUEUE, 8, requests_per_minute)
    }

    /// A worker for `queue` with the handlers the binary registers for it
    /// ([`casebridge::queue_registry`], from the list `Runtime::workers` uses), polling every 20 ms.
    fn worker(&self, queue: &str, concurrency: usize, requests_per_minute: u32) -> Worker {
        let clock: Arc<dyn casebridge_domain::clock::Clock> = Arc::new(self.clock.clone());
        let parts = casebridge::QueueParts {
            store: &self.db.store,
            keyring: &self.keyring,
            clock: &clock,
            url_policy: self.options.url_policy.clone(),
            attempt_timeout: self.options.attempt_timeout,
            lawruler: lawruler_clients(&self.keyring, &self.options.url_policy),
            smartadvocate: smartadvocate_clients(&self.keyring, &self.options.url_policy),
            lawruler_requests_per_minute: requests_per_minute,
            smartadvocate_requests_per_minute: requests_per_minute,
            files: &self.files,
        };
        Worker::new(
            self.db.store.clone(),
            clock.clone(),
            casebridge::queue_registry(parts, queue),
            WorkerConfig {
                concurrency,
                poll_interval: Duration::from_millis(20),
                shutdown_grace: Duration::from_secs(1),
                ..WorkerConfig::new(queue)
            },
        )
    }

    /// Marks Law Ruler connected for `key`'s company without a Law Ruler to verify against (the
    /// credentials are sealed as the connect endpoint would seal them) and turns receiving on.
    /// Returns the path of the company's inbound webhook. For tests about inbound data; connecting
    /// itself is tested against the simulator.
    pub async fn lawruler_connected_offline(&self, company: CompanyId, key: &str) -> String {
        let view = self
            .call_as(key, Method::GET, "/api/v1/integrations/lawruler", None)
            .await;
        assert_eq!(view.status, StatusCode::OK, "{}", view.text);
        let sealed = casebridge_crm::lawruler::connection::seal(
            &self.keyring,
            company,
            &casebridge_crm::lawruler::connection::StoredCredentials {
                username: "u".into(),
                password: "p".into(),
                client_root: "http://127.0.0.1:9".into(),
                client_secret: "s".into(),
                key: "k".into(),
            },
        );
        let mut conn = self.db.store.conn().await.unwrap();
        casebridge_store::integrations::set_credentials(
            &mut conn,
            company,
            "lawruler",
            Some(&sealed),
            jiff::Timestamp::now(),
        )
        .await
        .unwrap();
        drop(conn);
        let r = self
            .call_as(
                key,
                Method::PUT,
                "/api/v1/integrations/lawruler/settings",
                Some(serde_json::json!({"enable_integration": true, "receive": true})),
            )
            .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
        let url = view.body["webhook_url"].as_str().expect("webhook_url");
        url.split_once("/hooks/")
            .map(|(_, rest)| format!("/hooks/{rest}"))
            .expect("a hook URL")
    }

    /// Moves the shared clock forward.
    pub fn advance(&self, by: Duration) {
        self.clock.advance(by);
    }

    /// Another tenant on the same server: its id and API key.
    pub async fn new_company(&self, name: &str) -> (CompanyId, String) {
        let key = generate_api_key();
        let now = jiff::Timestamp::now();
        let mut tx = self.db.store.begin().await.unwrap();
        let company = companies::create(&mut tx, &NewCompany::parse(name, None).unwrap(), now)
            .await
            .unwrap();
        api_keys::create(&mut tx, company.id, "test", &key.prefix, &key.hash, now)
            .await
            .unwrap();
        tx.commit().await.unwrap();
        (company.id, key.secret.expose_secret().to_owned())
    }

    /// An admin UI user of `company` (as `casebridge user create` makes one).
    pub async fn admin_user(&self, company: CompanyId, email: &str, password: &str) {
        let hash = casebridge_crypto::hash_password(password).expect("hash");
        let mut tx = self.db.store.begin().await.unwrap();
        casebridge_store::users::create(&mut tx, company, email, &hash, jiff::Timestamp::now())
            .await
            .unwrap();
        tx.commit().await.unwrap();
    }

    /// A browser signed in to the admin UI as a new admin of this app's company.
    pub async fn admin_browser(&self) -> crate::Browser {
        let email = format!("admin-{}@firm.test", uuid::Uuid::new_v4().simple());
        self.admin_user(self.company_id, &email, "correct horse battery")
            .await;
        let b = crate::Browser::new(&self.base);
        let signed_in = b.sign_in(&email, "correct horse battery").await;
        assert_eq!(
            signed_in.status,
            StatusCode::SEE_OTHER,
            "{}",
            signed_in.html
        );
        assert!(b.cookie("cb_session").is_some(), "signed in");
        b
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    /// Sends a request with this app's key. `body` is sent as JSON when given.
    #[must_use = "a test that sends a request checks the answer: assert on it or `.expect(status)`"]
    pub async fn call(&self, method: Method, path: &str, body: Option<Value>) -> Reply {
        self.call_as(&self.api_key, method, path, body).await
    }

    #[must_use = "a test that sends a request checks the answer: assert on it or `.expect(status)`"]
    pub async fn call_as(
        &self,
        key: &str,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> Reply {
        let mut req = self.http.request(method, self.url(path)).bearer_auth(key);
        if let Some(b) = body {
            req = req.json(&b);
        }
        Self::reply(req.send().await.expect("request sent")).await
    }

    #[must_use = "a test that sends a request checks the answer: assert on it or `.expect(status)`"]
    pub async fn reply(resp: reqwest::Response) -> Reply {
        let status = resp.status();
        let headers = resp.headers().clone();
        let text = resp.text().await.unwrap_or_default();
        let body = serde_json::from_str(&text).unwrap_or(Value::Null);
        Reply {
            status,
            headers,
            body,
            text,
        }
    }

    #[must_use = "a test that sends a request checks the answer: assert on it or `.expect(status)`"]
    pub async fn get(&self, path: &str) -> Reply {
        self.call(Method::GET, path, None).await
    }

    #[must_use = "a test that sends a request checks the answer: assert on it or `.expect(status)`"]
    pub async fn post(&self, path: &str, body: Value) -> Reply {
        self.call(Method::POST, path, Some(body)).await
    }

    #[must_use = "a test that sends a request checks the answer: assert on it or `.expect(status)`"]
    pub async fn patch(&self, path: &str, body: Value) -> Reply {
        self.call(Method::PATCH, path, Some(body)).await
    }

    #[must_use = "a test that sends a request checks the answer: assert on it or `.expect(status)`"]
    pub async fn delete(&self, path: &str) -> Reply {
        self.call(Method::DELETE, path, None).await
    }

    /// Creates a record and returns its id, asserting 201.
    pub async fn create(&self, path: &str, body: Value) -> String {
        let r = self.post(path, body).await;
        assert_eq!(r.status, StatusCode::CREATED, "POST {path}: {}", r.text);
        r.body["id"].as_str().expect("id").to_owned()
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}
