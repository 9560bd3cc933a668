//! The SmartAdvocate client against the simulator: the token's life (cached, refreshed before
//! `exp`, renewed once after a 401), the CaseInfo array with its `LIKE` matching and second
//! statuses, contact lookup, and every answer classified. No database: nothing here is stored.

use std::time::Duration;

use casebridge_crm::smartadvocate::client::{
    Credentials, SmartAdvocateClient, SmartAdvocateError, SmartAdvocatePaths,
};
use casebridge_sim::smartadvocate::{Operation, SmartAdvocateSim, DEMO_PASSWORD, DEMO_USERNAME};

fn client_with(base: &str, timeout: Duration) -> SmartAdvocateClient {
    let http = reqwest::Client::builder().timeout(timeout).build().unwrap();
    SmartAdvocateClient::new(
        http,
        Credentials::new(base, DEMO_USERNAME, DEMO_PASSWORD),
        SmartAdvocatePaths::default(),
    )
    .unwrap()
}

fn client(base: &str) -> SmartAdvocateClient {
    client_with(base, Duration::from_secs(10))
}

/// The statuses answered to one operation, in order.
fn statuses(sim: &SmartAdvocateSim, op: Operation) -> Vec<u16> {
    sim.requests_of(op).iter().map(|r| r.status).collect()
}

#[tokio::test]
async fn the_token_is_cached_sent_as_bearer_and_refreshed_before_it_expires() {
    let sa = SmartAdvocateSim::builder()
        .token_ttl(Duration::from_secs(2))
        .build()
        .start()
        .await;
    let c = client(&sa.base_url);
    c.case_types().await.unwrap();
    c.status_types().await.unwrap();
    assert_eq!(sa.sim.tokens_issued(), 1, "one token for both calls");
    let auth = &sa.sim.requests_of(Operation::Authenticate)[0];
    assert_eq!(
        auth.json.as_ref().unwrap(),
        &serde_json::json!({"Username": DEMO_USERNAME, "Password": DEMO_PASSWORD})
    );
    let read = &sa.sim.requests_of(Operation::CaseTypes)[0];
    assert!(read
        .header("authorization")
        .unwrap()
        .starts_with("Bearer ey"));

    // A 2-second token is replaced a quarter of its life early (1.5 s): after 1.6 s the client
    // authenticates again *before* calling, so SmartAdvocate never answers 401.
    tokio::time::sleep(Duration::from_millis(1600)).await;
    c.case_types().await.unwrap();
    assert_eq!(sa.sim.tokens_issued(), 2);
    assert!(
        sa.sim.requests().iter().all(|r| r.status != 401),
        "{:?}",
        sa.sim.requests()
    );
}

#[tokio::test]
async fn a_token_expired_mid_run_is_renewed_once_and_the_call_retried() {
    let sa = SmartAdvocateSim::new().start().await;
    let c = client(&sa.base_url);
    c.case_types().await.unwrap();
    sa.sim.expire_tokens();
    let types = c.case_types().await.unwrap();
    assert_eq!(types.len(), sa.sim.case_types().len());
    assert_eq!(statuses(&sa.sim, Operation::CaseTypes), [200, 401, 200]);
    assert_eq!(sa.sim.tokens_issued(), 2);

    // A token refused right after it was issued is a configuration error, not a loop.
    let sa = SmartAdvocateSim::builder()
        .token_ttl(Duration::ZERO)
        .build()
        .start()
        .await;
    let err = client(&sa.base_url).case_types().await.unwrap_err();
    assert!(matches!(err, SmartAdvocateError::Config(_)), "{err:?}");
    assert!(err.is_config());
    assert_eq!(statuses(&sa.sim, Operation::CaseTypes), [401, 401]);
}

#[tokio::test]
async fn case_info_is_an_array_matched_like_sql_with_second_statuses() {
    let sa = SmartAdvocateSim::new().start().await;
    let c = client(&sa.base_url);
    let all = c.cases_by_number("9000%").await.unwrap();
    assert_eq!(all.len(), 2);
    let case = c.case_by_number("9000002").await.unwrap().unwrap();
    assert_eq!(case.case_type.as_deref(), Some("Premises Liability"));
    assert_eq!(case.case_status.as_deref(), Some("Signed Up"));
    let second: Vec<(&str, &str)> = case
        .second_statuses
        .iter()
        .map(|s| (s.status_type_name.as_str(), s.status_name.as_str()))
        .collect();
    assert_eq!(
        second,
        [
            ("Dialer Status", "Do not Dial"),
            ("Last Dialer Disposition", "Busy")
        ]
    );
    assert_eq!(
        c.case_by_number("900000").await.unwrap(),
        None,
        "a prefix is not the case"
    );

    let found = c.contact_lookup("jan", "", 10).await.unwrap();
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].id, "7001");
    assert_eq!(found[0].email.as_deref(), Some("jane@example.com"));
}

#[tokio::test]
async fn answers_are_classified() {
    let sa = SmartAdvocateSim::new().start().await;
    let c = client(&sa.base_url);

    sa.sim.rate_limit(7, 1);
    let err = c.case_types().await.unwrap_err();
    assert_eq!(
        err,
        SmartAdvocateError::RateLimited {
            retry_after: Some(Duration::from_secs(7))
        }
    );
    assert!(err.is_retryable());

    sa.sim.fail_5xx(1);
    assert!(
        matches!(c.case_types().await.unwrap_err(), SmartAdvocateError::Transient(m) if m.contains("503"))
    );

    sa.sim.empty_bodies(1);
    let err = c.case_types().await.unwrap_err();
    assert!(
        matches!(&err, SmartAdvocateError::Transient(m) if m.contains("empty body")),
        "{err:?}"
    );

    sa.sim.deny(Operation::Udfs);
    let err = c.udfs("1").await.unwrap_err();
    assert_eq!(
        err.to_string(),
        "the API user lacks permission for read UDF definitions"
    );
    assert!(err.is_config() && !err.is_retryable());
    sa.sim.clear_faults();

    let err = c.udfs("999").await.unwrap_err();
    assert!(
        matches!(&err, SmartAdvocateError::Rejected(m) if m.contains("Case type not found")),
        "{err:?}"
    );

    sa.sim.slow(Duration::from_millis(800));
    let slow = client_with(&sa.base_url, Duration::from_millis(300));
    let err = slow.case_types().await.unwrap_err();
    assert!(
        matches!(&err, SmartAdvocateError::Transient(m) if m.contains("timed out")),
        "{err:?}"
    );
    sa.sim.clear_faults();

    // Wrong values and a wrong address, with nothing secret in the messages.
    let wrong = SmartAdvocateClient::new(
        reqwest::Client::new(),
        Credentials::new(&sa.base_url, DEMO_USERNAME, DEMO_PASSWORD.to_lowercase()),
        SmartAdvocatePaths::default(),
    )
    .unwrap();
    assert_eq!(
        wrong.case_types().await.unwrap_err(),
        SmartAdvocateError::WrongCredentials
    );
    let nowhere = client("http://127.0.0.1:9");
    let err = nowhere.case_types().await.unwrap_err();
    assert!(
        matches!(&err, SmartAdvocateError::BaseUrl(m) if m.contains("could not connect")),
        "{err:?}"
    );
    assert!(!err.to_string().contains(DEMO_PASSWORD));
}

/// Every request is vetted against the outbound URL policy right before it is sent: an
/// IP-literal base URL (which never reaches the safe client's resolver) and a name resolving to a
/// private (here: loopback) address are refused, and nothing reaches SmartAdvocate.
#[tokio::test]
async fn every_request_vets_the_base_url_ip_literal_or_name() {
    let sa = SmartAdvocateSim::builder().build().start().await;
    let port = sa
        .base_url
        .trim_end_matches('/')
        .rsplit(':')
        .next()
        .unwrap()
        .trim_end_matches("/CaseSyncAPI")
        .to_owned();
    let policy = std::sync::Arc::new(casebridge_webhooks::policy::UrlPolicy {
        allow_http: true,
        allowed_private: Vec::new(),
    });
    for base in [
        format!("http://127.0.0.1:{port}"),
        format!("http://localhost:{port}"),
    ] {
        let c = SmartAdvocateClient::new(
            casebridge_webhooks::policy::safe_client(policy.clone(), Duration::from_secs(5)),
            Credentials::new(&base, DEMO_USERNAME, DEMO_PASSWORD),
            SmartAdvocatePaths::default(),
        )
        .unwrap()
        .with_policy(policy.clone());
        for r in [
            c.case_types().await.map(|_| ()),
            c.verify().await.map(|_| ()),
        ] {
            match r {
                Err(SmartAdvocateError::BaseUrl(m)) => {
                    assert!(
                        m.contains("refused") && m.contains("loopback"),
                        "{base}: {m}"
                    )
                }
                other => panic!("{base}: not refused by the policy: {other:?}"),
            }
        }
        assert!(
            sa.sim.requests().is_empty(),
            "{base}: {:#?}",
            sa.sim.requests()
        );
    }
}
