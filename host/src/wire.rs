//! The wire format of the multicast group: datagrams, the frames they carry, and the
//! batching of frames into datagrams.
//!
//! A datagram is a CBOR sequence (RFC 8742): a header, then any number of frames.
//!
//! ```text
//! datagram = header frame*
//! header   = 55799([version, sender, auth])   ; the self-describe tag is the magic
//! frame    = [kind, seq, ...]                 ; kind 0 = call: [0, seq, function-id, [arg*]+]
//! ```
//!
//! A call frame carries one or more argument arrays: a *run* of calls to one function with
//! consecutive sequence numbers, so that a burst of calls pays for the function id once.
//! The [`Batcher`] extends the open run of a datagram in place (an indefinite-length
//! array), and decoding checks a run's arguments once and hands them on as CBOR bytes,
//! without building a [`Value`] per call.
//!
//! `docs/wire.md` is the reference; this module is the only code that reads or writes it.
//! Every byte is assumed hostile: decoding never panics, every length is bounded by the
//! datagram it came in, and every failure is a [`WireError`] that says what was wrong.

use crate::cbor::{Cursor, MAX_NESTING, starts_array};
use ciborium::value::Value;
use ciborium_ll::Header as Head;
use std::net::SocketAddr;
use thiserror::Error;

/// The version of the wire format this node speaks. (Version 1 sent every call as a frame
/// of its own and refused frames of more than one argument array: version 2 sends runs.)
pub const VERSION: u64 = 2;

/// The CBOR "self-described CBOR" tag (RFC 8949 §3.4.6), used as the datagram's magic.
pub const MAGIC_TAG: u64 = 55799;

/// The largest UDP payload over IPv4.
pub const MAX_DATAGRAM: usize = 65_507;

/// The largest datagram for a path whose MTU is 1500 bytes (Ethernet): 1500 less the IPv4
/// and UDP headers, so that a datagram is never fragmented.
pub const ETHERNET_DATAGRAM: usize = 1472;

/// The kind number of a call frame.
const KIND_CALL: u64 = 0;
/// The kind number of an announcement.
const KIND_ANNOUNCE: u64 = 1;
/// The kind number of a query ("announce yourselves now").
const KIND_QUERY: u64 = 2;
/// The kind number of a goodbye.
const KIND_GOODBYE: u64 = 3;

/// The longest node name an announcement may carry.
pub const MAX_NAME: usize = 255;

/// Why a datagram or frame could not be read or written.
#[derive(Debug, Error, PartialEq)]
pub enum WireError {
    /// The bytes are not well-formed CBOR, or end in the middle of an item.
    #[error("malformed CBOR: {0}")]
    Malformed(String),
    /// The datagram does not start with the dhost header.
    #[error("not a dhost datagram (no header tag {MAGIC_TAG})")]
    NoMagic,
    /// The sender speaks a wire version this node does not.
    #[error("wire version {0} is not supported (this node speaks {VERSION})")]
    Version(u64),
    /// An item has the wrong shape.
    #[error("bad {what}: {why}")]
    Shape {
        /// Which item: "header", "frame", "call".
        what: &'static str,
        /// What is wrong with it.
        why: String,
    },
    /// A frame is too large to travel in one datagram.
    #[error("a frame of {size} bytes does not fit in a datagram of {max} bytes")]
    TooLarge {
        /// The encoded size of the frame with the header.
        size: usize,
        /// The largest datagram allowed.
        max: usize,
    },
}

/// The header that opens every datagram.
#[derive(Debug, Clone, PartialEq)]
pub struct Header {
    /// The wire version.
    pub version: u64,
    /// The sending node's id: random, fresh for every run of a node.
    pub sender: u64,
    /// Reserved for an authentication tag over the frames; `None` today.
    pub auth: Option<Vec<u8>>,
}

/// One frame of a datagram.
#[derive(Debug, Clone, PartialEq)]
pub enum Frame {
    /// Run `function` with `args` on every node that serves it.
    Call(Call),
    /// The sender is up: its name and what it serves.
    Announce(Announce),
    /// The sender asks every node to announce itself now.
    Query {
        /// The sender's sequence number.
        seq: u64,
    },
    /// The sender is stopping.
    Goodbye {
        /// The sender's sequence number.
        seq: u64,
    },
    /// A frame of a kind this node does not know (sent by a newer node); skipped.
    Unknown {
        /// The kind number.
        kind: u64,
        /// The sender's sequence number.
        seq: u64,
    },
}

impl Frame {
    /// The sender's sequence number of this frame.
    pub fn seq(&self) -> u64 {
        match self {
            Frame::Call(call) => call.seq,
            Frame::Announce(announce) => announce.seq,
            Frame::Query { seq } | Frame::Goodbye { seq } | Frame::Unknown { seq, .. } => *seq,
        }
    }
}

/// A run of calls to every node that serves `function`: one or more calls with consecutive
/// sequence numbers from `seq`.
#[derive(Debug, Clone, PartialEq)]
pub struct Call {
    /// The sender's sequence number of the first call (one counter per sender, over all
    /// frames).
    pub seq: u64,
    /// The function id, `namespace:package/interface#function`.
    pub function: String,
    /// The calls' arguments: one CBOR array per call, one after the other, each checked to
    /// be well-formed (see `docs/wire.md` for what the values mean).
    args: Vec<u8>,
    /// Where each call's array ends in `args`.
    ends: Vec<u32>,
}

impl Call {
    /// A run of one call, with its arguments as CBOR values.
    #[cfg(test)]
    pub fn single(seq: u64, function: &str, args: &[Value]) -> Self {
        let mut bytes = Vec::new();
        encode_item(&Value::Array(args.to_vec()), &mut bytes);
        Call {
            seq,
            function: function.to_string(),
            ends: vec![bytes.len() as u32],
            args: bytes,
        }
    }

    /// How many calls the run holds (at least one).
    pub fn count(&self) -> usize {
        self.ends.len()
    }

    /// Each call's argument array, as CBOR bytes, in order.
    pub fn arguments(&self) -> impl Iterator<Item = &[u8]> {
        let mut start = 0;
        self.ends.iter().map(move |&end| {
            let args = &self.args[start..end as usize];
            start = end as usize;
            args
        })
    }
}

/// A node's announcement of itself.
#[derive(Debug, Clone, PartialEq)]
pub struct Announce {
    /// The sender's sequence number.
    pub seq: u64,
    /// The node's name.
    pub name: String,
    /// How long the node has been up, in milliseconds.
    pub uptime_ms: u64,
    /// The function ids the node's guests serve.
    pub functions: Vec<String>,
    /// Where the node takes calls with replies (its TCP port), if it does.
    pub tcp: Option<SocketAddr>,
    /// The peers this node holds TCP connections to, by name, with how many.
    pub links: Vec<(String, u64)>,
}

/// A decoded datagram: its header and frames.
#[derive(Debug, Clone, PartialEq)]
pub struct Datagram {
    /// The header.
    pub header: Header,
    /// The frames, in the order they were sent.
    pub frames: Vec<Frame>,
}

/// Decodes one datagram. Any malformed item rejects the whole datagram.
pub fn decode_datagram(mut bytes: &[u8]) -> Result<Datagram, WireError> {
    let header = read_header(&mut bytes)?;
    let frames = decode_frames(bytes)?;
    Ok(Datagram { header, frames })
}

/// Reads the header that opens a datagram, leaving `bytes` at its first frame (so that a
/// node can skip its own datagrams without decoding their frames).
pub fn read_header(bytes: &mut &[u8]) -> Result<Header, WireError> {
    decode_header(next_item(bytes)?)
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
        let mut whole = start;
        let item = whole.item()?;
        *cursor = whole;
        return decode_frame(next_item(&mut &item[..])?);
    }
    if len.is_some_and(|n| n < 4) {
        return Err(shape("fewer than 4 fields"));
    }
    let seq = cursor
        .uint()
        .map_err(|_| shape_of("frame", "no sequence number"))?;
    let function = cursor
        .text()
        .map_err(|_| shape("no function id"))?
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
    Ok(Frame::Call(Call {
        seq,
        function,
        args,
        ends,
    }))
}

fn shape_of(what: &'static str, why: &str) -> WireError {
    WireError::Shape {
        what,
        why: why.to_string(),
    }
}

pub(crate) fn next_item(bytes: &mut &[u8]) -> Result<Value, WireError> {
    ciborium::de::from_reader_with_recursion_limit(bytes, MAX_NESTING)
        .map_err(|e| WireError::Malformed(describe_cbor_error(e)))
}

fn describe_cbor_error<E: std::fmt::Debug>(error: ciborium::de::Error<E>) -> String {
    match error {
        ciborium::de::Error::Io(_) => "truncated".to_string(),
        ciborium::de::Error::Syntax(offset) => format!("syntax error at byte {offset}"),
        ciborium::de::Error::Semantic(_, why) => why,
        ciborium::de::Error::RecursionLimitExceeded => {
            format!("nested deeper than {MAX_NESTING} levels")
        }
    }
}

fn decode_header(item: Value) -> Result<Header, WireError> {
    let Value::Tag(MAGIC_TAG, inner) = item else {
        return Err(WireError::NoMagic);
    };
    let shape = |why: &str| WireError::Shape {
        what: "header",
        why: why.to_string(),
    };
    let (version, mut fields) = open_array(*inner, "header", "version")?;
    if version != VERSION {
        return Err(WireError::Version(version));
    }
    let sender = fields
        .next()
        .and_then(|v| as_u64(&v))
        .ok_or_else(|| shape("no sender id"))?;
    let auth = match fields.next() {
        None | Some(Value::Null) => None,
        Some(Value::Bytes(tag)) => Some(tag),
        Some(_) => return Err(shape("auth tag is neither bytes nor null")),
    };
    Ok(Header {
        version,
        sender,
        auth,
    })
}

/// Decodes a frame of any kind but a call.
fn decode_frame(item: Value) -> Result<Frame, WireError> {
    let (kind, mut fields) = kind_and_fields(item)?;
    let seq = fields
        .next()
        .and_then(|v| as_u64(&v))
        .ok_or_else(|| shape_of("frame", "no sequence number"))?;
    match kind {
        KIND_ANNOUNCE => decode_announce(seq, fields),
        KIND_QUERY => Ok(Frame::Query { seq }),
        KIND_GOODBYE => Ok(Frame::Goodbye { seq }),
        _ => Ok(Frame::Unknown { kind, seq }),
    }
}

fn decode_announce(seq: u64, mut fields: impl Iterator<Item = Value>) -> Result<Frame, WireError> {
    let shape = |why: &str| WireError::Shape {
        what: "announce",
        why: why.to_string(),
    };
    let Some(Value::Text(name)) = fields.next() else {
        return Err(shape("no name"));
    };
    if name.is_empty() || name.len() > MAX_NAME || name.chars().any(char::is_control) {
        return Err(shape("the name is empty, too long or not printable"));
    }
    let uptime_ms = fields
        .next()
        .and_then(|v| as_u64(&v))
        .ok_or_else(|| shape("no uptime"))?;
    let Some(Value::Array(items)) = fields.next() else {
        return Err(shape("no function list"));
    };
    let functions = items
        .into_iter()
        .map(|f| match f {
            Value::Text(f) => Ok(f),
            _ => Err(shape("a function id is not text")),
        })
        .collect::<Result<_, _>>()?;
    let tcp = match fields.next() {
        None | Some(Value::Null) => None,
        Some(Value::Text(addr)) => Some(
            addr.parse()
                .map_err(|_| shape("the TCP address is not an address and port"))?,
        ),
        Some(_) => return Err(shape("the TCP address is not text")),
    };
    let links = match fields.next() {
        None => Vec::new(),
        Some(Value::Array(items)) => items
            .into_iter()
            .map(|item| match item {
                Value::Array(pair) => match <[Value; 2]>::try_from(pair) {
                    Ok([Value::Text(name), count]) => as_u64(&count)
                        .map(|n| (name, n))
                        .ok_or_else(|| shape("a link count is not a number")),
                    _ => Err(shape("a link is not [name, count]")),
                },
                _ => Err(shape("a link is not [name, count]")),
            })
            .collect::<Result<_, _>>()?,
        Some(_) => return Err(shape("the links are not an array")),
    };
    // Later versions may add fields: ignore them.
    Ok(Frame::Announce(Announce {
        seq,
        name,
        uptime_ms,
        functions,
        tcp,
        links,
    }))
}

/// Encodes an announcement onto the end of `out`.
pub fn encode_announce(announce: &Announce, out: &mut Vec<u8>) {
    let text = |s: &str| Value::Text(s.to_string());
    let frame = Value::Array(vec![
        Value::Integer(KIND_ANNOUNCE.into()),
        Value::Integer(announce.seq.into()),
        text(&announce.name),
        Value::Integer(announce.uptime_ms.into()),
        Value::Array(announce.functions.iter().map(|f| text(f)).collect()),
        announce
            .tcp
            .map_or(Value::Null, |addr| Value::Text(addr.to_string())),
        Value::Array(
            announce
                .links
                .iter()
                .map(|(name, n)| Value::Array(vec![text(name), Value::Integer((*n).into())]))
                .collect(),
        ),
    ]);
    encode_item(&frame, out);
}

/// Encodes a query onto the end of `out`.
pub fn encode_query(seq: u64, out: &mut Vec<u8>) {
    let frame = Value::Array(vec![
        Value::Integer(KIND_QUERY.into()),
        Value::Integer(seq.into()),
    ]);
    encode_item(&frame, out);
}

/// Encodes a goodbye onto the end of `out`.
pub fn encode_goodbye(seq: u64, out: &mut Vec<u8>) {
    let frame = Value::Array(vec![
        Value::Integer(KIND_GOODBYE.into()),
        Value::Integer(seq.into()),
    ]);
    encode_item(&frame, out);
}

/// Opens a frame, an array whose first item is its kind: returns the kind and the rest.
pub(crate) fn kind_and_fields(item: Value) -> Result<(u64, std::vec::IntoIter<Value>), WireError> {
    open_array(item, "frame", "kind")
}

/// Opens `what` (a header or a frame), an array whose first item is the unsigned number
/// `first`: returns that number and the rest.
fn open_array(
    item: Value,
    what: &'static str,
    first: &str,
) -> Result<(u64, std::vec::IntoIter<Value>), WireError> {
    let shape = |why: String| WireError::Shape { what, why };
    let Value::Array(fields) = item else {
        return Err(shape("not an array".to_string()));
    };
    let mut fields = fields.into_iter();
    let number = fields
        .next()
        .and_then(|v| as_u64(&v))
        .ok_or_else(|| shape(format!("no {first}")))?;
    Ok((number, fields))
}

pub(crate) fn as_u64(value: &Value) -> Option<u64> {
    match value {
        Value::Integer(i) => u64::try_from(*i).ok(),
        _ => None,
    }
}

/// Encodes one CBOR item onto the end of `out`.
pub(crate) fn encode_item(value: &Value, out: &mut Vec<u8>) {
    // Writing CBOR to a Vec cannot fail: the only errors are the writer's.
    ciborium::ser::into_writer(value, out).expect("CBOR encoding into a Vec does not fail");
}

/// Encodes the header of a datagram sent by `sender`.
pub fn encode_header(sender: u64, out: &mut Vec<u8>) {
    let header = Value::Tag(
        MAGIC_TAG,
        Box::new(Value::Array(vec![
            Value::Integer(VERSION.into()),
            Value::Integer(sender.into()),
            Value::Null,
        ])),
    );
    encode_item(&header, out);
}

/// How many bytes a call frame adds to its function id and arguments at most: the array
/// head, the kind, the longest sequence number, the id's text head and the break.
pub const CALL_FRAME_OVERHEAD: usize = 1 + 1 + 9 + 9 + 1;

/// The encoded size of a call frame of one call to `function` with `args_len` bytes of
/// arguments, at most.
pub fn call_frame_len(function: &str, args_len: usize) -> usize {
    CALL_FRAME_OVERHEAD + function.len() + args_len
}

/// Encodes a call frame of one call onto the end of `out`.
pub fn encode_call(seq: u64, function: &str, args: &[Value], out: &mut Vec<u8>) {
    let mut encoded = Vec::new();
    encode_item(&Value::Array(args.to_vec()), &mut encoded);
    encode_call_run(seq, function, &encoded, out);
}

/// The CBOR break that closes an indefinite-length array.
const BREAK: u8 = 0xff;

/// Encodes a run of one call, `[_ 0, seq, function, args]` with `args` one CBOR array,
/// onto the end of `out`; the run stays open to more calls (see [`Batcher`]).
fn encode_call_run(seq: u64, function: &str, args: &[u8], out: &mut Vec<u8>) {
    let mut encoder = ciborium_ll::Encoder::from(&mut *out);
    // Writing to a Vec cannot fail.
    let _ = encoder.push(Head::Array(None));
    let _ = encoder.push(Head::Positive(KIND_CALL));
    let _ = encoder.push(Head::Positive(seq));
    let _ = encoder.text(function, None);
    out.extend_from_slice(args);
    out.push(BREAK);
}

/// Packs encoded frames into datagrams of at most `max` bytes, each opening with the
/// sender's header. Frames keep their order; a frame never spans two datagrams. Calls to
/// the function of the datagram's last frame, with the next sequence number, join its run.
#[derive(Debug)]
pub struct Batcher {
    header: Vec<u8>,
    max: usize,
    current: Vec<u8>,
    full: Vec<Vec<u8>>,
    /// The function of the run that ends the current datagram, and the run's next
    /// sequence number.
    run: Option<(String, u64)>,
}

impl Batcher {
    /// A batcher for datagrams of at most `max` bytes from `sender`.
    pub fn new(sender: u64, max: usize) -> Self {
        let mut header = Vec::new();
        encode_header(sender, &mut header);
        Batcher {
            current: header.clone(),
            header,
            max,
            full: Vec::new(),
            run: None,
        }
    }

    /// The largest frame that fits in one datagram.
    pub fn max_frame(&self) -> usize {
        self.max - self.header.len()
    }

    /// Appends one encoded frame, starting a new datagram when the current one is full.
    pub fn push(&mut self, frame: &[u8]) -> Result<(), WireError> {
        if frame.len() > self.max_frame() {
            return Err(WireError::TooLarge {
                size: frame.len() + self.header.len(),
                max: self.max,
            });
        }
        if self.current.len() + frame.len() > self.max {
            self.next_datagram();
        }
        self.current.extend_from_slice(frame);
        self.run = None;
        Ok(())
    }

    /// Appends call `seq` to `function` with `args`, one CBOR array: to the open run if it
    /// continues it, else as a run of its own.
    pub fn push_call(&mut self, seq: u64, function: &str, args: &[u8]) -> Result<(), WireError> {
        let continues = self
            .run
            .as_ref()
            .is_some_and(|(f, next)| *next == seq && f == function);
        if continues && self.extend_run(args) {
            return Ok(());
        }
        let size = call_frame_len(function, args.len());
        if size > self.max_frame() {
            return Err(WireError::TooLarge {
                size: size + self.header.len(),
                max: self.max,
            });
        }
        if self.current.len() + size > self.max {
            self.next_datagram();
        }
        encode_call_run(seq, function, args, &mut self.current);
        match &mut self.run {
            Some((f, next)) => {
                f.clear();
                f.push_str(function);
                *next = seq.wrapping_add(1);
            }
            None => self.run = Some((function.to_string(), seq.wrapping_add(1))),
        }
        Ok(())
    }

    /// Appends calls `seq`, `seq + 1`, ... to `function`, one per argument array of
    /// `calls`, as [`Batcher::push_call`] would one by one, but without comparing function
    /// ids after the first. A call too large for any datagram is handed to `refused`.
    pub fn push_calls<'a>(
        &mut self,
        seq: u64,
        function: &str,
        calls: impl IntoIterator<Item = &'a [u8]>,
        mut refused: impl FnMut(WireError),
    ) {
        let mut in_run = false;
        let seqs = std::iter::successors(Some(seq), |s| Some(s.wrapping_add(1)));
        for (seq, args) in seqs.zip(calls) {
            if in_run && self.extend_run(args) {
                continue;
            }
            in_run = match self.push_call(seq, function, args) {
                Ok(()) => true,
                Err(e) => {
                    refused(e);
                    false
                }
            };
        }
    }

    /// Appends one call's arguments to the open run, if the datagram has room.
    fn extend_run(&mut self, args: &[u8]) -> bool {
        if self.current.len() + args.len() > self.max {
            return false;
        }
        self.current.pop(); // the break
        self.current.extend_from_slice(args);
        self.current.push(BREAK);
        if let Some((_, next)) = &mut self.run {
            *next = next.wrapping_add(1);
        }
        true
    }

    fn next_datagram(&mut self) {
        let next = self.header.clone();
        self.full.push(std::mem::replace(&mut self.current, next));
        self.run = None;
    }

    /// Whether no frame is waiting.
    pub fn is_empty(&self) -> bool {
        self.full.is_empty() && self.current.len() == self.header.len()
    }

    /// Takes every datagram packed so far, the partly filled one included.
    pub fn take(&mut self) -> Vec<Vec<u8>> {
        if self.current.len() > self.header.len() {
            self.next_datagram();
        }
        self.run = None;
        std::mem::take(&mut self.full)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn call(seq: u64, function: &str, args: Vec<Value>) -> Vec<u8> {
        let mut out = Vec::new();
        encode_call(seq, function, &args, &mut out);
        out
    }

    fn datagram(sender: u64, frames: &[Vec<u8>]) -> Vec<u8> {
        let mut out = Vec::new();
        encode_header(sender, &mut out);
        for f in frames {
            out.extend_from_slice(f);
        }
        out
    }

    fn raw(value: &Value) -> Vec<u8> {
        let mut out = Vec::new();
        encode_item(value, &mut out);
        out
    }

    #[test]
    fn round_trip() {
        let args = vec![
            Value::Text("ann".into()),
            Value::Text("x".repeat(10_000)),
            Value::Bytes(vec![0, 1, 2]),
        ];
        let bytes = datagram(
            42,
            &[
                call(7, "dhost:chat/chat#message", args.clone()),
                call(8, "a:b/c#d", vec![]),
            ],
        );
        let d = decode_datagram(&bytes).unwrap();
        assert_eq!(
            d.header,
            Header {
                version: VERSION,
                sender: 42,
                auth: None
            }
        );
        assert_eq!(
            d.frames,
            vec![
                Frame::Call(Call::single(7, "dhost:chat/chat#message", &args)),
                Frame::Call(Call::single(8, "a:b/c#d", &[])),
            ]
        );
    }

    fn args(values: &[Value]) -> Vec<u8> {
        raw(&Value::Array(values.to_vec()))
    }

    #[test]
    fn consecutive_calls_to_one_function_travel_as_one_run() {
        let mut batcher = Batcher::new(1, MAX_DATAGRAM);
        for v in 0..1000u64 {
            batcher
                .push_call(v + 10, "a:b/c#set", &args(&[v.into()]))
                .unwrap();
        }
        batcher.push_call(2000, "a:b/c#set", &args(&[])).unwrap(); // a gap: a new run
        batcher.push_call(2001, "a:b/c#other", &args(&[])).unwrap();
        let mut f = Vec::new();
        encode_query(2002, &mut f);
        batcher.push(&f).unwrap();
        batcher.push_call(2003, "a:b/c#other", &args(&[])).unwrap();
        let datagrams = batcher.take();
        assert_eq!(datagrams.len(), 1);
        // 1000 calls of a small argument cost little more than their arguments.
        assert!(
            datagrams[0].len() < 1000 * 4 + 200,
            "{}",
            datagrams[0].len()
        );
        let frames = decode_datagram(&datagrams[0]).unwrap().frames;
        let Frame::Call(run) = &frames[0] else {
            panic!("{frames:?}")
        };
        assert_eq!(
            (run.seq, run.count(), run.function.as_str()),
            (10, 1000, "a:b/c#set")
        );
        let decoded: Vec<Value> = run
            .arguments()
            .map(|a| ciborium::de::from_reader(a).unwrap())
            .collect();
        let expected: Vec<Value> = (0..1000u64).map(|v| Value::Array(vec![v.into()])).collect();
        assert_eq!(decoded, expected);
        let seqs: Vec<(u64, usize)> = frames
            .iter()
            .map(|f| match f {
                Frame::Call(c) => (c.seq, c.count()),
                other => (other.seq(), 0),
            })
            .collect();
        assert_eq!(
            seqs,
            [(10, 1000), (2000, 1), (2001, 1), (2002, 0), (2003, 1)]
        );
    }

    #[test]
    fn pushing_calls_together_packs_as_pushing_them_one_by_one() {
        let calls: Vec<Vec<u8>> = (0..5000u64).map(|v| args(&[v.into()])).collect();
        let mut one_by_one = Batcher::new(1, 4000);
        let mut together = Batcher::new(1, 4000);
        one_by_one.push_call(1, "a:b/c#set", &calls[0]).unwrap();
        together.push_call(1, "a:b/c#set", &calls[0]).unwrap();
        for (seq, a) in (2..).zip(&calls[1..]) {
            one_by_one.push_call(seq, "a:b/c#set", a).unwrap();
        }
        together.push_calls(2, "a:b/c#set", calls[1..].iter().map(Vec::as_slice), |e| {
            panic!("{e}")
        });
        let big = vec![0x80; 5000];
        let mut refused = 0;
        together.push_calls(5001, "a:b/c#set", [&big[..], &calls[0]], |_| refused += 1);
        one_by_one.push_call(5002, "a:b/c#set", &calls[0]).unwrap();
        assert_eq!(refused, 1);
        assert_eq!(together.take(), one_by_one.take());
    }

    #[test]
    fn a_run_is_cut_where_the_datagram_is_full() {
        let mut batcher = Batcher::new(1, 300);
        for v in 0..200u64 {
            batcher
                .push_call(v, "a:b/c#set", &args(&[v.into()]))
                .unwrap();
        }
        let mut next = 0;
        for d in batcher.take() {
            assert!(d.len() <= 300);
            for frame in decode_datagram(&d).unwrap().frames {
                let Frame::Call(run) = frame else { panic!() };
                assert_eq!(run.seq, next);
                next += run.count() as u64;
            }
        }
        assert_eq!(next, 200);
    }

    #[test]
    fn definite_and_indefinite_call_frames_decode_alike() {
        let definite = raw(&Value::Array(vec![
            0.into(),
            5.into(),
            "a:b/c#d".into(),
            Value::Array(vec![1.into()]),
            Value::Array(vec![2.into()]),
        ]));
        let mut indefinite = Vec::new();
        encode_call(5, "a:b/c#d", &[1.into()], &mut indefinite);
        indefinite.pop();
        indefinite.extend(args(&[2.into()]));
        indefinite.push(BREAK);
        let a = decode_datagram(&datagram(1, &[definite])).unwrap();
        let b = decode_datagram(&datagram(1, &[indefinite])).unwrap();
        assert_eq!(a, b);
        let Frame::Call(run) = &a.frames[0] else {
            panic!()
        };
        assert_eq!(run.count(), 2);
    }

    #[test]
    fn header_only_is_an_empty_datagram() {
        let d = decode_datagram(&datagram(1, &[])).unwrap();
        assert!(d.frames.is_empty());
    }

    #[test]
    fn empty_and_garbage_are_rejected() {
        assert_eq!(
            decode_datagram(&[]),
            Err(WireError::Malformed("truncated".into()))
        );
        assert!(matches!(
            decode_datagram(&[0xff, 0xff, 0xff]),
            Err(WireError::Malformed(_))
        ));
        assert_eq!(decode_datagram(b"hello world"), Err(WireError::NoMagic));
    }

    #[test]
    fn every_truncation_is_rejected() {
        let header_len = datagram(9, &[]).len();
        let bytes = datagram(9, &[call(1, "a:b/c#d", vec![Value::Text("hi".into())])]);
        // A header alone is a valid (empty) datagram; every other prefix is cut mid-item.
        for len in (0..bytes.len()).filter(|&len| len != header_len) {
            assert!(
                decode_datagram(&bytes[..len]).is_err(),
                "prefix {len} accepted"
            );
        }
    }

    #[test]
    fn wrong_version_is_rejected() {
        let header = Value::Tag(
            MAGIC_TAG,
            Box::new(Value::Array(vec![3.into(), 1.into(), Value::Null])),
        );
        assert_eq!(decode_datagram(&raw(&header)), Err(WireError::Version(3)));
    }

    #[test]
    fn bad_headers_are_rejected() {
        for inner in [
            Value::Text("x".into()),
            Value::Array(vec![]),
            Value::Array(vec![VERSION.into()]),
            Value::Array(vec![VERSION.into(), (-1).into()]),
            Value::Array(vec![VERSION.into(), 5.into(), 3.into()]),
        ] {
            let bytes = raw(&Value::Tag(MAGIC_TAG, Box::new(inner.clone())));
            assert!(
                matches!(decode_datagram(&bytes), Err(WireError::Shape { .. })),
                "{inner:?}"
            );
        }
    }

    #[test]
    fn bad_frames_are_rejected() {
        for frame in [
            Value::Null,
            Value::Array(vec![]),
            Value::Array(vec![0.into()]),
            Value::Array(vec![0.into(), 1.into()]),
            Value::Array(vec![0.into(), 1.into(), "f".into()]),
            Value::Array(vec![0.into(), 1.into(), 5.into(), Value::Array(vec![])]),
            Value::Array(vec![0.into(), 1.into(), "f".into(), "not args".into()]),
            Value::Array(vec![
                0.into(),
                1.into(),
                "f".into(),
                Value::Array(vec![]),
                1.into(),
            ]),
        ] {
            let bytes = datagram(1, &[raw(&frame)]);
            assert!(
                matches!(decode_datagram(&bytes), Err(WireError::Shape { .. })),
                "{frame:?}"
            );
        }
    }

    #[test]
    fn membership_frames_round_trip() {
        let mut frames = Vec::new();
        let functions = vec!["a:b/c#d".to_string(), "a:b/c#e".to_string()];
        let announce = Announce {
            seq: 1,
            name: "node-a".into(),
            uptime_ms: 1500,
            functions,
            tcp: Some("127.0.0.1:4100".parse().unwrap()),
            links: vec![("node-b".into(), 2)],
        };
        let mut f = Vec::new();
        encode_announce(&announce, &mut f);
        frames.push(f);
        let mut f = Vec::new();
        encode_query(2, &mut f);
        frames.push(f);
        let mut f = Vec::new();
        encode_goodbye(3, &mut f);
        frames.push(f);
        let d = decode_datagram(&datagram(8, &frames)).unwrap();
        assert_eq!(
            d.frames,
            vec![
                Frame::Announce(announce),
                Frame::Query { seq: 2 },
                Frame::Goodbye { seq: 3 },
            ]
        );
    }

    #[test]
    fn bad_announcements_are_rejected() {
        for fields in [
            vec![1.into(), 1.into()],
            vec![
                1.into(),
                1.into(),
                "".into(),
                0.into(),
                Value::Array(vec![]),
            ],
            vec![
                1.into(),
                1.into(),
                "x".repeat(300).into(),
                0.into(),
                Value::Array(vec![]),
            ],
            vec![
                1.into(),
                1.into(),
                "a\nb".into(),
                0.into(),
                Value::Array(vec![]),
            ],
            vec![
                1.into(),
                1.into(),
                "a".into(),
                Value::Null,
                Value::Array(vec![]),
            ],
            vec![
                1.into(),
                1.into(),
                "a".into(),
                0.into(),
                Value::Array(vec![5.into()]),
            ],
            vec![
                1.into(),
                1.into(),
                "a".into(),
                0.into(),
                Value::Array(vec![]),
                "not an address".into(),
            ],
            vec![
                1.into(),
                1.into(),
                "a".into(),
                0.into(),
                Value::Array(vec![]),
                Value::Null,
                Value::Array(vec![Value::Array(vec!["b".into()])]),
            ],
        ] {
            let bytes = datagram(1, &[raw(&Value::Array(fields.clone()))]);
            assert!(
                matches!(
                    decode_datagram(&bytes),
                    Err(WireError::Shape {
                        what: "announce",
                        ..
                    })
                ),
                "{fields:?}"
            );
        }
    }

    #[test]
    fn unknown_kinds_are_skipped_not_rejected() {
        let frame = Value::Array(vec![9.into(), 3.into(), "future".into()]);
        let d = decode_datagram(&datagram(1, &[raw(&frame)])).unwrap();
        assert_eq!(d.frames, vec![Frame::Unknown { kind: 9, seq: 3 }]);
    }

    #[test]
    fn deep_nesting_is_rejected_without_overflowing_the_stack() {
        let mut bytes = datagram(1, &[]);
        bytes.extend(std::iter::repeat_n(0x81, 100_000)); // [[[[...
        bytes.push(0x00);
        assert!(matches!(
            decode_datagram(&bytes),
            Err(WireError::Malformed(_))
        ));
    }

    #[test]
    fn huge_declared_lengths_are_rejected() {
        let mut bytes = datagram(1, &[]);
        // An array claiming 2^63 items, then nothing.
        bytes.extend([0x9b, 0x80, 0, 0, 0, 0, 0, 0, 0]);
        assert!(decode_datagram(&bytes).is_err());
        let mut bytes = datagram(1, &[]);
        // A text string claiming 4 GiB.
        bytes.extend([0x7a, 0xff, 0xff, 0xff, 0xff, b'a']);
        assert!(decode_datagram(&bytes).is_err());
    }

    #[test]
    fn mutated_datagrams_never_panic() {
        let valid = datagram(
            3,
            &[
                call(
                    1,
                    "dhost:chat/chat#message",
                    vec![Value::Text("ann".into()), Value::Text("hi".into())],
                ),
                call(
                    2,
                    "a:b/c#d",
                    vec![Value::Array(vec![Value::Map(vec![(
                        Value::Null,
                        Value::Bytes(vec![1]),
                    )])])],
                ),
            ],
        );
        // And a datagram of runs, as a node's batcher packs them.
        let mut batcher = Batcher::new(3, MAX_DATAGRAM);
        for v in 0..50u64 {
            let f = if v % 20 < 15 {
                "a:b/c#set"
            } else {
                "a:b/c#other"
            };
            batcher
                .push_call(v, f, &args(&[v.into(), "x".into()]))
                .unwrap();
        }
        let runs = batcher.take().remove(0);
        // A small xorshift generator: the same mutations every run.
        let mut state = 0x2545_f491_4f6c_dd1d_u64;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        for i in 0..100_000 {
            let mut bytes = if i % 2 == 0 {
                valid.clone()
            } else {
                runs.clone()
            };
            for _ in 0..(next() % 4 + 1) {
                let at = (next() as usize) % bytes.len();
                match next() % 4 {
                    0 => bytes[at] ^= 1 << (next() % 8),
                    1 => bytes[at] = next() as u8,
                    2 => bytes.truncate(at.max(1)),
                    _ => bytes.insert(at, next() as u8),
                }
            }
            let _ = decode_datagram(&bytes);
        }
        for _ in 0..20_000 {
            let len = (next() % 64) as usize;
            let bytes: Vec<u8> = (0..len).map(|_| next() as u8).collect();
            let _ = decode_datagram(&bytes);
        }
    }

    #[test]
    fn batcher_packs_in_order_and_splits_at_the_limit() {
        let mut batcher = Batcher::new(5, 200);
        assert!(batcher.is_empty());
        let frames: Vec<Vec<u8>> = (0..20)
            .map(|i| call(i, "a:b/c#d", vec![Value::Text("x".repeat(20))]))
            .collect();
        for f in &frames {
            batcher.push(f).unwrap();
        }
        let datagrams = batcher.take();
        assert!(datagrams.len() > 1);
        assert!(batcher.is_empty());
        let mut seqs = Vec::new();
        for d in &datagrams {
            assert!(d.len() <= 200);
            let decoded = decode_datagram(d).unwrap();
            assert_eq!(decoded.header.sender, 5);
            seqs.extend(decoded.frames.iter().map(Frame::seq));
        }
        assert_eq!(seqs, (0..20).collect::<Vec<_>>());
    }

    #[test]
    fn batcher_refuses_a_frame_larger_than_a_datagram() {
        let mut batcher = Batcher::new(5, 100);
        let big = call(1, "a:b/c#d", vec![Value::Text("x".repeat(100))]);
        assert!(matches!(
            batcher.push(&big),
            Err(WireError::TooLarge { max: 100, .. })
        ));
        assert!(batcher.is_empty());
    }
}
