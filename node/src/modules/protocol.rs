//! The requests that publish, fetch and describe modules: ordinary request frames on a
//! node's TCP port ([`crate::rpc::frame`]), to function ids of the node's own under
//! `dhost:node/modules#`, answered beside the event loop like the mailbox functions.
//!
//! ```text
//! offer(publication)              -> "send" / "have"    ; before a transfer
//! chunk(digest, offset, bytes)    -> null               ; in order, at most CHUNK bytes
//! finish(digest)                  -> "loaded"           ; checks, stores and loads it
//! fetch(digest, offset, max)      -> bytes              ; a piece of a stored module
//! list()                          -> [[publication, [interface...]]...]
//! wit(name)                       -> text               ; the module's WIT
//! unpublish(publication)          -> "removed" / "had none"
//! ```
//!
//! A refusal is a failed reply whose message says why (docs/modules.md lists them). Every
//! argument is checked; a malformed request is a `bad-arguments` failure.

use super::{Digest, Publication, check_name};
use crate::rpc::PoolHandle;
use ciborium::Value;
use dhost_protocol::cbor::as_u64;
use dhost_protocol::outcome::{CallFailure, FailureKind, Outcome};
use dhost_runtime::guest::network::RemoteCaller as _;
use std::net::SocketAddr;
use std::time::Duration;

/// The prefix of the module functions' ids.
pub const PREFIX: &str = "dhost:node/modules#";

/// The most bytes one chunk (of a transfer, or of a fetch) carries: well within a frame.
pub const CHUNK: usize = 256 * 1024;

/// What `offer` answers when the node wants the module's bytes.
pub const SEND: &str = "send";

/// What `offer` answers when the node runs the module already.
pub const HAVE: &str = "have";

/// What `finish` (and `offer`, for a module the node runs) answers once it runs.
pub const LOADED: &str = "loaded";

/// Whether `function` is one of the module functions.
pub fn is_module_function(function: &str) -> bool {
    function.starts_with(PREFIX)
}

/// A request about modules.
#[derive(Debug, Clone, PartialEq)]
pub enum ModuleRequest {
    /// The publisher announces a transfer.
    Offer(Publication),
    /// A piece of the module being transferred.
    Chunk {
        /// The module's digest, as offered.
        digest: Digest,
        /// Where the piece starts (the bytes received so far).
        offset: u64,
        /// The bytes.
        data: Vec<u8>,
    },
    /// The transfer is complete: check, store and load the module.
    Finish(Digest),
    /// A piece of a module the node stores (for a peer catching up).
    Fetch {
        /// The module.
        digest: Digest,
        /// Where the piece starts.
        offset: u64,
        /// The most bytes wanted (at most [`CHUNK`] are sent).
        max: u64,
    },
    /// The modules the node runs.
    List,
    /// The WIT of the module the node runs under a name.
    Wit(String),
    /// Stop running what runs under a name (the publication is a removal).
    Unpublish(Publication),
}

/// A module a node runs, as `list` describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listed {
    /// Its publication.
    pub publication: Publication,
    /// The application interfaces it exports.
    pub exports: Vec<String>,
}

impl Listed {
    /// As CBOR: `[publication, [interface...]]`.
    pub fn to_value(&self) -> Value {
        Value::Array(vec![
            self.publication.to_value(),
            Value::Array(self.exports.iter().cloned().map(Value::Text).collect()),
        ])
    }

    /// From CBOR.
    pub fn from_value(value: Value) -> Result<Listed, String> {
        let Value::Array(fields) = value else {
            return Err("a listed module is not an array".into());
        };
        let Ok([publication, Value::Array(exports)]) = <[Value; 2]>::try_from(fields) else {
            return Err("a listed module is not [publication, [interface...]]".into());
        };
        let exports = exports
            .into_iter()
            .map(|e| match e {
                Value::Text(e) => Ok(e),
                _ => Err("an exported interface is not text".to_string()),
            })
            .collect::<Result<_, _>>()?;
        Ok(Listed {
            publication: Publication::from_value(publication)?,
            exports,
        })
    }
}

impl ModuleRequest {
    /// The function id the request goes to.
    pub fn function(&self) -> String {
        let name = match self {
            ModuleRequest::Offer(_) => "offer",
            ModuleRequest::Chunk { .. } => "chunk",
            ModuleRequest::Finish(_) => "finish",
            ModuleRequest::Fetch { .. } => "fetch",
            ModuleRequest::List => "list",
            ModuleRequest::Wit(_) => "wit",
            ModuleRequest::Unpublish(_) => "unpublish",
        };
        format!("{PREFIX}{name}")
    }

    /// The request's arguments.
    pub fn into_args(self) -> Vec<Value> {
        let digest = |d: Digest| Value::Bytes(d.0.to_vec());
        let number = |n: u64| Value::Integer(n.into());
        match self {
            ModuleRequest::Offer(p) | ModuleRequest::Unpublish(p) => vec![p.to_value()],
            ModuleRequest::Chunk {
                digest: d,
                offset,
                data,
            } => vec![digest(d), number(offset), Value::Bytes(data)],
            ModuleRequest::Finish(d) => vec![digest(d)],
            ModuleRequest::Fetch {
                digest: d,
                offset,
                max,
            } => vec![digest(d), number(offset), number(max)],
            ModuleRequest::List => Vec::new(),
            ModuleRequest::Wit(name) => vec![Value::Text(name)],
        }
    }

    /// Sends the request to node `node` at `addr` through `pool` and waits for the answer,
    /// at most `timeout`. Blocks the calling thread.
    pub fn send(
        self,
        pool: &PoolHandle,
        addr: SocketAddr,
        node: &str,
        timeout: Duration,
    ) -> Outcome {
        let function = self.function();
        pool.call(addr, node, &function, self.into_args(), true, timeout)
    }

    /// The request a call to `function` with `args` makes, every argument checked.
    pub fn parse(function: &str, args: Vec<Value>) -> Result<ModuleRequest, CallFailure> {
        let bad = |why: String| CallFailure::new(FailureKind::BadArguments, why);
        let name = function.strip_prefix(PREFIX).unwrap_or(function);
        let shape = |want: &str| bad(format!("{function} takes ({want})"));
        let digest = |v: &Value| match v {
            Value::Bytes(b) => Digest::from_slice(b)
                .ok_or_else(|| bad("the digest is not 32 bytes (SHA-256)".into())),
            _ => Err(bad("the digest is not bytes".into())),
        };
        let number = |v: &Value, what: &str| {
            as_u64(v).ok_or_else(|| bad(format!("the {what} is not an unsigned number")))
        };
        match (name, <[Value]>::len(&args)) {
            ("offer", 1) | ("unpublish", 1) => {
                let Some(p) = args.into_iter().next() else {
                    return Err(shape("publication"));
                };
                let p = Publication::from_value(p).map_err(bad)?;
                match name {
                    "offer" if p.is_removal() => Err(bad("an offer without a digest".into())),
                    "offer" => Ok(ModuleRequest::Offer(p)),
                    _ if !p.is_removal() => Err(bad("an unpublish with a digest".into())),
                    _ => Ok(ModuleRequest::Unpublish(p)),
                }
            }
            ("chunk", 3) => {
                let digest = digest(&args[0])?;
                let offset = number(&args[1], "offset")?;
                let Some(Value::Bytes(data)) = args.into_iter().nth(2) else {
                    return Err(bad("the chunk's data is not bytes".into()));
                };
                if data.len() > CHUNK {
                    return Err(bad(format!(
                        "a chunk of {} bytes: at most {CHUNK} per chunk",
                        data.len()
                    )));
                }
                Ok(ModuleRequest::Chunk {
                    digest,
                    offset,
                    data,
                })
            }
            ("finish", 1) => Ok(ModuleRequest::Finish(digest(&args[0])?)),
            ("fetch", 3) => Ok(ModuleRequest::Fetch {
                digest: digest(&args[0])?,
                offset: number(&args[1], "offset")?,
                max: number(&args[2], "length")?,
            }),
            ("list", 0) => Ok(ModuleRequest::List),
            ("wit", 1) => match args.into_iter().next() {
                Some(Value::Text(name)) => {
                    check_name(&name).map_err(bad)?;
                    Ok(ModuleRequest::Wit(name))
                }
                _ => Err(bad("the module name is not text".into())),
            },
            ("offer" | "unpublish", _) => Err(shape("publication")),
            ("chunk", _) => Err(shape("digest, offset, bytes")),
            ("finish", _) => Err(shape("digest")),
            ("fetch", _) => Err(shape("digest, offset, max")),
            ("list", _) => Err(shape("")),
            ("wit", _) => Err(shape("name")),
            _ => Err(CallFailure::new(
                FailureKind::NoServer,
                format!("no module function {function}"),
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn publication(digest: Option<Digest>) -> Publication {
        Publication {
            name: "kv".into(),
            digest,
            size: 3,
            published_at: 1,
            publisher: "ann".into(),
        }
    }

    #[test]
    fn requests_round_trip() {
        let d = Digest([9; 32]);
        for request in [
            ModuleRequest::Offer(publication(Some(d))),
            ModuleRequest::Chunk {
                digest: d,
                offset: 5,
                data: vec![1, 2, 3],
            },
            ModuleRequest::Finish(d),
            ModuleRequest::Fetch {
                digest: d,
                offset: 0,
                max: 10,
            },
            ModuleRequest::List,
            ModuleRequest::Wit("kv".into()),
            ModuleRequest::Unpublish(publication(None)),
        ] {
            let function = request.function();
            assert!(is_module_function(&function));
            let args = request.clone().into_args();
            assert_eq!(ModuleRequest::parse(&function, args), Ok(request));
        }
        let listed = Listed {
            publication: publication(Some(d)),
            exports: vec!["dhost:kv/store".into()],
        };
        assert_eq!(Listed::from_value(listed.to_value()), Ok(listed));
    }

    #[test]
    fn malformed_requests_are_bad_arguments() {
        let d = Value::Bytes(vec![1; 32]);
        let cases: Vec<(&str, Vec<Value>)> = vec![
            ("offer", vec![]),
            ("offer", vec![publication(None).to_value()]),
            (
                "unpublish",
                vec![publication(Some(Digest([1; 32]))).to_value()],
            ),
            ("chunk", vec![d.clone(), 0.into(), Value::Text("x".into())]),
            (
                "chunk",
                vec![d.clone(), 0.into(), Value::Bytes(vec![0; CHUNK + 1])],
            ),
            (
                "chunk",
                vec![Value::Bytes(vec![1; 3]), 0.into(), Value::Bytes(vec![])],
            ),
            ("finish", vec![d.clone(), d.clone()]),
            ("fetch", vec![d.clone(), (-1).into(), 5.into()]),
            ("wit", vec![Value::Text("a/b".into())]),
            ("list", vec![Value::Null]),
        ];
        for (name, args) in cases {
            let function = format!("{PREFIX}{name}");
            let failure = ModuleRequest::parse(&function, args).unwrap_err();
            assert_eq!(failure.kind, FailureKind::BadArguments, "{name}: {failure}");
        }
        let failure = ModuleRequest::parse(&format!("{PREFIX}explode"), vec![]).unwrap_err();
        assert_eq!(failure.kind, FailureKind::NoServer);
    }
}
