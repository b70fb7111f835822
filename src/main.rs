//! The `wsx` command line: `wsx serve` runs an echo server on the engine.
//!
//! Every flag is declared, with its documentation and default, in [`ServeArgs`]: `wsx serve
//! --help` is generated from it. Nothing printed here can stop the server: diagnostics go out
//! with `let _ = writeln!(..)`, so a closed stdout or stderr (`wsx serve | head -1`) costs only
//! the lines that cannot be written. Rust's runtime ignores SIGPIPE, so such writes fail with
//! EPIPE instead of killing the process.

use std::io::{self, Write};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use wsx::broadcast::LastValue;
use wsx::{Backend, Conn, Handler, Message, Server};

/// A WebSocket engine (RFC 6455 + RFC 7692): demo command line.
#[derive(Debug, Parser)]
#[command(name = "wsx", version, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

/// What `wsx` runs.
#[derive(Debug, Subcommand)]
enum Command {
    /// Echo server: every text or binary message comes back unchanged (with `--broadcast`,
    /// text messages that start with its prefix go to every connection instead).
    ///
    /// Ctrl-C or SIGTERM stops it cleanly: close 1001 to every client, then up to 5 s for the
    /// closing handshakes.
    #[command(display_name = "wsx")]
    Serve(ServeArgs),
}

/// The flags of `wsx serve`, each with its default.
#[derive(Debug, Args)]
struct ServeArgs {
    /// Address to listen on (a name, an IPv4 or an IPv6 address).
    #[arg(long, value_name = "HOST", default_value = "127.0.0.1")]
    host: String,
    /// Port to listen on (0 picks a free one; the first line printed names it).
    #[arg(long, value_name = "PORT", default_value_t = 9001)]
    port: u16,
    /// Worker threads, each pinned to a core [default: one per core].
    #[arg(
        long,
        value_name = "N",
        value_parser = at_least_one
    )]
    threads: Option<usize>,
    /// Serve only this request path; other paths get 404 [default: every path].
    #[arg(long, value_name = "PATH")]
    path: Option<String>,
    /// Answer permessage-deflate offers (RFC 7692); the options below tune it.
    #[arg(long)]
    deflate: bool,
    /// Compression level, 1 (fastest) to 12 (smallest) [default: 5].
    #[arg(long, value_name = "LEVEL", requires = "deflate",
          value_parser = clap::value_parser!(u8).range(1..=12))]
    deflate_level: Option<u8>,
    /// Keep the server's compression context across messages when the client allows it (no
    /// `server_no_context_takeover` in the answer): smaller output for similar messages, and a
    /// compressor (~371 KiB) per connection [default: reset after every message].
    #[arg(long, requires = "deflate")]
    deflate_context_takeover: bool,
    /// Largest window the server compresses with, 9 to 15 (answered as
    /// `server_max_window_bits` below 15; a window under 15 takes the streaming compressor)
    /// [default: 15].
    #[arg(long, value_name = "BITS", requires = "deflate",
          value_parser = clap::value_parser!(u8).range(9..=15))]
    deflate_max_window_bits: Option<u8>,
    /// Messages smaller than this many bytes go out uncompressed [default: 1024].
    #[arg(long, value_name = "BYTES", requires = "deflate")]
    deflate_threshold: Option<usize>,
    /// Threads of the deflate pool that compresses large messages off the workers; 0
    /// compresses every message inline [default: 1].
    #[arg(long, value_name = "N", requires = "deflate")]
    deflate_threads: Option<usize>,
    /// IO backend: `auto`, `epoll` or `io_uring`; a forced one that the kernel refuses is an
    /// error, `auto` takes io_uring where the kernel allows it and epoll elsewhere (the first
    /// line printed names the one that runs) [default: `WSX_BACKEND`, else auto].
    #[arg(long, value_name = "NAME", value_parser = clap::value_parser!(Backend))]
    backend: Option<Backend>,
    /// Broadcast instead of echo: a text message that starts with PREFIX is not echoed, the
    /// rest of it goes as a text message to every open connection, the sender included;
    /// every other message is echoed (the publish convention of broadcast benchmarks is
    /// `--broadcast B`) [default: echo everything].
    #[arg(long, value_name = "PREFIX", value_parser = non_empty)]
    broadcast: Option<String>,
    /// With --broadcast: only connections on this request path receive publishes, and only
    /// their prefixed messages are published; connections on other paths are echoed, prefix
    /// or not (subscribers and request/response clients side by side, as `scripts/soak.sh`
    /// runs them) [default: every connection].
    #[arg(long, value_name = "PATH", requires = "broadcast")]
    broadcast_path: Option<String>,
    /// With --broadcast-path or --nats: the feed keeps its last publish, and a connection
    /// that subscribes gets it at once, then every later one (docs/broadcast.md, "Last
    /// value") [default: off].
    #[arg(long, requires = "broadcast")]
    last_value: bool,
    /// Every INTERVAL, one JSON line of the server's counters on stderr: connections open,
    /// opened and closed since the start, messages, publishes delivered and dropped, sends
    /// dropped, queued bytes, and on glibc the allocator's heap (`scripts/soak.sh` samples
    /// them) [default: none].
    #[arg(long, value_name = "INTERVAL", value_parser = parse_interval)]
    stats_interval: Option<Duration>,
    /// Serve wss://: the certificate chain (PEM, leaf first) to present.
    #[arg(long, value_name = "FILE", requires = "tls_key")]
    tls_cert: Option<std::path::PathBuf>,
    /// Serve wss://: the private key (PEM: PKCS#8, PKCS#1 or SEC1) of --tls-cert.
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    tls_key: Option<std::path::PathBuf>,
    /// Behind proxies: believe the `X-Forwarded-For` and `Forwarded` headers of peers in this
    /// CIDR block or address (repeatable, or comma-separated), and nobody else's
    /// (docs/client-ip.md) [default: nobody's].
    #[arg(long, value_name = "CIDR", value_parser = trusted_proxy)]
    trust_proxy: Vec<String>,
    /// Behind an L4 load balancer: every connection must begin with a PROXY protocol header
    /// (v1 or v2, before TLS); one without is closed unanswered [default: off].
    #[arg(long)]
    proxy_protocol: bool,
    /// Answer plain HTTP `GET PATH` (a load balancer's health check) with `200 ok`; other
    /// plain requests keep their 426 [default: none].
    #[arg(long, value_name = "PATH")]
    health: Option<String>,
    /// With --broadcast: join the other nodes on this NATS server or cluster (repeatable, or
    /// comma-separated: `nats://host:4222`, `tls://host:4222`); a publish on any node reaches
    /// the subscribers of every node (docs/cluster.md). A token for NATS is read from
    /// `WSX_NATS_TOKEN`, never from the command line [default: this node only].
    #[cfg(feature = "nats")]
    #[arg(long, value_name = "URL", requires = "broadcast")]
    nats: Vec<String>,
    /// With --nats: the subject prefix the nodes share (topic `broadcast` is subject
    /// `PREFIX.broadcast`) [default: wsx].
    #[cfg(feature = "nats")]
    #[arg(long, value_name = "PREFIX", requires = "nats")]
    nats_prefix: Option<String>,
    /// With --nats: authenticate with this NATS credentials file (user JWT and NKey seed, as
    /// `nsc` writes it) [default: none].
    #[cfg(feature = "nats")]
    #[arg(long, value_name = "FILE", requires = "nats")]
    nats_creds: Option<std::path::PathBuf>,
    /// With --nats: trust the CA certificates in this PEM file for the NATS servers (in
    /// addition to the built-in roots) [default: the built-in roots].
    #[cfg(feature = "nats")]
    #[arg(long, value_name = "FILE", requires = "nats")]
    nats_ca: Option<std::path::PathBuf>,
    /// With --nats and --last-value: keep the feed's last publish in this JetStream bucket
    /// too, so that a node that starts or restarts has it for its first subscriber
    /// (`nats-server -js`; docs/cluster.md) [default: NATS core only].
    #[cfg(feature = "nats")]
    #[arg(long, value_name = "NAME", requires_all = ["nats", "last_value"])]
    nats_bucket: Option<String>,
}

impl ServeArgs {
    /// The backplane the `--nats` flags ask for, `None` without `--nats`.
    #[cfg(feature = "nats")]
    fn backplane(&self) -> Option<wsx::cluster::NatsBackplane> {
        if self.nats.is_empty() {
            return None;
        }
        let urls = self.nats.iter().flat_map(|s| s.split(',')).map(str::trim);
        let mut nats = wsx::cluster::NatsBackplane::new(urls.filter(|u| !u.is_empty()));
        if let Some(prefix) = &self.nats_prefix {
            nats = nats.prefix(prefix.clone());
        }
        if let Some(path) = &self.nats_creds {
            nats = nats.credentials_file(path.clone());
        }
        if let Some(path) = &self.nats_ca {
            nats = nats.root_certificates(path.clone());
        }
        if let Some(bucket) = &self.nats_bucket {
            nats = nats.last_values_bucket(bucket.clone());
        }
        if let Some(token) = std::env::var("WSX_NATS_TOKEN")
            .ok()
            .filter(|t| !t.is_empty())
        {
            nats = nats.token(token);
        }
        Some(nats)
    }

    /// Whether publishes go to the other nodes too (`--nats`).
    fn clustered(&self) -> bool {
        #[cfg(feature = "nats")]
        {
            !self.nats.is_empty()
        }
        #[cfg(not(feature = "nats"))]
        {
            false
        }
    }

    /// The permessage-deflate options the flags ask for, `None` without `--deflate`.
    fn deflate_options(&self) -> Option<wsx::protocol::deflate::DeflateOptions> {
        if !self.deflate {
            return None;
        }
        let mut options = wsx::protocol::deflate::DeflateOptions::default();
        if let Some(level) = self.deflate_level {
            options.level = level;
        }
        if self.deflate_context_takeover {
            options.server_no_context_takeover = false;
        }
        if let Some(bits) = self.deflate_max_window_bits {
            options.server_max_window_bits = Some(bits);
        }
        if let Some(threshold) = self.deflate_threshold {
            options.threshold = threshold;
        }
        Some(options)
    }
}

/// Parses a count that must be 1 or more.
fn at_least_one(s: &str) -> Result<usize, String> {
    match s.parse::<usize>() {
        Ok(0) => Err("must be at least 1".to_owned()),
        Ok(n) => Ok(n),
        Err(e) => Err(e.to_string()),
    }
}

/// Checks a `--trust-proxy` value: addresses or CIDR blocks, comma-separated.
fn trusted_proxy(s: &str) -> Result<String, String> {
    s.parse::<wsx::TrustedProxies>()
        .map(|_| s.to_owned())
        .map_err(|e| e.to_string())
}

/// Parses `--stats-interval`: whole seconds (`5`, `5s`) or milliseconds (`250ms`), above 0.
fn parse_interval(s: &str) -> Result<Duration, String> {
    let ms = if let Some(v) = s.strip_suffix("ms") {
        v.parse::<u64>().map_err(|e| e.to_string())?
    } else {
        let v = s.strip_suffix('s').unwrap_or(s);
        v.parse::<u64>()
            .map_err(|e| e.to_string())?
            .saturating_mul(1000)
    };
    if ms == 0 {
        return Err("must be above 0".to_owned());
    }
    Ok(Duration::from_millis(ms))
}

/// Parses a string that must not be empty.
fn non_empty(s: &str) -> Result<String, String> {
    if s.is_empty() {
        Err("must not be empty".to_owned())
    } else {
        Ok(s.to_owned())
    }
}

/// The topic of `--broadcast-path` subscribers.
const FEED: &str = "broadcast";

/// Echoes every message, except text messages that start with the broadcast prefix (when
/// there is one): their remainder goes to every open connection, or with a broadcast path to
/// the connections on it; clustered (`--nats`), to those of every node.
struct Echo {
    broadcast: Option<Arc<str>>,
    broadcast_path: Option<Arc<str>>,
    /// Publishes go through topic [`FEED`], which crosses the backplane, instead of a
    /// broadcast, which stays on this node.
    clustered: bool,
}

/// Whether a connection is a subscriber of the broadcast path.
#[derive(Debug, Default)]
struct Subscriber(bool);

impl Handler for Echo {
    type State = Subscriber;

    fn on_upgrade(&mut self, upgrade: &mut wsx::Upgrade<'_>) -> Result<Subscriber, wsx::Reject> {
        Ok(Subscriber(match self.broadcast_path.as_deref() {
            Some(path) => upgrade.path() == path,
            None => self.clustered,
        }))
    }

    fn on_open(&mut self, conn: &mut Conn<'_, Subscriber>) {
        if conn.state().0 {
            conn.subscribe(FEED);
        }
    }

    fn on_message(&mut self, conn: &mut Conn<'_, Subscriber>, message: Message<'_>) {
        if let (Some(prefix), Message::Text(text)) = (&self.broadcast, &message) {
            if let Some(rest) = text.strip_prefix(&**prefix) {
                if self.broadcast_path.is_none() && !self.clustered {
                    conn.broadcast(Message::Text(rest));
                    return;
                }
                if conn.state().0 {
                    conn.publish(FEED, Message::Text(rest));
                    return;
                }
            }
        }
        let _ = conn.send(message);
    }
}

/// Writes one JSON line of `server`'s counters to stderr every `interval`, `t_ms` from the
/// start, until the process ends.
fn print_stats(server: wsx::ServerHandle, interval: Duration) {
    let start = std::time::Instant::now();
    std::thread::spawn(move || loop {
        std::thread::sleep(interval);
        let s = server.stats();
        let f = server.footprint();
        let mut line = format!(
            "{{\"t_ms\":{},\"connections\":{},\"opened\":{},\"closed\":{},\"messages_in\":{},\
             \"messages_out\":{},\"delivered\":{},\"delivery_dropped\":{},\"dropped\":{},\
             \"shed\":{},\"publish_backlogged\":{},\"queued_bytes\":{},\"slab_capacity\":{},\
             \"timer_capacity\":{},\"topic_heap\":{}",
            start.elapsed().as_millis(),
            s.connections,
            s.opened,
            s.closed,
            s.messages_in,
            s.messages_out,
            s.delivered,
            s.delivery_dropped,
            s.dropped,
            s.shed,
            s.publish_backlogged,
            f.queued_bytes,
            f.slab_capacity,
            f.timer_capacity,
            f.topic_heap,
        );
        if let Some((in_use, mapped, arena)) = heap() {
            line.push_str(&format!(
                ",\"heap_in_use\":{in_use},\"heap_mmapped\":{mapped},\"heap_arena\":{arena}"
            ));
        }
        line.push('}');
        let _ = writeln!(io::stderr(), "{line}");
    });
}

/// glibc's allocator, from `mallinfo2`: bytes in use (small blocks and mmapped ones),
/// mmapped, and the arenas' size (what the heap holds from the kernel, in use or free).
#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[allow(unsafe_code)]
fn heap() -> Option<(usize, usize, usize)> {
    // SAFETY: mallinfo2 takes no arguments and returns a struct by value; it only reads the
    // allocator's state under its own locks.
    let m = unsafe { libc::mallinfo2() };
    Some((m.uordblks + m.hblkhd, m.hblkhd, m.arena))
}

/// No allocator figures off glibc.
#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn heap() -> Option<(usize, usize, usize)> {
    None
}

fn main() -> ExitCode {
    // `parse` prints help or version and exits 0, or names the bad flag and exits 2.
    let cli = Cli::parse();
    match cli.command {
        Command::Serve(args) => match serve(&args) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                let _ = writeln!(io::stderr(), "wsx: {e}");
                ExitCode::FAILURE
            }
        },
    }
}

fn serve(args: &ServeArgs) -> Result<(), String> {
    if let Err(e) = raise_nofile_limit() {
        let _ = writeln!(
            io::stderr(),
            "wsx: cannot raise the open-file limit ({e}); continuing with the current one"
        );
    }
    let mut builder = Server::builder().host(&args.host).port(args.port);
    if let Some(n) = args.threads {
        builder = builder.threads(n);
    }
    if let Some(p) = &args.path {
        builder = builder.path(p.clone());
    }
    if let Some(options) = args.deflate_options() {
        builder = builder.deflate(options);
    }
    if let Some(n) = args.deflate_threads {
        builder = builder.deflate_threads(n);
    }
    if let (Some(cert), Some(key)) = (&args.tls_cert, &args.tls_key) {
        let tls = wsx::tls::ServerTls::from_pem_files(cert, key)
            .map_err(|e| format!("cannot use the TLS certificate: {e}"))?;
        builder = builder.tls(tls);
    }
    if !args.trust_proxy.is_empty() {
        let trusted =
            wsx::TrustedProxies::parse(args.trust_proxy.iter().flat_map(|s| s.split(',')))
                .map_err(|e| e.to_string())?;
        builder = builder.trusted_proxies(trusted);
    }
    builder = builder.proxy_protocol(args.proxy_protocol);
    if let Some(path) = args.health.clone() {
        builder = builder.http(move |request| {
            (request.path() == path).then(|| wsx::HttpResponse::new(200).body("ok\n"))
        });
    }
    #[cfg(feature = "nats")]
    if let Some(nats) = args.backplane() {
        builder = builder.backplane(nats);
    }
    if args.last_value {
        if args.broadcast_path.is_none() && !args.clustered() {
            return Err(
                "--last-value needs --broadcast-path or --nats: without them a publish goes to \
                 every connection, not to a feed that could keep it"
                    .into(),
            );
        }
        // The feed, one value (no key).
        builder = builder.last_value_for(FEED, LastValue::new().max_topics(1).max_keys(1));
    }
    // Without the flag the builder keeps `Auto`, which reads `WSX_BACKEND` at start.
    if let Some(backend) = args.backend {
        builder = builder.backend(backend);
    }
    // Handlers first: once the address is printed, a signal must stop the server cleanly.
    let mut signals = signal_hook::iterator::Signals::new([
        signal_hook::consts::SIGINT,
        signal_hook::consts::SIGTERM,
    ])
    .map_err(|e| format!("cannot install signal handlers: {e}"))?;
    let broadcast: Option<Arc<str>> = args.broadcast.as_deref().map(Arc::from);
    let broadcast_path: Option<Arc<str>> = args.broadcast_path.as_deref().map(Arc::from);
    let clustered = args.clustered();
    let server = builder
        .start(move |_| Echo {
            broadcast: broadcast.clone(),
            broadcast_path: broadcast_path.clone(),
            clustered,
        })
        .map_err(|e| match e.kind() {
            // A backend that `--backend` or `WSX_BACKEND` forced and the kernel refused, or a
            // `WSX_BACKEND` that names none.
            io::ErrorKind::Unsupported | io::ErrorKind::InvalidInput => {
                format!("cannot start the server: {e}")
            }
            _ => format!("cannot listen on {}:{}: {e}", args.host, args.port),
        })?;
    let _ = writeln!(
        io::stdout(),
        "wsx: echo server listening on {}://{} (backend {}, {} worker{}{}{})",
        if args.tls_cert.is_some() { "wss" } else { "ws" },
        server.local_addr(),
        server.backend(),
        server.workers(),
        if server.workers() == 1 { "" } else { "s" },
        if args.deflate {
            ", permessage-deflate"
        } else {
            ""
        },
        match (&args.broadcast, &args.broadcast_path) {
            (Some(prefix), None) => format!(", broadcast prefix {prefix:?}"),
            (Some(prefix), Some(path)) => format!(", broadcast prefix {prefix:?} on {path}"),
            _ => String::new(),
        }
    );
    #[cfg(feature = "nats")]
    if let Some(node) = server.backplane_node() {
        let _ = writeln!(
            io::stdout(),
            "wsx: node {node} on NATS [{}], prefix {:?}, topic {FEED:?}",
            args.nats.join(", "),
            args.nats_prefix.as_deref().unwrap_or("wsx"),
        );
    }
    if let Some(interval) = args.stats_interval {
        print_stats(server.clone(), interval);
    }
    if args.proxy_protocol || !args.trust_proxy.is_empty() {
        let _ = writeln!(
            io::stdout(),
            "wsx: behind proxies: PROXY protocol {}, trusted proxies [{}]",
            if args.proxy_protocol {
                "required"
            } else {
                "off"
            },
            args.trust_proxy.join(", ")
        );
    }
    let handle = server.clone();
    let (noted, note_written) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        // The first signal starts a graceful shutdown, a second one ends the grace at once.
        // Shut down first, then say so: the note may not be writable (a closed pipe).
        let mut grace = Duration::from_secs(5);
        for sig in signals.forever() {
            handle.shutdown(grace);
            let _ = if grace.is_zero() {
                writeln!(io::stderr(), "wsx: signal {sig} again, stopping now")
            } else {
                writeln!(io::stderr(), "wsx: signal {sig}, shutting down")
            };
            let _ = noted.send(());
            grace = Duration::ZERO;
        }
    });
    server.wait();
    // Only a signal stops the server: let its note come out before the last line (an idle
    // server stops before the signal thread has written it), within a bound.
    let _ = note_written.recv_timeout(Duration::from_secs(1));
    let _ = writeln!(io::stdout(), "wsx: stopped");
    Ok(())
}

/// Raises the soft limit on open descriptors to the hard limit, as Go's runtime does at start:
/// every connection costs one, and the default soft limit (often 1024) is far below what a
/// server on one machine holds. Does nothing when the soft limit is already the hard one.
#[allow(unsafe_code)]
fn raise_nofile_limit() -> io::Result<()> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `limit` is a valid, writable `rlimit` that outlives the call.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } != 0 {
        return Err(io::Error::last_os_error());
    }
    if limit.rlim_cur >= limit.rlim_max {
        return Ok(());
    }
    limit.rlim_cur = limit.rlim_max;
    // macOS reports an unlimited hard limit but refuses a soft one above OPEN_MAX.
    #[cfg(target_os = "macos")]
    {
        limit.rlim_cur = limit.rlim_cur.min(10240);
    }
    // SAFETY: `limit` is a valid `rlimit` that outlives the call; the kernel only reads it.
    if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &limit) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}
