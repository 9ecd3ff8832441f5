//! The node's guest workers ([`dhost_runtime::guest::worker`]), by slot: starting one per guest,
//! swapping in a published module's (the worker it replaces runs what it holds and ends),
//! forgetting one whose guest was unloaded, and, when the node stops, closing their queues
//! and waiting for their threads. The routing table names guests by these slots.

use dhost_runtime::guest::wasm::WasmGuest;
use dhost_runtime::guest::worker::{WorkerHandle, WorkerLinks};
use std::collections::HashMap;
use std::thread::JoinHandle;

/// A guest unloaded by its worker, as [`Workers::unloaded`] returns it.
pub(crate) struct Unloaded {
    /// Its name.
    pub name: String,
    /// Whether it was a published module.
    pub published: bool,
}

/// The workers of a node's WebAssembly guests.
pub(crate) struct Workers {
    /// By slot; a slot empties when its guest is unloaded, and a published module may take
    /// it.
    slots: Vec<Option<WorkerHandle>>,
    /// Every worker thread started and not known to have ended.
    threads: Vec<JoinHandle<()>>,
    /// The id of the next worker.
    next: u64,
    /// What a worker is started with.
    links: WorkerLinks,
    /// The guests that are published modules, by name: their slots.
    published: HashMap<String, usize>,
}

impl Workers {
    /// No workers yet; each will be started with `links`.
    pub(crate) fn new(links: WorkerLinks) -> Self {
        Workers {
            slots: Vec::new(),
            threads: Vec::new(),
            next: 1,
            links,
            published: HashMap::new(),
        }
    }

    /// The workers by slot.
    pub(crate) fn slots(&self) -> &[Option<WorkerHandle>] {
        &self.slots
    }

    /// The worker in slot `g`, if it holds one.
    pub(crate) fn get(&self, g: usize) -> Option<&WorkerHandle> {
        self.slots.get(g)?.as_ref()
    }

    /// The slot of the guest that is a WASI command, if there is one.
    pub(crate) fn command(&self) -> Option<usize> {
        self.slots
            .iter()
            .position(|w| w.as_ref().is_some_and(WorkerHandle::is_command))
    }

    /// Starts a worker for one of the node's own guests, in a slot of its own.
    pub(crate) fn start(&mut self, guest: WasmGuest) -> anyhow::Result<usize> {
        let worker = self.spawn(guest)?;
        self.slots.push(Some(worker));
        Ok(self.slots.len() - 1)
    }

    /// Starts a worker for published module `guest`, in the slot of the module of that
    /// name if it runs one (whose worker ends once it ran what it holds), else in an empty
    /// slot or a new one. Returns the slot.
    pub(crate) fn install(&mut self, guest: WasmGuest) -> anyhow::Result<usize> {
        let name = guest.name().to_string();
        let worker = self.spawn(guest)?;
        let g = match self.published.get(&name) {
            Some(&g) => g,
            None => match self.slots.iter().position(Option::is_none) {
                Some(g) => g,
                None => {
                    self.slots.push(None);
                    self.slots.len() - 1
                }
            },
        };
        self.slots[g] = Some(worker);
        self.published.insert(name, g);
        Ok(g)
    }

    /// Stops running published module `name` (its worker runs what it holds, then ends);
    /// whether it ran.
    pub(crate) fn remove(&mut self, name: &str) -> bool {
        self.published
            .remove(name)
            .is_some_and(|g| self.slots[g].take().is_some())
    }

    /// Forgets the worker `worker`, whose guest was unloaded; `None` if it was replaced or
    /// removed meanwhile.
    pub(crate) fn unloaded(&mut self, worker: u64) -> Option<Unloaded> {
        let g = self
            .slots
            .iter()
            .position(|w| w.as_ref().is_some_and(|w| w.id() == worker))?;
        let gone = self.slots[g].take()?;
        let published = self.published.get(gone.name()) == Some(&g);
        if published {
            self.published.remove(gone.name());
        }
        Some(Unloaded {
            name: gone.name().to_string(),
            published,
        })
    }

    /// Closes every worker's queue (the handles elsewhere must be dropped too) and waits
    /// for their threads: each runs what it holds, unless the node is stopping on a
    /// signal.
    pub(crate) fn stop(&mut self) {
        self.slots.iter_mut().for_each(|slot| *slot = None);
        self.published.clear();
        for thread in self.threads.drain(..) {
            if thread.join().is_err() {
                tracing::error!("a guest's worker thread panicked");
            }
        }
    }

    fn spawn(&mut self, guest: WasmGuest) -> anyhow::Result<WorkerHandle> {
        let name = guest.name().to_string();
        let id = self.next;
        self.next += 1;
        let (worker, thread) = WorkerHandle::start(guest, id, self.links.clone())
            .map_err(|e| anyhow::anyhow!("cannot start a thread for guest {name}: {e}"))?;
        // (Threads of workers that ended are forgotten as others start.)
        self.threads.retain(|t| !t.is_finished());
        self.threads.push(thread);
        Ok(worker)
    }
}
