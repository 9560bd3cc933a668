use axum::extract::State;
use axum::http::StatusCode;
use casebridge_app::clients;
use casebridge_domain::error::Validator;
use casebridge_domain::ids::ClientId;
use casebridge_domain::records::{
    parse_external_refs, ClientFields, ClientFilter, ClientInput, ClientPatch, ExternalRef,
    NewClient,
};
use casebridge_domain::ValidationError;
use serde::Deserialize;
use utoipa::IntoParams;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::dto::{
    page_request, ref_pairs, ClientOut, CreateClient, ExternalRefBody, PageOut, RefQuery,
    UpdateClient,
};
use crate::error::{ApiError, ErrorBody};
use crate::extract::{path_id, Auth, Json, Path, Query};
use crate::AppState;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_clients, create_client))
        .routes(routes!(client_by_external_ref))
        .routes(routes!(get_client, update_client, delete_client))
        .routes(routes!(add_client_ref))
}

fn parse_new(body: CreateClient) -> Result<NewClient, ValidationError> {
    let mut v = Validator::new();
    let fields = ClientFields::parse(
        ClientInput {
            first_name: body.first_name.as_deref(),
            last_name: body.last_name.as_deref(),
            email: body.email.as_deref(),
            phone: body.phone.as_deref(),
        },
        &mut v,
    );
    let external_refs = parse_external_refs(&ref_pairs(&body.external_refs), &mut v);
    v.finish()?;
    Ok(NewClient {
        fields: fields.expect("validated"),
        external_refs,
    })
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
struct ClientQuery {
    /// Exact email, case-insensitive.
    email: Option<String>,
    /// Exact phone number as stored.
    phone: Option<String>,
    cursor: Option<String>,
    limit: Option<u32>,
}

/// Lists clients, optionally filtered by email or phone.
#[utoipa::path(get, path = "/clients", tag = "clients", security(("bearer" = [])),
    params(ClientQuery), responses((status = 200, body = PageOut<ClientOut>)))]
async fn list_clients(
    State(s): State<AppState>,
    Auth(company): Auth,
    Query(q): Query<ClientQuery>,
) -> Result<axum::Json<PageOut<ClientOut>>, ApiError> {
    let page = page_request(q.cursor, q.limit)?;
    let filter = ClientFilter {
        email: q.email,
        phone: q.phone,
        ..ClientFilter::default()
    };
    let found = clients::list(&s.app, company, &filter, &page).await?;
    Ok(axum::Json(PageOut::from_page(found, Into::into)))
}

/// Creates a client, with optional external refs (`(provider, external_id)`, unique per company).
#[utoipa::path(post, path = "/clients", tag = "clients", security(("bearer" = [])),
    request_body = CreateClient,
    responses((status = 201, body = ClientOut), (status = 409, body = ErrorBody),
              (status = 422, body = ErrorBody)))]
async fn create_client(
    State(s): State<AppState>,
    Auth(company): Auth,
    Json(body): Json<CreateClient>,
) -> Result<(StatusCode, axum::Json<ClientOut>), ApiError> {
    let new = parse_new(body)?;
    let client = clients::create(&s.app, company, &new).await?;
    Ok((StatusCode::CREATED, axum::Json(client.into())))
}

/// Finds the client that carries an external ref.
#[utoipa::path(get, path = "/clients/by-external-ref", tag = "clients", security(("bearer" = [])),
    params(RefQuery),
    responses((status = 200, body = ClientOut), (status = 404, body = ErrorBody)))]
async fn client_by_external_ref(
    State(s): State<AppState>,
    Auth(company): Auth,
    Query(q): Query<RefQuery>,
) -> Result<axum::Json<ClientOut>, ApiError> {
    let client = clients::by_external_ref(&s.app, company, &q.provider, &q.external_id).await?;
    Ok(axum::Json(client.into()))
}

#[utoipa::path(get, path = "/clients/{id}", tag = "clients", security(("bearer" = [])),
    params(("id" = String, Path)),
    responses((status = 200, body = ClientOut), (status = 404, body = ErrorBody)))]
async fn get_client(
    State(s): State<AppState>,
    Auth(company): Auth,
    Path(id): Path<String>,
) -> Result<axum::Json<ClientOut>, ApiError> {
    let client_id: ClientId = path_id(&id, "client")?;
    let client = clients::get(&s.app, company, client_id).await?;
    Ok(axum::Json(client.into()))
}

/// Updates a client; omitted fields stay, `null` clears. The client must keep a name.
#[utoipa::path(patch, path = "/clients/{id}", tag = "clients", security(("bearer" = [])),
    params(("id" = String, Path)), request_body = UpdateClient,
    responses((status = 200, body = ClientOut), (status = 404, body = ErrorBody),
              (status = 422, body = ErrorBody)))]
async fn update_client(
    State(s): State<AppState>,
    Auth(company): Auth,
    Path(id): Path<String>,
    Json(body): Json<UpdateClient>,
) -> Result<axum::Json<ClientOut>, ApiError> {
    let client_id: ClientId = path_id(&id, "client")?;
    let patch = ClientPatch {
        first_name: body.first_name,
        last_name: body.last_name,
        email: body.email,
        phone: body.phone,
    };
    let client = clients::update(&s.app, company, client_id, &patch).await?;
    Ok(axum::Json(client.into()))
}

/// Deletes a client that has no cases.
#[utoipa::path(delete, path = "/clients/{id}", tag = "clients", security(("bearer" = [])),
    params(("id" = String, Path)),
    responses((status = 204), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
async fn delete_client(
    State(s): State<AppState>,
    Auth(company): Auth,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let client_id: ClientId = path_id(&id, "client")?;
    clients::delete(&s.app, company, client_id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Attaches an external ref to a client. 409 if another client holds it.
#[utoipa::path(post, path = "/clients/{id}/external-refs", tag = "clients",
    security(("bearer" = [])), params(("id" = String, Path)), request_body = ExternalRefBody,
    responses((status = 200, body = ClientOut), (status = 404, body = ErrorBody),
              (status = 409, body = ErrorBody)))]
async fn add_client_ref(
    State(s): State<AppState>,
    Auth(company): Auth,
    Path(id): Path<String>,
    Json(body): Json<ExternalRefBody>,
) -> Result<axum::Json<ClientOut>, ApiError> {
    let client_id: ClientId = path_id(&id, "client")?;
    let r = ExternalRef::parse("external_ref", &body.provider, &body.external_id)?;
    let client = clients::add_ref(&s.app, company, client_id, r).await?;
    Ok(axum::Json(client.into()))
}
