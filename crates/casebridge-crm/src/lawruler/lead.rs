//! One Law Ruler lead, whichever way it arrives: the fields its webhook carries, and applying
//! those fields through the webhook's path (parse, dedupe receipt, apply). The CSV import and
//! the hourly pull both build on this module, and neither on the other.

use casebridge_domain::ids::CompanyId;
use casebridge_store::integrations;
use casebridge_store::{StoreError, Tx};
use jiff::tz::TimeZone;
use jiff::Timestamp;

use super::client::LeadRecord;
use super::inbound::{content_hash, parse_lead};
use super::ingest::{apply_lead, PROVIDER};

/// The fields of a Law Ruler lead webhook, in the order Law Ruler sends them (SPEC LR3 plus
/// Email and Cell Phone).
pub const WEBHOOK_LABELS: [&str; 12] = [
    "Lead ID",
    "Case Type ID",
    "Case Type",
    "Status ID",
    "Status",
    "Full Name",
    "Created Date",
    "Primary Contact ID",
    "First Name",
    "Last Name",
    "Email",
    "Cell Phone",
];

/// A lead from the "leads changed since" endpoint as the field pairs a webhook for it carries
/// ([`WEBHOOK_LABELS`]), so it parses, hashes and applies exactly as that webhook would: "Full
/// Name" is First and Last Name, "Created Date" is written `MM/DD/YYYY hh:mm:ss AM` in UTC as
/// Law Ruler writes it in webhooks (modelled). Missing values are empty (and so count as missing
/// when parsed). The record's other fields (`custom<ID>`, …) are left out: webhooks do not carry
/// them, and a custom field must never be read as a routing parameter (`list_id`, `campaign_id`).
pub fn lead_fields(r: &LeadRecord) -> Vec<(String, String)> {
    let opt = |v: &Option<String>| v.clone().unwrap_or_default();
    let first = opt(&r.first_name);
    let last = opt(&r.last_name);
    let full_name = format!("{} {}", first.trim(), last.trim())
        .trim()
        .to_owned();
    let created = r
        .created_at
        .to_zoned(TimeZone::UTC)
        .strftime("%m/%d/%Y %I:%M:%S %p")
        .to_string();
    let values = [
        r.lead_id.clone(),
        opt(&r.case_type_id),
        opt(&r.case_type),
        opt(&r.status_id),
        opt(&r.status),
        full_name,
        created,
        opt(&r.primary_contact_id),
        first,
        last,
        opt(&r.email),
        opt(&r.cell_phone),
    ];
    WEBHOOK_LABELS
        .iter()
        .map(|l| (*l).to_owned())
        .zip(values)
        .collect()
}

pub(crate) use crate::ingest::{Outcome, RowFailure};

/// Applies one row inside `tx`: the webhook's path (`parse_lead`, the dedupe receipt,
/// `apply_lead`). Also how the hourly pull applies a lead.
pub(crate) async fn apply_row(
    tx: &mut Tx,
    company: CompanyId,
    fields: &[(String, String)],
    now: Timestamp,
) -> Result<Result<Outcome, RowFailure>, StoreError> {
    let lead = match parse_lead(&[], fields) {
        Ok(l) => l,
        Err(e) => {
            return Ok(Err(RowFailure {
                message: e.to_string(),
                wrote: false,
            }))
        }
    };
    let hash = content_hash(&[], fields);
    let outcome =
        if !integrations::record_receipt(tx, company, PROVIDER, &lead.lead_id, &hash, now).await? {
            Outcome::Unchanged
        } else {
            match apply_lead(tx, company, &lead, now).await {
                Ok(a) if a.case_created => Outcome::Created,
                Ok(_) => Outcome::Updated,
                Err(e) => return crate::ingest::rejected(&format!("Lead ID {}", lead.lead_id), e),
            }
        };
    crate::ingest::count(tx, company, PROVIDER, outcome, &lead.lead_id, now).await?;
    Ok(Ok(outcome))
}
