//! The hourly Law Ruler pull (LR13) against the simulator, on both backends: changed leads
//! applied through the webhook path, notes stored once (also notes casebridge wrote itself),
//! cursors and health, the Receive toggle, 429 with Retry-After, wrong credentials, one waiting
//! pull per company, and which integrations the scheduler picks.

use std::sync::Arc;
use std::time::Duration;

use casebridge_crm::lawruler::client::LawRulerPaths;
use casebridge_crm::lawruler::connection::{self, Clients, StoredCredentials};
use casebridge_crm::lawruler::pull::{self, PullOutcome, PullSummary};
use casebridge_crypto::{Keyring, MasterKey};
use casebridge_domain::clock::{Clock, ManualClock};
use casebridge_domain::company::NewCompany;
use casebridge_domain::ids::CompanyId;
use casebridge_domain::model::Case;
use casebridge_domain::page::PageRequest;
use casebridge_domain::records::NamedKind;
use casebridge_queue::{Registry, Worker, WorkerConfig};
use casebridge_sim::lawruler::{
    LawRulerSim, NewLead, RunningSim, DEMO_CLIENT_SECRET, DEMO_KEY, DEMO_PASSWORD, DEMO_USERNAME,
};
use casebridge_store::crm_notes::{self, CrmNote};
use casebridge_store::integrations::{self, Integration, SyncEntry};
use casebridge_store::{activity, cases, companies, named, Store, StoreError};
use casebridge_testkit::{TestBackend, TestDb};
use jiff::{SignedDuration, Timestamp};
use serde_json::json;
use tokio_util::sync::CancellationToken;

const PROVIDER: &str = "lawruler";

/// Minutes after the test's epoch (far from the simulator's seed leads, which are made "now").
fn at(minutes: i64) -> Timestamp {
    "2030-01-01T00:00:00Z".parse::<Timestamp>().unwrap() + SignedDuration::from_mins(minutes)
}

fn demo(root: &str) -> StoredCredentials {
    StoredCredentials {
        username: DEMO_USERNAME.into(),
        password: DEMO_PASSWORD.into(),
        client_root: root.into(),
        client_secret: DEMO_CLIENT_SECRET.into(),
        key: DEMO_KEY.into(),
    }
}

struct Env {
    db: TestDb,
    clock: ManualClock,
    keyring: Keyring,
    clients: Clients,
    company: CompanyId,
    lr: RunningSim,
}

impl Env {
    /// A company connected (at minute 0) to a running simulator, receiving.
    async fn new(backend: TestBackend) -> Self {
        let db = TestDb::new(backend).await;
        let clock = ManualClock::new(at(0));
        let keyring = Keyring::new(MasterKey::generate(), Vec::new());
        let clients = Clients::new(
            reqwest::Client::new(),
            std::sync::Arc::new(casebridge_webhooks::policy::UrlPolicy {
                allow_http: true,
                allowed_private: vec!["127.0.0.0/8".parse().unwrap()],
            }),
            LawRulerPaths::default(),
            keyring.clone(),
        );
        let lr = LawRulerSim::new().start().await;
        lr.sim.set_now(Some(at(0)));
        let mut env = Self {
            db,
            clock,
            keyring,
            clients,
            company: CompanyId::new(),
            lr,
        };
        env.company = env.new_company("Test Firm").await;
        let creds = demo(&env.lr.base_url);
        env.connect(env.company, Some(creds), true).await;
        env
    }

    fn store(&self) -> &Store {
        &self.db.store
    }

    async fn new_company(&self, name: &str) -> CompanyId {
        let mut tx = self.store().begin().await.unwrap();
        let c = companies::create(&mut tx, &NewCompany::parse(name, None).unwrap(), at(0))
            .await
            .unwrap();
        integrations::ensure(
            &mut tx,
            c.id,
            PROVIDER,
            &uuid::Uuid::new_v4().simple().to_string(),
            at(0),
        )
        .await
        .unwrap();
        tx.commit().await.unwrap();
        c.id
    }

    /// Stores `creds` (sealed, as connecting does) or disconnects, and sets the toggles.
    async fn connect(&self, company: CompanyId, creds: Option<StoredCredentials>, receive: bool) {
        let sealed = creds.map(|c| connection::seal(&self.keyring, company, &c));
        let mut tx = self.store().begin().await.unwrap();
        integrations::set_credentials(&mut tx, company, PROVIDER, sealed.as_deref(), at(0))
            .await
            .unwrap();
        integrations::set_settings(
            &mut tx,
            company,
            PROVIDER,
            &json!({"enable_integration": true, "receive": receive}),
            at(0),
        )
        .await
        .unwrap();
        tx.commit().await.unwrap();
    }

    async fn pull(&self) -> PullOutcome {
        pull::pull(self.store(), &self.clock, &self.clients, self.company)
            .await
            .unwrap()
    }

    async fn pulled(&self) -> PullSummary {
        match self.pull().await {
            PullOutcome::Pulled(s) => s,
            other => panic!("expected a pull, got {other:?}"),
        }
    }

    fn worker(&self) -> Worker {
        let clock: Arc<dyn Clock> = Arc::new(self.clock.clone());
        Worker::new(
            self.store().clone(),
            clock.clone(),
            pull::register(
                Registry::new(),
                self.store().clone(),
                clock,
                self.clients.clone(),
            ),
            WorkerConfig::new(pull::QUEUE),
        )
    }

    async fn enqueue(&self, company: CompanyId) -> bool {
        let mut tx = self.store().begin().await.unwrap();
        let id = pull::enqueue_pull(&mut tx, company, self.clock.now())
            .await
            .unwrap();
        tx.commit().await.unwrap();
        id.is_some()
    }

    async fn pending(&self, company: CompanyId) -> Vec<casebridge_domain::jobs::Job> {
        let mut conn = self.store().conn().await.unwrap();
        activity::pending_jobs(&mut conn, company, pull::KIND)
            .await
            .unwrap()
    }

    async fn integration(&self) -> Integration {
        let mut conn = self.store().conn().await.unwrap();
        integrations::get(&mut conn, self.company, PROVIDER)
            .await
            .unwrap()
            .unwrap()
    }

    /// The sync log, newest first.
    async fn log(&self) -> Vec<SyncEntry> {
        let mut conn = self.store().conn().await.unwrap();
        integrations::sync_log(
            &mut conn,
            self.company,
            PROVIDER,
            None,
            &PageRequest::first(100),
        )
        .await
        .unwrap()
        .items
    }

    async fn case(&self, lead: &str) -> Option<Case> {
        let mut conn = self.store().conn().await.unwrap();
        match cases::find_by_ref(&mut conn, self.company, PROVIDER, lead).await {
            Ok(c) => Some(c),
            Err(StoreError::NotFound) => None,
            Err(e) => panic!("{e}"),
        }
    }

    async fn status_name(&self, case: &Case) -> String {
        let mut conn = self.store().conn().await.unwrap();
        let id = case.case_status_id.expect("a status").to_string();
        named::get(&mut conn, self.company, NamedKind::CaseStatus, &id)
            .await
            .unwrap()
            .name
    }

    async fn notes(&self, case: &Case) -> Vec<CrmNote> {
        let mut conn = self.store().conn().await.unwrap();
        crm_notes::for_case(&mut conn, self.company, PROVIDER, case.id)
            .await
            .unwrap()
    }
}

async fn a_pull_applies_changed_leads_and_stores_new_notes_once(
    backend: casebridge_testkit::TestBackend,
) {
    let env = Env::new(backend).await;
    let sim = &env.lr.sim;
    // Changes in Law Ruler after the connection: a status change of a seeded lead, a new
    // lead, a note on each, and a note on a lead casebridge does not know.
    sim.set_now(Some(at(10)));
    sim.set_status("10001", "Signed Up").unwrap();
    let new_lead = sim
        .create_lead(NewLead {
            email: Some("ann@example.com".into()),
            ..NewLead::new("Ann", "Lee", "13")
        })
        .unwrap();
    sim.add_note(
        "10001",
        "Client Communications",
        "Called",
        "Left a voicemail",
    )
    .unwrap();
    sim.add_note(&new_lead, "General", "Intake", "Intake call booked")
        .unwrap();
    sim.add_note("10002", "General", "Other lead", "Not ours")
        .unwrap();
    env.clock.set(at(15));

    let first = env.pulled().await;
    assert_eq!(
        (
            first.leads,
            first.created,
            first.updated,
            first.unchanged,
            first.failed
        ),
        (2, 2, 0, 0, 0),
        "only the leads changed since the connection: {first:?}"
    );
    assert_eq!((first.notes, first.new_notes), (3, 3));
    assert!(
        env.case("10002").await.is_none(),
        "an unchanged lead is not pulled"
    );
    let jane = env.case("10001").await.expect("case by Lead ID");
    assert_eq!(jane.name, "Jane Doe");
    assert_eq!(env.status_name(&jane).await, "Signed Up");
    let ann = env.case(&new_lead).await.expect("case by Lead ID");
    assert_eq!(env.status_name(&ann).await, "Intake");
    let notes = env.notes(&jane).await;
    assert_eq!(notes.len(), 1);
    assert_eq!(
        (
            notes[0].origin.as_str(),
            notes[0].subject.as_str(),
            notes[0].record_id.as_str()
        ),
        ("crm", "Called", "10001")
    );
    assert_eq!(notes[0].noted_at, at(10));

    let i = env.integration().await;
    assert_eq!(
        (i.leads_cursor, i.notes_cursor),
        (Some(at(10)), Some(at(10)))
    );
    assert_eq!(i.last_pull_at, Some(at(15)));
    assert_eq!(i.last_status_pull_at, Some(at(15)));
    assert_eq!(i.last_pull_error, None);
    let log = env.log().await;
    assert_eq!(log[0].operation, "pull");
    assert_eq!(log[0].outcome, "ok");
    assert_eq!(
        log[0].message.as_deref(),
        Some("pulled 2 leads (2 created, 0 updated, 0 unchanged) and 3 notes (3 new)")
    );

    // Nothing changed: records at exactly the cursor come again and are deduped.
    env.clock.set(at(75));
    let again = env.pulled().await;
    assert_eq!(
        (again.leads, again.unchanged, again.created, again.updated),
        (2, 2, 0, 0),
        "{again:?}"
    );
    assert_eq!((again.notes, again.new_notes), (3, 0));
    assert_eq!(env.notes(&jane).await.len(), 1);

    // Later: a status change, a note from Law Ruler, and a note casebridge wrote there
    // (stored by the outbound sender under Law Ruler's id before the pull sees it).
    sim.set_now(Some(at(80)));
    sim.set_status(&new_lead, "Sent e-Sign").unwrap();
    sim.add_note(&new_lead, "General", "Docs", "Sent the documents")
        .unwrap();
    let ours = sim
        .add_note(
            &new_lead,
            "Client Communications",
            "Call Analysis Summary",
            "ours",
        )
        .unwrap();
    let mut conn = env.store().conn().await.unwrap();
    assert!(crm_notes::insert(
        &mut conn,
        env.company,
        PROVIDER,
        &CrmNote {
            crm_note_id: ours.id.clone(),
            record_id: new_lead.clone(),
            case_id: Some(ann.id),
            origin: "platform".into(),
            category: "Client Communications".into(),
            subject: "Call Analysis Summary".into(),
            body: "ours".into(),
            noted_at: at(79),
        },
        at(80)
    )
    .await
    .unwrap());
    drop(conn);
    env.clock.set(at(135));
    let third = env.pulled().await;
    assert_eq!(
        (third.leads, third.updated, third.unchanged),
        (2, 1, 1),
        "{third:?}"
    );
    assert_eq!((third.notes, third.new_notes), (5, 1), "{third:?}");
    let ann_after = env.case(&new_lead).await.unwrap();
    assert_eq!(ann_after.id, ann.id, "the same case, updated");
    assert_eq!(env.status_name(&ann_after).await, "Sent e-Sign");
    let notes = env.notes(&ann).await;
    let seen: Vec<(&str, &str)> = notes
        .iter()
        .map(|n| (n.origin.as_str(), n.subject.as_str()))
        .collect();
    assert_eq!(
        seen,
        vec![
            ("crm", "Intake"),
            ("platform", "Call Analysis Summary"),
            ("crm", "Docs")
        ],
        "our own note is not stored a second time"
    );
    let i = env.integration().await;
    assert_eq!(
        (i.leads_cursor, i.notes_cursor),
        (Some(at(80)), Some(at(80)))
    );
    assert_eq!(i.last_status_pull_at, Some(at(135)));

    // A note that came before its lead had a case joins the case when the lead arrives.
    sim.set_now(Some(at(140)));
    sim.set_status("10002", "Signed Up").unwrap();
    env.clock.set(at(200));
    env.pulled().await;
    let john = env.case("10002").await.expect("pulled now");
    let subjects: Vec<String> = env
        .notes(&john)
        .await
        .into_iter()
        .map(|n| n.subject)
        .collect();
    assert_eq!(subjects, ["Other lead"]);
}
casebridge_testkit::backend_test!(a_pull_applies_changed_leads_and_stores_new_notes_once);

async fn a_lead_that_cannot_be_applied_is_logged_and_the_pull_goes_on(
    backend: casebridge_testkit::TestBackend,
) {
    let env = Env::new(backend).await;
    let sim = &env.lr.sim;
    sim.set_now(Some(at(10)));
    // An invalid email passes Law Ruler but not the platform.
    let bad = sim
        .create_lead(NewLead {
            email: Some("not-an-email".into()),
            ..NewLead::new("Bo", "Bad", "12")
        })
        .unwrap();
    let good = sim.create_lead(NewLead::new("Gia", "Good", "12")).unwrap();
    sim.add_note(&good, "General", "Hello", "x").unwrap();
    env.clock.set(at(15));
    let s = env.pulled().await;
    assert_eq!(
        (s.leads, s.created, s.failed, s.new_notes),
        (2, 1, 1, 1),
        "{s:?}"
    );
    assert!(
        env.case(&bad).await.is_none(),
        "nothing of the bad lead is kept"
    );
    assert!(env.case(&good).await.is_some());
    let log = env.log().await;
    let failure = log
        .iter()
        .find(|e| e.record_ref.as_deref() == Some(bad.as_str()))
        .expect("logged");
    assert_eq!(
        (failure.outcome.as_str(), failure.error_kind.as_deref()),
        ("error", Some("validation"))
    );
    assert!(
        failure
            .message
            .as_deref()
            .unwrap()
            .contains(&format!("Lead ID {bad}")),
        "{failure:?}"
    );
    assert!(
        log[0].message.as_deref().unwrap().contains("1 failed"),
        "{:?}",
        log[0]
    );
    assert_eq!(
        env.integration().await.leads_cursor,
        Some(at(10)),
        "the cursor moves past it"
    );
}
casebridge_testkit::backend_test!(a_lead_that_cannot_be_applied_is_logged_and_the_pull_goes_on);

async fn receive_off_pulls_nothing_and_says_why(backend: casebridge_testkit::TestBackend) {
    let env = Env::new(backend).await;
    env.connect(env.company, Some(demo(&env.lr.base_url)), false)
        .await;
    env.lr.sim.set_now(Some(at(10)));
    env.lr.sim.set_status("10001", "Signed Up").unwrap();
    env.clock.set(at(15));
    let outcome = env.pull().await;
    assert!(
        matches!(&outcome, PullOutcome::Skipped(r) if r.contains("Receive data")),
        "{outcome:?}"
    );
    assert!(env.case("10001").await.is_none());
    assert!(env.lr.sim.requests().is_empty(), "Law Ruler was not called");
    let log = env.log().await;
    assert_eq!(
        (log[0].operation.as_str(), log[0].outcome.as_str()),
        ("pull", "skipped")
    );
    assert!(
        log[0].message.as_deref().unwrap().contains("Receive data"),
        "{:?}",
        log[0]
    );
    let i = env.integration().await;
    assert_eq!(
        (i.leads_cursor, i.last_pull_at, i.last_status_pull_at),
        (None, None, None)
    );

    // Disconnected: skipped too.
    env.connect(env.company, None, true).await;
    assert!(matches!(env.pull().await, PullOutcome::Skipped(r) if r.contains("not connected")));
}
casebridge_testkit::backend_test!(receive_off_pulls_nothing_and_says_why);

async fn a_rate_limited_pull_is_retried_after_retry_after(
    backend: casebridge_testkit::TestBackend,
) {
    let env = Env::new(backend).await;
    env.lr.sim.set_now(Some(at(10)));
    env.lr.sim.set_status("10001", "Signed Up").unwrap();
    env.clock.set(at(15));
    env.lr.sim.rate_limit(120, 1);
    assert!(env.enqueue(env.company).await);
    let worker = env.worker();
    assert_eq!(worker.drain().await.unwrap(), 1);
    let pending = env.pending(env.company).await;
    assert_eq!(pending.len(), 1, "the pull waits for its retry");
    assert_eq!(
        pending[0].run_at,
        at(15) + SignedDuration::from_secs(120),
        "Retry-After honoured"
    );
    assert!(
        pending[0]
            .last_error
            .as_deref()
            .unwrap()
            .contains("rate limit"),
        "{:?}",
        pending[0].last_error
    );
    assert!(env.case("10001").await.is_none());
    let i = env.integration().await;
    assert!(
        i.last_pull_error.as_deref().unwrap().contains("rate limit"),
        "{:?}",
        i.last_pull_error
    );
    assert_eq!(i.leads_cursor, None);
    let log = env.log().await;
    assert_eq!(
        (log[0].outcome.as_str(), log[0].error_kind.as_deref()),
        ("error", Some("transient"))
    );
    assert!(
        !env.enqueue(env.company).await,
        "a waiting retry counts as the company's pull"
    );

    // Not before the time Law Ruler asked for; then it goes through.
    env.clock.set(at(16));
    assert_eq!(worker.drain().await.unwrap(), 0);
    env.clock.set(at(17));
    assert_eq!(worker.drain().await.unwrap(), 1);
    assert!(env.pending(env.company).await.is_empty());
    assert!(env.case("10001").await.is_some());
    let i = env.integration().await;
    assert_eq!((i.last_pull_error, i.leads_cursor), (None, Some(at(10))));
}
casebridge_testkit::backend_test!(a_rate_limited_pull_is_retried_after_retry_after);

async fn wrong_credentials_show_as_a_configuration_error(backend: casebridge_testkit::TestBackend) {
    let env = Env::new(backend).await;
    let mut creds = demo(&env.lr.base_url);
    creds.password = "wrong-password".into();
    env.connect(env.company, Some(creds), true).await;
    let worker = env.worker();
    for _ in 0..2 {
        assert!(env.enqueue(env.company).await);
        assert_eq!(worker.drain().await.unwrap(), 1);
        assert!(
            env.pending(env.company).await.is_empty(),
            "done, not retried"
        );
    }
    let i = env.integration().await;
    let err = i.config_error.expect("the integration shows the error");
    assert!(err.contains("password"), "{err}");
    assert!(!err.contains("wrong-password"), "no secret in the error");
    assert_eq!(i.last_pull_error.as_deref(), Some(err.as_str()));
    let log = env.log().await;
    let config: Vec<&SyncEntry> = log
        .iter()
        .filter(|e| e.error_kind.as_deref() == Some("configuration"))
        .collect();
    assert_eq!(
        config.len(),
        1,
        "logged once, not on every hourly try: {log:?}"
    );
    assert!(
        config[0].message.as_deref().unwrap().contains("Password"),
        "{:?}",
        config[0]
    );
    let mut conn = env.store().conn().await.unwrap();
    let dead = casebridge_store::jobs::dead(&mut conn, pull::QUEUE, &PageRequest::first(10))
        .await
        .unwrap();
    assert!(dead.items.is_empty(), "no dead letter");
}
casebridge_testkit::backend_test!(wrong_credentials_show_as_a_configuration_error);

async fn one_waiting_pull_per_company(backend: casebridge_testkit::TestBackend) {
    let env = Env::new(backend).await;
    assert!(env.enqueue(env.company).await);
    assert!(!env.enqueue(env.company).await);
    let other = env.new_company("Other Firm").await;
    assert!(env.enqueue(other).await, "another company has its own");
    let pending = env.pending(env.company).await;
    assert_eq!(pending.len(), 1);
    assert_eq!(
        pending[0].ordering_key.as_deref(),
        Some(pull::ordering_key(env.company).as_str())
    );
    assert_eq!(env.worker().drain().await.unwrap(), 2);
    assert!(
        env.enqueue(env.company).await,
        "once it ran, the next one can wait"
    );
}
casebridge_testkit::backend_test!(one_waiting_pull_per_company);

async fn the_scheduler_picks_connected_receiving_integrations_not_pulled_within_the_interval(
    backend: casebridge_testkit::TestBackend,
) {
    let env = Env::new(backend).await; // connected, never pulled: due
    let hour = Duration::from_secs(3600);
    let root = env.lr.base_url.clone();
    let recent = env.new_company("Recent").await;
    env.connect(recent, Some(demo(&root)), true).await;
    let stale = env.new_company("Stale").await;
    env.connect(stale, Some(demo(&root)), true).await;
    let off = env.new_company("Receive off").await;
    env.connect(off, Some(demo(&root)), false).await;
    let gone = env.new_company("Disconnected").await;
    env.connect(gone, None, true).await;
    env.clock.set(at(180));
    let mut conn = env.store().conn().await.unwrap();
    integrations::record_pull(&mut conn, recent, PROVIDER, None, None, None, at(130))
        .await
        .unwrap();
    integrations::record_pull(&mut conn, stale, PROVIDER, None, None, None, at(120))
        .await
        .unwrap();
    drop(conn);

    let mut enqueued = pull::schedule_due(env.store(), &env.clock, hour)
        .await
        .unwrap();
    enqueued.sort();
    let mut expected = vec![env.company, stale];
    expected.sort();
    assert_eq!(enqueued, expected);
    for c in [recent, off, gone] {
        assert!(env.pending(c).await.is_empty());
    }
    assert!(
        pull::schedule_due(env.store(), &env.clock, hour)
            .await
            .unwrap()
            .is_empty(),
        "pulls already waiting are not doubled"
    );

    // The loop does the same on its own.
    env.worker().drain().await.unwrap();
    env.clock.set(at(195));
    let shutdown = CancellationToken::new();
    let task = tokio::spawn(pull::schedule_loop(
        env.store().clone(),
        Arc::new(env.clock.clone()),
        hour,
        shutdown.clone(),
    ));
    casebridge_testkit::wait_until(
        Duration::from_secs(5),
        "the loop enqueues the pull that became due",
        async || !env.pending(recent).await.is_empty(),
    )
    .await;
    shutdown.cancel();
    tokio::time::timeout(Duration::from_secs(5), task)
        .await
        .expect("stops on shutdown")
        .unwrap();
    assert!(
        env.pending(env.company).await.is_empty(),
        "pulled at minute 180, not due yet"
    );
}
casebridge_testkit::backend_test!(
    the_scheduler_picks_connected_receiving_integrations_not_pulled_within_the_interval
);
