//! Extractors that answer in the API's own error format, and the authenticated company.

use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use casebridge_domain::ids::CompanyId;
use serde::de::DeserializeOwned;

use crate::error::ApiError;
use crate::AppState;

/// `axum::Json` whose rejections are [`ApiError`]s (400 malformed, 422 wrong shape, 413, 415).
pub struct Json<T>(pub T);

impl<S, T> FromRequest<S> for Json<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let axum::Json(v) = axum::Json::<T>::from_request(req, state).await?;
        Ok(Json(v))
    }
}

/// An optional body: a request without a body (no `Content-Type`, no length) gives `None`;
/// a body that is there is held to the same rules as [`Json`].
impl<S, T> axum::extract::OptionalFromRequest<S> for Json<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Option<Self>, Self::Rejection> {
        let headers = req.headers();
        let empty = headers.get(axum::http::header::CONTENT_TYPE).is_none()
            && headers
                .get(axum::http::header::CONTENT_LENGTH)
                .is_none_or(|v| v.as_bytes() == b"0");
        if empty {
            return Ok(None);
        }
        <Self as FromRequest<S>>::from_request(req, state)
            .await
            .map(Some)
    }
}

/// `axum::extract::Query` whose rejections are [`ApiError`]s.
pub struct Query<T>(pub T);

impl<S, T> FromRequestParts<S> for Query<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let axum::extract::Query(v) =
            axum::extract::Query::<T>::from_request_parts(parts, state).await?;
        Ok(Query(v))
    }
}

/// The company whose API key authenticated the request. Every handler of tenant data takes it,
/// and every store call takes the [`CompanyId`] inside, so an unscoped query cannot be written.
#[derive(Debug, Clone, Copy)]
pub struct Auth(pub CompanyId);

impl FromRequestParts<AppState> for Auth {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let header = parts
            .headers
            .get(axum::http::header::AUTHORIZATION)
            .ok_or_else(|| {
                ApiError::Unauthorized("missing API key: send `Authorization: Bearer <key>`".into())
            })?;
        let key = header
            .to_str()
            .ok()
            .and_then(|h| {
                let (scheme, rest) = h.split_once(' ')?;
                scheme.eq_ignore_ascii_case("bearer").then(|| rest.trim())
            })
            .filter(|k| !k.is_empty())
            .ok_or_else(|| {
                ApiError::Unauthorized("the Authorization header must be `Bearer <key>`".into())
            })?;
        let company = casebridge_app::auth::company_for_api_key(&state.app, key)
            .await?
            .ok_or_else(|| ApiError::Unauthorized("the API key is not valid".into()))?;
        tracing::Span::current().record("company.id", tracing::field::display(company));
        Ok(Auth(company))
    }
}

/// Parses an id from the path. An id that cannot exist is simply not found.
pub fn path_id<T: std::str::FromStr>(raw: &str, what: &str) -> Result<T, ApiError> {
    raw.parse().map_err(|_| ApiError::not_found(what, raw))
}
