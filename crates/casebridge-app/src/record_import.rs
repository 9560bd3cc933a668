//! CSV import of clients and cases with their external refs (SPEC P8). It reads the files the
//! exports write ([`crate::exports`]), so an export imported again changes nothing, and an
//! edited export updates what was edited.
//!
//! A row is matched to an existing record by its `id` (when that id is one of this company's
//! records), else by any of its `external_refs`; a matched record is updated (fields compared,
//! missing refs attached), an unmatched one created. Each row is applied in a transaction of
//! its own with the same fan-out to the CRMs as an API change, so a bad row is reported with its
//! number and does not stop the others. Read-only columns (`created_at`, `updated_at`, and the
//! names `case_type` / `case_status` when their ids are given) are ignored.

use std::collections::HashMap;

use casebridge_crm::connector::PlatformChange;
use casebridge_domain::error::Validator;
use casebridge_domain::ids::{CaseId, ClientId, CompanyId};
use casebridge_domain::model::{Case, Client};
use casebridge_domain::records::{
    parse_external_refs, CasePatch, ClientFields, ClientInput, ClientPatch, CustomFields,
    ExternalRef, Name, NamedKind, NewCase, NewClient,
};
use casebridge_domain::ValidationError;
use casebridge_store::{cases, clients, named, StoreError, Tx};
use serde_json::Value;

use crate::exports::{columns, ExportKind};
use crate::{fanout, App, AppError, Result};

/// The most data rows one request takes.
pub const MAX_ROWS: usize = 10_000;
/// The most row errors an answer lists (the count covers all).
const MAX_ERRORS: usize = 100;

/// What can be imported.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Table {
    Clients,
    Cases,
}

/// One row that could not be applied: its number (data rows from 1, header not counted) and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RowError {
    pub row: usize,
    pub message: String,
}

/// What an import did, row by row.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Summary {
    pub rows: usize,
    pub created: usize,
    pub updated: usize,
    pub unchanged: usize,
    pub failed: usize,
    /// The first 100 failed rows.
    pub errors: Vec<RowError>,
}

enum Outcome {
    Created,
    Updated,
    Unchanged,
}

/// Imports `text` (CSV with a header row) into `table`. A file that cannot be read (not CSV,
/// an unknown or missing column, too many rows) is refused whole, and nothing changes.
pub async fn import(app: &App, company: CompanyId, table: Table, text: &str) -> Result<Summary> {
    let kind = match table {
        Table::Clients => ExportKind::Clients,
        Table::Cases => ExportKind::Cases,
    };
    let (header, rows) = read(text, kind)?;
    let mut summary = Summary {
        rows: rows.len(),
        ..Summary::default()
    };
    for (i, record) in rows.iter().enumerate() {
        let row: HashMap<&str, &str> = header
            .iter()
            .map(String::as_str)
            .zip(record.iter())
            .collect();
        let result = match table {
            Table::Clients => client_row(app, company, &row).await,
            Table::Cases => case_row(app, company, &row).await,
        };
        match result {
            Ok(Outcome::Created) => summary.created += 1,
            Ok(Outcome::Updated) => summary.updated += 1,
            Ok(Outcome::Unchanged) => summary.unchanged += 1,
            Err(e @ (AppError::Validation(_) | AppError::Conflict(_) | AppError::NotFound(_))) => {
                summary.failed += 1;
                if summary.errors.len() < MAX_ERRORS {
                    summary.errors.push(RowError {
                        row: i + 1,
                        message: e.to_string(),
                    });
                }
            }
            // The database failing is not the row's fault: stop, saying how far it got.
            Err(e) => {
                return Err(AppError::Unavailable(format!(
                    "the import stopped at data row {} of {} ({e}); rows before it were applied, \
                     and importing the file again skips them as unchanged",
                    i + 1,
                    rows.len()
                )))
            }
        }
    }
    Ok(summary)
}

/// Reads the header and the rows, checking the columns against the export's.
fn read(text: &str, kind: ExportKind) -> Result<(Vec<String>, Vec<csv::StringRecord>)> {
    let bad = |m: String| AppError::Validation(ValidationError::single("file", m));
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(true)
        .from_reader(text.as_bytes());
    let header: Vec<String> = reader
        .headers()
        .map_err(|e| bad(format!("is not CSV: {e}")))?
        .iter()
        .map(|h| h.trim().to_owned())
        .collect();
    let known = columns(kind);
    let mut v = Validator::new();
    for h in &header {
        if !known.contains(&h.as_str()) {
            v.push(
                "file",
                format!("unknown column `{h}`; the columns are {}", known.join(", ")),
            );
        }
    }
    let required: &[&str] = match kind {
        ExportKind::Cases => &["name"],
        _ => &[],
    };
    for r in required {
        if !header.iter().any(|h| h == r) {
            v.push("file", format!("the column `{r}` is missing"));
        }
    }
    if kind == ExportKind::Cases
        && !header
            .iter()
            .any(|h| h == "case_type_id" || h == "case_type")
    {
        v.push(
            "file",
            "the column `case_type_id` or `case_type` is missing",
        );
    }
    if kind == ExportKind::Clients && !header.iter().any(|h| h == "first_name" || h == "last_name")
    {
        v.push("file", "the column `first_name` or `last_name` is missing");
    }
    v.finish()?;
    let mut rows = Vec::new();
    for (i, r) in reader.records().enumerate() {
        let r = r.map_err(|e| bad(format!("data row {} is not CSV: {e}", i + 1)))?;
        if rows.len() == MAX_ROWS {
            return Err(bad(format!(
                "has more than {MAX_ROWS} rows; split it into files of at most {MAX_ROWS}"
            )));
        }
        rows.push(r);
    }
    Ok((header, rows))
}

/// A cell, `None` when the column is absent or the cell empty.
fn cell<'a>(row: &HashMap<&str, &'a str>, col: &str) -> Option<&'a str> {
    row.get(col).copied().filter(|s| !s.is_empty())
}

fn refs(row: &HashMap<&str, &str>, v: &mut Validator) -> Vec<ExternalRef> {
    let Some(raw) = cell(row, "external_refs") else {
        return Vec::new();
    };
    let pairs: Option<Vec<(String, String)>> =
        serde_json::from_str::<Value>(raw).ok().and_then(|j| {
            j.as_array()?
                .iter()
                .map(|r| {
                    Some((
                        r.get("provider")?.as_str()?.to_owned(),
                        r.get("external_id")?.as_str()?.to_owned(),
                    ))
                })
                .collect()
        });
    match pairs {
        Some(p) => parse_external_refs(&p, v),
        None => {
            v.push(
                "external_refs",
                "must be a JSON array of {\"provider\", \"external_id\"}",
            );
            Vec::new()
        }
    }
}

fn id<T: std::str::FromStr>(row: &HashMap<&str, &str>, col: &str, v: &mut Validator) -> Option<T> {
    let raw = cell(row, col)?;
    raw.parse().ok().or_else(|| {
        v.push(col, format!("`{raw}` is not an id"));
        None
    })
}

/// The record a row names: by id when it is one of this company's, else by an external ref.
fn matched<T>(
    by_id: Option<Result<T, StoreError>>,
    by_refs: Vec<Result<T, StoreError>>,
    same: impl Fn(&T, &T) -> bool,
) -> Result<Option<T>> {
    match by_id {
        Some(Ok(found)) => return Ok(Some(found)),
        Some(Err(StoreError::NotFound)) | None => {}
        Some(Err(e)) => return Err(e.into()),
    }
    let mut hit: Option<T> = None;
    for r in by_refs {
        match r {
            Ok(found) => match &hit {
                Some(h) if !same(h, &found) => {
                    return Err(AppError::Conflict(
                        "its external refs belong to two different records".into(),
                    ))
                }
                _ => hit = Some(found),
            },
            Err(StoreError::NotFound) => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(hit)
}

fn missing_refs(have: &[ExternalRef], want: &[ExternalRef]) -> Vec<ExternalRef> {
    want.iter().filter(|r| !have.contains(r)).cloned().collect()
}

async fn client_row(app: &App, company: CompanyId, row: &HashMap<&str, &str>) -> Result<Outcome> {
    let mut v = Validator::new();
    let fields = ClientFields::parse(
        ClientInput {
            first_name: cell(row, "first_name"),
            last_name: cell(row, "last_name"),
            email: cell(row, "email"),
            phone: cell(row, "phone"),
        },
        &mut v,
    );
    let want_refs = refs(row, &mut v);
    let given_id: Option<ClientId> = id(row, "id", &mut v);
    v.finish()?;
    let fields = fields.expect("validated");
    let now = app.now();
    let mut tx = app.store().begin().await?;
    let by_id = match given_id {
        Some(i) => Some(clients::get_for_update(&mut tx, company, i).await),
        None => None,
    };
    let mut by_refs = Vec::new();
    for r in &want_refs {
        by_refs.push(clients::find_by_ref(&mut tx, company, &r.provider, &r.external_id).await);
    }
    let found = matched(by_id, by_refs, |a: &Client, b| a.id == b.id)?;
    let outcome = match found {
        None => {
            let new = NewClient {
                fields,
                external_refs: want_refs,
            };
            clients::create(&mut tx, company, &new, now).await?;
            Outcome::Created
        }
        Some(before) => {
            let add = missing_refs(&before.external_refs, &want_refs);
            if before.fields == fields && add.is_empty() {
                return Ok(Outcome::Unchanged);
            }
            let patch = ClientPatch {
                first_name: Some(fields.first_name.clone()),
                last_name: Some(fields.last_name.clone()),
                email: Some(fields.email.clone()),
                phone: Some(fields.phone.clone()),
            };
            let mut after = clients::update(&mut tx, company, before.id, &patch, now).await?;
            if !add.is_empty() {
                after = clients::add_refs(&mut tx, company, before.id, &add, now).await?;
            }
            let change = PlatformChange::Client {
                before: &before,
                after: &after,
            };
            fanout::platform_change(app, &mut tx, company, change, now).await?;
            Outcome::Updated
        }
    };
    tx.commit().await?;
    Ok(outcome)
}

async fn case_row(app: &App, company: CompanyId, row: &HashMap<&str, &str>) -> Result<Outcome> {
    let mut v = Validator::new();
    let name = v.check(Name::parse("name", cell(row, "name").unwrap_or("")));
    let want_refs = refs(row, &mut v);
    let given_id: Option<CaseId> = id(row, "id", &mut v);
    let client_id: Option<ClientId> = id(row, "client_id", &mut v);
    let campaign_id = id(row, "campaign_id", &mut v);
    let custom_fields = match cell(row, "custom_fields") {
        None => Some(CustomFields::default()),
        Some(raw) => match serde_json::from_str::<Value>(raw) {
            Ok(j) => v.check(CustomFields::parse(j)),
            Err(_) => {
                v.push("custom_fields", "must be a JSON object");
                None
            }
        },
    };
    v.finish()?;
    let (name, custom_fields) = (name.expect("validated"), custom_fields.expect("validated"));
    let now = app.now();
    let mut tx = app.store().begin().await?;
    let case_type_id = named_id(
        &mut tx,
        company,
        NamedKind::CaseType,
        row,
        "case_type_id",
        "case_type",
    )
    .await?
    .ok_or_else(|| ValidationError::single("case_type_id", "a case needs a case type"))?;
    let case_status_id = named_id(
        &mut tx,
        company,
        NamedKind::CaseStatus,
        row,
        "case_status_id",
        "case_status",
    )
    .await?;
    let by_id = match given_id {
        Some(i) => Some(cases::get_for_update(&mut tx, company, i).await),
        None => None,
    };
    let mut by_refs = Vec::new();
    for r in &want_refs {
        by_refs.push(cases::find_by_ref(&mut tx, company, &r.provider, &r.external_id).await);
    }
    let found = matched(by_id, by_refs, |a: &Case, b| a.id == b.id)?;
    let parse = |s: &str| {
        s.parse()
            .map_err(|_| ValidationError::single("case_type_id", "bad id"))
    };
    let case_type_id = parse(&case_type_id)?;
    let case_status_id = case_status_id
        .map(|s| {
            s.parse()
                .map_err(|_| ValidationError::single("case_status_id", "bad id"))
        })
        .transpose()?;
    let outcome = match found {
        None => {
            let new = NewCase {
                name,
                case_type_id,
                case_status_id,
                client_id,
                campaign_id,
                custom_fields,
                external_refs: want_refs,
            };
            let case = cases::create(&mut tx, company, &new, now).await?;
            let change = PlatformChange::Case {
                before: None,
                after: &case,
            };
            fanout::platform_change(app, &mut tx, company, change, now).await?;
            Outcome::Created
        }
        Some(before) => {
            let add = missing_refs(&before.external_refs, &want_refs);
            let merged = {
                let mut m = CustomFields::parse(before.custom_fields.clone()).unwrap_or_default();
                m.merge(custom_fields.clone());
                m.into_value()
            };
            if before.name == name.as_str()
                && before.case_type_id == case_type_id
                && before.case_status_id == case_status_id
                && before.client_id == client_id
                && before.campaign_id == campaign_id
                && before.custom_fields == merged
                && add.is_empty()
            {
                return Ok(Outcome::Unchanged);
            }
            let patch = CasePatch {
                name: Some(name),
                case_type_id: Some(case_type_id),
                case_status_id: Some(case_status_id),
                client_id: Some(client_id),
                campaign_id: Some(campaign_id),
                custom_fields: Some(custom_fields),
            };
            let mut after = cases::update(&mut tx, company, before.id, &patch, now).await?;
            if !add.is_empty() {
                after = cases::add_refs(&mut tx, company, before.id, &add, now).await?;
            }
            let change = PlatformChange::Case {
                before: Some(&before),
                after: &after,
            };
            fanout::platform_change(app, &mut tx, company, change, now).await?;
            Outcome::Updated
        }
    };
    tx.commit().await?;
    Ok(outcome)
}

/// A case type or status named by its id (when it is one of this company's) or else by its
/// name; a row naming one that does not exist fails, naming it.
async fn named_id(
    tx: &mut Tx,
    company: CompanyId,
    kind: NamedKind,
    row: &HashMap<&str, &str>,
    id_col: &str,
    name_col: &str,
) -> Result<Option<String>> {
    if let Some(id) = cell(row, id_col) {
        if named::exists(tx, company, kind, id).await? {
            return Ok(Some(id.to_owned()));
        }
    }
    if let Some(name) = cell(row, name_col) {
        return match named::find_by_name(tx, company, kind, name).await? {
            Some(found) => Ok(Some(found.id)),
            None => Err(ValidationError::single(
                name_col,
                format!("no {} named `{name}`", kind.label()),
            )
            .into()),
        };
    }
    match cell(row, id_col) {
        Some(id) => {
            Err(ValidationError::single(id_col, format!("no {} with id {id}", kind.label())).into())
        }
        None => Ok(None),
    }
}
