//! The CRM Mappings and Sync log tabs, against the Law Ruler simulator, on both backends.

use casebridge_sim::lawruler::{FaultsPatch, LawRulerSim, RunningSim};
use casebridge_testkit::TestApp;
use reqwest::{Method, StatusCode};
use scraper::{Html, Selector};
use serde_json::json;

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

async fn connected(app: &TestApp, lr: &RunningSim) {
    app.call(
        Method::PUT,
        "/api/v1/integrations/lawruler/connection",
        Some(json!({
        "username": "demo", "password": "demo-password", "client_root": lr.base_url,
        "client_secret": "demo-secret", "key": "demo-key"})),
    )
    .await
    .expect(StatusCode::OK);
}

async fn refresh_link_map_fields_and_statuses_from_the_mappings_tab(
    backend: casebridge_testkit::TestBackend,
) {
    let lr = LawRulerSim::new().start().await;
    let app = TestApp::start(backend).await;
    let b = app.admin_browser().await;
    // Before connecting, the tab says what to do.
    let page = b
        .get("/ui/integrations/lawruler/mappings")
        .await
        .expect(StatusCode::OK);
    assert!(
        page.html
            .contains("connect Law Ruler, then refresh the CRM fields"),
        "{}",
        page.html
    );
    let csrf = page.csrf();
    let r = b
        .post("/ui/integrations/lawruler/refresh", &[("csrf", &csrf)])
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(r.html.contains("connect Law Ruler first"), "{}", r.html);

    connected(&app, &lr).await;
    let r = b
        .post("/ui/integrations/lawruler/refresh", &[("csrf", &csrf)])
        .await
        .expect(StatusCode::SEE_OTHER);
    assert!(r
        .location()
        .unwrap()
        .starts_with("/ui/integrations/lawruler/mappings"));
    let page = b
        .get("/ui/integrations/lawruler/mappings")
        .await
        .expect(StatusCode::OK);
    let crm_types = lr.sim.case_types();
    assert!(
        page.html
            .contains(&format!("Loaded {} case type(s)", crm_types.len())),
        "{}",
        page.html
    );
    // Every CRM case type is listed, unlinked ones "Not ready".
    let states = texts(&page.html, "#links tbody td .badge");
    assert_eq!(states.len(), crm_types.len());
    assert!(states.iter().all(|s| s == "Not ready"), "{states:?}");

    // Link the first one.
    let ct = app
        .create("/api/v1/case-types", json!({"name": "MVA"}))
        .await;
    let crm_ct = crm_types[0].id.clone();
    let field = format!("link.{crm_ct}");
    b.post(
        "/ui/integrations/lawruler/links",
        &[("csrf", &csrf), (&field, &ct)],
    )
    .await
    .expect(StatusCode::SEE_OTHER);
    let links = app
        .get("/api/v1/integrations/lawruler/case-type-links")
        .await
        .expect(StatusCode::OK)
        .body;
    let linked = links
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["crm_case_type_id"] == crm_ct.as_str())
        .unwrap();
    assert_eq!(linked["case_type_id"], ct.as_str());
    let page = b
        .get("/ui/integrations/lawruler/mappings")
        .await
        .expect(StatusCode::OK);
    assert!(
        page.html.contains("still not linked (not ready)") || crm_types.len() == 1,
        "{}",
        page.html
    );
    assert_eq!(texts(&page.html, "#links tbody td .badge.ok").len(), 1);
    // A case type id that does not exist is refused in place; nothing changes.
    let r = b
        .post(
            "/ui/integrations/lawruler/links",
            &[("csrf", &csrf), (&field, "ct_nope")],
        )
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        texts(&r.html, "#links .form-error")[0].contains("no case type with id ct_nope"),
        "{}",
        r.html
    );
    let links = app
        .get("/api/v1/integrations/lawruler/case-type-links")
        .await
        .expect(StatusCode::OK)
        .body;
    assert!(
        links
            .as_array()
            .unwrap()
            .iter()
            .any(|l| l["case_type_id"] == ct.as_str()),
        "unchanged"
    );

    // Map a field of that case type to a custom platform field.
    let page = b
        .get(&format!(
            "/ui/integrations/lawruler/mappings?case_type={crm_ct}"
        ))
        .await
        .expect(StatusCode::OK);
    let sim_fields = lr.sim.custom_fields(&crm_ct);
    assert_eq!(
        texts(&page.html, "#fields tbody tr").len(),
        sim_fields.len()
    );
    let key = {
        let preview = app
            .get(&format!(
                "/api/v1/integrations/lawruler/fields?crm_case_type_id={crm_ct}"
            ))
            .await
            .body;
        preview["fields"][0]["key"].as_str().unwrap().to_owned()
    };
    let (map, custom) = (format!("map.{key}"), format!("custom.{key}"));
    let rule = format!("rule.{key}");
    b.post(
        "/ui/integrations/lawruler/fields",
        &[
            ("csrf", &csrf),
            ("case_type", &crm_ct),
            (&map, "custom"),
            (&custom, "injury_date"),
            (&rule, "always_crm"),
        ],
    )
    .await
    .expect(StatusCode::SEE_OTHER);
    let fm = app
        .get(&format!(
            "/api/v1/integrations/lawruler/field-mappings?crm_case_type_id={crm_ct}"
        ))
        .await
        .body;
    assert_eq!(fm["mappings"][0]["platform_field"], "custom.injury_date");
    assert_eq!(fm["mappings"][0]["crm_field_key"], key.as_str());
    assert_eq!(
        fm["mappings"][0]["rule"], "always_crm",
        "the sync rule chosen"
    );
    let page = b
        .get(&format!(
            "/ui/integrations/lawruler/mappings?case_type={crm_ct}"
        ))
        .await
        .expect(StatusCode::OK);
    assert!(
        page.html.contains(r#"value="injury_date""#),
        "the saved mapping is shown"
    );
    assert!(
        page.html
            .contains(r#"<option value="always_crm" selected>Always use CRM</option>"#),
        "the saved rule is selected"
    );

    // Status mapping; then refreshing keeps every mapping.
    let status = app
        .create("/api/v1/case-statuses", json!({"name": "Intake"}))
        .await;
    let crm_status = lr.sim.statuses()[0].id.clone();
    let sfield = format!("status.{status}");
    b.post(
        "/ui/integrations/lawruler/statuses",
        &[("csrf", &csrf), (&sfield, &crm_status)],
    )
    .await
    .expect(StatusCode::SEE_OTHER);
    b.post("/ui/integrations/lawruler/refresh", &[("csrf", &csrf)])
        .await
        .expect(StatusCode::SEE_OTHER);
    let sm = app
        .get("/api/v1/integrations/lawruler/status-mappings")
        .await
        .body;
    assert_eq!(sm["mappings"][0]["crm_status_id"], crm_status.as_str());
    let fm = app
        .get(&format!(
            "/api/v1/integrations/lawruler/field-mappings?crm_case_type_id={crm_ct}"
        ))
        .await
        .body;
    assert_eq!(fm["mappings"].as_array().unwrap().len(), 1);

    // A load failure is shown, with the previous lists kept.
    lr.sim.patch_faults(FaultsPatch {
        fail_fields: Some(true),
        ..Default::default()
    });
    let r = b
        .post("/ui/integrations/lawruler/refresh", &[("csrf", &csrf)])
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    let page = b
        .get("/ui/integrations/lawruler/mappings")
        .await
        .expect(StatusCode::OK);
    assert!(page.html.contains("The last load failed"), "{}", page.html);
    assert_eq!(texts(&page.html, "#links tbody tr").len(), crm_types.len());

    // Status sync can now be turned on from the Configuration tab.
    let r = b
        .post(
            "/ui/integrations/lawruler/status-sync",
            &[("csrf", &csrf), ("enabled", "true")],
        )
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.html);
    let page = b
        .get("/ui/integrations/lawruler")
        .await
        .expect(StatusCode::OK);
    assert!(page.html.contains("Status sync is on."));
}
casebridge_testkit::backend_test!(refresh_link_map_fields_and_statuses_from_the_mappings_tab);

async fn the_sync_log_tab_lists_entries_and_filters_by_outcome(
    backend: casebridge_testkit::TestBackend,
) {
    let app = TestApp::start(backend).await;
    let hook = app
        .lawruler_connected_offline(app.company_id, &app.api_key)
        .await;
    let lead = json!({"Lead ID": "L-77", "Case Type ID": "12", "Case Type": "Auto Accident",
            "Status ID": "7", "Status": "Qualified", "Full Name": "Jane Doe", "Created Date": "2026-11-01",
            "Primary Contact ID": "PC-9", "First Name": "Jane", "Last Name": "Doe"});
    let r = app
        .http
        .post(app.url(&hook))
        .json(&lead)
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "{}", r.status());
    let r = app
        .http
        .post(app.url(&hook))
        .json(&json!({"Lead ID": "L-78"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let b = app.admin_browser().await;
    let page = b
        .get("/ui/integrations/lawruler/log")
        .await
        .expect(StatusCode::OK);
    let rows = texts(&page.html, "#sync-log tbody tr");
    assert!(
        rows.iter().any(|r| r.contains("L-77") && r.contains("ok")),
        "{rows:?}"
    );
    assert!(rows.iter().any(|r| r.contains("error")), "{rows:?}");
    let errors = b
        .get("/ui/integrations/lawruler/log?outcome=error")
        .await
        .expect(StatusCode::OK);
    let rows = texts(&errors.html, "#sync-log tbody tr");
    assert!(
        !rows.is_empty() && rows.iter().all(|r| r.contains("error")),
        "{rows:?}"
    );
    // A bad filter is an error page, not an empty list.
    let bad = b.get("/ui/integrations/lawruler/log?outcome=maybe").await;
    assert_eq!(bad.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(bad.html.contains("must be ok, skipped or error"));
}
casebridge_testkit::backend_test!(the_sync_log_tab_lists_entries_and_filters_by_outcome);

/// SmartAdvocate's Mappings tab: a menu per status type, so one platform status is mapped to a
/// primary status and to a value of a second-status type at once; a refused combination is
/// shown in place and changes nothing.
async fn a_smartadvocate_status_maps_to_a_primary_and_a_second_status_from_the_mappings_tab(
    backend: casebridge_testkit::TestBackend,
) {
    use casebridge_sim::smartadvocate::{SmartAdvocateSim, DEMO_PASSWORD, DEMO_USERNAME};
    let sa = SmartAdvocateSim::new().start().await;
    let app = TestApp::start(backend).await;
    app.call(
        Method::PUT,
        "/api/v1/integrations/smartadvocate/connection",
        Some(json!({"base_url": sa.base_url, "username": DEMO_USERNAME,
                    "password": DEMO_PASSWORD})),
    )
    .await
    .expect(StatusCode::OK);
    app.post(
        "/api/v1/integrations/smartadvocate/fields/refresh",
        json!({}),
    )
    .await
    .expect(StatusCode::OK);
    let signed = app
        .create("/api/v1/case-statuses", json!({"name": "Signed"}))
        .await;
    let b = app.admin_browser().await;
    let tab = "/ui/integrations/smartadvocate/mappings";
    let page = b.get(tab).await.expect(StatusCode::OK);
    let csrf = page.csrf();
    // One menu per status type: the primary status, then each second-status type.
    let heads = texts(&page.html, "#statuses thead th");
    assert_eq!(
        heads,
        [
            "Platform status",
            "SmartAdvocate status",
            "Dialer Status",
            "Last Dialer Disposition",
            "Campaign Status",
            "Attempts Status"
        ]
    );
    let field = format!("status.{signed}");
    let menus = Html::parse_document(&page.html)
        .select(&Selector::parse(&format!(r#"#statuses select[name="{field}"]"#)).unwrap())
        .count();
    assert_eq!(menus, 5);

    // Signed → "Signed Up" and "Dialer Status = Do not Dial" (the other menus left empty).
    let form = [
        ("csrf", csrf.as_str()),
        (&field, "2"),
        (&field, "10:103"),
        (&field, ""),
        (&field, ""),
        (&field, ""),
    ];
    let r = b
        .post("/ui/integrations/smartadvocate/statuses", &form)
        .await
        .expect(StatusCode::SEE_OTHER);
    assert!(r.location().unwrap().starts_with(tab));
    let sm = app
        .get("/api/v1/integrations/smartadvocate/status-mappings")
        .await
        .body;
    let mut mapped: Vec<&str> = sm["mappings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            assert_eq!(m["case_status_id"], signed.as_str());
            m["crm_status_id"].as_str().unwrap()
        })
        .collect();
    mapped.sort();
    assert_eq!(mapped, ["10:103", "2"], "{sm}");
    let page = b.get(tab).await.expect(StatusCode::OK);
    let selected = texts(&page.html, "#statuses option[selected]");
    assert_eq!(
        selected,
        ["Signed Up", "Dialer Status = Do not Dial"],
        "{}",
        page.html
    );

    // Two primary statuses for one platform status (a crafted form): refused in place.
    let form = [("csrf", csrf.as_str()), (&field, "2"), (&field, "3")];
    let r = b
        .post("/ui/integrations/smartadvocate/statuses", &form)
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.html);
    let alert = texts(&r.html, "#statuses [role=alert]").join(" ");
    assert!(
        alert.contains("already has a primary SmartAdvocate status"),
        "{alert}"
    );
    let sm = app
        .get("/api/v1/integrations/smartadvocate/status-mappings")
        .await
        .body;
    assert_eq!(sm["mappings"].as_array().unwrap().len(), 2, "{sm}");
}
casebridge_testkit::backend_test!(
    a_smartadvocate_status_maps_to_a_primary_and_a_second_status_from_the_mappings_tab
);
