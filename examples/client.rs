//! The blocking client: connect, send, receive, close.
//!
//! ```sh
//! cargo run --release -- serve &            # an echo server on 127.0.0.1:9001
//! cargo run --example client -- ws://127.0.0.1:9001/ "hello"
//! ```

use wsx::blocking::{self, Message};
use wsx::CloseCode;

fn main() -> Result<(), wsx::client::ClientError> {
    let mut args = std::env::args().skip(1);
    let url = args
        .next()
        .unwrap_or_else(|| "ws://127.0.0.1:9001/".to_owned());
    let text = args.next().unwrap_or_else(|| "hello".to_owned());
    let mut ws = blocking::connect(&url)?;
    ws.send_text(&text)?;
    match ws.recv()? {
        Message::Text(reply) => println!("{reply}"),
        other => println!("{other:?}"),
    }
    ws.close(CloseCode::NORMAL, "done")?;
    Ok(())
}
