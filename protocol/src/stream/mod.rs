//! Reliable multicast: the sequenced datagrams of one node incarnation form one ordered
//! stream, which every live receiver runs in order and once, with gaps repaired, and
//! which the sender paces so that it is never further ahead of its slowest live receiver
//! than a window.
//!
//! The protocol is NACK-based, as NORM (RFC 5740) and Aeron: receivers ask for what they
//! miss, senders never wait for positive acknowledgements of single datagrams.
//!
//! - A sender numbers its sequenced datagrams 1, 2, 3, ... and keeps recent ones in a
//!   retransmit buffer bounded in bytes and age ([`send::SendStream`]).
//! - A receiver runs a sender's datagrams in order, holds those that arrive after a gap,
//!   and sends the sender a *status* by unicast: how far it has run, how many more bytes
//!   it can take, and the ranges it misses ([`receive::ReceiveStreams`]).
//! - The sender resends what is missing by multicast (one resend repairs every receiver
//!   that lost it), answers what it no longer holds with its *position* (so the receiver
//!   counts the loss, once, instead of waiting), and multicasts its position as a
//!   heartbeat while a receiver lags, so that the loss of a burst's last datagram is seen.
//! - The window: the sender sends only while the bytes beyond its slowest live receiver's
//!   position fit in the smaller of its own window and what that receiver says it can take.
//!   A receiver that has not been heard from for [`crate::membership::PEER_EXPIRY`] is no
//!   longer waited for.
//!
//! These are state machines: they take the time as an argument and do no I/O.
//! [`send_side::SendSide`] is a node's whole sending side over [`send::SendStream`]:
//! numbering and batching calls, the queue in front of the window, answering statuses,
//! heartbeats; the node (`dhost_node::stream::outgoing`) drives it from the threads that
//! send and the socket that hears statuses. `docs/wire.md` describes the frames.

pub mod receive;
pub mod send;
pub mod send_side;

use std::time::Duration;

/// The sender's knobs: the window and the retransmit buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StreamConfig {
    /// The most bytes a sender sends beyond what its slowest live receiver has run
    /// (receivers may ask for less). `None`: no flow control, no repair (`--unreliable`).
    pub window: Option<u64>,
    /// The most bytes of sent datagrams kept for resending once every live receiver has
    /// them (what a receiver still lacks is always kept).
    pub keep_bytes: u64,
    /// How long a sent datagram is kept for resending once every live receiver has it.
    pub keep_age: Duration,
}

/// The default window: 4 MiB.
pub const DEFAULT_WINDOW: u64 = 4 << 20;

/// The default size of the retransmit buffer: 16 MiB.
pub const DEFAULT_KEEP_BYTES: u64 = 16 << 20;

/// How long sent datagrams are kept by default.
pub const DEFAULT_KEEP_AGE: Duration = Duration::from_secs(5);

impl Default for StreamConfig {
    fn default() -> Self {
        StreamConfig {
            window: Some(DEFAULT_WINDOW),
            keep_bytes: DEFAULT_KEEP_BYTES,
            keep_age: DEFAULT_KEEP_AGE,
        }
    }
}

impl StreamConfig {
    /// A sender without flow control or repair: datagrams are numbered (so receivers
    /// count what they lose) and nothing else.
    pub fn unreliable() -> Self {
        StreamConfig {
            window: None,
            keep_bytes: 0,
            keep_age: Duration::ZERO,
        }
    }

    /// Checks that the knobs fit together.
    pub fn check(&self) -> Result<(), String> {
        match self.window {
            Some(window) if window > self.keep_bytes => Err(format!(
                "the window ({}) cannot be larger than the retransmit buffer ({}): a sender \
                 keeps everything a live receiver may still ask for",
                bytesize::ByteSize(window).display().iec(),
                bytesize::ByteSize(self.keep_bytes).display().iec()
            )),
            Some(0) => Err("the window must be at least one byte".to_string()),
            _ => Ok(()),
        }
    }
}
