//! The Voice AI call completion payload for Law Ruler (seed LR10), built without I/O.
//!
//! A completed (analysed) call becomes, in this order, all on the same Lead ID:
//! 1. the campaign-API request: `LeadID`, `OverriddenLead=true`, `Tags=Kayse`, `Status`,
//!    `CellPhone` (only with "Sync enriched phones"), `FirstName`/`LastName` when known, and one
//!    `Custom<ID>=<string>` per mapped `_custom` value, sent as query parameters (the technical
//!    reference's words) of a POST with an empty body;
//! 2. the note "Call Analysis Summary" (the summary, then the `_custom` values);
//! 3. for successful calls only, the note "Full Call Transcript" (`[AGENT]: …` / `[CLIENT]: …`);
//! 4. the recording, in `/recordings`, named
//!    `Kayse VoiceAI Recording – <Campaign> (<Timestamp>).mp3`, form field `Recording`.
//!
//! Times: the notes and the recording carry the call's own times, a second apart (summary at the
//! call's end, transcript one second later, recording two seconds later), so Law Ruler lists
//! them in that order whatever order they arrive in.

use std::time::Duration;

use casebridge_domain::activity::{Call, Speaker, Turn};
use casebridge_domain::crm_ops::OpAction;
use jiff::tz::TimeZone;
use jiff::Timestamp;
use serde_json::{Map, Value};

use super::client::{campaign_custom_param, CampaignResult, CLIENT_COMMUNICATIONS};

pub const SUMMARY_SUBJECT: &str = "Call Analysis Summary";
pub const TRANSCRIPT_SUBJECT: &str = "Full Call Transcript";
pub const RECORDINGS_FOLDER: &str = "/recordings";
pub const TAG: &str = "Kayse";

/// Whether the call reached a conversation (the rule shared with SmartAdvocate's dialer
/// disposition). Only such calls get the transcript note.
pub use casebridge_domain::dialer::is_successful;

/// `[AGENT]: …` / `[CLIENT]: …`, one turn a line (line breaks inside a turn become spaces).
pub fn transcript_text(turns: &[Turn]) -> String {
    turns
        .iter()
        .map(|t| {
            let who = match t.speaker {
                Speaker::Agent => "AGENT",
                Speaker::Client => "CLIENT",
            };
            let text = t.text.split_whitespace().collect::<Vec<_>>().join(" ");
            format!("[{who}]: {text}")
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// A `_custom` value as Law Ruler gets it: booleans as `Yes`/`No`, numbers as written, dates
/// (`YYYY-MM-DD`) as `M/D/YYYY`, other text unchanged. `None` for null (nothing to send).
pub fn custom_value_string(v: &Value) -> Option<String> {
    match v {
        Value::Null => None,
        Value::Bool(true) => Some("Yes".into()),
        Value::Bool(false) => Some("No".into()),
        Value::Number(n) => Some(n.to_string()),
        Value::String(s) => Some(match s.trim().parse::<jiff::civil::Date>() {
            Ok(d) if s.trim().len() == 10 => format!("{}/{}/{}", d.month(), d.day(), d.year()),
            _ => s.clone(),
        }),
        // The API keeps `_custom` flat; anything nested is sent as its JSON text.
        other => Some(other.to_string()),
    }
}

/// The summary note: the summary, the post-call result, then each `_custom` value.
pub fn summary_body(summary: &str, post_call_result: &str, custom: &Map<String, Value>) -> String {
    let mut body = format!("{}\n\nResult: {}", summary.trim(), post_call_result.trim());
    let values: Vec<String> = custom
        .iter()
        .filter_map(|(k, v)| custom_value_string(v).map(|s| format!("_custom.{k}: {s}")))
        .collect();
    if !values.is_empty() {
        body.push_str("\n\n");
        body.push_str(&values.join("\n"));
    }
    body
}

/// `Kayse VoiceAI Recording – <Campaign> (<YYYY-MM-DD HH-MM-SS TZ>).mp3`, or without the
/// campaign part; the time in the company's zone.
pub fn recording_file_name(campaign: Option<&str>, at: Timestamp, tz: &TimeZone) -> String {
    let stamp = at
        .to_zoned(tz.clone())
        .strftime("%Y-%m-%d %H-%M-%S %Z")
        .to_string();
    match campaign.map(str::trim).filter(|c| !c.is_empty()) {
        Some(c) => {
            // Path separators would turn the name into a folder.
            let c = c.replace(['/', '\\'], "-");
            format!("Kayse VoiceAI Recording – {c} ({stamp}).mp3")
        }
        None => format!("Kayse VoiceAI Recording ({stamp}).mp3"),
    }
}

/// The call's reference time for ordering its records in Law Ruler.
pub fn call_time(call: &Call) -> Timestamp {
    call.ended_at
        .or(call.analysis.as_ref().map(|a| a.analyzed_at))
        .unwrap_or(call.started_at)
}

/// Everything known about the call's lead, resolved by the caller.
#[derive(Debug, Clone, Default)]
pub struct CallContext {
    pub lead_id: String,
    /// The Law Ruler status name for the post-call result (through the status mapping), or the
    /// post-call result itself when it has no mapping.
    pub status: Option<String>,
    /// Only when "Sync enriched phones" is on.
    pub cell_phone: Option<String>,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    /// `(custom field id, _custom key)` for the `_custom` values that map to a Law Ruler field.
    pub custom_ids: Vec<(String, String)>,
    /// The `_custom` keys that map to no Law Ruler field, so are not sent as `Custom<ID>` (they
    /// still appear in the summary note); the sync log names them.
    pub unmapped_custom: Vec<String>,
    pub campaign_name: Option<String>,
}

/// The operations for a completed call, in the order they must reach Law Ruler (without the
/// recording; see [`recording_action`]). `None` when the call has no analysis yet.
pub fn call_actions(call: &Call, ctx: &CallContext) -> Option<Vec<OpAction>> {
    let analysis = call.analysis.as_ref()?;
    let custom = ctx
        .custom_ids
        .iter()
        .filter_map(|(id, key)| {
            analysis
                .custom
                .get(key)
                .and_then(custom_value_string)
                .map(|v| (id.clone(), v))
        })
        .collect();
    let result = CampaignResult {
        lead_id: ctx.lead_id.clone(),
        tags: vec![TAG.into()],
        status: ctx.status.clone(),
        cell_phone: ctx.cell_phone.clone(),
        first_name: ctx.first_name.clone(),
        last_name: ctx.last_name.clone(),
        custom,
    };
    let at = call_time(call);
    let mut out = vec![
        OpAction::CallResult {
            params: result.to_params(),
        },
        OpAction::AddNote {
            category: CLIENT_COMMUNICATIONS.into(),
            subject: SUMMARY_SUBJECT.into(),
            body: summary_body(
                &analysis.summary,
                &analysis.post_call_result,
                &analysis.custom,
            ),
            noted_at: at,
        },
    ];
    if is_successful(call) {
        out.push(OpAction::AddNote {
            category: CLIENT_COMMUNICATIONS.into(),
            subject: TRANSCRIPT_SUBJECT.into(),
            body: transcript_text(&call.transcript),
            noted_at: at + Duration::from_secs(1),
        });
    }
    Some(out)
}

/// The upload of a call's recording (last of the call's records).
pub fn recording_action(
    call: &Call,
    document_id: &str,
    campaign_name: Option<&str>,
    tz: &TimeZone,
) -> OpAction {
    let at = call_time(call);
    OpAction::UploadDocument {
        document_id: document_id.to_owned(),
        folder: RECORDINGS_FOLDER.into(),
        form_field: "Recording".into(),
        file_name: recording_file_name(campaign_name, at, tz),
        as_mp3: true,
        created_at: at + Duration::from_secs(2),
    }
}

/// The `Custom<ID>` parameter name for a custom field id (re-exported for tests and callers).
pub fn custom_param(id: &str) -> String {
    campaign_custom_param(id)
}

#[cfg(test)]
mod tests {
    use super::*;
    use casebridge_domain::activity::{CallAnalysis, CallStatus, Direction};
    use serde_json::json;

    fn t(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    fn turn(speaker: Speaker, text: &str) -> Turn {
        Turn {
            speaker,
            text: text.into(),
            at: t("2026-05-01T14:40:00Z"),
        }
    }

    fn call(turns: Vec<Turn>, end_reason: Option<&str>) -> Call {
        Call {
            id: "0190a0b0-0000-7000-8000-000000000001".parse().unwrap(),
            case_id: None,
            campaign_id: None,
            direction: Direction::Outbound,
            from_number: Some("+15550000001".into()),
            to_number: Some("+15550000002".into()),
            status: CallStatus::Ended,
            started_at: t("2026-05-01T14:30:00Z"),
            ended_at: Some(t("2026-05-01T14:42:05Z")),
            end_reason: end_reason.map(str::to_owned),
            transcript: turns,
            analysis: Some(CallAnalysis {
                summary: "Rear-ended on I-95.".into(),
                post_call_result: "Qualified – Intake Completed".into(),
                custom: json!({"injured": true, "visits": 3, "accident_date": "2000-01-01",
                               "note": null})
                .as_object()
                .unwrap()
                .clone(),
                analyzed_at: t("2026-05-01T14:43:00Z"),
            }),
            created_at: t("2026-05-01T14:30:00Z"),
            updated_at: t("2026-05-01T14:43:00Z"),
        }
    }

    #[test]
    fn values_become_strings_as_law_ruler_shows_them() {
        assert_eq!(custom_value_string(&json!(true)).unwrap(), "Yes");
        assert_eq!(custom_value_string(&json!(false)).unwrap(), "No");
        assert_eq!(custom_value_string(&json!(1234)).unwrap(), "1234");
        assert_eq!(custom_value_string(&json!(2.5)).unwrap(), "2.5");
        assert_eq!(
            custom_value_string(&json!("2000-01-01")).unwrap(),
            "1/1/2000"
        );
        assert_eq!(
            custom_value_string(&json!("2024-12-31")).unwrap(),
            "12/31/2024"
        );
        assert_eq!(custom_value_string(&json!("soon")).unwrap(), "soon");
        assert_eq!(custom_value_string(&json!(null)), None);
    }

    #[test]
    fn a_conversation_is_successful_voicemail_is_not() {
        let talk = vec![
            turn(Speaker::Agent, "Hello, this is Kayse"),
            turn(Speaker::Client, "Yes, I'm listening"),
        ];
        assert!(is_successful(&call(talk.clone(), Some("hangup"))));
        assert!(!is_successful(&call(talk, Some("voicemail"))));
        assert!(!is_successful(&call(
            vec![turn(Speaker::Agent, "Hello?")],
            None
        )));
    }

    #[test]
    fn transcript_lines_name_the_speaker() {
        let text = transcript_text(&[
            turn(Speaker::Agent, "Hello, this is\nKayse..."),
            turn(Speaker::Client, "Yes, I'm listening..."),
        ]);
        assert_eq!(
            text,
            "[AGENT]: Hello, this is Kayse...\n[CLIENT]: Yes, I'm listening..."
        );
    }

    #[test]
    fn recording_names_with_and_without_campaign() {
        let tz = TimeZone::get("America/New_York").unwrap();
        let at = t("2026-05-01T14:42:05Z");
        assert_eq!(
            recording_file_name(Some("Spring MVA"), at, &tz),
            "Kayse VoiceAI Recording – Spring MVA (2026-05-01 10-42-05 EDT).mp3"
        );
        assert_eq!(
            recording_file_name(None, at, &tz),
            "Kayse VoiceAI Recording (2026-05-01 10-42-05 EDT).mp3"
        );
        assert_eq!(
            recording_file_name(Some("a/b"), at, &TimeZone::UTC),
            "Kayse VoiceAI Recording – a-b (2026-05-01 14-42-05 UTC).mp3"
        );
    }

    #[test]
    fn unsuccessful_calls_get_no_transcript_note() {
        let c = call(vec![turn(Speaker::Agent, "Hello?")], Some("voicemail"));
        let actions = call_actions(
            &c,
            &CallContext {
                lead_id: "42".into(),
                ..CallContext::default()
            },
        )
        .unwrap();
        assert_eq!(actions.len(), 2);
        assert!(
            matches!(&actions[1], OpAction::AddNote { subject, .. } if subject == SUMMARY_SUBJECT)
        );
    }

    #[test]
    fn the_call_result_carries_mapped_custom_values_in_order() {
        let c = call(
            vec![turn(Speaker::Agent, "Hi"), turn(Speaker::Client, "Hello")],
            None,
        );
        let actions = call_actions(
            &c,
            &CallContext {
                lead_id: "42".into(),
                status: Some("Qualified – Intake Completed".into()),
                cell_phone: Some("+15550000002".into()),
                first_name: Some("Ada".into()),
                last_name: None,
                custom_ids: vec![
                    ("1234".into(), "injured".into()),
                    ("1235".into(), "accident_date".into()),
                    ("1237".into(), "note".into()),
                    ("1238".into(), "absent".into()),
                ],
                unmapped_custom: Vec::new(),
                campaign_name: None,
            },
        )
        .unwrap();
        let OpAction::CallResult { params } = &actions[0] else {
            panic!("first is the call result")
        };
        let p: Vec<(&str, &str)> = params
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        assert_eq!(
            p,
            vec![
                ("LeadID", "42"),
                ("OverriddenLead", "true"),
                ("Tags", "Kayse"),
                ("Status", "Qualified – Intake Completed"),
                ("CellPhone", "+15550000002"),
                ("FirstName", "Ada"),
                ("Custom1234", "Yes"),
                ("Custom1235", "1/1/2000"),
            ]
        );
        assert_eq!(actions.len(), 3);
        let OpAction::AddNote {
            body, noted_at: a, ..
        } = &actions[1]
        else {
            panic!()
        };
        assert!(body.contains("_custom.injured: Yes"), "{body}");
        assert!(body.contains("_custom.visits: 3"), "{body}");
        let OpAction::AddNote {
            subject,
            noted_at: b,
            ..
        } = &actions[2]
        else {
            panic!()
        };
        assert_eq!(subject, TRANSCRIPT_SUBJECT);
        assert!(b > a, "transcript note after the summary");
    }
}
