//! Applying a Law Ruler lead webhook to the platform (LR4–LR6): upsert the client by Primary
//! Contact ID and the case by Lead ID, translate case type and status through the mappings,
//! route the case to lists and a campaign. Runs inside the caller's transaction, so a webhook is
//! applied whole or not at all.

use casebridge_domain::error::Validator;
use casebridge_domain::ids::{CampaignId, CaseStatusId, CaseTypeId, CompanyId, ListId};
use casebridge_domain::integrations::CrmValue;
use casebridge_domain::records::{
    CasePatch, ClientFields, ClientInput, ClientPatch, CustomFields, ExternalRef, Name, NamedKind,
    NewCase, NewClient,
};
use casebridge_domain::ValidationError;
use casebridge_store::{
    cases, clients, crm_notes, integrations, lists, named, Conn, StoreError, Tx,
};
use jiff::Timestamp;
use serde_json::json;

use super::inbound::{LeadWebhook, ListAction, ListRef};

pub const PROVIDER: &str = "lawruler";

pub use crate::connector::{Applied, IngestError};

/// The platform record for a CRM value: the mapping if there is one; otherwise a platform record
/// of the same name (created if needed), which is then mapped, so the next webhook is direct.
async fn resolve_named(
    tx: &mut Tx,
    company: CompanyId,
    kind: NamedKind,
    value: &CrmValue,
    mapped: Option<String>,
    now: Timestamp,
    notes: &mut Vec<String>,
) -> Result<String, IngestError> {
    if let Some(id) = mapped {
        return Ok(id);
    }
    let conn: &mut Conn = tx;
    let name = Name::parse(kind.label(), &value.name)?;
    // Concurrent first webhooks naming the same new value all get the one record.
    let id = named::find_or_create(conn, company, kind, &name, now)
        .await?
        .id;
    notes.push(format!(
        "Law Ruler {} {} ({}) mapped to the {} of the same name",
        kind.label(),
        value.id,
        value.name,
        kind.label()
    ));
    Ok(id)
}

async fn resolve_list(
    conn: &mut Conn,
    company: CompanyId,
    list: &ListRef,
) -> Result<ListId, IngestError> {
    let not_found = |what: String| {
        IngestError::Invalid(ValidationError::single(
            "list",
            format!("{what} does not exist"),
        ))
    };
    match list {
        ListRef::Id(raw) => {
            let id: ListId = raw
                .parse()
                .map_err(|_| not_found(format!("list_id {raw}")))?;
            if named::exists(conn, company, NamedKind::List, &id.to_string()).await? {
                Ok(id)
            } else {
                Err(not_found(format!("list_id {raw}")))
            }
        }
        ListRef::Name(name) => named::find_by_name(conn, company, NamedKind::List, name.trim())
            .await?
            .map(|l| l.id.parse().expect("stored list ids parse"))
            .ok_or_else(|| not_found(format!("list_name `{name}`"))),
    }
}

/// Applies one lead webhook inside `tx`.
pub async fn apply_lead(
    tx: &mut Tx,
    company: CompanyId,
    lead: &LeadWebhook,
    now: Timestamp,
) -> Result<Applied, IngestError> {
    let mut notes = Vec::new();

    // Routing targets first: a webhook naming a list or campaign that does not exist is
    // rejected before anything is written.
    let list = match &lead.list {
        Some(d) => Some((resolve_list(tx, company, &d.list).await?, d.action)),
        None => None,
    };
    let campaign = match &lead.campaign_id {
        Some(raw) => {
            let id: Option<CampaignId> = raw.parse().ok();
            match id {
                Some(id) if named::exists(tx, company, NamedKind::Campaign, raw).await? => Some(id),
                _ => {
                    return Err(ValidationError::single(
                        "campaign_id",
                        format!("campaign_id {raw} does not exist"),
                    )
                    .into())
                }
            }
        }
        None => None,
    };

    // A case type a record arrives with is one the firm uses (the setup checklist's).
    integrations::mark_case_type_used(tx, company, PROVIDER, &lead.case_type.id, now).await?;
    let linked = integrations::linked_case_type(tx, company, PROVIDER, &lead.case_type.id)
        .await?
        .map(|c| c.to_string());
    let was_linked = linked.is_some();
    let case_type_id: CaseTypeId = resolve_named(
        tx,
        company,
        NamedKind::CaseType,
        &lead.case_type,
        linked,
        now,
        &mut notes,
    )
    .await?
    .parse()
    .expect("stored ids parse");
    if !was_linked {
        integrations::set_link(
            tx,
            company,
            PROVIDER,
            &lead.case_type.id,
            Some(case_type_id),
        )
        .await?;
    }
    let mapped = integrations::mapped_status(tx, company, PROVIDER, &lead.status.id)
        .await?
        .map(|s| s.to_string());
    let was_mapped = mapped.is_some();
    let case_status_id: CaseStatusId = resolve_named(
        tx,
        company,
        NamedKind::CaseStatus,
        &lead.status,
        mapped,
        now,
        &mut notes,
    )
    .await?
    .parse()
    .expect("stored ids parse");
    if !was_mapped {
        integrations::add_status_mapping(tx, company, PROVIDER, case_status_id, &lead.status.id)
            .await?;
    }

    // Client by Primary Contact ID.
    let mut v = Validator::new();
    let fields = ClientFields::parse(
        ClientInput {
            first_name: Some(&lead.first_name),
            last_name: Some(&lead.last_name),
            email: lead.email.as_deref(),
            phone: lead.phone.as_deref(),
        },
        &mut v,
    );
    v.finish()?;
    let fields = fields.expect("validated");
    let (client_id, client_created) =
        match clients::find_by_ref(tx, company, PROVIDER, &lead.primary_contact_id).await {
            Ok(existing) => {
                if existing.fields != fields {
                    let patch = ClientPatch {
                        first_name: Some(fields.first_name.clone()),
                        last_name: Some(fields.last_name.clone()),
                        email: fields.email.clone().map(Some),
                        phone: fields.phone.clone().map(Some),
                    };
                    clients::update(tx, company, existing.id, &patch, now).await?;
                }
                (existing.id, false)
            }
            Err(StoreError::NotFound) => {
                let created = clients::create(
                    tx,
                    company,
                    &NewClient {
                        fields,
                        external_refs: vec![ExternalRef::parse(
                            "primary_contact_id",
                            PROVIDER,
                            &lead.primary_contact_id,
                        )?],
                    },
                    now,
                )
                .await?;
                (created.id, true)
            }
            Err(e) => return Err(e.into()),
        };

    // Case by Lead ID.
    let name = Name::parse("Full Name", &lead.full_name)?;
    let lr_fields = CustomFields::parse(json!({
        "lawruler_created_date": lead.created_date,
        "lawruler_case_type": lead.case_type.name,
        "lawruler_status": lead.status.name,
    }))?;
    let (case_id, case_created) = match cases::find_by_ref(tx, company, PROVIDER, &lead.lead_id)
        .await
    {
        Ok(existing) => {
            let patch = CasePatch {
                name: Some(name),
                case_type_id: Some(case_type_id),
                case_status_id: Some(Some(case_status_id)),
                client_id: Some(Some(client_id)),
                campaign_id: campaign.map(Some),
                custom_fields: Some(lr_fields),
            };
            cases::update(tx, company, existing.id, &patch, now).await?;
            (existing.id, false)
        }
        Err(StoreError::NotFound) => {
            let created = cases::create(
                tx,
                company,
                &NewCase {
                    name,
                    case_type_id,
                    case_status_id: Some(case_status_id),
                    client_id: Some(client_id),
                    campaign_id: campaign,
                    custom_fields: lr_fields,
                    external_refs: vec![ExternalRef::parse("lead_id", PROVIDER, &lead.lead_id)?],
                },
                now,
            )
            .await?;
            // Notes pulled before the lead had a case now belong to it.
            crm_notes::attach_to_case(tx, company, PROVIDER, &lead.lead_id, created.id).await?;
            (created.id, true)
        }
        Err(e) => return Err(e.into()),
    };

    // Lists: the explicit directive, then the auto-add rules.
    let mut lists_added = Vec::new();
    let mut lists_removed = Vec::new();
    if let Some((list, action)) = list {
        match action {
            ListAction::Add => {
                if lists::add_case(tx, company, list, case_id, now).await? {
                    lists_added.push(list);
                }
            }
            ListAction::Remove => {
                if lists::remove_case(tx, company, list, case_id).await? {
                    lists_removed.push(list);
                }
            }
        }
    }
    for stored in integrations::rules(tx, company, None, Some(PROVIDER)).await? {
        let excluded = list.is_some_and(|(l, a)| l == stored.list_id && a == ListAction::Remove);
        if !excluded
            && stored.rule.matches(&lead.case_type, &lead.status)
            && lists::add_case(tx, company, stored.list_id, case_id, now).await?
        {
            lists_added.push(stored.list_id);
        }
    }
    Ok(Applied {
        case_id,
        client_id,
        case_created,
        client_created,
        case_type_id,
        case_status_id,
        lists_added,
        lists_removed,
        auto_linked: notes,
    })
}
