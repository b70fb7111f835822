//! A `wss://` client (Node ws's "sending and receiving text data", against an echo server such
//! as `wss_server` or a public one).
//!
//! ```sh
//! cargo run --example wss_client -- wss://localhost:9443/ target/wss-example/cert.pem
//! cargo run --example wss_client -- wss://echo.example.org/      # a server with a public CA
//! ```
//!
//! With a CA file, the server must have a certificate it signed (or be it); without one, the
//! Mozilla roots (`webpki-roots`) decide.

use wsx::blocking;
use wsx::client::ClientOptions;
use wsx::tls::ClientTls;
use wsx::CloseCode;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (url, ca) = match args.as_slice() {
        [url] => (url.as_str(), None),
        [url, ca] => (url.as_str(), Some(ca.as_str())),
        _ => return Err("usage: wss_client URL [CA.pem]".into()),
    };
    let mut options = ClientOptions::new();
    if let Some(ca) = ca {
        options = options.tls(ClientTls::with_ca_pem_file(ca)?);
    }
    let mut ws = blocking::connect_with(url, &options)?;
    ws.send_text("hello over TLS")?;
    println!("received: {:?}", ws.recv()?);
    ws.close(CloseCode::NORMAL, "bye")?;
    Ok(())
}
