//! What a guest needs of the node's network, as two small traits the node implements (the
//! runtime has no socket of its own):
//!
//! - [`CallSender`]: where the calls a guest or a native plugin sends go: the node's
//!   stream to the group, and its own guests that serve them; a sender waits there while
//!   the window to the receivers is full ([`Patience`]), and learns that the node stopped
//!   ([`Stopped`]);
//! - [`RemoteCaller`]: the node's connections to its peers, for calls with replies.

use super::outbox::Outbox;
use ciborium::Value;
use dhost_protocol::outcome::Outcome;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// How long a sender waiting for room sleeps before it looks again (receivers expire, the
/// node stops).
const WAIT_SLICE: Duration = Duration::from_millis(50);

/// Where the calls of a node's guests and plugins go: the node's sending side.
pub trait CallSender: Send + Sync + std::fmt::Debug {
    /// Queues `sent`'s calls for the group (emptying it) and copies into `local` those this
    /// node serves itself; sends the datagrams that are full, waiting while the window is
    /// full. Returns how long it waited.
    fn send(&self, sent: &mut Outbox, local: &mut Outbox) -> Result<Duration, Stopped>;

    /// Sends every call queued, the last datagram partly filled or not, waiting as
    /// `patience` allows; returns how long it waited.
    fn flush(&self, patience: Patience) -> Result<Duration, Stopped>;
}

/// The node's connections to its peers, for calls with replies (and casts to one node).
pub trait RemoteCaller: Send + Sync + std::fmt::Debug {
    /// Calls `function` on the node at `addr` (named `peer`) and waits for the outcome, at
    /// most `timeout`; without `wants_reply`, only for the call to be taken. Blocks the
    /// calling thread.
    fn call(
        &self,
        addr: SocketAddr,
        peer: &str,
        function: &str,
        args: Vec<Value>,
        wants_reply: bool,
        timeout: Duration,
    ) -> Outcome;

    /// How many connections are open to each peer address now.
    fn links(&self) -> HashMap<SocketAddr, usize>;

    /// The node at `addr` left the group: the calls in flight to it fail at once.
    fn left(&self, addr: SocketAddr);
}

/// How long a sender may wait for room in the window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Patience {
    /// Until the node stops.
    UntilStopping,
    /// Until this instant (the node is stopping and lingers to send what it has).
    Until(Instant),
}

impl Patience {
    /// How long a sender whose next datagram does not fit the window waits at `now` before
    /// it looks again (at most [`WAIT_SLICE`], so that a stop is seen), or `None` if it
    /// gives up: the node is `stopping`, or the deadline has come.
    pub fn wait(self, stopping: bool, now: Instant) -> Option<Duration> {
        let limit = match self {
            Patience::UntilStopping if stopping => now,
            Patience::UntilStopping => now + WAIT_SLICE,
            Patience::Until(deadline) => deadline,
        };
        (now < limit).then(|| WAIT_SLICE.min(limit - now))
    }
}

/// The node stopped (or its last moment passed) while the window was full.
#[derive(Debug, thiserror::Error)]
#[error(
    "the node is stopping: {datagrams} datagram(s) of calls were not sent (the receivers had \
     not made room for them)"
)]
pub struct Stopped {
    /// The datagrams not sent.
    pub datagrams: usize,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sender_waits_for_room_in_slices_until_it_is_told_to_stop() {
        let now = Instant::now();
        let ms = |n| now + Duration::from_millis(n);
        assert_eq!(Patience::UntilStopping.wait(false, now), Some(WAIT_SLICE));
        assert_eq!(Patience::UntilStopping.wait(true, now), None, "stopping");
        // Lingering to a deadline: in slices, then the rest, then no more.
        assert_eq!(Patience::Until(ms(500)).wait(false, now), Some(WAIT_SLICE));
        assert_eq!(
            Patience::Until(ms(20)).wait(false, now),
            Some(Duration::from_millis(20))
        );
        assert_eq!(Patience::Until(now).wait(false, now), None);
        assert_eq!(Patience::Until(now).wait(false, ms(1)), None, "past it");
        // A deadline holds even when the node is stopping (it lingers to send the rest).
        assert_eq!(
            Patience::Until(ms(20)).wait(true, now),
            Some(Duration::from_millis(20))
        );
    }
}
