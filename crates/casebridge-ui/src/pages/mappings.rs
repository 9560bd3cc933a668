//! CRM Mappings tab (LR8, SA2): case-type links with "not ready" for unlinked ones, field
//! mappings per CRM case type, status mappings (a menu per status type of the CRM: its primary
//! status and, for SmartAdvocate, each second-status type), and "Refresh CRM fields" (mappings
//! kept).
//! Also the Sync log tab.

use std::collections::BTreeSet;

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::{get, post};
use axum::Router;
use axum_extra::extract::cookie::CookieJar;
use casebridge_app::integrations::{
    self as svc, Catalog, Field, FieldMapping, Link, LinkChange, StatusMapping, StatusType,
    SyncEntry,
};
use casebridge_app::App;
use casebridge_domain::ids::CompanyId;
use casebridge_domain::integrations::{Provider, StatusSlot};
use casebridge_domain::model::Named;
use casebridge_domain::page::PageRequest;
use casebridge_domain::records::NamedKind;
use casebridge_domain::sync::FieldRule;
use serde::Deserialize;

use crate::error::UiError;
use crate::session::Admin;
use crate::view::{done, page, render, FieldErrors, Form, Shell};
use crate::Ui;

pub fn routes() -> Router<Ui> {
    Router::new()
        .route("/integrations/{provider}/mappings", get(mappings))
        .route("/integrations/{provider}/refresh", post(refresh))
        .route("/integrations/{provider}/links", post(save_links))
        .route("/integrations/{provider}/fields", post(save_fields))
        .route("/integrations/{provider}/statuses", post(save_statuses))
        .route("/integrations/{provider}/log", get(sync_log))
}

/// Every record of `kind` (the company's case types or statuses, for the mapping menus).
async fn all_named(app: &App, company: CompanyId, kind: NamedKind) -> Result<Vec<Named>, UiError> {
    let mut out = Vec::new();
    let mut after = None;
    loop {
        let page =
            casebridge_app::named::list(app, company, kind, &PageRequest { after, limit: 200 })
                .await?;
        out.extend(page.items);
        match page.next_after {
            Some(n) => after = Some(n),
            None => return Ok(out),
        }
    }
}

/// The platform fields a CRM field can be mapped to (custom fields are typed in as
/// `custom.<name>`).
const PLATFORM_FIELDS: &[(&str, &str)] = &[
    ("case.name", "Case name"),
    ("client.first_name", "Client first name"),
    ("client.last_name", "Client last name"),
    ("client.email", "Client email"),
    ("client.phone", "Client phone"),
];

/// One row of the field mapping form.
pub struct FieldRow {
    pub field: Field,
    /// The platform field mapped to it, or empty.
    pub platform_field: String,
    /// Its mapping's sync rule (two-way when not mapped).
    pub rule: String,
}

#[derive(Template)]
#[template(path = "mappings.html")]
struct MappingsPage {
    shell: Shell,
    label: &'static str,
    slug: &'static str,
    catalog: Catalog,
    links: Vec<Link>,
    case_types: Vec<Named>,
    statuses: Vec<Named>,
    /// `(platform status id, CRM status id)` of every status mapping.
    status_map: BTreeSet<(String, String)>,
    /// The CRM's statuses by status type, the primary statuses first: one menu each.
    status_types: Vec<StatusType>,
    /// The CRM case type whose fields are shown, and its fields.
    selected: Option<String>,
    field_rows: Vec<FieldRow>,
    platform_fields: &'static [(&'static str, &'static str)],
    rules: [FieldRule; 6],
    errors: FieldErrors,
}

impl MappingsPage {
    fn linked(&self, l: &Link, c: &Named) -> bool {
        l.case_type_id.is_some_and(|id| id.to_string() == c.id)
    }

    fn links_ready(&self) -> usize {
        self.links.iter().filter(|l| l.ready()).count()
    }

    fn is_mapped(&self, platform: &str, crm: &str) -> bool {
        self.status_map
            .contains(&(platform.to_owned(), crm.to_owned()))
    }

    /// A status type's name: "Status" for the primary statuses, else the second-status type's.
    fn type_name<'a>(&self, t: &'a StatusType) -> &'a str {
        match &t.slot {
            StatusSlot::Primary => "Status",
            StatusSlot::Second { type_name, .. } => type_name,
        }
    }

    /// The heading of a status type's menu column.
    fn type_heading(&self, t: &StatusType) -> String {
        match &t.slot {
            StatusSlot::Primary => format!("{} status", self.label),
            StatusSlot::Second { type_name, .. } => type_name.clone(),
        }
    }

    fn is_custom(&self, pf: &str) -> bool {
        !pf.is_empty() && !PLATFORM_FIELDS.iter().any(|(k, _)| *k == pf)
    }
}

#[derive(Deserialize, Default)]
struct Selected {
    case_type: Option<String>,
}

async fn mappings_page(
    ui: &Ui,
    admin: &Admin,
    p: Provider,
    selected: Option<String>,
    errors: FieldErrors,
) -> Result<MappingsPage, UiError> {
    let company = admin.session.company_id;
    let catalog = svc::catalog(&ui.app, company, p).await?;
    let links = svc::links(&ui.app, company, p).await?;
    let selected = selected
        .filter(|s| catalog.case_types.iter().any(|t| &t.crm_id == s))
        .or_else(|| catalog.case_types.first().map(|t| t.crm_id.clone()));
    let field_rows = match &selected {
        Some(ct) => {
            let preview = svc::field_preview(&ui.app, company, p, ct).await?;
            let mapped = svc::field_mappings(&ui.app, company, p, ct).await?;
            preview
                .fields
                .into_iter()
                .map(|f| {
                    let m = mapped.iter().find(|m| m.crm_field_key == f.key);
                    FieldRow {
                        platform_field: m.map(|m| m.platform_field.clone()).unwrap_or_default(),
                        rule: m
                            .and_then(|m| m.rule.clone())
                            .unwrap_or_else(|| FieldRule::default().as_str().to_owned()),
                        field: f,
                    }
                })
                .collect()
        }
        None => Vec::new(),
    };
    let status_map = svc::status_mappings(&ui.app, company, p)
        .await?
        .into_iter()
        .map(|m| (m.case_status_id, m.crm_status_id))
        .collect();
    let status_types = catalog.status_types();
    Ok(MappingsPage {
        shell: Shell::new(admin, "integrations"),
        label: p.label(),
        slug: p.as_str(),
        case_types: all_named(&ui.app, company, NamedKind::CaseType).await?,
        statuses: all_named(&ui.app, company, NamedKind::CaseStatus).await?,
        catalog,
        links,
        status_map,
        status_types,
        selected,
        field_rows,
        platform_fields: PLATFORM_FIELDS,
        rules: FieldRule::ALL,
        errors,
    })
}

async fn mappings(
    State(ui): State<Ui>,
    jar: CookieJar,
    admin: Admin,
    Path(provider): Path<String>,
    Query(q): Query<Selected>,
) -> Result<Response, UiError> {
    let p = svc::provider(&provider)?;
    let view = mappings_page(&ui, &admin, p, q.case_type, FieldErrors::default()).await?;
    page(&ui, jar, &view)
}

fn back(p: Provider, case_type: Option<&str>, anchor: &str) -> String {
    match case_type {
        Some(ct) => format!(
            "/ui/integrations/{}/mappings?{}#{anchor}",
            p.as_str(),
            serde_urlencoded::to_string([("case_type", ct)]).unwrap_or_default()
        ),
        None => format!("/ui/integrations/{}/mappings#{anchor}", p.as_str()),
    }
}

/// A refused form: the page again with the errors in place (422).
async fn refused(
    ui: &Ui,
    admin: &Admin,
    p: Provider,
    selected: Option<String>,
    e: casebridge_app::AppError,
    section: &str,
) -> Result<Response, UiError> {
    let errors = FieldErrors::from_app(e, str::to_owned)?.under(section);
    let view = mappings_page(ui, admin, p, selected, errors).await?;
    render(StatusCode::UNPROCESSABLE_ENTITY, &view)
}

async fn refresh(
    State(ui): State<Ui>,
    jar: CookieJar,
    admin: Admin,
    Path(provider): Path<String>,
) -> Result<Response, UiError> {
    let p = svc::provider(&provider)?;
    match svc::refresh_catalog(&ui.app, admin.session.company_id, p).await {
        Ok(l) => Ok(done(
            &ui,
            jar,
            &back(p, None, "catalog"),
            format!(
                "Loaded {} case type(s), {} status(es) and {} field(s) from {}; saved mappings were kept.",
                l.case_types,
                l.statuses,
                l.fields,
                p.label()
            ),
        )),
        Err(e) => refused(&ui, &admin, p, None, e, "catalog").await,
    }
}

/// `link.<CRM case type id>` = platform case type id, or empty to unlink.
async fn save_links(
    State(ui): State<Ui>,
    jar: CookieJar,
    admin: Admin,
    Path(provider): Path<String>,
    Form(form): Form<Vec<(String, String)>>,
) -> Result<Response, UiError> {
    let p = svc::provider(&provider)?;
    let changes: Vec<LinkChange> = form
        .iter()
        .filter_map(|(k, v)| {
            k.strip_prefix("link.").map(|crm| LinkChange {
                crm_case_type_id: crm.to_owned(),
                case_type_id: Some(v.trim()).filter(|v| !v.is_empty()).map(str::to_owned),
            })
        })
        .collect();
    match svc::set_links(&ui.app, admin.session.company_id, p, &changes).await {
        Ok(links) => {
            let unlinked = links.iter().filter(|l| !l.ready()).count();
            let notice = if unlinked == 0 {
                "Case type links saved: every case type is linked.".to_owned()
            } else {
                format!("Case type links saved; {unlinked} case type(s) are still not linked (not ready).")
            };
            Ok(done(&ui, jar, &back(p, None, "links"), notice))
        }
        Err(e) => refused(&ui, &admin, p, None, e, "links").await,
    }
}

/// `case_type` names the CRM case type; `map.<CRM field key>` = platform field or empty;
/// `custom.<CRM field key>` = a custom field name when `map.…` is `custom`.
async fn save_fields(
    State(ui): State<Ui>,
    jar: CookieJar,
    admin: Admin,
    Path(provider): Path<String>,
    Form(form): Form<Vec<(String, String)>>,
) -> Result<Response, UiError> {
    let p = svc::provider(&provider)?;
    let get = |name: &str| {
        form.iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.trim().to_owned())
    };
    let Some(case_type) = get("case_type") else {
        return Err(UiError::App(casebridge_app::AppError::BadRequest(
            "the form did not say which case type it maps".into(),
        )));
    };
    let mut mappings = Vec::new();
    for (k, v) in &form {
        let Some(key) = k.strip_prefix("map.") else {
            continue;
        };
        let platform_field = match v.trim() {
            "" => continue,
            "custom" => match get(&format!("custom.{key}")) {
                Some(name) if !name.is_empty() => format!("custom.{name}"),
                _ => "custom.".to_owned(),
            },
            other => other.to_owned(),
        };
        mappings.push(FieldMapping {
            platform_field,
            crm_field_key: key.to_owned(),
            // A form without the rule menu (an old page) saves two-way.
            rule: get(&format!("rule.{key}")),
        });
    }
    match svc::set_field_mappings(&ui.app, admin.session.company_id, p, &case_type, &mappings).await
    {
        Ok(()) => Ok(done(
            &ui,
            jar,
            &back(p, Some(&case_type), "fields"),
            format!("Field mappings saved ({} mapped).", mappings.len()),
        )),
        Err(e) => refused(&ui, &admin, p, Some(case_type), e, "fields").await,
    }
}

/// `status.<platform status id>` = CRM status id, or empty for none; repeated once per status
/// type menu (the primary status, then each second-status type).
async fn save_statuses(
    State(ui): State<Ui>,
    jar: CookieJar,
    admin: Admin,
    Path(provider): Path<String>,
    Form(form): Form<Vec<(String, String)>>,
) -> Result<Response, UiError> {
    let p = svc::provider(&provider)?;
    let mappings: Vec<StatusMapping> = form
        .iter()
        .filter_map(|(k, v)| {
            let id = k.strip_prefix("status.")?;
            let crm = v.trim();
            (!crm.is_empty()).then(|| StatusMapping {
                case_status_id: id.to_owned(),
                crm_status_id: crm.to_owned(),
            })
        })
        .collect();
    match svc::set_status_mappings(&ui.app, admin.session.company_id, p, &mappings).await {
        Ok(()) => Ok(done(
            &ui,
            jar,
            &back(p, None, "statuses"),
            format!("Status mappings saved ({} mapped).", mappings.len()),
        )),
        Err(e) => refused(&ui, &admin, p, None, e, "statuses").await,
    }
}

// ---- sync log ----

#[derive(Template)]
#[template(path = "sync_log.html")]
struct SyncLogPage {
    shell: Shell,
    label: &'static str,
    slug: &'static str,
    outcome: String,
    entries: Vec<SyncEntry>,
    next: Option<String>,
}

#[derive(Deserialize, Default)]
struct LogQuery {
    outcome: Option<String>,
    after: Option<String>,
}

async fn sync_log(
    State(ui): State<Ui>,
    jar: CookieJar,
    admin: Admin,
    Path(provider): Path<String>,
    Query(q): Query<LogQuery>,
) -> Result<Response, UiError> {
    let p = svc::provider(&provider)?;
    let outcome = q.outcome.filter(|o| !o.is_empty());
    let entries = svc::sync_log(
        &ui.app,
        admin.session.company_id,
        p,
        outcome.as_deref(),
        &PageRequest {
            after: q.after.filter(|a| !a.is_empty()),
            limit: 50,
        },
    )
    .await?;
    let next = entries.next_after.map(|after| {
        let mut q = vec![("after", after)];
        if let Some(o) = &outcome {
            q.push(("outcome", o.clone()));
        }
        serde_urlencoded::to_string(q).unwrap_or_default()
    });
    page(
        &ui,
        jar,
        &SyncLogPage {
            shell: Shell::new(&admin, "integrations"),
            label: p.label(),
            slug: p.as_str(),
            outcome: outcome.unwrap_or_default(),
            entries: entries.items,
            next,
        },
    )
}
