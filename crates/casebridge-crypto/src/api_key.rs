use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use rand::rngs::OsRng;
use rand::RngCore as _;
use secrecy::SecretString;
use sha2::{Digest as _, Sha256};

/// Every API key starts with this, so a leaked key is recognisable by secret scanners and people.
const API_KEY_PREFIX: &str = "cbk_";
/// How much of the key is kept in clear: `cbk_` plus 8 random characters, enough for an admin to
/// tell keys apart, far too little to guess the rest.
const DISPLAY_PREFIX_LEN: usize = 12;

/// A freshly generated API key. `secret` is shown to the caller exactly once; only `prefix` and
/// `hash` are stored.
#[derive(Debug)]
pub struct GeneratedApiKey {
    pub secret: SecretString,
    pub prefix: String,
    pub hash: String,
}

/// Generates an API key: `cbk_` followed by 256 random bits in URL-safe base64 (no padding), so it
/// can be pasted into headers and shells without quoting.
pub fn generate_api_key() -> GeneratedApiKey {
    let mut bytes = [0u8; 32];
    OsRng.fill_bytes(&mut bytes);
    let secret = format!("{API_KEY_PREFIX}{}", URL_SAFE_NO_PAD.encode(bytes));
    bytes.fill(0);
    let prefix = secret[..DISPLAY_PREFIX_LEN].to_owned();
    let hash = hash_api_key(&secret);
    GeneratedApiKey {
        secret: SecretString::from(secret),
        prefix,
        hash,
    }
}

/// Hashes an API key for storage and lookup: lowercase hex SHA-256.
///
/// A fast, unsalted hash is the right choice here, unlike for passwords: keys are 256 bits of
/// randomness, so there is nothing to brute-force, and a deterministic hash lets the request path
/// find the key with one indexed lookup instead of trying every stored hash with a slow KDF.
pub fn hash_api_key(secret: &str) -> String {
    hash_token(secret)
}

/// A fresh random token (256 bits, URL-safe base64): admin session cookies and CSRF tokens.
pub fn random_token() -> String {
    let mut bytes = [0u8; 32];
    OsRng.fill_bytes(&mut bytes);
    URL_SAFE_NO_PAD.encode(bytes)
}

/// Hashes a random token for storage and lookup (lowercase hex SHA-256), for the same reasons as
/// [`hash_api_key`].
pub fn hash_token(secret: &str) -> String {
    crate::hex(&Sha256::digest(secret.as_bytes()))
}

/// Masks a secret for display in API responses and the UI: at most the first 4 characters, then
/// `••••`.
///
/// Short secrets reveal less (never more than a quarter of their characters), so masking a short
/// value does not print most of it. Empty input stays empty, so "not set" still reads as not set.
pub fn mask(secret: &str) -> String {
    if secret.is_empty() {
        return String::new();
    }
    let shown = (secret.chars().count() / 4).min(4);
    let mut out: String = secret.chars().take(shown).collect();
    out.push_str("••••");
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use secrecy::ExposeSecret as _;

    #[test]
    fn generated_key_has_format_prefix_and_hash() {
        let key = generate_api_key();
        let secret = key.secret.expose_secret();
        assert!(secret.starts_with("cbk_"));
        // 32 bytes in unpadded base64 = 43 characters.
        assert_eq!(secret.len(), 4 + 43);
        assert!(secret[4..]
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_'));
        assert_eq!(key.prefix.len(), 12);
        assert!(secret.starts_with(&key.prefix));
        assert_eq!(key.hash, hash_api_key(secret));
    }

    #[test]
    fn generated_keys_differ() {
        let a = generate_api_key();
        let b = generate_api_key();
        assert_ne!(a.secret.expose_secret(), b.secret.expose_secret());
        assert_ne!(a.hash, b.hash);
    }

    #[test]
    fn hash_is_stable_lowercase_hex_sha256() {
        // Known SHA-256 test vector, so a change of algorithm or encoding cannot slip through
        // (it would lock every existing key out).
        assert_eq!(
            hash_api_key("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_eq!(hash_api_key("cbk_x"), hash_api_key("cbk_x"));
        assert_ne!(hash_api_key("cbk_x"), hash_api_key("cbk_y"));
    }

    #[test]
    fn debug_does_not_show_secret() {
        let key = generate_api_key();
        let debug = format!("{key:?}");
        assert!(!debug.contains(key.secret.expose_secret()));
    }

    #[test]
    fn mask_shows_at_most_four_characters() {
        assert_eq!(mask(""), "");
        assert_eq!(mask("cbk_abcdefghijklmnop"), "cbk_••••");
        assert_eq!(mask("abcdefgh"), "ab••••");
        assert_eq!(mask("abc"), "••••");
        // Counts characters, not bytes, so multi-byte input cannot split a character.
        assert_eq!(mask("ééééééééé"), "éé••••");
    }
}
