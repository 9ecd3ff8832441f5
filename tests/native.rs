//! End-to-end tests of native DSTC plugins (`.so`, not sandboxed): plugins on the 2018
//! raw-bytes ABI chat between nodes; a plugin that cannot load, misuses dstc_epoll_ctl or
//! registers bad names gets clear errors while the node keeps running.

mod common;

use ciborium::Value;
use common::*;
use dhost::wire;
use std::process::Command;

#[test]
fn two_nodes_running_the_raw_abi_chat_plugin_chat_both_ways() {
    let group = unique_group();
    let plugin = guest_file("raw_chat.so");
    let plugin = plugin.to_str().unwrap();
    // ann's node is given the plugin as a GUEST, bob's with `--native PLUGIN` alone.
    let mut nodes: Vec<Dhost> = [("ann", vec![plugin]), ("bob", vec!["--native", plugin])]
        .iter()
        .map(|(n, guests)| Dhost::start(&node_args(&format!("raw-{n}"), group, guests)))
        .collect();
    for (node, name) in nodes.iter_mut().zip(["ann", "bob"]) {
        node.wait_stdout("the prompt", |out| out.contains("Username: "));
        node.type_line(name);
        node.wait_stderr("the node to join", |err| err.contains("ready in"));
        assert!(
            node.stderr().contains("1 native plugin(s)"),
            "{}",
            node.stderr()
        );
    }
    // The plugin reads stdin with stdio, one line per readiness, as the original did:
    // type a line, then wait for it.
    let lines = [
        (0, "hello from ann"),
        (1, "hi ann, bob here"),
        (0, "ñandú and 🦀 travel as raw bytes"),
    ];
    for (who, line) in lines {
        nodes[who].type_line(line);
        for node in &nodes {
            node.wait_stdout(line, |out| out.contains(line));
        }
    }
    let want = [
        "[ann]: hello from ann",
        "[bob]: hi ann, bob here",
        "[ann]: ñandú and 🦀 travel as raw bytes",
    ];
    for node in &mut nodes {
        assert_eq!(chat_lines(&node.stdout()), want);
        assert!(
            !node.stdout().contains("wrong data"),
            "the callback got its own data back"
        );
        assert!(node.interrupt().success());
    }
}

#[test]
fn a_plugin_that_cannot_load_is_refused_with_the_dlerror_text() {
    let dir = scratch_dir("native");
    let source = dir.join("unresolved.c");
    std::fs::write(
        &source,
        "extern void no_such_function(void);\n\
         static void __attribute__((constructor)) init(void) { no_such_function(); }\n",
    )
    .unwrap();
    let plugin = dir.join("unresolved.so");
    let cc = std::env::var("CC").unwrap_or_else(|_| "cc".into());
    let status = Command::new(cc)
        .args(["-fPIC", "-shared", "-o"])
        .arg(&plugin)
        .arg(&source)
        .status()
        .unwrap();
    assert!(status.success());
    let (status, _, err) = dhost_output(&["run", "--ttl", "0", plugin.to_str().unwrap()]);
    assert!(!status.success());
    assert!(err.contains("cannot load native plugin"), "{err}");
    assert!(
        err.contains("undefined symbol: no_such_function"),
        "the dlerror text: {err}"
    );

    // A file forced with --native that is no shared object.
    let text = dir.join("notes.txt");
    std::fs::write(&text, "not a plugin").unwrap();
    let (status, _, err) = dhost_output(&[
        "run",
        "--native",
        text.to_str().unwrap(),
        text.to_str().unwrap(),
    ]);
    assert!(!status.success());
    assert!(err.contains("cannot load native plugin"), "{err}");
    assert!(err.contains("notes.txt"), "{err}");
}

#[test]
fn epoll_ctl_misuse_and_bad_registrations_get_errors_and_the_node_keeps_running() {
    let group = unique_group();
    let plugin = guest_file("misuse.so");
    let mut node = Dhost::start(&node_args("misuse", group, &[plugin.to_str().unwrap()]));
    node.wait_stderr("the node to join", |err| err.contains("ready in"));
    let out = node.stdout();
    for want in [
        "misuse: unknown op -> -1 Invalid argument",
        "misuse: bad fd -> -1 Bad file descriptor",
        "misuse: del never added -> -1 No such file or directory",
        "misuse: mod never added -> -1 No such file or directory",
        "misuse: add -> 0 ok",
        "misuse: add twice -> -1 File exists",
        "misuse: del -> 0 ok",
    ] {
        assert!(out.contains(want), "`{want}` not in:\n{out}");
    }
    let err = node.stderr();
    for want in [
        "dstc_epoll_ctl(op 42, fd 0): unknown operation",
        "dstc_epoll_ctl: descriptor 12345 is not open",
        "dstc_epoll_ctl(op 1, fd 2): the descriptor is watched already",
        "dstc_register_function: refused a name that is empty or longer than 255 bytes",
    ] {
        assert!(err.contains(want), "`{want}` not in:\n{err}");
    }
    // Still serving: a raw call to `ping` runs, one to a function nobody serves is counted.
    let sender = group_sender(group);
    let mut args = b"one\0\0\0\0\0two\0\0\0\0\0".to_vec();
    args.truncate(16);
    let mut datagram = Vec::new();
    wire::encode_header(99, Some(1), &mut datagram);
    wire::encode_call(1, "dstc:raw/abi#ping", &[Value::Bytes(args)], &mut datagram);
    wire::encode_call(
        2,
        "dstc:raw/abi#nope",
        &[Value::Bytes(vec![])],
        &mut datagram,
    );
    wire::encode_call(
        3,
        "dstc:raw/abi#ping",
        &[Value::Text("not bytes".into())],
        &mut datagram,
    );
    sender.send(&datagram).unwrap();
    node.wait_stdout("the ping", |out| out.contains("misuse: ping one two"));
    node.wait_stderr("the drops", |err| {
        err.contains("a raw DSTC call takes one byte string")
    });
    assert!(
        node.stderr()
            .contains("no local guest serves function `dstc:raw/abi#nope`")
    );
    let status = node.interrupt();
    assert!(status.success());
    assert!(node.stderr().contains("2 dropped"), "{}", node.stderr());
}

#[test]
fn the_c_chat_on_our_header_chats_with_two_webassembly_nodes() {
    let group = unique_group();
    let (native, wasm) = (guest_file("test_chat.so"), guest("chat"));
    let mut nodes = vec![
        Dhost::start(&node_args("c-node", group, &[native.to_str().unwrap()])),
        Dhost::start(&node_args("wasm-1", group, &[wasm.to_str().unwrap()])),
        Dhost::start(&node_args("wasm-2", group, &[wasm.to_str().unwrap()])),
    ];
    let long_name = "n".repeat(127);
    let names = ["carol", long_name.as_str(), "wendy"];
    for (node, name) in nodes.iter_mut().zip(names) {
        node.wait_stdout("the prompt", |out| out.contains("Username: "));
        node.type_line(name);
        node.wait_stderr("the node to join", |err| err.contains("ready in"));
    }
    let longest = "é".repeat(255) + "x"; // 511 bytes of UTF-8
    let lines = [
        (0, "hello from C".to_string()),
        (
            1,
            "hello from WebAssembly, with a 127-byte name".to_string(),
        ),
        (0, "ünïcödé and 🦀 from C".to_string()),
        (2, longest.clone()),
        (0, "z".repeat(511)),
    ];
    for (who, line) in &lines {
        nodes[*who].type_line(line);
        for node in &nodes {
            node.wait_stdout("the line", |out| out.contains(line.as_str()));
        }
    }
    let want: Vec<String> = lines
        .iter()
        .map(|(who, line)| format!("[{}]: {line}", names[*who]))
        .collect();
    for node in &nodes {
        assert_eq!(chat_lines(&node.stdout()), want);
    }
    // Longer than the C declaration takes: the WebAssembly nodes print it, the C node
    // refuses it with a log line (never truncates it) and keeps chatting.
    let too_long = "y".repeat(512);
    nodes[1].type_line(&too_long);
    nodes[2].wait_stdout("the long line", |out| out.contains(&too_long));
    nodes[0].wait_stderr("the refusal", |err| {
        err.contains("its arguments do not fit native function `message`")
    });
    nodes[0].type_line("still chatting");
    nodes[2].wait_stdout("the next line", |out| {
        out.contains("[carol]: still chatting")
    });
    assert!(!nodes[0].stdout().contains("yyyy"));
    for node in &mut nodes {
        assert!(node.interrupt().success());
    }
}

#[test]
fn typed_arguments_of_every_kind_arrive_intact() {
    let group = unique_group();
    let plugin = guest_file("typed_args.so");
    let mut node = Dhost::start(&node_args("typed", group, &[plugin.to_str().unwrap()]));
    node.wait_stdout("the sixteen", |out| out.contains("typed: sixteen("));
    let out = node.stdout();
    assert_eq!(
        out.matches("typed: zero()").count(),
        2,
        "a direct call and a sent one: {out}"
    );
    assert!(out.contains("typed: one(-42)"), "{out}");
    assert!(
        out.contains(
            "typed: sixteen(-128, 255, -32768, 65535, -2147483648, 4294967295, \
             -9223372036854775808, 18446744073709551615, 1.50, 3.141593, 1, \"seven\", \
             \"héllo wörld\", [1 2 254 255], {-5 6 7.125}, 1234567890123)"
        ),
        "{out}"
    );
    // The peers see the bare names it serves.
    let (status, peers, _) = client_output("peers", group, &[]);
    assert!(status.success());
    assert!(peers.contains("one sixteen zero"), "{peers}");
    assert!(node.interrupt().success());
}
