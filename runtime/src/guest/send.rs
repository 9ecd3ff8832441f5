//! Calls to the group, from the sending guest's side: the proxy of an imported function
//! without results ([`send`]) and `runs.send-run` ([`send_run`]) check a call against the
//! guest's jail and the function's parameters, bound what one call into the guest may
//! send, and record it in the guest's outbox; the node sends the outbox on when the guest
//! returns, or before, from here, once it holds enough to fill datagrams.

use super::state::{FLUSH_SENT_BYTES, GuestSetup, GuestState, MAX_SENT_BYTES};
use super::typed;
use crate::value;
use anyhow::{Context as _, anyhow, bail};
use std::sync::Arc;

/// The proxy of an imported application function: records a call to `function` whose
/// arguments `encode` writes as one CBOR array.
pub(super) fn send(
    state: &mut GuestState,
    function: &Arc<str>,
    encode: impl FnOnce(&mut Vec<u8>) -> Result<(), value::ValueError>,
) -> anyhow::Result<()> {
    check_may_send(&state.setup, function)?;
    state
        .sent
        .push(function, encode)
        .with_context(|| format!("cannot send {function}"))?;
    let size = state.sent.last_len();
    let max = state.setup.max_call;
    let refused = if function.len() + size > max {
        format!(
            "the call takes {} bytes encoded (its function id and arguments), more than the \
             {max} bytes one datagram carries",
            function.len() + size
        )
    } else if state.sent.footprint() + state.sent_local.footprint() > MAX_SENT_BYTES {
        format!(
            "this call into the guest already sent {} MiB of calls that wait for it to \
             return (calls to its own node, or on a node without a network), the most the \
             node queues",
            MAX_SENT_BYTES >> 20
        )
    } else {
        if state.sent.byte_len() >= FLUSH_SENT_BYTES {
            send_before_return(state)?;
        }
        return Ok(());
    };
    state.sent.pop();
    bail!("cannot send {function}: {refused}")
}

/// Refuses (and logs) a call to `function` that the guest's jail does not let it send.
fn check_may_send(setup: &GuestSetup, function: &str) -> anyhow::Result<()> {
    if !setup.jail.may_send(function) {
        let guest = &setup.name;
        tracing::warn!("guest {guest}: refused to send {function}: not in its jail's `send` list");
        bail!(
            "cannot send {function}: the jail of guest {guest} does not allow it (its `send` list)"
        );
    }
    Ok(())
}

/// `runs.send-run`: records every call of `calls` (CBOR arrays, one after the other) to
/// `function`, an import of the guest without results, once each is checked against the
/// function's parameters: a call that does not fit fails the whole run, with none sent.
pub(super) fn send_run(state: &mut GuestState, function: &str, calls: &[u8]) -> anyhow::Result<()> {
    let setup = state.setup.clone();
    let guest = &setup.name;
    let Some(target) = setup.sends.get(function) else {
        bail!(
            "cannot send a run to {function}: guest {guest} imports no function of that id \
             without results"
        );
    };
    check_may_send(&setup, function)?;
    let max = setup.max_call;
    let mut scratch = Vec::new();
    let typed_fits = typed::checker(&target.params);
    let mut cursor = dhost_protocol::cbor::Cursor::new(calls);
    let mut ends = Vec::new();
    while !cursor.is_empty() {
        let n = ends.len() + 1;
        if !dhost_protocol::cbor::starts_array(cursor.rest()) {
            bail!("cannot send call {n} of a run to {function}: its arguments are not an array");
        }
        let args = cursor
            .item()
            .map_err(|e| anyhow!("cannot send call {n} of a run to {function}: {e}"))?;
        let fits = match typed_fits {
            Some(fits) => fits(args),
            None => {
                let fits = value::args_from_cbor_bytes(args, &target.params, &mut scratch);
                scratch.clear();
                fits.is_ok()
            }
        };
        if !fits {
            bail!(
                "cannot send call {n} of a run to {function}: its arguments do not fit the \
                 function's parameters"
            );
        }
        if function.len() + args.len() > max {
            bail!(
                "cannot send call {n} of a run to {function}: it takes {} bytes encoded (its \
                 function id and arguments), more than the {max} bytes one datagram carries",
                function.len() + args.len()
            );
        }
        ends.push(cursor.position());
    }
    if state.sent.footprint() + state.sent_local.footprint() + calls.len() > MAX_SENT_BYTES {
        bail!(
            "cannot send a run to {function}: this call into the guest already sent {} MiB of \
             calls that wait for it to return (calls to its own node, or on a node without a \
             network), the most the node queues",
            MAX_SENT_BYTES >> 20
        );
    }
    let mut start = 0;
    for end in ends {
        let args = &calls[start..end];
        state.sent.push(&target.id, |out| {
            out.extend_from_slice(args);
            Ok::<(), std::convert::Infallible>(())
        })?;
        start = end;
    }
    if state.sent.byte_len() >= FLUSH_SENT_BYTES {
        send_before_return(state)?;
    }
    Ok(())
}

/// Sends on the calls a guest sent so far, before it returns (copying those its own node
/// serves, which run once it returns): a guest in a tight loop waits here while the
/// window to the receivers is full, and that time is not counted as its own.
fn send_before_return(state: &mut GuestState) -> anyhow::Result<()> {
    let outgoing = state.setup.outgoing.clone();
    let waited = outgoing
        .send(&mut state.sent, &mut state.sent_local)
        .map_err(|_| anyhow!("interrupted: the node is stopping"))?;
    state.warden.exclude(waited);
    Ok(())
}
