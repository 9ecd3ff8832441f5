//! The wire format of the multicast group: datagrams, the frames they carry, and the
//! batching of frames into datagrams.
//!
//! A datagram is a CBOR sequence (RFC 8742): a header, then any number of frames.
//!
//! ```text
//! datagram = header frame*
//! header   = 55799([4, sender, seq, packet, sent-at, auth])  ; the tag 55799 is the magic
//! frame    = [kind, ...]                         ; kind 0 = calls: [0, first, function-id, [arg*]+]
//! ```
//!
//! A datagram whose header has a sequence number `seq` is *sequenced*: it is the `seq`-th
//! of its sender's stream, which receivers deliver in order, once, repairing gaps
//! ([`crate::stream`]). Calls travel only in sequenced datagrams. A datagram whose `seq` is
//! null is a *control* datagram (announcements, queries, goodbyes, stream positions and
//! statuses), handled at once. Every datagram, resends included, has a *packet* number of
//! its own and an `auth` field: what [`crate::auth`] checks before anything else is read.
//!
//! A call frame carries one or more argument arrays: a *run* of calls to one function with
//! consecutive call numbers, so that a burst of calls pays for the function id once.
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
// (The frame kinds are numbered in `frame_kind`, with the TCP port's.)
use crate::frame_kind::{
    ANNOUNCE as KIND_ANNOUNCE, CALL as KIND_CALL, GOODBYE as KIND_GOODBYE,
    POSITION as KIND_POSITION, QUERY as KIND_QUERY, STATUS as KIND_STATUS,
};

/// The version of the wire format this node speaks. (Version 1 sent every call as a frame
/// of its own; version 2 sent runs of calls, unsequenced; version 3 numbered datagrams in
/// one stream per sender, repaired and flow-controlled; version 4 authenticates every
/// datagram with the group's key.)
pub const VERSION: u64 = 4;

/// The CBOR "self-described CBOR" tag (RFC 8949 §3.4.6), used as the datagram's magic.
pub const MAGIC_TAG: u64 = 55799;

/// The largest UDP payload over IPv4.
pub const MAX_DATAGRAM: usize = 65_507;

/// The largest datagram for a path whose MTU is 1500 bytes (Ethernet): 1500 less the IPv4
/// and UDP headers, so that a datagram is never fragmented.
pub const ETHERNET_DATAGRAM: usize = 1472;

/// The longest node name an announcement may carry.
pub const MAX_NAME: usize = 255;

/// Whether `name` may name a node: 1 to [`MAX_NAME`] bytes of printable text (nothing that
/// could drive a terminal or forge a log line: [`crate::printable::is_printable`]).
pub fn is_node_name(name: &str) -> bool {
    !name.is_empty() && name.len() <= MAX_NAME && crate::printable::is_printable(name)
}

/// Datagram and call numbers are below this (2^63): a stream never gets near it, and a
/// receiver counting past a number from the network cannot overflow.
pub const NUMBERS_BELOW: u64 = 1 << 63;

/// The most missing ranges one status may ask for.
pub const MAX_MISSING_RANGES: usize = 32;

/// The most peers whose streams an announcement describes.
pub const MAX_STREAMS_ANNOUNCED: usize = 64;

/// The most source addresses whose refused datagrams an announcement describes.
pub const MAX_REFUSED_ANNOUNCED: usize = 16;

/// The most function ids one announcement lists (an announcement with more is refused).
pub const MAX_FUNCTIONS_ANNOUNCED: usize = 1024;

/// The most peers whose connection counts an announcement lists.
pub const MAX_LINKS_ANNOUNCED: usize = 64;

/// The most CBOR items (every value, nested ones included) a frame other than a run of
/// calls may hold: an announcement with every list at its cap holds about 3,000.
pub const MAX_CONTROL_ITEMS: usize = 8192;

/// The longest function id an announcement may carry.
pub const MAX_FUNCTION_ID: usize = 512;

/// Whether `id` can be a function id in an announcement: 1 to [`MAX_FUNCTION_ID`] bytes,
/// no control characters (a WIT function's id, or a native plugin's function name).
pub fn is_function_id(id: &str) -> bool {
    !id.is_empty() && id.len() <= MAX_FUNCTION_ID && crate::printable::is_printable(id)
}

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
    /// The sending node's id: random, fresh for every run (incarnation) of a node.
    pub sender: u64,
    /// The datagram's number in its sender's stream (from 1), or `None` for a control
    /// datagram.
    pub seq: Option<u64>,
    /// The datagram's packet number: its sender numbers every datagram it sends (control
    /// datagrams and resends too) 1, 2, 3, ...; receivers' replay windows go by it.
    pub packet: u64,
    /// When it was sent, by its sender's clock: milliseconds since the Unix epoch.
    pub sent_at: u64,
    /// How it is protected, and its tag.
    pub auth: Auth,
    /// The header's length in bytes: where the frames (or their ciphertext) start. The
    /// tag is the header's last [`TAG_LEN`] bytes.
    pub len: usize,
}

/// The length of an authentication tag.
pub const TAG_LEN: usize = 16;

/// The length of the `auth` field's content: the mode, the key id, the tag.
const AUTH_LEN: usize = 1 + 4 + TAG_LEN;

/// How a datagram is protected (the low bits of the `auth` field's mode byte).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protection {
    /// Not at all: the sender has no group key (the tag and key id are zeros).
    None,
    /// Its tag is a MAC (keyed BLAKE3) over the datagram.
    Mac,
    /// Its frames are encrypted (XChaCha20-Poly1305) and the tag is the AEAD's.
    Encrypted,
}

/// The mode byte's bit that says the datagram was sent to one node, not to the group.
const UNICAST_BIT: u8 = 0x80;

/// The `auth` field of a header: how the datagram is protected, with which key, its tag.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Auth {
    /// How it is protected.
    pub protection: Protection,
    /// Whether it was sent to one node (a status), not to the group: covered by the tag,
    /// so that a datagram captured on one socket cannot be replayed to the other.
    pub unicast: bool,
    /// The id of the group key the tag was made with (zeros when unprotected).
    pub key: [u8; 4],
    /// The tag.
    pub tag: [u8; TAG_LEN],
}

impl Auth {
    fn from_bytes(bytes: &[u8]) -> Result<Self, WireError> {
        let protection = match bytes[0] & !UNICAST_BIT {
            0 => Protection::None,
            1 => Protection::Mac,
            2 => Protection::Encrypted,
            other => return Err(shape_of("header", &format!("protection mode {other}"))),
        };
        let mut key = [0; 4];
        key.copy_from_slice(&bytes[1..5]);
        let mut tag = [0; TAG_LEN];
        tag.copy_from_slice(&bytes[5..]);
        Ok(Auth {
            protection,
            unicast: bytes[0] & UNICAST_BIT != 0,
            key,
            tag,
        })
    }

    fn mode_byte(protection: Protection, unicast: bool) -> u8 {
        let low = match protection {
            Protection::None => 0,
            Protection::Mac => 1,
            Protection::Encrypted => 2,
        };
        low | if unicast { UNICAST_BIT } else { 0 }
    }
}

/// One frame of a datagram.
#[derive(Debug, Clone, PartialEq)]
pub enum Frame {
    /// Run `function` with `args` on every node that serves it.
    Call(Call),
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
pub struct Call {
    /// The sender's number of the first call of the run (one counter per sender
    /// incarnation, over its calls only, from 1): receivers count lost calls by it.
    pub first: u64,
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
    pub fn single(first: u64, function: &str, args: &[Value]) -> Self {
        let mut bytes = Vec::new();
        encode_item(&Value::Array(args.to_vec()), &mut bytes);
        Call {
            first,
            function: function.to_string(),
            ends: vec![bytes.len() as u32],
            args: bytes,
        }
    }

    /// A run of the calls whose argument arrays are `args` (each well-formed CBOR), copied
    /// (the calls a node's own guests sent to it, delivered locally).
    pub fn collect<'a>(first: u64, function: &str, args: impl Iterator<Item = &'a [u8]>) -> Self {
        let mut run = Call {
            first,
            function: function.to_string(),
            args: Vec::new(),
            ends: Vec::new(),
        };
        for call in args {
            run.args.extend_from_slice(call);
            run.ends.push(run.args.len() as u32);
        }
        run
    }

    /// Every call's argument array, one after the other, as they came.
    pub fn bytes(&self) -> &[u8] {
        &self.args
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
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Announce {
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
    /// What this node received of each peer's stream.
    pub streams: Vec<StreamCounts>,
    /// What this node refused at its gate, by source address.
    pub refused: Vec<RefusedCounts>,
    /// The published modules the node runs, and the names it knows unpublished.
    pub modules: Vec<crate::modules::Publication>,
}

/// What a node refused from one source address, as its announcements say.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RefusedCounts {
    /// The source's address (`ADDR:PORT`), or `others` for the sources not listed.
    pub source: String,
    /// Datagrams refused for their tag (none, another key's, a wrong one).
    pub unauthenticated: u64,
    /// Datagrams refused as replays.
    pub replayed: u64,
}

/// What a node received of one peer's stream, as its announcements say.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct StreamCounts {
    /// The peer's name (or its id in hex, if it never announced itself).
    pub peer: String,
    /// Calls received and run (or offered to the guests: calls no guest serves count too).
    pub received: u64,
    /// Of those, calls that arrived in a repair (a resend asked for).
    pub repaired: u64,
    /// Calls lost for good: gone from the sender before they could be repaired.
    pub lost: u64,
}

/// Where a sender's stream stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Position {
    /// The number its next datagram will have: it sent every datagram below.
    pub next: u64,
    /// The oldest datagram it can still resend (`next` when it keeps none).
    pub oldest: u64,
}

/// A receiver's status of a sender's stream: what it has run, how much more it can take,
/// and what it misses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Status {
    /// The id of the sender whose stream this is about.
    pub stream: u64,
    /// The receiver has run every datagram of the stream below this number.
    pub delivered: u64,
    /// How many more bytes of the stream, beyond `delivered`, it can take.
    pub window: u64,
    /// Ranges of datagrams it misses and asks to be resent, `(first, last)` inclusive, at
    /// most [`MAX_MISSING_RANGES`].
    pub missing: Vec<(u64, u64)>,
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

/// Reads the header that opens a datagram, leaving `bytes` at its first frame (so that a
/// node can skip its own datagrams, and duplicates, without decoding their frames).
pub fn read_header(bytes: &mut &[u8]) -> Result<Header, WireError> {
    let mut cursor = Cursor::new(bytes);
    let header = decode_header(&mut cursor)?;
    *bytes = cursor.rest();
    Ok(header)
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
    Ok(Frame::Call(Call {
        first,
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

/// Reads the header at the cursor: the magic tag, then `[4, sender, seq, packet, sent-at,
/// auth]`, a definite-length array of six (integers in any encoding; `auth` a byte string
/// of 21 bytes that ends the header, so that the tag is its last 16).
fn decode_header(cursor: &mut Cursor<'_>) -> Result<Header, WireError> {
    match cursor.head()? {
        Head::Tag(MAGIC_TAG) => {}
        Head::Break => return Err(WireError::Malformed("a stray break".to_string())),
        _ => return Err(WireError::NoMagic),
    }
    let shape = |why: &str| shape_of("header", why);
    let len = match cursor.head()? {
        Head::Array(len) => len,
        _ => return Err(shape("not an array")),
    };
    // (The version first: another version may have another shape.)
    let version = cursor.uint().map_err(|_| shape("no version"))?;
    if version != VERSION {
        return Err(WireError::Version(version));
    }
    if len != Some(6) {
        return Err(shape("not an array of six fields"));
    }
    let sender = cursor.uint().map_err(|_| shape("no sender id"))?;
    let seq = match cursor.head()? {
        Head::Positive(0) => return Err(shape("sequence number 0 (streams start at 1)")),
        Head::Positive(n) if n >= NUMBERS_BELOW => {
            return Err(shape("a sequence number of 2^63 or more"));
        }
        Head::Positive(n) => Some(n),
        Head::Simple(ciborium_ll::simple::NULL) => None,
        _ => return Err(shape("the sequence number is neither a number nor null")),
    };
    let packet = cursor.uint().map_err(|_| shape("no packet number"))?;
    let sent_at = cursor.uint().map_err(|_| shape("no time of sending"))?;
    let auth = match cursor.head()? {
        Head::Bytes(Some(AUTH_LEN)) => Auth::from_bytes(cursor.content(AUTH_LEN)?)?,
        _ => return Err(shape("the auth field is not a byte string of 21 bytes")),
    };
    Ok(Header {
        version,
        sender,
        seq,
        packet,
        sent_at,
        auth,
        len: cursor.position(),
    })
}

/// Decodes a frame of any kind but a call.
fn decode_frame(item: Value) -> Result<Frame, WireError> {
    let (kind, fields) = kind_and_fields(item)?;
    match kind {
        KIND_ANNOUNCE => decode_announce(fields),
        KIND_QUERY => Ok(Frame::Query),
        KIND_GOODBYE => Ok(Frame::Goodbye),
        KIND_POSITION => decode_position(fields),
        KIND_STATUS => decode_status(fields),
        _ => Ok(Frame::Unknown { kind }),
    }
}

fn decode_announce(mut fields: impl Iterator<Item = Value>) -> Result<Frame, WireError> {
    let shape = |why: &str| shape_of("announce", why);
    let Some(Value::Text(name)) = fields.next() else {
        return Err(shape("no name"));
    };
    if !is_node_name(&name) {
        return Err(shape("the name is empty, too long or not printable"));
    }
    let uptime_ms = fields
        .next()
        .and_then(|v| as_u64(&v))
        .ok_or_else(|| shape("no uptime"))?;
    let Some(Value::Array(items)) = fields.next() else {
        return Err(shape("no function list"));
    };
    if items.len() > MAX_FUNCTIONS_ANNOUNCED {
        return Err(shape(&format!(
            "it lists {} functions, more than {MAX_FUNCTIONS_ANNOUNCED}",
            items.len()
        )));
    }
    let functions = items
        .into_iter()
        .map(|f| match f {
            Value::Text(f) if is_function_id(&f) => Ok(f),
            Value::Text(_) => Err(shape("a function id is empty, too long or not printable")),
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
    let links = named_numbers(
        fields.next(),
        1,
        MAX_LINKS_ANNOUNCED,
        (
            "a link is not [name, count]",
            "the links are not an array of at most 64",
        ),
        |name, n| (name, n[0]),
    )?;
    let streams = named_numbers(
        fields.next(),
        3,
        MAX_STREAMS_ANNOUNCED,
        (
            "a stream is not [name, received, repaired, lost]",
            "the streams are not an array of at most 64",
        ),
        |peer, n| StreamCounts {
            peer,
            received: n[0],
            repaired: n[1],
            lost: n[2],
        },
    )?;
    let refused = named_numbers(
        fields.next(),
        2,
        MAX_REFUSED_ANNOUNCED,
        (
            "a refusal is not [source, unauthenticated, replayed]",
            "the refusals are not an array of at most 16",
        ),
        |source, n| RefusedCounts {
            source,
            unauthenticated: n[0],
            replayed: n[1],
        },
    )?;
    // (Publications are read one by one: one this node cannot read, or more than it
    // takes, costs that publication, not the announcement.)
    let modules = match fields.next() {
        Some(Value::Array(items)) => items
            .into_iter()
            .filter_map(|item| crate::modules::Publication::from_value(item).ok())
            .take(crate::modules::MAX_MODULES)
            .collect(),
        _ => Vec::new(),
    };
    // Later versions may add fields: ignore them.
    Ok(Frame::Announce(Announce {
        name,
        uptime_ms,
        functions,
        tcp,
        links,
        streams,
        refused,
        modules,
    }))
}

/// An optional field of an announcement: an array of at most `max` items `[name, n1, ...,
/// nN]`, each made into a `T` by `build`; absent, it is empty. `why` says what is wrong
/// with a bad item, and with a field that is not such an array.
fn named_numbers<T>(
    field: Option<Value>,
    n: usize,
    max: usize,
    why: (&str, &str),
    build: impl Fn(String, Vec<u64>) -> T,
) -> Result<Vec<T>, WireError> {
    match field {
        None => Ok(Vec::new()),
        Some(Value::Array(items)) if items.len() <= max => items
            .into_iter()
            .map(|item| match numbers_after_name(item, n) {
                Some((name, numbers)) => Ok(build(name, numbers)),
                None => Err(shape_of("announce", why.0)),
            })
            .collect(),
        Some(_) => Err(shape_of("announce", why.1)),
    }
}

/// `[name, n1, ..., nN]` as the name and `N` unsigned numbers.
fn numbers_after_name(item: Value, n: usize) -> Option<(String, Vec<u64>)> {
    let Value::Array(items) = item else {
        return None;
    };
    if items.len() != n + 1 {
        return None;
    }
    let mut items = items.into_iter();
    let Some(Value::Text(name)) = items.next() else {
        return None;
    };
    let numbers = items.map(|v| as_u64(&v)).collect::<Option<Vec<u64>>>()?;
    Some((name, numbers))
}

/// The next field of frame `what`, an unsigned number, or the error `missing`.
fn next_number(
    fields: &mut impl Iterator<Item = Value>,
    what: &'static str,
    missing: &str,
) -> Result<u64, WireError> {
    fields
        .next()
        .and_then(|v| as_u64(&v))
        .ok_or_else(|| shape_of(what, missing))
}

fn decode_position(mut fields: impl Iterator<Item = Value>) -> Result<Frame, WireError> {
    let shape = |why: &str| shape_of("position", why);
    let next = next_number(&mut fields, "position", "no next sequence number")?;
    let oldest = next_number(&mut fields, "position", "no oldest sequence number")?;
    if oldest > next || oldest == 0 || next >= NUMBERS_BELOW {
        return Err(shape(
            "the oldest datagram kept is after the next one, or 0, or past 2^63",
        ));
    }
    Ok(Frame::Position(Position { next, oldest }))
}

fn decode_status(mut fields: impl Iterator<Item = Value>) -> Result<Frame, WireError> {
    let shape = |why: &str| shape_of("status", why);
    let stream = next_number(&mut fields, "status", "no stream id")?;
    let delivered = next_number(&mut fields, "status", "no delivered position")?;
    let window = next_number(&mut fields, "status", "no window")?;
    let missing = match fields.next() {
        None => Vec::new(),
        Some(Value::Array(ranges)) if ranges.len() <= MAX_MISSING_RANGES => ranges
            .into_iter()
            .map(|range| match number_pair(range) {
                Some((first, last)) if first <= last && first >= delivered => Ok((first, last)),
                _ => Err(shape(
                    "a missing range is not [first, last] at or after the delivered position",
                )),
            })
            .collect::<Result<_, _>>()?,
        Some(_) => {
            return Err(shape(&format!(
                "the missing ranges are not an array of at most {MAX_MISSING_RANGES}"
            )));
        }
    };
    Ok(Frame::Status(Status {
        stream,
        delivered,
        window,
        missing,
    }))
}

/// `[first, last]` as two unsigned numbers.
fn number_pair(item: Value) -> Option<(u64, u64)> {
    match item {
        Value::Array(pair) => match <[Value; 2]>::try_from(pair) {
            Ok([a, b]) => Some((as_u64(&a)?, as_u64(&b)?)),
            Err(_) => None,
        },
        _ => None,
    }
}

fn uint(n: u64) -> Value {
    Value::Integer(n.into())
}

/// Encodes an announcement onto the end of `out`.
pub fn encode_announce(announce: &Announce, out: &mut Vec<u8>) {
    let text = |s: &str| Value::Text(s.to_string());
    let frame = Value::Array(vec![
        uint(KIND_ANNOUNCE),
        text(&announce.name),
        uint(announce.uptime_ms),
        Value::Array(announce.functions.iter().map(|f| text(f)).collect()),
        announce
            .tcp
            .map_or(Value::Null, |addr| Value::Text(addr.to_string())),
        Value::Array(
            announce
                .links
                .iter()
                .map(|(name, n)| Value::Array(vec![text(name), uint(*n)]))
                .collect(),
        ),
        Value::Array(
            announce
                .streams
                .iter()
                .take(MAX_STREAMS_ANNOUNCED)
                .map(|s| {
                    Value::Array(vec![
                        text(&s.peer),
                        uint(s.received),
                        uint(s.repaired),
                        uint(s.lost),
                    ])
                })
                .collect(),
        ),
        Value::Array(
            announce
                .refused
                .iter()
                .take(MAX_REFUSED_ANNOUNCED)
                .map(|r| {
                    Value::Array(vec![
                        text(&r.source),
                        uint(r.unauthenticated),
                        uint(r.replayed),
                    ])
                })
                .collect(),
        ),
        Value::Array(
            announce
                .modules
                .iter()
                .take(crate::modules::MAX_MODULES)
                .map(crate::modules::Publication::to_value)
                .collect(),
        ),
    ]);
    encode_item(&frame, out);
}

/// Encodes a query onto the end of `out`.
pub fn encode_query(out: &mut Vec<u8>) {
    encode_item(&Value::Array(vec![uint(KIND_QUERY)]), out);
}

/// Encodes a goodbye onto the end of `out`.
pub fn encode_goodbye(out: &mut Vec<u8>) {
    encode_item(&Value::Array(vec![uint(KIND_GOODBYE)]), out);
}

/// Encodes a stream position onto the end of `out`.
pub fn encode_position(position: Position, out: &mut Vec<u8>) {
    let frame = Value::Array(vec![
        uint(KIND_POSITION),
        uint(position.next),
        uint(position.oldest),
    ]);
    encode_item(&frame, out);
}

/// Encodes a status onto the end of `out` (at most [`MAX_MISSING_RANGES`] ranges of it).
pub fn encode_status(status: &Status, out: &mut Vec<u8>) {
    let frame = Value::Array(vec![
        uint(KIND_STATUS),
        uint(status.stream),
        uint(status.delivered),
        uint(status.window),
        Value::Array(
            status
                .missing
                .iter()
                .take(MAX_MISSING_RANGES)
                .map(|&(first, last)| Value::Array(vec![uint(first), uint(last)]))
                .collect(),
        ),
    ]);
    encode_item(&frame, out);
}

/// Opens a frame, an array whose first item is its kind: returns the kind and the rest.
pub(crate) fn kind_and_fields(item: Value) -> Result<(u64, std::vec::IntoIter<Value>), WireError> {
    let Value::Array(fields) = item else {
        return Err(shape_of("frame", "not an array"));
    };
    let mut fields = fields.into_iter();
    let kind = fields
        .next()
        .and_then(|v| as_u64(&v))
        .ok_or_else(|| shape_of("frame", "no kind"))?;
    Ok((kind, fields))
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

/// The bytes of the magic tag, the header's array head (six fields) and the version.
const HEADER_START: [u8; 5] = [0xd9, 0xd9, 0xf7, 0x86, VERSION as u8];

/// Where the 8 bytes of a sequenced datagram's number lie in the header [`encode_header`]
/// writes: after the magic, the array head, the version and the sender (a 9-byte
/// integer), past the number's own head byte.
const SEQ_AT: usize = HEADER_START.len() + 9 + 1;

/// The bytes of the fields [`encode_header`] writes after `seq`, which [`seal_header`]
/// fills in as a datagram leaves: the packet number and the time (9-byte integers), and
/// the `auth` field (a byte string of 21 bytes: its head, then the mode, the key id and
/// the tag).
const SEALED_TAIL: usize = 9 + 9 + 2 + AUTH_LEN;

/// The longest header [`encode_header`] writes (a sequenced datagram's).
pub const MAX_HEADER: usize = SEQ_AT + 8 + SEALED_TAIL;

/// Encodes the header of a datagram sent by `sender`: sequenced with number `seq`, or a
/// control datagram. The sender and the number take 9 bytes each whatever their value,
/// so that a sequenced datagram can be packed first and numbered as it leaves
/// ([`stamp`]); the packet number, the time and the `auth` field are left for
/// [`seal_header`] to fill in when it is sent (each time it is sent).
pub fn encode_header(sender: u64, seq: Option<u64>, out: &mut Vec<u8>) {
    out.extend_from_slice(&HEADER_START);
    out.push(0x1b);
    out.extend_from_slice(&sender.to_be_bytes());
    match seq {
        Some(seq) => {
            out.push(0x1b);
            out.extend_from_slice(&seq.to_be_bytes());
        }
        None => out.push(0xf6), // null: a control datagram
    }
    out.push(0x1b);
    out.extend_from_slice(&[0; 8]); // packet
    out.push(0x1b);
    out.extend_from_slice(&[0; 8]); // sent-at
    out.extend_from_slice(&[0x58, AUTH_LEN as u8]);
    out.extend_from_slice(&[0; AUTH_LEN]);
}

/// Numbers a sequenced datagram whose header [`encode_header`] wrote.
pub fn stamp(datagram: &mut [u8], seq: u64) {
    datagram[SEQ_AT..SEQ_AT + 8].copy_from_slice(&seq.to_be_bytes());
}

/// The length of the header [`encode_header`] wrote at the start of `datagram` (a
/// datagram of this node's own making).
pub fn own_header_len(datagram: &[u8]) -> usize {
    let sequenced = datagram.get(SEQ_AT - 1) == Some(&0x1b);
    SEQ_AT + if sequenced { 8 } else { 0 } + SEALED_TAIL
}

/// The sender id in the header [`encode_header`] wrote at the start of `datagram`.
pub fn own_sender(datagram: &[u8]) -> u64 {
    let at = HEADER_START.len() + 1;
    let mut id = [0u8; 8];
    id.copy_from_slice(&datagram[at..at + 8]);
    u64::from_be_bytes(id)
}

/// Fills in what a header [`encode_header`] wrote leaves for the moment of sending: the
/// packet number, the time, how the datagram is protected and with which key (the tag is
/// written by [`set_tag`] once it is made over the rest).
pub fn seal_header(
    header: &mut [u8],
    packet: u64,
    sent_at: u64,
    protection: Protection,
    unicast: bool,
    key: [u8; 4],
) {
    let tail = header.len() - SEALED_TAIL;
    header[tail + 1..tail + 9].copy_from_slice(&packet.to_be_bytes());
    header[tail + 10..tail + 18].copy_from_slice(&sent_at.to_be_bytes());
    header[tail + 20] = Auth::mode_byte(protection, unicast);
    header[tail + 21..tail + 25].copy_from_slice(&key);
}

/// Writes the tag into a header (its last [`TAG_LEN`] bytes).
pub fn set_tag(header: &mut [u8], tag: &[u8; TAG_LEN]) {
    let at = header.len() - TAG_LEN;
    header[at..].copy_from_slice(tag);
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
const BREAK: u8 = 0xff;

/// Encodes a run of one call, `[_ 0, first, function, args]` with `args` one CBOR array,
/// onto the end of `out`; the run stays open to more calls (see [`Batcher`]).
fn encode_call_run(first: u64, function: &str, args: &[u8], out: &mut Vec<u8>) {
    let mut encoder = ciborium_ll::Encoder::from(&mut *out);
    // Writing to a Vec cannot fail.
    let _ = encoder.push(Head::Array(None));
    let _ = encoder.push(Head::Positive(KIND_CALL));
    let _ = encoder.push(Head::Positive(first));
    let _ = encoder.text(function, None);
    out.extend_from_slice(args);
    out.push(BREAK);
}

/// Packs encoded frames into datagrams of at most `max` bytes, each opening with the
/// sender's header (sequenced, to be numbered with [`stamp`] as it leaves, or control).
/// Frames keep their order; a frame never spans two datagrams. Calls to the function of
/// the datagram's last frame, with the next call number, join its run.
#[derive(Debug)]
pub struct Batcher {
    header: Vec<u8>,
    max: usize,
    current: Vec<u8>,
    full: Vec<Vec<u8>>,
    /// The function of the run that ends the current datagram, and the run's next call
    /// number.
    run: Option<(String, u64)>,
}

impl Batcher {
    /// A batcher for datagrams of at most `max` bytes from `sender`, sequenced or not.
    pub fn new(sender: u64, max: usize, sequenced: bool) -> Self {
        let mut header = Vec::new();
        encode_header(sender, sequenced.then_some(0), &mut header);
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

    /// Whether a datagram is full and waiting.
    pub fn has_full(&self) -> bool {
        !self.full.is_empty()
    }

    /// Takes the datagrams filled so far, leaving the one being filled.
    pub fn take_full(&mut self) -> Vec<Vec<u8>> {
        std::mem::take(&mut self.full)
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
        encode_header(sender, Some(1), &mut out);
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
                seq: Some(1),
                packet: 0,
                sent_at: 0,
                auth: Auth {
                    protection: Protection::None,
                    unicast: false,
                    key: [0; 4],
                    tag: [0; TAG_LEN]
                },
                len: MAX_HEADER,
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
        let mut batcher = Batcher::new(1, MAX_DATAGRAM, false);
        for v in 0..1000u64 {
            batcher
                .push_call(v + 10, "a:b/c#set", &args(&[v.into()]))
                .unwrap();
        }
        batcher.push_call(2000, "a:b/c#set", &args(&[])).unwrap(); // a gap: a new run
        batcher.push_call(2001, "a:b/c#other", &args(&[])).unwrap();
        let mut f = Vec::new();
        encode_query(&mut f);
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
            (run.first, run.count(), run.function.as_str()),
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
                Frame::Call(c) => (c.first, c.count()),
                _ => (0, 0),
            })
            .collect();
        assert_eq!(seqs, [(10, 1000), (2000, 1), (2001, 1), (0, 0), (2003, 1)]);
    }

    #[test]
    fn pushing_calls_together_packs_as_pushing_them_one_by_one() {
        let calls: Vec<Vec<u8>> = (0..5000u64).map(|v| args(&[v.into()])).collect();
        let mut one_by_one = Batcher::new(1, 4000, true);
        let mut together = Batcher::new(1, 4000, true);
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
        let mut batcher = Batcher::new(1, 300, false);
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
                assert_eq!(run.first, next);
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
            Box::new(Value::Array(vec![2.into(), 1.into(), Value::Null])),
        );
        assert_eq!(decode_datagram(&raw(&header)), Err(WireError::Version(2)));
    }

    #[test]
    fn bad_headers_are_rejected() {
        for inner in [
            Value::Text("x".into()),
            Value::Array(vec![]),
            Value::Array(vec![VERSION.into()]),
            Value::Array(vec![VERSION.into(), (-1).into()]),
            Value::Array(vec![VERSION.into(), 5.into()]),
            Value::Array(vec![VERSION.into(), 5.into(), 0.into()]),
            Value::Array(vec![VERSION.into(), 5.into(), (1u64 << 63).into()]),
            Value::Array(vec![VERSION.into(), 5.into(), "x".into()]),
            Value::Array(vec![VERSION.into(), 5.into(), 1.into(), 3.into()]),
            header_fields(5, 1.into(), Value::Bytes(vec![0; 20])),
            header_fields(5, 1.into(), Value::Bytes(vec![3; 21])),
            header_fields(5, 1.into(), Value::Null),
            Value::Array(vec![
                VERSION.into(),
                5.into(),
                1.into(),
                1.into(),
                1.into(),
                Value::Bytes(vec![0; 21]),
                "a field too many".into(),
            ]),
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
                u64::MAX.into(),
                "f".into(),
                Value::Array(vec![]),
            ]),
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
            name: "node-a".into(),
            uptime_ms: 1500,
            functions,
            tcp: Some("127.0.0.1:4100".parse().unwrap()),
            links: vec![("node-b".into(), 2)],
            streams: vec![StreamCounts {
                peer: "node-c".into(),
                received: 10,
                repaired: 2,
                lost: 1,
            }],
            refused: vec![RefusedCounts {
                source: "10.0.0.9:4001".into(),
                unauthenticated: 7,
                replayed: 3,
            }],
            modules: vec![crate::modules::Publication {
                name: "kv".into(),
                digest: Some(crate::modules::Digest([5; 32])),
                size: 1234,
                published_at: 1_700_000_000_000,
                publisher: "ann".into(),
            }],
        };
        let mut f = Vec::new();
        encode_announce(&announce, &mut f);
        frames.push(f);
        let mut f = Vec::new();
        encode_query(&mut f);
        frames.push(f);
        let mut f = Vec::new();
        encode_goodbye(&mut f);
        frames.push(f);
        let d = decode_datagram(&datagram(8, &frames)).unwrap();
        assert_eq!(
            d.frames,
            vec![Frame::Announce(announce), Frame::Query, Frame::Goodbye,]
        );
    }

    #[test]
    fn bad_announcements_are_rejected() {
        for fields in [
            vec![1.into()],
            vec![1.into(), "".into(), 0.into(), Value::Array(vec![])],
            vec![
                1.into(),
                "x".repeat(300).into(),
                0.into(),
                Value::Array(vec![]),
            ],
            vec![1.into(), "a\nb".into(), 0.into(), Value::Array(vec![])],
            vec![1.into(), "a".into(), Value::Null, Value::Array(vec![])],
            vec![1.into(), "a".into(), 0.into(), Value::Array(vec![5.into()])],
            vec![
                1.into(),
                "a".into(),
                0.into(),
                Value::Array(vec![]),
                "not an address".into(),
            ],
            vec![
                1.into(),
                "a".into(),
                0.into(),
                Value::Array(vec![]),
                Value::Null,
                Value::Array(vec![Value::Array(vec!["b".into()])]),
            ],
            vec![
                1.into(),
                "a".into(),
                0.into(),
                Value::Array(vec![]),
                Value::Null,
                Value::Array(vec![]),
                Value::Array(vec![Value::Array(vec!["b".into(), 1.into(), 2.into()])]),
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
    fn announcements_are_bounded_in_every_list() {
        let ids = |n: usize, id: &dyn Fn(usize) -> String| {
            Value::Array((0..n).map(|i| Value::Text(id(i))).collect())
        };
        let announce = |functions: Value, links: Value| {
            let fields = vec![
                1.into(),
                "a".into(),
                0.into(),
                functions,
                Value::Null,
                links,
            ];
            decode_datagram(&datagram(1, &[raw(&Value::Array(fields))]))
        };
        let none = Value::Array(vec![]);
        let link = |i: usize| Value::Array(vec![format!("p{i}").into(), 1.into()]);
        // At the caps: read.
        let most = ids(MAX_FUNCTIONS_ANNOUNCED, &|i| format!("x:y/z#f{i}"));
        let links = Value::Array((0..MAX_LINKS_ANNOUNCED).map(link).collect());
        assert!(announce(most, links).is_ok());
        // Past them, or a function id that cannot be one: refused whole, saying why.
        for (functions, links, why) in [
            (
                ids(MAX_FUNCTIONS_ANNOUNCED + 1, &|i| format!("f{i}")),
                none.clone(),
                "it lists 1025 functions, more than 1024",
            ),
            (
                ids(1, &|_| String::new()),
                none.clone(),
                "a function id is empty",
            ),
            (
                ids(1, &|_| "a\u{1b}[2J".into()),
                none.clone(),
                "not printable",
            ),
            (
                ids(1, &|_| "f".repeat(MAX_FUNCTION_ID + 1)),
                none.clone(),
                "too long",
            ),
            (
                none.clone(),
                Value::Array((0..=MAX_LINKS_ANNOUNCED).map(link).collect()),
                "the links are not an array of at most 64",
            ),
        ] {
            let err = announce(functions, links).unwrap_err().to_string();
            assert!(err.contains(why), "{why}: {err}");
        }
        // A frame of more items than any a node sends is refused before it is decoded.
        let bloat = ids(MAX_CONTROL_ITEMS, &|_| String::new());
        let err = announce(bloat, none).unwrap_err().to_string();
        assert!(
            err.contains("more items than a node reads in one frame"),
            "{err}"
        );
    }

    #[test]
    fn unknown_kinds_are_skipped_not_rejected() {
        let frame = Value::Array(vec![9.into(), 3.into(), "future".into()]);
        let d = decode_datagram(&datagram(1, &[raw(&frame)])).unwrap();
        assert_eq!(d.frames, vec![Frame::Unknown { kind: 9 }]);
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
        let mut batcher = Batcher::new(3, MAX_DATAGRAM, false);
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
        let mut batcher = Batcher::new(5, 200, false);
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
            seqs.extend(decoded.frames.iter().map(|f| match f {
                Frame::Call(c) => c.first,
                other => panic!("{other:?}"),
            }));
        }
        assert_eq!(seqs, (0..20).collect::<Vec<_>>());
    }

    #[test]
    fn batcher_refuses_a_frame_larger_than_a_datagram() {
        let mut batcher = Batcher::new(5, 100, false);
        let big = call(1, "a:b/c#d", vec![Value::Text("x".repeat(100))]);
        assert!(matches!(
            batcher.push(&big),
            Err(WireError::TooLarge { max: 100, .. })
        ));
        assert!(batcher.is_empty());
    }

    #[test]
    fn a_sequenced_datagram_is_numbered_as_it_leaves() {
        let mut batcher = Batcher::new(0xabcd, MAX_DATAGRAM, true);
        batcher.push_call(1, "a:b/c#d", &args(&[5.into()])).unwrap();
        let mut datagram = batcher.take().remove(0);
        // Not numbered yet: no receiver takes it.
        assert!(matches!(
            decode_datagram(&datagram),
            Err(WireError::Shape { what: "header", .. })
        ));
        stamp(&mut datagram, NUMBERS_BELOW - 1);
        let header = decode_datagram(&datagram).unwrap().header;
        assert_eq!(
            (header.sender, header.seq),
            (0xabcd, Some(NUMBERS_BELOW - 1))
        );
        stamp(&mut datagram, 7);
        assert_eq!(decode_datagram(&datagram).unwrap().header.seq, Some(7));
        let mut control = Vec::new();
        encode_header(3, None, &mut control);
        assert_eq!(decode_datagram(&control).unwrap().header.seq, None);
    }

    #[test]
    fn headers_of_other_shapes_decode_alike() {
        // Minimal integers, a mode with the unicast bit, a key id and a tag.
        let mut auth = vec![0x81, 1, 2, 3, 4];
        auth.extend(10..10 + TAG_LEN as u8);
        let d = decode_datagram(&raw(&header_fields(5, 9.into(), Value::Bytes(auth)))).unwrap();
        let mut tag = [0; TAG_LEN];
        tag.iter_mut().zip(10..).for_each(|(t, n)| *t = n);
        assert_eq!(
            d.header,
            Header {
                version: VERSION,
                sender: 5,
                seq: Some(9),
                packet: 3,
                sent_at: 4,
                auth: Auth {
                    protection: Protection::Mac,
                    unicast: true,
                    key: [1, 2, 3, 4],
                    tag
                },
                len: 3 + 1 + 1 + 1 + 1 + 1 + 1 + 1 + 21,
            }
        );
        // An indefinite-length header is refused: the tag must end the header.
        let mut indefinite = raw(&header_fields(5, Value::Null, Value::Bytes(vec![0; 21])));
        indefinite[3] = 0x9f;
        indefinite.push(0xff);
        assert!(decode_datagram(&indefinite).is_err());
    }

    /// A header's item with sender `sender`, `seq`, packet 3, sent at 4, and `auth`.
    fn header_fields(sender: u64, seq: Value, auth: Value) -> Value {
        Value::Tag(
            MAGIC_TAG,
            Box::new(Value::Array(vec![
                VERSION.into(),
                sender.into(),
                seq,
                3.into(),
                4.into(),
                auth,
            ])),
        )
    }

    #[test]
    fn sealing_fills_in_the_header_where_it_is_read() {
        let mut datagram = Vec::new();
        encode_header(0x1234, Some(77), &mut datagram);
        let len = own_header_len(&datagram);
        assert_eq!(len, datagram.len());
        assert_eq!(own_sender(&datagram), 0x1234);
        seal_header(
            &mut datagram,
            99,
            1_700_000_000_000,
            Protection::Encrypted,
            true,
            [9, 8, 7, 6],
        );
        set_tag(&mut datagram, &[5; TAG_LEN]);
        let header = decode_datagram(&datagram).unwrap().header;
        assert_eq!((header.packet, header.sent_at), (99, 1_700_000_000_000));
        assert_eq!(header.auth.protection, Protection::Encrypted);
        assert!(header.auth.unicast);
        assert_eq!(
            (header.auth.key, header.auth.tag),
            ([9, 8, 7, 6], [5; TAG_LEN])
        );
        let mut control = Vec::new();
        encode_header(1, None, &mut control);
        assert_eq!(own_header_len(&control), control.len());
        seal_header(&mut control, 1, 2, Protection::Mac, false, [1; 4]);
        let header = decode_datagram(&control).unwrap().header;
        assert_eq!(
            (header.seq, header.packet, header.len),
            (None, 1, control.len())
        );
    }

    #[test]
    fn stream_frames_round_trip() {
        let position = Position {
            next: 10,
            oldest: 4,
        };
        let status = Status {
            stream: 77,
            delivered: 3,
            window: 1 << 20,
            missing: vec![(3, 3), (5, 9)],
        };
        let mut frames = vec![Vec::new(), Vec::new()];
        encode_position(position, &mut frames[0]);
        encode_status(&status, &mut frames[1]);
        let d = decode_datagram(&datagram(8, &frames)).unwrap();
        assert_eq!(
            d.frames,
            vec![Frame::Position(position), Frame::Status(status)]
        );
    }

    #[test]
    fn impossible_positions_and_statuses_are_rejected() {
        let too_many: Vec<Value> = (0..=MAX_MISSING_RANGES as u64)
            .map(|i| Value::Array(vec![(10 + 2 * i).into(), (10 + 2 * i).into()]))
            .collect();
        for frame in [
            vec![KIND_POSITION.into(), 3.into(), 4.into()],
            vec![KIND_POSITION.into(), 0.into(), 0.into()],
            vec![KIND_POSITION.into(), u64::MAX.into(), 1.into()],
            vec![KIND_POSITION.into(), 3.into()],
            vec![KIND_STATUS.into(), 1.into(), 2.into()],
            vec![
                KIND_STATUS.into(),
                1.into(),
                5.into(),
                0.into(),
                Value::Array(too_many),
            ],
            vec![
                KIND_STATUS.into(),
                1.into(),
                5.into(),
                0.into(),
                Value::Array(vec![Value::Array(vec![4.into(), 6.into()])]),
            ],
            vec![
                KIND_STATUS.into(),
                1.into(),
                5.into(),
                0.into(),
                Value::Array(vec![Value::Array(vec![8.into(), 6.into()])]),
            ],
            vec![KIND_STATUS.into(), 1.into(), (-5).into(), 0.into()],
        ] {
            let bytes = datagram(1, &[raw(&Value::Array(frame.clone()))]);
            assert!(
                matches!(decode_datagram(&bytes), Err(WireError::Shape { .. })),
                "{frame:?}"
            );
        }
    }
}
