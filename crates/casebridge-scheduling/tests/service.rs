//! The scheduling service over a real store (both backends) and the simulator: what is kept
//! when the scheduling service's answer never comes.

use std::sync::Arc;
use std::time::Duration;

use casebridge_crypto::{Keyring, MasterKey};
use casebridge_domain::clock::ManualClock;
use casebridge_domain::company::NewCompany;
use casebridge_domain::page::PageRequest;
use casebridge_domain::records::Name;
use casebridge_domain::scheduling::{BookingStatus, EventTypeId, NewAgent};
use casebridge_scheduling::service::{AttendeeAsk, BookingAsk, Scheduling, SchedulingError};
use casebridge_scheduling::CalClient;
use casebridge_sim::scheduling::{EventTypeSpec, Faults, SchedulingSim, WeeklyHours};
use casebridge_store::{companies, scheduling as db};
use casebridge_testkit::TestDb;

const KEY: &str = "cal_live_service_test";

async fn a_booking_whose_answer_never_comes_stays_pending(
    backend: casebridge_testkit::TestBackend,
) {
    let sim = SchedulingSim::new();
    let user = sim.add_user("firm", "calendar@firm.example", "UTC");
    sim.add_key(user, KEY);
    sim.add_event_type(EventTypeSpec::new(
        5,
        user,
        30,
        WeeklyHours::every_day("UTC", "09:00", "12:00"),
    ));
    sim.set_now("2026-03-01T00:00:00Z".parse().unwrap());
    let running = sim.start().await;

    let db = TestDb::new(backend).await;
    let now = jiff::Timestamp::now();
    let mut tx = db.store.begin().await.unwrap();
    let company = companies::create(
        &mut tx,
        &NewCompany::parse("Firm", Some("Europe/Berlin")).unwrap(),
        now,
    )
    .await
    .unwrap();
    let agent = db::create_agent(
        &mut tx,
        company.id,
        &NewAgent {
            name: Name::parse("name", "Intake").unwrap(),
            appointment_booking: true,
            event_type_id: Some(EventTypeId::parse("e", 5).unwrap()),
        },
        now,
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();

    let scheduling = Scheduling::new(
        db.store.clone(),
        Keyring::new(MasterKey::generate(), Vec::new()),
        CalClient::new(reqwest::Client::new(), &running.base_url)
            .with_timeout(Duration::from_millis(300)),
        Arc::new(ManualClock::new(now)),
    );
    scheduling.connect(company.id, KEY).await.unwrap();

    running.sim.set_faults(Faults {
        down: false,
        delay_ms: 1_000,
    });
    let ask = BookingAsk {
        start: "2026-03-02T10:30".into(), // Berlin, CET: 09:30 UTC
        case_id: None,
        attendee: Some(AttendeeAsk {
            name: Some("Jane".into()),
            email: Some("jane@example.com".into()),
            ..AttendeeAsk::default()
        }),
    };
    let err = scheduling
        .book(company.id, &agent.id.to_string(), &ask)
        .await
        .unwrap_err();
    match &err {
        SchedulingError::Unavailable { message, .. } => {
            assert!(
                message.contains("may or may not have been made"),
                "{message}"
            )
        }
        other => panic!("expected unavailable, got {other:?}"),
    }
    let mut conn = db.store.conn().await.unwrap();
    let kept = db::list_bookings(
        &mut conn,
        company.id,
        agent.id,
        None,
        &PageRequest::default(),
    )
    .await
    .unwrap()
    .items;
    assert_eq!(kept.len(), 1);
    assert_eq!(kept[0].status, BookingStatus::Pending);
    assert_eq!(kept[0].start.to_string(), "2026-03-02T09:30:00Z");
    assert!(err.to_string().contains(&kept[0].id.to_string()));

    // The slow answer did book it (the simulator finishes the request): the service is
    // the authority, and the slot is gone there.
    casebridge_testkit::wait_until(
        Duration::from_secs(10),
        "the slow booking made",
        async || !running.sim.bookings().is_empty(),
    )
    .await;
    assert_eq!(running.sim.bookings().len(), 1);

    // A refusal, by contrast, leaves nothing behind.
    running.sim.set_faults(Faults::default());
    let err = scheduling
        .book(company.id, &agent.id.to_string(), &ask)
        .await
        .unwrap_err();
    assert!(
        matches!(err, SchedulingError::SlotUnavailable { .. }),
        "{err:?}"
    );
    let kept = db::list_bookings(
        &mut conn,
        company.id,
        agent.id,
        None,
        &PageRequest::default(),
    )
    .await
    .unwrap()
    .items;
    assert_eq!(kept.len(), 1);
}
casebridge_testkit::backend_test!(a_booking_whose_answer_never_comes_stays_pending);
