//! Membership by key, the node's side: the protocol's keys, gate and replay windows
//! ([`dhost_protocol::auth`], re-exported here), and [`note_unopened`], which counts and
//! reports what the gate could not read or refused.

pub use dhost_protocol::auth::*;

use dhost_runtime::stats::{DropLog, Stats};
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
