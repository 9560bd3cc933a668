//! Recovery from write faults, on both backends.

use casebridge_domain::company::NewCompany;
use casebridge_store::companies;
use casebridge_testkit::TestDb;
use jiff::Timestamp;

/// After SQLite fails a write with "database or disk is full", it has rolled the transaction
/// back by itself and the ROLLBACK of the dropped `Tx` fails. Such a connection must not be
/// handed out again: every later write on it would fail long after space is back. (Ended here
/// by a ROLLBACK the store did not send, which leaves the connection in the same state.)
async fn a_connection_left_in_a_failed_transaction_is_replaced(
    backend: casebridge_testkit::TestBackend,
) {
    let db = TestDb::new(backend).await;
    let mut tx = db.store.begin().await.unwrap();
    sqlx::query("ROLLBACK").execute(&mut *tx).await.unwrap();
    drop(tx);
    for i in 0..40 {
        let mut tx = db
            .store
            .begin()
            .await
            .unwrap_or_else(|e| panic!("write {i}: {e}"));
        let name = format!("Firm {i}");
        companies::create(
            &mut tx,
            &NewCompany::parse(&name, None).unwrap(),
            Timestamp::now(),
        )
        .await
        .unwrap();
        tx.commit().await.unwrap();
    }
}
casebridge_testkit::backend_test!(a_connection_left_in_a_failed_transaction_is_replaced);
