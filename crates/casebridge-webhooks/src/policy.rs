//! Outbound URL policy and the SSRF-safe HTTP client (SPEC §2 W2, §9a).
//!
//! Every outbound destination (webhook endpoints, CRM and scheduling APIs) must be `https://` and
//! resolve only to public IP addresses. An operator can relax this for development and tests with
//! `CASEBRIDGE_ALLOW_PRIVATE_NETWORKS` (listed CIDRs become reachable) and `CASEBRIDGE_ALLOW_HTTP`;
//! both map onto [`UrlPolicy`].
//!
//! # Two layers
//!
//! 1. [`UrlPolicy::vet`] checks a URL's shape (scheme, no credentials, a host), then checks the
//!    address of an IP-literal host, or resolves a hostname and checks every address it resolves
//!    to. Call it when a URL is saved (to give the admin a readable error) and again before every
//!    request, because DNS can change and because reqwest never sends IP-literal hosts through a
//!    resolver: `vet` is the only layer that sees `https://10.0.0.5/`.
//! 2. [`safe_client`] builds a `reqwest::Client` whose DNS resolver applies the same check to the
//!    addresses the connection is actually made to. A hostname that passed `vet` and was then
//!    re-pointed at a private address (DNS rebinding) fails here, before any connection is opened:
//!    the vetted address is the address connected to. The client follows no redirects (a `3xx` is
//!    returned to the caller, never chased to an unvetted location) and ignores system proxies
//!    (a proxy would do its own resolution, out of our sight).
//!
//! # The DNS cache
//!
//! A [`DnsCache`] (the webhook delivery runtime's, through [`safe_client_with_dns`] and
//! [`UrlPolicy::vet_with`]) keeps a host's answer for a short time ([`DnsCache::DEFAULT_TTL`]),
//! so an attempt does not wait for a lookup. It saves the lookup only: a cached answer goes
//! through the same check at every use, by `vet` and by the client's resolver, so the address
//! connected to is vetted at every attempt whether its answer is fresh or cached.
//!
//! A request refused by the resolver fails with a `reqwest::Error` whose source chain holds the
//! [`PolicyError`]; [`PolicyError::find_in`] digs it out so callers can classify the failure as a
//! configuration problem rather than a transient network error.

use std::collections::HashSet;
use std::error::Error as StdError;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ipnet::IpNet;
use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use url::{Host, Url};

/// How long a DNS lookup may take before the host is reported as unresolvable.
pub const RESOLVE_TIMEOUT: Duration = Duration::from_secs(5);

/// Upper bound on the TCP/TLS connect phase of [`safe_client`] (never longer than its total timeout).
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// The `User-Agent` sent by [`safe_client`].
pub const USER_AGENT: &str = concat!("casebridge-webhooks/", env!("CARGO_PKG_VERSION"));

/// Which outbound destinations are acceptable.
///
/// [`Default`] is the production setting: `https://` only, public addresses only.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UrlPolicy {
    /// Permit plain `http://` destinations (`CASEBRIDGE_ALLOW_HTTP`).
    pub allow_http: bool,
    /// Non-public networks that may nevertheless be reached (`CASEBRIDGE_ALLOW_PRIVATE_NETWORKS`).
    pub allowed_private: Vec<IpNet>,
}

impl UrlPolicy {
    /// Checks a URL's shape without touching the network: it parses, its scheme is `https` (or
    /// `http` when allowed), it carries no `user:pass@`, it has a host, and an IP-literal host is
    /// an allowed address. Hostnames are not resolved here; see [`UrlPolicy::vet`].
    pub fn check_url(&self, raw: &str) -> Result<Url, PolicyError> {
        let url = Url::parse(raw.trim()).map_err(PolicyError::InvalidUrl)?;
        match url.scheme() {
            "https" => {}
            "http" if self.allow_http => {}
            "http" => return Err(PolicyError::HttpNotAllowed),
            other => {
                return Err(PolicyError::UnsupportedScheme {
                    scheme: other.to_owned(),
                    allow_http: self.allow_http,
                })
            }
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err(PolicyError::CredentialsInUrl);
        }
        match url.host() {
            None | Some(Host::Domain("")) => return Err(PolicyError::MissingHost),
            Some(Host::Domain(_)) => {}
            Some(Host::Ipv4(ip)) => self.check_ip(IpAddr::V4(ip))?,
            Some(Host::Ipv6(ip)) => self.check_ip(IpAddr::V6(ip))?,
        }
        Ok(url)
    }

    /// Accepts a public address, or a non-public one inside [`UrlPolicy::allowed_private`].
    ///
    /// For addresses that embed an IPv4 address (IPv4-mapped `::ffff:a.b.c.d`, IPv4-compatible
    /// `::a.b.c.d`, NAT64 `64:ff9b::/96`, 6to4 `2002::/16`), an allowed network containing either
    /// the address itself or the embedded IPv4 address is enough.
    pub fn check_ip(&self, ip: IpAddr) -> Result<(), PolicyError> {
        let Some(class) = address_class(ip) else {
            return Ok(());
        };
        if self.is_allowed_private(ip) {
            return Ok(());
        }
        Err(PolicyError::ForbiddenAddress { ip, class })
    }

    /// Resolves the URL's host (with a [`RESOLVE_TIMEOUT`]) and returns its socket addresses, all
    /// of which passed [`UrlPolicy::check_ip`]. A host with even one disallowed address is
    /// refused, so a name resolving to both a public and a private address cannot be used.
    ///
    /// This checks the host only; use [`UrlPolicy::vet`] for the whole URL.
    pub async fn resolve(&self, url: &Url) -> Result<Vec<SocketAddr>, PolicyError> {
        self.resolve_cached(url, None).await
    }

    async fn resolve_cached(
        &self,
        url: &Url,
        dns: Option<&DnsCache>,
    ) -> Result<Vec<SocketAddr>, PolicyError> {
        let port = url.port_or_known_default().unwrap_or(0);
        match url.host() {
            None => Err(PolicyError::MissingHost),
            Some(Host::Ipv4(ip)) => self.literal(IpAddr::V4(ip), port),
            Some(Host::Ipv6(ip)) => self.literal(IpAddr::V6(ip), port),
            Some(Host::Domain(domain)) => self.resolve_host(domain, port, dns).await,
        }
    }

    /// The full pre-request check: [`UrlPolicy::check_url`], then [`UrlPolicy::resolve`] for a
    /// hostname. Call before every request, in addition to using [`safe_client`]: IP-literal URLs
    /// never reach the client's resolver, so this is the layer that refuses them.
    pub async fn vet(&self, raw: &str) -> Result<Url, PolicyError> {
        self.vet_cached(raw, None).await
    }

    /// [`UrlPolicy::vet`], taking a hostname's answer from `dns` while it is fresh (and storing
    /// a new one there). The answer is checked either way.
    pub async fn vet_with(&self, raw: &str, dns: &DnsCache) -> Result<Url, PolicyError> {
        self.vet_cached(raw, Some(dns)).await
    }

    async fn vet_cached(&self, raw: &str, dns: Option<&DnsCache>) -> Result<Url, PolicyError> {
        let url = self.check_url(raw)?;
        if let Some(Host::Domain(_)) = url.host() {
            self.resolve_cached(&url, dns).await?;
        }
        Ok(url)
    }

    fn literal(&self, ip: IpAddr, port: u16) -> Result<Vec<SocketAddr>, PolicyError> {
        self.check_ip(ip)?;
        Ok(vec![SocketAddr::new(ip, port)])
    }

    /// Resolves `host` (or takes its fresh answer from `dns`) and checks every address, cached
    /// or not; shared by [`UrlPolicy::resolve`], [`UrlPolicy::vet_with`] and the client's
    /// resolver.
    async fn resolve_host(
        &self,
        host: &str,
        port: u16,
        dns: Option<&DnsCache>,
    ) -> Result<Vec<SocketAddr>, PolicyError> {
        if let Some(ips) = dns.and_then(|c| c.get(host)) {
            return self.check_resolved(host, ips.iter().map(|ip| SocketAddr::new(*ip, port)));
        }
        let unresolvable = |reason: String| PolicyError::Unresolvable {
            host: host.to_owned(),
            reason,
        };
        let lookup = tokio::time::timeout(RESOLVE_TIMEOUT, tokio::net::lookup_host((host, port)));
        let found: Vec<SocketAddr> = match lookup.await {
            Err(_elapsed) => {
                return Err(unresolvable(format!(
                    "timed out after {} s",
                    RESOLVE_TIMEOUT.as_secs()
                )))
            }
            Ok(Err(err)) => return Err(unresolvable(err.to_string())),
            Ok(Ok(found)) => found.collect(),
        };
        if let Some(cache) = dns {
            // The answer as it came (not the verdict): every use checks it again.
            cache.insert(host, found.iter().map(SocketAddr::ip).collect());
        }
        self.check_resolved(host, found)
    }

    /// Checks every resolved address: one disallowed address refuses the host.
    fn check_resolved(
        &self,
        host: &str,
        found: impl IntoIterator<Item = SocketAddr>,
    ) -> Result<Vec<SocketAddr>, PolicyError> {
        let mut seen = HashSet::new();
        let mut addrs = Vec::new();
        for addr in found {
            if !seen.insert(addr) {
                continue;
            }
            if let Err(PolicyError::ForbiddenAddress { ip, class }) = self.check_ip(addr.ip()) {
                return Err(PolicyError::ResolvesToForbiddenAddress {
                    host: host.to_owned(),
                    ip,
                    class,
                });
            }
            addrs.push(addr);
        }
        if addrs.is_empty() {
            return Err(PolicyError::Unresolvable {
                host: host.to_owned(),
                reason: "no addresses found".to_owned(),
            });
        }
        tracing::trace!(host, addrs = ?addrs, "resolved outbound host");
        Ok(addrs)
    }

    fn is_allowed_private(&self, ip: IpAddr) -> bool {
        let embedded = match ip {
            IpAddr::V6(v6) => embedded_ipv4(v6).map(IpAddr::V4),
            IpAddr::V4(_) => None,
        };
        self.allowed_private
            .iter()
            .any(|net| net.contains(&ip) || embedded.is_some_and(|v4| net.contains(&v4)))
    }
}

/// A host's addresses as looked up, and when.
type Answer = (Instant, Arc<[IpAddr]>);

/// Recent DNS answers by host, bounded in size and age, shared by a client's resolver and
/// [`UrlPolicy::vet_with`]. It holds answers, not verdicts: each use checks the addresses again.
/// Failed lookups are not kept. Cloning shares the cache.
#[derive(Clone)]
pub struct DnsCache {
    answers: Arc<quick_cache::sync::Cache<String, Answer>>,
    ttl: Duration,
}

impl DnsCache {
    /// How long an answer is used: short, so a changed record is followed within it.
    pub const DEFAULT_TTL: Duration = Duration::from_secs(30);
    /// How many hosts are kept at most (the least recently used go first).
    pub const DEFAULT_CAPACITY: usize = 4096;

    pub fn new(capacity: usize, ttl: Duration) -> Self {
        Self {
            answers: Arc::new(quick_cache::sync::Cache::new(capacity)),
            ttl,
        }
    }

    /// The answer for `host` if it is younger than the TTL.
    fn get(&self, host: &str) -> Option<Arc<[IpAddr]>> {
        let (at, ips) = self.answers.get(host)?;
        if at.elapsed() < self.ttl {
            Some(ips)
        } else {
            self.answers.remove(host);
            None
        }
    }

    /// Stores an answer for `host`, as a lookup does. Public so tests can stand in for a DNS
    /// server (a record re-pointed at a forbidden address is still refused at every use).
    pub fn insert(&self, host: &str, ips: Vec<IpAddr>) {
        self.answers
            .insert(host.to_owned(), (Instant::now(), ips.into()));
    }
}

impl Default for DnsCache {
    fn default() -> Self {
        Self::new(Self::DEFAULT_CAPACITY, Self::DEFAULT_TTL)
    }
}

impl fmt::Debug for DnsCache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DnsCache")
            .field("hosts", &self.answers.len())
            .field("ttl", &self.ttl)
            .finish()
    }
}

/// Why an address is not a public destination.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum AddressClass {
    /// `0.0.0.0/8` ("this network"), `::`.
    Unspecified,
    /// `127.0.0.0/8`, `::1`.
    Loopback,
    /// `10/8`, `172.16/12`, `192.168/16`, `fc00::/7` (unique local), `fec0::/10` (site-local),
    /// `64:ff9b:1::/48` (local-use NAT64).
    Private,
    /// `100.64.0.0/10` (carrier-grade NAT).
    SharedAddressSpace,
    /// `169.254.0.0/16` (includes the `169.254.169.254` cloud metadata service), `fe80::/10`.
    LinkLocal,
    /// `192.0.0.0/24`, `2001::/23`.
    ProtocolAssignment,
    /// `192.0.2.0/24`, `198.51.100.0/24`, `203.0.113.0/24`, `2001:db8::/32`, `3fff::/20`.
    Documentation,
    /// `198.18.0.0/15`.
    Benchmarking,
    /// `224.0.0.0/4`, `ff00::/8`.
    Multicast,
    /// `255.255.255.255`.
    Broadcast,
    /// `100::/64`.
    Discard,
    /// `240.0.0.0/4`, `192.88.99.0/24` (deprecated 6to4 relay), IPv6 outside `2000::/3`.
    Reserved,
}

impl AddressClass {
    /// A stable snake_case name, for logs and API error details.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Unspecified => "unspecified",
            Self::Loopback => "loopback",
            Self::Private => "private",
            Self::SharedAddressSpace => "shared_address_space",
            Self::LinkLocal => "link_local",
            Self::ProtocolAssignment => "protocol_assignment",
            Self::Documentation => "documentation",
            Self::Benchmarking => "benchmarking",
            Self::Multicast => "multicast",
            Self::Broadcast => "broadcast",
            Self::Discard => "discard",
            Self::Reserved => "reserved",
        }
    }
}

/// Reads as a noun phrase: "`10.0.0.5` is {class}".
impl fmt::Display for AddressClass {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Unspecified => "an unspecified (\"this network\") address",
            Self::Loopback => "a loopback address",
            Self::Private => "a private address",
            Self::SharedAddressSpace => "a carrier-grade NAT (shared) address",
            Self::LinkLocal => "a link-local address",
            Self::ProtocolAssignment => "an IETF protocol-assignment address",
            Self::Documentation => "a documentation-only address",
            Self::Benchmarking => "a benchmarking address",
            Self::Multicast => "a multicast address",
            Self::Broadcast => "the broadcast address",
            Self::Discard => "a discard-only address",
            Self::Reserved => "a reserved address",
        })
    }
}

/// `true` when `ip` is a globally routable unicast address.
pub fn is_public(ip: IpAddr) -> bool {
    address_class(ip).is_none()
}

/// The reason `ip` is not public, or `None` when it is. Addresses that embed an IPv4 address
/// (IPv4-mapped, IPv4-compatible, NAT64 `64:ff9b::/96`, 6to4) are judged by the embedded address.
pub fn address_class(ip: IpAddr) -> Option<AddressClass> {
    match ip {
        IpAddr::V4(v4) => ipv4_class(v4),
        IpAddr::V6(v6) => ipv6_class(v6),
    }
}

fn ipv4_class(ip: Ipv4Addr) -> Option<AddressClass> {
    use AddressClass::*;
    let [a, b, c, _] = ip.octets();
    let class = match (a, b, c) {
        (0, _, _) => Unspecified,
        (10, _, _) => Private,
        (100, 64..=127, _) => SharedAddressSpace,
        (127, _, _) => Loopback,
        (169, 254, _) => LinkLocal,
        (172, 16..=31, _) => Private,
        (192, 0, 0) => ProtocolAssignment,
        (192, 0, 2) | (198, 51, 100) | (203, 0, 113) => Documentation,
        (192, 88, 99) => Reserved,
        (192, 168, _) => Private,
        (198, 18..=19, _) => Benchmarking,
        (224..=239, _, _) => Multicast,
        _ if ip == Ipv4Addr::BROADCAST => Broadcast,
        (240..=255, _, _) => Reserved,
        _ => return None,
    };
    Some(class)
}

fn ipv6_class(ip: Ipv6Addr) -> Option<AddressClass> {
    use AddressClass::*;
    if ip.is_unspecified() {
        return Some(Unspecified);
    }
    if ip.is_loopback() {
        return Some(Loopback);
    }
    if let Some(v4) = embedded_ipv4(ip) {
        return ipv4_class(v4);
    }
    let s = ip.segments();
    let class = match s {
        [0x64, 0xff9b, 1, ..] => Private,
        [0x100, 0, 0, 0, ..] => Discard,
        [0x2001, 0xdb8, ..] => Documentation,
        [0x2001, 0x0000..=0x01ff, ..] => ProtocolAssignment,
        [0x3fff, 0x0000..=0x0fff, ..] => Documentation,
        [0xfc00..=0xfdff, ..] => Private,
        [0xfe80..=0xfebf, ..] => LinkLocal,
        [0xfec0..=0xfeff, ..] => Private,
        [0xff00..=0xffff, ..] => Multicast,
        [0x2000..=0x3fff, ..] => return None,
        _ => Reserved,
    };
    Some(class)
}

/// The IPv4 address carried by an IPv4-mapped (`::ffff:0:0/96`), IPv4-compatible (`::/96`),
/// NAT64 (`64:ff9b::/96`) or 6to4 (`2002::/16`) address.
fn embedded_ipv4(ip: Ipv6Addr) -> Option<Ipv4Addr> {
    let o = ip.octets();
    let tail = Ipv4Addr::new(o[12], o[13], o[14], o[15]);
    match ip.segments() {
        [0, 0, 0, 0, 0, 0xffff, _, _] | [0, 0, 0, 0, 0, 0, _, _] => Some(tail),
        [0x64, 0xff9b, 0, 0, 0, 0, _, _] => Some(tail),
        [0x2002, ..] => Some(Ipv4Addr::new(o[2], o[3], o[4], o[5])),
        _ => None,
    }
}

/// A destination refused by the [`UrlPolicy`]. Messages are written for the admin who entered the
/// URL; [`PolicyError::kind`] is a stable code for API responses and metrics.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PolicyError {
    /// The text is not a URL. The URL itself is not echoed: it may carry a token.
    #[error("not a valid URL: {0}")]
    InvalidUrl(url::ParseError),
    #[error("only https:// URLs are allowed")]
    HttpNotAllowed,
    #[error("unsupported URL scheme `{scheme}`; {}", allowed_schemes(*allow_http))]
    UnsupportedScheme { scheme: String, allow_http: bool },
    #[error("URLs must not contain a user name or password (`user:pass@`)")]
    CredentialsInUrl,
    #[error("the URL has no host")]
    MissingHost,
    #[error("`{ip}` is {class}; destinations must be public")]
    ForbiddenAddress { ip: IpAddr, class: AddressClass },
    #[error("`{host}` resolves to {ip}, which is {class}; destinations must be public")]
    ResolvesToForbiddenAddress {
        host: String,
        ip: IpAddr,
        class: AddressClass,
    },
    #[error("cannot resolve host `{host}`: {reason}")]
    Unresolvable { host: String, reason: String },
}

fn allowed_schemes(allow_http: bool) -> &'static str {
    if allow_http {
        "only http:// and https:// URLs are allowed"
    } else {
        "only https:// URLs are allowed"
    }
}

impl PolicyError {
    /// A stable snake_case code.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::InvalidUrl(_) => "invalid_url",
            Self::HttpNotAllowed | Self::UnsupportedScheme { .. } => "scheme_not_allowed",
            Self::CredentialsInUrl => "credentials_in_url",
            Self::MissingHost => "missing_host",
            Self::ForbiddenAddress { .. } => "forbidden_address",
            Self::ResolvesToForbiddenAddress { .. } => "resolves_to_forbidden_address",
            Self::Unresolvable { .. } => "unresolvable_host",
        }
    }

    /// Finds a `PolicyError` in an error's source chain, e.g. in the `reqwest::Error` of a request
    /// that [`safe_client`]'s resolver refused.
    pub fn find_in<'a>(err: &'a (dyn StdError + 'static)) -> Option<&'a PolicyError> {
        let mut current = Some(err);
        while let Some(err) = current {
            if let Some(policy) = err.downcast_ref::<PolicyError>() {
                return Some(policy);
            }
            current = err.source();
        }
        None
    }
}

/// The [`safe_client`] builder, for callers that need more settings (default headers, …). Keep the
/// redirect, proxy and resolver settings as they are.
pub fn safe_client_builder(policy: Arc<UrlPolicy>, timeout: Duration) -> reqwest::ClientBuilder {
    builder_with_resolver(PolicyResolver::new(policy.clone()), &policy, timeout)
}

fn builder_with_resolver(
    resolver: PolicyResolver,
    policy: &UrlPolicy,
    timeout: Duration,
) -> reqwest::ClientBuilder {
    reqwest::Client::builder()
        .https_only(!policy.allow_http)
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
        .timeout(timeout)
        .connect_timeout(CONNECT_TIMEOUT.min(timeout))
        .user_agent(USER_AGENT)
        .dns_resolver(Arc::new(resolver))
}

/// An HTTP client that only connects to addresses the policy allows, follows no redirects, uses
/// no proxy and gives up after `timeout` in total. See the [module docs](self) for why
/// [`UrlPolicy::vet`] must still be called before each request.
///
/// # Panics
/// If the TLS backend cannot be initialised (as `reqwest::Client::new` does).
pub fn safe_client(policy: Arc<UrlPolicy>, timeout: Duration) -> reqwest::Client {
    safe_client_builder(policy, timeout)
        .build()
        .expect("the HTTP client (TLS backend) failed to initialise")
}

/// [`safe_client`] with its resolver taking answers from `dns` while they are fresh (and
/// storing new ones there); every answer, cached or not, is checked before it is connected to.
/// Pass the same cache to [`UrlPolicy::vet_with`] so the pre-request check and the connection
/// share one lookup.
///
/// # Panics
/// If the TLS backend cannot be initialised (as `reqwest::Client::new` does).
pub fn safe_client_with_dns(
    policy: Arc<UrlPolicy>,
    timeout: Duration,
    dns: DnsCache,
) -> reqwest::Client {
    builder_with_resolver(
        PolicyResolver::with_cache(policy.clone(), dns),
        &policy,
        timeout,
    )
    .build()
    .expect("the HTTP client (TLS backend) failed to initialise")
}

/// reqwest DNS resolver that returns only addresses passing [`UrlPolicy::check_ip`] and fails the
/// whole lookup if any resolved address is disallowed.
#[derive(Debug, Clone)]
pub struct PolicyResolver {
    policy: Arc<UrlPolicy>,
    dns: Option<DnsCache>,
}

impl PolicyResolver {
    pub fn new(policy: Arc<UrlPolicy>) -> Self {
        Self { policy, dns: None }
    }

    /// A resolver that takes fresh answers from `dns` (and checks them at every use).
    pub fn with_cache(policy: Arc<UrlPolicy>, dns: DnsCache) -> Self {
        Self {
            policy,
            dns: Some(dns),
        }
    }
}

impl Resolve for PolicyResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let policy = Arc::clone(&self.policy);
        let dns = self.dns.clone();
        let host = name.as_str().to_owned();
        Box::pin(async move {
            // Port 0: reqwest fills in the URL's port. The check runs on cached answers too:
            // this is the address the connection is made to.
            let addrs = policy.resolve_host(&host, 0, dns.as_ref()).await?;
            Ok(Box::new(addrs.into_iter()) as Addrs)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn class(ip: &str) -> Option<AddressClass> {
        address_class(ip.parse().unwrap())
    }

    #[test]
    fn ipv4_classes() {
        use AddressClass::*;
        let cases = [
            ("0.0.0.0", Unspecified),
            ("0.1.2.3", Unspecified),
            ("10.0.0.5", Private),
            ("10.255.255.255", Private),
            ("100.64.0.1", SharedAddressSpace),
            ("100.127.255.254", SharedAddressSpace),
            ("127.0.0.1", Loopback),
            ("127.255.0.1", Loopback),
            ("169.254.169.254", LinkLocal),
            ("172.16.0.1", Private),
            ("172.31.255.255", Private),
            ("192.0.0.8", ProtocolAssignment),
            ("192.0.2.1", Documentation),
            ("192.88.99.1", Reserved),
            ("192.168.1.1", Private),
            ("198.18.0.1", Benchmarking),
            ("198.19.255.255", Benchmarking),
            ("198.51.100.7", Documentation),
            ("203.0.113.9", Documentation),
            ("224.0.0.1", Multicast),
            ("239.255.255.250", Multicast),
            ("240.0.0.1", Reserved),
            ("255.255.255.254", Reserved),
            ("255.255.255.255", Broadcast),
        ];
        for (ip, expected) in cases {
            assert_eq!(class(ip), Some(expected), "{ip}");
        }
    }

    #[test]
    fn ipv4_public_neighbours() {
        for ip in [
            "8.8.8.8",
            "1.1.1.1",
            "9.255.255.255",
            "11.0.0.0",
            "100.63.255.255",
            "100.128.0.0",
            "126.255.255.255",
            "128.0.0.0",
            "169.253.255.255",
            "169.255.0.0",
            "172.15.255.255",
            "172.32.0.0",
            "192.0.1.0",
            "192.0.3.0",
            "192.167.255.255",
            "192.169.0.0",
            "198.17.255.255",
            "198.20.0.0",
            "223.255.255.255",
        ] {
            assert_eq!(class(ip), None, "{ip}");
            assert!(is_public(ip.parse().unwrap()), "{ip}");
        }
    }

    #[test]
    fn ipv6_classes() {
        use AddressClass::*;
        let cases = [
            ("::", Unspecified),
            ("::1", Loopback),
            ("fc00::1", Private),
            ("fd00:ec2::254", Private),
            ("fec0::1", Private),
            ("64:ff9b:1::1", Private),
            ("fe80::1", LinkLocal),
            ("febf:ffff::1", LinkLocal),
            ("ff02::1", Multicast),
            ("ff0e::1", Multicast),
            ("2001:db8::1", Documentation),
            ("3fff::1", Documentation),
            ("2001::1", ProtocolAssignment),
            ("2001:1ff::1", ProtocolAssignment),
            ("100::1", Discard),
            ("100::ffff:ffff:ffff:ffff", Discard),
            ("4000::1", Reserved),
            ("5f00::1", Reserved),
            ("1000::1", Reserved),
        ];
        for (ip, expected) in cases {
            assert_eq!(class(ip), Some(expected), "{ip}");
        }
    }

    #[test]
    fn ipv6_embedded_ipv4_is_judged_by_the_ipv4_address() {
        use AddressClass::*;
        let cases = [
            ("::ffff:127.0.0.1", Some(Loopback)),
            ("::ffff:10.0.0.1", Some(Private)),
            ("::ffff:169.254.169.254", Some(LinkLocal)),
            ("::ffff:0.0.0.0", Some(Unspecified)),
            ("::ffff:8.8.8.8", None),
            ("::127.0.0.1", Some(Loopback)),
            ("::192.168.0.1", Some(Private)),
            ("::8.8.8.8", None),
            ("64:ff9b::10.0.0.1", Some(Private)),
            ("64:ff9b::7f00:1", Some(Loopback)),
            ("64:ff9b::8.8.8.8", None),
            ("2002:7f00:1::", Some(Loopback)),
            ("2002:a9fe:a9fe::1", Some(LinkLocal)),
            ("2002:808:808::1", None),
        ];
        for (ip, expected) in cases {
            assert_eq!(class(ip), expected, "{ip}");
        }
    }

    #[test]
    fn ipv6_public() {
        for ip in [
            "2606:4700::1111",
            "2001:4860:4860::8888",
            "2a00:1450:4001::1",
            "2001:200::1",
            "2001:db9::1",
            "3ffe::1",
        ] {
            assert!(is_public(ip.parse().unwrap()), "{ip}");
        }
    }

    #[test]
    fn embedded_allowance_matches_either_form() {
        let policy = UrlPolicy {
            allow_http: false,
            allowed_private: vec!["127.0.0.0/8".parse().unwrap()],
        };
        assert!(policy.check_ip("::ffff:127.0.0.1".parse().unwrap()).is_ok());
        assert!(policy.check_ip("::ffff:10.0.0.1".parse().unwrap()).is_err());
    }

    #[test]
    fn a_host_with_any_disallowed_address_is_refused() {
        let policy = UrlPolicy::default();
        let public: SocketAddr = "8.8.8.8:443".parse().unwrap();
        let private: SocketAddr = "10.0.0.1:443".parse().unwrap();
        assert_eq!(
            policy.check_resolved("mixed.example", [public, public]),
            Ok(vec![public])
        );
        let err = policy
            .check_resolved("mixed.example", [public, private])
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "`mixed.example` resolves to 10.0.0.1, which is a private address; destinations must be public"
        );
        assert_eq!(err.kind(), "resolves_to_forbidden_address");
        let err = policy.check_resolved("empty.example", []).unwrap_err();
        assert_eq!(
            err.to_string(),
            "cannot resolve host `empty.example`: no addresses found"
        );
    }

    #[test]
    fn messages_name_the_address_and_its_class() {
        let policy = UrlPolicy::default();
        let err = policy.check_ip("10.0.0.5".parse().unwrap()).unwrap_err();
        assert_eq!(
            err.to_string(),
            "`10.0.0.5` is a private address; destinations must be public"
        );
        assert_eq!(err.kind(), "forbidden_address");
        let err = PolicyError::ResolvesToForbiddenAddress {
            host: "localhost".into(),
            ip: "127.0.0.1".parse().unwrap(),
            class: AddressClass::Loopback,
        };
        assert_eq!(
            err.to_string(),
            "`localhost` resolves to 127.0.0.1, which is a loopback address; destinations must be public"
        );
    }
}
