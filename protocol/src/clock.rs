//! The group's time: how far the clocks of its hosts may differ ([`MAX_CLOCK_SKEW`]), and
//! now by this host's wall clock ([`unix_millis`]), for what is stamped with it (datagrams'
//! time of sending, publications' dates).

use std::time::{Duration, SystemTime};

/// The largest difference between a keyed datagram's time of sending
/// ([`crate::wire::Header::sent_at`], by its sender's clock) and the receiver's clock:
/// anything older (or further in the future) is refused as stale, and so is a module
/// published further in the future. The clocks of a keyed group's hosts must agree within
/// it (NTP).
pub const MAX_CLOCK_SKEW: Duration = Duration::from_secs(60);

/// Milliseconds since the Unix epoch, by this host's clock (0 if the clock is before it).
pub fn unix_millis() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}
