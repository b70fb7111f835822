//! Behind proxies: the real client's address of an accepted connection, from a PROXY protocol
//! header (a listener with `Builder::proxy_protocol`) and from the forwarding headers of a
//! trusted proxy (`Builder::trusted_proxies`). See docs/client-ip.md.
//!
//! ```text
//! admit ─► (PROXY listener) the TLS session is set aside in `Rare`, the slot reads plain bytes
//! on_handshake ─► proxy_header: parse the header from the handshake buffer
//!                   incomplete ─► wait (the handshake timeout bounds it, V2_MAX_LEN its size)
//!                   invalid    ─► the connection is dropped, no answer
//!                   whole      ─► `peer` = the client, `Rare::tcp_peer` = the proxy;
//!                                 wss: the TLS session is put back and fed the bytes behind
//!                                 the header; ws: the HTTP handshake goes on from them
//! request parsed ─► forwarded: `X-Forwarded-For` / `Forwarded`, from a trusted peer only
//! ```
//!
//! The bytes come through the plain read path of either backend (epoll `read`, io_uring
//! receive) while the header is awaited, because the slot has no TLS session yet: the header
//! precedes the ClientHello in plaintext.

use std::sync::Arc;

use super::{Stage, Worker};
use crate::engine::conn::ConnIo;
use crate::engine::handler::Handler;
use crate::engine::tls::Tls;
use crate::engine::Settings;
use crate::protocol::handshake::UpgradeRequest;
use crate::server::{forwarded, proxy_protocol};
use crate::TrustedProxies;

/// How a listener learns the real client's address (`Settings::proxy`).
#[derive(Debug, Clone, Default)]
pub(crate) struct ProxySettings {
    /// Every connection must begin with a PROXY protocol header (v1 or v2).
    pub(crate) protocol: bool,
    /// Peers whose `X-Forwarded-For` / `Forwarded` headers are believed; `None`: nobody's.
    pub(crate) trusted: Option<Arc<TrustedProxies>>,
}

/// A connection waiting for its PROXY protocol header, kept in `Rare`; a `wss://` connection's
/// TLS session waits here until the header is read.
pub(crate) struct AwaitingHeader {
    tls: Option<Box<Tls>>,
}

impl std::fmt::Debug for AwaitingHeader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AwaitingHeader")
            .field("tls", &self.tls.is_some())
            .finish()
    }
}

impl<H: Handler> Worker<H> {
    /// A connection was just admitted: on a PROXY listener it waits for its header before
    /// anything else, with its TLS session (if any) set aside.
    pub(super) fn await_proxy_header(&mut self, key: usize) {
        if !self.settings.proxy.protocol {
            return;
        }
        let Some(slot) = self.conns.get_mut(key) else {
            return;
        };
        let tls = slot.tls.take();
        slot.io.rare_mut().await_proxy = Some(AwaitingHeader { tls });
    }

    /// The first step of `on_handshake`: reads the PROXY protocol header a connection owes.
    /// Returns whether the HTTP handshake goes on now from the handshake buffer (no header was
    /// owed, or a plain connection's header was just read); false when it waits for more
    /// bytes, was dropped, or is a TLS connection whose bytes went to its TLS session.
    pub(super) fn proxy_header(&mut self, key: usize) -> bool {
        let Some(slot) = self.conns.get_mut(key) else {
            return false;
        };
        if !slot
            .io
            .rare
            .as_ref()
            .is_some_and(|r| r.await_proxy.is_some())
        {
            return true;
        }
        let Stage::Handshake(buf) = &mut slot.stage else {
            return true;
        };
        let limit = proxy_protocol::V2_MAX_LEN.min(self.settings.limits.max_head_size.max(232));
        let (header, consumed) = match proxy_protocol::parse_with_limit(buf, limit) {
            Ok(Some(parsed)) => parsed,
            Ok(None) => return false,
            Err(_) => {
                // Not from the load balancer: no answer (an HTTP one would tell a scanner
                // what listens here, and a TLS client cannot read it).
                self.remove(key);
                return false;
            }
        };
        buf.drain(..consumed);
        let tcp = slot.io.peer;
        let rare = slot.io.rare_mut();
        let waiting = rare.await_proxy.take();
        if let Some(client) = header.source() {
            rare.tcp_peer = Some(tcp);
            slot.io.peer = client;
        }
        let Some(tls) = waiting.and_then(|w| w.tls) else {
            return true;
        };
        let rest = std::mem::take(buf);
        let tls = slot.tls.insert(tls);
        if rest.is_empty() {
            return false;
        }
        let r = tls.feed(&rest, &mut self.tls_scratch);
        if self.after_feed(key, r) {
            self.drain_plain(key);
        }
        false
    }
}

/// The request is parsed: when the peer is a trusted proxy, the client its forwarding headers
/// name becomes the connection's `peer` (the proxy's own address is kept as `tcp_peer`).
pub(super) fn forwarded(settings: &Settings, io: &mut ConnIo, request: &UpgradeRequest) {
    let Some(trusted) = &settings.proxy.trusted else {
        return;
    };
    let client = forwarded::client_addr(io.peer, request.headers(), trusted);
    if client != io.peer {
        let tcp = io.tcp_peer();
        io.rare_mut().tcp_peer = Some(tcp);
        io.peer = client;
    }
}
