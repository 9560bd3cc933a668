//! Two-way sync of one field (SYNC2): the last value both sides agreed on (the base), what
//! changed since, and who wins when both did. Pure: the CRM crate reads the values and applies
//! the decision.
//!
//! A side has changed when its value differs from the base. A conflict is when both changed and
//! now differ. The echo of casebridge's own write is not a change: a write that went through
//! moves the base to the value written, so the CRM answering with that value again changed
//! nothing.

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use crate::error::ValidationError;

/// What wins when both sides changed a field (SYNC1's conflict resolution).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ConflictRule {
    /// The platform's value is kept and sent to the CRM.
    PlatformWins,
    /// The CRM's value is applied to the platform; the platform's unsent change is dropped.
    CrmWins,
    /// The side whose change is newer wins; when a side has no change time, the CRM wins (the
    /// fallback, recorded as the rule that fired).
    #[default]
    MostRecent,
}

impl ConflictRule {
    pub const ALL: [ConflictRule; 3] = [
        ConflictRule::PlatformWins,
        ConflictRule::CrmWins,
        ConflictRule::MostRecent,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ConflictRule::PlatformWins => "platform_wins",
            ConflictRule::CrmWins => "crm_wins",
            ConflictRule::MostRecent => "most_recent",
        }
    }

    /// What an admin reads next to the setting.
    pub fn label(self) -> &'static str {
        match self {
            ConflictRule::PlatformWins => "Platform wins",
            ConflictRule::CrmWins => "CRM wins",
            ConflictRule::MostRecent => {
                "Most recent change wins (when a side has no change time: CRM wins)"
            }
        }
    }

    pub fn parse(field: &str, raw: &str) -> Result<Self, ValidationError> {
        Self::ALL
            .into_iter()
            .find(|r| r.as_str() == raw)
            .ok_or_else(|| {
                ValidationError::single(field, "must be platform_wins, crm_wins or most_recent")
            })
    }
}

/// How one mapped field syncs (a field mapping's rule; HubSpot's model, with the mirrored
/// platform rules). Neither CRM's records carry mapped fields back today, so a rule decides what
/// casebridge sends; the CRM-side rules are also what will decide what it takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FieldRule {
    /// The CRM's value wins unless it is blank: casebridge writes the field only while the CRM
    /// holds no value of it as far as casebridge knows (it never sent one).
    PreferCrmUnlessBlank,
    /// The CRM owns the field: casebridge never writes it.
    AlwaysCrm,
    /// The most recent change wins, both ways (the default).
    #[default]
    TwoWay,
    /// The platform's value wins unless it is blank: a cleared platform value does not clear
    /// the CRM's.
    PreferPlatformUnlessBlank,
    /// The platform owns the field: every change is written, blanks included.
    AlwaysPlatform,
    /// The field is ignored both ways.
    DontSync,
}

impl FieldRule {
    pub const ALL: [FieldRule; 6] = [
        FieldRule::PreferCrmUnlessBlank,
        FieldRule::AlwaysCrm,
        FieldRule::TwoWay,
        FieldRule::PreferPlatformUnlessBlank,
        FieldRule::AlwaysPlatform,
        FieldRule::DontSync,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            FieldRule::PreferCrmUnlessBlank => "prefer_crm_unless_blank",
            FieldRule::AlwaysCrm => "always_crm",
            FieldRule::TwoWay => "two_way",
            FieldRule::PreferPlatformUnlessBlank => "prefer_platform_unless_blank",
            FieldRule::AlwaysPlatform => "always_platform",
            FieldRule::DontSync => "dont_sync",
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            FieldRule::PreferCrmUnlessBlank => "Prefer CRM unless blank",
            FieldRule::AlwaysCrm => "Always use CRM",
            FieldRule::TwoWay => "Two-way",
            FieldRule::PreferPlatformUnlessBlank => "Prefer platform unless blank",
            FieldRule::AlwaysPlatform => "Always use platform",
            FieldRule::DontSync => "Don't sync",
        }
    }

    pub fn parse(field: &str, raw: &str) -> Result<Self, ValidationError> {
        Self::ALL
            .into_iter()
            .find(|r| r.as_str() == raw)
            .ok_or_else(|| {
                ValidationError::single(
                    field,
                    "must be prefer_crm_unless_blank, always_crm, two_way, \
                     prefer_platform_unless_blank, always_platform or dont_sync",
                )
            })
    }

    /// Whether a changed platform value `value` is written to the CRM; `crm_has_value`: the
    /// CRM holds a value of the field as far as casebridge knows. `None` when it is; otherwise
    /// why not, for the sync log.
    pub fn withholds(self, value: &str, crm_has_value: bool) -> Option<&'static str> {
        match self {
            FieldRule::TwoWay | FieldRule::AlwaysPlatform => None,
            FieldRule::AlwaysCrm => Some("the CRM owns it (always use CRM)"),
            FieldRule::DontSync => Some("it is not synced (don't sync)"),
            FieldRule::PreferPlatformUnlessBlank if value.trim().is_empty() => {
                Some("a blank value does not overwrite the CRM's (prefer platform unless blank)")
            }
            FieldRule::PreferPlatformUnlessBlank => None,
            FieldRule::PreferCrmUnlessBlank if crm_has_value => {
                Some("the CRM already has a value (prefer CRM unless blank)")
            }
            FieldRule::PreferCrmUnlessBlank => None,
        }
    }
}

text_enum!(
    /// What syncing one record did (SYNC3's measured counters): inbound `created`, `updated`,
    /// `unchanged`, `skipped` or `failed`; outbound `sent`, `skipped` or `failed`.
    RecordOutcome {
        Created => "created",
        Updated => "updated",
        Unchanged => "unchanged",
        Skipped => "skipped",
        Failed => "failed",
        Sent => "sent",
    }
);

/// The side a conflict was decided for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Side {
    Platform,
    Crm,
}

impl Side {
    pub fn as_str(self) -> &'static str {
        match self {
            Side::Platform => "platform",
            Side::Crm => "crm",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "platform" => Some(Side::Platform),
            "crm" => Some(Side::Crm),
            _ => None,
        }
    }
}

/// The last value both sides agreed on, each in its own side's terms (a platform status id and
/// the CRM status id it was sent as, say).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Base {
    pub platform: Option<String>,
    pub crm: Option<String>,
}

/// One field as it stands, for [`decide`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldState<'a> {
    pub base: Option<&'a Base>,
    /// The platform's value now.
    pub platform: Option<&'a str>,
    /// The CRM's value now.
    pub crm: Option<&'a str>,
    /// The CRM's value in platform terms (what applying it would set).
    pub crm_as_platform: Option<&'a str>,
    /// When the platform's value last changed, if known.
    pub platform_changed_at: Option<Timestamp>,
    /// When the CRM's value last changed, if the CRM says.
    pub crm_changed_at: Option<Timestamp>,
}

/// What to do with a field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// The CRM did not change it: leave the platform's value (its own change, if any, goes out
    /// through the outbox).
    Keep,
    /// Only the CRM changed it, or there is no base yet: apply the CRM's value, which becomes
    /// the base.
    TakeCrm,
    /// Both changed to the same value: nothing to apply; that value is the base.
    Agreed,
    /// Both changed and differ.
    Conflict(Resolved),
}

/// How a conflict was decided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolved {
    pub winner: Side,
    /// The rule that fired, as recorded: `platform_wins`, `crm_wins`, `most_recent`, or
    /// `most_recent, fallback crm_wins (…)` when a change time was missing.
    pub rule: String,
}

/// Decides one field (see the module's rules). With no base yet (the record's first sync) the
/// CRM's value is taken, as every sync did before bases were kept.
pub fn decide(s: &FieldState<'_>, rule: ConflictRule) -> Decision {
    let Some(base) = s.base else {
        return if s.platform == s.crm_as_platform {
            Decision::Agreed
        } else {
            Decision::TakeCrm
        };
    };
    let crm_changed = s.crm != base.crm.as_deref();
    if !crm_changed {
        return Decision::Keep;
    }
    let platform_changed = s.platform != base.platform.as_deref();
    if !platform_changed {
        return Decision::TakeCrm;
    }
    if s.platform == s.crm_as_platform {
        return Decision::Agreed;
    }
    let resolved = match rule {
        ConflictRule::PlatformWins => Resolved {
            winner: Side::Platform,
            rule: rule.as_str().into(),
        },
        ConflictRule::CrmWins => Resolved {
            winner: Side::Crm,
            rule: rule.as_str().into(),
        },
        ConflictRule::MostRecent => match (s.platform_changed_at, s.crm_changed_at) {
            (Some(p), Some(c)) => Resolved {
                // A tie goes to the CRM, as the fallback does.
                winner: if p > c { Side::Platform } else { Side::Crm },
                rule: rule.as_str().into(),
            },
            (p, c) => {
                let missing = match (p, c) {
                    (None, None) => "neither side has a change time",
                    (None, _) => "the platform's change time is unknown",
                    _ => "the CRM gave no change time",
                };
                Resolved {
                    winner: Side::Crm,
                    rule: format!("most_recent, fallback crm_wins ({missing})"),
                }
            }
        },
    };
    Decision::Conflict(resolved)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn base(p: &str, c: &str) -> Base {
        Base {
            platform: Some(p.into()),
            crm: Some(c.into()),
        }
    }

    fn state<'a>(b: Option<&'a Base>, p: &'a str, c: &'a str, c_as_p: &'a str) -> FieldState<'a> {
        FieldState {
            base: b,
            platform: Some(p),
            crm: Some(c),
            crm_as_platform: Some(c_as_p),
            platform_changed_at: None,
            crm_changed_at: None,
        }
    }

    #[test]
    fn only_one_side_changing_is_not_a_conflict() {
        let b = base("P1", "C1");
        // The CRM's value is the base: whatever the platform did stays.
        assert_eq!(
            decide(&state(Some(&b), "P2", "C1", "P1"), ConflictRule::CrmWins),
            Decision::Keep
        );
        // Only the CRM changed.
        assert_eq!(
            decide(
                &state(Some(&b), "P1", "C2", "P2"),
                ConflictRule::PlatformWins
            ),
            Decision::TakeCrm
        );
        // Both moved to the same value.
        assert_eq!(
            decide(
                &state(Some(&b), "P2", "C2", "P2"),
                ConflictRule::PlatformWins
            ),
            Decision::Agreed
        );
    }

    #[test]
    fn the_echo_of_our_own_write_is_no_change() {
        // The platform moved to P2, sent as C2; the write went through, so the base moved.
        let b = base("P2", "C2");
        assert_eq!(
            decide(&state(Some(&b), "P2", "C2", "P2"), ConflictRule::CrmWins),
            Decision::Keep
        );
    }

    #[test]
    fn each_rule_decides_a_conflict() {
        let b = base("P1", "C1");
        let s = state(Some(&b), "P2", "C3", "P3");
        let winner = |rule, s: &FieldState<'_>| match decide(s, rule) {
            Decision::Conflict(r) => (r.winner, r.rule),
            other => panic!("{other:?}"),
        };
        assert_eq!(
            winner(ConflictRule::PlatformWins, &s),
            (Side::Platform, "platform_wins".into())
        );
        assert_eq!(
            winner(ConflictRule::CrmWins, &s),
            (Side::Crm, "crm_wins".into())
        );
        let t = |s: &str| s.parse::<Timestamp>().unwrap();
        let newer_platform = FieldState {
            platform_changed_at: Some(t("2026-01-02T00:00:00Z")),
            crm_changed_at: Some(t("2026-01-01T00:00:00Z")),
            ..s.clone()
        };
        assert_eq!(
            winner(ConflictRule::MostRecent, &newer_platform),
            (Side::Platform, "most_recent".into())
        );
        let newer_crm = FieldState {
            platform_changed_at: Some(t("2026-01-01T00:00:00Z")),
            crm_changed_at: Some(t("2026-01-02T00:00:00Z")),
            ..s.clone()
        };
        assert_eq!(winner(ConflictRule::MostRecent, &newer_crm).0, Side::Crm);
        let no_crm_time = FieldState {
            platform_changed_at: Some(t("2026-01-02T00:00:00Z")),
            ..s.clone()
        };
        assert_eq!(
            winner(ConflictRule::MostRecent, &no_crm_time),
            (
                Side::Crm,
                "most_recent, fallback crm_wins (the CRM gave no change time)".into()
            )
        );
    }

    #[test]
    fn a_first_sync_takes_the_crm_value() {
        assert_eq!(
            decide(&state(None, "P1", "C2", "P2"), ConflictRule::PlatformWins),
            Decision::TakeCrm
        );
        assert_eq!(
            decide(&state(None, "P2", "C2", "P2"), ConflictRule::PlatformWins),
            Decision::Agreed
        );
    }

    #[test]
    fn field_rules_decide_what_is_sent() {
        use FieldRule::*;
        for (rule, value, crm_has, sent) in [
            (TwoWay, "", true, true),
            (AlwaysPlatform, "", true, true),
            (AlwaysCrm, "x", false, false),
            (DontSync, "x", false, false),
            (PreferPlatformUnlessBlank, "x", true, true),
            (PreferPlatformUnlessBlank, " ", true, false),
            (PreferCrmUnlessBlank, "x", false, true),
            (PreferCrmUnlessBlank, "x", true, false),
        ] {
            assert_eq!(
                rule.withholds(value, crm_has).is_none(),
                sent,
                "{rule:?} {value:?} {crm_has}"
            );
        }
        for r in FieldRule::ALL {
            assert_eq!(FieldRule::parse("rule", r.as_str()).unwrap(), r);
        }
        assert!(FieldRule::parse("rule", "sometimes").is_err());
    }

    #[test]
    fn rules_parse_and_name_the_field() {
        for r in ConflictRule::ALL {
            assert_eq!(ConflictRule::parse("f", r.as_str()).unwrap(), r);
        }
        let e = ConflictRule::parse("conflict_resolution", "newest").unwrap_err();
        assert_eq!(e.errors[0].field, "conflict_resolution");
    }
}
