use std::fmt;
use std::fs;
use std::io::{self, Write as _};
use std::path::Path;
use std::sync::Arc;

use aes_gcm::aead::{Aead as _, KeyInit as _, Payload};
use aes_gcm::{Aes256Gcm, Key, Nonce};
use base64::engine::general_purpose::{
    GeneralPurpose, GeneralPurposeConfig, STANDARD, URL_SAFE_NO_PAD,
};
use base64::engine::DecodePaddingMode;
use base64::Engine as _;
use rand::rngs::OsRng;
use rand::RngCore as _;
use secrecy::zeroize::Zeroize as _;
use secrecy::{ExposeSecret as _, SecretBox, SecretString};
use sha2::{Digest as _, Sha256};

use crate::CryptoError;

const KEY_LEN: usize = 32;
const NONCE_LEN: usize = 12;
const TAG_LEN: usize = 16;
const KEY_ID_LEN: usize = 8;
/// Version tag of the sealed format, so a future format can be told apart from this one.
const SEALED_PREFIX: &str = "v1.";

/// Standard alphabet, padding optional: operators paste keys from `openssl rand -base64 32`, but a
/// key that lost its trailing `=` on the way is still the same key.
const KEY_BASE64: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// A 256-bit AES master key.
///
/// The bytes live in a [`SecretBox`], so they are wiped from memory on drop, and `Debug` prints
/// only the key id: a key that ends up in a log line or a panic message reveals nothing.
pub struct MasterKey {
    bytes: SecretBox<[u8; KEY_LEN]>,
    id: String,
}

impl MasterKey {
    /// Parses a key from standard base64 (surrounding whitespace, such as the newline at the end
    /// of a key file, is ignored). Errors say what is wrong without echoing the input.
    pub fn from_base64(encoded: &str) -> Result<Self, CryptoError> {
        let encoded = encoded.trim();
        if encoded.is_empty() {
            return Err(CryptoError::MalformedKey("it is empty".into()));
        }
        let mut decoded = KEY_BASE64.decode(encoded).map_err(|_| {
            // The decoder's message names the offending byte, which is part of the key.
            CryptoError::MalformedKey(
                "it is not valid standard base64 (generate one with `openssl rand -base64 32`)"
                    .into(),
            )
        })?;
        if decoded.len() != KEY_LEN {
            let len = decoded.len();
            decoded.zeroize();
            return Err(CryptoError::MalformedKey(format!(
                "it decodes to {len} bytes, but a master key must be exactly {KEY_LEN} bytes"
            )));
        }
        let key = Self::from_bytes(|bytes| bytes.copy_from_slice(&decoded));
        decoded.zeroize();
        Ok(key)
    }

    /// Generates a new random key from the operating system's CSPRNG.
    pub fn generate() -> Self {
        Self::from_bytes(|bytes| OsRng.fill_bytes(bytes))
    }

    /// The key in standard base64, the form [`MasterKey::from_base64`] and the key file use.
    pub fn to_base64(&self) -> SecretString {
        SecretString::from(STANDARD.encode(self.bytes.expose_secret()))
    }

    /// A short, non-secret fingerprint of the key (first 8 hex characters of its SHA-256).
    /// Sealed values carry it so the right key is picked during rotation; operators can compare
    /// it to tell keys apart without revealing them.
    pub fn key_id(&self) -> String {
        self.id.clone()
    }

    fn from_bytes(init: impl FnOnce(&mut [u8; KEY_LEN])) -> Self {
        let bytes = SecretBox::init_with_mut(init);
        let digest = Sha256::digest(bytes.expose_secret());
        let mut id = crate::hex(&digest);
        id.truncate(KEY_ID_LEN);
        Self { bytes, id }
    }

    fn cipher(&self) -> Aes256Gcm {
        Aes256Gcm::new(Key::<Aes256Gcm>::from_slice(self.bytes.expose_secret()))
    }
}

impl fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "MasterKey({})", self.id)
    }
}

/// The primary master key, which seals, plus older keys that can still open values sealed before
/// a rotation.
///
/// Cheap to clone (the keys are shared), so it can live in application state.
#[derive(Clone)]
pub struct Keyring {
    /// Primary first, then the older keys in the order given.
    keys: Arc<[MasterKey]>,
}

impl Keyring {
    pub fn new(primary: MasterKey, older: Vec<MasterKey>) -> Self {
        let mut keys = Vec::with_capacity(older.len() + 1);
        keys.push(primary);
        keys.extend(older);
        Self { keys: keys.into() }
    }

    pub fn primary_key_id(&self) -> String {
        self.primary().key_id()
    }

    /// Encrypts `plaintext` with the primary key (AES-256-GCM, random 96-bit nonce) into
    /// `v1.<keyid>.<base64url(nonce || ciphertext || tag)>`.
    ///
    /// `aad` binds the ciphertext to where it is stored (e.g. `company/<id>/lawruler/password`):
    /// it is authenticated but not stored, so [`Keyring::open`] fails if the value is copied to
    /// another row or another company. Random nonces are safe here because the number of values
    /// sealed under one key stays far below the 2^32 limit for AES-GCM with random nonces.
    pub fn seal(&self, plaintext: &str, aad: &str) -> String {
        let key = self.primary();
        let mut nonce = [0u8; NONCE_LEN];
        OsRng.fill_bytes(&mut nonce);
        let ciphertext = key
            .cipher()
            .encrypt(
                Nonce::from_slice(&nonce),
                Payload {
                    msg: plaintext.as_bytes(),
                    aad: aad.as_bytes(),
                },
            )
            // AES-GCM only fails for messages over 64 GiB, which no secret is.
            .expect("AES-GCM encryption of an in-memory secret cannot fail");
        let mut data = Vec::with_capacity(NONCE_LEN + ciphertext.len());
        data.extend_from_slice(&nonce);
        data.extend_from_slice(&ciphertext);
        format!("{SEALED_PREFIX}{}.{}", key.id, URL_SAFE_NO_PAD.encode(data))
    }

    /// Decrypts a value produced by [`Keyring::seal`] with the same `aad`, using whichever
    /// configured key sealed it.
    pub fn open(&self, sealed: &str, aad: &str) -> Result<SecretString, CryptoError> {
        let parsed = parse_sealed(sealed)?;
        let mut candidates = self
            .keys
            .iter()
            .filter(|key| key.id == parsed.key_id)
            .peekable();
        if candidates.peek().is_none() {
            return Err(CryptoError::UnknownKeyId(parsed.key_id.to_owned()));
        }
        let (nonce, ciphertext) = parsed.data.split_at(NONCE_LEN);
        // Key ids are 32 bits, so two configured keys could in principle share one; trying each
        // match keeps that from ever making a value unreadable.
        let mut plaintext = candidates
            .find_map(|key| {
                key.cipher()
                    .decrypt(
                        Nonce::from_slice(nonce),
                        Payload {
                            msg: ciphertext,
                            aad: aad.as_bytes(),
                        },
                    )
                    .ok()
            })
            .ok_or(CryptoError::Decrypt)?;
        let secret = match std::str::from_utf8(&plaintext) {
            // Copy into an exactly-sized allocation and wipe the decrypt buffer, rather than
            // letting a String -> Box<str> conversion reallocate and leave a copy behind.
            Ok(text) => Ok(SecretString::from(Box::<str>::from(text))),
            // Authentic but not UTF-8: sealed by something other than `seal`.
            Err(_) => Err(CryptoError::Malformed),
        };
        plaintext.zeroize();
        secret
    }

    /// Whether `sealed` was sealed with a key other than the primary and should be re-sealed.
    ///
    /// Values sealed with an unknown key id also report `true` (re-sealing them will then surface
    /// [`CryptoError::UnknownKeyId`]); text that is not a sealed value at all reports `false`,
    /// since there is nothing to rotate.
    pub fn needs_rotation(&self, sealed: &str) -> bool {
        parse_sealed(sealed).is_ok_and(|parsed| parsed.key_id != self.primary().id)
    }

    fn primary(&self) -> &MasterKey {
        &self.keys[0]
    }
}

impl fmt::Debug for Keyring {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let older: Vec<&str> = self.keys[1..].iter().map(|k| k.id.as_str()).collect();
        f.debug_struct("Keyring")
            .field("primary", &self.primary().id)
            .field("older", &older)
            .finish()
    }
}

struct Sealed<'a> {
    key_id: &'a str,
    /// Nonce followed by ciphertext and tag; at least `NONCE_LEN + TAG_LEN` bytes.
    data: Vec<u8>,
}

fn parse_sealed(sealed: &str) -> Result<Sealed<'_>, CryptoError> {
    let rest = sealed
        .strip_prefix(SEALED_PREFIX)
        .ok_or(CryptoError::Malformed)?;
    let (key_id, encoded) = rest.split_once('.').ok_or(CryptoError::Malformed)?;
    let is_key_id = key_id.len() == KEY_ID_LEN
        && key_id
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
    if !is_key_id {
        return Err(CryptoError::Malformed);
    }
    let data = URL_SAFE_NO_PAD
        .decode(encoded)
        .map_err(|_| CryptoError::Malformed)?;
    if data.len() < NONCE_LEN + TAG_LEN {
        return Err(CryptoError::Malformed);
    }
    Ok(Sealed { key_id, data })
}

/// Reads the master key from `path`, or generates one there if the file does not exist.
///
/// Returns `(key, true)` when a key was generated, so the caller can warn that the key must be
/// backed up (losing it makes every stored secret unreadable).
///
/// The key is written to a private temporary file (mode 0600) in the same directory, synced, and
/// then published with a hard link, which like `create_new` fails if the name is taken. So two
/// processes starting at once never overwrite each other's key (the loser reads the winner's),
/// and nobody, not even after a crash, ever sees an empty or half-written key file. The directory
/// is synced too, because secrets sealed with the key may be committed right after.
pub fn load_or_generate_master_key(path: &Path) -> Result<(MasterKey, bool), CryptoError> {
    match read_key_file(path) {
        Err(CryptoError::Io(e)) if e.kind() == io::ErrorKind::NotFound => {}
        other => return other.map(|key| (key, false)),
    }

    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    fs::create_dir_all(dir).map_err(|e| with_path(e, dir))?;

    let key = MasterKey::generate();
    let file_name = path.file_name().map_or_else(
        || "master.key".into(),
        |name| name.to_string_lossy().into_owned(),
    );
    let mut suffix = [0u8; 8];
    OsRng.fill_bytes(&mut suffix);
    let tmp = dir.join(format!(".{file_name}.tmp-{}", crate::hex(&suffix)));

    let published = write_private_file(&tmp, &key).and_then(|()| fs::hard_link(&tmp, path));
    // The temporary name has served its purpose whether or not the link was made.
    let _ = fs::remove_file(&tmp);
    match published {
        Ok(()) => {
            sync_dir(dir).map_err(|e| with_path(e, dir))?;
            Ok((key, true))
        }
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
            read_key_file(path).map(|key| (key, false))
        }
        Err(e) => Err(with_path(e, path).into()),
    }
}

fn write_private_file(path: &Path, key: &MasterKey) -> io::Result<()> {
    let mut options = fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(path)?;
    file.write_all(key.to_base64().expose_secret().as_bytes())?;
    file.write_all(b"\n")?;
    file.sync_all()
}

fn read_key_file(path: &Path) -> Result<MasterKey, CryptoError> {
    let mut contents = fs::read_to_string(path).map_err(|e| with_path(e, path))?;
    let key = MasterKey::from_base64(&contents).map_err(|e| match e {
        CryptoError::MalformedKey(msg) => {
            CryptoError::MalformedKey(format!("key file {}: {msg}", path.display()))
        }
        other => other,
    });
    contents.zeroize();
    key
}

#[cfg(unix)]
fn sync_dir(dir: &Path) -> io::Result<()> {
    fs::File::open(dir)?.sync_all()
}

#[cfg(not(unix))]
fn sync_dir(_dir: &Path) -> io::Result<()> {
    Ok(())
}

/// `io::Error` does not say which file it is about; keep the kind and add the path.
fn with_path(e: io::Error, path: &Path) -> io::Error {
    io::Error::new(e.kind(), format!("{}: {e}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key_b64(byte: u8) -> String {
        STANDARD.encode([byte; KEY_LEN])
    }

    fn key(byte: u8) -> MasterKey {
        MasterKey::from_base64(&key_b64(byte)).unwrap()
    }

    const AAD: &str = "company/1/lawruler/password";

    #[test]
    fn seal_open_round_trip() {
        let ring = Keyring::new(key(1), vec![]);
        let sealed = ring.seal("hunter2", AAD);
        assert!(sealed.starts_with(&format!("v1.{}.", ring.primary_key_id())));
        assert!(!sealed.contains("hunter2"));
        assert_eq!(ring.open(&sealed, AAD).unwrap().expose_secret(), "hunter2");
        // Empty and non-ASCII plaintexts survive too.
        assert_eq!(
            ring.open(&ring.seal("", AAD), AAD).unwrap().expose_secret(),
            ""
        );
        let unicode = "pässwörd ✓";
        let opened = ring.open(&ring.seal(unicode, AAD), AAD).unwrap();
        assert_eq!(opened.expose_secret(), unicode);
    }

    #[test]
    fn sealing_twice_uses_fresh_nonces() {
        let ring = Keyring::new(key(1), vec![]);
        assert_ne!(ring.seal("same", AAD), ring.seal("same", AAD));
    }

    #[test]
    fn different_key_with_same_id_fails_to_decrypt() {
        let ring = Keyring::new(key(1), vec![]);
        let sealed = ring.seal("secret", AAD);
        // Forge the id so the lookup succeeds but the key is wrong.
        let other = Keyring::new(key(2), vec![]);
        let forged = sealed.replace(&ring.primary_key_id(), &other.primary_key_id());
        assert!(matches!(
            other.open(&forged, AAD),
            Err(CryptoError::Decrypt)
        ));
    }

    #[test]
    fn different_keyring_reports_unknown_key_id() {
        let sealed = Keyring::new(key(1), vec![]).seal("secret", AAD);
        let other = Keyring::new(key(2), vec![]);
        match other.open(&sealed, AAD) {
            Err(CryptoError::UnknownKeyId(id)) => assert_eq!(id, key(1).key_id()),
            other => panic!("expected UnknownKeyId, got {other:?}"),
        }
    }

    #[test]
    fn tampered_ciphertext_fails() {
        let ring = Keyring::new(key(1), vec![]);
        let sealed = ring.seal("secret", AAD);
        let (head, data) = sealed.rsplit_once('.').unwrap();
        let mut bytes = URL_SAFE_NO_PAD.decode(data).unwrap();
        for i in [0, NONCE_LEN, bytes.len() - 1] {
            let mut flipped = bytes.clone();
            flipped[i] ^= 0x01;
            let tampered = format!("{head}.{}", URL_SAFE_NO_PAD.encode(&flipped));
            assert!(
                matches!(ring.open(&tampered, AAD), Err(CryptoError::Decrypt)),
                "flipping byte {i} was not detected"
            );
        }
        // Truncating the tag is detected as well.
        bytes.pop();
        let truncated = format!("{head}.{}", URL_SAFE_NO_PAD.encode(&bytes));
        assert!(matches!(
            ring.open(&truncated, AAD),
            Err(CryptoError::Decrypt)
        ));
    }

    #[test]
    fn wrong_aad_fails() {
        let ring = Keyring::new(key(1), vec![]);
        let sealed = ring.seal("secret", AAD);
        let err = ring
            .open(&sealed, "company/2/lawruler/password")
            .unwrap_err();
        assert!(matches!(err, CryptoError::Decrypt));
        assert_eq!(
            err.to_string(),
            "could not decrypt: wrong master key or tampered data"
        );
    }

    #[test]
    fn rotation_opens_old_values_and_flags_them() {
        let old_ring = Keyring::new(key(1), vec![]);
        let old_sealed = old_ring.seal("old secret", AAD);

        let ring = Keyring::new(key(2), vec![key(1)]);
        assert!(ring.needs_rotation(&old_sealed));
        let opened = ring.open(&old_sealed, AAD).unwrap();
        assert_eq!(opened.expose_secret(), "old secret");

        let resealed = ring.seal(opened.expose_secret(), AAD);
        assert!(!ring.needs_rotation(&resealed));
        assert!(resealed.contains(&ring.primary_key_id()));
        // Once re-sealed, the old key is no longer needed.
        let new_only = Keyring::new(key(2), vec![]);
        assert_eq!(
            new_only.open(&resealed, AAD).unwrap().expose_secret(),
            "old secret"
        );
    }

    #[test]
    fn needs_rotation_is_false_for_garbage() {
        let ring = Keyring::new(key(1), vec![]);
        assert!(!ring.needs_rotation("plaintext"));
        assert!(!ring.needs_rotation(""));
    }

    #[test]
    fn malformed_sealed_values_are_rejected() {
        let ring = Keyring::new(key(1), vec![]);
        let id = ring.primary_key_id();
        let valid = ring.seal("x", AAD);
        let data = valid.rsplit_once('.').unwrap().1;
        let short = URL_SAFE_NO_PAD.encode([0u8; NONCE_LEN + TAG_LEN - 1]);
        let cases = [
            String::new(),
            "secret".into(),
            format!("v2.{id}.{data}"),
            format!("v1.{id}"),
            format!("v1.{}.{data}", id.to_uppercase()),
            format!("v1.abc.{data}"),
            format!("v1.{id}.not base64!"),
            format!("v1.{id}.{short}"),
            format!("v1.{id}.{data}.extra"),
        ];
        for case in cases {
            assert!(
                matches!(ring.open(&case, AAD), Err(CryptoError::Malformed)),
                "accepted {case:?}"
            );
        }
    }

    #[test]
    fn master_key_base64_errors_do_not_echo_input() {
        let short = STANDARD.encode([7u8; 16]);
        let err = MasterKey::from_base64(&short).unwrap_err();
        assert!(matches!(err, CryptoError::MalformedKey(_)));
        let msg = err.to_string();
        assert!(msg.contains("16 bytes") && msg.contains("32"), "{msg}");
        assert!(!msg.contains(&short), "{msg}");

        let bad = "this-is-not_base64-but-secret!!";
        let msg = MasterKey::from_base64(bad).unwrap_err().to_string();
        assert!(msg.contains("base64"), "{msg}");
        assert!(!msg.contains(bad) && !msg.contains("secret"), "{msg}");

        assert!(matches!(
            MasterKey::from_base64("  \n"),
            Err(CryptoError::MalformedKey(_))
        ));
    }

    #[test]
    fn master_key_base64_round_trip_and_whitespace() {
        let encoded = key_b64(9);
        let key = MasterKey::from_base64(&format!("  {encoded}\n")).unwrap();
        assert_eq!(key.to_base64().expose_secret(), encoded);
        // Missing padding is tolerated and yields the same key.
        let unpadded = MasterKey::from_base64(encoded.trim_end_matches('=')).unwrap();
        assert_eq!(unpadded.key_id(), key.key_id());
    }

    #[test]
    fn key_id_is_sha256_prefix() {
        let key = key(0);
        // SHA-256 of 32 zero bytes starts with 66687aad.
        assert_eq!(key.key_id(), "66687aad");
        assert_ne!(
            MasterKey::generate().key_id(),
            MasterKey::generate().key_id()
        );
    }

    #[test]
    fn debug_does_not_leak_keys() {
        let primary = MasterKey::generate();
        let older = MasterKey::generate();
        let secrets = [
            primary.to_base64().expose_secret().to_owned(),
            older.to_base64().expose_secret().to_owned(),
        ];
        let (primary_id, older_id) = (primary.key_id(), older.key_id());
        assert_eq!(format!("{primary:?}"), format!("MasterKey({primary_id})"));
        let ring = Keyring::new(primary, vec![older]);
        let debug = format!("{ring:?}");
        assert!(
            debug.contains(&primary_id) && debug.contains(&older_id),
            "{debug}"
        );
        for secret in &secrets {
            assert!(!debug.contains(secret.as_str()));
        }
    }

    #[test]
    fn keyring_clones_share_keys() {
        let ring = Keyring::new(key(1), vec![]);
        let sealed = ring.seal("x", AAD);
        let clone = ring.clone();
        assert_eq!(clone.open(&sealed, AAD).unwrap().expose_secret(), "x");
    }

    #[test]
    fn load_or_generate_creates_private_file_once() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("nested/dir/master.key");

        let (first, generated) = load_or_generate_master_key(&path).unwrap();
        assert!(generated);
        let contents = fs::read_to_string(&path).unwrap();
        assert_eq!(contents, format!("{}\n", first.to_base64().expose_secret()));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }

        let (second, generated) = load_or_generate_master_key(&path).unwrap();
        assert!(!generated);
        assert_eq!(second.key_id(), first.key_id());
        assert_eq!(
            second.to_base64().expose_secret(),
            first.to_base64().expose_secret()
        );
    }

    #[test]
    fn load_reads_an_operator_provided_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("master.key");
        fs::write(&path, format!("{}\n", key_b64(5))).unwrap();
        let (loaded, generated) = load_or_generate_master_key(&path).unwrap();
        assert!(!generated);
        assert_eq!(loaded.key_id(), key(5).key_id());
    }

    #[test]
    fn load_rejects_a_malformed_file_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("master.key");
        fs::write(&path, "c2hvcnQ=\n").unwrap();
        let err = load_or_generate_master_key(&path).unwrap_err();
        assert!(matches!(err, CryptoError::MalformedKey(_)));
        let msg = err.to_string();
        assert!(
            msg.contains("master.key") && !msg.contains("c2hvcnQ"),
            "{msg}"
        );
        // The bad file is left alone, not replaced by a fresh key.
        assert_eq!(fs::read_to_string(&path).unwrap(), "c2hvcnQ=\n");
    }

    #[test]
    fn concurrent_first_starts_agree_on_one_key() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("master.key");
        let ids: Vec<(String, bool)> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..8)
                .map(|_| {
                    s.spawn(|| {
                        let (key, generated) = load_or_generate_master_key(&path).unwrap();
                        (key.key_id(), generated)
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        assert_eq!(ids.iter().filter(|(_, generated)| *generated).count(), 1);
        assert!(ids.iter().all(|(id, _)| *id == ids[0].0));
        // Only the key file remains; the temporary files were cleaned up.
        let names: Vec<_> = fs::read_dir(dir.path())
            .unwrap()
            .map(|entry| entry.unwrap().file_name())
            .collect();
        assert_eq!(names, ["master.key"]);
    }
}
