//! The counters every CRM adapter records, so each CRM reports under the same names and labels
//! (`provider`, the operation `kind`, an `outcome` from a fixed set). Described in
//! `docs/metrics.md`; the levels (operations by state) are read at scrape time instead.

/// An outbound operation's attempt ended: `done`, `retried`, `blocked` (configuration error),
/// `failed` (refused by the CRM), `skipped` (toggle off) or `held` (status sync paused).
pub fn operation(provider: &'static str, kind: &'static str, outcome: &'static str) {
    metrics::counter!("casebridge_crm_operation_attempts_total",
        "provider" => provider, "kind" => kind, "outcome" => outcome)
    .increment(1);
}

/// A pull of changes ended: `ok`, `retried` (transient: 429, 5xx, timeout) or `failed`.
pub fn pull(provider: &'static str, outcome: &'static str) {
    metrics::counter!("casebridge_crm_pulls_total", "provider" => provider, "outcome" => outcome)
        .increment(1);
}

/// A request waited for the CRM's rate limit (ours, or its `Retry-After`) for `seconds`: the
/// histogram's `_count` is how many waits, `_sum` how long in all.
pub fn rate_limit_wait(provider: &'static str, seconds: f64) {
    metrics::histogram!("casebridge_crm_rate_limit_wait_seconds", "provider" => provider)
        .record(seconds.max(0.0));
}
