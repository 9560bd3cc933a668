//! A local HTTP endpoint that records what it receives and answers as scripted: the stand-in for
//! a webhook consumer.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use tokio::time::Instant;

/// One answer: status, headers, body, and how long to wait before answering.
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
    pub delay: Duration,
}

impl Reply {
    pub fn status(status: u16) -> Self {
        Self {
            status,
            headers: Vec::new(),
            body: String::new(),
            delay: Duration::ZERO,
        }
    }

    pub fn header(mut self, k: &str, v: &str) -> Self {
        self.headers.push((k.to_owned(), v.to_owned()));
        self
    }

    pub fn body(mut self, b: impl Into<String>) -> Self {
        self.body = b.into();
        self
    }

    pub fn delay(mut self, d: Duration) -> Self {
        self.delay = d;
        self
    }
}

/// A request as received.
#[derive(Debug, Clone)]
pub struct Received {
    pub path: String,
    pub headers: HeaderMap,
    pub body: Bytes,
    pub at: Instant,
}

impl Received {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).expect("JSON body")
    }
}

#[derive(Default)]
struct Inner {
    received: Vec<Received>,
    /// Scripted answers per path, used in order; when empty, `default` (or 200).
    script: HashMap<String, VecDeque<Reply>>,
    default: HashMap<String, Reply>,
    in_flight: HashMap<String, usize>,
    peak_in_flight: HashMap<String, usize>,
}

/// The receiver; cheap to clone.
#[derive(Clone)]
pub struct Receiver {
    pub base: String,
    inner: Arc<Mutex<Inner>>,
}

impl Receiver {
    pub async fn start() -> Self {
        let inner = Arc::new(Mutex::new(Inner::default()));
        let app = axum::Router::new()
            .fallback(handle)
            .with_state(inner.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind receiver");
        let base = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Self { base, inner }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    /// Answers the next requests to `path` with these replies, in order.
    pub fn script(&self, path: &str, replies: impl IntoIterator<Item = Reply>) {
        self.inner
            .lock()
            .unwrap()
            .script
            .entry(path.to_owned())
            .or_default()
            .extend(replies);
    }

    /// Answers every request to `path` with this reply once the script is used up.
    pub fn always(&self, path: &str, reply: Reply) {
        self.inner
            .lock()
            .unwrap()
            .default
            .insert(path.to_owned(), reply);
    }

    pub fn received(&self, path: &str) -> Vec<Received> {
        self.inner
            .lock()
            .unwrap()
            .received
            .iter()
            .filter(|r| r.path == path)
            .cloned()
            .collect()
    }

    pub fn all_received(&self) -> Vec<Received> {
        self.inner.lock().unwrap().received.clone()
    }

    /// The most requests to `path` that were being answered at the same time.
    /// Requests to `path` being answered right now (a delayed reply not yet sent).
    pub fn in_flight(&self, path: &str) -> usize {
        self.inner
            .lock()
            .unwrap()
            .in_flight
            .get(path)
            .copied()
            .unwrap_or(0)
    }

    pub fn peak_in_flight(&self, path: &str) -> usize {
        self.inner
            .lock()
            .unwrap()
            .peak_in_flight
            .get(path)
            .copied()
            .unwrap_or(0)
    }

    /// Waits until `path` has received `n` requests, or panics after `limit`.
    pub async fn wait_for(&self, path: &str, n: usize, limit: Duration) -> Vec<Received> {
        let deadline = Instant::now() + limit;
        loop {
            let got = self.received(path);
            if got.len() >= n {
                return got;
            }
            assert!(
                Instant::now() < deadline,
                "{path}: {} of {n} requests within {limit:?}",
                got.len()
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

async fn handle(
    State(inner): State<Arc<Mutex<Inner>>>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let path = uri.path().to_owned();
    let reply = {
        let mut i = inner.lock().unwrap();
        i.received.push(Received {
            path: path.clone(),
            headers,
            body,
            at: Instant::now(),
        });
        let n = {
            let n = i.in_flight.entry(path.clone()).or_default();
            *n += 1;
            *n
        };
        let peak = i.peak_in_flight.entry(path.clone()).or_default();
        *peak = (*peak).max(n);
        let scripted = i.script.get_mut(&path).and_then(VecDeque::pop_front);
        scripted
            .or_else(|| i.default.get(&path).cloned())
            .unwrap_or_else(|| Reply::status(200))
    };
    // Counted down even when the client gives up and the answer is never sent.
    struct InFlight(Arc<Mutex<Inner>>, String);
    impl Drop for InFlight {
        fn drop(&mut self) {
            if let Ok(mut i) = self.0.lock() {
                if let Some(n) = i.in_flight.get_mut(&self.1) {
                    *n -= 1;
                }
            }
        }
    }
    let _guard = InFlight(inner.clone(), path.clone());
    tokio::time::sleep(reply.delay).await;
    let mut resp = (
        StatusCode::from_u16(reply.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
        reply.body,
    )
        .into_response();
    for (k, v) in reply.headers {
        resp.headers_mut().insert(
            axum::http::HeaderName::from_bytes(k.as_bytes()).expect("header name"),
            v.parse().expect("header value"),
        );
    }
    resp
}
