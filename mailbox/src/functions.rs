//! The mailbox functions a dhost node serves (`dstc:node/mailboxes`, docs/mailboxes.md),
//! called by its guests, by peers over its TCP port, and by `dhost call`: their function
//! ids, and a read or write of [`Mailboxes`] answered as the outcome of a call.

use crate::{MailboxError, Mailboxes};
use ciborium::Value;
use dhost_protocol::outcome::{CallFailure, FailureKind, Outcome};

/// The function id under which a node serves `dstc:node/mailboxes.read` to its peers.
pub const READ_FUNCTION: &str = "dstc:node/mailboxes#read";

/// The function id under which a node serves `dstc:node/mailboxes.write` to its peers.
pub const WRITE_FUNCTION: &str = "dstc:node/mailboxes#write";

/// A mailbox's error as the failure of a call.
fn failure(e: MailboxError) -> CallFailure {
    let kind = match e {
        MailboxError::Timeout { .. } => FailureKind::Timeout,
        MailboxError::OutOfRange { .. } | MailboxError::TooLarge { .. } => {
            FailureKind::BadArguments
        }
    };
    CallFailure::new(kind, e)
}

/// Serves a mailbox call (a guest's `dstc:node/mailboxes`, local or from a peer, or
/// `dhost call`): [`READ_FUNCTION`] with `[number]` returns the content as a byte string,
/// [`WRITE_FUNCTION`] with `[number, bytes]` returns null.
pub async fn serve_call(boxes: Option<&Mailboxes>, function: &str, args: Vec<Value>) -> Outcome {
    let Some(boxes) = boxes else {
        return Err(CallFailure::new(
            FailureKind::NoServer,
            "this node serves no mailboxes (dhost run --mailboxes)",
        ));
    };
    let bad = |why: &str| CallFailure::new(FailureKind::BadArguments, why);
    let number = |value: &Value| match value {
        Value::Integer(n) => {
            u64::try_from(*n).map_err(|_| bad("a mailbox number is a whole number from 0"))
        }
        _ => Err(bad("a mailbox number is a whole number from 0")),
    };
    match (function, args.as_slice()) {
        (READ_FUNCTION, [n]) => Ok(Value::Bytes(
            boxes.read(number(n)?).await.map_err(failure)?.0,
        )),
        (WRITE_FUNCTION, [n, Value::Bytes(data)]) => {
            boxes.write(number(n)?, data).await.map_err(failure)?;
            Ok(Value::Null)
        }
        (READ_FUNCTION, _) => Err(bad("read takes one argument: the mailbox number")),
        (WRITE_FUNCTION, _) => Err(bad(
            "write takes two arguments: the mailbox number and the data (bytes)",
        )),
        _ => Err(CallFailure::new(
            FailureKind::NoServer,
            format!("no mailbox function {function}"),
        )),
    }
}

/// Whether `function` is one of the mailbox functions a node serves itself.
pub fn is_mailbox_function(function: &str) -> bool {
    function == READ_FUNCTION || function == WRITE_FUNCTION
}
