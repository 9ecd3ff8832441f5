//! The frames a datagram carries after its header, and runs of calls: decoding a datagram's
//! frames (a run's arguments checked once and kept as CBOR bytes) and encoding a call frame.

use super::arguments::ArgumentArrays;
use super::control::{Announce, Position, Status, decode_announce, decode_position, decode_status};
use super::header::{Header, read_header};
use super::{
    MAX_CONTROL_ITEMS, NUMBERS_BELOW, WireError, encode_item, kind_and_fields, next_item, shape_of,
};
use crate::cbor::Cursor;
use crate::cbor::starts_array;
use crate::frame_kind::{
    ANNOUNCE as KIND_ANNOUNCE, CALL as KIND_CALL, GOODBYE as KIND_GOODBYE,
    POSITION as KIND_POSITION, QUERY as KIND_QUERY, STATUS as KIND_STATUS,
};
use ciborium::value::Value;
use ciborium_ll::Header as Head;

/// One frame of a datagram.
#[derive(Debug, Clone, PartialEq)]
pub enum Frame {
    /// Run `function` with `args` on every node that serves it.
    Call(CallRun),
    /// The sender is up: its name and what it serves.
    Announce(Announce),
    /// The sender asks every node to announce itself now.
    Query,
    /// The sender is stopping.
    Goodbye,
    /// Where the sender's stream stands: what it sent, and what it can still resend.
    Position(Position),
    /// A receiver's status of one sender's stream (sent to that sender alone).
    Status(Status),
    /// A frame of a kind this node does not know (sent by a newer node); skipped.
    Unknown {
        /// The kind number.
        kind: u64,
    },
}

/// A run of calls to every node that serves `function`: one or more calls with consecutive
/// call numbers from `first`.
#[derive(Debug, Clone, PartialEq)]
pub struct CallRun {
    /// The sender's number of the first call of the run (one counter per sender
    /// incarnation, over its calls only, from 1): receivers count lost calls by it.
    pub first: u64,
    /// The function id, `namespace:package/interface#function`.
    pub function: String,
    /// The calls' arguments: one CBOR array per call, one after the other, each checked to
    /// be well-formed (see `docs/wire.md` for what the values mean).
    args: ArgumentArrays,
}

impl CallRun {
    /// A run of one call, with its arguments as CBOR values.
    #[cfg(test)]
    pub fn single(first: u64, function: &str, args: &[Value]) -> Self {
        let mut bytes = Vec::new();
        encode_item(&Value::Array(args.to_vec()), &mut bytes);
        CallRun::collect(first, function, std::iter::once(&bytes[..]))
    }

    /// A run of the calls whose argument arrays are `args` (each well-formed CBOR), copied
    /// (the calls a node's own guests sent to it, delivered locally).
    pub fn collect<'a>(first: u64, function: &str, args: impl Iterator<Item = &'a [u8]>) -> Self {
        let mut run = CallRun {
            first,
            function: function.to_string(),
            args: ArgumentArrays::default(),
        };
        for call in args {
            run.args.push(call);
        }
        run
    }

    /// Every call's argument array, one after the other, as they came.
    #[inline]
    pub fn bytes(&self) -> &[u8] {
        self.args.bytes()
    }

    /// How many calls the run holds (at least one).
    #[inline]
    pub fn count(&self) -> usize {
        self.args.len()
    }

    /// Each call's argument array, as CBOR bytes, in order.
    #[inline]
    pub fn arguments(&self) -> impl ExactSizeIterator<Item = &[u8]> + Clone {
        self.args.iter()
    }
}

/// A decoded datagram: its header and frames.
#[derive(Debug, Clone, PartialEq)]
pub struct Datagram {
    /// The header.
    pub header: Header,
    /// The frames, in the order they were sent.
    pub frames: Vec<Frame>,
}

/// Decodes one datagram (without checking its tag: [`crate::auth`] does). Any malformed
/// item rejects the whole datagram.
pub fn decode_datagram(mut bytes: &[u8]) -> Result<Datagram, WireError> {
    let header = read_header(&mut bytes)?;
    let frames = decode_frames(bytes)?;
    Ok(Datagram { header, frames })
}

/// Decodes the frames of a datagram, after its header.
pub fn decode_frames(bytes: &[u8]) -> Result<Vec<Frame>, WireError> {
    let mut frames = Vec::new();
    let mut cursor = Cursor::new(bytes);
    while !cursor.is_empty() {
        frames.push(decode_frame_at(&mut cursor)?);
    }
    Ok(frames)
}

/// The function ids of the call runs among `frames` (a datagram's frames, after its
/// header), in order, each as often as it has runs: what a transport that routes by
/// function needs, read without decoding any argument (each is stepped over). Frames of
/// other kinds are stepped over too.
pub fn call_functions(frames: &[u8]) -> Result<Vec<&str>, WireError> {
    let mut functions = Vec::new();
    let mut cursor = Cursor::new(frames);
    while !cursor.is_empty() {
        let mut frame = cursor.clone();
        let len = match frame.head()? {
            Head::Array(len) => len,
            _ => return Err(shape_of("frame", "not an array")),
        };
        if len != Some(0) && matches!(frame.head()?, Head::Positive(KIND_CALL)) {
            frame.uint()?;
            functions.push(frame.text()?);
        }
        cursor.item()?;
    }
    Ok(functions)
}

/// Decodes the frame at the cursor: a call run without building its arguments, any other
/// kind through [`Value`].
fn decode_frame_at(cursor: &mut Cursor<'_>) -> Result<Frame, WireError> {
    let start = cursor.clone();
    let shape = |why: &str| WireError::Shape {
        what: "call",
        why: why.to_string(),
    };
    let len = match cursor.head()? {
        Head::Array(Some(0)) => return Err(shape_of("frame", "no kind")),
        Head::Array(len) => len,
        _ => return Err(shape_of("frame", "not an array")),
    };
    if !matches!(cursor.head()?, Head::Positive(KIND_CALL)) {
        // (Stepped over first, allocating nothing: a frame of more items than any a node
        // sends is refused before a tree of values is built from it.)
        let mut whole = start;
        let item = whole.item_of_at_most(MAX_CONTROL_ITEMS)?;
        *cursor = whole;
        return decode_frame(next_item(&mut &item[..])?);
    }
    if len.is_some_and(|n| n < 4) {
        return Err(shape("fewer than 4 fields"));
    }
    let first = cursor
        .uint()
        .ok()
        .filter(|&n| n < NUMBERS_BELOW)
        .ok_or_else(|| shape("no call number (below 2^63)"))?;
    let function = cursor
        .text()
        .ok()
        .filter(|f| crate::printable::is_printable(f))
        .ok_or_else(|| shape("no function id (printable text)"))?
        .to_string();
    let args_start = cursor.position();
    let mut ends = Vec::new();
    loop {
        match len {
            Some(n) if ends.len() + 3 == n => break,
            None if cursor.at_break()? => break,
            _ => {}
        }
        if !starts_array(cursor.rest()) {
            return Err(shape("an argument list is not an array"));
        }
        cursor.item()?;
        // (A datagram is far shorter than 4 GiB.)
        ends.push((cursor.position() - args_start) as u32);
    }
    let Some(&args_len) = ends.last() else {
        return Err(shape("no argument array"));
    };
    let from = args_start - start.position();
    let args = start.rest()[from..from + args_len as usize].to_vec();
    Ok(Frame::Call(CallRun {
        first,
        function,
        args: ArgumentArrays::from_parts(args, ends),
    }))
}

/// Decodes a frame of any kind but a call.
fn decode_frame(item: Value) -> Result<Frame, WireError> {
    let (kind, fields) = kind_and_fields(item)?;
    match kind {
        KIND_ANNOUNCE => decode_announce(fields).map(Frame::Announce),
        KIND_QUERY => Ok(Frame::Query),
        KIND_GOODBYE => Ok(Frame::Goodbye),
        KIND_POSITION => decode_position(fields).map(Frame::Position),
        KIND_STATUS => decode_status(fields).map(Frame::Status),
        _ => Ok(Frame::Unknown { kind }),
    }
}

/// How many bytes a call frame adds to its function id and arguments at most: the array
/// head, the kind, the longest call number, the id's text head and the break.
pub const CALL_FRAME_OVERHEAD: usize = 1 + 1 + 9 + 9 + 1;

/// The encoded size of a call frame of one call to `function` with `args_len` bytes of
/// arguments, at most.
pub fn call_frame_len(function: &str, args_len: usize) -> usize {
    CALL_FRAME_OVERHEAD + function.len() + args_len
}

/// Encodes a call frame of one call, number `first`, onto the end of `out`.
pub fn encode_call(first: u64, function: &str, args: &[Value], out: &mut Vec<u8>) {
    let mut encoded = Vec::new();
    encode_item(&Value::Array(args.to_vec()), &mut encoded);
    encode_call_run(first, function, &encoded, out);
}

/// The CBOR break that closes an indefinite-length array.
pub(super) const BREAK: u8 = 0xff;

/// Encodes a run of one call, `[_ 0, first, function, args]` with `args` one CBOR array,
/// onto the end of `out`; the run stays open to more calls (see [`Batcher`]).
pub(super) fn encode_call_run(first: u64, function: &str, args: &[u8], out: &mut Vec<u8>) {
    let mut encoder = ciborium_ll::Encoder::from(&mut *out);
    // Writing to a Vec cannot fail.
    let _ = encoder.push(Head::Array(None));
    let _ = encoder.push(Head::Positive(KIND_CALL));
    let _ = encoder.push(Head::Positive(first));
    let _ = encoder.text(function, None);
    out.extend_from_slice(args);
    out.push(BREAK);
}
