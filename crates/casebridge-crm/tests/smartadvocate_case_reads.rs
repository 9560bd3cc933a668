//! The SmartAdvocate simulator and client for notes by case id (`GET /case/{caseId}/notes`),
//! case contacts (`GET /case/{caseId}/contacts`) and case creation (`POST /case/CreateCase`)
//! with its dedupe of a recent case with the same email or phone. No database: nothing here is
//! stored.

use std::time::Duration;

use casebridge_crm::smartadvocate::client::{
    Credentials, NewCase, SmartAdvocateClient, SmartAdvocateError, SmartAdvocatePaths,
};
use casebridge_sim::smartadvocate::{Operation, SmartAdvocateSim, DEMO_PASSWORD, DEMO_USERNAME};
use jiff::{SignedDuration, Timestamp};
use serde_json::{json, Value};

fn client(base: &str) -> SmartAdvocateClient {
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    SmartAdvocateClient::new(
        http,
        Credentials::new(base, DEMO_USERNAME, DEMO_PASSWORD),
        SmartAdvocatePaths::default(),
    )
    .unwrap()
}

/// A token fetched by hand, for requests the client would never send.
async fn token(base: &str) -> String {
    let v: Value = reqwest::Client::new()
        .post(format!("{base}/CaseSyncAPI/Users/authenticate"))
        .json(&json!({"Username": DEMO_USERNAME, "Password": DEMO_PASSWORD}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    v["token"].as_str().unwrap().to_owned()
}

/// Posts `body` to CreateCase with a valid token; the status and the JSON answer.
async fn raw_create(base: &str, token: &str, body: Value) -> (u16, Value) {
    let r = reqwest::Client::new()
        .post(format!("{base}/CaseSyncAPI/case/CreateCase"))
        .bearer_auth(token)
        .json(&body)
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.json().await.unwrap())
}

fn statuses(sim: &SmartAdvocateSim, op: Operation) -> Vec<u16> {
    sim.requests_of(op).iter().map(|r| r.status).collect()
}

#[tokio::test]
async fn notes_by_case_id_answer_the_cases_notes_and_refuse_an_unknown_case() {
    let sa = SmartAdvocateSim::new().start().await;
    let c = client(&sa.base_url);
    let first = sa
        .sim
        .add_note("9000001", "Intake call", "<p>Called&nbsp;back</p>")
        .unwrap();
    let other = sa
        .sim
        .add_note("9000002", "Other case", "<p>x</p>")
        .unwrap();

    let notes = c.notes_by_case_id("1001").await.unwrap();
    assert_eq!(notes.len(), 1, "{notes:?}");
    assert_eq!(notes[0].note_id, first.to_string());
    assert_eq!(notes[0].case_number, "9000001");
    assert_eq!(notes[0].subject.as_deref(), Some("Intake call"));
    assert_eq!(
        notes[0].note_text.as_deref(),
        Some("<p>Called&nbsp;back</p>")
    );
    assert_ne!(notes[0].note_id, other.to_string());
    // The same records as the documented read by number.
    let by_number = c.notes_by_case_number("9000001").await.unwrap();
    assert_eq!(by_number.len(), 1);
    assert_eq!(by_number[0]["noteID"], json!(first));
    assert!(c.notes_by_case_id("1002").await.unwrap()[0].note_id == other.to_string());

    let err = c.notes_by_case_id("4242").await.unwrap_err();
    assert!(
        matches!(&err, SmartAdvocateError::Rejected(m) if m.contains("Case not found") && m.contains("404")),
        "{err:?}"
    );
    // A non-numeric id never leaves the client as a path.
    assert!(matches!(
        c.notes_by_case_id("../x").await.unwrap_err(),
        SmartAdvocateError::Rejected(_)
    ));
    let logged = sa.sim.requests_of(Operation::NotesByCaseId);
    assert_eq!(statuses(&sa.sim, Operation::NotesByCaseId), [200, 200, 404]);
    assert_eq!(logged[0].path, "/case/1001/notes");
    assert!(logged[0]
        .header("authorization")
        .unwrap()
        .starts_with("Bearer "));

    // No bearer token: 401; the right denied: 403 naming it; a 429 only for this operation.
    let r = reqwest::get(format!("{}/CaseSyncAPI/case/1001/notes", sa.base_url))
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 401);
    sa.sim.deny(Operation::NotesByCaseId);
    assert_eq!(
        c.notes_by_case_id("1001").await.unwrap_err().to_string(),
        "the API user lacks permission for read notes"
    );
    sa.sim.clear_faults();
    sa.sim.rate_limit_on(Operation::NotesByCaseId, 3, 1);
    c.case_types().await.unwrap();
    assert_eq!(
        c.notes_by_case_id("1001").await.unwrap_err(),
        SmartAdvocateError::RateLimited {
            retry_after: Some(Duration::from_secs(3))
        }
    );
    assert_eq!(c.notes_by_case_id("1001").await.unwrap().len(), 1);
}

#[tokio::test]
async fn case_contacts_answer_the_plaintiff_and_refuse_an_unknown_case() {
    let sa = SmartAdvocateSim::new().start().await;
    let c = client(&sa.base_url);
    let contacts = c.case_contacts("1002").await.unwrap();
    assert_eq!(contacts.len(), 1, "{contacts:?}");
    assert_eq!(contacts[0].id, "7002");
    assert_eq!(contacts[0].first_name.as_deref(), Some("John"));
    assert_eq!(contacts[0].last_name.as_deref(), Some("Roe"));
    assert_eq!(contacts[0].email.as_deref(), Some("john@example.com"));
    assert_eq!(contacts[0].phone.as_deref(), Some("+15551230002"));
    let raw = reqwest::Client::new()
        .get(format!("{}/CaseSyncAPI/case/1002/contacts", sa.base_url))
        .bearer_auth(token(&sa.base_url).await)
        .send()
        .await
        .unwrap()
        .json::<Value>()
        .await
        .unwrap();
    assert_eq!(raw[0]["role"], "Plaintiff");
    assert_eq!(raw[0]["primary"], true);

    let err = c.case_contacts("4242").await.unwrap_err();
    assert!(
        matches!(&err, SmartAdvocateError::Rejected(m) if m.contains("Case not found")),
        "{err:?}"
    );
    sa.sim.deny(Operation::CaseContacts);
    let err = c.case_contacts("1002").await.unwrap_err();
    assert_eq!(
        err.to_string(),
        "the API user lacks permission for read case contacts"
    );
    assert!(err.is_config());
    sa.sim.clear_faults();
    sa.sim.empty_bodies(1);
    assert!(matches!(
        c.case_contacts("1002").await.unwrap_err(),
        SmartAdvocateError::Transient(m) if m.contains("empty body")
    ));
    assert_eq!(
        statuses(&sa.sim, Operation::CaseContacts),
        [200, 200, 404, 403, 200]
    );
}

fn jane_again() -> NewCase {
    NewCase {
        first_name: "Janet".into(),
        last_name: "Doe-Smith".into(),
        email: Some("JANE@example.com".into()),
        phone: Some("+1 555 999 0000".into()),
        ..NewCase::default()
    }
}

#[tokio::test]
async fn create_case_makes_a_case_and_answers_a_recent_one_with_the_same_email_or_phone() {
    let sa = SmartAdvocateSim::new().start().await;
    let c = client(&sa.base_url);
    let day = SignedDuration::from_hours(24);
    // The seeded cases date from 2025: too old to be matched, so Jane's email makes a new case.
    let created = c
        .create_case(&NewCase {
            first_name: "Jane".into(),
            last_name: "Doe".into(),
            email: Some("jane@example.com".into()),
            case_type_id: Some(2),
            summary: Some("Slipped in a store".into()),
            ..NewCase::default()
        })
        .await
        .unwrap();
    assert_eq!(created.case_number, "9000003");
    assert_eq!(created.created, Some(true));
    let case = c.case_by_number("9000003").await.unwrap().unwrap();
    assert_eq!(case.case_id, created.case_id);
    assert_eq!(case.case_type.as_deref(), Some("Premises Liability"));
    assert_eq!(case.case_status.as_deref(), Some("Intake"));
    let sent = &sa.sim.requests_of(Operation::CreateCase)[0];
    assert_eq!(
        sent.json.as_ref().unwrap(),
        &json!({"firstName": "Jane", "lastName": "Doe", "email": "jane@example.com",
                "summary": "Slipped in a store", "CaseTypeID": 2})
    );
    let cases_now = sa.sim.cases().len();
    assert_eq!(cases_now, 3);

    // John's case, created two days ago, is inside the 3-day window: the same phone (other
    // punctuation) answers it and creates nothing; the client sees it is not new.
    assert!(sa.sim.edit_case("9000002", |c| {
        c.created = Timestamp::now().checked_sub(day * 2).unwrap();
    }));
    let matched = c
        .create_case(&NewCase {
            first_name: "Johnny".into(),
            last_name: "Roe".into(),
            phone: Some("+1 (555) 123-0002".into()),
            ..NewCase::default()
        })
        .await
        .unwrap();
    assert_eq!(matched.case_number, "9000002");
    assert_eq!(matched.case_id, "1002");
    assert_eq!(matched.created, Some(false));
    assert_eq!(sa.sim.cases().len(), cases_now, "nothing created");

    // The email matches whatever its case: Jane's new case answers for JANE@example.com.
    let again = c.create_case(&jane_again()).await.unwrap();
    assert_eq!(again.case_number, "9000003");
    assert_eq!(sa.sim.cases().len(), cases_now, "nothing created");

    // Four days old is outside the window: a new case for the same phone.
    assert!(sa.sim.edit_case("9000002", |c| {
        c.created = Timestamp::now().checked_sub(day * 4).unwrap();
    }));
    let fresh = c
        .create_case(&NewCase {
            first_name: "Johnny".into(),
            last_name: "Roe".into(),
            phone: Some("+15551230002".into()),
            ..NewCase::default()
        })
        .await
        .unwrap();
    assert_eq!(fresh.case_number, "9000004");
    assert_eq!(fresh.created, Some(true));
    let contacts = c.case_contacts(&fresh.case_id).await.unwrap();
    assert_eq!(contacts[0].first_name.as_deref(), Some("Johnny"));
    assert_ne!(contacts[0].id, "7002", "a new plaintiff contact");
    assert_eq!(sa.sim.cases().len(), cases_now + 1);
    assert_eq!(
        statuses(&sa.sim, Operation::CreateCase),
        [200, 200, 200, 200]
    );
}

#[tokio::test]
async fn create_case_refuses_bad_bodies_with_a_400_naming_the_field() {
    let sa = SmartAdvocateSim::builder()
        .dedupe_window(Duration::ZERO)
        .build()
        .start()
        .await;
    let c = client(&sa.base_url);
    let t = token(&sa.base_url).await;
    for (body, said) in [
        (
            json!({"lastName": "Doe", "email": "a@b.c"}),
            "firstName and lastName are required",
        ),
        (
            json!({"firstName": "A", "lastName": " ", "email": "a@b.c"}),
            "firstName and lastName are required",
        ),
        (
            json!({"firstName": "A", "lastName": "B"}),
            "email or phone is required",
        ),
        (
            json!({"firstName": "A", "lastName": "B", "phone": 5551234}),
            "phone must be a string",
        ),
        (
            json!({"firstName": "A", "lastName": "B", "email": "a@b.c", "CaseTypeID": "1"}),
            "CaseTypeID must be a whole number",
        ),
        (
            json!({"firstName": "A", "lastName": "B", "email": "a@b.c", "CaseTypeID": 99}),
            "CaseTypeID 99 is not a case type",
        ),
        (json!([1, 2]), "A JSON object is required"),
    ] {
        let (status, answer) = raw_create(&sa.base_url, &t, body.clone()).await;
        assert_eq!(status, 400, "{body}");
        assert_eq!(answer, json!({"message": said}), "{body}");
    }
    assert_eq!(sa.sim.cases().len(), 2, "nothing created");
    let err = c
        .create_case(&NewCase {
            first_name: "A".into(),
            last_name: "B".into(),
            email: Some("a@b.c".into()),
            case_type_id: Some(99),
            ..NewCase::default()
        })
        .await
        .unwrap_err();
    assert!(
        matches!(&err, SmartAdvocateError::Rejected(m) if m.contains("CaseTypeID 99 is not a case type")),
        "{err:?}"
    );

    // Without the dedupe, the same email twice makes two cases.
    let one = NewCase {
        first_name: "A".into(),
        last_name: "B".into(),
        email: Some("a@b.c".into()),
        ..NewCase::default()
    };
    let a = c.create_case(&one).await.unwrap();
    let b = c.create_case(&one).await.unwrap();
    assert_ne!(a.case_number, b.case_number);
    assert_eq!(sa.sim.cases().len(), 4);

    // No token: 401; the right denied: 403 naming it; nothing created either way.
    let r = reqwest::Client::new()
        .post(format!("{}/CaseSyncAPI/case/CreateCase", sa.base_url))
        .json(&json!({"firstName": "A", "lastName": "B", "email": "x@y.z"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 401);
    sa.sim.deny(Operation::CreateCase);
    assert_eq!(
        c.create_case(&one).await.unwrap_err().to_string(),
        "the API user lacks permission for create cases"
    );
    sa.sim.clear_faults();
    sa.sim.fail_5xx(1);
    assert!(c.create_case(&one).await.unwrap_err().is_retryable());
    assert_eq!(sa.sim.cases().len(), 4);
}
