//! End-to-end tests of `dhost router`: Zenoh's own router in a `dhost` process, through
//! which stock Zenoh clients (the zenoh crate's, in this test) that cannot reach each other
//! exchange publications, across two routers joined with `--connect`; a clean stop on
//! Ctrl-C; and the refusals of endpoints and files it cannot use.

mod common;
#[path = "zenoh/client.rs"]
mod zenoh_clients;

use common::*;
use std::time::{Duration, Instant};
use zenoh::Wait as _;
use zenoh_clients::zenoh_client;

/// `dhost router --listen tcp/127.0.0.1:PORT EXTRA...`, once it says it listens.
fn router(port: u16, extra: &[&str]) -> Dhost {
    let listen = format!("tcp/127.0.0.1:{port}");
    let mut args = vec!["router", "--listen", listen.as_str()];
    args.extend(extra);
    let router = Dhost::start(&args);
    router_ready(&router, &listen);
    router
}

/// A Zenoh client session of the router at `port`.
fn client(port: u16) -> zenoh::Session {
    zenoh_client(port, PATIENCE)
}

#[test]
fn clients_of_two_chained_routers_exchange_publications_and_a_router_stops_on_ctrl_c() {
    let (port_a, port_b) = (free_port(), free_port());
    let mut a = router(port_a, &[]);
    let connect = format!("tcp/127.0.0.1:{port_a}");
    let mut b = router(port_b, &["--connect", &connect]);
    let (listener, speaker) = (client(port_a), client(port_b));
    let key = format!("dhost-test/router/{port_a}");
    let heard = listener
        .declare_subscriber(&key)
        .wait()
        .expect("a subscriber");
    // The subscription takes a moment to reach router b: say it until it is heard.
    let start = Instant::now();
    let sample = loop {
        speaker.put(&key, "hello across").wait().expect("a put");
        if let Ok(Some(sample)) = heard.recv_timeout(Duration::from_millis(100)) {
            break sample;
        }
        assert!(
            start.elapsed() < PATIENCE,
            "nothing crossed the routers\n--- a:\n{}\n--- b:\n{}",
            a.stderr(),
            b.stderr()
        );
    };
    assert_eq!(
        sample.payload().try_to_string().expect("text"),
        "hello across"
    );
    drop((listener, speaker));
    for router in [&mut b, &mut a] {
        let status = router.interrupt();
        assert!(status.success(), "{status:?}\n{}", router.stderr());
    }
}

#[test]
fn endpoints_and_files_a_router_cannot_use_are_refused_by_name() {
    let (status, _, err) = dhost_output(&["router", "--listen", "127.0.0.1:7447"]);
    assert!(!status.success());
    assert!(
        err.contains("--listen 127.0.0.1:7447: not a Zenoh endpoint"),
        "{err}"
    );
    let (status, _, err) = dhost_output(&["router", "--connect", "udp/127.0.0.1:7447"]);
    assert!(!status.success());
    assert!(err.contains("tcp or tls only"), "{err}");
    let missing = scratch_dir("router-config").join("missing.json5");
    let missing = missing.to_str().expect("a path");
    let (status, _, err) = dhost_output(&["router", "--zenoh-config", missing]);
    assert!(!status.success());
    assert!(err.contains(missing), "{err}");
    // A port another process holds.
    let held = std::net::TcpListener::bind("127.0.0.1:0").expect("a port");
    let port = held.local_addr().expect("an address").port();
    let endpoint = format!("tcp/127.0.0.1:{port}");
    let (status, _, err) = dhost_output(&["router", "--listen", &endpoint]);
    assert!(!status.success());
    assert!(err.contains("cannot start the router"), "{err}");
}
