//! A client on tokio with `wsx::tokio::connect`: the read half and the write half of the
//! stream run in two tasks; it sends each argument as a text message, prints the echoes, and
//! closes with 1000.
//!
//! ```text
//! cargo run --features tokio --example tokio_client -- ws://127.0.0.1:9001/ hello world
//! ```

use futures_util::{SinkExt, StreamExt};
use wsx::tokio::Message;

#[tokio::main]
async fn main() -> Result<(), wsx::tokio::Error> {
    let mut args = std::env::args().skip(1);
    let url = args.next().unwrap_or_else(|| "ws://127.0.0.1:9001/".into());
    let words: Vec<String> = args.collect();
    let expected = words.len();

    let (ws, response) = wsx::tokio::connect(&url).await?;
    println!("connected, subprotocol {:?}", response.protocol());
    let (mut tx, mut rx) = ws.split();

    let writer = tokio::spawn(async move {
        for word in words {
            tx.send(Message::Text(word)).await?;
        }
        Ok::<_, wsx::tokio::Error>(tx)
    });
    let mut received = 0;
    while received < expected {
        match rx.next().await {
            Some(Ok(Message::Text(text))) => {
                println!("{text}");
                received += 1;
            }
            Some(Ok(other)) => println!("{other:?}"),
            Some(Err(e)) => return Err(e),
            None => break,
        }
    }
    let tx = writer.await.expect("the writer task")?;
    // Reunited, `close` sends 1000, waits (bounded) for the server's close and shuts down.
    let mut ws = tx.reunite(rx).expect("halves of one stream");
    ws.close(None).await
}
