//! File bytes in the object store (P5): staging an upload, reading a file back, the sweep of
//! orphan objects and the move of old inline files out of the database.
//!
//! The order that keeps the database and the store consistent:
//! 1. the upload is spooled to disk (hashed, size-checked) before anything is written;
//! 2. its object key is **reserved** in its own committed transaction (`file_uploads`);
//! 3. the object is written;
//! 4. the transaction that inserts the row naming the object **claims** the reservation (deletes
//!    it); if the reservation is gone, the sweep took the key and the row does not commit.
//!
//! So a row never names a missing object, and an object whose row never committed still has its
//! reservation, from which [`sweep`] finds and deletes it. The sweep takes the reservation (a
//! locking delete) before it deletes the object, so an upload finishing at that moment loses
//! the race cleanly instead of committing a row whose object the sweep is removing.

use std::time::Duration;

use bytes::Bytes;
use casebridge_domain::ids::CompanyId;
use casebridge_files::{FilesError, ObjectKey, SpoolError, Spooled};
use casebridge_store::documents::{self, Content};
use futures::stream::BoxStream;
use futures::{Stream, StreamExt};

use crate::{App, AppError, Result};

pub use casebridge_files::{Files, FILE_LIMIT_BYTES};

/// How long an upload may take between reserving its key and committing its row before the
/// sweep treats the object as an orphan.
pub const ORPHAN_AFTER: Duration = Duration::from_secs(3600);

/// A file's bytes, streamed from the store.
pub type ByteStream = BoxStream<'static, std::result::Result<Bytes, FilesError>>;

pub(crate) fn files_error(e: FilesError) -> AppError {
    match e {
        FilesError::NotFound(key) => {
            AppError::Internal(format!("the object {key} of a stored file is missing"))
        }
        other => AppError::Unavailable(other.to_string()),
    }
}

/// Spools an upload body to disk. An empty body is a validation error on `file`.
pub(crate) async fn spool<S, B, E>(app: &App, body: S, what: &str) -> Result<Spooled>
where
    S: Stream<Item = std::result::Result<B, E>>,
    B: AsRef<[u8]>,
    E: std::fmt::Display,
{
    let spooled = app
        .files()
        .spool(body, FILE_LIMIT_BYTES)
        .await
        .map_err(|e| match e {
            SpoolError::TooLarge { limit } => AppError::PayloadTooLarge(format!(
                "the {what} is larger than {} MiB",
                limit / (1024 * 1024)
            )),
            SpoolError::Body(e) => AppError::BadRequest(format!("reading the {what}: {e}")),
            SpoolError::Files(e) => files_error(e),
        })?;
    if spooled.size() == 0 {
        return Err(casebridge_domain::ValidationError::single(
            "file",
            format!("the {what} is empty"),
        )
        .into());
    }
    Ok(spooled)
}

/// An object written under a reserved key, not yet named by a committed row.
pub(crate) struct Staged {
    pub document_id: String,
    pub key: ObjectKey,
}

/// Reserves a key for a new document and writes the spooled upload there.
pub(crate) async fn stage(app: &App, company: CompanyId, spooled: &Spooled) -> Result<Staged> {
    let document_id = documents::new_id();
    let key = ObjectKey::document(company, &document_id);
    {
        let mut conn = app.store().conn().await?;
        documents::reserve_upload(&mut conn, company, key.as_str(), app.now()).await?;
    }
    let staged = Staged { document_id, key };
    if let Err(e) = app.files().put(&staged.key, spooled).await {
        discard(app, &staged).await;
        return Err(files_error(e));
    }
    Ok(staged)
}

/// Claims a staged object's reservation in the transaction that inserts its row.
pub(crate) async fn claim(tx: &mut casebridge_store::Tx, staged: &Staged) -> Result<()> {
    if documents::end_reservation(tx, staged.key.as_str(), None).await? {
        Ok(())
    } else {
        Err(AppError::Unavailable(
            "the upload took too long and was cleaned up; send it again".into(),
        ))
    }
}

/// Removes a staged object whose row did not commit (best effort: what is left, the sweep
/// removes).
pub(crate) async fn discard(app: &App, staged: &Staged) {
    if let Err(e) = app.files().delete(&staged.key).await {
        tracing::warn!(key = %staged.key, error = %e, "deleting an unused upload failed");
        return;
    }
    match app.store().conn().await {
        Ok(mut conn) => {
            if let Err(e) = documents::end_reservation(&mut conn, staged.key.as_str(), None).await {
                tracing::warn!(key = %staged.key, error = %e, "ending an upload reservation failed");
            }
        }
        Err(e) => tracing::warn!(error = %e, "ending an upload reservation failed"),
    }
}

/// A stored file's bytes as a stream (from the object store, or from the row for a file not yet
/// moved out of the database).
pub(crate) async fn open(app: &App, company: CompanyId, document_id: &str) -> Result<ByteStream> {
    let content = {
        let mut conn = app.store().conn().await?;
        documents::content(&mut conn, company, document_id).await?
    };
    match content {
        Content::Object(key) => app
            .files()
            .get(&ObjectKey::from_stored(key))
            .await
            .map_err(files_error),
        Content::Inline(bytes) => {
            Ok(futures::stream::once(async move { Ok(Bytes::from(bytes)) }).boxed())
        }
    }
}

/// What one sweep did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Swept {
    /// Orphan objects deleted (uploads whose row never committed).
    pub deleted: u64,
    /// Orphans whose object could not be deleted now (left for the next sweep).
    pub failed: u64,
}

/// Deletes the objects of uploads reserved more than `older_than` ago whose row never committed.
pub async fn sweep(app: &App, older_than: Duration) -> Result<Swept> {
    let before = app
        .now()
        .checked_sub(
            jiff::SignedDuration::try_from(older_than).unwrap_or(jiff::SignedDuration::MAX),
        )
        .unwrap_or(jiff::Timestamp::MIN);
    let mut swept = Swept::default();
    loop {
        let keys = {
            let mut conn = app.store().conn().await?;
            documents::stale_reservations(&mut conn, before, 100).await?
        };
        if keys.is_empty() {
            return Ok(swept);
        }
        let mut progressed = false;
        for key in keys {
            // The reservation is taken first and the transaction stays open while the object
            // is deleted: an upload claiming it now waits and then fails instead of committing.
            let mut tx = app.store().begin().await?;
            if !documents::end_reservation(&mut tx, &key, Some(before)).await? {
                continue;
            }
            match app
                .files()
                .delete(&ObjectKey::from_stored(key.clone()))
                .await
            {
                Ok(()) => {
                    tx.commit().await?;
                    swept.deleted += 1;
                    progressed = true;
                }
                Err(e) => {
                    tracing::warn!(key = %key, error = %e, "deleting an orphan upload failed");
                    swept.failed += 1;
                }
            }
        }
        if !progressed {
            return Ok(swept);
        }
    }
}

/// Sweeps orphan uploads every `every` until `shutdown`.
pub async fn sweep_loop(app: App, every: Duration, shutdown: tokio_util::sync::CancellationToken) {
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = tokio::time::sleep(every) => {}
        }
        match sweep(&app, ORPHAN_AFTER).await {
            Ok(s) if s.deleted > 0 || s.failed > 0 => {
                tracing::info!(
                    deleted = s.deleted,
                    failed = s.failed,
                    "swept orphan uploads"
                );
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "sweeping orphan uploads failed"),
        }
    }
}

/// How far a move of inline files to the object store got.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Moved {
    pub moved: u64,
    pub bytes: u64,
    /// Files still in the database when the move started.
    pub total: u64,
}

/// Moves every file still held in the database to the object store, one at a time: the object
/// is written under its final key, then the row is pointed at it and its bytes dropped. Safe to
/// interrupt and run again (a file written but not yet pointed at is written again under the
/// same key). `progress` hears after each file.
pub async fn migrate_inline(app: &App, mut progress: impl FnMut(&Moved)) -> Result<Moved> {
    let mut done = Moved {
        total: {
            let mut conn = app.store().conn().await?;
            documents::inline_count(&mut conn).await?
        },
        ..Moved::default()
    };
    progress(&done);
    let mut after = String::new();
    loop {
        let next = {
            let mut conn = app.store().conn().await?;
            documents::next_inline(&mut conn, &after).await?
        };
        let Some(file) = next else {
            return Ok(done);
        };
        let key = ObjectKey::document(file.company, &file.id);
        let size = file.bytes.len() as u64;
        app.files()
            .put_bytes(&key, Bytes::from(file.bytes))
            .await
            .map_err(files_error)?;
        let mut conn = app.store().conn().await?;
        if documents::moved_to_object(&mut conn, &file.id, key.as_str()).await? {
            done.moved += 1;
            done.bytes += size;
        }
        after = file.id;
        progress(&done);
    }
}
