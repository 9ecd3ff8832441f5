//! `dhost run --metrics ADDR`: the node's counters in the Prometheus text format, over HTTP
//! (`GET /metrics`), for a monitoring system to scrape. docs/metrics.md names every metric.
//!
//! The threads keep their counters whether or not anyone scrapes them
//! ([`dhost_runtime::stats::Stats`]: atomics, added once per run of calls rather than per call;
//! a function's are found under a lock once per run, or once per export for calls with
//! replies), and a scrape reads them all through one [`Collector`] (prometheus-client). The HTTP side is hyper's, on the node's network thread, behind the
//! same capped accept loop as the node's TCP port, with a bounded wait for a request's
//! head: a scraper that stalls, or many at once, cannot hold the node.

use bytes::Bytes;
use dhost_mailbox::port::{self, PortLimits, SharedDropLog};
use dhost_runtime::stats::{FunctionCounts, GuestCounts, PeerCalls, Stats};
use http_body_util::Full;
use hyper::{Method, Request, Response, StatusCode};
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::registry::Registry;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// The most scrapers connected at once.
const MAX_SCRAPERS: usize = 16;

/// How long a scraper may take to send a request's head, and to stay idle between requests.
const SCRAPER_PATIENCE: Duration = Duration::from_secs(10);

/// What `GET /metrics` answers with: the node's registry.
#[derive(Debug)]
pub(crate) struct Metrics {
    registry: Registry,
}

impl Metrics {
    /// The metrics of node `node`, read from `stats` at each scrape.
    pub(crate) fn new(node: &str, stats: Arc<Stats>) -> Self {
        let mut registry = Registry::default();
        registry.register(
            "dhost_call_round_trip_seconds",
            "How long the calls with replies that this node's guests made took, for those that \
             returned a result",
            stats.round_trips.0.clone(),
        );
        registry.register_collector(Box::new(StatsCollector {
            node: node.to_string(),
            stats,
        }));
        Metrics { registry }
    }

    /// The metrics, in the Prometheus text format.
    pub(crate) fn render(&self) -> String {
        let mut text = String::new();
        // (Writing to a String cannot fail.)
        let _ = prometheus_client::encoding::prometheus_text::encode(&mut text, &self.registry);
        text
    }

    /// The answer to `request`.
    fn respond(&self, request: &Request<hyper::body::Incoming>) -> Response<Full<Bytes>> {
        let reply = |status: StatusCode, content_type: &str, body: String| {
            let mut response = Response::new(Full::new(Bytes::from(body)));
            *response.status_mut() = status;
            if let Ok(value) = content_type.parse() {
                response
                    .headers_mut()
                    .insert(hyper::header::CONTENT_TYPE, value);
            }
            response
        };
        let text = "text/plain; charset=utf-8";
        match (request.method(), request.uri().path()) {
            (&Method::GET | &Method::HEAD, "/metrics") => reply(
                StatusCode::OK,
                prometheus_client::encoding::prometheus_text::CONTENT_TYPE,
                self.render(),
            ),
            (&Method::GET | &Method::HEAD, "/") => reply(
                StatusCode::OK,
                text,
                "dhost: the node's metrics are at /metrics\n".into(),
            ),
            (&Method::GET | &Method::HEAD, path) => reply(
                StatusCode::NOT_FOUND,
                text,
                format!("no {path} here: the metrics are at /metrics\n"),
            ),
            (method, _) => reply(
                StatusCode::METHOD_NOT_ALLOWED,
                text,
                format!("{method} is not served: GET /metrics\n"),
            ),
        }
    }
}

/// Serves `metrics` over HTTP on `listener` until `stop` is cancelled.
pub(crate) async fn serve(
    listener: tokio::net::TcpListener,
    metrics: Arc<Metrics>,
    stop: CancellationToken,
) {
    let limits = PortLimits::new(MAX_SCRAPERS, SCRAPER_PATIENCE);
    port::serve(
        listener,
        limits,
        stop,
        SharedDropLog::default(),
        Arc::default(),
        move |stream, _| {
            let metrics = metrics.clone();
            async move {
                let service = hyper::service::service_fn(move |request| {
                    let response = metrics.respond(&request);
                    async move { Ok::<_, std::convert::Infallible>(response) }
                });
                hyper::server::conn::http1::Builder::new()
                    .timer(hyper_util::rt::TokioTimer::new())
                    .header_read_timeout(SCRAPER_PATIENCE)
                    .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                    .await
                    .map_err(|e| format!("metrics: {e}"))
            }
        },
    )
    .await;
}

/// Reads the node's counters at each scrape.
#[derive(Debug)]
struct StatsCollector {
    node: String,
    stats: Arc<Stats>,
}

/// A metric's name (without `_total`, which the encoder adds to counters) and help.
type Described = (&'static str, &'static str);

/// A labelled counter: its name and help, and where its value is in counters of `T`.
type Field<T> = (Described, fn(&T) -> &AtomicU64);

impl StatsCollector {
    /// The node-wide counters.
    fn totals(&self) -> [(Described, &AtomicU64); 11] {
        let s = &self.stats;
        [
            (
                (
                    "dhost_datagrams_received",
                    "Datagrams received from the group",
                ),
                &s.datagrams_received,
            ),
            (
                (
                    "dhost_datagrams_malformed",
                    "Datagrams dropped because they could not be decoded",
                ),
                &s.datagrams_malformed,
            ),
            (
                (
                    "dhost_datagrams_overrun",
                    "Datagrams dropped because the event loop was too far behind (repaired later)",
                ),
                &s.datagrams_overrun,
            ),
            (
                (
                    "dhost_datagrams_sent",
                    "Datagrams sent to the group (resends not included)",
                ),
                &s.datagrams_sent,
            ),
            (
                (
                    "dhost_datagrams_resent",
                    "Datagrams resent because a receiver asked",
                ),
                &s.datagrams_resent,
            ),
            (
                (
                    "dhost_datagram_send_errors",
                    "Datagrams that could not be sent",
                ),
                &s.send_errors,
            ),
            (
                (
                    "dhost_calls_run",
                    "Calls run by a local guest or plugin (multicast, or from the TCP port)",
                ),
                &s.calls_delivered,
            ),
            (
                (
                    "dhost_calls_repaired",
                    "Calls received in a repair, after a gap was seen",
                ),
                &s.calls_repaired,
            ),
            (
                (
                    "dhost_calls_lost",
                    "Calls lost for good: their senders no longer held them when asked",
                ),
                &s.calls_lost,
            ),
            (
                (
                    "dhost_calls_dropped",
                    "Calls dropped: no local guest serves the function, refused by a jail, \
                     arguments that do not fit, a guest that trapped in a run or is restarting",
                ),
                &s.calls_dropped,
            ),
            (
                (
                    "dhost_calls_failed",
                    "Calls with replies from the TCP port answered with a failure",
                ),
                &s.calls_failed,
            ),
        ]
    }
}

/// The per-function counters, by metric.
const FUNCTION_METRICS: [Field<FunctionCounts>; 4] = [
    (
        (
            "dhost_function_calls_received",
            "Calls that came for a function, from peers' streams, the TCP port or this node's \
             guests; the function (not served) counts calls no local guest serves",
        ),
        |c| &c.received,
    ),
    (
        (
            "dhost_function_calls_run",
            "Calls to a function a local guest or plugin ran",
        ),
        |c| &c.run,
    ),
    (
        (
            "dhost_function_calls_dropped",
            "Calls to a function dropped: not served here, refused by a jail, arguments that \
             do not fit, failed or trapped in the guest",
        ),
        |c| &c.dropped,
    ),
    (
        (
            "dhost_function_calls_sent",
            "Calls to a function that this node's guests sent to the group",
        ),
        |c| &c.sent,
    ),
];

/// The per-peer counters of calls, by metric.
const PEER_CALL_METRICS: [Field<PeerCalls>; 2] = [
    (
        (
            "dhost_peer_calls_run",
            "Calls from a peer (its stream or the TCP port) that a local guest or plugin ran; \
             the peer (this node) counts this node's own calls",
        ),
        |c| &c.run,
    ),
    (
        (
            "dhost_peer_calls_dropped",
            "Calls from a peer dropped here: not served, refused by a jail, arguments that do \
             not fit, failed or trapped in the guest",
        ),
        |c| &c.dropped,
    ),
];

/// The per-guest counters, by metric.
const GUEST_METRICS: [Field<GuestCounts>; 2] = [
    (
        (
            "dhost_guest_traps",
            "Traps of a guest (and limits of its jail it broke)",
        ),
        |c| &c.traps,
    ),
    (
        ("dhost_guest_restarts", "Restarts of a guest after a trap"),
        |c| &c.restarts,
    ),
];

/// Encodes a counter whose value is `value`.
fn counter(
    encoder: &mut DescriptorEncoder,
    (name, help): Described,
    value: u64,
) -> std::fmt::Result {
    let metric = ConstCounter::new(value);
    metric.encode(encoder.encode_descriptor(name, help, None, metric.metric_type())?)
}

/// Encodes a gauge whose value is `value`.
fn gauge(encoder: &mut DescriptorEncoder, (name, help): Described, value: i64) -> std::fmt::Result {
    let metric = ConstGauge::new(value);
    metric.encode(encoder.encode_descriptor(name, help, None, metric.metric_type())?)
}

/// Encodes a counter family: one value per value of label `label`.
fn counters_by(
    encoder: &mut DescriptorEncoder,
    (name, help): Described,
    label: &'static str,
    values: impl Iterator<Item = (String, u64)>,
) -> std::fmt::Result {
    let mut family = encoder.encode_descriptor(name, help, None, MetricType::Counter)?;
    for (value, n) in values {
        let labels = [(label, value)];
        ConstCounter::new(n).encode(family.encode_family(&labels)?)?;
    }
    Ok(())
}

impl Collector for StatsCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> std::fmt::Result {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        {
            let metric = ConstGauge::new(1);
            let labels = [
                ("node", self.node.as_str()),
                ("version", env!("CARGO_PKG_VERSION")),
            ];
            let mut family = encoder.encode_descriptor(
                "dhost_node_info",
                "The node's name and dhost's version (always 1)",
                None,
                metric.metric_type(),
            )?;
            metric.encode(family.encode_family(&labels)?)?;
        }
        for (described, value) in self.totals() {
            counter(&mut encoder, described, get(value))?;
        }
        gauge(
            &mut encoder,
            (
                "dhost_receive_queue_bytes",
                "Bytes of datagrams waiting for the event loop",
            ),
            i64::try_from(get(&self.stats.queued_bytes)).unwrap_or(i64::MAX),
        )?;

        let functions = self.stats.functions.snapshot();
        for (described, field) in FUNCTION_METRICS {
            let values = functions.iter().map(|(f, c)| (f.clone(), get(field(c))));
            counters_by(&mut encoder, described, "function", values)?;
        }
        let guests = self.stats.guests.snapshot();
        for (described, field) in GUEST_METRICS {
            let values = guests.iter().map(|(g, c)| (g.clone(), get(field(c))));
            counters_by(&mut encoder, described, "guest", values)?;
        }

        let peers = self
            .stats
            .peers
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone();
        type PeerField = fn(&dhost_protocol::wire::StreamCounts) -> u64;
        let by_peer: [(Described, PeerField); 3] = [
            (
                (
                    "dhost_peer_calls_received",
                    "Calls received from a peer's stream and run (or offered to the guests), as \
                     of the node's last announcement",
                ),
                |p| p.received,
            ),
            (
                (
                    "dhost_peer_calls_repaired",
                    "Of those, calls that arrived in a repair",
                ),
                |p| p.repaired,
            ),
            (
                (
                    "dhost_peer_calls_lost",
                    "Calls from a peer lost for good: gone from it before they could be repaired",
                ),
                |p| p.lost,
            ),
        ];
        for (described, field) in by_peer {
            let values = peers.iter().map(|p| (p.peer.clone(), field(p)));
            counters_by(&mut encoder, described, "peer", values)?;
        }
        let peer_calls = self.stats.peer_calls.snapshot();
        for (described, field) in PEER_CALL_METRICS {
            let values = peer_calls.iter().map(|(p, c)| (p.clone(), get(field(c))));
            counters_by(&mut encoder, described, "peer", values)?;
        }

        let (refused, _) = self.stats.rejections.snapshot();
        let source = |addr: &Option<std::net::SocketAddr>| {
            addr.map_or_else(|| "others".to_string(), |a| a.to_string())
        };
        counters_by(
            &mut encoder,
            (
                "dhost_datagrams_unauthenticated",
                "Datagrams refused for their tag (none, another key's, a wrong one), by source",
            ),
            "source",
            refused.iter().map(|(a, r)| (source(a), r.unauthenticated)),
        )?;
        counters_by(
            &mut encoder,
            (
                "dhost_datagrams_replayed",
                "Datagrams refused as replays, by source",
            ),
            "source",
            refused.iter().map(|(a, r)| (source(a), r.replayed)),
        )?;

        let tcp = &self.stats.tcp;
        counter(
            &mut encoder,
            (
                "dhost_tcp_connections_accepted",
                "Connections the node's TCP port accepted",
            ),
            get(&tcp.accepted),
        )?;
        counter(
            &mut encoder,
            (
                "dhost_tcp_connections_refused",
                "Connections the node's TCP port refused: over --max-connections",
            ),
            get(&tcp.refused),
        )?;
        gauge(
            &mut encoder,
            (
                "dhost_tcp_connections_open",
                "Connections open on the node's TCP port",
            ),
            i64::try_from(get(&tcp.open)).unwrap_or(i64::MAX),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_counters_come_out_named_labelled_and_typed() {
        let stats = Arc::new(Stats::default());
        Stats::add(&stats.calls_delivered, 7);
        Stats::add(&stats.functions.of("dhost:kv/store#get").run, 5);
        Stats::bump(&stats.guests.of("kv").traps);
        stats.round_trips.observe(Duration::from_micros(120));
        stats
            .peers
            .lock()
            .unwrap()
            .push(dhost_protocol::wire::StreamCounts {
                peer: "bob".into(),
                received: 9,
                repaired: 1,
                lost: 0,
            });
        stats.peer_calls.of("bob").add(8, 1);
        let text = Metrics::new("ann", stats).render();
        for line in [
            "# TYPE dhost_calls_run_total counter",
            "dhost_calls_run_total 7",
            "dhost_function_calls_run_total{function=\"dhost:kv/store#get\"} 5",
            "dhost_guest_traps_total{guest=\"kv\"} 1",
            "dhost_peer_calls_received_total{peer=\"bob\"} 9",
            "dhost_peer_calls_run_total{peer=\"bob\"} 8",
            "dhost_peer_calls_dropped_total{peer=\"bob\"} 1",
            "dhost_node_info{node=\"ann\",version=\"0.1.0\"} 1",
            "dhost_call_round_trip_seconds_count 1",
            "dhost_tcp_connections_open 0",
        ] {
            assert!(text.lines().any(|l| l == line), "no `{line}` in:\n{text}");
        }
    }
}
