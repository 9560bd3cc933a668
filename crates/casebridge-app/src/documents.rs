//! Files on cases and calls: case documents, call recordings, and the CRM notes of a case.
//! A stored file is a platform change: the CRM connectors send it when their toggles allow
//! (Law Ruler: LR9 documents, LR10 recordings), recorded in the same transaction as the upload.

use casebridge_audio::AudioInfo;
use casebridge_crm::PlatformChange;
use casebridge_domain::ids::{CallId, CaseId, CompanyId};
use casebridge_domain::page::{Page, PageRequest};
use casebridge_domain::ValidationError;
use casebridge_store::documents::{DocumentKind, NewDocument};
use casebridge_store::{activity, cases, crm_notes, documents};

use crate::{fanout, App, AppError, OrNotFound, Result};

pub use casebridge_store::crm_notes::CrmNote;
pub use casebridge_store::documents::Document;

/// An uploaded file. `B` holds the bytes (the HTTP layer's buffer, moved in without a copy).
pub struct Upload<B> {
    pub file_name: String,
    pub content_type: String,
    pub bytes: B,
}

impl<B: AsRef<[u8]>> Upload<B> {
    fn as_new(
        &self,
        kind: DocumentKind,
        case_id: Option<CaseId>,
        call_id: Option<CallId>,
    ) -> NewDocument<'_> {
        NewDocument {
            case_id,
            call_id,
            kind,
            file_name: &self.file_name,
            content_type: &self.content_type,
            bytes: self.bytes.as_ref(),
        }
    }
}

/// Adds a document to a case; the CRMs hear of it in the same transaction.
pub async fn add_document<B: AsRef<[u8]>>(
    app: &App,
    company: CompanyId,
    case: CaseId,
    upload: &Upload<B>,
) -> Result<Document> {
    let now = app.now();
    let mut tx = app.store().begin().await?;
    let case = cases::get(&mut tx, company, case)
        .await
        .or_not_found("case", &case.to_string())?;
    let new = upload.as_new(DocumentKind::Document, Some(case.id), None);
    let document = documents::create(&mut tx, company, &new, now).await?;
    let change = PlatformChange::DocumentStored {
        case: &case,
        document: &document,
    };
    fanout::platform_change(app, &mut tx, company, change, now).await?;
    tx.commit().await?;
    Ok(document)
}

/// A case's documents (metadata), oldest first.
pub async fn for_case(
    app: &App,
    company: CompanyId,
    case: CaseId,
    page: &PageRequest,
) -> Result<Page<Document>> {
    let mut conn = app.store().conn().await?;
    require_case(&mut conn, company, case).await?;
    Ok(documents::for_case(&mut conn, company, case, page).await?)
}

/// A stored recording and what probing found in it (format, duration).
pub struct StoredRecording {
    pub document: Document,
    pub audio: AudioInfo,
}

/// Stores a call's recording (wav, mp3, m4a/aac, ogg/vorbis or flac). A file that is not audio
/// of those kinds is a validation error on `file`, and nothing is stored. The CRMs hear of it in
/// the same transaction (Law Ruler sends it as MP3, transcoded when it is not MP3).
pub async fn add_recording<B>(
    app: &App,
    company: CompanyId,
    call: CallId,
    upload: Upload<B>,
) -> Result<StoredRecording>
where
    B: AsRef<[u8]> + Send + 'static,
{
    // Checked before anything is stored: a recording that cannot become MP3 is refused now,
    // not discovered when it is sent. Decoding is CPU work, so it runs off the async threads.
    let (upload, probed) = tokio::task::spawn_blocking(move || {
        let probed = casebridge_audio::probe(
            upload.bytes.as_ref(),
            casebridge_audio::Hint {
                content_type: Some(&upload.content_type),
                file_name: Some(&upload.file_name),
            },
        );
        (upload, probed)
    })
    .await
    .map_err(|e| AppError::Internal(format!("probing the recording: {e}")))?;
    let audio = probed.map_err(|e| ValidationError::single("file", e.to_string()))?;
    let now = app.now();
    let mut tx = app.store().begin().await?;
    // Locked, so an analysis arriving at the same moment either sees this recording or is seen.
    let call = activity::get_call_for_update(&mut tx, company, call)
        .await
        .or_not_found("call", &call.to_string())?;
    let new = upload.as_new(DocumentKind::Recording, call.case_id, Some(call.id));
    let document = documents::create(&mut tx, company, &new, now).await?;
    let change = PlatformChange::RecordingStored {
        call: &call,
        recording: &document,
    };
    fanout::platform_change(app, &mut tx, company, change, now).await?;
    tx.commit().await?;
    Ok(StoredRecording { document, audio })
}

/// The CRM notes of a case from every CRM, oldest first, each with its provider: notes pulled
/// from Law Ruler (LR13) and SmartAdvocate (SA4), and the notes casebridge wrote there
/// (messages, call records).
pub async fn notes(app: &App, company: CompanyId, case: CaseId) -> Result<Vec<(String, CrmNote)>> {
    let mut conn = app.store().conn().await?;
    require_case(&mut conn, company, case).await?;
    Ok(crm_notes::for_case_all(&mut conn, company, case).await?)
}

async fn require_case(
    conn: &mut casebridge_store::Conn,
    company: CompanyId,
    case: CaseId,
) -> Result<()> {
    if cases::exists(conn, company, case).await? {
        Ok(())
    } else {
        Err(AppError::not_found("case", case))
    }
}
