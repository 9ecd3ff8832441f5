//! What every end-to-end test needs: real `dhost` processes with their stdin, stdout and
//! stderr at hand, a multicast group of their own on loopback, and the guests built by
//! `scripts/build-guests.sh`.

#![allow(dead_code)] // each test file uses its own part of this module

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Ipv4Addr, SocketAddrV4, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How long a test waits for something a node should print.
pub(crate) const PATIENCE: Duration = Duration::from_secs(30);

/// The repository's root.
pub(crate) fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("host/ has a parent")
        .to_path_buf()
}

/// A guest built by `scripts/build-guests.sh`.
pub(crate) fn guest(name: &str) -> PathBuf {
    guest_file(&format!("{name}.wasm"))
}

/// A file built by `scripts/build-guests.sh` (a guest, a native plugin).
pub(crate) fn guest_file(name: &str) -> PathBuf {
    let path = root().join("target/guests").join(name);
    assert!(
        path.exists(),
        "{} is missing: run scripts/build-guests.sh first (it builds every guest, those in \
         Python and JavaScript too)",
        path.display()
    );
    path
}

/// A fresh directory of this test process's own under target/test-scratch.
pub(crate) fn scratch_dir(tag: &str) -> PathBuf {
    let dir = root()
        .join("target/test-scratch")
        .join(format!("{tag}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Writes `text` to the file `name` in [`scratch_dir`]`(tag)` and returns its path.
pub(crate) fn scratch_file(tag: &str, name: &str, text: impl AsRef<[u8]>) -> PathBuf {
    let path = scratch_dir(tag).join(name);
    std::fs::write(&path, text).unwrap();
    path
}

/// A new key file `name` made by `dhost keygen` in [`scratch_dir`]`(tag)`.
pub(crate) fn keygen(tag: &str, name: &str) -> PathBuf {
    let path = scratch_dir(tag).join(name);
    let _ = std::fs::remove_file(&path);
    let (status, out, err) = dhost_output(&["keygen", path.to_str().unwrap()]);
    assert!(status.success(), "{err}");
    assert!(out.contains("wrote a new group key (id "), "{out}");
    path
}

/// A multicast group and port no other test uses at the same time.
pub(crate) fn unique_group() -> SocketAddrV4 {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    let seed = std::process::id()
        .wrapping_mul(2_654_435_761)
        .wrapping_add(n.wrapping_mul(40_503))
        .wrapping_add(nanos);
    let [a, b, c, _] = seed.to_le_bytes();
    let port = 20_000 + (seed >> 8) % 40_000;
    SocketAddrV4::new(Ipv4Addr::new(239, 255, a, b.max(1) ^ c), port as u16)
}

/// A TCP port on loopback that nothing listens on now.
pub(crate) fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("a port");
    listener.local_addr().expect("an address").port()
}

/// Waits until `router` (a `dhost router`) says it listens on `endpoint`.
pub(crate) fn router_ready(router: &Dhost, endpoint: &str) {
    router.wait_stdout("the router's first line", |out| {
        out.contains("dhost router ") && out.contains(endpoint)
    });
}

/// A socket that sends to `group` on loopback only (TTL 0), for hand-made datagrams.
pub(crate) fn group_sender(group: SocketAddrV4) -> UdpSocket {
    let socket = dhost::net::Group {
        addr: group,
        iface: Ipv4Addr::LOCALHOST,
        ttl: 0,
    }
    .sender()
    .expect("a loopback multicast sender");
    socket.connect(group).expect("a multicast sender connects");
    socket
}

/// The compile cache the tests share (compiling a guest once per test run is enough).
pub(crate) fn cache_dir() -> PathBuf {
    root().join("target/test-cache")
}

/// A running `dhost` process.
pub(crate) struct Dhost {
    child: Child,
    stdin: Option<ChildStdin>,
    stdout: Arc<Mutex<String>>,
    stderr: Arc<Mutex<String>>,
    /// The threads that collect stdout and stderr, until the pipes close.
    collectors: Vec<std::thread::JoinHandle<()>>,
}

/// The `dhost` command with the test's cache, ready for arguments.
pub(crate) fn dhost_command() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_dhost"));
    cmd.env("DHOST_CACHE_DIR", cache_dir())
        .env_remove("RUST_LOG")
        .env_remove("DHOST_GROUP")
        .env_remove("DHOST_IFACE")
        .env_remove("DHOST_KEY_FILE");
    cmd
}

/// Runs `dhost ARGS` to its end; returns its status, stdout and stderr. A run that has not
/// ended after [`PATIENCE`] is killed and fails the test (a hung test never hangs CI).
pub(crate) fn dhost_output(args: &[&str]) -> (ExitStatus, String, String) {
    let mut cmd = dhost_command();
    cmd.args(args).stdin(Stdio::null());
    let mut run = Dhost::spawn(cmd);
    run.stdin.take();
    let status = run.wait_exit();
    (status, run.stdout(), run.stderr())
}

/// `--group GROUP --iface 127.0.0.1 --ttl 0`: the group, on loopback only.
pub(crate) fn group_flags(group: SocketAddrV4) -> Vec<String> {
    [
        "--group",
        &group.to_string(),
        "--iface",
        "127.0.0.1",
        "--ttl",
        "0",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

/// Runs the kv-client command on a short-lived node; its status and stdout and stderr.
pub(crate) fn kv_client(group: SocketAddrV4, args: &[&str]) -> (ExitStatus, String, String) {
    let client = guest("kv-client");
    let mut all = vec![client.to_str().unwrap(), "--"];
    all.extend(args);
    let args = node_args("client", group, &all);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    dhost_output(&args)
}

/// `-v run --name NAME --group GROUP --iface 127.0.0.1 --ttl 0` and then `extra`.
pub(crate) fn node_args(name: &str, group: SocketAddrV4, extra: &[&str]) -> Vec<String> {
    let mut args: Vec<String> = ["-v", "run", "--name", name]
        .iter()
        .map(|s| s.to_string())
        .collect();
    args.extend(group_flags(group));
    args.extend(extra.iter().map(|s| s.to_string()));
    args
}

/// Starts node `name` taking published modules into a store of its own, with `extra`
/// options (which may restrict `--accept-modules=PUBLISHERS`); waits until it takes calls.
pub(crate) fn module_node(name: &str, group: SocketAddrV4, store: &Path, extra: &[&str]) -> Dhost {
    let store = format!("--store-dir={}", store.display());
    let mut args = vec![store.as_str()];
    if !extra.iter().any(|a| a.starts_with("--accept-modules")) {
        args.push("--accept-modules");
    }
    args.extend(extra);
    let node = Dhost::start(&node_args(name, group, &args));
    node.wait_stderr("the node to be ready", |err| {
        err.contains("calls on 127.0.0.1:")
    });
    node
}

/// `dhost SUBCOMMAND GROUP-FLAGS ARGS...` to its end (the flags before the arguments, which
/// may start with `-`).
pub(crate) fn client_output(
    subcommand: &str,
    group: SocketAddrV4,
    args: &[&str],
) -> (ExitStatus, String, String) {
    let flags = group_flags(group);
    let mut all: Vec<&str> = vec![subcommand];
    all.extend(flags.iter().map(String::as_str));
    all.extend(args);
    dhost_output(&all)
}

fn collect(
    mut from: impl Read + Send + 'static,
    into: Arc<Mutex<String>>,
) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        loop {
            match from.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => into
                    .lock()
                    .unwrap()
                    .push_str(&String::from_utf8_lossy(&buf[..n])),
            }
        }
    })
}

impl Dhost {
    /// Starts `dhost ARGS` with piped stdin, stdout and stderr.
    pub(crate) fn start<S: AsRef<std::ffi::OsStr>>(args: &[S]) -> Dhost {
        let mut cmd = dhost_command();
        cmd.args(args);
        Dhost::spawn(cmd)
    }

    /// Starts `cmd` with piped stdin, stdout and stderr.
    pub(crate) fn spawn(mut cmd: Command) -> Dhost {
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("dhost starts");
        let (stdout, stderr) = (Arc::default(), Arc::default());
        let collectors = vec![
            collect(child.stdout.take().unwrap(), Arc::clone(&stdout)),
            collect(child.stderr.take().unwrap(), Arc::clone(&stderr)),
        ];
        Dhost {
            stdin: child.stdin.take(),
            child,
            stdout,
            stderr,
            collectors,
        }
    }

    /// Types `line` on the node's stdin.
    pub(crate) fn type_line(&mut self, line: &str) {
        let stdin = self.stdin.as_mut().expect("stdin is open");
        writeln!(stdin, "{line}").expect("the node reads stdin");
        stdin.flush().unwrap();
    }

    /// What the node printed on stdout so far.
    pub(crate) fn stdout(&self) -> String {
        self.stdout.lock().unwrap().clone()
    }

    /// What the node printed on stderr so far.
    pub(crate) fn stderr(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    /// Waits until `done(stdout)` holds; panics with both streams after [`PATIENCE`].
    pub(crate) fn wait_stdout(&self, what: &str, done: impl Fn(&str) -> bool) {
        self.wait(what, || done(&self.stdout()));
    }

    /// Waits until `done(stdout)` holds, for at most `patience` (for what takes longer
    /// than [`PATIENCE`], such as compiling a guest with an interpreter inside).
    pub(crate) fn wait_stdout_within(
        &self,
        what: &str,
        patience: Duration,
        done: impl Fn(&str) -> bool,
    ) {
        self.wait_within(what, patience, || done(&self.stdout()));
    }

    /// Waits until `done(stderr)` holds, for at most `patience`.
    pub(crate) fn wait_stderr_within(
        &self,
        what: &str,
        patience: Duration,
        done: impl Fn(&str) -> bool,
    ) {
        self.wait_within(what, patience, || done(&self.stderr()));
    }

    /// Waits until `done(stderr)` holds; panics with both streams after [`PATIENCE`].
    pub(crate) fn wait_stderr(&self, what: &str, done: impl Fn(&str) -> bool) {
        self.wait(what, || done(&self.stderr()));
    }

    fn wait(&self, what: &str, done: impl Fn() -> bool) {
        self.wait_within(what, PATIENCE, done);
    }

    fn wait_within(&self, what: &str, patience: Duration, done: impl Fn() -> bool) {
        let start = Instant::now();
        while !done() {
            if start.elapsed() > patience {
                panic!(
                    "waited {patience:?} for {what}\n--- stdout:\n{}\n--- stderr:\n{}",
                    self.stdout(),
                    self.stderr()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Whether the process is still running.
    pub(crate) fn child_is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// The process's peak resident memory so far (`VmHWM` in `/proc/PID/status`), in KiB.
    pub(crate) fn peak_rss_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .expect("the process is running");
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .expect("VmHWM in /proc/PID/status")
    }

    /// Sends the signal `name` (`STOP`, `CONT`, ...) to the process.
    pub(crate) fn signal(&self, name: &str) {
        let status = Command::new("kill")
            .args([format!("-{name}"), self.child.id().to_string()])
            .status()
            .expect("kill runs");
        assert!(status.success(), "kill -{name} failed");
    }

    /// Kills the process (SIGKILL: it says no goodbye) and waits for it.
    pub(crate) fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Sends SIGINT (Ctrl-C) and waits for the process to end.
    pub(crate) fn interrupt(&mut self) -> ExitStatus {
        let pid = self.child.id().to_string();
        Command::new("kill")
            .args(["-INT", &pid])
            .status()
            .expect("kill runs");
        self.wait_exit()
    }

    /// Closes stdin and waits for the process to end (within [`PATIENCE`]).
    pub(crate) fn wait_exit(&mut self) -> ExitStatus {
        self.stdin.take();
        let start = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().expect("wait works") {
                // Everything it printed is collected once the pipes close.
                for collector in self.collectors.drain(..) {
                    let _ = collector.join();
                }
                return status;
            }
            if start.elapsed() > PATIENCE {
                let _ = self.child.kill();
                panic!(
                    "dhost did not exit\n--- stdout:\n{}\n--- stderr:\n{}",
                    self.stdout(),
                    self.stderr()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Dhost {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A network namespace of the test's own: only `lo`, up, with multicast routed to it, so
/// that several nodes share a network that nothing leaves and that loss can be injected
/// into (nftables; this kernel has no netem). Removed when dropped. Making one needs root
/// (CI runs as root).
pub(crate) struct Netns {
    name: String,
}

impl Netns {
    /// A fresh namespace; panics, saying why, when it cannot be made.
    pub(crate) fn new(tag: &str) -> Netns {
        static COUNTER: AtomicU32 = AtomicU32::new(0);
        let name = format!(
            "dh-{tag}-{}-{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        );
        let ns = Netns { name };
        let root = "network namespaces need root; CI runs as root";
        ns.ip(&["netns", "add", &ns.name], root);
        ns.ip(&["-n", &ns.name, "link", "set", "lo", "up"], root);
        ns.ip(
            &["-n", &ns.name, "route", "add", "224.0.0.0/4", "dev", "lo"],
            root,
        );
        ns
    }

    /// Runs `ip ARGS`; panics with `hint` and what `ip` said if it fails.
    fn ip(&self, args: &[&str], hint: &str) {
        let out = Command::new("ip")
            .args(args)
            .output()
            .unwrap_or_else(|e| panic!("cannot run `ip` (iproute2): {e}"));
        assert!(
            out.status.success(),
            "`ip {}` failed ({hint}): {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Gives the namespace's `lo` another address, such as `10.9.9.9/32`: one that is not a
    /// loopback address (for what a node treats differently from other hosts), reachable
    /// only from inside the namespace.
    pub(crate) fn add_address(&self, cidr: &str) {
        self.ip(
            &["-n", &self.name, "addr", "add", cidr, "dev", "lo"],
            "root",
        );
    }

    /// Joins this namespace to `other` with a veth pair: this end gets `mine` (a CIDR such
    /// as `10.77.0.1/24`), the other `theirs`, and the other routes multicast through its
    /// end (so what it sends to a group leaves towards this namespace). Both ends are
    /// private addresses that exist only inside the two namespaces.
    pub(crate) fn link(&self, other: &Netns, mine: &str, theirs: &str) {
        static COUNTER: AtomicU32 = AtomicU32::new(0);
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let (a, b) = (
            format!("va{}x{n}", std::process::id() % 100_000),
            format!("vb{}x{n}", std::process::id() % 100_000),
        );
        let root = "root";
        self.ip(
            &[
                "link",
                "add",
                &a,
                "netns",
                &self.name,
                "type",
                "veth",
                "peer",
                "name",
                &b,
                "netns",
                &other.name,
            ],
            root,
        );
        for (ns, dev, cidr) in [(self, &a, mine), (other, &b, theirs)] {
            ns.ip(&["-n", &ns.name, "addr", "add", cidr, "dev", dev], root);
            ns.ip(&["-n", &ns.name, "link", "set", dev, "up"], root);
        }
        other.ip(
            &[
                "-n",
                &other.name,
                "route",
                "replace",
                "224.0.0.0/4",
                "dev",
                &b,
            ],
            root,
        );
    }

    /// Makes this namespace a switch: a bridge that floods multicast to every port (no
    /// IGMP snooping), to [`Self::plug`] hosts into. The hosts plugged into one switch
    /// form one LAN, where multicast works.
    pub(crate) fn make_switch(&self) {
        let root = "root";
        self.ip(
            &[
                "-n",
                &self.name,
                "link",
                "add",
                "br0",
                "type",
                "bridge",
                "mcast_snooping",
                "0",
            ],
            root,
        );
        self.ip(&["-n", &self.name, "link", "set", "br0", "up"], root);
    }

    /// Plugs `host` into this switch ([`Self::make_switch`]) with a veth pair: the host's
    /// end gets `cidr` (such as `10.81.1.11/24`) and the host's multicast goes out through
    /// it; the switch's end joins the bridge.
    pub(crate) fn plug(&self, host: &Netns, cidr: &str) {
        static COUNTER: AtomicU32 = AtomicU32::new(0);
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let (near, far) = (
            format!("sh{}x{n}", std::process::id() % 100_000),
            format!("sp{}x{n}", std::process::id() % 100_000),
        );
        let root = "root";
        self.ip(
            &[
                "link", "add", &near, "netns", &host.name, "type", "veth", "peer", "name", &far,
                "netns", &self.name,
            ],
            root,
        );
        host.ip(&["-n", &host.name, "addr", "add", cidr, "dev", &near], root);
        host.ip(&["-n", &host.name, "link", "set", &near, "up"], root);
        host.ip(
            &[
                "-n",
                &host.name,
                "route",
                "replace",
                "224.0.0.0/4",
                "dev",
                &near,
            ],
            root,
        );
        self.ip(
            &["-n", &self.name, "link", "set", &far, "master", "br0"],
            root,
        );
        self.ip(&["-n", &self.name, "link", "set", &far, "up"], root);
    }

    /// Runs `nft ARGS` inside the namespace.
    fn nft(&self, args: &[&str]) {
        let mut all = vec!["netns", "exec", &self.name, "nft"];
        all.extend(args);
        self.ip(&all, "is nftables installed? scripts/test.sh installs it");
    }

    /// Drops `percent` % of the UDP datagrams that arrive for `port`, at random.
    pub(crate) fn drop_udp(&self, port: u16, percent: u32) {
        self.nft(&["add", "table", "inet", "loss"]);
        self.nft(&[
            "add",
            "chain",
            "inet",
            "loss",
            "in",
            "{ type filter hook input priority 0; }",
        ]);
        let rule = format!("udp dport {port} numgen random mod 100 < {percent} drop");
        let mut args = vec!["add", "rule", "inet", "loss", "in"];
        args.extend(rule.split(' '));
        self.nft(&args);
    }

    /// The `dhost` command (as [`dhost_command`]), run inside the namespace.
    pub(crate) fn dhost_command(&self) -> Command {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &self.name, env!("CARGO_BIN_EXE_dhost")])
            .env("DHOST_CACHE_DIR", cache_dir())
            .env_remove("RUST_LOG")
            .env_remove("DHOST_GROUP")
            .env_remove("DHOST_IFACE")
            .env_remove("DHOST_KEY_FILE");
        cmd
    }

    /// Starts `dhost ARGS` inside the namespace.
    pub(crate) fn start<S: AsRef<std::ffi::OsStr>>(&self, args: &[S]) -> Dhost {
        let mut cmd = self.dhost_command();
        cmd.args(args);
        Dhost::spawn(cmd)
    }

    /// Runs `f` inside the namespace, on a thread of its own (for a test's own sockets).
    pub(crate) fn run<T: Send + 'static>(&self, f: impl FnOnce() -> T + Send + 'static) -> T {
        self.run_in_background(f)
            .join()
            .expect("the thread in the namespace")
    }

    /// Starts `f` inside the namespace, on a thread of its own; join it for its result.
    pub(crate) fn run_in_background<T: Send + 'static>(
        &self,
        f: impl FnOnce() -> T + Send + 'static,
    ) -> std::thread::JoinHandle<T> {
        let path = format!("/run/netns/{}", self.name);
        std::thread::spawn(move || {
            let file = std::fs::File::open(&path).expect("the namespace's file");
            // SAFETY: setns on this thread only, with a namespace file descriptor.
            let rc =
                unsafe { libc::setns(std::os::fd::AsRawFd::as_raw_fd(&file), libc::CLONE_NEWNET) };
            assert_eq!(rc, 0, "setns: {}", std::io::Error::last_os_error());
            f()
        })
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .status();
    }
}

/// The TCP address a node says it takes calls on (once it is ready).
pub(crate) fn tcp_port(node: &Dhost) -> std::net::SocketAddr {
    let err = node.stderr();
    let at = err.find("calls on ").expect("the node logs its port") + "calls on ".len();
    let end = err[at..]
        .find(|c: char| c.is_whitespace())
        .unwrap_or(err.len() - at);
    err[at..at + end].parse().expect("an address")
}

/// The lines of `text` that are chat messages (`[user]: msg`), prompts removed.
pub(crate) fn chat_lines(text: &str) -> Vec<String> {
    BufReader::new(text.as_bytes())
        .lines()
        .map_while(Result::ok)
        .map(|l| l.trim_start_matches("Username: ").to_string())
        .filter(|l| l.starts_with('['))
        .collect()
}

/// The node names in the output of `dhost peers` (the first word of every line but the
/// heading).
pub(crate) fn peer_names(out: &str) -> Vec<String> {
    out.lines()
        .skip(1)
        .filter_map(|l| l.split_whitespace().next().map(str::to_string))
        .collect()
}

/// Sends calls to the hostile guests' `dhost:hostile/attacks#function(args)` to the group,
/// as a node would.
pub(crate) struct Attacker {
    socket: UdpSocket,
    sender: u64,
    seq: u64,
}

impl Attacker {
    pub(crate) fn new(group: SocketAddrV4) -> Self {
        Attacker {
            socket: group_sender(group),
            sender: u64::from(std::process::id()) << 16,
            seq: 0,
        }
    }

    pub(crate) fn attack(&mut self, function: &str, args: &[ciborium::Value]) {
        self.seq += 1;
        let mut datagram = Vec::new();
        dhost::wire::encode_header(self.sender, Some(self.seq), &mut datagram);
        let id = format!("dhost:hostile/attacks#{function}");
        dhost::wire::encode_call(self.seq, &id, args, &mut datagram);
        self.socket.send(&datagram).unwrap();
    }
}

/// What a stress receiver printed when the run finished.
#[derive(Debug)]
pub(crate) struct Report {
    pub(crate) in_order: u64,
    pub(crate) lost: u64,
    pub(crate) out_of_order: u64,
    pub(crate) seconds: f64,
}

/// The receiver's report in `stdout`, if it printed one.
pub(crate) fn report(stdout: &str) -> Option<Report> {
    let line = stdout.lines().find(|l| l.starts_with("stress: "))?;
    let words: Vec<&str> = line.split_whitespace().collect();
    // stress: IN of COUNT values in order in SECS s (RATE calls/s), LOST lost, OOO out of order
    let number = |i: usize| words.get(i)?.trim_end_matches(',').parse::<f64>().ok();
    Some(Report {
        in_order: number(1)? as u64,
        seconds: number(8)?,
        lost: number(12)? as u64,
        out_of_order: number(14)? as u64,
    })
}

/// Waits for `node`'s report.
pub(crate) fn wait_report(node: &Dhost) -> Report {
    node.wait_stdout("the receiver's report", |out| report(out).is_some());
    report(&node.stdout()).expect("a report")
}

/// Asserts that `node` received all `count` values, in order.
pub(crate) fn assert_all_in_order(node: &Dhost, count: u64) -> Report {
    let r = wait_report(node);
    assert_eq!(
        (r.in_order, r.lost, r.out_of_order),
        (count, 0, 0),
        "{}\n{}",
        node.stdout(),
        node.stderr()
    );
    r
}

/// What a stopping node said it received from `peer`: calls received, repaired, lost.
pub(crate) fn received_from(node: &mut Dhost, peer: &str) -> (u64, u64, u64) {
    // (Its summary names the peer once it has heard it announce itself.)
    node.wait_stderr("the peer's name", |err| {
        err.contains(&format!("peer {peer} ("))
    });
    node.interrupt();
    let err = node.stderr();
    stream_summaries(&err, peer)
        .first()
        .copied()
        .unwrap_or_else(|| panic!("no summary of {peer}'s stream:\n{err}"))
}

/// Every line of a stopped node's summary of `peer`'s streams (one per stream it followed:
/// a peer silent for too long is followed anew): calls received, repaired, lost.
pub(crate) fn stream_summaries(stderr: &str, peer: &str) -> Vec<(u64, u64, u64)> {
    let prefix = format!("from {peer}: ");
    stderr
        .lines()
        .filter_map(|l| l.split_once(&prefix).map(|(_, rest)| rest))
        .map(|line| {
            // N calls received (R repaired), L lost (D datagrams); X duplicate datagrams
            let numbers: Vec<u64> = line
                .split(|c: char| !c.is_ascii_digit())
                .filter_map(|w| w.parse().ok())
                .collect();
            (numbers[0], numbers[1], numbers[2])
        })
        .collect()
}
