//! The server upgrade: parsing the handshake a connection sent, `on_upgrade`, subprotocol and
//! permessage-deflate negotiation, the 101 or the refusal (an HTTP error response, then a
//! lingering close).

use super::{Ending, Stage, Worker};
use crate::engine::handler::Handler;
use crate::handler::{Reject, Upgrade};
use crate::protocol::deflate::negotiate;
use crate::protocol::handshake::{self, AcceptOptions, ExtensionOffer, UpgradeRequest};
use crate::protocol::{Connection, Role};

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
            Err(e) => {
                handshake::write_error(&e, &mut self.ctx.cork);
                return self.refuse(key);
            }
        };
        if let Some(path) = &self.settings.path {
            if request.path() != path {
                write_status(
                    &Reject::new(404).body("no websocket service at this path"),
                    &mut self.ctx.cork,
                );
                return self.refuse(key);
            }
        }
        super::proxied::forwarded(&self.settings, &mut slot.io, &request); // proxied.rs
        let mut upgrade = Upgrade {
            request: &request,
            peer: slot.io.peer,
            tcp_peer: slot.io.tcp_peer(),
            protocol: None,
            headers: Vec::new(),
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
        let deflate = self.settings.deflate.as_ref().and_then(|options| {
            negotiate::server_accept(request.extensions(), options)
                .map(|(answer, params)| (answer, params, options))
        });
        let answer: Vec<ExtensionOffer> = deflate.iter().map(|(a, _, _)| a.clone()).collect();
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
        // Bytes after the head are the first frames; they fit the read buffer (see `readable`).
        let leftover = buf.len() - consumed;
        self.rbuf[..leftover].copy_from_slice(&buf[consumed..]);
        let mut proto = Connection::new(Role::Server, self.proto_config);
        if let Some((_, params, options)) = deflate {
            proto.set_deflate(params, options.clone());
        }
        self.open(
            key,
            proto,
            user,
            protocol.map(String::into_boxed_str),
            leftover,
        );
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
fn write_status(reject: &Reject, out: &mut Vec<u8>) {
    let phrase = handshake::reason_phrase(reject.status);
    let body = if reject.body.is_empty() {
        phrase
    } else {
        reject.body.as_str()
    };
    out.extend_from_slice(format!("HTTP/1.1 {} {}\r\n", reject.status, phrase).as_bytes());
    for (name, value) in &reject.headers {
        let bad = |s: &str| s.bytes().any(|b| b == b'\r' || b == b'\n') || s.is_empty();
        if bad(name) || value.bytes().any(|b| b == b'\r' || b == b'\n') || name.contains(':') {
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
