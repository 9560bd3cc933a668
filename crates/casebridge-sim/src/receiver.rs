//! A webhook receiver, standing in for a firm's server while casebridge is tried on a laptop.
//!
//! It accepts a POST on any path, checks the Standard Webhooks signature with the official
//! `standardwebhooks` library (signature and a timestamp within five minutes), and answers `204`
//! when it verifies and `401` when it does not, so casebridge's delivery log shows either outcome.
//! `GET /_sim/received` lists what arrived, oldest first; with [`Receiver::echo`] each delivery is
//! also printed to stdout as one JSON line.

use std::sync::{Arc, Mutex, MutexGuard};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use rand::RngCore as _;
use serde::Serialize;
use serde_json::{json, Value};
use tokio::net::TcpListener;

/// One delivery as the receiver saw it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Received {
    pub path: String,
    /// The `webhook-id` header (the event id).
    pub webhook_id: Option<String>,
    /// The envelope's `type`, when the body is JSON with one.
    pub event_type: Option<String>,
    pub verified: bool,
    /// Why verification failed.
    pub error: Option<String>,
    /// The body, parsed when it is JSON.
    pub body: Value,
}

/// The receiver's secret and what it received. Clones share one log.
#[derive(Clone)]
pub struct Receiver {
    secret: String,
    echo: bool,
    received: Arc<Mutex<Vec<Received>>>,
}

/// Why a receiver cannot start.
#[derive(Debug, thiserror::Error)]
#[error("the secret must be `whsec_` followed by base64 (as casebridge shows it)")]
pub struct BadSecret;

impl Receiver {
    /// A receiver verifying with `secret` (`whsec_…`).
    pub fn new(secret: &str) -> Result<Self, BadSecret> {
        let secret = secret.trim();
        let encoded = secret.strip_prefix("whsec_").ok_or(BadSecret)?;
        base64::engine::general_purpose::STANDARD
            .decode(encoded)
            .map_err(|_| BadSecret)?;
        Ok(Self {
            secret: secret.to_owned(),
            echo: false,
            received: Arc::default(),
        })
    }

    /// A receiver with a fresh random secret (24 bytes, as casebridge generates them).
    pub fn generate() -> Self {
        let mut key = [0u8; 24];
        rand::rngs::OsRng.fill_bytes(&mut key);
        let secret = format!(
            "whsec_{}",
            base64::engine::general_purpose::STANDARD.encode(key)
        );
        Self::new(&secret).expect("a generated secret is well formed")
    }

    /// Also print each delivery to stdout as one JSON line.
    pub fn echo(mut self) -> Self {
        self.echo = true;
        self
    }

    /// The secret to give casebridge when creating the webhook.
    pub fn secret(&self) -> &str {
        &self.secret
    }

    /// Every delivery so far, oldest first.
    pub fn received(&self) -> Vec<Received> {
        self.log().clone()
    }

    fn log(&self) -> MutexGuard<'_, Vec<Received>> {
        self.received.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn accept(&self, path: &str, headers: &HeaderMap, body: &[u8]) -> Received {
        let checked = standardwebhooks::Webhook::new(&self.secret)
            .map_err(|e| e.to_string())
            .and_then(|w| w.verify(body, headers).map_err(|e| e.to_string()));
        let body: Value = serde_json::from_slice(body)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(body).into_owned()));
        Received {
            path: path.to_owned(),
            webhook_id: headers
                .get("webhook-id")
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned),
            event_type: body["type"].as_str().map(str::to_owned),
            verified: checked.is_ok(),
            error: checked.err(),
            body,
        }
    }
}

async fn handle(
    State(receiver): State<Receiver>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let path = uri.path();
    if path == "/_sim/received" && method == Method::GET {
        return axum::Json(receiver.received()).into_response();
    }
    if method != Method::POST {
        return (
            StatusCode::METHOD_NOT_ALLOWED,
            axum::Json(json!({"error": "POST a webhook here; GET /_sim/received lists them"})),
        )
            .into_response();
    }
    let got = receiver.accept(path, &headers, &body);
    if receiver.echo {
        println!(
            "{}",
            json!({"webhook_id": got.webhook_id, "type": got.event_type,
                   "verified": got.verified, "error": got.error})
        );
    }
    let status = if got.verified {
        StatusCode::NO_CONTENT
    } else {
        StatusCode::UNAUTHORIZED
    };
    receiver.log().push(got);
    status.into_response()
}

/// Serves the receiver on `listener` until the task is dropped.
pub async fn serve(listener: TcpListener, receiver: Receiver) -> std::io::Result<()> {
    let app = axum::Router::new().fallback(handle).with_state(receiver);
    axum::serve(listener, app).await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn signed(secret: &str, id: &str, body: &str) -> HeaderMap {
        let now = jiff::Timestamp::now().as_second();
        let sig = standardwebhooks::Webhook::new(secret)
            .unwrap()
            .sign(id, now, body.as_bytes())
            .unwrap();
        let mut h = HeaderMap::new();
        h.insert("webhook-id", id.parse().unwrap());
        h.insert("webhook-timestamp", now.to_string().parse().unwrap());
        h.insert("webhook-signature", sig.parse().unwrap());
        h
    }

    #[test]
    fn verifies_its_own_secret_and_refuses_another() {
        let r = Receiver::generate();
        let body = r#"{"type":"call.started","data":{}}"#;
        let ok = r.accept("/", &signed(r.secret(), "evt_1", body), body.as_bytes());
        assert!(ok.verified, "{ok:?}");
        assert_eq!(ok.event_type.as_deref(), Some("call.started"));
        assert_eq!(ok.webhook_id.as_deref(), Some("evt_1"));

        let other = Receiver::generate();
        let bad = r.accept("/", &signed(other.secret(), "evt_2", body), body.as_bytes());
        assert!(!bad.verified);
        assert_eq!(bad.error.as_deref(), Some("signature invalid"));
    }

    #[test]
    fn a_malformed_secret_is_refused() {
        assert!(Receiver::new("not-a-secret").is_err());
        assert!(Receiver::new("whsec_***").is_err());
    }
}
