//! How many mailboxes a server holds, how large, the largest packet and the longest wait
//! for a lock ([`MailboxConfig`]): `dipc`'s arguments, checked against the server's limits.

use std::time::Duration;
use thiserror::Error;

/// The most mailboxes a server holds.
pub const MAX_MAILBOXES: usize = 1_000_000;

/// The most memory all mailboxes together may take.
pub const MAX_TOTAL_BYTES: u64 = 4 << 30;

/// How long a command waits for a mailbox's lock by default.
pub const DEFAULT_LOCK_TIMEOUT: Duration = Duration::from_secs(5);

/// How many mailboxes there are and how large, the largest packet, and the longest wait.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MailboxConfig {
    /// The number of mailboxes, numbered from 0.
    pub count: usize,
    /// The size of one mailbox, in bytes.
    pub size: usize,
    /// The most data one write may carry, in bytes (at most `size`).
    pub packet: usize,
    /// The longest a command waits for a mailbox's lock.
    pub lock_timeout: Duration,
}

/// Why a mailbox configuration is refused.
#[derive(Debug, Error, PartialEq)]
pub enum ConfigError {
    /// A number that must not be zero is.
    #[error("the {0} must be at least 1")]
    Zero(&'static str),
    /// Too many mailboxes.
    #[error("at most {MAX_MAILBOXES} mailboxes")]
    TooMany,
    /// More memory than allowed.
    #[error("{count} mailboxes of {size_kib} KiB take more than {} GiB", MAX_TOTAL_BYTES >> 30)]
    TooLarge {
        /// The number of mailboxes.
        count: usize,
        /// The size of one, in KiB.
        size_kib: u64,
    },
    /// A packet larger than a mailbox.
    #[error("a packet of {packet_kib} KiB is larger than a mailbox of {size_kib} KiB")]
    PacketTooLarge {
        /// The packet size, in KiB.
        packet_kib: u64,
        /// The mailbox size, in KiB.
        size_kib: u64,
    },
}

impl MailboxConfig {
    /// `count` mailboxes of `size_kib` KiB each, packets of at most `packet_kib` KiB: the
    /// arguments of `dipc`, checked.
    pub fn new(count: u64, size_kib: u64, packet_kib: u64) -> Result<Self, ConfigError> {
        if count == 0 {
            return Err(ConfigError::Zero("number of mailboxes"));
        }
        if size_kib == 0 {
            return Err(ConfigError::Zero("mailbox size"));
        }
        if packet_kib == 0 {
            return Err(ConfigError::Zero("packet size"));
        }
        if count > MAX_MAILBOXES as u64 {
            return Err(ConfigError::TooMany);
        }
        let total = count
            .checked_mul(size_kib)
            .and_then(|k| k.checked_mul(1024));
        if total.is_none_or(|t| t > MAX_TOTAL_BYTES) {
            return Err(ConfigError::TooLarge {
                count: count as usize,
                size_kib,
            });
        }
        if packet_kib > size_kib {
            return Err(ConfigError::PacketTooLarge {
                packet_kib,
                size_kib,
            });
        }
        Ok(MailboxConfig {
            count: count as usize,
            size: (size_kib * 1024) as usize,
            packet: (packet_kib * 1024) as usize,
            lock_timeout: DEFAULT_LOCK_TIMEOUT,
        })
    }

    /// The configuration in words, for logs.
    pub fn describe(&self) -> String {
        format!(
            "{} mailboxes of {} KiB, packets of at most {} KiB",
            self.count,
            self.size / 1024,
            self.packet / 1024
        )
    }
}
