//! The pull from SmartAdvocate (SA4): the cases, contacts and notes that changed there since
//! the last pull, on the integration's schedule and on demand.
//!
//! **What.** A [`KIND`] job on the `crm` queue pulls for one company ([`pull`]). It logs
//! `skipped` with the reason and does nothing else unless the integration is connected,
//! "Enable Integration" is on and "Receive data" is in effect. Otherwise, through the modelled
//! "changed since" searches ([`SmartAdvocatePaths`](super::SmartAdvocatePaths)
//! `cases_by_date`, `contacts_by_date`, `notes_by_date`) and the documents search seen in public
//! clients (`documents_by_date`, `document_content`):
//! 1. Cases changed since the cases cursor, with their plaintiffs' contact details. Each becomes
//!    the fields of a case record and goes through the hook's path
//!    ([`record::apply_fields`]): parse, the dedupe receipt (`unchanged` when the content equals
//!    what was last applied for its case number, from any source), apply (client by contact id,
//!    case by case number). One transaction per case; a case that cannot be applied is logged
//!    as a validation error naming its number and does not stop the pull.
//! 2. Contacts changed since the contacts cursor: a contact that is a client here (matched by
//!    contact id) is updated when its names, email or phone differ; other contacts (parties
//!    with no case here) are counted as not linked and left alone.
//! 3. Notes changed since the notes cursor, stored or updated by SmartAdvocate note id
//!    (`crm_notes::upsert`, origin `crm`, HTML turned into text) under the case of their case
//!    number (or with no case, to be attached when the case arrives). Notes casebridge inserted
//!    are stored as `platform` when sent, so they do not come back as SmartAdvocate's.
//! 4. Documents changed since the documents cursor, stored as documents of the case of their
//!    case number, once per SmartAdvocate document id (see [`documents`](super::documents):
//!    skipped with a reason when casebridge has no such case or the file is empty; the cursor
//!    never passes a document whose content could not be read).
//! 5. One transaction: the four cursors, `last_pull_at` (error cleared), "last successful
//!    status pull", and the summary line with the measured counts: "pulled 3 cases (1 created,
//!    1 updated, 1 unchanged), 2 contacts (1 updated, 0 unchanged, 1 not linked), 4 notes (2
//!    new, 1 updated, 1 unchanged) and 2 documents (1 new, 0 updated, 0 unchanged, 1 skipped)".
//!    A pull that found nothing says so with zeros.
//!
//! **Cursors and overlap.** Each cursor is SmartAdvocate's own change time (`modifiedDate`) of
//! the newest record seen, so clock differences between the systems do not matter; it never
//! moves backwards and moves only once the records up to it are stored. The first pull starts
//! at the connection time (history comes in through the import). Each search starts
//! [`OVERLAP`] before its cursor and is inclusive: SmartAdvocate writes times to the second, so
//! a record changed in the cursor's second after the last read, or committed late with an
//! earlier time, is read again rather than missed; the receipt and note ids make the re-read
//! records `unchanged`.
//!
//! **Errors** (as Law Ruler's pull): 429 (its `Retry-After` honoured), 5xx, timeouts and empty
//! answers retry the job (logged once, on the first attempt; after
//! [`MAX_ATTEMPTS`](crate::pull::MAX_ATTEMPTS) it gives up until the next scheduled pull, logged).
//! An expired token is renewed by the client once. A configuration error (wrong password,
//! a permission the API user lacks) sets the integration's configuration error, is logged once
//! per distinct error, and ends the job. Parts already stored keep their cursors.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use casebridge_domain::clock::Clock;
use casebridge_domain::error::Validator;
use casebridge_domain::ids::{CaseId, CompanyId};
use casebridge_domain::integrations::{ErrorKind, SyncOutcome, Toggles};
use casebridge_domain::jobs::Job;
use casebridge_domain::records::{ClientFields, ClientInput, ClientPatch};
use casebridge_files::Files;
use casebridge_queue::{Handler, JobError, Registry};
use casebridge_store::crm_notes::{self, CrmNote, Stored};
use casebridge_store::integrations::{self, Cursor, Health};
use casebridge_store::{cases, clients, Store, StoreError};
use jiff::{SignedDuration, Timestamp};

use super::client::{ChangedContact, Modified, Note, SmartAdvocateError};
use super::connection::Clients;
use super::documents::{DocumentCounts, DocumentError, Puller, Step};
use super::record::{self, case_fields};
use super::PROVIDER;
use crate::counters;
use crate::ingest::{Outcome, RowFailure};
use crate::pull::{entry, FailureClass, PullSchedule, MAX_ATTEMPTS};

/// The job kind; its payload is `{}` (the company is the job's).
pub const KIND: &str = "smartadvocate.pull";
/// How often each integration is pulled unless configured otherwise (hourly, as Law Ruler).
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(3600);
/// How far before each cursor a search starts.
pub const OVERLAP: SignedDuration = SignedDuration::from_secs(120);
/// Contacts or notes stored per transaction.
const PER_TX: usize = 200;

/// SmartAdvocate's pull job, as the shared scheduling knows it.
pub const SCHEDULE: PullSchedule = PullSchedule {
    provider: PROVIDER,
    kind: KIND,
    name: "SmartAdvocate",
};

/// What a pull did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PullOutcome {
    /// Nothing was pulled; the reason was logged.
    Skipped(String),
    Pulled(Box<PullSummary>),
}

/// The measured counts of a pull.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PullSummary {
    pub cases: u64,
    pub created: u64,
    pub updated: u64,
    pub unchanged: u64,
    pub failed: u64,
    pub contacts: u64,
    pub contacts_updated: u64,
    pub contacts_unchanged: u64,
    pub contacts_not_linked: u64,
    pub contacts_failed: u64,
    pub notes: u64,
    pub notes_new: u64,
    pub notes_updated: u64,
    pub notes_unchanged: u64,
    pub documents: DocumentCounts,
    pub cases_cursor: Option<Timestamp>,
    pub contacts_cursor: Option<Timestamp>,
    pub notes_cursor: Option<Timestamp>,
    pub documents_cursor: Option<Timestamp>,
}

impl PullSummary {
    fn cases_text(&self) -> String {
        let mut t = format!(
            "{} cases ({} created, {} updated, {} unchanged",
            self.cases, self.created, self.updated, self.unchanged
        );
        if self.failed > 0 {
            t.push_str(&format!(", {} failed", self.failed));
        }
        t.push(')');
        t
    }

    fn contacts_text(&self) -> String {
        let mut t = format!(
            "{} contacts ({} updated, {} unchanged, {} not linked",
            self.contacts, self.contacts_updated, self.contacts_unchanged, self.contacts_not_linked
        );
        if self.contacts_failed > 0 {
            t.push_str(&format!(", {} failed", self.contacts_failed));
        }
        t.push(')');
        t
    }

    /// The summary line of the sync log.
    pub fn message(&self) -> String {
        format!(
            "pulled {}, {}, {} notes ({} new, {} updated, {} unchanged) and {}",
            self.cases_text(),
            self.contacts_text(),
            self.notes,
            self.notes_new,
            self.notes_updated,
            self.notes_unchanged,
            self.documents.text()
        )
    }

    fn failed(&self) -> u64 {
        self.failed + self.contacts_failed + self.documents.failed
    }
}

/// Why a pull stopped.
#[derive(Debug, thiserror::Error)]
pub enum PullError {
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The object store failed while storing a document.
    #[error("{0}")]
    Files(String),
    /// SmartAdvocate failed; `done` holds what was stored before (and the cursors to keep).
    #[error("{error}")]
    SmartAdvocate {
        error: SmartAdvocateError,
        done: Box<PullSummary>,
    },
}

async fn skip(
    store: &Store,
    company: CompanyId,
    reason: &str,
    now: Timestamp,
) -> Result<PullOutcome, PullError> {
    let message = format!("pull skipped: {reason}");
    SCHEDULE
        .log(
            store,
            company,
            None,
            SyncOutcome::Skipped,
            None,
            &message,
            now,
        )
        .await?;
    Ok(PullOutcome::Skipped(reason.to_owned()))
}

fn newest<T: Modified>(records: &[T], from: Timestamp) -> Timestamp {
    records
        .iter()
        .filter_map(Modified::modified)
        .fold(from, Timestamp::max)
}

/// SmartAdvocate's HTML note text as plain text: tags dropped (`<br>` and block ends become
/// line breaks), the common entities decoded, blank runs trimmed.
pub fn note_text(html: &str) -> String {
    let mut out = String::new();
    let mut rest = html;
    while let Some(i) = rest.find('<') {
        out.push_str(&rest[..i]);
        let Some(j) = rest[i..].find('>') else {
            out.push_str(&rest[i..]);
            rest = "";
            break;
        };
        let tag = rest[i + 1..i + j].trim().to_ascii_lowercase();
        let name = tag
            .trim_start_matches('/')
            .split([' ', '/'])
            .next()
            .unwrap_or("");
        if matches!(name, "br" | "p" | "div" | "li" | "tr")
            && (name == "br" || tag.starts_with('/'))
        {
            out.push('\n');
        }
        rest = &rest[i + j + 1..];
    }
    out.push_str(rest);
    let decoded = out
        .replace("&nbsp;", " ")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&#39;", "'")
        .replace("&amp;", "&");
    decoded
        .lines()
        .map(str::trim_end)
        .collect::<Vec<_>>()
        .join("\n")
        .trim()
        .to_owned()
}

async fn apply_case(
    store: &Store,
    clock: &dyn Clock,
    company: CompanyId,
    fields: &[(String, String)],
    summary: &mut PullSummary,
) -> Result<(), StoreError> {
    let now = clock.now();
    let mut tx = store.begin().await?;
    match record::apply_fields(&mut tx, company, fields, now).await? {
        Ok(outcome) => {
            tx.commit().await?;
            match outcome {
                Outcome::Created => summary.created += 1,
                Outcome::Updated => summary.updated += 1,
                Outcome::Unchanged => summary.unchanged += 1,
            }
        }
        Err(RowFailure { message, .. }) => {
            tx.rollback().await?;
            summary.failed += 1;
            let number = record::case_number_in(fields);
            crate::ingest::count_failed(store, company, PROVIDER, number.as_deref(), now).await?;
            SCHEDULE
                .log(
                    store,
                    company,
                    number.as_deref(),
                    SyncOutcome::Error,
                    Some(ErrorKind::Validation),
                    &message,
                    now,
                )
                .await?;
        }
    }
    Ok(())
}

/// Updates the clients of pulled contacts, [`PER_TX`] per transaction.
async fn store_contacts(
    store: &Store,
    clock: &dyn Clock,
    company: CompanyId,
    contacts: &[ChangedContact],
    summary: &mut PullSummary,
) -> Result<(), StoreError> {
    for chunk in contacts.chunks(PER_TX) {
        let now = clock.now();
        let mut tx = store.begin().await?;
        let mut invalid = Vec::new();
        for c in chunk {
            let c = &c.contact;
            let existing = match clients::find_by_ref(&mut tx, company, PROVIDER, &c.id).await {
                Ok(e) => e,
                Err(StoreError::NotFound) => {
                    summary.contacts_not_linked += 1;
                    continue;
                }
                Err(e) => return Err(e),
            };
            let mut v = Validator::new();
            let fields = ClientFields::parse(
                ClientInput {
                    first_name: c.first_name.as_deref(),
                    last_name: c.last_name.as_deref(),
                    email: c.email.as_deref(),
                    phone: c.phone.as_deref(),
                },
                &mut v,
            );
            let fields = match v.finish() {
                Ok(()) => fields.expect("validated"),
                Err(e) => {
                    summary.contacts_failed += 1;
                    invalid.push((c.id.clone(), format!("contact {}: {e}", c.id)));
                    continue;
                }
            };
            if existing.fields == fields {
                summary.contacts_unchanged += 1;
                continue;
            }
            let patch = ClientPatch {
                first_name: Some(fields.first_name.clone()),
                last_name: Some(fields.last_name.clone()),
                email: Some(fields.email.clone()),
                phone: Some(fields.phone.clone()),
            };
            clients::update(&mut tx, company, existing.id, &patch, now).await?;
            summary.contacts_updated += 1;
        }
        for (id, message) in &invalid {
            integrations::log(
                &mut tx,
                company,
                PROVIDER,
                &entry(
                    Some(id),
                    SyncOutcome::Error,
                    Some(ErrorKind::Validation),
                    message,
                ),
                now,
            )
            .await?;
        }
        tx.commit().await?;
    }
    Ok(())
}

/// Stores pulled notes, [`PER_TX`] per transaction.
async fn store_notes(
    store: &Store,
    clock: &dyn Clock,
    company: CompanyId,
    notes: &[Note],
    summary: &mut PullSummary,
) -> Result<(), StoreError> {
    let mut case_of: std::collections::HashMap<String, Option<CaseId>> = Default::default();
    for chunk in notes.chunks(PER_TX) {
        let now = clock.now();
        let mut tx = store.begin().await?;
        for n in chunk {
            let case_id = match case_of.get(&n.case_number) {
                Some(c) => *c,
                None => {
                    let c = match cases::find_by_ref(&mut tx, company, PROVIDER, &n.case_number)
                        .await
                    {
                        Ok(case) => Some(case.id),
                        Err(StoreError::NotFound) => None,
                        Err(e) => return Err(e),
                    };
                    case_of.insert(n.case_number.clone(), c);
                    c
                }
            };
            let noted_at = n
                .note_date
                .as_deref()
                .or(n.created_date.as_deref())
                .and_then(super::client::parse_time)
                .or_else(|| n.modified())
                .unwrap_or(now);
            let note = CrmNote {
                crm_note_id: n.note_id.clone(),
                record_id: n.case_number.clone(),
                case_id,
                origin: "crm".into(),
                category: n.note_type_name.clone().unwrap_or_default(),
                subject: n.subject.clone().unwrap_or_default(),
                body: note_text(n.note_text.as_deref().unwrap_or("")),
                noted_at,
            };
            match crm_notes::upsert(&mut tx, company, PROVIDER, &note, now).await? {
                Stored::New => summary.notes_new += 1,
                Stored::Updated => summary.notes_updated += 1,
                Stored::Unchanged => summary.notes_unchanged += 1,
            }
        }
        tx.commit().await?;
    }
    Ok(())
}

/// Pulls once for `company` (see the module docs). SmartAdvocate's failures come back as
/// [`PullError::SmartAdvocate`] without having been recorded: [`PullJob`] records them.
pub async fn pull(
    store: &Store,
    clock: &dyn Clock,
    clients: &Clients,
    files: &Files,
    company: CompanyId,
) -> Result<PullOutcome, PullError> {
    let now = clock.now();
    let integration = {
        let mut conn = store.conn().await?;
        integrations::get(&mut conn, company, PROVIDER).await?
    };
    let Some(i) = integration.filter(|i| i.credentials_sealed.is_some()) else {
        return skip(store, company, "SmartAdvocate is not connected", now).await;
    };
    let t = Toggles::from_settings(&i.settings);
    if !t.enable_integration {
        return skip(store, company, "the integration is turned off", now).await;
    }
    if !t.gates().receive {
        return skip(
            store,
            company,
            "receiving data from SmartAdvocate is off",
            now,
        )
        .await;
    }
    let client = match clients.for_integration(&i) {
        Ok(Some(c)) => c,
        Ok(None) => return skip(store, company, "SmartAdvocate is not connected", now).await,
        Err(e) => {
            return Err(PullError::SmartAdvocate {
                error: SmartAdvocateError::Config(e),
                done: Box::default(),
            })
        }
    };
    let start = i.connected_at.unwrap_or(now);
    let mut summary = PullSummary::default();
    let fail = |error, done: &PullSummary| PullError::SmartAdvocate {
        error,
        done: Box::new(done.clone()),
    };

    let cases_from = i.leads_cursor.unwrap_or(start);
    let changed = client
        .cases_changed_since(cases_from - OVERLAP)
        .await
        .map_err(|e| fail(e, &summary))?;
    summary.cases = changed.len() as u64;
    for c in &changed {
        apply_case(store, clock, company, &case_fields(c), &mut summary).await?;
    }
    summary.cases_cursor = Some(newest(&changed, cases_from));

    let contacts_from = i.contacts_cursor.unwrap_or(start);
    let contacts = client
        .contacts_changed_since(contacts_from - OVERLAP)
        .await
        .map_err(|e| fail(e, &summary))?;
    summary.contacts = contacts.len() as u64;
    store_contacts(store, clock, company, &contacts, &mut summary).await?;
    summary.contacts_cursor = Some(newest(&contacts, contacts_from));

    let notes_from = i.notes_cursor.unwrap_or(start);
    let notes = client
        .notes_changed_since(notes_from - OVERLAP)
        .await
        .map_err(|e| fail(e, &summary))?;
    summary.notes = notes.len() as u64;
    store_notes(store, clock, company, &notes, &mut summary).await?;
    summary.notes_cursor = Some(newest(&notes, notes_from));

    let documents_from = i.documents_cursor.unwrap_or(start);
    let puller = Puller {
        store,
        clock,
        files,
        client: &client,
        company,
    };
    let mut counts = DocumentCounts::default();
    let step = puller.run(documents_from, OVERLAP, &mut counts).await;
    summary.documents = counts;
    match step {
        Step::Done { cursor } => summary.documents_cursor = Some(cursor),
        Step::Failed { error, cursor } => {
            summary.documents_cursor = Some(cursor);
            return Err(match error {
                DocumentError::SmartAdvocate(error) => fail(error, &summary),
                DocumentError::Store(e) => PullError::Store(e),
                DocumentError::Files(e) => PullError::Files(e),
            });
        }
    }

    let now = clock.now();
    let mut tx = store.begin().await?;
    integrations::record_pull(
        &mut tx,
        company,
        PROVIDER,
        summary.cases_cursor,
        summary.notes_cursor,
        None,
        now,
    )
    .await?;
    record_cursors(&mut tx, company, &summary).await?;
    integrations::touch_health(&mut tx, company, PROVIDER, Health::StatusPull, now).await?;
    let message = summary.message();
    let (outcome, kind) = if summary.documents.stopped.is_some() {
        (SyncOutcome::Error, Some(ErrorKind::Configuration))
    } else if summary.failed() == 0 {
        (SyncOutcome::Ok, None)
    } else {
        (SyncOutcome::Error, Some(ErrorKind::Validation))
    };
    integrations::log(
        &mut tx,
        company,
        PROVIDER,
        &entry(None, outcome, kind, &message),
        now,
    )
    .await?;
    tx.commit().await?;
    Ok(PullOutcome::Pulled(Box::new(summary)))
}

/// The contacts and documents cursors (the others are `record_pull`'s), unchanged when `None`.
async fn record_cursors(
    tx: &mut casebridge_store::Tx,
    company: CompanyId,
    done: &PullSummary,
) -> Result<(), StoreError> {
    integrations::record_cursor(
        tx,
        company,
        PROVIDER,
        Cursor::Contacts,
        done.contacts_cursor,
    )
    .await?;
    integrations::record_cursor(
        tx,
        company,
        PROVIDER,
        Cursor::Documents,
        done.documents_cursor,
    )
    .await
}

/// The `smartadvocate.pull` job.
pub struct PullJob {
    store: Store,
    clock: Arc<dyn Clock>,
    clients: Clients,
    files: Files,
}

impl PullJob {
    pub fn new(store: Store, clock: Arc<dyn Clock>, clients: Clients, files: Files) -> Self {
        Self {
            store,
            clock,
            clients,
            files,
        }
    }

    /// Records a failed pull: `last_pull_error`, the cursors of what was stored, a
    /// configuration error, and its sync-log line when it gets one.
    async fn failed(
        &self,
        job: &Job,
        company: CompanyId,
        error: &SmartAdvocateError,
        done: &PullSummary,
    ) -> Result<(), StoreError> {
        let now = self.clock.now();
        let msg = error.to_string();
        let prefix = if done.cases_cursor.is_some() {
            format!("pulled {}, then the pull failed", done.cases_text())
        } else {
            "pull failed".to_owned()
        };
        let mut tx = self.store.begin().await?;
        integrations::record_pull(
            &mut tx,
            company,
            PROVIDER,
            done.cases_cursor,
            done.notes_cursor,
            Some(&msg),
            now,
        )
        .await?;
        record_cursors(&mut tx, company, done).await?;
        let class = if error.is_retryable() {
            FailureClass::Transient
        } else if error.is_config() {
            FailureClass::Configuration
        } else {
            FailureClass::Other
        };
        crate::pull::log_failure(
            &mut tx,
            company,
            PROVIDER,
            class,
            job.attempts,
            &prefix,
            &msg,
            now,
        )
        .await?;
        tx.commit().await
    }
}

fn store_retry(e: StoreError) -> JobError {
    JobError::retry(format!("database: {e}"))
}

#[async_trait]
impl Handler for PullJob {
    async fn run(&self, job: &Job) -> Result<(), JobError> {
        let company = job
            .company_id
            .ok_or_else(|| JobError::Permanent("job has no company".into()))?;
        let pulled = pull(
            &self.store,
            self.clock.as_ref(),
            &self.clients,
            &self.files,
            company,
        )
        .await;
        match pulled {
            Ok(_) => {
                counters::pull(PROVIDER, "ok");
                Ok(())
            }
            Err(PullError::Store(e)) => {
                counters::pull(PROVIDER, "retried");
                Err(store_retry(e))
            }
            Err(PullError::Files(e)) => {
                counters::pull(PROVIDER, "retried");
                Err(JobError::retry(e))
            }
            Err(PullError::SmartAdvocate { error, done }) => {
                let retry = error.is_retryable() && job.attempts < MAX_ATTEMPTS;
                counters::pull(PROVIDER, if retry { "retried" } else { "failed" });
                self.failed(job, company, &error, &done)
                    .await
                    .map_err(store_retry)?;
                if retry {
                    let retry_after = match &error {
                        SmartAdvocateError::RateLimited { retry_after } => *retry_after,
                        _ => None,
                    };
                    Err(JobError::Retry {
                        error: error.to_string(),
                        retry_after,
                    })
                } else {
                    Ok(())
                }
            }
        }
    }

    async fn on_dead(&self, job: &Job, error: &str) {
        crate::pull::record_dead(&self.store, self.clock.as_ref(), PROVIDER, job, error).await;
    }
}

/// Adds the pull job to the `crm` queue's registry.
pub fn register(
    registry: Registry,
    store: Store,
    clock: Arc<dyn Clock>,
    clients: Clients,
    files: Files,
) -> Registry {
    registry.register(
        KIND,
        PullJob::new(store, clock, clients, files),
        crate::pull::retry_policy(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn html_notes_become_text() {
        assert_eq!(
            note_text("<p>Called&nbsp;client</p><p>Left a <b>message</b> &amp; text<br/>bye</p>"),
            "Called client\nLeft a message & text\nbye"
        );
        assert_eq!(note_text("plain"), "plain");
    }

    #[test]
    fn summary_line_counts_everything() {
        let s = PullSummary {
            cases: 3,
            created: 1,
            updated: 1,
            unchanged: 1,
            contacts: 2,
            contacts_updated: 1,
            contacts_not_linked: 1,
            notes: 4,
            notes_new: 2,
            notes_updated: 1,
            notes_unchanged: 1,
            ..PullSummary::default()
        };
        assert_eq!(
            s.message(),
            "pulled 3 cases (1 created, 1 updated, 1 unchanged), 2 contacts (1 updated, 0 \
             unchanged, 1 not linked), 4 notes (2 new, 1 updated, 1 unchanged) and 0 documents \
             (0 new, 0 updated, 0 unchanged, 0 skipped)"
        );
    }
}
