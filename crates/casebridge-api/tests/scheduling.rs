//! Scheduling end to end (SPEC §6), on both backends, against the scheduling simulator on
//! `127.0.0.1:0`: connecting a key, agents, availability in the company's time zone across DST
//! changes, booking with the conversion to UTC checked at the simulator, a slot taken
//! meanwhile, concurrent bookings of one slot, and every "cannot book" answer.

use casebridge_sim::scheduling::{EventTypeSpec, Faults, RunningSim, SchedulingSim, WeeklyHours};
use casebridge_store::scheduling as db;
use casebridge_testkit::{TestApp, TestOptions};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

const KEY: &str = "cal_live_9f3c2a7b5d1e4f60a8b7c6d5e4f3a2b1";
/// 30 minutes, Monday–Friday 09:00–12:00 in New York.
const CONSULT: i64 = 100;
/// 60 minutes, every day 14:00–16:00 in London (the host works from London).
const LONDON: i64 = 200;
const NO_SUCH_ID: &str = "01a1feab-0000-7000-8000-000000000000";

fn code(body: &Value) -> &str {
    body["error"]["code"].as_str().unwrap_or("<none>")
}

async fn simulator() -> RunningSim {
    let sim = SchedulingSim::new();
    let user = sim.add_user("firm", "calendar@firm.example", "America/New_York");
    sim.add_key(user, KEY);
    sim.add_event_type(
        EventTypeSpec::new(
            CONSULT,
            user,
            30,
            WeeklyHours::weekdays("America/New_York", "09:00", "12:00"),
        )
        .titled("consultation", "Free Consultation"),
    );
    sim.add_event_type(EventTypeSpec::new(
        LONDON,
        user,
        60,
        WeeklyHours::every_day("Europe/London", "14:00", "16:00"),
    ));
    sim.set_now("2026-03-01T00:00:00Z".parse().unwrap());
    sim.start().await
}

/// The simulator, and the app pointed at it with its company in New York.
async fn setup(backend: casebridge_testkit::TestBackend) -> (TestApp, RunningSim) {
    let sim = simulator().await;
    let app = TestApp::start_with(
        backend,
        TestOptions {
            scheduling_url: sim.base_url.clone(),
            ..TestOptions::default()
        },
    )
    .await;
    let r = app
        .patch("/api/v1/company", json!({"timezone": "America/New_York"}))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    (app, sim)
}

async fn connect(app: &TestApp) {
    let r = app
        .call(
            Method::PUT,
            "/api/v1/integrations/scheduling/connection",
            Some(json!({"api_key": KEY})),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
}

async fn agent(app: &TestApp, event_type_id: Option<i64>) -> String {
    app.create(
        "/api/v1/agents",
        json!({"name": "Intake", "appointment_booking": true, "event_type_id": event_type_id}),
    )
    .await
}

async fn client_case(app: &TestApp) -> String {
    let case_type = app
        .create("/api/v1/case-types", json!({"name": "Auto"}))
        .await;
    let client = app
        .create(
            "/api/v1/clients",
            json!({"first_name": "Jane", "last_name": "Doe", "email": "jane@example.com",
                   "phone": "+1 (555) 010-2000"}),
        )
        .await;
    app.create(
        "/api/v1/cases",
        json!({"name": "Doe", "case_type_id": case_type, "client_id": client}),
    )
    .await
}

fn slot_starts(body: &Value) -> Vec<String> {
    body["slots"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["start"].as_str().unwrap().to_owned())
        .collect()
}

async fn stored_connection(
    app: &TestApp,
) -> Option<casebridge_domain::scheduling::SchedulingConnection> {
    let mut conn = app.db.store.conn().await.unwrap();
    db::connection(&mut conn, app.company_id).await.unwrap()
}

async fn connecting_checks_the_key_and_disconnecting_stops_booking(
    backend: casebridge_testkit::TestBackend,
) {
    let (app, sim) = setup(backend).await;
    let r = app.get("/api/v1/integrations/scheduling").await;
    assert_eq!(
        (r.status, r.body["status"].as_str()),
        (StatusCode::OK, Some("not_connected"))
    );

    // A key the service refuses: a 422 naming api_key, nothing stored.
    let r = app
        .call(
            Method::PUT,
            "/api/v1/integrations/scheduling/connection",
            Some(json!({"api_key": "cal_live_wrong"})),
        )
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.text);
    assert_eq!(r.body["error"]["details"][0]["field"], "api_key");
    assert!(
        r.body["error"]["details"][0]["message"]
            .as_str()
            .unwrap()
            .contains("not valid"),
        "{}",
        r.text
    );
    assert!(stored_connection(&app).await.is_none());
    let r = app
        .call(
            Method::PUT,
            "/api/v1/integrations/scheduling/connection",
            Some(json!({"api_key": "  "})),
        )
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);

    // The service is down: a clear 503, nothing stored.
    sim.sim.set_faults(Faults {
        down: true,
        delay_ms: 0,
    });
    let r = app
        .call(
            Method::PUT,
            "/api/v1/integrations/scheduling/connection",
            Some(json!({"api_key": KEY})),
        )
        .await;
    assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE, "{}", r.text);
    assert_eq!(code(&r.body), "scheduling_unavailable");
    assert!(
        r.body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("scheduling service"),
        "{}",
        r.text
    );
    assert!(stored_connection(&app).await.is_none());
    sim.sim.set_faults(Faults::default());

    // A good key: connected, shown masked, stored sealed.
    connect(&app).await;
    let r = app.get("/api/v1/integrations/scheduling").await;
    assert_eq!(r.body["status"], "connected");
    assert_eq!(r.body["account_email"], "calendar@firm.example");
    assert!(r.body["connected_at"].is_string());
    let masked = r.body["api_key"].as_str().unwrap();
    assert!(
        masked.starts_with("cal_") && masked.contains('•'),
        "{masked}"
    );
    assert!(!r.text.contains(KEY));
    let stored = stored_connection(&app).await.unwrap();
    assert!(!stored.api_key_sealed.contains(KEY));
    let checks: Vec<u16> = sim
        .sim
        .requests()
        .iter()
        .filter(|q| q.path == "/v2/me")
        .map(|q| q.status)
        .collect();
    assert_eq!(
        checks,
        [401, 503, 200],
        "every key was checked with the service"
    );

    let id = agent(&app, Some(CONSULT)).await;
    let r = app.get(&format!("/api/v1/agents/{id}")).await;
    assert_eq!(r.body["booking_status"], "ready");
    let r = app
        .get(&format!(
            "/api/v1/agents/{id}/availability?start=2026-03-09&end=2026-03-09"
        ))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);

    // Disconnect: the key is gone and the agent can no longer book.
    let r = app
        .delete("/api/v1/integrations/scheduling/connection")
        .await;
    assert_eq!(
        (r.status, r.body["status"].as_str()),
        (StatusCode::OK, Some("not_connected"))
    );
    assert!(stored_connection(&app).await.is_none());
    assert_eq!(
        app.get(&format!("/api/v1/agents/{id}")).await.body["booking_status"],
        "not_connected"
    );
    sim.sim.clear_requests();
    let r = app
        .get(&format!(
            "/api/v1/agents/{id}/availability?start=2026-03-09&end=2026-03-09"
        ))
        .await;
    assert_eq!(
        (r.status, code(&r.body)),
        (StatusCode::CONFLICT, "scheduling_not_connected"),
        "{}",
        r.text
    );
    let r = app.post(&format!("/api/v1/agents/{id}/bookings"), json!({
            "start": "2026-03-09T10:00", "attendee": {"name": "Jane", "email": "jane@example.com"}})).await;
    assert_eq!(
        (r.status, code(&r.body)),
        (StatusCode::CONFLICT, "scheduling_not_connected"),
        "{}",
        r.text
    );
    assert!(
        r.body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("connect"),
        "{}",
        r.text
    );
    assert!(
        sim.sim.requests().is_empty(),
        "nothing is sent without a key"
    );
    // Disconnecting again is harmless.
    assert_eq!(
        app.delete("/api/v1/integrations/scheduling/connection")
            .await
            .status,
        StatusCode::OK
    );
}
casebridge_testkit::backend_test!(connecting_checks_the_key_and_disconnecting_stops_booking);

async fn availability_is_in_the_company_zone_across_dst_changes(
    backend: casebridge_testkit::TestBackend,
) {
    let (app, sim) = setup(backend).await;
    connect(&app).await;
    let id = agent(&app, Some(LONDON)).await;

    // New York springs forward on Sunday 8 March 2026, London only on 29 March: the host's
    // 14:00 London slots are 09:00 in New York before the change and 10:00 after.
    let r = app
        .get(&format!(
            "/api/v1/agents/{id}/availability?start=2026-03-07&end=2026-03-09"
        ))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.body["timezone"], "America/New_York");
    assert_eq!(r.body["start"], "2026-03-07T00:00:00-05:00");
    assert_eq!(r.body["end"], "2026-03-10T00:00:00-04:00");
    assert_eq!(
        slot_starts(&r.body),
        [
            "2026-03-07T09:00:00-05:00",
            "2026-03-07T10:00:00-05:00",
            "2026-03-08T10:00:00-04:00",
            "2026-03-08T11:00:00-04:00",
            "2026-03-09T10:00:00-04:00",
            "2026-03-09T11:00:00-04:00",
        ]
    );
    let first = &r.body["slots"][0];
    assert_eq!(
        (
            first["date"].as_str(),
            first["time"].as_str(),
            first["end"].as_str()
        ),
        (
            Some("2026-03-07"),
            Some("09:00"),
            Some("2026-03-07T10:00:00-05:00")
        )
    );
    assert_eq!(r.body["slots"][2]["time"], "10:00");
    // What the service was asked: UTC instants for the local days, in the company's zone.
    let asked = sim
        .sim
        .requests()
        .into_iter()
        .rfind(|q| q.path == "/v2/slots")
        .unwrap();
    let q = asked.query.unwrap();
    assert!(
        q.contains("start=2026-03-07T05%3A00%3A00Z") && q.contains("end=2026-03-10T04%3A00%3A00Z"),
        "{q}"
    );
    assert!(
        q.contains("timeZone=America%2FNew_York") && q.contains(&format!("eventTypeId={LONDON}")),
        "{q}"
    );

    // Falling back on 1 November 2026: the same London 14:00 is 10:00 EDT, then 09:00 EST.
    let r = app
        .get(&format!(
            "/api/v1/agents/{id}/availability?start=2026-10-31&end=2026-11-01"
        ))
        .await;
    assert_eq!(
        slot_starts(&r.body),
        [
            "2026-10-31T10:00:00-04:00",
            "2026-10-31T11:00:00-04:00",
            "2026-11-01T09:00:00-05:00",
            "2026-11-01T10:00:00-05:00",
        ]
    );

    // A local start and end with times, and one with an offset.
    let r = app
        .get(&format!(
            "/api/v1/agents/{id}/availability?start=2026-03-08T10:30&end=2026-03-08T23:00"
        ))
        .await;
    assert_eq!(slot_starts(&r.body), ["2026-03-08T11:00:00-04:00"]);
    let r = app.get(&format!(
            "/api/v1/agents/{id}/availability?start=2026-03-08T15:00:00Z&end=2026-03-08T16:00:00%2B00:00")).await;
    assert_eq!(slot_starts(&r.body), ["2026-03-08T11:00:00-04:00"]);

    // Bad ranges are named.
    for (query, field, needle) in [
        ("start=2026-03-09&end=2026-03-08", "end", "after start"),
        ("start=2026-03-01&end=2026-04-02", "end", "31 days"),
        ("start=soon&end=2026-03-08", "start", "not a time"),
        ("end=2026-03-08", "start", "required"),
    ] {
        let r = app
            .get(&format!("/api/v1/agents/{id}/availability?{query}"))
            .await;
        assert_eq!(
            r.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{query}: {}",
            r.text
        );
        assert_eq!(r.body["error"]["details"][0]["field"], field, "{query}");
        assert!(
            r.body["error"]["details"][0]["message"]
                .as_str()
                .unwrap()
                .contains(needle),
            "{query}: {}",
            r.text
        );
    }
    let r = app
        .get(&format!(
            "/api/v1/agents/{NO_SUCH_ID}/availability?start=2026-03-07&end=2026-03-08"
        ))
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
}
casebridge_testkit::backend_test!(availability_is_in_the_company_zone_across_dst_changes);

async fn booking_converts_local_time_to_utc_and_records_it_on_the_case(
    backend: casebridge_testkit::TestBackend,
) {
    let (app, sim) = setup(backend).await;
    connect(&app).await;
    let id = agent(&app, Some(CONSULT)).await;
    let case_id = client_case(&app).await;

    // A local time after the spring change: 10:00 EDT is 14:00 UTC.
    let r = app
        .post(
            &format!("/api/v1/agents/{id}/bookings"),
            json!({"start": "2026-03-09T10:00", "case_id": case_id}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    assert_eq!(r.body["start"], "2026-03-09T10:00:00-04:00");
    assert_eq!(r.body["end"], "2026-03-09T10:30:00-04:00");
    assert_eq!(r.body["start_utc"], "2026-03-09T14:00:00.000Z");
    assert_eq!(r.body["status"], "booked");
    assert_eq!(r.body["case_id"], case_id.as_str());
    assert_eq!(
        r.body["attendee"],
        json!({"name": "Jane Doe", "email": "jane@example.com",
            "phone": "+15550102000", "time_zone": "America/New_York"})
    );
    let sent = sim
        .sim
        .requests()
        .into_iter()
        .rfind(|q| q.path == "/v2/bookings")
        .unwrap();
    assert_eq!(sent.api_version.as_deref(), Some("2024-08-13"));
    assert_eq!(sent.bearer.as_deref(), Some(KEY));
    let body = sent.body.unwrap();
    assert_eq!(body["start"], "2026-03-09T14:00:00Z");
    assert_eq!(body["eventTypeId"], CONSULT);
    assert_eq!(
        body["attendee"],
        json!({"name": "Jane Doe", "email": "jane@example.com",
            "phoneNumber": "+15550102000", "timeZone": "America/New_York"})
    );
    assert_eq!(body["metadata"]["casebridge_case_id"], case_id.as_str());
    let booked = sim.sim.bookings();
    assert_eq!(r.body["external_uid"], booked[0].uid.as_str());

    // Before the change: 10:00 EST is 15:00 UTC.
    let r = app
        .post(
            &format!("/api/v1/agents/{id}/bookings"),
            json!({"start": "2026-03-06T10:00:00", "case_id": case_id}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    assert_eq!(r.body["start_utc"], "2026-03-06T15:00:00.000Z");
    assert_eq!(
        sim.sim.bookings()[1].start.to_string(),
        "2026-03-06T15:00:00Z"
    );

    // An explicit offset, an explicit attendee (phone only), no case.
    let r = app.post(&format!("/api/v1/agents/{id}/bookings"), json!({
            "start": "2026-03-10T15:30:00+01:00",
            "attendee": {"name": "Sam Roe", "phone": "(555) 010-3000", "time_zone": "America/Chicago"}})).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    assert_eq!(r.body["start"], "2026-03-10T10:30:00-04:00");
    let body = sim
        .sim
        .requests()
        .into_iter()
        .rfind(|q| q.path == "/v2/bookings")
        .unwrap()
        .body
        .unwrap();
    assert_eq!(body["start"], "2026-03-10T14:30:00Z");
    assert_eq!(
        body["attendee"],
        json!({"name": "Sam Roe", "phoneNumber": "+15550103000",
            "timeZone": "America/Chicago"})
    );

    // The booked slot is gone from availability.
    let r = app
        .get(&format!(
            "/api/v1/agents/{id}/availability?start=2026-03-09&end=2026-03-09"
        ))
        .await;
    let starts = slot_starts(&r.body);
    assert_eq!(starts.len(), 5);
    assert!(!starts.contains(&"2026-03-09T10:00:00-04:00".to_owned()));

    // Local times that do not exist or happen twice are refused, and nothing is sent.
    let before = sim.sim.requests().len();
    for (start, needle) in [
        ("2026-03-08T02:30", "does not exist"),
        ("2026-11-01T01:30", "happens twice"),
    ] {
        let r = app
            .post(
                &format!("/api/v1/agents/{id}/bookings"),
                json!({"start": start, "case_id": case_id}),
            )
            .await;
        assert_eq!(
            r.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{start}: {}",
            r.text
        );
        assert_eq!(r.body["error"]["details"][0]["field"], "start");
        assert!(r.text.contains(needle), "{start}: {}", r.text);
    }
    assert_eq!(sim.sim.requests().len(), before);

    // The bookings are recorded with the agent and the case.
    let r = app
        .get(&format!("/api/v1/agents/{id}/bookings?case_id={case_id}"))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let listed = r.body["data"].as_array().unwrap();
    assert_eq!(listed.len(), 2);
    assert!(listed
        .iter()
        .all(|b| b["status"] == "booked" && b["external_uid"].is_string()));
    assert_eq!(
        app.get(&format!("/api/v1/agents/{id}/bookings")).await.body["data"]
            .as_array()
            .unwrap()
            .len(),
        3
    );
}
casebridge_testkit::backend_test!(booking_converts_local_time_to_utc_and_records_it_on_the_case);

async fn a_slot_taken_meanwhile_is_reported_with_nearby_slots(
    backend: casebridge_testkit::TestBackend,
) {
    let (app, sim) = setup(backend).await;
    connect(&app).await;
    let id = agent(&app, Some(CONSULT)).await;

    // Someone books 10:00 on the booking page after the agent read the slots.
    sim.sim
        .book_directly(CONSULT, "2026-03-09T14:00:00Z".parse().unwrap())
        .unwrap();
    let r = app.post(&format!("/api/v1/agents/{id}/bookings"), json!({
            "start": "2026-03-09T10:00", "attendee": {"name": "Jane", "email": "jane@example.com"}})).await;
    assert_eq!(
        (r.status, code(&r.body)),
        (StatusCode::CONFLICT, "slot_unavailable"),
        "{}",
        r.text
    );
    let alternatives: Vec<&str> = r.body["error"]["available_slots"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["start"].as_str().unwrap())
        .collect();
    assert_eq!(
        alternatives,
        [
            "2026-03-09T09:00:00-04:00",
            "2026-03-09T09:30:00-04:00",
            "2026-03-09T10:30:00-04:00",
            "2026-03-09T11:00:00-04:00",
            "2026-03-09T11:30:00-04:00",
        ]
    );
    // Nothing is recorded for the refused booking.
    let r = app.get(&format!("/api/v1/agents/{id}/bookings")).await;
    assert!(r.body["data"].as_array().unwrap().is_empty(), "{}", r.text);

    // A time outside working hours is refused the same way.
    let r = app.post(&format!("/api/v1/agents/{id}/bookings"), json!({
            "start": "2026-03-09T15:00", "attendee": {"name": "Jane", "email": "jane@example.com"}})).await;
    assert_eq!(code(&r.body), "slot_unavailable", "{}", r.text);
}
casebridge_testkit::backend_test!(a_slot_taken_meanwhile_is_reported_with_nearby_slots);

async fn two_concurrent_bookings_of_one_slot_one_wins(backend: casebridge_testkit::TestBackend) {
    let (app, sim) = setup(backend).await;
    connect(&app).await;
    let id = agent(&app, Some(CONSULT)).await;
    let path = format!("/api/v1/agents/{id}/bookings");
    let one = app.post(
        &path,
        json!({"start": "2026-03-10T11:00",
            "attendee": {"name": "First Caller", "email": "first@example.com"}}),
    );
    let two = app.post(
        &path,
        json!({"start": "2026-03-10T11:00",
            "attendee": {"name": "Second Caller", "email": "second@example.com"}}),
    );
    let (a, b) = tokio::join!(one, two);
    let mut statuses = [a.status, b.status];
    statuses.sort();
    assert_eq!(
        statuses,
        [StatusCode::CREATED, StatusCode::CONFLICT],
        "{} / {}",
        a.text,
        b.text
    );
    let lost = if a.status == StatusCode::CONFLICT {
        &a
    } else {
        &b
    };
    assert_eq!(code(&lost.body), "slot_unavailable");
    let alternatives = lost.body["error"]["available_slots"].as_array().unwrap();
    assert!(!alternatives.is_empty());
    assert!(alternatives
        .iter()
        .all(|s| s["start"] != "2026-03-10T11:00:00-04:00"));

    assert_eq!(
        sim.sim.bookings().len(),
        1,
        "the service holds exactly one booking"
    );
    let r = app.get(&path).await;
    let listed = r.body["data"].as_array().unwrap();
    assert_eq!(listed.len(), 1, "{}", r.text);
    assert_eq!(listed[0]["status"], "booked");
    assert_eq!(
        listed[0]["external_uid"],
        sim.sim.bookings()[0].uid.as_str()
    );
}
casebridge_testkit::backend_test!(two_concurrent_bookings_of_one_slot_one_wins);

async fn booking_needs_it_turned_on_an_event_type_and_a_working_service(
    backend: casebridge_testkit::TestBackend,
) {
    let (app, sim) = setup(backend).await;
    connect(&app).await;
    let attendee = json!({"name": "Jane", "email": "jane@example.com"});

    let off = app
        .create(
            "/api/v1/agents",
            json!({"name": "Receptionist", "event_type_id": CONSULT}),
        )
        .await;
    let r = app.get(&format!("/api/v1/agents/{off}")).await;
    assert_eq!(
        (
            r.body["appointment_booking"].as_bool(),
            r.body["booking_status"].as_str()
        ),
        (Some(false), Some("booking_off"))
    );
    let r = app
        .get(&format!(
            "/api/v1/agents/{off}/availability?start=2026-03-09&end=2026-03-09"
        ))
        .await;
    assert_eq!(
        (r.status, code(&r.body)),
        (StatusCode::CONFLICT, "booking_disabled"),
        "{}",
        r.text
    );
    let r = app
        .post(
            &format!("/api/v1/agents/{off}/bookings"),
            json!({"start": "2026-03-09T10:00", "attendee": attendee}),
        )
        .await;
    assert_eq!(
        (r.status, code(&r.body)),
        (StatusCode::CONFLICT, "booking_disabled"),
        "{}",
        r.text
    );
    assert!(r.body["error"]["message"]
        .as_str()
        .unwrap()
        .contains("appointment_booking"));

    let no_type = agent(&app, None).await;
    assert_eq!(
        app.get(&format!("/api/v1/agents/{no_type}")).await.body["booking_status"],
        "no_event_type"
    );
    let r = app
        .post(
            &format!("/api/v1/agents/{no_type}/bookings"),
            json!({"start": "2026-03-09T10:00", "attendee": attendee}),
        )
        .await;
    assert_eq!(
        (r.status, code(&r.body)),
        (StatusCode::CONFLICT, "event_type_missing"),
        "{}",
        r.text
    );
    let r = app
        .get(&format!(
            "/api/v1/agents/{no_type}/availability?start=2026-03-09&end=2026-03-09"
        ))
        .await;
    assert_eq!(code(&r.body), "event_type_missing");

    let unknown = agent(&app, Some(999)).await;
    let r = app
        .get(&format!(
            "/api/v1/agents/{unknown}/availability?start=2026-03-09&end=2026-03-09"
        ))
        .await;
    assert_eq!(
        (r.status, code(&r.body)),
        (StatusCode::CONFLICT, "event_type_not_found"),
        "{}",
        r.text
    );

    let id = agent(&app, Some(CONSULT)).await;
    // Who the appointment is with must be known.
    let r = app
        .post(
            &format!("/api/v1/agents/{id}/bookings"),
            json!({"start": "2026-03-09T10:00"}),
        )
        .await;
    assert_eq!(
        (r.status, r.body["error"]["details"][0]["field"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("attendee")),
        "{}",
        r.text
    );
    let r = app
        .post(
            &format!("/api/v1/agents/{id}/bookings"),
            json!({"start": "2026-03-09T10:00", "case_id": NO_SUCH_ID}),
        )
        .await;
    assert_eq!(
        r.body["error"]["details"][0]["field"], "case_id",
        "{}",
        r.text
    );
    let r = app
        .post(
            &format!("/api/v1/agents/{id}/bookings"),
            json!({"start": "2026-03-09T10:00", "attendee": {"name": "Jane"}}),
        )
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.text);
    // The service refuses a time in the past (its clock decides); the field is named.
    let r = app
        .post(
            &format!("/api/v1/agents/{id}/bookings"),
            json!({"start": "2026-02-27T10:00", "attendee": attendee}),
        )
        .await;
    assert_eq!(
        (r.status, r.body["error"]["details"][0]["field"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("start")),
        "{}",
        r.text
    );

    // The service is down, or slow to the point of failing: a clear 503, nothing recorded.
    sim.sim.set_faults(Faults {
        down: true,
        delay_ms: 0,
    });
    let r = app
        .post(
            &format!("/api/v1/agents/{id}/bookings"),
            json!({"start": "2026-03-09T10:00", "attendee": attendee}),
        )
        .await;
    assert_eq!(
        (r.status, code(&r.body)),
        (StatusCode::SERVICE_UNAVAILABLE, "scheduling_unavailable"),
        "{}",
        r.text
    );
    assert!(
        r.body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("unavailable"),
        "{}",
        r.text
    );
    let r = app
        .get(&format!(
            "/api/v1/agents/{id}/availability?start=2026-03-09&end=2026-03-09"
        ))
        .await;
    assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE);
    sim.sim.set_faults(Faults::default());
    let r = app.get(&format!("/api/v1/agents/{id}/bookings")).await;
    assert!(r.body["data"].as_array().unwrap().is_empty(), "{}", r.text);

    // The service rate limits the key: 503 with its Retry-After.
    sim.sim.set_rate_limit(0);
    let r = app
        .get(&format!(
            "/api/v1/agents/{id}/availability?start=2026-03-09&end=2026-03-09"
        ))
        .await;
    assert_eq!(
        (r.status, code(&r.body)),
        (StatusCode::SERVICE_UNAVAILABLE, "scheduling_unavailable"),
        "{}",
        r.text
    );
    assert!(r.headers.get("retry-after").is_some());
    sim.sim.set_rate_limit(120);

    // The key was revoked at the service: the admin is told to reconnect.
    sim.sim.revoke_key(KEY);
    let r = app
        .post(
            &format!("/api/v1/agents/{id}/bookings"),
            json!({"start": "2026-03-09T10:00", "attendee": attendee}),
        )
        .await;
    assert_eq!(
        (r.status, code(&r.body)),
        (StatusCode::CONFLICT, "scheduling_key_rejected"),
        "{}",
        r.text
    );
    assert!(!r.text.contains(KEY));
}
casebridge_testkit::backend_test!(booking_needs_it_turned_on_an_event_type_and_a_working_service);

async fn agents_round_trip_and_are_tenant_scoped(backend: casebridge_testkit::TestBackend) {
    let (app, _sim) = setup(backend).await;
    let doc = TestApp::reply(
        app.http
            .get(app.url("/api/v1/openapi.json"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    let paths = doc.body["paths"].as_object().unwrap();
    for p in [
        "/api/v1/agents",
        "/api/v1/agents/{id}",
        "/api/v1/agents/{id}/availability",
        "/api/v1/agents/{id}/bookings",
        "/api/v1/integrations/scheduling",
        "/api/v1/integrations/scheduling/connection",
    ] {
        assert!(
            paths.contains_key(p),
            "{p} missing from the OpenAPI document"
        );
    }
    assert!(doc.body["components"]["schemas"]["SchedulingErrorBody"].is_object());
    connect(&app).await;
    let r = app
        .post(
            "/api/v1/agents",
            json!({"name": "  Intake  ", "event_type_id": "1001"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    assert_eq!(
        (
            r.body["name"].as_str(),
            r.body["event_type_id"].as_i64(),
            r.body["appointment_booking"].as_bool()
        ),
        (Some("Intake"), Some(1001), Some(false))
    );
    let id = r.body["id"].as_str().unwrap().to_owned();

    let r = app
        .patch(
            &format!("/api/v1/agents/{id}"),
            json!({"appointment_booking": true}),
        )
        .await;
    assert_eq!(
        (
            r.body["appointment_booking"].as_bool(),
            r.body["event_type_id"].as_i64(),
            r.body["booking_status"].as_str()
        ),
        (Some(true), Some(1001), Some("ready"))
    );
    let r = app
        .patch(
            &format!("/api/v1/agents/{id}"),
            json!({"event_type_id": null}),
        )
        .await;
    assert_eq!(
        (
            r.body["event_type_id"].clone(),
            r.body["booking_status"].as_str()
        ),
        (Value::Null, Some("no_event_type"))
    );
    for bad in [
        json!({"event_type_id": 0}),
        json!({"event_type_id": "abc"}),
        json!({"name": " "}),
        json!({"colour": "blue"}),
    ] {
        let r = app
            .patch(&format!("/api/v1/agents/{id}"), bad.clone())
            .await;
        assert_eq!(
            r.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{bad}: {}",
            r.text
        );
    }
    let r = app
        .post("/api/v1/agents", json!({"name": "X", "event_type_id": -4}))
        .await;
    assert_eq!(r.body["error"]["details"][0]["field"], "event_type_id");
    assert_eq!(
        app.get("/api/v1/agents").await.body["data"]
            .as_array()
            .unwrap()
            .len(),
        1
    );

    // Another company sees none of it.
    let (_other, other_key) = app.new_company("Other Firm").await;
    let as_other = |m: Method, p: String, b: Option<Value>| {
        let key = other_key.clone();
        let app = &app;
        async move { app.call_as(&key, m, &p, b).await }
    };
    let r = as_other(Method::GET, "/api/v1/agents".into(), None).await;
    assert!(r.body["data"].as_array().unwrap().is_empty());
    for (m, p, b) in [
        (Method::GET, format!("/api/v1/agents/{id}"), None),
        (
            Method::PATCH,
            format!("/api/v1/agents/{id}"),
            Some(json!({"name": "Mine"})),
        ),
        (
            Method::GET,
            format!("/api/v1/agents/{id}/availability?start=2026-03-09&end=2026-03-09"),
            None,
        ),
        (
            Method::POST,
            format!("/api/v1/agents/{id}/bookings"),
            Some(
                json!({"start": "2026-03-09T10:00", "attendee": {"name": "J", "email": "j@example.com"}}),
            ),
        ),
        (Method::GET, format!("/api/v1/agents/{id}/bookings"), None),
    ] {
        let r = as_other(m.clone(), p.clone(), b).await;
        assert_eq!(r.status, StatusCode::NOT_FOUND, "{m} {p}: {}", r.text);
    }
    assert_eq!(
        app.get(&format!("/api/v1/agents/{id}")).await.body["name"],
        "Intake"
    );
    // Nor its scheduling connection.
    let r = as_other(Method::GET, "/api/v1/integrations/scheduling".into(), None).await;
    assert_eq!(r.body["status"], "not_connected");

    // A case of another company cannot be booked for.
    app.patch(
        &format!("/api/v1/agents/{id}"),
        json!({"event_type_id": CONSULT}),
    )
    .await
    .expect(StatusCode::OK);
    let case_type = as_other(
        Method::POST,
        "/api/v1/case-types".into(),
        Some(json!({"name": "Auto"})),
    )
    .await;
    let theirs = as_other(
        Method::POST,
        "/api/v1/cases".into(),
        Some(json!({"name": "Theirs",
            "case_type_id": case_type.body["id"]})),
    )
    .await;
    let r = app
        .post(
            &format!("/api/v1/agents/{id}/bookings"),
            json!({
            "start": "2026-03-09T10:00", "case_id": theirs.body["id"],
            "attendee": {"name": "J", "email": "j@example.com"}}),
        )
        .await;
    assert_eq!(
        (r.status, r.body["error"]["details"][0]["field"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("case_id")),
        "{}",
        r.text
    );
}
casebridge_testkit::backend_test!(agents_round_trip_and_are_tenant_scoped);
