//! Mailboxes kept in a memory-mapped file (`--store FILE`), so that their content survives
//! a restart of the server.
//!
//! The file is a 64-byte header, then one slot per mailbox: an 8-byte length, then `size`
//! bytes of room. All numbers are little-endian.
//!
//! ```text
//! header = "dhost-mailboxes\0" version:u32 pad:u32 count:u64 size:u64 pad:[u8; 24]
//! slot   = length:u64 data:[u8; size]
//! ```
//!
//! A file made for another number or size of mailboxes is refused, naming both, and so is
//! a file another server has open (an exclusive `flock`, held while the store is open):
//! two processes writing one slot would tear each other's writes. Each slot is a region of
//! the map of its own, reached only through its mailbox's lock; slots are handed only to
//! [`crate::Mailboxes`], which drops them before the map.

use crate::MailboxConfig;
use anyhow::{Context as _, bail};
use memmap2::MmapMut;
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::Path;

const MAGIC: &[u8; 16] = b"dhost-mailboxes\0";
const VERSION: u32 = 1;
const HEADER: usize = 64;
const LENGTH: usize = 8;

/// The memory map of a store file; it must outlive the [`Slot`]s made from it.
#[derive(Debug)]
pub(super) struct Store {
    map: MmapMut,
    /// The open file, which holds the lock.
    _file: std::fs::File,
}

/// One mailbox's region of the map: its length field and its room.
#[derive(Debug)]
pub(super) struct Slot {
    ptr: *mut u8,
    size: usize,
}

// SAFETY: a slot points into a map that lives as long as the mailboxes that hold the slot
// (`Mailboxes` drops its slots before its store), the slots of one map never overlap, and a
// slot is only read through `&Slot` and written through `&mut Slot`, which its mailbox's
// reader-writer lock hands out; so sending or sharing one between threads is sound.
unsafe impl Send for Slot {}
// SAFETY: as above.
unsafe impl Sync for Slot {}

impl Slot {
    /// The content.
    pub(super) fn get(&self) -> &[u8] {
        // SAFETY: the slot is LENGTH + size bytes of a live map (see `Store::open`), and
        // the lock that lends `&self` keeps writers out.
        let bytes = unsafe { std::slice::from_raw_parts(self.ptr, LENGTH + self.size) };
        let mut length = [0u8; LENGTH];
        length.copy_from_slice(&bytes[..LENGTH]);
        // A damaged length (the file edited, a crash in mid-write) cannot reach past the slot.
        let length = (u64::from_le_bytes(length) as usize).min(self.size);
        &bytes[LENGTH..LENGTH + length]
    }

    /// Replaces the content with `data` (at most the mailbox size).
    pub(super) fn set(&mut self, data: &[u8]) {
        let data = &data[..data.len().min(self.size)];
        // SAFETY: as in `get`; `&mut self` means no reader holds the slot.
        let bytes = unsafe { std::slice::from_raw_parts_mut(self.ptr, LENGTH + self.size) };
        bytes[LENGTH..LENGTH + data.len()].copy_from_slice(data);
        bytes[..LENGTH].copy_from_slice(&(data.len() as u64).to_le_bytes());
    }
}

impl Store {
    /// Opens the store at `path`, creating it for `config` if it does not exist; returns it
    /// and one slot per mailbox.
    pub(super) fn open(path: &Path, config: &MailboxConfig) -> anyhow::Result<(Store, Vec<Slot>)> {
        let slot = LENGTH + config.size;
        let total = HEADER + slot * config.count;
        // (A new store is its user's alone: it holds what clients wrote.)
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(path)
            .with_context(|| format!("cannot open the mailbox store {}", path.display()))?;
        use std::os::fd::AsRawFd;
        // SAFETY: flock takes the descriptor of a file open for the whole call.
        if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } == -1 {
            bail!(
                "the mailbox store {} is in use by another process",
                path.display()
            );
        }
        let existing = file.metadata()?.len();
        if existing == 0 {
            file.set_len(total as u64)
                .with_context(|| format!("cannot size the mailbox store {}", path.display()))?;
        }
        // SAFETY: the map is of a regular file this process opened read-write; another
        // process changing it underneath would only change mailbox bytes, whose lengths are
        // clamped when read.
        let mut map = unsafe { MmapMut::map_mut(&file) }
            .with_context(|| format!("cannot map the mailbox store {}", path.display()))?;
        if existing == 0 {
            map[..16].copy_from_slice(MAGIC);
            map[16..20].copy_from_slice(&VERSION.to_le_bytes());
            map[24..32].copy_from_slice(&(config.count as u64).to_le_bytes());
            map[32..40].copy_from_slice(&(config.size as u64).to_le_bytes());
        } else {
            check_header(&map, config, path)?;
            if map.len() != total {
                bail!(
                    "the mailbox store {} is {} bytes long, not the {total} its header says",
                    path.display(),
                    map.len()
                );
            }
        }
        let base = map.as_mut_ptr();
        let slots = (0..config.count)
            .map(|i| Slot {
                // SAFETY: HEADER + i * slot + slot <= total == map.len(): inside the map.
                ptr: unsafe { base.add(HEADER + i * slot) },
                size: config.size,
            })
            .collect();
        Ok((Store { map, _file: file }, slots))
    }

    /// Writes what changed back to the file.
    pub(super) fn flush(&self) -> std::io::Result<()> {
        self.map.flush()
    }
}

fn check_header(map: &[u8], config: &MailboxConfig, path: &Path) -> anyhow::Result<()> {
    let number = |range: std::ops::Range<usize>| {
        let mut bytes = [0u8; 8];
        bytes.copy_from_slice(&map[range]);
        u64::from_le_bytes(bytes)
    };
    if map.len() < HEADER || &map[..16] != MAGIC {
        bail!("{} is not a dhost mailbox store", path.display());
    }
    let version = u32::from_le_bytes([map[16], map[17], map[18], map[19]]);
    if version != VERSION {
        bail!(
            "the mailbox store {} is of version {version}, this dhost reads version {VERSION}",
            path.display()
        );
    }
    let (count, size) = (number(24..32), number(32..40));
    if count != config.count as u64 || size != config.size as u64 {
        bail!(
            "the mailbox store {} holds {count} mailboxes of {} KiB, not {} of {} KiB: start \
             with the same numbers, or another file",
            path.display(),
            size / 1024,
            config.count,
            config.size / 1024
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_survives_reopening_and_other_shapes_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("boxes");
        let config = MailboxConfig::new(3, 1, 1).unwrap();
        {
            let (store, mut slots) = Store::open(&path, &config).unwrap();
            assert_eq!(slots[2].get(), b"");
            slots[2].set(b"kept");
            slots[0].set(&[7u8; 2000]);
            store.flush().unwrap();
        }
        let (store, slots) = Store::open(&path, &config).unwrap();
        assert_eq!(slots[2].get(), b"kept");
        let err = Store::open(&path, &config).unwrap_err().to_string();
        assert!(err.contains("is in use by another process"), "{err}");
        assert_eq!(slots[0].get(), &[7u8; 1024][..], "cut to the mailbox size");
        drop(slots);
        drop(store);
        let other = MailboxConfig::new(4, 1, 1).unwrap();
        let err = Store::open(&path, &other).unwrap_err().to_string();
        assert!(
            err.contains("holds 3 mailboxes of 1 KiB, not 4 of 1 KiB"),
            "{err}"
        );
        std::fs::write(
            &path,
            b"not a store at all, but long enough to hold a header ........",
        )
        .unwrap();
        let err = Store::open(&path, &config).unwrap_err().to_string();
        assert!(err.contains("is not a dhost mailbox store"), "{err}");
    }
}
