//! Modules going from one node to another when a node catches up: the fetching side
//! ([`fetch`], a piece at a time, each piece as large as asked, so a peer cannot stretch a
//! fetch out), and the serving side's memory of the modules it read and checked for its
//! peers ([`ServedModules`], so that a fetch of many pieces reads and hashes a module once).

use super::protocol::{CHUNK, ModuleRequest};
use super::{Digest, ModuleStore};
use crate::rpc::PoolHandle;
use ciborium::Value;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How long a node waits for a peer's piece of a module it fetches.
pub const FETCH_TIMEOUT: Duration = Duration::from_secs(10);

/// How many modules a node fetches from its peers at once.
pub const MAX_FETCHES: usize = 2;

/// How long a module read for peers' fetches is kept in memory.
const SERVED_MEMORY: Duration = Duration::from_secs(30);

/// How many modules read for peers' fetches are kept in memory (a peer catching up
/// fetches [`MAX_FETCHES`] at once, and several peers may catch up together).
const SERVED_KEPT: usize = 2 * MAX_FETCHES;

/// Fetches module `digest` (`size` bytes) from node `peer` at `tcp`, a piece of
/// [`CHUNK`] bytes at a time. Blocks the calling thread. The caller checks the digest.
pub fn fetch(
    pool: &PoolHandle,
    tcp: SocketAddr,
    peer: &str,
    digest: Digest,
    size: u64,
) -> Result<Vec<u8>, String> {
    let mut bytes = Vec::new();
    while (bytes.len() as u64) < size {
        let wanted = (size - bytes.len() as u64).min(CHUNK as u64);
        let request = ModuleRequest::Fetch {
            digest,
            offset: bytes.len() as u64,
            max: wanted,
        };
        let piece = match request.send(pool, tcp, peer, FETCH_TIMEOUT) {
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

/// The modules a node read from its store (and checked) for its peers' fetches, the most
/// recent few, for a while.
#[derive(Default)]
pub struct ServedModules {
    kept: Vec<(Digest, Arc<Vec<u8>>, Instant)>,
}

impl ServedModules {
    /// Module `digest`, if it was read lately.
    pub fn get(&mut self, digest: &Digest, now: Instant) -> Option<Arc<Vec<u8>>> {
        self.kept
            .retain(|(_, _, at)| now.duration_since(*at) < SERVED_MEMORY);
        let (_, bytes, at) = self.kept.iter_mut().find(|(d, _, _)| d == digest)?;
        *at = now;
        Some(bytes.clone())
    }

    /// Keeps module `digest`, read and checked now, in place of the one used least lately.
    pub fn keep(&mut self, digest: Digest, bytes: Arc<Vec<u8>>, now: Instant) {
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
pub fn piece(bytes: &[u8], offset: u64, max: u64) -> &[u8] {
    let start = usize::try_from(offset)
        .unwrap_or(usize::MAX)
        .min(bytes.len());
    let len = usize::try_from(max).unwrap_or(usize::MAX).min(CHUNK);
    &bytes[start..start.saturating_add(len).min(bytes.len())]
}

/// Reads module `digest` from `store` for a peer, checked (at most `max` bytes).
pub fn read_for_peer(store: &ModuleStore, digest: Digest, max: u64) -> Result<Vec<u8>, String> {
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
