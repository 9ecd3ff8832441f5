//! The `cbor_to_wit` fuzz target: libFuzzer's inputs through [`entry::run`], whose body
//! (`fuzz/entry/cbor_to_wit.rs`) `tests/fuzz_corpora.rs` replays on stable.

#![no_main]

#[path = "../entry/cbor_to_wit.rs"]
mod entry;

libfuzzer_sys::fuzz_target!(|data: &[u8]| entry::run(data));
