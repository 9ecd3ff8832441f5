//! A publication: which module runs under a name, as its publisher said, and its CBOR
//! form, the same in announcements (docs/wire.md) and in the requests of the TCP port
//! (the node's `modules::protocol`):
//!
//! ```text
//! publication = [name, digest / null, size, published-at, publisher]
//! ```
//!
//! `digest` is 32 bytes (SHA-256), null when the name is unpublished; `published-at` is
//! milliseconds since the Unix epoch by the publisher's clock. A node takes no publication
//! stamped further ahead of its own clock than clocks may differ by
//! ([`Publication::check_time`]): the newest publication of a name wins, so one from the far
//! future would hold the name for good.

use super::{Digest, check_name};
use crate::clock::MAX_CLOCK_SKEW;
use ciborium::Value;
use std::fmt;
use std::time::Duration;

/// The longest publisher name.
pub const MAX_PUBLISHER: usize = 255;

/// Which module runs under a name, as its publisher said.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Publication {
    /// The name the module runs under (its guest name, and its jail section's).
    pub name: String,
    /// The module's digest; `None` once the name is unpublished.
    pub digest: Option<Digest>,
    /// The module's size in bytes (0 once unpublished).
    pub size: u64,
    /// When it was published (or unpublished): milliseconds since the Unix epoch, by the
    /// publisher's clock.
    pub published_at: u64,
    /// Who published it: the name the publisher gave.
    pub publisher: String,
}

impl Publication {
    /// Whether this publication replaces `other` (of the same name): it is newer, or as
    /// new with a larger digest (so that every node picks the same one).
    pub fn supersedes(&self, other: &Publication) -> bool {
        let key = |p: &Publication| (p.published_at, p.digest.map(|d| d.0).unwrap_or_default());
        key(self) > key(other)
    }

    /// Whether it unpublishes its name.
    pub fn is_removal(&self) -> bool {
        self.digest.is_none()
    }

    /// Checks that it was not published further ahead of `now_ms` (this node's clock, in
    /// milliseconds since the Unix epoch) than clocks may differ by ([`MAX_CLOCK_SKEW`], as
    /// for datagrams): the newest publication of a name wins, so one stamped in the far
    /// future would hold its name for good, unpublishing and every later version refused.
    pub fn check_time(&self, now_ms: u64) -> Result<(), String> {
        let ahead = self.published_at.saturating_sub(now_ms);
        if ahead <= MAX_CLOCK_SKEW.as_millis() as u64 {
            return Ok(());
        }
        Err(format!(
            "{} is stamped {} ({} ahead of this node's clock), more than the {} clocks may \
             differ by: the publisher's clock is wrong, or the publication is forged",
            self.name,
            format_time(self.published_at),
            humantime::format_duration(Duration::from_secs(ahead / 1000)),
            humantime::format_duration(MAX_CLOCK_SKEW),
        ))
    }
}

/// The latest time [`format_time`] prints as a date: the last second of year 9999, in
/// milliseconds since the Unix epoch (RFC 3339 has four digits for the year).
const LAST_DATE_MS: u64 = 253_402_300_799_999;

/// A time in milliseconds since the Unix epoch (from the network: any number) as an RFC
/// 3339 date to the second, or, past year 9999, as the number of milliseconds; never
/// panics.
pub fn format_time(ms: u64) -> String {
    if ms > LAST_DATE_MS {
        return format!("{ms} ms after 1970 (past year 9999)");
    }
    let when = std::time::UNIX_EPOCH + Duration::from_millis(ms);
    humantime::format_rfc3339_seconds(when).to_string()
}

impl fmt::Display for Publication {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.digest {
            Some(digest) => write!(
                f,
                "{} (sha256 {}, {} bytes, from {})",
                self.name,
                digest.short(),
                self.size,
                self.publisher
            ),
            None => write!(f, "{} (unpublished by {})", self.name, self.publisher),
        }
    }
}

impl Publication {
    /// The publication as a CBOR value.
    pub fn to_value(&self) -> Value {
        Value::Array(vec![
            Value::Text(self.name.clone()),
            self.digest
                .map_or(Value::Null, |d| Value::Bytes(d.0.to_vec())),
            Value::Integer(self.size.into()),
            Value::Integer(self.published_at.into()),
            Value::Text(self.publisher.clone()),
        ])
    }

    /// A publication from its CBOR value, every field checked.
    pub fn from_value(value: Value) -> Result<Publication, String> {
        let Value::Array(fields) = value else {
            return Err("a publication is not an array".into());
        };
        // (Later versions may add fields: they are ignored.)
        let mut fields = fields.into_iter();
        let (Some(name), Some(digest), Some(size), Some(published_at), Some(publisher)) = (
            fields.next(),
            fields.next(),
            fields.next(),
            fields.next(),
            fields.next(),
        ) else {
            return Err(
                "a publication is not [name, digest, size, published-at, publisher]".into(),
            );
        };
        let Value::Text(name) = name else {
            return Err("a publication's name is not text".into());
        };
        check_name(&name)?;
        let digest = match digest {
            Value::Null => None,
            Value::Bytes(b) => Some(
                Digest::from_slice(&b).ok_or("a publication's digest is not 32 bytes (SHA-256)")?,
            ),
            _ => return Err("a publication's digest is neither bytes nor null".into()),
        };
        let number = |v: &Value, what: &str| {
            crate::cbor::as_u64(v).ok_or_else(|| format!("a publication's {what} is not a number"))
        };
        let size = number(&size, "size")?;
        let published_at = number(&published_at, "time")?;
        let Value::Text(publisher) = publisher else {
            return Err("a publication's publisher is not text".into());
        };
        check_publisher(&publisher)?;
        Ok(Publication {
            name,
            digest,
            size,
            published_at,
            publisher,
        })
    }
}

/// Checks a publisher's name: 1 to [`MAX_PUBLISHER`] bytes of printable text.
pub fn check_publisher(name: &str) -> Result<(), String> {
    if name.is_empty() || name.len() > MAX_PUBLISHER || !crate::printable::is_printable(name) {
        return Err(format!(
            "the publisher's name must be 1 to {MAX_PUBLISHER} bytes of printable text"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn publication(at: u64, digest: Option<u8>) -> Publication {
        Publication {
            name: "kv".into(),
            digest: digest.map(|b| Digest([b; 32])),
            size: 10,
            published_at: at,
            publisher: "ann".into(),
        }
    }

    #[test]
    fn the_newest_publication_wins_and_ties_go_to_the_larger_digest() {
        assert!(publication(2, Some(1)).supersedes(&publication(1, Some(9))));
        assert!(!publication(1, Some(9)).supersedes(&publication(2, Some(1))));
        assert!(publication(1, Some(9)).supersedes(&publication(1, Some(1))));
        assert!(!publication(1, Some(1)).supersedes(&publication(1, Some(1))));
        // A removal is newer or older like any other.
        assert!(publication(3, None).supersedes(&publication(2, Some(1))));
        assert!(publication(2, Some(1)).supersedes(&publication(1, None)));
    }

    #[test]
    fn publications_from_further_ahead_than_the_clock_skew_are_refused() {
        let now = 1_800_000_000_000;
        let skew = MAX_CLOCK_SKEW.as_millis() as u64;
        for at in [0, now - 1, now, now + skew] {
            assert_eq!(publication(at, Some(1)).check_time(now), Ok(()), "{at}");
        }
        for at in [now + skew + 1, now + 3_600_000, u64::MAX] {
            let err = publication(at, None).check_time(now).unwrap_err();
            assert!(err.contains("ahead of this node's clock"), "{err}");
        }
        let err = publication(u64::MAX, Some(1)).check_time(now).unwrap_err();
        assert!(err.contains("past year 9999"), "{err}");
    }

    #[test]
    fn every_time_prints_without_panicking() {
        assert_eq!(format_time(0), "1970-01-01T00:00:00Z");
        assert_eq!(format_time(1_800_000_000_999), "2027-01-15T08:00:00Z");
        assert_eq!(format_time(LAST_DATE_MS), "9999-12-31T23:59:59Z");
        for ms in [LAST_DATE_MS + 1, 1 << 63, u64::MAX] {
            assert!(format_time(ms).contains("past year 9999"), "{ms}");
        }
    }

    #[test]
    fn publications_round_trip_through_cbor_and_bad_ones_are_named() {
        for p in [publication(7, Some(3)), publication(8, None)] {
            assert_eq!(Publication::from_value(p.to_value()), Ok(p));
        }
        let mut bad = publication(1, Some(1)).to_value();
        if let Value::Array(fields) = &mut bad {
            fields[1] = Value::Bytes(vec![1; 31]);
        }
        let err = Publication::from_value(bad).unwrap_err();
        assert!(err.contains("32 bytes"), "{err}");
        let mut bad = publication(1, Some(1)).to_value();
        if let Value::Array(fields) = &mut bad {
            fields[0] = Value::Text("../etc".into());
        }
        assert!(Publication::from_value(bad).is_err());
        assert!(Publication::from_value(Value::Array(vec![])).is_err());
        assert!(Publication::from_value(Value::Null).is_err());
    }
}
