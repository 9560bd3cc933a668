//! The Cal.com client against the simulator over real HTTP: what is sent, how answers and
//! failures are read.

use std::time::Duration;

use casebridge_domain::scheduling::Attendee;
use casebridge_scheduling::calcom::{BookingRequest, CalClient, CalError};
use casebridge_sim::scheduling::{
    EventTypeSpec, Faults, SchedulingSim, WeeklyHours, DEFAULT_RATE_LIMIT, SLOT_UNAVAILABLE_MESSAGE,
};
use jiff::Timestamp;

const KEY: &str = "cal_live_client_test";

fn ts(s: &str) -> Timestamp {
    s.parse().unwrap()
}

fn sim() -> SchedulingSim {
    let sim = SchedulingSim::new();
    let user = sim.add_user("firm", "calendar@firm.example", "America/New_York");
    sim.add_key(user, KEY);
    sim.add_event_type(EventTypeSpec::new(
        42,
        user,
        30,
        WeeklyHours::weekdays("America/New_York", "09:00", "10:00"),
    ));
    sim.set_now(ts("2026-03-01T00:00:00Z"));
    sim
}

fn attendee() -> Attendee {
    Attendee {
        name: "Jane Doe".into(),
        email: None,
        phone: Some("+15550102000".into()),
        time_zone: "America/New_York".into(),
    }
}

fn request<'a>(start: &str, attendee: &'a Attendee) -> BookingRequest<'a> {
    BookingRequest {
        event_type_id: 42,
        start: ts(start),
        attendee,
        metadata: [("casebridge_booking_id".to_owned(), "b-1".to_owned())].into(),
    }
}

#[tokio::test]
async fn keys_are_checked_with_me() {
    let running = sim().start().await;
    let client = CalClient::new(reqwest::Client::new(), &running.base_url);
    let me = client.me(KEY).await.unwrap();
    assert_eq!(me.email.as_deref(), Some("calendar@firm.example"));
    let err = client.me("cal_live_wrong").await.unwrap_err();
    assert_eq!(
        err,
        CalError::Unauthorized("Your api key is not valid".into())
    );
    let log = running.sim.requests();
    assert_eq!(log[0].bearer.as_deref(), Some(KEY));
    assert_eq!(log[1].status, 401);
}

#[tokio::test]
async fn slots_are_asked_in_utc_and_read_from_the_zone_the_service_writes() {
    let running = sim().start().await;
    let client = CalClient::new(reqwest::Client::new(), &running.base_url);
    // Friday 6th to Monday 9th March 2026, New York changes to EDT on Sunday the 8th.
    let slots = client
        .slots(
            KEY,
            42,
            ts("2026-03-06T05:00:00Z"),
            ts("2026-03-10T04:00:00Z"),
            "America/New_York",
        )
        .await
        .unwrap();
    let starts: Vec<String> = slots.iter().map(|s| s.start.to_string()).collect();
    assert_eq!(
        starts,
        [
            "2026-03-06T14:00:00Z",
            "2026-03-06T14:30:00Z",
            "2026-03-09T13:00:00Z",
            "2026-03-09T13:30:00Z"
        ]
    );
    assert_eq!(slots[0].end, Some(ts("2026-03-06T14:30:00Z")));
    let req = &running.sim.requests()[0];
    assert_eq!(req.api_version.as_deref(), Some("2024-09-04"));
    let q = req.query.as_deref().unwrap();
    assert!(
        q.contains("eventTypeId=42") && q.contains("start=2026-03-06T05%3A00%3A00Z"),
        "{q}"
    );
    assert!(q.contains("timeZone=America%2FNew_York"), "{q}");

    let err = client
        .slots(
            KEY,
            999,
            ts("2026-03-06T05:00:00Z"),
            ts("2026-03-07T05:00:00Z"),
            "UTC",
        )
        .await
        .unwrap_err();
    assert!(matches!(err, CalError::NotFound(_)), "{err:?}");
}

#[tokio::test]
async fn a_booking_is_sent_in_utc_and_a_taken_slot_is_refused() {
    let running = sim().start().await;
    let client = CalClient::new(reqwest::Client::new(), &running.base_url);
    let a = attendee();
    let ok = client
        .create_booking(KEY, &request("2026-03-09T13:30:00Z", &a))
        .await
        .unwrap();
    assert_eq!(ok.start, ts("2026-03-09T13:30:00Z"));
    assert_eq!(ok.end, Some(ts("2026-03-09T14:00:00Z")));
    let sent = running.sim.requests()[0].clone();
    assert_eq!(sent.api_version.as_deref(), Some("2024-08-13"));
    let body = sent.body.unwrap();
    assert_eq!(body["start"], "2026-03-09T13:30:00Z");
    assert_eq!(body["eventTypeId"], 42);
    assert_eq!(body["attendee"]["phoneNumber"], "+15550102000");
    assert!(body["attendee"].get("email").is_none());
    assert_eq!(body["metadata"]["casebridge_booking_id"], "b-1");

    let again = client
        .create_booking(KEY, &request("2026-03-09T13:30:00Z", &a))
        .await
        .unwrap_err();
    assert_eq!(
        again,
        CalError::SlotUnavailable(SLOT_UNAVAILABLE_MESSAGE.into())
    );
    assert_eq!(
        running.sim.requests()[1].status,
        400,
        "Cal.com refuses with 400"
    );
    // The slot is gone from the list.
    let slots = client
        .slots(
            KEY,
            42,
            ts("2026-03-09T00:00:00Z"),
            ts("2026-03-10T00:00:00Z"),
            "UTC",
        )
        .await
        .unwrap();
    assert_eq!(slots.len(), 1);

    let bad = Attendee {
        phone: Some("555".into()),
        ..attendee()
    };
    let err = client
        .create_booking(KEY, &request("2026-03-10T13:00:00Z", &bad))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, CalError::Rejected { status: 400, message } if message.contains("phone")),
        "{err:?}"
    );
}

#[tokio::test]
async fn the_version_header_is_required() {
    let running = sim().start().await;
    let r = reqwest::Client::new()
        .get(format!(
            "{}/v2/slots?eventTypeId=42&start=2026-03-09&end=2026-03-09",
            running.base_url
        ))
        .bearer_auth(KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body["status"], "error");
    assert!(body["error"]["message"]
        .as_str()
        .unwrap()
        .contains("2024-09-04"));
}

#[tokio::test]
async fn rate_limits_faults_and_slowness_are_told_apart() {
    let running = sim().start().await;
    let client = CalClient::new(reqwest::Client::new(), &running.base_url);
    for _ in 0..DEFAULT_RATE_LIMIT {
        client.me(KEY).await.unwrap();
    }
    let err = client.me(KEY).await.unwrap_err();
    match err {
        CalError::RateLimited { retry_after } => assert!(retry_after.unwrap() >= 1),
        other => panic!("expected a rate limit, got {other:?}"),
    }
    // Another key has its own minute.
    running.sim.add_key(1, "cal_live_other");
    client.me("cal_live_other").await.unwrap();

    running.sim.set_faults(Faults {
        down: true,
        delay_ms: 0,
    });
    let err = client.me("cal_live_other").await.unwrap_err();
    assert!(
        matches!(err, CalError::Unavailable(ref m) if m.contains("503")),
        "{err:?}"
    );

    running.sim.set_faults(Faults {
        down: false,
        delay_ms: 1500,
    });
    let quick = client.clone().with_timeout(Duration::from_millis(300));
    let err = quick.me("cal_live_other").await.unwrap_err();
    assert!(matches!(err, CalError::Timeout(_)), "{err:?}");

    let nobody = CalClient::new(reqwest::Client::new(), "http://127.0.0.1:9");
    let err = nobody.me(KEY).await.unwrap_err();
    assert!(
        matches!(err, CalError::Unavailable(ref m) if m.starts_with("could not connect")),
        "{err:?}"
    );
}

/// Every request is vetted against the outbound URL policy right before it is sent: an
/// IP-literal base URL (which never reaches the safe client's resolver) and a name resolving to a
/// private (here: loopback) address are refused, and nothing reaches the service.
#[tokio::test]
async fn every_request_vets_the_base_url_ip_literal_or_name() {
    let running = sim().start().await;
    let port = running.base_url.rsplit(':').next().unwrap().to_owned();
    let policy = std::sync::Arc::new(casebridge_webhooks::policy::UrlPolicy {
        allow_http: true,
        allowed_private: Vec::new(),
    });
    for base in [
        format!("http://127.0.0.1:{port}"),
        format!("http://localhost:{port}"),
    ] {
        let client = CalClient::new(
            casebridge_webhooks::policy::safe_client(policy.clone(), Duration::from_secs(5)),
            &base,
        )
        .with_policy(policy.clone());
        let a = attendee();
        let refusals = [
            client.me(KEY).await.map(|_| ()),
            client
                .slots(
                    KEY,
                    42,
                    ts("2026-03-02T00:00:00Z"),
                    ts("2026-03-03T00:00:00Z"),
                    "UTC",
                )
                .await
                .map(|_| ()),
            client
                .create_booking(KEY, &request("2026-03-02T14:00:00Z", &a))
                .await
                .map(|_| ()),
        ];
        for r in refusals {
            match r {
                Err(CalError::Refused(m)) => assert!(m.contains("loopback"), "{base}: {m}"),
                other => panic!("{base}: not refused by the policy: {other:?}"),
            }
        }
        assert!(
            running.sim.requests().is_empty(),
            "{base}: {:#?}",
            running.sim.requests()
        );
    }
}
