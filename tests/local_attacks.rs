//! End-to-end tests of the second ring of attacks (issue 23): what a malicious member, a
//! published module's publisher or a local user could do to a node, its operator's
//! terminal and its files, each tried as they would try it, with real `dhost` processes,
//! asserting what the user sees:
//!
//! - times from the network: a publication stamped far in the future is refused (offered,
//!   announced, unpublishing, or kept in a node's store) and holds no name;
//! - text from the network or a guest reaches the terminal printable: `dhost peers`, `dhost
//!   call`, the chat in every language, a guest's output, the node's log;
//! - the compile cache runs no entry someone else could have put there;
//! - a flood of answers costs `dhost peers` a bounded memory and time, and a member that
//!   stalls a fetch holds up a late joiner for seconds;
//! - a bare plugin name opens the file of that name, not a library found elsewhere;
//! - keygen follows no link, and a key file of another user is refused;
//! - every listener off loopback needs the key or `--insecure`;
//! - the files that hold data are the user's alone.

mod common;

use ciborium::Value;
use common::*;
use dhost::modules::client::send_module;
use dhost::modules::protocol::ModuleRequest;
use dhost::modules::{Digest, ModuleStore, Publication};
use dhost::outcome::FailureKind;
use dhost::rpc::{ConnectionKeys, PoolHandle};
use dhost::wire::{self, Announce, Presence};
use std::net::SocketAddrV4;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// A store of this test process's own.
fn store(tag: &str) -> PathBuf {
    scratch_dir(&format!("attacks-{tag}")).join("store")
}

/// A pool for hand-made requests, without a key.
fn pool() -> PoolHandle {
    dhost::client::start_pool(ConnectionKeys::default()).unwrap()
}

/// Waits until `done` holds, at most [`PATIENCE`].
fn wait_for(what: &str, done: impl Fn() -> bool) {
    let started = Instant::now();
    while !done() {
        assert!(started.elapsed() < PATIENCE, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// `dhost call NODE FUNCTION ARGS...`: its stdout, if it succeeded, else its stderr.
fn call(group: SocketAddrV4, node: &str, function: &str, args: &[&str]) -> Result<String, String> {
    let mut all = vec![node, function];
    all.extend(args);
    let (status, out, err) = client_output("call", group, &all);
    if status.success() {
        Ok(out.trim_end().to_string())
    } else {
        Err(err)
    }
}

/// Sends `announce` to `group` as node `sender` would, every 50 ms until `stop` holds.
fn announce_until(group: SocketAddrV4, sender: u64, announce: Announce, stop: impl Fn() -> bool) {
    let socket = group_sender(group);
    let mut datagram = Vec::new();
    wire::encode_header(sender, None, &mut datagram);
    wire::encode_announce(&announce, &mut datagram);
    let started = Instant::now();
    while !stop() && started.elapsed() < PATIENCE {
        socket.send(&datagram).unwrap();
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The kv guest's bytes and a publication of them as `kv` at `published_at`.
fn kv_publication(published_at: u64) -> (Vec<u8>, Publication) {
    let bytes = std::fs::read(guest("kv")).unwrap();
    let p = Publication {
        name: "kv".into(),
        digest: Some(Digest::of(&bytes)),
        size: bytes.len() as u64,
        published_at,
        publisher: "mallory".into(),
    };
    (bytes, p)
}

/// Whether `text` holds a character that drives a terminal or breaks a line: what must
/// never reach the operator's terminal from the network.
fn raw_controls(text: &str) -> Vec<char> {
    text.chars()
        .filter(|&c| {
            (c.is_control() && c != '\n')
                || matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
        })
        .collect()
}

/// Sends one call of `function` with `args` to `group`, as a node's stream would.
fn send_call(group: SocketAddrV4, function: &str, args: &[Value]) {
    let mut datagram = Vec::new();
    wire::encode_header(
        0xbad3 + u64::from(std::process::id()),
        Some(1),
        &mut datagram,
    );
    wire::encode_call(1, function, args, &mut datagram);
    group_sender(group).send(&datagram).unwrap();
}

/// Runs `dhost -vv run GUEST` with the compile cache in `cache`, until it exits (a WASI
/// command) or `PATIENCE`; its stdout and stderr.
fn run_with_cache(cache: &Path, guest: &Path, args: &[&str]) -> (String, String) {
    let mut cmd = dhost_command();
    cmd.env("DHOST_CACHE_DIR", cache)
        .args(["-vv", "run", guest.to_str().unwrap()])
        .args(args)
        .stdin(std::process::Stdio::null());
    let mut run = Dhost::spawn(cmd);
    run.wait_exit();
    (run.stdout(), run.stderr())
}

/// The resident memory of process `pid` in KiB, while it lives.
fn resident_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// Compiles `source` (C) into the shared object `dir/name`.
fn plugin(dir: &Path, name: &str, source: &str) -> PathBuf {
    let c = dir.join(format!("{name}.c"));
    std::fs::write(&c, source).unwrap();
    let so = dir.join(name);
    let cc = std::env::var("CC").unwrap_or_else(|_| "cc".into());
    let status = std::process::Command::new(cc)
        .args(["-fPIC", "-shared", "-o"])
        .arg(&so)
        .arg(&c)
        .status()
        .unwrap();
    assert!(status.success(), "cc {}", c.display());
    so
}

#[test]
fn a_publication_from_the_far_future_is_refused_and_holds_no_name() {
    let group = unique_group();
    let node = module_node("ann", group, &store("future"), &[]);
    let addr = tcp_port(&node);
    let pool = pool();

    // Offered: refused, saying why, before any byte is sent.
    let (bytes, future) = kv_publication(u64::MAX);
    let refusal = send_module(&pool, addr, "ann", &future, &bytes, PATIENCE)
        .expect_err("a publication from the future is refused");
    assert_eq!(refusal.kind, FailureKind::Refused, "{refusal}");
    assert!(
        refusal.message.contains("ahead of this node's clock"),
        "{refusal}"
    );
    assert!(refusal.message.contains("past year 9999"), "{refusal}");
    // A minute and a half ahead is as bad: the skew allowed is 60 s, as for datagrams.
    let (_, soon) = kv_publication(dhost::clock::unix_millis() + 90_000);
    let refusal = send_module(&pool, addr, "ann", &soon, &bytes, PATIENCE).unwrap_err();
    assert!(
        refusal.message.contains("ahead of this node's clock"),
        "{refusal}"
    );

    // The name is free: an honest publication now loads, and is listed with its date.
    let kv = guest("kv");
    let (status, out, err) = client_output("publish", group, &[kv.to_str().unwrap()]);
    assert!(status.success(), "{out}{err}");
    assert!(out.contains("ann: loaded"), "{out}");
    let (status, out, err) = client_output("modules", group, &[]);
    assert!(status.success(), "{err}");
    assert!(out.contains(" 20") && out.contains("Z "), "a date: {out}");

    // An unpublishing from the future, sent or announced, removes nothing.
    let removal = Publication {
        digest: None,
        size: 0,
        ..future.clone()
    };
    let refusal = ModuleRequest::Unpublish(removal.clone())
        .send(&pool, addr, "ann", PATIENCE)
        .expect_err("an unpublishing from the future is refused");
    assert!(
        refusal.message.contains("ahead of this node's clock"),
        "{refusal}"
    );
    let hostile = Announce {
        presence: Presence {
            name: "mallory".into(),
            ..Presence::default()
        },
        modules: vec![removal],
        ..Announce::default()
    };
    let seen = AtomicBool::new(false);
    std::thread::scope(|s| {
        s.spawn(|| announce_until(group, 0xbad, hostile, || seen.load(Ordering::Relaxed)));
        // (Once `dhost peers` lists mallory, ann has had its announcement too.)
        wait_for("the hostile announcement", || {
            let (_, out, _) = client_output("peers", group, &[]);
            peer_names(&out).contains(&"mallory".to_string())
        });
        std::thread::sleep(Duration::from_millis(500));
        seen.store(true, Ordering::Relaxed);
    });
    assert_eq!(
        call(group, "ann", "dhost:kv/store#put", &["\"k\"", "\"v\""]),
        Ok("null".to_string()),
        "kv still runs"
    );
    assert!(!node.stderr().contains(": unloaded"), "{}", node.stderr());

    // An honest unpublishing still works: the name was never held.
    let (status, out, err) = client_output("unpublish", group, &["kv"]);
    assert!(status.success(), "{out}{err}");
    assert!(out.contains("ann: removed"), "{out}");
}

#[test]
fn a_publication_from_the_future_kept_in_a_store_holds_no_name_after_a_restart() {
    let group = unique_group();
    let store_dir = store("future-store");
    // What a node kept before nodes refused such publications: kv unpublished in the
    // far future.
    let (_, future) = kv_publication(u64::MAX - 1);
    let removal = Publication {
        digest: None,
        size: 0,
        ..future
    };
    let owner = dhost::modules::service::owner("bob", group);
    ModuleStore::new(store_dir.clone())
        .save_node(&owner, &[removal])
        .unwrap();

    let node = module_node("bob", group, &store_dir, &[]);
    node.wait_stderr("the warning", |err| {
        err.contains("not running again what this node kept of kv")
    });
    let kv = guest("kv");
    let (status, out, err) = client_output("publish", group, &[kv.to_str().unwrap()]);
    assert!(status.success(), "{out}{err}");
    assert!(out.contains("bob: loaded"), "{out}");
}

#[test]
fn dhost_peers_shows_what_peers_announce_escaped_and_drops_names_that_need_it() {
    let group = unique_group();
    // One peer whose counters name sources and peers with escape sequences, and one whose
    // own name carries them.
    let counters = Announce {
        presence: Presence {
            name: "mallory".into(),
            functions: vec!["dhost:chat/chat#message".into()],
            links: vec![("\u{202e}bob".into(), 1)],
            ..Presence::default()
        },
        streams: vec![wire::StreamCounts {
            peer: "\u{1b}]0;pwned\u{7}evil\r\nann".into(),
            received: 1,
            repaired: 0,
            lost: 0,
        }],
        refused: vec![wire::RefusedCounts {
            source: "\u{1b}[2J\u{9b}31m".into(),
            unauthenticated: 1,
            replayed: 0,
        }],
        ..Announce::default()
    };
    let bad_name = Announce {
        presence: Presence {
            name: "eve\u{1b}[8m".into(),
            ..Presence::default()
        },
        ..Announce::default()
    };
    let done = AtomicBool::new(false);
    let (out, err) = std::thread::scope(|s| {
        s.spawn(|| announce_until(group, 0xbad1, counters, || done.load(Ordering::Relaxed)));
        s.spawn(|| announce_until(group, 0xbad2, bad_name, || done.load(Ordering::Relaxed)));
        let (status, out, err) =
            client_output("peers", group, &["--streams", "--refused", "--wait", "1s"]);
        done.store(true, Ordering::Relaxed);
        assert!(status.success(), "{err}");
        (out, err)
    });
    assert!(raw_controls(&out).is_empty(), "{:?}", raw_controls(&out));
    assert!(raw_controls(&err).is_empty(), "{:?}", raw_controls(&err));
    assert_eq!(peer_names(&out)[0], "mallory", "{out}");
    assert!(
        !out.contains("eve"),
        "a name with escapes is refused: {out}"
    );
    for shown in [
        "\\u{202e}bob:1",
        "\\u{1b}]0;pwned\\u{7}evil\\r\\nann",
        "\\u{1b}[2J\\u{9b}31m",
    ] {
        assert!(out.contains(shown), "`{shown}` in:\n{out}");
    }
}

#[test]
fn a_calls_result_prints_as_json_a_terminal_cannot_take_for_commands() {
    let group = unique_group();
    let kv = guest("kv");
    let node = Dhost::start(&node_args("kv-ann", group, &[kv.to_str().unwrap()]));
    node.wait_stderr("ready", |err| err.contains("ready in"));
    // (JSON escapes: what serde_json leaves as it is, C1, DEL and bidi controls.)
    let value = r#""\u009b2J\u007f\u202egnp.exe""#;
    assert_eq!(
        call(group, "kv-ann", "dhost:kv/store#put", &["\"k\"", value]),
        Ok("null".to_string())
    );
    let got = call(group, "kv-ann", "dhost:kv/store#get", &["\"k\""]).unwrap();
    assert!(raw_controls(&got).is_empty(), "{got:?}");
    assert_eq!(got, value);
    // The same value, for a program reading the JSON.
    let parsed: serde_json::Value = serde_json::from_str(&got).unwrap();
    assert_eq!(parsed, serde_json::json!("\u{9b}2J\u{7f}\u{202e}gnp.exe"));

    // A guest's words (kv's crash panics with the reason it is given, on its stderr) and
    // a peer's (a case name that kv has not, in a call from the group, which the node logs
    // as it drops it) reach the node's stderr printable, and forge no line of its log.
    let crash = r#""boom\rWARN forged \u001b[2J\u202e""#;
    let err = call(group, "kv-ann", "dhost:kv/admin#crash", &[crash]).unwrap_err();
    assert!(raw_controls(&err).is_empty(), "{err:?}");
    node.wait_stderr("the panic", |err| err.contains("boom"));
    let query = Value::Map(vec![(
        Value::Text("key\r\nWARN forged \u{1b}[2J".into()),
        Value::Text("k".into()),
    )]);
    send_call(
        group,
        "dhost:kv/entries#find",
        &[query, Value::Integer(1.into()), Value::Array(vec![])],
    );
    node.wait_stderr("the drop logged", |err| {
        err.contains("key\\r\\nWARN forged")
    });
    let err = node.stderr();
    assert!(raw_controls(&err).is_empty(), "{err:?}");
    assert!(
        err.contains("boom\\rWARN forged \\u{1b}[2J\\u{202e}"),
        "{err}"
    );
    assert!(!err.lines().any(|l| l.starts_with("WARN forged")), "{err}");
}

#[test]
fn the_chat_in_every_language_shows_what_peers_send_escaped() {
    let group = unique_group();
    // One chat node per language; a peer sends a message whose name and text carry escape
    // sequences, a carriage return, a line feed and a bidi override: each node prints it
    // on one line, escaped (the chat guests escape it; the node too, for any guest).
    let mut nodes: Vec<Dhost> = ["chat", "chat-py", "chat-js"]
        .iter()
        .map(|name| {
            let wasm = guest(name);
            Dhost::start(&node_args(name, group, &[wasm.to_str().unwrap()]))
        })
        .collect();
    for node in &nodes {
        node.wait_stdout_within("the prompt", Duration::from_secs(120), |out| {
            out.contains("Username: ")
        });
    }
    let hostile = [
        Value::Text("\u{1b}[31mmallory".into()),
        Value::Text("hi\r\n[ann]: forged \u{1b}]0;title\u{7}\u{202e}".into()),
    ];
    send_call(group, "dhost:chat/chat#message", &hostile);
    let shown = "[\\u{1b}[31mmallory]: hi\\r\\n[ann]: forged \\u{1b}]0;title\\u{7}\\u{202e}";
    for node in &nodes {
        node.wait_stdout("the message", |out| out.contains(shown));
        let out = node.stdout();
        assert!(raw_controls(&out).is_empty(), "{out:?}");
        assert_eq!(chat_lines(&out).len(), 1, "no forged line: {out:?}");
    }
    for node in &mut nodes {
        node.kill();
    }
}

#[test]
fn the_compile_cache_runs_no_code_someone_else_could_have_put_there() {
    use std::os::unix::fs::{MetadataExt as _, PermissionsExt as _};
    let cache = scratch_dir("attacks-cache").join("cache");
    let _ = std::fs::remove_dir_all(&cache);
    let (hello, kv_client) = (guest("hello"), guest("kv-client"));

    // The cache is made the user's alone, and hello's entry with it.
    let (out, err) = run_with_cache(&cache, &hello, &["--", "again"]);
    assert_eq!(out, "hello again\n", "{err}");
    assert!(err.contains("compile cache stored"), "{err}");
    assert_eq!(std::fs::metadata(&cache).unwrap().mode() & 0o777, 0o700);
    let entries: Vec<PathBuf> = std::fs::read_dir(&cache)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    let [hello_entry] = entries.as_slice() else {
        panic!("one entry: {entries:?}");
    };
    assert_eq!(
        std::fs::metadata(hello_entry).unwrap().mode() & 0o777,
        0o600
    );

    // Someone who may write an entry puts hello's machine code under kv-client's name:
    // kv-client runs as itself, saying why the entry was not used.
    let name = hello_entry
        .file_name()
        .unwrap()
        .to_string_lossy()
        .into_owned();
    let (_, engine) = name.split_once('-').unwrap();
    let kv_digest = Digest::of(&std::fs::read(&kv_client).unwrap());
    let swapped = cache.join(format!("{kv_digest}-{engine}"));
    std::fs::copy(hello_entry, &swapped).unwrap();
    std::fs::set_permissions(&swapped, std::fs::Permissions::from_mode(0o666)).unwrap();
    let (out, err) = run_with_cache(&cache, &kv_client, &["--", "get", "k"]);
    assert!(
        !out.contains("hello"),
        "hello's code ran as kv-client: {out}"
    );
    assert!(
        err.contains("ignoring a compile cache entry")
            && err.contains("may be written by other users (mode 666)"),
        "{err}"
    );
    // (It compiled kv-client, and put its own entry in place of the swapped one.)
    assert_eq!(std::fs::metadata(&swapped).unwrap().mode() & 0o777, 0o600);

    // A cache directory other users may write is not used at all.
    std::fs::set_permissions(&cache, std::fs::Permissions::from_mode(0o777)).unwrap();
    let (out, err) = run_with_cache(&cache, &hello, &["--", "again"]);
    assert_eq!(out, "hello again\n", "{err}");
    assert!(err.contains("not using the compile cache"), "{err}");
    assert!(!err.contains("compile cache hit"), "{err}");
    assert_eq!(
        err.matches("not using the compile cache").count(),
        1,
        "once: {err}"
    );

    // Nor one that belongs to another user (root can make one: CI runs as root).
    std::fs::set_permissions(&cache, std::fs::Permissions::from_mode(0o755)).unwrap();
    if dhost::user_files::current_uid() == 0 {
        std::os::unix::fs::chown(&cache, Some(65534), Some(65534)).unwrap();
        let (out, err) = run_with_cache(&cache, &hello, &["--", "again"]);
        assert_eq!(out, "hello again\n", "{err}");
        assert!(
            err.contains("not using the compile cache") && err.contains("belongs to user 65534"),
            "{err}"
        );
        assert!(!err.contains("compile cache hit"), "{err}");
    } else {
        eprintln!("not root: the cache of another user is not tried");
    }
}

#[test]
fn a_flood_of_announcements_costs_dhost_peers_a_bounded_memory_and_time() {
    const SENDERS: u64 = 4000;
    let group = unique_group();
    // Each announcement ~48 KB: 240 function ids of ~200 bytes.
    let flood = Announce {
        presence: Presence {
            name: "flood".into(),
            functions: (0..240)
                .map(|i| format!("dhost:flood/f{i}#{}", "x".repeat(180)))
                .collect(),
            ..Presence::default()
        },
        ..Announce::default()
    };
    let mut frames = Vec::new();
    wire::encode_announce(&flood, &mut frames);
    let stop = AtomicBool::new(false);
    let (peak_kib, took, out, err, status) = std::thread::scope(|s| {
        s.spawn(|| {
            let socket = group_sender(group);
            let mut datagram = Vec::with_capacity(frames.len() + 64);
            while !stop.load(Ordering::Relaxed) {
                for id in 0..SENDERS {
                    datagram.clear();
                    // (Each sender as a node of its own: the name is the flood's.)
                    wire::encode_header(0xf100d << 20 | id, None, &mut datagram);
                    datagram.extend_from_slice(&frames);
                    let _ = socket.send(&datagram);
                }
            }
        });
        let started = Instant::now();
        let mut cmd = dhost_command();
        cmd.arg("peers")
            .args(group_flags(group))
            .args(["--wait", "3s"])
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped());
        let child = cmd.spawn().unwrap();
        let pid = child.id();
        let watcher = s.spawn(move || {
            let mut peak = 0;
            while let Some(kib) = resident_kib(pid) {
                peak = peak.max(kib);
                std::thread::sleep(Duration::from_millis(10));
            }
            peak
        });
        let output = child.wait_with_output().unwrap();
        let took = started.elapsed();
        stop.store(true, Ordering::Relaxed);
        let peak = watcher.join().unwrap();
        (
            peak,
            took,
            String::from_utf8_lossy(&output.stdout).into_owned(),
            String::from_utf8_lossy(&output.stderr).into_owned(),
            output.status,
        )
    });
    eprintln!("dhost peers under the flood: {peak_kib} KiB resident at most, {took:.1?}");
    assert!(status.success(), "{err}");
    assert!(took < Duration::from_secs(10), "it took {took:?}");
    assert!(peak_kib < 100 * 1024, "{peak_kib} KiB resident");
    let listed = out.lines().skip(1).count();
    assert!(
        listed > 0 && listed <= dhost::client::MAX_ANSWERS,
        "{listed} listed"
    );
    assert!(err.contains("left out"), "{err}");
}

#[test]
fn a_member_that_stalls_a_fetch_holds_up_a_late_joiner_for_seconds_only() {
    let group = unique_group();
    // Mallory opens connections as a node does, and then never answers a request.
    let stall = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let stall_addr = stall.local_addr().unwrap();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for mut conn in stall.incoming().flatten() {
            let _ = std::io::Write::write_all(&mut conn, &dhost::rpc::frame::MAGIC);
            held.push(conn);
        }
    });
    // Ann takes modules from tester only (not mallory's announcements); bob from anyone.
    let ann = module_node(
        "ann",
        group,
        &store("stall-ann"),
        &["--accept-modules=tester"],
    );
    let (_, mut announced) = kv_publication(dhost::clock::unix_millis());
    announced.publisher = "mallory".into();
    let mallory = Announce {
        presence: Presence {
            name: "mallory".into(),
            tcp: Some(stall_addr),
            ..Presence::default()
        },
        modules: vec![announced],
        ..Announce::default()
    };
    let done = AtomicBool::new(false);
    std::thread::scope(|s| {
        s.spawn(|| announce_until(group, 0xbad4, mallory, || done.load(Ordering::Relaxed)));
        // Bob starts, hears that mallory runs kv, and fetches it from her: she stalls.
        let bob = module_node("bob", group, &store("stall-bob"), &[]);
        std::thread::sleep(Duration::from_millis(500));
        // Ann gets the same module now, from its publisher.
        let kv = guest("kv");
        let (status, out, err) = client_output(
            "publish",
            group,
            &[
                "--node",
                "ann",
                "--publisher",
                "tester",
                kv.to_str().unwrap(),
            ],
        );
        assert!(status.success(), "{out}{err}");
        let published = Instant::now();
        // Bob gives up on mallory within seconds and takes it from ann.
        wait_for("bob to run kv", || {
            call(group, "bob", "dhost:kv/store#put", &["\"k\"", "\"v\""]).is_ok()
        });
        let took = published.elapsed();
        done.store(true, Ordering::Relaxed);
        let err = bob.stderr();
        assert!(
            err.contains("cannot fetch module kv") && err.contains("from node mallory"),
            "{err}"
        );
        assert!(err.contains("fetched from node ann"), "{err}");
        assert!(
            took < Duration::from_secs(20),
            "bob caught up after {took:?}"
        );
        eprintln!("bob caught up {took:.1?} after ann had the module:\n{err}");
    });
    drop(ann);
}

#[test]
fn a_bare_plugin_name_opens_the_file_of_that_name_and_no_other() {
    let scratch = scratch_dir("attacks-native");
    let (elsewhere, here) = (scratch.join("libs"), scratch.join("cwd"));
    for dir in [&elsewhere, &here] {
        std::fs::create_dir_all(dir).unwrap();
    }
    // A library of that name where the dynamic loader looks (LD_LIBRARY_PATH), none in the
    // current directory: the file named does not exist, so nothing loads.
    plugin(
        &elsewhere,
        "foo.so",
        "#include <stdio.h>\n#include <unistd.h>\n\
         static void __attribute__((constructor)) init(void) \
         { puts(\"the library path's foo.so ran\"); fflush(stdout); _exit(3); }\n",
    );
    let run = |dir: &Path| {
        let mut cmd = dhost_command();
        cmd.current_dir(dir)
            .env("LD_LIBRARY_PATH", &elsewhere)
            .args(["run", "--ttl", "0", "--native", "foo.so"])
            .stdin(std::process::Stdio::null());
        let mut node = Dhost::spawn(cmd);
        let status = node.wait_exit();
        (status, node.stdout(), node.stderr())
    };
    let (status, out, err) = run(&here);
    assert!(!out.contains("ran"), "a library found elsewhere ran: {out}");
    assert!(!status.success(), "{out}{err}");
    assert!(err.contains("cannot load native plugin foo.so"), "{err}");
    assert!(err.contains("./foo.so"), "the file looked for: {err}");

    // The file of that name in the current directory is the one that loads.
    plugin(
        &here,
        "foo.so",
        "#include <stdio.h>\n#include <unistd.h>\n\
         static void __attribute__((constructor)) init(void) \
         { puts(\"./foo.so ran\"); fflush(stdout); _exit(4); }\n",
    );
    let (status, out, _) = run(&here);
    assert_eq!(out, "./foo.so ran\n");
    assert_eq!(status.code(), Some(4));
}

#[test]
fn keygen_follows_no_link_and_a_key_file_of_another_user_is_refused() {
    use std::os::unix::fs::MetadataExt as _;
    let dir = scratch_dir("attacks-keys");
    let (victim, link) = (dir.join("victim"), dir.join("group.key"));
    let _ = std::fs::remove_file(&link);
    std::fs::write(&victim, "someone's file\n").unwrap();
    std::os::unix::fs::symlink(&victim, &link).unwrap();
    let link_arg = link.to_str().unwrap();

    // Without --force: the name is taken (by the link), nothing is written.
    let (status, _, err) = dhost_output(&["keygen", link_arg]);
    assert!(!status.success());
    assert!(err.contains("exists: give --force"), "{err}");
    // With it: the link is replaced by the key file; the file it pointed to is untouched.
    let (status, out, err) = dhost_output(&["keygen", "--force", link_arg]);
    assert!(status.success(), "{err}");
    assert!(out.contains("wrote a new group key"), "{out}");
    assert_eq!(
        std::fs::read_to_string(&victim).unwrap(),
        "someone's file\n"
    );
    let meta = std::fs::symlink_metadata(&link).unwrap();
    assert!(meta.file_type().is_file());
    assert_eq!(meta.mode() & 0o777, 0o600);

    // A key file of another user is refused (root can make one: CI runs as root).
    if dhost::user_files::current_uid() != 0 {
        eprintln!("not root: a key file of another user is not tried");
        return;
    }
    std::os::unix::fs::chown(&link, Some(65534), None).unwrap();
    let (status, _, err) = client_output("peers", unique_group(), &["--key-file", link_arg]);
    assert!(!status.success());
    assert!(
        err.contains("belongs to user 65534") && err.contains("must be the user's own file"),
        "{err}"
    );
}

#[test]
fn every_listener_off_loopback_needs_the_key_or_insecure() {
    let dir = scratch_dir("attacks-listeners");
    let port = free_port().to_string();
    // `dhost mailbox serve` off loopback, without a key: refused, saying why.
    let (status, _, err) = dhost_output(&[
        "mailbox", "serve", "2", "1", &port, "1", "--bind", "0.0.0.0",
    ]);
    assert!(!status.success());
    assert!(
        err.contains("--bind 0.0.0.0 is not a loopback address") && err.contains("--insecure"),
        "{err}"
    );
    // By default it serves loopback only; told --insecure, every interface.
    for (extra, serves) in [
        (vec![], format!("127.0.0.1:{port}")),
        (
            vec!["--bind", "0.0.0.0", "--insecure"],
            format!("0.0.0.0:{port}"),
        ),
    ] {
        let mut args = vec!["-v", "mailbox", "serve", "2", "1", &port, "1"];
        args.extend(extra);
        let mut server = Dhost::start(&args);
        server.wait_stderr("serving", |err| err.contains("serving"));
        assert!(
            server.stderr().contains(&format!("on {serves}")),
            "{}",
            server.stderr()
        );
        server.kill();
    }
    // A key lets it off loopback (its text protocol then serves this host only).
    let key = dir.join("group.key");
    let _ = std::fs::remove_file(&key);
    assert!(dhost_output(&["keygen", key.to_str().unwrap()]).0.success());
    let mut server = Dhost::start(&[
        "-v",
        "mailbox",
        "serve",
        "2",
        "1",
        &port,
        "1",
        "--bind",
        "0.0.0.0",
        "--key-file",
        key.to_str().unwrap(),
    ]);
    server.wait_stderr("serving", |err| err.contains("serving"));
    server.kill();

    // A node's metrics off loopback, without a key: refused, saying why.
    let group = unique_group();
    let (status, _, err) = client_output("run", group, &["--metrics", "0.0.0.0:0"]);
    assert!(!status.success());
    assert!(
        err.contains("--metrics 0.0.0.0:0 is not a loopback address") && err.contains("--insecure"),
        "{err}"
    );
}

#[test]
fn files_holding_data_are_the_users_alone() {
    use std::os::unix::fs::MetadataExt as _;
    let mode = |path: &Path| std::fs::metadata(path).unwrap().mode() & 0o777;
    let group = unique_group();
    let store_dir = store("private");
    let _ = std::fs::remove_dir_all(&store_dir);
    let boxes = scratch_dir("attacks-private").join("node.boxes");
    let _ = std::fs::remove_file(&boxes);
    let mut node = module_node(
        "ann",
        group,
        &store_dir,
        &[
            "--mailboxes",
            "2",
            "--mailbox-size",
            "1",
            "--mailbox-store",
            boxes.to_str().unwrap(),
        ],
    );
    let kv = guest("kv");
    let (status, out, err) = client_output("publish", group, &[kv.to_str().unwrap()]);
    assert!(status.success(), "{out}{err}");
    // The node keeps what it runs once the module runs (on a blocking thread).
    let nodes = store_dir.join("nodes");
    wait_for("the node's file", || {
        std::fs::read_dir(&nodes).is_ok_and(|mut d| d.next().is_some())
    });
    assert_eq!(mode(&boxes), 0o600, "the mailbox store");
    assert_eq!(mode(&store_dir), 0o700);
    for dir in [store_dir.join("sha256"), nodes] {
        assert_eq!(mode(&dir), 0o700, "{}", dir.display());
        for file in std::fs::read_dir(&dir).unwrap() {
            let file = file.unwrap().path();
            assert_eq!(mode(&file), 0o600, "{}", file.display());
        }
    }
    assert!(node.interrupt().success());
}
