//! Checks our signer against the official Standard Webhooks crate as an independent verifier.
//!
//! `standardwebhooks` takes an `http::HeaderMap`; `reqwest::header` is a re-export of
//! `http::header` (http 1.x, the same version `standardwebhooks` 1.0.1 uses), so no extra
//! dependency is needed.

use casebridge_webhooks::signing::{
    sign, signed_headers, verify, SignedHeaders, SigningSecret, HEADER_WEBHOOK_ID,
    HEADER_WEBHOOK_SIGNATURE, HEADER_WEBHOOK_TIMESTAMP,
};
use rand::distributions::{Alphanumeric, DistString as _};
use rand::Rng as _;
use reqwest::header::{HeaderMap, HeaderValue};
use standardwebhooks::{Webhook, WebhookError};

fn now() -> i64 {
    jiff::Timestamp::now().as_second()
}

fn header_map(headers: &SignedHeaders) -> HeaderMap {
    let mut map = HeaderMap::new();
    for (name, value) in [
        (HEADER_WEBHOOK_ID, &headers.webhook_id),
        (HEADER_WEBHOOK_TIMESTAMP, &headers.webhook_timestamp),
        (HEADER_WEBHOOK_SIGNATURE, &headers.webhook_signature),
    ] {
        map.insert(
            name,
            HeaderValue::from_str(value).expect("header-safe value"),
        );
    }
    map
}

/// Verifies with the official crate, given only the `whsec_` text a consumer would configure.
fn independent_verify(
    secret: &SigningSecret,
    body: &[u8],
    headers: &SignedHeaders,
) -> Result<(), WebhookError> {
    Webhook::new(&secret.to_whsec())?.verify(body, &header_map(headers))
}

fn random_msg_id() -> String {
    format!(
        "msg_{}",
        Alphanumeric.sample_string(&mut rand::thread_rng(), 24)
    )
}

/// Bodies the independent verifier can handle: it requires UTF-8 (our signer does not).
fn bodies() -> Vec<Vec<u8>> {
    let mut rng = rand::thread_rng();
    let random_text: String = (0..rng.gen_range(1..2000))
        .map(|_| rng.gen::<char>())
        .collect();
    vec![
        Vec::new(),
        br#"{"test": 2432232314}"#.to_vec(),
        r#"{"id":"msg_1","type":"call_ended","data":{"name":"Zoë Ødegård","note":"日本語 ✓ 🚀"}}"#
            .as_bytes()
            .to_vec(),
        "line one\r\nline two\n\ttabbed \u{0}nul"
            .as_bytes()
            .to_vec(),
        random_text.into_bytes(),
        serde_json::to_vec(&serde_json::json!({
            "id": random_msg_id(),
            "type": "transcript_updated",
            "company_id": "c_1",
            "data": { "text": "x".repeat(100_000) },
        }))
        .unwrap(),
    ]
}

#[test]
fn official_verifier_accepts_our_headers() {
    for _ in 0..8 {
        let secret = SigningSecret::generate();
        for body in bodies() {
            let msg_id = random_msg_id();
            let headers = signed_headers(&[&secret], &msg_id, now(), &body);
            independent_verify(&secret, &body, &headers).unwrap();
        }
    }
}

#[test]
fn official_verifier_accepts_parsed_secrets_of_every_allowed_length() {
    let mut rng = rand::thread_rng();
    for len in [24, 25, 31, 32, 33, 48, 63, 64] {
        let mut key = vec![0u8; len];
        rng.fill(&mut key[..]);
        let whsec = format!(
            "whsec_{}",
            base64::Engine::encode(&base64::engine::general_purpose::STANDARD, &key)
        );
        let secret = SigningSecret::parse(&whsec).unwrap();
        let body = br#"{"len":true}"#;
        let headers = signed_headers(&[&secret], &random_msg_id(), now(), body);
        Webhook::new(&whsec)
            .unwrap()
            .verify(body, &header_map(&headers))
            .unwrap();
    }
}

#[test]
fn signatures_match_the_official_signer_for_any_timestamp() {
    let mut rng = rand::thread_rng();
    for _ in 0..50 {
        let secret = SigningSecret::generate();
        let official = Webhook::new(&secret.to_whsec()).unwrap();
        let timestamp = match rng.gen_range(0..3) {
            0 => rng.gen_range(0..4_000_000_000),
            1 => rng.gen_range(-1_000_000..0),
            _ => rng.gen(),
        };
        for body in bodies() {
            let msg_id = random_msg_id();
            let ours = sign(&secret, &msg_id, timestamp, &body);
            assert_eq!(ours, official.sign(&msg_id, timestamp, &body).unwrap());
            assert!(verify(&[&secret], &msg_id, timestamp, &body, &ours));
        }
    }
}

#[test]
fn tampered_body_fails() {
    let secret = SigningSecret::generate();
    let body = br#"{"amount": 100}"#;
    let headers = signed_headers(&[&secret], &random_msg_id(), now(), body);
    independent_verify(&secret, body, &headers).unwrap();

    for tampered in [&br#"{"amount": 101}"#[..], br#"{"amount":100}"#, b""] {
        assert!(matches!(
            independent_verify(&secret, tampered, &headers),
            Err(WebhookError::InvalidSignature)
        ));
    }
}

#[test]
fn tampered_id_or_timestamp_fails() {
    let secret = SigningSecret::generate();
    let body = b"{}";
    let ts = now();
    let headers = signed_headers(&[&secret], "msg_a", ts, body);

    let other_id = SignedHeaders {
        webhook_id: "msg_b".to_owned(),
        ..headers.clone()
    };
    let other_ts = SignedHeaders {
        webhook_timestamp: (ts - 1).to_string(),
        ..headers
    };
    for tampered in [other_id, other_ts] {
        assert!(matches!(
            independent_verify(&secret, body, &tampered),
            Err(WebhookError::InvalidSignature)
        ));
    }
}

#[test]
fn wrong_secret_fails() {
    let secret = SigningSecret::generate();
    let other = SigningSecret::generate();
    let body = br#"{"ok":true}"#;
    let headers = signed_headers(&[&secret], &random_msg_id(), now(), body);
    assert!(matches!(
        independent_verify(&other, body, &headers),
        Err(WebhookError::InvalidSignature)
    ));
}

#[test]
fn stale_timestamp_is_rejected_by_the_official_verifier() {
    // Our signer does not look at the clock; receivers do, so a retry must be re-signed with the
    // attempt's own timestamp.
    let secret = SigningSecret::generate();
    let body = b"{}";
    let headers = signed_headers(&[&secret], &random_msg_id(), now() - 3600, body);
    assert!(matches!(
        independent_verify(&secret, body, &headers),
        Err(WebhookError::TimestampTooOldError)
    ));
}

#[test]
fn rotation_overlap_verifies_with_either_secret() {
    let old = SigningSecret::generate();
    let new = SigningSecret::generate();
    for body in bodies() {
        let msg_id = random_msg_id();
        let ts = now();

        let both = signed_headers(&[&old, &new], &msg_id, ts, &body);
        assert_eq!(both.webhook_signature.split(' ').count(), 2);
        independent_verify(&old, &body, &both).unwrap();
        independent_verify(&new, &body, &both).unwrap();
        assert!(verify(&[&old], &msg_id, ts, &body, &both.webhook_signature));
        assert!(verify(&[&new], &msg_id, ts, &body, &both.webhook_signature));

        let old_only = signed_headers(&[&old], &msg_id, ts, &body);
        independent_verify(&old, &body, &old_only).unwrap();
        assert!(matches!(
            independent_verify(&new, &body, &old_only),
            Err(WebhookError::InvalidSignature)
        ));
        assert!(!verify(
            &[&new],
            &msg_id,
            ts,
            &body,
            &old_only.webhook_signature
        ));
    }
}
