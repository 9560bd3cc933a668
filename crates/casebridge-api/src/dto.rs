//! Request and response bodies. Separate from domain types: these are the public contract.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use casebridge_domain::model::{ApiKeyInfo, Case, Client, Company, Named};
use casebridge_domain::page::{Page, PageRequest};
use casebridge_domain::records::ExternalRef;
use casebridge_domain::ValidationError;
use jiff::Timestamp;
use serde::{Deserialize, Deserializer, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::error::ApiError;

/// A page of results. Pass `next_cursor` back as `cursor` for the next page; it is absent on
/// the last page.
#[derive(Debug, Serialize, ToSchema)]
pub struct PageOut<T: ToSchema> {
    pub data: Vec<T>,
    pub next_cursor: Option<String>,
}

impl<T: ToSchema> PageOut<T> {
    pub fn from_page<U>(page: Page<U>, f: impl FnMut(U) -> T) -> Self {
        let page = page.map(f);
        Self {
            data: page.items,
            next_cursor: page.next_after.map(|a| URL_SAFE_NO_PAD.encode(a)),
        }
    }
}

/// `?cursor=&limit=` for list endpoints without filters.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct PageQuery {
    /// `next_cursor` from the previous page.
    pub cursor: Option<String>,
    /// 1-200, default 50.
    pub limit: Option<u32>,
}

/// Turns `?cursor=&limit=` into a page request; a cursor we did not issue is a 422.
pub fn page_request(cursor: Option<String>, limit: Option<u32>) -> Result<PageRequest, ApiError> {
    let after = cursor
        .map(|c| {
            URL_SAFE_NO_PAD
                .decode(c.as_bytes())
                .ok()
                .and_then(|b| String::from_utf8(b).ok())
                .filter(|s| uuid::Uuid::parse_str(s).is_ok())
                .ok_or_else(|| {
                    ValidationError::single("cursor", "is not a cursor returned by this API")
                })
        })
        .transpose()?;
    Ok(PageRequest::new(after, limit)?)
}

/// For PATCH bodies: tells "absent" (`None`) from "null" (`Some(None)`).
pub fn double_option<'de, T, D>(d: D) -> Result<Option<Option<T>>, D::Error>
where
    T: Deserialize<'de>,
    D: Deserializer<'de>,
{
    Option::<T>::deserialize(d).map(Some)
}

/// Every instant the API answers with: RFC 3339 in UTC, always milliseconds,
/// e.g. `2026-11-20T09:30:00.000Z`. One precision, whatever the clock or the backend stored.
pub fn time(t: Timestamp) -> String {
    format!("{t:.3}")
}

#[derive(Debug, Serialize, Deserialize, ToSchema, Clone)]
#[serde(deny_unknown_fields)]
pub struct ExternalRefBody {
    /// A short lower-case provider slug, e.g. `lawruler`.
    #[schema(example = "lawruler")]
    pub provider: String,
    /// The record's id in that system.
    #[schema(example = "10234")]
    pub external_id: String,
}

/// `?provider=&external_id=`: finds a record by one of its external refs.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct RefQuery {
    /// e.g. `lawruler`
    pub provider: String,
    pub external_id: String,
}

impl From<ExternalRef> for ExternalRefBody {
    fn from(r: ExternalRef) -> Self {
        Self {
            provider: r.provider,
            external_id: r.external_id,
        }
    }
}

pub fn ref_pairs(refs: &[ExternalRefBody]) -> Vec<(String, String)> {
    refs.iter()
        .map(|r| (r.provider.clone(), r.external_id.clone()))
        .collect()
}

#[derive(Debug, Serialize, ToSchema)]
pub struct CompanyOut {
    pub id: String,
    pub name: String,
    /// IANA time zone used for scheduling and for times shown to the firm.
    pub timezone: String,
    pub created_at: String,
    pub updated_at: String,
}

impl From<Company> for CompanyOut {
    fn from(c: Company) -> Self {
        Self {
            id: c.id.to_string(),
            name: c.name,
            timezone: c.timezone,
            created_at: time(c.created_at),
            updated_at: time(c.updated_at),
        }
    }
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateCompany {
    pub name: Option<String>,
    #[schema(example = "America/New_York")]
    pub timezone: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ApiKeyOut {
    pub id: String,
    pub name: String,
    /// The first characters of the key, to recognise it. The key itself is shown only once.
    pub prefix: String,
    pub created_at: String,
    pub revoked_at: Option<String>,
}

impl From<ApiKeyInfo> for ApiKeyOut {
    fn from(k: ApiKeyInfo) -> Self {
        Self {
            id: k.id.to_string(),
            name: k.name,
            prefix: k.prefix,
            created_at: time(k.created_at),
            revoked_at: k.revoked_at.map(time),
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct CreatedApiKeyOut {
    #[serde(flatten)]
    pub info: ApiKeyOut,
    /// The secret key. Store it now: it is not shown again.
    pub key: String,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateApiKey {
    #[schema(example = "voice agent runtime")]
    pub name: String,
}

/// A case type, case status, campaign or list.
#[derive(Debug, Serialize, ToSchema)]
pub struct NamedOut {
    pub id: String,
    pub name: String,
    pub created_at: String,
    pub updated_at: String,
}

impl From<Named> for NamedOut {
    fn from(n: Named) -> Self {
        Self {
            id: n.id,
            name: n.name,
            created_at: time(n.created_at),
            updated_at: time(n.updated_at),
        }
    }
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NamedBody {
    #[schema(example = "Motor Vehicle Accident")]
    pub name: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ClientOut {
    pub id: String,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub email: Option<String>,
    pub phone: Option<String>,
    pub external_refs: Vec<ExternalRefBody>,
    pub created_at: String,
    pub updated_at: String,
}

impl From<Client> for ClientOut {
    fn from(c: Client) -> Self {
        Self {
            id: c.id.to_string(),
            first_name: c.fields.first_name,
            last_name: c.fields.last_name,
            email: c.fields.email,
            phone: c.fields.phone,
            external_refs: c.external_refs.into_iter().map(Into::into).collect(),
            created_at: time(c.created_at),
            updated_at: time(c.updated_at),
        }
    }
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateClient {
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub email: Option<String>,
    pub phone: Option<String>,
    #[serde(default)]
    pub external_refs: Vec<ExternalRefBody>,
}

/// Fields left out are unchanged; `null` clears a field.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateClient {
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<String>)]
    pub first_name: Option<Option<String>>,
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<String>)]
    pub last_name: Option<Option<String>>,
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<String>)]
    pub email: Option<Option<String>>,
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<String>)]
    pub phone: Option<Option<String>>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct CaseOut {
    pub id: String,
    pub name: String,
    pub case_type_id: String,
    pub case_status_id: Option<String>,
    pub client_id: Option<String>,
    /// The campaign the case belongs to, if any.
    pub campaign_id: Option<String>,
    /// Firm-defined values by field name.
    #[schema(value_type = Object)]
    pub custom_fields: serde_json::Value,
    pub external_refs: Vec<ExternalRefBody>,
    pub created_at: String,
    pub updated_at: String,
}

impl From<Case> for CaseOut {
    fn from(c: Case) -> Self {
        Self {
            id: c.id.to_string(),
            name: c.name,
            case_type_id: c.case_type_id.to_string(),
            case_status_id: c.case_status_id.map(|i| i.to_string()),
            client_id: c.client_id.map(|i| i.to_string()),
            campaign_id: c.campaign_id.map(|i| i.to_string()),
            custom_fields: c.custom_fields,
            external_refs: c.external_refs.into_iter().map(Into::into).collect(),
            created_at: time(c.created_at),
            updated_at: time(c.updated_at),
        }
    }
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateCase {
    #[schema(example = "Jane Doe – rear-end collision")]
    pub name: String,
    pub case_type_id: String,
    pub case_status_id: Option<String>,
    pub client_id: Option<String>,
    pub campaign_id: Option<String>,
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub custom_fields: Option<serde_json::Value>,
    #[serde(default)]
    pub external_refs: Vec<ExternalRefBody>,
}

/// Fields left out are unchanged; `null` clears `case_status_id` or `client_id`.
/// `custom_fields` is merged: given keys replace, keys set to `null` are removed.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateCase {
    pub name: Option<String>,
    pub case_type_id: Option<String>,
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<String>)]
    pub case_status_id: Option<Option<String>>,
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<String>)]
    pub client_id: Option<Option<String>>,
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<String>)]
    pub campaign_id: Option<Option<String>>,
    #[schema(value_type = Option<Object>)]
    pub custom_fields: Option<serde_json::Value>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AddCaseToList {
    pub case_id: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct HealthOut {
    pub status: &'static str,
}
