//! The calls a guest or a native plugin sent and the node has not taken yet: each a
//! function id and its arguments as one CBOR array, the arrays in one growing buffer (the
//! protocol's [`ArgumentArrays`], as a run of calls carries them), so that sending a call
//! allocates nothing once the buffer has grown (the node hands the emptied buffer back).

use dhost_protocol::wire::ArgumentArrays;
use std::sync::Arc;

/// How much room an emptied outbox keeps for the next calls, per buffer.
pub const KEPT_ROOM: usize = 1 << 20;

/// Sent calls, in order.
#[derive(Debug, Default)]
pub struct Outbox {
    /// The calls' argument arrays, in order (ended by `usize`: an outbox may hold more
    /// than a run of calls).
    calls: ArgumentArrays<usize>,
    /// Runs of consecutive calls to one function: its id, and how many calls there are up
    /// to the end of the run (so a call costs no reference count of its own).
    runs: Vec<(Arc<str>, usize)>,
}

impl Outbox {
    /// Appends a call to `function` whose arguments `encode` writes onto the end of the
    /// buffer; nothing is appended if it fails.
    pub fn push<E>(
        &mut self,
        function: &Arc<str>,
        encode: impl FnOnce(&mut Vec<u8>) -> Result<(), E>,
    ) -> Result<(), E> {
        self.calls.push_with(encode)?;
        match self.runs.last_mut() {
            Some((last, end)) if Arc::ptr_eq(last, function) => *end += 1,
            _ => self.runs.push((function.clone(), self.calls.len())),
        }
        Ok(())
    }

    /// Appends a call to `function` with arguments already encoded.
    pub fn push_encoded(&mut self, function: &str, args: &[u8]) {
        self.calls.push(args);
        match self.runs.last_mut() {
            Some((last, end)) if **last == *function => *end += 1,
            _ => self.runs.push((Arc::from(function), self.calls.len())),
        }
    }

    /// Appends a call with arguments already encoded to the last run, if that run's
    /// function id is `function` (as bytes); false, appending nothing, if not.
    pub fn extend_last_run(&mut self, function: &[u8], args: &[u8]) -> bool {
        let Some((last, end)) = self.runs.last_mut() else {
            return false;
        };
        if last.as_bytes() != function {
            return false;
        }
        self.calls.push(args);
        *end += 1;
        true
    }

    /// Removes the last call.
    pub fn pop(&mut self) {
        if !self.calls.pop() {
            return;
        }
        let start = self.runs.len().checked_sub(2).map_or(0, |i| self.runs[i].1);
        if let Some((_, end)) = self.runs.last_mut() {
            *end -= 1;
            if *end == start {
                self.runs.pop();
            }
        }
    }

    /// The size of the last call's arguments.
    pub fn last_len(&self) -> usize {
        self.calls.last_len()
    }

    /// Whether no call is waiting.
    pub fn is_empty(&self) -> bool {
        self.calls.is_empty()
    }

    /// How many bytes of arguments are waiting.
    pub fn byte_len(&self) -> usize {
        self.calls.bytes().len()
    }

    /// How much memory the waiting calls take: their arguments, and what the outbox keeps
    /// for each call and each run.
    pub fn footprint(&self) -> usize {
        self.calls.footprint() + self.runs.len() * std::mem::size_of::<(Arc<str>, usize)>()
    }

    /// Moves every call onto the end of `out`, in order, leaving this outbox empty (when
    /// `out` is empty the two swap buffers: nothing is copied, and `out`'s room is kept
    /// here).
    pub fn move_into(&mut self, out: &mut Outbox) {
        if self.is_empty() {
            return;
        }
        if out.is_empty() {
            std::mem::swap(self, out);
            return;
        }
        for (function, args) in self.iter() {
            out.push_encoded(function, args);
        }
        self.clear();
    }

    /// Forgets every call, keeping the buffers' room up to [`KEPT_ROOM`] bytes (a burst
    /// larger than that gives its memory back).
    pub fn clear(&mut self) {
        self.calls.clear(KEPT_ROOM);
        self.runs.clear();
        self.runs
            .shrink_to(KEPT_ROOM / std::mem::size_of::<(Arc<str>, usize)>());
    }

    /// The calls grouped into runs of consecutive calls to one function: each run's
    /// function id and its calls' argument bytes.
    pub fn runs(
        &self,
    ) -> impl Iterator<Item = (&Arc<str>, impl ExactSizeIterator<Item = &[u8]> + Clone)> {
        let mut from = 0;
        self.runs.iter().map(move |(function, to)| {
            let args = self.calls.range(from, *to);
            from = *to;
            (function, args)
        })
    }

    /// The calls, in order: function id and argument bytes.
    pub fn iter(&self) -> impl Iterator<Item = (&Arc<str>, &[u8])> {
        self.runs()
            .flat_map(|(function, args)| args.map(move |a| (function, a)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An encoder that appends `bytes`.
    fn append(bytes: &[u8]) -> impl FnOnce(&mut Vec<u8>) -> Result<(), ()> + '_ {
        move |out| {
            out.extend_from_slice(bytes);
            Ok(())
        }
    }

    #[test]
    fn calls_come_out_in_order_and_in_runs() {
        let mut outbox = Outbox::default();
        let a: Arc<str> = "a".into();
        outbox.push(&a, append(&[1])).unwrap();
        outbox.push(&a, append(&[2, 2])).unwrap();
        assert!(
            outbox
                .push(&a, |out| {
                    out.push(9);
                    Err(())
                })
                .is_err()
        );
        outbox.push_encoded("b", &[3]);
        assert!(!outbox.extend_last_run(b"a", &[9]));
        assert!(outbox.extend_last_run(b"b", &[4]));
        outbox.push_encoded("a", &[5]);
        assert_eq!(outbox.last_len(), 1);
        let calls: Vec<(&str, &[u8])> = outbox.iter().map(|(f, a)| (&**f, a)).collect();
        assert_eq!(
            calls,
            [
                ("a", &[1][..]),
                ("a", &[2, 2]),
                ("b", &[3]),
                ("b", &[4]),
                ("a", &[5])
            ]
        );
        let runs: Vec<(String, Vec<Vec<u8>>)> = outbox
            .runs()
            .map(|(f, args)| (f.to_string(), args.map(<[u8]>::to_vec).collect()))
            .collect();
        assert_eq!(
            runs,
            [
                ("a".to_string(), vec![vec![1], vec![2, 2]]),
                ("b".to_string(), vec![vec![3], vec![4]]),
                ("a".to_string(), vec![vec![5]]),
            ]
        );
        outbox.pop();
        assert_eq!(outbox.byte_len(), 5);
        assert_eq!(outbox.runs().count(), 2);
        outbox.pop();
        assert_eq!(outbox.runs().count(), 2);
        assert_eq!(outbox.iter().count(), 3);
        outbox.clear();
        assert!(outbox.is_empty());
        assert_eq!(outbox.runs().count(), 0);
    }
}
