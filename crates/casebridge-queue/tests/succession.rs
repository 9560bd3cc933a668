//! Succession: a worker that ends a job claims the job taking its place in the same transaction
//! and runs it next, unless all its slots are busy (then jobs already waiting go first). And the
//! slots `enqueue_many` gives, which succession and claims rely on.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use casebridge_domain::clock::SystemClock;
use casebridge_domain::jobs::{Job, JobStatus, NewJob};
use casebridge_domain::retry::{Backoff, RetryPolicy};
use casebridge_queue::{Handler, JobError, Registry, Worker, WorkerConfig};
use casebridge_store::jobs;
use casebridge_testkit::{TestBackend, TestDb};
use jiff::Timestamp;
use serde_json::json;
use tokio_util::sync::CancellationToken;

const Q: &str = "succession";

/// Records the `n` of each job in the order the runs end, and whether two ran at once.
#[derive(Clone, Default)]
struct Log {
    done: Arc<Mutex<Vec<String>>>,
    running: Arc<Mutex<HashSet<String>>>,
    overlapped: Arc<Mutex<bool>>,
}

#[async_trait]
impl Handler for Log {
    async fn run(&self, job: &Job) -> Result<(), JobError> {
        let n = job.payload["n"].as_str().unwrap().to_owned();
        let key = job.payload["key"].as_str().unwrap_or("").to_owned();
        if !key.is_empty() && !self.running.lock().unwrap().insert(key.clone()) {
            *self.overlapped.lock().unwrap() = true;
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
        self.running.lock().unwrap().remove(&key);
        self.done.lock().unwrap().push(n);
        Ok(())
    }
}

fn worker(db: &TestDb, log: &Log, concurrency: usize) -> Worker {
    let policy = RetryPolicy {
        backoff: Backoff::Schedule(vec![Duration::ZERO]),
        jitter: 0.0,
        max_attempts: 3,
        window: None,
    };
    Worker::new(
        db.store.clone(),
        Arc::new(SystemClock),
        Registry::new().register("log", log.clone(), policy),
        WorkerConfig {
            concurrency,
            lease: Duration::from_secs(60),
            poll_interval: Duration::from_millis(50),
            shutdown_grace: Duration::from_secs(5),
            ..WorkerConfig::new(Q)
        },
    )
}

async fn run_until_done(w: Worker, log: &Log, n: usize) {
    let stop = CancellationToken::new();
    let run = tokio::spawn(w.run(stop.clone()));
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while log.done.lock().unwrap().len() < n {
        assert!(
            tokio::time::Instant::now() < deadline,
            "ran {:?} of {n}",
            log.done.lock().unwrap()
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    stop.cancel();
    run.await.unwrap();
}

/// One key's backlog runs in order, one at a time, and each job after the first costs one
/// transaction (its predecessor's end claims it), not two (an end and a claim).
async fn a_freed_place_goes_to_its_worker_without_a_claim(backend: TestBackend) {
    let db = TestDb::new(backend).await;
    let now = Timestamp::now();
    let mut tx = db.store.begin().await.unwrap();
    for i in 0..30 {
        let job = NewJob::new(Q, "log", json!({"n": format!("c{i}"), "key": "c"}));
        jobs::enqueue(&mut tx, &job.concurrency("c", 1), now)
            .await
            .unwrap();
    }
    for i in 0..30 {
        let job = NewJob::new(Q, "log", json!({"n": format!("o{i}"), "key": "o"}));
        jobs::enqueue(&mut tx, &job.ordering_key("o"), now)
            .await
            .unwrap();
    }
    tx.commit().await.unwrap();
    let before = db.store.group_stats().units;
    let log = Log::default();
    run_until_done(worker(&db, &log, 4), &log, 60).await;

    let done = log.done.lock().unwrap().clone();
    for prefix in ["c", "o"] {
        let order: Vec<_> = done.iter().filter(|n| n.starts_with(prefix)).collect();
        let expected: Vec<_> = (0..30).map(|i| format!("{prefix}{i}")).collect();
        assert_eq!(
            order,
            expected.iter().collect::<Vec<_>>(),
            "{prefix}: order kept"
        );
    }
    assert!(
        !*log.overlapped.lock().unwrap(),
        "a key ran two jobs at once"
    );
    // 60 ends, and a claim for each key's first job (a few more if a claim came up empty-handed
    // in a race); without succession every job would also need a claim of its own (120).
    let units = db.store.group_stats().units - before;
    assert!(units <= 70, "{units} transactions for 60 jobs");
    let mut conn = db.store.conn().await.unwrap();
    assert_eq!(
        jobs::counts(&mut conn).await.unwrap(),
        Vec::<(String, String, i64)>::new(),
        "every job finished"
    );
}
casebridge_testkit::backend_test!(a_freed_place_goes_to_its_worker_without_a_claim);

/// With every slot of the worker busy, the job that takes an ended job's place is left to the
/// next claim, so a job that was already waiting for a worker runs before it.
async fn a_busy_worker_lets_waiting_jobs_go_first(backend: TestBackend) {
    let db = TestDb::new(backend).await;
    let now = Timestamp::now();
    let mut tx = db.store.begin().await.unwrap();
    for (n, keyed) in [("a1", true), ("u", false), ("a2", true)] {
        let job = NewJob::new(Q, "log", json!({"n": n}));
        let job = if keyed { job.concurrency("a", 1) } else { job };
        jobs::enqueue(&mut tx, &job, now).await.unwrap();
    }
    tx.commit().await.unwrap();
    let log = Log::default();
    run_until_done(worker(&db, &log, 1), &log, 3).await;
    assert_eq!(*log.done.lock().unwrap(), vec!["a1", "u", "a2"]);
}
casebridge_testkit::backend_test!(a_busy_worker_lets_waiting_jobs_go_first);

/// `enqueue_many` gives a key's free slots in the order given and blocks the rest, whether each
/// job has a key of its own in the batch (decided inside the insert on SQLite) or several share
/// one (decided before it); a claim then takes only jobs that hold a slot.
async fn enqueue_many_gives_free_slots_and_blocks_the_rest(backend: TestBackend) {
    let db = TestDb::new(backend).await;
    let now = Timestamp::now();
    let job = |n: &str, key: &str, limit| {
        NewJob::new(Q, "log", json!({"n": n})).concurrency(key.to_owned(), limit)
    };
    // Key `a` holds one of its two slots already; `b` is full; `c` is free.
    let mut tx = db.store.begin().await.unwrap();
    jobs::enqueue_many(&mut tx, &[job("a0", "a", 2), job("b0", "b", 1)], now)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    // One job per key: a1 takes a's last slot, b1 waits, c1 runs.
    let mut tx = db.store.begin().await.unwrap();
    let batch = [job("a1", "a", 2), job("b1", "b", 1), job("c1", "c", 1)];
    jobs::enqueue_many(&mut tx, &batch, now).await.unwrap();
    tx.commit().await.unwrap();
    // Two jobs of one key in a batch: d1 gets d's slot, d2 waits; c2 waits behind c1.
    let mut tx = db.store.begin().await.unwrap();
    let batch = [job("c2", "c", 1), job("d1", "d", 1), job("d2", "d", 1)];
    jobs::enqueue_many(&mut tx, &batch, now).await.unwrap();
    tx.commit().await.unwrap();

    let (claimed, got) = claim_all(&db, now).await;
    assert_eq!(got, ["a0", "a1", "b0", "c1", "d1"]);
    // The three that wait run as slots free up, each after the job whose slot it takes.
    for j in &claimed {
        assert!(jobs::complete(&db.store, j).await.unwrap());
    }
    let (_, got) = claim_all(&db, now).await;
    assert_eq!(got, ["b1", "c2", "d2"]);
}
casebridge_testkit::backend_test!(enqueue_many_gives_free_slots_and_blocks_the_rest);

/// Claims everything claimable: the jobs and their `n`s, sorted.
async fn claim_all(db: &TestDb, now: Timestamp) -> (Vec<Job>, Vec<String>) {
    let claimed = jobs::claim(&db.store, Q, 100, Duration::from_secs(60), now)
        .await
        .unwrap();
    let mut got: Vec<String> = claimed
        .iter()
        .map(|j| j.payload["n"].as_str().unwrap().to_owned())
        .collect();
    got.sort();
    (claimed, got)
}

/// `complete_in_after` (a delivery's attempt and its job's end in one round trip on SQLite):
/// the caller's statements apply, the freed slot goes to the oldest blocked job (claimed for the
/// caller under a take, else made claimable), and a lost lease ends nothing.
async fn completing_after_the_caller_s_statements_hands_the_slot_on(backend: TestBackend) {
    use sqlx::Arguments;
    let db = TestDb::new(backend).await;
    let now = Timestamp::now();
    let lease = Duration::from_secs(60);
    let mut tx = db.store.begin().await.unwrap();
    for n in ["j1", "j2", "j3"] {
        let job = NewJob::new(Q, "log", json!({"n": n})).concurrency("k", 1);
        jobs::enqueue(&mut tx, &job, now).await.unwrap();
    }
    tx.commit().await.unwrap();
    let j1 = jobs::claim(&db.store, Q, 10, lease, now).await.unwrap();
    assert_eq!(j1.len(), 1, "one slot");
    let j1 = &j1[0];
    // The caller's own statement: notes an error on the job itself (any write would do).
    let note = |text: &'static str| {
        let mut args = sqlx::any::AnyArguments::default();
        args.add(text).unwrap();
        args.add(j1.id.to_string()).unwrap();
        args
    };
    let sql = "UPDATE jobs SET last_error = $1 WHERE id = $2";

    // A lost lease: the caller's statement applies, nothing else changes.
    let mut stale = j1.clone();
    stale.lease_id = Some("not-the-lease".into());
    let mut tx = db.store.begin().await.unwrap();
    let take = Some(jobs::Take { lease, now });
    let ended = jobs::complete_in_after(&mut tx, &stale, take, sql, note("stale"))
        .await
        .unwrap();
    tx.commit().await.unwrap();
    assert!(!ended.held && ended.next.is_none());
    let mut conn = db.store.conn().await.unwrap();
    let row = jobs::get(&mut conn, j1.id).await.unwrap();
    assert_eq!(row.last_error.as_deref(), Some("stale"));
    assert_eq!(row.status, JobStatus::Running);
    drop(conn);

    // With a take: j1 is gone and j2 is the caller's, leased.
    let mut tx = db.store.begin().await.unwrap();
    let ended = jobs::complete_in_after(&mut tx, j1, take, sql, note("done"))
        .await
        .unwrap();
    tx.commit().await.unwrap();
    assert!(ended.held);
    let j2 = ended.next.expect("the blocked job took the slot");
    assert_eq!(j2.payload["n"], "j2");
    assert_eq!(j2.status, JobStatus::Running);
    assert_eq!(j2.attempts, 1);
    assert!(j2.lease_id.is_some());
    let mut conn = db.store.conn().await.unwrap();
    assert!(jobs::get(&mut conn, j1.id).await.is_err(), "j1 deleted");
    drop(conn);
    assert!(
        jobs::claim(&db.store, Q, 10, lease, now)
            .await
            .unwrap()
            .is_empty(),
        "the key's one slot is j2's"
    );

    // Without a take: j3 becomes claimable.
    let mut args = sqlx::any::AnyArguments::default();
    args.add(j2.id.to_string()).unwrap();
    let sql2 = "UPDATE jobs SET last_error = NULL WHERE id = $1";
    let mut tx = db.store.begin().await.unwrap();
    let ended = jobs::complete_in_after(&mut tx, &j2, None, sql2, args)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    assert!(ended.held && ended.next.is_none());
    let j3 = jobs::claim(&db.store, Q, 10, lease, now).await.unwrap();
    assert_eq!(j3.len(), 1);
    assert_eq!(j3[0].payload["n"], "j3");
}
casebridge_testkit::backend_test!(completing_after_the_caller_s_statements_hands_the_slot_on);
