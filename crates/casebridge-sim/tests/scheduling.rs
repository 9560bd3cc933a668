//! The scheduling simulator on the wire: Cal.com's shapes, errors, limits and the controls.

use casebridge_sim::scheduling::{
    EventTypeSpec, SchedulingSim, WeeklyHours, DEMO_API_KEY, SLOT_UNAVAILABLE_MESSAGE,
};
use reqwest::{Client, StatusCode};
use serde_json::{json, Value};

const KEY: &str = "cal_live_wire_test";

async fn running() -> casebridge_sim::scheduling::RunningSim {
    let sim = SchedulingSim::new();
    let user = sim.add_user("firm", "calendar@firm.example", "America/New_York");
    sim.add_key(user, KEY);
    sim.add_event_type(EventTypeSpec::new(
        3,
        user,
        60,
        WeeklyHours::every_day("America/New_York", "09:00", "11:00"),
    ));
    sim.set_now("2026-03-01T00:00:00Z".parse().unwrap());
    sim.start().await
}

async fn get(url: &str, key: Option<&str>, version: Option<&str>) -> (StatusCode, Value) {
    let mut req = Client::new().get(url);
    if let Some(k) = key {
        req = req.bearer_auth(k);
    }
    if let Some(v) = version {
        req = req.header("cal-api-version", v);
    }
    let r = req.send().await.unwrap();
    (r.status(), r.json().await.unwrap_or(Value::Null))
}

async fn book(base: &str, body: Value) -> (StatusCode, Value) {
    let r = Client::new()
        .post(format!("{base}/v2/bookings"))
        .bearer_auth(KEY)
        .header("cal-api-version", "2024-08-13")
        .json(&body)
        .send()
        .await
        .unwrap();
    (r.status(), r.json().await.unwrap())
}

#[tokio::test]
async fn slots_are_keyed_by_date_in_the_requested_zone() {
    let sim = running().await;
    let (status, body) = get(
        &format!(
            "{}/v2/slots?eventTypeId=3&start=2026-03-07&end=2026-03-08&timeZone=America/New_York",
            sim.base_url
        ),
        Some(KEY),
        Some("2024-09-04"),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        body,
        json!({"status": "success", "data": {
            "2026-03-07": [{"start": "2026-03-07T09:00:00.000-05:00"},
                           {"start": "2026-03-07T10:00:00.000-05:00"}],
            "2026-03-08": [{"start": "2026-03-08T09:00:00.000-04:00"},
                           {"start": "2026-03-08T10:00:00.000-04:00"}],
        }})
    );
    // The same instants keyed in UTC, and as ranges.
    let (_, body) = get(
        &format!(
            "{}/v2/slots?eventTypeId=3&start=2026-03-08T13:00:00Z&end=2026-03-08T13:00:00Z&format=range",
            sim.base_url
        ),
        Some(KEY),
        Some("2024-09-04"),
    )
    .await;
    assert_eq!(
        body["data"],
        json!({"2026-03-08": [{"start": "2026-03-08T13:00:00.000+00:00",
                               "end": "2026-03-08T14:00:00.000+00:00"}]})
    );
    let (status, body) = get(
        &format!(
            "{}/v2/slots?start=2026-03-07&end=nope&timeZone=Mars/Base",
            sim.base_url
        ),
        Some(KEY),
        Some("2024-09-04"),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let msg = body["error"]["message"].as_str().unwrap();
    assert!(
        msg.contains("eventTypeId") && msg.contains("end") && msg.contains("timeZone"),
        "{msg}"
    );
}

#[tokio::test]
async fn errors_use_the_cal_com_envelope() {
    let sim = running().await;
    let (status, body) = get(&format!("{}/v2/me", sim.base_url), Some("cal_nope"), None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(body["status"], "error");
    assert_eq!(body["path"], "/v2/me");
    assert!(body["timestamp"].is_string());
    assert_eq!(
        body["error"],
        json!({"code": "UnauthorizedException", "message": "Your api key is not valid"})
    );
    let (status, body) = get(&format!("{}/v2/me", sim.base_url), None, None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(body["error"]["message"]
        .as_str()
        .unwrap()
        .contains("Bearer"));
    let (status, body) = get(&format!("{}/v2/nothing", sim.base_url), Some(KEY), None).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (StatusCode::NOT_FOUND, Some("NotFoundException"))
    );
    let (status, body) = get(&format!("{}/v2/me", sim.base_url), Some(KEY), None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["data"]["email"], "calendar@firm.example");
}

#[tokio::test]
async fn bookings_are_validated_and_a_slot_is_booked_once() {
    let sim = running().await;
    let base = &sim.base_url;
    let (status, body) = book(
        base,
        json!({"start": "2026-03-09T13:00:00Z", "eventTypeId": 3,
        "attendee": {"name": "Jane", "timeZone": "Nowhere"}}),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let msg = body["error"]["message"].as_str().unwrap();
    assert!(
        msg.contains("timeZone") && msg.contains("email or phone number"),
        "{msg}"
    );

    let ok = json!({"start": "2026-03-09T13:00:00Z", "eventTypeId": 3,
        "attendee": {"name": "Jane Doe", "email": "jane@example.com", "timeZone": "America/New_York"}});
    let (status, body) = book(base, ok.clone()).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let data = &body["data"];
    assert_eq!(data["status"], "accepted");
    assert_eq!(data["start"], "2026-03-09T13:00:00.000Z");
    assert_eq!(data["end"], "2026-03-09T14:00:00.000Z");
    assert_eq!(data["eventTypeId"], 3);
    assert_eq!(data["attendees"][0]["name"], "Jane Doe");
    assert!(data["uid"].as_str().is_some_and(|u| !u.is_empty()));

    let (status, body) = book(base, ok).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(
        body["error"],
        json!({"code": "BadRequestException", "message": SLOT_UNAVAILABLE_MESSAGE})
    );
    let (status, body) = book(
        base,
        json!({"start": "2026-03-09T13:00:00Z", "eventTypeId": 77,
        "attendee": {"name": "J", "email": "j@example.com", "timeZone": "UTC"}}),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    let (status, body) = book(
        base,
        json!({"start": "2026-02-27T14:00:00Z", "eventTypeId": 3,
        "attendee": {"name": "J", "email": "j@example.com", "timeZone": "UTC"}}),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(body["error"]["message"].as_str().unwrap().contains("past"));
}

#[tokio::test]
async fn rate_limits_and_controls() {
    let sim = running().await;
    sim.sim.set_rate_limit(2);
    let url = format!("{}/v2/me", sim.base_url);
    let r = Client::new()
        .get(&url)
        .bearer_auth(KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["x-ratelimit-limit-default"], "2");
    assert_eq!(r.headers()["x-ratelimit-remaining-default"], "1");
    Client::new()
        .get(&url)
        .bearer_auth(KEY)
        .send()
        .await
        .unwrap();
    let r = Client::new()
        .get(&url)
        .bearer_auth(KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
    let wait: u64 = r.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=60).contains(&wait));
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"]["code"], "ThrottlerException");

    // Faults over HTTP, for a simulator started from the command line.
    let c = Client::new();
    let r = c
        .put(format!("{}/_sim/faults", sim.base_url))
        .json(&json!({"down": true}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let r = c.get(&url).bearer_auth("cal_other").send().await.unwrap();
    assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
    let log: Value = c
        .get(format!("{}/_sim/requests", sim.base_url))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let statuses: Vec<u64> = log
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["status"].as_u64().unwrap())
        .collect();
    assert_eq!(statuses, [200, 200, 429, 503]);
}

#[test]
fn the_demo_describes_itself() {
    let d = SchedulingSim::demo().describe();
    assert_eq!(d["api_keys"], json!([DEMO_API_KEY]));
    assert_eq!(d["event_types"].as_array().unwrap().len(), 2);
}
