//! The module store: published modules on disk, each in a file named by its SHA-256
//! digest (`DIR/sha256/HEX.wasm`).
//!
//! Several nodes on one machine may share a store, so every write goes to a temporary file
//! in the same directory and is renamed into place once complete: a reader sees a whole
//! file or none. Every read checks the digest, so the store never hands out a file whose
//! bytes do not match its name: such a file (a disk error, a hand edit) is removed and
//! reported, and the node fetches the module again.

use super::Digest;
use std::io::Write as _;
use std::path::{Path, PathBuf};

/// Why the store could not read or write a module.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The file system refused.
    #[error("module store {}: {source}", path.display())]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// What failed.
        source: std::io::Error,
    },
    /// A stored file's bytes do not match its name; it was removed.
    #[error("module store {}: its content has digest {found}, not the one in its name; removed it", path.display())]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// The digest of what it held.
        found: Digest,
    },
    /// A stored file is larger than any module the node accepts.
    #[error("module store {}: {size} bytes, more than the largest module accepted ({max})", path.display())]
    TooLarge {
        /// The file.
        path: PathBuf,
        /// Its size.
        size: u64,
        /// The limit.
        max: u64,
    },
}

/// A content-addressed directory of modules.
#[derive(Debug, Clone)]
pub struct ModuleStore {
    dir: PathBuf,
}

impl ModuleStore {
    /// The store in `dir` (created on the first write).
    pub fn new(dir: PathBuf) -> Self {
        ModuleStore { dir }
    }

    /// The default store: the user's data directory (`~/.local/share/dhost/modules`).
    pub fn default_dir() -> Option<PathBuf> {
        dirs::data_dir().map(|d| d.join("dhost").join("modules"))
    }

    /// The store's directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn blobs(&self) -> PathBuf {
        self.dir.join("sha256")
    }

    /// Where the module with `digest` is kept.
    pub fn path(&self, digest: &Digest) -> PathBuf {
        self.blobs().join(format!("{digest}.wasm"))
    }

    /// Keeps `bytes`, whose digest is `digest` (checked again here), unless the store
    /// holds them already.
    pub fn put(&self, digest: &Digest, bytes: &[u8]) -> Result<(), StoreError> {
        let found = Digest::of(bytes);
        let path = self.path(digest);
        if found != *digest {
            return Err(StoreError::Corrupt { path, found });
        }
        if std::fs::metadata(&path).is_ok_and(|m| m.len() == bytes.len() as u64) {
            return Ok(());
        }
        let blobs = self.blobs();
        let io = |path: &Path| {
            let path = path.to_path_buf();
            move |source| StoreError::Io { path, source }
        };
        std::fs::create_dir_all(&blobs).map_err(io(&blobs))?;
        let mut file = tempfile::Builder::new()
            .prefix(".incoming-")
            .tempfile_in(&blobs)
            .map_err(io(&blobs))?;
        file.write_all(bytes).map_err(io(file.path()))?;
        file.as_file().sync_all().map_err(io(file.path()))?;
        file.persist(&path).map_err(|e| StoreError::Io {
            path: path.clone(),
            source: e.error,
        })?;
        Ok(())
    }

    /// The module with `digest`, if the store holds it (and it is at most `max` bytes).
    /// A file whose bytes do not match its digest is removed, and is an error.
    pub fn get(&self, digest: &Digest, max: u64) -> Result<Option<Vec<u8>>, StoreError> {
        let path = self.path(digest);
        let io = |source| StoreError::Io {
            path: path.clone(),
            source,
        };
        let size = match std::fs::metadata(&path) {
            Ok(meta) => meta.len(),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(io(e)),
        };
        if size > max {
            return Err(StoreError::TooLarge { path, size, max });
        }
        let bytes = match std::fs::read(&path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(io(e)),
        };
        let found = Digest::of(&bytes);
        if found != *digest {
            // (Another node sharing the store may have removed it first.)
            let _ = std::fs::remove_file(&path);
            return Err(StoreError::Corrupt { path, found });
        }
        Ok(Some(bytes))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modules_are_kept_under_their_digest_and_checked_when_read() {
        let dir = tempfile::tempdir().unwrap();
        let store = ModuleStore::new(dir.path().join("store"));
        let bytes = b"\0asm\x0d\0\x01\0 a module".to_vec();
        let digest = Digest::of(&bytes);
        assert_eq!(store.get(&digest, 1 << 20).unwrap(), None);
        store.put(&digest, &bytes).unwrap();
        store.put(&digest, &bytes).unwrap(); // again: a no-op
        assert_eq!(store.get(&digest, 1 << 20).unwrap(), Some(bytes.clone()));
        assert!(matches!(
            store.get(&digest, 4),
            Err(StoreError::TooLarge { size, .. }) if size == bytes.len() as u64
        ));
        // No temporary file is left behind.
        let names: Vec<_> = std::fs::read_dir(store.blobs())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names, [format!("{digest}.wasm")]);

        // Bytes that do not match the name are refused when put...
        let other = Digest::of(b"other");
        assert!(matches!(
            store.put(&other, &bytes),
            Err(StoreError::Corrupt { .. })
        ));
        // ...and a file changed on disk is never served: it is removed.
        std::fs::write(store.path(&digest), b"tampered").unwrap();
        assert!(matches!(
            store.get(&digest, 1 << 20),
            Err(StoreError::Corrupt { found, .. }) if found == Digest::of(b"tampered")
        ));
        assert_eq!(store.get(&digest, 1 << 20).unwrap(), None);
    }
}
