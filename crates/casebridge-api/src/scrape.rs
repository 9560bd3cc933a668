//! `/metrics`: the process's counters and histograms (the Prometheus recorder), followed by the
//! levels read from the database at this scrape (`casebridge_app::operator`). Every metric is
//! described in `docs/metrics.md`. Labels are bounded sets (queue, job kind, state, CRM,
//! outcome class, route template); no id ever becomes a label.

use std::fmt::Write as _;

use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use casebridge_app::operator::{self, Levels};

use crate::AppState;

const LEVELS_UP: &str =
    "Whether this scrape could read the levels from the database (1) or not (0).";

pub(crate) async fn metrics(State(s): State<AppState>) -> Response {
    let mut text = s.metrics.render();
    let up = match operator::levels(&s.app).await {
        Ok(levels) => {
            render_levels(&mut text, &levels);
            1.0
        }
        Err(e) => {
            tracing::warn!(error = %e, "/metrics could not read the levels");
            0.0
        }
    };
    gauge(
        &mut text,
        "casebridge_levels_up",
        LEVELS_UP,
        &[(String::new(), up)],
    );
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        text,
    )
        .into_response()
}

fn render_levels(out: &mut String, l: &Levels) {
    let labels = |q: &str, state: &str| format!("queue=\"{}\",state=\"{state}\"", escape(q));
    let depth: Vec<(String, f64)> = l
        .queues
        .iter()
        .map(|q| (labels(&q.queue, q.state), q.jobs as f64))
        .collect();
    let age: Vec<(String, f64)> = l
        .queues
        .iter()
        .filter_map(|q| Some((labels(&q.queue, q.state), q.oldest_due_seconds?)))
        .collect();
    gauge(
        out,
        "casebridge_queue_jobs",
        "Jobs by queue and state (waiting: behind an earlier job of its ordering key; \
         scheduled: not due yet, or retrying later; blocked: due, waiting for a concurrency \
         slot; dead: retries spent, kept until requeued).",
        &depth,
    );
    gauge(
        out,
        "casebridge_queue_oldest_due_age_seconds",
        "How long the oldest due job of the queue and state has been due (0 when none is).",
        &age,
    );

    let mut ops = Vec::new();
    let mut connected = Vec::new();
    let mut broken = Vec::new();
    for crm in &l.crms {
        let p = crm.provider.as_str();
        for (state, n) in &crm.operations {
            ops.push((
                format!("provider=\"{p}\",state=\"{}\"", state.as_str()),
                *n as f64,
            ));
        }
        connected.push((format!("provider=\"{p}\""), crm.connected as f64));
        broken.push((format!("provider=\"{p}\""), crm.config_errors as f64));
    }
    gauge(
        out,
        "casebridge_crm_operations",
        "Outbound CRM operations by CRM and state.",
        &ops,
    );
    gauge(
        out,
        "casebridge_crm_integrations_connected",
        "Connected CRM integrations by CRM.",
        &connected,
    );
    gauge(
        out,
        "casebridge_crm_integrations_config_error",
        "Connected CRM integrations with a configuration error (wrong key or credentials, \
         revoked access): operations wait until an admin fixes the connection.",
        &broken,
    );

    let pool = l.pool;
    gauge(
        out,
        "casebridge_db_pool_connections",
        "Database pool connections by state.",
        &[
            ("state=\"idle\"".into(), f64::from(pool.idle)),
            (
                "state=\"in_use\"".into(),
                f64::from(pool.open.saturating_sub(pool.idle)),
            ),
        ],
    );
    gauge(
        out,
        "casebridge_db_pool_max_connections",
        "The database pool's configured maximum.",
        &[(String::new(), f64::from(pool.max))],
    );
}

/// Appends one gauge family in the Prometheus text format.
fn gauge(out: &mut String, name: &str, help: &str, samples: &[(String, f64)]) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} gauge");
    for (labels, value) in samples {
        if labels.is_empty() {
            let _ = writeln!(out, "{name} {value}");
        } else {
            let _ = writeln!(out, "{name}{{{labels}}} {value}");
        }
    }
}

/// A label value as the text format wants it.
fn escape(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}
