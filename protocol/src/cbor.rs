//! A cursor over CBOR bytes for the hot path: it reads one item head at a time (with
//! ciborium-ll) and steps over whole items without building them, so that a datagram of
//! thousands of calls is checked once and its arguments handed on as byte slices, not as
//! trees of [`ciborium::Value`].
//!
//! Every read is bounded by the slice: a length that runs past the end, nesting deeper
//! than [`MAX_NESTING`], a stray break or a malformed head is [`Malformed`], never a
//! panic.

use ciborium_ll::{Decoder, Header};

/// Bytes that are not well-formed CBOR, or that end in the middle of an item.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("malformed CBOR: {0}")]
pub struct Malformed(pub String);

/// How deep CBOR may nest before it is refused (a guard against stack exhaustion).
pub const MAX_NESTING: usize = 128;

/// A position in a slice of CBOR bytes.
#[derive(Debug, Clone)]
pub struct Cursor<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    /// A cursor at the start of `bytes`.
    #[inline]
    pub fn new(bytes: &'a [u8]) -> Self {
        Cursor { bytes, pos: 0 }
    }

    /// Whether every byte has been read.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.pos >= self.bytes.len()
    }

    /// How far the cursor is into its slice.
    #[inline]
    pub fn position(&self) -> usize {
        self.pos
    }

    /// The bytes not read yet.
    #[inline]
    pub fn rest(&self) -> &'a [u8] {
        &self.bytes[self.pos..]
    }

    /// Reads the head of the next item (for strings, not their content).
    #[inline]
    pub fn head(&mut self) -> Result<Header, Malformed> {
        let rest = self.rest();
        let Some(&initial) = rest.first() else {
            return Err(Malformed("truncated".to_string()));
        };
        // The common heads (integers, strings and containers of definite length, false,
        // true, null), read here; the rest (floats, tags, indefinite lengths, errors) by
        // ciborium-ll, whose generic reader costs more than these few bytes are worth.
        let (major, info) = (initial >> 5, initial & 0x1f);
        let argument = match info {
            0..=23 => Some((u64::from(info), 1)),
            24 => rest.get(1).map(|&b| (u64::from(b), 2)),
            25 => rest
                .get(1..3)
                .map(|b| (u64::from(u16::from_be_bytes([b[0], b[1]])), 3)),
            26 => rest
                .get(1..5)
                .map(|b| (u64::from(u32::from_be_bytes([b[0], b[1], b[2], b[3]])), 5)),
            27 => rest
                .get(1..9)
                .and_then(|b| b.try_into().ok())
                .map(|b| (u64::from_be_bytes(b), 9)),
            _ => None,
        };
        let fast = argument.and_then(|(n, len)| {
            let size = usize::try_from(n).ok();
            let header = match major {
                0 => Header::Positive(n),
                1 => Header::Negative(n),
                2 => Header::Bytes(Some(size?)),
                3 => Header::Text(Some(size?)),
                4 => Header::Array(Some(size?)),
                5 => Header::Map(Some(size?)),
                7 if (20..=22).contains(&info) => Header::Simple(info),
                _ => return None,
            };
            Some((header, len))
        });
        if let Some((header, len)) = fast {
            self.pos += len;
            return Ok(header);
        }
        let mut decoder = Decoder::from(rest);
        let header = decoder.pull().map_err(|e| match e {
            ciborium_ll::Error::Io(_) => Malformed("truncated".to_string()),
            ciborium_ll::Error::Syntax(at) => {
                Malformed(format!("syntax error at byte {}", self.pos + at))
            }
        })?;
        self.pos += decoder.offset();
        Ok(header)
    }

    /// Takes `len` bytes of string content.
    #[inline]
    pub(crate) fn content(&mut self, len: usize) -> Result<&'a [u8], Malformed> {
        let rest = self.rest();
        if len > rest.len() {
            return Err(Malformed("truncated".to_string()));
        }
        self.pos += len;
        Ok(&rest[..len])
    }

    /// Takes `len` bytes of text content, which must be UTF-8.
    #[inline]
    fn utf8(&mut self, len: usize) -> Result<(), Malformed> {
        std::str::from_utf8(self.content(len)?)
            .map(drop)
            .map_err(|_| Malformed("text that is not UTF-8".to_string()))
    }

    /// Reads an unsigned integer.
    #[inline]
    pub fn uint(&mut self) -> Result<u64, Malformed> {
        match self.head()? {
            Header::Positive(n) => Ok(n),
            other => Err(unexpected("an unsigned integer", other)),
        }
    }

    /// Reads an integer, of either sign.
    #[inline]
    pub fn int(&mut self) -> Result<i128, Malformed> {
        match self.head()? {
            Header::Positive(n) => Ok(i128::from(n)),
            Header::Negative(n) => Ok(-1 - i128::from(n)),
            other => Err(unexpected("an integer", other)),
        }
    }

    /// Reads a text string of definite length.
    #[inline]
    pub fn text(&mut self) -> Result<&'a str, Malformed> {
        match self.head()? {
            Header::Text(Some(len)) => std::str::from_utf8(self.content(len)?)
                .map_err(|_| Malformed("text that is not UTF-8".to_string())),
            other => Err(unexpected("text", other)),
        }
    }

    /// Steps over one whole item and returns its bytes.
    #[inline]
    pub fn item(&mut self) -> Result<&'a [u8], Malformed> {
        self.item_of_at_most(usize::MAX)
    }

    /// Steps over one whole item of at most `max` items, itself and everything nested in
    /// it (so that what decodes it into values next builds no more than that), and returns
    /// its bytes.
    #[inline]
    pub fn item_of_at_most(&mut self, max: usize) -> Result<&'a [u8], Malformed> {
        let start = self.pos;
        let mut left = max;
        self.skip_nested(0, &mut left)?;
        Ok(&self.bytes[start..self.pos])
    }

    /// Steps over one whole item at nesting depth `depth`, counting every item it holds
    /// against `left`.
    #[inline]
    fn skip_nested(&mut self, depth: usize, left: &mut usize) -> Result<(), Malformed> {
        if depth > MAX_NESTING {
            return Err(Malformed(format!(
                "nested deeper than {MAX_NESTING} levels"
            )));
        }
        *left = left
            .checked_sub(1)
            .ok_or_else(|| Malformed("more items than a node reads in one frame".to_string()))?;
        let head = self.head()?;
        match head {
            Header::Positive(_) | Header::Negative(_) | Header::Float(_) | Header::Simple(_) => {}
            Header::Break => return Err(Malformed("a stray break".to_string())),
            Header::Tag(_) => self.skip_nested(depth + 1, left)?,
            Header::Bytes(Some(len)) => {
                self.content(len)?;
            }
            Header::Text(Some(len)) => self.utf8(len)?,
            Header::Bytes(None) | Header::Text(None) => loop {
                // Segments: definite strings of the same kind, up to a break.
                match (head, self.head()?) {
                    (_, Header::Break) => break,
                    (Header::Bytes(None), Header::Bytes(Some(len))) => {
                        self.content(len)?;
                    }
                    (Header::Text(None), Header::Text(Some(len))) => self.utf8(len)?,
                    (_, other) => return Err(unexpected("a string segment", other)),
                }
            },
            Header::Array(Some(len)) => {
                // Every item takes a byte at least: a count beyond the rest is a lie.
                if len > self.rest().len() {
                    return Err(Malformed("truncated".to_string()));
                }
                for _ in 0..len {
                    self.skip_nested(depth + 1, left)?;
                }
            }
            Header::Map(Some(len)) => {
                if len > self.rest().len() / 2 {
                    return Err(Malformed("truncated".to_string()));
                }
                for _ in 0..len * 2 {
                    self.skip_nested(depth + 1, left)?;
                }
            }
            Header::Array(None) | Header::Map(None) => {
                let mut items = 0usize;
                while !self.at_break()? {
                    self.skip_nested(depth + 1, left)?;
                    items += 1;
                }
                if matches!(head, Header::Map(None)) && items % 2 == 1 {
                    return Err(Malformed("a map key without a value".to_string()));
                }
            }
        }
        Ok(())
    }

    /// Whether the next item is a break, which is then read.
    #[inline]
    pub fn at_break(&mut self) -> Result<bool, Malformed> {
        match self.rest().first() {
            None => Err(Malformed("truncated".to_string())),
            Some(0xff) => {
                self.pos += 1;
                Ok(true)
            }
            Some(_) => Ok(false),
        }
    }
}

/// Whether `bytes` start with the head of an array (CBOR major type 4).
#[inline]
pub fn starts_array(bytes: &[u8]) -> bool {
    bytes.first().is_some_and(|b| b >> 5 == 4)
}

fn unexpected(expected: &str, found: Header) -> Malformed {
    let found = match found {
        Header::Positive(_) => "an unsigned integer",
        Header::Negative(_) => "a negative integer",
        Header::Float(_) => "a float",
        Header::Simple(_) => "a simple value",
        Header::Tag(_) => "a tag",
        Header::Break => "a break",
        Header::Bytes(_) => "bytes",
        Header::Text(_) => "text",
        Header::Array(_) => "an array",
        Header::Map(_) => "a map",
    };
    Malformed(format!("expected {expected}, found {found}"))
}

/// A decoded CBOR value as an unsigned number, if it is one that fits 64 bits.
pub fn as_u64(value: &ciborium::Value) -> Option<u64> {
    match value {
        ciborium::Value::Integer(i) => u64::try_from(*i).ok(),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ciborium::Value;

    fn encoded(value: &Value) -> Vec<u8> {
        let mut out = Vec::new();
        ciborium::ser::into_writer(value, &mut out).unwrap();
        out
    }

    #[test]
    fn items_are_stepped_over_whole() {
        let values = [
            Value::Integer(5.into()),
            Value::Integer((-70_000).into()),
            Value::Text("héllo".into()),
            Value::Bytes(vec![1, 2, 3]),
            Value::Array(vec![Value::Null, Value::Float(1.5), Value::Bool(true)]),
            Value::Map(vec![(Value::Text("k".into()), Value::Array(vec![]))]),
            Value::Tag(42, Box::new(Value::Text("t".into()))),
        ];
        let mut bytes = Vec::new();
        for v in &values {
            bytes.extend(encoded(v));
        }
        let mut cursor = Cursor::new(&bytes);
        for v in &values {
            assert_eq!(cursor.item().unwrap(), encoded(v).as_slice());
        }
        assert!(cursor.is_empty());
    }

    #[test]
    fn indefinite_items_are_stepped_over() {
        // [_ 1, (_ "a", "b"), {_ 1: 2}]
        let bytes = [
            0x9f, 0x01, 0x7f, 0x61, b'a', 0x61, b'b', 0xff, 0xbf, 0x01, 0x02, 0xff, 0xff,
        ];
        let mut cursor = Cursor::new(&bytes);
        assert_eq!(cursor.item().unwrap().len(), bytes.len());
    }

    #[test]
    fn bad_bytes_are_errors() {
        for bytes in [
            &[][..],
            &[0x9f, 0x01][..],                                           // no break
            &[0xff][..],                                                 // a stray break
            &[0x83, 0x01][..],                                           // two items short
            &[0x9b, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff][..], // 2^64 items
            &[0x7a, 0xff, 0xff, 0xff, 0xff][..],                         // 4 GiB of text
            &[0x62, 0xff, 0xfe][..],                                     // not UTF-8
            &[0x5f, 0x61, b'a', 0xff][..],                               // text in bytes
            &[0x7f, 0x41, b'a', 0xff][..],                               // bytes in text
            &[0x7f, 0x62, 0xff, 0xfe, 0xff][..],                         // a segment not UTF-8
            &[0xbf, 0x01, 0xff][..],                                     // {_ 1}
        ] {
            assert!(Cursor::new(bytes).item().is_err(), "{bytes:x?}");
        }
    }

    #[test]
    fn deep_nesting_is_refused() {
        let mut bytes = vec![0x81; 10_000];
        bytes.push(0x00);
        assert!(Cursor::new(&bytes).item().is_err());
        let mut bytes = vec![0x81; MAX_NESTING];
        bytes.push(0x00);
        assert!(Cursor::new(&bytes).item().is_ok());
    }

    #[test]
    fn heads_read_here_match_ciborium_ll() {
        let mut samples: Vec<Vec<u8>> = Vec::new();
        for n in [
            0u64,
            23,
            24,
            255,
            256,
            65_535,
            65_536,
            u32::MAX as u64,
            u64::MAX,
        ] {
            for major in 0..8u8 {
                let mut out = Vec::new();
                let mut encoder = ciborium_ll::Encoder::from(&mut out);
                let header = match major {
                    0 => Header::Positive(n),
                    1 => Header::Negative(n),
                    2 => Header::Bytes(Some(n as usize)),
                    3 => Header::Text(Some(n as usize)),
                    4 => Header::Array(Some(n as usize)),
                    5 => Header::Map(Some(n as usize)),
                    6 => Header::Tag(n),
                    _ => Header::Simple((n % 256) as u8),
                };
                encoder.push(header).unwrap();
                samples.push(out);
            }
        }
        for b in 0..=255u8 {
            samples.push(vec![b, 1, 2, 3, 4, 5, 6, 7, 8]);
            samples.push(vec![b]);
        }
        for bytes in samples {
            let ours = Cursor::new(&bytes).head();
            let mut decoder = Decoder::from(&bytes[..]);
            let theirs = decoder.pull().map(|h| (h, decoder.offset()));
            match (ours, theirs) {
                (Ok(h), Ok((t, len))) => {
                    let mut cursor = Cursor::new(&bytes);
                    cursor.head().unwrap();
                    assert_eq!((h, cursor.position()), (t, len), "{bytes:x?}");
                }
                (Err(_), Err(_)) => {}
                (ours, theirs) => panic!("{bytes:x?}: {ours:?} vs {theirs:?}"),
            }
        }
    }

    #[test]
    fn heads_and_text() {
        let mut bytes = encoded(&Value::Integer(300.into()));
        bytes.extend(encoded(&Value::Text("abc".into())));
        let mut cursor = Cursor::new(&bytes);
        assert_eq!(cursor.uint().unwrap(), 300);
        assert_eq!(cursor.text().unwrap(), "abc");
        assert!(cursor.uint().is_err());
    }
}
