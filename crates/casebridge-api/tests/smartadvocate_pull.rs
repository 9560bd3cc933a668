//! SmartAdvocate pull, inbound hook and initial import (SA4) end to end against the simulator,
//! on both backends: what an admin sees through the API after a pull (cases, clients, notes,
//! the sync log's counts), no duplicates across runs, a change at the cursor's boundary, a 429
//! and an expired token mid-pull, the hook applied to the case a pull created (and refused for
//! a bad token or unknown fields), the import's progress and resume with nothing duplicated,
//! and tenant isolation.

use std::sync::Arc;
use std::time::Duration;

use casebridge_crm::smartadvocate::connection::Clients;
use casebridge_crm::smartadvocate::{import, SmartAdvocatePaths};
use casebridge_domain::clock::Clock;
use casebridge_queue::Worker;
use casebridge_sim::smartadvocate::{
    Operation, RunningSim, SimCase, SimContact, SimDocument, SmartAdvocateSim, DEMO_PASSWORD,
    DEMO_USERNAME,
};
use casebridge_testkit::{Reply, TestApp};
use jiff::Timestamp;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

const VIEW: &str = "/api/v1/integrations/smartadvocate";
/// Seeded: case 9000001 (type 1, status Intake), plaintiff contact 7001 Jane Doe.
const NUMBER: &str = "9000001";
const NUMBER2: &str = "9000002";

struct Setup {
    sa: RunningSim,
    app: TestApp,
    worker: Worker,
}

/// Connected through the API, "Enable Integration" and "Receive data" on.
async fn setup(backend: casebridge_testkit::TestBackend, sim: SmartAdvocateSim) -> Setup {
    let sa = sim.start().await;
    let app = TestApp::start(backend).await;
    connect(&app, &app.api_key, &sa).await;
    let worker = app.crm_worker(0);
    Setup { sa, app, worker }
}

async fn connect(app: &TestApp, key: &str, sa: &RunningSim) {
    let r = app
        .call_as(
            key,
            Method::PUT,
            &format!("{VIEW}/connection"),
            Some(json!({"base_url": sa.base_url, "username": DEMO_USERNAME,
                        "password": DEMO_PASSWORD})),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let r = app
        .call_as(
            key,
            Method::PUT,
            &format!("{VIEW}/settings"),
            Some(json!({"enable_integration": true, "receive": true})),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
}

impl Setup {
    /// Asks for a pull through the API and runs the `crm` queue.
    async fn pull(&self) -> Reply {
        let r = self.app.post(&format!("{VIEW}/pull"), json!({})).await;
        assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.text);
        self.drain().await;
        r
    }

    async fn drain(&self) {
        self.worker.drain().await.expect("drain");
    }

    /// The newest sync-log line's message.
    async fn last_log(&self) -> String {
        let log = self.app.get(&format!("{VIEW}/sync-log")).await;
        assert_eq!(log.status, StatusCode::OK, "{}", log.text);
        log.body["data"][0]["message"]
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }

    async fn case(&self, number: &str) -> Reply {
        self.app
            .get(&format!(
                "/api/v1/cases/by-external-ref?provider=smartadvocate&external_id={number}"
            ))
            .await
    }

    async fn notes(&self, case_id: &str) -> Vec<Value> {
        let r = self
            .app
            .get(&format!("/api/v1/cases/{case_id}/notes"))
            .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
        r.body.as_array().unwrap().clone()
    }

    async fn hook(&self, token: &str, body: Value) -> Reply {
        TestApp::reply(
            self.app
                .http
                .post(self.app.url(&format!("/hooks/smartadvocate/{token}")))
                .json(&body)
                .send()
                .await
                .unwrap(),
        )
        .await
    }

    async fn token(&self) -> String {
        self.app.get(VIEW).await.body["webhook_url"]
            .as_str()
            .unwrap()
            .rsplit('/')
            .next()
            .unwrap()
            .to_owned()
    }
}

/// Every case of the company (following the pages).
async fn all_cases(app: &TestApp, key: &str) -> Vec<Value> {
    let mut out = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            Some(c) => format!("/api/v1/cases?limit=200&cursor={c}"),
            None => "/api/v1/cases?limit=200".to_owned(),
        };
        let r = app.call_as(key, Method::GET, &path, None).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
        out.extend(r.body["data"].as_array().unwrap().iter().cloned());
        match r.body["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => return out,
        }
    }
}

fn second(t: Timestamp) -> Timestamp {
    Timestamp::from_second(t.as_second()).unwrap()
}

async fn pull_of_changed_cases_and_notes_makes_no_duplicates(
    backend: casebridge_testkit::TestBackend,
) {
    let s = setup(backend, SmartAdvocateSim::new()).await;
    // Changed in SmartAdvocate after connecting: case 9000001 signed up, a note on it.
    s.sa.sim.edit_case(NUMBER, |c| c.status_id = 2);
    let note_id =
        s.sa.sim
            .add_note(
                NUMBER,
                "Intake call",
                "<p>Client&nbsp;called <b>back</b></p>",
            )
            .unwrap();
    let r = s.pull().await;
    assert_eq!(r.body["queued"], true, "{}", r.text);
    let msg = s.last_log().await;
    assert_eq!(
        msg,
        "pulled 1 cases (1 created, 0 updated, 0 unchanged), 0 contacts (0 updated, 0 \
         unchanged, 0 not linked), 1 notes (1 new, 0 updated, 0 unchanged) and 0 documents (0 \
         new, 0 updated, 0 unchanged, 0 skipped)"
    );
    let case = s.case(NUMBER).await.expect(StatusCode::OK).body;
    assert_eq!(case["name"], "Jane Doe (9000001)");
    assert_eq!(case["custom_fields"]["smartadvocate_status"], "Signed Up");
    assert_eq!(
        case["custom_fields"]["smartadvocate_second_statuses"],
        "Dialer Status = To Dial"
    );
    let case_id = case["id"].as_str().unwrap().to_owned();
    let client_id = case["client_id"].as_str().unwrap().to_owned();
    let client = s
        .app
        .get(&format!("/api/v1/clients/{client_id}"))
        .await
        .expect(StatusCode::OK)
        .body;
    assert_eq!(
        (&client["first_name"], &client["email"]),
        (&json!("Jane"), &json!("jane@example.com"))
    );
    // The SmartAdvocate status was mapped to the platform status of the same name.
    let status = s
        .app
        .get(&format!(
            "/api/v1/case-statuses/{}",
            case["case_status_id"].as_str().unwrap()
        ))
        .await
        .expect(StatusCode::OK)
        .body;
    assert_eq!(status["name"], "Signed Up");
    let notes = s.notes(&case_id).await;
    assert_eq!(notes.len(), 1, "{notes:?}");
    assert_eq!(notes[0]["provider"], "smartadvocate");
    assert_eq!(notes[0]["crm_note_id"], note_id.to_string());
    assert_eq!(notes[0]["body"], "Client called back");
    assert_eq!(notes[0]["origin"], "crm");

    // A second pull re-reads the overlap and changes nothing.
    s.pull().await;
    assert_eq!(
        s.last_log().await,
        "pulled 1 cases (0 created, 0 updated, 1 unchanged), 0 contacts (0 updated, 0 \
         unchanged, 0 not linked), 1 notes (0 new, 0 updated, 1 unchanged) and 0 documents (0 \
         new, 0 updated, 0 unchanged, 0 skipped)"
    );
    assert_eq!(all_cases(&s.app, &s.app.api_key).await.len(), 1);
    assert_eq!(s.notes(&case_id).await.len(), 1);

    // A contact changed in SmartAdvocate updates its client even when its case did not
    // change (the case last changed an hour ago, outside the overlap); an edited note is
    // updated.
    s.sa.sim.edit_case(NUMBER, |c| {
        c.modified = Timestamp::now() - jiff::SignedDuration::from_hours(1)
    });
    s.sa.sim
        .edit_contact(7001, |c| c.phone = Some("+15559990001".into()));
    s.sa.sim
        .edit_contact(7002, |c| c.phone = Some("+15559990002".into()));
    s.sa.sim
        .edit_note(note_id, |n| n.note_text = "Client called back twice".into());
    s.pull().await;
    assert_eq!(
        s.last_log().await,
        "pulled 0 cases (0 created, 0 updated, 0 unchanged), 2 contacts (1 updated, 0 \
         unchanged, 1 not linked), 1 notes (0 new, 1 updated, 0 unchanged) and 0 documents (0 \
         new, 0 updated, 0 unchanged, 0 skipped)"
    );
    let client = s
        .app
        .get(&format!("/api/v1/clients/{client_id}"))
        .await
        .body;
    assert_eq!(client["phone"], "+15559990001");
    let notes = s.notes(&case_id).await;
    assert_eq!(notes.len(), 1);
    assert_eq!(notes[0]["body"], "Client called back twice");
    // Contact 7002 has no case here: no client was made for it.
    let r = s
        .app
        .get("/api/v1/clients/by-external-ref?provider=smartadvocate&external_id=7002")
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND, "{}", r.text);

    // The monitoring shows the last pull; a pull asked for twice queues one.
    let view = s.app.get(VIEW).await.body;
    assert!(view["sync"]["last_pull_at"].is_string(), "{view}");
    assert!(view["sync"]["last_pull_error"].is_null(), "{view}");
    let a = s.app.post(&format!("{VIEW}/pull"), json!({})).await;
    let b = s.app.post(&format!("{VIEW}/pull"), json!({})).await;
    assert_eq!(
        (a.body["queued"].clone(), b.body["queued"].clone()),
        (json!(true), json!(false))
    );
    s.drain().await;
}
casebridge_testkit::backend_test!(pull_of_changed_cases_and_notes_makes_no_duplicates);

async fn a_change_at_the_cursor_boundary_is_not_missed(backend: casebridge_testkit::TestBackend) {
    let s = setup(backend, SmartAdvocateSim::new()).await;
    s.sa.sim.edit_case(NUMBER, |_| {});
    s.pull().await;
    assert!(s.case(NUMBER).await.status == StatusCode::OK);
    // The cursor is case 9000001's change time. Case 9000002 changes in that same second, and
    // a note is committed late with a time a second before it: both after the pull read.
    let cursor = second(
        s.sa.sim
            .cases()
            .iter()
            .find(|c| c.case_number == NUMBER)
            .unwrap()
            .modified,
    );
    s.sa.sim.edit_case(NUMBER2, |c| c.modified = cursor);
    let late = s.sa.sim.add_note(NUMBER, "Late", "committed late").unwrap();
    s.sa.sim.edit_note(late, |n| {
        n.modified = cursor - jiff::SignedDuration::from_secs(1)
    });
    s.pull().await;
    let msg = s.last_log().await;
    assert!(
        msg.starts_with("pulled 2 cases (1 created, 0 updated, 1 unchanged)"),
        "{msg}"
    );
    assert!(
        msg.contains(", 1 notes (1 new, 0 updated, 0 unchanged) and 0 documents"),
        "{msg}"
    );
    s.case(NUMBER2).await.expect(StatusCode::OK);
    let case_id = s.case(NUMBER).await.body["id"].as_str().unwrap().to_owned();
    assert_eq!(s.notes(&case_id).await.len(), 1);
    // What the pull asked for: from before the cursor (the overlap), inclusive.
    let asked = s.sa.sim.requests_of(Operation::CasesByDate);
    let from = asked.last().unwrap().json.as_ref().unwrap()["modifiedFromDateTime"]
        .as_str()
        .unwrap()
        .to_owned();
    let from: Timestamp = format!("{from}Z").parse().unwrap();
    assert!(from < cursor, "{from} is not before {cursor}");
}
casebridge_testkit::backend_test!(a_change_at_the_cursor_boundary_is_not_missed);

async fn pull_goes_through_a_429_and_an_expired_token(backend: casebridge_testkit::TestBackend) {
    let s = setup(backend, SmartAdvocateSim::new()).await;
    s.pull().await; // the client has a token now
    s.sa.sim.edit_case(NUMBER, |c| c.status_id = 3);
    s.sa.sim.expire_tokens();
    s.sa.sim.rate_limit(1, 1);
    let issued = s.sa.sim.tokens_issued();
    s.pull().await;
    let log = s
        .app
        .get(&format!("{VIEW}/sync-log?outcome=error"))
        .await
        .body;
    let line = &log["data"][0];
    assert_eq!(line["error_kind"], "transient", "{log}");
    assert!(
        line["message"].as_str().unwrap().contains("rate limit")
            && line["message"].as_str().unwrap().contains("retrying"),
        "{log}"
    );
    s.case(NUMBER).await.expect(StatusCode::NOT_FOUND);
    // The retry, once its time has come, renews the expired token and pulls.
    s.app.advance(Duration::from_secs(120));
    s.drain().await;
    let case = s.case(NUMBER).await.expect(StatusCode::OK).body;
    assert_eq!(case["custom_fields"]["smartadvocate_status"], "Rejected");
    assert!(s.sa.sim.tokens_issued() > issued, "a new token was issued");
    let msg = s.last_log().await;
    assert!(msg.starts_with("pulled 1 cases (1 created"), "{msg}");
    let view = s.app.get(VIEW).await.body;
    assert!(view["sync"]["last_pull_error"].is_null(), "{view}");
}
casebridge_testkit::backend_test!(pull_goes_through_a_429_and_an_expired_token);

async fn the_hook_applies_to_the_case_a_pull_created(backend: casebridge_testkit::TestBackend) {
    let s = setup(backend, SmartAdvocateSim::new()).await;
    s.sa.sim.edit_case(NUMBER, |_| {});
    s.pull().await;
    let pulled = s.case(NUMBER).await.expect(StatusCode::OK).body;
    let token = s.token().await;
    let fields = json!({
        "caseNumber": NUMBER, "caseTypeID": "1", "caseType": "Motor Vehicle Accident",
        "caseStatusID": "2", "caseStatus": "Signed Up", "contactID": "7001",
        "firstName": "Jane", "lastName": "Doe", "email": "jane.doe@example.com",
    });
    // caseStatusID is not one of the record's field names: refused, naming it.
    let r = s.hook(&token, fields.clone()).await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.text);
    assert!(r.text.contains("caseStatusID"), "{}", r.text);
    let mut good = fields.as_object().unwrap().clone();
    good.remove("caseStatusID");
    good.remove("caseStatus");
    good.insert("Status ID".into(), json!("2"));
    good.insert("status".into(), json!("Signed Up"));
    let good = Value::Object(good);
    // A bad token is a 404 and changes nothing.
    let r = s.hook("not-the-token", good.clone()).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND, "{}", r.text);
    assert!(r.body["error"]["code"].as_str().is_some(), "{}", r.text);
    // Missing required fields are named.
    let r = s.hook(&token, json!({"caseNumber": NUMBER})).await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.text);
    assert!(r.text.contains("Case Type ID"), "{}", r.text);
    let unchanged = s.case(NUMBER).await.body;
    assert_eq!(unchanged["updated_at"], pulled["updated_at"]);

    let r = s.hook(&token, good.clone()).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.body["status"], "applied", "{}", r.text);
    assert_eq!(
        r.body["case_id"], pulled["id"],
        "the pulled case, not a new one"
    );
    assert_eq!(r.body["case_created"], false);
    let case = s.case(NUMBER).await.body;
    assert_eq!(case["custom_fields"]["smartadvocate_status"], "Signed Up");
    let client = s
        .app
        .get(&format!(
            "/api/v1/clients/{}",
            case["client_id"].as_str().unwrap()
        ))
        .await
        .body;
    assert_eq!(client["email"], "jane.doe@example.com");
    assert_eq!(all_cases(&s.app, &s.app.api_key).await.len(), 1);
    // The same content again is a duplicate of that case; form-encoded works as JSON does.
    let r = TestApp::reply(
        s.app
            .http
            .post(s.app.url(&format!("/hooks/smartadvocate/{token}")))
            .form(
                &good
                    .as_object()
                    .unwrap()
                    .iter()
                    .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_owned()))
                    .collect::<Vec<_>>(),
            )
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.body["status"], "duplicate", "{}", r.text);
    assert_eq!(r.body["case_id"], pulled["id"]);
    let log = s.app.get(&format!("{VIEW}/sync-log")).await.body;
    assert!(log.to_string().contains("case 9000001 applied"), "{log}");
    assert!(log.to_string().contains("caseStatusID"), "{log}");
}
casebridge_testkit::backend_test!(the_hook_applies_to_the_case_a_pull_created);

/// The demo tenant plus `n` cases, each with its own plaintiff.
fn many_cases(n: u64) -> SmartAdvocateSim {
    let mut b = SmartAdvocateSim::builder();
    let at = Timestamp::from_second(1_736_000_000).unwrap();
    for i in 0..n {
        let contact = 8000 + i;
        b = b
            .contact(SimContact {
                contact_id: contact,
                first_name: format!("First{i}"),
                last_name: format!("Last{i}"),
                email: Some(format!("p{i}@example.com")),
                phone: None,
                address1: None,
                city: None,
                state: None,
                zip: None,
                modified: at,
            })
            .case(SimCase {
                case_id: 2000 + i,
                case_number: format!("91{i:05}"),
                case_type_id: 1 + i % 2,
                status_id: 1,
                status_from: at,
                second_statuses: Vec::new(),
                plaintiff_contact_id: contact,
                udf_values: Default::default(),
                notes: Vec::new(),
                created: at,
                modified: at + jiff::SignedDuration::from_secs(i as i64 / 7),
            });
    }
    b.build()
}

async fn import_status(app: &TestApp, id: &str) -> Value {
    app.get(&format!("{VIEW}/import/{id}"))
        .await
        .expect(StatusCode::OK)
        .body
}

async fn the_initial_import_shows_progress_resumes_and_never_duplicates(
    backend: casebridge_testkit::TestBackend,
) {
    const EXTRA: u64 = 230;
    let s = setup(backend, many_cases(EXTRA)).await;
    let total = EXTRA + 2;
    let r = s
        .app
        .post(
            &format!("{VIEW}/import"),
            json!({"source": "smartadvocate_api"}),
        )
        .await
        .expect(StatusCode::ACCEPTED);
    let id = r.body["id"].as_str().unwrap().to_owned();
    assert_eq!(r.body["phase"], "fetching");
    assert_eq!(r.body["source"], "smartadvocate_api");

    // One batch, as a worker that dies after it would leave it.
    let clock: Arc<dyn Clock> = Arc::new(s.app.clock.clone());
    let policy = Arc::new(s.app.options.url_policy.clone());
    let clients = Clients::new(
        casebridge_webhooks::policy::safe_client(policy.clone(), Duration::from_secs(20)),
        policy,
        SmartAdvocatePaths::default(),
        s.app.keyring.clone(),
    );
    let company = s.app.company_id;
    import::run(
        &s.app.db.store,
        clock.as_ref(),
        &clients,
        company,
        id.parse().unwrap(),
        import::BATCH_ROWS,
        Some(1),
    )
    .await
    .unwrap();
    let half = import_status(&s.app, &id).await;
    assert_eq!(half["phase"], "applying", "{half}");
    assert_eq!(half["total_rows"], total);
    assert_eq!(half["processed_rows"], import::BATCH_ROWS);
    assert_eq!(half["created"], import::BATCH_ROWS);
    assert_eq!(
        all_cases(&s.app, &s.app.api_key).await.len(),
        import::BATCH_ROWS
    );

    // The queued job resumes after the committed batch.
    s.drain().await;
    let done = import_status(&s.app, &id).await;
    assert_eq!(done["status"], "done", "{done}");
    assert_eq!(
        (
            &done["processed_rows"],
            &done["created"],
            &done["unchanged"],
            &done["failed"]
        ),
        (&json!(total), &json!(total), &json!(0), &json!(0)),
        "{done}"
    );
    assert_eq!(all_cases(&s.app, &s.app.api_key).await.len() as u64, total);
    assert!(s.last_log().await.contains(&format!(
        "import of {total} cases from SmartAdvocate: {total} created, 0 updated, 0 unchanged"
    )));

    // Importing again changes nothing.
    let again = s
        .app
        .post(
            &format!("{VIEW}/import"),
            json!({"source": "smartadvocate_api"}),
        )
        .await
        .expect(StatusCode::ACCEPTED);
    s.drain().await;
    let again = import_status(&s.app, again.body["id"].as_str().unwrap()).await;
    assert_eq!(
        (&again["created"], &again["unchanged"]),
        (&json!(0), &json!(total)),
        "{again}"
    );
    assert_eq!(all_cases(&s.app, &s.app.api_key).await.len() as u64, total);
    // A case imported has its client by contact id.
    let case = s.case("9100007").await.expect(StatusCode::OK).body;
    let r = s
        .app
        .get("/api/v1/clients/by-external-ref?provider=smartadvocate&external_id=8007")
        .await
        .expect(StatusCode::OK);
    assert_eq!(case["client_id"], r.body["id"]);
}
casebridge_testkit::backend_test!(the_initial_import_shows_progress_resumes_and_never_duplicates);

async fn pulls_hooks_and_notes_stay_in_their_company(backend: casebridge_testkit::TestBackend) {
    let s = setup(backend, SmartAdvocateSim::new()).await;
    let (_, other) = s.app.new_company("Other Firm").await;
    // Not connected: nothing would be pulled, and it says why.
    let r = s
        .app
        .call_as(
            &other,
            Method::POST,
            &format!("{VIEW}/pull"),
            Some(json!({})),
        )
        .await;
    assert_eq!(r.status, StatusCode::CONFLICT, "{}", r.text);
    assert!(r.text.contains("not connected"), "{}", r.text);

    s.sa.sim.edit_case(NUMBER, |_| {});
    s.sa.sim.add_note(NUMBER, "n", "text").unwrap();
    s.pull().await;
    let case = s.case(NUMBER).await.expect(StatusCode::OK).body;
    let case_id = case["id"].as_str().unwrap();
    assert!(all_cases(&s.app, &other).await.is_empty());
    let r = s
        .app
        .call_as(
            &other,
            Method::GET,
            &format!("/api/v1/cases/{case_id}/notes"),
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND, "{}", r.text);
    let log = s
        .app
        .call_as(&other, Method::GET, &format!("{VIEW}/sync-log"), None)
        .await;
    assert!(!log.text.contains("pulled"), "{}", log.text);

    // The other company connects the same tenant: its pull makes its own records; neither
    // company's hook token opens the other's.
    let sa2 = SmartAdvocateSim::new().start().await;
    connect(&s.app, &other, &sa2).await;
    sa2.sim.edit_case(NUMBER, |_| {});
    let r = s
        .app
        .call_as(
            &other,
            Method::POST,
            &format!("{VIEW}/pull"),
            Some(json!({})),
        )
        .await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.text);
    s.drain().await;
    let theirs = all_cases(&s.app, &other).await;
    assert_eq!(theirs.len(), 1);
    assert_ne!(theirs[0]["id"], case["id"]);
    assert_eq!(all_cases(&s.app, &s.app.api_key).await.len(), 1);
    let other_view = s.app.call_as(&other, Method::GET, VIEW, None).await.body;
    assert_ne!(
        other_view["webhook_url"],
        s.app.get(VIEW).await.body["webhook_url"]
    );
}
casebridge_testkit::backend_test!(pulls_hooks_and_notes_stay_in_their_company);

// ---- documents ----

/// The start of a PDF and a 1×1 PNG: enough for their magic bytes.
const PDF: &[u8] = b"%PDF-1.7\n1 0 obj <<>> endobj\ntrailer <<>>\n%%EOF\n";
const PNG: &[u8] =
    b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR\0\0\0\x01\0\0\0\x01\x08\x06\0\0\0\x1f\x15\xc4\x89";

impl Setup {
    /// The documents of a case, as the API lists them.
    async fn documents(&self, case_id: &str) -> Vec<Value> {
        let r = self
            .app
            .get(&format!("/api/v1/cases/{case_id}/documents?limit=100"))
            .await
            .expect(StatusCode::OK);
        r.body["data"].as_array().unwrap().clone()
    }

    /// A stored document's bytes through `GET /api/v1/documents/{id}/content`.
    async fn download(&self, id: &str) -> (reqwest::header::HeaderMap, Vec<u8>) {
        let r = self
            .app
            .http
            .get(self.app.url(&format!("/api/v1/documents/{id}/content")))
            .bearer_auth(&self.app.api_key)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::OK);
        let headers = r.headers().clone();
        (headers, r.bytes().await.unwrap().to_vec())
    }

    /// Every sync-log message, newest first.
    async fn log_messages(&self) -> Vec<String> {
        let log = self
            .app
            .get(&format!("{VIEW}/sync-log?limit=100"))
            .await
            .expect(StatusCode::OK);
        log.body["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|l| l["message"].as_str().unwrap_or_default().to_owned())
            .collect()
    }

    fn add_document(&self, number: &str, name: &str, content: &[u8]) -> u64 {
        self.sa
            .sim
            .add_document(SimDocument::new(number, name, content))
            .unwrap()
    }
}

/// The documents summary at the end of the newest pull line.
fn documents_part(line: &str) -> &str {
    line.rsplit_once(" and ").map_or(line, |(_, d)| d)
}

async fn the_simulator_serves_documents_behind_its_token_checks_and_faults(
    backend: casebridge_testkit::TestBackend,
) {
    let s = setup(backend, SmartAdvocateSim::new()).await;
    let http = reqwest::Client::new();
    let api = |path: &str| format!("{}/CaseSyncAPI{path}", s.sa.base_url);
    let token = http
        .post(api("/Users/authenticate"))
        .json(&json!({"Username": DEMO_USERNAME, "Password": DEMO_PASSWORD}))
        .send()
        .await
        .unwrap()
        .json::<Value>()
        .await
        .unwrap()["token"]
        .as_str()
        .unwrap()
        .to_owned();
    let search = |body: Value, bearer: Option<&str>| {
        let mut r = http.post(api("/case/documents/byDatePaged")).json(&body);
        if let Some(t) = bearer {
            r = r.header("Authorization", t);
        }
        async move {
            let r = r.send().await.unwrap();
            let status = r.status();
            (status, r.text().await.unwrap())
        }
    };
    let bearer = format!("Bearer {token}");
    let from = json!({"modifiedFromDateTime": "2025-01-01T00:00:00"});

    // Seeding through the control: a document of a case that exists, else a 404 or a 400.
    let seed = |body: Value| {
        let r = http
            .post(format!("{}/_sim/documents", s.sa.base_url))
            .json(&body);
        async move { TestApp::reply(r.send().await.unwrap()).await }
    };
    let r = seed(json!({"caseNumber": NUMBER, "documentName": "Retainer.pdf",
                        "contentBase64": "JVBERi0xLjcK"}))
    .await
    .expect(StatusCode::CREATED);
    let first = r.body["documentID"].as_u64().unwrap();
    let r = seed(json!({"caseNumber": "1234", "documentName": "x", "contentBase64": ""})).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND, "{}", r.text);
    let r = seed(json!({"caseNumber": NUMBER, "documentName": "x", "contentBase64": "%%"})).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text);
    assert!(r.text.contains("contentBase64"), "{}", r.text);
    let empty = s.add_document(NUMBER, "Empty.txt", b"");
    let other = s.add_document(NUMBER2, "Photo", PNG);
    let r = TestApp::reply(
        http.get(format!("{}/_sim/documents", s.sa.base_url))
            .send()
            .await
            .unwrap(),
    )
    .await
    .expect(StatusCode::OK);
    assert_eq!(r.body.as_array().unwrap().len(), 3, "{}", r.text);
    assert_eq!(r.body[0]["size"], 9, "{}", r.text);

    // No token, or a token without `Bearer `: 401.
    for auth in [None, Some(token.as_str())] {
        let (status, text) = search(from.clone(), auth).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{text}");
    }
    // Each bad part of the body is a 400 naming it.
    for (body, names) in [
        (json!({}), "modifiedFromDateTime is required"),
        (
            json!({"modifiedFromDateTime": "yesterday"}),
            "modifiedFromDateTime",
        ),
        (
            json!({"modifiedFromDateTime": "2025-01-02T00:00:00",
                   "modifiedToDateTime": "2025-01-01T00:00:00"}),
            "modifiedToDateTime is before",
        ),
        (
            json!({"modifiedFromDateTime": "2025-01-01T00:00:00", "caseNumbers": NUMBER}),
            "caseNumbers",
        ),
        (
            json!({"modifiedFromDateTime": "2025-01-01T00:00:00", "caseNumbers": [9000001]}),
            "caseNumbers",
        ),
        (
            json!({"modifiedFromDateTime": "2025-01-01T00:00:00",
                   "pageRequest": {"currentPage": "first"}}),
            "pageRequest.currentPage",
        ),
        (
            json!({"modifiedFromDateTime": "2025-01-01T00:00:00",
                   "pageRequest": {"pageSize": 0}}),
            "pageSize must be 1 to 500",
        ),
    ] {
        let (status, text) = search(body.clone(), Some(&bearer)).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}: {text}");
        assert!(text.contains(names), "{body}: {text}");
    }

    // Pages from 0, oldest change first; `caseNumbers` narrows to those cases.
    let page = |n: u64, size: u64, cases: Value| {
        json!({"modifiedFromDateTime": "2025-01-01T00:00:00",
               "modifiedToDateTime": "2099-01-01T00:00:00", "caseNumbers": cases,
               "pageRequest": {"currentPage": n, "pageSize": size}})
    };
    let (status, text) = search(page(0, 2, json!([])), Some(&bearer)).await;
    assert_eq!(status, StatusCode::OK, "{text}");
    let body: Value = serde_json::from_str(&text).unwrap();
    let ids: Vec<u64> = body["documents"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["documentID"].as_u64().unwrap())
        .collect();
    assert_eq!(ids, vec![first, empty], "{text}");
    assert_eq!(body["pageRequest"]["totalRecords"], 3, "{text}");
    let d = &body["documents"][0];
    assert_eq!(
        (&d["caseID"], &d["caseNumber"], &d["documentName"]),
        (&json!(1001), &json!(NUMBER), &json!("Retainer.pdf")),
        "{text}"
    );
    for field in [
        "description",
        "createdDate",
        "modifiedDate",
        "categoryID",
        "categoryName",
        "subCategoryName",
        "comments",
        "caseDocumentID",
        "documentFolder",
    ] {
        assert!(d.get(field).is_some(), "{field} missing: {text}");
    }
    let (_, text) = search(page(1, 2, json!([])), Some(&bearer)).await;
    let body: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(body["documents"].as_array().unwrap().len(), 1, "{text}");
    assert_eq!(body["documents"][0]["documentID"], other, "{text}");
    let (_, text) = search(page(0, 100, json!([NUMBER2])), Some(&bearer)).await;
    let body: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(body["documents"].as_array().unwrap().len(), 1, "{text}");
    assert_eq!(body["documents"][0]["caseNumber"], NUMBER2, "{text}");

    // Content: the bytes as octet-stream (zero bytes for the empty one), 404 for an unknown id.
    let content = |id: u64, auth: Option<String>| {
        let mut r = http.get(api(&format!("/case/document/{id}/content")));
        if let Some(a) = auth {
            r = r.header("Authorization", a);
        }
        async move { r.send().await.unwrap() }
    };
    let r = content(other, Some(bearer.clone())).await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.headers()["content-type"], "application/octet-stream");
    assert_eq!(r.bytes().await.unwrap().as_ref(), PNG);
    let r = content(empty, Some(bearer.clone())).await;
    assert_eq!(r.status(), StatusCode::OK);
    assert!(r.bytes().await.unwrap().is_empty());
    let r = content(999, Some(bearer.clone())).await;
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    assert!(r.text().await.unwrap().contains("Document not found"));
    assert_eq!(
        content(other, None).await.status(),
        StatusCode::UNAUTHORIZED
    );

    // Faults: a denied operation, an empty body (the search only), a 429 for one operation,
    // slow answers.
    s.sa.sim.deny(Operation::DocumentContent);
    let r = content(other, Some(bearer.clone())).await;
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    assert!(r
        .text()
        .await
        .unwrap()
        .contains("permission to read document content"));
    let (status, _) = search(from.clone(), Some(&bearer)).await;
    assert_eq!(status, StatusCode::OK, "only content is denied");
    s.sa.sim.clear_faults();
    s.sa.sim.empty_bodies(1);
    let r = content(other, Some(bearer.clone())).await;
    assert_eq!(
        r.bytes().await.unwrap().as_ref(),
        PNG,
        "content keeps its bytes"
    );
    let (status, text) = search(from.clone(), Some(&bearer)).await;
    assert_eq!((status, text.as_str()), (StatusCode::OK, ""));
    s.sa.sim.rate_limit_on(Operation::DocumentContent, 7, 1);
    let (status, _) = search(from.clone(), Some(&bearer)).await;
    assert_eq!(status, StatusCode::OK, "the search is not limited");
    let r = content(other, Some(bearer.clone())).await;
    assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(r.headers()["retry-after"], "7");
    assert_eq!(
        content(other, Some(bearer.clone())).await.status(),
        StatusCode::OK
    );
    s.sa.sim.slow(Duration::from_millis(300));
    let started = std::time::Instant::now();
    assert_eq!(
        content(other, Some(bearer.clone())).await.status(),
        StatusCode::OK
    );
    assert!(started.elapsed() >= Duration::from_millis(300));
    s.sa.sim.clear_faults();

    // Every request was logged with its operation and answer.
    let statuses = |op| {
        s.sa.sim
            .requests_of(op)
            .iter()
            .map(|r| r.status)
            .collect::<Vec<_>>()
    };
    assert_eq!(
        statuses(Operation::DocumentContent),
        vec![200, 200, 404, 401, 403, 200, 429, 200, 200]
    );
    assert_eq!(statuses(Operation::DocumentsByDate).len(), 15);

    // And casebridge, connected to it, pulls the seeded document into its case.
    s.sa.sim.edit_case(NUMBER, |_| {});
    s.pull().await;
    let case_id = s.case(NUMBER).await.expect(StatusCode::OK).body["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let docs = s.documents(&case_id).await;
    assert_eq!(docs.len(), 1, "{docs:?}");
    assert_eq!(docs[0]["file_name"], "Retainer.pdf");
    assert_eq!(
        s.download(docs[0]["id"].as_str().unwrap()).await.1,
        b"%PDF-1.7\n"
    );
}
casebridge_testkit::backend_test!(
    the_simulator_serves_documents_behind_its_token_checks_and_faults
);

async fn pulled_documents_land_in_their_case_with_their_bytes_once(
    backend: casebridge_testkit::TestBackend,
) {
    let s = setup(backend, SmartAdvocateSim::new()).await;
    s.sa.sim.edit_case(NUMBER, |_| {});
    let retainer = s.add_document(NUMBER, "Retainer.pdf", PDF);
    let photo = s.add_document(NUMBER, "Photo of the scene", PNG);
    // Case 9000002 last changed before the connection: casebridge does not have it.
    let elsewhere = s.add_document(NUMBER2, "Police report.pdf", PDF);
    let empty = s.add_document(NUMBER, "Empty.txt", b"");
    s.pull().await;
    let line = s.last_log().await;
    assert_eq!(
        documents_part(&line),
        "4 documents (2 new, 0 updated, 0 unchanged, 2 skipped)",
        "{line}"
    );
    let case_id = s.case(NUMBER).await.expect(StatusCode::OK).body["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let docs = s.documents(&case_id).await;
    let names: Vec<&str> = docs
        .iter()
        .map(|d| d["file_name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        vec!["Retainer.pdf", "Photo of the scene.png"],
        "{docs:?}"
    );
    for (doc, bytes, content_type) in [
        (&docs[0], PDF, "application/pdf"),
        (&docs[1], PNG, "image/png"),
    ] {
        assert_eq!(doc["content_type"], content_type, "{doc}");
        assert_eq!(doc["size"], bytes.len(), "{doc}");
        assert_eq!(doc["case_id"], json!(case_id));
        let (headers, got) = s.download(doc["id"].as_str().unwrap()).await;
        assert_eq!(got, bytes, "{doc}");
        assert_eq!(headers["content-type"], content_type);
    }
    let log = s.log_messages().await;
    let says = |needle: &str| log.iter().filter(|m| m.contains(needle)).count();
    assert_eq!(
        says(&format!(
            "document {elsewhere} (Police report.pdf) of case {NUMBER2} skipped: casebridge \
             has no case {NUMBER2}"
        )),
        1,
        "{log:?}"
    );
    assert_eq!(
        says(&format!(
            "document {empty} (Empty.txt) of case {NUMBER} skipped: it is empty (0 bytes)"
        )),
        1,
        "{log:?}"
    );

    // Again: read within the overlap, nothing stored twice, no content read, no line repeated.
    let reads = s.sa.sim.requests_of(Operation::DocumentContent).len();
    s.pull().await;
    let line = s.last_log().await;
    assert_eq!(
        documents_part(&line),
        "4 documents (0 new, 0 updated, 2 unchanged, 2 skipped)",
        "{line}"
    );
    assert_eq!(
        s.sa.sim.requests_of(Operation::DocumentContent).len(),
        reads
    );
    assert_eq!(s.documents(&case_id).await.len(), 2);
    let log = s.log_messages().await;
    assert_eq!(
        log.iter()
            .filter(|m| m.contains("skipped: casebridge has no case"))
            .count(),
        1,
        "{log:?}"
    );

    // Changed in SmartAdvocate (a second later, as SmartAdvocate writes times to the second):
    // the same bytes stay one unchanged document; new bytes and a new name replace the file of
    // the same platform document.
    let later = |d: &mut SimDocument| d.modified += jiff::SignedDuration::from_secs(1);
    s.sa.sim.edit_document(retainer, later);
    let replaced = b"%PDF-1.7\nsigned version\n%%EOF\n";
    s.sa.sim.edit_document(photo, |d| {
        later(d);
        d.document_name = "Scene.pdf".into();
        d.content = replaced.to_vec();
    });
    s.pull().await;
    let line = s.last_log().await;
    assert!(
        documents_part(&line).starts_with("4 documents (0 new, 1 updated, 1 unchanged, 2 skipped"),
        "{line}"
    );
    let after = s.documents(&case_id).await;
    assert_eq!(after.len(), 2, "{after:?}");
    assert_eq!(after[1]["id"], docs[1]["id"], "the same document");
    assert_eq!(after[1]["file_name"], "Scene.pdf");
    assert_eq!(after[1]["content_type"], "application/pdf");
    assert_eq!(
        s.download(after[1]["id"].as_str().unwrap()).await.1,
        replaced
    );
    assert_eq!(after[0]["sha256"], docs[0]["sha256"]);
    // The replaced file's object is gone, and no reservation is left behind.
    let objects = std::fs::read_dir(
        s.app
            .data_dir
            .join("files/documents")
            .join(s.app.company_id.to_string()),
    )
    .unwrap()
    .count();
    assert_eq!(objects, 2, "one object per document");
    let mut conn = s.app.db.store.conn().await.unwrap();
    let reserved: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM file_uploads")
        .fetch_one(&mut *conn)
        .await
        .unwrap();
    assert_eq!(reserved, 0);
    drop(conn);

    // The case arrives: its document, read again within the overlap, is stored in it.
    s.sa.sim.edit_case(NUMBER2, |_| {});
    s.pull().await;
    let line = s.last_log().await;
    assert!(documents_part(&line).contains("1 new"), "{line}");
    let case2 = s.case(NUMBER2).await.expect(StatusCode::OK).body["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let docs2 = s.documents(&case2).await;
    assert_eq!(docs2.len(), 1, "{docs2:?}");
    assert_eq!(docs2[0]["file_name"], "Police report.pdf");
    assert_eq!(s.download(docs2[0]["id"].as_str().unwrap()).await.1, PDF);
    assert_eq!(s.documents(&case_id).await.len(), 2);

    // "Receive data" off: no pull, and SmartAdvocate's documents are not read.
    let searches = s.sa.sim.requests_of(Operation::DocumentsByDate).len();
    s.app
        .call(
            Method::PUT,
            &format!("{VIEW}/settings"),
            Some(json!({"receive": false})),
        )
        .await
        .expect(StatusCode::OK);
    let r = s.app.post(&format!("{VIEW}/pull"), json!({})).await;
    assert_eq!(r.status, StatusCode::CONFLICT, "{}", r.text);
    s.drain().await;
    assert_eq!(
        s.sa.sim.requests_of(Operation::DocumentsByDate).len(),
        searches
    );
}
casebridge_testkit::backend_test!(pulled_documents_land_in_their_case_with_their_bytes_once);

async fn a_content_fault_is_retried_and_no_document_is_lost(
    backend: casebridge_testkit::TestBackend,
) {
    let s = setup(backend, SmartAdvocateSim::new()).await;
    s.sa.sim.edit_case(NUMBER, |_| {});
    s.add_document(NUMBER, "First.pdf", PDF);
    s.pull().await;
    let case_id = s.case(NUMBER).await.expect(StatusCode::OK).body["id"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(s.documents(&case_id).await.len(), 1);

    // A 429 on the next content read: the pull stops there and is retried after Retry-After.
    s.add_document(NUMBER, "Second.pdf", PDF);
    s.add_document(NUMBER, "Third.png", PNG);
    s.sa.sim.rate_limit_on(Operation::DocumentContent, 60, 1);
    s.pull().await;
    let errors = s
        .app
        .get(&format!("{VIEW}/sync-log?outcome=error"))
        .await
        .expect(StatusCode::OK)
        .body;
    let line = errors["data"][0]["message"].as_str().unwrap();
    assert!(
        line.contains("rate limit") && line.contains("retrying"),
        "{errors}"
    );
    assert_eq!(errors["data"][0]["error_kind"], "transient");
    assert_eq!(s.documents(&case_id).await.len(), 1);
    // Not before its Retry-After.
    s.app.advance(Duration::from_secs(30));
    s.drain().await;
    assert_eq!(s.documents(&case_id).await.len(), 1);
    s.app.advance(Duration::from_secs(60));
    s.drain().await;
    let line = s.last_log().await;
    assert!(
        documents_part(&line).starts_with("3 documents (2 new, 0 updated, 1 unchanged, 0 skipped"),
        "{line}"
    );
    let names: Vec<String> = s
        .documents(&case_id)
        .await
        .iter()
        .map(|d| d["file_name"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(names, vec!["First.pdf", "Second.pdf", "Third.png"]);

    // Content denied: documents stop for this pull (named in its line), the rest of the pull
    // and the connection are untouched, and the next pull reads it.
    s.sa.sim.deny(Operation::DocumentContent);
    s.add_document(NUMBER, "Fourth.pdf", PDF);
    s.sa.sim.add_note(NUMBER, "still", "pulled").unwrap();
    s.pull().await;
    let line = s.last_log().await;
    assert!(
        line.contains("documents stopped: the API user lacks permission for read document content"),
        "{line}"
    );
    assert!(
        line.contains("(1 new, 0 updated"),
        "the note was pulled: {line}"
    );
    assert_eq!(s.documents(&case_id).await.len(), 3);
    let view = s.app.get(VIEW).await.expect(StatusCode::OK).body;
    assert!(view["config_error"].is_null(), "{view}");
    s.sa.sim.clear_faults();
    s.pull().await;
    let line = s.last_log().await;
    assert!(documents_part(&line).contains("1 new"), "{line}");
    let docs = s.documents(&case_id).await;
    assert_eq!(docs.len(), 4, "{docs:?}");
    assert_eq!(docs[3]["file_name"], "Fourth.pdf");
    assert_eq!(s.download(docs[3]["id"].as_str().unwrap()).await.1, PDF);
}
casebridge_testkit::backend_test!(a_content_fault_is_retried_and_no_document_is_lost);

async fn view(app: &TestApp) -> Value {
    let r = app.get(VIEW).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    r.body
}

/// The setup view's checklist and health timestamps, as an admin setting SmartAdvocate up sees
/// them: each item and time appears when (and only when) the step it names has happened, at the
/// time it happened.
async fn the_setup_checklist_and_health_times_follow_each_step(
    backend: casebridge_testkit::TestBackend,
) {
    let sa = SmartAdvocateSim::new().start().await;
    let app = TestApp::start(backend).await;
    let worker = app.crm_worker(0);
    let now = |app: &TestApp| format!("{:.3}", app.clock.now());
    let checklist = |v: &Value| -> [bool; 4] {
        let c = &v["checklist"];
        [
            c["connected"].as_bool().unwrap(),
            c["first_webhook_received"].as_bool().unwrap(),
            c["case_types_linked"].as_bool().unwrap(),
            c["sync_enabled"].as_bool().unwrap(),
        ]
    };
    let health = |v: &Value, k: &str| v["health"][k].as_str().map(str::to_owned);

    // Nothing done: every item open, no time shown.
    let v = view(&app).await;
    assert_eq!(checklist(&v), [false; 4], "{v}");
    for k in [
        "last_integration_sync_at",
        "last_status_pull_at",
        "last_status_push_at",
        "last_webhook_at",
        "catalog_refreshed_at",
    ] {
        assert!(v["health"][k].is_null(), "{k}: {v}");
    }

    // Connected and switched on (receiving): two items done; no sync has happened yet.
    connect(&app, &app.api_key, &sa).await;
    let v = view(&app).await;
    assert_eq!(checklist(&v), [true, false, false, true], "{v}");
    assert_eq!(health(&v, "last_integration_sync_at"), None, "{v}");
    assert_eq!(health(&v, "last_webhook_at"), None, "{v}");

    // The catalog refreshed a minute later: its time is that minute.
    app.advance(Duration::from_secs(60));
    let r = app.post(&format!("{VIEW}/fields/refresh"), json!({})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let refreshed = now(&app);
    let v = view(&app).await;
    assert_eq!(health(&v, "catalog_refreshed_at"), Some(refreshed.clone()));

    // A pull brings case 9000001 (SmartAdvocate type 1): the sync and status pull times move,
    // and type 1 is linked to a platform case type as it arrives, so "case types linked" is
    // done.
    app.advance(Duration::from_secs(60));
    sa.sim.edit_case(NUMBER, |_| {});
    let r = app.post(&format!("{VIEW}/pull"), json!({})).await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.text);
    worker.drain().await.unwrap();
    let pulled_at = now(&app);
    let v = view(&app).await;
    assert_eq!(
        health(&v, "last_status_pull_at"),
        Some(pulled_at.clone()),
        "{v}"
    );
    assert_eq!(health(&v, "last_integration_sync_at"), Some(pulled_at));
    assert_eq!(
        health(&v, "last_webhook_at"),
        None,
        "a pull is not a webhook"
    );
    assert_eq!(health(&v, "last_status_push_at"), None);
    assert_eq!(checklist(&v), [true, false, true, true], "{v}");
    let links = app.get(&format!("{VIEW}/case-type-links")).await;
    assert_eq!(links.status, StatusCode::OK, "{}", links.text);
    assert!(
        links.text.contains(r#""crm_case_type_id":"1""#),
        "{}",
        links.text
    );

    // SmartAdvocate calls the hook: "first webhook received" is done, and the webhook, sync
    // and status pull times are the hook's.
    app.advance(Duration::from_secs(60));
    let token = app.get(VIEW).await.body["webhook_url"]
        .as_str()
        .unwrap()
        .rsplit('/')
        .next()
        .unwrap()
        .to_owned();
    let r = TestApp::reply(
        app.http
            .post(app.url(&format!("/hooks/smartadvocate/{token}")))
            .json(&json!({
                "caseNumber": NUMBER, "caseTypeID": "1", "caseType": "Motor Vehicle Accident",
                "Status ID": "2", "status": "Signed Up", "contactID": "7001",
                "firstName": "Jane", "lastName": "Doe", "email": "jane@example.com",
            }))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let hooked_at = now(&app);
    let v = view(&app).await;
    assert_eq!(checklist(&v), [true; 4], "{v}");
    assert_eq!(health(&v, "last_webhook_at"), Some(hooked_at.clone()));
    assert_eq!(health(&v, "last_status_pull_at"), Some(hooked_at.clone()));
    assert_eq!(
        health(&v, "last_integration_sync_at"),
        Some(hooked_at.clone())
    );
    assert_eq!(health(&v, "catalog_refreshed_at"), Some(refreshed.clone()));

    // A status sent to SmartAdvocate a minute later: the push time is that minute; the
    // webhook's time stays.
    app.advance(Duration::from_secs(60));
    let signed = app
        .create("/api/v1/case-statuses", json!({"name": "Signed"}))
        .await;
    let r = app
        .call(
            Method::PUT,
            &format!("{VIEW}/status-mappings"),
            Some(json!({"mappings": [{"case_status_id": signed, "crm_status_id": "3"}]})),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let r = app
        .call(
            Method::PUT,
            &format!("{VIEW}/settings"),
            Some(json!({"send": true, "sync_statuses": true})),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let case = app
        .get("/api/v1/cases/by-external-ref?provider=smartadvocate&external_id=9000001")
        .await
        .expect(StatusCode::OK)
        .body;
    let r = app
        .patch(
            &format!("/api/v1/cases/{}", case["id"].as_str().unwrap()),
            json!({"case_status_id": signed}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    worker.drain().await.unwrap();
    let pushed_at = now(&app);
    let sa_case = sa
        .sim
        .cases()
        .into_iter()
        .find(|c| c.case_number == NUMBER)
        .unwrap();
    assert_eq!(sa_case.status_id, 3, "the status reached SmartAdvocate");
    let v = view(&app).await;
    assert_eq!(
        health(&v, "last_status_push_at"),
        Some(pushed_at.clone()),
        "{v}"
    );
    assert_eq!(health(&v, "last_integration_sync_at"), Some(pushed_at));
    assert_eq!(health(&v, "last_webhook_at"), Some(hooked_at));

    // Switched off: "sync enabled" opens again; the times stay as history.
    let r = app
        .call(
            Method::PUT,
            &format!("{VIEW}/settings"),
            Some(json!({"enable_integration": false})),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let v = view(&app).await;
    assert_eq!(checklist(&v), [true, true, true, false], "{v}");
    assert_eq!(health(&v, "catalog_refreshed_at"), Some(refreshed));
}
casebridge_testkit::backend_test!(the_setup_checklist_and_health_times_follow_each_step);

/// The scheduled pull on the manual clock: a receiving, connected company is pulled when it
/// never was and then once per interval, never twice at once; a company with "Receive data"
/// off is never pulled; the loop does the same on its own.
async fn the_scheduled_pull_runs_once_per_interval_for_receiving_companies_only(
    backend: casebridge_testkit::TestBackend,
) {
    use casebridge_crm::smartadvocate::pull::SCHEDULE;
    let hour = Duration::from_secs(3600);
    let s = setup(backend, SmartAdvocateSim::new()).await;
    // A second company on the same SmartAdvocate, connected with "Receive data" off.
    let (_, off_key) = s.app.new_company("Not receiving").await;
    connect(&s.app, &off_key, &s.sa).await;
    let r = s
        .app
        .call_as(
            &off_key,
            Method::PUT,
            &format!("{VIEW}/settings"),
            Some(json!({"receive": false})),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let schedule = || SCHEDULE.schedule_due(&s.app.db.store, &s.app.clock, hour);

    // Never pulled: due now, for the receiving company only; asking again adds nothing.
    s.sa.sim.edit_case(NUMBER, |_| {});
    assert_eq!(schedule().await.unwrap(), [s.app.company_id]);
    assert!(
        schedule().await.unwrap().is_empty(),
        "no second pull waiting"
    );
    s.drain().await;
    assert_eq!(s.case(NUMBER).await.status, StatusCode::OK);
    let pulled_at = format!("{:.3}", s.app.clock.now());
    let view = s.app.get(VIEW).await.body;
    assert_eq!(view["sync"]["last_pull_at"], pulled_at.as_str(), "{view}");
    let r = s.app.call_as(&off_key, Method::GET, VIEW, None).await;
    assert!(r.body["sync"]["last_pull_at"].is_null(), "{}", r.text);
    assert!(all_cases(&s.app, &off_key).await.is_empty());

    // A change in SmartAdvocate waits for the interval: not at 59 minutes, at 60.
    s.sa.sim.edit_case(NUMBER2, |_| {});
    s.app.advance(Duration::from_secs(59 * 60));
    assert!(schedule().await.unwrap().is_empty(), "not due yet");
    s.drain().await;
    assert_eq!(s.case(NUMBER2).await.status, StatusCode::NOT_FOUND);
    s.app.advance(Duration::from_secs(60));
    assert_eq!(schedule().await.unwrap(), [s.app.company_id]);
    s.drain().await;
    assert_eq!(s.case(NUMBER2).await.status, StatusCode::OK);
    assert_eq!(all_cases(&s.app, &s.app.api_key).await.len(), 2);
    let view = s.app.get(VIEW).await.body;
    assert_eq!(
        view["sync"]["last_pull_at"],
        format!("{:.3}", s.app.clock.now()).as_str()
    );

    // The loop, an hour later, enqueues the pull by itself (and never for the other company).
    s.app.advance(hour);
    let shutdown = tokio_util::sync::CancellationToken::new();
    let task = tokio::spawn(SCHEDULE.run_loop(
        s.app.db.store.clone(),
        Arc::new(s.app.clock.clone()),
        hour,
        shutdown.clone(),
    ));
    casebridge_testkit::wait_until(
        Duration::from_secs(10),
        "the loop enqueues the due pull",
        async || {
            s.drain().await;
            let v = s.app.get(VIEW).await.body;
            v["sync"]["last_pull_at"] == format!("{:.3}", s.app.clock.now()).as_str()
        },
    )
    .await;
    shutdown.cancel();
    tokio::time::timeout(Duration::from_secs(5), task)
        .await
        .expect("stops on shutdown")
        .unwrap();
    let r = s.app.call_as(&off_key, Method::GET, VIEW, None).await;
    assert!(r.body["sync"]["last_pull_at"].is_null(), "{}", r.text);
}
casebridge_testkit::backend_test!(
    the_scheduled_pull_runs_once_per_interval_for_receiving_companies_only
);
