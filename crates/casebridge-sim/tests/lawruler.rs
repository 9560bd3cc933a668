//! The Law Ruler simulator over HTTP: validation of every endpoint, the request log, injected
//! faults and outbound webhooks.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::http::HeaderMap;
use casebridge_sim::lawruler::{
    LawRulerSim, RunningSim, DEMO_CLIENT_SECRET, DEMO_KEY, DEMO_PASSWORD, DEMO_USERNAME,
};
use reqwest::multipart::{Form, Part};
use reqwest::{Client, StatusCode};
use serde_json::{json, Value};

struct Sim {
    running: RunningSim,
    http: Client,
}

impl Sim {
    async fn start() -> Self {
        Self {
            running: LawRulerSim::new().start().await,
            http: Client::new(),
        }
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.running.base_url)
    }

    fn sim(&self) -> &LawRulerSim {
        &self.running.sim
    }

    /// A lead-API call with the right Key; returns the text answer.
    async fn lead_api(&self, fields: &[(&str, &str)]) -> String {
        let mut form = vec![("Key", DEMO_KEY)];
        form.extend_from_slice(fields);
        self.post_form("/api-legalcrmapp.aspx", &form).await
    }

    async fn campaign(&self, fields: &[(&str, &str)]) -> String {
        let mut form = vec![("Key", DEMO_KEY)];
        form.extend_from_slice(fields);
        self.post_form("/api-legalrcampaign.aspx", &form).await
    }

    async fn post_form(&self, path: &str, form: &[(&str, &str)]) -> String {
        let resp = self
            .http
            .post(self.url(path))
            .form(form)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::OK, "lead-style APIs answer 200");
        resp.text().await.unwrap()
    }

    async fn token(&self) -> String {
        let resp = self
            .http
            .post(self.url("/api/v2/token"))
            .form(&[
                ("username", DEMO_USERNAME),
                ("password", DEMO_PASSWORD),
                ("client_secret", DEMO_CLIENT_SECRET),
            ])
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::OK);
        let body: Value = resp.json().await.unwrap();
        assert_eq!(body["token_type"], "Bearer");
        assert_eq!(body["expires_in"], 3600);
        body["access_token"].as_str().unwrap().to_owned()
    }

    async fn get(&self, path: &str, token: &str) -> (StatusCode, Value) {
        let resp = self
            .http
            .get(self.url(path))
            .bearer_auth(token)
            .send()
            .await
            .unwrap();
        (resp.status(), resp.json().await.unwrap_or(Value::Null))
    }

    async fn post_json(&self, path: &str, token: &str, body: Value) -> (StatusCode, Value) {
        let resp = self
            .http
            .post(self.url(path))
            .bearer_auth(token)
            .json(&body)
            .send()
            .await
            .unwrap();
        (resp.status(), resp.json().await.unwrap_or(Value::Null))
    }

    async fn post_multipart(&self, path: &str, token: &str, form: Form) -> (StatusCode, Value) {
        let resp = self
            .http
            .post(self.url(path))
            .bearer_auth(token)
            .multipart(form)
            .send()
            .await
            .unwrap();
        (resp.status(), resp.json().await.unwrap_or(Value::Null))
    }

    async fn control(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let mut req = self.http.request(method, self.url(path));
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.unwrap();
        (resp.status(), resp.json().await.unwrap_or(Value::Null))
    }
}

#[tokio::test]
async fn lead_api_creates_validates_and_reads() {
    let s = Sim::start().await;
    let leads_before = s.sim().leads();

    for (fields, answer) in [
        (vec![("FirstName", "A")], "Failed|LastName is required"),
        (vec![("LastName", "B")], "Failed|FirstName is required"),
        (
            vec![("FirstName", "A"), ("LastName", "B")],
            "Failed|CaseType is required",
        ),
        (
            vec![
                ("FirstName", "A"),
                ("LastName", "B"),
                ("CaseType", "Space Law"),
            ],
            "Failed|CaseType is invalid",
        ),
        (
            vec![
                ("FirstName", "A"),
                ("LastName", "B"),
                ("CaseType", "12"),
                ("Email", "nope"),
            ],
            "Failed|Email is invalid",
        ),
        (
            vec![
                ("FirstName", "A"),
                ("LastName", "B"),
                ("CaseType", "12"),
                ("CellPhone", "12"),
            ],
            "Failed|CellPhone is invalid",
        ),
        (
            // 1240 belongs to Slip and Fall, not Auto Accident.
            vec![
                ("FirstName", "A"),
                ("LastName", "B"),
                ("CaseType", "12"),
                ("custom1240", "1/1/2020"),
            ],
            "Failed|custom1240 is invalid",
        ),
        (
            vec![
                ("FirstName", "A"),
                ("LastName", "B"),
                ("CaseType", "12"),
                ("custom1234", "yesterday"),
            ],
            "Failed|custom1234 is invalid",
        ),
        (
            vec![
                ("FirstName", "A"),
                ("LastName", "B"),
                ("CaseType", "12"),
                ("Status", "Lost"),
            ],
            "Failed|Status is invalid",
        ),
        (
            vec![("Operation", "Delete"), ("LeadID", "10001")],
            "Failed|Operation is invalid",
        ),
        (
            vec![("Operation", "GetStatus")],
            "Failed|LeadID is required",
        ),
        (
            vec![("Operation", "GetStatus"), ("LeadID", "0")],
            "Failed|Lead not found",
        ),
    ] {
        assert_eq!(s.lead_api(&fields).await, answer, "{fields:?}");
    }
    assert_eq!(
        s.sim().leads(),
        leads_before,
        "refused requests change nothing"
    );

    let answer = s
        .post_form(
            "/api-legalcrmapp.aspx",
            &[
                ("Key", "not-the-key"),
                ("FirstName", "A"),
                ("LastName", "B"),
                ("CaseType", "12"),
            ],
        )
        .await;
    assert_eq!(answer, "Failed|Invalid Key");
    let answer = s
        .post_form(
            "/api-legalcrmapp.aspx",
            &[("FirstName", "A"), ("LastName", "B"), ("CaseType", "12")],
        )
        .await;
    assert_eq!(answer, "Failed|Invalid Key");

    // Names are case-insensitive; case type by name or id; unknown fields are kept.
    let answer = s
        .lead_api(&[
            ("firstname", "Ann"),
            ("LASTNAME", "Lee"),
            ("CaseType", "slip and fall"),
            ("Email", "ann@example.com"),
            ("custom1240", "2024-12-01"),
            ("Custom1242", "no"),
            ("Address1", "1 Main St"),
        ])
        .await;
    let id = answer
        .strip_prefix("Success|LeadID=")
        .expect(&answer)
        .to_owned();
    let lead = s.sim().lead(&id).unwrap();
    assert_eq!(
        (lead.first_name.as_str(), lead.last_name.as_str()),
        ("Ann", "Lee")
    );
    assert_eq!(lead.case_type_id, "13");
    assert_eq!(lead.status, "Intake");
    assert_eq!(lead.fields["custom1240"], "2024-12-01");
    assert_eq!(lead.fields["custom1242"], "no");
    assert_eq!(lead.fields["Address1"], "1 Main St");
    assert_ne!(lead.primary_contact_id, "");

    assert_eq!(
        s.lead_api(&[("Operation", "GetStatus"), ("LeadID", &id)])
            .await,
        format!("Success|LeadID={id}|Status=Intake|StatusID=7")
    );

    // Parameters may come in the query string too.
    let resp = s
        .http
        .post(s.url(&format!(
            "/api-legalcrmapp.aspx?Key={DEMO_KEY}&Operation=GetStatus&LeadID={id}"
        )))
        .send()
        .await
        .unwrap();
    assert_eq!(
        resp.text().await.unwrap(),
        format!("Success|LeadID={id}|Status=Intake|StatusID=7")
    );
}

#[tokio::test]
async fn lead_api_updates_need_overridelead_and_an_existing_lead() {
    let s = Sim::start().await;
    assert_eq!(
        s.lead_api(&[("LeadID", "10001"), ("FirstName", "J")]).await,
        "Failed|overridelead must be true"
    );
    assert_eq!(
        s.lead_api(&[
            ("LeadID", "424242"),
            ("overridelead", "true"),
            ("FirstName", "J")
        ])
        .await,
        "Failed|Lead not found"
    );
    let before = s.sim().lead("10001").unwrap();
    assert_eq!(
        s.lead_api(&[
            ("LeadID", "10001"),
            ("overridelead", "true"),
            ("FirstName", "Janet"),
            ("custom1237", "lots"),
        ])
        .await,
        "Failed|custom1237 is invalid"
    );
    assert_eq!(
        s.sim().lead("10001").unwrap(),
        before,
        "nothing half-applied"
    );

    assert_eq!(
        s.lead_api(&[
            ("LeadID", "10001"),
            ("overridelead", "TRUE"),
            ("FirstName", "Janet"),
            ("StatusID", "9"),
            ("custom1237", "1,250.00"),
        ])
        .await,
        "Success|LeadID=10001"
    );
    let after = s.sim().lead("10001").unwrap();
    assert_eq!(after.first_name, "Janet");
    assert_eq!(after.status, "Sent e-Sign");
    assert_eq!(after.fields["custom1237"], "1,250.00");
    assert!(after.updated_at >= before.updated_at);

    // A multipart update with a file attaches it to the lead.
    let form = Form::new()
        .text("Key", DEMO_KEY)
        .text("LeadID", "10001")
        .text("overridelead", "true")
        .part(
            "file",
            Part::bytes(b"%PDF-1.4".to_vec())
                .file_name("intake.pdf")
                .mime_str("application/pdf")
                .unwrap(),
        );
    let resp = s
        .http
        .post(s.url("/api-legalcrmapp.aspx"))
        .multipart(form)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.text().await.unwrap(), "Success|LeadID=10001");
    let docs = s.sim().documents("10001");
    assert_eq!(docs.len(), 1);
    assert_eq!(docs[0].file_name, "intake.pdf");
    assert_eq!(docs[0].size, 8);
}

#[tokio::test]
async fn campaign_api_validates_and_applies() {
    let s = Sim::start().await;
    assert_eq!(
        s.campaign(&[("OverriddenLead", "true")]).await,
        "Failed|LeadID is required"
    );
    assert_eq!(
        s.campaign(&[("LeadID", "77"), ("OverriddenLead", "true")])
            .await,
        "Failed|Lead not found"
    );
    assert_eq!(
        s.campaign(&[("LeadID", "10001")]).await,
        "Failed|OverriddenLead must be true"
    );
    assert_eq!(
        s.campaign(&[
            ("LeadID", "10001"),
            ("OverriddenLead", "true"),
            ("Status", "Won")
        ])
        .await,
        "Failed|Status is invalid"
    );
    assert_eq!(
        s.campaign(&[
            ("LeadID", "10001"),
            ("OverriddenLead", "true"),
            ("Custom1235", "Maybe")
        ])
        .await,
        "Failed|Custom1235 is invalid"
    );
    assert_eq!(
        s.post_form(
            "/api-legalrcampaign.aspx",
            &[
                ("Key", "x"),
                ("LeadID", "10001"),
                ("OverriddenLead", "true")
            ]
        )
        .await,
        "Failed|Invalid Key"
    );

    assert_eq!(
        s.campaign(&[
            ("LeadID", "10001"),
            ("OverriddenLead", "true"),
            ("Tags", "Kayse, VoiceAI"),
            ("Status", "Review Needed"),
            ("CellPhone", "+1 555 010 7777"),
            ("Custom1234", "1/1/2000"),
            ("Custom1235", "Yes"),
        ])
        .await,
        "Success|LeadID=10001"
    );
    let lead = s.sim().lead("10001").unwrap();
    assert_eq!(lead.tags, ["Kayse", "VoiceAI"]);
    assert_eq!(lead.status_id, "10");
    assert_eq!(lead.cell_phone.as_deref(), Some("+1 555 010 7777"));
    assert_eq!(lead.fields["custom1234"], "1/1/2000");
}

#[tokio::test]
async fn the_token_endpoint_names_the_wrong_value() {
    let s = Sim::start().await;
    for (form, status, error) in [
        (
            [
                ("username", "x"),
                ("password", DEMO_PASSWORD),
                ("client_secret", DEMO_CLIENT_SECRET),
            ],
            401,
            "invalid_username",
        ),
        (
            [
                ("username", DEMO_USERNAME),
                ("password", "x"),
                ("client_secret", DEMO_CLIENT_SECRET),
            ],
            401,
            "invalid_password",
        ),
        (
            [
                ("username", DEMO_USERNAME),
                ("password", DEMO_PASSWORD),
                ("client_secret", "x"),
            ],
            401,
            "invalid_client_secret",
        ),
        (
            [
                ("username", DEMO_USERNAME),
                ("password", ""),
                ("client_secret", DEMO_CLIENT_SECRET),
            ],
            400,
            "invalid_request",
        ),
    ] {
        let resp = s
            .http
            .post(s.url("/api/v2/token"))
            .form(&form)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status().as_u16(), status, "{form:?}");
        let body: Value = resp.json().await.unwrap();
        assert_eq!(body["error"], error);
        assert!(body["error_description"]
            .as_str()
            .is_some_and(|d| !d.is_empty()));
    }
    // JSON is not the token request's format.
    let resp = s
        .http
        .post(s.url("/api/v2/token"))
        .json(&json!({"username": DEMO_USERNAME, "password": DEMO_PASSWORD, "client_secret": DEMO_CLIENT_SECRET}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    // GET is not allowed.
    let resp = s.http.get(s.url("/api/v2/token")).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::METHOD_NOT_ALLOWED);
}

#[tokio::test]
async fn the_advanced_api_needs_a_live_bearer_token() {
    let s = Sim::start().await;
    let resp = s.http.get(s.url("/api/v2/casetypes")).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        resp.headers()["www-authenticate"],
        "Bearer error=\"invalid_token\""
    );
    assert_eq!(
        resp.json::<Value>().await.unwrap()["error"],
        "invalid_token"
    );
    assert_eq!(
        s.get("/api/v2/casetypes", "made-up").await.0,
        StatusCode::UNAUTHORIZED
    );

    let token = s.token().await;
    let (status, body) = s.get("/api/v2/casetypes", &token).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body[0], json!({"id": "12", "name": "Auto Accident"}));
    assert_eq!(body.as_array().unwrap().len(), 3);
    let (_, statuses) = s.get("/api/v2/statuses", &token).await;
    assert_eq!(statuses.as_array().unwrap().len(), 5);
    assert_eq!(statuses[0], json!({"id": "7", "name": "Intake"}));
    let (_, fields) = s.get("/api/v2/casetypes/12/customfields", &token).await;
    assert_eq!(
        fields[0],
        json!({"id": "1234", "key": "custom1234", "label": "Date of Injury",
               "inputType": "date", "formSection": "Accident Details"})
    );
    let (status, body) = s.get("/api/v2/casetypes/99/customfields", &token).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body["error"], "not_found");

    let (status, _) = s
        .control(reqwest::Method::POST, "/_sim/tokens/expire", None)
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, body) = s.get("/api/v2/statuses", &token).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(body["error_description"], "The access token expired");
}

#[tokio::test]
async fn notes_are_validated_and_stored() {
    let s = Sim::start().await;
    let token = s.token().await;
    let path = "/api/v2/leads/10001/notes";
    let good = json!({"category": "Client Communications", "subject": "Call", "body": "Hello",
                      "createdAt": "2025-03-14T15:09:26Z"});
    for (body, status, mentions) in [
        (json!({"subject": "s", "body": "b"}), 400, "category"),
        (
            json!({"category": "Gossip", "subject": "s", "body": "b"}),
            400,
            "Gossip",
        ),
        (json!({"category": "General", "body": "b"}), 400, "subject"),
        (
            json!({"category": "General", "subject": "s", "body": "  "}),
            400,
            "body",
        ),
        (
            json!({"category": "General", "subject": "s", "body": "b", "createdAt": "noon"}),
            400,
            "createdAt",
        ),
    ] {
        let (got, answer) = s.post_json(path, &token, body.clone()).await;
        assert_eq!(got.as_u16(), status, "{body}");
        assert!(
            answer["error_description"]
                .as_str()
                .unwrap()
                .contains(mentions),
            "{answer}"
        );
    }
    let (status, _) = s
        .post_json("/api/v2/leads/555/notes", &token, good.clone())
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let resp = s
        .http
        .post(s.url(path))
        .bearer_auth(&token)
        .form(&[("category", "General")])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
    assert!(s.sim().notes("10001").is_empty());

    let (status, note) = s.post_json(path, &token, good).await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(note["leadId"], "10001");
    assert_eq!(note["createdAt"], "2025-03-14T15:09:26Z");
    let notes = s.sim().notes("10001");
    assert_eq!(notes.len(), 1);
    assert_eq!(notes[0].category, "Client Communications");
}

#[tokio::test]
async fn documents_are_validated_and_stored() {
    let s = Sim::start().await;
    let token = s.token().await;
    let path = "/api/v2/leads/10002/documents";
    let form = |folder: &str, form_field: &str, file: Option<&[u8]>| {
        let mut f = Form::new()
            .text("folder", folder.to_owned())
            .text("formField", form_field.to_owned())
            .text("fileName", "call.mp3")
            .text("createdAt", "2025-03-14T15:09:26Z");
        if let Some(bytes) = file {
            f = f.part(
                "file",
                Part::bytes(bytes.to_vec())
                    .file_name("call.mp3")
                    .mime_str("audio/mpeg")
                    .unwrap(),
            );
        }
        f
    };
    for (f, mentions) in [
        (form("recordings", "Recording", Some(b"ID3")), "folder"),
        (form("/recordings", "Audio", Some(b"ID3")), "formField"),
        (form("/recordings", "Recording", None), "file is required"),
        (form("/recordings", "Recording", Some(b"")), "file is empty"),
    ] {
        let (status, answer) = s.post_multipart(path, &token, f).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert!(
            answer["error_description"]
                .as_str()
                .unwrap()
                .contains(mentions),
            "{answer}"
        );
    }
    let (status, _) = s
        .post_multipart(
            "/api/v2/leads/31337/documents",
            &token,
            form("/recordings", "Recording", Some(b"ID3")),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = s.post_json(path, &token, json!({"folder": "/"})).await;
    assert_eq!(status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    assert!(s.sim().documents("10002").is_empty());

    let (status, doc) = s
        .post_multipart(
            path,
            &token,
            form("/recordings", "Recording", Some(b"ID3\x04")),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{doc}");
    assert_eq!(doc["folder"], "/recordings");
    assert_eq!(doc["formField"], "Recording");
    assert_eq!(doc["size"], 4);
    assert_eq!(doc["contentType"], "audio/mpeg");
    assert_eq!(s.sim().documents("10002")[0].bytes, b"ID3\x04");
}

#[tokio::test]
async fn changed_since_needs_a_time_and_filters_by_it() {
    let s = Sim::start().await;
    let token = s.token().await;
    let (status, _) = s.get("/api/v2/leads", &token).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, _) = s.get("/api/v2/notes?changedSince=yesterday", &token).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);

    s.sim()
        .set_now(Some("2030-01-01T00:00:00Z".parse().unwrap()));
    s.sim().set_status("10002", "Signed Up").unwrap();
    s.sim()
        .add_note("10002", "General", "Later", "text")
        .unwrap();
    s.sim().set_now(None);
    // Tokens were issued in real time and live an hour, so the clock stays real from here.
    let (status, leads) = s
        .get("/api/v2/leads?changedSince=2029-12-31T00:00:00Z", &token)
        .await;
    assert_eq!(status, StatusCode::OK);
    let leads = leads.as_array().unwrap();
    assert_eq!(leads.len(), 1);
    assert_eq!(leads[0]["leadId"], "10002");
    assert_eq!(leads[0]["status"], "Signed Up");
    let (_, notes) = s
        .get("/api/v2/notes?changedSince=2029-12-31T00:00:00Z", &token)
        .await;
    assert_eq!(notes.as_array().unwrap().len(), 1);
    assert_eq!(notes[0]["subject"], "Later");
    let (_, all) = s
        .get("/api/v2/leads?changedSince=2000-01-01T00:00:00Z", &token)
        .await;
    assert_eq!(all.as_array().unwrap().len(), 2);
}

#[tokio::test]
async fn the_request_log_shows_exactly_what_arrived() {
    let s = Sim::start().await;
    s.lead_api(&[("Operation", "GetStatus"), ("LeadID", "10001")])
        .await;
    let token = s.token().await;
    s.get("/api/v2/statuses?x=1", &token).await;
    s.post_multipart(
        "/api/v2/leads/10001/documents",
        &token,
        Form::new()
            .text("folder", "/docs")
            .text("formField", "File")
            .text("fileName", "a.txt")
            .text("createdAt", "2025-01-01T00:00:00Z")
            .part(
                "file",
                Part::bytes(vec![1, 2, 3])
                    .file_name("a.txt")
                    .mime_str("text/plain")
                    .unwrap(),
            ),
    )
    .await;
    // Controls are not logged.
    let (status, log) = s
        .control(reqwest::Method::GET, "/_sim/requests", None)
        .await;
    assert_eq!(status, StatusCode::OK);
    let log = log.as_array().unwrap();
    assert_eq!(log.len(), 4, "{log:#?}");

    assert_eq!(log[0]["method"], "POST");
    assert_eq!(log[0]["path"], "/api-legalcrmapp.aspx");
    assert_eq!(log[0]["content_type"], "application/x-www-form-urlencoded");
    assert_eq!(
        log[0]["form"],
        json!([
            ["Key", DEMO_KEY],
            ["Operation", "GetStatus"],
            ["LeadID", "10001"]
        ])
    );
    assert_eq!(log[0]["status"], 200);
    assert_eq!(log[0]["seq"], 1);

    assert_eq!(log[2]["method"], "GET");
    assert_eq!(log[2]["query"], json!([["x", "1"]]));
    let headers = log[2]["headers"].as_array().unwrap();
    assert!(headers.contains(&json!(["authorization", format!("Bearer {token}")])));

    assert_eq!(
        log[3]["form"],
        json!([
            ["folder", "/docs"],
            ["formField", "File"],
            ["fileName", "a.txt"],
            ["createdAt", "2025-01-01T00:00:00Z"]
        ])
    );
    assert_eq!(
        log[3]["files"],
        json!([{"field": "file", "file_name": "a.txt", "content_type": "text/plain", "size": 3}])
    );
    assert_eq!(log[3]["status"], 201);

    let (status, _) = s
        .control(reqwest::Method::DELETE, "/_sim/requests", None)
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert!(s.sim().requests().is_empty());
}

#[tokio::test]
async fn faults_are_injected_over_http() {
    let s = Sim::start().await;
    let token = s.token().await;

    // Rate limit: the next 3 requests get 429 with Retry-After, then all is well.
    let (status, faults) = s
        .control(
            reqwest::Method::POST,
            "/_sim/faults",
            Some(json!({"rate_limit": {"retry_after": 2, "count": 3}})),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(faults["rate_limit"], json!({"retry_after": 2, "count": 3}));
    for _ in 0..3 {
        let resp = s
            .http
            .get(s.url("/api/v2/statuses"))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(resp.headers()["retry-after"], "2");
    }
    assert_eq!(s.get("/api/v2/statuses", &token).await.0, StatusCode::OK);

    // 5xx for the next N requests, whatever the endpoint.
    s.control(
        reqwest::Method::POST,
        "/_sim/faults",
        Some(json!({"fail_5xx": 2})),
    )
    .await;
    assert_eq!(
        s.get("/api/v2/statuses", &token).await.0,
        StatusCode::SERVICE_UNAVAILABLE
    );
    let resp = s
        .http
        .post(s.url("/api-legalcrmapp.aspx"))
        .form(&[
            ("Key", DEMO_KEY),
            ("Operation", "GetStatus"),
            ("LeadID", "10001"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(s.get("/api/v2/statuses", &token).await.0, StatusCode::OK);

    // Slow answers.
    s.control(
        reqwest::Method::POST,
        "/_sim/faults",
        Some(json!({"slow_ms": 300})),
    )
    .await;
    let started = Instant::now();
    assert_eq!(s.get("/api/v2/statuses", &token).await.0, StatusCode::OK);
    assert!(started.elapsed() >= Duration::from_millis(300));
    s.control(
        reqwest::Method::POST,
        "/_sim/faults",
        Some(json!({"slow_ms": 0})),
    )
    .await;

    // Any Key is wrong.
    s.control(
        reqwest::Method::POST,
        "/_sim/faults",
        Some(json!({"wrong_key": true})),
    )
    .await;
    assert_eq!(
        s.lead_api(&[("Operation", "GetStatus"), ("LeadID", "10001")])
            .await,
        "Failed|Invalid Key"
    );

    // Custom fields fail to load.
    s.control(
        reqwest::Method::POST,
        "/_sim/faults",
        Some(json!({"fail_fields": true})),
    )
    .await;
    let (status, body) = s.get("/api/v2/casetypes/12/customfields", &token).await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(body["error"], "server_error");

    // The faulted requests are in the log with the status they got.
    let statuses: Vec<u16> = s.sim().requests().iter().map(|r| r.status).collect();
    assert_eq!(&statuses[1..4], &[429, 429, 429]);
    assert!(statuses.contains(&503));

    // A typo is refused, and DELETE clears everything.
    let (status, _) = s
        .control(
            reqwest::Method::POST,
            "/_sim/faults",
            Some(json!({"fail5xx": 1})),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, faults) = s
        .control(reqwest::Method::DELETE, "/_sim/faults", None)
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        faults,
        json!({"rate_limit": null, "fail_5xx": 0, "slow_ms": 0, "wrong_key": false, "fail_fields": false, "garbled": 0})
    );
    assert_eq!(
        s.get("/api/v2/casetypes/12/customfields", &token).await.0,
        StatusCode::OK
    );
}

/// A webhook receiver: records content type and body.
#[derive(Clone, Default)]
struct Received(Arc<Mutex<Vec<(String, Bytes)>>>);

async fn receiver() -> (String, Received) {
    let received = Received::default();
    let store = received.clone();
    let app = axum::Router::new().route(
        "/hooks/lawruler/tok",
        axum::routing::post(move |headers: HeaderMap, body: Bytes| {
            let store = store.clone();
            async move {
                let ct = headers
                    .get("content-type")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or_default()
                    .to_owned();
                store.0.lock().unwrap().push((ct, body));
                "accepted"
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (format!("http://{addr}/hooks/lawruler/tok"), received)
}

#[tokio::test]
async fn status_webhooks_post_the_lead_as_law_ruler_would() {
    let s = Sim::start().await;
    let (target, received) = receiver().await;

    // JSON, triggered over HTTP, with Params-tab values.
    let (status, answer) = s
        .control(
            reqwest::Method::POST,
            "/_sim/leads/10001/status",
            Some(
                json!({"status": "Sent e-Sign", "target_url": target, "format": "json",
                        "params": {"list_action": "add", "list_id": 123}}),
            ),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(answer["webhook"]["status"], 200);
    assert_eq!(answer["webhook"]["response_body"], "accepted");
    assert_eq!(answer["lead"]["status"], "Sent e-Sign");

    let (ct, body) = received.0.lock().unwrap()[0].clone();
    assert_eq!(ct, "application/json");
    let body: Value = serde_json::from_slice(&body).unwrap();
    let lead = s.sim().lead("10001").unwrap();
    assert_eq!(body["Lead ID"], "10001");
    assert_eq!(body["Case Type ID"], "12");
    assert_eq!(body["Case Type"], "Auto Accident");
    assert_eq!(body["Status ID"], "9");
    assert_eq!(body["Status"], "Sent e-Sign");
    assert_eq!(body["Full Name"], "Jane Doe");
    assert_eq!(body["First Name"], "Jane");
    assert_eq!(body["Last Name"], "Doe");
    assert_eq!(body["Primary Contact ID"], lead.primary_contact_id.as_str());
    assert_eq!(body["Email"], "jane.doe@example.com");
    assert_eq!(body["Cell Phone"], "+1 555 010 2000");
    assert!(body["Created Date"].as_str().unwrap().contains('/'));
    assert_eq!(body["list_action"], "add");
    assert_eq!(body["list_id"], "123");

    // Form, in process.
    let sent = s
        .sim()
        .send_status_webhook(
            "10002",
            "Intake",
            &target,
            casebridge_sim::lawruler::WebhookFormat::Form,
            &[("remove_from_list".to_owned(), "true".to_owned())],
        )
        .await
        .unwrap();
    assert_eq!(sent.status, Some(200));
    let (ct, body) = received.0.lock().unwrap()[1].clone();
    assert_eq!(ct, "application/x-www-form-urlencoded");
    let fields: Vec<(String, String)> = url::form_urlencoded::parse(&body).into_owned().collect();
    assert_eq!(fields[0], ("Lead ID".to_owned(), "10002".to_owned()));
    assert_eq!(fields[4], ("Status".to_owned(), "Intake".to_owned()));
    assert_eq!(
        fields.last().unwrap(),
        &("remove_from_list".to_owned(), "true".to_owned())
    );

    // Multipart.
    let (status, _) = s
        .control(
            reqwest::Method::POST,
            "/_sim/leads/10002/status",
            Some(
                json!({"status": "10", "target_url": target, "format": "multipart",
                        "params": [["campaign_id", "42"]]}),
            ),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let (ct, body) = received.0.lock().unwrap()[2].clone();
    assert!(ct.starts_with("multipart/form-data; boundary="));
    let text = String::from_utf8_lossy(&body);
    assert!(
        text.contains("name=\"Status\"\r\n\r\nReview Needed"),
        "{text}"
    );
    assert!(text.contains("name=\"campaign_id\"\r\n\r\n42"), "{text}");
    assert_eq!(s.sim().webhooks_sent().len(), 3);

    // Bad requests.
    let (status, _) = s
        .control(
            reqwest::Method::POST,
            "/_sim/leads/10001/status",
            Some(json!({"status": "Nope"})),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, _) = s
        .control(
            reqwest::Method::POST,
            "/_sim/leads/999/status",
            Some(json!({"status": "Intake"})),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let dead = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}/x", l.local_addr().unwrap())
    };
    let (status, body) = s
        .control(
            reqwest::Method::POST,
            "/_sim/leads/10001/status",
            Some(json!({"status": "Intake", "target_url": dead})),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_GATEWAY, "{body}");
    // Without a target the status just changes.
    let (status, body) = s
        .control(
            reqwest::Method::POST,
            "/_sim/leads/10001/status",
            Some(json!({"status": "Signed Up"})),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["lead"]["status"], "Signed Up");
}

#[tokio::test]
async fn controls_show_leads_and_take_notes() {
    let s = Sim::start().await;
    let (status, leads) = s.control(reqwest::Method::GET, "/_sim/leads", None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(leads.as_array().unwrap().len(), 2);
    let (status, note) = s
        .control(
            reqwest::Method::POST,
            "/_sim/leads/10001/notes",
            Some(json!({"category": "General", "subject": "Typed in Law Ruler", "body": "hi"})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(note["leadId"], "10001");
    let (status, one) = s
        .control(reqwest::Method::GET, "/_sim/leads/10001", None)
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(one["lead"]["firstName"], "Jane");
    assert_eq!(one["notes"][0]["subject"], "Typed in Law Ruler");
    assert_eq!(
        s.control(reqwest::Method::GET, "/_sim/leads/5", None)
            .await
            .0,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        s.control(reqwest::Method::GET, "/_sim/nothing", None)
            .await
            .0,
        StatusCode::NOT_FOUND
    );
    // An unknown Law Ruler path is a plain 404 (and is logged).
    let resp = s.http.get(s.url("/nope.aspx")).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::NOT_FOUND);
    assert_eq!(s.sim().requests().last().unwrap().status, 404);
}
