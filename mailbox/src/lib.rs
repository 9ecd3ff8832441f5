//! dhost-mailbox: mailboxes (the DIPC assignment), a fixed number of fixed-size blocks that
//! many clients read and write at once, each behind a fair reader-writer lock; their
//! telnet-friendly text protocol; and `dipc` / `dipcrm`, the small programs that serve them
//! on a port of their own. The dhost node depends on this crate to serve the same
//! mailboxes on its own TCP port; this crate depends on nothing of the node's, so `dipc`
//! links only what it uses.
//!
//! - this module: the blocks and their locks ([`Mailboxes`]);
//! - [`config`]: how many mailboxes, how large, and the longest wait ([`MailboxConfig`]);
//! - [`protocol`]: the text protocol (`r N`, `w N`, `q`);
//! - [`store`]: mailboxes kept in a memory-mapped file (`--store`);
//! - [`port`]: a TCP port that serves each connection as a task, at most a set number at
//!   once (the node's port is one too), and the rate-limited log of what it drops;
//! - [`daemon`]: background servers: binding, forking, pid files, stopping (`dipcrm`);
//! - [`functions`]: the mailbox functions a node serves to its guests and peers, as calls;
//! - [`cli`]: the arguments of `dipc` and `dipcrm` (and of `dhost mailbox`), and the log;
//! - [`printable`]: text from the network or a guest made safe for a terminal or a log
//!   (the protocol crate's, which the log here uses).
//!
//! Each mailbox's lock is tokio's `RwLock`, which is fair: waiters are served first come,
//! first served, and a reader queued behind a writer waits for it, so neither a stream of
//! readers nor a stream of writers can starve the other. Every wait is bounded by
//! [`MailboxConfig::lock_timeout`]: a client gets a timeout error, never a hang. Data to be
//! written is received whole before the lock is taken, so a slow or vanishing writer never
//! holds a mailbox, and a reader always copies one complete write.

pub mod cli;
mod config;
pub mod daemon;
pub mod functions;
pub mod port;
pub mod protocol;
mod store;

pub use config::{
    ConfigError, DEFAULT_LOCK_TIMEOUT, MAX_MAILBOXES, MAX_TOTAL_BYTES, MailboxConfig,
};
pub use dhost_protocol::printable;

use std::time::{Duration, Instant};
use thiserror::Error;
use tokio::sync::RwLock;

/// Why a read or write failed; the text is the protocol's error reply.
#[derive(Debug, Error, PartialEq)]
pub enum MailboxError {
    /// No such mailbox.
    #[error("no mailbox {number}: mailboxes are numbered 0 to {last}")]
    OutOfRange {
        /// The number asked for.
        number: u64,
        /// The last mailbox's number.
        last: usize,
    },
    /// More data than a packet or a mailbox holds.
    #[error("{len} bytes is more than a write may carry ({max} bytes)")]
    TooLarge {
        /// The length of the data.
        len: usize,
        /// The most allowed.
        max: usize,
    },
    /// The lock stayed taken for too long.
    #[error("timeout: mailbox {number} stayed locked for {}", humantime::format_duration(*.waited))]
    Timeout {
        /// The mailbox.
        number: usize,
        /// How long the command waited.
        waited: Duration,
    },
}

/// The content of one mailbox: in memory, or in a slot of a store file.
#[derive(Debug)]
enum Content {
    Memory(Vec<u8>),
    Stored(store::Slot),
}

impl Content {
    fn get(&self) -> &[u8] {
        match self {
            Content::Memory(data) => data,
            Content::Stored(slot) => slot.get(),
        }
    }

    fn set(&mut self, data: &[u8]) {
        match self {
            Content::Memory(content) => {
                content.clear();
                content.extend_from_slice(data);
            }
            Content::Stored(slot) => slot.set(data),
        }
    }
}

/// The mailboxes of one server or node.
#[derive(Debug)]
pub struct Mailboxes {
    config: MailboxConfig,
    // (Declared before `store`, so that the slots go before the map they point into.)
    boxes: Vec<RwLock<Content>>,
    store: Option<store::Store>,
}

impl Mailboxes {
    /// Empty mailboxes as `config` says, in memory (taken as they fill).
    pub fn new(config: MailboxConfig) -> Self {
        Mailboxes {
            config,
            boxes: (0..config.count)
                .map(|_| RwLock::new(Content::Memory(Vec::new())))
                .collect(),
            store: None,
        }
    }

    /// Mailboxes as `config` says, kept in the store file at `path` (created if missing,
    /// with empty mailboxes; otherwise they hold what they held).
    pub fn stored(config: MailboxConfig, path: &std::path::Path) -> anyhow::Result<Self> {
        let (store, slots) = store::Store::open(path, &config)?;
        Ok(Mailboxes {
            config,
            boxes: slots
                .into_iter()
                .map(|slot| RwLock::new(Content::Stored(slot)))
                .collect(),
            store: Some(store),
        })
    }

    /// Writes the store file's changes back to disk (nothing without a store).
    pub fn flush(&self) -> std::io::Result<()> {
        self.store.as_ref().map_or(Ok(()), store::Store::flush)
    }

    /// The configuration.
    pub fn config(&self) -> &MailboxConfig {
        &self.config
    }

    /// The largest write: the packet size (never more than a mailbox).
    pub fn max_write(&self) -> usize {
        self.config.packet.min(self.config.size)
    }

    fn mailbox(&self, number: u64) -> Result<(usize, &RwLock<Content>), MailboxError> {
        usize::try_from(number)
            .ok()
            .and_then(|n| self.boxes.get(n).map(|b| (n, b)))
            .ok_or(MailboxError::OutOfRange {
                number,
                last: self.boxes.len() - 1,
            })
    }

    /// Checks that mailbox `number` exists, before its data is received.
    pub fn check(&self, number: u64) -> Result<(), MailboxError> {
        self.mailbox(number).map(drop)
    }

    /// A copy of mailbox `number`'s content, and how long the read waited for the lock.
    pub async fn read(&self, number: u64) -> Result<(Vec<u8>, Duration), MailboxError> {
        let (n, mailbox) = self.mailbox(number)?;
        let started = Instant::now();
        let content = tokio::time::timeout(self.config.lock_timeout, mailbox.read())
            .await
            .map_err(|_| MailboxError::Timeout {
                number: n,
                waited: started.elapsed(),
            })?;
        Ok((content.get().to_vec(), started.elapsed()))
    }

    /// Replaces mailbox `number`'s content with `data`; returns how long it waited.
    pub async fn write(&self, number: u64, data: &[u8]) -> Result<Duration, MailboxError> {
        let (n, mailbox) = self.mailbox(number)?;
        if data.len() > self.max_write() {
            return Err(MailboxError::TooLarge {
                len: data.len(),
                max: self.max_write(),
            });
        }
        let started = Instant::now();
        let mut content = tokio::time::timeout(self.config.lock_timeout, mailbox.write())
            .await
            .map_err(|_| MailboxError::Timeout {
                number: n,
                waited: started.elapsed(),
            })?;
        content.set(data);
        Ok(started.elapsed())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_arguments_of_dipc_are_checked() {
        let config = MailboxConfig::new(8, 4, 1).unwrap();
        assert_eq!((config.count, config.size, config.packet), (8, 4096, 1024));
        assert_eq!(
            MailboxConfig::new(0, 4, 1),
            Err(ConfigError::Zero("number of mailboxes"))
        );
        assert_eq!(
            MailboxConfig::new(8, 0, 1),
            Err(ConfigError::Zero("mailbox size"))
        );
        assert_eq!(
            MailboxConfig::new(8, 4, 0),
            Err(ConfigError::Zero("packet size"))
        );
        assert!(matches!(
            MailboxConfig::new(8, 4, 5),
            Err(ConfigError::PacketTooLarge { .. })
        ));
        assert!(matches!(
            MailboxConfig::new(1 << 20, 1 << 20, 1),
            Err(ConfigError::TooMany | ConfigError::TooLarge { .. })
        ));
        assert!(matches!(
            MailboxConfig::new(2, u64::MAX, 1),
            Err(ConfigError::TooLarge { .. })
        ));
    }

    #[tokio::test]
    async fn reads_see_whole_writes_and_bad_numbers_are_refused() {
        let boxes = Mailboxes::new(MailboxConfig::new(2, 1, 1).unwrap());
        assert_eq!(boxes.read(0).await.unwrap().0, b"");
        boxes.write(1, b"hello").await.unwrap();
        assert_eq!(boxes.read(1).await.unwrap().0, b"hello");
        boxes.write(1, b"hi").await.unwrap();
        assert_eq!(boxes.read(1).await.unwrap().0, b"hi");
        assert_eq!(
            boxes.read(2).await.unwrap_err().to_string(),
            "no mailbox 2: mailboxes are numbered 0 to 1"
        );
        assert!(matches!(
            boxes.write(0, &[0; 1025]).await,
            Err(MailboxError::TooLarge {
                len: 1025,
                max: 1024
            })
        ));
    }

    #[tokio::test]
    async fn a_held_lock_times_out_instead_of_hanging() {
        let mut config = MailboxConfig::new(1, 1, 1).unwrap();
        config.lock_timeout = Duration::from_millis(50);
        let boxes = Mailboxes::new(config);
        let held = boxes.boxes[0].write().await;
        let err = boxes.read(0).await.unwrap_err();
        assert!(
            matches!(err, MailboxError::Timeout { number: 0, .. }),
            "{err}"
        );
        assert!(
            err.to_string()
                .starts_with("timeout: mailbox 0 stayed locked for 5")
        );
        drop(held);
        assert!(boxes.read(0).await.is_ok());
    }
}
