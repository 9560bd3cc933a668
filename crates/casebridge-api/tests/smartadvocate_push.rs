//! SmartAdvocate push (SA3, SA4) end to end: platform changes through the API, the `crm`
//! worker, and exactly what the SmartAdvocate simulator receives and holds. Both backends.

use std::time::Duration;

use casebridge_queue::Worker;
use casebridge_sim::smartadvocate::{
    Operation, RunningSim, SmartAdvocateSim, DEMO_PASSWORD, DEMO_USERNAME,
};
use casebridge_testkit::TestApp;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

const VIEW: &str = "/api/v1/integrations/smartadvocate";
/// Seeded: case 1001, number 9000001, case type 1 (Motor Vehicle Accident), status Intake,
/// "Dialer Status" = "To Dial".
const NUMBER: &str = "9000001";
const SA_CASE: u64 = 1001;
/// Seeded: case 1002, number 9000002, case type 2.
const NUMBER2: &str = "9000002";

struct Setup {
    sa: RunningSim,
    app: TestApp,
    worker: Worker,
    case_id: String,
    case2_id: String,
    /// Platform statuses mapped to: Intake (1), Signed Up (2), Dialer Status = In the Dialer
    /// (10:102), Dialer Status = Do not Dial (10:103).
    intake: String,
    signed: String,
    in_dialer: String,
    do_not_dial: String,
}

async fn put(app: &TestApp, path: &str, body: Value) -> casebridge_testkit::Reply {
    app.call(Method::PUT, &format!("{VIEW}{path}"), Some(body))
        .await
}

/// Connected, catalog loaded, "MVA" linked to SmartAdvocate type 1 with one mapped UDF, four
/// statuses mapped (two of them second statuses), two cases linked by case number, and
/// "Send mapping to SmartAdvocate" with every push toggle on unless `send` is false.
async fn setup(backend: casebridge_testkit::TestBackend, send: bool) -> Setup {
    let sa = SmartAdvocateSim::new().start().await;
    let app = TestApp::start(backend).await;
    let r = put(
        &app,
        "/connection",
        json!({"base_url": sa.base_url, "username": DEMO_USERNAME, "password": DEMO_PASSWORD}),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let r = app.post(&format!("{VIEW}/fields/refresh"), json!({})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let mva = app
        .create("/api/v1/case-types", json!({"name": "MVA"}))
        .await;
    let premises = app
        .create("/api/v1/case-types", json!({"name": "Premises"}))
        .await;
    let r = put(
        &app,
        "/case-type-links",
        json!({"links": [
        {"crm_case_type_id": "1", "case_type_id": mva},
        {"crm_case_type_id": "2", "case_type_id": premises}]}),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let r = put(
        &app,
        "/field-mappings",
        json!({"crm_case_type_id": "1", "mappings": [
        {"platform_field": "custom.accident_date", "crm_field_key": "Accident Date"}]}),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let mut ids = Vec::new();
    for name in ["Intake", "Signed", "Calling", "Stop calling"] {
        ids.push(
            app.create("/api/v1/case-statuses", json!({"name": name}))
                .await,
        );
    }
    let r = put(
        &app,
        "/status-mappings",
        json!({"mappings": [
        {"case_status_id": ids[0], "crm_status_id": "1"},
        {"case_status_id": ids[1], "crm_status_id": "2"},
        {"case_status_id": ids[2], "crm_status_id": "10:102"},
        {"case_status_id": ids[3], "crm_status_id": "10:103"}]}),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    // The cases exist before the integration is on, so creating them sends nothing.
    let case_id = app
        .create(
            "/api/v1/cases",
            json!({"name": "Jane Doe", "case_type_id": mva,
        "case_status_id": ids[0],
        "external_refs": [{"provider": "smartadvocate", "external_id": NUMBER}]}),
        )
        .await;
    let case2_id = app
        .create(
            "/api/v1/cases",
            json!({"name": "John Roe", "case_type_id": premises,
        "external_refs": [{"provider": "smartadvocate", "external_id": NUMBER2}]}),
        )
        .await;
    let r = put(
        &app,
        "/settings",
        json!({"enable_integration": true, "send": send,
        "send_mapped_fields": true, "send_messages": true, "send_call_records": true, "sync_statuses": true}),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    sa.sim.clear_requests();
    let worker = app.crm_worker(0);
    let mut ids = ids.into_iter();
    let mut next = || ids.next().unwrap();
    Setup {
        intake: next(),
        signed: next(),
        in_dialer: next(),
        do_not_dial: next(),
        sa,
        app,
        worker,
        case_id,
        case2_id,
    }
}

impl Setup {
    async fn drain(&self) {
        self.worker.drain().await.expect("drain");
    }

    async fn set_status(&self, case: &str, status: &str) {
        let r = self
            .app
            .patch(
                &format!("/api/v1/cases/{case}"),
                json!({"case_status_id": status}),
            )
            .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    }

    async fn message(&self, case: &str, body: &str) {
        let r = self
            .app
            .post(
                "/api/v1/messages",
                json!({"case_id": case, "channel": "sms",
            "direction": "outbound", "from": "+15550001000", "to": "+15551230001", "body": body}),
            )
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    }

    /// A call on the first case, ended with `end_reason`, then analysed.
    async fn call(&self, client_speaks: bool, end_reason: &str) -> String {
        let call = self
            .app
            .create(
                "/api/v1/calls",
                json!({"case_id": self.case_id,
            "direction": "outbound", "from_number": "+15550001000", "to_number": "+15551230001",
            "started_at": "2026-05-01T14:30:00Z"}),
            )
            .await;
        let mut turns = vec![json!({"speaker": "agent", "text": "Hello, this is Kayse..."})];
        if client_speaks {
            turns.push(json!({"speaker": "client", "text": "Yes, I'm listening..."}));
        }
        let r = self
            .app
            .post(
                &format!("/api/v1/calls/{call}/transcript"),
                json!({"turns": turns}),
            )
            .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
        let r = self
            .app
            .post(
                &format!("/api/v1/calls/{call}/end"),
                json!({"ended_at": "2026-05-01T14:42:05Z", "end_reason": end_reason}),
            )
            .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
        let r = self
            .app
            .post(
                &format!("/api/v1/calls/{call}/analysis"),
                json!({"summary": "Rear-ended on I-95.", "post_call_result": "Qualified"}),
            )
            .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
        call
    }

    /// The writes SmartAdvocate accepted, in order: (case id, what).
    fn writes(&self) -> Vec<(String, String)> {
        self.sa
            .sim
            .requests()
            .into_iter()
            .filter(|r| r.status < 300)
            .filter_map(|r| {
                let what = match r.operation? {
                    Operation::SetStatus => format!(
                        "status {}:{}",
                        r.json.as_ref()?["statusTypeID"],
                        r.json.as_ref()?["statusID"]
                    ),
                    Operation::SetUdfs => format!("udfs {}", r.json.as_ref()?),
                    Operation::InsertNote => {
                        format!("note {}", r.json.as_ref()?["noteText"].as_str()?)
                    }
                    _ => return None,
                };
                Some((r.path.split('/').nth(2)?.to_owned(), what))
            })
            .collect()
    }

    fn sa_case(&self, id: u64) -> casebridge_sim::smartadvocate::SimCase {
        self.sa
            .sim
            .cases()
            .into_iter()
            .find(|c| c.case_id == id)
            .unwrap()
    }

    async fn view(&self) -> Value {
        self.app.get(VIEW).await.body
    }

    /// Turns sending on again replaying the `held` status writes (retroactive), and sends
    /// them: what SmartAdvocate accepted since its request log was cleared.
    async fn replay_held(&self, held: u64) -> Vec<String> {
        let r = put(
            &self.app,
            "/status-sync",
            json!({"enabled": true, "mode": "retroactive"}),
        )
        .await;
        assert_eq!(r.body["replayed"], held, "{}", r.text);
        assert_eq!(
            put(&self.app, "/settings", json!({"send": true}))
                .await
                .status,
            StatusCode::OK
        );
        self.drain().await;
        self.writes().into_iter().map(|(_, w)| w).collect()
    }
}

async fn fields_statuses_and_second_statuses_go_out_in_per_case_order_through_an_outage_and_a_429(
    backend: casebridge_testkit::TestBackend,
) {
    let s = setup(backend, true).await;
    // SmartAdvocate is down before anything is sent.
    s.sa.sim.fail_5xx(1000);
    s.set_status(&s.case_id, &s.in_dialer).await;
    let r = s
        .app
        .patch(
            &format!("/api/v1/cases/{}", s.case_id),
            json!({"custom_fields": {"accident_date": "2001-02-03", "unmapped": "x"}}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    s.set_status(&s.case_id, &s.signed).await;
    s.set_status(&s.case2_id, &s.do_not_dial).await;
    s.set_status(&s.case_id, &s.do_not_dial).await;
    s.message(&s.case_id, "Hi <Jane>\nsee you").await;
    s.drain().await;
    for _ in 0..3 {
        s.app.advance(Duration::from_secs(60));
        s.drain().await;
    }
    assert!(s.writes().is_empty(), "{:?}", s.writes());
    let view = s.view().await;
    assert_eq!(view["sync"]["operations_pending"], 6, "{view}");
    assert_eq!(
        view["sync"]["last_error"]["error_kind"], "transient",
        "{view}"
    );

    // Back, but the first request is answered 429 with Retry-After: 30.
    s.sa.sim.clear_faults();
    s.sa.sim.rate_limit(30, 1);
    s.app.advance(Duration::from_secs(700));
    s.drain().await;
    assert_eq!(
        s.sa.sim
            .requests()
            .iter()
            .filter(|r| r.status == 429)
            .count(),
        1
    );
    let after_429 = s.sa.sim.requests().len();
    s.app.advance(Duration::from_secs(20));
    s.drain().await;
    assert_eq!(
        s.sa.sim.requests().len(),
        after_429,
        "nothing within the Retry-After"
    );
    // After it (and after the retry backoff the outage built up), everything goes.
    s.app.advance(Duration::from_secs(15));
    s.drain().await;
    s.app.advance(Duration::from_secs(700));
    s.drain().await;

    let writes = s.writes();
    let of = |id: &str| -> Vec<String> {
        writes
            .iter()
            .filter(|(c, _)| c == id)
            .map(|(_, w)| w.clone())
            .collect()
    };
    assert_eq!(
        of("1001"),
        [
            "status 10:102".to_owned(),
            r#"udfs [{"udfName":"Accident Date","value":"2001-02-03"}]"#.to_owned(),
            "status 1:2".to_owned(),
            "status 10:103".to_owned(),
            "note Hi &lt;Jane&gt;<br>see you".to_owned(),
        ],
        "every change once, in order"
    );
    assert_eq!(of("1002"), ["status 10:103".to_owned()]);
    let case = s.sa_case(SA_CASE);
    assert_eq!(case.status_id, 2);
    assert_eq!(
        case.second_statuses
            .iter()
            .map(|x| (x.status_type_id, x.status_id))
            .collect::<Vec<_>>(),
        [(10, 103)]
    );
    assert_eq!(
        case.udf_values.get(&501).map(String::as_str),
        Some("2001-02-03")
    );
    assert_eq!(case.notes.len(), 1);
    let view = s.view().await;
    assert_eq!(view["sync"]["operations_done"], 6, "{view}");
    assert!(view["health"]["last_status_push_at"].is_string(), "{view}");

    // The token expires in the middle of a push: re-authenticated once, then sent.
    let tokens = s.sa.sim.tokens_issued();
    s.sa.sim.expire_tokens();
    s.set_status(&s.case_id, &s.intake).await;
    s.drain().await;
    assert_eq!(s.sa.sim.tokens_issued(), tokens + 1);
    assert_eq!(s.sa_case(SA_CASE).status_id, 1);
    assert!(s.sa.sim.requests().iter().any(|r| r.status == 401));
}
casebridge_testkit::backend_test!(
    fields_statuses_and_second_statuses_go_out_in_per_case_order_through_an_outage_and_a_429
);

async fn send_mapping_off_stops_every_push_keeps_mappings_and_resumes_only_as_asked(
    backend: casebridge_testkit::TestBackend,
) {
    let s = setup(backend, false).await;
    s.set_status(&s.case_id, &s.signed).await;
    s.set_status(&s.case_id, &s.in_dialer).await;
    let r = s
        .app
        .patch(
            &format!("/api/v1/cases/{}", s.case_id),
            json!({"custom_fields": {"accident_date": "2001-02-03"}}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    s.message(&s.case_id, "while off").await;
    s.drain().await;
    assert!(s.writes().is_empty(), "{:?}", s.writes());
    // Every mapping is kept.
    let sm = s.app.get(&format!("{VIEW}/status-mappings")).await.body;
    assert_eq!(sm["mappings"].as_array().unwrap().len(), 4, "{sm}");
    let fm = s
        .app
        .get(&format!("{VIEW}/field-mappings?crm_case_type_id=1"))
        .await
        .body;
    assert_eq!(fm["mappings"][0]["crm_field_key"], "Accident Date", "{fm}");
    // The status changes are held; turning sending on asks what to do with them.
    let st = s.app.get(&format!("{VIEW}/status-sync")).await.body;
    assert_eq!(st["held"], 2, "{st}");
    let r = put(&s.app, "/settings", json!({"send": true})).await;
    assert_eq!(r.status, StatusCode::CONFLICT, "{}", r.text);
    assert!(r.text.contains("status-sync"), "{}", r.text);
    let r = put(
        &s.app,
        "/status-sync",
        json!({"enabled": true, "mode": "non_retroactive"}),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.body["skipped"], 2, "{}", r.text);
    let r = put(&s.app, "/settings", json!({"send": true})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    s.drain().await;
    assert!(
        s.writes().is_empty(),
        "nothing made while off is replayed: {:?}",
        s.writes()
    );
    s.set_status(&s.case_id, &s.do_not_dial).await;
    s.drain().await;
    assert_eq!(
        s.writes(),
        [("1001".to_owned(), "status 10:103".to_owned())]
    );

    // Off again; two changes; the admin asks for them (retroactive): both, in order.
    assert_eq!(
        put(&s.app, "/settings", json!({"send": false}))
            .await
            .status,
        StatusCode::OK
    );
    s.set_status(&s.case_id, &s.signed).await;
    s.set_status(&s.case_id, &s.in_dialer).await;
    s.drain().await;
    assert_eq!(s.writes().len(), 1);
    assert_eq!(
        s.replay_held(2).await,
        ["status 10:103", "status 1:2", "status 10:102"]
    );
    assert_eq!(s.sa_case(SA_CASE).status_id, 2);
}
casebridge_testkit::backend_test!(
    send_mapping_off_stops_every_push_keeps_mappings_and_resumes_only_as_asked
);

async fn a_completed_call_sets_the_dialer_disposition_and_adds_a_note(
    backend: casebridge_testkit::TestBackend,
) {
    let s = setup(backend, true).await;
    s.call(true, "hangup").await;
    s.drain().await;
    let case = s.sa_case(SA_CASE);
    // "Last Dialer Disposition" (type 11) = "Successful" (115); "Dialer Status" untouched.
    let second: Vec<(u64, u64)> = case
        .second_statuses
        .iter()
        .map(|x| (x.status_type_id, x.status_id))
        .collect();
    assert!(
        second.contains(&(11, 115)) && second.contains(&(10, 101)),
        "{second:?}"
    );
    assert_eq!(case.notes.len(), 1);
    assert!(
        case.notes[0].note_text.contains("Rear-ended on I-95."),
        "{:?}",
        case.notes
    );
    // A call that reached voicemail: "Answering Machine" (114), replacing the last one.
    s.call(false, "voicemail").await;
    s.drain().await;
    let second: Vec<(u64, u64)> = s
        .sa_case(SA_CASE)
        .second_statuses
        .iter()
        .filter(|x| x.status_type_id == 11)
        .map(|x| (x.status_type_id, x.status_id))
        .collect();
    assert_eq!(second, [(11, 114)]);
    // With call records off, a call sends nothing.
    assert_eq!(
        put(&s.app, "/settings", json!({"send_call_records": false}))
            .await
            .status,
        StatusCode::OK
    );
    let before = s.writes().len();
    s.call(true, "hangup").await;
    s.drain().await;
    assert_eq!(s.writes().len(), before);
}
casebridge_testkit::backend_test!(a_completed_call_sets_the_dialer_disposition_and_adds_a_note);

async fn a_completed_call_sends_disposition_attempts_and_next_call_in_order(
    backend: casebridge_testkit::TestBackend,
) {
    let s = setup(backend, true).await;
    let udfs = |value: &str| format!("udfs {}", json!([{"udfName": "Next Call", "value": value}]));
    let dialer = |s: &Setup| -> Vec<String> {
        s.writes()
            .into_iter()
            .map(|(case, w)| {
                assert_eq!(case, "1001");
                if w.starts_with("note ") {
                    "note".to_owned()
                } else {
                    w
                }
            })
            .collect()
    };
    // First call, no answer: the note, "Last Dialer Disposition" = No Answer (11:113),
    // "Attempts Status" = 1 (13:131), "Next Call" an hour after the call ended.
    s.call(false, "no_answer").await;
    s.drain().await;
    assert_eq!(
        dialer(&s),
        [
            "note".to_owned(),
            "status 11:113".to_owned(),
            "status 13:131".to_owned(),
            udfs("2026-05-01T15:42:05"),
        ]
    );
    let case = s.sa_case(SA_CASE);
    assert_eq!(
        case.udf_values.get(&504).map(String::as_str),
        Some("2026-05-01T15:42:05")
    );
    // A second call, busy: attempts 2, next call four hours on.
    s.sa.sim.clear_requests();
    s.call(false, "busy").await;
    s.drain().await;
    assert_eq!(
        dialer(&s),
        [
            "note".to_owned(),
            "status 11:112".to_owned(),
            "status 13:132".to_owned(),
            udfs("2026-05-01T18:42:05"),
        ]
    );
    // A conversation: attempts 3 and no next call (the UDF is emptied).
    s.sa.sim.clear_requests();
    s.call(true, "hangup").await;
    s.drain().await;
    assert_eq!(
        dialer(&s),
        [
            "note".to_owned(),
            "status 11:115".to_owned(),
            "status 13:133".to_owned(),
            udfs(""),
        ]
    );
    let case = s.sa_case(SA_CASE);
    let second: Vec<(u64, u64)> = case
        .second_statuses
        .iter()
        .map(|x| (x.status_type_id, x.status_id))
        .collect();
    assert!(
        second.contains(&(11, 115)) && second.contains(&(13, 133)) && second.contains(&(10, 101)),
        "{second:?}"
    );
    assert_eq!(case.udf_values.get(&504), None);
    // "Send mapping to SmartAdvocate" off: a call sends nothing, not even the dialer updates,
    // and turning it on again does not replay them.
    s.sa.sim.clear_requests();
    assert_eq!(
        put(&s.app, "/settings", json!({"send": false}))
            .await
            .status,
        StatusCode::OK
    );
    s.call(false, "no_answer").await;
    s.drain().await;
    assert_eq!(
        put(&s.app, "/settings", json!({"send": true})).await.status,
        StatusCode::OK
    );
    s.drain().await;
    assert!(s.writes().is_empty(), "{:?}", s.writes());
    // The call made meanwhile still counts: the next one is attempt 5.
    s.call(false, "no_answer").await;
    s.drain().await;
    assert_eq!(
        dialer(&s),
        [
            "note".to_owned(),
            "status 11:113".to_owned(),
            "status 13:135".to_owned(),
            udfs("2026-05-02T14:42:05"),
        ]
    );
}
casebridge_testkit::backend_test!(
    a_completed_call_sends_disposition_attempts_and_next_call_in_order
);

/// Two string fields, `a` and `b`, of each object in a JSON array.
fn pairs(list: &Value, a: &str, b: &str) -> Vec<(String, String)> {
    list.as_array()
        .unwrap()
        .iter()
        .map(|o| {
            let field = |k: &str| o[k].as_str().unwrap().to_owned();
            (field(a), field(b))
        })
        .collect()
}

/// The `field` and `message` of each detail of a 422.
fn errors(r: &casebridge_testkit::Reply) -> Vec<(String, String)> {
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.text);
    pairs(&r.body["error"]["details"], "field", "message")
}

/// `(case_status_id, crm_status_id)` of every saved status mapping, sorted.
async fn status_pairs(app: &TestApp) -> Vec<(String, String)> {
    let sm = app.get(&format!("{VIEW}/status-mappings")).await.body;
    let mut out = pairs(&sm["mappings"], "case_status_id", "crm_status_id");
    out.sort();
    out
}

/// One platform status mapped to a primary status and to values of two second-status types:
/// saved and listed whole, refused with the offending entry named (nothing changed), sent as
/// the primary write then each second-status write in order (only the primary one carrying the
/// platform status), held and replayed in that order, and an arriving case's primary status
/// still resolving to the platform status it is the primary mapping of.
async fn a_status_maps_to_a_primary_and_second_statuses_sent_in_order(
    backend: casebridge_testkit::TestBackend,
) {
    let s = setup(backend, true).await;
    // The catalog says which statuses are second statuses, and of which type.
    let catalog = s.app.get(&format!("{VIEW}/catalog")).await.body;
    let type_of = |id: &str| {
        catalog["statuses"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["crm_id"] == id)
            .map(|c| c["status_type"].clone())
            .unwrap()
    };
    assert_eq!(type_of("2"), Value::Null, "{catalog}");
    assert_eq!(type_of("10:103"), "Dialer Status", "{catalog}");
    assert_eq!(type_of("12:121"), "Campaign Status", "{catalog}");

    // Signed → "Signed Up", "Dialer Status = Do not Dial" and "Campaign Status = Spring
    // Outreach" (listed out of order); Intake → "Intake" and "Dialer Status = To Dial";
    // Calling → only "Dialer Status = In the Dialer".
    let (intake, signed, calling) = (&s.intake, &s.signed, &s.in_dialer);
    let r = put(
        &s.app,
        "/status-mappings",
        json!({"mappings": [
            {"case_status_id": signed, "crm_status_id": "12:121"},
            {"case_status_id": intake, "crm_status_id": "10:101"},
            {"case_status_id": signed, "crm_status_id": "10:103"},
            {"case_status_id": intake, "crm_status_id": "1"},
            {"case_status_id": signed, "crm_status_id": "2"},
            {"case_status_id": calling, "crm_status_id": "10:102"}]}),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(
        r.body["mappings"].as_array().unwrap().len(),
        6,
        "{}",
        r.text
    );
    let mut expected = vec![
        (signed.clone(), "12:121".to_owned()),
        (intake.clone(), "10:101".to_owned()),
        (signed.clone(), "10:103".to_owned()),
        (intake.clone(), "1".to_owned()),
        (signed.clone(), "2".to_owned()),
        (calling.clone(), "10:102".to_owned()),
    ];
    expected.sort();
    assert_eq!(status_pairs(&s.app).await, expected);
    // Refreshing the catalog keeps them all.
    let r = s
        .app
        .post(&format!("{VIEW}/fields/refresh"), json!({}))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(status_pairs(&s.app).await, expected);

    // Refusals name the offending entry (and the earlier one it clashes with) and change
    // nothing: two primaries, two values of one type, unknown ids, and a SmartAdvocate status
    // mapped from two platform statuses (each still maps from one).
    let cases = [
        (
            json!([{"case_status_id": signed, "crm_status_id": "2"},
                   {"case_status_id": signed, "crm_status_id": "3"}]),
            vec![(
                "mappings[1]",
                "platform status \"Signed\" already has a primary SmartAdvocate status in \
                 mappings[0]",
            )],
        ),
        (
            json!([{"case_status_id": signed, "crm_status_id": "2"},
                   {"case_status_id": signed, "crm_status_id": "10:103"},
                   {"case_status_id": signed, "crm_status_id": "10:101"}]),
            vec![(
                "mappings[2]",
                "already has a value of Dialer Status in mappings[1]",
            )],
        ),
        (
            json!([{"case_status_id": signed, "crm_status_id": "2"},
                   {"case_status_id": signed, "crm_status_id": "10:999"},
                   {"case_status_id": "not-a-status", "crm_status_id": "3"}]),
            vec![
                (
                    "mappings[1].crm_status_id",
                    "no SmartAdvocate status 10:999",
                ),
                (
                    "mappings[2].case_status_id",
                    "no case status with id not-a-status",
                ),
            ],
        ),
        (
            json!([{"case_status_id": signed, "crm_status_id": "10:103"},
                   {"case_status_id": intake, "crm_status_id": "10:103"}]),
            vec![(
                "mappings[1]",
                "\"Dialer Status = Do not Dial\" is already mapped by mappings[0]",
            )],
        ),
    ];
    for (mappings, want) in cases {
        let r = put(&s.app, "/status-mappings", json!({ "mappings": mappings })).await;
        let got = errors(&r);
        assert_eq!(got.len(), want.len(), "{got:?}");
        for ((field, message), (want_field, fragment)) in got.iter().zip(want) {
            assert_eq!(field, want_field, "{got:?}");
            assert!(message.contains(fragment), "{got:?}");
        }
    }
    assert_eq!(status_pairs(&s.app).await, expected, "nothing changed");

    // A change to Signed: the primary status, then each second status by type, in order.
    s.set_status(&s.case_id, signed).await;
    s.drain().await;
    assert_eq!(
        s.writes(),
        [
            ("1001".to_owned(), "status 1:2".to_owned()),
            ("1001".to_owned(), "status 10:103".to_owned()),
            ("1001".to_owned(), "status 12:121".to_owned()),
        ]
    );
    let case = s.sa_case(SA_CASE);
    assert_eq!(case.status_id, 2);
    let mut second: Vec<(u64, u64)> = case
        .second_statuses
        .iter()
        .map(|x| (x.status_type_id, x.status_id))
        .collect();
    second.sort();
    assert_eq!(
        second,
        [(10, 103), (12, 121)],
        "Do not Dial replaced To Dial"
    );
    // Only the primary write carries the platform status (the base of conflict checks).
    let ops = s
        .app
        .get(&format!("{VIEW}/operations?state=done"))
        .await
        .body;
    let carried: Vec<(String, Value)> = ops["data"]
        .as_array()
        .unwrap()
        .iter()
        .rev()
        .map(|o| {
            (
                o["payload"]["crm_status_id"].as_str().unwrap().to_owned(),
                o["payload"]
                    .get("case_status_id")
                    .cloned()
                    .unwrap_or(Value::Null),
            )
        })
        .collect();
    assert_eq!(
        carried,
        [
            ("2".to_owned(), json!(signed)),
            ("10:103".to_owned(), Value::Null),
            ("12:121".to_owned(), Value::Null),
        ],
        "{ops}"
    );

    // Held while sending is off; replayed (retroactive) in the same order.
    s.sa.sim.clear_requests();
    assert_eq!(
        put(&s.app, "/settings", json!({"send": false}))
            .await
            .status,
        StatusCode::OK
    );
    s.set_status(&s.case_id, intake).await;
    s.set_status(&s.case_id, calling).await;
    s.drain().await;
    assert!(s.writes().is_empty(), "{:?}", s.writes());
    let st = s.app.get(&format!("{VIEW}/status-sync")).await.body;
    assert_eq!(st["held"], 3, "one held write per mapped status: {st}");
    assert_eq!(
        s.replay_held(3).await,
        ["status 1:1", "status 10:101", "status 10:102"]
    );
    let case = s.sa_case(SA_CASE);
    assert_eq!(case.status_id, 1);

    // Inbound: SmartAdvocate's primary status resolves to the platform status it is the
    // primary mapping of ("Signed Up" → Signed), never through a second status. (Back at
    // Intake first, so the base is agreed and the arriving status is a plain CRM change.)
    s.set_status(&s.case_id, intake).await;
    s.drain().await;
    let view = put(&s.app, "/settings", json!({"receive": true})).await;
    assert_eq!(view.status, StatusCode::OK, "{}", view.text);
    let hook = view.body["webhook_url"]
        .as_str()
        .unwrap()
        .rsplit('/')
        .next()
        .unwrap()
        .to_owned();
    let r = s
        .app
        .http
        .post(s.app.url(&format!("/hooks/smartadvocate/{hook}")))
        .json(&json!({"caseNumber": NUMBER, "caseTypeID": "1",
            "caseType": "Motor Vehicle Accident", "Status ID": "2", "status": "Signed Up",
            "contactID": "7001", "firstName": "Jane", "lastName": "Doe",
            "modifiedDate": "2099-01-01T00:00:00"}))
        .send()
        .await
        .unwrap();
    let r = TestApp::reply(r).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.body["case_id"], s.case_id.as_str(), "{}", r.text);
    let case = s
        .app
        .get(&format!("/api/v1/cases/{}", s.case_id))
        .await
        .body;
    assert_eq!(case["case_status_id"], signed.as_str(), "{case}");
    // Not a conflict; no mapping was added by name for it, and nothing is echoed back.
    let conflicts = s.app.get(&format!("{VIEW}/conflicts")).await.body;
    assert_eq!(
        conflicts["data"].as_array().unwrap().len(),
        0,
        "{conflicts}"
    );
    assert_eq!(status_pairs(&s.app).await, expected);
    s.sa.sim.clear_requests();
    s.drain().await;
    assert!(s.writes().is_empty(), "{:?}", s.writes());
}
casebridge_testkit::backend_test!(a_status_maps_to_a_primary_and_second_statuses_sent_in_order);

/// A second company with its own SmartAdvocate (its own API user): connected, one status
/// "Rejected here" mapped to SmartAdvocate's Rejected (3), one case linked to case number
/// 9000001 (the same number as the first company's case, in its own tenant), sending on.
/// Returns its simulator, API key, case and status ids.
async fn second_company(app: &TestApp) -> (RunningSim, String, String, String) {
    let sa = SmartAdvocateSim::builder()
        .user("firm-b-api", "Firm-B-Password")
        .build()
        .start()
        .await;
    let (_, key) = app.new_company("Second Firm").await;
    let call = |method: Method, path: &str, body: Value| {
        let key = key.clone();
        let path = path.to_owned();
        async move { app.call_as(&key, method, &path, Some(body)).await }
    };
    let r = call(
        Method::PUT,
        &format!("{VIEW}/connection"),
        json!({"base_url": sa.base_url, "username": "firm-b-api", "password": "Firm-B-Password"}),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let r = call(Method::POST, &format!("{VIEW}/fields/refresh"), json!({})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let r = call(
        Method::POST,
        "/api/v1/case-statuses",
        json!({"name": "Rejected here"}),
    )
    .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    let status = r.body["id"].as_str().unwrap().to_owned();
    let r = call(
        Method::PUT,
        &format!("{VIEW}/status-mappings"),
        json!({"mappings": [{"case_status_id": status, "crm_status_id": "3"}]}),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let r = call(Method::POST, "/api/v1/case-types", json!({"name": "B MVA"})).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    let case_type = r.body["id"].as_str().unwrap().to_owned();
    let r = call(
        Method::PUT,
        &format!("{VIEW}/case-type-links"),
        json!({"links": [{"crm_case_type_id": "1", "case_type_id": case_type}]}),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let r = call(
        Method::POST,
        "/api/v1/cases",
        json!({"name": "B's client", "case_type_id": case_type,
        "external_refs": [{"provider": "smartadvocate", "external_id": NUMBER}]}),
    )
    .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    let case = r.body["id"].as_str().unwrap().to_owned();
    let r = call(
        Method::PUT,
        &format!("{VIEW}/settings"),
        json!({"enable_integration": true, "send": true,
        "send_mapped_fields": true, "send_messages": true, "send_call_records": true, "sync_statuses": true}),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    sa.sim.clear_requests();
    (sa, key, case, status)
}

async fn pushes_never_cross_companies(backend: casebridge_testkit::TestBackend) {
    let s = setup(backend, true).await;
    let (sa_b, key_b, case_b, rejected_b) = second_company(&s.app).await;
    // One status change and one message in each company, then one worker for both.
    s.set_status(&s.case_id, &s.signed).await;
    s.message(&s.case_id, "for A only").await;
    let r = s
        .app
        .call_as(
            &key_b,
            Method::PATCH,
            &format!("/api/v1/cases/{case_b}"),
            Some(json!({"case_status_id": rejected_b})),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let r = s
        .app
        .call_as(
            &key_b,
            Method::POST,
            "/api/v1/messages",
            Some(
                json!({"case_id": case_b, "channel": "sms", "direction": "outbound",
            "from": "+15550002000", "to": "+15559990000", "body": "for B only"}),
            ),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    // A's status must not be usable from B: its id is unknown there.
    let r = s
        .app
        .call_as(
            &key_b,
            Method::PATCH,
            &format!("/api/v1/cases/{case_b}"),
            Some(json!({"case_status_id": s.do_not_dial})),
        )
        .await;
    assert!(r.status.is_client_error(), "{} {}", r.status, r.text);
    s.drain().await;

    // A's SmartAdvocate holds A's changes only, sent with A's user.
    assert_eq!(
        s.writes(),
        [
            ("1001".to_owned(), "status 1:2".to_owned()),
            ("1001".to_owned(), "note for A only".to_owned()),
        ]
    );
    assert!(s.sa.sim.requests().iter().all(|r| {
        r.operation != Some(Operation::Authenticate)
            || r.json.as_ref().unwrap()["Username"] == DEMO_USERNAME
    }));
    let a_case = s.sa_case(SA_CASE);
    assert_eq!(a_case.status_id, 2);
    assert_eq!(a_case.notes.len(), 1);
    assert_eq!(a_case.notes[0].note_text, "for A only");

    // B's holds B's only (its reads aside): Rejected (3) on its 9000001, its own note, its own
    // API user.
    let b_writes: Vec<(Option<Operation>, u16, String)> = sa_b
        .sim
        .requests()
        .into_iter()
        .filter(|r| {
            matches!(
                r.operation,
                Some(Operation::SetStatus | Operation::SetUdfs | Operation::InsertNote)
            )
        })
        .map(|r| (r.operation, r.status, r.path))
        .collect();
    assert_eq!(
        b_writes,
        [
            (
                Some(Operation::SetStatus),
                200,
                "/case/1001/status".to_owned()
            ),
            (
                Some(Operation::InsertNote),
                201,
                "/case/1001/notes".to_owned()
            ),
        ],
        "{:#?}",
        sa_b.sim.requests()
    );
    let auth_b = sa_b.sim.requests_of(Operation::Authenticate);
    assert!(!auth_b.is_empty());
    assert!(auth_b
        .iter()
        .all(|r| r.json.as_ref().unwrap()["Username"] == "firm-b-api"));
    let b_case = sa_b
        .sim
        .cases()
        .into_iter()
        .find(|c| c.case_id == SA_CASE)
        .unwrap();
    assert_eq!(b_case.status_id, 3);
    assert_eq!(b_case.notes.len(), 1);
    assert_eq!(b_case.notes[0].note_text, "for B only");

    // Each company's view counts its own operations.
    let view_a = s.view().await;
    assert_eq!(view_a["sync"]["operations_done"], 2, "{view_a}");
    let view_b = s.app.call_as(&key_b, Method::GET, VIEW, None).await.body;
    assert_eq!(view_b["sync"]["operations_done"], 2, "{view_b}");

    // B disconnects: A keeps pushing, and nothing of A's reaches B.
    let r = s
        .app
        .call_as(&key_b, Method::DELETE, &format!("{VIEW}/connection"), None)
        .await;
    assert!(r.status.is_success(), "{} {}", r.status, r.text);
    sa_b.sim.clear_requests();
    s.set_status(&s.case_id, &s.intake).await;
    s.drain().await;
    assert_eq!(s.sa_case(SA_CASE).status_id, 1);
    assert!(sa_b.sim.requests().is_empty(), "{:#?}", sa_b.sim.requests());
}
casebridge_testkit::backend_test!(pushes_never_cross_companies);

async fn the_per_connection_limiter_spaces_requests(backend: casebridge_testkit::TestBackend) {
    // 60 a minute with a burst of 6: the 9th note cannot go before about 3 s after the first.
    let s = setup(backend, true).await;
    let worker = s.app.crm_worker(60);
    for i in 0..9 {
        let case = if i % 2 == 0 { &s.case_id } else { &s.case2_id };
        s.message(case, &format!("note {i}")).await;
    }
    let started = std::time::Instant::now();
    worker.drain().await.unwrap();
    let took = started.elapsed();
    let notes = s.sa.sim.requests_of(Operation::InsertNote);
    assert_eq!(
        notes.iter().map(|r| r.status).collect::<Vec<_>>(),
        [201; 9],
        "every note sent once, none refused"
    );
    assert_eq!(s.sa_case(SA_CASE).notes.len(), 5);
    assert_eq!(s.sa_case(1002).notes.len(), 4);
    let spread = notes[8].at.duration_since(notes[0].at).unsigned_abs();
    assert!(
        spread >= Duration::from_millis(2500),
        "9 notes within {spread:?}"
    );
    assert!(took >= Duration::from_millis(2500), "drained in {took:?}");
    // Per case, still in order.
    let texts: Vec<String> = s
        .sa_case(SA_CASE)
        .notes
        .iter()
        .map(|n| n.note_text.clone())
        .collect();
    assert_eq!(texts, ["note 0", "note 2", "note 4", "note 6", "note 8"]);
}
casebridge_testkit::backend_test!(the_per_connection_limiter_spaces_requests);
