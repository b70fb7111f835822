//! Source addresses, so that one machine opens more connections to one server address than one
//! source address allows.
//!
//! A TCP connection is named by (source address, source port, server address, server port).
//! Towards one server address and port, one source address has only the ephemeral port range
//! (`/proc/sys/net/ipv4/ip_local_port_range`, 32768–60999 by default: 28,232 ports), and a
//! socket bound to an address with port 0 takes a port of its own from that range. Past ~28k
//! connections the next `connect` fails with `EADDRNOTAVAIL`. Spreading the connections over
//! several source addresses gives each its own range.
//!
//! Linux routes the whole of 127.0.0.0/8 to the loopback interface, so for a server on loopback
//! every 127.x.y.z address can be bound without configuring anything: `auto` uses that. IPv6
//! has a single loopback address, `::1`; more need `ip -6 addr add … dev lo` and a list.
//!
//! # Syntax
//!
//! `--sources` takes a comma-separated list of addresses and inclusive ranges of one family:
//! `127.0.0.2-127.0.0.200`, `127.0.0.1,127.0.0.5`, `10.0.0.1,10.0.0.8-10.0.0.9`,
//! `::1,fd00::1-fd00::8`; or `auto` (see [`Sources::auto`]); or `none` (let the kernel pick,
//! as without the option). Connection `i` uses address `i mod len` (round robin).

use std::collections::HashSet;
use std::fmt;
use std::fs;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// Most addresses one `--sources` value may name: 65,536 addresses of 1,000 connections each
/// is far beyond what one machine holds, and the bound keeps a typo such as
/// `127.0.0.1-127.255.0.1` from allocating millions of entries.
pub const MAX_ADDRESSES: usize = 65_536;

/// Connections that [`Sources::auto`] puts on one source address. An address could carry
/// ~28k (the default ephemeral range), but a `bind` to port 0 must find a port free on that
/// address, sockets in `TIME_WAIT` from earlier runs included, and it gets slow as the range
/// fills: measured here, 19,700 connections ramped at 463/s from one address with 20,000 per
/// address, and at 20.8k/s from 32 addresses (docs/performance.md, "Scale record"). At 1,000
/// per address the search stays short; 127/8 has addresses enough for millions. Lower when the
/// machine's range is smaller (see [`per_address_default`]).
pub const PER_ADDRESS: usize = 1_000;

/// The source addresses of a run: none (the kernel picks) or a list used round robin.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Sources {
    addrs: Vec<IpAddr>,
}

/// Why a `--sources` value was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SourcesError {
    /// An item is neither an address nor a range `A-B` of addresses.
    Syntax(String),
    /// A range whose end is before its start.
    Backwards(String),
    /// More than [`MAX_ADDRESSES`] addresses in all.
    TooMany(u128),
    /// IPv4 and IPv6 addresses together, or a family other than the target's.
    MixedFamilies(String),
    /// An address listed twice (it would carry twice its share of connections).
    Duplicate(IpAddr),
    /// `auto` for a target that is not a loopback address.
    AutoNotLoopback(IpAddr),
    /// `auto` for an IPv6 loopback target with more connections than `::1` alone holds.
    AutoIpv6(usize),
}

impl fmt::Display for SourcesError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Syntax(item) => write!(
                f,
                "invalid source address {item:?} (expected an address, a range A-B, a list of them, auto or none)"
            ),
            Self::Backwards(item) => write!(f, "source range {item:?} ends before it starts"),
            Self::TooMany(n) => write!(
                f,
                "{n} source addresses (at most {MAX_ADDRESSES}: each carries ~{PER_ADDRESS} connections)"
            ),
            Self::MixedFamilies(why) => write!(f, "source addresses of mixed families: {why}"),
            Self::Duplicate(addr) => write!(f, "source address {addr} listed twice"),
            Self::AutoNotLoopback(target) => write!(
                f,
                "--sources auto needs a loopback target, and {target} is not one: auto binds \
                 127.x addresses, which reach only this machine; list source addresses this \
                 machine owns instead (e.g. 10.0.0.2-10.0.0.9)"
            ),
            Self::AutoIpv6(c) => write!(
                f,
                "--sources auto cannot spread {c} connections over IPv6 loopback: ::1 is its \
                 only address (~{PER_ADDRESS} connections); target 127.0.0.1, or add addresses \
                 to lo (ip -6 addr add fd00::1/128 dev lo) and list them"
            ),
        }
    }
}

impl std::error::Error for SourcesError {}

impl Sources {
    /// No source address: the kernel picks one per connection (the target's route decides).
    pub fn none() -> Self {
        Self::default()
    }

    /// Parses a `--sources` value (see the [module docs](self) for the syntax) for a run of
    /// `connections` connections to `target`.
    ///
    /// Listed addresses need not be loopback ones even when the target is: binding them is the
    /// user's choice, and the kernel says so at connect time if the machine does not own them.
    ///
    /// # Errors
    ///
    /// Bad syntax, a range that runs backwards, more than [`MAX_ADDRESSES`] addresses, a
    /// duplicate, addresses of both families or of a family other than the target's, and the
    /// errors of [`Sources::auto`].
    pub fn parse(spec: &str, target: IpAddr, connections: usize) -> Result<Self, SourcesError> {
        let spec = spec.trim();
        if spec.eq_ignore_ascii_case("auto") {
            return Self::auto(target, connections);
        }
        if spec.eq_ignore_ascii_case("none") {
            return Ok(Self::none());
        }
        let sources = Self::parse_list(spec)?;
        if let Some(first) = sources.addrs.first() {
            if first.is_ipv4() != target.is_ipv4() {
                return Err(SourcesError::MixedFamilies(format!(
                    "{} for the target {target}",
                    family(*first)
                )));
            }
        }
        Ok(sources)
    }

    /// Parses a list of addresses and ranges without a target (no `auto`, no family check
    /// against the target).
    ///
    /// # Errors
    ///
    /// As [`Sources::parse`], less the target's.
    pub fn parse_list(spec: &str) -> Result<Self, SourcesError> {
        let mut addrs: Vec<IpAddr> = Vec::new();
        let mut seen = HashSet::new();
        let mut total: u128 = 0;
        for item in spec.split(',') {
            let item = item.trim();
            let (start, end) = match item.split_once('-') {
                Some((a, b)) => (parse_addr(a, item)?, parse_addr(b, item)?),
                None => {
                    let a = parse_addr(item, item)?;
                    (a, a)
                }
            };
            if start.is_ipv4() != end.is_ipv4() {
                return Err(SourcesError::MixedFamilies(format!("in {item:?}")));
            }
            if let Some(first) = addrs.first() {
                if first.is_ipv4() != start.is_ipv4() {
                    return Err(SourcesError::MixedFamilies(format!("{first} and {start}")));
                }
            }
            let (lo, hi) = (to_u128(start), to_u128(end));
            if hi < lo {
                return Err(SourcesError::Backwards(item.to_owned()));
            }
            total = total.saturating_add(hi - lo + 1);
            if total > MAX_ADDRESSES as u128 {
                return Err(SourcesError::TooMany(total));
            }
            for n in lo..=hi {
                let addr = from_u128(n, start.is_ipv4());
                if !seen.insert(addr) {
                    return Err(SourcesError::Duplicate(addr));
                }
                addrs.push(addr);
            }
        }
        Ok(Self { addrs })
    }

    /// Enough loopback source addresses for `connections` connections to the loopback
    /// `target`: one per [`per_address_default`] connections (at least one), from `127.0.0.2`
    /// up (`127.0.0.255` is followed by `127.0.1.0`, and so on).
    ///
    /// `127.0.0.1` is left to connections made without a source address (other tools, the
    /// machine's own traffic). The target's own address is not skipped when it falls in the
    /// range: a connection from 127.0.0.5 to a server on 127.0.0.5 is an ordinary loopback
    /// connection, and the kernel never hands out the server's listening port as a source port,
    /// so it cannot connect to itself.
    ///
    /// For an IPv6 loopback target (`::1`, the only one) the result is [`Sources::none`] when
    /// one address holds the connections.
    ///
    /// # Errors
    ///
    /// A target outside loopback ([`SourcesError::AutoNotLoopback`]: 127.x sources cannot
    /// reach it), an IPv6 target with more connections than `::1` holds, or a count that would
    /// need more than [`MAX_ADDRESSES`] addresses.
    pub fn auto(target: IpAddr, connections: usize) -> Result<Self, SourcesError> {
        Self::auto_with(target, connections, per_address_default())
    }

    fn auto_with(
        target: IpAddr,
        connections: usize,
        per_address: usize,
    ) -> Result<Self, SourcesError> {
        if !target.is_loopback() {
            return Err(SourcesError::AutoNotLoopback(target));
        }
        let per_address = per_address.max(1);
        let needed = connections.div_ceil(per_address).max(1);
        if target.is_ipv6() {
            return if needed == 1 {
                Ok(Self::none())
            } else {
                Err(SourcesError::AutoIpv6(connections))
            };
        }
        if needed > MAX_ADDRESSES {
            return Err(SourcesError::TooMany(needed as u128));
        }
        let first = u32::from(Ipv4Addr::new(127, 0, 0, 2));
        let addrs = (0..needed as u32)
            .map(|k| IpAddr::V4(Ipv4Addr::from(first + k)))
            .collect();
        Ok(Self { addrs })
    }

    /// The source address of connection `i` (round robin), or `None` to let the kernel pick.
    pub fn for_connection(&self, i: usize) -> Option<IpAddr> {
        if self.addrs.is_empty() {
            None
        } else {
            Some(self.addrs[i % self.addrs.len()])
        }
    }

    /// The number of source addresses (0 for [`Sources::none`]).
    pub fn len(&self) -> usize {
        self.addrs.len()
    }

    /// Whether there is no source address (the kernel picks).
    pub fn is_empty(&self) -> bool {
        self.addrs.is_empty()
    }

    /// The addresses, in round-robin order.
    pub fn addrs(&self) -> &[IpAddr] {
        &self.addrs
    }
}

impl fmt::Display for Sources {
    /// `none`, one address, or `first..last (N addresses)` for a report.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.addrs.as_slice() {
            [] => f.write_str("none"),
            [one] => write!(f, "{one}"),
            [first, .., last] => write!(f, "{first}..{last} ({} addresses)", self.addrs.len()),
        }
    }
}

/// Connections per source address for `auto`: [`PER_ADDRESS`], or three quarters of this
/// machine's ephemeral range if that is smaller (read from `/proc/sys/net/ipv4/ip_local_port_range`;
/// [`PER_ADDRESS`] where it cannot be read).
pub fn per_address_default() -> usize {
    fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|text| per_address_for_range(&text))
        .unwrap_or(PER_ADDRESS)
}

/// The connection budget of one address given the text of `ip_local_port_range` (`LOW HIGH`).
fn per_address_for_range(text: &str) -> Option<usize> {
    let mut parts = text.split_ascii_whitespace();
    let low: usize = parts.next()?.parse().ok()?;
    let high: usize = parts.next()?.parse().ok()?;
    let ports = high.checked_sub(low)? + 1;
    Some((ports * 3 / 4).clamp(1, PER_ADDRESS))
}

fn parse_addr(text: &str, item: &str) -> Result<IpAddr, SourcesError> {
    let text = text.trim();
    let text = text
        .strip_prefix('[')
        .and_then(|t| t.strip_suffix(']'))
        .unwrap_or(text);
    text.parse()
        .map_err(|_| SourcesError::Syntax(item.to_owned()))
}

fn family(addr: IpAddr) -> &'static str {
    if addr.is_ipv4() {
        "IPv4 sources"
    } else {
        "IPv6 sources"
    }
}

fn to_u128(addr: IpAddr) -> u128 {
    match addr {
        IpAddr::V4(a) => u128::from(u32::from(a)),
        IpAddr::V6(a) => u128::from(a),
    }
}

/// The inverse of [`to_u128`]; only called with values inside a parsed range of the family.
fn from_u128(n: u128, v4: bool) -> IpAddr {
    if v4 {
        IpAddr::V4(Ipv4Addr::from(u32::try_from(n).unwrap_or(u32::MAX)))
    } else {
        IpAddr::V6(Ipv6Addr::from(n))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};
    use std::net::{SocketAddr, TcpListener};
    use std::time::Duration;

    const LOOPBACK: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

    fn v4(s: &str) -> IpAddr {
        s.parse().expect("test address")
    }

    #[test]
    fn a_range_is_inclusive_and_round_robin() {
        let s = Sources::parse("127.0.0.2-127.0.0.200", LOOPBACK, 1000).expect("parses");
        assert_eq!(s.len(), 199);
        assert_eq!(s.for_connection(0), Some(v4("127.0.0.2")));
        assert_eq!(s.for_connection(198), Some(v4("127.0.0.200")));
        assert_eq!(s.for_connection(199), Some(v4("127.0.0.2")));
        assert_eq!(s.for_connection(200), Some(v4("127.0.0.3")));
        assert_eq!(s.to_string(), "127.0.0.2..127.0.0.200 (199 addresses)");
    }

    #[test]
    fn a_range_crosses_octets() {
        let s = Sources::parse_list("10.0.0.254-10.0.1.1").expect("parses");
        let expected: Vec<IpAddr> = ["10.0.0.254", "10.0.0.255", "10.0.1.0", "10.0.1.1"]
            .iter()
            .map(|a| v4(a))
            .collect();
        assert_eq!(s.addrs(), expected.as_slice());
    }

    #[test]
    fn lists_mix_addresses_and_ranges() {
        let s = Sources::parse("127.0.0.1,127.0.0.5", LOOPBACK, 10).expect("parses");
        assert_eq!(s.addrs(), &[v4("127.0.0.1"), v4("127.0.0.5")]);
        assert_eq!(s.for_connection(3), Some(v4("127.0.0.5")));
        let s = Sources::parse(" 127.0.0.9 , 127.0.0.2-127.0.0.3 ", LOOPBACK, 10).expect("parses");
        assert_eq!(
            s.addrs(),
            &[v4("127.0.0.9"), v4("127.0.0.2"), v4("127.0.0.3")]
        );
        let ipv6 = IpAddr::V6(Ipv6Addr::LOCALHOST);
        let s = Sources::parse("::1,[fd00::1]-fd00::3", ipv6, 10).expect("parses");
        assert_eq!(s.len(), 4);
        assert_eq!(s.for_connection(3), Some("fd00::3".parse().expect("v6")));
        assert_eq!(
            Sources::parse("127.0.0.7", LOOPBACK, 1)
                .expect("one")
                .to_string(),
            "127.0.0.7"
        );
    }

    #[test]
    fn none_lets_the_kernel_pick() {
        for s in [
            Sources::none(),
            Sources::parse("none", LOOPBACK, 5).expect("none"),
        ] {
            assert_eq!(s.len(), 0);
            assert!(s.is_empty());
            assert_eq!(s.for_connection(0), None);
            assert_eq!(s.for_connection(12345), None);
            assert_eq!(s.to_string(), "none");
        }
    }

    #[test]
    fn a_non_loopback_list_for_a_loopback_target_is_the_users_choice() {
        let s = Sources::parse("192.0.2.1-192.0.2.4", LOOPBACK, 10).expect("allowed");
        assert_eq!(s.len(), 4);
    }

    #[test]
    fn bad_values_are_refused_with_a_reason() {
        use SourcesError as E;
        type Check = fn(&SourcesError) -> bool;
        let cases: &[(&str, Check)] = &[
            ("", |e| matches!(e, E::Syntax(_))),
            ("127.0.0.1,", |e| matches!(e, E::Syntax(_))),
            ("127.0.0", |e| matches!(e, E::Syntax(_))),
            ("127.0.0.1-", |e| matches!(e, E::Syntax(_))),
            ("127.0.0.1-127.0.0.2-127.0.0.3", |e| {
                matches!(e, E::Syntax(_))
            }),
            ("localhost", |e| matches!(e, E::Syntax(_))),
            ("127.0.0.1:80", |e| matches!(e, E::Syntax(_))),
            ("127.0.0.9-127.0.0.2", |e| matches!(e, E::Backwards(_))),
            ("127.0.0.0-127.1.0.0", |e| matches!(e, E::TooMany(65_537))),
            ("127.0.0.0-127.0.255.255,127.1.0.0", |e| {
                matches!(e, E::TooMany(65_537))
            }),
            ("127.0.0.1,::1", |e| matches!(e, E::MixedFamilies(_))),
            ("127.0.0.1-::1", |e| matches!(e, E::MixedFamilies(_))),
            ("::1", |e| matches!(e, E::MixedFamilies(_))), // IPv6 sources, IPv4 target
            ("127.0.0.2,127.0.0.1-127.0.0.3", |e| {
                *e == E::Duplicate(IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2)))
            }),
        ];
        for (spec, check) in cases {
            let err = Sources::parse(spec, LOOPBACK, 10).expect_err(spec);
            assert!(check(&err), "{spec:?} gave {err:?}");
            let text = err.to_string();
            assert!(
                text.chars().next().is_some_and(|c| !c.is_uppercase()),
                "error starts lower-case: {text}"
            );
        }
        // Exactly the maximum is fine.
        let s = Sources::parse_list("127.0.0.0-127.0.255.255").expect("65,536 addresses");
        assert_eq!(s.len(), MAX_ADDRESSES);
    }

    #[test]
    fn auto_spreads_over_127_addresses() {
        let s = Sources::auto_with(LOOPBACK, 1_000_000, 20_000).expect("auto");
        assert_eq!(s.len(), 50);
        assert_eq!(s.for_connection(0), Some(v4("127.0.0.2")));
        assert_eq!(s.for_connection(49), Some(v4("127.0.0.51")));
        let s = Sources::auto_with(LOOPBACK, 20_001, 20_000).expect("auto");
        assert_eq!(s.len(), 2);
        // Few connections still get one explicit address; zero too.
        assert_eq!(
            Sources::auto_with(LOOPBACK, 5, 20_000).expect("auto").len(),
            1
        );
        assert_eq!(
            Sources::auto_with(LOOPBACK, 0, 20_000).expect("auto").len(),
            1
        );
        // Past 127.0.0.255 the next address is 127.0.1.0.
        let s = Sources::auto_with(v4("127.0.0.1"), 300, 1).expect("auto");
        assert_eq!(s.for_connection(253), Some(v4("127.0.0.255")));
        assert_eq!(s.for_connection(254), Some(v4("127.0.1.0")));
        // Any 127/8 target is loopback, also one inside the range (it is not skipped).
        let s = Sources::auto_with(v4("127.0.0.3"), 60_000, 20_000).expect("auto");
        assert_eq!(
            s.addrs(),
            &[v4("127.0.0.2"), v4("127.0.0.3"), v4("127.0.0.4")]
        );
        assert!(matches!(
            Sources::auto_with(LOOPBACK, usize::MAX, 1),
            Err(SourcesError::TooMany(_))
        ));
        // Through parse, with this machine's budget per address.
        let s = Sources::parse("AUTO", LOOPBACK, 100_000).expect("auto");
        assert_eq!(s.len(), 100_000usize.div_ceil(per_address_default()));
    }

    #[test]
    fn auto_needs_a_loopback_target() {
        let err = Sources::parse("auto", v4("192.0.2.10"), 100).expect_err("not loopback");
        assert_eq!(err, SourcesError::AutoNotLoopback(v4("192.0.2.10")));
        assert!(err.to_string().contains("loopback"), "{err}");
        let ipv6 = IpAddr::V6(Ipv6Addr::LOCALHOST);
        assert_eq!(Sources::auto_with(ipv6, 100, 20_000), Ok(Sources::none()));
        assert_eq!(
            Sources::auto_with(ipv6, 30_000, 20_000),
            Err(SourcesError::AutoIpv6(30_000))
        );
    }

    #[test]
    fn per_address_follows_the_port_range() {
        assert_eq!(per_address_for_range("32768\t60999\n"), Some(PER_ADDRESS));
        assert_eq!(per_address_for_range("50000 50999"), Some(750));
        assert_eq!(per_address_for_range("40000 40000"), Some(1));
        assert_eq!(per_address_for_range("60999 32768"), None);
        assert_eq!(per_address_for_range("garbage"), None);
        assert!(per_address_default() >= 1 && per_address_default() <= PER_ADDRESS);
    }

    /// Linux routes all of 127/8 to lo: a socket bound to each of 127.0.0.2..=127.0.0.9
    /// reaches a listener on 127.0.0.1, and the server sees that address as the peer.
    #[test]
    fn binding_127_addresses_reaches_a_loopback_listener() {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("listener");
        let target = listener.local_addr().expect("listener address");
        let sources = Sources::parse("127.0.0.2-127.0.0.9", target.ip(), 8).expect("parses");
        for i in 0..sources.len() {
            let source = sources.for_connection(i).expect("an address");
            let socket = socket2::Socket::new(
                socket2::Domain::IPV4,
                socket2::Type::STREAM,
                Some(socket2::Protocol::TCP),
            )
            .expect("socket");
            socket
                .bind(&SocketAddr::new(source, 0).into())
                .unwrap_or_else(|e| panic!("bind {source}: {e}"));
            socket
                .connect_timeout(&target.into(), Duration::from_secs(10))
                .unwrap_or_else(|e| panic!("connect from {source}: {e}"));
            let mut client: std::net::TcpStream = socket.into();
            let (mut accepted, peer) = listener.accept().expect("accept");
            assert_eq!(
                peer.ip(),
                source,
                "the server sees the bound source address"
            );
            client.write_all(&[i as u8]).expect("write");
            accepted
                .set_read_timeout(Some(Duration::from_secs(10)))
                .expect("timeout");
            let mut byte = [0u8];
            accepted.read_exact(&mut byte).expect("read");
            assert_eq!(byte[0], i as u8);
        }
    }
}
