/// Errors from sealing, opening and key handling.
///
/// Messages never contain key material or plaintext, so they are safe to log and to show an
/// operator.
#[derive(Debug, thiserror::Error)]
pub enum CryptoError {
    /// A master key that is not 32 bytes of standard base64. The message says what is wrong with
    /// it, never what it is.
    #[error("malformed master key: {0}")]
    MalformedKey(String),
    /// The sealed value names a key that is in neither the primary nor the older keys, usually
    /// because an old master key was dropped before everything was re-sealed.
    #[error(
        "no master key with id `{0}` is configured (was an old master key removed too early?)"
    )]
    UnknownKeyId(String),
    /// The text is not a sealed value in our `v1.<keyid>.<data>` format.
    #[error("not a sealed value in the expected format")]
    Malformed,
    /// Authentication failed: the key is wrong, the data was altered, or it was sealed for a
    /// different context (associated data), e.g. copied from another row.
    #[error("could not decrypt: wrong master key or tampered data")]
    Decrypt,
    #[error("master key file: {0}")]
    Io(#[from] std::io::Error),
    #[error("password hashing failed: {0}")]
    PasswordHash(String),
}
