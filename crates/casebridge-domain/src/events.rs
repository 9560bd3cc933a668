//! Platform events, which webhooks deliver, and the rules that pick the webhooks for an event.

use jiff::Timestamp;
use serde_json::{json, Value};

use crate::error::{ValidationError, Validator};
use crate::ids::{
    AttemptId, CampaignId, CaseId, CaseTypeId, CompanyId, DeliveryId, EventId, JobId, WebhookId,
};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum EventType {
    CallStarted,
    CallEnded,
    CallAnalyzed,
    TranscriptUpdated,
    TransferStarted,
    TransferBridged,
    TransferCancelled,
    TransferEnded,
    MessageSent,
    MessageDelivered,
    TaskCompleted,
    FormSubmitted,
    /// Sent by "Send test"; outside the subscription rules.
    WebhookTest,
}

impl EventType {
    /// The types a webhook can subscribe to. An empty subscription means all of these, including
    /// types added later.
    pub const SUBSCRIBABLE: [EventType; 12] = [
        EventType::CallStarted,
        EventType::CallEnded,
        EventType::CallAnalyzed,
        EventType::TranscriptUpdated,
        EventType::TransferStarted,
        EventType::TransferBridged,
        EventType::TransferCancelled,
        EventType::TransferEnded,
        EventType::MessageSent,
        EventType::MessageDelivered,
        EventType::TaskCompleted,
        EventType::FormSubmitted,
    ];

    /// What the event means, in a sentence (the event catalog, W3).
    pub fn description(self) -> &'static str {
        match self {
            EventType::CallStarted => "A voice-agent call began.",
            EventType::CallEnded => "A call ended.",
            EventType::CallAnalyzed => {
                "The post-call analysis is ready: summary, post-call result and `_custom` values."
            }
            EventType::TranscriptUpdated => "New transcript turns were recorded for a call.",
            EventType::TransferStarted => "A live transfer of a call began.",
            EventType::TransferBridged => "The transfer connected the caller to the target.",
            EventType::TransferCancelled => "The transfer was cancelled before it connected.",
            EventType::TransferEnded => "A bridged transfer ended.",
            EventType::MessageSent => "An SMS or email was sent.",
            EventType::MessageDelivered => "A sent message was confirmed delivered.",
            EventType::TaskCompleted => "A task was completed.",
            EventType::FormSubmitted => "A form was submitted with its answers.",
            EventType::WebhookTest => "A test sent on request to one webhook.",
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            EventType::CallStarted => "call_started",
            EventType::CallEnded => "call_ended",
            EventType::CallAnalyzed => "call_analyzed",
            EventType::TranscriptUpdated => "transcript_updated",
            EventType::TransferStarted => "transfer_started",
            EventType::TransferBridged => "transfer_bridged",
            EventType::TransferCancelled => "transfer_cancelled",
            EventType::TransferEnded => "transfer_ended",
            EventType::MessageSent => "message_sent",
            EventType::MessageDelivered => "message_delivered",
            EventType::TaskCompleted => "task_completed",
            EventType::FormSubmitted => "form_submitted",
            EventType::WebhookTest => "webhook.test",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::SUBSCRIBABLE
            .into_iter()
            .chain([EventType::WebhookTest])
            .find(|t| t.as_str() == s)
    }

    /// Events that happen on a call; the campaign filter applies to these only (W4).
    pub fn is_call_event(self) -> bool {
        matches!(
            self,
            EventType::CallStarted
                | EventType::CallEnded
                | EventType::CallAnalyzed
                | EventType::TranscriptUpdated
                | EventType::TransferStarted
                | EventType::TransferBridged
                | EventType::TransferCancelled
                | EventType::TransferEnded
        )
    }
}

/// An event to record, written in the same transaction as the change it reports.
#[derive(Debug, Clone)]
pub struct NewEvent {
    pub event_type: EventType,
    pub data: Value,
    pub campaign_id: Option<CampaignId>,
    pub case_id: Option<CaseId>,
}

/// A recorded event. Its id is the `webhook-id` of every delivery of it, stable across retries
/// and replays, so consumers can dedupe.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    pub id: EventId,
    pub company_id: CompanyId,
    pub event_type: EventType,
    pub campaign_id: Option<CampaignId>,
    pub case_type_id: Option<CaseTypeId>,
    pub data: Value,
    pub created_at: Timestamp,
}

impl Event {
    /// The payload envelope (W10): `{"id","type","created_at","company_id","data"}`.
    pub fn envelope(&self) -> Value {
        json!({
            "id": self.id.to_string(),
            "type": self.event_type.as_str(),
            "created_at": self.created_at.to_string(),
            "company_id": self.company_id.to_string(),
            "data": self.data,
        })
    }
}

/// Which events a webhook receives.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Subscription {
    /// Empty: every type, including types added later.
    pub event_types: Vec<EventType>,
    /// Campaign-scoped webhook (created from a campaign): only that campaign's events.
    pub scope_campaign_id: Option<CampaignId>,
    /// Call events must belong to one of these campaigns; other events pass. Empty: no filter.
    pub campaign_ids: Vec<CampaignId>,
    /// The event's case must have one of these case types. Empty: no filter.
    pub case_type_ids: Vec<CaseTypeId>,
}

impl Subscription {
    /// Whether an event goes to a webhook with this subscription. `webhook.test` is never
    /// matched: it is sent to one webhook on request.
    pub fn matches(&self, event: &Event) -> bool {
        let t = event.event_type;
        if t == EventType::WebhookTest {
            return false;
        }
        if !self.event_types.is_empty() && !self.event_types.contains(&t) {
            return false;
        }
        if let Some(scope) = self.scope_campaign_id {
            if event.campaign_id != Some(scope) {
                return false;
            }
        }
        if !self.campaign_ids.is_empty()
            && t.is_call_event()
            && !event
                .campaign_id
                .is_some_and(|c| self.campaign_ids.contains(&c))
        {
            return false;
        }
        if !self.case_type_ids.is_empty()
            && !event
                .case_type_id
                .is_some_and(|c| self.case_type_ids.contains(&c))
        {
            return false;
        }
        true
    }
}

/// A webhook as stored (secrets are not part of it).
#[derive(Debug, Clone, PartialEq)]
pub struct Webhook {
    pub id: WebhookId,
    pub company_id: CompanyId,
    pub name: String,
    pub url: String,
    pub subscription: Subscription,
    pub active: bool,
    /// Why the system turned the webhook off (e.g. the endpoint answered 410 Gone).
    pub disabled_reason: Option<String>,
    /// Sealed App Key, sent as `X-Public-Api-Key`.
    pub app_key_sealed: Option<String>,
    /// At most this many deliveries to the webhook are in flight at once (W7), across all
    /// workers and processes; [`MAX_IN_FLIGHT_RANGE`], default [`DEFAULT_MAX_IN_FLIGHT`].
    pub max_in_flight: u32,
    /// Bumped by every change to the webhook or its signing secrets, in the change's
    /// transaction; what the delivery handler's cache compares.
    pub version: u64,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

/// A webhook's bound on deliveries in flight when none is given. Four keeps a hanging endpoint to
/// a quarter of a default worker pool (16 per process), as before the bound was a setting; an
/// endpoint that answers quickly and needs more rate can be given up to 64.
pub const DEFAULT_MAX_IN_FLIGHT: u32 = 4;

/// The bounds a webhook's `max_in_flight` may take.
pub const MAX_IN_FLIGHT_RANGE: std::ops::RangeInclusive<u32> = 1..=64;

/// A webhook's bound on deliveries in flight: 1 to 64.
pub fn parse_max_in_flight(raw: i64) -> Result<u32, ValidationError> {
    match u32::try_from(raw) {
        Ok(n) if MAX_IN_FLIGHT_RANGE.contains(&n) => Ok(n),
        _ => Err(ValidationError::single(
            "max_in_flight",
            format!(
                "must be a whole number from {} to {} (deliveries in flight at once), got {raw}",
                MAX_IN_FLIGHT_RANGE.start(),
                MAX_IN_FLIGHT_RANGE.end()
            ),
        )),
    }
}

/// A webhook's name: at least 3 characters (W1), at most 200.
pub fn parse_webhook_name(raw: &str) -> Result<String, ValidationError> {
    let t = raw.trim();
    let n = t.chars().count();
    if !(3..=200).contains(&n) {
        return Err(ValidationError::single(
            "name",
            "must be between 3 and 200 characters",
        ));
    }
    Ok(t.to_owned())
}

/// Parses subscribed event type names, naming each unknown one.
pub fn parse_event_types(raw: &[String], v: &mut Validator) -> Vec<EventType> {
    let mut out = Vec::new();
    for (i, name) in raw.iter().enumerate() {
        match EventType::parse(name) {
            Some(EventType::WebhookTest) | None => v.push(
                format!("event_types[{i}]"),
                format!("`{name}` is not an event type; see GET /api/v1/event-types for the list"),
            ),
            Some(t) if !out.contains(&t) => out.push(t),
            Some(_) => {}
        }
    }
    out.sort();
    out
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeliveryStatus {
    Pending,
    Succeeded,
    Failed,
}

impl DeliveryStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            DeliveryStatus::Pending => "pending",
            DeliveryStatus::Succeeded => "succeeded",
            DeliveryStatus::Failed => "failed",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "pending" => Some(DeliveryStatus::Pending),
            "succeeded" => Some(DeliveryStatus::Succeeded),
            "failed" => Some(DeliveryStatus::Failed),
            _ => None,
        }
    }
}

/// Which deliveries to show or recover; every field that is set narrows the set (W8, W9).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DeliveryFilter {
    pub webhook_id: Option<crate::ids::WebhookId>,
    pub status: Option<DeliveryStatus>,
    pub event_type: Option<EventType>,
    /// Deliveries with at least one attempt made for this reason.
    pub trigger: Option<Trigger>,
    /// Created at or after.
    pub since: Option<Timestamp>,
    /// Created before.
    pub until: Option<Timestamp>,
    pub event_id: Option<crate::ids::EventId>,
}

/// Why an attempt was made (W9).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trigger {
    Scheduled,
    Retry,
    Manual,
    Test,
}

impl Trigger {
    pub fn as_str(self) -> &'static str {
        match self {
            Trigger::Scheduled => "scheduled",
            Trigger::Retry => "retry",
            Trigger::Manual => "manual",
            Trigger::Test => "test",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "scheduled" => Some(Trigger::Scheduled),
            "retry" => Some(Trigger::Retry),
            "manual" => Some(Trigger::Manual),
            "test" => Some(Trigger::Test),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(t: EventType, campaign: Option<CampaignId>, case_type: Option<CaseTypeId>) -> Event {
        Event {
            id: EventId::new(),
            company_id: CompanyId::new(),
            event_type: t,
            campaign_id: campaign,
            case_type_id: case_type,
            data: json!({}),
            created_at: Timestamp::UNIX_EPOCH,
        }
    }

    #[test]
    fn empty_subscription_receives_every_type_but_test() {
        let s = Subscription::default();
        for t in EventType::SUBSCRIBABLE {
            assert!(s.matches(&event(t, None, None)), "{t:?}");
        }
        assert!(!s.matches(&event(EventType::WebhookTest, None, None)));
    }

    #[test]
    fn event_type_subscription() {
        let s = Subscription {
            event_types: vec![EventType::CallEnded],
            ..Default::default()
        };
        assert!(s.matches(&event(EventType::CallEnded, None, None)));
        assert!(!s.matches(&event(EventType::CallStarted, None, None)));
    }

    #[test]
    fn campaign_filter_applies_to_call_events_only() {
        let a = CampaignId::new();
        let b = CampaignId::new();
        let s = Subscription {
            campaign_ids: vec![a],
            ..Default::default()
        };
        assert!(s.matches(&event(EventType::CallStarted, Some(a), None)));
        assert!(!s.matches(&event(EventType::CallStarted, Some(b), None)));
        assert!(!s.matches(&event(EventType::TransferBridged, None, None)));
        assert!(s.matches(&event(EventType::MessageSent, Some(b), None)));
        assert!(s.matches(&event(EventType::TaskCompleted, None, None)));
    }

    #[test]
    fn campaign_scope_limits_every_event_to_that_campaign() {
        let a = CampaignId::new();
        let s = Subscription {
            scope_campaign_id: Some(a),
            ..Default::default()
        };
        assert!(s.matches(&event(EventType::MessageSent, Some(a), None)));
        assert!(!s.matches(&event(EventType::MessageSent, None, None)));
        assert!(!s.matches(&event(
            EventType::CallStarted,
            Some(CampaignId::new()),
            None
        )));
    }

    #[test]
    fn case_type_filter_needs_a_case_of_a_listed_type() {
        let auto = CaseTypeId::new();
        let s = Subscription {
            case_type_ids: vec![auto],
            ..Default::default()
        };
        assert!(s.matches(&event(EventType::TaskCompleted, None, Some(auto))));
        assert!(!s.matches(&event(
            EventType::TaskCompleted,
            None,
            Some(CaseTypeId::new())
        )));
        assert!(!s.matches(&event(EventType::TaskCompleted, None, None)));
    }

    #[test]
    fn names_and_types_are_validated() {
        assert!(parse_webhook_name("ab").is_err());
        assert_eq!(parse_webhook_name(" Zapier ").unwrap(), "Zapier");
        let mut v = Validator::new();
        let types = parse_event_types(
            &["call_ended".into(), "bogus".into(), "call_ended".into()],
            &mut v,
        );
        assert_eq!(types, [EventType::CallEnded]);
        assert_eq!(v.finish().unwrap_err().errors[0].field, "event_types[1]");
    }
}

/// One event going to one webhook, with the outcome so far.
#[derive(Debug, Clone, PartialEq)]
pub struct Delivery {
    pub id: DeliveryId,
    pub webhook_id: WebhookId,
    pub event_id: EventId,
    pub event_type: EventType,
    pub status: DeliveryStatus,
    pub attempt_count: u32,
    pub last_attempt_at: Option<Timestamp>,
    pub last_response_status: Option<u16>,
    pub last_error: Option<String>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

/// One HTTP attempt of a delivery, as sent and as answered (W9).
#[derive(Debug, Clone, PartialEq)]
pub struct Attempt {
    pub id: AttemptId,
    pub delivery_id: DeliveryId,
    pub job_id: JobId,
    pub attempt_no: u32,
    pub trigger: Trigger,
    pub request_url: String,
    /// Header name and value; the App Key is masked.
    pub request_headers: Vec<(String, String)>,
    pub request_body: String,
    pub response_status: Option<u16>,
    pub response_headers: Vec<(String, String)>,
    /// At most 64 KiB.
    pub response_body: Option<String>,
    pub error: Option<String>,
    pub duration_ms: u64,
    pub succeeded: bool,
    pub started_at: Timestamp,
}
