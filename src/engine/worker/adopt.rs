//! Connections another server accepted (`ServerHandle::adopt`, `ServerHandle::adopt_upgraded`):
//! taken into the slab like an accepted one, then either handshaken here from the bytes the
//! other server read, or, when it already answered `101`, opened with what that answer agreed.

use super::{Slot, Stage, Worker};
use crate::engine::adopt::{Adoption, Answered};
use crate::engine::conn::ConnIo;
use crate::engine::handler::Handler;
use crate::handler::Upgrade;
use crate::protocol::{CloseCode, Connection, Role};

impl<H: Handler> Worker<H> {
    /// Takes an adopted connection: into a slot (under the connection limit, like an accepted
    /// one), then through the handshake or straight to open.
    pub(super) fn adopt(&mut self, adoption: Adoption) {
        let Adoption {
            sock,
            tls,
            bytes,
            answered,
            client,
        } = adoption;
        if self.shutdown.is_some() || self.conns.len() >= self.settings.max_connections {
            if let Some(acceptor) = &mut self.acceptor {
                acceptor.refuse(sock);
            }
            return;
        }
        let Ok(peer) = sock.peer_addr() else {
            return; // reset on its way here
        };
        let tls = tls.map(|session| Box::new(crate::engine::tls::Tls::adopted(session)));
        let Ok(id) = self.register(&sock, false) else {
            return;
        };
        let key = id.key as usize;
        let has_tls = tls.is_some();
        let mut io = ConnIo::new(id, peer, self.now);
        if let Some(client) = client {
            // What the server in front learned; the socket's own peer stays the TCP peer.
            io.rare_mut().tcp_peer = Some(peer);
            io.peer = client;
        }
        let inserted = self.conns.insert(Slot {
            sock,
            gen: id.gen,
            io,
            stage: Stage::Handshake(Vec::new()),
            tls,
        });
        debug_assert_eq!(inserted, key);
        self.local.opened += 1;
        self.schedule(key);
        match answered {
            None => {
                if let Some(Slot {
                    stage: Stage::Handshake(buf),
                    ..
                }) = self.conns.get_mut(key)
                {
                    *buf = bytes;
                }
                self.on_handshake(key);
            }
            Some(answered) => self.open_answered(key, answered, &bytes),
        }
        if has_tls {
            // Plaintext the session decrypted before it came here: no readiness event
            // announces it.
            self.drain_plain(key);
        }
    }

    /// Opens a connection whose `101` another server sent: `on_upgrade` builds the state (its
    /// choice of subprotocol and headers comes too late to matter; a refusal closes with 1008,
    /// the `101` being out), then `on_open` and the frames in `leftover`.
    fn open_answered(&mut self, key: usize, answered: Answered, leftover: &[u8]) {
        let Some(slot) = self.conns.get_mut(key) else {
            return;
        };
        let Answered {
            request,
            decision,
            protocol,
            context,
        } = answered;
        super::proxied::forwarded(&self.settings, &mut slot.io, &request);
        let mut upgrade = Upgrade {
            request: &request,
            peer: slot.io.peer,
            tcp_peer: slot.io.tcp_peer(),
            route: decision.route,
            protocol: protocol.clone(),
            headers: Vec::new(),
            context,
        };
        let user = match self.handler.on_upgrade(&mut upgrade) {
            Ok(user) => user,
            Err(reject) => {
                let mut proto = Connection::new(Role::Server, self.proto_config);
                let reason = if reject.body.is_empty() {
                    crate::protocol::handshake::reason_phrase(reject.status)
                } else {
                    reject.body.as_str()
                };
                let _ = proto.send_close(CloseCode::POLICY, reason, &mut self.ctx.cork);
                return self.refuse(key);
            }
        };
        // The read buffer holds at least what `ServerHandle::adopt_upgraded` lets through.
        let n = leftover.len().min(self.rbuf.len());
        self.rbuf[..n].copy_from_slice(&leftover[..n]);
        self.open_route(key, decision, user, protocol, n);
    }
}
