//! The jail policy file (`dhost run --jail FILE`, TOML) and the jail flags, merged into the
//! effective [`Jail`] of each guest:
//!
//! built-in default  <-  `[default]`  <-  `[guest.NAME]`  <-  flags
//!
//! A knob set in a later layer replaces the earlier one, except the grant flags
//! (`--allow-dir`, `--allow-env`, `--allow-net`), which add to what the file grants.
//! Every value is checked when the file is read, so a mistake is reported with the file,
//! the section and the knob before any guest runs.

use super::{AddrPattern, DirGrant, Jail, MailboxGrant, NameLookup, parse_duration, parse_size};
use anyhow::{Context as _, bail};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

/// One section of the policy file, as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct Section {
    files: Option<Vec<String>>,
    env: Option<Vec<String>>,
    args: Option<Vec<String>>,
    stdin: Option<bool>,
    stdout: Option<bool>,
    stderr: Option<bool>,
    network: Option<Vec<String>>,
    name_lookup: Option<LookupKnob>,
    wall_clock: Option<bool>,
    max_memory: Option<String>,
    max_time: Option<String>,
    fuel: Option<u64>,
    call_timeout: Option<String>,
    send: Option<Vec<String>>,
    serve: Option<Vec<String>>,
    mailboxes: Option<Vec<String>>,
    max_instances: Option<u32>,
    max_memories: Option<u32>,
    max_tables: Option<u32>,
}

/// `name-lookup`: `true` (any name), `false`, or a list of names.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum LookupKnob {
    All(bool),
    Names(Vec<String>),
}

/// The policy file, as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct PolicyFile {
    #[serde(default)]
    default: Section,
    #[serde(default)]
    guest: BTreeMap<String, Section>,
}

/// One section, checked: every knob it sets, typed.
#[derive(Debug, Default, Clone)]
struct Grants {
    dirs: Option<Vec<DirGrant>>,
    env: Option<Vec<String>>,
    args: Option<Vec<String>>,
    stdin: Option<bool>,
    stdout: Option<bool>,
    stderr: Option<bool>,
    network: Option<Vec<AddrPattern>>,
    name_lookup: Option<NameLookup>,
    wall_clock: Option<bool>,
    max_memory: Option<u64>,
    /// `Some(None)`: `max-time = "off"`.
    max_time: Option<Option<Duration>>,
    fuel: Option<u64>,
    call_timeout: Option<Duration>,
    send: Option<Vec<String>>,
    serve: Option<Vec<String>>,
    mailboxes: Option<Vec<MailboxGrant>>,
    max_instances: Option<u32>,
    max_memories: Option<u32>,
    max_tables: Option<u32>,
}

impl Section {
    fn check(self) -> Result<Grants, String> {
        let each =
            |items: Option<Vec<String>>, knob: &str, parse: &dyn Fn(&str) -> Result<(), String>| {
                if let Some(items) = &items {
                    for item in items {
                        parse(item).map_err(|e| format!("{knob}: {e}"))?;
                    }
                }
                Ok::<_, String>(items)
            };
        let env = each(self.env, "env", &|name| {
            if name.is_empty() || name.contains('=') || name.contains('\0') {
                Err(format!("`{name}` is not an environment variable name"))
            } else {
                Ok(())
            }
        })?;
        let ids = |items, knob| {
            each(items, knob, &|entry: &str| {
                let id = entry
                    .split_once(" from ")
                    .map_or(entry, |(id, _)| id.trim());
                if id.contains('#') {
                    Ok(())
                } else {
                    Err(format!(
                        "`{id}` is not a function id (namespace:package/interface#function)"
                    ))
                }
            })
        };
        let send = ids(self.send, "send")?;
        let serve = ids(self.serve, "serve")?;
        let dirs = parse_all::<DirGrant>(self.files, "files")?;
        let network = parse_all::<AddrPattern>(self.network, "network")?;
        let mailboxes = parse_all::<MailboxGrant>(self.mailboxes, "mailboxes")?;
        for (knob, count) in [
            ("max-instances", self.max_instances),
            ("max-memories", self.max_memories),
            ("max-tables", self.max_tables),
        ] {
            if count == Some(0) {
                return Err(format!("{knob}: must be more than 0"));
            }
        }
        let max_memory = self
            .max_memory
            .map(|s| parse_size(&s))
            .transpose()
            .map_err(|e| format!("max-memory: {e}"))?;
        let max_time = self
            .max_time
            .map(|s| match s.as_str() {
                "off" => Ok(None),
                s => parse_duration(s).map(Some),
            })
            .transpose()
            .map_err(|e| format!("max-time: {e}"))?;
        let call_timeout = self
            .call_timeout
            .map(|s| parse_duration(&s))
            .transpose()
            .map_err(|e| format!("call-timeout: {e}"))?;
        if call_timeout.is_some_and(|t| t.is_zero()) {
            return Err("call-timeout: must be more than 0".to_string());
        }
        if self.fuel == Some(0) {
            return Err("fuel: must be more than 0".to_string());
        }
        Ok(Grants {
            dirs,
            env,
            args: self.args,
            stdin: self.stdin,
            stdout: self.stdout,
            stderr: self.stderr,
            network,
            name_lookup: self.name_lookup.map(|knob| match knob {
                LookupKnob::All(true) => NameLookup::Any,
                LookupKnob::All(false) => NameLookup::None,
                LookupKnob::Names(names) => NameLookup::Names(names),
            }),
            wall_clock: self.wall_clock,
            max_memory,
            max_time,
            fuel: self.fuel,
            call_timeout,
            send,
            serve,
            mailboxes,
            max_instances: self.max_instances,
            max_memories: self.max_memories,
            max_tables: self.max_tables,
        })
    }
}

/// Parses every item of a list knob, naming the knob in the error.
fn parse_all<T: std::str::FromStr<Err = String>>(
    items: Option<Vec<String>>,
    knob: &str,
) -> Result<Option<Vec<T>>, String> {
    items
        .map(|items| {
            items
                .iter()
                .map(|i| i.parse())
                .collect::<Result<Vec<T>, _>>()
        })
        .transpose()
        .map_err(|e| format!("{knob}: {e}"))
}

impl Grants {
    fn apply(&self, jail: &mut Jail) {
        fn set<T: Clone>(knob: &Option<T>, into: &mut T) {
            if let Some(v) = knob {
                *into = v.clone();
            }
        }
        set(&self.dirs, &mut jail.dirs);
        set(&self.env, &mut jail.env);
        set(&self.args, &mut jail.args);
        set(&self.stdin, &mut jail.stdin);
        set(&self.stdout, &mut jail.stdout);
        set(&self.stderr, &mut jail.stderr);
        set(&self.network, &mut jail.network);
        set(&self.name_lookup, &mut jail.name_lookup);
        set(&self.wall_clock, &mut jail.wall_clock);
        set(&self.max_memory, &mut jail.limits.max_memory);
        set(&self.max_instances, &mut jail.limits.max_instances);
        set(&self.max_memories, &mut jail.limits.max_memories);
        set(&self.max_tables, &mut jail.limits.max_tables);
        set(&self.mailboxes, &mut jail.mailboxes);
        set(&self.max_time, &mut jail.limits.max_time);
        set(&self.call_timeout, &mut jail.call_timeout);
        if self.fuel.is_some() {
            jail.limits.fuel = self.fuel;
        }
        if self.send.is_some() {
            jail.send = self.send.clone();
        }
        if self.serve.is_some() {
            jail.serve = self.serve.clone();
        }
    }
}

/// The jail knobs given on the command line.
#[derive(Debug, Default, Clone)]
pub struct Flags {
    /// `--allow-dir`: added to every guest's directories.
    pub dirs: Vec<DirGrant>,
    /// `--allow-env`: added to every guest's environment.
    pub env: Vec<String>,
    /// `--allow-net`: added to every guest's network allow-list.
    pub network: Vec<AddrPattern>,
    /// `--max-memory`.
    pub max_memory: Option<u64>,
    /// `--max-time`.
    pub max_time: Option<Duration>,
    /// `--fuel`.
    pub fuel: Option<u64>,
    /// `--call-timeout`.
    pub call_timeout: Option<Duration>,
    /// The arguments after `--`, for a WASI command.
    pub args: Option<Vec<String>>,
}

/// The policy of a node: the file's sections and the flags.
#[derive(Debug, Default)]
pub struct Policy {
    default: Grants,
    guests: BTreeMap<String, Grants>,
    flags: Flags,
}

impl Policy {
    /// Reads and checks the policy file at `path` (none: the built-in default only) and
    /// adds the flags.
    pub fn load(path: Option<&Path>, flags: Flags) -> anyhow::Result<Policy> {
        let Some(path) = path else {
            return Ok(Policy {
                flags,
                ..Policy::default()
            });
        };
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read the jail policy {}", path.display()))?;
        Self::parse(&text, flags).with_context(|| format!("bad jail policy {}", path.display()))
    }

    /// Checks the text of a policy file and adds the flags.
    pub fn parse(text: &str, flags: Flags) -> anyhow::Result<Policy> {
        let file: PolicyFile = toml::from_str(text)?;
        let default = match file.default.check() {
            Ok(g) => g,
            Err(e) => bail!("[default] {e}"),
        };
        let mut guests = BTreeMap::new();
        for (name, section) in file.guest {
            match section.check() {
                Ok(g) => guests.insert(name, g),
                Err(e) => bail!("[guest.{name}] {e}"),
            };
        }
        Ok(Policy {
            default,
            guests,
            flags,
        })
    }

    /// The guests the file has a section for.
    pub fn named_guests(&self) -> impl Iterator<Item = &str> {
        self.guests.keys().map(String::as_str)
    }

    /// Whether any guest may get a fuel limit (the engine must then count fuel).
    pub fn uses_fuel(&self) -> bool {
        self.flags.fuel.is_some()
            || self.default.fuel.is_some()
            || self.guests.values().any(|g| g.fuel.is_some())
    }

    /// The effective jail of guest `name` (a WASI command if `command`).
    pub fn jail_for(&self, name: &str, command: bool) -> Jail {
        let mut jail = self.file_jail(name, Jail::default_for(command));
        let flags = &self.flags;
        jail.dirs.extend(flags.dirs.iter().cloned());
        jail.env.extend(flags.env.iter().cloned());
        jail.network.extend(flags.network.iter().cloned());
        self.apply_limit_flags(&mut jail);
        if let Some(args) = &flags.args {
            jail.args = args.clone();
        }
        jail
    }

    /// The jail of the module published under `name`: what the file grants it (its
    /// `[guest.NAME]` section over `[default]`) and the limit flags, but neither the grant
    /// flags (`--allow-dir`, `--allow-env`, `--allow-net`: they are for the guests given on
    /// the command line) nor, unless its section says so, the node's stdin or any mailbox.
    pub fn jail_for_published(&self, name: &str) -> Jail {
        let mut base = Jail::default_for(false);
        base.stdin = false;
        base.mailboxes = Vec::new();
        let mut jail = self.file_jail(name, base);
        self.apply_limit_flags(&mut jail);
        jail
    }

    /// `base` with `[default]` and `[guest.NAME]` over it.
    fn file_jail(&self, name: &str, mut jail: Jail) -> Jail {
        self.default.apply(&mut jail);
        if let Some(grants) = self.guests.get(name) {
            grants.apply(&mut jail);
        }
        jail
    }

    /// `--max-memory`, `--max-time`, `--fuel`, `--call-timeout`.
    fn apply_limit_flags(&self, jail: &mut Jail) {
        let flags = &self.flags;
        if let Some(m) = flags.max_memory {
            jail.limits.max_memory = m;
        }
        if let Some(t) = flags.max_time {
            jail.limits.max_time = Some(t);
        }
        if flags.fuel.is_some() {
            jail.limits.fuel = flags.fuel;
        }
        if let Some(t) = flags.call_timeout {
            jail.call_timeout = t;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const EXAMPLE: &str = r#"
        [default]
        max-memory = "32MiB"
        env = ["LANG"]

        [guest.chat]
        files = ["/srv/chat:/data:rw"]
        network = ["127.0.0.1:8080"]
        max-time = "200ms"
        call-timeout = "2s"
        send = ["dhost:chat/chat#message"]

        [guest.batch]
        max-time = "off"
        fuel = 1000000
        env = []
        mailboxes = ["0-3", "9@store:rw"]
        max-instances = 4
    "#;

    #[test]
    fn the_example_in_the_docs_is_a_valid_policy() {
        let doc = include_str!("../../../docs/jail.md");
        let example = doc
            .split("```toml\n")
            .nth(1)
            .and_then(|rest| rest.split("```").next())
            .expect("docs/jail.md has a TOML example");
        let policy = Policy::parse(example, Flags::default()).unwrap();
        let fetcher = policy.jail_for("fetcher", false);
        assert_eq!(fetcher.network.len(), 3);
        assert_eq!(fetcher.limits.fuel, Some(50_000_000));
        assert!(!fetcher.wall_clock && !fetcher.stderr && !fetcher.stdin);
        assert!(fetcher.name_lookup.permits("db.internal.example"));
        assert!(!fetcher.name_lookup.permits("example.com"));
        assert_eq!(policy.jail_for("chat", false).dirs.len(), 2);
    }

    #[test]
    fn layers_merge_in_order() {
        let policy = Policy::parse(EXAMPLE, Flags::default()).unwrap();
        let chat = policy.jail_for("chat", false);
        assert_eq!(chat.limits.max_memory, 32 << 20);
        assert_eq!(chat.limits.max_time, Some(Duration::from_millis(200)));
        assert_eq!(chat.call_timeout, Duration::from_secs(2));
        assert_eq!(chat.env, ["LANG"]);
        assert_eq!(chat.dirs[0].guest, "/data");
        assert!(chat.dirs[0].writable);
        assert_eq!(chat.network.len(), 1);
        assert_eq!(
            chat.send.as_deref(),
            Some(&["dhost:chat/chat#message".to_string()][..])
        );
        let batch = policy.jail_for("batch", false);
        assert_eq!(batch.limits.max_time, None);
        assert_eq!(batch.limits.fuel, Some(1_000_000));
        assert!(batch.env.is_empty());
        assert!(batch.may_use_mailbox(3, None, "here", false));
        assert!(!batch.may_use_mailbox(3, None, "here", true));
        assert!(batch.may_use_mailbox(9, Some("store"), "here", true));
        assert!(!batch.may_use_mailbox(9, None, "here", false));
        assert_eq!(batch.limits.max_instances, 4);
        assert!(
            !policy
                .jail_for_published("batch")
                .may_use_mailbox(4, None, "here", false),
            "its section's grants, not more"
        );
        assert!(
            policy
                .jail_for_published("batch")
                .may_use_mailbox(0, None, "here", false),
            "its section's grants"
        );
        assert!(
            policy.jail_for_published("other").mailboxes.is_empty(),
            "a published module gets no mailbox unless the file says so"
        );
        let other = policy.jail_for("other", false);
        assert!(other.may_use_mailbox(5, Some("anyone"), "here", true));
        assert_eq!(other.limits.max_time, Some(Duration::from_secs(1)));
        assert_eq!(other.call_timeout, Duration::from_secs(5));
        assert!(other.dirs.is_empty() && other.network.is_empty());
        assert!(policy.uses_fuel());
        assert_eq!(policy.named_guests().collect::<Vec<_>>(), ["batch", "chat"]);
    }

    #[test]
    fn flags_replace_limits_and_add_grants() {
        let flags = Flags {
            dirs: vec!["/tmp:/tmp:ro".parse().unwrap()],
            env: vec!["HOME".into()],
            network: vec!["*:443".parse().unwrap()],
            max_memory: Some(1 << 30),
            max_time: Some(Duration::from_secs(3)),
            fuel: None,
            call_timeout: Some(Duration::from_millis(500)),
            args: Some(vec!["x".into()]),
        };
        let policy = Policy::parse(EXAMPLE, flags).unwrap();
        let chat = policy.jail_for("chat", false);
        assert_eq!(chat.dirs.len(), 2);
        assert_eq!(chat.env, ["LANG", "HOME"]);
        assert_eq!(chat.network.len(), 2);
        assert_eq!(chat.limits.max_memory, 1 << 30);
        assert_eq!(chat.limits.max_time, Some(Duration::from_secs(3)));
        assert_eq!(chat.call_timeout, Duration::from_millis(500));
        assert_eq!(chat.args, ["x"]);
    }

    #[test]
    fn mistakes_name_the_section_and_the_knob() {
        for (text, want) in [
            (
                "[default]\nmax-memory = \"lots\"",
                "[default] max-memory: `lots` is not a size",
            ),
            (
                "[guest.a]\nmax-time = \"soon\"",
                "[guest.a] max-time: `soon` is not a duration",
            ),
            (
                "[guest.a]\nnetwork = [\"localhost\"]",
                "[guest.a] network: `localhost` is not an address pattern",
            ),
            (
                "[guest.a]\nfiles = [\"a:b:c:d\"]",
                "[guest.a] files: `a:b:c:d` is not HOST[:GUEST][:ro|rw]",
            ),
            (
                "[guest.a]\nsend = [\"message\"]",
                "[guest.a] send: `message` is not a function id",
            ),
            (
                "[guest.a]\nenv = [\"A=B\"]",
                "[guest.a] env: `A=B` is not an environment variable name",
            ),
            ("[guest.a]\nfuel = 0", "[guest.a] fuel: must be more than 0"),
            (
                "[guest.a]\nmailboxes = [\"1:wo\"]",
                "[guest.a] mailboxes: `1:wo` is not NUMBERS[@NODE][:ro|rw]",
            ),
            (
                "[default]\nmax-instances = 0",
                "[default] max-instances: must be more than 0",
            ),
            ("[default]\nnetwrk = []", "unknown field `netwrk`"),
            ("[defaults]\n", "unknown field `defaults`"),
            ("[default\n", "TOML parse error at line 1"),
        ] {
            let err = format!("{:#}", Policy::parse(text, Flags::default()).unwrap_err());
            assert!(err.contains(want), "{text:?}: `{want}` not in {err}");
        }
    }
}
