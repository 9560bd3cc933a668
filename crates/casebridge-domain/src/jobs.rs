//! Durable jobs: the unit of work that leaves the process (webhook deliveries, CRM operations).

use jiff::Timestamp;
use serde_json::Value;

use crate::ids::{CompanyId, JobId};

/// Work to enqueue. Written in the same transaction as the change that caused it.
#[derive(Debug, Clone)]
pub struct NewJob {
    /// Which worker pool runs it (`webhooks`, `crm`, ...).
    pub queue: String,
    /// Which handler runs it.
    pub kind: String,
    pub company_id: Option<CompanyId>,
    pub payload: Value,
    /// Jobs with the same key run one at a time, in the order they were enqueued.
    pub ordering_key: Option<String>,
    /// At most `limit` jobs with this key run at once, across all workers of a process (and,
    /// on PostgreSQL, approximately across processes: each claim counts what is running).
    pub concurrency: Option<(String, u32)>,
    /// Not before this time; `None` means now.
    pub run_at: Option<Timestamp>,
}

impl NewJob {
    pub fn new(queue: impl Into<String>, kind: impl Into<String>, payload: Value) -> Self {
        Self {
            queue: queue.into(),
            kind: kind.into(),
            company_id: None,
            payload,
            ordering_key: None,
            concurrency: None,
            run_at: None,
        }
    }

    pub fn concurrency(mut self, key: impl Into<String>, limit: u32) -> Self {
        self.concurrency = Some((key.into(), limit.max(1)));
        self
    }

    pub fn company(mut self, id: CompanyId) -> Self {
        self.company_id = Some(id);
        self
    }

    pub fn ordering_key(mut self, key: impl Into<String>) -> Self {
        self.ordering_key = Some(key.into());
        self
    }

    pub fn run_at(mut self, at: Timestamp) -> Self {
        self.run_at = Some(at);
        self
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JobStatus {
    /// Waiting for `run_at`.
    Pending,
    /// Claimed by a worker until `locked_until`.
    Running,
    /// Retries spent or failed permanently; kept for inspection and manual replay.
    Dead,
}

impl JobStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            JobStatus::Pending => "pending",
            JobStatus::Running => "running",
            JobStatus::Dead => "dead",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "pending" => Some(JobStatus::Pending),
            "running" => Some(JobStatus::Running),
            "dead" => Some(JobStatus::Dead),
            _ => None,
        }
    }
}

/// A job as stored.
#[derive(Debug, Clone)]
pub struct Job {
    pub id: JobId,
    pub queue: String,
    pub kind: String,
    pub company_id: Option<CompanyId>,
    pub payload: Value,
    pub ordering_key: Option<String>,
    pub status: JobStatus,
    /// Attempts started so far, including the one in progress.
    pub attempts: u32,
    pub run_at: Timestamp,
    pub first_attempt_at: Option<Timestamp>,
    pub locked_until: Option<Timestamp>,
    /// Identifies the current claim; completing or failing needs it, so a worker whose lease
    /// expired cannot overwrite the outcome of the worker that took the job over.
    pub lease_id: Option<String>,
    pub last_error: Option<String>,
    pub created_at: Timestamp,
}
