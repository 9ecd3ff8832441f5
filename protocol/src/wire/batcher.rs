//! Batching: packing call frames into datagrams up to a size, extending the open run of
//! calls to one function in place.

use super::WireError;
use super::frame::{BREAK, call_frame_len, encode_call_run};
use super::header::encode_header;

/// Packs encoded frames into datagrams of at most `max` bytes, each opening with the
/// sender's header (sequenced, to be numbered with [`super::stamp`] as it leaves, or control).
/// Frames keep their order; a frame never spans two datagrams. Calls to the function of
/// the datagram's last frame, with the next call number, join its run.
#[derive(Debug)]
pub struct Batcher {
    header: Vec<u8>,
    max: usize,
    current: Vec<u8>,
    full: Vec<Vec<u8>>,
    /// The function of the run that ends the current datagram, and the run's next call
    /// number.
    run: Option<(String, u64)>,
}

impl Batcher {
    /// A batcher for datagrams of at most `max` bytes from `sender`, sequenced or not.
    pub fn new(sender: u64, max: usize, sequenced: bool) -> Self {
        let mut header = Vec::new();
        encode_header(sender, sequenced.then_some(0), &mut header);
        Batcher {
            current: header.clone(),
            header,
            max,
            full: Vec::new(),
            run: None,
        }
    }

    /// The largest frame that fits in one datagram.
    pub fn max_frame(&self) -> usize {
        self.max - self.header.len()
    }

    /// Appends one encoded frame, starting a new datagram when the current one is full.
    pub fn push(&mut self, frame: &[u8]) -> Result<(), WireError> {
        if frame.len() > self.max_frame() {
            return Err(WireError::TooLarge {
                size: frame.len() + self.header.len(),
                max: self.max,
            });
        }
        if self.current.len() + frame.len() > self.max {
            self.next_datagram();
        }
        self.current.extend_from_slice(frame);
        self.run = None;
        Ok(())
    }

    /// Appends call `seq` to `function` with `args`, one CBOR array: to the open run if it
    /// continues it, else as a run of its own.
    #[inline]
    pub fn push_call(&mut self, seq: u64, function: &str, args: &[u8]) -> Result<(), WireError> {
        let continues = self
            .run
            .as_ref()
            .is_some_and(|(f, next)| *next == seq && f == function);
        if continues && self.extend_run(args) {
            return Ok(());
        }
        let size = call_frame_len(function, args.len());
        if size > self.max_frame() {
            return Err(WireError::TooLarge {
                size: size + self.header.len(),
                max: self.max,
            });
        }
        if self.current.len() + size > self.max {
            self.next_datagram();
        }
        encode_call_run(seq, function, args, &mut self.current);
        match &mut self.run {
            Some((f, next)) => {
                f.clear();
                f.push_str(function);
                *next = seq.wrapping_add(1);
            }
            None => self.run = Some((function.to_string(), seq.wrapping_add(1))),
        }
        Ok(())
    }

    /// Appends calls `seq`, `seq + 1`, ... to `function`, one per argument array of
    /// `calls`, as [`Batcher::push_call`] would one by one, but without comparing function
    /// ids after the first. A call too large for any datagram is handed to `refused`.
    pub fn push_calls<'a>(
        &mut self,
        seq: u64,
        function: &str,
        calls: impl IntoIterator<Item = &'a [u8]>,
        mut refused: impl FnMut(WireError),
    ) {
        let mut in_run = false;
        let seqs = std::iter::successors(Some(seq), |s| Some(s.wrapping_add(1)));
        for (seq, args) in seqs.zip(calls) {
            if in_run && self.extend_run(args) {
                continue;
            }
            in_run = match self.push_call(seq, function, args) {
                Ok(()) => true,
                Err(e) => {
                    refused(e);
                    false
                }
            };
        }
    }

    /// Appends one call's arguments to the open run, if the datagram has room.
    #[inline]
    fn extend_run(&mut self, args: &[u8]) -> bool {
        if self.current.len() + args.len() > self.max {
            return false;
        }
        self.current.pop(); // the break
        self.current.extend_from_slice(args);
        self.current.push(BREAK);
        if let Some((_, next)) = &mut self.run {
            *next = next.wrapping_add(1);
        }
        true
    }

    fn next_datagram(&mut self) {
        let next = self.header.clone();
        self.full.push(std::mem::replace(&mut self.current, next));
        self.run = None;
    }

    /// Whether no frame is waiting.
    pub fn is_empty(&self) -> bool {
        self.full.is_empty() && self.current.len() == self.header.len()
    }

    /// Whether a datagram is full and waiting.
    pub fn has_full(&self) -> bool {
        !self.full.is_empty()
    }

    /// Takes the datagrams filled so far, leaving the one being filled.
    pub fn take_full(&mut self) -> Vec<Vec<u8>> {
        std::mem::take(&mut self.full)
    }

    /// Takes every datagram packed so far, the partly filled one included.
    pub fn take(&mut self) -> Vec<Vec<u8>> {
        if self.current.len() > self.header.len() {
            self.next_datagram();
        }
        self.run = None;
        std::mem::take(&mut self.full)
    }
}
