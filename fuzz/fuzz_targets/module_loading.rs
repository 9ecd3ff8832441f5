//! The `module_loading` fuzz target: libFuzzer's inputs through [`entry::run`], whose body
//! (`fuzz/entry/module_loading.rs`) `tests/fuzz_corpora.rs` replays on stable.

#![no_main]

#[path = "../entry/module_loading.rs"]
mod entry;

libfuzzer_sys::fuzz_target!(|data: &[u8]| entry::run(data));
