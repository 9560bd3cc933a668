//! Calls, transfers, messages and tasks: the platform activity that webhooks report (SPEC W3).
//!
//! The handlers parse each request into domain types and call one use case of
//! `casebridge_app::activity`, which writes the change and its event in one transaction (P4).
//! An event's `data` is built from the same response types the API returns (each use case takes
//! their builder and returns what it built), so the two cannot drift; [`event_examples`]
//! documents each event's `data` with a JSON schema and an example.

use std::collections::HashMap;

use axum::extract::State;
use axum::http::StatusCode;
use casebridge_app::activity;
use casebridge_domain::activity::{
    self as rules, Call, CallAnalysis, CallEnd, CallInput, CallStatus, Channel, Direction, Message,
    MessageInput, MessageStatus, NewAnalysis, NewCall, NewMessage, NewTask, Speaker, Task,
    TaskAction, TaskInput, TaskKind, TaskStatus, Transfer, TransferAction, TransferStatus, Turn,
    TurnInput,
};
use casebridge_domain::events::EventType;
use casebridge_domain::ids::{CallId, CompanyId, MessageId, TaskId, TransferId};
use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};
use utoipa::openapi::schema::{
    AdditionalProperties, Object, ObjectBuilder, OneOfBuilder, Schema, Type,
};
use utoipa::openapi::RefOr;
use utoipa::{PartialSchema, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::error::{ApiError, ErrorBody};
use crate::extract::{path_id, Auth, Json, Path};
use crate::AppState;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(start_call))
        .routes(routes!(get_call))
        .routes(routes!(append_transcript))
        .routes(routes!(end_call))
        .routes(routes!(analyze_call))
        .routes(routes!(start_transfer))
        .routes(routes!(get_transfer))
        .routes(routes!(transfer_bridged))
        .routes(routes!(transfer_cancelled))
        .routes(routes!(transfer_ended))
        .routes(routes!(send_message))
        .routes(routes!(get_message))
        .routes(routes!(message_delivered))
        .routes(routes!(create_task))
        .routes(routes!(get_task))
        .routes(routes!(complete_task))
        .routes(routes!(submit_form))
}

// ---------------------------------------------------------------------------------------------
// Schemas of the closed value sets, generated from the domain's own lists
// ---------------------------------------------------------------------------------------------

fn string_enum<'a>(values: impl IntoIterator<Item = &'a str>, description: &str) -> Object {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .enum_values(Some(values))
        .description(Some(description))
        .build()
}

fn direction_schema() -> Object {
    string_enum(
        Direction::ALL.iter().map(|v| v.as_str()),
        "Seen from the firm: `outbound` when the firm's agent called or wrote.",
    )
}
fn call_status_schema() -> Object {
    string_enum(
        CallStatus::ALL.iter().map(|v| v.as_str()),
        "`in_progress` until the call is ended.",
    )
}
fn speaker_schema() -> Object {
    string_enum(
        Speaker::ALL.iter().map(|v| v.as_str()),
        "Who said it: the firm's (AI) agent or the client.",
    )
}
fn transfer_status_schema() -> Object {
    string_enum(
        TransferStatus::ALL.iter().map(|v| v.as_str()),
        "`started` → `bridged` → `ended`, or `started` → `cancelled`.",
    )
}
fn channel_schema() -> Object {
    string_enum(
        Channel::ALL.iter().map(|v| v.as_str()),
        "How the message went.",
    )
}
fn message_status_schema() -> Object {
    string_enum(
        MessageStatus::ALL.iter().map(|v| v.as_str()),
        "`sent` until the provider confirms delivery.",
    )
}
fn task_kind_schema() -> Object {
    string_enum(
        TaskKind::ALL.iter().map(|v| v.as_str()),
        "A `task` is completed; a `form` is submitted with answers.",
    )
}
fn task_status_schema() -> Object {
    string_enum(
        TaskStatus::ALL.iter().map(|v| v.as_str()),
        "`open`, then `completed` (task) or `submitted` (form).",
    )
}

/// An object whose values are strings, numbers, booleans or null (the `_custom` values).
fn flat_object_schema() -> Object {
    let scalar = OneOfBuilder::new()
        .item(ObjectBuilder::new().schema_type(Type::String))
        .item(ObjectBuilder::new().schema_type(Type::Number))
        .item(ObjectBuilder::new().schema_type(Type::Boolean))
        .item(ObjectBuilder::new().schema_type(Type::Null))
        .build();
    ObjectBuilder::new()
        .schema_type(Type::Object)
        .additional_properties(Some(AdditionalProperties::RefOr(RefOr::T(Schema::OneOf(
            scalar,
        )))))
        .description(Some(
            "Firm-defined values by key, e.g. CRM custom field ids; each a string, number, \
             boolean or null.",
        ))
        .build()
}

use crate::dto::time;

// ---------------------------------------------------------------------------------------------
// Response bodies (also the `data` of events)
// ---------------------------------------------------------------------------------------------

/// One line of a call transcript.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct TurnOut {
    #[schema(schema_with = speaker_schema)]
    pub speaker: Speaker,
    #[schema(example = "Hello, this is Kayse calling about your accident claim.")]
    pub text: String,
    /// When it was said (RFC 3339).
    pub at: String,
}

impl From<Turn> for TurnOut {
    fn from(t: Turn) -> Self {
        Self {
            speaker: t.speaker,
            text: t.text,
            at: time(t.at),
        }
    }
}

/// The post-call analysis.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct CallAnalysisOut {
    pub summary: String,
    /// The outcome, e.g. "Qualified – Intake Completed".
    pub post_call_result: String,
    #[schema(schema_with = flat_object_schema)]
    pub custom: Map<String, Value>,
    pub analyzed_at: String,
}

impl From<CallAnalysis> for CallAnalysisOut {
    fn from(a: CallAnalysis) -> Self {
        Self {
            summary: a.summary,
            post_call_result: a.post_call_result,
            custom: a.custom,
            analyzed_at: time(a.analyzed_at),
        }
    }
}

/// A call, with its transcript so far and its analysis once there is one.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct CallOut {
    pub id: String,
    pub case_id: Option<String>,
    pub campaign_id: Option<String>,
    #[schema(schema_with = direction_schema)]
    pub direction: Direction,
    pub from_number: Option<String>,
    pub to_number: Option<String>,
    #[schema(schema_with = call_status_schema)]
    pub status: CallStatus,
    pub started_at: String,
    pub ended_at: Option<String>,
    /// Why the call ended, as reported (e.g. `hangup`, `voicemail`).
    pub end_reason: Option<String>,
    pub transcript: Vec<TurnOut>,
    pub analysis: Option<CallAnalysisOut>,
    pub created_at: String,
    pub updated_at: String,
}

impl From<Call> for CallOut {
    fn from(c: Call) -> Self {
        Self {
            id: c.id.to_string(),
            case_id: c.case_id.map(|i| i.to_string()),
            campaign_id: c.campaign_id.map(|i| i.to_string()),
            direction: c.direction,
            from_number: c.from_number,
            to_number: c.to_number,
            status: c.status,
            started_at: time(c.started_at),
            ended_at: c.ended_at.map(time),
            end_reason: c.end_reason,
            transcript: c.transcript.into_iter().map(Into::into).collect(),
            analysis: c.analysis.map(Into::into),
            created_at: time(c.created_at),
            updated_at: time(c.updated_at),
        }
    }
}

/// A live transfer of a call, with the call's case and campaign.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct TransferOut {
    pub id: String,
    pub call_id: String,
    pub case_id: Option<String>,
    pub campaign_id: Option<String>,
    #[schema(example = "+1 555 010 3000")]
    pub to_number: String,
    #[schema(schema_with = transfer_status_schema)]
    pub status: TransferStatus,
    pub created_at: String,
    pub updated_at: String,
}

impl From<Transfer> for TransferOut {
    fn from(t: Transfer) -> Self {
        Self {
            id: t.id.to_string(),
            call_id: t.call_id.to_string(),
            case_id: t.case_id.map(|i| i.to_string()),
            campaign_id: t.campaign_id.map(|i| i.to_string()),
            to_number: t.to_number,
            status: t.status,
            created_at: time(t.created_at),
            updated_at: time(t.updated_at),
        }
    }
}

/// An SMS or email, sent or received.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct MessageOut {
    pub id: String,
    pub case_id: Option<String>,
    pub campaign_id: Option<String>,
    #[schema(schema_with = channel_schema)]
    pub channel: Channel,
    #[schema(schema_with = direction_schema)]
    pub direction: Direction,
    pub from: Option<String>,
    pub to: String,
    pub body: String,
    #[schema(schema_with = message_status_schema)]
    pub status: MessageStatus,
    pub sent_at: String,
    pub delivered_at: Option<String>,
    pub created_at: String,
    pub updated_at: String,
}

impl From<Message> for MessageOut {
    fn from(m: Message) -> Self {
        Self {
            id: m.id.to_string(),
            case_id: m.case_id.map(|i| i.to_string()),
            campaign_id: m.campaign_id.map(|i| i.to_string()),
            channel: m.channel,
            direction: m.direction,
            from: m.from,
            to: m.to,
            body: m.body,
            status: m.status,
            sent_at: time(m.sent_at),
            delivered_at: m.delivered_at.map(time),
            created_at: time(m.created_at),
            updated_at: time(m.updated_at),
        }
    }
}

/// A task or a form on a case.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct TaskOut {
    pub id: String,
    pub case_id: Option<String>,
    #[schema(schema_with = task_kind_schema)]
    pub kind: TaskKind,
    pub title: String,
    #[schema(schema_with = task_status_schema)]
    pub status: TaskStatus,
    /// A submitted form's answers.
    #[schema(value_type = Option<Object>)]
    pub answers: Option<Map<String, Value>>,
    /// When the task was completed or the form submitted.
    pub completed_at: Option<String>,
    pub created_at: String,
    pub updated_at: String,
}

impl From<Task> for TaskOut {
    fn from(t: Task) -> Self {
        Self {
            id: t.id.to_string(),
            case_id: t.case_id.map(|i| i.to_string()),
            kind: t.kind,
            title: t.title,
            status: t.status,
            answers: t.answers,
            completed_at: t.completed_at.map(time),
            created_at: time(t.created_at),
            updated_at: time(t.updated_at),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Event data
// ---------------------------------------------------------------------------------------------

/// `data` of `call_started` and `call_ended`.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct CallEventData {
    pub call: CallOut,
}

/// `data` of `transcript_updated`: the call (with its whole transcript), the turns just added,
/// and the transcript's length after them.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct TranscriptUpdatedData {
    pub call: CallOut,
    pub turns: Vec<TurnOut>,
    pub transcript_length: u64,
}

/// `data` of `call_analyzed`: the call, and the analysis at the top level, with the custom
/// values under `_custom`.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct CallAnalyzedData {
    pub call: CallOut,
    pub summary: String,
    pub post_call_result: String,
    #[serde(rename = "_custom")]
    #[schema(schema_with = flat_object_schema)]
    pub custom: Map<String, Value>,
}

/// `data` of `transfer_started`, `transfer_bridged`, `transfer_cancelled`, `transfer_ended`.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct TransferEventData {
    pub transfer: TransferOut,
    pub call_id: String,
}

/// `data` of `message_sent` and `message_delivered`.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct MessageEventData {
    pub message: MessageOut,
}

/// `data` of `task_completed` and `form_submitted`.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct TaskEventData {
    pub task: TaskOut,
}

impl From<Call> for CallEventData {
    fn from(call: Call) -> Self {
        Self { call: call.into() }
    }
}

impl TranscriptUpdatedData {
    fn new(call: Call, turns: Vec<Turn>) -> Self {
        let call = CallOut::from(call);
        Self {
            transcript_length: call.transcript.len() as u64,
            turns: turns.into_iter().map(Into::into).collect(),
            call,
        }
    }
}

impl From<Call> for CallAnalyzedData {
    fn from(call: Call) -> Self {
        let call = CallOut::from(call);
        let (summary, post_call_result, custom) = match &call.analysis {
            Some(a) => (
                a.summary.clone(),
                a.post_call_result.clone(),
                a.custom.clone(),
            ),
            None => Default::default(),
        };
        Self {
            call,
            summary,
            post_call_result,
            custom,
        }
    }
}

impl From<Transfer> for TransferEventData {
    fn from(transfer: Transfer) -> Self {
        let transfer = TransferOut::from(transfer);
        Self {
            call_id: transfer.call_id.clone(),
            transfer,
        }
    }
}

impl From<Message> for MessageEventData {
    fn from(message: Message) -> Self {
        Self {
            message: message.into(),
        }
    }
}

impl From<Task> for TaskEventData {
    fn from(task: Task) -> Self {
        Self { task: task.into() }
    }
}

// ---------------------------------------------------------------------------------------------
// Request bodies
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StartCall {
    /// The case the call is about; must exist in the company.
    pub case_id: Option<String>,
    /// The campaign the call belongs to; must exist in the company.
    pub campaign_id: Option<String>,
    #[schema(schema_with = direction_schema)]
    pub direction: String,
    #[schema(example = "+1 555 010 1000")]
    pub from_number: Option<String>,
    #[schema(example = "+1 555 010 2000")]
    pub to_number: Option<String>,
    /// RFC 3339; default: now.
    #[schema(example = "2025-05-01T14:30:00Z")]
    pub started_at: Option<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TurnBody {
    #[schema(schema_with = speaker_schema)]
    pub speaker: String,
    pub text: String,
    /// RFC 3339; default: now.
    pub at: Option<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AppendTranscript {
    /// 1-1000 turns, appended in order.
    pub turns: Vec<TurnBody>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EndCall {
    /// RFC 3339; default: now. Not before the call started.
    pub ended_at: Option<String>,
    #[schema(example = "hangup")]
    pub end_reason: Option<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AnalyzeCall {
    #[schema(example = "Caller was rear-ended on I-90 on April 28 and has neck pain.")]
    pub summary: String,
    #[schema(example = "Qualified – Intake Completed")]
    pub post_call_result: String,
    /// Sent to consumers as `_custom`.
    #[serde(default)]
    #[schema(schema_with = flat_object_schema)]
    pub custom: Option<Value>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StartTransfer {
    #[schema(example = "+1 555 010 3000")]
    pub to_number: String,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SendMessage {
    pub case_id: Option<String>,
    pub campaign_id: Option<String>,
    #[schema(schema_with = channel_schema)]
    pub channel: String,
    #[schema(schema_with = direction_schema)]
    pub direction: String,
    /// A phone number (SMS) or email address (email).
    pub from: Option<String>,
    /// A phone number (SMS) or email address (email).
    #[schema(example = "+1 555 010 2000")]
    pub to: String,
    #[schema(example = "Hi Jane, your intake documents are ready to sign.")]
    pub body: String,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateTask {
    pub case_id: Option<String>,
    #[schema(schema_with = task_kind_schema)]
    pub kind: String,
    #[schema(example = "Collect police report")]
    pub title: String,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SubmitForm {
    /// The form's answers by question key.
    #[schema(value_type = Object)]
    pub answers: Value,
}

// ---------------------------------------------------------------------------------------------
// Calls
// ---------------------------------------------------------------------------------------------

/// Records a call in progress → `call_started`.
#[utoipa::path(post, path = "/calls", tag = "calls", security(("bearer" = [])),
    request_body = StartCall,
    responses((status = 201, body = CallOut), (status = 422, body = ErrorBody)))]
async fn start_call(
    State(s): State<AppState>,
    Auth(company): Auth,
    Json(body): Json<StartCall>,
) -> Result<(StatusCode, axum::Json<CallOut>), ApiError> {
    let new = NewCall::parse(CallInput {
        case_id: body.case_id.as_deref(),
        campaign_id: body.campaign_id.as_deref(),
        direction: &body.direction,
        from_number: body.from_number.as_deref(),
        to_number: body.to_number.as_deref(),
        started_at: body.started_at.as_deref(),
    })?;
    let data = activity::start_call(&s.app, company, &new, CallEventData::from).await?;
    Ok((StatusCode::CREATED, axum::Json(data.call)))
}

#[utoipa::path(get, path = "/calls/{id}", tag = "calls", security(("bearer" = [])),
    params(("id" = String, Path)),
    responses((status = 200, body = CallOut), (status = 404, body = ErrorBody)))]
async fn get_call(
    State(s): State<AppState>,
    Auth(company): Auth,
    Path(id): Path<String>,
) -> Result<axum::Json<CallOut>, ApiError> {
    let call_id: CallId = path_id(&id, "call")?;
    let call = activity::get_call(&s.app, company, call_id).await?;
    Ok(axum::Json(call.into()))
}

/// Appends turns to the transcript → `transcript_updated`. Also accepted after the call
/// ended: transcripts may arrive late.
#[utoipa::path(post, path = "/calls/{id}/transcript", tag = "calls", security(("bearer" = [])),
    params(("id" = String, Path)), request_body = AppendTranscript,
    responses((status = 200, body = CallOut), (status = 404, body = ErrorBody),
              (status = 422, body = ErrorBody)))]
async fn append_transcript(
    State(s): State<AppState>,
    Auth(company): Auth,
    Path(id): Path<String>,
    Json(body): Json<AppendTranscript>,
) -> Result<axum::Json<CallOut>, ApiError> {
    let call_id: CallId = path_id(&id, "call")?;
    let turns: Vec<TurnInput<'_>> = body
        .turns
        .iter()
        .map(|t| TurnInput {
            speaker: &t.speaker,
            text: &t.text,
            at: t.at.as_deref(),
        })
        .collect();
    let data =
        activity::append_transcript(&s.app, company, call_id, &turns, TranscriptUpdatedData::new)
            .await?;
    Ok(axum::Json(data.call))
}

/// Ends the call → `call_ended`. 409 if it already ended. The body is optional.
#[utoipa::path(post, path = "/calls/{id}/end", tag = "calls", security(("bearer" = [])),
    params(("id" = String, Path)), request_body = EndCall,
    responses((status = 200, body = CallOut), (status = 404, body = ErrorBody),
              (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn end_call(
    State(s): State<AppState>,
    Auth(company): Auth,
    Path(id): Path<String>,
    body: Option<Json<EndCall>>,
) -> Result<axum::Json<CallOut>, ApiError> {
    let call_id: CallId = path_id(&id, "call")?;
    let body = body.map(|Json(b)| b).unwrap_or(EndCall {
        ended_at: None,
        end_reason: None,
    });
    let end = CallEnd::parse(body.ended_at.as_deref(), body.end_reason.as_deref())?;
    let data = activity::end_call(&s.app, company, call_id, &end, CallEventData::from).await?;
    Ok(axum::Json(data.call))
}

/// Stores the post-call analysis → `call_analyzed` (with `summary`, `post_call_result` and
/// the custom values as `_custom`). A later analysis replaces the earlier one.
#[utoipa::path(post, path = "/calls/{id}/analysis", tag = "calls", security(("bearer" = [])),
    params(("id" = String, Path)), request_body = AnalyzeCall,
    responses((status = 200, body = CallOut), (status = 404, body = ErrorBody),
              (status = 422, body = ErrorBody)))]
async fn analyze_call(
    State(s): State<AppState>,
    Auth(company): Auth,
    Path(id): Path<String>,
    Json(body): Json<AnalyzeCall>,
) -> Result<axum::Json<CallOut>, ApiError> {
    let call_id: CallId = path_id(&id, "call")?;
    let analysis = NewAnalysis::parse(&body.summary, &body.post_call_result, body.custom.as_ref())?;
    let data =
        activity::analyze_call(&s.app, company, call_id, &analysis, CallAnalyzedData::from).await?;
    Ok(axum::Json(data.call))
}

// ---------------------------------------------------------------------------------------------
// Transfers
// ---------------------------------------------------------------------------------------------

/// Starts a live transfer of a call in progress → `transfer_started`. 409 if the call ended.
#[utoipa::path(post, path = "/calls/{id}/transfers", tag = "transfers",
    security(("bearer" = [])), params(("id" = String, Path)), request_body = StartTransfer,
    responses((status = 201, body = TransferOut), (status = 404, body = ErrorBody),
              (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn start_transfer(
    State(s): State<AppState>,
    Auth(company): Auth,
    Path(id): Path<String>,
    Json(body): Json<StartTransfer>,
) -> Result<(StatusCode, axum::Json<TransferOut>), ApiError> {
    let call_id: CallId = path_id(&id, "call")?;
    let to_number = rules::parse_transfer_number(&body.to_number)?;
    let data = activity::start_transfer(
        &s.app,
        company,
        call_id,
        &to_number,
        TransferEventData::from,
    )
    .await?;
    Ok((StatusCode::CREATED, axum::Json(data.transfer)))
}

#[utoipa::path(get, path = "/transfers/{id}", tag = "transfers", security(("bearer" = [])),
    params(("id" = String, Path)),
    responses((status = 200, body = TransferOut), (status = 404, body = ErrorBody)))]
async fn get_transfer(
    State(s): State<AppState>,
    Auth(company): Auth,
    Path(id): Path<String>,
) -> Result<axum::Json<TransferOut>, ApiError> {
    let transfer_id: TransferId = path_id(&id, "transfer")?;
    let transfer = activity::get_transfer(&s.app, company, transfer_id).await?;
    Ok(axum::Json(transfer.into()))
}

/// The three transfer reports share one use case.
async fn move_transfer(
    s: AppState,
    company: CompanyId,
    id: String,
    action: TransferAction,
) -> Result<axum::Json<TransferOut>, ApiError> {
    let transfer_id: TransferId = path_id(&id, "transfer")?;
    let data = activity::move_transfer(
        &s.app,
        company,
        transfer_id,
        action,
        TransferEventData::from,
    )
    .await?;
    Ok(axum::Json(data.transfer))
}

/// The transfer connected → `transfer_bridged`. Only from `started`; 409 otherwise.
#[utoipa::path(post, path = "/transfers/{id}/bridged", tag = "transfers",
    security(("bearer" = [])), params(("id" = String, Path)),
    responses((status = 200, body = TransferOut), (status = 404, body = ErrorBody),
              (status = 409, body = ErrorBody)))]
async fn transfer_bridged(
    State(s): State<AppState>,
    Auth(company): Auth,
    Path(id): Path<String>,
) -> Result<axum::Json<TransferOut>, ApiError> {
    move_transfer(s, company, id, TransferAction::Bridge).await
}

/// The transfer was cancelled or failed to connect → `transfer_cancelled`. Only from
/// `started`; 409 otherwise.
#[utoipa::path(post, path = "/transfers/{id}/cancelled", tag = "transfers",
    security(("bearer" = [])), params(("id" = String, Path)),
    responses((status = 200, body = TransferOut), (status = 404, body = ErrorBody),
              (status = 409, body = ErrorBody)))]
async fn transfer_cancelled(
    State(s): State<AppState>,
    Auth(company): Auth,
    Path(id): Path<String>,
) -> Result<axum::Json<TransferOut>, ApiError> {
    move_transfer(s, company, id, TransferAction::Cancel).await
}

/// The transferred leg ended → `transfer_ended`. Only from `bridged`; 409 otherwise.
#[utoipa::path(post, path = "/transfers/{id}/ended", tag = "transfers",
    security(("bearer" = [])), params(("id" = String, Path)),
    responses((status = 200, body = TransferOut), (status = 404, body = ErrorBody),
              (status = 409, body = ErrorBody)))]
async fn transfer_ended(
    State(s): State<AppState>,
    Auth(company): Auth,
    Path(id): Path<String>,
) -> Result<axum::Json<TransferOut>, ApiError> {
    move_transfer(s, company, id, TransferAction::End).await
}

// ---------------------------------------------------------------------------------------------
// Messages
// ---------------------------------------------------------------------------------------------

/// Records an SMS or email → `message_sent`.
#[utoipa::path(post, path = "/messages", tag = "messages", security(("bearer" = [])),
    request_body = SendMessage,
    responses((status = 201, body = MessageOut), (status = 422, body = ErrorBody)))]
async fn send_message(
    State(s): State<AppState>,
    Auth(company): Auth,
    Json(body): Json<SendMessage>,
) -> Result<(StatusCode, axum::Json<MessageOut>), ApiError> {
    let new = NewMessage::parse(MessageInput {
        case_id: body.case_id.as_deref(),
        campaign_id: body.campaign_id.as_deref(),
        channel: &body.channel,
        direction: &body.direction,
        from: body.from.as_deref(),
        to: &body.to,
        body: &body.body,
    })?;
    let data = activity::send_message(&s.app, company, &new, MessageEventData::from).await?;
    Ok((StatusCode::CREATED, axum::Json(data.message)))
}

#[utoipa::path(get, path = "/messages/{id}", tag = "messages", security(("bearer" = [])),
    params(("id" = String, Path)),
    responses((status = 200, body = MessageOut), (status = 404, body = ErrorBody)))]
async fn get_message(
    State(s): State<AppState>,
    Auth(company): Auth,
    Path(id): Path<String>,
) -> Result<axum::Json<MessageOut>, ApiError> {
    let message_id: MessageId = path_id(&id, "message")?;
    let message = activity::get_message(&s.app, company, message_id).await?;
    Ok(axum::Json(message.into()))
}

/// The provider confirmed delivery of an outbound message → `message_delivered`. 409 if it
/// was already delivered or is inbound.
#[utoipa::path(post, path = "/messages/{id}/delivered", tag = "messages",
    security(("bearer" = [])), params(("id" = String, Path)),
    responses((status = 200, body = MessageOut), (status = 404, body = ErrorBody),
              (status = 409, body = ErrorBody)))]
async fn message_delivered(
    State(s): State<AppState>,
    Auth(company): Auth,
    Path(id): Path<String>,
) -> Result<axum::Json<MessageOut>, ApiError> {
    let message_id: MessageId = path_id(&id, "message")?;
    let data =
        activity::deliver_message(&s.app, company, message_id, MessageEventData::from).await?;
    Ok(axum::Json(data.message))
}

// ---------------------------------------------------------------------------------------------
// Tasks and forms
// ---------------------------------------------------------------------------------------------

/// Creates an open task or form. No event: `task_completed` / `form_submitted` follow later.
#[utoipa::path(post, path = "/tasks", tag = "tasks", security(("bearer" = [])),
    request_body = CreateTask,
    responses((status = 201, body = TaskOut), (status = 422, body = ErrorBody)))]
async fn create_task(
    State(s): State<AppState>,
    Auth(company): Auth,
    Json(body): Json<CreateTask>,
) -> Result<(StatusCode, axum::Json<TaskOut>), ApiError> {
    let new = NewTask::parse(TaskInput {
        case_id: body.case_id.as_deref(),
        kind: &body.kind,
        title: &body.title,
    })?;
    let task = activity::create_task(&s.app, company, &new).await?;
    Ok((StatusCode::CREATED, axum::Json(task.into())))
}

#[utoipa::path(get, path = "/tasks/{id}", tag = "tasks", security(("bearer" = [])),
    params(("id" = String, Path)),
    responses((status = 200, body = TaskOut), (status = 404, body = ErrorBody)))]
async fn get_task(
    State(s): State<AppState>,
    Auth(company): Auth,
    Path(id): Path<String>,
) -> Result<axum::Json<TaskOut>, ApiError> {
    let task_id: TaskId = path_id(&id, "task")?;
    let task = activity::get_task(&s.app, company, task_id).await?;
    Ok(axum::Json(task.into()))
}

/// Completing a task and submitting a form share one use case.
async fn finish_task(
    s: AppState,
    company: CompanyId,
    id: String,
    action: TaskAction,
    answers: Option<Map<String, Value>>,
) -> Result<axum::Json<TaskOut>, ApiError> {
    let task_id: TaskId = path_id(&id, "task")?;
    let answers = answers.as_ref();
    let data = activity::finish_task(
        &s.app,
        company,
        task_id,
        action,
        answers,
        TaskEventData::from,
    )
    .await?;
    Ok(axum::Json(data.task))
}

/// Completes an open task → `task_completed`. 409 for a form or a task already done.
#[utoipa::path(post, path = "/tasks/{id}/complete", tag = "tasks", security(("bearer" = [])),
    params(("id" = String, Path)),
    responses((status = 200, body = TaskOut), (status = 404, body = ErrorBody),
              (status = 409, body = ErrorBody)))]
async fn complete_task(
    State(s): State<AppState>,
    Auth(company): Auth,
    Path(id): Path<String>,
) -> Result<axum::Json<TaskOut>, ApiError> {
    finish_task(s, company, id, TaskAction::Complete, None).await
}

/// Submits an open form with its answers → `form_submitted`. 409 for a task or a form already
/// submitted.
#[utoipa::path(post, path = "/tasks/{id}/submit", tag = "tasks", security(("bearer" = [])),
    params(("id" = String, Path)), request_body = SubmitForm,
    responses((status = 200, body = TaskOut), (status = 404, body = ErrorBody),
              (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn submit_form(
    State(s): State<AppState>,
    Auth(company): Auth,
    Path(id): Path<String>,
    Json(body): Json<SubmitForm>,
) -> Result<axum::Json<TaskOut>, ApiError> {
    let answers = rules::parse_form_answers(&body.answers)?;
    finish_task(s, company, id, TaskAction::Submit, Some(answers)).await
}

// ---------------------------------------------------------------------------------------------
// Event documentation: schema and example of each event's `data`
// ---------------------------------------------------------------------------------------------

/// The JSON schema of `T`, self-contained: references to other schemas are inlined, so it can
/// be shown on its own (e.g. by `GET /api/v1/event-types`).
fn inline_schema<T: ToSchema>() -> Value {
    let mut parts = Vec::new();
    T::schemas(&mut parts);
    let components: HashMap<String, Value> = parts
        .into_iter()
        .map(|(name, schema)| (name, serde_json::to_value(schema).unwrap_or(Value::Null)))
        .collect();
    let mut root = serde_json::to_value(<T as PartialSchema>::schema()).unwrap_or(Value::Null);
    inline_refs(&mut root, &components, 0);
    root
}

fn inline_refs(v: &mut Value, components: &HashMap<String, Value>, depth: usize) {
    // The event types hold no recursive types; the bound only guards against a future one.
    if depth > 32 {
        return;
    }
    match v {
        Value::Object(map) => {
            let target = map
                .get("$ref")
                .and_then(Value::as_str)
                .and_then(|r| r.strip_prefix("#/components/schemas/"))
                .and_then(|name| components.get(name));
            if let Some(target) = target {
                *v = target.clone();
                inline_refs(v, components, depth + 1);
                return;
            }
            for child in map.values_mut() {
                inline_refs(child, components, depth + 1);
            }
        }
        Value::Array(items) => {
            for child in items {
                inline_refs(child, components, depth + 1);
            }
        }
        _ => {}
    }
}

/// Example records, consistent with each other: one call about one case in one campaign.
mod example {
    use super::*;

    fn at(s: &str) -> Timestamp {
        s.parse().expect("example time")
    }

    fn id<T: std::str::FromStr>(s: &str) -> T {
        s.parse().ok().expect("example id")
    }

    const CASE: &str = "0196a0c1-2b4d-7e3a-8f10-5c6d7e8f9a01";
    const CAMPAIGN: &str = "0196a0c0-9e1f-7a2b-b3c4-d5e6f7a8b902";

    pub fn turns() -> Vec<Turn> {
        vec![
            Turn {
                speaker: Speaker::Agent,
                text: "Hi Jane, this is Kayse calling for Acme Injury Law about your accident \
                       on April 28. Is now a good time?"
                    .into(),
                at: at("2025-05-01T14:30:04Z"),
            },
            Turn {
                speaker: Speaker::Client,
                text: "Yes, I was rear-ended on I-90 and my neck still hurts.".into(),
                at: at("2025-05-01T14:30:11Z"),
            },
        ]
    }

    pub fn call(stage: u8) -> Call {
        let ended = stage >= 2;
        Call {
            id: id("0196a0c2-5f3e-7b21-9a4e-1c2d3e4f5a6b"),
            case_id: Some(id(CASE)),
            campaign_id: Some(id(CAMPAIGN)),
            direction: Direction::Outbound,
            from_number: Some("+1 555 010 1000".into()),
            to_number: Some("+1 555 010 2000".into()),
            status: if ended {
                CallStatus::Ended
            } else {
                CallStatus::InProgress
            },
            started_at: at("2025-05-01T14:30:00Z"),
            ended_at: ended.then(|| at("2025-05-01T14:41:37Z")),
            end_reason: ended.then(|| "hangup".into()),
            transcript: if stage >= 1 { turns() } else { Vec::new() },
            analysis: (stage >= 3).then(|| CallAnalysis {
                summary: "Jane Doe was rear-ended on I-90 on April 28 and has ongoing neck \
                          pain. She has not retained counsel and agreed to sign intake \
                          documents."
                    .into(),
                post_call_result: "Qualified – Intake Completed".into(),
                custom: match json!({"1234": "Yes", "1235": "4/28/2025", "1236": 2, "1237": false})
                {
                    Value::Object(m) => m,
                    _ => Map::new(),
                },
                analyzed_at: at("2025-05-01T14:42:05Z"),
            }),
            created_at: at("2025-05-01T14:30:00Z"),
            updated_at: at(match stage {
                0 => "2025-05-01T14:30:00Z",
                1 => "2025-05-01T14:30:11Z",
                2 => "2025-05-01T14:41:37Z",
                _ => "2025-05-01T14:42:05Z",
            }),
        }
    }

    pub fn transfer(status: TransferStatus) -> Transfer {
        Transfer {
            id: id("0196a0c3-7a8b-7c9d-8e0f-a1b2c3d4e5f6"),
            call_id: id("0196a0c2-5f3e-7b21-9a4e-1c2d3e4f5a6b"),
            case_id: Some(id(CASE)),
            campaign_id: Some(id(CAMPAIGN)),
            to_number: "+1 555 010 3000".into(),
            status,
            created_at: at("2025-05-01T14:35:20Z"),
            updated_at: at(match status {
                TransferStatus::Started => "2025-05-01T14:35:20Z",
                TransferStatus::Bridged => "2025-05-01T14:35:31Z",
                TransferStatus::Cancelled => "2025-05-01T14:35:50Z",
                TransferStatus::Ended => "2025-05-01T14:41:30Z",
            }),
        }
    }

    pub fn message(delivered: bool) -> Message {
        Message {
            id: id("0196a0c4-1d2e-7f30-9a41-b2c3d4e5f607"),
            case_id: Some(id(CASE)),
            campaign_id: Some(id(CAMPAIGN)),
            channel: Channel::Sms,
            direction: Direction::Outbound,
            from: Some("+1 555 010 1000".into()),
            to: "+1 555 010 2000".into(),
            body: "Hi Jane, your intake documents from Acme Injury Law are ready to sign: \
                   https://sign.example.com/d/8f3k2"
                .into(),
            status: if delivered {
                MessageStatus::Delivered
            } else {
                MessageStatus::Sent
            },
            sent_at: at("2025-05-01T14:43:00Z"),
            delivered_at: delivered.then(|| at("2025-05-01T14:43:02Z")),
            created_at: at("2025-05-01T14:43:00Z"),
            updated_at: at(if delivered {
                "2025-05-01T14:43:02Z"
            } else {
                "2025-05-01T14:43:00Z"
            }),
        }
    }

    pub fn task(kind: TaskKind) -> Task {
        let (task_id, title, status, answers) = match kind {
            TaskKind::Task => (
                "0196a0c5-3f40-7a51-8b62-c3d4e5f60718",
                "Collect police report",
                TaskStatus::Completed,
                None,
            ),
            TaskKind::Form => (
                "0196a0c5-4a51-7b62-9c73-d4e5f6071829",
                "Accident intake questionnaire",
                TaskStatus::Submitted,
                match json!({
                    "accident_date": "2025-04-28",
                    "injuries": ["neck", "back"],
                    "sought_treatment": true,
                    "other_attorney": false
                }) {
                    Value::Object(m) => Some(m),
                    _ => None,
                },
            ),
        };
        Task {
            id: id(task_id),
            case_id: Some(id(CASE)),
            kind,
            title: title.into(),
            status,
            answers,
            completed_at: Some(at("2025-05-02T09:15:00Z")),
            created_at: at("2025-05-01T14:45:00Z"),
            updated_at: at("2025-05-02T09:15:00Z"),
        }
    }
}

fn documented<T: ToSchema + Serialize>(
    event_type: EventType,
    example: T,
) -> (EventType, Value, Value) {
    let example = serde_json::to_value(example).unwrap_or(Value::Null);
    (event_type, inline_schema::<T>(), example)
}

/// For each of the 12 subscribable event types: the JSON schema of its `data` and a realistic
/// example `data`, both derived from the types that build the real events.
pub fn event_examples() -> Vec<(EventType, Value, Value)> {
    use example::*;
    let call_data = |stage| CallEventData::from(call(stage));
    let transfer_data = |status| TransferEventData::from(transfer(status));
    vec![
        documented(EventType::CallStarted, call_data(0)),
        documented(EventType::CallEnded, call_data(2)),
        documented(EventType::CallAnalyzed, CallAnalyzedData::from(call(3))),
        documented(
            EventType::TranscriptUpdated,
            TranscriptUpdatedData::new(call(1), turns()),
        ),
        documented(
            EventType::TransferStarted,
            transfer_data(TransferStatus::Started),
        ),
        documented(
            EventType::TransferBridged,
            transfer_data(TransferStatus::Bridged),
        ),
        documented(
            EventType::TransferCancelled,
            transfer_data(TransferStatus::Cancelled),
        ),
        documented(
            EventType::TransferEnded,
            transfer_data(TransferStatus::Ended),
        ),
        documented(
            EventType::MessageSent,
            MessageEventData::from(message(false)),
        ),
        documented(
            EventType::MessageDelivered,
            MessageEventData::from(message(true)),
        ),
        documented(
            EventType::TaskCompleted,
            TaskEventData::from(task(TaskKind::Task)),
        ),
        documented(
            EventType::FormSubmitted,
            TaskEventData::from(task(TaskKind::Form)),
        ),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A small structural check of an example against its schema: types, required properties,
    /// no undeclared properties, enum values.
    fn conforms(schema: &Value, value: &Value, path: &str) -> Result<(), String> {
        if let Some(options) = schema.get("oneOf").and_then(Value::as_array) {
            return if options.iter().any(|o| conforms(o, value, path).is_ok()) {
                Ok(())
            } else {
                Err(format!("{path}: matches no oneOf option"))
            };
        }
        let types: Vec<&str> = match schema.get("type") {
            Some(Value::String(t)) => vec![t.as_str()],
            Some(Value::Array(ts)) => ts.iter().filter_map(Value::as_str).collect(),
            _ => vec![],
        };
        let actual = match value {
            Value::Null => "null",
            Value::Bool(_) => "boolean",
            Value::Number(n) if n.is_i64() || n.is_u64() => "integer",
            Value::Number(_) => "number",
            Value::String(_) => "string",
            Value::Array(_) => "array",
            Value::Object(_) => "object",
        };
        let type_ok = types.is_empty()
            || types.contains(&actual)
            || (actual == "integer" && types.contains(&"number"));
        if !type_ok {
            return Err(format!("{path}: is {actual}, schema says {types:?}"));
        }
        if let Some(allowed) = schema.get("enum").and_then(Value::as_array) {
            if !allowed.contains(value) {
                return Err(format!("{path}: {value} not in {allowed:?}"));
            }
        }
        match value {
            Value::Object(map) => {
                let props = schema.get("properties").and_then(Value::as_object);
                for req in schema
                    .get("required")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                {
                    let req = req.as_str().unwrap_or_default();
                    if !map.contains_key(req) {
                        return Err(format!("{path}: missing required `{req}`"));
                    }
                }
                for (k, v) in map {
                    let sub = format!("{path}.{k}");
                    match props.and_then(|p| p.get(k)) {
                        Some(s) => conforms(s, v, &sub)?,
                        None => match schema.get("additionalProperties") {
                            Some(Value::Bool(false)) | None if props.is_some() => {
                                return Err(format!("{sub}: not in the schema"))
                            }
                            Some(s @ Value::Object(_)) => conforms(s, v, &sub)?,
                            _ => {}
                        },
                    }
                }
                Ok(())
            }
            Value::Array(items) => match schema.get("items") {
                Some(s) => items
                    .iter()
                    .enumerate()
                    .try_for_each(|(i, v)| conforms(s, v, &format!("{path}[{i}]"))),
                None => Ok(()),
            },
            _ => Ok(()),
        }
    }

    #[test]
    fn every_subscribable_event_type_is_documented_once() {
        let documented: Vec<EventType> = event_examples().into_iter().map(|(t, _, _)| t).collect();
        let mut expected = EventType::SUBSCRIBABLE.to_vec();
        let mut got = documented.clone();
        expected.sort();
        got.sort();
        assert_eq!(got, expected);
    }

    #[test]
    fn examples_conform_to_their_self_contained_schemas() {
        for (t, schema, example) in event_examples() {
            assert!(
                !schema.to_string().contains("$ref"),
                "{t:?}: schema has a reference"
            );
            conforms(&schema, &example, t.as_str()).unwrap_or_else(|e| panic!("{e}\n{schema:#}"));
        }
    }

    #[test]
    fn the_documented_shapes_are_the_promised_ones() {
        let all: HashMap<EventType, (Value, Value)> = event_examples()
            .into_iter()
            .map(|(t, s, e)| (t, (s, e)))
            .collect();
        let (schema, example) = &all[&EventType::CallAnalyzed];
        assert_eq!(example["_custom"]["1234"], "Yes");
        assert_eq!(example["summary"], example["call"]["analysis"]["summary"]);
        assert_eq!(
            schema["properties"]["call"]["properties"]["status"]["enum"],
            json!(["in_progress", "ended"])
        );
        let (_, example) = &all[&EventType::TransferBridged];
        assert_eq!(example["call_id"], example["transfer"]["call_id"]);
        assert_eq!(example["transfer"]["status"], "bridged");
        let (_, example) = &all[&EventType::TranscriptUpdated];
        assert_eq!(example["transcript_length"], 2);
        assert_eq!(example["turns"][1]["speaker"], "client");
        let (_, example) = &all[&EventType::FormSubmitted];
        assert_eq!(example["task"]["kind"], "form");
        assert!(example["task"]["answers"].is_object());
    }

    #[test]
    fn a_bad_example_fails_the_check() {
        let (_, schema, mut example) = event_examples().remove(0);
        example["call"]["status"] = json!("ringing");
        assert!(conforms(&schema, &example, "x").is_err());
        example["call"]["status"] = json!("ended");
        example["call"]["surprise"] = json!(1);
        assert!(conforms(&schema, &example, "x").is_err());
    }
}
