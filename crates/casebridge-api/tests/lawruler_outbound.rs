//! Law Ruler outbound sync (LR9–LR11, LR15) end to end: platform changes through the API, the
//! `crm` worker, and exactly what the Law Ruler simulator receives. Both backends.

use std::time::Duration;

use casebridge_queue::Worker;
use casebridge_sim::lawruler::{LawRulerSim, LoggedRequest, RunningSim};
use casebridge_testkit::TestApp;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

const LEAD: &str = "10001"; // seeded: Jane Doe, case type 12 (Auto Accident)
const LEAD2: &str = "10002"; // seeded: John Roe, case type 13

struct Setup {
    lr: RunningSim,
    app: TestApp,
    worker: Worker,
    case_id: String,
    case2_id: String,
    intake: String,
    qualified: String,
    review: String,
}

fn values(root: &str) -> Value {
    json!({"username": "demo", "password": "demo-password", "client_root": root,
           "client_secret": "demo-secret", "key": "demo-key"})
}

const ALL_ON: [&str; 8] = [
    "enable_integration",
    "receive",
    "send",
    "send_mapped_fields",
    "send_messages",
    "send_call_records",
    "send_documents",
    "sync_statuses",
];

async fn settings(app: &TestApp, body: Value) {
    let r = app
        .call(
            Method::PUT,
            "/api/v1/integrations/lawruler/settings",
            Some(body),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
}

/// Connected to the simulator, catalog loaded, "Auto" linked to Law Ruler 12 with two mapped
/// custom fields, three statuses mapped, two cases linked to the seeded leads, every toggle on
/// (status sync included) unless `toggles_off` names some.
async fn setup(backend: casebridge_testkit::TestBackend, toggles_off: &[&str]) -> Setup {
    let lr = LawRulerSim::new().start().await;
    let app = TestApp::start(backend).await;
    let r = app
        .call(
            Method::PUT,
            "/api/v1/integrations/lawruler/connection",
            Some(values(&lr.base_url)),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let r = app
        .post("/api/v1/integrations/lawruler/fields/refresh", json!({}))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let auto = app
        .create("/api/v1/case-types", json!({"name": "Auto"}))
        .await;
    let slip = app
        .create("/api/v1/case-types", json!({"name": "Slip"}))
        .await;
    let r = app
        .call(
            Method::PUT,
            "/api/v1/integrations/lawruler/case-type-links",
            Some(
                json!({"links": [{"crm_case_type_id": "12", "case_type_id": auto},
                                  {"crm_case_type_id": "13", "case_type_id": slip}]}),
            ),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let r = app
        .call(
            Method::PUT,
            "/api/v1/integrations/lawruler/field-mappings",
            Some(json!({"crm_case_type_id": "12", "mappings": [
                {"platform_field": "custom.injury_date", "crm_field_key": "custom1234"},
                {"platform_field": "custom.police_report", "crm_field_key": "custom1235"}]})),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let intake = app
        .create("/api/v1/case-statuses", json!({"name": "Intake"}))
        .await;
    let qualified = app
        .create(
            "/api/v1/case-statuses",
            json!({"name": "Qualified – Intake Completed"}),
        )
        .await;
    let review = app
        .create("/api/v1/case-statuses", json!({"name": "Review Needed"}))
        .await;
    let r = app
        .call(
            Method::PUT,
            "/api/v1/integrations/lawruler/status-mappings",
            Some(json!({"mappings": [
                {"case_status_id": intake, "crm_status_id": "7"},
                {"case_status_id": qualified, "crm_status_id": "8"},
                {"case_status_id": review, "crm_status_id": "10"}]})),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let jane = app
        .create(
            "/api/v1/clients",
            json!({"first_name": "Jane", "last_name": "Doe", "phone": "+1 555 010 2000"}),
        )
        .await;
    let john = app
        .create(
            "/api/v1/clients",
            json!({"first_name": "John", "last_name": "Roe"}),
        )
        .await;
    // The cases exist before the integration is on, so creating them sends nothing.
    let case_id = app
        .create(
            "/api/v1/cases",
            json!({"name": "Jane Doe", "case_type_id": auto, "client_id": jane,
                   "case_status_id": intake,
                   "external_refs": [{"provider": "lawruler", "external_id": LEAD}]}),
        )
        .await;
    let case2_id = app
        .create(
            "/api/v1/cases",
            json!({"name": "John Roe", "case_type_id": slip, "client_id": john,
                   "external_refs": [{"provider": "lawruler", "external_id": LEAD2}]}),
        )
        .await;
    let mut on = serde_json::Map::new();
    for t in ALL_ON {
        on.insert(t.into(), json!(!toggles_off.contains(&t)));
    }
    settings(&app, Value::Object(on)).await;
    lr.sim.clear_requests();
    let worker = app.crm_worker(0);
    Setup {
        lr,
        app,
        worker,
        case_id,
        case2_id,
        intake,
        qualified,
        review,
    }
}

impl Setup {
    async fn drain(&self) {
        self.worker.drain().await.expect("drain");
    }

    /// Requests Law Ruler received (the token endpoint aside), in order.
    fn received(&self) -> Vec<LoggedRequest> {
        self.lr
            .sim
            .requests()
            .into_iter()
            .filter(|r| !r.path.contains("token"))
            .collect()
    }

    fn to(&self, path_part: &str) -> Vec<LoggedRequest> {
        self.received()
            .into_iter()
            .filter(|r| r.path.contains(path_part))
            .collect()
    }

    async fn view(&self) -> Value {
        self.app.get("/api/v1/integrations/lawruler").await.body
    }

    async fn message(&self, case: &str, body: &str) {
        let r = self
            .app
            .post(
                "/api/v1/messages",
                json!({"case_id": case, "channel": "sms", "direction": "outbound",
                       "from": "+15550001000", "to": "+15550102000", "body": body}),
            )
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
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

    /// A complete call on the first case: transcript, end, recording, analysis.
    async fn call(&self, campaign: Option<&str>, successful: bool, recording: bool) -> String {
        let mut body = json!({"case_id": self.case_id, "direction": "outbound",
                              "from_number": "+15550001000", "to_number": "+15550109999",
                              "started_at": "2026-05-01T14:30:00Z"});
        if let Some(c) = campaign {
            body["campaign_id"] = json!(c);
        }
        let call = self.app.create("/api/v1/calls", body).await;
        let turns = if successful {
            json!([{"speaker": "agent", "text": "Hello, this is Kayse..."},
                   {"speaker": "client", "text": "Yes, I'm listening..."}])
        } else {
            json!([{"speaker": "agent", "text": "Hello, this is Kayse, please call back."}])
        };
        let r = self
            .app
            .post(
                &format!("/api/v1/calls/{call}/transcript"),
                json!({ "turns": turns }),
            )
            .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
        let end = if successful { "hangup" } else { "voicemail" };
        let r = self
            .app
            .post(
                &format!("/api/v1/calls/{call}/end"),
                json!({"ended_at": "2026-05-01T14:42:05Z", "end_reason": end}),
            )
            .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
        if recording {
            self.upload_recording(&call).await;
        }
        let r = self
            .app
            .post(
                &format!("/api/v1/calls/{call}/analysis"),
                json!({"summary": "Rear-ended on I-95; neck pain.",
                       "post_call_result": "Qualified – Intake Completed",
                       "custom": {"injury_date": "2000-01-01", "police_report": true,
                                  "visits": 3}}),
            )
            .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
        call
    }

    async fn analyze(&self, call: &str, summary: &str) {
        let r = self
            .app
            .post(
                &format!("/api/v1/calls/{call}/analysis"),
                json!({"summary": summary, "post_call_result": "Qualified – Intake Completed"}),
            )
            .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    }

    async fn upload_recording(&self, call: &str) {
        let r = self
            .app
            .http
            .post(self.app.url(&format!("/api/v1/calls/{call}/recording")))
            .bearer_auth(&self.app.api_key)
            .header("content-type", "audio/wav")
            .header("content-disposition", "attachment; filename=\"call.wav\"")
            .body(wav(1, 8000))
            .send()
            .await
            .unwrap();
        assert_eq!(
            r.status(),
            StatusCode::CREATED,
            "{}",
            r.text().await.unwrap()
        );
    }
}

/// A `seconds`-long 440 Hz PCM16 mono WAV.
fn wav(seconds: u32, rate: u32) -> Vec<u8> {
    let samples = seconds * rate;
    let data_len = samples * 2;
    let mut out = Vec::with_capacity(44 + data_len as usize);
    out.extend_from_slice(b"RIFF");
    out.extend_from_slice(&(36 + data_len).to_le_bytes());
    out.extend_from_slice(b"WAVEfmt ");
    out.extend_from_slice(&16u32.to_le_bytes());
    out.extend_from_slice(&1u16.to_le_bytes());
    out.extend_from_slice(&1u16.to_le_bytes());
    out.extend_from_slice(&rate.to_le_bytes());
    out.extend_from_slice(&(rate * 2).to_le_bytes());
    out.extend_from_slice(&2u16.to_le_bytes());
    out.extend_from_slice(&16u16.to_le_bytes());
    out.extend_from_slice(b"data");
    out.extend_from_slice(&data_len.to_le_bytes());
    for i in 0..samples {
        let v = (f64::from(i) * 440.0 * std::f64::consts::TAU / f64::from(rate)).sin();
        out.extend_from_slice(&((v * 12000.0) as i16).to_le_bytes());
    }
    out
}

/// A lead or campaign API request's parameters without the Key, wherever they were carried.
fn params(r: &LoggedRequest) -> Vec<(String, String)> {
    r.form
        .iter()
        .chain(&r.query)
        .filter(|(k, _)| k != "Key")
        .cloned()
        .collect()
}

fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
    list.iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

async fn a_completed_call_sends_the_campaign_request_two_notes_and_the_recording(
    backend: casebridge_testkit::TestBackend,
) {
    let s = setup(backend, &[]).await;
    settings(&s.app, json!({"sync_enriched_phones": true})).await;
    let campaign = s
        .app
        .create("/api/v1/campaigns", json!({"name": "Spring MVA"}))
        .await;
    s.call(Some(&campaign), true, true).await;
    s.drain().await;

    let got = s.received();
    let paths: Vec<&str> = got.iter().map(|r| r.path.as_str()).collect();
    assert_eq!(
        paths,
        [
            "/api-legalrcampaign.aspx",
            "/api/v2/leads/10001/notes",
            "/api/v2/leads/10001/notes",
            "/api/v2/leads/10001/documents"
        ],
        "{got:#?}"
    );
    // 1. The campaign API: exactly the seed's query parameters, the Key first.
    assert_eq!(got[0].query[0], ("Key".to_owned(), "demo-key".to_owned()));
    assert!(got[0].form.is_empty(), "nothing in the body: {:?}", got[0]);
    assert_eq!(
        params(&got[0]),
        pairs(&[
            ("LeadID", LEAD),
            ("OverriddenLead", "true"),
            ("Tags", "Kayse"),
            ("Status", "Qualified – Intake Completed"),
            ("CellPhone", "+15550109999"),
            ("FirstName", "Jane"),
            ("LastName", "Doe"),
            ("Custom1234", "1/1/2000"),
            ("Custom1235", "Yes")
        ])
    );
    // 2. The summary note, with the _custom values.
    let summary = got[1].json.clone().unwrap();
    assert_eq!(summary["category"], "Client Communications");
    assert_eq!(summary["subject"], "Call Analysis Summary");
    let body = summary["body"].as_str().unwrap();
    assert!(body.starts_with("Rear-ended on I-95; neck pain."), "{body}");
    for line in [
        "_custom.injury_date: 1/1/2000",
        "_custom.police_report: Yes",
        "_custom.visits: 3",
    ] {
        assert!(body.contains(line), "{line} in {body}");
    }
    // 3. The transcript note, one turn a line.
    let transcript = got[2].json.clone().unwrap();
    assert_eq!(transcript["subject"], "Full Call Transcript");
    assert_eq!(transcript["category"], "Client Communications");
    assert_eq!(
        transcript["body"],
        "[AGENT]: Hello, this is Kayse...\n[CLIENT]: Yes, I'm listening..."
    );
    // 4. The recording, transcoded to MP3, in /recordings, metadata "Recording".
    let upload = &got[3];
    assert_eq!(upload.param("folder"), Some("/recordings"));
    assert_eq!(upload.param("formField"), Some("Recording"));
    assert_eq!(
        upload.param("fileName"),
        Some("Kayse VoiceAI Recording – Spring MVA (2026-05-01 14-42-05 UTC).mp3")
    );
    assert_eq!(upload.files.len(), 1);
    assert_eq!(upload.files[0].content_type.as_deref(), Some("audio/mpeg"));
    let doc = s.lr.sim.documents(LEAD).pop().expect("stored in the lead");
    assert!(
        doc.bytes.starts_with(b"ID3") || (doc.bytes[0] == 0xFF && doc.bytes[1] & 0xE0 == 0xE0),
        "an MP3 stream, not the WAV"
    );
    assert!(doc.size < wav(1, 8000).len(), "transcoded, not renamed");
    // The call's own times, in order: summary, transcript, recording.
    let t = |v: &Value| v.as_str().unwrap().parse::<jiff::Timestamp>().unwrap();
    let (a, b, c) = (
        t(&summary["createdAt"]),
        t(&transcript["createdAt"]),
        upload
            .param("createdAt")
            .unwrap()
            .parse::<jiff::Timestamp>()
            .unwrap(),
    );
    assert_eq!(a, "2026-05-01T14:42:05Z".parse().unwrap());
    assert!(a < b && b < c, "{a} {b} {c}");
    // Law Ruler's lead shows it.
    let lead = s.lr.sim.lead(LEAD).unwrap();
    assert_eq!(lead.status, "Qualified – Intake Completed");
    assert!(lead.tags.iter().any(|t| t == "Kayse"));
    assert_eq!(lead.cell_phone.as_deref(), Some("+15550109999"));
    let view = s.view().await;
    assert_eq!(view["sync"]["operations_done"], 4, "{view}");
    assert_eq!(view["sync"]["operations_pending"], 0);
    assert!(view["health"]["last_integration_sync_at"].is_string());
    // `visits` maps to no Law Ruler field: not sent as Custom<ID>, and the sync log says so,
    // naming the campaign request's operation.
    let log = s
        .app
        .get("/api/v1/integrations/lawruler/sync-log?outcome=skipped")
        .await
        .body;
    let entries = log["data"].as_array().unwrap();
    let dropped: Vec<&Value> = entries
        .iter()
        .filter(|e| e["operation"] == "call_result")
        .collect();
    assert_eq!(dropped.len(), 1, "{log}");
    let message = dropped[0]["message"].as_str().unwrap();
    assert!(
        message.contains("_custom key not sent") && message.contains("visits"),
        "{message}"
    );
    assert!(
        !message.contains("injury_date") && !message.contains("police_report"),
        "{message}"
    );
    let ops = s
        .app
        .get("/api/v1/integrations/lawruler/operations")
        .await
        .body;
    let campaign_op = ops["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|o| {
            o["description"]
                .as_str()
                .unwrap_or_default()
                .contains("call result")
        })
        .unwrap_or_else(|| panic!("{ops}"));
    assert!(
        message.contains(campaign_op["id"].as_str().unwrap()),
        "{message} / {campaign_op}"
    );
}
casebridge_testkit::backend_test!(
    a_completed_call_sends_the_campaign_request_two_notes_and_the_recording
);

async fn an_unsuccessful_call_without_campaign_sends_no_transcript_and_no_phone(
    backend: casebridge_testkit::TestBackend,
) {
    let s = setup(backend, &[]).await;
    // Even with enriched phones on: a voicemail did not reach the client.
    settings(&s.app, json!({"sync_enriched_phones": true})).await;
    s.call(None, false, true).await;
    s.drain().await;
    let got = s.received();
    let paths: Vec<&str> = got.iter().map(|r| r.path.as_str()).collect();
    assert_eq!(
        paths,
        [
            "/api-legalrcampaign.aspx",
            "/api/v2/leads/10001/notes",
            "/api/v2/leads/10001/documents"
        ],
        "no transcript note: {got:#?}"
    );
    assert!(
        got[0].param("CellPhone").is_none(),
        "no number reached the client"
    );
    assert_eq!(
        got[1].json.as_ref().unwrap()["subject"],
        "Call Analysis Summary"
    );
    assert_eq!(
        got[2].param("fileName"),
        Some("Kayse VoiceAI Recording (2026-05-01 14-42-05 UTC).mp3")
    );
}
casebridge_testkit::backend_test!(
    an_unsuccessful_call_without_campaign_sends_no_transcript_and_no_phone
);

async fn a_recording_after_the_analysis_and_a_revised_analysis(
    backend: casebridge_testkit::TestBackend,
) {
    let s = setup(backend, &[]).await;
    // Enriched phones off: no CellPhone even for a successful call.
    let call = s.call(None, true, false).await;
    s.upload_recording(&call).await;
    s.drain().await;
    let paths: Vec<String> = s.received().iter().map(|r| r.path.clone()).collect();
    assert_eq!(
        paths,
        [
            "/api-legalrcampaign.aspx",
            "/api/v2/leads/10001/notes",
            "/api/v2/leads/10001/notes",
            "/api/v2/leads/10001/documents"
        ]
    );
    assert!(
        s.received()[0].param("CellPhone").is_none(),
        "Sync enriched phones is off"
    );
    // A later analysis replaces the first: the call result and a revised summary only; no
    // second transcript, no second upload. With status sync off, no Status either.
    let r = s
        .app
        .call(
            Method::PUT,
            "/api/v1/integrations/lawruler/status-sync",
            Some(json!({"enabled": false})),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    s.lr.sim.clear_requests();
    s.analyze(&call, "Second look: also a wrist injury.").await;
    s.drain().await;
    let got = s.received();
    let paths: Vec<&str> = got.iter().map(|r| r.path.as_str()).collect();
    assert_eq!(
        paths,
        ["/api-legalrcampaign.aspx", "/api/v2/leads/10001/notes"],
        "{got:#?}"
    );
    assert!(got[0].param("Status").is_none(), "status sync is off");
    assert_eq!(
        got[1].json.as_ref().unwrap()["subject"],
        "Call Analysis Summary (revised)"
    );
    assert_eq!(s.lr.sim.documents(LEAD).len(), 1);
}
casebridge_testkit::backend_test!(a_recording_after_the_analysis_and_a_revised_analysis);

async fn each_toggle_off_sends_nothing_of_its_kind(backend: casebridge_testkit::TestBackend) {
    for (off, path_part) in [
        ("send_mapped_fields", "api-legalcrmapp"),
        ("send_messages", "/notes"),
        ("send_call_records", "legalrcampaign"),
        ("send_documents", "/documents"),
    ] {
        let s = setup(backend, &[off]).await;
        // One of each kind: mapped field change, message, call (no recording), document.
        let r = s
            .app
            .patch(
                &format!("/api/v1/cases/{}", s.case_id),
                json!({"custom_fields": {"injury_date": "2001-02-03"}}),
            )
            .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
        s.message(&s.case_id, "We received your documents.").await;
        s.call(None, true, false).await;
        let r = s
            .app
            .http
            .post(s.app.url(&format!("/api/v1/cases/{}/documents", s.case_id)))
            .bearer_auth(&s.app.api_key)
            .multipart(
                reqwest::multipart::Form::new().part(
                    "file",
                    reqwest::multipart::Part::bytes(b"%PDF-1.4 retainer".to_vec())
                        .file_name("retainer.pdf")
                        .mime_str("application/pdf")
                        .unwrap(),
                ),
            )
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::CREATED);
        s.drain().await;
        let got = s.received();
        let kinds = |part: &str| got.iter().filter(|r| r.path.contains(part)).count();
        match off {
            "send_messages" => {
                // Call notes still go; the message note does not.
                let subjects: Vec<String> =
                    s.lr.sim
                        .notes(LEAD)
                        .iter()
                        .map(|n| n.subject.clone())
                        .collect();
                assert!(
                    !subjects.iter().any(|x| x.starts_with("SMS")),
                    "{off}: {subjects:?}"
                );
                assert!(
                    subjects.iter().any(|x| x == "Call Analysis Summary"),
                    "{off}: {subjects:?}"
                );
            }
            "send_call_records" => {
                assert_eq!(kinds(path_part), 0, "{off}");
                let subjects: Vec<String> =
                    s.lr.sim
                        .notes(LEAD)
                        .iter()
                        .map(|n| n.subject.clone())
                        .collect();
                assert_eq!(subjects, ["SMS sent to +15550102000"], "{off}");
            }
            _ => assert_eq!(kinds(path_part), 0, "{off}: {got:#?}"),
        }
        // The other kinds went out.
        if off != "send_mapped_fields" {
            let updates = s.to("api-legalcrmapp");
            assert_eq!(updates.len(), 1, "{off}");
            assert_eq!(updates[0].param("custom1234"), Some("2/3/2001"), "{off}");
        }
        if off != "send_documents" {
            assert_eq!(s.lr.sim.documents(LEAD).len(), 1, "{off}");
        }
        if off != "send_call_records" {
            assert_eq!(kinds("legalrcampaign"), 1, "{off}");
        }
    }
}
casebridge_testkit::backend_test!(each_toggle_off_sends_nothing_of_its_kind);

async fn one_way_in_sends_nothing_whatever_the_toggles_say(
    backend: casebridge_testkit::TestBackend,
) {
    let s = setup(backend, &[]).await;
    settings(&s.app, json!({"direction": "one_way_in"})).await;
    let view = s.view().await;
    assert_eq!(view["settings"]["direction"], "one_way_in", "{view}");
    assert!(
        view["inert_settings"]
            .as_array()
            .unwrap()
            .iter()
            .any(|x| x == "send"),
        "{view}"
    );
    let r = s
        .app
        .patch(
            &format!("/api/v1/cases/{}", s.case_id),
            json!({"custom_fields": {"injury_date": "2001-02-03"}}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    s.message(&s.case_id, "We received your documents.").await;
    s.call(None, true, false).await;
    s.drain().await;
    assert!(s.received().is_empty(), "nothing sent: {:#?}", s.received());
    assert!(s.lr.sim.notes(LEAD).is_empty());
    // Both ways again: later changes go out.
    settings(&s.app, json!({"direction": "both"})).await;
    s.message(&s.case_id, "Your appointment is confirmed.")
        .await;
    s.drain().await;
    let subjects: Vec<String> =
        s.lr.sim
            .notes(LEAD)
            .iter()
            .map(|n| n.subject.clone())
            .collect();
    assert_eq!(subjects.len(), 1, "{subjects:?}");
    // A direction that does not exist is refused, naming the field, and changes nothing.
    let r = s
        .app
        .call(
            reqwest::Method::PUT,
            "/api/v1/integrations/lawruler/settings",
            Some(json!({"direction": "sideways", "send": false})),
        )
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.text);
    assert_eq!(r.body["error"]["details"][0]["field"], "direction");
    let view = s.view().await;
    assert_eq!(
        (&view["settings"]["direction"], &view["settings"]["send"]),
        (&json!("both"), &json!(true))
    );
}
casebridge_testkit::backend_test!(one_way_in_sends_nothing_whatever_the_toggles_say);

async fn mapped_fields_send_only_what_changed_and_unlinked_types_are_not_ready(
    backend: casebridge_testkit::TestBackend,
) {
    let s = setup(backend, &[]).await;
    let r = s
        .app
        .patch(
            &format!("/api/v1/cases/{}", s.case_id),
            json!({"custom_fields": {"injury_date": "2001-02-03", "unmapped": "x"}}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let r = s
        .app
        .patch(
            &format!("/api/v1/cases/{}", s.case_id),
            json!({"custom_fields": {"police_report": false}}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    s.drain().await;
    let updates = s.to("api-legalcrmapp");
    assert_eq!(updates.len(), 2, "{updates:#?}");
    assert_eq!(
        params(&updates[0]),
        pairs(&[
            ("LeadID", LEAD),
            ("overridelead", "true"),
            ("custom1234", "2/3/2001")
        ])
    );
    assert_eq!(
        params(&updates[1]),
        pairs(&[
            ("LeadID", LEAD),
            ("overridelead", "true"),
            ("custom1235", "No")
        ])
    );
    // A case whose type is not linked: shown as not ready, nothing sent.
    let other = s
        .app
        .create("/api/v1/case-types", json!({"name": "Unlinked"}))
        .await;
    let r = s
        .app
        .patch(
            &format!("/api/v1/cases/{}", s.case2_id),
            json!({"case_type_id": other, "custom_fields": {"injury_date": "2001-02-03"}}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    s.drain().await;
    assert_eq!(s.to("api-legalcrmapp").len(), 2);
    let log = s
        .app
        .get("/api/v1/integrations/lawruler/sync-log?outcome=skipped")
        .await
        .body;
    let msgs: Vec<&str> = log["data"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["message"].as_str())
        .collect();
    assert!(
        msgs.iter()
            .any(|m| m.contains("not ready") && m.contains("Unlinked")),
        "{msgs:?}"
    );
}
casebridge_testkit::backend_test!(
    mapped_fields_send_only_what_changed_and_unlinked_types_are_not_ready
);

async fn status_sync_off_holds_changes_then_non_retroactive_or_retroactive(
    backend: casebridge_testkit::TestBackend,
) {
    let s = setup(backend, &["sync_statuses"]).await;
    s.set_status(&s.case_id, &s.review).await;
    s.set_status(&s.case_id, &s.qualified).await;
    s.drain().await;
    assert!(s.to("api-legalcrmapp").is_empty(), "held while off");
    let st = s
        .app
        .get("/api/v1/integrations/lawruler/status-sync")
        .await
        .body;
    assert_eq!(st["held"], 2, "{st}");
    // Turning it on needs a choice; the plain settings toggle refuses too.
    let r = s
        .app
        .call(
            Method::PUT,
            "/api/v1/integrations/lawruler/status-sync",
            Some(json!({"enabled": true})),
        )
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.text);
    assert!(r.text.contains("non_retroactive") && r.text.contains("retroactive"));
    let r = s
        .app
        .call(
            Method::PUT,
            "/api/v1/integrations/lawruler/settings",
            Some(json!({"sync_statuses": true})),
        )
        .await;
    assert_eq!(r.status, StatusCode::CONFLICT, "{}", r.text);
    // Non-Retroactive: the held changes are dropped; new ones are sent.
    let r = s
        .app
        .call(
            Method::PUT,
            "/api/v1/integrations/lawruler/status-sync",
            Some(json!({"enabled": true, "mode": "non_retroactive"})),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.body["skipped"], 2);
    assert_eq!(r.body["held"], 0);
    assert!(r.body["warning"].is_null());
    s.drain().await;
    assert!(
        s.to("api-legalcrmapp").is_empty(),
        "skipped changes are not sent"
    );
    s.set_status(&s.case_id, &s.intake).await;
    s.drain().await;
    let sent = s.to("api-legalcrmapp");
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].param("StatusID"), Some("7"));
    assert!(s.view().await["health"]["last_status_push_at"].is_string());

    // Off again; two changes; Retroactive replays both, in order, with a warning.
    let r = s
        .app
        .call(
            Method::PUT,
            "/api/v1/integrations/lawruler/status-sync",
            Some(json!({"enabled": false})),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    s.set_status(&s.case_id, &s.review).await;
    s.set_status(&s.case_id, &s.qualified).await;
    s.drain().await;
    assert_eq!(s.to("api-legalcrmapp").len(), 1);
    let r = s
        .app
        .call(
            Method::PUT,
            "/api/v1/integrations/lawruler/status-sync",
            Some(json!({"enabled": true, "mode": "retroactive"})),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.body["replayed"], 2);
    assert!(
        r.body["warning"].as_str().unwrap().contains("overwrite"),
        "{}",
        r.text
    );
    s.drain().await;
    let sent: Vec<Option<String>> = s
        .to("api-legalcrmapp")
        .iter()
        .map(|r| r.param("StatusID").map(str::to_owned))
        .collect();
    assert_eq!(
        sent,
        [Some("7".into()), Some("10".into()), Some("8".into())]
    );
    assert_eq!(
        s.lr.sim.lead(LEAD).unwrap().status,
        "Qualified – Intake Completed"
    );
}
casebridge_testkit::backend_test!(
    status_sync_off_holds_changes_then_non_retroactive_or_retroactive
);

async fn an_outage_loses_nothing_and_keeps_per_lead_order(
    backend: casebridge_testkit::TestBackend,
) {
    let s = setup(backend, &[]).await;
    s.lr.sim.fail_5xx(1000);
    for i in 0..5 {
        s.message(&s.case_id, &format!("jane {i}")).await;
        s.message(&s.case2_id, &format!("john {i}")).await;
    }
    s.drain().await;
    // Retried and retried while Law Ruler is down; each lead waits for its first message.
    for _ in 0..4 {
        s.app.advance(Duration::from_secs(60));
        s.drain().await;
    }
    assert!(s.lr.sim.notes(LEAD).is_empty());
    let view = s.view().await;
    assert_eq!(view["sync"]["operations_pending"], 10, "{view}");
    assert_eq!(
        view["sync"]["last_error"]["error_kind"], "transient",
        "{view}"
    );
    // Law Ruler is back.
    s.lr.sim.clear_faults();
    s.app.advance(Duration::from_secs(700));
    s.drain().await;
    for (lead, who) in [(LEAD, "jane"), (LEAD2, "john")] {
        let bodies: Vec<String> =
            s.lr.sim
                .notes(lead)
                .iter()
                .map(|n| n.body.clone())
                .collect();
        let want: Vec<String> = (0..5).map(|i| format!("{who} {i}")).collect();
        assert_eq!(
            bodies, want,
            "every message once, in order, for lead {lead}"
        );
    }
    assert_eq!(s.view().await["sync"]["operations_done"], 10);
}
casebridge_testkit::backend_test!(an_outage_loses_nothing_and_keeps_per_lead_order);

async fn a_429_pauses_the_whole_connection_for_its_retry_after(
    backend: casebridge_testkit::TestBackend,
) {
    let s = setup(backend, &[]).await;
    s.lr.sim.rate_limit(30, 1);
    s.message(&s.case_id, "first").await;
    s.message(&s.case2_id, "second").await;
    s.drain().await;
    // The token request or the first note got the 429 (whichever came first).
    let after_429 = s.lr.sim.requests().len();
    assert_eq!(
        s.lr.sim
            .requests()
            .iter()
            .filter(|r| r.status == 429)
            .count(),
        1
    );
    // Within the 30 s, nothing more is sent for this connection, for either lead.
    s.app.advance(Duration::from_secs(20));
    s.drain().await;
    assert_eq!(
        s.lr.sim.requests().len(),
        after_429,
        "{:#?}",
        s.lr.sim.requests()
    );
    s.app.advance(Duration::from_secs(15));
    s.drain().await;
    assert_eq!(s.lr.sim.notes(LEAD).len(), 1);
    assert_eq!(s.lr.sim.notes(LEAD2).len(), 1);
}
casebridge_testkit::backend_test!(a_429_pauses_the_whole_connection_for_its_retry_after);

async fn the_per_connection_limiter_spaces_requests(backend: casebridge_testkit::TestBackend) {
    // 60 a minute with a burst of 6: the 9th request cannot go before about 3 s.
    let s = setup(backend, &[]).await;
    let worker = s.app.crm_worker(60);
    for i in 0..9 {
        let case = if i % 2 == 0 { &s.case_id } else { &s.case2_id };
        s.message(case, &format!("note {i}")).await;
    }
    let started = std::time::Instant::now();
    worker.drain().await.unwrap();
    let took = started.elapsed();
    assert_eq!(s.lr.sim.notes(LEAD).len() + s.lr.sim.notes(LEAD2).len(), 9);
    assert!(
        took >= Duration::from_millis(2500),
        "9 requests in {took:?}"
    );
}
casebridge_testkit::backend_test!(the_per_connection_limiter_spaces_requests);

async fn a_wrong_key_is_a_configuration_error_until_the_connection_is_saved(
    backend: casebridge_testkit::TestBackend,
) {
    let s = setup(backend, &[]).await;
    s.lr.sim.wrong_key(true);
    let r = s
        .app
        .patch(
            &format!("/api/v1/cases/{}", s.case_id),
            json!({"custom_fields": {"injury_date": "2001-02-03"}}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    s.message(&s.case_id, "after the field change").await;
    s.drain().await;
    let view = s.view().await;
    assert!(
        view["config_error"].as_str().unwrap_or("").contains("Key"),
        "{view}"
    );
    assert_eq!(view["sync"]["operations_blocked"], 2, "{view}");
    assert_eq!(view["sync"]["last_error"]["error_kind"], "configuration");
    // Not retried forever: nothing more goes out, however long we wait.
    let sent = s.received().len();
    s.app.advance(Duration::from_secs(3600));
    s.drain().await;
    assert_eq!(s.received().len(), sent);
    assert!(
        s.lr.sim.notes(LEAD).is_empty(),
        "later operations wait too, to keep the order"
    );
    // One more while it waits, not yet picked up by a worker when the admin fixes it.
    s.message(&s.case_id, "queued before the fix").await;
    s.lr.sim.clear_requests();
    // The admin fixes the Key: saving the connection sends what waited, in order.
    s.lr.sim.wrong_key(false);
    let r = s
        .app
        .call(
            Method::PUT,
            "/api/v1/integrations/lawruler/connection",
            Some(values(&s.lr.base_url)),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert!(r.body["config_error"].is_null());
    s.drain().await;
    assert_eq!(
        s.lr.sim
            .lead(LEAD)
            .unwrap()
            .fields
            .get("custom1234")
            .map(String::as_str),
        Some("2/3/2001")
    );
    // (The connection save's own Key check is a GetStatus call.)
    let sent: Vec<String> = s
        .received()
        .iter()
        .filter(|r| r.param("Operation") != Some("GetStatus"))
        .map(|r| match &r.json {
            Some(j) => j["body"].as_str().unwrap().to_owned(),
            None => r.path.clone(),
        })
        .collect();
    let sent: Vec<&str> = sent
        .iter()
        .map(String::as_str)
        .filter(|p| !p.starts_with("/api/v2/casetypes"))
        .collect();
    assert_eq!(
        sent,
        [
            "/api-legalcrmapp.aspx",
            "after the field change",
            "queued before the fix"
        ],
        "the lead's operations in the order they were made"
    );
    assert_eq!(s.view().await["sync"]["operations_blocked"], 0);
}
casebridge_testkit::backend_test!(
    a_wrong_key_is_a_configuration_error_until_the_connection_is_saved
);

async fn a_recording_that_is_not_audio_is_refused_and_nothing_is_stored(
    backend: casebridge_testkit::TestBackend,
) {
    let s = setup(backend, &[]).await;
    let call = s
        .app
        .create(
            "/api/v1/calls",
            json!({"case_id": s.case_id, "direction": "outbound"}),
        )
        .await;
    let r = s
        .app
        .http
        .post(s.app.url(&format!("/api/v1/calls/{call}/recording")))
        .bearer_auth(&s.app.api_key)
        .header("content-type", "audio/wav")
        .body(b"definitely not audio".to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let r = s
        .app
        .http
        .post(s.app.url(&format!("/api/v1/calls/{call}/recording")))
        .bearer_auth(&s.app.api_key)
        .header("content-type", "audio/wav")
        .body(Vec::new())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
    s.drain().await;
    assert!(s.received().is_empty());
    let docs = s
        .app
        .get(&format!("/api/v1/cases/{}/documents", s.case_id))
        .await
        .expect(StatusCode::OK)
        .body;
    assert_eq!(docs, json!({"data": [], "next_cursor": null}));
    let ops = s
        .app
        .get("/api/v1/integrations/lawruler/operations")
        .await
        .body;
    assert_eq!(ops["data"], json!([]));

    // Documents may be far larger than other requests (3 MiB here).
    let big = vec![b'x'; 3 * 1024 * 1024];
    let r = s
        .app
        .http
        .post(s.app.url(&format!("/api/v1/cases/{}/documents", s.case_id)))
        .bearer_auth(&s.app.api_key)
        .header("content-type", "application/pdf")
        .header(
            "content-disposition",
            "attachment; filename=\"../../etc/big.pdf\"",
        )
        .body(big)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    let doc: Value = r.json().await.unwrap();
    assert_eq!(doc["file_name"], "big.pdf", "path parts are dropped");
    assert_eq!(doc["size"], 3 * 1024 * 1024);
    // The case's documents are a page like every other list, oldest first.
    let r = s
        .app
        .http
        .post(s.app.url(&format!("/api/v1/cases/{}/documents", s.case_id)))
        .bearer_auth(&s.app.api_key)
        .header("content-type", "application/pdf")
        .header("content-disposition", "attachment; filename=\"second.pdf\"")
        .body(b"%PDF-1.4".to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    let list = format!("/api/v1/cases/{}/documents", s.case_id);
    let first = s
        .app
        .get(&format!("{list}?limit=1"))
        .await
        .expect(StatusCode::OK)
        .body;
    assert_eq!(first["data"].as_array().map(Vec::len), Some(1), "{first}");
    assert_eq!(first["data"][0]["file_name"], "big.pdf", "{first}");
    let cursor = first["next_cursor"]
        .as_str()
        .expect("a cursor to the second page");
    let second = s
        .app
        .get(&format!("{list}?limit=1&cursor={cursor}"))
        .await
        .expect(StatusCode::OK)
        .body;
    assert_eq!(second["data"].as_array().map(Vec::len), Some(1), "{second}");
    assert_eq!(second["data"][0]["file_name"], "second.pdf", "{second}");
    assert_eq!(second["next_cursor"], Value::Null, "{second}");
    s.app
        .call(Method::GET, &format!("{list}?limit=0"), None)
        .await
        .expect(StatusCode::UNPROCESSABLE_ENTITY);
    // Another company can neither add to nor list this case's documents.
    let (_, other_key) = s.app.new_company("Other Firm").await;
    let r = s
        .app
        .http
        .post(s.app.url(&format!("/api/v1/cases/{}/documents", s.case_id)))
        .bearer_auth(&other_key)
        .header("content-type", "application/pdf")
        .body(b"%PDF".to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    let r = s
        .app
        .call_as(
            &other_key,
            Method::GET,
            &format!("/api/v1/cases/{}/documents", s.case_id),
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    let r = s
        .app
        .http
        .post(s.app.url(&format!("/api/v1/calls/{call}/recording")))
        .bearer_auth(&other_key)
        .header("content-type", "audio/wav")
        .body(wav(1, 8000))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
}
casebridge_testkit::backend_test!(a_recording_that_is_not_audio_is_refused_and_nothing_is_stored);

async fn a_refusal_fails_the_operation_with_law_ruler_s_reason(
    backend: casebridge_testkit::TestBackend,
) {
    // A case linked to a lead Law Ruler does not have: the note is refused (404), not retried.
    let s = setup(backend, &[]).await;
    let ct = s
        .app
        .get("/api/v1/case-types")
        .await
        .expect(StatusCode::OK)
        .body["data"][0]["id"]
        .clone();
    let stray = s
        .app
        .create(
            "/api/v1/cases",
            json!({"name": "Nobody", "case_type_id": ct,
            "external_refs": [{"provider": "lawruler", "external_id": "99999"}]}),
        )
        .await;
    s.lr.sim.clear_requests();
    s.message(&stray, "hello?").await;
    s.drain().await;
    assert_eq!(s.to("notes").len(), 1, "{:#?}", s.received());
    s.app.advance(Duration::from_secs(3600));
    s.drain().await;
    assert_eq!(s.to("notes").len(), 1, "a refusal is not retried");
    let view = s.view().await;
    assert_eq!(
        (
            view["sync"]["operations_failed"].as_u64(),
            view["sync"]["operations_pending"].as_u64()
        ),
        (Some(1), Some(0)),
        "{view}"
    );
    let log = s
        .app
        .get("/api/v1/integrations/lawruler/sync-log?outcome=error")
        .await
        .expect(StatusCode::OK)
        .body;
    assert!(
        log["data"].to_string().contains("Lead 99999 not found"),
        "{log}"
    );
}
casebridge_testkit::backend_test!(a_refusal_fails_the_operation_with_law_ruler_s_reason);

async fn a_toggle_turned_off_before_sending_skips_the_operation(
    backend: casebridge_testkit::TestBackend,
) {
    let s = setup(backend, &[]).await;
    s.message(&s.case_id, "recorded while on").await;
    settings(&s.app, json!({"send_messages": false})).await;
    s.drain().await;
    assert!(s.to("notes").is_empty(), "{:#?}", s.received());
    let view = s.view().await;
    assert_eq!(
        (
            view["sync"]["operations_skipped"].as_u64(),
            view["sync"]["operations_pending"].as_u64()
        ),
        (Some(1), Some(0)),
        "{view}"
    );
    let log = s
        .app
        .get("/api/v1/integrations/lawruler/sync-log?outcome=skipped")
        .await
        .expect(StatusCode::OK)
        .body;
    assert!(
        log["data"]
            .to_string()
            .contains("turned off before it was sent"),
        "{log}"
    );
    // Turning it back on does not send what was skipped.
    settings(&s.app, json!({"send_messages": true})).await;
    s.app.advance(Duration::from_secs(3600));
    s.drain().await;
    assert!(s.lr.sim.notes(LEAD).is_empty());
}
casebridge_testkit::backend_test!(a_toggle_turned_off_before_sending_skips_the_operation);

async fn a_failed_operation_can_be_retried_or_dismissed(backend: casebridge_testkit::TestBackend) {
    let s = setup(backend, &[]).await;
    // Law Ruler refuses a value that is not a date for a date field: the operation fails.
    let r = s
        .app
        .patch(
            &format!("/api/v1/cases/{}", s.case_id),
            json!({"custom_fields": {"injury_date": "someday"}}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    s.drain().await;
    let failed = s
        .app
        .get("/api/v1/integrations/lawruler/operations?state=failed")
        .await
        .body;
    let op = failed["data"][0].clone();
    let id = op["id"]
        .as_str()
        .unwrap_or_else(|| panic!("{failed}"))
        .to_owned();
    assert_eq!(s.view().await["sync"]["operations_failed"], 1);
    let sent = s.to("api-legalcrmapp").len();

    // Only a failed operation can be acted on; an unknown one is not found.
    let r = s
        .app
        .post(
            "/api/v1/integrations/lawruler/operations/nope/retry",
            json!({}),
        )
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND, "{}", r.text);

    // Retry: pending again, sent again (and refused again, for the same reason).
    let r = s
        .app
        .post(
            &format!("/api/v1/integrations/lawruler/operations/{id}/retry"),
            json!({}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.body["state"], "pending");
    let r = s
        .app
        .post(
            &format!("/api/v1/integrations/lawruler/operations/{id}/dismiss"),
            json!({}),
        )
        .await;
    assert_eq!(
        r.status,
        StatusCode::CONFLICT,
        "a pending operation is not dismissed: {}",
        r.text
    );
    s.drain().await;
    assert_eq!(s.to("api-legalcrmapp").len(), sent + 1, "sent once more");
    let failed = s
        .app
        .get("/api/v1/integrations/lawruler/operations?state=failed")
        .await
        .body;
    assert_eq!(failed["data"][0]["id"], id.as_str());

    // Dismiss: skipped, no longer counted as failed, and not sent.
    let r = s
        .app
        .post(
            &format!("/api/v1/integrations/lawruler/operations/{id}/dismiss"),
            json!({}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.body["state"], "skipped");
    s.drain().await;
    assert_eq!(s.to("api-legalcrmapp").len(), sent + 1);
    let view = s.view().await;
    assert_eq!(view["sync"]["operations_failed"], 0, "{view}");
    let r = s
        .app
        .post(
            &format!("/api/v1/integrations/lawruler/operations/{id}/retry"),
            json!({}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CONFLICT, "{}", r.text);
    let log = s
        .app
        .get("/api/v1/integrations/lawruler/sync-log")
        .await
        .body;
    let msgs: Vec<&str> = log["data"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["message"].as_str())
        .collect();
    assert!(
        msgs.iter()
            .any(|m| m.contains(&id) && m.contains("retried by an admin")),
        "{msgs:?}"
    );
    assert!(
        msgs.iter()
            .any(|m| m.contains(&id) && m.contains("dismissed by an admin")),
        "{msgs:?}"
    );
}
casebridge_testkit::backend_test!(a_failed_operation_can_be_retried_or_dismissed);

async fn answers_not_understood_are_retried_then_the_operation_fails(
    backend: casebridge_testkit::TestBackend,
) {
    // The lead API answers with a maintenance page on HTTP 200: retried as transient, and
    // after ten such answers the operation fails instead of trying forever.
    let s = setup(backend, &[]).await;
    s.lr.sim.garble(1000);
    let r = s
        .app
        .patch(
            &format!("/api/v1/cases/{}", s.case_id),
            json!({"custom_fields": {"injury_date": "2001-02-03"}}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    s.drain().await;
    assert_eq!(s.to("api-legalcrmapp").len(), 1, "{:#?}", s.received());
    let view = s.view().await;
    assert_eq!(
        (
            view["sync"]["operations_pending"].as_u64(),
            view["sync"]["operations_failed"].as_u64()
        ),
        (Some(1), Some(0)),
        "retried at first: {view}"
    );
    for _ in 0..20 {
        s.app.advance(Duration::from_secs(700));
        s.drain().await;
    }
    assert_eq!(
        s.to("api-legalcrmapp").len(),
        10,
        "ten attempts, then no more"
    );
    let view = s.view().await;
    assert_eq!(
        (
            view["sync"]["operations_pending"].as_u64(),
            view["sync"]["operations_failed"].as_u64()
        ),
        (Some(0), Some(1)),
        "{view}"
    );
    let failed = s
        .app
        .get("/api/v1/integrations/lawruler/operations?state=failed")
        .await
        .expect(StatusCode::OK)
        .body;
    assert!(
        failed["data"][0]["last_error"]
            .as_str()
            .unwrap_or_default()
            .contains("answer not understood"),
        "{failed}"
    );
    assert_eq!(
        s.lr.sim.lead(LEAD).unwrap().fields.get("custom1234"),
        None,
        "nothing was applied"
    );
}
casebridge_testkit::backend_test!(answers_not_understood_are_retried_then_the_operation_fails);

async fn at_most_four_operations_of_one_connection_are_in_flight(
    backend: casebridge_testkit::TestBackend,
) {
    // Eight leads, one note each, a worker that could run eight at once, and a Law Ruler
    // that takes a while to answer: never more than four requests of the connection at once.
    let s = setup(backend, &[]).await;
    let ct = s
        .app
        .get("/api/v1/case-types")
        .await
        .expect(StatusCode::OK)
        .body["data"][0]["id"]
        .clone();
    let mut cases = vec![s.case_id.clone(), s.case2_id.clone()];
    for i in 0..6 {
        let lead =
            s.lr.sim
                .create_lead(casebridge_sim::lawruler::NewLead::new(
                    "Lead",
                    &format!("No{i}"),
                    "12",
                ))
                .unwrap();
        cases.push(
            s.app
                .create(
                    "/api/v1/cases",
                    json!({"name": format!("Lead {i}"), "case_type_id": ct,
                "external_refs": [{"provider": "lawruler", "external_id": lead}]}),
                )
                .await,
        );
    }
    s.drain().await;
    s.lr.sim.clear_requests();
    s.lr.sim.slow(Duration::from_millis(300));
    for case in &cases {
        s.message(case, "hello").await;
    }
    s.drain().await;
    assert_eq!(s.to("notes").len(), 8, "{:#?}", s.received());
    assert_eq!(
        s.lr.sim.max_in_flight(),
        casebridge_crm::lawruler::outbound::CONNECTION_CONCURRENCY as usize,
        "at most the limit at once, and the limit used"
    );
}
casebridge_testkit::backend_test!(at_most_four_operations_of_one_connection_are_in_flight);

// ---- frequency (SYNC1) ----

const HOUR: Duration = Duration::from_secs(3600);

impl Setup {
    /// The app's clock now.
    fn now(&self) -> jiff::Timestamp {
        casebridge_domain::clock::Clock::now(&self.app.clock)
    }

    /// `now` plus `by`, as the API writes times.
    fn at(&self, by: Duration) -> String {
        casebridge_api::dto::time(self.now() + by)
    }

    /// The note bodies Law Ruler holds for a lead, in order.
    fn note_bodies(&self, lead: &str) -> Vec<String> {
        self.lr
            .sim
            .notes(lead)
            .into_iter()
            .map(|n| n.body)
            .collect()
    }

    /// The pull's reads of changed notes Law Ruler received.
    fn pulls(&self) -> usize {
        self.lr
            .sim
            .requests()
            .iter()
            .filter(|r| r.method == "GET" && r.path == "/api/v2/notes")
            .count()
    }

    async fn pending_ops(&self) -> Vec<Value> {
        let r = self
            .app
            .get("/api/v1/integrations/lawruler/operations?state=pending")
            .await
            .expect(StatusCode::OK);
        r.body["data"].as_array().unwrap().clone()
    }

    async fn run_now(&self) -> Value {
        self.app
            .post("/api/v1/integrations/lawruler/run", json!({}))
            .await
            .expect(StatusCode::ACCEPTED)
            .body
    }

    async fn log_lines(&self, operation: &str) -> Vec<String> {
        let r = self
            .app
            .get("/api/v1/integrations/lawruler/sync-log")
            .await
            .expect(StatusCode::OK);
        r.body["data"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["operation"] == operation)
            .map(|e| e["message"].as_str().unwrap().to_owned())
            .collect()
    }
}

async fn the_frequency_is_listed_with_its_labels_and_a_bad_value_changes_nothing(
    backend: casebridge_testkit::TestBackend,
) {
    let s = setup(backend, &[]).await;
    let view = s.view().await;
    assert_eq!(view["settings"]["frequency"], "real_time", "{view}");
    assert_eq!(view["frequency"]["value"], "real_time");
    assert_eq!(
        view["frequency"]["label"],
        "Real time: changes are sent at once"
    );
    let choices: Vec<&str> = view["frequency"]["choices"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["value"].as_str().unwrap())
        .collect();
    assert_eq!(choices, ["real_time", "hourly", "daily"]);
    assert!(view["frequency"]["choices"][2]["label"]
        .as_str()
        .unwrap()
        .starts_with("Daily"));
    assert!(
        view["frequency"]["next_run_at"].is_null(),
        "no run to wait for in real time: {view}"
    );

    // An unknown value, or one of the wrong type, is a 422 naming the field, and nothing
    // else in the body is applied either.
    for bad in [json!("weekly"), json!("Hourly"), json!(60), json!(null)] {
        let r = s
            .app
            .call(
                Method::PUT,
                "/api/v1/integrations/lawruler/settings",
                Some(json!({"send_messages": false, "frequency": bad})),
            )
            .await;
        if bad.is_null() {
            // `null` is "leave it as it is", like every other setting.
            assert_eq!(r.status, StatusCode::OK, "{}", r.text);
            settings(&s.app, json!({"send_messages": true})).await;
            continue;
        }
        assert_eq!(
            r.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{bad}: {}",
            r.text
        );
        assert_eq!(r.body["error"]["code"], "validation_failed", "{}", r.text);
        assert_eq!(
            r.body["error"]["details"][0]["field"], "frequency",
            "{}",
            r.text
        );
    }
    let after = s.view().await;
    assert_eq!(after["settings"], view["settings"], "nothing changed");
    assert!(s.log_lines("frequency").await.is_empty());

    // Hourly: the next run is an hour from the change, in the API's time format.
    settings(&s.app, json!({"frequency": "hourly"})).await;
    let view = s.view().await;
    assert_eq!(view["settings"]["frequency"], "hourly");
    assert_eq!(view["frequency"]["value"], "hourly");
    assert_eq!(view["frequency"]["next_run_at"], s.at(HOUR), "{view}");
    assert!(view["frequency"]["next_run_at"]
        .as_str()
        .unwrap()
        .ends_with('Z'));
    assert_eq!(
        view["settings"]["send_messages"], true,
        "the other settings stay"
    );
    // Saving another setting does not move the schedule; the next run stays where it was.
    s.app.advance(Duration::from_secs(600));
    settings(
        &s.app,
        json!({"send_documents": false, "frequency": "hourly"}),
    )
    .await;
    assert_eq!(
        s.view().await["frequency"]["next_run_at"],
        s.at(HOUR - Duration::from_secs(600))
    );
    // Once the run time passes, the view shows the one after (runs keep their cadence).
    s.app.advance(HOUR);
    assert_eq!(
        s.view().await["frequency"]["next_run_at"],
        s.at(HOUR - Duration::from_secs(600))
    );
    settings(&s.app, json!({"frequency": "daily"})).await;
    assert_eq!(s.view().await["frequency"]["next_run_at"], s.at(24 * HOUR));
    let lines = s.log_lines("frequency").await;
    assert_eq!(
        lines.len(),
        2,
        "one line per change, none for a re-save: {lines:?}"
    );
    assert!(
        lines[0].starts_with("frequency set to daily; next run at "),
        "{lines:?}"
    );
}
casebridge_testkit::backend_test!(
    the_frequency_is_listed_with_its_labels_and_a_bad_value_changes_nothing
);

async fn hourly_batches_outbound_changes_until_the_next_run_then_sends_them_in_order(
    backend: casebridge_testkit::TestBackend,
) {
    let s = setup(backend, &[]).await;
    settings(&s.app, json!({"frequency": "hourly"})).await;
    let next_run = s.at(HOUR);
    for i in 0..3 {
        s.message(&s.case_id, &format!("jane {i}")).await;
    }
    s.message(&s.case2_id, "john 0").await;
    s.drain().await;
    assert!(
        s.received().is_empty(),
        "nothing is sent before the run: {:#?}",
        s.received()
    );
    let pending = s.pending_ops().await;
    assert_eq!(pending.len(), 4, "{pending:#?}");
    for op in &pending {
        assert_eq!(op["batched_until"], next_run.as_str(), "{op}");
    }
    assert_eq!(s.view().await["sync"]["operations_pending"], 4);

    // A minute before the run: still nothing.
    s.app.advance(HOUR - Duration::from_secs(60));
    s.drain().await;
    assert!(s.received().is_empty());
    // A change made now waits for the same run, behind the earlier ones of its lead.
    s.message(&s.case_id, "jane 3").await;

    // The run: everything goes, in order per lead, once.
    s.app.advance(Duration::from_secs(60));
    s.drain().await;
    assert_eq!(
        s.note_bodies(LEAD),
        ["jane 0", "jane 1", "jane 2", "jane 3"]
    );
    assert_eq!(s.note_bodies(LEAD2), ["john 0"]);
    assert!(s.pending_ops().await.is_empty());
    assert_eq!(s.view().await["sync"]["operations_done"], 5);

    // A change after the run waits for the next one, an hour on.
    s.message(&s.case2_id, "john 1").await;
    s.drain().await;
    assert_eq!(s.note_bodies(LEAD2), ["john 0"]);
    let pending = s.pending_ops().await;
    assert_eq!(pending[0]["batched_until"], s.at(HOUR), "{pending:#?}");
    assert_eq!(s.view().await["frequency"]["next_run_at"], s.at(HOUR));
    s.app.advance(HOUR);
    s.drain().await;
    assert_eq!(s.note_bodies(LEAD2), ["john 0", "john 1"]);
    // Inbound webhooks are not batched: a received lead applies at once (the inbound tests
    // cover them; the frequency is not read on that path).
}
casebridge_testkit::backend_test!(
    hourly_batches_outbound_changes_until_the_next_run_then_sends_them_in_order
);

async fn run_now_pulls_sends_the_batched_changes_and_re_bases_the_schedule(
    backend: casebridge_testkit::TestBackend,
) {
    let s = setup(backend, &[]).await;
    settings(&s.app, json!({"frequency": "daily"})).await;
    s.message(&s.case_id, "jane 0").await;
    s.message(&s.case_id, "jane 1").await;
    s.message(&s.case2_id, "john 0").await;
    s.app.advance(Duration::from_secs(3 * 3600));
    s.drain().await;
    assert!(s.received().is_empty(), "batched to the daily run");
    assert_eq!(s.pulls(), 0);

    let r = s.run_now().await;
    assert_eq!(r["pull_queued"], true, "{r}");
    assert!(r["pull_job_id"].is_string(), "{r}");
    assert!(r["no_pull_reason"].is_null(), "{r}");
    assert_eq!(r["operations_released"], 3, "{r}");
    assert_eq!(r["next_run_at"], s.at(24 * HOUR), "re-based on now: {r}");
    assert_eq!(s.view().await["frequency"]["next_run_at"], s.at(24 * HOUR));
    assert!(
        s.pending_ops()
            .await
            .iter()
            .all(|op| op["batched_until"].is_null()),
        "released operations no longer say they wait"
    );
    s.drain().await;
    assert_eq!(s.note_bodies(LEAD), ["jane 0", "jane 1"]);
    assert_eq!(s.note_bodies(LEAD2), ["john 0"]);
    assert_eq!(s.pulls(), 1, "the pull ran");
    assert!(s.pending_ops().await.is_empty());
    let lines = s.log_lines("run now").await;
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert!(
        lines[0].starts_with("run now: pull queued; 3 batched operation(s) released"),
        "{lines:?}"
    );

    // A change after "run now" waits for the re-based run, a day from the click.
    s.message(&s.case_id, "jane 2").await;
    s.app.advance(23 * HOUR);
    s.drain().await;
    assert_eq!(s.note_bodies(LEAD), ["jane 0", "jane 1"]);
    s.app.advance(HOUR);
    s.drain().await;
    assert_eq!(s.note_bodies(LEAD), ["jane 0", "jane 1", "jane 2"]);

    // With receiving off there is nothing to pull: the answer says why, and the batched
    // changes still go.
    settings(&s.app, json!({"receive": false})).await;
    s.message(&s.case2_id, "john 1").await;
    let r = s.run_now().await;
    assert_eq!(r["pull_queued"], false, "{r}");
    assert!(r["pull_job_id"].is_null());
    assert!(
        r["no_pull_reason"]
            .as_str()
            .unwrap()
            .contains("receiving data from Law Ruler is turned off"),
        "{r}"
    );
    assert_eq!(r["operations_released"], 1, "{r}");
    s.drain().await;
    assert_eq!(s.note_bodies(LEAD2), ["john 0", "john 1"]);
    assert_eq!(s.pulls(), 1, "no second pull");

    // In real time there is nothing to release and no schedule to re-base.
    settings(&s.app, json!({"frequency": "real_time", "receive": true})).await;
    let r = s.run_now().await;
    assert_eq!(r["pull_queued"], true, "{r}");
    assert_eq!(r["operations_released"], 0, "{r}");
    assert!(r["next_run_at"].is_null(), "{r}");
    // Another company cannot run this one's integration, and an unknown CRM is a 404.
    let r = s
        .app
        .post("/api/v1/integrations/nocrm/run", json!({}))
        .await
        .expect(StatusCode::NOT_FOUND);
    assert_eq!(r.body["error"]["code"], "not_found", "{}", r.text);
}
casebridge_testkit::backend_test!(
    run_now_pulls_sends_the_batched_changes_and_re_bases_the_schedule
);

async fn back_to_real_time_releases_the_batched_changes_and_daily_never_delays_due_ones(
    backend: casebridge_testkit::TestBackend,
) {
    let s = setup(backend, &[]).await;
    // Real time → daily: a change recorded before the switch is not delayed by it.
    s.message(&s.case_id, "jane 0").await;
    settings(&s.app, json!({"frequency": "daily"})).await;
    s.message(&s.case_id, "jane 1").await;
    s.message(&s.case_id, "jane 2").await;
    s.drain().await;
    assert_eq!(
        s.note_bodies(LEAD),
        ["jane 0"],
        "the change made before the switch went at once, the later ones wait"
    );
    let pending = s.pending_ops().await;
    assert_eq!(pending.len(), 2);
    assert!(pending
        .iter()
        .all(|op| op["batched_until"] == s.at(24 * HOUR).as_str()));

    // Daily → hourly brings them forward to the new, earlier run.
    s.app.advance(Duration::from_secs(600));
    settings(&s.app, json!({"frequency": "hourly"})).await;
    let pending = s.pending_ops().await;
    assert!(
        pending
            .iter()
            .all(|op| op["batched_until"] == s.at(HOUR).as_str()),
        "{pending:#?}"
    );
    s.drain().await;
    assert_eq!(s.note_bodies(LEAD), ["jane 0"]);

    // Back to real time: released at once, in order, without waiting for the run.
    settings(&s.app, json!({"frequency": "real_time"})).await;
    let view = s.view().await;
    assert!(view["frequency"]["next_run_at"].is_null(), "{view}");
    s.drain().await;
    assert_eq!(s.note_bodies(LEAD), ["jane 0", "jane 1", "jane 2"]);
    assert!(s.pending_ops().await.is_empty());
    let lines = s.log_lines("frequency").await;
    assert!(
        lines[0].starts_with("frequency set to real time; 2 batched operation(s) released"),
        "{lines:?}"
    );
    // And new changes go at once again.
    s.message(&s.case_id, "jane 3").await;
    s.drain().await;
    assert_eq!(s.note_bodies(LEAD).len(), 4);
}
casebridge_testkit::backend_test!(
    back_to_real_time_releases_the_batched_changes_and_daily_never_delays_due_ones
);

async fn a_released_change_waiting_behind_a_retrying_one_runs_after_it_in_order(
    backend: casebridge_testkit::TestBackend,
) {
    // Law Ruler is down, so the real-time changes stay unfinished: each lead's head retries,
    // holding its ordering key. The batched change queued behind them (`waiting` for its key)
    // must run once released, after the earlier ones, in order.
    let s = setup(backend, &[]).await;
    s.lr.sim.fail_5xx(1000);
    for i in 0..3 {
        s.message(&s.case_id, &format!("jane {i}")).await;
        s.message(&s.case2_id, &format!("john {i}")).await;
    }
    s.drain().await;
    settings(&s.app, json!({"frequency": "daily"})).await;
    s.message(&s.case_id, "jane 3").await;
    s.message(&s.case2_id, "john 3").await;
    s.lr.sim.clear_faults();
    let r = s.run_now().await;
    assert_eq!(r["operations_released"], 2, "{r}");
    // The retries come due after their backoff; the released ones follow them.
    s.app.advance(Duration::from_secs(700));
    s.drain().await;
    for (lead, who) in [(LEAD, "jane"), (LEAD2, "john")] {
        let want: Vec<String> = (0..4).map(|i| format!("{who} {i}")).collect();
        assert_eq!(s.note_bodies(lead), want, "every change once, in order");
    }
    assert!(s.pending_ops().await.is_empty());
}
casebridge_testkit::backend_test!(
    a_released_change_waiting_behind_a_retrying_one_runs_after_it_in_order
);

async fn pulls_are_due_on_the_frequency_s_schedule(backend: casebridge_testkit::TestBackend) {
    use casebridge_crm::lawruler::pull;
    let s = setup(backend, &[]).await;
    let store = &s.app.db.store;
    let clock = &s.app.clock;
    let company = s.app.company_id;
    // Real time: the CRM's own interval; never pulled, so due now.
    assert_eq!(
        pull::schedule_due(store, clock, HOUR).await.unwrap(),
        [company]
    );
    s.drain().await;
    assert_eq!(s.pulls(), 1);

    // Hourly: the first run is an hour after the change, whatever the last pull.
    settings(&s.app, json!({"frequency": "hourly"})).await;
    s.app.advance(HOUR - Duration::from_secs(1));
    assert!(pull::schedule_due(store, clock, HOUR)
        .await
        .unwrap()
        .is_empty());
    s.app.advance(Duration::from_secs(1));
    assert_eq!(
        pull::schedule_due(store, clock, HOUR).await.unwrap(),
        [company]
    );
    s.drain().await;
    assert_eq!(s.pulls(), 2);
    assert_eq!(
        s.view().await["frequency"]["next_run_at"],
        s.at(HOUR),
        "the run moved the schedule on by an interval"
    );
    s.app.advance(Duration::from_secs(1800));
    assert!(pull::schedule_due(store, clock, HOUR)
        .await
        .unwrap()
        .is_empty());

    // Daily: not before 24 hours, then due; "run now" re-bases it.
    settings(&s.app, json!({"frequency": "daily"})).await;
    s.app.advance(24 * HOUR - Duration::from_secs(60));
    assert!(
        pull::schedule_due(store, clock, HOUR)
            .await
            .unwrap()
            .is_empty(),
        "the CRM's hourly interval does not apply"
    );
    let r = s.run_now().await;
    assert_eq!(r["pull_queued"], true);
    s.drain().await;
    assert_eq!(s.pulls(), 3);
    s.app.advance(Duration::from_secs(120));
    assert!(
        pull::schedule_due(store, clock, HOUR)
            .await
            .unwrap()
            .is_empty(),
        "the run now re-based the day"
    );
    s.app.advance(24 * HOUR);
    assert_eq!(
        pull::schedule_due(store, clock, HOUR).await.unwrap(),
        [company]
    );
}
casebridge_testkit::backend_test!(pulls_are_due_on_the_frequency_s_schedule);
