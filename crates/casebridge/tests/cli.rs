//! The `casebridge` binary as an operator runs it, on both backends.

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use casebridge_testkit::{wait_until, TestDb};
use serde_json::Value;

fn casebridge(data_dir: &Path, db_url: &str) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_casebridge"));
    cmd.env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("CASEBRIDGE_DATA_DIR", data_dir)
        .env("CASEBRIDGE_DATABASE_URL", db_url)
        .env("CASEBRIDGE_LOG_FORMAT", "json")
        .env("CASEBRIDGE_SHUTDOWN_GRACE_SECS", "5")
        // Few connections, so parallel tests stay inside PostgreSQL's limit.
        .env("CASEBRIDGE_DB_MAX_CONNECTIONS", "4");
    cmd
}

fn company_create(data_dir: &Path, db_url: &str, name: &str) -> Value {
    let out = casebridge(data_dir, db_url)
        .args([
            "company",
            "create",
            "--name",
            name,
            "--timezone",
            "America/Chicago",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("stdout is JSON")
}

/// A running `casebridge serve` whose log lines are collected.
struct Server {
    child: Child,
    base: String,
    logs: mpsc::Receiver<String>,
    seen: Vec<String>,
}

impl Server {
    fn start(data_dir: &Path, db_url: &str) -> Self {
        Self::start_with(casebridge(data_dir, db_url))
    }

    fn start_with(mut cmd: Command) -> Self {
        let mut child = cmd
            .env("CASEBRIDGE_LISTEN", "127.0.0.1:0")
            .arg("serve")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let (tx, rx) = mpsc::channel();
        let stderr = child.stderr.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        let mut seen = Vec::new();
        let base = loop {
            let line = rx
                .recv_timeout(Duration::from_secs(30))
                .unwrap_or_else(|_| panic!("server did not start; logs: {seen:#?}"));
            let v: Value = serde_json::from_str(&line).expect("log lines are JSON");
            seen.push(line);
            if v["message"] == "casebridge serving" {
                break format!("http://{}", v["listen"].as_str().unwrap());
            }
        };
        Server {
            child,
            base,
            logs: rx,
            seen,
        }
    }

    /// SIGTERM, then wait: returns whether it exited cleanly, with every log line.
    fn stop(mut self) -> (bool, Vec<String>) {
        Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        let status = self.child.wait().unwrap();
        while let Ok(line) = self.logs.recv_timeout(Duration::from_secs(2)) {
            self.seen.push(line);
        }
        (status.success(), self.seen)
    }
}

/// Calls the API of a running server; returns the status and the JSON body.
async fn api(
    base: &str,
    key: &str,
    method: reqwest::Method,
    path: &str,
    body: Value,
) -> (u16, Value) {
    let r = reqwest::Client::new()
        .request(method, format!("{base}{path}"))
        .bearer_auth(key)
        .json(&body)
        .send()
        .await
        .expect("request sent");
    let status = r.status().as_u16();
    let text = r.text().await.unwrap();
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

async fn serve_runs_the_workers_it_wires(backend: casebridge_testkit::TestBackend) {
    // The binary's own wiring, end to end: `serve` starts the worker pools built by
    // `Runtime::workers`, so one outbound message is delivered to a webhook consumer
    // (the `webhooks` queue) and sent to Law Ruler as a note (the `crm` queue).
    use reqwest::Method;
    use serde_json::json;
    let lr = casebridge_sim::lawruler::LawRulerSim::new().start().await;
    let consumer = casebridge_testkit::Receiver::start().await;
    let db = TestDb::empty(backend).await;
    let dir = tempfile::tempdir().unwrap();
    let key = company_create(dir.path(), &db.url, "Acme")["api_key"]
        .as_str()
        .unwrap()
        .to_owned();
    let mut cmd = casebridge(dir.path(), &db.url);
    cmd.env("CASEBRIDGE_ALLOW_HTTP", "true")
        .env("CASEBRIDGE_ALLOW_PRIVATE_NETWORKS", "127.0.0.0/8");
    let server = Server::start_with(cmd);
    let base = server.base.clone();
    let call = async |method: Method, path: &str, body: Value, want: u16| {
        let (status, body) = api(&base, &key, method, path, body).await;
        assert_eq!(status, want, "{path}: {body}");
        body
    };

    let hook = call(
        Method::POST,
        "/api/v1/webhooks",
        json!({"name": "Consumer",
            "url": consumer.url("/events"), "event_types": ["message_sent"]}),
        201,
    )
    .await;
    call(
        Method::PUT,
        "/api/v1/integrations/lawruler/connection",
        json!({"username": "demo",
            "password": "demo-password", "client_root": lr.base_url, "client_secret": "demo-secret",
            "key": "demo-key"}),
        200,
    )
    .await;
    call(
        Method::PUT,
        "/api/v1/integrations/lawruler/settings",
        json!({"enable_integration": true,
            "send": true, "send_messages": true}),
        200,
    )
    .await;
    let case_type = call(
        Method::POST,
        "/api/v1/case-types",
        json!({"name": "Auto"}),
        201,
    )
    .await;
    let case = call(Method::POST, "/api/v1/cases", json!({"name": "Jane Doe",
            "case_type_id": case_type["id"], "external_refs": [{"provider": "lawruler", "external_id": "10001"}]}), 201).await;
    let message = call(
        Method::POST,
        "/api/v1/messages",
        json!({"case_id": case["id"], "channel": "sms",
            "direction": "outbound", "from": "+15550001000", "to": "+15550102000",
            "body": "We received your documents."}),
        201,
    )
    .await;

    let delivered = consumer
        .wait_for("/events", 1, Duration::from_secs(30))
        .await;
    let event = delivered[0].json();
    assert_eq!(event["type"], "message_sent", "{event}");
    assert_eq!(event["data"]["message"]["id"], message["id"], "{event}");
    let deliveries = format!(
        "/api/v1/webhooks/{}/deliveries",
        hook["id"].as_str().unwrap()
    );
    wait_until(
        Duration::from_secs(30),
        "the delivery recorded as succeeded",
        async || {
            let list = call(Method::GET, &deliveries, Value::Null, 200).await;
            list["data"][0]["status"] == "succeeded"
                && list["data"][0]["last_response_status"] == 200
        },
    )
    .await;

    wait_until(Duration::from_secs(30), "a Law Ruler note", async || {
        !lr.sim.notes("10001").is_empty()
    })
    .await;
    let notes = lr.sim.notes("10001");
    assert_eq!(notes.len(), 1, "{notes:?}");
    assert!(
        format!("{:?}", notes[0]).contains("We received your documents."),
        "{notes:?}"
    );
    wait_until(
        Duration::from_secs(30),
        "the operation recorded as done",
        async || {
            let view = call(
                Method::GET,
                "/api/v1/integrations/lawruler",
                Value::Null,
                200,
            )
            .await;
            view["sync"]["operations_done"] == 1 && view["sync"]["operations_pending"] == 0
        },
    )
    .await;
    let (clean, _) = server.stop();
    assert!(clean, "SIGTERM ends with a clean exit");
}
casebridge_testkit::backend_test!(serve_runs_the_workers_it_wires);

async fn company_create_then_serve_then_graceful_stop(backend: casebridge_testkit::TestBackend) {
    let db = TestDb::empty(backend).await;
    let dir = tempfile::tempdir().unwrap();
    let created = company_create(dir.path(), &db.url, "Acme Injury Law");
    let key = created["api_key"].as_str().unwrap().to_owned();
    let company = created["company_id"].as_str().unwrap().to_owned();

    let server = Server::start(dir.path(), &db.url);
    // No master key configured: one was generated into the data dir, readable by us only.
    let key_file = dir.path().join("master.key");
    let master = std::fs::read_to_string(&key_file).unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&key_file).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    assert!(
        server
            .seen
            .iter()
            .any(|l| l.contains("generated a master key")),
        "warning logged"
    );

    let http = reqwest::Client::new();
    let me: Value = http
        .get(format!("{}/api/v1/company", server.base))
        .bearer_auth(&key)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(me["id"], company.as_str());
    assert_eq!(me["timezone"], "America/Chicago");
    let wrong = "cbk_wrong-key-that-must-not-be-logged";
    let r = http
        .get(format!("{}/api/v1/company", server.base))
        .bearer_auth(wrong)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);

    let (clean, logs) = server.stop();
    assert!(clean, "SIGTERM ends with a clean exit");
    let all = logs.join("\n");
    assert!(all.contains("casebridge stopped"));
    for secret in [key.as_str(), wrong, master.trim()] {
        assert!(!all.contains(secret), "a secret appeared in the logs");
    }

    // A restart reuses the same master key and the same data.
    let server = Server::start(dir.path(), &db.url);
    assert_eq!(std::fs::read_to_string(&key_file).unwrap(), master);
    let r = http
        .get(format!("{}/api/v1/company", server.base))
        .bearer_auth(&key)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let (_, logs) = server.stop();
    assert!(!logs.join("\n").contains("generated a master key"));
}
casebridge_testkit::backend_test!(company_create_then_serve_then_graceful_stop);

async fn crm_credentials_never_reach_the_logs_even_at_debug(
    backend: casebridge_testkit::TestBackend,
) {
    let lr = casebridge_sim::lawruler::LawRulerSim::new().start().await;
    let db = TestDb::empty(backend).await;
    let dir = tempfile::tempdir().unwrap();
    let key = company_create(dir.path(), &db.url, "Acme")["api_key"]
        .as_str()
        .unwrap()
        .to_owned();
    let mut cmd = casebridge(dir.path(), &db.url);
    cmd.env("CASEBRIDGE_LOG", "debug")
        .env("CASEBRIDGE_ALLOW_HTTP", "true")
        .env("CASEBRIDGE_ALLOW_PRIVATE_NETWORKS", "127.0.0.0/8");
    let server = Server::start_with(cmd);
    let http = reqwest::Client::new();
    let url = format!("{}/api/v1/integrations/lawruler/connection", server.base);
    let body = |password: &str| {
        serde_json::json!({"username": "demo", "password": password,
            "client_root": lr.base_url, "client_secret": "demo-secret", "key": "demo-key"})
    };
    let r = http
        .put(&url)
        .bearer_auth(&key)
        .json(&body("wrong-password-xyz"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 422);
    let r = http
        .put(&url)
        .bearer_auth(&key)
        .json(&body("demo-password"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let text = r.text().await.unwrap();
    let (_, logs) = server.stop();
    let all = logs.join("\n");
    assert!(
        all.contains("DEBUG") || all.contains("\"level\":\"DEBUG\""),
        "debug logging was on"
    );
    for secret in [
        "wrong-password-xyz",
        "demo-password",
        "demo-secret",
        "demo-key",
        key.as_str(),
    ] {
        assert!(!all.contains(secret), "{secret} appeared in the logs");
        assert!(!text.contains(secret), "{secret} appeared in the response");
    }
}
casebridge_testkit::backend_test!(crm_credentials_never_reach_the_logs_even_at_debug);

async fn import_from_the_law_ruler_api_with_progress(backend: casebridge_testkit::TestBackend) {
    let lr = casebridge_sim::lawruler::LawRulerSim::new().start().await;
    let db = TestDb::empty(backend).await;
    let dir = tempfile::tempdir().unwrap();
    let created = company_create(dir.path(), &db.url, "Acme");
    let (company, key) = (
        created["company_id"].as_str().unwrap().to_owned(),
        created["api_key"].as_str().unwrap().to_owned(),
    );
    let with_net = |mut cmd: Command| {
        cmd.env("CASEBRIDGE_ALLOW_HTTP", "true")
            .env("CASEBRIDGE_ALLOW_PRIVATE_NETWORKS", "127.0.0.0/8");
        cmd
    };
    let import = || {
        with_net(casebridge(dir.path(), &db.url))
            .args(["import", "lawruler", "--company", &company, "--from-api"])
            .output()
            .unwrap()
    };
    // Not connected yet: a clear refusal.
    let out = import();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("not connected"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let server = Server::start_with(with_net(casebridge(dir.path(), &db.url)));
    let r = reqwest::Client::new()
        .put(format!(
            "{}/api/v1/integrations/lawruler/connection",
            server.base
        ))
        .bearer_auth(&key)
        .json(
            &serde_json::json!({"username": "demo", "password": "demo-password",
                "client_root": lr.base_url, "client_secret": "demo-secret", "key": "demo-key"}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    server.stop();
    let out = import();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let seeded = lr.sim.leads().len();
    assert!(
        stdout.contains(&format!("{seeded} rows: {seeded} created")),
        "{stdout}"
    );
    // Again: nothing changes.
    let out = import();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains(&format!(
            "{seeded} rows: 0 created, 0 updated, {seeded} unchanged"
        )),
        "{stdout}"
    );
}
casebridge_testkit::backend_test!(import_from_the_law_ruler_api_with_progress);

async fn user_create_reads_the_password_from_stdin(backend: casebridge_testkit::TestBackend) {
    let db = TestDb::empty(backend).await;
    let dir = tempfile::tempdir().unwrap();
    let company = company_create(dir.path(), &db.url, "Acme")["company_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let run = |company: &str, password: &str| {
        let mut child = casebridge(dir.path(), &db.url)
            .args([
                "user",
                "create",
                "--company",
                company,
                "--email",
                "admin@acme.test",
                "--password-stdin",
            ])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(password.as_bytes())
            .unwrap();
        child.wait_with_output().unwrap()
    };
    let out = run(&company, "short\n");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("at least 12"));

    let out = run(
        "01a1feab-0000-7000-8000-000000000000",
        "correct horse battery staple\n",
    );
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("no company with id"));

    let out = run(&company, "correct horse battery staple\n");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let user: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(user["email"], "admin@acme.test");
    assert!(!String::from_utf8_lossy(&out.stderr).contains("correct horse"));

    let out = run(&company, "correct horse battery staple\n");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("already exists"));

    // An operator can mint a new key for the company; it works at once.
    let out = casebridge(dir.path(), &db.url)
        .args(["company", "add-key", "--company", &company])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let added: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(added["company_id"], company.as_str());
    let server = Server::start(dir.path(), &db.url);
    let r = reqwest::Client::new()
        .get(format!("{}/api/v1/company", server.base))
        .bearer_auth(added["api_key"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    server.stop();
}
casebridge_testkit::backend_test!(user_create_reads_the_password_from_stdin);

#[test]
fn bad_configuration_is_refused_with_the_setting_named() {
    let dir = tempfile::tempdir().unwrap();
    let out = casebridge(dir.path(), "sqlite://x.db")
        .env("CASEBRIDGE_LISTEN", "not-an-address")
        .arg("migrate")
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("CASEBRIDGE_LISTEN"));

    let out = casebridge(dir.path(), "mysql://nope")
        .arg("migrate")
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("CASEBRIDGE_DATABASE_URL"));

    let out = casebridge(dir.path(), "sqlite://x.db")
        .args([
            "company",
            "create",
            "--name",
            "X",
            "--timezone",
            "Nowhere/Else",
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("timezone"));
}

#[test]
fn migrate_creates_the_sqlite_database_under_the_data_dir() {
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_casebridge"));
    let out = cmd
        .env_clear()
        .env("CASEBRIDGE_DATA_DIR", dir.path().join("nested"))
        .arg("migrate")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(dir.path().join("nested/casebridge.db").exists());
}

/// A running `casebridge sim receiver`: its address and secret (from stderr) and the deliveries
/// it printed (stdout, one JSON line each).
struct ReceiverProcess {
    child: Child,
    base: String,
    secret: String,
    printed: mpsc::Receiver<Value>,
}

impl ReceiverProcess {
    fn start() -> Self {
        let mut child = Command::new(env!("CARGO_BIN_EXE_casebridge"))
            .env_clear()
            .args(["sim", "receiver", "--port", "0"])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut stderr = BufReader::new(child.stderr.take().unwrap()).lines();
        let mut next = || stderr.next().expect("receiver output").unwrap();
        let base = next()
            .strip_prefix("webhook receiver on ")
            .expect("the address comes first")
            .to_owned();
        let secret = next()
            .strip_prefix("signing secret: ")
            .expect("then the secret")
            .to_owned();
        let (tx, printed) = mpsc::channel();
        let stdout = child.stdout.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let _ = tx.send(serde_json::from_str(&line).expect("one JSON line per delivery"));
            }
        });
        Self {
            child,
            base,
            secret,
            printed,
        }
    }
}

impl Drop for ReceiverProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// README's first tour, step by step, on a laptop: the server with the two development
/// settings, the local receiver, and a delivery arriving verified.
async fn the_readme_tour_delivers_a_verified_webhook_to_the_local_receiver(
    backend: casebridge_testkit::TestBackend,
) {
    let db = TestDb::empty(backend).await;
    let dir = tempfile::tempdir().unwrap();
    let key = company_create(dir.path(), &db.url, "Acme Injury Law")["api_key"]
        .as_str()
        .unwrap()
        .to_owned();
    let mut cmd = casebridge(dir.path(), &db.url);
    cmd.env("CASEBRIDGE_ALLOW_HTTP", "true")
        .env("CASEBRIDGE_ALLOW_PRIVATE_NETWORKS", "127.0.0.0/8");
    let server = Server::start_with(cmd);
    let http = reqwest::Client::new();
    let api = |path: &str| format!("{}/api/v1{path}", server.base);
    let post = |path: &str, body: Value| http.post(api(path)).bearer_auth(&key).json(&body).send();

    let ct: Value = post(
        "/case-types",
        serde_json::json!({"name": "Motor Vehicle Accident"}),
    )
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    let r = post(
        "/clients",
        serde_json::json!({"first_name": "Jane", "last_name": "Doe",
            "phone": "+1 555 010 2000",
            "external_refs": [{"provider": "lawruler", "external_id": "PC-9"}]}),
    )
    .await
    .unwrap();
    assert_eq!(r.status(), 201);
    let r = post(
        "/cases",
        serde_json::json!({"name": "Doe – rear-end collision",
            "case_type_id": ct["id"], "custom_fields": {"injury": "neck"},
            "external_refs": [{"provider": "lawruler", "external_id": "10234"}]}),
    )
    .await
    .unwrap();
    assert_eq!(r.status(), 201);
    let case: Value = r.json().await.unwrap();
    let found: Value = http
        .get(api(
            "/cases/by-external-ref?provider=lawruler&external_id=10234",
        ))
        .bearer_auth(&key)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(found["id"], case["id"], "{found}");

    let receiver = ReceiverProcess::start();
    let r = post(
        "/webhooks",
        serde_json::json!({"name": "Firm server",
            "url": format!("{}/casebridge", receiver.base), "secret": receiver.secret}),
    )
    .await
    .unwrap();
    assert_eq!(r.status(), 201, "{}", r.text().await.unwrap());
    let webhook: Value = r.json().await.unwrap();
    assert_eq!(webhook["secret"], receiver.secret.as_str());

    let r = post(
        "/calls",
        serde_json::json!({"direction": "outbound", "case_id": case["id"]}),
    )
    .await
    .unwrap();
    assert_eq!(r.status(), 201);
    let printed = receiver
        .printed
        .recv_timeout(Duration::from_secs(30))
        .expect("the receiver printed a delivery");
    assert_eq!(printed["type"], "call_started", "{printed}");
    assert_eq!(printed["verified"], true, "{printed}");

    // The attempt is recorded once the receiver's answer is back.
    let list = api(&format!(
        "/webhooks/{}/deliveries",
        webhook["id"].as_str().unwrap()
    ));
    let mut deliveries = Value::Null;
    for _ in 0..100 {
        deliveries = http
            .get(&list)
            .bearer_auth(&key)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if deliveries["data"][0]["status"] != "pending" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let d = &deliveries["data"][0];
    assert_eq!(d["event_id"], printed["webhook_id"], "{deliveries}");
    assert_eq!(d["status"], "succeeded", "{deliveries}");
    assert_eq!(d["last_response_status"], 204);
    server.stop();
}
casebridge_testkit::backend_test!(
    the_readme_tour_delivers_a_verified_webhook_to_the_local_receiver
);

/// Without CASEBRIDGE_PUBLIC_URL the webhook URL is built from the address casebridge
/// listens on, and both the log and the setup view warn that a CRM cannot reach it.
async fn webhook_url_follows_the_listen_address_with_a_warning(
    backend: casebridge_testkit::TestBackend,
) {
    let db = TestDb::empty(backend).await;
    let dir = tempfile::tempdir().unwrap();
    let key = company_create(dir.path(), &db.url, "Acme")["api_key"]
        .as_str()
        .unwrap()
        .to_owned();
    let server = Server::start(dir.path(), &db.url);
    let setup: Value = reqwest::Client::new()
        .get(format!("{}/api/v1/integrations/lawruler", server.base))
        .bearer_auth(&key)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let url = setup["webhook_url"].as_str().unwrap();
    assert!(
        url.starts_with(&format!("{}/hooks/lawruler/", server.base)),
        "{url}"
    );
    let warning = setup["webhook_url_warning"].as_str().expect("a warning");
    assert!(warning.contains("CASEBRIDGE_PUBLIC_URL"), "{warning}");
    let (_, logs) = server.stop();
    let logged: Vec<Value> = logs
        .iter()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    assert!(
        logged.iter().any(|l| l["level"] == "WARN"
            && l["public_url"] == server_base(&logs)
            && l["message"]
                .as_str()
                .unwrap_or_default()
                .contains("CASEBRIDGE_PUBLIC_URL")),
        "{logs:#?}"
    );

    // With a public URL: that base, and no warning.
    let mut cmd = casebridge(dir.path(), &db.url);
    cmd.env("CASEBRIDGE_PUBLIC_URL", "https://hooks.acme.test/");
    let server = Server::start_with(cmd);
    let setup: Value = reqwest::Client::new()
        .get(format!("{}/api/v1/integrations/lawruler", server.base))
        .bearer_auth(&key)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(setup["webhook_url"]
        .as_str()
        .unwrap()
        .starts_with("https://hooks.acme.test/hooks/lawruler/"));
    assert_eq!(setup["webhook_url_warning"], Value::Null);
    let (_, logs) = server.stop();
    assert!(!logs.join("\n").contains("CASEBRIDGE_PUBLIC_URL"));
}
casebridge_testkit::backend_test!(webhook_url_follows_the_listen_address_with_a_warning);

/// The `http://…` base the server logged when it started serving.
fn server_base(logs: &[String]) -> String {
    logs.iter()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .find(|l| l["message"] == "casebridge serving")
        .map(|l| format!("http://{}", l["listen"].as_str().unwrap()))
        .unwrap()
}

/// Runs the binary with `args` and expects it to fail with `expect` in its error output.
fn fails(mut cmd: Command, args: &[&str], expect: &str) -> String {
    let out = cmd.args(args).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(!out.status.success(), "{args:?} exited 0; stderr: {stderr}");
    assert!(
        stderr.contains(expect),
        "{args:?}: `{expect}` not in: {stderr}"
    );
    stderr
}

#[test]
fn migrate_refuses_a_malformed_master_key_and_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("casebridge.db");
    let mut cmd = casebridge(dir.path(), &format!("sqlite://{}?mode=rwc", db.display()));
    cmd.env("CASEBRIDGE_MASTER_KEY", "not-base64-of-32-bytes");
    let stderr = fails(cmd, &["migrate"], "CASEBRIDGE_MASTER_KEY");
    assert!(
        !stderr.contains("not-base64-of-32-bytes"),
        "the key is not echoed"
    );
    assert!(!db.exists(), "nothing was created");

    let mut cmd = casebridge(dir.path(), &format!("sqlite://{}?mode=rwc", db.display()));
    cmd.env("CASEBRIDGE_OLD_MASTER_KEYS", "AAAA");
    fails(cmd, &["migrate"], "CASEBRIDGE_OLD_MASTER_KEYS");
    assert!(!db.exists());
}

/// `casebridge export` writes the whole file under its name only once complete, and refuses
/// what it cannot do with the argument named.
async fn export_writes_the_file_and_names_a_wrong_argument(
    backend: casebridge_testkit::TestBackend,
) {
    let db = TestDb::empty(backend).await;
    let dir = tempfile::tempdir().unwrap();
    let made = company_create(dir.path(), &db.url, "Acme");
    let company = made["company_id"].as_str().unwrap().to_owned();
    let server = Server::start(dir.path(), &db.url);
    let http = reqwest::Client::new();
    let mut ids = Vec::new();
    for name in ["Ann", "Bo, \"B\""] {
        let r = http
            .post(format!("{}/api/v1/clients", server.base))
            .bearer_auth(made["api_key"].as_str().unwrap())
            .json(&serde_json::json!({"first_name": name}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 201);
        ids.push(
            r.json::<Value>().await.unwrap()["id"]
                .as_str()
                .unwrap()
                .to_owned(),
        );
    }
    server.stop();

    let out_file = dir.path().join("clients.csv");
    let out = casebridge(dir.path(), &db.url)
        .args([
            "export",
            "clients",
            "--company",
            &company,
            "--out",
            out_file.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("2 rows exported"));
    let text = std::fs::read_to_string(&out_file).unwrap();
    let mut lines = text.lines();
    assert_eq!(
        lines.next(),
        Some("id,first_name,last_name,email,phone,external_refs,created_at,updated_at")
    );
    assert!(lines
        .next()
        .unwrap()
        .starts_with(&format!("{},Ann,", ids[0])));
    assert!(
        lines
            .next()
            .unwrap()
            .starts_with(&format!("{},\"Bo, \"\"B\"\"\",", ids[1])),
        "{text}"
    );
    assert!(!dir.path().join("clients.csv.partial").exists());

    // To stdout, as JSON.
    let out = casebridge(dir.path(), &db.url)
        .args([
            "export",
            "clients",
            "--company",
            &company,
            "--format",
            "json",
        ])
        .output()
        .unwrap();
    assert!(out.status.success());
    let rows: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(rows[1]["first_name"], "Bo, \"B\"");

    let run = || casebridge(dir.path(), &db.url);
    fails(
        run(),
        &["export", "invoices", "--company", &company],
        "not an export",
    );
    fails(
        run(),
        &["export", "cases", "--company", &company, "--format", "xml"],
        "--format",
    );
    fails(
        run(),
        &[
            "export",
            "cases",
            "--company",
            &company,
            "--since",
            "yesterday",
        ],
        "--since",
    );
    fails(
        run(),
        &[
            "export",
            "cases",
            "--company",
            "01a1feab-0000-7000-8000-000000000000",
        ],
        "no company with id",
    );
    fails(
        run(),
        &[
            "export",
            "cases",
            "--company",
            &company,
            "--provider",
            "lawruler",
        ],
        "provider",
    );
}
casebridge_testkit::backend_test!(export_writes_the_file_and_names_a_wrong_argument);

/// Every command that did not do what was asked exits non-zero, saying why.
async fn every_command_exits_non_zero_when_it_did_not_do_what_was_asked(
    backend: casebridge_testkit::TestBackend,
) {
    let db = TestDb::empty(backend).await;
    let dir = tempfile::tempdir().unwrap();
    let company = company_create(dir.path(), &db.url, "Acme")["company_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let unknown = "01a1feab-0000-7000-8000-000000000000";
    let run = || casebridge(dir.path(), &db.url);
    fails(run(), &["company", "create", "--name", "  "], "name");
    fails(
        run(),
        &["company", "add-key", "--company", "nope"],
        "not a company id",
    );
    fails(
        run(),
        &["company", "add-key", "--company", unknown],
        "no company with id",
    );
    fails(
        run(),
        &[
            "user",
            "create",
            "--company",
            &company,
            "--email",
            "not-an-email",
            "--password-stdin",
        ],
        "not an email address",
    );
    let missing = dir.path().join("missing.csv");
    fails(
        run(),
        &[
            "import",
            "lawruler",
            "--company",
            &company,
            "--file",
            missing.to_str().unwrap(),
        ],
        "cannot read",
    );
    let bad = dir.path().join("bad.csv");
    std::fs::write(&bad, "Lead ID,Status\n1,Intake\n").unwrap();
    fails(
        run(),
        &[
            "import",
            "lawruler",
            "--company",
            &company,
            "--file",
            bad.to_str().unwrap(),
        ],
        "Case Type ID",
    );
    fails(
        run(),
        &["import", "lawruler", "--company", unknown, "--from-api"],
        "no company with id",
    );
    fails(
        run(),
        &[
            "import",
            "lawruler",
            "--company",
            &company,
            "--from-api",
            "--since",
            "yesterday",
        ],
        "--since",
    );
    fails(
        run(),
        &["sim", "receiver", "--port", "0", "--secret", "plain"],
        "--secret",
    );
    fails(run(), &["no-such-command"], "unrecognized subcommand");

    // The port is taken: serve cannot listen.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let mut cmd = run();
    cmd.env("CASEBRIDGE_LISTEN", taken.local_addr().unwrap().to_string());
    fails(cmd, &["serve"], "cannot listen");
    fails(
        run(),
        &[
            "sim",
            "lawruler",
            "--port",
            &taken.local_addr().unwrap().port().to_string(),
        ],
        "cannot listen",
    );
}
casebridge_testkit::backend_test!(every_command_exits_non_zero_when_it_did_not_do_what_was_asked);

/// `import lawruler --from-api` when the Law Ruler address is refused by the URL policy (the
/// development settings are not on): the import did not happen, so the exit is non-zero.
async fn import_from_api_refused_by_the_url_policy_exits_non_zero(
    backend: casebridge_testkit::TestBackend,
) {
    let lr = casebridge_sim::lawruler::LawRulerSim::new().start().await;
    let db = TestDb::empty(backend).await;
    let dir = tempfile::tempdir().unwrap();
    let created = company_create(dir.path(), &db.url, "Acme");
    let (company, key) = (
        created["company_id"].as_str().unwrap().to_owned(),
        created["api_key"].as_str().unwrap().to_owned(),
    );
    let mut cmd = casebridge(dir.path(), &db.url);
    cmd.env("CASEBRIDGE_ALLOW_HTTP", "true")
        .env("CASEBRIDGE_ALLOW_PRIVATE_NETWORKS", "127.0.0.0/8");
    let server = Server::start_with(cmd);
    let r = reqwest::Client::new()
        .put(format!(
            "{}/api/v1/integrations/lawruler/connection",
            server.base
        ))
        .bearer_auth(&key)
        .json(
            &serde_json::json!({"username": "demo", "password": "demo-password",
                "client_root": lr.base_url, "client_secret": "demo-secret", "key": "demo-key"}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    server.stop();
    lr.sim.clear_requests();
    let stderr = fails(
        casebridge(dir.path(), &db.url),
        &["import", "lawruler", "--company", &company, "--from-api"],
        "error:",
    );
    assert!(lr.sim.requests().is_empty(), "nothing reached Law Ruler");
    assert!(!stderr.contains("demo-password"));
}
casebridge_testkit::backend_test!(import_from_api_refused_by_the_url_policy_exits_non_zero);

#[test]
fn help_describes_every_option_and_names_the_config_variable_once() {
    let help = |args: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_casebridge"))
            .args(args)
            .arg("--help")
            .output()
            .unwrap();
        assert!(out.status.success());
        String::from_utf8(out.stdout).unwrap()
    };
    let top = help(&[]);
    assert!(top.contains("CASEBRIDGE_CONFIG"), "{top}");
    for command in [
        &["serve"][..],
        &["migrate"],
        &["company", "create"],
        &["company", "add-key"],
        &["user", "create"],
        &["import", "lawruler"],
        &["sim", "lawruler"],
        &["sim", "scheduling"],
        &["sim", "receiver"],
    ] {
        let text = help(command);
        assert!(
            !text.contains("[env: CASEBRIDGE_CONFIG"),
            "{command:?}: {text}"
        );
        let lines: Vec<&str> = text.lines().collect();
        for (i, line) in lines.iter().enumerate() {
            let trimmed = line.trim_start();
            if !trimmed.starts_with('-') {
                continue;
            }
            // `--name <NAME>  The company's name`, or the description on the next line.
            let same_line = trimmed.split("  ").filter(|p| !p.trim().is_empty()).count() > 1;
            let next_line = lines.get(i + 1).is_some_and(|n| {
                let n = n.trim_start();
                !n.is_empty() && !n.starts_with('-')
            });
            assert!(
                same_line || next_line,
                "{command:?}: `{line}` has no description:\n{text}"
            );
        }
    }
}

/// A small tmpfs mounted on a fresh folder, unmounted when dropped. Needs the right to mount
/// (root in the development container); `None` where there is none.
struct SmallDisk {
    dir: tempfile::TempDir,
}

impl SmallDisk {
    fn mount(size: &str) -> Option<Self> {
        let dir = tempfile::tempdir().unwrap();
        let ok = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir.path())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        ok.then_some(SmallDisk { dir })
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Fills what is left of the disk with a file; returns its path.
    fn fill(&self) -> std::path::PathBuf {
        let filler = self.path().join("filler");
        let mut f = std::fs::File::create(&filler).unwrap();
        let chunk = vec![0u8; 64 * 1024];
        while f.write_all(&chunk).is_ok() {}
        // Whatever is left is smaller than a chunk: take it byte by byte.
        while f.write_all(&[0]).is_ok() {}
        let _ = f.sync_all();
        filler
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(self.dir.path()).status();
    }
}

async fn status_of(req: reqwest::RequestBuilder) -> u16 {
    tokio::time::timeout(Duration::from_secs(30), req.send())
        .await
        .expect("every request is answered while the disk is full")
        .expect("request sent")
        .status()
        .as_u16()
}

/// SQLite on a full disk: writes answer 503 (never 500, never silence), `/readyz` says not
/// ready, both recover by themselves once space is freed, and SIGTERM still stops the process.
#[tokio::test]
async fn a_full_disk_is_not_ready_recovers_by_itself_and_sigterm_still_stops() {
    let Some(disk) = SmallDisk::mount("4m") else {
        eprintln!("skipped: cannot mount a tmpfs here (needs root)");
        return;
    };
    let data = disk.path().join("data");
    let mut create = casebridge(&data, "");
    create.env_remove("CASEBRIDGE_DATABASE_URL");
    let out = create
        .args(["company", "create", "--name", "Full Disk Law"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let created: Value = serde_json::from_slice(&out.stdout).unwrap();
    let key = created["api_key"].as_str().unwrap().to_owned();
    let mut cmd = casebridge(&data, "");
    cmd.env_remove("CASEBRIDGE_DATABASE_URL");
    let server = Server::start_with(cmd);
    let http = reqwest::Client::new();
    let ready = || http.get(format!("{}/readyz", server.base));
    let write = |name: &str| {
        http.post(format!("{}/api/v1/case-types", server.base))
            .bearer_auth(&key)
            .json(&serde_json::json!({"name": name}))
    };
    assert_eq!(status_of(ready()).await, 200);
    assert_eq!(status_of(write("Before")).await, 201);

    let filler = disk.fill();
    let mut refused = 0;
    for i in 0..20 {
        match status_of(write(&format!("During {i}"))).await {
            201 => {}
            503 => refused += 1,
            other => panic!("a write on a full disk answered {other}"),
        }
    }
    assert!(refused > 0, "writes on a full disk are refused");
    assert_eq!(
        status_of(ready()).await,
        503,
        "not ready while the disk is full"
    );

    // Space is back: ready again and writing again, without a restart.
    std::fs::remove_file(&filler).unwrap();
    let mut back = false;
    for _ in 0..20 {
        if status_of(ready()).await == 200 {
            back = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert!(back, "ready again once space is freed");
    assert_eq!(status_of(write("After")).await, 201);

    // Full again, then SIGTERM: the process still stops, cleanly and in time.
    let filler = disk.fill();
    for i in 0..5 {
        let s = status_of(write(&format!("Again {i}"))).await;
        assert!(s == 201 || s == 503, "{s}");
    }
    assert_eq!(status_of(ready()).await, 503);
    let (done_tx, done_rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = done_tx.send(server.stop());
    });
    let (clean, logs) = done_rx
        .recv_timeout(Duration::from_secs(30))
        .expect("SIGTERM stops the process while the disk is full");
    assert!(clean, "a clean exit: {logs:#?}");
    drop(filler);
}

/// Issue 11: `kill -9` of the server in the middle of a load of event-creating requests and
/// inbound CRM webhooks loses no accepted event and no acknowledged webhook. Eight clients send
/// `POST /api/v1/calls` (each records a `call.started` event with its delivery, in the request's
/// group commit) and four send Law Ruler webhooks for new leads (each applied in the webhook's
/// group commit) until the server is killed without warning; after a restart on the same
/// database, every call that was answered 201 has its event delivered to the webhook, and every
/// lead whose webhook was answered `applied` has its case. Requests that got no answer may or
/// may not have been recorded.
async fn a_kill_9_under_load_loses_no_accepted_event(backend: casebridge_testkit::TestBackend) {
    use std::sync::{Arc, Mutex};
    let db = TestDb::empty(backend).await;
    let dir = tempfile::tempdir().unwrap();
    let key = company_create(dir.path(), &db.url, "Acme Injury Law")["api_key"]
        .as_str()
        .unwrap()
        .to_owned();
    let command = || {
        let mut cmd = casebridge(dir.path(), &db.url);
        cmd.env("CASEBRIDGE_ALLOW_HTTP", "true")
            .env("CASEBRIDGE_ALLOW_PRIVATE_NETWORKS", "127.0.0.0/8");
        cmd
    };
    let mut server = Server::start_with(command());
    let receiver = casebridge_testkit::Receiver::start().await;
    let http = reqwest::Client::new();
    let r = http
        .post(format!("{}/api/v1/webhooks", server.base))
        .bearer_auth(&key)
        .json(&serde_json::json!({"name": "Firm server", "url": receiver.url("/hook")}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201, "{}", r.text().await.unwrap());
    let lr = casebridge_sim::lawruler::LawRulerSim::new().start().await;
    for (method, path, body) in [
        (
            reqwest::Method::PUT,
            "/api/v1/integrations/lawruler/connection",
            serde_json::json!({"username": "demo", "password": "demo-password",
                "client_root": lr.base_url, "client_secret": "demo-secret", "key": "demo-key"}),
        ),
        (
            reqwest::Method::PUT,
            "/api/v1/integrations/lawruler/settings",
            serde_json::json!({"enable_integration": true, "receive": true}),
        ),
    ] {
        let (status, body) = api(&server.base, &key, method, path, body).await;
        assert_eq!(status, 200, "{path}: {body}");
    }
    let (_, view) = api(
        &server.base,
        &key,
        reqwest::Method::GET,
        "/api/v1/integrations/lawruler",
        Value::Null,
    )
    .await;
    let hook_url = view["webhook_url"]
        .as_str()
        .expect("webhook_url")
        .to_owned();

    let accepted: Arc<Mutex<Vec<String>>> = Arc::default();
    let acknowledged: Arc<Mutex<Vec<String>>> = Arc::default();
    let mut senders = Vec::new();
    for s in 0..4 {
        let (http, url) = (http.clone(), hook_url.clone());
        let acknowledged = acknowledged.clone();
        senders.push(tokio::spawn(async move {
            for i in 0.. {
                let lead = format!("K{s}-{i}");
                let sent = http
                    .post(&url)
                    .json(&serde_json::json!({"Lead ID": lead, "Case Type ID": "12",
                        "Case Type": "Auto Accident", "Status ID": "7", "Status": "Intake",
                        "Full Name": format!("Lead {lead}"), "Created Date": "2026-11-01",
                        "Primary Contact ID": format!("PC-{lead}"), "First Name": "Jane",
                        "Last Name": "Doe", "Cell Phone": "+1 555 010 2000"}))
                    .send()
                    .await;
                let Ok(r) = sent else { return };
                if r.status() != 200 {
                    return;
                }
                let Ok(body) = r.json::<Value>().await else {
                    return;
                };
                assert_eq!(body["status"], "applied", "{body}");
                acknowledged.lock().unwrap().push(lead);
            }
        }));
    }
    for s in 0..8 {
        let (http, key, base) = (http.clone(), key.clone(), server.base.clone());
        let accepted = accepted.clone();
        senders.push(tokio::spawn(async move {
            for i in 0.. {
                let sent = http
                    .post(format!("{base}/api/v1/calls"))
                    .bearer_auth(&key)
                    .json(&serde_json::json!({"direction": "outbound",
                        "to_number": format!("+1555{s}{i:06}")}))
                    .send()
                    .await;
                let Ok(r) = sent else { return };
                if r.status() != 201 {
                    return;
                }
                let Ok(body) = r.json::<Value>().await else {
                    return;
                };
                accepted
                    .lock()
                    .unwrap()
                    .push(body["id"].as_str().unwrap().to_owned());
            }
        }));
    }
    wait_until(
        Duration::from_secs(60),
        "200 calls accepted, 100 webhooks acknowledged",
        async || accepted.lock().unwrap().len() >= 200 && acknowledged.lock().unwrap().len() >= 100,
    )
    .await;
    Command::new("kill")
        .args(["-KILL", &server.child.id().to_string()])
        .status()
        .unwrap();
    server.child.wait().unwrap();
    for s in senders {
        s.await.unwrap();
    }
    let accepted = accepted.lock().unwrap().clone();
    assert!(accepted.len() >= 200);
    let acknowledged = acknowledged.lock().unwrap().clone();
    assert!(acknowledged.len() >= 100);

    // Restarted on the same database, the worker delivers every accepted event.
    let server = Server::start_with(command());
    let delivered = || {
        receiver
            .received("/hook")
            .iter()
            .filter_map(|r| r.json()["data"]["call"]["id"].as_str().map(str::to_owned))
            .collect::<std::collections::HashSet<_>>()
    };
    let limit = std::time::Instant::now() + Duration::from_secs(120);
    while !accepted.iter().all(|id| delivered().contains(id)) {
        if std::time::Instant::now() > limit {
            let all = receiver.received("/hook");
            panic!(
                "{} of {} accepted delivered; {} requests; first: {:?}",
                accepted
                    .iter()
                    .filter(|id| delivered().contains(*id))
                    .count(),
                accepted.len(),
                all.len(),
                all.first().map(|r| r.json())
            );
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let got = delivered();
    let lost: Vec<_> = accepted.iter().filter(|id| !got.contains(*id)).collect();
    assert!(lost.is_empty(), "accepted but never delivered: {lost:?}");
    // Every acknowledged webhook's lead has its case.
    let mut missing = Vec::new();
    for lead in &acknowledged {
        let path = format!("/api/v1/cases/by-external-ref?provider=lawruler&external_id={lead}");
        let (status, body) =
            api(&server.base, &key, reqwest::Method::GET, &path, Value::Null).await;
        match status {
            200 => assert_eq!(body["name"], format!("Lead {lead}"), "{body}"),
            _ => missing.push((lead, status)),
        }
    }
    assert!(missing.is_empty(), "acknowledged but not kept: {missing:?}");
    let (clean, logs) = server.stop();
    assert!(clean, "{logs:#?}");
}
casebridge_testkit::backend_test!(a_kill_9_under_load_loses_no_accepted_event);
