//! CRM integrations (SPEC §3, §5): the connection, the toggles, status sync, the CRM catalog,
//! case type links, field and status mappings, the sync log, outbound operations and list
//! auto-add rules.
//!
//! Mappings, settings and the sync log are provider-neutral; connecting, loading the catalog and
//! status sync go through the provider's [`Connector`].

use std::collections::HashMap;
use std::sync::Arc;

use casebridge_crm::connector::{ApiImportError, CatalogError, ConnectError};
use casebridge_crm::Connector;
use casebridge_domain::crm_ops::{OpState, ResumeMode};
use casebridge_domain::error::Validator;
use casebridge_domain::ids::{CaseStatusId, CaseTypeId, CompanyId, ListId};
use casebridge_domain::integrations::{
    unreachable_base_url, AutoAddRule, Checklist, Direction, Frequency, KindSupport, PlatformField,
    Provider, StatusMappingClash, StatusMappingSet, StatusSlot, SyncOutcome, Toggles,
};
pub use casebridge_domain::integrations::{DataKind, Flow};
use casebridge_domain::page::{Page, PageRequest};
use casebridge_domain::records::NamedKind;
use casebridge_domain::sync::{ConflictRule, FieldRule, RecordOutcome};
use casebridge_domain::ValidationError;
use casebridge_store::integrations::{self as store, CrmField, NewSyncEntry, StoredStatusMapping};
use casebridge_store::{named, Conn, StoreError};
use jiff::{SignedDuration, Timestamp};
use rand::RngCore;
use serde_json::{Map, Value};

pub use casebridge_store::crm_ops::CrmOp;
pub use casebridge_store::integrations::{CrmItem, Integration, StoredRule, SyncEntry};

use crate::{App, AppError, OrNotFound, Result};

/// The base of the webhook URLs when the process gave none (the binary always does: the public
/// URL or its listen address).
const DEFAULT_PUBLIC_URL: &str = "http://127.0.0.1:8080";

/// The providers shown on the integrations list, in order.
const PROVIDERS: [Provider; 2] = [Provider::LawRuler, Provider::SmartAdvocate];

/// A provider named in a request; an unknown one is not found.
pub fn provider(raw: &str) -> Result<Provider> {
    Provider::parse(raw).ok_or_else(|| {
        AppError::NotFound(format!(
            "no integration `{raw}`; there are `lawruler` and `smartadvocate`"
        ))
    })
}

/// The connector of a provider casebridge can connect; another one gets `missing`.
fn connector(
    app: &App,
    p: Provider,
    missing: impl FnOnce() -> AppError,
) -> Result<&Arc<dyn Connector>> {
    app.connectors().get(p).ok_or_else(missing)
}

/// A provider whose status sync can be turned on and off (status changes held meanwhile).
fn status_sync_connector(app: &App, p: Provider) -> Result<&Arc<dyn Connector>> {
    let missing = || {
        AppError::NotFound(format!(
            "{} has no outbound sync in this version",
            p.label()
        ))
    };
    let c = connector(app, p, missing)?;
    if c.holds_status_changes() {
        Ok(c)
    } else {
        Err(missing())
    }
}

/// A random, unguessable token for the inbound webhook URL (LR2).
fn new_token() -> String {
    let mut bytes = [0u8; 24];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The inbound URL a CRM posts its webhooks to.
fn webhook_url(base: &str, p: Provider, token: &str) -> String {
    format!(
        "{}/hooks/{}/{}",
        base.trim_end_matches('/'),
        p.as_str(),
        token
    )
}

/// How long a rotated-out inbound webhook URL keeps working unless told otherwise.
pub const DEFAULT_TOKEN_GRACE: SignedDuration = SignedDuration::from_hours(24);
/// The longest grace period a rotation may give the old URL.
pub const MAX_TOKEN_GRACE: SignedDuration = SignedDuration::from_hours(24 * 30);

/// The inbound webhook URL after a rotation, and until when the previous one still works.
#[derive(Debug, Clone)]
pub struct RotatedWebhookUrl {
    pub webhook_url: String,
    pub previous_url_expires_at: Timestamp,
}

/// Gives the inbound webhook URL a new token. The previous URL keeps receiving for `grace`
/// (default 24 hours, at most 30 days; zero ends it now), then answers 404 like any unknown
/// token. Tokens are never logged; the sync log records that a rotation happened.
pub async fn rotate_webhook_token(
    app: &App,
    company: CompanyId,
    p: Provider,
    grace: Option<SignedDuration>,
) -> Result<RotatedWebhookUrl> {
    let grace = grace.unwrap_or(DEFAULT_TOKEN_GRACE);
    if grace.is_negative() || grace > MAX_TOKEN_GRACE {
        return Err(ValidationError::single(
            "grace_hours",
            format!("must be between 0 and {}", MAX_TOKEN_GRACE.as_hours()),
        )
        .into());
    }
    let now = app.now();
    let expires = now + grace;
    let mut tx = app.store().begin().await?;
    store::ensure(&mut tx, company, p.as_str(), &new_token(), now).await?;
    let i = store::rotate_token(&mut tx, company, p.as_str(), &new_token(), expires, now).await?;
    let message = format!("webhook URL rotated; the previous URL works until {expires:.0}");
    log_action(
        &mut tx,
        company,
        p,
        "inbound",
        "rotate_webhook_url",
        &message,
        now,
    )
    .await?;
    tx.commit().await?;
    let base = app.public_url().unwrap_or(DEFAULT_PUBLIC_URL);
    Ok(RotatedWebhookUrl {
        webhook_url: webhook_url(base, p, &i.webhook_token),
        previous_url_expires_at: expires,
    })
}

/// The company's integration row for `p`, created on first use (with its webhook token).
async fn ensure(app: &App, company: CompanyId, p: Provider) -> Result<Integration> {
    let mut tx = app.store().begin().await?;
    let i = store::ensure(&mut tx, company, p.as_str(), &new_token(), app.now()).await?;
    tx.commit().await?;
    Ok(i)
}

/// One successful sync-log line written by an admin's action (no record).
async fn log_action(
    conn: &mut Conn,
    company: CompanyId,
    p: Provider,
    direction: &str,
    operation: &str,
    message: &str,
    now: Timestamp,
) -> Result<()> {
    store::log(
        conn,
        company,
        p.as_str(),
        &NewSyncEntry {
            direction,
            operation,
            record_ref: None,
            outcome: SyncOutcome::Ok,
            error_kind: None,
            message: Some(message),
        },
        now,
    )
    .await?;
    Ok(())
}

fn vanished() -> AppError {
    AppError::Internal("integration vanished".into())
}

/// Reads the integration as the transaction left it, commits, and shows it.
async fn commit_and_view(
    app: &App,
    mut tx: casebridge_store::Tx,
    company: CompanyId,
    p: Provider,
) -> Result<IntegrationView> {
    let i = store::get(&mut tx, company, p.as_str())
        .await?
        .ok_or_else(vanished)?;
    tx.commit().await?;
    view(app, p, i).await
}

// ---- views ----

/// One card of Settings → Integrations.
#[derive(Debug, Clone)]
pub struct Card {
    pub provider: String,
    pub name: String,
    pub connected: bool,
    /// Whether casebridge can connect this provider yet.
    pub available: bool,
}

/// Outbound operations by state (SYNC3).
#[derive(Debug, Clone, Default)]
pub struct OpCounts {
    pub done: u64,
    pub pending: u64,
    pub held: u64,
    pub blocked: u64,
    pub failed: u64,
    pub skipped: u64,
}

/// An integration's setup screen: the row, its connection as shown, the webhook URL, the
/// checklist and sync monitoring (LR12, SYNC3).
#[derive(Debug, Clone)]
pub struct IntegrationView {
    pub provider: Provider,
    pub integration: Integration,
    /// Masked; `None` when not connected.
    pub credentials: Option<Map<String, Value>>,
    pub webhook_url: String,
    /// Why the CRM cannot reach `webhook_url` (a loopback address), when it cannot.
    pub webhook_url_warning: Option<String>,
    pub toggles: Toggles,
    pub checklist: Checklist,
    pub records_received: u64,
    pub operations: OpCounts,
    /// The newest error of the sync log.
    pub last_error: Option<SyncEntry>,
    /// Why this version neither receives from nor sends to this CRM (its toggles then do
    /// nothing); `None` when it does.
    pub sync_unavailable: Option<String>,
    /// The permissions connecting checks the API user has (empty: none checked separately).
    pub permission_checks: &'static [&'static str],
    /// Until when the CRM token in memory is used before renewal (`None`: none held now).
    pub token_valid_until: Option<Timestamp>,
    /// The next run of an hourly or daily frequency (`Frequency::next_run`): when the
    /// operations recorded meanwhile go and the CRM is pulled. `None` in real time.
    pub next_run_at: Option<Timestamp>,
    /// Selective sync (SYNC1): each kind of data, in and out, as the settings leave it.
    pub selective: Vec<(DataKind, Flow, Flow)>,
    /// The initial sync a connect just started (its import), when it asked for one.
    pub initial_import: Option<uuid::Uuid>,
}

impl IntegrationView {
    pub fn connected(&self) -> bool {
        self.credentials.is_some()
    }
}

/// The checklist's "case types linked": the CRM case types the firm uses (those records have
/// arrived with) are all linked; with none used yet, at least one link is made. Case types of
/// the CRM that no record has come with do not count.
fn case_types_linked(used: &[String], links: &[(String, CaseTypeId)]) -> bool {
    if used.is_empty() {
        return !links.is_empty();
    }
    used.iter().all(|u| links.iter().any(|(l, _)| l == u))
}

async fn view(app: &App, p: Provider, i: Integration) -> Result<IntegrationView> {
    let connector = app.connectors().get(p);
    let credentials = match connector {
        Some(c) => c.masked_credentials(&i).map_err(AppError::Internal)?,
        None => None,
    };
    let sync_unavailable = connector.and_then(|c| c.sync_unavailable());
    let permission_checks = connector.map_or(&[][..], |c| c.permission_checks());
    let support = connector.map_or(
        KindSupport {
            inbound: &[],
            outbound: &[],
            status_needs_send: false,
        },
        |c| c.data_kinds(),
    );
    let token_valid_until = match connector {
        Some(c) => c.token_valid_until(&i).await,
        None => None,
    };
    let mut conn = app.store().conn().await?;
    let toggles = Toggles::from_settings(&i.settings);
    let links = store::links(&mut conn, i.company_id, p.as_str()).await?;
    let used = store::used_case_types(&mut conn, i.company_id, p.as_str()).await?;
    let checklist = Checklist {
        connected: credentials.is_some(),
        first_webhook_received: i.first_webhook_at.is_some(),
        case_types_linked: case_types_linked(&used, &links),
        sync_enabled: toggles.enable_integration,
    };
    let base = app.public_url().unwrap_or(DEFAULT_PUBLIC_URL);
    let counts = casebridge_store::crm_ops::counts(&mut conn, i.company_id, p.as_str()).await?;
    let count = |st: OpState| counts.iter().find(|(s, _)| *s == st).map_or(0, |(_, n)| *n);
    let last_error = store::sync_log(
        &mut conn,
        i.company_id,
        p.as_str(),
        Some("error"),
        &PageRequest::first(1),
    )
    .await?
    .items
    .into_iter()
    .next();
    Ok(IntegrationView {
        provider: p,
        next_run_at: toggles.frequency.next_run(i.next_run_at, app.now()),
        selective: toggles.selective(&support),
        initial_import: None,
        webhook_url: webhook_url(base, p, &i.webhook_token),
        webhook_url_warning: unreachable_base_url(base),
        records_received: store::records_received(&mut conn, i.company_id, p.as_str()).await?,
        operations: OpCounts {
            done: count(OpState::Done),
            pending: count(OpState::Pending),
            held: count(OpState::Held),
            blocked: count(OpState::Blocked),
            failed: count(OpState::Failed),
            skipped: count(OpState::Skipped),
        },
        last_error,
        sync_unavailable,
        permission_checks,
        token_valid_until,
        credentials,
        toggles,
        checklist,
        integration: i,
    })
}

/// The integrations and whether each is connected (Settings → Integrations): the CRMs, then
/// scheduling.
pub async fn list(app: &App, company: CompanyId) -> Result<Vec<Card>> {
    let mut conn = app.store().conn().await?;
    let mut out = Vec::new();
    for p in PROVIDERS {
        let connected = store::get(&mut conn, company, p.as_str())
            .await?
            .is_some_and(|i| i.credentials_sealed.is_some());
        out.push(Card {
            provider: p.as_str().into(),
            name: p.label().into(),
            connected,
            available: app.connectors().get(p).is_some(),
        });
    }
    let scheduling = casebridge_store::scheduling::connection(&mut conn, company).await?;
    out.push(Card {
        provider: "scheduling".into(),
        name: "Scheduling".into(),
        connected: scheduling.is_some(),
        available: true,
    });
    Ok(out)
}

/// Settings → Integrations at a glance: each CRM with its setup view (when casebridge can
/// connect it), whether scheduling is connected, and the company's webhooks (all, and on).
#[derive(Debug, Clone)]
pub struct Overview {
    pub crms: Vec<(Provider, Option<IntegrationView>)>,
    pub scheduling_connected: bool,
    pub webhooks: u64,
    pub webhooks_active: u64,
}

pub async fn overview(app: &App, company: CompanyId) -> Result<Overview> {
    let mut crms = Vec::new();
    for p in PROVIDERS {
        let view = match app.connectors().get(p) {
            Some(_) => Some(get(app, company, p).await?),
            None => None,
        };
        crms.push((p, view));
    }
    let mut conn = app.store().conn().await?;
    let scheduling_connected = casebridge_store::scheduling::connection(&mut conn, company)
        .await?
        .is_some();
    let (webhooks, webhooks_active) = casebridge_store::webhooks::count(&mut conn, company).await?;
    Ok(Overview {
        crms,
        scheduling_connected,
        webhooks,
        webhooks_active,
    })
}

/// An integration's setup screen.
pub async fn get(app: &App, company: CompanyId, p: Provider) -> Result<IntegrationView> {
    let i = ensure(app, company, p).await?;
    view(app, p, i).await
}

// ---- connection ----

/// Connects a CRM: the connector checks the values against the CRM and names a wrong one; they
/// are stored sealed. Reconnecting replaces them, and operations parked by a configuration
/// error go out again, in order.
/// Connects a CRM (see the connector's `connect`). With `initial_sync`, the initial sync (SYNC1)
/// starts in the same transaction: an import of the CRM's existing records through its API,
/// resumable, with progress (`GET …/import/{id}`), matched by external ref so later webhooks
/// update the same records; its id is in the view's `initial_import`.
pub async fn connect(
    app: &App,
    company: CompanyId,
    p: Provider,
    input: &Value,
    initial_sync: bool,
) -> Result<IntegrationView> {
    let c = connector(app, p, || {
        AppError::Conflict(format!(
            "{} cannot be connected in this version yet",
            p.label()
        ))
    })?;
    // The CRM is called before any database connection is taken.
    let sealed = c
        .connect(company, input, app.url_policy())
        .await
        .map_err(|e| match e {
            ConnectError::Invalid(v) => AppError::Validation(v),
            ConnectError::Unavailable(m) => AppError::Unavailable(m),
        })?;
    let now = app.now();
    let mut tx = app.store().begin().await?;
    store::ensure(&mut tx, company, p.as_str(), &new_token(), now).await?;
    store::set_credentials(&mut tx, company, p.as_str(), Some(&sealed), now).await?;
    let requeued = c.requeue_blocked(&mut tx, company, now).await?;
    let connected_msg = if requeued == 0 {
        "connected; credentials verified".to_owned()
    } else {
        format!("connected; credentials verified; {requeued} waiting operation(s) sent again")
    };
    log_action(
        &mut tx,
        company,
        p,
        "outbound",
        "connect",
        &connected_msg,
        now,
    )
    .await?;
    let initial = if initial_sync {
        let import = c
            .enqueue_api_import(&mut tx, company, None, now)
            .await
            .map_err(|e| match e {
                ApiImportError::NotConnected(m) => AppError::Conflict(m),
                ApiImportError::Store(e) => e.into(),
            })?;
        let msg = format!(
            "initial sync started: import {} of every existing {} record",
            import.id,
            p.label()
        );
        log_action(&mut tx, company, p, "inbound", "initial sync", &msg, now).await?;
        Some(import.id)
    } else {
        None
    };
    let mut view = commit_and_view(app, tx, company, p).await?;
    view.initial_import = initial;
    Ok(view)
}

/// What asking for a pull did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PullRequested {
    /// The pull's job, when one was added; `None` when a pull was already waiting (it will
    /// read everything changed up to when it runs).
    pub job_id: Option<String>,
}

/// Pulls the CRM's changes now (on demand, beside the schedule): a pull job is queued unless
/// one is already waiting. Refused (409, with the reason) when nothing would be received: not
/// connected, the integration off, or receiving off.
pub async fn pull_now(app: &App, company: CompanyId, p: Provider) -> Result<PullRequested> {
    let c = connector(app, p, || {
        AppError::Conflict(format!("{} cannot be pulled in this version", p.label()))
    })?;
    let i = ensure(app, company, p).await?;
    if let Some(reason) = c.inbound_gate(&i) {
        return Err(AppError::Conflict(format!(
            "nothing would be pulled: {reason}"
        )));
    }
    let mut tx = app.store().begin().await?;
    let job = c.enqueue_pull(&mut tx, company, app.now()).await?;
    tx.commit().await?;
    Ok(PullRequested {
        job_id: job.map(|j| j.to_string()),
    })
}

/// What "run now" did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunStarted {
    /// The pull's job, when one was added.
    pub pull_job_id: Option<String>,
    /// Why no pull was added, when none was (nothing would be received, or one is waiting).
    pub no_pull: Option<String>,
    /// Operations that were waiting for the next run and are due now.
    pub released: u64,
    /// The next run (hourly or daily: an interval from now); `None` in real time.
    pub next_run_at: Option<Timestamp>,
}

/// Runs the integration now (SYNC1): a pull (unless nothing would be received, or one is
/// already waiting), and every operation waiting for the next run is due at once. With an
/// hourly or daily frequency the schedule is re-based: the next run is an interval from now.
/// The integration row is locked, so an operation recorded meanwhile is either released here or
/// queued for the new next run.
pub async fn run_now(app: &App, company: CompanyId, p: Provider) -> Result<RunStarted> {
    let c = connector(app, p, || {
        AppError::Conflict(format!("{} cannot be run in this version", p.label()))
    })?;
    ensure(app, company, p).await?;
    let now = app.now();
    let mut tx = app.store().begin().await?;
    let i = store::get_for_update(&mut tx, company, p.as_str())
        .await?
        .ok_or_else(vanished)?;
    let (pull_job_id, no_pull) = match c.inbound_gate(&i) {
        Some(reason) => (None, Some(format!("nothing would be pulled: {reason}"))),
        None => match c.enqueue_pull(&mut tx, company, now).await? {
            Some(job) => (Some(job.to_string()), None),
            None => (
                None,
                Some("a pull is already waiting; it reads everything changed until it runs".into()),
            ),
        },
    };
    let released = c.release_batched(&mut tx, company, now, now).await?;
    let frequency = Toggles::from_settings(&i.settings).frequency;
    let next_run_at = frequency.interval().map(|every| now + every);
    if next_run_at.is_some() {
        store::set_next_run_at(&mut tx, company, p.as_str(), next_run_at, now).await?;
    }
    let mut msg = format!(
        "run now: {}; {released} batched operation(s) released",
        match &no_pull {
            None => "pull queued",
            Some(why) => why.as_str(),
        }
    );
    if let Some(next) = next_run_at {
        msg.push_str(&format!(
            "; next run at {}",
            next.strftime("%Y-%m-%dT%H:%M:%SZ")
        ));
    }
    log_action(&mut tx, company, p, "outbound", "run now", &msg, now).await?;
    tx.commit().await?;
    Ok(RunStarted {
        pull_job_id,
        no_pull,
        released,
        next_run_at,
    })
}

/// Disconnects: the stored credentials are deleted; mappings and settings stay.
pub async fn disconnect(app: &App, company: CompanyId, p: Provider) -> Result<IntegrationView> {
    let i = ensure(app, company, p).await?;
    let mut tx = app.store().begin().await?;
    store::set_credentials(&mut tx, company, p.as_str(), None, app.now()).await?;
    tx.commit().await?;
    let i = Integration {
        credentials_sealed: None,
        connected_at: None,
        ..i
    };
    view(app, p, i).await
}

// ---- settings ----

/// The toggles to change (LR7); `None` leaves one as it is.
#[derive(Debug, Clone, Default)]
pub struct TogglesChange {
    pub enable_integration: Option<bool>,
    pub receive: Option<bool>,
    pub send: Option<bool>,
    pub send_mapped_fields: Option<bool>,
    pub send_messages: Option<bool>,
    pub send_call_records: Option<bool>,
    pub send_documents: Option<bool>,
    pub sync_statuses: Option<bool>,
    pub sync_enriched_phones: Option<bool>,
    /// The sync direction (SYNC1), which caps the toggles.
    pub direction: Option<Direction>,
    /// What wins when both sides changed a field (SYNC1, SYNC2).
    pub conflict_resolution: Option<ConflictRule>,
    /// How often the integration runs (SYNC1).
    pub frequency: Option<Frequency>,
}

const MAP_STATUSES_FIRST: &str =
    "map statuses before turning on status sync (CRM Mappings → Status Mapping)";

/// Changes the toggles. Turning the integration on needs a connection; turning status sync on
/// needs at least one status mapping (the safe order), and held status changes are resolved
/// through [`set_status_sync`] instead. The row is read locked and written in one transaction,
/// so concurrent changes of different toggles do not undo each other.
///
/// A new frequency starts its schedule now: hourly or daily, the next run is an interval from
/// now; operations waiting for a later run are brought forward to it (daily → hourly), those
/// waiting for an earlier one keep it (hourly → daily), and operations already due are not
/// delayed. Back to real time, every waiting operation is released at once.
pub async fn change_settings(
    app: &App,
    company: CompanyId,
    p: Provider,
    change: &TogglesChange,
) -> Result<IntegrationView> {
    ensure(app, company, p).await?;
    let mut tx = app.store().begin().await?;
    let i = store::get_for_update(&mut tx, company, p.as_str())
        .await?
        .ok_or_else(vanished)?;
    let mut t = Toggles::from_settings(&i.settings);
    let before = t;
    let set = |slot: &mut bool, v: Option<bool>| {
        if let Some(v) = v {
            *slot = v;
        }
    };
    set(&mut t.enable_integration, change.enable_integration);
    set(&mut t.receive, change.receive);
    set(&mut t.send, change.send);
    set(&mut t.send_mapped_fields, change.send_mapped_fields);
    set(&mut t.send_messages, change.send_messages);
    set(&mut t.send_call_records, change.send_call_records);
    set(&mut t.send_documents, change.send_documents);
    set(&mut t.sync_statuses, change.sync_statuses);
    set(&mut t.sync_enriched_phones, change.sync_enriched_phones);
    if let Some(d) = change.direction {
        t.direction = d;
    }
    if let Some(r) = change.conflict_resolution {
        t.conflict_resolution = r;
    }
    if let Some(f) = change.frequency {
        t.frequency = f;
    }
    // Status changes start going out again (status sync on; for SmartAdvocate also "Send
    // mapping"): the held ones wait for the admin's choice.
    let holder = app.connectors().get(p).filter(|c| c.holds_status_changes());
    if let Some(c) = holder.filter(|c| !c.sends_status(&before) && c.sends_status(&t)) {
        if c.held_status_changes(&mut tx, company).await? > 0 {
            return Err(AppError::Conflict(format!(
                "status changes were held while status sync was off: turn it on with \
                 PUT /integrations/{}/status-sync and choose `non_retroactive` or \
                 `retroactive` (then save any other setting again)",
                p.as_str()
            )));
        }
    }
    if t.enable_integration && i.credentials_sealed.is_none() {
        return Err(AppError::Conflict(format!(
            "connect {} before enabling the integration",
            p.label()
        )));
    }
    if t.sync_statuses
        && change.sync_statuses == Some(true)
        && store::status_mappings(&mut tx, company, p.as_str())
            .await?
            .is_empty()
    {
        return Err(AppError::Conflict(MAP_STATUSES_FIRST.into()));
    }
    store::set_settings(
        &mut tx,
        company,
        p.as_str(),
        &serde_json::to_value(t).expect("json"),
        app.now(),
    )
    .await?;
    if t.frequency != before.frequency {
        frequency_changed(app, &mut tx, company, p, t.frequency).await?;
    }
    commit_and_view(app, tx, company, p).await
}

/// A new frequency, in the transaction that stores it: the schedule starts now, and waiting
/// operations are brought forward to the new next run (released, in real time).
async fn frequency_changed(
    app: &App,
    tx: &mut casebridge_store::Tx,
    company: CompanyId,
    p: Provider,
    f: Frequency,
) -> Result<()> {
    let now = app.now();
    let next = f.interval().map(|every| now + every);
    store::set_next_run_at(tx, company, p.as_str(), next, now).await?;
    let moved = match app.connectors().get(p) {
        Some(c) => {
            c.release_batched(tx, company, next.unwrap_or(now), now)
                .await?
        }
        None => 0,
    };
    let msg = match next {
        None => format!("frequency set to real time; {moved} batched operation(s) released"),
        Some(at) => format!(
            "frequency set to {}; next run at {}; {moved} batched operation(s) moved to it",
            f.as_str(),
            at.strftime("%Y-%m-%dT%H:%M:%SZ")
        ),
    };
    log_action(tx, company, p, "outbound", "frequency", &msg, now).await?;
    Ok(())
}

// ---- status sync (LR11) ----

/// Status sync's state, and what turning it on just did with the held changes.
#[derive(Debug, Clone, Default)]
pub struct StatusSync {
    pub enabled: bool,
    pub held: u64,
    pub replayed: Option<u64>,
    pub skipped: Option<u64>,
    /// Set when held changes were replayed: they may overwrite newer CRM statuses.
    pub warning: Option<String>,
}

/// Whether status sync is on and how many status changes are held.
pub async fn status_sync(app: &App, company: CompanyId, p: Provider) -> Result<StatusSync> {
    let c = status_sync_connector(app, p)?;
    let i = ensure(app, company, p).await?;
    let mut conn = app.store().conn().await?;
    Ok(StatusSync {
        enabled: Toggles::from_settings(&i.settings).sync_statuses,
        held: c.held_status_changes(&mut conn, company).await?,
        ..StatusSync::default()
    })
}

/// Turns status sync off (status changes are then held) or on. Turning it on while changes are
/// held requires a `mode`: non-retroactive skips them, retroactive replays them in order.
pub async fn set_status_sync(
    app: &App,
    company: CompanyId,
    p: Provider,
    enabled: bool,
    mode: Option<ResumeMode>,
) -> Result<StatusSync> {
    let c = status_sync_connector(app, p)?;
    ensure(app, company, p).await?;
    let now = app.now();
    let mut tx = app.store().begin().await?;
    let i = store::get_for_update(&mut tx, company, p.as_str())
        .await?
        .ok_or_else(vanished)?;
    let mut t = Toggles::from_settings(&i.settings);
    let mut out = StatusSync {
        enabled,
        ..StatusSync::default()
    };
    if enabled
        && !t.sync_statuses
        && store::status_mappings(&mut tx, company, p.as_str())
            .await?
            .is_empty()
    {
        return Err(AppError::Conflict(MAP_STATUSES_FIRST.into()));
    }
    // Held changes are resolved whenever status sync is (or stays) on: a change recorded by a
    // request that raced the switch is held too, and must not stay stuck.
    if enabled {
        let held = c.held_status_changes(&mut tx, company).await?;
        if held > 0 {
            let mode = mode.ok_or_else(|| {
                ValidationError::single(
                    "mode",
                    format!(
                        "{held} status change(s) were made while status sync was off: choose \
                         `non_retroactive` (skip them; the default choice) or `retroactive` \
                         (send them in order; they may overwrite newer {} statuses)",
                        p.label()
                    ),
                )
            })?;
            let r = c.resume_status_sync(&mut tx, company, mode, now).await?;
            out.replayed = Some(r.replayed);
            out.skipped = Some(r.skipped);
            if mode == ResumeMode::Retroactive && r.replayed > 0 {
                out.warning = Some(format!(
                    "{} held status change(s) will be sent in the order they were made; they \
                     may overwrite statuses changed in {} since",
                    r.replayed,
                    p.label()
                ));
            }
        }
    }
    t.sync_statuses = enabled;
    store::set_settings(
        &mut tx,
        company,
        p.as_str(),
        &serde_json::to_value(t).expect("json"),
        now,
    )
    .await?;
    out.held = c.held_status_changes(&mut tx, company).await?;
    tx.commit().await?;
    Ok(out)
}

// ---- outbound operations (SYNC3) ----

/// Outbound operations, newest first, optionally in one state. `batched_until` is kept only on
/// a pending operation still waiting for that run (hourly or daily frequency).
pub async fn operations(
    app: &App,
    company: CompanyId,
    p: Provider,
    state: Option<OpState>,
    page: &PageRequest,
) -> Result<Page<CrmOp>> {
    let mut conn = app.store().conn().await?;
    let mut ops =
        casebridge_store::crm_ops::list(&mut conn, company, p.as_str(), state, page).await?;
    // `batched_until` is shown while the operation still waits for that run.
    let now = app.now();
    for op in &mut ops.items {
        if op.state != OpState::Pending || op.batched_until.is_none_or(|t| t <= now) {
            op.batched_until = None;
        }
    }
    Ok(ops)
}

/// A failed operation, ready to be acted on; another state is a conflict naming it.
async fn failed_op(conn: &mut Conn, company: CompanyId, p: Provider, id: &str) -> Result<CrmOp> {
    let op = casebridge_store::crm_ops::get(conn, company, id)
        .await
        .or_not_found("operation", id)?;
    if op.provider != p.as_str() {
        return Err(AppError::not_found("operation", id));
    }
    if op.state != OpState::Failed {
        return Err(AppError::Conflict(format!(
            "only a failed operation can be retried or dismissed; this one is {}",
            op.state.as_str()
        )));
    }
    Ok(op)
}

/// What an admin does with a failed operation (SYNC3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Settle {
    /// Send it again: it becomes pending, behind the lead's other operations.
    Retry,
    /// Give up: it becomes `skipped` and is not sent.
    Dismiss,
}

/// Retries or dismisses a failed operation; the sync log says an admin did. Another state is a
/// conflict naming it.
pub async fn settle_operation(
    app: &App,
    company: CompanyId,
    p: Provider,
    id: &str,
    action: Settle,
) -> Result<CrmOp> {
    let c = connector(app, p, || AppError::not_found("operation", id))?;
    let now = app.now();
    let mut tx = app.store().begin().await?;
    let op = failed_op(&mut tx, company, p, id).await?;
    let (moved, what) = match action {
        Settle::Retry => (
            c.retry_failed(&mut tx, company, id, now).await?,
            "retried by an admin",
        ),
        Settle::Dismiss => (
            casebridge_store::crm_ops::transition(
                &mut tx,
                company,
                id,
                OpState::Failed,
                OpState::Skipped,
                false,
                None,
                now,
            )
            .await?,
            "dismissed by an admin",
        ),
    };
    if !moved {
        return Err(AppError::Conflict("the operation changed meanwhile".into()));
    }
    operation_log(&mut tx, company, p, &op, what, now).await?;
    let op = casebridge_store::crm_ops::get(&mut tx, company, id).await?;
    tx.commit().await?;
    Ok(op)
}

async fn operation_log(
    conn: &mut Conn,
    company: CompanyId,
    p: Provider,
    op: &CrmOp,
    what: &str,
    now: Timestamp,
) -> Result<()> {
    let message = format!("operation {} ({}) {what}", op.id, op.action.describe());
    store::log(
        conn,
        company,
        p.as_str(),
        &NewSyncEntry {
            direction: "outbound",
            operation: "operation",
            record_ref: Some(&op.record_id),
            outcome: SyncOutcome::Ok,
            error_kind: None,
            message: Some(&message),
        },
        now,
    )
    .await?;
    Ok(())
}

// ---- catalog ----

/// What a catalog refresh loaded.
#[derive(Debug, Clone)]
pub struct CatalogLoaded {
    pub case_types: usize,
    pub statuses: usize,
    pub fields: usize,
    pub refreshed_at: Timestamp,
}

/// Loads the CRM's case types, statuses and custom fields again. Saved mappings are kept. If
/// the CRM cannot be reached or refuses, the error is kept on the integration (and returned),
/// and the previous catalog stays.
pub async fn refresh_catalog(app: &App, company: CompanyId, p: Provider) -> Result<CatalogLoaded> {
    let not_connected = || AppError::Conflict(format!("connect {} first", p.label()));
    let i = ensure(app, company, p).await?;
    let c = connector(app, p, not_connected)?;
    let loaded = c.load_catalog(&i).await;
    let now = app.now();
    let catalog = match loaded {
        Ok(catalog) => catalog,
        Err(CatalogError::NotConnected) => return Err(not_connected()),
        Err(CatalogError::Invalid(v)) => return Err(AppError::Validation(v)),
        Err(CatalogError::Internal(m)) => return Err(AppError::Internal(m)),
        Err(CatalogError::Load(e)) => {
            let message = format!("could not load fields from {}: {e}", p.label());
            let mut tx = app.store().begin().await?;
            store::set_catalog_error(&mut tx, company, p.as_str(), &message, now).await?;
            tx.commit().await?;
            return Err(AppError::BadGateway(message));
        }
    };
    let mut tx = app.store().begin().await?;
    store::replace_catalog(
        &mut tx,
        company,
        p.as_str(),
        &catalog.case_types,
        &catalog.statuses,
        &catalog.fields,
        now,
    )
    .await?;
    tx.commit().await?;
    Ok(CatalogLoaded {
        case_types: catalog.case_types.len(),
        statuses: catalog.statuses.len(),
        fields: catalog.fields.len(),
        refreshed_at: now,
    })
}

/// The CRM fields of one case type (field preview, LR8), from the last successful load.
#[derive(Debug, Clone)]
pub struct FieldPreview {
    pub fields: Vec<CrmField>,
    pub refreshed_at: Option<Timestamp>,
    /// The last load error, if the last load failed.
    pub error: Option<String>,
}

pub use casebridge_store::integrations::CrmField as Field;

/// The CRM fields of one case type. Never a silent empty list: an unknown case type is an
/// error, and says that loading failed if it did.
pub async fn field_preview(
    app: &App,
    company: CompanyId,
    p: Provider,
    crm_case_type_id: &str,
) -> Result<FieldPreview> {
    let i = ensure(app, company, p).await?;
    let mut conn = app.store().conn().await?;
    let types = store::crm_case_types(&mut conn, company, p.as_str()).await?;
    if !types.iter().any(|t| t.crm_id == crm_case_type_id) {
        if let Some(error) = i.catalog_error {
            return Err(AppError::BadGateway(error));
        }
        return Err(AppError::NotFound(format!(
            "no {} case type {} (refresh the fields if it was added recently)",
            p.label(),
            crm_case_type_id
        )));
    }
    let fields = store::crm_fields(&mut conn, company, p.as_str(), crm_case_type_id).await?;
    Ok(FieldPreview {
        fields,
        refreshed_at: i.catalog_refreshed_at,
        error: i.catalog_error,
    })
}

/// The CRM's case types and statuses with their ids, as last loaded (for mapping).
#[derive(Debug, Clone)]
pub struct Catalog {
    pub case_types: Vec<store::CrmItem>,
    pub statuses: Vec<CatalogStatus>,
    pub refreshed_at: Option<Timestamp>,
    /// The last load error; the lists are from the last successful load.
    pub error: Option<String>,
}

/// A status of the CRM's catalog and the slot it fills (its primary status, or a value of a
/// second-status type): a platform status maps to at most one CRM status per slot.
#[derive(Debug, Clone)]
pub struct CatalogStatus {
    pub crm_id: String,
    pub name: String,
    pub slot: StatusSlot,
}

/// The statuses of one slot: the primary statuses, or the values of one second-status type.
#[derive(Debug, Clone)]
pub struct StatusType {
    pub slot: StatusSlot,
    pub statuses: Vec<CatalogStatus>,
}

impl Catalog {
    /// The catalog's statuses by slot, in the order a status change writes them: the primary
    /// statuses first, then each second-status type by id (numeric ids in numeric order, as
    /// `crm_statuses_for` reads them). A CRM with one status list has one.
    pub fn status_types(&self) -> Vec<StatusType> {
        let mut out: Vec<StatusType> = Vec::new();
        for s in &self.statuses {
            match out.iter_mut().find(|t| t.slot.key() == s.slot.key()) {
                Some(t) => t.statuses.push(s.clone()),
                None => out.push(StatusType {
                    slot: s.slot.clone(),
                    statuses: vec![s.clone()],
                }),
            }
        }
        out.sort_by(|a, b| {
            let order = |t: &StatusType| (t.slot.key().len(), t.slot.key().to_owned());
            order(a).cmp(&order(b))
        });
        out
    }

    /// Whether the CRM has second statuses besides its primary status.
    pub fn has_second_statuses(&self) -> bool {
        self.statuses.iter().any(|s| !s.slot.is_primary())
    }
}

/// The slot a catalog status of `p` fills, as its connector says (the primary status for a
/// provider without one).
fn status_slot(app: &App, p: Provider, item: &store::CrmItem) -> StatusSlot {
    app.connectors()
        .get(p)
        .map_or(StatusSlot::Primary, |c| c.status_slot(item))
}

/// The catalog as last loaded by [`refresh_catalog`].
pub async fn catalog(app: &App, company: CompanyId, p: Provider) -> Result<Catalog> {
    let i = ensure(app, company, p).await?;
    let mut conn = app.store().conn().await?;
    let statuses = store::crm_statuses(&mut conn, company, p.as_str())
        .await?
        .into_iter()
        .map(|item| CatalogStatus {
            slot: status_slot(app, p, &item),
            crm_id: item.crm_id,
            name: item.name,
        })
        .collect();
    Ok(Catalog {
        case_types: store::crm_case_types(&mut conn, company, p.as_str()).await?,
        statuses,
        refreshed_at: i.catalog_refreshed_at,
        error: i.catalog_error,
    })
}

// ---- case type links ----

/// A CRM case type and the platform case type it is linked to.
#[derive(Debug, Clone)]
pub struct Link {
    pub crm_case_type_id: String,
    /// `None` for a link whose CRM case type is no longer in the catalog.
    pub crm_case_type_name: Option<String>,
    pub case_type_id: Option<CaseTypeId>,
}

impl Link {
    /// Mapped-field sync works for a case type only when it is linked (LR8).
    pub fn ready(&self) -> bool {
        self.case_type_id.is_some()
    }
}

/// Every CRM case type with the platform case type it is linked to.
pub async fn links(app: &App, company: CompanyId, p: Provider) -> Result<Vec<Link>> {
    let mut conn = app.store().conn().await?;
    links_in(&mut conn, company, p).await
}

async fn links_in(conn: &mut Conn, company: CompanyId, p: Provider) -> Result<Vec<Link>> {
    let types = store::crm_case_types(conn, company, p.as_str()).await?;
    let links: HashMap<String, CaseTypeId> = store::links(conn, company, p.as_str())
        .await?
        .into_iter()
        .collect();
    let mut out: Vec<Link> = types
        .iter()
        .map(|t| Link {
            crm_case_type_id: t.crm_id.clone(),
            crm_case_type_name: Some(t.name.clone()),
            case_type_id: links.get(&t.crm_id).copied(),
        })
        .collect();
    // Links whose CRM case type is no longer in the catalog are still shown.
    for (crm, ct) in &links {
        if !types.iter().any(|t| &t.crm_id == crm) {
            out.push(Link {
                crm_case_type_id: crm.clone(),
                crm_case_type_name: None,
                case_type_id: Some(*ct),
            });
        }
    }
    Ok(out)
}

/// One link to set: a CRM case type and the platform case type id as given (`None` unlinks).
#[derive(Debug, Clone)]
pub struct LinkChange {
    pub crm_case_type_id: String,
    pub case_type_id: Option<String>,
}

/// Links (or unlinks) CRM case types to platform case types. Every CRM case type must be in the
/// catalog and every case type must exist; otherwise nothing changes.
pub async fn set_links(
    app: &App,
    company: CompanyId,
    p: Provider,
    changes: &[LinkChange],
) -> Result<Vec<Link>> {
    let mut tx = app.store().begin().await?;
    let known = store::crm_case_types(&mut tx, company, p.as_str()).await?;
    let mut v = Validator::new();
    let mut parsed = Vec::new();
    for (i, l) in changes.iter().enumerate() {
        if !known.iter().any(|k| k.crm_id == l.crm_case_type_id) {
            v.push(
                format!("links[{i}].crm_case_type_id"),
                format!(
                    "no {} case type {}; refresh the fields first",
                    p.label(),
                    l.crm_case_type_id
                ),
            );
            continue;
        }
        let ct = match &l.case_type_id {
            None => None,
            Some(raw) => match raw.parse::<CaseTypeId>() {
                Ok(id) if named::exists(&mut tx, company, NamedKind::CaseType, raw).await? => {
                    Some(id)
                }
                _ => {
                    v.push(
                        format!("links[{i}].case_type_id"),
                        format!("no case type with id {raw}"),
                    );
                    continue;
                }
            },
        };
        parsed.push((l.crm_case_type_id.clone(), ct));
    }
    v.finish()?;
    for (crm, ct) in parsed {
        store::set_link(&mut tx, company, p.as_str(), &crm, ct).await?;
    }
    let out = links_in(&mut tx, company, p).await?;
    tx.commit().await?;
    Ok(out)
}

// ---- field mappings ----

/// A platform field, the CRM field key it maps to and its sync rule, as given (`None`: two-way).
#[derive(Debug, Clone)]
pub struct FieldMapping {
    pub platform_field: String,
    pub crm_field_key: String,
    pub rule: Option<String>,
}

/// The field mappings of one CRM case type.
pub async fn field_mappings(
    app: &App,
    company: CompanyId,
    p: Provider,
    crm_case_type_id: &str,
) -> Result<Vec<FieldMapping>> {
    let mut conn = app.store().conn().await?;
    let rows = store::field_mappings(&mut conn, company, p.as_str(), crm_case_type_id).await?;
    Ok(rows
        .into_iter()
        .map(|m| FieldMapping {
            platform_field: m.platform_field,
            crm_field_key: m.crm_field_key,
            rule: Some(m.rule),
        })
        .collect())
}

/// Replaces the field mappings of one CRM case type. Every CRM field must exist in the loaded
/// catalog for that case type, a platform field may be mapped once, and a rule must be one of
/// `FieldRule`'s (two-way when omitted).
pub async fn set_field_mappings(
    app: &App,
    company: CompanyId,
    p: Provider,
    crm_case_type_id: &str,
    mappings: &[FieldMapping],
) -> Result<()> {
    let mut tx = app.store().begin().await?;
    let fields = store::crm_fields(&mut tx, company, p.as_str(), crm_case_type_id).await?;
    let mut v = Validator::new();
    let mut rows = Vec::new();
    for (i, m) in mappings.iter().enumerate() {
        match PlatformField::parse(&m.platform_field) {
            Ok(f) => {
                if rows
                    .iter()
                    .any(|r: &store::StoredFieldMapping| r.platform_field == f.as_string())
                {
                    v.push(format!("mappings[{i}].platform_field"), "mapped twice");
                }
                let rule = match m.rule.as_deref().map(|r| FieldRule::parse("rule", r)) {
                    None => FieldRule::default(),
                    Some(Ok(r)) => r,
                    Some(Err(e)) => {
                        v.push(format!("mappings[{i}].rule"), e.errors[0].message.clone());
                        FieldRule::default()
                    }
                };
                if fields.iter().any(|cf| cf.key == m.crm_field_key) {
                    rows.push(store::StoredFieldMapping {
                        platform_field: f.as_string(),
                        crm_field_key: m.crm_field_key.clone(),
                        rule: rule.as_str().to_owned(),
                    });
                } else {
                    v.push(
                        format!("mappings[{i}].crm_field_key"),
                        format!(
                            "no field `{}` on {} case type {}",
                            m.crm_field_key,
                            p.label(),
                            crm_case_type_id
                        ),
                    );
                }
            }
            Err(e) => v.push(
                format!("mappings[{i}].platform_field"),
                e.errors[0].message.clone(),
            ),
        }
    }
    v.finish()?;
    store::replace_field_mappings(&mut tx, company, p.as_str(), crm_case_type_id, &rows).await?;
    tx.commit().await?;
    Ok(())
}

// ---- status mappings ----

/// A platform status (id as given) and a CRM status it corresponds to.
#[derive(Debug, Clone)]
pub struct StatusMapping {
    pub case_status_id: String,
    pub crm_status_id: String,
}

/// How platform statuses and CRM statuses correspond: every mapping, by CRM status id (a
/// platform status with a primary status and second statuses appears once per CRM status).
pub async fn status_mappings(
    app: &App,
    company: CompanyId,
    p: Provider,
) -> Result<Vec<StatusMapping>> {
    let mut conn = app.store().conn().await?;
    let rows = store::status_mappings(&mut conn, company, p.as_str()).await?;
    Ok(rows
        .into_iter()
        .map(|m| StatusMapping {
            case_status_id: m.case_status_id.to_string(),
            crm_status_id: m.crm_status_id,
        })
        .collect())
}

/// Replaces the status mappings, whole or not at all. Both statuses must exist (the CRM's in
/// the loaded catalog). A platform status maps to at most one CRM status per slot
/// ([`Connector::status_slot`]): one primary status, and for a CRM with second statuses at most
/// one value of each status type. Each CRM status maps from one platform status. An entry that
/// breaks a rule is named (`mappings[i]`) with the earlier entry it clashes with.
pub async fn set_status_mappings(
    app: &App,
    company: CompanyId,
    p: Provider,
    mappings: &[StatusMapping],
) -> Result<()> {
    let mut tx = app.store().begin().await?;
    let crm = store::crm_statuses(&mut tx, company, p.as_str()).await?;
    let second_statuses = crm.iter().any(|c| !status_slot(app, p, c).is_primary());
    let label = p.label();
    let mut v = Validator::new();
    let mut set = StatusMappingSet::default();
    let mut rows: Vec<StoredStatusMapping> = Vec::new();
    for (i, m) in mappings.iter().enumerate() {
        let found = match m.case_status_id.parse::<CaseStatusId>() {
            Ok(id) => {
                match named::get(&mut tx, company, NamedKind::CaseStatus, &m.case_status_id).await {
                    Ok(n) => Some((id, n.name)),
                    Err(StoreError::NotFound) => None,
                    Err(e) => return Err(e.into()),
                }
            }
            Err(_) => None,
        };
        let Some((status, name)) = found else {
            v.push(
                format!("mappings[{i}].case_status_id"),
                format!("no case status with id {}", m.case_status_id),
            );
            continue;
        };
        let Some(item) = crm.iter().find(|c| c.crm_id == m.crm_status_id) else {
            v.push(
                format!("mappings[{i}].crm_status_id"),
                format!(
                    "no {} status {}; refresh the fields first",
                    p.label(),
                    m.crm_status_id
                ),
            );
            continue;
        };
        let slot = status_slot(app, p, item);
        let message = match set.add(i, &m.case_status_id, &m.crm_status_id, &slot) {
            Ok(()) => {
                rows.push(StoredStatusMapping {
                    case_status_id: status,
                    crm_status_id: m.crm_status_id.clone(),
                    status_type: slot.key().to_owned(),
                });
                continue;
            }
            Err(StatusMappingClash::CrmStatusTaken { first }) => format!(
                "{label} status \"{}\" is already mapped by mappings[{first}]; each {label} \
                 status maps from one platform status",
                item.name
            ),
            Err(StatusMappingClash::TwoPrimaries { first }) if second_statuses => format!(
                "platform status \"{name}\" already has a primary {label} status in \
                 mappings[{first}]; a platform status maps to one primary status and at most one \
                 value of each status type"
            ),
            Err(StatusMappingClash::TwoPrimaries { first }) => format!(
                "platform status \"{name}\" is already mapped by mappings[{first}]; a platform \
                 status maps to one {label} status"
            ),
            Err(StatusMappingClash::TwoValuesOfType { first }) => {
                let type_name = match &slot {
                    StatusSlot::Second { type_name, .. } => type_name.as_str(),
                    StatusSlot::Primary => "",
                };
                format!(
                    "platform status \"{name}\" already has a value of {type_name} in \
                     mappings[{first}]; a platform status maps to at most one value of each \
                     status type"
                )
            }
        };
        v.push(format!("mappings[{i}]"), message);
    }
    v.finish()?;
    store::replace_status_mappings(&mut tx, company, p.as_str(), &rows).await?;
    tx.commit().await?;
    Ok(())
}

// ---- sync log ----

/// What was synced, skipped or failed, newest first (SYNC3); `outcome` filters by `ok`,
/// `skipped` or `error`.
pub async fn sync_log(
    app: &App,
    company: CompanyId,
    p: Provider,
    outcome: Option<&str>,
    page: &PageRequest,
) -> Result<Page<SyncEntry>> {
    if let Some(o) = outcome {
        if !["ok", "skipped", "error"].contains(&o) {
            return Err(ValidationError::single("outcome", "must be ok, skipped or error").into());
        }
    }
    let mut conn = app.store().conn().await?;
    Ok(store::sync_log(&mut conn, company, p.as_str(), outcome, page).await?)
}

// ---- sync monitoring (SYNC3) ----

/// Sync-log lines of one direction by outcome.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct OutcomeCounts {
    pub ok: u64,
    pub skipped: u64,
    pub error: u64,
}

/// Sync-log lines by direction and outcome over one period. They count lines (one per webhook
/// received, operation sent or skipped, admin action), not records created or updated.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LogCounts {
    pub inbound: OutcomeCounts,
    pub outbound: OutcomeCounts,
}

/// One kind of problem of an integration, with every sync-log line of that kind (Merge-style
/// Issues): failed lines, and skipped ones whose reason has a kind (an ignored webhook).
#[derive(Debug, Clone)]
pub struct Issue {
    pub direction: String,
    /// `configuration`, `transient`, `validation`; `None` for lines logged without a kind,
    /// which are grouped by operation instead.
    pub error_kind: Option<String>,
    pub count: u64,
    pub first_seen: Timestamp,
    pub last_seen: Timestamp,
    /// The newest line of the kind: its operation, record and message.
    pub example: SyncEntry,
    /// Resolved when the newest sync-log line of the example's operation (same direction) is
    /// a success logged after it; open otherwise.
    pub resolved: bool,
    /// What to do about it.
    pub hint: String,
}

/// Records synced over one period, by what syncing them did (SYNC3): each counted once, in the
/// transaction that applied, sent or refused it — measured, not read off log lines.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RecordCounts {
    /// From the CRM: created, updated, unchanged (the same content again), skipped (ignored by
    /// the settings), failed (refused, with its reason in the sync log).
    pub created: u64,
    pub updated: u64,
    pub unchanged: u64,
    pub skipped: u64,
    pub failed: u64,
    /// To the CRM: operations sent, skipped (a toggle, a superseded change, a non-retroactive
    /// resume) and failed (refused by the CRM).
    pub sent: u64,
    pub sent_skipped: u64,
    pub sent_failed: u64,
}

/// The measured state of an integration's sync: sync-log lines and records over the last hour,
/// the last day and since connecting, and the problems grouped by kind.
#[derive(Debug, Clone)]
pub struct Monitoring {
    pub now: Timestamp,
    pub last_hour: LogCounts,
    pub last_day: LogCounts,
    /// `None` when not connected.
    pub since_connect: Option<LogCounts>,
    pub records_last_hour: RecordCounts,
    pub records_last_day: RecordCounts,
    /// `None` when not connected.
    pub records_since_connect: Option<RecordCounts>,
    /// Operations waiting to be sent (pending, held, blocked) now.
    pub pending: u64,
    pub last_sync_at: Option<Timestamp>,
    pub issues: Vec<Issue>,
}

async fn record_counts(
    conn: &mut Conn,
    company: CompanyId,
    p: Provider,
    since: Option<Timestamp>,
) -> Result<RecordCounts> {
    let mut c = RecordCounts::default();
    for (direction, outcome, n) in
        casebridge_store::sync_state::record_counts(conn, company, p.as_str(), since).await?
    {
        let slot = match (direction.as_str(), outcome) {
            ("inbound", RecordOutcome::Created) => &mut c.created,
            ("inbound", RecordOutcome::Updated) => &mut c.updated,
            ("inbound", RecordOutcome::Unchanged) => &mut c.unchanged,
            ("inbound", RecordOutcome::Skipped) => &mut c.skipped,
            ("inbound", RecordOutcome::Failed) => &mut c.failed,
            ("outbound", RecordOutcome::Sent) => &mut c.sent,
            ("outbound", RecordOutcome::Skipped) => &mut c.sent_skipped,
            ("outbound", RecordOutcome::Failed) => &mut c.sent_failed,
            _ => continue,
        };
        *slot += n;
    }
    Ok(c)
}

async fn log_counts(
    conn: &mut Conn,
    company: CompanyId,
    p: Provider,
    since: Option<Timestamp>,
) -> Result<LogCounts> {
    let mut out = LogCounts::default();
    for (direction, outcome, n) in store::sync_log_counts(conn, company, p.as_str(), since).await? {
        let d = match direction.as_str() {
            "inbound" => &mut out.inbound,
            _ => &mut out.outbound,
        };
        match outcome.as_str() {
            "ok" => d.ok += n,
            "skipped" => d.skipped += n,
            _ => d.error += n,
        }
    }
    Ok(out)
}

/// What to do about a kind of problem, in an admin's words.
fn issue_hint(p: Provider, direction: &str, kind: Option<&str>) -> String {
    let label = p.label();
    match (kind, direction) {
        (Some("configuration"), "inbound") => format!(
            "A setting stops it, not the data: read the message, then fix the {label} \
             connection or the sync settings (a webhook is ignored while Enable Integration or \
             Receive data from the CRM is off). It will not pass by waiting."
        ),
        (Some("configuration"), _) => format!(
            "A setting stops it, not the data: reconnect {label} with the right values (or fix \
             what the message names). Operations waiting for it are sent again, in order, \
             once the connection is saved. It will not pass by waiting."
        ),
        (Some("transient"), _) => format!(
            "Usually passes on its own: {label} was slow, busy or down, and casebridge retries \
             until it goes through. If it keeps appearing, check that {label} is reachable."
        ),
        (Some("validation"), "inbound") => format!(
            "The record {label} sent is unusable (a field missing or malformed; the message \
             names it). Add or correct the field in {label}'s webhook setup; the next webhook \
             for the record is applied."
        ),
        (Some("validation"), _) => format!(
            "{label} refused the values sent. Correct the record or the mapping the message \
             names, then Retry the failed operation below, or Dismiss it."
        ),
        _ => "No kind was recorded for these lines: read the message.".to_owned(),
    }
}

/// The measured state of an integration's sync (see [`Monitoring`]).
pub async fn monitoring(app: &App, company: CompanyId, p: Provider) -> Result<Monitoring> {
    let i = ensure(app, company, p).await?;
    let now = app.now();
    let mut conn = app.store().conn().await?;
    let hour = jiff::SignedDuration::from_hours(1);
    let day = jiff::SignedDuration::from_hours(24);
    let last_hour = log_counts(&mut conn, company, p, Some(now - hour)).await?;
    let last_day = log_counts(&mut conn, company, p, Some(now - day)).await?;
    let connected_at = match (i.credentials_sealed.is_some(), i.connected_at) {
        (true, Some(at)) => Some(at),
        _ => None,
    };
    let since_connect = match connected_at {
        Some(at) => Some(log_counts(&mut conn, company, p, Some(at)).await?),
        None => None,
    };
    let records_last_hour = record_counts(&mut conn, company, p, Some(now - hour)).await?;
    let records_last_day = record_counts(&mut conn, company, p, Some(now - day)).await?;
    let records_since_connect = match connected_at {
        Some(at) => Some(record_counts(&mut conn, company, p, Some(at)).await?),
        None => None,
    };
    let waiting: u64 = casebridge_store::crm_ops::counts(&mut conn, company, p.as_str())
        .await?
        .into_iter()
        .filter(|(st, _)| matches!(st, OpState::Pending | OpState::Held | OpState::Blocked))
        .map(|(_, n)| n)
        .sum();
    let issues = store::sync_problems(&mut conn, company, p.as_str())
        .await?
        .into_iter()
        .map(|g| Issue {
            hint: issue_hint(p, &g.direction, g.error_kind.as_deref()),
            resolved: g.latest_of_operation.outcome == "ok"
                && g.latest_of_operation.id > g.newest.id,
            direction: g.direction,
            error_kind: g.error_kind,
            count: g.count,
            first_seen: g.first_seen,
            last_seen: g.last_seen,
            example: g.newest,
        })
        .collect();
    Ok(Monitoring {
        now,
        last_hour,
        last_day,
        since_connect,
        records_last_hour,
        records_last_day,
        records_since_connect,
        pending: waiting,
        last_sync_at: i
            .last_integration_sync_at
            .max(i.last_webhook_at)
            .max(i.last_pull_at),
        issues,
    })
}

// ---- list auto-add rules ----

/// A list's auto-add rules: CRM records whose case type and/or status match are put on the list.
pub async fn rules(app: &App, company: CompanyId, list_id: &str) -> Result<Vec<StoredRule>> {
    let list: ListId = list_id
        .parse()
        .map_err(|_| AppError::not_found("list", list_id))?;
    let mut conn = app.store().conn().await?;
    named::get(&mut conn, company, NamedKind::List, list_id)
        .await
        .or_not_found("list", list_id)?;
    Ok(store::rules(&mut conn, company, Some(list), None).await?)
}

/// An auto-add rule as given: the CRM (default Law Ruler, the first CRM casebridge served), and
/// the CRM case type and/or status (id or name).
#[derive(Debug, Clone, Copy, Default)]
pub struct NewRule<'a> {
    pub provider: Option<&'a str>,
    pub case_type: Option<&'a str>,
    pub status: Option<&'a str>,
}

/// Adds an auto-add rule to a list.
pub async fn add_rule(
    app: &App,
    company: CompanyId,
    list_id: &str,
    new: &NewRule<'_>,
) -> Result<StoredRule> {
    let list: ListId = list_id
        .parse()
        .map_err(|_| AppError::not_found("list", list_id))?;
    let p = match new.provider {
        None => Provider::LawRuler,
        Some(raw) => Provider::parse(raw).ok_or_else(|| {
            ValidationError::single("provider", "must be lawruler or smartadvocate")
        })?,
    };
    let rule = AutoAddRule::parse(new.case_type, new.status)?;
    let mut tx = app.store().begin().await?;
    named::get(&mut tx, company, NamedKind::List, list_id)
        .await
        .or_not_found("list", list_id)?;
    let stored = store::add_rule(&mut tx, company, list, p.as_str(), &rule, app.now()).await?;
    tx.commit().await?;
    Ok(stored)
}

/// Removes an auto-add rule.
pub async fn delete_rule(
    app: &App,
    company: CompanyId,
    list_id: &str,
    rule_id: &str,
) -> Result<()> {
    let list: ListId = list_id
        .parse()
        .map_err(|_| AppError::not_found("list", list_id))?;
    let mut tx = app.store().begin().await?;
    store::delete_rule(&mut tx, company, list, rule_id)
        .await
        .or_not_found("auto-add rule", rule_id)?;
    tx.commit().await?;
    Ok(())
}
