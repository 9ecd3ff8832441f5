//! End-to-end tests of a node serving mailboxes on its own TCP port beside its calls
//! (`dipc` and `dipcrm` are tested in tests/dipc.rs).

mod common;
mod text_client;

use common::*;
use std::net::SocketAddr;
use text_client::Client;

#[test]
fn a_node_serves_mailboxes_and_calls_on_one_port() {
    let group = unique_group();
    let kv = guest("kv");
    let args = node_args(
        "boxes",
        group,
        &[
            "--mailboxes",
            "2",
            "--mailbox-size",
            "1",
            kv.to_str().unwrap(),
        ],
    );
    let node = Dhost::start(&args);
    node.wait_stderr("the node to be ready", |err| {
        err.contains("calls on 127.0.0.1:")
    });
    let err = node.stderr();
    let at = err.find("calls on ").unwrap() + "calls on ".len();
    let end = err[at..].find(char::is_whitespace).unwrap();
    let addr: SocketAddr = err[at..at + end].parse().unwrap();
    let mut c = Client::connect(addr);
    assert_eq!(c.write(1, b"on the node"), "OK");
    assert_eq!(c.read(1).unwrap(), b"on the node");
    let (status, out, err) = client_output("call", group, &["boxes", "dhost:kv/store#keys"]);
    assert!(status.success(), "{err}");
    assert_eq!(out.trim(), "[]");

    // A guest on another node reads and writes them (dstc:node/mailboxes), and a text
    // client sees what it wrote.
    let client = guest("mailbox-client");
    let run_client = |name: &str, extra: &[&str], ops: &[&str]| {
        let mut all: Vec<&str> = extra.to_vec();
        all.push(client.to_str().unwrap());
        all.push("--");
        all.extend(ops);
        let args = node_args(name, group, &all);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        dhost_output(&args)
    };
    let (status, out, err) = run_client(
        "writer",
        &[],
        &[
            "--node",
            "boxes",
            "read",
            "1",
            "write",
            "0",
            "from a guest",
            "read",
            "0",
        ],
    );
    assert!(status.success(), "{err}");
    assert_eq!(out, "on the node\nok\nfrom a guest\n");
    assert_eq!(c.read(0).unwrap(), b"from a guest");
    // Failures are values: no such mailbox, no such node, no mailboxes on this node.
    let (status, out, _) = run_client("writer", &[], &["--node", "boxes", "read", "7"]);
    assert_eq!(status.code(), Some(1));
    assert_eq!(
        out,
        "error: bad-arguments: no mailbox 7: mailboxes are numbered 0 to 1\n"
    );
    let (_, out, _) = run_client("writer", &[], &["--node", "nobody", "read", "0"]);
    assert_eq!(
        out,
        "error: no-server: no node named nobody is on the group\n"
    );
    let (_, out, _) = run_client("writer", &[], &["read", "0"]);
    assert_eq!(
        out,
        "error: no-server: this node (writer) serves no mailboxes (dhost run --mailboxes)\n"
    );
    // A guest uses its own node's mailboxes without a network round trip.
    let (status, out, err) = run_client(
        "local",
        &["--mailboxes", "1", "--mailbox-size", "1"],
        &["write", "0", "mine", "read", "0"],
    );
    assert!(status.success(), "{err}");
    assert_eq!(out, "ok\nmine\n");
}

#[test]
fn a_guests_jail_says_which_mailboxes_of_which_nodes_it_may_use() {
    let group = unique_group();
    let node = Dhost::start(&node_args(
        "store",
        group,
        &["--mailboxes", "2", "--mailbox-size", "1"],
    ));
    node.wait_stderr("the node to be ready", |err| {
        err.contains("calls on 127.0.0.1:")
    });
    let mut c = Client::connect(tcp_port(&node));
    assert_eq!(c.write(0, b"kept"), "OK");
    let client = guest("mailbox-client");
    let run_client = |policy: &str, ops: &[&str]| {
        let jail = scratch_file("mailbox-jail", "jail.toml", policy);
        let mut all = vec![
            "--mailboxes",
            "1",
            "--mailbox-size",
            "1",
            "--jail",
            jail.to_str().unwrap(),
            client.to_str().unwrap(),
            "--",
        ];
        all.extend(ops);
        let args = node_args("client", group, &all);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        dhost_output(&args)
    };
    // None: neither this node's mailboxes nor another's, read or written.
    let none = "[guest.mailbox-client]\nmailboxes = []\n";
    let (status, out, err) = run_client(none, &["write", "0", "x", "read", "0"]);
    assert_eq!(status.code(), Some(1));
    assert_eq!(
        out,
        "error: refused: the jail of guest mailbox-client does not allow it to write mailbox \
         0 of this node (its `mailboxes` list)\n\
         error: refused: the jail of guest mailbox-client does not allow it to read mailbox 0 \
         of this node (its `mailboxes` list)\n"
    );
    assert!(
        err.contains("guest mailbox-client: refused to write mailbox 0 of this node"),
        "{err}"
    );
    let (_, out, _) = run_client(none, &["--node", "store", "write", "0", "overwritten"]);
    assert!(out.starts_with("error: refused:"), "{out}");
    assert_eq!(c.read(0).unwrap(), b"kept", "nothing reached the store");
    // Its own node's, read-only; the store's, read and write.
    let some = "[guest.mailbox-client]\nmailboxes = [\"0\", \"1@store:rw\"]\n";
    let (_, out, _) = run_client(some, &["read", "0", "write", "0", "x"]);
    assert!(
        out.starts_with(
            "\nerror: refused: the jail of guest mailbox-client does not allow it to write \
             mailbox 0 of this node"
        ),
        "an empty mailbox read, then the write refused: {out:?}"
    );
    let (status, out, err) = run_client(some, &["--node", "store", "write", "1", "granted"]);
    assert!(status.success(), "{err}");
    assert_eq!(out, "ok\n");
    assert_eq!(c.read(1).unwrap(), b"granted");
    let (_, out, _) = run_client(some, &["--node", "store", "read", "0"]);
    assert!(
        out.starts_with("error: refused:"),
        "mailbox 0 of store: {out}"
    );
}
