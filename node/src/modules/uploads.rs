//! The transfers a node is receiving (`offer`, `chunk`, `finish`): a few at once, each
//! bounded by the size offered, dropped when idle, and checked whole (every byte offered
//! arrived, and their SHA-256 is the digest offered) before anything else looks at them.

use super::{Digest, Publication};
use dhost_protocol::outcome::{CallFailure, FailureKind};
use std::collections::HashMap;
use std::time::{Duration, Instant};

/// How many transfers a node takes at once.
pub(crate) const MAX_UPLOADS: usize = 4;

/// A transfer with no chunk for this long is dropped.
pub(crate) const UPLOAD_IDLE: Duration = Duration::from_secs(30);

/// A transfer in progress.
struct Upload {
    publication: Publication,
    bytes: Vec<u8>,
    touched: Instant,
}

/// The transfers in progress, by the digest offered.
#[derive(Default)]
pub(crate) struct Uploads {
    transfers: HashMap<Digest, Upload>,
}

fn bad(why: String) -> CallFailure {
    CallFailure::new(FailureKind::BadArguments, why)
}

impl Uploads {
    /// Drops the transfers idle for [`UPLOAD_IDLE`].
    pub(crate) fn prune(&mut self, now: Instant) {
        self.transfers
            .retain(|_, u| now.duration_since(u.touched) < UPLOAD_IDLE);
    }

    /// Starts the transfer of `p` (an offer the node accepted). The same publication
    /// offered again starts over; the same module offered under another name or by another
    /// publisher meanwhile waits.
    pub(crate) fn begin(&mut self, p: Publication, now: Instant) -> Result<(), CallFailure> {
        self.prune(now);
        let Some(digest) = p.digest else {
            return Err(bad(format!("the offer of {} has no digest", p.name)));
        };
        if let Some(other) = self.transfers.get(&digest)
            && other.publication != p
        {
            return Err(CallFailure::new(
                FailureKind::Unavailable,
                format!(
                    "the same module is being sent as {} now; try again shortly",
                    other.publication
                ),
            ));
        }
        if !self.transfers.contains_key(&digest) && self.transfers.len() >= MAX_UPLOADS {
            return Err(CallFailure::new(
                FailureKind::Unavailable,
                format!("this node takes {MAX_UPLOADS} transfers at once; try again shortly"),
            ));
        }
        self.transfers.insert(
            digest,
            Upload {
                publication: p,
                bytes: Vec::new(),
                touched: now,
            },
        );
        Ok(())
    }

    /// Adds the piece `data` at `offset` to the transfer of `digest`: pieces come in
    /// order, are not empty, and add up to no more than the size offered.
    pub(crate) fn append(
        &mut self,
        digest: Digest,
        offset: u64,
        data: &[u8],
        now: Instant,
    ) -> Result<(), CallFailure> {
        let Some(upload) = self.transfers.get_mut(&digest) else {
            return Err(bad(format!(
                "no transfer of {} in progress (offer it first; a transfer idle for {} is \
                 dropped)",
                digest.short(),
                humantime::format_duration(UPLOAD_IDLE)
            )));
        };
        let received = upload.bytes.len() as u64;
        if offset != received {
            return Err(bad(format!(
                "a chunk at offset {offset}, but {received} bytes were received"
            )));
        }
        if data.is_empty() {
            return Err(bad("an empty chunk".into()));
        }
        let size = upload.publication.size;
        if received + data.len() as u64 > size {
            self.transfers.remove(&digest);
            return Err(bad(format!(
                "more bytes than the {size} offered: transfer dropped"
            )));
        }
        if upload.bytes.is_empty() {
            // (Room for the whole module once its sender has sent some of it, not on the
            // word of an offer.)
            upload.bytes.reserve_exact(size as usize);
        }
        upload.bytes.extend_from_slice(data);
        upload.touched = now;
        Ok(())
    }

    /// Ends the transfer of `digest`: its publication and bytes, if every byte offered
    /// arrived and they are the module offered.
    pub(crate) fn take(&mut self, digest: Digest) -> Result<(Publication, Vec<u8>), CallFailure> {
        let Some(Upload {
            publication: p,
            bytes,
            ..
        }) = self.transfers.remove(&digest)
        else {
            return Err(bad(format!(
                "no transfer of {} in progress",
                digest.short()
            )));
        };
        let refused = |why: String| CallFailure::new(FailureKind::Refused, why);
        if bytes.len() as u64 != p.size {
            return Err(refused(format!(
                "the transfer of {p} is incomplete: {} of the {} bytes offered arrived",
                bytes.len(),
                p.size
            )));
        }
        let found = Digest::of(&bytes);
        if found != digest {
            return Err(refused(format!(
                "the bytes received for {p} have digest {}, not the {} offered: the \
                 transfer was corrupted",
                found.short(),
                digest.short()
            )));
        }
        Ok((p, bytes))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn offer(bytes: &[u8], name: &str) -> Publication {
        Publication {
            name: name.into(),
            digest: Some(Digest::of(bytes)),
            size: bytes.len() as u64,
            published_at: 1,
            publisher: "ann".into(),
        }
    }

    #[test]
    fn a_transfer_arrives_in_order_and_whole() {
        let (mut uploads, now) = (Uploads::default(), Instant::now());
        let module = b"0123456789".to_vec();
        let p = offer(&module, "kv");
        let d = p.digest.unwrap();
        uploads.begin(p.clone(), now).unwrap();
        uploads.append(d, 0, &module[..4], now).unwrap();
        // Out of order, empty, or beyond the size offered: refused.
        assert!(uploads.append(d, 8, &module[8..], now).is_err());
        assert!(uploads.append(d, 4, &[], now).is_err());
        uploads.append(d, 4, &module[4..], now).unwrap();
        assert_eq!(uploads.take(d).unwrap(), (p.clone(), module.clone()));
        assert!(uploads.take(d).is_err(), "taken once");

        // Too many bytes drop the transfer.
        uploads.begin(p.clone(), now).unwrap();
        let failure = uploads.append(d, 0, b"0123456789AB", now).unwrap_err();
        assert!(failure.message.contains("transfer dropped"), "{failure}");
        assert!(uploads.append(d, 0, b"0", now).is_err());
    }

    #[test]
    fn incomplete_and_corrupted_transfers_are_refused() {
        let (mut uploads, now) = (Uploads::default(), Instant::now());
        let module = b"0123456789".to_vec();
        let p = offer(&module, "kv");
        let d = p.digest.unwrap();
        uploads.begin(p.clone(), now).unwrap();
        uploads.append(d, 0, &module[..5], now).unwrap();
        let failure = uploads.take(d).unwrap_err();
        assert_eq!(failure.kind, FailureKind::Refused);
        assert!(failure.message.contains("5 of the 10 bytes"), "{failure}");
        uploads.begin(p, now).unwrap();
        uploads.append(d, 0, b"0123456780", now).unwrap();
        let failure = uploads.take(d).unwrap_err();
        assert!(failure.message.contains("corrupted"), "{failure}");
    }

    #[test]
    fn transfers_are_few_and_idle_ones_are_dropped() {
        let (mut uploads, now) = (Uploads::default(), Instant::now());
        for i in 0..MAX_UPLOADS {
            uploads
                .begin(offer(&[i as u8], &format!("m{i}")), now)
                .unwrap();
        }
        let one_more = offer(b"more", "more");
        let failure = uploads.begin(one_more.clone(), now).unwrap_err();
        assert_eq!(failure.kind, FailureKind::Unavailable);
        // The same module under another name waits; the same offer again starts over.
        assert!(uploads.begin(offer(&[0], "other"), now).is_err());
        uploads.begin(offer(&[0], "m0"), now).unwrap();
        // Later, the idle ones are gone.
        uploads.begin(one_more, now + UPLOAD_IDLE).unwrap();
        assert_eq!(uploads.transfers.len(), 1);
    }
}
