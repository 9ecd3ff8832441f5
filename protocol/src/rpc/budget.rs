//! Byte budgets: how many bytes the TCP port's callers may have waiting on the node at
//! once (requests queued for the guests, replies not yet written), over every connection.
//! What is queued takes a [`Held`] share of its budget, given back when it is dropped (the
//! call answered, the reply written); when the budget is spent, the port answers busy
//! rather than grow.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

/// The built-in default: the most bytes of requests from the TCP port waiting for the
/// event loop and the guests at once.
pub const QUEUED_CALL_BYTES: u64 = 64 << 20;

/// The built-in default: the most bytes of replies waiting to be written, over every
/// connection of the port.
pub const QUEUED_REPLY_BYTES: u64 = 64 << 20;

/// A number of bytes shared by everything queued against it.
#[derive(Debug)]
pub struct ByteBudget {
    held: AtomicU64,
    max: u64,
}

impl ByteBudget {
    /// A budget of `max` bytes.
    pub fn new(max: u64) -> Arc<Self> {
        Arc::new(ByteBudget {
            held: AtomicU64::new(0),
            max,
        })
    }

    /// A share of `bytes`, unless that would spend more than the budget.
    pub fn try_take(self: &Arc<Self>, bytes: u64) -> Option<Held> {
        self.held
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |held| {
                held.checked_add(bytes).filter(|&after| after <= self.max)
            })
            .ok()?;
        Some(Held {
            budget: self.clone(),
            bytes,
        })
    }

    /// The bytes held now.
    pub fn held(&self) -> u64 {
        self.held.load(Ordering::Acquire)
    }

    /// The most bytes it holds.
    pub fn max(&self) -> u64 {
        self.max
    }
}

/// A share of a [`ByteBudget`], given back when dropped.
#[derive(Debug)]
pub struct Held {
    budget: Arc<ByteBudget>,
    bytes: u64,
}

impl Drop for Held {
    fn drop(&mut self) {
        self.budget.held.fetch_sub(self.bytes, Ordering::AcqRel);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shares_are_refused_past_the_budget_and_given_back_when_dropped() {
        let budget = ByteBudget::new(100);
        let a = budget.try_take(60).expect("room");
        assert!(budget.try_take(41).is_none(), "60 + 41 > 100");
        let b = budget.try_take(40).expect("room for exactly 40");
        assert_eq!(budget.held(), 100);
        drop(a);
        assert_eq!(budget.held(), 40);
        assert!(budget.try_take(60).is_some());
        drop(b);
        assert_eq!(budget.held(), 0);
        assert!(budget.try_take(u64::MAX).is_none(), "no overflow");
    }
}
