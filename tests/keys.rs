//! End-to-end tests of group keys: `dhost keygen`; keyed nodes talk and ignore unkeyed
//! ones; an outsider (without the key, or with another) can neither call, nor take a
//! node's name, nor evict it, and replays of captured datagrams are refused, each attempt
//! counted; `--encrypt` hides calls; keys change over with nodes restarted one at a time;
//! a node off loopback refuses to start without a key.

mod common;

use ciborium::Value;
use common::*;
use dhost::auth::{Gate, Keyring};
use dhost::wire;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, UdpSocket};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// A key file holding the keys of `files`, in order (a change-over's file).
fn key_file_of(tag: &str, name: &str, files: &[&Path]) -> PathBuf {
    let text: String = files
        .iter()
        .map(|f| std::fs::read_to_string(f).unwrap())
        .collect();
    let path = scratch_file(tag, name, text);
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    path
}

/// A chat node named `name` on `group`, with `key` (if any) and `extra` options; its user
/// is `user`.
fn chat_node(
    name: &str,
    user: &str,
    group: SocketAddrV4,
    key: Option<&Path>,
    extra: &[&str],
) -> Dhost {
    let chat = guest("chat");
    let mut args: Vec<String> = Vec::new();
    if let Some(key) = key {
        args.extend(["--key-file".to_string(), key.to_str().unwrap().to_string()]);
    }
    args.extend(extra.iter().map(|s| s.to_string()));
    args.push(chat.to_str().unwrap().to_string());
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let mut node = Dhost::start(&node_args(name, group, &args));
    node.wait_stdout("the prompt", |out| out.contains("Username: "));
    node.type_line(user);
    node
}

/// The sender id a node says it has when it is ready.
fn node_id(node: &Dhost) -> u64 {
    node.wait_stderr("ready", |err| err.contains(") ready in"));
    let err = node.stderr();
    let line = err.lines().find(|l| l.contains(") ready in")).unwrap();
    let hex = line.split('(').nth(1).unwrap().split(')').next().unwrap();
    u64::from_str_radix(hex, 16).unwrap()
}

/// `dhost peers` on `group` with `key`: the names listed, and stderr.
fn peers_with(group: SocketAddrV4, key: Option<&Path>) -> (Vec<String>, String) {
    let mut args = vec![];
    if let Some(key) = key {
        args.extend(["--key-file", key.to_str().unwrap()]);
    }
    let (status, out, err) = client_output("peers", group, &args);
    assert!(status.success(), "{err}");
    (peer_names(&out), err)
}

/// Waits until `dhost peers` with `key` lists exactly `names`.
fn wait_for_peers(group: SocketAddrV4, key: Option<&Path>, names: &[&str]) {
    let deadline = Instant::now() + PATIENCE;
    loop {
        let (seen, err) = peers_with(group, key);
        if seen == names {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "peers {seen:?}, not {names:?}: {err}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// A socket on the group that hears every datagram sent to it, as a node would.
fn eavesdrop(group: SocketAddrV4) -> UdpSocket {
    let socket = dhost::net::Group {
        addr: group,
        iface: Ipv4Addr::LOCALHOST,
        ttl: 0,
    }
    .receiver()
    .expect("a loopback multicast receiver");
    socket
        .set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    socket
}

/// Every datagram the eavesdropper heard so far, with its source.
fn heard(socket: &UdpSocket) -> Vec<(Vec<u8>, SocketAddr)> {
    let mut all = Vec::new();
    let mut buf = vec![0u8; 65_536];
    while let Ok((len, from)) = socket.recv_from(&mut buf) {
        all.push((buf[..len].to_vec(), from));
    }
    all
}

/// A datagram of `sender`'s (sequenced with `seq`, or control) carrying `frames`.
fn datagram(sender: u64, seq: Option<u64>, frames: &[Vec<u8>]) -> Vec<u8> {
    let mut d = Vec::new();
    wire::encode_header(sender, seq, &mut d);
    for f in frames {
        d.extend_from_slice(f);
    }
    d
}

fn chat_call(user: &str, text: &str) -> Vec<u8> {
    let mut frame = Vec::new();
    let args = [Value::Text(user.into()), Value::Text(text.into())];
    wire::encode_call(1, "dhost:chat/chat#message", &args, &mut frame);
    frame
}

fn announce(name: &str) -> Vec<u8> {
    let mut frame = Vec::new();
    wire::encode_announce(
        &wire::Announce {
            presence: wire::Presence {
                name: name.to_string(),
                uptime_ms: 3_600_000,
                functions: vec!["dhost:chat/chat#message".to_string()],
                tcp: None,
                links: vec![],
            },
            streams: vec![],
            refused: vec![],
            modules: vec![],
        },
        &mut frame,
    );
    frame
}

fn goodbye() -> Vec<u8> {
    let mut frame = Vec::new();
    wire::encode_goodbye(&mut frame);
    frame
}

/// The counts of a node's closing summary: (unauthenticated, replayed).
fn refused_in_summary(err: &str) -> (u64, u64) {
    let line = err
        .lines()
        .find(|l| l.contains(" stopped: "))
        .expect("a summary");
    let number_before = |what: &str| -> u64 {
        let at = line
            .find(what)
            .unwrap_or_else(|| panic!("{what} in {line}"));
        line[..at]
            .trim_end()
            .rsplit(' ')
            .next()
            .unwrap()
            .parse()
            .unwrap()
    };
    (
        number_before(" unauthenticated"),
        number_before(" replayed"),
    )
}

#[test]
fn keygen_makes_a_secret_file_and_keeps_existing_ones() {
    let path = keygen("keys-keygen", "group.key");
    use std::os::unix::fs::PermissionsExt;
    let meta = std::fs::metadata(&path).unwrap();
    assert_eq!(meta.permissions().mode() & 0o777, 0o600);
    let text = std::fs::read_to_string(&path).unwrap();
    let line = text.lines().find(|l| !l.starts_with('#')).unwrap();
    assert!(line.starts_with("dhost-group-key 1 "), "{text}");
    assert_eq!(line.len(), "dhost-group-key 1 ".len() + 64);

    let (status, _, err) = dhost_output(&["keygen", path.to_str().unwrap()]);
    assert!(!status.success());
    assert!(err.contains("exists: give --force"), "{err}");
    assert_eq!(std::fs::read_to_string(&path).unwrap(), text, "kept");
    let (status, _, err) = dhost_output(&["keygen", "--force", path.to_str().unwrap()]);
    assert!(status.success(), "{err}");
    assert_ne!(std::fs::read_to_string(&path).unwrap(), text, "replaced");

    // A key file others may read is refused, saying how to fix it.
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
    let group = unique_group();
    let (status, _, err) = client_output("peers", group, &["--key-file", path.to_str().unwrap()]);
    assert!(!status.success());
    assert!(
        err.contains("may be read by other users (mode 644)"),
        "{err}"
    );
    assert!(err.contains("chmod 600"), "{err}");
}

#[test]
fn a_node_off_loopback_needs_a_key() {
    // (Refused before any socket is opened: nothing leaves this machine.)
    let (status, _, err) = dhost_output(&["run", "--name", "lan", "--iface", "192.0.2.1"]);
    assert!(!status.success());
    assert!(err.contains("192.0.2.1 is not a loopback address"), "{err}");
    assert!(err.contains("dhost keygen"), "{err}");
    assert!(err.contains("--insecure"), "{err}");
    let (status, _, err) = dhost_output(&["run", "--name", "x", "--listen", "0.0.0.0:0"]);
    assert!(!status.success());
    assert!(
        err.contains("--listen 0.0.0.0:0 is not a loopback address"),
        "{err}"
    );
    let (status, _, err) = dhost_output(&["run", "--name", "x", "--encrypt"]);
    assert!(!status.success());
    assert!(err.contains("--encrypt needs the group's key"), "{err}");
}

#[test]
fn keyed_nodes_talk_and_ignore_an_unkeyed_one() {
    let tag = "keys-mixed";
    let key = keygen(tag, "group.key");
    let group = unique_group();
    let mut a = chat_node("a", "ann", group, Some(&key), &[]);
    let mut b = chat_node("b", "bob", group, Some(&key), &[]);
    let mut c = chat_node("c", "cid", group, None, &[]);
    wait_for_peers(group, Some(&key), &["a", "b"]);
    let (seen, err) = peers_with(group, None);
    // (The keyed nodes ignore its query: it sees only what answers it.)
    assert_eq!(
        seen,
        ["c"],
        "the unkeyed client sees the unkeyed node only: {err}"
    );

    a.type_line("hello from a");
    c.type_line("hello from c");
    b.wait_stdout("a's line", |out| out.contains("[ann]: hello from a"));
    c.wait_stdout("c's own line", |out| out.contains("[cid]: hello from c"));
    b.type_line("hello from b");
    a.wait_stdout("b's line", |out| out.contains("[bob]: hello from b"));
    // The keyed nodes say once that they ignore c.
    a.wait_stderr("c ignored", |err| {
        err.contains("ignoring datagrams from 127.0.0.1:") && err.contains("it carries no tag")
    });
    // Once per source address (c's, and the unkeyed client's).
    let mut sources: Vec<&str> = Vec::new();
    let a_err = a.stderr();
    for line in a_err.lines().filter(|l| l.contains("it carries no tag")) {
        let source = line.split("ignoring datagrams from ").nth(1).unwrap();
        let source = source.split(": ").next().unwrap();
        assert!(!sources.contains(&source), "said twice: {a_err}");
        sources.push(source);
    }
    assert!(c.stderr().contains("it carries a tag"), "{}", c.stderr());

    assert!(c.interrupt().success());
    assert!(b.interrupt().success());
    assert!(a.interrupt().success());
    for (node, mine) in [(&a, "ann"), (&b, "bob")] {
        assert!(!node.stdout().contains("[cid]"), "{}", node.stdout());
        let (unauthenticated, _) = refused_in_summary(&node.stderr());
        assert!(unauthenticated > 0, "{mine}: {}", node.stderr());
    }
    assert!(!c.stdout().contains("[ann]") && !c.stdout().contains("[bob]"));
}

#[test]
fn outsiders_cannot_call_rename_evict_or_replay() {
    let tag = "keys-outsiders";
    let key = keygen(tag, "group.key");
    let other = keygen(tag, "other.key");
    let group = unique_group();
    let ear = eavesdrop(group);
    let mut a = chat_node("a", "ann", group, Some(&key), &[]);
    let mut b = chat_node("b", "bob", group, Some(&key), &[]);
    let b_id = node_id(&b);
    wait_for_peers(group, Some(&key), &["a", "b"]);
    b.type_line("hello from b");
    a.wait_stdout("b's line", |out| out.contains("[bob]: hello from b"));
    // Everything b sent so far, as an outsider on the LAN captures it.
    let captured: Vec<Vec<u8>> = heard(&ear)
        .into_iter()
        .filter(|(d, _)| {
            let mut bytes = &d[..];
            wire::read_header(&mut bytes).is_ok_and(|h| h.sender == b_id)
        })
        .map(|(d, _)| d)
        .collect();
    assert!(captured.len() >= 2, "b's announcements and its call");

    let socket = group_sender(group);
    let to = SocketAddr::V4(group);
    let outsider: u64 = 0x0bad_0bad_0bad_0bad;
    let forgeries = |gate: &Gate| {
        for d in [
            datagram(outsider, Some(1), &[chat_call("mallory", "forged call")]),
            datagram(
                b_id,
                Some(1_000),
                &[chat_call("mallory", "forged in b's name")],
            ),
            datagram(outsider, None, &[announce("b")]),
            datagram(b_id, None, &[announce("mallory")]),
            datagram(b_id, None, &[goodbye()]),
        ] {
            dhost::net::send_sealed(gate, &socket, &d, to, false).unwrap();
        }
    };
    // Without a key, and with another group's key.
    forgeries(&Gate::new(None, false));
    let wrong = Keyring::load(&other).unwrap();
    forgeries(&Gate::new(Some(wrong), false));
    // An authentic datagram with one byte of its frames changed.
    let mut altered = captured.last().unwrap().clone();
    let last = altered.len() - 1;
    altered[last] ^= 1;
    socket.send(&altered).unwrap();
    let unauthenticated_sent = 5 + 5 + 1;
    // Replays of everything captured.
    for d in &captured {
        socket.send(d).unwrap();
    }

    // Nothing ran, nobody was renamed or evicted: a and b still talk.
    std::thread::sleep(Duration::from_millis(300));
    wait_for_peers(group, Some(&key), &["a", "b"]);
    a.type_line("still here");
    b.wait_stdout("a's line", |out| out.contains("[ann]: still here"));
    b.type_line("me too");
    a.wait_stdout("b's second line", |out| out.contains("[bob]: me too"));
    assert!(b.stdout().matches("[ann]: still here").count() == 1);
    // (Announcements carry the counts: wait for one made after the last attempt.)
    std::thread::sleep(Duration::from_millis(1200));
    let (status, refused_table, err) = client_output(
        "peers",
        group,
        &["--refused", "--key-file", key.to_str().unwrap()],
    );
    assert!(status.success(), "{err}");
    assert!(a.interrupt().success());
    assert!(b.interrupt().success());
    let out = a.stdout();
    assert!(!out.contains("mallory"), "{out}");
    assert_eq!(
        out.matches("[bob]: hello from b").count(),
        1,
        "run once: {out}"
    );
    let err = a.stderr();
    assert!(!err.contains("is taken"), "{err}");
    assert!(
        !err.lines()
            .any(|l| l.contains("peer b (") && l.ends_with(") left")),
        "b never left: {err}"
    );
    assert!(err.contains("its tag is wrong"), "{err}");
    assert!(err.contains("which this node does not hold"), "{err}");
    assert!(err.contains("(a replay)"), "{err}");
    let (unauthenticated, replayed) = refused_in_summary(&err);
    assert!(
        err.contains(&format!(
            "refused from 127.0.0.1:{}: {unauthenticated_sent} unauthenticated, {} replayed",
            socket.local_addr().unwrap().port(),
            captured.len()
        )),
        "{err}"
    );
    assert_eq!(unauthenticated, unauthenticated_sent, "{err}");
    assert_eq!(replayed, captured.len() as u64, "{err}");
    // `dhost peers --refused`, asked before a stopped, said the same, by source.
    let section = refused_table.split("SOURCE").nth(1).unwrap_or_default();
    let a_row = section
        .lines()
        .find(|l| l.starts_with("a ") && l.contains("127.0.0.1:"))
        .unwrap_or_else(|| panic!("{refused_table}"));
    let numbers: Vec<u64> = a_row
        .split_whitespace()
        .skip(2)
        .map(|n| n.parse().unwrap())
        .collect();
    assert_eq!(
        numbers,
        [unauthenticated_sent, captured.len() as u64],
        "{refused_table}"
    );
}

#[test]
fn encrypted_groups_talk_and_hide_their_calls() {
    let tag = "keys-encrypt";
    let key = keygen(tag, "group.key");
    let group = unique_group();
    let ear = eavesdrop(group);
    let mut a = chat_node("a", "ann", group, Some(&key), &["--encrypt"]);
    let mut b = chat_node("b", "bob", group, Some(&key), &[]);
    wait_for_peers(group, Some(&key), &["a", "b"]);
    a.type_line("a secret plan");
    b.wait_stdout("a's line", |out| out.contains("[ann]: a secret plan"));
    // b sends authenticated but readable datagrams; a encrypted ones.
    b.type_line("an open letter");
    a.wait_stdout("b's line", |out| out.contains("[bob]: an open letter"));
    let all: Vec<u8> = heard(&ear).into_iter().flat_map(|(d, _)| d).collect();
    let find = |needle: &str| all.windows(needle.len()).any(|w| w == needle.as_bytes());
    assert!(!find("a secret plan"), "encrypted on the wire");
    assert!(find("an open letter"), "only authenticated on the wire");
    assert!(a.interrupt().success());
    assert!(b.interrupt().success());
}

#[test]
fn keys_change_over_with_nodes_restarted_one_at_a_time() {
    let tag = "keys-rotation";
    let old = keygen(tag, "old.key");
    let new = keygen(tag, "new.key");
    let both_old_first = key_file_of(tag, "old-new.key", &[&old, &new]);
    let both_new_first = key_file_of(tag, "new-old.key", &[&new, &old]);
    let group = unique_group();
    let names = ["a", "b"];
    let users = ["ann", "bob"];
    let mut nodes: Vec<Dhost> = (0..2)
        .map(|i| chat_node(names[i], users[i], group, Some(&old), &[]))
        .collect();
    let mut line = 0;
    // Each step restarts one node with the next key file; every node then says a line,
    // and every other node must print it.
    let steps: [(usize, &Path); 6] = [
        (0, &both_old_first),
        (1, &both_old_first),
        (0, &both_new_first),
        (1, &both_new_first),
        (0, &new),
        (1, &new),
    ];
    for (i, file) in steps {
        assert!(nodes[i].interrupt().success());
        nodes[i] = chat_node(names[i], users[i], group, Some(file), &[]);
        // (A client with the restarted node's file is understood by every node.)
        wait_for_peers(group, Some(file), &names);
        for speaker in 0..2 {
            line += 1;
            let text = format!("line {line}");
            nodes[speaker].type_line(&text);
            let heard = format!("[{}]: {text}", users[speaker]);
            let listener = &nodes[1 - speaker];
            listener.wait_stdout(&heard, |out| out.contains(&heard));
        }
    }
    for node in &mut nodes {
        assert!(node.interrupt().success());
        let (unauthenticated, replayed) = refused_in_summary(&node.stderr());
        assert_eq!((unauthenticated, replayed), (0, 0), "{}", node.stderr());
    }
}

/// Writes `frame` behind its 4-byte length.
fn write_frame(stream: &mut std::net::TcpStream, frame: &[u8]) {
    use std::io::Write;
    let _ = stream.write_all(&(frame.len() as u32).to_be_bytes());
    let _ = stream.write_all(frame);
}

/// What the node sends back before it closes `stream` (within a few seconds).
fn answer_then_close(stream: &mut std::net::TcpStream) -> Vec<u8> {
    use std::io::Read;
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let mut all = Vec::new();
    let _ = stream.read_to_end(&mut all);
    all
}

#[test]
fn only_key_holders_get_through_the_tcp_port() {
    use dhost::rpc::frame::{self, Handshake, MAGIC, MAGIC_KEYED};
    use std::io::Write;
    let tag = "keys-tcp";
    let key = keygen(tag, "group.key");
    let key_arg = key.to_str().unwrap();
    let group = unique_group();
    let kv = guest("kv");
    let mut node = Dhost::start(&node_args(
        "store",
        group,
        &["--key-file", key_arg, kv.to_str().unwrap()],
    ));
    node.wait_stderr("ready", |err| err.contains("calls on 127.0.0.1:"));
    let port = tcp_port(&node);
    let call = |extra: &[&str], function: &str, args: &[&str]| {
        let mut all: Vec<&str> = extra.to_vec();
        all.extend(["store", function]);
        all.extend(args);
        client_output("call", group, &all)
    };

    // Members call, with or without encryption.
    let (status, _, err) = client_output(
        "cast",
        group,
        &[
            "--key-file",
            key_arg,
            "dhost:kv/store#put",
            r#""k""#,
            r#""v""#,
        ],
    );
    assert!(status.success(), "{err}");
    for extra in [
        &["--key-file", key_arg][..],
        &["--key-file", key_arg, "--encrypt"],
    ] {
        let (status, out, err) = call(extra, "dhost:kv/store#get", &[r#""k""#]);
        assert!(status.success(), "{extra:?}: {err}");
        assert_eq!(out.trim(), r#""v""#);
    }

    // Outsiders send well-formed requests: without the handshake...
    let request =
        frame::encode_request(1, "dhost:kv/store#put", &["evil".into(), "1".into()], false);
    let mut s = std::net::TcpStream::connect(port).unwrap();
    s.write_all(&MAGIC).unwrap();
    write_frame(&mut s, &frame::encode_hello(7, None));
    write_frame(&mut s, &request);
    assert_eq!(
        answer_then_close(&mut s),
        MAGIC_KEYED,
        "told a key is needed, then closed"
    );
    // ... with another key...
    let mut s = std::net::TcpStream::connect(port).unwrap();
    s.write_all(&MAGIC_KEYED).unwrap();
    let challenge = |key: [u8; 4]| Handshake::Challenge {
        key,
        nonce: [1; 32],
        encrypt: false,
    };
    write_frame(&mut s, &challenge([0xee; 4]).encode());
    write_frame(&mut s, &request);
    let answer = answer_then_close(&mut s);
    assert!(answer.starts_with(&MAGIC_KEYED));
    let refusal = Handshake::decode(&answer[8..]).unwrap();
    assert!(
        matches!(&refusal, Handshake::Refusal(why) if why.contains("which this node does not hold")),
        "{refusal:?}"
    );
    // ... and with the right key id (it is on the wire) but no key: a made-up proof.
    let key_id = Keyring::load(&key).unwrap().sending().id();
    let mut s = std::net::TcpStream::connect(port).unwrap();
    s.write_all(&MAGIC_KEYED).unwrap();
    write_frame(&mut s, &challenge(key_id).encode());
    write_frame(&mut s, &Handshake::Proof([2; 32]).encode());
    write_frame(&mut s, &request);
    let answer = answer_then_close(&mut s);
    assert!(matches!(
        Handshake::decode(&answer[8..]),
        Ok(Handshake::Answer { .. })
    ));

    // Nothing ran; every attempt was counted (connections by address, port 0).
    let (status, out, err) = call(
        &["--key-file", key_arg],
        "dhost:kv/store#get",
        &[r#""evil""#],
    );
    assert!(status.success(), "{err}");
    assert_eq!(out.trim(), "null", "the outsiders' put never ran");
    node.wait_stderr("the refusals", |err| {
        err.contains("its proof is wrong: it does not hold the group key")
    });
    let err = node.stderr();
    assert!(
        err.contains("it has no group key (this node has one)"),
        "{err}"
    );
    std::thread::sleep(Duration::from_millis(1200));
    let (status, table, err) = client_output("peers", group, &["--refused", "--key-file", key_arg]);
    assert!(status.success(), "{err}");
    let section = table.split("SOURCE").nth(1).unwrap_or_default();
    assert!(
        section.lines().any(|l| l.split_whitespace().collect::<Vec<_>>() == ["store", "127.0.0.1:0", "3", "0"]),
        "{table}"
    );

    // A client without the key is told why it cannot reach the node.
    let (status, _, err) = call(&[], "dhost:kv/store#get", &[r#""k""#]);
    assert!(!status.success());
    assert!(
        err.contains("nodes with a group key ignore clients without it"),
        "{err}"
    );
    let (status, _, err) = call(&["--wait", "1500ms"], "dhost:kv/store#get", &[r#""k""#]);
    assert!(!status.success());
    assert!(err.contains("it carries a tag"), "{err}");
    assert!(node.interrupt().success());
}

/// The reply to the text command `command` at `addr`: its first line.
fn text_command(addr: SocketAddr, command: &str) -> String {
    use std::io::{BufRead, Write};
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s.write_all(command.as_bytes()).unwrap();
    let mut line = String::new();
    let _ = std::io::BufReader::new(s).read_line(&mut line);
    line
}

#[test]
fn keyed_mailboxes_take_text_from_this_host_only() {
    let tag = "keys-mailboxes";
    let key = keygen(tag, "group.key");
    let key_arg = key.to_str().unwrap();
    let ns = Netns::new("keymbox");
    // An address that is not loopback, inside the namespace only.
    ns.add_address("10.9.9.9/32");
    let group = unique_group();
    let mut flags = group_flags(group);
    flags.extend(["--key-file", key_arg].map(String::from));
    let mut node_args: Vec<String> = ["-v", "run", "--name", "box", "--listen", "10.9.9.9:0"]
        .map(String::from)
        .to_vec();
    node_args.extend(flags.iter().cloned());
    node_args.extend(["--mailboxes", "2", "--mailbox-size", "1"].map(String::from));
    let mut node = ns.start(&node_args);
    node.wait_stderr("ready", |err| err.contains("calls on 10.9.9.9:"));
    let port = tcp_port(&node);

    // Text from another address than loopback: refused, saying why.
    let reply = ns.run(move || text_command(port, "r 0\n"));
    assert!(
        reply.starts_with("ERR this port has a group key"),
        "{reply:?}"
    );
    assert!(reply.contains("--text-anywhere"), "{reply:?}");
    // Binary requests with the key: served.
    let mut call = ns.dhost_command();
    call.arg("call")
        .args(&flags)
        .args(["box", "dstc:node/mailboxes#read", "0"]);
    let out = call.output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(node.interrupt().success());

    // A mailbox server with a key and --text-anywhere takes text from anywhere.
    let mut server = ns.start(&[
        "-v",
        "mailbox",
        "serve",
        "2",
        "1",
        "7419",
        "1",
        "--bind",
        "10.9.9.9",
        "--key-file",
        key_arg,
        "--text-anywhere",
    ]);
    server.wait_stderr("serving", |err| err.contains("serving"));
    let addr: SocketAddr = "10.9.9.9:7419".parse().unwrap();
    let reply = ns.run(move || text_command(addr, "r 0\n"));
    assert_eq!(reply, "OK 0\r\n");
    server.kill();
}

/// Sends every datagram of `captured` to `group` (on loopback), `rounds` times over
/// `during`, as an outsider replaying what it captured would.
fn replay(group: SocketAddrV4, captured: Vec<Vec<u8>>, during: Duration) {
    let socket = group_sender(group);
    let started = Instant::now();
    while started.elapsed() < during {
        for d in &captured {
            let _ = socket.send(d);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn a_restarted_node_is_neither_stopped_renamed_nor_made_to_run_again_by_replays() {
    let tag = "keys-restart";
    let key = keygen(tag, "group.key");
    let group = unique_group();
    let ear = eavesdrop(group);
    let mut a = chat_node("a", "ann", group, Some(&key), &[]);
    let mut b = chat_node("b", "bob", group, Some(&key), &[]);
    wait_for_peers(group, Some(&key), &["a", "b"]);
    b.type_line("said before the restart");
    a.wait_stdout("b's line", |out| {
        out.contains("[bob]: said before the restart")
    });
    a.type_line("ann was here");
    b.wait_stdout("a's line", |out| out.contains("[ann]: ann was here"));
    // Everything the group carried: a's announcements (its name, a long uptime by the time
    // of the replay) and calls, b's calls.
    let captured: Vec<Vec<u8>> = heard(&ear).into_iter().map(|(d, _)| d).collect();
    assert!(captured.len() >= 4, "announcements and calls");

    // a dies and comes back at once, while an outsider replays all of it, before and
    // during its name claim.
    a.kill();
    let replayer = std::thread::spawn(move || replay(group, captured, Duration::from_secs(3)));
    let mut a = chat_node("a", "ann", group, Some(&key), &[]);
    replayer.join().unwrap();
    wait_for_peers(group, Some(&key), &["a", "b"]);
    b.type_line("said after the restart");
    a.wait_stdout("b's new line", |out| {
        out.contains("[bob]: said after the restart")
    });
    assert!(a.interrupt().success(), "{}", a.stderr());
    assert!(b.interrupt().success());
    let out = a.stdout();
    assert!(
        !out.contains("said before the restart") && !out.contains("[ann]: ann was here"),
        "a replayed call ran on the restarted node: {out}"
    );
    let err = a.stderr();
    assert!(!err.contains("is taken"), "{err}");
    assert!(err.contains("before this node started"), "{err}");
    let (_, replayed) = refused_in_summary(&err);
    assert!(replayed > 0, "{err}");
    assert_eq!(
        b.stdout().matches("[ann]: ann was here").count(),
        1,
        "b ran a's call once"
    );
}

#[test]
fn a_datagram_captured_in_one_group_runs_in_no_other_with_the_same_key() {
    let tag = "keys-groups";
    let key = keygen(tag, "group.key");
    let (one, two) = (unique_group(), unique_group());
    let ear = eavesdrop(one);
    let mut a = chat_node("a", "ann", one, Some(&key), &[]);
    let mut c = chat_node("c", "cid", two, Some(&key), &[]);
    node_id(&c);
    a.type_line("for group one only");
    a.wait_stdout("a's own line", |out| {
        out.contains("[ann]: for group one only")
    });
    let captured: Vec<Vec<u8>> = heard(&ear).into_iter().map(|(d, _)| d).collect();
    replay(two, captured, Duration::from_millis(500));
    c.type_line("cid's own");
    c.wait_stdout("c's line", |out| out.contains("[cid]: cid's own"));
    assert!(c.interrupt().success());
    assert!(a.interrupt().success());
    assert!(!c.stdout().contains("for group one only"), "{}", c.stdout());
    let err = c.stderr();
    assert!(err.contains("its tag is wrong"), "{err}");
    let (unauthenticated, _) = refused_in_summary(&err);
    assert!(unauthenticated > 0, "{err}");
}

/// A chat call of `user` saying `text`, as an unkeyed node would send it: the first
/// datagram of a stream of sender `sender`.
fn unkeyed_chat_datagram(sender: u64, user: &str, text: &str) -> Vec<u8> {
    let d = datagram(sender, Some(1), &[chat_call(user, text)]);
    Gate::new(None, false).seal(&d, false).to_vec()
}

#[test]
fn an_unkeyed_loopback_node_takes_nothing_from_another_host() {
    // Host A runs an unkeyed chat node on loopback, and (as any program on a host might)
    // another socket joined to the same group on its LAN interface: here a second node on
    // the veth link, with --insecure. Host B, on that link, sends a call to the group.
    let (host_a, host_b) = (Netns::new("mcall-a"), Netns::new("mcall-b"));
    host_a.link(&host_b, "10.77.0.1/24", "10.77.0.2/24");
    let group = unique_group();
    let start = |ns: &Netns, name: &str, user: &str, iface: &str, extra: &[&str]| {
        let mut args: Vec<String> = ["-v", "run", "--name", name, "--group"]
            .map(String::from)
            .to_vec();
        args.extend([group.to_string(), "--iface".into(), iface.into()]);
        args.extend(["--ttl", "1"].map(String::from));
        args.extend(extra.iter().map(|s| s.to_string()));
        args.push(guest("chat").to_str().unwrap().to_string());
        let mut node = ns.start(&args);
        node.wait_stdout("the prompt", |out| out.contains("Username: "));
        node.type_line(user);
        node.wait_stderr("ready", |err| err.contains(") ready in"));
        node
    };
    let mut local = start(&host_a, "local", "lou", "127.0.0.1", &[]);
    let mut lan = start(&host_a, "lan", "lan", "10.77.0.1", &["--insecure"]);
    host_b.run(move || {
        let socket = dhost::net::Group {
            addr: group,
            iface: "10.77.0.2".parse().unwrap(),
            ttl: 1,
        }
        .sender()
        .expect("a sender on host B's link");
        let d = unkeyed_chat_datagram(0x0b0b_0b0b, "mallory", "from host B");
        for _ in 0..5 {
            socket.send_to(&d, group).unwrap();
            std::thread::sleep(Duration::from_millis(100));
        }
    });
    // The node on the link hears it (that is what it is there for); the loopback one not.
    lan.wait_stdout("the call from host B", |out| {
        out.contains("[mallory]: from host B")
    });
    std::thread::sleep(Duration::from_millis(300));
    assert!(
        !local.stdout().contains("from host B"),
        "a loopback node ran a call from another host: {}",
        local.stdout()
    );
    assert!(local.interrupt().success());
    assert!(lan.interrupt().success());

    // And a datagram that reaches the loopback node's interface from an address that is
    // not loopback is refused at its gate, and said to be from another host.
    let ns = Netns::new("mcall-src");
    ns.add_address("10.9.9.9/32");
    let mut local = start(&ns, "local", "lou", "127.0.0.1", &[]);
    ns.run(move || {
        let socket = UdpSocket::bind("10.9.9.9:0").unwrap();
        socket2::SockRef::from(&socket)
            .set_multicast_if_v4(&"10.9.9.9".parse().unwrap())
            .unwrap();
        let d = unkeyed_chat_datagram(0x0c0c_0c0c, "mallory", "from 10.9.9.9");
        for _ in 0..5 {
            socket.send_to(&d, group).unwrap();
            std::thread::sleep(Duration::from_millis(50));
        }
    });
    local.wait_stderr("the refusal", |err| {
        err.contains("it came from another host")
    });
    assert!(
        !local.stdout().contains("from 10.9.9.9"),
        "{}",
        local.stdout()
    );
    assert!(local.interrupt().success());
}
