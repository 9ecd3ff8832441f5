//! The fuzz corpora, replayed on stable: every input under `fuzz/corpus/<target>/` and
//! `fuzz/artifacts/<target>/` (inputs that once crashed a target, kept as regressions)
//! runs through the same code as the cargo-fuzz target, `fuzz/entry/<target>.rs`, which
//! panics where the target would crash. So `cargo test` catches a regression on anything
//! the fuzzers found, without nightly or libFuzzer; `fuzz/README.md` says how to fuzz.
//!
//! The seeds (`fuzz/entry/seeds.rs`) are checked to still decode. After a change of a
//! format, `cargo test --test fuzz_corpora -- --ignored write_seeds` writes them into the
//! corpora again.

#[path = "../fuzz/entry/cbor_to_wit.rs"]
mod cbor_to_wit;
#[path = "../fuzz/entry/datagram.rs"]
mod datagram;
#[path = "../fuzz/entry/jail_policy.rs"]
mod jail_policy;
#[path = "../fuzz/entry/mailbox_text.rs"]
mod mailbox_text;
#[path = "../fuzz/entry/module_loading.rs"]
mod module_loading;
#[path = "../fuzz/entry/sealing.rs"]
mod sealing;
#[path = "../fuzz/entry/seeds.rs"]
mod seeds;
#[path = "../fuzz/entry/tcp_frame.rs"]
mod tcp_frame;

use cbor_to_wit::{Decode, cases};
use std::path::{Path, PathBuf};

/// A target's entry point: it panics where the target would crash.
type Entry = fn(&[u8]);

/// The fuzz targets, by name, with their entry points.
const TARGETS: [(&str, Entry); 7] = [
    ("datagram", datagram::run),
    ("tcp_frame", tcp_frame::run),
    ("mailbox_text", mailbox_text::run),
    ("cbor_to_wit", cbor_to_wit::run),
    ("jail_policy", jail_policy::run),
    ("sealing", sealing::run),
    ("module_loading", module_loading::run),
];

fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz")
}

/// The files of `dir`, sorted; none if it does not exist.
fn inputs(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut files: Vec<PathBuf> = entries
        .map(|entry| entry.expect("a directory entry").path())
        .filter(|path| path.is_file())
        .collect();
    files.sort();
    files
}

/// Runs every input of `target`'s corpus and artifacts through `run`; fails, naming the
/// inputs, if any panics, or if the corpus is empty.
fn replay(target: &str, run: Entry) {
    let corpus = inputs(&fuzz_dir().join("corpus").join(target));
    assert!(!corpus.is_empty(), "fuzz/corpus/{target} has no inputs");
    let artifacts = inputs(&fuzz_dir().join("artifacts").join(target));
    let failed: Vec<String> = corpus
        .iter()
        .chain(&artifacts)
        .filter(|path| {
            let data = std::fs::read(path).expect("an input can be read");
            std::panic::catch_unwind(|| run(&data)).is_err()
        })
        .map(|path| path.display().to_string())
        .collect();
    assert!(
        failed.is_empty(),
        "{target}: {} of {} inputs fail (their panics are above): {failed:#?}",
        failed.len(),
        corpus.len() + artifacts.len()
    );
}

#[test]
fn datagram_corpus() {
    replay("datagram", datagram::run);
}

#[test]
fn tcp_frame_corpus() {
    replay("tcp_frame", tcp_frame::run);
}

#[test]
fn mailbox_text_corpus() {
    replay("mailbox_text", mailbox_text::run);
}

#[test]
fn cbor_to_wit_corpus() {
    replay("cbor_to_wit", cbor_to_wit::run);
}

#[test]
fn jail_policy_corpus() {
    replay("jail_policy", jail_policy::run);
}

#[test]
fn sealing_corpus() {
    replay("sealing", sealing::run);
}

#[test]
fn module_loading_corpus() {
    replay("module_loading", module_loading::run);
}

#[test]
fn seeds_decode() {
    for (name, bytes) in seeds::seeds("datagram") {
        let decoded = dhost::wire::decode_datagram(&bytes);
        assert!(decoded.is_ok(), "datagram seed {name}: {decoded:?}");
    }
    for (name, bytes) in seeds::seeds("tcp_frame") {
        let mut rest = &bytes[..];
        while !rest.is_empty() {
            let (length, after) = rest.split_at(4);
            let length = u32::from_be_bytes(length.try_into().unwrap()) as usize;
            let frame = &after[..length];
            let decoded = dhost::rpc::frame::decode(frame);
            let handshake = dhost::rpc::frame::Handshake::decode(frame);
            assert!(
                decoded.is_ok() || handshake.is_ok(),
                "tcp_frame seed {name}: {decoded:?}, {handshake:?}"
            );
            rest = &after[length..];
        }
    }
    for (name, bytes) in seeds::seeds("mailbox_text") {
        let line = bytes.split(|&b| b == b'\n').next().unwrap_or_default();
        let parsed = dhost::mailbox::protocol::parse(line.strip_suffix(b"\r").unwrap_or(line));
        assert!(parsed.is_ok(), "mailbox_text seed {name}: {parsed:?}");
    }
    // A seed for the arguments of every function and for every result type, but those
    // of types that cannot travel (resources).
    let seeds = seeds::seeds("cbor_to_wit");
    let with_seeds = cases()
        .iter()
        .filter(|case| match &case.decode {
            Decode::Args(params) => params.iter().all(|(_, ty)| !is_resource(ty)),
            Decode::One(ty) => case.what.ends_with(" -> result") && !is_resource(ty),
        })
        .count();
    assert_eq!(seeds.len(), with_seeds);
    for (name, bytes) in seeds {
        let case = &cases()[usize::from(bytes[0])];
        let decoded = match &case.decode {
            Decode::Args(params) => {
                dhost::value::args_from_cbor_bytes(&bytes[1..], params, &mut Vec::new())
            }
            Decode::One(ty) => {
                let value = ciborium::de::from_reader(&bytes[1..]).expect("CBOR");
                dhost::value::from_cbor(value, ty).map(drop)
            }
        };
        assert!(decoded.is_ok(), "cbor_to_wit seed {name}: {decoded:?}");
    }
    for (name, text) in seeds::seeds("jail_policy") {
        let text = String::from_utf8(text).expect("UTF-8");
        let parsed = dhost::jail::Policy::parse(&text, dhost::jail::Flags::default());
        assert!(parsed.is_ok(), "jail_policy seed {name}: {parsed:?}");
    }
    for (target, run) in TARGETS {
        for (_, bytes) in seeds::seeds(target) {
            run(&bytes);
        }
    }
}

fn is_resource(ty: &wasmtime::component::Type) -> bool {
    matches!(
        ty,
        wasmtime::component::Type::Own(_) | wasmtime::component::Type::Borrow(_)
    )
}

/// Writes the seeds into the corpora (as `seed-NAME`).
#[test]
#[ignore = "writes into fuzz/corpus: run it by name after a change of a format"]
fn write_seeds() {
    for (target, _) in TARGETS {
        let dir = fuzz_dir().join("corpus").join(target);
        std::fs::create_dir_all(&dir).expect("the corpus directory can be made");
        for (name, bytes) in seeds::seeds(target) {
            std::fs::write(dir.join(format!("seed-{name}")), bytes).expect("a seed is written");
        }
    }
}
