//! SmartAdvocate's documents, pulled into the platform's documents (the last step of
//! [`pull`](super::pull)).
//!
//! **What.** Each document the documents search returns (changed since the documents cursor,
//! less the overlap) belongs to a case by case number. For a case casebridge has (external ref
//! `smartadvocate`, the case number), its content is read (`GET …/document/{id}/content`),
//! spooled to disk (never whole in memory, at most [`FILE_LIMIT_BYTES`]), its content type
//! sniffed from its magic bytes (SmartAdvocate answers `application/octet-stream` whatever the
//! file is; a name without an extension gets the sniffed one), and stored as a document of the
//! case through the object store's order: key reserved, object written, row committed with the
//! reservation claimed. `crm_documents` keeps which platform document each SmartAdvocate
//! `documentID` became, so:
//! - a document read again at the same `modifiedDate` is `unchanged` without reading its
//!   content;
//! - a newer `modifiedDate` reads the content again: the same bytes and name are `unchanged`,
//!   others replace the stored document's file (`updated`: the same platform document, never a
//!   second one; the old object is handed to the sweep in the transaction that stops naming it).
//!
//! **Skipped**, each with a sync-log line saying why (once per version, not at every re-read):
//! a document of a case casebridge does not have (pulled or imported cases only; it is stored
//! when it is read again after its case arrived, i.e. when it changes or is still inside the
//! overlap); a zero-byte document (the platform keeps no empty files, as an empty upload is
//! refused; one already stored keeps its last content); one larger than the file limit.
//!
//! **Failures.** The cursor never passes a document whose content could not be read: it stops
//! at that document's change time, so the next pull reads it again. A 429, 5xx, timeout or a
//! body cut off fails the pull (retried by the job, `Retry-After` honoured). A permission the
//! API user lacks (documents search or content) stops the documents for this pull with the
//! reason in its summary line, and does not touch the connection's configuration error, since
//! cases, contacts and notes still pull and pushes still go. Any other refusal (say a `404`
//! for a document deleted meanwhile) is logged for that document and the others go on.

use std::collections::HashMap;
use std::path::Path;

use casebridge_domain::clock::Clock;
use casebridge_domain::ids::{CaseId, CompanyId};
use casebridge_domain::integrations::{ErrorKind, SyncOutcome};
use casebridge_files::{Files, FilesError, ObjectKey, SpoolError, Spooled, FILE_LIMIT_BYTES};
use casebridge_store::crm_documents::{self, CrmDocument, Handled};
use casebridge_store::documents::{self, DocumentKind, NewDocument, NewVersion};
use casebridge_store::{cases, integrations, Store, StoreError};
use jiff::Timestamp;

use super::client::{Document, Modified, SmartAdvocateClient, SmartAdvocateError};
use super::PROVIDER;
use crate::pull::entry;

/// Why a document was not stored, as `crm_documents.skipped` keeps it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Skip {
    UnknownCase,
    Empty,
    TooLarge,
}

impl Skip {
    fn code(self) -> &'static str {
        match self {
            Skip::UnknownCase => "unknown_case",
            Skip::Empty => "empty",
            Skip::TooLarge => "too_large",
        }
    }

    fn reason(self, case_number: &str) -> String {
        match self {
            Skip::UnknownCase => format!(
                "casebridge has no case {case_number} (it is stored once the case is pulled or \
                 imported and the document is read again)"
            ),
            Skip::Empty => "it is empty (0 bytes) in SmartAdvocate".into(),
            Skip::TooLarge => format!("it is larger than {} MiB", FILE_LIMIT_BYTES / (1024 * 1024)),
        }
    }
}

/// What became of one document.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    New,
    Updated,
    Unchanged,
    Skipped,
}

/// The documents part of a pull's summary.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DocumentCounts {
    pub read: u64,
    pub new: u64,
    pub updated: u64,
    pub unchanged: u64,
    pub skipped: u64,
    pub failed: u64,
    /// Why the documents stopped early this pull (a permission the API user lacks).
    pub stopped: Option<String>,
}

impl DocumentCounts {
    /// `3 documents (1 new, 1 updated, 0 unchanged, 1 skipped)`.
    pub fn text(&self) -> String {
        let mut t = format!(
            "{} documents ({} new, {} updated, {} unchanged, {} skipped",
            self.read, self.new, self.updated, self.unchanged, self.skipped
        );
        if self.failed > 0 {
            t.push_str(&format!(", {} failed", self.failed));
        }
        t.push(')');
        if let Some(why) = &self.stopped {
            t.push_str(&format!(
                "; documents stopped: {why} (the next pull reads them again)"
            ));
        }
        t
    }

    fn count(&mut self, outcome: Outcome) {
        match outcome {
            Outcome::New => self.new += 1,
            Outcome::Updated => self.updated += 1,
            Outcome::Unchanged => self.unchanged += 1,
            Outcome::Skipped => self.skipped += 1,
        }
    }
}

/// Why storing one document failed.
#[derive(Debug, thiserror::Error)]
pub enum DocumentError {
    #[error(transparent)]
    SmartAdvocate(SmartAdvocateError),
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The object store failed (worth retrying).
    #[error("object store: {0}")]
    Files(String),
}

impl From<FilesError> for DocumentError {
    fn from(e: FilesError) -> Self {
        DocumentError::Files(e.to_string())
    }
}

/// How the documents step ended.
pub enum Step {
    /// Every document was handled, or the step stopped for a lacking permission (in
    /// `counts.stopped`); the cursor may move to `cursor`.
    Done { cursor: Timestamp },
    /// A failure worth retrying the pull for (SmartAdvocate's 429, 5xx, timeout, or the object
    /// store); the cursor may move to `cursor`, not past the failed document.
    Failed {
        error: DocumentError,
        cursor: Timestamp,
    },
}

/// Stores pulled documents for `company` (see the module docs). `from` is the documents cursor
/// the search started from (before the overlap); `counts` is filled in as it goes.
pub struct Puller<'a> {
    pub store: &'a Store,
    pub clock: &'a dyn Clock,
    pub files: &'a Files,
    pub client: &'a SmartAdvocateClient,
    pub company: CompanyId,
}

impl Puller<'_> {
    /// Searches the documents changed since `from − overlap` and stores them.
    pub async fn run(
        &self,
        from: Timestamp,
        overlap: jiff::SignedDuration,
        counts: &mut DocumentCounts,
    ) -> Step {
        let docs = match self.client.documents_changed_since(from - overlap).await {
            Ok(d) => d,
            Err(SmartAdvocateError::PermissionDenied { operation }) => {
                counts.stopped = Some(format!("the API user lacks permission for {operation}"));
                return Step::Done { cursor: from };
            }
            Err(e) => {
                return Step::Failed {
                    error: DocumentError::SmartAdvocate(e),
                    cursor: from,
                }
            }
        };
        counts.read = docs.len() as u64;
        let mut cases: HashMap<String, Option<CaseId>> = HashMap::new();
        // The newest change time handled, and the oldest that failed (the cursor stops there).
        let mut newest = from;
        let mut held: Option<Timestamp> = None;
        let cursor = |newest: Timestamp, held: Option<Timestamp>| {
            held.map_or(newest, |h| newest.min(h)).max(from)
        };
        for d in &docs {
            let at = d.modified();
            match self.one(d, &mut cases).await {
                Ok(outcome) => {
                    counts.count(outcome);
                    newest = at.map_or(newest, |t| newest.max(t));
                }
                Err(error) => {
                    let failed_at = at.unwrap_or(from);
                    held = Some(held.map_or(failed_at, |h| h.min(failed_at)));
                    match error {
                        DocumentError::SmartAdvocate(SmartAdvocateError::PermissionDenied {
                            operation,
                        }) => {
                            counts.stopped =
                                Some(format!("the API user lacks permission for {operation}"));
                            break;
                        }
                        DocumentError::SmartAdvocate(e) if !e.is_retryable() && !e.is_config() => {
                            counts.failed += 1;
                            let message = format!(
                                "document {} ({}) of case {} could not be read: {e}",
                                d.document_id,
                                file_name(d, None),
                                d.case_number
                            );
                            if let Err(e) = self.log_failure(&d.case_number, &message).await {
                                return Step::Failed {
                                    error: e.into(),
                                    cursor: cursor(newest, held),
                                };
                            }
                        }
                        error => {
                            return Step::Failed {
                                error,
                                cursor: cursor(newest, held),
                            }
                        }
                    }
                }
            }
        }
        Step::Done {
            cursor: cursor(newest, held),
        }
    }

    /// Logs a document that could not be read (in a transaction of its own).
    async fn log_failure(&self, case_number: &str, message: &str) -> Result<(), StoreError> {
        super::pull::SCHEDULE
            .log(
                self.store,
                self.company,
                Some(case_number),
                SyncOutcome::Error,
                Some(ErrorKind::Validation),
                message,
                self.clock.now(),
            )
            .await
    }

    async fn case_of(
        &self,
        number: &str,
        cache: &mut HashMap<String, Option<CaseId>>,
    ) -> Result<Option<CaseId>, StoreError> {
        if let Some(c) = cache.get(number) {
            return Ok(*c);
        }
        let mut conn = self.store.conn().await?;
        let found = match cases::find_by_ref(&mut conn, self.company, PROVIDER, number).await {
            Ok(case) => Some(case.id),
            Err(StoreError::NotFound) => None,
            Err(e) => return Err(e),
        };
        cache.insert(number.to_owned(), found);
        Ok(found)
    }

    /// Handles one document.
    async fn one(
        &self,
        d: &Document,
        cases: &mut HashMap<String, Option<CaseId>>,
    ) -> Result<Outcome, DocumentError> {
        let prev = {
            let mut conn = self.store.conn().await?;
            crm_documents::get(&mut conn, self.company, PROVIDER, &d.document_id).await?
        };
        let modified = d.modified();
        let same_version = prev.as_ref().is_some_and(|p| {
            p.crm_modified_at.map(|t| t.as_millisecond()) == modified.map(|t| t.as_millisecond())
        });
        let skipped_before = |skip: Skip| {
            same_version
                && prev
                    .as_ref()
                    .is_some_and(|p| p.handled == Handled::Skipped(skip.code().into()))
        };
        let Some(case_id) = self.case_of(&d.case_number, cases).await? else {
            if !skipped_before(Skip::UnknownCase) {
                self.skip(d, prev.as_ref(), Skip::UnknownCase).await?;
            }
            return Ok(Outcome::Skipped);
        };
        match prev.as_ref().map(|p| &p.handled) {
            Some(Handled::Stored(_)) if same_version => return Ok(Outcome::Unchanged),
            _ if skipped_before(Skip::Empty) || skipped_before(Skip::TooLarge) => {
                return Ok(Outcome::Skipped)
            }
            _ => {}
        }
        let content = self
            .client
            .document_content(&d.document_id)
            .await
            .map_err(DocumentError::SmartAdvocate)?;
        let claimed = content.content_type.clone();
        let spooled = match self.files.spool(content.body, FILE_LIMIT_BYTES).await {
            Ok(s) => s,
            Err(SpoolError::TooLarge { .. }) => {
                self.skip(d, prev.as_ref(), Skip::TooLarge).await?;
                return Ok(Outcome::Skipped);
            }
            Err(SpoolError::Body(e)) => {
                return Err(DocumentError::SmartAdvocate(SmartAdvocateError::Transient(
                    e,
                )))
            }
            Err(SpoolError::Files(e)) => return Err(e.into()),
        };
        if spooled.size() == 0 {
            self.skip(d, prev.as_ref(), Skip::Empty).await?;
            return Ok(Outcome::Skipped);
        }
        let (content_type, extension) = sniff(&spooled.map()?, claimed.as_deref());
        let name = file_name(d, extension);
        let file = File {
            name: &name,
            content_type: &content_type,
            spooled: &spooled,
        };
        let record = |document_id: &str| CrmDocument {
            crm_document_id: d.document_id.clone(),
            record_id: d.case_number.clone(),
            crm_modified_at: modified,
            handled: Handled::Stored(document_id.to_owned()),
        };
        if let Some(Handled::Stored(existing)) = prev.as_ref().map(|p| &p.handled) {
            let current = {
                let mut conn = self.store.conn().await?;
                match documents::get(&mut conn, self.company, existing).await {
                    Ok(doc) => Some(doc),
                    Err(StoreError::NotFound) => None,
                    Err(e) => return Err(e.into()),
                }
            };
            if let Some(current) = current {
                return self.replace(&current, &file, &record(&current.id)).await;
            }
        }
        self.create(case_id, &file, record).await
    }

    /// Logs why `d` was skipped and remembers it for this version. A document already stored
    /// keeps its platform document (its last content).
    async fn skip(
        &self,
        d: &Document,
        prev: Option<&CrmDocument>,
        skip: Skip,
    ) -> Result<(), StoreError> {
        let now = self.clock.now();
        let kept = match prev.map(|p| &p.handled) {
            Some(Handled::Stored(id)) => Some(id.clone()),
            _ => None,
        };
        let message = format!(
            "document {} ({}) of case {} skipped: {}{}",
            d.document_id,
            file_name(d, None),
            d.case_number,
            skip.reason(&d.case_number),
            if kept.is_some() {
                "; the version stored before is kept"
            } else {
                ""
            }
        );
        let mut tx = self.store.begin().await?;
        crm_documents::record(
            &mut tx,
            self.company,
            PROVIDER,
            &CrmDocument {
                crm_document_id: d.document_id.clone(),
                record_id: d.case_number.clone(),
                crm_modified_at: d.modified(),
                handled: kept.map_or_else(|| Handled::Skipped(skip.code().into()), Handled::Stored),
            },
            now,
        )
        .await?;
        integrations::log(
            &mut tx,
            self.company,
            PROVIDER,
            &entry(Some(&d.case_number), SyncOutcome::Skipped, None, &message),
            now,
        )
        .await?;
        tx.commit().await
    }

    /// Stores `file` as a new document of the case.
    async fn create(
        &self,
        case_id: CaseId,
        file: &File<'_>,
        record: impl Fn(&str) -> CrmDocument,
    ) -> Result<Outcome, DocumentError> {
        let document_id = documents::new_id();
        let key = ObjectKey::document(self.company, &document_id);
        self.stage(&key, file.spooled).await?;
        let stored = async {
            let now = self.clock.now();
            let mut tx = self.store.begin().await?;
            claim(&mut tx, &key).await?;
            let new = NewDocument {
                id: &document_id,
                case_id: Some(case_id),
                call_id: None,
                kind: DocumentKind::Document,
                file_name: file.name,
                content_type: file.content_type,
                size: file.spooled.size(),
                sha256: file.spooled.sha256(),
                object_key: key.as_str(),
            };
            documents::create(&mut tx, self.company, &new, now).await?;
            crm_documents::record(&mut tx, self.company, PROVIDER, &record(&document_id), now)
                .await?;
            tx.commit().await?;
            Ok::<_, DocumentError>(Outcome::New)
        }
        .await;
        if stored.is_err() {
            self.discard(&key).await;
        }
        stored
    }

    /// A newer version of a stored document: the same file is `unchanged`; otherwise the
    /// document's file is replaced (a new object when the bytes differ).
    async fn replace(
        &self,
        current: &documents::Document,
        file: &File<'_>,
        record: &CrmDocument,
    ) -> Result<Outcome, DocumentError> {
        let same_bytes = current.sha256 == file.spooled.sha256();
        if same_bytes && current.file_name == file.name && current.content_type == file.content_type
        {
            let mut conn = self.store.conn().await?;
            crm_documents::record(&mut conn, self.company, PROVIDER, record, self.clock.now())
                .await?;
            return Ok(Outcome::Unchanged);
        }
        let new_key = (!same_bytes).then(|| {
            ObjectKey::document(
                self.company,
                format!("{}.{}", current.id, documents::new_id()),
            )
        });
        if let Some(key) = &new_key {
            self.stage(key, file.spooled).await?;
        }
        let replaced = async {
            let now = self.clock.now();
            let mut tx = self.store.begin().await?;
            let old_key = documents::content(&mut tx, self.company, &current.id).await?;
            let key = match (&new_key, &old_key) {
                (Some(k), _) => {
                    claim(&mut tx, k).await?;
                    k.as_str().to_owned()
                }
                (None, documents::Content::Object(k)) => k.clone(),
                (None, documents::Content::Inline(_)) => {
                    return Err(DocumentError::Files(format!(
                        "document {} still has its bytes in the database",
                        current.id
                    )))
                }
            };
            let version = NewVersion {
                file_name: file.name,
                content_type: file.content_type,
                size: file.spooled.size(),
                sha256: file.spooled.sha256(),
                object_key: &key,
            };
            let retired = documents::replace_file(&mut tx, self.company, &current.id, &version)
                .await?
                .filter(|old| *old != key);
            if let Some(old) = &retired {
                // Handed to the sweep in this transaction, so it cannot outlive its row unnamed.
                documents::reserve_upload(&mut tx, self.company, old, Timestamp::UNIX_EPOCH)
                    .await?;
            }
            crm_documents::record(&mut tx, self.company, PROVIDER, record, now).await?;
            tx.commit().await?;
            Ok::<_, DocumentError>(retired)
        }
        .await;
        match replaced {
            Ok(retired) => {
                if let Some(old) = retired {
                    self.discard(&ObjectKey::from_stored(old)).await;
                }
                Ok(Outcome::Updated)
            }
            Err(e) => {
                if let Some(key) = &new_key {
                    self.discard(key).await;
                }
                Err(e)
            }
        }
    }

    /// Reserves `key` (committed) and writes the spooled file there.
    async fn stage(&self, key: &ObjectKey, spooled: &Spooled) -> Result<(), DocumentError> {
        {
            let mut conn = self.store.conn().await?;
            documents::reserve_upload(&mut conn, self.company, key.as_str(), self.clock.now())
                .await?;
        }
        if let Err(e) = self.files.put(key, spooled).await {
            self.discard(key).await;
            return Err(e.into());
        }
        Ok(())
    }

    /// Deletes an object no committed row names, then its reservation (best effort: what is
    /// left, the sweep removes).
    async fn discard(&self, key: &ObjectKey) {
        if let Err(e) = self.files.delete(key).await {
            tracing::warn!(key = %key, error = %e, "deleting an unused document object failed");
            return;
        }
        let ended = async {
            let mut conn = self.store.conn().await?;
            documents::end_reservation(&mut conn, key.as_str(), None).await
        };
        if let Err(e) = ended.await {
            tracing::warn!(key = %key, error = %e, "ending a document reservation failed");
        }
    }
}

/// A pulled file ready to store.
struct File<'a> {
    name: &'a str,
    content_type: &'a str,
    spooled: &'a Spooled,
}

/// Claims a reservation in the transaction of the row that names its object; a reservation
/// the sweep took (the write took over an hour) fails the document, retried by the next pull.
async fn claim(tx: &mut casebridge_store::Tx, key: &ObjectKey) -> Result<(), DocumentError> {
    if documents::end_reservation(tx, key.as_str(), None).await? {
        Ok(())
    } else {
        Err(DocumentError::Files(format!(
            "the reservation of {key} was swept before its row committed"
        )))
    }
}

/// The content type from the file's magic bytes, else the one SmartAdvocate claimed unless it
/// is the generic `application/octet-stream`; with the sniffed type's usual extension.
fn sniff(bytes: &[u8], claimed: Option<&str>) -> (String, Option<&'static str>) {
    if let Some(kind) = infer::get(bytes) {
        return (kind.mime_type().to_owned(), Some(kind.extension()));
    }
    let claimed = claimed
        .map(str::trim)
        .filter(|c| !c.is_empty())
        .filter(|c| {
            !c.split(';')
                .next()
                .unwrap_or("")
                .trim()
                .eq_ignore_ascii_case("application/octet-stream")
        });
    (
        claimed.unwrap_or("application/octet-stream").to_owned(),
        None,
    )
}

/// The document's name as SmartAdvocate shows it (its id when it has none), with `extension`
/// added when the name has none.
fn file_name(d: &Document, extension: Option<&str>) -> String {
    let name = d
        .document_name
        .as_deref()
        .map(str::trim)
        .filter(|n| !n.is_empty())
        .map_or_else(
            || format!("SmartAdvocate document {}", d.document_id),
            str::to_owned,
        );
    match extension {
        Some(ext) if Path::new(&name).extension().is_none() => format!("{name}.{ext}"),
        _ => name,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn doc(name: Option<&str>) -> Document {
        serde_json::from_value(serde_json::json!({
            "documentID": 7, "caseNumber": "9000001", "documentName": name,
        }))
        .unwrap()
    }

    #[test]
    fn content_types_come_from_the_bytes_first() {
        assert_eq!(
            sniff(b"%PDF-1.7\n...", Some("application/octet-stream")),
            ("application/pdf".to_owned(), Some("pdf"))
        );
        assert_eq!(
            sniff(b"\x89PNG\r\n\x1a\n....", None),
            ("image/png".to_owned(), Some("png"))
        );
        assert_eq!(
            sniff(b"plain words", Some("text/plain; charset=utf-8")),
            ("text/plain; charset=utf-8".to_owned(), None)
        );
        assert_eq!(
            sniff(b"plain words", Some("application/octet-stream")),
            ("application/octet-stream".to_owned(), None)
        );
    }

    #[test]
    fn names_keep_theirs_and_get_an_extension_when_they_have_none() {
        assert_eq!(
            file_name(&doc(Some("Report.pdf")), Some("pdf")),
            "Report.pdf"
        );
        assert_eq!(
            file_name(&doc(Some("Police report")), Some("pdf")),
            "Police report.pdf"
        );
        assert_eq!(file_name(&doc(Some("notes.txt")), None), "notes.txt");
        assert_eq!(file_name(&doc(None), None), "SmartAdvocate document 7");
        assert_eq!(
            file_name(&doc(Some("  ")), Some("png")),
            "SmartAdvocate document 7.png"
        );
    }

    #[test]
    fn the_counts_read_as_a_sentence() {
        let mut c = DocumentCounts {
            read: 3,
            new: 1,
            skipped: 1,
            failed: 1,
            ..DocumentCounts::default()
        };
        assert_eq!(
            c.text(),
            "3 documents (1 new, 0 updated, 0 unchanged, 1 skipped, 1 failed)"
        );
        c.stopped = Some("the API user lacks permission for read document content".into());
        assert!(c.text().ends_with(
            "; documents stopped: the API user lacks permission for read document content \
             (the next pull reads them again)"
        ));
    }
}
