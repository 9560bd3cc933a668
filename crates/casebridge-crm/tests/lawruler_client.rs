//! The Law Ruler client against the simulator, in process: connecting (and naming the wrong
//! value), failure bodies on HTTP 200, rate limits, token refresh, faults, and exactly what
//! reaches Law Ruler for notes, documents and the campaign API.

use std::time::Duration;

use casebridge_crm::lawruler::client::{
    CampaignResult, ConnectError, CredentialField, Credentials, FormField, LawRulerClient,
    LawRulerError, LawRulerPaths, Note, Upload, CLIENT_COMMUNICATIONS,
};
use casebridge_sim::lawruler::{
    LawRulerSim, RunningSim, SimPaths, DEMO_CLIENT_SECRET, DEMO_KEY, DEMO_PASSWORD, DEMO_USERNAME,
};
use jiff::Timestamp;

fn demo_credentials(root: &str) -> Credentials {
    Credentials::new(
        DEMO_USERNAME,
        DEMO_PASSWORD,
        root,
        DEMO_CLIENT_SECRET,
        DEMO_KEY,
    )
}

fn client_for(creds: Credentials, paths: LawRulerPaths) -> LawRulerClient {
    LawRulerClient::new(reqwest::Client::new(), creds, paths).expect("client")
}

async fn started() -> (RunningSim, LawRulerClient) {
    let running = LawRulerSim::new().start().await;
    let client = client_for(
        demo_credentials(&running.base_url),
        LawRulerPaths::default(),
    );
    (running, client)
}

fn pairs(v: &[(&str, &str)]) -> Vec<(String, String)> {
    v.iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

/// No error message or Debug output may carry a secret.
fn assert_no_secrets(text: &str) {
    for secret in [
        DEMO_PASSWORD,
        DEMO_CLIENT_SECRET,
        DEMO_KEY,
        "wrong-password",
    ] {
        assert!(!text.contains(secret), "a secret leaked: {text}");
    }
}

#[tokio::test]
async fn verify_accepts_the_right_values_and_checks_each() {
    let (running, client) = started().await;
    client.verify().await.expect("verified");

    let log = running.sim.requests();
    assert_eq!(log.len(), 2, "{log:#?}");
    assert_eq!(log[0].path, "/api/v2/token");
    assert_eq!(
        log[0].form,
        pairs(&[
            ("username", DEMO_USERNAME),
            ("password", DEMO_PASSWORD),
            ("client_secret", DEMO_CLIENT_SECRET),
        ])
    );
    assert_eq!(log[1].path, "/api-legalcrmapp.aspx");
    assert_eq!(
        log[1].form,
        pairs(&[
            ("Key", DEMO_KEY),
            ("Operation", "GetStatus"),
            ("LeadID", "0")
        ])
    );

    // The token from verify is reused.
    client.case_types().await.unwrap();
    assert_eq!(running.sim.requests_to("/api/v2/token").len(), 1);
}

#[tokio::test]
async fn each_wrong_value_is_named() {
    let running = LawRulerSim::new().start().await;
    let root = running.base_url.clone();
    let cases = [
        (
            CredentialField::Username,
            Credentials::new("nobody", DEMO_PASSWORD, &root, DEMO_CLIENT_SECRET, DEMO_KEY),
        ),
        (
            CredentialField::Password,
            Credentials::new(
                DEMO_USERNAME,
                "wrong-password",
                &root,
                DEMO_CLIENT_SECRET,
                DEMO_KEY,
            ),
        ),
        (
            CredentialField::ClientSecret,
            Credentials::new(
                DEMO_USERNAME,
                DEMO_PASSWORD,
                &root,
                "wrong-secret",
                DEMO_KEY,
            ),
        ),
        (
            CredentialField::Key,
            Credentials::new(
                DEMO_USERNAME,
                DEMO_PASSWORD,
                &root,
                DEMO_CLIENT_SECRET,
                "wrong-key",
            ),
        ),
    ];
    for (field, creds) in cases {
        let client = client_for(creds, LawRulerPaths::default());
        let err = client.verify().await.unwrap_err();
        match &err {
            ConnectError::WrongValue { field: f, message } => {
                assert_eq!(*f, field, "{message}");
                assert!(!message.is_empty());
            }
            other => panic!("{field}: expected WrongValue, got {other:?}"),
        }
        assert_eq!(err.field(), Some(field));
        assert_no_secrets(&format!("{err} {err:?} {client:?}"));
    }
}

#[tokio::test]
async fn a_client_root_where_nothing_listens_is_named() {
    // A port that was free a moment ago: nothing listens there.
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let root = format!("http://127.0.0.1:{port}");
    let client = client_for(demo_credentials(&root), LawRulerPaths::default());
    let err = client.verify().await.unwrap_err();
    assert_eq!(err.field(), Some(CredentialField::ClientRoot), "{err:?}");
    assert!(err.to_string().contains("Client Root"), "{err}");
    assert_no_secrets(&format!("{err} {err:?}"));
}

#[tokio::test]
async fn a_client_root_that_is_not_law_ruler_is_named() {
    let running = LawRulerSim::new().start().await;
    // The address answers, but 404 where the token endpoint should be.
    let paths = LawRulerPaths {
        token: "/no/such/token".into(),
        ..LawRulerPaths::default()
    };
    let client = client_for(demo_credentials(&running.base_url), paths);
    let err = client.verify().await.unwrap_err();
    assert_eq!(err.field(), Some(CredentialField::ClientRoot), "{err:?}");

    // And a Client Root that is not an address at all.
    let err = LawRulerClient::new(
        reqwest::Client::new(),
        demo_credentials("not a root"),
        LawRulerPaths::default(),
    )
    .map_err(ConnectError::from)
    .unwrap_err();
    assert_eq!(err.field(), Some(CredentialField::ClientRoot));
}

#[tokio::test]
async fn failure_bodies_on_http_200_are_errors() {
    let (running, client) = started().await;

    let err = client
        .update_lead("99999", &pairs(&[("FirstName", "X")]))
        .await
        .unwrap_err();
    assert_eq!(
        err,
        LawRulerError::Rejected("update lead: Lead not found".into())
    );
    assert!(!err.is_retryable());

    let err = client
        .update_lead("10001", &pairs(&[("custom9999", "x")]))
        .await
        .unwrap_err();
    assert_eq!(
        err,
        LawRulerError::Rejected("update lead: custom9999 is invalid".into())
    );

    let err = client.lead_status("99999").await.unwrap_err();
    assert!(matches!(err, LawRulerError::Rejected(ref m) if m.contains("Lead not found")));

    // Every one of those was answered 200.
    assert!(running.sim.requests().iter().all(|r| r.status == 200));

    // A Key that stops working is a configuration error, not retried.
    running.sim.wrong_key(true);
    let err = client
        .update_lead("10001", &pairs(&[("FirstName", "X")]))
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            LawRulerError::Config {
                field: CredentialField::Key,
                ..
            }
        ),
        "{err:?}"
    );
    assert!(!err.is_retryable());
    assert_no_secrets(&format!("{err} {err:?}"));
}

#[tokio::test]
async fn leads_are_created_updated_and_read() {
    let (running, client) = started().await;
    let id = client
        .create_lead(&pairs(&[
            ("FirstName", "Ann"),
            ("LastName", "Lee"),
            ("CellPhone", "+1 555 010 4000"),
            ("Email", "ann@example.com"),
            ("CaseType", "Auto Accident"),
            ("custom1234", "3/14/2025"),
        ]))
        .await
        .unwrap();
    let status = client.lead_status(&id).await.unwrap();
    assert_eq!(status.lead_id, id);
    assert_eq!(status.status, "Intake");
    assert_eq!(status.status_id.as_deref(), Some("7"));

    client
        .update_lead(
            &id,
            &pairs(&[("Status", "Sent e-Sign"), ("custom1235", "Yes")]),
        )
        .await
        .unwrap();
    let lead = running.sim.lead(&id).unwrap();
    assert_eq!(lead.status, "Sent e-Sign");
    assert_eq!(lead.fields["custom1234"], "3/14/2025");
    assert_eq!(lead.fields["custom1235"], "Yes");

    let update = running
        .sim
        .requests_to("/api-legalcrmapp.aspx")
        .pop()
        .unwrap();
    assert_eq!(
        update.form,
        pairs(&[
            ("Key", DEMO_KEY),
            ("LeadID", &id),
            ("overridelead", "true"),
            ("Status", "Sent e-Sign"),
            ("custom1235", "Yes"),
        ])
    );
}

#[tokio::test]
async fn rate_limits_carry_retry_after() {
    let (running, client) = started().await;
    running.sim.rate_limit(2, 2);

    let err = client.case_types().await.unwrap_err();
    assert_eq!(
        err,
        LawRulerError::RateLimited {
            retry_after: Some(Duration::from_secs(2))
        }
    );
    assert!(err.is_retryable());
    assert_eq!(err.retry_after(), Some(Duration::from_secs(2)));

    let err = client
        .campaign_call_result(&pairs(&[("LeadID", "10001"), ("OverriddenLead", "true")]))
        .await
        .unwrap_err();
    assert!(matches!(err, LawRulerError::RateLimited { .. }));

    // The burst is over.
    assert_eq!(client.case_types().await.unwrap().len(), 3);

    // Connecting during a burst says so, rather than blaming a value.
    running.sim.rate_limit(5, 1);
    let fresh = client_for(
        demo_credentials(&running.base_url),
        LawRulerPaths::default(),
    );
    assert_eq!(
        fresh.verify().await.unwrap_err(),
        ConnectError::RateLimited {
            retry_after: Some(Duration::from_secs(5))
        }
    );
}

#[tokio::test]
async fn server_errors_and_timeouts_are_transient() {
    let (running, client) = started().await;
    running.sim.fail_5xx(1);
    let err = client.statuses().await.unwrap_err();
    assert!(matches!(err, LawRulerError::Transient(_)), "{err:?}");
    assert!(err.is_retryable());
    assert_eq!(client.statuses().await.unwrap().len(), 5);

    running.sim.fail_5xx(1);
    let err = client.lead_status("10001").await.unwrap_err();
    assert!(matches!(err, LawRulerError::Transient(_)), "{err:?}");

    // A slow Law Ruler and a client with a short timeout.
    running.sim.slow(Duration::from_millis(600));
    let impatient = LawRulerClient::new(
        reqwest::Client::builder()
            .timeout(Duration::from_millis(150))
            .build()
            .unwrap(),
        demo_credentials(&running.base_url),
        LawRulerPaths::default(),
    )
    .unwrap();
    let err = impatient.verify().await.unwrap_err();
    assert!(matches!(err, ConnectError::Unreachable(_)), "{err:?}");
    let err = impatient.lead_status("10001").await.unwrap_err();
    assert!(matches!(err, LawRulerError::Transient(_)), "{err:?}");
}

#[tokio::test]
async fn an_expired_token_is_refreshed_once() {
    let (running, client) = started().await;
    assert_eq!(client.case_types().await.unwrap().len(), 3);
    running.sim.expire_tokens();
    running.sim.clear_requests();

    let statuses = client.statuses().await.unwrap();
    assert_eq!(statuses[0].name, "Intake");

    let log = running.sim.requests();
    let seen: Vec<(&str, u16)> = log.iter().map(|r| (r.path.as_str(), r.status)).collect();
    assert_eq!(
        seen,
        [
            ("/api/v2/statuses", 401),
            ("/api/v2/token", 200),
            ("/api/v2/statuses", 200),
        ]
    );
    assert_ne!(
        log[0].header("authorization"),
        log[2].header("authorization")
    );

    // A token that expires while cached is replaced before use (ttl 1 s, margin a quarter).
    let running = LawRulerSim::builder()
        .token_ttl(Duration::from_secs(1))
        .build()
        .start()
        .await;
    let client = client_for(
        demo_credentials(&running.base_url),
        LawRulerPaths::default(),
    );
    // Keep using the client until it has fetched a second token: every call succeeds, so the
    // old token was never sent once Law Ruler would refuse it.
    casebridge_testkit::wait_until(Duration::from_secs(10), "a second token", async || {
        client.case_types().await.unwrap();
        running.sim.requests_to("/api/v2/token").len() == 2
    })
    .await;
    let log = running.sim.requests();
    assert!(
        log.iter().all(|r| r.status == 200),
        "no 401 on the way: {log:#?}"
    );
}

#[tokio::test]
async fn a_custom_field_load_failure_is_an_error_not_an_empty_list() {
    let (running, client) = started().await;
    let fields = client.custom_fields("12").await.unwrap();
    assert_eq!(fields.len(), 4);
    assert_eq!(fields[0].key, "custom1234");
    assert_eq!(fields[0].label, "Date of Injury");
    assert_eq!(fields[0].input_type, "date");
    assert_eq!(fields[0].form_section, "Accident Details");

    running.sim.fail_fields(true);
    let err = client.custom_fields("12").await.unwrap_err();
    assert!(matches!(err, LawRulerError::Transient(_)), "{err:?}");

    running.sim.fail_fields(false);
    let err = client.custom_fields("999").await.unwrap_err();
    assert!(matches!(err, LawRulerError::Rejected(_)), "{err:?}");
}

#[tokio::test]
async fn notes_documents_and_the_campaign_call_arrive_exactly() {
    let (running, client) = started().await;
    let at: Timestamp = "2025-03-14T15:09:26.535Z".parse().unwrap();

    let result = CampaignResult {
        lead_id: "10001".into(),
        tags: vec!["Kayse".into()],
        status: Some("Qualified – Intake Completed".into()),
        cell_phone: Some("+1 555 010 9999".into()),
        first_name: Some("Jane".into()),
        last_name: Some("Doe".into()),
        custom: vec![
            ("1235".into(), "Yes".into()),
            ("1234".into(), "1/1/2000".into()),
        ],
    };
    client
        .campaign_call_result(&result.to_params())
        .await
        .unwrap();
    let note_id = client
        .add_note(
            "10001",
            &Note {
                category: CLIENT_COMMUNICATIONS.into(),
                subject: "Call Analysis Summary".into(),
                body: "Caller was rear-ended.\nInjured: Yes".into(),
                created_at: at,
            },
        )
        .await
        .unwrap();
    assert!(note_id.is_some());
    let audio = vec![7u8; 4096];
    let doc_id = client
        .upload_document(
            "10001",
            &Upload {
                folder: "/recordings".into(),
                form_field: FormField::Recording,
                file_name: "Kayse VoiceAI Recording – Spring (2025-03-14 15:09).mp3".into(),
                content_type: "audio/mpeg".into(),
                bytes: audio.clone(),
                created_at: at,
            },
        )
        .await
        .unwrap();
    assert!(doc_id.is_some());

    let log = running.sim.requests();
    let paths: Vec<&str> = log.iter().map(|r| r.path.as_str()).collect();
    assert_eq!(
        paths,
        [
            "/api-legalrcampaign.aspx",
            "/api/v2/token",
            "/api/v2/leads/10001/notes",
            "/api/v2/leads/10001/documents",
        ]
    );
    assert!(log.iter().all(|r| r.status / 100 == 2), "{log:#?}");

    // The campaign API takes its values as query parameters (the technical reference's words).
    let campaign = &log[0];
    assert!(campaign.form.is_empty(), "{campaign:?}");
    assert_eq!(
        campaign.query,
        pairs(&[
            ("Key", DEMO_KEY),
            ("LeadID", "10001"),
            ("OverriddenLead", "true"),
            ("Tags", "Kayse"),
            ("Status", "Qualified – Intake Completed"),
            ("CellPhone", "+1 555 010 9999"),
            ("FirstName", "Jane"),
            ("LastName", "Doe"),
            ("Custom1235", "Yes"),
            ("Custom1234", "1/1/2000"),
        ])
    );

    let note = &log[2];
    assert_eq!(note.content_type.as_deref(), Some("application/json"));
    assert_eq!(
        note.json,
        Some(serde_json::json!({
            "category": "Client Communications",
            "subject": "Call Analysis Summary",
            "body": "Caller was rear-ended.\nInjured: Yes",
            "createdAt": "2025-03-14T15:09:26.535Z",
        }))
    );
    assert!(note
        .header("authorization")
        .is_some_and(|h| h.starts_with("Bearer ")));

    let doc = &log[3];
    assert!(doc
        .content_type
        .as_deref()
        .is_some_and(|c| c.starts_with("multipart/form-data; boundary=")));
    assert_eq!(
        doc.form,
        pairs(&[
            ("folder", "/recordings"),
            ("formField", "Recording"),
            (
                "fileName",
                "Kayse VoiceAI Recording – Spring (2025-03-14 15:09).mp3"
            ),
            ("createdAt", "2025-03-14T15:09:26.535Z"),
        ])
    );
    assert_eq!(doc.files.len(), 1);
    assert_eq!(doc.files[0].field, "file");
    assert_eq!(
        doc.files[0].file_name.as_deref(),
        Some("Kayse VoiceAI Recording – Spring (2025-03-14 15:09).mp3")
    );
    assert_eq!(doc.files[0].content_type.as_deref(), Some("audio/mpeg"));
    assert_eq!(doc.files[0].size, 4096);

    // And the tenant now has them.
    let lead = running.sim.lead("10001").unwrap();
    assert_eq!(lead.status, "Qualified – Intake Completed");
    assert_eq!(lead.tags, ["Kayse"]);
    assert_eq!(lead.cell_phone.as_deref(), Some("+1 555 010 9999"));
    assert_eq!(lead.fields["custom1234"], "1/1/2000");
    let notes = running.sim.notes("10001");
    assert_eq!(notes.len(), 1);
    assert_eq!(notes[0].created_at, at);
    let docs = running.sim.documents("10001");
    assert_eq!(docs[0].folder, "/recordings");
    assert_eq!(docs[0].form_field, "Recording");
    assert_eq!(docs[0].bytes, audio);
    assert_eq!(docs[0].created_at, at);
}

#[tokio::test]
async fn rejected_notes_and_documents_say_why() {
    let (_running, client) = started().await;
    let at = Timestamp::now();
    let err = client
        .add_note(
            "10001",
            &Note {
                category: "Gossip".into(),
                subject: "s".into(),
                body: "b".into(),
                created_at: at,
            },
        )
        .await
        .unwrap_err();
    assert!(
        matches!(err, LawRulerError::Rejected(ref m) if m.contains("Gossip")),
        "{err:?}"
    );
    let err = client
        .add_note(
            "99999",
            &Note {
                category: CLIENT_COMMUNICATIONS.into(),
                subject: "s".into(),
                body: "b".into(),
                created_at: at,
            },
        )
        .await
        .unwrap_err();
    assert!(matches!(err, LawRulerError::Rejected(_)), "{err:?}");
    let err = client
        .upload_document(
            "10001",
            &Upload {
                folder: "/recordings".into(),
                form_field: FormField::File,
                file_name: "empty.pdf".into(),
                content_type: "application/pdf".into(),
                bytes: Vec::new(),
                created_at: at,
            },
        )
        .await
        .unwrap_err();
    assert!(
        matches!(err, LawRulerError::Rejected(ref m) if m.contains("empty")),
        "{err:?}"
    );
    // Ids that cannot be path segments never leave the process.
    let err = client
        .add_note(
            "../etc",
            &Note {
                category: CLIENT_COMMUNICATIONS.into(),
                subject: "s".into(),
                body: "b".into(),
                created_at: at,
            },
        )
        .await
        .unwrap_err();
    assert!(matches!(err, LawRulerError::Rejected(_)), "{err:?}");
}

#[tokio::test]
async fn changes_since_a_time() {
    let sim = LawRulerSim::new();
    sim.set_now(Some("2025-01-01T00:00:00Z".parse().unwrap()));
    let old = sim
        .create_lead(casebridge_sim::lawruler::NewLead::new("Old", "Lead", "12"))
        .unwrap();
    sim.add_note(&old, "General", "Old note", "before").unwrap();
    sim.set_now(Some("2025-01-02T00:00:00Z".parse().unwrap()));
    sim.set_status(&old, "Signed Up").unwrap();
    sim.add_note(&old, "Client Communications", "New note", "after")
        .unwrap();
    sim.set_now(None);
    let running = sim.start().await;
    let client = client_for(
        demo_credentials(&running.base_url),
        LawRulerPaths::default(),
    );

    let since: Timestamp = "2025-01-01T12:00:00Z".parse().unwrap();
    let leads = client.leads_changed_since(since).await.unwrap();
    let ids: Vec<&str> = leads.iter().map(|l| l.lead_id.as_str()).collect();
    // The seeded leads were made "now" (real time), the old one changed on 1/2.
    assert!(ids.contains(&old.as_str()), "{ids:?}");
    let changed = leads.iter().find(|l| l.lead_id == old).unwrap();
    assert_eq!(changed.status.as_deref(), Some("Signed Up"));
    assert_eq!(changed.case_type.as_deref(), Some("Auto Accident"));
    assert!(changed.primary_contact_id.is_some());

    let notes = client.notes_changed_since(since).await.unwrap();
    assert_eq!(notes.len(), 1);
    assert_eq!(notes[0].subject, "New note");
    assert_eq!(notes[0].lead_id, old);

    let query = &running.sim.requests_to("/api/v2/notes")[0].query;
    assert_eq!(query, &pairs(&[("changedSince", "2025-01-01T12:00:00Z")]));
}

#[tokio::test]
async fn every_path_is_configuration() {
    let sim_paths = SimPaths {
        lead_api: "/v9/lead.aspx".into(),
        campaign_api: "/v9/campaign.aspx".into(),
        token: "/oauth/token".into(),
        case_types: "/v9/types".into(),
        statuses: "/v9/statuses".into(),
        custom_fields: "/v9/types/{case_type_id}/fields".into(),
        notes: "/v9/lead/{lead_id}/notes".into(),
        documents: "/v9/lead/{lead_id}/files".into(),
        leads_changed: "/v9/changes/leads".into(),
        notes_changed: "/v9/changes/notes".into(),
    };
    let client_paths: LawRulerPaths =
        serde_json::from_value(serde_json::to_value(&sim_paths).unwrap()).unwrap();
    let running = LawRulerSim::builder()
        .paths(sim_paths)
        .build()
        .start()
        .await;
    let client = client_for(demo_credentials(&running.base_url), client_paths);
    client.verify().await.unwrap();
    assert_eq!(client.custom_fields("13").await.unwrap().len(), 3);
    client
        .add_note(
            "10002",
            &Note {
                category: "General".into(),
                subject: "s".into(),
                body: "b".into(),
                created_at: Timestamp::now(),
            },
        )
        .await
        .unwrap();
    let paths: Vec<String> = running.sim.requests().into_iter().map(|r| r.path).collect();
    assert_eq!(
        paths,
        [
            "/oauth/token",
            "/v9/lead.aspx",
            "/v9/types/13/fields",
            "/v9/lead/10002/notes"
        ]
    );
}

/// The policy casebridge runs with in production, but with plain http (the simulator's):
/// no loopback, no private networks.
fn public_only() -> std::sync::Arc<casebridge_webhooks::policy::UrlPolicy> {
    std::sync::Arc::new(casebridge_webhooks::policy::UrlPolicy {
        allow_http: true,
        allowed_private: Vec::new(),
    })
}

fn policed(root: &str) -> LawRulerClient {
    let policy = public_only();
    LawRulerClient::new(
        casebridge_webhooks::policy::safe_client(policy.clone(), Duration::from_secs(5)),
        demo_credentials(root),
        LawRulerPaths::default(),
    )
    .expect("client")
    .with_policy(policy)
}

/// Credentials stored while their Client Root was acceptable: every later request is vetted
/// again, for an IP-literal root (which never reaches the safe client's resolver) and for a name
/// that now resolves to a private (here: loopback) address. Nothing reaches Law Ruler.
#[tokio::test]
async fn every_request_vets_the_client_root_ip_literal_or_name() {
    let running = LawRulerSim::new().start().await;
    let port = running.base_url.rsplit(':').next().unwrap().to_owned();
    for root in [
        format!("http://127.0.0.1:{port}"),
        format!("http://localhost:{port}"),
    ] {
        let client = policed(&root);
        let note = Note {
            category: CLIENT_COMMUNICATIONS.into(),
            subject: "Hello".into(),
            body: "Hello".into(),
            created_at: Timestamp::now(),
        };
        let refusals = [
            client.add_note("10001", &note).await.map(|_| ()),
            client.case_types().await.map(|_| ()),
            client
                .create_lead(&pairs(&[("FirstName", "Jane")]))
                .await
                .map(|_| ()),
        ];
        for r in refusals {
            match r {
                Err(LawRulerError::Config {
                    field: CredentialField::ClientRoot,
                    message,
                }) => {
                    assert!(
                        message.contains("refused") && message.contains("loopback"),
                        "{root}: {message}"
                    );
                }
                other => panic!("{root}: not refused by the policy: {other:?}"),
            }
        }
        assert!(
            running.sim.requests().is_empty(),
            "{root}: {:#?}",
            running.sim.requests()
        );
    }
}
