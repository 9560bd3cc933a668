//! Applying a Law Ruler lead webhook to the platform (LR4–LR6): upsert the client by Primary
//! Contact ID and the case by Lead ID, translate case type and status through the mappings,
//! route the case to lists and a campaign. Runs inside the caller's transaction, so a webhook is
//! applied whole or not at all.

use casebridge_domain::error::Validator;
use casebridge_domain::ids::{CampaignId, CompanyId, ListId};
use casebridge_domain::records::{ClientFields, ClientInput, CustomFields, Name, NamedKind};
use casebridge_domain::ValidationError;
use casebridge_store::{integrations, lists, named, Conn, Tx};
use jiff::Timestamp;
use serde_json::json;

use super::inbound::{LeadWebhook, ListAction, ListRef};
use crate::ingest::{self as shared, CaseValues, Source};

pub const PROVIDER: &str = "lawruler";

pub use crate::connector::{Applied, IngestError};

const SOURCE: Source = Source {
    provider: PROVIDER,
    name: "Law Ruler",
    outbox: crate::lawruler::outbound::OUTBOX,
};

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

    let case_type_id =
        shared::case_type(tx, company, SOURCE, &lead.case_type, now, &mut notes).await?;
    let case_status_id =
        shared::case_status(tx, company, SOURCE, &lead.status, now, &mut notes).await?;

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
    let (client_id, client_created) = shared::upsert_client(
        tx,
        company,
        SOURCE,
        "primary_contact_id",
        &lead.primary_contact_id,
        fields,
        now,
    )
    .await?;

    // Case by Lead ID.
    let name = Name::parse("Full Name", &lead.full_name)?;
    let lr_fields = CustomFields::parse(json!({
        "lawruler_created_date": lead.created_date,
        "lawruler_case_type": lead.case_type.name,
        "lawruler_status": lead.status.name,
    }))?;
    let upserted = shared::upsert_case(
        tx,
        company,
        SOURCE,
        "lead_id",
        &lead.lead_id,
        CaseValues {
            name,
            case_type_id,
            case_status_id,
            // Law Ruler's webhook carries no change time: its arrival time stands for it.
            crm_status: lead.status.clone(),
            crm_changed_at: Some(now),
            client_id,
            campaign_id: campaign,
            custom_fields: lr_fields,
        },
        now,
    )
    .await?;
    let (case_id, case_created) = (upserted.case_id, upserted.created);
    let case_status_id = upserted.case_status_id.unwrap_or(case_status_id);

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
