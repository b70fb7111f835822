//! Unit tests of the forwarding headers and the trusted set: RFC 7239's examples, the
//! rightmost-untrusted rule, and properties.

use std::net::{IpAddr, SocketAddr};

use proptest::prelude::*;

use super::*;

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn sa(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

#[test]
fn rfc7239_examples() {
    assert_eq!(
        forwarded(br#"for="_gazonk""#),
        [Node::Obfuscated("_gazonk".into())]
    );
    assert_eq!(
        forwarded(br#"For="[2001:db8:cafe::17]:4711""#),
        [Node::Addr(ip("2001:db8:cafe::17"), Some(4711))]
    );
    assert_eq!(
        forwarded(b"for=192.0.2.60;proto=http;by=203.0.113.43"),
        [Node::Addr(ip("192.0.2.60"), None)]
    );
    assert_eq!(
        forwarded(b"for=192.0.2.43, for=198.51.100.17"),
        [
            Node::Addr(ip("192.0.2.43"), None),
            Node::Addr(ip("198.51.100.17"), None)
        ]
    );
    assert_eq!(
        forwarded(br#"for=unknown, for="_hidden:_port", for="198.51.100.17:_p""#),
        [
            Node::Unknown,
            Node::Obfuscated("_hidden:_port".into()),
            Node::Addr(ip("198.51.100.17"), None)
        ]
    );
}

#[test]
fn forwarded_grammar() {
    // Quoted commas and semicolons do not split.
    assert_eq!(
        forwarded(br#"by="a,b;c";for=10.0.0.1, for=10.0.0.2"#),
        [
            Node::Addr(ip("10.0.0.1"), None),
            Node::Addr(ip("10.0.0.2"), None)
        ]
    );
    // Escapes in quoted strings.
    assert_eq!(
        forwarded(br#"for="\[::1\]:80""#),
        [Node::Addr(ip("::1"), Some(80))]
    );
    // Lenient: an unquoted address with a port.
    assert_eq!(
        forwarded(b"for=10.0.0.1:8080"),
        [Node::Addr(ip("10.0.0.1"), Some(8080))]
    );
    // No for=, for twice, garbage, an unterminated quote.
    assert_eq!(forwarded(b"proto=https"), [Node::Invalid]);
    assert_eq!(forwarded(b"for=1.2.3.4;for=5.6.7.8"), [Node::Invalid]);
    assert_eq!(
        forwarded(b"for=1.2.3.4 garbage, for=5.6.7.8"),
        [Node::Invalid, Node::Addr(ip("5.6.7.8"), None)]
    );
    assert_eq!(forwarded(br#"for="1.2.3.4, for=5.6.7.8"#), [Node::Invalid]);
    assert_eq!(forwarded(b"for=[::1]"), [Node::Addr(ip("::1"), None)]);
    assert_eq!(forwarded(b"for=::1"), [Node::Invalid]);
    assert_eq!(forwarded(b"for=1.2.3.4:99999"), [Node::Invalid]);
}

#[test]
fn x_forwarded_for_forms() {
    assert_eq!(
        x_forwarded_for(b"203.0.113.195, 2001:db8:85a3::8a2e:370:7334,150.172.238.178"),
        [
            Node::Addr(ip("203.0.113.195"), None),
            Node::Addr(ip("2001:db8:85a3::8a2e:370:7334"), None),
            Node::Addr(ip("150.172.238.178"), None)
        ]
    );
    assert_eq!(
        x_forwarded_for(b"1.2.3.4:80, [::1]:443, [::2], unknown, nonsense, "),
        [
            Node::Addr(ip("1.2.3.4"), Some(80)),
            Node::Addr(ip("::1"), Some(443)),
            Node::Addr(ip("::2"), None),
            Node::Unknown,
            Node::Invalid,
            Node::Invalid
        ]
    );
}

#[test]
fn trusted_set_parses_and_matches() {
    let t = TrustedProxies::parse(["10.0.0.0/8", "192.168.1.1", "2001:db8::/32", "::1"]).unwrap();
    assert!(t.contains(ip("10.255.0.1")));
    assert!(!t.contains(ip("11.0.0.1")));
    assert!(t.contains(ip("192.168.1.1")));
    assert!(!t.contains(ip("192.168.1.2")));
    assert!(t.contains(ip("2001:db8:1::5")));
    assert!(!t.contains(ip("2001:db9::5")));
    assert!(t.contains(ip("::1")));
    // IPv4-mapped peers match IPv4 blocks; an IPv4 address never matches an IPv6 block.
    assert!(t.contains(ip("::ffff:10.1.1.1")));
    assert!(!t.contains(ip("::ffff:11.1.1.1")));
    assert!(!TrustedProxies::parse(["2001:db8::/32"])
        .unwrap()
        .contains(ip("32.1.13.184")));
    // A mapped block is the IPv4 block.
    let mapped = TrustedProxies::parse(["::ffff:10.0.0.0/104"]).unwrap();
    assert!(mapped.contains(ip("10.2.3.4")));
    // Host bits are ignored; /0 is everything of its family.
    assert!(TrustedProxies::parse(["10.1.2.3/8"])
        .unwrap()
        .contains(ip("10.9.9.9")));
    let all4 = TrustedProxies::parse(["0.0.0.0/0"]).unwrap();
    assert!(all4.contains(ip("8.8.8.8")) && !all4.contains(ip("::2")));
    assert!(TrustedProxies::new().is_empty() && !TrustedProxies::new().contains(ip("::1")));
    let from_str: TrustedProxies = "10.0.0.0/8, ::1 127.0.0.1".parse().unwrap();
    assert_eq!(from_str.to_string(), "10.0.0.0/8, ::1/128, 127.0.0.1/32");
}

#[test]
fn trusted_set_reports_bad_entries() {
    for bad in [
        "",
        "10.0.0.0/33",
        "::/129",
        "10.0.0/8",
        "10.0.0.0/",
        "10.0.0.0/+8",
        "10.0.0.0/8/8",
        "localhost",
        "10.0.0.0/08x",
        "1.2.3.4:80",
    ] {
        let e = TrustedProxies::parse([bad]).unwrap_err();
        assert_eq!(e.input(), bad);
        assert!(e.to_string().starts_with("invalid trusted proxy"), "{e}");
    }
    assert!("10.0.0.0/8, nonsense".parse::<TrustedProxies>().is_err());
}

fn trusted() -> TrustedProxies {
    TrustedProxies::parse(["10.0.0.0/8", "fd00::/8"]).unwrap()
}

#[test]
fn untrusted_peer_headers_ignored() {
    let peer = sa("192.0.2.1:5000");
    let headers = [
        ("X-Forwarded-For", &b"1.1.1.1"[..]),
        ("Forwarded", &b"for=2.2.2.2"[..]),
    ];
    assert_eq!(client_addr(peer, headers, &trusted()), peer);
    assert_eq!(client_addr(peer, headers, &TrustedProxies::new()), peer);
}

#[test]
fn rightmost_untrusted_hop() {
    let peer = sa("10.0.0.1:5000");
    let t = trusted();
    let c = |h: &[(&'static str, &'static [u8])]| client_addr(peer, h.iter().copied(), &t);
    assert_eq!(
        c(&[("x-forwarded-for", b"6.6.6.6, 1.2.3.4")]),
        sa("1.2.3.4:0")
    );
    assert_eq!(
        c(&[("x-forwarded-for", b"6.6.6.6, 1.2.3.4, 10.1.1.1, 10.2.2.2")]),
        sa("1.2.3.4:0")
    );
    // Several header lines are one list, in order.
    assert_eq!(
        c(&[
            ("X-Forwarded-For", b"6.6.6.6"),
            ("X-Forwarded-For", b"1.2.3.4, 10.1.1.1")
        ]),
        sa("1.2.3.4:0")
    );
    // Every hop trusted: the leftmost.
    assert_eq!(
        c(&[("x-forwarded-for", b"10.3.3.3, 10.1.1.1")]),
        sa("10.3.3.3:0")
    );
    // Unknown, obfuscated and malformed hops stop at the last trusted address.
    assert_eq!(c(&[("x-forwarded-for", b"1.2.3.4, unknown")]), peer);
    assert_eq!(
        c(&[("x-forwarded-for", b"1.2.3.4, nonsense, 10.1.1.1")]),
        sa("10.1.1.1:0")
    );
    assert_eq!(c(&[("forwarded", br#"for="_gazonk""#)]), peer);
    // Forwarded, with a port; it wins over X-Forwarded-For.
    assert_eq!(
        c(&[
            ("X-Forwarded-For", b"9.9.9.9"),
            (
                "Forwarded",
                br#"for="[2001:db8::1]:4711";proto=https, for=10.1.1.1"#
            )
        ]),
        sa("[2001:db8::1]:4711")
    );
    // No header at all: the peer.
    assert_eq!(c(&[("host", b"example")]), peer);
    // IPv6 trusted hops.
    assert_eq!(
        c(&[("forwarded", br#"for=5.5.5.5, for="[fd00::7]""#)]),
        sa("5.5.5.5:0")
    );
}

#[test]
fn long_chains_are_bounded() {
    let peer = sa("10.0.0.1:1");
    let mut value = String::from("1.2.3.4");
    for i in 0..100 {
        value.push_str(&format!(", 10.0.{}.{}", i / 250, i % 250 + 1));
    }
    let got = client_addr(peer, [("x-forwarded-for", value.as_bytes())], &trusted());
    // The walk stops after MAX_HOPS trusted hops, at the last one it saw.
    assert!(trusted().contains(got.ip()), "{got}");
}

proptest! {
    #[test]
    fn parsers_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
        let _ = forwarded(&bytes);
        let _ = x_forwarded_for(&bytes);
        let peer = sa("10.0.0.1:1");
        let got = client_addr(peer, [("forwarded", &bytes[..]), ("x-forwarded-for", &bytes[..])], &trusted());
        // The answer is the peer or an address the header holds.
        let held = forwarded(&bytes)
            .iter()
            .any(|n| matches!(n, Node::Addr(ip, _) if *ip == got.ip()));
        prop_assert!(got == peer || held, "{got}");
    }

    #[test]
    fn forwarded_round_trips(
        hops in proptest::collection::vec((any::<u128>(), any::<bool>(), proptest::option::of(any::<u16>())), 1..6)
    ) {
        let addrs: Vec<(IpAddr, Option<u16>)> = hops
            .iter()
            .map(|&(bits, v4, port)| {
                let ip = if v4 {
                    IpAddr::V4(Ipv4Addr::from_bits(bits as u32))
                } else {
                    IpAddr::V6(Ipv6Addr::from_bits(bits))
                };
                (ip, port)
            })
            .collect();
        let value = addrs
            .iter()
            .map(|(ip, port)| {
                let host = match ip {
                    IpAddr::V4(v4) => v4.to_string(),
                    IpAddr::V6(v6) => format!("[{v6}]"),
                };
                match port {
                    Some(p) => format!("for=\"{host}:{p}\";proto=https"),
                    None => format!("For=\"{host}\""),
                }
            })
            .collect::<Vec<_>>()
            .join(", ");
        let nodes = forwarded(value.as_bytes());
        let expected: Vec<Node> = addrs.iter().map(|&(ip, p)| Node::Addr(ip, p)).collect();
        prop_assert_eq!(&nodes, &expected);

        // The same chain as X-Forwarded-For; trusting none of it, the last hop is the client.
        let xff = addrs
            .iter()
            .map(|(ip, _)| ip.to_string())
            .collect::<Vec<_>>()
            .join(", ");
        let all = TrustedProxies::parse(["0.0.0.0/0", "::/0"]).unwrap();
        let only_peer = TrustedProxies::parse(["127.0.0.1"]).unwrap();
        let peer = sa("127.0.0.1:9");
        let last = addrs[addrs.len() - 1].0;
        prop_assert_eq!(
            client_addr(peer, [("x-forwarded-for", xff.as_bytes())], &only_peer),
            SocketAddr::new(last, 0)
        );
        // Trusting everything: the leftmost.
        prop_assert_eq!(
            client_addr(peer, [("x-forwarded-for", xff.as_bytes())], &all),
            SocketAddr::new(addrs[0].0, 0)
        );
    }

    #[test]
    fn cidr_contains_matches_arithmetic(addr in any::<u32>(), net in any::<u32>(), prefix in 0u8..=32) {
        let t = TrustedProxies::parse([format!("{}/{prefix}", Ipv4Addr::from_bits(net))]).unwrap();
        let expected = prefix == 0 || (addr ^ net) >> (32 - u32::from(prefix)) == 0;
        prop_assert_eq!(t.contains(IpAddr::V4(Ipv4Addr::from_bits(addr))), expected);
        let mapped = IpAddr::V6(Ipv4Addr::from_bits(addr).to_ipv6_mapped());
        prop_assert_eq!(t.contains(mapped), expected);
    }
}
