//! The command line: every flag, its default and its documentation (`wsx-loadtest --help`).
//! These structures are also the run's configuration: tests build them with
//! [`Cli::try_parse_from`](clap::Parser::try_parse_from).

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

/// Load generator for any WebSocket server: echo, broadcast, connection storms and idle fleets,
/// with coordinated-omission-corrected latency.
#[derive(Debug, Clone, Parser)]
#[command(name = "wsx-loadtest", version, propagate_version = true)]
pub struct Cli {
    /// What to run.
    #[command(subcommand)]
    pub command: Command,
}

/// The modes.
#[derive(Debug, Clone, Subcommand)]
pub enum Command {
    /// C connections each keep D messages in flight (closed loop), or send at a fixed total
    /// rate (`--rate`, open loop); the server echoes every message, which is checked.
    Echo(EchoArgs),
    /// C connections subscribe; connection 0 also publishes `PREFIX<payload>` at `--rate`, which
    /// the server sends to every connection (the sender included); reports per-delivery latency
    /// and reach (time until the last subscriber has a message).
    Broadcast(BroadcastArgs),
    /// Connection storm: opens C connections as fast as `--concurrency` allows; handshakes/s,
    /// handshake latency, time until all are open.
    Connect(ConnectArgs),
    /// Opens C connections and holds them for `--duration`, optionally pinging each; with
    /// `--server-pid`, the server's memory per connection.
    Idle(IdleArgs),
    /// Runs one scenario against several servers in alternating rounds and prints the ratios.
    Compare(CompareArgs),
}

/// Flags every mode has.
#[derive(Debug, Clone, Args)]
pub struct Common {
    /// The server: ws://HOST:PORT/PATH, or `inproc` for a wsx echo server (with the
    /// `B<payload>` rule) on one thread inside this process: the load generator's own ceiling.
    #[arg(long, value_name = "URL")]
    pub url: Option<String>,
    /// Connections.
    #[arg(short = 'c', long, value_name = "N", default_value_t = 100)]
    pub connections: usize,
    /// Measured time (after the warm-up): `10s`, `500ms`, `2m`, or seconds.
    #[arg(long, value_name = "TIME", default_value = "10s", value_parser = parse_duration)]
    pub duration: Duration,
    /// Load before measuring, not counted.
    #[arg(long, value_name = "TIME", default_value = "2s", value_parser = parse_duration)]
    pub warmup: Duration,
    /// Worker threads of the load generator [default: half the cores, at least 1, so that a
    /// server on the same machine keeps the rest].
    #[arg(long, value_name = "N")]
    pub threads: Option<usize>,
    /// Pins worker i to core i (off by default, so that `taskset` decides).
    #[arg(long)]
    pub pin: bool,
    /// The load generator's IO backend: `epoll`, `io_uring` or `auto` [default: auto, or
    /// `WSX_BACKEND`].
    #[arg(long, value_name = "NAME", value_parser = clap::value_parser!(wsx::Backend))]
    pub backend: Option<wsx::Backend>,
    /// Offer permessage-deflate (RFC 7692).
    #[arg(long)]
    pub deflate: bool,
    /// The server's process id: its CPU time over the measured window and its memory go into
    /// the report.
    #[arg(long, value_name = "PID")]
    pub server_pid: Option<u32>,
    /// Writes the report as one JSON object to FILE (`-` for stdout).
    #[arg(long, value_name = "FILE")]
    pub json: Option<PathBuf>,
    /// Writes latency over time and by percentile as an SVG chart to FILE.
    #[arg(long, value_name = "FILE")]
    pub svg: Option<PathBuf>,
    /// Source addresses to connect from, round robin: `auto` (enough 127.x.y.z for a loopback
    /// server), a range `127.0.0.2-127.0.0.9`, or a list `127.0.0.2,127.0.0.3`.
    #[arg(long, value_name = "ADDRS")]
    pub sources: Option<String>,
    /// Connections in progress (TCP connect + handshake) at most at once.
    #[arg(long, value_name = "N", default_value_t = 256)]
    pub concurrency: usize,
    /// Time a connection has to open (TCP and handshake).
    #[arg(long, value_name = "TIME", default_value = "10s", value_parser = parse_duration)]
    pub connect_timeout: Duration,
    /// After the measured window, time allowed for the replies still in flight.
    #[arg(long, value_name = "TIME", default_value = "5s", value_parser = parse_duration)]
    pub drain: Duration,
    /// Free-form label copied into the report.
    #[arg(long, value_name = "TEXT")]
    pub label: Option<String>,
    /// wss://: verify the server against the CA certificates in this PEM file instead of the
    /// Mozilla roots.
    #[arg(long, value_name = "FILE", conflicts_with = "insecure")]
    pub tls_ca: Option<PathBuf>,
    /// wss://: accept any server certificate (for test servers with self-signed ones; the
    /// traffic is still encrypted, but nobody checked who the server is).
    #[arg(long)]
    pub insecure: bool,
    /// No progress line.
    #[arg(long, short = 'q')]
    pub quiet: bool,
    /// How every connection ends when the run is over: `clean` (close 1000 and the closing
    /// handshake) or `reset` (TCP RST: `SO_LINGER` 0, no close frame, what a killed client
    /// looks like to the server).
    #[arg(long, value_name = "HOW", value_enum, default_value_t = Ending::Clean)]
    pub close: Ending,
}

/// How the load generator ends its connections (`--close`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Ending {
    /// Close 1000, then the closing handshake.
    Clean,
    /// A TCP reset, without a close frame.
    Reset,
}

/// `echo`.
#[derive(Debug, Clone, Args)]
pub struct EchoArgs {
    /// Flags every mode has.
    #[command(flatten)]
    pub common: Common,
    /// Messages in flight per connection (closed loop: kept in flight; with `--rate`: the most
    /// that may wait for a reply, later ones wait and their wait counts in their latency).
    #[arg(short = 'd', long, value_name = "N", default_value_t = 1)]
    pub in_flight: usize,
    /// Payload size in bytes.
    #[arg(short = 's', long, value_name = "BYTES", default_value_t = 32)]
    pub size: usize,
    /// Binary messages (default text).
    #[arg(long)]
    pub binary: bool,
    /// Fixed total rate, messages/s over all connections (open loop; latency counts from each
    /// message's intended send time, correcting coordinated omission).
    #[arg(long, value_name = "N")]
    pub rate: Option<f64>,
}

/// `broadcast`.
#[derive(Debug, Clone, Args)]
pub struct BroadcastArgs {
    /// Flags every mode has.
    #[command(flatten)]
    pub common: Common,
    /// Payload size in bytes (at least 32: a sequence number and a timestamp).
    #[arg(short = 's', long, value_name = "BYTES", default_value_t = 64)]
    pub size: usize,
    /// Publishes per second.
    #[arg(long, value_name = "N", default_value_t = 100.0)]
    pub rate: f64,
    /// What a publish starts with: the server sends the rest to every connection (the rule of
    /// ../shared/bench and of `wsx serve --broadcast B`).
    #[arg(long, value_name = "TEXT", default_value = "B")]
    pub prefix: String,
    /// A publish not delivered to every subscriber within this time counts its missing
    /// deliveries as lost.
    #[arg(long, value_name = "TIME", default_value = "5s", value_parser = parse_duration)]
    pub timeout: Duration,
}

/// `connect`.
#[derive(Debug, Clone, Args)]
pub struct ConnectArgs {
    /// Flags every mode has (`--duration` and `--warmup` are not used: see `--hold`).
    #[command(flatten)]
    pub common: Common,
    /// How long to hold the connections once all are open, before closing them.
    #[arg(long, value_name = "TIME", default_value = "0s", value_parser = parse_duration)]
    pub hold: Duration,
}

/// `idle`.
#[derive(Debug, Clone, Args)]
pub struct IdleArgs {
    /// Flags every mode has (`--duration`: how long to hold the connections).
    #[command(flatten)]
    pub common: Common,
    /// Pings every connection this often (spread evenly) and measures the pong time.
    #[arg(long, value_name = "TIME", value_parser = parse_duration)]
    pub ping: Option<Duration>,
}

/// `compare`.
#[derive(Debug, Clone, Args)]
pub struct CompareArgs {
    /// A server: `NAME=URL` or `NAME=URL,pid=PID` (repeat; at least two).
    #[arg(long = "target", value_name = "NAME=URL[,pid=PID]", required = true)]
    pub targets: Vec<String>,
    /// Rounds; each round runs every target once, in an order that rotates.
    #[arg(long, value_name = "N", default_value_t = 3)]
    pub rounds: usize,
    /// Writes every run's report and the ratios as one JSON object to FILE.
    #[arg(long, value_name = "FILE")]
    pub json: Option<PathBuf>,
    /// Writes every target's latency percentiles as one SVG chart to FILE.
    #[arg(long, value_name = "FILE")]
    pub svg: Option<PathBuf>,
    /// The scenario, as for a single run without `--url` (e.g. `echo -c 100 -d 1`).
    #[arg(trailing_var_arg = true, allow_hyphen_values = true, required = true)]
    pub scenario: Vec<String>,
}

/// Parses `10s`, `250ms`, `2m`, `1h`, `1.5` (seconds).
///
/// # Errors
///
/// Not a number with one of those units.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let (num, unit) = match s.find(|c: char| c.is_ascii_alphabetic()) {
        Some(i) => s.split_at(i),
        None => (s, "s"),
    };
    let v: f64 = num
        .trim()
        .parse()
        .map_err(|_| format!("invalid duration `{s}` (try 10s, 500ms, 2m)"))?;
    let scale = match unit {
        "ns" => 1e-9,
        "us" | "µs" => 1e-6,
        "ms" => 1e-3,
        "s" => 1.0,
        "m" => 60.0,
        "h" => 3600.0,
        _ => return Err(format!("unknown unit `{unit}` in `{s}` (ms, s, m, h)")),
    };
    let secs = v * scale;
    if !secs.is_finite() || !(0.0..=1e9).contains(&secs) {
        return Err(format!("duration `{s}` out of range"));
    }
    Ok(Duration::from_secs_f64(secs))
}

impl Command {
    /// The flags every mode has (`None` for `compare`).
    pub fn common(&self) -> Option<&Common> {
        match self {
            Command::Echo(a) => Some(&a.common),
            Command::Broadcast(a) => Some(&a.common),
            Command::Connect(a) => Some(&a.common),
            Command::Idle(a) => Some(&a.common),
            Command::Compare(_) => None,
        }
    }

    /// The flags every mode has, to change (`None` for `compare`).
    pub fn common_mut(&mut self) -> Option<&mut Common> {
        match self {
            Command::Echo(a) => Some(&mut a.common),
            Command::Broadcast(a) => Some(&mut a.common),
            Command::Connect(a) => Some(&mut a.common),
            Command::Idle(a) => Some(&mut a.common),
            Command::Compare(_) => None,
        }
    }

    /// The mode's name.
    pub fn name(&self) -> &'static str {
        match self {
            Command::Echo(_) => "echo",
            Command::Broadcast(_) => "broadcast",
            Command::Connect(_) => "connect",
            Command::Idle(_) => "idle",
            Command::Compare(_) => "compare",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("10s"), Ok(Duration::from_secs(10)));
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("1.5"), Ok(Duration::from_millis(1500)));
        assert!(parse_duration("ten").is_err());
        assert!(parse_duration("5 parsecs").is_err());
        assert!(parse_duration("-1s").is_err());
    }

    #[test]
    fn parses_a_scenario() {
        let cli = Cli::try_parse_from([
            "wsx-loadtest",
            "echo",
            "--url",
            "ws://127.0.0.1:1/",
            "-c",
            "7",
            "-d",
            "3",
            "--rate",
            "100",
        ])
        .unwrap();
        let Command::Echo(e) = cli.command else {
            panic!("not echo")
        };
        assert_eq!(e.common.connections, 7);
        assert_eq!(e.in_flight, 3);
        assert_eq!(e.rate, Some(100.0));
        assert_eq!(e.common.close, Ending::Clean);
    }

    #[test]
    fn parses_the_ending() {
        let cli = Cli::try_parse_from(["wsx-loadtest", "idle", "--close", "reset"]).unwrap();
        assert_eq!(cli.command.common().unwrap().close, Ending::Reset);
        assert!(Cli::try_parse_from(["wsx-loadtest", "idle", "--close", "rst"]).is_err());
    }
}
