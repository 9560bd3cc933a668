//! Faults and bad input, on both backends: every error of every layer in the one envelope, NUL
//! characters and ambiguous repeats refused naming the field, and a database that cannot answer
//! giving 503 with `Retry-After`, then recovering by itself.

use std::time::Duration;

use casebridge_testkit::{Reply, TestApp, TestBackend};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use sqlx::Connection;

/// Asserts the envelope `{"error": {"code", "message", "details"}}` with `status` and `code`.
#[track_caller]
fn assert_envelope(r: &Reply, status: StatusCode, code: &str) {
    assert_eq!(r.status, status, "{}", r.text);
    assert_eq!(r.body["error"]["code"], code, "{}", r.text);
    assert!(
        r.body["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty()),
        "{}",
        r.text
    );
    assert!(r.body["error"]["details"].is_array(), "{}", r.text);
    assert_eq!(
        r.headers.get("content-type").and_then(|v| v.to_str().ok()),
        Some("application/json"),
        "{}",
        r.text
    );
}

/// Asserts a 422 whose first field error names `field`.
#[track_caller]
fn assert_field(r: &Reply, field: &str) {
    assert_envelope(r, StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
    assert_eq!(r.body["error"]["details"][0]["field"], field, "{}", r.text);
}

async fn raw(app: &TestApp, method: Method, path: &str, ct: &str, body: Vec<u8>) -> Reply {
    let req = app
        .http
        .request(method, app.url(path))
        .bearer_auth(&app.api_key)
        .header("content-type", ct)
        .body(body);
    TestApp::reply(req.send().await.expect("sent")).await
}

async fn count(app: &TestApp, path: &str) -> usize {
    let r = app.get(path).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    r.body["data"].as_array().expect("a page").len()
}

fn lead() -> serde_json::Map<String, Value> {
    [
        ("Lead ID", "1001"),
        ("Case Type ID", "12"),
        ("Case Type", "Auto Accident"),
        ("Status ID", "7"),
        ("Status", "Intake"),
        ("Full Name", "Jane Doe"),
        ("Created Date", "2026-11-01"),
        ("Primary Contact ID", "PC-9"),
        ("First Name", "Jane"),
        ("Last Name", "Doe"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), Value::String(v.to_owned())))
    .collect()
}

async fn hook(app: &TestApp, path: &str, ct: &str, body: impl Into<reqwest::Body>) -> Reply {
    let req = app
        .http
        .post(app.url(path))
        .header("content-type", ct)
        .body(body);
    TestApp::reply(req.send().await.expect("sent")).await
}

/// A POST on a client of its own: the server answers an oversized body before reading it all
/// and closes the connection, which must not be reused.
fn oversized(app: &TestApp, path: &str) -> reqwest::RequestBuilder {
    reqwest::Client::new()
        .post(app.url(path))
        .bearer_auth(&app.api_key)
}

async fn every_layer_answers_in_the_one_envelope(backend: casebridge_testkit::TestBackend) {
    let app = TestApp::start(backend).await;

    // Routing.
    assert_envelope(
        &app.get("/api/v1/no-such-thing").await,
        StatusCode::NOT_FOUND,
        "not_found",
    );
    assert_envelope(
        &app.call(Method::PUT, "/api/v1/company", None).await,
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
    );
    // A path segment that is not UTF-8, and one with a NUL.
    assert_envelope(
        &app.get("/api/v1/clients/%FF").await,
        StatusCode::BAD_REQUEST,
        "bad_path",
    );
    assert_envelope(
        &app.get("/api/v1/clients/a%00b").await,
        StatusCode::NOT_FOUND,
        "not_found",
    );
    // A URI over the limit.
    let long = format!(
        "/api/v1/clients?cursor={}",
        "a".repeat(casebridge_api::MAX_URI_BYTES)
    );
    let r = app.get(&long).await;
    assert_envelope(&r, StatusCode::URI_TOO_LONG, "uri_too_long");

    // Authentication.
    let r = TestApp::reply(
        app.http
            .get(app.url("/api/v1/company"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_envelope(&r, StatusCode::UNAUTHORIZED, "unauthorized");
    assert_eq!(r.body["error"]["details"], json!([]));

    // Extractors and body limits.
    let r = raw(
        &app,
        Method::POST,
        "/api/v1/clients",
        "application/json",
        b"{\"first_name\":".to_vec(),
    )
    .await;
    assert_envelope(&r, StatusCode::BAD_REQUEST, "malformed_json");
    let r = raw(
        &app,
        Method::POST,
        "/api/v1/clients",
        "text/plain",
        b"{}".to_vec(),
    )
    .await;
    assert_envelope(
        &r,
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "unsupported_media_type",
    );
    let big = json!({"first_name": "x".repeat(2 * 1024 * 1024)});
    let r = TestApp::reply(
        oversized(&app, "/api/v1/clients")
            .json(&big)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_envelope(&r, StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large");
    let r = app.get("/api/v1/clients?limit=many").await;
    assert_envelope(&r, StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
    assert_eq!(count(&app, "/api/v1/clients").await, 0);

    // An inbound webhook: a multipart body over the limit is 413, not a malformed body.
    let path = app
        .lawruler_connected_offline(app.company_id, &app.api_key)
        .await;
    let form = reqwest::multipart::Form::new()
        .text("Lead ID", "1001")
        .text("Notes", "x".repeat(2 * 1024 * 1024));
    let r = TestApp::reply(oversized(&app, &path).multipart(form).send().await.unwrap()).await;
    assert_envelope(&r, StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large");
    let r = hook(&app, &path, "application/json", "{").await;
    assert_envelope(&r, StatusCode::BAD_REQUEST, "malformed_json");
    let r = hook(&app, &path, "application/xml", "<lead/>").await;
    assert_envelope(
        &r,
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "unsupported_media_type",
    );
    assert_eq!(count(&app, "/api/v1/cases").await, 0);
}
casebridge_testkit::backend_test!(every_layer_answers_in_the_one_envelope);

async fn nul_characters_are_refused_naming_the_field(backend: casebridge_testkit::TestBackend) {
    let app = TestApp::start(backend).await;
    let r = app
        .post("/api/v1/clients", json!({"first_name": "Ja\u{0}ne"}))
        .await;
    assert_field(&r, "first_name");
    let r = app
        .post(
            "/api/v1/clients",
            json!({"first_name": "Jane",
            "custom_fields": {"note": "a\u{0}"}}),
        )
        .await;
    assert_field(&r, "custom_fields.note");
    let r = app
        .post("/api/v1/case-types", json!({"name": "\u{0}"}))
        .await;
    assert_field(&r, "name");
    assert_eq!(count(&app, "/api/v1/clients").await, 0);
    assert_eq!(count(&app, "/api/v1/case-types").await, 0);
    assert_field(&app.get("/api/v1/clients?cursor=a%00").await, "cursor");

    // Inbound webhooks, in every body format: 422 naming the field, nothing stored, and
    // the refusal in the sync log.
    let path = app
        .lawruler_connected_offline(app.company_id, &app.api_key)
        .await;
    let mut body = lead();
    body.insert("Full Name".into(), "Jane\u{0}Doe".into());
    let r = hook(
        &app,
        &path,
        "application/json",
        serde_json::to_vec(&body).unwrap(),
    )
    .await;
    assert_field(&r, "Full Name");
    let form = "Lead+ID=1001&First+Name=Ja%00ne";
    assert_field(
        &hook(&app, &path, "application/x-www-form-urlencoded", form).await,
        "First Name",
    );
    let form = reqwest::multipart::Form::new().text("LeadID", "10\u{0}01");
    let r = TestApp::reply(
        app.http
            .post(app.url(&path))
            .multipart(form)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_field(&r, "LeadID");
    let r = hook(
        &app,
        &format!("{path}?list_name=a%00"),
        "application/json",
        serde_json::to_vec(&lead()).unwrap(),
    )
    .await;
    assert_field(&r, "list_name");
    // A token with a NUL names no webhook.
    let r = hook(&app, "/hooks/lawruler/a%00b", "application/json", "{}").await;
    assert_envelope(&r, StatusCode::NOT_FOUND, "not_found");
    assert_eq!(count(&app, "/api/v1/cases").await, 0);
    assert_eq!(count(&app, "/api/v1/clients").await, 0);
    let log = app
        .get("/api/v1/integrations/lawruler/sync-log?outcome=error")
        .await;
    assert_eq!(
        log.body["data"].as_array().unwrap().len(),
        4,
        "{}",
        log.text
    );
    assert!(log.text.contains("NUL"), "{}", log.text);

    // The same lead without the NUL is applied.
    let r = hook(
        &app,
        &path,
        "application/json",
        serde_json::to_vec(&lead()).unwrap(),
    )
    .await;
    assert_eq!(
        (r.status, r.body["status"].as_str()),
        (StatusCode::OK, Some("applied")),
        "{}",
        r.text
    );
}
casebridge_testkit::backend_test!(nul_characters_are_refused_naming_the_field);

async fn conflicting_repeats_are_refused_and_equal_ones_pass(
    backend: casebridge_testkit::TestBackend,
) {
    let app = TestApp::start(backend).await;
    let r = raw(
        &app,
        Method::POST,
        "/api/v1/clients",
        "application/json",
        br#"{"first_name": "Jane", "first_name": "John"}"#.to_vec(),
    )
    .await;
    assert_field(&r, "first_name");
    let r = raw(
        &app,
        Method::POST,
        "/api/v1/clients",
        "application/json",
        br#"{"first_name": "Jane", "custom_fields": {"a": 1, "a": 2}}"#.to_vec(),
    )
    .await;
    assert_field(&r, "custom_fields.a");
    assert_eq!(count(&app, "/api/v1/clients").await, 0);
    let r = raw(
        &app,
        Method::POST,
        "/api/v1/clients",
        "application/json",
        br#"{"first_name": "Jane", "first_name": "Jane"}"#.to_vec(),
    )
    .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    assert_eq!(r.body["first_name"], "Jane");

    assert_field(&app.get("/api/v1/clients?limit=1&limit=2").await, "limit");
    assert_eq!(
        app.get("/api/v1/clients?limit=1&limit=1").await.status,
        StatusCode::OK
    );

    // A webhook naming one field twice, in two styles or in one, with different values.
    let path = app
        .lawruler_connected_offline(app.company_id, &app.api_key)
        .await;
    let mut body = lead();
    body.insert("lead_id".into(), "1002".into());
    let r = hook(
        &app,
        &path,
        "application/json",
        serde_json::to_vec(&body).unwrap(),
    )
    .await;
    assert_field(&r, "Lead ID");
    assert!(r.text.contains("lead_id"), "{}", r.text);
    let mut text = serde_json::to_string(&lead()).unwrap();
    text.insert_str(1, r#""Status": "Closed", "#);
    assert_field(&hook(&app, &path, "application/json", text).await, "Status");
    let r = hook(
        &app,
        &format!("{path}?list_id=1&list_id=2"),
        "application/json",
        serde_json::to_vec(&lead()).unwrap(),
    )
    .await;
    assert_field(&r, "list_id");
    assert_eq!(count(&app, "/api/v1/cases").await, 0);
    // Equal repeats pass.
    let mut body = lead();
    body.insert("lead_id".into(), "1001".into());
    let r = hook(
        &app,
        &path,
        "application/json",
        serde_json::to_vec(&body).unwrap(),
    )
    .await;
    assert_eq!(
        (r.status, r.body["status"].as_str()),
        (StatusCode::OK, Some("applied")),
        "{}",
        r.text
    );
    assert_eq!(count(&app, "/api/v1/cases").await, 1);
}
casebridge_testkit::backend_test!(conflicting_repeats_are_refused_and_equal_ones_pass);

async fn urls_and_times_are_kept_to_their_limits(backend: casebridge_testkit::TestBackend) {
    let app = TestApp::start(backend).await;
    let url = format!(
        "http://127.0.0.1:9/{}",
        "a".repeat(casebridge_domain::input::MAX_URL_CHARS)
    );
    assert_field(
        &app.post("/api/v1/webhooks", json!({"name": "Long", "url": url}))
            .await,
        "url",
    );
    assert_eq!(count(&app, "/api/v1/webhooks").await, 0);
    let ok = app
        .post(
            "/api/v1/webhooks",
            json!({"name": "Short", "url": "http://127.0.0.1:9/h"}),
        )
        .await;
    assert_eq!(ok.status, StatusCode::CREATED, "{}", ok.text);
    let id = ok.body["id"].as_str().unwrap();
    for since in [
        "0000-01-01T00:00:00Z",
        "1899-12-31T23:59:59Z",
        "3000-01-01T00:00:00Z",
    ] {
        let r = app
            .post(
                &format!("/api/v1/webhooks/{id}/recover"),
                json!({"since": since}),
            )
            .await;
        assert_field(&r, "since");
        assert!(
            r.text.contains("1900") && r.text.contains("2999"),
            "{}",
            r.text
        );
    }
    let r = app
        .post(
            &format!("/api/v1/webhooks/{id}/recover"),
            json!({"since": "2026-01-01T00:00:00Z"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.text);
}
casebridge_testkit::backend_test!(urls_and_times_are_kept_to_their_limits);

async fn a_database_that_cannot_answer_gives_503_with_retry_after_then_recovers(
    backend: casebridge_testkit::TestBackend,
) {
    let app = TestApp::start(backend).await;
    let rename = |name: &str| json!({"name": name});
    assert_eq!(
        app.patch("/api/v1/company", rename("Before")).await.status,
        StatusCode::OK
    );

    // Another session holds the company's row (PostgreSQL) or the write lock (SQLite) while
    // a request waits for it; then the request's connection is dropped (PostgreSQL: the
    // server terminates it, as a restart does) or its wait runs out (SQLite: busy).
    let r = match backend {
        TestBackend::Postgres => {
            let mut holder = sqlx::PgConnection::connect(&app.db.url).await.unwrap();
            let mut tx = holder.begin().await.unwrap();
            sqlx::query("SELECT id FROM companies WHERE id = $1 FOR UPDATE")
                .bind(app.company_id.to_string())
                .execute(&mut *tx)
                .await
                .unwrap();
            let waiting = tokio::spawn({
                let (http, url, key) = (
                    app.http.clone(),
                    app.url("/api/v1/company"),
                    app.api_key.clone(),
                );
                async move {
                    TestApp::reply(
                        http.patch(url)
                            .bearer_auth(key)
                            .json(&json!({"name": "During"}))
                            .send()
                            .await
                            .unwrap(),
                    )
                    .await
                }
            });
            // Wait until the request is blocked on the row, then drop every other session.
            let blocked =
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() \
                               AND wait_event_type = 'Lock'";
            for _ in 0..100 {
                let (n,): (i64,) = sqlx::query_as(blocked).fetch_one(&mut *tx).await.unwrap();
                if n > 0 {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            sqlx::query(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
                             WHERE datname = current_database() AND pid <> pg_backend_pid()",
            )
            .execute(&mut *tx)
            .await
            .unwrap();
            let r = waiting.await.unwrap();
            tx.rollback().await.unwrap();
            r
        }
        TestBackend::Sqlite => {
            let mut holder = sqlx::SqliteConnection::connect(&app.db.url).await.unwrap();
            sqlx::query("BEGIN IMMEDIATE")
                .execute(&mut holder)
                .await
                .unwrap();
            let r = app.patch("/api/v1/company", rename("During")).await;
            sqlx::query("ROLLBACK").execute(&mut holder).await.unwrap();
            r
        }
    };
    assert_envelope(&r, StatusCode::SERVICE_UNAVAILABLE, "unavailable");
    assert_eq!(
        r.headers.get("retry-after").and_then(|v| v.to_str().ok()),
        Some("5"),
        "{:?}",
        r.headers
    );

    // Nothing was changed, and the next requests are served again without a restart.
    assert_eq!(app.get("/api/v1/company").await.body["name"], "Before");
    let r = app.patch("/api/v1/company", rename("After")).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(app.get("/api/v1/company").await.body["name"], "After");
    assert_eq!(app.get("/readyz").await.status, StatusCode::OK);
}
casebridge_testkit::backend_test!(
    a_database_that_cannot_answer_gives_503_with_retry_after_then_recovers
);

async fn a_fault_of_ours_and_of_an_upstream_answer_in_the_envelope(
    backend: casebridge_testkit::TestBackend,
) {
    // 500: a record the store cannot read (a time out of range) is our fault; the answer
    // says so without the cause, and the other records are still served.
    let app = TestApp::start(backend).await;
    let broken = app
        .create("/api/v1/clients", json!({"first_name": "Broken"}))
        .await;
    let fine = app
        .create("/api/v1/clients", json!({"first_name": "Fine"}))
        .await;
    let mut conn = app.db.store.conn().await.unwrap();
    sqlx::query("UPDATE clients SET created_at = $1 WHERE id = $2")
        .bind(i64::MAX)
        .bind(&broken)
        .execute(&mut *conn)
        .await
        .unwrap();
    drop(conn);
    let r = app.get(&format!("/api/v1/clients/{broken}")).await;
    assert_envelope(&r, StatusCode::INTERNAL_SERVER_ERROR, "internal_error");
    assert_eq!(
        r.body["error"]["message"], "something went wrong on our side",
        "{}",
        r.text
    );
    assert_eq!(r.body["error"]["details"], json!([]));
    assert!(
        !r.text.contains("created_at"),
        "the cause is logged, not shown: {}",
        r.text
    );
    app.get(&format!("/api/v1/clients/{fine}"))
        .await
        .expect(StatusCode::OK);

    // 502: Law Ruler failing to answer a request made for the admin.
    let lr = casebridge_sim::lawruler::LawRulerSim::new().start().await;
    let r = app
        .call(
            Method::PUT,
            "/api/v1/integrations/lawruler/connection",
            Some(json!({
            "username": "demo", "password": "demo-password", "client_root": lr.base_url,
            "client_secret": "demo-secret", "key": "demo-key"})),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    lr.sim.patch_faults(casebridge_sim::lawruler::FaultsPatch {
        fail_fields: Some(true),
        ..Default::default()
    });
    let r = app
        .post("/api/v1/integrations/lawruler/fields/refresh", json!({}))
        .await;
    assert_envelope(&r, StatusCode::BAD_GATEWAY, "upstream_error");
    assert_eq!(r.body["error"]["details"], json!([]));
}
casebridge_testkit::backend_test!(a_fault_of_ours_and_of_an_upstream_answer_in_the_envelope);
