//! Where each CaseSyncAPI endpoint lives, relative to `{base URL}/CaseSyncAPI`.

use serde::{Deserialize, Serialize};

/// The path of every CaseSyncAPI endpoint the client calls, relative to
/// `{base URL}/CaseSyncAPI`.
///
/// `authenticate`, `case_info`, `notes_by_case_number` and `notes_by_case_id` are documented in
/// SmartAdvocate's knowledge base; `contact_lookup`, `case_contacts`, `create_case`,
/// `documents_by_date` and `document_content` are seen in public client code. The rest is **modelled** (no public path was found). All are
/// configuration (`[smartadvocate_paths]`), not constants: a correction is a setting, not a
/// code change. `{case_id}`, `{case_type_id}`, `{status_type_id}` and `{document_id}` are
/// replaced (the id must be a plain token of letters, digits, `-`, `_` or `.`).
///
/// Deserialises from configuration; a missing key keeps its default, an unknown key is an error.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SmartAdvocatePaths {
    /// Documented: `POST {"Username","Password"}` → `{"username","userID","token"}`.
    pub authenticate: String,
    /// Documented: `GET ?Casenumber=` (SQL `LIKE`) → an array of cases.
    pub case_info: String,
    /// Documented: `GET ?CaseNumber=` → the case's notes.
    pub notes_by_case_number: String,
    /// Documented: `GET` → the case's notes (the same records); has `{case_id}`.
    pub notes_by_case_id: String,
    /// Seen in code: `POST` the intake fields (`firstName, lastName, email, phone, …,
    /// CaseTypeID`) → `{caseID, caseNumber}`: a new case, or (modelled on SmartAdvocate's Simple
    /// HTTP POST) the case created in the last 3 days with the same email or phone.
    pub create_case: String,
    /// Seen in code: `GET` → the case's contacts (read tolerantly, as the contact lookup); has
    /// `{case_id}`.
    pub case_contacts: String,
    /// Modelled: `POST` JSON note; has `{case_id}`.
    pub insert_note: String,
    /// Seen in code: `GET ?Name=&FirstName=&LastName=&FirstPage=&RowLimit=` → contacts.
    pub contact_lookup: String,
    /// Modelled: `GET` → `[{caseTypeID, caseTypeName}]`.
    pub case_types: String,
    /// Modelled: `GET` → `[{statusTypeID, statusTypeName}]`.
    pub status_types: String,
    /// Modelled: `GET` → `[{statusID, statusName}]`; has `{status_type_id}`.
    pub statuses: String,
    /// Modelled: `GET` → `[{udfID, udfName, udfShortName, udfType, udfGroup}]`; has
    /// `{case_type_id}`.
    pub udfs: String,
    /// Modelled: `GET` → `[{udfID, udfName, value}]`; has `{case_id}`.
    pub case_udfs: String,
    /// Modelled: `PUT {statusTypeID, statusID}` sets one status type's current value (the
    /// primary status or a second status); has `{case_id}`.
    pub set_status: String,
    /// Modelled: `PUT [{udfName, value}]` sets UDF values by exact name; has `{case_id}`.
    pub set_udfs: String,
    /// Modelled on the documented documents search (`POST /case/documents/byDatePaged`): `POST
    /// {modifiedFromDateTime, pageRequest{currentPage, pageSize}, addContactInfo}` → `{records:
    /// [CaseInfo…]}`, the cases modified since a time, oldest change first (SA4 pull).
    pub cases_by_date: String,
    /// Modelled: the same search over notes (records are notes with `modifiedDate`).
    pub notes_by_date: String,
    /// Modelled: the same search over contacts (records are contacts with `modifiedDate`).
    pub contacts_by_date: String,
    /// Seen in code: `POST {modifiedFromDateTime, modifiedToDateTime, caseNumbers[],
    /// pageRequest{currentPage, pageSize}}` → the documents modified in that range (a bare
    /// array, `{records}` or `{documents, pageRequest}`).
    pub documents_by_date: String,
    /// Seen in code: `GET` → a document's raw bytes (often `application/octet-stream`, possibly
    /// empty); has `{document_id}`.
    pub document_content: String,
}

impl Default for SmartAdvocatePaths {
    fn default() -> Self {
        Self {
            authenticate: "/Users/authenticate".into(),
            case_info: "/case/CaseInfo".into(),
            notes_by_case_number: "/case/notes/byCaseNumber".into(),
            notes_by_case_id: "/case/{case_id}/notes".into(),
            create_case: "/case/CreateCase".into(),
            case_contacts: "/case/{case_id}/contacts".into(),
            insert_note: "/case/{case_id}/notes".into(),
            contact_lookup: "/Search/contactLookup".into(),
            case_types: "/case/CaseTypes".into(),
            status_types: "/case/StatusTypes".into(),
            statuses: "/case/StatusTypes/{status_type_id}/Statuses".into(),
            udfs: "/case/CaseTypes/{case_type_id}/UDFs".into(),
            case_udfs: "/case/{case_id}/UDFs".into(),
            set_status: "/case/{case_id}/status".into(),
            set_udfs: "/case/{case_id}/UDFs".into(),
            cases_by_date: "/case/byDatePaged".into(),
            notes_by_date: "/case/notes/byDatePaged".into(),
            contacts_by_date: "/contact/byDatePaged".into(),
            documents_by_date: "/case/documents/byDatePaged".into(),
            document_content: "/case/document/{document_id}/content".into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partial_configuration_keeps_the_other_defaults() {
        let paths: SmartAdvocatePaths =
            serde_json::from_str(r#"{"udfs": "/case/udf/{case_type_id}"}"#).unwrap();
        assert_eq!(paths.udfs, "/case/udf/{case_type_id}");
        assert_eq!(paths.case_info, SmartAdvocatePaths::default().case_info);
        assert!(serde_json::from_str::<SmartAdvocatePaths>(r#"{"udf": "/x"}"#).is_err());
    }
}
