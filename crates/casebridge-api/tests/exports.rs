//! Exports for reports (P8): `GET /api/v1/exports/{kind}` as CSV and JSON, on both backends.
//! What is checked is what a firm's report would show: every value as the API gives it (commas,
//! quotes and line breaks included), the time range, several chunks without a gap or a repeat,
//! the CRM and webhook filters, refusals that name the argument, and another company's rows
//! never showing.

use std::time::Duration;

use casebridge_testkit::receiver::{Receiver, Reply as R};
use casebridge_testkit::TestApp;
use reqwest::StatusCode;
use serde_json::{json, Value};

/// Downloads an export; returns the status, content type and body.
async fn download(app: &TestApp, key: &str, path: &str) -> (StatusCode, String, String) {
    let r = app
        .http
        .get(app.url(path))
        .bearer_auth(key)
        .send()
        .await
        .unwrap();
    let status = r.status();
    let ct = r
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    (status, ct, r.text().await.unwrap())
}

/// Parses a CSV export into its header and rows (as maps by column).
fn csv_rows(text: &str) -> (Vec<String>, Vec<serde_json::Map<String, Value>>) {
    let mut r = csv::Reader::from_reader(text.as_bytes());
    let header: Vec<String> = r.headers().unwrap().iter().map(str::to_owned).collect();
    let rows = r
        .records()
        .map(|rec| {
            let rec = rec.unwrap();
            header
                .iter()
                .zip(rec.iter())
                .map(|(k, v)| (k.clone(), Value::String(v.to_owned())))
                .collect()
        })
        .collect();
    (header, rows)
}

fn error_field(body: &str) -> String {
    let v: Value = serde_json::from_str(body).unwrap();
    v["error"]["details"][0]["field"]
        .as_str()
        .unwrap_or("<none>")
        .to_owned()
}

async fn cases_and_clients_export_every_value_as_the_api_shows_it(
    backend: casebridge_testkit::TestBackend,
) {
    let app = TestApp::start(backend).await;
    let ct = app
        .create("/api/v1/case-types", json!({"name": "Auto, \"rear-end\""}))
        .await;
    let tricky = "Doe, Jane \"JD\"\nsecond line";
    let client = app
        .create(
            "/api/v1/clients",
            json!({
            "first_name": tricky, "last_name": "Roe", "email": "jane@example.com",
            "phone": "+15551234567",
            "external_refs": [{"provider": "lawruler", "external_id": "C-1,2"}]}),
        )
        .await;
    let case = app
        .create(
            "/api/v1/cases",
            json!({
            "name": tricky, "case_type_id": ct, "client_id": client,
            "custom_fields": {"injury": "neck, back", "score": 3},
            "external_refs": [{"provider": "lawruler", "external_id": "L\"9"}]}),
        )
        .await;

    let (status, content_type, text) = download(&app, &app.api_key, "/api/v1/exports/cases").await;
    assert_eq!(status, StatusCode::OK, "{text}");
    assert!(content_type.starts_with("text/csv"), "{content_type}");
    let (header, rows) = csv_rows(&text);
    assert_eq!(
        header,
        [
            "id",
            "name",
            "case_type_id",
            "case_type",
            "case_status_id",
            "case_status",
            "client_id",
            "campaign_id",
            "external_refs",
            "custom_fields",
            "created_at",
            "updated_at"
        ]
    );
    assert_eq!(rows.len(), 1);
    let row = &rows[0];
    let api = app.get(&format!("/api/v1/cases/{case}")).await.body;
    assert_eq!(row["id"], case.as_str());
    assert_eq!(row["name"], tricky);
    assert_eq!(row["case_type_id"], ct.as_str());
    assert_eq!(row["case_type"], "Auto, \"rear-end\"");
    assert_eq!(row["client_id"], client.as_str());
    assert_eq!(row["case_status_id"], "");
    let refs: Value = serde_json::from_str(row["external_refs"].as_str().unwrap()).unwrap();
    assert_eq!(
        refs,
        json!([{"provider": "lawruler", "external_id": "L\"9"}])
    );
    let custom: Value = serde_json::from_str(row["custom_fields"].as_str().unwrap()).unwrap();
    assert_eq!(custom, api["custom_fields"]);
    assert!(row["created_at"].as_str().unwrap().ends_with('Z'));

    // The same rows as JSON, with the JSON columns as JSON.
    let (status, content_type, text) =
        download(&app, &app.api_key, "/api/v1/exports/clients?format=json").await;
    assert_eq!(status, StatusCode::OK, "{text}");
    assert_eq!(content_type, "application/json");
    let rows: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(rows.as_array().unwrap().len(), 1);
    assert_eq!(rows[0]["id"], client.as_str());
    assert_eq!(rows[0]["first_name"], tricky);
    assert_eq!(rows[0]["email"], "jane@example.com");
    assert_eq!(
        rows[0]["external_refs"],
        json!([{"provider": "lawruler", "external_id": "C-1,2"}])
    );

    // Another company's export holds none of it.
    let (_, other_key) = app.new_company("Other firm").await;
    let (status, _, text) = download(&app, &other_key, "/api/v1/exports/cases?format=json").await;
    assert_eq!((status, text.trim()), (StatusCode::OK, "[]"));
    let (status, _, text) = download(&app, &other_key, "/api/v1/exports/clients").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(csv_rows(&text).1.len(), 0, "{text}");
}
casebridge_testkit::backend_test!(cases_and_clients_export_every_value_as_the_api_shows_it);

async fn the_time_range_and_many_chunks(backend: casebridge_testkit::TestBackend) {
    let app = TestApp::start(backend).await;
    let early = app
        .create("/api/v1/clients", json!({"first_name": "Early"}))
        .await;
    app.advance(Duration::from_secs(3600));
    let from = casebridge_domain::clock::Clock::now(&app.clock);
    // More than one chunk (500 rows).
    let mut made = Vec::new();
    for i in 0..520 {
        made.push(
            app.create(
                "/api/v1/clients",
                json!({"first_name": format!("Later {i}")}),
            )
            .await,
        );
    }
    app.advance(Duration::from_secs(3600));
    let late = app
        .create("/api/v1/clients", json!({"first_name": "Too late"}))
        .await;
    let until = from + jiff::SignedDuration::from_secs(1800);

    let path = format!("/api/v1/exports/clients?since={from}&until={until}");
    let (status, _, text) = download(&app, &app.api_key, &path).await;
    assert_eq!(status, StatusCode::OK, "{text}");
    let ids: Vec<String> = csv_rows(&text)
        .1
        .iter()
        .map(|r| r["id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(ids, made, "every row of the range once, oldest first");
    assert!(!ids.contains(&early) && !ids.contains(&late));

    let (status, _, text) = download(&app, &app.api_key, &format!("{path}&format=json")).await;
    assert_eq!(status, StatusCode::OK);
    let rows: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(rows.as_array().unwrap().len(), 520);
}
casebridge_testkit::backend_test!(the_time_range_and_many_chunks);

async fn sync_log_and_deliveries_with_their_filters(backend: casebridge_testkit::TestBackend) {
    let app = TestApp::start(backend).await;
    let rx = Receiver::start().await;
    rx.always("/ok", R::status(200));
    let a = app
        .create(
            "/api/v1/webhooks",
            json!({"name": "First", "url": rx.url("/ok")}),
        )
        .await;
    let b = app
        .create(
            "/api/v1/webhooks",
            json!({"name": "Second", "url": rx.url("/ok")}),
        )
        .await;
    for hook in [&a, &b] {
        app.post(&format!("/api/v1/webhooks/{hook}/test"), json!({}))
            .await
            .expect(StatusCode::ACCEPTED);
    }
    app.webhook_worker(4).drain().await.unwrap();

    let (status, _, text) = download(
        &app,
        &app.api_key,
        &format!("/api/v1/exports/deliveries?webhook_id={a}"),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{text}");
    let (header, rows) = csv_rows(&text);
    assert!(header.contains(&"last_response_status".to_owned()));
    assert_eq!(rows.len(), 1, "{text}");
    assert_eq!(rows[0]["webhook_id"], a.as_str());
    assert_eq!(rows[0]["status"], "succeeded");
    assert_eq!(rows[0]["attempt_count"], "1");
    assert_eq!(rows[0]["last_response_status"], "200");
    let (_, _, text) = download(&app, &app.api_key, "/api/v1/exports/deliveries?format=json").await;
    let all: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(all.as_array().unwrap().len(), 2);
    assert_eq!(all[0]["attempt_count"], 1);

    // A sync-log line: a Law Ruler webhook that is not a lead.
    let url = app
        .lawruler_connected_offline(app.company_id, &app.api_key)
        .await;
    let r = app
        .http
        .post(app.url(&url))
        .json(&json!({"Lead ID": "77"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let (status, _, text) = download(
        &app,
        &app.api_key,
        "/api/v1/exports/sync-log?provider=lawruler&format=json",
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{text}");
    let lines: Value = serde_json::from_str(&text).unwrap();
    let line = lines
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["record_ref"] == "77")
        .expect("the webhook's line");
    assert_eq!(
        (
            line["provider"].as_str(),
            line["direction"].as_str(),
            line["outcome"].as_str()
        ),
        (Some("lawruler"), Some("inbound"), Some("error"))
    );
    let (_, _, text) = download(
        &app,
        &app.api_key,
        "/api/v1/exports/sync-log?provider=smartadvocate&format=json",
    )
    .await;
    assert_eq!(text.trim(), "[]");

    // Another company cannot name this company's webhook.
    let (_, other_key) = app.new_company("Other firm").await;
    let (status, _, _) = download(
        &app,
        &other_key,
        &format!("/api/v1/exports/deliveries?webhook_id={a}"),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}
casebridge_testkit::backend_test!(sync_log_and_deliveries_with_their_filters);

async fn bad_requests_name_what_is_wrong(backend: casebridge_testkit::TestBackend) {
    let app = TestApp::start(backend).await;
    let key = app.api_key.clone();
    let (status, _, _) = download(&app, &key, "/api/v1/exports/invoices").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    for (query, field) in [
        ("cases?format=xml", "format"),
        ("cases?since=yesterday", "since"),
        (
            "cases?since=2026-02-01T00:00:00Z&until=2026-01-01T00:00:00Z",
            "until",
        ),
        ("cases?provider=lawruler", "provider"),
        ("sync-log?provider=salesforce", "provider"),
        ("clients?webhook_id=nope", "webhook_id"),
        ("cases?colour=red", "query"),
    ] {
        let (status, _, body) = download(&app, &key, &format!("/api/v1/exports/{query}")).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{query}: {body}");
        assert_eq!(error_field(&body), field, "{query}: {body}");
    }
    let r = app
        .http
        .get(app.url("/api/v1/exports/cases"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
}
casebridge_testkit::backend_test!(bad_requests_name_what_is_wrong);

/// Posts a CSV file to `/api/v1/imports/{table}`.
async fn import(app: &TestApp, key: &str, table: &str, csv: &str) -> (StatusCode, Value) {
    let r = app
        .http
        .post(app.url(&format!("/api/v1/imports/{table}")))
        .bearer_auth(key)
        .header("content-type", "text/csv")
        .body(csv.to_owned())
        .send()
        .await
        .unwrap();
    let status = r.status();
    (status, r.json().await.unwrap_or(Value::Null))
}

fn counts(v: &Value) -> (u64, u64, u64, u64) {
    let n = |k: &str| v[k].as_u64().unwrap_or(u64::MAX);
    (n("created"), n("updated"), n("unchanged"), n("failed"))
}

async fn an_export_imported_again_changes_nothing_and_an_edit_updates(
    backend: casebridge_testkit::TestBackend,
) {
    let app = TestApp::start(backend).await;
    let key = app.api_key.clone();
    let ct = app
        .create("/api/v1/case-types", json!({"name": "Auto"}))
        .await;
    let st = app
        .create(
            "/api/v1/case-statuses",
            json!({"name": "Signed, \"retained\""}),
        )
        .await;
    let tricky = "Doe, Jane \"JD\"\nsecond line";
    let c1 = app
        .create(
            "/api/v1/clients",
            json!({"first_name": tricky, "email": "jane@example.com",
            "external_refs": [{"provider": "lawruler", "external_id": "C,1"}]}),
        )
        .await;
    app.create(
        "/api/v1/clients",
        json!({"last_name": "Roe", "phone": "+15551234567"}),
    )
    .await;
    app.create(
        "/api/v1/cases",
        json!({"name": tricky, "case_type_id": ct, "case_status_id": st,
            "client_id": c1, "custom_fields": {"injury": "neck, back", "n": 3, "ok": true},
            "external_refs": [{"provider": "lawruler", "external_id": "L\"9"}]}),
    )
    .await;
    app.create(
        "/api/v1/cases",
        json!({"name": "Plain", "case_type_id": ct}),
    )
    .await;

    let (_, _, clients_csv) = download(&app, &key, "/api/v1/exports/clients").await;
    let (_, _, cases_csv) = download(&app, &key, "/api/v1/exports/cases").await;
    let (status, body) = import(&app, &key, "clients", &clients_csv).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(counts(&body), (0, 0, 2, 0), "{body}");
    let (status, body) = import(&app, &key, "cases", &cases_csv).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(counts(&body), (0, 0, 2, 0), "{body}");
    // Lossless: the database exports exactly as before.
    assert_eq!(
        download(&app, &key, "/api/v1/exports/clients").await.2,
        clients_csv
    );
    assert_eq!(
        download(&app, &key, "/api/v1/exports/cases").await.2,
        cases_csv
    );

    // An edited export updates what was edited, and only that.
    let edited = clients_csv.replace("jane@example.com", "jane.doe@example.com");
    let (status, body) = import(&app, &key, "clients", &edited).await;
    assert_eq!(
        (status, counts(&body)),
        (StatusCode::OK, (0, 1, 1, 0)),
        "{body}"
    );
    let got = app.get(&format!("/api/v1/clients/{c1}")).await.body;
    assert_eq!(got["email"], "jane.doe@example.com");
    assert_eq!(got["first_name"], tricky);

    // Into another company: clients are created with their refs; cases find their type by
    // name, and a row naming a client that is not this company's fails, saying so.
    let (_, other) = app.new_company("Other firm").await;
    let r = app
        .call_as(
            &other,
            reqwest::Method::POST,
            "/api/v1/case-types",
            Some(json!({"name": "Auto"})),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED);
    let r = app
        .call_as(
            &other,
            reqwest::Method::POST,
            "/api/v1/case-statuses",
            Some(json!({"name": "Signed, \"retained\""})),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED);
    let (status, body) = import(&app, &other, "clients", &clients_csv).await;
    assert_eq!(
        (status, counts(&body)),
        (StatusCode::OK, (2, 0, 0, 0)),
        "{body}"
    );
    let r = app
        .call_as(
            &other,
            reqwest::Method::GET,
            "/api/v1/clients/by-external-ref?provider=lawruler&external_id=C%2C1",
            None,
        )
        .await;
    assert_eq!(
        (r.status, r.body["first_name"].as_str()),
        (StatusCode::OK, Some(tricky)),
        "{}",
        r.text
    );
    let (status, body) = import(&app, &other, "cases", &cases_csv).await;
    assert_eq!(
        (status, counts(&body)),
        (StatusCode::OK, (1, 0, 0, 1)),
        "{body}"
    );
    assert_eq!(body["errors"][0]["row"], 1, "{body}");
    assert!(
        body["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("no client with id"),
        "{body}"
    );
    // The first company's records are untouched by the second's import.
    assert_eq!(
        download(&app, &key, "/api/v1/exports/cases").await.2,
        cases_csv
    );
}
casebridge_testkit::backend_test!(an_export_imported_again_changes_nothing_and_an_edit_updates);

async fn a_bad_file_is_refused_whole_and_a_bad_row_alone(backend: casebridge_testkit::TestBackend) {
    let app = TestApp::start(backend).await;
    let key = app.api_key.clone();
    for (csv, expect) in [
        (
            "first_name,shoe_size\nAnn,7\n",
            "unknown column `shoe_size`",
        ),
        ("email\nann@example.com\n", "`first_name` or `last_name`"),
    ] {
        let (status, body) = import(&app, &key, "clients", csv).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
        assert!(
            body["error"]["message"].as_str().unwrap().contains(expect),
            "{body}"
        );
    }
    let (status, body) = import(&app, &key, "cases", "case_type\nAuto\n").await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    let (status, _) = import(&app, &key, "invoices", "id\n").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let r = app
        .http
        .post(app.url("/api/v1/imports/clients"))
        .bearer_auth(&key)
        .json(&json!({"first_name": "Ann"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
    assert_eq!(
        download(&app, &key, "/api/v1/exports/clients?format=json")
            .await
            .2
            .trim(),
        "[]",
        "nothing was stored"
    );

    // One bad row (an email that is not one, refs that are not JSON) is listed; the others go in.
    let csv =
        "first_name,email,external_refs\nAnn,ann@example.com,\nBo,not-an-email,\nCy,,nope\nDi,,\n";
    let (status, body) = import(&app, &key, "clients", csv).await;
    assert_eq!(
        (status, counts(&body)),
        (StatusCode::OK, (2, 0, 0, 2)),
        "{body}"
    );
    let rows: Vec<u64> = body["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["row"].as_u64().unwrap())
        .collect();
    assert_eq!(rows, [2, 3]);
    let (_, _, text) = download(&app, &key, "/api/v1/exports/clients?format=json").await;
    let names: Vec<String> = serde_json::from_str::<Value>(&text)
        .unwrap()
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["first_name"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(names, ["Ann", "Di"]);
}
casebridge_testkit::backend_test!(a_bad_file_is_refused_whole_and_a_bad_row_alone);
