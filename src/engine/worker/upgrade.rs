//! The server upgrade: parsing the handshake a connection sent, `on_upgrade`, subprotocol and
//! permessage-deflate negotiation, the 101 or the refusal (an HTTP error response, then a
//! lingering close).

use std::panic::{catch_unwind, AssertUnwindSafe};

use super::{Ending, Slot, Stage, Worker};
use crate::engine::handler::Handler;
use crate::engine::route::Decision;
use crate::handler::{Reject, Upgrade};
use crate::http::HttpRequest;
use crate::protocol::handshake::{self, AcceptOptions, ExtensionOffer, UpgradeRequest};
use crate::protocol::{Config, Connection, Role};

impl<H: Handler> Worker<H> {
    pub(super) fn on_handshake(&mut self, key: usize) {
        if !self.proxy_header(key) {
            return; // proxied.rs: a PROXY protocol header is owed first
        }
        let Some(slot) = self.conns.get_mut(key) else {
            return;
        };
        let Stage::Handshake(buf) = &mut slot.stage else {
            return;
        };
        if slot.tls.is_none() && buf.first() == Some(&0x16) {
            // A TLS ClientHello on a plain port: a TLS alert, which the client reports as a
            // TLS error instead of reading an HTTP answer as a record.
            self.ctx
                .cork
                .extend_from_slice(crate::engine::tls::TLS_ON_PLAIN_PORT);
            return self.refuse(key);
        }
        let (request, consumed) = match UpgradeRequest::parse(buf, &self.settings.limits) {
            Ok(Some(parsed)) => parsed,
            Ok(None) => return,
            Err(handshake::HandshakeError::NotUpgrade) if self.settings.http.is_some() => {
                return self.plain_http(key);
            }
            Err(e) => {
                handshake::write_error(&e, &mut self.ctx.cork);
                return self.refuse(key);
            }
        };
        let decision = match self.settings.decide(&request) {
            Ok(d) => d,
            Err(reject) => {
                write_status(&reject, &mut self.ctx.cork);
                return self.refuse(key);
            }
        };
        super::proxied::forwarded(&self.settings, &mut slot.io, &request); // proxied.rs
        let mut upgrade = Upgrade {
            request: &request,
            peer: slot.io.peer,
            tcp_peer: slot.io.tcp_peer(),
            route: decision.route,
            protocol: None,
            headers: Vec::new(),
            context: None,
        };
        let user = match self.handler.on_upgrade(&mut upgrade) {
            Ok(user) => user,
            Err(reject) => {
                write_status(&reject, &mut self.ctx.cork);
                return self.refuse(key);
            }
        };
        let Upgrade {
            protocol, headers, ..
        } = upgrade;
        let header_refs: Vec<(&str, &str)> = headers
            .iter()
            .map(|(n, v)| (n.as_str(), v.as_str()))
            .collect();
        let answer: Vec<ExtensionOffer> =
            decision.deflate.iter().map(|(a, _, _)| a.clone()).collect();
        let options = AcceptOptions::new()
            .with_headers(&header_refs)
            .with_extensions(&answer);
        let options = match protocol.as_deref() {
            Some(p) => options.with_protocol(p),
            None => options,
        };
        if let Err(e) = handshake::write_accept(&request, &options, &mut self.ctx.cork) {
            handshake::write_error(&e, &mut self.ctx.cork);
            return self.refuse(key);
        }
        let Some(Slot {
            stage: Stage::Handshake(buf),
            ..
        }) = self.conns.get_mut(key)
        else {
            return;
        };
        // Bytes after the head are the first frames; they fit the read buffer (see `readable`
        // and `ServerHandle::adopt`).
        let leftover = buf.len() - consumed;
        self.rbuf[..leftover].copy_from_slice(&buf[consumed..]);
        self.open_route(key, decision, user, protocol, leftover);
    }

    /// Opens connection `key` on its route: the route's limits and the deflate parameters
    /// agreed, then `on_open` and the `leftover` bytes already at the front of the read
    /// buffer.
    pub(super) fn open_route(
        &mut self,
        key: usize,
        decision: Decision,
        user: H::State,
        protocol: Option<String>,
        leftover: usize,
    ) {
        let config = Config {
            limits: self.settings.limits_for(decision.route),
            ..self.proto_config
        };
        let mut proto = Connection::new(Role::Server, config);
        if let Some((_, params, options)) = decision.deflate {
            proto.set_deflate(params, options);
        }
        if let Some(slot) = self.conns.get_mut(key) {
            slot.io.route = decision.route;
        }
        self.open(
            key,
            proto,
            user,
            protocol.map(String::into_boxed_str),
            leftover,
        );
    }

    /// A plain HTTP request on a server with an HTTP answer ([`Builder::http`]): the answer,
    /// then a lingering close.
    ///
    /// [`Builder::http`]: crate::server::Builder::http
    fn plain_http(&mut self, key: usize) {
        let (
            Some(Slot {
                stage: Stage::Handshake(buf),
                ..
            }),
            Some(http),
        ) = (self.conns.get(key), &self.settings.http)
        else {
            return;
        };
        match HttpRequest::parse(buf, &self.settings.limits) {
            Some(request) => {
                let head_only = request.method() == "HEAD";
                let response = catch_unwind(AssertUnwindSafe(|| (http.0)(&request)));
                match response {
                    Ok(Some(response)) => response.write(head_only, &mut self.ctx.cork),
                    Ok(None) => handshake::write_error(
                        &handshake::HandshakeError::NotUpgrade,
                        &mut self.ctx.cork,
                    ),
                    Err(_) => write_status(&Reject::new(500), &mut self.ctx.cork),
                }
            }
            None => {
                handshake::write_error(&handshake::HandshakeError::NotUpgrade, &mut self.ctx.cork)
            }
        }
        self.refuse(key);
    }

    /// Answers a handshake that failed (the answer is in the cork) and closes.
    pub(super) fn refuse(&mut self, key: usize) {
        if let Some(slot) = self.conns.get_mut(key) {
            slot.stage = Stage::Draining {
                ending: Ending::Linger,
                shut: false,
            };
            slot.io.since = self.now;
        }
        self.after_callbacks(key);
    }
}

/// Appends a complete HTTP error response for a refused upgrade.
pub(super) fn write_status(reject: &Reject, out: &mut Vec<u8>) {
    let phrase = handshake::reason_phrase(reject.status);
    let body = if reject.body.is_empty() {
        phrase
    } else {
        reject.body.as_str()
    };
    out.extend_from_slice(format!("HTTP/1.1 {} {}\r\n", reject.status, phrase).as_bytes());
    for (name, value) in &reject.headers {
        if !crate::http::header_is_safe(name, value) {
            continue;
        }
        out.extend_from_slice(format!("{name}: {value}\r\n").as_bytes());
    }
    out.extend_from_slice(
        format!(
            "Connection: close\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: {}\r\n\r\n{}",
            body.len(),
            body
        )
        .as_bytes(),
    );
}
