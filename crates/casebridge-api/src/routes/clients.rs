use axum::extract::{Path, State};
use axum::http::StatusCode;
use casebridge_crm::lawruler::outbound;
use casebridge_domain::error::Validator;
use casebridge_domain::ids::ClientId;
use casebridge_domain::records::{
    parse_external_refs, ClientFields, ClientFilter, ClientInput, ClientPatch, ExternalRef,
    NewClient,
};
use casebridge_domain::ValidationError;
use casebridge_store::clients;
use serde::Deserialize;
use utoipa::IntoParams;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::dto::{
    page_request, ref_pairs, ClientOut, CreateClient, ExternalRefBody, PageOut, UpdateClient,
};
use crate::error::{ApiError, ErrorBody, OrNotFound};
use crate::extract::{path_id, Auth, Json, Query};
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
    };
    let mut conn = s.store.conn().await?;
    let found = clients::list(&mut conn, company, &filter, &page).await?;
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
    let mut tx = s.store.begin().await?;
    let client = clients::create(&mut tx, company, &new, s.clock.now()).await?;
    tx.commit().await?;
    Ok((StatusCode::CREATED, axum::Json(client.into())))
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub(super) struct RefQuery {
    /// e.g. `lawruler`
    provider: String,
    external_id: String,
}

impl RefQuery {
    pub(super) fn parts(&self) -> (&str, &str) {
        (&self.provider, &self.external_id)
    }

    pub(super) fn describe(&self) -> String {
        format!("{}/{}", self.provider, self.external_id)
    }
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
    let mut conn = s.store.conn().await?;
    let client = clients::find_by_ref(&mut conn, company, &q.provider, &q.external_id)
        .await
        .map_err(|e| match e {
            casebridge_store::StoreError::NotFound => {
                ApiError::NotFound(format!("no client with external ref {}", q.describe()))
            }
            e => e.into(),
        })?;
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
    let mut conn = s.store.conn().await?;
    let client = clients::get(&mut conn, company, client_id)
        .await
        .or_not_found("client", &id)?;
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
    let now = s.clock.now();
    let mut tx = s.store.begin().await?;
    let before = clients::get_for_update(&mut tx, company, client_id)
        .await
        .or_not_found("client", &id)?;
    let client = clients::update(&mut tx, company, client_id, &patch, now)
        .await
        .or_not_found("client", &id)?;
    outbound::client_changed(&mut tx, company, &before, &client, now).await?;
    tx.commit().await?;
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
    let mut tx = s.store.begin().await?;
    clients::delete(&mut tx, company, client_id)
        .await
        .or_not_found("client", &id)?;
    tx.commit().await?;
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
    let mut tx = s.store.begin().await?;
    let client = clients::add_refs(&mut tx, company, client_id, &[r], s.clock.now())
        .await
        .or_not_found("client", &id)?;
    tx.commit().await?;
    Ok(axum::Json(client.into()))
}
