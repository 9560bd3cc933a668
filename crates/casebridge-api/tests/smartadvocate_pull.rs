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
    Operation, RunningSim, SimCase, SimContact, SmartAdvocateSim, DEMO_PASSWORD, DEMO_USERNAME,
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
         unchanged, 0 not linked) and 1 notes (1 new, 0 updated, 0 unchanged)"
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
         unchanged, 0 not linked) and 1 notes (0 new, 0 updated, 1 unchanged)"
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
         unchanged, 1 not linked) and 1 notes (0 new, 1 updated, 0 unchanged)"
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
        msg.ends_with("1 notes (1 new, 0 updated, 0 unchanged)"),
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
