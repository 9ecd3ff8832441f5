//! Benchmarks of the hot path, to show a regression in review: encoding a call's
//! arguments, batching calls into datagrams and decoding them, reading arguments against a
//! WIT signature, one call into a WebAssembly guest in process and a run of calls in one
//! entry, beside one call into a native plugin and a plain native call as the baselines.
//!
//! Run with `cargo bench -p dhost --bench hot_path` after `scripts/build-guests.sh`.

use dhost::guest::calls::Calls;
use dhost::guest::native;
use dhost::guest::wasm::{NodeFacts, Runtime, WasmGuest};
use dhost::guest::world::World;
use dhost::jail::Jail;
use dhost::{value, wire};
use std::hint::black_box;
use wasmtime::component::Val;

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
    // A node without a network: what the guest sends goes nowhere.
    let outgoing: std::sync::Arc<dyn dhost::guest::network::CallSender> =
        std::sync::Arc::new(dhost::stream::outgoing::Outgoing::new(
            7,
            wire::MAX_DATAGRAM,
            std::sync::Arc::new(dhost::auth::Gate::new(None, false)),
            dhost::stream::StreamConfig::default(),
            std::sync::Arc::default(),
            std::sync::Arc::default(),
        ));
    let node = NodeFacts {
        name: "bench",
        max_call: 60_000,
        calls: &calls,
        outgoing: &outgoing,
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

/// The arguments of `set-value(123456)`, as one CBOR array.
fn set_value_args(v: i32) -> Vec<u8> {
    let mut out = Vec::new();
    value::encode_args(&[Val::S32(v)], &mut out).expect("an s32 encodes");
    out
}

#[divan::bench]
fn encode_arguments(bencher: divan::Bencher) {
    let args = [Val::S32(123_456)];
    let mut out = Vec::with_capacity(64);
    bencher.bench_local(|| {
        out.clear();
        value::encode_args(black_box(&args), &mut out)
    });
}

/// 1000 set-value calls batched into a datagram; the time per call is this divided by 1000.
#[divan::bench]
fn batch_1000_calls(bencher: divan::Bencher) {
    let args: Vec<Vec<u8>> = (0..1000).map(set_value_args).collect();
    let mut batcher = wire::Batcher::new(7, wire::MAX_DATAGRAM, true);
    let mut seq = 0u64;
    bencher.bench_local(|| {
        for a in &args {
            seq += 1;
            let _ = batcher.push_call(seq, SET_VALUE, a);
        }
        batcher.take().len()
    });
}

/// One datagram of 1000 set-value calls; the time per call is this divided by 1000.
#[divan::bench]
fn decode_datagram_of_1000_calls(bencher: divan::Bencher) {
    let mut batcher = wire::Batcher::new(7, wire::MAX_DATAGRAM, true);
    for v in 0..1000 {
        batcher
            .push_call(v as u64, SET_VALUE, &set_value_args(v))
            .expect("a call fits");
    }
    let mut datagram = batcher.take().remove(0);
    wire::stamp(&mut datagram, 1);
    bencher.bench_local(|| wire::decode_datagram(black_box(&datagram)).map(|d| d.frames.len()));
}

#[divan::bench]
fn read_arguments_against_wit(bencher: divan::Bencher) {
    let guest = stress_guest();
    let params = guest.exports()[set_value_slot(&guest)]
        .function
        .params
        .clone();
    let args = set_value_args(42);
    let mut out = Vec::new();
    bencher.bench_local(|| value::args_from_cbor_bytes(black_box(&args), &params, &mut out));
}

/// One call into the guest from CBOR arguments: reading them against the signature,
/// lifting them into the guest and running `set-value`.
#[divan::bench]
fn dispatch_into_a_webassembly_guest(bencher: divan::Bencher) {
    let mut guest = stress_guest();
    let slot = set_value_slot(&guest);
    let args: Vec<Vec<u8>> = (0..4096).map(set_value_args).collect();
    let mut sent = dhost::guest::outbox::Outbox::default();
    let mut local = dhost::guest::outbox::Outbox::default();
    let mut i = 0;
    bencher.bench_local(|| {
        let result = guest.call_cbor(slot, &args[i % args.len()], &mut sent, &mut local);
        i += 1;
        sent.clear();
        result.is_ok()
    });
}

/// A run of 1000 set-value calls into the guest in one entry (`run-events.on-run`): checking
/// each call's arguments, lowering the run's bytes, and the guest's SDK reading them and
/// running `set-value`. The time per call is this divided by 1000.
#[divan::bench]
fn run_of_1000_calls_into_a_webassembly_guest(bencher: divan::Bencher) {
    let mut guest = stress_guest();
    let slot = set_value_slot(&guest);
    let args: Vec<Vec<u8>> = (0..1000).map(set_value_args).collect();
    let run = wire::CallRun::collect(0, SET_VALUE, args.iter().map(Vec::as_slice));
    let mut sent = dhost::guest::outbox::Outbox::default();
    let mut local = dhost::guest::outbox::Outbox::default();
    bencher.bench_local(|| {
        let result = guest.call_run(slot, black_box(&run), &mut sent, &mut local);
        sent.clear();
        matches!(result, Some(Ok(())))
    });
}

/// One call into the native stress receiver (`guests/c/stress`) from CBOR arguments:
/// its typed stub decodes them and runs `set_value`.
#[divan::bench]
fn dispatch_into_a_native_plugin(bencher: divan::Bencher) {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../target/guests/stress_receiver.so");
    let _plugin = native::NativePlugin::load(&path, "stress_receiver", 0)
        .expect("the native stress receiver loads (run scripts/build-guests.sh)");
    let server = native::resolve("set_value").expect("the plugin serves set_value");
    let args: Vec<Vec<u8>> = (0..4096).map(set_value_args).collect();
    let mut sent = dhost::guest::outbox::Outbox::default();
    let mut local = dhost::guest::outbox::Outbox::default();
    let mut i = 0;
    bencher.bench_local(|| {
        let result = server.call("set_value", &args[i % args.len()]);
        i += 1;
        native::take_sent(&mut sent, &mut local);
        sent.clear();
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
