//! The throwaway PostgreSQL cluster a machine without a running server gets: started here
//! directly (this machine may well have a server on 5432), it takes connections, databases and
//! the store's migrations.

use casebridge_store::{Store, StoreOptions};
use sqlx::{Connection, Executor, PgConnection};

#[tokio::test]
async fn a_throwaway_cluster_serves_the_suite() {
    let admin = casebridge_testkit::cluster::throwaway_cluster_url();
    assert!(!admin.contains(":5432/"), "a port of its own: {admin}");
    let mut conn = PgConnection::connect(admin)
        .await
        .expect("trust auth on loopback");
    let (version,): (String,) = sqlx::query_as("SHOW server_version")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert!(!version.is_empty());
    conn.execute("CREATE DATABASE cb_cluster_check")
        .await
        .unwrap();
    let url = format!("{}/cb_cluster_check", admin.rsplit_once('/').unwrap().0);
    let store = Store::connect(&url, StoreOptions::default()).await.unwrap();
    store.migrate().await.expect("migrations apply");
    store.close().await;
    // Started once per process.
    assert_eq!(casebridge_testkit::cluster::throwaway_cluster_url(), admin);
}
