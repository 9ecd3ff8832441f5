//! The `jail_policy` fuzz target: libFuzzer's inputs through [`entry::run`], whose body
//! (`fuzz/entry/jail_policy.rs`) `tests/fuzz_corpora.rs` replays on stable.

#![no_main]

#[path = "../entry/jail_policy.rs"]
mod entry;

libfuzzer_sys::fuzz_target!(|data: &[u8]| entry::run(data));
