//! Calls, transfers, messages and tasks: the platform activity that webhooks report (SPEC W3).
//!
//! Every change writes its new state and its event (with the event's deliveries and their
//! `webhook.deliver` jobs) in one transaction, so a consumer hears about exactly the changes that were committed (P4).
//!
//! An event's `data` shows the changed record the way the caller answers with it. So each change
//! that records an event takes `data`: it builds the event's `data` from the stored record, and
//! the service returns what it built. The JSON API passes the builder of its response type and
//! answers with that same value, so an event's `data` and the response cannot drift, and the
//! response types (with their schemas) stay with the API.

use casebridge_crm::PlatformChange;
use casebridge_domain::activity::{
    self as rules, Call, CallEnd, Message, NewAnalysis, NewCall, NewMessage, NewTask, Task,
    TaskAction, Transfer, TransferAction, Turn, TurnInput,
};
use casebridge_domain::events::{EventType, NewEvent};
use casebridge_domain::ids::{
    CallId, CampaignId, CaseId, CompanyId, MessageId, TaskId, TransferId,
};
use casebridge_store::{activity, Tx, UnitFuture};
use casebridge_webhooks::outbox;
use jiff::Timestamp;
use serde::Serialize;
use serde_json::{Map, Value};

use crate::fanout::platform_change;
use crate::{App, AppError, OrNotFound, Result};

/// Records the event about a change in the change's transaction; returns `data`. `campaign` and
/// `case` drive the webhook filters (the case's type is looked up when the event is recorded).
async fn with_event<D: Serialize>(
    tx: &mut Tx,
    company: CompanyId,
    event_type: EventType,
    data: D,
    (campaign_id, case_id): (Option<CampaignId>, Option<CaseId>),
    now: Timestamp,
) -> Result<D> {
    let value = serde_json::to_value(&data)
        .map_err(|e| AppError::Internal(format!("{} data: {e}", event_type.as_str())))?;
    let event = NewEvent {
        event_type,
        data: value,
        campaign_id,
        case_id,
    };
    outbox::record_event(tx, company, &event, now).await?;
    Ok(data)
}

/// Runs one change as a unit of a group commit (`Store::group_commit`): concurrent requests'
/// changes share one commit, each in its own savepoint, so a change that fails (not found, a
/// conflict) rolls back alone and the others commit. Answered after the commit that holds it.
async fn change<T, F>(app: &App, work: F) -> Result<T>
where
    F: for<'a> FnOnce(&'a mut Tx) -> UnitFuture<'a, Result<T>> + Send + 'static,
    T: Send + 'static,
{
    app.store().group_commit(work).await
}

// ---------------------------------------------------------------------------------------------
// Calls
// ---------------------------------------------------------------------------------------------

/// Records a call in progress → `call_started`.
pub async fn start_call<D: Serialize + Send + 'static>(
    app: &App,
    company: CompanyId,
    new: &NewCall,
    data: impl FnOnce(Call) -> D + Send + 'static,
) -> Result<D> {
    let now = app.now();
    let new = new.clone();
    change(app, move |tx| {
        Box::pin(async move {
            let call = activity::create_call(tx, company, &new, now).await?;
            let about = (call.campaign_id, call.case_id);
            with_event(tx, company, EventType::CallStarted, data(call), about, now).await
        })
    })
    .await
}

pub async fn get_call(app: &App, company: CompanyId, id: CallId) -> Result<Call> {
    let mut conn = app.store().conn().await?;
    activity::get_call(&mut conn, company, id)
        .await
        .or_not_found("call", &id.to_string())
}

/// Appends turns to the transcript → `transcript_updated`; `data` gets the call (with its whole
/// transcript) and the turns just added. Also accepted after the call ended: transcripts may
/// arrive late. A turn without a time was said now.
pub async fn append_transcript<D: Serialize + Send + 'static>(
    app: &App,
    company: CompanyId,
    id: CallId,
    turns: &[TurnInput<'_>],
    data: impl FnOnce(Call, Vec<Turn>) -> D + Send + 'static,
) -> Result<D> {
    let now = app.now();
    let turns = rules::parse_turns(turns, now)?;
    change(app, move |tx| {
        Box::pin(async move {
            let call = activity::append_transcript(tx, company, id, &turns, now)
                .await
                .or_not_found("call", &id.to_string())?;
            let about = (call.campaign_id, call.case_id);
            let data = data(call, turns);
            with_event(tx, company, EventType::TranscriptUpdated, data, about, now).await
        })
    })
    .await
}

/// Ends the call → `call_ended`. A conflict if it already ended.
pub async fn end_call<D: Serialize + Send + 'static>(
    app: &App,
    company: CompanyId,
    id: CallId,
    end: &CallEnd,
    data: impl FnOnce(Call) -> D + Send + 'static,
) -> Result<D> {
    let now = app.now();
    let end = end.clone();
    change(app, move |tx| {
        Box::pin(async move {
            let call = activity::end_call(tx, company, id, &end, now)
                .await
                .or_not_found("call", &id.to_string())?;
            let about = (call.campaign_id, call.case_id);
            with_event(tx, company, EventType::CallEnded, data(call), about, now).await
        })
    })
    .await
}

/// Stores the post-call analysis → `call_analyzed`. A later analysis replaces the earlier one.
/// The CRMs hear of it too (the call result, notes and recording: LR10).
pub async fn analyze_call<D: Serialize + Send + 'static>(
    app: &App,
    company: CompanyId,
    id: CallId,
    analysis: &NewAnalysis,
    data: impl FnOnce(Call) -> D + Send + 'static,
) -> Result<D> {
    let now = app.now();
    let (analysis, app2) = (analysis.clone(), app.clone());
    change(app, move |tx| {
        Box::pin(async move {
            // Locked, so a recording uploaded at the same moment either sees this analysis or
            // is seen.
            let before = activity::get_call_for_update(tx, company, id)
                .await
                .or_not_found("call", &id.to_string())?;
            let call = activity::analyze_call(tx, company, id, &analysis, now)
                .await
                .or_not_found("call", &id.to_string())?;
            let revised = before.analysis.is_some();
            let change = PlatformChange::CallAnalyzed {
                call: &call,
                revised,
            };
            platform_change(&app2, tx, company, change, now).await?;
            let about = (call.campaign_id, call.case_id);
            with_event(tx, company, EventType::CallAnalyzed, data(call), about, now).await
        })
    })
    .await
}

// ---------------------------------------------------------------------------------------------
// Transfers
// ---------------------------------------------------------------------------------------------

/// Starts a live transfer of a call in progress → `transfer_started`. A conflict if the call
/// ended.
pub async fn start_transfer<D: Serialize + Send + 'static>(
    app: &App,
    company: CompanyId,
    call_id: CallId,
    to_number: &str,
    data: impl FnOnce(Transfer) -> D + Send + 'static,
) -> Result<D> {
    let now = app.now();
    let to_number = to_number.to_owned();
    change(app, move |tx| {
        Box::pin(async move {
            let transfer = activity::create_transfer(tx, company, call_id, &to_number, now)
                .await
                .or_not_found("call", &call_id.to_string())?;
            let about = (transfer.campaign_id, transfer.case_id);
            let data = data(transfer);
            with_event(tx, company, EventType::TransferStarted, data, about, now).await
        })
    })
    .await
}

pub async fn get_transfer(app: &App, company: CompanyId, id: TransferId) -> Result<Transfer> {
    let mut conn = app.store().conn().await?;
    activity::get_transfer(&mut conn, company, id)
        .await
        .or_not_found("transfer", &id.to_string())
}

/// A transfer report (bridged, cancelled, ended) through the state rule →
/// `transfer_bridged` / `transfer_cancelled` / `transfer_ended`. A conflict if the transfer's
/// state does not allow it.
pub async fn move_transfer<D: Serialize + Send + 'static>(
    app: &App,
    company: CompanyId,
    id: TransferId,
    action: TransferAction,
    data: impl FnOnce(Transfer) -> D + Send + 'static,
) -> Result<D> {
    let event_type = match action {
        TransferAction::Bridge => EventType::TransferBridged,
        TransferAction::Cancel => EventType::TransferCancelled,
        TransferAction::End => EventType::TransferEnded,
    };
    let now = app.now();
    change(app, move |tx| {
        Box::pin(async move {
            let transfer = activity::transition_transfer(tx, company, id, action, now)
                .await
                .or_not_found("transfer", &id.to_string())?;
            let about = (transfer.campaign_id, transfer.case_id);
            with_event(tx, company, event_type, data(transfer), about, now).await
        })
    })
    .await
}

// ---------------------------------------------------------------------------------------------
// Messages
// ---------------------------------------------------------------------------------------------

/// Records an SMS or email → `message_sent`; the CRMs hear of it too.
pub async fn send_message<D: Serialize + Send + 'static>(
    app: &App,
    company: CompanyId,
    new: &NewMessage,
    data: impl FnOnce(Message) -> D + Send + 'static,
) -> Result<D> {
    let now = app.now();
    let (new, app2) = (new.clone(), app.clone());
    change(app, move |tx| {
        Box::pin(async move {
            let message = activity::create_message(tx, company, &new, now).await?;
            let change = PlatformChange::Message(&message);
            platform_change(&app2, tx, company, change, now).await?;
            let about = (message.campaign_id, message.case_id);
            let data = data(message);
            with_event(tx, company, EventType::MessageSent, data, about, now).await
        })
    })
    .await
}

pub async fn get_message(app: &App, company: CompanyId, id: MessageId) -> Result<Message> {
    let mut conn = app.store().conn().await?;
    activity::get_message(&mut conn, company, id)
        .await
        .or_not_found("message", &id.to_string())
}

/// The provider confirmed delivery of an outbound message → `message_delivered`. A conflict if
/// it was already delivered or is inbound.
pub async fn deliver_message<D: Serialize + Send + 'static>(
    app: &App,
    company: CompanyId,
    id: MessageId,
    data: impl FnOnce(Message) -> D + Send + 'static,
) -> Result<D> {
    let now = app.now();
    change(app, move |tx| {
        Box::pin(async move {
            let message = activity::deliver_message(tx, company, id, now)
                .await
                .or_not_found("message", &id.to_string())?;
            let about = (message.campaign_id, message.case_id);
            let data = data(message);
            with_event(tx, company, EventType::MessageDelivered, data, about, now).await
        })
    })
    .await
}

// ---------------------------------------------------------------------------------------------
// Tasks and forms
// ---------------------------------------------------------------------------------------------

/// Creates an open task or form. No event: `task_completed` / `form_submitted` follow later.
pub async fn create_task(app: &App, company: CompanyId, new: &NewTask) -> Result<Task> {
    let (new, now) = (new.clone(), app.now());
    change(app, move |tx| {
        Box::pin(async move { Ok(activity::create_task(tx, company, &new, now).await?) })
    })
    .await
}

pub async fn get_task(app: &App, company: CompanyId, id: TaskId) -> Result<Task> {
    let mut conn = app.store().conn().await?;
    activity::get_task(&mut conn, company, id)
        .await
        .or_not_found("task", &id.to_string())
}

/// Completes an open task (`answers` is `None`) → `task_completed`, or submits an open form with
/// its answers → `form_submitted`, through the state rule. A conflict for the wrong kind or a
/// task already done.
pub async fn finish_task<D: Serialize + Send + 'static>(
    app: &App,
    company: CompanyId,
    id: TaskId,
    action: TaskAction,
    answers: Option<&Map<String, Value>>,
    data: impl FnOnce(Task) -> D + Send + 'static,
) -> Result<D> {
    let event_type = match action {
        TaskAction::Complete => EventType::TaskCompleted,
        TaskAction::Submit => EventType::FormSubmitted,
    };
    let now = app.now();
    let answers = answers.cloned();
    change(app, move |tx| {
        Box::pin(async move {
            let task = activity::finish_task(tx, company, id, action, answers.as_ref(), now)
                .await
                .or_not_found("task", &id.to_string())?;
            let about = (None, task.case_id);
            with_event(tx, company, event_type, data(task), about, now).await
        })
    })
    .await
}
