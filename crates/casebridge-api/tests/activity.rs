//! Calls, transfers, messages and tasks end to end, on a real port, on both backends: each
//! change writes exactly one event and, in the same transaction, its delivery and
//! `webhook.deliver` job for each subscribed webhook (the outbox, fanned out inline), and a
//! rejected request writes neither.

use std::collections::BTreeSet;

use casebridge_domain::events::{Event, EventType, Subscription};
use casebridge_domain::ids::{CompanyId, EventId, WebhookId};
use casebridge_domain::jobs::Job;
use casebridge_store::webhooks::{self, NewWebhook};
use casebridge_store::{activity, events};
use casebridge_testkit::TestApp;
use casebridge_webhooks::outbox;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

const NO_SUCH_ID: &str = "01a1feab-0000-7000-8000-000000000000";

/// The webhook whose deliveries an [`Outbox`] watches: subscribed to every event type, never
/// sent to (no worker runs in these tests).
const PROBE: &str = "outbox probe";

/// The company's probe webhook, made on first use (written through the store: the secret is
/// never opened).
async fn probe(app: &TestApp, company: CompanyId) -> WebhookId {
    let mut tx = app.db.store.begin().await.unwrap();
    let hooks = webhooks::active(&mut tx, company).await.unwrap();
    if let Some(w) = hooks.iter().find(|w| w.name == PROBE) {
        return w.id;
    }
    let id = WebhookId::new();
    let new = NewWebhook {
        id,
        name: PROBE.to_owned(),
        url: "https://probe.example/outbox".to_owned(),
        subscription: Subscription::default(),
        app_key_sealed: None,
        active: true,
        max_in_flight: casebridge_domain::events::DEFAULT_MAX_IN_FLIGHT,
    };
    let now = casebridge_domain::clock::Clock::now(&app.clock);
    webhooks::create(&mut tx, company, &new, "never opened", now)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    id
}

/// A company's events (oldest first) and the pending delivery jobs of its probe webhook, each
/// with the event it delivers, read through the store.
async fn outbox_of(
    app: &TestApp,
    company: CompanyId,
    probe: WebhookId,
) -> (Vec<Event>, Vec<(Job, EventId)>) {
    let mut conn = app.db.store.conn().await.unwrap();
    let mut events = activity::recent_events(&mut conn, company, 10_000)
        .await
        .unwrap();
    events.reverse();
    let mut jobs = Vec::new();
    for job in activity::pending_jobs(&mut conn, company, outbox::DELIVER)
        .await
        .unwrap()
    {
        let delivery = job.payload["delivery_id"]
            .as_str()
            .unwrap()
            .parse()
            .unwrap();
        let d = webhooks::delivery(&mut conn, company, delivery)
            .await
            .unwrap();
        if d.webhook_id == probe {
            jobs.push((job, d.event_id));
        }
    }
    (events, jobs)
}

/// Follows one company's outbox: each check looks only at what was written since the last one.
struct Outbox {
    company: CompanyId,
    probe: WebhookId,
    events: usize,
    jobs: usize,
    seen: BTreeSet<&'static str>,
}

impl Outbox {
    async fn new(app: &TestApp, company: CompanyId) -> Self {
        let probe = probe(app, company).await;
        let (events, jobs) = outbox_of(app, company, probe).await;
        Self {
            company,
            probe,
            events: events.len(),
            jobs: jobs.len(),
            seen: BTreeSet::new(),
        }
    }

    /// Exactly one new event, of this type, with these filter keys, and exactly one new pending
    /// `webhook.deliver` job delivering it to the probe webhook.
    async fn one(
        &mut self,
        app: &TestApp,
        event_type: EventType,
        campaign_id: Option<&str>,
        case_type_id: Option<&str>,
    ) -> Event {
        let (events, jobs) = outbox_of(app, self.company, self.probe).await;
        let new_events = &events[self.events..];
        let new_jobs = &jobs[self.jobs..];
        assert_eq!(
            new_events.len(),
            1,
            "{event_type:?}: expected one new event, got {:?}",
            new_events.iter().map(|e| e.event_type).collect::<Vec<_>>()
        );
        assert_eq!(
            new_jobs.len(),
            1,
            "{event_type:?}: expected one new delivery job"
        );
        let event = new_events[0].clone();
        let (job, delivered) = &new_jobs[0];
        assert_eq!(event.event_type, event_type);
        assert_eq!(event.company_id, self.company);
        assert_eq!(
            event.campaign_id.map(|c| c.to_string()).as_deref(),
            campaign_id,
            "{event_type:?}: campaign"
        );
        assert_eq!(
            event.case_type_id.map(|c| c.to_string()).as_deref(),
            case_type_id,
            "{event_type:?}: case type"
        );
        assert_eq!(job.queue, outbox::QUEUE);
        assert_eq!(job.kind, outbox::DELIVER);
        assert_eq!(job.company_id, Some(self.company));
        assert_eq!(*delivered, event.id);
        self.events = events.len();
        self.jobs = jobs.len();
        self.seen.insert(event_type.as_str());
        event
    }

    /// Nothing written since the last check.
    async fn none(&self, app: &TestApp, what: &str) {
        let (events, jobs) = outbox_of(app, self.company, self.probe).await;
        let new: Vec<_> = events[self.events..].iter().map(|e| e.event_type).collect();
        assert!(new.is_empty(), "{what}: wrote events {new:?}");
        assert_eq!(jobs.len(), self.jobs, "{what}: wrote jobs");
    }
}

fn error_code(body: &Value) -> &str {
    body["error"]["code"].as_str().unwrap_or("<none>")
}

fn error_fields(body: &Value) -> Vec<String> {
    body["error"]["details"]
        .as_array()
        .map(|d| {
            d.iter()
                .map(|e| e["field"].as_str().unwrap_or_default().to_owned())
                .collect()
        })
        .unwrap_or_default()
}

/// Sends the requests at once, each on its own task; returns their statuses.
async fn post_concurrently(app: &TestApp, path: &str, bodies: Vec<Value>) -> Vec<StatusCode> {
    let mut set = tokio::task::JoinSet::new();
    for body in bodies {
        let request = app
            .http
            .post(app.url(path))
            .bearer_auth(&app.api_key)
            .json(&body);
        set.spawn(async move { request.send().await.expect("request sent").status() });
    }
    set.join_all().await
}

/// A case type, a case of that type, and a campaign.
struct Fixture {
    case_type: String,
    case: String,
    campaign: String,
}

async fn fixture(app: &TestApp) -> Fixture {
    let case_type = app
        .create(
            "/api/v1/case-types",
            json!({"name": "Motor Vehicle Accident"}),
        )
        .await;
    let case = app
        .create(
            "/api/v1/cases",
            json!({"name": "Doe – rear-end collision", "case_type_id": case_type}),
        )
        .await;
    let campaign = app
        .create("/api/v1/campaigns", json!({"name": "Spring MVA leads"}))
        .await;
    Fixture {
        case_type,
        case,
        campaign,
    }
}

async fn start_call(app: &TestApp, f: &Fixture) -> String {
    app.create(
        "/api/v1/calls",
        json!({"case_id": f.case, "campaign_id": f.campaign, "direction": "outbound",
               "to_number": "+1 555 010 2000"}),
    )
    .await
}

/// Asserts a reply's status, showing its body when it differs.
macro_rules! assert_status {
    ($reply:expr, $status:expr, $what:expr) => {{
        let r = &$reply;
        assert_eq!(r.status, $status, "{}: {}", $what, r.text);
    }};
}

async fn every_event_type_is_recorded_once_with_its_delivery_job(
    backend: casebridge_testkit::TestBackend,
) {
    let app = TestApp::start(backend).await;
    let f = fixture(&app).await;
    let mut outbox = Outbox::new(&app, app.company_id).await;
    let (campaign, case_type) = (Some(f.campaign.as_str()), Some(f.case_type.as_str()));

    // Calls.
    let r = app
        .post(
            "/api/v1/calls",
            json!({
            "case_id": f.case, "campaign_id": f.campaign, "direction": "outbound",
            "from_number": "+1 555 010 1000", "to_number": "+1 555 010 2000"}),
        )
        .await;
    assert_status!(&r, StatusCode::CREATED, "start call");
    let call = r.body["id"].as_str().unwrap().to_owned();
    let e = outbox
        .one(&app, EventType::CallStarted, campaign, case_type)
        .await;
    assert_eq!(e.data, json!({"call": r.body}));

    let r = app
        .post(
            &format!("/api/v1/calls/{call}/transcript"),
            json!({"turns": [
            {"speaker": "agent", "text": "Hi Jane, this is Kayse."},
            {"speaker": "client", "text": "Hi!", "at": "2025-05-01T14:30:11Z"}]}),
        )
        .await;
    assert_status!(&r, StatusCode::OK, "transcript");
    let e = outbox
        .one(&app, EventType::TranscriptUpdated, campaign, case_type)
        .await;
    assert_eq!(e.data["call"], r.body);
    assert_eq!(e.data["turns"], r.body["transcript"]);
    assert_eq!(e.data["transcript_length"], 2);

    let r = app
        .post(
            &format!("/api/v1/calls/{call}/end"),
            json!({"end_reason": "hangup"}),
        )
        .await;
    assert_status!(&r, StatusCode::OK, "end");
    let e = outbox
        .one(&app, EventType::CallEnded, campaign, case_type)
        .await;
    assert_eq!(e.data, json!({"call": r.body}));

    let r = app
        .post(
            &format!("/api/v1/calls/{call}/analysis"),
            json!({
            "summary": "Rear-ended on I-90; neck pain.",
            "post_call_result": "Qualified – Intake Completed",
            "custom": {"1234": "Yes", "1235": 7, "1236": false, "1237": null}}),
        )
        .await;
    assert_status!(&r, StatusCode::OK, "analysis");
    let e = outbox
        .one(&app, EventType::CallAnalyzed, campaign, case_type)
        .await;
    assert_eq!(
        e.data,
        json!({
            "call": r.body,
            "summary": "Rear-ended on I-90; neck pain.",
            "post_call_result": "Qualified – Intake Completed",
            "_custom": {"1234": "Yes", "1235": 7, "1236": false, "1237": null},
        })
    );

    // Transfers carry the call's campaign and case.
    let live = start_call(&app, &f).await;
    outbox
        .one(&app, EventType::CallStarted, campaign, case_type)
        .await;
    let r = app
        .post(
            &format!("/api/v1/calls/{live}/transfers"),
            json!({"to_number": "+1 555 010 3000"}),
        )
        .await;
    assert_status!(&r, StatusCode::CREATED, "transfer");
    let transfer = r.body["id"].as_str().unwrap().to_owned();
    let e = outbox
        .one(&app, EventType::TransferStarted, campaign, case_type)
        .await;
    assert_eq!(e.data, json!({"transfer": r.body, "call_id": live}));
    for (action, event_type) in [
        ("bridged", EventType::TransferBridged),
        ("ended", EventType::TransferEnded),
    ] {
        let r = app
            .post(&format!("/api/v1/transfers/{transfer}/{action}"), json!({}))
            .await;
        assert_status!(&r, StatusCode::OK, action);
        assert_eq!(r.body["status"], action);
        let e = outbox.one(&app, event_type, campaign, case_type).await;
        assert_eq!(e.data, json!({"transfer": r.body, "call_id": live}));
    }
    let other = app
        .create(
            &format!("/api/v1/calls/{live}/transfers"),
            json!({"to_number": "+1 555 010 4000"}),
        )
        .await;
    outbox
        .one(&app, EventType::TransferStarted, campaign, case_type)
        .await;
    let r = app
        .post(&format!("/api/v1/transfers/{other}/cancelled"), json!({}))
        .await;
    assert_status!(&r, StatusCode::OK, "cancel");
    let e = outbox
        .one(&app, EventType::TransferCancelled, campaign, case_type)
        .await;
    assert_eq!(e.data["transfer"]["status"], "cancelled");

    // Messages.
    let r = app.post("/api/v1/messages", json!({
            "case_id": f.case, "campaign_id": f.campaign, "channel": "sms", "direction": "outbound",
            "from": "+1 555 010 1000", "to": "+1 555 010 2000", "body": "Your documents are ready."})).await;
    assert_status!(&r, StatusCode::CREATED, "message");
    let message = r.body["id"].as_str().unwrap().to_owned();
    let e = outbox
        .one(&app, EventType::MessageSent, campaign, case_type)
        .await;
    assert_eq!(e.data, json!({"message": r.body}));
    let r = app
        .post(&format!("/api/v1/messages/{message}/delivered"), json!({}))
        .await;
    assert_status!(&r, StatusCode::OK, "delivered");
    let e = outbox
        .one(&app, EventType::MessageDelivered, campaign, case_type)
        .await;
    assert_eq!(e.data, json!({"message": r.body}));

    // Tasks and forms: creating one is not an event; finishing it is.
    let task = app
        .create(
            "/api/v1/tasks",
            json!({"case_id": f.case, "kind": "task", "title": "Collect police report"}),
        )
        .await;
    outbox.none(&app, "create task").await;
    let r = app
        .post(&format!("/api/v1/tasks/{task}/complete"), json!({}))
        .await;
    assert_status!(&r, StatusCode::OK, "complete");
    let e = outbox
        .one(&app, EventType::TaskCompleted, None, case_type)
        .await;
    assert_eq!(e.data, json!({"task": r.body}));
    let form = app
        .create(
            "/api/v1/tasks",
            json!({"case_id": f.case, "kind": "form", "title": "Intake questionnaire"}),
        )
        .await;
    let r = app
        .post(
            &format!("/api/v1/tasks/{form}/submit"),
            json!({"answers": {"injuries": ["neck"], "date": "2025-04-28"}}),
        )
        .await;
    assert_status!(&r, StatusCode::OK, "submit");
    let e = outbox
        .one(&app, EventType::FormSubmitted, None, case_type)
        .await;
    assert_eq!(e.data, json!({"task": r.body}));

    let all: BTreeSet<&str> = EventType::SUBSCRIBABLE.iter().map(|t| t.as_str()).collect();
    assert_eq!(outbox.seen, all);
}
casebridge_testkit::backend_test!(every_event_type_is_recorded_once_with_its_delivery_job);

async fn activity_without_case_or_campaign_has_no_filter_keys(
    backend: casebridge_testkit::TestBackend,
) {
    let app = TestApp::start(backend).await;
    let mut outbox = Outbox::new(&app, app.company_id).await;
    let call = app
        .create("/api/v1/calls", json!({"direction": "inbound"}))
        .await;
    outbox.one(&app, EventType::CallStarted, None, None).await;
    app.create(
        &format!("/api/v1/calls/{call}/transfers"),
        json!({"to_number": "555 0100"}),
    )
    .await;
    outbox
        .one(&app, EventType::TransferStarted, None, None)
        .await;
    app.create(
        "/api/v1/messages",
        json!({"channel": "email", "direction": "outbound",
            "to": "jane@example.com", "body": "Hello"}),
    )
    .await;
    outbox.one(&app, EventType::MessageSent, None, None).await;
    let task = app
        .create(
            "/api/v1/tasks",
            json!({"kind": "task", "title": "Call back"}),
        )
        .await;
    app.post(&format!("/api/v1/tasks/{task}/complete"), json!({}))
        .await
        .expect(StatusCode::OK);
    outbox.one(&app, EventType::TaskCompleted, None, None).await;
}
casebridge_testkit::backend_test!(activity_without_case_or_campaign_has_no_filter_keys);

async fn calls_round_trip(backend: casebridge_testkit::TestBackend) {
    let app = TestApp::start(backend).await;
    let f = fixture(&app).await;
    let r = app.post("/api/v1/calls", json!({
            "case_id": f.case, "campaign_id": f.campaign, "direction": "inbound",
            "from_number": " +1 (555) 010-2000 ", "started_at": "2025-05-01T09:30:00.123456-05:00"})).await;
    assert_status!(&r, StatusCode::CREATED, "start");
    let call = r.body["id"].as_str().unwrap().to_owned();
    assert_eq!(r.body["status"], "in_progress");
    assert_eq!(r.body["direction"], "inbound");
    assert_eq!(r.body["from_number"], "+1 (555) 010-2000");
    assert_eq!(r.body["to_number"], Value::Null);
    assert_eq!(r.body["started_at"], "2025-05-01T14:30:00.123Z");
    assert_eq!(r.body["case_id"], f.case.as_str());
    assert_eq!(r.body["campaign_id"], f.campaign.as_str());
    assert_eq!(r.body["transcript"], json!([]));
    assert_eq!(r.body["analysis"], Value::Null);
    assert_eq!(app.get(&format!("/api/v1/calls/{call}")).await.body, r.body);

    // Turns append in order; a turn without `at` is timed now.
    let r = app
        .post(
            &format!("/api/v1/calls/{call}/transcript"),
            json!({"turns": [
            {"speaker": "agent", "text": "Hello", "at": "2025-05-01T14:30:04Z"}]}),
        )
        .await;
    assert_status!(&r, StatusCode::OK, "turn 1");
    let r = app
        .post(
            &format!("/api/v1/calls/{call}/transcript"),
            json!({"turns": [
            {"speaker": "client", "text": " Hi there "}]}),
        )
        .await;
    let transcript = r.body["transcript"].as_array().unwrap().clone();
    assert_eq!(transcript.len(), 2);
    assert_eq!(
        transcript[0],
        json!({"speaker": "agent", "text": "Hello", "at": "2025-05-01T14:30:04.000Z"})
    );
    assert_eq!(
        (
            transcript[1]["speaker"].as_str(),
            transcript[1]["text"].as_str()
        ),
        (Some("client"), Some("Hi there"))
    );
    assert!(transcript[1]["at"].is_string());

    // Ending: once, and not before the call started.
    let r = app
        .post(
            &format!("/api/v1/calls/{call}/end"),
            json!({"ended_at": "2025-05-01T14:29:00Z"}),
        )
        .await;
    assert_status!(&r, StatusCode::UNPROCESSABLE_ENTITY, "end before start");
    assert_eq!(error_fields(&r.body), ["ended_at"]);
    let r = app
        .post(
            &format!("/api/v1/calls/{call}/end"),
            json!({"ended_at": "2025-05-01T14:41:37Z", "end_reason": "voicemail"}),
        )
        .await;
    assert_status!(&r, StatusCode::OK, "end");
    assert_eq!(
        (
            r.body["status"].as_str(),
            r.body["ended_at"].as_str(),
            r.body["end_reason"].as_str()
        ),
        (
            Some("ended"),
            Some("2025-05-01T14:41:37.000Z"),
            Some("voicemail")
        )
    );
    let r = app
        .post(&format!("/api/v1/calls/{call}/end"), json!({}))
        .await;
    assert_status!(&r, StatusCode::CONFLICT, "end twice");
    assert!(
        r.body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("already ended"),
        "{}",
        r.text
    );

    // Late transcript turns are still accepted.
    let r = app
        .post(
            &format!("/api/v1/calls/{call}/transcript"),
            json!({"turns": [
            {"speaker": "agent", "text": "Goodbye"}]}),
        )
        .await;
    assert_status!(&r, StatusCode::OK, "late turn");
    assert_eq!(r.body["transcript"].as_array().unwrap().len(), 3);

    // Analysis; a re-run replaces it.
    let r = app
        .post(
            &format!("/api/v1/calls/{call}/analysis"),
            json!({"summary": "First pass", "post_call_result": "Review Needed"}),
        )
        .await;
    assert_status!(&r, StatusCode::OK, "analysis");
    assert_eq!(r.body["analysis"]["custom"], json!({}));
    let r = app.post(&format!("/api/v1/calls/{call}/analysis"),
            json!({"summary": "Second pass", "post_call_result": "Sent e-Sign", "custom": {"1234": "Yes"}})).await;
    assert_eq!(r.body["analysis"]["summary"], "Second pass");
    assert_eq!(r.body["analysis"]["post_call_result"], "Sent e-Sign");
    assert_eq!(r.body["analysis"]["custom"], json!({"1234": "Yes"}));
    assert!(r.body["analysis"]["analyzed_at"].is_string());
    assert_eq!(app.get(&format!("/api/v1/calls/{call}")).await.body, r.body);
}
casebridge_testkit::backend_test!(calls_round_trip);

async fn transfers_follow_their_state_rules(backend: casebridge_testkit::TestBackend) {
    let app = TestApp::start(backend).await;
    let f = fixture(&app).await;
    let call = start_call(&app, &f).await;
    let r = app
        .post(
            &format!("/api/v1/calls/{call}/transfers"),
            json!({"to_number": "+1 555 010 3000"}),
        )
        .await;
    assert_status!(&r, StatusCode::CREATED, "start");
    assert_eq!(r.body["status"], "started");
    assert_eq!(r.body["call_id"], call.as_str());
    assert_eq!(r.body["case_id"], f.case.as_str());
    assert_eq!(r.body["campaign_id"], f.campaign.as_str());
    let t = r.body["id"].as_str().unwrap().to_owned();
    assert_eq!(
        app.get(&format!("/api/v1/transfers/{t}")).await.body,
        r.body
    );

    let outbox = Outbox::new(&app, app.company_id).await;
    let conflict = |action: &'static str, state: &'static str| {
        let app = &app;
        let t = t.clone();
        async move {
            let r = app
                .post(&format!("/api/v1/transfers/{t}/{action}"), json!({}))
                .await;
            assert_status!(&r, StatusCode::CONFLICT, action);
            assert_eq!(error_code(&r.body), "conflict");
            let message = r.body["error"]["message"].as_str().unwrap().to_owned();
            assert!(
                message.contains(&format!("the transfer is {state}")),
                "{action}: {message}"
            );
        }
    };
    conflict("ended", "started").await;
    outbox.none(&app, "ended from started").await;

    assert_status!(
        &app.post(&format!("/api/v1/transfers/{t}/bridged"), json!({}))
            .await,
        StatusCode::OK,
        "bridge"
    );
    let outbox = Outbox::new(&app, app.company_id).await;
    conflict("bridged", "bridged").await;
    conflict("cancelled", "bridged").await;
    outbox.none(&app, "bridged/cancelled from bridged").await;
    assert_status!(
        &app.post(&format!("/api/v1/transfers/{t}/ended"), json!({}))
            .await,
        StatusCode::OK,
        "end"
    );
    let outbox = Outbox::new(&app, app.company_id).await;
    conflict("ended", "ended").await;
    conflict("bridged", "ended").await;
    outbox.none(&app, "from ended").await;
    assert_eq!(
        app.get(&format!("/api/v1/transfers/{t}")).await.body["status"],
        "ended"
    );

    // A cancelled transfer is done.
    let c = app
        .create(
            &format!("/api/v1/calls/{call}/transfers"),
            json!({"to_number": "555-0100"}),
        )
        .await;
    assert_status!(
        &app.post(&format!("/api/v1/transfers/{c}/cancelled"), json!({}))
            .await,
        StatusCode::OK,
        "cancel"
    );
    let r = app
        .post(&format!("/api/v1/transfers/{c}/bridged"), json!({}))
        .await;
    assert_status!(&r, StatusCode::CONFLICT, "bridge cancelled");
    assert!(r.text.contains("the transfer is cancelled"), "{}", r.text);

    // A call that ended cannot be transferred; a bad number is named.
    let r = app
        .post(
            &format!("/api/v1/calls/{call}/transfers"),
            json!({"to_number": "front desk"}),
        )
        .await;
    assert_status!(&r, StatusCode::UNPROCESSABLE_ENTITY, "bad number");
    assert_eq!(error_fields(&r.body), ["to_number"]);
    app.post(&format!("/api/v1/calls/{call}/end"), json!({}))
        .await
        .expect(StatusCode::OK);
    let outbox = Outbox::new(&app, app.company_id).await;
    let r = app
        .post(
            &format!("/api/v1/calls/{call}/transfers"),
            json!({"to_number": "555-0100"}),
        )
        .await;
    assert_status!(&r, StatusCode::CONFLICT, "transfer of an ended call");
    assert!(r.text.contains("the call has ended"), "{}", r.text);
    outbox.none(&app, "transfer of an ended call").await;
    assert_eq!(
        app.get(&format!("/api/v1/transfers/{NO_SUCH_ID}"))
            .await
            .status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        app.post(
            &format!("/api/v1/transfers/{NO_SUCH_ID}/bridged"),
            json!({})
        )
        .await
        .status,
        StatusCode::NOT_FOUND
    );
}
casebridge_testkit::backend_test!(transfers_follow_their_state_rules);

async fn messages_round_trip_and_are_delivered_once(backend: casebridge_testkit::TestBackend) {
    let app = TestApp::start(backend).await;
    let f = fixture(&app).await;
    let r = app.post("/api/v1/messages", json!({
            "case_id": f.case, "campaign_id": f.campaign, "channel": "email", "direction": "outbound",
            "from": "intake@acme-law.example", "to": "jane@example.com", "body": "Your documents are ready."})).await;
    assert_status!(&r, StatusCode::CREATED, "send");
    let m = r.body["id"].as_str().unwrap().to_owned();
    assert_eq!(
        (
            r.body["status"].as_str(),
            r.body["channel"].as_str(),
            r.body["from"].as_str()
        ),
        (Some("sent"), Some("email"), Some("intake@acme-law.example"))
    );
    assert!(r.body["sent_at"].is_string() && r.body["delivered_at"].is_null());
    assert_eq!(app.get(&format!("/api/v1/messages/{m}")).await.body, r.body);

    let r = app
        .post(&format!("/api/v1/messages/{m}/delivered"), json!({}))
        .await;
    assert_status!(&r, StatusCode::OK, "delivered");
    assert_eq!(r.body["status"], "delivered");
    assert!(r.body["delivered_at"].is_string());
    let outbox = Outbox::new(&app, app.company_id).await;
    let r = app
        .post(&format!("/api/v1/messages/{m}/delivered"), json!({}))
        .await;
    assert_status!(&r, StatusCode::CONFLICT, "delivered twice");
    assert!(r.text.contains("already delivered"), "{}", r.text);
    outbox.none(&app, "delivered twice").await;

    // An inbound message is recorded (message_sent) but never "delivered".
    let inbound = app
        .create(
            "/api/v1/messages",
            json!({"channel": "sms", "direction": "inbound",
            "from": "+1 555 010 2000", "to": "+1 555 010 1000", "body": "Call me back"}),
        )
        .await;
    let outbox = Outbox::new(&app, app.company_id).await;
    let r = app
        .post(&format!("/api/v1/messages/{inbound}/delivered"), json!({}))
        .await;
    assert_status!(&r, StatusCode::CONFLICT, "inbound delivered");
    outbox.none(&app, "inbound delivered").await;
}
casebridge_testkit::backend_test!(messages_round_trip_and_are_delivered_once);

async fn tasks_complete_and_forms_submit_once(backend: casebridge_testkit::TestBackend) {
    let app = TestApp::start(backend).await;
    let f = fixture(&app).await;
    let r = app
        .post(
            "/api/v1/tasks",
            json!({"case_id": f.case, "kind": "task", "title": " Collect police report "}),
        )
        .await;
    assert_status!(&r, StatusCode::CREATED, "create task");
    assert_eq!(
        (r.body["status"].as_str(), r.body["title"].as_str()),
        (Some("open"), Some("Collect police report"))
    );
    let task = r.body["id"].as_str().unwrap().to_owned();
    assert_eq!(app.get(&format!("/api/v1/tasks/{task}")).await.body, r.body);
    let form = app
        .create("/api/v1/tasks", json!({"kind": "form", "title": "Intake"}))
        .await;

    let outbox = Outbox::new(&app, app.company_id).await;
    for (path, body, expect) in [
        (
            format!("/api/v1/tasks/{task}/submit"),
            json!({"answers": {}}),
            "not a form",
        ),
        (
            format!("/api/v1/tasks/{form}/complete"),
            json!({}),
            "this is a form",
        ),
    ] {
        let r = app.post(&path, body).await;
        assert_status!(&r, StatusCode::CONFLICT, &path);
        assert!(r.text.contains(expect), "{path}: {}", r.text);
    }
    outbox.none(&app, "wrong kind").await;

    let r = app
        .post(&format!("/api/v1/tasks/{task}/complete"), json!({}))
        .await;
    assert_status!(&r, StatusCode::OK, "complete");
    assert_eq!(r.body["status"], "completed");
    assert!(r.body["completed_at"].is_string());
    let r = app
        .post(
            &format!("/api/v1/tasks/{form}/submit"),
            json!({"answers": {"injured": true}}),
        )
        .await;
    assert_status!(&r, StatusCode::OK, "submit");
    assert_eq!(
        (r.body["status"].clone(), r.body["answers"].clone()),
        (json!("submitted"), json!({"injured": true}))
    );

    let outbox = Outbox::new(&app, app.company_id).await;
    let r = app
        .post(&format!("/api/v1/tasks/{task}/complete"), json!({}))
        .await;
    assert_status!(&r, StatusCode::CONFLICT, "complete twice");
    assert!(r.text.contains("already completed"), "{}", r.text);
    let r = app
        .post(
            &format!("/api/v1/tasks/{form}/submit"),
            json!({"answers": {"injured": false}}),
        )
        .await;
    assert_status!(&r, StatusCode::CONFLICT, "submit twice");
    outbox.none(&app, "twice").await;
    assert_eq!(
        app.get(&format!("/api/v1/tasks/{form}")).await.body["answers"],
        json!({"injured": true})
    );
}
casebridge_testkit::backend_test!(tasks_complete_and_forms_submit_once);

async fn rejected_requests_write_no_event_and_no_job(backend: casebridge_testkit::TestBackend) {
    let app = TestApp::start(backend).await;
    let f = fixture(&app).await;
    let call = start_call(&app, &f).await;
    let (_, other_key) = app.new_company("Other Firm").await;
    let foreign_case = {
        let ct = app
            .call_as(
                &other_key,
                Method::POST,
                "/api/v1/case-types",
                Some(json!({"name": "Auto"})),
            )
            .await;
        let ct = ct.body["id"].as_str().unwrap().to_owned();
        let c = app
            .call_as(
                &other_key,
                Method::POST,
                "/api/v1/cases",
                Some(json!({"name": "Theirs", "case_type_id": ct})),
            )
            .await;
        c.body["id"].as_str().unwrap().to_owned()
    };
    let outbox = Outbox::new(&app, app.company_id).await;

    let cases: Vec<(&str, String, Value, StatusCode, Vec<&str>)> = vec![
        (
            "every bad call field",
            "/api/v1/calls".into(),
            json!({"case_id": "x", "campaign_id": "y", "direction": "up", "to_number": "abc", "started_at": "noon"}),
            StatusCode::UNPROCESSABLE_ENTITY,
            vec![
                "case_id",
                "campaign_id",
                "direction",
                "to_number",
                "started_at",
            ],
        ),
        (
            "unknown case and campaign",
            "/api/v1/calls".into(),
            json!({"case_id": NO_SUCH_ID, "campaign_id": NO_SUCH_ID, "direction": "outbound"}),
            StatusCode::UNPROCESSABLE_ENTITY,
            vec!["case_id", "campaign_id"],
        ),
        (
            "another company's case",
            "/api/v1/calls".into(),
            json!({"case_id": foreign_case, "direction": "outbound"}),
            StatusCode::UNPROCESSABLE_ENTITY,
            vec!["case_id"],
        ),
        (
            "unknown field",
            "/api/v1/calls".into(),
            json!({"direction": "outbound", "duration": 3}),
            StatusCode::UNPROCESSABLE_ENTITY,
            vec![],
        ),
        (
            "bad turns",
            format!("/api/v1/calls/{call}/transcript"),
            json!({"turns": [{"speaker": "bot", "text": ""}]}),
            StatusCode::UNPROCESSABLE_ENTITY,
            vec!["turns[0].speaker", "turns[0].text"],
        ),
        (
            "no turns",
            format!("/api/v1/calls/{call}/transcript"),
            json!({"turns": []}),
            StatusCode::UNPROCESSABLE_ENTITY,
            vec!["turns"],
        ),
        (
            "transcript of no call",
            format!("/api/v1/calls/{NO_SUCH_ID}/transcript"),
            json!({"turns": [{"speaker": "agent", "text": "hi"}]}),
            StatusCode::NOT_FOUND,
            vec![],
        ),
        (
            "nested custom value",
            format!("/api/v1/calls/{call}/analysis"),
            json!({"summary": "s", "post_call_result": "r", "custom": {"a": {"b": 1}}}),
            StatusCode::UNPROCESSABLE_ENTITY,
            vec!["custom.a"],
        ),
        (
            "empty summary",
            format!("/api/v1/calls/{call}/analysis"),
            json!({"summary": " ", "post_call_result": "r"}),
            StatusCode::UNPROCESSABLE_ENTITY,
            vec!["summary"],
        ),
        (
            "bad end time",
            format!("/api/v1/calls/{call}/end"),
            json!({"ended_at": "later"}),
            StatusCode::UNPROCESSABLE_ENTITY,
            vec!["ended_at"],
        ),
        (
            "message to the wrong kind of address",
            "/api/v1/messages".into(),
            json!({"channel": "sms", "direction": "outbound", "to": "jane@example.com", "body": ""}),
            StatusCode::UNPROCESSABLE_ENTITY,
            vec!["to", "body"],
        ),
        (
            "message for an unknown campaign",
            "/api/v1/messages".into(),
            json!({"campaign_id": NO_SUCH_ID, "channel": "sms", "direction": "outbound", "to": "555 0100", "body": "x"}),
            StatusCode::UNPROCESSABLE_ENTITY,
            vec!["campaign_id"],
        ),
        (
            "task for an unknown case",
            "/api/v1/tasks".into(),
            json!({"case_id": NO_SUCH_ID, "kind": "task", "title": "x"}),
            StatusCode::UNPROCESSABLE_ENTITY,
            vec!["case_id"],
        ),
        (
            "form answers not an object",
            format!("/api/v1/tasks/{NO_SUCH_ID}/submit"),
            json!({"answers": [1]}),
            StatusCode::UNPROCESSABLE_ENTITY,
            vec!["answers"],
        ),
    ];
    for (what, path, body, status, fields) in cases {
        let r = app.post(&path, body).await;
        assert_status!(&r, status, what);
        if !fields.is_empty() {
            assert_eq!(error_fields(&r.body), fields, "{what}");
        }
        outbox.none(&app, what).await;
    }

    // Malformed JSON and a missing content type.
    let r = TestApp::reply(
        app.http
            .post(app.url("/api/v1/calls"))
            .bearer_auth(&app.api_key)
            .header("content-type", "application/json")
            .body("{\"direction\":")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_status!(&r, StatusCode::BAD_REQUEST, "malformed");
    // A body sent without a JSON content type is refused (an absent body is fine: `end`
    // takes an optional one).
    let r = TestApp::reply(
        app.http
            .post(app.url(&format!("/api/v1/calls/{call}/end")))
            .bearer_auth(&app.api_key)
            .body("{}")
            .header("content-type", "text/plain")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_status!(&r, StatusCode::UNSUPPORTED_MEDIA_TYPE, "not JSON");
    outbox.none(&app, "malformed").await;
    assert_eq!(
        app.get(&format!("/api/v1/calls/{call}")).await.body["status"],
        "in_progress"
    );
}
casebridge_testkit::backend_test!(rejected_requests_write_no_event_and_no_job);

async fn another_company_cannot_see_or_change_activity(backend: casebridge_testkit::TestBackend) {
    let app = TestApp::start(backend).await;
    let f = fixture(&app).await;
    let call = start_call(&app, &f).await;
    let transfer = app
        .create(
            &format!("/api/v1/calls/{call}/transfers"),
            json!({"to_number": "555 0100"}),
        )
        .await;
    let message = app
        .create(
            "/api/v1/messages",
            json!({"channel": "sms", "direction": "outbound",
            "to": "555 0100", "body": "hi"}),
        )
        .await;
    let task = app
        .create("/api/v1/tasks", json!({"kind": "task", "title": "t"}))
        .await;
    let form = app
        .create("/api/v1/tasks", json!({"kind": "form", "title": "f"}))
        .await;
    let before = app.get(&format!("/api/v1/calls/{call}")).await.body;

    let (b, b_key) = app.new_company("Intruder LLP").await;
    let ours = Outbox::new(&app, app.company_id).await;
    let theirs = Outbox::new(&app, b).await;
    let attempts: Vec<(Method, String, Option<Value>)> = vec![
        (Method::GET, format!("/api/v1/calls/{call}"), None),
        (
            Method::POST,
            format!("/api/v1/calls/{call}/transcript"),
            Some(json!({"turns": [{"speaker": "agent", "text": "x"}]})),
        ),
        (
            Method::POST,
            format!("/api/v1/calls/{call}/end"),
            Some(json!({})),
        ),
        (
            Method::POST,
            format!("/api/v1/calls/{call}/analysis"),
            Some(json!({"summary": "s", "post_call_result": "r"})),
        ),
        (
            Method::POST,
            format!("/api/v1/calls/{call}/transfers"),
            Some(json!({"to_number": "555 0100"})),
        ),
        (Method::GET, format!("/api/v1/transfers/{transfer}"), None),
        (
            Method::POST,
            format!("/api/v1/transfers/{transfer}/bridged"),
            None,
        ),
        (
            Method::POST,
            format!("/api/v1/transfers/{transfer}/cancelled"),
            None,
        ),
        (Method::GET, format!("/api/v1/messages/{message}"), None),
        (
            Method::POST,
            format!("/api/v1/messages/{message}/delivered"),
            None,
        ),
        (Method::GET, format!("/api/v1/tasks/{task}"), None),
        (Method::POST, format!("/api/v1/tasks/{task}/complete"), None),
        (
            Method::POST,
            format!("/api/v1/tasks/{form}/submit"),
            Some(json!({"answers": {}})),
        ),
    ];
    for (method, path, body) in attempts {
        let r = app.call_as(&b_key, method.clone(), &path, body).await;
        assert_status!(&r, StatusCode::NOT_FOUND, &format!("{method} {path}"));
        assert_eq!(error_code(&r.body), "not_found");
    }
    let r = app
        .call_as(
            &b_key,
            Method::POST,
            "/api/v1/calls",
            Some(json!({"direction": "outbound", "case_id": f.case, "campaign_id": f.campaign})),
        )
        .await;
    assert_status!(
        &r,
        StatusCode::UNPROCESSABLE_ENTITY,
        "their call on our case"
    );
    assert_eq!(error_fields(&r.body), ["case_id", "campaign_id"]);

    ours.none(&app, "intruder").await;
    theirs.none(&app, "intruder").await;
    assert_eq!(app.get(&format!("/api/v1/calls/{call}")).await.body, before);
    assert_eq!(
        app.get(&format!("/api/v1/transfers/{transfer}")).await.body["status"],
        "started"
    );
    assert_eq!(
        app.get(&format!("/api/v1/messages/{message}")).await.body["status"],
        "sent"
    );
    assert_eq!(
        app.get(&format!("/api/v1/tasks/{task}")).await.body["status"],
        "open"
    );
}
casebridge_testkit::backend_test!(another_company_cannot_see_or_change_activity);

async fn concurrent_changes_to_one_call_lose_nothing_and_end_once(
    backend: casebridge_testkit::TestBackend,
) {
    let app = TestApp::start(backend).await;
    let call = app
        .create("/api/v1/calls", json!({"direction": "outbound"}))
        .await;
    let outbox = Outbox::new(&app, app.company_id).await;

    let turns = (0..8)
        .map(|i| json!({"turns": [{"speaker": "agent", "text": format!("line {i}")}]}))
        .collect();
    let statuses =
        post_concurrently(&app, &format!("/api/v1/calls/{call}/transcript"), turns).await;
    assert!(
        statuses.iter().all(|s| *s == StatusCode::OK),
        "{statuses:?}"
    );
    let ends = vec![json!({}); 4];
    let mut statuses = post_concurrently(&app, &format!("/api/v1/calls/{call}/end"), ends).await;
    statuses.sort();
    assert_eq!(
        statuses,
        [
            StatusCode::OK,
            StatusCode::CONFLICT,
            StatusCode::CONFLICT,
            StatusCode::CONFLICT
        ]
    );

    let got = app.get(&format!("/api/v1/calls/{call}")).await.body;
    let mut lines: Vec<&str> = got["transcript"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["text"].as_str().unwrap())
        .collect();
    lines.sort();
    assert_eq!(
        lines,
        (0..8).map(|i| format!("line {i}")).collect::<Vec<_>>()
    );
    let (events, _) = outbox_of(&app, app.company_id, outbox.probe).await;
    let new: Vec<EventType> = events[outbox.events..]
        .iter()
        .map(|e| e.event_type)
        .collect();
    assert_eq!(
        new.iter()
            .filter(|t| **t == EventType::TranscriptUpdated)
            .count(),
        8
    );
    assert_eq!(
        new.iter().filter(|t| **t == EventType::CallEnded).count(),
        1
    );
    // Each transcript_updated saw the transcript as it was after its own turns.
    let mut lengths: Vec<u64> = events[outbox.events..]
        .iter()
        .filter(|e| e.event_type == EventType::TranscriptUpdated)
        .map(|e| e.data["transcript_length"].as_u64().unwrap())
        .collect();
    lengths.sort();
    assert_eq!(lengths, (1..=8).collect::<Vec<u64>>());
}
casebridge_testkit::backend_test!(concurrent_changes_to_one_call_lose_nothing_and_end_once);

async fn stored_envelope_is_the_documented_one(backend: casebridge_testkit::TestBackend) {
    let app = TestApp::start(backend).await;
    let f = fixture(&app).await;
    let mut outbox = Outbox::new(&app, app.company_id).await;
    let r = app
        .post(
            "/api/v1/calls",
            json!({"case_id": f.case, "direction": "outbound"}),
        )
        .await;
    let event = outbox
        .one(&app, EventType::CallStarted, None, Some(&f.case_type))
        .await;

    let mut conn = app.db.store.conn().await.unwrap();
    let raw = events::payload(&mut conn, app.company_id, event.id)
        .await
        .unwrap();
    let envelope: Value = serde_json::from_str(&raw).unwrap();
    let keys: BTreeSet<&str> = envelope
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(
        keys,
        BTreeSet::from(["id", "type", "created_at", "company_id", "data"])
    );
    assert_eq!(envelope["id"], event.id.to_string());
    assert!(envelope["id"].as_str().unwrap().parse::<EventId>().is_ok());
    assert_eq!(envelope["type"], "call_started");
    assert_eq!(envelope["company_id"], app.company_id.to_string());
    assert!(envelope["created_at"]
        .as_str()
        .unwrap()
        .parse::<jiff::Timestamp>()
        .is_ok());
    assert_eq!(envelope["data"], json!({"call": r.body}));

    // Another company cannot read it.
    let (b, _) = app.new_company("Other").await;
    assert!(events::payload(&mut conn, b, event.id).await.is_err());
}
casebridge_testkit::backend_test!(stored_envelope_is_the_documented_one);

/// Issue 11: event-creating requests are group-committed. Concurrent requests share one
/// transaction, each in its own savepoint: here one batch for certain (a unit of the test holds
/// the committer until all are queued), in which requests that fail (a call that does not exist,
/// a second end of the same call) roll back alone and the others commit, each with its event
/// and delivery job, each answered after the commit.
async fn a_failing_request_in_a_group_commit_fails_alone(backend: casebridge_testkit::TestBackend) {
    // `Batched` on both backends (PostgreSQL's default is a transaction per request).
    let app = TestApp::start_with(
        backend,
        casebridge_testkit::TestOptions {
            group_commit: Some(casebridge_store::GroupCommit::Batched),
            ..Default::default()
        },
    )
    .await;
    let f = fixture(&app).await;
    let ended = start_call(&app, &f).await;
    let talking = start_call(&app, &f).await;
    let outbox = Outbox::new(&app, app.company_id).await;
    let store = app.db.store.clone();
    let held = casebridge_testkit::CommitterHeld::hold(&store).await;
    let before = store.group_stats();

    // (what, path, body)
    let mut sends: Vec<(String, String, Value)> = (0..6)
        .map(|i| {
            let body = json!({"direction": "outbound", "to_number": format!("+1555010{i:04}")});
            (format!("new call {i}"), "/api/v1/calls".to_owned(), body)
        })
        .collect();
    for n in 0..2 {
        let path = format!("/api/v1/calls/{ended}/end");
        sends.push((format!("end {n}"), path, json!({"end_reason": "hangup"})));
    }
    let path = format!("/api/v1/calls/{NO_SUCH_ID}/end");
    sends.push(("unknown".into(), path, json!({"end_reason": "hangup"})));
    let path = format!("/api/v1/calls/{talking}/transcript");
    let turns = json!({"turns": [{"speaker": "agent", "text": "Hello, this is Acme Injury Law."}]});
    sends.push(("transcript".into(), path, turns));
    let n = sends.len() as u64;
    let replies = tokio::spawn({
        let (base, http, key) = (app.url(""), app.http.clone(), app.api_key.clone());
        async move {
            let all = sends.into_iter().map(|(what, path, body)| {
                let r = http
                    .post(format!("{base}{path}"))
                    .bearer_auth(&key)
                    .json(&body);
                async move { (what, TestApp::reply(r.send().await.unwrap()).await) }
            });
            futures::future::join_all(all).await
        }
    });
    casebridge_testkit::CommitterHeld::wait_queued(&store, before.submitted + n).await;
    // Nothing is answered before its commit.
    outbox.none(&app, "held batch").await;
    assert!(!replies.is_finished(), "answered before the commit");
    held.release().await;
    let replies = replies.await.unwrap();
    let stats = store.group_stats();
    assert!(
        stats.max_batch >= n,
        "the {n} requests shared one transaction: {stats:?}"
    );

    let status_of = |what: &str| {
        let (_, r) = replies.iter().find(|(w, _)| w == what).unwrap();
        r.status
    };
    for i in 0..6 {
        assert_eq!(status_of(&format!("new call {i}")), StatusCode::CREATED);
    }
    // One end wins; the other saw it (later units see earlier ones) and is refused alone.
    let mut ends = [status_of("end 0"), status_of("end 1")];
    ends.sort();
    assert_eq!(ends, [StatusCode::OK, StatusCode::CONFLICT]);
    let (_, unknown) = replies.iter().find(|(w, _)| w == "unknown").unwrap();
    assert_eq!(unknown.status, StatusCode::NOT_FOUND, "{}", unknown.text);
    assert_eq!(error_code(&unknown.body), "not_found");
    assert_eq!(status_of("transcript"), StatusCode::OK);

    // Exactly the committed changes wrote events, each with its delivery job.
    let (events, jobs) = outbox_of(&app, app.company_id, outbox.probe).await;
    let new: Vec<_> = events[outbox.events..]
        .iter()
        .map(|e| e.event_type)
        .collect();
    let count = |t: EventType| new.iter().filter(|e| **e == t).count();
    assert_eq!(count(EventType::CallStarted), 6, "{new:?}");
    assert_eq!(count(EventType::CallEnded), 1, "{new:?}");
    assert_eq!(count(EventType::TranscriptUpdated), 1, "{new:?}");
    assert_eq!(new.len(), 8, "{new:?}");
    assert_eq!(jobs.len() - outbox.jobs, 8);
    for (what, r) in &replies {
        if r.status == StatusCode::CREATED {
            let id = r.body["id"].as_str().unwrap();
            let got = app.get(&format!("/api/v1/calls/{id}")).await;
            assert_eq!(got.status, StatusCode::OK, "{what}: {}", got.text);
        }
    }
    let call = app.get(&format!("/api/v1/calls/{ended}")).await;
    assert_eq!(call.body["status"], "ended", "{}", call.text);
}
casebridge_testkit::backend_test!(a_failing_request_in_a_group_commit_fails_alone);
