//! The node's side of publishing (`dhost run --accept-modules`): it answers the module
//! requests of its TCP port ([`super::protocol`]), takes transfers ([`super::uploads`]),
//! checks and loads what it is sent ([`super::loader`]), catches up with what its peers
//! announce by fetching what it lacks ([`super::fetch`]), and keeps what it runs in its
//! file in the store, to run it again after a restart.
//!
//! Everything here runs on the node's network thread (tokio); compiling, instantiating and
//! file writes run on tokio's blocking threads, and the loaded guest is handed to the event
//! loop ([`ModuleChange`]), which swaps it in between two events: a call in progress
//! finishes on the old instance, and the next one runs on the new.
//!
//! What a module must pass, in order, before the node runs it (a failure leaves the running
//! guests as they were and writes nothing to the store, and the publisher is told why):
//!
//! 1. the publisher is one this node accepts, the name is free (no guest of the node's own
//!    command line has it), the size is within `--max-module-size`, and no newer
//!    publication of the name is known;
//! 2. the bytes received are as many as offered, and their SHA-256 is the digest offered;
//! 3. they are a WebAssembly component, which compiles;
//! 4. it is not a WASI command, and the node can satisfy each of its imports;
//! 5. it instantiates in its jail (the jail for published modules,
//!    [`dhost_runtime::jail::Policy::jail_for_published`]).
//!
//! Only then is it written to the store, and handed to the event loop. One module is
//! checked and loaded at a time; the catalog is judged again once it is loaded, so a newer
//! publication that arrived meanwhile is never replaced by an older one.

use super::catalog::{Catalog, Handling};
use super::fetch::{self, MAX_FETCHES, ServedModules};
use super::loader::{ChangeSink, Loader, ModuleChange};
use super::protocol::{self, Listed, ModuleRequest};
use super::publication::format_time;
use super::uploads::Uploads;
use super::{Digest, ModuleStore, Publication};
use crate::rpc::PoolHandle;
use ciborium::Value;
use crossbeam_channel::TrySendError;
use dhost_protocol::outcome::{CallFailure, FailureKind, Outcome};
use dhost_protocol::wire::Announce;
use dhost_runtime::stats::DropLog;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};
use tokio::sync::oneshot;

/// How long a change waits for room in the event loop's queue.
const CHANGE_PATIENCE: Duration = Duration::from_secs(5);

/// How a node takes published modules.
#[derive(Debug, Clone)]
pub struct ServiceConfig {
    /// Where modules are kept.
    pub store: ModuleStore,
    /// Who the node is in the store (its name and group): whose file keeps what it runs.
    pub owner: String,
    /// The publishers whose modules the node takes; empty: any.
    pub publishers: Vec<String>,
    /// The largest module taken.
    pub max_size: u64,
    /// The names of the guests given on the node's command line (not to be replaced).
    pub own_guests: Vec<String>,
}

/// The most WIT texts of modules kept decoded.
const MAX_WITS_KEPT: usize = 64;

/// The most modules compiled and instantiated at once.
const MAX_LOADS: usize = 2;

/// The node's module service.
pub struct ModuleService {
    config: ServiceConfig,
    loader: Arc<Loader>,
    changes: ChangeSink,
    pool: PoolHandle,
    runtime: tokio::runtime::Handle,
    catalog: Mutex<Catalog>,
    /// The application interfaces each module loaded exports, by digest.
    exports: Mutex<HashMap<Digest, Vec<String>>>,
    uploads: Mutex<Uploads>,
    /// At most [`MAX_LOADS`] modules are compiled and instantiated at once (each within
    /// the jail's time limit: a module that hangs is stopped, and never holds up the rest
    /// for longer than that).
    loading: tokio::sync::Semaphore,
    /// One loaded module is judged against the catalog and handed to the event loop (or
    /// one is removed) at a time, so that the event loop gets them in the catalog's order.
    installing: tokio::sync::Mutex<()>,
    /// The modules being fetched from peers, and from which (its TCP address).
    fetching: Mutex<HashMap<Digest, SocketAddr>>,
    /// The peers that announced each module lately, to fetch it from another when one fails.
    sources: Mutex<fetch::Sources>,
    /// The modules read lately for peers' fetches.
    served: Mutex<ServedModules>,
    /// The WIT texts decoded lately for `wit` requests, by digest (at most
    /// [`MAX_WITS_KEPT`]).
    wits: Mutex<HashMap<Digest, String>>,
    /// Where refusals are logged.
    drops: Mutex<DropLog>,
    /// The number of the last save asked for, and of the last one written (a save older
    /// than the one written is skipped).
    saves: AtomicU64,
    saved: Arc<Mutex<u64>>,
}

impl std::fmt::Debug for ModuleService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ModuleService")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

fn refused(why: impl std::fmt::Display) -> CallFailure {
    CallFailure::new(FailureKind::Refused, why)
}

fn stopping() -> CallFailure {
    CallFailure::new(FailureKind::Unavailable, "the node is stopping")
}

fn newer_known(p: &Publication, newer: &Publication) -> CallFailure {
    refused(format!(
        "this node knows a newer publication of {}: {newer}, published at {} (this one: {})",
        p.name,
        format_time(newer.published_at),
        format_time(p.published_at)
    ))
}

impl ModuleService {
    /// A service that loads modules with `loader`, hands them to the event loop through
    /// `changes`, fetches from peers through `pool`, and runs its tasks on `runtime`.
    pub fn new(
        config: ServiceConfig,
        loader: Loader,
        changes: ChangeSink,
        pool: PoolHandle,
        runtime: tokio::runtime::Handle,
    ) -> Arc<Self> {
        Arc::new(ModuleService {
            config,
            loader: Arc::new(loader),
            changes,
            pool,
            runtime,
            catalog: Mutex::new(Catalog::new()),
            exports: Mutex::default(),
            uploads: Mutex::default(),
            loading: tokio::sync::Semaphore::new(MAX_LOADS),
            installing: tokio::sync::Mutex::new(()),
            fetching: Mutex::default(),
            sources: Mutex::default(),
            served: Mutex::default(),
            wits: Mutex::default(),
            drops: Mutex::default(),
            saves: AtomicU64::new(0),
            saved: Arc::default(),
        })
    }

    /// What the node announces of the modules it runs (and those it knows unpublished).
    pub fn announced(&self) -> Vec<Publication> {
        lock(&self.catalog).announced(Instant::now())
    }

    /// Answers a module request of the node's TCP port.
    pub async fn serve(self: &Arc<Self>, function: &str, args: Vec<Value>) -> Outcome {
        let request = ModuleRequest::parse(function, args)?;
        match request {
            ModuleRequest::Offer(p) => {
                let shown = p.clone();
                self.offer(p).await.map_err(|f| self.logged(&shown, f))
            }
            ModuleRequest::Chunk {
                digest,
                offset,
                data,
            } => {
                lock(&self.uploads).append(digest, offset, &data, Instant::now())?;
                Ok(Value::Null)
            }
            ModuleRequest::Finish(digest) => self.finish(digest).await,
            ModuleRequest::Fetch {
                digest,
                offset,
                max,
            } => self.fetch_piece(digest, offset, max).await,
            ModuleRequest::List => Ok(self.list()),
            ModuleRequest::Wit(name) => self.wit(&name).await,
            ModuleRequest::Unpublish(p) => {
                let shown = p.clone();
                self.unpublish(p).await.map_err(|f| self.logged(&shown, f))
            }
        }
    }

    /// Logs (a few lines a second at most) that module `p` was refused, and returns the
    /// refusal.
    fn logged(&self, p: &Publication, failure: CallFailure) -> CallFailure {
        lock(&self.drops).dropped(format_args!("module {p}: {}", failure.message));
        failure
    }

    /// Whether the node takes publication `p` (a module, or a removal) at all: from its
    /// publisher, under its name, at its time (not ahead of this node's clock by more than
    /// clocks may differ by).
    fn check_publisher(&self, p: &Publication) -> Result<(), CallFailure> {
        p.check_time(dhost_protocol::clock::unix_millis())
            .map_err(refused)?;
        let allowed = &self.config.publishers;
        if !allowed.is_empty() && !allowed.contains(&p.publisher) {
            return Err(refused(format!(
                "this node takes modules from {} only, not from {} (--accept-modules)",
                allowed.join(", "),
                p.publisher
            )));
        }
        if self.config.own_guests.contains(&p.name) {
            return Err(refused(format!(
                "this node runs a guest named {} of its own (from its command line)",
                p.name
            )));
        }
        Ok(())
    }

    /// The checks an offered or announced publication must pass before any transfer.
    fn check_offer(&self, p: &Publication) -> Result<Handling, CallFailure> {
        self.check_publisher(p)?;
        if p.size > self.config.max_size {
            return Err(refused(format!(
                "{} is {} bytes, more than this node takes ({} bytes, --max-module-size)",
                p.name, p.size, self.config.max_size
            )));
        }
        let catalog = lock(&self.catalog);
        let verdict = catalog.judge(p);
        match &verdict {
            Handling::Stale(newer) => Err(newer_known(p, newer)),
            Handling::Install if !catalog.has_room_for(&p.name) => Err(refused(format!(
                "this node runs {} published modules already, the most it runs",
                super::MAX_MODULES
            ))),
            _ => Ok(verdict),
        }
    }

    async fn offer(self: &Arc<Self>, p: Publication) -> Outcome {
        let verdict = self.check_offer(&p)?;
        let Some(digest) = p.digest else {
            return Err(CallFailure::new(
                FailureKind::BadArguments,
                format!("the offer of {} has no digest", p.name),
            ));
        };
        match verdict {
            Handling::Have => return Ok(Value::Text(protocol::HAVE.into())),
            Handling::Record => {
                self.record(p)?;
                return Ok(Value::Text(protocol::HAVE.into()));
            }
            _ => {}
        }
        // A module the store holds already (sent before, or stored by another node of this
        // machine) needs no transfer.
        if let Some(bytes) = self.stored(digest).await {
            self.install(p, bytes, "published to this node").await?;
            return Ok(Value::Text(protocol::HAVE.into()));
        }
        lock(&self.uploads).begin(p, Instant::now())?;
        Ok(Value::Text(protocol::SEND.into()))
    }

    async fn finish(self: &Arc<Self>, digest: Digest) -> Outcome {
        let (p, bytes) = lock(&self.uploads).take(digest).inspect_err(|failure| {
            lock(&self.drops).dropped(format_args!("module transfer: {}", failure.message));
        })?;
        let shown = p.clone();
        self.install(p, bytes, "published to this node")
            .await
            .map_err(|f| self.logged(&shown, f))?;
        Ok(Value::Text(protocol::LOADED.into()))
    }

    /// Records that the node runs `p`, a newer publication of the module it runs.
    fn record(&self, p: Publication) -> Result<(), CallFailure> {
        let settled = lock(&self.catalog).settle(p.clone(), Instant::now());
        settled.map_err(|newer| newer_known(&p, &newer))?;
        self.save();
        Ok(())
    }

    /// The module `digest` from the store, if it holds it intact.
    async fn stored(&self, digest: Digest) -> Option<Vec<u8>> {
        let store = self.config.store.clone();
        let max = self.config.max_size;
        let read = tokio::task::spawn_blocking(move || store.get(&digest, max)).await;
        match read {
            Ok(Ok(bytes)) => bytes,
            Ok(Err(e)) => {
                tracing::warn!("{e}");
                None
            }
            Err(_) => None,
        }
    }

    /// Checks, stores and loads module `p` from `bytes` (whose digest was checked), and has
    /// the event loop run it; `how` says where it came from, for the log.
    async fn install(&self, p: Publication, bytes: Vec<u8>, how: &str) -> Result<(), CallFailure> {
        let Ok(loading) = self.loading.acquire().await else {
            return Err(stopping());
        };
        // What was decided before the wait may have changed meanwhile.
        match self.check_offer(&p)? {
            Handling::Have => return Ok(()),
            Handling::Record => return self.record(p),
            _ => {}
        }
        let Some(digest) = p.digest else {
            return Err(CallFailure::new(
                FailureKind::BadArguments,
                format!("{} has no digest", p.name),
            ));
        };
        let started = Instant::now();
        let loaded = {
            let (name, store) = (p.name.clone(), self.config.store.clone());
            let loader = self.loader.clone();
            tokio::task::spawn_blocking(move || {
                let (guest, exports) = loader.load(&name, &bytes)?;
                store.put(&digest, &bytes).map_err(|e| e.to_string())?;
                Ok::<_, String>((guest, exports))
            })
            .await
            .unwrap_or_else(|e| Err(format!("the loader failed: {e}")))
        };
        drop(loading);
        let (guest, exports) = match loaded {
            Ok(loaded) => loaded,
            Err(why) => {
                lock(&self.catalog).failed(digest, why.clone(), Instant::now());
                return Err(refused(why));
            }
        };
        // The catalog first, judged again (a removal, or another version, may have come while
        // it loaded): the event loop announces the node once the guest runs.
        let one_at_a_time = self.installing.lock().await;
        let before = {
            let mut catalog = lock(&self.catalog);
            match catalog.judge(&p) {
                Handling::Stale(newer) => return Err(newer_known(&p, &newer)),
                Handling::Have => return Ok(()),
                _ => {}
            }
            let before = catalog.current(&p.name).cloned();
            let mut known = lock(&self.exports);
            known.retain(|d, _| catalog.all_running().any(|r| r.digest == Some(*d)));
            known.insert(digest, exports);
            catalog.ran(p.clone());
            before
        };
        let (done, ran) = oneshot::channel();
        if let Err(failure) = self
            .hand_over(ModuleChange::Install {
                guest: Box::new(guest),
                done,
            })
            .await
        {
            lock(&self.catalog).put_back(&p.name, before, Instant::now());
            return Err(failure);
        }
        drop(one_at_a_time);
        match ran.await {
            Ok(Ok(())) => {}
            Ok(Err(why)) => {
                // (Its `init` failed: the event loop unloaded it, and runs nothing under
                // the name.)
                let mut catalog = lock(&self.catalog);
                catalog.forget(&p.name);
                catalog.failed(digest, why.clone(), Instant::now());
                drop(catalog);
                self.save();
                return Err(refused(why));
            }
            Err(_) => return Err(stopping()),
        }
        self.save();
        tracing::info!("module {p} loaded in {:.2?} ({how})", started.elapsed());
        Ok(())
    }

    /// Hands `change` to the event loop, waiting a while for room in its queue.
    async fn hand_over(&self, mut change: ModuleChange) -> Result<(), CallFailure> {
        let deadline = Instant::now() + CHANGE_PATIENCE;
        loop {
            match self.changes.try_send(change) {
                Ok(()) => return Ok(()),
                Err(TrySendError::Full(back)) if Instant::now() < deadline => {
                    change = back;
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
                Err(TrySendError::Full(_)) => {
                    return Err(CallFailure::new(
                        FailureKind::Unavailable,
                        format!(
                            "the node is overloaded: its event queue stayed full for {}",
                            humantime::format_duration(CHANGE_PATIENCE)
                        ),
                    ));
                }
                Err(TrySendError::Disconnected(_)) => return Err(stopping()),
            }
        }
    }

    /// The event loop unloaded the guest of published module `name` (it failed too often):
    /// the node no longer runs it, nor announces it, and does not take it again for a
    /// while.
    pub fn unloaded(&self, name: &str, why: &str) {
        let mut catalog = lock(&self.catalog);
        if let Some(digest) = catalog.running(name).and_then(|p| p.digest) {
            catalog.failed(digest, why.to_string(), Instant::now());
        }
        catalog.forget(name);
        drop(catalog);
        self.save();
    }

    /// Keeps what the node runs in its file in the store (on a blocking thread; a save
    /// overtaken by a later one is skipped), to run it again after a restart.
    fn save(&self) {
        let number = self.saves.fetch_add(1, Ordering::Relaxed) + 1;
        let publications = self.announced();
        let (store, owner, saved) = (
            self.config.store.clone(),
            self.config.owner.clone(),
            self.saved.clone(),
        );
        self.runtime.spawn_blocking(move || {
            let mut last = lock(&saved);
            if *last > number {
                return;
            }
            *last = number;
            if let Err(e) = store.save_node(&owner, &publications) {
                tracing::warn!("cannot keep the node's published modules for its next start: {e}");
            }
        });
    }

    /// Runs again what the node ran when it stopped (as its file in the store says), from
    /// the store, checked as when it was published; returns at once. Modules the store no
    /// longer holds are fetched from peers when they announce them.
    pub fn restore(self: &Arc<Self>) {
        let publications = match self.config.store.load_node(&self.config.owner) {
            Ok(publications) => publications,
            Err(e) => {
                tracing::warn!("cannot run again the modules this node ran: {e}");
                return;
            }
        };
        let now = Instant::now();
        for p in publications {
            // (A file saved before nodes refused publications from the future: one would
            // hold its name for good.)
            if let Err(why) = p.check_time(dhost_protocol::clock::unix_millis()) {
                tracing::warn!("not running again what this node kept of {p}: {why}");
                continue;
            }
            let Some(digest) = p.digest else {
                lock(&self.catalog).removed(p, now);
                continue;
            };
            let this = self.clone();
            self.runtime.spawn(async move {
                let Some(bytes) = this.stored(digest).await else {
                    tracing::warn!("cannot run module {p} again: the store no longer holds it");
                    return;
                };
                let shown = p.clone();
                if let Err(failure) = this.install(p, bytes, "run again from the store").await {
                    tracing::warn!("cannot run module {shown} again: {}", failure.message);
                }
            });
        }
    }

    /// A piece of stored module `digest`, for a peer catching up.
    async fn fetch_piece(&self, digest: Digest, offset: u64, max: u64) -> Outcome {
        let runs = lock(&self.catalog)
            .all_running()
            .any(|p| p.digest == Some(digest));
        if !runs {
            return Err(CallFailure::new(
                FailureKind::NoServer,
                format!("this node runs no module with digest {}", digest.short()),
            ));
        }
        let bytes = self.served_bytes(digest).await?;
        Ok(Value::Bytes(fetch::piece(&bytes, offset, max).to_vec()))
    }

    /// Stored module `digest`, read once (and checked) for the several fetches of a peer.
    async fn served_bytes(&self, digest: Digest) -> Result<Arc<Vec<u8>>, CallFailure> {
        if let Some(bytes) = lock(&self.served).get(&digest, Instant::now()) {
            return Ok(bytes);
        }
        let (store, max) = (self.config.store.clone(), self.config.max_size);
        let bytes = tokio::task::spawn_blocking(move || fetch::read_for_peer(&store, digest, max))
            .await
            .map_err(|e| CallFailure::new(FailureKind::Unavailable, e))?
            .map_err(|why| CallFailure::new(FailureKind::Unavailable, why))?;
        let bytes = Arc::new(bytes);
        lock(&self.served).keep(digest, bytes.clone(), Instant::now());
        Ok(bytes)
    }

    fn list(&self) -> Value {
        let catalog = lock(&self.catalog);
        let exports = lock(&self.exports);
        let listed = catalog
            .all_running()
            .map(|p| {
                Listed {
                    publication: p.clone(),
                    exports: p
                        .digest
                        .and_then(|d| exports.get(&d).cloned())
                        .unwrap_or_default(),
                }
                .to_value()
            })
            .collect();
        Value::Array(listed)
    }

    /// The WIT of a module this node runs that exports `interface` (named with or without
    /// its version: [`dhost_runtime::guest::wit_text::find_export`]), if one does.
    pub async fn wit_exporting(&self, interface: &str) -> Option<Outcome> {
        let name = {
            let catalog = lock(&self.catalog);
            let exports = lock(&self.exports);
            let exported: Vec<(&str, &str)> = catalog
                .all_running()
                .flat_map(|p| {
                    p.digest
                        .and_then(|d| exports.get(&d))
                        .into_iter()
                        .flatten()
                        .map(move |i| (i.as_str(), p.name.as_str()))
                })
                .collect();
            dhost_runtime::guest::wit_text::find_export(&exported, interface)
                .map(|name| name.to_string())
        }?;
        Some(self.wit(&name).await)
    }

    async fn wit(&self, name: &str) -> Outcome {
        let digest = lock(&self.catalog).running(name).and_then(|p| p.digest);
        let Some(digest) = digest else {
            return Err(CallFailure::new(
                FailureKind::NoServer,
                format!("this node runs no module named {name}"),
            ));
        };
        if let Some(text) = lock(&self.wits).get(&digest) {
            return Ok(Value::Text(text.clone()));
        }
        let bytes = self.served_bytes(digest).await?;
        let text =
            tokio::task::spawn_blocking(move || dhost_runtime::guest::wit_text::wit_text(&bytes))
                .await
                .map_err(|e| CallFailure::new(FailureKind::Unavailable, e))?
                .map_err(|e| {
                    CallFailure::new(
                        FailureKind::Unavailable,
                        format!("cannot decode the WIT of {name}: {e:#}"),
                    )
                })?;
        let mut wits = lock(&self.wits);
        if wits.len() >= MAX_WITS_KEPT {
            wits.clear();
        }
        wits.insert(digest, text.clone());
        Ok(Value::Text(text))
    }

    async fn unpublish(&self, p: Publication) -> Outcome {
        self.check_publisher(&p)?;
        let had = self.remove(p).await?;
        Ok(Value::Text(if had { "removed" } else { "had none" }.into()))
    }

    /// Applies removal `p`, if it is newer than what the node knows: returns whether the
    /// node ran a module under the name.
    async fn remove(&self, p: Publication) -> Result<bool, CallFailure> {
        let _one_at_a_time = self.installing.lock().await;
        // The catalog first: the event loop announces the node once the guest is gone.
        let before = {
            let mut catalog = lock(&self.catalog);
            match catalog.judge(&p) {
                Handling::Remove => {}
                Handling::Stale(newer) => return Err(newer_known(&p, &newer)),
                // (This very removal, applied already: from a peer that heard it first.)
                Handling::Have => return Ok(true),
                Handling::Install | Handling::Record => return Ok(false),
            }
            let before = catalog.current(&p.name).cloned();
            catalog.removed(p.clone(), Instant::now());
            before
        };
        let (done, removed) = oneshot::channel();
        let change = ModuleChange::Remove {
            name: p.name.clone(),
            done,
        };
        if let Err(failure) = self.hand_over(change).await {
            lock(&self.catalog).put_back(&p.name, before, Instant::now());
            return Err(failure);
        }
        let had = removed.await.map_err(|_| stopping())?;
        self.save();
        if had {
            tracing::info!("module {} unpublished by {}: unloaded", p.name, p.publisher);
        }
        Ok(had)
    }

    /// A peer announced itself: fetch what it runs that is newer than what this node runs,
    /// and apply what it unpublished. Called from the network thread for every
    /// announcement; returns at once.
    pub fn on_announce(self: &Arc<Self>, announce: &Announce) {
        let now = Instant::now();
        lock(&self.uploads).prune(now);
        for p in &announce.modules {
            let verdict = match self.check_offer(p) {
                Ok(verdict) => verdict,
                Err(why) => {
                    tracing::trace!(
                        "not taking {p} from {}: {}",
                        announce.presence.name,
                        why.message
                    );
                    continue;
                }
            };
            match verdict {
                Handling::Install => {}
                Handling::Remove => {
                    let (this, p) = (self.clone(), p.clone());
                    self.runtime.spawn(async move {
                        if let Err(why) = this.remove(p).await {
                            tracing::debug!("{why}");
                        }
                    });
                    continue;
                }
                Handling::Record => {
                    if let Err(why) = self.record(p.clone()) {
                        tracing::debug!("{why}");
                    }
                    continue;
                }
                Handling::Have | Handling::Stale(_) => continue,
            }
            let (Some(digest), Some(tcp)) = (p.digest, announce.presence.tcp) else {
                continue;
            };
            if lock(&self.catalog).failed_lately(&digest, now).is_some() {
                continue;
            }
            lock(&self.sources).heard(digest, &announce.presence.name, tcp, now);
            {
                // (One fetch from a peer at a time: a peer that stalls holds one slot.)
                let mut fetching = lock(&self.fetching);
                if fetching.len() >= MAX_FETCHES
                    || fetching.contains_key(&digest)
                    || fetching.values().any(|from| *from == tcp)
                {
                    continue;
                }
                fetching.insert(digest, tcp);
            }
            let (this, p, peer) = (self.clone(), p.clone(), announce.presence.name.clone());
            self.runtime.spawn(async move {
                let outcome = this.catch_up(p.clone(), digest, (peer, tcp)).await;
                lock(&this.fetching).remove(&digest);
                lock(&this.sources).forget(&digest);
                if let Err(why) = outcome {
                    tracing::warn!("cannot take module {p}: {why}");
                    lock(&this.catalog).failed(digest, why, Instant::now());
                }
            });
        }
    }

    /// Takes module `p` (digest `digest`) from the store, or else from node `first` (its
    /// name and TCP address) or, when that fails or stalls, from the other peers that
    /// announced it ([`fetch::MAX_SOURCES`] in all), checks it, and loads it.
    async fn catch_up(
        &self,
        p: Publication,
        digest: Digest,
        first: (String, SocketAddr),
    ) -> Result<(), String> {
        if let Some(bytes) = self.stored(digest).await {
            return self.take_fetched(p, bytes, "found in the store").await;
        }
        let (mut tried, mut failures) = (Vec::new(), Vec::new());
        let mut next = Some(first);
        while let Some((peer, tcp)) = next {
            tried.push(tcp);
            lock(&self.fetching).insert(digest, tcp);
            let (pool, peer_name, size) = (self.pool.clone(), peer.clone(), p.size);
            let fetched = tokio::task::spawn_blocking(move || {
                fetch::fetch(&pool, tcp, &peer_name, digest, size)
            })
            .await
            .unwrap_or_else(|e| Err(e.to_string()))
            .and_then(|bytes| {
                let found = Digest::of(&bytes);
                match found == digest {
                    true => Ok(bytes),
                    false => Err(format!(
                        "its bytes have digest {}, not the {} announced",
                        found.short(),
                        digest.short()
                    )),
                }
            });
            match fetched {
                Ok(bytes) => {
                    let how = format!("fetched from node {peer}");
                    return self.take_fetched(p, bytes, &how).await;
                }
                Err(why) => {
                    tracing::info!("cannot fetch module {p} from node {peer}: {why}");
                    failures.push(format!("from node {peer}: {why}"));
                }
            }
            next = match tried.len() < fetch::MAX_SOURCES {
                true => lock(&self.sources).next(&digest, &tried, Instant::now()),
                false => None,
            };
        }
        Err(format!("cannot fetch it {}", failures.join("; ")))
    }

    /// Checks and loads module `p` from `bytes` (whose digest was checked), got `how`.
    async fn take_fetched(&self, p: Publication, bytes: Vec<u8>, how: &str) -> Result<(), String> {
        self.install(p, bytes, how)
            .await
            .map_err(|failure| failure.message)
    }
}

/// Says who a node is in the store: its name and group (two nodes of one name on two
/// groups keep two files).
pub fn owner(node_name: &str, group: impl std::fmt::Display) -> String {
    format!("{node_name} on {group}")
}

/// What a node logs at its start of the modules it takes.
pub fn describe(config: &ServiceConfig) -> String {
    format!(
        "takes published modules from {} into {}",
        if config.publishers.is_empty() {
            "any publisher".to_string()
        } else {
            config.publishers.join(", ")
        },
        config.store.dir().display()
    )
}
