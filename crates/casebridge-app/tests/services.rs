//! Use cases driven through the service layer directly, without HTTP, on both backends: the
//! same functions the JSON API (and the admin UI) call.

use casebridge_app::inbound::{self, InboundBody, Received};
use casebridge_app::integrations::{self, TogglesChange};
use casebridge_app::AppError;
use casebridge_domain::integrations::Provider;
use casebridge_testkit::TestApp;
use reqwest::StatusCode;
use serde_json::json;

fn lead_json(lead_id: &str, status: &str) -> Vec<u8> {
    serde_json::to_vec(&json!({
        "Lead ID": lead_id,
        "Case Type ID": "12",
        "Case Type": "Auto Accident",
        "Status ID": "7",
        "Status": status,
        "Full Name": "Jane Doe",
        "Created Date": "2026-11-01",
        "Primary Contact ID": "PC-9",
        "First Name": "Jane",
        "Last Name": "Doe",
    }))
    .unwrap()
}

/// The token of the webhook URL the setup view shows.
async fn hook_token(app: &TestApp) -> String {
    let view = integrations::get(&app.services, app.company_id, Provider::LawRuler)
        .await
        .unwrap();
    view.webhook_url.rsplit('/').next().unwrap().to_owned()
}

async fn an_inbound_webhook_is_gated_applied_and_deduplicated_by_the_service(
    backend: casebridge_testkit::TestBackend,
) {
    let app = TestApp::start(backend).await;
    let services = &app.services;
    let company = app.company_id;
    let token = hook_token(&app).await;

    // Not connected: the service ignores the webhook, says why, and creates nothing.
    let (for_company, received) = inbound::receive(
        services,
        Provider::LawRuler,
        &token,
        "",
        InboundBody::Json(lead_json("1001", "Intake")),
    )
    .await
    .unwrap();
    assert_eq!(for_company, company);
    match received {
        Received::Ignored { reason } => assert!(reason.contains("not connected"), "{reason}"),
        other => panic!("expected ignored, got {other:?}"),
    }
    assert_eq!(
        app.get("/api/v1/cases").await.expect(StatusCode::OK).body["data"]
            .as_array()
            .unwrap()
            .len(),
        0
    );

    // The safe order is enforced by the service itself: enabling needs a connection.
    let enable = TogglesChange {
        enable_integration: Some(true),
        receive: Some(true),
        ..Default::default()
    };
    match integrations::change_settings(services, company, Provider::LawRuler, &enable).await {
        Err(AppError::Conflict(m)) => assert!(m.contains("connect Law Ruler"), "{m}"),
        other => panic!("expected a conflict, got {other:?}"),
    }
    let view = integrations::get(services, company, Provider::LawRuler)
        .await
        .unwrap();
    assert!(
        !view.toggles.enable_integration,
        "a refused change changed nothing"
    );

    app.lawruler_connected_offline(company, &app.api_key).await;

    // Applied: the case exists, with the lead's external ref, and the sync log says so.
    let (_, received) = inbound::receive(
        services,
        Provider::LawRuler,
        &token,
        "",
        InboundBody::Json(lead_json("1001", "Intake")),
    )
    .await
    .unwrap();
    let applied = match received {
        Received::Applied(a) => a,
        other => panic!("expected applied, got {other:?}"),
    };
    assert!(applied.case_created);
    let case = app.get(&format!("/api/v1/cases/{}", applied.case_id)).await;
    assert_eq!(case.status, reqwest::StatusCode::OK, "{}", case.text);
    assert_eq!(
        case.body["external_refs"][0]["external_id"], "1001",
        "{}",
        case.text
    );

    // The same content again: a duplicate, nothing changes.
    let (_, received) = inbound::receive(
        services,
        Provider::LawRuler,
        &token,
        "",
        InboundBody::Json(lead_json("1001", "Intake")),
    )
    .await
    .unwrap();
    match received {
        Received::Duplicate {
            case_id, client_id, ..
        } => {
            assert_eq!(
                case_id,
                Some(applied.case_id),
                "the duplicate names the case it matched"
            );
            assert_eq!(client_id, Some(applied.client_id));
        }
        other => panic!("expected a duplicate, got {other:?}"),
    }
    assert_eq!(
        app.get("/api/v1/cases").await.expect(StatusCode::OK).body["data"]
            .as_array()
            .unwrap()
            .len(),
        1
    );

    // A missing field: a validation error naming the body, and a sync-log error entry.
    let bad = serde_json::to_vec(&json!({"Lead ID": "1002"})).unwrap();
    match inbound::receive(
        services,
        Provider::LawRuler,
        &token,
        "",
        InboundBody::Json(bad),
    )
    .await
    {
        Err(AppError::Validation(v)) => assert_eq!(v.errors[0].field, "body"),
        other => panic!("expected a validation error, got {other:?}"),
    }
    let page = casebridge_domain::page::PageRequest::first(10);
    let errors =
        integrations::sync_log(services, company, Provider::LawRuler, Some("error"), &page)
            .await
            .unwrap();
    assert_eq!(errors.items.len(), 1);
    assert_eq!(errors.items[0].record_ref.as_deref(), Some("1002"));

    // An unknown token is not found, before anything about the body is looked at.
    match inbound::receive(
        services,
        Provider::LawRuler,
        "nope",
        "",
        InboundBody::Unsupported,
    )
    .await
    {
        Err(AppError::NotFound(_)) => {}
        other => panic!("expected not found, got {other:?}"),
    }
}
casebridge_testkit::backend_test!(
    an_inbound_webhook_is_gated_applied_and_deduplicated_by_the_service
);
