//! Importing existing leads by pulling them from the Law Ruler API (LR14), against the simulator,
//! on both backends: every lead created, progress through the import endpoints, importing again
//! changes nothing, a later webhook updates the same case, `since`, the refusals (not connected,
//! bad input), a rate-limited fetch retried, and wrong credentials failing the import visibly.

use std::sync::Arc;
use std::time::Duration;

use casebridge_crm::lawruler::client::LawRulerPaths;
use casebridge_crm::lawruler::connection::{self, Clients, StoredCredentials};
use casebridge_crm::lawruler::import;
use casebridge_domain::clock::Clock;
use casebridge_queue::{Registry, Worker, WorkerConfig};
use casebridge_sim::lawruler::{
    LawRulerSim, NewLead, RunningSim, WebhookFormat, DEMO_CLIENT_SECRET, DEMO_KEY, DEMO_PASSWORD,
    DEMO_USERNAME,
};
use casebridge_testkit::{Reply, TestApp};
use jiff::{SignedDuration, Timestamp};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

const EXTRA_LEADS: usize = 30;

/// The simulator's default tenant (leads 10001 and 10002) plus [`EXTRA_LEADS`] more.
async fn sim() -> RunningSim {
    let mut b = LawRulerSim::builder();
    for n in 0..EXTRA_LEADS {
        let ct = ["12", "13", "14"][n % 3];
        b = b.lead(NewLead {
            email: Some(format!("lead{n}@example.com")),
            ..NewLead::new(&format!("First{n}"), &format!("Last{n}"), ct)
        });
    }
    b.build().start().await
}

/// A `crm` worker with the import job able to reach Law Ruler, as the server wires it.
fn crm_worker(app: &TestApp) -> Worker {
    let clock: Arc<dyn Clock> = Arc::new(app.clock.clone());
    let policy = Arc::new(app.options.url_policy.clone());
    let clients = Clients::new(
        casebridge_webhooks::policy::safe_client(policy.clone(), Duration::from_secs(20)),
        policy,
        LawRulerPaths::default(),
        app.keyring.clone(),
    );
    Worker::new(
        app.db.store.clone(),
        clock.clone(),
        import::register_with_clients(Registry::new(), app.db.store.clone(), clock, clients),
        WorkerConfig::new(import::QUEUE),
    )
}

/// Connects Law Ruler through the API (verified against the simulator), turns receiving on, and
/// returns the inbound webhook's path.
async fn connect(app: &TestApp, lr: &RunningSim) -> String {
    let r = app
        .call(
            Method::PUT,
            "/api/v1/integrations/lawruler/connection",
            Some(json!({"username": DEMO_USERNAME, "password": DEMO_PASSWORD,
                        "client_root": lr.base_url, "client_secret": DEMO_CLIENT_SECRET,
                        "key": DEMO_KEY})),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let r = app
        .call(
            Method::PUT,
            "/api/v1/integrations/lawruler/settings",
            Some(json!({"enable_integration": true, "receive": true})),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let url = r.body["webhook_url"]
        .as_str()
        .map(str::to_owned)
        .unwrap_or_else(|| panic!("webhook_url in {}", r.text));
    let (_, rest) = url.split_once("/hooks/").expect("a hook URL");
    format!("/hooks/{rest}")
}

async fn start_import(app: &TestApp, body: Value) -> Reply {
    app.post("/api/v1/integrations/lawruler/import", body).await
}

async fn status(app: &TestApp, id: &str) -> Value {
    let r = app
        .get(&format!("/api/v1/integrations/lawruler/import/{id}"))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    r.body
}

async fn cases(app: &TestApp) -> usize {
    let r = app.get("/api/v1/cases?limit=200").await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert!(r.body["next_cursor"].is_null());
    r.body["data"].as_array().unwrap().len()
}

async fn case_of(app: &TestApp, lead: &str) -> Value {
    let r = app
        .get(&format!(
            "/api/v1/cases/by-external-ref?provider=lawruler&external_id={lead}"
        ))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{lead}: {}", r.text);
    r.body
}

async fn status_name(app: &TestApp, case: &Value) -> String {
    let id = case["case_status_id"].as_str().unwrap();
    let r = app.get(&format!("/api/v1/case-statuses/{id}")).await;
    r.body["name"].as_str().unwrap().to_owned()
}

async fn every_lead_is_imported_once_and_later_webhooks_update_the_same_cases(
    backend: casebridge_testkit::TestBackend,
) {
    let lr = sim().await;
    let n = lr.sim.leads().len();
    assert_eq!(n, EXTRA_LEADS + 2);
    let app = TestApp::start(backend).await;
    let hook = connect(&app, &lr).await;

    let r = start_import(&app, json!({"source": "lawruler_api"})).await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.text);
    assert_eq!(
        (
            r.body["status"].as_str(),
            r.body["source"].as_str(),
            r.body["phase"].as_str(),
            r.body["total_rows"].as_u64()
        ),
        (
            Some("queued"),
            Some("lawruler_api"),
            Some("fetching"),
            Some(0)
        ),
        "{}",
        r.text
    );
    assert!(
        r.body["since"].is_null() && r.body["fetched_at"].is_null(),
        "{}",
        r.text
    );
    let id = r.body["id"].as_str().unwrap().to_owned();
    assert_eq!(cases(&app).await, 0, "the handler does not call Law Ruler");

    let worker = crm_worker(&app);
    worker.drain().await.unwrap();
    let done = status(&app, &id).await;
    assert_eq!(
        (done["status"].as_str(), done["phase"].as_str()),
        (Some("done"), Some("finished")),
        "{done}"
    );
    assert_eq!(
        (
            done["total_rows"].as_u64(),
            done["processed_rows"].as_u64(),
            done["created"].as_u64(),
            done["updated"].as_u64(),
            done["unchanged"].as_u64(),
            done["failed"].as_u64()
        ),
        (
            Some(n as u64),
            Some(n as u64),
            Some(n as u64),
            Some(0),
            Some(0),
            Some(0)
        ),
        "{done}"
    );
    assert!(done["fetched_at"].is_string(), "{done}");
    assert_eq!(cases(&app).await, n);
    let jane = case_of(&app, "10001").await;
    assert_eq!(jane["name"], "Jane Doe");
    assert_eq!(status_name(&app, &jane).await, "Intake");
    let log = app.get("/api/v1/integrations/lawruler/sync-log").await.body;
    let msg = log["data"][0]["message"].as_str().unwrap();
    assert!(
        msg.contains(&format!("import of {n} leads from the Law Ruler API")),
        "{msg}"
    );
    // Only the Advanced API was used: the token and the changed-leads list.
    let paths: Vec<String> = lr.sim.requests().into_iter().map(|r| r.path).collect();
    assert!(
        paths.iter().filter(|p| *p == "/api/v2/leads").count() == 1,
        "{paths:?}"
    );

    // Again: nothing changes.
    let again = start_import(&app, json!({"source": "lawruler_api"})).await;
    assert_eq!(again.status, StatusCode::ACCEPTED, "{}", again.text);
    let again = again.body["id"].as_str().unwrap().to_owned();
    worker.drain().await.unwrap();
    let done = status(&app, &again).await;
    assert_eq!(
        (
            done["status"].as_str(),
            done["unchanged"].as_u64(),
            done["created"].as_u64(),
            done["updated"].as_u64()
        ),
        (Some("done"), Some(n as u64), Some(0), Some(0)),
        "{done}"
    );
    assert_eq!(cases(&app).await, n);
    let list = app.get("/api/v1/integrations/lawruler/import").await.body;
    let ids: Vec<&str> = list["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, vec![again.as_str(), id.as_str()]);

    // Law Ruler sends a webhook for an imported lead: the same case and client, updated.
    let sent = lr
        .sim
        .send_status_webhook(
            "10001",
            "Signed Up",
            &app.url(&hook),
            WebhookFormat::Json,
            &[],
        )
        .await
        .unwrap();
    assert_eq!(sent.status, Some(200), "{:?}", sent.response_body);
    let answer: Value = serde_json::from_str(sent.response_body.as_deref().unwrap()).unwrap();
    assert_eq!(
        (answer["status"].as_str(), answer["case_created"].as_bool()),
        (Some("applied"), Some(false)),
        "{answer}"
    );
    assert_eq!(answer["case_id"], jane["id"]);
    assert_eq!(answer["client_id"], jane["client_id"]);
    let after = case_of(&app, "10001").await;
    assert_eq!(status_name(&app, &after).await, "Signed Up");
    assert_eq!(cases(&app).await, n);

    // An unchanged lead sent as a webhook (as a form this time) is a repeat of what the
    // import applied: the import wrote the same fields the webhook carries.
    let sent = lr
        .sim
        .send_lead_webhook("10002", &app.url(&hook), WebhookFormat::Form, &[])
        .await
        .unwrap();
    let answer: Value = serde_json::from_str(sent.response_body.as_deref().unwrap()).unwrap();
    assert_eq!(answer["status"], "duplicate", "{answer}");
}
casebridge_testkit::backend_test!(
    every_lead_is_imported_once_and_later_webhooks_update_the_same_cases
);

async fn since_limits_the_import_to_leads_changed_after_it(
    backend: casebridge_testkit::TestBackend,
) {
    let lr = LawRulerSim::new().start().await; // leads 10001 and 10002, made "now"
    let later: Timestamp = "2031-06-01T12:00:00Z".parse().unwrap();
    lr.sim.set_now(Some(later));
    let fresh = lr
        .sim
        .create_lead(NewLead::new("Nia", "New", "12"))
        .unwrap();
    lr.sim.set_now(Some(later + SignedDuration::from_hours(1)));
    lr.sim.set_status("10002", "Signed Up").unwrap();
    let app = TestApp::start(backend).await;
    connect(&app, &lr).await;

    let r = start_import(
        &app,
        json!({"source": "lawruler_api", "since": "2031-06-01T12:00:00+00:00"}),
    )
    .await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.text);
    assert_eq!(r.body["since"], "2031-06-01T12:00:00.000Z");
    let id = r.body["id"].as_str().unwrap().to_owned();
    crm_worker(&app).drain().await.unwrap();
    let done = status(&app, &id).await;
    assert_eq!(
        (done["total_rows"].as_u64(), done["created"].as_u64()),
        (Some(2), Some(2)),
        "{done}"
    );
    case_of(&app, &fresh).await;
    assert_eq!(
        status_name(&app, &case_of(&app, "10002").await).await,
        "Signed Up"
    );
    let r = app
        .get("/api/v1/cases/by-external-ref?provider=lawruler&external_id=10001")
        .await;
    assert_eq!(
        r.status,
        StatusCode::NOT_FOUND,
        "changed before `since`: not imported"
    );
    let asked = lr.sim.requests_to("/api/v2/leads");
    assert_eq!(
        asked[0].query,
        vec![("changedSince".to_owned(), "2031-06-01T12:00:00Z".to_owned())]
    );
}
casebridge_testkit::backend_test!(since_limits_the_import_to_leads_changed_after_it);

async fn an_api_import_needs_a_connection_and_valid_input(
    backend: casebridge_testkit::TestBackend,
) {
    let app = TestApp::start(backend).await;
    let r = start_import(&app, json!({"source": "lawruler_api"})).await;
    assert_eq!(r.status, StatusCode::CONFLICT, "{}", r.text);
    assert!(
        r.body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("not connected"),
        "{}",
        r.text
    );

    let r = start_import(
        &app,
        json!({"source": "smartadvocate", "since": "yesterday"}),
    )
    .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.text);
    let fields: Vec<&str> = r.body["error"]["details"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["field"].as_str().unwrap())
        .collect();
    assert_eq!(fields, vec!["source", "since"], "{}", r.text);
    let r = start_import(
        &app,
        json!({"source": "lawruler_api", "sinse": "2025-01-01T00:00:00Z"}),
    )
    .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.text);
    assert!(r.text.contains("sinse"), "{}", r.text);
    let r = TestApp::reply(
        app.http
            .post(app.url("/api/v1/integrations/lawruler/import"))
            .bearer_auth(&app.api_key)
            .header("content-type", "application/json")
            .body("{\"source\": ")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text);
    // A JSON body that is not an import request is not accepted as one.
    let r = start_import(&app, json!({"Lead ID": 1})).await;
    assert_eq!(r.status, StatusCode::UNSUPPORTED_MEDIA_TYPE, "{}", r.text);
    assert!(r.text.contains("lawruler_api"), "{}", r.text);

    assert_eq!(
        app.get("/api/v1/integrations/lawruler/import").await.body["data"],
        json!([])
    );
    assert_eq!(
        crm_worker(&app).drain().await.unwrap(),
        0,
        "no job was enqueued"
    );

    // Both bodies are documented.
    let doc = TestApp::reply(
        app.http
            .get(app.url("/api/v1/openapi.json"))
            .send()
            .await
            .unwrap(),
    )
    .await
    .body;
    // Served once for every provider (the path names `{provider}`).
    let content =
        &doc["paths"]["/api/v1/integrations/{provider}/import"]["post"]["requestBody"]["content"];
    assert!(content["text/csv"].is_object(), "{content}");
    assert_eq!(
        content["application/json"]["schema"]["$ref"], "#/components/schemas/ImportFromApiIn",
        "{content}"
    );
    let out = &doc["components"]["schemas"]["ImportOut"]["properties"];
    assert!(
        out["phase"].is_object() && out["source"].is_object(),
        "{out}"
    );
}
casebridge_testkit::backend_test!(an_api_import_needs_a_connection_and_valid_input);

async fn a_rate_limited_fetch_is_retried_and_wrong_credentials_fail_the_import(
    backend: casebridge_testkit::TestBackend,
) {
    let lr = LawRulerSim::new().start().await;
    let app = TestApp::start(backend).await;
    connect(&app, &lr).await;
    let worker = crm_worker(&app);

    lr.sim.rate_limit(60, 1);
    let r = start_import(&app, json!({"source": "lawruler_api"})).await;
    let id = r.body["id"].as_str().unwrap().to_owned();
    assert_eq!(worker.drain().await.unwrap(), 1);
    let waiting = status(&app, &id).await;
    assert_eq!(
        (
            waiting["status"].as_str(),
            waiting["phase"].as_str(),
            waiting["total_rows"].as_u64()
        ),
        (Some("running"), Some("fetching"), Some(0)),
        "{waiting}"
    );
    app.advance(Duration::from_secs(59));
    assert_eq!(worker.drain().await.unwrap(), 0, "waits for Retry-After");
    app.advance(Duration::from_secs(1));
    assert_eq!(worker.drain().await.unwrap(), 1);
    let done = status(&app, &id).await;
    assert_eq!(
        (done["status"].as_str(), done["created"].as_u64()),
        (Some("done"), Some(2)),
        "{done}"
    );

    // The stored password stops working (changed in Law Ruler).
    let sealed = connection::seal(
        &app.keyring,
        app.company_id,
        &StoredCredentials {
            username: DEMO_USERNAME.into(),
            password: "changed-in-law-ruler".into(),
            client_root: lr.base_url.clone(),
            client_secret: DEMO_CLIENT_SECRET.into(),
            key: DEMO_KEY.into(),
        },
    );
    let mut conn = app.db.store.conn().await.unwrap();
    casebridge_store::integrations::set_credentials(
        &mut conn,
        app.company_id,
        "lawruler",
        Some(&sealed),
        app.clock.now(),
    )
    .await
    .unwrap();
    drop(conn);
    let r = start_import(&app, json!({"source": "lawruler_api"})).await;
    let id = r.body["id"].as_str().unwrap().to_owned();
    assert_eq!(worker.drain().await.unwrap(), 1, "not retried");
    let failed = status(&app, &id).await;
    assert_eq!(
        (failed["status"].as_str(), failed["phase"].as_str()),
        (Some("failed"), Some("finished")),
        "{failed}"
    );
    assert!(
        failed["failure"].as_str().unwrap().contains("Password"),
        "{failed}"
    );
    let view = app.get("/api/v1/integrations/lawruler").await;
    assert!(
        view.text.contains("did not accept the Password"),
        "the integration shows it: {}",
        view.text
    );
    assert!(!view.text.contains("changed-in-law-ruler"));
}
casebridge_testkit::backend_test!(
    a_rate_limited_fetch_is_retried_and_wrong_credentials_fail_the_import
);

/// The initial sync (issue 13, SYNC1) asked for when connecting: the import starts in the
/// connect's transaction, brings every lead in once, and a second one changes nothing.
async fn connecting_with_initial_sync_imports_every_lead_once(
    backend: casebridge_testkit::TestBackend,
) {
    let lr = sim().await;
    let n = lr.sim.leads().len();
    let app = TestApp::start(backend).await;
    let values = json!({"username": DEMO_USERNAME, "password": DEMO_PASSWORD,
                        "client_root": lr.base_url, "client_secret": DEMO_CLIENT_SECRET,
                        "key": DEMO_KEY});
    // A wrong type is named, and nothing is stored.
    let mut bad = values.clone();
    bad["initial_sync"] = json!("yes");
    let r = app
        .call(
            Method::PUT,
            "/api/v1/integrations/lawruler/connection",
            Some(bad),
        )
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.text);
    assert!(r.text.contains("initial_sync"), "{}", r.text);
    let view = app.get("/api/v1/integrations/lawruler").await;
    assert_eq!(view.body["status"], "not_connected", "{}", view.text);
    // Without it, a connect starts nothing.
    let r = app
        .call(
            Method::PUT,
            "/api/v1/integrations/lawruler/connection",
            Some(values.clone()),
        )
        .await
        .expect(StatusCode::OK);
    assert!(r.body["initial_import"].is_null(), "{}", r.text);
    let imports = app.get("/api/v1/integrations/lawruler/import").await;
    assert_eq!(imports.body["data"], json!([]), "{}", imports.text);

    let mut with = values.clone();
    with["initial_sync"] = json!(true);
    let r = app
        .call(
            Method::PUT,
            "/api/v1/integrations/lawruler/connection",
            Some(with.clone()),
        )
        .await
        .expect(StatusCode::OK);
    let id = r.body["initial_import"].as_str().unwrap().to_owned();
    let queued = status(&app, &id).await;
    assert_eq!(queued["source"], "lawruler_api", "{queued}");
    assert_eq!(
        cases(&app).await,
        0,
        "the connect itself calls no more of Law Ruler"
    );
    crm_worker(&app).drain().await.unwrap();
    let done = status(&app, &id).await;
    assert_eq!(done["status"], "done", "{done}");
    assert_eq!(done["created"].as_u64(), Some(n as u64), "{done}");
    assert_eq!(cases(&app).await, n);
    // Asked again on a reconnect: everything is already there, nothing is duplicated.
    let r = app
        .call(
            Method::PUT,
            "/api/v1/integrations/lawruler/connection",
            Some(with),
        )
        .await
        .expect(StatusCode::OK);
    let again = r.body["initial_import"].as_str().unwrap().to_owned();
    crm_worker(&app).drain().await.unwrap();
    let done = status(&app, &again).await;
    assert_eq!(
        (done["created"].as_u64(), done["unchanged"].as_u64()),
        (Some(0), Some(n as u64)),
        "{done}"
    );
    assert_eq!(cases(&app).await, n);
}
casebridge_testkit::backend_test!(connecting_with_initial_sync_imports_every_lead_once);
