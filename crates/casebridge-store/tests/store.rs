//! Store behaviour on both backends: scoping, references, uniqueness, pagination.

use casebridge_domain::company::NewCompany;
use casebridge_domain::ids::CompanyId;
use casebridge_domain::page::PageRequest;
use casebridge_domain::records::{CaseFilter, CustomFields, ExternalRef, Name, NamedKind, NewCase};
use casebridge_store::{cases, companies, named, StoreError};
use casebridge_testkit::TestDb;
use jiff::Timestamp;
use serde_json::json;

async fn company(db: &TestDb, name: &str) -> CompanyId {
    let mut tx = db.store.begin().await.unwrap();
    let c = companies::create(
        &mut tx,
        &NewCompany::parse(name, None).unwrap(),
        Timestamp::now(),
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();
    c.id
}

async fn case_type(db: &TestDb, company: CompanyId, name: &str) -> String {
    let mut conn = db.store.conn().await.unwrap();
    named::create(
        &mut conn,
        company,
        NamedKind::CaseType,
        &Name::parse("name", name).unwrap(),
        Timestamp::now(),
    )
    .await
    .unwrap()
    .id
}

fn new_case(case_type: &str, name: &str, lead: Option<&str>) -> NewCase {
    NewCase {
        name: Name::parse("name", name).unwrap(),
        case_type_id: case_type.parse().unwrap(),
        case_status_id: None,
        client_id: None,
        campaign_id: None,
        custom_fields: CustomFields::parse(json!({"injury": "back"})).unwrap(),
        external_refs: lead
            .map(|l| vec![ExternalRef::parse("r", "lawruler", l).unwrap()])
            .unwrap_or_default(),
    }
}

/// Runs one write in its own transaction and commits it when it succeeds.
macro_rules! write {
    ($db:expr, |$tx:ident| $body:expr) => {{
        let mut $tx = $db.store.begin().await.unwrap();
        let r = $body.await;
        if r.is_ok() {
            $tx.commit().await.unwrap();
        }
        r
    }};
}

async fn case_round_trip_with_external_ref(backend: casebridge_testkit::TestBackend) {
    let db = TestDb::new(backend).await;
    let a = company(&db, "Firm A").await;
    let ct = case_type(&db, a, "Auto").await;
    let created = write!(db, |tx| cases::create(
        &mut tx,
        a,
        &new_case(&ct, "Doe v. Roe", Some("L-1")),
        Timestamp::now()
    ))
    .unwrap();
    assert_eq!(created.custom_fields, json!({"injury": "back"}));
    assert_eq!(created.case_status_id, None);
    let mut conn = db.store.conn().await.unwrap();
    let found = cases::find_by_ref(&mut conn, a, "lawruler", "L-1")
        .await
        .unwrap();
    assert_eq!(found, created);
    drop(conn);

    // The same ref on another case of the same company is a conflict, and nothing is kept.
    let err = write!(db, |tx| cases::create(
        &mut tx,
        a,
        &new_case(&ct, "Other", Some("L-1")),
        Timestamp::now()
    ))
    .unwrap_err();
    assert!(
        matches!(err, StoreError::Conflict(ref m) if m.contains("lawruler/L-1")),
        "{err:?}"
    );
    let mut conn = db.store.conn().await.unwrap();
    let all = cases::list(
        &mut conn,
        a,
        &CaseFilter::default(),
        &PageRequest::default(),
    )
    .await
    .unwrap();
    assert_eq!(all.items.len(), 1);
}
casebridge_testkit::backend_test!(case_round_trip_with_external_ref);

async fn another_company_sees_nothing(backend: casebridge_testkit::TestBackend) {
    let db = TestDb::new(backend).await;
    let a = company(&db, "Firm A").await;
    let b = company(&db, "Firm B").await;
    let ct = case_type(&db, a, "Auto").await;
    let case = write!(db, |tx| cases::create(
        &mut tx,
        a,
        &new_case(&ct, "A's case", Some("7")),
        Timestamp::now()
    ))
    .unwrap();
    let mut conn = db.store.conn().await.unwrap();
    assert!(matches!(
        cases::get(&mut conn, b, case.id).await,
        Err(StoreError::NotFound)
    ));
    assert!(matches!(
        cases::find_by_ref(&mut conn, b, "lawruler", "7").await,
        Err(StoreError::NotFound)
    ));
    drop(conn);
    // B may use the same external id for its own case, and cannot use A's case type.
    let err = write!(db, |tx| cases::create(
        &mut tx,
        b,
        &new_case(&ct, "B's case", Some("7")),
        Timestamp::now()
    ))
    .unwrap_err();
    assert!(
        matches!(err, StoreError::Invalid(ref v) if v.errors[0].field == "case_type_id"),
        "{err:?}"
    );
    let ct_b = case_type(&db, b, "Auto").await;
    write!(db, |tx| cases::create(
        &mut tx,
        b,
        &new_case(&ct_b, "B's case", Some("7")),
        Timestamp::now()
    ))
    .unwrap();
    let mut conn = db.store.conn().await.unwrap();
    let page = cases::list(
        &mut conn,
        a,
        &CaseFilter::default(),
        &PageRequest::default(),
    )
    .await
    .unwrap();
    assert_eq!(page.items.len(), 1);
}
casebridge_testkit::backend_test!(another_company_sees_nothing);

async fn pagination_walks_every_row_once(backend: casebridge_testkit::TestBackend) {
    let db = TestDb::new(backend).await;
    let a = company(&db, "Firm A").await;
    let ct = case_type(&db, a, "Auto").await;
    let mut made = Vec::new();
    for i in 0..7 {
        made.push(
            write!(db, |tx| cases::create(
                &mut tx,
                a,
                &new_case(&ct, &format!("c{i}"), None),
                Timestamp::now()
            ))
            .unwrap()
            .id,
        );
    }
    let mut conn = db.store.conn().await.unwrap();
    let mut seen = Vec::new();
    let mut page = PageRequest::first(3);
    loop {
        let p = cases::list(&mut conn, a, &CaseFilter::default(), &page)
            .await
            .unwrap();
        seen.extend(p.items.iter().map(|c| c.id));
        match p.next_after {
            Some(after) => {
                page = PageRequest {
                    after: Some(after),
                    limit: 3,
                }
            }
            None => break,
        }
    }
    assert_eq!(seen, made);
}
casebridge_testkit::backend_test!(pagination_walks_every_row_once);

async fn case_type_in_use_cannot_be_deleted(backend: casebridge_testkit::TestBackend) {
    let db = TestDb::new(backend).await;
    let a = company(&db, "Firm A").await;
    let ct = case_type(&db, a, "Auto").await;
    let case = write!(db, |tx| cases::create(
        &mut tx,
        a,
        &new_case(&ct, "x", None),
        Timestamp::now()
    ))
    .unwrap();
    let err = write!(db, |tx| named::delete(&mut tx, a, NamedKind::CaseType, &ct)).unwrap_err();
    assert!(matches!(err, StoreError::Conflict(_)), "{err:?}");
    write!(db, |tx| cases::delete(&mut tx, a, case.id)).unwrap();
    write!(db, |tx| named::delete(&mut tx, a, NamedKind::CaseType, &ct)).unwrap();
}
casebridge_testkit::backend_test!(case_type_in_use_cannot_be_deleted);

/// Every change to a webhook or its secrets bumps its version in the change's transaction (what
/// the delivery handler's cache compares); a rolled-back change bumps nothing.
async fn every_webhook_change_bumps_its_version(backend: casebridge_testkit::TestBackend) {
    use casebridge_domain::events::{Subscription, DEFAULT_MAX_IN_FLIGHT};
    use casebridge_domain::ids::WebhookId;
    use casebridge_store::webhooks::{self, NewWebhook, WebhookPatch};

    let db = TestDb::new(backend).await;
    let c = company(&db, "Versions").await;
    let now = Timestamp::now();
    let id = WebhookId::new();
    let new = NewWebhook {
        id,
        name: "Consumer".into(),
        url: "https://consumer.example/hook".into(),
        subscription: Subscription::default(),
        app_key_sealed: None,
        active: true,
        max_in_flight: DEFAULT_MAX_IN_FLIGHT,
    };
    let mut tx = db.store.begin().await.unwrap();
    let mut last = webhooks::create(&mut tx, c, &new, "sealed-1", now)
        .await
        .unwrap()
        .version;
    tx.commit().await.unwrap();

    let version = |db: &TestDb| {
        let store = db.store.clone();
        async move {
            let mut conn = store.conn().await.unwrap();
            webhooks::get(&mut conn, c, id).await.unwrap().version
        }
    };
    let patches = [
        WebhookPatch {
            url: Some("https://consumer.example/other".into()),
            ..WebhookPatch::default()
        },
        WebhookPatch {
            max_in_flight: Some(8),
            ..WebhookPatch::default()
        },
        WebhookPatch {
            active: Some(false),
            ..WebhookPatch::default()
        },
        WebhookPatch {
            active: Some(true),
            ..WebhookPatch::default()
        },
    ];
    for patch in &patches {
        let mut tx = db.store.begin().await.unwrap();
        webhooks::update(&mut tx, c, id, patch, now).await.unwrap();
        tx.commit().await.unwrap();
        let v = version(&db).await;
        assert!(v > last, "{patch:?}: {v} after {last}");
        last = v;
    }

    let mut conn = db.store.conn().await.unwrap();
    webhooks::disable(&mut conn, c, id, "the endpoint answered 410 Gone", now)
        .await
        .unwrap();
    drop(conn);
    let v = version(&db).await;
    assert!(v > last, "disabled by a 410");
    last = v;

    // A rotation: the new secret and the old ones' end.
    let mut tx = db.store.begin().await.unwrap();
    let keep = webhooks::add_secret(&mut tx, c, id, "sealed-2", now)
        .await
        .unwrap();
    webhooks::expire_other_secrets(&mut tx, c, id, keep, now)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    let v = version(&db).await;
    assert!(v > last, "rotated");
    last = v;

    // Rolled back: neither the change nor the bump.
    let mut tx = db.store.begin().await.unwrap();
    webhooks::add_secret(&mut tx, c, id, "sealed-3", now)
        .await
        .unwrap();
    drop(tx);
    assert_eq!(version(&db).await, last);
    let mut conn = db.store.conn().await.unwrap();
    assert_eq!(
        webhooks::active_secrets(&mut conn, c, id, now)
            .await
            .unwrap()
            .len(),
        1
    );
}
casebridge_testkit::backend_test!(every_webhook_change_bumps_its_version);
