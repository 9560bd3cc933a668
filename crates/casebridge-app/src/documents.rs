//! Files on cases and calls: case documents, call recordings, and the CRM notes of a case.
//! A stored file is a platform change: the CRM connectors send it when their toggles allow
//! (Law Ruler: LR9 documents, LR10 recordings), recorded in the same transaction as the row that
//! names the file. The bytes are in the object store ([`crate::files`]).

use casebridge_audio::AudioInfo;
use casebridge_crm::PlatformChange;
use casebridge_domain::ids::{CallId, CaseId, CompanyId};
use casebridge_domain::page::{Page, PageRequest};
use casebridge_domain::ValidationError;
use casebridge_files::Spooled;
use casebridge_store::documents::{DocumentKind, NewDocument};
use casebridge_store::{activity, cases, crm_notes, documents};
use futures::Stream;

use crate::files::{self, ByteStream, Staged};
use crate::{fanout, App, AppError, OrNotFound, Result};

pub use crate::files::FILE_LIMIT_BYTES;
pub use casebridge_store::crm_notes::CrmNote;
pub use casebridge_store::documents::Document;

/// An upload as it arrives: its name, its content type and its body, a stream of chunks (the
/// HTTP layer's request body or multipart part). It is spooled to disk, never held whole in
/// memory.
pub struct Upload<S> {
    pub file_name: String,
    pub content_type: String,
    pub body: S,
}

/// A stored file's metadata and its bytes as a stream.
pub struct Download {
    pub document: Document,
    pub body: ByteStream,
}

fn new_document<'a>(
    staged: &'a Staged,
    spooled: &'a Spooled,
    meta: (&'a str, &'a str),
    kind: DocumentKind,
    case_id: Option<CaseId>,
    call_id: Option<CallId>,
) -> NewDocument<'a> {
    NewDocument {
        id: &staged.document_id,
        case_id,
        call_id,
        kind,
        file_name: meta.0,
        content_type: meta.1,
        size: spooled.size(),
        sha256: spooled.sha256(),
        object_key: staged.key.as_str(),
    }
}

/// Adds a document to a case; the CRMs hear of it in the same transaction. The bytes go to the
/// object store first (see [`crate::files`]), the row that names them commits after.
pub async fn add_document<S, B, E>(
    app: &App,
    company: CompanyId,
    case: CaseId,
    upload: Upload<S>,
) -> Result<Document>
where
    S: Stream<Item = std::result::Result<B, E>>,
    B: AsRef<[u8]>,
    E: std::fmt::Display,
{
    {
        // Nothing is uploaded for a case that does not exist.
        let mut conn = app.store().conn().await?;
        require_case(&mut conn, company, case).await?;
    }
    let spooled = files::spool(app, upload.body, "document").await?;
    let staged = files::stage(app, company, &spooled).await?;
    let stored = async {
        let now = app.now();
        let mut tx = app.store().begin().await?;
        let case = cases::get(&mut tx, company, case)
            .await
            .or_not_found("case", &case.to_string())?;
        files::claim(&mut tx, &staged).await?;
        let new = new_document(
            &staged,
            &spooled,
            (&upload.file_name, &upload.content_type),
            DocumentKind::Document,
            Some(case.id),
            None,
        );
        let document = documents::create(&mut tx, company, &new, now).await?;
        let change = PlatformChange::DocumentStored {
            case: &case,
            document: &document,
        };
        fanout::platform_change(app, &mut tx, company, change, now).await?;
        tx.commit().await?;
        Ok(document)
    }
    .await;
    if stored.is_err() {
        files::discard(app, &staged).await;
    }
    stored
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

/// A stored file's metadata (document or recording).
pub async fn get(app: &App, company: CompanyId, id: &str) -> Result<Document> {
    let mut conn = app.store().conn().await?;
    documents::get(&mut conn, company, id)
        .await
        .or_not_found("document", id)
}

/// A stored file (document or recording) with its bytes, streamed from the object store.
pub async fn download(app: &App, company: CompanyId, id: &str) -> Result<Download> {
    let document = get(app, company, id).await?;
    let body = files::open(app, company, &document.id).await?;
    Ok(Download { document, body })
}

/// A stored recording and what probing found in it (format, duration).
pub struct StoredRecording {
    pub document: Document,
    pub audio: AudioInfo,
}

/// Stores a call's recording (wav, mp3, m4a/aac, ogg/vorbis or flac). A file that is not audio
/// of those kinds is a validation error on `file`, and nothing is stored. The CRMs hear of it in
/// the same transaction (Law Ruler sends it as MP3, transcoded when it is not MP3).
pub async fn add_recording<S, B, E>(
    app: &App,
    company: CompanyId,
    call: CallId,
    upload: Upload<S>,
) -> Result<StoredRecording>
where
    S: Stream<Item = std::result::Result<B, E>>,
    B: AsRef<[u8]>,
    E: std::fmt::Display,
{
    {
        let mut conn = app.store().conn().await?;
        activity::get_call(&mut conn, company, call)
            .await
            .or_not_found("call", &call.to_string())?;
    }
    let spooled = files::spool(app, upload.body, "recording").await?;
    // Checked before anything is stored: a recording that cannot become MP3 is refused now,
    // not discovered when it is sent. The spooled file is mapped, not read into memory, and
    // probing is CPU work, so it runs off the async threads.
    let mapped = spooled.map().map_err(files::files_error)?;
    let (content_type, file_name) = (upload.content_type.clone(), upload.file_name.clone());
    let probed = tokio::task::spawn_blocking(move || {
        casebridge_audio::probe_shared(
            &mapped,
            casebridge_audio::Hint {
                content_type: Some(&content_type),
                file_name: Some(&file_name),
            },
        )
    })
    .await
    .map_err(|e| AppError::Internal(format!("probing the recording: {e}")))?;
    let audio = probed.map_err(|e| ValidationError::single("file", e.to_string()))?;
    let staged = files::stage(app, company, &spooled).await?;
    let stored = async {
        let now = app.now();
        let mut tx = app.store().begin().await?;
        // Locked, so an analysis arriving at the same moment either sees this recording or is
        // seen.
        let call = activity::get_call_for_update(&mut tx, company, call)
            .await
            .or_not_found("call", &call.to_string())?;
        files::claim(&mut tx, &staged).await?;
        let new = new_document(
            &staged,
            &spooled,
            (&upload.file_name, &upload.content_type),
            DocumentKind::Recording,
            call.case_id,
            Some(call.id),
        );
        let document = documents::create(&mut tx, company, &new, now).await?;
        let change = PlatformChange::RecordingStored {
            call: &call,
            recording: &document,
        };
        fanout::platform_change(app, &mut tx, company, change, now).await?;
        tx.commit().await?;
        Ok(document)
    }
    .await;
    match stored {
        Ok(document) => Ok(StoredRecording { document, audio }),
        Err(e) => {
            files::discard(app, &staged).await;
            Err(e)
        }
    }
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
