//! [`NatsBackplane`]: where a node's backplane connects and how.

use std::path::PathBuf;
use std::time::Duration;

/// How a node joins the others over NATS: the servers, credentials, TLS and subject prefix.
/// Given to [`Builder::backplane`](crate::server::Builder::backplane).
///
/// # Examples
///
/// ```no_run
/// use wsx::cluster::NatsBackplane;
/// use wsx::{Conn, Handler, Server};
///
/// struct Feed;
/// impl Handler for Feed {
///     type State = ();
///     fn on_open(&mut self, conn: &mut Conn<'_, ()>) {
///         conn.subscribe("ticks.AAPL");
///     }
/// }
///
/// let nats = NatsBackplane::new(["nats://10.0.0.5:4222", "nats://10.0.0.6:4222"])
///     .token("s3cret")
///     .prefix("feed");
/// let server = Server::builder().port(9001).backplane(nats).start(|_| Feed)?;
/// // A publish on any node reaches the subscribers of every node.
/// server.publish("ticks.AAPL", wsx::Message::Text("{\"px\":1}")).ok();
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Clone)]
pub struct NatsBackplane {
    pub(crate) urls: Vec<String>,
    pub(crate) prefix: String,
    pub(crate) node: Option<String>,
    pub(crate) token: Option<String>,
    pub(crate) user_password: Option<(String, String)>,
    pub(crate) credentials_file: Option<PathBuf>,
    pub(crate) nkey: Option<String>,
    pub(crate) require_tls: bool,
    pub(crate) root_certificates: Vec<PathBuf>,
    pub(crate) client_certificate: Option<(PathBuf, PathBuf)>,
    pub(crate) tls_config: Option<rustls::ClientConfig>,
    pub(crate) queue: usize,
    pub(crate) receive_queue: usize,
    pub(crate) max_payload: Option<u64>,
    pub(crate) reconnect_delay_max: Duration,
    /// The JetStream key-value bucket of the last values; `None`: NATS core only.
    pub(crate) last_values_bucket: Option<String>,
    pub(crate) last_values_max_bytes: u64,
}

impl std::fmt::Debug for NatsBackplane {
    /// Everything but the secrets.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NatsBackplane")
            .field("urls", &self.urls)
            .field("prefix", &self.prefix)
            .field("node", &self.node)
            .field("token", &self.token.as_ref().map(|_| "…"))
            .field("user", &self.user_password.as_ref().map(|(u, _)| u))
            .field("credentials_file", &self.credentials_file)
            .field("nkey", &self.nkey.as_ref().map(|_| "…"))
            .field("require_tls", &self.require_tls)
            .field("root_certificates", &self.root_certificates)
            .field("client_certificate", &self.client_certificate)
            .field("tls_config", &self.tls_config.is_some())
            .field("queue", &self.queue)
            .field("receive_queue", &self.receive_queue)
            .field("max_payload", &self.max_payload)
            .field("reconnect_delay_max", &self.reconnect_delay_max)
            .field("last_values_bucket", &self.last_values_bucket)
            .field("last_values_max_bytes", &self.last_values_max_bytes)
            .finish()
    }
}

impl NatsBackplane {
    /// Connects to any of `urls` (`nats://host:port`, `tls://host:port`, or `host:port`; the
    /// servers of one NATS cluster), with the defaults of the other methods.
    pub fn new<I, S>(urls: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        NatsBackplane {
            urls: urls.into_iter().map(Into::into).collect(),
            prefix: "wsx".into(),
            node: None,
            token: None,
            user_password: None,
            credentials_file: None,
            nkey: None,
            require_tls: false,
            root_certificates: Vec::new(),
            client_certificate: None,
            tls_config: None,
            queue: 8192,
            receive_queue: 1024,
            max_payload: None,
            reconnect_delay_max: Duration::from_secs(2),
            last_values_bucket: None,
            last_values_max_bytes: 256 << 20,
        }
    }

    /// Topic `T` is NATS subject `<prefix>.T`; nodes that share a prefix share topics.
    /// Default `wsx`. Several applications on one NATS keep apart with prefixes of their own.
    /// A prefix that is no literal NATS subject (empty tokens, whitespace, `*`, `>`) fails
    /// [`Builder::start`](crate::server::Builder::start).
    pub fn prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = prefix.into();
        self
    }

    /// This node's name, sent with each of its publishes (`Wsx-Origin`) and as its NATS
    /// connection name (`wsx/NAME`). Default: 16 random hex digits. Two nodes with one name
    /// skip each other's messages.
    pub fn node_name(mut self, name: impl Into<String>) -> Self {
        self.node = Some(name.into());
        self
    }

    /// Authenticates with a token.
    pub fn token(mut self, token: impl Into<String>) -> Self {
        self.token = Some(token.into());
        self
    }

    /// Authenticates with a user name and a password.
    pub fn user_password(mut self, user: impl Into<String>, password: impl Into<String>) -> Self {
        self.user_password = Some((user.into(), password.into()));
        self
    }

    /// Authenticates with a NATS credentials file (a user JWT and its NKey seed, as `nsc`
    /// writes it). A file that cannot be read fails [`Builder::start`](crate::server::Builder::start).
    pub fn credentials_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.credentials_file = Some(path.into());
        self
    }

    /// Authenticates with an NKey seed (`SU…`, a user's). A seed that does not decode, or
    /// is not a user's, fails [`Builder::start`](crate::server::Builder::start).
    pub fn nkey(mut self, seed: impl Into<String>) -> Self {
        self.nkey = Some(seed.into());
        self
    }

    /// Refuses a NATS server that does not speak TLS. Default false: TLS when the URL is
    /// `tls://` or the server asks for it.
    pub fn require_tls(mut self, on: bool) -> Self {
        self.require_tls = on;
        self
    }

    /// Trusts the CA certificates in the PEM file at `path` for the NATS servers, in addition
    /// to the system's roots (which alone are trusted without this). Read at
    /// [`Builder::start`](crate::server::Builder::start): a file that cannot be read or holds
    /// no certificate fails it.
    pub fn root_certificates(mut self, path: impl Into<PathBuf>) -> Self {
        self.root_certificates.push(path.into());
        self
    }

    /// Presents the client certificate chain `cert` with private key `key` (PEM files) to
    /// NATS servers that verify clients. Read at
    /// [`Builder::start`](crate::server::Builder::start), which fails on a file that cannot
    /// be read or a key that does not match.
    pub fn client_certificate(mut self, cert: impl Into<PathBuf>, key: impl Into<PathBuf>) -> Self {
        self.client_certificate = Some((cert.into(), key.into()));
        self
    }

    /// TLS to NATS with this rustls configuration, instead of one built from
    /// [`NatsBackplane::root_certificates`] and [`NatsBackplane::client_certificate`].
    pub fn tls_config(mut self, config: rustls::ClientConfig) -> Self {
        self.tls_config = Some(config);
        self
    }

    /// Most publishes waiting for the NATS thread; past it a publish is dropped and counted in
    /// [`BackplaneStats::dropped_backlog`](super::BackplaneStats::dropped_backlog). Default
    /// 8,192: a burst is absorbed, a NATS server slower than the publishers for long does not
    /// grow the node's memory without bound. At least 1.
    pub fn publish_queue(mut self, publishes: usize) -> Self {
        self.queue = publishes.max(1);
        self
    }

    /// Most messages from NATS waiting, per subscribed topic, for the NATS thread to fan them
    /// in; past it the NATS client drops them (counted in
    /// [`BackplaneStats::slow_consumer`](super::BackplaneStats::slow_consumer)). Default 1,024.
    /// What NATS can make a node hold is this many messages of the NATS server's
    /// `max_payload` (1 MiB unless configured) per subscribed topic: the NATS client reads a
    /// whole message before the node checks it against
    /// [`NatsBackplane::max_payload`]. At least 1.
    pub fn receive_queue(mut self, messages: usize) -> Self {
        self.receive_queue = messages.max(1);
        self
    }

    /// Largest message from NATS fanned out to subscribers; larger ones are refused and counted
    /// in [`BackplaneStats::refused_oversize`](super::BackplaneStats::refused_oversize).
    /// Default: the server's max payload ([`Builder::max_payload`](crate::server::Builder::max_payload)),
    /// so a remote publisher is held to what a local one would be.
    pub fn max_payload(mut self, bytes: u64) -> Self {
        self.max_payload = Some(bytes);
        self
    }

    /// Longest wait between two attempts to reconnect (the wait doubles from 1 ms up to it).
    /// Default 2 s.
    pub fn reconnect_delay_max(mut self, max: Duration) -> Self {
        self.reconnect_delay_max = max;
        self
    }

    /// Keeps the last values of this node's last-value topics
    /// ([`Builder::last_value_for`](crate::server::Builder::last_value_for)) in the JetStream
    /// key-value bucket `bucket` too (created when missing, one value per topic and key), so
    /// that a node that gets its first subscriber of such a topic — a node that joins, or
    /// restarts — reads the newest values every node published and sends them to its
    /// subscribers at once. Each publish to such a topic then costs two NATS messages (the
    /// live one and the bucket's). Needs a NATS server with JetStream enabled
    /// (`nats-server -js`). Default: off (NATS core only; a node then has the values
    /// published while it had subscribers, and its own).
    pub fn last_values_bucket(mut self, bucket: impl Into<String>) -> Self {
        self.last_values_bucket = Some(bucket.into());
        self
    }

    /// Most bytes the last-values bucket holds on the NATS server (JetStream refuses values
    /// past it). Default 256 MiB.
    pub fn last_values_max_bytes(mut self, bytes: u64) -> Self {
        self.last_values_max_bytes = bytes;
        self
    }
}
