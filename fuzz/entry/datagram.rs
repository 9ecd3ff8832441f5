//! The body of the `datagram` fuzz target, shared with `tests/fuzz_corpora.rs`: one UDP
//! datagram from the multicast group, as hostile bytes, through what a receiver runs on
//! it: `dhost_protocol::wire::read_header`, the gate (`dhost_protocol::auth::datagram::Gate::open`, without
//! a key, which lets unprotected datagrams through, and with one, which must refuse a
//! forger), `decode_frames` (and `decode_datagram`, which must agree), each call run's
//! arguments (`CallRun::arguments`); what decodes is encoded again and must decode to the
//! same frames. The input, read as 16-bit packet numbers, also goes through a replay
//! window (`dhost_protocol::auth::replay::ReplayWindow`), checked against a plain set.

use dhost_protocol::auth::datagram::{Arrival, Gate, REPLAY_MEMORY};
use dhost_protocol::auth::key::{GroupKey, Keyring};
use dhost_protocol::auth::replay::{ReplayGuard, ReplayWindow, Verdict, WINDOW};
use dhost_protocol::cbor::{Cursor, starts_array};
use dhost_protocol::wire::{self, Batcher, CallRun, Frame, Header, NUMBERS_BELOW, Protection};
use std::collections::HashSet;
use std::time::Instant;

/// How the input arrives: at the group's socket, from this host.
fn arrival() -> Arrival {
    Arrival::to_group(std::net::SocketAddr::from(([127, 0, 0, 1], 4723)))
}

/// Runs one input; panics if a decoder panics or disagrees with itself or the encoders.
pub(crate) fn run(data: &[u8]) {
    let whole = wire::decode_datagram(data);
    // A receiver reads the header first (to skip its own datagrams and duplicates), and
    // the frames only of a datagram it runs: the two ways must agree.
    let mut rest = data;
    let header = wire::read_header(&mut rest);
    let frames = header.as_ref().ok().map(|_| wire::decode_frames(rest));
    match (&whole, &header, &frames) {
        (Ok(datagram), Ok(header), Some(Ok(frames))) => {
            assert_eq!(&datagram.header, header);
            assert_eq!(&datagram.frames, frames);
        }
        (Err(e), Err(header), None) => assert_eq!(e, header),
        (Err(e), Ok(_), Some(Err(frames))) => assert_eq!(e, frames),
        _ => panic!(
            "decode_datagram: {whole:?}, but read_header: {header:?} and decode_frames: {frames:?}"
        ),
    }
    // Frames with no header in front (what a datagram holds after it).
    let _ = wire::decode_frames(data);
    if let Ok(header) = &header {
        check_gates(header, data);
    }
    check_replay_window(data);

    let Ok(datagram) = whole else { return };
    if let Some(seq) = datagram.header.seq {
        assert!((1..NUMBERS_BELOW).contains(&seq), "sequence number {seq}");
    }
    for frame in &datagram.frames {
        check_frame(frame);
    }
}

/// The gate of a node without a key passes unprotected datagrams whole and refuses the
/// others; that of a node with one (tags or encryption) refuses what a forger sends.
fn check_gates(header: &Header, data: &[u8]) {
    let now = Instant::now();
    let mut replay = ReplayGuard::new(REPLAY_MEMORY);
    let mut datagram = data.to_vec();
    let unkeyed = Gate::new(None, false);
    match unkeyed.open(header, &mut datagram, arrival(), &mut replay, now) {
        Ok(body) => {
            assert_eq!(header.auth.protection, Protection::None);
            assert_eq!(body, &data[header.len..]);
        }
        Err(_) => assert_ne!(header.auth.protection, Protection::None),
    }
    for encrypt in [false, true] {
        let keys = Keyring::new(vec![GroupKey::from_bytes([7; 32])]);
        let keyed = Gate::new(keys, encrypt);
        let mut datagram = data.to_vec();
        let opened = keyed.open(header, &mut datagram, arrival(), &mut replay, now);
        assert!(opened.is_err(), "a datagram forged without the key passed");
    }
}

/// A replay window accepts a packet number once, and tells the ones it no longer
/// remembers (more than [`WINDOW`] behind the highest) as too old.
fn check_replay_window(data: &[u8]) {
    let mut window = ReplayWindow::new();
    let (mut accepted, mut highest) = (HashSet::new(), 0);
    for pair in data.chunks_exact(2) {
        let n = u64::from(u16::from_be_bytes([pair[0], pair[1]]));
        let expected = if n == 0 || (n <= highest && highest - n >= WINDOW) {
            Verdict::TooOld
        } else if accepted.contains(&n) {
            Verdict::Replayed
        } else {
            Verdict::New
        };
        assert_eq!(window.check(n), expected, "packet {n} after {highest}");
        if expected == Verdict::New {
            accepted.insert(n);
            highest = highest.max(n);
        }
    }
}

/// Checks a decoded frame and that it encodes to bytes that decode to it again.
fn check_frame(frame: &Frame) {
    let mut encoded = Vec::new();
    match frame {
        Frame::Call(call) => return check_call(call),
        Frame::Announce(announce) => wire::encode_announce(announce, &mut encoded),
        Frame::Query => wire::encode_query(&mut encoded),
        Frame::Goodbye => wire::encode_goodbye(&mut encoded),
        Frame::Position(position) => wire::encode_position(*position, &mut encoded),
        Frame::Status(status) => wire::encode_status(status, &mut encoded),
        Frame::Unknown { .. } => return,
    }
    assert_eq!(
        wire::decode_frames(&encoded),
        Ok(vec![frame.clone()]),
        "{frame:?} encoded as {encoded:02x?}"
    );
}

/// Checks a run of calls: its numbers, its argument arrays (each one whole CBOR array),
/// and that the batcher packs the same calls into a datagram that decodes to them.
fn check_call(call: &CallRun) {
    assert!(call.first < NUMBERS_BELOW);
    let arguments: Vec<&[u8]> = call.arguments().collect();
    assert_eq!(arguments.len(), call.count());
    assert!(call.count() >= 1);
    for args in &arguments {
        assert!(starts_array(args), "{args:02x?}");
        let mut cursor = Cursor::new(args);
        assert_eq!(cursor.item().ok(), Some(*args), "not one whole item");
    }

    // (Larger runs than one datagram holds travel as several runs; inputs are smaller.)
    let size: usize = arguments.iter().map(|args| args.len()).sum();
    if wire::call_frame_len(&call.function, size) + 64 > wire::MAX_DATAGRAM {
        return;
    }
    let mut batcher = Batcher::new(1, wire::MAX_DATAGRAM, true);
    batcher.push_calls(call.first, &call.function, arguments.iter().copied(), |e| {
        panic!("a run of {size} bytes of arguments refused: {e}")
    });
    let datagrams = batcher.take();
    let [datagram] = &datagrams[..] else {
        panic!("one run packed into {} datagrams", datagrams.len())
    };
    let mut datagram = datagram.clone();
    wire::stamp(&mut datagram, 1);
    let decoded = wire::decode_datagram(&datagram).expect("a packed datagram decodes");
    let [Frame::Call(packed)] = &decoded.frames[..] else {
        panic!("one run packed as {:?}", decoded.frames)
    };
    assert_eq!(
        (packed.first, &packed.function, packed.count()),
        (call.first, &call.function, call.count())
    );
    assert!(packed.arguments().eq(arguments.iter().copied()));
}
