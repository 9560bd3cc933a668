//! The Monitoring tab (measured counts, problems grouped by kind, failed operations retried and
//! dismissed from the page) and SmartAdvocate's Configuration tab, on both backends.

use std::time::Duration;

use casebridge_sim::lawruler::{LawRulerSim, NewLead};
use casebridge_sim::smartadvocate::{Operation, SmartAdvocateSim, DEMO_PASSWORD, DEMO_USERNAME};
use casebridge_testkit::{Browser, TestApp};
use reqwest::{Method, StatusCode};
use scraper::{Html, Selector};
use serde_json::{json, Value};

const MONITORING: &str = "/ui/integrations/lawruler/monitoring";

fn texts(html: &str, css: &str) -> Vec<String> {
    let doc = Html::parse_document(html);
    doc.select(&Selector::parse(css).unwrap())
        .map(|e| {
            e.text()
                .collect::<String>()
                .split_whitespace()
                .collect::<Vec<_>>()
                .join(" ")
        })
        .collect()
}

fn text(html: &str, css: &str) -> String {
    let all = texts(html, css);
    assert_eq!(all.len(), 1, "one `{css}` expected, got {all:?} in\n{html}");
    all[0].clone()
}

fn count(html: &str, period: &str, cell: &str) -> u64 {
    text(
        html,
        &format!("#log-counts tr[data-period=\"{period}\"] td[data-count=\"{cell}\"]"),
    )
    .parse()
    .unwrap()
}

/// How many sync-log lines the JSON API lists with this direction and outcome.
async fn api_log_count(app: &TestApp, provider: &str, direction: &str, outcome: &str) -> u64 {
    let mut n = 0;
    let mut after: Option<String> = None;
    loop {
        let mut path =
            format!("/api/v1/integrations/{provider}/sync-log?outcome={outcome}&limit=100");
        if let Some(a) = &after {
            path.push_str(&format!("&cursor={a}"));
        }
        let page = app.get(&path).await.expect(StatusCode::OK).body;
        n += page["data"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["direction"] == direction)
            .count() as u64;
        match page["next_cursor"].as_str() {
            Some(a) => after = Some(a.to_owned()),
            None => return n,
        }
    }
}

async fn settings(app: &TestApp, body: Value) {
    app.call(
        Method::PUT,
        "/api/v1/integrations/lawruler/settings",
        Some(body),
    )
    .await
    .expect(StatusCode::OK);
}

/// A browser signed in as an admin of another company.
async fn other_admin(app: &TestApp) -> Browser {
    let (other, _) = app.new_company("Other Firm").await;
    app.admin_user(other, "admin@other.test", "correct horse battery")
        .await;
    let b = Browser::new(&app.base);
    b.sign_in("admin@other.test", "correct horse battery")
        .await
        .expect(StatusCode::SEE_OTHER);
    b
}

async fn problems_are_grouped_by_kind_with_counts_examples_and_resolution(
    backend: casebridge_testkit::TestBackend,
) {
    let app = TestApp::start(backend).await;
    let hook = app
        .lawruler_connected_offline(app.company_id, &app.api_key)
        .await;
    // The offline connection is stamped with the wall clock; the app's clock moves past it.
    app.advance(Duration::from_secs(600));
    let post = |body: Value| {
        let (app, hook) = (&app, &hook);
        async move {
            app.http
                .post(app.url(hook))
                .json(&body)
                .send()
                .await
                .unwrap()
                .status()
        }
    };
    let lead = |id: &str| {
        json!({"Lead ID": id, "Case Type ID": "12", "Case Type": "Auto Accident",
            "Status ID": "7", "Status": "Qualified", "Full Name": "Jane Doe", "Created Date": "2026-11-01",
            "Primary Contact ID": "PC-9", "First Name": "Jane", "Last Name": "Doe"})
    };
    assert!(post(lead("L-77")).await.is_success());
    // Three webhooks missing required fields (invalid records)...
    for id in ["L-78", "L-79", "L-80"] {
        assert_eq!(
            post(json!({"Lead ID": id})).await,
            StatusCode::UNPROCESSABLE_ENTITY
        );
    }
    // ...and two ignored because receiving is off (a configuration problem).
    settings(&app, json!({"receive": false})).await;
    for id in ["L-81", "L-82"] {
        assert!(post(lead(id)).await.is_success());
    }

    let b = app.admin_browser().await;
    let page = b.get(MONITORING).await.expect(StatusCode::OK);
    assert!(
        texts(&page.html, "nav.tabs a[aria-current=page]") == ["Monitoring"],
        "{}",
        page.html
    );
    let rows = texts(&page.html, "#issue-list tbody tr");
    assert_eq!(rows.len(), 2, "{rows:?}");
    let invalid = "#issue-list tr[data-kind=validation][data-direction=inbound]";
    assert_eq!(
        text(&page.html, &format!("{invalid} td[data-cell=count]")),
        "3"
    );
    let example = text(&page.html, &format!("{invalid} td[data-cell=example]"));
    assert!(
        example.contains("record L-80"),
        "the newest is the example: {example}"
    );
    let newest_error = app
        .get("/api/v1/integrations/lawruler/sync-log?outcome=error&limit=1")
        .await
        .body;
    let message = newest_error["data"][0]["message"].as_str().unwrap();
    assert!(example.contains(message), "{example} / {message}");
    assert!(text(&page.html, invalid).contains("Open"));
    assert!(
        text(&page.html, invalid).contains("webhook setup"),
        "a fix hint"
    );
    let ignored = "#issue-list tr[data-kind=configuration][data-direction=inbound]";
    assert_eq!(
        text(&page.html, &format!("{ignored} td[data-cell=count]")),
        "2"
    );
    assert!(text(&page.html, &format!("{ignored} td[data-cell=example]")).contains("webhook"));
    assert!(text(&page.html, ignored).contains("Open"));
    assert!(text(&page.html, ignored).contains("will not pass by waiting"));
    // First and last seen are times in the company's zone, UTC in the attribute.
    assert_eq!(
        texts(&page.html, &format!("{invalid} time[datetime]")).len(),
        2
    );

    // The counts are the sync log's and the API's.
    for (cell, direction, outcome, expected) in [
        ("inbound-ok", "inbound", "ok", 1),
        ("inbound-error", "inbound", "error", 3),
        ("inbound-skipped", "inbound", "skipped", 2),
    ] {
        assert_eq!(
            api_log_count(&app, "lawruler", direction, outcome).await,
            expected,
            "{cell}"
        );
        for period in ["hour", "day", "connect"] {
            assert_eq!(count(&page.html, period, cell), expected, "{period} {cell}");
        }
    }
    let view = app.get("/api/v1/integrations/lawruler").await.body;
    assert_eq!(
        text(&page.html, "#records-received"),
        view["sync"]["records_received"].to_string()
    );
    assert_eq!(
        text(&page.html, "#op-counts [data-state=failed]"),
        format!("{} failed", view["sync"]["operations_failed"])
    );
    // The records by what the sync did: the API's measured counters, on the page.
    let measured = app
        .get("/api/v1/integrations/lawruler/monitoring")
        .await
        .body;
    for (cell, key, expected) in [
        ("created", "created", 1),
        ("failed", "failed", 3),
        ("skipped", "skipped", 2),
    ] {
        assert_eq!(
            measured["last_hour"]["inbound"][key], expected,
            "{measured}"
        );
        for period in ["hour", "day", "connect"] {
            let shown: u64 = text(
                &page.html,
                &format!("#record-counts tr[data-period=\"{period}\"] td[data-count=\"{cell}\"]"),
            )
            .parse()
            .unwrap();
            assert_eq!(shown, expected, "{period} {cell}");
        }
    }

    // Receiving again: the next webhook is applied, and both kinds are resolved.
    settings(&app, json!({"receive": true})).await;
    assert!(post(lead("L-83")).await.is_success());
    let page = b.get(MONITORING).await.expect(StatusCode::OK);
    assert!(
        text(&page.html, invalid).contains("Resolved"),
        "{}",
        text(&page.html, invalid)
    );
    assert!(text(&page.html, ignored).contains("Resolved"));
    assert_eq!(
        text(&page.html, &format!("{invalid} td[data-cell=count]")),
        "3",
        "history is kept"
    );

    // Two hours later (a new session: the old one timed out), the last hour is empty; the
    // day still counts them.
    app.advance(Duration::from_secs(2 * 3600));
    let b = app.admin_browser().await;
    let page = b.get(MONITORING).await.expect(StatusCode::OK);
    assert_eq!(count(&page.html, "hour", "inbound-error"), 0);
    assert_eq!(count(&page.html, "day", "inbound-error"), 3);
    assert_eq!(count(&page.html, "day", "inbound-ok"), 2);

    // Another company's admin sees none of it.
    let other = other_admin(&app).await;
    let page = other.get(MONITORING).await.expect(StatusCode::OK);
    assert!(
        texts(&page.html, "#issue-list tbody tr").is_empty(),
        "{}",
        page.html
    );
    assert_eq!(count(&page.html, "day", "inbound-error"), 0);
}
casebridge_testkit::backend_test!(problems_are_grouped_by_kind_with_counts_examples_and_resolution);

async fn failed_operations_are_retried_and_dismissed_from_the_page(
    backend: casebridge_testkit::TestBackend,
) {
    let lr = LawRulerSim::new().start().await;
    let app = TestApp::start(backend).await;
    app.call(
        Method::PUT,
        "/api/v1/integrations/lawruler/connection",
        Some(json!({
            "username": "demo", "password": "demo-password", "client_root": lr.base_url,
            "client_secret": "demo-secret", "key": "demo-key"})),
    )
    .await
    .expect(StatusCode::OK);
    let ct = app
        .create("/api/v1/case-types", json!({"name": "Auto"}))
        .await;
    // Two cases linked to leads Law Ruler does not have (yet): their notes are refused.
    let late = "10003"; // the next Lead ID the simulator hands out
    let mut cases = Vec::new();
    for (name, lead) in [("Late Lead", late), ("Nobody", "99999")] {
        cases.push(
            app.create(
                "/api/v1/cases",
                json!({"name": name, "case_type_id": ct,
                "external_refs": [{"provider": "lawruler", "external_id": lead}]}),
            )
            .await,
        );
    }
    settings(
        &app,
        json!({"enable_integration": true, "receive": true, "send": true, "send_messages": true}),
    )
    .await;
    for case in &cases {
        app.post(
            "/api/v1/messages",
            json!({"case_id": case, "channel": "sms", "direction": "outbound",
                "from": "+15550001000", "to": "+15550102000", "body": "hello?"}),
        )
        .await
        .expect(StatusCode::CREATED);
    }
    let worker = app.crm_worker(0);
    worker.drain().await.expect("drain");
    let failed = app
        .get("/api/v1/integrations/lawruler/operations?state=failed")
        .await
        .body;
    let id_of = |lead: &str| {
        failed["data"]
            .as_array()
            .unwrap()
            .iter()
            .find(|o| o["record_id"] == lead)
            .unwrap_or_else(|| panic!("{failed}"))["id"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    let (retry_id, dismiss_id) = (id_of(late), id_of("99999"));

    let b = app.admin_browser().await;
    let page = b.get(MONITORING).await.expect(StatusCode::OK);
    let rows = texts(&page.html, "#failed-ops tbody tr");
    assert_eq!(rows.len(), 2, "{rows:?}");
    let reason = text(
        &page.html,
        &format!("#failed-ops tr[data-op=\"{retry_id}\"] td[data-cell=reason]"),
    );
    assert!(reason.contains("Lead 10003 not found"), "{reason}");
    let view = app.get("/api/v1/integrations/lawruler").await.body;
    assert_eq!(view["sync"]["operations_failed"], 2, "{view}");
    assert_eq!(
        text(&page.html, "#op-counts [data-state=failed]"),
        "2 failed"
    );
    // The refusals are one problem of one kind, sent.
    let refused = "#issue-list tr[data-kind=validation][data-direction=outbound]";
    assert_eq!(
        text(&page.html, &format!("{refused} td[data-cell=count]")),
        "2"
    );
    assert!(text(&page.html, &format!("{refused} td[data-cell=example]")).contains("not found"));
    let csrf = page.csrf();

    // Without the CSRF token nothing happens.
    let r = b
        .post(
            &format!("/ui/integrations/lawruler/operations/{retry_id}/retry"),
            &[],
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    // Another company's admin cannot act on this company's operations.
    let other = other_admin(&app).await;
    let theirs = other.get(MONITORING).await.expect(StatusCode::OK);
    assert!(
        texts(&theirs.html, "#failed-ops tbody tr").is_empty(),
        "{}",
        theirs.html
    );
    assert_eq!(
        text(&theirs.html, "#op-counts [data-state=failed]"),
        "0 failed"
    );
    let other_csrf = theirs.csrf();
    for action in ["retry", "dismiss"] {
        let r = other
            .post(
                &format!("/ui/integrations/lawruler/operations/{retry_id}/{action}"),
                &[("csrf", &other_csrf)],
            )
            .await;
        assert_eq!(r.status, StatusCode::NOT_FOUND, "{}", r.html);
    }
    assert_eq!(
        app.get("/api/v1/integrations/lawruler").await.body["sync"]["operations_failed"],
        2
    );

    // Retry: pending again, listed as pending.
    let r = b
        .post(
            &format!("/ui/integrations/lawruler/operations/{retry_id}/retry"),
            &[("csrf", &csrf)],
        )
        .await
        .expect(StatusCode::SEE_OTHER);
    assert!(r.location().unwrap().starts_with(MONITORING));
    let page = b.get(MONITORING).await.expect(StatusCode::OK);
    assert!(page.html.contains("is pending again"), "{}", page.html);
    assert_eq!(
        texts(
            &page.html,
            &format!("#pending-ops tr[data-op=\"{retry_id}\"]")
        )
        .len(),
        1
    );
    assert_eq!(texts(&page.html, "#failed-ops tbody tr").len(), 1);
    // A second click: the service's refusal, in words, where the list is.
    let r = b
        .post(
            &format!("/ui/integrations/lawruler/operations/{retry_id}/retry"),
            &[("csrf", &csrf)],
        )
        .await;
    assert_eq!(r.status, StatusCode::CONFLICT);
    let said = text(&r.html, "#settle-error");
    assert!(
        said.contains(&retry_id)
            && said.contains(
                "only a failed operation can be retried or dismissed; this one is pending"
            ),
        "{said}"
    );

    // The lead now exists in Law Ruler: the retried note goes through.
    let created = lr
        .sim
        .create_lead(NewLead::new("Late", "Lead", "12"))
        .unwrap();
    assert_eq!(created, late);
    worker.drain().await.expect("drain");
    assert_eq!(lr.sim.notes(late).len(), 1);
    let op = app
        .get("/api/v1/integrations/lawruler/operations?state=done")
        .await
        .body;
    assert!(
        op["data"]
            .as_array()
            .unwrap()
            .iter()
            .any(|o| o["id"] == retry_id.as_str()),
        "{op}"
    );

    // Dismiss the other: skipped, not sent.
    b.post(
        &format!("/ui/integrations/lawruler/operations/{dismiss_id}/dismiss"),
        &[("csrf", &csrf)],
    )
    .await
    .expect(StatusCode::SEE_OTHER);
    worker.drain().await.expect("drain");
    assert!(lr.sim.notes("99999").is_empty());
    let page = b.get(MONITORING).await.expect(StatusCode::OK);
    assert!(page.html.contains("was dismissed"), "{}", page.html);
    assert!(texts(&page.html, "#failed-ops tbody tr").is_empty());
    assert!(texts(&page.html, "#pending-ops tbody tr").is_empty());
    let view = app.get("/api/v1/integrations/lawruler").await.body;
    for state in ["done", "pending", "failed", "skipped", "held", "blocked"] {
        let word = if state == "done" { "sent" } else { state };
        assert_eq!(
            text(&page.html, &format!("#op-counts [data-state={state}]")),
            format!("{} {word}", view["sync"][format!("operations_{state}")]),
            "{state}"
        );
    }
    assert_eq!(view["sync"]["operations_skipped"], 1);
    assert_eq!(view["sync"]["operations_failed"], 0);
    let r = b
        .post(
            &format!("/ui/integrations/lawruler/operations/{dismiss_id}/retry"),
            &[("csrf", &csrf)],
        )
        .await;
    assert_eq!(r.status, StatusCode::CONFLICT);
    assert!(text(&r.html, "#settle-error").contains("this one is skipped"));
    // An operation id that does not exist is not found.
    let r = b
        .post(
            "/ui/integrations/lawruler/operations/nope/retry",
            &[("csrf", &csrf)],
        )
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    // The sent line after the refusals resolves them (same operation, newer, ok).
    let refused_row = text(&page.html, refused);
    assert!(refused_row.contains("Resolved"), "{refused_row}");
    for (cell, direction, outcome) in [
        ("outbound-ok", "outbound", "ok"),
        ("outbound-error", "outbound", "error"),
        ("outbound-skipped", "outbound", "skipped"),
    ] {
        assert_eq!(
            count(&page.html, "day", cell),
            api_log_count(&app, "lawruler", direction, outcome).await,
            "{cell}"
        );
    }
}
casebridge_testkit::backend_test!(failed_operations_are_retried_and_dismissed_from_the_page);

async fn smartadvocate_names_the_denied_permission_and_shows_its_sending_toggles(
    backend: casebridge_testkit::TestBackend,
) {
    let sa = SmartAdvocateSim::new().start().await;
    let app = TestApp::start(backend).await;
    let b = app.admin_browser().await;
    let config = "/ui/integrations/smartadvocate";
    let page = b.get(config).await.expect(StatusCode::OK);
    let csrf = page.csrf();
    // SmartAdvocate sends (push is built), so its toggles are there and no "not available".
    assert!(!texts(&page.html, "#toggles").is_empty(), "{}", page.html);
    assert!(
        texts(&page.html, "#sync-unavailable").is_empty(),
        "{}",
        page.html
    );
    assert!(texts(&page.html, "#permissions li")
        .iter()
        .all(|l| l.contains("not checked yet")));

    // The API user may not insert notes: the failing check is named next to the form.
    sa.sim.deny(Operation::InsertNote);
    let form = [
        ("csrf", csrf.as_str()),
        ("base_url", sa.base_url.as_str()),
        ("username", DEMO_USERNAME),
        ("password", DEMO_PASSWORD),
    ];
    let r = b.post(&format!("{config}/connect"), &form).await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.html);
    assert!(
        text(&r.html, "#username-error").contains("lacks permission for insert note"),
        "{}",
        r.html
    );
    let denied = texts(&r.html, "#permissions li[data-state=denied]");
    assert_eq!(denied.len(), 1, "{denied:?}");
    assert!(
        denied[0].contains("insert note") && denied[0].contains("denied"),
        "{denied:?}"
    );
    assert_eq!(
        texts(&r.html, "#permissions li[data-state=passed]").len(),
        4,
        "{}",
        r.html
    );
    assert_eq!(
        app.get("/api/v1/integrations/smartadvocate").await.body["status"],
        "not_connected"
    );

    // Granted: connected, every check passed then.
    sa.sim.clear_faults();
    b.post(&format!("{config}/connect"), &form)
        .await
        .expect(StatusCode::SEE_OTHER);
    let page = b.get(config).await.expect(StatusCode::OK);
    assert_eq!(
        texts(&page.html, "#permissions li[data-state=passed_at_connect]").len(),
        5,
        "{}",
        page.html
    );
    assert!(page.html.contains("renewed automatically"));
    assert!(!text(&page.html, "#next-step").contains("not available for SmartAdvocate"));
    let cards = b.get("/ui/integrations").await.expect(StatusCode::OK);
    assert!(
        !cards.html.contains("not available for SmartAdvocate"),
        "{}",
        cards.html
    );

    // Its Monitoring tab counts what happened, with nothing invented.
    let mon = b
        .get("/ui/integrations/smartadvocate/monitoring")
        .await
        .expect(StatusCode::OK);
    assert!(texts(&mon.html, "#sync-unavailable").is_empty());
    assert_eq!(text(&mon.html, "#records-received"), "0");

    // The status types found, second statuses among them, on the Mappings tab.
    b.post(&format!("{config}/refresh"), &[("csrf", &csrf)])
        .await
        .expect(StatusCode::SEE_OTHER);
    app.create("/api/v1/case-statuses", json!({"name": "Ready to call"}))
        .await;
    let mappings = b
        .get(&format!("{config}/mappings"))
        .await
        .expect(StatusCode::OK);
    let types = texts(&mappings.html, "#status-types [data-status-type]");
    assert!(types.iter().any(|t| t.starts_with("Status (")), "{types:?}");
    assert!(
        types.iter().any(|t| t.starts_with("Dialer Status (")),
        "{types:?}"
    );
    assert!(mappings.html.contains("Dialer Status = To Dial"));
}
casebridge_testkit::backend_test!(
    smartadvocate_names_the_denied_permission_and_shows_its_sending_toggles
);
