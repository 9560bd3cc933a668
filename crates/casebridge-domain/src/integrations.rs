//! CRM integrations, provider-neutral: toggles and their gates, the setup checklist, mapping
//! targets, list auto-add rules, and the sync log's vocabulary.

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
