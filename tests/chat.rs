//! The demo of the README as a test: three `dhost run chat.wasm` nodes on one multicast
//! group chat with each other, while hostile datagrams arrive on the same group.

mod common;

use ciborium::Value;
use common::*;
use dhost::wire;

/// Messages each node sends.
const MESSAGES: usize = 25;

/// Datagrams no node can use, each with the reason a node must give for dropping it.
fn garbage() -> Vec<(Vec<u8>, &'static str)> {
    let text = |s: &str| Value::Text(s.into());
    // Each hand-made call comes from a sender id of its own, so no sequence number repeats.
    let call = |sender: u64, function: &str, args: Vec<Value>| {
        let mut d = Vec::new();
        wire::encode_header(sender, Some(1), &mut d);
        wire::encode_call(1, function, &args, &mut d);
        d
    };
    let mut truncated = call(
        1,
        "dhost:chat/chat#message",
        vec![text("mallory"), text("cut")],
    );
    truncated.truncate(truncated.len() - 3);
    let mut wrong_version = Vec::new();
    let header = Value::Array(vec![9.into(), 1.into(), Value::Null]);
    ciborium::ser::into_writer(
        &Value::Tag(wire::MAGIC_TAG, Box::new(header)),
        &mut wrong_version,
    )
    .unwrap();
    vec![
        (b"hello, is this the chat?".to_vec(), "not a dhost datagram"),
        (vec![0xff; 40], "malformed CBOR"),
        (truncated, "malformed CBOR: truncated"),
        (wrong_version, "wire version 9 is not supported"),
        (
            call(2, "dhost:nope/nothing#here", vec![]),
            "no local guest serves function `dhost:nope/nothing#here`",
        ),
        (
            call(3, "dhost:chat/chat#message", vec![1.into(), text("x")]),
            "its arguments do not fit guest chat: username: expected string, found integer 1",
        ),
        (
            call(4, "dhost:chat/chat#message", vec![text("only one")]),
            "expected 2 arguments (username, msg), got 1",
        ),
    ]
}

#[test]
fn three_nodes_chat_and_shrug_off_garbage() {
    let group = unique_group();
    let chat = guest("chat");
    let chat = chat.to_str().unwrap();
    let names = ["ann", "bob", "cat"];
    let mut nodes: Vec<Dhost> = names
        .iter()
        .map(|n| Dhost::start(&node_args(&format!("node-{n}"), group, &[chat])))
        .collect();
    for node in &nodes {
        node.wait_stdout("the prompt", |out| out.contains("Username: "));
    }
    for (node, name) in nodes.iter_mut().zip(names) {
        node.type_line(name);
    }

    let sender = group_sender(group);
    let garbage = garbage();
    for i in 0..MESSAGES {
        for (node, name) in nodes.iter_mut().zip(names) {
            node.type_line(&format!("message {i} from {name}"));
        }
        if let Some((datagram, _)) = garbage.get(i) {
            sender.send(datagram).unwrap();
        }
    }

    let expected = MESSAGES * names.len();
    for node in &nodes {
        node.wait_stdout("every message", |out| chat_lines(out).len() >= expected);
    }
    // Let any duplicate arrive before counting.
    std::thread::sleep(std::time::Duration::from_millis(300));
    for node in &nodes {
        let lines = chat_lines(&node.stdout());
        assert_eq!(
            lines.len(),
            expected,
            "every message exactly once:\n{lines:#?}"
        );
        for name in names {
            let from: Vec<&String> = lines
                .iter()
                .filter(|l| l.starts_with(&format!("[{name}]")))
                .collect();
            let want: Vec<String> = (0..MESSAGES)
                .map(|i| format!("[{name}]: message {i} from {name}"))
                .collect();
            assert_eq!(
                from,
                want.iter().collect::<Vec<_>>(),
                "{name}'s messages in order"
            );
        }
    }

    // Every node said why it dropped each datagram, naming where it came from.
    let from = format!("from {}", sender.local_addr().unwrap());
    for node in &nodes {
        node.wait_stderr("a log line for every dropped datagram", |err| {
            garbage.iter().all(|(_, reason)| err.contains(reason))
        });
        let err = node.stderr();
        for line in err.lines().filter(|l| l.contains("dropped")) {
            assert!(
                line.contains(&from),
                "the log line names the sender: {line}"
            );
        }
    }
    for node in &mut nodes {
        let status = node.interrupt();
        assert!(status.success(), "a node stops cleanly on Ctrl-C: {status}");
        let err = node.stderr();
        assert!(
            err.contains("(4 malformed, 0 overrun, 0 unauthenticated, 0 replayed)"),
            "the node counted the malformed datagrams:\n{err}"
        );
        assert!(!err.contains("panic"), "{err}");
    }
}
