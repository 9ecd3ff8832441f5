//! What a node's datagrams travel over: the seam between the sending side
//! ([`crate::stream::outgoing`], which decides what to send and when) and a network. A
//! [`Transport`] carries sealed datagrams to every node of the group and to one node, and
//! brings in what is sent to this node alone (the statuses of its stream). Two carry
//! them: the multicast group on a LAN ([`crate::net::Multicast`]) and a Zenoh network
//! through routers ([`crate::zenoh_transport::ZenohLink`]). What the group sends comes in
//! on the network thread ([`crate::run`]), whichever carried it.

use crate::auth::{Gate, Sealed};
use std::net::{Ipv6Addr, SocketAddr, SocketAddrV6};
use std::time::Duration;

/// The first 64 bits of the address of a peer reached through Zenoh: the discard-only
/// prefix `100::/64`.
const PEER_PREFIX: u128 = 0x0100_0000_0000_0000_0000_0000_0000_0000;

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

/// The address node `sender`, reached otherwise than by IP (through Zenoh), goes by:
/// one of the discard-only IPv6 prefix `100::/64` (RFC 6666), which no host has, with
/// the sender id in the low 64 bits, and port 0. The core and the sending side know every
/// peer by a socket address, this one too.
pub fn peer_addr(sender: u64) -> SocketAddr {
    let ip = Ipv6Addr::from(PEER_PREFIX | u128::from(sender));
    SocketAddr::V6(SocketAddrV6::new(ip, 0, 0, 0))
}

/// The sender id of a node reached through Zenoh, if `addr` is the address of one.
pub fn peer_of(addr: SocketAddr) -> Option<u64> {
    let SocketAddr::V6(v6) = addr else {
        return None;
    };
    let bits = u128::from(*v6.ip());
    (bits >> 64 == PEER_PREFIX >> 64 && v6.port() == 0).then_some(bits as u64)
}

/// How `addr` is shown to users: `zenoh/<sender>` for a node reached through Zenoh, else
/// the address itself.
pub fn show(addr: SocketAddr) -> String {
    match peer_of(addr) {
        Some(sender) => format!("zenoh/{sender:016x}"),
        None => addr.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_zenoh_peer_goes_by_an_address_no_host_has() {
        for sender in [0, 1, 0xdead_beef_0000_0001, u64::MAX] {
            let addr = peer_addr(sender);
            assert_eq!(peer_of(addr), Some(sender));
            assert!(!addr.ip().is_loopback());
        }
        for other in ["127.0.0.1:1", "[::1]:0", "[100::1]:5", "[200::1]:0"] {
            assert_eq!(peer_of(other.parse().unwrap()), None, "{other}");
            assert_eq!(show(other.parse().unwrap()), other);
        }
        assert_eq!(show(peer_addr(0xab)), "zenoh/00000000000000ab");
    }
}
