//! Calls with replies, from the calling guest's side: an imported function that has
//! results is run by one node ([`super::calls`] says which), and the guest waits for the
//! result. Only the calling guest's own thread waits, until the reply or the guest's call
//! timeout, and the wait does not count against its CPU time limit. While it waits, calls
//! from other guests of the node into it fail at once (they would wait for themselves).
//!
//! Every failure becomes a [`CallFailure`], handed to the guest as an error value when the
//! function's result type can carry it ([`failure_value`]) and as a trap otherwise.

use super::state::GuestState;
use super::world::Function;
use crate::value;
use anyhow::anyhow;
use dhost_protocol::outcome::{CallFailure, FailureKind, Outcome};
use std::sync::atomic::Ordering;
use std::time::Instant;
use wasmtime::component::{Type, Val};

/// The proxy of an imported function with results: runs it on one node and hands the
/// guest the result, or the failure as the rule in the module doc says.
pub(crate) fn call_with_reply(
    state: &mut GuestState,
    function: &Function,
    params: &[Val],
    results: &mut [Val],
) -> anyhow::Result<()> {
    let outcome = route(state, function, params);
    let result_ty = function
        .results
        .first()
        .ok_or_else(|| anyhow!("{} has no result", function.id))?;
    let outcome = outcome.and_then(|value| {
        value::from_cbor(value, result_ty).map_err(|e| {
            CallFailure::new(
                FailureKind::BadArguments,
                format!(
                    "the result of {} does not fit this guest's type: {e}",
                    function.id
                ),
            )
        })
    });
    let value = match outcome {
        Ok(value) => value,
        Err(failure) => {
            tracing::debug!(guest = %state.setup.name, "call to {} failed: {failure}", function.id);
            failure_value(result_ty, &failure)
                .ok_or_else(|| anyhow!("the call to {} failed: {failure}", function.id))?
        }
    };
    if let Some(slot) = results.first_mut() {
        *slot = value;
    }
    Ok(())
}

/// Sends the call where it should go and waits for the outcome.
fn route(state: &mut GuestState, function: &Function, params: &[Val]) -> Outcome {
    let id = function.id.as_str();
    if !state.setup.jail.may_send(id) {
        let guest = &state.setup.name;
        tracing::warn!("guest {guest}: refused to call {id}: not in its jail's `send` list");
        return Err(CallFailure::new(
            FailureKind::Refused,
            format!("the jail of guest {guest} does not let it call {id} (its `send` list)"),
        ));
    }
    let args = params
        .iter()
        .map(value::to_cbor)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| {
            CallFailure::new(FailureKind::BadArguments, format!("cannot send {id}: {e}"))
        })?;
    let calls = state.setup.calls.clone();
    let target = state.target.clone();
    let timeout = state.setup.jail.call_timeout;
    let started = Instant::now();
    // (Calls from other guests into this one fail at once until it has its reply.)
    // (SeqCst, as its check in `WorkerHandle::call`: two guests calling each other at
    // once must not both see the other free.)
    state.setup.waiting.store(true, Ordering::SeqCst);
    let outcome = calls.call(id, args, target.as_deref(), timeout);
    state.setup.waiting.store(false, Ordering::SeqCst);
    let took = started.elapsed();
    state.warden.exclude(took);
    if outcome.is_ok() {
        calls.observe_round_trip(took);
    }
    outcome
}

/// The failure as a value of the function's result type, if the type can carry it:
/// `result<T, string>` gets the message, and `result<T, E>` where E is a variant or enum
/// with a case of the failure's kind (such as `dstc:node/calls.call-error`) gets that case
/// (with the message, if the case carries a string).
pub(crate) fn failure_value(result_ty: &Type, failure: &CallFailure) -> Option<Val> {
    let Type::Result(result) = result_ty else {
        return None;
    };
    let error = match result.err()? {
        Type::String => Val::String(failure.to_string()),
        Type::Variant(variant) => {
            let case = variant
                .cases()
                .find(|case| case.name == failure.kind.name())?;
            let payload = match case.ty {
                None => None,
                Some(Type::String) => Some(Box::new(Val::String(failure.message.clone()))),
                Some(_) => return None,
            };
            Val::Variant(case.name.to_string(), payload)
        }
        Type::Enum(cases) => {
            let name = cases.names().find(|n| *n == failure.kind.name())?;
            Val::Enum(name.to_string())
        }
        _ => return None,
    };
    Some(Val::Result(Err(Some(Box::new(error)))))
}
