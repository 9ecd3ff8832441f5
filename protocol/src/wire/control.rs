//! The control frames: announcements, queries, goodbyes, stream positions and statuses,
//! each encoded and decoded with every count bounded.

use super::{
    MAX_FUNCTIONS_ANNOUNCED, MAX_LINKS_ANNOUNCED, MAX_MISSING_RANGES, MAX_REFUSED_ANNOUNCED,
    MAX_STREAMS_ANNOUNCED, NUMBERS_BELOW, WireError, encode_item, is_function_id, is_node_name,
    shape_of, uint,
};
use crate::cbor::as_u64;
use crate::frame_kind::{
    ANNOUNCE as KIND_ANNOUNCE, GOODBYE as KIND_GOODBYE, POSITION as KIND_POSITION,
    QUERY as KIND_QUERY, STATUS as KIND_STATUS,
};
use ciborium::value::Value;
use std::net::SocketAddr;

/// A node's announcement of itself: who it is and what it offers (its [`Presence`], which
/// its peers keep in their tables), and what it reports of the group (which they do not).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Announce {
    /// Who the node is and what it offers.
    pub presence: Presence,
    /// What this node received of each peer's stream.
    pub streams: Vec<StreamCounts>,
    /// What this node refused at its gate, by source address.
    pub refused: Vec<RefusedCounts>,
    /// The published modules the node runs, and the names it knows unpublished.
    pub modules: Vec<crate::modules::Publication>,
}

/// Who a node is and what it offers, as it announces itself: what its peers keep of it
/// (`membership::Peer`).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Presence {
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

pub(super) fn decode_announce(
    mut fields: impl Iterator<Item = Value>,
) -> Result<Announce, WireError> {
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
    Ok(Announce {
        presence: Presence {
            name,
            uptime_ms,
            functions,
            tcp,
            links,
        },
        streams,
        refused,
        modules,
    })
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

pub(super) fn decode_position(
    mut fields: impl Iterator<Item = Value>,
) -> Result<Position, WireError> {
    let shape = |why: &str| shape_of("position", why);
    let next = next_number(&mut fields, "position", "no next sequence number")?;
    let oldest = next_number(&mut fields, "position", "no oldest sequence number")?;
    if oldest > next || oldest == 0 || next >= NUMBERS_BELOW {
        return Err(shape(
            "the oldest datagram kept is after the next one, or 0, or past 2^63",
        ));
    }
    Ok(Position { next, oldest })
}

pub(super) fn decode_status(mut fields: impl Iterator<Item = Value>) -> Result<Status, WireError> {
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
    Ok(Status {
        stream,
        delivered,
        window,
        missing,
    })
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

/// Encodes an announcement onto the end of `out`.
pub fn encode_announce(announce: &Announce, out: &mut Vec<u8>) {
    let text = |s: &str| Value::Text(s.to_string());
    let node = &announce.presence;
    let frame = Value::Array(vec![
        uint(KIND_ANNOUNCE),
        text(&node.name),
        uint(node.uptime_ms),
        Value::Array(node.functions.iter().map(|f| text(f)).collect()),
        node.tcp
            .map_or(Value::Null, |addr| Value::Text(addr.to_string())),
        Value::Array(
            node.links
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
