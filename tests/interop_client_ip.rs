//! The client's address through real proxies in front of wsx, on both backends:
//!
//! - **HAProxy**: TCP mode with `send-proxy` (PROXY v1) and `send-proxy-v2`, plain and with TLS
//!   passed through to a `wss://` server, and HTTP mode with `option forwardfor`
//!   (`X-Forwarded-For`);
//! - **nginx**: a reverse proxy with `proxy_set_header X-Forwarded-For
//!   $proxy_add_x_forwarded_for`, to a client that sends its own (spoofed) `X-Forwarded-For`.
//!
//! The client connects to the proxy from an address of its own (127.0.0.5 …, bound with
//! socket2), which every wsx callback must see as the peer, with the proxy's address as the TCP
//! peer.
//!
//! The proxies are found as `$WSX_HAPROXY` / `$WSX_NGINX` or `haproxy` / `nginx` on the `PATH`,
//! and installed from Debian's packages when missing (`tests/support/apt.rs`). When one still
//! cannot run, its test fails under `CI=true` and is skipped elsewhere, with `SKIPPED: <why>`
//! on stderr.

#[macro_use]
#[path = "support/backends.rs"]
mod backends;
#[path = "support/apt.rs"]
mod apt;
mod common;
#[path = "support/ports.rs"]
mod ports;
#[path = "support/client_ip.rs"]
mod support;
#[path = "support/tls.rs"]
mod tls;

use std::io::Write;
use std::net::{IpAddr, SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

use common::{masked, stop, wait_until, TIMEOUT};
use support::{ask, start, tls_pair, upgrade};
use wsx::{Backend, Server, TrustedProxies};

/// True under `CI=true`, where a missing peer fails the test instead of skipping it.
fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true")
}

/// The proxy binary named by the variable `env`, else `name` on the `PATH`, installed from
/// Debian's package of that name when missing (support/apt.rs).
fn find(env: &str, name: &str) -> Result<PathBuf, String> {
    apt::find_or_install(env, name, "-v", name)
}

/// A port for HAProxy and nginx, whose listeners cannot report the port of a `:0` bind
/// (tests/support/ports.rs says why not one from the kernel).
fn free_port() -> u16 {
    ports::unused_port()
}

/// A running HAProxy, killed by its handle (and its configuration removed) when dropped.
struct HaProxy {
    child: Child,
    dir: PathBuf,
}

impl Drop for HaProxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Starts HAProxy with `frontends` (name, mode, server line options, wsx address) and waits
/// (bounded) until every frontend accepts; returns it with each frontend's address.
fn run_haproxy(
    bin: &PathBuf,
    frontends: &[(&str, &str, &str, SocketAddr)],
) -> (HaProxy, Vec<SocketAddr>) {
    let dir = std::env::temp_dir().join(format!(
        "wsx-haproxy-{}-{}",
        std::process::id(),
        free_port()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    let mut config = String::from(
        "defaults\n    timeout connect 5s\n    timeout client 30s\n    timeout server 30s\n    timeout tunnel 30s\n",
    );
    let mut addrs = Vec::new();
    for (name, mode, options, to) in frontends {
        let at = SocketAddr::from(([127, 0, 0, 1], free_port()));
        addrs.push(at);
        let extra = if *mode == "http" {
            "    option forwardfor\n"
        } else {
            ""
        };
        config.push_str(&format!(
            "frontend fe_{name}\n    mode {mode}\n    bind {at}\n    default_backend be_{name}\n\
             backend be_{name}\n    mode {mode}\n{extra}    server wsx {to} {options}\n"
        ));
    }
    let file = dir.join("haproxy.cfg");
    std::fs::write(&file, config).unwrap();
    let child = Command::new(bin)
        .arg("-db")
        .arg("-f")
        .arg(&file)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("haproxy starts");
    let proxy = HaProxy { child, dir };
    for at in &addrs {
        assert!(
            wait_until(TIMEOUT, || TcpStream::connect(at).is_ok()),
            "haproxy does not listen on {at}"
        );
    }
    (proxy, addrs)
}

test_all!(haproxy_in_front_of_wsx);
/// HAProxy's PROXY v1 and v2 (plain and TLS passthrough) and `option forwardfor`: every wsx
/// callback sees the client's own address.
fn haproxy_in_front_of_wsx(backend: Backend) {
    let bin = match find("WSX_HAPROXY", "haproxy") {
        Ok(bin) => bin,
        Err(e) => {
            assert!(
                !in_ci(),
                "haproxy cannot run (CI=true: a missing peer fails): {e}"
            );
            eprintln!("SKIPPED: haproxy cannot run ({e}; or set WSX_HAPROXY)");
            return;
        }
    };
    let (server_tls, client_tls) = tls_pair();
    let (pp, pp_seen) = start(backend, Server::builder().proxy_protocol(true));
    let (pps, pps_seen) = start(
        backend,
        Server::builder().proxy_protocol(true).tls(server_tls),
    );
    let trusted = TrustedProxies::parse(["127.0.0.1"]).unwrap();
    let (xff, xff_seen) = start(backend, Server::builder().trusted_proxies(trusted));
    let (_haproxy, fronts) = run_haproxy(
        &bin,
        &[
            ("v1", "tcp", "send-proxy", pp.local_addr()),
            ("v2", "tcp", "send-proxy-v2", pp.local_addr()),
            ("v2tls", "tcp", "send-proxy-v2", pps.local_addr()),
            ("http", "http", "", xff.local_addr()),
        ],
    );
    let cases = [
        ("send-proxy", fronts[0], None, &pp_seen, true),
        ("send-proxy-v2", fronts[1], None, &pp_seen, true),
        (
            "send-proxy-v2 + tls",
            fronts[2],
            Some(&client_tls),
            &pps_seen,
            true,
        ),
        ("option forwardfor", fronts[3], None, &xff_seen, false),
    ];
    for (i, (name, front, tls, seen, with_port)) in cases.into_iter().enumerate() {
        let from: IpAddr = format!("127.0.0.{}", 5 + i).parse().unwrap();
        seen.clear();
        let (mut io, local) = upgrade(front, Some(from), b"", tls, &[]);
        assert_eq!(local.ip(), from);
        // X-Forwarded-For carries no port: the client's port is 0 there.
        let client = if with_port {
            local
        } else {
            SocketAddr::new(from, 0)
        };
        let answer = ask(&mut io);
        let (peer, tcp) = answer.split_once(' ').expect("two addresses");
        assert_eq!(peer, client.to_string(), "{name}: peer_addr");
        let tcp: SocketAddr = tcp.parse().unwrap();
        assert_eq!(
            tcp.ip(),
            IpAddr::from([127, 0, 0, 1]),
            "{name}: tcp_peer_addr is haproxy's"
        );
        io.write_all(&masked(true, 8, &[0x03, 0xe8])).unwrap();
        io.flush().unwrap();
        assert!(seen.wait_len(4), "{name}: {:?}", seen.snapshot());
        let names: Vec<&str> = seen.snapshot().iter().map(|s| s.0).collect();
        assert_eq!(names, ["upgrade", "open", "message", "close"], "{name}");
        for (callback, p, t) in seen.snapshot() {
            assert_eq!(p, client, "{name}: peer_addr in {callback}");
            assert_eq!(t, tcp, "{name}: tcp_peer_addr in {callback}");
        }
    }
    stop(&pp);
    stop(&pps);
    stop(&xff);
}

/// A running nginx, killed by its handle (and its prefix directory removed) when dropped.
struct Nginx {
    child: Child,
    dir: PathBuf,
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Starts nginx in the foreground as a WebSocket reverse proxy to `to`, waits (bounded) until
/// it accepts, and returns it with its address.
fn run_nginx(bin: &PathBuf, to: SocketAddr) -> (Nginx, SocketAddr) {
    let dir =
        std::env::temp_dir().join(format!("wsx-nginx-{}-{}", std::process::id(), free_port()));
    std::fs::create_dir_all(&dir).unwrap();
    let at = SocketAddr::from(([127, 0, 0, 1], free_port()));
    let d = dir.display();
    let config = format!(
        "daemon off;\nmaster_process off;\npid {d}/nginx.pid;\nerror_log {d}/error.log;\n\
         events {{ worker_connections 64; }}\n\
         http {{\n    access_log off;\n\
             client_body_temp_path {d}/body;\n    proxy_temp_path {d}/proxy;\n\
             fastcgi_temp_path {d}/fastcgi;\n    uwsgi_temp_path {d}/uwsgi;\n    scgi_temp_path {d}/scgi;\n\
             server {{\n        listen {at};\n        location / {{\n\
                 proxy_pass http://{to};\n            proxy_http_version 1.1;\n\
                 proxy_set_header Upgrade $http_upgrade;\n\
                 proxy_set_header Connection \"upgrade\";\n\
                 proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;\n\
             }}\n    }}\n}}\n"
    );
    let file = dir.join("nginx.conf");
    std::fs::write(&file, config).unwrap();
    let child = Command::new(bin)
        .arg("-p")
        .arg(&dir)
        .arg("-c")
        .arg(&file)
        .arg("-e")
        .arg(dir.join("error.log"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("nginx starts");
    let proxy = Nginx { child, dir };
    assert!(
        wait_until(TIMEOUT, || TcpStream::connect(at).is_ok()),
        "nginx does not listen on {at}"
    );
    (proxy, at)
}

test_all!(nginx_in_front_of_wsx);
/// nginx appends the client's address to the `X-Forwarded-For` the client sent: wsx, trusting
/// nginx, takes the rightmost entry (the real client, port 0), not the client's own claim; a
/// wsx that trusts nobody sees nginx.
fn nginx_in_front_of_wsx(backend: Backend) {
    let bin = match find("WSX_NGINX", "nginx") {
        Ok(bin) => bin,
        Err(e) => {
            assert!(
                !in_ci(),
                "nginx cannot run (CI=true: a missing peer fails): {e}"
            );
            eprintln!("SKIPPED: nginx cannot run ({e}; or set WSX_NGINX)");
            return;
        }
    };
    let trusted = TrustedProxies::parse(["127.0.0.1"]).unwrap();
    let (trusting, trusting_seen) = start(backend, Server::builder().trusted_proxies(trusted));
    let (plain, plain_seen) = start(backend, Server::builder());
    let (_a, via_trusting) = run_nginx(&bin, trusting.local_addr());
    let (_b, via_plain) = run_nginx(&bin, plain.local_addr());
    let spoof = ["X-Forwarded-For: 6.6.6.6"];
    for (front, seen, trusts) in [
        (via_trusting, &trusting_seen, true),
        (via_plain, &plain_seen, false),
    ] {
        let from: IpAddr = "127.0.0.9".parse().unwrap();
        seen.clear();
        let (mut io, local) = upgrade(front, Some(from), b"", None, &spoof);
        assert_eq!(local.ip(), from);
        let answer = ask(&mut io);
        let (peer, tcp) = answer.split_once(' ').expect("two addresses");
        let tcp: SocketAddr = tcp.parse().unwrap();
        assert_eq!(
            tcp.ip(),
            IpAddr::from([127, 0, 0, 1]),
            "tcp_peer_addr is nginx's"
        );
        if trusts {
            assert_eq!(peer, SocketAddr::new(from, 0).to_string());
        } else {
            assert_eq!(peer, tcp.to_string());
        }
        io.write_all(&masked(true, 8, &[0x03, 0xe8])).unwrap();
        io.flush().unwrap();
        assert!(seen.wait_len(4), "{:?}", seen.snapshot());
        for (callback, p, t) in seen.snapshot() {
            assert_eq!(p.to_string(), peer, "peer_addr in {callback}");
            assert_eq!(t, tcp, "tcp_peer_addr in {callback}");
        }
    }
    stop(&trusting);
    stop(&plain);
}
