//! `dhost console`: an operator's shell on the group, as PySimpleRPC's live console and
//! Erlang's shell. Each line is one of the client commands (`peers`, `call`, `cast`,
//! `publish`, `unpublish`, `modules`, `inspect`), parsed and run exactly as `dhost COMMAND`
//! would with the console's group options, or `say NODE TEXT`, which NODE prints on its
//! terminal ([`crate::say`], answered by the node itself). A failed command says why and
//! the shell goes on.
//!
//! On a terminal the shell edits lines, keeps a history (`~/.local/state/dhost/
//! console_history`) and completes command names, node names and function ids from what
//! the group announced lately (rustyline). From a pipe it reads commands without prompts
//! and exits with status 1 if any failed, so it can be scripted.

use crate::cli::{Cli, ConsoleArgs};
use crate::printable::{lines, printable};
use crate::say::SAY_FUNCTION;
use anyhow::Context as _;
use clap::Parser as _;
use rustyline::completion::{Completer, Pair};
use rustyline::error::ReadlineError;
use rustyline::{Context, Helper, Highlighter, Hinter, Validator};
use std::io::{BufRead as _, IsTerminal as _};
use std::process::ExitCode;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

/// The client commands the console runs as `dhost` would.
const CLIENT_COMMANDS: &[&str] = &[
    "peers",
    "call",
    "cast",
    "publish",
    "unpublish",
    "modules",
    "inspect",
];

/// The console's own commands.
const OWN_COMMANDS: &[&str] = &["say", "help", "quit", "exit"];

/// How often the names that completion offers are asked of the group.
const REFRESH: Duration = Duration::from_secs(2);

/// What `help` prints.
const HELP: &str = "\
peers [--streams] [--refused]           the nodes on the group
call [--timeout 5s] NODE FUNCTION [ARG]...  call FUNCTION on NODE (ARGs are JSON)
cast [--node NODE] FUNCTION [ARG]...    send a call to every node that serves FUNCTION
say NODE TEXT...                        NODE prints TEXT on its terminal
publish [--node NODE] [--name NAME] GUEST   send a module to the nodes
unpublish NAME                          stop running module NAME everywhere
modules [--node NODE]                   the published modules the nodes run
inspect [--summary] GUEST | inspect --node NODE NAME
help | COMMAND --help                   this, or a command's options
quit                                    leave (or Ctrl-D)
Words are split as a shell does: quote a JSON string as '\"text\"'.";

/// What runs a parsed command line: [`crate::commands::execute`], given by the caller (so
/// that the console, one of the commands, does not depend on all the others).
pub(crate) type Execute = fn(Cli) -> anyhow::Result<ExitCode>;

/// Runs the console until `quit`, end of input or Ctrl-C, each command through `execute`;
/// the status is 1 if a command read from a pipe failed.
pub(crate) fn console(args: &ConsoleArgs, execute: Execute) -> anyhow::Result<ExitCode> {
    let shell = Shell {
        execute,
        group: group_words(args),
        sayer: format!(
            "console on {}",
            gethostname::gethostname().to_string_lossy()
        ),
    };
    if !std::io::stdin().is_terminal() {
        let mut failed = false;
        for line in std::io::stdin().lock().lines() {
            let line = line.context("cannot read the commands")?;
            match shell.run(&line) {
                Flow::Quit => break,
                Flow::Failed => failed = true,
                Flow::Done => {}
            }
        }
        return Ok(if failed {
            ExitCode::FAILURE
        } else {
            ExitCode::SUCCESS
        });
    }
    interactive(&shell, args)
}

/// The line-editing loop on a terminal.
fn interactive(shell: &Shell, args: &ConsoleArgs) -> anyhow::Result<ExitCode> {
    let known = Arc::new(Mutex::new(Known::default()));
    refresh_in_background(args, known.clone());
    let mut editor: rustyline::Editor<Completion, rustyline::history::DefaultHistory> =
        rustyline::Editor::new().context("cannot start the line editor")?;
    editor.set_helper(Some(Completion { known }));
    let history = dirs::state_dir().map(|d| d.join("dhost").join("console_history"));
    if let Some(path) = &history {
        let _ = editor.load_history(path);
    }
    let through = match args.survey.zenoh.zenoh.first() {
        Some(endpoint) => format!(" through Zenoh at {endpoint}"),
        None => String::new(),
    };
    println!(
        "dhost console on {}{through}: `help` lists the commands",
        args.survey.group.group
    );
    loop {
        match editor.readline("dhost> ") {
            Ok(line) => {
                let _ = editor.add_history_entry(line.as_str());
                if let Flow::Quit = shell.run(&line) {
                    break;
                }
            }
            Err(ReadlineError::Interrupted | ReadlineError::Eof) => break,
            Err(e) => return Err(e).context("cannot read a line"),
        }
    }
    if let Some(path) = &history {
        if let Some(dir) = path.parent() {
            // (The history file is made 0600 by rustyline.)
            let _ = crate::user_files::create_dir(dir);
        }
        if let Err(e) = editor.save_history(path) {
            tracing::warn!("cannot save the history to {}: {e}", path.display());
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// What to do after a line.
enum Flow {
    Done,
    Failed,
    Quit,
}

/// Runs lines as commands.
struct Shell {
    /// What runs a command.
    execute: Execute,
    /// The console's group options, as words, for every client command.
    group: Vec<String>,
    /// Who `say` says it is.
    sayer: String,
}

impl Shell {
    /// Runs one line.
    fn run(&self, line: &str) -> Flow {
        let Some(words) = shlex::split(line) else {
            eprintln!("error: an unclosed quote in: {}", printable(line));
            return Flow::Failed;
        };
        let Some((command, rest)) = words.split_first() else {
            return Flow::Done;
        };
        let argv = match command.as_str() {
            "quit" | "exit" => return Flow::Quit,
            "help" | "?" => {
                println!("{HELP}");
                return Flow::Done;
            }
            "say" => match rest {
                [node, text @ ..] if !text.is_empty() => {
                    let json = |s: String| serde_json::Value::String(s).to_string();
                    let mut argv = self.client_words("call");
                    argv.push(node.clone());
                    argv.push(SAY_FUNCTION.to_string());
                    argv.push(json(self.sayer.clone()));
                    argv.push(json(text.join(" ")));
                    argv
                }
                _ => {
                    eprintln!("error: say NODE TEXT...");
                    return Flow::Failed;
                }
            },
            name if CLIENT_COMMANDS.contains(&name) => {
                let mut argv = self.client_words(name);
                argv.extend(rest.iter().cloned());
                argv
            }
            other => {
                eprintln!("error: no command `{other}` (`help` lists them)");
                return Flow::Failed;
            }
        };
        let cli = match Cli::try_parse_from(&argv) {
            Ok(cli) => cli,
            Err(e) => {
                let failed = e.use_stderr();
                let _ = e.print();
                return if failed { Flow::Failed } else { Flow::Done };
            }
        };
        match (self.execute)(cli) {
            Ok(code) if code == ExitCode::SUCCESS => Flow::Done,
            Ok(_) => Flow::Failed,
            Err(e) => {
                eprintln!("error: {}", lines(format_args!("{e:#}")));
                Flow::Failed
            }
        }
    }

    /// `dhost COMMAND GROUP-OPTIONS`.
    fn client_words(&self, command: &str) -> Vec<String> {
        let mut argv = vec!["dhost".to_string(), command.to_string()];
        argv.extend(self.group.iter().cloned());
        argv
    }
}

/// The console's group options as command-line words.
fn group_words(args: &ConsoleArgs) -> Vec<String> {
    let group = &args.survey.group;
    let mut words = vec![
        "--group".to_string(),
        group.group.to_string(),
        "--iface".to_string(),
        group.iface.to_string(),
        "--ttl".to_string(),
        group.ttl.to_string(),
        "--wait".to_string(),
        humantime::format_duration(args.survey.wait).to_string(),
    ];
    if let Some(bytes) = group.max_datagram {
        words.extend(["--max-datagram".to_string(), bytes.to_string()]);
    }
    if let Some(key) = &group.key.key_file {
        words.extend(["--key-file".to_string(), key.display().to_string()]);
    }
    if group.key.encrypt {
        words.push("--encrypt".to_string());
    }
    let zenoh = &args.survey.zenoh;
    for endpoint in &zenoh.zenoh {
        words.extend(["--zenoh".to_string(), endpoint.clone()]);
    }
    for endpoint in &zenoh.zenoh_listen {
        words.extend(["--zenoh-listen".to_string(), endpoint.clone()]);
    }
    if let Some(mode) = zenoh.zenoh_mode {
        let mode = clap::ValueEnum::to_possible_value(&mode).map(|v| v.get_name().to_string());
        words.extend(["--zenoh-mode".to_string(), mode.unwrap_or_default()]);
    }
    if let Some(file) = &zenoh.zenoh_config {
        words.extend(["--zenoh-config".to_string(), file.display().to_string()]);
    }
    words
}

/// The node names and function ids the group announced lately.
#[derive(Debug, Default)]
struct Known {
    nodes: Vec<String>,
    functions: Vec<String>,
}

/// Asks the group who is there every [`REFRESH`], for completion, until the process ends.
fn refresh_in_background(args: &ConsoleArgs, known: Arc<Mutex<Known>>) {
    let Ok((_, mut client)) = args.survey.join() else {
        return; // (the commands will say why)
    };
    let wait = args.survey.wait;
    let spawned = std::thread::Builder::new()
        .name("dhost-console".into())
        .spawn(move || {
            loop {
                if let Ok(answers) = client.survey(wait) {
                    let mut nodes: Vec<String> = answers
                        .iter()
                        .map(|a| a.announce.presence.name.clone())
                        .collect();
                    let mut functions: Vec<String> = answers
                        .iter()
                        .flat_map(|a| a.announce.presence.functions.iter().cloned())
                        .collect();
                    nodes.sort();
                    functions.sort();
                    functions.dedup();
                    *known.lock().unwrap_or_else(PoisonError::into_inner) =
                        Known { nodes, functions };
                }
                std::thread::sleep(REFRESH);
            }
        });
    if let Err(e) = spawned {
        tracing::warn!("no completion of names: cannot start its thread: {e}");
    }
}

/// Completes command names, node names and function ids.
#[derive(Helper, Highlighter, Hinter, Validator)]
struct Completion {
    known: Arc<Mutex<Known>>,
}

impl Completer for Completion {
    type Candidate = Pair;

    fn complete(
        &self,
        line: &str,
        pos: usize,
        _: &Context<'_>,
    ) -> rustyline::Result<(usize, Vec<Pair>)> {
        let before = &line[..pos];
        let start = before
            .char_indices()
            .rfind(|(_, c)| c.is_whitespace())
            .map_or(0, |(i, c)| i + c.len_utf8());
        let word = &before[start..];
        let earlier: Vec<&str> = before[..start].split_whitespace().collect();
        let known = self.known.lock().unwrap_or_else(PoisonError::into_inner);
        let candidates: Vec<&str> = match earlier.as_slice() {
            [] => CLIENT_COMMANDS
                .iter()
                .chain(OWN_COMMANDS)
                .copied()
                .collect(),
            // (After an option that takes a node.)
            [.., "--node"] => known.nodes.iter().map(String::as_str).collect(),
            [command, rest @ ..] => {
                let positional = positional_words(rest);
                match (*command, positional) {
                    ("call" | "say", 0) => known.nodes.iter().map(String::as_str).collect(),
                    ("call", 1) | ("cast", 0) => {
                        known.functions.iter().map(String::as_str).collect()
                    }
                    _ => Vec::new(),
                }
            }
        };
        let pairs = candidates
            .into_iter()
            .filter(|c| c.starts_with(word))
            .map(|c| Pair {
                display: c.to_string(),
                replacement: c.to_string(),
            })
            .collect();
        Ok((start, pairs))
    }
}

/// The options of the client commands that take no value.
const FLAGS: &[&str] = &[
    "--encrypt",
    "--streams",
    "--refused",
    "--summary",
    "--quiet",
    "-q",
    "--verbose",
    "-v",
    "-vv",
    "-vvv",
    "--help",
    "-h",
];

/// How many of `words` are not options nor their values (`--timeout 2s`, `--node=ann`).
fn positional_words(words: &[&str]) -> usize {
    let mut count = 0;
    let mut words = words.iter();
    while let Some(word) = words.next() {
        if !word.starts_with('-') {
            count += 1;
        } else if !word.contains('=') && !FLAGS.contains(word) {
            words.next(); // its value
        }
    }
    count
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn completion_offers_commands_then_nodes_then_functions() {
        let known = Known {
            nodes: vec!["ann".into(), "bob".into()],
            functions: vec!["dhost:kv/store#get".into(), "dhost:kv/store#put".into()],
        };
        let completion = Completion {
            known: Arc::new(Mutex::new(known)),
        };
        let history = rustyline::history::DefaultHistory::new();
        let complete = |line: &str| {
            let (start, pairs) = completion
                .complete(line, line.len(), &Context::new(&history))
                .unwrap();
            let words: Vec<String> = pairs.into_iter().map(|p| p.replacement).collect();
            (start, words)
        };
        assert_eq!(complete("pu"), (0, vec!["publish".to_string()]));
        assert_eq!(complete("call a"), (5, vec!["ann".to_string()]));
        assert_eq!(complete("call --timeout 2s b").1, ["bob"]);
        assert_eq!(
            complete("call ann dhost:kv/store#p"),
            (9, vec!["dhost:kv/store#put".to_string()])
        );
        assert_eq!(complete("cast d").1.len(), 2);
        assert_eq!(complete("cast --node a").1, ["ann"]);
        assert_eq!(complete("say b").1, ["bob"]);
        assert!(complete("say bob hel").1.is_empty());
        // After a space of more than one byte, on the character boundary.
        assert_eq!(complete("call\u{a0}a"), (6, vec!["ann".to_string()]));
    }
}
