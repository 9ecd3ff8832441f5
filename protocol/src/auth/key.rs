//! Group keys: the secret whose holders are the group's members. What a key is (256 random
//! bits), its text format and files (`dhost keygen`, `--key-file`), the keys derived from
//! it for each use, and the [`Keyring`] a node holds: one key, or two during a
//! change-over (it sends with the first and accepts both).
//!
//! The file format (docs/security.md):
//!
//! ```text
//! # comments and blank lines are skipped
//! dhost-group-key 1 <64 hexadecimal digits>
//! ```
//!
//! One key line, or two during a change-over; nothing else.

use std::fmt;
use std::io::Write;
use std::net::SocketAddrV4;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use thiserror::Error;
use zeroize::Zeroizing;

/// The bytes of a group key.
pub const KEY_LEN: usize = 32;

/// The word that opens a key line.
const KEY_WORD: &str = "dhost-group-key";

/// The key format's version, the second word of a key line.
const KEY_FORMAT: &str = "1";

/// The most keys a keyring holds: the current one and the next (a change-over).
pub const MAX_KEYS: usize = 2;

/// The largest key file read (a key line is 84 bytes; room for comments).
const MAX_KEY_FILE: u64 = 64 * 1024;

/// The contexts of the keys derived from a group key (BLAKE3's key derivation: one
/// context, one independent key).
mod context {
    pub(super) const ID: &str = "dhost 2026-12-02 group key id";
    pub(super) const DATAGRAM_MAC: &str = "dhost 2026-12-02 datagram MAC";
    pub(super) const DATAGRAM_AEAD: &str = "dhost 2026-12-02 datagram AEAD";
    pub(super) const CONNECTION: &str = "dhost 2026-12-02 connection handshake";
}

/// The 4 bytes that name a key on the wire (derived from it: they say which key a tag was
/// made with, not the key).
pub type KeyId = [u8; 4];

/// Why a key or key file cannot be used.
#[derive(Debug, Error)]
pub enum KeyError {
    /// The file cannot be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// What the system said.
        source: std::io::Error,
    },
    /// The file's contents are not a key file.
    #[error("{path}, line {line}: {why}")]
    Format {
        /// The file.
        path: PathBuf,
        /// The line (from 1).
        line: usize,
        /// What is wrong.
        why: String,
    },
    /// The file holds no key, or too many.
    #[error("{path}: {why}")]
    Count {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        why: String,
    },
    /// The file belongs to another user.
    #[error(
        "{0}: a group key must be the user's own file (`chown` it, or make a key with `dhost keygen`)"
    )]
    NotOwned(#[from] crate::user_files::Untrusted),
    /// Users other than the owner may read the file.
    #[error(
        "{path} may be read by other users (mode {mode:03o}): a group key must stay secret; \
         run `chmod 600 {path}`"
    )]
    Exposed {
        /// The file.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
    },
}

/// A group key and the keys derived from it.
#[derive(Clone)]
pub struct GroupKey {
    id: KeyId,
    datagram_mac: Zeroizing<[u8; 32]>,
    datagram_aead: Zeroizing<[u8; 32]>,
    connection: Zeroizing<[u8; 32]>,
    secret: Zeroizing<[u8; KEY_LEN]>,
}

impl fmt::Debug for GroupKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never the key itself: it ends up in logs.
        write!(f, "GroupKey({})", hex::encode(self.id))
    }
}

impl GroupKey {
    /// The key made of these bytes.
    pub fn from_bytes(secret: [u8; KEY_LEN]) -> Self {
        let secret = Zeroizing::new(secret);
        let derive = |context| Zeroizing::new(blake3::derive_key(context, &secret[..]));
        let id_bytes = derive(context::ID);
        GroupKey {
            id: [id_bytes[0], id_bytes[1], id_bytes[2], id_bytes[3]],
            datagram_mac: derive(context::DATAGRAM_MAC),
            datagram_aead: derive(context::DATAGRAM_AEAD),
            connection: derive(context::CONNECTION),
            secret,
        }
    }

    /// The key with its datagram keys bound to `group` (its address and port): tags and
    /// encryption made for one group are good in no other, so a datagram captured in one
    /// group runs nowhere else, though both use the same key file. (Connections need no
    /// binding: each proves itself anew, with nonces of both ends.)
    pub fn for_group(&self, group: SocketAddrV4) -> Self {
        let mut material = Zeroizing::new([0u8; KEY_LEN + 6]);
        material[..KEY_LEN].copy_from_slice(&self.secret[..]);
        material[KEY_LEN..KEY_LEN + 4].copy_from_slice(&group.ip().octets());
        material[KEY_LEN + 4..].copy_from_slice(&group.port().to_be_bytes());
        let derive = |context| Zeroizing::new(blake3::derive_key(context, &material[..]));
        GroupKey {
            datagram_mac: derive(context::DATAGRAM_MAC),
            datagram_aead: derive(context::DATAGRAM_AEAD),
            ..self.clone()
        }
    }

    /// A new key from the operating system's random source.
    pub fn generate() -> Result<Self, std::io::Error> {
        let mut secret = Zeroizing::new([0u8; KEY_LEN]);
        fill_random(&mut secret[..])?;
        Ok(Self::from_bytes(*secret))
    }

    /// The id that names the key on the wire.
    pub fn id(&self) -> KeyId {
        self.id
    }

    /// The key of datagrams' tags (keyed BLAKE3).
    pub fn datagram_mac(&self) -> &[u8; 32] {
        &self.datagram_mac
    }

    /// The key of datagrams' encryption (XChaCha20-Poly1305, `--encrypt`).
    pub fn datagram_aead(&self) -> &[u8; 32] {
        &self.datagram_aead
    }

    /// The key the TCP port's handshake proves and derives connection keys from.
    pub fn connection(&self) -> &[u8; 32] {
        &self.connection
    }

    /// The key's line in a key file.
    pub fn to_line(&self) -> String {
        format!("{KEY_WORD} {KEY_FORMAT} {}", hex::encode(&self.secret[..]))
    }

    /// Reads a key line (without its line ending).
    pub fn from_line(line: &str) -> Result<Self, String> {
        let mut words = line.split_ascii_whitespace();
        if words.next() != Some(KEY_WORD) {
            return Err(format!("a key line starts with `{KEY_WORD}`"));
        }
        match words.next() {
            Some(KEY_FORMAT) => {}
            Some(other) => {
                return Err(format!(
                    "key format {other} is not known (this dhost reads format {KEY_FORMAT})"
                ));
            }
            None => return Err("the key format and the key are missing".to_string()),
        }
        let digits = words.next().ok_or("the key is missing")?;
        if words.next().is_some() {
            return Err("more than the key after the key".to_string());
        }
        let mut secret = Zeroizing::new([0u8; KEY_LEN]);
        hex::decode_to_slice(digits, &mut secret[..])
            .map_err(|_| format!("the key is not {} hexadecimal digits", KEY_LEN * 2))?;
        Ok(Self::from_bytes(*secret))
    }

    /// Writes the key to a new file at `path` (readable by its owner alone), refusing to
    /// replace a file unless `replace`. The key goes to a new temporary file of the same
    /// directory (0600, made with `O_EXCL`), which is then renamed to `path`: a link at
    /// `path` is replaced, never followed, so the key cannot be written where a link of
    /// someone else's points.
    pub fn write_new(&self, path: &Path, replace: bool) -> Result<(), KeyError> {
        let io = |source| KeyError::Io {
            path: path.to_path_buf(),
            source,
        };
        let dir = match path.parent() {
            Some(dir) if !dir.as_os_str().is_empty() => dir,
            _ => Path::new("."),
        };
        let mut file = tempfile::Builder::new()
            .prefix(".dhost-key-")
            .permissions(std::fs::Permissions::from_mode(0o600))
            .tempfile_in(dir)
            .map_err(io)?;
        let text = Zeroizing::new(format!(
            "# A dhost group key: whoever holds it is a member of the group. Keep it secret.\n\
             # Nodes use it with `dhost run --key-file FILE` (or DHOST_KEY_FILE=FILE).\n{}\n",
            self.to_line()
        ));
        file.write_all(text.as_bytes()).map_err(io)?;
        file.as_file().sync_all().map_err(io)?;
        let placed = if replace {
            file.persist(path).map(drop)
        } else {
            file.persist_noclobber(path).map(drop)
        };
        placed.map_err(|e| io(e.error))
    }
}

/// Fills `bytes` from the operating system's random source (for keys and nonces).
pub fn fill_random(bytes: &mut [u8]) -> Result<(), std::io::Error> {
    use rand::TryRngCore;
    rand::rngs::OsRng
        .try_fill_bytes(bytes)
        .map_err(std::io::Error::other)
}

/// The keys a node holds: the first makes its tags, any of them is accepted.
#[derive(Debug, Clone)]
pub struct Keyring {
    keys: Vec<GroupKey>,
}

impl Keyring {
    /// A keyring of `keys` (1 or 2; the first sends).
    pub fn new(keys: Vec<GroupKey>) -> Option<Self> {
        (1..=MAX_KEYS)
            .contains(&keys.len())
            .then_some(Keyring { keys })
    }

    /// Reads a key file: one key, or two during a change-over. Refuses a file of another
    /// user (who could have put their key in it), and one that other users may read.
    pub fn load(path: &Path) -> Result<Self, KeyError> {
        let io = |source| KeyError::Io {
            path: path.to_path_buf(),
            source,
        };
        let file = std::fs::File::open(path).map_err(io)?;
        let meta = file.metadata().map_err(io)?;
        crate::user_files::check_owner(path, &meta)?;
        let mode = meta.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            return Err(KeyError::Exposed {
                path: path.to_path_buf(),
                mode,
            });
        }
        let mut text = Zeroizing::new(String::new());
        std::io::Read::read_to_string(&mut std::io::Read::take(file, MAX_KEY_FILE + 1), &mut text)
            .map_err(io)?;
        if text.len() as u64 > MAX_KEY_FILE {
            return Err(KeyError::Count {
                path: path.to_path_buf(),
                why: format!("more than {MAX_KEY_FILE} bytes: not a key file"),
            });
        }
        Self::parse(&text).map_err(|(line, why)| match line {
            Some(line) => KeyError::Format {
                path: path.to_path_buf(),
                line,
                why,
            },
            None => KeyError::Count {
                path: path.to_path_buf(),
                why,
            },
        })
    }

    /// Reads the text of a key file; an error names the line (if it is one line's fault).
    pub fn parse(text: &str) -> Result<Self, (Option<usize>, String)> {
        let mut keys = Vec::new();
        for (n, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let key = GroupKey::from_line(line).map_err(|why| (Some(n + 1), why))?;
            if keys.iter().any(|k: &GroupKey| k.id == key.id) {
                return Err((Some(n + 1), "the same key twice".to_string()));
            }
            keys.push(key);
        }
        let count = keys.len();
        Self::new(keys).ok_or_else(|| {
            let why = if count == 0 {
                "no key in the file (make one with `dhost keygen FILE`)".to_string()
            } else {
                format!(
                    "{count} keys: a key file holds one key, or two during a change-over \
                     (the first is used to send)"
                )
            };
            (None, why)
        })
    }

    /// The keyring with every key's datagram keys bound to `group` ([`GroupKey::for_group`]).
    pub fn for_group(&self, group: SocketAddrV4) -> Self {
        Keyring {
            keys: self.keys.iter().map(|k| k.for_group(group)).collect(),
        }
    }

    /// The key the node sends with.
    pub fn sending(&self) -> &GroupKey {
        &self.keys[0]
    }

    /// The key named `id`, if the node holds it.
    pub fn by_id(&self, id: KeyId) -> Option<&GroupKey> {
        self.keys.iter().find(|k| k.id == id)
    }

    /// The ids of the keys, for logs ("keys 3f9a0c11, 0b77e2d4").
    pub fn ids(&self) -> String {
        let ids: Vec<String> = self.keys.iter().map(|k| hex::encode(k.id)).collect();
        ids.join(", ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_survives_its_line() {
        let key = GroupKey::from_bytes([9; 32]);
        let again = GroupKey::from_line(&key.to_line()).expect("its own line");
        assert_eq!(key.id(), again.id());
        assert_eq!(key.datagram_mac(), again.datagram_mac());
        assert!(!format!("{key:?}").contains(&hex::encode([9u8; 32])));
    }

    #[test]
    fn derived_keys_differ_from_each_other() {
        let key = GroupKey::from_bytes([1; 32]);
        assert_ne!(key.datagram_mac(), key.datagram_aead());
        assert_ne!(key.datagram_mac(), key.connection());
        assert_ne!(GroupKey::from_bytes([2; 32]).id(), key.id());
    }

    /// The first 8 bytes of the datagram MAC key of the key of 32 bytes 0x01, bound to
    /// 239.0.0.1:4723 (computed with PyPI's blake3; the Python client's tests hold it too).
    const GROUP_BOUND_MAC_VECTOR: &str = "d9c84980f416f145";

    #[test]
    fn datagram_keys_are_bound_to_the_group() {
        let key = GroupKey::from_bytes([1; 32]);
        let one = key.for_group("239.0.0.1:4723".parse().unwrap());
        let other_port = key.for_group("239.0.0.1:4724".parse().unwrap());
        let other_addr = key.for_group("239.0.0.2:4723".parse().unwrap());
        for other in [&other_port, &other_addr, &key] {
            assert_ne!(one.datagram_mac(), other.datagram_mac());
            assert_ne!(one.datagram_aead(), other.datagram_aead());
        }
        assert_eq!(one.id(), key.id(), "the same key file names the same key");
        assert_eq!(
            one.connection(),
            key.connection(),
            "connections prove themselves"
        );
        assert_eq!(one.to_line(), key.to_line());
        // The Python client derives the same (clients/python/tests/test_wire.py has this
        // vector too).
        assert_eq!(
            hex::encode(&one.datagram_mac()[..8]),
            GROUP_BOUND_MAC_VECTOR
        );
    }

    #[test]
    fn key_files_are_read_strictly() {
        let one = GroupKey::from_bytes([1; 32]).to_line();
        let two = GroupKey::from_bytes([2; 32]).to_line();
        let three = GroupKey::from_bytes([3; 32]).to_line();
        let ring = Keyring::parse(&format!("# comment\n\n{two}\n{one}\n")).expect("two keys");
        assert_eq!(ring.sending().id(), GroupKey::from_bytes([2; 32]).id());
        assert!(ring.by_id(GroupKey::from_bytes([1; 32]).id()).is_some());
        assert!(ring.by_id(GroupKey::from_bytes([3; 32]).id()).is_none());
        let err = |text: &str| Keyring::parse(text).expect_err(text).1;
        assert!(err("").contains("no key"));
        assert!(err(&format!("{one}\n{two}\n{three}\n")).contains("3 keys"));
        assert!(err(&format!("{one}\n{one}\n")).contains("the same key twice"));
        assert!(err("dhost-group-key 2 00").contains("format 2 is not known"));
        assert!(err("dhost-group-key 1 abc").contains("64 hexadecimal digits"));
        assert!(err("ssh-ed25519 AAAA").contains("starts with"));
        assert_eq!(Keyring::parse("\nx").expect_err("bad").0, Some(2));
    }

    #[test]
    fn key_files_are_the_owners_alone() {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let path = dir.path().join("group.key");
        let key = GroupKey::generate().expect("random bytes");
        key.write_new(&path, false).expect("a new file");
        let mode = std::fs::metadata(&path)
            .expect("written")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        assert_eq!(
            Keyring::load(&path).expect("readable").sending().id(),
            key.id()
        );
        assert!(matches!(
            key.write_new(&path, false),
            Err(KeyError::Io { .. })
        ));
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).expect("chmod");
        let err = Keyring::load(&path).expect_err("exposed").to_string();
        assert!(err.contains("chmod 600"), "{err}");
    }

    #[test]
    fn a_key_file_of_another_user_is_refused_and_keygen_follows_no_link() {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let key = GroupKey::generate().expect("random bytes");
        // A link to a file of someone else's where the key is to go: --force replaces
        // the link, and the file it pointed to is as it was.
        let victim = dir.path().join("victim");
        std::fs::write(&victim, "not a key\n").expect("written");
        let path = dir.path().join("group.key");
        std::os::unix::fs::symlink(&victim, &path).expect("a link");
        assert!(matches!(
            key.write_new(&path, false),
            Err(KeyError::Io { .. })
        ));
        key.write_new(&path, true).expect("replaced");
        assert_eq!(
            std::fs::read_to_string(&victim).expect("read"),
            "not a key\n"
        );
        let meta = std::fs::symlink_metadata(&path).expect("written");
        assert!(meta.is_file(), "the link was replaced by the key file");
        assert_eq!(meta.permissions().mode() & 0o777, 0o600);
        assert_eq!(Keyring::load(&path).expect("ours").sending().id(), key.id());
        // No temporary file is left behind.
        assert_eq!(std::fs::read_dir(dir.path()).expect("listed").count(), 2);
        // A key file of another user (root, as CI runs, can make one).
        if crate::user_files::current_uid() == 0 {
            std::os::unix::fs::chown(&path, Some(65534), None).expect("chown");
            let err = Keyring::load(&path).expect_err("not ours").to_string();
            assert!(err.contains("belongs to user 65534"), "{err}");
        }
    }
}
