//! The node's `dstc:node` host interfaces (`host`, `timers`, `readiness`, `calls`,
//! `mailboxes`, `runs`, `group`), as guests see
//! them: typed bindings generated from `wit/node/node.wit`, implemented on [`GuestState`].
//!
//! The functions only record what the guest asked for; the node acts on it once the
//! guest's call returns (see [`super::worker`]).

use super::state::{GuestState, MAX_TIMERS, MAX_WATCHES};
use std::time::{Duration, Instant};
use wasmtime::component::{HasSelf, Linker, Resource};
use wasmtime_wasi::p2::DynPollable;

mod bindings {
    wasmtime::component::bindgen!({
        world: "dstc:node/imports",
        path: "../wit/node",
        with: {
            "wasi:io/poll": wasmtime_wasi::p2::bindings::sync::io::poll,
        },
        imports: { default: trappable },
        require_store_data_send: true,
    });
}

use bindings::dstc::node::{calls, group, host, mailboxes, readiness, runs, timers};

/// The longest log message a guest may write; longer ones are cut.
const MAX_LOG_MESSAGE: usize = 16 * 1024;

/// Adds the `dstc:node` host interfaces to `linker`.
pub(crate) fn add_to_linker(linker: &mut Linker<GuestState>) -> wasmtime::Result<()> {
    host::add_to_linker::<_, HasSelf<_>>(linker, |s| s)?;
    timers::add_to_linker::<_, HasSelf<_>>(linker, |s| s)?;
    readiness::add_to_linker::<_, HasSelf<_>>(linker, |s| s)?;
    calls::add_to_linker::<_, HasSelf<_>>(linker, |s| s)?;
    mailboxes::add_to_linker::<_, HasSelf<_>>(linker, |s| s)?;
    runs::add_to_linker::<_, HasSelf<_>>(linker, |s| s)?;
    group::add_to_linker::<_, HasSelf<_>>(linker, |s| s)?;
    Ok(())
}

impl group::Host for GuestState {
    fn peers(&mut self) -> wasmtime::Result<Vec<group::Peer>> {
        let jail = &self.setup.jail;
        let peers = self.setup.calls.group_peers(|f| jail.may_send(f));
        Ok(peers
            .into_iter()
            .map(|p| group::Peer {
                name: p.name,
                uptime_ms: p.uptime_ms,
                functions: p.functions,
                connections: p.connections,
            })
            .collect())
    }

    fn servers(&mut self, function: String) -> wasmtime::Result<Vec<String>> {
        // (A guest that may not send a function need not learn who serves it.)
        if !self.setup.jail.may_send(&function) {
            return Ok(Vec::new());
        }
        Ok(self.setup.calls.servers(&function))
    }
}

impl runs::Host for GuestState {
    fn send_run(&mut self, function: String, calls: Vec<u8>) -> wasmtime::Result<()> {
        super::send::send_run(self, &function, &calls).map_err(wasmtime::Error::from_anyhow)
    }
}

impl host::Host for GuestState {
    fn node_name(&mut self) -> wasmtime::Result<String> {
        Ok(self.setup.node_name.clone())
    }

    fn log(&mut self, level: host::Level, message: String) -> wasmtime::Result<()> {
        let mut end = message.len().min(MAX_LOG_MESSAGE);
        while !message.is_char_boundary(end) {
            end -= 1;
        }
        let (guest, message) = (&self.setup.name, &message[..end]);
        match level {
            host::Level::Trace => tracing::trace!(guest = %guest, "{message}"),
            host::Level::Debug => tracing::debug!(guest = %guest, "{message}"),
            host::Level::Info => tracing::info!(guest = %guest, "{message}"),
            host::Level::Warn => tracing::warn!(guest = %guest, "{message}"),
            host::Level::Error => tracing::error!(guest = %guest, "{message}"),
        }
        Ok(())
    }
}

impl timers::Host for GuestState {
    fn set_timer(&mut self, token: u64, after_ms: u64) -> wasmtime::Result<()> {
        if !self.setup.hears_timers {
            wasmtime::bail!("set-timer: the guest does not export dstc:node/timer-events");
        }
        if self.timers.len() >= MAX_TIMERS {
            wasmtime::bail!("set-timer: more than {MAX_TIMERS} timers armed");
        }
        // A deadline past what Instant can hold is "never" in practice: a year will do.
        let after = Duration::from_millis(after_ms).min(Duration::from_secs(365 * 24 * 3600));
        self.timers.set(token, Instant::now() + after);
        Ok(())
    }

    fn cancel_timer(&mut self, token: u64) -> wasmtime::Result<bool> {
        Ok(self.timers.cancel(token))
    }
}

impl readiness::Host for GuestState {
    fn watch(&mut self, token: u64, ready: Resource<DynPollable>) -> wasmtime::Result<()> {
        if !self.setup.hears_readiness {
            self.table().delete(ready)?;
            wasmtime::bail!("watch: the guest does not export dstc:node/ready-events");
        }
        if self.watches.len() >= MAX_WATCHES && !self.watches.contains_key(&token) {
            self.table().delete(ready)?;
            wasmtime::bail!("watch: more than {MAX_WATCHES} pollables watched");
        }
        if let Some(old) = self.watches.insert(token, ready) {
            drop_pollable(self, old)?;
        }
        Ok(())
    }

    fn unwatch(&mut self, token: u64) -> wasmtime::Result<bool> {
        match self.watches.remove(&token) {
            Some(old) => drop_pollable(self, old).map(|()| true),
            None => Ok(false),
        }
    }
}

impl calls::Host for GuestState {
    fn set_target(&mut self, node: Option<String>) -> wasmtime::Result<()> {
        if let Some(name) = &node
            && (name.is_empty() || name.len() > dhost_protocol::wire::MAX_NAME)
        {
            wasmtime::bail!("set-target: `{name}` cannot be a node name (1 to 255 bytes)");
        }
        self.target = node;
        Ok(())
    }

    fn target(&mut self) -> wasmtime::Result<Option<String>> {
        Ok(self.target.clone())
    }
}

impl mailboxes::Host for GuestState {
    fn read(
        &mut self,
        node: Option<String>,
        number: u32,
    ) -> wasmtime::Result<Result<Vec<u8>, calls::CallError>> {
        if let Err(refused) = check_mailbox(self, number, node.as_deref(), false) {
            return Ok(Err(refused));
        }
        let args = vec![ciborium::Value::from(number)];
        Ok(
            match mailbox_call(self, node, dhost_mailbox::functions::READ_FUNCTION, args) {
                Ok(ciborium::Value::Bytes(data)) => Ok(data),
                Ok(_) => Err(calls::CallError::BadArguments(
                    "the node answered a read with something other than bytes".to_string(),
                )),
                Err(failure) => Err(call_error(failure)),
            },
        )
    }

    fn write(
        &mut self,
        node: Option<String>,
        number: u32,
        data: Vec<u8>,
    ) -> wasmtime::Result<Result<(), calls::CallError>> {
        if let Err(refused) = check_mailbox(self, number, node.as_deref(), true) {
            return Ok(Err(refused));
        }
        let args = vec![ciborium::Value::from(number), ciborium::Value::Bytes(data)];
        Ok(
            mailbox_call(self, node, dhost_mailbox::functions::WRITE_FUNCTION, args)
                .map(drop)
                .map_err(call_error),
        )
    }
}

/// Refuses (and logs) reading or writing mailbox `number` of `node` (`None`: this node)
/// when the guest's jail does not grant it.
fn check_mailbox(
    state: &GuestState,
    number: u32,
    node: Option<&str>,
    write: bool,
) -> Result<(), calls::CallError> {
    let setup = &state.setup;
    if setup
        .jail
        .may_use_mailbox(number, node, &setup.node_name, write)
    {
        return Ok(());
    }
    let what = format!(
        "{} mailbox {number} of {}",
        if write { "write" } else { "read" },
        match node {
            Some(node) => format!("node {node}"),
            None => "this node".to_string(),
        }
    );
    tracing::warn!(
        "guest {}: refused to {what}: not in its jail's `mailboxes` list",
        setup.name
    );
    Err(calls::CallError::Refused(format!(
        "the jail of guest {} does not allow it to {what} (its `mailboxes` list)",
        setup.name
    )))
}

/// Runs a mailbox function for the guest, leaving the wait out of its CPU time.
fn mailbox_call(
    state: &mut GuestState,
    node: Option<String>,
    function: &str,
    args: Vec<ciborium::Value>,
) -> dhost_protocol::outcome::Outcome {
    let started = Instant::now();
    let calls = state.setup.calls.clone();
    let outcome = calls.mailbox_call(
        node.as_deref(),
        function,
        args,
        state.setup.jail.call_timeout,
    );
    state.warden.exclude(started.elapsed());
    outcome
}

/// A failure as the guest's `call-error`.
fn call_error(failure: dhost_protocol::outcome::CallFailure) -> calls::CallError {
    use dhost_protocol::outcome::FailureKind as K;
    let m = failure.message;
    match failure.kind {
        K::NoServer => calls::CallError::NoServer(m),
        K::Timeout => calls::CallError::Timeout(m),
        K::PeerGone => calls::CallError::PeerGone(m),
        K::Trapped => calls::CallError::Trapped(m),
        K::BadArguments => calls::CallError::BadArguments(m),
        K::Refused => calls::CallError::Refused(m),
        K::Unavailable => calls::CallError::Unavailable(m),
    }
}

/// Drops a pollable the guest handed over, as `wasi:io/poll` would.
pub(crate) fn drop_pollable(
    state: &mut GuestState,
    pollable: Resource<DynPollable>,
) -> wasmtime::Result<()> {
    use wasmtime_wasi::p2::bindings::io::poll::HostPollable;
    HostPollable::drop(state.table(), pollable)
}

/// Whether a watched pollable is ready now, without blocking.
pub(crate) fn is_ready(state: &mut GuestState, pollable: u32) -> wasmtime::Result<bool> {
    use wasmtime_wasi::p2::bindings::io::poll::HostPollable;
    let borrowed = Resource::<DynPollable>::new_borrow(pollable);
    let table = state.table();
    let mut ready = std::pin::pin!(HostPollable::ready(table, borrowed));
    wasmtime_wasi::runtime::with_ambient_tokio_runtime(|| {
        wasmtime_wasi::runtime::poll_noop(ready.as_mut()).unwrap_or(Ok(false))
    })
}
