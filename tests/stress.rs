//! End-to-end tests of the stress benchmark's guests (`scripts/bench.sh`): a sender node
//! calls `set-value(0..N)` a window at a time, as the receiver's progress reports allow,
//! and a receiver node checks that every value arrives, in order. WebAssembly guests and
//! native plugins each; the calls travel as runs (docs/wire.md), thousands per datagram.

mod common;

use common::*;

/// Runs one stress test of `count` calls and returns the receiver's report.
fn stress(tag: &str, receiver: &str, sender: &str, count: u32) -> String {
    let group = unique_group();
    let rx_name = format!("stress-rx-{tag}");
    let rx = Dhost::start(&node_args(&rx_name, group, &[receiver]));
    rx.wait_stderr("the receiver to start", |err| err.contains("ready in"));
    let mut cmd = dhost_command();
    cmd.args(node_args(
        &format!("stress-tx-{tag}"),
        group,
        &[
            "--allow-env",
            "STRESS_COUNT",
            "--allow-env",
            "STRESS_WINDOW",
            sender,
        ],
    ))
    .env("STRESS_COUNT", count.to_string())
    .env("STRESS_WINDOW", "40000");
    let _tx = Dhost::spawn(cmd);
    rx.wait_stdout("the receiver's report", |out| out.contains("stress: "));
    rx.stdout()
}

fn assert_all_in_order(report: &str, count: u32) {
    assert!(
        report.contains(&format!("stress: {count} of {count} values in order in ")),
        "{report}"
    );
    assert!(report.contains(", 0 lost, 0 out of order"), "{report}");
}

#[test]
fn a_webassembly_sender_reaches_a_webassembly_receiver_in_order_and_in_full() {
    let report = stress(
        "wasm",
        guest("stress").to_str().unwrap(),
        guest("stress-sender").to_str().unwrap(),
        300_000,
    );
    assert_all_in_order(&report, 300_000);
}

#[test]
fn a_native_sender_reaches_a_native_receiver_in_order_and_in_full() {
    let root = root();
    let receiver = root.join("target/guests/stress_receiver.so");
    let sender = root.join("target/guests/stress_sender.so");
    let report = stress(
        "native",
        receiver.to_str().unwrap(),
        sender.to_str().unwrap(),
        300_000,
    );
    assert_all_in_order(&report, 300_000);
}
