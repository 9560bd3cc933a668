//! Calls (with transcript and analysis), transfers, messages and tasks: the platform activity
//! that produces events.
//!
//! Changes of state read the row first, locked (`FOR UPDATE` on PostgreSQL; on SQLite the write
//! transaction already holds the database's write lock), apply the rule from
//! `casebridge_domain::activity`, and write the result. Two requests racing to end the same call
//! or append to the same transcript therefore run one after the other: no lost turns, no
//! second `call_ended`. A refused change is a [`StoreError::Conflict`] naming the current state.
//!
//! Writes take `&mut Tx` (each is several statements); reads take `&mut Conn`.

use casebridge_domain::activity::{
    check_end_time, check_transcript_len, Call, CallAnalysis, CallEnd, CallStatus, Channel,
    Direction, Message, MessageStatus, NewAnalysis, NewCall, NewMessage, NewTask, Task, TaskAction,
    TaskKind, TaskStatus, Transfer, TransferAction, TransferStatus, Turn,
};
use casebridge_domain::error::Validator;
use casebridge_domain::events::Event;
use casebridge_domain::ids::{
    CallId, CampaignId, CaseId, CompanyId, EventId, JobId, MessageId, TaskId, TransferId,
};
use casebridge_domain::jobs::Job;
use casebridge_domain::records::NamedKind;
use jiff::Timestamp;
use serde_json::{Map, Value};
use sqlx::FromRow;

use crate::{
    cases, events, for_update, jobs, named, parse_id, parse_opt_id, ts, Conn, Result, StoreError,
    Tx,
};

fn corrupt(column: &str, raw: &str) -> StoreError {
    StoreError::Corrupt(format!("{column} holds `{raw}`"))
}

fn json_text<T: serde::Serialize>(value: &T) -> Result<String> {
    serde_json::to_string(value).map_err(|e| StoreError::Corrupt(format!("cannot encode: {e}")))
}

/// Checks that the case and campaign an activity points at exist in the company, naming each one
/// that does not. (The composite foreign keys enforce the same rule as a last line of defence.)
async fn check_references(
    conn: &mut Conn,
    company: CompanyId,
    case_id: Option<CaseId>,
    campaign_id: Option<CampaignId>,
) -> Result<()> {
    let mut v = Validator::new();
    if let Some(id) = case_id {
        if !cases::exists(conn, company, id).await? {
            v.push("case_id", format!("no case with id {id}"));
        }
    }
    if let Some(id) = campaign_id {
        if !named::exists(conn, company, NamedKind::Campaign, &id.to_string()).await? {
            v.push("campaign_id", format!("no campaign with id {id}"));
        }
    }
    Ok(v.finish()?)
}

// ---------------------------------------------------------------------------------------------
// Calls
// ---------------------------------------------------------------------------------------------

const CALL_COLUMNS: &str = "id, case_id, campaign_id, direction, from_number, to_number, status,
    started_at, ended_at, end_reason, transcript, summary, post_call_result, analysis_custom,
    analyzed_at, created_at, updated_at";

#[derive(FromRow)]
struct CallRow {
    id: String,
    case_id: Option<String>,
    campaign_id: Option<String>,
    direction: String,
    from_number: Option<String>,
    to_number: Option<String>,
    status: String,
    started_at: i64,
    ended_at: Option<i64>,
    end_reason: Option<String>,
    transcript: String,
    summary: Option<String>,
    post_call_result: Option<String>,
    analysis_custom: Option<String>,
    analyzed_at: Option<i64>,
    created_at: i64,
    updated_at: i64,
}

impl CallRow {
    fn into_model(self) -> Result<Call> {
        let analysis = match self.analyzed_at {
            Some(at) => Some(CallAnalysis {
                summary: self.summary.unwrap_or_default(),
                post_call_result: self.post_call_result.unwrap_or_default(),
                custom: match self.analysis_custom.as_deref() {
                    Some(raw) => serde_json::from_str(raw)
                        .map_err(|e| StoreError::Corrupt(format!("calls.analysis_custom: {e}")))?,
                    None => Map::new(),
                },
                analyzed_at: ts(at)?,
            }),
            None => None,
        };
        Ok(Call {
            id: parse_id("calls.id", &self.id)?,
            case_id: parse_opt_id("calls.case_id", self.case_id.as_deref())?,
            campaign_id: parse_opt_id("calls.campaign_id", self.campaign_id.as_deref())?,
            direction: Direction::parse(&self.direction)
                .ok_or_else(|| corrupt("calls.direction", &self.direction))?,
            from_number: self.from_number,
            to_number: self.to_number,
            status: CallStatus::parse(&self.status)
                .ok_or_else(|| corrupt("calls.status", &self.status))?,
            started_at: ts(self.started_at)?,
            ended_at: self.ended_at.map(ts).transpose()?,
            end_reason: self.end_reason,
            transcript: serde_json::from_str(&self.transcript)
                .map_err(|e| StoreError::Corrupt(format!("calls.transcript: {e}")))?,
            analysis,
            created_at: ts(self.created_at)?,
            updated_at: ts(self.updated_at)?,
        })
    }
}

/// Records a call in progress. The case and campaign must exist in the company (422 otherwise).
pub async fn create_call(
    tx: &mut Tx,
    company: CompanyId,
    new: &NewCall,
    now: Timestamp,
) -> Result<Call> {
    check_references(tx, company, new.case_id, new.campaign_id).await?;
    let id = CallId::new();
    let row: CallRow = sqlx::query_as(&format!(
        "INSERT INTO calls (id, company_id, case_id, campaign_id, direction, from_number,
                            to_number, status, started_at, transcript, created_at, updated_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, '[]', $10, $10)
         RETURNING {CALL_COLUMNS}"
    ))
    .bind(id.to_string())
    .bind(company.to_string())
    .bind(new.case_id.map(|i| i.to_string()))
    .bind(new.campaign_id.map(|i| i.to_string()))
    .bind(new.direction.as_str())
    .bind(new.from_number.clone())
    .bind(new.to_number.clone())
    .bind(CallStatus::InProgress.as_str())
    .bind(new.started_at.unwrap_or(now).as_millisecond())
    .bind(now.as_millisecond())
    .fetch_one(&mut **tx)
    .await?;
    row.into_model()
}

pub async fn get_call(conn: &mut Conn, company: CompanyId, id: CallId) -> Result<Call> {
    fetch_call(conn, company, id, false).await
}

/// The call, its row locked until the transaction ends (on PostgreSQL), so a change that depends
/// on the call's current state (a recording that must follow its analysis) cannot interleave
/// with another change of the call.
pub async fn get_call_for_update(conn: &mut Tx, company: CompanyId, id: CallId) -> Result<Call> {
    fetch_call(conn, company, id, true).await
}

async fn fetch_call(conn: &mut Conn, company: CompanyId, id: CallId, lock: bool) -> Result<Call> {
    let lock = if lock { for_update(conn) } else { "" };
    let row: CallRow = sqlx::query_as(&format!(
        "SELECT {CALL_COLUMNS} FROM calls WHERE company_id = $1 AND id = $2{lock}"
    ))
    .bind(company.to_string())
    .bind(id.to_string())
    .fetch_one(&mut *conn)
    .await?;
    row.into_model()
}

/// Appends turns to a call's transcript. Allowed after the call ended too: transcripts may
/// arrive late.
pub async fn append_transcript(
    tx: &mut Tx,
    company: CompanyId,
    id: CallId,
    turns: &[Turn],
    now: Timestamp,
) -> Result<Call> {
    let mut call = fetch_call(tx, company, id, true).await?;
    check_transcript_len(call.transcript.len(), turns.len())?;
    call.transcript.extend_from_slice(turns);
    let row: CallRow = sqlx::query_as(&format!(
        "UPDATE calls SET transcript = $3, updated_at = $4 WHERE company_id = $1 AND id = $2
         RETURNING {CALL_COLUMNS}"
    ))
    .bind(company.to_string())
    .bind(id.to_string())
    .bind(json_text(&call.transcript)?)
    .bind(now.as_millisecond())
    .fetch_one(&mut **tx)
    .await?;
    row.into_model()
}

/// Ends a call in progress (409 if it already ended).
pub async fn end_call(
    tx: &mut Tx,
    company: CompanyId,
    id: CallId,
    end: &CallEnd,
    now: Timestamp,
) -> Result<Call> {
    let call = fetch_call(tx, company, id, true).await?;
    let status = call.status.end().map_err(StoreError::Conflict)?;
    let ended_at = end.ended_at.unwrap_or(now);
    check_end_time(call.started_at, ended_at)?;
    let row: CallRow = sqlx::query_as(&format!(
        "UPDATE calls SET status = $3, ended_at = $4, end_reason = $5, updated_at = $6
         WHERE company_id = $1 AND id = $2
         RETURNING {CALL_COLUMNS}"
    ))
    .bind(company.to_string())
    .bind(id.to_string())
    .bind(status.as_str())
    .bind(ended_at.as_millisecond())
    .bind(end.end_reason.clone())
    .bind(now.as_millisecond())
    .fetch_one(&mut **tx)
    .await?;
    row.into_model()
}

/// Stores a call's post-call analysis. A later analysis (a re-run) replaces the earlier one.
pub async fn analyze_call(
    tx: &mut Tx,
    company: CompanyId,
    id: CallId,
    analysis: &NewAnalysis,
    now: Timestamp,
) -> Result<Call> {
    let row: Option<CallRow> = sqlx::query_as(&format!(
        "UPDATE calls SET summary = $3, post_call_result = $4, analysis_custom = $5,
                          analyzed_at = $6, updated_at = $6
         WHERE company_id = $1 AND id = $2
         RETURNING {CALL_COLUMNS}"
    ))
    .bind(company.to_string())
    .bind(id.to_string())
    .bind(analysis.summary.as_str())
    .bind(analysis.post_call_result.as_str())
    .bind(json_text(&analysis.custom)?)
    .bind(now.as_millisecond())
    .fetch_optional(&mut **tx)
    .await?;
    row.ok_or(StoreError::NotFound)?.into_model()
}

/// How many of the case's outbound calls have been analysed: its completed dialer calls, the
/// attempts a CRM's dialer is told of.
pub async fn completed_outbound_calls(
    conn: &mut Conn,
    company: CompanyId,
    case: CaseId,
) -> Result<u32> {
    let n: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM calls
         WHERE company_id = $1 AND case_id = $2 AND direction = $3 AND analyzed_at IS NOT NULL",
    )
    .bind(company.to_string())
    .bind(case.to_string())
    .bind(Direction::Outbound.as_str())
    .fetch_one(&mut *conn)
    .await?;
    Ok(u32::try_from(n).unwrap_or(u32::MAX))
}

// ---------------------------------------------------------------------------------------------
// Transfers
// ---------------------------------------------------------------------------------------------

/// A transfer with its call's case and campaign.
const TRANSFER_SELECT: &str = "SELECT t.id, t.call_id, c.case_id, c.campaign_id, t.to_number,
        t.status, t.created_at, t.updated_at
    FROM transfers t JOIN calls c ON c.company_id = t.company_id AND c.id = t.call_id";

#[derive(FromRow)]
struct TransferRow {
    id: String,
    call_id: String,
    case_id: Option<String>,
    campaign_id: Option<String>,
    to_number: String,
    status: String,
    created_at: i64,
    updated_at: i64,
}

impl TransferRow {
    fn into_model(self) -> Result<Transfer> {
        Ok(Transfer {
            id: parse_id("transfers.id", &self.id)?,
            call_id: parse_id("transfers.call_id", &self.call_id)?,
            case_id: parse_opt_id("calls.case_id", self.case_id.as_deref())?,
            campaign_id: parse_opt_id("calls.campaign_id", self.campaign_id.as_deref())?,
            to_number: self.to_number,
            status: TransferStatus::parse(&self.status)
                .ok_or_else(|| corrupt("transfers.status", &self.status))?,
            created_at: ts(self.created_at)?,
            updated_at: ts(self.updated_at)?,
        })
    }
}

/// Starts a transfer of a call in progress. `NotFound` means the call; 409 if it has ended.
pub async fn create_transfer(
    tx: &mut Tx,
    company: CompanyId,
    call_id: CallId,
    to_number: &str,
    now: Timestamp,
) -> Result<Transfer> {
    let call = fetch_call(tx, company, call_id, true).await?;
    call.status.check_transfer().map_err(StoreError::Conflict)?;
    let id = TransferId::new();
    sqlx::query(
        "INSERT INTO transfers (id, company_id, call_id, to_number, status, created_at, updated_at)
         VALUES ($1, $2, $3, $4, $5, $6, $6)",
    )
    .bind(id.to_string())
    .bind(company.to_string())
    .bind(call_id.to_string())
    .bind(to_number)
    .bind(TransferStatus::Started.as_str())
    .bind(now.as_millisecond())
    .execute(&mut **tx)
    .await?;
    get_transfer(tx, company, id).await
}

pub async fn get_transfer(conn: &mut Conn, company: CompanyId, id: TransferId) -> Result<Transfer> {
    fetch_transfer(conn, company, id, false).await
}

async fn fetch_transfer(
    conn: &mut Conn,
    company: CompanyId,
    id: TransferId,
    lock: bool,
) -> Result<Transfer> {
    let lock = if lock { for_update(conn) } else { "" };
    let row: TransferRow = sqlx::query_as(&format!(
        "{TRANSFER_SELECT} WHERE t.company_id = $1 AND t.id = $2{lock}"
    ))
    .bind(company.to_string())
    .bind(id.to_string())
    .fetch_one(&mut *conn)
    .await?;
    row.into_model()
}

/// Moves a transfer on (bridged, cancelled, ended) if its state allows; 409 otherwise.
pub async fn transition_transfer(
    tx: &mut Tx,
    company: CompanyId,
    id: TransferId,
    action: TransferAction,
    now: Timestamp,
) -> Result<Transfer> {
    let transfer = fetch_transfer(tx, company, id, true).await?;
    let status = transfer.status.next(action).map_err(StoreError::Conflict)?;
    sqlx::query(
        "UPDATE transfers SET status = $3, updated_at = $4 WHERE company_id = $1 AND id = $2",
    )
    .bind(company.to_string())
    .bind(id.to_string())
    .bind(status.as_str())
    .bind(now.as_millisecond())
    .execute(&mut **tx)
    .await?;
    get_transfer(tx, company, id).await
}

// ---------------------------------------------------------------------------------------------
// Messages
// ---------------------------------------------------------------------------------------------

const MESSAGE_COLUMNS: &str = "id, case_id, campaign_id, channel, direction, from_address,
    to_address, body, status, sent_at, delivered_at, created_at, updated_at";

#[derive(FromRow)]
struct MessageRow {
    id: String,
    case_id: Option<String>,
    campaign_id: Option<String>,
    channel: String,
    direction: String,
    from_address: Option<String>,
    to_address: String,
    body: String,
    status: String,
    sent_at: i64,
    delivered_at: Option<i64>,
    created_at: i64,
    updated_at: i64,
}

impl MessageRow {
    fn into_model(self) -> Result<Message> {
        Ok(Message {
            id: parse_id("messages.id", &self.id)?,
            case_id: parse_opt_id("messages.case_id", self.case_id.as_deref())?,
            campaign_id: parse_opt_id("messages.campaign_id", self.campaign_id.as_deref())?,
            channel: Channel::parse(&self.channel)
                .ok_or_else(|| corrupt("messages.channel", &self.channel))?,
            direction: Direction::parse(&self.direction)
                .ok_or_else(|| corrupt("messages.direction", &self.direction))?,
            from: self.from_address,
            to: self.to_address,
            body: self.body,
            status: MessageStatus::parse(&self.status)
                .ok_or_else(|| corrupt("messages.status", &self.status))?,
            sent_at: ts(self.sent_at)?,
            delivered_at: self.delivered_at.map(ts).transpose()?,
            created_at: ts(self.created_at)?,
            updated_at: ts(self.updated_at)?,
        })
    }
}

/// Records a sent (or received) message. The case and campaign must exist in the company.
pub async fn create_message(
    tx: &mut Tx,
    company: CompanyId,
    new: &NewMessage,
    now: Timestamp,
) -> Result<Message> {
    check_references(tx, company, new.case_id, new.campaign_id).await?;
    let id = MessageId::new();
    let row: MessageRow = sqlx::query_as(&format!(
        "INSERT INTO messages (id, company_id, case_id, campaign_id, channel, direction,
                               from_address, to_address, body, status, sent_at, created_at,
                               updated_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $11, $11)
         RETURNING {MESSAGE_COLUMNS}"
    ))
    .bind(id.to_string())
    .bind(company.to_string())
    .bind(new.case_id.map(|i| i.to_string()))
    .bind(new.campaign_id.map(|i| i.to_string()))
    .bind(new.channel.as_str())
    .bind(new.direction.as_str())
    .bind(new.from.clone())
    .bind(new.to.as_str())
    .bind(new.body.as_str())
    .bind(MessageStatus::Sent.as_str())
    .bind(now.as_millisecond())
    .fetch_one(&mut **tx)
    .await?;
    row.into_model()
}

pub async fn get_message(conn: &mut Conn, company: CompanyId, id: MessageId) -> Result<Message> {
    fetch_message(conn, company, id, false).await
}

async fn fetch_message(
    conn: &mut Conn,
    company: CompanyId,
    id: MessageId,
    lock: bool,
) -> Result<Message> {
    let lock = if lock { for_update(conn) } else { "" };
    let row: MessageRow = sqlx::query_as(&format!(
        "SELECT {MESSAGE_COLUMNS} FROM messages WHERE company_id = $1 AND id = $2{lock}"
    ))
    .bind(company.to_string())
    .bind(id.to_string())
    .fetch_one(&mut *conn)
    .await?;
    row.into_model()
}

/// Marks an outbound message delivered, once; 409 otherwise.
pub async fn deliver_message(
    tx: &mut Tx,
    company: CompanyId,
    id: MessageId,
    now: Timestamp,
) -> Result<Message> {
    let message = fetch_message(tx, company, id, true).await?;
    let status = message
        .status
        .deliver(message.direction)
        .map_err(StoreError::Conflict)?;
    let row: MessageRow = sqlx::query_as(&format!(
        "UPDATE messages SET status = $3, delivered_at = $4, updated_at = $4
         WHERE company_id = $1 AND id = $2
         RETURNING {MESSAGE_COLUMNS}"
    ))
    .bind(company.to_string())
    .bind(id.to_string())
    .bind(status.as_str())
    .bind(now.as_millisecond())
    .fetch_one(&mut **tx)
    .await?;
    row.into_model()
}

// ---------------------------------------------------------------------------------------------
// Tasks and forms
// ---------------------------------------------------------------------------------------------

const TASK_COLUMNS: &str =
    "id, case_id, kind, title, status, form_answers, completed_at, created_at, updated_at";

#[derive(FromRow)]
struct TaskRow {
    id: String,
    case_id: Option<String>,
    kind: String,
    title: String,
    status: String,
    form_answers: Option<String>,
    completed_at: Option<i64>,
    created_at: i64,
    updated_at: i64,
}

impl TaskRow {
    fn into_model(self) -> Result<Task> {
        Ok(Task {
            id: parse_id("tasks.id", &self.id)?,
            case_id: parse_opt_id("tasks.case_id", self.case_id.as_deref())?,
            kind: TaskKind::parse(&self.kind).ok_or_else(|| corrupt("tasks.kind", &self.kind))?,
            title: self.title,
            status: TaskStatus::parse(&self.status)
                .ok_or_else(|| corrupt("tasks.status", &self.status))?,
            answers: self
                .form_answers
                .as_deref()
                .map(serde_json::from_str)
                .transpose()
                .map_err(|e| StoreError::Corrupt(format!("tasks.form_answers: {e}")))?,
            completed_at: self.completed_at.map(ts).transpose()?,
            created_at: ts(self.created_at)?,
            updated_at: ts(self.updated_at)?,
        })
    }
}

/// Creates an open task or form. The case must exist in the company.
pub async fn create_task(
    tx: &mut Tx,
    company: CompanyId,
    new: &NewTask,
    now: Timestamp,
) -> Result<Task> {
    check_references(tx, company, new.case_id, None).await?;
    let id = TaskId::new();
    let row: TaskRow = sqlx::query_as(&format!(
        "INSERT INTO tasks (id, company_id, case_id, kind, title, status, created_at, updated_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $7)
         RETURNING {TASK_COLUMNS}"
    ))
    .bind(id.to_string())
    .bind(company.to_string())
    .bind(new.case_id.map(|i| i.to_string()))
    .bind(new.kind.as_str())
    .bind(new.title.as_str())
    .bind(TaskStatus::Open.as_str())
    .bind(now.as_millisecond())
    .fetch_one(&mut **tx)
    .await?;
    row.into_model()
}

pub async fn get_task(conn: &mut Conn, company: CompanyId, id: TaskId) -> Result<Task> {
    fetch_task(conn, company, id, false).await
}

async fn fetch_task(conn: &mut Conn, company: CompanyId, id: TaskId, lock: bool) -> Result<Task> {
    let lock = if lock { for_update(conn) } else { "" };
    let row: TaskRow = sqlx::query_as(&format!(
        "SELECT {TASK_COLUMNS} FROM tasks WHERE company_id = $1 AND id = $2{lock}"
    ))
    .bind(company.to_string())
    .bind(id.to_string())
    .fetch_one(&mut *conn)
    .await?;
    row.into_model()
}

/// Completes an open task (`answers` is `None`) or submits an open form with its answers, as
/// [`TaskStatus::next`] allows; 409 otherwise.
pub async fn finish_task(
    tx: &mut Tx,
    company: CompanyId,
    id: TaskId,
    action: TaskAction,
    answers: Option<&Map<String, Value>>,
    now: Timestamp,
) -> Result<Task> {
    let task = fetch_task(tx, company, id, true).await?;
    let status = task
        .status
        .next(task.kind, action)
        .map_err(StoreError::Conflict)?;
    let answers = answers.map(json_text).transpose()?;
    let row: TaskRow = sqlx::query_as(&format!(
        "UPDATE tasks SET status = $3, form_answers = COALESCE($4, form_answers),
                          completed_at = $5, updated_at = $5
         WHERE company_id = $1 AND id = $2
         RETURNING {TASK_COLUMNS}"
    ))
    .bind(company.to_string())
    .bind(id.to_string())
    .bind(status.as_str())
    .bind(answers)
    .bind(now.as_millisecond())
    .fetch_one(&mut **tx)
    .await?;
    row.into_model()
}

// ---------------------------------------------------------------------------------------------
// What the activity produced
// ---------------------------------------------------------------------------------------------

/// The company's most recent events, newest first.
pub async fn recent_events(conn: &mut Conn, company: CompanyId, limit: u32) -> Result<Vec<Event>> {
    let ids: Vec<String> =
        sqlx::query_scalar("SELECT id FROM events WHERE company_id = $1 ORDER BY id DESC LIMIT $2")
            .bind(company.to_string())
            .bind(i64::from(limit))
            .fetch_all(&mut *conn)
            .await?;
    let mut out = Vec::with_capacity(ids.len());
    for id in ids {
        let id: EventId = parse_id("events.id", &id)?;
        out.push(events::get(conn, company, id).await?);
    }
    Ok(out)
}

/// The company's pending jobs of one kind (e.g. `webhook.dispatch`), oldest first.
pub async fn pending_jobs(conn: &mut Conn, company: CompanyId, kind: &str) -> Result<Vec<Job>> {
    let ids: Vec<String> = sqlx::query_scalar(
        "SELECT id FROM jobs WHERE company_id = $1 AND kind = $2
                AND status IN ('pending', 'waiting', 'scheduled', 'blocked')
         ORDER BY id",
    )
    .bind(company.to_string())
    .bind(kind)
    .fetch_all(&mut *conn)
    .await?;
    let mut out = Vec::with_capacity(ids.len());
    for id in ids {
        let id: JobId = parse_id("jobs.id", &id)?;
        out.push(jobs::get(conn, id).await?);
    }
    Ok(out)
}
