//! End-to-end tests of guests side by side: each WebAssembly guest of a node runs on a
//! worker thread of its own, so a guest waiting for a reply, or busy for long, holds up
//! only itself. Two nodes whose guests call each other complete at once; a busy guest does
//! not delay another guest's chat; two guests of one node each receive a million calls in
//! order while a third traps and is restarted; a call back into a guest waiting for a
//! reply fails at once instead of waiting for itself.

mod common;

use common::*;
use std::time::{Duration, Instant};

/// The call timeout the nodes run with: a call that waited for it would show.
const TIMEOUT: &str = "30s";

#[test]
fn two_nodes_whose_guests_call_each_other_complete_without_a_timeout() {
    let group = unique_group();
    let kv = guest("kv");
    let kv = kv.to_str().unwrap();
    let bob = Dhost::start(&node_args("bob", group, &["--call-timeout", TIMEOUT, kv]));
    bob.wait_stderr("bob to be ready", |err| err.contains("calls on 127.0.0.1:"));

    // On ann, the client asks bob's store to fetch a key from ann's store: bob's guest
    // calls back into ann while ann's client waits for bob.
    let client = guest("kv-client");
    let started = Instant::now();
    let (status, out, err) = dhost_output(
        &node_args(
            "ann",
            group,
            &[
                "--call-timeout",
                TIMEOUT,
                kv,
                client.to_str().unwrap(),
                "--",
                "--node",
                "bob",
                "fetch",
                "ann",
                "k",
            ],
        )
        .iter()
        .map(String::as_str)
        .collect::<Vec<_>>(),
    );
    let took = started.elapsed();
    eprintln!("ann -> bob -> ann completed in {took:?} (the node started in it too)");
    assert!(status.success(), "{out}\n{err}");
    assert_eq!(out.trim(), "(none)", "{err}");
    assert!(
        took < Duration::from_secs(10),
        "the calls took {took:?}: they waited for a timeout"
    );
}

#[test]
fn a_call_back_into_a_guest_waiting_for_a_reply_fails_at_once() {
    let group = unique_group();
    let kv = guest("kv");
    let client = guest("kv-client");
    // The client asks this node's store to fetch from this node's store: the store's
    // call to itself would wait for itself.
    let started = Instant::now();
    let args = node_args(
        "solo",
        group,
        &[
            "--call-timeout",
            TIMEOUT,
            kv.to_str().unwrap(),
            client.to_str().unwrap(),
            "--",
            "--node",
            "solo",
            "fetch",
            "solo",
            "k",
        ],
    );
    let (status, out, err) = dhost_output(&args.iter().map(String::as_str).collect::<Vec<_>>());
    let took = started.elapsed();
    assert!(!status.success(), "{out}\n{err}");
    assert!(out.contains("error: "), "{out}");
    assert!(
        err.contains("guest kv is waiting for the reply to a call of its own"),
        "{err}"
    );
    assert!(took < Duration::from_secs(10), "it waited {took:?}");
}

#[test]
fn a_guest_busy_for_900_ms_does_not_hold_up_another_guests_chat() {
    let group = unique_group();
    let mut node = Dhost::start(&node_args(
        "ann",
        group,
        &[
            guest("chat").to_str().unwrap(),
            guest("hostile").to_str().unwrap(),
        ],
    ));
    node.wait_stdout("the prompt", |out| out.contains("Username: "));
    node.type_line("ann");
    node.wait_stderr("the node to be ready", |err| err.contains("ready in"));

    let (status, _, err) = client_output("cast", group, &["dhost:hostile/attacks#busy", "900"]);
    assert!(status.success(), "{err}");
    // (The cast reaches the node at once; the guest is busy from then on.)
    std::thread::sleep(Duration::from_millis(100));
    let typed = Instant::now();
    node.type_line("said while hostile is busy");
    node.wait_stdout("the chat line", |out| {
        out.contains("said while hostile is busy")
    });
    let latency = typed.elapsed();
    node.wait_stdout("the busy guest's end", |out| {
        out.contains("hostile: busy for 900 ms")
    });
    let out = node.stdout();
    eprintln!("a chat line went round in {latency:?} while another guest was busy");
    let chat = out.find("said while hostile is busy").unwrap();
    let busy = out.find("hostile: busy for 900 ms").unwrap();
    assert!(
        chat < busy,
        "the chat line waited for the busy guest:\n{out}"
    );
}

#[test]
fn two_guests_each_receive_a_million_calls_in_order_while_a_third_traps() {
    const COUNT: u32 = 1_000_000;
    let group = unique_group();
    let stress = guest("stress");
    let stress = stress.to_str().unwrap();
    let rx = Dhost::start(&node_args(
        "stress-rx-side",
        group,
        &[stress, stress, guest("hostile").to_str().unwrap()],
    ));
    rx.wait_stderr("the receiver to start", |err| err.contains("ready in"));
    let mut cmd = dhost_command();
    cmd.args(node_args(
        "stress-tx-side",
        group,
        &[
            "--allow-env",
            "STRESS_COUNT",
            "--max-time",
            "120s",
            guest("stress-sender").to_str().unwrap(),
        ],
    ))
    .env("STRESS_COUNT", COUNT.to_string());
    let _tx = Dhost::spawn(cmd);

    // The hostile guest overflows its stack while the calls pour in: it is restarted
    // each time, and the other guests lose nothing.
    rx.wait_stderr("the sender to join", |err| err.contains("stress-tx-side"));
    for _ in 0..3 {
        let (status, _, err) = client_output("cast", group, &["dhost:hostile/attacks#recurse"]);
        assert!(status.success(), "{err}");
        std::thread::sleep(Duration::from_millis(300));
    }
    rx.wait_stdout("both receivers' reports", |out| {
        out.matches("stress: ").count() >= 2
    });
    let out = rx.stdout();
    let whole = format!("stress: {COUNT} of {COUNT} values in order in ");
    assert_eq!(out.matches(&whole).count(), 2, "{out}");
    assert_eq!(out.matches(", 0 lost, 0 out of order").count(), 2, "{out}");
    rx.wait_stderr("the restarts", |err| {
        err.matches("guest hostile restarted").count() >= 2
    });
    let err = rx.stderr();
    assert!(err.contains("guest hostile trapped in"), "{err}");
}

#[test]
fn a_node_stopped_while_its_guests_send_to_each_other_stops_cleanly() {
    let group = unique_group();
    let mut node = Dhost::start(&node_args(
        "busy-stop",
        group,
        &[
            guest("chat").to_str().unwrap(),
            guest("chat").to_str().unwrap(),
        ],
    ));
    node.wait_stdout("the prompt", |out| out.contains("Username: "));
    node.type_line("ann");
    // Lines the guests send to each other while the node is told to stop.
    for i in 0..300 {
        node.type_line(&format!("line {i}"));
    }
    node.interrupt();
    let err = node.stderr();
    assert!(err.contains("node busy-stop stopped: "), "{err}");
    assert!(!err.contains("panicked"), "{err}");
}
