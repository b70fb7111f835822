//! The last values in JetStream ([`NatsBackplane::last_values_bucket`]): a key-value bucket
//! that holds the newest publish per topic and key of every node's last-value topics, and the
//! read that fills a node's store when it gets its first subscriber of such a topic.
//!
//! ```text
//! publish(T, K, m) on a last-value topic ─► <prefix>.T            (live, as any publish)
//!                                        └► $KV.<bucket>.t<T>.k<K> (the bucket keeps the last)
//! first local subscriber of T ─► SUB <prefix>.T, then read the bucket's last value per key of
//!   t<T>.* ─► checked like a live message ─► ServerHandle::fill_last_value (kept unless this
//!   node has a newer value of the key) ─► to the subscribers as a publish
//! ```
//!
//! Keys: `t` + base64url(topic) `.k` + base64url(key), or `.n` for a publish without a key:
//! every topic and key is a valid bucket key, and one topic's keys are one wildcard apart.
//! A value read back is untrusted like a live message: its key must decode to the topic
//! asked for and to the `Wsx-Key` header it carries, then `subject::check` applies.

use std::future::poll_fn;
use std::pin::Pin;
use std::time::Duration;

use async_nats::jetstream::consumer::{push, DeliverPolicy, ReplayPolicy};
use async_nats::jetstream::stream;
use async_nats::{Client, HeaderMap};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use std::sync::atomic::{AtomicBool, Ordering};

use tokio::sync::Mutex;

use super::options::NatsBackplane;
use super::subject::{self, Incoming, Verdict, MAX_SUBJECT};
use crate::handler::Message;

/// How long one JetStream request (the bucket, the consumer) or one value read may take.
const WAIT: Duration = Duration::from_secs(5);

/// The header JetStream's key-value store marks deletes and purges with.
const KV_OPERATION: &str = "KV-Operation";

/// Whether `name` can name a bucket: `[A-Za-z0-9_-]+`, at most 64 bytes.
pub(crate) fn valid_bucket(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// The first token of a topic's keys.
fn topic_token(topic: &str) -> String {
    format!("t{}", URL_SAFE_NO_PAD.encode(topic))
}

/// The subject a value of `topic` and `key` is stored on; `None` when too long for a subject.
pub(crate) fn subject_of(bucket: &str, topic: &str, key: Option<&str>) -> Option<String> {
    let key = match key {
        Some(k) => format!("k{}", URL_SAFE_NO_PAD.encode(k)),
        None => "n".into(),
    };
    let s = format!("$KV.{bucket}.{}.{key}", topic_token(topic));
    (s.len() <= MAX_SUBJECT).then_some(s)
}

/// The subjects of every value of `topic`.
fn filter_of(bucket: &str, topic: &str) -> String {
    format!("$KV.{bucket}.{}.*", topic_token(topic))
}

/// The (topic, key) a stored value's subject names, if it is one of ours.
fn parse(bucket: &str, subject: &str) -> Option<(String, Option<String>)> {
    let rest = subject.strip_prefix("$KV.")?.strip_prefix(bucket)?;
    let (t, k) = rest.strip_prefix('.')?.split_once('.')?;
    let decode = |s: &str| {
        let bytes = URL_SAFE_NO_PAD.decode(s).ok()?;
        String::from_utf8(bytes).ok()
    };
    let topic = decode(t.strip_prefix('t')?)?;
    let key = match k {
        "n" => None,
        k => Some(decode(k.strip_prefix('k')?)?),
    };
    Some((topic, key))
}

/// What one read of a topic's values did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Read {
    /// Values handed to the node.
    pub(crate) delivered: u64,
    /// Values refused: a key that is not the topic's, oversize, malformed.
    pub(crate) refused: u64,
}

/// A node's bucket: found or created on first need, then kept.
pub(crate) struct Bucket {
    name: String,
    max_bytes: u64,
    max_value: u64,
    /// The stream, once found or made; dropped after a failed read (the NATS server may have
    /// lost it: one without a persistent store, restarted), so that the next finds or makes it
    /// again.
    store: Mutex<Option<stream::Stream>>,
    ready: AtomicBool,
}

impl std::fmt::Debug for Bucket {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Bucket")
            .field("name", &self.name)
            .field("max_bytes", &self.max_bytes)
            .field("ready", &self.ready())
            .finish()
    }
}

impl Bucket {
    /// The bucket `config` names, if any; values up to `max_value` bytes.
    pub(crate) fn of(config: &NatsBackplane, max_value: u64) -> Option<Bucket> {
        let name = config.last_values_bucket.clone()?;
        Some(Bucket {
            name,
            max_bytes: config.last_values_max_bytes,
            max_value,
            store: Mutex::new(None),
            ready: AtomicBool::new(false),
        })
    }

    /// The bucket's name.
    pub(crate) fn name(&self) -> &str {
        &self.name
    }

    /// Whether the bucket was found or made (values put before are lost: nothing would keep
    /// them).
    pub(crate) fn ready(&self) -> bool {
        self.ready.load(Ordering::Relaxed)
    }

    /// Forgets the stream: the next use finds or makes it again.
    pub(crate) async fn forget(&self) {
        *self.store.lock().await = None;
        self.ready.store(false, Ordering::Relaxed);
    }

    /// The bucket's stream, found or created: one message per subject (the newest value of
    /// a topic and key), file storage, bounded in bytes. Made as a stream with the settings
    /// of a key-value bucket (`KV_<name>` on `$KV.<name>.>`), which NATS servers older than
    /// the client's key-value API (2.9) also take.
    pub(crate) async fn store(&self, client: &Client) -> Result<stream::Stream, String> {
        let mut store = self.store.lock().await;
        if let Some(stream) = &*store {
            return Ok(stream.clone());
        }
        let js = async_nats::jetstream::new(client.clone());
        let config = stream::Config {
            name: format!("KV_{}", self.name),
            description: Some("wsx: the newest value per topic and key".into()),
            subjects: vec![format!("$KV.{}.>", self.name)],
            max_messages_per_subject: 1,
            max_bytes: i64::try_from(self.max_bytes).unwrap_or(i64::MAX),
            max_message_size: i32::try_from(self.max_value.saturating_add(4096))
                .unwrap_or(i32::MAX),
            discard: stream::DiscardPolicy::New,
            storage: stream::StorageType::File,
            allow_rollup: true,
            deny_delete: true,
            allow_direct: true,
            ..stream::Config::default()
        };
        let stream = match tokio::time::timeout(WAIT, js.get_or_create_stream(config)).await {
            Ok(Ok(stream)) => stream,
            Ok(Err(e)) => return Err(format!("JetStream bucket {}: {e}", self.name)),
            Err(_) => return Err(format!("JetStream bucket {}: timed out", self.name)),
        };
        *store = Some(stream.clone());
        self.ready.store(true, Ordering::Relaxed);
        Ok(stream)
    }

    /// Reads the newest value of each key of `topic` and hands each that passes the checks
    /// to `deliver`, in the bucket's order.
    pub(crate) async fn read(
        &self,
        client: &Client,
        prefix: &str,
        topic: &str,
        max_payload: u64,
        mut deliver: impl FnMut(Option<&str>, Message<'_>),
    ) -> Result<Read, String> {
        let stream = self.store(client).await?;
        let config = push::OrderedConfig {
            deliver_subject: client.new_inbox(),
            description: Some("wsx: last values of a topic".into()),
            filter_subject: filter_of(&self.name, topic),
            replay_policy: ReplayPolicy::Instant,
            deliver_policy: DeliverPolicy::LastPerSubject,
            ..Default::default()
        };
        let consumer = match tokio::time::timeout(WAIT, stream.create_consumer(config)).await {
            Ok(Ok(c)) => c,
            Ok(Err(e)) => return Err(format!("JetStream consumer: {e}")),
            Err(_) => return Err("JetStream consumer: timed out".into()),
        };
        let mut read = Read::default();
        let mut left = consumer.cached_info().num_pending;
        if left == 0 {
            return Ok(read);
        }
        let mut messages = match consumer.messages().await {
            Ok(m) => m,
            Err(e) => return Err(format!("JetStream consumer: {e}")),
        };
        let live = subject::subject(prefix, topic).ok_or("a topic that is no subject")?;
        while left > 0 {
            let next = poll_fn(|cx| futures_core::Stream::poll_next(Pin::new(&mut messages), cx));
            let m = match tokio::time::timeout(WAIT, next).await {
                Ok(Some(Ok(m))) => m,
                Ok(Some(Err(e))) => return Err(format!("JetStream read: {e}")),
                Ok(None) => break,
                Err(_) => return Err("JetStream read: timed out".into()),
            };
            left = m.info().map_or(0, |i| i.pending);
            let m = &m.message;
            let header = |name: &str| {
                m.headers
                    .as_ref()
                    .and_then(|h: &HeaderMap| h.get(name))
                    .map(|v| v.as_str())
            };
            if header(KV_OPERATION).is_some() {
                continue; // a delete or purge marker: no value
            }
            let key = header(subject::KEY);
            let ours = parse(&self.name, m.subject.as_str())
                .is_some_and(|(t, k)| t == topic && k.as_deref() == key);
            if !ours {
                read.refused += 1;
                continue;
            }
            // Checked as the live message it was; this node's own values count too (it may
            // have restarted since).
            let incoming = Incoming {
                subject: &live,
                origin: None,
                kind: header(subject::KIND),
                key,
                payload: &m.payload,
            };
            match subject::check(prefix, "", topic, max_payload, incoming) {
                Verdict::Deliver { key, message, .. } => {
                    deliver(key, message);
                    read.delivered += 1;
                }
                Verdict::Own | Verdict::Oversize | Verdict::Invalid => read.refused += 1,
            }
        }
        Ok(read)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// Whatever a hostile node stores under the bucket, parsing its subject never panics,
        /// and any topic and key round-trip through their stored subject.
        #[test]
        fn stored_subjects_parse_back_and_garbage_is_refused(
            topic in "\\PC{1,40}",
            key in proptest::option::of("\\PC{0,40}"),
            garbage in "\\PC{0,80}",
        ) {
            let _ = parse("b", &garbage);
            let _ = parse("b", &format!("$KV.b.{garbage}"));
            if let Some(s) = subject_of("b", &topic, key.as_deref()) {
                prop_assert_eq!(parse("b", &s), Some((topic.clone(), key.clone())));
                prop_assert!(s.split('.').count() == 4);
            }
        }
    }

    #[test]
    fn every_topic_and_key_is_a_stored_subject_that_parses_back() {
        for (topic, key) in [
            ("ticks", Some("AAPL")),
            ("ticks.fx", Some("EUR/USD")),
            ("été", Some("clé.à.points")),
            ("a", None),
            ("a", Some("")),
        ] {
            let s = subject_of("b", topic, key).unwrap();
            assert!(s.starts_with("$KV.b.t"), "{s}");
            assert_eq!(s.split('.').count(), 4, "one token each: {s}");
            assert!(!s.contains(['*', '>', ' ']), "{s}");
            assert_eq!(
                parse("b", &s),
                Some((topic.to_owned(), key.map(str::to_owned)))
            );
            let filter = filter_of("b", topic);
            assert_eq!(
                filter.rsplit_once('.').unwrap().0,
                s.rsplit_once('.').unwrap().0
            );
        }
        assert_eq!(subject_of("b", &"x".repeat(MAX_SUBJECT), None), None);
        for bad in [
            "$KV.other.tYQ.n",
            "$KV.b.YQ.n",
            "$KV.b.tYQ.x",
            "$KV.b.t!!.n",
            "$KV.b.tYQ",
            "wsx.a",
            "$KV.b.t_w.n", // not UTF-8
        ] {
            assert_eq!(parse("b", bad), None, "{bad}");
        }
        assert!(valid_bucket("wsx_last-1"));
        for bad in ["", "a.b", "a b", "a*", &"x".repeat(65)] {
            assert!(!valid_bucket(bad), "{bad:?}");
        }
    }
}
