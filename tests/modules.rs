//! End-to-end tests of published modules: `dhost publish` to three nodes started with
//! `--accept-modules` and no guest, calls to what they now serve, a fourth node that joins
//! later and fetches the module from a peer, a new version replacing the old on every
//! node, `dhost modules`, `dhost inspect --node`, `dhost unpublish`; and the refusals: a
//! node without `--accept-modules`, a corrupted or interrupted transfer, bytes that are not
//! a component, a module over the size limit, imports the node cannot satisfy, a publisher
//! the node does not take.

mod common;

use common::*;
use dhost::guest::network::RemoteCaller as _;
use dhost::modules::client::send_module;
use dhost::modules::protocol::ModuleRequest;
use dhost::modules::{Digest, Publication};
use dhost::outcome::FailureKind;
use dhost::rpc::{ConnectionKeys, PoolHandle};
use std::net::{SocketAddr, SocketAddrV4};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// The stores of this test process, one per node.
fn store(tag: &str, node: &str) -> PathBuf {
    scratch_dir(&format!("modules-{tag}")).join(node)
}

/// The files a store holds (its modules, by digest).
fn stored(store: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(store.join("sha256"))
        .map(|dir| {
            dir.map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

/// `dhost publish GUEST OPTIONS...` on `group`.
fn publish(group: SocketAddrV4, guest: &Path, options: &[&str]) -> (bool, String, String) {
    let mut args: Vec<&str> = options.to_vec();
    args.push(guest.to_str().unwrap());
    let (status, out, err) = client_output("publish", group, &args);
    (status.success(), out, err)
}

/// `dhost call NODE FUNCTION ARGS...`: its stdout, if it succeeded.
fn call(group: SocketAddrV4, node: &str, function: &str, args: &[&str]) -> Option<String> {
    let mut all = vec![node, function];
    all.extend(args);
    let (status, out, _) = client_output("call", group, &all);
    status.success().then(|| out.trim_end().to_string())
}

/// Waits until `done` holds, at most [`PATIENCE`]; returns how long it took.
fn wait_for(what: &str, done: impl Fn() -> bool) -> Duration {
    let started = Instant::now();
    while !done() {
        assert!(started.elapsed() < PATIENCE, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
    started.elapsed()
}

/// `component` with a custom section appended: another module (another digest) that
/// behaves the same, as a new build of a guest would be.
fn new_version(component: &Path, tag: &str) -> PathBuf {
    let mut bytes = std::fs::read(component).unwrap();
    let name = b"dhost-test-version";
    let payload = tag.as_bytes();
    let body_len = 1 + name.len() + payload.len();
    bytes.push(0); // a custom section
    assert!(body_len < 128, "one LEB128 byte");
    bytes.push(body_len as u8);
    bytes.push(name.len() as u8);
    bytes.extend_from_slice(name);
    bytes.extend_from_slice(payload);
    let path = scratch_dir("modules-versions").join(format!("kv-{tag}.wasm"));
    std::fs::write(&path, bytes).unwrap();
    path
}

/// The `dhost modules` table: (name, digest, nodes) per line.
fn modules_table(group: SocketAddrV4) -> Vec<(String, String, Vec<String>)> {
    let (status, out, err) = client_output("modules", group, &[]);
    assert!(status.success(), "{err}");
    out.lines()
        .skip(1)
        .map(|line| {
            let words: Vec<&str> = line.split_whitespace().collect();
            // NAME DIGEST SIZE(2 words) PUBLISHER PUBLISHED EXPORTS... NODES...: the nodes
            // are the words after the last export (interface names contain ':').
            let last_export = words.iter().rposition(|w| w.contains(':')).unwrap();
            let nodes = words[last_export + 1..].iter().map(|s| s.to_string());
            (words[0].to_string(), words[1].to_string(), nodes.collect())
        })
        .collect()
}

#[test]
fn a_module_published_to_three_nodes_reaches_a_late_joiner_and_is_replaced_everywhere() {
    let group = unique_group();
    let kv = guest("kv");
    let nodes: Vec<Dhost> = ["ann", "bob", "cat"]
        .iter()
        .map(|n| module_node(n, group, &store("three", n), &[]))
        .collect();

    // Published from the CLI: every node loads it, and serves it.
    let started = Instant::now();
    let (ok, out, err) = publish(group, &kv, &[]);
    let took = started.elapsed();
    assert!(ok, "{out}{err}");
    eprintln!("publish to three nodes took {took:?}:\n{out}");
    for node in ["ann", "bob", "cat"] {
        assert!(out.contains(&format!("{node}: loaded")), "{out}");
    }
    let digest = Digest::of(&std::fs::read(&kv).unwrap()).to_string();
    for (node, n) in ["ann", "bob", "cat"].iter().zip(&nodes) {
        assert_eq!(
            stored(&store("three", node)),
            [format!("{digest}.wasm")],
            "{node}'s store"
        );
        assert!(
            n.stderr().contains("published to this node"),
            "{}",
            n.stderr()
        );
        assert_eq!(
            call(
                group,
                node,
                "dhost:kv/store#put",
                &[r#""k""#, &format!(r#""{node}""#)]
            ),
            Some("null".into())
        );
        assert_eq!(
            call(group, node, "dhost:kv/store#get", &[r#""k""#]),
            Some(format!(r#""{node}""#))
        );
    }

    // A node that starts later fetches it from a peer, verified, without a new publish.
    let started = Instant::now();
    let dan = module_node("dan", group, &store("three", "dan"), &[]);
    let caught_up = wait_for("dan to serve kv", || {
        call(group, "dan", "dhost:kv/store#keys", &[]).is_some()
    });
    eprintln!(
        "the late joiner served kv {caught_up:?} after it was ready ({:?} after its start)",
        started.elapsed()
    );
    assert!(
        dan.stderr().contains("fetched from node"),
        "{}",
        dan.stderr()
    );
    assert_eq!(stored(&store("three", "dan")), [format!("{digest}.wasm")]);

    // Restarted, it runs it again.
    let mut dan = dan;
    assert!(dan.interrupt().success());
    let mut dan = module_node("dan", group, &store("three", "dan"), &[]);

    // `dhost modules` lists it once, run by all four.
    // (dan, restarted, runs it again a moment after it is ready.)
    wait_for("all four nodes in `dhost modules`", || {
        let table = modules_table(group);
        table.len() == 1 && table[0].2.len() == 4
    });
    let table = modules_table(group);
    assert_eq!(table[0].0, "kv");
    assert_eq!(table[0].1, &digest[..12]);
    assert_eq!(table[0].2, ["ann", "bob", "cat", "dan"]);

    // Its WIT, from a node.
    let (status, wit, err) = client_output("inspect", group, &["--node", "bob", "kv"]);
    assert!(status.success(), "{err}");
    assert!(wit.contains("export dhost:kv/store"), "{wit}");
    assert!(
        wit.contains("get: func(key: string) -> option<string>;"),
        "{wit}"
    );

    // The same WIT, as clients ask for it: by the interface (the published module's path
    // of dhost:node/describe#wit).
    let described = call(
        group,
        "bob",
        "dhost:node/describe#wit",
        &[r#""dhost:kv/store""#],
    )
    .expect("bob describes the interface of its published module");
    assert!(described.contains("export dhost:kv/store"), "{described}");
    assert_eq!(
        call(
            group,
            "bob",
            "dhost:node/describe#wit",
            &[r#""dhost:none/here""#]
        ),
        None
    );

    // A new version, published to one node only: the others take it from that node.
    let v2 = new_version(&kv, "v2");
    let v2_digest = Digest::of(&std::fs::read(&v2).unwrap()).to_string();
    let (ok, out, err) = publish(group, &v2, &["--node", "cat", "--name", "kv"]);
    assert!(ok, "{out}{err}");
    assert!(out.contains("cat: loaded"), "{out}");
    let replaced = wait_for("every node to run the new version", || {
        let table = modules_table(group);
        table.len() == 1 && table[0].1 == v2_digest[..12] && table[0].2.len() == 4
    });
    eprintln!("the new version ran on all four nodes {replaced:?} after its publish");
    for node in ["ann", "bob", "cat", "dan"] {
        assert!(call(group, node, "dhost:kv/store#keys", &[]).is_some());
    }

    // Unpublished while dan is down: the others stop serving it at once...
    assert!(dan.interrupt().success());
    let (status, out, err) = client_output("unpublish", group, &["kv"]);
    assert!(status.success(), "{err}");
    for node in ["ann", "bob", "cat"] {
        assert!(out.contains(&format!("{node}: removed")), "{out}");
    }
    // ...and dan, back with the old module in its store and its file, hears of the removal
    // from them and does not bring the module back.
    let dan = module_node("dan", group, &store("three", "dan"), &[]);
    wait_for("every node to stop serving kv", || {
        ["ann", "bob", "cat", "dan"]
            .iter()
            .all(|n| call(group, n, "dhost:kv/store#keys", &[]).is_none())
    });
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(call(group, "dan", "dhost:kv/store#keys", &[]), None);
    assert!(
        dan.stderr().contains("unpublished by") || dan.stderr().contains("knows a newer"),
        "{}",
        dan.stderr()
    );
    let (status, _, err) = client_output("modules", group, &[]);
    assert!(status.success());
    assert!(err.contains("no node runs a published module"), "{err}");
    drop(nodes);
}

/// A pool for hand-made transfers, without a key.
fn pool() -> PoolHandle {
    dhost::client::start_pool(ConnectionKeys::default()).unwrap()
}

fn publication(name: &str, bytes: &[u8]) -> Publication {
    Publication {
        name: name.into(),
        digest: Some(Digest::of(bytes)),
        size: bytes.len() as u64,
        published_at: dhost::clock::unix_millis(),
        publisher: "tester".into(),
    }
}

/// A component whose `init` traps.
const FAILS_IN_INIT: &str = r#"
(component
  (core module $m (func (export "init") unreachable))
  (core instance $i (instantiate $m))
  (func $init (canon lift (core func $i "init")))
  (instance $lifecycle (export "init" (func $init)))
  (export "dstc:node/lifecycle" (instance $lifecycle)))
"#;

/// A component whose import no node provides.
const UNSATISFIABLE: &str = r#"
(component
  (import "dstc:node/teleport" (instance (export "go" (func))))
)
"#;

#[test]
fn bad_modules_are_refused_with_the_reason_and_leave_the_node_as_it_was() {
    let group = unique_group();
    let store_dir = store("bad", "eve");
    let eve = module_node("eve", group, &store_dir, &["--max-module-size", "4MiB"]);
    let addr: SocketAddr = tcp_port(&eve);
    let pool = pool();
    let kv_bytes = std::fs::read(guest("kv")).unwrap();
    let send = |p: &Publication, bytes: &[u8]| {
        send_module(&pool, addr, "eve", p, bytes, Duration::from_secs(30))
    };

    // Corrupted in transit: the bytes that arrive are not the ones offered.
    let p = publication("kv", &kv_bytes);
    let mut corrupted = kv_bytes.clone();
    corrupted[kv_bytes.len() / 2] ^= 0xff;
    let failure = send(&p, &corrupted).unwrap_err();
    assert_eq!(failure.kind, FailureKind::Refused);
    assert!(
        failure.message.contains("the transfer was corrupted"),
        "{failure}"
    );

    // Interrupted: offered, one chunk sent, never finished (the publisher went away).
    let chunk = |request: ModuleRequest| {
        let function = request.function();
        pool.call(addr, "eve", &function, request.into_args(), true, PATIENCE)
    };
    chunk(ModuleRequest::Offer(p.clone())).unwrap();
    chunk(ModuleRequest::Chunk {
        digest: p.digest.unwrap(),
        offset: 0,
        data: kv_bytes[..1000].to_vec(),
    })
    .unwrap();
    // Truncated: finished before every byte arrived.
    let half = &kv_bytes[..kv_bytes.len() / 2];
    let failure = send(&p, half).unwrap_err();
    assert!(failure.message.contains("is incomplete"), "{failure}");

    // Not a component; over the size limit; imports no node can satisfy.
    let junk = b"\0asm\x0d\0\x01\0 not really a component".to_vec();
    let failure = send(&publication("junk", &junk), &junk).unwrap_err();
    assert!(
        failure
            .message
            .contains("not a valid WebAssembly component"),
        "{failure}"
    );
    let mut big = publication("big", &kv_bytes);
    big.size = 5 << 20;
    let failure = send(&big, &kv_bytes).unwrap_err();
    assert!(
        failure.message.contains("more than this node takes"),
        "{failure}"
    );
    let unsatisfiable = wat::parse_str(UNSATISFIABLE).unwrap();
    let failure = send(&publication("teleport", &unsatisfiable), &unsatisfiable).unwrap_err();
    assert!(
        failure
            .message
            .contains("cannot satisfy import `dstc:node/teleport`"),
        "{failure}"
    );

    // None of it reached the store, nor the node's functions; each refusal was logged.
    assert_eq!(stored(&store_dir), Vec::<String>::new());

    // A module that fails in its init is checked and stored, but not kept running.
    let fails = wat::parse_str(FAILS_IN_INIT).unwrap();
    let failure = send(&publication("fails", &fails), &fails).unwrap_err();
    assert!(failure.message.contains("failed in its init"), "{failure}");
    let (status, out, err) = client_output("modules", group, &[]);
    assert!(status.success(), "{err}");
    assert!(!out.contains("fails"), "{out}");
    assert_eq!(call(group, "eve", "dhost:kv/store#keys", &[]), None);
    let err = eve.stderr();
    assert!(
        err.contains("guest fails unloaded: it failed in its init"),
        "{err}"
    );
    assert!(
        err.contains("dropped module transfer: the bytes received for kv (sha256 ")
            && err.contains("the transfer was corrupted"),
        "{err}"
    );
    assert!(
        err.contains("cannot satisfy import `dstc:node/teleport`"),
        "{err}"
    );

    // The CLI refuses a file that is not a component before sending anything.
    let text = scratch_file("modules-bad", "notes.wasm", "hello");
    let (ok, _, err) = publish(group, &text, &[]);
    assert!(!ok);
    assert!(err.contains("is not WebAssembly"), "{err}");

    // And the node still takes a good module.
    assert_eq!(send(&p, &kv_bytes).as_deref(), Ok("loaded"));
    assert_eq!(
        call(group, "eve", "dhost:kv/store#keys", &[]),
        Some("[]".into())
    );
}

#[test]
fn nodes_refuse_modules_unless_they_accept_them_from_that_publisher() {
    let group = unique_group();
    let plain = Dhost::start(&node_args("plain", group, &[]));
    plain.wait_stderr("the node to be ready", |err| {
        err.contains("calls on 127.0.0.1:")
    });
    let picky = module_node(
        "picky",
        group,
        &store("publishers", "picky"),
        &["--accept-modules=ann,bob"],
    );
    let kv = guest("kv");

    let (ok, out, err) = publish(group, &kv, &["--publisher", "mallory"]);
    assert!(!ok, "{out}");
    assert!(
        out.contains(
            "plain: refused: this node does not accept published modules (start it with \
             --accept-modules)"
        ),
        "{out}"
    );
    assert!(
        out.contains(
            "picky: refused: this node takes modules from ann, bob only, not from mallory"
        ),
        "{out}"
    );
    assert!(err.contains("published to 0 of 2 node(s)"), "{err}");
    // Each node said so in its log too.
    plain.wait_stderr("the refusal logged", |err| {
        err.contains("this node does not accept published modules")
    });
    picky.wait_stderr("the refusal logged", |err| {
        err.contains("dropped module kv") && err.contains("not from mallory")
    });

    let (ok, out, _) = publish(group, &kv, &["--publisher", "bob", "--node", "picky"]);
    assert!(ok, "{out}");
    assert!(out.contains("picky: loaded"), "{out}");
    // The node without --accept-modules never takes it from its peer either.
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(call(group, "plain", "dhost:kv/store#keys", &[]), None);
    assert!(call(group, "picky", "dhost:kv/store#keys", &[]).is_some());
    drop((plain, picky));
}

/// The numbers in the closing summary of a node: (calls run, lost, dropped).
fn calls_in_summary(err: &str) -> (u64, u64, u64) {
    let line = err
        .lines()
        .find(|l| l.contains(" stopped: "))
        .unwrap_or_else(|| panic!("no closing summary in:\n{err}"));
    let number_before = |what: &str| -> u64 {
        let at = line
            .find(what)
            .unwrap_or_else(|| panic!("no `{what}` in {line}"));
        let words: Vec<&str> = line[..at].split_whitespace().collect();
        words
            .last()
            .unwrap()
            .trim_start_matches('(')
            .parse()
            .unwrap()
    };
    (
        number_before(" calls run"),
        number_before(" lost,"),
        number_before(" dropped"),
    )
}

/// One datagram of a hand-made stream: sequence number `seq`, carrying the run of calls
/// `function(value)` for each of `values`, the first numbered `first`.
fn stream_datagram(seq: u64, first: u64, function: &str, values: &[i64]) -> Vec<u8> {
    use ciborium::Value;
    let mut datagram = Vec::new();
    dhost::wire::encode_header(0x5e4d, Some(seq), &mut datagram);
    let mut run = vec![0.into(), first.into(), function.into()];
    run.extend(values.iter().map(|v| Value::Array(vec![(*v).into()])));
    ciborium::ser::into_writer(&Value::Array(run), &mut datagram).unwrap();
    datagram
}

#[test]
fn a_new_version_replaces_the_old_in_the_middle_of_a_stream_without_losing_a_call() {
    const COUNT: i64 = 1_000_000;
    const PER_DATAGRAM: i64 = 1000;
    let group = unique_group();
    let mut rx = module_node("swap-rx", group, &store("swap", "rx"), &[]);
    let stress = guest("stress");
    let (ok, out, err) = publish(group, &stress, &[]);
    assert!(ok, "{out}{err}");
    let v2 = new_version(&stress, "stress-v2");
    // (Compiled now, into the compile cache the nodes share, so that its publication
    // takes a fraction of the stream's time even on a busy machine.)
    let (status, _, err) = dhost_output(&["inspect", "--summary", v2.to_str().unwrap()]);
    assert!(status.success(), "{err}");

    // A stream of set-value(0..COUNT) then finish(COUNT), paced over a few seconds; after
    // a fifth of it, a new version of the receiver is published.
    let sent = std::sync::Arc::new(std::sync::atomic::AtomicI64::new(0));
    let sender = {
        let sent = sent.clone();
        std::thread::spawn(move || {
            let socket = group_sender(group);
            let mut seq = 1;
            for start in (0..COUNT).step_by(PER_DATAGRAM as usize) {
                let values: Vec<i64> = (start..start + PER_DATAGRAM).collect();
                let function = "dhost:stress/sink#set-value";
                let datagram = stream_datagram(seq, start as u64 + 1, function, &values);
                socket.send(&datagram).unwrap();
                seq += 1;
                sent.store(start + PER_DATAGRAM, std::sync::atomic::Ordering::Relaxed);
                std::thread::sleep(Duration::from_millis(4));
            }
            let finish = "dhost:stress/sink#finish";
            socket
                .send(&stream_datagram(seq, COUNT as u64 + 1, finish, &[COUNT]))
                .unwrap();
        })
    };
    wait_for("a fifth of the stream", || {
        sent.load(std::sync::atomic::Ordering::Relaxed) >= COUNT / 5
    });
    let started = Instant::now();
    let options = ["--name", "stress", "--node", "swap-rx", "--wait", "5s"];
    let (ok, out, err) = publish(group, &v2, &options);
    assert!(ok, "{out}{err}");
    let when = sent.load(std::sync::atomic::Ordering::Relaxed);
    eprintln!(
        "the new version was published in {:?}, when {when} values were sent",
        started.elapsed()
    );
    sender.join().unwrap();
    rx.wait_stdout("the receiver's report", |out| out.contains("stress: "));

    // The new instance saw the end of the stream; the old one the start.
    let report = rx.stdout();
    eprintln!("{report}");
    let words: Vec<&str> = report.split_whitespace().collect();
    let seen: i64 = words[1].parse().unwrap();
    let lost_at = words.iter().position(|w| *w == "lost,").unwrap();
    let before: i64 = words[lost_at - 1].parse().unwrap();
    assert_eq!(seen + before, COUNT, "{report}");
    assert!(
        seen > 0 && before > 0,
        "the new version did not land in the middle of the stream: {report}\n{}",
        rx.stderr()
    );
    // And the node ran every call, the `finish` included, and lost or dropped none.
    assert!(rx.interrupt().success());
    assert_eq!(
        calls_in_summary(&rx.stderr()),
        (COUNT as u64 + 1, 0, 0),
        "{}",
        rx.stderr()
    );
}

#[test]
fn a_keyed_node_takes_modules_only_from_holders_of_the_group_key() {
    let group = unique_group();
    let key = scratch_dir("modules-keyed").join("group.key");
    let _ = std::fs::remove_file(&key);
    let (status, _, err) = dhost_output(&["keygen", key.to_str().unwrap()]);
    assert!(status.success(), "{err}");
    let key_flag = format!("--key-file={}", key.display());
    let store_dir = store("keyed", "kim");
    let kim = module_node("kim", group, &store_dir, &[&key_flag]);
    let kv = guest("kv");

    // Without the key: the node is not even seen, and its port refuses the connection.
    let (ok, _, err) = publish(group, &kv, &[]);
    assert!(!ok);
    assert!(err.contains("no node answered"), "{err}");
    let kv_bytes = std::fs::read(&kv).unwrap();
    let outsider = send_module(
        &pool(),
        tcp_port(&kim),
        "kim",
        &publication("kv", &kv_bytes),
        &kv_bytes,
        Duration::from_secs(10),
    );
    let failure = outsider.unwrap_err();
    assert!(failure.message.contains("key"), "{failure}");
    assert_eq!(stored(&store_dir), Vec::<String>::new());

    // With it: loaded.
    let (ok, out, err) = publish(group, &kv, &[&key_flag]);
    assert!(ok, "{out}{err}");
    assert!(out.contains("kim: loaded"), "{out}");
    assert_eq!(stored(&store_dir).len(), 1);
}

#[test]
fn a_nodes_own_guests_are_never_replaced_nor_removed_by_a_publisher() {
    let group = unique_group();
    let kv = guest("kv");
    let own = module_node("own", group, &store("own", "own"), &[kv.to_str().unwrap()]);
    call(group, "own", "dhost:kv/store#put", &[r#""k""#, r#""mine""#]).unwrap();

    let v2 = new_version(&kv, "own-v2");
    let (ok, out, _) = publish(group, &v2, &["--name", "kv"]);
    assert!(!ok);
    assert!(
        out.contains("own: refused: this node runs a guest named kv of its own"),
        "{out}"
    );
    let removal = Publication {
        digest: None,
        size: 0,
        ..publication("kv", b"")
    };
    let failure = ModuleRequest::Unpublish(removal)
        .send(&pool(), tcp_port(&own), "own", PATIENCE)
        .unwrap_err();
    assert!(failure.message.contains("of its own"), "{failure}");
    // Its own kv still runs, with what it held.
    assert_eq!(
        call(group, "own", "dhost:kv/store#get", &[r#""k""#]),
        Some(r#""mine""#.into())
    );
}

#[test]
fn a_restarted_node_runs_again_what_it_ran_from_its_store_alone() {
    let group = unique_group();
    let store_dir = store("restart", "solo");
    let mut solo = module_node("solo", group, &store_dir, &[]);
    let (ok, out, err) = publish(group, &guest("kv"), &[]);
    assert!(ok, "{out}{err}");
    assert!(solo.interrupt().success());

    // No peer on the group has it: it comes from the node's own file and store.
    let solo = module_node("solo", group, &store_dir, &[]);
    wait_for("solo to serve kv again", || {
        call(group, "solo", "dhost:kv/store#keys", &[]).is_some()
    });
    assert!(
        solo.stderr().contains("(run again from the store)"),
        "{}",
        solo.stderr()
    );
    // A node of another name with the same store runs nothing of it.
    let other = module_node("other", group, &store_dir, &[]);
    std::thread::sleep(Duration::from_millis(500));
    assert!(!other.stderr().contains("run again"), "{}", other.stderr());
}

/// A component of `instances` core instances of one module, each with a memory of `pages`
/// pages (64 KiB each; none when 0) whose last page its start function touches: the shape
/// of the 194-byte module that once held 2.6 GB under a 64 MiB jail (40 instances of 64
/// MiB).
fn many_memories(instances: usize, pages: u32) -> Vec<u8> {
    let module = if pages == 0 {
        "(core module $m)".to_string()
    } else {
        let last = pages as u64 * 65536 - 4;
        format!(
            "(core module $m (memory {pages}) \
               (func $touch (i32.store (i32.const {last}) (i32.const 1))) (start $touch))"
        )
    };
    let instances = "(core instance (instantiate $m))\n".repeat(instances);
    wat::parse_str(format!("(component {module}\n{instances})")).unwrap()
}

/// A component whose start function never returns.
const LOOPS_IN_START: &str = r#"
(component
  (core module $m (func $spin (loop $l (br $l))) (start $spin))
  (core instance (instantiate $m)))
"#;

#[test]
fn a_module_of_many_memories_is_refused_and_the_node_stays_small() {
    let group = unique_group();
    let store_dir = store("memories", "mem");
    let node = module_node("mem", group, &store_dir, &[]);
    let addr: SocketAddr = tcp_port(&node);
    let pool = pool();
    let send = |name: &str, bytes: &[u8]| {
        send_module(
            &pool,
            addr,
            "mem",
            &publication(name, bytes),
            bytes,
            Duration::from_secs(30),
        )
    };
    // 40 memories of 64 MiB: the second passes the guest's 64 MiB in all.
    let failure = send("forty", &many_memories(40, 1024)).unwrap_err();
    assert_eq!(failure.kind, FailureKind::Refused);
    assert!(
        failure.message.contains("memory limit exceeded")
            && failure.message.contains("128.0 MiB in all")
            && failure.message.contains("the jail allows 64.0 MiB"),
        "{failure}"
    );
    // Three of 32 MiB: each within the old per-memory limit, 96 MiB together.
    let failure = send("three", &many_memories(3, 512)).unwrap_err();
    assert!(failure.message.contains("96.0 MiB in all"), "{failure}");
    // 40 instances without memory: more core instances than the jail allows.
    let failure = send("instances", &many_memories(40, 0)).unwrap_err();
    assert!(
        failure
            .message
            .contains("the jail allows at most 32 core instances"),
        "{failure}"
    );
    // The node held none of it, and still takes a good module.
    let peak = node.peak_rss_kib();
    eprintln!("peak resident memory of the node: {peak} KiB");
    assert!(peak < 400 * 1024, "the node reached {peak} KiB");
    let kv = std::fs::read(guest("kv")).unwrap();
    assert_eq!(send("kv", &kv).as_deref(), Ok("loaded"));
    assert_eq!(
        call(group, "mem", "dhost:kv/store#keys", &[]),
        Some("[]".into())
    );
}

#[test]
fn a_module_whose_start_function_loops_is_refused_and_holds_up_no_other() {
    let group = unique_group();
    let store_dir = store("loops", "spin");
    // A longer time limit than the default, so that the good module comes while the bad
    // one still spins.
    let node = module_node("spin", group, &store_dir, &["--max-time", "4s"]);
    let addr: SocketAddr = tcp_port(&node);
    let looping = std::thread::spawn(move || {
        let bytes = wat::parse_str(LOOPS_IN_START).unwrap();
        let p = publication("spins", &bytes);
        let outcome = send_module(&pool(), addr, "spin", &p, &bytes, PATIENCE);
        (outcome, Instant::now())
    });
    std::thread::sleep(Duration::from_millis(500));
    let kv = std::fs::read(guest("kv")).unwrap();
    let started = Instant::now();
    let loaded = send_module(
        &pool(),
        addr,
        "spin",
        &publication("kv", &kv),
        &kv,
        PATIENCE,
    );
    let kv_done = Instant::now();
    assert_eq!(loaded.as_deref(), Ok("loaded"));
    let (outcome, refused_at) = looping.join().unwrap();
    let failure = outcome.unwrap_err();
    assert_eq!(failure.kind, FailureKind::Refused);
    assert!(failure.message.contains("time limit exceeded"), "{failure}");
    assert!(
        kv_done < refused_at,
        "kv waited for the spinning module: loaded after {:?}",
        kv_done - started
    );
    assert_eq!(
        call(group, "spin", "dhost:kv/store#keys", &[]),
        Some("[]".into())
    );
    let (status, out, err) = client_output("modules", group, &[]);
    assert!(status.success(), "{err}");
    assert!(!out.contains("spins"), "{out}");
}
