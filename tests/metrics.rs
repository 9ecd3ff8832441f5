//! End-to-end tests of `dhost run --metrics ADDR`: Prometheus scrapes of a stress
//! receiver and its sender while a million calls go by, whose counters move during the
//! run and end at what was sent; and what the HTTP side answers besides.

mod common;

use common::*;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

/// The address a node started with `--metrics 127.0.0.1:0` serves its metrics on.
fn metrics_addr(node: &Dhost) -> SocketAddr {
    node.wait_stderr("the metrics address", |err| {
        err.contains("metrics on http://")
    });
    let err = node.stderr();
    let at = err.find("metrics on http://").unwrap() + "metrics on http://".len();
    let end = err[at..].find('/').unwrap();
    err[at..at + end].parse().unwrap()
}

/// `METHOD PATH` over HTTP/1.0: the status line and the body.
fn http(addr: SocketAddr, method: &str, path: &str) -> (String, String) {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream.set_read_timeout(Some(PATIENCE)).unwrap();
    write!(stream, "{method} {path} HTTP/1.0\r\nHost: test\r\n\r\n").unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let (head, body) = response.split_once("\r\n\r\n").unwrap_or((&response, ""));
    (
        head.lines().next().unwrap_or_default().to_string(),
        body.to_string(),
    )
}

/// The value of the sample `name` (with its labels) in a scrape, if there.
fn sample(scrape: &str, name: &str) -> Option<u64> {
    scrape
        .lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
}

const RUN: &str = "dhost_function_calls_run_total{function=\"dhost:stress/sink#set-value\"}";
const SENT: &str = "dhost_function_calls_sent_total{function=\"dhost:stress/sink#set-value\"}";

#[test]
fn counters_move_during_a_stress_run_and_end_at_what_was_sent() {
    const COUNT: u64 = 1_000_000;
    let group = unique_group();
    let rx = Dhost::start(&node_args(
        "metrics-rx",
        group,
        &[
            "--metrics",
            "127.0.0.1:0",
            guest("stress").to_str().unwrap(),
        ],
    ));
    let rx_metrics = metrics_addr(&rx);
    rx.wait_stderr("the receiver to start", |err| err.contains("ready in"));
    let (status, before) = http(rx_metrics, "GET", "/metrics");
    assert_eq!(status, "HTTP/1.0 200 OK", "{before}");
    assert_eq!(sample(&before, RUN), None, "nothing ran yet:\n{before}");
    assert!(
        before.contains("dhost_node_info{node=\"metrics-rx\""),
        "{before}"
    );

    let mut cmd = dhost_command();
    cmd.args(node_args(
        "metrics-tx",
        group,
        &[
            "--metrics",
            "127.0.0.1:0",
            "--allow-env",
            "STRESS_COUNT",
            "--max-time",
            "60s",
            // A small window paces the sender, so that the run lasts while it is scraped.
            "--window",
            "64KiB",
            guest("stress-sender").to_str().unwrap(),
        ],
    ))
    .env("STRESS_COUNT", COUNT.to_string());
    let tx = Dhost::spawn(cmd);
    let tx_metrics = metrics_addr(&tx);

    // Scraped during the run: the count moves, and never backwards.
    let mut seen = Vec::new();
    let started = Instant::now();
    while !rx.stdout().contains("stress: ") && started.elapsed() < PATIENCE {
        let (_, scrape) = http(rx_metrics, "GET", "/metrics");
        if let Some(run) = sample(&scrape, RUN) {
            seen.push(run);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(rx.stdout().contains("stress: "), "the run did not end");
    assert!(seen.windows(2).all(|w| w[0] <= w[1]), "{seen:?}");
    let moving: Vec<&u64> = seen.iter().filter(|&&n| n > 0 && n < COUNT).collect();
    assert!(
        !moving.is_empty(),
        "no scrape saw the run under way: {seen:?}"
    );

    // At the end: what the receiver ran is what the sender sent, one call each, and the
    // peer's stream counts them once the receiver announces itself again.
    let (_, rx_end) = http(rx_metrics, "GET", "/metrics");
    assert_eq!(sample(&rx_end, RUN), Some(COUNT), "{rx_end}");
    // (set-value's calls and the sender's `finish`, from the peer that sent them.)
    let from_tx = |metric: &str| sample(&rx_end, &format!("{metric}{{peer=\"metrics-tx\"}}"));
    assert_eq!(
        from_tx("dhost_peer_calls_run_total"),
        Some(COUNT + 1),
        "{rx_end}"
    );
    assert_eq!(
        from_tx("dhost_peer_calls_dropped_total"),
        Some(0),
        "{rx_end}"
    );
    let (_, tx_end) = http(tx_metrics, "GET", "/metrics");
    assert_eq!(sample(&tx_end, SENT), Some(COUNT), "{tx_end}");
    assert!(sample(&tx_end, "dhost_datagrams_sent_total").unwrap() > 0);
    let peer = "dhost_peer_calls_received_total{peer=\"metrics-tx\"}";
    let started = Instant::now();
    loop {
        let (_, scrape) = http(rx_metrics, "GET", "/metrics");
        // (set-value's calls, and the sender's `finish`.)
        if sample(&scrape, peer).is_some_and(|n| n > COUNT) {
            break;
        }
        assert!(started.elapsed() < PATIENCE, "{scrape}");
        std::thread::sleep(Duration::from_millis(100));
    }
    drop(tx);
}

#[test]
fn the_http_side_answers_only_get_metrics() {
    let group = unique_group();
    let node = Dhost::start(&node_args(
        "metrics-http",
        group,
        &["--metrics", "127.0.0.1:0"],
    ));
    let addr = metrics_addr(&node);
    assert_eq!(http(addr, "GET", "/").0, "HTTP/1.0 200 OK");
    let (status, body) = http(addr, "GET", "/nope");
    assert_eq!(status, "HTTP/1.0 404 Not Found");
    assert!(body.contains("/metrics"), "{body}");
    assert_eq!(
        http(addr, "POST", "/metrics").0,
        "HTTP/1.0 405 Method Not Allowed"
    );
    // A scraper that never sends its request is cut off, and others are still served.
    let _silent = TcpStream::connect(addr).unwrap();
    let (status, scrape) = http(addr, "GET", "/metrics");
    assert_eq!(status, "HTTP/1.0 200 OK");
    assert!(
        scrape.contains("# TYPE dhost_calls_run_total counter"),
        "{scrape}"
    );
    // A port in use is refused before the node starts.
    let (status, _, err) = dhost_output(&[
        "run",
        "--metrics",
        &addr.to_string(),
        "--group",
        &unique_group().to_string(),
        "--iface",
        "127.0.0.1",
    ]);
    assert!(!status.success());
    assert!(
        err.contains(&format!("cannot serve the metrics on {addr} (--metrics)")),
        "{err}"
    );
}

/// The sum over every peer of metric `name` in a scrape.
fn sum_by_peer(scrape: &str, name: &str) -> u64 {
    let prefix = format!("{name}{{peer=\"");
    scrape
        .lines()
        .filter(|l| l.starts_with(&prefix))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
        .sum()
}

#[test]
fn calls_over_tcp_count_as_run_or_dropped_for_their_peer() {
    let group = unique_group();
    let node = Dhost::start(&node_args(
        "metrics-calls",
        group,
        &["--metrics", "127.0.0.1:0", guest("kv").to_str().unwrap()],
    ));
    let addr = metrics_addr(&node);
    node.wait_stderr("the node to be ready", |err| {
        err.contains("calls on 127.0.0.1:")
    });
    let call = |function: &str, args: &[&str]| {
        let mut all = vec!["metrics-calls", function];
        all.extend(args);
        client_output("call", group, &all)
    };
    // Run: a well-formed call. Dropped: arguments of the wrong type, and a function the
    // node does not serve.
    let (status, out, err) = call("dhost:kv/store#get", &[r#""k""#]);
    assert!(status.success(), "{err}");
    assert_eq!(out.trim(), "null");
    let (status, _, err) = call("dhost:kv/store#get", &["5"]);
    assert!(!status.success(), "a number for a string key was taken");
    assert!(err.contains("dhost:kv/store#get"), "{err}");
    let (status, _, _) = call("dhost:kv/nope#get", &[]);
    assert!(!status.success(), "a function nobody serves answered");

    let (_, scrape) = http(addr, "GET", "/metrics");
    assert_eq!(
        sum_by_peer(&scrape, "dhost_peer_calls_run_total"),
        1,
        "{scrape}"
    );
    assert_eq!(
        sum_by_peer(&scrape, "dhost_peer_calls_dropped_total"),
        2,
        "{scrape}"
    );
}
