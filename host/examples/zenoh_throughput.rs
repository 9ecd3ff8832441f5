//! Zenoh's own publication throughput, for `scripts/bench.sh` to set beside dhost's through
//! the same router: one process publishes, as fast as Zenoh takes them (congestion control
//! `Block`, as a node publishes), the very bytes a dhost stress sender sends (datagrams of
//! `set-value` calls, packed by dhost's own batcher to 64 KiB), and another counts them,
//! as Zenoh's `z_pub_thr` and `z_sub_thr` do; the rate is given in calls per second (each
//! message carries a datagram's calls), in the stress test's words.
//!
//! ```text
//! cargo run --release --example zenoh_throughput -- sub tcp/127.0.0.1:7447 [COUNT] &
//! cargo run --release --example zenoh_throughput -- pub tcp/127.0.0.1:7447 [COUNT]
//! stress: 10000000 of 10000000 values in order in 0.412 s (24271844 calls/s), 0 lost, 0 out of order
//! ```
//!
//! The subscriber prints that line once it has every message (none is lost: Zenoh's links
//! are reliable), and exits.

use std::time::{Duration, Instant};
use zenoh::Wait as _;

/// The key both use.
const KEY: &str = "dhost-bench/zenoh-throughput";

fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let mut args = std::env::args().skip(1);
    let role = args.next().unwrap_or_default();
    let endpoint = args
        .next()
        .unwrap_or_else(|| "tcp/127.0.0.1:7447".to_string());
    let count: u64 = args.next().map_or(Ok(10_000_000), |c| c.parse())?;
    let (datagram, per_datagram) = stress_datagram();
    let messages = count.div_ceil(per_datagram);
    let mut config = zenoh::Config::default();
    config.insert_json5("mode", "\"client\"")?;
    config.insert_json5("connect/endpoints", &format!("[\"{endpoint}\"]"))?;
    config.insert_json5("scouting/multicast/enabled", "false")?;
    let session = zenoh::open(config).wait()?;
    match role.as_str() {
        "pub" => {
            let publisher = session
                .declare_publisher(KEY)
                .congestion_control(zenoh::qos::CongestionControl::Block)
                .wait()?;
            // (The subscriber's declaration reaches the router first.)
            while !publisher.matching_status().wait()?.matching() {
                std::thread::sleep(Duration::from_millis(10));
            }
            for _ in 0..messages {
                publisher.put(datagram.clone()).wait()?;
            }
            // Let the last messages leave before the session closes.
            std::thread::sleep(Duration::from_millis(500));
        }
        "sub" => {
            let subscriber = session
                .declare_subscriber(KEY)
                .with(zenoh::handlers::FifoChannel::new(4096))
                .wait()?;
            println!("ready");
            subscriber.recv()?;
            let started = Instant::now();
            for _ in 1..messages {
                subscriber.recv()?;
            }
            let seconds = started.elapsed().as_secs_f64();
            let calls = messages * per_datagram;
            println!(
                "stress: {calls} of {calls} values in order in {seconds:.3} s ({} calls/s), 0 lost, 0 out of order",
                (calls as f64 / seconds) as u64
            );
        }
        other => return Err(format!("`{other}`: say pub or sub").into()),
    }
    session.close().wait()?;
    Ok(())
}

/// One full datagram of a stress sender (a header, then one run of `set-value` calls with
/// values about ten million), and how many calls it carries.
fn stress_datagram() -> (Vec<u8>, u64) {
    let mut batcher = dhost::wire::Batcher::new(1, dhost::wire::MAX_DATAGRAM, true);
    let mut args = Vec::new();
    let mut calls = 0u64;
    let full = loop {
        args.clear();
        let value = ciborium::Value::Array(vec![(9_000_000 + calls).into()]);
        dhost::wire::encode_item(&value, &mut args);
        calls += 1;
        if batcher
            .push_call(calls, "dhost:stress/sink#set-value", &args)
            .is_err()
        {
            break batcher.take();
        }
        if let Some(full) = batcher.take_full().into_iter().next() {
            break vec![full];
        }
    };
    let mut datagram = full.into_iter().next().unwrap_or_default();
    dhost::wire::stamp(&mut datagram, 1);
    let carried = dhost::wire::decode_datagram(&datagram)
        .map(|d| {
            d.frames
                .iter()
                .map(|f| match f {
                    dhost::wire::Frame::Call(run) => run.count() as u64,
                    _ => 0,
                })
                .sum()
        })
        .expect("a datagram the batcher made decodes");
    (datagram, carried)
}
