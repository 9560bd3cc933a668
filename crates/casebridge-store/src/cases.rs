use casebridge_domain::ids::{CaseId, CompanyId};
use casebridge_domain::model::Case;
use casebridge_domain::page::{Page, PageRequest};
use casebridge_domain::records::{
    CaseFilter, CasePatch, CustomFields, ExternalRef, NamedKind, NewCase,
};
use casebridge_domain::ValidationError;
use jiff::Timestamp;
use sqlx::FromRow;

use crate::refs::{self, Entity};
use crate::{clients, named, parse_id, parse_opt_id, ts, Conn, Result, StoreError, Tx};

const COLUMNS: &str =
    "id, name, case_type_id, case_status_id, client_id, campaign_id, custom_fields,
    created_at, updated_at";
/// The same columns, qualified for joins.
const C_COLUMNS: &str =
    "c.id, c.name, c.case_type_id, c.case_status_id, c.client_id, c.campaign_id,
    c.custom_fields, c.created_at, c.updated_at";

#[derive(FromRow)]
struct Row {
    id: String,
    name: String,
    case_type_id: String,
    case_status_id: Option<String>,
    client_id: Option<String>,
    campaign_id: Option<String>,
    custom_fields: String,
    created_at: i64,
    updated_at: i64,
}

impl Row {
    fn into_model(self, external_refs: Vec<ExternalRef>) -> Result<Case> {
        Ok(Case {
            id: parse_id("cases.id", &self.id)?,
            name: self.name,
            case_type_id: parse_id("cases.case_type_id", &self.case_type_id)?,
            case_status_id: parse_opt_id("cases.case_status_id", self.case_status_id.as_deref())?,
            client_id: parse_opt_id("cases.client_id", self.client_id.as_deref())?,
            campaign_id: parse_opt_id("cases.campaign_id", self.campaign_id.as_deref())?,
            custom_fields: serde_json::from_str(&self.custom_fields)
                .map_err(|e| StoreError::Corrupt(format!("cases.custom_fields: {e}")))?,
            external_refs,
            created_at: ts(self.created_at)?,
            updated_at: ts(self.updated_at)?,
        })
    }
}

/// Checks that every record a case points at exists in the same company, naming each one
/// that does not. (The composite foreign keys enforce the same rule as a last line of defence.)
async fn check_references(
    conn: &mut Conn,
    company: CompanyId,
    case_type_id: Option<String>,
    case_status_id: Option<String>,
    client_id: Option<String>,
    campaign_id: Option<String>,
) -> Result<()> {
    let mut errors = Vec::new();
    if let Some(id) = campaign_id {
        if !named::exists(conn, company, NamedKind::Campaign, &id).await? {
            errors.push(("campaign_id", format!("no campaign with id {id}")));
        }
    }
    if let Some(id) = case_type_id {
        if !named::exists(conn, company, NamedKind::CaseType, &id).await? {
            errors.push(("case_type_id", format!("no case type with id {id}")));
        }
    }
    if let Some(id) = case_status_id {
        if !named::exists(conn, company, NamedKind::CaseStatus, &id).await? {
            errors.push(("case_status_id", format!("no case status with id {id}")));
        }
    }
    if let Some(id) = client_id {
        if !clients::exists(conn, company, parse_id("client_id", &id)?).await? {
            errors.push(("client_id", format!("no client with id {id}")));
        }
    }
    if errors.is_empty() {
        return Ok(());
    }
    let mut v = casebridge_domain::error::Validator::new();
    for (field, message) in errors {
        v.push(field, message);
    }
    Err(StoreError::Invalid(v.finish().expect_err("has errors")))
}

pub async fn create(
    conn: &mut Tx,
    company: CompanyId,
    new: &NewCase,
    now: Timestamp,
) -> Result<Case> {
    let id = insert(conn, company, new, now).await?;
    get(conn, company, id).await
}

/// [`create`] without reading the case back: its id only (for ingest paths that need no more,
/// two statements fewer).
pub async fn insert(
    conn: &mut Tx,
    company: CompanyId,
    new: &NewCase,
    now: Timestamp,
) -> Result<CaseId> {
    let conn: &mut Conn = conn;
    check_references(
        conn,
        company,
        Some(new.case_type_id.to_string()),
        new.case_status_id.map(|i| i.to_string()),
        new.client_id.map(|i| i.to_string()),
        new.campaign_id.map(|i| i.to_string()),
    )
    .await?;
    let id = CaseId::new();
    sqlx::query(
        "INSERT INTO cases (id, company_id, name, case_type_id, case_status_id, client_id,
                            custom_fields, created_at, updated_at, campaign_id)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8, $9)",
    )
    .bind(id.to_string())
    .bind(company.to_string())
    .bind(new.name.as_str())
    .bind(new.case_type_id.to_string())
    .bind(new.case_status_id.map(|i| i.to_string()))
    .bind(new.client_id.map(|i| i.to_string()))
    .bind(new.custom_fields.clone().into_value().to_string())
    .bind(now.as_millisecond())
    .bind(new.campaign_id.map(|i| i.to_string()))
    .execute(&mut *conn)
    .await?;
    refs::attach(
        conn,
        company,
        Entity::Case,
        &id.to_string(),
        &new.external_refs,
        now,
    )
    .await?;
    Ok(id)
}

/// The case, its row locked until the transaction ends, for a change that must compare the
/// record before and after (outbound sync diffs) without losing to a concurrent writer.
pub async fn get_for_update(conn: &mut Tx, company: CompanyId, id: CaseId) -> Result<Case> {
    let conn: &mut Conn = conn;
    let found: Option<String> = sqlx::query_scalar(&format!(
        "SELECT id FROM cases WHERE company_id = $1 AND id = $2{}",
        crate::for_update(conn)
    ))
    .bind(company.to_string())
    .bind(id.to_string())
    .fetch_optional(&mut *conn)
    .await?;
    found.ok_or(StoreError::NotFound)?;
    get(conn, company, id).await
}

pub async fn get(conn: &mut Conn, company: CompanyId, id: CaseId) -> Result<Case> {
    let row: Row = sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM cases WHERE company_id = $1 AND id = $2"
    ))
    .bind(company.to_string())
    .bind(id.to_string())
    .fetch_one(&mut *conn)
    .await?;
    let mut refs =
        refs::for_entities(conn, company, Entity::Case, std::slice::from_ref(&row.id)).await?;
    let r = refs.remove(&row.id).unwrap_or_default();
    row.into_model(r)
}

pub async fn find_by_ref(
    conn: &mut Conn,
    company: CompanyId,
    provider: &str,
    external_id: &str,
) -> Result<Case> {
    let id = refs::find(conn, company, Entity::Case, provider, external_id)
        .await?
        .ok_or(StoreError::NotFound)?;
    get(conn, company, parse_id("external_refs.entity_id", &id)?).await
}

pub async fn list(
    conn: &mut Conn,
    company: CompanyId,
    filter: &CaseFilter,
    page: &PageRequest,
) -> Result<Page<Case>> {
    let rows: Vec<Row> = sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM cases
         WHERE company_id = $1 AND id > $2
           AND ($3 IS NULL OR case_type_id = $3)
           AND ($4 IS NULL OR case_status_id = $4)
           AND ($5 IS NULL OR client_id = $5)
           AND ($6 IS NULL OR created_at >= $6)
           AND ($7 IS NULL OR created_at < $7)
         ORDER BY id LIMIT $8"
    ))
    .bind(company.to_string())
    .bind(page.after.clone().unwrap_or_default())
    .bind(filter.case_type_id.map(|i| i.to_string()))
    .bind(filter.case_status_id.map(|i| i.to_string()))
    .bind(filter.client_id.map(|i| i.to_string()))
    .bind(filter.created_since.map(|t| t.as_millisecond()))
    .bind(filter.created_until.map(|t| t.as_millisecond()))
    .bind(i64::from(page.limit) + 1)
    .fetch_all(&mut *conn)
    .await?;
    with_refs(conn, company, rows, page.limit).await
}

/// How many cases were created in `[since, until)` (for an export's progress).
pub async fn count_created(
    conn: &mut Conn,
    company: CompanyId,
    since: Option<Timestamp>,
    until: Option<Timestamp>,
) -> Result<u64> {
    let n: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM cases WHERE company_id = $1
           AND ($2 IS NULL OR created_at >= $2) AND ($3 IS NULL OR created_at < $3)",
    )
    .bind(company.to_string())
    .bind(since.map(|t| t.as_millisecond()))
    .bind(until.map(|t| t.as_millisecond()))
    .fetch_one(&mut *conn)
    .await?;
    Ok(u64::try_from(n).unwrap_or(0))
}

async fn with_refs(
    conn: &mut Conn,
    company: CompanyId,
    rows: Vec<Row>,
    limit: u32,
) -> Result<Page<Case>> {
    let ids: Vec<String> = rows.iter().map(|r| r.id.clone()).collect();
    let mut refs = refs::for_entities(conn, company, Entity::Case, &ids).await?;
    let items = rows
        .into_iter()
        .map(|r| {
            let x = refs.remove(&r.id).unwrap_or_default();
            r.into_model(x)
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(Page::from_overfetch(items, limit, |c| c.id.to_string()))
}

pub async fn update(
    conn: &mut Tx,
    company: CompanyId,
    id: CaseId,
    patch: &CasePatch,
    now: Timestamp,
) -> Result<Case> {
    let conn: &mut Conn = conn;
    let current = get(conn, company, id).await?;
    check_references(
        conn,
        company,
        patch.case_type_id.map(|i| i.to_string()),
        patch.case_status_id.flatten().map(|i| i.to_string()),
        patch.client_id.flatten().map(|i| i.to_string()),
        patch.campaign_id.flatten().map(|i| i.to_string()),
    )
    .await?;
    let mut custom = CustomFields::parse(current.custom_fields)
        .map_err(|e: ValidationError| StoreError::Corrupt(e.to_string()))?;
    if let Some(p) = &patch.custom_fields {
        custom.merge(p.clone());
    }
    let name = patch
        .name
        .as_ref()
        .map(|n| n.as_str().to_owned())
        .unwrap_or(current.name);
    let case_type_id = patch.case_type_id.unwrap_or(current.case_type_id);
    let case_status_id = patch.case_status_id.unwrap_or(current.case_status_id);
    let client_id = patch.client_id.unwrap_or(current.client_id);
    let campaign_id = patch.campaign_id.unwrap_or(current.campaign_id);
    sqlx::query(
        "UPDATE cases SET name = $3, case_type_id = $4, case_status_id = $5, client_id = $6,
                          custom_fields = $7, updated_at = $8, campaign_id = $9
         WHERE company_id = $1 AND id = $2",
    )
    .bind(company.to_string())
    .bind(id.to_string())
    .bind(name)
    .bind(case_type_id.to_string())
    .bind(case_status_id.map(|i| i.to_string()))
    .bind(client_id.map(|i| i.to_string()))
    .bind(custom.into_value().to_string())
    .bind(now.as_millisecond())
    .bind(campaign_id.map(|i| i.to_string()))
    .execute(&mut *conn)
    .await?;
    get(conn, company, id).await
}

pub async fn exists(conn: &mut Conn, company: CompanyId, id: CaseId) -> Result<bool> {
    let found: Option<i64> =
        sqlx::query_scalar("SELECT 1 FROM cases WHERE company_id = $1 AND id = $2")
            .bind(company.to_string())
            .bind(id.to_string())
            .fetch_optional(&mut *conn)
            .await?;
    Ok(found.is_some())
}

pub async fn add_refs(
    conn: &mut Tx,
    company: CompanyId,
    id: CaseId,
    new_refs: &[ExternalRef],
    now: Timestamp,
) -> Result<Case> {
    let conn: &mut Conn = conn;
    if !exists(conn, company, id).await? {
        return Err(StoreError::NotFound);
    }
    refs::attach(conn, company, Entity::Case, &id.to_string(), new_refs, now).await?;
    get(conn, company, id).await
}

/// Deletes a case with its list memberships and external refs. A case with recorded activity
/// (calls, messages, tasks, bookings) is kept: that history belongs to it.
pub async fn delete(conn: &mut Tx, company: CompanyId, id: CaseId) -> Result<()> {
    let conn: &mut Conn = conn;
    let done = sqlx::query("DELETE FROM cases WHERE company_id = $1 AND id = $2")
        .bind(company.to_string())
        .bind(id.to_string())
        .execute(&mut *conn)
        .await
        .map_err(|e| {
            StoreError::from(e).on_conflict(|| {
                "this case has calls, messages, tasks, bookings, documents or Law Ruler notes recorded; it cannot be deleted".into()
            })
        })?;
    if done.rows_affected() == 0 {
        return Err(StoreError::NotFound);
    }
    refs::delete_for(conn, company, Entity::Case, &id.to_string()).await
}

/// Cases on a list, in the order of their ids.
pub(crate) async fn list_rows_on_list(
    conn: &mut Conn,
    company: CompanyId,
    list_id: &str,
    page: &PageRequest,
) -> Result<Page<Case>> {
    let rows: Vec<Row> = sqlx::query_as(&format!(
        "SELECT {C_COLUMNS} FROM cases c
         JOIN list_cases lc ON lc.case_id = c.id AND lc.company_id = c.company_id
         WHERE c.company_id = $1 AND lc.list_id = $2 AND c.id > $3
         ORDER BY c.id LIMIT $4"
    ))
    .bind(company.to_string())
    .bind(list_id)
    .bind(page.after.clone().unwrap_or_default())
    .bind(i64::from(page.limit) + 1)
    .fetch_all(&mut *conn)
    .await?;
    with_refs(conn, company, rows, page.limit).await
}
