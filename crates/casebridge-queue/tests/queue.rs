//! The durable queue on both backends: outbox semantics, leases, ordering, retries, dead letters.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use casebridge_domain::clock::{Clock, ManualClock, SystemClock};
use casebridge_domain::ids::JobId;
use casebridge_domain::jobs::{Job, JobStatus, NewJob};
use casebridge_domain::page::PageRequest;
use casebridge_domain::retry::{Backoff, RetryPolicy};
use casebridge_queue::{Handler, JobError, Registry, Worker, WorkerConfig};
use casebridge_store::{jobs, Store};
use casebridge_testkit::{TestBackend, TestDb};
use jiff::Timestamp;
use serde_json::json;
use tokio_util::sync::CancellationToken;

const Q: &str = "test";

async fn enqueue(store: &Store, job: NewJob, now: Timestamp) -> JobId {
    let mut tx = store.begin().await.unwrap();
    let id = jobs::enqueue(&mut tx, &job, now).await.unwrap();
    tx.commit().await.unwrap();
    id
}

fn config(concurrency: usize) -> WorkerConfig {
    WorkerConfig {
        concurrency,
        lease: Duration::from_secs(30),
        poll_interval: Duration::from_millis(20),
        shutdown_grace: Duration::from_secs(5),
        ..WorkerConfig::new(Q)
    }
}

fn no_retry_delay() -> RetryPolicy {
    RetryPolicy {
        backoff: Backoff::Schedule(vec![Duration::ZERO]),
        jitter: 0.0,
        max_attempts: 5,
        window: None,
    }
}

/// Records every run; optionally fails the first `fail_first` attempts of every job.
#[derive(Clone, Default)]
struct Recorder {
    runs: Arc<Mutex<Vec<JobId>>>,
    running: Arc<Mutex<HashSet<JobId>>>,
    overlaps: Arc<Mutex<Vec<JobId>>>,
    fail_first: u32,
    sleep: Duration,
}

#[async_trait]
impl Handler for Recorder {
    async fn run(&self, job: &Job) -> Result<(), JobError> {
        if !self.running.lock().unwrap().insert(job.id) {
            self.overlaps.lock().unwrap().push(job.id);
        }
        tokio::time::sleep(self.sleep).await;
        self.running.lock().unwrap().remove(&job.id);
        self.runs.lock().unwrap().push(job.id);
        if job.attempts <= self.fail_first {
            return Err(JobError::Retry {
                error: format!("failing attempt {}", job.attempts),
                retry_after: job.payload["retry_after_secs"]
                    .as_u64()
                    .map(Duration::from_secs),
            });
        }
        Ok(())
    }
}

fn worker(
    store: &Store,
    clock: Arc<dyn Clock>,
    handler: impl Handler,
    policy: RetryPolicy,
    concurrency: usize,
) -> Worker {
    Worker::new(
        store.clone(),
        clock,
        Registry::new().register("record", handler, policy),
        config(concurrency),
    )
}

async fn enqueue_rolls_back_with_its_transaction(backend: casebridge_testkit::TestBackend) {
    let db = TestDb::new(backend).await;
    let now = Timestamp::now();
    let mut tx = db.store.begin().await.unwrap();
    jobs::enqueue(&mut tx, &NewJob::new(Q, "record", json!({})), now)
        .await
        .unwrap();
    tx.rollback().await.unwrap();
    assert!(jobs::claim(&db.store, Q, 10, Duration::from_secs(30), now)
        .await
        .unwrap()
        .is_empty());

    let id = enqueue(&db.store, NewJob::new(Q, "record", json!({"n": 1})), now).await;
    let claimed = jobs::claim(&db.store, Q, 10, Duration::from_secs(30), now)
        .await
        .unwrap();
    assert_eq!(claimed.len(), 1);
    assert_eq!(claimed[0].id, id);
    assert_eq!(claimed[0].payload, json!({"n": 1}));
    assert_eq!(claimed[0].attempts, 1);
}
casebridge_testkit::backend_test!(enqueue_rolls_back_with_its_transaction);

async fn an_expired_lease_runs_the_job_again(backend: casebridge_testkit::TestBackend) {
    let db = TestDb::new(backend).await;
    let clock = ManualClock::new(Timestamp::now());
    let id = enqueue(&db.store, NewJob::new(Q, "record", json!({})), clock.now()).await;

    // A worker claims the job and "crashes": it never reports back.
    let crashed = jobs::claim(&db.store, Q, 10, Duration::from_secs(30), clock.now())
        .await
        .unwrap();
    assert_eq!(crashed.len(), 1);

    let rec = Recorder::default();
    let w = worker(
        &db.store,
        Arc::new(clock.clone()),
        rec.clone(),
        no_retry_delay(),
        4,
    );
    assert_eq!(
        w.drain().await.unwrap(),
        0,
        "leased job must not run while the lease holds"
    );

    clock.advance(Duration::from_secs(31));
    assert_eq!(w.drain().await.unwrap(), 1);
    assert_eq!(*rec.runs.lock().unwrap(), vec![id]);

    // The crashed worker coming back cannot overwrite the outcome.
    assert!(!jobs::complete(&db.store, &crashed[0]).await.unwrap());
    let mut conn = db.store.conn().await.unwrap();
    assert!(matches!(
        jobs::get(&mut conn, id).await,
        Err(casebridge_store::StoreError::NotFound)
    ));
}
casebridge_testkit::backend_test!(an_expired_lease_runs_the_job_again);

async fn retries_follow_the_policy_then_dead_letter(backend: casebridge_testkit::TestBackend) {
    let db = TestDb::new(backend).await;
    let start = Timestamp::now();
    let clock = ManualClock::new(start);
    let id = enqueue(&db.store, NewJob::new(Q, "record", json!({})), clock.now()).await;
    let policy = RetryPolicy {
        backoff: Backoff::Schedule(vec![Duration::from_secs(10), Duration::from_secs(20)]),
        jitter: 0.0,
        max_attempts: 3,
        window: None,
    };
    let rec = Recorder {
        fail_first: 10,
        ..Default::default()
    };
    let w = worker(&db.store, Arc::new(clock.clone()), rec.clone(), policy, 1);
    let mut conn = db.store.conn().await.unwrap();

    assert_eq!(w.drain().await.unwrap(), 1);
    let job = jobs::get(&mut conn, id).await.unwrap();
    assert_eq!(job.status, JobStatus::Pending);
    assert_eq!(job.run_at.as_millisecond(), start.as_millisecond() + 10_000);
    assert_eq!(job.last_error.as_deref(), Some("failing attempt 1"));

    clock.advance(Duration::from_secs(9));
    assert_eq!(w.drain().await.unwrap(), 0, "not before its time");
    clock.advance(Duration::from_secs(1));
    assert_eq!(w.drain().await.unwrap(), 1);
    let job = jobs::get(&mut conn, id).await.unwrap();
    assert_eq!(job.run_at.as_millisecond(), start.as_millisecond() + 30_000);

    clock.advance(Duration::from_secs(20));
    assert_eq!(w.drain().await.unwrap(), 1);
    let job = jobs::get(&mut conn, id).await.unwrap();
    assert_eq!(job.status, JobStatus::Dead);
    assert_eq!(job.attempts, 3);
    assert_eq!(rec.runs.lock().unwrap().len(), 3);

    // Visible in the dead-letter list, and can be put back in line.
    let dead = jobs::dead(&mut conn, Q, &PageRequest::default())
        .await
        .unwrap();
    assert_eq!(
        dead.items.iter().map(|j| j.id).collect::<Vec<_>>(),
        vec![id]
    );
    jobs::requeue_dead(&mut conn, id, clock.now())
        .await
        .unwrap();
    assert_eq!(
        jobs::get(&mut conn, id).await.unwrap().status,
        JobStatus::Pending
    );
}
casebridge_testkit::backend_test!(retries_follow_the_policy_then_dead_letter);

async fn retry_after_lengthens_the_delay(backend: casebridge_testkit::TestBackend) {
    let db = TestDb::new(backend).await;
    let start = Timestamp::now();
    let clock = ManualClock::new(start);
    let id = enqueue(
        &db.store,
        NewJob::new(Q, "record", json!({"retry_after_secs": 120})),
        start,
    )
    .await;
    let rec = Recorder {
        fail_first: 1,
        ..Default::default()
    };
    let w = worker(
        &db.store,
        Arc::new(clock.clone()),
        rec,
        RetryPolicy {
            jitter: 0.0,
            ..RetryPolicy::standard()
        },
        1,
    );
    w.drain().await.unwrap();
    let mut conn = db.store.conn().await.unwrap();
    let job = jobs::get(&mut conn, id).await.unwrap();
    assert_eq!(
        job.run_at.as_millisecond(),
        start.as_millisecond() + 120_000
    );
}
casebridge_testkit::backend_test!(retry_after_lengthens_the_delay);

async fn permanent_errors_and_unknown_kinds_dead_letter_at_once(
    backend: casebridge_testkit::TestBackend,
) {
    struct Refuse;
    #[async_trait]
    impl Handler for Refuse {
        async fn run(&self, _job: &Job) -> Result<(), JobError> {
            Err(JobError::Permanent("bad configuration".into()))
        }
    }
    let db = TestDb::new(backend).await;
    let now = Timestamp::now();
    let a = enqueue(&db.store, NewJob::new(Q, "refuse", json!({})), now).await;
    let b = enqueue(
        &db.store,
        NewJob::new(Q, "nobody-handles-this", json!({})),
        now,
    )
    .await;
    let w = Worker::new(
        db.store.clone(),
        Arc::new(SystemClock),
        Registry::new().register("refuse", Refuse, RetryPolicy::standard()),
        config(2),
    );
    w.drain().await.unwrap();
    let mut conn = db.store.conn().await.unwrap();
    let ja = jobs::get(&mut conn, a).await.unwrap();
    assert_eq!(
        (ja.status, ja.last_error.as_deref()),
        (JobStatus::Dead, Some("bad configuration"))
    );
    let jb = jobs::get(&mut conn, b).await.unwrap();
    assert_eq!(jb.status, JobStatus::Dead);
    assert!(jb.last_error.unwrap().contains("no handler"));
}
casebridge_testkit::backend_test!(permanent_errors_and_unknown_kinds_dead_letter_at_once);

async fn per_key_ordering_holds_under_concurrency(backend: casebridge_testkit::TestBackend) {
    #[derive(Clone, Default)]
    struct Ordered {
        seen: Arc<Mutex<HashMap<String, Vec<u64>>>>,
        busy: Arc<Mutex<HashSet<String>>>,
        violations: Arc<Mutex<Vec<String>>>,
    }
    #[async_trait]
    impl Handler for Ordered {
        async fn run(&self, job: &Job) -> Result<(), JobError> {
            let key = job.ordering_key.clone().unwrap();
            if !self.busy.lock().unwrap().insert(key.clone()) {
                self.violations
                    .lock()
                    .unwrap()
                    .push(format!("{key} ran twice at once"));
            }
            let n = job.payload["n"].as_u64().unwrap();
            // Fail some first attempts: a retried job must still hold back its successors.
            let fail = n % 7 == 3 && job.attempts == 1;
            tokio::time::sleep(Duration::from_millis(n % 4)).await;
            self.busy.lock().unwrap().remove(&key);
            if fail {
                return Err(JobError::retry("transient"));
            }
            self.seen.lock().unwrap().entry(key).or_default().push(n);
            Ok(())
        }
    }
    let db = TestDb::new(backend).await;
    let now = Timestamp::now();
    let mut tx = db.store.begin().await.unwrap();
    for n in 0..20u64 {
        for key in ["lead-a", "lead-b", "lead-c", "lead-d"] {
            jobs::enqueue(
                &mut tx,
                &NewJob::new(Q, "ordered", json!({"n": n})).ordering_key(key),
                now,
            )
            .await
            .unwrap();
        }
    }
    tx.commit().await.unwrap();
    let handler = Ordered::default();
    let w = Worker::new(
        db.store.clone(),
        Arc::new(SystemClock),
        Registry::new().register("ordered", handler.clone(), no_retry_delay()),
        config(8),
    );
    let stop = CancellationToken::new();
    let run = tokio::spawn(w.run(stop.clone()));
    wait_until(Duration::from_secs(60), || {
        handler
            .seen
            .lock()
            .unwrap()
            .values()
            .map(Vec::len)
            .sum::<usize>()
            == 80
    })
    .await;
    stop.cancel();
    run.await.unwrap();
    assert!(
        handler.violations.lock().unwrap().is_empty(),
        "{:?}",
        handler.violations.lock().unwrap()
    );
    for (key, ns) in handler.seen.lock().unwrap().iter() {
        assert_eq!(*ns, (0..20).collect::<Vec<_>>(), "order of {key}");
    }
}
casebridge_testkit::backend_test!(per_key_ordering_holds_under_concurrency);

async fn two_worker_pools_never_run_one_job_twice(backend: casebridge_testkit::TestBackend) {
    let db = TestDb::new(backend).await;
    let now = Timestamp::now();
    let mut ids = HashSet::new();
    let mut tx = db.store.begin().await.unwrap();
    for n in 0..150 {
        ids.insert(
            jobs::enqueue(&mut tx, &NewJob::new(Q, "record", json!({"n": n})), now)
                .await
                .unwrap(),
        );
    }
    tx.commit().await.unwrap();

    let rec = Recorder {
        sleep: Duration::from_millis(2),
        ..Default::default()
    };
    // Two pools on the same database, as two processes would have.
    let other = db.second_store().await;
    let w1 = worker(
        &db.store,
        Arc::new(SystemClock),
        rec.clone(),
        no_retry_delay(),
        6,
    );
    let w2 = worker(
        &other,
        Arc::new(SystemClock),
        rec.clone(),
        no_retry_delay(),
        6,
    );
    let stop = CancellationToken::new();
    let r1 = tokio::spawn(w1.run(stop.clone()));
    let r2 = tokio::spawn(w2.run(stop.clone()));
    wait_until(Duration::from_secs(60), || {
        rec.runs.lock().unwrap().len() >= 150
    })
    .await;
    // Give a duplicate, if there were one, a moment to show up.
    tokio::time::sleep(Duration::from_millis(200)).await;
    stop.cancel();
    r1.await.unwrap();
    r2.await.unwrap();

    let runs = rec.runs.lock().unwrap().clone();
    let mut counts: HashMap<JobId, usize> = HashMap::new();
    for id in &runs {
        *counts.entry(*id).or_default() += 1;
    }
    assert!(
        rec.overlaps.lock().unwrap().is_empty(),
        "a job ran on two workers at once"
    );
    assert_eq!(counts.len(), 150);
    assert!(counts.values().all(|&c| c == 1), "some job ran twice");
    assert_eq!(counts.keys().copied().collect::<HashSet<_>>(), ids);
}
casebridge_testkit::backend_test!(two_worker_pools_never_run_one_job_twice);

async fn concurrency_keys_bound_each_key_and_isolate_keys(
    backend: casebridge_testkit::TestBackend,
) {
    #[derive(Clone, Default)]
    struct PerKey {
        running: Arc<Mutex<HashMap<String, usize>>>,
        peak: Arc<Mutex<HashMap<String, usize>>>,
        done: Arc<Mutex<Vec<String>>>,
    }
    #[async_trait]
    impl Handler for PerKey {
        async fn run(&self, job: &Job) -> Result<(), JobError> {
            let key = job.payload["key"].as_str().unwrap().to_owned();
            {
                let mut r = self.running.lock().unwrap();
                let n = r.entry(key.clone()).or_default();
                *n += 1;
                let mut p = self.peak.lock().unwrap();
                let peak = p.entry(key.clone()).or_default();
                *peak = (*peak).max(*n);
            }
            let slow = key == "slow";
            tokio::time::sleep(Duration::from_millis(if slow { 400 } else { 5 })).await;
            *self.running.lock().unwrap().get_mut(&key).unwrap() -= 1;
            self.done.lock().unwrap().push(key);
            Ok(())
        }
    }
    let db = TestDb::new(backend).await;
    let now = Timestamp::now();
    let mut tx = db.store.begin().await.unwrap();
    // The slow key's jobs are enqueued first, so they are at the head of the queue.
    for _ in 0..12 {
        jobs::enqueue(
            &mut tx,
            &NewJob::new(Q, "k", json!({"key": "slow"})).concurrency("slow", 2),
            now,
        )
        .await
        .unwrap();
    }
    for _ in 0..10 {
        jobs::enqueue(
            &mut tx,
            &NewJob::new(Q, "k", json!({"key": "fast"})).concurrency("fast", 2),
            now,
        )
        .await
        .unwrap();
    }
    tx.commit().await.unwrap();
    let handler = PerKey::default();
    let w = Worker::new(
        db.store.clone(),
        Arc::new(SystemClock),
        Registry::new().register("k", handler.clone(), no_retry_delay()),
        config(8),
    );
    let stop = CancellationToken::new();
    let run = tokio::spawn(w.run(stop.clone()));
    wait_until(Duration::from_secs(60), || {
        handler.done.lock().unwrap().len() == 22
    })
    .await;
    stop.cancel();
    run.await.unwrap();
    let peak = handler.peak.lock().unwrap().clone();
    assert_eq!(peak.get("slow"), Some(&2), "{peak:?}");
    assert!(peak["fast"] <= 2, "{peak:?}");
    // The slow key never held more than its two slots, so every fast job finished while
    // slow ones were still waiting.
    let done = handler.done.lock().unwrap().clone();
    let last_fast = done.iter().rposition(|k| k == "fast").unwrap();
    let slow_before = done[..last_fast].iter().filter(|k| *k == "slow").count();
    assert!(
        slow_before <= 4,
        "fast jobs waited behind slow ones: {done:?}"
    );
}
casebridge_testkit::backend_test!(concurrency_keys_bound_each_key_and_isolate_keys);

async fn two_pools_keep_limits_and_order_over_a_large_backlog(
    backend: casebridge_testkit::TestBackend,
) {
    // 10,000 jobs in one transaction: 40 leads x 150 ordered operations over 2 connections
    // (limit 4 each, as Law Ruler operations are) and 4,000 deliveries to 2 endpoints (limit
    // 4 each). Two pools, as two processes would have, drain them; some first attempts fail
    // and retry at once. Limits and order must hold across both pools, every job must succeed
    // exactly once, and the claims must not slow down with the backlog (it must drain in time).
    #[derive(Clone, Default)]
    struct Check {
        running: Arc<Mutex<HashMap<String, usize>>>,
        peak: Arc<Mutex<HashMap<String, usize>>>,
        busy_leads: Arc<Mutex<HashSet<String>>>,
        seen: Arc<Mutex<HashMap<String, Vec<u64>>>>,
        succeeded: Arc<Mutex<HashMap<JobId, usize>>>,
        violations: Arc<Mutex<Vec<String>>>,
    }
    #[async_trait]
    impl Handler for Check {
        async fn run(&self, job: &Job) -> Result<(), JobError> {
            let key = job.payload["ck"].as_str().unwrap().to_owned();
            let n = job.payload["n"].as_u64().unwrap();
            {
                let mut r = self.running.lock().unwrap();
                let now = r.entry(key.clone()).or_default();
                *now += 1;
                if *now > 4 {
                    self.violations
                        .lock()
                        .unwrap()
                        .push(format!("{key}: {now} at once"));
                }
                let mut p = self.peak.lock().unwrap();
                let peak = p.entry(key.clone()).or_default();
                *peak = (*peak).max(*now);
            }
            if let Some(lead) = &job.ordering_key {
                if !self.busy_leads.lock().unwrap().insert(lead.clone()) {
                    self.violations
                        .lock()
                        .unwrap()
                        .push(format!("{lead} ran twice at once"));
                }
            }
            tokio::time::sleep(Duration::from_millis(n % 3)).await;
            if let Some(lead) = &job.ordering_key {
                self.busy_leads.lock().unwrap().remove(lead);
            }
            *self.running.lock().unwrap().get_mut(&key).unwrap() -= 1;
            if n % 50 == 7 && job.attempts == 1 {
                return Err(JobError::retry("transient"));
            }
            if let Some(lead) = &job.ordering_key {
                self.seen
                    .lock()
                    .unwrap()
                    .entry(lead.clone())
                    .or_default()
                    .push(n);
            }
            *self.succeeded.lock().unwrap().entry(job.id).or_default() += 1;
            Ok(())
        }
    }
    let db = TestDb::new(backend).await;
    let now = Timestamp::now();
    let mut tx = db.store.begin().await.unwrap();
    for n in 0..150u64 {
        for lead in 0..40 {
            let ck = format!("connection-{}", lead % 2);
            let job = NewJob::new(Q, "check", json!({"n": n, "ck": ck}))
                .ordering_key(format!("lead-{lead}"))
                .concurrency(ck, 4);
            jobs::enqueue(&mut tx, &job, now).await.unwrap();
        }
    }
    for n in 0..4000u64 {
        let ck = format!("endpoint-{}", n % 2);
        jobs::enqueue(
            &mut tx,
            &NewJob::new(Q, "check", json!({"n": n, "ck": ck})).concurrency(ck, 4),
            now,
        )
        .await
        .unwrap();
    }
    tx.commit().await.unwrap();

    let check = Check::default();
    let other = db.second_store().await;
    let pool = |store: &Store| {
        Worker::new(
            store.clone(),
            Arc::new(SystemClock),
            Registry::new().register("check", check.clone(), no_retry_delay()),
            config(8),
        )
    };
    let stop = CancellationToken::new();
    let r1 = tokio::spawn(pool(&db.store).run(stop.clone()));
    let r2 = tokio::spawn(pool(&other).run(stop.clone()));
    wait_until(Duration::from_secs(300), || {
        check.succeeded.lock().unwrap().len() == 10_000
    })
    .await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    stop.cancel();
    r1.await.unwrap();
    r2.await.unwrap();

    assert!(
        check.violations.lock().unwrap().is_empty(),
        "{:?}",
        &check.violations.lock().unwrap()[..]
    );
    let peak = check.peak.lock().unwrap().clone();
    assert_eq!(peak.len(), 4, "{peak:?}");
    assert!(peak.values().all(|&p| p <= 4), "{peak:?}");
    for (lead, ns) in check.seen.lock().unwrap().iter() {
        assert_eq!(*ns, (0..150).collect::<Vec<_>>(), "order of {lead}");
    }
    let succeeded = check.succeeded.lock().unwrap().clone();
    assert!(succeeded.values().all(|&c| c == 1), "a job succeeded twice");
    let mut conn = db.store.conn().await.unwrap();
    assert!(
        jobs::counts(&mut conn).await.unwrap().is_empty(),
        "jobs left"
    );
}
casebridge_testkit::backend_test!(two_pools_keep_limits_and_order_over_a_large_backlog);

async fn an_enqueue_wakes_an_idle_worker_at_once(backend: casebridge_testkit::TestBackend) {
    let db = TestDb::new(backend).await;
    let rec = Recorder::default();
    let mut cfg = config(2);
    // Far longer than the test may wait: only a wake-up can start the jobs in time.
    cfg.poll_interval = Duration::from_secs(60);
    let w = Worker::new(
        db.store.clone(),
        Arc::new(SystemClock),
        Registry::new().register("record", rec.clone(), no_retry_delay()),
        cfg,
    );
    let stop = CancellationToken::new();
    let run = tokio::spawn(w.run(stop.clone()));
    // Let the worker find nothing and go idle (and, on PostgreSQL, start listening).
    tokio::time::sleep(Duration::from_millis(500)).await;

    // Enqueued by this process: woken when the transaction commits.
    enqueue(
        &db.store,
        NewJob::new(Q, "record", json!({})),
        Timestamp::now(),
    )
    .await;
    wait_until(Duration::from_secs(5), || {
        rec.runs.lock().unwrap().len() == 1
    })
    .await;

    // Rolled back: no job, and nothing to run.
    let mut tx = db.store.begin().await.unwrap();
    jobs::enqueue(
        &mut tx,
        &NewJob::new(Q, "record", json!({})),
        Timestamp::now(),
    )
    .await
    .unwrap();
    tx.rollback().await.unwrap();

    if backend == TestBackend::Postgres {
        // Enqueued by another process (another pool): woken by its NOTIFY.
        tokio::time::sleep(Duration::from_millis(200)).await;
        let other = db.second_store().await;
        enqueue(
            &other,
            NewJob::new(Q, "record", json!({})),
            Timestamp::now(),
        )
        .await;
        wait_until(Duration::from_secs(5), || {
            rec.runs.lock().unwrap().len() == 2
        })
        .await;
    }
    stop.cancel();
    run.await.unwrap();
    let expected = if backend == TestBackend::Postgres {
        2
    } else {
        1
    };
    assert_eq!(rec.runs.lock().unwrap().len(), expected);
}
casebridge_testkit::backend_test!(an_enqueue_wakes_an_idle_worker_at_once);

async fn shutdown_releases_unfinished_jobs(backend: casebridge_testkit::TestBackend) {
    let db = TestDb::new(backend).await;
    let id = enqueue(
        &db.store,
        NewJob::new(Q, "record", json!({})),
        Timestamp::now(),
    )
    .await;
    let rec = Recorder {
        sleep: Duration::from_secs(1),
        ..Default::default()
    };
    let mut cfg = config(1);
    cfg.shutdown_grace = Duration::from_millis(100);
    let w = Worker::new(
        db.store.clone(),
        Arc::new(SystemClock),
        Registry::new().register("record", rec.clone(), no_retry_delay()),
        cfg,
    );
    let stop = CancellationToken::new();
    let run = tokio::spawn(w.run(stop.clone()));
    wait_until(Duration::from_secs(10), || {
        !rec.running.lock().unwrap().is_empty()
    })
    .await;
    stop.cancel();
    run.await.unwrap();
    let mut conn = db.store.conn().await.unwrap();
    let job = jobs::get(&mut conn, id).await.unwrap();
    assert_eq!(
        job.status,
        JobStatus::Pending,
        "given back, not left leased"
    );
    assert_eq!(job.attempts, 0, "an interrupted attempt is not counted");
    // The handler was stopped, not left running beside whoever claims the job next.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(
        rec.runs.lock().unwrap().is_empty(),
        "the released job's handler kept running"
    );
}
casebridge_testkit::backend_test!(shutdown_releases_unfinished_jobs);

async fn wait_until(limit: Duration, mut done: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + limit;
    while !done() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "condition not met in {limit:?}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// A handler that says when it started, when its run was dropped unfinished (stopped), and when
/// it finished; it waits for `release` (or `hold`, whichever ends first) and then answers with
/// `answer`.
#[derive(Clone)]
struct Held {
    started: Arc<Mutex<Vec<(JobId, u32)>>>,
    stopped: Arc<Mutex<Vec<JobId>>>,
    finished: Arc<Mutex<Vec<JobId>>>,
    release: Arc<tokio::sync::Notify>,
    hold: Duration,
    answer: fn() -> Result<(), JobError>,
}

impl Held {
    fn new(hold: Duration, answer: fn() -> Result<(), JobError>) -> Self {
        Self {
            started: Arc::default(),
            stopped: Arc::default(),
            finished: Arc::default(),
            release: Arc::default(),
            hold,
            answer,
        }
    }
}

/// Records the job as stopped if the handler's future is dropped before it finished.
struct StopGuard(Option<(JobId, Arc<Mutex<Vec<JobId>>>)>);

impl Drop for StopGuard {
    fn drop(&mut self) {
        if let Some((id, stopped)) = self.0.take() {
            stopped.lock().unwrap().push(id);
        }
    }
}

#[async_trait]
impl Handler for Held {
    async fn run(&self, job: &Job) -> Result<(), JobError> {
        self.started.lock().unwrap().push((job.id, job.attempts));
        let mut guard = StopGuard(Some((job.id, self.stopped.clone())));
        tokio::select! {
            _ = tokio::time::sleep(self.hold) => {}
            _ = self.release.notified() => {}
        }
        guard.0 = None;
        self.finished.lock().unwrap().push(job.id);
        (self.answer)()
    }
}

fn held_worker(store: &Store, clock: Arc<dyn Clock>, handler: Held, lease: Duration) -> Worker {
    let cfg = WorkerConfig { lease, ..config(2) };
    Worker::new(
        store.clone(),
        clock,
        Registry::new().register("held", handler, no_retry_delay()),
        cfg,
    )
}

async fn a_long_job_keeps_its_lease_and_is_not_taken_over(
    backend: casebridge_testkit::TestBackend,
) {
    // The job runs over three times as long as its lease; a second worker pool (another process)
    // serves the queue all along and must never take the job over.
    let db = TestDb::new(backend).await;
    // Renewed every 200 ms, so a stall of up to 400 ms on a loaded machine is no takeover.
    let lease = Duration::from_millis(600);
    let id = enqueue(
        &db.store,
        NewJob::new(Q, "held", json!({})),
        Timestamp::now(),
    )
    .await;
    let handler = Held::new(Duration::from_millis(2000), || Ok(()));
    let second = db.second_store().await;
    let stop = CancellationToken::new();
    let a = tokio::spawn(
        held_worker(&db.store, Arc::new(SystemClock), handler.clone(), lease).run(stop.clone()),
    );
    let b = tokio::spawn(
        held_worker(&second, Arc::new(SystemClock), handler.clone(), lease).run(stop.clone()),
    );

    // While it runs, the lease is renewed past the first claim's end.
    wait_until(Duration::from_secs(10), || {
        !handler.started.lock().unwrap().is_empty()
    })
    .await;
    let claimed_until = {
        let mut conn = db.store.conn().await.unwrap();
        jobs::get(&mut conn, id)
            .await
            .unwrap()
            .locked_until
            .unwrap()
    };
    let store = db.store.clone();
    casebridge_testkit::wait_until(
        Duration::from_secs(10),
        "the lease is renewed",
        async || {
            let mut conn = store.conn().await.unwrap();
            match jobs::get(&mut conn, id).await {
                Ok(job) => job.locked_until.is_some_and(|t| t > claimed_until),
                Err(_) => false,
            }
        },
    )
    .await;

    wait_until(Duration::from_secs(10), || {
        !handler.finished.lock().unwrap().is_empty()
    })
    .await;
    casebridge_testkit::wait_until(Duration::from_secs(10), "the job is done", async || {
        let mut conn = store.conn().await.unwrap();
        matches!(
            jobs::get(&mut conn, id).await,
            Err(casebridge_store::StoreError::NotFound)
        )
    })
    .await;
    stop.cancel();
    a.await.unwrap();
    b.await.unwrap();
    assert_eq!(
        *handler.started.lock().unwrap(),
        vec![(id, 1)],
        "one attempt, never taken over"
    );
    assert!(handler.stopped.lock().unwrap().is_empty());
}
casebridge_testkit::backend_test!(a_long_job_keeps_its_lease_and_is_not_taken_over);

async fn a_worker_that_lost_its_lease_stops_the_run(backend: casebridge_testkit::TestBackend) {
    // The worker's clock stands still, so its renewals keep the lease at the claim's end; a
    // second owner claims the job once that end has passed. The first run's next renewal
    // finds the lease gone: the run is stopped and records nothing.
    let db = TestDb::new(backend).await;
    let clock = ManualClock::new(Timestamp::now());
    let id = enqueue(&db.store, NewJob::new(Q, "held", json!({})), clock.now()).await;
    let handler = Held::new(Duration::from_secs(60), || Ok(()));
    let w = held_worker(
        &db.store,
        Arc::new(clock.clone()),
        handler.clone(),
        Duration::from_millis(300),
    );
    let run = tokio::spawn(async move { w.run_once().await });
    wait_until(Duration::from_secs(10), || {
        !handler.started.lock().unwrap().is_empty()
    })
    .await;

    let later = clock.now().checked_add(Duration::from_secs(1)).unwrap();
    let taken = jobs::claim(&db.store, Q, 1, Duration::from_secs(30), later)
        .await
        .unwrap();
    assert_eq!(taken.len(), 1, "the lease had ended");
    assert_eq!(taken[0].attempts, 2);

    let ran = tokio::time::timeout(Duration::from_secs(10), run)
        .await
        .expect("the run stops once its lease is lost")
        .unwrap()
        .unwrap();
    assert_eq!(ran, 1);
    wait_until(Duration::from_secs(10), || {
        !handler.stopped.lock().unwrap().is_empty()
    })
    .await;
    assert!(
        handler.finished.lock().unwrap().is_empty(),
        "the stale run went on"
    );

    // The new owner's claim stands, untouched, and it completes the job.
    let mut conn = db.store.conn().await.unwrap();
    let job = jobs::get(&mut conn, id).await.unwrap();
    assert_eq!((job.status, job.attempts), (JobStatus::Running, 2));
    assert_eq!(job.lease_id, taken[0].lease_id);
    assert_eq!(job.last_error, None);
    assert!(jobs::complete(&db.store, &taken[0]).await.unwrap());
}
casebridge_testkit::backend_test!(a_worker_that_lost_its_lease_stops_the_run);

async fn a_stale_run_that_finishes_records_nothing_over_the_new_owner(
    backend: casebridge_testkit::TestBackend,
) {
    // The lease is long, so no renewal notices the takeover before the handler answers: its
    // failure must not be written over the new owner's claim.
    let db = TestDb::new(backend).await;
    let clock = ManualClock::new(Timestamp::now());
    let id = enqueue(&db.store, NewJob::new(Q, "held", json!({})), clock.now()).await;
    let handler = Held::new(Duration::from_secs(60), || {
        Err(JobError::retry("stale failure"))
    });
    let w = held_worker(
        &db.store,
        Arc::new(clock.clone()),
        handler.clone(),
        Duration::from_secs(30),
    );
    let run = tokio::spawn(async move { w.run_once().await });
    wait_until(Duration::from_secs(10), || {
        !handler.started.lock().unwrap().is_empty()
    })
    .await;

    let later = clock.now().checked_add(Duration::from_secs(31)).unwrap();
    let taken = jobs::claim(&db.store, Q, 1, Duration::from_secs(30), later)
        .await
        .unwrap();
    assert_eq!(taken.len(), 1);
    handler.release.notify_one();
    assert_eq!(
        tokio::time::timeout(Duration::from_secs(10), run)
            .await
            .unwrap()
            .unwrap()
            .unwrap(),
        1
    );
    assert_eq!(handler.finished.lock().unwrap().len(), 1);

    let mut conn = db.store.conn().await.unwrap();
    let job = jobs::get(&mut conn, id).await.unwrap();
    assert_eq!(
        (job.status, job.attempts),
        (JobStatus::Running, 2),
        "not put back for a retry"
    );
    assert_eq!(job.lease_id, taken[0].lease_id);
    assert_eq!(
        job.last_error, None,
        "the stale run's error is not recorded"
    );
}
casebridge_testkit::backend_test!(a_stale_run_that_finishes_records_nothing_over_the_new_owner);

async fn a_panicking_handler_is_a_failed_attempt_that_is_retried(
    backend: casebridge_testkit::TestBackend,
) {
    #[derive(Clone, Default)]
    struct Panics(Arc<Mutex<Vec<u32>>>);
    #[async_trait]
    impl Handler for Panics {
        async fn run(&self, job: &Job) -> Result<(), JobError> {
            self.0.lock().unwrap().push(job.attempts);
            if job.attempts == 1 {
                panic!("handler bug");
            }
            Ok(())
        }
    }
    let db = TestDb::new(backend).await;
    let start = Timestamp::now();
    let clock = ManualClock::new(start);
    let id = enqueue(&db.store, NewJob::new(Q, "panics", json!({})), start).await;
    let policy = RetryPolicy {
        backoff: Backoff::Schedule(vec![Duration::from_secs(10)]),
        jitter: 0.0,
        max_attempts: 3,
        window: None,
    };
    let handler = Panics::default();
    let w = Worker::new(
        db.store.clone(),
        Arc::new(clock.clone()),
        Registry::new().register("panics", handler.clone(), policy),
        config(1),
    );

    assert_eq!(w.drain().await.unwrap(), 1);
    let mut conn = db.store.conn().await.unwrap();
    let job = jobs::get(&mut conn, id).await.unwrap();
    assert_eq!(
        (job.status, job.attempts),
        (JobStatus::Pending, 1),
        "the attempt is counted"
    );
    assert_eq!(job.last_error.as_deref(), Some("the job handler panicked"));
    assert_eq!(
        job.run_at.as_millisecond(),
        start.as_millisecond() + 10_000,
        "retried by the policy"
    );

    // The same worker goes on: the retry runs when due and succeeds.
    assert_eq!(w.drain().await.unwrap(), 0);
    clock.advance(Duration::from_secs(10));
    assert_eq!(w.drain().await.unwrap(), 1);
    assert!(matches!(
        jobs::get(&mut conn, id).await,
        Err(casebridge_store::StoreError::NotFound)
    ));
    assert_eq!(*handler.0.lock().unwrap(), vec![1, 2]);
}
casebridge_testkit::backend_test!(a_panicking_handler_is_a_failed_attempt_that_is_retried);

async fn one_key_runs_its_jobs_in_commit_order_under_racing_enqueuers(
    backend: casebridge_testkit::TestBackend,
) {
    // Each enqueuer adds a job of one ordering key, then holds its transaction open for a
    // while before committing, so without the key's lock (PostgreSQL: an advisory lock held
    // until commit) a job enqueued first could commit last, and two could both head the key.
    let db = TestDb::new(backend).await;
    let committed: Arc<Mutex<Vec<JobId>>> = Arc::default();
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..10u64 {
        let (store, committed) = (db.store.clone(), committed.clone());
        tasks.spawn(async move {
            let mut tx = store.begin().await.unwrap();
            let job = NewJob::new(Q, "record", json!({"i": i})).ordering_key("lead-1");
            let id = jobs::enqueue(&mut tx, &job, Timestamp::now())
                .await
                .unwrap();
            tokio::time::sleep(Duration::from_millis(20 + (i * 7 % 5) * 10)).await;
            // Noted just before the commit: with the key's lock held until then, the next
            // enqueuer's `enqueue` returns only after this commit, so this is commit order.
            committed.lock().unwrap().push(id);
            tx.commit().await.unwrap();
        });
    }
    while let Some(r) = tasks.join_next().await {
        r.unwrap();
    }
    let committed = committed.lock().unwrap().clone();
    // Only the first to commit heads the key: a claim of all that is due gets it alone.
    let heads = jobs::claim(&db.store, Q, 10, Duration::from_secs(30), Timestamp::now())
        .await
        .unwrap();
    assert_eq!(
        heads.iter().map(|j| j.id).collect::<Vec<_>>(),
        vec![committed[0]],
        "one job heads the key, and it is the first committed"
    );
    assert!(jobs::release(&db.store, &heads[0], Timestamp::now())
        .await
        .unwrap());

    let rec = Recorder::default();
    let w = worker(
        &db.store,
        Arc::new(SystemClock),
        rec.clone(),
        no_retry_delay(),
        8,
    );
    let stop = CancellationToken::new();
    let run = tokio::spawn(w.run(stop.clone()));
    wait_until(Duration::from_secs(30), || {
        rec.runs.lock().unwrap().len() == committed.len()
    })
    .await;
    stop.cancel();
    run.await.unwrap();
    assert_eq!(
        *rec.runs.lock().unwrap(),
        committed,
        "run order is commit order"
    );
    assert!(rec.overlaps.lock().unwrap().is_empty());
}
casebridge_testkit::backend_test!(one_key_runs_its_jobs_in_commit_order_under_racing_enqueuers);

async fn jobs_brought_forward_run_in_every_waiting_state_and_keep_their_order(
    backend: casebridge_testkit::TestBackend,
) {
    // What "run now" does to batched CRM jobs: `jobs::bring_forward` changes only `run_at`. A
    // job `waiting` behind its ordering key's retrying head, and jobs `scheduled` for a
    // concurrency slot (limit 1, so one of them waits `blocked`), must all become claimable
    // and run in order; the head's retry keeps its backoff.
    #[derive(Clone, Default)]
    struct Log(Arc<Mutex<Vec<String>>>);
    #[async_trait]
    impl Handler for Log {
        async fn run(&self, job: &Job) -> Result<(), JobError> {
            let name = job.payload["name"].as_str().unwrap().to_owned();
            self.0.lock().unwrap().push(name.clone());
            if name == "a" && job.attempts == 1 {
                return Err(JobError::Retry {
                    error: "first attempt fails".into(),
                    retry_after: None,
                });
            }
            Ok(())
        }
    }
    let db = TestDb::new(backend).await;
    let t0: Timestamp = "2026-03-02T10:00:00Z".parse().unwrap();
    let clock = ManualClock::new(t0);
    let company = casebridge_domain::ids::CompanyId::new();
    let later = t0 + jiff::SignedDuration::from_hours(1);
    let job = |name: &str, key: &str, at: Timestamp| {
        NewJob::new(Q, "k", json!({ "name": name }))
            .company(company)
            .ordering_key(key)
            .concurrency("ck", 1)
            .run_at(at)
    };
    enqueue(&db.store, job("a", "k1", t0), t0).await;
    enqueue(&db.store, job("b", "k1", later), t0).await; // waiting behind a
    enqueue(&db.store, job("c", "k2", later), t0).await; // scheduled
    enqueue(&db.store, job("d", "k3", later), t0).await; // scheduled
    let other = NewJob::new(Q, "k", json!({"name": "other company"}))
        .company(casebridge_domain::ids::CompanyId::new())
        .concurrency("ck", 1)
        .run_at(later);
    enqueue(&db.store, other, t0).await;
    let log = Log::default();
    let policy = RetryPolicy {
        backoff: Backoff::Schedule(vec![Duration::from_secs(60)]),
        jitter: 0.0,
        max_attempts: 5,
        window: None,
    };
    let w = Worker::new(
        db.store.clone(),
        Arc::new(clock.clone()),
        Registry::new().register("k", log.clone(), policy),
        config(4),
    );
    w.drain().await.unwrap();
    assert_eq!(*log.0.lock().unwrap(), ["a"], "only a was due; it failed");

    let mut tx = db.store.begin().await.unwrap();
    let moved = jobs::bring_forward(&mut tx, company, Q, "k", "ck", t0, t0)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    assert_eq!(
        moved, 3,
        "b, c and d; not a's retry, not another company's job"
    );

    w.drain().await.unwrap();
    assert_eq!(
        *log.0.lock().unwrap(),
        ["a", "c", "d"],
        "c and d ran one at a time (one slot); b still waits for a, whose retry kept its time"
    );
    clock.advance(Duration::from_secs(60));
    w.drain().await.unwrap();
    assert_eq!(*log.0.lock().unwrap(), ["a", "c", "d", "a", "b"]);
    clock.advance(Duration::from_secs(3600));
    w.drain().await.unwrap();
    assert_eq!(
        log.0.lock().unwrap().last().map(String::as_str),
        Some("other company"),
        "the other company's job ran at its own time"
    );
}
casebridge_testkit::backend_test!(
    jobs_brought_forward_run_in_every_waiting_state_and_keep_their_order
);
