//! `/metrics` as an operator scrapes it: the levels read from this database at each scrape
//! (queue depth and the age of the oldest due job, CRM operations and integrations, the pool)
//! and the counters recorded where things happen (webhook attempts by outcome class, inbound CRM
//! webhooks by outcome). Counters are process-wide and other tests in this binary add to them,
//! so a test compares a counter before and after what it does; levels are exact.

use std::time::Duration;

use casebridge_testkit::receiver::{Receiver, Reply as R};
use casebridge_testkit::TestApp;
use reqwest::StatusCode;
use serde_json::json;

async fn scrape(app: &TestApp) -> String {
    let r = app.http.get(app.url("/metrics")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert!(r.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/plain"));
    r.text().await.unwrap()
}

/// The value of the sample `name` whose labels are exactly `labels` (in any order), if present.
fn sample(text: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    let mut want: Vec<String> = labels.iter().map(|(k, v)| format!("{k}=\"{v}\"")).collect();
    want.sort();
    text.lines().find_map(|line| {
        let (series, value) = line.rsplit_once(' ')?;
        let (n, got) = match series.split_once('{') {
            Some((n, rest)) => (n, rest.strip_suffix('}')?),
            None => (series, ""),
        };
        let mut got: Vec<String> = if got.is_empty() {
            Vec::new()
        } else {
            got.split(',').map(str::to_owned).collect()
        };
        got.sort();
        (n == name && got == want).then(|| value.parse().ok())?
    })
}

fn value(text: &str, name: &str, labels: &[(&str, &str)]) -> f64 {
    sample(text, name, labels).unwrap_or_else(|| panic!("no {name}{labels:?} in\n{text}"))
}

/// Jobs of `queue` in every state but `dead`, and the longest any of them has been due.
fn live_jobs(text: &str, queue: &str) -> (f64, f64) {
    let mut jobs = 0.0;
    let mut age: f64 = 0.0;
    for state in ["pending", "running", "waiting", "scheduled", "blocked"] {
        jobs += value(
            text,
            "casebridge_queue_jobs",
            &[("queue", queue), ("state", state)],
        );
        if state != "running" {
            age = age.max(value(
                text,
                "casebridge_queue_oldest_due_age_seconds",
                &[("queue", queue), ("state", state)],
            ));
        }
    }
    (jobs, age)
}

async fn queue_levels_and_webhook_attempts_are_reported(backend: casebridge_testkit::TestBackend) {
    let app = TestApp::start(backend).await;
    let rx = Receiver::start().await;
    rx.always("/down", R::status(503));

    // An empty database still reports every queue, state and CRM, as zeros.
    let text = scrape(&app).await;
    assert_eq!(value(&text, "casebridge_levels_up", &[]), 1.0);
    assert_eq!(live_jobs(&text, "webhooks"), (0.0, 0.0));
    assert_eq!(
        value(
            &text,
            "casebridge_queue_jobs",
            &[("queue", "crm"), ("state", "dead")]
        ),
        0.0
    );
    assert_eq!(
        value(
            &text,
            "casebridge_crm_operations",
            &[("provider", "lawruler"), ("state", "pending")]
        ),
        0.0
    );
    assert_eq!(
        value(
            &text,
            "casebridge_crm_integrations_connected",
            &[("provider", "smartadvocate")]
        ),
        0.0
    );
    assert!(value(&text, "casebridge_db_pool_max_connections", &[]) >= 1.0);
    let attempts_before = sample(
        &text,
        "casebridge_webhook_attempts_total",
        &[("outcome", "5xx")],
    )
    .unwrap_or(0.0);

    let r = app
        .post(
            "/api/v1/webhooks",
            json!({"name": "Down", "url": rx.url("/down")}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    let hook = r.body["id"].as_str().unwrap().to_owned();
    app.post(&format!("/api/v1/webhooks/{hook}/test"), json!({}))
        .await
        .expect(StatusCode::ACCEPTED);

    // The test delivery waits in the queue; a minute later it has been due for a minute.
    let (jobs, _) = live_jobs(&scrape(&app).await, "webhooks");
    assert_eq!(jobs, 1.0);
    app.advance(Duration::from_secs(60));
    let (jobs, age) = live_jobs(&scrape(&app).await, "webhooks");
    assert_eq!(jobs, 1.0);
    assert!(
        (60.0..120.0).contains(&age),
        "oldest due job waited {age} s"
    );

    // One attempt, answered 503: counted as 5xx, with its duration; the job waits for its
    // retry, not due yet.
    app.webhook_worker(4).drain().await.unwrap();
    assert_eq!(rx.received("/down").len(), 1);
    let text = scrape(&app).await;
    let attempts_after = value(
        &text,
        "casebridge_webhook_attempts_total",
        &[("outcome", "5xx")],
    );
    assert!(
        attempts_after > attempts_before,
        "{attempts_before} -> {attempts_after}"
    );
    assert!(
        sample(
            &text,
            "casebridge_webhook_attempt_duration_seconds_count",
            &[("outcome", "5xx")]
        )
        .is_some(),
        "{text}"
    );
    let (jobs, age) = live_jobs(&text, "webhooks");
    assert_eq!((jobs, age), (1.0, 0.0));
}
casebridge_testkit::backend_test!(queue_levels_and_webhook_attempts_are_reported);

async fn crm_levels_and_inbound_webhooks_are_reported(backend: casebridge_testkit::TestBackend) {
    let app = TestApp::start(backend).await;
    let url = app
        .lawruler_connected_offline(app.company_id, &app.api_key)
        .await;
    let text = scrape(&app).await;
    assert_eq!(
        value(
            &text,
            "casebridge_crm_integrations_connected",
            &[("provider", "lawruler")]
        ),
        1.0
    );
    assert_eq!(
        value(
            &text,
            "casebridge_crm_integrations_config_error",
            &[("provider", "lawruler")]
        ),
        0.0
    );

    // A configuration error is what the alert on this gauge is for.
    let mut conn = app.db.store.conn().await.unwrap();
    casebridge_store::integrations::set_config_error(
        &mut conn,
        app.company_id,
        "lawruler",
        Some("wrong key"),
        jiff::Timestamp::now(),
    )
    .await
    .unwrap();
    drop(conn);
    let text = scrape(&app).await;
    assert_eq!(
        value(
            &text,
            "casebridge_crm_integrations_config_error",
            &[("provider", "lawruler")]
        ),
        1.0
    );

    // Inbound webhooks by outcome: an unknown token, and one that is not a lead.
    let labels = |o| [("provider", "lawruler"), ("outcome", o)];
    let unknown_before = sample(
        &text,
        "casebridge_crm_inbound_webhooks_total",
        &labels("unknown_token"),
    )
    .unwrap_or(0.0);
    let rejected_before = sample(
        &text,
        "casebridge_crm_inbound_webhooks_total",
        &labels("rejected"),
    )
    .unwrap_or(0.0);
    let r = app
        .http
        .post(app.url("/hooks/lawruler/not-a-token"))
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    let r = app
        .http
        .post(app.url(&url))
        .json(&json!({"Lead ID": "x"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let text = scrape(&app).await;
    assert!(
        value(
            &text,
            "casebridge_crm_inbound_webhooks_total",
            &labels("unknown_token")
        ) > unknown_before
    );
    assert!(
        value(
            &text,
            "casebridge_crm_inbound_webhooks_total",
            &labels("rejected")
        ) > rejected_before
    );
}
casebridge_testkit::backend_test!(crm_levels_and_inbound_webhooks_are_reported);
