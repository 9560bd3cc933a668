//! URL policy and SSRF-safe client (SPEC §2 W2). Network use is loopback only.

use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use casebridge_webhooks::policy::{
    is_public, safe_client, safe_client_with_dns, AddressClass, DnsCache, PolicyError, UrlPolicy,
    USER_AGENT,
};
use ipnet::IpNet;
use tokio::net::{TcpListener, TcpStream};

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn allowing(nets: &[&str]) -> UrlPolicy {
    UrlPolicy {
        allow_http: false,
        allowed_private: nets.iter().map(|n| n.parse::<IpNet>().unwrap()).collect(),
    }
}

fn local_dev_policy() -> UrlPolicy {
    UrlPolicy {
        allow_http: true,
        ..allowing(&["127.0.0.0/8", "::1/128"])
    }
}

/// One sample address for each non-public class, with the network that admits it.
const CLASSES: &[(&str, &str)] = &[
    ("0.0.0.0", "0.0.0.0/8"),
    ("0.1.2.3", "0.0.0.0/8"),
    ("10.0.0.5", "10.0.0.0/8"),
    ("100.64.0.1", "100.64.0.0/10"),
    ("127.0.0.1", "127.0.0.0/8"),
    ("169.254.169.254", "169.254.0.0/16"),
    ("172.16.0.1", "172.16.0.0/12"),
    ("192.0.0.8", "192.0.0.0/24"),
    ("192.0.2.1", "192.0.2.0/24"),
    ("192.168.1.1", "192.168.0.0/16"),
    ("198.18.0.1", "198.18.0.0/15"),
    ("198.51.100.1", "198.51.100.0/24"),
    ("203.0.113.1", "203.0.113.0/24"),
    ("224.0.0.1", "224.0.0.0/4"),
    ("240.0.0.1", "240.0.0.0/4"),
    ("255.255.255.255", "255.255.255.255/32"),
    ("::", "::/128"),
    ("::1", "::1/128"),
    ("fc00::1", "fc00::/7"),
    ("fd00:ec2::254", "fc00::/7"),
    ("fe80::1", "fe80::/10"),
    ("ff02::1", "ff00::/8"),
    ("2001:db8::1", "2001:db8::/32"),
    ("100::1", "100::/64"),
    ("64:ff9b::a00:1", "64:ff9b::/96"),
    ("::ffff:127.0.0.1", "::ffff:0:0/96"),
    ("::ffff:10.0.0.1", "::ffff:0:0/96"),
    ("::10.0.0.1", "::/96"),
    ("2002:a00:1::", "2002::/16"),
];

#[test]
fn every_non_public_class_is_refused_by_default() {
    let strict = UrlPolicy::default();
    for (addr, _) in CLASSES {
        assert!(!is_public(ip(addr)), "{addr} counted as public");
        let err = strict.check_ip(ip(addr)).unwrap_err();
        assert_eq!(err.kind(), "forbidden_address", "{addr}");
        assert!(err.to_string().ends_with("; destinations must be public"));
    }
}

#[test]
fn a_non_public_address_is_accepted_only_when_its_network_is_allowed() {
    let unrelated = allowing(&["192.0.2.128/25", "2001:db8:1::/48"]);
    for (addr, net) in CLASSES {
        assert!(
            allowing(&[net]).check_ip(ip(addr)).is_ok(),
            "{addr} refused although {net} is allowed"
        );
        assert!(unrelated.check_ip(ip(addr)).is_err(), "{addr}");
    }
}

#[test]
fn ip_literal_urls_are_checked() {
    let strict = UrlPolicy::default();
    for (addr, net) in CLASSES {
        let host = match ip(addr) {
            IpAddr::V4(_) => addr.to_string(),
            IpAddr::V6(_) => format!("[{addr}]"),
        };
        let url = format!("https://{host}:8443/hook");
        let err = strict.check_url(&url).unwrap_err();
        assert_eq!(err.kind(), "forbidden_address", "{url}");
        assert!(allowing(&[net]).check_url(&url).is_ok(), "{url}");
    }
}

#[test]
fn ipv4_mapped_addresses_are_judged_by_the_embedded_address() {
    let strict = UrlPolicy::default();
    let err = strict.check_ip(ip("::ffff:127.0.0.1")).unwrap_err();
    assert!(matches!(
        err,
        PolicyError::ForbiddenAddress {
            class: AddressClass::Loopback,
            ..
        }
    ));
    let err = strict.check_ip(ip("::ffff:10.0.0.1")).unwrap_err();
    assert_eq!(
        err.to_string(),
        "`::ffff:10.0.0.1` is a private address; destinations must be public"
    );
    assert!(strict.check_url("https://[::ffff:127.0.0.1]/").is_err());
    assert!(strict.check_url("https://[::ffff:7f00:1]/").is_err());
    // Allowing the IPv4 network admits its mapped form too (same destination).
    assert!(allowing(&["10.0.0.0/8"])
        .check_ip(ip("::ffff:10.0.0.1"))
        .is_ok());
}

#[test]
fn alternative_ipv4_spellings_are_normalised_and_refused() {
    let strict = UrlPolicy::default();
    for url in [
        "https://0x7f000001/",
        "https://2130706433/",
        "https://127.1/",
        "https://0177.0.0.1/",
        "https://0/",
        "https://169.254.169.254/latest/meta-data/",
        "https://[fd00:ec2::254]/",
    ] {
        assert_eq!(
            strict.check_url(url).unwrap_err().kind(),
            "forbidden_address",
            "{url}"
        );
    }
}

#[test]
fn public_addresses_are_accepted() {
    let strict = UrlPolicy::default();
    for addr in ["8.8.8.8", "1.1.1.1", "2606:4700::1111", "::ffff:8.8.8.8"] {
        assert!(is_public(ip(addr)), "{addr}");
        assert!(strict.check_ip(ip(addr)).is_ok(), "{addr}");
    }
    assert!(strict.check_url("https://8.8.8.8/hook").is_ok());
    assert!(strict.check_url("https://[2606:4700::1111]:8443/").is_ok());
    assert!(strict.check_url("https://hooks.example.com/x?y=1").is_ok());
}

#[test]
fn plain_http_needs_allow_http() {
    let err = UrlPolicy::default()
        .check_url("http://hooks.example.com/")
        .unwrap_err();
    assert_eq!(err.to_string(), "only https:// URLs are allowed");
    assert_eq!(err.kind(), "scheme_not_allowed");

    let permissive = UrlPolicy {
        allow_http: true,
        ..UrlPolicy::default()
    };
    assert!(permissive.check_url("http://hooks.example.com/").is_ok());
    // allow_http does not admit private addresses.
    assert!(permissive.check_url("http://10.0.0.5/").is_err());

    for policy in [UrlPolicy::default(), permissive] {
        for url in [
            "ftp://hooks.example.com/",
            "file:///etc/passwd",
            "gopher://x/",
        ] {
            assert_eq!(
                policy.check_url(url).unwrap_err().kind(),
                "scheme_not_allowed"
            );
        }
    }
    let err = UrlPolicy::default()
        .check_url("ftp://hooks.example.com/")
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "unsupported URL scheme `ftp`; only https:// URLs are allowed"
    );
}

#[test]
fn credentials_in_the_url_are_refused() {
    let strict = UrlPolicy::default();
    for url in [
        "https://user:pass@hooks.example.com/",
        "https://user@hooks.example.com/",
        "https://:pass@hooks.example.com/",
    ] {
        let err = strict.check_url(url).unwrap_err();
        assert_eq!(err.kind(), "credentials_in_url", "{url}");
        assert!(!err.to_string().contains("pass@hooks"), "echoes the URL");
    }
}

#[test]
fn malformed_urls_are_refused() {
    let strict = UrlPolicy::default();
    for url in [
        "",
        "not a url",
        "https://",
        "https://[::1/",
        "hooks.example.com",
    ] {
        assert_eq!(
            strict.check_url(url).unwrap_err().kind(),
            "invalid_url",
            "{url:?}"
        );
    }
}

#[tokio::test]
async fn vet_refuses_localhost_unless_loopback_is_allowed() {
    let err = UrlPolicy::default()
        .vet("https://localhost/hook")
        .await
        .unwrap_err();
    match &err {
        PolicyError::ResolvesToForbiddenAddress { host, ip, class } => {
            assert_eq!(host, "localhost");
            assert!(ip.is_loopback());
            assert_eq!(*class, AddressClass::Loopback);
        }
        other => panic!("unexpected error {other:?}"),
    }
    let msg = err.to_string();
    assert!(
        msg == "`localhost` resolves to 127.0.0.1, which is a loopback address; destinations must be public"
            || msg == "`localhost` resolves to ::1, which is a loopback address; destinations must be public",
        "{msg}"
    );

    let policy = allowing(&["127.0.0.0/8", "::1/128"]);
    let url = policy.vet("https://localhost:8443/hook").await.unwrap();
    let addrs = policy.resolve(&url).await.unwrap();
    assert!(!addrs.is_empty());
    assert!(addrs
        .iter()
        .all(|a| a.ip().is_loopback() && a.port() == 8443));
}

#[tokio::test]
async fn vet_checks_ip_literals_without_resolving() {
    let policy = UrlPolicy {
        allow_http: true,
        ..UrlPolicy::default()
    };
    let err = policy.vet("http://127.0.0.1:9/").await.unwrap_err();
    assert_eq!(
        err.to_string(),
        "`127.0.0.1` is a loopback address; destinations must be public"
    );
    let err = policy.vet("http://[::1]:9/").await.unwrap_err();
    assert_eq!(err.kind(), "forbidden_address");
    assert!(local_dev_policy().vet("http://127.0.0.1:9/").await.is_ok());
    assert_eq!(
        policy
            .vet("http://user:pw@localhost/")
            .await
            .unwrap_err()
            .kind(),
        "credentials_in_url"
    );
}

// ----- the safe client against loopback servers -----

/// A loopback HTTP/1.1 server answering every request with `response`.
struct TestServer {
    addr: SocketAddr,
    connections: Arc<AtomicUsize>,
    requests: Arc<Mutex<Vec<String>>>,
}

impl TestServer {
    async fn start(response: String) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let connections = Arc::new(AtomicUsize::new(0));
        let requests = Arc::new(Mutex::new(Vec::new()));
        let (count, log) = (Arc::clone(&connections), Arc::clone(&requests));
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                count.fetch_add(1, Ordering::SeqCst);
                let (response, log) = (response.clone(), Arc::clone(&log));
                tokio::spawn(async move {
                    if let Some(head) = read_head(&stream).await {
                        log.lock().unwrap().push(head);
                        write_all(&stream, response.as_bytes()).await;
                    }
                });
            }
        });
        Self {
            addr,
            connections,
            requests,
        }
    }

    fn port(&self) -> u16 {
        self.addr.port()
    }

    fn connections(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
    }
}

/// Reads up to the end of the request head (the tests send no bodies).
async fn read_head(stream: &TcpStream) -> Option<String> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
        stream.readable().await.ok()?;
        match stream.try_read(&mut chunk) {
            Ok(0) => return None,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => continue,
            Err(_) => return None,
        }
    }
    Some(String::from_utf8_lossy(&buf).into_owned())
}

async fn write_all(stream: &TcpStream, mut bytes: &[u8]) {
    while !bytes.is_empty() {
        if stream.writable().await.is_err() {
            return;
        }
        match stream.try_write(bytes) {
            Ok(n) => bytes = &bytes[n..],
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => continue,
            Err(_) => return,
        }
    }
}

fn response(status: &str, extra_headers: &str, body: &str) -> String {
    format!(
        "HTTP/1.1 {status}\r\n{extra_headers}Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
}

/// A listener nobody serves: a connection attempt would sit in its accept queue.
async fn silent_listener() -> TcpListener {
    TcpListener::bind("127.0.0.1:0").await.unwrap()
}

async fn assert_never_contacted(listener: &TcpListener) {
    let accepted = tokio::time::timeout(Duration::from_millis(200), listener.accept()).await;
    assert!(accepted.is_err(), "the listener received a connection");
}

fn client(policy: UrlPolicy) -> reqwest::Client {
    safe_client(Arc::new(policy), Duration::from_secs(10))
}

#[tokio::test]
async fn safe_client_reaches_an_allowed_local_server() {
    let server = TestServer::start(response("200 OK", "", "ok")).await;
    let url = format!("http://localhost:{}/hook", server.port());
    let policy = local_dev_policy();
    policy.vet(&url).await.unwrap();

    let res = client(policy).get(&url).send().await.unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.text().await.unwrap(), "ok");
    assert_eq!(server.connections(), 1);
    let head = server.requests.lock().unwrap()[0].to_ascii_lowercase();
    assert!(
        head.contains(&format!(
            "user-agent: {}\r\n",
            USER_AGENT.to_ascii_lowercase()
        )),
        "{head}"
    );
}

#[tokio::test]
async fn safe_client_resolver_refuses_loopback_by_default() {
    let target = silent_listener().await;
    let port = target.local_addr().unwrap().port();

    // Default policy, https: the request reaches the resolver, which refuses.
    let err = client(UrlPolicy::default())
        .get(format!("https://localhost:{port}/"))
        .send()
        .await
        .unwrap_err();
    let policy_err = PolicyError::find_in(&err).expect("a policy error in the chain");
    assert_eq!(policy_err.kind(), "resolves_to_forbidden_address");
    assert!(policy_err
        .to_string()
        .starts_with("`localhost` resolves to "));

    // Default policy, http: refused before any lookup (https only).
    let err = client(UrlPolicy::default())
        .get(format!("http://localhost:{port}/"))
        .send()
        .await
        .unwrap_err();
    assert!(err.is_builder(), "{err:?}");

    // http allowed but no private networks: the resolver refuses.
    let http_only = UrlPolicy {
        allow_http: true,
        ..UrlPolicy::default()
    };
    let err = client(http_only)
        .get(format!("http://localhost:{port}/"))
        .send()
        .await
        .unwrap_err();
    assert!(matches!(
        PolicyError::find_in(&err),
        Some(PolicyError::ResolvesToForbiddenAddress {
            class: AddressClass::Loopback,
            ..
        })
    ));

    assert_never_contacted(&target).await;
}

#[tokio::test]
async fn safe_client_does_not_follow_redirects() {
    let redirect_target = silent_listener().await;
    let location = format!(
        "http://127.0.0.1:{}/",
        redirect_target.local_addr().unwrap().port()
    );
    let server = TestServer::start(response(
        "302 Found",
        &format!("Location: {location}\r\n"),
        "",
    ))
    .await;

    let res = client(local_dev_policy())
        .post(format!("http://localhost:{}/hook", server.port()))
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 302);
    assert_eq!(res.headers()["location"], location.as_str());
    assert_eq!(server.connections(), 1);
    assert_never_contacted(&redirect_target).await;
}

#[tokio::test]
async fn a_cached_dns_answer_saves_the_lookup_and_is_still_vetted_at_every_use() {
    let server = TestServer::start(response("200 OK", "", "ok")).await;
    let port = server.port();
    let dns = DnsCache::default();
    let policy = Arc::new(local_dev_policy());
    let client = safe_client_with_dns(policy.clone(), Duration::from_secs(10), dns.clone());

    // A name no DNS server knows is reached through its cached answer: no lookup was made.
    dns.insert("cached.invalid", vec![ip("127.0.0.1")]);
    let url = format!("http://cached.invalid:{port}/hook");
    policy.vet_with(&url, &dns).await.unwrap();
    let res = client.get(&url).send().await.unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(server.connections(), 1);

    // The record is re-pointed at a forbidden address (rebinding) while an answer is cached:
    // the cached answer is checked again, by `vet_with` and by the resolver on the connect path
    // (a request sent without `vet_with` first is refused too).
    let target = silent_listener().await;
    let port = target.local_addr().unwrap().port();
    dns.insert("localhost", vec![ip("169.254.169.254")]);
    let url = format!("http://localhost:{port}/hook");
    let err = policy.vet_with(&url, &dns).await.unwrap_err();
    assert_eq!(
        err,
        PolicyError::ResolvesToForbiddenAddress {
            host: "localhost".into(),
            ip: ip("169.254.169.254"),
            class: AddressClass::LinkLocal,
        }
    );
    let err = client.get(&url).send().await.unwrap_err();
    assert!(
        matches!(
            PolicyError::find_in(&err),
            Some(PolicyError::ResolvesToForbiddenAddress {
                class: AddressClass::LinkLocal,
                ..
            })
        ),
        "{err:?}"
    );
    assert_never_contacted(&target).await;
    // Without the cache the same name resolves (and is allowed) as usual.
    policy.vet(&url).await.unwrap();
}

#[tokio::test]
async fn a_dns_answer_is_kept_only_for_its_ttl() {
    let policy = local_dev_policy();
    let dns = DnsCache::new(16, Duration::from_millis(50));
    dns.insert("cached.invalid", vec![ip("127.0.0.1")]);
    policy
        .vet_with("http://cached.invalid/hook", &dns)
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(80)).await;
    let err = policy
        .vet_with("http://cached.invalid/hook", &dns)
        .await
        .unwrap_err();
    assert_eq!(err.kind(), "unresolvable_host", "{err}");
}
