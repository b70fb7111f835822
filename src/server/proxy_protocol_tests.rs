//! Unit tests of the PROXY protocol parser: the specification's examples split at every byte,
//! refusals, and properties (never panics, v1 and v2 round trips).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use hex_literal::hex;
use proptest::prelude::*;

use super::*;

/// Parses `bytes` whole, then every prefix: a prefix is `Ok(None)` (or the same error, once the
/// wrong byte is in), never a different header.
fn parse_split(bytes: &[u8]) -> Result<Option<(ProxyHeader, usize)>, ProxyProtocolError> {
    let whole = parse(bytes);
    for end in 0..bytes.len() {
        match parse(&bytes[..end]) {
            Ok(None) => {}
            Ok(Some(parsed)) => {
                assert_eq!(whole, Ok(Some(parsed.clone())), "prefix of {end} bytes");
                assert!(parsed.1 <= end);
            }
            Err(e) => assert_eq!(whole, Err(e), "prefix of {end} bytes"),
        }
    }
    whole
}

fn inet(source: &str, destination: &str) -> Addresses {
    Addresses::Inet {
        source: source.parse().unwrap(),
        destination: destination.parse().unwrap(),
    }
}

macro_rules! v1 {
    ($($name:ident: $line:expr => $expected:expr;)*) => {$(
        #[test]
        fn $name() {
            let mut bytes = $line.to_vec();
            bytes.extend_from_slice(b"GET / HTTP/1.1\r\n");
            let got = parse_split(&bytes).map(|o| o.map(|(h, n)| (h.addresses, h.command, n)));
            assert_eq!(got, $expected);
        }
    )*};
}

v1! {
    v1_tcp4: b"PROXY TCP4 192.0.2.1 198.51.100.1 56324 443\r\n"
        => Ok(Some((inet("192.0.2.1:56324", "198.51.100.1:443"), Command::Proxy, 45)));
    v1_tcp6: b"PROXY TCP6 2001:db8::1 2001:db8::2 4711 443\r\n"
        => Ok(Some((inet("[2001:db8::1]:4711", "[2001:db8::2]:443"), Command::Proxy, 45)));
    v1_tcp6_longest: b"PROXY TCP6 ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff 65535 65535\r\n"
        => Ok(Some((inet("[ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff]:65535", "[ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff]:65535"), Command::Proxy, 104)));
    v1_unknown: b"PROXY UNKNOWN\r\n" => Ok(Some((Addresses::Unspec, Command::Local, 15)));
    v1_unknown_rest_ignored: b"PROXY UNKNOWN ffff::1 ffff::2 1 2\r\n"
        => Ok(Some((Addresses::Unspec, Command::Local, 35)));
    v1_port_zero: b"PROXY TCP4 10.0.0.1 10.0.0.2 0 80\r\n"
        => Ok(Some((inet("10.0.0.1:0", "10.0.0.2:80"), Command::Proxy, 35)));
    v1_http: b"GET / HTTP/1.1\r\n" => Err(ProxyProtocolError::NotProxy);
    v1_lower_case: b"proxy TCP4 1.2.3.4 1.2.3.4 1 1\r\n" => Err(ProxyProtocolError::NotProxy);
    v1_bad_protocol: b"PROXY UDP4 1.2.3.4 1.2.3.4 1 1\r\n"
        => Err(ProxyProtocolError::InvalidV1("unknown protocol"));
    v1_family_mismatch: b"PROXY TCP4 2001:db8::1 1.2.3.4 1 1\r\n"
        => Err(ProxyProtocolError::InvalidV1("invalid address"));
    v1_leading_zero_octet: b"PROXY TCP4 01.2.3.4 1.2.3.4 1 1\r\n"
        => Err(ProxyProtocolError::InvalidV1("invalid address"));
    v1_port_too_big: b"PROXY TCP4 1.2.3.4 1.2.3.4 65536 1\r\n"
        => Err(ProxyProtocolError::InvalidV1("invalid port"));
    v1_port_sign: b"PROXY TCP4 1.2.3.4 1.2.3.4 +1 1\r\n"
        => Err(ProxyProtocolError::InvalidV1("invalid port"));
    v1_port_leading_zero: b"PROXY TCP4 1.2.3.4 1.2.3.4 01 1\r\n"
        => Err(ProxyProtocolError::InvalidV1("invalid port"));
    v1_double_space: b"PROXY TCP4  1.2.3.4 1.2.3.4 1 1\r\n"
        => Err(ProxyProtocolError::InvalidV1("wrong number of fields"));
    v1_missing_port: b"PROXY TCP4 1.2.3.4 1.2.3.4 1\r\n"
        => Err(ProxyProtocolError::InvalidV1("wrong number of fields"));
    v1_bare_lf: b"PROXY TCP4 1.2.3.4 1.2.3.4 1 1\n"
        => Err(ProxyProtocolError::InvalidV1("bare line feed"));
    v1_cr_alone: b"PROXY UNKNOWN\rX\n"
        => Err(ProxyProtocolError::InvalidV1("carriage return without line feed"));
    v1_control_byte: b"PROXY TCP4 1.2.3.4\x01"
        => Err(ProxyProtocolError::InvalidV1("byte outside printable ascii"));
    // Found by fuzzing: the same error whether or not the line's end is in.
    v1_nul_before_cr_without_lf: b"PROXY TCP4 1@2.0.2.1 1M6@\x0052.100.1 56234 443\r\tGJT 0 HTTP/1.2\r\n"
        => Err(ProxyProtocolError::InvalidV1("byte outside printable ascii"));
    v1_bad_word_then_control_byte: b"PROXY TCPROXY TCP\x7f 1.2.3.4\r\n"
        => Err(ProxyProtocolError::InvalidV1("unknown protocol"));
    v1_unknown_with_control_byte: b"PROXY UNKNOWN \x7f\r\n"
        => Err(ProxyProtocolError::InvalidV1("byte outside printable ascii"));
}

#[test]
fn v1_too_long_without_line_end() {
    let mut bytes = b"PROXY UNKNOWN ".to_vec();
    bytes.resize(V1_MAX_LEN - 1, b'a');
    assert_eq!(parse(&bytes), Ok(None));
    bytes.push(b'a');
    assert_eq!(parse(&bytes), Err(ProxyProtocolError::TooLong));
}

#[test]
fn v1_line_of_exactly_107_bytes_is_accepted_108_refused() {
    let mut bytes = b"PROXY UNKNOWN ".to_vec();
    bytes.resize(V1_MAX_LEN - 2, b'a');
    bytes.extend_from_slice(b"\r\n");
    assert_eq!(parse(&bytes).unwrap().unwrap().1, V1_MAX_LEN);
    let mut longer = b"PROXY UNKNOWN ".to_vec();
    longer.resize(V1_MAX_LEN - 1, b'a');
    longer.extend_from_slice(b"\r\n");
    assert_eq!(parse(&longer), Err(ProxyProtocolError::TooLong));
}

#[test]
fn v1_garbage_refused_before_the_line_ends() {
    assert_eq!(
        parse(b"PROXY HTTP"),
        Err(ProxyProtocolError::InvalidV1("unknown protocol"))
    );
    assert_eq!(parse(b"PROXY TCP"), Ok(None));
    assert_eq!(parse(b"PROX"), Ok(None));
    assert_eq!(parse(b"PROXX"), Err(ProxyProtocolError::NotProxy));
}

/// The v2 signature, `PROXY` over TCP/IPv4, 12 address bytes.
const V2_TCP4: [u8; 28] = hex!(
    "0d0a0d0a000d0a515549540a 21 11 000c"
    "c0000201 c6336401 dc04 01bb"
);

#[test]
fn v2_tcp4() {
    let mut bytes = V2_TCP4.to_vec();
    bytes.extend_from_slice(b"\x16\x03\x01");
    let (header, consumed) = parse_split(&bytes).unwrap().unwrap();
    assert_eq!(consumed, 28);
    assert_eq!(header.version, Version::V2);
    assert_eq!(header.command, Command::Proxy);
    assert_eq!(
        header.addresses,
        inet("192.0.2.1:56324", "198.51.100.1:443")
    );
    assert_eq!(header.source(), Some("192.0.2.1:56324".parse().unwrap()));
}

#[test]
fn v2_tcp6_with_tlvs_skipped() {
    let bytes = hex!(
        "0d0a0d0a000d0a515549540a 21 21 002e"
        "20010db8000000000000000000000001"
        "20010db8000000000000000000000002"
        "1267 01bb"
        "05 0007 61626364656667" // PP2_TYPE_UNIQUE_ID "abcdefg"
        "ff" // the client's first byte
    );
    let (header, consumed) = parse_split(&bytes).unwrap().unwrap();
    assert_eq!(consumed, bytes.len() - 1);
    assert_eq!(
        header.addresses,
        inet("[2001:db8::1]:4711", "[2001:db8::2]:443")
    );
}

#[test]
fn v2_local_ignores_addresses() {
    let bytes = hex!(
        "0d0a0d0a000d0a515549540a 20 11 000c"
        "7f000001 7f000001 0001 0002"
    );
    let (header, consumed) = parse_split(&bytes).unwrap().unwrap();
    assert_eq!(consumed, 28);
    assert_eq!(header.command, Command::Local);
    assert_eq!(header.source(), None);
}

#[test]
fn v2_local_unspec_empty() {
    let bytes = hex!("0d0a0d0a000d0a515549540a 20 00 0000");
    let (header, consumed) = parse_split(&bytes).unwrap().unwrap();
    assert_eq!(consumed, 16);
    assert_eq!(header.addresses, Addresses::Unspec);
}

#[test]
fn v2_unix() {
    let mut bytes = hex!("0d0a0d0a000d0a515549540a 21 31 00d8").to_vec();
    let mut src = [0u8; 108];
    src[..8].copy_from_slice(b"/tmp/cli");
    let mut dst = [0u8; 108];
    dst[..8].copy_from_slice(b"/tmp/srv");
    bytes.extend_from_slice(&src);
    bytes.extend_from_slice(&dst);
    let (header, consumed) = parse_split(&bytes).unwrap().unwrap();
    assert_eq!(consumed, 232);
    assert_eq!(
        header.addresses,
        Addresses::Unix {
            source: b"/tmp/cli".to_vec(),
            destination: b"/tmp/srv".to_vec()
        }
    );
    assert_eq!(header.source(), None);
}

#[test]
fn v2_refusals() {
    let sig = "0d0a0d0a000d0a515549540a";
    let case = |tail: &str| parse_split(&hex_str(&format!("{sig}{tail}")));
    assert_eq!(
        case("11 11 000c"),
        Err(ProxyProtocolError::UnsupportedVersion(1))
    );
    assert_eq!(
        case("22 11 000c"),
        Err(ProxyProtocolError::UnsupportedCommand(2))
    );
    assert_eq!(
        case("21 41 000c"),
        Err(ProxyProtocolError::UnsupportedFamily(0x41))
    );
    assert_eq!(
        case("21 13 000c"),
        Err(ProxyProtocolError::UnsupportedFamily(0x13))
    );
    assert_eq!(case("21 11 000b"), Err(ProxyProtocolError::Truncated));
    assert_eq!(case("21 21 0024"), Ok(None));
    assert_eq!(case("21 21 0023"), Err(ProxyProtocolError::Truncated));
    assert_eq!(case("21 11 ffff"), Err(ProxyProtocolError::TooLong));
    assert_eq!(
        parse_split(&hex!("0d0a0d0a000d0a5155495420")),
        Err(ProxyProtocolError::NotProxy)
    );
    assert_eq!(parse(b"\r\n\r\nGET"), Err(ProxyProtocolError::NotProxy));
}

#[test]
fn v2_length_bound_is_the_callers() {
    let mut bytes = hex!("0d0a0d0a000d0a515549540a 21 11 0100").to_vec();
    bytes.resize(16 + 256, 0);
    assert!(parse(&bytes).unwrap().is_some());
    assert_eq!(
        parse_with_limit(&bytes, 100),
        Err(ProxyProtocolError::TooLong)
    );
    assert!(parse_with_limit(&bytes, 16 + 256).unwrap().is_some());
}

fn hex_str(s: &str) -> Vec<u8> {
    let s: String = s.split_whitespace().collect();
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

fn any_ip() -> impl Strategy<Value = IpAddr> {
    prop_oneof![
        any::<u32>().prop_map(|v| IpAddr::V4(Ipv4Addr::from(v))),
        any::<u128>().prop_map(|v| IpAddr::V6(Ipv6Addr::from(v))),
    ]
}

fn any_header() -> impl Strategy<Value = ProxyHeader> {
    let inet = (any_ip(), any::<u16>(), any_ip(), any::<u16>()).prop_map(|(s, sp, d, dp)| {
        // One family for both, as both versions carry it.
        let d = match (s, d) {
            (IpAddr::V4(_), IpAddr::V6(v6)) => IpAddr::V4(Ipv4Addr::from(v6.to_bits() as u32)),
            (IpAddr::V6(_), IpAddr::V4(v4)) => IpAddr::V6(v4.to_ipv6_mapped()),
            (_, d) => d,
        };
        Addresses::Inet {
            source: SocketAddr::new(s, sp),
            destination: SocketAddr::new(d, dp),
        }
    });
    (any::<bool>(), any::<bool>(), inet).prop_map(|(v2, local, addresses)| ProxyHeader {
        version: if v2 { Version::V2 } else { Version::V1 },
        command: if local {
            Command::Local
        } else {
            Command::Proxy
        },
        addresses,
    })
}

proptest! {
    #[test]
    fn never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
        if let Ok(Some((_, consumed))) = parse(&bytes) {
            prop_assert!(consumed <= bytes.len());
        }
        let _ = parse_with_limit(&bytes, 20);
    }

    #[test]
    fn never_panics_after_a_signature(
        v2 in any::<bool>(),
        tail in proptest::collection::vec(any::<u8>(), 0..300),
    ) {
        let mut bytes = if v2 { V2_SIGNATURE.to_vec() } else { b"PROXY ".to_vec() };
        bytes.extend_from_slice(&tail);
        if let Ok(Some((_, consumed))) = parse(&bytes) {
            prop_assert!(consumed <= bytes.len());
        }
    }

    #[test]
    fn round_trips(header in any_header(), tail in proptest::collection::vec(any::<u8>(), 0..8)) {
        let mut bytes = Vec::new();
        header.encode(&mut bytes);
        let len = bytes.len();
        bytes.extend_from_slice(&tail);
        let (parsed, consumed) = parse(&bytes).unwrap().unwrap();
        prop_assert_eq!(consumed, len);
        match (header.version, header.command) {
            // v1 writes LOCAL as UNKNOWN, without addresses.
            (Version::V1, Command::Local) => {
                prop_assert_eq!(parsed.command, Command::Local);
                prop_assert_eq!(parsed.addresses, Addresses::Unspec);
            }
            _ => prop_assert_eq!(parsed, header),
        }
        for end in 0..len {
            prop_assert_eq!(parse(&bytes[..end]), Ok(None));
        }
    }
}
