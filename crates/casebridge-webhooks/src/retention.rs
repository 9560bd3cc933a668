//! Pruning of the delivery log (W9): attempts, finished deliveries and orphaned events older than
//! the retention setting are deleted. Pending deliveries are never pruned.

use std::sync::Arc;
use std::time::Duration;

use casebridge_domain::clock::Clock;
use casebridge_store::{webhooks, Store, StoreError};
use tokio_util::sync::CancellationToken;

/// Deletes what is older than `retention`; returns (attempts, deliveries, events) deleted.
pub async fn prune_once(
    store: &Store,
    clock: &dyn Clock,
    retention: Duration,
) -> Result<(u64, u64, u64), StoreError> {
    let ms = i64::try_from(retention.as_millis()).unwrap_or(i64::MAX / 4);
    let before = jiff::Timestamp::from_millisecond(clock.now().as_millisecond() - ms)
        .unwrap_or(jiff::Timestamp::UNIX_EPOCH);
    let mut tx = store.begin().await?;
    let counts = webhooks::prune(&mut tx, before).await?;
    tx.commit().await?;
    Ok(counts)
}

/// Prunes every `every` until `shutdown`.
pub async fn prune_loop(
    store: Store,
    clock: Arc<dyn Clock>,
    retention: Duration,
    every: Duration,
    shutdown: CancellationToken,
) {
    loop {
        match prune_once(&store, clock.as_ref(), retention).await {
            Ok((a, d, e)) if a + d + e > 0 => {
                tracing::info!(
                    attempts = a,
                    deliveries = d,
                    events = e,
                    "pruned webhook log"
                )
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "pruning the webhook log failed; will retry"),
        }
        tokio::select! {
            _ = tokio::time::sleep(every) => {}
            _ = shutdown.cancelled() => return,
        }
    }
}
