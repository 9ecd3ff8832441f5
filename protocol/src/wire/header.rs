//! The header that opens every datagram: its layout, reading it, and writing and sealing
//! a node's own (the fields [`crate::auth`] checks before anything else is read).

use super::{MAGIC_TAG, NUMBERS_BELOW, VERSION, WireError, shape_of};
use crate::cbor::Cursor;
use ciborium_ll::Header as Head;

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

/// Reads the header that opens a datagram, leaving `bytes` at its first frame (so that a
/// node can skip its own datagrams, and duplicates, without decoding their frames).
pub fn read_header(bytes: &mut &[u8]) -> Result<Header, WireError> {
    let mut cursor = Cursor::new(bytes);
    let header = decode_header(&mut cursor)?;
    *bytes = cursor.rest();
    Ok(header)
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
