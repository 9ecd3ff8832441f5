//! What a node knows of the published names: the publication it runs under each name, the
//! names it knows to be unpublished, and the modules that failed here lately, and the one
//! rule every node applies to a publication it is offered or hears announced: the newest
//! publication of a name wins ([`Publication::supersedes`]).
//!
//! The catalog holds no I/O: the node's module service (`dhost_node::modules::service`)
//! asks it what to do and tells it what was done, so the rule is tested here on its own.

use super::{Digest, MAX_MODULES, Publication};
use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

/// How long a node remembers (and announces) that a name was unpublished, so that a node
/// still running the old module does not spread it again.
pub const REMOVAL_MEMORY: Duration = Duration::from_secs(3600);

/// How long a module that failed to fetch or load here is not tried again (unless it is
/// published to this node directly).
pub const RETRY_AFTER: Duration = Duration::from_secs(30);

/// The most failed modules remembered.
const MAX_FAILURES: usize = 64;

/// What to do with a publication.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Handling {
    /// It is new here: fetch (or take) the module and load it.
    Install,
    /// It is newer, and names the module the node runs already: only record it.
    Record,
    /// It is newer, and unpublishes its name: stop running what runs under it.
    Remove,
    /// The node runs it, or knows it, already.
    Have,
    /// The node knows a newer publication of the name.
    Stale(Publication),
}

/// What a node runs and knows of each published name.
#[derive(Debug, Default)]
pub struct Catalog {
    running: BTreeMap<String, Publication>,
    removed: BTreeMap<String, (Publication, Instant)>,
    failed: HashMap<Digest, (Instant, String)>,
}

impl Catalog {
    /// An empty catalog.
    pub fn new() -> Self {
        Catalog::default()
    }

    /// The publication the node runs under `name`, if any.
    pub fn running(&self, name: &str) -> Option<&Publication> {
        self.running.get(name)
    }

    /// Every publication the node runs, by name.
    pub fn all_running(&self) -> impl Iterator<Item = &Publication> {
        self.running.values()
    }

    /// The newest publication of `name` the node knows: the one it runs, or its removal.
    pub fn current(&self, name: &str) -> Option<&Publication> {
        self.running
            .get(name)
            .or_else(|| self.removed.get(name).map(|(p, _)| p))
    }

    /// What to do with publication `p` (offered, or announced by a peer).
    pub fn judge(&self, p: &Publication) -> Handling {
        let running = self.running.get(&p.name);
        match self.current(&p.name) {
            Some(current) if !p.supersedes(current) => {
                if current == p
                    || (running.is_some() && running.map(|r| r.digest) == Some(p.digest))
                {
                    Handling::Have
                } else {
                    Handling::Stale(current.clone())
                }
            }
            _ if p.is_removal() => Handling::Remove,
            _ if running.is_some_and(|r| r.digest == p.digest) => Handling::Record,
            _ => Handling::Install,
        }
    }

    /// Whether the node may run one more module under `name` (it runs at most
    /// [`MAX_MODULES`]).
    pub fn has_room_for(&self, name: &str) -> bool {
        self.running.contains_key(name) || self.running.len() < MAX_MODULES
    }

    /// The node now runs `p` under its name.
    pub fn ran(&mut self, p: Publication) {
        if let Some(digest) = p.digest {
            self.failed.remove(&digest);
        }
        self.removed.remove(&p.name);
        self.running.insert(p.name.clone(), p);
    }

    /// The node heard (or was told) that `p.name` is unpublished, and runs nothing under it
    /// any more.
    pub fn removed(&mut self, p: Publication, now: Instant) {
        self.running.remove(&p.name);
        self.removed.insert(p.name.clone(), (p, now));
        self.forget_old_removals(now);
    }

    /// Records at `now` that the node runs `p`, unless a newer publication of its name came
    /// meanwhile (then returns that one). An older publication of the module the node runs
    /// changes nothing.
    pub fn settle(&mut self, p: Publication, now: Instant) -> Result<(), Publication> {
        match self.judge(&p) {
            Handling::Stale(newer) => Err(newer),
            Handling::Have => Ok(()),
            Handling::Install | Handling::Record => {
                self.ran(p);
                Ok(())
            }
            Handling::Remove => {
                self.removed(p, now);
                Ok(())
            }
        }
    }

    /// Puts back what the node knew of `name` before a change that did not happen:
    /// `before`, as [`Self::current`] returned it.
    pub fn put_back(&mut self, name: &str, before: Option<Publication>, now: Instant) {
        self.running.remove(name);
        self.removed.remove(name);
        match before {
            Some(p) if p.is_removal() => self.removed(p, now),
            Some(p) => self.ran(p),
            None => {}
        }
    }

    /// The node no longer runs `name` (its guest was unloaded): forgets it.
    pub fn forget(&mut self, name: &str) {
        self.running.remove(name);
    }

    /// Module `digest` could not be fetched or loaded here, for `why`.
    pub fn failed(&mut self, digest: Digest, why: String, now: Instant) {
        if self.failed.len() >= MAX_FAILURES {
            self.failed
                .retain(|_, (at, _)| now.duration_since(*at) < RETRY_AFTER);
        }
        if self.failed.len() < MAX_FAILURES {
            self.failed.insert(digest, (now, why));
        }
    }

    /// Why module `digest` failed here within [`RETRY_AFTER`], if it did.
    pub fn failed_lately(&self, digest: &Digest, now: Instant) -> Option<&str> {
        self.failed
            .get(digest)
            .filter(|(at, _)| now.duration_since(*at) < RETRY_AFTER)
            .map(|(_, why)| why.as_str())
    }

    fn forget_old_removals(&mut self, now: Instant) {
        self.removed
            .retain(|_, (_, at)| now.duration_since(*at) < REMOVAL_MEMORY);
        // (The oldest by publication, as announcements keep the newest: what is evicted here
        // is what peers stop announcing too.)
        while self.removed.len() > MAX_MODULES {
            let oldest = self
                .removed
                .iter()
                .min_by_key(|(_, (p, _))| p.published_at)
                .map(|(name, _)| name.clone());
            if let Some(name) = oldest {
                self.removed.remove(&name);
            }
        }
    }

    /// What the node announces: the publications it runs, then the removals it remembers,
    /// newest first, [`MAX_MODULES`] in all.
    pub fn announced(&mut self, now: Instant) -> Vec<Publication> {
        self.forget_old_removals(now);
        let mut removals: Vec<&(Publication, Instant)> = self.removed.values().collect();
        removals.sort_by_key(|(p, _)| std::cmp::Reverse(p.published_at));
        self.running
            .values()
            .cloned()
            .chain(removals.into_iter().map(|(p, _)| p.clone()))
            .take(MAX_MODULES)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn publication(name: &str, at: u64, digest: Option<u8>) -> Publication {
        Publication {
            name: name.into(),
            digest: digest.map(|b| Digest([b; 32])),
            size: 10,
            published_at: at,
            publisher: "ann".into(),
        }
    }

    #[test]
    fn a_new_name_is_installed_and_then_known() {
        let mut catalog = Catalog::new();
        let v1 = publication("kv", 10, Some(1));
        assert_eq!(catalog.judge(&v1), Handling::Install);
        catalog.ran(v1.clone());
        assert_eq!(catalog.judge(&v1), Handling::Have);
        // The same module published again later: recorded, not loaded again.
        let again = publication("kv", 20, Some(1));
        assert_eq!(catalog.judge(&again), Handling::Record);
        catalog.ran(again.clone());
        // An older publication of the name is stale, whatever its module.
        assert_eq!(
            catalog.judge(&publication("kv", 15, Some(2))),
            Handling::Stale(again.clone())
        );
        // An older publication of the module it runs is had already.
        assert_eq!(catalog.judge(&v1), Handling::Have);
        // A newer module replaces it.
        assert_eq!(
            catalog.judge(&publication("kv", 30, Some(2))),
            Handling::Install
        );
    }

    #[test]
    fn a_removal_wins_over_older_publications_and_is_announced() {
        let mut catalog = Catalog::new();
        let now = Instant::now();
        catalog.ran(publication("kv", 10, Some(1)));
        catalog.ran(publication("chat", 12, Some(3)));
        let removal = publication("kv", 20, None);
        assert_eq!(catalog.judge(&removal), Handling::Remove);
        catalog.removed(removal.clone(), now);
        assert_eq!(catalog.running("kv"), None);
        // A node still running the old module cannot bring it back...
        assert_eq!(
            catalog.judge(&publication("kv", 10, Some(1))),
            Handling::Stale(removal.clone())
        );
        // ...but a newer publication can.
        assert_eq!(
            catalog.judge(&publication("kv", 25, Some(1))),
            Handling::Install
        );
        let announced = catalog.announced(now);
        assert_eq!(announced, [publication("chat", 12, Some(3)), removal]);
        // Removals are forgotten after a while.
        assert_eq!(catalog.announced(now + REMOVAL_MEMORY).len(), 1);
    }

    #[test]
    fn settling_never_goes_back_to_an_older_publication() {
        let mut catalog = Catalog::new();
        let now = Instant::now();
        let v1 = publication("kv", 10, Some(1));
        let v2 = publication("kv", 20, Some(2));
        catalog.ran(v2.clone());
        // v1 was being loaded while v2 arrived: it does not take v2's place.
        assert_eq!(catalog.settle(v1.clone(), now), Err(v2.clone()));
        // An older publication of the module it runs leaves the newer record.
        assert_eq!(catalog.settle(publication("kv", 15, Some(2)), now), Ok(()));
        assert_eq!(catalog.running("kv"), Some(&v2));
        // A change that did not happen is undone, removal records included.
        let removal = publication("chat", 5, None);
        catalog.removed(removal.clone(), now);
        catalog.ran(publication("chat", 6, Some(3)));
        catalog.put_back("chat", Some(removal.clone()), now);
        assert_eq!(catalog.current("chat"), Some(&removal));
        assert_eq!(catalog.running("chat"), None);
        catalog.put_back("kv", None, now);
        assert_eq!(catalog.current("kv"), None);
    }

    #[test]
    fn failures_are_not_retried_at_once() {
        let mut catalog = Catalog::new();
        let now = Instant::now();
        let digest = Digest([7; 32]);
        catalog.failed(digest, "bad".into(), now);
        assert_eq!(catalog.failed_lately(&digest, now), Some("bad"));
        assert_eq!(catalog.failed_lately(&digest, now + RETRY_AFTER), None);
        for i in 0..(MAX_FAILURES as u8 * 2) {
            catalog.failed(Digest([i; 32]), "x".into(), now);
        }
        assert!(catalog.failed.len() <= MAX_FAILURES);
    }

    #[test]
    fn the_node_runs_at_most_so_many_modules() {
        let mut catalog = Catalog::new();
        for i in 0..MAX_MODULES {
            let name = format!("m{i}");
            assert!(catalog.has_room_for(&name));
            catalog.ran(publication(&name, 1, Some(1)));
        }
        assert!(!catalog.has_room_for("one-more"));
        assert!(catalog.has_room_for("m0"));
        let now = Instant::now();
        for i in 0..MAX_MODULES * 2 {
            catalog.removed(publication(&format!("gone{i}"), i as u64, None), now);
        }
        assert_eq!(catalog.announced(now).len(), MAX_MODULES);
    }
}
