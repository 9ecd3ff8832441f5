//! Zenoh's own round trip through a router, for `scripts/bench.sh` to set beside a dhost
//! call with a reply through the same router: one process answers queries on a key (as
//! Zenoh's `z_queryable` does), another asks N times in turn with a small payload (as
//! `z_get` does) and prints the median and 99th percentile, in the words of the bench's
//! other round trips.
//!
//! ```text
//! cargo run --release --example zenoh_round_trip -- serve tcp/127.0.0.1:7447 &
//! cargo run --release --example zenoh_round_trip -- ask tcp/127.0.0.1:7447 [N]
//! 5000 round trips: median 123.4 us, p99 234.5 us
//! ```

use std::time::{Duration, Instant};
use zenoh::Wait as _;

/// The key the server answers on.
const KEY: &str = "dhost-bench/zenoh-round-trip";

fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let mut args = std::env::args().skip(1);
    let role = args.next().unwrap_or_default();
    let endpoint = args
        .next()
        .unwrap_or_else(|| "tcp/127.0.0.1:7447".to_string());
    let count: usize = args.next().map_or(Ok(5000), |c| c.parse())?;
    let mut config = zenoh::Config::default();
    config.insert_json5("mode", "\"client\"")?;
    config.insert_json5("connect/endpoints", &format!("[\"{endpoint}\"]"))?;
    config.insert_json5("scouting/multicast/enabled", "false")?;
    let session = zenoh::open(config).wait()?;
    match role.as_str() {
        "serve" => {
            let _queryable = session
                .declare_queryable(KEY)
                .callback(|query| {
                    let payload = query.payload().map(|p| p.to_bytes().into_owned());
                    let reply = query.reply(KEY, payload.unwrap_or_default());
                    let _ = reply.express(true).wait();
                })
                .wait()?;
            println!("ready");
            std::thread::park();
        }
        "ask" => {
            let payload = vec![7u8; 64];
            let mut times = Vec::with_capacity(count);
            // (A few first, unmeasured, while the routes settle.)
            for n in 0..count + 100 {
                let started = Instant::now();
                let replies = session
                    .get(KEY)
                    .payload(payload.clone())
                    .express(true)
                    .timeout(Duration::from_secs(5))
                    .wait()?;
                let reply = replies.recv()?;
                reply.result().map_err(|e| format!("{e:?}"))?;
                if n >= 100 {
                    times.push(started.elapsed());
                }
            }
            report(times);
        }
        // The same with publications: `pong` echoes what comes on KEY/ping on KEY/pong.
        "pong" => {
            let publisher = session
                .declare_publisher(format!("{KEY}/pong"))
                .express(true)
                .wait()?;
            let _subscriber = session
                .declare_subscriber(format!("{KEY}/ping"))
                .callback(move |sample| {
                    let _ = publisher
                        .put(sample.payload().to_bytes().into_owned())
                        .wait();
                })
                .wait()?;
            println!("ready");
            std::thread::park();
        }
        "ping" => {
            let publisher = session
                .declare_publisher(format!("{KEY}/ping"))
                .express(true)
                .wait()?;
            let subscriber = session.declare_subscriber(format!("{KEY}/pong")).wait()?;
            std::thread::sleep(Duration::from_millis(300));
            let mut times = Vec::with_capacity(count);
            for n in 0..count + 100 {
                let started = Instant::now();
                publisher.put(vec![7u8; 64]).wait()?;
                subscriber.recv()?;
                if n >= 100 {
                    times.push(started.elapsed());
                }
            }
            report(times);
        }
        other => return Err(format!("`{other}`: say serve, ask, pong or ping").into()),
    }
    session.close().wait()?;
    Ok(())
}

/// Prints the median and 99th percentile of `times`.
fn report(mut times: Vec<Duration>) {
    times.sort();
    let at = |q: f64| times[((times.len() - 1) as f64 * q) as usize].as_secs_f64() * 1e6;
    println!(
        "{} round trips: median {:.1} us, p99 {:.1} us",
        times.len(),
        at(0.5),
        at(0.99)
    );
}
