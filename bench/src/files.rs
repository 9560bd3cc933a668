//! Memory while a large recording goes in and out (SPEC P5): a WAV of N MiB (8 kHz mono PCM16,
//! generated chunk by chunk, never whole in memory) is uploaded with a streamed body to
//! `POST /api/v1/calls/{id}/recording` on the real HTTP server in this process, then read back
//! from `GET /api/v1/documents/{id}/content`, while this process's RSS (server and client
//! together) is sampled every 20 ms. The upload is spooled to disk, probed memory-mapped and
//! streamed to the local object store, and the download streams from it, so neither should need
//! memory that grows with N: the figures are the growth over the RSS before each transfer.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use futures::StreamExt;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use casebridge_testkit::TestBackend;

use crate::harness::{rss_mib, Bench};
use crate::report::{m, Measure};
use crate::server::ApiServer;

#[derive(Debug, Clone, Copy)]
pub struct Params {
    pub mib: u64,
}

impl Params {
    pub fn json(&self) -> Value {
        json!({"mib": self.mib})
    }
}

const CHUNK: usize = 64 * 1024;

/// The WAV's bytes in chunks: a 44-byte header, then `total - 44` bytes of a tone.
fn wav_chunks(total: u64) -> impl futures::Stream<Item = Result<Vec<u8>, std::io::Error>> {
    let data_len = u32::try_from(total - 44).expect("a WAV under 4 GiB");
    let mut header = Vec::with_capacity(44);
    header.extend_from_slice(b"RIFF");
    header.extend_from_slice(&(36 + data_len).to_le_bytes());
    header.extend_from_slice(b"WAVEfmt ");
    header.extend_from_slice(&16u32.to_le_bytes());
    header.extend_from_slice(&1u16.to_le_bytes());
    header.extend_from_slice(&1u16.to_le_bytes());
    header.extend_from_slice(&8000u32.to_le_bytes());
    header.extend_from_slice(&16000u32.to_le_bytes());
    header.extend_from_slice(&2u16.to_le_bytes());
    header.extend_from_slice(&16u16.to_le_bytes());
    header.extend_from_slice(b"data");
    header.extend_from_slice(&data_len.to_le_bytes());
    let first = futures::stream::once(async move { Ok(header) });
    let body = futures::stream::unfold(0u64, move |sent| async move {
        let left = u64::from(data_len) - sent;
        if left == 0 {
            return None;
        }
        let n = left.min(CHUNK as u64) as usize;
        let chunk: Vec<u8> = (0..n).map(|i| ((sent as usize + i) % 251) as u8).collect();
        Some((Ok(chunk), sent + n as u64))
    });
    first.chain(body)
}

/// Samples RSS every 20 ms until stopped; returns the highest seen.
fn sample_rss() -> (Arc<AtomicBool>, tokio::task::JoinHandle<f64>) {
    let stop = Arc::new(AtomicBool::new(false));
    let flag = stop.clone();
    let task = tokio::spawn(async move {
        let mut max = rss_mib();
        while !flag.load(Ordering::Relaxed) {
            max = max.max(rss_mib());
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        max.max(rss_mib())
    });
    (stop, task)
}

pub async fn run(backend: TestBackend, p: Params) -> anyhow::Result<Vec<Measure>> {
    let bench = Bench::new(backend).await?;
    let server = ApiServer::start(&bench).await?;
    let call: Value = server
        .http
        .post(server.url("/api/v1/calls"))
        .bearer_auth(&server.api_key)
        .json(&json!({"direction": "inbound"}))
        .send()
        .await?
        .json()
        .await?;
    let call = call["id"].as_str().context("the call's id")?.to_owned();
    let total = p.mib * 1024 * 1024;
    let mut expected = Sha256::new();
    let mut hashing = std::pin::pin!(wav_chunks(total));
    while let Some(chunk) = hashing.next().await {
        expected.update(chunk?);
    }
    let expected = format!("{:x}", expected.finalize());

    let rss_before_upload = rss_mib();
    let (stop, sampler) = sample_rss();
    let started = Instant::now();
    let resp = server
        .http
        .post(server.url(&format!("/api/v1/calls/{call}/recording")))
        .bearer_auth(&server.api_key)
        .header("content-type", "audio/wav")
        .header(
            "content-disposition",
            "attachment; filename=\"long-call.wav\"",
        )
        .body(reqwest::Body::wrap_stream(wav_chunks(total)))
        .send()
        .await?;
    let status = resp.status();
    let stored: Value = resp.json().await?;
    let upload_s = started.elapsed().as_secs_f64();
    stop.store(true, Ordering::Relaxed);
    let rss_max_upload = sampler.await?;
    if !status.is_success() {
        bail!("the upload answered {status}: {stored}");
    }
    if stored["sha256"] != expected.as_str() || stored["size"] != total {
        bail!("the stored recording differs from the upload: {stored}");
    }
    let id = stored["id"]
        .as_str()
        .context("the recording's id")?
        .to_owned();

    let rss_before_download = rss_mib();
    let (stop, sampler) = sample_rss();
    let started = Instant::now();
    let mut resp = server
        .http
        .get(server.url(&format!("/api/v1/documents/{id}/content")))
        .bearer_auth(&server.api_key)
        .send()
        .await?;
    if !resp.status().is_success() {
        bail!("the download answered {}", resp.status());
    }
    let mut got = Sha256::new();
    let mut bytes = 0u64;
    while let Some(chunk) = resp.chunk().await? {
        bytes += chunk.len() as u64;
        got.update(&chunk);
    }
    let download_s = started.elapsed().as_secs_f64();
    stop.store(true, Ordering::Relaxed);
    let rss_max_download = sampler.await?;
    if bytes != total || format!("{:x}", got.finalize()) != expected {
        bail!("the download differs from the upload ({bytes} of {total} bytes)");
    }
    server.stop().await;
    bench.close().await;
    let mib = p.mib as f64;
    Ok(vec![
        m("file_size", "MiB", mib),
        m("upload_rate", "MiB/s", mib / upload_s),
        m("rss_before_upload", "MiB", rss_before_upload),
        m("rss_max_upload", "MiB", rss_max_upload),
        m(
            "rss_growth_upload",
            "MiB",
            rss_max_upload - rss_before_upload,
        ),
        m("download_rate", "MiB/s", mib / download_s),
        m("rss_max_download", "MiB", rss_max_download),
        m(
            "rss_growth_download",
            "MiB",
            rss_max_download - rss_before_download,
        ),
    ])
}
