//! The node's sockets to the group (socket2): one that receives the group's datagrams,
//! joined on the chosen interface with address reuse so several nodes share one machine,
//! and one bound to the interface that sends to the group (with loopback on) and to single
//! nodes, and receives what single nodes send back (statuses of the node's stream): the
//! [`Multicast`] transport.

use crate::auth::{Gate, Sealed};
use crate::transport::{ForNode, Transport};
use anyhow::Context as _;
use socket2::{Domain, Protocol, Socket, Type};
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, UdpSocket};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use dhost_protocol::wire;

/// The default group, as in the original DSTC.
pub const DEFAULT_GROUP: SocketAddrV4 = SocketAddrV4::new(Ipv4Addr::new(239, 0, 0, 1), 4723);

/// How large a receive buffer to ask the kernel for (it may grant less: `net.core.rmem_max`).
const RECV_BUFFER: usize = 8 * 1024 * 1024;

/// Where the group is and how to reach it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Group {
    /// The multicast address and port.
    pub addr: SocketAddrV4,
    /// The address of the local interface to send and join on.
    pub iface: Ipv4Addr,
    /// The multicast TTL: how many routers a datagram may cross (0: this host only).
    pub ttl: u32,
}

impl Group {
    /// The largest datagram worth sending through the interface: 64 KB on loopback, where
    /// nothing fragments, and one Ethernet frame elsewhere, since a lost fragment loses the
    /// whole datagram.
    pub fn default_max_datagram(&self) -> usize {
        if self.iface.is_loopback() {
            wire::MAX_DATAGRAM
        } else {
            wire::ETHERNET_DATAGRAM
        }
    }

    /// A socket that receives the group's datagrams (its own included) that arrive on the
    /// interface, non-blocking.
    pub fn receiver(&self) -> anyhow::Result<UdpSocket> {
        let socket = Socket::new(Domain::IPV4, Type::DGRAM, Some(Protocol::UDP))?;
        socket.set_reuse_address(true)?;
        // Binding to the group address (not 0.0.0.0) keeps other groups on the same port out.
        socket
            .bind(&SocketAddr::V4(self.addr).into())
            .with_context(|| format!("cannot bind to the group {}", self.addr))?;
        socket
            .join_multicast_v4(self.addr.ip(), &self.iface)
            .with_context(|| {
                format!(
                    "cannot join the group {} on the interface {} (is it this machine's address?)",
                    self.addr.ip(),
                    self.iface
                )
            })?;
        socket.set_multicast_loop_v4(true)?;
        // Linux delivers a group's datagrams to every socket bound to its port once any
        // socket of the host joined it on any interface (IP_MULTICAST_ALL): take only those
        // that arrive on the interface this socket joined.
        socket.set_multicast_all_v4(false)?;
        if let Err(e) = socket.set_recv_buffer_size(RECV_BUFFER) {
            tracing::debug!("cannot enlarge the receive buffer: {e}");
        }
        socket.set_nonblocking(true)?;
        Ok(socket.into())
    }

    /// The group as a node's transport: [`Self::sender`]'s socket, sending to the group.
    pub fn multicast(&self) -> anyhow::Result<Multicast> {
        Ok(Multicast::new(self.sender()?, SocketAddr::V4(self.addr)))
    }

    /// A blocking socket that sends to the group through the interface (with `send_to`:
    /// it is not connected, so that it also receives what single nodes send it).
    pub fn sender(&self) -> anyhow::Result<UdpSocket> {
        let socket = Socket::new(Domain::IPV4, Type::DGRAM, Some(Protocol::UDP))?;
        socket.set_multicast_if_v4(&self.iface).with_context(|| {
            format!("cannot send multicast through the interface {}", self.iface)
        })?;
        socket.set_multicast_ttl_v4(self.ttl)?;
        socket.set_multicast_loop_v4(true)?;
        if let Err(e) = socket.set_recv_buffer_size(RECV_BUFFER / 4) {
            tracing::debug!("cannot enlarge the receive buffer of the stream socket: {e}");
        }
        socket
            .bind(&SocketAddr::V4(SocketAddrV4::new(self.iface, 0)).into())
            .with_context(|| format!("cannot bind to the interface {}", self.iface))?;
        Ok(socket.into())
    }
}

/// How many bytes the kernel lets `socket` hold before it drops what arrives (what it
/// granted of what was asked: `net.core.rmem_max` caps it).
pub fn receive_buffer(socket: &UdpSocket) -> usize {
    socket2::SockRef::from(socket)
        .recv_buffer_size()
        .unwrap_or(212_992)
}

/// Seals `datagram` (a header [`wire::encode_header`] wrote, then frames) through `gate` as
/// its next packet and sends it through `socket` to `to`: to one node (`unicast`) or to the
/// group, header and body in one datagram without copying them together.
pub fn send_sealed(
    gate: &Gate,
    socket: &UdpSocket,
    datagram: &[u8],
    to: SocketAddr,
    unicast: bool,
) -> std::io::Result<usize> {
    send_to(socket, &gate.seal(datagram, unicast), to)
}

/// Sends `sealed` through `socket` to `to`, header and body in one datagram without copying
/// them together.
fn send_to(socket: &UdpSocket, sealed: &Sealed<'_>, to: SocketAddr) -> std::io::Result<usize> {
    socket2::SockRef::from(socket).send_to_vectored(
        &[
            std::io::IoSlice::new(sealed.header()),
            std::io::IoSlice::new(sealed.body()),
        ],
        &to.into(),
    )
}

/// What a receive from a socket with a read timeout gave: a datagram, or `None` when the
/// time passed first.
pub fn within_timeout<T>(received: std::io::Result<T>) -> std::io::Result<Option<T>> {
    match received {
        Ok(received) => Ok(Some(received)),
        Err(e)
            if matches!(
                e.kind(),
                std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
            ) =>
        {
            Ok(None)
        }
        Err(e) => Err(e),
    }
}

/// The group on a LAN, as a node's [`Transport`]: one socket, bound to the interface and
/// not connected, that sends to the group and to single nodes, and hears what single nodes
/// send back.
#[derive(Debug)]
pub struct Multicast {
    socket: UdpSocket,
    group: SocketAddr,
    /// The receive timeout last set on the socket, in microseconds (set anew only when it
    /// changes: the stream thread asks for one of two).
    timeout: AtomicU64,
}

impl Multicast {
    /// The group at `group`, reached through `socket` ([`Group::sender`]).
    pub fn new(socket: UdpSocket, group: SocketAddr) -> Self {
        Multicast {
            socket,
            group,
            timeout: AtomicU64::new(0),
        }
    }

    /// Its socket.
    pub fn socket(&self) -> &UdpSocket {
        &self.socket
    }

    /// The group's address.
    pub fn group(&self) -> SocketAddr {
        self.group
    }
}

impl Transport for Multicast {
    fn to_group(&self, datagram: &[u8], gate: &Gate) -> std::io::Result<()> {
        send_to(&self.socket, &gate.seal(datagram, false), self.group).map(drop)
    }

    fn to_node(&self, to: SocketAddr, sealed: &Sealed<'_>) -> std::io::Result<()> {
        send_to(&self.socket, sealed, to).map(drop)
    }

    fn for_node(&self, buf: &mut [u8], timeout: Duration) -> std::io::Result<Option<ForNode>> {
        let micros = u64::try_from(timeout.as_micros())
            .unwrap_or(u64::MAX)
            .max(1);
        if self.timeout.swap(micros, Ordering::Relaxed) != micros {
            self.socket
                .set_read_timeout(Some(Duration::from_micros(micros)))?;
        }
        within_timeout(self.socket.recv_from(buf))
    }

    fn wake(&self) {
        if let Ok(own) = self.socket.local_addr() {
            let _ = self.socket.send_to(&[], own);
        }
    }

    fn describe(&self) -> String {
        format!("the group {}", self.group)
    }
}
