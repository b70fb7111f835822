//! An echo server on tokio with `wsx::tokio::accept_with`: one task per connection,
//! permessage-deflate accepted, the `echo` subprotocol chosen when offered, other paths than
//! `/` refused with 404. `docs/tokio.md` shows it next to the tokio-tungstenite program it
//! replaces.
//!
//! ```text
//! cargo run --features tokio --example tokio_echo -- 127.0.0.1:9001
//! ```

use futures_util::{SinkExt, StreamExt};
use tokio::net::{TcpListener, TcpStream};
use wsx::protocol::deflate::DeflateOptions;
use wsx::tokio::{accept_with, Accept, AcceptConfig, Message};

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:9001".into());
    let listener = TcpListener::bind(&addr).await?;
    println!("listening on ws://{}/", listener.local_addr()?);
    loop {
        let (tcp, peer) = listener.accept().await?;
        tokio::spawn(async move {
            if let Err(e) = serve(tcp).await {
                eprintln!("{peer}: {e}");
            }
        });
    }
}

async fn serve(tcp: TcpStream) -> Result<(), wsx::tokio::Error> {
    let config = AcceptConfig {
        deflate: Some(DeflateOptions::default()),
        ..AcceptConfig::default()
    };
    let mut ws = accept_with(tcp, &config, |request| {
        if request.path() != "/" {
            return Err(wsx::Reject::new(404));
        }
        let echo = request.protocols().any(|p| p == "echo");
        Ok(if echo {
            Accept::new().protocol("echo")
        } else {
            Accept::new()
        })
    })
    .await?;
    // Pings are answered by the stream; the peer's close is answered too, and the stream ends.
    while let Some(message) = ws.next().await {
        if let m @ (Message::Text(_) | Message::Binary(_)) = message? {
            ws.send(m).await?;
        }
    }
    Ok(())
}
