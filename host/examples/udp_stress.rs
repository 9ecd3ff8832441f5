//! The baseline of the stress benchmark: the same count of ordered values moved over raw
//! UDP multicast between two threads, batched into full datagrams and flow-controlled the
//! way dhost's stress guests are, with no node, no guest and no CBOR library in between.
//! It is the practical limit of the host for `scripts/bench.sh`'s throughput figures.
//!
//! ```text
//! cargo run --release --example udp_stress -- [COUNT] [WINDOW] [GROUP] [IFACE]
//! stress: 10000000 of 10000000 values in order in 0.412 s (24271844 calls/s), 0 lost, 0 out of order
//! ```
//!
//! A datagram is a kind byte, then: for values, each as a CBOR integer (as dhost encodes a
//! `set-value` argument); for the end, the count as four bytes. The receiver reports the
//! value it expects next, every 16384 values, to the sender's unicast port; the sender
//! keeps at most WINDOW values ahead of that report.

use socket2::{Domain, Protocol, Socket, Type};
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, UdpSocket};
use std::time::Instant;

/// The largest UDP payload over IPv4, as dhost uses on loopback.
const MAX_DATAGRAM: usize = 65_507;
/// How often (in values) the receiver reports progress, as the stress guests do.
const PROGRESS_EVERY: u32 = 16_384;
const KIND_VALUES: u8 = 0;
const KIND_FINISH: u8 = 1;

fn main() -> std::io::Result<()> {
    let mut args = std::env::args().skip(1);
    // The next argument, or `default` when there is none.
    let mut next = |default: &str| args.next().unwrap_or_else(|| default.to_string());
    let count: u32 = next("10000000").parse().map_err(std::io::Error::other)?;
    // Twice the reporting interval at least: a report always comes before the sender stalls.
    let window = next("131072")
        .parse::<u32>()
        .map_err(std::io::Error::other)?
        .max(2 * PROGRESS_EVERY);
    let group: SocketAddrV4 = next("239.255.77.1:47231")
        .parse()
        .map_err(std::io::Error::other)?;
    let iface: Ipv4Addr = next("127.0.0.1").parse().map_err(std::io::Error::other)?;

    let receiver = group_receiver(group, iface)?;
    let progress = UdpSocket::bind((iface, 0))?;
    let progress_to = progress.local_addr()?;
    let receiving = std::thread::spawn(move || receive(receiver, progress_to));
    send(group, iface, &progress, count, window)?;
    let line = receiving
        .join()
        .map_err(|_| std::io::Error::other("the receiver panicked"))??;
    println!("{line}");
    Ok(())
}

fn group_receiver(group: SocketAddrV4, iface: Ipv4Addr) -> std::io::Result<UdpSocket> {
    let socket = Socket::new(Domain::IPV4, Type::DGRAM, Some(Protocol::UDP))?;
    socket.set_reuse_address(true)?;
    socket.bind(&SocketAddr::V4(group).into())?;
    socket.join_multicast_v4(group.ip(), &iface)?;
    socket.set_multicast_loop_v4(true)?;
    socket.set_recv_buffer_size(8 * 1024 * 1024)?;
    Ok(socket.into())
}

fn send(
    group: SocketAddrV4,
    iface: Ipv4Addr,
    progress: &UdpSocket,
    count: u32,
    window: u32,
) -> std::io::Result<()> {
    let socket = Socket::new(Domain::IPV4, Type::DGRAM, Some(Protocol::UDP))?;
    socket.set_multicast_if_v4(&iface)?;
    socket.set_multicast_ttl_v4(0)?;
    socket.set_multicast_loop_v4(true)?;
    socket.bind(&SocketAddr::V4(SocketAddrV4::new(iface, 0)).into())?;
    socket.connect(&SocketAddr::V4(group).into())?;
    let socket: UdpSocket = socket.into();

    let mut datagram = Vec::with_capacity(MAX_DATAGRAM);
    let mut acked = 0u32;
    let mut next = 0u32;
    let mut report = [0u8; 4];
    while next < count {
        let limit = acked.saturating_add(window).min(count);
        if next == limit {
            progress.recv(&mut report)?;
            acked = acked.max(u32::from_be_bytes(report));
            continue;
        }
        datagram.clear();
        datagram.push(KIND_VALUES);
        while next < limit && datagram.len() + 5 <= MAX_DATAGRAM {
            put_u32(&mut datagram, next);
            next += 1;
        }
        socket.send(&datagram)?;
    }
    datagram.clear();
    datagram.push(KIND_FINISH);
    datagram.extend_from_slice(&count.to_be_bytes());
    socket.send(&datagram)?;
    Ok(())
}

/// A CBOR unsigned integer (major type 0), in as few bytes as it takes.
fn put_u32(out: &mut Vec<u8>, n: u32) {
    match n {
        0..=23 => out.push(n as u8),
        24..=0xff => out.extend_from_slice(&[0x18, n as u8]),
        0x100..=0xffff => {
            out.push(0x19);
            out.extend_from_slice(&(n as u16).to_be_bytes());
        }
        _ => {
            out.push(0x1a);
            out.extend_from_slice(&n.to_be_bytes());
        }
    }
}

/// Reads one CBOR unsigned integer, or `None` at the end or on anything else.
fn get_u32(bytes: &mut &[u8]) -> Option<u32> {
    let (&head, rest) = bytes.split_first()?;
    let (n, len) = match head {
        0..=23 => (u32::from(head), 0),
        0x18 => (u32::from(*rest.first()?), 1),
        0x19 => (
            u32::from(u16::from_be_bytes(rest.get(..2)?.try_into().ok()?)),
            2,
        ),
        0x1a => (u32::from_be_bytes(rest.get(..4)?.try_into().ok()?), 4),
        _ => return None,
    };
    *bytes = &rest[len..];
    Some(n)
}

fn receive(socket: UdpSocket, progress_to: SocketAddr) -> std::io::Result<String> {
    let reporter = UdpSocket::bind((progress_to.ip(), 0))?;
    let mut buf = vec![0u8; 65_536];
    let (mut next, mut in_order, mut lost, mut out_of_order) = (0u64, 0u64, 0u64, 0u64);
    let mut started = None;
    loop {
        let len = socket.recv(&mut buf)?;
        let Some((&kind, mut body)) = buf[..len].split_first() else {
            continue;
        };
        started.get_or_insert_with(Instant::now);
        if kind == KIND_FINISH {
            let count = u64::from(u32::from_be_bytes(
                body.get(..4)
                    .and_then(|b| b.try_into().ok())
                    .ok_or_else(|| std::io::Error::other("a short finish"))?,
            ));
            let secs = started.map_or(0.0, |t: Instant| t.elapsed().as_secs_f64());
            let lost = lost + count.saturating_sub(next);
            return Ok(format!(
                "stress: {in_order} of {count} values in order in {secs:.3} s ({:.0} calls/s), {lost} lost, {out_of_order} out of order",
                in_order as f64 / secs
            ));
        }
        while let Some(v) = get_u32(&mut body) {
            let v = u64::from(v);
            if v < next {
                out_of_order += 1;
                continue;
            }
            lost += v - next;
            in_order += 1;
            next = v + 1;
            if next % u64::from(PROGRESS_EVERY) == 0 {
                reporter.send_to(&(next as u32).to_be_bytes(), progress_to)?;
            }
        }
    }
}
