//! Outbound webhooks end to end: API, dispatch, signed delivery to a local receiver, retries on a
//! manual clock, isolation, crash recovery, SSRF refusals, replay, recovery and the log.

use std::sync::Arc;
use std::time::Duration;

use casebridge_domain::events::{EventType, NewEvent};
use casebridge_domain::ids::{CampaignId, CaseId, EventId};
use casebridge_queue::{Worker, WorkerConfig};
use casebridge_store::jobs;
use casebridge_testkit::receiver::{Receiver, Reply as R};
use casebridge_testkit::{TestApp, TestOptions};
use casebridge_webhooks::delivery::WebhookRuntime;
use casebridge_webhooks::outbox::{record_event, QUEUE};
use casebridge_webhooks::policy::UrlPolicy;
use casebridge_webhooks::signing::{self, SigningSecret};
use reqwest::StatusCode;
use serde_json::{json, Value};
use tokio_util::sync::CancellationToken;

const WAIT: Duration = Duration::from_secs(20);

/// Creates a webhook through the API; returns its id and signing secret.
async fn hook(app: &TestApp, url: &str, extra: Value) -> (String, String) {
    let mut body = json!({"name": "Consumer", "url": url});
    body.as_object_mut()
        .unwrap()
        .extend(extra.as_object().unwrap().clone());
    let r = app.post("/api/v1/webhooks", body).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    (
        r.body["id"].as_str().unwrap().to_owned(),
        r.body["secret"].as_str().unwrap().to_owned(),
    )
}

/// Records an event as the platform's event sources do (in a transaction with its dispatch job).
async fn emit(app: &TestApp, t: EventType, campaign: Option<&str>, case: Option<&str>) -> EventId {
    let mut tx = app.db.store.begin().await.unwrap();
    let e = record_event(
        &mut tx,
        app.company_id,
        &NewEvent {
            event_type: t,
            data: json!({"example": t.as_str()}),
            campaign_id: campaign.map(|c| c.parse::<CampaignId>().unwrap()),
            case_id: case.map(|c| c.parse::<CaseId>().unwrap()),
        },
        casebridge_domain::clock::Clock::now(&app.clock),
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();
    e.id
}

fn verify(secret: &str, r: &casebridge_testkit::receiver::Received) -> Result<(), String> {
    let wh = standardwebhooks::Webhook::new(secret).map_err(|e| e.to_string())?;
    let mut headers = reqwest::header::HeaderMap::new();
    for name in ["webhook-id", "webhook-timestamp", "webhook-signature"] {
        headers.insert(name, r.header(name).unwrap().parse().unwrap());
    }
    wh.verify(&r.body, &headers).map_err(|e| e.to_string())
}

async fn delivery_of(app: &TestApp, webhook: &str) -> Value {
    let list = app
        .get(&format!("/api/v1/webhooks/{webhook}/deliveries"))
        .await;
    let id = list.body["data"][0]["id"]
        .as_str()
        .expect("a delivery")
        .to_owned();
    app.get(&format!("/api/v1/deliveries/{id}")).await.body
}

async fn delivers_a_signed_envelope_that_an_independent_verifier_accepts(
    backend: casebridge_testkit::TestBackend,
) {
    let app = TestApp::start(backend).await;
    let rx = Receiver::start().await;
    let (id, secret) = hook(
        &app,
        &rx.url("/a"),
        json!({"app_key": "pk_live_consumer_key_123"}),
    )
    .await;
    assert!(secret.starts_with("whsec_"));
    let event = emit(&app, EventType::CallStarted, None, None).await;
    app.webhook_worker(4).drain().await.unwrap();

    let got = rx.received("/a");
    assert_eq!(got.len(), 1);
    let r = &got[0];
    verify(&secret, r).expect("independent verifier accepts");
    assert_eq!(r.header("webhook-id"), Some(event.to_string().as_str()));
    assert_eq!(r.header("x-kayse-signature"), r.header("webhook-signature"));
    assert_eq!(
        r.header("x-public-api-key"),
        Some("pk_live_consumer_key_123")
    );
    assert_eq!(r.header("content-type"), Some("application/json"));
    let body = r.json();
    assert_eq!(body["id"], event.to_string().as_str());
    assert_eq!(body["type"], "call_started");
    assert_eq!(body["company_id"], app.company_id.to_string().as_str());
    assert_eq!(body["data"], json!({"example": "call_started"}));
    assert!(body["created_at"].is_string());

    // A tampered body fails the same verifier.
    let mut tampered = r.clone();
    tampered.body =
        axum::body::Bytes::from(r.body.iter().copied().chain(*b" ").collect::<Vec<u8>>());
    assert!(verify(&secret, &tampered).is_err());

    // The log has the attempt, with the App Key masked, and the API never shows the secrets.
    let d = delivery_of(&app, &id).await;
    assert_eq!(d["status"], "succeeded");
    let attempt = &d["attempts"][0];
    assert_eq!(
        (
            attempt["trigger"].as_str(),
            attempt["response"]["status"].as_u64()
        ),
        (Some("scheduled"), Some(200))
    );
    let logged: Vec<(String, String)> =
        serde_json::from_value(attempt["request"]["headers"].clone()).unwrap();
    let key = logged
        .iter()
        .find(|(k, _)| k == "x-public-api-key")
        .unwrap();
    assert_ne!(key.1, "pk_live_consumer_key_123");
    let w = app.get(&format!("/api/v1/webhooks/{id}")).await;
    for text in [
        w.text,
        app.get("/api/v1/webhooks").await.text,
        serde_json::to_string(&d).unwrap(),
    ] {
        assert!(!text.contains("pk_live_consumer_key_123"));
        assert!(!text.contains(&secret));
    }
}
casebridge_testkit::backend_test!(delivers_a_signed_envelope_that_an_independent_verifier_accepts);

async fn rotation_signs_with_both_secrets_during_the_overlap(
    backend: casebridge_testkit::TestBackend,
) {
    let app = TestApp::start(backend).await;
    let rx = Receiver::start().await;
    let (id, old) = hook(&app, &rx.url("/r"), json!({})).await;
    let r = app
        .post(
            &format!("/api/v1/webhooks/{id}/rotate-secret"),
            json!({"overlap_secs": 3600}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let new = r.body["secret"].as_str().unwrap().to_owned();
    assert_ne!(old, new);

    emit(&app, EventType::CallEnded, None, None).await;
    app.webhook_worker(4).drain().await.unwrap();
    let first = rx.received("/r").pop().unwrap();
    assert_eq!(
        first
            .header("webhook-signature")
            .unwrap()
            .split(' ')
            .count(),
        2
    );
    verify(&old, &first).expect("old secret still verifies during the overlap");
    verify(&new, &first).expect("new secret verifies");

    // After the overlap only the new secret signs. (The app's clock is now an hour ahead of
    // the wall clock, which the official verifier would reject as a future timestamp, so the
    // signature itself is checked with our verifier, which the tests above hold to the
    // official one.)
    app.advance(Duration::from_secs(3601));
    emit(&app, EventType::CallEnded, None, None).await;
    app.webhook_worker(4).drain().await.unwrap();
    let second = rx.received("/r").pop().unwrap();
    let header = second.header("webhook-signature").unwrap();
    assert_eq!(header.split(' ').count(), 1);
    let check = |secret: &str| {
        let s = SigningSecret::parse(secret).unwrap();
        signing::verify(
            &[&s],
            second.header("webhook-id").unwrap(),
            second.header("webhook-timestamp").unwrap().parse().unwrap(),
            &second.body,
            header,
        )
    };
    assert!(!check(&old));
    assert!(check(&new));
}
casebridge_testkit::backend_test!(rotation_signs_with_both_secrets_during_the_overlap);

async fn subscriptions_and_filters_pick_the_right_webhooks(
    backend: casebridge_testkit::TestBackend,
) {
    let app = TestApp::start(backend).await;
    let rx = Receiver::start().await;
    let camp_x = app.create("/api/v1/campaigns", json!({"name": "X"})).await;
    let camp_y = app.create("/api/v1/campaigns", json!({"name": "Y"})).await;
    let auto = app
        .create("/api/v1/case-types", json!({"name": "Auto"}))
        .await;
    let slip = app
        .create("/api/v1/case-types", json!({"name": "Slip"}))
        .await;
    let auto_case = app
        .create("/api/v1/cases", json!({"name": "A", "case_type_id": auto}))
        .await;
    let slip_case = app
        .create("/api/v1/cases", json!({"name": "S", "case_type_id": slip}))
        .await;

    hook(&app, &rx.url("/all"), json!({})).await;
    hook(
        &app,
        &rx.url("/ended"),
        json!({"event_types": ["call_ended"]}),
    )
    .await;
    hook(&app, &rx.url("/camp-x"), json!({"campaign_ids": [camp_x]})).await;
    hook(&app, &rx.url("/auto"), json!({"case_type_ids": [auto]})).await;
    let r = app
        .post(
            &format!("/api/v1/campaigns/{camp_y}/webhooks"),
            json!({"name": "Scoped", "url": rx.url("/scoped-y")}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    let scoped = app
        .get(&format!("/api/v1/campaigns/{camp_y}/webhooks"))
        .await;
    assert_eq!(scoped.body["data"].as_array().unwrap().len(), 1);

    emit(
        &app,
        EventType::CallStarted,
        Some(&camp_x),
        Some(&auto_case),
    )
    .await;
    emit(&app, EventType::CallEnded, Some(&camp_y), Some(&slip_case)).await;
    emit(&app, EventType::MessageSent, Some(&camp_y), None).await;
    emit(&app, EventType::TaskCompleted, None, Some(&auto_case)).await;
    app.webhook_worker(8).drain().await.unwrap();

    let types = |p: &str| -> Vec<String> {
        let mut t: Vec<String> = rx
            .received(p)
            .iter()
            .map(|r| r.json()["type"].as_str().unwrap().to_owned())
            .collect();
        t.sort();
        t
    };
    assert_eq!(
        types("/all"),
        [
            "call_ended",
            "call_started",
            "message_sent",
            "task_completed"
        ]
    );
    assert_eq!(types("/ended"), ["call_ended"]);
    // The campaign filter applies to call events only; other events pass.
    assert_eq!(
        types("/camp-x"),
        ["call_started", "message_sent", "task_completed"]
    );
    assert_eq!(types("/auto"), ["call_started", "task_completed"]);
    assert_eq!(types("/scoped-y"), ["call_ended", "message_sent"]);

    // Unknown event types and filters that name nothing are refused, naming the field.
    let r = app
        .post(
            "/api/v1/webhooks",
            json!({"name": "Bad", "url": rx.url("/x"),
            "event_types": ["call_exploded"], "case_type_ids": [camp_x]}),
        )
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    let fields: Vec<&str> = r.body["error"]["details"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["field"].as_str().unwrap())
        .collect();
    assert_eq!(fields, ["event_types[0]", "case_type_ids[0]"]);
    let r = app
        .post(
            "/api/v1/webhooks",
            json!({"name": "ab", "url": rx.url("/x")}),
        )
        .await;
    assert_eq!(r.body["error"]["details"][0]["field"], "name");
}
casebridge_testkit::backend_test!(subscriptions_and_filters_pick_the_right_webhooks);

async fn retries_follow_the_schedule_then_fail_after_24_hours(
    backend: casebridge_testkit::TestBackend,
) {
    let app = TestApp::start(backend).await;
    let rx = Receiver::start().await;
    rx.always("/down", R::status(500).body("boom"));
    let (id, _) = hook(&app, &rx.url("/down"), json!({})).await;
    emit(&app, EventType::CallStarted, None, None).await;
    let w = app.webhook_worker(4);
    let start = casebridge_domain::clock::Clock::now(&app.clock);
    w.drain().await.unwrap();

    let mut at = Vec::new();
    for _ in 0..30 {
        let mut conn = app.db.store.conn().await.unwrap();
        let next = jobs::next_run_at(&mut conn, QUEUE).await.unwrap();
        drop(conn);
        let Some(next) = next else { break };
        at.push((next.as_millisecond() - start.as_millisecond()) / 1000);
        app.clock.set(next);
        w.drain().await.unwrap();
    }
    // 5 s, 1 min, 5 min, 30 min, 2 h, 5 h, 10 h after each other (±20 %), then the window's end.
    let expected = [5, 65, 365, 2165, 9365, 27365, 63365];
    assert_eq!(at.len(), 8, "{at:?}");
    for (got, want) in at.iter().zip(expected) {
        let cumulative_jitter = want / 5 + 1;
        assert!((got - want).abs() <= cumulative_jitter, "{at:?}");
    }
    assert_eq!(
        *at.last().unwrap(),
        86_400,
        "last attempt at the end of the 24-hour window"
    );
    let d = delivery_of(&app, &id).await;
    assert_eq!(
        (d["status"].as_str(), d["attempt_count"].as_u64()),
        (Some("failed"), Some(9))
    );
    assert_eq!(d["attempts"][0]["trigger"], "scheduled");
    assert_eq!(d["attempts"][1]["trigger"], "retry");
    assert_eq!(d["attempts"][8]["response"]["body"], "boom");
    let mut conn = app.db.store.conn().await.unwrap();
    let dead = jobs::dead(&mut conn, QUEUE, &Default::default())
        .await
        .unwrap();
    assert_eq!(dead.items.len(), 1, "the dead letter is visible");
}
casebridge_testkit::backend_test!(retries_follow_the_schedule_then_fail_after_24_hours);

async fn a_pending_delivery_shows_when_its_next_attempt_is_due(
    backend: casebridge_testkit::TestBackend,
) {
    let app = TestApp::start(backend).await;
    let rx = Receiver::start().await;
    rx.script("/flaky", [R::status(500).body("boom")]);
    let (id, _) = hook(&app, &rx.url("/flaky"), json!({})).await;
    emit(&app, EventType::CallStarted, None, None).await;
    let w = app.webhook_worker(4);
    w.drain().await.unwrap();

    let mut conn = app.db.store.conn().await.unwrap();
    let next = jobs::next_run_at(&mut conn, QUEUE)
        .await
        .unwrap()
        .expect("a retry is queued");
    drop(conn);
    let due = format!("{next:.3}");
    let listed = app
        .get(&format!("/api/v1/webhooks/{id}/deliveries"))
        .await
        .expect(StatusCode::OK)
        .body;
    assert_eq!(listed["data"][0]["status"], "pending", "{listed}");
    assert_eq!(
        listed["data"][0]["next_attempt_at"],
        due.as_str(),
        "{listed}"
    );
    let d = delivery_of(&app, &id).await;
    assert_eq!(d["next_attempt_at"], due.as_str(), "{d}");
    // Every time in the representation has the one precision: milliseconds, UTC.
    for field in [
        "next_attempt_at",
        "last_attempt_at",
        "created_at",
        "updated_at",
    ] {
        let t = d[field].as_str().unwrap_or_else(|| panic!("{field}: {d}"));
        assert!(
            t.len() == 24 && t.ends_with('Z') && t.as_bytes()[19] == b'.',
            "{field}: {t}"
        );
    }
    let started = d["attempts"][0]["started_at"].as_str().unwrap();
    assert!(started.len() == 24 && started.ends_with('Z'), "{started}");

    // Once it has succeeded nothing more is due.
    app.clock.set(next);
    w.drain().await.unwrap();
    let d = delivery_of(&app, &id).await;
    assert_eq!(d["status"], "succeeded", "{d}");
    assert_eq!(d["next_attempt_at"], Value::Null, "{d}");
    let listed = app
        .get(&format!("/api/v1/webhooks/{id}/deliveries"))
        .await
        .body;
    assert_eq!(
        listed["data"][0]["next_attempt_at"],
        Value::Null,
        "{listed}"
    );
}
casebridge_testkit::backend_test!(a_pending_delivery_shows_when_its_next_attempt_is_due);

async fn retry_after_lengthens_and_410_disables(backend: casebridge_testkit::TestBackend) {
    let app = TestApp::start(backend).await;
    let rx = Receiver::start().await;
    rx.script("/slow-down", [R::status(429).header("retry-after", "900")]);
    let (_, _) = hook(&app, &rx.url("/slow-down"), json!({})).await;
    let start = casebridge_domain::clock::Clock::now(&app.clock);
    emit(&app, EventType::CallStarted, None, None).await;
    let w = app.webhook_worker(4);
    w.drain().await.unwrap();
    let mut conn = app.db.store.conn().await.unwrap();
    let next = jobs::next_run_at(&mut conn, QUEUE).await.unwrap().unwrap();
    drop(conn);
    assert_eq!(next.as_millisecond() - start.as_millisecond(), 900_000);
    app.clock.set(next);
    w.drain().await.unwrap();
    assert_eq!(rx.received("/slow-down").len(), 2);

    rx.always("/gone", R::status(410));
    let (gone, _) = hook(&app, &rx.url("/gone"), json!({})).await;
    emit(&app, EventType::CallEnded, None, None).await;
    w.drain().await.unwrap();
    let hookv = app.get(&format!("/api/v1/webhooks/{gone}")).await.body;
    assert_eq!(hookv["active"], false);
    assert!(hookv["disabled_reason"].as_str().unwrap().contains("410"));
    assert_eq!(delivery_of(&app, &gone).await["status"], "failed");
    // Nothing more goes to a disabled endpoint.
    emit(&app, EventType::CallEnded, None, None).await;
    app.advance(Duration::from_secs(3600));
    w.drain().await.unwrap();
    assert_eq!(rx.received("/gone").len(), 1);
}
casebridge_testkit::backend_test!(retry_after_lengthens_and_410_disables);

async fn a_hanging_endpoint_does_not_delay_a_healthy_one(backend: casebridge_testkit::TestBackend) {
    let app = TestApp::start(backend).await;
    let rx = Receiver::start().await;
    rx.always("/hang", R::status(200).delay(Duration::from_secs(30)));
    hook(
        &app,
        &rx.url("/hang"),
        json!({"event_types": ["call_started"]}),
    )
    .await;
    hook(
        &app,
        &rx.url("/healthy"),
        json!({"event_types": ["call_ended"]}),
    )
    .await;
    // The hanging endpoint's deliveries are first in line.
    for _ in 0..20 {
        emit(&app, EventType::CallStarted, None, None).await;
    }
    let stop = CancellationToken::new();
    let run = tokio::spawn(app.webhook_worker(8).run(stop.clone()));
    rx.wait_for("/hang", 4, WAIT).await;
    for _ in 0..10 {
        emit(&app, EventType::CallEnded, None, None).await;
    }
    // All ten healthy deliveries arrive while the hanging ones are still hanging (30 s).
    rx.wait_for("/healthy", 10, WAIT).await;
    assert!(
        rx.in_flight("/hang") >= 4,
        "the hanging requests are still open"
    );
    assert!(
        rx.peak_in_flight("/hang") <= 4,
        "per-endpoint concurrency is bounded"
    );
    stop.cancel();
    run.await.unwrap();
}
casebridge_testkit::backend_test!(a_hanging_endpoint_does_not_delay_a_healthy_one);

async fn a_worker_killed_mid_delivery_is_redelivered_with_the_same_id(
    backend: casebridge_testkit::TestBackend,
) {
    let app = TestApp::start(backend).await;
    let rx = Receiver::start().await;
    // The first request hangs (the worker dies while it is in flight); the next succeeds.
    rx.script("/c", [R::status(200).delay(Duration::from_secs(60))]);
    let (id, secret) = hook(&app, &rx.url("/c"), json!({})).await;
    let event = emit(&app, EventType::CallAnalyzed, None, None).await;

    let doomed = tokio::spawn({
        let w = app.webhook_worker(2);
        async move { w.drain().await }
    });
    rx.wait_for("/c", 1, WAIT).await;
    doomed.abort(); // kill -9: nothing recorded, the lease stays
    let _ = doomed.await;

    let w = app.webhook_worker(2);
    assert_eq!(
        w.drain().await.unwrap(),
        0,
        "nothing runs while the dead worker's lease holds"
    );
    assert_eq!(rx.received("/c").len(), 1);
    app.advance(Duration::from_secs(61));
    w.drain().await.unwrap();
    let got = rx.received("/c");
    assert_eq!(got.len(), 2);
    assert_eq!(got[0].header("webhook-id"), got[1].header("webhook-id"));
    assert_eq!(
        got[1].header("webhook-id"),
        Some(event.to_string().as_str())
    );
    verify(&secret, &got[1]).unwrap();
    assert_eq!(delivery_of(&app, &id).await["status"], "succeeded");
}
casebridge_testkit::backend_test!(a_worker_killed_mid_delivery_is_redelivered_with_the_same_id);

async fn unsafe_destinations_are_refused_on_save_and_at_delivery(
    backend: casebridge_testkit::TestBackend,
) {
    let strict = TestApp::start_with(
        backend,
        TestOptions {
            url_policy: UrlPolicy::default(),
            ..TestOptions::default()
        },
    )
    .await;
    for url in [
        "http://example.com/hook",
        "https://127.0.0.1/h",
        "https://10.1.2.3/h",
        "https://172.16.0.1/h",
        "https://192.168.1.1/h",
        "https://169.254.169.254/latest/meta-data",
        "https://100.64.0.1/h",
        "https://224.0.0.1/h",
        "https://0.0.0.0/h",
        "https://[::1]/h",
        "https://[fd00::1]/h",
        "https://[fe80::1]/h",
        "https://[::ffff:127.0.0.1]/h",
        "https://[::]/h",
        "https://localhost/h",
        "https://user:pw@example.com/h",
        "ftp://example.com/h",
    ] {
        let r = strict
            .post("/api/v1/webhooks", json!({"name": "Nope", "url": url}))
            .await;
        assert_eq!(
            r.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{url} was accepted"
        );
        assert_eq!(r.body["error"]["details"][0]["field"], "url", "{url}");
    }
    assert!(strict.get("/api/v1/webhooks").await.body["data"]
        .as_array()
        .unwrap()
        .is_empty());

    // A webhook saved while loopback was allowed is refused at delivery by a strict worker.
    let app = TestApp::start(backend).await;
    let rx = Receiver::start().await;
    let (id, _) = hook(&app, &rx.url("/private"), json!({})).await;
    emit(&app, EventType::CallStarted, None, None).await;
    let rt = WebhookRuntime::new(
        app.db.store.clone(),
        app.keyring.clone(),
        Arc::new(app.clock.clone()),
        UrlPolicy {
            allow_http: true,
            allowed_private: vec![],
        },
        Duration::from_secs(15),
    );
    let strict_worker = Worker::new(
        app.db.store.clone(),
        Arc::new(app.clock.clone()),
        rt.registry(),
        WorkerConfig::new(QUEUE),
    );
    strict_worker.drain().await.unwrap();
    assert!(
        rx.received("/private").is_empty(),
        "nothing reached the private address"
    );
    let d = delivery_of(&app, &id).await;
    assert!(
        d["attempts"][0]["error"]
            .as_str()
            .unwrap()
            .contains("loopback"),
        "{d}"
    );
    // With plain http off, the same webhook is refused for its scheme.
    let rt = WebhookRuntime::new(
        app.db.store.clone(),
        app.keyring.clone(),
        Arc::new(app.clock.clone()),
        UrlPolicy::default(),
        Duration::from_secs(15),
    );
    app.advance(Duration::from_secs(10));
    Worker::new(
        app.db.store.clone(),
        Arc::new(app.clock.clone()),
        rt.registry(),
        WorkerConfig::new(QUEUE),
    )
    .drain()
    .await
    .unwrap();
    let d = delivery_of(&app, &id).await;
    assert!(
        d["attempts"][1]["error"]
            .as_str()
            .unwrap()
            .contains("https"),
        "{d}"
    );
    assert!(rx.received("/private").is_empty());

    // Redirects are not followed, even to an allowed address.
    rx.always(
        "/redirect",
        R::status(302).header("location", &rx.url("/target")),
    );
    let (rid, _) = hook(&app, &rx.url("/redirect"), json!({})).await;
    emit(&app, EventType::CallStarted, None, None).await;
    app.webhook_worker(4).drain().await.unwrap();
    assert_eq!(rx.received("/redirect").len(), 1);
    assert!(rx.received("/target").is_empty());
    let d = delivery_of(&app, &rid).await;
    assert_eq!(
        (d["status"].as_str(), d["last_response_status"].as_u64()),
        (Some("pending"), Some(302))
    );
}
casebridge_testkit::backend_test!(unsafe_destinations_are_refused_on_save_and_at_delivery);

async fn test_send_replay_and_recover(backend: casebridge_testkit::TestBackend) {
    let app = TestApp::start(backend).await;
    let rx = Receiver::start().await;
    let (id, secret) = hook(
        &app,
        &rx.url("/t"),
        json!({"event_types": ["task_completed"]}),
    )
    .await;
    let w = app.webhook_worker(4);

    // Send test: outside the subscription, signed, trigger "test".
    let r = app
        .post(&format!("/api/v1/webhooks/{id}/test"), json!({}))
        .await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.text);
    w.drain().await.unwrap();
    let got = rx.received("/t");
    assert_eq!(got[0].json()["type"], "webhook.test");
    verify(&secret, &got[0]).unwrap();
    let test_delivery = r.body["delivery_id"].as_str().unwrap().to_owned();
    let d = app
        .get(&format!("/api/v1/deliveries/{test_delivery}"))
        .await
        .body;
    assert_eq!(d["attempts"][0]["trigger"], "test");

    // Replay: the same event id again, trigger "manual".
    let r = app
        .post(
            &format!("/api/v1/deliveries/{test_delivery}/replay"),
            json!({}),
        )
        .await;
    assert_eq!(r.status, StatusCode::ACCEPTED);
    let r = app
        .post(
            &format!("/api/v1/deliveries/{test_delivery}/replay"),
            json!({}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CONFLICT, "already queued: {}", r.text);
    w.drain().await.unwrap();
    let got = rx.received("/t");
    assert_eq!(got.len(), 2);
    assert_eq!(got[0].header("webhook-id"), got[1].header("webhook-id"));
    let d = app
        .get(&format!("/api/v1/deliveries/{test_delivery}"))
        .await
        .body;
    assert_eq!(
        (d["attempts"][1]["trigger"].as_str(), d["status"].as_str()),
        (Some("manual"), Some("succeeded"))
    );

    // Recover: failures since a time are sent again once the endpoint is back.
    rx.always("/t", R::status(503));
    let since = casebridge_domain::clock::Clock::now(&app.clock);
    for _ in 0..3 {
        emit(&app, EventType::TaskCompleted, None, None).await;
    }
    w.drain().await.unwrap();
    for _ in 0..12 {
        app.advance(Duration::from_secs(6 * 3600));
        w.drain().await.unwrap();
    }
    let failed = app
        .get(&format!("/api/v1/webhooks/{id}/deliveries?status=failed"))
        .await;
    assert_eq!(
        failed.body["data"].as_array().unwrap().len(),
        3,
        "{}",
        failed.text
    );
    rx.always("/t", R::status(204));
    let r = app
        .post(
            &format!("/api/v1/webhooks/{id}/recover"),
            json!({"since": since.to_string()}),
        )
        .await;
    assert_eq!(
        (r.status, r.body["recovered"].as_u64()),
        (StatusCode::ACCEPTED, Some(3))
    );
    w.drain().await.unwrap();
    let ok = app
        .get(&format!(
            "/api/v1/webhooks/{id}/deliveries?status=succeeded"
        ))
        .await;
    assert_eq!(ok.body["data"].as_array().unwrap().len(), 4);
    let r = app
        .post(
            &format!("/api/v1/webhooks/{id}/recover"),
            json!({"since": "yesterday"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);

    // Another company can neither see nor replay these.
    let (_, other) = app.new_company("Other").await;
    let r = app
        .call_as(
            &other,
            reqwest::Method::POST,
            &format!("/api/v1/deliveries/{test_delivery}/replay"),
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    let r = app
        .call_as(
            &other,
            reqwest::Method::GET,
            &format!("/api/v1/webhooks/{id}/deliveries"),
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
}
casebridge_testkit::backend_test!(test_send_replay_and_recover);

async fn platform_activity_reaches_subscribed_webhooks(backend: casebridge_testkit::TestBackend) {
    let app = TestApp::start(backend).await;
    let rx = Receiver::start().await;
    let campaign = app
        .create("/api/v1/campaigns", json!({"name": "Intake"}))
        .await;
    let auto = app
        .create("/api/v1/case-types", json!({"name": "Auto"}))
        .await;
    let case = app
        .create(
            "/api/v1/cases",
            json!({"name": "Doe", "case_type_id": auto}),
        )
        .await;
    let (_, secret) = hook(
        &app,
        &rx.url("/calls"),
        json!({"campaign_ids": [campaign],
            "event_types": ["call_started", "call_analyzed"]}),
    )
    .await;

    let call = app
        .create(
            "/api/v1/calls",
            json!({"direction": "outbound", "campaign_id": campaign, "case_id": case}),
        )
        .await;
    let r = app
        .post(
            &format!("/api/v1/calls/{call}/analysis"),
            json!({
            "summary": "Qualified", "post_call_result": "Qualified – Intake Completed",
            "custom": {"injury_date": "2026-10-01", "treated": true}}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    // Ending needs no body; call_ended is not subscribed, so it is not delivered.
    let r = app
        .call(
            reqwest::Method::POST,
            &format!("/api/v1/calls/{call}/end"),
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    // A call in another campaign is filtered out.
    let other = app
        .create("/api/v1/campaigns", json!({"name": "Other"}))
        .await;
    app.create(
        "/api/v1/calls",
        json!({"direction": "outbound", "campaign_id": other}),
    )
    .await;
    app.webhook_worker(4).drain().await.unwrap();

    let got = rx.received("/calls");
    let mut types: Vec<String> = got
        .iter()
        .map(|r| r.json()["type"].as_str().unwrap().to_owned())
        .collect();
    types.sort();
    assert_eq!(types, ["call_analyzed", "call_started"]);
    for r in &got {
        verify(&secret, r).unwrap();
    }
    let analyzed = got
        .iter()
        .map(|r| r.json())
        .find(|b| b["type"] == "call_analyzed")
        .unwrap();
    assert_eq!(analyzed["data"]["_custom"]["treated"], true);
    assert_eq!(
        analyzed["data"]["post_call_result"],
        "Qualified – Intake Completed"
    );
}
casebridge_testkit::backend_test!(platform_activity_reaches_subscribed_webhooks);

async fn event_types_list_schemas_and_examples(backend: casebridge_testkit::TestBackend) {
    let app = TestApp::start(backend).await;
    let r = app.get("/api/v1/event-types").await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let list = r.body.as_array().unwrap();
    let names: Vec<&str> = list.iter().map(|t| t["type"].as_str().unwrap()).collect();
    assert_eq!(names.len(), 12);
    for t in EventType::SUBSCRIBABLE {
        let entry = list
            .iter()
            .find(|e| e["type"] == t.as_str())
            .unwrap_or_else(|| panic!("{t:?} missing"));
        assert!(entry["schema"].is_object(), "{t:?}");
        assert_eq!(entry["example"]["type"], t.as_str());
        assert!(entry["example"]["data"].is_object(), "{t:?}");
        assert_eq!(entry["call_event"], t.is_call_event());
    }
}
casebridge_testkit::backend_test!(event_types_list_schemas_and_examples);

async fn the_log_caps_bodies_keeps_headers_and_retry_after_stops_at_the_window(
    backend: casebridge_testkit::TestBackend,
) {
    let app = TestApp::start(backend).await;
    let rx = Receiver::start().await;
    let big = "x".repeat(100 * 1024);
    rx.always(
        "/big",
        R::status(503)
            .header("retry-after", "172800")
            .header("x-request-id", "req-42")
            .body(big),
    );
    let (id, _) = hook(&app, &rx.url("/big"), json!({})).await;
    let start = casebridge_domain::clock::Clock::now(&app.clock);
    emit(&app, EventType::CallStarted, None, None).await;
    let w = app.webhook_worker(2);
    w.drain().await.unwrap();

    let d = delivery_of(&app, &id).await;
    let a = &d["attempts"][0];
    assert_eq!(
        a["response"]["body"].as_str().unwrap().len(),
        64 * 1024,
        "bodies are capped at 64 KiB"
    );
    let headers: Vec<(String, String)> =
        serde_json::from_value(a["response"]["headers"].clone()).unwrap();
    assert!(headers.contains(&("x-request-id".to_owned(), "req-42".to_owned())));
    assert!(a["duration_ms"].is_u64());
    assert_eq!(a["request"]["url"], rx.url("/big").as_str());
    assert_eq!(a["attempt_no"], 1);

    // Retry-After of two days is cut to the 24-hour window's end, then the delivery fails.
    let mut conn = app.db.store.conn().await.unwrap();
    let next = jobs::next_run_at(&mut conn, QUEUE).await.unwrap().unwrap();
    drop(conn);
    assert_eq!(next.as_millisecond() - start.as_millisecond(), 86_400_000);
    app.clock.set(next);
    w.drain().await.unwrap();
    let d = delivery_of(&app, &id).await;
    assert_eq!(
        (d["status"].as_str(), d["attempt_count"].as_u64()),
        (Some("failed"), Some(2))
    );
}
casebridge_testkit::backend_test!(
    the_log_caps_bodies_keeps_headers_and_retry_after_stops_at_the_window
);

async fn a_delivery_whose_job_dies_before_any_attempt_is_marked_failed(
    backend: casebridge_testkit::TestBackend,
) {
    let app = TestApp::start(backend).await;
    let rx = Receiver::start().await;
    let (id, _) = hook(&app, &rx.url("/k"), json!({})).await;
    emit(&app, EventType::CallStarted, None, None).await;
    // A worker whose master key is not the one the secret was sealed with cannot sign.
    let wrong_keys =
        casebridge_crypto::Keyring::new(casebridge_crypto::MasterKey::generate(), vec![]);
    let rt = WebhookRuntime::new(
        app.db.store.clone(),
        wrong_keys,
        Arc::new(app.clock.clone()),
        app.options.url_policy.clone(),
        Duration::from_secs(15),
    );
    Worker::new(
        app.db.store.clone(),
        Arc::new(app.clock.clone()),
        rt.registry(),
        WorkerConfig::new(QUEUE),
    )
    .drain()
    .await
    .unwrap();
    assert!(rx.received("/k").is_empty());
    let d = delivery_of(&app, &id).await;
    assert_eq!(d["status"], "failed", "not left pending forever: {d}");
    assert!(
        d["last_error"].as_str().unwrap().contains("signing secret"),
        "{d}"
    );
    // Now it can be replayed, with the right key.
    let did = d["id"].as_str().unwrap();
    assert_eq!(
        app.post(&format!("/api/v1/deliveries/{did}/replay"), json!({}))
            .await
            .status,
        StatusCode::ACCEPTED
    );
    app.webhook_worker(2).drain().await.unwrap();
    assert_eq!(rx.received("/k").len(), 1);
}
casebridge_testkit::backend_test!(a_delivery_whose_job_dies_before_any_attempt_is_marked_failed);

async fn retention_prunes_old_log_but_keeps_pending_work(backend: casebridge_testkit::TestBackend) {
    let app = TestApp::start(backend).await;
    let rx = Receiver::start().await;
    rx.always("/down", R::status(500));
    let (ok_hook, _) = hook(
        &app,
        &rx.url("/ok"),
        json!({"event_types": ["call_started"]}),
    )
    .await;
    let (down_hook, _) = hook(
        &app,
        &rx.url("/down"),
        json!({"event_types": ["call_ended"]}),
    )
    .await;
    emit(&app, EventType::CallStarted, None, None).await;
    emit(&app, EventType::CallEnded, None, None).await;
    app.webhook_worker(4).drain().await.unwrap();
    app.advance(Duration::from_secs(31 * 86_400));
    let (attempts, deliveries, _) = casebridge_webhooks::retention::prune_once(
        &app.db.store,
        &app.clock,
        Duration::from_secs(30 * 86_400),
    )
    .await
    .unwrap();
    assert_eq!((attempts, deliveries), (2, 1));
    let count = |body: Value| body["data"].as_array().unwrap().len();
    assert_eq!(
        count(
            app.get(&format!("/api/v1/webhooks/{ok_hook}/deliveries"))
                .await
                .body
        ),
        0
    );
    assert_eq!(
        count(
            app.get(&format!("/api/v1/webhooks/{down_hook}/deliveries"))
                .await
                .body
        ),
        1,
        "a pending delivery is never pruned"
    );
    let mut conn = app.db.store.conn().await.unwrap();
    assert!(
        jobs::next_run_at(&mut conn, QUEUE).await.unwrap().is_some(),
        "its retry is still queued"
    );
}
casebridge_testkit::backend_test!(retention_prunes_old_log_but_keeps_pending_work);

async fn patch_and_delete_a_webhook_re_vetting_a_changed_url(
    backend: casebridge_testkit::TestBackend,
) {
    let app = TestApp::start(backend).await;
    let rx = Receiver::start().await;
    let (id, _) = hook(&app, &rx.url("/a"), json!({})).await;
    let w = app.webhook_worker(2);

    // A new URL is used from the next delivery on.
    let r = app
        .patch(
            &format!("/api/v1/webhooks/{id}"),
            json!({"name": "Renamed", "url": rx.url("/b")}),
        )
        .await
        .expect(StatusCode::OK);
    assert_eq!(
        (r.body["name"].as_str(), r.body["url"].as_str()),
        (Some("Renamed"), Some(rx.url("/b").as_str()))
    );
    emit(&app, EventType::CallStarted, None, None).await;
    w.drain().await.unwrap();
    assert_eq!((rx.received("/a").len(), rx.received("/b").len()), (0, 1));

    // A changed URL is checked like a new one: a private address is refused, and nothing changes.
    let r = app
        .patch(
            &format!("/api/v1/webhooks/{id}"),
            json!({"url": "http://10.1.2.3/hook"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.text);
    assert_eq!(r.body["error"]["details"][0]["field"], "url", "{}", r.text);
    let got = app
        .get(&format!("/api/v1/webhooks/{id}"))
        .await
        .expect(StatusCode::OK);
    assert_eq!(
        (got.body["name"].as_str(), got.body["url"].as_str()),
        (Some("Renamed"), Some(rx.url("/b").as_str()))
    );

    // A delivery still pending (its first attempt failed) when its webhook is turned off is
    // not retried; it fails, saying why.
    rx.script("/b", [R::status(500)]);
    emit(&app, EventType::CallEnded, None, None).await;
    w.drain().await.unwrap();
    assert_eq!(rx.received("/b").len(), 2);
    app.patch(&format!("/api/v1/webhooks/{id}"), json!({"active": false}))
        .await
        .expect(StatusCode::OK);
    app.advance(Duration::from_secs(3600));
    w.drain().await.unwrap();
    assert_eq!(rx.received("/b").len(), 2, "nothing sent while off");
    let list = app
        .get(&format!("/api/v1/webhooks/{id}/deliveries"))
        .await
        .expect(StatusCode::OK)
        .body;
    let pending = list["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["event_type"] == "call_ended")
        .unwrap_or_else(|| panic!("the call_ended delivery: {list}"))
        .clone();
    assert_eq!(pending["status"], "failed", "{pending}");
    assert!(
        pending["last_error"]
            .as_str()
            .unwrap_or_default()
            .contains("turned off"),
        "{pending}"
    );

    // Another company can neither change nor delete it.
    let (_, other) = app.new_company("Other Firm").await;
    let r = app
        .call_as(
            &other,
            reqwest::Method::PATCH,
            &format!("/api/v1/webhooks/{id}"),
            Some(json!({"name": "Mine now"})),
        )
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND, "{}", r.text);
    let r = app
        .call_as(
            &other,
            reqwest::Method::DELETE,
            &format!("/api/v1/webhooks/{id}"),
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND, "{}", r.text);
    assert_eq!(
        app.get(&format!("/api/v1/webhooks/{id}"))
            .await
            .expect(StatusCode::OK)
            .body["name"],
        "Renamed"
    );

    // Deleted: gone from the API, and later events reach nobody.
    app.delete(&format!("/api/v1/webhooks/{id}"))
        .await
        .expect(StatusCode::NO_CONTENT);
    app.get(&format!("/api/v1/webhooks/{id}"))
        .await
        .expect(StatusCode::NOT_FOUND);
    app.delete(&format!("/api/v1/webhooks/{id}"))
        .await
        .expect(StatusCode::NOT_FOUND);
    emit(&app, EventType::CallStarted, None, None).await;
    w.drain().await.unwrap();
    assert_eq!(rx.all_received().len(), 2, "nothing sent after the delete");
}
casebridge_testkit::backend_test!(patch_and_delete_a_webhook_re_vetting_a_changed_url);

async fn a_re_run_after_a_successful_attempt_sends_nothing(
    backend: casebridge_testkit::TestBackend,
) {
    // The attempt succeeds, but before it answers the job's lease has run out and another
    // worker claimed the job and died; the next run finds the successful attempt and sends
    // nothing a second time.
    let app = TestApp::start(backend).await;
    let rx = Receiver::start().await;
    rx.script("/once", [R::status(200).delay(Duration::from_millis(500))]);
    let (id, _) = hook(&app, &rx.url("/once"), json!({})).await;
    emit(&app, EventType::CallStarted, None, None).await;
    let first = tokio::spawn({
        let w = app.webhook_worker(2);
        async move { w.drain().await }
    });
    rx.wait_for("/once", 1, WAIT).await;
    app.advance(Duration::from_secs(61));
    let taken = jobs::claim(
        &app.db.store,
        QUEUE,
        10,
        Duration::from_secs(60),
        casebridge_domain::clock::Clock::now(&app.clock),
    )
    .await
    .unwrap();
    assert_eq!(taken.len(), 1, "the delivery's job, its lease run out");
    first.await.unwrap().unwrap();
    let d = delivery_of(&app, &id).await;
    assert_eq!(
        (d["status"].as_str(), d["attempts"].as_array().map(Vec::len)),
        (Some("succeeded"), Some(1)),
        "{d}"
    );

    // The second owner is gone too; its lease runs out and the job runs once more.
    app.advance(Duration::from_secs(61));
    assert_eq!(
        app.webhook_worker(2).drain().await.unwrap(),
        1,
        "the job ran again"
    );
    assert_eq!(rx.received("/once").len(), 1, "nothing sent a second time");
    let d = delivery_of(&app, &id).await;
    assert_eq!(
        (d["status"].as_str(), d["attempts"].as_array().map(Vec::len)),
        (Some("succeeded"), Some(1)),
        "{d}"
    );
    let mut conn = app.db.store.conn().await.unwrap();
    assert!(
        matches!(
            jobs::get(&mut conn, taken[0].id).await,
            Err(casebridge_store::StoreError::NotFound)
        ),
        "the job is done"
    );
}
casebridge_testkit::backend_test!(a_re_run_after_a_successful_attempt_sends_nothing);

async fn an_attempt_that_outlasts_the_timeout_fails_and_is_retried(
    backend: casebridge_testkit::TestBackend,
) {
    // W6: 15 s in production; a short limit here so the test does not wait 15 s.
    assert_eq!(
        casebridge_webhooks::delivery::ATTEMPT_TIMEOUT,
        Duration::from_secs(15)
    );
    let app = TestApp::start_with(
        backend,
        TestOptions {
            attempt_timeout: Duration::from_millis(300),
            ..TestOptions::default()
        },
    )
    .await;
    let rx = Receiver::start().await;
    rx.script("/slow", [R::status(200).delay(Duration::from_secs(30))]);
    let (id, _) = hook(&app, &rx.url("/slow"), json!({})).await;
    emit(&app, EventType::CallStarted, None, None).await;
    let w = app.webhook_worker(2);
    tokio::time::timeout(Duration::from_secs(10), w.drain())
        .await
        .expect("the attempt is cut off, not waited for")
        .unwrap();
    // The consumer's request was abandoned, and the attempt is a failure saying why.
    casebridge_testkit::wait_until(
        Duration::from_secs(5),
        "the slow request closed",
        async || rx.in_flight("/slow") == 0,
    )
    .await;
    let d = delivery_of(&app, &id).await;
    assert_eq!(d["status"], "pending", "{d}");
    assert_eq!(
        d["attempts"][0]["error"], "timed out after 0.3 s",
        "the configured limit: {d}"
    );
    assert_eq!(d["attempts"][0]["succeeded"], false, "{d}");
    // The retry is sent (and answered at once this time).
    app.advance(Duration::from_secs(3600));
    w.drain().await.unwrap();
    assert_eq!(rx.received("/slow").len(), 2);
    assert_eq!(delivery_of(&app, &id).await["status"], "succeeded");
}
casebridge_testkit::backend_test!(an_attempt_that_outlasts_the_timeout_fails_and_is_retried);

async fn an_event_is_fanned_out_in_its_own_transaction(backend: casebridge_testkit::TestBackend) {
    let app = TestApp::start(backend).await;
    let rx = Receiver::start().await;
    let (all, _) = hook(&app, &rx.url("/all"), json!({})).await;
    let (ended, _) = hook(
        &app,
        &rx.url("/ended"),
        json!({"event_types": ["call_ended"]}),
    )
    .await;
    let (off, _) = hook(&app, &rx.url("/off"), json!({"active": false})).await;
    let count = |webhook: String| {
        let app = &app;
        async move {
            app.get(&format!("/api/v1/webhooks/{webhook}/deliveries"))
                .await
                .body["data"]
                .as_array()
                .unwrap()
                .len()
        }
    };

    // Rolled back: no event, no delivery, no job.
    let mut tx = app.db.store.begin().await.unwrap();
    record_event(
        &mut tx,
        app.company_id,
        &NewEvent {
            event_type: EventType::CallStarted,
            data: json!({}),
            campaign_id: None,
            case_id: None,
        },
        casebridge_domain::clock::Clock::now(&app.clock),
    )
    .await
    .unwrap();
    tx.rollback().await.unwrap();
    assert_eq!(count(all.clone()).await, 0);
    assert_eq!(app.webhook_worker(4).drain().await.unwrap(), 0);

    // Committed: the deliveries are there before any worker runs, only for the webhooks that
    // are on and subscribed, and no dispatch job runs first.
    let event = emit(&app, EventType::CallStarted, None, None).await;
    let listed = app.get(&format!("/api/v1/webhooks/{all}/deliveries")).await;
    assert_eq!(listed.body["data"][0]["status"], "pending");
    assert_eq!(
        listed.body["data"][0]["event_id"],
        event.to_string().as_str()
    );
    assert_eq!(count(ended.clone()).await, 0, "filtered out by event type");
    assert_eq!(
        count(off.clone()).await,
        0,
        "a webhook turned off gets none"
    );
    assert_eq!(
        app.webhook_worker(4).drain().await.unwrap(),
        1,
        "one job: the delivery itself"
    );
    assert_eq!(rx.received("/all").len(), 1);

    // A dispatch job queued by an earlier version still fans its event out, once.
    let old = emit(&app, EventType::CallEnded, None, None).await;
    let mut tx = app.db.store.begin().await.unwrap();
    jobs::enqueue(
        &mut tx,
        &casebridge_domain::jobs::NewJob::new(
            QUEUE,
            casebridge_webhooks::outbox::DISPATCH,
            json!({"event_id": old.to_string()}),
        )
        .company(app.company_id),
        casebridge_domain::clock::Clock::now(&app.clock),
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();
    app.webhook_worker(4).drain().await.unwrap();
    assert_eq!(rx.received("/all").len(), 2);
    assert_eq!(rx.received("/ended").len(), 1);
    assert_eq!(
        count(ended).await,
        1,
        "the dispatch made no second delivery"
    );
    assert!(rx.received("/off").is_empty());
}
casebridge_testkit::backend_test!(an_event_is_fanned_out_in_its_own_transaction);

async fn a_webhook_gets_as_many_deliveries_in_flight_as_its_bound(
    backend: casebridge_testkit::TestBackend,
) {
    let app = TestApp::start(backend).await;
    let rx = Receiver::start().await;
    rx.always("/slow", R::status(200).delay(Duration::from_secs(30)));
    // The default, shown by the API.
    let (plain, _) = hook(
        &app,
        &rx.url("/plain"),
        json!({"event_types": ["task_completed"]}),
    )
    .await;
    let got = app.get(&format!("/api/v1/webhooks/{plain}")).await;
    assert_eq!(got.body["max_in_flight"], 4);

    // Bad values are refused, naming the field, and change nothing.
    for bad in [json!(0), json!(65), json!(-1), json!(1_000_000_000_000i64)] {
        let r = app
            .post(
                "/api/v1/webhooks",
                json!({"name": "Bad bound", "url": rx.url("/bad"), "max_in_flight": bad}),
            )
            .await;
        assert_eq!(
            r.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{bad}: {}",
            r.text
        );
        assert_eq!(
            r.body["error"]["details"][0]["field"], "max_in_flight",
            "{}",
            r.text
        );
        assert!(
            r.body["error"]["details"][0]["message"]
                .as_str()
                .unwrap()
                .contains("from 1 to 64"),
            "{}",
            r.text
        );
    }
    let listed = app.get("/api/v1/webhooks").await;
    assert_eq!(
        listed.body["data"].as_array().unwrap().len(),
        1,
        "nothing created"
    );

    let (id, _) = hook(
        &app,
        &rx.url("/slow"),
        json!({"event_types": ["call_started"], "max_in_flight": 8}),
    )
    .await;
    assert_eq!(
        app.get(&format!("/api/v1/webhooks/{id}")).await.body["max_in_flight"],
        8
    );
    let before = app.get(&format!("/api/v1/webhooks/{id}")).await.body;
    let r = app
        .patch(
            &format!("/api/v1/webhooks/{id}"),
            json!({"max_in_flight": 65, "name": "Renamed"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.text);
    assert_eq!(r.body["error"]["details"][0]["field"], "max_in_flight");
    assert_eq!(
        app.get(&format!("/api/v1/webhooks/{id}")).await.body,
        before,
        "a refused change changes nothing"
    );

    for _ in 0..12 {
        emit(&app, EventType::CallStarted, None, None).await;
    }
    let stop = CancellationToken::new();
    let run = tokio::spawn(app.webhook_worker(16).run(stop.clone()));
    // Eight at once (more than the old fixed 4), and no more.
    rx.wait_for("/slow", 8, WAIT).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(rx.in_flight("/slow"), 8);
    assert_eq!(
        rx.peak_in_flight("/slow"),
        8,
        "bounded by the webhook's setting"
    );

    // Raised while they hang: the queued deliveries get the new bound at once.
    let r = app
        .patch(
            &format!("/api/v1/webhooks/{id}"),
            json!({"max_in_flight": 10}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.body["max_in_flight"], 10);
    rx.wait_for("/slow", 10, WAIT).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(rx.peak_in_flight("/slow"), 10);
    stop.cancel();
    run.await.unwrap();
}
casebridge_testkit::backend_test!(a_webhook_gets_as_many_deliveries_in_flight_as_its_bound);

/// The signatures of a received delivery that `secret` verifies (our verifier, which the tests
/// above hold to the official one; it accepts the manual clock's future timestamps).
fn signed_by(secret: &str, r: &casebridge_testkit::receiver::Received) -> bool {
    let s = SigningSecret::parse(secret).unwrap();
    signing::verify(
        &[&s],
        r.header("webhook-id").unwrap(),
        r.header("webhook-timestamp").unwrap().parse().unwrap(),
        &r.body,
        r.header("webhook-signature").unwrap(),
    )
}

fn signature_count(r: &casebridge_testkit::receiver::Received) -> usize {
    r.header("webhook-signature").unwrap().split(' ').count()
}

async fn rotate(app: &TestApp, id: &str, overlap_secs: u64) -> String {
    app.post(
        &format!("/api/v1/webhooks/{id}/rotate-secret"),
        json!({"overlap_secs": overlap_secs}),
    )
    .await
    .expect(StatusCode::OK)
    .body["secret"]
        .as_str()
        .unwrap()
        .to_owned()
}

async fn a_warm_cache_signs_with_a_rotated_secret_and_drops_an_ended_one(
    backend: casebridge_testkit::TestBackend,
) {
    let app = TestApp::start(backend).await;
    let rx = Receiver::start().await;
    let (id, first) = hook(&app, &rx.url("/r"), json!({})).await;
    // One worker (one runtime, one cache) throughout.
    let w = app.webhook_worker(4);
    emit(&app, EventType::CallStarted, None, None).await;
    w.drain().await.unwrap();
    verify(&first, &rx.received("/r").pop().unwrap()).expect("the first secret verifies");

    // Rotated without overlap: the next delivery is signed with the new secret alone, and the
    // receiver verifies it with that secret.
    let second = rotate(&app, &id, 0).await;
    emit(&app, EventType::CallStarted, None, None).await;
    w.drain().await.unwrap();
    let got = rx.received("/r").pop().unwrap();
    verify(&second, &got).expect("the rotated secret verifies");
    assert!(
        verify(&first, &got).is_err(),
        "the replaced secret signs no more"
    );
    assert_eq!(signature_count(&got), 1);

    // Rotated with an overlap: both sign; once the overlap ends, with nothing else changed (so
    // the cached entry stays), the ended secret is left out at use.
    let third = rotate(&app, &id, 60).await;
    emit(&app, EventType::CallStarted, None, None).await;
    w.drain().await.unwrap();
    let got = rx.received("/r").pop().unwrap();
    assert_eq!(signature_count(&got), 2);
    assert!(signed_by(&second, &got) && signed_by(&third, &got));
    app.advance(Duration::from_secs(61));
    emit(&app, EventType::CallStarted, None, None).await;
    w.drain().await.unwrap();
    let got = rx.received("/r").pop().unwrap();
    assert_eq!(signature_count(&got), 1);
    assert!(signed_by(&third, &got), "the newest secret signs");
    assert!(!signed_by(&second, &got), "the ended secret does not");
    assert_eq!(rx.received("/r").len(), 4);
}
casebridge_testkit::backend_test!(a_warm_cache_signs_with_a_rotated_secret_and_drops_an_ended_one);

async fn a_webhook_turned_off_after_the_cache_is_warm_gets_nothing_more(
    backend: casebridge_testkit::TestBackend,
) {
    let app = TestApp::start(backend).await;
    let rx = Receiver::start().await;
    let (id, _) = hook(&app, &rx.url("/off"), json!({"max_in_flight": 1})).await;
    let w = app.webhook_worker(4);
    emit(&app, EventType::CallStarted, None, None).await;
    w.drain().await.unwrap();
    assert_eq!(rx.received("/off").len(), 1);

    // Turned off by an admin while a delivery is queued: the warm worker sends nothing.
    emit(&app, EventType::CallEnded, None, None).await;
    app.patch(&format!("/api/v1/webhooks/{id}"), json!({"active": false}))
        .await
        .expect(StatusCode::OK);
    w.drain().await.unwrap();
    assert_eq!(rx.received("/off").len(), 1, "nothing sent while off");
    let d = delivery_of(&app, &id).await;
    assert_eq!(
        (d["event_type"].as_str(), d["status"].as_str()),
        (Some("call_ended"), Some("failed")),
        "{d}"
    );

    // Back on (the cache is warm again), then turned off by a 410: of two deliveries queued one
    // at a time, the one after the 410 is not sent.
    app.patch(&format!("/api/v1/webhooks/{id}"), json!({"active": true}))
        .await
        .expect(StatusCode::OK);
    emit(&app, EventType::CallStarted, None, None).await;
    w.drain().await.unwrap();
    assert_eq!(rx.received("/off").len(), 2);
    rx.script("/off", [R::status(410)]);
    emit(&app, EventType::CallStarted, None, None).await;
    emit(&app, EventType::CallStarted, None, None).await;
    w.drain().await.unwrap();
    assert_eq!(rx.received("/off").len(), 3, "nothing sent after the 410");
    let w_body = app
        .get(&format!("/api/v1/webhooks/{id}"))
        .await
        .expect(StatusCode::OK)
        .body;
    assert_eq!(w_body["active"], false, "{w_body}");
}
casebridge_testkit::backend_test!(a_webhook_turned_off_after_the_cache_is_warm_gets_nothing_more);

async fn a_changed_url_is_used_by_every_warm_worker_from_the_next_delivery(
    backend: casebridge_testkit::TestBackend,
) {
    let app = TestApp::start(backend).await;
    let rx = Receiver::start().await;
    let (id, _) = hook(&app, &rx.url("/a"), json!({})).await;
    // Two runtimes: two processes' caches.
    let (w1, w2) = (app.webhook_worker(4), app.webhook_worker(4));
    emit(&app, EventType::CallStarted, None, None).await;
    w1.drain().await.unwrap();
    emit(&app, EventType::CallStarted, None, None).await;
    w2.drain().await.unwrap();
    assert_eq!(rx.received("/a").len(), 2);

    app.patch(
        &format!("/api/v1/webhooks/{id}"),
        json!({"url": rx.url("/b")}),
    )
    .await
    .expect(StatusCode::OK);
    emit(&app, EventType::CallStarted, None, None).await;
    w1.drain().await.unwrap();
    emit(&app, EventType::CallStarted, None, None).await;
    w2.drain().await.unwrap();
    assert_eq!((rx.received("/a").len(), rx.received("/b").len()), (2, 2));
}
casebridge_testkit::backend_test!(
    a_changed_url_is_used_by_every_warm_worker_from_the_next_delivery
);

async fn a_cached_dns_answer_re_pointed_at_a_forbidden_address_is_refused_at_delivery(
    backend: casebridge_testkit::TestBackend,
) {
    let app = TestApp::start(backend).await;
    let rx = Receiver::start().await;
    let url = rx.url("/dns").replace("127.0.0.1", "localhost");
    let (id, _) = hook(&app, &url, json!({})).await;
    let rt = WebhookRuntime::new(
        app.db.store.clone(),
        app.keyring.clone(),
        Arc::new(app.clock.clone()),
        TestOptions::default().url_policy,
        Duration::from_secs(15),
    );
    let w = Worker::new(
        app.db.store.clone(),
        Arc::new(app.clock.clone()),
        rt.registry(),
        WorkerConfig::new(QUEUE),
    );
    emit(&app, EventType::CallStarted, None, None).await;
    w.drain().await.unwrap();
    assert_eq!(
        rx.received("/dns").len(),
        1,
        "sent through the cached lookup"
    );

    // The name now answers with the metadata service's address, and that answer is cached: the
    // attempt is refused all the same.
    rt.dns
        .insert("localhost", vec!["169.254.169.254".parse().unwrap()]);
    emit(&app, EventType::CallEnded, None, None).await;
    w.drain().await.unwrap();
    assert_eq!(rx.received("/dns").len(), 1, "nothing sent");
    let d = delivery_of(&app, &id).await;
    let error = d["attempts"][0]["error"].as_str().unwrap_or_default();
    assert!(error.contains("resolves to 169.254.169.254"), "{d}");
}
casebridge_testkit::backend_test!(
    a_cached_dns_answer_re_pointed_at_a_forbidden_address_is_refused_at_delivery
);
