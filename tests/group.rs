//! End-to-end tests of what guests see of the group (`dstc:node/group` and
//! `group-events`): a guest that hears peers join and leave, in order, and asks who serves
//! a function as nodes that serve it start and stop; and a guest whose jail forbids a
//! function, which learns nothing of who serves it.

mod common;

use common::*;
use std::net::SocketAddrV4;

const GET: &str = "dhost:kv/store#get";

/// A node named `name` running the group watcher (and `extra` options and guests).
fn watcher(name: &str, group: SocketAddrV4, extra: &[&str]) -> Dhost {
    let watch = guest("group-watch");
    let mut args: Vec<&str> = extra.to_vec();
    args.push(watch.to_str().unwrap());
    let node = Dhost::start(&node_args(name, group, &args));
    node.wait_stderr("the node to be ready", |err| err.contains(") ready in"));
    node
}

/// A node named `name` serving the kv store.
fn kv_node(name: &str, group: SocketAddrV4) -> Dhost {
    let kv = guest("kv");
    let node = Dhost::start(&node_args(name, group, &[kv.to_str().unwrap()]));
    node.wait_stderr("the node to be ready", |err| err.contains(") ready in"));
    node
}

/// Types `line` on the watcher and waits for its answer, the line starting with `prefix`
/// that comes after what it printed before.
fn ask(watch: &mut Dhost, line: &str, prefix: &str) -> String {
    let before = watch.stdout().len();
    watch.type_line(line);
    watch.wait_stdout(line, |out| {
        out[before..].lines().any(|l| l.starts_with(prefix))
    });
    let out = watch.stdout();
    out[before..]
        .lines()
        .find(|l| l.starts_with(prefix))
        .unwrap()
        .to_string()
}

/// The `group: ...` lines the watcher printed, in order.
fn changes(watch: &Dhost) -> Vec<String> {
    watch
        .stdout()
        .lines()
        .filter_map(|l| l.strip_prefix("group: "))
        .map(str::to_string)
        .collect()
}

#[test]
fn a_guest_hears_peers_join_and_leave_in_order_and_sees_who_serves_a_function() {
    let group = unique_group();
    let mut watch = watcher("watch", group, &[]);
    let servers = format!("servers {GET}");
    let of = format!("servers of {GET}: ");
    assert_eq!(ask(&mut watch, &servers, &of), format!("{of}none"));
    assert_eq!(ask(&mut watch, "peers", "peers: "), "peers: none");

    let mut a = kv_node("a", group);
    watch.wait_stdout("a joining", |out| out.contains("group: joined a"));
    let mut b = kv_node("b", group);
    watch.wait_stdout("b joining", |out| out.contains("group: joined b"));
    assert_eq!(ask(&mut watch, &servers, &of), format!("{of}a, b"));
    let peers = ask(&mut watch, "peers", "peers: ");
    assert!(
        peers.starts_with("peers: a (") && peers.contains("), b ("),
        "{peers}"
    );
    assert!(peers.contains(" functions, 0 connections)"), "{peers}");

    // a stops cleanly (a goodbye), b dies (it falls silent, and is forgotten).
    assert!(a.interrupt().success());
    watch.wait_stdout("a leaving", |out| out.contains("group: left a"));
    assert_eq!(ask(&mut watch, &servers, &of), format!("{of}b"));
    let peers = ask(&mut watch, "peers", "peers: ");
    assert!(
        peers.starts_with("peers: b (") && !peers.contains("a ("),
        "{peers}"
    );
    b.kill();
    watch.wait_stdout("b falling silent", |out| out.contains("group: left b"));
    assert_eq!(ask(&mut watch, &servers, &of), format!("{of}none"));
    assert_eq!(
        changes(&watch),
        ["joined a", "joined b", "left a", "left b"],
        "{}",
        watch.stdout()
    );
    assert!(watch.interrupt().success());
}

#[test]
fn this_node_comes_first_among_the_servers_of_what_its_own_guests_serve() {
    let group = unique_group();
    let kv = guest("kv");
    let mut watch = watcher("watch", group, &[kv.to_str().unwrap()]);
    let mut a = kv_node("a", group);
    watch.wait_stdout("a joining", |out| out.contains("group: joined a"));
    let servers = format!("servers {GET}");
    let of = format!("servers of {GET}: ");
    assert_eq!(ask(&mut watch, &servers, &of), format!("{of}watch, a"));
    assert!(a.interrupt().success());
    assert!(watch.interrupt().success());
}

#[test]
fn a_guest_whose_jail_forbids_a_function_learns_nothing_of_who_serves_it() {
    let group = unique_group();
    let jail = scratch_file(
        "group-jail",
        "jail.toml",
        "[guest.group-watch]\nsend = [\"dhost:kv/store#keys\"]\n",
    );
    let mut watch = watcher("watch", group, &["--jail", jail.to_str().unwrap()]);
    let mut a = kv_node("a", group);
    watch.wait_stdout("a joining", |out| out.contains("group: joined a"));
    // It may send `keys`: it learns who serves it. Not `get`: nobody, as far as it knows.
    let keys = "dhost:kv/store#keys";
    assert_eq!(
        ask(&mut watch, &format!("servers {keys}"), "servers of "),
        format!("servers of {keys}: a")
    );
    assert_eq!(
        ask(&mut watch, &format!("servers {GET}"), "servers of "),
        format!("servers of {GET}: none")
    );
    // And a peer's functions are those it may call.
    assert_eq!(
        ask(&mut watch, "peers", "peers: "),
        "peers: a (1 functions, 0 connections)"
    );
    assert!(a.interrupt().success());
    assert!(watch.interrupt().success());
}

#[test]
fn a_call_to_a_node_that_falls_silent_fails_as_peer_gone_when_it_leaves() {
    let group = unique_group();
    let b = Dhost::start(&node_args(
        "b",
        group,
        &["--mailboxes", "1", "--mailbox-size", "1"],
    ));
    b.wait_stderr("b to be ready", |err| err.contains(") ready in"));
    // A call times out after 20 s; b falls silent, and is forgotten after 3.5 s.
    let mut watch = watcher("watch", group, &["--call-timeout", "20s"]);
    // (b was up before the watcher: it is among the peers from the start, no change.)
    watch.wait_stderr("b known", |err| err.contains("peer b (127.0.0.1:"));
    assert_eq!(ask(&mut watch, "read b 0", "read b 0: "), "read b 0: ");
    b.signal("STOP");
    let started = std::time::Instant::now();
    let answer = ask(&mut watch, "read b 0", "read b 0: ");
    let took = started.elapsed();
    b.signal("CONT");
    eprintln!("a call to a node that stopped answering failed after {took:?}: {answer}");
    assert!(
        answer.starts_with("read b 0: error peer-gone: node b (")
            && answer.contains("left the group"),
        "{answer}"
    );
    assert!(
        took < std::time::Duration::from_secs(10),
        "the call waited {took:?}, as for its 20 s timeout"
    );
    assert!(changes(&watch).contains(&"left b".to_string()));
    assert!(watch.interrupt().success());
}

/// The last `group: ...` line the native plugin printed.
fn last_answer(node: &Dhost) -> String {
    node.stdout()
        .lines()
        .rev()
        .find(|l| l.starts_with("group: peers="))
        .unwrap_or("")
        .to_string()
}

#[test]
fn a_native_plugin_asks_as_dstc_and_rot_programs_do() {
    let group = unique_group();
    let plugin = guest_file("group_ask.so");
    let asker = Dhost::start(&node_args(
        "asker",
        group,
        &["--native", plugin.to_str().unwrap()],
    ));
    let says = |what: &str, want: &str| {
        asker.wait_stdout(what, |_| last_answer(&asker) == want);
    };
    says(
        "nothing yet",
        "group: peers=0 connected(b)=-1 get=0 message=0",
    );
    let mut b = kv_node("b", group);
    says(
        "b serving get",
        "group: peers=1 connected(b)=0 get=1 message=0",
    );
    let chat = guest("chat");
    let mut c = Dhost::start(&node_args("c", group, &[chat.to_str().unwrap()]));
    says(
        "c serving message",
        "group: peers=2 connected(b)=0 get=1 message=1",
    );
    assert!(b.interrupt().success());
    says("b gone", "group: peers=1 connected(b)=-1 get=0 message=1");
    c.kill();
    drop(asker);
}
