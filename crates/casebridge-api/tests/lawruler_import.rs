//! Manual import of Law Ruler leads from CSV (LR14) on both backends: a large file with progress
//! visible half-way, re-import changing nothing, bad rows reported by row number, a file missing
//! required columns refused, later webhooks matching imported records, tenant isolation.
//!
//! `CASEBRIDGE_IMPORT_ROWS` sets the size of the large file (default 10,000).

use std::sync::Arc;
use std::time::Instant;

use casebridge_crm::lawruler::import;
use casebridge_queue::{Worker, WorkerConfig};
use casebridge_testkit::{Reply, TestApp};
use reqwest::StatusCode;
use serde_json::{json, Value};

const HEADER: &str = "Lead ID,Case Type ID,Case Type,Status ID,Status,Full Name,Created Date,Primary Contact ID,First Name,Last Name,Email,Cell Phone";

fn row(n: usize) -> String {
    let (ct_id, ct) = [
        ("12", "Auto Accident"),
        ("13", "Slip and Fall"),
        ("14", "Dog Bite"),
    ][n % 3];
    let (st_id, st) = [("7", "Intake"), ("8", "Signed")][n % 2];
    format!(
        "L{n},{ct_id},{ct},{st_id},{st},\"Doe, Jane {n}\",2026-11-01,PC-{n},Jane{n},Doe,jane{n}@example.com,+1 555 010 {:04}",
        n % 10_000
    )
}

fn csv(rows: impl IntoIterator<Item = String>) -> String {
    let mut out = format!("{HEADER}\n");
    for r in rows {
        out.push_str(&r);
        out.push('\n');
    }
    out
}

fn worker(app: &TestApp) -> Worker {
    Worker::new(
        app.db.store.clone(),
        Arc::new(app.clock.clone()),
        import::registry(app.db.store.clone(), Arc::new(app.clock.clone())),
        WorkerConfig {
            concurrency: 2,
            ..WorkerConfig::new(import::QUEUE)
        },
    )
}

async fn upload_as(app: &TestApp, key: &str, text: &str) -> Reply {
    let resp = app
        .http
        .post(app.url("/api/v1/integrations/lawruler/import"))
        .bearer_auth(key)
        .header("content-type", "text/csv")
        .body(text.to_owned())
        .send()
        .await
        .unwrap();
    TestApp::reply(resp).await
}

async fn upload(app: &TestApp, text: &str) -> String {
    let r = upload_as(app, &app.api_key, text).await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.text);
    assert_eq!(r.body["status"], "queued");
    r.body["id"].as_str().unwrap().to_owned()
}

async fn status(app: &TestApp, id: &str) -> Value {
    let r = app
        .get(&format!("/api/v1/integrations/lawruler/import/{id}"))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    r.body
}

/// Every record of a list, following the cursor.
async fn count_all(app: &TestApp, path: &str) -> usize {
    let mut n = 0;
    let mut cursor: Option<String> = None;
    loop {
        let url = match &cursor {
            Some(c) => format!("{path}?limit=200&cursor={c}"),
            None => format!("{path}?limit=200"),
        };
        let r = app.get(&url).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
        n += r.body["data"].as_array().unwrap().len();
        match r.body["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => return n,
        }
    }
}

fn rows_wanted() -> usize {
    std::env::var("CASEBRIDGE_IMPORT_ROWS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000)
}

async fn a_large_file_imports_with_progress_and_again_changes_nothing(
    backend: casebridge_testkit::TestBackend,
) {
    let app = TestApp::start(backend).await;
    let n = rows_wanted();
    let text = csv((1..=n).map(row));
    let id = upload(&app, &text).await;
    let first = status(&app, &id).await;
    assert_eq!(
        (
            first["total_rows"].as_u64(),
            first["processed_rows"].as_u64()
        ),
        (Some(n as u64), Some(0))
    );

    // One batch, as a worker that dies after its first commit would leave it.
    let started = Instant::now();
    let uuid: uuid::Uuid = id.parse().unwrap();
    import::run(
        &app.db.store,
        &app.clock,
        app.company_id,
        uuid,
        import::BATCH_ROWS,
        Some(1),
    )
    .await
    .unwrap();
    let mid = status(&app, &id).await;
    assert_eq!(mid["status"], "running", "{mid}");
    assert_eq!(
        mid["processed_rows"].as_u64(),
        Some(import::BATCH_ROWS.min(n) as u64)
    );
    assert_eq!(
        mid["created"].as_u64(),
        Some(import::BATCH_ROWS.min(n) as u64)
    );

    // The job resumes from there.
    worker(&app).drain().await.unwrap();
    let elapsed = started.elapsed();
    eprintln!("{backend:?}: imported {n} rows in {elapsed:?}");
    let done = status(&app, &id).await;
    assert_eq!(done["status"], "done", "{done}");
    assert_eq!(
        (
            done["processed_rows"].as_u64(),
            done["created"].as_u64(),
            done["updated"].as_u64(),
            done["unchanged"].as_u64(),
            done["failed"].as_u64()
        ),
        (Some(n as u64), Some(n as u64), Some(0), Some(0), Some(0)),
        "{done}"
    );
    assert!(done["finished_at"].is_string());
    assert_eq!(count_all(&app, "/api/v1/cases").await, n);
    assert_eq!(count_all(&app, "/api/v1/clients").await, n);
    for k in [1, n / 2, n] {
        let case = app
            .get(&format!(
                "/api/v1/cases/by-external-ref?provider=lawruler&external_id=L{k}"
            ))
            .await;
        assert_eq!(case.status, StatusCode::OK, "L{k}: {}", case.text);
        assert_eq!(case.body["name"], format!("Doe, Jane {k}"));
        let client = app
            .get(&format!(
                "/api/v1/clients/by-external-ref?provider=lawruler&external_id=PC-{k}"
            ))
            .await;
        assert_eq!(client.body["id"], case.body["client_id"]);
    }
    assert_eq!(count_all(&app, "/api/v1/case-types").await, 3.min(n));

    // The same file again: every row unchanged, nothing new.
    let started = Instant::now();
    let again = upload(&app, &text).await;
    worker(&app).drain().await.unwrap();
    eprintln!(
        "{backend:?}: re-imported {n} rows in {:?}",
        started.elapsed()
    );
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
    assert_eq!(count_all(&app, "/api/v1/cases").await, n);
    assert_eq!(count_all(&app, "/api/v1/clients").await, n);

    let list = app.get("/api/v1/integrations/lawruler/import").await.body;
    let ids: Vec<&str> = list["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, vec![again.as_str(), id.as_str()], "newest first");
}
casebridge_testkit::backend_test!(a_large_file_imports_with_progress_and_again_changes_nothing);

async fn bad_rows_are_reported_by_row_number_and_good_rows_applied(
    backend: casebridge_testkit::TestBackend,
) {
    let app = TestApp::start(backend).await;
    let text = csv([
        row(1),
        // Missing Last Name (and First Name blank).
        "L2,12,Auto Accident,7,Intake,Jane Doe,2026-11-01,PC-2, ,,,".to_owned(),
        row(3),
        // Too few values.
        "L4,12,Auto Accident".to_owned(),
        // Passes parsing, fails when applied: an invalid email.
        "L5,12,Auto Accident,7,Intake,Jane Doe,2026-11-01,PC-5,Jane,Doe,not-an-email,".to_owned(),
        row(6),
    ]);
    // As the `file` part of a multipart form this time.
    let form = reqwest::multipart::Form::new()
        .text("note", "ignored")
        .part(
            "file",
            reqwest::multipart::Part::text(text).file_name("leads.csv"),
        );
    let r = TestApp::reply(
        app.http
            .post(app.url("/api/v1/integrations/lawruler/import"))
            .bearer_auth(&app.api_key)
            .multipart(form)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.text);
    assert_eq!(r.body["file_name"], "leads.csv");
    assert_eq!(r.body["total_rows"], 6);
    let id = r.body["id"].as_str().unwrap().to_owned();
    worker(&app).drain().await.unwrap();

    let done = status(&app, &id).await;
    assert_eq!(done["status"], "done", "{done}");
    assert_eq!(
        (done["created"].as_u64(), done["failed"].as_u64()),
        (Some(3), Some(3)),
        "{done}"
    );
    let errors = done["errors"].as_array().unwrap();
    let rows: Vec<u64> = errors.iter().map(|e| e["row"].as_u64().unwrap()).collect();
    assert_eq!(rows, vec![2, 4, 5], "{done}");
    let msg = |i: usize| errors[i]["message"].as_str().unwrap().to_owned();
    assert!(
        msg(0).contains("First Name") && msg(0).contains("Last Name"),
        "{}",
        msg(0)
    );
    assert!(msg(1).contains("3 values"), "{}", msg(1));
    assert!(
        msg(2).contains("L5") && msg(2).contains("email"),
        "{}",
        msg(2)
    );
    // The failed row wrote nothing: no case, no client for L5 / PC-5.
    assert_eq!(count_all(&app, "/api/v1/cases").await, 3);
    assert_eq!(count_all(&app, "/api/v1/clients").await, 3);
    let r = app
        .get("/api/v1/cases/by-external-ref?provider=lawruler&external_id=L6")
        .await;
    assert_eq!(r.status, StatusCode::OK);
    let log = app.get("/api/v1/integrations/lawruler/sync-log").await.body;
    assert!(
        log["data"][0]["message"]
            .as_str()
            .unwrap()
            .contains("3 failed"),
        "{log}"
    );
}
casebridge_testkit::backend_test!(bad_rows_are_reported_by_row_number_and_good_rows_applied);

async fn a_file_missing_required_columns_is_refused_and_nothing_stored(
    backend: casebridge_testkit::TestBackend,
) {
    let app = TestApp::start(backend).await;
    let r = upload_as(
        &app,
        &app.api_key,
        "Lead ID,Case Type,Full Name,First_Name\n1,Auto,Jane Doe,Jane\n",
    )
    .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.text);
    let msg = r.body["error"]["message"].as_str().unwrap();
    for label in [
        "Case Type ID",
        "Status ID",
        "Status",
        "Created Date",
        "Primary Contact ID",
        "Last Name",
    ] {
        assert!(msg.contains(label), "{label}: {msg}");
    }
    assert!(!msg.contains("First Name"), "{msg}");
    let r = upload_as(&app, &app.api_key, "").await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.text);
    let r = app
        .post(
            "/api/v1/integrations/lawruler/import",
            json!({"Lead ID": 1}),
        )
        .await;
    assert_eq!(r.status, StatusCode::UNSUPPORTED_MEDIA_TYPE, "{}", r.text);

    assert_eq!(
        app.get("/api/v1/integrations/lawruler/import").await.body["data"],
        json!([])
    );
    assert_eq!(
        worker(&app).drain().await.unwrap(),
        0,
        "no job was enqueued"
    );
}
casebridge_testkit::backend_test!(a_file_missing_required_columns_is_refused_and_nothing_stored);

async fn a_later_webhook_updates_the_imported_case(backend: casebridge_testkit::TestBackend) {
    let app = TestApp::start(backend).await;
    let hook = connected(&app).await;
    let id = upload(&app, &csv([row(1)])).await;
    worker(&app).drain().await.unwrap();
    assert_eq!(status(&app, &id).await["created"], 1);
    let case = app
        .get("/api/v1/cases/by-external-ref?provider=lawruler&external_id=L1")
        .await
        .body;

    // An import is not a webhook: the checklist still waits for the first one.
    let view = app.get("/api/v1/integrations/lawruler").await.body;
    assert_eq!(view["checklist"]["first_webhook_received"], false, "{view}");
    assert!(
        view["health"]["last_status_pull_at"].is_string(),
        "the import brought statuses"
    );
    let r = app
        .http
        .post(app.url(&hook))
        .json(&json!({
            "Lead ID": "L1", "Case Type ID": "13", "Case Type": "Slip and Fall",
            "Status ID": "9", "Status": "Retained", "Full Name": "Jane Doe",
            "Created Date": "2026-11-01", "Primary Contact ID": "PC-1",
            "First Name": "Jane", "Last Name": "Doe",
        }))
        .send()
        .await
        .unwrap();
    let r = TestApp::reply(r).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(
        (r.body["status"].as_str(), r.body["case_created"].as_bool()),
        (Some("applied"), Some(false)),
        "{}",
        r.text
    );
    assert_eq!(r.body["case_id"], case["id"]);
    assert_eq!(r.body["client_id"], case["client_id"]);
    assert_eq!(count_all(&app, "/api/v1/cases").await, 1);
    assert_eq!(count_all(&app, "/api/v1/clients").await, 1);
    let after = app
        .get(&format!("/api/v1/cases/{}", case["id"].as_str().unwrap()))
        .await
        .body;
    let st = app
        .get(&format!(
            "/api/v1/case-statuses/{}",
            after["case_status_id"].as_str().unwrap()
        ))
        .await
        .body;
    assert_eq!(st["name"], "Retained");
    let view = app.get("/api/v1/integrations/lawruler").await.body;
    assert_eq!(view["checklist"]["first_webhook_received"], true, "{view}");
}
casebridge_testkit::backend_test!(a_later_webhook_updates_the_imported_case);

async fn imports_are_scoped_to_their_company(backend: casebridge_testkit::TestBackend) {
    let app = TestApp::start(backend).await;
    let id = upload(&app, &csv([row(1)])).await;
    let (_, other_key) = app.new_company("Other Firm").await;
    let r = app
        .call_as(
            &other_key,
            reqwest::Method::GET,
            &format!("/api/v1/integrations/lawruler/import/{id}"),
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND, "{}", r.text);
    let r = app
        .call_as(
            &other_key,
            reqwest::Method::GET,
            "/api/v1/integrations/lawruler/import",
            None,
        )
        .await;
    assert_eq!(r.body["data"], json!([]));
    let r = app
        .get("/api/v1/integrations/lawruler/import/not-an-id")
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);

    // The other company imports the same leads: its own records, not the first company's.
    let r = upload_as(&app, &other_key, &csv([row(1)])).await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.text);
    worker(&app).drain().await.unwrap();
    let r = app
        .call_as(
            &other_key,
            reqwest::Method::GET,
            &format!(
                "/api/v1/integrations/lawruler/import/{}",
                r.body["id"].as_str().unwrap()
            ),
            None,
        )
        .await;
    assert_eq!(
        (r.body["status"].as_str(), r.body["created"].as_u64()),
        (Some("done"), Some(1)),
        "{}",
        r.text
    );
    worker(&app).drain().await.unwrap();
    assert_eq!(status(&app, &id).await["created"], 1);
    assert_eq!(count_all(&app, "/api/v1/cases").await, 1);
}
casebridge_testkit::backend_test!(imports_are_scoped_to_their_company);

async fn connected(app: &TestApp) -> String {
    app.lawruler_connected_offline(app.company_id, &app.api_key)
        .await
}
