//! End-to-end tests of membership and the short-lived CLI clients: `dhost peers` sees the
//! nodes of a group come and go, `dhost cast` reaches every node that serves a function,
//! and a second node with a name already in use is refused.

mod common;

use common::*;
use std::time::{Duration, Instant};

#[test]
fn peers_come_and_go_casts_arrive_and_names_are_unique() {
    let group = unique_group();
    let chat = guest("chat");
    let chat = chat.to_str().unwrap();
    let mut nodes: Vec<Dhost> = ["one", "two", "three"]
        .iter()
        .map(|n| Dhost::start(&node_args(n, group, &[chat])))
        .collect();
    for node in &mut nodes {
        node.wait_stdout("the prompt", |out| out.contains("Username: "));
        node.type_line("user");
    }

    let start = Instant::now();
    let (status, out, err) = client_output("peers", group, &[]);
    let took = start.elapsed();
    assert!(status.success(), "{err}");
    assert_eq!(peer_names(&out), ["one", "three", "two"], "{out}");
    assert!(out.contains("dhost:chat/chat#message"), "{out}");
    assert!(took < Duration::from_secs(1), "peers answered in {took:?}");

    let (status, _, err) = client_output(
        "cast",
        group,
        &["dhost:chat/chat#message", r#""cli""#, r#""héllo, wörld""#],
    );
    assert!(status.success(), "{err}");
    assert!(
        err.contains("cast dhost:chat/chat#message to one, three, two"),
        "{err}"
    );
    for node in &nodes {
        node.wait_stdout("the cast", |out| out.contains("[cli]: héllo, wörld"));
    }
    let (status, _, err) = client_output("cast", group, &["dhost:nope/nothing#here"]);
    assert!(!status.success());
    assert!(err.contains("no node on"), "{err}");
    assert!(err.contains("serves dhost:nope/nothing#here"), "{err}");
    let (status, _, err) = client_output(
        "cast",
        group,
        &["dhost:chat/chat#message", "bare", r#""x""#],
    );
    assert!(!status.success());
    assert!(err.contains("argument 1 `bare` is not JSON"), "{err}");

    // A second node named `two` is refused before it runs its guests.
    let (status, out, err) = {
        let args = node_args("two", group, &[chat]);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        dhost_output(&args)
    };
    assert!(!status.success());
    assert!(
        err.contains("the name `two` is taken by the node at 127.0.0.1:"),
        "{err}"
    );
    assert!(!out.contains("Username"), "no guest ran: {out}");

    // A node that stops cleanly says goodbye and is gone at once...
    assert!(nodes[2].interrupt().success());
    let (_, out, _) = client_output("peers", group, &[]);
    assert_eq!(peer_names(&out), ["one", "two"], "{out}");
    nodes[0].wait_stderr("the goodbye", |err| {
        err.lines()
            .any(|l| l.contains("peer three (127.0.0.1:") && l.ends_with(") left"))
    });

    // ... and one that dies is forgotten after a few missed announcements.
    let killed = Instant::now();
    drop(nodes.remove(1)); // SIGKILL: no goodbye
    nodes[0].wait_stderr("the expiry", |err| {
        err.lines().any(|l| {
            l.contains("peer two (127.0.0.1:")
                && l.ends_with(") gone: nothing heard from it for 3s 500ms")
        })
    });
    let forgotten = killed.elapsed();
    eprintln!("a killed node was forgotten after {forgotten:?}");
    let (_, out, _) = client_output("peers", group, &[]);
    assert_eq!(peer_names(&out), ["one"], "{out}");
    assert!(nodes[0].interrupt().success());

    let (status, out, err) = client_output("peers", group, &[]);
    assert!(status.success());
    assert_eq!(out, "");
    assert!(err.contains("no node answered"), "{err}");
}
