//! Records as the rest of the system sees them once stored.

use jiff::Timestamp;
use serde_json::Value;

use crate::ids::{
    ApiKeyId, CampaignId, CaseId, CaseStatusId, CaseTypeId, ClientId, CompanyId, UserId,
};
use crate::records::{ClientFields, ExternalRef, NamedKind};

#[derive(Debug, Clone, PartialEq)]
pub struct Company {
    pub id: CompanyId,
    pub name: String,
    pub timezone: String,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

/// What is shown of an API key after it was created: never the key itself.
#[derive(Debug, Clone, PartialEq)]
pub struct ApiKeyInfo {
    pub id: ApiKeyId,
    pub name: String,
    pub prefix: String,
    pub created_at: Timestamp,
    pub revoked_at: Option<Timestamp>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct User {
    pub id: UserId,
    pub company_id: CompanyId,
    pub email: String,
    pub created_at: Timestamp,
}

/// A case type, case status, campaign or list. The id is kept as text because the kind decides
/// which typed id it is.
#[derive(Debug, Clone, PartialEq)]
pub struct Named {
    pub kind: NamedKind,
    pub id: String,
    pub name: String,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Client {
    pub id: ClientId,
    pub fields: ClientFields,
    pub external_refs: Vec<ExternalRef>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Case {
    pub id: CaseId,
    pub name: String,
    pub case_type_id: CaseTypeId,
    pub case_status_id: Option<CaseStatusId>,
    pub client_id: Option<ClientId>,
    pub campaign_id: Option<CampaignId>,
    pub custom_fields: Value,
    pub external_refs: Vec<ExternalRef>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}
