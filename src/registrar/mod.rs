//! The registrar (RFC 3261 §10) and the location service sharded by AOR, without
//! I/O: time comes in as an argument, as wall-clock seconds since the UNIX epoch
//! (bindings outlive the process). Their persistence is the runtime's
//! (`runtime::store`, written off the executors by `runtime::persist`).
//!
//! How a shard uses it:
//! - the shard a REGISTER lands on runs [`Registrar::on_register`] and sends the
//!   bytes it wrote; the returned changes go to the other shards
//!   (`proxy::engine::replica`), and the AOR's owner ([`shard_of_aor`]) journals
//!   them for the runtime to persist. With `--stateless` (no replication) the
//!   REGISTER is handed to the owner ([`aor_of_register`]) instead;
//! - the proxy's target determination calls [`Location::lookup`];
//! - the shard's tick calls [`Location::expire`] (at [`Location::next_expiry`]);
//! - at start, once for all shards, the runtime loads the store into each shard.

pub(crate) mod aor;
pub(crate) mod location;
pub(crate) mod register;

pub(crate) use aor::{shard_of_aor, AorKey};
pub(crate) use location::{Applied, Binding, Change, Location, Source};
pub(crate) use register::{RegisterOutcome, Registrar, RegistrarConfig};

use crate::sip::message::Message;

/// The AOR a REGISTER is about (its To URI, canonical), to find the shard that owns
/// it. `None` when the To header is unusable; any shard can then answer (the
/// registrar's 400).
pub(crate) fn aor_of_register(msg: &Message<'_>) -> Option<AorKey> {
    AorKey::from_uri(&msg.to_uri().ok()?).ok()
}

#[cfg(test)]
pub(crate) mod tests;
