//! What goes over the wire: the lead API's text answers, the Advanced API's JSON records, and
//! the parameter names of the lead and campaign APIs.

use std::collections::BTreeMap;
use std::fmt;

use jiff::Timestamp;
use serde::{Deserialize, Deserializer, Serialize};

/// The note category Law Ruler shows messages and call records under (seeds).
pub const CLIENT_COMMUNICATIONS: &str = "Client Communications";
/// The lead-API / campaign-API parameter carrying the Key.
pub const KEY_PARAM: &str = "Key";

/// The lead-API parameter name of custom field `id`: `custom1234`.
pub fn custom_field_param(id: &str) -> String {
    format!("custom{id}")
}

/// The campaign-API parameter name of custom field `id`: `Custom1234` (seed LR10).
pub fn campaign_custom_param(id: &str) -> String {
    format!("Custom{id}")
}

/// A Law Ruler case type (modelled Advanced API).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CaseType {
    #[serde(deserialize_with = "id_string")]
    pub id: String,
    pub name: String,
}

/// A Law Ruler lead status (modelled Advanced API).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Status {
    #[serde(deserialize_with = "id_string")]
    pub id: String,
    pub name: String,
}

/// A custom field of one case type (modelled Advanced API): what the field preview shows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CustomField {
    #[serde(deserialize_with = "id_string")]
    pub id: String,
    /// The key to send it under through the lead API, `custom<ID>`.
    pub key: String,
    pub label: String,
    /// `text`, `textarea`, `date`, `number`, `yesno`, … as Law Ruler names them.
    pub input_type: String,
    #[serde(default)]
    pub form_section: String,
}

/// A lead's current status, from the lead API's `Operation=GetStatus`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeadStatus {
    pub lead_id: String,
    pub status: String,
    pub status_id: Option<String>,
}

/// A note to add to a lead.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Note {
    /// Usually [`CLIENT_COMMUNICATIONS`].
    pub category: String,
    pub subject: String,
    pub body: String,
    /// Shown as the note's time in Law Ruler, so notes of one call appear in order.
    pub created_at: Timestamp,
}

/// The form field a document is uploaded under.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum FormField {
    /// Call recordings (seed: metadata "Recording").
    Recording,
    /// Any other document.
    File,
}

impl FormField {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Recording => "Recording",
            Self::File => "File",
        }
    }
}

impl fmt::Display for FormField {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A document to upload to a lead.
#[derive(Clone, PartialEq, Eq)]
pub struct Upload {
    /// Folder in the lead's documents, e.g. `/recordings`.
    pub folder: String,
    pub form_field: FormField,
    pub file_name: String,
    /// MIME type of `bytes`, e.g. `audio/mpeg`.
    pub content_type: String,
    pub bytes: Vec<u8>,
    pub created_at: Timestamp,
}

impl fmt::Debug for Upload {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Upload")
            .field("folder", &self.folder)
            .field("form_field", &self.form_field)
            .field("file_name", &self.file_name)
            .field("content_type", &self.content_type)
            .field("bytes", &format_args!("<{} bytes>", self.bytes.len()))
            .field("created_at", &self.created_at)
            .finish()
    }
}

/// A lead as the modelled "leads changed since" endpoint returns it. Standard fields have their
/// own members; every other field (custom fields as `custom<ID>`, address, …) is in `fields`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LeadRecord {
    #[serde(deserialize_with = "id_string")]
    pub lead_id: String,
    #[serde(default, deserialize_with = "opt_id_string")]
    pub primary_contact_id: Option<String>,
    #[serde(default, deserialize_with = "opt_id_string")]
    pub case_type_id: Option<String>,
    #[serde(default)]
    pub case_type: Option<String>,
    #[serde(default, deserialize_with = "opt_id_string")]
    pub status_id: Option<String>,
    #[serde(default)]
    pub status: Option<String>,
    #[serde(default)]
    pub first_name: Option<String>,
    #[serde(default)]
    pub last_name: Option<String>,
    #[serde(default)]
    pub email: Option<String>,
    #[serde(default)]
    pub cell_phone: Option<String>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
    #[serde(default)]
    pub fields: BTreeMap<String, String>,
}

/// A note as the modelled "notes changed since" endpoint returns it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NoteRecord {
    #[serde(deserialize_with = "id_string")]
    pub id: String,
    #[serde(deserialize_with = "id_string")]
    pub lead_id: String,
    pub category: String,
    #[serde(default)]
    pub subject: String,
    #[serde(default)]
    pub body: String,
    /// The note's own time (as given when it was written).
    pub created_at: Timestamp,
    /// When Law Ruler stored it; `changedSince` compares against this.
    pub updated_at: Timestamp,
}

/// The Voice AI call result sent through the campaign API (seed LR10), as typed values.
/// [`CampaignResult::to_params`] turns it into the parameters in the order the seed lists them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CampaignResult {
    pub lead_id: String,
    /// `Tags`, comma-joined; the seed sends `Kayse`.
    pub tags: Vec<String>,
    /// `Status`, the Law Ruler status name.
    pub status: Option<String>,
    /// `CellPhone`, only when "Sync enriched phones" is on.
    pub cell_phone: Option<String>,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    /// `(custom field id, value already turned into a string)` → `Custom<ID>=<value>`.
    pub custom: Vec<(String, String)>,
}

impl CampaignResult {
    /// `LeadID`, `OverriddenLead=true`, `Tags`, `Status`, `CellPhone`, `FirstName`, `LastName`,
    /// `Custom<ID>…`, leaving out what is `None` or empty. The Key is added by the client.
    pub fn to_params(&self) -> Vec<(String, String)> {
        let mut p = vec![
            ("LeadID".to_owned(), self.lead_id.clone()),
            ("OverriddenLead".to_owned(), "true".to_owned()),
        ];
        if !self.tags.is_empty() {
            p.push(("Tags".into(), self.tags.join(",")));
        }
        let optional = [
            ("Status", &self.status),
            ("CellPhone", &self.cell_phone),
            ("FirstName", &self.first_name),
            ("LastName", &self.last_name),
        ];
        for (name, value) in optional {
            if let Some(v) = value.as_ref().filter(|v| !v.is_empty()) {
                p.push((name.to_owned(), v.clone()));
            }
        }
        for (id, value) in &self.custom {
            p.push((campaign_custom_param(id), value.clone()));
        }
        p
    }
}

/// The lead and campaign APIs' text answer (our model of the public guide's plain-text replies):
/// `Success|LeadID=12345`, `Success|LeadID=12345|Status=Intake|StatusID=7`, `Failed|Invalid Key`,
/// `Failed|Lead not found`, `Failed|<field> is invalid`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum LeadAnswer {
    /// The `name=value` parts after `Success`, in order.
    Success(Vec<(String, String)>),
    /// The reason after `Failed`.
    Failed(String),
}

impl LeadAnswer {
    pub(crate) fn value(pairs: &[(String, String)], name: &str) -> Option<String> {
        pairs
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.clone())
    }
}

/// Parses a lead/campaign API answer; `Err` holds a short excerpt of a body that is neither.
pub(crate) fn parse_lead_answer(body: &str) -> Result<LeadAnswer, String> {
    let body = body.trim().trim_start_matches('\u{feff}');
    let mut parts = body.split('|');
    let head = parts.next().unwrap_or_default().trim();
    if head.eq_ignore_ascii_case("success") || head.eq_ignore_ascii_case("ok") {
        let pairs = parts
            .filter_map(|p| {
                let (k, v) = p.split_once('=')?;
                Some((k.trim().to_owned(), v.trim().to_owned()))
            })
            .collect();
        return Ok(LeadAnswer::Success(pairs));
    }
    if ["failed", "failure", "fail", "error"]
        .iter()
        .any(|f| head.eq_ignore_ascii_case(f))
    {
        let reason = parts.collect::<Vec<_>>().join("|").trim().to_owned();
        let reason = if reason.is_empty() {
            "no reason given".to_owned()
        } else {
            reason
        };
        return Ok(LeadAnswer::Failed(reason));
    }
    Err(excerpt(body))
}

/// At most 200 characters of an answer, for error messages.
pub(crate) fn excerpt(body: &str) -> String {
    const MAX: usize = 200;
    let body = body.trim();
    if body.chars().count() <= MAX {
        return body.to_owned();
    }
    let cut: String = body.chars().take(MAX).collect();
    format!("{cut}…")
}

/// The Advanced API's error body, OAuth style: `{"error", "error_description"}`.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct ErrorBody {
    #[serde(default)]
    pub error: Option<String>,
    #[serde(default)]
    pub error_description: Option<String>,
}

impl ErrorBody {
    pub(crate) fn parse(body: &str) -> Self {
        serde_json::from_str(body).unwrap_or_default()
    }

    /// The description, else the code, else an excerpt of the body.
    pub(crate) fn describe(&self, body: &str) -> String {
        self.error_description
            .clone()
            .or_else(|| self.error.clone())
            .unwrap_or_else(|| excerpt(body))
    }
}

/// Ids arrive as strings in our model; a numeric id (as a real API may send) is accepted too.
fn id_string<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Id {
        S(String),
        N(serde_json::Number),
    }
    Ok(match Id::deserialize(d)? {
        Id::S(s) => s,
        Id::N(n) => n.to_string(),
    })
}

fn opt_id_string<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Id {
        S(String),
        N(serde_json::Number),
    }
    Ok(match Option::<Id>::deserialize(d)? {
        Some(Id::S(s)) => Some(s),
        Some(Id::N(n)) => Some(n.to_string()),
        None => None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(v: &[(&str, &str)]) -> Vec<(String, String)> {
        v.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn success_answers() {
        assert_eq!(
            parse_lead_answer("Success|LeadID=12345"),
            Ok(LeadAnswer::Success(pairs(&[("LeadID", "12345")])))
        );
        assert_eq!(
            parse_lead_answer(" success | LeadID=12345|Status=Intake|StatusID=7\r\n"),
            Ok(LeadAnswer::Success(pairs(&[
                ("LeadID", "12345"),
                ("Status", "Intake"),
                ("StatusID", "7")
            ])))
        );
        assert_eq!(
            parse_lead_answer("Success"),
            Ok(LeadAnswer::Success(vec![]))
        );
    }

    #[test]
    fn failure_answers() {
        assert_eq!(
            parse_lead_answer("Failed|Invalid Key"),
            Ok(LeadAnswer::Failed("Invalid Key".into()))
        );
        assert_eq!(
            parse_lead_answer("FAILED|Email is invalid"),
            Ok(LeadAnswer::Failed("Email is invalid".into()))
        );
        assert_eq!(
            parse_lead_answer("Failed"),
            Ok(LeadAnswer::Failed("no reason given".into()))
        );
        assert_eq!(
            parse_lead_answer("Error|a|b"),
            Ok(LeadAnswer::Failed("a|b".into()))
        );
    }

    #[test]
    fn other_answers_are_not_guessed() {
        assert!(parse_lead_answer("<html>login</html>").is_err());
        assert!(parse_lead_answer("").is_err());
        let long = "x".repeat(1000);
        assert!(parse_lead_answer(&long).unwrap_err().chars().count() <= 201);
    }

    #[test]
    fn campaign_params_in_seed_order() {
        let r = CampaignResult {
            lead_id: "10001".into(),
            tags: vec!["Kayse".into()],
            status: Some("Qualified – Intake Completed".into()),
            cell_phone: None,
            first_name: Some("Jane".into()),
            last_name: Some(String::new()),
            custom: vec![
                ("1234".into(), "Yes".into()),
                ("1235".into(), "1/1/2000".into()),
            ],
        };
        assert_eq!(
            r.to_params(),
            pairs(&[
                ("LeadID", "10001"),
                ("OverriddenLead", "true"),
                ("Tags", "Kayse"),
                ("Status", "Qualified – Intake Completed"),
                ("FirstName", "Jane"),
                ("Custom1234", "Yes"),
                ("Custom1235", "1/1/2000"),
            ])
        );
    }

    #[test]
    fn ids_may_be_numbers() {
        let c: CaseType = serde_json::from_str(r#"{"id": 12, "name": "Auto Accident"}"#).unwrap();
        assert_eq!(c.id, "12");
        let f: CustomField = serde_json::from_str(
            r#"{"id":"1234","key":"custom1234","label":"Date of Injury","inputType":"date","formSection":"Accident Details"}"#,
        )
        .unwrap();
        assert_eq!(f.input_type, "date");
        assert_eq!(f.form_section, "Accident Details");
    }
}
