//! The one-shot timers of one guest (`dstc:node/timers`), kept in deadline order so the
//! node can sleep exactly until the next one is due.

use std::collections::{BTreeSet, HashMap};
use std::time::Instant;

/// The armed timers of one guest, by token and by deadline.
#[derive(Debug, Default)]
pub struct Timers {
    by_token: HashMap<u64, Instant>,
    by_deadline: BTreeSet<(Instant, u64)>,
}

impl Timers {
    /// How many timers are armed.
    pub fn len(&self) -> usize {
        self.by_token.len()
    }

    /// Whether no timer is armed.
    pub fn is_empty(&self) -> bool {
        self.by_token.is_empty()
    }

    /// Arms `token` for `deadline`, moving it if it was armed already.
    pub fn set(&mut self, token: u64, deadline: Instant) {
        if let Some(old) = self.by_token.insert(token, deadline) {
            self.by_deadline.remove(&(old, token));
        }
        self.by_deadline.insert((deadline, token));
    }

    /// Disarms `token`; returns whether it was armed.
    pub fn cancel(&mut self, token: u64) -> bool {
        match self.by_token.remove(&token) {
            Some(deadline) => self.by_deadline.remove(&(deadline, token)),
            None => false,
        }
    }

    /// The earliest deadline.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.by_deadline.first().map(|(deadline, _)| *deadline)
    }

    /// Disarms and returns the earliest timer due at `now`.
    pub fn pop_due(&mut self, now: Instant) -> Option<u64> {
        let &(deadline, token) = self.by_deadline.first()?;
        if deadline > now {
            return None;
        }
        self.by_deadline.pop_first();
        self.by_token.remove(&token);
        Some(token)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn timers_fire_in_deadline_order_and_can_be_moved_or_cancelled() {
        let t0 = Instant::now();
        let ms = |n| t0 + Duration::from_millis(n);
        let mut timers = Timers::default();
        timers.set(1, ms(30));
        timers.set(2, ms(10));
        timers.set(3, ms(20));
        timers.set(1, ms(5)); // moved earlier
        assert!(timers.cancel(3));
        assert!(!timers.cancel(3));
        assert_eq!(timers.len(), 2);
        assert_eq!(timers.next_deadline(), Some(ms(5)));
        assert_eq!(timers.pop_due(ms(4)), None);
        assert_eq!(timers.pop_due(ms(100)), Some(1));
        assert_eq!(timers.pop_due(ms(100)), Some(2));
        assert_eq!(timers.pop_due(ms(100)), None);
        assert!(timers.is_empty());
    }
}
