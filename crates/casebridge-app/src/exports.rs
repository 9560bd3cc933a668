//! Exports for reports (SPEC P8): cases, clients, the sync log and the webhook delivery log, as
//! CSV or JSON, filtered by creation time (and by CRM or webhook where that applies).
//!
//! An export is read a chunk at a time ([`CHUNK`] rows, keyset-paginated by id, oldest first),
//! each chunk on a pooled connection that is given back before the chunk is written out, so an
//! export of any size runs in flat memory and never holds a connection while a slow client
//! reads. Rows created while an export runs may or may not be in it (each chunk reads what has
//! committed by then); a row never appears twice.
//!
//! The columns are fixed and documented ([`columns`], README): ids, names, states and times
//! (RFC 3339, UTC, milliseconds); external refs and custom fields are JSON in a CSV cell. No
//! column holds a secret. CSV quoting is the `csv` crate's (RFC 4180: a value with a comma, a
//! quote or a line break is quoted, quotes doubled).

use std::collections::HashMap;

use casebridge_domain::events::DeliveryFilter;
use casebridge_domain::ids::{CompanyId, WebhookId};
use casebridge_domain::integrations::Provider;
use casebridge_domain::page::PageRequest;
use casebridge_domain::records::{CaseFilter, ClientFilter, ExternalRef, NamedKind};
use casebridge_store::{cases, clients, integrations, named, webhooks};
use jiff::Timestamp;
use serde_json::{json, Value};

use crate::{App, AppError, Result};

/// Rows read per query.
pub const CHUNK: u32 = 500;

/// What can be exported.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExportKind {
    Cases,
    Clients,
    SyncLog,
    Deliveries,
}

impl ExportKind {
    pub const ALL: [ExportKind; 4] = [Self::Cases, Self::Clients, Self::SyncLog, Self::Deliveries];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Cases => "cases",
            Self::Clients => "clients",
            Self::SyncLog => "sync-log",
            Self::Deliveries => "deliveries",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == s)
    }
}

/// The file format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExportFormat {
    Csv,
    /// One JSON array of objects whose keys are the CSV's columns.
    Json,
}

impl ExportFormat {
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "csv" => Some(Self::Csv),
            "json" => Some(Self::Json),
            _ => None,
        }
    }

    pub fn extension(self) -> &'static str {
        match self {
            Self::Csv => "csv",
            Self::Json => "json",
        }
    }

    pub fn content_type(self) -> &'static str {
        match self {
            Self::Csv => "text/csv; charset=utf-8",
            Self::Json => "application/json",
        }
    }
}

/// What to export.
#[derive(Debug, Clone)]
pub struct ExportRequest {
    pub kind: ExportKind,
    pub format: ExportFormat,
    /// Rows created at or after.
    pub since: Option<Timestamp>,
    /// Rows created before.
    pub until: Option<Timestamp>,
    /// The sync log of one CRM (only for [`ExportKind::SyncLog`]).
    pub provider: Option<Provider>,
    /// The deliveries of one webhook (only for [`ExportKind::Deliveries`]).
    pub webhook_id: Option<WebhookId>,
}

/// The columns of each export, in order.
pub fn columns(kind: ExportKind) -> &'static [&'static str] {
    match kind {
        ExportKind::Cases => &[
            "id",
            "name",
            "case_type_id",
            "case_type",
            "case_status_id",
            "case_status",
            "client_id",
            "campaign_id",
            "external_refs",
            "custom_fields",
            "created_at",
            "updated_at",
        ],
        ExportKind::Clients => &[
            "id",
            "first_name",
            "last_name",
            "email",
            "phone",
            "external_refs",
            "created_at",
            "updated_at",
        ],
        ExportKind::SyncLog => &[
            "id",
            "provider",
            "created_at",
            "direction",
            "operation",
            "record_ref",
            "outcome",
            "error_kind",
            "message",
        ],
        ExportKind::Deliveries => &[
            "id",
            "webhook_id",
            "event_id",
            "event_type",
            "status",
            "attempt_count",
            "last_attempt_at",
            "last_response_status",
            "last_error",
            "created_at",
            "updated_at",
        ],
    }
}

/// One cell: text, or nothing (an empty CSV cell, JSON `null`).
type Cell = Option<String>;

/// An export in progress: call [`Export::next_chunk`] until it answers `None`.
pub struct Export {
    app: App,
    company: CompanyId,
    req: ExportRequest,
    /// Case type and status names by id (cases only).
    names: HashMap<String, String>,
    after: Option<String>,
    started: bool,
    finished: bool,
    rows: u64,
}

/// Checks the request and opens the export. Nothing is read yet but the names cases refer to.
pub async fn start(app: &App, company: CompanyId, req: ExportRequest) -> Result<Export> {
    check(&req)?;
    let mut names = HashMap::new();
    {
        let mut conn = app.store().conn().await?;
        if let Some(w) = req.webhook_id {
            // Another company's webhook is "not found", like everywhere else.
            webhooks::get(&mut conn, company, w).await?;
        }
        if req.kind == ExportKind::Cases {
            for kind in [NamedKind::CaseType, NamedKind::CaseStatus] {
                let mut page = PageRequest::first(casebridge_domain::page::MAX_LIMIT);
                loop {
                    let found = named::list(&mut conn, company, kind, &page).await?;
                    for n in found.items {
                        names.insert(n.id.clone(), n.name.clone());
                    }
                    match found.next_after {
                        Some(after) => page.after = Some(after),
                        None => break,
                    }
                }
            }
        }
    }
    Ok(Export {
        app: app.clone(),
        company,
        req,
        names,
        after: None,
        started: false,
        finished: false,
        rows: 0,
    })
}

/// How many rows the export will hold (as of now), for a progress bar.
pub async fn count(app: &App, company: CompanyId, req: &ExportRequest) -> Result<u64> {
    check(req)?;
    let mut conn = app.store().conn().await?;
    Ok(match req.kind {
        ExportKind::Cases => cases::count_created(&mut conn, company, req.since, req.until).await?,
        ExportKind::Clients => {
            clients::count_created(&mut conn, company, req.since, req.until).await?
        }
        ExportKind::SyncLog => {
            integrations::sync_log_range_count(
                &mut conn,
                company,
                req.provider.map(Provider::as_str),
                req.since,
                req.until,
            )
            .await?
        }
        ExportKind::Deliveries => {
            webhooks::count_matching(&mut conn, company, &delivery_filter(req)).await?
        }
    })
}

fn check(req: &ExportRequest) -> Result<()> {
    let mut v = casebridge_domain::error::Validator::new();
    if let (Some(s), Some(u)) = (req.since, req.until) {
        if s >= u {
            v.push("until", "must be later than `since`");
        }
    }
    if req.provider.is_some() && req.kind != ExportKind::SyncLog {
        v.push("provider", "applies only to the sync-log export");
    }
    if req.webhook_id.is_some() && req.kind != ExportKind::Deliveries {
        v.push("webhook_id", "applies only to the deliveries export");
    }
    v.finish().map_err(AppError::from)
}

fn delivery_filter(req: &ExportRequest) -> DeliveryFilter {
    DeliveryFilter {
        webhook_id: req.webhook_id,
        since: req.since,
        until: req.until,
        ..DeliveryFilter::default()
    }
}

/// A time as every export writes it.
fn time(t: Timestamp) -> String {
    format!("{t:.3}")
}

fn refs(r: &[ExternalRef]) -> String {
    let list: Vec<Value> = r
        .iter()
        .map(|r| json!({"provider": r.provider, "external_id": r.external_id}))
        .collect();
    Value::Array(list).to_string()
}

impl Export {
    pub fn format(&self) -> ExportFormat {
        self.req.format
    }

    /// A file name for the download: `cases-<company>.csv`.
    pub fn file_name(&self) -> String {
        format!(
            "{}-{}.{}",
            self.req.kind.as_str(),
            self.company,
            self.req.format.extension()
        )
    }

    /// Rows written so far.
    pub fn rows(&self) -> u64 {
        self.rows
    }

    /// The next part of the file (the header or opening bracket comes with the first), or `None`
    /// once everything was given.
    pub async fn next_chunk(&mut self) -> Result<Option<String>> {
        if self.finished {
            return Ok(None);
        }
        let rows = self.read().await?;
        let last = rows.len() < CHUNK as usize;
        let mut out = String::new();
        let cols = columns(self.req.kind);
        match self.req.format {
            ExportFormat::Csv => {
                let mut w = csv::Writer::from_writer(Vec::new());
                let write = |w: &mut csv::Writer<Vec<u8>>, rec: Vec<&str>| {
                    w.write_record(rec)
                        .map_err(|e| AppError::Internal(format!("writing CSV: {e}")))
                };
                if !self.started {
                    write(&mut w, cols.to_vec())?;
                }
                for row in &rows {
                    write(
                        &mut w,
                        row.iter().map(|c| c.as_deref().unwrap_or("")).collect(),
                    )?;
                }
                let bytes = w
                    .into_inner()
                    .map_err(|e| AppError::Internal(format!("writing CSV: {e}")))?;
                out = String::from_utf8(bytes)
                    .map_err(|e| AppError::Internal(format!("writing CSV: {e}")))?;
            }
            ExportFormat::Json => {
                for row in &rows {
                    out.push_str(if self.rows == 0 { "[\n" } else { ",\n" });
                    let obj: serde_json::Map<String, Value> = cols
                        .iter()
                        .zip(row)
                        .map(|(k, v)| {
                            let v = v.clone().map_or(Value::Null, |s| json_cell(k, s));
                            ((*k).to_owned(), v)
                        })
                        .collect();
                    out.push_str(&Value::Object(obj).to_string());
                    self.rows += 1;
                }
                if last {
                    out.push_str(if self.rows == 0 { "[]\n" } else { "\n]\n" });
                }
            }
        }
        if self.req.format == ExportFormat::Csv {
            self.rows += rows.len() as u64;
        }
        self.started = true;
        self.finished = last;
        Ok(Some(out))
    }

    /// Reads the next chunk's rows as cells, in [`columns`] order, and moves the cursor.
    async fn read(&mut self) -> Result<Vec<Vec<Cell>>> {
        let company = self.company;
        let after = self.after.clone();
        let (since, until) = (self.req.since, self.req.until);
        let mut conn = self.app.store().conn().await?;
        let (rows, last_id): (Vec<Vec<Cell>>, Option<String>) = match self.req.kind {
            ExportKind::Cases => {
                let filter = CaseFilter {
                    created_since: since,
                    created_until: until,
                    ..CaseFilter::default()
                };
                let found = cases::list(&mut conn, company, &filter, &chunk(after)).await?;
                let last = found.items.last().map(|c| c.id.to_string());
                let name =
                    |id: &Option<String>| id.as_ref().and_then(|i| self.names.get(i).cloned());
                let rows = found
                    .items
                    .into_iter()
                    .map(|c| {
                        let type_id = Some(c.case_type_id.to_string());
                        let status_id = c.case_status_id.map(|s| s.to_string());
                        vec![
                            Some(c.id.to_string()),
                            Some(c.name),
                            type_id.clone(),
                            name(&type_id),
                            status_id.clone(),
                            name(&status_id),
                            c.client_id.map(|i| i.to_string()),
                            c.campaign_id.map(|i| i.to_string()),
                            Some(refs(&c.external_refs)),
                            Some(c.custom_fields.to_string()),
                            Some(time(c.created_at)),
                            Some(time(c.updated_at)),
                        ]
                    })
                    .collect();
                (rows, last)
            }
            ExportKind::Clients => {
                let filter = ClientFilter {
                    created_since: since,
                    created_until: until,
                    ..ClientFilter::default()
                };
                let found = clients::list(&mut conn, company, &filter, &chunk(after)).await?;
                let last = found.items.last().map(|c| c.id.to_string());
                let rows = found
                    .items
                    .into_iter()
                    .map(|c| {
                        vec![
                            Some(c.id.to_string()),
                            c.fields.first_name,
                            c.fields.last_name,
                            c.fields.email,
                            c.fields.phone,
                            Some(refs(&c.external_refs)),
                            Some(time(c.created_at)),
                            Some(time(c.updated_at)),
                        ]
                    })
                    .collect();
                (rows, last)
            }
            ExportKind::SyncLog => {
                let found = integrations::sync_log_range(
                    &mut conn,
                    company,
                    self.req.provider.map(Provider::as_str),
                    since,
                    until,
                    after.as_deref(),
                    CHUNK,
                )
                .await?;
                let last = found.last().map(|(_, e)| e.id.clone());
                let rows = found
                    .into_iter()
                    .map(|(p, e)| {
                        vec![
                            Some(e.id),
                            Some(p),
                            Some(time(e.created_at)),
                            Some(e.direction),
                            Some(e.operation),
                            e.record_ref,
                            Some(e.outcome),
                            e.error_kind,
                            e.message,
                        ]
                    })
                    .collect();
                (rows, last)
            }
            ExportKind::Deliveries => {
                let filter = delivery_filter(&self.req);
                let found = webhooks::deliveries_range(
                    &mut conn,
                    company,
                    &filter,
                    after.as_deref(),
                    CHUNK,
                )
                .await?;
                let last = found.last().map(|d| d.id.to_string());
                let rows = found
                    .into_iter()
                    .map(|d| {
                        vec![
                            Some(d.id.to_string()),
                            Some(d.webhook_id.to_string()),
                            Some(d.event_id.to_string()),
                            Some(d.event_type.as_str().to_owned()),
                            Some(d.status.as_str().to_owned()),
                            Some(d.attempt_count.to_string()),
                            d.last_attempt_at.map(time),
                            d.last_response_status.map(|s| s.to_string()),
                            d.last_error,
                            Some(time(d.created_at)),
                            Some(time(d.updated_at)),
                        ]
                    })
                    .collect();
                (rows, last)
            }
        };
        if last_id.is_some() {
            self.after = last_id;
        }
        Ok(rows)
    }
}

fn chunk(after: Option<String>) -> PageRequest {
    PageRequest {
        after,
        limit: CHUNK,
    }
}

/// A cell as a JSON value: the JSON columns as JSON, counts as numbers, the rest as text.
fn json_cell(column: &str, text: String) -> Value {
    match column {
        "external_refs" | "custom_fields" => {
            serde_json::from_str(&text).unwrap_or(Value::String(text))
        }
        "attempt_count" | "last_response_status" => {
            text.parse::<u64>().map_or(Value::String(text), Value::from)
        }
        _ => Value::String(text),
    }
}
