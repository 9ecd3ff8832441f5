//! End-to-end tests of attacks on a node by its peers and clients, as an attack review
//! tried them (docs/security.md has the table of attacks, defences and tests): one
//! announcement in a node's name with a huge uptime, a flood of bloated announcements from
//! hundreds of senders, requests queued until memory runs out, an outsider holding the TCP
//! port's connections, and all of it at once while members chat and call. Each asserts
//! what a user sees: the node still serves its members, answers `dhost peers`, refuses
//! what it must with a reason, and stays under a stated bound of resident memory (read
//! from `/proc`).

mod common;

use ciborium::Value;
use common::*;
use dhost::guest::network::RemoteCaller as _;
use dhost::rpc::ConnectionKeys;
use dhost::wire;
use std::io::{Read, Write};
use std::net::{SocketAddr, SocketAddrV4, TcpStream, UdpSocket};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// The most resident memory (KiB) a debug node under these floods may reach: its own
/// baseline (wasmtime, a guest or two, ~40 MiB) and the bounded queues (64 MiB of queued
/// requests, the peer table), with room to spare; the attacks this guards against took
/// nodes to 1 to 2.6 GB.
const MEMORY_BOUND_KIB: u64 = 400 * 1024;

/// A node named `name` running `guests`, with `extra` options; waits until it takes calls.
fn node(name: &str, group: SocketAddrV4, extra: &[&str], guests: &[&str]) -> Dhost {
    let paths: Vec<PathBuf> = guests.iter().map(|g| guest(g)).collect();
    let mut args: Vec<&str> = extra.to_vec();
    args.extend(paths.iter().map(|p| p.to_str().unwrap()));
    let node = Dhost::start(&node_args(name, group, &args));
    node.wait_stderr("the node to be ready", |err| err.contains(") ready in"));
    node
}

/// An announcement by `sender` (a datagram without a key), naming `name`, claiming
/// `uptime_ms`, serving `functions`.
fn announcement(sender: u64, name: &str, uptime_ms: u64, functions: Vec<String>) -> Vec<u8> {
    let mut d = Vec::new();
    wire::encode_header(sender, None, &mut d);
    let announce = wire::Announce {
        presence: wire::Presence {
            name: name.to_string(),
            uptime_ms,
            functions,
            ..wire::Presence::default()
        },
        ..wire::Announce::default()
    };
    wire::encode_announce(&announce, &mut d);
    dhost::auth::Gate::new(None, false).seal(&d, false).to_vec()
}

/// An announcement whose function list is `count` empty ids, written by hand (the encoder
/// would not): the shape of the bloat that took a node to 1 GB.
fn bloated_announcement(sender: u64, name: &str, count: usize) -> Vec<u8> {
    let mut d = Vec::new();
    wire::encode_header(sender, None, &mut d);
    let functions = Value::Array(vec![Value::Text(String::new()); count]);
    let frame = Value::Array(vec![1.into(), name.into(), 1.into(), functions]);
    ciborium::into_writer(&frame, &mut d).unwrap();
    dhost::auth::Gate::new(None, false).seal(&d, false).to_vec()
}

/// How long `dhost peers` took to answer, and the names it listed.
fn timed_peers(group: SocketAddrV4, extra: &[&str]) -> (Duration, Vec<String>) {
    let started = Instant::now();
    let (status, out, err) = client_output("peers", group, extra);
    assert!(status.success(), "{err}");
    (started.elapsed(), peer_names(&out))
}

#[test]
fn one_announcement_in_a_nodes_name_neither_stops_nor_renames_it() {
    let group = unique_group();
    let mut victim = node("victim", group, &[], &["kv"]);
    // (Once it has claimed its name: it answers `dhost peers` only then.)
    while timed_peers(group, &[]).1.is_empty() {}
    let socket = group_sender(group);
    for (sender, uptime) in [(0xbad1, 1u64 << 63), (0xbad2, u64::MAX), (0xbad3, 0)] {
        socket
            .send(&announcement(sender, "victim", uptime, vec![]))
            .unwrap();
    }
    std::thread::sleep(Duration::from_millis(500));
    assert!(
        victim.child_is_running(),
        "the node stopped: {}",
        victim.stderr()
    );
    let (_, names) = timed_peers(group, &[]);
    assert_eq!(names, ["victim"]);
    let (status, out, err) = client_output("call", group, &["victim", "dhost:kv/store#keys"]);
    assert!(status.success(), "{err}");
    assert_eq!(out.trim(), "[]");
    let err = victim.stderr();
    assert!(
        err.contains("announces this node's name `victim`, which this node claimed before"),
        "{err}"
    );
    assert!(!err.contains("is taken"), "{err}");
    assert!(victim.interrupt().success());
}

#[test]
fn an_announcement_flood_leaves_the_node_small_and_answering() {
    let group = unique_group();
    let mut target = node("target", group, &[], &["kv"]);
    let flood = std::thread::spawn(move || {
        let socket = group_sender(group);
        // Bloated lists (refused whole), and the most functions an announcement may list
        // from as many senders as the table takes and more (kept, within the table's
        // bounds).
        let bloated: Vec<Vec<u8>> = (0..300)
            .map(|s| bloated_announcement(0x1000 + s, &format!("bloat{s}"), 60_000))
            .collect();
        let full: Vec<Vec<u8>> = (0..300)
            .map(|s| {
                let functions = (0..wire::MAX_FUNCTIONS_ANNOUNCED)
                    .map(|f| format!("x:y/z#f{f}"))
                    .collect();
                announcement(0x2000 + s, &format!("full{s}"), 1, functions)
            })
            .collect();
        let started = Instant::now();
        let mut sent = 0u64;
        while started.elapsed() < Duration::from_secs(8) {
            for d in bloated.iter().chain(&full) {
                let _ = socket.send(d);
                sent += 1;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        sent
    });
    std::thread::sleep(Duration::from_secs(2));
    let (took, names) = timed_peers(group, &[]);
    assert!(
        took < Duration::from_secs(10),
        "dhost peers took {took:?} during the flood"
    );
    assert!(names.contains(&"target".to_string()), "{names:?}");
    // A call gets through too (a client's survey may lose its answer among the flood, as
    // any datagram may: it tries again, as a person would).
    let started = Instant::now();
    loop {
        let (status, out, err) = client_output("call", group, &["target", "dhost:kv/store#keys"]);
        if status.success() {
            assert_eq!(out.trim(), "[]");
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(10), "{err}");
    }
    let sent = flood.join().unwrap();
    let peak = target.peak_rss_kib();
    eprintln!("{sent} announcements sent; the node's peak resident memory: {peak} KiB");
    assert!(peak < MEMORY_BOUND_KIB, "the node reached {peak} KiB");
    assert!(target.interrupt().success());
    let err = target.stderr();
    assert!(
        err.contains("more items than a node reads in one frame"),
        "the bloated lists: {err}"
    );
}

/// Writes `frames` (each a CBOR item) on a fresh unkeyed binary connection to `addr`, and
/// returns the connection (its replies unread).
fn raw_connection(addr: SocketAddr, frames: &[&[u8]]) -> TcpStream {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream.write_all(&dhost::rpc::frame::MAGIC).unwrap();
    let mut magic = [0u8; 4];
    stream.read_exact(&mut magic).unwrap();
    assert_eq!(magic, dhost::rpc::frame::MAGIC);
    for frame in frames {
        stream
            .write_all(&(frame.len() as u32).to_be_bytes())
            .unwrap();
        stream.write_all(frame).unwrap();
    }
    stream
}

/// A cast of `busy(ms)` with an extra argument of `bytes` bytes (the guest refuses the
/// extra argument once it gets to it).
fn heavy_request(id: u64, bytes: usize) -> Vec<u8> {
    let args = [Value::from(1u32), Value::Bytes(vec![0; bytes])];
    dhost::rpc::frame::encode_request(id, "dhost:hostile/attacks#busy", &args, false)
}

#[test]
fn requests_queued_from_the_tcp_port_are_bounded_in_bytes() {
    let group = unique_group();
    // The guest stays busy long enough for everything below to queue behind it.
    let mut target = node("target", group, &["--max-time", "30s"], &["hostile"]);
    let addr = tcp_port(&target);
    let pool = dhost::client::start_pool(ConnectionKeys::default()).unwrap();
    let busy = |ms: u32, reply: bool| {
        pool.call(
            addr,
            "target",
            "dhost:hostile/attacks#busy",
            vec![Value::from(ms)],
            reply,
            PATIENCE,
        )
    };
    busy(8_000, false).unwrap();
    // 120 requests of ~900 KB each: past the port's 64 MiB, the node is busy.
    let request = heavy_request(1, 900_000);
    let frames: Vec<&[u8]> = std::iter::repeat_n(&request[..], 30).collect();
    let connections: Vec<TcpStream> = (0..4).map(|_| raw_connection(addr, &frames)).collect();
    // One more of the same size, as a call: it does not fit, and is answered at once.
    std::thread::sleep(Duration::from_millis(500));
    let started = Instant::now();
    let heavy = vec![Value::from(1u32), Value::Bytes(vec![0; 900_000])];
    let refused = pool
        .call(
            addr,
            "target",
            "dhost:hostile/attacks#busy",
            heavy,
            true,
            PATIENCE,
        )
        .unwrap_err();
    assert!(started.elapsed() < Duration::from_secs(2), "{refused}");
    assert_eq!(
        refused.kind,
        dhost::outcome::FailureKind::Unavailable,
        "{refused}"
    );
    assert!(
        refused
            .message
            .contains("the node is busy: 64 MiB of requests wait"),
        "{refused}"
    );
    let peak = target.peak_rss_kib();
    eprintln!("the node's peak resident memory with its queue full: {peak} KiB");
    assert!(peak < MEMORY_BOUND_KIB, "the node reached {peak} KiB");
    // Once the guest is free, what was queued runs (and fails: an extra argument), and
    // the node takes calls again.
    let started = Instant::now();
    loop {
        match busy(1, true) {
            Ok(_) => break,
            Err(e) => assert!(started.elapsed() < PATIENCE, "the node stayed busy: {e}"),
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    drop(connections);
    assert!(target.interrupt().success());
    let err = target.stderr();
    assert!(err.contains("the node is busy"), "{err}");
}

/// A keyed node `name` in `ns` running kv and hostile, whose TCP port listens on `listen`,
/// with `extra` options.
fn keyed_node(
    ns: &Netns,
    name: &str,
    group: SocketAddrV4,
    key: &Path,
    listen: &str,
    extra: &[&str],
) -> Dhost {
    let mut args: Vec<String> = ["-v", "run", "--name", name, "--listen", listen]
        .map(String::from)
        .to_vec();
    args.extend(group_flags(group));
    args.extend(["--key-file".to_string(), key.to_str().unwrap().to_string()]);
    args.extend(extra.iter().map(|s| s.to_string()));
    args.push(guest("kv").to_str().unwrap().to_string());
    args.push(guest("hostile").to_str().unwrap().to_string());
    let node = ns.start(&args);
    node.wait_stderr("the node to be ready", |err| err.contains(") ready in"));
    node
}

/// `dhost call NODE FUNCTION` with `key`, from inside `ns`: success, and what it printed.
fn call_in(
    ns: &Netns,
    group: SocketAddrV4,
    key: &Path,
    node: &str,
    function: &str,
) -> (bool, String) {
    let mut call = ns.dhost_command();
    call.arg("call").args(group_flags(group)).args([
        "--key-file",
        key.to_str().unwrap(),
        node,
        function,
    ]);
    let out = call.output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

/// Calls `dhost:kv/store#keys` on node `k` (as [`call_in`]) until it answers, trying again
/// after `pause`, and returns how long that took; fails the test with the last output once
/// `within` has passed.
fn call_in_until_answered(
    ns: &Netns,
    group: SocketAddrV4,
    key: &Path,
    within: Duration,
    pause: Duration,
) -> Duration {
    let started = Instant::now();
    loop {
        let (ok, out) = call_in(ns, group, key, "k", "dhost:kv/store#keys");
        if ok {
            return started.elapsed();
        }
        assert!(
            started.elapsed() < within,
            "still no answer after {:?}: {out}",
            started.elapsed()
        );
        std::thread::sleep(pause);
    }
}

/// `count` connections to `to` from the address `from`, each saying nothing; those the
/// port turned away at once are left out (their line read).
fn idle_connections(
    ns: &Netns,
    from: &str,
    to: SocketAddr,
    count: usize,
) -> (Vec<TcpStream>, Vec<String>) {
    let from: SocketAddr = format!("{from}:0").parse().unwrap();
    ns.run(move || {
        let (mut held, mut refused) = (Vec::new(), Vec::new());
        for _ in 0..count {
            let socket =
                socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
            socket.bind(&from.into()).unwrap();
            socket.connect(&to.into()).unwrap();
            let mut stream: TcpStream = socket.into();
            stream
                .set_read_timeout(Some(Duration::from_millis(200)))
                .unwrap();
            let mut line = [0u8; 128];
            match stream.read(&mut line) {
                Ok(n) if n > 0 => refused.push(String::from_utf8_lossy(&line[..n]).into_owned()),
                _ => held.push(stream),
            }
        }
        (held, refused)
    })
}

#[test]
fn an_outsider_holding_connections_does_not_keep_members_out() {
    let key = keygen("attacks-connections", "group.key");
    let ns = Netns::new("conns");
    ns.add_address("10.9.9.9/32");
    ns.add_address("10.9.9.10/32");
    ns.add_address("10.9.9.11/32");
    let group = unique_group();
    let node = keyed_node(
        &ns,
        "k",
        group,
        &key,
        "10.9.9.9:0",
        &["--max-connections", "40"],
    );
    let port = tcp_port(&node);
    // An outsider on one address opens 60 connections and says nothing: 32 are held, the
    // rest turned away with the reason.
    let (held, refused) = idle_connections(&ns, "10.9.9.10", port, 60);
    assert_eq!(held.len(), 32, "{refused:?}");
    assert!(
        refused[0].starts_with("ERR too many connections from 10.9.9.10: 32 are open already"),
        "{refused:?}"
    );
    // A member still gets through.
    let (ok, out) = call_in(&ns, group, &key, "k", "dhost:kv/store#keys");
    assert!(ok, "{out}\n{}", node.stderr());
    // A second address takes the last 8 slots: the member is turned away, and told why.
    let (held_too, _) = idle_connections(&ns, "10.9.9.11", port, 8);
    assert_eq!(held_too.len(), 8);
    let (ok, out) = call_in(&ns, group, &key, "k", "dhost:kv/store#keys");
    assert!(!ok);
    assert!(
        out.contains(
            "the node turned the connection away: too many connections: 40 are open already"
        ),
        "{out}"
    );
    assert!(!out.contains("no magic"), "{out}");
    // Connections that never open are cut within the port's opening time (10 s), and the
    // member gets through again.
    let waited = call_in_until_answered(
        &ns,
        group,
        &key,
        Duration::from_secs(20),
        Duration::from_millis(500),
    );
    eprintln!("the member got through again after {waited:?}");
    drop((held, held_too));
    let err = node.stderr();
    assert!(err.contains("it sent nothing for 10s"), "{err}");
}

#[test]
fn a_combined_flood_leaves_members_chatting_and_calling() {
    let key = keygen("attacks-flood", "group.key");
    let key_arg = key.to_str().unwrap().to_string();
    let ns = Netns::new("flood");
    ns.add_address("10.9.9.9/32");
    ns.add_address("10.9.9.10/32");
    let group = unique_group();
    let node = keyed_node(&ns, "k", group, &key, "10.9.9.9:0", &["--max-time", "30s"]);
    let port = tcp_port(&node);
    // Two members chatting.
    let chat = |name: &str, user: &str| {
        let mut args: Vec<String> = ["-v", "run", "--name", name].map(String::from).to_vec();
        args.extend(group_flags(group));
        args.extend(["--key-file".to_string(), key_arg.clone()]);
        args.push(guest("chat").to_str().unwrap().to_string());
        let mut n = ns.start(&args);
        n.wait_stdout("the prompt", |out| out.contains("Username: "));
        n.type_line(user);
        n
    };
    let mut ann = chat("ann", "ann");
    let bob = chat("bob", "bob");

    // The flood, for 8 s: forged and bloated datagrams without the key, idle connections
    // from an outsider's address, and big casts queued by a member who holds the key.
    let flood_until = Instant::now() + Duration::from_secs(8);
    let datagrams = ns.run_in_background(move || {
        let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
        let junk: Vec<Vec<u8>> = (0..100)
            .map(|s| bloated_announcement(0x3000 + s, &format!("b{s}"), 60_000))
            .chain((0..100).map(|s| announcement(0x4000 + s, "k", u64::MAX, vec![])))
            .collect();
        let mut sent = 0;
        while Instant::now() < flood_until {
            for d in &junk {
                let _ = socket.send_to(d, group);
                sent += 1;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        sent
    });
    let member_key = dhost::auth::Keyring::load(&key).unwrap();
    let casts = ns.run_in_background(move || {
        let pool = dhost::client::start_pool(ConnectionKeys {
            keys: Some(member_key),
            encrypt: false,
        })
        .unwrap();
        let busy = "dhost:hostile/attacks#busy";
        // The hostile guest busy for the whole flood, and heavy casts queued behind it.
        let _ = pool.call(
            port,
            "k",
            busy,
            vec![Value::from(9_000u32)],
            false,
            PATIENCE,
        );
        let heavy = vec![Value::from(1u32), Value::Bytes(vec![0; 900_000])];
        let mut sent = 0;
        while Instant::now() < flood_until {
            let _ = pool.call(port, "k", busy, heavy.clone(), false, PATIENCE);
            sent += 1;
        }
        sent
    });

    let (held, _) = idle_connections(&ns, "10.9.9.10", port, 100);

    // Meanwhile the members chat, and call.
    ann.type_line("through the flood");
    bob.wait_stdout("ann's line", |out| out.contains("[ann]: through the flood"));
    // (A client's survey may lose its answer in the flood, as any datagram may: it tries
    // again, as a person would.)
    call_in_until_answered(&ns, group, &key, Duration::from_secs(10), Duration::ZERO);
    let datagrams = datagrams.join().unwrap();
    let casts = casts.join().unwrap();
    drop(held);
    let peak = node.peak_rss_kib();
    eprintln!(
        "{datagrams} forged datagrams, 100 idle connections, {casts} casts of 900 KB; the \
         node's peak resident memory: {peak} KiB"
    );
    assert!(peak < MEMORY_BOUND_KIB, "the node reached {peak} KiB");
    // After the flood too, the node answers (its survey retried as above: the casts still
    // queued behind the busy guest may hold up its answer to one survey).
    call_in_until_answered(&ns, group, &key, Duration::from_secs(10), Duration::ZERO);
}
