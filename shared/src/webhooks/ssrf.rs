//! Where a webhook may go. A tenant chooses the URL, and the hub calls it from inside its
//! network, so every URL is checked when it is registered and again at every send: the
//! scheme, the literal host, and every address the name resolves to. The sender connects only
//! to addresses this module returned (see [`CheckedResolver`]), so a DNS answer that changes
//! between the check and the connection cannot smuggle in an internal address.

use std::{
    collections::HashMap,
    fmt,
    future::Future,
    net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr},
    pin::Pin,
    sync::Arc,
};

use reqwest::Url;

/// Longest URL accepted; longer ones are almost always a mistake or an attack on logs.
pub const MAX_URL_LEN: usize = 2048;

/// What the deployment allows besides the public internet.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Policy {
    /// `REDRESS_WEBHOOK_ALLOW_LOOPBACK`: plain HTTP (and HTTPS) to 127.0.0.0/8, ::1 and
    /// `localhost`, for development and tests. Nothing else private becomes reachable.
    pub allow_loopback: bool,
}

/// Why an address is not a public unicast address.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Blocked {
    Unspecified,
    ThisNetwork,
    Loopback,
    Private,
    SharedAddressSpace,
    LinkLocal,
    IetfProtocolAssignment,
    Documentation,
    Benchmarking,
    Multicast,
    Reserved,
    Broadcast,
    UniqueLocal,
    SiteLocal,
    Ipv4Mapped,
    Ipv4Compatible,
    Nat64,
    Transition,
    Discard,
    NotGlobalUnicast,
}

impl Blocked {
    pub fn as_str(self) -> &'static str {
        match self {
            Blocked::Unspecified => "unspecified address",
            Blocked::ThisNetwork => "\"this network\" range (0.0.0.0/8)",
            Blocked::Loopback => "loopback address",
            Blocked::Private => "private address (RFC 1918)",
            Blocked::SharedAddressSpace => "carrier-grade NAT range (100.64.0.0/10)",
            Blocked::LinkLocal => "link-local address (cloud metadata lives here)",
            Blocked::IetfProtocolAssignment => "IETF protocol assignment range",
            Blocked::Documentation => "documentation range",
            Blocked::Benchmarking => "benchmarking range",
            Blocked::Multicast => "multicast address",
            Blocked::Reserved => "reserved range",
            Blocked::Broadcast => "broadcast address",
            Blocked::UniqueLocal => "unique-local address (fc00::/7)",
            Blocked::SiteLocal => "site-local address (fec0::/10)",
            Blocked::Ipv4Mapped => "IPv4-mapped IPv6 address",
            Blocked::Ipv4Compatible => "IPv4-compatible IPv6 address",
            Blocked::Nat64 => "NAT64 prefix (embeds an IPv4 address)",
            Blocked::Transition => "IPv6 transition range (6to4/Teredo embed an IPv4 address)",
            Blocked::Discard => "discard-only range",
            Blocked::NotGlobalUnicast => "address outside the global unicast range",
        }
    }
}

impl fmt::Display for Blocked {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

fn in_v4(ip: Ipv4Addr, net: [u8; 4], prefix: u32) -> bool {
    let mask = if prefix == 0 {
        0
    } else {
        u32::MAX << (32 - prefix)
    };
    (u32::from(ip) & mask) == (u32::from(Ipv4Addr::from(net)) & mask)
}

fn in_v6(ip: Ipv6Addr, net: [u16; 8], prefix: u32) -> bool {
    let mask = if prefix == 0 {
        0
    } else {
        u128::MAX << (128 - prefix)
    };
    (u128::from(ip) & mask) == (u128::from(Ipv6Addr::from(net)) & mask)
}

/// Why `ip` must not be called, or `None` for a public unicast address. A deny list for
/// IPv4 (every special-purpose block of the IANA registry) and an allow list for IPv6 (only
/// 2000::/3, minus its special blocks), so a range nobody thought of stays closed.
pub fn classify(ip: IpAddr) -> Option<Blocked> {
    match ip {
        IpAddr::V4(v4) => classify_v4(v4),
        IpAddr::V6(v6) => classify_v6(v6),
    }
}

fn classify_v4(ip: Ipv4Addr) -> Option<Blocked> {
    const TABLE: &[([u8; 4], u32, Blocked)] = &[
        ([0, 0, 0, 0], 32, Blocked::Unspecified),
        ([0, 0, 0, 0], 8, Blocked::ThisNetwork),
        ([10, 0, 0, 0], 8, Blocked::Private),
        ([100, 64, 0, 0], 10, Blocked::SharedAddressSpace),
        ([127, 0, 0, 0], 8, Blocked::Loopback),
        ([169, 254, 0, 0], 16, Blocked::LinkLocal),
        ([172, 16, 0, 0], 12, Blocked::Private),
        ([192, 0, 0, 0], 24, Blocked::IetfProtocolAssignment),
        ([192, 0, 2, 0], 24, Blocked::Documentation),
        ([192, 88, 99, 0], 24, Blocked::Transition),
        ([192, 168, 0, 0], 16, Blocked::Private),
        ([198, 18, 0, 0], 15, Blocked::Benchmarking),
        ([198, 51, 100, 0], 24, Blocked::Documentation),
        ([203, 0, 113, 0], 24, Blocked::Documentation),
        ([224, 0, 0, 0], 4, Blocked::Multicast),
        ([255, 255, 255, 255], 32, Blocked::Broadcast),
        ([240, 0, 0, 0], 4, Blocked::Reserved),
    ];
    TABLE
        .iter()
        .find(|(net, prefix, _)| in_v4(ip, *net, *prefix))
        .map(|(_, _, why)| *why)
}

fn classify_v6(ip: Ipv6Addr) -> Option<Blocked> {
    // Specific reasons first, for the error message; the global-unicast allow list last.
    const TABLE: &[([u16; 8], u32, Blocked)] = &[
        ([0, 0, 0, 0, 0, 0, 0, 0], 128, Blocked::Unspecified),
        ([0, 0, 0, 0, 0, 0, 0, 1], 128, Blocked::Loopback),
        ([0, 0, 0, 0, 0, 0xffff, 0, 0], 96, Blocked::Ipv4Mapped),
        // ::ffff:0:0:0/96, the SIIT "IPv4-translated" form.
        ([0, 0, 0, 0, 0xffff, 0, 0, 0], 96, Blocked::Ipv4Mapped),
        ([0, 0, 0, 0, 0, 0, 0, 0], 96, Blocked::Ipv4Compatible),
        ([0x64, 0xff9b, 0, 0, 0, 0, 0, 0], 96, Blocked::Nat64),
        ([0x64, 0xff9b, 1, 0, 0, 0, 0, 0], 48, Blocked::Nat64),
        ([0x100, 0, 0, 0, 0, 0, 0, 0], 64, Blocked::Discard),
        (
            [0x2001, 0xdb8, 0, 0, 0, 0, 0, 0],
            32,
            Blocked::Documentation,
        ),
        ([0x2001, 0, 0, 0, 0, 0, 0, 0], 32, Blocked::Transition),
        ([0x2001, 0x2, 0, 0, 0, 0, 0, 0], 48, Blocked::Benchmarking),
        (
            [0x2001, 0, 0, 0, 0, 0, 0, 0],
            23,
            Blocked::IetfProtocolAssignment,
        ),
        ([0x2002, 0, 0, 0, 0, 0, 0, 0], 16, Blocked::Transition),
        ([0x3fff, 0, 0, 0, 0, 0, 0, 0], 20, Blocked::Documentation),
        ([0xfc00, 0, 0, 0, 0, 0, 0, 0], 7, Blocked::UniqueLocal),
        ([0xfe80, 0, 0, 0, 0, 0, 0, 0], 10, Blocked::LinkLocal),
        ([0xfec0, 0, 0, 0, 0, 0, 0, 0], 10, Blocked::SiteLocal),
        ([0xff00, 0, 0, 0, 0, 0, 0, 0], 8, Blocked::Multicast),
    ];
    if let Some((_, _, why)) = TABLE
        .iter()
        .find(|(net, prefix, _)| in_v6(ip, *net, *prefix))
    {
        return Some(*why);
    }
    if !in_v6(ip, [0x2000, 0, 0, 0, 0, 0, 0, 0], 3) {
        return Some(Blocked::NotGlobalUnicast);
    }
    None
}

fn is_plain_loopback(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => v4.is_loopback(),
        IpAddr::V6(v6) => v6 == Ipv6Addr::LOCALHOST,
    }
}

impl Policy {
    /// `Err` with the reason when the hub must not connect to `ip`.
    pub fn check_ip(&self, ip: IpAddr) -> Result<(), Refused> {
        match classify(ip) {
            None => Ok(()),
            Some(Blocked::Loopback) if self.allow_loopback && is_plain_loopback(ip) => Ok(()),
            Some(why) => Err(Refused::Address { ip, why }),
        }
    }
}

/// Why a URL or an address was refused. Safe to show to the tenant: it names only what the
/// tenant gave us and what its name resolved to.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Refused {
    #[error("not a valid absolute URL: {0}")]
    Invalid(String),
    #[error("the URL is longer than {MAX_URL_LEN} characters")]
    TooLong,
    #[error("the URL must use https")]
    NotHttps,
    #[error("the URL must not carry a user name or password")]
    Credentials,
    #[error("the URL has no host")]
    NoHost,
    #[error("the host must be a fully qualified domain name or a public IP address")]
    SingleLabel,
    #[error("`{0}` names this machine")]
    LocalName(String),
    #[error("{ip} is a {why}")]
    Address { ip: IpAddr, why: Blocked },
    #[error("`{host}` resolves to {ip}, a {why}")]
    Resolved {
        host: String,
        ip: IpAddr,
        why: Blocked,
    },
    #[error("`{0}` does not resolve: {1}")]
    Unresolvable(String, String),
    #[error("`{0}` resolves to no address")]
    NoAddresses(String),
}

fn is_localhost_name(host: &str) -> bool {
    let host = host.trim_end_matches('.').to_ascii_lowercase();
    host == "localhost" || host.ends_with(".localhost")
}

/// Checks a URL's form without resolving it: scheme, credentials, and a literal IP host.
/// Decimal, octal and hex IPv4 forms (`https://2130706433/`) are turned into addresses by
/// the URL parser, so they are checked like any literal. Returns the parsed URL.
pub fn check_url(raw: &str, policy: Policy) -> Result<Url, Refused> {
    if raw.len() > MAX_URL_LEN {
        return Err(Refused::TooLong);
    }
    let url = Url::parse(raw.trim()).map_err(|e| Refused::Invalid(e.to_string()))?;
    if !url.username().is_empty() || url.password().is_some() {
        return Err(Refused::Credentials);
    }
    let host = url.host_str().ok_or(Refused::NoHost)?;
    let literal = host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .parse::<IpAddr>()
        .ok();
    let loopback_host = match literal {
        Some(ip) => is_plain_loopback(ip),
        None => is_localhost_name(host),
    };
    match url.scheme() {
        "https" => {}
        "http" if policy.allow_loopback && loopback_host => {}
        _ => return Err(Refused::NotHttps),
    }
    match literal {
        Some(ip) => policy.check_ip(ip)?,
        None if is_localhost_name(host) && !policy.allow_loopback => {
            return Err(Refused::LocalName(host.to_owned()));
        }
        None if is_localhost_name(host) => {}
        // A single label resolves through the machine's search domains: inside a cluster
        // that is exactly the internal services we must not reach.
        None if !host.trim_end_matches('.').contains('.') => return Err(Refused::SingleLabel),
        None => {}
    }
    Ok(url)
}

type LookupFuture = Pin<Box<dyn Future<Output = std::io::Result<Vec<IpAddr>>> + Send>>;

/// Name resolution, replaceable so tests can make a name resolve to an internal address
/// without a DNS server.
pub trait Lookup: Send + Sync + 'static {
    fn lookup(&self, host: &str) -> LookupFuture;
}

/// The operating system's resolver (getaddrinfo on a blocking thread, via tokio).
#[derive(Clone, Copy, Debug, Default)]
pub struct SystemLookup;

impl Lookup for SystemLookup {
    fn lookup(&self, host: &str) -> LookupFuture {
        let host = host.to_owned();
        Box::pin(async move {
            let addrs = tokio::net::lookup_host((host.as_str(), 0)).await?;
            Ok(addrs.map(|a| a.ip()).collect())
        })
    }
}

/// Fixed answers, for tests. A name not in the map does not resolve.
#[derive(Clone, Debug, Default)]
pub struct StaticLookup(pub HashMap<String, Vec<IpAddr>>);

impl Lookup for StaticLookup {
    fn lookup(&self, host: &str) -> LookupFuture {
        let answer = self
            .0
            .get(&host.trim_end_matches('.').to_ascii_lowercase())
            .cloned();
        Box::pin(async move {
            answer.ok_or_else(|| std::io::Error::new(std::io::ErrorKind::NotFound, "no such name"))
        })
    }
}

/// Resolves a host itself and returns only addresses the policy allows. Used at
/// registration (through [`check_and_resolve`]) and, as reqwest's DNS resolver, for every
/// connection the sender makes.
#[derive(Clone)]
pub struct CheckedResolver {
    policy: Policy,
    lookup: Arc<dyn Lookup>,
}

impl fmt::Debug for CheckedResolver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CheckedResolver")
            .field("policy", &self.policy)
            .finish()
    }
}

impl CheckedResolver {
    pub fn new(policy: Policy) -> Self {
        Self::with_lookup(policy, Arc::new(SystemLookup))
    }

    pub fn with_lookup(policy: Policy, lookup: Arc<dyn Lookup>) -> Self {
        Self { policy, lookup }
    }

    pub fn policy(&self) -> Policy {
        self.policy
    }

    /// Every address of `host`, or an error if any of them is refused. One bad answer
    /// refuses the whole name: a mix of public and internal records is how rebinding
    /// attacks are usually staged.
    pub async fn resolve(&self, host: &str) -> Result<Vec<IpAddr>, Refused> {
        if let Ok(ip) = host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<IpAddr>()
        {
            self.policy.check_ip(ip)?;
            return Ok(vec![ip]);
        }
        if is_localhost_name(host) && !self.policy.allow_loopback {
            return Err(Refused::LocalName(host.to_owned()));
        }
        let addrs = self
            .lookup
            .lookup(host)
            .await
            .map_err(|e| Refused::Unresolvable(host.to_owned(), e.to_string()))?;
        if addrs.is_empty() {
            return Err(Refused::NoAddresses(host.to_owned()));
        }
        for ip in &addrs {
            if let Err(Refused::Address { ip, why }) = self.policy.check_ip(*ip) {
                return Err(Refused::Resolved {
                    host: host.to_owned(),
                    ip,
                    why,
                });
            }
        }
        let mut unique = Vec::with_capacity(addrs.len());
        for ip in addrs {
            if !unique.contains(&ip) {
                unique.push(ip);
            }
        }
        Ok(unique)
    }
}

impl reqwest::dns::Resolve for CheckedResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let this = self.clone();
        let host = name.as_str().to_owned();
        Box::pin(async move {
            let ips = this.resolve(&host).await?;
            // Port 0: the connector puts the URL's port in.
            let addrs: reqwest::dns::Addrs =
                Box::new(ips.into_iter().map(|ip| SocketAddr::new(ip, 0)));
            Ok(addrs)
        })
    }
}

/// The registration check: the URL's form, then every address its host resolves to.
/// The same check runs again at each send, since DNS answers change.
pub async fn check_and_resolve(raw: &str, resolver: &CheckedResolver) -> Result<Url, Refused> {
    let url = check_url(raw, resolver.policy())?;
    let host = url.host_str().ok_or(Refused::NoHost)?;
    resolver.resolve(host).await?;
    Ok(url)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    const STRICT: Policy = Policy {
        allow_loopback: false,
    };
    const DEV: Policy = Policy {
        allow_loopback: true,
    };

    fn blocked(ip: &str) -> Option<Blocked> {
        classify(ip.parse().unwrap())
    }

    #[test]
    fn internal_and_special_addresses_are_classified_as_blocked() {
        let cases = [
            ("127.0.0.1", Blocked::Loopback),
            ("127.255.0.9", Blocked::Loopback),
            ("::1", Blocked::Loopback),
            ("169.254.169.254", Blocked::LinkLocal),
            ("fe80::1", Blocked::LinkLocal),
            ("10.0.0.1", Blocked::Private),
            ("172.16.5.4", Blocked::Private),
            ("172.31.255.255", Blocked::Private),
            ("192.168.1.1", Blocked::Private),
            ("100.64.0.1", Blocked::SharedAddressSpace),
            ("100.127.255.254", Blocked::SharedAddressSpace),
            ("fd00::1", Blocked::UniqueLocal),
            ("fc00::1", Blocked::UniqueLocal),
            ("::ffff:127.0.0.1", Blocked::Ipv4Mapped),
            ("::ffff:8.8.8.8", Blocked::Ipv4Mapped),
            ("::127.0.0.1", Blocked::Ipv4Compatible),
            ("64:ff9b::a9fe:a9fe", Blocked::Nat64),
            ("64:ff9b:1::1", Blocked::Nat64),
            ("0.0.0.0", Blocked::Unspecified),
            ("::", Blocked::Unspecified),
            ("0.1.2.3", Blocked::ThisNetwork),
            ("224.0.0.1", Blocked::Multicast),
            ("239.255.255.250", Blocked::Multicast),
            ("ff02::1", Blocked::Multicast),
            ("255.255.255.255", Blocked::Broadcast),
            ("240.0.0.1", Blocked::Reserved),
            ("192.0.2.10", Blocked::Documentation),
            ("198.51.100.7", Blocked::Documentation),
            ("203.0.113.200", Blocked::Documentation),
            ("2001:db8::1", Blocked::Documentation),
            ("3fff::1", Blocked::Documentation),
            ("198.18.0.1", Blocked::Benchmarking),
            ("192.0.0.8", Blocked::IetfProtocolAssignment),
            ("2001::1", Blocked::Transition),
            ("2002:7f00:1::1", Blocked::Transition),
            ("192.88.99.1", Blocked::Transition),
            ("100::1", Blocked::Discard),
            ("fec0::1", Blocked::SiteLocal),
            ("4000::1", Blocked::NotGlobalUnicast),
        ];
        for (ip, why) in cases {
            assert_eq!(blocked(ip), Some(why), "{ip}");
        }
    }

    #[test]
    fn public_unicast_addresses_are_allowed() {
        for ip in [
            "8.8.8.8",
            "1.1.1.1",
            "100.63.255.255",
            "100.128.0.1",
            "172.15.255.255",
            "172.32.0.1",
            "169.253.1.1",
            "11.0.0.1",
            "223.255.255.254",
            "2606:4700:4700::1111",
            "2400:3200::1",
        ] {
            assert_eq!(blocked(ip), None, "{ip}");
        }
    }

    #[test]
    fn the_issues_ssrf_list_is_refused_at_registration() {
        let resolver = CheckedResolver::with_lookup(STRICT, Arc::new(StaticLookup::default()));
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        for url in [
            "https://127.0.0.1/hook",
            "https://[::1]/hook",
            "https://169.254.169.254/latest/meta-data/",
            "https://10.0.0.1/hook",
            "https://100.64.0.1/hook",
            "https://[fd00::1]/hook",
            "https://[::ffff:127.0.0.1]/hook",
            "https://[::ffff:7f00:1]/hook",
            "https://0.0.0.0/hook",
            "https://2130706433/hook",
            "https://0x7f000001/hook",
            "https://0177.0.0.1/hook",
            "https://127.1/hook",
            "https://localhost/hook",
            "https://LOCALHOST./hook",
            "https://api.localhost/hook",
            "http://example.com/hook",
            "ftp://example.com/hook",
            "https://user:pw@example.com/hook",
            "https://intranet/hook",
            "not a url",
        ] {
            let outcome = rt.block_on(check_and_resolve(url, &resolver));
            assert!(outcome.is_err(), "{url} was accepted");
        }
    }

    #[test]
    fn decimal_integer_hosts_are_read_as_the_address_they_encode() {
        let err = check_url("https://2130706433/", STRICT).unwrap_err();
        assert_eq!(
            err,
            Refused::Address {
                ip: "127.0.0.1".parse().unwrap(),
                why: Blocked::Loopback
            }
        );
    }

    #[tokio::test]
    async fn a_name_resolving_to_a_private_address_is_refused_and_so_is_a_mixed_answer() {
        let mut names = HashMap::new();
        names.insert(
            "internal.example.com".to_owned(),
            vec!["10.1.2.3".parse().unwrap()],
        );
        names.insert(
            "mixed.example.com".to_owned(),
            vec![
                "93.184.215.14".parse().unwrap(),
                "169.254.169.254".parse().unwrap(),
            ],
        );
        names.insert(
            "public.example.com".to_owned(),
            vec!["93.184.215.14".parse().unwrap()],
        );
        let resolver = CheckedResolver::with_lookup(STRICT, Arc::new(StaticLookup(names)));
        let err = check_and_resolve("https://internal.example.com/hook", &resolver)
            .await
            .unwrap_err();
        assert!(
            matches!(
                err,
                Refused::Resolved {
                    why: Blocked::Private,
                    ..
                }
            ),
            "{err}"
        );
        assert!(
            check_and_resolve("https://mixed.example.com/hook", &resolver)
                .await
                .is_err()
        );
        assert!(
            check_and_resolve("https://nowhere.example.com/hook", &resolver)
                .await
                .is_err()
        );
        let url = check_and_resolve("https://public.example.com:8443/hook?x=1", &resolver)
            .await
            .unwrap();
        assert_eq!(url.port(), Some(8443));
    }

    #[test]
    fn allow_loopback_opens_plain_http_to_loopback_and_nothing_else() {
        check_url("http://127.0.0.1:8080/hook", DEV).unwrap();
        check_url("http://[::1]:8080/hook", DEV).unwrap();
        check_url("http://localhost:8080/hook", DEV).unwrap();
        check_url("https://localhost/hook", DEV).unwrap();
        assert_eq!(
            check_url("http://example.com/hook", DEV).unwrap_err(),
            Refused::NotHttps
        );
        assert!(check_url("http://10.0.0.1/hook", DEV).is_err());
        assert!(check_url("https://10.0.0.1/hook", DEV).is_err());
        assert!(check_url("https://169.254.169.254/", DEV).is_err());
        assert!(check_url("https://[::ffff:127.0.0.1]/", DEV).is_err());
        assert!(check_url("https://0.0.0.0/", DEV).is_err());
        assert!(check_url("http://127.0.0.1/", STRICT).is_err());
    }

    #[tokio::test]
    async fn with_allow_loopback_localhost_resolves_but_a_name_for_a_private_address_still_fails() {
        let mut names = HashMap::new();
        names.insert(
            "localhost".to_owned(),
            vec!["127.0.0.1".parse().unwrap(), "::1".parse().unwrap()],
        );
        names.insert(
            "internal.example.com".to_owned(),
            vec!["192.168.0.10".parse().unwrap()],
        );
        let resolver = CheckedResolver::with_lookup(DEV, Arc::new(StaticLookup(names)));
        assert_eq!(resolver.resolve("localhost").await.unwrap().len(), 2);
        assert!(resolver.resolve("internal.example.com").await.is_err());
    }
}
