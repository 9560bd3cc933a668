//! One SmartAdvocate case, whichever way it arrives: pulled (SA4), imported, or pushed by the
//! firm to `POST /hooks/smartadvocate/{token}`. Each becomes the same flat fields ([`LABELS`]),
//! is parsed by [`parse`] (no I/O), deduped by [`content_hash`] against the last content applied
//! for its case number, and applied by [`apply`] inside the caller's transaction: the client by
//! SmartAdvocate contact id, the case by case number (external refs of provider
//! `smartadvocate`), case type and primary status through the mappings.
//!
//! **Modelled.** SmartAdvocate documents no outbound webhook. Firms that push changes (a
//! workflow's HTTP POST) send these flat fields as JSON or form-encoded, names matched
//! case-insensitively ignoring spaces, underscores and hyphens ("Case Number" = "caseNumber" =
//! "case_number"). A field not in [`LABELS`] is refused, naming it, so a typo is not silently
//! dropped. Second statuses arrive as text (`Dialer Status = To Dial; …`) and are kept on the
//! case as `smartadvocate_second_statuses`; the platform status follows the primary status.

use casebridge_domain::error::Validator;
use casebridge_domain::ids::CompanyId;
use casebridge_domain::integrations::CrmValue;
use casebridge_domain::records::{ClientFields, ClientInput, CustomFields, Name};
use casebridge_store::{integrations, StoreError, Tx};
use jiff::Timestamp;
use serde_json::json;

use super::client::CaseInfo;
use super::PROVIDER;
use crate::connector::{Applied, IngestError};
use crate::ingest::{self as shared, CaseValues, Outcome, RowFailure, Source};
use crate::lawruler::inbound::normalize_key;

const SOURCE: Source = Source {
    provider: PROVIDER,
    name: "SmartAdvocate",
    outbox: crate::smartadvocate::outbound::OUTBOX,
};

/// The fields of a SmartAdvocate case record, in order. The first six are required, and a
/// first or a last name.
pub const LABELS: [&str; 13] = [
    "Case Number",
    "Case Type ID",
    "Case Type",
    "Status ID",
    "Status",
    "Contact ID",
    "First Name",
    "Last Name",
    "Email",
    "Phone",
    "Second Statuses",
    "Created Date",
    "Modified Date",
];
const REQUIRED: usize = 6;
/// Not part of the content: a record whose only change is this time is `unchanged`.
const MODIFIED: &str = "Modified Date";

/// A parsed case record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaseRecord {
    pub case_number: String,
    pub case_type: CrmValue,
    pub status: CrmValue,
    pub contact_id: String,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub email: Option<String>,
    pub phone: Option<String>,
    pub second_statuses: Option<String>,
    pub created_date: Option<String>,
    pub modified_date: Option<String>,
}

/// Why fields do not make a case record: the field to name and the message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordError {
    pub field: &'static str,
    pub message: String,
}

fn field_of(label: &'static str) -> &'static str {
    match label {
        "Case Number" => "case_number",
        "Case Type ID" => "case_type_id",
        "Case Type" => "case_type",
        "Status ID" => "status_id",
        "Status" => "status",
        "Contact ID" => "contact_id",
        "First Name" => "first_name",
        "Last Name" => "last_name",
        "Email" => "email",
        "Phone" => "phone",
        "Second Statuses" => "second_statuses",
        "Created Date" => "created_date",
        _ => "modified_date",
    }
}

fn label_of(name: &str) -> Option<&'static str> {
    let n = normalize_key(name);
    LABELS.iter().copied().find(|l| normalize_key(l) == n)
}

/// The case number a set of fields names, if any (for the sync log of a refused record).
pub fn case_number_in(fields: &[(String, String)]) -> Option<String> {
    fields
        .iter()
        .find(|(k, _)| label_of(k) == Some("Case Number"))
        .map(|(_, v)| v.trim().to_owned())
        .filter(|v| !v.is_empty())
}

/// Parses the fields of one record (query and body of a hook, or a pulled case's
/// [`case_fields`]). Unknown fields and missing required ones are refused, naming them.
pub fn parse(fields: &[(String, String)]) -> Result<CaseRecord, RecordError> {
    let mut values: [Option<String>; LABELS.len()] = Default::default();
    let mut unknown = Vec::new();
    for (k, v) in fields {
        match label_of(k) {
            Some(l) => {
                let i = LABELS.iter().position(|x| *x == l).expect("a label");
                let v = v.trim();
                if !v.is_empty() {
                    values[i] = Some(v.to_owned());
                }
            }
            None => unknown.push(k.as_str()),
        }
    }
    if let Some(first) = unknown.first() {
        return Err(RecordError {
            field: "body",
            message: format!(
                "unknown fields: {} (a SmartAdvocate case record has {}); the first is `{first}`",
                unknown.join(", "),
                LABELS.join(", ")
            ),
        });
    }
    let missing: Vec<&str> = LABELS[..REQUIRED]
        .iter()
        .zip(&values)
        .filter(|(_, v)| v.is_none())
        .map(|(l, _)| *l)
        .collect();
    if let Some(first) = missing.first() {
        return Err(RecordError {
            field: field_of(first),
            message: format!("missing required fields: {}", missing.join(", ")),
        });
    }
    let [number, type_id, type_name, status_id, status_name, contact, first, last, email, phone, second, created, modified] =
        values;
    if first.is_none() && last.is_none() {
        return Err(RecordError {
            field: "first_name",
            message: "a First Name or a Last Name is required".into(),
        });
    }
    Ok(CaseRecord {
        case_number: number.expect("required"),
        case_type: CrmValue {
            id: type_id.expect("required"),
            name: type_name.expect("required"),
        },
        status: CrmValue {
            id: status_id.expect("required"),
            name: status_name.expect("required"),
        },
        contact_id: contact.expect("required"),
        first_name: first,
        last_name: last,
        email,
        phone,
        second_statuses: second,
        created_date: created,
        modified_date: modified,
    })
}

/// A pulled case as the fields of a record ([`LABELS`]): the primary plaintiff (or the first)
/// is the client; second statuses become `Type = Value` joined by `; `. Missing values are
/// empty, so they count as missing when parsed.
pub fn case_fields(c: &CaseInfo) -> Vec<(String, String)> {
    let opt = |v: &Option<String>| v.clone().unwrap_or_default();
    let plaintiff = c
        .plaintiffs
        .iter()
        .find(|p| p.primary == Some(true))
        .or(c.plaintiffs.first());
    let (mut first, mut last) = plaintiff
        .map(|p| (opt(&p.first_name), opt(&p.last_name)))
        .unwrap_or_default();
    if first.is_empty() && last.is_empty() {
        // Without contact details, the plaintiff's name is all there is: it goes in Last Name
        // whole rather than being split on a guess.
        last = plaintiff.map(|p| opt(&p.name)).unwrap_or_default();
        first = String::new();
    }
    let mut seconds: Vec<String> = c
        .second_statuses
        .iter()
        .map(|s| format!("{} = {}", s.status_type_name, s.status_name))
        .collect();
    seconds.sort();
    let values = [
        c.case_number.clone(),
        opt(&c.case_type_id),
        opt(&c.case_type),
        opt(&c.case_status_id),
        opt(&c.case_status),
        plaintiff
            .and_then(|p| p.contact_id.clone())
            .unwrap_or_default(),
        first,
        last,
        plaintiff.map(|p| opt(&p.email)).unwrap_or_default(),
        plaintiff.map(|p| opt(&p.phone)).unwrap_or_default(),
        seconds.join("; "),
        opt(&c.created_date),
        opt(&c.modified_date),
    ];
    LABELS.iter().map(|l| (*l).to_owned()).zip(values).collect()
}

/// A hash of what the record sets (every field but the modified time), the same whatever
/// names, order or source the fields came with.
pub fn content_hash(r: &CaseRecord) -> String {
    use sha2::{Digest, Sha256};
    let parts = [
        r.case_number.as_str(),
        &r.case_type.id,
        &r.case_type.name,
        &r.status.id,
        &r.status.name,
        &r.contact_id,
        r.first_name.as_deref().unwrap_or(""),
        r.last_name.as_deref().unwrap_or(""),
        r.email.as_deref().unwrap_or(""),
        r.phone.as_deref().unwrap_or(""),
        r.second_statuses.as_deref().unwrap_or(""),
        r.created_date.as_deref().unwrap_or(""),
    ];
    debug_assert_eq!(parts.len(), LABELS.len() - 1);
    debug_assert_eq!(LABELS[LABELS.len() - 1], MODIFIED);
    let mut h = Sha256::new();
    for p in parts {
        h.update(p.as_bytes());
        h.update([0]);
    }
    h.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

/// Applies one record inside `tx` (whole or not at all: the caller rolls back on an error).
pub async fn apply(
    tx: &mut Tx,
    company: CompanyId,
    r: &CaseRecord,
    now: Timestamp,
) -> Result<Applied, IngestError> {
    let mut notes = Vec::new();
    let case_type_id =
        shared::case_type(tx, company, SOURCE, &r.case_type, now, &mut notes).await?;
    let case_status_id =
        shared::case_status(tx, company, SOURCE, &r.status, now, &mut notes).await?;
    let mut v = Validator::new();
    let fields = ClientFields::parse(
        ClientInput {
            first_name: r.first_name.as_deref(),
            last_name: r.last_name.as_deref(),
            email: r.email.as_deref(),
            phone: r.phone.as_deref(),
        },
        &mut v,
    );
    v.finish()?;
    let (client_id, client_created) = shared::upsert_client(
        tx,
        company,
        SOURCE,
        "contact_id",
        &r.contact_id,
        fields.expect("validated"),
        now,
    )
    .await?;
    let person = [r.first_name.as_deref(), r.last_name.as_deref()]
        .into_iter()
        .flatten()
        .collect::<Vec<_>>()
        .join(" ");
    let name = Name::parse("case_number", &format!("{person} ({})", r.case_number))?;
    let custom_fields = CustomFields::parse(json!({
        "smartadvocate_case_type": r.case_type.name,
        "smartadvocate_status": r.status.name,
        "smartadvocate_second_statuses": r.second_statuses.clone().unwrap_or_default(),
        "smartadvocate_created_date": r.created_date,
    }))?;
    let upserted = shared::upsert_case(
        tx,
        company,
        SOURCE,
        "case_number",
        &r.case_number,
        CaseValues {
            name,
            case_type_id,
            case_status_id,
            crm_status: r.status.clone(),
            crm_changed_at: r
                .modified_date
                .as_deref()
                .and_then(crate::smartadvocate::client::parse_time),
            client_id,
            campaign_id: None,
            custom_fields,
        },
        now,
    )
    .await?;
    let (case_id, case_created) = (upserted.case_id, upserted.created);
    let case_status_id = upserted.case_status_id.unwrap_or(case_status_id);
    Ok(Applied {
        case_id,
        client_id,
        case_created,
        client_created,
        case_type_id,
        case_status_id,
        lists_added: Vec::new(),
        lists_removed: Vec::new(),
        auto_linked: notes,
    })
}

/// Applies one record's fields inside `tx` through the hook's path: [`parse`], the dedupe
/// receipt (same content as last applied for the case number: `unchanged`), [`apply`]. How
/// pulls and imports apply a case.
pub(crate) async fn apply_fields(
    tx: &mut Tx,
    company: CompanyId,
    fields: &[(String, String)],
    now: Timestamp,
) -> Result<Result<Outcome, RowFailure>, StoreError> {
    let record = match parse(fields) {
        Ok(r) => r,
        Err(e) => {
            let message = match case_number_in(fields) {
                Some(n) => format!("case {n}: {}", e.message),
                None => e.message,
            };
            return Ok(Err(RowFailure {
                message,
                wrote: false,
            }));
        }
    };
    let hash = content_hash(&record);
    let number = &record.case_number;
    let outcome =
        if !integrations::record_receipt(tx, company, PROVIDER, number, &hash, now).await? {
            Outcome::Unchanged
        } else {
            match apply(tx, company, &record, now).await {
                Ok(a) if a.case_created => Outcome::Created,
                Ok(_) => Outcome::Updated,
                Err(e) => return crate::ingest::rejected(&format!("case {number}"), e),
            }
        };
    crate::ingest::count(tx, company, PROVIDER, outcome, number, now).await?;
    Ok(Ok(outcome))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(v: &[(&str, &str)]) -> Vec<(String, String)> {
        v.iter().map(|(k, v)| ((*k).into(), (*v).into())).collect()
    }

    #[test]
    fn names_are_tolerant_and_unknown_fields_refused() {
        let f = pairs(&[
            ("caseNumber", "9000001"),
            ("case_type_id", "1"),
            ("Case Type", "MVA"),
            ("StatusID", "1"),
            ("status", "Intake"),
            ("contact-id", "7001"),
            ("First Name", "Jane"),
        ]);
        let r = parse(&f).unwrap();
        assert_eq!(r.case_number, "9000001");
        assert_eq!(r.first_name.as_deref(), Some("Jane"));
        let mut g = f.clone();
        g.push(("Favourite Colour".into(), "blue".into()));
        let e = parse(&g).unwrap_err();
        assert!(e.message.contains("Favourite Colour"), "{}", e.message);
        let e = parse(&f[1..]).unwrap_err();
        assert_eq!(e.field, "case_number");
        assert_eq!(e.message, "missing required fields: Case Number");
    }

    #[test]
    fn the_hash_ignores_order_names_and_the_modified_time() {
        let a = parse(&pairs(&[
            ("Case Number", "1"),
            ("Case Type ID", "1"),
            ("Case Type", "MVA"),
            ("Status ID", "1"),
            ("Status", "Intake"),
            ("Contact ID", "7"),
            ("Last Name", "Doe"),
            ("Modified Date", "2025-01-01T00:00:00"),
        ]))
        .unwrap();
        let b = parse(&pairs(&[
            ("last_name", "Doe"),
            ("contactid", "7"),
            ("status", "Intake"),
            ("statusid", "1"),
            ("casetype", "MVA"),
            ("casetypeid", "1"),
            ("casenumber", "1"),
            ("modifieddate", "2025-02-01T00:00:00"),
        ]))
        .unwrap();
        assert_eq!(content_hash(&a), content_hash(&b));
        let c = CaseRecord {
            email: Some("x@example.com".into()),
            ..b
        };
        assert_ne!(content_hash(&a), content_hash(&c));
    }
}
