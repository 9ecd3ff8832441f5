//! Files and directories of the user running dhost alone: the checks a file must pass
//! before what it holds is trusted (a key, native code from the compile cache), and the
//! way the node makes those it writes (directories 0700; files are made 0600 by tempfile,
//! or by their own `mode`).
//!
//! A file another user owns, or that users other than its owner may write, can hold what
//! that user wants: a key of their choosing, machine code that runs as this user. So such
//! a file is refused, as ssh refuses a private key or a configuration file others may write.

use std::fs::Metadata;
use std::os::unix::fs::{DirBuilderExt as _, MetadataExt as _};
use std::path::{Path, PathBuf};
use thiserror::Error;

/// Why a file or directory is not trusted.
#[derive(Debug, Clone, Error, PartialEq, Eq)]
pub enum Untrusted {
    /// Another user owns it.
    #[error(
        "{} belongs to user {owner}, not to the user running dhost ({me}): another user \
         could have put anything there", path.display()
    )]
    NotOwned {
        /// The file or directory.
        path: PathBuf,
        /// Its owner's uid.
        owner: u32,
        /// The uid of the user running dhost.
        me: u32,
    },
    /// Users other than its owner may write it.
    #[error(
        "{} may be written by other users (mode {mode:03o}): they could have put anything \
         there; run `chmod go-w {}`", path.display(), path.display()
    )]
    Writable {
        /// The file or directory.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
    },
}

/// The effective uid of this process.
pub fn current_uid() -> u32 {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() }
}

/// Checks that the user running dhost owns `path` (whose metadata is `meta`).
pub fn check_owner(path: &Path, meta: &Metadata) -> Result<(), Untrusted> {
    let (owner, me) = (meta.uid(), current_uid());
    if owner != me {
        return Err(Untrusted::NotOwned {
            path: path.to_path_buf(),
            owner,
            me,
        });
    }
    Ok(())
}

/// Checks that the user running dhost owns `path` and that no other user may write it.
pub fn check_trusted(path: &Path, meta: &Metadata) -> Result<(), Untrusted> {
    check_owner(path, meta)?;
    let mode = meta.mode() & 0o7777;
    if mode & 0o022 != 0 {
        return Err(Untrusted::Writable {
            path: path.to_path_buf(),
            mode,
        });
    }
    Ok(())
}

/// Makes directory `dir` and its missing parents, readable by their owner alone (0700).
/// An existing directory is left as it is.
pub fn create_dir(dir: &Path) -> std::io::Result<()> {
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt as _;

    #[test]
    fn only_the_users_own_unwritable_files_are_trusted() {
        let dir = tempfile::tempdir().unwrap();
        let made = dir.path().join("a/b");
        create_dir(&made).unwrap();
        let meta = std::fs::metadata(&made).unwrap();
        assert_eq!(meta.mode() & 0o777, 0o700);
        assert_eq!(check_trusted(&made, &meta), Ok(()));
        for mode in [0o720, 0o702, 0o777] {
            std::fs::set_permissions(&made, std::fs::Permissions::from_mode(mode)).unwrap();
            let meta = std::fs::metadata(&made).unwrap();
            let err = check_trusted(&made, &meta).unwrap_err();
            assert!(matches!(err, Untrusted::Writable { .. }), "{err}");
            assert!(err.to_string().contains("chmod go-w"), "{err}");
        }
        // Read by others is no threat to what the file holds.
        std::fs::set_permissions(&made, std::fs::Permissions::from_mode(0o755)).unwrap();
        assert_eq!(
            check_trusted(&made, &std::fs::metadata(&made).unwrap()),
            Ok(())
        );
        // Another user's: as root (as CI runs), one made nobody's; else root's own `/`.
        let theirs = if current_uid() == 0 {
            std::os::unix::fs::chown(&made, Some(65534), None).unwrap();
            made.clone()
        } else {
            PathBuf::from("/")
        };
        let err = check_trusted(&theirs, &std::fs::metadata(&theirs).unwrap()).unwrap_err();
        assert!(matches!(err, Untrusted::NotOwned { .. }), "{err}");
        assert!(err.to_string().contains("belongs to user"), "{err}");
    }
}
