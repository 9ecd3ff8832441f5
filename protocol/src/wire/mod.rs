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

use crate::cbor::{MAX_NESTING, as_u64};
use ciborium::value::Value;
use thiserror::Error;

mod arguments;
mod batcher;
mod control;
mod frame;
mod header;
#[cfg(test)]
mod tests;

pub use arguments::{ArgumentArrays, ArrayEnd};
pub use batcher::Batcher;
pub use control::{
    Announce, Position, Presence, RefusedCounts, Status, StreamCounts, encode_announce,
    encode_goodbye, encode_position, encode_query, encode_status,
};
pub use frame::{
    CALL_FRAME_OVERHEAD, CallRun, Datagram, Frame, call_frame_len, call_functions, decode_datagram,
    decode_frames, encode_call,
};
pub use header::{
    Auth, Header, MAX_HEADER, Protection, TAG_LEN, encode_header, own_header_len, own_sender,
    read_header, seal_header, set_tag, stamp,
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

impl From<crate::cbor::Malformed> for WireError {
    fn from(malformed: crate::cbor::Malformed) -> Self {
        WireError::Malformed(malformed.0)
    }
}

fn shape_of(what: &'static str, why: &str) -> WireError {
    WireError::Shape {
        what,
        why: why.to_string(),
    }
}

/// Reads one CBOR item from the front of `bytes` as a [`Value`] (nested at most
/// [`MAX_NESTING`] deep), leaving `bytes` after it.
pub fn next_item(bytes: &mut &[u8]) -> Result<Value, WireError> {
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

fn uint(n: u64) -> Value {
    Value::Integer(n.into())
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

/// Encodes one CBOR item onto the end of `out`.
pub fn encode_item(value: &Value, out: &mut Vec<u8>) {
    // Writing CBOR to a Vec cannot fail: the only errors are the writer's.
    ciborium::ser::into_writer(value, out).expect("CBOR encoding into a Vec does not fail");
}
