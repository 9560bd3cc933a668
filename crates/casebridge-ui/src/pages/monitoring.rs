//! An integration's Monitoring tab (SYNC3): what is measured today — outbound operations by
//! state, records received, sync-log lines by outcome over the last hour, day and since
//! connecting — the problems grouped by kind (open or resolved, with a fix hint), and the
//! pending and failed operations, each failed one with its reason and Retry / Dismiss.

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::{get, post};
use axum::Router;
use axum_extra::extract::cookie::CookieJar;
use casebridge_app::integrations::{
    self as svc, CrmOp, IntegrationView, LogCounts, Monitoring, RecordCounts, Settle,
};
use casebridge_app::AppError;
use casebridge_domain::crm_ops::OpState;
use casebridge_domain::integrations::Provider;
use casebridge_domain::page::PageRequest;
use serde::Deserialize;

use crate::error::UiError;
use crate::session::Admin;
use crate::view::{done, page, render, FieldErrors, Shell};
use crate::Ui;

pub fn routes() -> Router<Ui> {
    Router::new()
        .route("/integrations/{provider}/monitoring", get(monitoring))
        .route(
            "/integrations/{provider}/operations/{id}/retry",
            post(retry),
        )
        .route(
            "/integrations/{provider}/operations/{id}/dismiss",
            post(dismiss),
        )
}

/// Operations shown per page of each list.
const PAGE: u32 = 25;

#[derive(Template)]
#[template(path = "monitoring.html")]
struct MonitoringPage {
    shell: Shell,
    label: &'static str,
    slug: &'static str,
    v: IntegrationView,
    m: Monitoring,
    failed: Vec<CrmOp>,
    failed_next: Option<String>,
    pending: Vec<CrmOp>,
    pending_next: Option<String>,
    /// A refused Retry or Dismiss, shown above the failed operations.
    errors: FieldErrors,
}

impl MonitoringPage {
    /// The periods of the sync-log counts: (label, id, counts); "since connected" only while
    /// connected.
    fn periods(&self) -> Vec<(&'static str, &'static str, LogCounts)> {
        let mut out = vec![
            ("Last hour", "hour", self.m.last_hour),
            ("Last 24 hours", "day", self.m.last_day),
        ];
        if let Some(c) = self.m.since_connect {
            out.push(("Since connected", "connect", c));
        }
        out
    }

    fn record_periods(&self) -> Vec<(&'static str, &'static str, RecordCounts)> {
        let mut out = vec![
            ("Last hour", "hour", self.m.records_last_hour),
            ("Last 24 hours", "day", self.m.records_last_day),
        ];
        if let Some(c) = self.m.records_since_connect {
            out.push(("Since connected", "connect", c));
        }
        out
    }

    fn kind_label(&self, kind: &Option<String>) -> &'static str {
        match kind.as_deref() {
            Some("configuration") => "Configuration",
            Some("transient") => "Transient",
            Some("validation") => "Invalid record",
            Some(_) => "Other",
            None => "No kind recorded",
        }
    }
}

#[derive(Deserialize, Default)]
struct Pages {
    failed_after: Option<String>,
    pending_after: Option<String>,
}

async fn ops(
    ui: &Ui,
    admin: &Admin,
    p: Provider,
    state: OpState,
    after: Option<String>,
) -> Result<(Vec<CrmOp>, Option<String>), UiError> {
    let page = svc::operations(
        &ui.app,
        admin.session.company_id,
        p,
        Some(state),
        &PageRequest {
            after: after.filter(|a| !a.is_empty()),
            limit: PAGE,
        },
    )
    .await?;
    Ok((page.items, page.next_after))
}

async fn monitoring_page(
    ui: &Ui,
    admin: &Admin,
    p: Provider,
    q: Pages,
    errors: FieldErrors,
) -> Result<MonitoringPage, UiError> {
    let company = admin.session.company_id;
    let v = svc::get(&ui.app, company, p).await?;
    let m = svc::monitoring(&ui.app, company, p).await?;
    let (failed, failed_next) = ops(ui, admin, p, OpState::Failed, q.failed_after).await?;
    let (pending, pending_next) = ops(ui, admin, p, OpState::Pending, q.pending_after).await?;
    Ok(MonitoringPage {
        shell: Shell::new(admin, "integrations"),
        label: p.label(),
        slug: p.as_str(),
        v,
        m,
        failed,
        failed_next,
        pending,
        pending_next,
        errors,
    })
}

async fn monitoring(
    State(ui): State<Ui>,
    jar: CookieJar,
    admin: Admin,
    Path(provider): Path<String>,
    Query(q): Query<Pages>,
) -> Result<Response, UiError> {
    let p = svc::provider(&provider)?;
    let view = monitoring_page(&ui, &admin, p, q, FieldErrors::default()).await?;
    page(&ui, jar, &view)
}

async fn retry(
    State(ui): State<Ui>,
    jar: CookieJar,
    admin: Admin,
    Path(path): Path<(String, String)>,
) -> Result<Response, UiError> {
    settle(ui, jar, admin, path, Settle::Retry).await
}

async fn dismiss(
    State(ui): State<Ui>,
    jar: CookieJar,
    admin: Admin,
    Path(path): Path<(String, String)>,
) -> Result<Response, UiError> {
    settle(ui, jar, admin, path, Settle::Dismiss).await
}

/// Retries or dismisses a failed operation (a POST form with only the CSRF token).
async fn settle(
    ui: Ui,
    jar: CookieJar,
    admin: Admin,
    (provider, id): (String, String),
    action: Settle,
) -> Result<Response, UiError> {
    let p = svc::provider(&provider)?;
    match svc::settle_operation(&ui.app, admin.session.company_id, p, &id, action).await {
        Ok(op) => {
            let notice = match action {
                Settle::Retry => format!(
                    "Operation {} ({}) is pending again: it is sent behind the record's other \
                     operations.",
                    op.id,
                    op.action.describe()
                ),
                Settle::Dismiss => format!(
                    "Operation {} ({}) was dismissed: it will not be sent, and counts as skipped.",
                    op.id,
                    op.action.describe()
                ),
            };
            Ok(done(
                &ui,
                jar,
                &format!("/ui/integrations/{}/monitoring#failed", p.as_str()),
                notice,
            ))
        }
        // Acted on already (a second click, another admin): say so where the list is.
        Err(AppError::Conflict(m)) => {
            let errors = FieldErrors::general(format!("Operation {id}: {m}."));
            let view = monitoring_page(&ui, &admin, p, Pages::default(), errors).await?;
            render(StatusCode::CONFLICT, &view)
        }
        Err(e) => Err(e.into()),
    }
}
