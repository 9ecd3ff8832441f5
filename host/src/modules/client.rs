//! The CLI's side of published modules: `dhost publish` (a transfer to each node, in
//! parallel), `dhost unpublish`, `dhost modules` and `dhost inspect --node`.
//!
//! A client finds the nodes by asking the group (as `dhost peers` does: at most
//! [`crate::client::MAX_ANSWERS`] of them), then talks to each node's TCP port with the
//! requests of [`super::protocol`]: `publish` to every node at once, `unpublish` and
//! `modules` to [`PARALLEL`] at a time (a listing may be a frame of 1 MiB), all of them
//! within [`DEADLINE`], and at most [`super::MAX_MODULES`] modules taken from each node's
//! list; so a group of hostile nodes costs a client a bounded time and memory.

use super::protocol::{self, CHUNK, Listed, ModuleRequest};
use super::{Digest, Publication, check_name};
use crate::cli::{ModulesArgs, PublishArgs, SurveyArgs, UnpublishArgs};
use crate::client::{GroupClient, find_node};
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

/// How many nodes `unpublish` and `modules` ask at once.
pub const PARALLEL: usize = 8;

/// How long `unpublish` (or its --timeout, if longer) and `modules` ask nodes for, in all:
/// the nodes not asked by then are said to be so.
pub const DEADLINE: Duration = Duration::from_secs(30);

/// Runs `ask(node, addr, time left)` for each target, `parallel` at a time, each on a
/// thread of its own; a target whose turn comes after `deadline` (if any) is not asked
/// (its outcome says so). The outcomes are in the targets' order.
fn ask_each<T: Send>(
    targets: &[(String, SocketAddr)],
    parallel: usize,
    deadline: Option<Instant>,
    ask: impl Fn(&str, SocketAddr, Duration) -> Result<T, CallFailure> + Sync,
) -> Vec<Result<T, CallFailure>> {
    let mut outcomes = Vec::with_capacity(targets.len());
    for batch in targets.chunks(parallel.max(1)) {
        let left = deadline.map_or(Duration::MAX, |d| {
            d.saturating_duration_since(Instant::now())
        });
        if left.is_zero() {
            outcomes.extend(batch.iter().map(|_| {
                Err(CallFailure::new(
                    FailureKind::Timeout,
                    "not asked: the time for all nodes ran out",
                ))
            }));
            continue;
        }
        let ask = &ask;
        std::thread::scope(|s| {
            let asked: Vec<_> = batch
                .iter()
                .map(|(node, addr)| s.spawn(move || ask(node, *addr, left)))
                .collect();
            outcomes.extend(asked.into_iter().map(|asked| {
                asked.join().unwrap_or_else(|_| {
                    Err(CallFailure::new(
                        FailureKind::Unavailable,
                        "the thread asking it panicked",
                    ))
                })
            }));
        });
    }
    outcomes
}

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
        .filter_map(|a| Some((a.announce.presence.name, a.announce.presence.tcp?)))
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
        published_at: crate::clock::unix_millis(),
        publisher: args.publisher.name()?,
    };
    let (client, targets) = targets(&args.survey, args.node.as_deref(), |_| true)?;
    if targets.is_empty() {
        bail!("no node on the group takes calls over TCP");
    }
    eprintln!("publishing {p} to {} node(s)", targets.len());
    let pool = client.start_pool()?;
    // (Every node at once: each waits for its own transfer, at most --timeout.)
    let sent: Vec<Sent> = ask_each(&targets, targets.len(), None, |node, addr, _| {
        let started = Instant::now();
        let said = send_module(&pool, addr, node, &p, &bytes, args.timeout);
        said.map(|said| (said, started.elapsed()))
    });
    let outcomes: Vec<(&String, Sent)> = targets.iter().map(|(node, _)| node).zip(sent).collect();
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
        published_at: crate::clock::unix_millis(),
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
    let pool = client.start_pool()?;
    let deadline = Instant::now() + DEADLINE.max(args.timeout);
    let outcomes = ask_each(&targets, PARALLEL, Some(deadline), |node, addr, left| {
        let request = ModuleRequest::Unpublish(removal.clone());
        request.send(&pool, addr, node, args.timeout.min(left))
    });
    let mut failed = 0;
    for ((node, _), outcome) in targets.iter().zip(outcomes) {
        let node_shown = printable(node);
        match outcome {
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
    let pool = client.start_pool()?;
    let deadline = Instant::now() + DEADLINE;
    // (Each list cut to what a node runs at most as it arrives: a node's frame holds at
    // most 1 MiB, and PARALLEL are held at once.)
    let lists =
        ask_each(
            &targets,
            PARALLEL,
            Some(deadline),
            |node, addr, left| match ModuleRequest::List.send(
                &pool,
                addr,
                node,
                REQUEST_TIMEOUT.min(left),
            )? {
                Value::Array(items) => {
                    let more = items.len().saturating_sub(super::MAX_MODULES);
                    Ok(Some((
                        items.into_iter().take(super::MAX_MODULES).collect(),
                        more,
                    )))
                }
                _ => Ok(None),
            },
        );
    let mut modules: BTreeMap<(String, Option<Digest>), (Listed, Vec<String>)> = BTreeMap::new();
    for ((node, _), listed) in targets.iter().zip(lists) {
        let node_shown = printable(node);
        let listed: Vec<Value> = match listed {
            Ok(Some((items, more))) => {
                if more > 0 {
                    eprintln!(
                        "{node_shown}: listed {more} module(s) more than the {} a node runs; \
                         left them out",
                        super::MAX_MODULES
                    );
                }
                items
            }
            Ok(None) => {
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
    let pool = client.start_pool()?;
    let (node, addr) = &targets[0];
    match ModuleRequest::Wit(name.to_string()).send(&pool, *addr, node, REQUEST_TIMEOUT) {
        Ok(Value::Text(wit)) => Ok(wit),
        Ok(other) => bail!("node {node} answered with {other:?} rather than WIT text"),
        Err(failure) => bail!("cannot get the WIT of {name} from node {node}: {failure}"),
    }
}
