//! Benchmarks of the candidates for authenticating datagrams, on the two datagram sizes a
//! node sends (an Ethernet-sized one and the largest UDP payload), beside a plain copy of
//! the bytes as the baseline: keyed BLAKE3 (what dhost uses, `blake3`), HMAC-SHA256
//! (RustCrypto `hmac` + `sha2`, with the CPU's SHA extensions where it has them), and the
//! AEADs for `--encrypt`, XChaCha20-Poly1305 (what dhost uses) and ChaCha20-Poly1305
//! (`chacha20poly1305`).
//!
//! Run with `cargo bench -p dhost --bench auth`. The figure that matters is the cost per
//! datagram against the time a node spends on the calls that datagram carries (a 64 KB
//! datagram of the stress benchmark carries ~13,000 calls, ~1 ms of a native receiver's
//! time).

use chacha20poly1305::aead::{AeadInPlace, KeyInit};
use chacha20poly1305::{ChaCha20Poly1305, XChaCha20Poly1305};
use hmac::{Hmac, Mac};
use std::hint::black_box;

fn main() {
    divan::main();
}

/// The datagram sizes measured: one Ethernet frame's payload, and the UDP maximum.
const SIZES: [usize; 2] = [1472, 65507];

const KEY: [u8; 32] = [7; 32];

fn datagram(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 31 % 251) as u8).collect()
}

#[divan::bench(args = SIZES)]
fn copy_baseline(bencher: divan::Bencher, len: usize) {
    let bytes = datagram(len);
    let mut out = vec![0u8; len];
    bencher
        .counter(divan::counter::BytesCount::new(len))
        .bench_local(|| out.copy_from_slice(black_box(&bytes)));
}

#[divan::bench(args = SIZES)]
fn keyed_blake3(bencher: divan::Bencher, len: usize) {
    let bytes = datagram(len);
    bencher
        .counter(divan::counter::BytesCount::new(len))
        .bench_local(|| {
            let mut hasher = blake3::Hasher::new_keyed(&KEY);
            hasher.update(black_box(&bytes[..60]));
            hasher.update(black_box(&bytes[60..]));
            let mut tag = [0u8; 16];
            hasher.finalize_xof().fill(&mut tag);
            tag
        });
}

#[divan::bench(args = SIZES)]
fn hmac_sha256(bencher: divan::Bencher, len: usize) {
    let bytes = datagram(len);
    bencher
        .counter(divan::counter::BytesCount::new(len))
        .bench_local(|| {
            let mut mac = <Hmac<sha2::Sha256> as Mac>::new_from_slice(&KEY).expect("any key");
            mac.update(black_box(&bytes[..60]));
            mac.update(black_box(&bytes[60..]));
            mac.finalize().into_bytes()
        });
}

#[divan::bench(args = SIZES)]
fn xchacha20poly1305_seal(bencher: divan::Bencher, len: usize) {
    let mut bytes = datagram(len);
    let cipher = XChaCha20Poly1305::new(&KEY.into());
    bencher
        .counter(divan::counter::BytesCount::new(len))
        .bench_local(|| {
            cipher
                .encrypt_in_place_detached(&[1; 24].into(), &[], black_box(&mut bytes[..]))
                .expect("within the AEAD's limits")
        });
}

#[divan::bench(args = SIZES)]
fn chacha20poly1305_seal(bencher: divan::Bencher, len: usize) {
    let mut bytes = datagram(len);
    let cipher = ChaCha20Poly1305::new(&KEY.into());
    bencher
        .counter(divan::counter::BytesCount::new(len))
        .bench_local(|| {
            cipher
                .encrypt_in_place_detached(&[1; 12].into(), &[], black_box(&mut bytes[..]))
                .expect("within the AEAD's limits")
        });
}
