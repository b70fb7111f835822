//! The pub/sub side of [`Conn`]: subscribe, unsubscribe, publish, broadcast.
//!
//! A publish builds its frame once ([`Published`]) and is delivered in three parts: the
//! publishing connection's own copy goes into its cork at once (so that it keeps its place
//! among the callback's sends), the other local recipients get it at the end of the loop turn
//! (batched with the turn's other publishes), and every other worker with recipients gets one
//! inbox push.

use std::sync::Arc;

use crate::broadcast::frame::{Audience, Published};
use crate::broadcast::{PublishOptions, SubscriberStats};
use crate::engine::conn::Conn;
use crate::engine::fanout::{limit_of, Counts, Piece, Recipient};
use crate::handler::Message;
use crate::protocol::deflate::DeflateOptions;

/// Below this a shared frame is copied into the cork rather than chained as its own iovec.
const CHAIN_FROM: usize = 1024;

impl<S> Conn<'_, S> {
    /// Subscribes this connection to `topic`. Returns false if it already was. Subscriptions
    /// end when the connection closes. A topic that keeps its last values
    /// ([`Builder::last_value_for`](crate::ServerBuilder::last_value_for)) sends them to this
    /// connection now, oldest first, ahead of anything published after.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// use wsx::{Conn, Handler, Message, Server};
    ///
    /// struct Chat;
    /// impl Handler for Chat {
    ///     type State = ();
    ///     fn on_open(&mut self, conn: &mut Conn<'_, ()>) {
    ///         conn.subscribe("room");
    ///     }
    ///     fn on_message(&mut self, conn: &mut Conn<'_, ()>, message: Message<'_>) {
    ///         // Everyone in the room, this connection included.
    ///         conn.publish("room", message);
    ///     }
    /// }
    /// let server = Server::builder().port(9001).start(|_| Chat)?;
    /// server.wait();
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn subscribe(&mut self, topic: &str) -> bool {
        let key = self.io.id.key;
        let subs = self.io.subs.get_or_insert_with(Box::default);
        if !self.ctx.topics.subscribe(topic, key, subs) {
            return false;
        }
        // A last-value topic: its newest values now, then only what is published after.
        let snapshot = self
            .ctx
            .topics
            .directory()
            .last_values()
            .and_then(|l| l.snapshot(topic));
        if let (Some(snapshot), Some(id)) = (snapshot, self.ctx.topics.id(topic)) {
            for message in &snapshot.values {
                self.deliver_own(message, Some(id));
            }
            if let Some(subs) = self.io.subs_mut() {
                subs.set_watermark(id, snapshot.watermark);
            }
        }
        true
    }

    /// Unsubscribes this connection from `topic`. Returns false if it was not subscribed.
    pub fn unsubscribe(&mut self, topic: &str) -> bool {
        let key = self.io.id.key;
        let (Some(id), Some(subs)) = (self.ctx.topics.id(topic), self.io.subs_mut()) else {
            return false;
        };
        self.ctx.topics.unsubscribe(id, key, subs)
    }

    /// Whether this connection is subscribed to `topic`.
    pub fn is_subscribed(&self, topic: &str) -> bool {
        match (self.ctx.topics.id(topic), self.io.subs()) {
            (Some(id), Some(subs)) => subs.topics.contains(&id),
            _ => false,
        }
    }

    /// Topics this connection is subscribed to.
    pub fn subscriptions(&self) -> usize {
        self.io.subs().map_or(0, |s| s.topics.len())
    }

    /// What this connection's subscriptions delivered, dropped and conflated.
    pub fn subscriber_stats(&self) -> SubscriberStats {
        self.io.subs().map(|s| s.stats).unwrap_or_default()
    }

    /// Publishes `message` to every subscriber of `topic` on every worker, this connection
    /// included if it is subscribed. The frame is built once; see [`crate::broadcast`].
    pub fn publish(&mut self, topic: &str, message: Message<'_>) {
        self.publish_with(topic, message, &PublishOptions::default());
    }

    /// Publishes `message` to every subscriber of `topic` but this connection.
    pub fn publish_to_others(&mut self, topic: &str, message: Message<'_>) {
        let options = PublishOptions {
            include_self: false,
            ..PublishOptions::default()
        };
        self.publish_with(topic, message, &options);
    }

    /// Publishes `message` to `topic` with conflation key `key` (an instrument symbol, say):
    /// a slow subscriber of a conflating topic keeps only the newest message per key.
    pub fn publish_keyed(&mut self, topic: &str, key: &str, message: Message<'_>) {
        let options = PublishOptions {
            key: Some(key),
            ..PublishOptions::default()
        };
        self.publish_with(topic, message, &options);
    }

    /// Publishes `message` to `topic` with `options`. A topic that nobody subscribes to costs
    /// a lookup and no allocation, unless it keeps its last values
    /// ([`Builder::last_value_for`](crate::ServerBuilder::last_value_for)): then the message is
    /// framed and kept.
    pub fn publish_with(
        &mut self,
        topic: &str,
        message: Message<'_>,
        options: &PublishOptions<'_>,
    ) {
        let local = self.ctx.topics.id(topic);
        let shared = match local {
            Some(id) => self.ctx.topics.get(id).map(|t| t.shared.clone()),
            None => self.ctx.topics.directory().get(topic),
        };
        let directory = self.ctx.topics.directory();
        let built = directory.build(
            topic,
            shared.as_ref(),
            options.key,
            message,
            options.compress,
            Some(self.io.id),
        );
        let Some(built) = built else {
            // No subscriber on this node; other nodes may have some.
            if let Some(remote) = directory.remote() {
                let payload = bytes::Bytes::copy_from_slice(message.as_bytes());
                remote.publish(topic, options.key, message.kind(), payload, false);
            }
            return;
        };
        if let Some(shared) = &shared {
            shared
                .published
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
        let message = built.message;
        if let Some(remote) = directory.remote() {
            let payload = message.payload_bytes();
            remote.publish(topic, options.key, message.kind, payload, built.keeps);
        }
        // A worker whose inbox is over the backlog misses it (counted in Stats).
        let _ = self.ctx.hub.send_to_workers(&message, Some(self.ctx.index));
        let Some(id) = local else {
            return; // no local subscriber, this connection included
        };
        let me_subscribed = self.io.subs().is_some_and(|s| s.topics.contains(&id));
        if options.include_self && me_subscribed {
            self.deliver_own(&message, Some(id));
        }
        self.ctx.outgoing.push(message);
    }

    /// Sends `message` to every open accepted connection of the server, this one included
    /// (Node ws's `wss.clients.forEach`).
    pub fn broadcast(&mut self, message: Message<'_>) {
        self.broadcast_with(message, &PublishOptions::default());
    }

    /// Sends `message` to every open accepted connection of the server but this one.
    pub fn broadcast_to_others(&mut self, message: Message<'_>) {
        let options = PublishOptions {
            include_self: false,
            ..PublishOptions::default()
        };
        self.broadcast_with(message, &options);
    }

    /// [`Conn::broadcast`] with `options` (the key is ignored: a broadcast does not conflate).
    pub fn broadcast_with(&mut self, message: Message<'_>, options: &PublishOptions<'_>) {
        let message = Published::new(
            Audience::All,
            None,
            message,
            options.compress,
            Some(self.io.id),
        );
        // A worker whose inbox is over the backlog misses it (counted in Stats).
        let _ = self.ctx.hub.send_to_workers(&message, Some(self.ctx.index));
        if options.include_self && self.io.role == crate::protocol::Role::Server {
            self.deliver_own(&message, None);
        }
        self.ctx.outgoing.push(message);
    }

    /// Puts this connection's own copy of a publish into its cork, under the topic's policy.
    fn deliver_own(&mut self, message: &Arc<Published>, topic: Option<u32>) {
        let policy = match topic {
            Some(id) => self
                .ctx
                .topics
                .get(id)
                .map(|t| t.policy)
                .unwrap_or_default(),
            None => self.ctx.settings.policies.default,
        };
        let queued = self.buffered_amount();
        let mut pieces = Vec::new();
        let mut counts = Counts::default();
        let mut scratch = Vec::new();
        let role = self.io.role;
        let subs = match topic {
            Some(_) => self.io.subs_mut(),
            None => None,
        };
        let mut recipient = Recipient {
            tx: &mut *self.tx,
            role,
            subs,
            queued,
            limit: limit_of(&policy, self.ctx.settings.max_buffered),
            slow: policy.slow,
        };
        let deflate = deflate_options(&self.ctx.settings);
        recipient.plan(
            message,
            topic,
            deflate,
            &mut scratch,
            &mut pieces,
            &mut counts,
        );
        for piece in pieces {
            match piece {
                Piece::Shared(frame) if frame.len() >= CHAIN_FROM => {
                    self.ctx.chain_len += frame.len();
                    self.ctx.chain.push((self.ctx.cork.len(), frame));
                }
                Piece::Shared(frame) => self.ctx.cork.extend_from_slice(&frame),
                Piece::Own(range) => self.ctx.cork.extend_from_slice(&scratch[range]),
            }
        }
        self.ctx.messages_out += counts.delivered;
        if counts.closed > 0 {
            self.io.since = self.ctx.now;
        }
        if let Some(id) = topic {
            if let Some(t) = self.ctx.topics.get(id) {
                add_topic_counts(&t.shared, &counts);
            }
        }
        self.ctx.published.add(&counts);
    }
}

/// The options a shared compressed frame is built with: the server's.
pub(crate) fn deflate_options(settings: &crate::engine::Settings) -> &DeflateOptions {
    static DEFAULT: std::sync::OnceLock<DeflateOptions> = std::sync::OnceLock::new();
    settings
        .deflate
        .as_deref()
        .unwrap_or_else(|| DEFAULT.get_or_init(DeflateOptions::default))
}

/// Adds a fan-out's outcomes to a topic's shared counters.
pub(crate) fn add_topic_counts(topic: &crate::broadcast::directory::SharedTopic, c: &Counts) {
    use std::sync::atomic::Ordering::Relaxed;
    if c.delivered > 0 {
        topic.delivered.fetch_add(c.delivered, Relaxed);
    }
    if c.dropped > 0 {
        topic.dropped.fetch_add(c.dropped, Relaxed);
    }
    if c.conflated > 0 {
        topic.conflated.fetch_add(c.conflated, Relaxed);
    }
    if c.closed > 0 {
        topic.closed.fetch_add(c.closed, Relaxed);
    }
    if c.compressed_per_subscriber > 0 {
        topic
            .compressed_per_subscriber
            .fetch_add(c.compressed_per_subscriber, Relaxed);
    }
}
