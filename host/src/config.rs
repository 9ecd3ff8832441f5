//! `dhost run --config FILE`: a node's options kept in a TOML file (docs/config.md).
//!
//! Each key of the file is a long option of `dhost run` without its dashes (`name`,
//! `group`, `allow-env`, `accept-modules`...), plus `guests` for the GUESTs and `args` for
//! a WASI command's arguments. The file is turned into command-line arguments placed before
//! those actually given, so every value goes through the same parser, with the same
//! checks, as the flag's; an option given on the command line (or through its environment
//! variable) replaces the file's value, lists included. Relative paths in the file are
//! relative to the file's directory. A key that is not an option is an error that names
//! the key and the file, as is a value of the wrong shape.

use crate::cli::Cli;
use clap::parser::ValueSource;
use clap::{ArgAction, ArgMatches, CommandFactory as _, Parser as _};
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use thiserror::Error;

/// The largest configuration file read.
pub const MAX_CONFIG_BYTES: u64 = 1 << 20;

/// The keys whose values are paths, resolved against the file's directory.
const PATH_KEYS: &[&str] = &[
    "guests",
    "native",
    "jail",
    "key-file",
    "cache-dir",
    "store-dir",
    "mailbox-store",
];

/// Why a configuration file is refused.
#[derive(Debug, Error)]
pub enum ConfigError {
    /// The file cannot be read.
    #[error("cannot read the config file {}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// What the system said.
        source: std::io::Error,
    },
    /// The file is too large to be a configuration.
    #[error("the config file {} is larger than {} KiB", path.display(), MAX_CONFIG_BYTES >> 10)]
    TooLarge {
        /// The file.
        path: PathBuf,
    },
    /// The file is not TOML.
    #[error("the config file {} is not valid TOML: {message}", path.display())]
    Syntax {
        /// The file.
        path: PathBuf,
        /// The parser's message, with the line.
        message: String,
    },
    /// A key that is no option of `dhost run`.
    #[error(
        "{}: unknown key `{key}`: it is not an option of `dhost run` (docs/config.md lists \
         the keys)",
        path.display()
    )]
    UnknownKey {
        /// The file.
        path: PathBuf,
        /// The key.
        key: String,
    },
    /// Options the file gives together that `dhost run` refuses together.
    #[error("{}: {why}", path.display())]
    Refused {
        /// The file.
        path: PathBuf,
        /// What `dhost run` said.
        why: String,
    },
    /// A value of the wrong shape, or one its option's parser refuses.
    #[error("{}: `{key}`: {why}", path.display())]
    BadValue {
        /// The file.
        path: PathBuf,
        /// The key.
        key: String,
        /// What is wrong with it.
        why: String,
    },
}

/// What stops the command line from being parsed.
#[derive(Debug, Error)]
pub enum CommandLineError {
    /// The command line itself (clap prints it, with the usage, and exits with status 2).
    #[error(transparent)]
    Clap(#[from] clap::Error),
    /// The configuration file.
    #[error(transparent)]
    Config(#[from] ConfigError),
}

/// Parses `argv` (the program's name first), merging the file of `dhost run --config`.
pub fn try_parse_from(argv: Vec<OsString>) -> Result<Cli, CommandLineError> {
    let command = Cli::command();
    // First only to find the file and what the command line gives: an option may need
    // another that only the file gives (--packet-size needs --mailboxes), so the checks
    // are the merged command line's.
    let lenient = command
        .clone()
        .ignore_errors(true)
        .try_get_matches_from(&argv)
        .ok();
    let run_matches = lenient.as_ref().and_then(|m| m.subcommand_matches("run"));
    let Some((path, run_matches)) =
        run_matches.and_then(|run| Some((run.get_one::<PathBuf>("config")?.clone(), run)))
    else {
        return Ok(Cli::try_parse_from(&argv)?);
    };
    let run_command = command
        .find_subcommand("run")
        .expect("dhost has a run subcommand");
    let table = read(&path)?;
    let from_file = arguments(&table, run_command, run_matches, &path)?;
    // The subcommand is the first word that is not a flag (the global flags take no value).
    let at = argv
        .iter()
        .skip(1)
        .position(|word| !word.to_string_lossy().starts_with('-'))
        .map_or(argv.len(), |i| i + 2);
    let mut merged: Vec<OsString> = argv[..at].to_vec();
    merged.extend(from_file.options.iter().cloned());
    merged.extend(argv[at..].iter().cloned());
    if !from_file.trailing.is_empty() {
        // (After the command line's own `--`, if it ends with one bare.)
        if !argv[at..].iter().any(|w| w == "--") {
            merged.push("--".into());
        }
        merged.extend(from_file.trailing.iter().cloned());
    }
    Cli::try_parse_from(&merged).map_err(|e| blame(&path, &from_file, e))
}

/// The error to report when the merged command line is refused with `e`: the key whose
/// value its option refuses, else the file when its arguments alone are refused, else
/// the command line.
fn blame(path: &Path, from_file: &FileArguments, e: clap::Error) -> CommandLineError {
    use clap::error::ErrorKind;
    let refuses = |words: &[OsString]| {
        let mut alone: Vec<OsString> = vec!["dhost".into(), "run".into()];
        alone.extend(words.iter().cloned());
        Cli::try_parse_from(alone).err()
    };
    for (key, words) in &from_file.by_key {
        if let Some(refused) = refuses(words).filter(|r| {
            matches!(
                r.kind(),
                ErrorKind::InvalidValue
                    | ErrorKind::ValueValidation
                    | ErrorKind::WrongNumberOfValues
                    | ErrorKind::TooManyValues
                    | ErrorKind::ArgumentConflict
                    | ErrorKind::NoEquals
                    | ErrorKind::InvalidUtf8
            )
        }) {
            return ConfigError::BadValue {
                path: path.to_path_buf(),
                key: key.clone(),
                why: first_paragraph(&refused.to_string()),
            }
            .into();
        }
    }
    match refuses(&from_file.options) {
        Some(refused) => ConfigError::Refused {
            path: path.to_path_buf(),
            why: first_paragraph(&refused.to_string()),
        }
        .into(),
        None => e.into(),
    }
}

/// The command-line arguments a configuration file stands for.
#[derive(Debug, Default, PartialEq)]
struct FileArguments {
    /// Options and GUESTs, to go before those given.
    options: Vec<OsString>,
    /// A WASI command's arguments, to go after `--`.
    trailing: Vec<OsString>,
    /// Each key used, with the words it stands for, in the file's order.
    by_key: Vec<(String, Vec<OsString>)>,
}

/// Reads and parses the file at `path`.
fn read(path: &Path) -> Result<toml::Table, ConfigError> {
    let read_error = |source| ConfigError::Read {
        path: path.to_path_buf(),
        source,
    };
    let size = std::fs::metadata(path).map_err(read_error)?.len();
    if size > MAX_CONFIG_BYTES {
        return Err(ConfigError::TooLarge {
            path: path.to_path_buf(),
        });
    }
    let text = std::fs::read_to_string(path).map_err(read_error)?;
    text.parse::<toml::Table>()
        .map_err(|e| ConfigError::Syntax {
            path: path.to_path_buf(),
            message: e.to_string().trim_end().to_string(),
        })
}

/// The arguments `table` (read from `path`) stands for, leaving out the options `given`
/// already has from the command line or the environment.
fn arguments(
    table: &toml::Table,
    run: &clap::Command,
    given: &ArgMatches,
    path: &Path,
) -> Result<FileArguments, ConfigError> {
    let base = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    let mut out = FileArguments::default();
    for (key, value) in table {
        let bad = |why: String| ConfigError::BadValue {
            path: path.to_path_buf(),
            key: key.clone(),
            why,
        };
        let arg = run
            .get_arguments()
            .filter(|a| !a.is_global_set())
            .filter(|a| !matches!(a.get_action(), ArgAction::Help | ArgAction::Version))
            .find(|a| match a.get_long() {
                Some(long) => long == key,
                None => a.get_id() == key.as_str(),
            })
            .ok_or_else(|| ConfigError::UnknownKey {
                path: path.to_path_buf(),
                key: key.clone(),
            })?;
        if key == "config" {
            return Err(bad("a config file cannot name another".into()));
        }
        let from_outside = |id: &str| {
            matches!(
                given.value_source(id),
                Some(ValueSource::CommandLine | ValueSource::EnvVariable)
            )
        };
        // Given on the command line: it wins; so does an option there that excludes it.
        if from_outside(arg.get_id().as_str())
            || run
                .get_arg_conflicts_with(arg)
                .iter()
                .any(|other| from_outside(other.get_id().as_str()))
        {
            continue;
        }
        let values = match value {
            toml::Value::Array(items) => items.iter().collect(),
            single => vec![single],
        };
        let mut words = Vec::new();
        for value in values {
            let word: OsString = match value {
                toml::Value::String(s) if PATH_KEYS.contains(&key.as_str()) => {
                    base.join(s).into_os_string()
                }
                toml::Value::String(s) => s.into(),
                toml::Value::Integer(n) => n.to_string().into(),
                toml::Value::Float(x) => x.to_string().into(),
                toml::Value::Boolean(_) if arg.get_long().is_none() => {
                    return Err(bad("must be a list of strings".into()));
                }
                toml::Value::Boolean(true) => {
                    words.push(format!("--{key}").into());
                    continue;
                }
                toml::Value::Boolean(false) => continue,
                toml::Value::Array(_) | toml::Value::Table(_) | toml::Value::Datetime(_) => {
                    return Err(bad(
                        "must be a string, a number, a boolean, or a list of them".into(),
                    ));
                }
            };
            match arg.get_long() {
                Some(long) => {
                    let mut flag = OsString::from(format!("--{long}="));
                    flag.push(word);
                    words.push(flag);
                }
                None => words.push(word),
            }
        }
        if key == "args" {
            out.trailing.extend(words.iter().cloned());
        } else {
            out.options.extend(words.iter().cloned());
        }
        out.by_key.push((key.clone(), words));
    }
    Ok(out)
}

/// A clap error's first paragraph on one line, without its `error: ` and the usage.
fn first_paragraph(message: &str) -> String {
    let text = message.strip_prefix("error: ").unwrap_or(message);
    let lines: Vec<&str> = text
        .lines()
        .take_while(|l| !l.trim().is_empty())
        .map(str::trim)
        .collect();
    lines.join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::Command;

    /// Parses `dhost run CLI...` with `file` as the config file's text.
    fn parse(file: &str, cli: &[&str]) -> Result<crate::cli::RunArgs, CommandLineError> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("node.toml");
        std::fs::write(&path, file).unwrap();
        let mut argv: Vec<OsString> = vec!["dhost".into(), "-v".into(), "run".into()];
        argv.push("--config".into());
        argv.push(path.clone().into());
        argv.extend(cli.iter().map(OsString::from));
        match try_parse_from(argv)?.command {
            Command::Run(args) => Ok(*args),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn every_kind_of_value_becomes_its_option() {
        let args = parse(
            r#"
            name = "ann"
            group = "239.1.2.3:5000"
            ttl = 0
            guests = ["chat.wasm", "/abs/kv.wasm"]
            allow-env = ["HOME", "USER"]
            unreliable = true
            accept-modules = ["alice", "bob"]
            max-time = "200ms"
            args = ["one", "two"]
            "#,
            &[],
        )
        .unwrap();
        assert_eq!(args.name.as_deref(), Some("ann"));
        assert_eq!(args.group.group.to_string(), "239.1.2.3:5000");
        assert_eq!(args.group.ttl, 0);
        assert!(args.guests[0].ends_with("chat.wasm") && args.guests[0].is_absolute());
        assert_eq!(args.guests[1], PathBuf::from("/abs/kv.wasm"));
        assert_eq!(args.jail.allow_env, ["HOME", "USER"]);
        assert!(args.stream.unreliable);
        assert_eq!(
            args.modules.accept_modules,
            Some(vec!["alice".to_string(), "bob".to_string()])
        );
        assert_eq!(
            args.jail.max_time,
            Some(std::time::Duration::from_millis(200))
        );
        assert_eq!(args.args, ["one", "two"]);
    }

    #[test]
    fn the_command_line_wins_lists_included() {
        let args = parse(
            "name = \"ann\"\nallow-env = [\"HOME\"]\nguests = [\"a.wasm\"]\nttl = 3\n",
            &["--name", "bob", "--allow-env", "PATH", "b.wasm"],
        )
        .unwrap();
        assert_eq!(args.name.as_deref(), Some("bob"));
        assert_eq!(args.jail.allow_env, ["PATH"]);
        assert_eq!(args.guests, [PathBuf::from("b.wasm")]);
        assert_eq!(args.group.ttl, 3);
    }

    #[test]
    fn an_option_given_may_need_or_exclude_one_from_the_file() {
        // --packet-size needs --mailboxes, which only the file gives.
        let args = parse("mailboxes = 2\nmailbox-size = 4\n", &["--packet-size", "1"]).unwrap();
        assert_eq!(args.mailboxes.packet_size, Some(1));
        // --window excludes --unreliable: the command line wins.
        let args = parse("unreliable = true\n", &["--window", "1MiB"]).unwrap();
        assert!(!args.stream.unreliable);
        assert_eq!(args.stream.window, Some(1 << 20));
        // A bare `--` at the end: the file's args follow it, once.
        let args = parse("args = [\"a\", \"b\"]\n", &["--"]).unwrap();
        assert_eq!(args.args, ["a", "b"]);
    }

    #[test]
    fn mistakes_name_the_key_and_the_file() {
        let unknown = parse("name = \"ann\"\nnmae = \"bob\"\n", &[]).unwrap_err();
        let text = unknown.to_string();
        assert!(
            text.contains("unknown key `nmae`") && text.contains("node.toml"),
            "{text}"
        );
        let table = parse("[jail]\nx = 1\n", &[]).unwrap_err().to_string();
        assert!(table.contains("`jail`: must be a string"), "{table}");
        let refused = parse("ttl = 300\n", &[]).unwrap_err().to_string();
        assert!(
            refused.contains("node.toml: `ttl`") && refused.contains("300"),
            "{refused}"
        );
        let syntax = parse("name = \n", &[]).unwrap_err().to_string();
        assert!(syntax.contains("is not valid TOML"), "{syntax}");
        let together = parse("mailbox-size = 4\n", &[]).unwrap_err().to_string();
        assert!(
            together.contains("node.toml: ") && together.contains("--mailboxes"),
            "{together}"
        );
        let nested = parse("config = \"other.toml\"\n", &[])
            .unwrap_err()
            .to_string();
        assert!(nested.contains("cannot name another"), "{nested}");
        let global = parse("verbose = 2\n", &[]).unwrap_err().to_string();
        assert!(global.contains("unknown key `verbose`"), "{global}");
    }

    #[test]
    fn without_a_config_the_command_line_is_parsed_as_ever() {
        let cli = try_parse_from(vec!["dhost".into(), "peers".into()]).unwrap();
        assert!(matches!(cli.command, Command::Peers(_)));
    }
}
