//! Reliable multicast: the protocol's stream state machines ([`dhost_protocol::stream`],
//! re-exported here), and [`outgoing::Outgoing`], the sender's side shared between the
//! threads that send (the event loop, and guests and plugins in a tight loop, which it
//! pauses when the window is full) and the thread that hears statuses.

pub mod outgoing;

pub use dhost_protocol::stream::{
    DEFAULT_KEEP_AGE, DEFAULT_KEEP_BYTES, DEFAULT_WINDOW, StreamConfig, receive, send, send_side,
};
