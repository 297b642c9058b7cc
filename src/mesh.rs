//! Messages between shards (DESIGN.md §3): a message handed to its owner, and binding
//! changes for the other shards' location replicas.

use std::time::Instant;

use crate::io::Peer;
use crate::registrar::Change;

/// What a shard fills after a call: transmits, mesh messages and names to resolve.
pub type Outbox = crate::io::Outbox<MeshMsg>;

/// A message between shards.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MeshMsg {
    /// Handle this message as if it had arrived on the receiving shard.
    Inbound {
        peer: Peer,
        bytes: Vec<u8>,
        /// When it arrived on the first core: proxy-added latency counts the hop.
        received: Instant,
    },
    /// Binding changes of the sending shard's AORs, for the receiver's location
    /// replica (`proxy::engine::replica`).
    Bindings(Vec<Change>),
}
