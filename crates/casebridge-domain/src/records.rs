//! Case types, case statuses, campaigns, lists, clients and cases, as validated inputs.

use jiff::Timestamp;
use serde_json::{Map, Value};

use crate::error::{ValidationError, Validator};
use crate::ids::{CampaignId, CaseStatusId, CaseTypeId, ClientId};

const MAX_NAME: usize = 200;

/// A trimmed, non-empty display name of at most 200 characters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Name(String);

impl Name {
    pub fn parse(field: &str, raw: &str) -> Result<Self, ValidationError> {
        let t = raw.trim();
        if t.is_empty() {
            return Err(ValidationError::single(field, "must not be empty"));
        }
        if t.chars().count() > MAX_NAME {
            return Err(ValidationError::single(
                field,
                format!("must be at most {MAX_NAME} characters"),
            ));
        }
        Ok(Self(t.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn into_string(self) -> String {
        self.0
    }
}

/// The simple named resources, which share one shape: an id, a company and a unique name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum NamedKind {
    CaseType,
    CaseStatus,
    Campaign,
    List,
}

impl NamedKind {
    /// What an admin calls one of these, for messages.
    pub fn label(self) -> &'static str {
        match self {
            NamedKind::CaseType => "case type",
            NamedKind::CaseStatus => "case status",
            NamedKind::Campaign => "campaign",
            NamedKind::List => "list",
        }
    }
}

/// A reference to a record in another system: `(provider, external_id)`, unique per company and
/// record kind, so that updates from a CRM find the same case or client again.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ExternalRef {
    pub provider: String,
    pub external_id: String,
}

impl ExternalRef {
    /// `provider` is a short lower-case slug (`lawruler`, `smartadvocate`); `external_id` is the
    /// other system's id as text, 1–255 characters.
    pub fn parse(field: &str, provider: &str, external_id: &str) -> Result<Self, ValidationError> {
        let mut v = Validator::new();
        let provider = provider.trim();
        let ok_provider = !provider.is_empty()
            && provider.len() <= 32
            && provider
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-');
        if !ok_provider {
            v.push(
                format!("{field}.provider"),
                "must be 1-32 characters of a-z, 0-9, '_' or '-'",
            );
        }
        let external_id = external_id.trim();
        if external_id.is_empty() || external_id.len() > 255 {
            v.push(format!("{field}.external_id"), "must be 1-255 characters");
        }
        v.finish()?;
        Ok(Self {
            provider: provider.to_owned(),
            external_id: external_id.to_owned(),
        })
    }
}

/// Parses a list of external refs, rejecting the same provider twice (one id per provider).
pub fn parse_external_refs(refs: &[(String, String)], v: &mut Validator) -> Vec<ExternalRef> {
    let mut out: Vec<ExternalRef> = Vec::with_capacity(refs.len());
    for (i, (provider, id)) in refs.iter().enumerate() {
        let field = format!("external_refs[{i}]");
        if let Some(r) = v.check(ExternalRef::parse(&field, provider, id)) {
            if out.iter().any(|o| o.provider == r.provider) {
                v.push(field, format!("provider `{}` given twice", r.provider));
            } else {
                out.push(r);
            }
        }
    }
    out
}

fn optional_text(v: &mut Validator, field: &str, raw: Option<&str>, max: usize) -> Option<String> {
    let t = raw.map(str::trim).filter(|t| !t.is_empty())?;
    if t.chars().count() > max {
        v.push(field, format!("must be at most {max} characters"));
        return None;
    }
    Some(t.to_owned())
}

fn email(v: &mut Validator, raw: Option<&str>) -> Option<String> {
    let e = optional_text(v, "email", raw, 254)?;
    let valid = match e.split_once('@') {
        Some((local, domain)) => {
            !local.is_empty() && domain.contains('.') && !e.contains(char::is_whitespace)
        }
        None => false,
    };
    if valid {
        Some(e)
    } else {
        v.push("email", "is not an email address");
        None
    }
}

fn phone(v: &mut Validator, raw: Option<&str>) -> Option<String> {
    let p = optional_text(v, "phone", raw, 32)?;
    let ok = p.chars().any(|c| c.is_ascii_digit())
        && p.chars()
            .all(|c| c.is_ascii_digit() || " +-().".contains(c));
    if ok {
        Some(p)
    } else {
        v.push("phone", "may contain only digits, spaces and + - ( ) .");
        None
    }
}

/// The fields of a client as given by a caller, before validation.
#[derive(Debug, Clone, Default)]
pub struct ClientInput<'a> {
    pub first_name: Option<&'a str>,
    pub last_name: Option<&'a str>,
    pub email: Option<&'a str>,
    pub phone: Option<&'a str>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientFields {
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub email: Option<String>,
    pub phone: Option<String>,
}

impl ClientFields {
    /// A client needs at least a first or a last name.
    pub fn parse(input: ClientInput<'_>, v: &mut Validator) -> Option<Self> {
        let first_name = optional_text(v, "first_name", input.first_name, MAX_NAME);
        let last_name = optional_text(v, "last_name", input.last_name, MAX_NAME);
        let email = email(v, input.email);
        let phone = phone(v, input.phone);
        if first_name.is_none()
            && last_name.is_none()
            && input.first_name.is_none_or(|s| s.trim().is_empty())
            && input.last_name.is_none_or(|s| s.trim().is_empty())
        {
            v.push("first_name", "a client needs a first or a last name");
            return None;
        }
        Some(Self {
            first_name,
            last_name,
            email,
            phone,
        })
    }

    pub fn display_name(&self) -> String {
        [self.first_name.as_deref(), self.last_name.as_deref()]
            .into_iter()
            .flatten()
            .collect::<Vec<_>>()
            .join(" ")
    }
}

#[derive(Debug, Clone)]
pub struct NewClient {
    pub fields: ClientFields,
    pub external_refs: Vec<ExternalRef>,
}

/// Custom field values on a case: a JSON object of at most 200 keys, each 1-100 characters.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct CustomFields(Map<String, Value>);

impl CustomFields {
    pub fn parse(raw: Value) -> Result<Self, ValidationError> {
        let Value::Object(map) = raw else {
            return Err(ValidationError::single(
                "custom_fields",
                "must be a JSON object of field name to value",
            ));
        };
        if map.len() > 200 {
            return Err(ValidationError::single(
                "custom_fields",
                "at most 200 custom fields",
            ));
        }
        if let Some(k) = map.keys().find(|k| k.is_empty() || k.chars().count() > 100) {
            return Err(ValidationError::single(
                format!("custom_fields.{k}"),
                "field names must be 1-100 characters",
            ));
        }
        Ok(Self(map))
    }

    pub fn as_map(&self) -> &Map<String, Value> {
        &self.0
    }

    pub fn into_value(self) -> Value {
        Value::Object(self.0)
    }

    /// Applies a patch: keys with `null` are removed, others replace.
    pub fn merge(&mut self, patch: CustomFields) {
        for (k, val) in patch.0 {
            if val.is_null() {
                self.0.remove(&k);
            } else {
                self.0.insert(k, val);
            }
        }
    }
}

#[derive(Debug, Clone)]
pub struct NewCase {
    pub name: Name,
    pub case_type_id: CaseTypeId,
    pub case_status_id: Option<CaseStatusId>,
    pub client_id: Option<ClientId>,
    pub campaign_id: Option<CampaignId>,
    pub custom_fields: CustomFields,
    pub external_refs: Vec<ExternalRef>,
}

/// A partial update of a case. `Some(None)` clears a nullable field.
#[derive(Debug, Clone, Default)]
pub struct CasePatch {
    pub name: Option<Name>,
    pub case_type_id: Option<CaseTypeId>,
    pub case_status_id: Option<Option<CaseStatusId>>,
    pub client_id: Option<Option<ClientId>>,
    pub campaign_id: Option<Option<CampaignId>>,
    /// Merged into the existing values; `null` removes a key.
    pub custom_fields: Option<CustomFields>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn names_are_trimmed_and_bounded() {
        assert_eq!(Name::parse("n", "  Auto  ").unwrap().as_str(), "Auto");
        assert!(Name::parse("n", "   ").is_err());
        assert!(Name::parse("n", &"x".repeat(201)).is_err());
    }

    #[test]
    fn external_refs_validate_provider_and_reject_duplicates() {
        assert!(ExternalRef::parse("r", "LawRuler", "1").is_err());
        assert!(ExternalRef::parse("r", "lawruler", " ").is_err());
        let mut v = Validator::new();
        let refs = parse_external_refs(
            &[
                ("lawruler".into(), "1".into()),
                ("lawruler".into(), "2".into()),
            ],
            &mut v,
        );
        assert_eq!(refs.len(), 1);
        assert!(v.finish().is_err());
    }

    #[test]
    fn client_needs_a_name_and_valid_contacts() {
        let mut v = Validator::new();
        assert!(ClientFields::parse(ClientInput::default(), &mut v).is_none());
        assert!(v.finish().is_err());

        let mut v = Validator::new();
        ClientFields::parse(
            ClientInput {
                first_name: Some("Ana"),
                email: Some("not-an-email"),
                phone: Some("call me"),
                ..Default::default()
            },
            &mut v,
        );
        let err = v.finish().unwrap_err();
        let fields: Vec<_> = err.errors.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(fields, ["email", "phone"]);
    }

    #[test]
    fn custom_fields_must_be_an_object_and_merge_removes_nulls() {
        assert!(CustomFields::parse(json!([1])).is_err());
        let mut cf = CustomFields::parse(json!({"a": 1, "b": "x"})).unwrap();
        cf.merge(CustomFields::parse(json!({"a": null, "c": true})).unwrap());
        assert_eq!(cf.into_value(), json!({"b": "x", "c": true}));
    }
}

/// Filters for listing cases; every filter is optional and they combine with AND.
#[derive(Debug, Clone, Default)]
pub struct CaseFilter {
    pub case_type_id: Option<CaseTypeId>,
    pub case_status_id: Option<CaseStatusId>,
    pub client_id: Option<ClientId>,
    /// Created at or after.
    pub created_since: Option<Timestamp>,
    /// Created before.
    pub created_until: Option<Timestamp>,
}

/// Filters for listing clients: exact email (case-insensitive) or phone.
#[derive(Debug, Clone, Default)]
pub struct ClientFilter {
    pub email: Option<String>,
    pub phone: Option<String>,
    /// Created at or after.
    pub created_since: Option<Timestamp>,
    /// Created before.
    pub created_until: Option<Timestamp>,
}

/// A partial update of a client. `Some(None)` clears a field.
#[derive(Debug, Clone, Default)]
pub struct ClientPatch {
    pub first_name: Option<Option<String>>,
    pub last_name: Option<Option<String>>,
    pub email: Option<Option<String>>,
    pub phone: Option<Option<String>>,
}

impl ClientPatch {
    /// Validates the patched result, not just the patch: the client must still have a name.
    pub fn apply(&self, current: &ClientFields) -> Result<ClientFields, ValidationError> {
        fn pick<'a>(patch: &'a Option<Option<String>>, cur: &'a Option<String>) -> Option<&'a str> {
            match patch {
                Some(v) => v.as_deref(),
                None => cur.as_deref(),
            }
        }
        let mut v = Validator::new();
        let fields = ClientFields::parse(
            ClientInput {
                first_name: pick(&self.first_name, &current.first_name),
                last_name: pick(&self.last_name, &current.last_name),
                email: pick(&self.email, &current.email),
                phone: pick(&self.phone, &current.phone),
            },
            &mut v,
        );
        v.finish()?;
        Ok(fields.expect("validated"))
    }
}
