//! The compile cache: components compiled by cranelift are kept on disk (wasmtime's own
//! serialisation) so that a second start of the same guest does not compile it again.
//!
//! An entry's name is the SHA-256 of the component's bytes and a hash of the engine's
//! compatibility settings (wasmtime version, target, config), so a changed guest, a new
//! dhost or another machine never picks up a stale entry. Entries are written to a
//! temporary file in the same directory and renamed into place, so several nodes starting
//! at once on one machine never read a half-written file.
//!
//! An entry is native code that runs as the user: whoever can put a file in the directory
//! runs what they want in the next guest that loads it. So the cache is used only when its
//! directory belongs to the user running dhost and no other user may write it (checked
//! when the node starts: otherwise it says so once and compiles without the cache), and
//! an entry only when it passes the same check ([`dhost_protocol::user_files`]); a new directory is
//! made 0700, and entries 0600.

use anyhow::Context as _;
use dhost_protocol::user_files;
use sha2::{Digest, Sha256};
use std::hash::{DefaultHasher, Hash, Hasher};
use std::io::Write;
use std::path::PathBuf;
use wasmtime::Engine;
use wasmtime::component::Component;

/// A directory of compiled components for one engine.
#[derive(Clone, Debug)]
pub(crate) struct ComponentCache {
    dir: PathBuf,
    engine: Engine,
    engine_hash: u64,
}

impl ComponentCache {
    /// The cache in `dir` (made if missing, 0700) for components compiled by `engine`, if
    /// it can be trusted: else it says why (once) and there is none.
    pub(crate) fn open(dir: PathBuf, engine: &Engine) -> Option<Self> {
        if let Err(why) = trusted_dir(&dir) {
            tracing::warn!(
                "not using the compile cache: {why:#}; guests are compiled at each start"
            );
            return None;
        }
        let mut hasher = DefaultHasher::new();
        engine.precompile_compatibility_hash().hash(&mut hasher);
        env!("CARGO_PKG_VERSION").hash(&mut hasher);
        Some(ComponentCache {
            dir,
            engine: engine.clone(),
            engine_hash: hasher.finish(),
        })
    }

    fn entry(&self, bytes: &[u8]) -> PathBuf {
        let digest = Sha256::digest(bytes);
        let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
        self.dir
            .join(format!("{hex}-{:016x}.cwasm", self.engine_hash))
    }

    /// The compiled form of `bytes`: from the cache if it holds it, else from `compile`,
    /// which is then stored. A cache that cannot be read or written only costs a compile.
    pub(crate) fn get_or_compile(
        &self,
        bytes: &[u8],
        compile: impl FnOnce() -> anyhow::Result<Component>,
    ) -> anyhow::Result<Component> {
        let entry = self.entry(bytes);
        let meta = std::fs::symlink_metadata(&entry);
        let usable = meta.as_ref().map(|meta| {
            user_files::check_trusted(&entry, meta)
                .map_err(|why| why.to_string())
                .and_then(|()| match meta.is_file() {
                    true => Ok(()),
                    false => Err(format!("{} is not a file", entry.display())),
                })
        });
        if let Ok(Err(why)) = &usable {
            tracing::warn!("ignoring a compile cache entry: {why}; compiling the guest instead");
        }
        if let Ok(Ok(())) = usable {
            // SAFETY: `deserialize_file` trusts the file to be a component this engine
            // serialised. Entries are only ever written by `store` below, under a name that
            // includes the engine's compatibility hash, and renamed into place only once
            // complete; the directory (checked when the cache was opened) and the entry
            // (checked above, not a link) belong to this user and no other user may write
            // them, so no one else could have put it there or swap it now; wasmtime still
            // checks the header and the engine settings.
            match unsafe { Component::deserialize_file(&self.engine, &entry) } {
                Ok(component) => {
                    tracing::debug!("compile cache hit: {}", entry.display());
                    return Ok(component);
                }
                Err(e) => tracing::warn!(
                    "ignoring unusable compile cache entry {}: {e}",
                    entry.display()
                ),
            }
        }
        let component = compile()?;
        if let Err(e) = self.store(&component, &entry) {
            tracing::warn!(
                "cannot write compile cache entry {}: {e:#}",
                entry.display()
            );
        }
        Ok(component)
    }

    fn store(&self, component: &Component, entry: &PathBuf) -> anyhow::Result<()> {
        let bytes = component.serialize().map_err(anyhow::Error::from)?;
        user_files::create_dir(&self.dir)
            .with_context(|| format!("cannot create {}", self.dir.display()))?;
        // (Made 0600, and renamed over an entry that was not trusted.)
        let mut file = tempfile::NamedTempFile::new_in(&self.dir)?;
        file.write_all(&bytes)?;
        file.as_file().sync_all()?;
        file.persist(entry)?;
        tracing::debug!("compile cache stored: {}", entry.display());
        Ok(())
    }
}

/// Checks the cache directory `dir`, made (0700) if missing: it must belong to this user,
/// and no other user may write it.
fn trusted_dir(dir: &std::path::Path) -> anyhow::Result<()> {
    user_files::create_dir(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let meta = std::fs::metadata(dir).with_context(|| format!("cannot read {}", dir.display()))?;
    user_files::check_trusted(dir, &meta)?;
    Ok(())
}
