//! End-to-end tests of the default jail and its limits: hostile guests (guests/hostile,
//! and WAT commands written here) attack the node, which must stop them, say which limit
//! they broke, restart or unload them, and keep serving the other guests.

mod common;

use ciborium::Value;
use common::*;
use std::net::SocketAddrV4;
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// A node with the hostile guest and the chat, its chat user logged in as `watcher`.
fn hostile_node(group: SocketAddrV4, extra: &[&str]) -> Dhost {
    let (hostile, chat) = (guest("hostile"), guest("chat"));
    let mut args: Vec<&str> = extra.to_vec();
    args.push(hostile.to_str().unwrap());
    args.push(chat.to_str().unwrap());
    let mut node = Dhost::start(&node_args("jailer", group, &args));
    node.wait_stdout("the prompt", |out| out.contains("Username: "));
    node.type_line("watcher");
    node
}

/// The chat still delivers: `line` typed now is printed back.
fn chat_still_works(node: &mut Dhost, line: &str) {
    node.type_line(line);
    node.wait_stdout("the chat to deliver", |out| {
        out.contains(&format!("[watcher]: {line}"))
    });
}

#[test]
fn a_runaway_call_is_stopped_at_its_time_limit_and_the_node_keeps_serving() {
    let group = unique_group();
    let mut node = hostile_node(group, &["--max-time", "200ms"]);
    let mut attacker = Attacker::new(group);
    let sent = Instant::now();
    attacker.attack("spin", &[]);
    node.type_line("typed while the guest spins");
    node.wait_stderr("the time limit", |err| {
        err.contains("guest hostile restarted")
    });
    let stopped_after = sent.elapsed();
    let err = node.stderr();
    assert!(
        err.contains(
            "guest hostile trapped in dhost:hostile/attacks#spin: time limit exceeded: the jail \
             allows 200ms per call"
        ),
        "{err}"
    );
    eprintln!(
        "a spinning guest was stopped and restarted {stopped_after:?} after the call was sent"
    );
    assert!(stopped_after < Duration::from_secs(10), "{stopped_after:?}");
    node.wait_stdout("the line typed during the attack", |out| {
        out.contains("[watcher]: typed while the guest spins")
    });
    chat_still_works(&mut node, "after the spin");
    assert!(node.interrupt().success());
}

#[test]
fn memory_bombs_and_endless_recursion_are_stopped_and_the_guest_restarted() {
    let group = unique_group();
    let mut node = hostile_node(group, &["--max-memory", "32MiB"]);
    let mut attacker = Attacker::new(group);
    attacker.attack("hog", &[Value::Integer(1024.into())]);
    node.wait_stderr("the memory limit", |err| {
        err.contains("memory limit exceeded")
    });
    chat_still_works(&mut node, "after the memory bomb");
    attacker.attack("recurse", &[]);
    node.wait_stderr("the stack limit", |err| {
        err.contains("call stack exhausted")
    });
    chat_still_works(&mut node, "after the recursion");
    let err = node.stderr();
    assert!(
        err.contains("guest hostile trapped in dhost:hostile/attacks#hog: memory limit exceeded"),
        "{err}"
    );
    assert!(err.contains("the jail allows 32.0 MiB"), "{err}");
    assert!(
        err.contains("guest hostile trapped in dhost:hostile/attacks#recurse: wasm trap: call stack exhausted"),
        "{err}"
    );
    // Restarted each time (the second time after a pause): its calls run again.
    node.wait_stderr("the second restart", |err| {
        err.matches("guest hostile restarted").count() == 2
    });
    attacker.attack("read-env", &[Value::Text("HOME".into())]);
    node.wait_stdout("the guest to run again", |out| {
        out.contains("hostile: cannot read HOME")
    });
    assert!(node.interrupt().success());
}

#[test]
fn the_default_jail_grants_no_files_and_no_environment() {
    let group = unique_group();
    let mut node = hostile_node(group, &[]);
    let mut attacker = Attacker::new(group);
    attacker.attack("read-file", &[Value::Text("/etc/passwd".into())]);
    attacker.attack("read-env", &[Value::Text("PATH".into())]);
    node.wait_stdout("both attempts", |out| {
        out.contains("hostile: cannot read PATH")
    });
    let out = node.stdout();
    assert!(
        out.contains("hostile: cannot read /etc/passwd: No such file or directory"),
        "{out}"
    );
    assert!(
        out.contains("hostile: cannot read PATH: environment variable not found"),
        "{out}"
    );
    assert!(!out.contains("bytes"), "nothing was read: {out}");
    assert!(node.interrupt().success());
}

#[test]
fn a_guest_that_keeps_failing_is_unloaded_and_the_node_goes_on() {
    let group = unique_group();
    let mut node = hostile_node(group, &["--max-time", "50ms"]);
    let mut attacker = Attacker::new(group);
    let start = Instant::now();
    while !node.stderr().contains("guest hostile unloaded") {
        assert!(
            start.elapsed() < PATIENCE,
            "never unloaded:\n{}",
            node.stderr()
        );
        attacker.attack("spin", &[]);
        std::thread::sleep(Duration::from_millis(100));
    }
    let err = node.stderr();
    assert!(
        err.contains("guest hostile unloaded: it failed 6 times within 1m"),
        "{err}"
    );
    assert!(
        err.contains("guest hostile restarts in 100ms"),
        "with a pause: {err}"
    );
    chat_still_works(&mut node, "after the unload");
    assert!(node.interrupt().success());
}

/// A WASI command whose `run` never returns.
const SPINNING_COMMAND: &str = r#"
(component
  (core module $m
    (func (export "run") (result i32) (loop $forever (br $forever)) (i32.const 0)))
  (core instance $i (instantiate $m))
  (func $run (result (result)) (canon lift (core func $i "run")))
  (instance $cli (export "run" (func $run)))
  (export "wasi:cli/run@0.2.0" (instance $cli)))
"#;

fn spinning_command() -> PathBuf {
    scratch_file("jail", "spin.wat", SPINNING_COMMAND)
}

#[test]
fn a_wasi_command_that_never_ends_is_stopped_at_its_time_limit() {
    let spin = spinning_command();
    let start = Instant::now();
    let (status, _, err) = dhost_output(&["run", "--max-time", "300ms", spin.to_str().unwrap()]);
    let took = start.elapsed();
    assert!(!status.success());
    assert!(
        err.contains("guest spin failed: time limit exceeded: the jail allows 300ms per call"),
        "{err}"
    );
    eprintln!("a spinning WASI command with --max-time 300ms ended after {took:?}");
    assert!(took < Duration::from_secs(10), "{took:?}");
}

#[test]
fn ctrl_c_stops_a_node_whose_guest_runs_without_a_time_limit() {
    let spin = spinning_command();
    let mut node = Dhost::start(&["-v", "run", spin.to_str().unwrap()]);
    node.wait_stderr("the command to start", |err| err.contains("ready in"));
    std::thread::sleep(Duration::from_millis(200));
    let start = Instant::now();
    let status = node.interrupt();
    assert!(!status.success(), "the command did not succeed");
    assert!(
        node.stderr()
            .contains("guest spin failed: interrupted: the node is stopping"),
        "{}",
        node.stderr()
    );
    assert!(start.elapsed() < Duration::from_secs(10));
}

/// A scratch directory tree for the file tests: `data/` (granted read-only) with a file and
/// a symlink that points out of it, `outside/` (not granted), `rw/` (granted read-write).
fn file_tree(tag: &str) -> PathBuf {
    let dir = scratch_dir(&format!("files-{tag}"));
    let _ = std::fs::remove_dir_all(&dir);
    for sub in ["data", "outside", "rw"] {
        std::fs::create_dir_all(dir.join(sub)).unwrap();
    }
    std::fs::write(dir.join("data/hello.txt"), "granted!").unwrap();
    std::fs::write(dir.join("outside/secret.txt"), "secret").unwrap();
    std::os::unix::fs::symlink(dir.join("outside/secret.txt"), dir.join("data/link")).unwrap();
    std::os::unix::fs::symlink("../outside/secret.txt", dir.join("data/rel-link")).unwrap();
    dir
}

#[test]
fn a_policy_grants_exactly_the_files_environment_and_network_it_names() {
    let tree = file_tree("policy");
    let allowed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let other = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let (allowed_port, other_port) = (
        allowed.local_addr().unwrap().port(),
        other.local_addr().unwrap().port(),
    );
    let policy = format!(
        r#"
        [default]
        max-time = "2s"

        [guest.hostile]
        files = ["{data}:/data:ro", "{rw}:/rw:rw"]
        env = ["DHOST_TEST_GRANTED"]
        network = ["127.0.0.1:{allowed_port}"]
        "#,
        data = tree.join("data").display(),
        rw = tree.join("rw").display(),
    );
    let policy_file = tree.join("jail.toml");
    std::fs::write(&policy_file, policy).unwrap();

    let group = unique_group();
    let (hostile, chat) = (guest("hostile"), guest("chat"));
    let mut cmd = dhost_command();
    cmd.args(node_args(
        "policed",
        group,
        &[
            "--jail",
            policy_file.to_str().unwrap(),
            hostile.to_str().unwrap(),
            chat.to_str().unwrap(),
        ],
    ))
    .env("DHOST_TEST_GRANTED", "yes")
    .env("DHOST_TEST_SECRET", "no");
    let mut node = Dhost::spawn(cmd);
    node.wait_stdout("the prompt", |out| out.contains("Username: "));
    let mut attacker = Attacker::new(group);
    let text = |s: &str| Value::Text(s.into());
    let steps: Vec<(&str, Vec<Value>, String)> = vec![
        (
            "read-file",
            vec![text("/data/hello.txt")],
            "hostile: read /data/hello.txt: 8 bytes".into(),
        ),
        (
            "read-file",
            vec![text("/data/../outside/secret.txt")],
            "hostile: cannot read /data/../outside/secret.txt".into(),
        ),
        (
            "read-file",
            vec![text("/data/link")],
            "hostile: cannot read /data/link".into(),
        ),
        (
            "read-file",
            vec![text("/data/rel-link")],
            "hostile: cannot read /data/rel-link".into(),
        ),
        (
            "read-file",
            vec![text("/etc/passwd")],
            "hostile: cannot read /etc/passwd".into(),
        ),
        (
            "write-file",
            vec![text("/data/new.txt"), text("x")],
            "hostile: cannot write /data/new.txt".into(),
        ),
        (
            "write-file",
            vec![text("/rw/new.txt"), text("written")],
            "hostile: wrote /rw/new.txt".into(),
        ),
        (
            "read-env",
            vec![text("DHOST_TEST_GRANTED")],
            "hostile: DHOST_TEST_GRANTED=yes".into(),
        ),
        (
            "read-env",
            vec![text("DHOST_TEST_SECRET")],
            "hostile: cannot read DHOST_TEST_SECRET".into(),
        ),
        (
            "connect",
            vec![text(&format!("127.0.0.1:{allowed_port}"))],
            format!("hostile: connected to 127.0.0.1:{allowed_port}"),
        ),
        (
            "connect",
            vec![text(&format!("127.0.0.1:{other_port}"))],
            format!("hostile: cannot connect to 127.0.0.1:{other_port}"),
        ),
    ];
    for (function, args, want) in &steps {
        attacker.attack(function, args);
        node.wait_stdout(want, |out| out.contains(want.as_str()));
    }
    assert_eq!(
        std::fs::read_to_string(tree.join("rw/new.txt")).unwrap(),
        "written"
    );
    assert!(!tree.join("data/new.txt").exists());
    let out = node.stdout();
    assert!(
        !out.contains("bytes") || out.matches("bytes").count() == 1,
        "only the granted file was read:\n{out}"
    );
    node.wait_stderr("the refused connection in the log", |err| {
        err.contains(&format!(
            "guest hostile: refused network access (TcpConnect 127.0.0.1:{other_port}): not in its jail's allow-list"
        ))
    });
    // The chat shares the node but not the grants: it saw none of this, and still works.
    node.type_line("watcher");
    chat_still_works(&mut node, "all attacks done");
    assert!(node.interrupt().success());
}

#[test]
fn the_default_jail_grants_no_network() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let group = unique_group();
    let mut node = hostile_node(group, &[]);
    let mut attacker = Attacker::new(group);
    attacker.attack("connect", &[Value::Text(addr.clone())]);
    node.wait_stdout("the refusal", |out| {
        out.contains(&format!("hostile: cannot connect to {addr}"))
    });
    node.wait_stderr("the log line", |err| err.contains("refused network access"));
    assert!(node.interrupt().success());
}

#[test]
fn calls_a_jail_does_not_list_are_refused_both_ways() {
    let policy_file = scratch_file(
        "lists",
        "jail.toml",
        r#"
        [guest.chat]
        send = []

        [guest.hostile]
        serve = ["dhost:hostile/attacks#read-env"]
        "#,
    );
    let group = unique_group();
    let mut node = hostile_node(group, &["--jail", policy_file.to_str().unwrap()]);
    node.type_line("not allowed to speak");
    node.wait_stderr("the refused send", |err| {
        err.contains("guest chat restarted")
    });
    let err = node.stderr();
    assert!(
        err.contains(
            "guest chat: refused to send dhost:chat/chat#message: not in its jail's `send` list"
        ),
        "{err}"
    );
    assert!(
        err.contains("guest chat trapped in dstc:node/stdin-events#on-line: cannot send dhost:chat/chat#message: the jail of guest chat does not allow it"),
        "{err}"
    );
    assert!(!node.stdout().contains("not allowed to speak"));

    let mut attacker = Attacker::new(group);
    attacker.attack("spin", &[]);
    attacker.attack("read-env", &[Value::Text("HOME".into())]);
    node.wait_stdout("the allowed call", |out| {
        out.contains("hostile: cannot read HOME")
    });
    node.wait_stderr("the refused call", |err| err.contains("its `serve` list"));
    let err = node.stderr();
    assert!(
        err.contains("to `dhost:hostile/attacks#spin`: the jail of guest hostile does not let a node that has not announced itself call it (its `serve` list)"),
        "{err}"
    );
    assert!(!err.contains("time limit"), "spin never ran: {err}");
    assert!(node.interrupt().success());
}

#[test]
fn a_fuel_limit_stops_a_spinning_call() {
    let group = unique_group();
    let mut node = hostile_node(group, &["--fuel", "1000000"]);
    Attacker::new(group).attack("spin", &[]);
    node.wait_stderr("the fuel limit", |err| {
        err.contains("guest hostile restarted")
    });
    let err = node.stderr();
    assert!(
        err.contains(
            "guest hostile trapped in dhost:hostile/attacks#spin: wasm trap: all fuel consumed"
        ),
        "{err}"
    );
    chat_still_works(&mut node, "after the fuel ran out");
    assert!(node.interrupt().success());
}

#[test]
fn print_jail_shows_the_effective_policy_and_bad_policies_are_refused() {
    let policy_file = scratch_file(
        "print",
        "jail.toml",
        "[default]\nenv = [\"LANG\"]\n[guest.chat]\nmax-memory = \"16MiB\"\nnetwork = [\"*:443\"]\n",
    );
    let (chat, hello) = (guest("chat"), guest("hello"));
    let (status, out, err) = dhost_output(&[
        "run",
        "--print-jail",
        "--jail",
        policy_file.to_str().unwrap(),
        "--allow-dir",
        "/tmp:/scratch:rw",
        chat.to_str().unwrap(),
        hello.to_str().unwrap(),
    ]);
    assert!(status.success(), "{err}");
    for want in [
        "guest chat (",
        "  files:       /tmp as /scratch (rw)",
        "  env:         LANG",
        "  network:     *:443",
        "  limits:      memory 16.0 MiB, 1s per call",
        "guest hello (",
        "  limits:      memory 64.0 MiB, no time limit",
        "  send:        every function it imports",
    ] {
        assert!(out.contains(want), "`{want}` not in:\n{out}");
    }
    assert_eq!(
        out.matches("  network:     none").count(),
        1,
        "hello has no network:\n{out}"
    );

    std::fs::write(&policy_file, "[guest.chat]\nmax-time = \"soon\"\n").unwrap();
    let (status, _, err) = dhost_output(&[
        "run",
        "--jail",
        policy_file.to_str().unwrap(),
        chat.to_str().unwrap(),
    ]);
    assert!(!status.success());
    assert!(err.contains("bad jail policy"), "{err}");
    assert!(
        err.contains("jail.toml: [guest.chat] max-time: `soon` is not a duration"),
        "{err}"
    );
}

#[test]
fn stdout_and_the_wall_clock_can_be_withheld() {
    let policy_file = scratch_file(
        "clock",
        "jail.toml",
        "[guest.hostile]\nwall-clock = false\nstdout = false\n",
    );
    let group = unique_group();
    let mut node = hostile_node(group, &["--jail", policy_file.to_str().unwrap()]);
    Attacker::new(group).attack("read-clock", &[]);
    node.wait_stderr("the clock on stderr", |err| err.contains("(stderr)"));
    assert!(
        node.stderr().contains("hostile: clock 0 (stderr)"),
        "{}",
        node.stderr()
    );
    assert!(
        !node.stdout().contains("hostile: clock"),
        "stdout withheld: {}",
        node.stdout()
    );
    assert!(node.interrupt().success());

    // By default both are there.
    let group = unique_group();
    let mut node = hostile_node(group, &[]);
    Attacker::new(group).attack("read-clock", &[]);
    node.wait_stdout("the clock on stdout", |out| out.contains("hostile: clock "));
    let out = node.stdout();
    let secs: u64 = out
        .split("hostile: clock ")
        .nth(1)
        .and_then(|rest| rest.lines().next())
        .and_then(|n| n.trim().parse().ok())
        .unwrap();
    assert!(secs > 1_700_000_000, "the real time: {secs}");
    assert!(node.interrupt().success());
}

#[test]
fn a_jail_can_serve_a_function_to_named_nodes_only() {
    let policy_file = scratch_file(
        "peers",
        "jail.toml",
        "[guest.chat]\nserve = [\"dhost:chat/chat#message from trusted guarded\"]\n",
    );
    let group = unique_group();
    let chat = guest("chat");
    let chat = chat.to_str().unwrap();
    let mut guarded = Dhost::start(&node_args(
        "guarded",
        group,
        &["--jail", policy_file.to_str().unwrap(), chat],
    ));
    let mut others: Vec<Dhost> = ["trusted", "stranger"]
        .iter()
        .map(|n| Dhost::start(&node_args(n, group, &[chat])))
        .collect();
    for node in std::iter::once(&mut guarded).chain(others.iter_mut()) {
        node.wait_stdout("the prompt", |out| out.contains("Username: "));
    }
    // Every node knows every other by name before anyone speaks.
    for node in std::iter::once(&guarded).chain(others.iter()) {
        node.wait_stderr("the peers", |err| err.matches(") joined").count() >= 2);
    }
    guarded.type_line("g");
    others[0].type_line("t");
    others[1].type_line("s");
    others[0].type_line("from the trusted node");
    others[1].type_line("from a stranger");
    guarded.type_line("from the guarded node itself");
    others[1].wait_stdout("all three lines at the stranger", |out| {
        out.contains("[g]: from the guarded node itself") && out.contains("[t]: from the trusted")
    });
    guarded.wait_stdout("the allowed lines", |out| {
        out.contains("[t]: from the trusted node")
            && out.contains("[g]: from the guarded node itself")
    });
    guarded.wait_stderr("the refusal", |err| err.contains("does not let stranger"));
    assert!(
        !guarded.stdout().contains("from a stranger"),
        "{}",
        guarded.stdout()
    );
    assert!(
        guarded.stderr().contains(
            "to `dhost:chat/chat#message`: the jail of guest chat does not let stranger call it (its `serve` list)"
        ),
        "{}",
        guarded.stderr()
    );
    for node in std::iter::once(&mut guarded).chain(others.iter_mut()) {
        assert!(node.interrupt().success());
    }
}

#[test]
fn name_lookups_are_checked_against_the_jail() {
    // Only names that resolve without the network (from /etc/hosts) are looked up here.
    let policy_file = scratch_file(
        "dns",
        "jail.toml",
        "[guest.hostile]\nname-lookup = [\"localhost\"]\n",
    );
    let group = unique_group();
    let mut node = hostile_node(group, &["--jail", policy_file.to_str().unwrap()]);
    let mut attacker = Attacker::new(group);
    attacker.attack("lookup", &[Value::Text("localhost".into())]);
    attacker.attack(
        "lookup",
        &[Value::Text("exfiltrate.example.invalid".into())],
    );
    node.wait_stdout("both lookups", |out| {
        out.contains("cannot look up exfiltrate")
    });
    let out = node.stdout();
    assert!(out.contains("hostile: localhost is 127.0.0.1"), "{out}");
    assert!(
        out.contains("hostile: cannot look up exfiltrate.example.invalid: Permission denied"),
        "{out}"
    );
    assert!(
        node.stderr().contains(
            "guest hostile: refused to look up `exfiltrate.example.invalid`: not in its jail's name-lookup list"
        ),
        "{}",
        node.stderr()
    );
    assert!(node.interrupt().success());

    // The default jail looks nothing up.
    let group = unique_group();
    let mut node = hostile_node(group, &[]);
    Attacker::new(group).attack("lookup", &[Value::Text("localhost".into())]);
    node.wait_stdout("the refusal", |out| {
        out.contains("hostile: cannot look up localhost")
    });
    assert!(node.interrupt().success());
}
