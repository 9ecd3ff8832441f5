//! The `tcp_frame` fuzz target: libFuzzer's inputs through [`entry::run`], whose body
//! (`fuzz/entry/tcp_frame.rs`) `tests/fuzz_corpora.rs` replays on stable.

#![no_main]

#[path = "../entry/tcp_frame.rs"]
mod entry;

libfuzzer_sys::fuzz_target!(|data: &[u8]| entry::run(data));
