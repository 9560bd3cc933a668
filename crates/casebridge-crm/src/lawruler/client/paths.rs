//! Where each Law Ruler endpoint lives, relative to the Client Root.

use serde::Deserialize;

/// The path of every Law Ruler endpoint the client calls, relative to the Client Root.
///
/// `lead_api` and `campaign_api` come from Law Ruler's public lead-API guide and the seeds.
/// Everything else is the **modelled** Advanced API: Law Ruler does not publish it, so these
/// paths are our model and are configuration, not constants — a correction is a setting, not a
/// code change. `{case_type_id}` and `{lead_id}` are replaced (the id must be a plain token of
/// letters, digits, `-`, `_` or `.`).
///
/// Deserialises from configuration; a missing key keeps its default.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LawRulerPaths {
    /// Public: `POST` form-encoded lead create / update / `Operation=GetStatus`.
    pub lead_api: String,
    /// Public (seed LR10): `POST` the Voice AI call result.
    pub campaign_api: String,
    /// Modelled: `POST` form `username`, `password`, `client_secret` → bearer token.
    pub token: String,
    /// Modelled: `GET` → `[{"id","name"}]`.
    pub case_types: String,
    /// Modelled: `GET` → `[{"id","name"}]`.
    pub statuses: String,
    /// Modelled: `GET` → `[{"id","key","label","inputType","formSection"}]`; has `{case_type_id}`.
    pub custom_fields: String,
    /// Modelled: `POST` JSON note; has `{lead_id}`.
    pub notes: String,
    /// Modelled: `POST` multipart document; has `{lead_id}`.
    pub documents: String,
    /// Modelled: `GET ?changedSince=RFC3339` → leads changed since then.
    pub leads_changed: String,
    /// Modelled: `GET ?changedSince=RFC3339` → notes added since then.
    pub notes_changed: String,
}

impl Default for LawRulerPaths {
    fn default() -> Self {
        Self {
            lead_api: "/api-legalcrmapp.aspx".into(),
            campaign_api: "/api-legalrcampaign.aspx".into(),
            token: "/api/v2/token".into(),
            case_types: "/api/v2/casetypes".into(),
            statuses: "/api/v2/statuses".into(),
            custom_fields: "/api/v2/casetypes/{case_type_id}/customfields".into(),
            notes: "/api/v2/leads/{lead_id}/notes".into(),
            documents: "/api/v2/leads/{lead_id}/documents".into(),
            leads_changed: "/api/v2/leads".into(),
            notes_changed: "/api/v2/notes".into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partial_configuration_keeps_the_other_defaults() {
        let paths: LawRulerPaths = serde_json::from_str(
            r#"{"token": "/oauth/token", "notes": "/v3/leads/{lead_id}/notes"}"#,
        )
        .unwrap();
        assert_eq!(paths.token, "/oauth/token");
        assert_eq!(paths.notes, "/v3/leads/{lead_id}/notes");
        assert_eq!(paths.lead_api, LawRulerPaths::default().lead_api);
    }

    #[test]
    fn unknown_keys_are_rejected() {
        assert!(serde_json::from_str::<LawRulerPaths>(r#"{"tokne": "/x"}"#).is_err());
    }
}
