//! Connecting through a proxy (Node ws's "how to connect via a proxy?"): an HTTP `CONNECT` or
//! SOCKS5 proxy given by URL, or the one the environment names (`https_proxy`, `http_proxy`,
//! `all_proxy`, `no_proxy`, as curl reads them). Credentials go in the proxy URL
//! (docs/proxies.md).
//!
//! ```sh
//! cargo run --example via_proxy -- ws://echo.example/ http://user:pass@proxy:3128
//! cargo run --example via_proxy -- wss://echo.example/ socks5h://127.0.0.1:1080
//! https_proxy=http://proxy:3128 cargo run --example via_proxy -- wss://echo.example/
//! ```

use wsx::blocking::{self, Message as Received};
use wsx::client::proxy::Proxy;
use wsx::client::{ClientOptions, ProxyChoice};

/// Connects to `url` through `proxy` (a proxy URL; `None`: what the environment says), sends
/// `text` and returns the first text message that comes back.
pub(crate) fn echo_via(
    url: &str,
    proxy: Option<&str>,
    text: &str,
) -> Result<String, Box<dyn std::error::Error>> {
    let mut options = ClientOptions::new();
    options.proxy = match proxy {
        Some(p) => ProxyChoice::Use(Proxy::parse(p)?),
        None => ProxyChoice::FromEnv,
    };
    let mut ws = blocking::connect_with(url, &options)?;
    ws.send_text(text)?;
    loop {
        match ws.recv()? {
            Received::Text(t) => {
                ws.close(wsx::CloseCode::NORMAL, "")?;
                return Ok(t);
            }
            Received::Close(code, reason) => {
                return Err(format!("closed by the server: {code} {reason}").into())
            }
            _ => {}
        }
    }
}

#[allow(dead_code)]
fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let url = args
        .next()
        .ok_or("usage: via_proxy URL [PROXY_URL] (no PROXY_URL: from the environment)")?;
    let proxy = args.next();
    let reply = echo_via(&url, proxy.as_deref(), "hello through the proxy")?;
    println!("{reply}");
    Ok(())
}
