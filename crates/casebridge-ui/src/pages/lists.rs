//! Lists (LR5): every list of the company with its List ID to copy, its first cases, and its
//! Law Ruler Auto-Add rules (a CRM record whose case type and/or status match is put on the
//! list); create a list, add and delete rules.

use askama::Template;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::{get, post};
use axum::Router;
use axum_extra::extract::cookie::CookieJar;
use casebridge_app::integrations::{self as rules, NewRule};
use casebridge_app::lists::{self as svc, ListOverview};
use casebridge_app::AppError;
use casebridge_domain::integrations::Provider;
use casebridge_domain::records::{Name, NamedKind};
use casebridge_domain::ValidationError;
use serde::Deserialize;

use crate::error::UiError;
use crate::session::Admin;
use crate::view::{done, page, render, FieldErrors, Form, Shell};
use crate::Ui;

/// Lists shown on the page, and cases shown per list.
const LISTS_SHOWN: u32 = 200;
const CASES_SHOWN: u32 = 5;

pub fn routes() -> Router<Ui> {
    Router::new()
        .route("/lists", get(show).post(create))
        .route("/lists/{id}/rules", post(add_rule))
        .route("/lists/{id}/rules/{rule_id}/delete", post(delete_rule))
}

#[derive(Template)]
#[template(path = "lists.html")]
struct ListsPage {
    shell: Shell,
    lists: Vec<ListOverview>,
    more_lists: bool,
    errors: FieldErrors,
    /// Which form the errors belong to: `new-list` or a list id (its rule form).
    errors_for: String,
    /// What the refused form had typed, to show it again.
    typed: Typed,
}

#[derive(Default)]
struct Typed {
    name: String,
    case_type: String,
    status: String,
}

impl ListsPage {
    fn provider_label(&self, slug: &str) -> &'static str {
        Provider::parse(slug).map_or("another CRM", Provider::label)
    }
}

async fn lists_page(
    ui: &Ui,
    admin: &Admin,
    errors: FieldErrors,
    errors_for: &str,
    typed: Typed,
) -> Result<ListsPage, UiError> {
    let (lists, more_lists) =
        svc::overview(&ui.app, admin.session.company_id, LISTS_SHOWN, CASES_SHOWN).await?;
    Ok(ListsPage {
        shell: Shell::new(admin, "lists"),
        lists,
        more_lists,
        errors,
        errors_for: errors_for.to_owned(),
        typed,
    })
}

async fn show(State(ui): State<Ui>, jar: CookieJar, admin: Admin) -> Result<Response, UiError> {
    let view = lists_page(&ui, &admin, FieldErrors::default(), "", Typed::default()).await?;
    page(&ui, jar, &view)
}

/// A refused form: the page again with the errors next to their fields (422). A name already
/// taken is an error of the name field.
async fn refused(
    ui: &Ui,
    admin: &Admin,
    e: AppError,
    form: &str,
    typed: Typed,
) -> Result<Response, UiError> {
    let e = match e {
        AppError::Conflict(m) if form == "new-list" => {
            AppError::Validation(ValidationError::single("name", m))
        }
        other => other,
    };
    let errors = FieldErrors::from_app(e, str::to_owned)?;
    let view = lists_page(ui, admin, errors, form, typed).await?;
    render(StatusCode::UNPROCESSABLE_ENTITY, &view)
}

#[derive(Deserialize)]
struct NewListForm {
    #[serde(default)]
    name: String,
}

async fn create(
    State(ui): State<Ui>,
    jar: CookieJar,
    admin: Admin,
    Form(f): Form<NewListForm>,
) -> Result<Response, UiError> {
    let result = match Name::parse("name", &f.name) {
        Ok(name) => {
            casebridge_app::named::create(&ui.app, admin.session.company_id, NamedKind::List, &name)
                .await
        }
        Err(e) => Err(e.into()),
    };
    match result {
        Ok(list) => Ok(done(
            &ui,
            jar,
            &format!("/ui/lists#list-{}", list.id),
            format!("List {} created.", list.name),
        )),
        Err(e) => {
            let typed = Typed {
                name: f.name,
                ..Typed::default()
            };
            refused(&ui, &admin, e, "new-list", typed).await
        }
    }
}

#[derive(Deserialize)]
struct RuleForm {
    #[serde(default)]
    case_type: String,
    #[serde(default)]
    status: String,
}

async fn add_rule(
    State(ui): State<Ui>,
    jar: CookieJar,
    admin: Admin,
    Path(id): Path<String>,
    Form(f): Form<RuleForm>,
) -> Result<Response, UiError> {
    let new = NewRule {
        provider: Some(Provider::LawRuler.as_str()),
        case_type: Some(f.case_type.as_str()),
        status: Some(f.status.as_str()),
    };
    match rules::add_rule(&ui.app, admin.session.company_id, &id, &new).await {
        Ok(_) => Ok(done(
            &ui,
            jar,
            &format!("/ui/lists#list-{id}"),
            "Auto-add rule added: matching Law Ruler leads are put on the list as they sync.",
        )),
        Err(e) => {
            let typed = Typed {
                case_type: f.case_type,
                status: f.status,
                ..Typed::default()
            };
            refused(&ui, &admin, e, &id, typed).await
        }
    }
}

async fn delete_rule(
    State(ui): State<Ui>,
    jar: CookieJar,
    admin: Admin,
    Path((id, rule_id)): Path<(String, String)>,
) -> Result<Response, UiError> {
    rules::delete_rule(&ui.app, admin.session.company_id, &id, &rule_id).await?;
    Ok(done(
        &ui,
        jar,
        &format!("/ui/lists#list-{id}"),
        "Auto-add rule deleted. Cases already on the list stay on it.",
    ))
}
