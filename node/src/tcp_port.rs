//! The node's TCP port: accepts connections (at most a set number at once) and tells the
//! binary protocol from the text one by the first byte. Binary connections carry calls:
//! request frames go to the event loop and its replies are written back. Text connections
//! speak the mailbox protocol ([`dhost_mailbox::protocol`]) when the port serves
//! mailboxes. `dhost mailbox serve` is this same port without an event loop. The accepting
//! itself (the cap, stopping) is [`dhost_mailbox::port`]'s, which `dipc` uses too.
//!
//! A connection is hostile like a datagram: it must say what it is (its first byte, the
//! magic and the keyed handshake) within the port's opening time, frames longer than
//! [`MAX_FRAME`] close it, a frame must arrive whole within the idle timeout (so a peer
//! sending a byte a second is cut off), and a connection over the caps (in all, and from
//! one address of another host) is told so and closed at once. Each case is logged (at most
//! a few lines a second) and the node keeps serving.

use crate::describe::{Descriptions, is_describe_function};
use crate::modules::ModuleService;
use crate::modules::protocol::{ModuleRequest, is_module_function};
use crate::rpc::budget::{ByteBudget, Held, QUEUED_CALL_BYTES, QUEUED_REPLY_BYTES};
use crate::rpc::frame::{self, Arguments, MAGIC, MAX_FRAME, PortFrame, Request};
use crate::rpc::handshake::{self, ConnectionKeys};
use crossbeam_channel::{Sender, TrySendError};
use dhost_mailbox::port::{self, SharedDropLog};
use dhost_mailbox::{Mailboxes, protocol};
use dhost_protocol::outcome::{CallFailure, FailureKind, Outcome};
use dhost_runtime::stats::Stats;
use futures_util::{SinkExt as _, StreamExt as _};
use std::net::SocketAddr;
use std::ops::ControlFlow;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::AsyncWriteExt as _;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc};
use tokio_util::sync::CancellationToken;

/// How many bytes of replies may wait to be written to one connection; a peer that does
/// not read them is disconnected.
const REPLY_BYTES: usize = 4 << 20;

/// How many mailbox requests one connection may have in flight; further ones wait.
const MAILBOX_IN_FLIGHT: usize = 16;

/// What a text connection from another host is told by a port with a key.
const TEXT_LOOPBACK_ONLY: &str = "ERR this port has a group key and the text protocol has no \
     room for one: it takes text commands from this host only (use the binary protocol with \
     the key, or give the server --text-anywhere)\r\n";

/// How long a connection may take to finish once the port is closing.
const CLOSING_GRACE: Duration = Duration::from_secs(2);

/// The limits of the TCP port.
pub use dhost_mailbox::port::PortLimits as ServerLimits;

/// A request from a connection, for the event loop.
#[derive(Debug)]
pub struct IncomingCall {
    /// The request.
    pub request: Request,
    /// Who sent it.
    pub caller: Caller,
    /// Where the reply goes (encoded with [`frame::encode_reply`]).
    pub reply: ReplyTo,
    /// Its share of the port's budget of queued requests, held until it has run.
    pub held: Held,
}

/// The node at the other end of a connection, as its hello said.
#[derive(Debug, Clone)]
pub struct Caller {
    /// Its address.
    pub addr: SocketAddr,
    /// Its node id (0 until it says hello).
    pub node: u64,
}

/// The way back to a connection, usable from the event loop's thread.
#[derive(Debug, Clone)]
pub struct ReplyTo {
    queue: mpsc::UnboundedSender<(Vec<u8>, OwnedSemaphorePermit, Held)>,
    /// The bytes that may still be queued ([`REPLY_BYTES`] in all).
    budget: Arc<Semaphore>,
    /// The port's budget of replies not written yet, over every connection.
    port_budget: Arc<ByteBudget>,
    /// Cancelled to close the connection (its peer does not read its replies).
    closing: CancellationToken,
}

impl ReplyTo {
    /// Queues the reply to request `id`; fails, and closes the connection, when its peer
    /// has stopped reading its replies. A result too large for a frame is replied to with
    /// an error instead.
    pub fn send(
        &self,
        id: u64,
        outcome: &Result<ciborium::Value, CallFailure>,
    ) -> Result<(), String> {
        let mut reply = frame::encode_reply(id, outcome);
        if reply.len() > MAX_FRAME {
            let failure = CallFailure::new(
                FailureKind::BadArguments,
                format!(
                    "the result takes {} bytes, more than a frame carries ({MAX_FRAME})",
                    reply.len()
                ),
            );
            reply = frame::encode_reply(id, &Err(failure));
        }
        let bytes = u32::try_from(reply.len()).unwrap_or(u32::MAX);
        let Ok(permit) = self.budget.clone().try_acquire_many_owned(bytes) else {
            self.closing.cancel();
            return Err(format!(
                "the caller has not read {} MiB of replies: disconnected",
                REPLY_BYTES >> 20
            ));
        };
        let Some(held) = self.port_budget.try_take(u64::from(bytes)) else {
            self.closing.cancel();
            return Err(format!(
                "the port holds {} MiB of replies its callers have not read: disconnected",
                self.port_budget.max() >> 20
            ));
        };
        self.queue
            .send((reply, permit, held))
            .map_err(|_| "the connection is closed".to_string())
    }
}

/// What a port serves.
#[derive(Debug, Clone)]
pub struct Services {
    /// Calls, handed to the node's event loop (binary connections).
    pub calls: Option<Sender<Box<IncomingCall>>>,
    /// Mailboxes (text connections).
    pub mailboxes: Option<Arc<Mailboxes>>,
    /// The group's keys: binary connections must prove they hold them.
    pub keys: ConnectionKeys,
    /// Where connections refused for want of the key are counted.
    pub stats: Arc<Stats>,
    /// Serve the text protocol to any address, even with a key (it has no room for one):
    /// by default a keyed port serves it to loopback addresses only.
    pub text_anywhere: bool,
    /// Published modules (`--accept-modules`): transfers, fetches and listings.
    pub modules: Option<Arc<ModuleService>>,
    /// The WIT of what the node runs (`dhost:node/describe#wit`).
    pub descriptions: Arc<Descriptions>,
    /// The bytes of requests waiting for the event loop and the guests, over every
    /// connection.
    pub queued_calls: Arc<ByteBudget>,
    /// The bytes of replies not written yet, over every connection.
    pub queued_replies: Arc<ByteBudget>,
    /// Where what the port drops is logged (a few lines a second at most).
    pub drops: SharedDropLog,
}

impl Default for Services {
    fn default() -> Self {
        Services {
            calls: None,
            mailboxes: None,
            keys: ConnectionKeys::default(),
            stats: Arc::default(),
            text_anywhere: false,
            modules: None,
            descriptions: Arc::default(),
            queued_calls: ByteBudget::new(QUEUED_CALL_BYTES),
            queued_replies: ByteBudget::new(QUEUED_REPLY_BYTES),
            drops: SharedDropLog::default(),
        }
    }
}

/// Accepts connections on `listener` until `stop` is cancelled; then closes the port,
/// lets every connection finish the command in progress, and returns.
pub async fn serve(
    listener: TcpListener,
    services: Services,
    limits: ServerLimits,
    stop: CancellationToken,
) {
    let connection_stop = stop.clone();
    let counters = services.stats.tcp.clone();
    port::serve(
        listener,
        limits,
        stop,
        services.drops.clone(),
        counters,
        move |stream, addr| {
            connection(
                stream,
                addr,
                services.clone(),
                limits,
                connection_stop.clone(),
            )
        },
    )
    .await;
}

/// Serves one connection until it closes, fails or idles; the error says why it ended.
async fn connection(
    stream: TcpStream,
    addr: SocketAddr,
    services: Services,
    limits: ServerLimits,
    stop: CancellationToken,
) -> Result<(), String> {
    let (idle, opening) = (limits.idle, limits.opening);
    let mut first = [0u8; 1];
    match tokio::time::timeout(opening, stream.peek(&mut first)).await {
        Err(_) => {
            return Err(format!(
                "it sent nothing for {}",
                humantime::format_duration(opening)
            ));
        }
        Ok(Err(e)) => return Err(format!("cannot read: {e}")),
        Ok(Ok(0)) => return Ok(()),
        Ok(Ok(_)) => {}
    }
    if first[0] != MAGIC[0] {
        let keyed = services.keys.keys.is_some();
        return match &services.mailboxes {
            None => refuse(stream, "ERR this port serves no mailboxes\r\n").await,
            Some(_)
                if keyed && !services.text_anywhere && !addr.ip().to_canonical().is_loopback() =>
            {
                count_unauthenticated(&services, addr);
                refuse(stream, TEXT_LOOPBACK_ONLY).await
            }
            Some(boxes) => protocol::serve(stream, boxes, idle, &stop).await,
        };
    }
    // The magic and the whole handshake within `opening`: a connection that never proves
    // itself does not hold its slot for long.
    let accepted =
        tokio::time::timeout(opening, handshake::accept(stream, &services.keys, opening));
    let accepted = accepted.await.unwrap_or_else(|_| {
        Err(handshake::ConnectionRefused {
            why: format!(
                "it did not finish opening its connection within {}",
                humantime::format_duration(opening)
            ),
            unauthenticated: false,
        })
    });
    let (mut frames, mut sink) = match accepted {
        Ok(framed) => framed,
        Err(refused) => {
            if refused.unauthenticated {
                count_unauthenticated(&services, addr);
            }
            return Err(refused.why);
        }
    };
    tracing::debug!("binary connection from {addr}");

    let (replies, mut outgoing) = mpsc::unbounded_channel();
    let closing = CancellationToken::new();
    let reply_to = ReplyTo {
        queue: replies,
        budget: Arc::new(Semaphore::new(REPLY_BYTES)),
        port_budget: services.queued_replies.clone(),
        closing: closing.clone(),
    };
    let writer_closing = closing.clone();
    let mut writer = tokio::spawn(async move {
        while let Some((reply, _permit, _held)) = outgoing.recv().await {
            let sent = tokio::time::timeout(idle, sink.send(bytes::Bytes::from(reply))).await;
            if !matches!(sent, Ok(Ok(()))) {
                writer_closing.cancel();
                break;
            }
        }
    });
    let mailbox_permits = Arc::new(Semaphore::new(MAILBOX_IN_FLIGHT));
    let mut caller = Caller { addr, node: 0 };
    // (A node that takes no modules says so once per connection.)
    let mut said_no_modules = false;
    let outcome = loop {
        let next = tokio::select! {
            next = tokio::time::timeout(idle, frames.next()) => next,
            () = closing.cancelled() => {
                break Err("it does not read its replies".to_string());
            }
        };
        let next = match next {
            Err(_) => {
                break Err(format!(
                    "no complete frame for {} (idle, or too slow)",
                    humantime::format_duration(idle)
                ));
            }
            Ok(None) => break Ok(()),
            Ok(Some(Err(e))) => break Err(format!("{e} (frames are at most {MAX_FRAME} bytes)")),
            Ok(Some(Ok(bytes))) => bytes,
        };
        match frame::decode(&next) {
            Ok(PortFrame::Hello { node, .. }) => caller.node = node,
            Ok(PortFrame::Request(request)) => match Builtin::of(&request.function, &services) {
                // Served here, beside the event loop (a mailbox needs no guest), a few at a
                // time per connection, and within the port's budget (a request may wait for
                // a mailbox's lock).
                Some(Builtin::Mailbox) => {
                    let Ok(permit) = mailbox_permits.clone().acquire_owned().await else {
                        break Ok(());
                    };
                    let Some(held) = services.queued_calls.try_take(request.args.len() as u64)
                    else {
                        let failure = busy(&services, addr, &request);
                        if request.wants_reply
                            && let Err(why) = reply_to.send(request.id, &Err(failure))
                        {
                            break Err(why);
                        }
                        continue;
                    };
                    let (services, reply_to) = (services.clone(), reply_to.clone());
                    tokio::spawn(async move {
                        let _permit = (permit, held);
                        let outcome = Builtin::Mailbox
                            .answer(&services, &request, addr, &mut true)
                            .await;
                        if request.wants_reply {
                            let _ = reply_to.send(request.id, &outcome);
                        }
                    });
                }
                // Served here, beside the event loop, in order (a transfer's chunks follow
                // one another).
                Some(builtin) => {
                    let outcome = builtin
                        .answer(&services, &request, addr, &mut said_no_modules)
                        .await;
                    if request.wants_reply
                        && let Err(why) = reply_to.send(request.id, &outcome)
                    {
                        break Err(why);
                    }
                }
                None => {
                    if let ControlFlow::Break(end) =
                        to_event_loop(&services, request, &caller, &reply_to)
                    {
                        break end;
                    }
                }
            },

            Ok(PortFrame::Reply { .. }) => {
                break Err("it sent a reply, but asked nothing".to_string());
            }
            Err(e) => break Err(format!("a malformed frame: {e}")),
        }
    };
    drop(reply_to);
    // Let the replies already queued go out (the writer ends when every sender is gone:
    // calls still queued for the event loop hold one), for a while at most.
    if tokio::time::timeout(idle.min(CLOSING_GRACE * 5), &mut writer)
        .await
        .is_err()
    {
        writer.abort();
    }
    outcome
}

/// Answers one request that came otherwise than on a connection (a Zenoh query), as a
/// binary connection would: its built-in services answer it here, the event loop the
/// others; returns the reply frame ([`frame::encode_reply`]). A cast is answered once the
/// event loop has taken it.
pub async fn answer_alone(services: &Services, request: Request, caller: Caller) -> Vec<u8> {
    let (id, wants_reply) = (request.id, request.wants_reply);
    let (queue, mut replies) = mpsc::unbounded_channel();
    let reply_to = ReplyTo {
        queue,
        budget: Arc::new(Semaphore::new(REPLY_BYTES)),
        port_budget: services.queued_replies.clone(),
        closing: CancellationToken::new(),
    };
    let refused = match Builtin::of(&request.function, services) {
        Some(builtin) => {
            // (Within the port's budget, as on a connection: a mailbox request may wait
            // long for its lock, and each query is a task of its own.)
            let outcome = match services.queued_calls.try_take(request.args.len() as u64) {
                Some(_held) => {
                    builtin
                        .answer(services, &request, caller.addr, &mut true)
                        .await
                }
                None => Err(busy(services, caller.addr, &request)),
            };
            reply_to.send(id, &outcome).err()
        }
        // (What the event loop cannot take is answered at once, through `reply_to`.)
        None => match to_event_loop(services, request, &caller, &reply_to) {
            ControlFlow::Break(Err(why)) => Some(why),
            ControlFlow::Break(Ok(())) => Some("the node is stopping".to_string()),
            ControlFlow::Continue(()) if !wants_reply => {
                if let Ok((reply, ..)) = replies.try_recv() {
                    return reply;
                }
                return frame::encode_reply(id, &Ok(ciborium::Value::Null));
            }
            ControlFlow::Continue(()) => None,
        },
    };
    drop(reply_to);
    match (refused, replies.recv().await) {
        (None, Some((reply, ..))) => reply,
        (refused, _) => {
            let why = refused.unwrap_or_else(|| "the node dropped the call".to_string());
            frame::encode_reply(id, &Err(CallFailure::new(FailureKind::Unavailable, why)))
        }
    }
}

/// The port's budget of queued requests is spent: counts and logs `request` from `addr`
/// as dropped, and returns what its caller is told.
fn busy(services: &Services, addr: SocketAddr, request: &Request) -> CallFailure {
    let busy = format!(
        "the node is busy: {} MiB of requests wait for its guests and mailboxes",
        services.queued_calls.max() >> 20
    );
    Stats::bump(&services.stats.calls_dropped);
    port::log_drop(
        &services.drops,
        format_args!(
            "a request of {} bytes from {addr} to {:?}: {busy}",
            request.args.len(),
            request.function
        ),
    );
    CallFailure::new(
        FailureKind::Unavailable,
        format!("{busy} (try again later)"),
    )
}

/// The functions the port answers itself, beside the event loop: one table, looked up once
/// per request by [`Builtin::of`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Builtin {
    /// `dstc:node/mailboxes` ([`dhost_mailbox`]): concurrently, a few per connection.
    Mailbox,
    /// `say` ([`crate::say`]), on a node (a mailbox server has no terminal to print on).
    Say,
    /// `dhost:node/describe#wit` ([`crate::describe`]).
    Describe,
    /// The module requests ([`crate::modules::protocol`]), in order.
    Modules,
}

impl Builtin {
    /// The built-in service that answers `function` on this port, if one does.
    fn of(function: &str, services: &Services) -> Option<Builtin> {
        /// Which function each service answers, asked in order until one does (every
        /// request to a guest asks them all: they are string comparisons).
        type Answers = fn(&str, &Services) -> bool;
        const TABLE: [(Answers, Builtin); 4] = [
            (
                |f, _| dhost_mailbox::functions::is_mailbox_function(f),
                Builtin::Mailbox,
            ),
            (
                |f, s| f == crate::say::SAY_FUNCTION && s.calls.is_some(),
                Builtin::Say,
            ),
            (|f, _| is_describe_function(f), Builtin::Describe),
            (|f, _| is_module_function(f), Builtin::Modules),
        ];
        TABLE
            .iter()
            .find(|(answers, _)| answers(function, services))
            .map(|&(_, builtin)| builtin)
    }

    /// Answers `request` from `addr`. (`said_no_modules`: whether this connection was
    /// told once that the node takes no published modules.)
    async fn answer(
        self,
        services: &Services,
        request: &Request,
        addr: SocketAddr,
        said_no_modules: &mut bool,
    ) -> Outcome {
        let args = builtin_args(&request.args)?;
        let function = request.function.as_str();
        match (self, &services.modules) {
            (Builtin::Mailbox, _) => {
                dhost_mailbox::functions::serve_call(services.mailboxes.as_deref(), function, args)
                    .await
            }
            (Builtin::Say, _) => crate::say::print_said(&args, addr),
            (Builtin::Describe, modules) => {
                services.descriptions.serve(modules.as_ref(), args).await
            }
            (Builtin::Modules, Some(modules)) => modules.serve(function, args).await,
            // (It runs no published module.)
            (Builtin::Modules, None) if function == ModuleRequest::List.function() => {
                Ok(ciborium::Value::Array(Vec::new()))
            }
            (Builtin::Modules, None) => {
                if !*said_no_modules {
                    *said_no_modules = true;
                    tracing::warn!(
                        "refused module requests from {addr}: this node does not accept \
                         published modules (--accept-modules)"
                    );
                }
                Err(CallFailure::new(
                    FailureKind::Refused,
                    "this node does not accept published modules (start it with \
                     --accept-modules)",
                ))
            }
        }
    }
}

/// Hands `request` to the event loop, for the node's guests and plugins, within the
/// port's budget; answers at once what it cannot take. `Break` ends the connection.
fn to_event_loop(
    services: &Services,
    request: Request,
    caller: &Caller,
    reply_to: &ReplyTo,
) -> ControlFlow<Result<(), String>> {
    let (id, wants_reply) = (request.id, request.wants_reply);
    let Some(events) = &services.calls else {
        // (A mailbox server: no event loop, no guests.)
        let failure = CallFailure::new(
            FailureKind::NoServer,
            format!("this port serves mailboxes only, not {}", request.function),
        );
        if wants_reply && let Err(why) = reply_to.send(id, &Err(failure)) {
            return ControlFlow::Break(Err(why));
        }
        return ControlFlow::Continue(());
    };
    // Held as bytes, within the port's budget: past it, the node is busy.
    let Some(held) = services.queued_calls.try_take(request.args.len() as u64) else {
        let failure = busy(services, caller.addr, &request);
        if wants_reply && let Err(why) = reply_to.send(id, &Err(failure)) {
            return ControlFlow::Break(Err(why));
        }
        return ControlFlow::Continue(());
    };
    let call = IncomingCall {
        request,
        caller: caller.clone(),
        reply: reply_to.clone(),
        held,
    };
    match events.try_send(Box::new(call)) {
        Ok(()) => {}
        Err(TrySendError::Full(_)) => {
            let failure = CallFailure::new(
                FailureKind::Unavailable,
                "the node is overloaded: its event queue is full",
            );
            if wants_reply && let Err(why) = reply_to.send(id, &Err(failure)) {
                return ControlFlow::Break(Err(why));
            }
        }
        Err(TrySendError::Disconnected(_)) => return ControlFlow::Break(Ok(())),
    }
    ControlFlow::Continue(())
}

/// The arguments of a request to one of the port's own services (mailboxes, modules,
/// descriptions, `say`), decoded: they are few and small.
fn builtin_args(args: &Arguments) -> Result<Vec<ciborium::Value>, CallFailure> {
    args.values().map_err(|e| {
        CallFailure::new(
            FailureKind::BadArguments,
            format!("the arguments cannot be read: {e}"),
        )
    })
}

/// Counts a connection from `addr` refused for want of the key (by address, port 0:
/// every connection has a port of its own).
fn count_unauthenticated(services: &Services, addr: SocketAddr) {
    let source = SocketAddr::new(addr.ip(), 0);
    services.stats.rejections.count(source, false, 0);
}

/// Tells the client what this port does not serve, and closes.
async fn refuse(mut stream: TcpStream, why: &str) -> Result<(), String> {
    stream
        .write_all(why.as_bytes())
        .await
        .map_err(|e| format!("cannot write: {e}"))?;
    Err(why.trim_start_matches("ERR ").trim_end().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_port_answers_its_own_functions_from_one_table() {
        let mailbox_server = Services::default();
        let (events, _queue) = crossbeam_channel::bounded(1);
        let node = Services {
            calls: Some(events),
            ..Services::default()
        };
        let of = |function: &str, services: &Services| Builtin::of(function, services);
        for services in [&mailbox_server, &node] {
            assert_eq!(
                of(dhost_mailbox::functions::READ_FUNCTION, services),
                Some(Builtin::Mailbox)
            );
            assert_eq!(
                of(crate::describe::WIT_FUNCTION, services),
                Some(Builtin::Describe)
            );
            assert_eq!(
                of(&ModuleRequest::List.function(), services),
                Some(Builtin::Modules)
            );
            assert_eq!(of("dhost:kv/store#get", services), None, "the guests'");
        }
        // A node prints what is said; a mailbox server has no terminal to print it on.
        assert_eq!(of(crate::say::SAY_FUNCTION, &node), Some(Builtin::Say));
        assert_eq!(of(crate::say::SAY_FUNCTION, &mailbox_server), None);
    }
}
