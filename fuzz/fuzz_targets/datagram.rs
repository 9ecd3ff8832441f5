//! The `datagram` fuzz target: libFuzzer's inputs through [`entry::run`], whose body
//! (`fuzz/entry/datagram.rs`) `tests/fuzz_corpora.rs` replays on stable.

#![no_main]

#[path = "../entry/datagram.rs"]
mod entry;

libfuzzer_sys::fuzz_target!(|data: &[u8]| entry::run(data));
