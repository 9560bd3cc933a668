//! File bytes: case documents and call recordings, kept in an object store (P5).
//!
//! The database keeps a file's metadata, its SHA-256 and its object key; the bytes live here:
//! in a folder under the data directory by default (`{data_dir}/files`), or in S3-compatible
//! storage when `CASEBRIDGE_OBJECT_STORE_URL` is `s3://bucket[/prefix]`. Both go through the
//! `object_store` crate.
//!
//! - **Uploads are spooled**: [`Files::spool`] streams a request body to a temporary file in the
//!   spool folder, hashing and counting as it goes and stopping at the size limit, so memory stays
//!   flat whatever the file's size. [`Files::put`] then streams the spooled file to the store
//!   (one PUT below [`PART_SIZE`], a multipart upload with at most [`PARTS_IN_FLIGHT`] parts in
//!   memory above it).
//! - **Reads stream**: [`Files::get`] hands out the object's byte stream.
//! - **Keys** are `documents/{company}/{document id}` ([`ObjectKey::document`]): deterministic, so
//!   a write repeated after a crash overwrites the same object instead of leaving a second one.
//!
//! Ordering against the database (that a row never names a missing object, and an object whose
//! row never committed is removed) is the services' job: they reserve the key in the database
//! before the object is written, and the sweep deletes reserved keys that no row claimed.

use std::fmt;
use std::path::{Path as FsPath, PathBuf};
use std::sync::Arc;

use bytes::Bytes;
use futures::stream::BoxStream;
use futures::{Stream, StreamExt, TryStreamExt};
use object_store::aws::AmazonS3Builder;
use object_store::local::LocalFileSystem;
use object_store::path::Path;
use object_store::prefix::PrefixStore;
use object_store::{ObjectStore, PutPayload, WriteMultipart};
use secrecy::{ExposeSecret, SecretString};
use sha2::{Digest, Sha256};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// The largest document or recording casebridge keeps (512 MiB: about 4 hours of 16 kHz mono
/// WAV), whether uploaded or pulled from a CRM.
pub const FILE_LIMIT_BYTES: u64 = 512 * 1024 * 1024;

/// Files at least this large go up as a multipart upload of parts this size (S3's minimum part
/// is 5 MiB); smaller ones in one PUT.
pub const PART_SIZE: usize = 8 * 1024 * 1024;
/// At most this many parts of one upload are in memory (being sent) at once.
pub const PARTS_IN_FLIGHT: usize = 2;

/// Where file bytes go, as configured.
#[derive(Clone, Default)]
pub struct StoreSettings {
    /// `None`: a folder under the data directory. Otherwise `file:///absolute/path` or
    /// `s3://bucket[/prefix]`.
    pub url: Option<String>,
    /// S3 region (default: `AWS_REGION`, else `us-east-1`).
    pub region: Option<String>,
    /// S3-compatible endpoint, e.g. `http://127.0.0.1:9000` (default: AWS). An `http://`
    /// endpoint allows plain HTTP to it.
    pub endpoint: Option<String>,
    /// S3 credentials (default: the usual `AWS_ACCESS_KEY_ID`/`AWS_SECRET_ACCESS_KEY`, or the
    /// instance's role).
    pub access_key_id: Option<String>,
    pub secret_access_key: Option<SecretString>,
}

impl fmt::Debug for StoreSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StoreSettings")
            .field("url", &self.url)
            .field("region", &self.region)
            .field("endpoint", &self.endpoint)
            .field("access_key_id", &self.access_key_id)
            .field(
                "secret_access_key",
                &self.secret_access_key.as_ref().map(|_| "***"),
            )
            .finish()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum FilesError {
    /// The configured store cannot be used (bad URL, missing bucket, unwritable folder).
    #[error("the object store is misconfigured: {0}")]
    Config(String),
    #[error("no object `{0}` in the object store")]
    NotFound(String),
    /// The store could not be reached or answered with an error; worth retrying.
    #[error("the object store failed: {0}")]
    Store(String),
    #[error("spooling the upload to disk failed: {0}")]
    Io(#[from] std::io::Error),
}

impl From<object_store::Error> for FilesError {
    fn from(e: object_store::Error) -> Self {
        match e {
            object_store::Error::NotFound { path, .. } => FilesError::NotFound(path),
            other => FilesError::Store(other.to_string()),
        }
    }
}

/// Why an upload body could not be spooled.
#[derive(Debug, thiserror::Error)]
pub enum SpoolError {
    #[error("the upload is larger than {limit} bytes")]
    TooLarge { limit: u64 },
    /// Reading the request body failed (the client went away, a malformed multipart part).
    #[error("{0}")]
    Body(String),
    #[error(transparent)]
    Files(#[from] FilesError),
}

/// An object's name in the store.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ObjectKey(String);

impl ObjectKey {
    /// The key of a document's (or recording's) bytes.
    pub fn document(company: impl fmt::Display, document: impl fmt::Display) -> Self {
        Self(format!("documents/{company}/{document}"))
    }

    /// A key as stored in the database.
    pub fn from_stored(key: impl Into<String>) -> Self {
        Self(key.into())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    fn path(&self) -> Path {
        Path::from(self.0.as_str())
    }
}

impl fmt::Display for ObjectKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The object store and the spool folder. Cheap to clone.
#[derive(Clone)]
pub struct Files {
    store: Arc<dyn ObjectStore>,
    spool_dir: PathBuf,
    /// `local folder /…` or `s3://bucket/prefix`, for logs and the operator (never a secret).
    describe: String,
}

impl fmt::Debug for Files {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Files")
            .field("store", &self.describe)
            .field("spool_dir", &self.spool_dir)
            .finish()
    }
}

impl Files {
    /// The store the settings name; the local default lives in `{data_dir}/files`. Uploads are
    /// spooled in `{data_dir}/spool`. Folders are created when missing.
    pub fn open(settings: &StoreSettings, data_dir: &FsPath) -> Result<Files, FilesError> {
        let spool_dir = data_dir.join("spool");
        match settings.url.as_deref().map(str::trim) {
            None | Some("") => Self::local(&data_dir.join("files"), spool_dir),
            Some(raw) => {
                let url = url::Url::parse(raw)
                    .map_err(|e| FilesError::Config(format!("`{raw}` is not a URL: {e}")))?;
                match url.scheme() {
                    "file" => {
                        let dir = url.to_file_path().map_err(|()| {
                            FilesError::Config(format!("`{raw}` is not an absolute file path"))
                        })?;
                        Self::local(&dir, spool_dir)
                    }
                    "s3" => Self::s3(&url, settings, spool_dir),
                    other => Err(FilesError::Config(format!(
                        "`{other}://` is not supported; use file:///path or s3://bucket[/prefix]"
                    ))),
                }
            }
        }
    }

    /// A folder on this machine.
    pub fn local(dir: &FsPath, spool_dir: PathBuf) -> Result<Files, FilesError> {
        std::fs::create_dir_all(dir).map_err(|e| {
            FilesError::Config(format!("cannot create the folder {}: {e}", dir.display()))
        })?;
        let store = LocalFileSystem::new_with_prefix(dir)
            .map_err(|e| FilesError::Config(e.to_string()))?
            // Deleting a file removes the folders it leaves empty.
            .with_automatic_cleanup(true);
        Self::with_store(
            Arc::new(store),
            spool_dir,
            format!("local folder {}", dir.display()),
        )
    }

    fn s3(url: &url::Url, s: &StoreSettings, spool_dir: PathBuf) -> Result<Files, FilesError> {
        let bucket = url
            .host_str()
            .filter(|b| !b.is_empty())
            .ok_or_else(|| FilesError::Config("an s3:// URL needs a bucket: s3://bucket".into()))?;
        let mut builder = AmazonS3Builder::from_env().with_bucket_name(bucket);
        if let Some(region) = &s.region {
            builder = builder.with_region(region);
        } else if std::env::var_os("AWS_REGION").is_none()
            && std::env::var_os("AWS_DEFAULT_REGION").is_none()
        {
            builder = builder.with_region("us-east-1");
        }
        if let Some(endpoint) = &s.endpoint {
            builder = builder
                .with_endpoint(endpoint)
                .with_allow_http(endpoint.starts_with("http://"));
        }
        if let Some(id) = &s.access_key_id {
            builder = builder.with_access_key_id(id);
        }
        if let Some(secret) = &s.secret_access_key {
            builder = builder.with_secret_access_key(secret.expose_secret());
        }
        let s3 = builder
            .build()
            .map_err(|e| FilesError::Config(e.to_string()))?;
        let prefix = url.path().trim_matches('/');
        let describe = if prefix.is_empty() {
            format!("s3://{bucket}")
        } else {
            format!("s3://{bucket}/{prefix}")
        };
        let store: Arc<dyn ObjectStore> = if prefix.is_empty() {
            Arc::new(s3)
        } else {
            Arc::new(PrefixStore::new(s3, prefix))
        };
        Self::with_store(store, spool_dir, describe)
    }

    fn with_store(
        store: Arc<dyn ObjectStore>,
        spool_dir: PathBuf,
        describe: String,
    ) -> Result<Files, FilesError> {
        std::fs::create_dir_all(&spool_dir).map_err(|e| {
            FilesError::Config(format!(
                "cannot create the spool folder {}: {e}",
                spool_dir.display()
            ))
        })?;
        Ok(Files {
            store,
            spool_dir,
            describe,
        })
    }

    /// What the store is (`local folder …`, `s3://…`), for logs.
    pub fn describe(&self) -> &str {
        &self.describe
    }

    /// Streams `body` to a temporary file, hashing it, and stops with
    /// [`SpoolError::TooLarge`] as soon as it passes `limit` bytes. The file is deleted when the
    /// [`Spooled`] is dropped.
    pub async fn spool<S, B, E>(&self, body: S, limit: u64) -> Result<Spooled, SpoolError>
    where
        S: Stream<Item = Result<B, E>>,
        B: AsRef<[u8]>,
        E: fmt::Display,
    {
        let temp = tempfile::Builder::new()
            .prefix("upload-")
            .tempfile_in(&self.spool_dir)
            .map_err(FilesError::Io)?;
        let mut out = tokio::fs::File::from_std(temp.reopen().map_err(FilesError::Io)?);
        let mut hasher = Sha256::new();
        let mut size: u64 = 0;
        let mut body = std::pin::pin!(body);
        while let Some(chunk) = body.next().await {
            let chunk = chunk.map_err(|e| SpoolError::Body(e.to_string()))?;
            let chunk = chunk.as_ref();
            size += chunk.len() as u64;
            if size > limit {
                return Err(SpoolError::TooLarge { limit });
            }
            hasher.update(chunk);
            out.write_all(chunk).await.map_err(FilesError::Io)?;
        }
        out.flush().await.map_err(FilesError::Io)?;
        Ok(Spooled {
            temp,
            size,
            sha256: format!("{:x}", hasher.finalize()),
        })
    }

    /// Writes a spooled upload to `key`, streaming it from disk. Durable when this returns.
    pub async fn put(&self, key: &ObjectKey, spooled: &Spooled) -> Result<(), FilesError> {
        let mut file = tokio::fs::File::open(spooled.temp.path()).await?;
        if spooled.size < PART_SIZE as u64 {
            let mut buf = Vec::with_capacity(spooled.size as usize);
            file.read_to_end(&mut buf).await?;
            return self.put_bytes(key, Bytes::from(buf)).await;
        }
        let upload = self.store.put_multipart(&key.path()).await?;
        let mut writer = WriteMultipart::new_with_chunk_size(upload, PART_SIZE);
        let mut buf = vec![0u8; 1024 * 1024];
        let sent = async {
            loop {
                let n = file.read(&mut buf).await?;
                if n == 0 {
                    break;
                }
                writer.wait_for_capacity(PARTS_IN_FLIGHT).await?;
                writer.write(&buf[..n]);
            }
            Ok::<(), FilesError>(())
        }
        .await;
        match sent {
            Ok(()) => {
                writer.finish().await?;
                Ok(())
            }
            Err(e) => {
                if let Err(abort) = writer.abort().await {
                    tracing::warn!(key = %key, error = %abort, "aborting a multipart upload failed");
                }
                Err(e)
            }
        }
    }

    /// Writes `bytes` to `key` in one request.
    pub async fn put_bytes(&self, key: &ObjectKey, bytes: Bytes) -> Result<(), FilesError> {
        self.store
            .put(&key.path(), PutPayload::from_bytes(bytes))
            .await?;
        Ok(())
    }

    /// The object's bytes as a stream, read as they are sent on.
    pub async fn get(
        &self,
        key: &ObjectKey,
    ) -> Result<BoxStream<'static, Result<Bytes, FilesError>>, FilesError> {
        let got = self.store.get(&key.path()).await?;
        Ok(got.into_stream().map_err(FilesError::from).boxed())
    }

    /// The whole object in memory (for the CRM uploads that need it whole, such as transcoding).
    pub async fn read_all(&self, key: &ObjectKey) -> Result<Bytes, FilesError> {
        Ok(self.store.get(&key.path()).await?.bytes().await?)
    }

    /// Whether an object exists.
    pub async fn exists(&self, key: &ObjectKey) -> Result<bool, FilesError> {
        match self.store.head(&key.path()).await {
            Ok(_) => Ok(true),
            Err(object_store::Error::NotFound { .. }) => Ok(false),
            Err(e) => Err(e.into()),
        }
    }

    /// Deletes an object; one already gone is not an error.
    pub async fn delete(&self, key: &ObjectKey) -> Result<(), FilesError> {
        match self.store.delete(&key.path()).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }
}

/// An upload spooled to disk: its size, its SHA-256, and the temporary file (removed on drop).
pub struct Spooled {
    temp: tempfile::NamedTempFile,
    size: u64,
    sha256: String,
}

impl Spooled {
    pub fn size(&self) -> u64 {
        self.size
    }

    /// Hex SHA-256 of the content.
    pub fn sha256(&self) -> &str {
        &self.sha256
    }

    /// The content as shared bytes backed by the spooled file (memory-mapped), so a large file
    /// can be inspected (probing a recording) without reading it into memory: only the pages
    /// touched are loaded, and the kernel may drop them again.
    pub fn map(&self) -> Result<Bytes, FilesError> {
        if self.size == 0 {
            return Ok(Bytes::new());
        }
        let file = std::fs::File::open(self.temp.path())?;
        // SAFETY: the temporary file is private to this process (created by `spool` with a
        // random name, 0600) and nothing writes to it after `spool` returned, so the mapping
        // cannot change under the bytes handed out.
        let map = unsafe { memmap2::Mmap::map(&file)? };
        Ok(Bytes::from_owner(map))
    }
}

impl fmt::Debug for Spooled {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Spooled")
            .field("size", &self.size)
            .field("sha256", &self.sha256)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn files() -> (tempfile::TempDir, Files) {
        let dir = tempfile::tempdir().unwrap();
        let files = Files::open(&StoreSettings::default(), dir.path()).unwrap();
        (dir, files)
    }

    fn chunks(parts: &[&[u8]]) -> impl Stream<Item = Result<Vec<u8>, String>> {
        futures::stream::iter(parts.iter().map(|p| Ok(p.to_vec())).collect::<Vec<_>>())
    }

    #[tokio::test]
    async fn spooling_hashes_counts_and_stops_at_the_limit() {
        let (dir, files) = files();
        let spooled = files
            .spool(chunks(&[b"hello ", b"world"]), 11)
            .await
            .unwrap();
        assert_eq!(spooled.size(), 11);
        assert_eq!(
            spooled.sha256(),
            "b94d27b9934d3e08a52e52d7da7dabfac484efe37a5380ee9088f7ace2efcde9"
        );
        assert_eq!(&spooled.map().unwrap()[..], b"hello world");

        let err = files
            .spool(chunks(&[b"hello ", b"world!"]), 11)
            .await
            .unwrap_err();
        assert!(matches!(err, SpoolError::TooLarge { limit: 11 }), "{err}");
        let body_error = futures::stream::iter(vec![Ok(b"a".to_vec()), Err("reset by peer")]);
        let err = files.spool(body_error, 100).await.unwrap_err();
        assert_eq!(err.to_string(), "reset by peer");
        drop(spooled);
        let left = std::fs::read_dir(dir.path().join("spool")).unwrap().count();
        assert_eq!(left, 0, "spooled files are removed, also after a refusal");
    }

    #[tokio::test]
    async fn a_large_file_goes_up_in_parts_and_reads_back_whole() {
        let (_dir, files) = files();
        let data: Vec<u8> = (0..PART_SIZE * 2 + 999).map(|i| (i % 253) as u8).collect();
        let spooled = files
            .spool(
                futures::stream::iter(data.chunks(65_536).map(Ok::<_, String>)),
                u64::MAX,
            )
            .await
            .unwrap();
        let key = ObjectKey::document("c", "d");
        files.put(&key, &spooled).await.unwrap();
        let mut read = Vec::new();
        let mut stream = files.get(&key).await.unwrap();
        while let Some(chunk) = stream.next().await {
            read.extend_from_slice(&chunk.unwrap());
        }
        assert!(read == data);
        assert!(files.exists(&key).await.unwrap());
        files.delete(&key).await.unwrap();
        files.delete(&key).await.unwrap();
        assert!(!files.exists(&key).await.unwrap());
        assert!(matches!(
            files.get(&key).await,
            Err(FilesError::NotFound(_))
        ));
    }

    #[test]
    fn bad_urls_are_refused_with_the_reason() {
        let dir = tempfile::tempdir().unwrap();
        let open = |url: &str| {
            Files::open(
                &StoreSettings {
                    url: Some(url.into()),
                    ..StoreSettings::default()
                },
                dir.path(),
            )
            .unwrap_err()
            .to_string()
        };
        assert!(open("ftp://x/y").contains("`ftp://` is not supported"));
        assert!(open("s3:///prefix").contains("needs a bucket"));
        assert!(open("not a url").contains("is not a URL"));
    }

    #[test]
    fn the_secret_never_shows_in_debug_output() {
        let s = StoreSettings {
            secret_access_key: Some("hunter2-secret".to_owned().into()),
            ..StoreSettings::default()
        };
        assert!(!format!("{s:?}").contains("hunter2"));
    }
}
