//! The frames of the node's TCP port: what a connection opens with, and the hello, request
//! and reply frames that follow, each one CBOR item behind a 4-byte big-endian length.
//!
//! ```text
//! connection = magic frame*            ; both sides send the magic first
//!            / magic-keyed handshake sealed-frame*
//! magic      = d9 d9 f7 01             ; the CBOR self-describe tag 55799, then the version
//! magic-keyed = d9 d9 f7 02            ; a connection between holders of the group key
//! frame      = length:u32be cbor-item  ; at most MAX_FRAME bytes of CBOR
//! hello      = [8, node-id, name / null]
//! request    = [4, id, function-id, [arg*], wants-reply]
//! reply      = [5, id, true, result]  /  [5, id, false, error-kind, message]
//! handshake  = [9, key-id, nonce, encrypt] [10, nonce, encrypt, proof] [12, proof]
//!            / [9, ...] [11, why]       ; refused
//! ```
//!
//! [`crate::auth::connection`] makes and checks the handshake's proofs and seals the
//! frames after it.
//!
//! The magic's first byte is not ASCII, so no text command starts with it: the mailbox text
//! protocol shares the port. `docs/wire.md` is the reference. Every byte is hostile:
//! decoding never panics and every failure is a [`WireError`].

use crate::auth::connection::{Nonce, Proof};
use crate::auth::key::KeyId;
use crate::cbor::as_u64;
use crate::cbor::{Cursor, starts_array};
use crate::outcome::{CallFailure, FailureKind};
use crate::wire::{WireError, encode_item, kind_and_fields, next_item};
use ciborium::value::Value;

/// What both sides of a binary connection send first.
pub const MAGIC: [u8; 4] = [0xd9, 0xd9, 0xf7, 0x01];

/// What both sides of a keyed binary connection send first (then the handshake).
pub const MAGIC_KEYED: [u8; 4] = [0xd9, 0xd9, 0xf7, 0x02];

/// The largest frame (CBOR bytes after the length prefix) a connection accepts.
pub const MAX_FRAME: usize = 1024 * 1024;

// (The frame kinds are numbered in `frame_kind`, with the datagrams'.)
use crate::frame_kind::{
    ANSWER as KIND_ANSWER, CHALLENGE as KIND_CHALLENGE, HELLO as KIND_HELLO, PROOF as KIND_PROOF,
    REFUSAL as KIND_REFUSAL, REPLY as KIND_REPLY, REQUEST as KIND_REQUEST,
};

/// A frame of a keyed connection's handshake (docs/security.md).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Handshake {
    /// The client's opening: the key it uses, its nonce, whether it asks for encryption.
    Challenge {
        /// The key's id.
        key: KeyId,
        /// The client's nonce.
        nonce: Nonce,
        /// Whether it asks for encryption.
        encrypt: bool,
    },
    /// The server's answer: its nonce, whether the connection is encrypted, its proof.
    Answer {
        /// The server's nonce.
        nonce: Nonce,
        /// Whether the connection is encrypted.
        encrypt: bool,
        /// The server's proof.
        proof: Proof,
    },
    /// The server refuses the connection, saying why.
    Refusal(String),
    /// The client's proof.
    Proof(Proof),
}

impl Handshake {
    /// Encodes the frame.
    pub fn encode(&self) -> Vec<u8> {
        let bytes = |b: &[u8]| Value::Bytes(b.to_vec());
        let items = match self {
            Handshake::Challenge {
                key,
                nonce,
                encrypt,
            } => vec![
                KIND_CHALLENGE.into(),
                bytes(key),
                bytes(nonce),
                Value::Bool(*encrypt),
            ],
            Handshake::Answer {
                nonce,
                encrypt,
                proof,
            } => vec![
                KIND_ANSWER.into(),
                bytes(nonce),
                Value::Bool(*encrypt),
                bytes(proof),
            ],
            Handshake::Refusal(why) => vec![
                KIND_REFUSAL.into(),
                Value::Text(why.chars().take(MAX_MESSAGE).collect()),
            ],
            Handshake::Proof(proof) => vec![KIND_PROOF.into(), bytes(proof)],
        };
        let mut out = Vec::new();
        encode_item(&Value::Array(items), &mut out);
        out
    }

    /// Decodes a frame of the handshake.
    pub fn decode(mut bytes: &[u8]) -> Result<Self, WireError> {
        let item = next_item(&mut bytes)?;
        if !bytes.is_empty() {
            return Err(shape("handshake", "trailing bytes after the frame"));
        }
        let (kind, mut fields) = kind_and_fields(item)?;
        fn fixed<const N: usize>(value: Option<Value>, what: &str) -> Result<[u8; N], WireError> {
            match value {
                Some(Value::Bytes(b)) => b.try_into().map_err(|_| WireError::Shape {
                    what: "handshake",
                    why: format!("the {what} is not {N} bytes"),
                }),
                _ => Err(WireError::Shape {
                    what: "handshake",
                    why: format!("no {what}"),
                }),
            }
        }
        let flag = |value: Option<Value>| match value {
            Some(Value::Bool(b)) => Ok(b),
            _ => Err(shape("handshake", "no encryption flag")),
        };
        match kind {
            KIND_CHALLENGE => Ok(Handshake::Challenge {
                key: fixed(fields.next(), "key id")?,
                nonce: fixed(fields.next(), "nonce")?,
                encrypt: flag(fields.next())?,
            }),
            KIND_ANSWER => Ok(Handshake::Answer {
                nonce: fixed(fields.next(), "nonce")?,
                encrypt: flag(fields.next())?,
                proof: fixed(fields.next(), "proof")?,
            }),
            KIND_REFUSAL => match fields.next() {
                Some(Value::Text(why)) => {
                    Ok(Handshake::Refusal(why.chars().take(MAX_MESSAGE).collect()))
                }
                _ => Err(shape("handshake", "a refusal without a reason")),
            },
            KIND_PROOF => Ok(Handshake::Proof(fixed(fields.next(), "proof")?)),
            other => Err(WireError::Shape {
                what: "handshake",
                why: format!("kind {other} where the handshake goes on"),
            }),
        }
    }
}

/// The longest error message a reply carries; longer ones are cut.
const MAX_MESSAGE: usize = 4096;

/// One frame of a binary connection.
#[derive(Debug, Clone, PartialEq)]
pub enum PortFrame {
    /// The connecting node says who it is (for the `serve` lists of jails).
    Hello {
        /// Its node id.
        node: u64,
        /// Its name; `None` for a short-lived client such as `dhost call`.
        name: Option<String>,
    },
    /// Run a function on the receiving node.
    Request(Request),
    /// The outcome of request `id`.
    Reply {
        /// The request's id.
        id: u64,
        /// The result (CBOR `null` for a function without results), or why it failed.
        outcome: Result<Value, CallFailure>,
    },
}

/// A call to one node.
#[derive(Debug, Clone, PartialEq)]
pub struct Request {
    /// Chosen by the caller, unique among its requests on the connection.
    pub id: u64,
    /// The function id.
    pub function: String,
    /// The arguments, one CBOR value per parameter, as they came.
    pub args: Arguments,
    /// Whether the caller waits for a reply (a call) or not (a cast).
    pub wants_reply: bool,
}

/// The arguments of a request as they came off the connection: one CBOR array, checked to
/// be well-formed (bounded, not nested too deep) but not decoded. A request waiting for a
/// guest holds these bytes, not a tree of values (which would take some 30 times as much
/// memory); whoever serves it reads them once, against its own types.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Arguments(Vec<u8>);

impl Arguments {
    /// The arguments `values`, encoded.
    #[cfg(test)]
    pub fn from_values(values: &[Value]) -> Self {
        let mut out = Vec::new();
        ciborium::ser::into_writer(values, &mut out)
            .expect("CBOR encoding into a Vec does not fail");
        Arguments(out)
    }

    /// The CBOR array's bytes.
    pub fn bytes(&self) -> &[u8] {
        &self.0
    }

    /// The CBOR array's bytes, taken.
    pub fn into_bytes(self) -> Vec<u8> {
        self.0
    }

    /// How many bytes they take.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether there are no bytes (never, for arguments that came in a request).
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The arguments decoded, one value per parameter (for the node's built-in services,
    /// whose arguments are few and small).
    pub fn values(&self) -> Result<Vec<Value>, WireError> {
        match next_item(&mut &self.0[..])? {
            Value::Array(values) => Ok(values),
            _ => Err(shape("request", "the arguments are not an array")),
        }
    }
}

/// Where a cursor stands among the fields of an array, of definite length or not.
struct Fields {
    /// The fields left of an array of definite length; `None`: one of indefinite length.
    left: Option<usize>,
}

impl Fields {
    /// Whether another field follows (reading the break that ends an array of indefinite
    /// length: call it again only while it says yes).
    fn more(&mut self, cursor: &mut Cursor<'_>) -> Result<bool, WireError> {
        match &mut self.left {
            Some(0) => Ok(false),
            Some(n) => {
                *n -= 1;
                Ok(true)
            }
            None => Ok(!cursor.at_break()?),
        }
    }
}

/// Decodes a request frame with a cursor, its arguments kept as bytes (never as a tree of
/// values); `None` when the frame is not a request.
fn decode_request(bytes: &[u8]) -> Result<Option<Request>, WireError> {
    let mut cursor = Cursor::new(bytes);
    let Ok(ciborium_ll::Header::Array(len)) = cursor.head() else {
        return Ok(None);
    };
    let empty = len == Some(0) || (len.is_none() && cursor.rest().first() == Some(&0xff));
    if empty || cursor.clone().uint() != Ok(KIND_REQUEST) {
        return Ok(None);
    }
    let mut fields = Fields { left: len };
    fields.more(&mut cursor)?;
    cursor.uint()?;
    let mut field = |cursor: &mut Cursor<'_>, missing: &str| {
        if fields.more(cursor)? {
            Ok(())
        } else {
            Err(shape("request", missing))
        }
    };
    field(&mut cursor, "no id")?;
    let id = cursor.uint().map_err(|_| shape("request", "no id"))?;
    let no_function = "no function id (printable text)";
    field(&mut cursor, no_function)?;
    let function = cursor
        .text()
        .ok()
        .filter(|f| crate::printable::is_printable(f))
        .ok_or_else(|| shape("request", no_function))?
        .to_string();
    field(&mut cursor, "no argument array")?;
    if !starts_array(cursor.rest()) {
        return Err(shape("request", "no argument array"));
    }
    let args = Arguments(cursor.item()?.to_vec());
    field(&mut cursor, "no wants-reply flag")?;
    let wants_reply = match cursor.head() {
        Ok(ciborium_ll::Header::Simple(ciborium_ll::simple::FALSE)) => false,
        Ok(ciborium_ll::Header::Simple(ciborium_ll::simple::TRUE)) => true,
        _ => return Err(shape("request", "no wants-reply flag")),
    };
    // Later versions may add fields: step over them.
    while fields.more(&mut cursor)? {
        cursor.item()?;
    }
    if !cursor.is_empty() {
        return Err(shape("frame", "trailing bytes after the frame"));
    }
    Ok(Some(Request {
        id,
        function,
        args,
        wants_reply,
    }))
}

/// Decodes the CBOR of one frame (without its length prefix).
pub fn decode(mut bytes: &[u8]) -> Result<PortFrame, WireError> {
    if let Some(request) = decode_request(bytes)? {
        return Ok(PortFrame::Request(request));
    }
    let item = next_item(&mut bytes)?;
    if !bytes.is_empty() {
        return Err(shape("frame", "trailing bytes after the frame"));
    }
    let (kind, mut fields) = kind_and_fields(item)?;
    match kind {
        KIND_HELLO => {
            let node = fields
                .next()
                .and_then(|v| as_u64(&v))
                .ok_or_else(|| shape("hello", "no node id"))?;
            let name = match fields.next() {
                None | Some(Value::Null) => None,
                Some(Value::Text(name)) if crate::wire::is_node_name(&name) => Some(name),
                Some(_) => return Err(shape("hello", "the name is not printable text")),
            };
            Ok(PortFrame::Hello { node, name })
        }
        KIND_REPLY => {
            let id = fields
                .next()
                .and_then(|v| as_u64(&v))
                .ok_or_else(|| shape("reply", "no id"))?;
            let outcome = match fields.next() {
                Some(Value::Bool(true)) => Ok(fields.next().unwrap_or(Value::Null)),
                Some(Value::Bool(false)) => {
                    let kind = match fields.next() {
                        Some(Value::Text(kind)) => FailureKind::from_name(&kind)
                            .ok_or_else(|| shape("reply", "an unknown error kind"))?,
                        _ => return Err(shape("reply", "no error kind")),
                    };
                    let Some(Value::Text(message)) = fields.next() else {
                        return Err(shape("reply", "no error message"));
                    };
                    Err(CallFailure { kind, message })
                }
                _ => return Err(shape("reply", "no success flag")),
            };
            Ok(PortFrame::Reply { id, outcome })
        }
        other => Err(WireError::Shape {
            what: "frame",
            why: format!("unknown kind {other}"),
        }),
    }
}

fn shape(what: &'static str, why: &str) -> WireError {
    WireError::Shape {
        what,
        why: why.to_string(),
    }
}

/// Encodes a hello.
pub fn encode_hello(node: u64, name: Option<&str>) -> Vec<u8> {
    let mut out = Vec::new();
    let name = name.map_or(Value::Null, |n| Value::Text(n.to_string()));
    encode_item(
        &Value::Array(vec![KIND_HELLO.into(), node.into(), name]),
        &mut out,
    );
    out
}

/// Encodes a request.
pub fn encode_request(id: u64, function: &str, args: &[Value], wants_reply: bool) -> Vec<u8> {
    let mut out = Vec::with_capacity(function.len() + 32);
    out.push(0x85); // an array of 5 items
    encode_item(&Value::Integer(KIND_REQUEST.into()), &mut out);
    encode_item(&Value::Integer(id.into()), &mut out);
    // The arguments are borrowed: encode them in place rather than clone them into a Value.
    ciborium::ser::into_writer(function, &mut out).expect("CBOR encoding into a Vec does not fail");
    ciborium::ser::into_writer(args, &mut out).expect("CBOR encoding into a Vec does not fail");
    encode_item(&Value::Bool(wants_reply), &mut out);
    out
}

/// Encodes a reply.
pub fn encode_reply(id: u64, outcome: &Result<Value, CallFailure>) -> Vec<u8> {
    let mut out = Vec::new();
    let frame = match outcome {
        Ok(value) => {
            out.push(0x84); // an array of 4 items
            encode_item(&Value::Integer(KIND_REPLY.into()), &mut out);
            encode_item(&Value::Integer(id.into()), &mut out);
            encode_item(&Value::Bool(true), &mut out);
            encode_item(value, &mut out);
            return out;
        }
        Err(failure) => {
            let mut end = failure.message.len().min(MAX_MESSAGE);
            while !failure.message.is_char_boundary(end) {
                end -= 1;
            }
            Value::Array(vec![
                KIND_REPLY.into(),
                id.into(),
                Value::Bool(false),
                Value::Text(failure.kind.name().to_string()),
                Value::Text(failure.message[..end].to_string()),
            ])
        }
    };
    encode_item(&frame, &mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn handshake_frames_round_trip_and_reject_wrong_sizes() {
        for frame in [
            Handshake::Challenge {
                key: [1, 2, 3, 4],
                nonce: [5; 32],
                encrypt: true,
            },
            Handshake::Answer {
                nonce: [6; 32],
                encrypt: false,
                proof: [7; 32],
            },
            Handshake::Refusal("no".into()),
            Handshake::Proof([8; 32]),
        ] {
            assert_eq!(Handshake::decode(&frame.encode()), Ok(frame));
        }
        let mut short = Vec::new();
        encode_item(
            &Value::Array(vec![
                KIND_CHALLENGE.into(),
                Value::Bytes(vec![1, 2, 3]),
                Value::Bytes(vec![0; 32]),
                Value::Bool(false),
            ]),
            &mut short,
        );
        assert!(Handshake::decode(&short).is_err());
        assert!(Handshake::decode(&encode_hello(1, None)).is_err());
    }

    #[test]
    fn frames_round_trip() {
        let hello = encode_hello(7, Some("ann"));
        assert_eq!(
            decode(&hello),
            Ok(PortFrame::Hello {
                node: 7,
                name: Some("ann".into())
            })
        );
        let args = vec![Value::Text("k".into()), Value::Integer(3.into())];
        let request = encode_request(9, "a:b/c#d", &args, true);
        let Ok(PortFrame::Request(decoded)) = decode(&request) else {
            panic!("not a request");
        };
        assert_eq!(
            (decoded.id, decoded.function.as_str(), decoded.wants_reply),
            (9, "a:b/c#d", true)
        );
        assert_eq!(decoded.args.values(), Ok(args.clone()));
        assert_eq!(decoded.args, Arguments::from_values(&args));
        // An indefinite array, and fields a later version adds, are read too.
        let mut later = Vec::new();
        encode_item(
            &Value::Array(vec![
                KIND_REQUEST.into(),
                1.into(),
                "a:b/c#d".into(),
                Value::Array(args.clone()),
                Value::Bool(false),
                "later".into(),
            ]),
            &mut later,
        );
        let Ok(PortFrame::Request(decoded)) = decode(&later) else {
            panic!("not a request");
        };
        assert!(!decoded.wants_reply);
        assert_eq!(decoded.args.values(), Ok(args.clone()));
        let mut indefinite = vec![0x9f];
        indefinite.extend_from_slice(&request[1..]);
        indefinite.push(0xff);
        let Ok(PortFrame::Request(decoded)) = decode(&indefinite) else {
            panic!("not a request");
        };
        assert_eq!(decoded.args.values(), Ok(args));
        for outcome in [
            Ok(Value::Null),
            Ok(Value::Text("v".into())),
            Err(CallFailure::new(FailureKind::Trapped, "guest kv trapped")),
        ] {
            assert_eq!(
                decode(&encode_reply(u64::MAX, &outcome)),
                Ok(PortFrame::Reply {
                    id: u64::MAX,
                    outcome
                })
            );
        }
    }

    #[test]
    fn every_failure_kind_has_a_wire_name() {
        for kind in FailureKind::ALL {
            assert_eq!(FailureKind::from_name(kind.name()), Some(kind));
        }
    }

    #[test]
    fn long_error_messages_are_cut() {
        let failure = CallFailure::new(FailureKind::Trapped, "é".repeat(MAX_MESSAGE));
        let Ok(PortFrame::Reply {
            outcome: Err(got), ..
        }) = decode(&encode_reply(1, &Err(failure)))
        else {
            panic!("not a failed reply");
        };
        assert!(got.message.len() <= MAX_MESSAGE);
    }

    #[test]
    fn malformed_frames_are_errors_not_panics() {
        let cases: Vec<Vec<u8>> = vec![
            vec![],
            vec![0xff],
            vec![0x9f],                                           // an unterminated array
            vec![0x81, 0x18],                                     // truncated integer
            vec![0x82, 0x04, 0x01],                               // a request without a function
            vec![0x85, 0x04, 0x01, 0x61, 0x66, 0x01, 0xf5],       // arguments not an array
            vec![0x85, 0x04, 0x01, 0x61, 0x66, 0x80, 0x01],       // no wants-reply flag
            vec![0x85, 0x04, 0x01, 0x61, 0x66, 0x81, 0x5b],       // truncated arguments
            vec![0x85, 0x04, 0x01, 0x61, 0x66, 0x80, 0xf5, 0x00], // trailing bytes
            vec![0x85, 0x04, 0x01, 0x61, 0x1b, 0x80, 0xf5],       // a function id not printable
            vec![0x9f, 0x04, 0x01, 0x61, 0x1b, 0x80, 0xf5, 0xff], // the same, indefinite
            vec![0x9f, 0x04, 0x01, 0xff], // an indefinite request without a function
            vec![0x83, 0x08, 0x01, 0x05], // a hello whose name is a number
            vec![0x81, 0x19, 0x01, 0x00], // unknown kind 256
            encode_reply(1, &Ok(Value::Null))
                .into_iter()
                .chain([0x00])
                .collect(), // trailing bytes
        ];
        for bytes in cases {
            assert!(decode(&bytes).is_err(), "{bytes:02x?}");
        }
        // A reply with an error kind this node does not know.
        let mut out = Vec::new();
        encode_item(
            &Value::Array(vec![
                5.into(),
                1.into(),
                Value::Bool(false),
                "exploded".into(),
                "x".into(),
            ]),
            &mut out,
        );
        assert!(decode(&out).is_err());
    }
}
