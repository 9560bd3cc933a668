//! How a completed Voice AI call reads to a CRM's dialer: whether it reached a conversation, its
//! disposition, and when the case should be called next. Pure rules, shared by the CRM adapters
//! (Law Ruler's transcript note and enriched phone use [`is_successful`]; SmartAdvocate's
//! "Last Dialer Disposition", "Attempts Status" and next call use all of them).
//!
//! The next-call rule is ours (modelled): neither SmartAdvocate's Predictive Dialer guide nor Law
//! Ruler's campaign API says when a case is redialled, and Law Ruler's call result sends no
//! attempts or next call.

use std::time::Duration;

use jiff::Timestamp;

use crate::activity::{Call, Speaker};

/// End reasons after which a call did not reach a conversation.
const UNSUCCESSFUL_END_REASONS: &[&str] = &[
    "voicemail",
    "no_answer",
    "no-answer",
    "busy",
    "failed",
    "machine",
    "answering_machine",
    "canceled",
    "cancelled",
];

/// Whether the call reached a conversation: the client said something, and the call did not end
/// as voicemail, no answer, busy or failed.
pub fn is_successful(call: &Call) -> bool {
    let client_spoke = call
        .transcript
        .iter()
        .any(|t| t.speaker == Speaker::Client && !t.text.trim().is_empty());
    let bad_end = call.end_reason.as_deref().is_some_and(|r| {
        UNSUCCESSFUL_END_REASONS
            .iter()
            .any(|u| r.trim().eq_ignore_ascii_case(u))
    });
    client_spoke && !bad_end
}

/// A call's outcome as a dialer records it (SmartAdvocate's "Last Dialer Disposition" values).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Disposition {
    Successful,
    Busy,
    AnsweringMachine,
    NoAnswer,
}

impl Disposition {
    /// What a call was: a conversation is `Successful`; otherwise its end reason decides, and an
    /// end without a known reason is `NoAnswer`.
    pub fn of(call: &Call) -> Self {
        if is_successful(call) {
            return Self::Successful;
        }
        match call
            .end_reason
            .as_deref()
            .map(|r| r.trim().to_ascii_lowercase())
            .as_deref()
        {
            Some("busy") => Self::Busy,
            Some("voicemail" | "machine" | "answering_machine") => Self::AnsweringMachine,
            _ => Self::NoAnswer,
        }
    }

    /// The name SmartAdvocate's dialer guide gives the value.
    pub fn name(self) -> &'static str {
        match self {
            Self::Successful => "Successful",
            Self::Busy => "Busy",
            Self::AnsweringMachine => "Answering Machine",
            Self::NoAnswer => "No Answer",
        }
    }
}

/// The most attempts a case gets (SmartAdvocate's "Attempts Status" runs 0–20); after that many
/// completed calls there is no next call.
pub const MAX_ATTEMPTS: u32 = 20;

/// How long after an unsuccessful call the case is called again, by the number of completed calls
/// so far: 1 h after the first, 4 h after the second, a day after each later one.
pub const REDIAL_DELAYS: [Duration; 3] = [
    Duration::from_secs(3600),
    Duration::from_secs(4 * 3600),
    Duration::from_secs(24 * 3600),
];

/// When to call the case next, after its `attempts`-th completed call (counting this one) ended
/// with `disposition` at `last_call`. `None`: do not call again (a conversation happened, or the
/// attempts are spent).
pub fn next_call(
    disposition: Disposition,
    attempts: u32,
    last_call: Timestamp,
) -> Option<Timestamp> {
    if disposition == Disposition::Successful || attempts >= MAX_ATTEMPTS {
        return None;
    }
    let step = (attempts.max(1) as usize - 1).min(REDIAL_DELAYS.len() - 1);
    last_call.checked_add(REDIAL_DELAYS[step]).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::activity::{CallStatus, Direction, Turn};

    fn t(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    fn call(client_speaks: bool, end_reason: Option<&str>) -> Call {
        let turn = |speaker, text: &str| Turn {
            speaker,
            text: text.into(),
            at: t("2026-05-01T14:40:00Z"),
        };
        let mut transcript = vec![turn(Speaker::Agent, "Hello, this is Kayse")];
        if client_speaks {
            transcript.push(turn(Speaker::Client, "Yes, I'm listening"));
        }
        Call {
            id: "0190a0b0-0000-7000-8000-000000000001".parse().unwrap(),
            case_id: None,
            campaign_id: None,
            direction: Direction::Outbound,
            from_number: None,
            to_number: None,
            status: CallStatus::Ended,
            started_at: t("2026-05-01T14:30:00Z"),
            ended_at: Some(t("2026-05-01T14:42:05Z")),
            end_reason: end_reason.map(str::to_owned),
            transcript,
            analysis: None,
            created_at: t("2026-05-01T14:30:00Z"),
            updated_at: t("2026-05-01T14:43:00Z"),
        }
    }

    #[test]
    fn dispositions_follow_the_conversation_then_the_end_reason() {
        assert_eq!(
            Disposition::of(&call(true, Some("hangup"))),
            Disposition::Successful
        );
        assert_eq!(
            Disposition::of(&call(true, Some("busy"))),
            Disposition::Busy
        );
        assert_eq!(
            Disposition::of(&call(false, Some("Voicemail"))),
            Disposition::AnsweringMachine
        );
        assert_eq!(Disposition::of(&call(false, None)), Disposition::NoAnswer);
        assert!(!is_successful(&call(false, Some("hangup"))));
    }

    #[test]
    fn next_call_backs_off_and_stops() {
        let at = t("2026-05-01T14:42:05Z");
        let no = Disposition::NoAnswer;
        assert_eq!(next_call(no, 1, at), Some(t("2026-05-01T15:42:05Z")));
        assert_eq!(next_call(no, 2, at), Some(t("2026-05-01T18:42:05Z")));
        assert_eq!(next_call(no, 3, at), Some(t("2026-05-02T14:42:05Z")));
        assert_eq!(next_call(no, 19, at), Some(t("2026-05-02T14:42:05Z")));
        assert_eq!(next_call(no, MAX_ATTEMPTS, at), None);
        assert_eq!(next_call(Disposition::Successful, 1, at), None);
        assert_eq!(next_call(no, 0, at), Some(t("2026-05-01T15:42:05Z")));
    }
}
