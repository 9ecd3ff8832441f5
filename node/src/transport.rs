//! What a node's datagrams travel over: the seam between the sending side
//! ([`crate::stream::outgoing`], which decides what to send and when) and a network. A
//! [`Transport`] carries sealed datagrams to every node of the group and to one node, and
//! brings in what is sent to this node alone (the statuses of its stream). Two carry
//! them: the multicast group on a LAN ([`crate::net::Multicast`]) and a Zenoh network
//! through routers ([`crate::zenoh_transport::ZenohLink`]). What the group sends comes in
//! on the network thread ([`crate::run`]), whichever carried it.

use crate::auth::{Gate, Sealed};
use std::net::SocketAddr;
use std::time::Duration;

/// A datagram sent to this node alone, as it came: its bytes and its sender's address.
pub type ForNode = (usize, SocketAddr);

/// What a node's datagrams travel over (see the module's documentation).
pub trait Transport: Send + Sync + std::fmt::Debug {
    /// Seals `datagram` (a header [`dhost_protocol::wire::encode_header`] wrote, then
    /// frames) through `gate` and sends it to every node of the group (a transport that
    /// routes by function reads which functions its calls are to).
    fn to_group(&self, datagram: &[u8], gate: &Gate) -> std::io::Result<()>;

    /// The functions this node serves (by id, or bare name for C plugins) are now these: a
    /// transport that routes by function takes the calls to them, and no others.
    fn serve(&self, functions: &[String]) {
        let _ = functions;
    }

    /// Sends `sealed` to the node at `to` alone.
    fn to_node(&self, to: SocketAddr, sealed: &Sealed<'_>) -> std::io::Result<()>;

    /// Waits at most `timeout` for a datagram sent to this node alone, and copies it into
    /// `buf` (cut at its length). `None` when the time passed or [`Self::wake`] woke it
    /// (an empty datagram means the same).
    fn for_node(&self, buf: &mut [u8], timeout: Duration) -> std::io::Result<Option<ForNode>>;

    /// Wakes the thread waiting in [`Self::for_node`].
    fn wake(&self);

    /// What the group is, for messages (`the group 239.0.0.1:4723`).
    fn describe(&self) -> String;
}
