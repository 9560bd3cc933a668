//! Connecting SmartAdvocate and loading its catalog, against the SmartAdvocate simulator, on
//! both backends: each wrong value and a missing permission named, base URL normalisation,
//! secrets masked, second statuses as mappable statuses, refresh keeping mappings, a load
//! failure shown, tenant isolation, and honest answers for what this version does not do.

use casebridge_sim::smartadvocate::{Operation, SmartAdvocateSim, DEMO_PASSWORD, DEMO_USERNAME};
use casebridge_testkit::TestApp;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

const VIEW: &str = "/api/v1/integrations/smartadvocate";

fn values(base_url: &str) -> Value {
    json!({"base_url": base_url, "username": DEMO_USERNAME, "password": DEMO_PASSWORD})
}

async fn connect(app: &TestApp, body: Value) -> casebridge_testkit::Reply {
    app.call(Method::PUT, &format!("{VIEW}/connection"), Some(body))
        .await
}

fn detail_fields(r: &casebridge_testkit::Reply) -> Vec<String> {
    r.body["error"]["details"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["field"].as_str().unwrap().to_owned())
        .collect()
}

async fn connect_names_the_wrong_value_or_missing_permission_and_stores_nothing(
    backend: casebridge_testkit::TestBackend,
) {
    let sa = SmartAdvocateSim::new().start().await;
    let app = TestApp::start(backend).await;
    let good = values(&sa.base_url);

    // The password is case-sensitive; SmartAdvocate does not say whether the username or
    // the password is wrong, and neither do we pretend to.
    for (field, wrong) in [
        ("password", DEMO_PASSWORD.to_lowercase()),
        ("username", "Demo".to_owned()),
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
        assert_eq!(detail_fields(&r), ["password"], "{field}: {}", r.text);
        assert!(r.body["error"]["details"][0]["message"]
            .as_str()
            .unwrap()
            .contains("did not accept this username and password"));
        assert_eq!(app.get(VIEW).await.body["status"], "not_connected");
    }
    // Nothing answers at this address.
    let r = connect(&app, values("http://127.0.0.1:9")).await;
    assert_eq!(detail_fields(&r), ["base_url"], "{}", r.text);
    assert!(
        r.body["error"]["details"][0]["message"]
            .as_str()
            .unwrap()
            .contains("could not connect"),
        "{}",
        r.text
    );
    // A private address is refused by the URL policy, before anything is sent.
    let before = sa.sim.requests().len();
    let r = connect(&app, values("http://10.1.2.3")).await;
    assert_eq!(detail_fields(&r), ["base_url"], "{}", r.text);
    assert!(
        r.body["error"]["details"][0]["message"]
            .as_str()
            .unwrap()
            .contains("private"),
        "{}",
        r.text
    );
    assert_eq!(sa.sim.requests().len(), before);
    // Every empty value is named; an unknown one is refused.
    let r = connect(
        &app,
        json!({"base_url": "", "username": " ", "password": ""}),
    )
    .await;
    assert_eq!(
        detail_fields(&r),
        ["base_url", "username", "password"],
        "{}",
        r.text
    );
    let r = connect(
        &app,
        json!({"base_url": sa.base_url, "username": "demo", "password": "x", "key": "k"}),
    )
    .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.text);

    // The API user may log in but not insert notes: connect says exactly that.
    sa.sim.deny(Operation::InsertNote);
    let r = connect(&app, good.clone()).await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.text);
    assert_eq!(detail_fields(&r), ["username"]);
    let message = r.body["error"]["details"][0]["message"].as_str().unwrap();
    assert!(
        message.contains("lacks permission for insert note"),
        "{message}"
    );
    assert_eq!(app.get(VIEW).await.body["status"], "not_connected");
    // Two missing permissions are both named.
    sa.sim.deny(Operation::NotesByCaseNumber);
    let r = connect(&app, good.clone()).await;
    let messages: Vec<&str> = r.body["error"]["details"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["message"].as_str().unwrap())
        .collect();
    assert!(
        messages.iter().any(|m| m.contains("read notes"))
            && messages.iter().any(|m| m.contains("insert note")),
        "{messages:?}"
    );
    // SmartAdvocate being down is not a wrong value.
    sa.sim.clear_faults();
    sa.sim.fail_5xx(1);
    let r = connect(&app, good.clone()).await;
    assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE, "{}", r.text);
    assert_eq!(app.get(VIEW).await.body["status"], "not_connected");

    // The probes changed nothing in SmartAdvocate.
    assert!(sa.sim.cases().iter().all(|c| c.notes.is_empty()));
    let probes: Vec<Operation> = sa
        .sim
        .requests()
        .iter()
        .filter_map(|r| r.operation)
        .collect();
    assert!(probes.contains(&Operation::InsertNote) && probes.contains(&Operation::CaseInfo));
}
casebridge_testkit::backend_test!(
    connect_names_the_wrong_value_or_missing_permission_and_stores_nothing
);

async fn base_url_is_normalised_and_secrets_are_masked(backend: casebridge_testkit::TestBackend) {
    let sa = SmartAdvocateSim::new().start().await;
    let app = TestApp::start(backend).await;
    for typed in [
        format!("{}/CaseSyncAPI/", sa.base_url),
        format!("{}/casesyncapi", sa.base_url),
        format!("{}/", sa.base_url),
        sa.base_url.clone(),
    ] {
        let r = connect(&app, values(&typed)).await;
        assert_eq!(r.status, StatusCode::OK, "{typed}: {}", r.text);
        assert_eq!(r.body["status"], "connected");
        assert_eq!(
            r.body["credentials"]["base_url"],
            sa.base_url.as_str(),
            "{typed}"
        );
        assert_eq!(r.body["credentials"]["username"], DEMO_USERNAME);
    }
    // Every request went to {host}/CaseSyncAPI/…, never /CaseSyncAPI/CaseSyncAPI.
    assert!(
        sa.sim.requests().iter().all(|r| r.operation.is_some()),
        "{:?}",
        sa.sim.requests()
    );

    for text in [
        app.get(VIEW).await.text,
        app.get(&format!("{VIEW}/sync-log")).await.text,
    ] {
        assert!(!text.contains(DEMO_PASSWORD), "password shown: {text}");
        assert!(
            !text.contains("Bearer") && !text.contains("eyJ"),
            "token shown: {text}"
        );
    }
    let cards = app.get("/api/v1/integrations").await.body;
    let card = cards
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["provider"] == "smartadvocate")
        .unwrap()
        .clone();
    assert_eq!(
        (card["status"].as_str(), card["available"].as_bool()),
        (Some("connected"), Some(true)),
        "{card}"
    );
    let log = app.get(&format!("{VIEW}/sync-log")).await.body;
    assert!(
        log.to_string().contains("connected; credentials verified"),
        "{log}"
    );

    // Disconnecting forgets the credentials.
    let r = app
        .call(Method::DELETE, &format!("{VIEW}/connection"), None)
        .await;
    assert_eq!(r.body["status"], "not_connected");
    assert!(r.body["credentials"].is_null());
}
casebridge_testkit::backend_test!(base_url_is_normalised_and_secrets_are_masked);

async fn catalog_with_second_statuses_udfs_mappings_and_a_load_failure(
    backend: casebridge_testkit::TestBackend,
) {
    let sa = SmartAdvocateSim::new().start().await;
    let app = TestApp::start(backend).await;
    let refresh = format!("{VIEW}/fields/refresh");
    assert_eq!(
        app.post(&refresh, json!({})).await.status,
        StatusCode::CONFLICT
    );
    assert_eq!(
        connect(&app, values(&sa.base_url)).await.status,
        StatusCode::OK
    );
    let tokens_after_connect = sa.sim.tokens_issued();

    let r = app.post(&refresh, json!({})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.body["case_types"], 2);
    // 3 primary statuses + 3 + 5 + 1 + 21 second-status values ("Attempts Status" 0–20).
    assert_eq!(r.body["statuses"], 33, "{}", r.text);
    assert_eq!(r.body["fields"], 7);

    // UDFs per case type: key = the UDF name, label = its short name when it has one.
    let preview = app
        .get(&format!("{VIEW}/fields?crm_case_type_id=1"))
        .await
        .body;
    let fields: Vec<(&str, &str, &str, &str)> = preview["fields"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            (
                f["key"].as_str().unwrap(),
                f["label"].as_str().unwrap(),
                f["input_type"].as_str().unwrap(),
                f["form_section"].as_str().unwrap(),
            )
        })
        .collect();
    assert!(
        fields.contains(&("Accident Date", "Acc. Date", "Date", "Incident")),
        "{fields:?}"
    );
    assert!(
        fields.contains(&(
            "Police Report Number",
            "Police Report Number",
            "Text",
            "Incident"
        )),
        "{fields:?}"
    );
    assert_eq!(fields.len(), 4);

    // Mappings: a case-type link, a UDF, a primary status and a second status
    // ("Dialer Status = To Dial" is `10:101`).
    let ct = app
        .create("/api/v1/case-types", json!({"name": "MVA"}))
        .await;
    let r = app
        .call(
            Method::PUT,
            &format!("{VIEW}/case-type-links"),
            Some(json!({"links": [{"crm_case_type_id": "1", "case_type_id": ct}]})),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let r = app.call(Method::PUT, &format!("{VIEW}/field-mappings"), Some(json!({"crm_case_type_id": "1",
            "mappings": [{"platform_field": "custom.accident_date", "crm_field_key": "Accident Date"}]}))).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let intake = app
        .create("/api/v1/case-statuses", json!({"name": "Intake"}))
        .await;
    let to_dial = app
        .create("/api/v1/case-statuses", json!({"name": "Ready to call"}))
        .await;
    let r = app
        .call(
            Method::PUT,
            &format!("{VIEW}/status-mappings"),
            Some(json!({"mappings": [
            {"case_status_id": intake, "crm_status_id": "1"},
            {"case_status_id": to_dial, "crm_status_id": "10:101"}]})),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    // A value SmartAdvocate does not have is refused.
    let r = app
        .call(
            Method::PUT,
            &format!("{VIEW}/status-mappings"),
            Some(json!({"mappings": [
            {"case_status_id": intake, "crm_status_id": "10:999"}]})),
        )
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.text);

    // Refreshing again keeps every mapping, and reuses the connection's token.
    let r = app.post(&refresh, json!({})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(
        sa.sim.tokens_issued(),
        tokens_after_connect + 1,
        "one token for both refreshes"
    );
    // The setup view: each permission passed at connect, and the token in use until about
    // its exp less 5 minutes (2 h tokens).
    let view = app.get(VIEW).await.body;
    let checks: Vec<(&str, &str)> = view["permission_checks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| (c["name"].as_str().unwrap(), c["state"].as_str().unwrap()))
        .collect();
    assert_eq!(checks.len(), 5, "{view}");
    assert!(
        checks.contains(&("insert note", "passed_at_connect")),
        "{view}"
    );
    let until: jiff::Timestamp = view["token_valid_until"].as_str().unwrap().parse().unwrap();
    let left = until.duration_since(jiff::Timestamp::now()).as_secs();
    assert!((6600..=6900).contains(&left), "{left} s {view}");
    // A company without a connection has no token and nothing checked.
    let (_, other) = app.new_company("Third Firm").await;
    let view = app.call_as(&other, Method::GET, VIEW, None).await.body;
    assert!(view["token_valid_until"].is_null(), "{view}");
    assert!(
        view["permission_checks"]
            .as_array()
            .unwrap()
            .iter()
            .all(|c| c["state"] == "not_checked"),
        "{view}"
    );
    let sm = app.get(&format!("{VIEW}/status-mappings")).await.body;
    let mapped: Vec<&str> = sm["mappings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["crm_status_id"].as_str().unwrap())
        .collect();
    assert_eq!(mapped.len(), 2, "{sm}");
    assert!(mapped.contains(&"10:101"), "{sm}");
    let fm = app
        .get(&format!("{VIEW}/field-mappings?crm_case_type_id=1"))
        .await
        .body;
    assert_eq!(fm["mappings"][0]["crm_field_key"], "Accident Date", "{fm}");
    let links = app.get(&format!("{VIEW}/case-type-links")).await.body;
    assert!(
        links
            .as_array()
            .unwrap()
            .iter()
            .any(|l| l["case_type_id"] == ct.as_str()),
        "{links}"
    );

    // A part that cannot be loaded is an error the admin sees, not an empty list; the last
    // catalog and the mappings stay.
    sa.sim.deny(Operation::Udfs);
    let r = app.post(&refresh, json!({})).await;
    assert_eq!(r.status, StatusCode::BAD_GATEWAY, "{}", r.text);
    let message = r.body["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("could not load fields from SmartAdvocate")
            && message.contains("lacks permission for read UDF definitions"),
        "{message}"
    );
    let preview = app
        .get(&format!("{VIEW}/fields?crm_case_type_id=1"))
        .await
        .body;
    assert!(
        preview["error"]
            .as_str()
            .unwrap()
            .contains("read UDF definitions"),
        "{preview}"
    );
    assert_eq!(preview["fields"].as_array().unwrap().len(), 4);
    sa.sim.clear_faults();
    sa.sim.empty_bodies(1);
    let r = app.post(&refresh, json!({})).await;
    assert_eq!(r.status, StatusCode::BAD_GATEWAY, "{}", r.text);
    assert!(r.text.contains("empty body"), "{}", r.text);
    assert_eq!(
        app.get(&format!("{VIEW}/status-mappings")).await.body["mappings"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
}
casebridge_testkit::backend_test!(catalog_with_second_statuses_udfs_mappings_and_a_load_failure);

async fn the_connection_is_the_company_own_and_unbuilt_parts_say_so(
    backend: casebridge_testkit::TestBackend,
) {
    let sa = SmartAdvocateSim::new().start().await;
    let app = TestApp::start(backend).await;
    assert_eq!(
        connect(&app, values(&sa.base_url)).await.status,
        StatusCode::OK
    );
    assert_eq!(
        app.post(&format!("{VIEW}/fields/refresh"), json!({}))
            .await
            .status,
        StatusCode::OK
    );

    // Another company sees no connection and no catalog, and cannot load one.
    let (_, other) = app.new_company("Other Firm").await;
    let view = app.call_as(&other, Method::GET, VIEW, None).await;
    assert_eq!(view.body["status"], "not_connected", "{}", view.text);
    assert!(view.body["credentials"].is_null());
    let r = app
        .call_as(
            &other,
            Method::POST,
            &format!("{VIEW}/fields/refresh"),
            Some(json!({})),
        )
        .await;
    assert_eq!(r.status, StatusCode::CONFLICT, "{}", r.text);
    let r = app
        .call_as(
            &other,
            Method::GET,
            &format!("{VIEW}/fields?crm_case_type_id=1"),
            None,
        )
        .await;
    assert_ne!(r.status, StatusCode::OK, "{}", r.text);
    let r = app
        .call_as(
            &other,
            Method::GET,
            &format!("{VIEW}/case-type-links"),
            None,
        )
        .await;
    assert_eq!(r.body.as_array().map(Vec::len), Some(0), "{}", r.text);
    // Its own (wrong) connect attempt leaves the first company's connection alone.
    let r = app
        .call_as(
            &other,
            Method::PUT,
            &format!("{VIEW}/connection"),
            Some(json!({"base_url": sa.base_url, "username": "demo", "password": "nope"})),
        )
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(app.get(VIEW).await.body["status"], "connected");

    // The other company, not connected, cannot import; this one can.
    let r = app
        .call_as(
            &other,
            Method::POST,
            &format!("{VIEW}/import"),
            Some(json!({"source": "smartadvocate_api"})),
        )
        .await;
    assert_eq!(r.status, StatusCode::CONFLICT, "{}", r.text);
    assert!(
        r.body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("SmartAdvocate is not connected"),
        "{}",
        r.text
    );
    let r = app
        .post(
            &format!("{VIEW}/import"),
            json!({"source": "smartadvocate_api"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.text);
    // A hook while the integration is off is ignored, and says why.
    let token = app.get(VIEW).await.body["webhook_url"]
        .as_str()
        .unwrap()
        .rsplit('/')
        .next()
        .unwrap()
        .to_owned();
    let r = TestApp::reply(
        app.http
            .post(app.url(&format!("/hooks/smartadvocate/{token}")))
            .json(&json!({"caseID": 1}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.body["status"], "ignored", "{}", r.text);
    assert!(
        r.body["reason"]
            .as_str()
            .unwrap()
            .contains("the integration is turned off"),
        "{}",
        r.text
    );
    let log = app
        .get(&format!("{VIEW}/sync-log?outcome=skipped"))
        .await
        .body;
    assert!(log.to_string().contains("turned off"), "{log}");
}
casebridge_testkit::backend_test!(the_connection_is_the_company_own_and_unbuilt_parts_say_so);
