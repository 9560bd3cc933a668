//! Connecting Law Ruler and its CRM mappings, against the Law Ruler simulator, on both backends.

use casebridge_sim::lawruler::{FaultsPatch, LawRulerSim, WebhookFormat};
use casebridge_testkit::TestApp;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

fn values(root: &str) -> Value {
    json!({"username": "demo", "password": "demo-password", "client_root": root,
           "client_secret": "demo-secret", "key": "demo-key"})
}

#[must_use]
async fn connect_to(app: &TestApp, provider: &str, body: Value) -> casebridge_testkit::Reply {
    app.call(
        Method::PUT,
        &format!("/api/v1/integrations/{provider}/connection"),
        Some(body),
    )
    .await
}

#[must_use]
async fn connect(app: &TestApp, body: Value) -> casebridge_testkit::Reply {
    connect_to(app, "lawruler", body).await
}

async fn the_checklist_asks_only_for_the_case_types_records_came_with(
    backend: casebridge_testkit::TestBackend,
) {
    let lr = LawRulerSim::new().start().await;
    let app = TestApp::start(backend).await;
    let r = connect(&app, values(&lr.base_url)).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    app.post("/api/v1/integrations/lawruler/fields/refresh", json!({}))
        .await
        .expect(StatusCode::OK);
    let types = lr.sim.case_types();
    assert!(
        types.len() >= 2,
        "the simulator's catalog has several case types"
    );
    app.call(
        Method::PUT,
        "/api/v1/integrations/lawruler/settings",
        Some(json!({"enable_integration": true, "receive": true})),
    )
    .await
    .expect(StatusCode::OK);
    let view = app
        .get("/api/v1/integrations/lawruler")
        .await
        .expect(StatusCode::OK)
        .body;
    assert_eq!(
        view["checklist"]["case_types_linked"], false,
        "nothing used nor linked: {view}"
    );
    let hook = view["webhook_url"]
        .as_str()
        .unwrap()
        .split_once("/hooks/")
        .map(|(_, t)| format!("/hooks/{t}"))
        .unwrap();

    // A lead of the first case type arrives (and links it); the others, never used, do not
    // hold the item open.
    let r = app.http.post(app.url(&hook)).json(&json!({
            "Lead ID": "5001", "Case Type ID": types[0].id, "Case Type": types[0].name,
            "Status ID": "7", "Status": "Intake", "Full Name": "Jane Doe", "Created Date": "2026-11-01",
            "Primary Contact ID": "PC-1", "First Name": "Jane", "Last Name": "Doe"}))
            .send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK, "{}", r.text().await.unwrap());
    let view = app.get("/api/v1/integrations/lawruler").await.body;
    assert_eq!(view["checklist"]["case_types_linked"], true, "{view}");
    let links = app
        .get("/api/v1/integrations/lawruler/case-type-links")
        .await
        .body;
    let unlinked = links
        .as_array()
        .unwrap()
        .iter()
        .filter(|l| l["case_type_id"].is_null())
        .count();
    assert_eq!(
        unlinked,
        types.len() - 1,
        "the unused case types stay unlinked: {links}"
    );

    // Unlinking the used case type opens the item again; linking an unused one does not close it.
    let ct = app
        .create("/api/v1/case-types", json!({"name": "Other"}))
        .await;
    app.call(
        Method::PUT,
        "/api/v1/integrations/lawruler/case-type-links",
        Some(
            json!({"links": [{"crm_case_type_id": types[0].id, "case_type_id": null},
                                  {"crm_case_type_id": types[1].id, "case_type_id": ct}]}),
        ),
    )
    .await
    .expect(StatusCode::OK);
    let view = app.get("/api/v1/integrations/lawruler").await.body;
    assert_eq!(view["checklist"]["case_types_linked"], false, "{view}");
    // A refresh of the catalog keeps what was used.
    app.post("/api/v1/integrations/lawruler/fields/refresh", json!({}))
        .await
        .expect(StatusCode::OK);
    app.call(
        Method::PUT,
        "/api/v1/integrations/lawruler/case-type-links",
        Some(json!({"links": [{"crm_case_type_id": types[0].id, "case_type_id": ct}]})),
    )
    .await
    .expect(StatusCode::OK);
    let view = app.get("/api/v1/integrations/lawruler").await.body;
    assert_eq!(view["checklist"]["case_types_linked"], true, "{view}");
}
casebridge_testkit::backend_test!(the_checklist_asks_only_for_the_case_types_records_came_with);

async fn connect_names_the_wrong_value_and_stores_nothing(
    backend: casebridge_testkit::TestBackend,
) {
    let lr = LawRulerSim::new().start().await;
    let app = TestApp::start(backend).await;
    let good = values(&lr.base_url);
    for (field, wrong) in [
        ("username", "nobody"),
        ("password", "guess"),
        ("client_secret", "nope"),
        ("key", "bad-key"),
        ("client_root", "http://127.0.0.1:9"),
    ] {
        let mut body = good.clone();
        body[field] = json!(wrong);
        let r = connect(&app, body).await;
        assert_eq!(
            r.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{field}: {}",
            r.text
        );
        assert_eq!(
            r.body["error"]["details"][0]["field"], field,
            "{field}: {}",
            r.text
        );
        let view = app.get("/api/v1/integrations/lawruler").await.body;
        assert_eq!(view["status"], "not_connected", "{field}");
    }
    // A Client Root pointing at a private address is refused as such.
    let mut body = good.clone();
    body["client_root"] = json!("http://10.1.2.3");
    let r = connect(&app, body).await;
    assert!(
        r.body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("private"),
        "{}",
        r.text
    );
    let r = connect(
        &app,
        json!({"username": "", "password": "", "client_root": "", "client_secret": "", "key": ""}),
    )
    .await;
    assert_eq!(r.body["error"]["details"].as_array().unwrap().len(), 5);

    let r = connect(&app, good).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.body["status"], "connected");
    assert_eq!(r.body["checklist"]["connected"], true);
    // Secrets are masked everywhere they are shown.
    for text in [
        r.text.clone(),
        app.get("/api/v1/integrations/lawruler").await.text,
        app.get("/api/v1/integrations/lawruler/sync-log").await.text,
    ] {
        for secret in ["demo-password", "demo-secret", "demo-key"] {
            assert!(!text.contains(secret), "{secret} shown");
        }
    }
    assert!(r.body["webhook_url"]
        .as_str()
        .unwrap()
        .starts_with("https://casebridge.example.test/hooks/lawruler/"));
    let cards = app.get("/api/v1/integrations").await.body;
    let status: Vec<(&str, &str)> = cards
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["provider"].as_str().unwrap(),
                c["status"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        status,
        [
            ("lawruler", "connected"),
            ("smartadvocate", "not_connected"),
            ("scheduling", "not_connected")
        ]
    );

    // Disconnect keeps mappings; reconnect works.
    app.post("/api/v1/integrations/lawruler/fields/refresh", json!({}))
        .await
        .expect(StatusCode::OK);
    let ct = app
        .create("/api/v1/case-types", json!({"name": "MVA"}))
        .await;
    let crm_ct = lr.sim.case_types()[0].id.clone();
    app.call(
        Method::PUT,
        "/api/v1/integrations/lawruler/case-type-links",
        Some(json!({"links": [{"crm_case_type_id": crm_ct, "case_type_id": ct}]})),
    )
    .await
    .expect(StatusCode::OK);
    let r = app
        .call(
            Method::DELETE,
            "/api/v1/integrations/lawruler/connection",
            None,
        )
        .await;
    assert_eq!(r.body["status"], "not_connected");
    assert!(r.body["credentials"].is_null());
    let links = app
        .get("/api/v1/integrations/lawruler/case-type-links")
        .await
        .body;
    assert!(
        links
            .as_array()
            .unwrap()
            .iter()
            .any(|l| l["case_type_id"] == ct.as_str()),
        "{links}"
    );
}
casebridge_testkit::backend_test!(connect_names_the_wrong_value_and_stores_nothing);

async fn catalog_refresh_preview_links_and_mappings(backend: casebridge_testkit::TestBackend) {
    let lr = LawRulerSim::new().start().await;
    let app = TestApp::start(backend).await;
    // Without a connection, there is nothing to load.
    let r = app
        .post("/api/v1/integrations/lawruler/fields/refresh", json!({}))
        .await;
    assert_eq!(r.status, StatusCode::CONFLICT);
    connect(&app, values(&lr.base_url))
        .await
        .expect(StatusCode::OK);
    let r = app
        .post("/api/v1/integrations/lawruler/fields/refresh", json!({}))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let crm_types = lr.sim.case_types();
    assert_eq!(
        r.body["case_types"].as_u64().unwrap() as usize,
        crm_types.len()
    );

    // The case types and statuses with their Law Ruler ids, by name, for mapping.
    let catalog = app.get("/api/v1/integrations/lawruler/catalog").await;
    assert_eq!(catalog.status, StatusCode::OK, "{}", catalog.text);
    let listed = |key: &str| -> Vec<(String, String)> {
        catalog.body[key]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| {
                (
                    i["name"].as_str().unwrap().to_owned(),
                    i["crm_id"].as_str().unwrap().to_owned(),
                )
            })
            .collect()
    };
    let mut want: Vec<_> = crm_types
        .iter()
        .map(|t| (t.name.clone(), t.id.clone()))
        .collect();
    want.sort();
    assert_eq!(listed("case_types"), want);
    let mut want: Vec<_> = lr
        .sim
        .statuses()
        .iter()
        .map(|t| (t.name.clone(), t.id.clone()))
        .collect();
    want.sort();
    assert_eq!(listed("statuses"), want);
    assert!(catalog.body["refreshed_at"].is_string() && catalog.body["error"].is_null());
    // Law Ruler has one status list: no status is a second status.
    assert!(catalog.body["statuses"]
        .as_array()
        .unwrap()
        .iter()
        .all(|s| s["status_type"].is_null()));

    // Field preview for one case type: key, input type, form section.
    let crm_ct = crm_types[0].id.clone();
    let preview = app
        .get(&format!(
            "/api/v1/integrations/lawruler/fields?crm_case_type_id={crm_ct}"
        ))
        .await
        .body;
    let sim_fields = lr.sim.custom_fields(&crm_ct);
    assert_eq!(
        preview["fields"].as_array().unwrap().len(),
        sim_fields.len()
    );
    let first = &preview["fields"][0];
    assert!(first["key"].as_str().unwrap().starts_with("custom"));
    assert!(first["input_type"].is_string() && first["form_section"].is_string());

    // Unlinked case types are "not ready".
    let links = app
        .get("/api/v1/integrations/lawruler/case-type-links")
        .await
        .body;
    assert!(links
        .as_array()
        .unwrap()
        .iter()
        .all(|l| l["ready"] == false));
    assert!(links[0]["reason"].as_str().unwrap().contains("not ready"));
    let ct = app
        .create("/api/v1/case-types", json!({"name": "MVA"}))
        .await;
    let r = app
        .call(
            Method::PUT,
            "/api/v1/integrations/lawruler/case-type-links",
            Some(json!({"links": [{"crm_case_type_id": crm_ct, "case_type_id": ct}]})),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let linked = r
        .body
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["crm_case_type_id"] == crm_ct.as_str())
        .unwrap()
        .clone();
    assert_eq!(linked["ready"], true);
    let r = app
        .call(
            Method::PUT,
            "/api/v1/integrations/lawruler/case-type-links",
            Some(json!({"links": [{"crm_case_type_id": "does-not-exist", "case_type_id": ct}]})),
        )
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);

    // Field and status mappings.
    let key = first["key"].as_str().unwrap().to_owned();
    let body = json!({"crm_case_type_id": crm_ct, "mappings": [{"platform_field": "custom.injury_date", "crm_field_key": key}]});
    let r = app
        .call(
            Method::PUT,
            "/api/v1/integrations/lawruler/field-mappings",
            Some(body),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let r = app.call(Method::PUT, "/api/v1/integrations/lawruler/field-mappings",
            Some(json!({"crm_case_type_id": crm_ct, "mappings": [{"platform_field": "case.secret", "crm_field_key": "custom0"}]}))).await;
    let fields: Vec<&str> = r.body["error"]["details"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["field"].as_str().unwrap())
        .collect();
    assert_eq!(fields, ["mappings[0].platform_field"]);
    let status = app
        .create("/api/v1/case-statuses", json!({"name": "Intake"}))
        .await;
    let crm_status = lr.sim.statuses()[0].id.clone();
    let r = app
        .call(
            Method::PUT,
            "/api/v1/integrations/lawruler/status-mappings",
            Some(json!({"mappings": [{"case_status_id": status, "crm_status_id": crm_status}]})),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    // One Law Ruler status per platform status, and each Law Ruler status once: the offending
    // entry is named and nothing changes.
    let other_status = app
        .create("/api/v1/case-statuses", json!({"name": "Signed"}))
        .await;
    let crm_other = lr.sim.statuses()[1].id.clone();
    for (mappings, message) in [
        (
            json!([{"case_status_id": status, "crm_status_id": crm_status},
                   {"case_status_id": status, "crm_status_id": crm_other}]),
            "platform status \"Intake\" is already mapped by mappings[0]; a platform status maps \
             to one Law Ruler status",
        ),
        (
            json!([{"case_status_id": status, "crm_status_id": crm_status},
                   {"case_status_id": other_status, "crm_status_id": crm_status}]),
            "is already mapped by mappings[0]; each Law Ruler status maps from one platform status",
        ),
    ] {
        let r = app
            .call(
                Method::PUT,
                "/api/v1/integrations/lawruler/status-mappings",
                Some(json!({ "mappings": mappings })),
            )
            .await;
        assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.text);
        let d = &r.body["error"]["details"];
        assert_eq!(d.as_array().unwrap().len(), 1, "{}", r.text);
        assert_eq!(d[0]["field"], "mappings[1]", "{}", r.text);
        assert!(
            d[0]["message"].as_str().unwrap().contains(message),
            "{}",
            r.text
        );
    }

    // Refreshing again keeps every mapping.
    let r = app
        .post("/api/v1/integrations/lawruler/fields/refresh", json!({}))
        .await;
    assert_eq!(r.status, StatusCode::OK);
    let fm = app
        .get(&format!(
            "/api/v1/integrations/lawruler/field-mappings?crm_case_type_id={crm_ct}"
        ))
        .await
        .body;
    assert_eq!(fm["mappings"][0]["crm_field_key"], key.as_str());
    let sm = app
        .get("/api/v1/integrations/lawruler/status-mappings")
        .await
        .body;
    assert_eq!(sm["mappings"].as_array().unwrap().len(), 1);
    let links = app
        .get("/api/v1/integrations/lawruler/case-type-links")
        .await
        .body;
    assert!(links
        .as_array()
        .unwrap()
        .iter()
        .any(|l| l["case_type_id"] == ct.as_str()));

    // A CRM that fails to load its fields is an error the admin sees, not an empty list.
    lr.sim.patch_faults(FaultsPatch {
        fail_fields: Some(true),
        ..Default::default()
    });
    let r = app
        .post("/api/v1/integrations/lawruler/fields/refresh", json!({}))
        .await;
    assert_eq!(r.status, StatusCode::BAD_GATEWAY, "{}", r.text);
    assert!(r.body["error"]["message"]
        .as_str()
        .unwrap()
        .contains("could not load fields"));
    let preview = app
        .get(&format!(
            "/api/v1/integrations/lawruler/fields?crm_case_type_id={crm_ct}"
        ))
        .await
        .body;
    assert!(preview["error"]
        .as_str()
        .unwrap()
        .contains("could not load fields"));
    assert_eq!(
        preview["fields"].as_array().unwrap().len(),
        sim_fields.len(),
        "the last good load stays"
    );
    let view = app.get("/api/v1/integrations/lawruler").await.body;
    assert!(view["catalog_error"].is_string());
}
casebridge_testkit::backend_test!(catalog_refresh_preview_links_and_mappings);

async fn the_simulator_s_status_webhook_is_applied(backend: casebridge_testkit::TestBackend) {
    let lr = LawRulerSim::new().start().await;
    let app = TestApp::start(backend).await;
    connect(&app, values(&lr.base_url))
        .await
        .expect(StatusCode::OK);
    app.call(
        Method::PUT,
        "/api/v1/integrations/lawruler/settings",
        Some(json!({"enable_integration": true, "receive": true})),
    )
    .await
    .expect(StatusCode::OK);
    let hook = app.get("/api/v1/integrations/lawruler").await.body["webhook_url"]
        .as_str()
        .unwrap()
        .split_once("/hooks/")
        .map(|(_, r)| app.url(&format!("/hooks/{r}")))
        .unwrap();
    let lead = lr.sim.leads()[0].clone();
    let statuses = lr.sim.statuses();
    // The status a case shows: its platform status's name, and Law Ruler's own label.
    let case_status = async |case: &Value| {
        let named = app
            .get(&format!(
                "/api/v1/case-statuses/{}",
                case["case_status_id"].as_str().unwrap()
            ))
            .await
            .expect(StatusCode::OK)
            .body;
        (
            named["name"].clone(),
            case["custom_fields"]["lawruler_status"].clone(),
        )
    };
    // JSON creates the case with the new status; form moves it to another one.
    for (format, status) in [
        (WebhookFormat::Json, &statuses[1].name),
        (WebhookFormat::Form, &statuses[2].name),
    ] {
        let sent = lr
            .sim
            .send_status_webhook(&lead.lead_id, status, &hook, format, &[])
            .await
            .unwrap();
        assert_eq!(sent.status, Some(200), "{format:?}: {sent:?}");
        let answer: Value = serde_json::from_str(sent.response_body.as_deref().unwrap()).unwrap();
        assert_eq!(answer["status"], "applied", "{format:?}: {answer}");
        assert_eq!(
            answer["case_created"],
            format == WebhookFormat::Json,
            "{format:?}: {answer}"
        );
        let case = app
            .get(&format!(
                "/api/v1/cases/by-external-ref?provider=lawruler&external_id={}",
                lead.lead_id
            ))
            .await
            .expect(StatusCode::OK)
            .body;
        assert_eq!(case["id"], answer["case_id"], "{case}");
        assert_eq!(
            case_status(&case).await,
            (json!(status), json!(status)),
            "{format:?}: {case}"
        );
    }
    // Multipart too: the simulator names its parts RFC 2231 style (`name*=utf-8''Lead%20ID`),
    // as Law Ruler's sender does, and the webhook moves the case to a third status.
    let status = &statuses[3].name;
    let sent = lr
        .sim
        .send_status_webhook(&lead.lead_id, status, &hook, WebhookFormat::Multipart, &[])
        .await
        .unwrap();
    assert_eq!(sent.status, Some(200), "multipart: {sent:?}");
    let answer: Value = serde_json::from_str(sent.response_body.as_deref().unwrap()).unwrap();
    assert_eq!(
        (answer["status"].as_str(), answer["case_created"].as_bool()),
        (Some("applied"), Some(false)),
        "{answer}"
    );
    let case = app
        .get(&format!(
            "/api/v1/cases/by-external-ref?provider=lawruler&external_id={}",
            lead.lead_id
        ))
        .await
        .expect(StatusCode::OK)
        .body;
    assert_eq!(case["id"], answer["case_id"], "{case}");
    assert_eq!(
        case_status(&case).await,
        (json!(status), json!(status)),
        "multipart: {case}"
    );
    // The same webhook again is recognised, and answers with the case it matched.
    let sent = lr
        .sim
        .send_status_webhook(&lead.lead_id, status, &hook, WebhookFormat::Multipart, &[])
        .await
        .unwrap();
    let again: Value = serde_json::from_str(sent.response_body.as_deref().unwrap()).unwrap();
    assert_eq!(
        (again["status"].as_str(), &again["case_id"]),
        (Some("duplicate"), &case["id"]),
        "{again}"
    );
    let cases = app.get("/api/v1/cases").await.expect(StatusCode::OK).body;
    assert_eq!(cases["data"].as_array().unwrap().len(), 1, "{cases}");
}
casebridge_testkit::backend_test!(the_simulator_s_status_webhook_is_applied);

async fn integration_routes_are_served_for_every_provider_and_unknown_ones_are_not_found(
    backend: casebridge_testkit::TestBackend,
) {
    let app = TestApp::start(backend).await;
    // An unknown provider is a 404 on every generic route, with the envelope.
    for (method, path) in [
        (Method::GET, "/api/v1/integrations/nope"),
        (Method::PUT, "/api/v1/integrations/nope/settings"),
        (Method::GET, "/api/v1/integrations/nope/sync-log"),
        (Method::GET, "/api/v1/integrations/nope/import"),
    ] {
        let body = (method == Method::PUT).then(|| json!({}));
        let r = app.call(method, path, body).await;
        assert_eq!(r.status, StatusCode::NOT_FOUND, "{path}: {}", r.text);
        assert_eq!(r.body["error"]["code"], "not_found", "{path}: {}", r.text);
        assert!(
            r.body["error"]["message"]
                .as_str()
                .unwrap()
                .contains("`nope`"),
            "{path}: {}",
            r.text
        );
    }
    let r = TestApp::reply(
        app.http
            .post(app.url("/hooks/nope/some-token"))
            .json(&json!({}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND, "{}", r.text);

    // SmartAdvocate is served through its own connector: its setup view works, connecting
    // checks its own values, and its hook and import say what this version does not do
    // (tests/smartadvocate_connect.rs covers it against the simulator).
    let view = app.get("/api/v1/integrations/smartadvocate").await;
    assert_eq!(
        (view.status, view.body["status"].as_str()),
        (StatusCode::OK, Some("not_connected")),
        "{}",
        view.text
    );
    let r = connect_to(
        &app,
        "smartadvocate",
        json!({"username": "u", "password": "p"}),
    )
    .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.text);
    assert!(
        r.body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("base_url"),
        "{}",
        r.text
    );
    let token = view.body["webhook_url"]
        .as_str()
        .unwrap()
        .rsplit('/')
        .next()
        .unwrap()
        .to_owned();
    let r = TestApp::reply(
        app.http
            .post(app.url(&format!("/hooks/smartadvocate/{token}")))
            .json(&json!({}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(
        (r.status, r.body["status"].as_str()),
        (StatusCode::OK, Some("ignored")),
        "{}",
        r.text
    );
    let r = app
        .post(
            "/api/v1/integrations/smartadvocate/import",
            json!({"source": "smartadvocate_api"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CONFLICT, "{}", r.text);
    // The Law Ruler token does not open another provider's hook either.
    let lr_token = app.get("/api/v1/integrations/lawruler").await.body["webhook_url"]
        .as_str()
        .unwrap()
        .rsplit('/')
        .next()
        .unwrap()
        .to_owned();
    let r = TestApp::reply(
        app.http
            .post(app.url(&format!("/hooks/smartadvocate/{lr_token}")))
            .json(&json!({}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND, "{}", r.text);
}
casebridge_testkit::backend_test!(
    integration_routes_are_served_for_every_provider_and_unknown_ones_are_not_found
);
