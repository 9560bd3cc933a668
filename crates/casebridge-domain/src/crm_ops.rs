//! Outbound CRM operations (the CRM outbox): what casebridge sends to a CRM, why, and where each
//! one stands. Provider-neutral vocabulary; the provider adapters build the payloads.
//!
//! Lifecycle of an operation:
//! - created `pending` (with a job on the `crm` queue, ordered by the CRM record) in the
//!   transaction of the platform change that caused it, or `held` when it is a status change and
//!   status sync is off (LR11);
//! - `held` → `skipped` (Non-Retroactive resume) or `pending` (Retroactive resume, in order);
//! - `pending` → `done`, `failed` (the CRM refused it; retrying the same request cannot help),
//!   `skipped` (its toggle was turned off before it was sent) or `blocked` (the connection is
//!   misconfigured; it waits for the admin to fix it);
//! - `blocked` → `pending` when the connection is saved again.
//!
//! Nothing leaves `pending` because of a transient failure: those are retried without limit.

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use crate::integrations::Gates;

text_enum!(
    /// What an operation carries, which decides the toggle that governs it (LR9).
    OpKind {
        MappedFields => "mapped_fields",
        Status => "status",
        Message => "message",
        CallRecord => "call_record",
        Document => "document",
    }
);

text_enum!(
    OpState {
        Held => "held",
        Pending => "pending",
        Done => "done",
        Skipped => "skipped",
        Failed => "failed",
        Blocked => "blocked",
    }
);

impl OpKind {
    /// Whether the toggles let this kind be sent now.
    pub fn allowed(self, gates: &Gates) -> bool {
        match self {
            OpKind::MappedFields => gates.send_mapped_fields,
            OpKind::Status => gates.sync_statuses,
            OpKind::Message => gates.send_messages,
            OpKind::CallRecord => gates.send_call_records,
            OpKind::Document => gates.send_documents,
        }
    }

    /// The toggle's name, for messages: "send_messages is off".
    pub fn toggle(self) -> &'static str {
        match self {
            OpKind::MappedFields => "send_mapped_fields",
            OpKind::Status => "sync_statuses",
            OpKind::Message => "send_messages",
            OpKind::CallRecord => "send_call_records",
            OpKind::Document => "send_documents",
        }
    }
}

impl OpState {
    /// States an operation never leaves.
    pub fn is_final(self) -> bool {
        matches!(self, OpState::Done | OpState::Skipped | OpState::Failed)
    }
}

/// What to send. The payload is computed when the operation is created, so a later edit of the
/// record does not change what an earlier operation sends (order per record is kept).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum OpAction {
    /// Update the CRM record's fields (`name → value`; an empty value clears the field).
    UpdateFields { fields: Vec<(String, String)> },
    /// Set the CRM record's status.
    SetStatus {
        crm_status_id: String,
        crm_status_name: String,
        /// The platform status this sends, when it is a platform status change written to the
        /// CRM's primary status: once sent, the two are the field's agreed base (SYNC2).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        case_status_id: Option<String>,
    },
    /// Add a note.
    AddNote {
        category: String,
        subject: String,
        body: String,
        /// The note's time as shown in the CRM.
        noted_at: Timestamp,
    },
    /// The Voice AI call result (Law Ruler campaign API), as ordered parameters.
    CallResult { params: Vec<(String, String)> },
    /// Upload a stored document.
    UploadDocument {
        document_id: String,
        folder: String,
        /// `File` or `Recording`.
        form_field: String,
        file_name: String,
        /// Send as MP3, transcoding if needed (recordings).
        as_mp3: bool,
        created_at: Timestamp,
    },
}

impl OpAction {
    /// A short label for logs and the sync log: `update fields`, `add note "Subject"`, ….
    pub fn describe(&self) -> String {
        match self {
            OpAction::UpdateFields { fields } => {
                let names: Vec<&str> = fields.iter().map(|(k, _)| k.as_str()).collect();
                format!("update fields {}", names.join(", "))
            }
            OpAction::SetStatus {
                crm_status_name, ..
            } => format!("set status \"{crm_status_name}\""),
            OpAction::AddNote { subject, .. } => format!("add note \"{subject}\""),
            OpAction::CallResult { .. } => "send call result".into(),
            OpAction::UploadDocument { file_name, .. } => format!("upload \"{file_name}\""),
        }
    }
}

/// How an admin turns status sync back on (LR11).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ResumeMode {
    /// Drop the status changes queued while sync was off; sync only new ones (the default).
    #[default]
    NonRetroactive,
    /// Replay the queued status changes in order. They may overwrite newer CRM statuses.
    Retroactive,
}

impl ResumeMode {
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "non_retroactive" => Some(ResumeMode::NonRetroactive),
            "retroactive" => Some(ResumeMode::Retroactive),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::integrations::Toggles;

    #[test]
    fn each_kind_follows_its_own_toggle() {
        let all_on = Toggles {
            enable_integration: true,
            receive: true,
            send: true,
            send_mapped_fields: true,
            send_messages: true,
            send_call_records: true,
            send_documents: true,
            sync_statuses: true,
            ..Toggles::default()
        };
        for kind in OpKind::ALL {
            assert!(kind.allowed(&all_on.gates()), "{kind}");
            let mut t = all_on;
            match kind {
                OpKind::MappedFields => t.send_mapped_fields = false,
                OpKind::Status => t.sync_statuses = false,
                OpKind::Message => t.send_messages = false,
                OpKind::CallRecord => t.send_call_records = false,
                OpKind::Document => t.send_documents = false,
            }
            assert!(!kind.allowed(&t.gates()), "{kind} with its toggle off");
            let others_off = OpKind::ALL
                .iter()
                .filter(|k| *k != kind)
                .all(|k| k.allowed(&t.gates()));
            assert!(others_off, "turning off {kind} leaves the others on");
        }
        let mut t = all_on;
        t.enable_integration = false;
        assert!(OpKind::ALL.iter().all(|k| !k.allowed(&t.gates())));
    }

    #[test]
    fn payloads_round_trip_through_json() {
        let a = OpAction::AddNote {
            category: "Client Communications".into(),
            subject: "Call Analysis Summary".into(),
            body: "x".into(),
            noted_at: "2026-01-01T00:00:00Z".parse().unwrap(),
        };
        let v = serde_json::to_value(&a).unwrap();
        assert_eq!(v["action"], "add_note");
        assert_eq!(serde_json::from_value::<OpAction>(v).unwrap(), a);
    }
}
