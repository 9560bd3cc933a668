//! The served OpenAPI document, checked against the routes it describes: every parameter is
//! where the route reads it, operation ids are unique (a generated client needs both), and every
//! operation documents the errors the layers in front of its handler can give.

use std::collections::{BTreeMap, BTreeSet};

use casebridge_testkit::TestApp;
use reqwest::StatusCode;
use serde_json::Value;

const METHODS: [&str; 5] = ["get", "put", "post", "patch", "delete"];

/// `{name}` segments of a path template.
fn template_names(path: &str) -> BTreeSet<String> {
    path.split('/')
        .filter_map(|seg| seg.strip_prefix('{')?.strip_suffix('}'))
        .map(str::to_owned)
        .collect()
}

fn operations(doc: &Value) -> Vec<(String, String, &Value)> {
    let mut out = Vec::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for m in METHODS {
            if let Some(op) = item.get(m) {
                out.push((path.clone(), m.to_owned(), op));
            }
        }
    }
    out
}

async fn the_document_matches_the_routes(backend: casebridge_testkit::TestBackend) {
    let app = TestApp::start(backend).await;
    let r = TestApp::reply(
        app.http
            .get(app.url("/api/v1/openapi.json"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK);
    let doc = r.body;
    let ops = operations(&doc);
    assert!(ops.len() > 60, "{} operations", ops.len());

    let mut ids: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (path, method, op) in &ops {
        let at = format!("{} {path}", method.to_uppercase());
        let params = op["parameters"].as_array().cloned().unwrap_or_default();
        let in_path: BTreeSet<String> = params
            .iter()
            .filter(|p| p["in"] == "path")
            .map(|p| p["name"].as_str().unwrap().to_owned())
            .collect();
        // A path parameter is exactly a `{name}` of the route, and required.
        assert_eq!(in_path, template_names(path), "{at}: path parameters");
        for p in &params {
            let name = p["name"].as_str().unwrap();
            match p["in"].as_str() {
                Some("path") => assert_eq!(p["required"], true, "{at}: {name}"),
                Some("query") => assert!(!template_names(path).contains(name), "{at}: {name}"),
                other => panic!("{at}: {name} is in {other:?}"),
            }
        }
        let id = op["operationId"]
            .as_str()
            .unwrap_or_else(|| panic!("{at}: no operationId"));
        ids.entry(id.to_owned()).or_default().push(at.clone());

        // The errors of the layers before the handler.
        let responses = op["responses"].as_object().unwrap();
        let secured = op["security"].as_array().is_some_and(|s| !s.is_empty());
        let body = op.get("requestBody").is_some();
        let mut expected = vec!["400", "414", "500", "503"];
        if secured {
            expected.push("401")
        }
        if body {
            expected.extend(["413", "415", "422"])
        }
        for status in expected {
            let resp = responses
                .get(status)
                .unwrap_or_else(|| panic!("{at}: no {status}"));
            assert!(
                resp["content"]["application/json"]["schema"]["$ref"]
                    .as_str()
                    .is_some_and(|r| r.ends_with("ErrorBody")),
                "{at}: {status}: {resp}"
            );
        }
        assert!(
            responses["503"]["headers"].get("Retry-After").is_some(),
            "{at}"
        );
    }
    let duplicated: Vec<_> = ids.iter().filter(|(_, at)| at.len() > 1).collect();
    assert!(
        duplicated.is_empty(),
        "duplicate operationIds: {duplicated:?}"
    );

    // Query parameters are where the routes read them: a listed one is accepted in the query.
    let list = &doc["paths"]["/api/v1/clients"]["get"]["parameters"];
    let names: BTreeSet<&str> = list
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["in"] == "query")
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert!(
        names.contains("limit") && names.contains("cursor"),
        "{list}"
    );
    assert_eq!(
        app.get("/api/v1/clients?limit=1").await.status,
        StatusCode::OK
    );
    // The inbound webhook documents its three body formats.
    let hook = &doc["paths"]["/hooks/{provider}/{token}"]["post"]["requestBody"]["content"];
    for ct in [
        "application/json",
        "application/x-www-form-urlencoded",
        "multipart/form-data",
    ] {
        assert!(hook.get(ct).is_some(), "{hook}");
    }
    // The error envelope's schema says `details` is always there.
    let detail = &doc["components"]["schemas"]["ErrorDetail"];
    let required: Vec<&str> = detail["required"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert!(required.contains(&"details"), "{detail}");
}
casebridge_testkit::backend_test!(the_document_matches_the_routes);
