//! Proxies. (Placeholder with the final API; the implementation lands with the proxy work.)

/// A proxy to reach the WebSocket server through.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Proxy {
    /// HTTP CONNECT proxy.
    Http {
        /// Proxy host.
        host: String,
        /// Proxy port.
        port: u16,
        /// Basic auth user and password.
        auth: Option<(String, String)>,
    },
    /// SOCKS5 proxy.
    Socks5 {
        /// Proxy host.
        host: String,
        /// Proxy port.
        port: u16,
        /// Username and password.
        auth: Option<(String, String)>,
    },
}

/// A proxy failure.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ProxyError {
    /// Not implemented in this build.
    #[error("proxies are not supported yet")]
    Unsupported,
}

impl Proxy {
    /// The proxy from the environment for `target`, if any.
    pub fn from_env(_target: &crate::client::Url) -> Option<Proxy> {
        None
    }

    /// `host:port` of the proxy.
    pub fn authority(&self) -> String {
        match self {
            Proxy::Http { host, port, .. } | Proxy::Socks5 { host, port, .. } => {
                format!("{host}:{port}")
            }
        }
    }
}

/// The proxy's own handshake.
#[derive(Debug)]
pub struct ProxyHandshake;

/// Progress of a [`ProxyHandshake`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProxyStep {
    /// More bytes needed.
    NeedMore {
        /// Bytes consumed.
        consumed: usize,
    },
    /// Tunnel ready.
    Done {
        /// Bytes consumed.
        consumed: usize,
    },
}

impl ProxyHandshake {
    /// A handshake through `proxy` to the target.
    pub fn new(_proxy: &Proxy, _host: &str, _port: u16) -> Self {
        ProxyHandshake
    }

    /// First bytes to send.
    pub fn start(&mut self, _out: &mut Vec<u8>) {}

    /// Handles bytes read.
    ///
    /// # Errors
    ///
    /// Always, in this placeholder.
    pub fn handle_read(
        &mut self,
        _input: &[u8],
        _out: &mut Vec<u8>,
    ) -> Result<ProxyStep, ProxyError> {
        Err(ProxyError::Unsupported)
    }
}
