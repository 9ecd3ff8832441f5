//! The CLI's side of published modules: `dhost publish` (a transfer to each node, in
//! parallel), `dhost unpublish`, `dhost modules` and `dhost inspect --node`.
//!
//! A client finds the nodes by asking the group (as `dhost peers` does), then talks to each
//! node's TCP port with the requests of [`super::protocol`].

use super::protocol::{self, CHUNK, Listed, ModuleRequest};
use super::{Digest, Publication, check_name, now_ms};
use crate::cli::{ModulesArgs, PublishArgs, SurveyArgs, UnpublishArgs};
use crate::client::{GroupClient, find_node, start_pool};
use crate::net::Group;
use crate::outcome::{CallFailure, FailureKind};
use crate::printable::printable;
use crate::rpc::PoolHandle;
use anyhow::{Context as _, bail};
use ciborium::Value;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::{Duration, Instant};

/// How long a client waits for a node to answer a request other than `finish`.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// The nodes a client talks to: NODE alone (`--node`), or every node that answers on the
/// group and announces a TCP port, with `wanted` saying which of those.
fn targets(
    survey: &SurveyArgs,
    node: Option<&str>,
    wanted: impl Fn(&crate::wire::Announce) -> bool,
) -> anyhow::Result<(GroupClient, Vec<(String, SocketAddr)>)> {
    let (group, mut client) = survey.join()?;
    if let Some(node) = node {
        let addr = find_node(&mut client, &group, node, survey.wait)?;
        return Ok((client, vec![(node.to_string(), addr)]));
    }
    let answers = client.survey(survey.wait)?;
    if answers.is_empty() {
        bail!("{}", no_answer(&group, &client));
    }
    let targets = answers
        .into_iter()
        .filter(|a| wanted(&a.announce))
        .filter_map(|a| Some((a.announce.name, a.announce.tcp?)))
        .collect();
    Ok((client, targets))
}

fn no_answer(group: &Group, client: &GroupClient) -> String {
    format!(
        "no node answered on {} (interface {}){}",
        group.addr,
        group.iface,
        client.unanswered_hint()
    )
}

/// Says how a request to a node failed, as the CLI prints it: "refused: REASON" when the
/// node refused, else the kind of failure and its message.
fn reason(failure: &CallFailure) -> String {
    match failure.kind {
        FailureKind::Refused | FailureKind::BadArguments => {
            format!("refused: {}", printable(&failure.message))
        }
        _ => format!("failed: {failure}"),
    }
}

/// Sends module `bytes` as publication `p` to node `node` at `addr`: offers it, sends it a
/// chunk at a time if the node wants it, and waits (at most `timeout`) for the node to
/// check and load it. Returns what the node said ("loaded", or "have" when it ran it or
/// held it already).
pub fn send_module(
    pool: &PoolHandle,
    addr: SocketAddr,
    node: &str,
    p: &Publication,
    bytes: &[u8],
    timeout: Duration,
) -> Result<String, CallFailure> {
    let digest = p
        .digest
        .ok_or_else(|| CallFailure::new(FailureKind::BadArguments, "no digest"))?;
    let call = |request: ModuleRequest, timeout| request.send(pool, addr, node, timeout);
    match call(ModuleRequest::Offer(p.clone()), timeout)? {
        Value::Text(said) if said == protocol::SEND => {}
        Value::Text(said) if said == protocol::HAVE => return Ok(said),
        other => {
            return Err(CallFailure::new(
                FailureKind::BadArguments,
                format!("the node answered the offer with {other:?}"),
            ));
        }
    }
    for (i, piece) in bytes.chunks(CHUNK).enumerate() {
        let chunk = ModuleRequest::Chunk {
            digest,
            offset: (i * CHUNK) as u64,
            data: piece.to_vec(),
        };
        call(chunk, REQUEST_TIMEOUT)?;
    }
    match call(ModuleRequest::Finish(digest), timeout)? {
        Value::Text(said) => Ok(said),
        other => Err(CallFailure::new(
            FailureKind::BadArguments,
            format!("the node answered with {other:?}"),
        )),
    }
}

/// What a node said to a transfer, and how long it took.
type Sent = Result<(String, Duration), CallFailure>;

/// `dhost publish`.
pub fn publish(args: &PublishArgs) -> anyhow::Result<ExitCode> {
    let path = &args.guest;
    let bytes = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    crate::guest::wasm::check_component(&bytes)
        .with_context(|| format!("cannot publish {}", path.display()))?;

    let name = match &args.name {
        Some(name) => name.clone(),
        None => path
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default(),
    };
    check_name(&name).map_err(|why| anyhow::anyhow!("--name: {why}"))?;
    let p = Publication {
        name,
        digest: Some(Digest::of(&bytes)),
        size: bytes.len() as u64,
        published_at: now_ms(),
        publisher: args.publisher.name()?,
    };
    let (client, targets) = targets(&args.survey, args.node.as_deref(), |_| true)?;
    if targets.is_empty() {
        bail!("no node on the group takes calls over TCP");
    }
    eprintln!("publishing {p} to {} node(s)", targets.len());
    let pool = start_pool(client.connection_keys())?;
    let outcomes: Vec<(String, Sent)> = std::thread::scope(|s| {
        let sends: Vec<_> = targets
            .iter()
            .map(|(node, addr)| {
                let (pool, p, bytes) = (&pool, &p, &bytes);
                s.spawn(move || {
                    let started = Instant::now();
                    let said = send_module(pool, *addr, node, p, bytes, args.timeout);
                    said.map(|said| (said, started.elapsed()))
                })
            })
            .collect();
        targets
            .iter()
            .zip(sends)
            .map(|((node, _), send)| {
                let outcome = send.join().unwrap_or_else(|_| {
                    Err(CallFailure::new(
                        FailureKind::Unavailable,
                        "the sender panicked",
                    ))
                });
                (node.clone(), outcome)
            })
            .collect()
    });
    let mut loaded = 0;
    for (node, outcome) in &outcomes {
        match outcome {
            Ok((said, took)) => {
                loaded += 1;
                let how = if said == protocol::HAVE {
                    "loaded (it had the module already)"
                } else {
                    "loaded"
                };
                println!("{}: {how} in {:.2} s", printable(node), took.as_secs_f64());
            }
            Err(failure) => println!("{}: {}", printable(node), reason(failure)),
        }
    }
    if loaded == outcomes.len() {
        Ok(ExitCode::SUCCESS)
    } else {
        eprintln!("published to {loaded} of {} node(s)", outcomes.len());
        Ok(ExitCode::FAILURE)
    }
}

/// `dhost unpublish`.
pub fn unpublish(args: &UnpublishArgs) -> anyhow::Result<ExitCode> {
    check_name(&args.name).map_err(|why| anyhow::anyhow!("{why}"))?;
    let removal = Publication {
        name: args.name.clone(),
        digest: None,
        size: 0,
        published_at: now_ms(),
        publisher: args.publisher.name()?,
    };
    let runs_it = |a: &crate::wire::Announce| {
        a.modules
            .iter()
            .any(|p| p.name == args.name && !p.is_removal())
    };
    let (client, targets) = targets(&args.survey, None, runs_it)?;
    if targets.is_empty() {
        bail!("no node runs a module named {}", args.name);
    }
    let pool = start_pool(client.connection_keys())?;
    let mut failed = 0;
    for (node, addr) in &targets {
        let request = ModuleRequest::Unpublish(removal.clone());
        let node_shown = printable(node);
        match request.send(&pool, *addr, node, args.timeout) {
            Ok(Value::Text(said)) => println!("{node_shown}: {}", printable(said)),
            Ok(other) => println!("{node_shown}: {}", printable(format_args!("{other:?}"))),
            Err(failure) => {
                failed += 1;
                println!("{node_shown}: {}", reason(&failure));
            }
        }
    }
    Ok(if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// `dhost modules`: one line per module (name and digest), with the nodes that run it.
pub fn modules(args: &ModulesArgs) -> anyhow::Result<()> {
    // (Every node: an announcement too large for a datagram may not list all it runs.)
    let (client, targets) = targets(&args.survey, args.node.as_deref(), |_| true)?;
    let pool = start_pool(client.connection_keys())?;
    let mut modules: BTreeMap<(String, Option<Digest>), (Listed, Vec<String>)> = BTreeMap::new();
    for (node, addr) in &targets {
        let node_shown = printable(node);
        let listed = match ModuleRequest::List.send(&pool, *addr, node, REQUEST_TIMEOUT) {
            Ok(Value::Array(items)) => items,
            Ok(_) => {
                eprintln!("{node_shown}: answered the listing with something other than a list");
                continue;
            }
            Err(failure) => {
                eprintln!("{node_shown}: {}", reason(&failure));
                continue;
            }
        };
        for item in listed {
            let listed = match Listed::from_value(item) {
                Ok(listed) => listed,
                Err(why) => {
                    eprintln!("{node_shown}: {}", printable(why));
                    continue;
                }
            };
            let key = (listed.publication.name.clone(), listed.publication.digest);
            modules
                .entry(key)
                .or_insert_with(|| (listed, Vec::new()))
                .1
                .push(node.clone());
        }
    }
    if modules.is_empty() {
        eprintln!("no node runs a published module");
        return Ok(());
    }
    // One row of text per module, the columns as wide as their widest cell, every cell
    // from the nodes shown printable.
    let words = |items: &[String]| {
        let shown: Vec<String> = items.iter().map(|i| printable(i).to_string()).collect();
        shown.join(" ")
    };
    let rows: Vec<[String; 7]> = modules
        .values()
        .map(|(listed, nodes)| {
            let p = &listed.publication;
            let exports = if listed.exports.is_empty() {
                "-".to_string()
            } else {
                words(&listed.exports)
            };
            [
                printable(&p.name).to_string(),
                p.digest.map_or_else(|| "-".into(), |d| d.short()),
                bytesize::ByteSize(p.size).to_string(),
                printable(&p.publisher).to_string(),
                super::publication::format_time(p.published_at),
                exports,
                words(nodes),
            ]
        })
        .collect();
    let heading = [
        "NAME",
        "DIGEST",
        "SIZE",
        "PUBLISHER",
        "PUBLISHED",
        "EXPORTS",
        "NODES",
    ]
    .map(str::to_string);
    let widths: Vec<usize> = (0..heading.len())
        .map(|c| {
            std::iter::once(&heading)
                .chain(&rows)
                .map(|r| r[c].chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    for row in std::iter::once(&heading).chain(&rows) {
        let line: Vec<String> = row
            .iter()
            .zip(&widths)
            .enumerate()
            .map(|(c, (cell, &width))| match c {
                2 => format!("{cell:>width$}"),
                6 => cell.clone(),
                _ => format!("{cell:<width$}"),
            })
            .collect();
        println!("{}", line.join("  "));
    }
    Ok(())
}

/// `dhost inspect --node NODE NAME`: the WIT of module NAME, as node NODE has it.
pub fn remote_wit(survey: &SurveyArgs, node: &str, name: &str) -> anyhow::Result<String> {
    check_name(name).map_err(|why| anyhow::anyhow!("{why}"))?;
    let (client, targets) = targets(survey, Some(node), |_| true)?;
    let pool = start_pool(client.connection_keys())?;
    let (node, addr) = &targets[0];
    match ModuleRequest::Wit(name.to_string()).send(&pool, *addr, node, REQUEST_TIMEOUT) {
        Ok(Value::Text(wit)) => Ok(wit),
        Ok(other) => bail!("node {node} answered with {other:?} rather than WIT text"),
        Err(failure) => bail!("cannot get the WIT of {name} from node {node}: {failure}"),
    }
}
