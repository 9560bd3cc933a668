//! CRM integrations, provider-neutral: toggles and their gates, the setup checklist, mapping
//! targets, list auto-add rules, and the sync log's vocabulary.

use jiff::{SignedDuration, Timestamp};
use serde::{Deserialize, Serialize};

use crate::error::ValidationError;
use crate::sync::ConflictRule;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Provider {
    LawRuler,
    SmartAdvocate,
}

impl Provider {
    pub fn as_str(self) -> &'static str {
        match self {
            Provider::LawRuler => "lawruler",
            Provider::SmartAdvocate => "smartadvocate",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "lawruler" => Some(Provider::LawRuler),
            "smartadvocate" => Some(Provider::SmartAdvocate),
            _ => None,
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            Provider::LawRuler => "Law Ruler",
            Provider::SmartAdvocate => "SmartAdvocate",
        }
    }

    /// Where "most recent change wins" reads the CRM's change time, shown next to the setting.
    pub fn change_times(self) -> &'static str {
        match self {
            Provider::LawRuler => {
                "Law Ruler sends no change time: a record's arrival (webhook, pull or import) \
                 stands for it, so under most recent Law Ruler's newer value usually wins"
            }
            Provider::SmartAdvocate => {
                "SmartAdvocate's modifiedDate of the case (read as UTC); a record without one \
                 falls back to CRM wins"
            }
        }
    }
}

/// Which way data flows between the platform and a CRM (SYNC1). It caps the toggles: one way in
/// means nothing is sent, whatever the toggles say; one way out means nothing is received (the
/// CRM's webhooks are answered `ignored` and no pull runs).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    /// Both ways (the default).
    #[default]
    Both,
    /// From the CRM to the platform only.
    OneWayIn,
    /// From the platform to the CRM only.
    OneWayOut,
}

impl Direction {
    pub const ALL: [Direction; 3] = [Direction::Both, Direction::OneWayIn, Direction::OneWayOut];

    pub fn as_str(self) -> &'static str {
        match self {
            Direction::Both => "both",
            Direction::OneWayIn => "one_way_in",
            Direction::OneWayOut => "one_way_out",
        }
    }

    /// What an admin reads.
    pub fn label(self) -> &'static str {
        match self {
            Direction::Both => "Both ways",
            Direction::OneWayIn => {
                "One way in: from the CRM to the platform only (nothing is sent)"
            }
            Direction::OneWayOut => {
                "One way out: from the platform to the CRM only (nothing is received)"
            }
        }
    }

    pub fn parse(field: &str, raw: &str) -> Result<Self, ValidationError> {
        Self::ALL
            .into_iter()
            .find(|d| d.as_str() == raw)
            .ok_or_else(|| {
                ValidationError::single(field, "must be both, one_way_in or one_way_out")
            })
    }

    pub fn receives(self) -> bool {
        self != Direction::OneWayOut
    }

    pub fn sends(self) -> bool {
        self != Direction::OneWayIn
    }
}

/// How often an integration runs (SYNC1). Inbound webhooks are real time whatever it says.
///
/// - `real_time`: outbound operations go at once; pulls follow the CRM's own interval.
/// - `hourly` / `daily`: the integration runs every hour / every 24 hours from an anchor (the
///   time the frequency was set, or of the last "run now"). A run pulls (when receiving), and the
///   outbound operations recorded since the previous run go then: they are queued at once but
///   not due until the next run ([`Frequency::next_run`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Frequency {
    /// At once (the default).
    #[default]
    RealTime,
    /// Every hour.
    Hourly,
    /// Every 24 hours.
    Daily,
}

impl Frequency {
    pub const ALL: [Frequency; 3] = [Frequency::RealTime, Frequency::Hourly, Frequency::Daily];

    pub fn as_str(self) -> &'static str {
        match self {
            Frequency::RealTime => "real_time",
            Frequency::Hourly => "hourly",
            Frequency::Daily => "daily",
        }
    }

    /// What an admin reads.
    pub fn label(self) -> &'static str {
        match self {
            Frequency::RealTime => "Real time: changes are sent at once",
            Frequency::Hourly => "Hourly: changes are sent, and the CRM pulled, once an hour",
            Frequency::Daily => "Daily: changes are sent, and the CRM pulled, once a day",
        }
    }

    pub fn parse(field: &str, raw: &str) -> Result<Self, ValidationError> {
        Self::ALL
            .into_iter()
            .find(|f| f.as_str() == raw)
            .ok_or_else(|| ValidationError::single(field, "must be real_time, hourly or daily"))
    }

    /// The time between two runs; `None` in real time (nothing waits for a run).
    pub fn interval(self) -> Option<SignedDuration> {
        match self {
            Frequency::RealTime => None,
            Frequency::Hourly => Some(SignedDuration::from_hours(1)),
            Frequency::Daily => Some(SignedDuration::from_hours(24)),
        }
    }

    /// When the next run after `now` is: `anchor` plus the smallest whole number of intervals
    /// that is later than `now` (`anchor` itself while it is later). `None` in real time. With no
    /// anchor (never set) the run is `now`: nothing is held back.
    pub fn next_run(self, anchor: Option<Timestamp>, now: Timestamp) -> Option<Timestamp> {
        let interval = self.interval()?;
        let Some(anchor) = anchor else {
            return Some(now);
        };
        if anchor > now {
            return Some(anchor);
        }
        let every = interval.as_millis();
        let behind = i128::from(now.as_millisecond() - anchor.as_millisecond());
        let runs = behind / every + 1;
        let ms = i128::from(anchor.as_millisecond()) + runs * every;
        Some(
            i64::try_from(ms)
                .ok()
                .and_then(|ms| Timestamp::from_millisecond(ms).ok())
                .unwrap_or(now),
        )
    }
}

/// The eight toggles of a CRM integration (LR7), in the safe order an admin turns them on, and
/// the sync direction that caps them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct Toggles {
    pub enable_integration: bool,
    pub receive: bool,
    pub send: bool,
    pub send_mapped_fields: bool,
    pub send_messages: bool,
    pub send_call_records: bool,
    pub send_documents: bool,
    pub sync_statuses: bool,
    /// Not a toggle of the safe order but an option of call records (LR10): send the phone
    /// number that reached the client as `CellPhone`.
    pub sync_enriched_phones: bool,
    /// Caps the toggles (SYNC1); `both` when never set.
    pub direction: Direction,
    /// What wins when both sides changed a field (SYNC1, SYNC2); `most_recent` when never set.
    pub conflict_resolution: ConflictRule,
    /// How often the integration runs (SYNC1); `real_time` when never set.
    #[serde(default)]
    pub frequency: Frequency,
}

/// One toggle as the setup screen shows it (LR7).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ToggleItem {
    pub key: &'static str,
    pub label: &'static str,
    pub description: &'static str,
    pub on: bool,
    /// The toggles that must be on for this one to take effect.
    pub gated_by: &'static [&'static str],
}

/// What the engine actually does: each toggle counts only when the toggles it depends on are on.
/// "Enable Integration" gates everything; "Send data" gates every outgoing kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Gates {
    pub receive: bool,
    pub send_mapped_fields: bool,
    pub send_messages: bool,
    pub send_call_records: bool,
    pub send_documents: bool,
    pub sync_statuses: bool,
}

impl Toggles {
    /// The toggle names in the safe order (LR7).
    pub const ORDER: [&'static str; 8] = [
        "enable_integration",
        "receive",
        "send",
        "send_mapped_fields",
        "send_messages",
        "send_call_records",
        "send_documents",
        "sync_statuses",
    ];

    /// The toggles in the safe order, each with its label and description as the setup guide
    /// words them, whether it is on, and the toggles it depends on (all of them must be on for it
    /// to take effect).
    pub fn listed(&self) -> Vec<ToggleItem> {
        const ON: &[&str] = &["enable_integration"];
        const SEND: &[&str] = &["enable_integration", "send"];
        let items = [
            (
                "enable_integration",
                "Enable Integration",
                "Turns all syncing on or off without disconnecting.",
                self.enable_integration,
                &[][..],
            ),
            (
                "receive",
                "Receive data from the CRM",
                "Pulls cases, leads and notes in.",
                self.receive,
                ON,
            ),
            (
                "send",
                "Send data to the CRM",
                "Lets casebridge send data back to the CRM.",
                self.send,
                ON,
            ),
            (
                "send_mapped_fields",
                "Send mapped fields",
                "Sends mapped field changes back to the CRM.",
                self.send_mapped_fields,
                SEND,
            ),
            (
                "send_messages",
                "Send messages",
                "Sends messages to the CRM as notes.",
                self.send_messages,
                SEND,
            ),
            (
                "send_call_records",
                "Send call records",
                "Sends call details and transcripts to the CRM.",
                self.send_call_records,
                SEND,
            ),
            (
                "send_documents",
                "Send documents",
                "Uploads files to the CRM.",
                self.send_documents,
                SEND,
            ),
            (
                "sync_statuses",
                "Sync case statuses",
                "Keeps case statuses in sync between both systems.",
                self.sync_statuses,
                ON,
            ),
        ];
        items
            .into_iter()
            .map(|(key, label, description, on, gated_by)| ToggleItem {
                key,
                label,
                description,
                on,
                gated_by,
            })
            .collect()
    }

    /// The toggles stored on an integration row (missing or unreadable ones are off).
    pub fn from_settings(settings: &serde_json::Value) -> Self {
        serde_json::from_value(settings.clone()).unwrap_or_default()
    }

    pub fn gates(&self) -> Gates {
        let on = self.enable_integration;
        let send = on && self.send && self.direction.sends();
        Gates {
            receive: on && self.receive && self.direction.receives(),
            send_mapped_fields: send && self.send_mapped_fields,
            send_messages: send && self.send_messages,
            send_call_records: send && self.send_call_records,
            send_documents: send && self.send_documents,
            sync_statuses: on && self.sync_statuses && self.direction.sends(),
        }
    }

    /// Toggles that are on but have no effect because a toggle they depend on is off, so the
    /// admin is told instead of left wondering.
    pub fn inert(&self) -> Vec<&'static str> {
        let g = self.gates();
        let mut out = Vec::new();
        let pairs = [
            ("receive", self.receive, g.receive),
            (
                "send",
                self.send,
                self.enable_integration && self.send && self.direction.sends(),
            ),
            (
                "send_mapped_fields",
                self.send_mapped_fields,
                g.send_mapped_fields,
            ),
            ("send_messages", self.send_messages, g.send_messages),
            (
                "send_call_records",
                self.send_call_records,
                g.send_call_records,
            ),
            ("send_documents", self.send_documents, g.send_documents),
            ("sync_statuses", self.sync_statuses, g.sync_statuses),
        ];
        for (name, set, effective) in pairs {
            if set && !effective {
                out.push(name);
            }
        }
        out
    }
}

text_enum!(
    /// A kind of data a sync moves (SYNC1's selective sync).
    DataKind {
        Cases => "cases",
        Clients => "clients",
        NotesAndMessages => "notes_and_messages",
        CallRecords => "call_records",
        Documents => "documents",
        Statuses => "statuses",
        MappedFields => "mapped_fields",
    }
);

impl DataKind {
    pub fn label(self) -> &'static str {
        match self {
            DataKind::Cases => "Cases",
            DataKind::Clients => "Clients",
            DataKind::NotesAndMessages => "Notes and messages",
            DataKind::CallRecords => "Call records",
            DataKind::Documents => "Documents",
            DataKind::Statuses => "Statuses",
            DataKind::MappedFields => "Mapped fields",
        }
    }

    /// The toggle that turns this kind on outbound, when it has its own.
    fn outbound_toggle(self) -> Option<&'static str> {
        match self {
            DataKind::NotesAndMessages => Some("send_messages"),
            DataKind::CallRecords => Some("send_call_records"),
            DataKind::Documents => Some("send_documents"),
            DataKind::Statuses => Some("sync_statuses"),
            DataKind::MappedFields => Some("send_mapped_fields"),
            DataKind::Cases | DataKind::Clients => None,
        }
    }
}

/// Which kinds a CRM's connector moves at all, each way (what this version can do).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KindSupport {
    pub inbound: &'static [DataKind],
    pub outbound: &'static [DataKind],
    /// Whether status changes also need "Send data" (SmartAdvocate's "Send mapping").
    pub status_needs_send: bool,
}

/// One direction of one kind, as the settings leave it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Flow {
    On,
    /// Off, and the setting that turns it off (`direction`, `enable_integration`, a toggle).
    Off(&'static str),
    /// This CRM's connector does not move this kind this way.
    NotAvailable,
}

impl Flow {
    pub fn as_str(&self) -> &'static str {
        match self {
            Flow::On => "on",
            Flow::Off(_) => "off",
            Flow::NotAvailable => "not_available",
        }
    }

    pub fn off_by(&self) -> Option<&'static str> {
        match self {
            Flow::Off(by) => Some(by),
            _ => None,
        }
    }
}

impl Toggles {
    /// Selective sync (SYNC1): for each kind, whether it flows in and out now — read off the
    /// toggles, the direction and what the CRM supports, so it cannot disagree with them.
    pub fn selective(&self, support: &KindSupport) -> Vec<(DataKind, Flow, Flow)> {
        let off_in = if !self.enable_integration {
            Some("enable_integration")
        } else if !self.direction.receives() {
            Some("direction")
        } else if !self.receive {
            Some("receive")
        } else {
            None
        };
        let off_out = if !self.enable_integration {
            Some("enable_integration")
        } else if !self.direction.sends() {
            Some("direction")
        } else {
            None
        };
        DataKind::ALL
            .iter()
            .map(|&k| {
                let inbound = if !support.inbound.contains(&k) {
                    Flow::NotAvailable
                } else {
                    off_in.map_or(Flow::On, Flow::Off)
                };
                let outbound = if !support.outbound.contains(&k) {
                    Flow::NotAvailable
                } else if let Some(by) = off_out {
                    Flow::Off(by)
                } else {
                    match k.outbound_toggle() {
                        Some(t)
                            if !self.send
                                && (t != "sync_statuses" || support.status_needs_send) =>
                        {
                            Flow::Off("send")
                        }
                        Some(t) if !self.toggle(t) => Flow::Off(t),
                        _ => Flow::On,
                    }
                };
                (k, inbound, outbound)
            })
            .collect()
    }

    fn toggle(&self, name: &str) -> bool {
        match name {
            "send_messages" => self.send_messages,
            "send_call_records" => self.send_call_records,
            "send_documents" => self.send_documents,
            "sync_statuses" => self.sync_statuses,
            "send_mapped_fields" => self.send_mapped_fields,
            _ => false,
        }
    }
}

/// A platform value a CRM field can be mapped to.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum PlatformField {
    CaseName,
    ClientFirstName,
    ClientLastName,
    ClientEmail,
    ClientPhone,
    /// A case custom field by name.
    Custom(String),
}

impl PlatformField {
    pub fn parse(raw: &str) -> Result<Self, ValidationError> {
        let f = match raw {
            "case.name" => PlatformField::CaseName,
            "client.first_name" => PlatformField::ClientFirstName,
            "client.last_name" => PlatformField::ClientLastName,
            "client.email" => PlatformField::ClientEmail,
            "client.phone" => PlatformField::ClientPhone,
            other => match other.strip_prefix("custom.") {
                Some(k) if !k.is_empty() && k.chars().count() <= 100 => {
                    PlatformField::Custom(k.to_owned())
                }
                _ => {
                    return Err(ValidationError::single(
                        "platform_field",
                        format!(
                            "`{raw}` is not a platform field: use case.name, client.first_name, \
                             client.last_name, client.email, client.phone or custom.<name>"
                        ),
                    ))
                }
            },
        };
        Ok(f)
    }

    pub fn as_string(&self) -> String {
        match self {
            PlatformField::CaseName => "case.name".into(),
            PlatformField::ClientFirstName => "client.first_name".into(),
            PlatformField::ClientLastName => "client.last_name".into(),
            PlatformField::ClientEmail => "client.email".into(),
            PlatformField::ClientPhone => "client.phone".into(),
            PlatformField::Custom(k) => format!("custom.{k}"),
        }
    }
}

/// Which part of a CRM case's status a CRM status sets. A CRM with one status list (Law Ruler)
/// has only the primary status; SmartAdvocate also has second-status types (e.g. "Dialer
/// Status"), each holding one current value per case. A platform status maps to at most one CRM
/// status per slot: one primary status and one value of each second-status type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StatusSlot {
    /// The status a CRM record carries back (the one inbound records are matched by).
    Primary,
    /// A value of a second-status type.
    Second { type_id: String, type_name: String },
}

impl StatusSlot {
    /// The slot as stored with a mapping: empty for the primary status, else the type's id.
    pub fn key(&self) -> &str {
        match self {
            StatusSlot::Primary => "",
            StatusSlot::Second { type_id, .. } => type_id,
        }
    }

    pub fn is_primary(&self) -> bool {
        matches!(self, StatusSlot::Primary)
    }
}

/// Why a status mapping entry cannot stand beside an earlier entry (`first`, its index).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StatusMappingClash {
    /// The CRM status is mapped already: each CRM status maps from one platform status, so an
    /// arriving record's status names one.
    CrmStatusTaken { first: usize },
    /// The platform status has a primary CRM status already.
    TwoPrimaries { first: usize },
    /// The platform status has a value of this second-status type already.
    TwoValuesOfType { first: usize },
}

/// The status mapping entries checked so far, each with the slot its CRM status fills.
#[derive(Debug, Default)]
pub struct StatusMappingSet {
    seen: Vec<(usize, String, String, String)>,
}

impl StatusMappingSet {
    /// Adds entry `index` (platform status, CRM status, its slot) unless it clashes with an
    /// entry added before.
    pub fn add(
        &mut self,
        index: usize,
        case_status_id: &str,
        crm_status_id: &str,
        slot: &StatusSlot,
    ) -> Result<(), StatusMappingClash> {
        for (first, platform, crm, key) in &self.seen {
            let first = *first;
            if crm == crm_status_id {
                return Err(StatusMappingClash::CrmStatusTaken { first });
            }
            if platform == case_status_id && key == slot.key() {
                return Err(if slot.is_primary() {
                    StatusMappingClash::TwoPrimaries { first }
                } else {
                    StatusMappingClash::TwoValuesOfType { first }
                });
            }
        }
        self.seen.push((
            index,
            case_status_id.to_owned(),
            crm_status_id.to_owned(),
            slot.key().to_owned(),
        ));
        Ok(())
    }
}

/// A list's auto-add rule: a CRM record whose case type and/or status match is put on the list.
/// Each condition matches the CRM's id or name (names case-insensitively).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AutoAddRule {
    pub case_type: Option<String>,
    pub status: Option<String>,
}

/// A CRM value as it arrived: id and display name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CrmValue {
    pub id: String,
    pub name: String,
}

impl CrmValue {
    fn is(&self, wanted: &str) -> bool {
        let w = wanted.trim();
        self.id == w || self.name.trim().eq_ignore_ascii_case(w)
    }
}

impl AutoAddRule {
    pub fn parse(case_type: Option<&str>, status: Option<&str>) -> Result<Self, ValidationError> {
        let clean = |s: Option<&str>| {
            s.map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
        };
        let rule = Self {
            case_type: clean(case_type),
            status: clean(status),
        };
        if rule.case_type.is_none() && rule.status.is_none() {
            return Err(ValidationError::single(
                "case_type",
                "a rule needs a case type, a status, or both",
            ));
        }
        Ok(rule)
    }

    pub fn matches(&self, case_type: &CrmValue, status: &CrmValue) -> bool {
        self.case_type.as_deref().is_none_or(|c| case_type.is(c))
            && self.status.as_deref().is_none_or(|s| status.is(s))
    }
}

/// The setup checklist shown to admins (LR12).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Checklist {
    pub connected: bool,
    pub first_webhook_received: bool,
    pub case_types_linked: bool,
    pub sync_enabled: bool,
}

/// Why a CRM could not call the inbound webhook at `base` (the base of the URLs shown to admins),
/// or `None` when it may: a loopback host (`localhost`, `127.0.0.0/8`, `::1`) is reachable only
/// from the machine casebridge runs on.
pub fn unreachable_base_url(base: &str) -> Option<String> {
    let rest = base.split_once("://").map_or(base, |(_, r)| r);
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    let host_port = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let host = match host_port.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or_default(),
        None => host_port.split(':').next().unwrap_or_default(),
    };
    let host = host.trim_end_matches('.').to_ascii_lowercase();
    let loopback = host == "localhost"
        || host.ends_with(".localhost")
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback() || ip.is_unspecified());
    loopback.then(|| {
        format!(
            "the webhook URLs start with {base}, a loopback address that a CRM cannot reach; \
             set CASEBRIDGE_PUBLIC_URL to the address the CRM calls"
        )
    })
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SyncOutcome {
    Ok,
    Skipped,
    Error,
}

impl SyncOutcome {
    pub fn as_str(self) -> &'static str {
        match self {
            SyncOutcome::Ok => "ok",
            SyncOutcome::Skipped => "skipped",
            SyncOutcome::Error => "error",
        }
    }
}

/// Why a sync failed, so admins know whether to wait or to act (SYNC3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// Will pass on a retry (timeouts, rate limits, 5xx).
    Transient,
    /// Needs an admin: wrong credentials, missing mapping, integration off.
    Configuration,
    /// The record itself is unusable (missing required fields).
    Validation,
}

impl ErrorKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::Transient => "transient",
            ErrorKind::Configuration => "configuration",
            ErrorKind::Validation => "validation",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gates_follow_the_safe_order() {
        let mut t = Toggles {
            send_messages: true,
            receive: true,
            sync_statuses: true,
            ..Default::default()
        };
        assert!(!t.gates().receive);
        assert_eq!(t.inert(), ["receive", "send_messages", "sync_statuses"]);
        t.enable_integration = true;
        assert!(t.gates().receive && t.gates().sync_statuses);
        assert!(!t.gates().send_messages, "send data is off");
        t.send = true;
        assert!(t.gates().send_messages);
        assert!(t.inert().is_empty());
    }

    #[test]
    fn the_listed_toggles_follow_the_safe_order_and_name_their_gates() {
        let t = Toggles {
            send: true,
            ..Default::default()
        };
        let listed = t.listed();
        let keys: Vec<_> = listed.iter().map(|i| i.key).collect();
        assert_eq!(keys, Toggles::ORDER);
        assert_eq!(listed[0].label, "Enable Integration");
        assert!(listed[2].on && !listed[1].on);
        // A gate is always earlier in the order than what it gates.
        for (i, item) in listed.iter().enumerate() {
            for gate in item.gated_by {
                let at = keys.iter().position(|k| k == gate).unwrap();
                assert!(at < i, "{} is gated by the later {gate}", item.key);
            }
        }
        assert_eq!(listed[5].gated_by, ["enable_integration", "send"]);
    }

    #[test]
    fn loopback_base_urls_are_flagged() {
        for base in [
            "http://127.0.0.1:8080",
            "http://localhost:8080",
            "http://[::1]:8080",
            "https://app.localhost",
            "http://127.1.2.3",
        ] {
            let w = unreachable_base_url(base).expect(base);
            assert!(
                w.contains(base) && w.contains("CASEBRIDGE_PUBLIC_URL"),
                "{w}"
            );
        }
        for base in [
            "https://hooks.acme.test",
            "http://10.0.0.5:8080",
            "https://localhost.acme.test",
            "http://[2001:db8::1]:8080",
        ] {
            assert_eq!(unreachable_base_url(base), None, "{base}");
        }
    }

    #[test]
    fn platform_fields_parse_and_print() {
        for f in ["case.name", "client.phone", "custom.injury_date"] {
            assert_eq!(PlatformField::parse(f).unwrap().as_string(), f);
        }
        assert!(PlatformField::parse("custom.").is_err());
        assert!(PlatformField::parse("case.secret").is_err());
    }

    #[test]
    fn auto_add_rules_match_ids_or_names() {
        let ct = CrmValue {
            id: "12".into(),
            name: "Auto Accident".into(),
        };
        let st = CrmValue {
            id: "7".into(),
            name: "Intake".into(),
        };
        assert!(AutoAddRule::parse(Some("12"), None)
            .unwrap()
            .matches(&ct, &st));
        assert!(AutoAddRule::parse(Some("auto accident"), Some("INTAKE"))
            .unwrap()
            .matches(&ct, &st));
        assert!(!AutoAddRule::parse(Some("12"), Some("8"))
            .unwrap()
            .matches(&ct, &st));
        assert!(AutoAddRule::parse(None, Some(" ")).is_err());
    }

    #[test]
    fn selective_sync_is_read_off_the_toggles() {
        const SUPPORT: KindSupport = KindSupport {
            inbound: &[DataKind::Cases, DataKind::Statuses],
            outbound: &[DataKind::Statuses, DataKind::NotesAndMessages],
            status_needs_send: false,
        };
        let t = Toggles {
            enable_integration: true,
            receive: true,
            send: true,
            send_messages: false,
            sync_statuses: true,
            ..Toggles::default()
        };
        let flows = t.selective(&SUPPORT);
        let of = |k: DataKind| flows.iter().find(|(kk, _, _)| *kk == k).cloned().unwrap();
        assert_eq!(of(DataKind::Cases).1, Flow::On);
        assert_eq!(of(DataKind::Cases).2, Flow::NotAvailable);
        assert_eq!(of(DataKind::NotesAndMessages).2, Flow::Off("send_messages"));
        assert_eq!(of(DataKind::Statuses).2, Flow::On);
        assert_eq!(of(DataKind::Documents).1, Flow::NotAvailable);
        let inbound_only = Toggles {
            direction: Direction::OneWayIn,
            ..t
        };
        let flows = inbound_only.selective(&SUPPORT);
        assert!(flows
            .iter()
            .all(|(_, _, out)| matches!(out, Flow::Off("direction") | Flow::NotAvailable)));
        let off = Toggles {
            enable_integration: false,
            ..t
        };
        assert!(off
            .selective(&SUPPORT)
            .iter()
            .all(|(_, i, o)| i != &Flow::On && o != &Flow::On));
    }

    #[test]
    fn the_direction_caps_the_toggles() {
        let all = Toggles {
            enable_integration: true,
            receive: true,
            send: true,
            send_mapped_fields: true,
            send_messages: true,
            send_call_records: true,
            send_documents: true,
            sync_statuses: true,
            sync_enriched_phones: true,
            direction: Direction::Both,
            frequency: Frequency::RealTime,
            ..Toggles::default()
        };
        let g = all.gates();
        assert!(g.receive && g.send_messages && g.sync_statuses);
        let inbound = Toggles {
            direction: Direction::OneWayIn,
            ..all
        };
        let g = inbound.gates();
        assert!(g.receive);
        assert!(!(g.send_mapped_fields || g.send_messages || g.send_call_records));
        assert!(!(g.send_documents || g.sync_statuses), "nothing is sent");
        assert!(inbound.inert().contains(&"send"), "the admin is told");
        let outbound = Toggles {
            direction: Direction::OneWayOut,
            ..all
        };
        assert!(!outbound.gates().receive && outbound.gates().send_messages);
        assert_eq!(outbound.inert(), ["receive"]);
        // Stored settings from before the direction existed read as both ways.
        let old = Toggles::from_settings(
            &serde_json::json!({"enable_integration": true, "receive": true}),
        );
        assert_eq!(old.direction, Direction::Both);
        assert!(old.gates().receive);
        assert_eq!(
            Direction::parse("direction", "one_way_in").unwrap(),
            Direction::OneWayIn
        );
        assert!(Direction::parse("direction", "inbound").is_err());
    }

    fn t(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    #[test]
    fn the_frequency_reads_as_real_time_when_never_set_and_parses_its_names() {
        let old = Toggles::from_settings(&serde_json::json!({"enable_integration": true}));
        assert_eq!(old.frequency, Frequency::RealTime);
        assert!(old.enable_integration, "the other toggles still read");
        let set = Toggles::from_settings(&serde_json::json!({"frequency": "daily"}));
        assert_eq!(set.frequency, Frequency::Daily);
        for f in Frequency::ALL {
            assert_eq!(Frequency::parse("frequency", f.as_str()).unwrap(), f);
        }
        let e = Frequency::parse("frequency", "weekly").unwrap_err();
        assert_eq!(e.errors[0].field, "frequency");
        assert_eq!(
            serde_json::to_value(Frequency::RealTime).unwrap(),
            "real_time"
        );
    }

    #[test]
    fn the_next_run_is_the_anchor_plus_whole_intervals_after_now() {
        let anchor = Some(t("2025-01-15T12:00:00Z"));
        let h = Frequency::Hourly;
        assert_eq!(
            Frequency::RealTime.next_run(anchor, t("2025-01-15T12:00:00Z")),
            None
        );
        assert_eq!(
            h.next_run(Some(t("2025-01-15T13:00:00Z")), t("2025-01-15T12:10:00Z")),
            Some(t("2025-01-15T13:00:00Z")),
            "a future anchor is the next run"
        );
        assert_eq!(
            h.next_run(anchor, t("2025-01-15T12:00:00Z")),
            Some(t("2025-01-15T13:00:00Z")),
            "at the run itself the next one is an interval on"
        );
        assert_eq!(
            h.next_run(anchor, t("2025-01-15T15:59:59.999Z")),
            Some(t("2025-01-15T16:00:00Z")),
            "missed runs are skipped, the cadence is kept"
        );
        assert_eq!(
            Frequency::Daily.next_run(anchor, t("2025-01-16T11:59:00Z")),
            Some(t("2025-01-16T12:00:00Z"))
        );
        let now = t("2025-01-15T12:34:00Z");
        assert_eq!(
            h.next_run(None, now),
            Some(now),
            "no anchor holds nothing back"
        );
    }

    #[test]
    fn a_platform_status_maps_to_one_crm_status_per_slot() {
        let primary = StatusSlot::Primary;
        let dialer = StatusSlot::Second {
            type_id: "10".into(),
            type_name: "Dialer Status".into(),
        };
        let grade = StatusSlot::Second {
            type_id: "20".into(),
            type_name: "Grade".into(),
        };
        let mut set = StatusMappingSet::default();
        assert_eq!(set.add(0, "signed", "2", &primary), Ok(()));
        assert_eq!(set.add(1, "signed", "10:103", &dialer), Ok(()));
        assert_eq!(set.add(2, "signed", "20:201", &grade), Ok(()));
        assert_eq!(set.add(3, "intake", "1", &primary), Ok(()));
        assert_eq!(set.add(4, "intake", "10:101", &dialer), Ok(()));
        assert_eq!(
            set.add(5, "signed", "3", &primary),
            Err(StatusMappingClash::TwoPrimaries { first: 0 })
        );
        assert_eq!(
            set.add(6, "signed", "10:102", &dialer),
            Err(StatusMappingClash::TwoValuesOfType { first: 1 })
        );
        assert_eq!(
            set.add(7, "rejected", "10:103", &dialer),
            Err(StatusMappingClash::CrmStatusTaken { first: 1 })
        );
        assert_eq!(
            set.add(8, "rejected", "1", &primary),
            Err(StatusMappingClash::CrmStatusTaken { first: 3 })
        );
        // Refused entries are not remembered: a later entry clashes with the first one.
        assert_eq!(
            set.add(9, "signed", "3", &primary),
            Err(StatusMappingClash::TwoPrimaries { first: 0 })
        );
        assert_eq!(primary.key(), "");
        assert_eq!(dialer.key(), "10");
    }
}
