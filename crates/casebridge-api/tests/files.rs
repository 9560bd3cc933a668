//! File bytes in the object store (P5): uploads and downloads through the API on the local
//! store and on a real S3-compatible server (moto), nothing left behind by a refused or
//! interrupted upload, the sweep of orphans, and the move of old inline files out of the
//! database.

use std::path::Path;
use std::time::Duration;

use casebridge_domain::clock::Clock as _;
use casebridge_files::ObjectKey;
use casebridge_store::documents::{self, Content};
use casebridge_testkit::{S3Server, TestApp, TestBackend, TestOptions};
use reqwest::StatusCode;
use serde_json::{json, Value};

/// Bytes that are not all alike (so a truncated or shuffled copy would not compare equal).
fn content(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u32).wrapping_mul(2_654_435_761).to_le_bytes()[1] ^ seed)
        .collect()
}

/// A `seconds`-long PCM16 mono 8 kHz WAV.
fn wav(seconds: u32) -> Vec<u8> {
    let data_len = seconds * 8000 * 2;
    let mut out = Vec::new();
    out.extend_from_slice(b"RIFF");
    out.extend_from_slice(&(36 + data_len).to_le_bytes());
    out.extend_from_slice(b"WAVEfmt ");
    out.extend_from_slice(&16u32.to_le_bytes());
    out.extend_from_slice(&1u16.to_le_bytes());
    out.extend_from_slice(&1u16.to_le_bytes());
    out.extend_from_slice(&8000u32.to_le_bytes());
    out.extend_from_slice(&16000u32.to_le_bytes());
    out.extend_from_slice(&2u16.to_le_bytes());
    out.extend_from_slice(&16u16.to_le_bytes());
    out.extend_from_slice(b"data");
    out.extend_from_slice(&data_len.to_le_bytes());
    out.extend((0..data_len).map(|i| (i % 251) as u8));
    out
}

fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    format!("{:x}", sha2::Sha256::digest(bytes))
}

async fn new_case(app: &TestApp) -> String {
    let ct = app
        .create("/api/v1/case-types", json!({"name": "Auto"}))
        .await;
    app.create("/api/v1/cases", json!({"name": "Doe", "case_type_id": ct}))
        .await
}

async fn upload(
    app: &TestApp,
    path: &str,
    ct: &str,
    name: &str,
    body: Vec<u8>,
) -> (StatusCode, Value) {
    let r = app
        .http
        .post(app.url(path))
        .bearer_auth(&app.api_key)
        .header("content-type", ct)
        .header(
            "content-disposition",
            format!("attachment; filename=\"{name}\""),
        )
        .body(body)
        .send()
        .await
        .unwrap();
    let status = r.status();
    let text = r.text().await.unwrap();
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

async fn download(
    app: &TestApp,
    key: &str,
    id: &str,
) -> (StatusCode, reqwest::header::HeaderMap, Vec<u8>) {
    let r = app
        .http
        .get(app.url(&format!("/api/v1/documents/{id}/content")))
        .bearer_auth(key)
        .send()
        .await
        .unwrap();
    let status = r.status();
    let headers = r.headers().clone();
    (status, headers, r.bytes().await.unwrap().to_vec())
}

/// Every file under `dir`, recursively.
fn files_under(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return out;
    };
    for e in entries.flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(files_under(&p));
        } else {
            out.push(p);
        }
    }
    out
}

async fn reservations(app: &TestApp) -> i64 {
    let mut conn = app.db.store.conn().await.unwrap();
    sqlx::query_scalar("SELECT COUNT(*) FROM file_uploads")
        .fetch_one(&mut *conn)
        .await
        .unwrap()
}

async fn stored_content(app: &TestApp, id: &str) -> Content {
    let mut conn = app.db.store.conn().await.unwrap();
    documents::content(&mut conn, app.company_id, id)
        .await
        .unwrap()
}

async fn documents_and_recordings_round_trip_through_the_local_store(backend: TestBackend) {
    let app = TestApp::start(backend).await;
    let case = new_case(&app).await;

    // A raw body.
    let bytes = content(300 * 1024, 7);
    let (status, doc) = upload(
        &app,
        &format!("/api/v1/cases/{case}/documents"),
        "application/pdf",
        "report.pdf",
        bytes.clone(),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{doc}");
    // A name outside ASCII keeps a valid header: an ASCII fallback and the UTF-8 name.
    let form = reqwest::multipart::Form::new().part(
        "file",
        reqwest::multipart::Part::bytes(b"x".to_vec())
            .file_name("déclaration médicale.txt")
            .mime_str("text/plain")
            .unwrap(),
    );
    let r = app
        .http
        .post(app.url(&format!("/api/v1/cases/{case}/documents")))
        .bearer_auth(&app.api_key)
        .multipart(form)
        .send()
        .await
        .unwrap();
    let status = r.status();
    let named: Value = r.json().await.unwrap();
    assert_eq!(status, StatusCode::CREATED, "{named}");
    let (status, headers, _) = download(&app, &app.api_key, named["id"].as_str().unwrap()).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        headers["content-disposition"],
        "attachment; filename=\"d_claration m_dicale.txt\"; \
         filename*=UTF-8''d%C3%A9claration%20m%C3%A9dicale%2Etxt"
    );
    let id = doc["id"].as_str().unwrap().to_owned();
    assert_eq!(doc["size"], bytes.len());
    assert_eq!(doc["sha256"], sha256_hex(&bytes));

    let (status, headers, got) = download(&app, &app.api_key, &id).await;
    assert_eq!(status, StatusCode::OK);
    assert!(got == bytes, "the downloaded bytes differ from the upload");
    assert_eq!(headers["content-type"], "application/pdf");
    assert_eq!(headers["content-length"], bytes.len().to_string().as_str());
    assert_eq!(
        headers["etag"],
        format!("\"{}\"", sha256_hex(&bytes)).as_str()
    );
    assert!(headers["content-disposition"]
        .to_str()
        .unwrap()
        .contains("filename=\"report.pdf\""));
    let meta = app.get(&format!("/api/v1/documents/{id}")).await;
    assert_eq!(meta.status, StatusCode::OK, "{}", meta.text);
    assert_eq!(meta.body["file_name"], "report.pdf");

    // The bytes are in the object store's folder, not in the database.
    let object = app
        .data_dir
        .join("files/documents")
        .join(app.company_id.to_string())
        .join(&id);
    assert_eq!(std::fs::read(&object).unwrap(), bytes);
    assert_eq!(
        stored_content(&app, &id).await,
        Content::Object(format!("documents/{}/{id}", app.company_id))
    );
    assert_eq!(
        reservations(&app).await,
        0,
        "the upload's reservation is claimed"
    );

    // A multipart form.
    let form_bytes = content(20_000, 9);
    let form = reqwest::multipart::Form::new().part(
        "file",
        reqwest::multipart::Part::bytes(form_bytes.clone())
            .file_name("scan.png")
            .mime_str("image/png")
            .unwrap(),
    );
    let r = app
        .http
        .post(app.url(&format!("/api/v1/cases/{case}/documents")))
        .bearer_auth(&app.api_key)
        .multipart(form)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    let form_doc: Value = r.json().await.unwrap();
    let (_, headers, got) = download(&app, &app.api_key, form_doc["id"].as_str().unwrap()).await;
    assert!(got == form_bytes);
    assert_eq!(headers["content-type"], "image/png");

    // A recording: probed from the spooled file, stored as sent.
    let call = app
        .create(
            "/api/v1/calls",
            json!({"direction": "inbound", "case_id": case}),
        )
        .await;
    let audio = wav(3);
    let (status, rec) = upload(
        &app,
        &format!("/api/v1/calls/{call}/recording"),
        "audio/wav",
        "call.wav",
        audio.clone(),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{rec}");
    assert_eq!(rec["format"], "WAV");
    assert_eq!(rec["duration_seconds"], 3.0);
    let (_, _, got) = download(&app, &app.api_key, rec["id"].as_str().unwrap()).await;
    assert!(got == audio);
    assert!(
        files_under(&app.data_dir.join("spool")).is_empty(),
        "spooled uploads are removed"
    );
}
casebridge_testkit::backend_test!(documents_and_recordings_round_trip_through_the_local_store);

async fn a_refused_upload_leaves_nothing_behind(backend: TestBackend) {
    let app = TestApp::start(backend).await;
    let case = new_case(&app).await;
    let call = app
        .create("/api/v1/calls", json!({"direction": "inbound"}))
        .await;

    let (status, body) = upload(
        &app,
        &format!("/api/v1/cases/{case}/documents"),
        "application/pdf",
        "empty.pdf",
        Vec::new(),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(body["error"]["details"][0]["field"], "file", "{body}");

    let (status, body) = upload(
        &app,
        &format!("/api/v1/calls/{call}/recording"),
        "audio/wav",
        "notes.wav",
        b"these are not audio bytes at all".repeat(100),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");

    let missing = "0190a0a0-0000-7000-8000-000000000000";
    let (status, _) = upload(
        &app,
        &format!("/api/v1/cases/{missing}/documents"),
        "application/pdf",
        "a.pdf",
        content(1000, 1),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = upload(
        &app,
        &format!("/api/v1/calls/{missing}/recording"),
        "audio/wav",
        "a.wav",
        wav(1),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    assert!(files_under(&app.data_dir.join("files")).is_empty());
    assert!(files_under(&app.data_dir.join("spool")).is_empty());
    assert_eq!(reservations(&app).await, 0);
    let docs = app.get(&format!("/api/v1/cases/{case}/documents")).await;
    assert_eq!(docs.body["data"], json!([]));
}
casebridge_testkit::backend_test!(a_refused_upload_leaves_nothing_behind);

async fn a_file_is_private_to_its_company(backend: TestBackend) {
    let app = TestApp::start(backend).await;
    let case = new_case(&app).await;
    let (_, doc) = upload(
        &app,
        &format!("/api/v1/cases/{case}/documents"),
        "text/plain",
        "secret.txt",
        b"privileged".to_vec(),
    )
    .await;
    let id = doc["id"].as_str().unwrap();
    let (_, other_key) = app.new_company("Other Firm").await;
    let (status, _, body) = download(&app, &other_key, id).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(!String::from_utf8_lossy(&body).contains("privileged"));
    let r = app
        .call_as(
            &other_key,
            reqwest::Method::GET,
            &format!("/api/v1/documents/{id}"),
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    let (status, _, _) = download(&app, &app.api_key, "not-a-uuid").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}
casebridge_testkit::backend_test!(a_file_is_private_to_its_company);

/// What a process killed between writing an upload's object and committing its row leaves: a
/// reservation and an object no row names. The sweep removes both once they are older than
/// the grace period, and leaves committed files and uploads in progress alone.
async fn an_upload_whose_row_never_committed_is_swept(backend: TestBackend) {
    let app = TestApp::start(backend).await;
    let case = new_case(&app).await;
    let (_, doc) = upload(
        &app,
        &format!("/api/v1/cases/{case}/documents"),
        "text/plain",
        "kept.txt",
        b"kept".to_vec(),
    )
    .await;
    let kept = doc["id"].as_str().unwrap().to_owned();

    let orphan = ObjectKey::document(app.company_id, documents::new_id());
    {
        let mut conn = app.db.store.conn().await.unwrap();
        documents::reserve_upload(&mut conn, app.company_id, orphan.as_str(), app.clock.now())
            .await
            .unwrap();
    }
    app.files
        .put_bytes(&orphan, b"orphan".to_vec().into())
        .await
        .unwrap();
    app.advance(Duration::from_secs(2 * 3600));
    // Started just now: still in progress, not an orphan yet.
    let in_progress = ObjectKey::document(app.company_id, documents::new_id());
    {
        let mut conn = app.db.store.conn().await.unwrap();
        documents::reserve_upload(
            &mut conn,
            app.company_id,
            in_progress.as_str(),
            app.clock.now(),
        )
        .await
        .unwrap();
    }
    app.files
        .put_bytes(&in_progress, b"uploading".to_vec().into())
        .await
        .unwrap();

    let swept = casebridge_app::files::sweep(&app.services, casebridge_app::files::ORPHAN_AFTER)
        .await
        .unwrap();
    assert_eq!(
        swept,
        casebridge_app::files::Swept {
            deleted: 1,
            failed: 0
        }
    );
    assert!(!app.files.exists(&orphan).await.unwrap());
    assert!(app.files.exists(&in_progress).await.unwrap());
    assert_eq!(reservations(&app).await, 1);
    let (status, _, body) = download(&app, &app.api_key, &kept).await;
    assert_eq!((status, body), (StatusCode::OK, b"kept".to_vec()));

    // Nothing more to do.
    let again = casebridge_app::files::sweep(&app.services, casebridge_app::files::ORPHAN_AFTER)
        .await
        .unwrap();
    assert_eq!(again.deleted, 0);
}
casebridge_testkit::backend_test!(an_upload_whose_row_never_committed_is_swept);

/// Inserts a file as databases before the object store held them: bytes in the row.
async fn inline_document(app: &TestApp, case: &str, bytes: &[u8]) -> String {
    let id = documents::new_id();
    let mut conn = app.db.store.conn().await.unwrap();
    sqlx::query(
        "INSERT INTO documents (id, company_id, case_id, call_id, kind, file_name, content_type,
                                size, sha256, bytes, created_at)
         VALUES ($1, $2, $3, NULL, 'document', 'old.bin', 'application/octet-stream', $4, $5, $6, $7)",
    )
    .bind(&id)
    .bind(app.company_id.to_string())
    .bind(case)
    .bind(bytes.len() as i64)
    .bind(sha256_hex(bytes))
    .bind(bytes.to_vec())
    .bind(app.clock.now().as_millisecond())
    .execute(&mut *conn)
    .await
    .unwrap();
    id
}

async fn files_in_the_database_move_to_the_object_store(backend: TestBackend) {
    let app = TestApp::start(backend).await;
    let case = new_case(&app).await;
    let originals: Vec<Vec<u8>> = (0..3).map(|i| content(10_000 + i * 7, i as u8)).collect();
    let mut ids = Vec::new();
    for bytes in &originals {
        ids.push(inline_document(&app, &case, bytes).await);
    }
    // Served from the row before the move.
    let (status, _, got) = download(&app, &app.api_key, &ids[0]).await;
    assert_eq!(status, StatusCode::OK);
    assert!(got == originals[0]);

    // A move interrupted after writing the first object, before pointing its row at it.
    app.files
        .put_bytes(
            &ObjectKey::document(app.company_id, &ids[0]),
            originals[0].clone().into(),
        )
        .await
        .unwrap();
    let mut seen = Vec::new();
    let moved = casebridge_app::files::migrate_inline(&app.services, |m| seen.push(*m))
        .await
        .unwrap();
    assert_eq!((moved.moved, moved.total), (3, 3));
    assert_eq!(
        moved.bytes,
        originals.iter().map(|b| b.len() as u64).sum::<u64>()
    );
    assert_eq!(
        seen.first().map(|m| m.moved),
        Some(0),
        "progress starts at 0"
    );
    assert_eq!(seen.len(), 4, "progress after each file");
    for (id, bytes) in ids.iter().zip(&originals) {
        assert!(matches!(stored_content(&app, id).await, Content::Object(_)));
        let (status, _, got) = download(&app, &app.api_key, id).await;
        assert_eq!(status, StatusCode::OK);
        assert!(&got == bytes, "file {id} changed in the move");
    }
    let again = casebridge_app::files::migrate_inline(&app.services, |_| {})
        .await
        .unwrap();
    assert_eq!((again.moved, again.total), (0, 0));
}
casebridge_testkit::backend_test!(files_in_the_database_move_to_the_object_store);

async fn documents_round_trip_through_s3(backend: TestBackend) {
    let s3 = S3Server::start().await;
    s3.create_bucket("firm-files").await;
    let app = TestApp::start_with(
        backend,
        TestOptions {
            object_store: Some(s3.settings("firm-files", "casebridge")),
            ..TestOptions::default()
        },
    )
    .await;
    let case = new_case(&app).await;
    // Larger than a part: goes up as a multipart upload.
    let big = content(casebridge_files::PART_SIZE * 2 + 12_345, 3);
    let small = content(5_000, 4);
    let mut ids = Vec::new();
    for (name, bytes) in [("big.bin", &big), ("small.bin", &small)] {
        let (status, doc) = upload(
            &app,
            &format!("/api/v1/cases/{case}/documents"),
            "application/octet-stream",
            name,
            bytes.clone(),
        )
        .await;
        assert_eq!(status, StatusCode::CREATED, "{doc}");
        ids.push(doc["id"].as_str().unwrap().to_owned());
    }
    for (id, bytes) in ids.iter().zip([&big, &small]) {
        let (status, _, got) = download(&app, &app.api_key, id).await;
        assert_eq!(status, StatusCode::OK);
        assert!(&got == bytes, "the bytes read back from S3 differ");
    }
    let mut keys = s3.keys("firm-files").await;
    keys.sort();
    let mut expected: Vec<String> = ids
        .iter()
        .map(|id| format!("casebridge/documents/{}/{id}", app.company_id))
        .collect();
    expected.sort();
    assert_eq!(keys, expected);
    assert!(
        files_under(&app.data_dir.join("files")).is_empty(),
        "nothing on local disk"
    );

    // An orphan in S3 is swept there.
    let orphan = ObjectKey::document(app.company_id, documents::new_id());
    {
        let mut conn = app.db.store.conn().await.unwrap();
        documents::reserve_upload(&mut conn, app.company_id, orphan.as_str(), app.clock.now())
            .await
            .unwrap();
    }
    app.files
        .put_bytes(&orphan, b"orphan".to_vec().into())
        .await
        .unwrap();
    assert_eq!(s3.keys("firm-files").await.len(), 3);
    app.advance(Duration::from_secs(2 * 3600));
    let swept = casebridge_app::files::sweep(&app.services, casebridge_app::files::ORPHAN_AFTER)
        .await
        .unwrap();
    assert_eq!(swept.deleted, 1);
    assert_eq!(s3.keys("firm-files").await.len(), 2);
}
casebridge_testkit::backend_test!(documents_round_trip_through_s3);
