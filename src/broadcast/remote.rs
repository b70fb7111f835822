//! What the topic directory and the publish paths tell a backplane (another node's way in
//! and out, such as NATS): which topics this node has subscribers of, and every publish made
//! on this node. A leaf: the broadcast layer calls it, the backplane (`cluster/`) implements
//! it, and neither knows the other.

use std::fmt::Debug;
use std::sync::Arc;

use bytes::Bytes;

use crate::protocol::MessageKind;

/// A way out of this node for publishes, and in for the topics it subscribes to.
///
/// Both methods are called from workers and from [`ServerHandle`](crate::ServerHandle)
/// threads; they must not block.
pub(crate) trait Remote: Send + Sync + Debug {
    /// This node got its first subscriber of `topic` (`on`) or lost its last (`!on`). Called
    /// under the directory's write lock, so calls for one topic come in order. `last_values`:
    /// for a topic that keeps its last values, the last-value store's sequence number at that
    /// moment (values numbered at or below it were recorded before this node heard the
    /// topic's publishes from other nodes, so a newer one may be elsewhere).
    fn interest(&self, topic: &Arc<str>, on: bool, last_values: Option<u64>);

    /// A publish to `topic` made on this node (once per publish, whatever its local
    /// audience): `payload` shares the frame's bytes where there is one. `keeps`: the topic
    /// keeps its last values.
    fn publish(
        &self,
        topic: &str,
        key: Option<&str>,
        kind: MessageKind,
        payload: Bytes,
        keeps: bool,
    );
}
