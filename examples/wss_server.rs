//! An echo server over `wss://` (Node ws's "external HTTPS server": there the HTTPS server
//! is Node's; here TLS runs inside the engine's workers).
//!
//! ```sh
//! cargo run --example wss_server -- cert.pem key.pem     # your certificate chain and key
//! cargo run --example wss_server                         # a self-signed one, made for you
//! cargo run --example wss_client -- wss://localhost:9443/ target/wss-example/cert.pem
//! ```
//!
//! Without arguments it makes a self-signed certificate for `localhost` and 127.0.0.1 under
//! `target/wss-example/`, whose `cert.pem` a client then trusts as its CA.

use std::path::PathBuf;

use wsx::tls::ServerTls;
use wsx::{Conn, Handler, Message, Server};

struct Echo;

impl Handler for Echo {
    type State = ();

    fn on_message(&mut self, conn: &mut Conn<'_, ()>, message: Message<'_>) {
        let _ = conn.send(message);
    }
}

/// A self-signed certificate for `localhost` and 127.0.0.1, written as PEM files.
fn self_signed() -> (PathBuf, PathBuf) {
    let dir = PathBuf::from("target/wss-example");
    std::fs::create_dir_all(&dir).expect("create target/wss-example");
    let names = vec!["localhost".to_owned(), "127.0.0.1".to_owned()];
    let made = rcgen::generate_simple_self_signed(names).expect("make a certificate");
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    std::fs::write(&cert, made.cert.pem()).expect("write cert.pem");
    std::fs::write(&key, made.key_pair.serialize_pem()).expect("write key.pem");
    (cert, key)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (cert, key) = match args.as_slice() {
        [cert, key] => (PathBuf::from(cert), PathBuf::from(key)),
        [] => self_signed(),
        _ => return Err("usage: wss_server [CERT.pem KEY.pem]".into()),
    };
    let tls = ServerTls::from_pem_files(&cert, &key)?;
    let server = Server::builder().port(9443).tls(tls).start(|_| Echo)?;
    println!(
        "listening on wss://{} (certificate {})",
        server.local_addr(),
        cert.display()
    );
    server.wait();
    Ok(())
}
