//! Connecting Law Ruler and its CRM mappings, against the Law Ruler simulator, on both backends.

use casebridge_sim::lawruler::{FaultsPatch, LawRulerSim, WebhookFormat};
use casebridge_testkit::{backend_tests, TestApp};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

fn values(root: &str) -> Value {
    json!({"username": "demo", "password": "demo-password", "client_root": root,
           "client_secret": "demo-secret", "key": "demo-key"})
}

async fn connect(app: &TestApp, body: Value) -> casebridge_testkit::Reply {
    app.call(
        Method::PUT,
        "/api/v1/integrations/lawruler/connection",
        Some(body),
    )
    .await
}

backend_tests! {
    async fn connect_names_the_wrong_value_and_stores_nothing(backend) {
        let lr = LawRulerSim::new().start().await;
        let app = TestApp::start(backend).await;
        let good = values(&lr.base_url);
        for (field, wrong) in [("username", "nobody"), ("password", "guess"), ("client_secret", "nope"),
                               ("key", "bad-key"), ("client_root", "http://127.0.0.1:9")] {
            let mut body = good.clone();
            body[field] = json!(wrong);
            let r = connect(&app, body).await;
            assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{field}: {}", r.text);
            assert_eq!(r.body["error"]["details"][0]["field"], field, "{field}: {}", r.text);
            let view = app.get("/api/v1/integrations/lawruler").await.body;
            assert_eq!(view["status"], "not_connected", "{field}");
        }
        // A Client Root pointing at a private address is refused as such.
        let mut body = good.clone();
        body["client_root"] = json!("http://10.1.2.3");
        let r = connect(&app, body).await;
        assert!(r.body["error"]["message"].as_str().unwrap().contains("private"), "{}", r.text);
        let r = connect(&app, json!({"username": "", "password": "", "client_root": "", "client_secret": "", "key": ""})).await;
        assert_eq!(r.body["error"]["details"].as_array().unwrap().len(), 5);

        let r = connect(&app, good).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
        assert_eq!(r.body["status"], "connected");
        assert_eq!(r.body["checklist"]["connected"], true);
        // Secrets are masked everywhere they are shown.
        for text in [r.text.clone(), app.get("/api/v1/integrations/lawruler").await.text,
                     app.get("/api/v1/integrations/lawruler/sync-log").await.text] {
            for secret in ["demo-password", "demo-secret", "demo-key"] {
                assert!(!text.contains(secret), "{secret} shown");
            }
        }
        assert!(r.body["webhook_url"].as_str().unwrap().starts_with("https://casebridge.example.test/hooks/lawruler/"));
        let cards = app.get("/api/v1/integrations").await.body;
        let status: Vec<(&str, &str)> = cards.as_array().unwrap().iter()
            .map(|c| (c["provider"].as_str().unwrap(), c["status"].as_str().unwrap())).collect();
        assert_eq!(status, [("lawruler", "connected"), ("smartadvocate", "not_connected"), ("scheduling", "not_connected")]);

        // Disconnect keeps mappings; reconnect works.
        app.post("/api/v1/integrations/lawruler/fields/refresh", json!({})).await;
        let ct = app.create("/api/v1/case-types", json!({"name": "MVA"})).await;
        let crm_ct = lr.sim.case_types()[0].id.clone();
        app.call(Method::PUT, "/api/v1/integrations/lawruler/case-type-links",
            Some(json!({"links": [{"crm_case_type_id": crm_ct, "case_type_id": ct}]}))).await;
        let r = app.call(Method::DELETE, "/api/v1/integrations/lawruler/connection", None).await;
        assert_eq!(r.body["status"], "not_connected");
        assert!(r.body["credentials"].is_null());
        let links = app.get("/api/v1/integrations/lawruler/case-type-links").await.body;
        assert!(links.as_array().unwrap().iter().any(|l| l["case_type_id"] == ct.as_str()), "{links}");
    }

    async fn catalog_refresh_preview_links_and_mappings(backend) {
        let lr = LawRulerSim::new().start().await;
        let app = TestApp::start(backend).await;
        // Without a connection, there is nothing to load.
        let r = app.post("/api/v1/integrations/lawruler/fields/refresh", json!({})).await;
        assert_eq!(r.status, StatusCode::CONFLICT);
        connect(&app, values(&lr.base_url)).await;
        let r = app.post("/api/v1/integrations/lawruler/fields/refresh", json!({})).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
        let crm_types = lr.sim.case_types();
        assert_eq!(r.body["case_types"].as_u64().unwrap() as usize, crm_types.len());

        // The case types and statuses with their Law Ruler ids, by name, for mapping.
        let catalog = app.get("/api/v1/integrations/lawruler/catalog").await;
        assert_eq!(catalog.status, StatusCode::OK, "{}", catalog.text);
        let listed = |key: &str| -> Vec<(String, String)> {
            catalog.body[key].as_array().unwrap().iter()
                .map(|i| (i["name"].as_str().unwrap().to_owned(), i["crm_id"].as_str().unwrap().to_owned()))
                .collect()
        };
        let mut want: Vec<_> = crm_types.iter().map(|t| (t.name.clone(), t.id.clone())).collect();
        want.sort();
        assert_eq!(listed("case_types"), want);
        let mut want: Vec<_> = lr.sim.statuses().iter().map(|t| (t.name.clone(), t.id.clone())).collect();
        want.sort();
        assert_eq!(listed("statuses"), want);
        assert!(catalog.body["refreshed_at"].is_string() && catalog.body["error"].is_null());

        // Field preview for one case type: key, input type, form section.
        let crm_ct = crm_types[0].id.clone();
        let preview = app.get(&format!("/api/v1/integrations/lawruler/fields?crm_case_type_id={crm_ct}")).await.body;
        let sim_fields = lr.sim.custom_fields(&crm_ct);
        assert_eq!(preview["fields"].as_array().unwrap().len(), sim_fields.len());
        let first = &preview["fields"][0];
        assert!(first["key"].as_str().unwrap().starts_with("custom"));
        assert!(first["input_type"].is_string() && first["form_section"].is_string());

        // Unlinked case types are "not ready".
        let links = app.get("/api/v1/integrations/lawruler/case-type-links").await.body;
        assert!(links.as_array().unwrap().iter().all(|l| l["ready"] == false));
        assert!(links[0]["reason"].as_str().unwrap().contains("not ready"));
        let ct = app.create("/api/v1/case-types", json!({"name": "MVA"})).await;
        let r = app.call(Method::PUT, "/api/v1/integrations/lawruler/case-type-links",
            Some(json!({"links": [{"crm_case_type_id": crm_ct, "case_type_id": ct}]}))).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
        let linked = r.body.as_array().unwrap().iter().find(|l| l["crm_case_type_id"] == crm_ct.as_str()).unwrap().clone();
        assert_eq!(linked["ready"], true);
        let r = app.call(Method::PUT, "/api/v1/integrations/lawruler/case-type-links",
            Some(json!({"links": [{"crm_case_type_id": "does-not-exist", "case_type_id": ct}]}))).await;
        assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);

        // Field and status mappings.
        let key = first["key"].as_str().unwrap().to_owned();
        let body = json!({"crm_case_type_id": crm_ct, "mappings": [{"platform_field": "custom.injury_date", "crm_field_key": key}]});
        let r = app.call(Method::PUT, "/api/v1/integrations/lawruler/field-mappings", Some(body)).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
        let r = app.call(Method::PUT, "/api/v1/integrations/lawruler/field-mappings",
            Some(json!({"crm_case_type_id": crm_ct, "mappings": [{"platform_field": "case.secret", "crm_field_key": "custom0"}]}))).await;
        let fields: Vec<&str> = r.body["error"]["details"].as_array().unwrap().iter().map(|d| d["field"].as_str().unwrap()).collect();
        assert_eq!(fields, ["mappings[0].platform_field"]);
        let status = app.create("/api/v1/case-statuses", json!({"name": "Intake"})).await;
        let crm_status = lr.sim.statuses()[0].id.clone();
        let r = app.call(Method::PUT, "/api/v1/integrations/lawruler/status-mappings",
            Some(json!({"mappings": [{"case_status_id": status, "crm_status_id": crm_status}]}))).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);

        // Refreshing again keeps every mapping.
        let r = app.post("/api/v1/integrations/lawruler/fields/refresh", json!({})).await;
        assert_eq!(r.status, StatusCode::OK);
        let fm = app.get(&format!("/api/v1/integrations/lawruler/field-mappings?crm_case_type_id={crm_ct}")).await.body;
        assert_eq!(fm["mappings"][0]["crm_field_key"], key.as_str());
        let sm = app.get("/api/v1/integrations/lawruler/status-mappings").await.body;
        assert_eq!(sm["mappings"].as_array().unwrap().len(), 1);
        let links = app.get("/api/v1/integrations/lawruler/case-type-links").await.body;
        assert!(links.as_array().unwrap().iter().any(|l| l["case_type_id"] == ct.as_str()));

        // A CRM that fails to load its fields is an error the admin sees, not an empty list.
        lr.sim.patch_faults(FaultsPatch { fail_fields: Some(true), ..Default::default() });
        let r = app.post("/api/v1/integrations/lawruler/fields/refresh", json!({})).await;
        assert_eq!(r.status, StatusCode::BAD_GATEWAY, "{}", r.text);
        assert!(r.body["error"]["message"].as_str().unwrap().contains("could not load fields"));
        let preview = app.get(&format!("/api/v1/integrations/lawruler/fields?crm_case_type_id={crm_ct}")).await.body;
        assert!(preview["error"].as_str().unwrap().contains("could not load fields"));
        assert_eq!(preview["fields"].as_array().unwrap().len(), sim_fields.len(), "the last good load stays");
        let view = app.get("/api/v1/integrations/lawruler").await.body;
        assert!(view["catalog_error"].is_string());
    }

    async fn the_simulator_s_status_webhook_is_applied(backend) {
        let lr = LawRulerSim::new().start().await;
        let app = TestApp::start(backend).await;
        connect(&app, values(&lr.base_url)).await;
        app.call(Method::PUT, "/api/v1/integrations/lawruler/settings",
            Some(json!({"enable_integration": true, "receive": true}))).await;
        let hook = app.get("/api/v1/integrations/lawruler").await.body["webhook_url"].as_str().unwrap()
            .split_once("/hooks/").map(|(_, r)| app.url(&format!("/hooks/{r}"))).unwrap();
        let lead = lr.sim.leads()[0].clone();
        let status = lr.sim.statuses()[1].name.clone();
        // Each format is accepted: the first creates the case, the repeats find it unchanged.
        // (reqwest, like Law Ruler's sender, names multipart fields with spaces RFC 2231 style:
        // `name*=utf-8''Lead%20ID`.)
        let mut outcomes = Vec::new();
        for format in [WebhookFormat::Json, WebhookFormat::Form, WebhookFormat::Multipart] {
            let sent = lr.sim.send_status_webhook(&lead.lead_id, &status, &hook, format, &[]).await.unwrap();
            assert_eq!(sent.status, Some(200), "{format:?}: {:?}", sent.response_body);
            let answer: Value = serde_json::from_str(sent.response_body.as_deref().unwrap()).unwrap();
            outcomes.push((answer["status"].as_str().unwrap().to_owned(), answer["case_id"].clone()));
        }
        let case_id = outcomes[0].1.clone();
        assert!(case_id.is_string(), "{outcomes:?}");
        // The repeats are recognised, and answer with the case they matched.
        assert_eq!(outcomes, [("applied".to_owned(), case_id.clone()),
            ("duplicate".to_owned(), case_id.clone()), ("duplicate".to_owned(), case_id.clone())]);
        let case = app.get(&format!("/api/v1/cases/by-external-ref?provider=lawruler&external_id={}", lead.lead_id)).await;
        assert_eq!(case.status, StatusCode::OK, "{}", case.text);
        assert_eq!(case.body["id"], case_id);
        assert_eq!(app.get("/api/v1/cases").await.body["data"].as_array().unwrap().len(), 1);
    }
}
