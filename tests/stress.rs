//! End-to-end tests of the stress benchmark's guests (`scripts/bench.sh`): a sender node
//! calls `set-value(0..N)` in a tight loop, as fast as the node lets it (its window to the
//! receivers paces it), and a receiver node checks that every value arrives, in order.
//! WebAssembly guests and native plugins each; the calls travel as runs (docs/wire.md),
//! thousands per datagram, and the WebAssembly guests take and send them a run at a time
//! (`dstc:node/run-events` and `runs`), or, asked to, one call at a time. A run a guest
//! sends is checked whole before any of it leaves.

mod common;

use common::*;

/// Runs one stress test of `count` calls and returns the receiver's report; with
/// `one_by_one`, the WebAssembly guests cross into and out of the guest once per call.
fn stress(tag: &str, receiver: &str, sender: &str, count: u32, one_by_one: bool) -> String {
    stress_in_order(tag, receiver, sender, count, one_by_one, false)
}

/// As [`stress`]; with `sender_first`, the sender starts first, and the receiver only once
/// the sender says it waits for one.
fn stress_in_order(
    tag: &str,
    receiver: &str,
    sender: &str,
    count: u32,
    one_by_one: bool,
    sender_first: bool,
) -> String {
    let group = unique_group();
    let start_receiver = || {
        let mut cmd = dhost_command();
        cmd.args(node_args(
            &format!("stress-rx-{tag}"),
            group,
            &["--allow-env", "STRESS_ONE_BY_ONE", receiver],
        ));
        if one_by_one {
            cmd.env("STRESS_ONE_BY_ONE", "1");
        }
        let rx = Dhost::spawn(cmd);
        rx.wait_stderr("the receiver to start", |err| err.contains("ready in"));
        rx
    };
    let start_sender = || {
        let mut cmd = dhost_command();
        cmd.args(node_args(
            &format!("stress-tx-{tag}"),
            group,
            &[
                "--allow-env",
                "STRESS_COUNT",
                "--allow-env",
                "STRESS_ONE_BY_ONE",
                "--max-time",
                "60s",
                sender,
            ],
        ))
        .env("STRESS_COUNT", count.to_string());
        if one_by_one {
            cmd.env("STRESS_ONE_BY_ONE", "1");
        }
        Dhost::spawn(cmd)
    };
    let (rx, _tx) = if sender_first {
        let tx = start_sender();
        tx.wait_stderr("the sender to wait for a receiver", |err| {
            err.contains("waiting for a node that serves")
        });
        std::thread::sleep(std::time::Duration::from_millis(500));
        (start_receiver(), tx)
    } else {
        let rx = start_receiver();
        (rx, start_sender())
    };
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
    for (tag, one_by_one) in [("wasm", false), ("wasm-one-by-one", true)] {
        let report = stress(
            tag,
            guest("stress").to_str().unwrap(),
            guest("stress-sender").to_str().unwrap(),
            300_000,
            one_by_one,
        );
        assert_all_in_order(&report, 300_000);
    }
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
        false,
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

#[test]
fn a_run_a_guest_sends_is_checked_whole_and_arrives_in_order() {
    use ciborium::Value;
    let group = unique_group();
    let mut rx = Dhost::start(&node_args(
        "runs-rx",
        group,
        &[guest("chat").to_str().unwrap()],
    ));
    rx.wait_stdout("the prompt", |out| out.contains("Username: "));
    rx.type_line("rx");
    let tx = Dhost::start(&node_args(
        "runs-tx",
        group,
        &[guest("hostile").to_str().unwrap()],
    ));
    tx.wait_stderr("the sender to start", |err| err.contains("ready in"));
    rx.wait_stderr("the sender to join", |err| err.contains("runs-tx"));
    // A run's bytes, as `dhost cast` takes a list<u8>: a JSON array of numbers.
    let run = |calls: &[(&str, Value)]| {
        let mut bytes = Vec::new();
        for (user, text) in calls {
            let args = Value::Array(vec![Value::Text(user.to_string()), text.clone()]);
            ciborium::ser::into_writer(&args, &mut bytes).unwrap();
        }
        let numbers: Vec<String> = bytes.iter().map(u8::to_string).collect();
        format!("[{}]", numbers.join(","))
    };
    let send_run = |function: &str, calls: &str| {
        let function = format!("{function:?}");
        let (status, _, err) = client_output(
            "cast",
            group,
            &[
                "--node",
                "runs-tx",
                "dhost:hostile/attacks#send-run",
                &function,
                calls,
            ],
        );
        assert!(status.success(), "{err}");
    };
    let message = "dhost:chat/chat#message";
    let (status, _, err) = client_output(
        "cast",
        group,
        &[
            "--node",
            "runs-tx",
            "dhost:hostile/attacks#chat",
            r#""zero""#,
        ],
    );
    assert!(status.success(), "{err}");
    let good = run(&[("ann", "one".into()), ("ann", "two".into())]);
    send_run(message, &good);
    rx.wait_stdout("the run", |out| out.contains("[ann]: two"));

    // A call that does not fit, or a function the guest does not import: the guest traps,
    // and nothing of the run leaves.
    let bad = run(&[("bob", "three".into()), ("bob", Value::Integer(4.into()))]);
    send_run(message, &bad);
    tx.wait_stderr("the misfit refused", |err| {
        err.contains(
            "cannot send call 2 of a run to dhost:chat/chat#message: its arguments do not fit",
        )
    });
    send_run("dhost:chat/chat#shout", &good);
    tx.wait_stderr("the unknown function refused", |err| {
        err.contains(
            "cannot send a run to dhost:chat/chat#shout: guest hostile imports no function",
        )
    });
    // (Once it is back: the second failure in a row pauses its restart.)
    tx.wait_stderr("the guest restarted twice", |err| {
        err.matches("guest hostile restarted").count() >= 2
    });
    send_run(message, &run(&[("ann", "four".into())]));
    rx.wait_stdout("the last run", |out| out.contains("[ann]: four"));
    let lines = chat_lines(&rx.stdout());
    assert_eq!(
        lines,
        ["[hostile]: zero", "[ann]: one", "[ann]: two", "[ann]: four"],
        "every call of a good run, in order, and none of a bad one"
    );
}

#[test]
fn senders_started_first_wait_for_a_receiver_and_lose_nothing() {
    let root = root();
    let native = (
        root.join("target/guests/stress_receiver.so"),
        root.join("target/guests/stress_sender.so"),
    );
    let wasm = (guest("stress"), guest("stress-sender"));
    for (tag, (receiver, sender)) in [("first-native", native), ("first-wasm", wasm)] {
        let report = stress_in_order(
            tag,
            receiver.to_str().unwrap(),
            sender.to_str().unwrap(),
            100_000,
            false,
            true,
        );
        assert_all_in_order(&report, 100_000);
    }
}
