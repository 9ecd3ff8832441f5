//! Load on a mailbox server: CLIENTS clients (default 50) on one `dipc` on loopback, half
//! writing 1 KiB and half reading, one command at a time each (as `redis-benchmark` does
//! without pipelining), for SECONDS seconds (default 5); prints the operations per second
//! and the latencies.
//!
//!     cargo bench -p dhost-mailbox --bench mailbox_load [-- CLIENTS SECONDS]
//!
//! With `REDIS_PORT` set, the same clients (same threads, same one-at-a-time loop) then
//! run SET and GET of 1 KiB values against the redis-server on that port, a baseline in
//! the same run; `scripts/bench-mailboxes.sh` starts one and also runs `redis-benchmark`.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::Command;
use std::time::{Duration, Instant};

/// The mailboxes the clients share.
const MAILBOXES: usize = 8;

/// What each write carries.
const DATA: usize = 1024;

fn main() {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    let clients: usize = args.first().and_then(|a| a.parse().ok()).unwrap_or(50);
    let seconds: u64 = args.get(1).and_then(|a| a.parse().ok()).unwrap_or(5);
    let port = TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let state = std::env::temp_dir().join(format!("dhost-bench-{}", std::process::id()));
    let dipc = env!("CARGO_BIN_EXE_dipc");
    let dipcrm = env!("CARGO_BIN_EXE_dipcrm");
    let started = Command::new(dipc)
        .args([
            &MAILBOXES.to_string(),
            "1",
            &port.to_string(),
            "1",
            "--bind",
            "127.0.0.1",
        ])
        .env("DHOST_STATE_DIR", &state)
        .status()
        .expect("dipc runs");
    assert!(started.success(), "dipc failed to start");

    let dipc_results = load(port, clients, seconds, Protocol::Mailbox);
    let _ = Command::new(dipcrm)
        .arg(port.to_string())
        .env("DHOST_STATE_DIR", &state)
        .status();
    let _ = std::fs::remove_dir_all(&state);
    report("mailboxes", &dipc_results, seconds, clients);

    if let Some(redis) = std::env::var("REDIS_PORT")
        .ok()
        .and_then(|p| p.parse().ok())
    {
        let redis_results = load(redis, clients, seconds, Protocol::Redis);
        report("redis (same clients)", &redis_results, seconds, clients);
    }
}

/// What the clients speak.
#[derive(Debug, Clone, Copy)]
enum Protocol {
    /// `w N 1024` + data / `r N`.
    Mailbox,
    /// RESP `SET kN data` / `GET kN`.
    Redis,
}

/// Runs the clients; for each, whether it wrote, and its operations' times.
fn load(port: u16, clients: usize, seconds: u64, protocol: Protocol) -> Vec<(bool, Vec<Duration>)> {
    let until = Instant::now() + Duration::from_secs(seconds);
    let threads: Vec<_> = (0..clients)
        .map(|id| {
            std::thread::spawn(move || {
                let stream = TcpStream::connect(("127.0.0.1", port)).expect("the server accepts");
                stream.set_nodelay(true).expect("nodelay");
                let mut reader = BufReader::new(stream.try_clone().expect("a clone"));
                let mut writer = stream;
                let data = vec![b'a' + (id % 26) as u8; DATA];
                let mut times = Vec::new();
                let mut line = String::new();
                let mut body = vec![0u8; DATA + 2];
                let mailbox = id % MAILBOXES;
                let (mut write, read) = match protocol {
                    Protocol::Mailbox => (
                        format!("w {mailbox} {DATA}\n").into_bytes(),
                        format!("r {mailbox}\n").into_bytes(),
                    ),
                    Protocol::Redis => (
                        format!("*3\r\n$3\r\nSET\r\n$2\r\nk{mailbox}\r\n${DATA}\r\n").into_bytes(),
                        format!("*2\r\n$3\r\nGET\r\n$2\r\nk{mailbox}\r\n").into_bytes(),
                    ),
                };
                write.extend_from_slice(&data);
                if let Protocol::Redis = protocol {
                    write.extend_from_slice(b"\r\n");
                }
                let writes = id % 2 == 0;
                while Instant::now() < until {
                    let op = Instant::now();
                    line.clear();
                    writer
                        .write_all(if writes { &write } else { &read })
                        .expect("a request goes out");
                    reader.read_line(&mut line).expect("a reply");
                    // A read's reply: `OK LENGTH` (mailbox) or `$LENGTH` (redis), then the
                    // data and a line end; `$-1` is a key not set yet.
                    let length = line
                        .trim_end()
                        .strip_prefix("OK ")
                        .or_else(|| line.trim_end().strip_prefix('$'))
                        .and_then(|n| n.parse::<usize>().ok());
                    match (writes, length) {
                        (true, _) => assert!(line == "OK\r\n" || line == "+OK\r\n", "{line}"),
                        (false, Some(len)) => {
                            reader.read_exact(&mut body[..len + 2]).expect("the data")
                        }
                        (false, None) => assert_eq!(line, "$-1\r\n"),
                    }
                    times.push(op.elapsed());
                }
                (writes, times)
            })
        })
        .collect();
    threads
        .into_iter()
        .map(|t| t.join().expect("a client failed"))
        .collect()
}

fn report(name: &str, results: &[(bool, Vec<Duration>)], seconds: u64, clients: usize) {
    for (op, writes) in [("write 1 KiB", true), ("read 1 KiB", false)] {
        let mut times: Vec<Duration> = results
            .iter()
            .filter(|r| r.0 == writes)
            .flat_map(|r| r.1.iter().copied())
            .collect();
        times.sort();
        let at = |q: f64| times[((times.len() - 1) as f64 * q) as usize];
        println!(
            "{name} {op}: {:.0} ops/s, median {:.1} us, p99 {:.1} us, max {:.1} ms",
            times.len() as f64 / seconds as f64,
            at(0.5).as_secs_f64() * 1e6,
            at(0.99).as_secs_f64() * 1e6,
            at(1.0).as_secs_f64() * 1e3
        );
    }
    let total: usize = results.iter().map(|r| r.1.len()).sum();
    println!(
        "{name} total: {:.0} ops/s, {clients} clients (half writing, half reading) on {MAILBOXES} keys",
        total as f64 / seconds as f64
    );
}
