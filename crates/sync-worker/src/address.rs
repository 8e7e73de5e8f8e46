//! Which target addresses may be called: the SSRF guard.
//!
//! A tenant admin sets a target URL; without a guard, scimgate would call
//! whatever it names from inside the operator's network: the cloud metadata
//! service, a database port on localhost, an internal admin page. The guard
//! works at two points, because either alone can be bypassed:
//!
//! - when a URL is accepted ([`AddressPolicy::check_url`], and
//!   [`crate::http::check_request_url`] before each request): scheme, no
//!   credentials, and a literal IP address judged at once (a literal IP never
//!   reaches a resolver);
//! - when a host name is resolved for a connection ([`GuardedResolver`]):
//!   forbidden addresses are dropped, so a name that resolves to an internal
//!   address, or is re-pointed to one later (DNS rebinding), is refused at
//!   connect time.
//!
//! Private, loopback, link-local and similar ranges are allowed when the
//! operator sets [`ALLOW_PRIVATE_SETTING`] (targets on the same private
//! network are common on premises). Cloud metadata, unspecified, broadcast
//! and multicast addresses are refused whatever the setting: none is ever a
//! legitimate webhook target and the first is the classic SSRF prize.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use url::{Host, Url};

/// The configuration setting that allows targets in private ranges.
pub const ALLOW_PRIVATE_SETTING: &str = "delivery_allow_private_targets";

/// Which target addresses delivery may connect to.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AddressPolicy {
    /// Allow private, loopback, link-local, shared (CGNAT) and reserved
    /// ranges (never metadata, unspecified, broadcast or multicast).
    pub allow_private: bool,
}

/// A range of addresses that is not a public unicast destination.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Range {
    /// 127.0.0.0/8, ::1.
    Loopback,
    /// 10/8, 172.16/12, 192.168/16, fc00::/7, fec0::/10.
    Private,
    /// 169.254/16, fe80::/10.
    LinkLocal,
    /// 100.64/10, shared address space of carrier-grade NAT.
    SharedCgnat,
    /// Documentation, benchmarking, IETF-reserved and future-use ranges.
    Reserved,
    /// A cloud provider's instance metadata or platform address.
    Metadata,
    /// 0.0.0.0/8 and ::, which reach this host on many systems.
    Unspecified,
    /// 255.255.255.255.
    Broadcast,
    /// 224/4, ff00::/8.
    Multicast,
}

impl Range {
    /// Whether [`ALLOW_PRIVATE_SETTING`] can allow this range.
    pub fn allowable(self) -> bool {
        matches!(
            self,
            Range::Loopback
                | Range::Private
                | Range::LinkLocal
                | Range::SharedCgnat
                | Range::Reserved
        )
    }

    fn describe(self) -> &'static str {
        match self {
            Range::Loopback => "a loopback address",
            Range::Private => "in a private range",
            Range::LinkLocal => "link-local",
            Range::SharedCgnat => "in the shared (carrier-grade NAT) range 100.64.0.0/10",
            Range::Reserved => "in a documentation, benchmarking or reserved range",
            Range::Metadata => "a cloud metadata address",
            Range::Unspecified => "an unspecified (this host) address",
            Range::Broadcast => "the broadcast address",
            Range::Multicast => "a multicast address",
        }
    }
}

/// Why a target URL or address is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AddressError {
    /// The text is not a URL.
    #[error("target URL is not a valid URL: {0}")]
    Invalid(String),
    /// A scheme other than http or https.
    #[error("target URL scheme {0:?} is not allowed; use https (or http)")]
    Scheme(String),
    /// No host in the URL.
    #[error("target URL has no host")]
    NoHost,
    /// A user name or password in the URL.
    #[error(
        "target URL contains credentials (user:password@); credentials in URLs are refused, \
         set them as the target's secret instead"
    )]
    Credentials,
    /// The address is in a range the policy refuses.
    #[error("{}", forbidden_message(*.ip, *.range))]
    Forbidden {
        /// The refused address.
        ip: IpAddr,
        /// Its range.
        range: Range,
    },
    /// A local-only host name (`localhost`, `*.localhost`).
    #[error(
        "target host {0:?} always names this machine; an operator can allow private targets \
         with {ALLOW_PRIVATE_SETTING}"
    )]
    LocalName(String),
    /// The host name could not be resolved.
    #[error("target host {host:?} could not be resolved: {reason}")]
    Resolve {
        /// The host name.
        host: String,
        /// The resolver's error.
        reason: String,
    },
    /// Every address the host name resolved to is refused.
    #[error("target host {host:?} resolves only to refused addresses: {first}")]
    AllForbidden {
        /// The host name.
        host: String,
        /// Why the first of them was refused.
        first: Box<AddressError>,
    },
}

fn forbidden_message(ip: IpAddr, range: Range) -> String {
    if range.allowable() {
        format!(
            "target address {ip} is {}; an operator can allow private targets with {ALLOW_PRIVATE_SETTING}",
            range.describe()
        )
    } else {
        format!(
            "target address {ip} is {}, which is never allowed as a target",
            range.describe()
        )
    }
}

impl AddressPolicy {
    /// Parses and checks a target URL: http or https, a host, no
    /// credentials, and a literal IP address allowed by this policy.
    pub fn check_url(&self, text: &str) -> Result<Url, AddressError> {
        let url = Url::parse(text.trim()).map_err(|e| AddressError::Invalid(e.to_string()))?;
        self.check_parsed(&url)?;
        Ok(url)
    }

    /// The checks of [`AddressPolicy::check_url`] on a parsed URL.
    pub fn check_parsed(&self, url: &Url) -> Result<(), AddressError> {
        match url.scheme() {
            "http" | "https" => {}
            other => return Err(AddressError::Scheme(other.to_owned())),
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err(AddressError::Credentials);
        }
        // The URL parser already turned the WHATWG IPv4 spellings
        // (`2130706433`, `0x7f.1`, `127.1`) into `Host::Ipv4`.
        match url.host() {
            None => Err(AddressError::NoHost),
            Some(Host::Ipv4(ip)) => self.check_ip(IpAddr::V4(ip)),
            Some(Host::Ipv6(ip)) => self.check_ip(IpAddr::V6(ip)),
            Some(Host::Domain(name)) => self.check_name(name),
        }
    }

    /// Whether this policy allows connecting to `ip`.
    pub fn check_ip(&self, ip: IpAddr) -> Result<(), AddressError> {
        match classify(ip) {
            None => Ok(()),
            Some(range) if self.allow_private && range.allowable() => Ok(()),
            Some(range) => Err(AddressError::Forbidden { ip, range }),
        }
    }

    /// Refuses names that always mean this machine (RFC 6761 `localhost`)
    /// before any lookup, for a clear message when the URL is saved.
    fn check_name(&self, name: &str) -> Result<(), AddressError> {
        let name = name.trim_end_matches('.').to_ascii_lowercase();
        if !self.allow_private && (name == "localhost" || name.ends_with(".localhost")) {
            return Err(AddressError::LocalName(name));
        }
        if name.is_empty() {
            return Err(AddressError::NoHost);
        }
        Ok(())
    }
}

/// Whether `ip` is refused under the default policy (no private targets).
pub fn is_forbidden(ip: IpAddr) -> bool {
    classify(ip).is_some()
}

/// The non-public range `ip` belongs to, or `None` for a public unicast
/// address. IPv6 forms that embed an IPv4 address (mapped, compatible,
/// NAT64, 6to4) are judged by the IPv4 address they lead to.
pub fn classify(ip: IpAddr) -> Option<Range> {
    match ip {
        IpAddr::V4(v4) => classify_v4(v4),
        IpAddr::V6(v6) => classify_v6(v6),
    }
}

/// Instance metadata and platform endpoints reachable from cloud VMs.
const METADATA_V4: [Ipv4Addr; 7] = [
    Ipv4Addr::new(169, 254, 169, 254), // AWS, GCP, Azure, OpenStack, DigitalOcean, ...
    Ipv4Addr::new(169, 254, 169, 253), // AWS VPC DNS
    Ipv4Addr::new(169, 254, 170, 2),   // AWS ECS task metadata and credentials
    Ipv4Addr::new(169, 254, 170, 23),  // AWS EKS Pod Identity
    Ipv4Addr::new(100, 100, 100, 200), // Alibaba Cloud
    Ipv4Addr::new(168, 63, 129, 16),   // Azure WireServer (a public address)
    Ipv4Addr::new(192, 0, 0, 192),     // Oracle Cloud
];
const METADATA_V6: [Ipv6Addr; 2] = [
    Ipv6Addr::new(0xfd00, 0x0ec2, 0, 0, 0, 0, 0, 0x0254), // AWS IMDS over IPv6
    Ipv6Addr::new(0xfd00, 0x0ec2, 0, 0, 0, 0, 0, 0x0023), // AWS EKS Pod Identity
];

fn in_v4(ip: Ipv4Addr, net: [u8; 4], prefix: u32) -> bool {
    let mask = u32::MAX.checked_shl(32 - prefix).unwrap_or(0);
    u32::from(ip) & mask == u32::from(Ipv4Addr::from(net)) & mask
}

fn classify_v4(ip: Ipv4Addr) -> Option<Range> {
    if METADATA_V4.contains(&ip) {
        return Some(Range::Metadata);
    }
    let table: [([u8; 4], u32, Range); 17] = [
        ([0, 0, 0, 0], 8, Range::Unspecified),
        ([10, 0, 0, 0], 8, Range::Private),
        ([100, 64, 0, 0], 10, Range::SharedCgnat),
        ([127, 0, 0, 0], 8, Range::Loopback),
        ([169, 254, 0, 0], 16, Range::LinkLocal),
        ([172, 16, 0, 0], 12, Range::Private),
        ([192, 0, 0, 0], 24, Range::Reserved), // IETF protocol assignments
        ([192, 0, 2, 0], 24, Range::Reserved), // TEST-NET-1
        ([192, 31, 196, 0], 24, Range::Reserved), // AS112
        ([192, 52, 193, 0], 24, Range::Reserved), // AMT
        ([192, 88, 99, 0], 24, Range::Reserved), // 6to4 relay anycast
        ([192, 168, 0, 0], 16, Range::Private),
        ([198, 18, 0, 0], 15, Range::Reserved), // benchmarking
        ([198, 51, 100, 0], 24, Range::Reserved), // TEST-NET-2
        ([203, 0, 113, 0], 24, Range::Reserved), // TEST-NET-3
        ([224, 0, 0, 0], 4, Range::Multicast),
        ([240, 0, 0, 0], 4, Range::Reserved), // future use
    ];
    if ip == Ipv4Addr::BROADCAST {
        return Some(Range::Broadcast);
    }
    table
        .iter()
        .find(|(net, prefix, _)| in_v4(ip, *net, *prefix))
        .map(|(_, _, range)| *range)
}

fn in_v6(ip: Ipv6Addr, net: Ipv6Addr, prefix: u32) -> bool {
    let mask = u128::MAX.checked_shl(128 - prefix).unwrap_or(0);
    u128::from(ip) & mask == u128::from(net) & mask
}

fn v6(segments: [u16; 8]) -> Ipv6Addr {
    let [a, b, c, d, e, f, g, h] = segments;
    Ipv6Addr::new(a, b, c, d, e, f, g, h)
}

fn classify_v6(ip: Ipv6Addr) -> Option<Range> {
    if METADATA_V6.contains(&ip) {
        return Some(Range::Metadata);
    }
    if ip.is_unspecified() {
        return Some(Range::Unspecified);
    }
    if ip.is_loopback() {
        return Some(Range::Loopback);
    }
    if let Some(v4) = embedded_v4(ip) {
        // Judged as the IPv4 address it reaches; a public one is fine.
        return classify_v4(v4);
    }
    let table: [(Ipv6Addr, u32, Range); 8] = [
        (v6([0xff00, 0, 0, 0, 0, 0, 0, 0]), 8, Range::Multicast),
        (v6([0xfe80, 0, 0, 0, 0, 0, 0, 0]), 10, Range::LinkLocal),
        (v6([0xfec0, 0, 0, 0, 0, 0, 0, 0]), 10, Range::Private), // site-local
        (v6([0xfc00, 0, 0, 0, 0, 0, 0, 0]), 7, Range::Private),  // unique local
        (v6([0x0100, 0, 0, 0, 0, 0, 0, 0]), 64, Range::Reserved), // discard-only
        (v6([0x2001, 0x0db8, 0, 0, 0, 0, 0, 0]), 32, Range::Reserved), // documentation
        (v6([0x3fff, 0, 0, 0, 0, 0, 0, 0]), 20, Range::Reserved), // documentation
        // Teredo hides its IPv4 address; no webhook target lives there.
        (v6([0x2001, 0, 0, 0, 0, 0, 0, 0]), 32, Range::Reserved),
    ];
    if let Some((_, _, range)) = table
        .iter()
        .find(|(net, prefix, _)| in_v6(ip, *net, *prefix))
    {
        return Some(*range);
    }
    // Only global unicast 2000::/3 is assigned for public use; the rest is
    // unassigned or special, and no target lives there.
    if in_v6(ip, v6([0x2000, 0, 0, 0, 0, 0, 0, 0]), 3) {
        None
    } else {
        Some(Range::Reserved)
    }
}

/// The IPv4 address an IPv6 address leads to, for the forms that embed one:
/// IPv4-mapped `::ffff:a.b.c.d`, IPv4-compatible `::a.b.c.d`, NAT64
/// `64:ff9b::/96` and `64:ff9b:1::/48`, and 6to4 `2002:aabb:ccdd::/48`.
fn embedded_v4(ip: Ipv6Addr) -> Option<Ipv4Addr> {
    let bits = u128::from(ip);
    let low32 = Ipv4Addr::from((bits & 0xffff_ffff) as u32);
    let s = ip.segments();
    if let Some(v4) = ip.to_ipv4_mapped() {
        return Some(v4);
    }
    // IPv4-compatible (deprecated, but some stacks still route it); `::`
    // and `::1` were handled before this is called.
    if bits >> 32 == 0 {
        return Some(low32);
    }
    if in_v6(ip, v6([0x64, 0xff9b, 0, 0, 0, 0, 0, 0]), 96)
        || in_v6(ip, v6([0x64, 0xff9b, 1, 0, 0, 0, 0, 0]), 48)
    {
        return Some(low32);
    }
    if s[0] == 0x2002 {
        let [a, b] = s[1].to_be_bytes();
        let [c, d] = s[2].to_be_bytes();
        return Some(Ipv4Addr::new(a, b, c, d));
    }
    None
}

/// A resolver for reqwest that resolves with the system resolver (through
/// tokio) and keeps only the addresses the policy allows.
///
/// Set on the client built by [`crate::http::client`]; it runs for every
/// new connection, so a name re-pointed at an internal address after the
/// URL was accepted is refused then.
#[derive(Debug, Clone, Copy)]
pub struct GuardedResolver {
    policy: AddressPolicy,
}

impl GuardedResolver {
    /// A resolver enforcing `policy`.
    pub fn new(policy: AddressPolicy) -> Self {
        Self { policy }
    }

    /// Resolves `host` and keeps the allowed addresses (port 0: the client
    /// puts the URL's port in); an error if none remain.
    pub async fn resolve_host(&self, host: &str) -> Result<Vec<SocketAddr>, AddressError> {
        self.policy.check_name(host)?;
        let found =
            tokio::net::lookup_host((host, 0))
                .await
                .map_err(|e| AddressError::Resolve {
                    host: host.to_owned(),
                    reason: e.to_string(),
                })?;
        self.filter(host, found)
    }

    pub(crate) fn filter(
        &self,
        host: &str,
        found: impl IntoIterator<Item = SocketAddr>,
    ) -> Result<Vec<SocketAddr>, AddressError> {
        let mut allowed = Vec::new();
        let mut first_refusal = None;
        for addr in found {
            match self.policy.check_ip(addr.ip()) {
                Ok(()) => allowed.push(addr),
                Err(e) => {
                    tracing::debug!(host, address = %addr.ip(), "dropped a refused address");
                    first_refusal.get_or_insert(e);
                }
            }
        }
        match (allowed.is_empty(), first_refusal) {
            (false, _) => Ok(allowed),
            (true, Some(first)) => Err(AddressError::AllForbidden {
                host: host.to_owned(),
                first: Box::new(first),
            }),
            (true, None) => Err(AddressError::Resolve {
                host: host.to_owned(),
                reason: "no addresses".into(),
            }),
        }
    }
}

impl reqwest::dns::Resolve for GuardedResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let this = *self;
        let host = name.as_str().to_owned();
        Box::pin(async move {
            let addrs = this.resolve_host(&host).await?;
            Ok(Box::new(addrs.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

impl fmt::Display for Range {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.describe())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().expect("test address")
    }

    #[test]
    fn the_address_table() {
        let strict = AddressPolicy::default();
        let open = AddressPolicy {
            allow_private: true,
        };
        // (address, range or None for public)
        let table: &[(&str, Option<Range>)] = &[
            ("8.8.8.8", None),
            ("1.1.1.1", None),
            ("93.184.216.34", None),
            ("172.15.255.255", None),
            ("172.32.0.0", None),
            ("100.63.255.255", None),
            ("100.128.0.0", None),
            ("2606:4700:4700::1111", None),
            ("2a00:1450:4001:80b::200e", None),
            ("::ffff:8.8.8.8", None),
            ("64:ff9b::808:808", None),
            ("2002:808:808::1", None),
            ("127.0.0.1", Some(Range::Loopback)),
            ("127.255.255.254", Some(Range::Loopback)),
            ("::1", Some(Range::Loopback)),
            ("10.0.0.5", Some(Range::Private)),
            ("172.16.0.1", Some(Range::Private)),
            ("172.31.255.255", Some(Range::Private)),
            ("192.168.1.1", Some(Range::Private)),
            ("fc00::1", Some(Range::Private)),
            ("fd12:3456::1", Some(Range::Private)),
            ("fec0::1", Some(Range::Private)),
            ("169.254.1.1", Some(Range::LinkLocal)),
            ("fe80::1", Some(Range::LinkLocal)),
            ("169.254.169.254", Some(Range::Metadata)),
            ("169.254.170.2", Some(Range::Metadata)),
            ("100.100.100.200", Some(Range::Metadata)),
            ("168.63.129.16", Some(Range::Metadata)),
            ("fd00:ec2::254", Some(Range::Metadata)),
            ("0.0.0.0", Some(Range::Unspecified)),
            ("0.1.2.3", Some(Range::Unspecified)),
            ("::", Some(Range::Unspecified)),
            ("255.255.255.255", Some(Range::Broadcast)),
            ("224.0.0.1", Some(Range::Multicast)),
            ("239.255.255.250", Some(Range::Multicast)),
            ("ff02::1", Some(Range::Multicast)),
            ("100.64.0.1", Some(Range::SharedCgnat)),
            ("100.127.255.255", Some(Range::SharedCgnat)),
            ("192.0.2.1", Some(Range::Reserved)),
            ("198.18.0.1", Some(Range::Reserved)),
            ("198.51.100.7", Some(Range::Reserved)),
            ("203.0.113.9", Some(Range::Reserved)),
            ("240.0.0.1", Some(Range::Reserved)),
            ("2001:db8::1", Some(Range::Reserved)),
            (
                "2001:0:4136:e378:8000:63bf:3fff:fdd2",
                Some(Range::Reserved),
            ),
            ("100::1", Some(Range::Reserved)),
            ("4000::1", Some(Range::Reserved)),
            // IPv4 embedded in IPv6 is judged as the IPv4 address.
            ("::ffff:127.0.0.1", Some(Range::Loopback)),
            ("::ffff:10.1.2.3", Some(Range::Private)),
            ("::ffff:169.254.169.254", Some(Range::Metadata)),
            ("::127.0.0.1", Some(Range::Loopback)),
            ("::10.0.0.1", Some(Range::Private)),
            ("64:ff9b::7f00:1", Some(Range::Loopback)),
            ("64:ff9b::a9fe:a9fe", Some(Range::Metadata)),
            ("64:ff9b:1::c0a8:101", Some(Range::Private)),
            ("2002:7f00:1::1", Some(Range::Loopback)),
            ("2002:a00:1::", Some(Range::Private)),
        ];
        for (text, want) in table {
            let addr = ip(text);
            assert_eq!(classify(addr), *want, "{text}");
            assert_eq!(is_forbidden(addr), want.is_some(), "{text}");
            assert_eq!(strict.check_ip(addr).is_ok(), want.is_none(), "{text}");
            let open_ok = want.is_none_or(Range::allowable);
            assert_eq!(open.check_ip(addr).is_ok(), open_ok, "{text} allowed");
        }
    }

    #[test]
    fn errors_say_why_and_how() {
        let strict = AddressPolicy::default();
        let e = strict.check_ip(ip("10.0.0.5")).expect_err("private");
        assert_eq!(
            e.to_string(),
            "target address 10.0.0.5 is in a private range; an operator can allow private \
             targets with delivery_allow_private_targets"
        );
        let open = AddressPolicy {
            allow_private: true,
        };
        let e = open.check_ip(ip("169.254.169.254")).expect_err("metadata");
        assert_eq!(
            e.to_string(),
            "target address 169.254.169.254 is a cloud metadata address, which is never \
             allowed as a target"
        );
    }

    /// What a URL check came to, for the table.
    #[derive(Debug, Clone, Copy, PartialEq)]
    enum Got {
        Ok,
        Invalid,
        Scheme,
        Credentials,
        Range(Range),
        LocalName,
        Other,
    }

    fn got(r: Result<Url, AddressError>) -> Got {
        match r {
            Ok(_) => Got::Ok,
            Err(AddressError::Invalid(_)) => Got::Invalid,
            Err(AddressError::Scheme(_)) => Got::Scheme,
            Err(AddressError::Credentials) => Got::Credentials,
            Err(AddressError::Forbidden { range, .. }) => Got::Range(range),
            Err(AddressError::LocalName(_)) => Got::LocalName,
            Err(_) => Got::Other,
        }
    }

    #[test]
    fn the_url_table() {
        use Got::{Credentials, Invalid, LocalName, Ok, Scheme};
        let strict = AddressPolicy::default();
        let open = AddressPolicy {
            allow_private: true,
        };
        let loopback = Got::Range(Range::Loopback);
        let private = Got::Range(Range::Private);
        let metadata = Got::Range(Range::Metadata);
        let unspecified = Got::Range(Range::Unspecified);
        // (URL, without the setting, with it)
        let table = [
            ("https://hooks.example.com/scim", Ok, Ok),
            ("http://8.8.8.8:8080/x", Ok, Ok),
            (" https://example.com ", Ok, Ok),
            ("ftp://example.com/", Scheme, Scheme),
            ("file:///etc/passwd", Scheme, Scheme),
            ("gopher://127.0.0.1/", Scheme, Scheme),
            ("not a url", Invalid, Invalid),
            ("https://user:pw@example.com/", Credentials, Credentials),
            ("https://user@example.com/", Credentials, Credentials),
            ("https://:pw@example.com/", Credentials, Credentials),
            ("http://127.0.0.1:9000/", loopback, Ok),
            // Other spellings of 127.0.0.1 that the URL parser normalises.
            ("http://2130706433/", loopback, Ok),
            ("http://0x7f.1/", loopback, Ok),
            ("http://[::ffff:7f00:1]/", loopback, Ok),
            ("http://[::1]:8080/", loopback, Ok),
            ("http://10.0.0.5/", private, Ok),
            ("http://169.254.169.254/latest/", metadata, metadata),
            ("http://[fd00:ec2::254]/", metadata, metadata),
            ("http://0.0.0.0:8080/", unspecified, unspecified),
            ("http://localhost:8080/", LocalName, Ok),
            ("http://api.LOCALHOST./", LocalName, Ok),
        ];
        for (text, want_strict, want_open) in table {
            assert_eq!(got(strict.check_url(text)), want_strict, "strict {text}");
            assert_eq!(got(open.check_url(text)), want_open, "allowed {text}");
        }
    }

    #[test]
    fn resolver_filter_keeps_allowed_and_refuses_all_forbidden() {
        let strict = GuardedResolver::new(AddressPolicy::default());
        let sa = |t: &str| SocketAddr::new(ip(t), 0);
        let kept = strict
            .filter("mixed.example", [sa("10.0.0.1"), sa("8.8.8.8"), sa("::1")])
            .expect("one public");
        assert_eq!(kept, vec![sa("8.8.8.8")]);
        let e = strict
            .filter("internal.example", [sa("10.0.0.1"), sa("127.0.0.1")])
            .expect_err("all private");
        let text = e.to_string();
        assert!(
            text.contains("internal.example") && text.contains("10.0.0.1 is in a private range"),
            "{text}"
        );
        assert!(matches!(
            strict.filter("none.example", []),
            Err(AddressError::Resolve { .. })
        ));
        let open = GuardedResolver::new(AddressPolicy {
            allow_private: true,
        });
        let kept = open
            .filter("x", [sa("10.0.0.1"), sa("169.254.169.254")])
            .expect("private allowed");
        assert_eq!(kept, vec![sa("10.0.0.1")]);
    }

    #[tokio::test]
    async fn localhost_is_refused_by_name_and_by_what_it_resolves_to() {
        let strict = GuardedResolver::new(AddressPolicy::default());
        assert!(matches!(
            strict.resolve_host("localhost").await,
            Err(AddressError::LocalName(_))
        ));
        let open = GuardedResolver::new(AddressPolicy {
            allow_private: true,
        });
        let addrs = open.resolve_host("localhost").await.expect("resolves");
        assert!(addrs.iter().all(|a| a.ip().is_loopback()), "{addrs:?}");
        // The literal is resolved without a name server and then judged.
        let e = strict.resolve_host("127.0.0.1").await.expect_err("refused");
        assert!(matches!(e, AddressError::AllForbidden { .. }), "{e}");
    }
}
