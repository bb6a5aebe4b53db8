//! Client IP resolution that honours `X-Forwarded-For` / `Forwarded` only from trusted proxies.
//!
//! A request's *peer* is the TCP address that connected to us. Behind a load balancer that is
//! the balancer, and the real client is in `X-Forwarded-For` (or the RFC 7239 `Forwarded`
//! header). Those headers are plain request headers: anyone can send them. So they are only
//! read when the peer is one of the [`TrustedProxies`], and then walked **right to left**,
//! skipping hops that are themselves trusted proxies; the first untrusted address is the
//! client. An attacker can prepend anything to the header but cannot change the hops our own
//! proxies appended, so the result cannot be spoofed past the first untrusted hop.
//!
//! # Where the peer address comes from
//!
//! The peer is read from the request extensions:
//!
//! - `axum::extract::ConnectInfo<SocketAddr>` (feature `axum`; serve with
//!   `into_make_service_with_connect_info::<SocketAddr>()`), otherwise
//! - a plain [`SocketAddr`] extension (insert one yourself when serving with hyper directly).
//!
//! Without either, [`TrustedProxies::client_ip`] returns `None`: headers are never trusted
//! without knowing who sent them.
//!
//! # Malformed values
//!
//! A hop that does not parse as an IP address (`unknown`, an obfuscated `Forwarded` node,
//! garbage, non-UTF-8 bytes) stops the walk: nothing to its left can be trusted, so the last
//! address known to be good (the trusted hop that reported it) is returned. Parsing never
//! panics, never allocates, and looks at no more than [`MAX_HOPS`] hops.
//!
//! ```
//! use std::net::{IpAddr, SocketAddr};
//! use obs_tower::client_ip::TrustedProxies;
//!
//! let proxies = TrustedProxies::new(["10.0.0.0/8".parse().unwrap()]);
//! let mut req = http::Request::builder()
//!     .header("x-forwarded-for", "spoofed, 203.0.113.7, 10.0.0.3")
//!     .body(())
//!     .unwrap();
//! // The load balancer at 10.0.0.2 connected to us.
//! req.extensions_mut().insert(SocketAddr::from(([10, 0, 0, 2], 41000)));
//! assert_eq!(proxies.client_ip(&req), Some("203.0.113.7".parse::<IpAddr>().unwrap()));
//!
//! // The same headers from an untrusted peer are ignored: the peer is the client.
//! assert_eq!(
//!     TrustedProxies::none().client_ip(&req),
//!     Some("10.0.0.2".parse::<IpAddr>().unwrap())
//! );
//! ```

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::str::FromStr;
use std::sync::Arc;

use http::header::{HeaderMap, HeaderName, FORWARDED};
use http::{Extensions, Request};
use ipnet::IpNet;

/// Most hops looked at in forwarding headers; a longer chain is cut (from the right).
pub const MAX_HOPS: usize = 32;

const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");

/// The proxies whose forwarding headers are believed. Cheap to clone (one `Arc`).
///
/// Empty by default ([`TrustedProxies::none`]): the peer address is the client.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct TrustedProxies {
    nets: Arc<[IpNet]>,
}

/// A trusted-proxy list entry that is neither an IP address nor a CIDR network.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum InvalidProxyList {
    /// The entry at this position (0-based, comma-separated) did not parse.
    #[error("trusted proxy entry {position} is not an IP address or CIDR network (e.g. 10.0.0.0/8), got {value:?}")]
    InvalidEntry {
        /// Zero-based position of the entry in the list.
        position: usize,
        /// The rejected entry (configuration, not request data, so it is safe to show).
        value: String,
    },
}

impl TrustedProxies {
    /// Trusts no proxy: forwarding headers are ignored and the peer is the client.
    pub fn none() -> Self {
        Self::default()
    }

    /// Trusts the given networks. A single host is a `/32` (IPv4) or `/128` (IPv6) network.
    pub fn new(nets: impl IntoIterator<Item = IpNet>) -> Self {
        let nets: Vec<IpNet> = nets.into_iter().map(|n| n.trunc()).collect();
        TrustedProxies { nets: nets.into() }
    }

    /// Trusts loopback addresses (`127.0.0.0/8`, `::1`): a proxy on the same host.
    pub fn loopback() -> Self {
        Self::new([
            IpNet::from(ipnet::Ipv4Net::new_assert(Ipv4Addr::LOCALHOST, 8)),
            IpNet::from(ipnet::Ipv6Net::new_assert(Ipv6Addr::LOCALHOST, 128)),
        ])
    }

    /// Trusts loopback and private networks (`10/8`, `172.16/12`, `192.168/16`, `fc00::/7`):
    /// the usual setting for a service behind an in-cluster ingress.
    pub fn private_networks() -> Self {
        let mut nets = Self::loopback().nets.to_vec();
        nets.extend([
            IpNet::from(ipnet::Ipv4Net::new_assert(Ipv4Addr::new(10, 0, 0, 0), 8)),
            IpNet::from(ipnet::Ipv4Net::new_assert(Ipv4Addr::new(172, 16, 0, 0), 12)),
            IpNet::from(ipnet::Ipv4Net::new_assert(
                Ipv4Addr::new(192, 168, 0, 0),
                16,
            )),
            IpNet::from(ipnet::Ipv6Net::new_assert(
                Ipv6Addr::new(0xfc00, 0, 0, 0, 0, 0, 0, 0),
                7,
            )),
        ]);
        Self::new(nets)
    }

    /// Parses a comma-separated list of IP addresses and CIDR networks, e.g. from an
    /// environment variable: `"10.0.0.0/8, 192.168.1.1, ::1"`. Empty entries are skipped.
    pub fn parse_list(list: &str) -> Result<Self, InvalidProxyList> {
        let mut nets = Vec::new();
        for (position, entry) in list.split(',').map(str::trim).enumerate() {
            if entry.is_empty() {
                continue;
            }
            let net = entry
                .parse::<IpNet>()
                .or_else(|_| entry.parse::<IpAddr>().map(IpNet::from))
                .map_err(|_| InvalidProxyList::InvalidEntry {
                    position,
                    value: entry.to_owned(),
                })?;
            nets.push(net);
        }
        Ok(Self::new(nets))
    }

    /// True if no proxy is trusted.
    pub fn is_empty(&self) -> bool {
        self.nets.is_empty()
    }

    /// The trusted networks.
    pub fn networks(&self) -> &[IpNet] {
        &self.nets
    }

    /// True if `ip` is inside a trusted network. IPv4-mapped IPv6 addresses
    /// (`::ffff:10.0.0.1`) match IPv4 networks.
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        self.nets.iter().any(|net| net.contains(&ip))
    }

    /// The client's IP address for `req`; see the [module docs](self) for the rules.
    ///
    /// `None` only when the peer address is unknown (no `ConnectInfo`/`SocketAddr` extension).
    pub fn client_ip<B>(&self, req: &Request<B>) -> Option<IpAddr> {
        self.client_ip_from(req.headers(), req.extensions())
    }

    /// [`client_ip`](Self::client_ip) from the request's parts (headers and extensions), for
    /// extractors and code holding `http::request::Parts`.
    pub fn client_ip_from(&self, headers: &HeaderMap, extensions: &Extensions) -> Option<IpAddr> {
        let peer = peer_addr(extensions)?.ip();
        Some(self.resolve(peer, headers))
    }

    /// The client's IP address given the peer's address and the request headers.
    pub fn resolve(&self, peer: IpAddr, headers: &HeaderMap) -> IpAddr {
        let peer = peer.to_canonical();
        if !self.contains(peer) {
            return peer;
        }
        if headers.contains_key(X_FORWARDED_FOR) {
            walk(self, peer, headers, &X_FORWARDED_FOR, parse_xff_hop)
        } else if headers.contains_key(FORWARDED) {
            walk(self, peer, headers, &FORWARDED, parse_forwarded_element)
        } else {
            peer
        }
    }
}

impl fmt::Debug for TrustedProxies {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.nets.iter()).finish()
    }
}

impl FromStr for TrustedProxies {
    type Err = InvalidProxyList;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse_list(s)
    }
}

impl FromIterator<IpNet> for TrustedProxies {
    fn from_iter<I: IntoIterator<Item = IpNet>>(iter: I) -> Self {
        Self::new(iter)
    }
}

/// The TCP peer address of the request: `axum::extract::ConnectInfo<SocketAddr>` (feature
/// `axum`) or a plain [`SocketAddr`] extension.
pub fn peer_addr(extensions: &Extensions) -> Option<SocketAddr> {
    #[cfg(feature = "axum")]
    if let Some(axum::extract::ConnectInfo(addr)) =
        extensions.get::<axum::extract::ConnectInfo<SocketAddr>>()
    {
        return Some(*addr);
    }
    extensions.get::<SocketAddr>().copied()
}

/// Walks the hops of `name` right to left (last header line first) and returns the first
/// untrusted one; see the module docs.
fn walk(
    proxies: &TrustedProxies,
    peer: IpAddr,
    headers: &HeaderMap,
    name: &HeaderName,
    parse: fn(&str) -> Option<IpAddr>,
) -> IpAddr {
    let mut last_good = peer;
    let mut hops = 0;
    for value in headers.get_all(name).iter().rev() {
        let Ok(value) = std::str::from_utf8(value.as_bytes()) else {
            return last_good;
        };
        for hop in value.rsplit(',') {
            hops += 1;
            if hops > MAX_HOPS {
                return last_good;
            }
            let Some(ip) = parse(hop.trim()) else {
                return last_good;
            };
            let ip = ip.to_canonical();
            if !proxies.contains(ip) {
                return ip;
            }
            last_good = ip;
        }
    }
    // Every hop was a trusted proxy: the leftmost one is where the request entered.
    last_good
}

/// One `X-Forwarded-For` hop: an IP address, tolerating `v4:port` and `[v6]:port`.
fn parse_xff_hop(hop: &str) -> Option<IpAddr> {
    parse_node(hop)
}

/// A node as written in `X-Forwarded-For` or a `Forwarded` `for=` value (quotes removed).
fn parse_node(node: &str) -> Option<IpAddr> {
    if node.is_empty() || node.len() > 64 {
        return None;
    }
    if let Ok(ip) = node.parse::<IpAddr>() {
        return Some(ip);
    }
    if let Some(rest) = node.strip_prefix('[') {
        // "[v6]" or "[v6]:port"
        let (addr, tail) = rest.split_once(']')?;
        if !(tail.is_empty() || tail.strip_prefix(':').is_some_and(is_port)) {
            return None;
        }
        return addr.parse::<Ipv6Addr>().ok().map(IpAddr::V6);
    }
    // "v4:port"
    let (addr, port) = node.split_once(':')?;
    if !is_port(port) {
        return None;
    }
    addr.parse::<Ipv4Addr>().ok().map(IpAddr::V4)
}

fn is_port(s: &str) -> bool {
    !s.is_empty() && s.len() <= 5 && s.bytes().all(|b| b.is_ascii_digit())
}

/// The `for=` node of one RFC 7239 `Forwarded` element (`for=1.2.3.4;proto=https;by=...`).
fn parse_forwarded_element(element: &str) -> Option<IpAddr> {
    for pair in element.split(';') {
        let (key, value) = pair.trim().split_once('=')?;
        if key.trim().eq_ignore_ascii_case("for") {
            let value = value.trim();
            let value = value
                .strip_prefix('"')
                .and_then(|v| v.strip_suffix('"'))
                .unwrap_or(value);
            return parse_node(value);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn req(peer: &str, headers: &[(&str, &[u8])]) -> Request<()> {
        let mut b = Request::builder();
        for (k, v) in headers {
            b = b.header(*k, http::HeaderValue::from_bytes(v).unwrap());
        }
        let mut r = b.body(()).unwrap();
        r.extensions_mut().insert(SocketAddr::new(ip(peer), 40_000));
        r
    }

    fn lb() -> TrustedProxies {
        TrustedProxies::parse_list("10.0.0.0/8, 192.168.1.1").unwrap()
    }

    #[test]
    fn untrusted_peer_is_the_client_whatever_the_headers_say() {
        let r = req(
            "198.51.100.9",
            &[
                ("x-forwarded-for", b"1.2.3.4"),
                ("forwarded", b"for=5.6.7.8"),
            ],
        );
        assert_eq!(lb().client_ip(&r), Some(ip("198.51.100.9")));
        assert_eq!(
            TrustedProxies::none().client_ip(&r),
            Some(ip("198.51.100.9"))
        );
    }

    #[test]
    fn trusted_peer_walks_right_to_left_skipping_trusted_hops() {
        let r = req(
            "10.0.0.2",
            &[(
                "x-forwarded-for",
                b"6.6.6.6, 203.0.113.7, 10.1.2.3, 192.168.1.1",
            )],
        );
        assert_eq!(lb().client_ip(&r), Some(ip("203.0.113.7")));
    }

    #[test]
    fn multiple_header_lines_are_one_list_in_order() {
        let r = req(
            "10.0.0.2",
            &[
                ("x-forwarded-for", b"6.6.6.6, 203.0.113.7"),
                ("x-forwarded-for", b"10.9.9.9"),
            ],
        );
        assert_eq!(lb().client_ip(&r), Some(ip("203.0.113.7")));
    }

    #[test]
    fn all_hops_trusted_gives_the_leftmost() {
        let r = req("10.0.0.2", &[("x-forwarded-for", b"10.0.0.7, 10.0.0.8")]);
        assert_eq!(lb().client_ip(&r), Some(ip("10.0.0.7")));
    }

    #[test]
    fn malformed_hops_stop_the_walk_at_the_last_good_address() {
        for bad in [
            &b"unknown"[..],
            b"not an ip",
            b"",
            b"1.2.3.4:99999999",
            b"[::1",
            b"300.1.1.1",
        ] {
            let r = req("10.0.0.2", &[("x-forwarded-for", bad)]);
            assert_eq!(lb().client_ip(&r), Some(ip("10.0.0.2")), "{bad:?}");
        }
        let r = req(
            "10.0.0.2",
            &[("x-forwarded-for", b"1.1.1.1, garbage, 10.0.0.5")],
        );
        assert_eq!(lb().client_ip(&r), Some(ip("10.0.0.5")));
        // Non-UTF-8 bytes.
        let r = req("10.0.0.2", &[("x-forwarded-for", &[0xff, 0xfe, b'1'])]);
        assert_eq!(lb().client_ip(&r), Some(ip("10.0.0.2")));
    }

    #[test]
    fn ports_and_brackets_are_tolerated() {
        let r = req("10.0.0.2", &[("x-forwarded-for", b"203.0.113.7:5555")]);
        assert_eq!(lb().client_ip(&r), Some(ip("203.0.113.7")));
        let r = req("10.0.0.2", &[("x-forwarded-for", b"[2001:db8::1]:443")]);
        assert_eq!(lb().client_ip(&r), Some(ip("2001:db8::1")));
        let r = req("10.0.0.2", &[("x-forwarded-for", b"2001:db8::2")]);
        assert_eq!(lb().client_ip(&r), Some(ip("2001:db8::2")));
    }

    #[test]
    fn forwarded_header_is_used_when_no_xff() {
        let r = req(
            "10.0.0.2",
            &[(
                "forwarded",
                b"for=6.6.6.6, for=\"[2001:db8:cafe::17]:4711\";proto=https, For=10.0.0.9;by=10.0.0.1",
            )],
        );
        assert_eq!(lb().client_ip(&r), Some(ip("2001:db8:cafe::17")));
        let r = req("10.0.0.2", &[("forwarded", b"for=_hidden;proto=http")]);
        assert_eq!(lb().client_ip(&r), Some(ip("10.0.0.2")));
        let r = req("10.0.0.2", &[("forwarded", b"proto=http")]);
        assert_eq!(lb().client_ip(&r), Some(ip("10.0.0.2")));
    }

    #[test]
    fn long_chains_are_bounded() {
        let mut chain = String::from("203.0.113.7");
        for _ in 0..100 {
            chain.push_str(", 10.0.0.1");
        }
        let r = req("10.0.0.2", &[("x-forwarded-for", chain.as_bytes())]);
        // 32 trusted hops looked at, then the walk stops at the last good one.
        assert_eq!(lb().client_ip(&r), Some(ip("10.0.0.1")));
    }

    #[test]
    fn ipv4_mapped_ipv6_matches_ipv4_networks() {
        assert!(lb().contains(ip("::ffff:10.1.1.1")));
        let r = req("::ffff:10.0.0.2", &[("x-forwarded-for", b"203.0.113.7")]);
        assert_eq!(lb().client_ip(&r), Some(ip("203.0.113.7")));
        let r = req("::ffff:198.51.100.1", &[]);
        assert_eq!(lb().client_ip(&r), Some(ip("198.51.100.1")));
    }

    #[test]
    fn unknown_peer_gives_none() {
        let r = Request::builder()
            .header("x-forwarded-for", "1.2.3.4")
            .body(())
            .unwrap();
        assert_eq!(TrustedProxies::loopback().client_ip(&r), None);
    }

    #[test]
    fn presets_and_parse_errors() {
        assert!(TrustedProxies::loopback().contains(ip("127.0.0.9")));
        assert!(TrustedProxies::loopback().contains(ip("::1")));
        assert!(!TrustedProxies::loopback().contains(ip("10.0.0.1")));
        let p = TrustedProxies::private_networks();
        for a in [
            "10.2.3.4",
            "172.31.0.1",
            "192.168.0.1",
            "fd00::1",
            "127.0.0.1",
        ] {
            assert!(p.contains(ip(a)), "{a}");
        }
        assert!(!p.contains(ip("172.32.0.1")));
        assert!(TrustedProxies::none().is_empty());
        let err = TrustedProxies::parse_list("10.0.0.0/8, nope").unwrap_err();
        assert_eq!(
            err,
            InvalidProxyList::InvalidEntry {
                position: 1,
                value: "nope".into()
            }
        );
        assert!(err.to_string().contains("entry 1"));
        assert_eq!(
            "".parse::<TrustedProxies>().unwrap(),
            TrustedProxies::none()
        );
    }

    #[cfg(feature = "axum")]
    #[test]
    fn connect_info_is_the_peer() {
        let mut r = Request::builder()
            .header("x-forwarded-for", "203.0.113.7")
            .body(())
            .unwrap();
        r.extensions_mut()
            .insert(axum::extract::ConnectInfo(SocketAddr::from((
                [10, 0, 0, 2],
                1,
            ))));
        assert_eq!(lb().client_ip(&r), Some(ip("203.0.113.7")));
    }
}
