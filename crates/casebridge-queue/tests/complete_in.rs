//! A handler that ends its job in its own transaction (`Handler::completes_itself`,
//! `jobs::complete_in`), on both backends: the work and the job's end commit or roll back
//! together, the ordering key moves on, and a lost lease changes nothing.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use casebridge_domain::clock::{Clock, ManualClock};
use casebridge_domain::jobs::{Job, NewJob};
use casebridge_domain::retry::{Backoff, RetryPolicy};
use casebridge_queue::{Handler, JobError, Registry, Worker, WorkerConfig};
use casebridge_store::{jobs, Store};
use casebridge_testkit::TestDb;
use jiff::Timestamp;
use serde_json::json;

const Q: &str = "self";
/// Where the handlers' work goes: one job per unit of work, never run.
const WORK: &str = "work";

/// Records its work (a job in the `work` queue) and ends its own job in one transaction; with
/// `fail_first`, its first attempt does both and then fails, so both roll back.
struct SelfCompleting(Store);

#[async_trait]
impl Handler for SelfCompleting {
    async fn run(&self, job: &Job) -> Result<(), JobError> {
        let mut tx = self
            .0
            .begin()
            .await
            .map_err(|e| JobError::retry(e.to_string()))?;
        let work = NewJob::new(WORK, "work", json!({"of": job.payload["n"]}));
        jobs::enqueue(&mut tx, &work, Timestamp::now())
            .await
            .unwrap();
        assert!(
            jobs::complete_in(&mut tx, job).await.unwrap(),
            "the lease is held"
        );
        if job.payload["fail_first"] == true && job.attempts == 1 {
            drop(tx); // rolled back: the work and the completion both
            return Err(JobError::retry("failed after the work"));
        }
        tx.commit().await.unwrap();
        Ok(())
    }

    fn completes_itself(&self) -> bool {
        true
    }
}

async fn work_done(store: &Store) -> Vec<u64> {
    let mut out = Vec::new();
    while let Some(j) = jobs::claim(store, WORK, 1, Duration::from_secs(60), Timestamp::now())
        .await
        .unwrap()
        .pop()
    {
        out.push(j.payload["of"].as_u64().unwrap());
        jobs::complete(store, &j).await.unwrap();
    }
    out.sort_unstable();
    out
}

async fn the_work_and_the_job_s_end_commit_together(backend: casebridge_testkit::TestBackend) {
    let db = TestDb::new(backend).await;
    let now = Timestamp::now();
    let mut tx = db.store.begin().await.unwrap();
    for n in 0..3u64 {
        // One ordering key: each job waits for the one before it to end.
        let job = NewJob::new(Q, "self", json!({"n": n, "fail_first": n == 1})).ordering_key("k");
        jobs::enqueue(&mut tx, &job, now).await.unwrap();
    }
    tx.commit().await.unwrap();
    let policy = RetryPolicy {
        backoff: Backoff::Schedule(vec![Duration::ZERO]),
        jitter: 0.0,
        max_attempts: 3,
        window: None,
    };
    let w = Worker::new(
        db.store.clone(),
        Arc::new(casebridge_domain::clock::SystemClock),
        Registry::new().register("self", SelfCompleting(db.store.clone()), policy),
        WorkerConfig {
            concurrency: 2,
            ..WorkerConfig::new(Q)
        },
    );
    // Job 1's first attempt is rolled back and retried; the key moved on after each end.
    assert_eq!(w.drain().await.unwrap(), 4);
    let mut conn = db.store.conn().await.unwrap();
    let left: Vec<_> = jobs::counts(&mut conn)
        .await
        .unwrap()
        .into_iter()
        .filter(|(q, _, _)| q == Q)
        .collect();
    assert!(left.is_empty(), "{left:?}");
    drop(conn);
    assert_eq!(
        work_done(&db.store).await,
        [0, 1, 2],
        "each job's work once, the failed attempt's none"
    );
}
casebridge_testkit::backend_test!(the_work_and_the_job_s_end_commit_together);

async fn a_lost_lease_ends_nothing(backend: casebridge_testkit::TestBackend) {
    let db = TestDb::new(backend).await;
    let clock = ManualClock::new(Timestamp::now());
    let mut tx = db.store.begin().await.unwrap();
    let id = jobs::enqueue(
        &mut tx,
        &NewJob::new(Q, "self", json!({"n": 7})),
        clock.now(),
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();
    let first = jobs::claim(&db.store, Q, 1, Duration::from_secs(30), clock.now())
        .await
        .unwrap();
    clock.advance(Duration::from_secs(31));
    let second = jobs::claim(&db.store, Q, 1, Duration::from_secs(30), clock.now())
        .await
        .unwrap();
    assert_eq!(
        (first[0].id, second[0].id),
        (id, id),
        "taken over after the lease ran out"
    );

    let mut tx = db.store.begin().await.unwrap();
    assert!(!jobs::complete_in(&mut tx, &first[0]).await.unwrap());
    tx.commit().await.unwrap();
    let mut conn = db.store.conn().await.unwrap();
    assert!(
        jobs::get(&mut conn, id).await.is_ok(),
        "the new owner's job is still there"
    );
    drop(conn);
    let mut tx = db.store.begin().await.unwrap();
    assert!(jobs::complete_in(&mut tx, &second[0]).await.unwrap());
    tx.commit().await.unwrap();
    let mut conn = db.store.conn().await.unwrap();
    assert!(
        jobs::get(&mut conn, id).await.is_err(),
        "ended by its owner"
    );
}
casebridge_testkit::backend_test!(a_lost_lease_ends_nothing);
