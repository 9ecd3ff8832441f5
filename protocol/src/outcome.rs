//! The outcome of a call with a reply, as callers and servers both see it: the result as
//! CBOR, or a [`CallFailure`] of one of the kinds of `dstc:node/calls.call-error`. Guests,
//! the node's routing and the TCP port all speak it; how it travels is
//! [`crate::rpc::frame`]'s business.

use ciborium::Value;
use std::fmt;

/// The outcome of a call: its result as CBOR (`null` without results), or why it failed.
pub type Outcome = Result<Value, CallFailure>;

/// Why a call with a reply failed: the cases of `dstc:node/calls.call-error`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureKind {
    /// No node serves the function.
    NoServer,
    /// No reply came in time.
    Timeout,
    /// The connection to the serving node was lost, or it left the group.
    PeerGone,
    /// The serving guest trapped.
    Trapped,
    /// The arguments do not fit the serving guest's signature.
    BadArguments,
    /// The serving guest's jail refuses the caller.
    Refused,
    /// The serving guest or node cannot take the call now.
    Unavailable,
}

impl FailureKind {
    /// Every kind.
    pub const ALL: [FailureKind; 7] = [
        FailureKind::NoServer,
        FailureKind::Timeout,
        FailureKind::PeerGone,
        FailureKind::Trapped,
        FailureKind::BadArguments,
        FailureKind::Refused,
        FailureKind::Unavailable,
    ];

    /// The case name in `call-error`, which is also its name on the wire.
    pub fn name(self) -> &'static str {
        match self {
            FailureKind::NoServer => "no-server",
            FailureKind::Timeout => "timeout",
            FailureKind::PeerGone => "peer-gone",
            FailureKind::Trapped => "trapped",
            FailureKind::BadArguments => "bad-arguments",
            FailureKind::Refused => "refused",
            FailureKind::Unavailable => "unavailable",
        }
    }

    /// The kind named `name` (its case name).
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.name() == name)
    }
}

/// A failed call with a reply: the kind, and a message for people (shown printable: it may
/// come from a peer or a guest).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{}: {}", kind.name(), crate::printable::printable(message))]
pub struct CallFailure {
    /// What went wrong.
    pub kind: FailureKind,
    /// The details.
    pub message: String,
}

impl CallFailure {
    /// A failure of `kind`.
    pub fn new(kind: FailureKind, message: impl fmt::Display) -> Self {
        CallFailure {
            kind,
            message: message.to_string(),
        }
    }
}
