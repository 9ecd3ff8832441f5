//! Benchmarks of the hot path, to show a regression in review: encoding and decoding call
//! frames, checking arguments against a WIT signature, and one call into a WebAssembly
//! guest in process, beside a plain native call as the baseline.
//!
//! Run with `cargo bench -p dhost --bench hot_path` after `scripts/build-guests.sh`.

use ciborium::Value;
use dhost::guest::calls::Calls;
use dhost::guest::wasm::{NodeFacts, Runtime, WasmGuest};
use dhost::guest::world::World;
use dhost::jail::Jail;
use dhost::{value, wire};
use std::hint::black_box;

fn main() {
    divan::main();
}

/// The stress guest, loaded in the default jail.
fn stress_guest() -> WasmGuest {
    let path =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/guests/stress.wasm");
    assert!(
        path.exists(),
        "{} is missing: run scripts/build-guests.sh first",
        path.display()
    );
    let runtime = Runtime::new(None, false).expect("an engine");
    let component = runtime
        .load_component(&path)
        .expect("the stress guest compiles");
    let world = World::of(&component, runtime.engine());
    let calls = std::sync::Arc::new(Calls::new("bench", None));
    let node = NodeFacts {
        name: "bench",
        max_call: 60_000,
        calls: &calls,
    };
    WasmGuest::load(
        &runtime,
        &component,
        world,
        "stress",
        Jail::default_for(false),
        node,
    )
    .expect("the stress guest loads")
}

const SET_VALUE: &str = "dhost:stress/sink#set-value";

/// The export slot of `set-value` in the stress guest.
fn set_value_slot(guest: &WasmGuest) -> usize {
    guest
        .exports()
        .iter()
        .position(|e| e.function.id == SET_VALUE)
        .expect("the stress guest exports set-value")
}

#[divan::bench]
fn encode_call_frame(bencher: divan::Bencher) {
    let body = wire::encode_call_body(SET_VALUE, &[Value::Integer(123_456.into())]);
    let mut out = Vec::with_capacity(64);
    let mut seq = 0u64;
    bencher.bench_local(|| {
        out.clear();
        seq += 1;
        wire::encode_call_frame(seq, black_box(&body), &mut out);
        out.len()
    });
}

#[divan::bench]
fn encode_call_body(bencher: divan::Bencher) {
    let args = [Value::Integer(123_456.into())];
    bencher.bench_local(|| wire::encode_call_body(black_box(SET_VALUE), black_box(&args)));
}

/// One datagram of 1000 set-value calls; the time per call is this divided by 1000.
#[divan::bench]
fn decode_datagram_of_1000_calls(bencher: divan::Bencher) {
    let mut datagram = Vec::new();
    wire::encode_header(7, &mut datagram);
    for v in 0..1000 {
        wire::encode_call(v, SET_VALUE, &[Value::Integer(v.into())], &mut datagram);
    }
    bencher.bench_local(|| wire::decode_datagram(black_box(&datagram)).map(|d| d.frames.len()));
}

#[divan::bench]
fn check_arguments_against_wit(bencher: divan::Bencher) {
    let guest = stress_guest();
    let params = guest.exports()[set_value_slot(&guest)]
        .function
        .params
        .clone();
    bencher
        .bench_local(|| value::args_from_cbor(vec![Value::Integer(42.into())], black_box(&params)));
}

/// One call into the guest from CBOR arguments: checking them, lifting them into the
/// guest and running `set-value`.
#[divan::bench]
fn dispatch_into_a_webassembly_guest(bencher: divan::Bencher) {
    let mut guest = stress_guest();
    let slot = set_value_slot(&guest);
    let mut v = 0i64;
    bencher.bench_local(|| {
        let result = guest.call(slot, vec![Value::Integer(v.into())]);
        v += 1;
        result.is_ok()
    });
}

/// The baseline: a native function call that does what the guest does.
#[divan::bench]
fn native_call(bencher: divan::Bencher) {
    #[inline(never)]
    fn set_value(next: &mut i64, v: i32) -> bool {
        let ok = i64::from(v) == *next;
        *next = i64::from(v) + 1;
        ok
    }
    let mut next = 0i64;
    let mut v = 0i32;
    bencher.bench_local(|| {
        let ok = set_value(black_box(&mut next), black_box(v));
        v = v.wrapping_add(1);
        ok
    });
}
