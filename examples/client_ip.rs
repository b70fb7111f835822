//! The client's real address behind proxies (Node ws's "How to get the IP address of the
//! client?"): a server that greets each client with the address it connects from, and says
//! which proxy, if any, brought it. See docs/client-ip.md.
//!
//! ```sh
//! cargo run --example client_ip                                  # direct clients
//! cargo run --example client_ip -- --trust-proxy 127.0.0.1       # behind nginx on this host
//! cargo run --example client_ip -- --proxy-protocol              # behind HAProxy / AWS NLB
//! cargo run --example client_ip -- --port 9001 --trust-proxy 10.0.0.0/8 --proxy-protocol
//! ```

use wsx::{Conn, Handler, Message, Reject, Server, ServerBuilder, TrustedProxies, Upgrade};

/// Greets every client with its address.
pub(crate) struct Greeter;

impl Handler for Greeter {
    type State = ();

    fn on_upgrade(&mut self, upgrade: &mut Upgrade<'_>) -> Result<(), Reject> {
        // The same addresses as in every later callback.
        println!(
            "upgrade from {} (tcp peer {})",
            upgrade.peer_addr(),
            upgrade.tcp_peer_addr()
        );
        Ok(())
    }

    fn on_open(&mut self, conn: &mut Conn<'_, ()>) {
        let greeting = if conn.peer_addr() == conn.tcp_peer_addr() {
            format!("hello {}", conn.peer_addr())
        } else {
            format!("hello {} (via {})", conn.peer_addr(), conn.tcp_peer_addr())
        };
        let _ = conn.send_text(&greeting);
    }

    fn on_message(&mut self, conn: &mut Conn<'_, ()>, message: Message<'_>) {
        let _ = conn.send(message);
    }
}

/// The server the flags ask for: `--port N`, `--trust-proxy CIDR` (repeatable) and
/// `--proxy-protocol`.
pub(crate) fn builder<I: IntoIterator<Item = String>>(args: I) -> Result<ServerBuilder, String> {
    let mut builder = Server::builder().port(9001);
    let mut trusted = TrustedProxies::new();
    let mut args = args.into_iter();
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--port" => {
                let port = args.next().ok_or("--port needs a number")?;
                builder = builder.port(port.parse().map_err(|e| format!("--port: {e}"))?);
            }
            "--trust-proxy" => {
                let entry = args.next().ok_or("--trust-proxy needs a CIDR")?;
                trusted.add(&entry).map_err(|e| e.to_string())?;
            }
            "--proxy-protocol" => builder = builder.proxy_protocol(true),
            other => return Err(format!("unknown flag {other}")),
        }
    }
    Ok(builder.trusted_proxies(trusted))
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let server = builder(std::env::args().skip(1))?.start(|_worker| Greeter)?;
    println!("listening on ws://{}", server.local_addr());
    server.wait();
    Ok(())
}
