//! Standard Webhooks signing for outbound deliveries (spec W5).
//!
//! Every delivery carries three headers, exactly as the
//! [Standard Webhooks spec](https://github.com/standard-webhooks/standard-webhooks/blob/main/spec/standard-webhooks.md)
//! defines them:
//!
//! - `webhook-id`: the message id, equal to the envelope's `id` and stable across retries and
//!   replays (W10), so consumers can dedupe;
//! - `webhook-timestamp`: integer seconds since the Unix epoch, of this attempt;
//! - `webhook-signature`: `v1,` + standard base64 of HMAC-SHA256 over `{id}.{timestamp}.{body}`
//!   with the endpoint secret, one entry per active secret, separated by spaces. During a
//!   rotation overlap both the old and the new secret sign, so a consumer holding either verifies.
//!
//! Secrets are written `whsec_` + standard base64 of 24 to 64 random bytes.
//!
//! Everything here is pure: no I/O, no clock. The caller picks the timestamp.
//!
//! ```
//! use casebridge_webhooks::signing::{signed_headers, verify, SigningSecret};
//!
//! let secret = SigningSecret::generate();
//! let body = br#"{"id":"msg_1","type":"call_ended"}"#;
//! let headers = signed_headers(&[&secret], "msg_1", 1_700_000_000, body);
//! assert_eq!(headers.webhook_timestamp, "1700000000");
//! assert!(verify(&[&secret], "msg_1", 1_700_000_000, body, &headers.webhook_signature));
//! ```

use std::fmt;

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use hmac::{Hmac, Mac as _};
use rand::rngs::OsRng;
use rand::RngCore as _;
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

/// Header carrying the message id.
pub const HEADER_WEBHOOK_ID: &str = "webhook-id";
/// Header carrying the signing time in Unix seconds.
pub const HEADER_WEBHOOK_TIMESTAMP: &str = "webhook-timestamp";
/// Header carrying the space-separated `v1,<base64>` signatures.
pub const HEADER_WEBHOOK_SIGNATURE: &str = "webhook-signature";
/// Our branded copy of `webhook-signature`, with the same value.
pub const HEADER_X_KAYSE_SIGNATURE: &str = "X-Kayse-Signature";

/// Prefix of a serialized secret, as in the Standard Webhooks spec and Svix.
const SECRET_PREFIX: &str = "whsec_";
/// Version tag of the only signature scheme defined (symmetric HMAC-SHA256).
const SIGNATURE_VERSION: &str = "v1";
/// Size of a generated secret: 192 bits, as Svix generates.
const GENERATED_SECRET_LEN: usize = 24;
/// Shortest and longest key the spec allows (192 and 512 bits).
const MIN_SECRET_LEN: usize = 24;
const MAX_SECRET_LEN: usize = 64;

/// Why a signing secret could not be parsed.
///
/// Messages never contain the secret or any part of it, so they are safe to log and to show an
/// operator.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SigningError {
    /// The text does not start with `whsec_`.
    #[error("signing secret must start with `whsec_`")]
    MissingPrefix,
    /// What follows `whsec_` is not standard base64 (`A–Z a–z 0–9 + /`, `=` padding).
    #[error("signing secret is not valid standard base64 after `whsec_`")]
    InvalidBase64,
    /// The decoded key is outside the 24–64 bytes the spec allows.
    #[error(
        "signing secret must decode to {MIN_SECRET_LEN} to {MAX_SECRET_LEN} bytes, \
         got {0} bytes"
    )]
    InvalidLength(usize),
}

/// An endpoint's webhook signing key: the raw bytes behind a `whsec_…` string.
///
/// `Debug` is masked and there is no `Display`, so a secret cannot end up in a log by accident;
/// [`SigningSecret::to_whsec`] is the one way to get the text back (to show once or to store
/// sealed).
#[derive(Clone)]
pub struct SigningSecret {
    key: Vec<u8>,
}

impl SigningSecret {
    /// A fresh secret of 24 random bytes from the operating system.
    pub fn generate() -> Self {
        let mut key = vec![0u8; GENERATED_SECRET_LEN];
        OsRng.fill_bytes(&mut key);
        Self { key }
    }

    /// Parses `whsec_` + standard base64 (with padding where the length needs it) of 24 to 64
    /// bytes. Surrounding whitespace, e.g. a trailing newline from a pasted value, is ignored.
    pub fn parse(s: &str) -> Result<Self, SigningError> {
        let encoded = s
            .trim()
            .strip_prefix(SECRET_PREFIX)
            .ok_or(SigningError::MissingPrefix)?;
        // The decode error is dropped on purpose: its message quotes the offending byte.
        let key = STANDARD
            .decode(encoded)
            .map_err(|_| SigningError::InvalidBase64)?;
        if !(MIN_SECRET_LEN..=MAX_SECRET_LEN).contains(&key.len()) {
            return Err(SigningError::InvalidLength(key.len()));
        }
        Ok(Self { key })
    }

    /// The secret as consumers configure it: `whsec_` + standard base64 with padding.
    pub fn to_whsec(&self) -> String {
        format!("{SECRET_PREFIX}{}", STANDARD.encode(&self.key))
    }

    /// An HMAC-SHA256 state that has already absorbed `{msg_id}.{timestamp}.{body}`.
    fn mac(&self, msg_id: &str, timestamp: i64, body: &[u8]) -> HmacSha256 {
        let mut mac =
            HmacSha256::new_from_slice(&self.key).expect("HMAC accepts keys of any length");
        mac.update(msg_id.as_bytes());
        mac.update(b".");
        mac.update(timestamp.to_string().as_bytes());
        mac.update(b".");
        mac.update(body);
        mac
    }
}

impl fmt::Debug for SigningSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SigningSecret(whsec_…)")
    }
}

/// One signature: `v1,` + standard base64 of HMAC-SHA256 over `{msg_id}.{timestamp}.{body}`.
///
/// `body` is the raw request body, byte for byte as sent; re-serializing JSON breaks the
/// signature.
pub fn sign(secret: &SigningSecret, msg_id: &str, timestamp: i64, body: &[u8]) -> String {
    let tag = secret.mac(msg_id, timestamp, body).finalize().into_bytes();
    format!("{SIGNATURE_VERSION},{}", STANDARD.encode(tag))
}

/// The `webhook-signature` value: one [`sign`] per secret, in the given order, separated by
/// single spaces.
///
/// Pass every active secret: during a rotation overlap that is the old and the new one. With no
/// secrets the result is empty, which no consumer accepts; callers must not send such a delivery.
pub fn signature_header(
    secrets: &[&SigningSecret],
    msg_id: &str,
    timestamp: i64,
    body: &[u8],
) -> String {
    secrets
        .iter()
        .map(|secret| sign(secret, msg_id, timestamp, body))
        .collect::<Vec<_>>()
        .join(" ")
}

/// The values of the three Standard Webhooks headers for one delivery attempt.
///
/// Send `webhook_signature` also as [`HEADER_X_KAYSE_SIGNATURE`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedHeaders {
    /// Value of [`HEADER_WEBHOOK_ID`].
    pub webhook_id: String,
    /// Value of [`HEADER_WEBHOOK_TIMESTAMP`]: decimal Unix seconds.
    pub webhook_timestamp: String,
    /// Value of [`HEADER_WEBHOOK_SIGNATURE`] (and [`HEADER_X_KAYSE_SIGNATURE`]).
    pub webhook_signature: String,
}

/// Builds the headers for one attempt: `msg_id` is the envelope id (stable across retries),
/// `timestamp` the attempt's time in Unix seconds, `body` the exact bytes sent.
pub fn signed_headers(
    secrets: &[&SigningSecret],
    msg_id: &str,
    timestamp: i64,
    body: &[u8],
) -> SignedHeaders {
    SignedHeaders {
        webhook_id: msg_id.to_owned(),
        webhook_timestamp: timestamp.to_string(),
        webhook_signature: signature_header(secrets, msg_id, timestamp, body),
    }
}

/// Checks a `webhook-signature` value: true if any `v1,` entry matches any of `secrets`.
///
/// Entries with another version or malformed base64 are skipped, as the spec asks. Each
/// comparison is constant-time. The timestamp is not checked against a clock: a receiver must also
/// reject timestamps too far from now (Standard Webhooks libraries allow 5 minutes either way).
pub fn verify(
    secrets: &[&SigningSecret],
    msg_id: &str,
    timestamp: i64,
    body: &[u8],
    header: &str,
) -> bool {
    let candidates: Vec<Vec<u8>> = header
        .split_ascii_whitespace()
        .filter_map(|entry| entry.split_once(','))
        .filter(|(version, _)| *version == SIGNATURE_VERSION)
        .filter_map(|(_, encoded)| STANDARD.decode(encoded).ok())
        .collect();
    secrets.iter().any(|secret| {
        let mac = secret.mac(msg_id, timestamp, body);
        candidates
            .iter()
            .any(|candidate| mac.clone().verify_slice(candidate).is_ok())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    // The example from the Standard Webhooks spec and the Svix docs.
    const SPEC_SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    const SPEC_MSG_ID: &str = "msg_p5jXN8AQM9LWM0D4loKWxJek";
    const SPEC_TIMESTAMP: i64 = 1614265330;
    const SPEC_BODY: &[u8] = br#"{"test": 2432232314}"#;
    const SPEC_SIGNATURE: &str = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=";

    fn spec_secret() -> SigningSecret {
        SigningSecret::parse(SPEC_SECRET).unwrap()
    }

    fn whsec_of_len(len: usize) -> String {
        format!("whsec_{}", STANDARD.encode(vec![7u8; len]))
    }

    #[test]
    fn signs_the_spec_example() {
        let secret = spec_secret();
        assert_eq!(
            sign(&secret, SPEC_MSG_ID, SPEC_TIMESTAMP, SPEC_BODY),
            SPEC_SIGNATURE
        );
        assert!(verify(
            &[&secret],
            SPEC_MSG_ID,
            SPEC_TIMESTAMP,
            SPEC_BODY,
            SPEC_SIGNATURE
        ));
    }

    #[test]
    fn spec_secret_round_trips() {
        assert_eq!(spec_secret().to_whsec(), SPEC_SECRET);
    }

    #[test]
    fn signed_headers_carry_id_timestamp_and_signature() {
        let headers = signed_headers(&[&spec_secret()], SPEC_MSG_ID, SPEC_TIMESTAMP, SPEC_BODY);
        assert_eq!(
            headers,
            SignedHeaders {
                webhook_id: SPEC_MSG_ID.to_owned(),
                webhook_timestamp: "1614265330".to_owned(),
                webhook_signature: SPEC_SIGNATURE.to_owned(),
            }
        );
    }

    #[test]
    fn signature_header_has_one_entry_per_secret_in_order() {
        let old = spec_secret();
        let new = SigningSecret::generate();
        let header = signature_header(&[&old, &new], SPEC_MSG_ID, SPEC_TIMESTAMP, SPEC_BODY);
        let expected_new = sign(&new, SPEC_MSG_ID, SPEC_TIMESTAMP, SPEC_BODY);
        assert_eq!(header, format!("{SPEC_SIGNATURE} {expected_new}"));

        assert_eq!(
            signature_header(&[], SPEC_MSG_ID, SPEC_TIMESTAMP, SPEC_BODY),
            ""
        );
    }

    #[test]
    fn verify_accepts_any_secret_of_a_rotation() {
        let old = SigningSecret::generate();
        let new = SigningSecret::generate();
        let header = signature_header(&[&old, &new], "msg_1", 5, b"{}");
        assert!(verify(&[&old], "msg_1", 5, b"{}", &header));
        assert!(verify(&[&new], "msg_1", 5, b"{}", &header));
        assert!(verify(&[&new, &old], "msg_1", 5, b"{}", &header));

        let old_only = signature_header(&[&old], "msg_1", 5, b"{}");
        assert!(!verify(&[&new], "msg_1", 5, b"{}", &old_only));
    }

    #[test]
    fn verify_rejects_any_change() {
        let secret = spec_secret();
        let ok = |msg_id: &str, ts: i64, body: &[u8], header: &str| {
            verify(&[&secret], msg_id, ts, body, header)
        };
        assert!(!ok(
            SPEC_MSG_ID,
            SPEC_TIMESTAMP,
            br#"{"test": 2432232315}"#,
            SPEC_SIGNATURE
        ));
        assert!(!ok("msg_other", SPEC_TIMESTAMP, SPEC_BODY, SPEC_SIGNATURE));
        assert!(!ok(
            SPEC_MSG_ID,
            SPEC_TIMESTAMP + 1,
            SPEC_BODY,
            SPEC_SIGNATURE
        ));
        assert!(!verify(
            &[&SigningSecret::generate()],
            SPEC_MSG_ID,
            SPEC_TIMESTAMP,
            SPEC_BODY,
            SPEC_SIGNATURE
        ));
        assert!(!verify(
            &[],
            SPEC_MSG_ID,
            SPEC_TIMESTAMP,
            SPEC_BODY,
            SPEC_SIGNATURE
        ));
    }

    #[test]
    fn verify_only_trusts_well_formed_v1_entries() {
        let secret = spec_secret();
        let check =
            |header: &str| verify(&[&secret], SPEC_MSG_ID, SPEC_TIMESTAMP, SPEC_BODY, header);
        let bare = SPEC_SIGNATURE.strip_prefix("v1,").unwrap();

        assert!(!check(""));
        assert!(!check(bare));
        assert!(!check(&format!("v2,{bare}")));
        assert!(!check(&format!("v1a,{bare}")));
        assert!(!check("v1,"));
        assert!(!check(&format!("v1,{}", &bare[..bare.len() - 4])));
        // Malformed and foreign entries are skipped, not fatal.
        assert!(check(&format!("v1,not*base64 v1a,xyz {SPEC_SIGNATURE}")));
        assert!(check(&format!("  {SPEC_SIGNATURE}  ")));
    }

    #[test]
    fn signs_bodies_that_are_not_utf8() {
        let secret = SigningSecret::generate();
        let body = [0xff, 0x00, 0xfe];
        let header = signature_header(&[&secret], "msg_1", 1, &body);
        assert!(verify(&[&secret], "msg_1", 1, &body, &header));
        assert!(!verify(&[&secret], "msg_1", 1, &[0xff, 0x00], &header));
    }

    #[test]
    fn parse_rejects_missing_prefix() {
        let unprefixed = SPEC_SECRET.strip_prefix("whsec_").unwrap();
        assert_eq!(
            SigningSecret::parse(unprefixed).unwrap_err(),
            SigningError::MissingPrefix
        );
        assert_eq!(
            SigningSecret::parse("WHSEC_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap_err(),
            SigningError::MissingPrefix
        );
        assert_eq!(
            SigningSecret::parse("").unwrap_err(),
            SigningError::MissingPrefix
        );
    }

    #[test]
    fn parse_rejects_bad_base64() {
        for bad in [
            "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaS!",
            // URL-safe alphabet is not standard base64.
            "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLa-_",
            "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw=",
            "whsec_MfKQ 9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
        ] {
            assert_eq!(
                SigningSecret::parse(bad).unwrap_err(),
                SigningError::InvalidBase64,
                "{bad}"
            );
        }
    }

    #[test]
    fn parse_enforces_the_length_range() {
        assert_eq!(
            SigningSecret::parse("whsec_").unwrap_err(),
            SigningError::InvalidLength(0)
        );
        assert_eq!(
            SigningSecret::parse(&whsec_of_len(23)).unwrap_err(),
            SigningError::InvalidLength(23)
        );
        assert_eq!(
            SigningSecret::parse(&whsec_of_len(65)).unwrap_err(),
            SigningError::InvalidLength(65)
        );
        for len in [24, 25, 32, 63, 64] {
            let text = whsec_of_len(len);
            assert_eq!(SigningSecret::parse(&text).unwrap().to_whsec(), text);
        }
    }

    #[test]
    fn parse_ignores_surrounding_whitespace() {
        let secret = SigningSecret::parse(&format!(" {SPEC_SECRET}\n")).unwrap();
        assert_eq!(secret.to_whsec(), SPEC_SECRET);
    }

    #[test]
    fn errors_never_echo_the_secret() {
        let inputs = [
            "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw".to_owned(),
            "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaS!".to_owned(),
            whsec_of_len(10),
        ];
        for input in inputs {
            let err = SigningSecret::parse(&input).unwrap_err();
            let encoded = input.strip_prefix("whsec_").unwrap_or(&input);
            for text in [err.to_string(), format!("{err:?}")] {
                assert!(!text.contains(&encoded[..8]), "{text}");
            }
        }
    }

    #[test]
    fn debug_does_not_leak() {
        let secret = spec_secret();
        let debug = format!("{secret:?}");
        assert_eq!(debug, "SigningSecret(whsec_…)");
        assert!(!debug.contains("MfKQ"));
        assert!(!format!("{:?}", Some(&secret)).contains("MfKQ"));
    }

    #[test]
    fn generate_makes_distinct_secrets_that_round_trip() {
        let a = SigningSecret::generate();
        let b = SigningSecret::generate();
        assert_eq!(a.key.len(), GENERATED_SECRET_LEN);
        assert_ne!(a.key, b.key);
        assert_ne!(a.to_whsec(), b.to_whsec());
        for secret in [a, b] {
            let text = secret.to_whsec();
            assert!(text.starts_with("whsec_"));
            assert_eq!(SigningSecret::parse(&text).unwrap().key, secret.key);
        }
    }
}
