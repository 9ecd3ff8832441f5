//! The node's side of publishing (`dhost run --accept-modules`): it answers the module
//! requests of its TCP port ([`super::protocol`]), takes transfers, checks and loads what
//! it is sent, and catches up with its peers' announcements by fetching what it lacks.
//!
//! Everything here runs on the node's network thread (tokio); compiling and instantiating
//! run on tokio's blocking threads, and the loaded guest is handed to the event loop
//! ([`ModuleChange`]), which swaps it in between two events: a call in progress finishes on
//! the old instance, and the next one runs on the new.
//!
//! What a module must pass, in order, before the node runs it (a failure leaves the store
//! and the running guests as they were, and the publisher is told why):
//!
//! 1. the publisher is one this node accepts, the name is free (no guest of the node's own
//!    command line has it), and the size is within `--max-module-size`;
//! 2. the bytes received are as many as offered, and their SHA-256 is the digest offered;
//! 3. they are a WebAssembly component, which compiles;
//! 4. it is not a WASI command, and the node can satisfy each of its imports;
//! 5. it instantiates in its jail (the jail for published modules, [`Policy::jail_for_published`]).
//!
//! Only then is it written to the store, and handed to the event loop.

use super::catalog::{Catalog, Verdict};
use super::protocol::{self, CHUNK, Listed, ModuleRequest};
use super::{Digest, ModuleStore, Publication};
use crate::guest::calls::Calls;
use crate::guest::wasm::{NodeFacts, Runtime, WasmGuest};
use crate::guest::world::{Role, World};
use crate::jail::Policy;
use crate::rpc::{CallFailure, FailureKind, Outcome, PoolHandle};
use crate::stats::DropLog;
use crate::stream::outgoing::Outgoing;
use crate::wire::Announce;
use ciborium::Value;
use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::mpsc::TrySendError;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};
use tokio::sync::oneshot;

/// How many transfers a node takes at once.
const MAX_UPLOADS: usize = 4;

/// A transfer with no chunk for this long is dropped.
const UPLOAD_IDLE: Duration = Duration::from_secs(30);

/// How long a node waits for a peer's piece of a module it fetches.
const FETCH_TIMEOUT: Duration = Duration::from_secs(10);

/// How many modules a node fetches from its peers at once.
const MAX_FETCHES: usize = 2;

/// How long a module read from the store for peers' fetches is kept in memory.
const SERVED_MEMORY: Duration = Duration::from_secs(30);

/// What the event loop is asked to do with a published module.
pub enum ModuleChange {
    /// Run `guest` (its name is the module's), in place of the guest of that name if there
    /// is one; say when it runs.
    Install {
        /// The loaded guest.
        guest: WasmGuest,
        /// Told once it runs, or why it cannot.
        done: oneshot::Sender<Result<(), String>>,
    },
    /// Stop running the guest named `name`; say whether there was one.
    Remove {
        /// The module's name.
        name: String,
        /// Told once it is gone.
        done: oneshot::Sender<bool>,
    },
}

impl std::fmt::Debug for ModuleChange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ModuleChange::Install { guest, .. } => write!(f, "Install({})", guest.name()),
            ModuleChange::Remove { name, .. } => write!(f, "Remove({name})"),
        }
    }
}

/// Hands a change to the event loop; gives it back if the loop's queue is full, or says
/// that the loop is gone.
pub type ChangeSink =
    Box<dyn Fn(ModuleChange) -> Result<(), TrySendError<ModuleChange>> + Send + Sync>;

/// How long a change waits for room in the event loop's queue.
const CHANGE_PATIENCE: Duration = Duration::from_secs(5);

/// How a node takes published modules.
#[derive(Debug, Clone)]
pub struct ServiceConfig {
    /// Where modules are kept.
    pub store: ModuleStore,
    /// The publishers whose modules the node takes; empty: any.
    pub publishers: Vec<String>,
    /// The largest module taken.
    pub max_size: u64,
    /// The names of the guests given on the node's command line (not to be replaced).
    pub own_guests: Vec<String>,
}

/// What the service needs to load a guest on the node.
pub struct Loader {
    /// The node's engine and compile cache.
    pub runtime: Runtime,
    /// The node's jail policy.
    pub policy: Arc<Policy>,
    /// The node's name.
    pub node_name: String,
    /// The largest call that fits in a datagram.
    pub max_call: usize,
    /// What the node's guests share for calls with replies.
    pub calls: Arc<Calls>,
    /// Where the guests' calls go.
    pub outgoing: Arc<Outgoing>,
}

impl Loader {
    /// Checks and loads module `name` from `bytes`: a component, compiled, not a WASI
    /// command, every import satisfied, instantiated in its jail.
    fn load(&self, name: &str, bytes: &[u8]) -> Result<(WasmGuest, Vec<String>), String> {
        let component = self.runtime.compile(bytes).map_err(|e| format!("{e:#}"))?;
        let world = World::of(&component, self.runtime.engine());
        if world.is_command() {
            return Err(
                "it is a WASI command (it exports wasi:cli/run): only components that serve or \
                 send calls can be published"
                    .into(),
            );
        }
        let exports = world
            .exports
            .iter()
            .filter(|i| matches!(i.role, Role::Application))
            .map(|i| i.name.clone())
            .collect();
        let node = NodeFacts {
            name: &self.node_name,
            max_call: self.max_call,
            calls: &self.calls,
            outgoing: &self.outgoing,
        };
        let jail = self.policy.jail_for_published(name);
        let guest = WasmGuest::load(&self.runtime, &component, world, name, jail, node)
            .map_err(|e| format!("{e:#}"))?;
        Ok((guest, exports))
    }
}

/// A transfer in progress.
struct Upload {
    publication: Publication,
    bytes: Vec<u8>,
    touched: Instant,
}

/// A module read from the store for peers' fetches: its digest, its bytes, when it was read.
type Served = (Digest, Arc<Vec<u8>>, Instant);

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
    uploads: Mutex<HashMap<Digest, Upload>>,
    /// One module is checked and loaded at a time.
    installing: tokio::sync::Mutex<()>,
    /// The modules being fetched from peers.
    fetching: Mutex<HashSet<Digest>>,
    /// The module last read for a peer's fetch.
    served: Mutex<Option<Served>>,
    /// Where refusals are logged.
    drops: Mutex<DropLog>,
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
            installing: tokio::sync::Mutex::new(()),
            fetching: Mutex::default(),
            served: Mutex::default(),
            drops: Mutex::default(),
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
            ModuleRequest::Offer(p) => self.offer(p).await,
            ModuleRequest::Chunk {
                digest,
                offset,
                data,
            } => self.chunk(digest, offset, data),
            ModuleRequest::Finish(digest) => self.finish(digest).await,
            ModuleRequest::Fetch {
                digest,
                offset,
                max,
            } => self.fetch_piece(digest, offset, max).await,
            ModuleRequest::List => Ok(self.list()),
            ModuleRequest::Wit(name) => self.wit(&name).await,
            ModuleRequest::Unpublish(p) => self.unpublish(p).await,
        }
    }

    /// Whether the node takes modules from `publisher`.
    fn check_publisher(&self, p: &Publication) -> Result<(), CallFailure> {
        let allowed = &self.config.publishers;
        if allowed.is_empty() || allowed.contains(&p.publisher) {
            return Ok(());
        }
        Err(refused(format!(
            "this node takes modules from {} only, not from {} (--accept-modules)",
            allowed.join(", "),
            p.publisher
        )))
    }

    /// The checks an offered or announced publication must pass before any transfer.
    fn check_offer(&self, p: &Publication) -> Result<Verdict, CallFailure> {
        self.check_publisher(p)?;
        if self.config.own_guests.contains(&p.name) {
            return Err(refused(format!(
                "this node runs a guest named {} of its own (from its command line)",
                p.name
            )));
        }
        if p.size > self.config.max_size {
            return Err(refused(format!(
                "{} is {} bytes, more than this node takes ({} bytes, --max-module-size)",
                p.name, p.size, self.config.max_size
            )));
        }
        let catalog = lock(&self.catalog);
        let verdict = catalog.judge(p);
        match &verdict {
            Verdict::Stale(newer) => Err(refused(format!(
                "this node knows a newer publication of {}: {newer}, published at {} ms",
                p.name, newer.published_at
            ))),
            Verdict::Install if !catalog.has_room_for(&p.name) => Err(refused(format!(
                "this node runs {} published modules already, the most it runs",
                super::MAX_MODULES
            ))),
            _ => Ok(verdict),
        }
    }

    async fn offer(self: &Arc<Self>, p: Publication) -> Outcome {
        let verdict = self.check_offer(&p).map_err(|f| self.logged(&p, f))?;
        let Some(digest) = p.digest else {
            return Err(CallFailure::new(FailureKind::BadArguments, "no digest"));
        };
        match verdict {
            Verdict::Have => return Ok(Value::Text(protocol::HAVE.into())),
            Verdict::Record => {
                self.update(|catalog| catalog.ran(p));
                return Ok(Value::Text(protocol::HAVE.into()));
            }
            _ => {}
        }
        // A module the store holds already (sent before, or stored by another node of this
        // machine) needs no transfer.
        if let Some(bytes) = self.stored(digest).await {
            let shown = p.clone();
            self.install(p, bytes, "published to this node")
                .await
                .map_err(|f| self.logged(&shown, f))?;
            return Ok(Value::Text(protocol::HAVE.into()));
        }
        let mut uploads = lock(&self.uploads);
        let now = Instant::now();
        uploads.retain(|_, u| now.duration_since(u.touched) < UPLOAD_IDLE);
        if !uploads.contains_key(&digest) && uploads.len() >= MAX_UPLOADS {
            return Err(CallFailure::new(
                FailureKind::Unavailable,
                format!("this node takes {MAX_UPLOADS} transfers at once; try again shortly"),
            ));
        }
        uploads.insert(
            digest,
            Upload {
                publication: p,
                bytes: Vec::new(),
                touched: now,
            },
        );
        Ok(Value::Text(protocol::SEND.into()))
    }

    fn chunk(&self, digest: Digest, offset: u64, data: Vec<u8>) -> Outcome {
        let bad = |why: String| Err(CallFailure::new(FailureKind::BadArguments, why));
        let mut uploads = lock(&self.uploads);
        let Some(upload) = uploads.get_mut(&digest) else {
            return bad(format!(
                "no transfer of {} in progress (offer it first; a transfer idle for {} is \
                 dropped)",
                digest.short(),
                humantime::format_duration(UPLOAD_IDLE)
            ));
        };
        let received = upload.bytes.len() as u64;
        if offset != received {
            return bad(format!(
                "a chunk at offset {offset}, but {received} bytes were received"
            ));
        }
        let size = upload.publication.size;
        if received + data.len() as u64 > size {
            uploads.remove(&digest);
            return bad(format!(
                "more bytes than the {size} offered: transfer dropped"
            ));
        }
        upload.bytes.extend_from_slice(&data);
        upload.touched = Instant::now();
        Ok(Value::Null)
    }

    async fn finish(self: &Arc<Self>, digest: Digest) -> Outcome {
        let Some(upload) = lock(&self.uploads).remove(&digest) else {
            return Err(CallFailure::new(
                FailureKind::BadArguments,
                format!("no transfer of {} in progress", digest.short()),
            ));
        };
        let Upload {
            publication: p,
            bytes,
            ..
        } = upload;
        let shown = p.clone();
        self.check_and_install(p, bytes, digest)
            .await
            .map_err(|f| self.logged(&shown, f))?;
        Ok(Value::Text(protocol::LOADED.into()))
    }

    /// Checks that a transfer brought the `digest` offered with `p`, and installs it.
    async fn check_and_install(
        &self,
        p: Publication,
        bytes: Vec<u8>,
        digest: Digest,
    ) -> Result<(), CallFailure> {
        if bytes.len() as u64 != p.size {
            return Err(refused(format!(
                "the transfer is incomplete: {} of the {} bytes offered arrived",
                bytes.len(),
                p.size
            )));
        }
        let found = Digest::of(&bytes);
        if found != digest {
            let why = format!(
                "the bytes received have digest {}, not the {} offered: the transfer was \
                 corrupted",
                found.short(),
                digest.short()
            );
            return Err(refused(why));
        }
        self.install(p, bytes, "published to this node").await
    }

    /// Logs (a few lines a second at most) that module `p` was refused, and returns the
    /// refusal.
    fn logged(&self, p: &Publication, failure: CallFailure) -> CallFailure {
        lock(&self.drops).dropped(format_args!("module {p}: {}", failure.message));
        failure
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
        let _one_at_a_time = self.installing.lock().await;
        // What was decided before the wait may have changed meanwhile.
        match self.check_offer(&p)? {
            Verdict::Have => return Ok(()),
            Verdict::Record => {
                self.update(|catalog| catalog.ran(p));
                return Ok(());
            }
            _ => {}
        }
        let Some(digest) = p.digest else {
            return Err(CallFailure::new(FailureKind::BadArguments, "no digest"));
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
        let (guest, exports) = match loaded {
            Ok(loaded) => loaded,
            Err(why) => {
                lock(&self.catalog).failed(digest, why.clone(), Instant::now());
                return Err(refused(why));
            }
        };
        // The catalog first: the event loop announces the node once the guest runs.
        let before = lock(&self.catalog).running(&p.name).cloned();
        {
            let catalog = lock(&self.catalog);
            let mut known = lock(&self.exports);
            known.retain(|d, _| catalog.all_running().any(|r| r.digest == Some(*d)));
            known.insert(digest, exports);
        }
        lock(&self.catalog).ran(p.clone());
        let (done, ran) = oneshot::channel();
        let handed = self.hand_over(ModuleChange::Install { guest, done }).await;
        if let Err(failure) = handed.and(ran.await.map_err(|_| stopping())) {
            let mut catalog = lock(&self.catalog);
            match before {
                Some(before) => catalog.ran(before),
                None => catalog.forget(&p.name),
            }
            return Err(failure);
        }
        self.save();
        tracing::info!("module {p} loaded in {:.2?} ({how})", started.elapsed());
        Ok(())
    }

    /// Changes the catalog, and saves it.
    fn update(&self, change: impl FnOnce(&mut Catalog)) {
        change(&mut lock(&self.catalog));
        self.save();
    }

    /// Keeps what the node runs in its file in the store, to run it again after a restart.
    fn save(&self) {
        let publications = self.announced();
        let node = &self.loader.node_name;
        if let Err(e) = self.config.store.save_node(node, &publications) {
            tracing::warn!("cannot keep the node's published modules for its next start: {e}");
        }
    }

    /// Runs again what the node ran when it stopped (as its file in the store says), from
    /// the store, checked as when it was published; returns at once. Modules the store no
    /// longer holds are fetched from peers when they announce them.
    pub fn restore(self: &Arc<Self>) {
        let node = self.loader.node_name.clone();
        let publications = match self.config.store.load_node(&node) {
            Ok(publications) => publications,
            Err(e) => {
                tracing::warn!("cannot run again the modules this node ran: {e}");
                return;
            }
        };
        let now = Instant::now();
        for p in publications {
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

    /// Hands `change` to the event loop, waiting a while for room in its queue.
    async fn hand_over(&self, mut change: ModuleChange) -> Result<(), CallFailure> {
        let deadline = Instant::now() + CHANGE_PATIENCE;
        loop {
            match (self.changes)(change) {
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
        let start = usize::try_from(offset)
            .unwrap_or(usize::MAX)
            .min(bytes.len());
        let len = usize::try_from(max).unwrap_or(usize::MAX).min(CHUNK);
        let end = start.saturating_add(len).min(bytes.len());
        Ok(Value::Bytes(bytes[start..end].to_vec()))
    }

    /// Stored module `digest`, read once (and checked) for the several fetches of a peer.
    async fn served_bytes(&self, digest: Digest) -> Result<Arc<Vec<u8>>, CallFailure> {
        let now = Instant::now();
        if let Some((d, bytes, at)) = &*lock(&self.served)
            && *d == digest
            && now.duration_since(*at) < SERVED_MEMORY
        {
            return Ok(bytes.clone());
        }
        let bytes = self.stored(digest).await.ok_or_else(|| {
            CallFailure::new(
                FailureKind::Unavailable,
                format!("module {} is not in this node's store", digest.short()),
            )
        })?;
        let bytes = Arc::new(bytes);
        *lock(&self.served) = Some((digest, bytes.clone(), now));
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

    async fn wit(&self, name: &str) -> Outcome {
        let digest = lock(&self.catalog).running(name).and_then(|p| p.digest);
        let Some(digest) = digest else {
            return Err(CallFailure::new(
                FailureKind::NoServer,
                format!("this node runs no module named {name}"),
            ));
        };
        let bytes = self.served_bytes(digest).await?;
        let text = tokio::task::spawn_blocking(move || crate::inspect::wit_text(&bytes))
            .await
            .map_err(|e| CallFailure::new(FailureKind::Unavailable, e))?
            .map_err(|e| CallFailure::new(FailureKind::BadArguments, format!("{e:#}")))?;
        Ok(Value::Text(text))
    }

    async fn unpublish(&self, p: Publication) -> Outcome {
        let shown = p.clone();
        self.check_publisher(&p)
            .map_err(|f| self.logged(&shown, f))?;
        let had = self.remove(p).await.map_err(|f| self.logged(&shown, f))?;
        Ok(Value::Text(if had { "removed" } else { "had none" }.into()))
    }

    /// Applies removal `p`, if it is newer than what the node knows: returns whether the
    /// node ran a module under the name.
    async fn remove(&self, p: Publication) -> Result<bool, CallFailure> {
        let _one_at_a_time = self.installing.lock().await;
        match lock(&self.catalog).judge(&p) {
            Verdict::Remove => {}
            Verdict::Stale(newer) => {
                return Err(refused(format!(
                    "this node knows a newer publication of {}: {newer}",
                    p.name
                )));
            }
            // (This very removal, applied already: from a peer that heard it first.)
            Verdict::Have => return Ok(true),
            _ => return Ok(false),
        }
        // The catalog first: the event loop announces the node once the guest is gone.
        self.update(|catalog| catalog.removed(p.clone(), Instant::now()));
        let (done, removed) = oneshot::channel();
        self.hand_over(ModuleChange::Remove {
            name: p.name.clone(),
            done,
        })
        .await?;
        let had = removed.await.map_err(|_| stopping())?;
        if had {
            tracing::info!("module {} unpublished by {}: unloaded", p.name, p.publisher);
        }
        Ok(had)
    }

    /// A peer announced itself: fetch what it runs that is newer than what this node runs,
    /// and apply what it unpublished. Called from the network thread for every
    /// announcement; returns at once.
    pub fn on_announce(self: &Arc<Self>, announce: &Announce) {
        if announce.modules.is_empty() {
            return;
        }
        let now = Instant::now();
        for p in &announce.modules {
            let verdict = match self.check_offer(p) {
                Ok(verdict) => verdict,
                Err(why) => {
                    tracing::trace!("not taking {p} from {}: {}", announce.name, why.message);
                    continue;
                }
            };
            match verdict {
                Verdict::Install => {}
                Verdict::Remove => {
                    let (this, p) = (self.clone(), p.clone());
                    self.runtime.spawn(async move {
                        if let Err(why) = this.remove(p).await {
                            tracing::debug!("{why}");
                        }
                    });
                    continue;
                }
                Verdict::Record => {
                    self.update(|catalog| catalog.ran(p.clone()));
                    continue;
                }
                Verdict::Have | Verdict::Stale(_) => continue,
            }
            let (Some(digest), Some(tcp)) = (p.digest, announce.tcp) else {
                continue;
            };
            if lock(&self.catalog).failed_lately(&digest, now).is_some() {
                continue;
            }
            {
                let mut fetching = lock(&self.fetching);
                if fetching.len() >= MAX_FETCHES || !fetching.insert(digest) {
                    continue;
                }
            }
            let (this, p, peer) = (self.clone(), p.clone(), announce.name.clone());
            self.runtime.spawn(async move {
                let outcome = this.catch_up(p.clone(), digest, tcp, &peer).await;
                lock(&this.fetching).remove(&digest);
                if let Err(why) = outcome {
                    tracing::warn!("cannot take module {p} from node {peer}: {why}");
                    lock(&this.catalog).failed(digest, why, Instant::now());
                }
            });
        }
    }

    /// Takes module `p` (digest `digest`) from the store, or else from node `peer` at
    /// `tcp`, checks it, and loads it.
    async fn catch_up(
        &self,
        p: Publication,
        digest: Digest,
        tcp: SocketAddr,
        peer: &str,
    ) -> Result<(), String> {
        let (bytes, how) = match self.stored(digest).await {
            Some(bytes) => (bytes, "found in the store".to_string()),
            None => {
                let (pool, peer_name, size) = (self.pool.clone(), peer.to_string(), p.size);
                let bytes = tokio::task::spawn_blocking(move || {
                    fetch(&pool, tcp, &peer_name, digest, size)
                })
                .await
                .map_err(|e| e.to_string())??;
                (bytes, format!("fetched from node {peer}"))
            }
        };
        let found = Digest::of(&bytes);
        if found != digest {
            return Err(format!(
                "its bytes have digest {}, not the {} announced",
                found.short(),
                digest.short()
            ));
        }
        self.install(p, bytes, &how)
            .await
            .map_err(|failure| failure.message)
    }
}

/// Fetches module `digest` (`size` bytes) from node `peer` at `tcp`, a chunk at a time.
/// Blocks the calling thread.
fn fetch(
    pool: &PoolHandle,
    tcp: SocketAddr,
    peer: &str,
    digest: Digest,
    size: u64,
) -> Result<Vec<u8>, String> {
    let mut bytes = Vec::new();
    while (bytes.len() as u64) < size {
        let request = ModuleRequest::Fetch {
            digest,
            offset: bytes.len() as u64,
            max: CHUNK as u64,
        };
        let piece = request
            .send(pool, tcp, peer, FETCH_TIMEOUT)
            .map_err(|failure| failure.to_string())?;
        match piece {
            Value::Bytes(piece) if !piece.is_empty() => {
                if bytes.len() as u64 + piece.len() as u64 > size {
                    return Err(format!(
                        "the peer sent more than the {size} bytes announced"
                    ));
                }
                bytes.extend_from_slice(&piece);
            }
            Value::Bytes(_) => {
                return Err(format!(
                    "the peer sent {} of the {size} bytes announced",
                    bytes.len()
                ));
            }
            _ => return Err("the peer answered a fetch with something other than bytes".into()),
        }
    }
    Ok(bytes)
}
