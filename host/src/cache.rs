//! The compile cache: components compiled by cranelift are kept on disk (wasmtime's own
//! serialisation) so that a second start of the same guest does not compile it again.
//!
//! An entry's name is the SHA-256 of the component's bytes and a hash of the engine's
//! compatibility settings (wasmtime version, target, config), so a changed guest, a new
//! dhost or another machine never picks up a stale entry. Entries are written to a
//! temporary file in the same directory and renamed into place, so several nodes starting
//! at once on one machine never read a half-written file.

use anyhow::Context as _;
use sha2::{Digest, Sha256};
use std::hash::{DefaultHasher, Hash, Hasher};
use std::io::Write;
use std::path::PathBuf;
use wasmtime::Engine;
use wasmtime::component::Component;

/// A directory of compiled components for one engine.
#[derive(Clone, Debug)]
pub struct ComponentCache {
    dir: PathBuf,
    engine: Engine,
    engine_hash: u64,
}

impl ComponentCache {
    /// A cache in `dir` (created on first write) for components compiled by `engine`.
    pub fn new(dir: PathBuf, engine: &Engine) -> Self {
        let mut hasher = DefaultHasher::new();
        engine.precompile_compatibility_hash().hash(&mut hasher);
        env!("CARGO_PKG_VERSION").hash(&mut hasher);
        ComponentCache {
            dir,
            engine: engine.clone(),
            engine_hash: hasher.finish(),
        }
    }

    /// The directory of the cache.
    pub fn dir(&self) -> &std::path::Path {
        &self.dir
    }

    fn entry(&self, bytes: &[u8]) -> PathBuf {
        let digest = Sha256::digest(bytes);
        let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
        self.dir
            .join(format!("{hex}-{:016x}.cwasm", self.engine_hash))
    }

    /// The compiled form of `bytes`: from the cache if it holds it, else from `compile`,
    /// which is then stored. A cache that cannot be read or written only costs a compile.
    pub fn get_or_compile(
        &self,
        bytes: &[u8],
        compile: impl FnOnce() -> anyhow::Result<Component>,
    ) -> anyhow::Result<Component> {
        let entry = self.entry(bytes);
        if entry.exists() {
            // SAFETY: `deserialize_file` trusts the file to be a component this engine
            // serialised. Entries are only ever written by `store` below, under a name that
            // includes the engine's compatibility hash, into the user's own cache directory,
            // and renamed into place only once complete; wasmtime still checks the header
            // and the engine settings. Someone who can write the user's cache directory can
            // already run code as that user.
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
        std::fs::create_dir_all(&self.dir)
            .with_context(|| format!("cannot create {}", self.dir.display()))?;
        let mut file = tempfile::NamedTempFile::new_in(&self.dir)?;
        file.write_all(&bytes)?;
        file.as_file().sync_all()?;
        file.persist(entry)?;
        tracing::debug!("compile cache stored: {}", entry.display());
        Ok(())
    }
}
