//! The two job handlers of the `webhooks` queue: dispatch (event → deliveries) and deliver (one
//! signed HTTP attempt, logged).

use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use casebridge_crypto::{mask, Keyring};
use casebridge_domain::clock::Clock;
use casebridge_domain::events::{Attempt, DeliveryStatus, EventType, Trigger, Webhook};
use casebridge_domain::ids::{AttemptId, CompanyId, DeliveryId, EventId, WebhookId};
use casebridge_domain::jobs::{Job, NewJob};
use casebridge_domain::retry::{Backoff, RetryDecision, RetryPolicy};
use casebridge_queue::{Handler, JobError, Registry};
use casebridge_store::{events, jobs, webhooks, Conn, Store, StoreError};
use jiff::Timestamp;
use secrecy::ExposeSecret;
use serde::{Deserialize, Serialize};

use crate::cache::{CachedWebhook, Signing, WebhookCache};
use crate::outbox::{DELIVER, DISPATCH, QUEUE};
use crate::policy::{safe_client_with_dns, DnsCache, PolicyError, UrlPolicy};
use crate::signing::{signed_headers, SigningSecret};

/// A delivery attempt that takes longer than this is a failure (W6).
pub const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(15);
/// Response bodies are logged up to this size (W9).
pub const RESPONSE_BODY_LIMIT: usize = 64 * 1024;

/// The retry schedule of a delivery (W6): delays with ±20 % jitter, within 24 hours of the first
/// attempt; the last attempt is made at the window's end, then the delivery fails.
pub fn delivery_policy() -> RetryPolicy {
    let m = |n: u64| Duration::from_secs(n * 60);
    RetryPolicy {
        backoff: Backoff::Schedule(vec![
            Duration::from_secs(5),
            m(1),
            m(5),
            m(30),
            m(120),
            m(300),
            m(600),
            m(960),
        ]),
        jitter: 0.2,
        max_attempts: 100,
        window: Some(Duration::from_secs(24 * 3600)),
    }
}

/// Associated data for sealed webhook secrets: a ciphertext only opens in its own place.
pub fn secret_aad(company: CompanyId, webhook: WebhookId) -> String {
    format!("webhook-secret/{company}/{webhook}")
}

pub fn app_key_aad(company: CompanyId, webhook: WebhookId) -> String {
    format!("webhook-app-key/{company}/{webhook}")
}

#[derive(Debug, Serialize, Deserialize)]
struct DeliverPayload {
    delivery_id: DeliveryId,
    trigger: String,
}

/// The job that sends one delivery: on the `webhooks` queue, under the webhook's concurrency
/// key (at most `limit` in flight).
pub fn delivery_job(
    company: CompanyId,
    webhook: WebhookId,
    delivery: DeliveryId,
    trigger: Trigger,
    limit: u32,
) -> NewJob {
    let payload = serde_json::to_value(DeliverPayload {
        delivery_id: delivery,
        trigger: trigger.as_str().to_owned(),
    })
    .expect("serializable");
    NewJob::new(QUEUE, DELIVER, payload)
        .company(company)
        .concurrency(concurrency_key(webhook), limit)
}

/// The concurrency key of a webhook's delivery jobs.
pub fn concurrency_key(webhook: WebhookId) -> String {
    format!("webhook:{webhook}")
}

/// Queues one delivery attempt to `webhook` on the caller's connection (inside its transaction),
/// under the webhook's bound on deliveries in flight.
pub async fn enqueue_delivery(
    conn: &mut Conn,
    webhook: &Webhook,
    delivery: DeliveryId,
    trigger: Trigger,
    now: Timestamp,
) -> Result<(), StoreError> {
    jobs::enqueue(
        conn,
        &delivery_job(
            webhook.company_id,
            webhook.id,
            delivery,
            trigger,
            webhook.max_in_flight,
        ),
        now,
    )
    .await?;
    Ok(())
}

/// Gives a webhook's queued and running delivery jobs its new bound on deliveries in flight, in
/// the caller's transaction (the one that changes the setting). A raised bound lets more start
/// at once; a lowered one applies as deliveries in flight finish.
pub async fn set_max_in_flight(
    conn: &mut Conn,
    webhook: WebhookId,
    limit: u32,
) -> Result<(), StoreError> {
    jobs::set_concurrency_limit(conn, QUEUE, &concurrency_key(webhook), limit).await
}

/// Everything the handlers need.
pub struct WebhookRuntime {
    pub store: Store,
    pub keyring: Keyring,
    pub clock: Arc<dyn Clock>,
    pub policy: Arc<UrlPolicy>,
    pub client: reqwest::Client,
    /// How long one attempt may take in total ([`ATTEMPT_TIMEOUT`] in production); the error of
    /// an attempt cut off names it.
    pub timeout: Duration,
    /// Webhooks with their decrypted secrets, by version (exact: see [`crate::cache`]).
    pub webhooks: WebhookCache,
    /// Recent DNS answers, shared by `vet` and the client's resolver; each use is vetted.
    pub dns: DnsCache,
}

impl WebhookRuntime {
    pub fn new(
        store: Store,
        keyring: Keyring,
        clock: Arc<dyn Clock>,
        policy: UrlPolicy,
        timeout: Duration,
    ) -> Arc<Self> {
        let policy = Arc::new(policy);
        let dns = DnsCache::default();
        Arc::new(Self {
            client: safe_client_with_dns(policy.clone(), timeout, dns.clone()),
            dns,
            webhooks: WebhookCache::default(),
            timeout,
            store,
            keyring,
            clock,
            policy,
        })
    }

    /// The handlers of the `webhooks` queue.
    pub fn registry(self: &Arc<Self>) -> Registry {
        Registry::new()
            .register(DISPATCH, Dispatch(self.clone()), RetryPolicy::standard())
            .register(DELIVER, Deliver(self.clone()), delivery_policy())
    }
}

fn store_err(e: StoreError) -> JobError {
    match e {
        StoreError::NotFound => JobError::Permanent("the record no longer exists".into()),
        other => JobError::retry(other.to_string()),
    }
}

fn company_of(job: &Job) -> Result<CompanyId, JobError> {
    job.company_id
        .ok_or_else(|| JobError::Permanent("job has no company".into()))
}

/// Matches an event against the company's active webhooks and creates a delivery (and its job)
/// for each match. Running twice creates nothing new. Events are fanned out in the transaction
/// that records them now ([`crate::outbox::record_event`]); this handler runs the dispatch jobs
/// that versions before that queued (a database upgraded with some still pending).
struct Dispatch(Arc<WebhookRuntime>);

#[async_trait]
impl Handler for Dispatch {
    async fn run(&self, job: &Job) -> Result<(), JobError> {
        let rt = &self.0;
        let company = company_of(job)?;
        let event_id: EventId = job.payload["event_id"]
            .as_str()
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| JobError::Permanent("payload has no event_id".into()))?;
        let now = rt.clock.now();
        let mut tx = rt.store.begin().await.map_err(store_err)?;
        let event = events::get(&mut tx, company, event_id)
            .await
            .map_err(store_err)?;
        let hooks = webhooks::active(&mut tx, company)
            .await
            .map_err(store_err)?;
        for hook in hooks.iter().filter(|h| h.subscription.matches(&event)) {
            if let Some(delivery) =
                webhooks::create_delivery(&mut tx, company, hook.id, event.id, now)
                    .await
                    .map_err(store_err)?
            {
                enqueue_delivery(&mut tx, hook, delivery, Trigger::Scheduled, now)
                    .await
                    .map_err(store_err)?;
            }
        }
        // The dispatch job ends with the deliveries it made (one commit for both).
        if !jobs::complete_in(&mut tx, job).await.map_err(store_err)? {
            tracing::warn!(job.id = %job.id, "dispatch lease lost; another worker owns the job");
        }
        tx.commit().await.map_err(store_err)?;
        Ok(())
    }

    fn completes_itself(&self) -> bool {
        true
    }
}

/// Sends one delivery: signs, posts through the SSRF-safe client, logs the attempt and decides
/// what happens next, all recorded in one transaction.
struct Deliver(Arc<WebhookRuntime>);

/// What came back from the endpoint, or why nothing did.
struct Outcome {
    status: Option<u16>,
    headers: Vec<(String, String)>,
    body: Option<String>,
    error: Option<String>,
    retry_after: Option<Duration>,
    /// The outcome class counted in `casebridge_webhook_attempts_total`.
    class: &'static str,
}

#[async_trait]
impl Handler for Deliver {
    async fn on_dead(&self, job: &Job, error: &str) {
        self.fail_delivery(job, error).await;
    }

    fn completes_itself(&self) -> bool {
        true
    }

    async fn run(&self, job: &Job) -> Result<(), JobError> {
        let rt = &self.0;
        let company = company_of(job)?;
        let payload: DeliverPayload = serde_json::from_value(job.payload.clone())
            .map_err(|e| JobError::Permanent(format!("bad payload: {e}")))?;
        let mut conn = rt.store.conn().await.map_err(store_err)?;
        // The delivery comes with its webhook's current version (a cached webhook of another
        // version is reloaded, so the cache never sends with what a change replaced), its body,
        // and whether this job already succeeded once.
        let to_send = webhooks::delivery_to_send(&mut conn, company, payload.delivery_id, job.id)
            .await
            .map_err(store_err)?;
        // A re-run after a crash between the successful attempt and the job's completion sends
        // nothing a second time.
        if to_send.already_sent {
            drop(conn);
            jobs::complete(&rt.store, job).await.map_err(store_err)?;
            return Ok(());
        }
        let delivery = to_send.delivery;
        let cached = match rt
            .webhooks
            .get(company, delivery.webhook_id, to_send.webhook_version)
        {
            Some(c) => c,
            None => self.load(&mut conn, company, delivery.webhook_id).await?,
        };
        let hook = &cached.hook;
        if !hook.active && delivery.event_type != EventType::WebhookTest {
            drop(conn);
            let why = "the webhook is turned off";
            let mut tx = rt.store.begin().await.map_err(store_err)?;
            let failed = webhooks::mark_failed(&mut tx, company, delivery.id, why, rt.clock.now())
                .await
                .map_err(store_err)?;
            tx.commit().await.map_err(store_err)?;
            if failed {
                count_failed("webhook_off");
            }
            return Err(JobError::Permanent(why.into()));
        }
        let body = to_send.payload;
        drop(conn);

        let started_at = rt.clock.now();
        // Secrets past their end (a rotation's overlap) are left out here, at use.
        let (secrets, app_key) = cached.signing_at(started_at).map_err(JobError::Permanent)?;
        let msg_id = delivery.event_id.to_string();
        let signed = signed_headers(&secrets, &msg_id, started_at.as_second(), body.as_bytes());
        let mut headers: Vec<(String, String)> = vec![
            ("content-type".into(), "application/json".into()),
            ("webhook-id".into(), signed.webhook_id),
            ("webhook-timestamp".into(), signed.webhook_timestamp),
            ("webhook-signature".into(), signed.webhook_signature.clone()),
            ("x-kayse-signature".into(), signed.webhook_signature),
        ];
        if let Some(k) = &app_key {
            headers.push(("x-public-api-key".into(), k.expose_secret().to_owned()));
        }
        let clock = Instant::now();
        let outcome = self.send(&hook.url, &headers, &body).await;
        let elapsed = clock.elapsed();
        let duration_ms = u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX);
        metrics::counter!("casebridge_webhook_attempts_total", "outcome" => outcome.class)
            .increment(1);
        metrics::histogram!("casebridge_webhook_attempt_duration_seconds",
            "outcome" => outcome.class)
        .record(elapsed.as_secs_f64());

        // Decide what follows, from the status: success, gone, or a failure to retry or give up.
        let ok = outcome.status.is_some_and(|s| (200..300).contains(&s));
        let gone = outcome.status == Some(410);
        let first = job.first_attempt_at.unwrap_or(started_at);
        let final_failure = !ok
            && (gone
                || delivery_policy().decide(
                    job.attempts,
                    first,
                    started_at,
                    outcome.retry_after,
                    0.5,
                ) == RetryDecision::GiveUp);
        let status = if ok {
            DeliveryStatus::Succeeded
        } else if final_failure {
            DeliveryStatus::Failed
        } else {
            DeliveryStatus::Pending
        };
        let trigger = if job.attempts > 1 {
            Trigger::Retry
        } else {
            Trigger::parse(&payload.trigger).unwrap_or(Trigger::Scheduled)
        };
        let logged_headers = headers
            .into_iter()
            .map(|(k, v)| {
                let v = if k == "x-public-api-key" { mask(&v) } else { v };
                (k, v)
            })
            .collect();
        let error = outcome.error.clone().or_else(|| {
            outcome
                .status
                .filter(|_| !ok)
                .map(|s| format!("the endpoint answered HTTP {s}"))
        });
        let attempt = Attempt {
            id: AttemptId::new(),
            delivery_id: delivery.id,
            job_id: job.id,
            attempt_no: delivery.attempt_count + 1,
            trigger,
            request_url: hook.url.clone(),
            request_headers: logged_headers,
            request_body: body,
            response_status: outcome.status,
            response_headers: outcome.headers,
            response_body: outcome.body,
            error: error.clone(),
            duration_ms,
            succeeded: ok,
            started_at,
        };
        // One unit of a group commit: concurrent deliveries' attempts (and their jobs' ends)
        // share a commit. A success ends the job in the attempt's unit; a failure is the
        // worker's to schedule.
        // A success also claims the job that takes this one's slot, for this worker to run
        // next (`casebridge_queue::successor_take`).
        let (done_job, hook_id) = (job.clone(), hook.id);
        let take = casebridge_queue::successor_take(rt.clock.now());
        let ended = rt
            .store
            .group_commit(move |tx| {
                Box::pin(async move {
                    if status == DeliveryStatus::Succeeded {
                        // The attempt and the job's end: one round trip on SQLite.
                        return webhooks::record_attempt_completing(
                            tx, company, &attempt, &done_job, take,
                        )
                        .await;
                    }
                    webhooks::record_attempt(tx, company, &attempt, status).await?;
                    if gone {
                        let why = "the endpoint answered 410 Gone";
                        webhooks::disable(tx, company, hook_id, why, started_at).await?;
                    }
                    Ok::<_, StoreError>(jobs::Ended {
                        held: true,
                        next: None,
                    })
                })
            })
            .await
            .map_err(store_err)?;
        let held = ended.held;
        if let Some(next) = ended.next {
            casebridge_queue::hand_successor(next);
        }
        if !held {
            tracing::warn!(job.id = %job.id, "delivery lease lost; another worker owns the job");
        }
        if gone {
            metrics::counter!("casebridge_webhook_endpoints_disabled_total", "reason" => "gone")
                .increment(1);
        }
        if status == DeliveryStatus::Failed {
            count_failed(if gone { "gone" } else { "retries_spent" });
        }

        let error = error.unwrap_or_default();
        match status {
            DeliveryStatus::Succeeded => Ok(()),
            DeliveryStatus::Failed => Err(JobError::Permanent(error)),
            DeliveryStatus::Pending => Err(JobError::Retry {
                error,
                retry_after: outcome.retry_after,
            }),
        }
    }
}

impl Deliver {
    /// Marks the delivery failed once its job is dead-lettered, whatever killed it (retries
    /// spent, a store error, an unreadable secret), so no delivery stays "pending" forever.
    async fn fail_delivery(&self, job: &Job, error: &str) {
        let rt = &self.0;
        let Ok(payload) = serde_json::from_value::<DeliverPayload>(job.payload.clone()) else {
            return;
        };
        let Some(company) = job.company_id else {
            return;
        };
        let result = async {
            let mut conn = rt.store.conn().await?;
            webhooks::mark_failed(
                &mut conn,
                company,
                payload.delivery_id,
                error,
                rt.clock.now(),
            )
            .await
        }
        .await;
        match result {
            Ok(true) => count_failed("error"),
            Ok(false) => {}
            Err(e) => tracing::warn!(error = %e, delivery.id = %payload.delivery_id,
                "could not mark a dead delivery failed"),
        }
    }

    /// Reads a webhook with its secrets that have not ended, opens them and the App Key, and
    /// caches the result under the version read. The webhook row is read first, so the secrets
    /// are at least as new as the version they are cached under (a change in between only makes
    /// the next delivery reload).
    async fn load(
        &self,
        conn: &mut Conn,
        company: CompanyId,
        id: WebhookId,
    ) -> Result<Arc<CachedWebhook>, JobError> {
        let rt = &self.0;
        let hook = match webhooks::get(conn, company, id).await {
            Err(StoreError::NotFound) => {
                rt.webhooks.remove(company, id);
                return Err(store_err(StoreError::NotFound));
            }
            other => other.map_err(store_err)?,
        };
        let sealed = webhooks::active_secrets(conn, company, id, rt.clock.now())
            .await
            .map_err(store_err)?;
        let aad = secret_aad(company, id);
        let secrets = sealed
            .iter()
            .map(|(s, ends)| {
                let plain = rt
                    .keyring
                    .open(s, &aad)
                    .map_err(|e| format!("signing secret: {e}"))?;
                let secret = SigningSecret::parse(plain.expose_secret())
                    .map_err(|e| format!("signing secret: {e}"))?;
                Ok((secret, *ends))
            })
            .collect::<Result<Vec<_>, String>>();
        let signing = secrets.and_then(|secrets| {
            let app_key = match &hook.app_key_sealed {
                Some(sealed) => Some(
                    rt.keyring
                        .open(sealed, &app_key_aad(company, id))
                        .map_err(|e| format!("App Key: {e}"))?,
                ),
                None => None,
            };
            Ok(Signing { secrets, app_key })
        });
        let entry = Arc::new(CachedWebhook::new(hook, signing));
        rt.webhooks.insert(entry.clone());
        Ok(entry)
    }

    async fn send(&self, url: &str, headers: &[(String, String)], body: &str) -> Outcome {
        let rt = &self.0;
        let failed = |class: &'static str, error: String| Outcome {
            status: None,
            headers: Vec::new(),
            body: None,
            error: Some(error),
            retry_after: None,
            class,
        };
        // Checked at every attempt: DNS can change after the webhook was saved. A cached answer
        // saves the lookup, not the check (and the client's resolver checks it again).
        let url = match rt.policy.vet_with(url, &rt.dns).await {
            Ok(u) => u,
            Err(e) => return failed("refused", format!("destination refused: {e}")),
        };
        let mut req = rt.client.post(url).body(body.to_owned());
        for (k, v) in headers {
            req = req.header(k.as_str(), v.as_str());
        }
        let mut resp = match req.send().await {
            Ok(r) => r,
            Err(e) => return failed(error_class(&e), describe(&e, rt.timeout)),
        };
        let status = resp.status().as_u16();
        let headers: Vec<(String, String)> = resp
            .headers()
            .iter()
            .map(|(k, v)| {
                (
                    k.to_string(),
                    String::from_utf8_lossy(v.as_bytes()).into_owned(),
                )
            })
            .collect();
        let retry_after = resp
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| parse_retry_after(v, rt.clock.now()));
        let mut buf: Vec<u8> = Vec::new();
        let mut error = None;
        loop {
            match resp.chunk().await {
                Ok(Some(chunk)) => {
                    let room = RESPONSE_BODY_LIMIT - buf.len();
                    buf.extend_from_slice(&chunk[..chunk.len().min(room)]);
                    if buf.len() >= RESPONSE_BODY_LIMIT {
                        break;
                    }
                }
                Ok(None) => break,
                Err(e) => {
                    error = Some(format!(
                        "reading the response failed: {}",
                        describe(&e, rt.timeout)
                    ));
                    break;
                }
            }
        }
        Outcome {
            status: Some(status),
            headers,
            body: Some(String::from_utf8_lossy(&buf).into_owned()),
            error,
            retry_after,
            class: status_class(status),
        }
    }
}

/// Counts a delivery that reached `failed`, by why.
fn count_failed(reason: &'static str) {
    metrics::counter!("casebridge_webhook_deliveries_failed_total", "reason" => reason)
        .increment(1);
}

/// The outcome class of an answered attempt.
fn status_class(status: u16) -> &'static str {
    match status {
        200..=299 => "2xx",
        300..=399 => "3xx",
        400..=499 => "4xx",
        500..=599 => "5xx",
        _ => "other",
    }
}

/// The outcome class of an attempt that got no answer.
fn error_class(e: &reqwest::Error) -> &'static str {
    if PolicyError::find_in(e).is_some() {
        "refused"
    } else if e.is_timeout() {
        "timeout"
    } else if e.is_connect() {
        "connect_error"
    } else {
        "error"
    }
}

/// A readable reason for a failed request; `timeout` is the attempt's limit.
fn describe(e: &reqwest::Error, timeout: Duration) -> String {
    if let Some(p) = PolicyError::find_in(e) {
        return format!("destination refused: {p}");
    }
    if e.is_timeout() {
        return format!("timed out after {}", seconds(timeout));
    }
    if e.is_connect() {
        return format!("could not connect: {}", innermost(e));
    }
    format!("request failed: {}", innermost(e))
}

/// `15 s`, `1.5 s`, `0.3 s`: a limit as people read it.
fn seconds(d: Duration) -> String {
    if d.subsec_millis() == 0 {
        format!("{} s", d.as_secs())
    } else {
        let text = format!("{:.3}", d.as_secs_f64());
        format!("{} s", text.trim_end_matches('0'))
    }
}

fn innermost(e: &(dyn std::error::Error + 'static)) -> String {
    let mut cur = e;
    while let Some(next) = cur.source() {
        cur = next;
    }
    cur.to_string()
}

/// `Retry-After` as seconds or an HTTP date, relative to `now`.
pub fn parse_retry_after(value: &str, now: Timestamp) -> Option<Duration> {
    let value = value.trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let at = jiff::fmt::rfc2822::parse(value).ok()?.timestamp();
    let ms = at.as_millisecond() - now.as_millisecond();
    Some(Duration::from_millis(u64::try_from(ms).unwrap_or(0)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_read_in_seconds() {
        assert_eq!(seconds(ATTEMPT_TIMEOUT), "15 s");
        assert_eq!(seconds(Duration::from_millis(1500)), "1.5 s");
        assert_eq!(seconds(Duration::from_millis(300)), "0.3 s");
    }

    #[test]
    fn retry_after_in_seconds_or_as_a_date() {
        let now: Timestamp = "2015-10-21T07:28:00Z".parse().unwrap();
        assert_eq!(
            parse_retry_after("120", now),
            Some(Duration::from_secs(120))
        );
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:30:00 GMT", now),
            Some(Duration::from_secs(120))
        );
        assert_eq!(parse_retry_after("soon", now), None);
    }

    #[test]
    fn schedule_spans_a_day_then_gives_up() {
        let p = delivery_policy();
        let start = Timestamp::UNIX_EPOCH;
        let mut now = start;
        let mut attempts = 1;
        while let RetryDecision::RetryAt(at) = p.decide(attempts, start, now, None, 0.5) {
            assert!(at > now);
            now = at;
            attempts += 1;
        }
        assert_eq!(
            now.as_second(),
            24 * 3600,
            "the last attempt is at the window's end"
        );
        assert_eq!(attempts, 9);
    }
}
