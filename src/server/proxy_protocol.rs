//! The PROXY protocol (HAProxy's, versions 1 and 2), sans-IO: the header a load balancer writes
//! at the start of a TCP connection to say which client it carries, before any byte of the
//! client's own (and so before a TLS ClientHello).
//!
//! [`parse`] takes the bytes read so far and answers `Ok(None)` while the header is incomplete,
//! `Ok(Some((header, consumed)))` once it is whole (the bytes after `consumed` are the client's),
//! or an error as soon as the bytes cannot begin a valid header: a peer that does not speak the
//! protocol is refused at its first byte, not after a timeout.
//!
//! - **v1** is one text line, at most [`V1_MAX_LEN`] (107) bytes with its CRLF:
//!   `PROXY TCP4 192.0.2.1 198.51.100.1 56324 443\r\n`, `PROXY TCP6 …`, or `PROXY UNKNOWN …\r\n`
//!   (whatever follows `UNKNOWN` is ignored, as the specification asks).
//! - **v2** is binary: a 12-byte signature, a version/command byte (`LOCAL` or `PROXY`), a
//!   family/transport byte (`AF_UNSPEC`, `AF_INET`, `AF_INET6`, `AF_UNIX`), a 16-bit length and
//!   the addresses, then TLVs, which are skipped. The whole header is bounded by
//!   [`V2_MAX_LEN`] (or the bound given to [`parse_with_limit`]).
//!
//! # Examples
//!
//! ```
//! use wsx::server::proxy_protocol::{parse, Command};
//!
//! let bytes = b"PROXY TCP4 192.0.2.1 198.51.100.1 56324 443\r\nGET / HTTP/1.1\r\n";
//! let (header, consumed) = parse(bytes)?.expect("the header is complete");
//! assert_eq!(header.command, Command::Proxy);
//! assert_eq!(header.source(), Some("192.0.2.1:56324".parse().unwrap()));
//! assert_eq!(&bytes[consumed..], b"GET / HTTP/1.1\r\n");
//!
//! // Incomplete: more bytes are needed.
//! assert_eq!(parse(b"PROXY TCP4 192.0")?, None);
//! // Not the PROXY protocol at all: refused at once.
//! assert!(parse(b"GET / HTTP/1.1\r\n").is_err());
//! # Ok::<(), wsx::server::proxy_protocol::ProxyProtocolError>(())
//! ```

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// The v2 signature, the first 12 bytes of every v2 header.
pub const V2_SIGNATURE: [u8; 12] = *b"\r\n\r\n\0\r\nQUIT\n";

/// The longest v1 header, `PROXY TCP6` with two full IPv6 addresses, two ports and CRLF.
pub const V1_MAX_LEN: usize = 107;

/// The longest v2 header [`parse`] accepts, TLVs included: 16 bytes of fixed part, 216 of
/// `AF_UNIX` addresses and room for the TLVs load balancers send (AWS NLB's VPC endpoint id,
/// HAProxy's SSL and unique-id TLVs). The protocol allows 65,551; a peer that sends more is
/// refused (the bound stops a peer that makes us buffer 64 KiB before its first byte).
pub const V2_MAX_LEN: usize = 4096;

/// Why bytes are not a valid PROXY protocol header. Every case is the peer's fault; the server
/// closes the connection without an answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ProxyProtocolError {
    /// The bytes begin neither the v1 `PROXY ` prefix nor the v2 signature.
    #[error("not a proxy protocol header")]
    NotProxy,
    /// A v1 line that breaks the grammar (the fragment says where).
    #[error("invalid v1 header: {0}")]
    InvalidV1(&'static str),
    /// A v1 line longer than 107 bytes, or a v2 header over the length bound.
    #[error("proxy protocol header too long")]
    TooLong,
    /// A v2 header whose version nibble is not 2.
    #[error("unsupported proxy protocol version {0}")]
    UnsupportedVersion(u8),
    /// A v2 command other than `LOCAL` (0) and `PROXY` (1).
    #[error("unsupported proxy protocol command {0}")]
    UnsupportedCommand(u8),
    /// A v2 address family or transport byte outside the specification.
    #[error("unsupported address family byte {0:#04x}")]
    UnsupportedFamily(u8),
    /// A v2 length shorter than the addresses of its family.
    #[error("address block shorter than its family")]
    Truncated,
}

/// Which version of the protocol a header was written in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Version {
    /// The text form.
    V1,
    /// The binary form.
    V2,
}

/// What the sender of a header says about the connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Command {
    /// The connection was opened by the proxy itself (a health check): the addresses, if any,
    /// are to be ignored and the TCP peer is the real one. v1 writes it as `UNKNOWN`.
    Local,
    /// The connection carries a client's: the addresses are the client's and the one it
    /// reached.
    Proxy,
}

/// The addresses a header carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Addresses {
    /// None (v1 `UNKNOWN`, v2 `AF_UNSPEC`).
    Unspec,
    /// TCP or UDP over IPv4 or IPv6: the client (`source`) and the address it reached.
    Inet {
        /// The client's address.
        source: SocketAddr,
        /// The address the client connected to (the proxy's listener).
        destination: SocketAddr,
    },
    /// `AF_UNIX` (v2 only): socket paths, trailing NUL bytes removed.
    Unix {
        /// The client's socket path.
        source: Vec<u8>,
        /// The socket path the client connected to.
        destination: Vec<u8>,
    },
}

/// A parsed PROXY protocol header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProxyHeader {
    /// v1 or v2.
    pub version: Version,
    /// `LOCAL` or `PROXY`.
    pub command: Command,
    /// The addresses as sent (to be ignored under [`Command::Local`]).
    pub addresses: Addresses,
}

impl ProxyHeader {
    /// The real client's address: the source address of a `PROXY` command over IPv4 or IPv6;
    /// `None` for `LOCAL`, `UNKNOWN`, `AF_UNSPEC` and `AF_UNIX`, where the TCP peer stands.
    pub fn source(&self) -> Option<SocketAddr> {
        match (&self.command, &self.addresses) {
            (Command::Proxy, Addresses::Inet { source, .. }) => Some(*source),
            _ => None,
        }
    }

    /// Appends the header in its version's wire form (v2 without TLVs). A v1 header can carry
    /// only IPv4 or IPv6 addresses of one family; anything else is written as `UNKNOWN`.
    pub fn encode(&self, out: &mut Vec<u8>) {
        match self.version {
            Version::V1 => self.encode_v1(out),
            Version::V2 => self.encode_v2(out),
        }
    }

    fn encode_v1(&self, out: &mut Vec<u8>) {
        let line = match (&self.command, &self.addresses) {
            (
                Command::Proxy,
                Addresses::Inet {
                    source,
                    destination,
                },
            ) => match (source.ip(), destination.ip()) {
                (IpAddr::V4(s), IpAddr::V4(d)) => Some(format!(
                    "PROXY TCP4 {s} {d} {} {}\r\n",
                    source.port(),
                    destination.port()
                )),
                (IpAddr::V6(s), IpAddr::V6(d)) => Some(format!(
                    "PROXY TCP6 {s} {d} {} {}\r\n",
                    source.port(),
                    destination.port()
                )),
                _ => None,
            },
            _ => None,
        };
        out.extend_from_slice(line.as_deref().unwrap_or("PROXY UNKNOWN\r\n").as_bytes());
    }

    fn encode_v2(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&V2_SIGNATURE);
        out.push(match self.command {
            Command::Local => 0x20,
            Command::Proxy => 0x21,
        });
        let mut block = Vec::new();
        let family = match &self.addresses {
            Addresses::Unspec => 0x00,
            Addresses::Inet {
                source,
                destination,
            } => match (source.ip(), destination.ip()) {
                (IpAddr::V4(s), IpAddr::V4(d)) => {
                    block.extend_from_slice(&s.octets());
                    block.extend_from_slice(&d.octets());
                    block.extend_from_slice(&source.port().to_be_bytes());
                    block.extend_from_slice(&destination.port().to_be_bytes());
                    0x11
                }
                (s, d) => {
                    block.extend_from_slice(&v6(s).octets());
                    block.extend_from_slice(&v6(d).octets());
                    block.extend_from_slice(&source.port().to_be_bytes());
                    block.extend_from_slice(&destination.port().to_be_bytes());
                    0x21
                }
            },
            Addresses::Unix {
                source,
                destination,
            } => {
                for path in [source, destination] {
                    let mut field = [0u8; 108];
                    let n = path.len().min(108);
                    field[..n].copy_from_slice(&path[..n]);
                    block.extend_from_slice(&field);
                }
                0x31
            }
        };
        out.push(family);
        out.extend_from_slice(&(block.len() as u16).to_be_bytes());
        out.extend_from_slice(&block);
    }
}

fn v6(ip: IpAddr) -> Ipv6Addr {
    match ip {
        IpAddr::V4(v4) => v4.to_ipv6_mapped(),
        IpAddr::V6(v6) => v6,
    }
}

/// Parses a PROXY protocol header (v1 or v2) at the start of `buf`, v2 bounded by
/// [`V2_MAX_LEN`].
///
/// # Errors
///
/// The bytes cannot begin a valid header (see [`ProxyProtocolError`]); this is known as soon as
/// the first wrong byte is in.
pub fn parse(buf: &[u8]) -> Result<Option<(ProxyHeader, usize)>, ProxyProtocolError> {
    parse_with_limit(buf, V2_MAX_LEN)
}

/// [`parse`] with a bound of `max_len` bytes on a v2 header (a v1 header is always bounded by
/// its 107 bytes).
///
/// # Errors
///
/// As [`parse`]; a v2 header longer than `max_len` is [`ProxyProtocolError::TooLong`].
pub fn parse_with_limit(
    buf: &[u8],
    max_len: usize,
) -> Result<Option<(ProxyHeader, usize)>, ProxyProtocolError> {
    let Some(&first) = buf.first() else {
        return Ok(None);
    };
    if first == V2_SIGNATURE[0] {
        parse_v2(buf, max_len)
    } else if first == b'P' {
        parse_v1(buf)
    } else {
        Err(ProxyProtocolError::NotProxy)
    }
}

/// Whether `buf` is a prefix of `sig` or begins with it (false: a wrong byte is in).
fn matches_prefix(buf: &[u8], sig: &[u8]) -> bool {
    let n = buf.len().min(sig.len());
    buf[..n] == sig[..n]
}

fn parse_v1(buf: &[u8]) -> Result<Option<(ProxyHeader, usize)>, ProxyProtocolError> {
    const PREFIX: &[u8] = b"PROXY ";
    if !matches_prefix(buf, PREFIX) {
        return Err(ProxyProtocolError::NotProxy);
    }
    let window = &buf[..buf.len().min(V1_MAX_LEN)];
    let end = window.iter().position(|&b| b == b'\r' || b == b'\n');
    // The bytes before the line's end, checked as they come, so that garbage is refused before
    // the line ends, with the same error whatever the split.
    check_v1_partial(&window[..end.unwrap_or(window.len())])?;
    let Some(cr) = end else {
        if window.len() >= V1_MAX_LEN {
            return Err(ProxyProtocolError::TooLong);
        }
        return Ok(None);
    };
    if window[cr] != b'\r' {
        return Err(ProxyProtocolError::InvalidV1("bare line feed"));
    }
    if cr + 2 > V1_MAX_LEN {
        return Err(ProxyProtocolError::TooLong);
    }
    match window.get(cr + 1) {
        None => return Ok(None),
        Some(b'\n') => {}
        _ => {
            return Err(ProxyProtocolError::InvalidV1(
                "carriage return without line feed",
            ))
        }
    }
    let line = &window[PREFIX.len().min(cr)..cr];
    let header = parse_v1_line(line)?;
    Ok(Some((header, cr + 2)))
}

/// Refuses a v1 line (complete or not) whose bytes already break the grammar: only printable
/// ASCII, and a protocol word that is (or can still become) `TCP4`, `TCP6` or `UNKNOWN`. The
/// bytes are checked in order and the first wrong one decides the error, so that every split
/// of the same bytes gets the same answer.
fn check_v1_partial(window: &[u8]) -> Result<(), ProxyProtocolError> {
    const KNOWN: [&[u8]; 3] = [b"TCP4", b"TCP6", b"UNKNOWN"];
    let rest = window.get(6..).unwrap_or_default();
    let mut in_word = true;
    for (i, &b) in rest.iter().enumerate() {
        if !(0x20..0x7f).contains(&b) {
            return Err(ProxyProtocolError::InvalidV1(
                "byte outside printable ascii",
            ));
        }
        if !in_word {
            continue;
        }
        let fits = if b == b' ' {
            in_word = false;
            KNOWN.contains(&&rest[..i])
        } else {
            KNOWN.iter().any(|k| k.starts_with(&rest[..=i]))
        };
        if !fits {
            return Err(ProxyProtocolError::InvalidV1("unknown protocol"));
        }
    }
    Ok(())
}

fn parse_v1_line(line: &[u8]) -> Result<ProxyHeader, ProxyProtocolError> {
    let line = std::str::from_utf8(line).map_err(|_| ProxyProtocolError::InvalidV1("not ascii"))?;
    if line == "UNKNOWN" || line.starts_with("UNKNOWN ") {
        return Ok(ProxyHeader {
            version: Version::V1,
            command: Command::Local,
            addresses: Addresses::Unspec,
        });
    }
    if !line.bytes().all(|b| (0x21..0x7f).contains(&b) || b == b' ') {
        return Err(ProxyProtocolError::InvalidV1(
            "byte outside printable ascii",
        ));
    }
    let mut fields = line.split(' ');
    let (Some(proto), Some(src), Some(dst), Some(sport), Some(dport), None) = (
        fields.next(),
        fields.next(),
        fields.next(),
        fields.next(),
        fields.next(),
        fields.next(),
    ) else {
        return Err(ProxyProtocolError::InvalidV1("wrong number of fields"));
    };
    let (src, dst): (IpAddr, IpAddr) = match proto {
        "TCP4" => (
            IpAddr::V4(src.parse::<Ipv4Addr>().map_err(|_| bad_addr())?),
            IpAddr::V4(dst.parse::<Ipv4Addr>().map_err(|_| bad_addr())?),
        ),
        "TCP6" => (
            IpAddr::V6(src.parse::<Ipv6Addr>().map_err(|_| bad_addr())?),
            IpAddr::V6(dst.parse::<Ipv6Addr>().map_err(|_| bad_addr())?),
        ),
        _ => return Err(ProxyProtocolError::InvalidV1("unknown protocol")),
    };
    Ok(ProxyHeader {
        version: Version::V1,
        command: Command::Proxy,
        addresses: Addresses::Inet {
            source: SocketAddr::new(src, port(sport)?),
            destination: SocketAddr::new(dst, port(dport)?),
        },
    })
}

fn bad_addr() -> ProxyProtocolError {
    ProxyProtocolError::InvalidV1("invalid address")
}

/// A v1 port: 1 to 5 decimal digits, no sign, no leading zero, at most 65535.
fn port(s: &str) -> Result<u16, ProxyProtocolError> {
    let bad = || ProxyProtocolError::InvalidV1("invalid port");
    if s.is_empty() || s.len() > 5 || !s.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad());
    }
    if s.len() > 1 && s.starts_with('0') {
        return Err(bad());
    }
    s.parse().map_err(|_| bad())
}

fn parse_v2(
    buf: &[u8],
    max_len: usize,
) -> Result<Option<(ProxyHeader, usize)>, ProxyProtocolError> {
    if !matches_prefix(buf, &V2_SIGNATURE) {
        return Err(ProxyProtocolError::NotProxy);
    }
    if let Some(&ver_cmd) = buf.get(12) {
        if ver_cmd >> 4 != 2 {
            return Err(ProxyProtocolError::UnsupportedVersion(ver_cmd >> 4));
        }
        if ver_cmd & 0x0f > 1 {
            return Err(ProxyProtocolError::UnsupportedCommand(ver_cmd & 0x0f));
        }
    }
    if let Some(&fam) = buf.get(13) {
        if fam >> 4 > 3 || fam & 0x0f > 2 {
            return Err(ProxyProtocolError::UnsupportedFamily(fam));
        }
    }
    let (Some(&ver_cmd), Some(&fam), Some(&hi), Some(&lo)) =
        (buf.get(12), buf.get(13), buf.get(14), buf.get(15))
    else {
        return Ok(None);
    };
    let len = usize::from(u16::from_be_bytes([hi, lo]));
    let total = 16 + len;
    if total > max_len {
        return Err(ProxyProtocolError::TooLong);
    }
    let needed = match fam >> 4 {
        0 => 0,
        1 => 12,
        2 => 36,
        _ => 216,
    };
    if len < needed {
        return Err(ProxyProtocolError::Truncated);
    }
    let Some(block) = buf.get(16..total) else {
        return Ok(None);
    };
    let command = if ver_cmd & 0x0f == 0 {
        Command::Local
    } else {
        Command::Proxy
    };
    let addresses = match fam >> 4 {
        0 => Addresses::Unspec,
        1 => {
            let ip =
                |at: usize| Ipv4Addr::new(block[at], block[at + 1], block[at + 2], block[at + 3]);
            let port = |at: usize| u16::from_be_bytes([block[at], block[at + 1]]);
            Addresses::Inet {
                source: SocketAddr::new(IpAddr::V4(ip(0)), port(8)),
                destination: SocketAddr::new(IpAddr::V4(ip(4)), port(10)),
            }
        }
        2 => {
            let ip = |at: usize| {
                let mut o = [0u8; 16];
                o.copy_from_slice(&block[at..at + 16]);
                Ipv6Addr::from(o)
            };
            let port = |at: usize| u16::from_be_bytes([block[at], block[at + 1]]);
            Addresses::Inet {
                source: SocketAddr::new(IpAddr::V6(ip(0)), port(32)),
                destination: SocketAddr::new(IpAddr::V6(ip(16)), port(34)),
            }
        }
        _ => {
            let path = |at: usize| {
                let field = &block[at..at + 108];
                let end = field.iter().rposition(|&b| b != 0).map_or(0, |i| i + 1);
                field[..end].to_vec()
            };
            Addresses::Unix {
                source: path(0),
                destination: path(108),
            }
        }
    };
    // The rest of the block is TLVs: skipped.
    Ok(Some((
        ProxyHeader {
            version: Version::V2,
            command,
            addresses,
        },
        total,
    )))
}

#[cfg(test)]
#[path = "proxy_protocol_tests.rs"]
mod tests;
