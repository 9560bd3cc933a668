//! Case types, case statuses, campaigns and lists share one shape and one set of handlers,
//! generated per kind so each gets its own documented paths.

use casebridge_domain::records::Name;
use utoipa_axum::router::OpenApiRouter;

use crate::AppState;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .merge(case_types::routes())
        .merge(case_statuses::routes())
        .merge(campaigns::routes())
        .merge(lists::routes())
}

fn parse_name(raw: &str) -> Result<Name, crate::ApiError> {
    Ok(Name::parse("name", raw)?)
}

macro_rules! named_resource {
    ($module:ident, $kind:expr, $label:literal, $tag:literal, $list:literal, $item:literal) => {
        pub mod $module {
            use axum::extract::State;
            use crate::extract::Path;
            use axum::http::StatusCode;
            use casebridge_app::named;
            use casebridge_domain::records::NamedKind;
            use utoipa_axum::router::OpenApiRouter;
            use utoipa_axum::routes;

            use crate::dto::{page_request, NamedBody, NamedOut, PageOut, PageQuery};
            use crate::error::{ApiError, ErrorBody};
            use crate::extract::{Auth, Json, Query};
            use crate::AppState;

            const KIND: NamedKind = $kind;

            pub fn routes() -> OpenApiRouter<AppState> {
                OpenApiRouter::new()
                    .routes(routes!(list, create))
                    .routes(routes!(get_one, rename, delete))
            }

            #[doc = concat!("Lists the company's ", $tag, ".")]
            #[utoipa::path(get, path = $list, tag = $tag,
                operation_id = concat!("list_", stringify!($module)), security(("bearer" = [])),
                params(PageQuery), responses((status = 200, body = PageOut<NamedOut>)))]
            async fn list(
                State(s): State<AppState>,
                Auth(company): Auth,
                Query(q): Query<PageQuery>,
            ) -> Result<axum::Json<PageOut<NamedOut>>, ApiError> {
                let page = page_request(q.cursor, q.limit)?;
                let items = named::list(&s.app, company, KIND, &page).await?;
                Ok(axum::Json(PageOut::from_page(items, Into::into)))
            }

            #[doc = concat!("Creates a ", $label, ". Names are unique within the company.")]
            #[utoipa::path(post, path = $list, tag = $tag,
                operation_id = concat!("create_", stringify!($module)), security(("bearer" = [])),
                request_body = NamedBody,
                responses((status = 201, body = NamedOut), (status = 409, body = ErrorBody),
                          (status = 422, body = ErrorBody)))]
            async fn create(
                State(s): State<AppState>,
                Auth(company): Auth,
                Json(body): Json<NamedBody>,
            ) -> Result<(StatusCode, axum::Json<NamedOut>), ApiError> {
                let name = super::parse_name(&body.name)?;
                let created = named::create(&s.app, company, KIND, &name).await?;
                Ok((StatusCode::CREATED, axum::Json(created.into())))
            }

            #[doc = concat!("One ", $label, ".")]
            #[utoipa::path(get, path = $item, tag = $tag,
                operation_id = concat!("get_", stringify!($module)), security(("bearer" = [])),
                params(("id" = String, Path)),
                responses((status = 200, body = NamedOut), (status = 404, body = ErrorBody)))]
            async fn get_one(
                State(s): State<AppState>,
                Auth(company): Auth,
                Path(id): Path<String>,
            ) -> Result<axum::Json<NamedOut>, ApiError> {
                let found = named::get(&s.app, company, KIND, &id).await?;
                Ok(axum::Json(found.into()))
            }

            #[doc = concat!("Renames a ", $label, ".")]
            #[utoipa::path(patch, path = $item, tag = $tag,
                operation_id = concat!("rename_", stringify!($module)), security(("bearer" = [])),
                params(("id" = String, Path)), request_body = NamedBody,
                responses((status = 200, body = NamedOut), (status = 404, body = ErrorBody),
                          (status = 409, body = ErrorBody)))]
            async fn rename(
                State(s): State<AppState>,
                Auth(company): Auth,
                Path(id): Path<String>,
                Json(body): Json<NamedBody>,
            ) -> Result<axum::Json<NamedOut>, ApiError> {
                let name = super::parse_name(&body.name)?;
                let renamed = named::rename(&s.app, company, KIND, &id, &name).await?;
                Ok(axum::Json(renamed.into()))
            }

            #[doc = concat!("Deletes a ", $label, " that no case uses.")]
            #[utoipa::path(delete, path = $item, tag = $tag,
                operation_id = concat!("delete_", stringify!($module)), security(("bearer" = [])),
                params(("id" = String, Path)),
                responses((status = 204), (status = 404, body = ErrorBody),
                          (status = 409, body = ErrorBody)))]
            async fn delete(
                State(s): State<AppState>,
                Auth(company): Auth,
                Path(id): Path<String>,
            ) -> Result<StatusCode, ApiError> {
                named::delete(&s.app, company, KIND, &id).await?;
                Ok(StatusCode::NO_CONTENT)
            }
        }
    };
}

named_resource!(
    case_types,
    NamedKind::CaseType,
    "case type",
    "case types",
    "/case-types",
    "/case-types/{id}"
);
named_resource!(
    case_statuses,
    NamedKind::CaseStatus,
    "case status",
    "case statuses",
    "/case-statuses",
    "/case-statuses/{id}"
);
named_resource!(
    campaigns,
    NamedKind::Campaign,
    "campaign",
    "campaigns",
    "/campaigns",
    "/campaigns/{id}"
);
named_resource!(
    lists,
    NamedKind::List,
    "list",
    "lists",
    "/lists",
    "/lists/{id}"
);
