//! External references `(provider, external_id)` of cases and clients.

use std::collections::HashMap;

use casebridge_domain::ids::CompanyId;
use casebridge_domain::records::ExternalRef;
use jiff::Timestamp;

use crate::{Conn, Result, StoreError};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Entity {
    Case,
    Client,
}

impl Entity {
    fn as_str(self) -> &'static str {
        match self {
            Entity::Case => "case",
            Entity::Client => "client",
        }
    }
}

/// The id of the record that carries this ref, if any.
pub(crate) async fn find(
    conn: &mut Conn,
    company: CompanyId,
    entity: Entity,
    provider: &str,
    external_id: &str,
) -> Result<Option<String>> {
    Ok(sqlx::query_scalar(
        "SELECT entity_id FROM external_refs
         WHERE company_id = $1 AND entity = $2 AND provider = $3 AND external_id = $4",
    )
    .bind(company.to_string())
    .bind(entity.as_str())
    .bind(provider)
    .bind(external_id)
    .fetch_optional(&mut *conn)
    .await?)
}

/// Attaches refs to a record. A ref held by another record, or a second ref of the same provider
/// on this record, is a conflict that names both.
pub(crate) async fn attach(
    conn: &mut Conn,
    company: CompanyId,
    entity: Entity,
    entity_id: &str,
    refs: &[ExternalRef],
    now: Timestamp,
) -> Result<()> {
    for r in refs {
        if let Some(owner) = find(conn, company, entity, &r.provider, &r.external_id).await? {
            if owner == entity_id {
                continue;
            }
            return Err(StoreError::Conflict(format!(
                "external ref {}/{} already belongs to {} {owner}",
                r.provider,
                r.external_id,
                entity.as_str()
            )));
        }
        sqlx::query(
            "INSERT INTO external_refs
                 (company_id, entity, provider, external_id, entity_id, created_at)
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(company.to_string())
        .bind(entity.as_str())
        .bind(&r.provider)
        .bind(&r.external_id)
        .bind(entity_id)
        .bind(now.as_millisecond())
        .execute(&mut *conn)
        .await
        .map_err(|e| {
            StoreError::from(e).on_conflict(|| {
                format!(
                    "this {} already has a {} ref, or {}/{} was just taken by another record",
                    entity.as_str(),
                    r.provider,
                    r.provider,
                    r.external_id
                )
            })
        })?;
    }
    Ok(())
}

/// The refs of many records at once (for list pages), keyed by record id.
pub(crate) async fn for_entities(
    conn: &mut Conn,
    company: CompanyId,
    entity: Entity,
    ids: &[String],
) -> Result<HashMap<String, Vec<ExternalRef>>> {
    let mut out: HashMap<String, Vec<ExternalRef>> = HashMap::new();
    if ids.is_empty() {
        return Ok(out);
    }
    let placeholders: Vec<String> = (0..ids.len()).map(|i| format!("${}", i + 3)).collect();
    let sql = format!(
        // `company_id || ''` keeps the company check out of index choice: SQLite (no
        // statistics) otherwise walks the primary key's (company_id, entity) prefix, every ref
        // of the company for each page, instead of the (entity, entity_id) index — an export of
        // 1,000,000 clients was quadratic.
        "SELECT entity_id, provider, external_id FROM external_refs
         WHERE entity = $2 AND entity_id IN ({}) AND company_id || '' = $1
         ORDER BY provider",
        placeholders.join(", ")
    );
    let mut q = sqlx::query_as::<_, (String, String, String)>(&sql)
        .bind(company.to_string())
        .bind(entity.as_str());
    for id in ids {
        q = q.bind(id);
    }
    for (entity_id, provider, external_id) in q.fetch_all(&mut *conn).await? {
        out.entry(entity_id).or_default().push(ExternalRef {
            provider,
            external_id,
        });
    }
    Ok(out)
}

pub(crate) async fn delete_for(
    conn: &mut Conn,
    company: CompanyId,
    entity: Entity,
    entity_id: &str,
) -> Result<()> {
    sqlx::query(
        "DELETE FROM external_refs WHERE company_id = $1 AND entity = $2 AND entity_id = $3",
    )
    .bind(company.to_string())
    .bind(entity.as_str())
    .bind(entity_id)
    .execute(&mut *conn)
    .await?;
    Ok(())
}
