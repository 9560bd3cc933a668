//! The sync engine's rules on both backends, against the simulators: two-way status sync
//! against its base (SYNC2; each conflict rule on a status changed on both sides and its log
//! row, our own echo not counted as a change, restoring a losing value, the setting's
//! validation, tenant isolation) and the field mappings' sync rules (SYNC1).

use casebridge_queue::Worker;
use casebridge_sim::lawruler::{LawRulerSim, RunningSim};
use casebridge_testkit::TestApp;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

const LEAD: &str = "10001"; // seeded in the simulator: Jane Doe, case type 12

struct Setup {
    lr: RunningSim,
    app: TestApp,
    worker: Worker,
    hook: String,
    intake: String,
    qualified: String,
    review: String,
}

/// Connected to the simulator; Law Ruler 12 linked to "Auto"; statuses 7, 8 and 10 mapped to
/// Intake, Qualified and Review Needed; every toggle on; the rule `rule`.
async fn setup(backend: casebridge_testkit::TestBackend, rule: &str) -> Setup {
    let lr = LawRulerSim::new().start().await;
    let app = TestApp::start(backend).await;
    app.call(
        Method::PUT,
        "/api/v1/integrations/lawruler/connection",
        Some(json!({"username": "demo", "password": "demo-password",
                    "client_root": lr.base_url, "client_secret": "demo-secret",
                    "key": "demo-key"})),
    )
    .await
    .expect(StatusCode::OK);
    app.post("/api/v1/integrations/lawruler/fields/refresh", json!({}))
        .await
        .expect(StatusCode::OK);
    let auto = app
        .create("/api/v1/case-types", json!({"name": "Auto"}))
        .await;
    app.call(
        Method::PUT,
        "/api/v1/integrations/lawruler/case-type-links",
        Some(json!({"links": [{"crm_case_type_id": "12", "case_type_id": auto}]})),
    )
    .await
    .expect(StatusCode::OK);
    let intake = app
        .create("/api/v1/case-statuses", json!({"name": "Intake"}))
        .await;
    let qualified = app
        .create("/api/v1/case-statuses", json!({"name": "Qualified"}))
        .await;
    let review = app
        .create("/api/v1/case-statuses", json!({"name": "Review Needed"}))
        .await;
    app.call(
        Method::PUT,
        "/api/v1/integrations/lawruler/status-mappings",
        Some(json!({"mappings": [
            {"case_status_id": intake, "crm_status_id": "7"},
            {"case_status_id": qualified, "crm_status_id": "8"},
            {"case_status_id": review, "crm_status_id": "10"}]})),
    )
    .await
    .expect(StatusCode::OK);
    let r = app
        .call(
            Method::PUT,
            "/api/v1/integrations/lawruler/settings",
            Some(
                json!({"enable_integration": true, "receive": true, "send": true,
                        "sync_statuses": true, "conflict_resolution": rule}),
            ),
        )
        .await
        .expect(StatusCode::OK);
    assert_eq!(
        r.body["settings"]["conflict_resolution"], rule,
        "{}",
        r.text
    );
    let url = r.body["webhook_url"].as_str().expect("webhook_url");
    let hook = format!("/hooks/{}", url.split_once("/hooks/").unwrap().1);
    lr.sim.clear_requests();
    let worker = app.crm_worker(0);
    Setup {
        lr,
        app,
        worker,
        hook,
        intake,
        qualified,
        review,
    }
}

impl Setup {
    /// Law Ruler's webhook for the lead with status `id` / `name`; answers the case id.
    async fn webhook(&self, id: &str, name: &str) -> String {
        let r = self
            .app
            .post(
                &self.hook,
                json!({"Lead ID": LEAD, "Case Type ID": "12", "Case Type": "Auto Accident",
                       "Status ID": id, "Status": name, "Full Name": "Jane Doe",
                       "Created Date": "2026-11-01", "Primary Contact ID": "PC-9",
                       "First Name": "Jane", "Last Name": "Doe"}),
            )
            .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
        let case = self
            .app
            .get(&format!(
                "/api/v1/cases/by-external-ref?provider=lawruler&external_id={LEAD}"
            ))
            .await
            .expect(StatusCode::OK);
        case.body["id"].as_str().unwrap().to_owned()
    }

    async fn status_of(&self, case: &str) -> String {
        let c = self
            .app
            .get(&format!("/api/v1/cases/{case}"))
            .await
            .expect(StatusCode::OK);
        c.body["case_status_id"].as_str().unwrap().to_owned()
    }

    async fn set_status(&self, case: &str, status: &str) {
        self.app
            .patch(
                &format!("/api/v1/cases/{case}"),
                json!({"case_status_id": status}),
            )
            .await
            .expect(StatusCode::OK);
    }

    async fn drain(&self) {
        self.worker.drain().await.expect("drain");
    }

    /// The StatusIDs Law Ruler was sent, in order.
    fn statuses_sent(&self) -> Vec<String> {
        self.lr
            .sim
            .requests()
            .iter()
            .filter(|r| r.path.contains("api-legalcrmapp"))
            .filter_map(|r| r.param("StatusID").map(str::to_owned))
            .collect()
    }

    async fn conflicts(&self, query: &str) -> Value {
        self.app
            .get(&format!("/api/v1/integrations/lawruler/conflicts{query}"))
            .await
            .expect(StatusCode::OK)
            .body
    }

    /// The newest skipped line of the sync log.
    async fn last_skipped(&self) -> String {
        let log = self
            .app
            .get("/api/v1/integrations/lawruler/sync-log?outcome=skipped")
            .await
            .expect(StatusCode::OK);
        log.body["data"][0]["message"].as_str().unwrap().to_owned()
    }

    async fn set_rule(&self, rule: &str) {
        self.app
            .call(
                Method::PUT,
                "/api/v1/integrations/lawruler/settings",
                Some(json!({ "conflict_resolution": rule })),
            )
            .await
            .expect(StatusCode::OK);
    }
}

async fn crm_wins_applies_the_crm_status_skips_ours_and_logs_the_conflict(
    backend: casebridge_testkit::TestBackend,
) {
    let s = setup(backend, "crm_wins").await;
    let case = s.webhook("7", "Intake").await;
    assert_eq!(s.status_of(&case).await, s.intake);
    // Both sides change the status before ours is sent.
    s.set_status(&case, &s.review).await;
    s.webhook("8", "Qualified – Intake Completed").await;
    assert_eq!(
        s.status_of(&case).await,
        s.qualified,
        "the CRM's status won"
    );
    let log = s.conflicts("").await;
    let rows = log["data"].as_array().unwrap();
    assert_eq!(rows.len(), 1, "{log}");
    let c = &rows[0];
    assert_eq!(c["case_id"], case.as_str());
    assert_eq!(c["record_ref"], LEAD);
    assert_eq!(c["field"], "status");
    assert_eq!(c["base_value"], "Intake");
    assert_eq!(c["platform_value"], "Review Needed");
    assert_eq!(c["crm_value"], "Qualified – Intake Completed");
    assert_eq!(c["rule"], "crm_wins");
    assert_eq!(c["winner"], "crm");
    assert_eq!(c["action"], "automatic");
    assert_eq!(c["restorable"], true);
    // Our losing change is not sent afterwards: it would overwrite the CRM's value.
    s.drain().await;
    assert!(s.statuses_sent().is_empty(), "{:?}", s.statuses_sent());
    let ops = s
        .app
        .get("/api/v1/integrations/lawruler/operations?state=skipped")
        .await
        .expect(StatusCode::OK);
    let op = &ops.body["data"][0];
    assert!(
        op["last_error"]
            .as_str()
            .unwrap_or_default()
            .contains("superseded"),
        "{}",
        ops.text
    );
    // The same webhook again is no new conflict: the CRM's value is now the base.
    s.webhook("8", "Qualified – Intake Completed").await;
    assert_eq!(s.conflicts("").await["data"].as_array().unwrap().len(), 1);
}
casebridge_testkit::backend_test!(crm_wins_applies_the_crm_status_skips_ours_and_logs_the_conflict);

async fn platform_wins_keeps_ours_and_sends_it(backend: casebridge_testkit::TestBackend) {
    let s = setup(backend, "platform_wins").await;
    let case = s.webhook("7", "Intake").await;
    s.set_status(&case, &s.review).await;
    s.webhook("8", "Qualified – Intake Completed").await;
    assert_eq!(
        s.status_of(&case).await,
        s.review,
        "the platform's status won"
    );
    let c = &s.conflicts("").await["data"][0];
    assert_eq!(c["winner"], "platform");
    assert_eq!(c["rule"], "platform_wins");
    assert_eq!(c["platform_value"], "Review Needed");
    assert_eq!(c["crm_value"], "Qualified – Intake Completed");
    // Ours goes to Law Ruler, once.
    s.drain().await;
    assert_eq!(s.statuses_sent(), ["10"]);
    assert_eq!(s.lr.sim.lead(LEAD).unwrap().status, "Review Needed");
    // Law Ruler repeating the refused value is no new conflict, and nothing more is sent.
    s.webhook("8", "Qualified – Intake Completed").await;
    assert_eq!(s.conflicts("").await["data"].as_array().unwrap().len(), 1);
    s.drain().await;
    assert_eq!(s.statuses_sent(), ["10"]);
}
casebridge_testkit::backend_test!(platform_wins_keeps_ours_and_sends_it);

async fn most_recent_with_law_ruler_uses_the_arrival_time(
    backend: casebridge_testkit::TestBackend,
) {
    let s = setup(backend, "most_recent").await;
    let view = s
        .app
        .get("/api/v1/integrations/lawruler")
        .await
        .expect(StatusCode::OK);
    let cr = &view.body["conflict_resolution"];
    assert_eq!(cr["rule"], "most_recent");
    assert!(cr["label"].as_str().unwrap().contains("CRM wins"), "{cr}");
    assert!(
        cr["change_times"].as_str().unwrap().contains("arrival"),
        "{cr}"
    );
    let case = s.webhook("7", "Intake").await;
    s.set_status(&case, &s.review).await;
    // Law Ruler's change arrives later than ours was made: it is the more recent one.
    s.app.advance(std::time::Duration::from_secs(60));
    s.webhook("8", "Qualified – Intake Completed").await;
    assert_eq!(s.status_of(&case).await, s.qualified);
    let c = &s.conflicts("").await["data"][0];
    assert_eq!(c["rule"], "most_recent");
    assert_eq!(c["winner"], "crm");
}
casebridge_testkit::backend_test!(most_recent_with_law_ruler_uses_the_arrival_time);

async fn our_own_echo_is_not_a_change(backend: casebridge_testkit::TestBackend) {
    let s = setup(backend, "platform_wins").await;
    let case = s.webhook("7", "Intake").await;
    s.set_status(&case, &s.review).await;
    s.drain().await;
    assert_eq!(s.statuses_sent(), ["10"]);
    // Law Ruler tells us about the change we made: not a CRM change, no conflict.
    s.webhook("10", "Review Needed").await;
    assert_eq!(s.status_of(&case).await, s.review);
    // Our next change, then Law Ruler's echo of the older one arriving late: the platform
    // changed, the CRM did not (its value is the base), so ours stays and nothing is logged.
    s.set_status(&case, &s.intake).await;
    s.webhook("10", "Review Needed").await;
    assert_eq!(s.status_of(&case).await, s.intake);
    // A change made only in Law Ruler is applied, without a conflict.
    s.drain().await;
    s.webhook("8", "Qualified – Intake Completed").await;
    assert_eq!(s.status_of(&case).await, s.qualified);
    let log = s.conflicts("").await;
    assert_eq!(log["data"].as_array().unwrap().len(), 0, "{log}");
}
casebridge_testkit::backend_test!(our_own_echo_is_not_a_change);

async fn a_losing_value_is_restored_once_as_a_new_change(backend: casebridge_testkit::TestBackend) {
    let s = setup(backend, "crm_wins").await;
    let case = s.webhook("7", "Intake").await;
    s.set_status(&case, &s.review).await;
    s.webhook("8", "Qualified – Intake Completed").await;
    s.drain().await;
    assert!(s.statuses_sent().is_empty());
    let id = s.conflicts("").await["data"][0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let path = format!("/api/v1/integrations/lawruler/conflicts/{id}/restore");
    let r = s.app.post(&path, json!({})).await.expect(StatusCode::OK);
    assert_eq!(r.body["case"]["case_status_id"], s.review.as_str());
    assert_eq!(r.body["conflict"]["restorable"], false);
    assert_eq!(r.body["conflict"]["restored_by"], "api");
    assert!(r.body["conflict"]["restored_at"].is_string());
    assert_eq!(s.status_of(&case).await, s.review);
    // It is a platform change like any other: it goes to Law Ruler.
    s.drain().await;
    assert_eq!(s.statuses_sent(), ["10"]);
    assert_eq!(s.lr.sim.lead(LEAD).unwrap().status, "Review Needed");
    // Once only.
    let again = s.app.post(&path, json!({})).await;
    assert_eq!(again.status, StatusCode::CONFLICT, "{}", again.text);
    assert!(again.text.contains("restored already"), "{}", again.text);
    s.drain().await;
    assert_eq!(s.statuses_sent(), ["10"]);
    // Filters.
    let restored = s.conflicts("?restored=true").await;
    assert_eq!(restored["data"].as_array().unwrap().len(), 1);
    assert_eq!(s.conflicts("?restored=false").await["data"], json!([]));
    assert_eq!(s.conflicts("?winner=platform").await["data"], json!([]));
    let by_case = s.conflicts(&format!("?case_id={case}&winner=crm")).await;
    assert_eq!(by_case["data"].as_array().unwrap().len(), 1);
    // Bad input is a 422 naming the parameter; an unknown conflict is a 404.
    for (q, field) in [("?winner=nobody", "winner"), ("?case_id=x", "case_id")] {
        let r = s
            .app
            .get(&format!("/api/v1/integrations/lawruler/conflicts{q}"))
            .await;
        assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.text);
        assert!(r.text.contains(field), "{}", r.text);
    }
    let r = s
        .app
        .post(
            "/api/v1/integrations/lawruler/conflicts/0190d8f0-0000-7000-8000-000000000000/restore",
            json!({}),
        )
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND, "{}", r.text);
    // Another company sees none of it and cannot restore it.
    let (_, other) = s.app.new_company("Other firm").await;
    let r = s
        .app
        .call_as(
            &other,
            Method::GET,
            "/api/v1/integrations/lawruler/conflicts",
            None,
        )
        .await
        .expect(StatusCode::OK);
    assert_eq!(r.body["data"], json!([]));
    let r = s.app.call_as(&other, Method::POST, &path, None).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND, "{}", r.text);
}
casebridge_testkit::backend_test!(a_losing_value_is_restored_once_as_a_new_change);

async fn conflicts_page_newest_first(backend: casebridge_testkit::TestBackend) {
    let s = setup(backend, "crm_wins").await;
    let case = s.webhook("7", "Intake").await;
    s.set_status(&case, &s.review).await;
    s.webhook("8", "Qualified – Intake Completed").await;
    s.set_status(&case, &s.review).await;
    s.webhook("7", "Intake").await;
    let first = s.conflicts("?limit=1").await;
    assert_eq!(first["data"][0]["crm_value"], "Intake", "{first}");
    let cursor = first["next_cursor"].as_str().expect("a next page");
    let second = s.conflicts(&format!("?limit=1&cursor={cursor}")).await;
    assert_eq!(
        second["data"][0]["crm_value"],
        "Qualified – Intake Completed"
    );
    assert!(second["next_cursor"].is_null());
}
casebridge_testkit::backend_test!(conflicts_page_newest_first);

async fn an_unknown_rule_is_refused_and_changes_nothing(backend: casebridge_testkit::TestBackend) {
    let s = setup(backend, "platform_wins").await;
    let r = s
        .app
        .call(
            Method::PUT,
            "/api/v1/integrations/lawruler/settings",
            Some(json!({"conflict_resolution": "newest", "send": false})),
        )
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.text);
    assert!(r.text.contains("conflict_resolution"), "{}", r.text);
    let view = s
        .app
        .get("/api/v1/integrations/lawruler")
        .await
        .expect(StatusCode::OK);
    assert_eq!(
        view.body["settings"]["conflict_resolution"],
        "platform_wins"
    );
    assert_eq!(view.body["settings"]["send"], true, "nothing changed");
    s.set_rule("most_recent").await;
    let view = s
        .app
        .get("/api/v1/integrations/lawruler")
        .await
        .expect(StatusCode::OK);
    assert_eq!(view.body["conflict_resolution"]["rule"], "most_recent");
}
casebridge_testkit::backend_test!(an_unknown_rule_is_refused_and_changes_nothing);

/// SmartAdvocate dates its records (`modifiedDate`), so "most recent" compares real change
/// times there, and a record without one falls back to CRM wins, named as the rule that fired.
async fn most_recent_with_smartadvocate_compares_modified_dates(
    backend: casebridge_testkit::TestBackend,
) {
    use casebridge_sim::smartadvocate::{SmartAdvocateSim, DEMO_PASSWORD, DEMO_USERNAME};
    const SA: &str = "/api/v1/integrations/smartadvocate";
    const NUMBER: &str = "9000001";
    let sa = SmartAdvocateSim::new().start().await;
    let app = TestApp::start(backend).await;
    app.call(
        Method::PUT,
        &format!("{SA}/connection"),
        Some(json!({"base_url": sa.base_url, "username": DEMO_USERNAME,
                    "password": DEMO_PASSWORD})),
    )
    .await
    .expect(StatusCode::OK);
    app.post(&format!("{SA}/fields/refresh"), json!({}))
        .await
        .expect(StatusCode::OK);
    let mut ids = Vec::new();
    for name in ["Intake", "Signed Up", "Rejected"] {
        ids.push(
            app.create("/api/v1/case-statuses", json!({"name": name}))
                .await,
        );
    }
    app.call(
        Method::PUT,
        &format!("{SA}/status-mappings"),
        Some(json!({"mappings": [
            {"case_status_id": ids[0], "crm_status_id": "1"},
            {"case_status_id": ids[1], "crm_status_id": "2"},
            {"case_status_id": ids[2], "crm_status_id": "3"}]})),
    )
    .await
    .expect(StatusCode::OK);
    let r = app
        .call(
            Method::PUT,
            &format!("{SA}/settings"),
            Some(
                json!({"enable_integration": true, "receive": true, "send": true,
                        "sync_statuses": true, "conflict_resolution": "most_recent"}),
            ),
        )
        .await
        .expect(StatusCode::OK);
    assert!(
        r.body["conflict_resolution"]["change_times"]
            .as_str()
            .unwrap()
            .contains("modifiedDate"),
        "{}",
        r.text
    );
    let token = r.body["webhook_url"]
        .as_str()
        .unwrap()
        .rsplit('/')
        .next()
        .unwrap()
        .to_owned();
    let hook = |status: &str, name: &str, modified: Option<&str>| {
        let mut body = json!({"caseNumber": NUMBER, "caseTypeID": "1",
            "caseType": "Motor Vehicle Accident", "Status ID": status, "status": name,
            "contactID": "7001", "firstName": "Jane", "lastName": "Doe"});
        if let Some(m) = modified {
            body["modifiedDate"] = json!(m);
        }
        let req = app
            .http
            .post(app.url(&format!("/hooks/smartadvocate/{token}")))
            .json(&body);
        async move {
            let r = TestApp::reply(req.send().await.unwrap()).await;
            assert_eq!(r.status, StatusCode::OK, "{}", r.text);
            r.body["case_id"].as_str().unwrap().to_owned()
        }
    };
    let status_of = |case: String| {
        let req = app
            .http
            .get(app.url(&format!("/api/v1/cases/{case}")))
            .bearer_auth(&app.api_key);
        async move {
            let r = TestApp::reply(req.send().await.unwrap()).await;
            r.body["case_status_id"].as_str().unwrap().to_owned()
        }
    };
    let set_status = |case: &str, status: &str| {
        let path = format!("/api/v1/cases/{case}");
        let body = json!({ "case_status_id": status });
        let app = &app;
        async move { app.patch(&path, body).await }
    };
    let case = hook("1", "Intake", Some("2026-01-01T09:00:00")).await;
    assert_eq!(status_of(case.clone()).await, ids[0]);
    // Ours now (the test clock is in 2026-12), SmartAdvocate's dated January: ours is newer.
    set_status(&case, &ids[1]).await.expect(StatusCode::OK);
    hook("3", "Rejected", Some("2026-01-02T09:00:00")).await;
    assert_eq!(
        status_of(case.clone()).await,
        ids[1],
        "the platform's is newer"
    );
    // SmartAdvocate's next change is dated after ours: it wins.
    hook("1", "Intake", Some("2099-01-01T00:00:00")).await;
    assert_eq!(
        status_of(case.clone()).await,
        ids[0],
        "SmartAdvocate's is newer"
    );
    // No date: the fallback decides, and says so.
    set_status(&case, &ids[2]).await.expect(StatusCode::OK);
    hook("2", "Signed Up", None).await;
    assert_eq!(status_of(case.clone()).await, ids[1]);
    let log = app
        .get(&format!("{SA}/conflicts"))
        .await
        .expect(StatusCode::OK)
        .body;
    let got: Vec<(String, String, String)> = log["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["winner"].as_str().unwrap().to_owned(),
                c["rule"].as_str().unwrap().to_owned(),
                c["crm_value"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    let row = |w: &str, r: &str, v: &str| (w.to_owned(), r.to_owned(), v.to_owned());
    assert_eq!(
        got,
        [
            row(
                "crm",
                "most_recent, fallback crm_wins (the CRM gave no change time)",
                "Signed Up"
            ),
            row("crm", "most_recent", "Intake"),
            row("platform", "most_recent", "Rejected"),
        ]
    );
    // The Lawruler log is separate.
    let lr = app
        .get("/api/v1/integrations/lawruler/conflicts")
        .await
        .expect(StatusCode::OK);
    assert_eq!(lr.body["data"], json!([]));
}
casebridge_testkit::backend_test!(most_recent_with_smartadvocate_compares_modified_dates);

async fn field_rules_decide_which_mapped_fields_are_sent(backend: casebridge_testkit::TestBackend) {
    let s = setup(backend, "most_recent").await;
    s.app
        .call(
            Method::PUT,
            "/api/v1/integrations/lawruler/settings",
            Some(json!({"send_mapped_fields": true})),
        )
        .await
        .expect(StatusCode::OK);
    // In platform-field order, as the mappings are listed.
    let mappings = json!({"crm_case_type_id": "12", "mappings": [
        {"platform_field": "custom.bills", "crm_field_key": "custom1237", "rule": "always_crm"},
        {"platform_field": "custom.desc", "crm_field_key": "custom1236",
         "rule": "prefer_platform_unless_blank"},
        {"platform_field": "custom.injury_date", "crm_field_key": "custom1234",
         "rule": "prefer_crm_unless_blank"},
        {"platform_field": "custom.report", "crm_field_key": "custom1235", "rule": "dont_sync"}]});
    let r = s
        .app
        .call(
            Method::PUT,
            "/api/v1/integrations/lawruler/field-mappings",
            Some(mappings.clone()),
        )
        .await
        .expect(StatusCode::OK);
    assert_eq!(r.body, mappings, "the saved mappings, rules included");
    // A bad rule is named and changes nothing.
    let mut bad = mappings.clone();
    bad["mappings"][1]["rule"] = json!("sometimes");
    let r = s
        .app
        .call(
            Method::PUT,
            "/api/v1/integrations/lawruler/field-mappings",
            Some(bad),
        )
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.text);
    assert!(r.text.contains("mappings[1].rule"), "{}", r.text);
    let got = s
        .app
        .get("/api/v1/integrations/lawruler/field-mappings?crm_case_type_id=12")
        .await
        .expect(StatusCode::OK);
    assert_eq!(got.body, mappings);

    let case = s.webhook("7", "Intake").await;
    s.lr.sim.clear_requests();
    s.app
        .patch(
            &format!("/api/v1/cases/{case}"),
            json!({"custom_fields": {"injury_date": "2001-02-03", "report": true,
                                     "desc": "whiplash", "bills": 1200}}),
        )
        .await
        .expect(StatusCode::OK);
    s.drain().await;
    let updates: Vec<_> =
        s.lr.sim
            .requests()
            .into_iter()
            .filter(|r| r.path.contains("api-legalcrmapp"))
            .collect();
    assert_eq!(updates.len(), 1, "{updates:?}");
    let u = &updates[0];
    assert_eq!(
        u.param("custom1234"),
        Some("2/3/2001"),
        "the CRM had no value"
    );
    assert_eq!(u.param("custom1236"), Some("whiplash"));
    assert_eq!(u.param("custom1235"), None, "dont_sync");
    assert_eq!(u.param("custom1237"), None, "always_crm");
    let line = s.last_skipped().await;
    assert!(
        line.contains("custom1235: it is not synced")
            && line.contains("custom1237: the CRM owns it"),
        "{line}"
    );
    // Clearing the description and changing the date: the blank is held back, and the date
    // now has a value in Law Ruler (ours), which "prefer CRM unless blank" keeps.
    s.lr.sim.clear_requests();
    s.app
        .patch(
            &format!("/api/v1/cases/{case}"),
            json!({"custom_fields": {"injury_date": "2001-02-04", "desc": ""}}),
        )
        .await
        .expect(StatusCode::OK);
    s.drain().await;
    assert!(
        s.lr.sim
            .requests()
            .iter()
            .all(|r| !r.path.contains("api-legalcrmapp")),
        "nothing to send"
    );
    let line = s.last_skipped().await;
    assert!(
        line.contains("custom1234: the CRM already has a value")
            && line.contains("custom1236: a blank value"),
        "{line}"
    );
    // A mapping saved without a rule is two-way.
    let r = s
        .app
        .call(
            Method::PUT,
            "/api/v1/integrations/lawruler/field-mappings",
            Some(json!({"crm_case_type_id": "12", "mappings": [
                {"platform_field": "custom.desc", "crm_field_key": "custom1236"}]})),
        )
        .await
        .expect(StatusCode::OK);
    assert_eq!(r.body["mappings"][0]["rule"], "two_way", "{}", r.text);
}
casebridge_testkit::backend_test!(field_rules_decide_which_mapped_fields_are_sent);

/// Everything a test can see change: operations, the sync log, conflicts, the case.
async fn snapshot(s: &Setup, case: &str) -> Value {
    let get = |path: String| {
        let req = s.app.http.get(s.app.url(&path)).bearer_auth(&s.app.api_key);
        async move {
            let r = TestApp::reply(req.send().await.unwrap()).await;
            assert_eq!(r.status, StatusCode::OK, "{}", r.text);
            r.body
        }
    };
    json!({
        "operations": get("/api/v1/integrations/lawruler/operations?limit=200".into()).await,
        "sync_log": get("/api/v1/integrations/lawruler/sync-log?limit=200".into()).await,
        "conflicts": get("/api/v1/integrations/lawruler/conflicts".into()).await,
        "case": get(format!("/api/v1/cases/{case}")).await,
        "cases": get("/api/v1/cases?limit=200".into()).await,
    })
}

async fn a_dry_run_changes_nothing_and_matches_what_the_sync_then_sends(
    backend: casebridge_testkit::TestBackend,
) {
    let s = setup(backend, "most_recent").await;
    s.app
        .call(
            Method::PUT,
            "/api/v1/integrations/lawruler/settings",
            Some(json!({"send_mapped_fields": true})),
        )
        .await
        .expect(StatusCode::OK);
    s.app
        .call(
            Method::PUT,
            "/api/v1/integrations/lawruler/field-mappings",
            Some(json!({"crm_case_type_id": "12", "mappings": [
                {"platform_field": "custom.desc", "crm_field_key": "custom1236",
                 "rule": "always_crm"},
                {"platform_field": "custom.injury_date", "crm_field_key": "custom1234"}]})),
        )
        .await
        .expect(StatusCode::OK);
    let case = s.webhook("7", "Intake").await;
    s.app
        .patch(
            &format!("/api/v1/cases/{case}"),
            json!({"case_status_id": s.review,
                   "custom_fields": {"injury_date": "2001-02-03", "desc": "whiplash"}}),
        )
        .await
        .expect(StatusCode::OK);
    s.drain().await;
    s.lr.sim.clear_requests();
    let before = snapshot(&s, &case).await;

    // Outbound: what syncing the case sends, exactly, and nothing is sent or stored.
    let r = s
        .app
        .post(
            "/api/v1/integrations/lawruler/test",
            json!({ "case_id": case }),
        )
        .await
        .expect(StatusCode::OK);
    assert_eq!(r.body["changed_nothing"], true);
    let out = &r.body["outbound"];
    assert_eq!(out["record_ref"], LEAD, "{}", r.text);
    let ops = out["operations"].as_array().unwrap();
    assert_eq!(ops.len(), 2, "{}", r.text);
    assert_eq!(ops[0]["operation"]["kind"], "status");
    assert_eq!(ops[1]["operation"]["kind"], "mapped_fields");
    let planned: Vec<(String, Vec<(String, String)>)> = ops
        .iter()
        .map(|o| {
            let req = &o["requests"][0];
            let params: Vec<(String, String)> =
                serde_json::from_value(req["params"].clone()).unwrap();
            assert_eq!(
                params[0],
                ("Key".into(), "[redacted]".into()),
                "the secret is redacted"
            );
            assert_eq!(req["method"], "POST");
            let url = req["url"].as_str().unwrap();
            let path = url.splitn(4, '/').nth(3).map(|p| format!("/{p}")).unwrap();
            (path, params[1..].to_vec())
        })
        .collect();
    assert_eq!(
        planned[0].1,
        [
            ("LeadID".to_owned(), LEAD.to_owned()),
            ("overridelead".to_owned(), "true".to_owned()),
            ("StatusID".to_owned(), "10".to_owned()),
        ]
    );
    assert!(
        planned[1]
            .1
            .contains(&("custom1234".into(), "2/3/2001".into())),
        "{planned:?}"
    );
    let log = out["log"].as_array().unwrap();
    assert!(
        log.iter().any(|l| l["message"]
            .as_str()
            .unwrap_or_default()
            .contains("custom1236: the CRM owns it")),
        "the skip and its reason: {}",
        r.text
    );
    assert_eq!(snapshot(&s, &case).await, before, "nothing stored");
    assert!(s.lr.sim.requests().is_empty(), "nothing sent");
    // Inbound, with a conflict: our status moves on while Law Ruler's record says 8.
    s.set_status(&case, &s.intake).await;
    let before = {
        let mut b = snapshot(&s, &case).await;
        b["requests"] = json!(s.lr.sim.requests().len());
        b
    };
    let record = json!({"Lead ID": LEAD, "Case Type ID": "12", "Case Type": "Auto Accident",
        "Status ID": "8", "Status": "Qualified – Intake Completed", "Full Name": "Jane Q Doe",
        "Created Date": "2026-11-01", "Primary Contact ID": "PC-9", "First Name": "Jane",
        "Last Name": "Doe"});
    let r = s
        .app
        .post(
            "/api/v1/integrations/lawruler/test",
            json!({ "case_id": case, "record": record }),
        )
        .await
        .expect(StatusCode::OK);
    let inb = &r.body["inbound"];
    assert_eq!(inb["case_id"], case.as_str(), "{}", r.text);
    assert_eq!(inb["creates_case"], false);
    let changes = inb["changes"].as_array().unwrap();
    assert!(
        changes.contains(&json!({"field": "case.status", "from": "Intake",
                                 "to": "Qualified"})),
        "{}",
        r.text
    );
    assert!(
        changes.contains(&json!({"field": "case.name", "from": "Jane Doe",
                                     "to": "Jane Q Doe"}))
    );
    let c = &inb["conflicts"][0];
    assert_eq!(
        (c["winner"].as_str(), c["rule"].as_str()),
        (Some("crm"), Some("most_recent"))
    );
    let mut after = snapshot(&s, &case).await;
    after["requests"] = json!(s.lr.sim.requests().len());
    assert_eq!(after, before, "the dry run changed nothing on either side");
    // The real webhook does what the plan said.
    let hooked = s
        .app
        .post(&s.hook, record.clone())
        .await
        .expect(StatusCode::OK);
    assert_eq!(hooked.body["status"], "applied", "{}", hooked.text);
    assert_eq!(s.status_of(&case).await, s.qualified);
    let log = s.conflicts("").await;
    assert_eq!(log["data"][0]["winner"], "crm");
    assert_eq!(log["data"][0]["crm_value"], c["crm_value"]);
    assert_eq!(log["data"][0]["platform_value"], c["platform_value"]);
    // Our Intake change lost (superseded), and the dry runs queued nothing: nothing is sent.
    s.drain().await;
    let sent = s.lr.sim.requests();
    assert!(sent.is_empty(), "{sent:?}");

    // Resync: the same planner, committed; Law Ruler gets exactly the planned requests.
    s.lr.sim.clear_requests();
    let plan = s
        .app
        .post(
            "/api/v1/integrations/lawruler/test",
            json!({ "case_id": case }),
        )
        .await
        .expect(StatusCode::OK);
    let r = s
        .app
        .post(
            "/api/v1/integrations/lawruler/resync",
            json!({ "case_id": case }),
        )
        .await
        .expect(StatusCode::ACCEPTED);
    assert_eq!(
        r.body["operations"].as_array().unwrap().len(),
        plan.body["outbound"]["operations"]
            .as_array()
            .unwrap()
            .len()
    );
    s.drain().await;
    let got: Vec<(String, Vec<(String, String)>)> =
        s.lr.sim
            .requests()
            .iter()
            .filter(|q| !q.path.contains("token"))
            .map(|q| {
                let params: Vec<(String, String)> = q
                    .form
                    .iter()
                    .chain(&q.query)
                    .filter(|(k, _)| k != "Key")
                    .cloned()
                    .collect();
                (q.path.clone(), params)
            })
            .collect();
    let planned: Vec<(String, Vec<(String, String)>)> = plan.body["outbound"]["operations"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|o| o["requests"].as_array().unwrap().clone())
        .map(|req| {
            let params: Vec<(String, String)> =
                serde_json::from_value(req["params"].clone()).unwrap();
            let url = req["url"].as_str().unwrap();
            let path = url.splitn(4, '/').nth(3).map(|p| format!("/{p}")).unwrap();
            (
                path,
                params.into_iter().filter(|(k, _)| k != "Key").collect(),
            )
        })
        .collect();
    assert_eq!(got, planned, "what was sent is what the dry run showed");
}
casebridge_testkit::backend_test!(a_dry_run_changes_nothing_and_matches_what_the_sync_then_sends);

async fn a_dry_run_refuses_bad_samples(backend: casebridge_testkit::TestBackend) {
    let s = setup(backend, "most_recent").await;
    let test = |body: Value| s.app.post("/api/v1/integrations/lawruler/test", body);
    let r = test(json!({})).await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.text);
    assert!(r.text.contains("case_id"), "{}", r.text);
    let r = test(json!({"case_id": "nope"})).await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.text);
    let r = test(json!({"case_id": "0190d8f0-0000-7000-8000-000000000000"})).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND, "{}", r.text);
    let r = test(json!({"record": {"Lead ID": LEAD}})).await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.text);
    assert!(
        r.text.contains("record."),
        "names the record's field: {}",
        r.text
    );
    // Another company cannot test with this company's case.
    let case = s.webhook("7", "Intake").await;
    let (_, other) = s.app.new_company("Other firm").await;
    s.app
        .call_as(
            &other,
            Method::PUT,
            "/api/v1/integrations/lawruler/settings",
            Some(json!({"receive": false})),
        )
        .await
        .expect(StatusCode::OK);
    let r = s
        .app
        .call_as(
            &other,
            Method::POST,
            "/api/v1/integrations/lawruler/test",
            Some(json!({ "case_id": case })),
        )
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND, "{}", r.text);
    // With receiving off, the record would be ignored, and the dry run says why.
    s.app
        .call(
            Method::PUT,
            "/api/v1/integrations/lawruler/settings",
            Some(json!({"receive": false})),
        )
        .await
        .expect(StatusCode::OK);
    let r = test(json!({"record": {"Lead ID": LEAD, "Case Type ID": "12",
        "Case Type": "Auto Accident", "Status ID": "8", "Status": "Qualified",
        "Full Name": "Jane Doe", "Created Date": "2026-11-01", "Primary Contact ID": "PC-9",
        "First Name": "Jane", "Last Name": "Doe"}}))
    .await
    .expect(StatusCode::OK);
    assert!(
        r.body["inbound"]["ignored"].as_str().is_some(),
        "{}",
        r.text
    );
}
casebridge_testkit::backend_test!(a_dry_run_refuses_bad_samples);

async fn monitoring_counts_what_was_applied_sent_and_refused(
    backend: casebridge_testkit::TestBackend,
) {
    let s = setup(backend, "most_recent").await;
    let monitoring = || async {
        s.app
            .get("/api/v1/integrations/lawruler/monitoring")
            .await
            .expect(StatusCode::OK)
            .body
    };
    let empty = monitoring().await;
    assert_eq!(empty["last_hour"]["inbound"]["created"], 0, "{empty}");
    assert!(empty["since_connect"].is_object());

    // From Law Ruler: created, the same again (unchanged), changed (updated), refused, ignored.
    let case = s.webhook("7", "Intake").await;
    s.webhook("7", "Intake").await;
    s.webhook("8", "Qualified – Intake Completed").await;
    let r = s.app.post(&s.hook, json!({"Lead ID": "10002"})).await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.text);
    s.app
        .call(
            Method::PUT,
            "/api/v1/integrations/lawruler/settings",
            Some(json!({"receive": false})),
        )
        .await
        .expect(StatusCode::OK);
    s.webhook("10", "Review Needed").await;
    // To Law Ruler: two status changes sent, and one held while status sync is off.
    s.set_status(&case, &s.review).await;
    s.set_status(&case, &s.intake).await;
    s.drain().await;
    s.app
        .call(
            Method::PUT,
            "/api/v1/integrations/lawruler/status-sync",
            Some(json!({"enabled": false})),
        )
        .await
        .expect(StatusCode::OK);
    s.set_status(&case, &s.review).await;
    s.drain().await;

    let m = monitoring().await;
    for period in ["last_hour", "last_day", "since_connect"] {
        assert_eq!(
            m[period]["inbound"],
            json!({"created": 1, "updated": 1, "unchanged": 1, "skipped": 1, "failed": 1}),
            "{period}: {m}"
        );
        assert_eq!(
            m[period]["outbound"],
            json!({"sent": 2, "skipped": 0, "failed": 0}),
            "{period}: {m}"
        );
    }
    // The counts are what the two sides hold: one case here, two status writes there.
    let cases = s.app.get("/api/v1/cases").await.expect(StatusCode::OK);
    assert_eq!(cases.body["data"].as_array().unwrap().len(), 1);
    assert_eq!(s.statuses_sent(), ["10", "7"]);
    assert_eq!(m["pending_operations"], 1, "the held change: {m}");
    assert!(m["last_sync_at"].is_string());
    // The refused webhook is a problem of its kind, with its record and reason.
    let problems = m["problems"].as_array().unwrap();
    let validation = problems
        .iter()
        .find(|p| p["class"] == "validation")
        .unwrap_or_else(|| panic!("{m}"));
    assert_eq!(validation["direction"], "inbound");
    assert_eq!(validation["count"], 1);
    assert_eq!(validation["state"], "open");
    assert!(validation["hint"].as_str().unwrap().contains("webhook"));
    assert!(!validation["example"]["message"]
        .as_str()
        .unwrap()
        .is_empty());
    // An hour later, the last hour is empty and the day still has them.
    s.app.advance(std::time::Duration::from_secs(3601));
    let later = monitoring().await;
    assert_eq!(later["last_hour"]["inbound"]["created"], 0, "{later}");
    assert_eq!(later["last_day"]["inbound"]["created"], 1);
}
casebridge_testkit::backend_test!(monitoring_counts_what_was_applied_sent_and_refused);

async fn selective_sync_agrees_with_the_toggles_and_the_direction(
    backend: casebridge_testkit::TestBackend,
) {
    let s = setup(backend, "most_recent").await;
    let flows = || async {
        let v = s
            .app
            .get("/api/v1/integrations/lawruler")
            .await
            .expect(StatusCode::OK)
            .body;
        v["selective_sync"]
            .as_array()
            .unwrap()
            .iter()
            .map(|k| {
                (
                    k["kind"].as_str().unwrap().to_owned(),
                    format!(
                        "{}{} / {}{}",
                        k["inbound"].as_str().unwrap(),
                        k["inbound_off_by"]
                            .as_str()
                            .map(|b| format!(" ({b})"))
                            .unwrap_or_default(),
                        k["outbound"].as_str().unwrap(),
                        k["outbound_off_by"]
                            .as_str()
                            .map(|b| format!(" ({b})"))
                            .unwrap_or_default()
                    ),
                )
            })
            .collect::<std::collections::BTreeMap<_, _>>()
    };
    let settings = |body: Value| {
        s.app.call(
            Method::PUT,
            "/api/v1/integrations/lawruler/settings",
            Some(body),
        )
    };
    // setup: enable, receive, send, status sync on; the other send toggles off.
    let f = flows().await;
    assert_eq!(f["cases"], "on / not_available");
    assert_eq!(f["statuses"], "on / on");
    assert_eq!(f["notes_and_messages"], "on / off (send_messages)");
    assert_eq!(
        f["mapped_fields"],
        "not_available / off (send_mapped_fields)"
    );
    assert_eq!(f["documents"], "not_available / off (send_documents)");
    settings(json!({"send_messages": true, "send": false}))
        .await
        .expect(StatusCode::OK);
    let f = flows().await;
    assert_eq!(f["notes_and_messages"], "on / off (send)");
    assert_eq!(
        f["statuses"], "on / on",
        "Law Ruler's status sync needs no Send data"
    );
    settings(json!({"send": true, "direction": "one_way_in"}))
        .await
        .expect(StatusCode::OK);
    let f = flows().await;
    assert_eq!(f["notes_and_messages"], "on / off (direction)");
    assert_eq!(f["statuses"], "on / off (direction)");
    settings(json!({"direction": "one_way_out"}))
        .await
        .expect(StatusCode::OK);
    let f = flows().await;
    assert_eq!(f["cases"], "off (direction) / not_available");
    assert_eq!(f["notes_and_messages"], "off (direction) / on");
    // What the engine does matches: one way out, a Law Ruler webhook is ignored.
    let r = s
        .app
        .post(
            &s.hook,
            json!({"Lead ID": LEAD, "Case Type ID": "12", "Case Type": "Auto Accident",
                   "Status ID": "7", "Status": "Intake", "Full Name": "Jane Doe",
                   "Created Date": "2026-11-01", "Primary Contact ID": "PC-9",
                   "First Name": "Jane", "Last Name": "Doe"}),
        )
        .await
        .expect(StatusCode::OK);
    assert_eq!(r.body["status"], "ignored", "{}", r.text);
}
casebridge_testkit::backend_test!(selective_sync_agrees_with_the_toggles_and_the_direction);
