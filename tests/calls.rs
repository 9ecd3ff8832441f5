//! End-to-end tests of calls with replies: three nodes serving the key-value store
//! (`guests/kv`), called from the CLI (`dhost call`, `dhost cast`, `dhost cast --node`),
//! from a guest on another node (`kv-client`, and `kv`'s own `fetch`), with the failures a
//! caller must see: a remote trap, arguments that do not fit, a timeout, a node that died.

mod common;

use common::*;
use std::io::{Read, Write};
use std::net::{SocketAddrV4, TcpStream};
use std::process::ExitStatus;
use std::time::{Duration, Instant};

/// Starts node `name` with `guests` and waits until it takes calls.
fn start_node(name: &str, group: SocketAddrV4, guests: &[&str], extra: &[&str]) -> Dhost {
    let paths: Vec<String> = guests
        .iter()
        .map(|g| guest(g).to_string_lossy().into_owned())
        .collect();
    let mut args: Vec<&str> = extra.to_vec();
    args.extend(paths.iter().map(String::as_str));
    let node = Dhost::start(&node_args(name, group, &args));
    node.wait_stderr("the node to be ready", |err| {
        err.contains("calls on 127.0.0.1:")
    });
    node
}

/// `dhost call NODE FUNCTION ARGS...`, options first.
fn call(
    group: SocketAddrV4,
    options: &[&str],
    node: &str,
    function: &str,
    args: &[&str],
) -> (ExitStatus, String, String) {
    let mut all: Vec<&str> = options.to_vec();
    all.extend([node, function]);
    all.extend(args);
    client_output("call", group, &all)
}

/// The JSON a successful `dhost call` printed.
fn call_ok(group: SocketAddrV4, node: &str, function: &str, args: &[&str]) -> String {
    let (status, out, err) = call(group, &[], node, function, args);
    assert!(
        status.success(),
        "dhost call {node} {function} {args:?} failed: {err}"
    );
    out.trim_end().to_string()
}

/// The error a failing `dhost call` printed.
fn call_err(
    group: SocketAddrV4,
    options: &[&str],
    node: &str,
    function: &str,
    args: &[&str],
) -> String {
    let (status, out, err) = call(group, options, node, function, args);
    assert!(
        !status.success(),
        "dhost call {node} {function} {args:?} succeeded: {out}"
    );
    assert_eq!(out, "", "nothing on stdout when a call fails");
    err
}

#[test]
fn calls_with_replies_between_three_nodes() {
    let group = unique_group();
    let mut nodes = vec![
        start_node("ann", group, &["kv"], &[]),
        start_node("bob", group, &["kv"], &[]),
        start_node("cat", group, &["kv", "hostile"], &[]),
    ];

    // From the CLI: a call to one node runs there only.
    let started = Instant::now();
    assert_eq!(
        call_ok(group, "bob", "dhost:kv/store#put", &[r#""k""#, r#""v""#]),
        "null"
    );
    eprintln!("a first `dhost call` took {:?}", started.elapsed());
    assert_eq!(
        call_ok(group, "bob", "dhost:kv/store#get", &[r#""k""#]),
        r#""v""#
    );
    assert_eq!(
        call_ok(group, "ann", "dhost:kv/store#get", &[r#""k""#]),
        "null"
    );
    assert_eq!(
        call_ok(group, "bob", "dhost:kv/store#keys", &[]),
        r#"["k"]"#
    );

    // A cast reaches every node that serves the function; a cast to one node, that one.
    let (status, _, err) =
        client_output("cast", group, &["dhost:kv/store#put", r#""m""#, r#""all""#]);
    assert!(status.success(), "{err}");
    assert!(
        err.contains("cast dhost:kv/store#put to ann, bob, cat"),
        "{err}"
    );
    let (status, _, err) = client_output(
        "cast",
        group,
        &[
            "--node",
            "cat",
            "dhost:kv/store#put",
            r#""c""#,
            r#""cat only""#,
        ],
    );
    assert!(status.success(), "{err}");
    assert!(err.contains("cast dhost:kv/store#put to cat"), "{err}");
    for node in ["ann", "bob", "cat"] {
        wait_for(|| call_ok(group, node, "dhost:kv/store#get", &[r#""m""#]) == r#""all""#);
    }
    wait_for(|| call_ok(group, "cat", "dhost:kv/store#get", &[r#""c""#]) == r#""cat only""#);
    assert_eq!(
        call_ok(group, "ann", "dhost:kv/store#get", &[r#""c""#]),
        "null"
    );

    // From a guest to another node: ann's kv fetches bob's `k` with a call with a reply.
    assert_eq!(
        call_ok(
            group,
            "ann",
            "dhost:kv/admin#fetch",
            &[r#""bob""#, r#""k""#]
        ),
        r#"{"ok":"v"}"#
    );
    assert_eq!(
        call_ok(group, "ann", "dhost:kv/store#get", &[r#""k""#]),
        r#""v""#
    );

    // From a WASI command on a fourth, short-lived node.
    let (status, out, err) = kv_client(group, &["--node", "bob", "get", "k"]);
    assert!(status.success(), "{err}");
    assert_eq!(out, "v\n");
    let (status, out, err) = kv_client(group, &["--node", "cat", "count"]);
    assert!(status.success(), "{err}");
    assert_eq!(out, "2\n", "cat holds m and c");

    // `dhost peers` shows all three, and the connection ann holds to bob.
    let (status, out, err) = client_output("peers", group, &[]);
    assert!(status.success(), "{err}");
    assert_eq!(peer_names(&out), ["ann", "bob", "cat"], "{out}");
    let ann = out.lines().find(|l| l.starts_with("ann ")).unwrap();
    assert!(ann.contains(" bob:1 "), "{out}");

    // Failures: a remote trap, as an error value where the result type can carry one...
    let (status, out, err) = kv_client(group, &["--node", "bob", "crash", "on purpose"]);
    assert_eq!(status.code(), Some(1), "{err}");
    assert!(out.starts_with("error: trapped: guest kv trapped"), "{out}");
    let (status, out, _) = kv_client(group, &["--node", "nobody", "count"]);
    assert_eq!(status.code(), Some(1));
    assert_eq!(
        out,
        "error: no-server: no node named nobody is on the group\n"
    );
    // ... and as a trap of the calling guest where it cannot (`get` returns an option).
    let (status, out, err) = kv_client(group, &["--node", "nobody", "get", "k"]);
    assert!(!status.success());
    assert_eq!(out, "");
    assert!(
        err.contains("the call to dhost:kv/store#get failed: no-server: no node named nobody"),
        "{err}"
    );
    // From the CLI: a trap, arguments that do not fit, no such function, a timeout.
    let err = call_err(group, &[], "bob", "dhost:kv/admin#crash", &[r#""x""#]);
    assert!(err.contains("failed: trapped: guest kv trapped"), "{err}");
    // (bob's kv trapped twice and waits to restart: ask ann.)
    let err = call_err(group, &[], "ann", "dhost:kv/store#get", &["5"]);
    assert!(
        err.contains("bad-arguments: its arguments do not fit guest kv: key: expected string, found integer 5"),
        "{err}"
    );
    let err = call_err(group, &[], "ann", "dhost:kv/store#nope", &[]);
    assert!(
        err.contains("no-server: node ann serves no function dhost:kv/store#nope"),
        "{err}"
    );
    let err = call_err(group, &[], "zed", "dhost:kv/store#get", &[r#""k""#]);
    assert!(err.contains("no node named zed answered"), "{err}");
    assert!(err.contains("(nodes that did: ann, bob, cat)"), "{err}");
    // (cat spins until its jail's time limit, 1 s, and answers nothing meanwhile.)
    let started = Instant::now();
    let err = call_err(
        group,
        &["--timeout", "300ms"],
        "cat",
        "dhost:hostile/attacks#spin",
        &[],
    );
    assert!(err.contains("timeout: no reply from node cat"), "{err}");
    assert!(err.contains("within 300ms"), "{err}");
    assert!(started.elapsed() < Duration::from_secs(5));

    // A node dies: a call to it fails at once (its port is closed) rather than hanging, and
    // `dhost peers` shows two nodes once the others stop hearing from it.
    let killed = Instant::now();
    drop(nodes.remove(1)); // bob, SIGKILL: no goodbye
    let err = call_err(
        group,
        &[],
        "ann",
        "dhost:kv/admin#fetch",
        &[r#""bob""#, r#""k""#],
    );
    assert!(
        err.contains("peer-gone") || err.contains("timeout") || err.contains("no-server"),
        "{err}"
    );
    assert!(
        killed.elapsed() < Duration::from_secs(5),
        "failed within the timeout"
    );
    loop {
        let (_, out, _) = client_output("peers", group, &[]);
        if peer_names(&out) == ["ann", "cat"] {
            break;
        }
        assert!(
            killed.elapsed() < Duration::from_secs(10),
            "bob still listed: {out}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    eprintln!(
        "a killed node left `dhost peers` after {:?}",
        killed.elapsed()
    );
    for node in &mut nodes {
        assert!(node.interrupt().success());
    }
}

/// Polls `done` until it holds, for at most [`PATIENCE`].
fn wait_for(done: impl Fn() -> bool) {
    let start = Instant::now();
    while !done() {
        assert!(start.elapsed() < PATIENCE, "waited too long");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Whether the node closed `stream` (read returns end of file or a reset) within `within`.
fn closed_within(stream: &mut TcpStream, within: Duration) -> bool {
    stream.set_read_timeout(Some(within)).unwrap();
    let mut buf = [0u8; 256];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => continue, // the magic, an error line: read on
            Err(e)
                if e.kind() == std::io::ErrorKind::WouldBlock
                    || e.kind() == std::io::ErrorKind::TimedOut =>
            {
                return false;
            }
            Err(_) => return true, // reset
        }
    }
}

const MAGIC: [u8; 4] = [0xd9, 0xd9, 0xf7, 0x01];

#[test]
fn the_tcp_port_survives_hostile_peers() {
    let group = unique_group();
    let policy = scratch_file(
        "calls",
        "serve.toml",
        r#"[guest.kv]
serve = ["dhost:kv/store#keys", "dhost:kv/admin#crash", "dhost:kv/store#get from ann"]
"#,
    );
    let node = start_node(
        "target",
        group,
        &["kv"],
        &[
            "--max-connections",
            "4",
            "--idle-timeout",
            "1s",
            "--jail",
            policy.to_str().unwrap(),
        ],
    );
    let port = tcp_port(&node);
    let serving = || call_ok(group, "target", "dhost:kv/store#keys", &[]) == "[]";

    // A length prefix far beyond the largest frame: closed at once, logged.
    let mut s = TcpStream::connect(port).unwrap();
    s.write_all(&MAGIC).unwrap();
    s.write_all(&[0xff, 0xff, 0xff, 0xff]).unwrap();
    assert!(closed_within(&mut s, Duration::from_millis(900)));
    node.wait_stderr("the oversize frame", |err| {
        err.contains("frame size too big")
    });
    assert!(serving());

    // Not the magic, and not text either; a malformed frame; a truncated one.
    let mut s = TcpStream::connect(port).unwrap();
    s.write_all(&[0xd9, 0x00, 0x00, 0x00]).unwrap();
    assert!(closed_within(&mut s, Duration::from_millis(900)));
    node.wait_stderr("the bad magic", |err| err.contains("bad magic"));
    let mut s = TcpStream::connect(port).unwrap();
    s.write_all(&MAGIC).unwrap();
    s.write_all(&[0, 0, 0, 2, 0x9f, 0x01]).unwrap();
    assert!(closed_within(&mut s, Duration::from_millis(900)));
    node.wait_stderr("the malformed frame", |err| {
        err.contains("a malformed frame")
    });
    let mut s = TcpStream::connect(port).unwrap();
    s.write_all(&MAGIC).unwrap();
    s.write_all(&[0, 0, 0, 100, 0x84, 0x04]).unwrap();
    drop(s);
    assert!(serving());

    // A text command: the node says what it speaks and closes.
    let mut s = TcpStream::connect(port).unwrap();
    s.write_all(b"hello\r\n").unwrap();
    let mut line = String::new();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let _ = s.read_to_string(&mut line);
    assert!(line.starts_with("ERR "), "{line:?}");

    // A peer that sends a byte every 300 ms never finishes its frame: cut off after the
    // idle timeout (1 s here).
    let mut slow = TcpStream::connect(port).unwrap();
    slow.write_all(&MAGIC).unwrap();
    let started = Instant::now();
    let mut cut = false;
    for byte in [0u8, 0, 0, 50, 0x85, 0x04, 0x01, 0x61] {
        if slow.write_all(&[byte]).is_err() {
            cut = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(300));
    }
    assert!(
        cut || closed_within(&mut slow, Duration::from_secs(3)),
        "the slow peer is still connected"
    );
    assert!(started.elapsed() < Duration::from_secs(5));
    node.wait_stderr("the slow peer", |err| {
        err.contains("no complete frame for 1s")
    });

    // Connections over the cap are closed at once; idle ones after the idle timeout.
    let mut idle: Vec<TcpStream> = (0..4).map(|_| TcpStream::connect(port).unwrap()).collect();
    std::thread::sleep(Duration::from_millis(200));
    let mut over = TcpStream::connect(port).unwrap();
    assert!(closed_within(&mut over, Duration::from_millis(900)));
    node.wait_stderr("the cap", |err| {
        err.contains("4 connections are open already")
    });
    for s in &mut idle {
        assert!(
            closed_within(s, Duration::from_secs(3)),
            "an idle connection stayed open"
        );
    }
    node.wait_stderr("the idle connections", |err| {
        err.contains("it sent nothing for 1s")
    });
    assert!(serving(), "the node still serves:\n{}", node.stderr());
}
