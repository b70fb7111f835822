//! Which workers have subscribers of which topic, shared by every worker and every
//! [`ServerHandle`](crate::ServerHandle): a publish reaches only the workers that need it, one
//! inbox push each. Written only when a worker gets its first subscriber of a topic or loses
//! its last (a write lock, rare); read once per publish from outside a worker (a read lock).
//! A node's first subscriber of a topic, and its last, are told to the backplane
//! ([`Remote::interest`]) under that write lock, so the workers pay nothing for it per message.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use super::frame::{Audience, Published};
use super::last_value::LastValues;
use super::remote::Remote;
use crate::handler::{ConnId, Message};

/// Counters of one topic, exact, summed over the workers.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct TopicStats {
    /// Connections subscribed now.
    pub subscribers: u64,
    /// Publishes to the topic (each counted once, however many workers it reached).
    pub published: u64,
    /// Messages accepted into a subscriber's queue (or written at once).
    pub delivered: u64,
    /// Messages not sent to a subscriber that was over its limit (policy
    /// [`SlowConsumer::Drop`](crate::broadcast::SlowConsumer::Drop)), or that was in the middle
    /// of sending a fragmented message of its own.
    pub dropped: u64,
    /// Messages replaced by a newer one with the same key before a slow subscriber got them
    /// (policy [`SlowConsumer::Conflate`](crate::broadcast::SlowConsumer::Conflate)).
    pub conflated: u64,
    /// Subscribers closed for being slow (policy
    /// [`SlowConsumer::Close`](crate::broadcast::SlowConsumer::Close)).
    pub closed: u64,
    /// Deliveries compressed for one subscriber alone (it keeps a compression context, or
    /// uses a smaller window), instead of sharing the frame compressed once.
    pub compressed_per_subscriber: u64,
}

/// One topic, as every worker sees it.
#[derive(Debug)]
pub(crate) struct SharedTopic {
    pub(crate) name: Arc<str>,
    /// `workers[i]`: worker `i` has at least one subscriber.
    workers: Box<[AtomicBool]>,
    pub(crate) subscribers: AtomicU64,
    pub(crate) published: AtomicU64,
    pub(crate) delivered: AtomicU64,
    pub(crate) dropped: AtomicU64,
    pub(crate) conflated: AtomicU64,
    pub(crate) closed: AtomicU64,
    pub(crate) compressed_per_subscriber: AtomicU64,
}

impl SharedTopic {
    fn new(name: Arc<str>, workers: usize) -> Self {
        SharedTopic {
            name,
            workers: (0..workers).map(|_| AtomicBool::new(false)).collect(),
            subscribers: AtomicU64::new(0),
            published: AtomicU64::new(0),
            delivered: AtomicU64::new(0),
            dropped: AtomicU64::new(0),
            conflated: AtomicU64::new(0),
            closed: AtomicU64::new(0),
            compressed_per_subscriber: AtomicU64::new(0),
        }
    }

    /// The workers that have subscribers now.
    pub(crate) fn workers(&self) -> impl Iterator<Item = usize> + '_ {
        self.workers
            .iter()
            .enumerate()
            .filter(|(_, w)| w.load(Ordering::Acquire))
            .map(|(i, _)| i)
    }

    /// The counters now.
    pub(crate) fn stats(&self) -> TopicStats {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        TopicStats {
            subscribers: get(&self.subscribers),
            published: get(&self.published),
            delivered: get(&self.delivered),
            dropped: get(&self.dropped),
            conflated: get(&self.conflated),
            closed: get(&self.closed),
            compressed_per_subscriber: get(&self.compressed_per_subscriber),
        }
    }
}

/// A publish built by [`Directory::build`].
#[derive(Debug)]
pub(crate) struct Built {
    /// The frame, shared by every recipient.
    pub(crate) message: Arc<Published>,
    /// Whether the topic keeps its last values (the publish is recorded).
    pub(crate) keeps: bool,
}

/// Every topic with a subscriber somewhere.
#[derive(Debug)]
pub(crate) struct Directory {
    topics: RwLock<HashMap<Arc<str>, Arc<SharedTopic>>>,
    workers: usize,
    /// The backplane, told of topics coming and going and of every publish.
    remote: Option<Arc<dyn Remote>>,
    /// The newest values of last-value topics; `None` when no prefix keeps them.
    last_values: Option<LastValues>,
}

impl Directory {
    pub(crate) fn new(workers: usize, remote: Option<Arc<dyn Remote>>) -> Self {
        Directory {
            topics: RwLock::new(HashMap::new()),
            workers,
            remote,
            last_values: None,
        }
    }

    /// Keeps the last values of the topics these rules cover (`Builder::last_value_for`).
    pub(crate) fn with_last_values(mut self, rules: &[(String, super::LastValue)]) -> Self {
        self.last_values = (!rules.is_empty()).then(|| LastValues::new(rules));
        self
    }

    /// The last-value store, if any prefix keeps values.
    pub(crate) fn last_values(&self) -> Option<&LastValues> {
        self.last_values.as_ref()
    }

    /// Builds a publish to `topic` for the workers, where there is anyone to build it for:
    /// `shared` is the topic as the workers know it (`None`: no subscriber on this node now),
    /// and a topic that keeps its last values records the publish before it goes to any
    /// worker (so that a subscriber's snapshot has it or is older than it:
    /// `broadcast/last_value.rs`). `None` when nobody here subscribes and the topic keeps
    /// nothing: there is nothing to build.
    pub(crate) fn build(
        &self,
        topic: &str,
        shared: Option<&Arc<SharedTopic>>,
        key: Option<&str>,
        message: Message<'_>,
        compress: bool,
        exclude: Option<ConnId>,
    ) -> Option<Built> {
        let last = self.last_values.as_ref().filter(|l| l.covers(topic));
        if shared.is_none() && last.is_none() {
            return None;
        }
        let name: Arc<str> = shared.map_or_else(|| topic.into(), |s| s.name.clone());
        let message = Published::new(
            Audience::Topic(name.clone()),
            key.map(Into::into),
            message,
            compress,
            exclude,
        );
        if let Some(last) = last {
            last.record(&name, &message);
        }
        Some(Built {
            message,
            keeps: last.is_some(),
        })
    }

    /// The backplane, if the node has one.
    pub(crate) fn remote(&self) -> Option<&Arc<dyn Remote>> {
        self.remote.as_ref()
    }

    /// The topic, if anyone subscribes to it. Allocates nothing.
    pub(crate) fn get(&self, name: &str) -> Option<Arc<SharedTopic>> {
        self.topics
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(name)
            .cloned()
    }

    /// Worker `worker` has its first subscriber of `name`.
    pub(crate) fn join(&self, name: &str, worker: usize) -> Arc<SharedTopic> {
        let mut topics = self.topics.write().unwrap_or_else(|e| e.into_inner());
        let topic = match topics.get(name) {
            Some(t) => t.clone(),
            None => {
                let name: Arc<str> = name.into();
                let t = Arc::new(SharedTopic::new(name.clone(), self.workers));
                topics.insert(name.clone(), t.clone());
                if let Some(remote) = &self.remote {
                    let since = self
                        .last_values
                        .as_ref()
                        .and_then(|l| l.seq_if_covers(&name));
                    remote.interest(&name, true, since);
                }
                t
            }
        };
        if let Some(flag) = topic.workers.get(worker) {
            flag.store(true, Ordering::Release);
        }
        topic
    }

    /// Worker `worker` lost its last subscriber of `topic`; the topic is forgotten when no
    /// worker has one.
    pub(crate) fn leave(&self, topic: &Arc<SharedTopic>, worker: usize) {
        let mut topics = self.topics.write().unwrap_or_else(|e| e.into_inner());
        if let Some(flag) = topic.workers.get(worker) {
            flag.store(false, Ordering::Release);
        }
        if topic.workers().next().is_none() {
            if let Some(current) = topics.get(&topic.name) {
                if Arc::ptr_eq(current, topic) {
                    topics.remove(&topic.name);
                    if let Some(remote) = &self.remote {
                        remote.interest(&topic.name, false, None);
                    }
                }
            }
        }
    }

    /// Number of topics with subscribers.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.topics.read().unwrap_or_else(|e| e.into_inner()).len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_topic_lives_while_a_worker_has_subscribers() {
        let d = Directory::new(3, None);
        assert!(d.get("t").is_none());
        let a = d.join("t", 0);
        let b = d.join("t", 2);
        assert!(Arc::ptr_eq(&a, &b));
        assert_eq!(a.workers().collect::<Vec<_>>(), [0, 2]);
        d.leave(&a, 0);
        assert_eq!(d.get("t").unwrap().workers().collect::<Vec<_>>(), [2]);
        d.leave(&a, 2);
        assert!(d.get("t").is_none());
        assert_eq!(d.len(), 0);
        // A worker that joins again gets a fresh topic.
        let c = d.join("t", 1);
        assert!(!Arc::ptr_eq(&a, &c));
        assert_eq!(c.workers().collect::<Vec<_>>(), [1]);
    }

    /// Records what the directory tells a backplane.
    #[derive(Debug, Default)]
    struct Told(std::sync::Mutex<Vec<(String, bool)>>);

    impl Remote for Told {
        fn interest(&self, topic: &Arc<str>, on: bool, _: Option<u64>) {
            self.0.lock().unwrap().push((topic.to_string(), on));
        }
        fn publish(
            &self,
            _: &str,
            _: Option<&str>,
            _: crate::MessageKind,
            _: bytes::Bytes,
            _: bool,
        ) {
        }
    }

    #[test]
    fn the_backplane_hears_of_the_first_subscriber_of_a_node_and_its_last() {
        let told = Arc::new(Told::default());
        let d = Directory::new(2, Some(told.clone()));
        let a = d.join("t", 0);
        d.join("t", 1);
        d.join("t", 0);
        d.leave(&a, 0);
        assert_eq!(
            *told.0.lock().unwrap(),
            [("t".into(), true)],
            "once per node"
        );
        d.leave(&a, 1);
        let c = d.join("t", 1);
        d.leave(&c, 1);
        assert_eq!(
            *told.0.lock().unwrap(),
            [
                ("t".into(), true),
                ("t".into(), false),
                ("t".into(), true),
                ("t".into(), false)
            ]
        );
    }
}
