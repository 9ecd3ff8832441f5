//! Modules going from one node to another when a node catches up: the fetching side
//! ([`fetch`], a piece at a time, each piece as large as asked, each within
//! [`FETCH_TIMEOUT`] and the whole within [`fetch_deadline`], so a peer cannot stretch a
//! fetch out), the peers that announced each module lately ([`Sources`], so that a module
//! a peer stalls on is fetched from another), and the serving side's memory of the modules
//! it read and checked for its peers ([`ServedModules`], so that a fetch of many pieces
//! reads and hashes a module once).

use super::protocol::{CHUNK, ModuleRequest};
use super::{Digest, ModuleStore};
use crate::rpc::PoolHandle;
use ciborium::Value;
use dhost_protocol::outcome::Outcome;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How long a node waits for a peer's piece of a module it fetches.
pub(crate) const FETCH_TIMEOUT: Duration = Duration::from_secs(5);

/// How many modules a node fetches from its peers at once (from one peer: one).
pub(crate) const MAX_FETCHES: usize = 2;

/// From how many peers a node tries a module, one after the other, before it gives it up
/// for [`super::catalog::RETRY_AFTER`].
pub(crate) const MAX_SOURCES: usize = 4;

/// How long a peer is remembered as a source of a module it announced.
const SOURCE_MEMORY: Duration = Duration::from_secs(60);

/// The most modules whose sources are remembered.
const SOURCES_KEPT: usize = 64;

/// How long a fetch of `size` bytes from one peer may take in all: 30 s, and a second per
/// MiB (a peer slower than that is left for another).
pub(crate) fn fetch_deadline(size: u64) -> Duration {
    Duration::from_secs(30 + (size >> 20))
}

/// How long a module read for peers' fetches is kept in memory.
const SERVED_MEMORY: Duration = Duration::from_secs(30);

/// How many modules read for peers' fetches are kept in memory (a peer catching up
/// fetches [`MAX_FETCHES`] at once, and several peers may catch up together).
const SERVED_KEPT: usize = 2 * MAX_FETCHES;

/// Fetches module `digest` (`size` bytes) from node `peer` at `tcp`, a piece of
/// [`CHUNK`] bytes at a time, within [`fetch_deadline`]. Blocks the calling thread. The
/// caller checks the digest.
pub(crate) fn fetch(
    pool: &PoolHandle,
    tcp: SocketAddr,
    peer: &str,
    digest: Digest,
    size: u64,
) -> Result<Vec<u8>, String> {
    let deadline = Instant::now() + fetch_deadline(size);
    fetch_by(digest, size, deadline, |request, timeout| {
        request.send(pool, tcp, peer, timeout)
    })
}

/// [`fetch`], each request sent by `send(request, timeout)`, the whole by `deadline`.
fn fetch_by(
    digest: Digest,
    size: u64,
    deadline: Instant,
    mut send: impl FnMut(ModuleRequest, Duration) -> Outcome,
) -> Result<Vec<u8>, String> {
    let started = Instant::now();
    let mut bytes = Vec::new();
    while (bytes.len() as u64) < size {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(format!(
                "the peer sent {} of the {size} bytes in {}: too slow (a fetch of this size \
                 must end within {})",
                bytes.len(),
                humantime::format_duration(Duration::from_secs(started.elapsed().as_secs())),
                humantime::format_duration(fetch_deadline(size))
            ));
        }
        let wanted = (size - bytes.len() as u64).min(CHUNK as u64);
        let request = ModuleRequest::Fetch {
            digest,
            offset: bytes.len() as u64,
            max: wanted,
        };
        let piece = match send(request, FETCH_TIMEOUT.min(left)) {
            Ok(Value::Bytes(piece)) => piece,
            Ok(_) => return Err("the peer answered a fetch with something other than bytes".into()),
            Err(failure) => return Err(failure.to_string()),
        };
        if piece.len() as u64 != wanted {
            return Err(format!(
                "the peer sent {} bytes at offset {} where {wanted} were asked (of {size})",
                piece.len(),
                bytes.len()
            ));
        }
        bytes.extend_from_slice(&piece);
    }
    Ok(bytes)
}

/// The peers that announced each module lately (at most [`MAX_SOURCES`] a module, for
/// [`SOURCE_MEMORY`], for [`SOURCES_KEPT`] modules): where to fetch it from when the peer
/// tried first fails or stalls.
#[derive(Debug, Default)]
pub(crate) struct Sources {
    by_digest: HashMap<Digest, Vec<(String, SocketAddr, Instant)>>,
}

impl Sources {
    /// Node `peer`, which takes calls at `tcp`, announced module `digest`.
    pub(crate) fn heard(&mut self, digest: Digest, peer: &str, tcp: SocketAddr, now: Instant) {
        if !self.by_digest.contains_key(&digest) && self.by_digest.len() >= SOURCES_KEPT {
            self.by_digest.retain(|_, peers| {
                peers.retain(|(_, _, at)| now.duration_since(*at) < SOURCE_MEMORY);
                !peers.is_empty()
            });
            if self.by_digest.len() >= SOURCES_KEPT {
                return;
            }
        }
        let peers = self.by_digest.entry(digest).or_default();
        peers.retain(|(_, addr, _)| *addr != tcp);
        if peers.len() >= MAX_SOURCES {
            peers.remove(0);
        }
        peers.push((peer.to_string(), tcp, now));
    }

    /// A peer that announced `digest` lately and is not in `tried` (the latest first).
    pub(crate) fn next(
        &self,
        digest: &Digest,
        tried: &[SocketAddr],
        now: Instant,
    ) -> Option<(String, SocketAddr)> {
        self.by_digest
            .get(digest)?
            .iter()
            .rev()
            .find(|(_, addr, at)| !tried.contains(addr) && now.duration_since(*at) < SOURCE_MEMORY)
            .map(|(peer, addr, _)| (peer.clone(), *addr))
    }

    /// Forgets the sources of `digest` (it was fetched, or given up).
    pub(crate) fn forget(&mut self, digest: &Digest) {
        self.by_digest.remove(digest);
    }
}

/// The modules a node read from its store (and checked) for its peers' fetches, the most
/// recent few, for a while.
#[derive(Default)]
pub(crate) struct ServedModules {
    kept: Vec<(Digest, Arc<Vec<u8>>, Instant)>,
}

impl ServedModules {
    /// Module `digest`, if it was read lately.
    pub(crate) fn get(&mut self, digest: &Digest, now: Instant) -> Option<Arc<Vec<u8>>> {
        self.kept
            .retain(|(_, _, at)| now.duration_since(*at) < SERVED_MEMORY);
        let (_, bytes, at) = self.kept.iter_mut().find(|(d, _, _)| d == digest)?;
        *at = now;
        Some(bytes.clone())
    }

    /// Keeps module `digest`, read and checked now, in place of the one used least lately.
    pub(crate) fn keep(&mut self, digest: Digest, bytes: Arc<Vec<u8>>, now: Instant) {
        self.kept.retain(|(d, _, _)| *d != digest);
        if self.kept.len() >= SERVED_KEPT
            && let Some(oldest) = (0..self.kept.len()).min_by_key(|&i| self.kept[i].2)
        {
            self.kept.swap_remove(oldest);
        }
        self.kept.push((digest, bytes, now));
    }
}

/// A piece of `bytes`: from `offset`, at most `max` and at most [`CHUNK`] bytes (empty past
/// the end).
pub(crate) fn piece(bytes: &[u8], offset: u64, max: u64) -> &[u8] {
    let start = usize::try_from(offset)
        .unwrap_or(usize::MAX)
        .min(bytes.len());
    let len = usize::try_from(max).unwrap_or(usize::MAX).min(CHUNK);
    &bytes[start..start.saturating_add(len).min(bytes.len())]
}

/// Reads module `digest` from `store` for a peer, checked (at most `max` bytes).
pub(crate) fn read_for_peer(
    store: &ModuleStore,
    digest: Digest,
    max: u64,
) -> Result<Vec<u8>, String> {
    match store.get(&digest, max) {
        Ok(Some(bytes)) => Ok(bytes),
        Ok(None) => Err(format!(
            "module {} is not in this node's store",
            digest.short()
        )),
        Err(e) => Err(e.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use dhost_protocol::outcome::{CallFailure, FailureKind};

    #[test]
    fn a_fetch_ends_by_its_deadline_however_slowly_the_peer_sends() {
        let size = 3 * CHUNK as u64;
        let digest = Digest([1; 32]);
        // A peer that answers each piece whole, but slowly: the fetch stops at its deadline,
        // and never waits for a piece past it.
        let deadline = Instant::now() + Duration::from_millis(100);
        let mut timeouts = Vec::new();
        let err = fetch_by(digest, size, deadline, |request, timeout| {
            timeouts.push(timeout);
            std::thread::sleep(Duration::from_millis(60));
            let ModuleRequest::Fetch { max, .. } = request else {
                panic!("{request:?}");
            };
            Ok(Value::Bytes(vec![0; max as usize]))
        })
        .unwrap_err();
        assert!(err.contains("too slow"), "{err}");
        assert!(
            err.contains(&format!("sent {} of the {size} bytes", 2 * CHUNK)),
            "{err}"
        );
        assert!(
            timeouts.iter().all(|t| *t <= Duration::from_millis(100)),
            "{timeouts:?}"
        );
        assert!(timeouts.iter().all(|t| *t <= FETCH_TIMEOUT));
        // A peer that answers in time is fetched whole; one that fails is reported.
        let far = Instant::now() + fetch_deadline(size);
        let whole = fetch_by(digest, size, far, |request, _| match request {
            ModuleRequest::Fetch { max, .. } => Ok(Value::Bytes(vec![7; max as usize])),
            other => panic!("{other:?}"),
        });
        assert_eq!(whole.map(|b| b.len() as u64), Ok(size));
        let err = fetch_by(digest, size, far, |_, _| {
            Err(CallFailure::new(FailureKind::Timeout, "no answer"))
        })
        .unwrap_err();
        assert!(err.contains("no answer"), "{err}");
        assert!(fetch_deadline(64 << 20) > fetch_deadline(0));
    }

    #[test]
    fn another_source_is_offered_once_one_is_tried() {
        let (mut sources, now) = (Sources::default(), Instant::now());
        let d = Digest([2; 32]);
        let addr = |port| SocketAddr::from(([127, 0, 0, 1], port));
        sources.heard(d, "mallory", addr(1), now);
        sources.heard(d, "ann", addr(2), now);
        sources.heard(d, "ann", addr(2), now); // (once)
        assert_eq!(sources.next(&d, &[], now), Some(("ann".into(), addr(2))));
        assert_eq!(
            sources.next(&d, &[addr(2)], now),
            Some(("mallory".into(), addr(1)))
        );
        assert_eq!(sources.next(&d, &[addr(1), addr(2)], now), None);
        assert_eq!(sources.next(&d, &[], now + SOURCE_MEMORY), None);
        // Bounded: sources per module, and modules.
        for port in 10..20 {
            sources.heard(d, "x", addr(port), now);
        }
        assert_eq!(sources.by_digest[&d].len(), MAX_SOURCES);
        for i in 0..=SOURCES_KEPT as u8 {
            sources.heard(Digest([i; 32]), "x", addr(1), now);
        }
        assert!(sources.by_digest.len() <= SOURCES_KEPT);
        sources.forget(&d);
        assert_eq!(sources.next(&d, &[], now), None);
    }

    #[test]
    fn pieces_are_bounded_whatever_is_asked() {
        let bytes = vec![7u8; CHUNK * 2 + 5];
        assert_eq!(piece(&bytes, 0, u64::MAX).len(), CHUNK);
        assert_eq!(piece(&bytes, (CHUNK * 2) as u64, 100).len(), 5);
        assert_eq!(piece(&bytes, u64::MAX, u64::MAX).len(), 0);
        assert_eq!(piece(&bytes, 3, 0).len(), 0);
    }

    #[test]
    fn the_modules_served_lately_are_kept_a_few_at_a_time() {
        let (mut served, now) = (ServedModules::default(), Instant::now());
        for i in 0..SERVED_KEPT as u8 + 1 {
            served.keep(
                Digest([i; 32]),
                Arc::new(vec![i]),
                now + Duration::from_millis(i.into()),
            );
        }
        let later = now + Duration::from_secs(1);
        assert!(
            served.get(&Digest([0; 32]), later).is_none(),
            "the oldest made room"
        );
        assert_eq!(
            served.get(&Digest([1; 32]), later).as_deref(),
            Some(&vec![1])
        );
        assert!(
            served
                .get(&Digest([1; 32]), later + SERVED_MEMORY)
                .is_none()
        );
    }
}
