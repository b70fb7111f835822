//! The last value per topic and key: a topic whose name matches a
//! [`Builder::last_value_for`](crate::ServerBuilder::last_value_for) prefix keeps the newest
//! publish of each key (the key of [`Conn::publish_keyed`](crate::Conn::publish_keyed), or
//! none: one per topic), and a connection that subscribes to it gets those at once, then every
//! publish made after it subscribed — no value twice, none older after a newer one.
//!
//! How: every publish to such a topic gets the store's next sequence number, under the
//! store's lock. A subscriber takes its snapshot under the same lock, after joining the topic,
//! and keeps the sequence number at that moment (its *watermark*). A publish recorded before the
//! snapshot is in it (or a newer value of its key is), so the fan-out skips, for that
//! subscriber, any publish numbered at or below its watermark; one recorded after it reaches
//! the subscriber, because the publish looks up the workers with subscribers after recording.
//!
//! Memory is bounded per prefix: at most `max_topics` topics, `max_keys` keys per topic and
//! `max_bytes` of payload in all. A value that does not fit is not kept, and the value it
//! would have replaced is forgotten with it (a subscriber never gets a value older than the
//! newest publish); each such publish is counted.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};

use super::frame::Published;

/// What a topic prefix keeps of its topics' newest values (see
/// [`Builder::last_value_for`](crate::ServerBuilder::last_value_for)).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct LastValue {
    /// Most topics under the prefix that keep values; a publish to one more is not kept.
    pub max_topics: usize,
    /// Most keys kept per topic; a publish with one more key is not kept.
    pub max_keys: usize,
    /// Most payload bytes kept over all the prefix's topics; a publish that would go over it
    /// is not kept.
    pub max_bytes: usize,
}

impl LastValue {
    /// At most 1,024 topics, 1,024 keys per topic and 64 MiB of payload.
    pub const fn new() -> Self {
        LastValue {
            max_topics: 1024,
            max_keys: 1024,
            max_bytes: 64 << 20,
        }
    }

    /// Sets [`LastValue::max_topics`].
    pub const fn max_topics(mut self, topics: usize) -> Self {
        self.max_topics = topics;
        self
    }

    /// Sets [`LastValue::max_keys`].
    pub const fn max_keys(mut self, keys: usize) -> Self {
        self.max_keys = keys;
        self
    }

    /// Sets [`LastValue::max_bytes`].
    pub const fn max_bytes(mut self, bytes: usize) -> Self {
        self.max_bytes = bytes;
        self
    }
}

impl Default for LastValue {
    /// [`LastValue::new`].
    fn default() -> Self {
        LastValue::new()
    }
}

/// The last-value store's counters, exact.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct LastValueStats {
    /// Topics that keep at least one value now.
    pub topics: u64,
    /// Values kept now (one per topic and key).
    pub values: u64,
    /// Payload bytes kept now.
    pub bytes: u64,
    /// Publishes kept (each replacing the one before of its key, if any).
    pub recorded: u64,
    /// Publishes not kept: over `max_topics`, `max_keys` or `max_bytes`.
    pub refused: u64,
    /// Values sent to connections when they subscribed.
    pub sent_on_subscribe: u64,
}

/// One prefix's rule.
#[derive(Debug)]
struct Rule {
    prefix: String,
    limits: LastValue,
}

/// What one rule's topics hold now.
#[derive(Debug, Default, Clone, Copy)]
struct Held {
    topics: usize,
    bytes: usize,
}

/// One topic's values.
#[derive(Debug)]
struct TopicValues {
    rule: usize,
    values: HashMap<Option<Arc<str>>, (u64, Arc<Published>)>,
}

#[derive(Debug, Default)]
struct Inner {
    /// Per rule, in the order of [`LastValues::rules`].
    held: Vec<Held>,
    topics: HashMap<Arc<str>, TopicValues>,
    /// The number of the last publish recorded (kept or not), over every topic.
    seq: u64,
    recorded: u64,
    refused: u64,
    sent_on_subscribe: u64,
}

/// A topic's values at the moment a connection subscribed.
#[derive(Debug, Default)]
pub(crate) struct Snapshot {
    /// The store's sequence number then: later publishes are numbered above it.
    pub(crate) watermark: u64,
    /// The values, oldest first.
    pub(crate) values: Vec<Arc<Published>>,
}

/// Every last-value topic of a server, shared by its workers and handles.
#[derive(Debug, Default)]
pub(crate) struct LastValues {
    /// Read without the lock: they never change.
    rules: Vec<Rule>,
    inner: Mutex<Inner>,
}

impl LastValues {
    /// A store for the rules `(prefix, limits)`; the longest matching prefix wins.
    pub(crate) fn new(rules: &[(String, LastValue)]) -> Self {
        let rules: Vec<Rule> = rules
            .iter()
            .map(|(prefix, limits)| Rule {
                prefix: prefix.clone(),
                limits: *limits,
            })
            .collect();
        LastValues {
            inner: Mutex::new(Inner {
                held: vec![Held::default(); rules.len()],
                ..Inner::default()
            }),
            rules,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Whether `topic` keeps its last values (no lock taken).
    pub(crate) fn covers(&self, topic: &str) -> bool {
        rule_for(&self.rules, topic).is_some()
    }

    /// Records `message`, a publish to `topic` (numbering it, see the module's doc); keeps it
    /// when it fits. Does nothing for a topic no rule covers.
    pub(crate) fn record(&self, topic: &Arc<str>, message: &Arc<Published>) {
        self.record_if(topic, message, None);
    }

    /// Records `message`, a value of `topic` read back from the backplane's store, unless
    /// the store has a value of its key numbered above `since` (recorded after this node
    /// subscribed on the backplane: it came later than what was read). True if recorded.
    pub(crate) fn fill(&self, topic: &Arc<str>, message: &Arc<Published>, since: u64) -> bool {
        self.record_if(topic, message, Some(since))
    }

    /// The store's sequence number now, if `topic` keeps its last values.
    pub(crate) fn seq_if_covers(&self, topic: &str) -> Option<u64> {
        rule_for(&self.rules, topic)?;
        Some(self.lock().seq)
    }

    fn record_if(&self, topic: &Arc<str>, message: &Arc<Published>, since: Option<u64>) -> bool {
        let Some(rule) = rule_for(&self.rules, topic) else {
            return false;
        };
        let limits = self.rules[rule].limits;
        let mut guard = self.lock();
        let inner = &mut *guard;
        if let Some(since) = since {
            let kept = inner
                .topics
                .get(topic.as_ref())
                .and_then(|t| t.values.get(&message.key));
            if let Some((seq, old)) = kept {
                // Newer than what was read, or the same value (this node's own, say): the
                // subscribers have it.
                let same = old.kind == message.kind && old.payload() == message.payload();
                if *seq > since || same {
                    return false;
                }
            }
        }
        // One sequence for every topic: a topic forgotten and kept again numbers on from
        // where it was, so no watermark ever hides a newer publish.
        inner.seq += 1;
        let seq = inner.seq;
        message.last_value_seq.store(seq, Ordering::Relaxed);
        if !inner.topics.contains_key(topic.as_ref()) {
            if inner.held[rule].topics >= limits.max_topics {
                inner.refused += 1;
                return false;
            }
            inner.held[rule].topics += 1;
            inner.topics.insert(
                topic.clone(),
                TopicValues {
                    rule,
                    values: HashMap::new(),
                },
            );
        }
        let Some(values) = inner.topics.get_mut(topic.as_ref()) else {
            return false;
        };
        let r = &mut inner.held[rule];
        if let Some((_, old)) = values.values.remove(&message.key) {
            r.bytes -= old.payload().len();
        }
        let len = message.payload().len();
        if values.values.len() < limits.max_keys && r.bytes + len <= limits.max_bytes {
            r.bytes += len;
            values
                .values
                .insert(message.key.clone(), (seq, message.clone()));
            inner.recorded += 1;
            true
        } else {
            inner.refused += 1;
            if values.values.is_empty() {
                inner.topics.remove(topic.as_ref());
                r.topics -= 1;
            }
            false
        }
    }

    /// What a new subscriber of `topic` gets: its values, oldest first, and the watermark;
    /// `None` for a topic no rule covers.
    pub(crate) fn snapshot(&self, topic: &str) -> Option<Snapshot> {
        rule_for(&self.rules, topic)?;
        let mut guard = self.lock();
        let inner = &mut *guard;
        let mut snapshot = Snapshot {
            watermark: inner.seq,
            values: Vec::new(),
        };
        if let Some(values) = inner.topics.get(topic) {
            let mut kept: Vec<&(u64, Arc<Published>)> = values.values.values().collect();
            kept.sort_unstable_by_key(|(seq, _)| *seq);
            snapshot.values = kept.into_iter().map(|(_, m)| m.clone()).collect();
        }
        inner.sent_on_subscribe += snapshot.values.len() as u64;
        Some(snapshot)
    }

    /// Forgets the value of `key` in `topic` (`None`: the value published without a key);
    /// true if there was one.
    pub(crate) fn forget(&self, topic: &str, key: Option<&str>) -> bool {
        let mut guard = self.lock();
        let inner = &mut *guard;
        let Some(values) = inner.topics.get_mut(topic) else {
            return false;
        };
        let key: Option<Arc<str>> = key.map(Into::into);
        let Some((_, old)) = values.values.remove(&key) else {
            return false;
        };
        let rule = &mut inner.held[values.rule];
        rule.bytes -= old.payload().len();
        if values.values.is_empty() {
            rule.topics -= 1;
            inner.topics.remove(topic);
        }
        true
    }

    /// Forgets every value of `topic`; returns how many there were.
    pub(crate) fn forget_topic(&self, topic: &str) -> usize {
        let mut guard = self.lock();
        let inner = &mut *guard;
        let Some(values) = inner.topics.remove(topic) else {
            return 0;
        };
        let bytes: usize = values.values.values().map(|(_, m)| m.payload().len()).sum();
        let rule = &mut inner.held[values.rule];
        rule.bytes -= bytes;
        rule.topics -= 1;
        values.values.len()
    }

    /// The counters now.
    pub(crate) fn stats(&self) -> LastValueStats {
        let inner = self.lock();
        LastValueStats {
            topics: inner.topics.len() as u64,
            values: inner.topics.values().map(|t| t.values.len() as u64).sum(),
            bytes: inner.held.iter().map(|h| h.bytes as u64).sum(),
            recorded: inner.recorded,
            refused: inner.refused,
            sent_on_subscribe: inner.sent_on_subscribe,
        }
    }
}

/// The index of the rule for `topic`: the longest matching prefix.
fn rule_for(rules: &[Rule], topic: &str) -> Option<usize> {
    rules
        .iter()
        .enumerate()
        .filter(|(_, r)| topic.starts_with(r.prefix.as_str()))
        .max_by_key(|(_, r)| r.prefix.len())
        .map(|(i, _)| i)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::broadcast::frame::Audience;
    use crate::Message;

    fn store(limits: LastValue) -> LastValues {
        LastValues::new(&[("ticks".into(), limits)])
    }

    fn publish(store: &LastValues, topic: &str, key: Option<&str>, text: &str) -> Arc<Published> {
        let topic: Arc<str> = topic.into();
        let m = Published::new(
            Audience::Topic(topic.clone()),
            key.map(Into::into),
            Message::Text(text),
            false,
            None,
        );
        store.record(&topic, &m);
        m
    }

    fn texts(s: &Snapshot) -> Vec<&str> {
        s.values
            .iter()
            .map(|m| std::str::from_utf8(m.payload()).unwrap())
            .collect()
    }

    #[test]
    fn the_newest_value_of_each_key_oldest_first_and_a_watermark_above_them() {
        let s = store(LastValue::new());
        assert!(s.covers("ticks.fx") && !s.covers("chat"));
        let a1 = publish(&s, "ticks", Some("A"), "a1");
        publish(&s, "ticks", Some("B"), "b1");
        let a2 = publish(&s, "ticks", Some("A"), "a2");
        publish(&s, "ticks", None, "n1");
        let other = publish(&s, "chat", None, "not kept");
        assert_eq!(other.last_value_seq(), 0, "no rule: not numbered");
        assert!(a1.last_value_seq() < a2.last_value_seq());
        let snap = s.snapshot("ticks").unwrap();
        assert_eq!(texts(&snap), ["b1", "a2", "n1"]);
        assert_eq!(snap.watermark, 4);
        let later = publish(&s, "ticks", Some("B"), "b2");
        assert!(later.last_value_seq() > snap.watermark);
        assert!(s.snapshot("chat").is_none());
        let empty = s.snapshot("ticks.none").unwrap();
        assert!(empty.values.is_empty());
        assert_eq!(empty.watermark, 5, "numbers are shared by every topic");
        let st = s.stats();
        assert_eq!((st.topics, st.values, st.bytes), (1, 3, 6));
        assert_eq!((st.recorded, st.refused, st.sent_on_subscribe), (5, 0, 3));
    }

    #[test]
    fn what_does_not_fit_is_not_kept_and_forgets_the_value_it_would_replace() {
        let s = store(LastValue::new().max_keys(2).max_bytes(10).max_topics(2));
        publish(&s, "ticks", Some("A"), "aaaa");
        publish(&s, "ticks", Some("B"), "bbbb");
        publish(&s, "ticks", Some("C"), "c"); // a third key
        assert_eq!(texts(&s.snapshot("ticks").unwrap()), ["aaaa", "bbbb"]);
        publish(&s, "ticks", Some("A"), "aaaaaaa"); // 4 + 7 > 10 bytes
        assert_eq!(
            texts(&s.snapshot("ticks").unwrap()),
            ["bbbb"],
            "A forgotten"
        );
        publish(&s, "ticks.x", None, "x");
        publish(&s, "ticks.y", None, "y"); // a third topic
        assert!(s.snapshot("ticks.y").unwrap().values.is_empty());
        let st = s.stats();
        assert_eq!((st.topics, st.values, st.bytes), (2, 2, 5));
        assert_eq!((st.recorded, st.refused), (3, 3));
        // Forgetting frees the topic's place and its bytes.
        assert!(s.forget("ticks", Some("B")));
        assert!(!s.forget("ticks", Some("B")));
        publish(&s, "ticks.y", None, "y");
        assert_eq!(texts(&s.snapshot("ticks.y").unwrap()), ["y"]);
        assert_eq!(s.forget_topic("ticks.x"), 1);
        assert_eq!(s.forget_topic("ticks.x"), 0);
        let st = s.stats();
        assert_eq!((st.topics, st.values, st.bytes), (1, 1, 1));
    }

    #[test]
    fn the_longest_prefix_sets_the_limits() {
        let s = LastValues::new(&[
            ("".into(), LastValue::new().max_keys(1)),
            ("ticks.".into(), LastValue::new().max_keys(3)),
        ]);
        for k in ["a", "b", "c"] {
            publish(&s, "chat", Some(k), k);
            publish(&s, "ticks.fx", Some(k), k);
        }
        assert_eq!(texts(&s.snapshot("chat").unwrap()), ["a"]);
        assert_eq!(texts(&s.snapshot("ticks.fx").unwrap()), ["a", "b", "c"]);
    }
}
