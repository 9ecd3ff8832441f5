//! Membership by key: only holders of the group key can call. A node with a key (`dhost
//! keygen`, `--key-file`) seals every datagram it sends and checks every one it receives
//! before decoding it ([`Gate`]), remembers each sender's recent packet numbers so that no
//! datagram is accepted twice ([`replay`]), and counts and reports what it could not
//! read or refused ([`note_unopened`]); connections to a node's TCP port prove both ends hold it
//! ([`connection`]). docs/security.md says what this protects and what it does not.

pub mod connection;
pub mod datagram;
pub mod key;
pub mod replay;

pub use datagram::{Arrival, Gate, Rejected, Unopened};
pub use key::{GroupKey, KeyError, Keyring};
pub use replay::ReplayGuard;

use crate::stats::{DropLog, Stats};
use std::net::SocketAddr;

/// Counts a datagram of `len` bytes from `from` that was not opened, and says why: as
/// malformed, or as refused at the gate (a difference of set-up, a key on one side only,
/// said once per source); within the drop log's rate.
pub fn note_unopened(
    stats: &Stats,
    drops: &mut DropLog,
    from: SocketAddr,
    len: usize,
    why: &Unopened,
) {
    let why = match why {
        Unopened::Malformed(e) => {
            Stats::bump(&stats.datagrams_malformed);
            return drops.dropped(format_args!("a datagram of {len} bytes from {from}: {e}"));
        }
        Unopened::Refused(why) => why,
    };
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
