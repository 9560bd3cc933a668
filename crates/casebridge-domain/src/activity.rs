//! Platform activity that other systems hear about: calls (with their transcript and analysis),
//! live transfers, messages, and tasks and forms.
//!
//! Three kinds of thing live here: the validated inputs (`NewCall::parse` and friends collect
//! every failing field into one [`ValidationError`]), the records as stored, and the state rules
//! as pure functions (`TransferStatus::next`, `TaskStatus::next`, ...). A rule that refuses a
//! change returns a message naming the current state; the API answers it with 409.

use std::str::FromStr;

use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::error::{ValidationError, Validator};
use crate::ids::{CallId, CampaignId, CaseId, MessageId, TaskId, TransferId};

/// At most this many turns in one transcript request.
pub const MAX_TURNS_PER_REQUEST: usize = 1_000;
/// At most this many turns in a call's whole transcript.
pub const MAX_TRANSCRIPT_TURNS: usize = 20_000;
/// Longest text of one transcript turn, in characters.
pub const MAX_TURN_TEXT: usize = 10_000;
/// Longest call summary, in characters.
pub const MAX_SUMMARY: usize = 20_000;
/// Longest message body, in characters.
pub const MAX_MESSAGE_BODY: usize = 50_000;
/// At most this many keys in analysis custom values or form answers.
pub const MAX_KEYS: usize = 200;
const MAX_KEY: usize = 100;
const MAX_SHORT_TEXT: usize = 200;
const MAX_PHONE: usize = 32;
const MAX_EMAIL: usize = 254;

text_enum!(
    /// Who started a call or sent a message, seen from the firm.
    Direction { Inbound => "inbound", Outbound => "outbound" }
);
text_enum!(CallStatus { InProgress => "in_progress", Ended => "ended" });
text_enum!(
    /// Who said a line of a transcript.
    Speaker { Agent => "agent", Client => "client" }
);
text_enum!(TransferStatus {
    Started => "started",
    Bridged => "bridged",
    Cancelled => "cancelled",
    Ended => "ended",
});
text_enum!(
    /// What a caller reports about a transfer: `/transfers/{id}/{bridged|cancelled|ended}`.
    TransferAction { Bridge => "bridged", Cancel => "cancelled", End => "ended" }
);
text_enum!(Channel { Sms => "sms", Email => "email" });
text_enum!(MessageStatus { Sent => "sent", Delivered => "delivered" });
text_enum!(
    /// A task is marked completed; a form is submitted with answers.
    TaskKind { Task => "task", Form => "form" }
);
text_enum!(TaskStatus { Open => "open", Completed => "completed", Submitted => "submitted" });
text_enum!(
    /// What a caller does to an open task: `/tasks/{id}/complete` or `/tasks/{id}/submit`.
    TaskAction { Complete => "complete", Submit => "submit" }
);

// ---------------------------------------------------------------------------------------------
// Stored records
// ---------------------------------------------------------------------------------------------

/// One line of a call transcript. Stored as JSON in the call's transcript.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Turn {
    pub speaker: Speaker,
    pub text: String,
    pub at: Timestamp,
}

/// The post-call analysis: a summary, the outcome, and firm-defined values (`_custom`).
#[derive(Debug, Clone, PartialEq)]
pub struct CallAnalysis {
    pub summary: String,
    /// E.g. "Qualified – Intake Completed"; drives the CRM status.
    pub post_call_result: String,
    /// Flat: every value is a string, number, boolean or null.
    pub custom: Map<String, Value>,
    pub analyzed_at: Timestamp,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Call {
    pub id: CallId,
    pub case_id: Option<CaseId>,
    pub campaign_id: Option<CampaignId>,
    pub direction: Direction,
    pub from_number: Option<String>,
    pub to_number: Option<String>,
    pub status: CallStatus,
    pub started_at: Timestamp,
    pub ended_at: Option<Timestamp>,
    pub end_reason: Option<String>,
    pub transcript: Vec<Turn>,
    pub analysis: Option<CallAnalysis>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

/// A live transfer of a call. The case and campaign are the call's, so events about the
/// transfer pass the same webhook filters as events about the call.
#[derive(Debug, Clone, PartialEq)]
pub struct Transfer {
    pub id: TransferId,
    pub call_id: CallId,
    pub case_id: Option<CaseId>,
    pub campaign_id: Option<CampaignId>,
    pub to_number: String,
    pub status: TransferStatus,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Message {
    pub id: MessageId,
    pub case_id: Option<CaseId>,
    pub campaign_id: Option<CampaignId>,
    pub channel: Channel,
    pub direction: Direction,
    pub from: Option<String>,
    pub to: String,
    pub body: String,
    pub status: MessageStatus,
    pub sent_at: Timestamp,
    pub delivered_at: Option<Timestamp>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Task {
    pub id: TaskId,
    pub case_id: Option<CaseId>,
    pub kind: TaskKind,
    pub title: String,
    pub status: TaskStatus,
    /// A submitted form's answers.
    pub answers: Option<Map<String, Value>>,
    /// When the task was completed or the form submitted.
    pub completed_at: Option<Timestamp>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

// ---------------------------------------------------------------------------------------------
// State rules
// ---------------------------------------------------------------------------------------------

impl CallStatus {
    /// Ending a call: only once.
    pub fn end(self) -> Result<CallStatus, String> {
        match self {
            CallStatus::InProgress => Ok(CallStatus::Ended),
            CallStatus::Ended => Err("the call has already ended".into()),
        }
    }

    /// A transfer can start only while the call is in progress.
    pub fn check_transfer(self) -> Result<(), String> {
        match self {
            CallStatus::InProgress => Ok(()),
            CallStatus::Ended => {
                Err("the call has ended; a transfer needs a call in progress".into())
            }
        }
    }
}

/// A call cannot end before it started.
pub fn check_end_time(started_at: Timestamp, ended_at: Timestamp) -> Result<(), ValidationError> {
    if ended_at < started_at {
        return Err(ValidationError::single(
            "ended_at",
            format!("is before the call started ({started_at})"),
        ));
    }
    Ok(())
}

/// Appending turns must keep the transcript within [`MAX_TRANSCRIPT_TURNS`].
pub fn check_transcript_len(current: usize, adding: usize) -> Result<(), ValidationError> {
    if current + adding > MAX_TRANSCRIPT_TURNS {
        return Err(ValidationError::single(
            "turns",
            format!(
                "the transcript has {current} turns; adding {adding} would exceed \
                 {MAX_TRANSCRIPT_TURNS}"
            ),
        ));
    }
    Ok(())
}

impl TransferStatus {
    /// started → bridged | cancelled; bridged → ended. Everything else is refused with a
    /// message naming the current state.
    pub fn next(self, action: TransferAction) -> Result<TransferStatus, String> {
        use TransferAction as A;
        use TransferStatus as S;
        match (self, action) {
            (S::Started, A::Bridge) => Ok(S::Bridged),
            (S::Started, A::Cancel) => Ok(S::Cancelled),
            (S::Bridged, A::End) => Ok(S::Ended),
            (current, action) => {
                let hint = match action {
                    A::Bridge | A::Cancel => "only a started transfer can be",
                    A::End => "only a bridged transfer can be",
                };
                Err(format!(
                    "the transfer is {current}; {hint} marked {}",
                    action.as_str()
                ))
            }
        }
    }
}

impl MessageStatus {
    /// sent → delivered, once, and only for outbound messages.
    pub fn deliver(self, direction: Direction) -> Result<MessageStatus, String> {
        match (direction, self) {
            (Direction::Inbound, _) => {
                Err("the message is inbound; only outbound messages are delivered".into())
            }
            (Direction::Outbound, MessageStatus::Sent) => Ok(MessageStatus::Delivered),
            (Direction::Outbound, MessageStatus::Delivered) => {
                Err("the message is already delivered".into())
            }
        }
    }
}

impl TaskStatus {
    /// An open task is completed; an open form is submitted. Each happens once.
    pub fn next(self, kind: TaskKind, action: TaskAction) -> Result<TaskStatus, String> {
        match (kind, action, self) {
            (TaskKind::Task, TaskAction::Complete, TaskStatus::Open) => Ok(TaskStatus::Completed),
            (TaskKind::Form, TaskAction::Submit, TaskStatus::Open) => Ok(TaskStatus::Submitted),
            (TaskKind::Form, TaskAction::Complete, _) => {
                Err("this is a form; submit it with its answers instead of completing it".into())
            }
            (TaskKind::Task, TaskAction::Submit, _) => {
                Err("this is a task, not a form; complete it instead of submitting it".into())
            }
            (_, _, current) => Err(format!("the {kind} is already {current}")),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Field parsers
// ---------------------------------------------------------------------------------------------

fn id_field<T: FromStr>(v: &mut Validator, field: &str, raw: Option<&str>) -> Option<T> {
    let raw = raw?;
    match raw.trim().parse() {
        Ok(id) => Some(id),
        Err(_) => {
            v.push(field, format!("`{raw}` is not an id"));
            None
        }
    }
}

/// An RFC 3339 time with an offset, kept to the millisecond (the stored precision).
fn time_field(v: &mut Validator, field: &str, raw: Option<&str>) -> Option<Timestamp> {
    let raw = raw?;
    match raw.trim().parse::<Timestamp>() {
        Ok(t) => match Timestamp::from_millisecond(t.as_millisecond()) {
            Ok(t) => v.check(crate::input::check_time(field, t)),
            Err(_) => {
                v.push(field, "is out of range");
                None
            }
        },
        Err(_) => {
            v.push(
                field,
                format!("`{raw}` is not an RFC 3339 time such as 2025-05-01T14:30:00Z"),
            );
            None
        }
    }
}

fn enum_field<T>(
    v: &mut Validator,
    field: &str,
    raw: &str,
    parse: fn(&str) -> Option<T>,
    choices: fn() -> String,
) -> Option<T> {
    let parsed = parse(raw.trim());
    if parsed.is_none() {
        v.push(field, format!("must be {}", choices()));
    }
    parsed
}

/// Trimmed text of 1..=`max` characters.
fn required_text(v: &mut Validator, field: &str, raw: &str, max: usize) -> Option<String> {
    let t = raw.trim();
    if t.is_empty() {
        v.push(field, "must not be empty");
        return None;
    }
    if t.chars().count() > max {
        v.push(field, format!("must be at most {max} characters"));
        return None;
    }
    Some(t.to_owned())
}

/// Absent or blank is `None`; otherwise as [`required_text`].
fn optional_text(v: &mut Validator, field: &str, raw: Option<&str>, max: usize) -> Option<String> {
    let t = raw.map(str::trim).filter(|t| !t.is_empty())?;
    required_text(v, field, t, max)
}

fn is_phone(p: &str) -> bool {
    p.chars().any(|c| c.is_ascii_digit())
        && p.chars()
            .all(|c| c.is_ascii_digit() || " +-().".contains(c))
}

fn is_email(e: &str) -> bool {
    match e.split_once('@') {
        Some((local, domain)) => {
            !local.is_empty()
                && domain.contains('.')
                && !domain.starts_with('.')
                && !domain.ends_with('.')
                && !e.contains(char::is_whitespace)
        }
        None => false,
    }
}

fn phone_field(v: &mut Validator, field: &str, raw: &str) -> Option<String> {
    let p = required_text(v, field, raw, MAX_PHONE)?;
    if is_phone(&p) {
        Some(p)
    } else {
        v.push(
            field,
            "is not a phone number (digits, spaces and + - ( ) . only)",
        );
        None
    }
}

fn optional_phone(v: &mut Validator, field: &str, raw: Option<&str>) -> Option<String> {
    let t = raw.map(str::trim).filter(|t| !t.is_empty())?;
    phone_field(v, field, t)
}

/// An address for a channel: a phone number for SMS, an email address for email.
fn address_field(
    v: &mut Validator,
    field: &str,
    channel: Option<Channel>,
    raw: &str,
) -> Option<String> {
    match channel {
        Some(Channel::Sms) => phone_field(v, field, raw),
        Some(Channel::Email) => {
            let e = required_text(v, field, raw, MAX_EMAIL)?;
            if is_email(&e) {
                Some(e)
            } else {
                v.push(field, "is not an email address");
                None
            }
        }
        // The channel is invalid and already reported; still check the address is there.
        None => required_text(v, field, raw, MAX_EMAIL),
    }
}

/// A JSON object of at most [`MAX_KEYS`] keys of 1-100 characters. With `flat`, every value
/// must be a string, number, boolean or null.
fn object_field(
    field: &str,
    raw: &Value,
    flat: bool,
) -> Result<Map<String, Value>, ValidationError> {
    let Value::Object(map) = raw else {
        return Err(ValidationError::single(field, "must be a JSON object"));
    };
    let mut v = Validator::new();
    if map.len() > MAX_KEYS {
        v.push(field, format!("at most {MAX_KEYS} keys"));
    }
    for (k, val) in map {
        if k.trim().is_empty() || k.chars().count() > MAX_KEY {
            v.push(
                format!("{field}.{k}"),
                format!("keys must be 1-{MAX_KEY} characters"),
            );
        } else if flat && (val.is_object() || val.is_array()) {
            v.push(
                format!("{field}.{k}"),
                "must be a string, number, boolean or null",
            );
        }
    }
    v.finish()?;
    Ok(map.clone())
}

// ---------------------------------------------------------------------------------------------
// Inputs
// ---------------------------------------------------------------------------------------------

/// `POST /calls` as given by a caller, before validation.
#[derive(Debug, Clone, Default)]
pub struct CallInput<'a> {
    pub case_id: Option<&'a str>,
    pub campaign_id: Option<&'a str>,
    pub direction: &'a str,
    pub from_number: Option<&'a str>,
    pub to_number: Option<&'a str>,
    pub started_at: Option<&'a str>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct NewCall {
    pub case_id: Option<CaseId>,
    pub campaign_id: Option<CampaignId>,
    pub direction: Direction,
    pub from_number: Option<String>,
    pub to_number: Option<String>,
    /// `None`: when the call is recorded.
    pub started_at: Option<Timestamp>,
}

impl NewCall {
    pub fn parse(input: CallInput<'_>) -> Result<Self, ValidationError> {
        let mut v = Validator::new();
        let case_id = id_field(&mut v, "case_id", input.case_id);
        let campaign_id = id_field(&mut v, "campaign_id", input.campaign_id);
        let direction = enum_field(
            &mut v,
            "direction",
            input.direction,
            Direction::parse,
            Direction::choices,
        );
        let from_number = optional_phone(&mut v, "from_number", input.from_number);
        let to_number = optional_phone(&mut v, "to_number", input.to_number);
        let started_at = time_field(&mut v, "started_at", input.started_at);
        v.finish()?;
        Ok(Self {
            case_id,
            campaign_id,
            direction: direction.expect("validated"),
            from_number,
            to_number,
            started_at,
        })
    }
}

/// One turn of `POST /calls/{id}/transcript`, before validation.
#[derive(Debug, Clone, Default)]
pub struct TurnInput<'a> {
    pub speaker: &'a str,
    pub text: &'a str,
    pub at: Option<&'a str>,
}

/// Parses the turns to append: 1-1000 of them; a turn without `at` is timed `now`.
pub fn parse_turns(turns: &[TurnInput<'_>], now: Timestamp) -> Result<Vec<Turn>, ValidationError> {
    let mut v = Validator::new();
    if turns.is_empty() {
        v.push("turns", "must contain at least one turn");
    }
    if turns.len() > MAX_TURNS_PER_REQUEST {
        v.push(
            "turns",
            format!("at most {MAX_TURNS_PER_REQUEST} turns per request"),
        );
    }
    let mut out = Vec::with_capacity(turns.len());
    for (i, t) in turns.iter().enumerate() {
        let speaker = enum_field(
            &mut v,
            &format!("turns[{i}].speaker"),
            t.speaker,
            Speaker::parse,
            Speaker::choices,
        );
        let text = required_text(&mut v, &format!("turns[{i}].text"), t.text, MAX_TURN_TEXT);
        let at = time_field(&mut v, &format!("turns[{i}].at"), t.at);
        if let (Some(speaker), Some(text)) = (speaker, text) {
            out.push(Turn {
                speaker,
                text,
                at: at.unwrap_or(now),
            });
        }
    }
    v.finish()?;
    Ok(out)
}

/// `POST /calls/{id}/end`, validated.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct CallEnd {
    /// `None`: when the end is recorded.
    pub ended_at: Option<Timestamp>,
    /// Why the call ended, e.g. `hangup`, `voicemail`, `transferred`.
    pub end_reason: Option<String>,
}

impl CallEnd {
    pub fn parse(
        ended_at: Option<&str>,
        end_reason: Option<&str>,
    ) -> Result<Self, ValidationError> {
        let mut v = Validator::new();
        let ended_at = time_field(&mut v, "ended_at", ended_at);
        let end_reason = optional_text(&mut v, "end_reason", end_reason, MAX_SHORT_TEXT);
        v.finish()?;
        Ok(Self {
            ended_at,
            end_reason,
        })
    }
}

/// `POST /calls/{id}/analysis`, validated.
#[derive(Debug, Clone, PartialEq)]
pub struct NewAnalysis {
    pub summary: String,
    pub post_call_result: String,
    pub custom: Map<String, Value>,
}

impl NewAnalysis {
    /// `custom` absent or null is an empty object.
    pub fn parse(
        summary: &str,
        post_call_result: &str,
        custom: Option<&Value>,
    ) -> Result<Self, ValidationError> {
        let mut v = Validator::new();
        let summary = required_text(&mut v, "summary", summary, MAX_SUMMARY);
        let post_call_result =
            required_text(&mut v, "post_call_result", post_call_result, MAX_SHORT_TEXT);
        let custom = match custom {
            None | Some(Value::Null) => Some(Map::new()),
            Some(raw) => v.check(object_field("custom", raw, true)),
        };
        v.finish()?;
        Ok(Self {
            summary: summary.expect("validated"),
            post_call_result: post_call_result.expect("validated"),
            custom: custom.expect("validated"),
        })
    }
}

/// A transfer's destination number.
pub fn parse_transfer_number(raw: &str) -> Result<String, ValidationError> {
    let mut v = Validator::new();
    let n = phone_field(&mut v, "to_number", raw);
    v.finish()?;
    Ok(n.expect("validated"))
}

/// `POST /messages` as given by a caller, before validation.
#[derive(Debug, Clone, Default)]
pub struct MessageInput<'a> {
    pub case_id: Option<&'a str>,
    pub campaign_id: Option<&'a str>,
    pub channel: &'a str,
    pub direction: &'a str,
    pub from: Option<&'a str>,
    pub to: &'a str,
    pub body: &'a str,
}

#[derive(Debug, Clone, PartialEq)]
pub struct NewMessage {
    pub case_id: Option<CaseId>,
    pub campaign_id: Option<CampaignId>,
    pub channel: Channel,
    pub direction: Direction,
    pub from: Option<String>,
    pub to: String,
    pub body: String,
}

impl NewMessage {
    /// Addresses must suit the channel: phone numbers for SMS, email addresses for email.
    pub fn parse(input: MessageInput<'_>) -> Result<Self, ValidationError> {
        let mut v = Validator::new();
        let case_id = id_field(&mut v, "case_id", input.case_id);
        let campaign_id = id_field(&mut v, "campaign_id", input.campaign_id);
        let channel = enum_field(
            &mut v,
            "channel",
            input.channel,
            Channel::parse,
            Channel::choices,
        );
        let direction = enum_field(
            &mut v,
            "direction",
            input.direction,
            Direction::parse,
            Direction::choices,
        );
        let from = match input.from.map(str::trim).filter(|f| !f.is_empty()) {
            Some(raw) => address_field(&mut v, "from", channel, raw),
            None => None,
        };
        let to = address_field(&mut v, "to", channel, input.to);
        let body = required_text(&mut v, "body", input.body, MAX_MESSAGE_BODY);
        v.finish()?;
        Ok(Self {
            case_id,
            campaign_id,
            channel: channel.expect("validated"),
            direction: direction.expect("validated"),
            from,
            to: to.expect("validated"),
            body: body.expect("validated"),
        })
    }
}

/// `POST /tasks` as given by a caller, before validation.
#[derive(Debug, Clone, Default)]
pub struct TaskInput<'a> {
    pub case_id: Option<&'a str>,
    pub kind: &'a str,
    pub title: &'a str,
}

#[derive(Debug, Clone, PartialEq)]
pub struct NewTask {
    pub case_id: Option<CaseId>,
    pub kind: TaskKind,
    pub title: String,
}

impl NewTask {
    pub fn parse(input: TaskInput<'_>) -> Result<Self, ValidationError> {
        let mut v = Validator::new();
        let case_id = id_field(&mut v, "case_id", input.case_id);
        let kind = enum_field(
            &mut v,
            "kind",
            input.kind,
            TaskKind::parse,
            TaskKind::choices,
        );
        let title = required_text(&mut v, "title", input.title, MAX_SHORT_TEXT);
        v.finish()?;
        Ok(Self {
            case_id,
            kind: kind.expect("validated"),
            title: title.expect("validated"),
        })
    }
}

/// A form's answers: a JSON object of at most 200 answers (values of any JSON type).
pub fn parse_form_answers(raw: &Value) -> Result<Map<String, Value>, ValidationError> {
    object_field("answers", raw, false)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn fields(e: ValidationError) -> Vec<String> {
        e.errors.into_iter().map(|e| e.field).collect()
    }

    fn t(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    #[test]
    fn text_enums_round_trip_and_list_their_choices() {
        for s in TransferStatus::ALL {
            assert_eq!(TransferStatus::parse(s.as_str()), Some(*s));
        }
        assert_eq!(CallStatus::InProgress.as_str(), "in_progress");
        assert_eq!(Direction::choices(), "`inbound` or `outbound`");
        assert_eq!(TaskStatus::choices(), "`open`, `completed` or `submitted`");
        assert_eq!(
            serde_json::to_value(Speaker::Agent).unwrap(),
            json!("agent")
        );
    }

    #[test]
    fn a_call_reports_every_bad_field_at_once() {
        let err = NewCall::parse(CallInput {
            case_id: Some("nope"),
            campaign_id: Some("also-nope"),
            direction: "sideways",
            from_number: Some("call me"),
            to_number: Some("+1 555 0100"),
            started_at: Some("yesterday"),
        })
        .unwrap_err();
        assert_eq!(
            fields(err),
            [
                "case_id",
                "campaign_id",
                "direction",
                "from_number",
                "started_at"
            ]
        );
    }

    #[test]
    fn a_valid_call_keeps_times_to_the_millisecond() {
        let call = NewCall::parse(CallInput {
            direction: " outbound ",
            to_number: Some("+1 (555) 010-2000"),
            from_number: Some("  "),
            started_at: Some("2025-05-01T09:30:00.123456+02:00"),
            ..Default::default()
        })
        .unwrap();
        assert_eq!(call.direction, Direction::Outbound);
        assert_eq!(call.from_number, None);
        assert_eq!(call.started_at, Some(t("2025-05-01T07:30:00.123Z")));
    }

    #[test]
    fn turns_are_validated_each_and_timed_now_by_default() {
        let now = t("2025-05-01T12:00:00Z");
        let turns = parse_turns(
            &[
                TurnInput {
                    speaker: "agent",
                    text: " Hello, this is Kayse. ",
                    at: None,
                },
                TurnInput {
                    speaker: "client",
                    text: "Hi",
                    at: Some("2025-05-01T12:00:05Z"),
                },
            ],
            now,
        )
        .unwrap();
        assert_eq!(turns[0].text, "Hello, this is Kayse.");
        assert_eq!(turns[0].at, now);
        assert_eq!(turns[1].at, t("2025-05-01T12:00:05Z"));

        let err = parse_turns(
            &[TurnInput {
                speaker: "robot",
                text: " ",
                at: Some("noon"),
            }],
            now,
        )
        .unwrap_err();
        assert_eq!(
            fields(err),
            ["turns[0].speaker", "turns[0].text", "turns[0].at"]
        );
        assert_eq!(fields(parse_turns(&[], now).unwrap_err()), ["turns"]);
    }

    #[test]
    fn the_transcript_is_bounded() {
        assert!(check_transcript_len(10, 5).is_ok());
        assert!(check_transcript_len(MAX_TRANSCRIPT_TURNS, 1).is_err());
    }

    #[test]
    fn a_call_ends_once_and_not_before_it_started() {
        assert_eq!(CallStatus::InProgress.end(), Ok(CallStatus::Ended));
        assert!(CallStatus::Ended
            .end()
            .unwrap_err()
            .contains("already ended"));
        assert!(check_end_time(t("2025-05-01T12:00:00Z"), t("2025-05-01T12:00:00Z")).is_ok());
        let err = check_end_time(t("2025-05-01T12:00:00Z"), t("2025-05-01T11:59:59Z")).unwrap_err();
        assert_eq!(fields(err), ["ended_at"]);
        assert!(CallStatus::InProgress.check_transfer().is_ok());
        assert!(CallStatus::Ended.check_transfer().is_err());
    }

    #[test]
    fn analysis_custom_values_must_be_flat() {
        let a = NewAnalysis::parse(
            "Caller was rear-ended.",
            "Qualified – Intake Completed",
            Some(&json!({"1234": "Yes", "1235": 3, "1236": false, "1237": null})),
        )
        .unwrap();
        assert_eq!(a.custom.len(), 4);
        assert!(NewAnalysis::parse("s", "r", None)
            .unwrap()
            .custom
            .is_empty());

        let err = NewAnalysis::parse(
            " ",
            "",
            Some(&json!({"ok": 1, "nested": {"a": 1}, "list": [1]})),
        )
        .unwrap_err();
        assert_eq!(
            fields(err),
            [
                "summary",
                "post_call_result",
                "custom.list",
                "custom.nested"
            ]
        );
        let err = NewAnalysis::parse("s", "r", Some(&json!("x"))).unwrap_err();
        assert_eq!(fields(err), ["custom"]);
    }

    #[test]
    fn transfer_state_machine() {
        use TransferAction as A;
        use TransferStatus as S;
        assert_eq!(S::Started.next(A::Bridge), Ok(S::Bridged));
        assert_eq!(S::Started.next(A::Cancel), Ok(S::Cancelled));
        assert_eq!(S::Bridged.next(A::End), Ok(S::Ended));
        for (from, action) in [
            (S::Started, A::End),
            (S::Bridged, A::Bridge),
            (S::Bridged, A::Cancel),
            (S::Cancelled, A::Bridge),
            (S::Cancelled, A::End),
            (S::Ended, A::End),
            (S::Ended, A::Cancel),
        ] {
            let err = from.next(action).unwrap_err();
            assert!(
                err.contains(&format!("the transfer is {from}")),
                "{from:?} {action:?}: {err}"
            );
        }
        assert_eq!(
            S::Started.next(A::End).unwrap_err(),
            "the transfer is started; only a bridged transfer can be marked ended"
        );
    }

    #[test]
    fn messages_need_addresses_that_suit_the_channel() {
        let m = NewMessage::parse(MessageInput {
            channel: "email",
            direction: "outbound",
            to: "jane@example.com",
            body: "Your documents are ready.",
            ..Default::default()
        })
        .unwrap();
        assert_eq!((m.channel, m.from), (Channel::Email, None));

        let err = NewMessage::parse(MessageInput {
            channel: "sms",
            direction: "outbound",
            from: Some("intake@firm.com"),
            to: "jane@example.com",
            body: "",
            ..Default::default()
        })
        .unwrap_err();
        assert_eq!(fields(err), ["from", "to", "body"]);

        let err = NewMessage::parse(MessageInput {
            channel: "fax",
            direction: "up",
            to: "",
            body: "x",
            ..Default::default()
        })
        .unwrap_err();
        assert_eq!(fields(err), ["channel", "direction", "to"]);
    }

    #[test]
    fn a_message_is_delivered_once_and_only_outbound() {
        assert_eq!(
            MessageStatus::Sent.deliver(Direction::Outbound),
            Ok(MessageStatus::Delivered)
        );
        assert!(MessageStatus::Delivered
            .deliver(Direction::Outbound)
            .unwrap_err()
            .contains("already delivered"));
        assert!(MessageStatus::Sent.deliver(Direction::Inbound).is_err());
    }

    #[test]
    fn tasks_complete_and_forms_submit_once() {
        use TaskAction::*;
        use TaskKind as K;
        use TaskStatus as S;
        assert_eq!(S::Open.next(K::Task, Complete), Ok(S::Completed));
        assert_eq!(S::Open.next(K::Form, Submit), Ok(S::Submitted));
        assert_eq!(
            S::Completed.next(K::Task, Complete).unwrap_err(),
            "the task is already completed"
        );
        assert_eq!(
            S::Submitted.next(K::Form, Submit).unwrap_err(),
            "the form is already submitted"
        );
        assert!(S::Open
            .next(K::Form, Complete)
            .unwrap_err()
            .contains("form"));
        assert!(S::Open
            .next(K::Task, Submit)
            .unwrap_err()
            .contains("not a form"));
    }

    #[test]
    fn tasks_and_answers_are_validated() {
        let err = NewTask::parse(TaskInput {
            case_id: Some("x"),
            kind: "chore",
            title: " ",
        })
        .unwrap_err();
        assert_eq!(fields(err), ["case_id", "kind", "title"]);
        let answers =
            parse_form_answers(&json!({"injuries": ["neck", "back"], "date": "2025-04-30"}))
                .unwrap();
        assert_eq!(answers.len(), 2);
        assert_eq!(
            fields(parse_form_answers(&json!([1])).unwrap_err()),
            ["answers"]
        );
        assert_eq!(
            fields(parse_form_answers(&json!({"": 1})).unwrap_err()),
            ["answers."]
        );
    }

    #[test]
    fn transfer_numbers_are_phone_numbers() {
        assert_eq!(
            parse_transfer_number(" +1 555 010 3000 ").unwrap(),
            "+1 555 010 3000"
        );
        assert_eq!(
            fields(parse_transfer_number("sales").unwrap_err()),
            ["to_number"]
        );
    }
}
