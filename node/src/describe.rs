//! `dhost:node/describe#wit(interface) -> text`: the WIT of a component this node runs
//! that exports `interface`, for clients that build typed calls from it at run time (the
//! Python client, clients/python). Asked on the node's TCP port, and answered there,
//! beside the event loop, like the module and mailbox functions.
//!
//! The guests given on the command line are registered as they load, with the interfaces
//! they export and their WIT, decoded from their file then (the same text as `dhost
//! inspect GUEST` prints), so that a file rebuilt since is not described in its place.
//! Published modules are asked of the module service, which keeps their bytes. An
//! interface may be named without its version (`dhost:kv/store` for
//! `dhost:kv/store@0.1.0`) when one export matches.

use crate::modules::ModuleService;
use ciborium::Value;
use dhost_protocol::outcome::{CallFailure, FailureKind, Outcome};
use dhost_runtime::guest::wit_text::find_export;
use std::path::Path;
use std::sync::Arc;

/// The function id of the request.
pub(crate) const WIT_FUNCTION: &str = "dhost:node/describe#wit";

/// The longest interface name asked about.
const MAX_INTERFACE: usize = 512;

/// Whether `function` is the describe request.
pub(crate) fn is_describe_function(function: &str) -> bool {
    function == WIT_FUNCTION
}

/// What a node can describe: its command-line guests, and its published modules.
#[derive(Debug, Default)]
pub struct Descriptions {
    /// The node's name, for the replies.
    node: String,
    guests: Vec<Described>,
}

/// One guest: what it exports, and its WIT (or why it could not be decoded).
#[derive(Debug)]
struct Described {
    name: String,
    interfaces: Vec<String>,
    wit: Result<String, String>,
}

impl Descriptions {
    /// Nothing described yet, on node `node`.
    pub fn new(node: &str) -> Self {
        Descriptions {
            node: node.to_string(),
            guests: Vec::new(),
        }
    }

    /// Registers guest `name`, loaded from `path`, exporting `interfaces`: decodes its WIT
    /// now, from the file just loaded.
    pub fn add(&mut self, name: &str, path: &Path, interfaces: Vec<String>) {
        let wit = dhost_runtime::guest::wit_text::file_wit_text(path).map_err(|e| format!("{e:#}"));
        if let Err(why) = &wit {
            tracing::warn!("guest {name}: its WIT cannot be described to clients: {why}");
        }
        self.guests.push(Described {
            name: name.to_string(),
            interfaces,
            wit,
        });
    }

    /// Answers the describe request with `args`.
    pub async fn serve(&self, modules: Option<&Arc<ModuleService>>, args: Vec<Value>) -> Outcome {
        let bad = |why: &str| CallFailure::new(FailureKind::BadArguments, why);
        let interface = match args.as_slice() {
            [Value::Text(i)] if i.len() <= MAX_INTERFACE => i.as_str(),
            [Value::Text(_)] => {
                return Err(bad(&format!(
                    "an interface name is at most {MAX_INTERFACE} bytes"
                )));
            }
            _ => {
                return Err(bad(
                    "describe#wit takes one argument: an interface name such as dhost:kv/store",
                ));
            }
        };
        let exported: Vec<(&str, &Described)> = self
            .guests
            .iter()
            .flat_map(|g| g.interfaces.iter().map(move |i| (i.as_str(), g)))
            .collect();
        if let Some(guest) = find_export(&exported, interface) {
            return guest.wit.clone().map(Value::Text).map_err(|why| {
                CallFailure::new(
                    FailureKind::Unavailable,
                    format!("cannot decode the WIT of guest {}: {why}", guest.name),
                )
            });
        }
        if let Some(outcome) = match modules {
            Some(modules) => modules.wit_exporting(interface).await,
            None => None,
        } {
            return outcome;
        }
        Err(CallFailure::new(
            FailureKind::NoServer,
            format!("no guest of node {} exports {interface}", self.node),
        ))
    }
}
