//! End-to-end tests of `dipc` and `dipcrm` as the DIPC assignment uses them: many clients
//! at once on a few mailboxes (no torn reads, bounded waits), hostile clients, the
//! assignment's Python client, store files, and clients that do not read their replies.

mod text_client;

use std::io::Write;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};
use text_client::Client;

/// The repository's root.
fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// A fresh directory of this test's own under target/.
fn scratch_dir(tag: &str) -> PathBuf {
    let dir = root()
        .join("target/test-scratch")
        .join(format!("{tag}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A port free right now on 127.0.0.1.
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Runs `dipc` or `dipcrm` with a state directory of the test's own.
fn run(program: &str, state: &Path, args: &[&str]) -> (ExitStatus, String, String) {
    let exe = match program {
        "dipc" => env!("CARGO_BIN_EXE_dipc"),
        _ => env!("CARGO_BIN_EXE_dipcrm"),
    };
    let out = Command::new(exe)
        .args(args)
        .env("DHOST_STATE_DIR", state)
        .stdin(Stdio::null())
        .output()
        .expect("it runs");
    (
        out.status,
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn state_dir(tag: &str) -> PathBuf {
    scratch_dir(tag)
}

/// Starts `dipc MAILBOXES SIZE PORT PACKET EXTRA...` on a free port of 127.0.0.1, with a
/// state directory of its own (`tag`); returns the directory, the port and its address.
fn start_dipc(
    tag: &str,
    [mailboxes, size, packet]: [&str; 3],
    extra: &[&str],
) -> (PathBuf, String, SocketAddr) {
    let state = state_dir(tag);
    let port = free_port().to_string();
    let mut args = vec![mailboxes, size, &port, packet, "--bind", "127.0.0.1"];
    args.extend(extra);
    let (status, _, err) = run("dipc", &state, &args);
    assert!(status.success(), "{err}");
    let addr = format!("127.0.0.1:{port}").parse().unwrap();
    (state, port, addr)
}

#[test]
fn dipc_and_dipcrm_as_the_assignment_uses_them() {
    let state = state_dir("dipc");
    let port = free_port();
    let p = port.to_string();
    let started = Instant::now();
    let (status, out, err) = run("dipc", &state, &["8", "4", &p, "1", "--bind", "127.0.0.1"]);
    assert!(status.success(), "{err}");
    assert!(started.elapsed() < Duration::from_secs(5));
    assert!(
        out.contains(&format!(
            "serving 8 mailboxes of 4 KiB, packets of at most 1 KiB on port {port}"
        )),
        "{out}"
    );
    let pid_file = state.join(format!("dipc-{port}.pid"));
    let pid: u32 = std::fs::read_to_string(&pid_file)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert!(Path::new(&format!("/proc/{pid}")).exists());

    // The port accepts at once; a telnet session, the Python client, a binary client.
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let mut telnet = Client::connect(addr);
    telnet.send(b"w 3\r\n");
    std::thread::sleep(Duration::from_millis(200));
    telnet.send(b"hello from telnet\r\n");
    assert_eq!(telnet.line(), "OK");
    telnet.send(b"r 3\r\n");
    assert_eq!(telnet.line(), "OK 17");
    assert_eq!(telnet.line(), "hello from telnet");
    let mut python = Client::connect(addr);
    python.send(b"w 3\nhello");
    assert_eq!(python.line(), "OK");
    assert_eq!(python.read(3).unwrap(), b"hello");
    let mut binary = Client::connect(addr);
    assert_eq!(binary.write(7, b"\x00\xff\r\n\x01"), "OK");
    assert_eq!(binary.read(7).unwrap(), b"\x00\xff\r\n\x01");
    assert_eq!(binary.read(0).unwrap(), b"");
    binary.send(b"q\n");
    assert_eq!(binary.line(), "BYE");

    // Another server on the same port, and bad arguments, fail and leave nothing behind.
    let (status, _, err) = run("dipc", &state, &["8", "4", &p, "1", "--bind", "127.0.0.1"]);
    assert!(!status.success());
    assert!(err.contains("Address already in use"), "{err}");
    let other = free_port().to_string();
    for (args, want) in [
        (
            vec!["0", "4", &other, "1"],
            "the number of mailboxes must be at least 1",
        ),
        (
            vec!["8", "0", &other, "1"],
            "the mailbox size must be at least 1",
        ),
        (
            vec!["8", "4", &other, "0"],
            "the packet size must be at least 1",
        ),
        (
            vec!["8", "4", &other, "5"],
            "a packet of 5 KiB is larger than a mailbox of 4 KiB",
        ),
        (vec!["8", "4", "0", "1"], "0 is not in 1..=65535"),
        (
            vec!["8", "x", &other, "1"],
            "invalid value 'x' for '<SIZE>'",
        ),
        (vec!["8", "4", &other], "required"),
    ] {
        let (status, _, err) = run("dipc", &state, &args);
        assert!(!status.success(), "{args:?}");
        assert!(err.contains(want), "{args:?}: {err}");
    }
    assert!(!state.join(format!("dipc-{other}.pid")).exists());

    // dipcrm stops it: the port closes, the process goes, the pid file is removed.
    drop((telnet, python));
    let (status, _, err) = run("dipcrm", &state, &[&p]);
    assert!(status.success(), "{err}");
    assert!(TcpStream::connect(addr).is_err(), "the port is closed");
    assert!(
        !Path::new(&format!("/proc/{pid}/cmdline")).exists() || {
            // (a zombie until its parent, gone already, is reaped by init)
            std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| s.contains(") Z"))
        }
    );
    assert!(!pid_file.exists());
    let (status, _, err) = run("dipcrm", &state, &[&p]);
    assert!(!status.success());
    assert!(
        err.contains(&format!("no dipc server runs on port {port}")),
        "{err}"
    );
}

/// What writer `id` writes the `seq`-th time: a header that names it, then a body that
/// depends on both, so that a mix of two writes cannot pass for one.
fn payload(id: usize, seq: usize) -> Vec<u8> {
    let len = 200 + (id * 37 + seq * 11) % 800;
    let mut data = format!("{id}:{seq}:").into_bytes();
    data.extend((0..len).map(|i| b'a' + ((id * 7 + seq * 13 + i) % 26) as u8));
    data
}

/// Whether `data` is exactly one complete payload.
fn is_whole(data: &[u8]) -> bool {
    if data.is_empty() {
        return true; // never written yet
    }
    let text = String::from_utf8_lossy(data);
    let mut parts = text.splitn(3, ':');
    let (Some(id), Some(seq)) = (parts.next(), parts.next()) else {
        return false;
    };
    match (id.parse(), seq.parse()) {
        (Ok(id), Ok(seq)) => payload(id, seq) == data,
        _ => false,
    }
}

#[test]
fn many_clients_at_once_see_only_whole_writes_and_never_wait_forever() {
    let (state, p, addr) = start_dipc("dipc-load", ["4", "1", "1"], &[]);
    let until = Instant::now() + Duration::from_secs(4);
    let clients: Vec<_> = (0..64)
        .map(|id| {
            std::thread::spawn(move || {
                let mut client = Client::connect(addr);
                let (mut ops, mut longest) = (0usize, Duration::ZERO);
                let mut seq = 0;
                while Instant::now() < until {
                    let mailbox = (id + ops) % 4;
                    let started = Instant::now();
                    if id % 2 == 0 {
                        seq += 1;
                        assert_eq!(client.write(mailbox, &payload(id, seq)), "OK");
                    } else {
                        let data = client.read(mailbox).expect("a read succeeds");
                        assert!(
                            is_whole(&data),
                            "a torn read: {}",
                            String::from_utf8_lossy(&data)
                        );
                    }
                    longest = longest.max(started.elapsed());
                    ops += 1;
                }
                (id % 2 == 0, ops, longest)
            })
        })
        .collect();
    let results: Vec<(bool, usize, Duration)> = clients
        .into_iter()
        .map(|c| c.join().expect("no client failed"))
        .collect();
    let writes: usize = results.iter().filter(|r| r.0).map(|r| r.1).sum();
    let reads: usize = results.iter().filter(|r| !r.0).map(|r| r.1).sum();
    let longest_write = results.iter().filter(|r| r.0).map(|r| r.2).max().unwrap();
    let longest_read = results.iter().filter(|r| !r.0).map(|r| r.2).max().unwrap();
    eprintln!(
        "64 clients, 4 s: {writes} writes, {reads} reads; the longest wait of a writer \
         {longest_write:?}, of a reader {longest_read:?}"
    );
    assert!(writes > 0 && reads > 0);
    assert!(
        results.iter().all(|r| r.1 > 0),
        "every client got through (no starvation)"
    );
    assert!(longest_write < Duration::from_secs(5) && longest_read < Duration::from_secs(5));
    assert!(run("dipcrm", &state, &[&p]).0.success());
}

#[test]
fn hostile_clients_get_errors_and_the_server_keeps_serving() {
    let (state, p, addr) = start_dipc("dipc-hostile", ["4", "1", "1"], &[]);
    let mut c = Client::connect(addr);
    assert_eq!(c.write(1, b"before"), "OK");
    for (command, want) in [
        (&b"x\n"[..], "ERR unknown command `x`"),
        (b"r\n", "ERR unknown command `r`"),
        (b"r 4\n", "ERR no mailbox 4: mailboxes are numbered 0 to 3"),
        (
            b"r 99999999999999999999999\n",
            "ERR `99999999999999999999999` is not a mailbox number",
        ),
        (b"w -1 3\nabc", "ERR `-1` is not a mailbox number"),
        (b"\xff\xfe\x00\n", "ERR a command line must be text"),
    ] {
        c.send(command);
        let line = c.line();
        assert!(line.starts_with(want), "{command:?}: {line}");
    }
    let mut long = vec![b'r'; 10_000];
    long.push(b'\n');
    c.send(&long);
    assert_eq!(c.line(), "ERR a command line is at most 256 bytes");
    let big = vec![b'z'; 1025];
    assert_eq!(
        c.write(1, &big),
        "ERR 1025 bytes is more than a write may carry (1024 bytes)"
    );
    assert_eq!(
        c.read(1).unwrap(),
        b"before",
        "the connection is still usable"
    );

    // A client that goes away in the middle of a write: the mailbox keeps what it had.
    let mut quitter = TcpStream::connect(addr).unwrap();
    quitter.write_all(b"w 1 100\nonly part of it").unwrap();
    drop(quitter);
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(c.read(1).unwrap(), b"before");

    // A thousand connections at once are all served.
    let mut many: Vec<Client> = (0..1000).map(|_| Client::connect(addr)).collect();
    for client in &mut many {
        client.send(b"r 1\n");
    }
    for client in &mut many {
        assert_eq!(client.line(), "OK 6");
        assert_eq!(client.line(), "before");
    }
    drop(many);
    assert!(run("dipcrm", &state, &[&p]).0.success());
}

#[test]
fn the_python_client_talks_to_dipc() {
    if Command::new("python3").arg("--version").output().is_err() {
        eprintln!("no python3 here: the Python client is not tested");
        return;
    }
    let (state, p, _) = start_dipc("dipc-python", ["4", "1", "1"], &[]);
    let mut client = Command::new("python3")
        .arg(root().join("scripts/dipc_client.py"))
        .arg(&p)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    client
        .stdin
        .take()
        .unwrap()
        .write_all(b"w 2 hello there\nr 2\nr 9\nq\n")
        .unwrap();
    let out = client.wait_with_output().unwrap();
    assert!(out.status.success());
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "OK\r\nOK 11\r\nhello there\r\nERR no mailbox 9: mailboxes are numbered 0 to 3\r\nBYE\r\n"
    );
    assert!(run("dipcrm", &state, &[&p]).0.success());
}

#[test]
fn a_store_file_keeps_the_mailboxes_across_a_restart() {
    let state = state_dir("dipc-store");
    let store = state.join("boxes.store");
    let _ = std::fs::remove_file(&store);
    let port = free_port();
    let p = port.to_string();
    let s = store.to_str().unwrap();
    let start = |count: &str| {
        run(
            "dipc",
            &state,
            &[count, "1", &p, "1", "--bind", "127.0.0.1", "--store", s],
        )
    };
    let (status, _, err) = start("4");
    assert!(status.success(), "{err}");
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let mut c = Client::connect(addr);
    assert_eq!(c.write(2, b"survives"), "OK");
    drop(c);
    assert!(run("dipcrm", &state, &[&p]).0.success());

    let (status, _, err) = start("4");
    assert!(status.success(), "{err}");
    let mut c = Client::connect(addr);
    assert_eq!(c.read(2).unwrap(), b"survives");
    assert_eq!(c.read(1).unwrap(), b"");
    drop(c);
    assert!(run("dipcrm", &state, &[&p]).0.success());

    // A store made for other mailboxes is refused, before anything starts.
    let (status, _, err) = start("5");
    assert!(!status.success());
    assert!(
        err.contains("holds 4 mailboxes of 1 KiB, not 5 of 1 KiB"),
        "{err}"
    );
    assert!(!state.join(format!("dipc-{port}.pid")).exists());
}

#[test]
fn a_client_that_does_not_read_its_replies_is_cut_off() {
    let (state, p, addr) = start_dipc(
        "dipc-deaf",
        ["1", "1024", "1024"],
        &["--idle-timeout", "1s", "--max-connections", "1"],
    );
    let mut writer = Client::connect(addr);
    assert_eq!(writer.write(0, &vec![b'm'; 1024 * 1024]), "OK");
    drop(writer);
    std::thread::sleep(Duration::from_millis(300)); // its slot is free again
    // Asks for a mebibyte fifty times and never reads: the server's writes stall, and the
    // one connection the server allows is taken.
    let mut deaf = TcpStream::connect(addr).unwrap();
    deaf.write_all(&b"r 0\n".repeat(50)).unwrap();
    let started = Instant::now();
    loop {
        let mut c = Client::connect(addr);
        c.send(b"r 9\n");
        let line = c.line();
        if line.starts_with("ERR no mailbox 9") {
            break; // a slot was free: the deaf client was cut off
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "the deaf client kept its slot"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let started = Instant::now();
    assert!(run("dipcrm", &state, &[&p]).0.success());
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "dipcrm took {:?}",
        started.elapsed()
    );
    drop(deaf);
}

/// The addresses a process listens on at TCP `port` (from /proc/net/tcp and tcp6), as hex.
fn listening_on(port: u16) -> Vec<String> {
    let port = format!(":{port:04X}");
    ["/proc/net/tcp", "/proc/net/tcp6"]
        .iter()
        .filter_map(|f| std::fs::read_to_string(f).ok())
        .flat_map(|table| {
            table
                .lines()
                .skip(1)
                .filter_map(|line| {
                    let fields: Vec<&str> = line.split_whitespace().collect();
                    // local_address, and state 0A: listening.
                    (fields.get(3) == Some(&"0A") && fields[1].ends_with(&port))
                        .then(|| fields[1].to_string())
                })
                .collect::<Vec<_>>()
        })
        .collect()
}

#[test]
fn dipc_serves_loopback_unless_told_and_keeps_its_files_its_users_own() {
    use std::os::unix::fs::MetadataExt as _;
    let state = state_dir("dipc-private");
    let store = state.join("private.store");
    let _ = std::fs::remove_file(&store);
    let port = free_port();
    let p = port.to_string();

    // Off loopback without --insecure: refused, saying why, and nothing is left behind.
    let (status, _, err) = run("dipc", &state, &["4", "1", &p, "1", "--bind", "0.0.0.0"]);
    assert!(!status.success());
    assert!(
        err.contains("--bind 0.0.0.0 is not a loopback address") && err.contains("--insecure"),
        "{err}"
    );
    assert!(!state.join(format!("dipc-{port}.pid")).exists());
    assert!(listening_on(port).is_empty());

    // By default: loopback only (127.0.0.1 is 0100007F in /proc/net/tcp).
    let s = store.to_str().unwrap();
    let (status, _, err) = run("dipc", &state, &["4", "1", &p, "1", "--store", s]);
    assert!(status.success(), "{err}");
    assert_eq!(listening_on(port), [format!("0100007F:{port:04X}")]);
    let mut c = Client::connect(format!("127.0.0.1:{port}").parse().unwrap());
    assert_eq!(c.write(1, b"secret"), "OK");
    drop(c);
    // The store (what clients wrote) and the log are the user's alone.
    for file in [store.clone(), state.join(format!("dipc-{port}.log"))] {
        let mode = std::fs::metadata(&file).unwrap().mode() & 0o777;
        assert_eq!(mode, 0o600, "{}", file.display());
    }
    assert!(run("dipcrm", &state, &[&p]).0.success());

    // Told: every interface.
    let (status, _, err) = run(
        "dipc",
        &state,
        &["4", "1", &p, "1", "--bind", "0.0.0.0", "--insecure"],
    );
    assert!(status.success(), "{err}");
    assert_eq!(listening_on(port), [format!("00000000:{port:04X}")]);
    assert!(run("dipcrm", &state, &[&p]).0.success());
}
