//! End-to-end tests of one `dhost` node: WASI commands, the errors a user sees for guests
//! that cannot load, guests that trap or send too much, timers and calls sent from inside a
//! handler, `dhost inspect`, and the compile cache.

mod common;

use ciborium::Value;
use common::*;
use dhost::wire;
use std::path::PathBuf;

#[test]
fn a_wasi_command_gets_its_arguments_and_sets_the_exit_status() {
    let hello = guest("hello");
    let hello = hello.to_str().unwrap();
    let (status, out, err) = dhost_output(&["run", hello, "--", "alpha", "beta"]);
    assert!(status.success(), "{status}: {err}");
    assert_eq!(out, "hello alpha beta\n");

    let (status, out, err) = dhost_output(&["run", hello, "--", "--fail"]);
    assert!(!status.success());
    assert_eq!(out, "");
    assert!(err.contains("hello: failing, as asked by --fail"), "{err}");
}

#[test]
fn guests_that_cannot_load_are_refused_with_the_file_and_the_reason() {
    let missing = "no/such/guest.wasm";
    let not_wasm = scratch_file(
        "node",
        "notes.wasm",
        b"these are not the bytes you are looking for",
    );
    let core = scratch_file("node", "core.wat", b"(module)");
    let unknown_node_api = scratch_file(
        "node",
        "odd.wat",
        br#"(component (import "dstc:node/teleport" (instance (export "go" (func)))))"#,
    );
    let cases = [
        (
            PathBuf::from(missing),
            vec!["cannot load guest no/such/guest.wasm: cannot read it: No such file"],
        ),
        (
            not_wasm.clone(),
            vec!["notes.wasm: it is not WebAssembly (no \\0asm magic at its start"],
        ),
        (
            core.clone(),
            vec!["core.wat: it is a core WebAssembly module, not a component"],
        ),
        (
            unknown_node_api.clone(),
            vec![
                "cannot satisfy import `dstc:node/teleport`",
                "not an interface this node provides",
            ],
        ),
    ];
    let group = unique_group();
    for (path, wants) in cases {
        let args = node_args("refuser", group, &[path.to_str().unwrap()]);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let (status, out, err) = dhost_output(&args);
        assert!(!status.success(), "{}: {status}", path.display());
        assert_eq!(out, "");
        for want in wants {
            assert!(
                err.contains(want),
                "{}: `{want}` not in:\n{err}",
                path.display()
            );
        }
        assert!(
            !err.contains("ready"),
            "refused before joining the group:\n{err}"
        );
    }
}

/// A guest that exports `dhost:test/crash#boom`, which always traps.
const CRASHER: &str = r#"
(component
  (core module $m (func (export "boom") unreachable))
  (core instance $i (instantiate $m))
  (func $boom (canon lift (core func $i "boom")))
  (instance $iface (export "boom" (func $boom)))
  (export "dhost:test/crash" (instance $iface)))
"#;

#[test]
fn a_guest_that_traps_is_restarted_and_the_node_keeps_serving() {
    let group = unique_group();
    let crasher = scratch_file("node", "crasher.wat", CRASHER.as_bytes());
    let chat = guest("chat");
    let mut node = Dhost::start(&node_args(
        "crashy",
        group,
        &[crasher.to_str().unwrap(), chat.to_str().unwrap()],
    ));
    node.wait_stdout("the prompt", |out| out.contains("Username: "));
    let sender = group_sender(group);
    for seq in 1..=2 {
        let mut datagram = Vec::new();
        wire::encode_header(77, Some(seq), &mut datagram);
        wire::encode_call(seq, "dhost:test/crash#boom", &[], &mut datagram);
        sender.send(&datagram).unwrap();
    }
    node.wait_stderr("two traps and two restarts", |err| {
        err.matches("guest crasher restarted").count() == 2
    });
    let err = node.stderr();
    assert!(
        err.contains("guest crasher trapped in dhost:test/crash#boom"),
        "the log names the guest and the function:\n{err}"
    );
    assert!(err.contains("unreachable"), "and the trap:\n{err}");

    node.type_line("dora");
    node.type_line("still here");
    node.wait_stdout("the chat still works", |out| {
        out.contains("[dora]: still here")
    });
    assert!(node.interrupt().success());
}

#[test]
fn arguments_too_large_for_a_datagram_are_an_error_for_the_sender() {
    let group = unique_group();
    let chat = guest("chat");
    let mut node = Dhost::start(&node_args(
        "small",
        group,
        &["--max-datagram", "600", chat.to_str().unwrap()],
    ));
    node.wait_stdout("the prompt", |out| out.contains("Username: "));
    node.type_line("eve");
    node.type_line(&"x".repeat(1000));
    node.wait_stderr("the error", |err| err.contains("guest chat restarted"));
    let err = node.stderr();
    assert!(
        err.contains("cannot send dhost:chat/chat#message: the call takes 10"),
        "{err}"
    );
    assert!(err.contains("bytes one datagram carries"), "{err}");
    // Restarted, it asks for the name again, and small messages still go through.
    node.wait_stdout("a second prompt", |out| {
        out.matches("Username: ").count() == 2
    });
    node.type_line("eve");
    node.type_line("short");
    node.wait_stdout("the short message", |out| out.contains("[eve]: short"));
    assert!(
        !node.stdout().contains("xxxx"),
        "nothing was truncated and sent"
    );
    assert!(node.interrupt().success());
}

#[test]
fn timers_and_readiness_fire_and_calls_sent_from_a_handler_are_delivered_after_it() {
    let group = unique_group();
    let (chat, ticker) = (guest("chat"), guest("ticker"));
    let mut node = Dhost::start(&node_args(
        "bots",
        group,
        &[chat.to_str().unwrap(), ticker.to_str().unwrap()],
    ));
    node.wait_stdout("three ticks", |out| out.contains("[ticker]: tick 3"));
    node.type_line("fay");
    node.type_line("ping");
    node.wait_stdout("the pong", |out| out.contains("[ticker]: pong"));
    node.wait_stdout("the clock's readiness", |out| {
        out.contains("[ticker]: ready 7")
    });
    let mut lines = chat_lines(&node.stdout());
    // The clock fires on its own time; the rest comes in this order.
    lines.retain(|l| l != "[ticker]: ready 7");
    assert_eq!(
        lines,
        [
            "[ticker]: tick 1",
            "[ticker]: tick 2",
            "[ticker]: tick 3",
            "[fay]: ping",
            "[ticker]: pong"
        ]
    );
    let err = node.stderr();
    assert!(
        err.contains("ticker on node bots"),
        "the guest's log line:\n{err}"
    );
    assert!(node.interrupt().success());
}

#[test]
fn a_node_without_guests_joins_the_group_from_the_environment_and_stops_cleanly() {
    let group = unique_group();
    let mut cmd = dhost_command();
    cmd.args(["-v", "run", "--name", "empty", "--ttl", "0"])
        .env("DHOST_GROUP", group.to_string())
        .env("DHOST_IFACE", "127.0.0.1");
    let mut node = Dhost::spawn(cmd);
    node.wait_stderr("ready", |err| err.contains("node empty"));
    let sender = group_sender(group);
    let mut datagram = Vec::new();
    wire::encode_header(5, Some(1), &mut datagram);
    wire::encode_call(
        1,
        "dhost:chat/chat#message",
        &[Value::Text("a".into())],
        &mut datagram,
    );
    sender.send(&datagram).unwrap();
    node.wait_stderr("the drop", |err| err.contains("no local guest serves"));
    assert!(
        node.stderr()
            .contains(&format!("group {group} on 127.0.0.1"))
    );
    assert!(node.interrupt().success());
}

#[test]
fn inspect_prints_the_components_wit_which_parses_back() {
    let chat = guest("chat");
    let (status, out, err) = dhost_output(&["inspect", chat.to_str().unwrap()]);
    assert!(status.success(), "{err}");
    for want in [
        "package root:component;",
        "world root {",
        "  import dhost:chat/chat;",
        "  export dstc:node/stdin-events;",
        "package dhost:chat {",
        "    message: func(username: string, msg: string);",
    ] {
        assert!(out.contains(want), "`{want}` not in:\n{out}");
    }
    // It is WIT (what wit-bindgen reads), not a notation of dhost's own.
    let mut resolve = wit_parser::Resolve::default();
    let package = resolve
        .push_str("chat.wit", &out)
        .unwrap_or_else(|e| panic!("the WIT does not parse back: {e:?}\n{out}"));
    assert!(resolve.select_world(&[package], Some("root")).is_ok());

    let core = scratch_file("inspect", "core.wat", "(module)");
    let (status, _, err) = dhost_output(&["inspect", core.to_str().unwrap()]);
    assert!(!status.success());
    assert!(err.contains("not a component"), "{err}");
}

#[test]
fn inspect_summary_shows_the_wit_types_and_what_the_node_would_do() {
    let chat = guest("chat");
    let (status, out, err) = dhost_output(&["inspect", "--summary", chat.to_str().unwrap()]);
    assert!(status.success(), "{err}");
    for want in [
        "dhost:chat/chat  [application]",
        "message: func(username: string, msg: string)",
        "dstc:node/stdin-events  [node events]",
        "on-line: func(line: string)",
        "sends  dhost:chat/chat#message  (multicast to the group)",
        "serves dhost:chat/chat#message",
    ] {
        assert!(out.contains(want), "`{want}` not in:\n{out}");
    }
    let hello = guest("hello");
    let (status, out, _) = dhost_output(&["inspect", "--summary", hello.to_str().unwrap()]);
    assert!(status.success());
    assert!(out.contains("runs as a WASI command"), "{out}");
}

#[test]
fn a_second_start_takes_the_compiled_guest_from_the_cache() {
    let cache = scratch_dir("cache");
    let _ = std::fs::remove_dir_all(&cache);
    let hello = guest("hello");
    let run = || {
        dhost_command()
            .env("DHOST_CACHE_DIR", &cache)
            .args(["-vv", "run", hello.to_str().unwrap(), "--", "again"])
            .output()
            .unwrap()
    };
    let first = run();
    let first_err = String::from_utf8_lossy(&first.stderr);
    assert!(first.status.success(), "{first_err}");
    assert!(first_err.contains("compile cache stored"), "{first_err}");
    let entries = std::fs::read_dir(&cache).unwrap().count();
    assert_eq!(entries, 1, "one entry, no temporary file left behind");

    let second = run();
    let second_err = String::from_utf8_lossy(&second.stderr);
    assert!(second.status.success());
    assert_eq!(String::from_utf8_lossy(&second.stdout), "hello again\n");
    assert!(second_err.contains("compile cache hit"), "{second_err}");

    // A damaged entry costs a compile, not a failure.
    for entry in std::fs::read_dir(&cache).unwrap() {
        std::fs::write(entry.unwrap().path(), b"garbage").unwrap();
    }
    let third = run();
    let third_err = String::from_utf8_lossy(&third.stderr);
    assert!(third.status.success(), "{third_err}");
    assert!(
        third_err.contains("ignoring unusable compile cache entry"),
        "{third_err}"
    );
    assert_eq!(String::from_utf8_lossy(&third.stdout), "hello again\n");
}

#[test]
fn bad_options_are_refused_and_help_explains_them() {
    for (args, want) in [
        (
            vec!["run", "--group", "10.1.2.3:4723"],
            "10.1.2.3 is not a multicast address",
        ),
        (
            vec!["run", "--group", "239.0.0.1"],
            "is not an IPv4 address and port",
        ),
        (
            vec!["run", "--group", "239.0.0.1:0"],
            "the group needs a port other than 0",
        ),
        (vec!["run", "--ttl", "300"], "300 is not in 0..=255"),
        (
            vec!["run", "--max-datagram", "100"],
            "100 is not in 512..=65507",
        ),
        (
            vec!["run", "--name", ""],
            "the node name must be 1 to 255 printable characters",
        ),
    ] {
        let (status, _, err) = dhost_output(&args);
        assert!(!status.success(), "{args:?}");
        assert!(err.contains(want), "{args:?}: `{want}` not in:\n{err}");
    }
    let (status, out, _) = dhost_output(&["run", "--help"]);
    assert!(status.success());
    for want in [
        "--group",
        "DHOST_GROUP",
        "--iface",
        "DHOST_IFACE",
        "--ttl",
        "--name",
        "WASI command",
    ] {
        assert!(out.contains(want), "`{want}` not in run --help:\n{out}");
    }
}
