//! Replay protection: a sliding window over each sender's packet numbers (RFC 4303
//! §3.4.3, with a bitmap of [`WINDOW`] packets as RFC 6479 keeps it), and the table of
//! windows a receiving socket keeps, one per sender incarnation, bounded in number and
//! forgotten only once any datagram they could catch would be refused as stale anyway.
//!
//! A window is consulted only after the datagram's tag checked out (a forger cannot move
//! it), and a datagram is accepted once: a captured datagram sent again is refused, so is
//! one older than the window (held up on the way for longer than [`WINDOW`] packets of
//! its sender, or a replay).

use std::collections::HashMap;
use std::time::{Duration, Instant};

/// How many packet numbers behind a sender's highest a window still tells apart.
pub const WINDOW: u64 = 1024;

const WORDS: usize = (WINDOW / 64) as usize;

/// What a window says of a packet number.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Not seen before: accepted (and now seen).
    New,
    /// Seen before: a replay (or a datagram the network duplicated).
    Replayed,
    /// Older than the window: too old to tell, refused.
    TooOld,
}

/// The packet numbers of one sender seen lately.
#[derive(Debug, Clone)]
pub struct ReplayWindow {
    /// The highest number seen (0: none yet).
    highest: u64,
    /// Bit `n % WINDOW` is set when `n` (within the window) has been seen.
    seen: [u64; WORDS],
}

impl Default for ReplayWindow {
    fn default() -> Self {
        Self::new()
    }
}

impl ReplayWindow {
    /// A window that has seen nothing.
    pub fn new() -> Self {
        ReplayWindow {
            highest: 0,
            seen: [0; WORDS],
        }
    }

    fn bit(n: u64) -> (usize, u64) {
        let at = n % WINDOW;
        ((at / 64) as usize, 1 << (at % 64))
    }

    /// Checks packet `n` (numbers start at 1), marking it seen if it is new.
    pub fn check(&mut self, n: u64) -> Verdict {
        if n == 0 {
            return Verdict::TooOld;
        }
        if n > self.highest {
            // Forget what falls out of the window: the numbers the new ones reuse.
            let advance = n - self.highest;
            if advance >= WINDOW {
                self.seen = [0; WORDS];
            } else {
                for skipped in self.highest + 1..n {
                    let (word, mask) = Self::bit(skipped);
                    self.seen[word] &= !mask;
                }
            }
            self.highest = n;
            let (word, mask) = Self::bit(n);
            self.seen[word] |= mask;
            return Verdict::New;
        }
        if self.highest - n >= WINDOW {
            return Verdict::TooOld;
        }
        let (word, mask) = Self::bit(n);
        if self.seen[word] & mask != 0 {
            return Verdict::Replayed;
        }
        self.seen[word] |= mask;
        Verdict::New
    }
}

/// The windows of the senders a socket hears, by sender id.
#[derive(Debug)]
pub struct ReplayGuard {
    windows: HashMap<u64, (ReplayWindow, Instant)>,
    memory: Duration,
    capacity: usize,
}

impl ReplayGuard {
    /// The most senders whose windows are kept: a sender not heard from for longest
    /// makes room for a new one beyond it.
    pub const CAPACITY: usize = 4096;

    /// Windows kept for `memory` after their sender's last datagram (it must exceed
    /// twice the clock difference datagrams are accepted with: a replay of anything
    /// older is refused as stale).
    pub fn new(memory: Duration) -> Self {
        ReplayGuard {
            windows: HashMap::new(),
            memory,
            capacity: Self::CAPACITY,
        }
    }

    /// Checks packet `packet` of `sender`, heard at `now`.
    pub fn check(&mut self, sender: u64, packet: u64, now: Instant) -> Verdict {
        if !self.windows.contains_key(&sender) && self.windows.len() >= self.capacity {
            self.make_room(now);
        }
        let (window, heard) = self
            .windows
            .entry(sender)
            .or_insert_with(|| (ReplayWindow::new(), now));
        let verdict = window.check(packet);
        if verdict == Verdict::New {
            *heard = now;
        }
        verdict
    }

    /// Forgets the windows not needed any more, or else the one heard from longest ago.
    fn make_room(&mut self, now: Instant) {
        let memory = self.memory;
        self.windows
            .retain(|_, (_, heard)| now.saturating_duration_since(*heard) < memory);
        if self.windows.len() >= self.capacity
            && let Some(oldest) = self
                .windows
                .iter()
                .min_by_key(|(_, (_, heard))| *heard)
                .map(|(id, _)| *id)
        {
            self.windows.remove(&oldest);
        }
    }

    /// How many senders' windows are kept.
    pub fn len(&self) -> usize {
        self.windows.len()
    }

    /// Whether no window is kept.
    pub fn is_empty(&self) -> bool {
        self.windows.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_number_is_taken_once() {
        let mut w = ReplayWindow::new();
        assert_eq!(w.check(0), Verdict::TooOld);
        assert_eq!(w.check(1), Verdict::New);
        assert_eq!(w.check(1), Verdict::Replayed);
        assert_eq!(w.check(5), Verdict::New);
        // Out of order within the window: fine, once.
        assert_eq!(w.check(3), Verdict::New);
        assert_eq!(w.check(3), Verdict::Replayed);
        assert_eq!(w.check(4), Verdict::New);
        assert_eq!(w.check(5), Verdict::Replayed);
    }

    #[test]
    fn the_window_slides() {
        let mut w = ReplayWindow::new();
        assert_eq!(w.check(10), Verdict::New);
        assert_eq!(w.check(10 + WINDOW - 1), Verdict::New);
        // 10 is still inside: remembered.
        assert_eq!(w.check(10), Verdict::Replayed);
        assert_eq!(w.check(11), Verdict::New);
        assert_eq!(w.check(10 + WINDOW), Verdict::New);
        // Now 10 fell out.
        assert_eq!(w.check(10), Verdict::TooOld);
        // A bit reused by a new number was cleared: 10 + 2 * WINDOW is new, once.
        assert_eq!(w.check(11 + WINDOW), Verdict::New);
        assert_eq!(w.check(10 + 3 * WINDOW), Verdict::New);
        assert_eq!(w.check(10 + 3 * WINDOW - 5), Verdict::New);
        assert_eq!(w.check(10 + 3 * WINDOW - 5), Verdict::Replayed);
        assert_eq!(w.check(10 + 2 * WINDOW), Verdict::TooOld);
    }

    #[test]
    fn a_jump_clears_what_it_skips() {
        let mut w = ReplayWindow::new();
        for n in 1..=WINDOW {
            assert_eq!(w.check(n), Verdict::New);
        }
        // Every bit is set; jump half a window: the numbers skipped are unseen.
        let top = WINDOW + WINDOW / 2;
        assert_eq!(w.check(top), Verdict::New);
        for n in WINDOW + 1..top {
            assert_eq!(w.check(n), Verdict::New, "{n}");
        }
        for n in top + 1 - WINDOW..=WINDOW {
            assert_eq!(w.check(n), Verdict::Replayed, "{n}");
        }
        assert_eq!(w.check(u64::MAX), Verdict::New);
        assert_eq!(w.check(u64::MAX), Verdict::Replayed);
    }

    #[test]
    fn the_guard_keeps_senders_apart_and_bounded() {
        let now = Instant::now();
        let mut guard = ReplayGuard::new(Duration::from_secs(150));
        guard.capacity = 3;
        assert_eq!(guard.check(1, 1, now), Verdict::New);
        assert_eq!(guard.check(2, 1, now), Verdict::New);
        assert_eq!(guard.check(1, 1, now), Verdict::Replayed);
        assert_eq!(
            guard.check(3, 1, now + Duration::from_secs(1)),
            Verdict::New
        );
        assert_eq!(
            guard.check(2, 2, now + Duration::from_secs(2)),
            Verdict::New
        );
        // Full: the sender heard from longest ago (1) makes room.
        assert_eq!(
            guard.check(4, 1, now + Duration::from_secs(3)),
            Verdict::New
        );
        assert_eq!(guard.len(), 3);
        assert_eq!(guard.check(2, 2, now), Verdict::Replayed);
        // Windows of senders silent for longer than the memory go first.
        let later = now + Duration::from_secs(200);
        assert_eq!(guard.check(5, 1, later), Verdict::New);
        assert_eq!(guard.len(), 1);
    }
}
