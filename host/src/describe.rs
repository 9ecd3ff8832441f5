//! `dhost:node/describe#wit(interface) -> text`: the WIT of a component this node runs
//! that exports `interface`, for clients that build typed calls from it at run time (the
//! Python client, clients/python). Asked on the node's TCP port, and answered there,
//! beside the event loop, like the module and mailbox functions.
//!
//! The guests given on the command line are registered as they load: their file and the
//! interfaces they export. A guest's WIT is decoded from its file on the first request
//! (the same text as `dhost inspect GUEST` prints) and kept. Published modules are asked of
//! the module service, which keeps their bytes.

use crate::modules::ModuleService;
use crate::outcome::{CallFailure, FailureKind, Outcome};
use ciborium::Value;
use std::path::PathBuf;
use std::sync::Arc;
use tokio::sync::OnceCell;

/// The function id of the request.
pub const WIT_FUNCTION: &str = "dhost:node/describe#wit";

/// The longest interface name asked about.
const MAX_INTERFACE: usize = 512;

/// Whether `function` is the describe request.
pub fn is_describe_function(function: &str) -> bool {
    function == WIT_FUNCTION
}

/// What a node can describe: its command-line guests, and its published modules.
#[derive(Debug, Default)]
pub struct Descriptions {
    /// The node's name, for the replies.
    node: String,
    guests: Vec<Described>,
}

/// One guest: where it came from, what it exports, and its WIT once decoded.
#[derive(Debug)]
struct Described {
    name: String,
    path: PathBuf,
    interfaces: Vec<String>,
    wit: OnceCell<Result<Value, String>>,
}

impl Descriptions {
    /// Nothing described yet, on node `node`.
    pub fn new(node: &str) -> Self {
        Descriptions {
            node: node.to_string(),
            guests: Vec::new(),
        }
    }

    /// Registers guest `name`, loaded from `path`, exporting `interfaces`.
    pub fn add(&mut self, name: &str, path: PathBuf, interfaces: Vec<String>) {
        self.guests.push(Described {
            name: name.to_string(),
            path,
            interfaces,
            wit: OnceCell::new(),
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
        if let Some(guest) = self
            .guests
            .iter()
            .find(|g| g.interfaces.iter().any(|i| i == interface))
        {
            let decoded = guest
                .wit
                .get_or_init(|| async {
                    let path = guest.path.clone();
                    match tokio::task::spawn_blocking(move || crate::inspect::file_wit_text(&path))
                        .await
                    {
                        Ok(Ok(text)) => Ok(Value::Text(text)),
                        Ok(Err(e)) => Err(format!("{e:#}")),
                        Err(e) => Err(e.to_string()),
                    }
                })
                .await;
            return decoded.clone().map_err(|why| {
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
