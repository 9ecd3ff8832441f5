//! End-to-end tests of nodes that reach their group through a Zenoh network (`dhost run
//! --zenoh`), not multicast: chat through a `dhost router` on loopback, with forged and
//! malformed payloads on the group's Zenoh keys refused and counted; the refusals of a
//! keyless node off loopback and of endpoints it cannot use; and, in network namespaces
//! (root), two sites whose multicast cannot cross, chatting through a router host.

mod common;
#[path = "zenoh/client.rs"]
mod zenoh_clients;

use common::*;
use std::net::SocketAddrV4;
use std::time::{Duration, Instant};
use zenoh::Wait as _;
use zenoh_clients::zenoh_client;

/// Messages each node sends.
const MESSAGES: usize = 10;

/// `dhost router --listen ENDPOINT`, once it says it listens there.
fn start_router(endpoint: &str) -> Dhost {
    let router = Dhost::start(&["router", "--listen", endpoint]);
    router_ready(&router, endpoint);
    router
}

/// `-v run --name NAME --group GROUP --zenoh ENDPOINT OPTIONS...` (the guests among the
/// options).
fn zenoh_args(name: &str, group: SocketAddrV4, endpoint: &str, options: &[&str]) -> Vec<String> {
    let group = group.to_string();
    let start = [
        "-v", "run", "--name", name, "--group", &group, "--zenoh", endpoint,
    ];
    start.iter().chain(options).map(|s| s.to_string()).collect()
}

/// A guest's path, as an argument.
fn guest_arg(name: &str) -> String {
    guest(name).to_str().expect("a path").to_string()
}

/// [`zenoh_args`] of a node running the chat guest after `extra` options.
fn chat_args(name: &str, group: SocketAddrV4, endpoint: &str, extra: &[&str]) -> Vec<String> {
    let chat = guest_arg("chat");
    let mut options = extra.to_vec();
    options.push(&chat);
    zenoh_args(name, group, endpoint, &options)
}

/// Starts a chat node `PREFIX-NAME` for each of `names` on `group` through `endpoint`, with
/// `extra` options, and gives each its user name ([`start_chatting`]).
fn chat_nodes(
    prefix: &str,
    group: SocketAddrV4,
    endpoint: &str,
    extra: &[&str],
    names: &[&str],
) -> Vec<Dhost> {
    let mut nodes: Vec<Dhost> = names
        .iter()
        .map(|n| Dhost::start(&chat_args(&format!("{prefix}-{n}"), group, endpoint, extra)))
        .collect();
    start_chatting(&mut nodes, names, names.len() - 1);
    nodes
}

/// Gives every node its user name (its index in `names`) at its prompt (a C plugin asks
/// before its node joins the group), then waits until each has heard of `peers` others.
fn start_chatting(nodes: &mut [Dhost], names: &[&str], peers: usize) {
    for (node, name) in nodes.iter_mut().zip(names) {
        node.wait_stdout("the prompt", |out| out.contains("Username: "));
        node.type_line(name);
    }
    for node in nodes.iter() {
        node.wait_stderr("its peers", |err| {
            err.matches("INFO peer ").count() >= peers
        });
    }
}

/// Each node says [`MESSAGES`] lines; then every node must show every line exactly once,
/// in each sender's order.
fn chat_and_check(nodes: &mut [Dhost], names: &[&str]) {
    for i in 0..MESSAGES {
        for (node, name) in nodes.iter_mut().zip(names) {
            node.type_line(&format!("message {i} from {name}"));
        }
    }
    let total = MESSAGES * names.len();
    for node in nodes.iter() {
        node.wait_stdout("every line", |out| chat_lines(out).len() >= total);
    }
    // (A moment for a line said twice to show.)
    std::thread::sleep(Duration::from_millis(300));
    for node in nodes.iter() {
        let lines = chat_lines(&node.stdout());
        assert_eq!(lines.len(), total, "{lines:#?}\n{}", node.stderr());
        for name in names {
            let said: Vec<&String> = lines
                .iter()
                .filter(|l| l.starts_with(&format!("[{name}]")))
                .collect();
            let expected: Vec<String> = (0..MESSAGES)
                .map(|i| format!("[{name}]: message {i} from {name}"))
                .collect();
            assert_eq!(said, expected.iter().collect::<Vec<_>>(), "{name}'s lines");
        }
    }
}

/// The sender id a node logs when it is ready (`node NAME (ID) ready`).
fn node_id(node: &Dhost) -> u64 {
    let err = node.stderr();
    let at = err.find(") ready in").expect("the node is ready");
    let open = err[..at].rfind('(').expect("its id") + 1;
    u64::from_str_radix(&err[open..at], 16).expect("a hexadecimal id")
}

/// The closing summary's count of `what` (`malformed`, `unauthenticated`...).
fn summary_count(stderr: &str, what: &str) -> u64 {
    let summary = stderr
        .lines()
        .find(|l| l.contains(" stopped: "))
        .unwrap_or_else(|| panic!("no closing summary in\n{stderr}"));
    let at = summary
        .find(&format!(" {what}"))
        .unwrap_or_else(|| panic!("no `{what}` in {summary}"));
    let start = summary[..at].rfind(['(', ' ', ',']).map_or(0, |i| i + 1);
    summary[start..at].parse().expect("a count")
}

/// A call to the chat's `message` from `sender`, as datagram `seq` of its stream, unkeyed.
fn forged_message(sender: u64, seq: u64) -> Vec<u8> {
    let text = |s: &str| ciborium::Value::Text(s.into());
    let mut d = Vec::new();
    dhost::wire::encode_header(sender, Some(seq), &mut d);
    dhost::wire::encode_call(
        seq,
        "dhost:chat/chat#message",
        &[text("mallory"), text("forged")],
        &mut d,
    );
    dhost::auth::Gate::new(None, false).seal(&d, false).to_vec()
}

#[test]
fn nodes_chat_through_a_router_and_refuse_forgeries_on_the_zenoh_keys() {
    let port = free_port();
    let endpoint = format!("tcp/127.0.0.1:{port}");
    let _router = start_router(&endpoint);
    let group = unique_group();
    let key = keygen("zenoh-chat", "group.key");
    let key_flag = format!("--key-file={}", key.display());
    let names = ["ann", "bob", "cat"];
    let mut nodes = chat_nodes("z", group, &endpoint, &[&key_flag], &names);

    // Anyone who reaches the router can publish on the group's keys: nothing of it runs.
    let mallory = zenoh_client(port, PATIENCE);
    let keys = dhost::zenoh_transport::keys::GroupKeys::new(group);
    let victim = node_id(&nodes[0]);
    let forgeries: Vec<(String, Vec<u8>)> = vec![
        (keys.control(0xaa), b"hello, is this the chat?".to_vec()),
        (keys.stream(0xaa, "message"), vec![0xff; 40]),
        (keys.stream(0xaa, "message"), forged_message(0xaa, 1)),
        // (A sender's datagram on another sender's key.)
        (keys.control(0xaa), forged_message(0xbb, 1)),
        (
            format!("{}/c/not-a-sender", keys_root(group)),
            forged_message(0xcc, 1),
        ),
        (keys.to_node(victim), vec![0xff; 40]),
        (keys.to_node(victim), forged_message(0xdd, 1)),
    ];
    for (key, payload) in &forgeries {
        mallory.put(key, payload.clone()).wait().expect("a put");
    }
    chat_and_check(&mut nodes, &names);
    for node in &nodes {
        assert!(!node.stdout().contains("forged"), "{}", node.stdout());
    }
    mallory.close().wait().expect("closed");
    let mut stderrs = Vec::new();
    for node in &mut nodes {
        let status = node.interrupt();
        assert!(status.success(), "{status:?}\n{}", node.stderr());
        stderrs.push(node.stderr());
    }
    // Every node heard the garbage and the forgeries to the group; the first, those sent
    // to it alone too.
    for (n, err) in stderrs.iter().enumerate() {
        let malformed = summary_count(err, "malformed");
        let refused = summary_count(err, "unauthenticated");
        let (least_malformed, least_refused) = if n == 0 { (5, 2) } else { (4, 1) };
        assert!(
            malformed >= least_malformed && refused >= least_refused,
            "node {n}: {malformed} malformed, {refused} unauthenticated\n{err}"
        );
        assert!(err.contains("not its sender's"), "{err}");
    }
}

/// `dhost/<group>` (what [`dhost::zenoh_transport::keys::GroupKeys`] builds its keys on).
fn keys_root(group: SocketAddrV4) -> String {
    let keys = dhost::zenoh_transport::keys::GroupKeys::new(group);
    keys.all_control().trim_end_matches("/c/*").to_string()
}

#[test]
fn a_keyless_node_keeps_to_loopback_endpoints_and_bad_endpoints_are_named() {
    let chat = guest_arg("chat");
    let chat = chat.as_str();
    let run = |extra: &[&str]| {
        let mut args = vec!["run", "--group", "239.255.9.9:4999"];
        args.extend(extra);
        args.push(chat);
        dhost_output(&args)
    };
    let (status, _, err) = run(&["--zenoh", "tcp/10.99.0.1:7447"]);
    assert!(!status.success());
    assert!(
        err.contains("the Zenoh endpoint tcp/10.99.0.1:7447 is not a loopback address")
            && err.contains("--insecure"),
        "{err}"
    );
    let (status, _, err) = run(&["--zenoh-mode", "peer", "--zenoh-listen", "tcp/0.0.0.0:0"]);
    assert!(!status.success());
    assert!(err.contains("tcp/0.0.0.0:0 is not a loopback"), "{err}");
    let (status, _, err) = run(&["--zenoh-mode", "client"]);
    assert!(!status.success());
    assert!(err.contains("needs a router to connect to"), "{err}");
    let (status, _, err) = run(&["--zenoh", "127.0.0.1:7447"]);
    assert!(!status.success());
    assert!(
        err.contains("--zenoh 127.0.0.1:7447: not a Zenoh endpoint"),
        "{err}"
    );
    // Nothing listens there.
    let nowhere = format!("tcp/127.0.0.1:{}", free_port());
    let (status, _, err) = run(&["--zenoh", &nowhere]);
    assert!(!status.success());
    assert!(err.contains("cannot join the Zenoh network"), "{err}");
}

/// Two sites, each a switch with hosts on it (where multicast works), and a router host
/// on both switches that forwards nothing: the sites' hosts reach the router host, and
/// each other only through what it runs.
struct TwoSites {
    /// The router host, 10.81.1.1 on site 1 and 10.81.2.1 on site 2.
    router: Netns,
    /// The hosts of each site: 10.81.S.11, 10.81.S.12, ...
    hosts: [Vec<Netns>; 2],
    _switches: [Netns; 2],
}

impl TwoSites {
    fn new(hosts_per_site: usize) -> TwoSites {
        let router = Netns::new("zr");
        let switches = [Netns::new("zs1"), Netns::new("zs2")];
        let mut hosts = [Vec::new(), Vec::new()];
        for (s, switch) in switches.iter().enumerate() {
            switch.make_switch();
            switch.plug(&router, &format!("10.81.{}.1/24", s + 1));
            for h in 0..hosts_per_site {
                let host = Netns::new(&format!("zh{}", s + 1));
                switch.plug(&host, &format!("10.81.{}.{}/24", s + 1, 11 + h));
                hosts[s].push(host);
            }
        }
        TwoSites {
            router,
            hosts,
            _switches: switches,
        }
    }

    /// The address of host `h` of site `s` (from 0).
    fn addr(s: usize, h: usize) -> String {
        format!("10.81.{}.{}", s + 1, 11 + h)
    }

    /// `dhost router` on the router host, listening on both sites, once it says so.
    fn start_router(&self) -> Dhost {
        let [one, two] = SITE_ENDPOINTS;
        let router = self
            .router
            .start(&["router", "--listen", one, "--listen", two]);
        router_ready(&router, "7447");
        router
    }

    /// [`zenoh_args`] of a node on host `h` of site `s`: through its site's endpoint of the
    /// router, on the host's address.
    fn node_args(
        s: usize,
        h: usize,
        name: &str,
        group: SocketAddrV4,
        options: &[&str],
    ) -> Vec<String> {
        let iface = Self::addr(s, h);
        let mut all = vec!["--iface", &iface];
        all.extend(options);
        zenoh_args(name, group, SITE_ENDPOINTS[s], &all)
    }
}

/// Where each site reaches the router host.
const SITE_ENDPOINTS: [&str; 2] = ["tcp/10.81.1.1:7447", "tcp/10.81.2.1:7447"];

#[test]
fn two_sites_that_multicast_cannot_join_chat_through_a_router_host() {
    let sites = TwoSites::new(2);
    let group = unique_group();
    let key = keygen("zenoh-sites", "group.key");
    let key_flag = format!("--key-file={}", key.display());
    let chat = guest_arg("chat");

    // Multicast alone: each site is a group of its own.
    let mut lan: Vec<Dhost> = Vec::new();
    for s in 0..2 {
        for h in 0..2 {
            let iface = TwoSites::addr(s, h);
            lan.push(sites.hosts[s][h].start(&[
                "-v",
                "run",
                "--name",
                &format!("lan-{s}{h}"),
                "--group",
                &group.to_string(),
                "--iface",
                &iface,
                &key_flag,
                &chat,
            ]));
        }
    }
    for node in &lan {
        node.wait_stderr("a peer on its site", |err| err.contains("INFO peer "));
    }
    std::thread::sleep(Duration::from_millis(500));
    for (n, node) in lan.iter().enumerate() {
        let err = node.stderr();
        assert_eq!(
            err.matches("INFO peer ").count(),
            1,
            "node {n} hears its site only:\n{err}"
        );
    }
    drop(lan);

    // Through a router on the router host, which both sites reach.
    let _router = sites.start_router();
    let mut names = Vec::new();
    let mut nodes = Vec::new();
    for (s, hosts) in sites.hosts.iter().enumerate() {
        for (h, host) in hosts.iter().enumerate() {
            let name = format!("site{}-{}", s + 1, h + 1);
            nodes.push(host.start(&TwoSites::node_args(
                s,
                h,
                &name,
                group,
                &[&key_flag, &chat],
            )));
            names.push(name);
        }
    }
    // A node with another key, on site 2: it sees and runs nothing of the group.
    let other_key = keygen("zenoh-sites", "other.key");
    let other_key = format!("--key-file={}", other_key.display());
    let outsider = sites.hosts[1][1].start(&TwoSites::node_args(
        1,
        1,
        "outsider",
        group,
        &[&other_key, &chat],
    ));
    // A member that serves none of the chat's functions: the router sends it no chat call.
    let kv = guest_arg("kv");
    let mut bystander = sites.hosts[0][1].start(&TwoSites::node_args(
        0,
        1,
        "bystander",
        group,
        &[&key_flag, &kv],
    ));
    let names: Vec<&str> = names.iter().map(String::as_str).collect();
    start_chatting(&mut nodes, &names, names.len());
    let started = Instant::now();
    chat_and_check(&mut nodes, &names);
    eprintln!("chat across the sites took {:?}", started.elapsed());
    let status = bystander.interrupt();
    assert!(status.success(), "{}", bystander.stderr());
    let err = bystander.stderr();
    assert!(err.matches("INFO peer ").count() >= names.len(), "{err}");
    assert_eq!(summary_count(&err, "dropped"), 0, "{err}");
    assert!(!err.contains("no local guest serves"), "{err}");
    outsider.wait_stdout("its prompt", |out| out.contains("Username: "));
    assert!(
        chat_lines(&outsider.stdout()).is_empty(),
        "{}",
        outsider.stdout()
    );
    assert!(
        !outsider.stderr().contains("INFO peer "),
        "{}",
        outsider.stderr()
    );
    for node in &nodes {
        assert!(
            !node.stderr().contains("peer outsider"),
            "{}",
            node.stderr()
        );
    }
}

/// Runs `dhost ARGS` inside `ns` to its end: its status, stdout and stderr.
fn output_in<S: AsRef<std::ffi::OsStr>>(
    ns: &Netns,
    args: &[S],
) -> (std::process::ExitStatus, String, String) {
    let mut run = ns.start(args);
    let status = run.wait_exit();
    (status, run.stdout(), run.stderr())
}

#[test]
fn across_two_sites_peers_calls_and_published_modules_go_through_the_router() {
    let sites = TwoSites::new(2);
    let group = unique_group();
    let key = keygen("zenoh-calls", "group.key");
    let key_flag = format!("--key-file={}", key.display());
    let _router = sites.start_router();
    let store = |name: &str| {
        let dir = scratch_dir("zenoh-modules").join(name);
        let _ = std::fs::remove_dir_all(&dir);
        format!("--store-dir={}", dir.display())
    };
    // A node on each site that takes published modules.
    let node = |s: usize, h: usize, name: &str| {
        let store = store(name);
        let options = [key_flag.as_str(), "--accept-modules", &store];
        let node = sites.hosts[s][h].start(&TwoSites::node_args(s, h, name, group, &options));
        node.wait_stderr("the node to be ready", |err| err.contains(") ready in"));
        node
    };
    let ann = node(0, 0, "ann");
    let bob = node(1, 0, "bob");
    // Names are unique across the whole network: site 2 cannot take site 1's.
    let store_flag = store("ann-2");
    let options = [key_flag.as_str(), "--accept-modules", &store_flag];
    let (status, _, err) = output_in(
        &sites.hosts[1][1],
        &TwoSites::node_args(1, 1, "ann", group, &options),
    );
    assert!(!status.success());
    assert!(err.contains("the name `ann` is taken"), "{err}");
    // A client on each site, through its site's router endpoint.
    let group_text = group.to_string();
    let client = |s: usize, args: &[&str]| {
        let mut all: Vec<&str> = vec![
            args[0],
            "--group",
            &group_text,
            "--zenoh",
            SITE_ENDPOINTS[s],
            &key_flag,
        ];
        all.extend(&args[1..]);
        output_in(&sites.hosts[s][1], &all)
    };

    // Published from site 1: both load it.
    let kv = guest_arg("kv");
    let (status, out, err) = client(0, &["publish", &kv]);
    assert!(status.success(), "{out}{err}");
    for name in ["ann", "bob"] {
        assert!(out.contains(&format!("{name}: loaded")), "{out}");
    }
    // Calls with replies, from site 1 to the node of site 2, and back.
    let (status, out, err) = client(
        0,
        &[
            "call",
            "bob",
            "dhost:kv/store#put",
            "\"k\"",
            "\"from site 1\"",
        ],
    );
    assert!(status.success(), "{out}{err}");
    let (status, out, err) = client(1, &["call", "bob", "dhost:kv/store#get", "\"k\""]);
    assert!(status.success(), "{err}");
    assert_eq!(out.trim(), "\"from site 1\"");
    let (status, _, err) = client(
        1,
        &["call", "ann", "dhost:kv/admin#crash", "\"on purpose\""],
    );
    assert!(!status.success());
    assert!(err.contains("trapped"), "{err}");
    // A late joiner on site 1 fetches the module from a peer, and serves it.
    let cat = node(0, 1, "cat");
    let started = Instant::now();
    loop {
        let (status, out, _) = client(1, &["call", "cat", "dhost:kv/store#keys"]);
        if status.success() {
            assert_eq!(out.trim(), "[]");
            break;
        }
        assert!(
            started.elapsed() < PATIENCE,
            "cat never served kv\n{}",
            cat.stderr()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(
        cat.stderr().contains("fetched from node"),
        "{}",
        cat.stderr()
    );
    // A remote mailbox: a node on site 1 serves two, a guest on site 2 writes and reads one.
    let options = [key_flag.as_str(), "--mailboxes", "2", "--mailbox-size", "4"];
    let boxes = sites.hosts[0][1].start(&TwoSites::node_args(0, 1, "boxes", group, &options));
    boxes.wait_stderr("the mailbox node", |err| err.contains(") ready in"));
    let mailbox_client = guest_arg("mailbox-client");
    let options = [
        key_flag.as_str(),
        &mailbox_client,
        "--",
        "--node",
        "boxes",
        "write",
        "1",
        "across",
        "read",
        "1",
    ];
    let (status, out, err) = output_in(
        &sites.hosts[1][1],
        &TwoSites::node_args(1, 1, "mbc", group, &options),
    );
    assert!(status.success(), "{out}{err}");
    assert_eq!(out.lines().collect::<Vec<_>>(), ["ok", "across"], "{err}");
    // Every node, from either site, with the columns of the LAN.
    let (status, out, err) = client(1, &["peers"]);
    assert!(status.success(), "{err}");
    assert_eq!(peer_names(&out), ["ann", "bob", "boxes", "cat"], "{out}");
    assert!(out.starts_with("NAME "), "{out}");
    assert!(out.contains("dhost:kv/store#get"), "{out}");
    drop((ann, bob, cat, boxes));
}

/// A WebAssembly stress receiver on Zenoh, once it is ready.
fn stress_receiver(name: &str, group: SocketAddrV4, endpoint: &str) -> Dhost {
    let stress = guest_arg("stress");
    let node = Dhost::start(&zenoh_args(name, group, endpoint, &[&stress]));
    node.wait_stderr("the receiver to start", |err| err.contains("ready in"));
    node
}

/// A WebAssembly stress sender on Zenoh: `count` calls in one tight loop.
fn stress_sender(group: SocketAddrV4, endpoint: &str, count: u64, extra: &[&str]) -> Dhost {
    let sender = guest_arg("stress-sender");
    let mut options = vec!["--allow-env", "STRESS_COUNT", "--max-time", "120s"];
    options.extend(extra);
    options.push(&sender);
    let args = zenoh_args("stress-tx", group, endpoint, &options);
    let mut cmd = dhost_command();
    cmd.args(args).env("STRESS_COUNT", count.to_string());
    Dhost::spawn(cmd)
}

#[test]
fn a_million_calls_through_a_router_arrive_in_order_and_a_paused_receiver_loses_nothing() {
    let port = free_port();
    let endpoint = format!("tcp/127.0.0.1:{port}");
    let _router = start_router(&endpoint);
    let group = unique_group();
    let rx1 = stress_receiver("rx1", group, &endpoint);
    let mut rx2 = stress_receiver("rx2", group, &endpoint);
    let started = Instant::now();
    // (A window the stopped receiver holds the sender back by.)
    let _tx = stress_sender(group, &endpoint, 1_000_000, &["--window", "256KiB"]);
    rx2.wait_stderr("the sender", |err| err.contains("peer stress-tx ("));
    std::thread::sleep(Duration::from_millis(200));
    assert!(
        report(&rx1.stdout()).is_none(),
        "the stream ended before the pause: make it longer"
    );
    rx2.signal("STOP");
    std::thread::sleep(Duration::from_secs(2));
    rx2.signal("CONT");
    let r1 = assert_all_in_order(&rx1, 1_000_000);
    assert_all_in_order(&rx2, 1_000_000);
    // The receiver that ran on waited for the paused one: the sender was held back.
    assert!(started.elapsed() > Duration::from_secs(2), "{r1:?}");
    let (received, _, lost) = received_from(&mut rx2, "stress-tx");
    assert_eq!((received, lost), (1_000_001, 0), "{}", rx2.stderr());
}

#[test]
fn a_router_killed_and_restarted_mid_stream_loses_nothing_silently() {
    let port = free_port();
    let endpoint = format!("tcp/127.0.0.1:{port}");
    let mut router = start_router(&endpoint);
    let group = unique_group();
    let mut rx = stress_receiver("rx", group, &endpoint);
    const COUNT: u64 = 3_000_000;
    let _tx = stress_sender(group, &endpoint, COUNT, &[]);
    rx.wait_stderr("the sender", |err| err.contains("peer stress-tx ("));
    std::thread::sleep(Duration::from_millis(300));
    assert!(
        report(&rx.stdout()).is_none(),
        "the stream ended before the router died"
    );
    router.kill();
    std::thread::sleep(Duration::from_secs(1));
    let _router = start_router(&endpoint);
    // The nodes reconnect and the stream resumes to its end; whatever could not be
    // repaired is counted by the receiving node and seen by its guest alike.
    let r = wait_report(&rx);
    assert_eq!(r.in_order + r.lost, COUNT, "{r:?}\n{}", rx.stderr());
    assert_eq!(r.out_of_order, 0, "{r:?}");
    received_from(&mut rx, "stress-tx");
    // (The sender may have gone silent for longer than a peer may: its stream is then
    // followed anew when it is heard again, and the summary has a line for each.)
    let (received, lost) = stream_summaries(&rx.stderr(), "stress-tx")
        .iter()
        .fold((0, 0), |(r, l), &(received, _, lost)| {
            (r + received, l + lost)
        });
    assert_eq!(lost, r.lost, "{}", rx.stderr());
    assert_eq!(received + lost, COUNT + 1, "{}", rx.stderr());
    eprintln!("across the router's restart: {r:?}, {received} received, {lost} lost");
}

#[test]
fn a_bridge_joins_a_lan_with_a_c_plugin_to_a_webassembly_chat_beyond_the_router() {
    let sites = TwoSites::new(2);
    let group = unique_group();
    let key = keygen("zenoh-bridge", "group.key");
    let key_flag = format!("--key-file={}", key.display());
    let _router = sites.start_router();
    // Site 1, a LAN: a C plugin node on multicast alone, and a bridge (with a chat of its
    // own) on both its LAN and the router.
    let plugin = guest_file("test_chat.so");
    let (group_text, iface) = (group.to_string(), TwoSites::addr(0, 0));
    let lan_only = [
        "-v",
        "run",
        "--name",
        "c-node",
        "--group",
        &group_text,
        &key_flag,
        "--iface",
        &iface,
        plugin.to_str().expect("a path"),
    ];
    let c_node = sites.hosts[0][0].start(&lan_only);
    let chat = guest_arg("chat");
    let options = [key_flag.as_str(), "--bridge", &chat];
    let bridge = sites.hosts[0][1].start(&TwoSites::node_args(0, 1, "bridge", group, &options));
    // Site 2: a WebAssembly chat on Zenoh alone.
    let options = [key_flag.as_str(), &chat];
    let remote = sites.hosts[1][0].start(&TwoSites::node_args(1, 0, "remote", group, &options));
    let mut nodes = vec![c_node, bridge, remote];
    let names = ["carol", "bridget", "wendy"];
    start_chatting(&mut nodes, &names, 2);
    // Every line on every node, once. (One line at a time: the C plugin reads one line
    // per time its stdin is ready.)
    let mut said = Vec::new();
    for i in 0..3 {
        for (n, name) in names.iter().enumerate() {
            let line = format!("line {i} from {name}");
            nodes[n].type_line(&line);
            for node in &nodes {
                node.wait_stdout("the line", |out| out.contains(&line));
            }
            said.push(format!("[{name}]: {line}"));
        }
    }
    std::thread::sleep(Duration::from_millis(300));
    for node in &nodes {
        assert_eq!(chat_lines(&node.stdout()), said, "{}", node.stderr());
    }
    // The C node hears the remote node, through the bridge.
    assert!(
        nodes[0].stderr().contains("peer remote ("),
        "{}",
        nodes[0].stderr()
    );
    let mut stderrs = Vec::new();
    for node in &mut nodes {
        assert!(node.interrupt().success(), "{}", node.stderr());
        stderrs.push(node.stderr());
    }
    for err in &stderrs {
        assert_eq!(summary_count(err, "lost"), 0, "{err}");
        assert_eq!(summary_count(err, "replayed"), 0, "{err}");
    }
}

/// Eclipse Zenoh's own router from PyPI (`tests/zenoh/stock_router.py` in the Python of
/// `target/py-client-venv`, where scripts/test.sh installs `eclipse-zenoh`), listening on
/// `endpoint`, once it says so.
fn stock_router(endpoint: &str) -> Dhost {
    let python = root().join("target/py-client-venv/bin/python");
    let script = root().join("tests/zenoh/stock_router.py");
    assert!(
        python.exists(),
        "{} is missing: scripts/test.sh makes it, and installs eclipse-zenoh in it",
        python.display()
    );
    let mut cmd = std::process::Command::new(python);
    cmd.arg(script).arg(endpoint);
    let router = Dhost::spawn(cmd);
    // (Without eclipse-zenoh its stderr says `No module named 'zenoh'`: scripts/test.sh
    // installs it.)
    router.wait_stdout("the stock router (eclipse-zenoh, from PyPI)", |out| {
        out.contains("stock router ") && out.contains(endpoint)
    });
    router
}

#[test]
fn nodes_and_clients_need_no_router_of_dhosts_a_stock_zenoh_router_serves() {
    let port = free_port();
    let endpoint = format!("tcp/127.0.0.1:{port}");
    let _router = stock_router(&endpoint);
    let group = unique_group();
    let key = keygen("zenoh-stock", "group.key");
    let key_flag = format!("--key-file={}", key.display());
    let names = ["ann", "bob"];
    let mut nodes = chat_nodes("stock", group, &endpoint, &[&key_flag], &names);
    chat_and_check(&mut nodes, &names);
    let group = group.to_string();
    let (status, out, err) =
        dhost_output(&["peers", "--group", &group, "--zenoh", &endpoint, &key_flag]);
    assert!(status.success(), "{err}");
    assert_eq!(peer_names(&out), ["stock-ann", "stock-bob"], "{out}");
}

/// Runs `openssl ARGS` in `dir`; panics with what it said if it fails.
fn openssl(dir: &std::path::Path, args: &[&str]) {
    let out = std::process::Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap_or_else(|e| panic!("cannot run openssl: {e}"));
    assert!(
        out.status.success(),
        "openssl {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A test CA and a certificate it signed for `localhost` and 127.0.0.1, made by openssl in
/// `dir`: (ca.pem, router.pem, router.key).
fn tls_certificates(dir: &std::path::Path) -> [std::path::PathBuf; 3] {
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
    ];
    let mut ca = vec!["req", "-x509"];
    ca.extend(ec);
    ca.extend([
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
        "-subj",
        "/CN=dhost-test-ca",
        "-days",
        "2",
    ]);
    openssl(dir, &ca);
    let mut request = vec!["req"];
    request.extend(ec);
    request.extend([
        "-keyout",
        "router.key",
        "-out",
        "router.csr",
        "-subj",
        "/CN=localhost",
    ]);
    openssl(dir, &request);
    std::fs::write(
        dir.join("san.ext"),
        "subjectAltName=DNS:localhost,IP:127.0.0.1\n",
    )
    .expect("the extension file");
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            "router.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            "router.pem",
            "-days",
            "2",
            "-extfile",
            "san.ext",
        ],
    );
    ["ca.pem", "router.pem", "router.key"].map(|f| dir.join(f))
}

#[test]
fn nodes_reach_their_router_over_zenohs_own_tls() {
    let dir = scratch_dir("zenoh-tls");
    let [ca, cert, key] = tls_certificates(&dir);
    // (Multicast scouting off in every file: a configuration file replaces dhost's
    // defaults, and Zenoh's own scouts the LAN.)
    let router_file = scratch_file(
        "zenoh-tls",
        "router.json5",
        format!(
            "{{ scouting: {{ multicast: {{ enabled: false }} }}, transport: {{ link: {{ tls: {{ \
             listen_private_key: {key:?}, listen_certificate: {cert:?} }} }} }} }}"
        ),
    );
    let node_file = scratch_file(
        "zenoh-tls",
        "node.json5",
        format!(
            "{{ scouting: {{ multicast: {{ enabled: false }} }}, transport: {{ link: {{ tls: {{ \
             root_ca_certificate: {ca:?} }} }} }} }}"
        ),
    );
    let port = free_port();
    let listen = format!("tls/127.0.0.1:{port}");
    let router = Dhost::start(&[
        "router",
        "--zenoh-config",
        router_file.to_str().expect("a path"),
        "--listen",
        &listen,
    ]);
    router_ready(&router, &listen);
    let endpoint = format!("tls/localhost:{port}");
    let config = format!("--zenoh-config={}", node_file.display());
    let group = unique_group();
    let names = ["ann", "bob"];
    let mut nodes = chat_nodes("tls", group, &endpoint, &[&config], &names);
    chat_and_check(&mut nodes, &names);
    // A node that does not trust the router's certificate cannot join.
    let chat = guest_arg("chat");
    let (status, _, err) = dhost_output(&[
        "run",
        "--group",
        &group.to_string(),
        "--zenoh",
        &endpoint,
        &chat,
    ]);
    assert!(!status.success());
    assert!(err.contains("cannot join the Zenoh network"), "{err}");
}
