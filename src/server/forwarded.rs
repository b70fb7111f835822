//! The client's address from the headers an HTTP proxy adds, sans-IO: `X-Forwarded-For` and
//! RFC 7239 `Forwarded`, believed only when they come from a proxy the server trusts.
//!
//! Anyone can send these headers, so [`client_addr`] reads them only when the TCP peer (or the
//! client a PROXY protocol header named) is in a [`TrustedProxies`] set, and then walks the hops
//! from the right, the nearest first: each hop a trusted proxy reported is believed; the first
//! address that is not itself a trusted proxy is the client (the rightmost untrusted address,
//! the rule nginx's `real_ip_recursive` and Express' `trust proxy` follow). Entries to the left
//! of it were written by the client or by proxies nobody vouches for, and are never read.
//!
//! A hop reported as `unknown`, as an obfuscated identifier (`_hidden`), or in a form that does
//! not parse, stops the walk: the answer is then the last trusted proxy's own address, never a
//! guess. `Forwarded` wins over `X-Forwarded-For` when both are present; several header lines of
//! one name are read in order, as one list.
//!
//! # Examples
//!
//! ```
//! use std::net::SocketAddr;
//! use wsx::server::forwarded::client_addr;
//! use wsx::TrustedProxies;
//!
//! let trusted: TrustedProxies = "10.0.0.0/8, 2001:db8::/32".parse()?;
//! let proxy: SocketAddr = "10.1.2.3:50000".parse().unwrap();
//! let headers = [("X-Forwarded-For", &b"198.51.100.7, 203.0.113.9, 10.9.9.9"[..])];
//! // 10.9.9.9 is another trusted hop; 203.0.113.9 is the client (198.51.100.7 is what the
//! // client itself claimed, and is not believed).
//! assert_eq!(
//!     client_addr(proxy, headers, &trusted),
//!     "203.0.113.9:0".parse::<SocketAddr>().unwrap()
//! );
//!
//! // The same headers from a peer that is not trusted are ignored.
//! let stranger: SocketAddr = "192.0.2.1:4000".parse().unwrap();
//! assert_eq!(client_addr(stranger, headers, &trusted), stranger);
//! # Ok::<(), wsx::TrustedProxiesError>(())
//! ```

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::str::FromStr;

/// The most hops [`client_addr`] looks at; a longer chain stops there (at the last trusted
/// proxy's address), so that a header of thousands of entries costs no more than this.
pub const MAX_HOPS: usize = 32;

/// Addresses whose forwarding headers are believed: CIDR blocks and single addresses, IPv4 and
/// IPv6. An IPv4-mapped IPv6 address (`::ffff:10.0.0.1`, as a dual-stack socket reports an IPv4
/// peer) matches the IPv4 blocks.
///
/// Empty by default: no header is believed.
///
/// # Examples
///
/// ```
/// use wsx::TrustedProxies;
///
/// let trusted = TrustedProxies::parse(["127.0.0.1", "10.0.0.0/8", "fd00::/8"])?;
/// assert!(trusted.contains("10.20.30.40".parse().unwrap()));
/// assert!(trusted.contains("::ffff:127.0.0.1".parse().unwrap()));
/// assert!(!trusted.contains("127.0.0.2".parse().unwrap()));
/// assert!(TrustedProxies::parse(["10.0.0.0/33"]).is_err());
/// # Ok::<(), wsx::TrustedProxiesError>(())
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrustedProxies {
    nets: Vec<Net>,
}

/// One block: an address with its host bits cleared, and the prefix length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Net {
    addr: IpAddr,
    prefix: u8,
}

impl Net {
    fn contains(&self, ip: IpAddr) -> bool {
        match (self.addr, ip.to_canonical()) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => mask32(ip.to_bits(), self.prefix) == net.to_bits(),
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                mask128(ip.to_bits(), self.prefix) == net.to_bits()
            }
            _ => false,
        }
    }
}

fn mask32(v: u32, prefix: u8) -> u32 {
    if prefix == 0 {
        0
    } else {
        v & (u32::MAX << (32 - u32::from(prefix)))
    }
}

fn mask128(v: u128, prefix: u8) -> u128 {
    if prefix == 0 {
        0
    } else {
        v & (u128::MAX << (128 - u32::from(prefix)))
    }
}

/// A trusted-proxy entry that is neither an address nor a CIDR block.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid trusted proxy {input:?}: {reason}")]
pub struct TrustedProxiesError {
    input: String,
    reason: &'static str,
}

impl TrustedProxiesError {
    /// The entry as given.
    pub fn input(&self) -> &str {
        &self.input
    }
}

impl TrustedProxies {
    /// An empty set: no forwarding header is believed.
    pub fn new() -> Self {
        TrustedProxies::default()
    }

    /// A set of `entries`, each an address (`127.0.0.1`, `::1`) or a CIDR block (`10.0.0.0/8`,
    /// `2001:db8::/32`; host bits past the prefix are ignored).
    ///
    /// # Errors
    ///
    /// An entry that is not an address or block (a bad address, a prefix over 32 or 128).
    pub fn parse<I, S>(entries: I) -> Result<Self, TrustedProxiesError>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let mut set = TrustedProxies::new();
        for entry in entries {
            set.add(entry.as_ref())?;
        }
        Ok(set)
    }

    /// Adds one entry, as [`TrustedProxies::parse`] reads it.
    ///
    /// # Errors
    ///
    /// The entry is not an address or block.
    pub fn add(&mut self, entry: &str) -> Result<(), TrustedProxiesError> {
        let err = |reason| TrustedProxiesError {
            input: entry.to_owned(),
            reason,
        };
        let text = entry.trim();
        let (addr, prefix) = match text.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (text, None),
        };
        let addr: IpAddr = addr.parse().map_err(|_| err("not an ip address"))?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            None => max,
            Some(p) if !p.is_empty() && p.len() <= 3 && p.bytes().all(|b| b.is_ascii_digit()) => {
                p.parse::<u8>().map_err(|_| err("bad prefix length"))?
            }
            Some(_) => return Err(err("bad prefix length")),
        };
        if prefix > max {
            return Err(err("prefix length too long for the address family"));
        }
        // `::ffff:10.0.0.0/104` is the IPv4 block 10.0.0.0/8.
        let (addr, prefix) = match addr {
            IpAddr::V6(v6) if v6.to_ipv4_mapped().is_some() && prefix >= 96 => (
                IpAddr::V4(v6.to_ipv4_mapped().unwrap_or(Ipv4Addr::UNSPECIFIED)),
                prefix - 96,
            ),
            other => (other, prefix),
        };
        let addr = match addr {
            IpAddr::V4(v4) => IpAddr::V4(Ipv4Addr::from_bits(mask32(v4.to_bits(), prefix))),
            IpAddr::V6(v6) => IpAddr::V6(Ipv6Addr::from_bits(mask128(v6.to_bits(), prefix))),
        };
        self.nets.push(Net { addr, prefix });
        Ok(())
    }

    /// Whether `ip` is a trusted proxy.
    pub fn contains(&self, ip: IpAddr) -> bool {
        self.nets.iter().any(|n| n.contains(ip))
    }

    /// Whether the set is empty (no header is ever believed).
    pub fn is_empty(&self) -> bool {
        self.nets.is_empty()
    }
}

/// Entries separated by commas or white space, as `--trust-proxy` and configuration files
/// write them: `"10.0.0.0/8, ::1"`.
impl FromStr for TrustedProxies {
    type Err = TrustedProxiesError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        TrustedProxies::parse(s.split([',', ' ', '\t']).filter(|e| !e.is_empty()))
    }
}

impl fmt::Display for TrustedProxies {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, net) in self.nets.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            write!(f, "{}/{}", net.addr, net.prefix)?;
        }
        Ok(())
    }
}

/// One hop of a forwarding header, as a proxy reported its client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Node {
    /// An address, with its port if one was given.
    Addr(IpAddr, Option<u16>),
    /// `unknown`: the proxy does not know, or does not say.
    Unknown,
    /// An obfuscated identifier (RFC 7239 §6.3, `_hidden`).
    Obfuscated(String),
    /// A `Forwarded` element without `for=`, or a value that does not parse.
    Invalid,
}

/// The hops of one `X-Forwarded-For` value, leftmost (furthest) first: addresses with or
/// without a port (`192.0.2.1`, `192.0.2.1:4711`, `2001:db8::1`, `[2001:db8::1]:4711`) or
/// `unknown`; anything else is [`Node::Invalid`].
pub fn x_forwarded_for(value: &[u8]) -> Vec<Node> {
    value
        .split(|&b| b == b',')
        .map(|entry| match std::str::from_utf8(entry) {
            Ok(s) => node(s.trim_matches([' ', '\t'])),
            Err(_) => Node::Invalid,
        })
        .collect()
}

/// The `for=` hops of one RFC 7239 `Forwarded` value, leftmost first (one per element:
/// `for=192.0.2.60;proto=http;by=203.0.113.43, for="[2001:db8:cafe::17]:4711"`). Parameter
/// names are case-insensitive, values a token or a quoted string; an element without `for=`,
/// or that breaks the grammar, is [`Node::Invalid`] (an unterminated quote takes the rest of
/// the line with it).
pub fn forwarded(value: &[u8]) -> Vec<Node> {
    let mut nodes = Vec::new();
    let mut at = 0;
    while at <= value.len() {
        let (node, next) = element(value, at);
        nodes.push(node);
        match next {
            Some(n) => at = n,
            None => break,
        }
    }
    nodes
}

/// Parses the element at `value[at..]`: its `for=` node, and where the next element starts
/// (after the comma), if any.
fn element(value: &[u8], mut at: usize) -> (Node, Option<usize>) {
    let mut found: Option<Node> = None;
    let mut bad = false;
    loop {
        at = skip_ows(value, at);
        // A pair: token "=" (token / quoted-string); empty pairs between ';' are allowed.
        let name_start = at;
        while value.get(at).is_some_and(|&b| is_tchar(b)) {
            at += 1;
        }
        let name = &value[name_start..at];
        let mut pair_value: Option<Vec<u8>> = None;
        if !name.is_empty() {
            if value.get(at) != Some(&b'=') {
                bad = true;
            } else {
                at += 1;
                if value.get(at) == Some(&b'"') {
                    at += 1;
                    let mut v = Vec::new();
                    loop {
                        match value.get(at) {
                            None => return (Node::Invalid, None),
                            Some(b'"') => {
                                at += 1;
                                break;
                            }
                            Some(b'\\') => {
                                let Some(&c) = value.get(at + 1) else {
                                    return (Node::Invalid, None);
                                };
                                v.push(c);
                                at += 2;
                            }
                            Some(&c) => {
                                v.push(c);
                                at += 1;
                            }
                        }
                    }
                    pair_value = Some(v);
                } else {
                    let start = at;
                    // Lenient: `:` and `[]` are not token characters, but some proxies send
                    // `for=192.0.2.1:80` unquoted.
                    while value
                        .get(at)
                        .is_some_and(|&b| is_tchar(b) || matches!(b, b':' | b'[' | b']'))
                    {
                        at += 1;
                    }
                    pair_value = Some(value[start..at].to_vec());
                }
            }
        }
        if let Some(v) = pair_value {
            if name.eq_ignore_ascii_case(b"for") {
                if found.is_some() {
                    bad = true; // "for" twice in one element
                }
                found = Some(match std::str::from_utf8(&v) {
                    Ok(s) => for_node(s),
                    Err(_) => Node::Invalid,
                });
            }
        }
        at = skip_ows(value, at);
        match value.get(at) {
            Some(b';') => at += 1,
            Some(b',') => {
                let node = if bad {
                    Node::Invalid
                } else {
                    found.unwrap_or(Node::Invalid)
                };
                return (node, Some(at + 1));
            }
            None => {
                let node = if bad {
                    Node::Invalid
                } else {
                    found.unwrap_or(Node::Invalid)
                };
                return (node, None);
            }
            Some(_) => {
                // Garbage: skip to the next comma outside quotes (none: the line ends).
                let mut quoted = false;
                while let Some(&b) = value.get(at) {
                    match b {
                        b'"' => quoted = !quoted,
                        b'\\' if quoted => at += 1,
                        b',' if !quoted => return (Node::Invalid, Some(at + 1)),
                        _ => {}
                    }
                    at += 1;
                }
                return (Node::Invalid, None);
            }
        }
    }
}

fn skip_ows(value: &[u8], mut at: usize) -> usize {
    while matches!(value.get(at), Some(b' ' | b'\t')) {
        at += 1;
    }
    at
}

/// RFC 9110 `tchar`.
fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// A `for=` value: `unknown`, `_obfuscated`, an IPv4 address or a bracketed IPv6 one, with an
/// optional `:port` (digits or an obfuscated port, which counts as none).
fn for_node(s: &str) -> Node {
    if s.eq_ignore_ascii_case("unknown") {
        return Node::Unknown;
    }
    if let Some(rest) = s.strip_prefix('_') {
        let obf = |id: &str| {
            !id.is_empty()
                && id
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
        };
        let ok = match rest.split_once(':') {
            None => obf(rest),
            Some((id, port)) => {
                obf(id) && (digits(port).is_some() || port.strip_prefix('_').is_some_and(obf))
            }
        };
        return if ok {
            Node::Obfuscated(s.to_owned())
        } else {
            Node::Invalid
        };
    }
    let (host, port) = if let Some(rest) = s.strip_prefix('[') {
        let Some((v6, after)) = rest.split_once(']') else {
            return Node::Invalid;
        };
        let Ok(ip) = v6.parse::<Ipv6Addr>() else {
            return Node::Invalid;
        };
        (IpAddr::V6(ip), after)
    } else {
        let (v4, after) = match s.find(':') {
            Some(i) => s.split_at(i),
            None => (s, ""),
        };
        let Ok(ip) = v4.parse::<Ipv4Addr>() else {
            return Node::Invalid;
        };
        (IpAddr::V4(ip), after)
    };
    match port.strip_prefix(':') {
        None if port.is_empty() => Node::Addr(host, None),
        None => Node::Invalid,
        Some(p) if p.starts_with('_') && p.len() > 1 => Node::Addr(host, None),
        Some(p) => match digits(p) {
            Some(n) => Node::Addr(host, Some(n)),
            None => Node::Invalid,
        },
    }
}

/// An `X-Forwarded-For` entry: `unknown`, an address, or an address with a port.
fn node(s: &str) -> Node {
    if s.eq_ignore_ascii_case("unknown") {
        return Node::Unknown;
    }
    if let Ok(ip) = s.parse::<IpAddr>() {
        return Node::Addr(ip, None);
    }
    if let Ok(sa) = s.parse::<SocketAddr>() {
        return Node::Addr(sa.ip(), Some(sa.port()));
    }
    match s.strip_prefix('[').and_then(|r| r.strip_suffix(']')) {
        Some(v6) => match v6.parse::<Ipv6Addr>() {
            Ok(ip) => Node::Addr(IpAddr::V6(ip), None),
            Err(_) => Node::Invalid,
        },
        None => Node::Invalid,
    }
}

fn digits(p: &str) -> Option<u16> {
    if p.is_empty() || p.len() > 5 || !p.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    p.parse().ok()
}

/// The real client's address of a connection from `peer` that sent `headers` (name, value),
/// by the rule in the [module docs](self): `peer` itself unless it is trusted; else the
/// rightmost hop of `Forwarded` (or, without it, `X-Forwarded-For`) that is not a trusted
/// proxy. A hop without a port gives port 0.
pub fn client_addr<'a, I>(peer: SocketAddr, headers: I, trusted: &TrustedProxies) -> SocketAddr
where
    I: IntoIterator<Item = (&'a str, &'a [u8])>,
{
    if !trusted.contains(peer.ip()) {
        return peer;
    }
    let mut fwd: Vec<Node> = Vec::new();
    let mut xff: Vec<Node> = Vec::new();
    let mut has_fwd = false;
    for (name, value) in headers {
        if name.eq_ignore_ascii_case("forwarded") {
            has_fwd = true;
            fwd.extend(forwarded(value));
        } else if !has_fwd && name.eq_ignore_ascii_case("x-forwarded-for") {
            xff.extend(x_forwarded_for(value));
        }
    }
    let chain = if has_fwd { fwd } else { xff };
    let mut last = peer;
    for hop in chain.iter().rev().take(MAX_HOPS) {
        match *hop {
            Node::Addr(ip, port) => {
                let addr = SocketAddr::new(ip, port.unwrap_or(0));
                if !trusted.contains(ip) {
                    return addr;
                }
                last = addr;
            }
            _ => return last,
        }
    }
    last
}

#[cfg(test)]
#[path = "forwarded_tests.rs"]
mod tests;
