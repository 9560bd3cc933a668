//! The group committer on both backends: a failing unit rolls back alone, a unit is answered
//! only after the commit that holds it, and the wake-ups of jobs enqueued by a unit fire after
//! that commit.
//!
//! To put several units in one batch on purpose, a first unit holds the committer
//! ([`CommitterHeld`]) until the others are queued. Those tests run the `Batched` mode on both
//! backends (PostgreSQL's default is `PerUnit`); the last one runs the default of each.

use std::time::Duration;

use casebridge_domain::company::NewCompany;
use casebridge_domain::ids::CompanyId;
use casebridge_domain::jobs::NewJob;
use casebridge_domain::page::PageRequest;
use casebridge_domain::records::{Name, NamedKind};
use casebridge_store::{companies, jobs, named, GroupCommit, GroupStats, Store, StoreError, Tx};
use casebridge_testkit::{CommitterHeld, TestDb};
use jiff::Timestamp;
use serde_json::json;
use tokio::sync::oneshot;

#[derive(Debug)]
enum UnitError {
    Store(StoreError),
    /// A unit's own refusal, not a store error: it must come back as it is.
    Refused(&'static str),
}

impl From<StoreError> for UnitError {
    fn from(e: StoreError) -> Self {
        UnitError::Store(e)
    }
}

async fn company(store: &Store) -> CompanyId {
    let mut tx = store.begin().await.unwrap();
    let c = companies::create(
        &mut tx,
        &NewCompany::parse("Group", None).unwrap(),
        Timestamp::now(),
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();
    c.id
}

async fn case_type(tx: &mut Tx, company: CompanyId, name: &str) -> Result<(), StoreError> {
    named::create(
        tx,
        company,
        NamedKind::CaseType,
        &Name::parse("name", name).unwrap(),
        Timestamp::now(),
    )
    .await
    .map(|_| ())
}

/// The case types committed, read on a pooled connection (not the committer's).
async fn committed(store: &Store, company: CompanyId) -> Vec<String> {
    let mut conn = store.conn().await.unwrap();
    let page = PageRequest {
        after: None,
        limit: 200,
    };
    let mut names: Vec<String> = named::list(&mut conn, company, NamedKind::CaseType, &page)
        .await
        .unwrap()
        .items
        .into_iter()
        .map(|n| n.name)
        .collect();
    names.sort();
    names
}

async fn one_failing_unit_in_a_batch_does_not_fail_the_others(
    backend: casebridge_testkit::TestBackend,
) {
    let db = TestDb::new(backend).await;
    let store = db.store.with_group_commit(GroupCommit::Batched);
    let company = company(&store).await;

    let held = CommitterHeld::hold(&store).await;

    // Queued behind it, so they make the next batch: good units around a unit whose second
    // statement breaks a uniqueness rule (on PostgreSQL that aborts the transaction until the
    // savepoint is rolled back to), a unit refusing with its own error, and one that panics.
    let spawn = |name: &'static str, fail: Option<&'static str>| {
        let store = store.clone();
        tokio::spawn(async move {
            store
                .group_commit(move |tx| {
                    Box::pin(async move {
                        case_type(tx, company, name).await?;
                        match fail {
                            None => Ok(name),
                            Some("conflict") => case_type(tx, company, name)
                                .await
                                .map(|_| name)
                                .map_err(UnitError::from),
                            Some("refuse") => Err(UnitError::Refused("no, thanks")),
                            Some(_) => panic!("a unit that panics"),
                        }
                    })
                })
                .await
        })
    };
    let units = vec![
        spawn("ok-1", None),
        spawn("conflicting", Some("conflict")),
        spawn("ok-2", None),
        spawn("refusing", Some("refuse")),
        spawn("ok-3", None),
        spawn("panicking", Some("panic")),
        spawn("ok-4", None),
    ];
    CommitterHeld::wait_queued(&store, 1 + units.len() as u64).await;
    held.release().await;

    let mut answers = Vec::new();
    for u in units {
        answers.push(u.await);
    }
    for (i, name) in [(0, "ok-1"), (2, "ok-2"), (4, "ok-3"), (6, "ok-4")] {
        assert_eq!(answers[i].as_ref().unwrap().as_ref().unwrap(), &name);
    }
    assert!(
        matches!(
            answers[1].as_ref().unwrap(),
            Err(UnitError::Store(StoreError::Conflict(_)))
        ),
        "the unit's own store error comes back as it is: {:?}",
        answers[1]
    );
    assert!(
        matches!(
            answers[3].as_ref().unwrap(),
            Err(UnitError::Refused("no, thanks"))
        ),
        "the unit's own error comes back as it is: {:?}",
        answers[3]
    );
    assert!(
        answers[5].as_ref().unwrap_err().is_panic(),
        "a unit's panic resumes in its caller"
    );

    let stats = store.group_stats();
    assert_eq!(
        (stats.batches, stats.units, stats.max_batch),
        (2, 8, 7),
        "the held unit alone, then the seven queued behind it in one transaction: {stats:?}"
    );
    // The failing units left nothing (their first insert is undone too); the others committed.
    assert_eq!(
        committed(&store, company).await,
        ["ok-1", "ok-2", "ok-3", "ok-4"]
    );

    // The committer goes on after a batch with failures.
    let again = store
        .group_commit(move |tx| Box::pin(async move { case_type(tx, company, "after").await }))
        .await;
    assert!(again.is_ok(), "{again:?}");
    assert!(committed(&store, company)
        .await
        .contains(&"after".to_owned()));
}
casebridge_testkit::backend_test!(one_failing_unit_in_a_batch_does_not_fail_the_others);

async fn a_unit_is_answered_only_after_the_commit_that_holds_it(
    backend: casebridge_testkit::TestBackend,
) {
    let db = TestDb::new(backend).await;
    let store = db.store.with_group_commit(GroupCommit::Batched);
    let company = company(&store).await;

    // A batch of two: `early` finishes its work, then `late` holds the transaction open.
    let held = CommitterHeld::hold(&store).await;
    let early = tokio::spawn({
        let store = store.clone();
        async move {
            store
                .group_commit(move |tx| {
                    Box::pin(async move { case_type(tx, company, "early").await })
                })
                .await
        }
    });
    CommitterHeld::wait_queued(&store, 2).await;
    let (release_late, late_held) = oneshot::channel();
    let (late_running, is_late_running) = oneshot::channel();
    let late = tokio::spawn({
        let store = store.clone();
        async move {
            store
                .group_commit(move |tx| {
                    Box::pin(async move {
                        case_type(tx, company, "late").await?;
                        late_running.send(()).unwrap();
                        late_held.await.unwrap();
                        Ok::<_, StoreError>(())
                    })
                })
                .await
        }
    });
    CommitterHeld::wait_queued(&store, 3).await;
    held.release().await;
    is_late_running.await.unwrap();

    // `early`'s work is done in the open transaction: it is neither answered nor visible.
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(!early.is_finished(), "answered before its commit");
    assert!(committed(&store, company).await.is_empty());

    release_late.send(()).unwrap();
    early.await.unwrap().unwrap();
    // Answered: visible from another connection at once.
    assert_eq!(committed(&store, company).await, ["early", "late"]);
    late.await.unwrap().unwrap();

    // Under concurrency: every answer finds its row committed.
    let all: Vec<_> = (0..32)
        .map(|i| {
            let store = store.clone();
            tokio::spawn(async move {
                let name = format!("c-{i:02}");
                let unit_name = name.clone();
                store
                    .group_commit(move |tx| {
                        Box::pin(async move { case_type(tx, company, &unit_name).await })
                    })
                    .await
                    .unwrap();
                assert!(
                    committed(&store, company).await.contains(&name),
                    "{name} answered but not visible"
                );
            })
        })
        .collect();
    for t in all {
        t.await.unwrap();
    }
    assert_eq!(committed(&store, company).await.len(), 2 + 32);
    let GroupStats { units, .. } = store.group_stats();
    assert_eq!(units, 3 + 32);
}
casebridge_testkit::backend_test!(a_unit_is_answered_only_after_the_commit_that_holds_it);

async fn a_job_enqueued_by_a_unit_wakes_workers_after_the_batch_commits(
    backend: casebridge_testkit::TestBackend,
) {
    let db = TestDb::new(backend).await;
    let store = db.store.with_group_commit(GroupCommit::Batched);
    let mut wakeups = store.job_wakeups();
    wakeups.mark_seen();

    let held = CommitterHeld::hold(&store).await;
    let (enqueued, is_enqueued) = oneshot::channel();
    let (release_batch, batch_held) = oneshot::channel();
    let unit = tokio::spawn({
        let store = store.clone();
        async move {
            store
                .group_commit(move |tx| {
                    Box::pin(async move {
                        let job = NewJob::new("test", "noop", json!({}));
                        jobs::enqueue(tx, &job, Timestamp::now()).await?;
                        enqueued.send(()).unwrap();
                        batch_held.await.unwrap();
                        Ok::<_, StoreError>(())
                    })
                })
                .await
        }
    });
    CommitterHeld::wait_queued(&store, 2).await;
    held.release().await;
    is_enqueued.await.unwrap();
    // Enqueued but not committed: no wake-up yet (the listener's first look on PostgreSQL
    // aside, which is why this waits for the job's own wake-up below).
    assert!(
        tokio::time::timeout(Duration::from_millis(100), wakeups.changed())
            .await
            .is_err()
            || backend == casebridge_testkit::TestBackend::Postgres,
        "woken before the commit"
    );
    wakeups.mark_seen();
    release_batch.send(()).unwrap();
    tokio::time::timeout(Duration::from_secs(5), wakeups.changed())
        .await
        .expect("woken after the batch committed");
    unit.await.unwrap().unwrap();
}
casebridge_testkit::backend_test!(a_job_enqueued_by_a_unit_wakes_workers_after_the_batch_commits);

async fn each_mode_answers_after_commit_and_fails_a_unit_alone(
    backend: casebridge_testkit::TestBackend,
) {
    let db = TestDb::new(backend).await;
    let default = GroupCommit::default_for(db.store.backend());
    assert_eq!(db.store.group_commit_mode(), default);
    for mode in [GroupCommit::Batched, GroupCommit::PerUnit] {
        let store = db.store.with_group_commit(mode);
        let company = company(&store).await;
        let units: Vec<_> = (0..24)
            .map(|i| {
                let store = store.clone();
                tokio::spawn(async move {
                    let name = format!("u-{i:02}");
                    let unit_name = name.clone();
                    let answer = store
                        .group_commit(move |tx| {
                            Box::pin(async move {
                                case_type(tx, company, &unit_name).await?;
                                if i % 5 == 0 {
                                    // Its own row is undone with it.
                                    return case_type(tx, company, &unit_name)
                                        .await
                                        .map_err(UnitError::from);
                                }
                                Ok(())
                            })
                        })
                        .await;
                    let visible = committed(&store, company).await.contains(&name);
                    (i, answer, visible)
                })
            })
            .collect();
        for u in units {
            let (i, answer, visible) = u.await.unwrap();
            if i % 5 == 0 {
                assert!(
                    matches!(answer, Err(UnitError::Store(StoreError::Conflict(_)))),
                    "{mode:?} unit {i}: {answer:?}"
                );
                assert!(!visible, "{mode:?} unit {i} failed but left its row");
            } else {
                assert!(answer.is_ok(), "{mode:?} unit {i}: {answer:?}");
                assert!(visible, "{mode:?} unit {i} answered before its commit");
            }
        }
        assert_eq!(committed(&store, company).await.len(), 24 - 5);
        let stats = store.group_stats();
        assert_eq!(
            (stats.submitted, stats.units),
            (24, 24),
            "{mode:?}: {stats:?}"
        );
        if mode == GroupCommit::PerUnit {
            assert_eq!(stats.batches, 24, "one transaction a unit");
        }
    }
}
casebridge_testkit::backend_test!(each_mode_answers_after_commit_and_fails_a_unit_alone);

async fn a_failing_last_unit_of_a_batch_is_undone_before_the_commit(
    backend: casebridge_testkit::TestBackend,
) {
    let db = TestDb::new(backend).await;
    let store = db.store.with_group_commit(GroupCommit::Batched);
    let company = company(&store).await;
    let held = CommitterHeld::hold(&store).await;
    // Queued one at a time, so the failing unit is the batch's last.
    let mut units = Vec::new();
    for (i, fail) in [false, true, false, true].into_iter().enumerate() {
        let store2 = store.clone();
        let name = format!("u-{i}");
        units.push(tokio::spawn(async move {
            store2
                .group_commit(move |tx| {
                    Box::pin(async move {
                        case_type(tx, company, &name).await?;
                        if fail {
                            case_type(tx, company, &name).await?;
                        }
                        Ok::<_, StoreError>(())
                    })
                })
                .await
        }));
        CommitterHeld::wait_queued(&store, 2 + i as u64).await;
    }
    held.release().await;
    let answers: Vec<bool> = futures::future::join_all(units)
        .await
        .into_iter()
        .map(|a| a.unwrap().is_ok())
        .collect();
    assert_eq!(answers, [true, false, true, false]);
    assert_eq!(committed(&store, company).await, ["u-0", "u-2"]);
    assert_eq!(store.group_stats().max_batch, 4);
}
casebridge_testkit::backend_test!(a_failing_last_unit_of_a_batch_is_undone_before_the_commit);

async fn a_batch_that_cannot_commit_fails_every_unit_and_keeps_nothing(
    backend: casebridge_testkit::TestBackend,
) {
    let db = TestDb::new(backend).await;
    let store = db.store.with_group_commit(GroupCommit::Batched);
    let company = company(&store).await;
    // A reference checked only at COMMIT: a unit can break it and still succeed itself, so the
    // batch's COMMIT fails (a table of this test's own database).
    let mut conn = store.conn().await.unwrap();
    sqlx::query(
        "CREATE TABLE deferred_refs (company_id TEXT REFERENCES companies(id) \
         DEFERRABLE INITIALLY DEFERRED)",
    )
    .execute(&mut *conn)
    .await
    .unwrap();
    drop(conn);

    let held = CommitterHeld::hold(&store).await;
    let mut units = Vec::new();
    for (i, name) in ["before", "breaking", "after"].into_iter().enumerate() {
        let store2 = store.clone();
        units.push(tokio::spawn(async move {
            store2
                .group_commit(move |tx| {
                    Box::pin(async move {
                        case_type(tx, company, name).await?;
                        if name == "breaking" {
                            sqlx::query("INSERT INTO deferred_refs (company_id) VALUES ('none')")
                                .execute(&mut **tx)
                                .await
                                .map_err(StoreError::from)?;
                        }
                        Ok::<_, StoreError>(name)
                    })
                })
                .await
        }));
        CommitterHeld::wait_queued(&store, 2 + i as u64).await;
    }
    held.release().await;
    for u in units {
        let answer = u.await.unwrap();
        assert!(
            matches!(answer, Err(StoreError::Conflict(_))),
            "every unit of the batch gets the commit's failure: {answer:?}"
        );
    }
    assert!(committed(&store, company).await.is_empty());
    // The next batch commits.
    let next = store
        .group_commit(move |tx| Box::pin(async move { case_type(tx, company, "next").await }))
        .await;
    assert!(next.is_ok(), "{next:?}");
    assert_eq!(committed(&store, company).await, ["next"]);
}
casebridge_testkit::backend_test!(a_batch_that_cannot_commit_fails_every_unit_and_keeps_nothing);
