//! End-to-end tests of the stress benchmark's guests (`scripts/bench.sh`): a sender node
//! calls `set-value(0..N)` in a tight loop, as fast as the node lets it (its window to the
//! receivers paces it), and a receiver node checks that every value arrives, in order.
//! WebAssembly guests and native plugins each; the calls travel as runs (docs/wire.md),
//! thousands per datagram.

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
        &["--allow-env", "STRESS_COUNT", "--max-time", "60s", sender],
    ))
    .env("STRESS_COUNT", count.to_string());
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

#[test]
fn a_run_with_a_bad_call_delivers_the_others_and_the_receiver_says_what_it_saw() {
    use ciborium::Value;
    let group = unique_group();
    let rx = Dhost::start(&node_args(
        "stress-rx-hostile",
        group,
        &[guest("stress").to_str().unwrap()],
    ));
    rx.wait_stderr("the receiver to start", |err| err.contains("ready in"));
    let socket = group_sender(group);
    let frame = |items: Vec<Value>| {
        let mut out = Vec::new();
        ciborium::ser::into_writer(&Value::Array(items), &mut out).unwrap();
        out
    };
    let arg = |v: Value| Value::Array(vec![v]);
    let mut datagram = Vec::new();
    dhost::wire::encode_header(77, Some(1), &mut datagram);
    // One run of five calls: 0, a string where an s32 goes, 2, 1, then a value too large.
    datagram.extend(frame(vec![
        0.into(),
        1.into(),
        "dhost:stress/sink#set-value".into(),
        arg(0.into()),
        arg("not a number".into()),
        arg(2.into()),
        arg(1.into()),
        arg(Value::Integer((1i64 << 40).into())),
    ]));
    datagram.extend(frame(vec![
        0.into(),
        6.into(),
        "dhost:stress/sink#finish".into(),
        arg(3.into()),
    ]));
    socket.send(b"\xd9\xd9\xf7 garbage").unwrap();
    socket.send(&datagram).unwrap();
    rx.wait_stdout("the receiver's report", |out| out.contains("stress: "));
    assert!(
        rx.stdout().contains("stress: 2 of 3 values in order in "),
        "{}",
        rx.stdout()
    );
    assert!(
        rx.stdout().contains(", 1 lost, 1 out of order"),
        "{}",
        rx.stdout()
    );
    // Each bad call is dropped with a reason, and the node serves on.
    let said = |err: &str| err.matches("its arguments do not fit guest stress").count() == 2;
    rx.wait_stderr("the bad calls named", said);
    let err = rx.stderr();
    assert!(
        err.contains("a call from 127.0.0.1") && err.contains("to `dhost:stress/sink#set-value`"),
        "{err}"
    );
}
