//! A light counting receiver: the stand-in for webhook consumers under load.
//!
//! `casebridge_testkit::receiver::Receiver` keeps every request (headers and body) and takes one
//! lock per request to do so; under thousands of deliveries per second that bookkeeping would
//! compete with the worker for the machine's two cores. This one records only what the benchmarks
//! need — which endpoint, the `webhook-id` header, and the arrival instant — or, for the backlog
//! scenario, nothing but a counter, so its memory does not grow with the number of deliveries.
//!
//! It runs on its own thread with a single-threaded Tokio runtime, so an arrival is stamped when
//! the request is read, not when the worker's runtime gets round to it. Instants come from the
//! same monotonic clock as the rest of the process.
//!
//! Paths say how to answer: `/ok/{n}` answers 200 at once, `/hang/{n}` sleeps 20 s before
//! answering 200 (beyond the 15 s attempt timeout), `/busy/{n}` answers 503 with
//! `Retry-After: 3600`.

use std::collections::HashSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use tokio_util::sync::CancellationToken;

/// How long `/hang/…` waits before answering.
pub const HANG: Duration = Duration::from_secs(20);

/// How an endpoint answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    Ok,
    Hang,
    Busy,
}

impl Kind {
    fn index(self) -> usize {
        self as usize
    }

    fn segment(self) -> &'static str {
        match self {
            Kind::Ok => "ok",
            Kind::Hang => "hang",
            Kind::Busy => "busy",
        }
    }
}

/// One request as received.
#[derive(Debug, Clone, Copy)]
pub struct Arrival {
    pub kind: Kind,
    pub endpoint: u32,
    /// The `webhook-id` header (the event id) as a number.
    pub event: u128,
    pub at: Instant,
}

#[derive(Default)]
struct Log {
    arrivals: Vec<Arrival>,
    seen: HashSet<(Kind, u32, u128)>,
}

struct Shared {
    keep: bool,
    log: Mutex<Log>,
    total: AtomicUsize,
    /// Distinct (endpoint, event) pairs per [`Kind`].
    distinct: [AtomicUsize; 3],
}

pub struct CountingReceiver {
    base: String,
    shared: Arc<Shared>,
    stop: CancellationToken,
}

impl CountingReceiver {
    /// Starts listening on `127.0.0.1:0`. With `keep` false only the request count is kept.
    pub fn start(keep: bool) -> anyhow::Result<Self> {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").context("bind receiver")?;
        listener.set_nonblocking(true)?;
        let base = format!("http://{}", listener.local_addr()?);
        let shared = Arc::new(Shared {
            keep,
            log: Mutex::new(Log::default()),
            total: AtomicUsize::new(0),
            distinct: Default::default(),
        });
        let stop = CancellationToken::new();
        let (state, token) = (shared.clone(), stop.clone());
        std::thread::Builder::new()
            .name("bench-receiver".into())
            .spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("receiver runtime");
                rt.block_on(async move {
                    let listener =
                        tokio::net::TcpListener::from_std(listener).expect("receiver listener");
                    let app = axum::Router::new().fallback(move |uri: Uri, headers: HeaderMap| {
                        handle(state.clone(), uri, headers)
                    });
                    // Not graceful: a hanging request must not keep the thread alive.
                    tokio::select! {
                        _ = axum::serve(listener, app) => {}
                        _ = token.cancelled() => {}
                    }
                });
            })
            .context("spawn receiver thread")?;
        Ok(Self { base, shared, stop })
    }

    pub fn url(&self, kind: Kind, endpoint: usize) -> String {
        format!("{}/{}/{endpoint}", self.base, kind.segment())
    }

    /// Requests received, duplicates included.
    pub fn total(&self) -> usize {
        self.shared.total.load(Ordering::Relaxed)
    }

    /// Distinct (endpoint, event) pairs received by endpoints of `kind` (only when keeping
    /// arrivals).
    pub fn distinct(&self, kind: Kind) -> usize {
        self.shared.distinct[kind.index()].load(Ordering::Relaxed)
    }

    /// A copy of every arrival so far.
    pub fn arrivals(&self) -> Vec<Arrival> {
        self.shared.log.lock().expect("log").arrivals.clone()
    }

    /// Waits until endpoints of `kind` have received `n` distinct (endpoint, event) pairs,
    /// printing progress every few seconds.
    pub async fn wait_distinct(&self, kind: Kind, n: usize, limit: Duration) -> anyhow::Result<()> {
        let start = Instant::now();
        let mut last_print = Instant::now();
        while self.distinct(kind) < n {
            if start.elapsed() >= limit {
                bail!(
                    "only {} of {n} distinct deliveries arrived within {limit:?}",
                    self.distinct(kind)
                );
            }
            if last_print.elapsed() >= Duration::from_secs(3) {
                let got = self.distinct(kind);
                crate::harness::progress(&format!(
                    "{got}/{n} delivered ({:.0}/s so far)",
                    got as f64 / start.elapsed().as_secs_f64()
                ));
                last_print = Instant::now();
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        Ok(())
    }
}

impl Drop for CountingReceiver {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

async fn handle(shared: Arc<Shared>, uri: Uri, headers: HeaderMap) -> Response {
    let at = Instant::now();
    let mut parts = uri.path().trim_start_matches('/').splitn(2, '/');
    let kind = match parts.next() {
        Some("ok") => Kind::Ok,
        Some("hang") => Kind::Hang,
        Some("busy") => Kind::Busy,
        _ => return StatusCode::NOT_FOUND.into_response(),
    };
    let endpoint: u32 = parts.next().and_then(|n| n.parse().ok()).unwrap_or(0);
    shared.total.fetch_add(1, Ordering::Relaxed);
    if shared.keep {
        let event = headers
            .get("webhook-id")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| uuid::Uuid::parse_str(v).ok())
            .map_or(0, |u| u.as_u128());
        let mut log = shared.log.lock().expect("log");
        log.arrivals.push(Arrival {
            kind,
            endpoint,
            event,
            at,
        });
        if log.seen.insert((kind, endpoint, event)) {
            shared.distinct[kind.index()].fetch_add(1, Ordering::Relaxed);
        }
    }
    match kind {
        Kind::Ok => StatusCode::OK.into_response(),
        Kind::Hang => {
            tokio::time::sleep(HANG).await;
            StatusCode::OK.into_response()
        }
        Kind::Busy => (
            StatusCode::SERVICE_UNAVAILABLE,
            [("retry-after", "3600")],
            "busy",
        )
            .into_response(),
    }
}
