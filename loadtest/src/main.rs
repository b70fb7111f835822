//! wsx-loadtest: drives any WebSocket server and reports throughput and latency (skeleton).

fn main() {
    println!("wsx-loadtest");
}
