//! End-to-end tests of the second ring of attacks (issue 23): what a malicious member, a
//! published module's publisher or a local user could do to a node, its operator's
//! terminal and its files, each tried as they would try it, with real `dhost` processes,
//! asserting what the user sees:
//!
//! - times from the network: a publication stamped far in the future is refused (offered,
//!   announced, unpublishing, or kept in a node's store) and holds no name;

mod common;

use common::*;
use dhost::modules::client::send_module;
use dhost::modules::protocol::ModuleRequest;
use dhost::modules::{Digest, ModuleStore, Publication};
use dhost::outcome::FailureKind;
use dhost::rpc::{ConnectionKeys, PoolHandle};
use dhost::wire::{self, Announce};
use std::net::SocketAddrV4;
use std::path::PathBuf;
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
    let (_, soon) = kv_publication(dhost::modules::now_ms() + 90_000);
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
        name: "mallory".into(),
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
