//! Memory and speed of an export (SPEC P8): N clients are written directly with the store
//! (`clients::create`, 5,000 per transaction; not timed), then `GET /api/v1/exports/clients` is
//! read through the real HTTP server in this process, the body streamed and its rows counted,
//! while this process's RSS (server and client together) is sampled every 10,000 rows. The
//! export reads 500 rows at a time, so RSS should not grow with N: the figure is the growth from
//! the first sample to the highest. On PostgreSQL the seeded tables are analyzed before the
//! export (`Store::analyze`), as autovacuum would have done.

use std::time::Instant;

use anyhow::bail;
use casebridge_domain::records::{ClientFields, ExternalRef, NewClient};
use casebridge_store::clients;
use casebridge_testkit::TestBackend;
use serde_json::{json, Value};

use crate::harness::{progress, rss_mib, Bench};
use crate::report::{m, Measure};
use crate::server::ApiServer;

#[derive(Debug, Clone, Copy)]
pub struct Params {
    pub rows: usize,
    pub json: bool,
}

impl Params {
    pub fn json(&self) -> Value {
        json!({"rows": self.rows, "format": if self.json { "json" } else { "csv" }})
    }
}

const SEED_BATCH: usize = 5_000;

pub async fn run(backend: TestBackend, p: Params) -> anyhow::Result<Vec<Measure>> {
    let bench = Bench::new(backend).await?;
    let server = ApiServer::start(&bench).await?;
    let company = server.company;
    let seed = Instant::now();
    let mut made = 0;
    while made < p.rows {
        let take = SEED_BATCH.min(p.rows - made);
        let mut tx = bench.store.begin().await?;
        for i in made..made + take {
            let new = NewClient {
                fields: ClientFields {
                    first_name: Some(format!("First, \"{i}\"")),
                    last_name: Some("Last".into()),
                    email: Some(format!("client{i}@example.com")),
                    phone: Some("+15551234567".into()),
                },
                external_refs: vec![ExternalRef {
                    provider: "lawruler".into(),
                    external_id: i.to_string(),
                }],
            };
            clients::create(&mut tx, company, &new, bench.now()).await?;
        }
        tx.commit().await?;
        made += take;
        if made % 100_000 == 0 || made == p.rows {
            progress(&format!("seeded {made}/{} clients", p.rows));
        }
    }
    let seed_s = seed.elapsed().as_secs_f64();
    // As autovacuum would have by now on a server that runs it (this machine's PostgreSQL has
    // `autovacuum = off`, so a fresh database would otherwise have no statistics at all).
    bench.store.analyze().await?;

    let rss_before = rss_mib();
    let format = if p.json { "json" } else { "csv" };
    let started = Instant::now();
    let mut resp = server
        .http
        .get(server.url(&format!("/api/v1/exports/clients?format={format}")))
        .bearer_auth(&server.api_key)
        .send()
        .await?;
    if !resp.status().is_success() {
        bail!("export answered {}", resp.status());
    }
    let first_byte_ms = started.elapsed().as_secs_f64() * 1000.0;
    let (mut bytes, mut newlines) = (0u64, 0u64);
    let mut next_sample = 10_000u64;
    let (mut rss_first, mut rss_max) = (None::<f64>, 0f64);
    while let Some(chunk) = resp.chunk().await? {
        bytes += chunk.len() as u64;
        newlines += chunk.iter().filter(|b| **b == b'\n').count() as u64;
        if newlines >= next_sample {
            let rss = rss_mib();
            rss_first.get_or_insert(rss);
            rss_max = rss_max.max(rss);
            next_sample += 10_000;
        }
    }
    let secs = started.elapsed().as_secs_f64();
    // CSV: a header and one line per row (the seeded values have no line breaks). JSON: "[",
    // one line per row, "]".
    let rows = if p.json {
        newlines.saturating_sub(2)
    } else {
        newlines.saturating_sub(1)
    };
    if rows != p.rows as u64 {
        bail!("the export held {rows} rows, not {}", p.rows);
    }
    let rss_first = rss_first.unwrap_or(rss_before);
    server.stop().await;
    bench.close().await;
    Ok(vec![
        m("rows", "rows", rows as f64),
        m("seed_rate", "rows/s", p.rows as f64 / seed_s),
        m("export_rate", "rows/s", rows as f64 / secs),
        m(
            "export_throughput",
            "MiB/s",
            bytes as f64 / secs / 1_048_576.0,
        ),
        m("first_byte", "ms", first_byte_ms),
        m("rss_before_export", "MiB", rss_before),
        m("rss_at_10k_rows", "MiB", rss_first),
        m("rss_max", "MiB", rss_max.max(rss_first)),
        m(
            "rss_growth_10k_to_end",
            "MiB",
            rss_max.max(rss_first) - rss_first,
        ),
    ])
}
