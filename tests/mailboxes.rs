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
