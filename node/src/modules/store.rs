//! The module store: published modules on disk, each in a file named by its SHA-256
//! digest (`DIR/sha256/HEX.wasm`).
//!
//! Several nodes on one machine may share a store, so every write goes to a temporary file
//! in the same directory and is renamed into place once complete: a reader sees a whole
//! file or none. Files are made 0600 and directories 0700: the user's alone. Every read checks the digest, so the store never hands out a file whose
//! bytes do not match its name: such a file (a disk error, a hand edit) is removed and
//! reported, and the node fetches the module again.
//!
//! Beside the modules, each node keeps the publications it runs (and the names it knows
//! unpublished) in `DIR/nodes/ID.cbor` (ID from the node's name), to run them again when
//! it restarts:
//!
//! ```text
//! node-file = [node-name, [publication...]]
//! ```

use super::{Digest, Publication};
use ciborium::Value;
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
    /// A node's file does not read.
    #[error("module store {}: {why}", path.display())]
    BadNodeFile {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        why: String,
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
        write_whole(&path, bytes)
    }

    /// Where node `node` keeps what it runs.
    pub fn node_file(&self, node: &str) -> PathBuf {
        let id = Digest::of(node.as_bytes()).short();
        self.dir.join("nodes").join(format!("{id}.cbor"))
    }

    /// Keeps the publications node `node` runs (and the removals it knows).
    pub fn save_node(&self, node: &str, publications: &[Publication]) -> Result<(), StoreError> {
        let value = Value::Array(vec![
            Value::Text(node.to_string()),
            Value::Array(publications.iter().map(Publication::to_value).collect()),
        ]);
        let mut bytes = Vec::new();
        dhost_protocol::wire::encode_item(&value, &mut bytes);
        write_whole(&self.node_file(node), &bytes)
    }

    /// The publications node `node` ran when it last saved them (none if it never did).
    /// Entries that do not read are skipped, with a warning.
    pub fn load_node(&self, node: &str) -> Result<Vec<Publication>, StoreError> {
        let path = self.node_file(node);
        let bytes = match std::fs::read(&path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(source) => return Err(StoreError::Io { path, source }),
        };
        let bad = |why: &str| StoreError::BadNodeFile {
            path: path.clone(),
            why: why.to_string(),
        };
        let value =
            dhost_protocol::wire::next_item(&mut &bytes[..]).map_err(|e| bad(&e.to_string()))?;
        let Value::Array(fields) = value else {
            return Err(bad("not [node-name, [publication...]]"));
        };
        let Ok([Value::Text(saved_by), Value::Array(items)]) = <[Value; 2]>::try_from(fields)
        else {
            return Err(bad("not [node-name, [publication...]]"));
        };
        if saved_by != node {
            return Err(bad(&format!("it is node {saved_by}'s, not {node}'s")));
        }
        Ok(items
            .into_iter()
            .filter_map(|item| {
                Publication::from_value(item)
                    .inspect_err(|why| {
                        tracing::warn!("{}: skipped an entry: {why}", path.display())
                    })
                    .ok()
            })
            .collect())
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

/// Writes `bytes` to `path` whole: to a temporary file in the same directory (made if
/// missing), then renamed into place, so that a reader sees the old file or the new one.
fn write_whole(path: &Path, bytes: &[u8]) -> Result<(), StoreError> {
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| StoreError::Io { path, source }
    };
    let dir = path.parent().unwrap_or(Path::new("."));
    // (Directories 0700 and files 0600: the user's alone, as every file of the node.)
    dhost_protocol::user_files::create_dir(dir).map_err(io(dir))?;
    let mut file = tempfile::Builder::new()
        .prefix(".incoming-")
        .tempfile_in(dir)
        .map_err(io(dir))?;
    file.write_all(bytes).map_err(io(file.path()))?;
    file.as_file().sync_all().map_err(io(file.path()))?;
    file.persist(path).map_err(|e| StoreError::Io {
        path: path.to_path_buf(),
        source: e.error,
    })?;
    Ok(())
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

    #[test]
    fn a_node_keeps_its_publications_under_its_name() {
        let dir = tempfile::tempdir().unwrap();
        let store = ModuleStore::new(dir.path().to_path_buf());
        assert_eq!(store.load_node("ann").unwrap(), []);
        let kv = Publication {
            name: "kv".into(),
            digest: Some(Digest([1; 32])),
            size: 5,
            published_at: 9,
            publisher: "bob".into(),
        };
        let gone = Publication {
            name: "old".into(),
            digest: None,
            size: 0,
            published_at: 10,
            publisher: "bob".into(),
        };
        store.save_node("ann", &[kv.clone(), gone.clone()]).unwrap();
        assert_eq!(store.load_node("ann").unwrap(), [kv.clone(), gone]);
        store.save_node("ann", std::slice::from_ref(&kv)).unwrap();
        assert_eq!(store.load_node("ann").unwrap(), [kv]);
        assert_eq!(store.load_node("cat").unwrap(), []);
        std::fs::write(store.node_file("cat"), b"\xff").unwrap();
        assert!(matches!(
            store.load_node("cat"),
            Err(StoreError::BadNodeFile { .. })
        ));
    }
}
