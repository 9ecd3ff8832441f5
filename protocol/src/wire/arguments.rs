//! The argument arrays of a sequence of calls (one CBOR array each), packed one after the
//! other in one buffer, with where each ends: what a run of calls carries
//! ([`super::CallRun`]), and what a guest's outbox holds (the runtime's `Outbox`, which adds
//! the function id of each run). Pushing a call allocates nothing once the buffers have
//! grown, and reading one is a slice of the buffer.

/// Where an array ends in the buffer: `u32` in a run of calls (a datagram, or a run a node
/// delivers to itself, is far shorter than 4 GiB: half the room for the ends), `usize` in
/// an outbox.
pub trait ArrayEnd: Copy + std::fmt::Debug + PartialEq {
    /// The end at byte `len` (for `u32`, `len` is below 4 GiB: see the type's use).
    fn at(len: usize) -> Self;
    /// The byte the array ends at.
    fn offset(self) -> usize;
}

impl ArrayEnd for u32 {
    #[inline]
    fn at(len: usize) -> Self {
        debug_assert!(
            u32::try_from(len).is_ok(),
            "a run of calls of 4 GiB or more"
        );
        len as u32
    }

    #[inline]
    fn offset(self) -> usize {
        self as usize
    }
}

impl ArrayEnd for usize {
    #[inline]
    fn at(len: usize) -> Self {
        len
    }

    #[inline]
    fn offset(self) -> usize {
        self
    }
}

/// Argument arrays, in order (see the module's documentation).
#[derive(Debug, Clone, PartialEq)]
pub struct ArgumentArrays<E: ArrayEnd = u32> {
    /// The arrays, one after the other.
    bytes: Vec<u8>,
    /// Where each array ends in `bytes`.
    ends: Vec<E>,
}

impl<E: ArrayEnd> Default for ArgumentArrays<E> {
    fn default() -> Self {
        ArgumentArrays {
            bytes: Vec::new(),
            ends: Vec::new(),
        }
    }
}

impl<E: ArrayEnd> ArgumentArrays<E> {
    /// Arrays already packed in `bytes`, ending at `ends` (increasing, the last at most
    /// `bytes.len()`: the decoder's, which checked each array).
    pub(crate) fn from_parts(bytes: Vec<u8>, ends: Vec<E>) -> Self {
        debug_assert!(ends.last().is_none_or(|end| end.offset() <= bytes.len()));
        ArgumentArrays { bytes, ends }
    }

    /// Appends an array already encoded.
    #[inline]
    pub fn push(&mut self, args: &[u8]) {
        self.bytes.extend_from_slice(args);
        self.ends.push(E::at(self.bytes.len()));
    }

    /// Appends the array `encode` writes onto the end of the buffer; nothing is appended
    /// if it fails.
    pub fn push_with<F>(
        &mut self,
        encode: impl FnOnce(&mut Vec<u8>) -> Result<(), F>,
    ) -> Result<(), F> {
        let start = self.bytes.len();
        if let Err(e) = encode(&mut self.bytes) {
            self.bytes.truncate(start);
            return Err(e);
        }
        self.ends.push(E::at(self.bytes.len()));
        Ok(())
    }

    /// Removes the last array; whether there was one.
    pub fn pop(&mut self) -> bool {
        if self.ends.pop().is_none() {
            return false;
        }
        self.bytes
            .truncate(self.ends.last().map_or(0, |end| end.offset()));
        true
    }

    /// How many arrays there are.
    #[inline]
    pub fn len(&self) -> usize {
        self.ends.len()
    }

    /// Whether there is none.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }

    /// Every array, one after the other.
    #[inline]
    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// The size of the last array.
    pub fn last_len(&self) -> usize {
        let start = self
            .len()
            .checked_sub(2)
            .map_or(0, |i| self.ends[i].offset());
        self.ends.last().map_or(0, |end| end.offset() - start)
    }

    /// Each array, in order.
    #[inline]
    pub fn iter(&self) -> impl ExactSizeIterator<Item = &[u8]> + Clone {
        self.range(0, self.len())
    }

    /// Arrays `from` to `to` (not included), in order.
    #[inline]
    pub fn range(&self, from: usize, to: usize) -> impl ExactSizeIterator<Item = &[u8]> + Clone {
        let mut start = from.checked_sub(1).map_or(0, |i| self.ends[i].offset());
        self.ends[from..to].iter().map(move |end| {
            let end = end.offset();
            let args = &self.bytes[start..end];
            start = end;
            args
        })
    }

    /// How much memory the arrays take: their bytes, and their ends.
    pub fn footprint(&self) -> usize {
        self.bytes.len() + self.ends.len() * std::mem::size_of::<E>()
    }

    /// Forgets every array, keeping at most `room` bytes of each buffer's room.
    pub fn clear(&mut self, room: usize) {
        self.bytes.clear();
        self.ends.clear();
        self.bytes.shrink_to(room);
        self.ends.shrink_to(room / std::mem::size_of::<E>());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arrays_come_out_as_they_went_in_and_a_failed_one_leaves_nothing() {
        let mut arrays = ArgumentArrays::<u32>::default();
        arrays.push(&[0x81, 1]);
        assert!(
            arrays
                .push_with(|out| {
                    out.push(0x82);
                    Err("half written")
                })
                .is_err()
        );
        arrays
            .push_with(|out| {
                out.extend_from_slice(&[0x82, 2, 3]);
                Ok::<_, ()>(())
            })
            .unwrap();
        arrays.push(&[0x80]);
        assert_eq!(arrays.len(), 3);
        assert_eq!(arrays.bytes(), [0x81, 1, 0x82, 2, 3, 0x80]);
        assert_eq!(
            arrays.iter().collect::<Vec<_>>(),
            [&[0x81, 1][..], &[0x82, 2, 3], &[0x80]]
        );
        assert_eq!(arrays.range(1, 3).len(), 2);
        assert_eq!(arrays.range(1, 2).next(), Some(&[0x82, 2, 3][..]));
        assert_eq!(arrays.last_len(), 1);
        assert!(arrays.pop());
        assert_eq!(arrays.last_len(), 3);
        assert_eq!(arrays.bytes().len(), 5);
        arrays.clear(0);
        assert!(arrays.is_empty() && !arrays.pop());
        assert_eq!(arrays.last_len(), 0);
    }
}
