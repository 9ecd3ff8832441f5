//! Membership by key: only holders of the group key can call. A node with a key (`dhost
//! keygen`, `--key-file`) seals every datagram it sends and checks every one it receives
//! before decoding it ([`Gate`]), remembers each sender's recent packet numbers so that no
//! datagram is accepted twice ([`replay`]), and counts and reports what it refused
//! ([`note_rejection`]); connections to a node's TCP port prove both ends hold it
//! ([`connection`]). docs/security.md says what this protects and what it does not.

pub mod connection;
pub mod datagram;
pub mod key;
pub mod replay;

pub use datagram::{Gate, Rejected};
pub use key::{GroupKey, KeyError, Keyring};
pub use replay::ReplayGuard;

use crate::stats::{DropLog, Stats};
use std::net::SocketAddr;

/// Counts a datagram of `len` bytes from `from` refused at the gate, and says why: once
/// per source for a difference of set-up (a key on one side only), within the drop log's
/// rate otherwise.
pub fn note_rejection(
    stats: &Stats,
    drops: &mut DropLog,
    from: SocketAddr,
    len: usize,
    why: &Rejected,
) {
    let setup = why.setup_bit();
    let say = stats.rejections.count(from, why.is_replay(), setup);
    if setup != 0 {
        if say {
            tracing::warn!("ignoring datagrams from {from}: {why}");
        }
    } else {
        drops.dropped(format_args!("a datagram of {len} bytes from {from}: {why}"));
    }
}
