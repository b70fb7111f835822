//! One worker's topics: name → subscribers (slab keys of its connections), and each
//! connection's own subscriptions, counters and conflated messages.
//!
//! Memory: a subscription costs a `u32` in the topic's subscriber list and a `u32` in the
//! connection's topic list (plus the lists' spare capacity); a connection that never subscribes
//! holds one null pointer. Unsubscribing scans the topic's list (a dense `u32` array): a close
//! costs O(subscribers of each of its topics), measured in `docs/performance.md`.

use std::collections::HashMap;
use std::sync::Arc;

use slab::Slab;

use super::directory::{Directory, SharedTopic};
use super::frame::Published;
use super::policy::{Policies, TopicPolicy};

/// A topic this worker has subscribers of.
#[derive(Debug)]
pub(crate) struct LocalTopic {
    pub(crate) shared: Arc<SharedTopic>,
    /// Slab keys of the subscribed connections, in subscription order.
    pub(crate) subscribers: Vec<u32>,
    pub(crate) policy: TopicPolicy,
}

/// The topics of one worker.
#[derive(Debug)]
pub(crate) struct Topics {
    worker: usize,
    directory: Arc<Directory>,
    by_name: HashMap<Arc<str>, u32>,
    entries: Slab<LocalTopic>,
    policies: Arc<Policies>,
}

/// Counters of one subscriber, exact.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct SubscriberStats {
    /// Published messages accepted into this connection's queue (or written at once).
    pub delivered: u64,
    /// Published messages it did not get (over its limit under
    /// [`SlowConsumer::Drop`](crate::broadcast::SlowConsumer::Drop)).
    pub dropped: u64,
    /// Published messages replaced by a newer one of the same key before it got them.
    pub conflated: u64,
}

/// A connection's subscriptions, allocated on its first subscribe: 64 bytes, one allocation
/// for up to [`INLINE_TOPICS`] topics.
#[derive(Debug, Default)]
pub(crate) struct Subscriptions {
    /// Local topic ids.
    pub(crate) topics: TopicList,
    pub(crate) stats: SubscriberStats,
    /// What few subscribers need: messages held back, last-value watermarks.
    // A pointer (8 bytes in every subscriber's box): allocated only for a slow conflated
    // subscriber or one of a last-value topic.
    rare: Option<Box<RareSubs>>,
}

/// The parts of a connection's subscriptions that few connections use.
#[derive(Debug, Default)]
struct RareSubs {
    /// The newest message per (topic, key) held back while the connection is slow, in the
    /// order their keys were first held back. Empty unless a conflating topic found it slow.
    held: Vec<Held>,
    /// (local topic id, watermark) for each last-value topic it subscribed to: publishes
    /// numbered at or below the watermark were in what it got on subscribing.
    watermarks: Vec<(u32, u64)>,
}

/// Topics a connection keeps in its `Subscriptions` without a list of their own.
pub(crate) const INLINE_TOPICS: usize = 5;

/// A connection's local topic ids: inline for the first few, a list past them.
#[derive(Debug)]
pub(crate) enum TopicList {
    Inline(u8, [u32; INLINE_TOPICS]),
    Heap(Vec<u32>),
}

impl Default for TopicList {
    fn default() -> Self {
        TopicList::Inline(0, [0; INLINE_TOPICS])
    }
}

impl TopicList {
    pub(crate) fn as_slice(&self) -> &[u32] {
        match self {
            TopicList::Inline(n, ids) => &ids[..usize::from(*n)],
            TopicList::Heap(v) => v,
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.as_slice().len()
    }

    pub(crate) fn contains(&self, id: &u32) -> bool {
        self.as_slice().contains(id)
    }

    fn push(&mut self, id: u32) {
        match self {
            TopicList::Inline(n, ids) if usize::from(*n) < INLINE_TOPICS => {
                ids[usize::from(*n)] = id;
                *n += 1;
            }
            TopicList::Inline(_, ids) => {
                let mut v = Vec::with_capacity(INLINE_TOPICS * 2);
                v.extend_from_slice(ids);
                v.push(id);
                *self = TopicList::Heap(v);
            }
            TopicList::Heap(v) => v.push(id),
        }
    }

    /// Removes `id`; false if it was not there. Order is not kept.
    fn remove(&mut self, id: u32) -> bool {
        let Some(at) = self.as_slice().iter().position(|&t| t == id) else {
            return false;
        };
        match self {
            TopicList::Inline(n, ids) => {
                let last = usize::from(*n) - 1;
                ids[at] = ids[last];
                *n -= 1;
            }
            TopicList::Heap(v) => {
                v.swap_remove(at);
            }
        }
        true
    }
}

/// A message held back for a slow subscriber of a conflating topic.
#[derive(Debug)]
pub(crate) struct Held {
    pub(crate) topic: u32,
    pub(crate) message: Arc<Published>,
}

impl Subscriptions {
    /// Holds `message` back, replacing the one of the same topic and key; true when one was
    /// replaced (it is conflated, never sent).
    pub(crate) fn hold(&mut self, topic: u32, message: Arc<Published>) -> bool {
        let held = &mut self.rare.get_or_insert_with(Box::default).held;
        let same = |h: &Held| h.topic == topic && h.message.key == message.key;
        if let Some(h) = held.iter_mut().find(|h| same(h)) {
            h.message = message;
            true
        } else {
            held.push(Held { topic, message });
            false
        }
    }

    /// Whether messages are held back.
    pub(crate) fn holding(&self) -> bool {
        self.rare.as_ref().is_some_and(|r| !r.held.is_empty())
    }

    /// Takes the messages held back (to send them), in the order they were first held.
    pub(crate) fn take_held(&mut self) -> Vec<Held> {
        let Some(rare) = &mut self.rare else {
            return Vec::new();
        };
        let held = std::mem::take(&mut rare.held);
        if rare.watermarks.is_empty() {
            self.rare = None;
        }
        held
    }

    /// The messages held back.
    #[cfg(test)]
    pub(crate) fn held(&self) -> &[Held] {
        self.rare.as_deref().map_or(&[], |r| r.held.as_slice())
    }

    /// Sets the last-value watermark of local topic `topic` (see `last_value.rs`).
    pub(crate) fn set_watermark(&mut self, topic: u32, watermark: u64) {
        let marks = &mut self.rare.get_or_insert_with(Box::default).watermarks;
        match marks.iter_mut().find(|(t, _)| *t == topic) {
            Some(m) => m.1 = watermark,
            None => marks.push((topic, watermark)),
        }
    }

    /// Whether publish number `seq` of local topic `topic` was in what this connection got
    /// when it subscribed (so it must not get it again).
    pub(crate) fn had(&self, topic: u32, seq: u64) -> bool {
        self.rare.as_ref().is_some_and(|r| {
            r.watermarks
                .iter()
                .any(|&(t, mark)| t == topic && seq <= mark)
        })
    }

    /// Forgets what is kept for local topic `topic` (unsubscribed).
    fn leave(&mut self, topic: u32) {
        if let Some(r) = &mut self.rare {
            r.held.retain(|h| h.topic != topic);
            r.watermarks.retain(|&(t, _)| t != topic);
        }
    }
}

impl Topics {
    pub(crate) fn new(worker: usize, directory: Arc<Directory>, policies: Arc<Policies>) -> Self {
        Topics {
            worker,
            directory,
            by_name: HashMap::new(),
            entries: Slab::new(),
            policies,
        }
    }

    /// The local id of `name`, if this worker has subscribers of it.
    pub(crate) fn id(&self, name: &str) -> Option<u32> {
        self.by_name.get(name).copied()
    }

    pub(crate) fn get(&self, id: u32) -> Option<&LocalTopic> {
        self.entries.get(id as usize)
    }

    /// The directory shared with the other workers.
    pub(crate) fn directory(&self) -> &Arc<Directory> {
        &self.directory
    }

    /// Subscribes connection `key` (whose subscriptions are `subs`) to `name`. False if it
    /// already was.
    pub(crate) fn subscribe(&mut self, name: &str, key: u32, subs: &mut Subscriptions) -> bool {
        let id = match self.by_name.get(name) {
            Some(&id) => id,
            None => {
                let shared = self.directory.join(name, self.worker);
                let policy = self.policies.for_topic(name);
                let id = self.entries.insert(LocalTopic {
                    shared: shared.clone(),
                    subscribers: Vec::new(),
                    policy,
                }) as u32;
                self.by_name.insert(shared.name.clone(), id);
                id
            }
        };
        if subs.topics.contains(&id) {
            return false;
        }
        subs.topics.push(id);
        let topic = &mut self.entries[id as usize];
        topic.subscribers.push(key);
        topic
            .shared
            .subscribers
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        true
    }

    /// Unsubscribes connection `key` from local topic `id`. False if it was not subscribed.
    pub(crate) fn unsubscribe(&mut self, id: u32, key: u32, subs: &mut Subscriptions) -> bool {
        if !subs.topics.remove(id) {
            return false;
        }
        subs.leave(id);
        self.remove_subscriber(id, key);
        true
    }

    /// Unsubscribes connection `key` from everything (it closed).
    pub(crate) fn unsubscribe_all(&mut self, key: u32, subs: Subscriptions) {
        for &id in subs.topics.as_slice() {
            self.remove_subscriber(id, key);
        }
    }

    fn remove_subscriber(&mut self, id: u32, key: u32) {
        let Some(topic) = self.entries.get_mut(id as usize) else {
            return;
        };
        if let Some(at) = topic.subscribers.iter().position(|&k| k == key) {
            // Order among subscribers is not part of the contract; keep the list dense.
            topic.subscribers.swap_remove(at);
            topic
                .shared
                .subscribers
                .fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
        }
        if topic.subscribers.is_empty() {
            let topic = self.entries.remove(id as usize);
            self.by_name.remove(&topic.shared.name);
            self.directory.leave(&topic.shared, self.worker);
        } else if topic.subscribers.capacity() > 64
            && topic.subscribers.len() < topic.subscribers.capacity() / 4
        {
            topic.subscribers.shrink_to(topic.subscribers.len() * 2);
        }
    }

    /// Number of topics with local subscribers.
    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }

    /// Heap bytes of the subscriber lists (for the memory figures).
    pub(crate) fn heap_size(&self) -> usize {
        self.entries
            .iter()
            .map(|(_, t)| t.subscribers.capacity() * 4)
            .sum::<usize>()
            + self.entries.capacity() * size_of::<LocalTopic>()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn topics(workers: usize) -> (Arc<Directory>, Topics) {
        let d = Arc::new(Directory::new(workers, None));
        let t = Topics::new(0, d.clone(), Arc::new(Policies::default()));
        (d, t)
    }

    #[test]
    fn subscribe_unsubscribe_and_close() {
        let (d, mut t) = topics(1);
        let mut a = Subscriptions::default();
        let mut b = Subscriptions::default();
        assert!(t.subscribe("x", 1, &mut a));
        assert!(!t.subscribe("x", 1, &mut a), "twice is once");
        assert!(t.subscribe("x", 2, &mut b));
        assert!(t.subscribe("y", 1, &mut a));
        let x = t.id("x").unwrap();
        assert_eq!(t.get(x).unwrap().subscribers, [1, 2]);
        assert_eq!(d.get("x").unwrap().stats().subscribers, 2);
        assert!(t.unsubscribe(x, 1, &mut a));
        assert!(!t.unsubscribe(x, 1, &mut a));
        assert_eq!(t.get(x).unwrap().subscribers, [2]);
        t.unsubscribe_all(2, b);
        assert!(t.id("x").is_none(), "no subscriber left: forgotten");
        assert!(d.get("x").is_none());
        t.unsubscribe_all(1, a);
        assert_eq!(t.len(), 0);
        assert_eq!(d.len(), 0);
    }

    #[test]
    fn a_first_subscription_is_one_small_allocation() {
        assert!(
            size_of::<Subscriptions>() <= 64,
            "{}",
            size_of::<Subscriptions>()
        );
        let (_, mut t) = topics(1);
        let mut s = Subscriptions::default();
        for i in 0..INLINE_TOPICS {
            assert!(t.subscribe(&format!("t{i}"), 1, &mut s));
        }
        assert!(
            matches!(s.topics, TopicList::Inline(..)),
            "no list of its own yet"
        );
        assert!(t.subscribe("more", 1, &mut s));
        assert!(t.subscribe("more2", 1, &mut s));
        assert_eq!(s.topics.len(), INLINE_TOPICS + 2);
        let id = t.id("t0").unwrap();
        assert!(t.unsubscribe(id, 1, &mut s));
        assert!(!s.topics.contains(&id));
        assert_eq!(s.topics.len(), INLINE_TOPICS + 1);
        t.unsubscribe_all(1, s);
        assert_eq!(t.len(), 0);
    }

    #[test]
    fn holding_keeps_the_newest_per_topic_and_key() {
        use crate::broadcast::frame::Audience;
        use crate::Message;
        let mut s = Subscriptions::default();
        let msg = |key: Option<&str>, text: &str| {
            Published::new(
                Audience::Topic("t".into()),
                key.map(Into::into),
                Message::Text(text),
                false,
                None,
            )
        };
        assert!(!s.hold(0, msg(Some("A"), "a1")));
        assert!(!s.hold(0, msg(Some("B"), "b1")));
        assert!(s.hold(0, msg(Some("A"), "a2")));
        assert!(!s.hold(1, msg(Some("A"), "other topic")));
        assert!(!s.hold(0, msg(None, "n1")));
        assert!(s.hold(0, msg(None, "n2")));
        let held: Vec<&[u8]> = s.held().iter().map(|h| h.message.payload()).collect();
        assert_eq!(held, [&b"a2"[..], b"b1", b"other topic", b"n2"]);
    }
}
