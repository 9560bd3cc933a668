//! The REST API end to end, on a real port, on both backends.

use casebridge_api::HttpOptions;
use casebridge_testkit::{TestApp, TestOptions};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

async fn case_type(app: &TestApp, name: &str) -> String {
    app.create("/api/v1/case-types", json!({"name": name}))
        .await
}

fn ids(page: &Value) -> Vec<String> {
    page["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["id"].as_str().unwrap().to_owned())
        .collect()
}

fn error_code(body: &Value) -> &str {
    body["error"]["code"].as_str().unwrap_or("<none>")
}

/// RFC 3339 in UTC with exactly milliseconds: `2026-11-20T09:30:00.123Z`.
fn is_millisecond_utc(t: &str) -> bool {
    let b = t.as_bytes();
    t.len() == 24
        && t.ends_with('Z')
        && b[4] == b'-'
        && b[10] == b'T'
        && b[19] == b'.'
        && t[20..23].bytes().all(|c| c.is_ascii_digit())
        && t.parse::<jiff::Timestamp>().is_ok()
}

async fn every_time_in_a_response_has_millisecond_precision_in_utc(
    backend: casebridge_testkit::TestBackend,
) {
    let app = TestApp::start(backend).await;
    // The clock starts at the real time (sub-millisecond digits); half a millisecond more
    // makes the digits beyond the third non-zero whatever the start was.
    app.advance(std::time::Duration::from_micros(500));
    let ct = case_type(&app, "Auto").await;
    let client = app
        .create(
            "/api/v1/clients",
            json!({"first_name": "Ann", "last_name": "Lee"}),
        )
        .await;
    let case = app
        .create(
            "/api/v1/cases",
            json!({"name": "Lee v. Roe", "case_type_id": ct, "client_id": client}),
        )
        .await;
    let key = app
        .post("/api/v1/api-keys", json!({"name": "runtime"}))
        .await
        .expect(StatusCode::CREATED)
        .body;
    let revoked = app
        .delete(&format!("/api/v1/api-keys/{}", key["id"].as_str().unwrap()))
        .await
        .expect(StatusCode::OK)
        .body;
    let mut checked = 0;
    for (what, body, fields) in [
        (
            "case type",
            app.get(&format!("/api/v1/case-types/{ct}"))
                .await
                .expect(StatusCode::OK)
                .body,
            &["created_at", "updated_at"][..],
        ),
        (
            "client",
            app.get(&format!("/api/v1/clients/{client}"))
                .await
                .expect(StatusCode::OK)
                .body,
            &["created_at", "updated_at"][..],
        ),
        (
            "case",
            app.get(&format!("/api/v1/cases/{case}"))
                .await
                .expect(StatusCode::OK)
                .body,
            &["created_at", "updated_at"][..],
        ),
        (
            "cases page",
            app.get("/api/v1/cases").await.expect(StatusCode::OK).body["data"][0].clone(),
            &["created_at", "updated_at"][..],
        ),
        ("api key", key, &["created_at"][..]),
        ("revoked key", revoked, &["created_at", "revoked_at"][..]),
    ] {
        for f in fields {
            let t = body[*f]
                .as_str()
                .unwrap_or_else(|| panic!("{what} {f}: {body}"));
            assert!(is_millisecond_utc(t), "{what} {f}: {t}");
            checked += 1;
        }
    }
    assert_eq!(checked, 11);
}
casebridge_testkit::backend_test!(every_time_in_a_response_has_millisecond_precision_in_utc);

async fn company_can_be_read_and_changed(backend: casebridge_testkit::TestBackend) {
    let app = TestApp::start(backend).await;
    let r = app.get("/api/v1/company").await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.body["id"], app.company_id.to_string());
    assert_eq!(r.body["timezone"], "UTC");

    let r = app
        .patch(
            "/api/v1/company",
            json!({"timezone": "America/New_York", "name": "Doe & Roe"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.body["timezone"], "America/New_York");

    let r = app
        .patch("/api/v1/company", json!({"timezone": "Mars/Base"}))
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(r.body["error"]["details"][0]["field"], "timezone");
    assert_eq!(
        app.get("/api/v1/company").await.body["timezone"],
        "America/New_York"
    );
}
casebridge_testkit::backend_test!(company_can_be_read_and_changed);

async fn api_keys_are_shown_once_and_can_be_revoked(backend: casebridge_testkit::TestBackend) {
    let app = TestApp::start(backend).await;
    let r = app
        .post("/api/v1/api-keys", json!({"name": "voice runtime"}))
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    let key = r.body["key"].as_str().unwrap().to_owned();
    let id = r.body["id"].as_str().unwrap().to_owned();
    assert!(key.starts_with(r.body["prefix"].as_str().unwrap()));

    // The new key works; listing never shows a key.
    let listed = app
        .call_as(&key, Method::GET, "/api/v1/api-keys", None)
        .await;
    assert_eq!(listed.status, StatusCode::OK);
    assert_eq!(listed.body["data"].as_array().unwrap().len(), 2);
    assert!(!listed.text.contains(&key) && !listed.text.contains(&app.api_key));

    let r = app.delete(&format!("/api/v1/api-keys/{id}")).await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(r.body["revoked_at"].is_string());
    let r = app
        .call_as(&key, Method::GET, "/api/v1/company", None)
        .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
}
casebridge_testkit::backend_test!(api_keys_are_shown_once_and_can_be_revoked);

async fn named_resources_round_trip(backend: casebridge_testkit::TestBackend) {
    let app = TestApp::start(backend).await;
    for path in [
        "/api/v1/case-types",
        "/api/v1/case-statuses",
        "/api/v1/campaigns",
        "/api/v1/lists",
    ] {
        let id = app.create(path, json!({"name": "  First  "})).await;
        let r = app.get(&format!("{path}/{id}")).await;
        assert_eq!(
            (r.status, r.body["name"].as_str()),
            (StatusCode::OK, Some("First")),
            "{path}"
        );

        // Names are unique per company.
        let r = app.post(path, json!({"name": "First"})).await;
        assert_eq!(r.status, StatusCode::CONFLICT, "{path}: {}", r.text);
        assert_eq!(error_code(&r.body), "conflict");

        let r = app
            .patch(&format!("{path}/{id}"), json!({"name": "Renamed"}))
            .await;
        assert_eq!(r.body["name"], "Renamed", "{path}");
        assert_eq!(ids(&app.get(path).await.body), vec![id.clone()]);

        assert_eq!(
            app.delete(&format!("{path}/{id}")).await.status,
            StatusCode::NO_CONTENT
        );
        assert_eq!(
            app.get(&format!("{path}/{id}")).await.status,
            StatusCode::NOT_FOUND
        );
    }
}
casebridge_testkit::backend_test!(named_resources_round_trip);

async fn clients_round_trip_with_external_refs(backend: casebridge_testkit::TestBackend) {
    let app = TestApp::start(backend).await;
    let r = app.post("/api/v1/clients", json!({
            "first_name": "Jane", "last_name": "Doe", "email": "Jane@Example.com", "phone": "+1 (555) 010-2000",
            "external_refs": [{"provider": "lawruler", "external_id": "PC-9"}]
        })).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    let id = r.body["id"].as_str().unwrap().to_owned();

    let found = app
        .get("/api/v1/clients/by-external-ref?provider=lawruler&external_id=PC-9")
        .await;
    assert_eq!(found.body["id"], id.as_str());
    let by_email = app.get("/api/v1/clients?email=jane@example.com").await;
    assert_eq!(ids(&by_email.body), vec![id.clone()]);

    // PATCH: omitted fields stay, null clears, the client must keep a name.
    let r = app
        .patch(
            &format!("/api/v1/clients/{id}"),
            json!({"phone": null, "last_name": "Roe"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(
        (
            r.body["phone"].clone(),
            r.body["last_name"].clone(),
            r.body["email"].clone()
        ),
        (Value::Null, json!("Roe"), json!("Jane@Example.com"))
    );
    let r = app
        .patch(
            &format!("/api/v1/clients/{id}"),
            json!({"first_name": null, "last_name": null}),
        )
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);

    // A second client cannot take the same ref.
    let r = app
        .post(
            "/api/v1/clients",
            json!({"first_name": "X",
            "external_refs": [{"provider": "lawruler", "external_id": "PC-9"}]}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CONFLICT, "{}", r.text);
    assert_eq!(
        ids(&app.get("/api/v1/clients").await.body).len(),
        1,
        "nothing stored by the rejected request"
    );

    let r = app
        .post(
            &format!("/api/v1/clients/{id}/external-refs"),
            json!({"provider": "smartadvocate", "external_id": "77"}),
        )
        .await;
    assert_eq!(r.body["external_refs"].as_array().unwrap().len(), 2);
    assert_eq!(
        app.delete(&format!("/api/v1/clients/{id}")).await.status,
        StatusCode::NO_CONTENT
    );
    let r = app
        .get("/api/v1/clients/by-external-ref?provider=lawruler&external_id=PC-9")
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
}
casebridge_testkit::backend_test!(clients_round_trip_with_external_refs);

async fn cases_round_trip_with_refs_filters_and_custom_fields(
    backend: casebridge_testkit::TestBackend,
) {
    let app = TestApp::start(backend).await;
    let auto = case_type(&app, "Auto").await;
    let slip = case_type(&app, "Slip and fall").await;
    let status = app
        .create("/api/v1/case-statuses", json!({"name": "Intake"}))
        .await;
    let client = app
        .create("/api/v1/clients", json!({"first_name": "Jane"}))
        .await;

    let r = app.post("/api/v1/cases", json!({
            "name": "Doe v. Roe", "case_type_id": auto, "case_status_id": status, "client_id": client,
            "custom_fields": {"injury": "neck", "score": 7},
            "external_refs": [{"provider": "lawruler", "external_id": "1001"}]
        })).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    let case = r.body["id"].as_str().unwrap().to_owned();
    let other = app
        .create(
            "/api/v1/cases",
            json!({"name": "Other", "case_type_id": slip}),
        )
        .await;

    let found = app
        .get("/api/v1/cases/by-external-ref?provider=lawruler&external_id=1001")
        .await;
    assert_eq!(found.body["id"], case.as_str());
    assert_eq!(found.body["client_id"], client.as_str());
    assert_eq!(
        ids(&app
            .get(&format!("/api/v1/cases?case_type_id={slip}"))
            .await
            .body),
        vec![other.clone()]
    );
    assert_eq!(
        ids(&app
            .get(&format!("/api/v1/cases?client_id={client}"))
            .await
            .body),
        vec![case.clone()]
    );
    assert_eq!(
        ids(&app
            .get(&format!("/api/v1/cases?case_status_id={status}"))
            .await
            .body),
        vec![case.clone()]
    );

    // External refs are unique per company: 409, and nothing stored.
    let r = app
        .post(
            "/api/v1/cases",
            json!({"name": "Dup", "case_type_id": auto,
            "external_refs": [{"provider": "lawruler", "external_id": "1001"}]}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CONFLICT, "{}", r.text);
    assert!(r.body["error"]["message"]
        .as_str()
        .unwrap()
        .contains("lawruler/1001"));
    let r = app
        .post(
            &format!("/api/v1/cases/{other}/external-refs"),
            json!({"provider": "lawruler", "external_id": "1001"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CONFLICT);
    assert_eq!(ids(&app.get("/api/v1/cases").await.body).len(), 2);

    // PATCH merges custom fields, clears with null, checks references.
    let r = app
        .patch(
            &format!("/api/v1/cases/{case}"),
            json!({
                "custom_fields": {"injury": null, "score": 9, "venue": "Cook County"},
                "case_status_id": null
            }),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(
        r.body["custom_fields"],
        json!({"score": 9, "venue": "Cook County"})
    );
    assert_eq!(r.body["case_status_id"], Value::Null);
    let r = app
        .patch(
            &format!("/api/v1/cases/{case}"),
            json!({"client_id": "01a1feab-0000-7000-8000-000000000000"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(r.body["error"]["details"][0]["field"], "client_id");
    assert_eq!(
        app.get(&format!("/api/v1/cases/{case}")).await.body["client_id"],
        client.as_str()
    );

    // A case type in use cannot be deleted.
    assert_eq!(
        app.delete(&format!("/api/v1/case-types/{auto}"))
            .await
            .status,
        StatusCode::CONFLICT
    );
    assert_eq!(
        app.delete(&format!("/api/v1/cases/{case}")).await.status,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        app.get("/api/v1/cases/by-external-ref?provider=lawruler&external_id=1001")
            .await
            .status,
        StatusCode::NOT_FOUND
    );
}
casebridge_testkit::backend_test!(cases_round_trip_with_refs_filters_and_custom_fields);

async fn list_membership(backend: casebridge_testkit::TestBackend) {
    let app = TestApp::start(backend).await;
    let ct = case_type(&app, "Auto").await;
    let list = app
        .create("/api/v1/lists", json!({"name": "Hot leads"}))
        .await;
    let a = app
        .create("/api/v1/cases", json!({"name": "A", "case_type_id": ct}))
        .await;
    let b = app
        .create("/api/v1/cases", json!({"name": "B", "case_type_id": ct}))
        .await;
    let path = format!("/api/v1/lists/{list}/cases");
    assert_eq!(
        app.post(&path, json!({"case_id": a})).await.status,
        StatusCode::CREATED
    );
    assert_eq!(
        app.post(&path, json!({"case_id": a})).await.status,
        StatusCode::OK,
        "adding twice is a no-op"
    );
    assert_eq!(
        app.post(&path, json!({"case_id": b})).await.status,
        StatusCode::CREATED
    );
    assert_eq!(ids(&app.get(&path).await.body), vec![a.clone(), b.clone()]);
    assert_eq!(
        app.delete(&format!("{path}/{a}")).await.status,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        app.delete(&format!("{path}/{a}")).await.status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(ids(&app.get(&path).await.body), vec![b.clone()]);
    let r = app
        .post(
            &path,
            json!({"case_id": "01a1feab-0000-7000-8000-000000000000"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    // Deleting a case takes it off its lists.
    app.delete(&format!("/api/v1/cases/{b}"))
        .await
        .expect(StatusCode::NO_CONTENT);
    assert!(ids(&app.get(&path).await.body).is_empty());
}
casebridge_testkit::backend_test!(list_membership);

async fn pagination_with_cursor_and_limit(backend: casebridge_testkit::TestBackend) {
    let app = TestApp::start(backend).await;
    let mut made = Vec::new();
    for i in 0..5 {
        made.push(
            app.create(
                "/api/v1/campaigns",
                json!({"name": format!("Campaign {i}")}),
            )
            .await,
        );
    }
    let mut seen = Vec::new();
    let mut path = "/api/v1/campaigns?limit=2".to_owned();
    let mut pages = 0;
    loop {
        let r = app.get(&path).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
        pages += 1;
        seen.extend(ids(&r.body));
        match r.body["next_cursor"].as_str() {
            Some(c) => path = format!("/api/v1/campaigns?limit=2&cursor={c}"),
            None => break,
        }
    }
    assert_eq!((seen, pages), (made, 3));

    for bad in ["?limit=0", "?limit=1000", "?cursor=garbage", "?limit=abc"] {
        let r = app.get(&format!("/api/v1/campaigns{bad}")).await;
        assert_eq!(
            r.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{bad}: {}",
            r.text
        );
    }
}
casebridge_testkit::backend_test!(pagination_with_cursor_and_limit);

async fn another_company_can_neither_read_nor_change(backend: casebridge_testkit::TestBackend) {
    let app = TestApp::start(backend).await;
    let ct = case_type(&app, "Auto").await;
    let list = app.create("/api/v1/lists", json!({"name": "A list"})).await;
    let client = app
        .create(
            "/api/v1/clients",
            json!({"first_name": "A",
            "external_refs": [{"provider": "lawruler", "external_id": "C1"}]}),
        )
        .await;
    let case = app
        .create(
            "/api/v1/cases",
            json!({"name": "A case", "case_type_id": ct, "client_id": client,
            "external_refs": [{"provider": "lawruler", "external_id": "L1"}]}),
        )
        .await;
    app.post(
        &format!("/api/v1/lists/{list}/cases"),
        json!({"case_id": case}),
    )
    .await
    .expect(StatusCode::CREATED);

    let (_, b) = app.new_company("Firm B").await;
    let as_b = |m: Method, p: String, body: Option<Value>| {
        let b = b.clone();
        let app = &app;
        async move { app.call_as(&b, m, &p, body).await }
    };
    // Reads: 404, not 403, so B cannot even learn that the ids exist.
    for p in [
        format!("/api/v1/cases/{case}"),
        format!("/api/v1/clients/{client}"),
        format!("/api/v1/case-types/{ct}"),
        format!("/api/v1/lists/{list}"),
        format!("/api/v1/lists/{list}/cases"),
        "/api/v1/cases/by-external-ref?provider=lawruler&external_id=L1".to_owned(),
        "/api/v1/clients/by-external-ref?provider=lawruler&external_id=C1".to_owned(),
    ] {
        let r = as_b(Method::GET, p.clone(), None).await;
        assert_eq!(r.status, StatusCode::NOT_FOUND, "GET {p}");
    }
    for p in [
        "/api/v1/cases",
        "/api/v1/clients",
        "/api/v1/case-types",
        "/api/v1/lists",
    ] {
        let r = as_b(Method::GET, p.to_owned(), None).await;
        assert!(ids(&r.body).is_empty(), "{p} leaks");
    }
    // Writes: 404 and nothing changes.
    let r = as_b(
        Method::PATCH,
        format!("/api/v1/cases/{case}"),
        Some(json!({"name": "hijacked"})),
    )
    .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    let r = as_b(
        Method::PATCH,
        format!("/api/v1/case-types/{ct}"),
        Some(json!({"name": "hijacked"})),
    )
    .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    for p in [
        format!("/api/v1/cases/{case}"),
        format!("/api/v1/clients/{client}"),
        format!("/api/v1/lists/{list}/cases/{case}"),
        format!("/api/v1/case-types/{ct}"),
    ] {
        assert_eq!(
            as_b(Method::DELETE, p.clone(), None).await.status,
            StatusCode::NOT_FOUND,
            "DELETE {p}"
        );
    }
    let r = as_b(
        Method::POST,
        format!("/api/v1/cases/{case}/external-refs"),
        Some(json!({"provider": "x", "external_id": "1"})),
    )
    .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    // B cannot point its records at A's.
    let r = as_b(
        Method::POST,
        "/api/v1/cases".into(),
        Some(json!({"name": "B", "case_type_id": ct})),
    )
    .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    let b_list = app
        .call_as(
            &b,
            Method::POST,
            "/api/v1/lists",
            Some(json!({"name": "B list"})),
        )
        .await
        .body["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let r = as_b(
        Method::POST,
        format!("/api/v1/lists/{b_list}/cases"),
        Some(json!({"case_id": case})),
    )
    .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    // B may use the same external ids for its own records.
    let b_ct = app
        .call_as(
            &b,
            Method::POST,
            "/api/v1/case-types",
            Some(json!({"name": "Auto"})),
        )
        .await
        .body["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let r = as_b(
        Method::POST,
        "/api/v1/cases".into(),
        Some(json!({"name": "B case", "case_type_id": b_ct,
            "external_refs": [{"provider": "lawruler", "external_id": "L1"}]})),
    )
    .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);

    // A's records are untouched.
    let r = app.get(&format!("/api/v1/cases/{case}")).await;
    assert_eq!(
        (r.body["name"].as_str(), r.body["client_id"].as_str()),
        (Some("A case"), Some(client.as_str()))
    );
    assert_eq!(
        app.get(&format!("/api/v1/case-types/{ct}")).await.body["name"],
        "Auto"
    );
    assert_eq!(
        ids(&app.get(&format!("/api/v1/lists/{list}/cases")).await.body),
        vec![case.clone()]
    );
    let r = app
        .get("/api/v1/cases/by-external-ref?provider=lawruler&external_id=L1")
        .await;
    assert_eq!(r.body["id"], case.as_str());
}
casebridge_testkit::backend_test!(another_company_can_neither_read_nor_change);

async fn bad_input_gets_a_clear_error_and_stores_nothing(backend: casebridge_testkit::TestBackend) {
    let app = TestApp::start_with(
        backend,
        TestOptions {
            http: HttpOptions {
                body_limit_bytes: 16 * 1024,
            },
            ..TestOptions::default()
        },
    )
    .await;
    let ct = case_type(&app, "Auto").await;
    let send_raw = |body: String, content_type: Option<&'static str>| {
        let mut req = app
            .http
            .post(app.url("/api/v1/cases"))
            .bearer_auth(&app.api_key)
            .body(body);
        if let Some(ct) = content_type {
            req = req.header("content-type", ct);
        }
        async move { TestApp::reply(req.send().await.unwrap()).await }
    };
    let json_ct = Some("application/json");

    let r = send_raw("{\"name\": ".into(), json_ct).await;
    assert_eq!(
        (r.status, error_code(&r.body)),
        (StatusCode::BAD_REQUEST, "malformed_json"),
        "{}",
        r.text
    );

    let r = send_raw(json!({"name": 5, "case_type_id": ct}).to_string(), json_ct).await;
    assert_eq!(
        (r.status, error_code(&r.body)),
        (StatusCode::UNPROCESSABLE_ENTITY, "validation_failed")
    );
    assert_eq!(r.body["error"]["details"][0]["field"], "name", "{}", r.text);

    let r = send_raw(
        json!({"name": "x", "case_type_id": ct, "typo_field": 1}).to_string(),
        json_ct,
    )
    .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(r.text.contains("typo_field"));

    let r = send_raw(
        json!({"name": "x", "case_type_id": "01a1feab-0000-7000-8000-000000000000"}).to_string(),
        json_ct,
    )
    .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(r.body["error"]["details"][0]["field"], "case_type_id");
    assert!(r.body["error"]["message"]
        .as_str()
        .unwrap()
        .contains("no case type"));

    let r = send_raw(
        json!({"name": "", "case_type_id": "not-an-id", "custom_fields": [1]}).to_string(),
        json_ct,
    )
    .await;
    let fields: Vec<&str> = r.body["error"]["details"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["field"].as_str().unwrap())
        .collect();
    assert_eq!(
        fields,
        ["name", "case_type_id", "custom_fields"],
        "every bad field is reported"
    );

    let big =
        json!({"name": "x", "case_type_id": ct, "custom_fields": {"blob": "a".repeat(20 * 1024)}});
    let r = send_raw(big.to_string(), json_ct).await;
    assert_eq!(
        (r.status, error_code(&r.body)),
        (StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large")
    );

    let r = send_raw(json!({"name": "x", "case_type_id": ct}).to_string(), None).await;
    assert_eq!(r.status, StatusCode::UNSUPPORTED_MEDIA_TYPE);

    // Authentication failures.
    let r = TestApp::reply(app.http.get(app.url("/api/v1/cases")).send().await.unwrap()).await;
    assert_eq!(
        (r.status, error_code(&r.body)),
        (StatusCode::UNAUTHORIZED, "unauthorized")
    );
    let r = app
        .call_as("cbk_not-a-real-key", Method::GET, "/api/v1/cases", None)
        .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    let r = TestApp::reply(
        app.http
            .get(app.url("/api/v1/cases"))
            .header("authorization", format!("Basic {}", app.api_key))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    let r = app
        .call_as(
            "",
            Method::POST,
            "/api/v1/case-types",
            Some(json!({"name": "sneaky"})),
        )
        .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);

    // Nothing was stored by any of them.
    assert!(ids(&app.get("/api/v1/cases").await.body).is_empty());
    assert_eq!(ids(&app.get("/api/v1/case-types").await.body), vec![ct]);

    // Unknown routes and ids answer in the same format.
    let r = app.get("/api/v1/nope").await;
    assert_eq!(
        (r.status, error_code(&r.body)),
        (StatusCode::NOT_FOUND, "not_found")
    );
    let r = app.get("/api/v1/cases/not-an-id").await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
}
casebridge_testkit::backend_test!(bad_input_gets_a_clear_error_and_stores_nothing);

async fn health_readiness_metrics_and_openapi(backend: casebridge_testkit::TestBackend) {
    let app = TestApp::start(backend).await;
    let r = TestApp::reply(app.http.get(app.url("/healthz")).send().await.unwrap()).await;
    assert_eq!(r.status, StatusCode::OK);
    let r = TestApp::reply(app.http.get(app.url("/readyz")).send().await.unwrap()).await;
    assert_eq!(
        (r.status, r.body["status"].as_str()),
        (StatusCode::OK, Some("ready"))
    );
    app.get("/api/v1/cases").await.expect(StatusCode::OK);
    let r = TestApp::reply(app.http.get(app.url("/metrics")).send().await.unwrap()).await;
    assert!(
        r.text.contains(
            "casebridge_http_requests_total{method=\"GET\",route=\"/api/v1/cases\",status=\"200\"}"
        ),
        "{}",
        r.text
    );

    let r = TestApp::reply(
        app.http
            .get(app.url("/api/v1/openapi.json"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK);
    let paths = r.body["paths"].as_object().unwrap();
    for p in [
        "/api/v1/cases",
        "/api/v1/cases/{id}",
        "/api/v1/cases/by-external-ref",
        "/api/v1/clients",
        "/api/v1/case-types",
        "/api/v1/case-statuses",
        "/api/v1/lists/{id}/cases",
        "/api/v1/campaigns",
        "/api/v1/company",
        "/api/v1/api-keys",
    ] {
        assert!(
            paths.contains_key(p),
            "{p} missing from the OpenAPI document"
        );
    }
    assert_eq!(
        r.body["components"]["securitySchemes"]["bearer"]["scheme"],
        "bearer"
    );
    assert!(r.body["components"]["schemas"]["CaseOut"].is_object());

    // Readiness reports a database that went away.
    app.db.store.close().await;
    let r = TestApp::reply(app.http.get(app.url("/readyz")).send().await.unwrap()).await;
    assert_eq!(
        (r.status, error_code(&r.body)),
        (StatusCode::SERVICE_UNAVAILABLE, "unavailable")
    );
}
casebridge_testkit::backend_test!(health_readiness_metrics_and_openapi);

async fn every_id_route_answers_another_company_404_and_changes_nothing(
    backend: casebridge_testkit::TestBackend,
) {
    // Table-driven over the OpenAPI document: every path with an id and every method on it,
    // called with another company's key and this company's ids.
    let app = TestApp::start(backend).await;
    let ct = case_type(&app, "Auto").await;
    let client = app
        .create("/api/v1/clients", json!({"first_name": "A"}))
        .await;
    let case = app
        .create(
            "/api/v1/cases",
            json!({"name": "A case", "case_type_id": ct, "client_id": client}),
        )
        .await;
    let call = app
        .create(
            "/api/v1/calls",
            json!({"case_id": case, "direction": "outbound"}),
        )
        .await;
    let mut ids: std::collections::HashMap<&str, String> = [
            ("case-types", ct),
            ("case-statuses", app.create("/api/v1/case-statuses", json!({"name": "Intake"})).await),
            ("campaigns", app.create("/api/v1/campaigns", json!({"name": "Fall"})).await),
            ("lists", app.create("/api/v1/lists", json!({"name": "A list"})).await),
            ("clients", client),
            ("messages", app.create("/api/v1/messages", json!({"case_id": case, "channel": "sms",
                "direction": "outbound", "from": "+15550001000", "to": "+15550102000", "body": "Hi"})).await),
            ("tasks", app.create("/api/v1/tasks", json!({"case_id": case, "kind": "task", "title": "Call back"})).await),
            ("webhooks", app.create("/api/v1/webhooks", json!({"name": "Consumer", "url": "http://127.0.0.1:9/hook"})).await),
            ("calls", call),
            ("cases", case),
        ].into_iter().collect();
    ids.insert(
        "transfers",
        app.create(
            &format!("/api/v1/calls/{}/transfers", ids["calls"]),
            json!({"to_number": "555-0100"}),
        )
        .await,
    );
    let doc = TestApp::reply(
        app.http
            .get(app.url("/api/v1/openapi.json"))
            .send()
            .await
            .unwrap(),
    )
    .await
    .expect(StatusCode::OK)
    .body;
    // A concrete path: each `{…}` after a collection is that collection's record of this
    // company (`{case_id}` a case); ids of kinds not made here are fresh.
    let concrete = |template: &str| -> String {
        let mut out = Vec::new();
        let mut prev = "";
        for seg in template.split('/') {
            let part = match seg.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
                Some("case_id") => ids["cases"].clone(),
                Some(_) => ids
                    .get(prev)
                    .cloned()
                    .unwrap_or_else(|| "01a1feab-0000-7000-8000-000000000000".into()),
                None => seg.to_owned(),
            };
            prev = seg;
            out.push(part);
        }
        out.join("/")
    };
    // A body with the fields each route requires, so that validation does not answer before
    // the ownership check. Uploads are not JSON: `lawruler_outbound.rs` checks
    // another company's recording and document uploads.
    let when = "2026-03-02T09:30:00Z";
    let valid = |method: &Method, template: &str| -> Option<Value> {
        let route = template.trim_start_matches("/api/v1");
        Some(match (method.as_str(), route) {
            ("GET" | "DELETE", _) => return None,
            ("POST", "/calls/{id}/analysis") => {
                json!({"summary": "Hijacked", "post_call_result": "Hijacked"})
            }
            ("POST", "/calls/{id}/transcript") => {
                json!({"turns": [{"speaker": "agent", "text": "Hijacked"}]})
            }
            ("POST", "/calls/{id}/transfers") => json!({"to_number": "555-0100"}),
            ("POST", "/campaigns/{id}/webhooks") => {
                json!({"name": "Hijack", "url": "http://127.0.0.1:9/x"})
            }
            ("POST", "/cases/{id}/external-refs" | "/clients/{id}/external-refs") => {
                json!({"provider": "x", "external_id": "1"})
            }
            ("POST", "/lists/{id}/auto-add-rules") => json!({"status": "Signed"}),
            ("POST", "/lists/{id}/cases") => json!({"case_id": ids["cases"]}),
            ("POST", "/tasks/{id}/submit") => json!({"answers": {}}),
            ("POST", "/webhooks/{id}/recover") => json!({"since": "2026-01-01T00:00:00Z"}),
            ("POST", "/agents/{id}/bookings") => {
                json!({"start": when, "attendee": {"name": "Jane", "email": "jane@example.com"}})
            }
            ("PATCH", "/clients/{id}") => json!({"first_name": "Hijacked"}),
            ("PATCH", _) => json!({"name": "Hijacked"}),
            _ => json!({}),
        })
    };
    let uploads = [
        "/api/v1/calls/{id}/recording",
        "/api/v1/cases/{id}/documents",
    ];
    let routes: Vec<(Method, String, Option<Value>)> = doc["paths"]
        .as_object()
        .unwrap()
        .iter()
        .filter(|(path, _)| {
            path.contains('{') && !path.contains("{provider}") && !path.contains("{token}")
        })
        .flat_map(|(path, ops)| {
            ops.as_object()
                .unwrap()
                .keys()
                .filter_map(|m| {
                    let method = m.to_uppercase().parse::<Method>().unwrap();
                    if method == Method::POST && uploads.contains(&path.as_str()) {
                        return None;
                    }
                    let mut concrete = concrete(path);
                    if path.ends_with("/availability") {
                        concrete.push_str("?start=2026-03-02T00:00:00Z&end=2026-03-03T00:00:00Z");
                    }
                    let body = valid(&method, path);
                    Some((method, concrete, body))
                })
                .collect::<Vec<_>>()
        })
        .collect();
    assert!(routes.len() > 40, "{} routes", routes.len());
    let gets: Vec<&String> = routes
        .iter()
        .filter(|(m, _, _)| m == Method::GET)
        .map(|(_, p, _)| p)
        .collect();
    let snapshot = async || {
        let mut seen = Vec::new();
        for p in &gets {
            let r = app.get(p).await;
            seen.push((p.to_string(), r.status, r.text));
        }
        seen
    };
    let before = snapshot().await;
    let found = before
        .iter()
        .filter(|(_, status, _)| *status == StatusCode::OK)
        .count();
    assert!(
        found >= 15,
        "the ids are this company's records: {found} of {} GETs found",
        gets.len()
    );

    let (_, other) = app.new_company("Other Firm").await;
    let mut wrong = Vec::new();
    for (method, path, body) in &routes {
        let r = app
            .call_as(&other, method.clone(), path, body.clone())
            .await;
        if r.status != StatusCode::NOT_FOUND || r.body["error"]["code"].as_str().is_none() {
            wrong.push(format!("{method} {path}: {} {}", r.status, r.text));
        }
    }
    assert!(
        wrong.is_empty(),
        "not a 404 in the envelope:\n{}",
        wrong.join("\n")
    );
    assert_eq!(snapshot().await, before, "this company's records changed");
}
casebridge_testkit::backend_test!(every_id_route_answers_another_company_404_and_changes_nothing);
