//! Guests in four languages on one group: Rust and JavaScript and Python components (built
//! by scripts/build-guests.sh from guests/, guests/js and guests/python) and the C chat
//! plugin, chatting in one room; the Rust kv-client calling the Python store; and the same
//! jail refusing a Python guest what it refuses a Rust one.

mod common;

use ciborium::Value;
use common::*;
use std::time::Duration;

/// How long a node may take to start a guest with an interpreter inside the first time:
/// compiling its 12 to 18 MB component (later starts come from the compile cache).
const FIRST_START: Duration = Duration::from_secs(240);

/// Starts node `name` with `guest` and waits for its chat prompt.
fn chat_node(name: &str, group: std::net::SocketAddrV4, guest: &std::path::Path) -> Dhost {
    let node = Dhost::start(&node_args(name, group, &[guest.to_str().unwrap()]));
    node.wait_stdout_within("the prompt", FIRST_START, |out| out.contains("Username: "));
    node
}

#[test]
fn rust_c_python_and_javascript_nodes_share_one_chat_room() {
    let group = unique_group();
    let members = [
        ("rust-node", "ferris", guest("chat")),
        ("c-node", "dennis", guest_file("test_chat.so")),
        ("python-node", "guido", guest("chat-py")),
        ("js-node", "brendan", guest("chat-js")),
    ];
    let mut nodes: Vec<Dhost> = members
        .iter()
        .map(|(node, _, guest)| chat_node(node, group, guest))
        .collect();
    for (node, (_, user, _)) in nodes.iter_mut().zip(&members) {
        node.type_line(user);
        // (Every node has joined before anyone speaks: the group has no history.)
        node.wait_stderr("the node to join", |err| err.contains("ready in"));
    }
    let said = |user: &str, n: usize| format!("line {n} from {user}, é and 🦀");
    for n in 1..=2 {
        for (node, (_, user, _)) in nodes.iter_mut().zip(&members) {
            let line = said(user, n);
            node.type_line(&line);
            // (The C chat reads one line each time its stdin is ready, as DSTC's did: a
            // second line already buffered would wait for a third.)
            node.wait_stdout("the line to come back", |out| {
                out.contains(&format!("[{user}]: {line}"))
            });
        }
    }
    let everything = 2 * members.len();
    for node in &nodes {
        node.wait_stdout("all eight lines", |out| chat_lines(out).len() >= everything);
    }
    // Let any duplicate arrive before counting.
    std::thread::sleep(Duration::from_millis(300));
    for (node, (name, _, _)) in nodes.iter().zip(&members) {
        let lines = chat_lines(&node.stdout());
        assert_eq!(lines.len(), everything, "{name}: {lines:#?}");
        for (_, user, _) in &members {
            let from: Vec<&String> = lines
                .iter()
                .filter(|l| l.starts_with(&format!("[{user}]")))
                .collect();
            let want = [1, 2].map(|n| format!("[{user}]: {}", said(user, n)));
            assert_eq!(
                from,
                want.iter().collect::<Vec<_>>(),
                "{name}: {user}'s lines"
            );
        }
    }
    for node in &mut nodes {
        assert!(node.interrupt().success(), "{}", node.stderr());
        assert!(node.stderr().contains("0 guest traps"), "{}", node.stderr());
    }
}

#[test]
fn the_rust_kv_client_calls_the_python_store_and_gets_values_and_errors() {
    let group = unique_group();
    let mut store = Dhost::start(&node_args(
        "py-store",
        group,
        &[guest("kv-py").to_str().unwrap()],
    ));
    store.wait_stderr_within("the store to take calls", FIRST_START, |err| {
        err.contains("calls on 127.0.0.1:")
    });
    // componentize-py leaves an export of its own, `exports`, which the node leaves alone.
    let (status, summary, err) =
        dhost_output(&["inspect", "--summary", guest("kv-py").to_str().unwrap()]);
    assert!(status.success(), "{err}");
    assert!(
        summary.contains("  serves dhost:kv/entries#find\n"),
        "{summary}"
    );
    assert!(
        summary.contains("  ignores export exports: `exports` is a plain name"),
        "{summary}"
    );
    assert!(!summary.contains("serves exports#"), "{summary}");
    let ok = |args: &[&str]| {
        let (status, out, err) = kv_client(group, args);
        assert!(status.success(), "kv-client {args:?}: {out}{err}");
        out.trim().to_string()
    };
    assert_eq!(ok(&["put", "lang", "python"]), "ok");
    assert_eq!(ok(&["put", "n", "42"]), "ok");
    assert_eq!(ok(&["get", "lang"]), "python");
    assert_eq!(ok(&["get", "nothing"]), "(none)");
    assert_eq!(ok(&["keys"]), "lang\nn");
    assert_eq!(ok(&["count"]), "2");
    // A Python exception in the store: a trap, which reaches the Rust caller as the error
    // value of its `result<string, string>`; the store restarts, empty.
    let (status, out, _) = kv_client(group, &["crash", "on purpose"]);
    assert!(!status.success());
    assert!(
        out.starts_with("error: trapped: guest kv-py trapped"),
        "{out}"
    );
    store.wait_stderr("the restart", |err| err.contains("guest kv-py restarted"));
    assert!(
        store
            .stderr()
            .contains("RuntimeError: kv-py: crashing, as asked: on purpose"),
        "the guest's traceback is in the node's log:\n{}",
        store.stderr()
    );
    assert_eq!(ok(&["count"]), "0");
    // A failure of the call itself comes back typed (`call-error`): no node serves it.
    store.kill();
    let (status, out, _) = kv_client(group, &["count"]);
    assert!(!status.success());
    assert!(out.starts_with("error: no-server: "), "{out}");
}

#[test]
fn a_python_guest_is_jailed_as_a_rust_one() {
    let group = unique_group();
    let secret = scratch_file("py-jail", "secret.txt", "the secret");
    let granted = secret.parent().unwrap().to_str().unwrap().to_string();
    // The default jail, but for one directory granted read-only at /data.
    let hostile = guest("hostile-py");
    let node = Dhost::start(&node_args(
        "py-jail",
        group,
        &[
            "--allow-dir",
            &format!("{granted}:/data:ro"),
            hostile.to_str().unwrap(),
        ],
    ));
    node.wait_stderr_within("the node to start", FIRST_START, |err| {
        err.contains("ready in")
    });
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let open_port = listener.local_addr().unwrap().to_string();
    let mut attacker = Attacker::new(group);
    let text = |s: &str| Value::Text(s.into());
    attacker.attack("read-file", &[text("/etc/passwd")]);
    attacker.attack("read-env", &[text("PATH")]);
    attacker.attack("connect", &[text(&open_port)]);
    attacker.attack("write-file", &[text("/data/planted.txt"), text("x")]);
    attacker.attack("read-file", &[text("/data/secret.txt")]);
    node.wait_stdout("every attempt", |out| out.contains("/data/secret.txt"));
    let out = node.stdout();
    for refused in [
        "hostile: cannot read /etc/passwd: No such file or directory",
        "hostile: cannot read PATH: environment variable not found",
        // (The jail's refusal, as Python words it: `[Errno 2] Permission denied`.)
        &format!("hostile: cannot connect to {open_port}: [Errno 2] Permission denied"),
        "hostile: cannot write /data/planted.txt: ",
    ] {
        assert!(
            out.contains(refused),
            "no `{refused}` in:\n{out}\n--- stderr:\n{}",
            node.stderr()
        );
    }
    assert!(
        out.contains("hostile: read /data/secret.txt: 10 bytes"),
        "the granted directory is readable:\n{out}"
    );
    assert!(!secret.with_file_name("planted.txt").exists());
    listener.set_nonblocking(true).unwrap();
    assert!(listener.accept().is_err(), "the guest connected out");
}

#[test]
fn python_and_javascript_guests_use_every_interface_of_the_node() {
    let group = unique_group();
    for (guest_name, language, no_server) in [
        ("tour-py", "Python", "CallError_NoServer"),
        ("tour-js", "JavaScript", "no-server"),
    ] {
        let node_name = format!("{guest_name}-node");
        let tour = guest(guest_name);
        let mut node = Dhost::start(&node_args(
            &node_name,
            group,
            &[
                "--mailboxes",
                "1",
                "--mailbox-size",
                "1",
                tour.to_str().unwrap(),
            ],
        ));
        // host.log and timers, from init; host.node-name, from the timer.
        node.wait_stdout_within("the timer", FIRST_START, |out| {
            out.contains(&format!("tour: timer 7 on node {node_name}"))
        });
        assert!(
            node.stderr()
                .contains(&format!("tour: init, in {language}")),
            "{}",
            node.stderr()
        );
        // mailboxes, from stdin-events.
        node.type_line("hello, mailbox");
        node.wait_stdout("the mailbox", |out| {
            out.contains("tour: mailbox 0 holds hello, mailbox")
        });
        // calls: a target, and a failure as the variant `call-error`.
        node.type_line("target");
        node.wait_stdout("the call's error", |out| out.contains("tour: error "));
        let out = node.stdout();
        assert!(out.contains("tour: target nowhere"), "{out}");
        assert!(out.contains(&format!("tour: error {no_server}")), "{out}");
        // group and group-events: a peer joins, is listed, leaves.
        let mut peer = Dhost::start(&node_args(&format!("{guest_name}-peer"), group, &[]));
        node.wait_stdout("the peer joining", |out| {
            out.contains(&format!("tour: group joined {guest_name}-peer"))
        });
        node.type_line("group");
        node.wait_stdout("the group", |out| out.contains("tour: mailboxes served by"));
        let out = node.stdout();
        assert!(
            out.contains(&format!("tour: peers {guest_name}-peer")),
            "{out}"
        );
        assert!(
            out.contains(&format!("tour: mailboxes served by {node_name}")),
            "{out}"
        );
        assert!(peer.interrupt().success());
        node.wait_stdout("the peer leaving", |out| {
            out.contains(&format!("tour: group left {guest_name}-peer"))
        });
        assert!(node.interrupt().success());
        assert!(node.stderr().contains("0 guest traps"), "{}", node.stderr());
    }
}
