//! Secrets at rest, API keys and admin passwords.
//!
//! Everything secret that casebridge stores (CRM passwords, client secrets, signing secrets,
//! scheduling API keys) is sealed with a [`Keyring`] before it reaches the database (SPEC P6).
//! Sealed values carry the id of the key that sealed them, so the master key can be rotated: start
//! with the new key as primary and the old one listed as older, re-seal what
//! [`Keyring::needs_rotation`] reports, then drop the old key.
//!
//! API keys and passwords are never stored at all, only their hashes.
//!
//! This crate does no logging; callers decide what is worth a log line (and never log secrets).

mod api_key;
mod error;
mod keyring;
mod password;

pub use api_key::{
    generate_api_key, hash_api_key, hash_token, mask, random_token, GeneratedApiKey,
};
pub use error::CryptoError;
pub use keyring::{load_or_generate_master_key, Keyring, MasterKey};
pub use password::{hash_password, verify_password};

/// Lowercase hex, used for key ids and API key hashes (too small to justify a dependency).
fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for &b in bytes {
        out.push(char::from(DIGITS[usize::from(b >> 4)]));
        out.push(char::from(DIGITS[usize::from(b & 0x0f)]));
    }
    out
}
