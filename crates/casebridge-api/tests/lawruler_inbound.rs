//! Law Ruler's inbound webhook (LR2–LR7) on both backends: body formats, field-name styles,
//! required fields, idempotency, lists, auto-add rules, campaigns, toggles and tenant isolation.

use casebridge_testkit::TestApp;
use reqwest::StatusCode;
use serde_json::{json, Value};

const LABELS: [(&str, &str); 12] = [
    ("Lead ID", "1001"),
    ("Case Type ID", "12"),
    ("Case Type", "Auto Accident"),
    ("Status ID", "7"),
    ("Status", "Intake"),
    ("Full Name", "Jane Doe"),
    ("Created Date", "2026-11-01"),
    ("Primary Contact ID", "PC-9"),
    ("First Name", "Jane"),
    ("Last Name", "Doe"),
    ("Email", "jane@example.com"),
    ("Cell Phone", "+1 555 010 2000"),
];

fn lead(changes: &[(&str, &str)]) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = LABELS
        .iter()
        .map(|(k, v)| ((*k).into(), (*v).into()))
        .collect();
    for (k, v) in changes {
        match out.iter_mut().find(|(ek, _)| ek == k) {
            Some(slot) => slot.1 = (*v).into(),
            None => out.push(((*k).into(), (*v).into())),
        }
    }
    out
}

fn compact(fields: &[(String, String)]) -> Vec<(String, String)> {
    fields
        .iter()
        .map(|(k, v)| (k.replace(' ', ""), v.clone()))
        .collect()
}

async fn connected(app: &TestApp) -> String {
    app.lawruler_connected_offline(app.company_id, &app.api_key)
        .await
}

enum Format {
    Json,
    Form,
    Multipart,
}

#[must_use]
async fn send(
    app: &TestApp,
    path: &str,
    format: Format,
    fields: &[(String, String)],
) -> casebridge_testkit::Reply {
    let req = app.http.post(app.url(path));
    let req = match format {
        Format::Json => req.json(
            &fields
                .iter()
                .map(|(k, v)| (k.clone(), Value::String(v.clone())))
                .collect::<serde_json::Map<_, _>>(),
        ),
        Format::Form => req.form(fields),
        Format::Multipart => {
            let mut form = reqwest::multipart::Form::new();
            for (k, v) in fields {
                form = form.text(k.clone(), v.clone());
            }
            req.multipart(form)
        }
    };
    TestApp::reply(req.send().await.unwrap()).await
}

/// The records a list route returns; the listing itself must succeed, so "nothing stored" is
/// never a failed request read as an empty list.
async fn listed(app: &TestApp, path: &str) -> Vec<Value> {
    let r = app.get(path).await.expect(StatusCode::OK);
    r.body["data"]
        .as_array()
        .unwrap_or_else(|| panic!("GET {path}: no data array: {}", r.text))
        .clone()
}

async fn count(app: &TestApp, path: &str) -> usize {
    listed(app, path).await.len()
}

async fn sync_errors(app: &TestApp) -> Vec<Value> {
    listed(app, "/api/v1/integrations/lawruler/sync-log?outcome=error").await
}

/// Changes Law Ruler settings and checks they were saved as asked.
async fn settings(app: &TestApp, change: Value) -> Value {
    let r = app
        .call(
            reqwest::Method::PUT,
            "/api/v1/integrations/lawruler/settings",
            Some(change.clone()),
        )
        .await
        .expect(StatusCode::OK);
    let view = app
        .get("/api/v1/integrations/lawruler")
        .await
        .expect(StatusCode::OK);
    for (name, value) in change.as_object().expect("settings object") {
        assert_eq!(&view.body["settings"][name], value, "{name}: {}", view.text);
    }
    r.body
}

async fn json_form_and_multipart_bodies_with_any_name_style(
    backend: casebridge_testkit::TestBackend,
) {
    let app = TestApp::start(backend).await;
    let hook = connected(&app).await;
    let r = send(&app, &hook, Format::Json, &lead(&[])).await;
    assert_eq!(
        (r.status, r.body["status"].as_str()),
        (StatusCode::OK, Some("applied")),
        "{}",
        r.text
    );
    assert_eq!(r.body["case_created"], true);
    let case_id = r.body["case_id"].as_str().unwrap().to_owned();

    let case = app
        .get("/api/v1/cases/by-external-ref?provider=lawruler&external_id=1001")
        .await
        .body;
    assert_eq!(case["id"], case_id.as_str());
    assert_eq!(case["name"], "Jane Doe");
    let client = app
        .get("/api/v1/clients/by-external-ref?provider=lawruler&external_id=PC-9")
        .await
        .body;
    assert_eq!(
        (client["first_name"].as_str(), client["phone"].as_str()),
        (Some("Jane"), Some("+1 555 010 2000"))
    );
    assert_eq!(case["client_id"], client["id"]);
    // The Law Ruler case type and status were mapped to platform records of the same name.
    let ct = app
        .get(&format!(
            "/api/v1/case-types/{}",
            case["case_type_id"].as_str().unwrap()
        ))
        .await
        .body;
    assert_eq!(ct["name"], "Auto Accident");

    // The same lead, compact names, as a form, with a new status: updated, not duplicated.
    let r = send(
        &app,
        &hook,
        Format::Form,
        &compact(&lead(&[("Status ID", "8"), ("Status", "Signed")])),
    )
    .await;
    assert_eq!(
        (r.status, r.body["case_created"].as_bool()),
        (StatusCode::OK, Some(false)),
        "{}",
        r.text
    );
    assert_eq!(r.body["case_id"], case_id.as_str());
    // Snake case, multipart, another lead of the same contact.
    let snake: Vec<(String, String)> = lead(&[("Lead ID", "1002")])
        .into_iter()
        .map(|(k, v)| (k.to_lowercase().replace(' ', "_"), v))
        .collect();
    let r = send(&app, &hook, Format::Multipart, &snake).await;
    assert_eq!(
        (r.status, r.body["case_created"].as_bool()),
        (StatusCode::OK, Some(true)),
        "{}",
        r.text
    );
    assert_eq!(count(&app, "/api/v1/cases").await, 2);
    assert_eq!(
        count(&app, "/api/v1/clients").await,
        1,
        "the contact is matched by Primary Contact ID"
    );
    let status = app
        .get("/api/v1/cases/by-external-ref?provider=lawruler&external_id=1001")
        .await
        .body["case_status_id"]
        .clone();
    let status = app
        .get(&format!(
            "/api/v1/case-statuses/{}",
            status.as_str().unwrap()
        ))
        .await
        .body;
    assert_eq!(status["name"], "Signed");

    // A repeated delivery is a no-op...
    let r = send(&app, &hook, Format::Json, &lead(&[("Lead ID", "1002")])).await;
    assert_eq!(r.body["status"], "duplicate", "{}", r.text);
    // ...but a lead that changes and changes back is applied each time.
    let first = lead(&[]);
    let r = send(&app, &hook, Format::Json, &first).await;
    assert_eq!(r.body["status"], "applied", "{}", r.text);
    let c = app
        .get("/api/v1/cases/by-external-ref?provider=lawruler&external_id=1001")
        .await
        .body;
    let name = app
        .get(&format!(
            "/api/v1/case-statuses/{}",
            c["case_status_id"].as_str().unwrap()
        ))
        .await
        .body["name"]
        .clone();
    assert_eq!(name, "Intake");

    let health = app.get("/api/v1/integrations/lawruler").await.body;
    assert_eq!(health["checklist"]["first_webhook_received"], true);
    assert!(health["health"]["last_integration_sync_at"].is_string());
}
casebridge_testkit::backend_test!(json_form_and_multipart_bodies_with_any_name_style);

async fn each_missing_required_field_is_named_and_nothing_is_stored(
    backend: casebridge_testkit::TestBackend,
) {
    let app = TestApp::start(backend).await;
    let hook = connected(&app).await;
    for (label, _) in LABELS.iter().take(10) {
        let fields: Vec<(String, String)> =
            lead(&[]).into_iter().filter(|(k, _)| k != label).collect();
        let r = send(&app, &hook, Format::Json, &fields).await;
        assert_eq!(
            r.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{label}: {}",
            r.text
        );
        assert!(
            r.body["error"]["message"].as_str().unwrap().contains(label),
            "{label}: {}",
            r.text
        );
    }
    assert_eq!(count(&app, "/api/v1/cases").await, 0);
    assert_eq!(count(&app, "/api/v1/clients").await, 0);
    assert_eq!(count(&app, "/api/v1/case-types").await, 0);
    let errors = sync_errors(&app).await;
    assert_eq!(errors.len(), 10);
    assert_eq!(errors[0]["error_kind"], "validation");
    assert!(errors.iter().any(|e| e["message"]
        .as_str()
        .unwrap()
        .contains("Primary Contact ID")));
}
casebridge_testkit::backend_test!(each_missing_required_field_is_named_and_nothing_is_stored);

async fn lists_by_id_and_name_from_url_and_body(backend: casebridge_testkit::TestBackend) {
    let app = TestApp::start(backend).await;
    let hook = connected(&app).await;
    let intake = app.create("/api/v1/lists", json!({"name": "Intake"})).await;
    let hot = app.create("/api/v1/lists", json!({"name": "Hot"})).await;
    let members = |list: String| {
        let app = &app;
        async move { count(app, &format!("/api/v1/lists/{list}/cases")).await }
    };

    // add by id in the URL
    let r = send(
        &app,
        &format!("{hook}?list_id={intake}"),
        Format::Json,
        &lead(&[]),
    )
    .await;
    assert_eq!(r.body["lists_added"], json!([intake]), "{}", r.text);
    // attach by name in the body (Params tab)
    let r = send(
        &app,
        &hook,
        Format::Form,
        &lead(&[
            ("list_name", "Hot"),
            ("list_action", "attach"),
            ("Status", "Hot lead"),
        ]),
    )
    .await;
    assert_eq!(r.body["lists_added"], json!([hot]), "{}", r.text);
    assert_eq!(
        (members(intake.clone()).await, members(hot.clone()).await),
        (1, 1)
    );
    // detach by name in the URL
    let r = send(
        &app,
        &format!("{hook}?list_name=Hot&list_action=detach"),
        Format::Json,
        &lead(&[("Status", "Cold")]),
    )
    .await;
    assert_eq!(r.body["lists_removed"], json!([hot]), "{}", r.text);
    // remove_from_list=true in the body
    let r = send(
        &app,
        &hook,
        Format::Json,
        &lead(&[
            ("list_id", &intake),
            ("remove_from_list", "true"),
            ("Status", "Closed"),
        ]),
    )
    .await;
    assert_eq!(r.body["lists_removed"], json!([intake]), "{}", r.text);
    assert_eq!(
        (members(intake.clone()).await, members(hot.clone()).await),
        (0, 0)
    );

    // A list that does not exist: 422, and the webhook changes nothing at all.
    let r = send(
        &app,
        &format!("{hook}?list_name=Nope"),
        Format::Json,
        &lead(&[("Lead ID", "2000")]),
    )
    .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.text);
    let r = app
        .get("/api/v1/cases/by-external-ref?provider=lawruler&external_id=2000")
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    let r = send(
        &app,
        &format!("{hook}?list_action=explode&list_id={intake}"),
        Format::Json,
        &lead(&[]),
    )
    .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
}
casebridge_testkit::backend_test!(lists_by_id_and_name_from_url_and_body);

async fn auto_add_rules_and_campaigns(backend: casebridge_testkit::TestBackend) {
    let app = TestApp::start(backend).await;
    let hook = connected(&app).await;
    let autos = app
        .create("/api/v1/lists", json!({"name": "Auto intake"}))
        .await;
    let signed = app.create("/api/v1/lists", json!({"name": "Signed"})).await;
    let r = app
        .post(
            &format!("/api/v1/lists/{autos}/auto-add-rules"),
            json!({"case_type": "auto accident", "status": "7"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    app.post(
        &format!("/api/v1/lists/{signed}/auto-add-rules"),
        json!({"status": "Signed"}),
    )
    .await
    .expect(StatusCode::CREATED);
    let r = app
        .post(&format!("/api/v1/lists/{signed}/auto-add-rules"), json!({}))
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(
        app.get(&format!("/api/v1/lists/{autos}/auto-add-rules"))
            .await
            .body
            .as_array()
            .unwrap()
            .len(),
        1
    );

    let campaign = app
        .create("/api/v1/campaigns", json!({"name": "MVA fall push"}))
        .await;
    let r = send(
        &app,
        &format!("{hook}?campaign_id={campaign}"),
        Format::Json,
        &lead(&[]),
    )
    .await;
    assert_eq!(r.body["lists_added"], json!([autos]), "{}", r.text);
    let case = app
        .get("/api/v1/cases/by-external-ref?provider=lawruler&external_id=1001")
        .await
        .body;
    assert_eq!(case["campaign_id"], campaign.as_str());

    let r = send(
        &app,
        &hook,
        Format::Json,
        &lead(&[("Status ID", "9"), ("Status", "Signed")]),
    )
    .await;
    assert_eq!(r.body["lists_added"], json!([signed]), "{}", r.text);
    let r = send(
        &app,
        &format!("{hook}?campaign_id=01a1feab-0000-7000-8000-000000000000"),
        Format::Json,
        &lead(&[("Lead ID", "3")]),
    )
    .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
}
casebridge_testkit::backend_test!(auto_add_rules_and_campaigns);

async fn toggles_off_means_ignored_and_nothing_changes(backend: casebridge_testkit::TestBackend) {
    let app = TestApp::start(backend).await;
    let hook = connected(&app).await;
    settings(&app, json!({"receive": false})).await;
    let r = send(&app, &hook, Format::Json, &lead(&[])).await;
    assert_eq!(
        (r.status, r.body["status"].as_str()),
        (StatusCode::OK, Some("ignored"))
    );
    assert!(r.body["reason"].as_str().unwrap().contains("receiving"));
    settings(&app, json!({"receive": true, "enable_integration": false})).await;
    let r = send(&app, &hook, Format::Json, &lead(&[])).await;
    assert_eq!(
        (r.status, r.body["status"].as_str()),
        (StatusCode::OK, Some("ignored")),
        "{}",
        r.text
    );
    assert!(
        r.body["reason"]
            .as_str()
            .unwrap()
            .contains("Enable Integration"),
        "{}",
        r.text
    );
    assert_eq!(count(&app, "/api/v1/cases").await, 0);
    assert_eq!(
        count(
            &app,
            "/api/v1/integrations/lawruler/sync-log?outcome=skipped"
        )
        .await,
        2
    );

    // One way out: nothing is received, whatever the toggles say, and the reason says so.
    settings(
        &app,
        json!({"enable_integration": true, "receive": true, "direction": "one_way_out"}),
    )
    .await;
    let r = send(&app, &hook, Format::Json, &lead(&[])).await;
    assert_eq!(
        (r.status, r.body["status"].as_str()),
        (StatusCode::OK, Some("ignored")),
        "{}",
        r.text
    );
    assert!(
        r.body["reason"].as_str().unwrap().contains("one way out"),
        "{}",
        r.text
    );
    assert_eq!(count(&app, "/api/v1/cases").await, 0);
    settings(&app, json!({"direction": "both"})).await;

    // Disconnecting keeps settings but stops receiving.
    settings(&app, json!({"enable_integration": true})).await;
    let r = app
        .call(
            reqwest::Method::DELETE,
            "/api/v1/integrations/lawruler/connection",
            None,
        )
        .await;
    assert_eq!(r.body["status"], "not_connected");
    let view = app
        .get("/api/v1/integrations/lawruler")
        .await
        .expect(StatusCode::OK)
        .body;
    assert_eq!(
        (
            &view["settings"]["enable_integration"],
            &view["settings"]["receive"]
        ),
        (&json!(true), &json!(true)),
        "{view}"
    );
    let r = send(&app, &hook, Format::Json, &lead(&[])).await;
    assert_eq!(
        (r.status, r.body["status"].as_str()),
        (StatusCode::OK, Some("ignored")),
        "{}",
        r.text
    );
    assert_eq!(count(&app, "/api/v1/cases").await, 0);
    // Enabling needs a connection (safe order).
    settings(&app, json!({"enable_integration": false})).await;
    let r = app
        .call(
            reqwest::Method::PUT,
            "/api/v1/integrations/lawruler/settings",
            Some(json!({"enable_integration": true})),
        )
        .await;
    assert_eq!(r.status, StatusCode::CONFLICT);
    let view = app
        .get("/api/v1/integrations/lawruler")
        .await
        .expect(StatusCode::OK)
        .body;
    assert_eq!(
        view["settings"]["enable_integration"], false,
        "a refused change changes nothing: {view}"
    );
}
casebridge_testkit::backend_test!(toggles_off_means_ignored_and_nothing_changes);

async fn concurrent_first_webhooks_share_the_new_case_type_and_status(
    backend: casebridge_testkit::TestBackend,
) {
    // The first webhooks of a firm often come in a burst, all naming a case type and status
    // not seen before. Each round names new ones; every webhook must be applied.
    let app = TestApp::start(backend).await;
    let hook = connected(&app).await;
    for round in 0..4 {
        let sends = (0..16).map(|i| {
            let fields = lead(&[
                ("Lead ID", &format!("L{round}-{i}")),
                ("Primary Contact ID", &format!("PC-{round}-{i}")),
                ("Case Type ID", &format!("CT{round}")),
                ("Case Type", &format!("Type {round}")),
                ("Status ID", &format!("S{round}")),
                ("Status", &format!("Status {round}")),
            ]);
            let (app, hook) = (&app, hook.clone());
            async move { send(app, &hook, Format::Json, &fields).await }
        });
        for r in futures::future::join_all(sends).await {
            assert_eq!(r.status, StatusCode::OK, "round {round}: {}", r.text);
        }
    }
    assert_eq!(count(&app, "/api/v1/cases?limit=200").await, 64);
    assert_eq!(count(&app, "/api/v1/case-types").await, 4);
    assert_eq!(count(&app, "/api/v1/case-statuses").await, 4);
}
casebridge_testkit::backend_test!(concurrent_first_webhooks_share_the_new_case_type_and_status);

async fn wrong_or_foreign_tokens_touch_nothing(backend: casebridge_testkit::TestBackend) {
    let app = TestApp::start(backend).await;
    let hook = connected(&app).await;
    let r = send(
        &app,
        "/hooks/lawruler/not-a-token",
        Format::Json,
        &lead(&[]),
    )
    .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert_eq!(count(&app, "/api/v1/cases").await, 0);

    // Company B, connected too: the same lead sent to each URL lands in each company only.
    let (b_id, b_key) = app.new_company("Firm B").await;
    let b_view = app
        .call_as(
            &b_key,
            reqwest::Method::GET,
            "/api/v1/integrations/lawruler",
            None,
        )
        .await
        .body;
    let b_hook = b_view["webhook_url"]
        .as_str()
        .unwrap()
        .split_once("/hooks/")
        .map(|(_, r)| format!("/hooks/{r}"))
        .unwrap();
    assert_ne!(b_hook, hook);
    assert_eq!(app.lawruler_connected_offline(b_id, &b_key).await, b_hook);
    let r = send(
        &app,
        &b_hook,
        Format::Json,
        &lead(&[("Full Name", "B's Jane")]),
    )
    .await;
    assert_eq!(r.body["status"], "applied", "{}", r.text);
    assert_eq!(count(&app, "/api/v1/cases").await, 0, "nothing reached A");
    let r = send(&app, &hook, Format::Json, &lead(&[])).await;
    assert_eq!(r.body["status"], "applied", "{}", r.text);
    assert_eq!(count(&app, "/api/v1/cases").await, 1);
    let a_case = app
        .get("/api/v1/cases/by-external-ref?provider=lawruler&external_id=1001")
        .await
        .body;
    let b_case = app
        .call_as(
            &b_key,
            reqwest::Method::GET,
            "/api/v1/cases/by-external-ref?provider=lawruler&external_id=1001",
            None,
        )
        .await
        .body;
    assert_eq!(
        (a_case["name"].as_str(), b_case["name"].as_str()),
        (Some("Jane Doe"), Some("B's Jane"))
    );
    assert_ne!(a_case["id"], b_case["id"]);
    // Each company's sync log has only its own webhook.
    let b_log = app
        .call_as(
            &b_key,
            reqwest::Method::GET,
            "/api/v1/integrations/lawruler/sync-log?outcome=ok",
            None,
        )
        .await
        .body;
    assert_eq!(b_log["data"].as_array().unwrap().len(), 1);
}
casebridge_testkit::backend_test!(wrong_or_foreign_tokens_touch_nothing);

async fn a_rotated_webhook_url_keeps_the_old_one_working_for_the_grace_period(
    backend: casebridge_testkit::TestBackend,
) {
    let app = TestApp::start(backend).await;
    let old = connected(&app).await;
    let (b_id, b_key) = app.new_company("Firm B").await;
    let b_hook = app.lawruler_connected_offline(b_id, &b_key).await;

    let r = app
        .post(
            "/api/v1/integrations/lawruler/webhook-token/rotate",
            json!({}),
        )
        .await
        .expect(StatusCode::OK);
    let new = r.body["webhook_url"]
        .as_str()
        .unwrap()
        .split_once("/hooks/")
        .map(|(_, t)| format!("/hooks/{t}"))
        .unwrap();
    assert_ne!(new, old);
    let expires: jiff::Timestamp = r.body["previous_url_expires_at"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    let now = casebridge_domain::clock::Clock::now(&app.clock);
    assert_eq!(
        expires.duration_since(now),
        jiff::SignedDuration::from_hours(24),
        "{}",
        r.text
    );
    let view = app
        .get("/api/v1/integrations/lawruler")
        .await
        .expect(StatusCode::OK)
        .body;
    assert!(
        view["webhook_url"].as_str().unwrap().ends_with(&new),
        "the setup view shows the new URL: {view}"
    );
    assert!(
        !app.get("/api/v1/integrations/lawruler/sync-log")
            .await
            .text
            .contains(old.trim_start_matches("/hooks/lawruler/")),
        "the sync log never shows a token"
    );

    // The new URL works, and so does the old one during the grace period, for A only.
    let r = send(&app, &new, Format::Json, &lead(&[])).await;
    assert_eq!(
        (r.status, r.body["status"].as_str()),
        (StatusCode::OK, Some("applied")),
        "{}",
        r.text
    );
    app.advance(std::time::Duration::from_secs(23 * 3600));
    let r = send(&app, &old, Format::Json, &lead(&[("Lead ID", "1002")])).await;
    assert_eq!(
        (r.status, r.body["status"].as_str()),
        (StatusCode::OK, Some("applied")),
        "{}",
        r.text
    );
    assert_eq!(count(&app, "/api/v1/cases").await, 2);
    let b_cases = app
        .call_as(&b_key, reqwest::Method::GET, "/api/v1/cases", None)
        .await
        .body;
    assert_eq!(b_cases["data"], json!([]), "nothing reached B");
    // B's URL is untouched by A's rotation.
    let r = send(&app, &b_hook, Format::Json, &lead(&[("Lead ID", "2001")])).await;
    assert_eq!(r.body["status"], "applied", "{}", r.text);

    // After the grace period the old URL is like an unknown one; the new one still works.
    app.advance(std::time::Duration::from_secs(3600));
    let r = send(&app, &old, Format::Json, &lead(&[("Lead ID", "1003")])).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND, "{}", r.text);
    assert_eq!(r.body["error"]["code"], "not_found", "{}", r.text);
    assert_eq!(count(&app, "/api/v1/cases").await, 2, "nothing stored");
    let r = send(&app, &new, Format::Json, &lead(&[("Lead ID", "1004")])).await;
    assert_eq!(r.body["status"], "applied", "{}", r.text);

    // B cannot rotate A's URL (it rotates its own); A's new URL keeps working.
    let r = app
        .call_as(
            &b_key,
            reqwest::Method::POST,
            "/api/v1/integrations/lawruler/webhook-token/rotate",
            Some(json!({"grace_hours": 0})),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let r = send(&app, &b_hook, Format::Json, &lead(&[("Lead ID", "2002")])).await;
    assert_eq!(
        r.status,
        StatusCode::NOT_FOUND,
        "no grace asked: B's old URL ends at once"
    );
    let r = send(&app, &new, Format::Json, &lead(&[("Lead ID", "1005")])).await;
    assert_eq!(r.body["status"], "applied", "{}", r.text);

    // Rotating again with no body; a grace out of range is a 422 and changes nothing.
    let r = app
        .post(
            "/api/v1/integrations/lawruler/webhook-token/rotate",
            json!({"grace_hours": 721}),
        )
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.text);
    assert_eq!(
        r.body["error"]["details"][0]["field"], "grace_hours",
        "{}",
        r.text
    );
    let view = app.get("/api/v1/integrations/lawruler").await.body;
    assert!(
        view["webhook_url"].as_str().unwrap().ends_with(&new),
        "{view}"
    );
    let r = app
        .http
        .post(app.url("/api/v1/integrations/lawruler/webhook-token/rotate"))
        .bearer_auth(&app.api_key)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let r = send(&app, &new, Format::Json, &lead(&[("Lead ID", "1006")])).await;
    assert_eq!(
        r.body["status"], "applied",
        "the previous URL is in its grace period: {}",
        r.text
    );
    let r = app
        .post(
            "/api/v1/integrations/nosuchcrm/webhook-token/rotate",
            json!({}),
        )
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
}
casebridge_testkit::backend_test!(
    a_rotated_webhook_url_keeps_the_old_one_working_for_the_grace_period
);

async fn concurrent_settings_changes_are_all_kept(backend: casebridge_testkit::TestBackend) {
    let app = TestApp::start(backend).await;
    connected(&app).await;
    let toggles = [
        "send",
        "send_mapped_fields",
        "send_messages",
        "send_call_records",
        "send_documents",
    ];
    let puts = toggles.iter().map(|t| {
        app.call(
            reqwest::Method::PUT,
            "/api/v1/integrations/lawruler/settings",
            Some(json!({ *t: true })),
        )
    });
    for r in futures::future::join_all(puts).await {
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    }
    let settings = app.get("/api/v1/integrations/lawruler").await.body["settings"].clone();
    for t in toggles {
        assert_eq!(settings[t], true, "{t} was lost: {settings}");
    }
}
casebridge_testkit::backend_test!(concurrent_settings_changes_are_all_kept);

async fn settings_report_inert_toggles_and_guard_status_sync(
    backend: casebridge_testkit::TestBackend,
) {
    let app = TestApp::start(backend).await;
    connected(&app).await;
    let r = app
        .call(
            reqwest::Method::PUT,
            "/api/v1/integrations/lawruler/settings",
            Some(json!({"send_messages": true})),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(
        r.body["inert_settings"],
        json!(["send_messages"]),
        "send data is off"
    );
    // The eight toggles, the direction (both ways unless set), the frequency (real time) and
    // the conflict rule (most recent unless set).
    assert_eq!(r.body["settings"].as_object().unwrap().len(), 11);
    assert_eq!(r.body["settings"]["direction"], "both");
    assert_eq!(r.body["settings"]["frequency"], "real_time");
    assert_eq!(r.body["settings"]["conflict_resolution"], "most_recent");
    // The toggles come as a list, in the safe order of the setup guide (LR7).
    let toggles = r.body["toggles"].as_array().unwrap();
    let order: Vec<&str> = toggles.iter().map(|t| t["key"].as_str().unwrap()).collect();
    assert_eq!(
        order,
        [
            "enable_integration",
            "receive",
            "send",
            "send_mapped_fields",
            "send_messages",
            "send_call_records",
            "send_documents",
            "sync_statuses"
        ]
    );
    assert_eq!(toggles[0]["label"], "Enable Integration");
    let messages = &toggles[4];
    assert_eq!(
        (messages["on"].clone(), messages["inert"].clone()),
        (json!(true), json!(true))
    );
    assert_eq!(messages["gated_by"], json!(["enable_integration", "send"]));
    assert!(toggles
        .iter()
        .all(|t| !t["description"].as_str().unwrap().is_empty()));
    let r = app
        .call(
            reqwest::Method::PUT,
            "/api/v1/integrations/lawruler/settings",
            Some(json!({"sync_statuses": true})),
        )
        .await;
    assert_eq!(r.status, StatusCode::CONFLICT, "{}", r.text);
    let r = app
        .call(
            reqwest::Method::PUT,
            "/api/v1/integrations/lawruler/settings",
            Some(json!({"sync_everything": true})),
        )
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
}
casebridge_testkit::backend_test!(settings_report_inert_toggles_and_guard_status_sync);

async fn webhooks_in_one_group_commit_are_each_applied_once_and_a_failing_one_alone_fails(
    backend: casebridge_testkit::TestBackend,
) {
    // Inbound webhooks are group-committed: concurrent ones share one transaction, each in its
    // own savepoint. To put them in one batch for certain, a unit of the test holds the
    // committer until they are all queued behind it.
    // `Batched` on both backends (PostgreSQL's default is a transaction per webhook).
    let app = TestApp::start_with(
        backend,
        casebridge_testkit::TestOptions {
            group_commit: Some(casebridge_store::GroupCommit::Batched),
            ..Default::default()
        },
    )
    .await;
    let hook = connected(&app).await;
    let store = app.db.store.clone();
    let held = casebridge_testkit::CommitterHeld::hold(&store).await;
    let before = store.group_stats();

    let new_lead = |i: usize| {
        lead(&[
            ("Lead ID", &format!("N{i}")),
            ("Primary Contact ID", &format!("PC-N{i}")),
        ])
    };
    // 16 new leads; lead B twice with the same content (applied, then a duplicate); lead C
    // twice with another status each (a create and an update, in either order); lead D naming
    // a list that does not exist (refused after its receipt was written, so its savepoint
    // must undo that too).
    // (lead, path, fields)
    type Send = (String, String, Vec<(String, String)>);
    let mut sends: Vec<Send> = (0..16)
        .map(|i| (format!("N{i}"), hook.clone(), new_lead(i)))
        .collect();
    let b = lead(&[("Lead ID", "B"), ("Primary Contact ID", "PC-B")]);
    sends.push(("B".into(), hook.clone(), b.clone()));
    sends.push(("B".into(), hook.clone(), b));
    for status in ["Intake", "Signed"] {
        let c = lead(&[
            ("Lead ID", "C"),
            ("Primary Contact ID", "PC-C"),
            ("Status", status),
            ("Status ID", if status == "Intake" { "7" } else { "9" }),
        ]);
        sends.push(("C".into(), hook.clone(), c));
    }
    let d = lead(&[("Lead ID", "D"), ("Primary Contact ID", "PC-D")]);
    sends.push(("D".into(), format!("{hook}?list_name=Nowhere"), d.clone()));
    let n = sends.len() as u64;
    let replies = tokio::spawn({
        let app_url = app.url("");
        let http = app.http.clone();
        async move {
            let all = sends.into_iter().map(|(lead, path, fields)| {
                let (http, url) = (http.clone(), format!("{app_url}{path}"));
                async move {
                    let body: serde_json::Map<String, Value> = fields
                        .into_iter()
                        .map(|(k, v)| (k, Value::String(v)))
                        .collect();
                    let r = http.post(url).json(&body).send().await.unwrap();
                    (lead, TestApp::reply(r).await)
                }
            });
            futures::future::join_all(all).await
        }
    });
    casebridge_testkit::CommitterHeld::wait_queued(&store, before.submitted + n).await;
    held.release().await;
    let replies = replies.await.unwrap();
    let stats = store.group_stats();
    assert!(
        stats.max_batch >= n,
        "the {n} webhooks shared one transaction: {stats:?}"
    );

    let of = |lead: &str| -> Vec<&casebridge_testkit::Reply> {
        replies
            .iter()
            .filter(|(l, _)| l == lead)
            .map(|(_, r)| r)
            .collect()
    };
    let mut case_ids = std::collections::HashSet::new();
    for i in 0..16 {
        let r = of(&format!("N{i}"))[0];
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
        assert_eq!(r.body["status"], "applied", "{}", r.text);
        assert_eq!(r.body["case_created"], true, "{}", r.text);
        assert!(case_ids.insert(r.body["case_id"].as_str().unwrap().to_owned()));
    }
    let mut b: Vec<_> = of("B")
        .into_iter()
        .map(|r| {
            assert_eq!(r.status, StatusCode::OK, "{}", r.text);
            (
                r.body["status"].as_str().unwrap().to_owned(),
                r.body["case_id"].clone(),
            )
        })
        .collect();
    b.sort_by(|x, y| x.0.cmp(&y.0));
    assert_eq!(b[0].0, "applied");
    assert_eq!(b[1].0, "duplicate", "the second saw the first's receipt");
    assert_eq!(
        b[0].1, b[1].1,
        "the duplicate names the case the first made"
    );
    let c = of("C");
    assert!(c
        .iter()
        .all(|r| r.status == StatusCode::OK && r.body["status"] == "applied"));
    assert_eq!(
        c.iter().filter(|r| r.body["case_created"] == true).count(),
        1,
        "one create and one update: {} / {}",
        c[0].text,
        c[1].text
    );
    assert_eq!(c[0].body["case_id"], c[1].body["case_id"]);
    let d_reply = of("D")[0];
    assert_eq!(
        d_reply.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{}",
        d_reply.text
    );
    assert!(d_reply.text.contains("Nowhere"), "{}", d_reply.text);

    // 16 + B + C; nothing of D, whose error alone is in the sync log.
    assert_eq!(count(&app, "/api/v1/cases?limit=200").await, 18);
    let errors = sync_errors(&app).await;
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert_eq!(errors[0]["record_ref"], "D", "{errors:?}");
    // D's receipt went with its savepoint: sent again without the list, it is applied.
    let r = send(&app, &hook, Format::Json, &d).await;
    assert_eq!(r.body["status"], "applied", "{}", r.text);
    assert_eq!(r.body["case_created"], true, "{}", r.text);
}
casebridge_testkit::backend_test!(
    webhooks_in_one_group_commit_are_each_applied_once_and_a_failing_one_alone_fails
);

async fn many_concurrent_webhooks_are_each_applied_exactly_once(
    backend: casebridge_testkit::TestBackend,
) {
    // The backend's own group-commit mode: batched on SQLite, a transaction each on PostgreSQL.
    let app = TestApp::start(backend).await;
    let hook = connected(&app).await;
    // Every lead applied exactly once, every repeat a duplicate of it, however they are batched.
    let all = (0..48).flat_map(|i| {
        let fields = lead(&[
            ("Lead ID", &format!("M{i}")),
            ("Primary Contact ID", &format!("PC-M{i}")),
        ]);
        let app = &app;
        let hook = hook.clone();
        [(); 2].map(move |_| {
            let (fields, hook) = (fields.clone(), hook.clone());
            async move { send(app, &hook, Format::Json, &fields).await }
        })
    });
    let replies = futures::future::join_all(all).await;
    assert!(replies.iter().all(|r| r.status == StatusCode::OK));
    let applied = replies
        .iter()
        .filter(|r| r.body["status"] == "applied")
        .count();
    let duplicates = replies
        .iter()
        .filter(|r| r.body["status"] == "duplicate")
        .count();
    assert_eq!((applied, duplicates), (48, 48));
    assert_eq!(count(&app, "/api/v1/cases?limit=200").await, 48);
}
casebridge_testkit::backend_test!(many_concurrent_webhooks_are_each_applied_exactly_once);
