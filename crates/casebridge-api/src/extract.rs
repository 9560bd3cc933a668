//! Extractors that answer in the API's own error format, and the authenticated company.

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, StatusCode};
use casebridge_domain::ids::CompanyId;
use casebridge_domain::input::{self, JsonInputError};
use casebridge_domain::ValidationError;
use serde::de::DeserializeOwned;

use crate::error::ApiError;
use crate::AppState;

/// `axum::Json` whose rejections are [`ApiError`]s (400 malformed, 422 wrong shape, 413, 415).
/// The body is also held to [`casebridge_domain::input`]'s rules: a NUL character in any string
/// or a key repeated with a different value answers 422 naming the field.
pub struct Json<T>(pub T);

impl<S, T> FromRequest<S> for Json<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        if !is_json(req.headers()) {
            return Err(ApiError::UnsupportedMediaType(
                "send the body as JSON with `Content-Type: application/json`".into(),
            ));
        }
        let bytes = Bytes::from_request(req, state)
            .await
            .map_err(body_rejection)?;
        Ok(Json(json_body(&bytes)?))
    }
}

/// Parses a JSON body under [`casebridge_domain::input`]'s rules, answering as [`Json`] does.
pub fn json_body<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    match input::strict_json(bytes) {
        // Read from the checked value, so that equal repeats of a key pass.
        Ok(value) => serde_path_to_error::deserialize(value).map_err(|e| {
            let path = e.path().to_string();
            let field = if path == "." { "body".to_owned() } else { path };
            ApiError::Validation(ValidationError::single(field, e.into_inner().to_string()))
        }),
        Err(JsonInputError::Invalid(v)) => Err(ApiError::Validation(v)),
        Err(JsonInputError::Syntax(e)) => Err(ApiError::BadRequest(format!(
            "the body is not valid JSON: {e}"
        ))),
    }
}

/// `Content-Type: application/json` or `application/<something>+json`, parameters allowed.
fn is_json(headers: &HeaderMap) -> bool {
    let Some(ct) = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
    else {
        return false;
    };
    let essence = ct
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    essence == "application/json"
        || (essence.starts_with("application/") && essence.ends_with("+json"))
}

/// A body that could not be read: over the limit (413) or broken off (400).
pub fn body_rejection(e: BytesRejection) -> ApiError {
    if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
        ApiError::PayloadTooLarge("the request body is larger than the limit".into())
    } else {
        ApiError::BadRequest(e.body_text())
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

/// `axum::extract::Query` whose rejections are [`ApiError`]s. A NUL character in a parameter
/// or a parameter repeated with a different value answers 422 naming it.
pub struct Query<T>(pub T);

impl<S, T> FromRequestParts<S> for Query<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        let pairs = query_pairs(parts.uri.query())?;
        // Read from the checked pairs, equal repeats dropped, so that they pass.
        let mut unique: Vec<&(String, String)> = Vec::with_capacity(pairs.len());
        for pair in &pairs {
            if !unique.contains(&pair) {
                unique.push(pair);
            }
        }
        let query = form_urlencoded::Serializer::new(String::new())
            .extend_pairs(unique)
            .finish();
        serde_urlencoded::from_str(&query).map(Query).map_err(|e| {
            ApiError::Validation(ValidationError::single(
                "query",
                format!("Failed to deserialize query string: {e}"),
            ))
        })
    }
}

/// The pairs of a query string, held to [`input::check_pairs`]'s rules.
pub fn query_pairs(query: Option<&str>) -> Result<Vec<(String, String)>, ApiError> {
    let pairs: Vec<(String, String)> = form_urlencoded::parse(query.unwrap_or("").as_bytes())
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    input::check_pairs(&pairs)?;
    Ok(pairs)
}

/// `axum::extract::Path` whose rejections are [`ApiError`]s. A segment that is not UTF-8
/// answers 400; a segment with a NUL character cannot name anything and answers 404.
pub struct Path<T>(pub T);

impl<S, T> FromRequestParts<S> for Path<T>
where
    T: DeserializeOwned + Send,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let raw = axum::extract::RawPathParams::from_request_parts(parts, state)
            .await
            .map_err(|e| ApiError::BadPath(e.body_text()))?;
        if let Some((_, v)) = raw.iter().find(|(_, v)| v.contains('\0')) {
            return Err(ApiError::NotFound(format!(
                "nothing is named `{}`",
                input::printable(v)
            )));
        }
        axum::extract::Path::<T>::from_request_parts(parts, state)
            .await
            .map(|axum::extract::Path(v)| Path(v))
            .map_err(|e| ApiError::BadPath(e.body_text()))
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
